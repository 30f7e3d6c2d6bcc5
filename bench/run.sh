#!/usr/bin/env bash
# run.sh - benchmark bucketnfsd against nfs-ganesha on the same tree, same
# client (build/bench/nfsbench), same run, and print the ratios.
#
#   bench/run.sh [--peer-only | --calibrate] [--seconds N] [--rounds N]
#                [--depth N] [--read-depth N] [--files N] [--entries N]
#                [--bigfile-mb N] [--data DIR] [--out FILE] [--keep]
#
# The tree (DIR/buckets/bench: files/ with --files small files, dir/ with
# --entries empty files, big.bin) is built once and reused while its stamp
# matches the sizes asked for; building 100,000 entries takes a while.
# ganesha exports DIR/buckets/bench through its VFS FSAL; bucketnfsd serves
# the same folder as bucket "bench" of a "dir" store rooted at DIR/buckets.
# Both listen on 127.0.0.1, on free ports, with no rpcbind (ganesha gets
# bench/peer/norpcbind.c preloaded: without rpcbind it would exit at start).
# Each server gets the same warm-up pass, then --rounds measured passes;
# one server is measured at a time while the other sits idle, the order
# alternates between rounds (A B, B A, ...) and the table shows the median
# of the rounds, so neither server always runs first on a warm machine.
# --peer-only measures ganesha alone; --calibrate puts a second ganesha in
# bucketnfsd's place: its ratios (ideally 1.00) show this machine's noise.
#
# Every wait is bounded: servers must listen within 30 s, each nfsbench run
# is killed after a limit derived from --seconds, servers get 10 s to stop.
# Exit status: 0 success, 1 a benchmark or server failed, 2 bad usage or a
# missing prerequisite (bin/bucketnfsd absent without --peer-only).
set -euo pipefail

caller_dir=$PWD
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
. bench/lib.sh

peer_only=0
calibrate=0
seconds=5
rounds=3
depth=32
read_depth=8
nfiles=1000
entries=100000
bigfile_mb=512
data=${BNFS_BENCH_DATA:-$here/build/bench-data}
out=
keep=0
nfsbench=${NFSBENCH:-$here/build/bench/nfsbench}
bucketnfsd=${BUCKETNFSD:-$here/bin/bucketnfsd}
# bucketnfs re-lists a directory from its store once metadata_ttl expires;
# ganesha keeps its dirents cached far longer.  A run lasts minutes, so a
# 30 s TTL would measure store listings in the middle of "cached" rounds.
# The cold case is measured separately: the warm-up's first listing.
ttl=${BNFS_BENCH_TTL:-3600}

usage() { bench_usage 5 7; }


while (($#)); do
    case $1 in
        --peer-only) peer_only=1 ;;
        --calibrate) calibrate=1 ;;
        --seconds) bench_need_uint "$1" "${2:-}"; seconds=$2; shift ;;
        --rounds) bench_need_uint "$1" "${2:-}"; rounds=$2; shift ;;
        --depth) bench_need_uint "$1" "${2:-}"; depth=$2; shift ;;
        --read-depth) bench_need_uint "$1" "${2:-}"; read_depth=$2; shift ;;
        --files) bench_need_uint "$1" "${2:-}"; nfiles=$2; shift ;;
        --entries) bench_need_uint "$1" "${2:-}"; entries=$2; shift ;;
        --bigfile-mb) bench_need_uint "$1" "${2:-}"; bigfile_mb=$2; shift ;;
        --data) data=${2:?--data needs a directory}; shift ;;
        --out) out=${2:?--out needs a file}; shift ;;
        --keep) keep=1 ;;
        -h|--help) usage ;;
        *) echo "run.sh: unknown argument $1" >&2; usage ;;
    esac
    shift
done

