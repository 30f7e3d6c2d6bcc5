/*
 * inode.c - the inode table's public API (meta/inode.h): opening and
 * closing the Berkeley DB environment in state_dir, export ids and export
 * roots, and GETATTR / LOOKUP / READDIR / key / invalidate / stats on top
 * of the other three files (see inode_internal.h for who does what and
 * for the schema).
 *
 * What it owns.  struct inode_table itself (the environment, the five
 * databases, the two mutexes, the counters), the "R" root records and
 * exports.db.
 *
 * Durability.  Commits use DB_TXN_WRITE_NOSYNC: the log reaches the OS at
 * each commit, so a killed process loses nothing.  Everything except inode
 * numbers, generations and export ids can be listed again from the store;
 * the transactions that hand those out (inode-number block reservations,
 * export ids, export roots) commit with DB_TXN_SYNC, so they also survive a
 * machine crash, and so do the write path's namespace and attribute changes
 * (inode_write.c).  Log files are zero-filled when created (DB_LOG_ZERO):
 * a sync then overwrites allocated blocks and does not change the file's
 * size, so the file system's fdatasync need not commit its own journal (on
 * ext4 here it took 0.55 ms instead of 1.6 ms for each log sync).
 *
 * Threads and locks.  Berkeley DB does the page locking (DB_THREAD, deadlock
 * detection on every conflict); a transaction that loses a deadlock is
 * retried up to TXN_RETRIES times.  Write-path transactions lock an inode's
 * record before its "W" write-back record (inode_write.c).  A durable
 * commit releases its locks before it syncs the log (txn_run), so commits
 * that touch one record (creates in one folder) share their syncs.
 * Mutexes, never two held together and none held across a store call:
 *   alloc_mu   the reserved inode-number block and the generation pool
 *              (inode_db.c)
 *   flight_mu  the listings queued or in progress and the background
 *              queue (inode_list.c)
 *   head_mu    the HEADs in progress (single flight, inode_reval.c)
 *   ahead_mu   the HEAD pool's queue and per-export loads (inode_ahead.c)
 * No transaction is kept open across a store call or a caller's callback.
 * The _nowait lookups read without a transaction and never call the store
 * or wait on flight_mu's listings (they may queue a background listing
 * under flight_mu); at most they wait for a page lock held by a
 * transaction in progress, which never spans a store call.
 *
 * Threads of its own: BG_THREADS background-listing threads (inode_list.c)
 * and AHEAD_THREADS HEAD threads for READDIRPLUS (inode_ahead.c), started
 * in inode_open and joined in inode_quiesce / inode_close.
 */
#include "meta/inode.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "meta/inode_internal.h"

/* ---- open / close ---------------------------------------------------------- */

static void bdb_errcall(const DB_ENV *env, const char *pfx, const char *msg)
{
    LOG_AT(LOG_ERR, "inode: berkeley db: %s", msg);
}

static int db_open_one(DB_ENV *env, const char *file, DB **out)
{
    DB *db;
    int r = db_create(&db, env, 0);
    if (r)
        return r;
    r = db->open(db, NULL, file, NULL, DB_BTREE, DB_CREATE | DB_AUTO_COMMIT | DB_THREAD, 0600);
    if (r) {
        db->close(db, 0);
        return r;
    }
    *out = db;
    return 0;
}

struct inode_table *inode_open(const char *state_dir, uint64_t cache_bytes)
{
    struct inode_table *t = calloc(1, sizeof(*t));
    int r;
    if (!t) {
        errno = ENOMEM;
        return NULL;
    }
    pthread_mutex_init(&t->alloc_mu, NULL);
    pthread_mutex_init(&t->flight_mu, NULL);
    pthread_cond_init(&t->work_ready, NULL);
    pthread_mutex_init(&t->busy_mu, NULL);
    pthread_cond_init(&t->busy_cv, NULL);
    for (size_t i = 0; i < sizeof(t->move_mu) / sizeof(t->move_mu[0]); i++)
        pthread_mutex_init(&t->move_mu[i], NULL);
    head_flights_init(t);
    pthread_mutex_init(&t->ahead_mu, NULL);
    pthread_cond_init(&t->ahead_ready, NULL);
    t->ahead_tail = &t->ahead_queue;
    t->opened_at = now_ns();

