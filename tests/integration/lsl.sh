#!/usr/bin/env bash
# lsl.sh - store requests for `ls -l` of a directory of foreign objects
# (READDIRPLUS, then LOOKUP + GETATTR of every entry, through libnfs:
# it_lsl), by export option, counted from the dir store's own counters
# (bucketnfs stats --json).  The store lists like S3 (list_posix = false:
# no POSIX metadata in listings), so without help every file needs a HEAD.
#   posix_metadata = "own"     no HEAD; LIST pages + a constant
#   posix_metadata = "any"     one HEAD per file, several in flight at once
#   consistency = "immutable"  a second `ls -l`, and one after a restart: no request
# LSL_N (default 2000) sets the number of objects.  Prints "N passed, N failed".
set -u
. "$(dirname "$0")/lib.sh"
it_setup

N=${LSL_N:-2000}
TOOL=${IT_TOOL:-$(dirname "$IT_BIN")/bucketnfs}
LSL=$IT_BUILD/tests/it_lsl
buckets=$IT_TMP/buckets
mkdir -p "$buckets/demo/frames"
python3 - "$buckets/demo/frames" "$N" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    open(os.path.join(d, "frame%07d.jpg" % i), "w").close()
PY

jget() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
stats() { "$TOOL" -c "$IT_TMP/$1/bucketnfs.conf" stats --json >"$IT_TMP/$2.json"; }
# delta NAME A B FIELD: B's minus A's store counter FIELD (NAME: for symmetry with stats)
delta() { echo $(( $(jget "$IT_TMP/$3.json" "d['stores']['local']['$4']") - $(jget "$IT_TMP/$2.json" "d['stores']['local']['$4']") )); }
url() { echo "nfs://127.0.0.1/demo?nfsport=$NFS_PORT&mountport=$MOUNT_PORT"; }
pages=$(( (N + 999) / 1000 ))
# lsl NAME A B EXPECT [MODE]: `ls -l` /frames on daemon NAME between stats A and B;
# sets lists and heads to the store requests it cost.
lsl() {
    stats "$1" "$2"
    it_sub "lsl-$3" nfs_tool "$LSL" "$(url)" /frames "${@:4}"
    stats "$1" "$3"
    lists=$(delta "$1" "$2" "$3" lists); heads=$(delta "$1" "$2" "$3" heads)
}

# ---- posix_metadata = "own": no HEAD at all
it_write_conf own "$buckets" 'list_posix = false;' \
    'posix_metadata = "own"; file_mode = "0640"; metadata_ttl = 3600;'
it_start own || { fail "daemon starts" "see above"; it_done; exit 1; }
lsl own a0 a1 "$N" 0640
echo "# posix_metadata own: ls -l of $N foreign objects: $lists LIST, $heads HEAD ($pages pages)"
if [ "$heads" -le 2 ] && [ "$lists" -le $((pages + 2)) ]; then
    ok "posix_metadata own: LIST pages + a constant ($lists LIST, $heads HEAD)"
else fail "posix_metadata own: LIST pages + a constant" "$lists LIST, $heads HEAD for $N objects"; fi
it_stop own

# ---- posix_metadata = "any": a HEAD per file, in parallel (2 ms each)
it_write_conf any "$buckets" 'list_posix = false; latency_ms = 2; latency_match = "frames/f";' \
    'metadata_ttl = 3600;'
it_start any || { fail "daemon starts" "see above"; it_done; exit 1; }
lsl any b0 b1 "$N" 0644
inflight=$(jget "$IT_TMP/b1.json" "d['inode']['heads_ahead_max_inflight']")
ahead=$(jget "$IT_TMP/b1.json" "d['inode']['heads_ahead']")
echo "# posix_metadata any: ls -l of $N foreign objects: $lists LIST, $heads HEAD ($ahead ahead of READDIRPLUS, at most $inflight in flight)"
if [ "$heads" -ge "$N" ] && [ "$heads" -le $((N + 2)) ] && [ "$ahead" -ge "$N" ]; then
    ok "posix_metadata any: one HEAD per file, ahead of READDIRPLUS"
else fail "posix_metadata any: one HEAD per file, ahead of READDIRPLUS" "$heads HEAD, $ahead ahead"; fi
if [ "$inflight" -gt 1 ] && [ "$inflight" -le 16 ]; then ok "HEADs in parallel: at most $inflight in flight"
else fail "HEADs in parallel" "at most $inflight in flight"; fi
it_stop any

# ---- consistency = "immutable": after the first pass, nothing
it_write_conf imm "$buckets" 'list_posix = false;' 'consistency = "immutable"; metadata_ttl = 0;'
it_start imm || { fail "daemon starts" "see above"; it_done; exit 1; }
it_sub lsl-imm1 nfs_tool "$LSL" "$(url)" /frames "$N"
lsl imm c0 c1 "$N"
if [ "$lists" = 0 ] && [ "$heads" = 0 ]; then ok "immutable: second ls -l makes no store request"
else fail "immutable: second ls -l makes no store request" "$lists LIST, $heads HEAD"; fi
it_stop imm
it_start imm || { fail "daemon restarts" "see above"; it_done; exit 1; }
lsl imm c2 c3 "$N"
if [ "$lists" = 0 ] && [ "$heads" = 0 ]; then ok "immutable: after a restart, ls -l makes no store request"
else fail "immutable: after a restart, ls -l makes no store request" "$lists LIST, $heads HEAD"; fi
# bucketnfs refresh still lists it again.
touch "$buckets/demo/frames/zz-new.jpg"
"$TOOL" -c "$IT_TMP/imm/bucketnfs.conf" refresh /demo /frames >"$IT_TMP/refresh.out" 2>&1
it_sub lsl-imm4 nfs_tool "$LSL" "$(url)" /frames "$((N + 1))"
it_stop imm

it_done
