#!/bin/bash
# posix_write.sh - write-side POSIX semantics through the Linux NFS client.
# Runs in the guest (guest-run.sh), chrooted into the host's root, against
# a read-write export of an empty bucket: bucketnfsd.sh's /rw (suite.sh
# --rw-export /rw passes BNFS_RW_EXPORT).  It mounts that export itself:
#   /mnt/rw-a   default caching: where the writes go
#   /mnt/rw-b   a second superblock (nosharecache), noac: reads back
#   /mnt/rw-c   mounted fresh after sync, at the end: nothing cached
# Every change is made in the mount and, where it can be, in a reference
# copy on the guest's tmpfs; the two must read the same.  At the end the
# bucket itself, as the host lists it (bucket-list.req in $BNFS_CTL, see
# bucketnfsd.sh), must hold exactly what the mount shows once the
# write-back is done: the same names, types, modes, owners, file mtimes,
# sizes, link targets and sha256 of every file, and no .nfs* object.
#
#   data        echo, dd of 20 MiB, overwrites in the middle (aligned and
#               not), truncate down and up (a hole reads zeros), append;
#               close-to-open between the two mounts
#   namespace   mv of files and folders (before and after their upload:
#               the bucket copies), over a file, over an empty and a
#               non-empty folder, no EXDEV, the inode number kept; rm, rmdir
#   attributes  chmod, chown, touch -d on files and folders, touch (now)
#   symlinks    ln -s (relative, absolute, dangling, 800-byte target), readlink
#   errors      EEXIST, ENOTEMPTY, EISDIR, ENOTDIR, ENOENT, ENAMETOOLONG;
#               hard links, FIFOs, device nodes and sockets are refused
#               (NFS3ERR_NOTSUPP: the kernel says EOPNOTSUPP or errno 524)
#   uid 1000    EACCES and EPERM from the mode bits and the owner; the owner
#               writes its own 0444 file through the descriptor that made it
#   trees       tar x (as root and as uid 1000), cp -a, rsync -a (twice: the
#               second has nothing to do), git init/add/commit/status
#   open files  removed while open (silly rename): still readable and
#               writable through the descriptor (the client's cache dropped),
#               a new file under the removed one's name (each reads its own
#               bytes), no .nfs* left once closed, none ever in the bucket
#   the bucket  a fresh mount after sync reads what the reference has; the
#               bucket holds exactly what that mount shows (polled)
#
# Knobs (run.sh --env NAME=VALUE):
#   BNFS_RW_EXPORT=/rw          the MOUNT path of the read-write export
#   BNFS_NONROOT_UID=1000
#   BNFS_WRITEBACK_WAIT=20      seconds the bucket may take to catch up
#                               (the export's writeback_delay is 1)
# Prints "ok - NAME" / "not ok - NAME: why"; the last line counts them.
set -u
[ "${BNFS_TRACE:-0}" = 1 ] && set -x
rw_export=${BNFS_RW_EXPORT:?BNFS_RW_EXPORT is not set: run suite.sh with --rw-export}
uid=${BNFS_NONROOT_UID:-1000}
ctl=${BNFS_CTL:-}
wb_wait=${BNFS_WRITEBACK_WAIT:-20}
m=/mnt/rw-a
b=/mnt/rw-b
c=/mnt/rw-c
tmp=$(mktemp -d)
chmod 0755 "$tmp" # uid 1000 reads the tarball from here
ref=$tmp/ref # the reference copy of $m/data
pass=0 fail=0
umask 022

. "$(dirname "${BASH_SOURCE[0]}")/guest-lib.sh" # ok, not_ok, check, fails, section, mount_rw, umount_each
now_ms() { echo $(($(date +%s%N) / 1000000)); }
as_user() { setpriv --reuid="$uid" --regid="$uid" --clear-groups -- "$@"; }
# both CMDS: run the shell commands CMDS with D set to the reference copy,
# then to the mount's data/ folder.
both() {
    local D
    for D in "$ref" "$m/data"; do eval "$1" || return 1; done
}
# same_tree NAME DIR1 DIR2: the same contents (diff -r, symlinks not
# followed) and the same types, modes, owners, sizes, mtimes, link targets
# (a folder's size and link count are the server's business).  same_data:
# the same without mtimes (for copies written at different moments).
tree_list() {
    local t=' %Ts'
    [ "$1" = -n ] && { t=''; shift; }
    (cd "$1" && find . -mindepth 1 \( -type d -printf "d %m %U %G$t %P\n" \) -o \
        -printf "%y %m %U %G %s$t %P -> %l\n") | LC_ALL=C sort
}
same_tree() {
    local name=$1 n='' out
    [ "$name" = -n ] && { n=-n; name=$2; shift; }
    if ! out=$(diff -r --no-dereference "$2" "$3" 2>&1); then
        not_ok "$name" "diff -r: $(head -n 4 <<<"$out" | tr '\n' '|')"
    elif ! out=$(diff <(tree_list $n "$2") <(tree_list $n "$3") 2>&1); then
        not_ok "$name" "attributes differ ($(grep -c '^<' <<<"$out") entries, first lines below)"
        grep '^[<>]' <<<"$out" | head -n 12 | sed 's/^/#   /'
    else ok "$name"; fi
}
same_data() { same_tree -n "$@"; }

