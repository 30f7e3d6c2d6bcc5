#!/usr/bin/env bash
# core.sh - the core server end to end: the real daemon on free ports on
# 127.0.0.1, a dir-store bucket seeded with a 3-level tree, and real
# clients (libnfs's API and its nfs-ls / nfs-cat tools, a libtirpc client,
# raw sockets).  Prints "N passed, N failed".
set -u
. "$(dirname "$0")/lib.sh"
it_setup

buckets=$IT_TMP/buckets
"$IT_ROOT/tools/seed-demo.sh" "$buckets/demo" test >/dev/null
# Latency on one key only: the head-of-line test reads it beside a fast one.
it_write_conf core "$buckets" 'latency_ms = 2500; latency_match = "slow-object";'
it_start core || { fail "daemon starts" "see above"; it_done; exit 1; }
ok "daemon starts on free ports ($NFS_PORT, $MOUNT_PORT)"
url="nfs://127.0.0.1/demo?nfsport=$NFS_PORT&mountport=$MOUNT_PORT"

"$IT_BUILD/tests/it_core" "$url" "$buckets/demo" slow-object.bin fast-object.bin \
    >"$IT_TMP/it_core.out" 2>&1
rc=$?
grep '^#' "$IT_TMP/it_core.out"
if [ $rc = 0 ]; then ok "libnfs: tree, stat, contents, EOF, missing names, no head-of-line blocking"
else fail "libnfs: tree, stat, contents, EOF, missing names, no head-of-line blocking" "$(grep -v '^#' "$IT_TMP/it_core.out" | tail -15)"; fi

"$IT_BUILD/tests/it_handles" "$NFS_PORT" "$MOUNT_PORT" check >"$IT_TMP/it_handles.out" 2>&1
rc=$?
grep '^#' "$IT_TMP/it_handles.out"
if [ $rc = 0 ]; then ok "libtirpc client: MNT, EXPORT, forged handles, LOOKUP errors, READDIR paging, ROFS"
else fail "libtirpc client: MNT, EXPORT, forged handles, LOOKUP errors, READDIR paging, ROFS" "$(grep -v '^#' "$IT_TMP/it_handles.out" | tail -15)"; fi

# The libnfs command-line tools, as an operator would use them.
if command -v nfs-ls >/dev/null; then
    nfs_tool nfs-ls "$url" >"$IT_TMP/ls.out" 2>&1
    if grep -q 'drive-0001' "$IT_TMP/ls.out" && grep -q 'one-byte' "$IT_TMP/ls.out"; then ok "nfs-ls lists the export"
    else fail "nfs-ls lists the export" "$(head -5 "$IT_TMP/ls.out")"; fi
    nfs_tool nfs-cat "nfs://127.0.0.1/demo/drive-0002/meta.json?nfsport=$NFS_PORT&mountport=$MOUNT_PORT" >"$IT_TMP/cat.out" 2>&1
    if cmp -s "$IT_TMP/cat.out" "$buckets/demo/drive-0002/meta.json"; then ok "nfs-cat reads a file"
    else fail "nfs-cat reads a file" "$(head -3 "$IT_TMP/cat.out")"; fi
    nfs_tool nfs-cp "nfs://127.0.0.1/demo/drive-0001/lidar/sweeps.bin?nfsport=$NFS_PORT&mountport=$MOUNT_PORT" "$IT_TMP/sweeps.bin" >/dev/null 2>&1
    if cmp -s "$IT_TMP/sweeps.bin" "$buckets/demo/drive-0001/lidar/sweeps.bin"; then ok "nfs-cp copies a 5 MB log byte-identical"
    else fail "nfs-cp copies a 5 MB log byte-identical" "differs"; fi
else
    fail "libnfs-utils installed" "nfs-ls missing"
fi

python3 "$IT_ROOT/tests/integration/badrpc.py" "$NFS_PORT" >"$IT_TMP/badrpc.out" 2>&1
rc=$?
if [ $rc = 0 ]; then ok "malformed RPC input: right errors, server keeps serving"
else fail "malformed RPC input: right errors, server keeps serving" "$(grep 'not ok' "$IT_TMP/badrpc.out" | head -10)"; fi

# Handles survive a restart.
"$IT_BUILD/tests/it_handles" "$NFS_PORT" "$MOUNT_PORT" save "$IT_TMP/handles" \
    . a a/b a/b/c/leaf.txt drive-0001/camera/front/frame_07.jpg latest-meta >"$IT_TMP/save.out" 2>&1 \
    || fail "handles saved" "$(tail -5 "$IT_TMP/save.out")"
