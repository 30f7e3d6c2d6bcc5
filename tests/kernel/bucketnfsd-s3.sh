#!/usr/bin/env bash
# bucketnfsd-s3.sh SRC NFS_PORT MOUNT_PORT - serve the folder SRC with
# bucketnfsd from an S3 bucket, for the kernel suite's object-store run:
#
#   1. moto_server (the S3 emulator) on a free 127.0.0.1 port, signature
#      checking off (moto mis-checks some correct signatures; see
#      tests/integration/s3_nfs.sh);
#   2. s3_fixture.py uploads SRC into the bucket "demo" as bucketnfs writes
#      objects: POSIX mode, owner, group and mtime from lstat in the
#      x-amz-meta-file-* metadata, "folder/" markers, symlinks as objects
#      holding their target (mutable/ without metadata);
#   3. s3_fixture.py watch mirrors later changes of SRC/mutable/ into the
#      bucket (polled every 0.5 s): the close-to-open cases rewrite the
#      source, standing for another tool rewriting the object, and with a
#      bucket that write must reach the bucket;
#   4. bucketnfsd, exported read-only as /demo, registered with rpcbind,
#      and an empty bucket "rw-test" exported read-write as /rw (squash
#      none, writeback_delay 1), for posix_corners.sh (suite.sh
#      --rw-export /rw);
#   5. the guest's bucket-keys.req in BNFS_CTL_DIR (polled every 0.2 s):
#      the /rw bucket's keys under a prefix, exactly as moto holds them,
#      into bucket-keys.done (bucket_keys.py has the format).
#
# A change in mutable/ reaches the bucket within the watcher's poll and
# upload (well under 1 s); the suite waits its --ttl after a change, and the
# close-to-open cases give the server's cached attributes a second before
# the change, so the export's metadata_ttl stays BNFS_TTL (default 2) as in
# bucketnfsd.sh.  Runs in the foreground; SIGTERM stops everything it
# started.  Needs moto_server, python3 with boto3.
set -euo pipefail
src=$(cd "$1" && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=${BUCKETNFSD:-$here/../../build/bin/bucketnfsd}
. "$here/../integration/moto_lib.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/bnfs-kernel-s3.XXXXXX")
pids=()
stop_all() {
    local p
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    moto_stop_all
    rm -rf "$work"
}
trap stop_all EXIT
trap 'exit 143' TERM INT

# Any key is accepted while checking is off; the daemon reads them from
# its environment, boto3 too.
export AWS_ACCESS_KEY_ID=AKIDKERNELSUITE AWS_SECRET_ACCESS_KEY=kernel-suite-secret
unset AWS_SESSION_TOKEN AWS_PROFILE

moto_start "$work/moto.log"
moto_auth "$MOTO_ENDPOINT" off
t0=$SECONDS
python3 "$here/s3_fixture.py" "$MOTO_ENDPOINT" demo "$src" upload
echo "bucketnfsd-s3.sh: bucket filled in $((SECONDS - t0))s"
python3 -c 'import boto3, sys
boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1").create_bucket(Bucket="rw-test")' "$MOTO_ENDPOINT"

# The watcher lives no longer than the longest suite run.
python3 "$here/s3_fixture.py" "$MOTO_ENDPOINT" demo "$src" watch 1800 &
pids+=($!)

mkdir -p "$work/state"
cat >"$work/bucketnfs.conf" <<CONF
server = { listen = "127.0.0.1"; nfs_port = $2; mount_port = $3; rpcbind = true;
           threads = 16; state_dir = "state"; log_level = "notice"; };
cache = { dirs = ( "cache" ); size = "256M"; block_size = "1M"; readahead_max = "16M"; };
stores = ( { name = "s3"; type = "s3"; endpoint = "$MOTO_ENDPOINT"; region = "us-east-1";
             addressing = "path"; credentials = "env"; } );
exports_file = "exports.conf";
CONF
cat >"$work/exports.conf" <<CONF
exports = ( { path = "/demo"; store = "s3"; bucket = "demo"; prefix = "";
              access = "ro"; clients = ( "127.0.0.0/8" ); squash = "none";
              metadata_ttl = ${BNFS_TTL:-2}; },
            { path = "/rw"; store = "s3"; bucket = "rw-test"; prefix = "";
              access = "rw"; clients = ( "127.0.0.0/8" ); squash = "none";
              metadata_ttl = ${BNFS_TTL:-2}; writeback_delay = 1; } );
CONF
"$bin" -f -c "$work/bucketnfs.conf" &
pids+=($!)
daemon=$!
ctl=${BNFS_CTL_DIR:-}
while kill -0 "$daemon" 2>/dev/null; do
    if [ -n "$ctl" ] && [ -e "$ctl/bucket-keys.req" ]; then
        mv -f "$ctl/bucket-keys.req" "$work/bucket-keys.req"
        python3 "$here/bucket_keys.py" "$work/bucket-keys.req" "$ctl/bucket-keys.done" s3 "$MOTO_ENDPOINT" rw-test
    fi
    sleep 0.2
done
wait "$daemon"
