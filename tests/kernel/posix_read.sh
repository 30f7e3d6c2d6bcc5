#!/bin/bash
# posix_read.sh - read-side POSIX semantics through the Linux NFS client.
# Runs in the guest (guest-run.sh), chrooted into the host's root, so the
# usual tools are there.  The export's source tree made by mkfixture.sh is
# visible at $BNFS_SRC (read-write, through 9p) and exported read-only by
# the server under test, mounted at $BNFS_MNT_A and $BNFS_MNT_B (a second
# superblock, noac).  Every case compares what the mount shows with the
# source, and prints "ok - NAME" or "not ok - NAME: why".
#
# Knobs (run.sh --env NAME=VALUE):
#   BNFS_TTL=0          seconds the server may take to notice a change in
#                       its store (the export's metadata TTL)
#   BNFS_RPCBIND=1      also mount through rpcbind (no port options)
#   BNFS_BIGDIR_COUNT=20000   entries mkfixture.sh put in bigdir/
#   BNFS_NONROOT_UID=1000
#   BNFS_SPARSE=1       0: mkfixture.sh made no 5 GiB sparse file (the store
#                       cannot hold it); its cases are skipped, said in a
#                       "# skipped: ..." line, counted neither way
set -u
[ "${BNFS_TRACE:-0}" = 1 ] && set -x
src=${BNFS_SRC:?BNFS_SRC is not set}
a=${BNFS_MNT_A:-/mnt/a}
b=${BNFS_MNT_B:-/mnt/b}
ttl=${BNFS_TTL:-0}
bigcount=${BNFS_BIGDIR_COUNT:-20000}
uid=${BNFS_NONROOT_UID:-1000}
tmp=$(mktemp -d)
pass=0 fail=0

