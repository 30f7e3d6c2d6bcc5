#!/bin/bash
# untar-guest.sh - runs in the QEMU guest (tests/kernel/run.sh), for
# bench/write.sh: extract BNFS_UNTAR_TAR (a host path, read over 9p) with
# GNU tar into a new folder of the NFS mount /mnt/a, then sync, and print
#   BNFS-UNTAR tar_seconds=T sync_seconds=S files=N
# on the console.  The tarball is first copied into the guest's tmpfs, out
# of the measured time, so that 9p does not weigh on it.  Fails unless the
# mount then holds exactly BNFS_UNTAR_FILES files.
set -u
tarball=${BNFS_UNTAR_TAR:?}
want=${BNFS_UNTAR_FILES:?}
dir=$BNFS_MNT_A/untar

fail() {
    echo "not ok - untar: $*"
    exit 1
}
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

cp "$tarball" /tmp/tree.tar || fail "cannot copy $tarball into the guest"
mkdir "$dir" || fail "mkdir $dir"
sync
t0=$(now)
tar -x -f /tmp/tree.tar -C "$dir" || fail "tar -x failed"
t1=$(now)
sync
t2=$(now)
n=$(find "$dir" -type f | wc -l)
[ "$n" = "$want" ] || fail "$n files on the mount, not $want"
echo "BNFS-UNTAR tar_seconds=$(secs "$t0" "$t1") sync_seconds=$(secs "$t1" "$t2") files=$n"
echo "ok - untar"
