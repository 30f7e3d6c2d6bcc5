/*
 * inode_db.c - the inode table's storage: transactions with deadlock
 * retries, encoding of inode records, dirents and misc records (the schema
 * is in inode_internal.h), inode-number allocation and the removal of
 * detached subtrees.
 *
 * Allocation.  Inode numbers are reserved in blocks of INO_BLOCK, each
 * reservation a synchronously committed transaction on counters.db, and
 * never reused: a block half used at a crash is simply skipped.
 * Generations come from getrandom() in batches.  alloc_mu guards the
 * reserved block and the generation pool; it is never held across a store
 * call, and the reservation's transaction touches only counters.db, whose
 * pages no other transaction locks, so it cannot wait for its caller's.
 *
 * Removal of subtrees.  A swept (or retyped) subdirectory is detached by
 * its listing and recorded as an orphan ("O" + ino in misc.db) in the same
 * transaction; remove_orphans then deletes each subtree in bounded steps
 * (RM_BATCH records per transaction), depth first, following parent
 * pointers, without holding it in memory.  Orphans a crash left behind are
 * removed at the next open.
 *
 * Threads: every function may run in many threads at once; Berkeley DB
 * locks the pages.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "meta/inode_internal.h"

/*
 * Internal functions return 0, a positive errno, or DB_LOCK_DEADLOCK (which
 * txn_run retries).  This maps any other Berkeley DB code to an errno.
 */
int db_errno(int r)
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
int public_errno(int r)
{
    if (is_deadlock(r))
        return EAGAIN;
    return r < 0 ? EIO : r;
}

/*
 * Run fn in a transaction, retrying on deadlock.  fn must leave its
 * outputs in arg only when it returns 0 (it may run several times).
 * sync: commit with DB_TXN_SYNC (for what cannot be derived from the store).
 */
int txn_run(struct inode_table *t, txn_fn fn, void *arg, bool sync)
{
    return txn_run_sync_if(t, fn, arg, &sync);
}

