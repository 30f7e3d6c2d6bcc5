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
#include "cache/stage.h"
#include "common/log.h"
#include "meta/writeback.h"
#include "meta/xfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
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
    if (a->staged && r->stage) {
        /* Written here and not uploaded yet: the stage has the bytes. */
        size_t got = 0;
        size_t len = r->len;
        if (r->off + len > a->size)
            len = (size_t)(a->size - r->off);
        int err = stage_read(r->stage, r->e->id, a->ino, r->off, len, r->buf, &got);
        if (err == ENOENT && r->tries == 0) {
            /* Uploaded (and dropped from the stage) since the caller looked: the bucket has it. */
            struct inode_attr now;
            r->tries++;
            if ((err = inode_getattr(r->t, r->e, a->ino, &now)))
                return err;
            if (now.gen != a->gen)
                return ESTALE;
            r->attr = now;
            if (!now.staged)
                return start(r);
            a = &r->attr;
            len = r->len;
            if (r->off >= a->size)
                len = 0;
            else if (r->off + len > a->size)
                len = (size_t)(a->size - r->off);
        }
        if (err == ENOENT)
            err = 0; /* made and never written (or extended before any write): zeros */
        if (err)
            return err;
        if (got < len) /* a hole at the end (extended by SETATTR): zeros */
            memset((char *)r->buf + got, 0, len - got);
        r->got = len;
        r->eof = r->off + len >= a->size;
        return 0;
    }
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
    if (!S_ISREG(a->mode) || r->off >= a->size || r->len == 0 || a->staged)
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

/* ---- the write path -------------------------------------------------------------- */

#define FILL_CHUNK (1u << 20)

/*
 * Copy ino's object into the stage, so that it can be written to (the
 * caller holds ino's lock exclusive).  to_zero: it is about to be
 * truncated to nothing: no byte is copied.  EAGAIN if the object changed
 * in the bucket during the copy (the client retries).
 */
static int stage_fill(const struct meta_io *io, const struct meta_export *e, uint64_t ino,
                      bool to_zero)
{
    struct inode_attr a;
    int rc = inode_getattr(io->t, e, ino, &a);
    if (rc)
        return rc;
    if (a.staged)
        return 0;
    if (S_ISDIR(a.mode))
        return EISDIR;
    if (!S_ISREG(a.mode))
        return EINVAL;
    if (!to_zero && a.size > 0) {
        struct meta_read *r = calloc(1, sizeof(*r));
        void *buf = malloc(FILL_CHUNK);
        if (!r || !buf) {
            free(r);
            free(buf);
            return ENOMEM;
        }
        for (uint64_t off = 0; rc == 0 && off < a.size; off += FILL_CHUNK) {
            memset(r, 0, sizeof(*r));
            r->t = io->t;
            r->cache = io->cache;
            r->e = e;
            r->attr = a;
            r->off = off;
            r->len = (size_t)(a.size - off < FILL_CHUNK ? a.size - off : FILL_CHUNK);
            r->buf = buf;
            rc = meta_read(r);
            if (rc == 0 && (strcmp(r->attr.etag, a.etag) != 0 || r->got != r->len))
                rc = EAGAIN; /* another version now: start over when the client retries */
            if (rc == 0)
                rc = stage_write(io->stage, e->id, ino, off, buf, r->got);
        }
        free(r);
        free(buf);
    }
    if (rc == 0)
        rc = stage_truncate(io->stage, e->id, ino, to_zero ? 0 : a.size);
    if (rc == 0) {
        /* Copied from the object: what stays unchanged of it can be copied in the store. */
        struct inode_change c = {.staged = true, .set_base = !to_zero && a.in_bucket,
                                 .base_size = to_zero ? 0 : a.size};
        rc = inode_change(io->t, e, ino, &c, NULL, NULL);
    }
    if (rc) {
        int rr = stage_remove(io->stage, e->id, ino);
        if (rr)
            LOG_AT(LOG_WARNING, "fileio: dropping a partial copy of inode %llu: %s",
                   (unsigned long long)ino, strerror(rr));
    }
    return rc;
}