. "$(dirname "${BASH_SOURCE[0]}")/guest-lib.sh" # ok, not_ok, section (where the time goes)
# same NAME FILE1 FILE2: ok when the two captures are identical.
same() {
    if cmp -s "$2" "$3"; then ok "$1"; else
        not_ok "$1" "differs from the source: $(diff "$2" "$3" | head -n 6 | tr '\n' '|')"
    fi
}
elapsed() { echo $(( $(date +%s%N) / 1000000 - $1 ))ms; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# ---- the tree as a whole -------------------------------------------------
section "the tree as a whole"

# ls -lR, numeric owners, times in seconds.  Folder sizes and link counts
# are the server's business (a bucket has no folder inodes), so they and
# the "total" lines are left out; everything else must match.
ls_tree() {
    (cd "$1" && ls -lRn --time-style=+%s -I bigdir .) |
        awk '/^total / { next } /^d/ { $2 = "-"; $5 = "-" } { print }'
}
ls_tree "$src" > "$tmp/ls.src"
t=$(now_ms); ls_tree "$a" > "$tmp/ls.a"; echo "# ls -lR took $(elapsed "$t")"
same "ls -lR of the tree" "$tmp/ls.src" "$tmp/ls.a"
ls_tree "$b" > "$tmp/ls.b"
same "ls -lR of the tree on the second mount" "$tmp/ls.src" "$tmp/ls.b"

find_tree() {
    (cd "$1" && find . -path ./bigdir -prune -o \
        \( -type d -printf 'd %m %U %G %P\n' \) -o -printf '%y %m %U %G %s %Ts %P -> %l\n') | sort
}
find_tree "$src" > "$tmp/find.src"
find_tree "$a" > "$tmp/find.a"
same "find: types, modes, owners, sizes, mtimes, link targets" "$tmp/find.src" "$tmp/find.a"

# du: apparent sizes of the files (what the bucket stores), and du -s
# of the whole mount must work.
du_files() { (cd "$1" && find . -path ./bigdir -prune -o -type f -print0 | sort -z | du -b --files0-from=-); }
du_files "$src" > "$tmp/du.src"
du_files "$a" > "$tmp/du.a"
same "du -b of every file" "$tmp/du.src" "$tmp/du.a"
# (Not bigdir: du stats each entry, and 20,000 GETATTRs take ~90 s under TCG.)
if out=$(du -s --exclude=bigdir "$a" 2>&1); then ok "du -s of the mount ($(cut -f1 <<<"$out") KiB)"; else
    not_ok "du -s of the mount" "$out"; fi

# tar c: a byte-identical archive means names, modes, owners, mtimes, link
# targets, hard links and contents all match.  The 5 GiB sparse file has
# its own cases below, the 20,000-entry folder too (a tar of it takes
# 90 s under TCG: one open, so one GETATTR, per file).
# An object-store export's root is a bucket, with no attributes of its own:
# archive its contents, not the root folder itself.
if [ "${BNFS_OBJSTORE:-0}" = 1 ]; then
    tar_tree() { (cd "$1" && ls -A | grep -vx -e sparse -e bigdir | LC_ALL=C sort |
        tar --sort=name --numeric-owner --format=gnu -cf - -T -) | sha256sum; }
else
    tar_tree() { tar -C "$1" --sort=name --numeric-owner --format=gnu --exclude=./sparse --exclude=./bigdir -cf - . | sha256sum; }
fi
tar_tree "$src" > "$tmp/tar.src"
t=$(now_ms); tar_tree "$a" > "$tmp/tar.a"; echo "# tar c took $(elapsed "$t")"
same "tar c of the tree is byte-identical" "$tmp/tar.src" "$tmp/tar.a"

# sha256 of every regular file (but the big sparse one).
(cd "$src" && find . -path ./sparse -prune -o -path ./bigdir -prune -o -type f -print0 |
    sort -z | xargs -0 sha256sum) > "$tmp/sums"
if out=$(cd "$a" && sha256sum --quiet -c "$tmp/sums" 2>&1); then
    ok "sha256 of $(wc -l < "$tmp/sums") files match the source"
else not_ok "sha256 of every file" "$(head -n 3 <<<"$out" | tr '\n' '|')"; fi
if out=$(cd "$b" && sha256sum --quiet -c "$tmp/sums" 2>&1); then
    ok "sha256 of every file on the second mount"
else not_ok "sha256 of every file on the second mount" "$(head -n 3 <<<"$out" | tr '\n' '|')"; fi

# ---- large reads ---------------------------------------------------------
section "large reads"

for bs in 1M 4M; do
    want=$(sha256sum < "$src/files/random-3m")
    got=$(dd if="$a/files/random-3m" bs=$bs status=none | sha256sum)
    [ "$got" = "$want" ] && ok "dd bs=$bs reads a 3 MiB file whole" ||
        not_ok "dd bs=$bs of a 3 MiB file" "checksum $got, want $want"
done
big=sparse/big
if [ "${BNFS_SPARSE:-1}" = 0 ]; then
    echo "# skipped: 5 cases on a 5 GiB sparse file (past 4 GiB, last MiB, across 4 GiB, EOF, size): BNFS_SPARSE=0, the store under test cannot hold a 5 GiB object"
else
    mark=$(dd if="$a/$big" bs=4096 skip=$(( (4 * 1024 * 1024 * 1024 + 12345) / 4096 )) count=1 status=none |
           tail -c +$(( (4 * 1024 * 1024 * 1024 + 12345) % 4096 + 1 )) | head -c 7)
    [ "$mark" = MARK-4G ] && ok "dd skip past 4 GiB finds the marker" ||
        not_ok "dd skip past 4 GiB" "read '$mark', want MARK-4G"
    got=$(dd if="$a/$big" bs=1M skip=5119 status=none | sha256sum)
    want=$(dd if="$src/$big" bs=1M skip=5119 status=none | sha256sum)
    [ "$got" = "$want" ] && ok "dd bs=1M of the last MiB of a 5 GiB file" ||
        not_ok "dd bs=1M of the last MiB of a 5 GiB file" "checksum differs"
    got=$(dd if="$a/$big" bs=1M skip=4095 count=2 status=none | sha256sum)
    want=$(dd if="$src/$big" bs=1M skip=4095 count=2 status=none | sha256sum)
    [ "$got" = "$want" ] && ok "dd bs=1M across the 4 GiB boundary" ||
        not_ok "dd bs=1M across the 4 GiB boundary" "checksum differs"
    got=$(dd if="$a/$big" bs=1M skip=5120 status=none | wc -c)
    [ "$got" = 0 ] && ok "dd at end of file reads nothing" || not_ok "dd at end of file" "read $got bytes"
    got=$(stat -c %s "$a/$big")
    [ "$got" = $((5 * 1024 * 1024 * 1024)) ] && ok "size of a 5 GiB file" || not_ok "size of a 5 GiB file" "$got"
fi

# ---- stat fields ---------------------------------------------------------
section "stat fields"

# %s size, %f raw mode (type + permissions), %u %g owner, %Y mtime,
# %h links, %F type; folders leave size and link count out (see ls).
stat_of() {
    local p
    for p in files/empty files/small.txt files/hard1 files/hard2 files/random-3m \
             "files/ünïcødé-名前.txt" deep/a/b/c/d/e/leaf.txt perm/exec-0755 perm/owned-1000 \
             perm/secret-0600 times/old times/future; do
        echo "$p $(stat -c '%s %f %u %g %Y %h %F' "$1/$p")"
    done
    for p in links/rel links/abs links/dangling links/dir; do
        echo "$p $(stat -c '%s %f %u %g %F' "$1/$p") $(readlink "$1/$p")"
    done
    local root=.
    [ "${BNFS_OBJSTORE:-0}" = 1 ] && root= # a bucket root has no attributes of its own
    for p in $root deep perm/private-dir emptydir; do
        echo "$p $(stat -c '%f %u %g %Y %F' "$1/$p")"
    done
}
stat_of "$src" > "$tmp/stat.src" 2>&1
stat_of "$a" > "$tmp/stat.a" 2>&1
same "stat: size, mode, owner, mtime, nlink, type of files, symlinks, folders" "$tmp/stat.src" "$tmp/stat.a"
h1=$(stat -c %i "$a/files/hard1"); h2=$(stat -c %i "$a/files/hard2")
if [ "${BNFS_OBJSTORE:-0}" = 1 ]; then
    # An object store has no hard links: two names are two objects.
    [ "$h1" != "$h2" ] && ok "two objects, two inode numbers" || not_ok "two objects" "both inode $h1"
else
    [ "$h1" = "$h2" ] && ok "hard links share an inode number" || not_ok "hard links" "inodes $h1 and $h2"
fi
got=$(cat "$a/links/rel" 2>&1)
[ "$got" = "hello, world" ] && ok "reading through a relative symlink" || not_ok "relative symlink" "$got"
[ -e "$a/links/dangling" ] && not_ok "dangling symlink" "exists" || ok "dangling symlink does not resolve"
[ "$(stat -c %Y "$a/times/future")" = 2208988800 ] && ok "mtime in 2040 survives" ||
    not_ok "mtime in 2040" "$(stat -c %Y "$a/times/future")"

# statfs: the client reports an NFS filesystem with real numbers.
if out=$(stat -f -c '%T %b %S %a %c' "$a" 2>&1) && read -r ftype blocks bsize avail files <<<"$out" &&
   [ "$ftype" = nfs ] && [ "$blocks" -gt 0 ] && [ "$bsize" -gt 0 ] && [ "$avail" -le "$blocks" ]; then
    ok "statfs: type nfs, $blocks blocks of $bsize, $avail available"
else not_ok "statfs" "$out"; fi
if out=$(df -P "$a" 2>&1) && awk 'NR == 2 && $2 > 0 { found = 1 } END { exit !found }' <<<"$out"; then
    ok "df of the mount"
else not_ok "df of the mount" "$(tr '\n' '|' <<<"$out")"; fi
opts=$(awk -v m="$a" '$2 == m { print $4 }' /proc/mounts)
case ",$opts," in
    *,vers=3,*) ok "mounted as NFSv3 ($opts)" ;;
    *) not_ok "mounted as NFSv3" "$opts" ;;
