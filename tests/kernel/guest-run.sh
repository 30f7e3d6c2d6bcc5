#!/bin/bash
# guest-run.sh - runs inside the QEMU guest, chrooted into the host's root
# (read-only over 9p; /tmp /run /mnt are tmpfs), started by init.
#
# Mounts the server under test twice with the kernel NFS client:
#   /mnt/a  default caching (close-to-open, attribute cache)
#   /mnt/b  a second superblock (nosharecache) plus BNFS_OPTS_B, noac by default
# then runs each test script in BNFS_TESTS with a per-script timeout.  Each
# script's output goes to the console and to /run/bnfs/job/results/N.log,
# its exit status to N.rc; run.sh on the host reads them after the guest
# powers off.  Test scripts see the variables from job.env plus:
#   BNFS_MNT_A, BNFS_MNT_B      the two mount points
#   BNFS_MOUNT                  the mount helper: $BNFS_MOUNT SRC DIR OPTS
#   BNFS_MOUNT_SOURCE           10.0.2.2:/export
#   BNFS_MOUNT_BASE             vers=3,proto=tcp,... without port options
#   BNFS_MOUNT_PORTS            port=N,mountport=M (empty: rpcbind decides)
#   BNFS_CTL                    a folder shared with the server command on
#                               the host (run.sh: BNFS_CTL_DIR), for requests
#                               like bucketnfsd.sh's kill -9 and restart
set -u
job=/run/bnfs/job
. "$job/job.env"
mkdir -p "$job/results"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/tmp LC_ALL=C

export BNFS_MOUNT=/run/bnfs/nfsmount
export BNFS_MNT_A=/mnt/a BNFS_MNT_B=/mnt/b
export BNFS_MOUNT_SOURCE="10.0.2.2:${BNFS_EXPORT}"
# nolock: no NLM (read-side tests take no locks, and NLM needs statd).
export BNFS_MOUNT_BASE="vers=3,proto=tcp,mountproto=tcp,addr=10.0.2.2,mountaddr=10.0.2.2,nolock,timeo=100,retrans=3"
ports=""
[ -n "${BNFS_NFS_PORT:-}" ] && ports="port=$BNFS_NFS_PORT"
[ -n "${BNFS_MOUNT_PORT:-}" ] && ports="${ports:+$ports,}mountport=$BNFS_MOUNT_PORT"
export BNFS_MOUNT_PORTS=$ports
export BNFS_CTL=$job/ctl

# nfs_mount OPTS DIR: mount with a few bounded retries (the first RPC may
# race the NIC coming up); prints the helper's error on failure.
nfs_mount() {
    local opts=$1 dir=$2 try
    mkdir -p "$dir"
    for try in 1 2 3 4 5; do
        "$BNFS_MOUNT" "$BNFS_MOUNT_SOURCE" "$dir" "$opts" && return 0
        sleep 1
    done
    return 1
}

# run_one SCRIPT LOG: run SCRIPT under a deadline; on overrun show what
# the processes are blocked on (an NFS call the server never answered
# leaves them in D state in rpc_wait_bit_killable) before killing them.
run_one() {
    local t=$1 log=$2 limit=${BNFS_TEST_TIMEOUT:-300} pid waited=0
    setsid bash "$t" > >(tee "$log") 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt "$limit" ]; do
        sleep 1
        waited=$((waited + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
        {
            echo "not ok - $t: timed out after ${limit}s"
            echo "# blocked processes:"
            ps -eo pid,stat,wchan:30,args | awk 'NR == 1 || $2 ~ /D/' | sed 's/^/#   /'
            echo "# last kernel messages:"
            dmesg | tail -n 15 | sed 's/^/#   /'
        } | tee -a "$log"
        kill -KILL -- "-$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        return 124
    fi
    wait "$pid"
}

base="$BNFS_MOUNT_BASE${ports:+,$ports}"
opts_a="$base${BNFS_OPTS_A:+,$BNFS_OPTS_A}"
opts_b="$base,nosharecache${BNFS_OPTS_B:+,$BNFS_OPTS_B}"
{
    echo "mounting $BNFS_MOUNT_SOURCE on /mnt/a -o $opts_a"
    echo "mounting $BNFS_MOUNT_SOURCE on /mnt/b -o $opts_b"
    if nfs_mount "$opts_a" /mnt/a && nfs_mount "$opts_b" /mnt/b; then
        echo "ok - mount /mnt/a and /mnt/b"
        mounted=1
    else
        echo "not ok - mount /mnt/a and /mnt/b: see the messages above"
        mounted=0
    fi
} 2>&1 | tee "$job/results/00-mount.log"
grep -q '^ok - mount' "$job/results/00-mount.log" && mounted=1 || mounted=0
echo $((1 - mounted)) > "$job/results/00-mount.rc"

i=0
for t in $BNFS_TESTS; do
    i=$((i + 1))
    n=$(printf '%02d' "$i")
    [ "$mounted" = 1 ] || break
    echo "BNFS-TEST-BEGIN $t"
    start=$(date +%s)
    run_one "$t" "$job/results/$n.log"
    rc=$?
    echo "$rc" > "$job/results/$n.rc"
    echo "BNFS-TEST-END $t rc=$rc in $(( $(date +%s) - start ))s"
done

if [ "$mounted" = 1 ]; then
    cd /
    { umount /mnt/b && umount /mnt/a && echo "ok - umount /mnt/a and /mnt/b" ||
        echo "not ok - umount /mnt/a and /mnt/b: busy or hung"; } 2>&1 |
        tee "$job/results/99-umount.log"
    echo 0 > "$job/results/99-umount.rc"
fi
echo done > "$job/results/finished"