# ---- the bucket as the host sees it --------------------------------------
# bucket_list FILE: ask the host for its listing of the bucket (format in
# bucketnfsd.sh); 1 when it does not answer within 10 s.
bucket_list() {
    local i
    [ -n "$ctl" ] && [ -d "$ctl" ] || return 1
    rm -f "$ctl/bucket-list.done"
    : >"$ctl/bucket-list.req"
    for i in $(seq 100); do
        if [ -e "$ctl/bucket-list.done" ]; then
            mv "$ctl/bucket-list.done" "$1"
            return 0
        fi
        sleep 0.1
    done
    return 1
}
# names FILE: the paths in a listing, one a line.
names() {
    sed -n -e '/^== sha256$/q' -e 's/^f [^ ]* [^ ]* [^ ]* [^ ]* [^ ]* //p' -e t \
        -e 's/^d [^ ]* [^ ]* [^ ]* //p' -e t -e 's/^l \(.*\) -> .*/\1/p' -e t -e 's/^? //p' "$1"
}
# mount_list DIR: the same listing made from a mount.
mount_list() {
    (cd "$1" && find . -mindepth 1 \( -type f -printf 'f %m %U %G %s %Ts %P\n' \) -o \
        \( -type d -printf 'd %m %U %G %P\n' \) -o \( -type l -printf 'l %P -> %l\n' \) -o \
        -printf '? %P\n' | LC_ALL=C sort
     echo "== sha256"
     find . -type f -printf '%P\0' | xargs -0 -r sha256sum | LC_ALL=C sort)
}
# wait_bucket CONDITION: list the bucket into $tmp/bucket (names in
# $tmp/bucket.names) until the shell condition holds, at most $wb_wait s.
wait_bucket() {
    local t0=$SECONDS
    while :; do
        if bucket_list "$tmp/bucket"; then
            names "$tmp/bucket" >"$tmp/bucket.names"
            eval "$1" && return 0
        fi
        [ $((SECONDS - t0)) -ge "$wb_wait" ] && return 1
        sleep 1
    done
}
has() { grep -qxF -- "$1" "$tmp/bucket.names"; }
# keep FILE...: copies for whoever reads a failed run (the host keeps the
# job folder: its share/ctl is $BNFS_CTL).
keep() { [ -n "$ctl" ] && cp "$@" "$ctl/" 2>/dev/null; }
no_silly() { ! grep -q '\(^\|/\)\.nfs' "$tmp/bucket.names"; }

finish() {
    exec 3<&- 4>&- 5<&-
    cd /
    umount_each "$c" "$b" "$m"
    rm -rf "$tmp"
    echo "posix_write: $pass passed, $fail failed"
    [ "$fail" = 0 ]
    exit
}

section "mounts"
if out=$(mount_rw "$m" 2>&1) && out=$(mount_rw "$b" nosharecache,noac 2>&1); then
    ok "mount 10.0.2.2:$rw_export read-write twice ($m, and $b with nosharecache,noac)"
else
    not_ok "mount 10.0.2.2:$rw_export" "$out"
    finish
fi
if [ -n "$ctl" ] && bucket_list "$tmp/bucket"; then
    ok "the host lists the bucket (bucket-list.req)"
    have_bucket=1
else
    not_ok "the host lists the bucket" "no answer to bucket-list.req in ${ctl:-(no BNFS_CTL)}: the server command must be bucketnfsd.sh"
    have_bucket=0
fi
mkdir -p "$ref"
check "mkdir in the mount" mkdir "$m/data"

# ---- data ----------------------------------------------------------------
section "data"

both 'echo "hello, write" >"$D/hello.txt"'
check "echo > a new file reads back" test "$(cat "$m/data/hello.txt")" = "hello, write"
check "and reads back on the second mount" test "$(cat "$b/data/hello.txt")" = "hello, write"

dd if=/dev/urandom of="$tmp/r20" bs=1M count=20 status=none
t=$(now_ms)
both 'dd if="$tmp/r20" of="$D/big" bs=1M count=20 status=none'
ms=$(($(now_ms) - t))
want=$(sha256sum <"$tmp/r20")
if cmp -s "$tmp/r20" "$m/data/big"; then ok "dd bs=1M count=20 writes 20 MiB, read back the same ($ms ms both copies)"
else not_ok "dd bs=1M count=20" "read back differs: $(cmp "$tmp/r20" "$m/data/big" 2>&1)"; fi
got=$(sha256sum <"$b/data/big")
[ "$got" = "$want" ] && ok "sha256 of the 20 MiB on the second mount" || not_ok "sha256 on the second mount" "$got"

mt0=$(stat -c %.9Y "$m/data/big")
sleep 1 # a later mtime on any clock resolution
dd if=/dev/urandom of="$tmp/patch" bs=4096 count=50 status=none
both 'dd if="$tmp/patch" of="$D/big" bs=4096 seek=1000 conv=notrunc status=none'
both 'printf PATCHED | dd of="$D/big" bs=1 seek=10485761 conv=notrunc status=none'
check "overwrites in the middle (200 KiB at 4000 KiB, 7 bytes at 10 MiB + 1)" cmp "$ref/big" "$m/data/big"
cmp -s <(dd if="$ref/big" bs=4096 skip=1000 count=50 status=none) \
    <(dd if="$b/data/big" bs=4096 skip=1000 count=50 status=none) &&
    [ "$(dd if="$b/data/big" bs=1 skip=10485761 count=7 status=none)" = PATCHED ] &&
    ok "the overwritten ranges on the second mount" ||
    not_ok "the overwritten ranges on the second mount" "differ"
