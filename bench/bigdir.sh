#!/usr/bin/env bash
# bigdir.sh - a directory of a million objects (issue 9): bucketnfsd's first
# listing, its index size and memory, and cached READDIRPLUS against ganesha.
#
#   bench/bigdir.sh [--tests LIST] [--entries N] [--rounds N] [--passes N]
#                   [--meta-cache SIZE] [--swr-entries N] [--swr-seconds N]
#                   [--swr-ttl N] [--latency-ms N] [--guest-timeout S]
#                   [--guest-memory SIZE] [--guest-no-find] [--store dir|s3]
#                   [--posix-metadata any|own|ttl]
#                   [--data DIR] [--out FILE] [--keep] [--build-only]
#
# Tests (--tests, comma-separated; default first,cached):
#   first   a fresh bucketnfsd (dir store, --meta-cache) lists cam0/, --entries
#           empty objects named like frames (cam0/000123456.jpg), with one
#           READDIRPLUS walk from cold: the first call waits for the whole
#           listing.  Reports the walk's time, the daemon's peak RSS (VmHWM)
#           before and after, its CPU time, and the Berkeley DB files in
#           state_dir (inodes.db, dirents.db, log.*, and the __db.* regions
#           that hold the cache) per entry
#   cached  READDIRPLUS passes over cam0/ (--passes per round), entries/s:
#           that bucketnfsd (listed, within its TTL) against ganesha's VFS
#           FSAL exporting the same folder, same run, rounds alternating;
#           ganesha first gets one pass of warm-up (its own first listing,
#           reported too)
#   swr     stale-while-revalidate: swr/ (--swr-entries objects) behind a
#           store that sleeps --latency-ms per call (each LIST page of 1000
#           is one call, so a listing takes entries / 1000 x latency at
#           least).  --swr-seconds of READDIRPLUS passes with metadata_ttl
#           3600 (the cached level), then with --swr-ttl, so the TTL
#           expires again and again under the load and background re-listings
#           run; 5 objects are added to swr/ a third of the way in.  Each
#           call's p50/p99/max, the listings the daemon made, and whether a
#           pass after the load lists the added objects
#   guest   the Linux NFS client (tests/kernel/run.sh: QEMU, TCG) mounts a
#           fresh bucketnfsd twice (/mnt/b with nosharecache and default
#           attribute caching: its own cold cache) and runs `ls -f | wc -l`
#           in /mnt/a's cam0/ (the server's first listing included), then
#           `find . -type f | wc -l` in /mnt/b's (bench/bigdir-guest.sh):
#           both must count exactly --entries; their times and each
#           mount's calls (mountstats).  The guest gets --guest-timeout
#           seconds (1500) and --guest-memory (4G: the client keeps an
#           inode and a dentry per entry, about 1 KiB each, so 1 GiB is too
#           small for a million); --guest-no-find runs ls -f alone.  Linux
#           (6.1) reads a directory with READDIRPLUS only for a getdents at
#           position 0 or right after more than 8 LOOKUPs or stats of its
#           entries; getdents calls in a row get READDIR (no types, no
#           handles).  find reads 100,000 names before it looks at them
#           (gnulib fts), so it LOOKUPs nearly every name for its -type: a
#           call each, 2 to 5 ms under TCG.  A million takes an hour or more
#           here: give it --guest-timeout 7200
#
# --store s3 runs first and cached (only those) with bucketnfsd's s3 store
# against an S3 emulator: one s3rver (bench/s3emu, installed with `npm ci`
# when missing) on 127.0.0.1, no shaping, serving DIR/s3 with the bucket
# bigdir holding cam0/ of --entries (default 100,000) empty objects named
# as above, exported with posix_metadata = "own" (--posix-metadata: what
# the daemon's README says for a dataset other tools uploaded; "any", the
# daemon's default, HEADs every object in the first walk).  Before the
# first test the emulator lists cam0/ itself as the daemon does
# (ListObjectsV2, delimiter "/", pages of 1000: s3direct.py list), timed,
# and the count must be --entries; the first test reports the requests
# the emulator logged during the walk.  ganesha exports
# DIR/s3names, cam0/ of the same names as files.  For every page s3rver
# reads the whole folder and stats each file up to the page's start, so
# its listing time grows with the square of the entries: hence the smaller
# default (BENCHMARKS.md has its times).
#
# --data must be outside /tmp, /run and /mnt for guest (the guest's own).
# The tree (DIR/buckets/bigdir) is built once, with a stamp, and kept for
# later runs (--build-only: build it and stop); so are the emulator's folder
# (DIR/s3, written as s3rver lays out what it is PUT: far faster than
# PUTs) and DIR/s3names.  Every wait is bounded: servers must listen within
# 30 s, every nfsbench run is killed by timeout, servers get 10 s to stop.
# Exit status: 0 success, 1 a benchmark or server failed, 2 bad usage or a
# missing prerequisite.
set -euo pipefail

