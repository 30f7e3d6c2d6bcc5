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
 * When attributes expire depends on the export's consistency (ttl_expired):
 * after metadata_ttl, never (immutable: only a HEAD never made is made), or
 * at every use (strict; a directory's marker only for GETATTR, the
 * attributes LOOKUP and READDIR carry along are checked once per TTL).
 * With posix_metadata "own" a listing is as good as a HEAD: a file is fresh
 * while its directory's listing is (ttl mode), a directory once checked
 * or listed stays so.
 *
 * Single flight.  At most one HEAD of an inode runs at a time (file or
 * marker): a caller that wants one while another runs waits for it on its
 * head_done and takes its result, re-reading the record, so a thousand
 * opens of one file in strict mode make one request.  head_mu guards
 * t->head_flights; it is never held across a store call or a transaction.
 *
 * Threads: the store call runs outside any transaction and any lock.
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

/* ---- single flight ----------------------------------------------------------- */

void head_flights_init(struct inode_table *t)
{
    pthread_mutex_init(&t->head_mu, NULL);
    t->head_flights = NULL;
}

void head_flights_destroy(struct inode_table *t)
{
    pthread_mutex_destroy(&t->head_mu);
}

/* Drop a reference to f, freeing it with the last.  head_mu held. */
static void head_put(struct head_flight *f)
{
    if (--f->refs == 0) {
        pthread_cond_destroy(&f->head_done);
        free(f);
    }
}

/*
 * Join the HEAD of ino in progress, if any: returns true and its result in
 * *rc.  Otherwise returns false with *mine the flight the caller now runs
 * (NULL if none could be made: the caller runs its HEAD unshared) and must
 * end with head_finish.
 */
static bool head_join(struct inode_table *t, uint64_t ino, int *rc, struct head_flight **mine)
{
    pthread_mutex_lock(&t->head_mu);
    for (struct head_flight *f = t->head_flights; f; f = f->next) {
        if (f->ino != ino)
            continue;
        f->refs++;
        while (!f->done)
            pthread_cond_wait(&f->head_done, &t->head_mu);
        *rc = f->err;
        head_put(f);
        pthread_mutex_unlock(&t->head_mu);
        atomic_fetch_add(&t->n_heads_joined, 1);
        return true;
    }
    struct head_flight *f = calloc(1, sizeof(*f));
    if (f) {
        f->ino = ino;
        f->refs = 1;
        pthread_cond_init(&f->head_done, NULL);
        f->next = t->head_flights;
        t->head_flights = f;
    }
    *mine = f;
    pthread_mutex_unlock(&t->head_mu);
    return false;
}

/* The HEAD of flight f ended with rc: unlink it and wake its waiters. */
static void head_finish(struct inode_table *t, struct head_flight *f, int rc)
{
    if (!f)
        return;
    pthread_mutex_lock(&t->head_mu);
    for (struct head_flight **pp = &t->head_flights; *pp; pp = &(*pp)->next) {
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    }
    f->done = true;
    f->err = rc;
    pthread_cond_broadcast(&f->head_done);
    head_put(f);
    pthread_mutex_unlock(&t->head_mu);
}

/*
 * Run head (file_head or dir_head) on r unless a HEAD of the same inode is
 * in progress: then wait for that one and re-read r.
 */
static int head_shared(struct inode_table *t, const struct meta_export *e, struct inode_rec *r,
                       int (*head)(struct inode_table *, const struct meta_export *,
                                   struct inode_rec *))
{
    struct head_flight *f = NULL;
    int rc;
    if (head_join(t, r->ino, &rc, &f))
        return rc ? rc : rec_get_export(t, e, r->ino, r);
    rc = head(t, e, r);
    head_finish(t, f, rc);
    return rc;
}

/* ---- files ----------------------------------------------------------------------- */

/* Is r's directory's listing fresh (posix_metadata "own": the listing confirmed r)? */
static bool parent_listing_fresh(struct inode_table *t, const struct meta_export *e,
                                 const struct inode_rec *r, int64_t now)
{
    struct inode_rec *p = malloc(sizeof(*p));
    if (!p)
        return false;
    bool fresh = rec_get(t, NULL, r->h.parent, p, 0) == 0 && S_ISDIR(p->h.mode) &&
                 p->h.listed_at != 0 && !(p->h.flags & (IREC_RELIST | IREC_RELIST_TAKEN)) &&
                 !ttl_passed(e, p->h.listed_at, now);
    free(p);
    return fresh;
}

