#!/usr/bin/env bash
# capture-rpc.sh [CORPUS_DIR] - seed corpora of fuzz_rpc and fuzz_nfs3_args
# from real clients.
#
# Starts bucketnfsd (build/bin, a dir store, one read-write export) on
# 127.0.0.1 and rpcrecord.py as a recording proxy in front of its NFS and
# MOUNT ports, then drives libnfs through the proxy: its command-line tools
# (nfs-ls, nfs-cp both ways, nfs-cat) and the tests' it_nfsop
# (mkdir, put, append, truncate, chmod, symlink, readlink, mv, rm, rmdir)
# and it_lsl (READDIRPLUS listings).  Every call record the clients sent is
# saved, then deduplicated into CORPUS_DIR/fuzz_rpc and
# CORPUS_DIR/fuzz_nfs3_args (files named rec-*; see rpcrecord.py).
# CORPUS_DIR defaults to tests/fuzz/corpus.  Needs `make` (build/) first.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/corpus}
. "$here/../integration/lib.sh"
it_setup
PROXY_PID=
stop_proxy() { [ -z "$PROXY_PID" ] || { kill "$PROXY_PID" 2>/dev/null; wait "$PROXY_PID" 2>/dev/null || true; }; }
trap 'stop_proxy; it_cleanup' EXIT

buckets=$IT_TMP/buckets
mkdir -p "$buckets/demo/dir/sub"
echo "hello" >"$buckets/demo/hello.txt"
head -c 300000 /dev/urandom >"$buckets/demo/dir/big.bin"
for i in $(seq 1 40); do echo "$i" >"$buckets/demo/dir/sub/file-$i"; done
IT_ACCESS=rw it_write_conf c "$buckets"
it_start c

python3 "$here/rpcrecord.py" proxy "$IT_TMP/raw" "$IT_TMP/ports" "$NFS_PORT" "$MOUNT_PORT" &
PROXY_PID=$!
for _ in $(seq 1 50); do [ -s "$IT_TMP/ports" ] && break; sleep 0.1; done
read -r pnfs pmount <"$IT_TMP/ports"
url="nfs://127.0.0.1/demo?nfsport=$pnfs&mountport=$pmount&version=3"
u() { echo "nfs://127.0.0.1/demo/$1?nfsport=$pnfs&mountport=$pmount&version=3"; }
op() { nfs_tool "$IT_BUILD/tests/it_nfsop" "$url" "$@" >/dev/null; }

head -c 3000 /dev/urandom >"$IT_TMP/small"
nfs_tool nfs-ls "$url" >/dev/null
nfs_tool nfs-ls -R "$url" >/dev/null
nfs_tool nfs-cat "$(u hello.txt)" >/dev/null
nfs_tool nfs-cp "$(u dir/big.bin)" "$IT_TMP/big.copy"
nfs_tool nfs-cp "$IT_TMP/small" "$(u up.bin)"
op mkdir /newdir
op put "$IT_TMP/small" /newdir/f
op append "$IT_TMP/small" /newdir/f
op truncate 100 /newdir/f
op chmod 600 /newdir/f
op symlink ../hello.txt /newdir/link
op readlink /newdir/link
op stat /newdir/link
op read /newdir/f
op mv /newdir/f /newdir/g
op rm /newdir/g
op rm /newdir/link
op rmdir /newdir
nfs_tool "$IT_BUILD/tests/it_lsl" "$url" /dir/sub 40 >/dev/null
stop_proxy
PROXY_PID=
it_stop c
python3 "$here/rpcrecord.py" corpus "$IT_TMP/raw" "$out"