# Paths given on the command line are relative to where run.sh was called.
[[ $data == /* ]] || data=$caller_dir/$data
[[ -z $out || $out == /* ]] || out=$caller_dir/$out

((seconds <= 60 && rounds <= 9)) || { echo "run.sh: at most 60 s per test and 9 rounds" >&2; exit 2; }
((!(peer_only && calibrate))) || { echo "run.sh: --peer-only or --calibrate, not both" >&2; exit 2; }

# ---- prerequisites -------------------------------------------------------

die2() { echo "run.sh: $*" >&2; exit 2; }

command -v ganesha.nfsd >/dev/null || die2 "ganesha.nfsd not found (tools/install-deps.sh bench)"
compgen -G '/usr/lib/*/ganesha/libfsalvfs.so' >/dev/null || compgen -G '/usr/lib/ganesha/libfsalvfs.so' >/dev/null ||
    die2 "the ganesha VFS FSAL is missing (package nfs-ganesha-vfs)"
command -v python3 >/dev/null || die2 "python3 is needed to find free ports"
[ -x "$nfsbench" ] || die2 "$nfsbench is missing: make build/bench/nfsbench"
if ((!peer_only && !calibrate)) && [ ! -x "$bucketnfsd" ]; then
    {
        echo "=================================================================="
        echo "run.sh: $bucketnfsd DOES NOT EXIST - there is nothing to compare."
        echo "        Build it (make bin/bucketnfsd) or measure the peer alone"
        echo "        with --peer-only (or --calibrate)."
        echo "=================================================================="
    } >&2
    exit 2
fi
[ "$(id -u)" = 0 ] || die2 "ganesha's VFS FSAL needs root (open_by_handle_at)"

# ---- the tree --------------------------------------------------------------

bucket=$data/buckets/bench
stamp="bench-tree v1 files=$nfiles entries=$entries bigfile_mb=$bigfile_mb"

build_tree() {
    local i name t0=$SECONDS
    if [ -e "$bucket" ] && [ ! -e "$data/tree.stamp" ]; then
        die2 "$bucket exists but was not made by run.sh; choose another --data"
    fi
    echo "run.sh: building the test tree in $bucket (cached for later runs)" >&2
    # The stamp marks the folder as ours even if this build is interrupted.
    echo "bench-tree building" >"$data/tree.stamp"
    rm -rf "$bucket"
    mkdir -p "$bucket/files" "$bucket/dir"
    for ((i = 0; i < nfiles; i++)); do
        printf -v name 'sample_%06d.bin' "$i"
        head -c 4096 /dev/urandom >"$bucket/files/$name"
    done
    # Names shaped like camera frames; the listing cost is in the entries.
    for ((i = 0; i < entries; i++)); do
        printf -v name 'frame_%08d.jpg' "$i"
        : >"$bucket/dir/$name"
    done
    head -c "$((bigfile_mb * 1024 * 1024))" /dev/urandom >"$bucket/big.bin"
    echo "$stamp" >"$data/tree.stamp"
    echo "run.sh: tree built in $((SECONDS - t0)) s" >&2
}

load0=$(cut -d' ' -f1-3 /proc/loadavg)
mkdir -p "$data"
if [ "$(cat "$data/tree.stamp" 2>/dev/null)" != "$stamp" ]; then
    build_tree
fi

# ---- servers ----------------------------------------------------------------

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bnfs-bench.XXXXXX")
pids=()
names=()

stop_servers() {
    local i
    for i in "${!pids[@]}"; do bench_stop_pid "${pids[$i]}" "${names[$i]}"; done
    pids=()
}

cleanup() {
    stop_servers
    if ((keep)); then
        echo "run.sh: kept configs and logs in $tmp" >&2
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# Four ports nobody listens on, found by binding them at once.
read -r port_a1 port_a2 port_b1 port_b2 < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(4)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])
')
nfs_ports=()
mnt_ports=()

# start_ganesha NAME NFS_PORT MOUNT_PORT
start_ganesha() {
    local dir=$tmp/$1
    mkdir -p "$dir/recovery"
    bench_norpcbind "$dir/norpcbind.so"
    bench_ganesha_conf "$dir/ganesha.conf" "$2" "$3" "$bucket" "$dir/recovery"
    LD_PRELOAD=$dir/norpcbind.so ganesha.nfsd -F -L "$dir/ganesha.log" \
        -f "$dir/ganesha.conf" -p "$dir/ganesha.pid" &
    pids+=($!)
    names+=("$1")
    nfs_ports+=("$2")
    mnt_ports+=("$3")
}

# start_bucketnfsd NAME NFS_PORT MOUNT_PORT
start_bucketnfsd() {
    local dir=$tmp/$1
    mkdir -p "$dir/state" "$dir/cache"
    cat >"$dir/bucketnfs.conf" <<EOF
server = { listen = "127.0.0.1"; nfs_port = $2; mount_port = $3; rpcbind = false;
           threads = 16; state_dir = "$dir/state"; };
cache  = { dirs = ( "$dir/cache" ); size = "1G"; block_size = "1M"; readahead_max = "64M"; };
stores = ( { name = "local"; type = "dir"; root = "$data/buckets"; } );
exports_file = "exports.conf";
EOF
    cat >"$dir/exports.conf" <<EOF
exports = ( { path = "/bench"; store = "local"; bucket = "bench"; prefix = "";
              access = "ro"; clients = ( "127.0.0.0/8" ); squash = "none";
              metadata_ttl = $ttl; } );
EOF
    "$bucketnfsd" -c "$dir/bucketnfs.conf" -f 2>"$dir/bucketnfsd.log" &
    pids+=($!)
    names+=("$1")
    nfs_ports+=("$2")
    mnt_ports+=("$3")
}

# Wait (at most 30 s per port) until server $1 (index) accepts TCP on both
# its ports; give up at once if it exits.
wait_listening() {
    local i=$1 port n
    for port in "${nfs_ports[$i]}" "${mnt_ports[$i]}"; do
        for ((n = 0; ; n++)); do
            if ! kill -0 "${pids[$i]}" 2>/dev/null; then
                echo "run.sh: ${names[$i]} exited during start-up; its log:" >&2
                tail -n 20 "$tmp/${names[$i]}"/*.log >&2 || true
                exit 1
            fi
            if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
                break
            fi
            if ((n >= 300)); then
                echo "run.sh: ${names[$i]} is not listening on $port after 30 s" >&2
                exit 1
            fi
            sleep 0.1
        done
    done
}

start_ganesha ganesha "$port_a1" "$port_a2"
wait_listening 0
if ((calibrate)); then
    start_ganesha ganesha2 "$port_b1" "$port_b2"
    wait_listening 1
elif ((!peer_only)); then
    start_bucketnfsd bucketnfs "$port_b1" "$port_b2"
    wait_listening 1
fi

# ---- measurements -----------------------------------------------------------

# Generous outer bound for one nfsbench run: 2 depths x 2 tests + read, each
# t + 10 s drain; readdirplus passes of up to max(3t, 60 s); setup calls.
limit=$((20 * seconds + 300))

# run_bench INDEX SECONDS PASSES OUTFILE
run_bench() {
    local i=$1 rc=0
    timeout -k 5 "$limit" "$nfsbench" -s 127.0.0.1 -p "${nfs_ports[$i]}" \
        -m "${mnt_ports[$i]}" -e /bench -f files -N "$nfiles" -D dir -E "$entries" \
        -P "$3" -b big.bin -q "$depth" -Q "$read_depth" -t "$2" >"$4" 2>"$4.err" || rc=$?
    if ((rc)); then
        echo "run.sh: nfsbench against ${names[$i]} failed (status $rc):" >&2
        cat "$4.err" >&2
        exit 1
    fi
}

# median OUT FILE... : per key, the median value over the FILEs, in the
# first FILE's order.
median() {
    local out=$1
    shift
    sort -k1,1 -k2,2g "$@" |
        awk '{ n[$1]++; v[$1, n[$1]] = $2 }
             END { for (k in n) print k, v[k, int((n[k] + 1) / 2)] }' >"$out.unsorted"
    awk 'NR == FNR { m[$1] = $2; next } { print $1, m[$1] }' "$out.unsorted" "$1" >"$out"
}

nserv=${#names[@]}
for ((i = 0; i < nserv; i++)); do
    echo "run.sh: ${names[$i]}: warm-up" >&2
    run_bench "$i" 2 1 "$tmp/${names[$i]}.warmup"
done
for ((r = 1; r <= rounds; r++)); do
    for ((k = 0; k < nserv; k++)); do
        i=$((r % 2 ? k : nserv - 1 - k))
        echo "run.sh: round $r/$rounds: ${names[$i]} (up to $seconds s per test)" >&2
        run_bench "$i" "$seconds" 3 "$tmp/${names[$i]}.round$r"
    done
done
for ((i = 0; i < nserv; i++)); do
    median "$tmp/${names[$i]}.out" "$tmp/${names[$i]}".round*
    # The warm-up made the server's first listing of the directory: cold
    # metadata caches in the server (the kernel's are warm for both).
    awk '$1 == "readdirplus_pass_seconds" { print "readdirplus_first_pass_seconds", $2 }' \
        "$tmp/${names[$i]}.warmup" >>"$tmp/${names[$i]}.out"
done
stop_servers

# ---- report ----------------------------------------------------------------

report() {
    echo "# bucketnfs benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
    local mode=
    ((!peer_only)) || mode=" --peer-only"
    ((!calibrate)) || mode=" --calibrate"
    echo "# command: bench/run.sh$mode --seconds $seconds --rounds $rounds" \
        "--depth $depth --read-depth $read_depth --files $nfiles --entries $entries" \
        "--bigfile-mb $bigfile_mb"
    echo "# machine: nproc=$(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')," \
        "$(awk '/MemTotal/ {printf "%.0f GiB RAM", $2 / 1048576}' /proc/meminfo), kernel $(uname -r)"
    echo "# peer: nfs-ganesha $(ganesha.nfsd -v 2>&1 | sed -n 's/.*Release = //p' | head -n1)," \
        "client: libnfs $(dpkg-query -W -f='${Version}' libnfs13 2>/dev/null || echo unknown)"
    echo "# load average before the run: $load0"
    echo "# client and servers share this machine's CPUs; one server is measured at a time;"
    echo "# values are medians of $rounds rounds"
    if ((peer_only)); then
        echo "# bucketnfs: not measured (--peer-only)"
        awk '{ printf "%-28s %14s\n", $1, $2 }' "$tmp/ganesha.out"
    else
        # ratio = second / first server for measured values (the other lines
        # describe the run); for latencies and seconds lower is better.
        awk -v a="${names[0]}" -v b="${names[1]}" 'NR == FNR { g[$1] = $2; next }
             FNR == 1 { printf "%-28s %14s %14s %8s\n", "metric", a, b, "ratio" }
             { measured = ($1 ~ /_per_s$|_lat_|_seconds$/)
               r = (measured && ($1 in g) && g[$1] + 0 != 0) ? sprintf("%.2f", $2 / g[$1]) : "-"
               lower = ($1 ~ /_lat_|_seconds$/) ? "  (lower is better)" : ""
               printf "%-28s %14s %14s %8s%s\n", $1, ($1 in g ? g[$1] : "-"), $2, r, lower }' \
            "$tmp/${names[0]}.out" "$tmp/${names[1]}.out"
    fi
}

if [ -n "$out" ]; then
    report | tee "$out"
else
    report
fi