esac
case ",$opts," in
    *,rsize=1048576,*) ok "rsize negotiated to 1 MiB" ;;
    *) not_ok "rsize negotiated to 1 MiB" "$opts" ;;
esac

# ---- a big folder --------------------------------------------------------
section "a big folder"

# Listing is READDIR(PLUS) only.  Anything that stats every entry costs a
# GETATTR per entry once the attribute cache expires: 20,000 of them take
# minutes under TCG, so stats are checked on a sample.
ls -f "$src/bigdir" | grep -v '^\.\.\?$' | LC_ALL=C sort > "$tmp/big.src"
t=$(now_ms)
ls -f "$a/bigdir" | grep -v '^\.\.\?$' | LC_ALL=C sort > "$tmp/big.a"
echo "# ls -f of $bigcount entries took $(elapsed "$t")"
n=$(wc -l < "$tmp/big.a")
[ "$n" = "$bigcount" ] && ok "ls of a $bigcount-entry folder lists $n entries" ||
    not_ok "ls of a $bigcount-entry folder" "$n entries"
same "the $bigcount names are the source's, each once" "$tmp/big.src" "$tmp/big.a"
t=$(now_ms)
ls -f "$b/bigdir" | grep -v '^\.\.\?$' | LC_ALL=C sort > "$tmp/big.b"
echo "# ls -f of $bigcount entries on the second mount took $(elapsed "$t")"
same "the $bigcount-entry folder on the second mount" "$tmp/big.src" "$tmp/big.b"
sample=$(awk 'NR % 200 == 1' "$tmp/big.src")
bad=0
for f in $sample; do [ -f "$a/bigdir/$f" ] || bad=$((bad + 1)); done
last=$(tail -n 1 "$tmp/big.src")
[ "$bad" = 0 ] && [ -f "$a/bigdir/$last" ] && [ ! -e "$a/bigdir/$last.missing" ] &&
    ok "lookup of sampled entries, the last one, and a missing one" ||
    not_ok "lookup in a big folder" "$bad sampled entries missing, last $last"

