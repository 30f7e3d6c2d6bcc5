#!/usr/bin/env bash
# demo.sh - what `make run` promises, in private network, mount and PID
# namespaces (rpcbind's port 111 and /run are this test's own, and every
# process it starts dies with the namespace):
#   - tools/start-rpcbind.sh says why it cannot start rpcbind when not
#     root, starts it as root, and sees it running the second time;
#   - the shipped etc/bucketnfs.conf and etc/exports.conf, on their own
#     ports 2049 and 20048, register NFS and MOUNT with rpcbind;
#   - a client that names no port (libnfs asks rpcbind, as mount(8) does)
#     lists and reads the demo export, and, root not squashed, writes to it;
#     `bucketnfs flush --wait` puts the file in the bucket.
# Needs root and unshare.  Prints "N passed, N failed".
set -u
if [ "${1:-}" != --inside ]; then
    if [ "$(id -u)" != 0 ] || ! unshare --net --mount --pid --fork true 2>/dev/null; then
        echo "not ok - demo: needs root and unshare (private network, mount and PID namespaces)"
        echo "demo.sh: 0 passed, 1 failed"
        exit 1
    fi
    exec unshare --net --mount --pid --fork --mount-proc --propagation private bash "$0" --inside
fi
. "$(dirname "$0")/lib.sh"
it_setup
TOOL=$(dirname "$IT_BIN")/bucketnfs

ip link set lo up
# getaddrinfo(AI_ADDRCONFIG) resolves nothing on a host with loopback
# addresses only, and servers resolve their bind address with it.
ip addr add 10.255.255.1/32 dev lo
mount -t tmpfs -o mode=755 tmpfs /run

# ---- rpcbind
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$IT_ROOT/tools/start-rpcbind.sh" 2>&1); rc=$?
if [ $rc = 0 ] && [[ $out == *"only root can start it"*"port=2049,mountport=20048"* ]] &&
    ! rpcinfo -p 127.0.0.1 >/dev/null 2>&1; then ok "not root: rpcbind not started, and says how to mount without it"
else fail "not root: rpcbind not started, says why" "rc=$rc $out"; fi
out=$("$IT_ROOT/tools/start-rpcbind.sh" 2>&1); rc=$?
if [ $rc = 0 ] && [[ $out == "rpcbind: started"* ]] && rpcinfo -p 127.0.0.1 >/dev/null 2>&1; then ok "root: $out"
else fail "root: rpcbind started" "rc=$rc $out"; fi
out=$("$IT_ROOT/tools/start-rpcbind.sh" 2>&1)
if [ "$out" = "rpcbind: running" ]; then ok "a second time: rpcbind: running"; else fail "a second time: running" "$out"; fi

# ---- the shipped configuration, with the demo's folders under $IT_TMP and a smaller cache
D=$IT_TMP/demo
mkdir -p "$D/etc" "$D/var/buckets/demo/drive-0001"
cp "$IT_ROOT/etc/bucketnfs.conf" "$IT_ROOT/etc/exports.conf" "$D/etc/"
sed -i 's/size = "8G"/size = "256M"/' "$D/etc/bucketnfs.conf"
echo '{"drive": 1}' >"$D/var/buckets/demo/drive-0001/meta.json"
mkdir -p "$D/var/state" "$D/var/cache"
if grep -qE '^ *rpcbind = true;' "$D/etc/bucketnfs.conf" && grep -qE '^ *access = "rw";' "$D/etc/exports.conf"; then
    ok "the demo configuration has rpcbind = true and access = \"rw\""
else fail "the demo configuration has rpcbind = true and access = \"rw\"" "$(grep -E 'rpcbind|access' "$D/etc/"*.conf)"; fi
"$IT_BIN" -f -c "$D/etc/bucketnfs.conf" >"$D/daemon.log" 2>&1 &
for _ in $(seq 100); do [ -s "$D/var/state/bucketnfsd.ports" ] && break; sleep 0.1; done
rpcinfo -p 127.0.0.1 >"$IT_TMP/rpcinfo.out" 2>&1
if grep -qE '100003 +3 +tcp +2049 +nfs' "$IT_TMP/rpcinfo.out" && grep -qE '100005 +3 +tcp +20048 +mountd' "$IT_TMP/rpcinfo.out"; then
    ok "the demo registers NFS on 2049 and MOUNT on 20048 with rpcbind"
else fail "the demo registers with rpcbind" "$(cat "$IT_TMP/rpcinfo.out"; tail -5 "$D/daemon.log")"; fi

# ---- a client that names no port
nfs_tool nfs-ls nfs://127.0.0.1/demo/drive-0001 >"$IT_TMP/ls.out" 2>&1
nfs_tool nfs-cat nfs://127.0.0.1/demo/drive-0001/meta.json >"$IT_TMP/cat.out" 2>&1
if grep -q meta.json "$IT_TMP/ls.out" && cmp -s "$IT_TMP/cat.out" "$D/var/buckets/demo/drive-0001/meta.json"; then
    ok "without ports: the client finds the demo through rpcbind, lists and reads"
else fail "without ports: list and read" "$(cat "$IT_TMP/ls.out" "$IT_TMP/cat.out")"; fi
head -c 300000 /dev/urandom >"$IT_TMP/up.bin"
nfs_tool nfs-cp "$IT_TMP/up.bin" nfs://127.0.0.1/demo/drive-0001/up.bin >"$IT_TMP/cp.out" 2>&1; rc=$?
"$TOOL" -c "$D/etc/bucketnfs.conf" flush /demo --wait >"$IT_TMP/flush.out" 2>&1; frc=$?
if [ $rc = 0 ] && [ $frc = 0 ] && cmp -s "$IT_TMP/up.bin" "$D/var/buckets/demo/drive-0001/up.bin"; then
    ok "root writes to the demo, and after flush --wait the file is in the bucket"
else fail "root writes to the demo" "cp rc=$rc flush rc=$frc $(cat "$IT_TMP/cp.out" "$IT_TMP/flush.out")"; fi
it_done
