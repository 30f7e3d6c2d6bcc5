/*
 * inode.c - the inode table in a Berkeley DB environment in state_dir.
 *
 * What it owns.  Five B-tree databases in one transactional environment:
 *
 *   inodes.db   ino (u64 BE) -> struct irec + name + full object key
 *   dirents.db  parent ino (u64 BE) + name bytes -> struct dval {child, epoch}
 *               (B-tree byte order = the entries of a directory, by name)
 *   exports.db  export path -> export id (u32)
 *   counters.db "next_ino" (u64): only ever locked by inode-number
 *               reservations, which run while other transactions of the
 *               same thread are open, so they must not share its pages
 *   misc.db     "next_export" counter (u32),
 *               "R" + export id BE -> root ino + bucket NUL prefix,
 *               "O" + ino BE -> orphaned directory subtrees awaiting removal,
 *               "P" + dir BE + name -> an object listed under the name of a
 *               known directory, settled after the listing's last page
 *
 * Durability.  Commits use DB_TXN_WRITE_NOSYNC: the log reaches the OS at
 * each commit, so a killed process loses nothing.  Everything except inode
 * numbers, generations and export ids can be listed again from the store;
 * the transactions that hand those out (inode-number block reservations,
 * export ids, export roots) commit with DB_TXN_SYNC, so they also survive a
 * machine crash.  Inode numbers are reserved in blocks of INO_BLOCK and never
 * reused: a block half used at a crash is simply skipped.
 *
 * Listing a directory (list_dir).  obj_list pages (delimiter "/") are
 * buffered, at most PAGE_MAX entries, and each buffer is applied in one
 * transaction.  Mark and sweep: the directory's epoch is bumped when a
 * listing starts; every entry seen is stamped with it in its dirent value;
 * after the last page, dirents carrying an older epoch are swept.  A swept
 * (or retyped) subdirectory is detached and recorded as an orphan in the
 * same transaction; remove_tree then deletes its subtree in bounded steps,
 * depth first, following parent pointers, without holding it in memory.
 * Name clashes ("a" and "a/..."): the directory wins.  Each page is applied
 * directories first; an object whose name is an existing directory is kept
 * as a pending record until all pages are in, and replaces the directory
 * only if no prefix of that name was listed (the directory became a file).
 *
 * States of a directory inode: never listed (listed_at 0, nlink 2), listed
 * (listed_at = time the listing started), expired (listed_at older than the
 * export's metadata_ttl, or 1 after inode_invalidate).
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
 * Threads and locks.  Berkeley DB does the page locking (DB_THREAD, deadlock
 * detection on every conflict); a transaction that loses a deadlock is
 * retried up to TXN_RETRIES times.  Two mutexes, never held together and
 * never held across a store call:
 *   alloc_mu   the reserved inode-number block and the generation pool
 *   flight_mu  the list of listings in progress (single flight: one
 *              listing per directory; others wait on listing_done)
 * No transaction is kept open across a store call or a caller's callback.
 * The _nowait lookups read without a transaction and never call the store
 * or wait on flight_mu's listings; at most they wait for a page lock held
 * by a transaction in progress, which never spans a store call.
 */
#include "meta/inode.h"

#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <db.h>

#include "common/log.h"

#define INO_BLOCK 16384       /* inode numbers reserved per durable (fsync) counter update */
#define PAGE_MAX 1000         /* listing entries per store page and per transaction */
#define SWEEP_BATCH 512       /* dirents examined per sweep transaction */
#define RM_BATCH 256          /* records deleted per remove_tree transaction */
#define READDIR_BATCH 32      /* entries read per cursor pass in inode_readdir */
#define TXN_RETRIES 20
#define DIR_SIZE 4096         /* the size a directory reports */
#define NS 1000000000LL

/* Stored inode record (native byte order: the database never leaves this host). */
struct irec {
    uint64_t parent;
    uint64_t size;
    uint64_t change;
    uint64_t epoch;        /* dirs: epoch of the current/last listing */
    int64_t mtime_sec, ctime_sec;
    int64_t listed_at;     /* dirs: ns, start of the last complete listing; 0 never */
    int64_t validated_at;  /* ns: attributes last confirmed by LIST or HEAD (dirs: by the
                              marker's HEAD or a listing carrying its metadata); 0 never */
    uint32_t mtime_nsec, ctime_nsec;
    uint32_t export_id, gen;
    uint32_t mode, uid, gid, nlink;
    char etag[OBJ_ETAG_MAX];
    uint16_t name_len, key_len;
    uint32_t flags;        /* IREC_* (fits the struct's tail padding: the size is unchanged) */
};

/* dirs: mtime was set by a change a re-listing found, not taken from the marker. */
#define IREC_MTIME_LISTED 1u