    r = db_env_create(&t->env, 0);
    if (r)
        goto fail;
    t->env->set_errcall(t->env, bdb_errcall);
    if (cache_bytes == 0)
        cache_bytes = INODE_CACHE_DEFAULT;
    /* One cache region; Berkeley DB takes its size as gigabytes + bytes. */
    r = t->env->set_cachesize(t->env, (uint32_t)(cache_bytes >> 30),
                              (uint32_t)(cache_bytes & ((1u << 30) - 1)), 1);
    if (r)
        goto fail_env;
    /* Enough lock room for a listing's or a sweep's transaction on a large directory. */
    if ((r = t->env->set_lk_detect(t->env, DB_LOCK_DEFAULT)) ||
        (r = t->env->set_lk_detect(t->env, DB_LOCK_DEFAULT)) ||
        (r = t->env->set_lk_max_locks(t->env, 100000)) ||
        (r = t->env->set_lk_max_objects(t->env, 100000)) ||
        (r = t->env->set_lk_max_lockers(t->env, 10000)) ||
        (r = t->env->set_flags(t->env, DB_TXN_WRITE_NOSYNC, 1)) ||
        (r = t->env->log_set_config(t->env, DB_LOG_AUTO_REMOVE, 1)) ||
        (r = t->env->log_set_config(t->env, DB_LOG_ZERO, 1)))
        goto fail_env;
    /*
     * DB_PRIVATE: the regions (cache, locks, log buffer) are the daemon's
     * own memory, not files mapped from state_dir.  One process uses the
     * table, and a mapped region file is sparse: a page of it first touched
     * once state_dir's disk is full kills the daemon with SIGBUS, where a
     * failed write of a page only fails a commit (NFS3ERR_NOSPC).
     */
    r = t->env->open(t->env, state_dir,
                     DB_CREATE | DB_INIT_TXN | DB_INIT_LOCK | DB_INIT_LOG | DB_INIT_MPOOL |
                         DB_THREAD | DB_RECOVER | DB_PRIVATE,
                     0600);
    if (r)
        goto fail_env;
    if ((r = db_open_one(t->env, "inodes.db", &t->inodes)) ||
        (r = db_open_one(t->env, "dirents.db", &t->dirents)) ||
        (r = db_open_one(t->env, "exports.db", &t->exports)) ||
        (r = db_open_one(t->env, "misc.db", &t->misc)) ||
        (r = db_open_one(t->env, "counters.db", &t->counters)))
        goto fail_dbs;

    DB_BTREE_STAT *st = NULL;
    if (t->inodes->stat(t->inodes, NULL, &st, 0) == 0 && st) {
        t->n_inodes = st->bt_nkeys;
        free(st);
    }
    /* Subtrees a crash left detached but not yet deleted. */
    r = remove_orphans(t);
    if (r)
        LOG_AT(LOG_WARNING, "inode: removing detached subtrees failed: %s", strerror(r));
    /* Without its threads the table still works: expired listings are then listed by callers. */
    r = list_pool_start(t);
    if (r)
        LOG_AT(LOG_WARNING, "inode: %u of %d background listing threads started: %s", t->nbg,
               BG_THREADS, strerror(r));
    /* Without them READDIRPLUS HEADs its entries one after the other. */
    r = ahead_pool_start(t);
    if (r)
        LOG_AT(LOG_WARNING, "inode: %u of %d HEAD threads started: %s", t->nahead,
               AHEAD_THREADS, strerror(r));
    return t;

fail_dbs:
    if (t->counters)
        t->counters->close(t->counters, 0);
    if (t->misc)
        t->misc->close(t->misc, 0);
    if (t->exports)
        t->exports->close(t->exports, 0);
    if (t->dirents)
        t->dirents->close(t->dirents, 0);
    if (t->inodes)
        t->inodes->close(t->inodes, 0);
fail_env:
    t->env->close(t->env, 0);
fail:
    LOG_AT(LOG_ERR, "inode: cannot open the inode table in %s: %s", state_dir,
           db_strerror(r));
    pthread_mutex_destroy(&t->alloc_mu);
    pthread_mutex_destroy(&t->flight_mu);
    pthread_cond_destroy(&t->work_ready);
    head_flights_destroy(t);
    pthread_mutex_destroy(&t->ahead_mu);
    pthread_cond_destroy(&t->ahead_ready);
    free(t);
    errno = r > 0 ? r : EIO;
    return NULL;
}

void inode_close(struct inode_table *t)
{
    if (!t)
        return;
    list_pool_stop(t);
    ahead_pool_stop(t);
    /* A checkpoint makes the next open's recovery short and lets old logs go. */
    t->env->txn_checkpoint(t->env, 0, 0, 0);
    t->counters->close(t->counters, 0);
    t->misc->close(t->misc, 0);
    t->exports->close(t->exports, 0);
    t->dirents->close(t->dirents, 0);
    t->inodes->close(t->inodes, 0);
    t->env->close(t->env, 0);
    pthread_mutex_destroy(&t->alloc_mu);
    pthread_mutex_destroy(&t->flight_mu);
    pthread_cond_destroy(&t->work_ready);
    head_flights_destroy(t);
    while (t->ahead_loads) {
        struct ahead_load *l = t->ahead_loads;
        t->ahead_loads = l->next;
        free(l);
    }
    pthread_mutex_destroy(&t->ahead_mu);
    pthread_cond_destroy(&t->ahead_ready);
    free(t);
}

