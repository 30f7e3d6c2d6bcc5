# lib.sh - helpers for integration tests: free ports, a daemon on
# 127.0.0.1 with its own state, counting results.  Source it.
#
#   it_setup            make $IT_TMP (removed at exit, with the daemon)
#   it_write_conf NAME  write $IT_TMP/NAME/{bucketnfs,exports}.conf for a dir store
#   it_write_s3_conf NAME ENDPOINT BUCKET CREDENTIALS [export keys]
#                       the same for an s3 store (path-style, us-east-1)
#   it_start NAME       start bin/bucketnfsd -f on free ports; sets NFS_PORT MOUNT_PORT PID_NAME
#   it_stop NAME        SIGTERM and wait (bounded)
#   it_kill9 NAME       kill -9 (a crash) and reap
#   ok NAME / fail NAME DETAIL / check NAME CMD...   count results
#   it_fold FILE RC     add the "N passed, N failed" of a sub-test's output
#   it_sub NAME CMD...  run a sub-test into $IT_TMP/NAME.out, show it, it_fold it
#   it_done             print "N passed, N failed"; exit status
#
# The configurations it_write_conf and it_write_s3_conf write take, from the
# environment: IT_ACCESS (the export's access, "ro" unless set),
# IT_CACHE_SIZE (cache.size, "256M") and IT_CACHE_EXTRA (more cache keys,
# e.g. 'dirty_max = "8M";').

IT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
IT_BIN=${IT_BIN:-$IT_ROOT/bin/bucketnfsd}
IT_BUILD=${IT_BUILD:-$IT_ROOT/build}
IT_PASSED=0
IT_FAILED=0
declare -A IT_PIDS

ok() { IT_PASSED=$((IT_PASSED + 1)); echo "ok - $1"; }
fail() { IT_FAILED=$((IT_FAILED + 1)); echo "not ok - $1: ${2:-}"; }
check() {
    local name=$1; shift
    if "$@" >"$IT_TMP/check.out" 2>&1; then ok "$name"; else fail "$name" "$(tail -5 "$IT_TMP/check.out")"; fi
}

it_cleanup() {
    for n in "${!IT_PIDS[@]}"; do
        kill -TERM "${IT_PIDS[$n]}" 2>/dev/null
    done
    sleep 0.2
    for n in "${!IT_PIDS[@]}"; do
        kill -KILL "${IT_PIDS[$n]}" 2>/dev/null
    done
    [ -n "${IT_TMP:-}" ] && [ -z "${IT_KEEP:-}" ] && rm -rf "$IT_TMP"
}

it_setup() {
    IT_TMP=$(mktemp -d "${TMPDIR:-/tmp}/bnfs-it.XXXXXX")
    trap it_cleanup EXIT
}

# it_write_conf NAME BUCKET_ROOT [extra store keys] [extra export keys]
it_write_conf() {
    local name=$1 root=$2 store_extra=${3:-} export_extra=${4:-}
    mkdir -p "$IT_TMP/$name/state"
    cat >"$IT_TMP/$name/bucketnfs.conf" <<CONF
server = { listen = "127.0.0.1"; nfs_port = 0; mount_port = 0; rpcbind = false;
           threads = 8; state_dir = "state"; log_level = "info"; };
cache = { dirs = ( "cache" ); size = "${IT_CACHE_SIZE:-256M}"; block_size = "1M"; readahead_max = "16M";
          ${IT_CACHE_EXTRA:-} };
stores = ( { name = "local"; type = "dir"; root = "$root"; $store_extra } );
exports_file = "exports.conf";
CONF
    cat >"$IT_TMP/$name/exports.conf" <<CONF
exports = ( { path = "/demo"; store = "local"; bucket = "demo"; prefix = "";
              access = "${IT_ACCESS:-ro}"; clients = ( "127.0.0.0/8" ); squash = "none"; $export_extra } );
CONF
}