if it_stop core; then ok "SIGTERM stops the daemon cleanly"; else fail "SIGTERM stops the daemon cleanly" "exit status"; fi
it_start core || fail "daemon restarts" ""
url="nfs://127.0.0.1/demo?nfsport=$NFS_PORT&mountport=$MOUNT_PORT" # new ports
"$IT_BUILD/tests/it_handles" "$NFS_PORT" "$MOUNT_PORT" verify "$IT_TMP/handles" >"$IT_TMP/verify.out" 2>&1
if [ $? = 0 ]; then ok "every handle a client held is valid after a restart"
else fail "every handle a client held is valid after a restart" "$(tail -5 "$IT_TMP/verify.out")"; fi

# SIGHUP: a new export appears; a broken exports file keeps the old ones.
cp "$IT_TMP/core/exports.conf" "$IT_TMP/exports.good"
cat >>"$IT_TMP/core/exports.conf" <<'CONF'
CONF
sed -i 's|^exports = (|exports = ( { path = "/frames"; store = "local"; bucket = "demo"; prefix = "drive-0001/camera/"; access = "ro"; clients = ( "127.0.0.1" ); },|' "$IT_TMP/core/exports.conf"
kill -HUP "${IT_PIDS[core]}"; sleep 0.5
nfs_tool nfs-ls "nfs://127.0.0.1/frames/front?nfsport=$NFS_PORT&mountport=$MOUNT_PORT" >"$IT_TMP/ls2.out" 2>&1
if grep -q frame_01.jpg "$IT_TMP/ls2.out"; then ok "SIGHUP adds an export (with a prefix)"
else fail "SIGHUP adds an export (with a prefix)" "$(head -3 "$IT_TMP/ls2.out"; tail -3 "$IT_TMP/core/daemon.log")"; fi
echo 'exports = ( { path = "/broken"; store = "nope"; } );' >"$IT_TMP/core/exports.conf"
kill -HUP "${IT_PIDS[core]}"; sleep 0.5
if grep -q "exports not reloaded" "$IT_TMP/core/daemon.log" && nfs_tool nfs-ls "$url" >"$IT_TMP/ls3.out" 2>&1; then
    ok "SIGHUP with a broken exports file: logged, old exports keep serving"
else fail "SIGHUP with a broken exports file: logged, old exports keep serving" "$(cat "$IT_TMP/ls3.out"; tail -3 "$IT_TMP/core/daemon.log")"; fi
cp "$IT_TMP/exports.good" "$IT_TMP/core/exports.conf"

# bucketnfsd -t: valid and broken configurations.
out=$("$IT_BIN" -t -c "$IT_TMP/core/bucketnfs.conf" 2>&1)
if [ $? = 0 ]; then ok "bucketnfsd -t accepts a valid configuration"; else fail "bucketnfsd -t accepts a valid configuration" "$out"; fi
sed 's/threads = 8;/threads = 8; colour = "blue";/' "$IT_TMP/core/bucketnfs.conf" >"$IT_TMP/core/broken.conf"
out=$("$IT_BIN" -t -c "$IT_TMP/core/broken.conf" 2>&1); rc=$?
if [ $rc = 1 ] && echo "$out" | grep -q 'broken.conf:[0-9]*:.*colour'; then ok "bucketnfsd -t names file:line of an unknown key"
else fail "bucketnfsd -t names file:line of an unknown key" "rc=$rc $out"; fi

it_stop core || fail "daemon stops" ""

# Stale handles: an object deleted in the bucket behind the server.
it_write_conf ttl "$buckets" "" 'metadata_ttl = 1;'
it_start ttl || fail "second daemon starts" ""
"$IT_BUILD/tests/it_handles" "$NFS_PORT" "$MOUNT_PORT" save "$IT_TMP/gone" page.bin a/b/mid.txt >/dev/null 2>&1
rm -f "$buckets/demo/page.bin" "$buckets/demo/a/b/mid.txt"
sleep 1.5
"$IT_BUILD/tests/it_handles" "$NFS_PORT" "$MOUNT_PORT" stale "$IT_TMP/gone" >"$IT_TMP/stale.out" 2>&1
if [ $? = 0 ]; then ok "handles of objects deleted in the bucket are NFS3ERR_STALE after the TTL"
else fail "handles of objects deleted in the bucket are NFS3ERR_STALE after the TTL" "$(tail -5 "$IT_TMP/stale.out")"; fi
it_stop ttl || fail "second daemon stops" ""
if grep -qi 'sanitizer\|runtime error' "$IT_TMP"/*/daemon.log; then
    fail "no sanitizer reports in the daemon logs" "$(grep -i -m3 'sanitizer\|runtime error' "$IT_TMP"/*/daemon.log)"
fi
it_done