void inode_quiesce(struct inode_table *t)
{
    if (t) {
        list_pool_stop(t);
        ahead_pool_stop(t);
    }
}

/* ---- exports and roots ---------------------------------------------------- */

struct export_arg {
    const char *path;
    uint32_t id; /* out */
};

static int export_id_fn(struct inode_table *t, DB_TXN *txn, void *arg)
{
    struct export_arg *a = arg;
    uint32_t id = 0, next = 1;
    DBT k = {0}, v = {0};
    k.data = (void *)a->path;
    k.size = (uint32_t)strlen(a->path);
    v.data = &id;
    v.ulen = sizeof(id);
    v.flags = DB_DBT_USERMEM;
    int r = db_errno(t->exports->get(t->exports, txn, &k, &v, DB_RMW));
    if (r == 0) {
        a->id = id;
        return v.size == sizeof(id) ? 0 : EIO;
    }
    if (r != ENOENT)
        return r;
    size_t len = 0;
    r = misc_get(t, txn, "next_export", 11, &next, sizeof(next), &len, DB_RMW);
    if (r == ENOENT)
        next = 1;
    else if (r)
        return r;
    id = next++;
    if ((r = misc_put(t, txn, "next_export", 11, &next, sizeof(next))))
        return r;
    v.data = &id;
    v.size = sizeof(id);
    v.flags = 0;
    if ((r = db_errno(t->exports->put(t->exports, txn, &k, &v, 0))))
        return r;
    a->id = id;
    return 0;
}

int inode_export_id(struct inode_table *t, const char *export_path, uint32_t *id)
{
    struct export_arg a = {.path = export_path};
    if (!export_path || !*export_path)
        return EINVAL;
    int r = txn_run(t, export_id_fn, &a, true);
    if (r == 0)
        *id = a.id;
    return r;
}

/* misc "R"+id value: root ino, then bucket NUL prefix (what the root was made for). */
#define ROOTVAL_MAX (8 + 2 * (OBJ_KEY_MAX + 1))

static size_t root_val(const struct meta_export *e, uint64_t ino, uint8_t *buf)
{
    size_t bl = strlen(e->bucket) + 1, pl = strlen(e->prefix);
    put_be64(buf, ino);
    memcpy(buf + 8, e->bucket, bl);
    memcpy(buf + 8 + bl, e->prefix, pl);
    return 8 + bl + pl;
}

static void root_key(uint8_t kb[5], uint32_t id)
{
    kb[0] = 'R';
    kb[1] = (uint8_t)(id >> 24);
    kb[2] = (uint8_t)(id >> 16);
    kb[3] = (uint8_t)(id >> 8);
    kb[4] = (uint8_t)id;
}

struct root_arg {
    const struct meta_export *e;
    const struct obj_meta *marker; /* NULL: no marker object */
    bool unchecked;                /* the marker's HEAD failed: check it again later */
    struct inode_rec rec;          /* out */
    uint64_t old_root;             /* out: a root made for another bucket/prefix */
};

static int root_fn(struct inode_table *t, DB_TXN *txn, void *arg)
{
    struct root_arg *a = arg;
    const struct meta_export *e = a->e;
    uint8_t kb[5], want[ROOTVAL_MAX], have[ROOTVAL_MAX];
    size_t wlen, hlen = 0;
    int r;

    a->old_root = 0;
    root_key(kb, e->id);
    r = misc_get(t, txn, kb, sizeof(kb), have, sizeof(have), &hlen, DB_RMW);
    if (r && r != ENOENT)
        return r;
    if (r == 0 && hlen >= 8) {
        uint64_t ino = get_be64(have);
        wlen = root_val(e, ino, want);
        if (wlen == hlen && memcmp(want, have, wlen) == 0) {
            r = rec_get(t, txn, ino, &a->rec, 0);
            if (r != ENOENT)
                return r;
        } else {
            a->old_root = ino;
        }
    }

    /* Create the root: its own parent, named "", key = the export prefix. */
    int64_t now = now_ns();
    struct inode_rec *n = &a->rec;
    memset(n, 0, sizeof(*n));
    if ((r = ino_alloc(t, &n->ino, &n->h.gen)))
        return r;
    n->h.parent = n->ino;
    n->h.export_id = e->id;
    n->h.mode = S_IFDIR | (e->dir_mode & 07777);
    n->h.uid = e->uid;
    n->h.gid = e->gid;
    n->h.mtime_sec = now / NS;
    n->h.mtime_nsec = (uint32_t)(now % NS);
    if (a->marker) {
        if (a->marker->has_posix) {
            n->h.mode = S_IFDIR | (a->marker->mode & 07777);
            n->h.uid = a->marker->uid;
            n->h.gid = a->marker->gid;
        }
        n->h.mtime_sec = a->marker->mtime_sec;
        n->h.mtime_nsec = a->marker->mtime_nsec;
    }
    n->h.ctime_sec = n->h.mtime_sec;
    n->h.ctime_nsec = n->h.mtime_nsec;
    n->h.nlink = 2;
    n->h.size = DIR_SIZE;
    n->h.change = 1;
    n->h.validated_at = a->unchecked ? 0 : now;
    snprintf(n->key, sizeof(n->key), "%s", e->prefix);
    if ((r = rec_put(t, txn, n)))
        return r;
    if (a->old_root) {
        uint8_t ok[9];
        orphan_key(ok, a->old_root);
        if ((r = misc_put(t, txn, ok, sizeof(ok), "", 0)))
            return r;
    }
    wlen = root_val(e, n->ino, want);
    return misc_put(t, txn, kb, sizeof(kb), want, wlen);
}

