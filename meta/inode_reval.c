/*
 * inode_reval.c - confirming attributes with HEAD: files whose attributes
 * are older than the export's metadata_ttl, and directories' marker objects.
 *
 * A file.  HEAD once its attributes are older than the TTL (or were only a
 * listing's guess); a gone object removes the inode and its entry (ESTALE).
 *
 * A directory's own attributes.  Its marker object (prefix + path + "/";
 * the root's is the prefix, none for an empty prefix) is HEADed when
 * GETATTR, LOOKUP or READDIR hand out its attributes and validated_at is 0
 * (never checked) or older than the TTL: one HEAD per directory per TTL,
 * files unaffected.  POSIX metadata gives mode, uid and gid; no marker
 * gives the export defaults.  mtime is the marker's (or the inode's
 * creation time without one) until a re-listing finds a change, which sets
 * it to now and IREC_MTIME_LISTED; from then on only a newer marker mtime
 * replaces it.  The first listing of a directory is not a change.  A failed
 * marker HEAD fails GETATTR (EAGAIN -> JUKEBOX, as for files) but only logs
 * in LOOKUP and READDIR, which then hand out the attributes they have.
 *
 * Threads: no lock of its own; the store call runs outside any transaction.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "meta/inode_internal.h"

struct file_arg {
    uint64_t ino;
    const struct meta_export *e;
    const struct obj_meta *m; /* NULL: the object is gone */
    int64_t now;
    struct inode_rec rec, parent; /* scratch; rec is the result */
};

static int file_gone_fn(struct inode_table *t, DB_TXN *txn, void *arg)
{
    struct file_arg *a = arg;
    struct dval dv;
    int r = rec_get(t, txn, a->ino, &a->rec, DB_RMW);
    if (r)
        return r;
    if (a->rec.h.flags & IREC_LOCAL)
        return EEXIST; /* not uploaded yet: the table's file, whatever the bucket says */
    r = dirent_get(t, txn, a->rec.h.parent, a->rec.name, &dv, DB_RMW);
    if (r == 0 && dv.ino == a->ino) {
        if ((r = dirent_del(t, txn, a->rec.h.parent, a->rec.name)))
            return r;
        r = rec_get(t, txn, a->rec.h.parent, &a->parent, DB_RMW);
        if (r == 0) {
            rec_touch(&a->parent, a->now);
            r = rec_put(t, txn, &a->parent);
        }
    }
    if (r && r != ENOENT)
        return r;
    return rec_del(t, txn, a->ino);
}

static int file_update_fn(struct inode_table *t, DB_TXN *txn, void *arg)
{
    struct file_arg *a = arg;
    int r = rec_get(t, txn, a->ino, &a->rec, DB_RMW);
    if (r)
        return r;
    struct observed o = {.source = OBS_HEAD, .meta = a->m, .e = a->e, .now = a->now};
    rec_apply_observed(&a->rec, &o);
    return rec_put(t, txn, &a->rec);
}

bool file_stale(const struct meta_export *e, const struct inode_rec *r, int64_t now)
{
    return !S_ISDIR(r->h.mode) && !(r->h.flags & IREC_LOCAL) &&
           (r->h.validated_at == 0 || now - r->h.validated_at >= (int64_t)e->metadata_ttl * NS);
}