# it_write_s3_conf NAME ENDPOINT BUCKET CREDENTIALS [extra export keys]
# CREDENTIALS: the store's credentials keys, e.g. 'credentials = "env";'.
# The file is written 0600 (credentials = "config" insists on it).
it_write_s3_conf() {
    local name=$1 endpoint=$2 bucket=$3 creds=$4 export_extra=${5:-}
    mkdir -p "$IT_TMP/$name/state"
    (umask 077
     cat >"$IT_TMP/$name/bucketnfs.conf" <<CONF
server = { listen = "127.0.0.1"; nfs_port = 0; mount_port = 0; rpcbind = false;
           threads = 8; state_dir = "state"; log_level = "info"; };
cache = { dirs = ( "cache" ); size = "${IT_CACHE_SIZE:-256M}"; block_size = "1M"; readahead_max = "16M";
          ${IT_CACHE_EXTRA:-} };
stores = ( { name = "s3"; type = "s3"; endpoint = "$endpoint"; region = "us-east-1";
             addressing = "path"; $creds } );
exports_file = "exports.conf";
CONF
    )
    cat >"$IT_TMP/$name/exports.conf" <<CONF
exports = ( { path = "/demo"; store = "s3"; bucket = "$bucket"; prefix = "";
              access = "${IT_ACCESS:-ro}"; clients = ( "127.0.0.0/8" ); squash = "none"; $export_extra } );
CONF
}

# it_start NAME: start the daemon, wait (10 s at most) for its ports file.
it_start() {
    local name=$1 dir=$IT_TMP/$1
    rm -f "$dir/state/bucketnfsd.ports"
    ${IT_WRAP:-} "$IT_BIN" -f -c "$dir/bucketnfs.conf" >>"$dir/daemon.log" 2>&1 &
    IT_PIDS[$name]=$!
    for _ in $(seq 1 100); do
        if [ -s "$dir/state/bucketnfsd.ports" ]; then
            NFS_PORT=$(sed -n 's/^nfs_port=//p' "$dir/state/bucketnfsd.ports")
            MOUNT_PORT=$(sed -n 's/^mount_port=//p' "$dir/state/bucketnfsd.ports")
            return 0
        fi
        if ! kill -0 "${IT_PIDS[$name]}" 2>/dev/null; then break; fi
        sleep 0.1
    done
    echo "daemon $name did not start:"; tail -20 "$dir/daemon.log"
    return 1
}

it_stop() {
    local name=$1 pid=${IT_PIDS[$1]:-}
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid"; wait "$pid" 2>/dev/null
        unset "IT_PIDS[$name]"
        return 1
    fi
    wait "$pid"; local rc=$?
    unset "IT_PIDS[$name]"
    return $rc
}

it_kill9() {
    kill -KILL "${IT_PIDS[$1]}" 2>/dev/null
    wait "${IT_PIDS[$1]}" 2>/dev/null
    unset "IT_PIDS[$1]"
}

# nfs_tool CMD ARGS...: libnfs's tools bind a reserved source port, and a
# port still in TIME_WAIT from the previous run makes the connect fail on
# the client side; retry (3 times at most) as a real client reconnects.
nfs_tool() {
    local i
    for i in 1 2 3; do
        "$@" && return 0
        echo "# $1 failed (try $i)" >&2
        sleep 1
    done
    return 1
}

# it_fold FILE RC: a sub-test (a client program, a python script) printed
# its own checks and a "N passed, N failed" line to FILE and exited RC; add
# its counts.  No such line, or RC non-zero with no failure counted, is
# one failure.
it_fold() {
    local line p f
    line=$(grep -oE '[0-9]+ passed, [0-9]+ failed' "$1" | tail -1)
    p=${line%% passed*}; f=${line#*passed, }; f=${f%% failed*}
    [ -n "$line" ] || { p=0; f=0; }
    IT_PASSED=$((IT_PASSED + p)); IT_FAILED=$((IT_FAILED + f))
    if [ -z "$line" ] || { [ "$2" != 0 ] && [ "$f" = 0 ]; }; then
        fail "$(basename "$1") exits 0 with a result line" "rc=$2"
    fi
}

it_sub() {
    local out=$IT_TMP/$1.out rc
    shift
    "$@" >"$out" 2>&1
    rc=$?
    cat "$out"
    it_fold "$out" $rc
}

it_done() {
    echo "$(basename "$0"): $IT_PASSED passed, $IT_FAILED failed"
    [ "$IT_FAILED" = 0 ]
}
