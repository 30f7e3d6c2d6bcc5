#!/usr/bin/env bash
# suite.sh - the kernel-client suite in one command: make the source tree,
# start rpcbind and the NFS server under test on 127.0.0.1, boot the guest
# with run.sh and run posix_read.sh in it (plain mounts, then rpcbind), and
# posix_write.sh when asked (--rw-export).
#
#   suite.sh [--server-cmd CMD] [--export PATH] [--ttl SECONDS] [--rw-export PATH]
#            [--live-exports] [run.sh options]
#
# CMD starts the server in the foreground and may use @SRC@ (the source tree,
# build/kernel/src), @NFS_PORT@ and @MOUNT_PORT@; --export is the MOUNT path
# (may use @SRC@).  The default serves @SRC@ with nfs-ganesha (ganesha.sh).
# --ttl is the server's metadata TTL: how long a change made in the source
# tree may take to show.  --object-store: the server is an object-store
# gateway: no hard links (every name is its own object, so the fixture has
# none), and the export's root is a bucket, which has no attributes of its
# own to keep (its mode and owner come from the export, not the folder).
# --no-sparse: no 5 GiB sparse file in the tree (BNFS_SPARSE=0), for a
# server whose store cannot hold it; its cases print "# skipped: ...".
# --rw-export PATH: the server also exports PATH read-write, an empty
# bucket of its own (bucketnfsd.sh's /rw): posix_write.sh and
# posix_corners.sh run too, after the other tests, against it.
# --rw-tests "A.sh B.sh": the scripts (in this folder) --rw-export runs
# instead of those two.
# --live-exports: live_exports.sh runs last: it has the server change and
# reload its exports under the mounted kernel client (bucketnfsd.sh's
# reload.req), adding, changing to ro and removing an export /live.
# BNFS_BIGDIR_COUNT (default 20000) sets the size of bigdir/.
# BNFS_SUITE_TESTS: the test script to run instead of posix_read.sh.
#
# The guest image (kernel + initramfs, run.sh --prepare-only) is prepared
# first, in the caller's network namespace: the first run on a machine
# downloads the kernel package.  When run as root, everything else then runs
# in private network and mount namespaces (unshare), which have no network:
# the servers and rpcbind, which cannot be told to listen on loopback only,
# are then reachable from QEMU alone, and rpcbind's /run files do not meet
# the host's.  Otherwise an rpcbind already listening on 127.0.0.1:111 is
# used.  Exit status: that of run.sh (77 SKIP: QEMU cannot run here).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

if [ -z "${BNFS_IN_NETNS:-}" ]; then
    given=0
    for a in "$@"; do [ "$a" = --kernel ] && given=1; done
    if [ "$given" = 0 ]; then
        img=$("$here/run.sh" --prepare-only)
        rc=$?
        [ "$rc" = 0 ] || exit "$rc"
        set -- --kernel "$(sed -n 's/^kernel=//p' <<<"$img")" \
               --initrd "$(sed -n 's/^initrd=//p' <<<"$img")" "$@"
    fi
    if [ "$(id -u)" = 0 ] && unshare --net --mount true 2>/dev/null; then
        exec unshare --net --mount --propagation private \
            env BNFS_IN_NETNS=1 bash "${BASH_SOURCE[0]}" "$@"
    fi
fi

server_cmd="$here/ganesha.sh @SRC@ @NFS_PORT@ @MOUNT_PORT@"
export_path=@SRC@
ttl=0
rw_export=""
rw_tests="posix_write.sh posix_corners.sh"
live_exports=0
pass=()
while [ $# -gt 0 ]; do
    case "$1" in
        --server-cmd) server_cmd=$2; shift 2 ;;
        --export) export_path=$2; shift 2 ;;
        --ttl) ttl=$2; shift 2 ;;
        --rw-export) rw_export=$2; shift 2 ;;
        --rw-tests) rw_tests=$2; shift 2 ;;
        --live-exports) live_exports=1; shift ;;
        --object-store) export BNFS_OBJSTORE=1; shift ;;
        --no-sparse) export BNFS_SPARSE=0; shift ;;
        *) pass+=("$1"); shift ;;
    esac
done

rpcbind_pid=""
cleanup() {
    [ -n "$rpcbind_pid" ] && kill "$rpcbind_pid" 2>/dev/null
}
trap cleanup EXIT

if [ -n "${BNFS_IN_NETNS:-}" ]; then
    ip link set lo up
    # getaddrinfo(AI_ADDRCONFIG) resolves nothing on a host with loopback
    # addresses only, and servers resolve their bind address with it.
    ip addr add 10.255.255.1/32 dev lo
    mount -t tmpfs -o mode=755 tmpfs /run
    mkdir -p /run/rpcbind
    chown _rpc /run/rpcbind 2>/dev/null || true
fi
if ! rpcinfo -p 127.0.0.1 >/dev/null 2>&1; then
    if [ -n "${BNFS_IN_NETNS:-}" ] && command -v rpcbind >/dev/null; then
        rpcbind -f -w &
        rpcbind_pid=$!
        for _ in $(seq 50); do rpcinfo -p 127.0.0.1 >/dev/null 2>&1 && break; sleep 0.1; done
    else
        echo "suite.sh: no rpcbind on 127.0.0.1:111; the rpcbind case will fail (start rpcbind, or run as root)" >&2
    fi
fi

# free_port: a TCP port nothing listens on (bounded tries), below the
# kernel's ephemeral range, so no client connection made meanwhile (the S3
# run's uploader, curl, boto3) can be holding it when the server binds it.
eph_low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
[ "$eph_low" -gt 12000 ] 2>/dev/null || eph_low=32768
free_port() {
    local p
    for _ in $(seq 100); do
        p=$((10000 + RANDOM % (eph_low - 10000)))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
    done
    return 1
}
nfs_port=$(free_port) && mount_port=$(free_port) && [ "$nfs_port" != "$mount_port" ] ||
    { echo "suite.sh: no free ports" >&2; exit 2; }

src=$repo/build/kernel/src
t0=$(date +%s)
BIGDIR_COUNT=${BNFS_BIGDIR_COUNT:-20000} "$here/mkfixture.sh" "$src" || exit 2
echo "suite.sh: source tree ready in $(( $(date +%s) - t0 ))s" >&2

tests=("${BNFS_SUITE_TESTS:-$here/posix_read.sh}")
if [ -n "$rw_export" ]; then
    for t in $rw_tests; do tests+=("$here/$t"); done
    pass+=(--env BNFS_RW_EXPORT="$rw_export")
fi
[ "$live_exports" = 1 ] && tests+=("$here/live_exports.sh")

sub() { local s=${1//@SRC@/$src}; s=${s//@NFS_PORT@/$nfs_port}; echo "${s//@MOUNT_PORT@/$mount_port}"; }
"$here/run.sh" --server-cmd "$(sub "$server_cmd")" --export "$(sub "$export_path")" \
    --nfs-port "$nfs_port" --mount-port "$mount_port" --src "$src" \
    --env BNFS_TTL="$ttl" --env BNFS_RPCBIND=1 --env BNFS_OBJSTORE="${BNFS_OBJSTORE:-0}" \
    --env BNFS_SPARSE="${BNFS_SPARSE:-1}" \
    --env BNFS_BIGDIR_COUNT="${BNFS_BIGDIR_COUNT:-20000}" \
    "${pass[@]}" "${tests[@]}"