int meta_write(const struct meta_io *io, const struct meta_export *e, uint64_t ino,
               uint64_t off, const void *buf, size_t len, bool sync,
               struct inode_attr *before, struct inode_attr *after)
{
    struct inode_attr a;
    int rc;
    for (int tries = 0;; tries++) {
        wb_lock(io->wb, ino, false);
        if ((rc = inode_getattr(io->t, e, ino, &a)))
            break;
        if (S_ISDIR(a.mode)) {
            rc = EISDIR;
            break;
        }
        if (!S_ISREG(a.mode)) {
            rc = EINVAL;
            break;
        }
        if (!a.staged) {
            wb_unlock(io->wb, ino);
            if (tries >= 2)
                return EAGAIN;
            wb_lock(io->wb, ino, true);
            rc = stage_fill(io, e, ino, false);
            wb_unlock(io->wb, ino);
            if (rc)
                return rc;
            continue;
        }
        if (len == 0) { /* nothing to write: the attributes as they are */
            if (before)
                *before = a;
            if (after)
                *after = a;
            break;
        }
        rc = stage_write(io->stage, e->id, ino, off, buf, len);
        if (rc == EAGAIN)
            wb_kick(io->wb); /* dirty_max reached: uploads make room (writeback.h) */
        if (rc == 0 && sync)
            rc = stage_sync(io->stage, e->id, ino);
        if (rc == 0) {
            struct inode_change c = {.write_start = off, .write_end = off + len, .sync = sync};
            rc = inode_change(io->t, e, ino, &c, before, after);
        }
        break;
    }
    wb_unlock(io->wb, ino);
    return rc;
}

int meta_setattr(const struct meta_io *io, const struct meta_export *e, uint64_t ino,
                 struct inode_change *c, struct inode_attr *before, struct inode_attr *after)
{
    int rc = 0;
    c->sync = true;
    if (!c->set_size)
        return inode_change(io->t, e, ino, c, before, after);
    wb_lock(io->wb, ino, true);
    struct inode_attr a;
    rc = inode_getattr(io->t, e, ino, &a);
    if (rc == 0 && S_ISDIR(a.mode))
        rc = EISDIR;
    else if (rc == 0 && !S_ISREG(a.mode))
        rc = EINVAL;
    if (rc == 0 && !a.staged)
        rc = stage_fill(io, e, ino, c->size == 0);
    /*
     * The table first: its size is the file's, whatever the staged file
     * holds (a crash in between leaves extra bytes that are never read, or
     * missing ones that read as zeros, as the extension they are).
     */
    if (rc == 0) {
        c->staged = true;
        rc = inode_change(io->t, e, ino, c, before, after);
    }
    if (rc == 0)
        rc = stage_truncate(io->stage, e->id, ino, c->size);
    if (rc == 0)
        rc = stage_sync(io->stage, e->id, ino);
    wb_unlock(io->wb, ino);
    return rc;
}

int meta_commit(const struct meta_io *io, const struct meta_export *e, uint64_t ino)
{
    int rc = stage_sync(io->stage, e->id, ino);
    if (rc == ENOENT)
        rc = 0; /* nothing staged: uploaded already, or never written */
    if (rc == 0)
        rc = inode_sync(io->t);
    return rc;
}

/*
 * name in dir is about to take an object key a silly-renamed (removed but
 * open) file keeps its bytes under: copy them into the stage first, so the
 * open file keeps reading its own bytes after the new one is uploaded.
 */
static int save_hidden(const struct meta_io *io, const struct meta_export *e, uint64_t dir,
                       const char *name)
{
    uint64_t ino;
    if (inode_hidden_by(io->t, dir, name, &ino) != 0)
        return 0;
    wb_lock(io->wb, ino, true);
    int rc = stage_fill(io, e, ino, false);
    wb_unlock(io->wb, ino);
    if (rc == ESTALE || rc == ENOENT)
        rc = 0; /* gone already: nothing to keep */
    if (rc)
        LOG_AT(LOG_WARNING, "fileio: keeping the bytes of removed-but-open inode %llu before "
                            "%s takes its name: %s", (unsigned long long)ino, name, strerror(rc));
    return rc;
}

