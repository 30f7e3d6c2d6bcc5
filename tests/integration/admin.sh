#!/usr/bin/env bash
# admin.sh - the admin tool (bin/bucketnfs) and the Prometheus endpoint
# against the real daemon on free ports: counters that move as a reader
# would expect, status, pin/unpin, evict, refresh, reload, preload (progress bar
# under a pseudo-terminal, JSON lines, Ctrl-C), the not-running error, a
# malformed request, /metrics parsed by prometheus_client's own parser,
# and the Grafana dashboard in etc/ querying only metrics /metrics has.
# Clients and mounts (admin_clients.py: MNT and UMNT, a connected client),
# the mount list kept across a restart, and the health of a store made to
# fail (a dir store with fail_rate = 1 behind the export /flaky).
# Prints "N passed, N failed".
set -u
. "$(dirname "$0")/lib.sh"
it_setup

TOOL=${IT_TOOL:-$(dirname "$IT_BIN")/bucketnfs}
buckets=$IT_TMP/buckets
"$IT_ROOT/tools/seed-demo.sh" "$buckets/demo" test >/dev/null
# A tree whose every request waits 300 ms: a preload of it is slow enough to interrupt.
mkdir -p "$buckets/demo/slowtree"
for i in $(seq -w 1 12); do head -c 200000 /dev/urandom >"$buckets/demo/slowtree/f$i.bin"; done
# 1,000 files of 32 KiB (one folder): a preload of them shows its progress and leaves them cached.
python3 - "$buckets/demo/thousand" <<'PY'
import os, sys
os.makedirs(sys.argv[1])
for i in range(1000):
    with open(os.path.join(sys.argv[1], "f%04d.bin" % i), "wb") as f:
        f.write(os.urandom(32768))
PY
it_write_conf admin "$buckets" 'latency_ms = 300; latency_match = "slowtree/";'
conf=$IT_TMP/admin/bucketnfs.conf
sed -i 's|log_level = "info"; };|log_level = "info"; metrics = "127.0.0.1:0"; };|' "$conf"
# A second store whose every call fails, behind its own export.
sed -i "s|^stores = ( \(.*\) );\$|stores = ( \1, { name = \"flaky\"; type = \"dir\"; root = \"$buckets\"; fail_rate = 1.0; } );|" "$conf"
sed -i 's|^exports = (|exports = ( { path = "/flaky"; store = "flaky"; bucket = "demo"; access = "ro"; clients = ( "127.0.0.0/8" ); },|' \
    "$IT_TMP/admin/exports.conf"
bnfs() { "$TOOL" -c "$conf" "$@"; }
# Debian's python3 (python3-prometheus-client is a Debian package), not a pyenv or venv one.
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3

# jget FILE EXPR: a value of the JSON in FILE (EXPR indexes `d`).
jget() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
stats() { bnfs stats --json >"$IT_TMP/$1.json"; }

# ---- before the daemon runs
"$TOOL" --help >"$IT_TMP/help.out" 2>&1; rc=$?
if [ $rc = 0 ] && grep -q 'preload' "$IT_TMP/help.out" && grep -q 'Exit codes' "$IT_TMP/help.out"; then
    ok "bucketnfs --help"; else fail "bucketnfs --help" "rc=$rc"; fi
"$IT_BIN" --help >"$IT_TMP/dhelp.out" 2>&1; rc=$?
if [ $rc = 0 ] && grep -q 'usage: bucketnfsd' "$IT_TMP/dhelp.out"; then ok "bucketnfsd --help"
else fail "bucketnfsd --help" "rc=$rc"; fi
bnfs status >"$IT_TMP/nr.out" 2>&1; rc=$?
if [ $rc = 3 ] && grep -q 'the daemon is not running (no socket at .*bucketnfsd.sock)' "$IT_TMP/nr.out"; then
    ok "not running: exit 3 and a clear message"; else fail "not running: exit 3 and a clear message" "rc=$rc $(cat "$IT_TMP/nr.out")"; fi
"$TOOL" -s "$IT_TMP/x.sock" bogus >"$IT_TMP/usage2.out" 2>&1; rc2=$?
if [ $rc2 = 2 ] && grep -q 'unknown command' "$IT_TMP/usage2.out"; then ok "unknown command: exit 2"
else fail "unknown command: exit 2" "rc=$rc2"; fi

