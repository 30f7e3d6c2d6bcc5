#!/bin/bash
# bigdir-guest.sh - runs in the QEMU guest (tests/kernel/run.sh), for
# bench/bigdir.sh --tests guest: list the big directory cam0/ through the
# Linux NFS client, with ls on /mnt/a and find on /mnt/b, and print
#   BNFS-BIGDIR ls_seconds=T ls_names=N
#   BNFS-BIGDIR ls_calls=READDIRPLUS:N,READDIR:N,LOOKUP:N,GETATTR:N
#   BNFS-BIGDIR find_seconds=T find_files=N
#   BNFS-BIGDIR find_calls=...
# on the console, each as soon as it is known (the calls: that mount's,
# from /proc/self/mountstats).  `ls -f` (no sorting, no stat: getdents
# alone; the client asks READDIRPLUS for the first replies, then READDIR
# since nothing stats the entries) lists "." and ".." too: ls_names leaves
# them out.  find runs on the second mount (nosharecache, so its own cold
# cache; bigdir.sh mounts it without noac): the client reads the directory
# for find itself rather than handing it the names ls's READDIR replies
# left in /mnt/a's cache.  It still LOOKUPs nearly every name for -type:
# gnulib's fts reads 100,000 names before looking at them, and the client
# asks READDIRPLUS again only for a getdents right after such LOOKUPs.
# Fails unless both counts are exactly BNFS_BIGDIR_ENTRIES.
# BNFS_BIGDIR_FIND=0 leaves find out.
set -u
want=${BNFS_BIGDIR_ENTRIES:?}
dir=$BNFS_MNT_A/cam0
dir_b=$BNFS_MNT_B/cam0

fail() {
    echo "not ok - bigdir: $*"
    exit 1
}
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
# calls MOUNTPOINT: the NFS calls of that mount so far, from mountstats.
calls() {
    awk -v mnt="$1" '
        $1 == "device" { on = ($5 == mnt) }
        on && $1 ~ /^(READDIRPLUS|READDIR|LOOKUP|GETATTR):$/ {
            sub(":", "", $1); out = out (out == "" ? "" : ",") $1 ":" $2
        }
        END { print out }' /proc/self/mountstats
}

cd "$dir" || fail "cd $dir"
t0=$(now)
raw=$(ls -f | wc -l) || fail "ls -f failed"
t1=$(now)
names=$((raw - 2))
echo "BNFS-BIGDIR ls_seconds=$(secs "$t0" "$t1") ls_names=$names"
echo "BNFS-BIGDIR ls_calls=$(calls "$BNFS_MNT_A")"
[ "$names" = "$want" ] || fail "ls -f lists $names names besides . and .., not $want"
if [ "${BNFS_BIGDIR_FIND:-1}" != 0 ]; then
    cd "$dir_b" || fail "cd $dir_b"
    t1=$(now)
    files=$(find . -type f | wc -l) || fail "find failed"
    echo "BNFS-BIGDIR find_seconds=$(secs "$t1" "$(now)") find_files=$files"
    echo "BNFS-BIGDIR find_calls=$(calls "$BNFS_MNT_B")"
    [ "$files" = "$want" ] || fail "find finds $files files, not $want"
fi
echo "ok - bigdir"