# ---- a user who is not root ----------------------------------------------
section "a user who is not root"

as_user() { setpriv --reuid="$uid" --regid="$uid" --clear-groups -- "$@"; }
out=$(as_user cat "$a/perm/secret-0600" 2>&1)
case "$out" in
    *"Permission denied"*) ok "uid $uid cannot read a 0600 root file (EACCES)" ;;
    *) not_ok "uid $uid reading a 0600 root file" "got '$out'" ;;
esac
out=$(as_user cat "$a/perm/public-0644" 2>&1)
[ "$out" = public ] && ok "uid $uid reads a 0644 file" || not_ok "uid $uid reads a 0644 file" "$out"
out=$(as_user cat "$a/perm/owned-1000" 2>&1)
if [ "$uid" = 1000 ]; then
    [ "$out" = mine ] && ok "uid 1000 reads its own 0600 file" || not_ok "uid 1000 reads its own 0600 file" "$out"
fi
out=$(as_user ls "$a/perm/private-dir" 2>&1)
case "$out" in
    *"Permission denied"*) ok "uid $uid cannot list a 0700 root folder" ;;
    *) not_ok "uid $uid listing a 0700 root folder" "got '$out'" ;;
esac
out=$(as_user "$a/perm/exec-0755" 2>&1)
[ "$out" = exec-ok ] && ok "uid $uid runs a 0755 script from the mount" || not_ok "run a 0755 script" "$out"

# ---- every write is refused: the export is read-only ---------------------
section "refused writes"

# erofs NAME CMD...: the command must fail with "Read-only file system".
# Opening an existing file for writing is decided by the client from the
# server's ACCESS reply (RFC 1813 3.3.4), which refuses the MODIFY bit
# without saying why: Linux then reports EACCES, and that is accepted there.
erofs() {
    local name=$1 out; shift
    out=$("$@" 2>&1)
    local rc=$?
    if [ $rc != 0 ] && [[ $out == *"Read-only file system"* ]]; then ok "EROFS: $name"
    elif [ $rc != 0 ] && [ "${ALLOW_EACCES:-0}" = 1 ] && [[ $out == *"Permission denied"* ]]; then
        ok "EROFS: $name (EACCES from the ACCESS reply)"
    else not_ok "EROFS: $name" "exit $rc: $out"; fi
}
before=$(cd "$src" && find . -path ./bigdir -prune -o -printf '%y %m %U %G %s %T@ %P\n' | sort | sha256sum)
erofs "create a file" bash -c ": > '$a/new-file'"
erofs "create with O_EXCL" bash -c "set -C; : > '$a/new-file2'"
ALLOW_EACCES=1 erofs "write to an existing file" bash -c "echo x > '$a/files/small.txt'"
ALLOW_EACCES=1 erofs "append to an existing file" bash -c "echo x >> '$a/files/small.txt'"
ALLOW_EACCES=1 erofs "dd into an existing file" dd if=/dev/zero of="$a/files/page" bs=1 count=1 conv=notrunc status=none
erofs "mkdir" mkdir "$a/new-dir"
erofs "rmdir" rmdir "$a/emptydir"
erofs "rm" rm -f "$a/files/small.txt"
erofs "mv (rename)" mv "$a/files/small.txt" "$a/files/renamed.txt"
erofs "ln -s" ln -s small.txt "$a/files/new-link"
erofs "ln (hard link)" ln "$a/files/small.txt" "$a/files/new-hard"
erofs "chmod" chmod 0600 "$a/files/small.txt"
erofs "chown" chown 1000:1000 "$a/files/small.txt"
# touch -c -h sets times with utimensat() on the path, no open: SETATTR.
erofs "touch (utime now)" touch -c -h "$a/files/small.txt"
erofs "touch -d (explicit times)" touch -c -h -d '2000-01-01' "$a/files/small.txt"
ALLOW_EACCES=1 erofs "touch an existing file (open for writing)" touch "$a/files/small.txt"
ALLOW_EACCES=1 erofs "truncate (write permission from ACCESS)" truncate -s 0 "$a/files/small.txt"
erofs "mkfifo" mkfifo "$a/new-fifo"
erofs "mknod (char device)" mknod "$a/new-null" c 1 3
erofs "write on the second mount" bash -c ": > '$b/new-file'"
after=$(cd "$src" && find . -path ./bigdir -prune -o -printf '%y %m %U %G %s %T@ %P\n' | sort | sha256sum)
[ "$before" = "$after" ] && ok "the source tree is unchanged after the refused writes" ||
    not_ok "the source tree is unchanged" "something was modified"