mt1=$(stat -c %.9Y "$m/data/big")
[ "$(stat -c %s "$m/data/big")" = $((20 << 20)) ] && ok "size unchanged by overwrites" ||
    not_ok "size unchanged by overwrites" "$(stat -c %s "$m/data/big")"
[[ $mt1 > $mt0 ]] && ok "a write moves the mtime ($mt0 -> $mt1)" || not_ok "a write moves the mtime" "$mt0 -> $mt1"

both 'truncate -s 15000001 "$D/big"'
[ "$(stat -c %s "$b/data/big")" = 15000001 ] && cmp -s "$ref/big" "$m/data/big" &&
    ok "truncate -s down to 15000001" || not_ok "truncate -s down" "size $(stat -c %s "$b/data/big")"
both 'truncate -s 25M "$D/big"'
check "truncate -s up to 25 MiB" cmp "$ref/big" "$m/data/big"
[ "$(stat -c %s "$b/data/big")" = $((25 << 20)) ] && ok "the new size on the second mount" ||
    not_ok "the new size on the second mount" "$(stat -c %s "$b/data/big")"
if cmp -s <(tail -c +15000002 "$b/data/big") <(head -c $((25 * 1048576 - 15000001)) /dev/zero); then
    ok "the hole reads zeros"
else not_ok "the hole reads zeros" "$(cmp <(tail -c +15000002 "$b/data/big") <(head -c $((25 * 1048576 - 15000001)) /dev/zero) 2>&1)"; fi
both 'echo "appended line" >>"$D/big"; printf "%s\n" "second line" >>"$D/hello.txt"'
check "append (>>) to a big and a small file" cmp "$ref/big" "$m/data/big"
check "the appended small file on the second mount" test "$(cat "$b/data/hello.txt")" = "$(printf 'hello, write\nsecond line')"
both ': >"$D/empty"; dd if="$tmp/r20" of="$D/odd" bs=999 count=7 status=none'
both 'truncate -s 0 "$D/hello.txt"; echo "after truncate to 0" >>"$D/hello.txt"'
check "truncate to 0 and append" test "$(cat "$b/data/hello.txt")" = "after truncate to 0"
both 'echo "rewritten" >"$D/odd"'
check "> over an existing file (O_TRUNC)" test "$(cat "$b/data/odd")" = "rewritten"
# Close-to-open from the other side: written on the noac mount, reopened
# on /mnt/rw-a, which has the old pages cached.
cat "$m/data/big" >/dev/null
dd if=/dev/urandom of="$tmp/patch2" bs=64k count=4 status=none
for D in "$ref" "$b/data"; do dd if="$tmp/patch2" of="$D/big" bs=64k seek=7 conv=notrunc status=none; done
check "close-to-open: a write on the second mount is read on the first" cmp "$ref/big" "$m/data/big"

# ---- namespace -----------------------------------------------------------
section "namespace"

n=$m/ns
# perl's rename() is rename(2) alone: mv would copy on EXDEV and hide it.
prename() { perl -e 'rename($ARGV[0], $ARGV[1]) or die "$!\n"' "$1" "$2"; }
mkdir -p "$n/d1" "$n/d2" "$n/up/sub" "$n/full" "$n/empty"
echo one >"$n/d1/f1"
echo "in the bucket" >"$n/up/sub/f"
# A folder of 40 files (the RENAME answers first, the objects follow).
for i in 0 1 2 3; do
    mkdir -p "$n/many/s$i"
    for j in 0 1 2 3 4 5 6 7 8 9; do printf 'file %s of folder %s\n' "$j" "$i" >"$n/many/s$i/f$j"; done
done
echo x >"$n/full/x"
ino=$(stat -c %i "$n/d1/f1")
check "mv in a folder" mv "$n/d1/f1" "$n/d1/f1-renamed"
[ ! -e "$n/d1/f1" ] && [ "$(cat "$n/d1/f1-renamed")" = one ] && [ "$(stat -c %i "$n/d1/f1-renamed")" = "$ino" ] &&
    ok "the old name is gone, the new one has the data and the inode number" ||
    not_ok "mv in a folder" "old $(ls "$n/d1" | tr '\n' ' '), inode $(stat -c %i "$n/d1/f1-renamed") (was $ino)"
check "rename(2) of a file to another folder (no EXDEV)" prename "$n/d1/f1-renamed" "$n/d2/f1"
[ "$(stat -c %i "$n/d2/f1" 2>&1)" = "$ino" ] && [ "$(cat "$b/ns/d2/f1")" = one ] &&
    ok "moved: same inode, data on the second mount" || not_ok "moved file" "$(ls -li "$n/d2" 2>&1 | tr '\n' '|')"
echo two >"$n/d2/g"
check "mv over an existing file" mv "$n/d2/f1" "$n/d2/g"
[ "$(cat "$n/d2/g")" = one ] && [ ! -e "$n/d2/f1" ] && ok "the target has the moved file's data" ||
    not_ok "mv over a file" "$(cat "$n/d2/g")"
