#!/usr/bin/env bash
# cache.sh - read-path benchmarks of the block cache (issue 7): bucketnfsd
# against a peer measured in the same run, as ratios.
#
#   bench/cache.sh [--tests LIST] [--rounds N] [--seconds N] [--conns N]
#                  [--depth N] [--seq-mb N] [--small-files N] [--small-kb N]
#                  [--log-mb N] [--streams N] [--stream-mb N] [--delay-ms N]
#                  [--rate-mbs N] [--emulators N] [--direct-threads N]
#                  [--block-size SIZE] [--readahead-max SIZE] [--fetch-max N]
#                  [--prefetch-budget SIZE] [--data DIR] [--out FILE] [--keep]
#
# Tests (--tests, comma-separated; default all):
#   seqread    cached sequential READ of a --seq-mb file, rsize READs over
#              --conns connections x --depth in flight: bucketnfsd (dir store,
#              after a warm-up pass that fills its block cache) vs ganesha
#              (same file, page cache warm), and both against iperf3's one
#              loopback TCP stream measured in the same rounds
#   randread   cached 4 KiB READs at random offsets of that file, ops/s
#   smallfiles --small-files files of --small-kb read warm (LOOKUP + READ
#              each), files/s
#   cold       one --log-mb object read once, sequentially, through a shaped
#              link (--delay-ms each way, --rate-mbs per connection) from an
#              S3 emulator: bucketnfsd with a cold cache vs the best direct
#              reader (boto3, --direct-threads ranged GETs of 8 MiB) and one
#              GET of the whole object
#   streams    --streams objects of --stream-mb read at once through
#              bucketnfsd with a cold cache, aggregate MiB/s and the
#              daemon's peak RSS (VmHWM), vs --streams direct GETs at once
#   regets     after cold and streams, the same data read again: the store
#              requests the emulator logged during the re-read (must be 0)
#
# --block-size, --readahead-max, --fetch-max and --prefetch-budget set the
# daemon's cache keys (defaults: 1M, 64M, 64, 256M, as etc/bucketnfs.conf).
#
# The S3 side: --emulators s3rver processes (bench/s3emu, installed with
# `npm ci` when missing) serve one data folder inside a network namespace
# this script creates, behind build/bench/shapeproxy, which adds the delay
# and the per-connection rate (this kernel has no netem or fq qdisc; see
# BENCHMARKS.md).  bucketnfsd and the direct readers reach it over a veth
# pair at 198.18.N.2 (the RFC 2544 benchmarking range) and nothing else.
#
# Rounds alternate the order of the contenders (A B, B A, ...); the table
# has medians.  Every wait is bounded: servers must listen within 30 s,
# every client run is killed by timeout, servers get 10 s to stop.
# Exit status: 0 success, 1 a benchmark or server failed, 2 bad usage or a
# missing prerequisite.
set -euo pipefail

caller_dir=$PWD
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
. tools/retry.sh
. bench/lib.sh

tests=seqread,randread,smallfiles,cold,streams,regets
rounds=3
seconds=5
conns=4
depth=8
seq_mb=1024
small_files=10000
small_kb=100
log_mb=2048
nstreams=64
stream_mb=16
delay_ms=15
rate_mbs=100
emulators=3
direct_threads=16
block_size=1M
readahead_max=64M
fetch_max=64
prefetch_budget=256M
data=${BNFS_BENCH_CACHE_DATA:-$here/build/bench-cache-data}
out=
keep=0
nfsbench=${NFSBENCH:-$here/build/bench/nfsbench}
shapeproxy=${SHAPEPROXY:-$here/build/bench/shapeproxy}
bucketnfsd=${BUCKETNFSD:-$here/bin/bucketnfsd}

