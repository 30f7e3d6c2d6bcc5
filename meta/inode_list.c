/*
 * inode_list.c - listing a directory from the object store and bringing
 * the table's entries for it up to date; one listing per directory.
 *
 * Listing a directory (list_dir).  obj_list pages (delimiter "/") are
 * buffered, at most PAGE_MAX entries, and each buffer is applied in one
 * transaction.  Mark and sweep: the directory's epoch is bumped when a
 * listing starts; every entry seen is stamped with it in its dirent value;
 * after the last page, dirents carrying an older epoch are swept.  A swept
 * (or retyped) subdirectory is detached and recorded as an orphan in the
 * same transaction (removed afterwards, see inode_db.c).
 * Name clashes ("a" and "a/..."): the directory wins.  Each page is applied
 * directories first; an object whose name is an existing directory is kept
 * as a pending record until all pages are in, and replaces the directory
 * only if no prefix of that name was listed (the directory became a file).
 *
 * States of a directory inode: never listed (listed_at 0, nlink 2), listed
 * (listed_at = time the listing started), expired (listed_at older than the
 * export's metadata_ttl, or 1 after inode_invalidate).
 *
 * Threads and locks.  flight_mu guards the list of listings in progress
 * (t->flights): one listing per directory; others wait on its
 * listing_done.  flight_mu is never held across a store call or a
 * transaction.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "meta/inode_internal.h"

/* ---- listing -------------------------------------------------------------------- */

struct pent {
    char *key;
    bool is_prefix;
    struct obj_meta meta;
};

struct list_ctx {
    struct inode_table *t;
    const struct meta_export *e;
    uint64_t dir;
    uint64_t epoch;
    int64_t now;
    char dkey[OBJ_KEY_MAX + 1];
    size_t dkey_len;
    struct pent *ents;
    size_t n;
    /* totals over committed pages */
    uint32_t nsub;
    bool first;   /* the directory had never been listed: its entries are not a change */
    bool changed;
    int64_t created;
    /* the page being applied (reset on every attempt) */
    uint32_t p_nsub;
    bool p_changed;
    int64_t p_created, p_deleted;
    uint64_t p_orphans;
    struct inode_rec rec, rec2; /* scratch, kept off the stack */
};

/* The mode an entry should have, from its listing entry. */
static uint32_t entry_mode(const struct meta_export *e, const struct pent *p, bool isdir)
{
    const struct obj_meta *m = &p->meta;
    if (isdir)
        return S_IFDIR | ((!p->is_prefix && m->has_posix) ? m->mode & 07777 : e->dir_mode & 07777);
    if (m->has_posix && S_ISLNK(m->mode))
        return S_IFLNK | (m->mode & 07777);
    return S_IFREG | (m->has_posix ? m->mode & 07777 : e->file_mode & 07777);
}

static int child_create(struct list_ctx *x, DB_TXN *txn, const char *name, const struct pent *p,
                        bool isdir)
{
    struct inode_table *t = x->t;
    struct inode_rec *n = &x->rec2;
    const struct obj_meta *m = &p->meta;
    int r;

    memset(n, 0, sizeof(*n));
    if ((r = ino_alloc(t, &n->ino, &n->h.gen)))
        return r;
    n->h.parent = x->dir;
    n->h.export_id = x->e->id;
    n->h.mode = entry_mode(x->e, p, isdir);
    bool posix = m->has_posix && !p->is_prefix;
    n->h.uid = posix ? m->uid : x->e->uid;
    n->h.gid = posix ? m->gid : x->e->gid;
    if (isdir) {
        n->h.nlink = 2;
        n->h.size = DIR_SIZE;
        n->h.change = 1;
        if (p->is_prefix) {
            n->h.mtime_sec = x->now / NS;
            n->h.mtime_nsec = (uint32_t)(x->now % NS);
        } else {
            n->h.mtime_sec = m->mtime_sec;
            n->h.mtime_nsec = m->mtime_nsec;
        }
    } else {
        n->h.nlink = 1;
        n->h.size = m->size;
        n->h.mtime_sec = m->mtime_sec;
        n->h.mtime_nsec = m->mtime_nsec;
        snprintf(n->h.etag, sizeof(n->h.etag), "%s", m->etag);
    }
    n->h.ctime_sec = n->h.mtime_sec;
    n->h.ctime_nsec = n->h.mtime_nsec;
    n->h.change = 1;
    /*
     * Attributes a listing carries no POSIX metadata for are unconfirmed: a
     * file's first GETATTR asks HEAD (S3's LIST never carries them), a
     * directory's asks HEAD of its marker.
     */
    n->h.validated_at = (posix || (!isdir && x->e->store->list_is_head)) ? x->now : 0;
    size_t nlen = strlen(name);
    if (x->dkey_len + nlen + isdir > OBJ_KEY_MAX)
        return ENAMETOOLONG; /* entry_name() rules this out */
    memcpy(n->name, name, nlen + 1);
    memcpy(n->key, x->dkey, x->dkey_len);
    memcpy(n->key + x->dkey_len, name, nlen);
    if (isdir)
        n->key[x->dkey_len + nlen++] = '/';
    n->key[x->dkey_len + nlen] = '\0';
    if ((r = rec_put(t, txn, n)))
        return r;
    struct dval dv = {.ino = n->ino, .epoch = x->epoch};
    if ((r = dirent_put(t, txn, x->dir, name, &dv)))
        return r;
    x->p_created++;
    x->p_changed = true;
    if (isdir)
        x->p_nsub++;
    return 0;
}

