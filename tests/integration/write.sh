#!/usr/bin/env bash
# write.sh - the write path end to end: a daemon on 127.0.0.1 exporting a
# dir-store bucket read-write (/demo, a short writeback_delay) and another
# read-only (/ro); it_write (libnfs) writes through it and checks what the
# client reads back and what lands in the bucket:
#   files    sizes 0 .. 20 MiB; overwrite, truncate, extend with a hole, append
#   names    renames (before / after upload, a directory, over a file),
#            remove, rmdir, chmod / chown / utimes, mkdir, symlink
#   errors   EXIST, NOTEMPTY, ISDIR, NOTDIR, ACCES, PERM, ROFS, NOTSUPP, ...
#   retrans  CREATE / MKDIR / REMOVE / RENAME retransmitted with one XID
# drc.py: the same after a reconnect from the same port (raw RPC), and a
# REMOVE whose reply was lost;
# then, here: a new write verifier after a restart; data acknowledged by
# COMMIT survives kill -9 before write-back (writeback_delay 3600) and is
# uploaded after the restart; past cache.dirty_max a WRITE is
# NFS3ERR_JUKEBOX and nothing acknowledged is lost.
# Prints "N passed, N failed".
set -u
. "$(dirname "$0")/lib.sh"
it_setup

buckets=$IT_TMP/buckets
mkdir -p "$buckets/demo/bdir" "$buckets/robkt/empty-dir"
# A folder with a child only the bucket has (rmdir must see it), and the
# read-only export's file and empty folder.
echo "only in the bucket" >"$buckets/demo/bdir/only-in-bucket"
echo "read-only seed" >"$buckets/robkt/seed.txt"

# exports NAME DELAY: /demo read-write (bucket demo) uploading files quiet
# for DELAY seconds, listings and HEADs redone after 2 s (local changes must
# win over them); /ro read-only (bucket robkt).
exports() {
    cat >"$IT_TMP/$1/exports.conf" <<CONF
exports = ( { path = "/demo"; store = "local"; bucket = "demo"; access = "rw";
              clients = ( "127.0.0.0/8" ); squash = "none"; writeback_delay = $2;
              metadata_ttl = 2; },
            { path = "/ro"; store = "local"; bucket = "robkt"; access = "ro";
              clients = ( "127.0.0.0/8" ); squash = "none"; } );
CONF
}

# itw NAME MODE ARGS...: run it_write MODE (output in $IT_TMP/it_write-NAME.out).
itw() {
    local name=$1; shift
    it_sub "it_write-$name" "$IT_BUILD/tests/it_write" "$NFS_PORT" "$MOUNT_PORT" "$buckets/demo" "$@"
}

# in_bucket WHAT LOCAL KEY: wait (30 s at most) until object KEY of the
# bucket holds LOCAL's bytes.
in_bucket() {
    local i
    for i in $(seq 1 300); do
        if cmp -s "$2" "$buckets/demo/$3"; then ok "$1"; return 0; fi
        sleep 0.1
    done
    fail "$1" "$(ls -l "$buckets/demo/$3" 2>&1)"
}

it_write_conf w "$buckets"
exports w 1
it_start w || { fail "daemon starts" "see above"; it_done; exit 1; }
ok "daemon starts with a read-write export"

itw files files
itw names names
itw errors errors /ro
itw retrans retrans
it_sub drc python3 "$IT_ROOT/tests/integration/drc.py" "$NFS_PORT" "$MOUNT_PORT"

# The write verifier: one per daemon start.
itw verf1 verf verf.bin
v1=$(sed -n 's/^verf //p' "$IT_TMP/it_write-verf1.out")
if it_stop w; then ok "SIGTERM stops the daemon cleanly"; else fail "SIGTERM stops the daemon cleanly" "exit status"; fi
it_start w || { fail "daemon restarts" "see above"; it_done; exit 1; }
itw verf2 verf verf.bin
v2=$(sed -n 's/^verf //p' "$IT_TMP/it_write-verf2.out")
if [ -n "$v1" ] && [ -n "$v2" ] && [ "$v1" != "$v2" ]; then
    ok "the write verifier changes across a restart ($v1 -> $v2)"
else
    fail "the write verifier changes across a restart" "'$v1' then '$v2'"
fi

# Durability: committed data outlives kill -9 before write-back.
exports w 3600
it_stop w || fail "daemon stops" ""
it_start w || { fail "daemon restarts (writeback_delay 3600)" "see above"; it_done; exit 1; }
sizes=(3145729 5242887 17825795) # 3 MiB+1, 5 MiB+7, 17 MiB+3 (over one PUT: multipart)
for i in 0 1 2; do
    head -c "${sizes[$i]}" /dev/urandom >"$IT_TMP/dur-$i"
    itw "put$i" put "$IT_TMP/dur-$i" "dur-$i.bin"
done
sleep 1
if ls "$buckets/demo"/dur-* >/dev/null 2>&1; then
    fail "nothing is uploaded before the crash (writeback_delay 3600)" "$(ls "$buckets/demo")"