usage() { bench_usage 5 10; }
while (($#)); do
    case $1 in
        --tests) tests=${2:?--tests needs a list}; shift ;;
        --rounds) bench_need_uint "$1" "${2:-}"; rounds=$2; shift ;;
        --seconds) bench_need_uint "$1" "${2:-}"; seconds=$2; shift ;;
        --conns) bench_need_uint "$1" "${2:-}"; conns=$2; shift ;;
        --depth) bench_need_uint "$1" "${2:-}"; depth=$2; shift ;;
        --seq-mb) bench_need_uint "$1" "${2:-}"; seq_mb=$2; shift ;;
        --small-files) bench_need_uint "$1" "${2:-}"; small_files=$2; shift ;;
        --small-kb) bench_need_uint "$1" "${2:-}"; small_kb=$2; shift ;;
        --log-mb) bench_need_uint "$1" "${2:-}"; log_mb=$2; shift ;;
        --streams) bench_need_uint "$1" "${2:-}"; nstreams=$2; shift ;;
        --stream-mb) bench_need_uint "$1" "${2:-}"; stream_mb=$2; shift ;;
        --delay-ms) [[ ${2:-} =~ ^[0-9]+$ ]] || usage; delay_ms=$2; shift ;;
        --rate-mbs) bench_need_uint "$1" "${2:-}"; rate_mbs=$2; shift ;;
        --emulators) bench_need_uint "$1" "${2:-}"; emulators=$2; shift ;;
        --direct-threads) bench_need_uint "$1" "${2:-}"; direct_threads=$2; shift ;;
        --block-size) [[ ${2:-} =~ ^[0-9]+[KMG]?$ ]] || usage; block_size=$2; shift ;;
        --readahead-max) [[ ${2:-} =~ ^[0-9]+[KMG]?$ ]] || usage; readahead_max=$2; shift ;;
        --fetch-max) bench_need_uint "$1" "${2:-}"; fetch_max=$2; shift ;;
        --prefetch-budget) [[ ${2:-} =~ ^[0-9]+[KMG]?$ ]] || usage; prefetch_budget=$2; shift ;;
        --data) data=${2:?--data needs a directory}; shift ;;
        --out) out=${2:?--out needs a file}; shift ;;
        --keep) keep=1 ;;
        -h | --help) usage ;;
        *) echo "cache.sh: unknown argument $1" >&2; usage ;;
    esac
    shift