static int root_find(struct inode_table *t, const struct meta_export *e, struct inode_rec *rec)
{
    uint8_t kb[5], want[ROOTVAL_MAX], have[ROOTVAL_MAX];
    size_t hlen = 0;
    root_key(kb, e->id);
    int r = misc_get(t, NULL, kb, sizeof(kb), have, sizeof(have), &hlen, 0);
    if (r)
        return r;
    if (hlen < 8)
        return EIO;
    uint64_t ino = get_be64(have);
    size_t wlen = root_val(e, ino, want);
    if (wlen != hlen || memcmp(want, have, wlen) != 0)
        return ENOENT; /* made for another bucket or prefix: make a new one */
    return rec_get(t, NULL, ino, rec, 0);
}

int inode_root(struct inode_table *t, const struct meta_export *e, struct inode_attr *out)
{
    struct root_arg *a;
    int r;

    if (strlen(e->bucket) > OBJ_KEY_MAX || strlen(e->prefix) > OBJ_KEY_MAX)
        return ENAMETOOLONG;
    a = calloc(1, sizeof(*a));
    if (!a)
        return ENOMEM;
    r = public_errno(root_find(t, e, &a->rec));
    if (r != ENOENT)
        goto out;

    /* First use: a "prefix/" marker object, if there is one, gives the root's attributes. */
    struct obj_meta marker;
    a->e = e;
    if (e->prefix[0]) {
        atomic_fetch_add(&t->n_heads, 1);
        int hr = obj_head(e->store, e->bucket, e->prefix, &marker);
        if (hr == 0)
            a->marker = &marker;
        a->unchecked = hr != 0 && hr != ENOENT;
        if (a->unchecked)
            LOG_AT(LOG_WARNING, "inode: HEAD of export root marker %s failed: %s; using the "
                                "export defaults", e->prefix, strerror(hr));
    }
    r = txn_run(t, root_fn, a, true);
    if (r)
        goto out;
    atomic_fetch_add(&t->n_inodes, 1);
    if (a->old_root) {
        LOG_AT(LOG_NOTICE, "inode: export %u now maps to %s:%s; dropping its old tree",
               e->id, e->bucket, e->prefix);
        remove_orphans(t);
    }
out:
    if (r == 0)
        rec_to_attr(&a->rec, out);
    free(a);
    return r;
}

/* ---- getattr / lookup / readdir ------------------------------------------------- */

/* Read ino for export e: ESTALE if absent or another export's. */
int rec_get_export(struct inode_table *t, const struct meta_export *e, uint64_t ino,
                   struct inode_rec *r)
{
    int rc = rec_get(t, NULL, ino, r, 0);
    if (rc == ENOENT || (rc == 0 && r->h.export_id != e->id))
        return ESTALE;
    return public_errno(rc);
}

/* inode_getattr; nowait: EWOULDBLOCK instead of a listing or a HEAD. */
static int getattr_impl(struct inode_table *t, const struct meta_export *e, uint64_t ino,
                        struct inode_attr *out, bool nowait)
{
    struct inode_rec *r = malloc(sizeof(*r));
    if (!r)
        return ENOMEM;
    int rc = rec_get_export(t, e, ino, r);
    if (rc)
        goto out;
    if (S_ISDIR(r->h.mode)) {
        if (!nowait)
            rc = ensure_listed(t, e, r, LIST_IF_EXPIRED);
        else if (list_must_wait(t, e, r, LIST_IF_EXPIRED) ||
                 dir_marker_stale(e, r, now_ns(), true))
            rc = EWOULDBLOCK;
        else if (list_bg_due(e, r, now_ns()))
            list_in_background(t, e, ino); /* no pool (quiesced): a blocking call lists it */
        /* As for a file, a failed HEAD fails GETATTR (EAGAIN: the client retries). */
        if (rc == 0 && !nowait && dir_marker_stale(e, r, now_ns(), true))
            rc = dir_revalidate(t, e, r);
    } else if (file_stale(t, e, r, now_ns())) {
        rc = nowait ? EWOULDBLOCK : file_revalidate(t, e, r);
    }
    if (rc == 0)
        rec_to_attr(r, out);
out:
    free(r);
    return rc;
}

