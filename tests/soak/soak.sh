#!/usr/bin/env bash
# soak.sh [SECONDS] - the soak (make soak): bucketnfsd on an S3 bucket in
# moto_server under 64 connections of mixed load for SECONDS (default
# $SOAK_SECONDS, else 600), then every written file checked in the bucket.
#
#   1. moto_server on a free port of 127.0.0.1, SOAK_SEEDS files (256) put
#      under seed/ (every eighth 4 MiB, the others 64-448 KiB: more than the
#      cache keeps, so reads both hit and miss it);
#   2. bucketnfsd with cache.size 256M of which dirty_max 128M (128M of blocks:
#      less than the seeds), writeback_delay 1 (uploads run during the load),
#      metrics on a free port;
#   3. soakload (tests/soak/soakload.c): SOAK_CONNS connections (64) of reads,
#      writes with COMMIT (SOAK_WRITE_MBPS, 6 MB/s in all, a few files past
#      the 16 MiB multipart threshold), GETATTR, READDIRPLUS, SETATTR, RENAME,
#      REMOVE, MKDIR, every read checked byte for byte; one line per 10 s;
#   4. every 10 s, soak.py sample: the daemon's VmRSS, open descriptors and
#      /metrics (latency histograms per procedure, replies, dirty bytes);
#   5. bucketnfs flush --wait, then soak.py verify: every file the load left
#      is in the bucket with its SHA-256, no removed name is;
#   6. the daemon stopped with SIGTERM (it must exit 0);
#   7. soak.py report: SOAK_DIR/report.md and SOAK_DIR/soak.png (default
#      build/soak), and the verdict "soak: N passed, N failed" (exit 1 on any
#      failure, a lost write included).
# moto's SigV4 checking stays off: it mis-checks listings with delimiter=/
# (see tests/integration/s3_nfs.sh); s3_moto.sh checks the signatures.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../integration/lib.sh"
. "$here/../integration/moto_lib.sh"

SECONDS_RUN=${1:-${SOAK_SECONDS:-600}}
CONNS=${SOAK_CONNS:-64}
SEEDS=${SOAK_SEEDS:-256}
WRITE_MBPS=${SOAK_WRITE_MBPS:-6}
OUT=${SOAK_DIR:-$IT_ROOT/build/soak}
LOAD=$IT_BUILD/tests/soakload
TOOL=$IT_ROOT/bin/bucketnfs
bucket=bnfs-soak

mkdir -p "$OUT"
rm -f "$OUT"/{load.jsonl,load.err,samples.jsonl,verify.json,manifest.txt,shell_checks.txt,report.md,soak.png,daemon.log}
shell_check() { # NAME STATUS: a check of soak.sh itself, for the report
    if [ "$2" = 0 ]; then echo "ok $1" >>"$OUT/shell_checks.txt"; else echo "fail $1" >>"$OUT/shell_checks.txt"; fi
}
# The report draws with Debian's python3-matplotlib: the python3 first on
# PATH (the one with boto3 and moto) may be another installation.
plot_py=python3
python3 -c 'import matplotlib' 2>/dev/null || ! [ -x /usr/bin/python3 ] || plot_py=/usr/bin/python3
verdict() { "$plot_py" "$here/soak.py" report "$OUT" "$SECONDS_RUN"; }

for tool in moto_server python3 curl; do
    command -v "$tool" >/dev/null || { shell_check "$tool installed (tools/install-deps.sh soak)" 1; verdict; exit 1; }
done
for b in "$IT_BIN" "$LOAD" "$TOOL"; do
    [ -x "$b" ] || { shell_check "$b built (make all)" 1; verdict; exit 1; }
done

it_setup
trap 'moto_stop_all; it_cleanup' EXIT
export AWS_ACCESS_KEY_ID=AKIDSOAK AWS_SECRET_ACCESS_KEY=soak-secret
unset AWS_SESSION_TOKEN AWS_PROFILE
moto_start "$IT_TMP/moto.log" || { shell_check "moto_server starts" 1; verdict; exit 1; }
echo "soak: moto_server on $MOTO_ENDPOINT; seeding $SEEDS files"
python3 "$here/soak.py" seed "$MOTO_ENDPOINT" "$bucket" "$IT_TMP/seeds.txt" "$SEEDS"
shell_check "seed files put in the bucket" $?

IT_ACCESS=rw IT_CACHE_SIZE=256M IT_CACHE_EXTRA='dirty_max = "128M";' it_write_s3_conf soak "$MOTO_ENDPOINT" "$bucket" 'credentials = "env";' \
    'writeback_delay = 1;'
conf=$IT_TMP/soak/bucketnfs.conf
sed -i 's|log_level = "info";|log_level = "info"; metrics = "127.0.0.1:0";|' "$conf"
it_start soak || { shell_check "bucketnfsd starts" 1; verdict; exit 1; }
pid=${IT_PIDS[soak]}
mport=$(sed -n 's/^metrics_port=//p' "$IT_TMP/soak/state/bucketnfsd.ports")
url="nfs://127.0.0.1/demo?nfsport=$NFS_PORT&mountport=$MOUNT_PORT"
echo "soak: bucketnfsd pid $pid, nfs port $NFS_PORT, metrics port $mport; $CONNS connections for $SECONDS_RUN s"

# The sampler outlives the load by the flush; it is stopped below, and
# bounded by itself in any case.
python3 "$here/soak.py" sample "$pid" "http://127.0.0.1:$mport/metrics" "$OUT/samples.jsonl" 10 \
    $((SECONDS_RUN + 900)) &
sampler=$!
timeout $((SECONDS_RUN + 600)) "$LOAD" -c "$CONNS" -t "$SECONDS_RUN" -i 10 -S "$IT_TMP/seeds.txt" \
    -m "$OUT/manifest.txt" -w "$WRITE_MBPS" "$url" >"$OUT/load.jsonl" 2>"$OUT/load.err"
rc=$?
shell_check "soakload exits 0 (no failed call, no wrong byte)" $rc
[ -s "$OUT/load.err" ] && head -20 "$OUT/load.err"

echo "soak: load done; flush --wait"
t=$(date +%s)
timeout 900 "$TOOL" -c "$conf" flush --wait >"$IT_TMP/flush.out" 2>&1
shell_check "bucketnfs flush --wait succeeds" $?
echo "soak: flushed in $(($(date +%s) - t)) s; checking the bucket"
sleep 10 # one more sample after the flush
kill "$sampler" 2>/dev/null
wait "$sampler" 2>/dev/null
python3 "$here/soak.py" verify "$MOTO_ENDPOINT" "$bucket" "$OUT/manifest.txt" "$OUT/verify.json"
shell_check "the bucket check ran" $?
it_stop soak
shell_check "bucketnfsd exits 0 on SIGTERM" $?
cp "$IT_TMP/soak/daemon.log" "$OUT/daemon.log"
if grep -qE ': (err|crit|alert|emerg): ' "$OUT/daemon.log"; then
    echo "soak: daemon.log lines at level err or worse (the first 10):"
    grep -E ': (err|crit|alert|emerg): ' "$OUT/daemon.log" | head -10
fi
verdict
