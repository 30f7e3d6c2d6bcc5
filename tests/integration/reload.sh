#!/usr/bin/env bash
# reload.sh - live exports: `bucketnfs reload` and SIGHUP add, remove and
# change exports under mounted libnfs clients (reload.py), and a broken
# exports file keeps the running exports.  Prints "N passed, N failed".
set -u
. "$(dirname "$0")/lib.sh"
it_setup

TOOL=${IT_TOOL:-$(dirname "$IT_BIN")/bucketnfs}
buckets=$IT_TMP/buckets
for b in keep gone change; do
    mkdir -p "$buckets/$b"
    echo "hello from $b" >"$buckets/$b/hello.txt"
    echo "scratch of $b" >"$buckets/$b/scratch.txt"
done
it_write_conf rl "$buckets"
conf=$IT_TMP/rl/bucketnfs.conf
exports=$IT_TMP/rl/exports.conf
entry() { echo "  { path = \"$1\"; store = \"local\"; bucket = \"$2\"; access = \"$3\"; clients = ( \"127.0.0.0/8\" ); squash = \"none\"; }"; }
printf 'exports = (\n%s,\n%s,\n%s\n);\n' "$(entry /keep keep ro)" "$(entry /gone gone ro)" \
    "$(entry /change change rw)" >"$exports"
it_start rl || { fail "daemon starts" "see above"; it_done; exit 1; }
ok "daemon starts with /keep, /gone, /change"

it_sub reload python3 "$IT_ROOT/tests/integration/reload.py" "$IT_BUILD/tests/it_nfsop" "$TOOL" \
    "$conf" "$exports" "$NFS_PORT" "$MOUNT_PORT"
if grep -q "exports not reloaded, the old ones stay: .*exports.conf:" "$IT_TMP/rl/daemon.log"; then
    ok "the broken reload is logged with file:line"
else fail "the broken reload is logged with file:line" "$(grep -i reload "$IT_TMP/rl/daemon.log" | tail -3)"; fi

# SIGHUP does the same as `bucketnfs reload`: /gone comes back for a new mount.
printf 'exports = (\n%s,\n%s\n);\n' "$(entry /keep keep ro)" "$(entry /gone gone ro)" >"$exports"
kill -HUP "${IT_PIDS[rl]}"
for _ in $(seq 50); do
    grep -q "SIGHUP: 2 export(s) loaded" "$IT_TMP/rl/daemon.log" && break
    sleep 0.1
done
if nfs_tool nfs-cat "nfs://127.0.0.1/gone/hello.txt?nfsport=$NFS_PORT&mountport=$MOUNT_PORT" 2>&1 |
    grep -q "hello from gone" &&
    ! nfs_tool nfs-ls "nfs://127.0.0.1/change/?nfsport=$NFS_PORT&mountport=$MOUNT_PORT" >/dev/null 2>&1; then
    ok "SIGHUP: an export added back is served, one removed is not"
else fail "SIGHUP applies the exports file" "$(tail -3 "$IT_TMP/rl/daemon.log")"; fi

if it_stop rl; then ok "SIGTERM stops the daemon cleanly"; else fail "SIGTERM stops the daemon cleanly" "exit status"; fi
it_done