/* Detach child c (already read into x->rec) from the directory, in txn. */
static int child_drop(struct list_ctx *x, DB_TXN *txn, const struct inode_rec *c)
{
    int r;
    if (S_ISDIR(c->h.mode)) {
        /* Its subtree may be large: remove it after the listing, in bounded steps. */
        uint8_t ok[9];
        orphan_key(ok, c->ino);
        if ((r = misc_put(x->t, txn, ok, sizeof(ok), "", 0)))
            return r;
        x->p_orphans++;
        /* It no longer has a parent entry; rm_fn finds it through the orphan record. */
    } else {
        if ((r = rec_del(x->t, txn, c->ino)))
            return r;
        x->p_deleted++;
    }
    x->p_changed = true;
    return dirent_del(x->t, txn, x->dir, c->name);
}

/* Update an existing same-type child from its listing entry (see inode_observe.c). */
static void child_update(struct list_ctx *x, struct inode_rec *c, const struct pent *p)
{
    struct observed o = {
        .source = OBS_LIST, .meta = p->is_prefix ? NULL : &p->meta, .e = x->e, .now = x->now,
    };
    if (rec_apply_observed(c, &o))
        x->p_changed = true;
}

/* Name of a listing entry relative to the directory; false (and why) if unusable. */
static bool entry_name(const struct list_ctx *x, const struct pent *p, char *name,
                       bool *isdir, bool *quiet)
{
    size_t klen = strlen(p->key);
    *quiet = false;
    if (klen < x->dkey_len || memcmp(p->key, x->dkey, x->dkey_len) != 0)
        return false;
    const char *rest = p->key + x->dkey_len;
    size_t len = klen - x->dkey_len;
    if (len == 0 && !p->is_prefix) {
        *quiet = true; /* the directory's own marker object */
        return false;
    }
    if (len == 0)
        return false; /* a common prefix equal to the directory's own key */
    *isdir = p->is_prefix || rest[len - 1] == '/';
    if (rest[len - 1] == '/')
        len--;
    if (len == 0 || len > INODE_NAME_MAX || memchr(rest, '/', len) ||
        (len == 1 && rest[0] == '.') || (len == 2 && rest[0] == '.' && rest[1] == '.'))
        return false;
    if (x->dkey_len + len + 1 > OBJ_KEY_MAX)
        return false;
    memcpy(name, rest, len);
    name[len] = '\0';
    return true;
}

/* misc "P" + dir BE + name -> struct pending: an object whose name is a directory's. */
struct pending {
    uint64_t epoch; /* the listing that saw it; older ones are ignored */
    struct obj_meta meta;
};

static size_t pending_key(uint8_t *kb, uint64_t dir, const char *name, size_t len)
{
    kb[0] = 'P';
    put_be64(kb + 1, dir);
    memcpy(kb + 9, name, len);
    return 9 + len;
}

static int pending_put(struct list_ctx *x, DB_TXN *txn, const char *name,
                       const struct obj_meta *m)
{
    uint8_t kb[9 + INODE_NAME_MAX];
    struct pending pv;
    memset(&pv, 0, sizeof(pv));
    pv.epoch = x->epoch;
    pv.meta = *m;
    size_t ks = pending_key(kb, x->dir, name, strlen(name));
    return misc_put(x->t, txn, kb, ks, &pv, sizeof(pv));
}

