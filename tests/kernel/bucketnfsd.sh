#!/usr/bin/env bash
# bucketnfsd.sh SRC NFS_PORT MOUNT_PORT - serve the folder SRC with
# bucketnfsd for the kernel suite: a dir store rooted at SRC's parent,
# bucket = SRC's name, exported read-only as /demo, registered with
# rpcbind.  BNFS_TTL sets the export's metadata_ttl (default 2).
# Runs in the foreground; SIGTERM stops it.
set -euo pipefail
src=$(cd "$1" && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=${BUCKETNFSD:-$here/../../build/bin/bucketnfsd}
work=$(mktemp -d "${TMPDIR:-/tmp}/bnfs-kernel.XXXXXX")
trap 'rm -rf "$work"' EXIT
cat >"$work/bucketnfs.conf" <<CONF
server = { listen = "127.0.0.1"; nfs_port = $2; mount_port = $3; rpcbind = true;
           threads = 16; state_dir = "state"; log_level = "notice"; };
stores = ( { name = "local"; type = "dir"; root = "$(dirname "$src")"; } );
exports_file = "exports.conf";
CONF
cat >"$work/exports.conf" <<CONF
exports = ( { path = "/demo"; store = "local"; bucket = "$(basename "$src")"; prefix = "";
              access = "ro"; clients = ( "127.0.0.0/8" ); squash = "none";
              metadata_ttl = ${BNFS_TTL:-2}; } );
CONF
"$bin" -f -c "$work/bucketnfs.conf" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid; rm -rf "$work"' EXIT TERM INT
wait $pid