done
[[ $data == /* ]] || data=$caller_dir/$data
[[ -z $out || $out == /* ]] || out=$caller_dir/$out
((seconds <= 60 && rounds <= 9 && emulators <= 8 && nstreams <= 256 && conns <= 16)) ||
    { echo "cache.sh: at most 60 s per test, 9 rounds, 8 emulators, 256 streams, 16 connections" >&2; exit 2; }
want() { [[ ,$tests, == *,$1,* ]]; }
for t in ${tests//,/ }; do
    case $t in seqread | randread | smallfiles | cold | streams | regets) ;;
        *) echo "cache.sh: unknown test $t" >&2; usage ;; esac
done
cached=0 s3=0
{ want seqread || want randread || want smallfiles; } && cached=1
{ want cold || want streams || want regets; } && s3=1

# ---- prerequisites -------------------------------------------------------

die2() { echo "cache.sh: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die2 "needs root (ganesha's VFS FSAL, network namespaces)"
[ -x "$bucketnfsd" ] || die2 "$bucketnfsd is missing: make bin/bucketnfsd"
[ -x "$nfsbench" ] || die2 "$nfsbench is missing: make build/bench/nfsbench"
command -v python3 >/dev/null || die2 "python3 is needed"
if ((cached)); then
    command -v ganesha.nfsd >/dev/null || die2 "ganesha.nfsd not found (tools/install-deps.sh bench)"
    command -v iperf3 >/dev/null || die2 "iperf3 not found (tools/install-deps.sh bench)"
fi
if ((s3)); then
    [ -x "$shapeproxy" ] || die2 "$shapeproxy is missing: make build/bench/shapeproxy"
    command -v ip >/dev/null || die2 "ip (iproute2) not found"
    command -v node >/dev/null && command -v npm >/dev/null || die2 "node and npm are needed for s3rver"
    python3 -c 'import boto3' 2>/dev/null || die2 "python3 boto3 is needed (python3-boto3)"
    bench_s3emu_install
fi

load0=$(cut -d' ' -f1-3 /proc/loadavg)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bnfs-cache-bench.XXXXXX")
pids=()  # every process started here, stopped by id at exit
names=()
netns=
trap bench_cleanup EXIT
trap 'exit 1' INT TERM

# ---- bucketnfsd and ganesha ---------------------------------------------

# start_bucketnfsd NAME STORE_KEYS BUCKET CACHE_SIZE: a fresh daemon, its
# cache cold, read-only; sets PORT_NFS PORT_MNT DPID.
start_bucketnfsd() {
    bench_start_bucketnfsd "$1" "$2" "$3" "size = \"$4\"; block_size = \"$block_size\";
           readahead_max = \"$readahead_max\"; prefetch_budget = \"$prefetch_budget\";
           fetch_max = $fetch_max;" 'access = "ro"; metadata_ttl = 3600;'
}

# ---- 1, 2: cached reads against ganesha ---------------------------------

results=$tmp/results # "section key value" lines for the report
: >"$results"
emit() { echo "$*" >>"$results"; }

bucket=$data/buckets/bench
build_local_tree() {
    local stamp="cache-bench local v1 seq_mb=$seq_mb small_files=$small_files small_kb=$small_kb"
    bench_built "$data" local "$stamp" "$bucket" cache.sh && return 0
    echo "cache.sh: building the local tree in $bucket (kept for later runs)" >&2
    local t0=$SECONDS
    rm -rf "$bucket"
    mkdir -p "$bucket/small"
    head -c "$((seq_mb << 20))" /dev/urandom >"$bucket/big.bin"
    python3 - "$bucket/small" "$small_files" "$((small_kb * 1024))" <<'EOF'
import os, sys
d, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    with open(os.path.join(d, "frame_%06d.jpg" % i), "wb") as f:
        f.write(os.urandom(size))
EOF
    echo "$stamp" >"$data/local.stamp"
    echo "cache.sh: local tree built in $((SECONDS - t0)) s" >&2
}

# iperf3 one stream over loopback for --seconds: MiB/s.
iperf_once() {
    local port rc=0 sp
    read -r port < <(bench_free_ports 1)
    iperf3 -s -1 -B 127.0.0.1 -p "$port" >"$tmp/iperf3-server.log" 2>&1 &
    sp=$!
    pids+=("$sp")
    names+=(iperf3-server)
    # Not wait_port: a probe connection would be the one test -1 serves.
    local n
    for ((n = 0; n < 300; n++)); do
        grep -q 'Server listening' "$tmp/iperf3-server.log" && break
        kill -0 "$sp" 2>/dev/null || break
        sleep 0.1
    done
    timeout -k 5 $((seconds + 30)) iperf3 -c 127.0.0.1 -p "$port" -t "$seconds" -J >"$tmp/iperf3.json" || rc=$?
    bench_stop "$sp" iperf3-server
    ((rc == 0)) || { echo "cache.sh: iperf3 failed (status $rc)" >&2; cat "$tmp/iperf3-server.log" >&2; exit 1; }
    python3 -c 'import json, sys
print("iperf3_loopback_mib_per_s %.1f" %
      (json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"] / 8 / 1048576))' \
        "$tmp/iperf3.json"
}

cached_tests() {
    local t list=
    for t in seqread randread smallfiles; do want $t && list+=${list:+,}$t; done
    echo "$list"
}

run_cached() {
    local list g_np g_mp b_np b_mp r k who lim=$((4 * seconds + 120))
    list=$(cached_tests)
    build_local_tree
    bench_start_ganesha ganesha "$bucket"
    g_np=$PORT_NFS g_mp=$PORT_MNT
    start_bucketnfsd bucketnfs 'name = "st"; type = "dir"; root = "'"$data/buckets"'";' bench 4G
    b_np=$PORT_NFS b_mp=$PORT_MNT
    local b_pid=$DPID g_pid=$GPID
    local args=(-C "$conns" -Q "$depth" -b big.bin -f small -N "$small_files")
    # Warm-up, the same for both: one whole pass over the big file and one
    # over the small files, so that bucketnfsd has them in its block cache
    # and ganesha in the page cache.
    for who in ganesha bucketnfs; do
        local np=$g_np mp=$g_mp
        [ $who = ganesha ] || np=$b_np mp=$b_mp
        echo "cache.sh: $who: warm-up (one pass over big.bin and small/)" >&2
        if want seqread || want randread; then
            bench_nfsb "$tmp/$who.warm1" 600 "$np" "$mp" "${args[@]}" -T seqread -O -t 300
        fi
        if want smallfiles; then
            bench_nfsb "$tmp/$who.warm2" 600 "$np" "$mp" "${args[@]}" -T smallfiles -O -t 300
        fi
    done
    for ((r = 1; r <= rounds; r++)); do
        if want seqread; then
            echo "cache.sh: round $r/$rounds: iperf3 loopback, one stream, $seconds s" >&2
            # Not $(...): a failure there would not stop the run.
            iperf_once >"$tmp/iperf3.round$r"
        fi
        for k in 0 1; do
            who=ganesha
            ((k == (r + 1) % 2)) || who=bucketnfs
            local np=$g_np mp=$g_mp
            [ $who = ganesha ] || np=$b_np mp=$b_mp
            echo "cache.sh: round $r/$rounds: $who ($list, up to $seconds s each)" >&2
            bench_nfsb "$tmp/$who.round$r" "$lim" "$np" "$mp" "${args[@]}" -T "$list" -t "$seconds"
        done
    done
    local key
    for key in seqread_mib_per_s randread_ops_per_s randread_lat_p50_us smallfiles_files_per_s \
        smallfiles_mib_per_s; do
        want "${key%%_*}" || continue
        emit cached "$key" "$(bench_median "$key" "$tmp"/ganesha.round*)" \
            "$(bench_median "$key" "$tmp"/bucketnfs.round*)"
    done
    if want seqread; then
        emit iperf3 iperf3_loopback_mib_per_s "$(bench_median iperf3_loopback_mib_per_s "$tmp"/iperf3.round*)"
    fi
    bench_stop "$b_pid" bucketnfs
    bench_stop "$g_pid" ganesha
}

# ---- 3, 4, 5: cold reads through a shaped link ---------------------------

s3data=$data/s3
emu_ports=()
endpoint=
emu_log_count() { # requests answered so far, every emulator together
    cat "$tmp"/s3rver-*.log 2>/dev/null | grep -c -E ' (200|206|304|404|416) ' || true
}

setup_s3() {
    local i
    bench_s3_setup "$s3data" cold

    local stamp="cache-bench s3 v1 log_mb=$log_mb streams=$nstreams stream_mb=$stream_mb"
    if ! bench_built "$data" s3 "$stamp"; then
        echo "cache.sh: filling the emulator's bucket (kept for later runs)" >&2
        local t0=$SECONDS src=$tmp/upload
        mkdir -p "$src/streams"
        head -c "$((log_mb << 20))" /dev/urandom >"$src/log.bin"
        for ((i = 0; i < nstreams; i++)); do
            head -c "$((stream_mb << 20))" /dev/urandom >"$src/streams/$(printf 'cam_%03d.bin' "$i")"
        done
        # Straight to the first emulator inside the namespace: no shaping.
        timeout 1800 ip netns exec "$netns" python3 bench/s3direct.py \
            "http://127.0.0.1:${emu_ports[0]}" cold upload "$src"
        rm -rf "$src"
        echo "$stamp" >"$data/s3.stamp"
        echo "cache.sh: bucket filled in $((SECONDS - t0)) s" >&2
    fi
}

s3store='name = "st"; type = "s3"; endpoint = "ENDPOINT"; region = "us-east-1"; addressing = "path"; credentials = "env";'

direct() { # OUT ARGS...: one s3direct.py run, or die
    local o=$1 rc=0
    shift
    timeout -k 5 900 python3 bench/s3direct.py "$endpoint" cold "$@" >"$o" 2>"$o.err" || rc=$?
    ((rc == 0)) || { echo "cache.sh: s3direct.py $* failed (status $rc):" >&2; cat "$o.err" >&2; exit 1; }
}

# One bucketnfsd round of the cold tests: a fresh daemon, the cold read,
# then (regets) the re-read with the emulators' request count around it.
bnfs_cold_round() { # r what
    local r=$1 what=$2 n0 n1 lim=1800 o
    start_bucketnfsd "bnfs-$what-r$r" "${s3store/ENDPOINT/$endpoint}" cold 8G
    local dpid=$DPID np=$PORT_NFS mp=$PORT_MNT
    o=$tmp/bnfs-$what.round$r
    if [ "$what" = cold ]; then
        bench_nfsb "$o" "$lim" "$np" "$mp" -C "$conns" -Q "$depth" -b log.bin -T seqread -O -t 1200
    else
        bench_nfsb "$o" "$lim" "$np" "$mp" -C "$conns" -Q "$depth" -f streams -N "$nstreams" \
            -S "$nstreams" -W 2 -T multiread -t 1200
    fi
    echo "vmhwm_kib $(awk '/VmHWM/ { print $2 }' /proc/"$dpid"/status)" >>"$o"
    # The daemon's CPU (user + system) per GiB read: what it costs the machine.
    awk -v hz="$(getconf CLK_TCK)" -v b="$(awk '$1 ~ /^(seqread|multiread)_bytes$/ { print $2 }' "$o")" \
        '{ printf "cpu_s_per_gib %.2f\n", ($14 + $15) / hz / (b / 1073741824) }' /proc/"$dpid"/stat >>"$o"
    if want regets; then
        # Give fetches still in flight (read-ahead past EOF is not issued,
        # but a slow last block may be) a moment, then count the re-read.
        sleep 1
        n0=$(emu_log_count)
        if [ "$what" = cold ]; then
            bench_nfsb "$o.again" "$lim" "$np" "$mp" -C "$conns" -Q "$depth" -b log.bin -T seqread -O -t 1200
        else
            bench_nfsb "$o.again" "$lim" "$np" "$mp" -C "$conns" -Q "$depth" -f streams -N "$nstreams" \
                -S "$nstreams" -W 2 -T multiread -t 1200
        fi
        sleep 1
        n1=$(emu_log_count)
        echo "store_requests_during_reread $((n1 - n0))" >>"$o.again"
    fi
    bench_stop "$dpid" "bnfs-$what-r$r"
    rm -rf "$tmp/bnfs-$what-r$r/cache" # 2 GB per round otherwise
}

run_s3() {
    local r k order
    setup_s3
    echo "cache.sh: S3 emulator at $endpoint: ${delay_ms} ms each way, ${rate_mbs} MB/s per connection," \
        "$emulators s3rver processes" >&2
    for ((r = 1; r <= rounds; r++)); do
        if want cold || want regets; then
            # bucketnfs, parallel, single; the order rotates each round.
            order=(bnfs parallel single)
            for ((k = 0; k < r - 1; k++)); do order=("${order[@]:1}" "${order[0]}"); done
            for k in "${order[@]}"; do
                echo "cache.sh: round $r/$rounds: cold ${log_mb} MiB log: $k" >&2
                case $k in
                    bnfs) bnfs_cold_round "$r" cold ;;
                    parallel) direct "$tmp/parallel.round$r" parallel log.bin "$direct_threads" 8 ;;
                    single) direct "$tmp/single.round$r" single log.bin ;;
                esac
            done
        fi
        if want streams; then
            order=(bnfs files)
            ((r % 2)) || order=(files bnfs)
            for k in "${order[@]}"; do
                echo "cache.sh: round $r/$rounds: $nstreams cold streams: $k" >&2
                case $k in
                    bnfs) bnfs_cold_round "$r" streams ;;
                    files) direct "$tmp/files.round$r" files streams/ "$nstreams" ;;
                esac
            done
        fi
    done
    if want cold || want regets; then
        emit cold bnfs_mib_per_s "$(bench_median seqread_mib_per_s "$tmp"/bnfs-cold.round?)"
        emit cold parallel_mib_per_s "$(bench_median parallel_mib_per_s "$tmp"/parallel.round*)"
        emit cold single_mib_per_s "$(bench_median single_mib_per_s "$tmp"/single.round*)"
        emit cold bnfs_vmhwm_kib "$(bench_median vmhwm_kib "$tmp"/bnfs-cold.round?)"
        emit cold bnfs_cpu "$(bench_median cpu_s_per_gib "$tmp"/bnfs-cold.round?)"
        emit cold parallel_cpu "$(bench_median parallel_cpu_s_per_gib "$tmp"/parallel.round*)"
        emit cold single_cpu "$(bench_median single_cpu_s_per_gib "$tmp"/single.round*)"
    fi
    if want streams; then
        emit streams bnfs_mib_per_s "$(bench_median multiread_mib_per_s "$tmp"/bnfs-streams.round?)"
        emit streams files_mib_per_s "$(bench_median files_mib_per_s "$tmp"/files.round*)"
        emit streams bnfs_vmhwm_kib "$(bench_median vmhwm_kib "$tmp"/bnfs-streams.round?)"
        emit streams bnfs_cpu "$(bench_median cpu_s_per_gib "$tmp"/bnfs-streams.round?)"
        emit streams files_cpu "$(bench_median files_cpu_s_per_gib "$tmp"/files.round*)"
    fi
    if want regets; then
        local f
        for f in "$tmp"/bnfs-*.round?.again; do
            emit regets "$(basename "$f" .again)" "$(awk '$1 == "store_requests_during_reread" { print $2 }' "$f")" \
                "$(awk '$1 ~ /(seqread|multiread)_mib_per_s/ { print $2 }' "$f")"
        done
    fi
}

((!cached)) || run_cached
((!s3)) || run_s3

# ---- report ----------------------------------------------------------------

report() {
    echo "# bucketnfs cache benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "# command: bench/cache.sh --tests $tests --rounds $rounds --seconds $seconds --conns $conns" \
        "--depth $depth --seq-mb $seq_mb --small-files $small_files --small-kb $small_kb --log-mb $log_mb" \
        "--streams $nstreams --stream-mb $stream_mb --delay-ms $delay_ms --rate-mbs $rate_mbs" \
        "--emulators $emulators --direct-threads $direct_threads --block-size $block_size" \
        "--readahead-max $readahead_max --fetch-max $fetch_max --prefetch-budget $prefetch_budget"
    bench_machine
    echo "# load average before the run: $load0, after: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# values are medians of $rounds rounds; the order of the contenders alternates"
    awk -v conns="$conns" -v depth="$depth" '
        function r(a, b) { return (a == "-" || b == "-" || b + 0 == 0) ? "-" : sprintf("%.2f", a / b) }
        $1 == "iperf3" { ip = $3 }
        $1 == "cached" { c[$2] = $3 " " $4; order[++n] = $2 }
        $1 == "cold" { cold[$2] = $3 }
        $1 == "streams" { st[$2] = $3 }
        $1 == "regets" { rg[++m] = $2 " " $3 " " $4 }
        END {
            if (n) {
                printf "\n%-28s %12s %12s %8s\n", "cached (vs ganesha)", "ganesha", "bucketnfs", "ratio"
                for (i = 1; i <= n; i++) {
                    split(c[order[i]], v, " ")
                    printf "%-28s %12s %12s %8s%s\n", order[i], v[1], v[2], r(v[2], v[1]),
                        order[i] ~ /_lat_/ ? "  (lower is better)" : ""
                }
            }
            if (ip != "") {
                split(c["seqread_mib_per_s"], v, " ")
                printf "%-28s %12s   ganesha %s, bucketnfs %s of it\n", "iperf3 loopback MiB/s", ip,
                    r(v[1], ip), r(v[2], ip)
            }
            if ("bnfs_mib_per_s" in cold) {
                printf "\n%-28s %12s %12s\n", "cold sequential read", "MiB/s", "CPU s/GiB"
                printf "%-28s %12s %12s\n", "bucketnfs", cold["bnfs_mib_per_s"], cold["bnfs_cpu"]
                printf "%-28s %12s %12s   bucketnfs / it %s\n", "direct parallel (boto3)",
                    cold["parallel_mib_per_s"], cold["parallel_cpu"],
                    r(cold["bnfs_mib_per_s"], cold["parallel_mib_per_s"])
                printf "%-28s %12s %12s   bucketnfs / it %s\n", "direct single GET",
                    cold["single_mib_per_s"], cold["single_cpu"],
                    r(cold["bnfs_mib_per_s"], cold["single_mib_per_s"])
                printf "%-28s %12s\n", "bucketnfs VmHWM KiB", cold["bnfs_vmhwm_kib"]
            }
            if ("bnfs_mib_per_s" in st) {
                printf "\n%-28s %12s %12s\n", "cold streams at once", "MiB/s", "CPU s/GiB"
                printf "%-28s %12s %12s\n", "bucketnfs", st["bnfs_mib_per_s"], st["bnfs_cpu"]
                printf "%-28s %12s %12s   bucketnfs / it %s\n", "direct, one GET each",
                    st["files_mib_per_s"], st["files_cpu"], r(st["bnfs_mib_per_s"], st["files_mib_per_s"])
                printf "%-28s %12s\n", "bucketnfs VmHWM KiB", st["bnfs_vmhwm_kib"]
            }
            if (m) {
                printf "\n%-28s %12s %12s\n", "re-read after warm-up", "store reqs", "MiB/s"
                for (i = 1; i <= m; i++) {
                    split(rg[i], v, " ")
                    printf "%-28s %12s %12s\n", v[1], v[2], v[3]
                }
            }
        }' "$results"
}

if [ -n "$out" ]; then report | tee "$out"; else report; fi