it_start admin || { fail "daemon starts" "see above"; it_done; exit 1; }
ok "daemon starts with the admin socket and metrics"
METRICS_PORT=$(sed -n 's/^metrics_port=//p' "$IT_TMP/admin/state/bucketnfsd.ports")
sock=$IT_TMP/admin/state/bucketnfsd.sock
url() { echo "nfs://127.0.0.1/demo/$1?nfsport=$NFS_PORT&mountport=$MOUNT_PORT"; }

mode=$(stat -c %a "$sock" 2>/dev/null)
if [ "$mode" = 600 ]; then ok "admin socket is mode 0600"; else fail "admin socket is mode 0600" "mode $mode"; fi

# ---- stats move as a reader expects
stats s0
if [ "$(jget "$IT_TMP/s0.json" 'd["cache"]["gets"]')" = 0 ]; then ok "stats --json parses; no GETs before any read"
else fail "stats --json parses; no GETs before any read" "$(head -c 300 "$IT_TMP/s0.json")"; fi
nfs_tool nfs-cat "$(url drive-0002/meta.json)" >"$IT_TMP/m1" 2>&1
stats s1
g1=$(jget "$IT_TMP/s1.json" 'd["cache"]["gets"]')
r1=$(jget "$IT_TMP/s1.json" 'd["nfs3"]["READ"]')
sg1=$(jget "$IT_TMP/s1.json" 'd["stores"]["local"]["gets"]')
if cmp -s "$IT_TMP/m1" "$buckets/demo/drive-0002/meta.json" && [ "$g1" -gt 0 ] && [ "$r1" -gt 0 ] && [ "$sg1" -gt 0 ]; then
    ok "a cold read: cache gets $g1, store gets $sg1, NFS READs $r1"
else fail "a cold read moves the counters" "gets=$g1 READ=$r1 store gets=$sg1"; fi
nfs_tool nfs-cat "$(url drive-0002/meta.json)" >/dev/null 2>&1
stats s2
g2=$(jget "$IT_TMP/s2.json" 'd["cache"]["gets"]')
h1=$(jget "$IT_TMP/s1.json" 'd["cache"]["hits"]'); h2=$(jget "$IT_TMP/s2.json" 'd["cache"]["hits"]')
eh2=$(jget "$IT_TMP/s2.json" '[e for e in d["exports"] if e["path"] == "/demo"][0]["cache"]["hits"]')
if [ "$g2" = "$g1" ] && [ "$h2" -gt "$h1" ] && [ "$eh2" -gt 0 ]; then
    ok "a re-read: hits $h1 -> $h2 (export /demo: $eh2), gets stay $g2"
else fail "a re-read: more hits, no more gets" "hits $h1 -> $h2, gets $g1 -> $g2, export hits $eh2"; fi

ok2=$(jget "$IT_TMP/s2.json" 'd["nfs3_status"]["NFS3_OK"]'); wbf=$(jget "$IT_TMP/s2.json" 'd["writeback"]["dirty_files"]')
if [ "$ok2" -gt 0 ] 2>/dev/null && [ "$wbf" = 0 ]; then ok "stats --json: replies by status (NFS3_OK $ok2) and write-back (dirty files $wbf)"
else fail "stats --json: nfs3_status and writeback" "NFS3_OK=$ok2 dirty_files=$wbf"; fi

# ---- status
bnfs status >"$IT_TMP/status.out" 2>&1; rc=$?
if [ $rc = 0 ] && grep -qE '^/demo +local +demo ' "$IT_TMP/status.out" && grep -q 'hit ratio' "$IT_TMP/status.out" &&
    grep -qE '^local +dir ' "$IT_TMP/status.out" && grep -q 'connections open' "$IT_TMP/status.out" &&
    grep -q 'READ ' "$IT_TMP/status.out"; then
    ok "status: exports, cache, store, RPC tables"
else fail "status: exports, cache, store, RPC tables" "rc=$rc $(cat "$IT_TMP/status.out")"; fi
# ---- clients and mounts
it_sub clients $PY "$IT_ROOT/tests/integration/admin_clients.py" "$TOOL" "$conf" "$NFS_PORT" \
    "$MOUNT_PORT" "$METRICS_PORT"
bnfs stats >"$IT_TMP/plain.out" 2>&1
if grep -qE '^cache +total +hits +[0-9]+' "$IT_TMP/plain.out" && grep -qE '^nfs3 +- +READ ' "$IT_TMP/plain.out"; then
    ok "stats: one counter a line"; else fail "stats: one counter a line" "$(head -3 "$IT_TMP/plain.out")"; fi