/*
 * Settle up to SWEEP_BATCH pending objects of this listing (deleting their
 * records): if the directory of the same name was seen after all it wins,
 * otherwise the directory became a file.  Sets x->n to 1 when none are left.
 */
static int pending_fn(struct inode_table *t, DB_TXN *txn, void *arg)
{
    struct list_ctx *x = arg;
    uint8_t kb[9 + INODE_NAME_MAX + 1];
    char name[INODE_NAME_MAX + 1];
    struct pending pv;
    DBC *c;
    DBT k = {0}, v = {0};
    int r, n;

    x->p_changed = false;
    x->p_created = x->p_deleted = 0;
    x->p_orphans = 0;
    r = t->misc->cursor(t->misc, txn, &c, 0);
    if (r)
        return db_errno(r);
    k.data = kb;
    k.size = (uint32_t)pending_key(kb, x->dir, "", 0);
    k.ulen = sizeof(kb);
    k.flags = DB_DBT_USERMEM;
    v.data = &pv;
    v.ulen = sizeof(pv);
    v.flags = DB_DBT_USERMEM;
    bool end = false;
    for (n = 0; n < SWEEP_BATCH; n++) {
        /* Each record is deleted once settled, so the first one is always next. */
        k.size = (uint32_t)pending_key(kb, x->dir, "", 0);
        r = db_errno(c->get(c, &k, &v, DB_SET_RANGE | DB_RMW));
        if (r == ENOENT || (r == 0 && (k.size < 9 || kb[0] != 'P' || get_be64(kb + 1) != x->dir))) {
            end = true;
            r = 0;
            break;
        }
        if (r)
            break;
        if (k.size - 9 > INODE_NAME_MAX || v.size != sizeof(pv)) {
            r = EIO;
            break;
        }
        memcpy(name, kb + 9, k.size - 9);
        name[k.size - 9] = '\0';
        if ((r = db_errno(c->del(c, 0))))
            break;
        if (pv.epoch != x->epoch)
            continue; /* left by a listing that failed half way */
        struct dval dv;
        struct pent p = {.key = NULL, .is_prefix = false, .meta = pv.meta};
        r = dirent_get(t, txn, x->dir, name, &dv, DB_RMW);
        if (r == 0 && dv.epoch == x->epoch) {
            LOG_AT(LOG_WARNING, "inode: %s%s is both an object and a prefix; "
                                "showing the directory", x->dkey, name);
            continue;
        }
        if (r == 0) {
            r = rec_get(t, txn, dv.ino, &x->rec2, DB_RMW);
            if (r == 0) {
                struct inode_rec *old = &x->rec2;
                r = child_drop(x, txn, old);
            }
            if (r && r != ENOENT)
                break;
        } else if (r != ENOENT) {
            break;
        }
        if ((r = child_create(x, txn, name, &p, false)))
            break;
    }
    c->close(c);
    if (r)
        return r;
    x->n = end;
    return 0;
}

