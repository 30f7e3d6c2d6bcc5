# lib.sh - what the bench scripts share: the peer, ganesha,
# configured the same way for every benchmark.  Source it from the top of
# the repository.
#
#   bench_ganesha_conf FILE NFS_PORT MOUNT_PORT EXPORT_DIR RECOVERY_DIR [RW]
#       write ganesha's configuration (read-only, or read-write with RW)
#   bench_norpcbind OUT
#       build bench/peer/norpcbind.c as OUT, to preload into ganesha
#   bench_built DATA NAME STAMP [TREE WHO]
#       is the kept input NAME (DATA/NAME.stamp) the one STAMP describes?
#       If not, it is marked as being built and the caller builds it

# Defaults as shipped except what running here needs: NFSv3 on TCP only,
# fixed ports, no NLM/RQUOTA (both need rpcbind), MNT of the pseudo path so
# every server mounts "/bench", a private recovery dir.
bench_ganesha_conf() {
    local access=RO
    [ "${6:-}" != RW ] || access=RW
    cat >"$1" <<EOF
NFS_CORE_PARAM {
    NFS_Port = $2;
    MNT_Port = $3;
    Bind_Addr = 127.0.0.1;
    Protocols = 3;
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
    Mount_Path_Pseudo = true;
}
NFSV4 {
    RecoveryRoot = "$5";
    Graceless = true;
}
EXPORT {
    Export_Id = 1;
    Path = "$4";
    Pseudo = "/bench";
    Access_Type = $access;
    Squash = No_Root_Squash;
    Protocols = 3;
    Transports = TCP;
    SecType = sys;
    CLIENT { Clients = 127.0.0.0/8; Access_Type = $access; }
    FSAL { Name = VFS; }
}
EOF
}

# ganesha registers with rpcbind and exits when it cannot: the preload
# makes rpcb_set/rpcb_unset succeed without contacting anyone.
bench_norpcbind() {
    cc -std=c11 -O2 -Wall -Wextra -Werror -shared -fPIC -o "$1" bench/peer/norpcbind.c
}

# ---- what bench/cache.sh and bench/write.sh share ------------------------
#
# The caller sets, before using these:
#   tmp        a folder of its own for configs and logs
#   pids=()    every process it starts (stopped by id by bench_cleanup),
#   names=()   and their names, for messages
#   netns=     the namespace bench_s3_setup makes (deleted by bench_cleanup)
#   keep       1: bench_cleanup leaves $tmp
# and, for bench_nfsb, nfsbench; for bench_s3_setup, shapeproxy, emulators,
# delay_ms and rate_mbs.  Messages start with the script's name.

bench_me=${0##*/}

# bench_cleanup: stop every process started, delete the namespace, $tmp.
bench_cleanup() {
    local i
    for i in "${!pids[@]}"; do bench_stop_pid "${pids[$i]}" "${names[$i]}"; done
    [ -z "${netns:-}" ] || ip netns delete "$netns" 2>/dev/null || true
    if ((keep)); then echo "$bench_me: kept configs and logs in $tmp" >&2; else rm -rf "$tmp"; fi
}

# bench_stop_pid PID NAME: SIGTERM, SIGKILL after 10 s.
bench_stop_pid() {
    local n
    kill -TERM "$1" 2>/dev/null || return 0
    for ((n = 0; n < 100; n++)); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$1" 2>/dev/null; then
        echo "$bench_me: $2 ignored SIGTERM for 10 s, killing it" >&2
        kill -KILL "$1" 2>/dev/null || true
    fi
    wait "$1" 2>/dev/null || true
}

# bench_forget PID: it was stopped already.
bench_forget() {
    local i
    for i in "${!pids[@]}"; do
        [ "${pids[$i]}" != "$1" ] || unset 'pids[i]' 'names[i]'
    done
}

# bench_stop PID NAME: stop it now, and forget it.
bench_stop() {
    bench_stop_pid "$1" "$2"
    bench_forget "$1"
}

# bench_free_ports N: N TCP ports on 127.0.0.1 nobody listens on.
bench_free_ports() {
    python3 -c '
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])' "$1"
}

# bench_wait_port PID HOST PORT NAME: until it accepts TCP (30 s), or die.
bench_wait_port() {
    local n
    for ((n = 0; ; n++)); do
        if ! kill -0 "$1" 2>/dev/null; then
            echo "$bench_me: $4 exited during start-up; its log:" >&2
            tail -n 20 "$tmp/$4.log" >&2 || true
            exit 1
        fi
        (exec 3<>"/dev/tcp/$2/$3") 2>/dev/null && return 0
        ((n < 300)) || { echo "$bench_me: $4 is not listening on $2:$3 after 30 s" >&2; exit 1; }
        sleep 0.1
    done
}

