#!/usr/bin/env bash
# clock.sh - the wall clock jumps under a running daemon (libfaketime,
# Debian package faketime: CLOCK_REALTIME moved by an offset read from a
# file at each call; CLOCK_MONOTONIC left alone, as a real jump leaves it).
# Dir store, read-write export, writeback_delay 1 s, metadata_ttl 1 s.
#   - back one hour: a file written just before is still uploaded after its
#     delay (its change stamp is now an hour in the future), one written
#     after too; a file changed in the bucket is seen after the TTL (its
#     attributes were checked "an hour from now");
#   - forward two hours: a file written then is uploaded;
#   - the uploads' backoff after store failures (1, 2, 4, 8 s ...: the
#     bucket's folder made immutable, chattr +i, so that no object can be
#     put while reads go on: an outage) is on CLOCK_MONOTONIC: one
#     in progress when the clock goes back an hour still ends in its own
#     seconds once the store is back (a wall-clock deadline would wait the
#     hour), and one in progress when it jumps forward two hours is not cut
#     short (no retry before its seconds are up);
#   - a file whose staged data cannot be read (its staged file moved away)
#     backs off on its own, 1, 2, 4, 8 s: with the clock set back an hour
#     during its 8 s and the staged file put back, it is uploaded within
#     12 s;
#   - every file reaches the bucket byte for byte; the daemon stops cleanly.
# Prints "N passed, N failed" last.
set -u
. "$(dirname "$0")/lib.sh"
it_setup
lib=
for l in /usr/lib/*/faketime/libfaketimeMT.so.1 /usr/lib/faketime/libfaketimeMT.so.1; do
    [ -e "$l" ] && lib=$l && break
done
if [ -z "$lib" ]; then
    fail "clock jumps" "libfaketime is not installed (Debian package faketime; make test installs it)"
    it_done; exit 1
fi
offset=$IT_TMP/clock-offset
echo "+0" >"$offset"
jump() { echo "$1" >"$offset"; }
# (An AddressSanitizer build insists on coming first among the libraries
# loaded; libfaketime preloaded comes before it, which is harmless here.)
faked=(env LD_PRELOAD="$lib" FAKETIME_TIMESTAMP_FILE="$offset" FAKETIME_NO_CACHE=1 DONT_FAKE_MONOTONIC=1
       ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0")
jump -3600
d=$("${faked[@]}" date +%s)
jump +0
if [ $(( $(date +%s) - d )) -ge 3500 ]; then ok "libfaketime moves the wall clock of a program it is loaded into"
else fail "libfaketime moves the wall clock" "date says $d, now is $(date +%s)"; it_done; exit 1; fi

mkdir -p "$IT_TMP/b/demo"
echo "first version" >"$IT_TMP/b/demo/f"
for n in fa fb fc; do head -c 200000 /dev/urandom >"$IT_TMP/$n"; done
IT_ACCESS=rw it_write_conf c "$IT_TMP/b" '' 'writeback_delay = 1; metadata_ttl = 1;'
IT_WRAP="${faked[*]}" it_start c || { fail "the daemon starts under libfaketime" ""; it_done; exit 1; }
u() { echo "nfs://127.0.0.1/demo/$1?nfsport=$NFS_PORT&mountport=$MOUNT_PORT"; }
# uploaded NAME SECONDS: NAME is in the bucket, byte for byte, within SECONDS.
uploaded() {
    local i
    for i in $(seq $(($2 * 5))); do
        cmp -s "$IT_TMP/b/demo/$1" "$IT_TMP/$1" && return 0
        sleep 0.2
    done
    return 1
}

check "f reads (its attributes checked now)" bash -c "nfs-cat '$(u f)' | grep -qx 'first version'"
check "a is written" nfs_tool nfs-cp "$IT_TMP/fa" "$(u fa)"
jump -3600
check "clock back 1 h: a (changed 'an hour from now') is uploaded within 8 s" uploaded fa 8
check "b written after the jump" nfs_tool nfs-cp "$IT_TMP/fb" "$(u fb)"
check "... is uploaded within 8 s" uploaded fb 8
echo "second version, longer" >"$IT_TMP/b/demo/f"
sleep 1.5
check "f changed in the bucket is seen after the TTL" bash -c "nfs-cat '$(u f)' | grep -qx 'second version, longer'"
jump +3600
check "clock forward 2 h: c is written" nfs_tool nfs-cp "$IT_TMP/fc" "$(u fc)"
check "... and uploaded within 8 s" uploaded fc 8

# ---- the upload backoff across a jump ------------------------------------------
# fails NAME: the failed uploads of NAME the daemon has logged so far.
fails() { grep -c "writeback: uploading demo:$1 failed" "$IT_TMP/c/daemon.log"; }
# backing_off NAME: the store is made to fail (no object can be put in the
# bucket's folder), NAME is written and waits while its uploads fail 4
# times: the export's backoff is then 8 s (1, 2, 4, 8), and it has just begun.
backing_off() {
    chattr +i "$IT_TMP/b/demo" || { echo "chattr +i (root, a file system that has it) failed"; return 1; }
    nfs_tool nfs-cp "$IT_TMP/$1" "$(u "$1")" || { echo "writing $1 failed"; return 1; }
    local i
    for i in $(seq 150); do # 1 + 1 + 2 + 4 s and the scans, well within 30 s
        [ "$(fails "$1")" -ge 4 ] && return 0
        sleep 0.2
    done
    echo "$(fails "$1") failed uploads of $1 after 30 s, not 4"
    return 1
}
store_back() { chattr -i "$IT_TMP/b/demo"; }
trap 'chattr -i "$IT_TMP/b/demo" 2>/dev/null; it_cleanup' EXIT
head -c 100000 /dev/urandom >"$IT_TMP/fd"
head -c 100000 /dev/urandom >"$IT_TMP/fe"

check "store down: d's uploads fail and back off to 8 s" backing_off fd
jump +0 # back one hour from +1 h
store_back
t0=$SECONDS
if uploaded fd 12; then
    ok "clock back 1 h during the 8 s backoff: d is uploaded within 12 s of the store's return ($((SECONDS - t0)) s)"
else
    fail "clock back 1 h during the 8 s backoff: d is uploaded within 12 s of the store's return" \
        "not uploaded after $((SECONDS - t0)) s"
fi

check "store down again: e's uploads fail and back off to 8 s" backing_off fe
n=$(fails fe)
jump +7200 # forward two hours
sleep 5
if [ "$(fails fe)" = "$n" ]; then ok "clock forward 2 h during the 8 s backoff: no retry of e in the next 5 s"
else fail "clock forward 2 h during the 8 s backoff: no retry of e in the next 5 s" \
    "$(($(fails fe) - n)) more failed uploads: the backoff was cut short"; fi
store_back
check "... and e is uploaded within 8 s of the store's return" uploaded fe 8

# ---- an unwritable file's own backoff across a jump -------------------------------
tool() { "$IT_ROOT/bin/bucketnfs" -c "$IT_TMP/c/bucketnfs.conf" "$@"; }
wb_failures() { tool stats | awk '$1 == "writeback" && $3 == "failures" { print $4 }'; }
# stuck_backing_off: g is written while no object can be put (so that it
# stays staged), its staged file is moved away, the store comes back; its
# uploads now fail for want of its data, on its own backoff: the first
# failure is logged at ERR, and 3 more make the step 8 s, just begun.
stuck_backing_off() {
    chattr +i "$IT_TMP/b/demo" || return 1
    nfs_tool nfs-cp "$IT_TMP/fg" "$(u fg)" || { store_back; echo "writing fg failed"; return 1; }
    local f staged=
    for f in "$IT_TMP"/c/cache/dirty/*; do cmp -s "$f" "$IT_TMP/fg" && staged=$f; done
    [ -n "$staged" ] || { store_back; echo "fg's staged file not found"; return 1; }
    echo "$staged" >"$IT_TMP/fg.where"
    mv "$staged" "$IT_TMP/fg.saved"
    store_back
    local i n0=
    for i in $(seq 150); do
        if [ -z "$n0" ] && grep -q 'demo/fg: the data written to it cannot be read' "$IT_TMP/c/daemon.log"; then
            n0=$(wb_failures)
        fi
        [ -n "$n0" ] && [ "$(wb_failures)" -ge $((n0 + 3)) ] && return 0
        sleep 0.2
    done
    echo "after 30 s: ${n0:-no} first failure for want of data, $(wb_failures) failures in all"
    return 1
}
head -c 100000 /dev/urandom >"$IT_TMP/fg"
check "g's staged data gone: its uploads fail and back off to 8 s" stuck_backing_off
jump +3600 # back one hour from +2 h
mv "$IT_TMP/fg.saved" "$(cat "$IT_TMP/fg.where")"
t0=$SECONDS
if uploaded fg 12; then
    ok "clock back 1 h during its 8 s backoff: g, its data put back, is uploaded within 12 s ($((SECONDS - t0)) s)"
else
    fail "clock back 1 h during its 8 s backoff: g, its data put back, is uploaded within 12 s" \
        "not uploaded after $((SECONDS - t0)) s"
fi
check "the daemon stops cleanly" it_stop c
it_done
