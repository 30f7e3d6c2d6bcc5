#!/usr/bin/env bash
# rename-touch.sh - a file made under a directory's new name right after its
# RENAME, while its 300 files move in the background: how long the PUT
# (LOOKUP, CREATE, WRITE, COMMIT) and a MKDIR take, and how long until every
# object has moved (dir store, 30 ms per request on keys under "tree").
#   IT_BIN=build/bin/bucketnfsd IT_BUILD=build bash bench/rename-touch.sh
# (the integration tests' harness: servers on 127.0.0.1, bounded waits).
set -u
. "$(dirname "$0")/../tests/integration/lib.sh"
TOOL=$IT_ROOT/bin/bucketnfs
OP=$IT_BUILD/tests/it_nfsop
it_setup
root=$IT_TMP/buckets
mkdir -p "$root/demo"
it_write_conf w "$root"
conf=$IT_TMP/w/bucketnfs.conf
cat >"$IT_TMP/w/exports.conf" <<CONF
exports = ( { path = "/demo"; store = "local"; bucket = "demo"; prefix = "";
              access = "rw"; clients = ( "127.0.0.0/8" ); squash = "none";
              writeback_delay = 3600; } );
CONF
sed -i 's|type = "dir"; root = "\([^"]*\)";|type = "dir"; root = "\1"; latency_ms = 30; latency_match = "tree";|' "$conf"
it_start w || exit 1
url="nfs://127.0.0.1/demo?nfsport=$NFS_PORT&mountport=$MOUNT_PORT"
"$OP" "$url" mkdir /tree >/dev/null
for d in 0 1 2; do
    "$OP" "$url" mkdir /tree/d$d >/dev/null
    for i in $(seq 1 100); do echo "f $d $i" >"$IT_TMP/x"; "$OP" "$url" put "$IT_TMP/x" "/tree/d$d/f$i" >/dev/null; done
done
timeout 300 "$TOOL" -c "$conf" flush --wait >/dev/null
t0=$(date +%s.%N); "$OP" "$url" mv /tree /tree2 >/dev/null; t1=$(date +%s.%N)
echo "new" >"$IT_TMP/y"
"$OP" "$url" put "$IT_TMP/y" /tree2/d1/newfile >/dev/null; t2=$(date +%s.%N)
"$OP" "$url" mkdir /tree2/newdir >/dev/null; t3=$(date +%s.%N)
left=$(find "$root/demo/tree" -type f 2>/dev/null | wc -l)
timeout 300 "$TOOL" -c "$conf" flush --wait >/dev/null; t4=$(date +%s.%N)
old=$(find "$root/demo/tree" -type f 2>/dev/null | wc -l); new=$(find "$root/demo/tree2" -type f | wc -l)
awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" -v e="$t4" -v l="$left" -v o="$old" -v n="$new" 'BEGIN {
  printf "rename answered %.3f s; put under the new name %.3f s; mkdir %.3f s (%d files still at the old name then); all moved %.2f s after the rename; after: old %d files, new %d\n", b-a, c-b, d-c, l, e-a, o, n }'
it_stop w
it_done