# ---- pin / unpin
bnfs pin /demo drive-0002/meta.json a >"$IT_TMP/pin.out" 2>&1; rc=$?
if [ $rc = 0 ] && grep -q 'pinned 1 file(s) under drive-0002/meta.json' "$IT_TMP/pin.out" &&
    grep -q 'pinned 2 file(s) under a' "$IT_TMP/pin.out"; then ok "pin a file and a tree"
else fail "pin a file and a tree" "rc=$rc $(cat "$IT_TMP/pin.out")"; fi
bnfs unpin /demo drive-0002/meta.json >"$IT_TMP/unpin.out" 2>&1; rc=$?
if [ $rc = 0 ] && grep -q 'unpinned 1 file' "$IT_TMP/unpin.out"; then ok "unpin a file"
else fail "unpin a file" "rc=$rc $(cat "$IT_TMP/unpin.out")"; fi
bnfs pin /demo no/such/file >"$IT_TMP/pin2.out" 2>&1; rc=$?
if [ $rc = 1 ] && grep -q 'no/such/file: No such file' "$IT_TMP/pin2.out"; then ok "pin of a missing path: exit 1, says why"
else fail "pin of a missing path: exit 1, says why" "rc=$rc $(cat "$IT_TMP/pin2.out")"; fi
bnfs pin /nope x >"$IT_TMP/pin3.out" 2>&1; rc=$?
if [ $rc = 1 ] && grep -q 'no export /nope' "$IT_TMP/pin3.out"; then ok "unknown export: exit 1"
else fail "unknown export: exit 1" "rc=$rc $(cat "$IT_TMP/pin3.out")"; fi

# ---- preload, then reading makes no store GETs
bnfs preload /demo drive-0001 mib-plus-one.bin >"$IT_TMP/pre.out" 2>&1; rc=$?
if [ $rc = 0 ] && grep -q 'preloaded 44 file(s)' "$IT_TMP/pre.out"; then ok "preload a tree and a file (plain output)"
else fail "preload a tree and a file (plain output)" "rc=$rc $(cat "$IT_TMP/pre.out")"; fi
stats s3
nfs_tool nfs-cp "$(url drive-0001/lidar/sweeps.bin)" "$IT_TMP/sweeps.bin" >/dev/null 2>&1
nfs_tool nfs-cp "$(url drive-0001/can/bus0.log)" "$IT_TMP/bus0.log" >/dev/null 2>&1
nfs_tool nfs-cat "$(url drive-0001/camera/front/frame_07.jpg)" >"$IT_TMP/f7" 2>&1
nfs_tool nfs-cat "$(url mib-plus-one.bin)" >"$IT_TMP/mpo" 2>&1
stats s4
sgA=$(jget "$IT_TMP/s3.json" 'd["stores"]["local"]["gets"]'); sgB=$(jget "$IT_TMP/s4.json" 'd["stores"]["local"]["gets"]')
cgA=$(jget "$IT_TMP/s3.json" 'd["cache"]["gets"]'); cgB=$(jget "$IT_TMP/s4.json" 'd["cache"]["gets"]')
if cmp -s "$IT_TMP/sweeps.bin" "$buckets/demo/drive-0001/lidar/sweeps.bin" &&
    cmp -s "$IT_TMP/bus0.log" "$buckets/demo/drive-0001/can/bus0.log" &&
    cmp -s "$IT_TMP/f7" "$buckets/demo/drive-0001/camera/front/frame_07.jpg" &&
    cmp -s "$IT_TMP/mpo" "$buckets/demo/mib-plus-one.bin" && [ "$sgA" = "$sgB" ] && [ "$cgA" = "$cgB" ]; then
    ok "after preload, reading the files makes no store GET (store gets $sgA, cache gets $cgA)"
else fail "after preload, reading the files makes no store GET" "store gets $sgA -> $sgB, cache gets $cgA -> $cgB"; fi

# ---- evict: the files' blocks go, the next read is a cache miss; others stay cached
bnfs evict /demo drive-0001/lidar/sweeps.bin drive-0001/camera >"$IT_TMP/ev.out" 2>&1; rc=$?
if [ $rc = 0 ] && grep -q 'evicted 1 file(s), .* under drive-0001/lidar/sweeps.bin' "$IT_TMP/ev.out" &&
    grep -qE 'evicted [1-9][0-9]* file\(s\), .* under drive-0001/camera' "$IT_TMP/ev.out"; then
    ok "evict a file and a tree: $(tr '\n' ';' <"$IT_TMP/ev.out")"