mkdir "$n/tree" "$n/tree/sub"
echo a >"$n/tree/a"
echo b >"$n/tree/sub/b"
ln -s a "$n/tree/link"
check "rename(2) of a new folder with contents" prename "$n/tree" "$n/d1/tree2"
[ "$(cat "$n/d1/tree2/sub/b" "$n/d1/tree2/link")" = "$(printf 'b\na')" ] && [ ! -e "$n/tree" ] &&
    ok "the moved folder's contents are there" || not_ok "moved folder" "$(find "$n" | tr '\n' ' ')"
# The same once uploaded: the server copies the objects to the new keys.
if [ "$have_bucket" = 1 ] && wait_bucket 'has ns/up/sub/f && has ns/d1/tree2/sub/b'; then
    ok "the new files reach the bucket"
else not_ok "the new files reach the bucket" "not within ${wb_wait}s: $(tr '\n' ' ' <"$tmp/bucket.names" 2>/dev/null | head -c 300)"; fi
ino=$(stat -c %i "$n/up/sub/f")
check "rename(2) of an uploaded folder" prename "$n/up" "$n/d2/up2"
[ "$(cat "$b/ns/d2/up2/sub/f")" = "in the bucket" ] && [ ! -e "$b/ns/up" ] &&
    [ "$(stat -c %i "$n/d2/up2/sub/f")" = "$ino" ] &&
    ok "the uploaded folder moved: its file read on the second mount, same inode" ||
    not_ok "moved uploaded folder" "$(find "$b/ns" | tr '\n' ' ')"
if [ "$have_bucket" = 1 ] && wait_bucket 'has ns/d2/up2/sub/f && ! has ns/up/sub/f && ! has ns/up'; then
    ok "the bucket has the uploaded folder under its new name only"
else not_ok "the uploaded folder in the bucket" "$(grep 'up' "$tmp/bucket.names" 2>/dev/null | tr '\n' ' ')"; fi
# 40 uploaded files: the new names read right at once (from the old
# objects while they move), on both mounts; then the bucket follows.
if [ "$have_bucket" = 1 ] && wait_bucket 'has ns/many/s3/f9'; then
    ok "a folder of 40 files reaches the bucket"
else not_ok "a folder of 40 files reaches the bucket" "not within ${wb_wait}s"; fi
check "rename(2) of the uploaded folder of 40 files" prename "$n/many" "$n/d2/many2"
bad=
for i in 0 1 2 3; do for j in 0 1 2 3 4 5 6 7 8 9; do
    want=$(printf 'file %s of folder %s' "$j" "$i")
    [ "$(cat "$b/ns/d2/many2/s$i/f$j" 2>&1)" = "$want" ] && [ "$(cat "$n/d2/many2/s$i/f$j" 2>&1)" = "$want" ] ||
        bad="$bad s$i/f$j"
done; done
[ -z "$bad" ] && [ ! -e "$b/ns/many" ] && [ "$(find "$b/ns/d2/many2" -type f | wc -l)" = 40 ] &&
    ok "all 40 read back under the new name at once, on both mounts; the old name is gone" ||
    not_ok "the renamed folder of 40 files" "wrong:$bad; $(find "$b/ns/d2/many2" "$b/ns/many" 2>&1 | wc -l) names"
if [ "$have_bucket" = 1 ] && wait_bucket '[ "$(grep -c "^ns/d2/many2/s[0-3]/f[0-9]$" "$tmp/bucket.names")" = 40 ] && ! grep -q "^ns/many" "$tmp/bucket.names"'; then
    ok "the bucket has the 40 objects under the new name only"
else not_ok "the 40 objects in the bucket" "$(grep -c many2 "$tmp/bucket.names" 2>/dev/null) under the new name, $(grep -c '^ns/many' "$tmp/bucket.names" 2>/dev/null) under the old"; fi
fails "rename(2) of a folder over a non-empty one: ENOTEMPTY" "Directory not empty" prename "$n/d1/tree2" "$n/full"
check "rename(2) of a folder over an empty one" prename "$n/d1/tree2" "$n/empty"
[ "$(cat "$n/empty/a")" = a ] && ok "the empty folder was replaced" || not_ok "replaced empty folder" "$(ls "$n/empty")"
fails "rename(2) of a file over a folder: EISDIR" "Is a directory" prename "$n/d2/g" "$n/full"
fails "rename(2) of a folder over a file: ENOTDIR" "Not a directory" prename "$n/empty" "$n/d2/g"
fails "rename(2) of a folder into itself: EINVAL" "Invalid argument" prename "$n/empty" "$n/empty/sub/x"
check "rm a file" rm "$n/d2/g"
check "rm -r a folder" rm -r "$n/empty"
check "rmdir an empty folder" rmdir "$n/d1"
[ ! -e "$b/ns/d2/g" ] && [ ! -e "$b/ns/empty" ] && [ ! -e "$b/ns/d1" ] &&
    ok "removed names are gone on the second mount" || not_ok "removed names" "$(ls -R "$b/ns" | tr '\n' ' ')"

# ---- attributes ----------------------------------------------------------
section "attributes"

