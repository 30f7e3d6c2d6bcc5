#!/usr/bin/env bash
# write.sh - write-path benchmarks: bucketnfsd against a peer measured in
# the same run, as ratios.
#
#   bench/write.sh [--tests LIST] [--rounds N] [--seconds N] [--conns N]
#                  [--depth N] [--write-mb N] [--create-kb MIN,MAX] [--delay N]
#                  [--up-large N] [--up-large-mb N] [--up-small N]
#                  [--up-small-kb N] [--upload-threads N] [--direct-parts N]
#                  [--delay-ms N] [--rate-mbs N] [--emulators N]
#                  [--untar-files N] [--rename-files N] [--mv-threads N]
#                  [--old-bin DIR] [--wait-load X] [--data DIR] [--out FILE]
#                  [--keep]
#
# Tests (--tests, comma-separated; default all):
#   seqwrite    nfsbench seqwrite: one file per connection (--conns), 1 MiB
#               UNSTABLE WRITEs, --depth in flight on each, a COMMIT every
#               64 MiB and one at the end (counted), for --seconds or
#               --write-mb per file; MiB/s
#   smallcreate nfsbench smallcreate: CREATE, one WRITE of --create-kb
#               (KiB, drawn per file), COMMIT, file after file in every
#               slot, for --seconds; files/s
#               Both against three servers in the same rounds: ganesha
#               (VFS FSAL) exporting a folder of --data; bucketnfsd with a
#               dir store in --data and writeback_delay --delay (no upload
#               runs while it is measured); the same with writeback_delay 0
#               (every file uploaded as soon as it is quiet: the cost of
#               uploads running).  Caches, stage and exports share one disk.
#   upload      --up-large files of --up-large-mb MiB and --up-small files
#               (0: none) of --up-small-kb KiB written into a bucketnfsd (S3 store,
#               writeback_delay one day: all staged), then `bucketnfs flush
#               --wait` timed until it is all in the bucket; against boto3
#               uploading the same files straight to the store through the
#               same link, --upload-threads files at once (the gateway's
#               cache.upload_threads), parts of 16 MiB one after the other,
#               and again with --direct-parts parts of a file in flight (as
#               the gateway does: four).  The store: --emulators s3rver processes
#               behind build/bench/shapeproxy (--delay-ms each way,
#               --rate-mbs per connection), in a network namespace, as
#               bench/cache.sh sets them up.
#   untar       a tar of --untar-files small files (512 B to 16 KiB)
#               extracted by GNU tar through the Linux kernel client (QEMU,
#               tests/kernel/run.sh), then sync: seconds, ganesha against
#               bucketnfsd (writeback_delay --delay), a fresh server each
#               time.
#   dirrename   a tree of --rename-files files of 4 KiB in 10 folders,
#               written through NFS into a bucketnfsd on the shaped S3
#               store of `upload` (writeback_delay one day), uploaded
#               (flush --wait) and listed once (nfs-ls -R: READDIRPLUS, as a
#               client that browsed it); then the RENAME of its top folder
#               is timed (what `mv` waits for), and `bucketnfs flush --wait`
#               until every object has moved; the bucket must then hold the
#               files under the new prefix only.  Against, in the same
#               rounds: ganesha exporting a local folder with the same tree
#               (the same RENAME from the same client, it_nfsop), and boto3
#               moving the objects through the same link as `aws s3 mv
#               --recursive` does (CopyObject + DeleteObject of each key,
#               --mv-threads 10 at once: the AWS CLI's default).  With
#               --old-bin DIR (its bucketnfsd and bucketnfs, e.g. a build of
#               an earlier commit) that daemon is measured the same way too.
#               The daemons' cache.upload_threads: --upload-threads (4, the
#               default), which is how many files move at once.
#
# Rounds rotate the order of the contenders; the table has medians and
# every round's value, and the 1-minute load average when each began.
# --wait-load X: before each measurement, wait until that load is below X
# (at most 5 minutes, then go on and say so): on a machine shared with
# other jobs, measure in their quiet moments.  Threads waiting on the disk
# count in the load too, so a write benchmark raises it itself.  Every wait is bounded: servers must listen within
# 30 s, every client run is killed by timeout, servers get 10 s to stop.
# Exit status: 0 success, 1 a benchmark or server failed, 2 bad usage or a
# missing prerequisite.
set -euo pipefail

caller_dir=$PWD
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
. tools/retry.sh
. bench/lib.sh

tests=seqwrite,smallcreate,upload,untar,dirrename
rounds=3
seconds=10
conns=4
depth=8
write_mb=1024
create_kb=4,64
delay=3600
up_large=3
up_large_mb=512
up_small=2048
up_small_kb=256
upload_threads=4
direct_parts=4
delay_ms=15
rate_mbs=100
emulators=3
untar_files=10000
rename_files=1000
mv_threads=10
old_bin=
wait_load=0
data=${BNFS_BENCH_WRITE_DATA:-$here/build/bench-write-data}
out=
keep=0
nfsbench=${NFSBENCH:-$here/build/bench/nfsbench}
shapeproxy=${SHAPEPROXY:-$here/build/bench/shapeproxy}
bucketnfsd=${BUCKETNFSD:-$here/bin/bucketnfsd}
bucketnfs=${BUCKETNFS:-$here/bin/bucketnfs}
it_nfsop=${IT_NFSOP:-$here/build/tests/it_nfsop}