static int page_fn(struct inode_table *t, DB_TXN *txn, void *arg)
{
    struct list_ctx *x = arg;
    char name[INODE_NAME_MAX + 1];
    struct inode_rec *c = &x->rec;
    int r;

    x->p_nsub = 0;
    x->p_changed = false;
    x->p_created = x->p_deleted = 0;
    x->p_orphans = 0;

    /* The directory must still exist (a concurrent sweep of its parent may drop it). */
    if ((r = rec_get(t, txn, x->dir, &x->rec2, 0)))
        return r == ENOENT ? ESTALE : r;

    /*
     * Directories first: when "a" and "a/" are both listed in this page the
     * directory is stamped before the object is seen, so the object is the
     * one skipped, without replacing the directory on every listing.
     */
    for (size_t i = 0; i < 2 * x->n; i++) {
        const struct pent *p = &x->ents[i % x->n];
        bool isdir = false, quiet = false;
        bool dir_pass = i < x->n;
        if (!entry_name(x, p, name, &isdir, &quiet)) {
            if (!quiet && dir_pass)
                LOG_AT(LOG_WARNING, "inode: skipping object %s: not a usable file name", p->key);
            continue;
        }
        if (isdir != dir_pass)
            continue;
        struct dval dv;
        r = dirent_get(t, txn, x->dir, name, &dv, DB_RMW);
        if (r == ENOENT) {
            if ((r = child_create(x, txn, name, p, isdir)))
                return r;
            continue;
        }
        if (r)
            return r;
        r = rec_get(t, txn, dv.ino, c, DB_RMW);
        if (r == ENOENT) { /* dangling entry: replace it */
            if ((r = child_create(x, txn, name, p, isdir)))
                return r;
            continue;
        }
        if (r)
            return r;
        bool was_dir = S_ISDIR(c->h.mode);
        if (dv.epoch == x->epoch) {
            /* Seen already in this listing: a marker and a prefix, or a name clash. */
            if (isdir && was_dir) {
                child_update(x, c, p);
                if ((r = rec_put(t, txn, c)))
                    return r;
            } else if (isdir || was_dir) {
                LOG_AT(LOG_WARNING, "inode: %s%s is both an object and a prefix; "
                                    "showing the directory", x->dkey, name);
                if (isdir) {
                    if ((r = child_drop(x, txn, c)) || (r = child_create(x, txn, name, p, true)))
                        return r;
                }
            }
            continue;
        }
        if ((c->h.mode & S_IFMT) != (entry_mode(x->e, p, isdir) & S_IFMT) &&
            (isdir || was_dir || p->meta.has_posix)) {
            /*
             * A directory listed as an object only: either it became a file,
             * or the prefix of the same name is on a later page (then the
             * directory wins).  Decided after the last page (pending_fn).
             */
            if (was_dir && !isdir) {
                if ((r = pending_put(x, txn, name, &p->meta)))
                    return r;
                continue;
            }
            /* Type changed: a new inode, so old handles go stale. */
            if ((r = child_drop(x, txn, c)) || (r = child_create(x, txn, name, p, isdir)))
                return r;
            continue;
        }
        child_update(x, c, p);
        if ((r = rec_put(t, txn, c)))
            return r;
        dv.epoch = x->epoch;
        if ((r = dirent_put(t, txn, x->dir, name, &dv)))
            return r;
        if (isdir)
            x->p_nsub++;
    }
    return 0;
}

static void page_free(struct list_ctx *x)
{
    for (size_t i = 0; i < x->n; i++)
        free(x->ents[i].key);
    x->n = 0;
}

static int page_apply(struct list_ctx *x)
{
    int r = x->n ? txn_run(x->t, page_fn, x, false) : 0;
    if (r == 0 && x->n) {
        x->nsub += x->p_nsub;
        x->changed |= x->p_changed;
        atomic_fetch_add(&x->t->n_inodes, x->p_created - x->p_deleted);
        atomic_fetch_add(&x->t->n_list_entries, x->n);
    }
    page_free(x);
    return r;
}

static int list_cb(void *arg, const struct obj_entry *e)
{
    struct list_ctx *x = arg;
    int r;
    if (!e->key || strlen(e->key) > OBJ_KEY_MAX) {
        LOG_AT(LOG_WARNING, "inode: skipping a listing entry with an over-long key");
        return 0;
    }
    if (x->n == PAGE_MAX && (r = page_apply(x)))
        return r;
    struct pent *p = &x->ents[x->n];
    p->key = strdup(e->key);
    if (!p->key)
        return ENOMEM;
    p->is_prefix = e->is_prefix;
    p->meta = e->meta;
    p->meta.etag[OBJ_ETAG_MAX - 1] = '\0';
    x->n++;
    return 0;
}

static int list_begin_fn(struct inode_table *t, DB_TXN *txn, void *arg)
{
    struct list_ctx *x = arg;
    int r = rec_get(t, txn, x->dir, &x->rec, DB_RMW);
    if (r)
        return r == ENOENT ? ESTALE : r;
    if (!S_ISDIR(x->rec.h.mode))
        return ENOTDIR;
    x->first = x->rec.h.listed_at == 0;
    x->rec.h.epoch++;
    if ((r = rec_put(t, txn, &x->rec)))
        return r;
    x->epoch = x->rec.h.epoch;
    x->dkey_len = strlen(x->rec.key);
    memcpy(x->dkey, x->rec.key, x->dkey_len + 1);
    return 0;
}

