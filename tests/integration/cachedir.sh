#!/usr/bin/env bash
# cachedir.sh - the cache folder, or a staged file, deleted under a running
# daemon (dir store, read-write export, uploads held back 30 s):
#   - one file's staged data deleted (rm of its file in dirty/): the other
#     files written before are uploaded, byte for byte; `flush --wait`
#     ends (in seconds, not never) with a non-zero exit naming that file;
#     the daemon says so once at ERR and counts it (stats); once the
#     staged file is put back, the next flush uploads it, byte for byte;
#   - the whole cache folder deleted: reads keep being served (a block
#     already cached, and a file never read, from the store); a new file's
#     write answers NFS3ERR_IO (the write stage cannot create its file),
#     not a missing file (NFS3ERR_NOENT) the client did not ask about; a
#     file staged before cannot be written back: `flush /demo --wait` ends
#     non-zero naming it;
#   - the cache folder made read-only (chattr -R +i; root writes through mode
#     bits): the cached file and a file never read read right, a new file's
#     write answers NFS3ERR_IO, the file written before is uploaded byte for
#     byte; made writable again (chattr -i), writes work again, no restart;
#   - nothing crashes: the daemon still serves and stops cleanly.
# Prints "N passed, N failed" last.
set -u
. "$(dirname "$0")/lib.sh"
it_setup
mkdir -p "$IT_TMP/b/demo"
for i in 1 2 3; do head -c 3000000 /dev/urandom >"$IT_TMP/b/demo/f$i"; done
for n in w0 w1 a0 a1 a2 r0 r1; do head -c 500000 /dev/urandom >"$IT_TMP/$n"; done
IT_ACCESS=rw it_write_conf c "$IT_TMP/b" '' 'writeback_delay = 30;'
it_start c || { it_done; exit 1; }
u() { echo "nfs://127.0.0.1/demo/$1?nfsport=$NFS_PORT&mountport=$MOUNT_PORT"; }
tool() { "$IT_ROOT/bin/bucketnfs" -c "$IT_TMP/c/bucketnfs.conf" "$@"; }
dirty=$IT_TMP/c/cache/dirty

# -- one staged file deleted
for n in a0 a1 a2; do
    check "$n is written (staged, upload held back)" nfs_tool nfs-cp "$IT_TMP/$n" "$(u $n)"