usage() { bench_usage 5 12; }
while (($#)); do
    case $1 in
        --tests) tests=${2:?--tests needs a list}; shift ;;
        --rounds) bench_need_uint "$1" "${2:-}"; rounds=$2; shift ;;
        --seconds) bench_need_uint "$1" "${2:-}"; seconds=$2; shift ;;
        --conns) bench_need_uint "$1" "${2:-}"; conns=$2; shift ;;
        --depth) bench_need_uint "$1" "${2:-}"; depth=$2; shift ;;
        --write-mb) bench_need_uint "$1" "${2:-}"; write_mb=$2; shift ;;
        --create-kb) [[ ${2:-} =~ ^[0-9]+,[0-9]+$ ]] || usage; create_kb=$2; shift ;;
        --delay) bench_need_uint "$1" "${2:-}"; delay=$2; shift ;;
        --up-large) bench_need_uint "$1" "${2:-}"; up_large=$2; shift ;;
        --up-large-mb) bench_need_uint "$1" "${2:-}"; up_large_mb=$2; shift ;;
        --up-small) [[ ${2:-} =~ ^[0-9]+$ ]] || usage; up_small=$2; shift ;;
        --up-small-kb) bench_need_uint "$1" "${2:-}"; up_small_kb=$2; shift ;;
        --upload-threads) bench_need_uint "$1" "${2:-}"; upload_threads=$2; shift ;;
        --direct-parts) bench_need_uint "$1" "${2:-}"; direct_parts=$2; shift ;;
        --delay-ms) [[ ${2:-} =~ ^[0-9]+$ ]] || usage; delay_ms=$2; shift ;;
        --rate-mbs) bench_need_uint "$1" "${2:-}"; rate_mbs=$2; shift ;;
        --emulators) bench_need_uint "$1" "${2:-}"; emulators=$2; shift ;;
        --untar-files) bench_need_uint "$1" "${2:-}"; untar_files=$2; shift ;;
        --rename-files) bench_need_uint "$1" "${2:-}"; rename_files=$2; shift ;;
        --mv-threads) bench_need_uint "$1" "${2:-}"; mv_threads=$2; shift ;;
        --old-bin) old_bin=${2:?--old-bin needs a directory}; shift ;;
        --wait-load) [[ ${2:-} =~ ^[0-9]+(\.[0-9]+)?$ ]] || usage; wait_load=$2; shift ;;
        --data) data=${2:?--data needs a directory}; shift ;;
        --out) out=${2:?--out needs a file}; shift ;;
        --keep) keep=1 ;;
        -h | --help) usage ;;
        *) echo "write.sh: unknown argument $1" >&2; usage ;;
    esac
    shift
