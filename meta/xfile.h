/*
 * xfile.h - cross-file prefetch: a client reading a directory's files one
 * after another in name order (camera frames frame_000123.jpg, log
 * segments seg_00042.bin - what a data loader does) gets the next files
 * fetched into the block cache ahead of it.
 *
 * Detection is per directory: a read of the start of a file that is the
 * next regular file after the previous one read (in the name order of the
 * inode table) is a step; after a step the following files are prefetched,
 * a window of files that doubles while the reader keeps to it (4, 8, ... up
 * to 256 files or window_bytes), under the cache's prefetch budget.  A read
 * outside the window starts the detection over.
 *
 * xfile_note() is cheap and never waits (it may run on the RPC event loop);
 * the directory walks and cache_prefetch calls run on one background thread
 * of the module, from a bounded queue (a full queue drops the work: it is
 * only a hint).
 */
#ifndef BNFS_XFILE_H
#define BNFS_XFILE_H

#include <stdint.h>

#include "meta/inode.h"

struct cache;
struct xfile;

struct xfile_stats {
    uint64_t streams;   /* directory streams detected */
    uint64_t files;     /* files prefetched */
    uint64_t bytes;     /* bytes asked of the cache */
    uint64_t dropped;   /* work dropped: queue full */
};

/* NULL + errno.  window_bytes bounds the bytes prefetched ahead of one reader. */
struct xfile *xfile_create(struct inode_table *t, struct cache *c, uint64_t window_bytes);
void xfile_destroy(struct xfile *x);

/* A read of file a of export e starts at offset 0.  Never blocks. */
void xfile_note(struct xfile *x, const struct meta_export *e, const struct inode_attr *a);

void xfile_get_stats(struct xfile *x, struct xfile_stats *out);

#endif