p=$m/attr
mkdir -p "$p/dir"
echo attrs >"$p/f"
check "chmod 0640" chmod 0640 "$p/f"
check "chown 1000:1000" chown 1000:1000 "$p/f"
check "touch -d" touch -d '2001-02-03 04:05:06 UTC' "$p/f"
chmod 0750 "$p/dir" && chown 1234:5678 "$p/dir" && touch -d '1999-12-31 23:59:59 UTC' "$p/dir"
got=$(stat -c '%a %u %g %Y' "$p/f" "$p/dir" | tr '\n' ' ')
[ "$got" = "640 1000 1000 981173106 750 1234 5678 946684799 " ] &&
    ok "stat shows mode, owner, mtime set on a file and a folder" || not_ok "stat after chmod/chown/touch" "$got"
got=$(stat -c '%a %u %g %Y' "$b/attr/f" "$b/attr/dir" | tr '\n' ' ')
[ "$got" = "640 1000 1000 981173106 750 1234 5678 946684799 " ] &&
    ok "and so does the second mount" || not_ok "the second mount after chmod/chown/touch" "$got"
before=$(date +%s)
touch "$p/f"
got=$(stat -c %Y "$p/f")
[ "$got" -ge $((before - 5)) ] && [ "$got" -le $((before + 5)) ] && ok "touch sets the mtime to now" ||
    not_ok "touch (now)" "mtime $got, now $before"
touch -d '2001-02-03 04:05:06 UTC' "$p/f"
echo more >>"$p/f"
[ "$(stat -c %a "$p/f")" = 640 ] && [ "$(stat -c %u "$p/f")" = 1000 ] && ok "a write keeps mode and owner" ||
    not_ok "a write keeps mode and owner" "$(stat -c '%a %u' "$p/f")"
touch -d '2001-02-03 04:05:06 UTC' "$p/f"

# ---- symlinks ------------------------------------------------------------
section "symlinks"

l=$m/links
mkdir -p "$l"
echo target >"$l/t.txt"
long=$(printf 'seg%03d/' $(seq 200))
check "ln -s (relative, absolute, dangling, 800 bytes)" \
    bash -c "ln -s t.txt '$l/rel' && ln -s /etc/hostname '$l/abs' && ln -s missing '$l/dangling' && ln -s '$long' '$l/long'"
got=$(readlink "$l/rel" "$l/abs" "$l/dangling" | tr '\n' ' ')
[ "$got" = "t.txt /etc/hostname missing " ] && [ "$(readlink "$b/links/long")" = "$long" ] &&
    ok "readlink gives the targets (the second mount too)" || not_ok "readlink" "$got"
[ "$(cat "$l/rel")" = target ] && [ "$(stat -c %F "$l/rel")" = "symbolic link" ] && [ ! -e "$l/dangling" ] &&
    ok "a symlink resolves, is a symlink, a dangling one does not resolve" ||
    not_ok "symlinks" "$(ls -l "$l" | tr '\n' '|')"
fails "ln -s over an existing name: EEXIST" "File exists" ln -s x "$l/rel"
check "mv a symlink" mv "$l/rel" "$l/rel2"
[ "$(readlink "$l/rel2")" = t.txt ] && [ "$(cat "$l/t.txt")" = target ] && ok "the moved symlink keeps its target" ||
    not_ok "moved symlink" "$(readlink "$l/rel2")"
check "rm a symlink leaves its target" bash -c "rm '$l/dangling' && test -f '$l/t.txt'"

# ---- errors --------------------------------------------------------------
section "errors"

e=$m/err
mkdir -p "$e/dir/sub"
echo file >"$e/file"
fails "mkdir of an existing folder: EEXIST" "File exists" mkdir "$e/dir"
fails "mkdir over an existing file: EEXIST" "File exists" mkdir "$e/file"
fails "set -C; : > existing" "cannot overwrite existing file" bash -c "set -C; : >'$e/file'"
fails "O_EXCL create of an existing file: EEXIST" "File exists" dd if=/dev/null of="$e/file" conv=excl status=none
check "O_EXCL create of a new file" dd if=/dev/null of="$e/excl" conv=excl status=none
got=$(stat -c '%a %u %g %s' "$e/excl")
[ "$got" = "644 0 0 0" ] && ok "it has the mode and owner asked for (644 0 0)" || not_ok "the O_EXCL file's attributes" "$got"
fails "rmdir of a non-empty folder: ENOTEMPTY" "Directory not empty" rmdir "$e/dir"
fails "write to a folder: EISDIR" "Is a directory" bash -c "echo x >'$e/dir'"
fails "truncate a folder: EISDIR" "Is a directory" truncate -s 0 "$e/dir"
fails "mkdir under a file: ENOTDIR" "Not a directory" mkdir "$e/file/sub"
fails "create under a file: ENOTDIR" "Not a directory" touch "$e/file/x"
fails "rmdir of a file: ENOTDIR" "Not a directory" rmdir "$e/file"
fails "rm of a missing file: ENOENT" "No such file or directory" rm "$e/missing"
fails "mkdir under a missing folder: ENOENT" "No such file or directory" mkdir "$e/missing/x"
n255=$(printf 'n%.0s' $(seq 255))
check "a 255-byte name" bash -c "echo long >'$e/$n255' && test \"\$(cat '$e/$n255')\" = long"
fails "a 256-byte name: ENAMETOOLONG" "File name too long" touch "$e/${n255}x"
# NFS3ERR_NOTSUPP: the kernel says EOPNOTSUPP or its own ENOTSUPP (524,
# which strerror does not know): any failure that leaves nothing behind.
unsupported() {
    local name=$1 path=$2 out; shift 2
    if out=$("$@" 2>&1); then not_ok "$name" "succeeded"
    elif [ -e "$path" ] || [ -L "$path" ]; then not_ok "$name" "failed ($out) but $path exists"
    else ok "$name fails: $(tail -n 1 <<<"$out" | sed 's/.*: //')"; fi
}
unsupported "ln (hard link)" "$e/hard" ln "$e/file" "$e/hard"
unsupported "mkfifo" "$e/fifo" mkfifo "$e/fifo"
unsupported "mknod (char device)" "$e/null" mknod "$e/null" c 1 3
unsupported "bind a UNIX socket" "$e/sock" perl -MIO::Socket::UNIX -e \
    'IO::Socket::UNIX->new(Local => $ARGV[0], Listen => 1) or die "$!\n"' "$e/sock"