else fail "evict a file and a tree" "rc=$rc $(cat "$IT_TMP/ev.out")"; fi
stats e1
nfs_tool nfs-cp "$(url drive-0001/can/bus0.log)" "$IT_TMP/bus0.log" >/dev/null 2>&1
stats e2
nfs_tool nfs-cp "$(url drive-0001/lidar/sweeps.bin)" "$IT_TMP/sweeps2.bin" >/dev/null 2>&1
nfs_tool nfs-cat "$(url drive-0001/camera/front/frame_07.jpg)" >"$IT_TMP/f7b" 2>&1
stats e3
sg1=$(jget "$IT_TMP/e1.json" 'd["stores"]["local"]["gets"]'); sg2=$(jget "$IT_TMP/e2.json" 'd["stores"]["local"]["gets"]')
sg3=$(jget "$IT_TMP/e3.json" 'd["stores"]["local"]["gets"]')
m2=$(jget "$IT_TMP/e2.json" 'd["cache"]["misses"]'); m3=$(jget "$IT_TMP/e3.json" 'd["cache"]["misses"]')
dr=$(jget "$IT_TMP/e1.json" 'd["cache"]["dropped"]')
if [ "$sg2" = "$sg1" ] && [ "$sg3" -gt "$sg2" ] && [ "$m3" -gt "$m2" ] && [ "$dr" -gt 0 ] &&
    cmp -s "$IT_TMP/sweeps2.bin" "$buckets/demo/drive-0001/lidar/sweeps.bin" &&
    cmp -s "$IT_TMP/f7b" "$buckets/demo/drive-0001/camera/front/frame_07.jpg"; then
    ok "after evict the evicted files are fetched again (store gets $sg2 -> $sg3, misses $m2 -> $m3), the others are not ($dr blocks dropped)"
else fail "after evict the next read is a miss" "store gets $sg1 -> $sg2 -> $sg3, misses $m2 -> $m3, dropped $dr"; fi
# a/ holds 2 files pinned above: kept, with a warning and exit 1, unless --force.
bnfs evict /demo a >"$IT_TMP/ev2.out" 2>&1; rc=$?
if [ $rc = 1 ] && grep -q 'evicted 0 file(s)' "$IT_TMP/ev2.out" &&
    grep -q 'a: 2 pinned file(s) kept: unpin them, or use --force' "$IT_TMP/ev2.out"; then
    ok "evict of pinned files: kept, a warning, exit 1"
else fail "evict of pinned files: kept, a warning, exit 1" "rc=$rc $(cat "$IT_TMP/ev2.out")"; fi
bnfs evict --force /demo a >"$IT_TMP/ev3.out" 2>&1; rc=$?
if [ $rc = 0 ] && grep -q 'evicted 2 file(s)' "$IT_TMP/ev3.out"; then ok "evict --force drops pinned files too"
else fail "evict --force drops pinned files too" "rc=$rc $(cat "$IT_TMP/ev3.out")"; fi
bnfs evict /demo no/such/file >"$IT_TMP/ev4.out" 2>&1; rc=$?
if [ $rc = 1 ] && grep -q 'no/such/file: No such file' "$IT_TMP/ev4.out"; then ok "evict of a missing path: exit 1, says why"
else fail "evict of a missing path: exit 1, says why" "rc=$rc $(cat "$IT_TMP/ev4.out")"; fi
bnfs evict /demo >"$IT_TMP/ev5.out" 2>&1; rc=$?
if [ $rc = 2 ]; then ok "evict without a path: exit 2"; else fail "evict without a path: exit 2" "rc=$rc $(cat "$IT_TMP/ev5.out")"; fi

script -qc "'$TOOL' -c '$conf' preload /demo drive-0002" /dev/null >"$IT_TMP/tty.out" 2>&1; rc=$?
if [ $rc = 0 ] && grep -q $'\r' "$IT_TMP/tty.out" && grep -qE '\[#{30}\] 100%' "$IT_TMP/tty.out" &&
    grep -q 'files' "$IT_TMP/tty.out" && grep -q 'ETA' "$IT_TMP/tty.out" && grep -q '/s' "$IT_TMP/tty.out"; then
    ok "preload on a terminal draws a progress bar (files, bytes, rate, ETA)"
else fail "preload on a terminal draws a progress bar" "rc=$rc $(tr '\r' '\n' <"$IT_TMP/tty.out" | tail -3)"; fi