# ---- changes behind the server: close-to-open ----------------------------
section "changes behind the server"

f=mutable/cto.txt
ca=$(cat "$a/$f"); cb=$(cat "$b/$f")
[ "$ca" = "version 1" ] && [ "$cb" = "version 1" ] && ok "both mounts read version 1" ||
    not_ok "both mounts read version 1" "'$ca' / '$cb'"
exec 7< "$a/$f"    # an open file keeps its old pages until it is reopened
sleep 1            # a new mtime second, whatever the server's time resolution
echo "version 2, longer" > "$src/$f"
echo "new" > "$src/mutable/new-file"
sleep "$ttl"
ca=$(cat "$a/$f"); cb=$(cat "$b/$f")
[ "$ca" = "version 2, longer" ] && ok "close-to-open: a reopen on /mnt/a sees the change" ||
    not_ok "close-to-open on /mnt/a" "read '$ca' after ${ttl}s"
[ "$cb" = "version 2, longer" ] && ok "close-to-open: the noac mount sees the change" ||
    not_ok "close-to-open on /mnt/b" "read '$cb' after ${ttl}s"
exec 7<&-
[ "$(stat -c %s "$a/$f")" = 18 ] && ok "the new size is visible" || not_ok "new size" "$(stat -c %s "$a/$f")"
[ "$(cat "$a/mutable/new-file" 2>&1)" = new ] && [ "$(cat "$b/mutable/new-file" 2>&1)" = new ] &&
    ok "a file added behind the server is found on both mounts" ||
    not_ok "a file added behind the server" "not found after ${ttl}s"
ls "$b/mutable" | grep -qx new-file && ok "and listed on the noac mount" ||
    not_ok "a file added behind the server is listed on the noac mount" "$(ls "$b/mutable" | tr '\n' ' ')"
rm -f "$src/mutable/new-file"
sleep "$ttl"
if [ -e "$b/mutable/new-file" ]; then not_ok "a file removed behind the server" "still there on /mnt/b"
else ok "a file removed behind the server is gone on the noac mount"; fi

# ---- rpcbind discovery ---------------------------------------------------
section "rpcbind discovery"

if [ "${BNFS_RPCBIND:-0}" = 1 ]; then
    mkdir -p /mnt/rpcb
    if out=$("$BNFS_MOUNT" "$BNFS_MOUNT_SOURCE" /mnt/rpcb "$BNFS_MOUNT_BASE" 2>&1); then
        ok "mount through rpcbind (no port options)"
        got=$(sha256sum < /mnt/rpcb/files/random-3m)
        [ "$got" = "$(sha256sum < "$src/files/random-3m")" ] && ok "read through the rpcbind mount" ||
            not_ok "read through the rpcbind mount" "checksum differs"
        umount /mnt/rpcb && ok "umount the rpcbind mount" || not_ok "umount the rpcbind mount" "failed"
    else
        not_ok "mount through rpcbind (no port options)" "$out"
    fi
fi

rm -rf "$tmp"
echo "posix_read: $pass passed, $fail failed"
[ "$fail" = 0 ]