/* An inode record decoded, with NUL-terminated name and key. */
struct inode_rec {
    uint64_t ino;
    struct irec h;
    char name[INODE_NAME_MAX + 1];
    char key[OBJ_KEY_MAX + 1];
};

/* Stored dirent value. */
struct dval {
    uint64_t ino;
    uint64_t epoch; /* listing epoch in which the entry was last seen */
};

/* flags took the tail padding: records written before it keep their size. */
_Static_assert(sizeof(struct irec) % 8 == 0 && offsetof(struct irec, flags) + 4 == sizeof(struct irec),
               "struct irec grew: stored records would no longer decode");

#define IREC_MAX (sizeof(struct irec) + INODE_NAME_MAX + OBJ_KEY_MAX)
#define DKEY_MAX (8 + INODE_NAME_MAX + 1)

/* One listing in progress (single flight). */
struct listing {
    uint64_t dir;
    bool done;
    int err;
    unsigned refs;
    pthread_cond_t listing_done;
    struct listing *next;
};

struct inode_table {
    DB_ENV *env;
    DB *inodes, *dirents, *exports, *misc;
    DB *counters; /* touched only by reserve_fn, under alloc_mu (see ino_alloc) */

    pthread_mutex_t alloc_mu;
    uint64_t next_ino, ino_limit; /* [next_ino, ino_limit) is reserved and unused */
    uint32_t gens[64];
    unsigned ngens;

    pthread_mutex_t flight_mu;
    struct listing *flights;

    _Atomic int64_t n_inodes;
    _Atomic uint64_t n_lists, n_list_entries, n_heads;
};

enum list_want { LIST_IF_NEEDED, LIST_IF_EXPIRED };

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static bool is_deadlock(int r)
{
    return r == DB_LOCK_DEADLOCK || r == DB_LOCK_NOTGRANTED;
}

/*
 * Internal functions return 0, a positive errno, or DB_LOCK_DEADLOCK (which
 * txn_run retries).  This maps any other Berkeley DB code to an errno.
 */
static int db_errno(int r)
{
    if (r >= 0 || is_deadlock(r))
        return r;
    if (r == DB_NOTFOUND || r == DB_KEYEMPTY)
        return ENOENT;
    if (r == DB_BUFFER_SMALL)
        return EOVERFLOW;
    LOG_AT(LOG_ERR, "inode: berkeley db: %s", db_strerror(r));
    return EIO;
}

/* The errno a public function returns for an internal result. */
static int public_errno(int r)
{
    if (is_deadlock(r))
        return EAGAIN;
    return r < 0 ? EIO : r;
}

typedef int (*txn_fn)(struct inode_table *t, DB_TXN *txn, void *arg);

/*
 * Run fn in a transaction, retrying on deadlock.  fn must leave its
 * outputs in arg only when it returns 0 (it may run several times).
 * sync: commit with DB_TXN_SYNC (for what cannot be derived from the store).
 */
static int txn_run(struct inode_table *t, txn_fn fn, void *arg, bool sync)
{
    for (int attempt = 0; attempt < TXN_RETRIES; attempt++) {
        DB_TXN *txn;
        int r = t->env->txn_begin(t->env, NULL, &txn, 0);
        if (r)
            return public_errno(db_errno(r));
        r = fn(t, txn, arg);
        if (r == 0) {
            r = txn->commit(txn, sync ? DB_TXN_SYNC : 0);
            return r ? public_errno(db_errno(r)) : 0;
        }
        txn->abort(txn);
        if (!is_deadlock(r))
            return public_errno(r);
        LOG_AT(LOG_DEBUG, "inode: transaction lost a deadlock, retrying (attempt %d)",
               attempt + 1);
        /* Back off a little, more on each attempt, so the winner finishes. */
        usleep((useconds_t)(100 * (attempt + 1) + (rand() & 255)));
    }
    LOG_AT(LOG_WARNING, "inode: transaction still deadlocked after %d attempts", TXN_RETRIES);
    return EAGAIN;
}

/* ---- records ------------------------------------------------------------ */

static int rec_get(struct inode_table *t, DB_TXN *txn, uint64_t ino, struct inode_rec *r,
                   uint32_t flags)
{
    uint8_t kb[8], vb[IREC_MAX];
    DBT k = {0}, v = {0};
    put_be64(kb, ino);
    k.data = kb;
    k.size = sizeof(kb);
    v.data = vb;
    v.ulen = sizeof(vb);
    v.flags = DB_DBT_USERMEM;
    int rc = t->inodes->get(t->inodes, txn, &k, &v, flags);
    if (rc)
        return db_errno(rc);
    if (v.size < sizeof(struct irec))
        goto corrupt;
    memcpy(&r->h, vb, sizeof(r->h));
    if (r->h.name_len > INODE_NAME_MAX || r->h.key_len > OBJ_KEY_MAX ||
        v.size != sizeof(struct irec) + r->h.name_len + r->h.key_len)
        goto corrupt;
    memcpy(r->name, vb + sizeof(r->h), r->h.name_len);
    r->name[r->h.name_len] = '\0';
    memcpy(r->key, vb + sizeof(r->h) + r->h.name_len, r->h.key_len);
    r->key[r->h.key_len] = '\0';
    r->h.etag[OBJ_ETAG_MAX - 1] = '\0';
    r->ino = ino;
    return 0;
corrupt:
    LOG_AT(LOG_ERR, "inode: record of inode %llu is corrupt (%u bytes)",
           (unsigned long long)ino, (unsigned)v.size);
    return EIO;
}