caller_dir=$PWD
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
. tools/retry.sh
. bench/lib.sh

tests=first,cached
entries=
store=dir
posix_metadata=
rounds=3
passes=1
meta_cache=64M
swr_entries=100000
swr_seconds=30
swr_ttl=5
latency_ms=20
guest_timeout=1500
guest_memory=4G
guest_find=1
build_only=0
data=${BNFS_BENCH_BIGDIR_DATA:-$here/build/bench-bigdir-data}
out=
keep=0
nfsbench=${NFSBENCH:-$here/build/bench/nfsbench}
bucketnfsd=${BUCKETNFSD:-$here/bin/bucketnfsd}
bucketnfs=${BUCKETNFS:-$here/bin/bucketnfs}
swr_added=5

usage() { bench_usage 5 10; }
while (($#)); do
    case $1 in
        --tests) tests=${2:?--tests needs a list}; shift ;;
        --entries) bench_need_uint "$1" "${2:-}"; entries=$2; shift ;;
        --rounds) bench_need_uint "$1" "${2:-}"; rounds=$2; shift ;;
        --passes) bench_need_uint "$1" "${2:-}"; passes=$2; shift ;;
        --meta-cache) [[ ${2:-} =~ ^[0-9]+[KMGT]?$ ]] || usage; meta_cache=$2; shift ;;
        --swr-entries) bench_need_uint "$1" "${2:-}"; swr_entries=$2; shift ;;
        --swr-seconds) bench_need_uint "$1" "${2:-}"; swr_seconds=$2; shift ;;
        --swr-ttl) bench_need_uint "$1" "${2:-}"; swr_ttl=$2; shift ;;
        --latency-ms) [[ ${2:-} =~ ^[0-9]+$ ]] || usage; latency_ms=$2; shift ;;
        --guest-timeout) bench_need_uint "$1" "${2:-}"; guest_timeout=$2; shift ;;
        --guest-memory) [[ ${2:-} =~ ^[0-9]+[MG]$ ]] || usage; guest_memory=$2; shift ;;
        --data) data=${2:?--data needs a directory}; shift ;;
        --out) out=${2:?--out needs a file}; shift ;;
        --keep) keep=1 ;;
        --build-only) build_only=1 ;;
        --guest-no-find) guest_find=0 ;;
        --store) [[ ${2:-} =~ ^(dir|s3)$ ]] || usage; store=$2; shift ;;
        --posix-metadata) [[ ${2:-} =~ ^(any|own|ttl)$ ]] || usage; posix_metadata=$2; shift ;;
        -h | --help) usage ;;
        *) echo "bigdir.sh: unknown argument $1" >&2; usage ;;
    esac
    shift