# 1,000 files under a pseudo-terminal: what a person sees, then a read of every one of them.
script -qc "'$TOOL' -c '$conf' preload /demo thousand" /dev/null >"$IT_TMP/tty1k.out" 2>&1; rc=$?
tr '\r' '\n' <"$IT_TMP/tty1k.out" | sed 's/\x1b\[K//g' >"$IT_TMP/tty1k.frames"
if [ $rc = 0 ] && grep -qE '^\[-{30}\] +0%  0/1000 files ' "$IT_TMP/tty1k.frames" &&
    grep -qE '^\[#{30}\] 100%  1000/1000 files  31\.2 MiB/31\.2 MiB  .*/s  ETA ' "$IT_TMP/tty1k.frames" &&
    grep -q 'preloaded 1000 file(s)' "$IT_TMP/tty1k.frames"; then
    ok "preload of 1,000 files on a terminal: the bar goes from 0/1000 to 1000/1000 files ($(grep -c . "$IT_TMP/tty1k.frames") frames)"
else fail "preload of 1,000 files on a terminal" "rc=$rc $(head -3 "$IT_TMP/tty1k.frames"; tail -3 "$IT_TMP/tty1k.frames")"; fi
stats k1
for i in $(seq 0 999); do printf "read /thousand/f%04d.bin\n" "$i"; done |
    "$IT_BUILD/tests/it_nfsop" "$(url '')" session >"$IT_TMP/read1k.out" 2>&1
stats k2
reads=$(grep -cx 32768 "$IT_TMP/read1k.out")
kg1=$(jget "$IT_TMP/k1.json" 'd["stores"]["local"]["gets"]'); kg2=$(jget "$IT_TMP/k2.json" 'd["stores"]["local"]["gets"]')
kc1=$(jget "$IT_TMP/k1.json" 'd["cache"]["gets"]'); kc2=$(jget "$IT_TMP/k2.json" 'd["cache"]["gets"]')
if [ "$reads" = 1000 ] && [ "$kg1" = "$kg2" ] && [ "$kc1" = "$kc2" ]; then
    ok "reading the 1,000 preloaded files makes zero store GETs (store gets $kg1 -> $kg2)"
else fail "reading the 1,000 preloaded files makes zero store GETs" "$reads read whole; store gets $kg1 -> $kg2, cache gets $kc1 -> $kc2"; fi

bnfs preload --json /demo a >"$IT_TMP/pj.out" 2>&1; rc=$?
if [ $rc = 0 ] && python3 -c '
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert lines[-1]["result"] == "ok" and lines[-1]["files"] == 2, lines[-1]
assert any(l.get("phase") == "read" for l in lines)' "$IT_TMP/pj.out"; then ok "preload --json: JSON lines, a result last"
else fail "preload --json: JSON lines, a result last" "rc=$rc $(cat "$IT_TMP/pj.out")"; fi

# Ctrl-C: the tool exits 130, the daemon notices the closed socket and stops reading.
"$TOOL" -c "$conf" preload /demo slowtree >"$IT_TMP/int.out" 2>&1 &
tpid=$!
sleep 2
kill -INT $tpid
wait $tpid; rc=$?
sleep 0.8 # a read in flight finishes
stats s5; sleep 1.2; stats s6
a=$(jget "$IT_TMP/s5.json" 'd["stores"]["local"]["gets"]'); b=$(jget "$IT_TMP/s6.json" 'd["stores"]["local"]["gets"]')
if [ $rc = 130 ] && grep -q 'interrupted' "$IT_TMP/int.out" && [ "$a" = "$b" ] &&
    grep -q 'preload of /demo cancelled' "$IT_TMP/admin/daemon.log"; then
    ok "Ctrl-C stops a preload: exit 130, the daemon stops fetching"
else fail "Ctrl-C stops a preload" "rc=$rc gets $a -> $b; $(cat "$IT_TMP/int.out"; grep admin: "$IT_TMP/admin/daemon.log" | tail -3)"; fi

# ---- refresh: a new object shows at once instead of after the TTL
nfs_tool nfs-ls "$(url a/b)" >"$IT_TMP/ls1.out" 2>&1
echo new >"$buckets/demo/a/b/new.txt"
nfs_tool nfs-ls "$(url a/b)" >"$IT_TMP/ls2.out" 2>&1
bnfs refresh /demo a/b >"$IT_TMP/refresh.out" 2>&1; rc=$?
nfs_tool nfs-ls "$(url a/b)" >"$IT_TMP/ls3.out" 2>&1
if [ $rc = 0 ] && ! grep -q new.txt "$IT_TMP/ls2.out" && grep -q new.txt "$IT_TMP/ls3.out"; then
    ok "refresh EXPORT PATH lists the directory again now"
else fail "refresh EXPORT PATH lists the directory again now" "rc=$rc $(cat "$IT_TMP/refresh.out" "$IT_TMP/ls2.out" "$IT_TMP/ls3.out")"; fi

