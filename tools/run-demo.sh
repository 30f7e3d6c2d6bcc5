#!/usr/bin/env bash
# run-demo.sh - serve the demo export from the embedded dir store, in the
# foreground, with etc/bucketnfs.conf (state and buckets under var/).
# Seeds var/buckets/demo with sample sensor logs and camera frames on
# first run, and starts rpcbind where it can (tools/start-rpcbind.sh), so
# that clients mount without naming the ports.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ ! -d var/buckets/demo ]; then
    tools/seed-demo.sh var/buckets/demo demo
fi
mkdir -p var/state var/cache
bin/bucketnfsd -t -c etc/bucketnfs.conf
tools/start-rpcbind.sh
echo "bucketnfsd: serving /demo (read-write); mount it from Linux with:"
if rpcinfo -p 127.0.0.1 >/dev/null 2>&1; then
    echo "  mount HOST:/demo /mnt"
    echo "(-o nolock where the client runs no rpc.statd; without rpcbind:"
    echo " mount -t nfs -o vers=3,proto=tcp,port=2049,mountport=20048,nolock HOST:/demo /mnt)"
else
    echo "  mount -t nfs -o vers=3,proto=tcp,port=2049,mountport=20048,nolock HOST:/demo /mnt"
fi
echo "(Ctrl-C stops the server)"
exec bin/bucketnfsd -f -c etc/bucketnfs.conf
