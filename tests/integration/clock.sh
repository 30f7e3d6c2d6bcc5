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
check "the daemon stops cleanly" it_stop c
it_done