# ---- reload
cp "$IT_TMP/admin/exports.conf" "$IT_TMP/exports.good"
sed -i 's|^exports = (|exports = ( { path = "/frames"; store = "local"; bucket = "demo"; prefix = "drive-0001/camera/"; access = "ro"; clients = ( "127.0.0.1" ); },|' "$IT_TMP/admin/exports.conf"
bnfs reload >"$IT_TMP/reload.out" 2>&1; rc=$?
bnfs status >"$IT_TMP/status2.out" 2>&1
if [ $rc = 0 ] && grep -qE '^/frames +local +demo +drive-0001/camera/' "$IT_TMP/status2.out"; then ok "reload adds an export"
else fail "reload adds an export" "rc=$rc $(cat "$IT_TMP/reload.out")"; fi
echo 'exports = ( { path = "/broken"; store = "nope"; } );' >"$IT_TMP/admin/exports.conf"
bnfs reload >"$IT_TMP/reload2.out" 2>&1; rc=$?
if [ $rc = 1 ] && grep -q 'exports.conf:1: export: missing required key' "$IT_TMP/reload2.out" && bnfs status | grep -q '^/frames'; then
    ok "reload of a broken exports file: exit 1 with the reason, old exports stay"
else fail "reload of a broken exports file" "rc=$rc $(cat "$IT_TMP/reload2.out")"; fi
cp "$IT_TMP/exports.good" "$IT_TMP/admin/exports.conf"

# ---- malformed requests do not hurt
python3 - "$sock" >"$IT_TMP/bad.out" 2>&1 <<'PY'
import socket, sys
def ask(data):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sys.argv[1])
    s.sendall(data)
    out = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
    s.close()
    return out.decode(errors="replace")
r = ask(b"x" * 20000)
assert r.startswith("error EMSGSIZE"), r
r = ask(b"stats %zz\n")
assert r.startswith("error EINVAL"), r
r = ask(b"frobnicate\n")
assert r.startswith("error ENOSYS"), r
r = ask(b"preload /demo " + b"a " * 200 + b"\n")
assert r.startswith("error EMSGSIZE"), r
print("ok")
PY
prc=$?
if [ $prc = 0 ] && bnfs status >/dev/null 2>&1; then ok "malformed and oversized requests: clear errors, the socket keeps serving"
else fail "malformed and oversized requests" "$(tail -5 "$IT_TMP/bad.out")"; fi

# ---- a store that fails: its last error in status, stats --json and /metrics
nfs_tool nfs-ls "nfs://127.0.0.1/flaky/?nfsport=$NFS_PORT&mountport=$MOUNT_PORT" >"$IT_TMP/flaky.out" 2>&1
bnfs status >"$IT_TMP/health.out" 2>&1; rc=$?
if [ $rc = 0 ] && grep -qE '^store flaky: FAILING; last answer never; [1-9][0-9]* failed call' "$IT_TMP/health.out" &&
    grep -qE '^  last error [0-9]+s ago: list EIO: Input/output error \(injected: fail_rate\): demo/' "$IT_TMP/health.out" &&
    grep -qE '^store local: ok; last answer [0-9]+s ago$' "$IT_TMP/health.out"; then
    ok "status: the failing store's last error (op, errno, message), the other store ok"
else fail "status: a failing store's last error" "rc=$rc $(grep -A1 '^store' "$IT_TMP/health.out")"; fi
stats h1
if [ "$(jget "$IT_TMP/h1.json" 'd["store_errors"]["flaky"]["op"]')" = list ] &&
    [ "$(jget "$IT_TMP/h1.json" 'd["stores"]["flaky"]["last_error_time"] > 0 and d["stores"]["flaky"]["errors_in_a_row"] > 0')" = True ] &&
    [ "$(jget "$IT_TMP/h1.json" '"local" not in d["store_errors"] and d["stores"]["local"]["last_success_time"] > 0')" = True ]; then
    ok "stats --json: store_errors and each store's last success / last error"
else fail "stats --json: store health" "$(jget "$IT_TMP/h1.json" 'd["store_errors"]')"; fi

# ---- Prometheus
nfs-cat "$(url no-such-file)" >/dev/null 2>&1 # a LOOKUP answered NFS3ERR_NOENT
curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" -o "$IT_TMP/metrics.txt"; rc=$?
$PY - "$IT_TMP/metrics.txt" >"$IT_TMP/prom.out" 2>&1 <<'PY'
import sys
from prometheus_client.parser import text_string_to_metric_families
fams = {f.name: f for f in text_string_to_metric_families(open(sys.argv[1]).read())}
def val(name, **labels):
    for s in fams[name].samples:
        if all(s.labels.get(k) == v for k, v in labels.items()) and s.name.startswith(name):
            return s.value
    raise KeyError((name, labels))