else
    ok "nothing is uploaded before the crash (writeback_delay 3600)"
fi
it_kill9 w
exports w 0
it_start w || { fail "daemon restarts after kill -9" "see above"; it_done; exit 1; }
ok "daemon restarts after kill -9"
for i in 0 1 2; do
    in_bucket "after kill -9 and a restart, dur-$i.bin (${sizes[$i]} bytes) reaches the bucket intact" \
        "$IT_TMP/dur-$i" "dur-$i.bin"
    nfs_tool nfs-cat "nfs://127.0.0.1/demo/dur-$i.bin?nfsport=$NFS_PORT&mountport=$MOUNT_PORT" \
        >"$IT_TMP/dur-$i.read" 2>/dev/null
    check "nfs-cat reads dur-$i.bin back after the restart" cmp "$IT_TMP/dur-$i" "$IT_TMP/dur-$i.read"
done
# Uploaded files go into the block cache: reading them back is no download.
cstat() {
    "$IT_ROOT/bin/bucketnfs" -c "$IT_TMP/w/bucketnfs.conf" stats --json |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["cache"][sys.argv[1]])' "$1"
}
check "flush --wait returns once everything is uploaded" \
    "$IT_ROOT/bin/bucketnfs" -c "$IT_TMP/w/bucketnfs.conf" flush --wait
for i in 0 1 2; do
    nfs_tool nfs-cat "nfs://127.0.0.1/demo/dur-$i.bin?nfsport=$NFS_PORT&mountport=$MOUNT_PORT" \
        >"$IT_TMP/dur-$i.read" 2>/dev/null
    check "dur-$i.bin reads back intact once uploaded" cmp "$IT_TMP/dur-$i" "$IT_TMP/dur-$i.read"
done
gets=$(cstat gets) inserted=$(cstat inserted) hits=$(cstat hits)
if [ "$gets" = 0 ] && [ "$inserted" -ge 28 ] && [ "$hits" -ge 28 ]; then
    ok "uploaded files were kept in the cache: read back with 0 GETs ($inserted blocks kept, $hits hits)"
else
    fail "uploaded files are read back from the cache" "gets $gets, inserted $inserted, hits $hits"
fi
it_stop w || fail "daemon stops" ""

# flush's scope: two read-write exports that upload nothing by themselves.
# `flush EXPORT --wait` uploads that export's files only; a plain `flush`
# (no --wait) everything, and a file written after it waits its delay.
mkdir -p "$buckets/other"
cat >"$IT_TMP/w/exports.conf" <<CONF
exports = ( { path = "/demo"; store = "local"; bucket = "demo"; access = "rw";
              clients = ( "127.0.0.0/8" ); squash = "none"; writeback_delay = 3600; },
            { path = "/other"; store = "local"; bucket = "other"; access = "rw";
              clients = ( "127.0.0.0/8" ); squash = "none"; writeback_delay = 3600; } );
CONF
it_start w || { fail "daemon starts with two rw exports" "see above"; it_done; exit 1; }
OP=$IT_BUILD/tests/it_nfsop
head -c 100000 /dev/urandom >"$IT_TMP/scope-a"
head -c 200000 /dev/urandom >"$IT_TMP/scope-b"
check "flush scope: a file written to /demo" \
    "$OP" "nfs://127.0.0.1/demo?nfsport=$NFS_PORT&mountport=$MOUNT_PORT" put "$IT_TMP/scope-a" /scope-a
check "flush scope: a file written to /other" \
    "$OP" "nfs://127.0.0.1/other?nfsport=$NFS_PORT&mountport=$MOUNT_PORT" put "$IT_TMP/scope-b" /scope-b
check "flush /other --wait" "$IT_ROOT/bin/bucketnfs" -c "$IT_TMP/w/bucketnfs.conf" flush /other --wait
if cmp -s "$IT_TMP/scope-b" "$buckets/other/scope-b" && [ ! -e "$buckets/demo/scope-a" ]; then
    ok "flush /other uploaded /other's file and not /demo's"
else
    fail "flush /other uploads /other's file only" "$(ls -l "$buckets/other" "$buckets/demo" | grep scope)"
fi
check "flush (everything, no --wait)" "$IT_ROOT/bin/bucketnfs" -c "$IT_TMP/w/bucketnfs.conf" flush
in_bucket "after a plain flush, /demo's file reaches the bucket" "$IT_TMP/scope-a" scope-a
check "flush scope: a file written after the flush" \
    "$OP" "nfs://127.0.0.1/demo?nfsport=$NFS_PORT&mountport=$MOUNT_PORT" put "$IT_TMP/scope-b" /scope-late
sleep 2
if [ -e "$buckets/demo/scope-late" ]; then
    fail "a file written after a flush waits its writeback_delay" "it was uploaded at once"
else
    ok "a file written after a flush waits its writeback_delay (not uploaded 2 s later)"
fi
it_stop w || fail "daemon stops" ""