static int rec_put(struct inode_table *t, DB_TXN *txn, struct inode_rec *r)
{
    uint8_t kb[8], vb[IREC_MAX];
    DBT k = {0}, v = {0};
    r->h.name_len = (uint16_t)strlen(r->name);
    r->h.key_len = (uint16_t)strlen(r->key);
    put_be64(kb, r->ino);
    memcpy(vb, &r->h, sizeof(r->h));
    memcpy(vb + sizeof(r->h), r->name, r->h.name_len);
    memcpy(vb + sizeof(r->h) + r->h.name_len, r->key, r->h.key_len);
    k.data = kb;
    k.size = sizeof(kb);
    v.data = vb;
    v.size = (uint32_t)(sizeof(r->h) + r->h.name_len + r->h.key_len);
    return db_errno(t->inodes->put(t->inodes, txn, &k, &v, 0));
}

static int rec_del(struct inode_table *t, DB_TXN *txn, uint64_t ino)
{
    uint8_t kb[8];
    DBT k = {0};
    put_be64(kb, ino);
    k.data = kb;
    k.size = sizeof(kb);
    int r = db_errno(t->inodes->del(t->inodes, txn, &k, 0));
    return r == ENOENT ? 0 : r;
}

static size_t dkey_make(uint8_t *buf, uint64_t parent, const char *name, size_t len)
{
    put_be64(buf, parent);
    memcpy(buf + 8, name, len);
    return 8 + len;
}

static int dirent_get(struct inode_table *t, DB_TXN *txn, uint64_t parent, const char *name,
                      struct dval *out, uint32_t flags)
{
    uint8_t kb[DKEY_MAX];
    DBT k = {0}, v = {0};
    k.data = kb;
    k.size = (uint32_t)dkey_make(kb, parent, name, strlen(name));
    v.data = out;
    v.ulen = sizeof(*out);
    v.flags = DB_DBT_USERMEM;
    int r = t->dirents->get(t->dirents, txn, &k, &v, flags);
    if (r == 0 && v.size != sizeof(*out))
        return EIO;
    return db_errno(r);
}

static int dirent_put(struct inode_table *t, DB_TXN *txn, uint64_t parent, const char *name,
                      const struct dval *dv)
{
    uint8_t kb[DKEY_MAX];
    DBT k = {0}, v = {0};
    k.data = kb;
    k.size = (uint32_t)dkey_make(kb, parent, name, strlen(name));
    v.data = (void *)dv;
    v.size = sizeof(*dv);
    return db_errno(t->dirents->put(t->dirents, txn, &k, &v, 0));
}

static int dirent_del(struct inode_table *t, DB_TXN *txn, uint64_t parent, const char *name)
{
    uint8_t kb[DKEY_MAX];
    DBT k = {0};
    k.data = kb;
    k.size = (uint32_t)dkey_make(kb, parent, name, strlen(name));
    int r = db_errno(t->dirents->del(t->dirents, txn, &k, 0));
    return r == ENOENT ? 0 : r;
}

static int misc_get(struct inode_table *t, DB_TXN *txn, const void *key, size_t klen,
                    void *val, size_t vmax, size_t *vlen, uint32_t flags)
{
    DBT k = {0}, v = {0};
    k.data = (void *)key;
    k.size = (uint32_t)klen;
    v.data = val;
    v.ulen = (uint32_t)vmax;
    v.flags = DB_DBT_USERMEM;
    int r = t->misc->get(t->misc, txn, &k, &v, flags);
    if (r == 0 && vlen)
        *vlen = v.size;
    return db_errno(r);
}

static int misc_put(struct inode_table *t, DB_TXN *txn, const void *key, size_t klen,
                    const void *val, size_t vlen)
{
    DBT k = {0}, v = {0};
    k.data = (void *)key;
    k.size = (uint32_t)klen;
    v.data = (void *)val;
    v.size = (uint32_t)vlen;
    return db_errno(t->misc->put(t->misc, txn, &k, &v, 0));
}

static void orphan_key(uint8_t kb[9], uint64_t ino)
{
    kb[0] = 'O';
    put_be64(kb + 1, ino);
}