assert val("bucketnfs_nfs3_calls", proc="READ") > 0
assert val("bucketnfs_cache_gets") > 0
assert val("bucketnfs_cache_hits") > 0
assert val("bucketnfs_export_cache_hits", export="/demo") > 0
assert val("bucketnfs_store_requests", store="local", type="get") > 0
assert val("bucketnfs_store_requests", store="local", type="list") > 0
# cache.size is shared: dirty_max for written data, the rest for cached blocks
assert val("bucketnfs_cache_capacity") + val("bucketnfs_dirty_max_bytes") == 256 * 1024 * 1024
assert val("bucketnfs_dirty_max_bytes") == 64 * 1024 * 1024
assert val("bucketnfs_inodes") > 0
assert val("process_open_fds") > 0 and val("process_resident_memory_bytes") > 0
assert fams["bucketnfs_cache_gets"].type == "counter"
# Latency per procedure: a histogram whose buckets add up to its count; replies by status.
h = fams["bucketnfs_nfs3_call_duration_seconds"]
assert h.type == "histogram"
reads = {s.labels.get("le"): s.value for s in h.samples
         if s.labels.get("proc") == "READ" and s.name.endswith("_bucket")}
count = [s.value for s in h.samples if s.name.endswith("_count") and s.labels["proc"] == "READ"][0]
assert reads["+Inf"] == count > 0 and len(reads) == 17, (reads, count)
assert all(a <= b for a, b in zip(list(reads.values()), list(reads.values())[1:]))
assert val("bucketnfs_nfs3_replies", status="NFS3_OK") > 0
assert val("bucketnfs_nfs3_replies", status="NFS3ERR_NOENT") >= 1
# Store health: the failing store's last error, none for the other.
import time
assert 0 <= time.time() - val("bucketnfs_store_last_error_timestamp_seconds", store="flaky") < 600
assert val("bucketnfs_store_last_error_timestamp_seconds", store="local") == 0
assert val("bucketnfs_store_consecutive_errors", store="flaky") > 0
assert val("bucketnfs_store_last_success_timestamp_seconds", store="local") > 0
assert val("bucketnfs_store_requests_retrying", store="local") == 0
assert val("bucketnfs_export_upload_backoff_seconds", export="/demo") == 0
print(len(fams), "families")
PY
prc=$?
if [ $rc = 0 ] && [ $prc = 0 ]; then ok "/metrics parses with prometheus_client ($(cat "$IT_TMP/prom.out"))"
else fail "/metrics parses with prometheus_client" "rc=$rc $(tail -5 "$IT_TMP/prom.out")"; fi
# The Grafana dashboard: valid JSON, and every metric its queries name is one the daemon exports.
python3 - "$IT_ROOT/etc/grafana-bucketnfs.json" "$IT_TMP/metrics.txt" >"$IT_TMP/dash.out" 2>&1 <<'PY'
import json, re, sys
dash = json.load(open(sys.argv[1]))
exported = {re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", l).group(0)
            for l in open(sys.argv[2]).read().splitlines() if l and not l.startswith("#")}
KEYWORDS = {"and", "or", "unless", "bool", "offset"}
def metrics_of(expr):
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    e = re.sub(r"\{[^}]*\}", "", e)                # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)               # range selectors
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    names = set()
    for m in re.finditer(r"(?<![\w.$])[a-zA-Z_:][\w:]*", e):
        if not e[m.end():].lstrip().startswith("(") and m.group(0) not in KEYWORDS:
            names.add(m.group(0))  # not a function, not a keyword: a metric
    return names
assert metrics_of('sum by (a) (rate(x_total{b="c"}[5m])) / clamp_min(y, 1e-9) and time() - z') == {"x_total", "y", "z"}
used, ids, queries = set(), set(), 0
for p in dash["panels"]:
    assert p["id"] not in ids, "panel id %d twice" % p["id"]
    ids.add(p["id"])
    g = p["gridPos"]
    assert g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
    if p["type"] == "row":
        continue
    assert p["targets"] and p["datasource"]["uid"] == "${datasource}", p["title"]
    for t in p["targets"]:
        names = metrics_of(t["expr"])
        assert names, (p["title"], t["expr"])
        used |= names
        queries += 1
for v in dash["templating"]["list"]:
    if v["type"] == "query":
        m = re.fullmatch(r"label_values\((\w+)(\{.*\})?, *\w+\)", v["query"]["query"])
        assert m, v["query"]
        used.add(m.group(1))