/* HEAD a file whose attributes have expired; ESTALE if the object is gone. */
int file_revalidate(struct inode_table *t, const struct meta_export *e,
                    struct inode_rec *r)
{
    struct obj_meta m;
    atomic_fetch_add(&t->n_heads, 1);
    int rc = obj_head(e->store, e->bucket, r->key, &m);
    if (rc && rc != ENOENT)
        return rc;
    struct file_arg *a = calloc(1, sizeof(*a));
    if (!a)
        return ENOMEM;
    a->ino = r->ino;
    a->e = e;
    a->now = now_ns();
    m.etag[OBJ_ETAG_MAX - 1] = '\0';
    if (rc == ENOENT) {
        rc = txn_run(t, file_gone_fn, a, false);
        if (rc == 0)
            atomic_fetch_sub(&t->n_inodes, 1);
        if (rc == EEXIST) /* local: kept */
            rc = public_errno(rec_get(t, NULL, r->ino, r, 0));
        else
            rc = (rc == 0 || rc == ENOENT) ? ESTALE : rc;
    } else {
        a->m = &m;
        rc = txn_run(t, file_update_fn, a, false);
        if (rc == 0)
            *r = a->rec;
        else if (rc == ENOENT)
            rc = ESTALE;
    }
    free(a);
    return rc;
}

/* Does directory r need its marker HEADed (never checked, or older than the TTL)? */
bool dir_marker_stale(const struct meta_export *e, const struct inode_rec *r,
                      int64_t now)
{
    if (!S_ISDIR(r->h.mode))
        return false;
    if (r->h.parent == r->ino && !e->prefix[0])
        return false; /* the root of a whole bucket has no marker */
    if (r->h.flags & IREC_LOCAL)
        return false; /* its marker is to be written, not read */
    return r->h.validated_at == 0 || now - r->h.validated_at >= (int64_t)e->metadata_ttl * NS;
}

struct dirattr_arg {
    uint64_t ino;
    const struct meta_export *e;
    const struct obj_meta *m; /* NULL: no marker object */
    int64_t now;
    struct inode_rec rec;     /* out */
};

/* Apply the marker's HEAD (or its absence) to a directory (see inode_observe.c). */
static int dirattr_fn(struct inode_table *t, DB_TXN *txn, void *arg)
{
    struct dirattr_arg *a = arg;
    int r = rec_get(t, txn, a->ino, &a->rec, DB_RMW);
    if (r)
        return r;
    if (!S_ISDIR(a->rec.h.mode))
        return 0; /* retyped meanwhile: its own listing entry rules */
    struct observed o = {.source = OBS_MARKER, .meta = a->m, .e = a->e, .now = a->now};
    rec_apply_observed(&a->rec, &o);
    return rec_put(t, txn, &a->rec);
}

/*
 * HEAD the marker of directory r (its key: prefix + path + "/", the root's
 * is the prefix) and bring r's attributes in line.  No marker (a pure
 * common prefix) means the export defaults.  A failed HEAD changes nothing
 * and is returned; the caller decides whether that fails its request.
 */
int dir_revalidate(struct inode_table *t, const struct meta_export *e,
                   struct inode_rec *r)
{
    struct obj_meta m;
    atomic_fetch_add(&t->n_heads, 1);
    int rc = obj_head(e->store, e->bucket, r->key, &m);
    if (rc && rc != ENOENT)
        return rc;
    struct dirattr_arg *a = calloc(1, sizeof(*a));
    if (!a)
        return ENOMEM;
    a->ino = r->ino;
    a->e = e;
    a->m = rc == 0 ? &m : NULL;
    a->now = now_ns();
    rc = txn_run(t, dirattr_fn, a, false);
    if (rc == 0)
        *r = a->rec;
    rc = rc == ENOENT ? ESTALE : public_errno(rc);
    free(a);
    return rc;
}

/*
 * Directory attributes handed out with a lookup or a listing: checked
 * against the marker once per TTL like GETATTR, but a failed HEAD keeps
 * what we have (logged) rather than failing the whole reply.
 */
void dir_refresh_quiet(struct inode_table *t, const struct meta_export *e,
                       struct inode_rec *r)
{
    if (!dir_marker_stale(e, r, now_ns()))
        return;
    int rc = dir_revalidate(t, e, r);
    if (rc && rc != ESTALE)
        LOG_AT(LOG_WARNING, "inode: HEAD of directory marker %s:%s failed: %s; keeping its "
                            "attributes", e->bucket, r->key, strerror(rc));
}