int name_check(const char *name)
{
    size_t len = strnlen(name, INODE_NAME_MAX + 1);
    if (len == 0 || strchr(name, '/'))
        return EINVAL;
    if (len > INODE_NAME_MAX)
        return ENAMETOOLONG;
    return 0;
}

/* Strict UTF-8: no overlong forms, surrogates, or code points past U+10FFFF. */
static bool utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned n;
        uint32_t cp;
        if (*p < 0x80) {
            p++;
            continue;
        }
        if (*p >= 0xc2 && *p <= 0xdf) {
            n = 1;
            cp = *p & 0x1fu;
        } else if (*p >= 0xe0 && *p <= 0xef) {
            n = 2;
            cp = *p & 0x0fu;
        } else if (*p >= 0xf0 && *p <= 0xf4) {
            n = 3;
            cp = *p & 0x07u;
        } else {
            return false;
        }
        for (unsigned i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80) /* also stops at the terminating NUL */
                return false;
            cp = cp << 6 | (p[i] & 0x3fu);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        p += n + 1;
    }
    return true;
}

int name_check_new(const struct meta_export *e, const char *name)
{
    int rc = name_check(name);
    if (!rc && e->store && e->store->utf8_keys && !utf8_valid(name))
        rc = EINVAL;
    return rc;
}

int inode_getattr(struct inode_table *t, const struct meta_export *e, uint64_t ino,
                  struct inode_attr *out)
{
    return getattr_impl(t, e, ino, out, false);
}

int inode_getattr_nowait(struct inode_table *t, const struct meta_export *e, uint64_t ino,
                         struct inode_attr *out)
{
    return getattr_impl(t, e, ino, out, true);
}

int inode_revalidate(struct inode_table *t, const struct meta_export *e, uint64_t ino,
                     struct inode_attr *out)
{
    struct inode_rec *r = malloc(sizeof(*r));
    if (!r)
        return ENOMEM;
    int rc = rec_get_export(t, e, ino, r);
    if (rc == 0 && !S_ISDIR(r->h.mode))
        rc = file_revalidate(t, e, r);
    if (rc == 0)
        rec_to_attr(r, out);
    free(r);
    return rc;
}

/* Read directory dir for e and list it if needed (nowait: EWOULDBLOCK instead). */
static int dir_ready(struct inode_table *t, const struct meta_export *e, uint64_t dir,
                     struct inode_rec *r, bool nowait)
{
    int rc = rec_get_export(t, e, dir, r);
    if (rc)
        return rc;
    if (!S_ISDIR(r->h.mode))
        return ENOTDIR;
    if (nowait)
        return list_must_wait(t, e, r, LIST_IF_NEEDED) ? EWOULDBLOCK : 0; /* see lookup_impl */
    /* Never waits for a listing that is merely stale: that one goes to the pool. */
    return ensure_listed(t, e, r, LIST_IF_NEEDED);
}

/* dir_refresh_quiet for a lookup: a nowait lookup hands a stale marker to a worker. */
static int dir_refresh_lookup(struct inode_table *t, const struct meta_export *e,
                              struct inode_rec *r, bool nowait)
{
    if (nowait && dir_marker_stale(e, r, now_ns(), false))
        return EWOULDBLOCK;
    dir_refresh_quiet(t, e, r);
    return 0;
}