done
lost=
for f in "$dirty"/*; do cmp -s "$f" "$IT_TMP/a1" && lost=$f; done
if [ -n "$lost" ]; then ok "a1's staged file is found"; else fail "a1's staged file is found" "$(ls -l "$dirty")"; fi
cp "$lost" "$IT_TMP/a1.saved" && rm -f "$lost"
t0=$SECONDS
timeout 30 "$IT_ROOT/bin/bucketnfs" -c "$IT_TMP/c/bucketnfs.conf" flush --wait >"$IT_TMP/fl.out" 2>&1
rc=$?
check "flush --wait ends non-zero (not 124: timed out)" test "$rc" != 0 -a "$rc" != 124
check "... within 10 s ($((SECONDS - t0)) s)" test $((SECONDS - t0)) -le 10
check "... naming the file that cannot be written back" grep -q "/demo/a1: cannot be written back" "$IT_TMP/fl.out"
check "... and no other" test "$(grep -c 'cannot be written back: its data' "$IT_TMP/fl.out")" = 1
for n in a0 a2; do
    check "the other file $n is in the bucket, byte for byte" cmp "$IT_TMP/b/demo/$n" "$IT_TMP/$n"
done
check "a1 is not in the bucket" test ! -e "$IT_TMP/b/demo/a1"
check "the daemon logs it once, at ERR, with its name" \
    test "$(grep -c 'err.*writeback: /demo/a1: the data written to it cannot be read' "$IT_TMP/c/daemon.log")" = 1
unwritable() { tool stats | awk '$1 == "writeback" && $3 == "unwritable" {print $4}'; }
check "bucketnfs stats counts it (writeback unwritable 1)" test "$(unwritable)" = 1
tool status >"$IT_TMP/status.out" 2>&1
check "bucketnfs status says it" grep -q "1 file(s) CANNOT BE WRITTEN BACK" "$IT_TMP/status.out"
cp "$IT_TMP/a1.saved" "$lost"
check "staged file put back: flush --wait succeeds" timeout 30 "$IT_ROOT/bin/bucketnfs" -c "$IT_TMP/c/bucketnfs.conf" flush --wait
check "... and a1 is in the bucket, byte for byte" cmp "$IT_TMP/b/demo/a1" "$IT_TMP/a1"
check "... and stats no longer count it" test "$(unwritable)" = 0

# reads_and_write_fails WHAT UNREAD NEW: with the cache folder broken, the
# cached f1 and a file never read (UNREAD, from the store) read right, and
# writing a new file NEW fails with NFS3ERR_IO (not NOENT, PERM or ACCES).
reads_and_write_fails() {
    check "$1: the cached file reads right" bash -c "nfs-cat '$(u f1)' | cmp - '$IT_TMP/b/demo/f1'"
    check "$1: a file never read reads right (from the store)" \
        bash -c "nfs-cat '$(u "$2")' | cmp - '$IT_TMP/b/demo/$2'"
    timeout 30 nfs-cp "$IT_TMP/$3" "$(u "$3")" >"$IT_TMP/cp.out" 2>&1
    local rc=$?
    check "$1: a new file's write fails" test "$rc" != 0
    check "$1: with NFS3ERR_IO" grep -q NFS3ERR_IO "$IT_TMP/cp.out"
}

# -- the cache folder made read-only (chattr +i: root can write through mode bits)
check "a file is read (and cached)" bash -c "nfs-cat '$(u f1)' | cmp - '$IT_TMP/b/demo/f1'"
check "a file is written (staged)" nfs_tool nfs-cp "$IT_TMP/r0" "$(u r0)"
if chattr -R +i "$IT_TMP/c/cache" 2>"$IT_TMP/chattr.out"; then
    trap 'chattr -R -i "$IT_TMP/c/cache" 2>/dev/null; it_cleanup' EXIT
    reads_and_write_fails "read-only cache folder" f2 r1
    check "flush --wait uploads the file written before" \
        timeout 30 "$IT_ROOT/bin/bucketnfs" -c "$IT_TMP/c/bucketnfs.conf" flush --wait
    check "... byte for byte" cmp "$IT_TMP/b/demo/r0" "$IT_TMP/r0"
    chattr -R -i "$IT_TMP/c/cache"
    # (r1 exists now, empty: its CREATE succeeded; nfs-cp creates exclusively)
    check "writable again: a new file's write succeeds" nfs_tool nfs-cp "$IT_TMP/r1" "$(u r2)"
    check "... and is uploaded byte for byte" bash -c \
        "timeout 30 '$IT_ROOT/bin/bucketnfs' -c '$IT_TMP/c/bucketnfs.conf' flush --wait && cmp '$IT_TMP/b/demo/r2' '$IT_TMP/r1'"
else
    fail "read-only cache folder" "chattr +i failed (needs root on a file system with the immutable flag): $(cat "$IT_TMP/chattr.out")"
fi

# -- the whole cache folder deleted
check "a file is written (staged, upload held back 30 s)" nfs_tool nfs-cp "$IT_TMP/w0" "$(u w0)"
rm -rf "$IT_TMP/c/cache"
reads_and_write_fails "cache folder deleted" f3 w1
timeout 30 "$IT_ROOT/bin/bucketnfs" -c "$IT_TMP/c/bucketnfs.conf" flush /demo --wait >"$IT_TMP/fl.out" 2>&1
rc=$?
check "flush /demo --wait ends non-zero" test "$rc" != 0 -a "$rc" != 124
check "... naming the staged file that is gone" grep -q "/demo/w0: cannot be written back" "$IT_TMP/fl.out"
check "the daemon still serves" bash -c "nfs-cat '$(u f1)' | cmp - '$IT_TMP/b/demo/f1'"
check "the daemon stops cleanly" it_stop c
it_done