static void rec_to_attr(const struct inode_rec *r, struct inode_attr *a)
{
    memset(a, 0, sizeof(*a));
    a->ino = r->ino;
    a->parent = r->h.parent;
    a->export_id = r->h.export_id;
    a->gen = r->h.gen;
    a->mode = r->h.mode;
    a->uid = r->h.uid;
    a->gid = r->h.gid;
    a->nlink = r->h.nlink;
    a->size = r->h.size;
    a->mtime_sec = r->h.mtime_sec;
    a->mtime_nsec = r->h.mtime_nsec;
    a->ctime_sec = r->h.ctime_sec;
    a->ctime_nsec = r->h.ctime_nsec;
    a->change = r->h.change;
    memcpy(a->etag, r->h.etag, sizeof(a->etag));
    a->unconfirmed = !S_ISDIR(r->h.mode) && r->h.validated_at == 0;
}

/* A directory's set of entries changed: mtime, ctime and change move. */
static void rec_touch(struct inode_rec *r, int64_t now)
{
    r->h.mtime_sec = r->h.ctime_sec = now / NS;
    r->h.mtime_nsec = r->h.ctime_nsec = (uint32_t)(now % NS);
    r->h.change++;
    r->h.flags |= IREC_MTIME_LISTED;
}

/* ---- allocation ---------------------------------------------------------- */

struct reserve_arg {
    uint64_t first; /* out */
};

static int reserve_fn(struct inode_table *t, DB_TXN *txn, void *arg)
{
    struct reserve_arg *a = arg;
    uint64_t next = INODE_FIRST, after;
    DBT k = {.data = "next_ino", .size = 8}, v = {0};
    v.data = &next;
    v.ulen = sizeof(next);
    v.flags = DB_DBT_USERMEM;
    int r = db_errno(t->counters->get(t->counters, txn, &k, &v, DB_RMW));
    if (r == ENOENT)
        next = INODE_FIRST;
    else if (r)
        return r;
    else if (v.size != sizeof(next))
        return EIO;
    after = next + INO_BLOCK;
    v.data = &after;
    v.size = sizeof(after);
    v.flags = 0;
    if ((r = db_errno(t->counters->put(t->counters, txn, &k, &v, 0))))
        return r;
    a->first = next;
    return 0;
}

/*
 * A new inode number (never handed out before) and a random generation.
 * Called inside other transactions: the reservation is a separate,
 * synchronously committed transaction on counters.db, whose pages no other
 * transaction locks, so it can never wait for its caller's locks.
 */
static int ino_alloc(struct inode_table *t, uint64_t *ino, uint32_t *gen)
{
    int r = 0;
    pthread_mutex_lock(&t->alloc_mu);
    if (t->next_ino == t->ino_limit) {
        struct reserve_arg a;
        r = txn_run(t, reserve_fn, &a, true);
        if (r)
            goto out;
        t->next_ino = a.first;
        t->ino_limit = a.first + INO_BLOCK;
    }
    if (t->ngens == 0) {
        ssize_t n = getrandom(t->gens, sizeof(t->gens), 0);
        if (n != (ssize_t)sizeof(t->gens)) {
            r = n < 0 ? errno : EIO;
            goto out;
        }
        t->ngens = sizeof(t->gens) / sizeof(t->gens[0]);
    }
    *ino = t->next_ino++;
    *gen = t->gens[--t->ngens];
out:
    pthread_mutex_unlock(&t->alloc_mu);
    return r;
}

/* ---- open / close ---------------------------------------------------------- */

static int remove_orphans(struct inode_table *t);

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

struct inode_table *inode_open(const char *state_dir)
{
    struct inode_table *t = calloc(1, sizeof(*t));
    int r;
    if (!t) {
        errno = ENOMEM;
        return NULL;
    }
    pthread_mutex_init(&t->alloc_mu, NULL);
    pthread_mutex_init(&t->flight_mu, NULL);