bool file_stale(struct inode_table *t, const struct meta_export *e, const struct inode_rec *r,
                int64_t now)
{
    if (S_ISDIR(r->h.mode) || (r->h.flags & IREC_LOCAL))
        return false;
    if (r->h.validated_at == 0)
        return true;
    if (!ttl_expired(e, r->h.validated_at, now))
        return false;
    if (e->posix_own && e->consistency == INODE_TTL)
        return !parent_listing_fresh(t, e, r, now);
    return true;
}

/*
 * HEAD a file whose attributes have expired; ESTALE if the object is gone.
 * What the answer says is stamped with when the HEAD was asked, not when
 * its answer came: the store may have read the object at any moment in
 * between, and the object may have changed right after.  Stamped at the
 * answer, a slow HEAD (a loaded store) would keep a replaced version
 * served for the TTL plus the HEAD's time, past what metadata_ttl promises.
 */
static int file_head(struct inode_table *t, const struct meta_export *e, struct inode_rec *r)
{
    struct obj_meta m;
    atomic_fetch_add(&t->n_heads, 1);
    int64_t asked = now_ns();
    int rc = obj_head(e->store, e->bucket, r->key, &m);
    if (rc && rc != ENOENT)
        return rc;
    struct file_arg *a = calloc(1, sizeof(*a));
    if (!a)
        return ENOMEM;
    a->ino = r->ino;
    a->e = e;
    a->now = asked;
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

int file_revalidate(struct inode_table *t, const struct meta_export *e, struct inode_rec *r)
{
    return head_shared(t, e, r, file_head);
}

/* ---- directories ------------------------------------------------------------------ */

bool dir_marker_stale(const struct meta_export *e, const struct inode_rec *r, int64_t now,
                      bool getattr)
{
    if (!S_ISDIR(r->h.mode))
        return false;
    if (r->h.parent == r->ino && !e->prefix[0])
        return false; /* the root of a whole bucket has no marker */
    if (r->h.flags & IREC_LOCAL)
        return false; /* its marker is to be written, not read */
    if (r->h.validated_at == 0)
        return true;
    switch (e->consistency) {
    case INODE_IMMUTABLE:
        return false;
    case INODE_STRICT:
        if (getattr)
            return true;
        break;
    case INODE_TTL:
        break;
    }
    /* "own": a marker written by another tool says nothing the export's defaults do not. */
    return !e->posix_own && ttl_passed(e, r->h.validated_at, now);
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
static int dir_head(struct inode_table *t, const struct meta_export *e, struct inode_rec *r)
{
    struct obj_meta m;
    atomic_fetch_add(&t->n_heads, 1);
    int64_t asked = now_ns(); /* stamped when asked, as file_head does */
    int rc = obj_head(e->store, e->bucket, r->key, &m);
    if (rc && rc != ENOENT)
        return rc;
    struct dirattr_arg *a = calloc(1, sizeof(*a));
    if (!a)
        return ENOMEM;
    a->ino = r->ino;
    a->e = e;
    a->m = rc == 0 ? &m : NULL;
    a->now = asked;
    rc = txn_run(t, dirattr_fn, a, false);
    if (rc == 0)
        *r = a->rec;
    rc = rc == ENOENT ? ESTALE : public_errno(rc);
    free(a);
    return rc;
}

int dir_revalidate(struct inode_table *t, const struct meta_export *e, struct inode_rec *r)
{
    return head_shared(t, e, r, dir_head);
}

/*
 * Directory attributes handed out with a lookup or a listing: checked
 * against the marker once per TTL like GETATTR, but a failed HEAD keeps
 * what we have (logged) rather than failing the whole reply.
 */
void dir_refresh_quiet(struct inode_table *t, const struct meta_export *e,
                       struct inode_rec *r)
{
    if (!dir_marker_stale(e, r, now_ns(), false))
        return;
    int rc = dir_revalidate(t, e, r);
    if (rc && rc != ESTALE)
        LOG_AT(LOG_WARNING, "inode: HEAD of directory marker %s:%s failed: %s; keeping its "
                            "attributes", e->bucket, r->key, strerror(rc));
}

