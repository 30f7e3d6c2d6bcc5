#!/usr/bin/env bash
# run-demo.sh - serve the demo export from the embedded dir store, in the
# foreground, with etc/bucketnfs.conf (state and buckets under var/).
# Seeds var/buckets/demo with sample sensor logs and camera frames on
# first run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ ! -d var/buckets/demo ]; then
    tools/seed-demo.sh var/buckets/demo demo
fi
mkdir -p var/state var/cache
bin/bucketnfsd -t -c etc/bucketnfs.conf
echo "bucketnfsd: serving /demo; mount it from Linux with:"
echo "  mount -t nfs -o vers=3,proto=tcp,port=2049,mountport=20048,nolock HOST:/demo /mnt"
echo "(Ctrl-C stops the server)"
exec bin/bucketnfsd -f -c etc/bucketnfs.conf