int txn_run_sync_if(struct inode_table *t, txn_fn fn, void *arg, const bool *sync)
{
    for (int attempt = 0; attempt < TXN_RETRIES; attempt++) {
        DB_TXN *txn;
        int r = t->env->txn_begin(t->env, NULL, &txn, 0);
        if (r)
            return public_errno(db_errno(r));
        r = fn(t, txn, arg);
        if (r == 0) {
            /*
             * A durable commit releases its locks before the log sync, then
             * syncs (early lock release): creates in one directory all
             * update its record, and holding that lock across the sync
             * made them wait for each other's syncs, one after the other.
             * Now they wait together, and one sync covers every commit
             * before it (group commit).  The caller answers only after the
             * sync; another caller may see the change a moment before it
             * is durable, as readers of any file system's metadata may.
             */
            bool synced = *sync;
            r = txn->commit(txn, 0);
            if (r == 0 && synced && (r = t->env->log_flush(t->env, NULL)) == 0)
                atomic_fetch_add(&t->n_sync_commits, 1);
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

/* Decode the stored record of inode ino (size bytes at vb) into r. */
static int rec_decode(uint64_t ino, const uint8_t *vb, uint32_t size, struct inode_rec *r)
{
    if (size < sizeof(struct irec))
        goto corrupt;
    memcpy(&r->h, vb, sizeof(r->h));
    if (r->h.name_len > INODE_NAME_MAX || r->h.key_len > OBJ_KEY_MAX ||
        size != sizeof(struct irec) + r->h.name_len + r->h.key_len)
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
           (unsigned long long)ino, (unsigned)size);
    return EIO;
}

int rec_get(struct inode_table *t, DB_TXN *txn, uint64_t ino, struct inode_rec *r,
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
    return rec_decode(ino, vb, v.size, r);
}

int rec_get_many(struct inode_table *t, const uint64_t *inos, size_t n, struct inode_rec *out,
                 int *got)
{
    uint8_t kb[8], vb[IREC_MAX];
    DBT k = {0}, v = {0};
    DBC *c;
    int r = db_errno(t->inodes->cursor(t->inodes, NULL, &c, DB_READ_COMMITTED));
    if (r)
        return r;
    k.data = kb;
    k.ulen = sizeof(kb);
    k.flags = DB_DBT_USERMEM;
    v.data = vb;
    v.ulen = sizeof(vb);
    v.flags = DB_DBT_USERMEM;
    bool placed = false; /* the cursor stands on inode inos[i - 1] */
    for (size_t i = 0; i < n; i++) {
        int rc = DB_NOTFOUND;
        if (placed && inos[i] == inos[i - 1] + 1) {
            /* A listing numbers a page's entries in name order: usually the next record. */
            rc = c->get(c, &k, &v, DB_NEXT);
            if (rc == 0 && (k.size != 8 || get_be64(kb) != inos[i]))
                rc = DB_NOTFOUND;
        }
        if (rc != 0) {
            put_be64(kb, inos[i]);
            k.size = sizeof(kb);
            rc = c->get(c, &k, &v, DB_SET);
        }
        placed = rc == 0;
        got[i] = rc ? db_errno(rc) : rec_decode(inos[i], vb, v.size, &out[i]);
        if (is_deadlock(got[i])) {
            /* The rest one by one (rec_get's callers retry a lost deadlock as they do). */
            c->close(c);
            for (size_t j = i; j < n; j++)
                got[j] = rec_get(t, NULL, inos[j], &out[j], 0);
            return 0;
        }
    }
    c->close(c);
    return 0;
}

int rec_put(struct inode_table *t, DB_TXN *txn, struct inode_rec *r)
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

int rec_del(struct inode_table *t, DB_TXN *txn, uint64_t ino)
{
    uint8_t kb[8];
    DBT k = {0};
    put_be64(kb, ino);
    k.data = kb;
    k.size = sizeof(kb);
    int r = db_errno(t->inodes->del(t->inodes, txn, &k, 0));
    return r == ENOENT ? 0 : r;
}

size_t dkey_make(uint8_t *buf, uint64_t parent, const char *name, size_t len)
{
    put_be64(buf, parent);
    memcpy(buf + 8, name, len);
    return 8 + len;
}

int dirent_get(struct inode_table *t, DB_TXN *txn, uint64_t parent, const char *name,
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

int dirent_put(struct inode_table *t, DB_TXN *txn, uint64_t parent, const char *name,
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

int dirent_del(struct inode_table *t, DB_TXN *txn, uint64_t parent, const char *name)
{
    uint8_t kb[DKEY_MAX];
    DBT k = {0};
    k.data = kb;
    k.size = (uint32_t)dkey_make(kb, parent, name, strlen(name));
    int r = db_errno(t->dirents->del(t->dirents, txn, &k, 0));
    return r == ENOENT ? 0 : r;
}

int misc_get(struct inode_table *t, DB_TXN *txn, const void *key, size_t klen,
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

int misc_put(struct inode_table *t, DB_TXN *txn, const void *key, size_t klen,
             const void *val, size_t vlen)
{
    DBT k = {0}, v = {0};
    k.data = (void *)key;
    k.size = (uint32_t)klen;
    v.data = (void *)val;
    v.size = (uint32_t)vlen;
    return db_errno(t->misc->put(t->misc, txn, &k, &v, 0));
}

void orphan_key(uint8_t kb[9], uint64_t ino)
{
    kb[0] = 'O';
    put_be64(kb + 1, ino);
}

void rec_to_attr(const struct inode_rec *r, struct inode_attr *a)
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
    a->local = (r->h.flags & IREC_LOCAL) != 0;
    a->staged = (r->h.flags & IREC_STAGED) != 0;
    a->in_bucket = !(r->h.flags & IREC_NEW);
    a->moving = (r->h.flags & IREC_MOVE_ANY) != 0;
}

/* A directory's set of entries changed: mtime, ctime and change move. */
void rec_touch(struct inode_rec *r, int64_t now)
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
int ino_alloc(struct inode_table *t, uint64_t *ino, uint32_t *gen)
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
int remove_orphans(struct inode_table *t)
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