# bench_median KEY FILE...: the median of KEY's values in the FILEs ("-" if none).
bench_median() {
    local key=$1
    shift
    cat "$@" 2>/dev/null | awk -v k="$key" '$1 == k { print $2 }' | sort -g |
        awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : "-" }'
}

# bench_ratio A B: A / B with two decimals, "-" when either is missing.
bench_ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'
}

# bench_start_ganesha NAME EXPORT_DIR [RW]: configured as for bench/run.sh
# (bench_ganesha_conf); sets PORT_NFS PORT_MNT GPID.
bench_start_ganesha() {
    local dir=$tmp/$1
    mkdir -p "$dir/recovery"
    read -r PORT_NFS PORT_MNT < <(bench_free_ports 2)
    bench_norpcbind "$dir/norpcbind.so"
    bench_ganesha_conf "$dir/ganesha.conf" "$PORT_NFS" "$PORT_MNT" "$2" "$dir/recovery" "${3:-}"
    LD_PRELOAD=$dir/norpcbind.so ganesha.nfsd -F -L "$tmp/$1.log" -f "$dir/ganesha.conf" \
        -p "$dir/ganesha.pid" &
    GPID=$!
    bench_server_started "$GPID" "$1"
}

# bench_server_started PID NAME: remember the NFS server just started, and
# wait until it accepts connections on PORT_NFS and PORT_MNT.
bench_server_started() {
    pids+=("$1")
    names+=("$2")
    bench_wait_port "$1" 127.0.0.1 "$PORT_NFS" "$2"
    bench_wait_port "$1" 127.0.0.1 "$PORT_MNT" "$2"
}

# bench_nfsb OUT LIMIT_S NFS_PORT MOUNT_PORT ARGS...: one nfsbench run, or die.
bench_nfsb() {
    local o=$1 lim=$2 np=$3 mp=$4 rc=0
    shift 4
    timeout -k 5 "$lim" "$nfsbench" -s 127.0.0.1 -p "$np" -m "$mp" -e /bench "$@" >"$o" 2>"$o.err" || rc=$?
    if ((rc)); then
        echo "$bench_me: nfsbench $* failed (status $rc):" >&2
        cat "$o.err" >&2
        exit 1
    fi
}

# bench_s3_setup DATA_DIR BUCKET: a network namespace with a veth pair
# (198.18.N.1/.2, the RFC 2544 benchmarking range), $emulators s3rver
# processes on 127.0.0.1 inside it serving DATA_DIR (the first creates
# BUCKET), and $shapeproxy on the veth address in front of them: $delay_ms
# each way, $rate_mbs per connection.  Sets netns, emu_ports, endpoint, and
# exports s3rver's credentials for bucketnfsd and boto3.
bench_s3_setup() {
    local i n=$(($$ % 250 + 1)) proxy_port ups
    netns=bnfsbench-$$
    local vh=bnb$$h vn=bnb$$n host_ip=198.18.$n.1 ns_ip=198.18.$n.2
    ip netns add "$netns"
    ip link add "$vh" type veth peer name "$vn"
    ip link set "$vn" netns "$netns"
    ip addr add "$host_ip/30" dev "$vh"
    ip link set "$vh" up
    ip -n "$netns" addr add "$ns_ip/30" dev "$vn"
    ip -n "$netns" link set "$vn" up
    ip -n "$netns" link set lo up
    mkdir -p "$1"
    read -r -a emu_ports < <(bench_free_ports "$emulators")
    for ((i = 0; i < emulators; i++)); do
        # Only the first creates the bucket; all serve the same folder.
        local b=
        ((i)) || b=$2
        bench_s3rver "s3rver-$i" "$1" "${emu_ports[$i]}" "$b" ip netns exec "$netns"
    done
    read -r proxy_port < <(bench_free_ports 1)
    ups=$(IFS=,; echo "${emu_ports[*]}")
    # The proxy lives no longer than a run can: 2 h.
    ip netns exec "$netns" "$shapeproxy" "$ns_ip" "$proxy_port" 127.0.0.1 "$ups" \
        "$delay_ms" "$rate_mbs" 7200 2>"$tmp/shapeproxy.log" &
    pids+=($!)
    names+=(shapeproxy)
    bench_wait_port "${pids[-1]}" "$ns_ip" "$proxy_port" shapeproxy
    endpoint=http://$ns_ip:$proxy_port
    bench_s3rver_env
}

# bench_s3rver_env: s3rver's default credentials (it checks SigV4 against
# them) in the environment, for bucketnfsd (credentials = "env") and boto3.
bench_s3rver_env() {
    export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
    unset AWS_SESSION_TOKEN AWS_PROFILE
}