/* Sweep entries not seen in this listing; after names > x->rec.name.  Sets x->n to 1 when done. */
static int sweep_fn(struct inode_table *t, DB_TXN *txn, void *arg)
{
    struct list_ctx *x = arg;
    uint8_t kb[DKEY_MAX];
    char last[INODE_NAME_MAX + 1];
    struct dval dv;
    DBC *c;
    DBT k = {0}, v = {0};
    int r, visited = 0;

    x->p_changed = false;
    x->p_deleted = 0;
    x->p_orphans = 0;
    memcpy(last, x->rec.name, sizeof(last));
    r = t->dirents->cursor(t->dirents, txn, &c, 0);
    if (r)
        return db_errno(r);
    /* name + NUL is the smallest key after name (names hold no NUL). */
    size_t ks = dkey_make(kb, x->dir, last, strlen(last));
    if (last[0])
        kb[ks++] = 0;
    k.data = kb;
    k.size = (uint32_t)ks;
    k.ulen = sizeof(kb);
    k.flags = DB_DBT_USERMEM;
    v.data = &dv;
    v.ulen = sizeof(dv);
    v.flags = DB_DBT_USERMEM;
    uint32_t op = DB_SET_RANGE;
    bool end = false;
    for (; visited < SWEEP_BATCH; visited++, op = DB_NEXT) {
        r = db_errno(c->get(c, &k, &v, op | DB_RMW));
        if (r == ENOENT || (r == 0 && (k.size < 8 || get_be64(kb) != x->dir))) {
            end = true;
            r = 0;
            break;
        }
        if (r)
            break;
        memcpy(last, kb + 8, k.size - 8);
        last[k.size - 8] = '\0';
        if (dv.epoch == x->epoch)
            continue;
        struct inode_rec *cr = &x->rec2;
        r = rec_get(t, txn, dv.ino, cr, DB_RMW);
        if (r == 0 && S_ISDIR(cr->h.mode)) {
            uint8_t ok[9];
            orphan_key(ok, dv.ino);
            r = misc_put(t, txn, ok, sizeof(ok), "", 0);
            x->p_orphans++;
        } else if (r == 0) {
            r = rec_del(t, txn, dv.ino);
            x->p_deleted++;
        } else if (r == ENOENT) {
            r = 0;
        }
        if (r == 0)
            r = db_errno(c->del(c, 0));
        if (r)
            break;
        x->p_changed = true;
    }
    c->close(c);
    if (r)
        return r;
    memcpy(x->rec.name, last, sizeof(x->rec.name));
    x->n = end;
    return 0;
}

static int list_end_fn(struct inode_table *t, DB_TXN *txn, void *arg)
{
    struct list_ctx *x = arg;
    struct inode_rec *d = &x->rec2;
    int r = rec_get(t, txn, x->dir, d, DB_RMW);
    if (r)
        return r == ENOENT ? ESTALE : r;
    d->h.listed_at = x->now;
    if (d->h.nlink != 2 + x->nsub) {
        d->h.nlink = 2 + x->nsub;
        x->changed = true;
    }
    /*
     * The first listing only learns what was there: the directory keeps the
     * marker's (or its creation) mtime.  Later ones that find a change move it.
     */
    if (x->changed && !x->first)
        rec_touch(d, now_ns());
    else if (x->changed)
        d->h.change++;
    return rec_put(t, txn, d);
}

/* List directory dir from the store and bring its entries up to date. */
static int list_dir(struct inode_table *t, const struct meta_export *e, uint64_t dir)
{
    struct list_ctx *x = calloc(1, sizeof(*x));
    char *token = NULL, *next = NULL;
    int r;

    if (!x)
        return ENOMEM;
    x->t = t;
    x->e = e;
    x->dir = dir;
    x->now = now_ns();
    x->ents = calloc(PAGE_MAX, sizeof(*x->ents));
    token = calloc(1, OBJ_TOKEN_MAX);
    next = calloc(1, OBJ_TOKEN_MAX);
    if (!x->ents || !token || !next) {
        r = ENOMEM;
        goto out;
    }
    if ((r = txn_run(t, list_begin_fn, x, false)))
        goto out;
    atomic_fetch_add(&t->n_lists, 1);

    /* Pages until the token comes back empty; a repeated token would loop forever. */
    for (unsigned page = 0;; page++) {
        next[0] = '\0';
        r = obj_list(e->store, e->bucket, x->dkey, "/", token, PAGE_MAX, list_cb, x, next);
        if (r == 0)
            r = page_apply(x);
        if (r) {
            LOG_AT(LOG_WARNING, "inode: listing %s:%s failed: %s", e->bucket, x->dkey,
                   strerror(r));
            goto out;
        }
        if (!next[0])
            break;
        if (strcmp(next, token) == 0 || page >= UINT32_MAX - 1) {
            LOG_AT(LOG_ERR, "inode: listing %s:%s: the store repeated its continuation token",
                   e->bucket, x->dkey);
            r = EIO;
            goto out;
        }
        memcpy(token, next, OBJ_TOKEN_MAX);
        token[OBJ_TOKEN_MAX - 1] = '\0';
    }

    /* Objects named like a directory of the last listing. */
    uint64_t orphans = 0;
    x->n = 0;
    while (x->n == 0) {
        if ((r = txn_run(t, pending_fn, x, false)))
            goto out;
        x->changed |= x->p_changed;
        atomic_fetch_add(&t->n_inodes, x->p_created - x->p_deleted);
        orphans += x->p_orphans;
    }

    /* Sweep what this listing did not see, in bounded transactions. */
    x->rec.name[0] = '\0';
    x->n = 0;
    while (x->n == 0) {
        if ((r = txn_run(t, sweep_fn, x, false)))
            goto out;
        x->changed |= x->p_changed;
        atomic_fetch_sub(&t->n_inodes, x->p_deleted);
        orphans += x->p_orphans;
    }
    x->n = 0;
    if ((r = txn_run(t, list_end_fn, x, false)))
        goto out;
    /*
     * Subtrees detached by the pages (retyped entries) or the sweep.  Their
     * removal failing leaves them recorded for the next listing or start;
     * the listing itself succeeded.
     */
    int rr = remove_orphans(t);
    if (rr)
        LOG_AT(LOG_WARNING, "inode: removing %llu detached subtrees failed: %s",
               (unsigned long long)orphans, strerror(rr));
    /* Cheap unless enough log has accumulated: keeps recovery short and logs pruned. */
    t->env->txn_checkpoint(t->env, 8192, 0, 0);
out:
    if (x->ents)
        page_free(x);
    free(x->ents);
    free(x);
    free(token);
    free(next);
    return r;
}

