#!/usr/bin/env bash
# capture-kernel.sh [CORPUS_DIR] - seed corpora of fuzz_rpc and
# fuzz_nfs3_args from the Linux kernel client, as capture-rpc.sh makes
# them from libnfs.
#
# Runs the dir-store kernel suite (tests/kernel/suite.sh: posix_read.sh on
# /demo, posix_write.sh on /rw, as `make test` runs it) with rpcrecord.py
# as a recording proxy between the guest and bucketnfsd: the ports the
# guest mounts are the proxy's, bucketnfsd listens on two others.  The
# suite's rpcbind case asks rpcbind, which names bucketnfsd's own ports,
# so those calls are not recorded; everything else is (the kernel's
# READDIRPLUS with its dircount, 1 MiB WRITEs cut at 4096 bytes and so
# left out, COMMIT, SETATTR with guards, CREATE EXCLUSIVE verifiers, the
# AUTH_UNIX credentials of uid 1000).  The calls are deduplicated into
# CORPUS_DIR/fuzz_rpc and CORPUS_DIR/fuzz_nfs3_args as files named krec-*
# (rpcrecord.py corpus ... krec); CORPUS_DIR defaults to tests/fuzz/corpus.
# Needs `make` (build/) and what the kernel suite needs (QEMU); takes the
# suite's time (about 5 minutes), and fails, writing nothing, if the suite
# fails.  BNFS_CAPTURE_TIMEOUT (780) is the guest's limit in seconds, as
# `make test` gives it; a busy machine needs more.
#
#   capture-kernel.sh --server RAW_DIR SRC NFS_PORT MOUNT_PORT
#       (the suite's server command) the proxy on NFS_PORT and MOUNT_PORT
#       recording into RAW_DIR, bucketnfsd.sh on two free ports behind it;
#       in the foreground until SIGTERM.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

if [ "${1:-}" = --server ]; then
    [ $# = 5 ] || { echo "usage: $0 --server RAW_DIR SRC NFS_PORT MOUNT_PORT" >&2; exit 2; }
    raw=$2 src=$3 nfs_port=$4 mount_port=$5
    read -r p1 p2 < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s:
    x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
    [ -n "${p2:-}" ] || { echo "capture-kernel.sh: no free ports" >&2; exit 2; }
    python3 "$here/rpcrecord.py" proxy "$raw" "$raw.ports" "$nfs_port:$p1" "$mount_port:$p2" &
    proxy=$!
    "$repo/tests/kernel/bucketnfsd.sh" "$src" "$p1" "$p2" &
    server=$!
    trap 'kill "$server" "$proxy" 2>/dev/null; wait; exit 0' TERM INT
    wait "$server"
    rc=$?
    kill "$proxy" 2>/dev/null
    wait "$proxy" 2>/dev/null
    exit "$rc"
fi

[ $# -le 1 ] || { echo "usage: $0 [CORPUS_DIR]" >&2; exit 2; }
out=${1:-$here/corpus}
case $out in /*) ;; *) out=$PWD/$out ;; esac
work=$(mktemp -d "${TMPDIR:-/tmp}/capture-kernel.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT
cd "$repo" || exit 2
tests/kernel/suite.sh \
    --server-cmd "$here/capture-kernel.sh --server $work/raw @SRC@ @NFS_PORT@ @MOUNT_PORT@" \
    --export /demo --ttl 2 --object-store --rw-export /rw \
    --timeout "${BNFS_CAPTURE_TIMEOUT:-780}" --test-timeout $((${BNFS_CAPTURE_TIMEOUT:-780} - 300))
rc=$?
if [ "$rc" != 0 ]; then
    echo "capture-kernel.sh: the kernel suite failed (status $rc); no seeds written" >&2
    exit 1
fi
n=$(find "$work/raw" -name '*.rec' 2>/dev/null | wc -l)
[ "$n" -gt 0 ] || { echo "capture-kernel.sh: the proxy recorded no calls" >&2; exit 1; }
echo "capture-kernel.sh: $n call records" >&2
python3 "$here/rpcrecord.py" corpus "$work/raw" "$out" 8 krec