# bench_s3rver NAME DATA_DIR PORT BUCKET [WRAPPER...]: one s3rver on
# 127.0.0.1:PORT serving DATA_DIR (creating BUCKET unless it is ""), run
# under WRAPPER (e.g. ip netns exec NS) when given; its log is $tmp/NAME.log
# (a line per request).  Waits until it listens (30 s), or dies.
bench_s3rver() {
    local name=$1 dir=$2 port=$3 cfg=() n
    [ -z "$4" ] || cfg=(--configure-bucket "$4")
    shift 4
    # DES, which s3rver's ListObjectsV2 continuation tokens use, is in
    # OpenSSL 3's legacy provider: without it a listing of more than
    # 1000 keys answers 500.
    "$@" env NODE_OPTIONS=--openssl-legacy-provider bench/s3emu/node_modules/.bin/s3rver -d "$dir" \
        -a 127.0.0.1 -p "$port" "${cfg[@]}" >"$tmp/$name.log" 2>&1 &
    pids+=($!)
    names+=("$name")
    for ((n = 0; n < 300; n++)); do
        grep -q 'listening' "$tmp/$name.log" 2>/dev/null && return 0
        kill -0 "${pids[-1]}" 2>/dev/null || { cat "$tmp/$name.log" >&2; exit 1; }
        sleep 0.1
    done
    echo "$bench_me: $name did not start in 30 s" >&2
    exit 1
}

# bench_s3emu_install: s3rver into bench/s3emu (npm ci) when it is missing.
bench_s3emu_install() {
    if [ ! -x bench/s3emu/node_modules/.bin/s3rver ]; then
        echo "$bench_me: installing s3rver (npm ci in bench/s3emu)" >&2
        (cd bench/s3emu && retry 5 npm ci --no-audit --no-fund >/dev/null)
    fi
}

# bench_machine: the "# machine:" line of a report.
bench_machine() {
    echo "# machine: nproc=$(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')," \
        "$(awk '/MemTotal/ {printf "%.0f GiB RAM", $2 / 1048576}' /proc/meminfo), kernel $(uname -r)"
}

# bench_start_bucketnfsd NAME STORE_KEYS BUCKET CACHE_KEYS EXPORT_KEYS
# [SERVER_KEYS]: a fresh $bucketnfsd (new state and cache folders in
# $tmp/NAME: its cache is cold) serving BUCKET of the store STORE_KEYS
# describe (named "st") as /bench, with the cache, export and extra server
# keys given (libconfig text, e.g. 'size = "8G";' and 'access = "ro";').  Its configuration is
# $tmp/NAME/bucketnfs.conf; sets PORT_NFS PORT_MNT DPID.
bench_start_bucketnfsd() {
    local dir=$tmp/$1
    rm -rf "$dir"
    mkdir -p "$dir/state" "$dir/cache"
    read -r PORT_NFS PORT_MNT < <(bench_free_ports 2)
    cat >"$dir/bucketnfs.conf" <<EOC
server = { listen = "127.0.0.1"; nfs_port = $PORT_NFS; mount_port = $PORT_MNT; rpcbind = false;
           threads = 16; state_dir = "$dir/state"; log_level = "notice"; ${6:-} };
cache  = { dirs = ( "$dir/cache" ); $4 };
stores = ( { $2 } );
exports_file = "exports.conf";
EOC
    cat >"$dir/exports.conf" <<EOC
exports = ( { path = "/bench"; store = "st"; bucket = "$3"; prefix = "";
              clients = ( "127.0.0.0/8" ); squash = "none"; $5 } );
EOC
    "$bucketnfsd" -c "$dir/bucketnfs.conf" -f 2>"$tmp/$1.log" &
    DPID=$!
    bench_server_started "$DPID" "$1"
}

# bench_usage FIRST LAST: print lines FIRST..LAST of the script's header
# comment (its synopsis) and exit 2.
bench_usage() {
    sed -n "$1,$2p" "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# bench_need_uint OPTION VALUE: exit 2 unless VALUE is a positive integer.
bench_need_uint() {
    [[ $2 =~ ^[0-9]+$ ]] && (($2 > 0)) || { echo "$bench_me: $1 needs a positive integer" >&2; exit 2; }
}

# bench_built DATA NAME STAMP [TREE WHO]: 0 when DATA/NAME.stamp says the
# kept input is the one STAMP describes.  Else 1, with the stamp set to
# "building" (a run cut short never matches) and DATA made: the caller
# builds it and writes STAMP into DATA/NAME.stamp when done.  TREE, when
# given, must not exist without the stamp: a folder the bench did not make
# is not overwritten (WHO, the script's name, says so; exit status 2).
bench_built() {
    local f=$1/$2.stamp
    [ "$(cat "$f" 2>/dev/null)" = "$3" ] && return 0
    if [ -n "${4:-}" ] && [ -e "$4" ] && [ ! -e "$f" ]; then
        echo "${5:-bench}: $4 exists but was not made by ${5:-bench}; choose another --data" >&2
        exit 2
    fi
    mkdir -p "$1"
    echo building >"$f"
    return 1
}
