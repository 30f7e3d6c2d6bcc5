#!/bin/bash
# bigdir-guest.sh - runs in the QEMU guest (tests/kernel/run.sh), for
# bench/bigdir.sh --tests guest: list the big directory cam0/ of the mount
# /mnt/a through the Linux NFS client, twice, and print
#   BNFS-BIGDIR ls_seconds=T ls_names=N
#   BNFS-BIGDIR find_seconds=T find_files=N
# on the console, each as soon as it is known.  `ls -f` (no sorting, no
# stat: getdents alone; the client asks READDIRPLUS for the first replies,
# then READDIR since nothing stats the entries) lists "." and ".." too:
# ls_names leaves them out.  Fails unless both counts are exactly
# BNFS_BIGDIR_ENTRIES.  BNFS_BIGDIR_FIND=0 leaves find out (find_seconds=-
# find_files=-): find gets the names from the client's cache of those
# READDIR replies, without types, and LOOKUPs each one.
set -u
want=${BNFS_BIGDIR_ENTRIES:?}
dir=$BNFS_MNT_A/cam0

fail() {
    echo "not ok - bigdir: $*"
    exit 1
}
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

cd "$dir" || fail "cd $dir"
t0=$(now)
raw=$(ls -f | wc -l) || fail "ls -f failed"
t1=$(now)
names=$((raw - 2))
echo "BNFS-BIGDIR ls_seconds=$(secs "$t0" "$t1") ls_names=$names"
[ "$names" = "$want" ] || fail "ls -f lists $names names besides . and .., not $want"
if [ "${BNFS_BIGDIR_FIND:-1}" != 0 ]; then
    files=$(find . -type f | wc -l) || fail "find failed"
    echo "BNFS-BIGDIR find_seconds=$(secs "$t1" "$(now)") find_files=$files"
    [ "$files" = "$want" ] || fail "find finds $files files, not $want"
fi
echo "ok - bigdir"
