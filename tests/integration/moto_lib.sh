# moto_lib.sh - S3 emulator plumbing shared by the S3 integration suites.
# Source it (after lib.sh, or alone).  Every server listens on 127.0.0.1
# on a free port and every wait is bounded.
#
#   free_port                       print a free TCP port on 127.0.0.1
#   moto_start LOG                  start moto_server; sets MOTO_PID MOTO_PORT MOTO_ENDPOINT
#                                   (30 s at most for it to answer)
#   moto_auth ENDPOINT on|off       switch moto's SigV4 / IAM checking
#   faultproxy_start UPSTREAM_PORT  start faultproxy.py in front of it; sets PROXY_PID PROXY_PORT
#   faultproxy_arm MODE COUNT       the next COUNT requests through the proxy get MODE
#   moto_stop_all                   stop every server started here (also run it at exit)
#
# moto_setup.py ENDPOINT BUCKET... creates the buckets and the IAM user and
# switches checking on; see that file.

MOTO_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MOTO_LIB_PIDS=()

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

moto_start() {
    local log=$1
    MOTO_PORT=$(free_port)
    moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$log" 2>&1 &
    MOTO_PID=$!
    MOTO_LIB_PIDS+=("$MOTO_PID")
    MOTO_ENDPOINT=http://127.0.0.1:$MOTO_PORT
    for _ in $(seq 1 150); do # up to 30 s
        if curl -s -o /dev/null "$MOTO_ENDPOINT/moto-api/"; then return 0; fi
        if ! kill -0 "$MOTO_PID" 2>/dev/null; then cat "$log"; return 1; fi
        sleep 0.2
    done
    echo "moto_server did not answer on $MOTO_ENDPOINT"
    return 1
}

# moto 5 reads the body as one number: how many more requests go unchecked
# ("inf": checking off, "0": every request checked from now on).
moto_auth() {
    local endpoint=$1 body=0
    [ "$2" = off ] && body=inf
    curl -s -f -o /dev/null -X POST -H 'Content-Type: text/plain' --data "$body" \
        "$endpoint/moto-api/reset-auth"
}

faultproxy_start() {
    PROXY_PORT=$(free_port)
    python3 "$MOTO_LIB_DIR/faultproxy.py" "$PROXY_PORT" "$1" &
    PROXY_PID=$!
    MOTO_LIB_PIDS+=("$PROXY_PID")
    for _ in $(seq 1 50); do # up to 5 s
        if curl -s -o /dev/null "http://127.0.0.1:$PROXY_PORT/__fault__"; then return 0; fi
        sleep 0.1
    done
    echo "faultproxy did not answer on port $PROXY_PORT"
    return 1
}

faultproxy_arm() {
    curl -s -f -o /dev/null -X POST --data "$1 $2" "http://127.0.0.1:$PROXY_PORT/__fault__"
}

moto_stop_all() {
    local p
    for p in "${MOTO_LIB_PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${MOTO_LIB_PIDS[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    MOTO_LIB_PIDS=()
}