# cache.dirty_max: a small stage, nothing uploaded (writeback_delay 3600).
# Past half of dirty_max the uploader starts at once (writeback.h): the
# store takes 3 s per request on these files, so the stage stays full
# while the test looks at JUKEBOX.
IT_ACCESS=rw IT_CACHE_SIZE=96M IT_CACHE_EXTRA='dirty_max = "8M";' \
    it_write_conf j "$buckets" 'latency_ms = 3000; latency_match = "jukebox";' \
    'writeback_delay = 3600;'
it_start j || { fail "daemon starts with dirty_max 8M" "see above"; it_done; exit 1; }
itw jukebox jukebox jukebox.bin "$IT_TMP/jukebox.expected" 32
if it_stop j; then ok "SIGTERM stops the daemon with its stage full"; else fail "SIGTERM stops the daemon with its stage full" "exit status"; fi
sed -i 's/writeback_delay = 3600;/writeback_delay = 0;/' "$IT_TMP/j/exports.conf"
it_start j || { fail "daemon restarts (writeback_delay 0)" "see above"; it_done; exit 1; }
if [ -s "$IT_TMP/jukebox.expected" ]; then
    in_bucket "every acknowledged byte of jukebox.bin ($(stat -c %s "$IT_TMP/jukebox.expected") bytes) reaches the bucket" \
        "$IT_TMP/jukebox.expected" jukebox.bin
else
    fail "every acknowledged byte of jukebox.bin reaches the bucket" "nothing was acknowledged"
fi
it_stop j || fail "daemon stops" ""

# A full cache disk: the cache folder is a 24 MiB tmpfs (mounting needs
# root; without it this part says so and counts as failed).  A write that
# does not fit answers NFS3ERR_NOSPC; what was written before stays intact.
if [ "$(id -u)" = 0 ] && mkdir -p "$IT_TMP/f/cache" && mount -t tmpfs -o size=24m tmpfs "$IT_TMP/f/cache"; then
    IT_ACCESS=rw IT_CACHE_SIZE=1G IT_CACHE_EXTRA='dirty_max = "256M";' \
        it_write_conf f "$buckets" "" 'writeback_delay = 3600;'
    if it_start f; then
        OP=$IT_BUILD/tests/it_nfsop
        url="nfs://127.0.0.1/demo?nfsport=$NFS_PORT&mountport=$MOUNT_PORT"
        head -c $((4 << 20)) /dev/urandom >"$IT_TMP/fits"
        head -c $((40 << 20)) /dev/urandom >"$IT_TMP/toobig"
        check "full disk: a 4 MiB file fits" "$OP" "$url" put "$IT_TMP/fits" /fits.bin
        # (libnfs's pwrite does not say which status it got: the daemon's counter does.)
        if "$OP" "$url" put "$IT_TMP/toobig" /toobig.bin >"$IT_TMP/nospc.out" 2>&1; then
            fail "full disk: a 40 MiB file on a 24 MiB cache disk fails" "it succeeded"
        else
            nospc=$("$IT_ROOT/bin/bucketnfs" -c "$IT_TMP/f/bucketnfs.conf" stats |
                    awk '$1 == "writeback" && $3 == "nospc" {print $4}')
            if [ "${nospc:-0}" -gt 0 ]; then
                ok "full disk: a 40 MiB file on a 24 MiB cache disk fails with NFS3ERR_NOSPC ($nospc refused)"
            else
                fail "full disk: the write fails with NFS3ERR_NOSPC" "nospc counter ${nospc:-none}; $(tail -2 "$IT_TMP/nospc.out")"
            fi
        fi
        check "full disk: the file written before reads back intact" \
            bash -c "nfs-cat 'nfs://127.0.0.1/demo/fits.bin?nfsport=$NFS_PORT&mountport=$MOUNT_PORT' | cmp - '$IT_TMP/fits'"
        check "full disk: removing the big file frees the space" "$OP" "$url" rm /toobig.bin
        check "full disk: writing works again" "$OP" "$url" put "$IT_TMP/fits" /fits2.bin
        it_stop f || fail "full disk: daemon stops" ""
    else
        fail "full disk: daemon starts on a 24 MiB tmpfs cache" "see above"
    fi
    umount "$IT_TMP/f/cache"
else
    fail "full disk: a 24 MiB tmpfs cache folder" "needs root to mount tmpfs"
fi

warnings=$(grep -hE 'bucketnfsd: (emerg|alert|crit|err|warning):' "$IT_TMP"/*/daemon.log | grep -v 'No space left\|ENOSPC\|NOSPC')
if [ -z "$warnings" ]; then ok "no warnings in the daemon logs"
else fail "no warnings in the daemon logs" "$(echo "$warnings" | head -5)"; fi
if grep -qi 'sanitizer\|runtime error' "$IT_TMP"/*/daemon.log; then
    fail "no sanitizer reports in the daemon logs" "$(grep -i -m3 'sanitizer\|runtime error' "$IT_TMP"/*/daemon.log)"
fi
it_done