missing = sorted(used - exported)
assert not missing, "the dashboard queries metrics the daemon does not export: %s" % missing
# What an operator looks for: calls, latency, errors, hit ratio, cache vs store, read-ahead,
# evictions, write-back, store, process.
want = {"bucketnfs_nfs3_calls_total", "bucketnfs_nfs3_call_duration_seconds_bucket",
        "bucketnfs_nfs3_replies_total", "bucketnfs_export_cache_hits_total", "bucketnfs_export_cache_misses_total",
        "bucketnfs_export_cache_bytes_hit_total", "bucketnfs_export_cache_bytes_miss_total",
        "bucketnfs_export_cache_ra_issued_total", "bucketnfs_export_cache_ra_used_total",
        "bucketnfs_export_cache_evictions_total", "bucketnfs_dirty_bytes", "bucketnfs_oldest_dirty_age_seconds",
        "bucketnfs_uploads_total", "bucketnfs_upload_failures_total", "bucketnfs_upload_conflicts_total",
        "bucketnfs_store_requests_total", "process_resident_memory_bytes", "process_open_fds",
        "bucketnfs_store_last_error_timestamp_seconds", "bucketnfs_store_last_success_timestamp_seconds",
        "bucketnfs_store_consecutive_errors", "bucketnfs_store_requests_retrying",
        "bucketnfs_export_upload_backoff_seconds", "bucketnfs_export_mounts", "bucketnfs_clients_connected"}
assert want <= used, "not on the dashboard: %s" % sorted(want - used)
print("%d panels, %d queries over %d metrics, all exported" % (len(ids), queries, len(used)))
PY
prc=$?
if [ $prc = 0 ]; then ok "Grafana dashboard: $(cat "$IT_TMP/dash.out")"
else fail "Grafana dashboard parses and queries exported metrics" "$(tail -5 "$IT_TMP/dash.out")"; fi
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$METRICS_PORT/other")
code2=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$METRICS_PORT/metrics")
if [ "$code" = 404 ] && [ "$code2" = 405 ]; then ok "/other is 404, POST is 405"
else fail "/other is 404, POST is 405" "$code $code2"; fi
ctype=$(curl -s -o /dev/null -w '%{content_type}' "http://127.0.0.1:$METRICS_PORT/metrics")
case $ctype in "text/plain; version=0.0.4"*) ok "content type $ctype" ;; *) fail "content type" "$ctype" ;; esac
# A silent client is dropped after the deadline; scrapes go on meanwhile in order.
python3 - "$METRICS_PORT" >"$IT_TMP/slow.out" 2>&1 <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /metr")
t = time.time()
s.settimeout(10)
data = s.recv(100)
assert data == b"" and time.time() - t < 5, (data, time.time() - t)
print("dropped after %.1fs" % (time.time() - t))
PY
prc=$?
if [ $prc = 0 ] && curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" >/dev/null; then ok "a silent scraper is dropped ($(cat "$IT_TMP/slow.out"))"
else fail "a silent scraper is dropped" "$(tail -3 "$IT_TMP/slow.out")"; fi

# ---- the mount list survives a restart (admin_clients.py left /demo mounted from 127.0.0.1)
if it_stop admin && it_start admin; then
    bnfs status >"$IT_TMP/restart.out" 2>&1
    if grep -qE '^/demo +127\.0\.0\.1 +/demo +[0-9hms]+ ago, not connected now$' "$IT_TMP/restart.out" &&
        grep -q ' /demo$' "$IT_TMP/admin/state/rmtab"; then
        ok "after a restart the mount list still holds 127.0.0.1's mount (state_dir/rmtab)"
    else fail "after a restart the mount list still holds the mount" "$(sed -n '/MOUNTS OF/,/^$/p' "$IT_TMP/restart.out"; cat "$IT_TMP/admin/state/rmtab")"; fi
else fail "restart the daemon" "see the log"; fi

if it_stop admin; then ok "SIGTERM stops the daemon cleanly"; else fail "SIGTERM stops the daemon cleanly" "exit status"; fi
if [ ! -e "$sock" ]; then ok "the admin socket is removed at stop"; else fail "the admin socket is removed at stop" ""; fi
bnfs status >"$IT_TMP/nr2.out" 2>&1; rc=$?
if [ $rc = 3 ]; then ok "after stop: exit 3"; else fail "after stop: exit 3" "rc=$rc $(cat "$IT_TMP/nr2.out")"; fi

it_done