# ---- a user who is not root ----------------------------------------------
section "uid $uid"

u=$m/users
mkdir -p "$u/rootonly"
chmod 0777 "$u"
echo public >"$u/rootonly/file-0644"
echo secret >"$u/rootonly/secret-0600" && chmod 0600 "$u/rootonly/secret-0600"
echo open >"$u/rootonly/open-0666" && chmod 0666 "$u/rootonly/open-0666"
fails "uid $uid writing a 0644 root file: EACCES" "Permission denied" as_user bash -c "echo x >>'$u/rootonly/file-0644'"
fails "uid $uid reading a 0600 root file: EACCES" "Permission denied" as_user cat "$u/rootonly/secret-0600"
fails "uid $uid creating in a 0755 root folder: EACCES" "Permission denied" as_user touch "$u/rootonly/new"
fails "uid $uid mkdir in a 0755 root folder: EACCES" "Permission denied" as_user mkdir "$u/rootonly/new-dir"
fails "uid $uid removing from a 0755 root folder: EACCES" "Permission denied" as_user rm -f "$u/rootonly/file-0644"
fails "uid $uid renaming out of a 0755 root folder: EACCES" "Permission denied" as_user mv "$u/rootonly/open-0666" "$u/moved"
fails "uid $uid chmod of a root file: EPERM" "Operation not permitted" as_user chmod 0777 "$u/rootonly/open-0666"
fails "uid $uid chown: EPERM" "Operation not permitted" as_user chown "$uid" "$u/rootonly/open-0666"
fails "uid $uid touch -d of a root file it may write: EPERM" "Operation not permitted" \
    as_user touch -c -d 2000-01-01 "$u/rootonly/open-0666"
check "uid $uid writes a 0666 root file" as_user bash -c "echo more >>'$u/rootonly/open-0666'"
[ "$(cat "$u/rootonly/file-0644")" = public ] && [ -e "$u/rootonly/open-0666" ] && [ ! -e "$u/rootonly/new" ] &&
    ok "the refused changes changed nothing" || not_ok "the refused changes" "$(ls -l "$u/rootonly" | tr '\n' '|')"
# The owner override: the descriptor that created a 0444 file may write it.
check "uid $uid creates a 0444 file and writes it (umask 222; echo >)" \
    as_user bash -c "umask 222; echo mine >'$u/ro-own'"
got=$(stat -c '%a %u %g %s' "$u/ro-own" 2>&1)
[ "$got" = "444 $uid $uid 5" ] && [ "$(cat "$u/ro-own")" = mine ] && ok "it is 0444, owned by $uid, holds what was written" ||
    not_ok "the 0444 file" "$got"
fails "uid $uid reopening its 0444 file for writing: EACCES" "Permission denied" as_user bash -c "echo x >>'$u/ro-own'"
check "uid $uid mkdir, chmod 0700 and a 0600 file in it" \
    as_user bash -c "mkdir '$u/mine' && chmod 0700 '$u/mine' && umask 077 && echo private >'$u/mine/f'"
[ "$(cat "$u/mine/f" 2>&1)" = private ] && ok "root (squash none) reads uid $uid's 0600 file in its 0700 folder" ||
    not_ok "root reads uid $uid's private file" "$(cat "$u/mine/f" 2>&1)"
check "uid $uid chmod and touch -d of its own file" \
    as_user bash -c "chmod 0640 '$u/mine/f' && touch -d '2002-02-02 02:02:02 UTC' '$u/mine/f'"

# ---- trees ---------------------------------------------------------------
section "trees"

# A few hundred small files of many sizes in 10 folders, symlinks, modes
# 0600/0755/0444, a folder of uid 1000, an empty folder and file, names
# with spaces and non-ASCII, a deep path, set mtimes.
g=$tmp/gen/tree
mkdir -p "$g/empty" "$g/deep/a/b/c/d/e/f"
for k in 0 1 2 3 4 5 6 7 8 9; do
    mkdir -p "$g/d0$k/sub"
    head -c $((20 * (100 + k * 700))) /dev/urandom | split -d -a 2 -b $((100 + k * 700)) - "$g/d0$k/f"
    printf 'small %s\n' "$k" >"$g/d0$k/sub/small"
    ln -s f00 "$g/d0$k/link-rel"
    ln -s ../d00/f01 "$g/d0$k/sub/link-up"
