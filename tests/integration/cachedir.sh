#!/usr/bin/env bash
# cachedir.sh - the cache folder deleted under a running daemon (dir store,
# read-write export):
#   - reads keep being served: a block already cached, and a file never read
#     (from the store);
#   - a new file's write answers an error, NFS3ERR_IO (the write stage cannot
#     create its file), not a missing file (NFS3ERR_NOENT) the client did not ask about;
#   (files staged before the deletion lived in that folder: their upload is
#   not checked here; today it is retried without end, see the commit log)
#   - nothing crashes: the daemon still serves and stops cleanly.
# Prints "N passed, N failed" last.
set -u
. "$(dirname "$0")/lib.sh"
it_setup
mkdir -p "$IT_TMP/b/demo"
for i in 1 2; do head -c 3000000 /dev/urandom >"$IT_TMP/b/demo/f$i"; done
head -c 500000 /dev/urandom >"$IT_TMP/w0"
head -c 500000 /dev/urandom >"$IT_TMP/w1"
IT_ACCESS=rw it_write_conf c "$IT_TMP/b" '' 'writeback_delay = 30;'
it_start c || { it_done; exit 1; }
u() { echo "nfs://127.0.0.1/demo/$1?nfsport=$NFS_PORT&mountport=$MOUNT_PORT"; }

check "a file is read (and cached)" bash -c "nfs-cat '$(u f1)' | cmp - '$IT_TMP/b/demo/f1'"
check "a file is written (staged, upload held back 30 s)" nfs_tool nfs-cp "$IT_TMP/w0" "$(u w0)"
rm -rf "$IT_TMP/c/cache"
check "cache folder deleted: the cached file still reads right" \
    bash -c "nfs-cat '$(u f1)' | cmp - '$IT_TMP/b/demo/f1'"
check "a file never read reads right (from the store)" \
    bash -c "nfs-cat '$(u f2)' | cmp - '$IT_TMP/b/demo/f2'"
timeout 30 nfs-cp "$IT_TMP/w1" "$(u w1)" >"$IT_TMP/cp.out" 2>&1
rc=$?
check "a new file's write fails" test "$rc" != 0
check "with NFS3ERR_IO, not NFS3ERR_NOENT" grep -q NFS3ERR_IO "$IT_TMP/cp.out"
check "the daemon still serves" bash -c "nfs-cat '$(u f1)' | cmp - '$IT_TMP/b/demo/f1'"
check "the daemon stops cleanly" it_stop c
it_done