/* inode_lookup; nowait: EWOULDBLOCK instead of a listing. */
static int lookup_impl(struct inode_table *t, const struct meta_export *e, uint64_t dir,
                       const char *name, struct inode_attr *out, struct inode_attr *dir_attr,
                       bool nowait)
{
    struct inode_rec *r = malloc(sizeof(*r));
    struct dval dv;
    int rc;

    if (!r)
        return ENOMEM;
    int64_t begun = now_ns();
    if ((rc = name_check(name)))
        goto out;
    if ((rc = dir_ready(t, e, dir, r, nowait)))
        goto out;
    if ((rc = dir_refresh_lookup(t, e, r, nowait)))
        goto out;
    /* The table answers: a stale listing is redone in the background (nowait: only now). */
    if (nowait && list_bg_due(e, r, now_ns()))
        list_in_background(t, e, dir);
    if (dir_attr)
        rec_to_attr(r, dir_attr);
    if (strcmp(name, ".") == 0) {
        rec_to_attr(r, out);
        goto out;
    }
    if (strcmp(name, "..") == 0) {
        rc = rec_get_export(t, e, r->h.parent, r);
        if (rc == 0)
            rc = dir_refresh_lookup(t, e, r, nowait);
        if (rc == 0)
            rec_to_attr(r, out);
        goto out;
    }
    rc = public_errno(dirent_get(t, NULL, dir, name, &dv, 0));
    /* (A listing that ended after this call began is as new as a strict export asks.) */
    if (rc == ENOENT && list_stale(e, r, now_ns()) && r->h.listed_at < begun) {
        /*
         * A name the stale listing lacks may have been created since: wait
         * for the re-listing (joining the one just started) rather than say
         * ENOENT, so an object put in the bucket is found by name once the
         * TTL has passed.  Within the TTL a missing name costs nothing
         * (immutable: ever; strict: it always waits for a listing).
         */
        if (nowait) {
            rc = EWOULDBLOCK;
            goto out;
        }
        if ((rc = list_now(t, e, r)))
            goto out;
        if (dir_attr)
            rec_to_attr(r, dir_attr);
        rc = public_errno(dirent_get(t, NULL, dir, name, &dv, 0));
    }
    if (rc == 0)
        rc = public_errno(rec_get(t, NULL, dv.ino, r, 0));
    if (rc == 0 && file_stale(t, e, r, now_ns())) {
        /*
         * A file known from a listing without POSIX metadata (S3), or whose
         * attributes are older than the TTL (its directory may be answering
         * from a stale listing while it is listed again): the client caches
         * what LOOKUP hands out, so confirm it with HEAD first, as GETATTR
         * would (a nowait lookup gives the call to a worker for that).
         * Gone -> ENOENT; a failing store only logs, as for a directory's
         * marker, and the attributes we have go out.
         */
        if (nowait) {
            rc = EWOULDBLOCK;
            goto out;
        }
        int hr = file_revalidate(t, e, r);
        if (hr == ESTALE)
            rc = ENOENT;
        else if (hr)
            LOG_AT(LOG_WARNING, "lookup %s: HEAD %s: %s", name, r->key, strerror(hr));
    }
    if (rc == 0)
        rc = dir_refresh_lookup(t, e, r, nowait);
    if (rc == 0)
        rec_to_attr(r, out);
out:
    free(r);
    return rc;
}

int inode_lookup(struct inode_table *t, const struct meta_export *e, uint64_t dir,
                 const char *name, struct inode_attr *out, struct inode_attr *dir_attr)
{
    return lookup_impl(t, e, dir, name, out, dir_attr, false);
}

int inode_lookup_nowait(struct inode_table *t, const struct meta_export *e, uint64_t dir,
                        const char *name, struct inode_attr *out, struct inode_attr *dir_attr)
{
    return lookup_impl(t, e, dir, name, out, dir_attr, true);
}

struct rd_ent {
    uint64_t ino;
    char name[INODE_NAME_MAX + 1];
};

/* Up to READDIR_BATCH entries of dir after name `after` ("" = from the first). */
static int readdir_batch(struct inode_table *t, uint64_t dir, const char *after,
                         struct rd_ent *out, size_t *n)
{
    uint8_t kb[DKEY_MAX];
    struct dval dv;
    DBC *c;
    DBT k = {0}, v = {0};
    int r = db_errno(t->dirents->cursor(t->dirents, NULL, &c, DB_READ_COMMITTED));
    if (r)
        return r;
    size_t ks = dkey_make(kb, dir, after, strlen(after));
    if (after[0])
        kb[ks++] = 0; /* the smallest key after `after` */
    k.data = kb;
    k.size = (uint32_t)ks;
    k.ulen = sizeof(kb);
    k.flags = DB_DBT_USERMEM;
    v.data = &dv;
    v.ulen = sizeof(dv);
    v.flags = DB_DBT_USERMEM;
    *n = 0;
    for (uint32_t op = DB_SET_RANGE; *n < READDIR_BATCH; op = DB_NEXT) {
        r = db_errno(c->get(c, &k, &v, op));
        if (r == ENOENT || (r == 0 && (k.size < 8 || get_be64(kb) != dir))) {
            r = 0;
            break;
        }
        if (r)
            break;
        if (k.size - 8 > INODE_NAME_MAX || v.size != sizeof(dv)) {
            r = EIO;
            break;
        }
        out[*n].ino = dv.ino;
        memcpy(out[*n].name, kb + 8, k.size - 8);
        out[*n].name[k.size - 8] = '\0';
        (*n)++;
    }
    c->close(c);
    return r;
}

/*
 * Must READDIRPLUS HEAD entry r before handing out its attributes?  When
 * they are unconfirmed or expired (file_stale) -- except, in ttl mode,
 * attributes confirmed once (validated_at set) on an export whose listing
 * is as good as a HEAD (posix_metadata "own", or a store whose listing
 * carries what HEAD does: the dir store): those are served from the stale
 * listing like the names beside them (stale-while-revalidate; the
 * re-listing, queued by the same call, refreshes both), so no READDIRPLUS
 * call waits for the store while the TTL expires under a load.  GETATTR
 * and LOOKUP still HEAD an expired file (close-to-open).
 */