done
[[ $data == /* ]] || data=$caller_dir/$data
[[ -z $out || $out == /* ]] || out=$caller_dir/$out
[[ -z $old_bin || $old_bin == /* ]] || old_bin=$caller_dir/$old_bin
create_min=$((${create_kb%,*} * 1024)) create_max=$((${create_kb#*,} * 1024))
((create_min > 0 && create_min <= create_max && create_max <= 1048576)) ||
    { echo "write.sh: --create-kb MIN,MAX: 1 <= MIN <= MAX <= 1024" >&2; exit 2; }
((seconds <= 120 && rounds <= 9 && emulators <= 8 && conns <= 16 && up_large <= 16 &&
    up_small_kb <= 1024 && untar_files <= 100000 && upload_threads <= 64 &&
    rename_files <= 10000 && rename_files % 10 == 0 && mv_threads <= 64)) ||
    { echo "write.sh: at most 120 s per test, 9 rounds, 8 emulators, 16 connections," \
        "16 large files, small files of 1024 KiB, 100,000 files to untar, 64 upload threads," \
        "10,000 files to rename (a multiple of 10), 64 mv threads" >&2; exit 2; }
want() { [[ ,$tests, == *,$1,* ]]; }
for t in ${tests//,/ }; do
    case $t in seqwrite | smallcreate | upload | untar | dirrename) ;;
        *) echo "write.sh: unknown test $t" >&2; usage ;; esac
done
local_tests=
for t in seqwrite smallcreate; do want $t && local_tests+=${local_tests:+,}$t; done

# ---- prerequisites -------------------------------------------------------

die2() { echo "write.sh: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die2 "needs root (ganesha's VFS FSAL, network namespaces)"
[ -x "$bucketnfsd" ] || die2 "$bucketnfsd is missing: make bin/bucketnfsd"
[ -x "$nfsbench" ] || die2 "$nfsbench is missing: make build/bench/nfsbench"
command -v python3 >/dev/null || die2 "python3 is needed"
if [ -n "$local_tests" ] || want untar || want dirrename; then
    command -v ganesha.nfsd >/dev/null || die2 "ganesha.nfsd not found (tools/install-deps.sh bench)"
fi
if want upload || want dirrename; then
    [ -x "$bucketnfs" ] || die2 "$bucketnfs is missing: make bin/bucketnfs"
    [ -x "$shapeproxy" ] || die2 "$shapeproxy is missing: make build/bench/shapeproxy"
    command -v ip >/dev/null || die2 "ip (iproute2) not found"
    command -v node >/dev/null && command -v npm >/dev/null || die2 "node and npm are needed for s3rver"
    python3 -c 'import boto3' 2>/dev/null || die2 "python3 boto3 is needed (python3-boto3)"
    bench_s3emu_install
fi
if want dirrename; then
    [ -x "$it_nfsop" ] || die2 "$it_nfsop is missing: make tests"
    command -v nfs-ls >/dev/null || die2 "nfs-ls (libnfs-utils) not found"
    if [ -n "$old_bin" ]; then
        [ -x "$old_bin/bucketnfsd" ] && [ -x "$old_bin/bucketnfs" ] ||
            die2 "--old-bin $old_bin: needs bucketnfsd and bucketnfs"
    fi
fi
if want untar; then
    # The guest's userland is this host's root over 9p, but /tmp is its own.
    case $data/ in /tmp/* | /run/* | /mnt/*) die2 "untar: --data must be outside /tmp, /run and /mnt" ;; esac
    img=$(tests/kernel/run.sh --prepare-only) || die2 "untar: the QEMU guest cannot run here (tests/kernel/run.sh --prepare-only)"
    kernel=$(sed -n 's/^kernel=//p' <<<"$img")
    initrd=$(sed -n 's/^initrd=//p' <<<"$img")
fi

load0=$(cut -d' ' -f1-3 /proc/loadavg)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bnfs-write-bench.XXXXXX")
pids=() # every process started here, stopped by id at exit
names=()
netns=
trap bench_cleanup EXIT
trap 'exit 1' INT TERM
mkdir -p "$data"

results=$tmp/results # "section key value..." lines for the report
: >"$results"
emit() { echo "$*" >>"$results"; }

# built KIND STAMP: was $data/KIND made with these sizes (its stamp says
# STAMP)?  If not, marks it as being made; the caller writes STAMP when done.
built() { bench_built "$data" "$1" "$2"; }

# rounds_of KEY FILE...: the values of KEY in the FILEs, in round order, "a / b / c".
rounds_of() {
    local key=$1 f v= s=
    shift
    for f in "$@"; do
        v=$(awk -v k="$key" '$1 == k { print $2 }' "$f" 2>/dev/null)
        s+=${s:+ / }${v:--}
    done
    echo "$s"
}

# rotate N WORD...: the WORDs rotated left N times.
rotate() {
    local n=$1 k
    shift
    local a=("$@")
    for ((k = 0; k < n % ${#a[@]}; k++)); do a=("${a[@]:1}" "${a[0]}"); done
    echo "${a[@]}"
}

# A stat of a running daemon: bnfs_stat CONF SECTION KEY.
bnfs_stat() {
    timeout 30 "$bucketnfs" -c "$1" stats | awk -v s="$2" -v k="$3" '$1 == s && $3 == k { print $4 }'
}

# The uploader's counters of a running daemon: wb_stats CONF.
wb_stats() {
    timeout 30 "$bucketnfs" -c "$1" stats |
        awk '$1 == "writeback" && $3 ~ /^(upload_bytes|uploads|superseded|failures)$/ { print $3, $4 }'
}

# The 1-minute load average now, as a "load1 X" line: each round says how
# busy the machine was when it began.  With --wait-load, first wait (5
# minutes at most) until it is below that.
load1() {
    local n l
    for ((n = 0; n < 60; n++)); do
        l=$(cut -d' ' -f1 /proc/loadavg)
        awk -v l="$l" -v w="$wait_load" 'BEGIN { exit !(w == 0 || l < w) }' && break
        ((n)) || echo "write.sh: waiting for the load average ($l) to drop below $wait_load" >&2
        sleep 5
    done
    ((n < 60)) || echo "write.sh: the load average is still $l after 5 minutes: measuring anyway" >&2
    echo "load1 $(cut -d' ' -f1 /proc/loadavg)"
}

# The daemon's CPU time (user + system) so far, seconds.
cpu_of() {
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f\n", ($14 + $15) / hz }' "/proc/$1/stat"
}

# ---- 1: sequential writes and small files against ganesha ----------------

dirstore() { echo 'name = "st"; type = "dir"; root = "'"$1"'";'; }
# Enough dirty room for what one round writes: every file, whole.
dirty_gb=$(((conns * write_mb + 1023) / 1024 + 1))
wcache="size = \"$((4 * dirty_gb))G\"; dirty_max = \"$((2 * dirty_gb))G\";"

run_local() {
    local who r k np mp lim=$((seconds * 2 + 600))
    local -A port_nfs port_mnt conf
    rm -rf "$data/ganesha" "$data/buckets" "$data/buckets0"
    mkdir -p "$data/ganesha" "$data/buckets/wbench" "$data/buckets0/wbench"
    bench_start_ganesha ganesha "$data/ganesha" RW
    port_nfs[ganesha]=$PORT_NFS port_mnt[ganesha]=$PORT_MNT
    bench_start_bucketnfsd bnfs "$(dirstore "$data/buckets")" wbench "$wcache" \
        "access = \"rw\"; metadata_ttl = 3600; writeback_delay = $delay;"
    port_nfs[bnfs]=$PORT_NFS port_mnt[bnfs]=$PORT_MNT conf[bnfs]=$tmp/bnfs/bucketnfs.conf
    bench_start_bucketnfsd bnfs0 "$(dirstore "$data/buckets0")" wbench "$wcache" \
        'access = "rw"; metadata_ttl = 3600; writeback_delay = 0;'
    port_nfs[bnfs0]=$PORT_NFS port_mnt[bnfs0]=$PORT_MNT conf[bnfs0]=$tmp/bnfs0/bucketnfs.conf
    local args=(-C "$conns" -Q "$depth" -B "$((write_mb << 20))" -z "$create_min,$create_max")
    for who in ganesha bnfs bnfs0; do
        echo "write.sh: $who: warm-up (2 s of each test)" >&2
        bench_nfsb "$tmp/$who.warm" "$lim" "${port_nfs[$who]}" "${port_mnt[$who]}" "${args[@]}" \
            -T "$local_tests" -t 2
    done
    for ((r = 1; r <= rounds; r++)); do
        for who in $(rotate $((r - 1)) ganesha bnfs bnfs0); do
            np=${port_nfs[$who]} mp=${port_mnt[$who]}
            if [ "$who" = bnfs0 ]; then
                # Nothing of an earlier round may still be uploading.
                timeout 600 "$bucketnfs" -c "${conf[$who]}" flush --wait >/dev/null
                wb_stats "${conf[$who]}" >"$tmp/$who.stats0"
            fi
            echo "write.sh: round $r/$rounds: $who ($local_tests, up to $seconds s each)" >&2
            load1 >"$tmp/$who.load$r"
            bench_nfsb "$tmp/$who.round$r" "$lim" "$np" "$mp" "${args[@]}" -T "$local_tests" -t "$seconds"
            cat "$tmp/$who.load$r" >>"$tmp/$who.round$r"
            if [ "$who" = bnfs0 ]; then
                # What the uploader did while the client wrote (and cleaned up).
                wb_stats "${conf[$who]}" | awk 'NR == FNR { a[$1] = $2; next }
                    { printf "wb0_%s %.0f\n", $1, $2 - a[$1] }' "$tmp/$who.stats0" - >>"$tmp/$who.round$r"
            fi
        done
    done
    local key
    for key in seqwrite_mib_per_s seqwrite_last_commit_seconds smallcreate_files_per_s \
        smallcreate_lat_p50_us; do
        want "${key%%_*}" || continue
        emit local "$key" "$(bench_median "$key" "$tmp"/ganesha.round[0-9])" \
            "$(bench_median "$key" "$tmp"/bnfs.round[0-9])" "$(bench_median "$key" "$tmp"/bnfs0.round[0-9])"
        emit rounds "$key" "$(rounds_of "$key" "$tmp"/ganesha.round[0-9])" \
            "| $(rounds_of "$key" "$tmp"/bnfs.round[0-9]) | $(rounds_of "$key" "$tmp"/bnfs0.round[0-9])"
    done
    emit rounds load1 "$(rounds_of load1 "$tmp"/ganesha.round[0-9]) | $(rounds_of load1 "$tmp"/bnfs.round[0-9])" \
        "| $(rounds_of load1 "$tmp"/bnfs0.round[0-9])"
    for key in wb0_upload_bytes wb0_uploads wb0_superseded wb0_failures seqwrite_cleanup_errno \
        smallcreate_cleanup_errno; do
        grep -q "^$key " "$tmp"/bnfs0.round[0-9] || continue
        emit rounds "$key" "- | - | $(rounds_of "$key" "$tmp"/bnfs0.round[0-9])"
    done
    for who in ganesha bnfs bnfs0; do
        emit wsize "$who" "$(awk '$1 ~ /_io_size$/ { print $2; exit }' "$tmp/$who.round1")"
    done
    for k in "${!pids[@]}"; do
        case ${names[$k]} in ganesha | bnfs | bnfs0) bench_stop "${pids[$k]}" "${names[$k]}" ;; esac
    done
    rm -rf "$data/ganesha" "$data/buckets" "$data/buckets0"
}

# ---- 2: uploads through a shaped link --------------------------------------

up_bytes=$(((up_large * up_large_mb << 20) + (up_small * up_small_kb << 10)))
up_src=$data/upload-src

# The files the direct uploads send: as many and as large as bucketnfsd gets.
build_upload_src() {
    local stamp="write-bench upload v1 large=$up_large x $up_large_mb MiB small=$up_small x $up_small_kb KiB"
    built upload "$stamp" && return 0
    echo "write.sh: making the files to upload in $up_src (kept for later runs)" >&2
    rm -rf "$up_src"
    mkdir -p "$up_src/large" "$up_src/small"
    local i
    for ((i = 0; i < up_large; i++)); do
        head -c "$((up_large_mb << 20))" /dev/urandom >"$up_src/large/$(printf 'seqwrite_%02d' "$i")"
    done
    python3 - "$up_src/small" "$up_small" "$((up_small_kb << 10))" <<'EOF'
import os, sys
d, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    with open(os.path.join(d, "f%08d" % i), "wb") as f:
        f.write(os.urandom(size))
EOF
    echo "$stamp" >"$data/upload.stamp"
}

# s3py OUT ENDPOINT ARGS...: one s3direct.py run, or die.  Through the
# link from this side of the veth pair, as bucketnfsd; straight to an
# emulator (127.0.0.1) from inside the namespace.
s3py() {
    local o=$1 ep=$2 rc=0 ns=()
    shift 2
    [[ $ep != http://127.0.0.1:* ]] || ns=(ip netns exec "$netns")
    timeout -k 5 3600 "${ns[@]}" python3 bench/s3direct.py "$ep" wup "$@" >"$o" 2>"$o.err" || rc=$?
    ((rc == 0)) || { echo "write.sh: s3direct.py $* failed (status $rc):" >&2; cat "$o.err" >&2; exit 1; }
}
# What reached the bucket must be all of it; then it is emptied for the next.
check_and_clear() { # OUT
    local emu=http://127.0.0.1:${emu_ports[0]} got
    s3py "$1.count" "$emu" count ""
    got=$(awk '$1 == "count_bytes" { print $2 }' "$1.count")
    [ "$got" = "$up_bytes" ] ||
        { echo "write.sh: the bucket holds $got bytes after the upload, not $up_bytes" >&2; exit 1; }
    s3py "$1.clear" "$emu" clear
}

s3store='name = "st"; type = "s3"; endpoint = "ENDPOINT"; region = "us-east-1"; addressing = "path"; credentials = "env";'

# One round of bucketnfsd: stage everything, then time flush --wait.
bnfs_upload_round() { # r
    local r=$1 o=$tmp/up-bnfs.round$1 name=up-bnfs-r$1 t0 t1 c0 c1 pid
    bench_start_bucketnfsd "$name" "${s3store/ENDPOINT/$endpoint}" wup \
        "size = \"$((2 * (up_bytes >> 30) + 4))G\"; dirty_max = \"$(((up_bytes >> 30) + 2))G\"; upload_threads = $upload_threads;" \
        'access = "rw"; metadata_ttl = 3600; writeback_delay = 86400;'
    pid=$DPID
    echo "write.sh: round $r/$rounds: upload: staging $up_large x $up_large_mb MiB and" \
        "$up_small x $up_small_kb KiB in bucketnfsd" >&2
    bench_nfsb "$o.stage1" 1800 "$PORT_NFS" "$PORT_MNT" -T seqwrite -C "$up_large" -Q 8 \
        -B "$((up_large_mb << 20))" -t 1200 -K
    if ((up_small)); then
        bench_nfsb "$o.stage2" 1800 "$PORT_NFS" "$PORT_MNT" -T smallcreate -C 4 -Q 8 -O -N "$up_small" \
            -z "$((up_small_kb << 10)),$((up_small_kb << 10))" -t 1200 -K
    else
        echo "smallcreate_bytes 0" >"$o.stage2"
    fi
    local staged
    staged=$(($(awk '$1 == "seqwrite_bytes" { print $2 }' "$o.stage1") +
        $(awk '$1 == "smallcreate_bytes" { print $2 }' "$o.stage2")))
    ((staged == up_bytes)) || { echo "write.sh: staged $staged bytes, not $up_bytes" >&2; exit 1; }
    echo "write.sh: round $r/$rounds: upload: bucketnfs flush --wait" >&2
    load1 >"$o.load"
    c0=$(cpu_of "$pid")
    t0=$(date +%s.%N)
    timeout 3600 "$bucketnfs" -c "$tmp/$name/bucketnfs.conf" flush --wait >"$o.flush" 2>&1 ||
        { echo "write.sh: flush --wait failed:" >&2; tail "$o.flush" >&2; exit 1; }
    t1=$(date +%s.%N)
    c1=$(cpu_of "$pid")
    awk -v b="$up_bytes" -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" 'BEGIN {
        printf "flush_seconds %.3f\nflush_mib_per_s %.1f\ncpu_s_per_gib %.2f\n", t1 - t0,
            b / 1048576 / (t1 - t0), (c1 - c0) / (b / 1073741824) }' >"$o"
    cat "$o.load" >>"$o"
    echo "parts $(bnfs_stat "$tmp/$name/bucketnfs.conf" writeback parts)" >>"$o"
    echo "uploads $(bnfs_stat "$tmp/$name/bucketnfs.conf" writeback uploads)" >>"$o"
    bench_stop "$pid" "$name"
    rm -rf "${tmp:?}/$name/cache"
    check_and_clear "$o"
}

direct_upload_round() { # r parts
    local o=$tmp/up-direct$2.round$1
    echo "write.sh: round $1/$rounds: upload: boto3, $upload_threads files at once x $2 part(s)" >&2
    load1 >"$o.load"
    s3py "$o" "$endpoint" put "$up_src" "$upload_threads" "$2" 16
    cat "$o.load" >>"$o"
    check_and_clear "$o"
}

# The shaped S3 store, set up once for the tests that use it.
s3_ready() {
    [ -z "$netns" ] || return 0
    bench_s3_setup "$data/s3" wup
    echo "write.sh: S3 emulator at $endpoint: ${delay_ms} ms each way, ${rate_mbs} MB/s per connection," \
        "$emulators s3rver processes" >&2
    # A bucket left over from an interrupted run would add to the counts.
    s3py "$tmp/clear0" "http://127.0.0.1:${emu_ports[0]}" clear
}

run_upload() {
    local r k
    build_upload_src
    s3_ready
    for ((r = 1; r <= rounds; r++)); do
        for k in $(rotate $((r - 1)) bnfs direct1 directP); do
            case $k in
                bnfs) bnfs_upload_round "$r" ;;
                direct1) direct_upload_round "$r" 1 ;;
                directP) direct_upload_round "$r" "$direct_parts" ;;
            esac
        done
    done
    emit upload bnfs "$(bench_median flush_mib_per_s "$tmp"/up-bnfs.round[0-9])" \
        "$(bench_median cpu_s_per_gib "$tmp"/up-bnfs.round[0-9])" "$(rounds_of flush_mib_per_s "$tmp"/up-bnfs.round[0-9])"
    emit upload direct1 "$(bench_median put_mib_per_s "$tmp"/up-direct1.round[0-9])" \
        "$(bench_median put_cpu_s_per_gib "$tmp"/up-direct1.round[0-9])" \
        "$(rounds_of put_mib_per_s "$tmp"/up-direct1.round[0-9])"
    emit upload directP "$(bench_median put_mib_per_s "$tmp/up-direct$direct_parts".round[0-9])" \
        "$(bench_median put_cpu_s_per_gib "$tmp/up-direct$direct_parts".round[0-9])" \
        "$(rounds_of put_mib_per_s "$tmp/up-direct$direct_parts".round[0-9])"
    emit upload parts "$(bench_median parts "$tmp"/up-bnfs.round[0-9])" "$(bench_median uploads "$tmp"/up-bnfs.round[0-9])"
    emit upload load "- -" "$(rounds_of load1 "$tmp"/up-bnfs.round[0-9]) | $(rounds_of load1 "$tmp"/up-direct1.round[0-9])" \
        "| $(rounds_of load1 "$tmp/up-direct$direct_parts".round[0-9])"
}

# ---- 3: the RENAME of a directory in the bucket ---------------------------------

rn_src=$data/rename-src # rtree/dNN/fNNNNN: the tree ganesha and boto3 get
rn_per=$((rename_files / 10))

build_rename_src() {
    local stamp="write-bench rename v1 files=$rename_files x 4 KiB in 10 folders"
    built rename "$stamp" && return 0
    echo "write.sh: making the tree of $rename_files files to rename in $rn_src" >&2
    rm -rf "$rn_src"
    python3 - "$rn_src/rtree" "$rename_files" <<'EOF'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "d%02d" % (i // (n // 10)))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d" % i), "wb") as f:
        f.write(os.urandom(4096))
EOF
    echo "$stamp" >"$data/rename.stamp"
}

# nfs_url NFS_PORT MOUNT_PORT [PATH]: a libnfs URL of the export /bench.
nfs_url() { echo "nfs://127.0.0.1/bench${3:-}?nfsport=$1&mountport=$2"; }

# timed_rename OUT NFS_PORT MOUNT_PORT FROM TO: one RENAME through a client
# mounted beforehand (it_nfsop session), from the request written to the
# answer read: "rename_seconds T" into OUT.  The mount is not in the time;
# FROM and TO are in the export's root, so libnfs sends no LOOKUP first.
timed_rename() {
    local o=$1 line t0 t1 rc=0 cp
    coproc MVC { exec timeout -k 5 1900 "$it_nfsop" "$(nfs_url "$2" "$3")" session 2>"$o.err"; }
    cp=$MVC_PID
    pids+=("$cp")
    names+=(it_nfsop)
    read -r -t 60 line <&"${MVC[0]}" || line=
    [ "$line" = mounted ] || { echo "write.sh: it_nfsop did not mount: $line $(cat "$o.err")" >&2; exit 1; }
    t0=$EPOCHREALTIME
    echo "mv $4 $5" >&"${MVC[1]}"
    read -r -t 1800 line <&"${MVC[0]}" || line="no answer in 1800 s"
    t1=$EPOCHREALTIME
    eval "exec ${MVC[1]}>&-"
    wait "$cp" || rc=$?
    bench_forget "$cp"
    [ "$line" = ok ] || { echo "write.sh: RENAME $4 $5: $line (it_nfsop status $rc)" >&2; exit 1; }
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "rename_seconds %.4f\n", b - a }' >"$o"
}

# rn_list OUT NFS_PORT MOUNT_PORT PATH: a listing of the whole tree
# (READDIRPLUS, as libnfs's opendir reads), which must name every file.
rn_list() {
    timeout -k 5 600 nfs-ls -R "$(nfs_url "$2" "$3" "$4")" >"$1" 2>&1 ||
        { echo "write.sh: nfs-ls -R $4 failed:" >&2; tail -5 "$1" >&2; exit 1; }
    local n
    n=$(grep -c '^-' "$1" || true)
    ((n == rename_files)) || { echo "write.sh: nfs-ls -R $4 listed $n files, not $rename_files" >&2; exit 1; }
}

# rn_check OUT PREFIX FILES: the bucket holds FILES objects of 4 KiB under
# PREFIX/ (directory markers aside); "PREFIX_markers N" into OUT.
rn_check() {
    local emu=http://127.0.0.1:${emu_ports[0]} n b m
    s3py "$1.count-$2" "$emu" count "$2/"
    n=$(awk '$1 == "count_objects" { print $2 }' "$1.count-$2")
    b=$(awk '$1 == "count_bytes" { print $2 }' "$1.count-$2")
    m=$(awk '$1 == "count_markers" { print $2 }' "$1.count-$2")
    ((n - m == $3 && b == $3 * 4096 && ($3 > 0 || n == 0))) || {
        echo "write.sh: the bucket holds $((n - m)) objects ($b bytes) and $m markers under $2/," \
            "not $3 objects of $(($3 * 4096)) bytes" >&2
        exit 1
    }
    echo "${2}_markers $m" >>"$1"
}

# One round of a bucketnfsd: WHO is bnfs, or bnfs-old (the daemon of --old-bin).
bnfs_rename_round() { # WHO R
    local who=$1 r=$2 o=$tmp/rn-$1.round$2 name=rn-$1-r$2 d t0 t1 pid
    local tool=$bucketnfs daemon=$bucketnfsd
    [ "$who" = bnfs ] || tool=$old_bin/bucketnfs daemon=$old_bin/bucketnfsd
    s3py "$o.clear0" "http://127.0.0.1:${emu_ports[0]}" clear
    bucketnfsd=$daemon bench_start_bucketnfsd "$name" "${s3store/ENDPOINT/$endpoint}" wup \
        "size = \"4G\"; dirty_max = \"2G\"; upload_threads = $upload_threads;" \
        'access = "rw"; metadata_ttl = 3600; writeback_delay = 86400;'
    pid=$DPID
    local np=$PORT_NFS mp=$PORT_MNT conf=$tmp/$name/bucketnfs.conf
    echo "write.sh: round $r/$rounds: dirrename: $who: writing $rename_files files, uploading, listing" >&2
    timeout -k 5 60 "$it_nfsop" "$(nfs_url "$np" "$mp")" mkdir /rtree >"$o.mkdir" 2>&1 ||
        { echo "write.sh: mkdir /rtree failed: $(cat "$o.mkdir")" >&2; exit 1; }
    for ((d = 0; d < 10; d++)); do
        bench_nfsb "$o.write$d" 600 "$np" "$mp" -T smallcreate -C 4 -Q 8 -O -N "$rn_per" \
            -z 4096,4096 -w /rtree -t 300 -K
    done
    timeout 1800 "$tool" -c "$conf" flush --wait >"$o.flush0" 2>&1 ||
        { echo "write.sh: flush --wait (the upload) failed:" >&2; tail "$o.flush0" >&2; exit 1; }
    rn_check "$o" rtree "$rename_files"
    rn_list "$o.ls" "$np" "$mp" /rtree
    load1 >"$o.load"
    echo "write.sh: round $r/$rounds: dirrename: $who: RENAME /rtree /rtree-moved" >&2
    timed_rename "$o" "$np" "$mp" /rtree /rtree-moved
    t0=$EPOCHREALTIME
    timeout 1800 "$tool" -c "$conf" flush --wait >"$o.flush" 2>&1 ||
        { echo "write.sh: flush --wait (the moves) failed:" >&2; tail "$o.flush" >&2; exit 1; }
    t1=$EPOCHREALTIME
    awk -v a="$t0" -v b="$t1" -v rn="$(awk '$1 == "rename_seconds" { print $2 }' "$o")" 'BEGIN {
        printf "flush_seconds %.3f\nall_moved_seconds %.3f\n", b - a, rn + b - a }' >>"$o"
    cat "$o.load" >>"$o"
    timeout 30 "$tool" -c "$conf" stats >"$o.stats" 2>&1 || true
    awk '$1 == "inode" && ($3 == "moved" || $3 == "moves_open") { print $3, $4 }' "$o.stats" >>"$o"
    rn_check "$o" rtree-moved "$rename_files"
    rn_check "$o" rtree 0
    bench_stop "$pid" "$name"
    rm -rf "${tmp:?}/$name/cache"
}

ganesha_rename_round() { # R
    local r=$1 o=$tmp/rn-ganesha.round$1 g=$data/rename-ganesha
    rm -rf "${g:?}/rtree" "$g/rtree-moved"
    cp -a "$rn_src/rtree" "$g/rtree"
    sync -f "$g"
    rn_list "$o.ls" "$rn_gport_nfs" "$rn_gport_mnt" /rtree
    load1 >"$o.load"
    echo "write.sh: round $r/$rounds: dirrename: ganesha: RENAME /rtree /rtree-moved" >&2
    timed_rename "$o" "$rn_gport_nfs" "$rn_gport_mnt" /rtree /rtree-moved
    cat "$o.load" >>"$o"
    [ -d "$g/rtree-moved" ] && [ ! -e "$g/rtree" ] ||
        { echo "write.sh: ganesha's RENAME did not move the tree" >&2; exit 1; }
}

direct_rename_round() { # R
    local r=$1 o=$tmp/rn-direct.round$1 emu=http://127.0.0.1:${emu_ports[0]}
    s3py "$o.clear0" "$emu" clear
    s3py "$o.put" "$endpoint" put "$rn_src" "$mv_threads" 1 16
    rn_check "$o" rtree "$rename_files"
    load1 >"$o.load"
    echo "write.sh: round $r/$rounds: dirrename: boto3 CopyObject + DeleteObject, $mv_threads at once" >&2
    s3py "$o.mv" "$endpoint" mv rtree/ rtree-moved/ "$mv_threads"
    cat "$o.mv" "$o.load" >>"$o"
    rn_check "$o" rtree-moved "$rename_files"
    rn_check "$o" rtree 0
}

run_dirrename() {
    local r k who=(bnfs ganesha direct)
    build_rename_src
    s3_ready
    [ -z "$old_bin" ] || who+=(bnfs-old)
    rm -rf "$data/rename-ganesha"
    mkdir -p "$data/rename-ganesha"
    bench_start_ganesha rn-ganesha "$data/rename-ganesha" RW
    rn_gport_nfs=$PORT_NFS rn_gport_mnt=$PORT_MNT
    local gpid=$GPID
    for ((r = 1; r <= rounds; r++)); do
        for k in $(rotate $((r - 1)) "${who[@]}"); do
            case $k in
                bnfs | bnfs-old) bnfs_rename_round "$k" "$r" ;;
                ganesha) ganesha_rename_round "$r" ;;
                direct) direct_rename_round "$r" ;;
            esac
        done
    done
    bench_stop "$gpid" rn-ganesha
    rm -rf "$data/rename-ganesha"
    s3py "$tmp/rn-clear" "http://127.0.0.1:${emu_ports[0]}" clear
    # Per contender: medians of the answer, all moved, the flush after the
    # answer, boto3's move; then every round's values.
    for k in "${who[@]}"; do
        emit dirrename "$k" "$(bench_median rename_seconds "$tmp/rn-$k".round[0-9])" \
            "$(bench_median all_moved_seconds "$tmp/rn-$k".round[0-9])" \
            "$(bench_median flush_seconds "$tmp/rn-$k".round[0-9])" \
            "$(bench_median mv_seconds "$tmp/rn-$k".round[0-9])" \
            "answer $(rounds_of rename_seconds "$tmp/rn-$k".round[0-9]);" \
            "flush $(rounds_of flush_seconds "$tmp/rn-$k".round[0-9]);" \
            "all-moved $(rounds_of all_moved_seconds "$tmp/rn-$k".round[0-9]);" \
            "mv $(rounds_of mv_seconds "$tmp/rn-$k".round[0-9]);" \
            "markers $(rounds_of rtree-moved_markers "$tmp/rn-$k".round[0-9]);" \
            "inode.moved $(rounds_of moved "$tmp/rn-$k".round[0-9]);" \
            "load1 $(rounds_of load1 "$tmp/rn-$k".round[0-9])"
    done
}

# ---- 4: untar through the kernel client --------------------------------------

untar_tar=$data/untar/tree.tar

build_untar() {
    local stamp="write-bench untar v1 files=$untar_files"
    built untar "$stamp" && return 0
    echo "write.sh: making the tarball of $untar_files files (kept for later runs)" >&2
    mkdir -p "$data/untar"
    # 100 files a folder, 512 B to 16 KiB each (fixed seed), like a source
    # tree or a dataset of small annotations.
    python3 - "$untar_tar" "$untar_files" <<'EOF'
import io, random, sys, tarfile
path, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(20261203)
with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as t:
    for d in range((n + 99) // 100):
        ti = tarfile.TarInfo("tree/d%04d" % d)
        ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 1764720000
        t.addfile(ti)
    for i in range(n):
        size = rnd.randint(512, 16384)
        ti = tarfile.TarInfo("tree/d%04d/f%06d.dat" % (i // 100, i))
        ti.size, ti.mode, ti.mtime = size, 0o644, 1764720000
        t.addfile(ti, io.BytesIO(rnd.randbytes(size)))
EOF
    echo "$stamp" >"$data/untar.stamp"
}

# untar_once WHO R: a fresh server, one guest boot, tar x + sync.
untar_once() {
    local who=$1 r=$2 o=$tmp/untar-$1.round$2 rc=0 sp
    local exp=$data/untar-export
    rm -rf "$exp"
    if [ "$who" = ganesha ]; then
        mkdir -p "$exp"
        bench_start_ganesha "untar-ganesha-r$r" "$exp" RW
        sp=$GPID
    else
        mkdir -p "$exp/wbench"
        bench_start_bucketnfsd "untar-bnfs-r$r" "$(dirstore "$exp")" wbench "$wcache" \
            "access = \"rw\"; metadata_ttl = 3600; writeback_delay = $delay;"
        sp=$DPID
    fi
    echo "write.sh: round $r/$rounds: untar: $who (kernel client in QEMU)" >&2
    load1 >"$o.load"
    timeout -k 10 2400 tests/kernel/run.sh --kernel "$kernel" --initrd "$initrd" \
        --nfs-port "$PORT_NFS" --mount-port "$PORT_MNT" --export /bench \
        --env BNFS_UNTAR_TAR="$untar_tar" --env BNFS_UNTAR_FILES="$untar_files" \
        --timeout 2000 --test-timeout 1900 bench/untar-guest.sh >"$o.console" 2>&1 || rc=$?
    bench_stop "$sp" "untar-$who-r$r"
    rm -rf "$exp"
    if ((rc)) || ! grep -q '^BNFS-UNTAR ' "$o.console"; then
        echo "write.sh: untar against $who failed (status $rc):" >&2
        grep -E '^(not )?ok - |^BNFS-UNTAR |run.sh:' "$o.console" >&2 || tail -n 30 "$o.console" >&2
        exit 1
    fi
    # "BNFS-UNTAR tar_seconds=T sync_seconds=S files=N"
    sed -n 's/^BNFS-UNTAR //p' "$o.console" | tr ' ' '\n' | tr '=' ' ' >"$o"
    awk '$1 == "tar_seconds" { t = $2 } $1 == "sync_seconds" { s = $2 }
         END { printf "untar_seconds %.2f\n", t + s }' "$o" >>"$o"
    cat "$o.load" >>"$o"
}

run_untar() {
    local r who
    build_untar
    for ((r = 1; r <= rounds; r++)); do
        for who in $(rotate $((r - 1)) ganesha bnfs); do untar_once "$who" "$r"; done
    done
    local key
    for key in untar_seconds tar_seconds sync_seconds load1; do
        emit untar "$key" "$(bench_median "$key" "$tmp"/untar-ganesha.round[0-9])" \
            "$(bench_median "$key" "$tmp"/untar-bnfs.round[0-9])" \
            "$(rounds_of "$key" "$tmp"/untar-ganesha.round[0-9])" "| $(rounds_of "$key" "$tmp"/untar-bnfs.round[0-9])"
    done
}

[ -z "$local_tests" ] || run_local
! want upload || run_upload
! want untar || run_untar
! want dirrename || run_dirrename

# ---- report ----------------------------------------------------------------

report() {
    echo "# bucketnfs write benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "# command: bench/write.sh --tests $tests --rounds $rounds --seconds $seconds --conns $conns" \
        "--depth $depth --write-mb $write_mb --create-kb $create_kb --delay $delay --up-large $up_large" \
        "--up-large-mb $up_large_mb --up-small $up_small --up-small-kb $up_small_kb" \
        "--upload-threads $upload_threads --direct-parts $direct_parts --delay-ms $delay_ms" \
        "--rate-mbs $rate_mbs --emulators $emulators --untar-files $untar_files" \
        "--rename-files $rename_files --mv-threads $mv_threads${old_bin:+ --old-bin $old_bin} --wait-load $wait_load"
    bench_machine
    echo "# load average before the run: $load0, after: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# values are medians of $rounds rounds; the order of the contenders rotates"
    awk -v delay="$delay" -v upb="$up_bytes" -v up="$up_large x $up_large_mb MiB + $up_small x $up_small_kb KiB" \
        -v threads="$upload_threads" -v parts="$direct_parts" -v nfiles="$untar_files" \
        -v rfiles="$rename_files" -v mvt="$mv_threads" '
        function r(a, b) { return (a == "-" || b == "-" || b + 0 == 0) ? "-" : sprintf("%.2f", a / b) }
        $1 == "local" { l[$2] = $3 " " $4 " " $5; order[++n] = $2 }
        $1 == "rounds" { k = $2; $1 = $2 = ""; rd[k] = substr($0, 3); rorder[++nr] = k }
        $1 == "wsize" { ws = ws " " $2 "=" $3 }
        $1 == "upload" { k = $2; u[k] = $3 " " $4; $1 = $2 = $3 = $4 = ""; ur[k] = substr($0, 5) }
        $1 == "untar" { k = $2; t[k] = $3 " " $4; $1 = $2 = $3 = $4 = ""; tr[k] = substr($0, 5); torder[++nt] = k }
        $1 == "dirrename" { k = $2; dr[k] = $3 " " $4 " " $5 " " $6; $1 = $2 = $3 = $4 = $5 = $6 = ""
            drr[k] = substr($0, 7) }
        END {
            if (n) {
                printf "\n%-30s %10s %10s %7s %10s %7s\n", "local disk (vs ganesha)", "ganesha",
                    "bnfs", "ratio", "bnfs wb0", "ratio"
                for (i = 1; i <= n; i++) {
                    split(l[order[i]], v, " ")
                    printf "%-30s %10s %10s %7s %10s %7s%s\n", order[i], v[1], v[2], r(v[2], v[1]),
                        v[3], r(v[3], v[1]), order[i] ~ /_lat_|_seconds$/ ? "  (lower is better)" : ""
                }
                printf "bnfs: writeback_delay %s; bnfs wb0: writeback_delay 0; WRITE sizes:%s\n", delay, ws
                printf "rounds (ganesha | bnfs | bnfs wb0):\n"
                for (i = 1; i <= nr; i++) printf "  %-28s %s\n", rorder[i], rd[rorder[i]]
            }
            if ("bnfs" in u) {
                printf "\n%-42s %10s %10s %10s\n", "upload " up, "MiB/s", "CPU s/GiB", "bnfs / it"
                split(u["bnfs"], b, " ")
                printf "%-42s %10s %10s\n", "bucketnfs flush --wait (" threads " threads)", b[1], b[2]
                split(u["direct1"], v, " ")
                printf "%-42s %10s %10s %10s\n", "boto3, " threads " files x 1 part at once", v[1], v[2], r(b[1], v[1])
                split(u["directP"], v, " ")
                printf "%-42s %10s %10s %10s\n", "boto3, " threads " files x " parts " parts at once", v[1], v[2], r(b[1], v[1])
                printf "rounds: bnfs %s; boto3 x1 %s; boto3 x%s %s\n", ur["bnfs"], ur["direct1"], parts, ur["directP"]
                split(u["parts"], v, " ")
                printf "bucketnfs: %s multipart parts, %s uploads per flush\n", v[1], v[2]
                printf "load1 at the start of each (bnfs | x1 | x%s): %s\n", parts, ur["load"]
            }
            if ("untar_seconds" in t) {
                printf "\n%-30s %10s %10s %10s\n", "untar " nfiles " files, kernel", "ganesha", "bnfs",
                    "speed"
                for (i = 1; i <= nt; i++) {
                    k = torder[i]
                    split(t[k], v, " ")
                    printf "%-30s %10s %10s %10s\n", k, v[1], v[2], k == "untar_seconds" ? r(v[1], v[2]) : ""
                }
                printf "(seconds, lower is better; speed = ganesha seconds / bnfs seconds)\n"
                printf "rounds (ganesha | bnfs):\n"
                for (i = 1; i <= nt; i++) printf "  %-28s %s\n", torder[i], tr[torder[i]]
            }
            if ("bnfs" in dr) {
                printf "\n%-46s %10s %10s %10s\n", "dirrename: " rfiles " files x 4 KiB, 10 folders",
                    "answer s", "flush s", "all moved"
                split(dr["bnfs"], b, " ")
                printf "%-46s %10s %10s %10s\n", "bucketnfs RENAME, flush --wait (" threads " threads)",
                    b[1], b[3], b[2]
                if ("bnfs-old" in dr) {
                    split(dr["bnfs-old"], o, " ")
                    printf "%-46s %10s %10s %10s\n", "bucketnfs --old-bin (copies before answering)",
                        o[1], o[3], o[2]
                }
                split(dr["ganesha"], g, " ")
                printf "%-46s %10s %10s %10s\n", "ganesha RENAME (local folder)", g[1], "", ""
                split(dr["direct"], d, " ")
                printf "%-46s %10s %10s %10s\n", "boto3 copy + delete, " mvt " at once", "", "", d[4]
                printf "(seconds, lower is better; all moved = the answer + flush --wait after it)\n"
                printf "answer, bucketnfs / ganesha: %s; all moved, bucketnfs / boto3: %s\n",
                    r(b[1], g[1]), r(b[2], d[4])
                if ("bnfs-old" in dr)
                    printf "answer, --old-bin / bucketnfs: %s; all moved, bucketnfs / --old-bin: %s\n",
                        r(o[1], b[1]), r(b[2], o[2])
                printf "rounds:\n"
                split("bnfs bnfs-old ganesha direct", ko, " ")
                for (i = 1; i <= 4; i++) if (ko[i] in dr) printf "  %-9s %s\n", ko[i], drr[ko[i]]
            }
        }' "$results"
}

if [ -n "$out" ]; then report | tee "$out"; else report; fi