done
ln -s /nonexistent/target "$g/d00/dangling"
: >"$g/d00/empty-file"
echo spaces >"$g/d06/with space.txt"
echo unicode >"$g/d06/ünïcødé-名前.txt"
echo leaf >"$g/deep/a/b/c/d/e/f/leaf"
chmod 0600 "$g"/d00/f0*
chmod 0755 "$g"/d01/f0*
chmod 0444 "$g"/d02/f*
chmod 0700 "$g/d03"
chown -R 1000:1000 "$g/d05"
touch -d '2020-01-02 03:04:05' "$g"/d0*/f0[0-4]
touch -d '2010-05-06 07:08:09' "$g/d07" "$g/deep"
nfiles=$(find "$g" -type f | wc -l)
nall=$(find "$g" | wc -l)
tar -C "$tmp/gen" -cf "$tmp/tree.tar" tree
mkdir -p "$tmp/tarref" "$m/tarx"
tar -C "$tmp/tarref" -xpf "$tmp/tree.tar"
t=$(now_ms)
check "tar x of $nall entries ($nfiles files)" tar -C "$m/tarx" -xpf "$tmp/tree.tar"
echo "# tar x took $(($(now_ms) - t)) ms"
same_tree "tar x: the same as an extraction on tmpfs" "$tmp/tarref/tree" "$m/tarx/tree"
mkdir "$u/tarx"
chown "$uid:$uid" "$u/tarx"
t=$(now_ms)
check "tar x as uid $uid of two folders (0444 files written by their owner)" \
    as_user tar -C "$u/tarx" -xf "$tmp/tree.tar" tree/d02 tree/d05
echo "# tar x as uid $uid took $(($(now_ms) - t)) ms"
check "tar x as uid $uid: the same contents" \
    bash -c "diff -r --no-dereference '$tmp/tarref/tree/d02' '$u/tarx/tree/d02' && diff -r --no-dereference '$tmp/tarref/tree/d05' '$u/tarx/tree/d05'"
got=$(find "$u/tarx" ! -user "$uid" | head -n 3)
[ -z "$got" ] && ok "tar x as uid $uid: every entry owned by $uid" || not_ok "tar x as uid $uid: owners" "$got"
t=$(now_ms)
check "cp -a of the tree" cp -a "$g" "$m/cpa"
echo "# cp -a took $(($(now_ms) - t)) ms"
same_tree "cp -a: the same tree" "$g" "$m/cpa"
if command -v rsync >/dev/null; then
    t=$(now_ms)
    check "rsync -a of the tree" rsync -a "$g/" "$m/rsync/"
    echo "# rsync -a took $(($(now_ms) - t)) ms"
    same_tree "rsync -a: the same tree" "$g" "$m/rsync"
    out=$(rsync -a --itemize-changes "$g/" "$m/rsync/" 2>&1)
    [ -z "$out" ] && ok "a second rsync -a has nothing to do (sizes, mtimes, modes, owners kept)" ||
        not_ok "a second rsync -a has nothing to do" "$(head -n 5 <<<"$out" | tr '\n' '|')"
else
    echo "# skipped: 3 rsync cases: rsync is not installed on the host (tools/install-deps.sh test installs it)"
fi
if command -v git >/dev/null; then
    r=$m/git
    mkdir -p "$r"
    cp -a "$g/d00" "$g/d06" "$g/deep" "$r/"
    gitc() { git -C "$r" -c user.name=bnfs -c user.email=bnfs@localhost "$@"; }
    git_first() { gitc init -q && gitc add -A && gitc commit -q -m initial; }
    t=$(now_ms)
    check "git init, add, commit in the mount" git_first
    echo "# git init/add/commit took $(($(now_ms) - t)) ms"
    echo "changed" >>"$r/d06/with space.txt"
    git -C "$r" mv d00/f00 d00/f00-moved
    check "a second commit (a change, a git mv)" gitc commit -q -a -m second
    got=$(gitc status --porcelain 2>&1)
    [ -z "$got" ] && ok "git status is clean" || not_ok "git status is clean" "$(tr '\n' '|' <<<"$got")"
    check "git fsck" gitc fsck --no-progress
    got=$(gitc log --oneline 2>&1 | wc -l)
    [ "$got" = 2 ] && ok "git log has both commits" || not_ok "git log" "$got commits"
else
    echo "# skipped: 5 git cases: git is not installed on the host"
fi

# ---- files removed while open --------------------------------------------
section "open files"

o=$m/open
mkdir -p "$o"
echo "kept open" >"$o/a"
echo "old" >"$o/c"
if [ "$have_bucket" = 1 ] && wait_bucket 'has open/a && has open/c'; then
    ok "the files to remove reach the bucket first"