static bool readdirplus_heads(struct inode_table *t, const struct meta_export *e,
                              const struct inode_rec *r, int64_t now)
{
    if ((e->posix_own || e->store->list_is_head) && e->consistency == INODE_TTL &&
        r->h.validated_at != 0)
        return false;
    return file_stale(t, e, r, now);
}

/*
 * inode_readdir; plus: READDIRPLUS, whose attributes the client caches:
 * files among each batch whose attributes are unconfirmed or expired are
 * HEADed first, in parallel (ahead_run), before any of the batch goes out.
 */
static int readdir_impl(struct inode_table *t, const struct meta_export *e, uint64_t dir,
                        uint64_t cookie, inode_readdir_cb cb, void *arg, bool *eof,
                        uint64_t *verf, bool plus)
{
    struct {
        struct inode_rec d, c;
        struct inode_attr a;
        struct rd_ent ents[READDIR_BATCH];
        struct inode_rec recs[READDIR_BATCH];
        uint64_t inos[READDIR_BATCH];
        int got[READDIR_BATCH];
        struct ahead_job jobs[READDIR_BATCH];
        char after[INODE_NAME_MAX + 1];
    } *s = malloc(sizeof(*s));
    int rc;

    *eof = false;
    if (!s)
        return ENOMEM;
    int64_t begun = now_ns();
    if ((rc = dir_ready(t, e, dir, &s->d, false)))
        goto out;
    /* Strict: a walk from the start sees a listing that ran for it (or joined one running). */
    if (cookie == 0 && e->consistency == INODE_STRICT && s->d.h.listed_at < begun &&
        (rc = list_now(t, e, &s->d)))
        goto out;
    *verf = s->d.h.change;
    s->after[0] = '\0';

    if (cookie >= INODE_FIRST) {
        rc = public_errno(rec_get(t, NULL, cookie, &s->c, 0));
        if (rc == ENOENT || (rc == 0 && (s->c.h.parent != dir || cookie == dir))) {
            rc = EINVAL;
            goto out;
        }
        if (rc)
            goto out;
        memcpy(s->after, s->c.name, sizeof(s->after));
    } else if (cookie > 2) {
        rc = EINVAL;
        goto out;
    }
    if (cookie == 0) {
        dir_refresh_quiet(t, e, &s->d);
        rec_to_attr(&s->d, &s->a);
        if ((rc = cb(arg, ".", 1, &s->a)))
            goto stop;
    }
    if (cookie <= 1) {
        if ((rc = rec_get_export(t, e, s->d.h.parent, &s->c)))
            goto out;
        dir_refresh_quiet(t, e, &s->c);
        rec_to_attr(&s->c, &s->a);
        if ((rc = cb(arg, "..", 2, &s->a)))
            goto stop;
    }
    for (;;) {
        size_t n = 0, njobs = 0;
        for (int attempt = 0;; attempt++) {
            rc = readdir_batch(t, dir, s->after, s->ents, &n);
            if (!is_deadlock(rc) || attempt >= TXN_RETRIES)
                break;
        }
        if ((rc = public_errno(rc)))
            goto out;
        for (size_t i = 0; i < n; i++)
            s->inos[i] = s->ents[i].ino;
        if ((rc = public_errno(rec_get_many(t, s->inos, n, s->recs, s->got))))
            goto out;
        int64_t now = now_ns();
        for (size_t i = 0; i < n; i++) {
            if (plus && s->got[i] == 0 && readdirplus_heads(t, e, &s->recs[i], now))
                s->jobs[njobs++] = (struct ahead_job){.rec = &s->recs[i]};
        }
        if (njobs)
            ahead_run(t, e, s->jobs, njobs);
        for (size_t i = 0, j = 0; i < n; i++) {
            int gr = s->got[i];
            memcpy(s->after, s->ents[i].name, sizeof(s->after));
            if (gr == 0 && j < njobs && s->jobs[j].rec == &s->recs[i]) {
                int hr = s->jobs[j++].rc;
                if (hr == ESTALE)
                    continue; /* gone from the bucket: the HEAD removed it */
                if (hr)
                    LOG_AT(LOG_WARNING, "readdirplus: HEAD %s: %s; its attributes stay "
                                        "unconfirmed", s->recs[i].key, strerror(hr));
            }
            if (gr == ENOENT)
                continue; /* removed since the batch was read */
            if ((rc = public_errno(gr)))
                goto out;
            dir_refresh_quiet(t, e, &s->recs[i]); /* subdirectories: once per TTL each */
            rec_to_attr(&s->recs[i], &s->a);
            if ((rc = cb(arg, s->ents[i].name, s->ents[i].ino, &s->a)))
                goto stop;
        }
        if (n < READDIR_BATCH) {
            *eof = true;
            goto out;
        }
    }
stop:
    /* 1: the reply is full (the entry just offered was not taken); otherwise an errno. */
    if (rc == 1)
        rc = 0;
out:
    free(s);
    return rc;
}

