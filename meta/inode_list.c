/*
 * inode_list.c - listing a directory from the object store and bringing
 * the table's entries for it up to date; one listing per directory.
 *
 * Listing a directory (list_dir).  obj_list pages (delimiter "/") are
 * buffered, at most PAGE_MAX entries, and each buffer is applied in
 * transactions of LIST_TXN_ENTRIES entries (short, so that readers of the
 * directory wait little for their page locks).  Mark and sweep: the directory's epoch is bumped when a
 * listing starts; every entry seen is stamped with it in its dirent value;
 * after the last page, dirents carrying an older epoch are swept.  A swept
 * (or retyped) subdirectory is detached and recorded as an orphan in the
 * same transaction (removed afterwards, see inode_db.c).
 * Name clashes ("a" and "a/..."): the directory wins.  Each page is applied
 * directories first; an object whose name is an existing directory is kept
 * as a pending record until all pages are in, and replaces the directory
 * only if no prefix of that name was listed (the directory became a file).
 *
 * States of a directory inode:
 *   never listed   listed_at 0 (nlink 2): LOOKUP and READDIR wait for a
 *                  listing; GETATTR does not list it
 *   fresh          listed_at (the end of the last complete listing) within
 *                  the export's metadata_ttl (immutable: for ever; strict:
 *                  never, see below): the table answers
 *   stale          listed_at older than the TTL: the table answers and a
 *                  background listing is queued (stale-while-revalidate);
 *                  but a LOOKUP of a name it lacks waits for that listing,
 *                  and a listing from before this process started
 *                  (listed_at < opened_at) is not served stale
 *   relist asked   IREC_RELIST / IREC_RELIST_TAKEN (inode_invalidate,
 *                  inode_refresh, a failed background listing, or such a
 *                  listing that failed): every caller waits for a listing,
 *                  as for one never listed
 * Strict exports: a listing is stale as soon as it ends, but nothing is
 * listed in the background: a LOOKUP of a name the table lacks and a
 * READDIR from cookie 0 wait for a listing (joining one in progress), other
 * callers are answered from the table.
 * Measuring the TTL from the end of a listing means a listing slower than
 * the TTL is not expired the moment it ends, so a client asking in a loop
 * (noac) does not keep one running forever.
 *
 * Threads and locks.  flight_mu guards the listings queued or in progress
 * (t->flights, one per directory: single flight) and the background queue
 * (t->queue).  A caller that must wait joins the directory's listing in
 * progress (whenever it began), takes over a queued background one, or
 * runs one itself; others wait on its listing_done.  BG_THREADS pool
 * threads (list_pool_main, started by inode_open, joined by inode_quiesce /
 * inode_close) take background listings off the queue, waiting on
 * work_ready; each holds a copy of its export (a reload may free the
 * caller's).  At most BG_PER_EXPORT background listings of one export are
 * queued or running; beyond that a directory stays stale until the next
 * caller.  flight_mu is never held across a store call or a transaction.
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
    int64_t begun; /* ns: before the store was read (see gone_since) */
    int64_t now;
    char dkey[OBJ_KEY_MAX + 1];
    size_t dkey_len;
    struct pent *ents;
    size_t n;
    /* totals over committed pages */
    uint32_t nsub;
    bool background; /* run by the pool: stops when the table is quiesced */
    bool first;      /* the directory had never been listed: its entries are not a change */
    bool changed;
    int64_t created;
    /* the page being applied: its entries [p_pos, p_end) of the 2n passes in this transaction */
    size_t p_pos, p_end;
    /* what the transaction did (reset on every attempt) */
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
     * directory's asks HEAD of its marker -- unless the export says objects
     * it did not write carry none (posix_metadata "own"): then the listing
     * and the export's defaults are all there is to know.
     */
    n->h.validated_at =
        (posix || (!isdir && x->e->store->list_is_head) || x->e->posix_own) ? x->now : 0;
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
            if (r == 0 && (x->rec2.h.flags & IREC_LOCAL))
                continue; /* a local directory stays one until its upload */
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
     * one skipped, without replacing the directory on every listing.  At
     * most LIST_TXN_ENTRIES entries per transaction (see page_apply).
     */
    size_t i = x->p_pos;
    for (unsigned done = 0; i < 2 * x->n && done < LIST_TXN_ENTRIES; i++) {
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
        done++;
        struct dval dv;
        r = dirent_get(t, txn, x->dir, name, &dv, DB_RMW);
        if (r == ENOENT) {
            if (gone_since(t, x->dir, name, x->begun))
                continue; /* removed here after the store was read: not brought back */
            if (silly_hidden(t, txn, p->key))
                continue; /* removed while open (a silly rename), or moving: not shown */
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
        if (c->h.flags & IREC_LOCAL) {
            /* Changed here, not yet uploaded: the table's entry stays as it is. */
            if (dv.epoch != x->epoch) {
                dv.epoch = x->epoch;
                if ((r = dirent_put(t, txn, x->dir, name, &dv)))
                    return r;
                if (was_dir)
                    x->p_nsub++;
            }
            continue;
        }
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
    x->p_end = i;
    return 0;
}

static void page_free(struct list_ctx *x)
{
    for (size_t i = 0; i < x->n; i++)
        free(x->ents[i].key);
    x->n = 0;
}

/*
 * Apply the buffered page in transactions of at most LIST_TXN_ENTRIES
 * entries: each holds its page locks (the entries' records and dirents,
 * which READDIR and LOOKUP of the same directory read) for a short while,
 * so a re-listing under a load of readers makes them wait for a few
 * milliseconds at most, rather than for one transaction over the whole
 * page.  A listing failing half way leaves what it applied, as one failing
 * between pages does; the next listing's sweep settles the rest.
 */
static int page_apply(struct list_ctx *x)
{
    int r = 0;
    for (x->p_pos = 0; r == 0 && x->p_pos < 2 * x->n; x->p_pos = x->p_end) {
        if ((r = txn_run(x->t, page_fn, x, false)))
            break;
        x->nsub += x->p_nsub;
        x->changed |= x->p_changed;
        atomic_fetch_add(&x->t->n_inodes, x->p_created - x->p_deleted);
    }
    if (r == 0)
        atomic_fetch_add(&x->t->n_list_entries, x->n);
    page_free(x);
    return r;
}

static int list_cb(void *arg, const struct obj_entry *e)
{
    struct list_ctx *x = arg;
    int r;
    if (x->background && atomic_load(&x->t->stopping))
        return ECANCELED; /* inode_quiesce: the stores may be about to go */
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
    x->begun = now_ns();
    x->rec.h.epoch++;
    /* This listing answers the re-listing asked for so far (cleared when it succeeds). */
    if (x->rec.h.flags & IREC_RELIST)
        x->rec.h.flags = (x->rec.h.flags & ~IREC_RELIST) | IREC_RELIST_TAKEN;
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
    x->p_nsub = 0;
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
    /*
     * Read locks while walking (READDIR and LOOKUP of the directory read
     * the same pages meanwhile); the few entries deleted take their write
     * lock then.
     */
    for (; visited < SWEEP_BATCH; visited++, op = DB_NEXT) {
        r = db_errno(c->get(c, &k, &v, op));
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
        /*
         * Not in the bucket yet (or changed here); removed while open (a
         * silly rename: its object is hidden from listings under its old
         * key, and the client removes the .nfs name on the last close); or
         * held by a remove or rename that may have deleted its object
         * already and not yet changed the table (which would then find the
         * name gone): kept, and counted.
         */
        if (r == 0 && ((cr->h.flags & (IREC_LOCAL | IREC_SILLY | IREC_MOVE_ANY | IREC_MOVE_DIR)) ||
                       inode_held(t, dv.ino))) {
            if (S_ISDIR(cr->h.mode))
                x->p_nsub++;
            continue;
        }
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
    /*
     * The TTL runs from the end of the listing: one slower than the TTL is
     * not already expired when it completes (it would be started again and
     * again under a client that keeps asking).  A re-listing asked for while
     * it ran (IREC_RELIST set again) stays asked for.
     */
    d->h.listed_at = now_ns();
    d->h.flags &= ~IREC_RELIST_TAKEN;
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

/*
 * List directory dir from the store and bring its entries up to date.
 * background: run by the pool, cancelled by inode_quiesce (ECANCELED).
 */
static int list_dir(struct inode_table *t, const struct meta_export *e, uint64_t dir,
                    bool background)
{
    struct list_ctx *x = calloc(1, sizeof(*x));
    char *token = NULL, *next = NULL;
    int r;

    if (!x)
        return ENOMEM;
    x->t = t;
    x->e = e;
    x->dir = dir;
    x->background = background;
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
        if (x->background && atomic_load(&t->stopping)) {
            r = ECANCELED;
            goto out;
        }
        r = obj_list(e->store, e->bucket, x->dkey, "/", token, PAGE_MAX, list_cb, x, next);
        if (r == 0)
            r = page_apply(x);
        if (r) {
            if (r != ECANCELED)
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
        x->nsub += x->p_nsub;
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

/* ---- when to list: single flight, stale-while-revalidate -------------------- */

bool list_stale(const struct meta_export *e, const struct inode_rec *r, int64_t now)
{
    return r->h.listed_at != 0 && ttl_expired(e, r->h.listed_at, now);
}

bool list_bg_due(const struct meta_export *e, const struct inode_rec *r, int64_t now)
{
    return e->consistency == INODE_TTL && list_stale(e, r, now);
}

bool list_must_wait(const struct inode_table *t, const struct meta_export *e,
                    const struct inode_rec *r, enum list_want w)
{
    if (r->h.listed_at == 0)
        return w == LIST_IF_NEEDED;
    if (r->h.flags & (IREC_RELIST | IREC_RELIST_TAKEN))
        return true;
    /*
     * Only a listing this process made is served stale: one from before a
     * restart may be any age, and the configuration (credentials, bucket)
     * may have changed since.  Within its TTL it is trusted all the same.
     */
    return r->h.listed_at < t->opened_at && list_stale(e, r, now_ns());
}

struct relist_arg {
    uint64_t dir;
    struct inode_rec rec; /* scratch */
};

static int relist_fn(struct inode_table *t, DB_TXN *txn, void *arg)
{
    struct relist_arg *a = arg;
    int r = rec_get(t, txn, a->dir, &a->rec, DB_RMW);
    if (r)
        return r;
    if (!S_ISDIR(a->rec.h.mode) || (a->rec.h.flags & IREC_RELIST))
        return 0;
    a->rec.h.flags |= IREC_RELIST;
    return rec_put(t, txn, &a->rec);
}

/*
 * A background listing of dir failed: the next caller waits for a listing
 * of its own and sees its error (a store refusing, failing or overloaded
 * shows as it did before), rather than the stale entries for ever.
 */
static void relist_after_failure(struct inode_table *t, uint64_t dir)
{
    struct relist_arg *a = malloc(sizeof(*a));
    if (!a)
        return;
    a->dir = dir;
    int r = txn_run(t, relist_fn, a, false);
    if (r && r != ENOENT)
        LOG_AT(LOG_WARNING, "inode: cannot mark directory %llu for listing: %s",
               (unsigned long long)dir, strerror(r));
    free(a);
}

/* Does a background listing of r still have something to do? */
static bool list_wanted(const struct inode_table *t, const struct meta_export *e,
                        const struct inode_rec *r)
{
    return r->h.listed_at == 0 || list_must_wait(t, e, r, LIST_IF_NEEDED) ||
           list_stale(e, r, now_ns());
}

/* The flight of dir, or NULL.  flight_mu held. */
static struct listing *flight_find(struct inode_table *t, uint64_t dir)
{
    for (struct listing *f = t->flights; f; f = f->next)
        if (f->dir == dir)
            return f;
    return NULL;
}

static void flight_free(struct listing *f)
{
    pthread_cond_destroy(&f->listing_done);
    free((char *)f->e.bucket);
    free((char *)f->e.prefix);
    free(f);
}

/* Drop a reference to f, freeing it with the last.  flight_mu held. */
static void flight_put(struct listing *f)
{
    if (--f->refs == 0)
        flight_free(f);
}

/* The listing f ended with rc: unlink it, wake its waiters, drop the runner's reference. */
static void flight_finish(struct inode_table *t, struct listing *f, int rc)
{
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
    flight_put(f);
    pthread_mutex_unlock(&t->flight_mu);
}

/* Take queued (not started) background listing f off the queue.  flight_mu held. */
static void queue_unlink(struct inode_table *t, struct listing *f)
{
    for (struct listing **pp = &t->queue; *pp; pp = &(*pp)->qnext) {
        if (*pp == f) {
            *pp = f->qnext;
            if (t->queue_tail == &f->qnext)
                t->queue_tail = pp;
            t->queued--;
            return;
        }
    }
}

/*
 * Wait for one listing of r's directory: join the one in progress, take
 * over a queued background one, or run one (if still needed: list_must_wait,
 * or if_stale and the listing expired).  On success r is re-read.
 * Returns 0 or a positive errno (the listing's).
 */
static int list_wait(struct inode_table *t, const struct meta_export *e, struct inode_rec *r,
                     enum list_want w, bool if_stale)
{
    uint64_t dir = r->ino;
    int rc;

    pthread_mutex_lock(&t->flight_mu);
    struct listing *f = flight_find(t, dir);
    if (f && f->started) {
        /* Satisfied by the listing in progress, however long ago it began. */
        f->refs++;
        while (!f->done)
            pthread_cond_wait(&f->listing_done, &t->flight_mu);
        rc = f->err;
        flight_put(f);
        pthread_mutex_unlock(&t->flight_mu);
        if (rc == 0)
            rc = rec_get(t, NULL, dir, r, 0);
        return rc == ENOENT ? ESTALE : public_errno(rc);
    }
    if (f) {
        /* Queued behind other background work: run it here rather than wait for the pool. */
        queue_unlink(t, f);
    } else {
        f = calloc(1, sizeof(*f));
        if (!f) {
            pthread_mutex_unlock(&t->flight_mu);
            return ENOMEM;
        }
        f->dir = dir;
        f->export_id = e->id;
        f->refs = 1;
        pthread_cond_init(&f->listing_done, NULL);
        f->next = t->flights;
        t->flights = f;
    }
    f->started = true;
    pthread_mutex_unlock(&t->flight_mu);

    /* A listing may have finished between the caller's read and ours. */
    rc = rec_get(t, NULL, dir, r, 0);
    if (rc == 0 && (list_must_wait(t, e, r, w) || (if_stale && list_stale(e, r, now_ns())))) {
        rc = list_dir(t, e, dir, false);
        if (rc == 0)
            rc = rec_get(t, NULL, dir, r, 0);
    }
    rc = rc == ENOENT ? ESTALE : public_errno(rc);
    flight_finish(t, f, rc);
    return rc;
}

int ensure_listed(struct inode_table *t, const struct meta_export *e, struct inode_rec *r,
                  enum list_want w)
{
    if (!list_must_wait(t, e, r, w)) {
        /*
         * Stale: answer from the table; without a pool (quiesced), list here
         * as we used to.  (Strict: the callers that need a new listing ask
         * for one with list_now; the others are answered from the table.)
         */
        if (list_bg_due(e, r, now_ns()) && !list_in_background(t, e, r->ino))
            return list_wait(t, e, r, w, true);
        return 0;
    }
    /*
     * A listing joined in progress may have begun before the re-listing
     * this caller waits for was asked: then the directory still asks for
     * one and we go again, a bounded number of times (requests that keep
     * coming are answered from the table rather than starving the caller).
     */
    for (int round = 0; round < 3; round++) {
        int rc = list_wait(t, e, r, w, false);
        if (rc)
            return rc;
        if (!list_must_wait(t, e, r, w))
            break;
    }
    return 0;
}

int list_now(struct inode_table *t, const struct meta_export *e, struct inode_rec *r)
{
    return list_wait(t, e, r, LIST_IF_NEEDED, true);
}

bool list_in_background(struct inode_table *t, const struct meta_export *e, uint64_t dir)
{
    struct listing *f;
    unsigned mine = 0;
    bool pool = true;

    pthread_mutex_lock(&t->flight_mu);
    if (t->nbg == 0 || atomic_load(&t->stopping)) {
        pool = false;
        goto out;
    }
    if (flight_find(t, dir))
        goto out; /* queued or running already */
    for (f = t->flights; f; f = f->next)
        if (f->background && f->export_id == e->id)
            mine++;
    if (mine >= BG_PER_EXPORT || t->queued >= BG_QUEUE_MAX) {
        atomic_fetch_add(&t->n_bg_skipped, 1);
        goto out; /* stays stale; the next caller asks again */
    }
    f = calloc(1, sizeof(*f));
    if (!f)
        goto out;
    /* The caller's export may be gone (a reload) before the pool gets to it. */
    f->e = *e;
    f->e.bucket = strdup(e->bucket);
    f->e.prefix = strdup(e->prefix);
    if (!f->e.bucket || !f->e.prefix) {
        free((char *)f->e.bucket);
        free((char *)f->e.prefix);
        free(f);
        goto out;
    }
    f->dir = dir;
    f->export_id = e->id;
    f->background = true;
    f->refs = 1;
    pthread_cond_init(&f->listing_done, NULL);
    f->next = t->flights;
    t->flights = f;
    *t->queue_tail = f;
    t->queue_tail = &f->qnext;
    t->queued++;
    pthread_cond_signal(&t->work_ready);
out:
    pthread_mutex_unlock(&t->flight_mu);
    return pool;
}

/* One background listing, run by a pool thread: only if still wanted. */
static int list_one_background(struct inode_table *t, struct listing *f)
{
    struct inode_rec *r = malloc(sizeof(*r));
    if (!r)
        return ENOMEM;
    int rc = rec_get(t, NULL, f->dir, r, 0);
    if (rc == 0 && !S_ISDIR(r->h.mode))
        rc = ENOTDIR;
    if (rc == 0 && list_wanted(t, &f->e, r)) {
        atomic_fetch_add(&t->n_bg_lists, 1);
        rc = list_dir(t, &f->e, f->dir, true);
        if (rc && rc != ECANCELED && rc != ESTALE && rc != ENOENT && rc != ENOTDIR)
            relist_after_failure(t, f->dir);
    }
    free(r);
    return rc == ENOENT ? ESTALE : public_errno(rc);
}

static void *list_pool_main(void *arg)
{
    struct inode_table *t = arg;
    pthread_mutex_lock(&t->flight_mu);
    for (;;) {
        while (!t->queue && !atomic_load(&t->stopping))
            pthread_cond_wait(&t->work_ready, &t->flight_mu);
        struct listing *f = t->queue;
        if (!f)
            break; /* stopping, and nothing left to cancel */
        t->queue = f->qnext;
        if (!t->queue)
            t->queue_tail = &t->queue;
        t->queued--;
        f->started = true;
        pthread_mutex_unlock(&t->flight_mu);
        int rc = atomic_load(&t->stopping) ? ECANCELED : list_one_background(t, f);
        flight_finish(t, f, rc);
        pthread_mutex_lock(&t->flight_mu);
    }
    pthread_mutex_unlock(&t->flight_mu);
    return NULL;
}

int list_pool_start(struct inode_table *t)
{
    int rc = 0;
    pthread_mutex_lock(&t->flight_mu);
    t->queue = NULL;
    t->queue_tail = &t->queue;
    for (; t->nbg < BG_THREADS; t->nbg++) {
        if ((rc = pthread_create(&t->bg[t->nbg], NULL, list_pool_main, t)))
            break;
    }
    pthread_mutex_unlock(&t->flight_mu);
    return rc;
}

void list_pool_stop(struct inode_table *t)
{
    pthread_mutex_lock(&t->flight_mu);
    atomic_store(&t->stopping, true);
    pthread_cond_broadcast(&t->work_ready);
    unsigned n = t->nbg;
    pthread_mutex_unlock(&t->flight_mu);
    for (unsigned i = 0; i < n; i++)
        pthread_join(t->bg[i], NULL);
    pthread_mutex_lock(&t->flight_mu);
    t->nbg = 0;
    pthread_mutex_unlock(&t->flight_mu);
}