else not_ok "the files to remove reach the bucket" "not within ${wb_wait}s"; fi
exec 3<"$o/a"
check "rm of an open file (uploaded)" rm "$o/a"
exec 4>"$o/b"
echo "written before rm" >&4
check "rm of a new file open for writing" rm "$o/b"
echo "written after rm" >&4
sync # the bytes reach the server, under the .nfs name
exec 5<"$o/c"
rm "$o/c"
echo "new" >"$o/c"
silly=$(ls -A "$o" | grep '^\.nfs' | tr '\n' ' ')
echo "# the client's silly-renamed names: ${silly:-none}"
[ ! -e "$o/a" ] && [ ! -e "$o/b" ] && ok "removed names are gone" || not_ok "removed names" "$(ls -A "$o" | tr '\n' ' ')"
# The new c's upload replaces the object the removed c still reads from.
new_sum=$(echo new | sha256sum | cut -d' ' -f1)
if [ "$have_bucket" = 1 ] && wait_bucket 'grep -qx "$new_sum  open/c" "$tmp/bucket"'; then
    ok "the new file under the removed one's name reaches the bucket"
else not_ok "the new file under the removed one's name reaches the bucket" "not within ${wb_wait}s"; fi
sleep 2 # two write-back delays for the .nfs-named new file, written and closed
sync
echo 3 >/proc/sys/vm/drop_caches # the reads below go to the server
[ "$(cat <&3)" = "kept open" ] && ok "an open file removed is still readable" ||
    not_ok "reading a removed open file" "$(cat <&3 2>&1)"
got=$(cat "/proc/$$/fd/4" 2>&1)
[ "$got" = "$(printf 'written before rm\nwritten after rm')" ] &&
    ok "a new file removed while open for writing has what was written before and after rm" ||
    not_ok "a new file removed while open for writing" "read '$got'"
got=$(cat <&5 2>&1)
[ "$got" = old ] && ok "an open removed file reads its own bytes after a new file of its name is uploaded" ||
    not_ok "an open removed file reads its own bytes after a new file of its name is uploaded" "read '$got', want 'old'"
[ "$(cat "$o/c")" = new ] && ok "the new file reads its own" || not_ok "the new file" "$(cat "$o/c")"
if [ "$have_bucket" = 1 ] && bucket_list "$tmp/bucket"; then
    names "$tmp/bucket" >"$tmp/bucket.names"
    no_silly && ok "while open: no .nfs* object in the bucket" ||
        not_ok "while open: no .nfs* object in the bucket" "$(grep '\.nfs' "$tmp/bucket.names" | tr '\n' ' ')"
fi
exec 3<&- 4>&- 5<&-
t0=$SECONDS
while ls -A "$o" | grep -q '^\.nfs' && [ $((SECONDS - t0)) -lt 10 ]; do sleep 0.5; done
got=$(ls -A "$o" | tr '\n' ' ')
[ "$got" = "c " ] && ok "closed: no .nfs* left in the folder" || not_ok "closed: no .nfs* left" "listing: $got"
if [ "$have_bucket" = 1 ] && wait_bucket '! has open/a && ! has open/b && has open/c && no_silly'; then
    ok "closed: the bucket has neither the removed files nor .nfs* objects"
else not_ok "closed: the removed files leave the bucket" "$(grep 'open/' "$tmp/bucket.names" 2>/dev/null | tr '\n' ' ')"; fi

# ---- the bucket ----------------------------------------------------------
section "the bucket"

# A fresh mount reads everything from the server; the bucket must hold the
# same, once the write-back is done.
sync
if out=$(mount_rw "$c" nosharecache 2>&1); then
    same_data "after sync, a fresh mount reads the data the reference has" "$ref" "$c/data"
    t=$(now_ms)
    mount_list "$c" >"$tmp/mount"
    echo "# listing and sha256 of the whole mount took $(($(now_ms) - t)) ms"
else
    not_ok "a fresh mount at the end" "$out"
    : >"$tmp/mount"
fi
if [ "$have_bucket" = 1 ]; then
    t0=$SECONDS
    if wait_bucket 'cmp -s "$tmp/mount" "$tmp/bucket"'; then
        ok "the bucket holds what the mount shows: $(grep -c '^f ' "$tmp/mount") files, $(grep -c '^d ' "$tmp/mount") folders, $(grep -c '^l ' "$tmp/mount") symlinks (after $((SECONDS - t0))s)"
    else
        keep "$tmp/mount" "$tmp/bucket"
        not_ok "the bucket holds what the mount shows" "after ${wb_wait}s, $(diff "$tmp/mount" "$tmp/bucket" | grep -c '^[<>]') lines differ, first below (both listings kept in the job's share/ctl)"
        diff "$tmp/mount" "$tmp/bucket" | grep '^[<>]' | head -n 12 | sed 's/^/#   /'
    fi
    no_silly && ok "no .nfs* object in the bucket" ||
        not_ok "no .nfs* object in the bucket" "$(grep '\.nfs' "$tmp/bucket.names" | tr '\n' ' ')"
    (cd "$ref" && find . -type f -printf '%P\0' | xargs -0 sha256sum | sed 's,  ,  data/,' | LC_ALL=C sort) >"$tmp/ref.sums"
    if diff <(sed '1,/^== sha256$/d' "$tmp/bucket" | grep '  data/') "$tmp/ref.sums" >/dev/null; then
        ok "the bucket's data/ files are byte-identical to the reference ($(wc -l <"$tmp/ref.sums") sha256)"
    else not_ok "the bucket's data/ files" "$(diff <(sed '1,/^== sha256$/d' "$tmp/bucket" | grep '  data/') "$tmp/ref.sums" | head -n 4 | tr '\n' '|')"; fi
fi
finish