    r = db_env_create(&t->env, 0);
    if (r)
        goto fail;
    t->env->set_errcall(t->env, bdb_errcall);
    /* Enough lock room for one PAGE_MAX-entry transaction on a large directory. */
    if ((r = t->env->set_cachesize(t->env, 0, 64u << 20, 1)) ||
        (r = t->env->set_lk_detect(t->env, DB_LOCK_DEFAULT)) ||
        (r = t->env->set_lk_max_locks(t->env, 100000)) ||
        (r = t->env->set_lk_max_objects(t->env, 100000)) ||
        (r = t->env->set_lk_max_lockers(t->env, 10000)) ||
        (r = t->env->set_flags(t->env, DB_TXN_WRITE_NOSYNC, 1)) ||
        (r = t->env->log_set_config(t->env, DB_LOG_AUTO_REMOVE, 1)))
        goto fail_env;
    r = t->env->open(t->env, state_dir,
                     DB_CREATE | DB_INIT_TXN | DB_INIT_LOCK | DB_INIT_LOG | DB_INIT_MPOOL |
                         DB_THREAD | DB_RECOVER,
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
    free(t);
    errno = r > 0 ? r : EIO;
    return NULL;
}

void inode_close(struct inode_table *t)
{
    if (!t)
        return;
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
    free(t);
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

/* ---- removal of subtrees ---------------------------------------------------- */

struct rm_arg {
    uint64_t root, cur; /* in/out: where the walk stands */
    bool done;          /* out */
    int64_t removed;    /* out: inode records deleted by this step */
};

/* First entry of directory dir: ENOENT if empty. */
static int first_child(struct inode_table *t, DB_TXN *txn, uint64_t dir, char *name,
                       struct dval *dv)
{
    DBC *c;
    uint8_t kb[DKEY_MAX];
    DBT k = {0}, v = {0};
    int r = t->dirents->cursor(t->dirents, txn, &c, 0);
    if (r)
        return db_errno(r);
    put_be64(kb, dir);
    k.data = kb;
    k.size = 8;
    k.ulen = sizeof(kb);
    k.flags = DB_DBT_USERMEM;
    v.data = dv;
    v.ulen = sizeof(*dv);
    v.flags = DB_DBT_USERMEM;
    r = db_errno(c->get(c, &k, &v, DB_SET_RANGE | DB_RMW));
    if (r == 0 && (k.size < 8 || get_be64(kb) != dir))
        r = ENOENT;
    if (r == 0) {
        memcpy(name, kb + 8, k.size - 8);
        name[k.size - 8] = '\0';
    }
    c->close(c);
    return r;
}

/*
 * One bounded step of deleting the subtree rooted at a->root (its own
 * dirent in its parent is already gone): descend to a directory with no
 * entries left, delete it, climb back through its parent pointer.
 */
static int rm_fn(struct inode_table *t, DB_TXN *txn, void *arg)
{
    struct rm_arg *a = arg;
    uint64_t cur = a->cur;
    int64_t removed = 0;
    bool done = false;
    struct inode_rec rec;
    char name[INODE_NAME_MAX + 1];
    struct dval dv;
    int r;

    for (int ops = 0; ops < RM_BATCH && !done; ops++) {
        r = first_child(t, txn, cur, name, &dv);
        if (r == 0) {
            r = rec_get(t, txn, dv.ino, &rec, DB_RMW);
            if (r == 0 && S_ISDIR(rec.h.mode) && rec.h.parent == cur) {
                cur = dv.ino; /* go down first */
                continue;
            }
            if (r && r != ENOENT)
                return r;
            if (r == 0) {
                if ((r = rec_del(t, txn, dv.ino)))
                    return r;
                removed++;
            }
            if ((r = dirent_del(t, txn, cur, name)))
                return r;
            continue;
        }
        if (r != ENOENT)
            return r;
        /* cur has no entries left: delete it and climb. */
        r = rec_get(t, txn, cur, &rec, DB_RMW);
        if (r && r != ENOENT)
            return r;
        if (r == 0) {
            if ((r = rec_del(t, txn, cur)))
                return r;
            removed++;
        }
        if (cur == a->root) {
            done = true;
        } else if (r == ENOENT) {
            cur = a->root; /* lost the way up: start again from the top */
        } else {
            struct dval pv;
            uint64_t parent = rec.h.parent;
            r = dirent_get(t, txn, parent, rec.name, &pv, DB_RMW);
            if (r == 0 && pv.ino == cur && (r = dirent_del(t, txn, parent, rec.name)))
                return r;
            if (r && r != ENOENT)
                return r;
            cur = parent;
        }
    }
    a->cur = cur;
    a->done = done;
    a->removed = removed;
    return 0;
}

static int remove_tree(struct inode_table *t, uint64_t root)
{
    struct rm_arg a = {.root = root, .cur = root};
    /* Each step deletes at least one record, so this ends; the bound is a backstop. */
    for (uint64_t steps = 0; steps < (1ull << 40); steps++) {
        a.removed = 0;
        int r = txn_run(t, rm_fn, &a, false);
        if (r)
            return r;
        atomic_fetch_sub(&t->n_inodes, a.removed);
        if (a.done)
            return 0;
    }
    return EIO;
}

/* Delete every subtree recorded as an orphan. */
static int remove_orphans(struct inode_table *t)
{
    for (int round = 0; round < 1000000; round++) {
        uint8_t kb[9] = {'O'};
        DBC *c;
        DBT k = {0}, v = {0};
        int r = t->misc->cursor(t->misc, NULL, &c, DB_READ_COMMITTED);
        if (r)
            return public_errno(db_errno(r));
        k.data = kb;
        k.size = 1;
        k.ulen = sizeof(kb);
        k.flags = DB_DBT_USERMEM;
        v.flags = DB_DBT_PARTIAL | DB_DBT_USERMEM; /* only the key matters */
        r = db_errno(c->get(c, &k, &v, DB_SET_RANGE));
        c->close(c);
        if (r == ENOENT || (r == 0 && (k.size != 9 || kb[0] != 'O')))
            return 0;
        if (r)
            return public_errno(r);
        uint64_t ino = get_be64(kb + 1);
        if ((r = remove_tree(t, ino)))
            return r;
        DBT dk = {.data = kb, .size = 9};
        r = db_errno(t->misc->del(t->misc, NULL, &dk, 0));
        if (r && r != ENOENT)
            return public_errno(r);
    }
    return 0;
}

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

/* Update an existing same-type child from its listing entry; sets *dirty if written. */
static void child_update(struct list_ctx *x, struct inode_rec *c, const struct pent *p,
                         bool isdir)
{
    const struct obj_meta *m = &p->meta;
    bool changed = false;
    /*
     * Without POSIX metadata a listing's mtime is the object's Last-Modified,
     * which HEAD may have replaced by x-amz-meta-file-mtime: then only new
     * content (size, ETag) is a change, or every re-listing would be one.
     */
    bool content = c->h.size != m->size || strcmp(c->h.etag, m->etag) != 0;
    bool stamp = m->has_posix &&
                 (c->h.mtime_sec != m->mtime_sec || c->h.mtime_nsec != m->mtime_nsec);
    if (!isdir && (content || stamp)) {
        c->h.size = m->size;
        snprintf(c->h.etag, sizeof(c->h.etag), "%s", m->etag);
        c->h.mtime_sec = m->mtime_sec;
        c->h.mtime_nsec = m->mtime_nsec;
        changed = true;
    }
    /* Listings without POSIX metadata keep what HEAD (or an earlier listing) found. */
    if (m->has_posix && !p->is_prefix) {
        uint32_t mode = entry_mode(x->e, p, isdir);
        if (c->h.mode != mode || c->h.uid != m->uid || c->h.gid != m->gid) {
            c->h.mode = mode;
            c->h.uid = m->uid;
            c->h.gid = m->gid;
            changed = true;
        }
    }
    if (changed) {
        c->h.ctime_sec = x->now / NS;
        c->h.ctime_nsec = (uint32_t)(x->now % NS);
        c->h.change++;
        x->p_changed = true;
    }
    /*
     * A listing confirms POSIX attributes only when it carries them.  Without
     * them (S3) a changed file may carry new ones (another gateway or tool
     * rewrote it): forget the last HEAD so the next GETATTR asks again; an
     * unchanged one keeps its HEAD's age, so it is still asked once per TTL.
     * A directory keeps its marker check's age (see dir_marker_stale).  A
     * store whose listing is as good as HEAD (list_is_head) confirms files.
     */
    if ((m->has_posix && !p->is_prefix) || (!isdir && x->e->store->list_is_head))
        c->h.validated_at = x->now;
    else if (!isdir && changed)
        c->h.validated_at = 0;
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
                child_update(x, c, p, true);
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
        child_update(x, c, p, isdir);
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

static bool dir_fresh(const struct meta_export *e, const struct inode_rec *r, int64_t now)
{
    return r->h.listed_at != 0 && now - r->h.listed_at < (int64_t)e->metadata_ttl * NS;
}

/*
 * Make sure directory r (read by the caller) is listed as `w` asks; on
 * return r holds the directory's current record.  One listing per
 * directory at a time: latecomers wait for it and share its result.
 */
static bool list_needed(const struct meta_export *e, const struct inode_rec *r,
                        enum list_want w)
{
    int64_t now = now_ns();
    return w == LIST_IF_NEEDED ? !dir_fresh(e, r, now)
                               : r->h.listed_at != 0 && !dir_fresh(e, r, now);
}

static int ensure_listed(struct inode_table *t, const struct meta_export *e,
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

/* ---- getattr / lookup / readdir ------------------------------------------------- */

/* Read ino for export e: ESTALE if absent or another export's. */
static int rec_get_export(struct inode_table *t, const struct meta_export *e, uint64_t ino,
                          struct inode_rec *r)
{
    int rc = rec_get(t, NULL, ino, r, 0);
    if (rc == ENOENT || (rc == 0 && r->h.export_id != e->id))
        return ESTALE;
    return public_errno(rc);
}

struct file_arg {
    uint64_t ino;
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
    struct inode_rec *c = &a->rec;
    const struct obj_meta *m = a->m;
    int r = rec_get(t, txn, a->ino, c, DB_RMW);
    if (r)
        return r;
    bool changed = false;
    if (c->h.size != m->size || strcmp(c->h.etag, m->etag) != 0 ||
        c->h.mtime_sec != m->mtime_sec || c->h.mtime_nsec != m->mtime_nsec) {
        c->h.size = m->size;
        snprintf(c->h.etag, sizeof(c->h.etag), "%s", m->etag);
        c->h.mtime_sec = m->mtime_sec;
        c->h.mtime_nsec = m->mtime_nsec;
        changed = true;
    }
    if (m->has_posix && (S_ISREG(m->mode) || S_ISLNK(m->mode)) &&
        (c->h.mode != m->mode || c->h.uid != m->uid || c->h.gid != m->gid)) {
        c->h.mode = m->mode;
        c->h.uid = m->uid;
        c->h.gid = m->gid;
        changed = true;
    }
    if (changed) {
        c->h.ctime_sec = a->now / NS;
        c->h.ctime_nsec = (uint32_t)(a->now % NS);
        c->h.change++;
    }
    c->h.validated_at = a->now;
    return rec_put(t, txn, c);
}

/* HEAD a file whose attributes have expired; ESTALE if the object is gone. */
static int file_revalidate(struct inode_table *t, const struct meta_export *e,
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
    a->now = now_ns();
    m.etag[OBJ_ETAG_MAX - 1] = '\0';
    if (rc == ENOENT) {
        rc = txn_run(t, file_gone_fn, a, false);
        if (rc == 0)
            atomic_fetch_sub(&t->n_inodes, 1);
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
static bool dir_marker_stale(const struct meta_export *e, const struct inode_rec *r,
                             int64_t now)
{
    if (!S_ISDIR(r->h.mode))
        return false;
    if (r->h.parent == r->ino && !e->prefix[0])
        return false; /* the root of a whole bucket has no marker */
    return r->h.validated_at == 0 || now - r->h.validated_at >= (int64_t)e->metadata_ttl * NS;
}

struct dirattr_arg {
    uint64_t ino;
    const struct meta_export *e;
    const struct obj_meta *m; /* NULL: no marker object */
    int64_t now;
    struct inode_rec rec;     /* out */
};

/*
 * Apply the marker's HEAD to a directory.  Mode, uid and gid follow the
 * marker's POSIX metadata, or the export defaults without it.  mtime follows
 * the marker unless a re-listing found a change since (IREC_MTIME_LISTED);
 * then only a newer marker mtime (somebody touched it in the bucket) wins.
 */
static int dirattr_fn(struct inode_table *t, DB_TXN *txn, void *arg)
{
    struct dirattr_arg *a = arg;
    const struct meta_export *e = a->e;
    const struct obj_meta *m = a->m;
    struct inode_rec *c = &a->rec;
    int r = rec_get(t, txn, a->ino, c, DB_RMW);
    if (r)
        return r;
    if (!S_ISDIR(c->h.mode))
        return 0; /* retyped meanwhile: its own listing entry rules */
    bool posix = m && m->has_posix;
    uint32_t mode = S_IFDIR | ((posix ? m->mode : e->dir_mode) & 07777);
    uint32_t uid = posix ? m->uid : e->uid, gid = posix ? m->gid : e->gid;
    bool first = c->h.validated_at == 0, changed = false;
    if (c->h.mode != mode || c->h.uid != uid || c->h.gid != gid) {
        c->h.mode = mode;
        c->h.uid = uid;
        c->h.gid = gid;
        changed = true;
    }
    if (m && (c->h.mtime_sec != m->mtime_sec || c->h.mtime_nsec != m->mtime_nsec)) {
        bool newer = m->mtime_sec > c->h.mtime_sec ||
                     (m->mtime_sec == c->h.mtime_sec && m->mtime_nsec > c->h.mtime_nsec);
        if (!(c->h.flags & IREC_MTIME_LISTED) || newer) {
            c->h.mtime_sec = m->mtime_sec;
            c->h.mtime_nsec = m->mtime_nsec;
            c->h.flags &= ~IREC_MTIME_LISTED;
            changed = true;
        }
    }
    if (changed) {
        /* First check: as if the inode had been made from the marker. */
        int64_t cs = first ? c->h.mtime_sec : a->now / NS;
        uint32_t cn = first ? c->h.mtime_nsec : (uint32_t)(a->now % NS);
        c->h.ctime_sec = cs;
        c->h.ctime_nsec = cn;
        c->h.change++;
    }
    c->h.validated_at = a->now;
    return rec_put(t, txn, c);
}

/*
 * HEAD the marker of directory r (its key: prefix + path + "/", the root's
 * is the prefix) and bring r's attributes in line.  No marker (a pure
 * common prefix) means the export defaults.  A failed HEAD changes nothing
 * and is returned; the caller decides whether that fails its request.
 */
static int dir_revalidate(struct inode_table *t, const struct meta_export *e,
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
static void dir_refresh_quiet(struct inode_table *t, const struct meta_export *e,
                              struct inode_rec *r)
{
    if (!dir_marker_stale(e, r, now_ns()))
        return;
    int rc = dir_revalidate(t, e, r);
    if (rc && rc != ESTALE)
        LOG_AT(LOG_WARNING, "inode: HEAD of directory marker %s:%s failed: %s; keeping its "
                            "attributes", e->bucket, r->key, strerror(rc));
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
        if (nowait && (list_needed(e, r, LIST_IF_EXPIRED) || dir_marker_stale(e, r, now_ns())))
            rc = EWOULDBLOCK;
        else
            rc = ensure_listed(t, e, r, LIST_IF_EXPIRED);
        /* As for a file, a failed HEAD fails GETATTR (EAGAIN: the client retries). */
        if (rc == 0 && !nowait && dir_marker_stale(e, r, now_ns()))
            rc = dir_revalidate(t, e, r);
    } else if (now_ns() - r->h.validated_at >= (int64_t)e->metadata_ttl * NS) {
        rc = nowait ? EWOULDBLOCK : file_revalidate(t, e, r);
    }
    if (rc == 0)
        rec_to_attr(r, out);
out:
    free(r);
    return rc;
}

static int name_check(const char *name)
{
    size_t len = strnlen(name, INODE_NAME_MAX + 1);
    if (len == 0 || strchr(name, '/'))
        return EINVAL;
    if (len > INODE_NAME_MAX)
        return ENAMETOOLONG;
    return 0;
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
        return list_needed(e, r, LIST_IF_NEEDED) ? EWOULDBLOCK : 0;
    return ensure_listed(t, e, r, LIST_IF_NEEDED);
}

/* dir_refresh_quiet for a lookup: a nowait lookup hands a stale marker to a worker. */
static int dir_refresh_lookup(struct inode_table *t, const struct meta_export *e,
                              struct inode_rec *r, bool nowait)
{
    if (nowait && dir_marker_stale(e, r, now_ns()))
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
    if ((rc = name_check(name)))
        goto out;
    if ((rc = dir_ready(t, e, dir, r, nowait)))
        goto out;
    if ((rc = dir_refresh_lookup(t, e, r, nowait)))
        goto out;
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
    if (rc == 0)
        rc = public_errno(rec_get(t, NULL, dv.ino, r, 0));
    if (rc == 0 && !S_ISDIR(r->h.mode) && r->h.validated_at == 0) {
        /*
         * A file known from a listing without POSIX metadata (S3): the
         * client caches what LOOKUP hands out, so confirm it with HEAD
         * first (a nowait lookup gives the call to a worker for that).
         * Gone -> ENOENT; a failing store only logs, as for a directory's
         * marker, and the listing's attributes go out.
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

int inode_readdir(struct inode_table *t, const struct meta_export *e, uint64_t dir,
                  uint64_t cookie, inode_readdir_cb cb, void *arg, bool *eof, uint64_t *verf)
{
    struct {
        struct inode_rec d, c;
        struct inode_attr a;
        struct rd_ent ents[READDIR_BATCH];
        char after[INODE_NAME_MAX + 1];
    } *s = malloc(sizeof(*s));
    int rc;

    *eof = false;
    if (!s)
        return ENOMEM;
    if ((rc = dir_ready(t, e, dir, &s->d, false)))
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
        size_t n = 0;
        for (int attempt = 0;; attempt++) {
            rc = readdir_batch(t, dir, s->after, s->ents, &n);
            if (!is_deadlock(rc) || attempt >= TXN_RETRIES)
                break;
        }
        if ((rc = public_errno(rc)))
            goto out;
        for (size_t i = 0; i < n; i++) {
            int gr = rec_get(t, NULL, s->ents[i].ino, &s->c, 0);
            memcpy(s->after, s->ents[i].name, sizeof(s->after));
            if (gr == ENOENT)
                continue; /* removed since the batch was read */
            if ((rc = public_errno(gr)))
                goto out;
            dir_refresh_quiet(t, e, &s->c); /* subdirectories: once per TTL each */
            rec_to_attr(&s->c, &s->a);
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

int inode_key(struct inode_table *t, uint64_t ino, char *buf, size_t len)
{
    struct inode_rec *r = malloc(sizeof(*r));
    if (!r)
        return ENOMEM;
    int rc = public_errno(rec_get(t, NULL, ino, r, 0));
    if (rc == ENOENT)
        rc = ESTALE;
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
    /* 1 ns after the epoch: "listed, long ago", so getattr lists it again too. */
    if (S_ISDIR(a->rec.h.mode) && a->rec.h.listed_at != 0)
        a->rec.h.listed_at = 1;
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

void inode_get_stats(struct inode_table *t, struct inode_stats *out)
{
    int64_t n = atomic_load(&t->n_inodes);
    out->inodes = n > 0 ? (uint64_t)n : 0;
    out->lists = atomic_load(&t->n_lists);
    out->list_entries = atomic_load(&t->n_list_entries);
    out->heads = atomic_load(&t->n_heads);
}