done
[ -n "$entries" ] || { [ "$store" = s3 ] && entries=100000 || entries=1000000; }
[ -n "$posix_metadata" ] || [ "$store" = dir ] || posix_metadata=own
[[ $data == /* ]] || data=$caller_dir/$data
[[ -z $out || $out == /* ]] || out=$caller_dir/$out
((entries <= 10000000 && swr_entries <= 10000000 && rounds <= 9 && passes <= 100 &&
    swr_seconds <= 600 && latency_ms <= 10000)) ||
    { echo "bigdir.sh: at most 10,000,000 entries, 9 rounds, 100 passes, 600 s of swr load, 10 s of latency" >&2; exit 2; }
want() { [[ ,$tests, == *,$1,* ]]; }
for t in ${tests//,/ }; do
    case $t in first | cached | swr | guest) ;;
        *) echo "bigdir.sh: unknown test $t" >&2; usage ;; esac
    [[ $store == dir || $t == first || $t == cached ]] ||
        { echo "bigdir.sh: --store s3 runs first and cached only" >&2; exit 2; }
done
[[ $store == dir ]] || ((entries <= 1000000)) ||
    { echo "bigdir.sh: --store s3: at most 1,000,000 entries (s3rver's listing time grows as their square)" >&2; exit 2; }

# ---- prerequisites -------------------------------------------------------

die2() { echo "bigdir.sh: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die2 "needs root (ganesha's VFS FSAL)"
[ -x "$bucketnfsd" ] || die2 "$bucketnfsd is missing: make bin/bucketnfsd"
[ -x "$bucketnfs" ] || die2 "$bucketnfs is missing: make bin/bucketnfs"
[ -x "$nfsbench" ] || die2 "$nfsbench is missing: make build/bench/nfsbench"
command -v python3 >/dev/null || die2 "python3 is needed"
if want guest; then
    case $data/ in /tmp/* | /run/* | /mnt/*) die2 "guest: --data must be outside /tmp, /run and /mnt" ;; esac
    img=$(tests/kernel/run.sh --prepare-only) || die2 "guest: the QEMU guest cannot run here (tests/kernel/run.sh --prepare-only)"
    kernel=$(sed -n 's/^kernel=//p' <<<"$img")
    initrd=$(sed -n 's/^initrd=//p' <<<"$img")
fi
if [ "$store" = s3 ]; then
    command -v node >/dev/null && command -v npm >/dev/null || die2 "node and npm are needed for s3rver"
    python3 -c 'import boto3' 2>/dev/null || die2 "python3 with boto3 is needed (s3direct.py)"
    bench_s3emu_install
fi
if want cached; then
    command -v ganesha.nfsd >/dev/null || die2 "ganesha.nfsd not found (tools/install-deps.sh bench)"
fi

load0=$(cut -d' ' -f1-3 /proc/loadavg)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bnfs-bigdir-bench.XXXXXX")
pids=() # every process started here, stopped by id at exit
names=()
netns=
bucket=$data/buckets/bigdir
s3data=$data/s3
gfolder=$bucket # what ganesha exports
[ "$store" = dir ] || gfolder=$data/s3names
cleanup() {
    # The objects swr adds are not part of the kept tree.
    rm -f "$bucket"/swr/new-*.jpg 2>/dev/null || true
    bench_cleanup
}
trap cleanup EXIT
trap 'exit 1' INT TERM

results=$tmp/results # "key value" lines for the report
: >"$results"
emit() { echo "$*" >>"$results"; }
value() { awk -v k="$1" '$1 == k { print $2; exit }' "$2"; }

# ---- the tree --------------------------------------------------------------

# make_files DIR N [SUFFIX CONTENT]...: N files in DIR named like frames
# (000000123.jpg), one per SUFFIX appended to each name holding CONTENT
# (one empty file each without a SUFFIX).
make_files() {
    python3 - "$@" <<'EOF'
import os, sys
top, n, spec = sys.argv[1], int(sys.argv[2]), sys.argv[3:] or ["", ""]
files = [(spec[i], spec[i + 1].encode()) for i in range(0, len(spec), 2)]
fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
for i in range(n):
    for suffix, content in files:
        f = os.open("%09d.jpg%s" % (i, suffix), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=fd)
        if content:
            os.write(f, content)
        os.close(f)
os.close(fd)
EOF
}

build_tree() {
    local stamp="bigdir v1 entries=$entries swr_entries=$swr_entries"
    bench_built "$data" tree "$stamp" "$bucket" bigdir.sh && return 0
    echo "bigdir.sh: building $entries + $swr_entries empty objects in $bucket (kept for later runs)" >&2
    local t0=$SECONDS
    rm -rf "$bucket"
    mkdir -p "$bucket/cam0" "$bucket/swr"
    make_files "$bucket/cam0" "$entries"
    make_files "$bucket/swr" "$swr_entries"
    echo "$stamp" >"$data/tree.stamp"
    echo "bigdir.sh: tree built in $((SECONDS - t0)) s" >&2
}

# The emulator's folder as s3rver 3.7 leaves it after a PUT of an empty
# object with boto3: KEY._S3rver_object (the body), KEY._S3rver_object.md5
# (the ETag, the MD5 of nothing) and KEY._S3rver_metadata.json (the
# Content-Type); the bucket is a folder.  And ganesha's folder of the same names.
build_s3() {
    local stamp="bigdir s3 v1 entries=$entries"
    bench_built "$data" s3 "$stamp" "$s3data" bigdir.sh && return 0
    echo "bigdir.sh: building the emulator's bucket of $entries empty objects in $s3data" \
        "and $gfolder (kept for later runs)" >&2
    local t0=$SECONDS
    rm -rf "$s3data" "$gfolder"
    mkdir -p "$s3data/bigdir/cam0" "$gfolder/cam0"
    make_files "$s3data/bigdir/cam0" "$entries" ._S3rver_object "" \
        ._S3rver_object.md5 d41d8cd98f00b204e9800998ecf8427e \
        ._S3rver_metadata.json $'{\n  "content-type": "binary/octet-stream"\n}'
    make_files "$gfolder/cam0" "$entries"
    echo "$stamp" >"$data/s3.stamp"
    echo "bigdir.sh: emulator's bucket built in $((SECONDS - t0)) s" >&2
}

# The emulator, and its own listing of cam0/ (which must hold --entries).
start_s3() {
    local port
    read -r port < <(bench_free_ports 1)
    bench_s3rver s3rver "$s3data" "$port" ""
    endpoint=http://127.0.0.1:$port
    bench_s3rver_env
    echo "bigdir.sh: s3rver lists cam0/ itself ($entries objects)" >&2
    local o=$tmp/emu-list rc=0
    timeout -k 5 7200 python3 bench/s3direct.py "$endpoint" bigdir list cam0/ >"$o" 2>"$o.err" || rc=$?
    ((rc == 0)) || { echo "bigdir.sh: s3direct.py list failed (status $rc):" >&2; cat "$o.err" >&2; exit 1; }
    [ "$(value list_keys "$o")" = "$entries" ] ||
        { echo "bigdir.sh: the emulator lists $(value list_keys "$o") objects in cam0/, not $entries" >&2; exit 1; }
    emit emu_list_s "$(value list_seconds "$o")"
    emit emu_list_pages "$(value list_pages "$o")"
}
# Requests s3rver answered so far (a log line each).
emu_requests() { grep -c -E ' (200|206|304|404|416|500|503) ' "$tmp/s3rver.log" || true; }

# ---- bucketnfsd ------------------------------------------------------------

# start_bnfs NAME TTL [STORE_EXTRA]: a fresh bucketnfsd (empty state_dir)
# serving the bucket read-only; sets PORT_NFS PORT_MNT DPID.
start_bnfs() {
    local st="name = \"st\"; type = \"dir\"; root = \"$data/buckets\"; ${3:-}"
    [ "$store" = dir ] || st="name = \"st\"; type = \"s3\"; endpoint = \"$endpoint\"; region = \"us-east-1\";
        addressing = \"path\"; credentials = \"env\"; ${3:-}"
    bench_start_bucketnfsd "$1" "$st" \
        bigdir 'size = "1G";' "access = \"ro\"; metadata_ttl = $2;${posix_metadata:+ posix_metadata = \"$posix_metadata\";}" "meta_cache = \"$meta_cache\";"
}

proc_kib() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$2/status"; }
proc_cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / hz }' "/proc/$1/stat"; }
# The daemon's listing and HEAD counters (store and inode table), "name value" lines.
bnfs_list_stats() {
    timeout 30 "$bucketnfs" -s "$tmp/$1/state/bucketnfsd.sock" stats |
        awk '$1 ~ /^(store|inode)$/ && $3 ~ /^(lists|list_entries|heads)$/ { print $1 "_" $3, $4 }'
}

# ---- first listing -----------------------------------------------------------

run_first() {
    start_bnfs bnfs-first 3600
    local dpid=$DPID np=$PORT_NFS mp=$PORT_MNT st=$tmp/bnfs-first/state o=$tmp/first
    sleep 1
    emit first_vmhwm_before_kib "$(proc_kib VmHWM "$dpid")"
    emit first_cpu_before_s "$(proc_cpu_s "$dpid")"
    echo "bigdir.sh: first listing of cam0/ ($entries entries, $store store) from cold" >&2
    local r0=
    [ "$store" = dir ] || r0=$(emu_requests)
    # One pass; nfsbench abandons it after 3 x -t.
    bench_nfsb "$o" 7300 "$np" "$mp" -T readdirplus -D cam0 -E "$entries" -P 1 -t 2400
    [ "$store" = dir ] || emit first_emu_requests "$(($(emu_requests) - r0))"
    emit first_walk_s "$(value readdirplus_pass_seconds "$o")"
    emit first_call_max_s "$(awk '$1 == "readdirplus_call_max_us" { printf "%.2f", $2 / 1e6 }' "$o")"
    emit first_calls "$(value readdirplus_calls_per_pass "$o")"
    emit first_vmhwm_after_kib "$(proc_kib VmHWM "$dpid")"
    emit first_vmrss_after_kib "$(proc_kib VmRSS "$dpid")"
    emit first_cpu_after_s "$(proc_cpu_s "$dpid")"
    # Sizes as the disk holds them (du: allocated blocks; the regions and logs are sparse).
    local f
    for f in inodes.db dirents.db; do
        emit "du_${f%.db}_kib" "$(du -k "$st/$f" | cut -f1)"
    done
    emit du_log_kib "$(du -kc "$st"/log.* | tail -n1 | cut -f1)"
    emit log_files "$(find "$st" -maxdepth 1 -name 'log.*' | wc -l)"
    emit du_regions_kib "$(du -kc "$st"/__db.* 2>/dev/null | tail -n1 | cut -f1)"
    emit du_state_kib "$(du -k -s "$st" | cut -f1)"
    bnfs_list_stats bnfs-first | sed 's/^/first_stat_/' >>"$results"
    FIRST_PID=$dpid FIRST_NP=$np FIRST_MP=$mp
}

# ---- cached READDIRPLUS against ganesha -------------------------------------

run_cached() {
    local r k who np mp lim=$((passes * 600 + 120))
    if [ -z "${FIRST_PID:-}" ]; then
        # Without the first test: a fresh daemon, listed by a warm-up pass.
        run_first
    fi
    bench_start_ganesha ganesha "$gfolder"
    local g_np=$PORT_NFS g_mp=$PORT_MNT g_pid=$GPID
    echo "bigdir.sh: ganesha: warm-up pass (its first listing of cam0/)" >&2
    bench_nfsb "$tmp/ganesha.warmup" 3700 "$g_np" "$g_mp" -T readdirplus -D cam0 -E "$entries" -P 1 -t 1200
    emit ganesha_first_walk_s "$(value readdirplus_pass_seconds "$tmp/ganesha.warmup")"
    for ((r = 1; r <= rounds; r++)); do
        for k in 0 1; do
            who=ganesha np=$g_np mp=$g_mp
            if ((k == r % 2)); then who=bucketnfs np=$FIRST_NP mp=$FIRST_MP; fi
            echo "bigdir.sh: round $r/$rounds: $who ($passes READDIRPLUS passes over cam0/)" >&2
            # Exactly --passes passes unless they take over 200 s.
            bench_nfsb "$tmp/$who.round$r" "$lim" "$np" "$mp" -T readdirplus -D cam0 -E "$entries" \
                -P "$passes" -t 200
        done
    done
    for who in ganesha bucketnfs; do
        emit "${who}_entries_per_s" "$(bench_median readdirplus_entries_per_s "$tmp/$who".round*)"
        emit "${who}_call_p50_us" "$(bench_median readdirplus_call_p50_us "$tmp/$who".round*)"
        emit "${who}_call_p99_us" "$(bench_median readdirplus_call_p99_us "$tmp/$who".round*)"
        emit "${who}_calls_per_pass" "$(bench_median readdirplus_calls_per_pass "$tmp/$who".round*)"
    done
    emit cached_vmhwm_kib "$(proc_kib VmHWM "$FIRST_PID")"
    emit cached_cpu_s "$(proc_cpu_s "$FIRST_PID")"
    bench_stop "$g_pid" ganesha
}

# ---- stale-while-revalidate under load ---------------------------------------

# swr_run NAME TTL: a fresh daemon with a slow store, swr/ listed once (the
# caller waits), then --swr-seconds of passes; with ADD=1 objects appear in
# swr/ a third of the way in.
swr_run() {
    local name=$1 ttl=$2 add=$3 o=$tmp/$1.out
    rm -f "$bucket"/swr/new-*.jpg
    start_bnfs "$name" "$ttl" "latency_ms = $latency_ms;"
    local dpid=$DPID np=$PORT_NFS mp=$PORT_MNT
    bench_nfsb "$o.first" 3700 "$np" "$mp" -T readdirplus -D swr -E "$swr_entries" -P 1 -t 1200
    bnfs_list_stats "$name" >"$o.stats0"
    if ((add)); then
        (
            sleep $((swr_seconds / 3))
            for ((i = 0; i < swr_added; i++)); do : >"$bucket/swr/new-$i.jpg"; done
        ) &
        local adder=$!
    fi
    echo "bigdir.sh: swr: $name: $swr_seconds s of READDIRPLUS passes over swr/ (metadata_ttl $ttl)" >&2
    bench_nfsb "$o" $((swr_seconds * 4 + 300)) "$np" "$mp" -T readdirplus -D swr -P 1000000 -t "$swr_seconds"
    ((!add)) || wait "$adder"
    bnfs_list_stats "$name" >"$o.stats1"
    emit "${name}_passes" "$(value readdirplus_passes "$o")"
    emit "${name}_calls_per_pass" "$(value readdirplus_calls_per_pass "$o")"
    emit "${name}_call_p50_us" "$(value readdirplus_call_p50_us "$o")"
    emit "${name}_call_p99_us" "$(value readdirplus_call_p99_us "$o")"
    emit "${name}_call_max_us" "$(value readdirplus_call_max_us "$o")"
    emit "${name}_first_walk_s" "$(value readdirplus_pass_seconds "$o.first")"
    awk 'NR == FNR { a[$1] = $2; next } { print "'"$name"'_delta_" $1, $2 - ($1 in a ? a[$1] : 0) }' \
        "$o.stats0" "$o.stats1" >>"$results"
    if ((add)); then
        # The added objects show once a background listing has run after
        # they appeared: passes until they do, one TTL plus a listing's time at most.
        local t0=$SECONDS n=0 limit=$((ttl + 120))
        while :; do
            bench_nfsb "$o.after" 600 "$np" "$mp" -T readdirplus -D swr -P 1 -t 1
            n=$(value readdirplus_entries "$o.after")
            ((n == swr_entries + swr_added)) && break
            ((SECONDS - t0 < limit)) || break
            sleep 1
        done
        emit "${name}_entries_after" "$n"
        emit "${name}_added_seen_after_s" "$((SECONDS - t0))"
    fi
    bench_stop "$dpid" "$name"
    rm -f "$bucket"/swr/new-*.jpg
}

run_swr() {
    swr_run swr-cached 3600 0
    swr_run swr-expiring "$swr_ttl" 1
}

# ---- the Linux client in QEMU --------------------------------------------------

run_guest() {
    local o=$tmp/guest rc=0
    start_bnfs bnfs-guest 3600
    local dpid=$DPID
    echo "bigdir.sh: guest: ls -f and find over cam0/ ($entries entries) through the kernel client" >&2
    local t0=$SECONDS
    timeout -k 10 $((guest_timeout + 300)) tests/kernel/run.sh --kernel "$kernel" --initrd "$initrd" \
        --nfs-port "$PORT_NFS" --mount-port "$PORT_MNT" --export /bench --opts-b "" \
        --env BNFS_BIGDIR_ENTRIES="$entries" --env BNFS_BIGDIR_FIND="$guest_find" --timeout "$guest_timeout" --memory "$guest_memory" \
        --test-timeout $((guest_timeout - 60)) bench/bigdir-guest.sh >"$o.console" 2>&1 || rc=$?
    emit guest_boot_to_end_s "$((SECONDS - t0))"
    emit guest_vmhwm_kib "$(proc_kib VmHWM "$dpid")"
    # Store requests of the whole guest run (a file the listing named
    # without POSIX metadata is HEADed when the client stats it).
    bnfs_list_stats bnfs-guest | sed 's/^/guest_stat_/' >>"$results"
    # What the client asked: `ls -f` is served by READDIR once the Linux
    # client sees no stat follow its first READDIRPLUS replies, and `find`
    # then LOOKUPs every name of those attribute-less entries.
    timeout 30 "$bucketnfs" -s "$tmp/bnfs-guest/state/bucketnfsd.sock" stats |
        awk '$1 == "nfs3" && $3 ~ /^(READDIR|READDIRPLUS|LOOKUP|GETATTR)$/ { print "guest_stat_nfs3_" $3, $4 }' >>"$results"
    bench_stop "$dpid" bnfs-guest
    # "BNFS-BIGDIR ls_seconds=T ls_names=N", "BNFS-BIGDIR find_seconds=T find_files=N"
    sed -n 's/^BNFS-BIGDIR //p' "$o.console" | tr ' ' '\n' | sed 's/^/guest_/; s/=/ /' >>"$results"
    if ((rc)) || ! grep -q '^ok - bigdir' "$o.console"; then
        echo "bigdir.sh: guest run failed (status $rc); what it measured:" >&2
        cat "$results" >&2
        grep -E '^(not )?ok - |run.sh:' "$o.console" >&2 || tail -n 30 "$o.console" >&2
        exit 1
    fi
    emit guest_ok 1
}

if [ "$store" = dir ]; then build_tree; else build_s3; fi
((!build_only)) || exit 0
[ "$store" = dir ] || start_s3
want guest && run_guest
want first && run_first
want cached && run_cached
want swr && run_swr
[ -z "${FIRST_PID:-}" ] || bench_stop "$FIRST_PID" bnfs-first

# ---- report ------------------------------------------------------------------

report() {
    echo "# bucketnfs big-directory benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "# command: bench/bigdir.sh --store $store${posix_metadata:+ --posix-metadata $posix_metadata} --tests $tests --entries $entries --rounds $rounds --passes $passes" \
        "--meta-cache $meta_cache --swr-entries $swr_entries --swr-seconds $swr_seconds" \
        "--swr-ttl $swr_ttl --latency-ms $latency_ms --guest-timeout $guest_timeout --guest-memory $guest_memory$( ((guest_find)) || echo " --guest-no-find")"
    bench_machine
    echo "# load average before the run: $load0, after: $(cut -d' ' -f1-3 /proc/loadavg)"
    awk -v n="$entries" -v store="$store" -v rounds="$rounds" -v passes="$passes" -v sn="$swr_entries" \
        -v added="$swr_added" -v lat="$latency_ms" -v ttl="$swr_ttl" '
        { v[$1] = $2 }
        function per(kib) { return kib == "" ? "-" : sprintf("%.0f", kib * 1024 / n) }
        function mib(kib) { return kib == "" ? "-" : sprintf("%.1f", kib / 1024) }
        END {
            if ("first_walk_s" in v) {
                printf "\nfirst listing of %d entries, %s store (one READDIRPLUS walk from cold)\n", n, store
                printf "  %-34s %s s (first call: %s s, %s calls)\n", "walk", v["first_walk_s"],
                    v["first_call_max_s"], v["first_calls"]
                if ("emu_list_s" in v) {
                    printf "  %-34s %s s, %s pages (ListObjectsV2, delimiter /, by boto3)\n",
                        "s3rver alone, listing cam0/", v["emu_list_s"], v["emu_list_pages"]
                    printf "  %-34s %s\n", "s3rver requests during the walk", v["first_emu_requests"]
                }
                printf "  %-34s %s MiB before, %s MiB after (VmRSS after %s MiB)\n", "bucketnfsd VmHWM",
                    mib(v["first_vmhwm_before_kib"]), mib(v["first_vmhwm_after_kib"]),
                    mib(v["first_vmrss_after_kib"])
                printf "  %-34s %.1f s\n", "bucketnfsd CPU during it",
                    v["first_cpu_after_s"] - v["first_cpu_before_s"]
                printf "\nstate_dir after it %34s %12s\n", "MiB", "bytes/entry"
                printf "  %-50s %12s %12s\n", "inodes.db", mib(v["du_inodes_kib"]), per(v["du_inodes_kib"])
                printf "  %-50s %12s %12s\n", "dirents.db", mib(v["du_dirents_kib"]), per(v["du_dirents_kib"])
                printf "  %-50s %12s %12s\n", "log." v["log_files"] " file(s)", mib(v["du_log_kib"]), per(v["du_log_kib"])
                t = v["du_inodes_kib"] + v["du_dirents_kib"] + v["du_log_kib"]
                printf "  %-50s %12s %12s\n", "index (the three above)", mib(t), per(t)
                printf "  %-50s %12s\n", "__db.* regions (none: in memory since DB_PRIVATE)", mib(v["du_regions_kib"])
                printf "  %-50s %12s\n", "du -s state_dir", mib(v["du_state_kib"])
                for (k in v) if (k ~ /^first_stat_/) printf "  %-50s %12s\n", substr(k, 12), v[k]
            }
            if ("bucketnfs_entries_per_s" in v) {
                g = v["ganesha_entries_per_s"]; b = v["bucketnfs_entries_per_s"]
                printf "\ncached READDIRPLUS of %d entries, medians of %d rounds x %d passes\n", n, rounds, passes
                printf "  %-20s %14s %14s %8s\n", "", "ganesha", "bucketnfs", "ratio"
                printf "  %-20s %14s %14s %8s\n", "entries/s", g, b, (g > 0 ? sprintf("%.2f", b / g) : "-")
                printf "  %-20s %14s %14s\n", "call p50 us", v["ganesha_call_p50_us"], v["bucketnfs_call_p50_us"]
                printf "  %-20s %14s %14s\n", "call p99 us", v["ganesha_call_p99_us"], v["bucketnfs_call_p99_us"]
                printf "  %-20s %14s %14s\n", "calls per pass", v["ganesha_calls_per_pass"], v["bucketnfs_calls_per_pass"]
                printf "  %-20s %14s s (its first pass, cold)\n", "ganesha warm-up", v["ganesha_first_walk_s"]
                printf "  %-20s %14s MiB after the cached rounds\n", "bucketnfsd VmHWM", mib(v["cached_vmhwm_kib"])
            }
            if ("guest_ok" in v) {
                printf "\nLinux NFS client in QEMU (TCG), cam0/ of %d entries, fresh bucketnfsd\n", n
                printf "  %-34s %s s, %s names (want %d)\n", "ls -f | wc -l (first listing)", v["guest_ls_seconds"],
                    v["guest_ls_names"], n
                if ("guest_find_seconds" in v)
                    printf "  %-34s %s s, %s files (want %d)\n", "find . -type f | wc -l",
                        v["guest_find_seconds"], v["guest_find_files"], n
                else
                    printf "  %-34s not run (--guest-no-find)\n", "find . -type f | wc -l"
                printf "  %-34s %s s\n", "boot to power-off", v["guest_boot_to_end_s"]
                printf "  %-34s %s MiB\n", "bucketnfsd VmHWM", mib(v["guest_vmhwm_kib"])
                for (k in v) if (k ~ /^guest_stat_/) printf "  %-34s %s\n", substr(k, 12), v[k]
            }
            if ("swr-expiring_call_p99_us" in v) {
                printf "\nstale-while-revalidate: %d entries, store latency %d ms per call\n", sn, lat
                printf "  %-26s %14s %14s\n", "", "ttl 3600", "ttl " ttl
                split("passes calls_per_pass call_p50_us call_p99_us call_max_us first_walk_s", ks, " ")
                for (i = 1; i <= 6; i++)
                    printf "  %-26s %14s %14s\n", ks[i], v["swr-cached_" ks[i]], v["swr-expiring_" ks[i]]
                for (k in v) if (k ~ /^swr-expiring_delta_/)
                    printf "  %-26s %14s %14s\n", substr(k, 20), v["swr-cached_delta_" substr(k, 20)], v[k]
                printf "  %d objects added during the load: a pass lists %s entries (want %d), %s s after the load\n",
                    added, v["swr-expiring_entries_after"], sn + added, v["swr-expiring_added_seen_after_s"]
            }
        }' "$results"
}

if [ -n "$out" ]; then report | tee "$out"; else report; fi
