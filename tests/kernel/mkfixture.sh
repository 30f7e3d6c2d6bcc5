#!/usr/bin/env bash
# mkfixture.sh DIR - (re)create the source tree posix_read.sh checks: every
# kind of object a read-side test looks at, with known modes, owners and
# times.  Runs on the host as root (it sets owners); takes a second or two.
#
#   files/      empty, small, page-sized edges, 1 MiB + 1, 3 MiB random,
#               a hard link pair, names with spaces and non-ASCII
#   deep/a/b/c/d/e/leaf.txt        a deep path
#   links/      relative, absolute, dangling symlinks and one to a folder
#   perm/       0600 root, 0644, 0755 script, 0700 folder, 0600 uid 1000
#   times/      fixed past and future mtimes
#   sparse/big  5 GiB sparse file, markers past 4 GiB and at the end
#               (left out with BNFS_SPARSE=0: a store that holds every
#               object in memory, like the S3 emulator, cannot take it)
#   bigdir/     BIGDIR_COUNT (default 20000) empty files f00000...
#   mutable/    cto.txt, which the close-to-open test rewrites
#   emptydir/   for rmdir
#   big/        only with BNFS_BIG_MB=N (default 0, none): seq and crash,
#               N MiB of random bytes each, and their sha256 in *.sha256
#               (for cache_read.sh: one large file read cold, one read
#               while the server is killed and restarted)
set -euo pipefail
[ $# = 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
dir=$1
count=${BIGDIR_COUNT:-20000}

rm -rf "$dir"
mkdir -p "$dir"
cd "$dir"
mkdir -p files deep/a/b/c/d/e links perm/private-dir times bigdir mutable emptydir

: > files/empty
echo "hello, world" > files/small.txt
head -c 4095 /dev/urandom > files/page-minus-1
head -c 4096 /dev/urandom > files/page
head -c 4097 /dev/urandom > files/page-plus-1
head -c $((1024 * 1024 + 1)) /dev/urandom > files/mib-plus-1
head -c $((3 * 1024 * 1024 + 7)) /dev/urandom > files/random-3m
echo "two names, one inode" > files/hard1
if [ "${BNFS_OBJSTORE:-0}" = 1 ]; then
    cp -p files/hard1 files/hard2 # no hard links in an object store: two objects
else
    ln files/hard1 files/hard2
fi
echo "space" > "files/with space.txt"
echo "unicode" > "files/ünïcødé-名前.txt"
echo "hidden" > files/.hidden
echo "leaf" > deep/a/b/c/d/e/leaf.txt

ln -s ../files/small.txt links/rel
ln -s /etc/hostname links/abs
ln -s does-not-exist links/dangling
ln -s ../deep links/dir

echo "secret" > perm/secret-0600 && chmod 0600 perm/secret-0600
echo "public" > perm/public-0644 && chmod 0644 perm/public-0644
printf '#!/bin/sh\necho exec-ok\n' > perm/exec-0755 && chmod 0755 perm/exec-0755
echo "inside" > perm/private-dir/file && chmod 0700 perm/private-dir
echo "mine" > perm/owned-1000 && chown 1000:1000 perm/owned-1000 && chmod 0600 perm/owned-1000

echo "old" > times/old && touch -d '2001-09-09 01:46:40 UTC' times/old
echo "future" > times/future && touch -d '2040-01-01 00:00:00 UTC' times/future

if [ "${BNFS_SPARSE:-1}" != 0 ]; then
    mkdir sparse
    truncate -s 5G sparse/big
    printf 'MARK-4G' | dd of=sparse/big bs=1 seek=$((4 * 1024 * 1024 * 1024 + 12345)) conv=notrunc status=none
    printf 'MARK-END' | dd of=sparse/big bs=1 seek=$((5 * 1024 * 1024 * 1024 - 8)) conv=notrunc status=none
fi

(cd bigdir && seq -f 'f%05g' 0 $((count - 1)) | xargs touch)

echo "version 1" > mutable/cto.txt

if [ "${BNFS_BIG_MB:-0}" -gt 0 ]; then
    mkdir big
    for f in seq crash; do
        head -c $((BNFS_BIG_MB * 1024 * 1024)) /dev/urandom > big/$f
        sha256sum < big/$f | cut -d' ' -f1 > big/$f.sha256
    done
fi

# Fixed times for the folders too, last, so tar and ls -l compare stably.
find . -type d -exec touch -d '2020-02-02 02:02:02 UTC' {} +

# POSIX attributes as bucketnfs stores them beside the data (the dir store's
# xattrs holding the x-amz-meta-file-* values), so a server that serves this
# folder as a bucket shows the same modes, owners and times as the source.
# Other servers ignore them.  mutable/ is left without them: it plays an
# object another tool rewrites, which carries no POSIX metadata.
python3 - <<'PY'
import os, stat
for root, dirs, files in os.walk(".", topdown=True):
    if root == "./mutable":
        continue
    for name in dirs + files:
        p = os.path.join(root, name)
        st = os.lstat(p)
        if stat.S_ISLNK(st.st_mode) or p.startswith("./mutable"):
            continue
        for key, val in (("permissions", "%07o" % st.st_mode),
                         ("owner", str(st.st_uid)), ("group", str(st.st_gid)),
                         ("mtime", "%dns" % st.st_mtime_ns)):
            os.setxattr(p, "user.bucketnfs.file-" + key, val.encode())
PY