int inode_readdir(struct inode_table *t, const struct meta_export *e, uint64_t dir,
                  uint64_t cookie, inode_readdir_cb cb, void *arg, bool *eof, uint64_t *verf)
{
    return readdir_impl(t, e, dir, cookie, cb, arg, eof, verf, false);
}

int inode_readdirplus(struct inode_table *t, const struct meta_export *e, uint64_t dir,
                      uint64_t cookie, inode_readdir_cb cb, void *arg, bool *eof,
                      uint64_t *verf)
{
    return readdir_impl(t, e, dir, cookie, cb, arg, eof, verf, true);
}

int inode_key(struct inode_table *t, uint64_t ino, char *buf, size_t len)
{
    struct inode_rec *r = malloc(sizeof(*r));
    if (!r)
        return ENOMEM;
    int rc = public_errno(rec_get(t, NULL, ino, r, 0));
    if (rc == ENOENT)
        rc = ESTALE;
    if (rc == 0 && (r->h.flags & IREC_MOVING)) {
        /* Its directory was renamed and its object has not followed yet: it is here. */
        int mr = public_errno(move_src(t, NULL, ino, r->key, 0));
        if (mr == 0)
            r->h.key_len = (uint16_t)strlen(r->key);
        else if (mr != ENOENT)
            rc = mr;
    }
    if (rc == 0 && (size_t)r->h.key_len + 1 > len)
        rc = ENAMETOOLONG;
    if (rc == 0)
        memcpy(buf, r->key, (size_t)r->h.key_len + 1);
    free(r);
    return rc;
}

struct inval_arg {
    uint64_t ino;
    struct inode_rec rec;
};

static int invalidate_fn(struct inode_table *t, DB_TXN *txn, void *arg)
{
    struct inval_arg *a = arg;
    int r = rec_get(t, txn, a->ino, &a->rec, DB_RMW);
    if (r)
        return r;
    /* The next caller, getattr included, waits for a new listing (never listed: as before). */
    if (S_ISDIR(a->rec.h.mode) && a->rec.h.listed_at != 0)
        a->rec.h.flags |= IREC_RELIST;
    a->rec.h.validated_at = 0;
    return rec_put(t, txn, &a->rec);
}

int inode_invalidate(struct inode_table *t, uint64_t dir)
{
    struct inval_arg *a = malloc(sizeof(*a));
    if (!a)
        return ENOMEM;
    a->ino = dir;
    int r = txn_run(t, invalidate_fn, a, false);
    free(a);
    return r == ENOENT ? ESTALE : r;
}

int inode_refresh(struct inode_table *t, const struct meta_export *e, uint64_t dir, bool wait)
{
    struct inval_arg *a = malloc(sizeof(*a));
    if (!a)
        return ENOMEM;
    int r = rec_get_export(t, e, dir, &a->rec);
    if (r == 0 && !S_ISDIR(a->rec.h.mode))
        r = ENOTDIR;
    if (r == 0) {
        a->ino = dir;
        r = txn_run(t, invalidate_fn, a, false);
        r = r == ENOENT ? ESTALE : r;
    }
    if (r == 0 && wait)
        r = ensure_listed(t, e, &a->rec, LIST_IF_NEEDED);
    else if (r == 0)
        list_in_background(t, e, dir);
    free(a);
    return r;
}

void inode_get_stats(struct inode_table *t, struct inode_stats *out)
{
    int64_t n = atomic_load(&t->n_inodes);
    out->inodes = n > 0 ? (uint64_t)n : 0;
    out->lists = atomic_load(&t->n_lists);
    out->list_entries = atomic_load(&t->n_list_entries);
    out->heads = atomic_load(&t->n_heads);
    out->heads_ahead = atomic_load(&t->n_heads_ahead);
    out->heads_joined = atomic_load(&t->n_heads_joined);
    pthread_mutex_lock(&t->ahead_mu);
    out->heads_ahead_max = t->ahead_running_max;
    pthread_mutex_unlock(&t->ahead_mu);
    out->lists_background = atomic_load(&t->n_bg_lists);
    out->lists_skipped = atomic_load(&t->n_bg_skipped);
    out->sync_commits = atomic_load(&t->n_sync_commits);
    int64_t moves = atomic_load(&t->n_moves);
    out->moves_open = moves > 0 ? (uint64_t)moves : 0;
    out->moved = atomic_load(&t->n_moved);
    pthread_mutex_lock(&t->flight_mu);
    uint64_t pending = 0;
    for (struct listing *f = t->flights; f; f = f->next)
        pending++;
    pthread_mutex_unlock(&t->flight_mu);
    out->lists_pending = pending;
}
