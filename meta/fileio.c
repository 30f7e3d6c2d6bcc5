/*
 * fileio.c - file contents through the block cache (see fileio.h).
 *
 * A read names the object version from the inode's attributes: the cache
 * key carries cache_version(ETag, size), and every miss is fetched with
 * If-Match on the ETag.  On ESTALE (the object changed in the bucket) the
 * inode is revalidated with HEAD and the read starts over once with the new
 * version; a second change in between gives up with EAGAIN (the client
 * retries: NFS3ERR_JUKEBOX).  Blocks of the old version are never named
 * again, so they are never served again; eviction drops them.
 *
 * States of a meta_read: started (tries = 0) -> waiting on the cache
 * (EINPROGRESS) -> done, or -> revalidating (tries = 1, on the completing
 * fetch thread) -> waiting again -> done.  Nothing is shared between reads;
 * no locks here.
 */
#include "meta/fileio.h"

#include "cache/cache.h"
#include "meta/xfile.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static void on_cache_done(void *arg, int err, size_t got);

/* The cache's name of the object version r->attr describes (its strings live in r). */
static int obj_of(struct meta_read *r, struct cache_obj *o)
{
    const struct inode_attr *a = &r->attr;
    int err = inode_key(r->t, a->ino, r->key, sizeof(r->key));
    if (err)
        return err;
    snprintf(r->etag, sizeof(r->etag), "%s", a->etag);
    *o = (struct cache_obj){
        .export_id = r->e->id,
        .gen = a->gen,
        .ino = a->ino,
        .version = cache_version(a->etag, a->size),
        .size = a->size,
        .store = r->e->store,
        .bucket = r->e->bucket,
        .key = r->key,
        .etag = r->etag,
        .noevict_when_full = r->e->shuffle,
    };
    return 0;
}

/* Build the cache's view of r's object version and start the read. */
static int start(struct meta_read *r)
{
    const struct inode_attr *a = &r->attr;
    if (S_ISDIR(a->mode))
        return EISDIR;
    if (!S_ISREG(a->mode) && !S_ISLNK(a->mode))
        return EINVAL;
    r->got = 0;
    r->eof = r->off >= a->size;
    if (r->off >= a->size || r->len == 0)
        return 0;
    if (r->off == 0 && r->tries == 0)
        xfile_note(r->xf, r->e, a); /* the start of a file: a step of a name-order reader? */
    struct cache_obj o;
    int err = obj_of(r, &o);
    if (err)
        return err;
    size_t got = 0;
    if (r->nowait)
        err = cache_read_async(r->cache, &o, r->off, r->len, r->buf, &got, NULL, NULL);
    else if (r->done)
        err = cache_read_async(r->cache, &o, r->off, r->len, r->buf, &got, on_cache_done, r);
    else
        err = cache_read(r->cache, &o, r->off, r->len, r->buf, &got);
    if (err == 0) {
        r->got = got;
        r->eof = r->off + got >= a->size;
    }
    return err;
}

/*
 * After a refusal (ESTALE from If-Match, or fewer bytes than the size
 * promised): look at the object again and read the new version.  Returns
 * as start() does; ESTALE if the object is gone, EAGAIN if it changed yet
 * again meanwhile (the client retries).
 */
static int retry(struct meta_read *r)
{
    r->tries++;
    struct inode_attr now;
    int err = inode_revalidate(r->t, r->e, r->attr.ino, &now);
    if (err)
        return err;
    if (now.gen != r->attr.gen)
        return ESTALE;
    r->attr = now;
    err = start(r);
    return err == ESTALE ? EAGAIN : err;
}

static void on_cache_done(void *arg, int err, size_t got)
{
    struct meta_read *r = arg;
    if (err == ENOENT)
        err = ESTALE; /* deleted from the bucket behind us */
    if (err == ESTALE && r->tries == 0) {
        err = retry(r);
        if (err == EINPROGRESS)
            return; /* this function runs again when the new version is read */
    } else if (err == ESTALE) {
        err = EAGAIN;
    } else if (err == 0) {
        r->got = got;
        r->eof = r->off + got >= r->attr.size;
    }
    r->done(r, err);
}

int meta_read(struct meta_read *r)
{
    r->tries = 0;
    int err = start(r);
    if (err == ENOENT)
        err = ESTALE; /* deleted from the bucket behind us */
    return err == ESTALE ? retry(r) : err;
}

int meta_read_segs(struct meta_read *r, struct cache_seg *segs, unsigned max, unsigned *n)
{
    const struct inode_attr *a = &r->attr;
    *n = 0;
    if (!S_ISREG(a->mode) || r->off >= a->size || r->len == 0)
        return EWOULDBLOCK; /* nothing to send from the files: the plain path answers */
    struct cache_obj o;
    int err = obj_of(r, &o);
    if (err)
        return err;
    size_t got = 0;
    err = cache_get_segs(r->cache, &o, r->off, r->len, segs, max, n, &got);
    if (err)
        return err;
    if (r->off == 0)
        xfile_note(r->xf, r->e, a);
    r->got = got;
    r->eof = r->off + got >= a->size;
    return 0;
}
