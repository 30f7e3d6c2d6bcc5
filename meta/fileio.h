/*
 * fileio.h - the contents of files: READ and READLINK bytes, served by the
 * block cache for the version of the object the inode table names.
 *
 * The inode table knows which object an inode is and which version of it
 * (ETag, size); the cache serves that version's bytes, fetching misses with
 * If-Match.  When the object changed in the bucket since the table last
 * looked, the fetch is refused (ESTALE), the object is checked again with
 * HEAD, and the read is answered from the new version with the new
 * attributes - never with bytes of two versions.  If the object is gone,
 * the read fails with ESTALE (NFS3ERR_STALE).
 *
 * Threads: safe from many threads.  Completions run on the cache's fetch
 * threads (which may make one HEAD request there, to revalidate).
 */
#ifndef BNFS_FILEIO_H
#define BNFS_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meta/inode.h"

struct cache;

/*
 * One read in progress.  The caller owns the memory and fills the inputs;
 * it must stay valid until the read is over (meta_read returned other than
 * EINPROGRESS, or done was called).
 */
struct meta_read {
    /* in */
    struct inode_table *t;
    struct cache *cache;
    struct xfile *xf;       /* cross-file prefetch to tell (NULL: none) */
    const struct meta_export *e;
    struct inode_attr attr; /* the file's attributes as the caller found them */
    uint64_t off;
    size_t len;
    void *buf;              /* len bytes */
    void (*done)(struct meta_read *r, int err); /* NULL: meta_read waits instead */
    void *arg;
    bool nowait;            /* cached bytes only: EWOULDBLOCK where a fetch is needed */
    /* out (valid when err == 0) */
    size_t got;
    bool eof;               /* the read reached the end of the file */
    /* private */
    int tries;
    char key[OBJ_KEY_MAX + 1];
    char etag[OBJ_ETAG_MAX];
};

/*
 * Read r->len bytes at r->off of the file r->attr names.  Returns 0 when the
 * bytes are in r->buf (r->got, r->eof and r->attr set: the attributes of
 * the version read), EINPROGRESS when r->done(r, err) will be called later,
 * or an error (ESTALE: the object is gone; EAGAIN: the store is unavailable;
 * EISDIR / EINVAL for a directory / another kind of file).  With r->done
 * NULL it never returns EINPROGRESS; with r->nowait it never waits and
 * returns EWOULDBLOCK where it would have to.
 */
int meta_read(struct meta_read *r);

struct cache_seg;

/*
 * The same read as pieces of the cache's files, when all of it is cached
 * (for a reply sent with sendfile): 0 with segs[0..*n) held (release with
 * cache_put_segs), r->got and r->eof set; EWOULDBLOCK when a byte is not
 * cached (or nothing is to be read): use meta_read.  Never waits.
 */
int meta_read_segs(struct meta_read *r, struct cache_seg *segs, unsigned max, unsigned *n);

#endif