bool dir_fresh(const struct meta_export *e, const struct inode_rec *r, int64_t now)
{
    return r->h.listed_at != 0 && now - r->h.listed_at < (int64_t)e->metadata_ttl * NS;
}

/*
 * Make sure directory r (read by the caller) is listed as `w` asks; on
 * return r holds the directory's current record.  One listing per
 * directory at a time: latecomers wait for it and share its result.
 */
bool list_needed(const struct meta_export *e, const struct inode_rec *r,
                 enum list_want w)
{
    int64_t now = now_ns();
    return w == LIST_IF_NEEDED ? !dir_fresh(e, r, now)
                               : r->h.listed_at != 0 && !dir_fresh(e, r, now);
}

int ensure_listed(struct inode_table *t, const struct meta_export *e,
                  struct inode_rec *r, enum list_want w)
{
    bool need = list_needed(e, r, w);
    uint64_t dir = r->ino;
    struct listing *f;
    int rc;

    if (!need)
        return 0;
    pthread_mutex_lock(&t->flight_mu);
    for (f = t->flights; f; f = f->next)
        if (f->dir == dir)
            break;
    if (f) {
        f->refs++;
        while (!f->done)
            pthread_cond_wait(&f->listing_done, &t->flight_mu);
        rc = f->err;
        if (--f->refs == 0) {
            pthread_cond_destroy(&f->listing_done);
            free(f);
        }
        pthread_mutex_unlock(&t->flight_mu);
        if (rc == 0)
            rc = rec_get(t, NULL, dir, r, 0);
        return rc == ENOENT ? ESTALE : public_errno(rc);
    }
    f = calloc(1, sizeof(*f));
    if (!f) {
        pthread_mutex_unlock(&t->flight_mu);
        return ENOMEM;
    }
    f->dir = dir;
    f->refs = 1;
    pthread_cond_init(&f->listing_done, NULL);
    f->next = t->flights;
    t->flights = f;
    pthread_mutex_unlock(&t->flight_mu);

    /* A listing may have finished between the caller's read and ours. */
    rc = rec_get(t, NULL, dir, r, 0);
    if (rc == 0 && !dir_fresh(e, r, now_ns())) {
        rc = list_dir(t, e, dir);
        if (rc == 0)
            rc = rec_get(t, NULL, dir, r, 0);
    }
    rc = rc == ENOENT ? ESTALE : public_errno(rc);

    pthread_mutex_lock(&t->flight_mu);
    for (struct listing **pp = &t->flights; *pp; pp = &(*pp)->next) {
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    }
    f->done = true;
    f->err = rc;
    pthread_cond_broadcast(&f->listing_done);
    if (--f->refs == 0) {
        pthread_cond_destroy(&f->listing_done);
        free(f);
    }
    pthread_mutex_unlock(&t->flight_mu);
    return rc;
}