int meta_create(const struct meta_io *io, const struct meta_export *e, uint64_t dir,
                const char *name, uint32_t mode, uint32_t uid, uint32_t gid,
                enum inode_how how, uint64_t verf, const char *target,
                struct inode_attr *out, bool *existed, struct inode_attr *dir_before,
                struct inode_attr *dir_after)
{
    if (!S_ISDIR(mode)) {
        int sr = save_hidden(io, e, dir, name);
        if (sr)
            return sr;
    }
    uint64_t size = target ? strlen(target) : 0;
    int rc = inode_create(io->t, e, dir, name, mode, uid, gid, size, how, verf, out, existed,
                          dir_before, dir_after);
    if (rc == EAGAIN)
        wb_kick(io->wb); /* a directory move in the way: the uploader is on it */
    if (rc || *existed || !target)
        goto out;
    /*
     * A symlink's target is its staged bytes.  (A new regular file has
     * none until written: a missing staged file of size 0 reads and uploads
     * as empty, which saves two fsyncs per file for `tar x`.)
     */
    int sr = stage_write(io->stage, e->id, out->ino, 0, target, size);
    if (sr == 0)
        sr = stage_sync(io->stage, e->id, out->ino);
    if (sr) {
        LOG_AT(LOG_WARNING, "fileio: staging new symlink %s: %s", name, strerror(sr));
        /* A symlink without its target is no symlink: take it back. */
        struct inode_attr gone;
        inode_remove(io->t, e, dir, name, false, &gone, NULL, dir_after);
        rc = sr;
    }
out:
    if (rc == 0 || rc == EAGAIN)
        wb_kick(io->wb); /* EAGAIN: a directory move in the way, the uploader is on it */
    return rc;
}

int meta_remove(const struct meta_io *io, const struct meta_export *e, uint64_t dir,
                const char *name, bool rmdir, struct inode_attr *dir_before,
                struct inode_attr *dir_after)
{
    struct inode_attr gone;
    int rc = inode_remove(io->t, e, dir, name, rmdir, &gone, dir_before, dir_after);
    if (rc == 0 && !S_ISDIR(gone.mode)) {
        int sr = stage_remove(io->stage, e->id, gone.ino);
        if (sr && sr != ENOENT)
            LOG_AT(LOG_WARNING, "fileio: dropping the staged bytes of %s: %s", name,
                   strerror(sr));
    }
    return rc;
}

int meta_rename(const struct meta_io *io, const struct meta_export *e, uint64_t fdir,
                const char *fname, uint64_t tdir, const char *tname,
                struct inode_attr *fdir_before, struct inode_attr *fdir_after,
                struct inode_attr *tdir_before, struct inode_attr *tdir_after)
{
    struct inode_attr replaced;
    int rc = save_hidden(io, e, tdir, tname);
    if (rc)
        return rc;
    rc = inode_rename(io->t, e, fdir, fname, tdir, tname, &replaced, fdir_before,
                          fdir_after, tdir_before, tdir_after);
    if (rc == 0 && replaced.ino && !S_ISDIR(replaced.mode)) {
        int sr = stage_remove(io->stage, e->id, replaced.ino);
        if (sr && sr != ENOENT)
            LOG_AT(LOG_WARNING, "fileio: dropping the staged bytes of replaced %s: %s", tname,
                   strerror(sr));
    }
    if (rc == 0 || rc == EAGAIN)
        wb_kick(io->wb); /* EAGAIN: a directory move in the way, the uploader is on it */
    return rc;
}

struct recover_arg {
    struct inode_table *t;
    struct stage *st;
    uint64_t kept, dropped;
    char key[OBJ_KEY_MAX + 1];
};

/* Keep a staged file a local inode of its export claims; drop any other (stage_list allows it). */
static int recover_cb(void *arg, uint32_t exp, uint64_t ino, uint64_t size)
{
    struct recover_arg *a = arg;
    struct inode_attr at;
    struct inode_dirty d;
    int r = inode_upload_get(a->t, ino, &at, a->key, &d);
    if ((r == 0 || r == EBUSY) && at.export_id == exp && at.staged) {
        /* Bytes past the table's size are a write a crash cut off before the table had it. */
        if (size > at.size) {
            int tr = stage_truncate(a->st, exp, ino, at.size);
            if (tr)
                return tr;
        }
        a->kept++;
        return 0;
    }
    if (r && r != EBUSY && r != ENOENT)
        return r;
    LOG_AT(LOG_INFO, "stage: dropping the staged bytes of inode %llu (export %u): no local "
                     "file claims them", (unsigned long long)ino, exp);
    a->dropped++;
    return stage_remove(a->st, exp, ino);
}

int meta_stage_recover(struct inode_table *t, struct stage *st)
{
    struct recover_arg *a = calloc(1, sizeof(*a));
    if (!a)
        return ENOMEM;
    a->t = t;
    a->st = st;
    int r = stage_list(st, recover_cb, a);
    if (r == 0 && (a->kept || a->dropped))
        LOG_AT(LOG_NOTICE, "stage: %llu file(s) with written data awaiting upload, %llu "
                           "orphan(s) dropped", (unsigned long long)a->kept,
               (unsigned long long)a->dropped);
    free(a);
    return r;
}
