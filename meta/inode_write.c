/*
 * inode_write.c - changes made through the server: new entries, removals,
 * renames, attribute changes, and the write-back records the uploader
 * works from (the rules are in inode.h, "the write path").
 *
 * Order of effects, so that a crash at any point loses nothing a client
 * was told succeeded and leaves no object the table does not account for:
 *   - create: one synchronous transaction (record, dirent, "W" record); the
 *     object follows with the upload.
 *   - remove of something in the bucket: DeleteObject first, then the
 *     table (synchronously).  A crash in between leaves the table naming
 *     an object that is gone: the next HEAD or listing drops it, as for a
 *     deletion made by another tool.
 *   - rename of something in the bucket: the table first (one synchronous
 *     transaction that also records where the bytes still are: IREC_MOVING),
 *     then the object(s) follow: copied to the new key, the table told, the
 *     old object deleted (inode_move_object).  A file's object moves before
 *     the answer, a directory's files after it ("background moves" below).
 *     A crash rolls forward: the records say what is left and the uploader
 *     finishes it; reads find the bytes at the old key meanwhile.  Never a
 *     name without its data, and a replaced target keeps its bytes until
 *     the table says it is replaced.
 *   - changes of attributes and data: a transaction (synchronous when the
 *     caller asks: FILE_SYNC, SETATTR) bumping the "W" record's version.
 *
 * Uploads and namespace changes of the same inode exclude each other with
 * the busy list (t->busy, under busy_mu): an upload runs only while no
 * namespace change holds the inode, and a remove or rename waits for a
 * running upload (which it asks to stop early: inode_upload_wanted).
 *
 * Threads: safe from many threads; busy_mu is never held across a store
 * call or a transaction.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "meta/inode_internal.h"

/* A transaction found the name naming another inode than looked up: look again. */
#define RACED ERESTART

static int moves_clear(struct inode_table *t, const struct meta_export *e, const char *k1,
                       const char *k2, bool tree);

/* ---- small records in misc.db -------------------------------------------------- */

static void ino_key(uint8_t kb[9], char tag, uint64_t ino)
{
    kb[0] = (uint8_t)tag;
    put_be64(kb + 1, ino);
}

static int misc_del(struct inode_table *t, DB_TXN *txn, const void *key, size_t klen)
{
    DBT k = {0};
    k.data = (void *)key;
    k.size = (uint32_t)klen;
    int r = db_errno(t->misc->del(t->misc, txn, &k, 0));
    return r == ENOENT ? 0 : r;
}

/*
 * Call fn for each record of misc.db tagged `tag` whose key is tag + an
 * inode number >= from, in order.  Keys and values of any size
 * (DB_DBT_REALLOC): a record of another length, corrupted, reaches fn,
 * which skips it, and never ends the scan before the intact records after
 * it.  fn returns 0 to go on, 1 to stop, or an error (returned).
 */
typedef int (*misc_scan_fn)(void *arg, const uint8_t *key, size_t klen, const void *val,
                            size_t vlen);

static int misc_scan(struct inode_table *t, char tag, uint64_t from, misc_scan_fn fn, void *arg)
{
    DBC *c;
    DBT k = {0}, v = {0};
    int r = db_errno(t->misc->cursor(t->misc, NULL, &c, DB_READ_COMMITTED));
    if (r)
        return public_errno(r);
    if (!(k.data = malloc(9))) {
        c->close(c);
        return ENOMEM;
    }
    ino_key(k.data, tag, from);
    k.size = 9;
    k.flags = DB_DBT_REALLOC;
    v.flags = DB_DBT_REALLOC;
    for (uint32_t op = DB_SET_RANGE;; op = DB_NEXT) {
        r = db_errno(c->get(c, &k, &v, op));
        const uint8_t *key = k.data;
        if (r == ENOENT || (r == 0 && (k.size < 1 || key[0] != (uint8_t)tag))) {
            r = 0;
            break;
        }
        if (r || (r = fn(arg, key, k.size, v.data, v.size)) != 0)
            break;
    }
    c->close(c);
    free(k.data);
    free(v.data);
    return r == 1 ? 0 : public_errno(r);
}

/* ---- decoding the records read back (contracts in inode_internal.h) ------------- */

int wbrec_decode(const void *v, size_t len, struct wbrec *out)
{
    if (len != sizeof(*out) && len != WBREC_V1_SIZE)
        return EIO;
    memset(out, 0, sizeof(*out)); /* the first layout ends before base_size */
    memcpy(out, v, len);
    return 0;
}

int mprec_decode(const void *v, size_t len, struct inode_mp *out)
{
    if (len != sizeof(*out))
        return EIO;
    memcpy(out, v, len);
    out->upload_id[sizeof(out->upload_id) - 1] = '\0';
    out->key[sizeof(out->key) - 1] = '\0';
    return 0;
}

/* The NUL-ended string at p, of at most OBJ_KEY_MAX bytes before p + left: its length, or -1. */
static long rj_string(const char *p, size_t left)
{
    const char *nul = memchr(p, '\0', left < OBJ_KEY_MAX + 1 ? left : OBJ_KEY_MAX + 1);
    return nul ? nul - p : -1;
}

int rjrec_decode(const void *v, size_t len, struct rjview *out)
{
    if (len < sizeof(out->h) + 2)
        return EIO;
    memcpy(&out->h, v, sizeof(out->h));
    if (out->h.phase < 1 || out->h.phase > 3 || out->h.nkeys > RJREC_KEYS_MAX)
        return EIO; /* a phase of neither would delete objects no rename copied */
    const char *p = (const char *)v + sizeof(out->h);
    size_t left = len - sizeof(out->h);
    long ol = rj_string(p, left);
    if (ol < 0)
        return EIO;
    long nl = rj_string(p + ol + 1, left - (size_t)ol - 1);
    if (nl < 0 || (size_t)(ol + nl + 2) != left)
        return EIO;
    out->oldp = p;
    out->newp = p + ol + 1;
    return 0;
}

int rjkey_decode(const void *v, size_t len, char *key)
{
    if (len == 0 || len > OBJ_KEY_MAX || memchr(v, '\0', len))
        return EIO;
    memcpy(key, v, len);
    key[len] = '\0';
    return 0;
}

static int wb_get(struct inode_table *t, DB_TXN *txn, uint64_t ino, struct wbrec *w,
                  uint32_t flags)
{
    uint8_t kb[9], v[sizeof(*w) + 1]; /* one byte more: a longer record is no "W" */
    size_t len = 0;
    ino_key(kb, 'W', ino);
    int r = misc_get(t, txn, kb, sizeof(kb), v, sizeof(v), &len, flags);
    if (r == EOVERFLOW)
        return EIO;
    return r ? r : wbrec_decode(v, len, w);
}

/*
 * A local change of r at now: r becomes LOCAL, its "W" record's version
 * moves.  low: the lowest byte offset the change touched (UINT64_MAX: no
 * bytes); c (may be NULL): a change that says where the staged bytes came from.
 */
static int wb_touch_at(struct inode_table *t, DB_TXN *txn, struct inode_rec *r, int64_t now,
                       uint64_t low, const struct inode_change *c)
{
    struct wbrec w;
    uint8_t kb[9];
    int rc = wb_get(t, txn, r->ino, &w, DB_RMW);
    if (rc == ENOENT) {
        memset(&w, 0, sizeof(w));
        w.first_ns = now;
        w.export_id = r->h.export_id;
    } else if (rc) {
        return rc;
    }
    w.dver++;
    w.last_ns = now;
    w.flags &= ~WB_MOVE_ONLY; /* changed here: the table's attributes go with the upload */
    if (c && c->set_base) {
        w.base_size = c->base_size;
        w.clean_below = c->base_size;
    }
    if (low < w.clean_below)
        w.clean_below = low;
    r->h.flags |= IREC_LOCAL;
    ino_key(kb, 'W', r->ino);
    return misc_put(t, txn, kb, sizeof(kb), &w, sizeof(w));
}

static int wb_touch(struct inode_table *t, DB_TXN *txn, struct inode_rec *r, int64_t now)
{
    return wb_touch_at(t, txn, r, now, 0, NULL);
}

/* Forget what the write path kept of ino (it is gone). */
static int wb_forget(struct inode_table *t, DB_TXN *txn, uint64_t ino)
{
    uint8_t kb[9];
    int r;
    ino_key(kb, 'W', ino);
    if ((r = misc_del(t, txn, kb, sizeof(kb))))
        return r;
    ino_key(kb, 'X', ino);
    return misc_del(t, txn, kb, sizeof(kb));
}

static size_t hide_key(uint8_t *kb, const char *key)
{
    size_t len = strlen(key);
    kb[0] = 'K';
    memcpy(kb + 1, key, len);
    return len + 1;
}

bool silly_hidden(struct inode_table *t, DB_TXN *txn, const char *key)
{
    uint8_t kb[1 + OBJ_KEY_MAX];
    uint64_t ino;
    size_t len = 0;
    return misc_get(t, txn, kb, hide_key(kb, key), &ino, sizeof(ino), &len, 0) == 0;
}

/* Who owns hidden object key (its "K" record): ENOENT when nobody. */
static int hidden_owner(struct inode_table *t, DB_TXN *txn, const char *key, uint64_t *ino,
                        uint32_t flags)
{
    uint8_t kb[1 + OBJ_KEY_MAX];
    size_t len = 0;
    int r = misc_get(t, txn, kb, hide_key(kb, key), ino, sizeof(*ino), &len, flags);
    return r == 0 && len != sizeof(*ino) ? EIO : r;
}

struct hidden_arg {
    const char *key;
    uint64_t ino;
};

/* Drop the "K" record of key if it is still ino's. */
static int hidden_drop_fn(struct inode_table *t, DB_TXN *txn, void *arg)
{
    const struct hidden_arg *a = arg;
    uint8_t kb[1 + OBJ_KEY_MAX];
    uint64_t owner;
    int r = hidden_owner(t, txn, a->key, &owner, DB_RMW);
    if (r == ENOENT || (r == 0 && owner != a->ino))
        return 0;
    return r ? r : misc_del(t, txn, kb, hide_key(kb, a->key));
}

int move_src(struct inode_table *t, DB_TXN *txn, uint64_t ino, char *key, uint32_t flags)
{
    uint8_t kb[9], v[OBJ_KEY_MAX + 1];
    size_t len = 0;
    ino_key(kb, 'm', ino);
    int r = misc_get(t, txn, kb, sizeof(kb), v, sizeof(v), &len, flags);
    if (r == EOVERFLOW)
        return EIO;
    return r ? r : rjkey_decode(v, len, key);
}

int inode_hidden_by(struct inode_table *t, uint64_t dir, const char *name, uint64_t *ino)
{
    struct inode_rec *d = malloc(sizeof(*d));
    uint8_t kb[1 + OBJ_KEY_MAX];
    size_t len = 0;
    if (!d)
        return ENOMEM;
    int r = public_errno(rec_get(t, NULL, dir, d, 0));
    size_t dl = r == 0 ? strlen(d->key) : 0, nl = strlen(name);
    if (r == 0 && 1 + dl + nl > sizeof(kb))
        r = ENOENT;
    if (r == 0) {
        kb[0] = 'K';
        memcpy(kb + 1, d->key, dl);
        memcpy(kb + 1 + dl, name, nl);
        r = public_errno(misc_get(t, NULL, kb, 1 + dl + nl, ino, sizeof(*ino), &len, 0));
        if (r == 0 && len != sizeof(*ino))
            r = ENOENT;
    }
    /* Only a silly rename's: a moving file's object leaves before anything takes its key. */
    if (r == 0 && (r = public_errno(rec_get(t, NULL, *ino, d, 0))) == 0 &&
        !(d->h.flags & IREC_SILLY))
        r = ENOENT;
    free(d);
    return r;
}

static bool is_silly_name(const char *name)
{
    return strncmp(name, ".nfs", 4) == 0;
}

static void set_now(int64_t *sec, uint32_t *nsec, int64_t now)
{
    *sec = now / NS;
    *nsec = (uint32_t)(now % NS);
}

/* Is the record's object (or a directory's marker or prefix) in the bucket? */
static bool rec_in_bucket(const struct inode_rec *r)
{
    return !(r->h.flags & IREC_NEW);
}

/* ---- the busy list ----------------------------------------------------------------- */

static struct ino_busy *busy_find(struct inode_table *t, uint64_t ino)
{
    for (struct ino_busy *b = t->busy; b; b = b->next)
        if (b->ino == ino)
            return b;
    return NULL;
}

static struct ino_busy *busy_get(struct inode_table *t, uint64_t ino)
{
    struct ino_busy *b = busy_find(t, ino);
    if (b)
        return b;
    b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->ino = ino;
    b->next = t->busy;
    t->busy = b;
    return b;
}

static void busy_drop(struct inode_table *t, struct ino_busy *b)
{
    if (b->upload || b->holds)
        return;
    for (struct ino_busy **p = &t->busy; *p; p = &(*p)->next) {
        if (*p == b) {
            *p = b->next;
            free(b);
            return;
        }
    }
}

/* Hold ino against uploads (waiting for one running).  ENOMEM only. */
static int hold(struct inode_table *t, uint64_t ino)
{
    if (!ino)
        return 0;
    pthread_mutex_lock(&t->busy_mu);
    struct ino_busy *b = busy_get(t, ino);
    if (!b) {
        pthread_mutex_unlock(&t->busy_mu);
        return ENOMEM;
    }
    b->holds++;
    while (b->upload) {
        b->wanted = true;
        pthread_cond_wait(&t->busy_cv, &t->busy_mu);
    }
    pthread_mutex_unlock(&t->busy_mu);
    return 0;
}

static void unhold(struct inode_table *t, uint64_t ino)
{
    if (!ino)
        return;
    pthread_mutex_lock(&t->busy_mu);
    struct ino_busy *b = busy_find(t, ino);
    if (b) {
        b->holds--;
        busy_drop(t, b);
    }
    pthread_mutex_unlock(&t->busy_mu);
}

static size_t gone_slot(uint64_t dir, const char *name)
{
    uint64_t h = 1469598103934665603ULL ^ dir; /* FNV-1a over the name */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return (size_t)(h % GONE_SLOTS);
}

void gone_note(struct inode_table *t, uint64_t dir, const char *name)
{
    atomic_store(&t->gone_at[gone_slot(dir, name)], now_ns());
}

bool gone_since(struct inode_table *t, uint64_t dir, const char *name, int64_t since)
{
    return atomic_load(&t->gone_at[gone_slot(dir, name)]) >= since;
}

bool inode_held(struct inode_table *t, uint64_t ino)
{
    pthread_mutex_lock(&t->busy_mu);
    struct ino_busy *b = busy_find(t, ino);
    bool held = b && b->holds;
    pthread_mutex_unlock(&t->busy_mu);
    return held;
}

int inode_upload_begin(struct inode_table *t, uint64_t ino)
{
    int r = 0;
    pthread_mutex_lock(&t->busy_mu);
    struct ino_busy *b = busy_get(t, ino);
    if (!b)
        r = ENOMEM;
    else if (b->holds || b->upload)
        r = EBUSY;
    else
        b->upload = true;
    pthread_mutex_unlock(&t->busy_mu);
    return r;
}

void inode_upload_end(struct inode_table *t, uint64_t ino)
{
    pthread_mutex_lock(&t->busy_mu);
    struct ino_busy *b = busy_find(t, ino);
    if (b) {
        b->upload = false;
        b->wanted = false;
        busy_drop(t, b);
    }
    pthread_cond_broadcast(&t->busy_cv);
    pthread_mutex_unlock(&t->busy_mu);
}

bool inode_upload_wanted(struct inode_table *t, uint64_t ino)
{
    pthread_mutex_lock(&t->busy_mu);
    struct ino_busy *b = busy_find(t, ino);
    bool w = b && b->wanted;
    pthread_mutex_unlock(&t->busy_mu);
    return w;
}

/* ---- create ------------------------------------------------------------------------ */

struct create_arg {
    const struct meta_export *e;
    uint64_t dir;
    const char *name;
    uint32_t mode, uid, gid;
    uint64_t size;
    enum inode_how how;
    uint64_t verf;
    int64_t now;
    bool existed;
    struct inode_rec d, c;
    struct inode_attr before;
};

static int create_fn(struct inode_table *t, DB_TXN *txn, void *arg)
{
    struct create_arg *a = arg;
    struct inode_rec *d = &a->d, *c = &a->c;
    struct dval dv;
    uint8_t kb[1 + OBJ_KEY_MAX];
    int r;

    a->existed = false;
    if ((r = rec_get(t, txn, a->dir, d, DB_RMW)))
        return r == ENOENT ? ESTALE : r;
    if (d->h.export_id != a->e->id)
        return ESTALE;
    if (!S_ISDIR(d->h.mode))
        return ENOTDIR;
    rec_to_attr(d, &a->before);
    r = dirent_get(t, txn, a->dir, a->name, &dv, DB_RMW);
    if (r == 0) {
        if ((r = rec_get(t, txn, dv.ino, c, 0)))
            return r == ENOENT ? EIO : r;
        if (a->how == INODE_EXCLUSIVE) {
            uint64_t v = 0;
            size_t len = 0;
            ino_key(kb, 'X', c->ino);
            r = misc_get(t, txn, kb, 9, &v, sizeof(v), &len, 0);
            if (r == 0 && len == sizeof(v) && v == a->verf && S_ISREG(c->h.mode)) {
                a->existed = true;
                return 0;
            }
            return r && r != ENOENT ? r : EEXIST;
        }
        if (a->how == INODE_GUARDED || !S_ISREG(a->mode) || !S_ISREG(c->h.mode))
            return EEXIST;
        a->existed = true;
        return 0;
    }
    if (r != ENOENT)
        return r;

    bool isdir = S_ISDIR(a->mode);
    size_t dlen = strlen(d->key), nlen = strlen(a->name);
    if (dlen + nlen + isdir > OBJ_KEY_MAX)
        return ENAMETOOLONG;
    memset(c, 0, sizeof(*c));
    if ((r = ino_alloc(t, &c->ino, &c->h.gen)))
        return r;
    c->h.parent = a->dir;
    c->h.export_id = a->e->id;
    c->h.mode = a->mode;
    c->h.uid = a->uid;
    c->h.gid = a->gid;
    c->h.nlink = isdir ? 2 : 1;
    c->h.size = isdir ? DIR_SIZE : a->size;
    set_now(&c->h.mtime_sec, &c->h.mtime_nsec, a->now);
    c->h.ctime_sec = c->h.mtime_sec;
    c->h.ctime_nsec = c->h.mtime_nsec;
    c->h.change = 1;
    c->h.validated_at = a->now;
    c->h.flags = IREC_NEW | (isdir ? 0 : IREC_STAGED);
    if (isdir)
        c->h.listed_at = a->now; /* nothing under it but what is made here */
    memcpy(c->name, a->name, nlen + 1);
    memcpy(c->key, d->key, dlen);
    memcpy(c->key + dlen, a->name, nlen);
    if (isdir)
        c->key[dlen + nlen++] = '/';
    c->key[dlen + nlen] = '\0';
    /*
     * The record before its write-back record: the lock order of every
     * write-path transaction is an inode's page, then the "W" record's
     * (change_fn, a WRITE to a file just made, takes them so; the other
     * order deadlocked with it under concurrent creates).
     */
    c->h.flags |= IREC_LOCAL;
    if ((r = rec_put(t, txn, c)) || (r = wb_touch(t, txn, c, a->now)))
        return r;
    dv.ino = c->ino;
    dv.epoch = d->h.epoch;
    if ((r = dirent_put(t, txn, a->dir, a->name, &dv)))
        return r;
    if (a->how == INODE_EXCLUSIVE) {
        ino_key(kb, 'X', c->ino);
        if ((r = misc_put(t, txn, kb, 9, &a->verf, sizeof(a->verf))))
            return r;
    }
    /* An object a silly rename hid under this key is the new file's to replace now. */
    if ((r = misc_del(t, txn, kb, hide_key(kb, c->key))))
        return r;
    rec_touch(d, a->now);
    if (isdir)
        d->h.nlink++;
    return rec_put(t, txn, d);
}

int inode_create(struct inode_table *t, const struct meta_export *e, uint64_t dir,
                 const char *name, uint32_t mode, uint32_t uid, uint32_t gid, uint64_t size,
                 enum inode_how how, uint64_t verf, struct inode_attr *out, bool *existed,
                 struct inode_attr *dir_before, struct inode_attr *dir_after)
{
    struct inode_attr found;
    int rc;

    *existed = false;
    if ((rc = name_check_new(e, name)))
        return rc;
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return EEXIST;
    if (!S_ISREG(mode) && !S_ISDIR(mode) && !S_ISLNK(mode))
        return EINVAL;
    /* The directory is listed (and the name looked for in the bucket) first. */
    rc = inode_lookup(t, e, dir, name, &found, NULL);
    if (rc && rc != ENOENT)
        return rc;
    if (atomic_load(&t->n_moves) > 0 && rc == ENOENT) {
        /* Nothing is made where the objects of a moved directory still wait to leave. */
        struct inode_rec *d = malloc(sizeof(*d));
        char *key = malloc(OBJ_KEY_MAX + INODE_NAME_MAX + 2);
        rc = d && key ? rec_get_export(t, e, dir, d) : ENOMEM;
        if (rc == 0) {
            snprintf(key, OBJ_KEY_MAX + INODE_NAME_MAX + 2, "%s%s%s", d->key, name, S_ISDIR(mode) ? "/" : "");
            rc = moves_clear(t, e, key, NULL, false);
        }
        free(d);
        free(key);
        if (rc)
            return rc;
    }
    struct create_arg *a = calloc(1, sizeof(*a));
    if (!a)
        return ENOMEM;
    *a = (struct create_arg){.e = e, .dir = dir, .name = name, .mode = mode, .uid = uid,
                             .gid = gid, .size = size, .how = how, .verf = verf,
                             .now = now_ns()};
    rc = txn_run(t, create_fn, a, true);
    if (rc == 0) {
        *existed = a->existed;
        rec_to_attr(&a->c, out);
        if (dir_before)
            *dir_before = a->before;
        if (dir_after)
            rec_to_attr(&a->d, dir_after);
        if (!a->existed)
            atomic_fetch_add(&t->n_inodes, 1);
    }
    free(a);
    return rc;
}

/* ---- remove ------------------------------------------------------------------------ */

/* Does directory r have an entry in the table, or an object under it in the bucket? */
static int dir_has_entries(struct inode_table *t, const struct meta_export *e,
                           const struct inode_rec *r, DB_TXN *txn)
{
    uint8_t kb[DKEY_MAX];
    struct dval dv;
    DBC *c;
    DBT k = {0}, v = {0};
    int rc = db_errno(t->dirents->cursor(t->dirents, txn, &c, 0));
    if (rc)
        return rc;
    k.data = kb;
    k.size = (uint32_t)dkey_make(kb, r->ino, "", 0);
    k.ulen = sizeof(kb);
    k.flags = DB_DBT_USERMEM;
    v.data = &dv;
    v.ulen = sizeof(dv);
    v.flags = DB_DBT_USERMEM;
    rc = db_errno(c->get(c, &k, &v, DB_SET_RANGE));
    c->close(c);
    if (rc == 0 && k.size >= 8 && get_be64(kb) == r->ino)
        return ENOTEMPTY;
    return rc == ENOENT || rc == 0 ? 0 : rc;
}

/*
 * Found one (the listing asks for 2 keys: it ends by itself).  Not stopped
 * with an error: a store logs a listing its callback stopped as failed.
 */
static int count_cb(void *arg, const struct obj_entry *oe)
{
    const char **own = arg;
    if (!oe->is_prefix && strcmp(oe->key, own[0]) == 0)
        return 0; /* the directory's own marker */
    own[1] = "";
    return 0;
}

/* Objects under directory key `key` in the bucket (beyond its marker)?  ENOTEMPTY if so. */
static int bucket_dir_empty(const struct meta_export *e, const char *key)
{
    const char *arg[2] = {key, NULL};
    char *tok = calloc(1, OBJ_TOKEN_MAX);
    if (!tok)
        return ENOMEM;
    int r = obj_list(e->store, e->bucket, key, "/", NULL, 2, count_cb, arg, tok);
    free(tok);
    if (r == ENOTEMPTY || arg[1])
        return ENOTEMPTY;
    return r == ENOENT ? 0 : r;
}

struct remove_arg {
    const struct meta_export *e;
    uint64_t dir, ino;
    const char *name;
    bool rmdir;
    int64_t now;
    struct inode_rec d, c;
    struct inode_attr before;
    char src[OBJ_KEY_MAX + 1]; /* a moving file's object (IREC_MOVING) */
};

static int remove_fn(struct inode_table *t, DB_TXN *txn, void *arg)
{
    struct remove_arg *a = arg;
    struct dval dv;
    int r;
    if ((r = rec_get(t, txn, a->dir, &a->d, DB_RMW)))
        return r == ENOENT ? ESTALE : r;
    rec_to_attr(&a->d, &a->before);
    if ((r = dirent_get(t, txn, a->dir, a->name, &dv, DB_RMW)))
        return r;
    if (dv.ino != a->ino)
        return RACED;
    if ((r = rec_get(t, txn, a->ino, &a->c, DB_RMW)))
        return r == ENOENT ? RACED : r;
    if (a->rmdir && (r = dir_has_entries(t, a->e, &a->c, txn)))
        return r;
    if ((r = dirent_del(t, txn, a->dir, a->name)) || (r = rec_del(t, txn, a->ino)) ||
        (r = wb_forget(t, txn, a->ino)))
        return r;
    if (a->c.h.flags & IREC_SILLY) {
        uint8_t kb[1 + OBJ_KEY_MAX];
        if ((r = misc_del(t, txn, kb, hide_key(kb, a->c.key))))
            return r;
    }
    if (a->c.h.flags & IREC_MOVE_ANY) {
        /* Its object at the old key was deleted with the one at its key. */
        uint8_t kb[1 + OBJ_KEY_MAX];
        char src[OBJ_KEY_MAX + 1];
        r = move_src(t, txn, a->ino, src, DB_RMW);
        if (r == 0 && (r = misc_del(t, txn, kb, hide_key(kb, src))) == 0) {
            ino_key(kb, 'm', a->ino);
            r = misc_del(t, txn, kb, 9);
        }
        if (r && r != ENOENT)
            return r;
    }
    rec_touch(&a->d, a->now);
    if (a->rmdir && a->d.h.nlink > 2)
        a->d.h.nlink--;
    return rec_put(t, txn, &a->d);
}

int inode_remove(struct inode_table *t, const struct meta_export *e, uint64_t dir,
                 const char *name, bool rmdir, struct inode_attr *gone,
                 struct inode_attr *dir_before, struct inode_attr *dir_after)
{
    struct inode_attr found;
    int rc;
    if ((rc = name_check(name)))
        return rc;
    if (strcmp(name, ".") == 0)
        return EINVAL;
    if (strcmp(name, "..") == 0)
        return ENOTEMPTY;
    struct remove_arg *a = calloc(1, sizeof(*a));
    if (!a)
        return ENOMEM;
    bool deleted = false; /* this call deleted the object */
    for (int attempt = 0;; attempt++) {
        if ((rc = inode_lookup(t, e, dir, name, &found, NULL)))
            break;
        if (rmdir && !S_ISDIR(found.mode)) {
            rc = ENOTDIR;
            break;
        }
        if (!rmdir && S_ISDIR(found.mode)) {
            rc = EISDIR;
            break;
        }
        if ((rc = hold(t, found.ino)))
            break;
        /* The record as it is now that no upload runs (one may have just put its object). */
        rc = public_errno(rec_get(t, NULL, found.ino, &a->c, 0));
        if (rc == ENOENT)
            rc = RACED;
        if (rc == 0 && rmdir) {
            rc = public_errno(dir_has_entries(t, e, &a->c, NULL));
            if (rc == 0 && rec_in_bucket(&a->c))
                rc = bucket_dir_empty(e, a->c.key);
        }
        /* A silly-renamed file's object is deleted only while it is still the one hidden. */
        bool del = rec_in_bucket(&a->c) &&
                   (!(a->c.h.flags & IREC_SILLY) || silly_hidden(t, NULL, a->c.key));
        if (rc == 0 && del) {
            rc = obj_del(e->store, e->bucket, a->c.key);
            deleted = rc == 0;
        }
        /* A file a directory rename is moving: its object is still at the old key. */
        if (rc == 0 && (a->c.h.flags & IREC_MOVE_ANY)) {
            int mr = public_errno(move_src(t, NULL, found.ino, a->src, 0));
            if (mr == 0)
                rc = obj_del(e->store, e->bucket, a->src);
            else if (mr != ENOENT)
                rc = mr;
        }
        if (rc == 0) {
            a->e = e;
            a->dir = dir;
            a->ino = found.ino;
            a->name = name;
            a->rmdir = rmdir;
            a->now = now_ns();
            rc = txn_run(t, remove_fn, a, true);
        }
        unhold(t, found.ino);
        if (rc != RACED || attempt >= 3)
            break;
    }
    if (rc == RACED)
        rc = ESTALE;
    /*
     * The entry is gone after this call deleted its object: a listing of
     * the (stale) directory, queued by the lookup above, saw the object
     * gone and swept the entry first.  The remove is done all the same.
     */
    bool swept = rc == ENOENT && deleted;
    if (swept)
        rc = 0;
    if (rc == 0) {
        gone_note(t, dir, name);
        rec_to_attr(&a->c, gone);
        if (dir_before)
            *dir_before = a->before;
        if (dir_after)
            rec_to_attr(&a->d, dir_after);
        if (!swept)
            atomic_fetch_sub(&t->n_inodes, 1); /* else the sweep counted it */
    }
    free(a);
    return rc;
}

/* ---- rename ------------------------------------------------------------------------ */

/* The keys of the objects under prefix (recursive), for a directory rename. */
struct keylist {
    char **v;
    size_t n, cap, max;
};

static int keylist_cb(void *arg, const struct obj_entry *oe)
{
    struct keylist *l = arg;
    if (oe->is_prefix)
        return 0;
    if (l->n >= l->max)
        return EFBIG;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(oe->key)))
        return ENOMEM;
    l->n++;
    return 0;
}

static void keylist_free(struct keylist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

static int keylist_fill(const struct meta_export *e, const char *prefix, struct keylist *l)
{
    char *tok = calloc(1, OBJ_TOKEN_MAX), *next = calloc(1, OBJ_TOKEN_MAX);
    int r = tok && next ? 0 : ENOMEM;
    while (r == 0) {
        next[0] = '\0';
        r = obj_list(e->store, e->bucket, prefix, NULL, tok, 1000, keylist_cb, l, next);
        if (r || !next[0])
            break;
        if (strcmp(next, tok) == 0) {
            r = EIO;
            break;
        }
        memcpy(tok, next, OBJ_TOKEN_MAX);
    }
    free(tok);
    free(next);
    return r == ENOENT ? 0 : r;
}

/* newkey = to + (key without its first flen bytes); ENAMETOOLONG. */
static int key_rebase(char *out, const char *key, size_t flen, const char *to)
{
    size_t tlen = strlen(to), rest = strlen(key) - flen;
    if (tlen + rest > OBJ_KEY_MAX)
        return ENAMETOOLONG;
    memcpy(out, to, tlen);
    memcpy(out + tlen, key + flen, rest + 1);
    return 0;
}

/*
 * The rename journal.  A rename of something in the bucket copies objects
 * to the new name, commits the table, then deletes the old objects; a crash
 * in the middle must not leave both trees, or half of one, in the bucket.
 * Before the first copy, a synchronous transaction records the rename
 * ("J" + id -> struct rjrec + old prefix + NUL + new prefix + NUL) and the
 * keys it will copy ("j" + id + index -> old key); the table's rename
 * commits phase 2 in the same transaction as the table change.  At the
 * next start (inode_journal_replay) a phase 1 rename is rolled back (the
 * copies are deleted: the old names still rule) and a phase 2 one is
 * rolled forward (the old objects are deleted).  A failure of a copy rolls
 * back at once.  The id is the renamed inode (held: one rename at a time).
 */
static size_t jkey(uint8_t *kb, uint64_t id, uint32_t i)
{
    kb[0] = 'j';
    put_be64(kb + 1, id);
    kb[9] = (uint8_t)(i >> 24);
    kb[10] = (uint8_t)(i >> 16);
    kb[11] = (uint8_t)(i >> 8);
    kb[12] = (uint8_t)i;
    return 13;
}

struct journal_arg {
    uint64_t id;
    uint32_t export_id, phase;
    const char *oldp, *newp;
    char *const *keys;
    size_t n;
};

static int journal_put(struct inode_table *t, DB_TXN *txn, const struct journal_arg *a)
{
    size_t ol = strlen(a->oldp), nl = strlen(a->newp);
    size_t len = sizeof(struct rjrec) + ol + nl + 2;
    uint8_t *v = malloc(len), kb[9];
    if (!v)
        return ENOMEM;
    struct rjrec h = {.export_id = a->export_id, .phase = a->phase, .nkeys = (uint32_t)a->n};
    memcpy(v, &h, sizeof(h));
    memcpy(v + sizeof(h), a->oldp, ol + 1);
    memcpy(v + sizeof(h) + ol + 1, a->newp, nl + 1);
    ino_key(kb, 'J', a->id);
    int r = misc_put(t, txn, kb, sizeof(kb), v, len);
    free(v);
    return r;
}

static int journal_begin_fn(struct inode_table *t, DB_TXN *txn, void *arg)
{
    const struct journal_arg *a = arg;
    uint8_t kb[13];
    int r = journal_put(t, txn, a);
    for (size_t i = 0; r == 0 && i < a->n; i++)
        r = misc_put(t, txn, kb, jkey(kb, a->id, (uint32_t)i), a->keys[i], strlen(a->keys[i]));
    return r;
}

static int journal_end_fn(struct inode_table *t, DB_TXN *txn, void *arg)
{
    const struct journal_arg *a = arg;
    uint8_t kb[13];
    int r = 0;
    ino_key(kb, 'J', a->id);
    r = misc_del(t, txn, kb, 9);
    for (size_t i = 0; r == 0 && i < a->n; i++)
        r = misc_del(t, txn, kb, jkey(kb, a->id, (uint32_t)i));
    return r;
}

static int prefix_cmp(const void *a, const void *b)
{
    size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);
    return la < lb ? 1 : la > lb ? -1 : strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * The directory markers of a tree: every "dir/" from base down that holds
 * one of keys, deepest first.  A store that keeps markers apart (S3) may
 * not have them all, and one that is folders (the dir store) lists a
 * folder's marker only while it is empty: a rename copies and deletes them
 * explicitly (an absent marker is no error either way).
 */
static int markers_of(char *const *keys, size_t n, const char *base, size_t blen,
                      struct keylist *dirs)
{
    int r = 0;
    dirs->max = SIZE_MAX;
    for (size_t i = 0; i < n && r == 0; i++) {
        const char *k = keys[i];
        if (strncmp(k, base, blen) != 0)
            continue;
        for (const char *p = k + blen; (p = strchr(p, '/')) != NULL && r == 0; p++) {
            char d[OBJ_KEY_MAX + 1];
            size_t dl = (size_t)(p - k) + 1;
            memcpy(d, k, dl);
            d[dl] = '\0';
            bool seen = false;
            for (size_t j = 0; j < dirs->n && !seen; j++)
                seen = strcmp(dirs->v[j], d) == 0;
            if (!seen)
                r = keylist_cb(dirs, &(struct obj_entry){.key = d});
        }
    }
    if (r == 0 && blen && base[blen - 1] == '/')
        r = keylist_cb(dirs, &(struct obj_entry){.key = base});
    if (r == 0)
        qsort(dirs->v, dirs->n, sizeof(*dirs->v), prefix_cmp);
    return r;
}

/* Delete the markers of the tree keys name under base (rebased onto `to` if not NULL). */
static int delete_markers(const struct meta_export *e, char *const *keys, size_t n,
                          const char *base, size_t blen, const char *to)
{
    struct keylist dirs = {0};
    int r = markers_of(keys, n, base, blen, &dirs);
    for (size_t i = 0; i < dirs.n && r == 0; i++) {
        char nk[OBJ_KEY_MAX + 1];
        const char *d = dirs.v[i];
        if (to) {
            if (key_rebase(nk, d, blen, to))
                continue;
            d = nk;
        }
        r = obj_del(e->store, e->bucket, d);
    }
    keylist_free(&dirs);
    return r;
}

/* Copy the markers of the tree under base to `to`, shallowest first (ENOENT: none there). */
static int copy_markers(const struct meta_export *e, char *const *keys, size_t n,
                        const char *base, size_t blen, const char *to)
{
    struct keylist dirs = {0};
    int r = markers_of(keys, n, base, blen, &dirs);
    for (size_t i = dirs.n; i-- > 0 && r == 0;) {
        char nk[OBJ_KEY_MAX + 1];
        if (key_rebase(nk, dirs.v[i], blen, to))
            continue;
        r = obj_copy(e->store, e->bucket, dirs.v[i], nk, NULL);
        if (r == ENOENT)
            r = 0;
    }
    keylist_free(&dirs);
    return r;
}

/*
 * Call fn for the record of every entry under directory top, all the way
 * down, in transaction txn (NULL: none, read without locks, which holds
 * only while nothing renames into or out of the tree: holding top ensures
 * it).  Records are read with rflags (DB_RMW: fn may change and put them;
 * the walk goes into a directory after fn saw it).  fn returns 0 to go on
 * or an error; an entry whose record is gone is skipped.  Returns 0, an
 * errno or a Berkeley DB code (a deadlock ends the transaction: txn_run's).
 */
typedef int (*walk_fn)(void *arg, DB_TXN *txn, struct inode_rec *r);

static int subtree_walk(struct inode_table *t, DB_TXN *txn, uint64_t top, uint32_t rflags,
                        walk_fn fn, void *arg)
{
    struct inode_rec *r = malloc(sizeof(*r));
    size_t cap = 64, n = 0;
    uint64_t *stack = malloc(cap * sizeof(*stack));
    int rc = r && stack ? 0 : ENOMEM;
    if (rc == 0)
        stack[n++] = top;
    while (n && rc == 0) {
        uint64_t dir = stack[--n];
        uint8_t kb[DKEY_MAX];
        struct dval dv;
        DBC *c;
        DBT k = {0}, v = {0};
        if ((rc = db_errno(t->dirents->cursor(t->dirents, txn, &c, 0))))
            break;
        k.data = kb;
        k.size = (uint32_t)dkey_make(kb, dir, "", 0);
        k.ulen = sizeof(kb);
        k.flags = DB_DBT_USERMEM;
        v.data = &dv;
        v.ulen = sizeof(dv);
        v.flags = DB_DBT_USERMEM;
        for (uint32_t op = DB_SET_RANGE; rc == 0; op = DB_NEXT) {
            rc = db_errno(c->get(c, &k, &v, op));
            if (rc == ENOENT || (rc == 0 && (k.size < 8 || get_be64(kb) != dir))) {
                rc = 0;
                break;
            }
            if (rc)
                break;
            if ((rc = rec_get(t, txn, dv.ino, r, rflags)) == ENOENT) {
                rc = 0;
                continue;
            }
            if (rc || (rc = fn(arg, txn, r)))
                break;
            if (!S_ISDIR(r->h.mode))
                continue;
            if (n == cap) {
                uint64_t *s2 = realloc(stack, 2 * cap * sizeof(*stack));
                if (!s2) {
                    rc = ENOMEM;
                    break;
                }
                stack = s2;
                cap *= 2;
            }
            stack[n++] = dv.ino;
        }
        c->close(c);
    }
    free(stack);
    free(r);
    return rc;
}

struct known_arg {
    const char *oldp;
    size_t olen;
    struct keylist *known;
};

/* The keys of the tree's files in the bucket (under oldp). */
static int known_cb(void *arg, DB_TXN *txn, struct inode_rec *r)
{
    struct known_arg *a = arg;
    if (S_ISDIR(r->h.mode) || !rec_in_bucket(r) || strncmp(r->key, a->oldp, a->olen) != 0)
        return 0;
    return keylist_cb(a->known, &(struct obj_entry){.key = r->key});
}

static int key_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * For a background move of the tree under directory top (key oldp): keys
 * (what the bucket holds under oldp) becomes what the journal keeps: the
 * tree's markers, shallowest first, then the objects no file of the table
 * names (they are copied before the answer).  Objects the table's files
 * name move after it (IREC_MOVING).
 */
static int move_keys(struct inode_table *t, uint64_t top, const char *oldp, struct keylist *keys)
{
    struct keylist known = {.max = SIZE_MAX}, dirs = {0}, out = {.max = SIZE_MAX};
    size_t olen = strlen(oldp);
    struct known_arg ka = {.oldp = oldp, .olen = olen, .known = &known};
    int rc = public_errno(subtree_walk(t, NULL, top, 0, known_cb, &ka));
    if (rc == 0)
        rc = markers_of(keys->v, keys->n, oldp, olen, &dirs);
    /* markers_of sorts deepest first: the journal wants them shallowest first. */
    for (size_t i = dirs.n; rc == 0 && i-- > 0;)
        rc = keylist_cb(&out, &(struct obj_entry){.key = dirs.v[i]});
    if (rc == 0 && known.n)
        qsort(known.v, known.n, sizeof(*known.v), key_cmp);
    for (size_t i = 0; rc == 0 && i < keys->n; i++) {
        const char *k = keys->v[i];
        if (k[strlen(k) - 1] == '/')
            continue; /* a marker: above */
        if (known.n && bsearch(&k, known.v, known.n, sizeof(*known.v), key_cmp))
            continue; /* a file of the table: moves after the answer */
        rc = keylist_cb(&out, &(struct obj_entry){.key = k});
    }
    if (rc == 0) {
        keylist_free(keys);
        *keys = out;
    } else {
        keylist_free(&out);
    }
    keylist_free(&known);
    keylist_free(&dirs);
    return rc;
}

/* Delete the copies (phase 1: under newp) or the originals (phase 2) of a journaled rename. */
static int journal_apply(const struct meta_export *e, const struct journal_arg *a)
{
    int r = 0;
    size_t ol = strlen(a->oldp);
    /* Backwards: a listing gives "d/" before "d/x", and a directory goes after what is in it. */
    for (size_t i = a->n; i-- > 0;) {
        char nk[OBJ_KEY_MAX + 1];
        const char *k = a->keys[i];
        if (a->phase == 1) {
            if (strncmp(k, a->oldp, ol) != 0 || key_rebase(nk, k, ol, a->newp) != 0)
                continue;
            k = nk;
        }
        int dr = obj_del(e->store, e->bucket, k);
        if (dr)
            r = dr;
    }
    if (r == 0 && ol && a->oldp[ol - 1] == '/')
        r = delete_markers(e, a->keys, a->n, a->oldp, ol, a->phase == 1 ? a->newp : NULL);
    return r;
}

struct rename_arg {
    const struct meta_export *e;
    uint64_t fdir, tdir, ino, tino;
    const char *fname, *tname;
    bool silly;
    bool move_file;     /* a file in the bucket: its object moves after the commit */
    bool background;    /* a directory whose files move after the answer (phase 3) */
    bool journaled;     /* phase 2 (or 3) of the rename journal commits with the table */
    size_t jkeys;       /* ... which lists this many keys */
    int64_t now;
    char newkey[OBJ_KEY_MAX + 1];
    char oldkey[OBJ_KEY_MAX + 1];
    char xsrc[OBJ_KEY_MAX + 1]; /* a replaced target still moving: its object's key */
    struct inode_rec fd, td, c, x;
    struct inode_attr fbefore, tbefore;
};

/*
 * Make file y of a tree renamed at now move in the background (see
 * IREC_MOVING): its object stays at its key (the "m" record), hidden by a
 * "K" record, and a "W" record due at once has the uploader move it.  A
 * file with changes not uploaded keeps its "W" record (the move goes
 * first, then the upload).  y was read with DB_RMW; the caller writes it.
 */
static int move_mark(struct inode_table *t, DB_TXN *txn, struct inode_rec *y, int64_t now)
{
    uint8_t kb[1 + OBJ_KEY_MAX];
    struct wbrec w;
    int r;
    ino_key(kb, 'm', y->ino);
    if ((r = misc_put(t, txn, kb, 9, y->key, strlen(y->key))))
        return r;
    if ((r = misc_put(t, txn, kb, hide_key(kb, y->key), &y->ino, sizeof(y->ino))))
        return r;
    r = wb_get(t, txn, y->ino, &w, DB_RMW);
    if (r == ENOENT) {
        w = (struct wbrec){.dver = 1, .first_ns = now, .last_ns = 0,
                           .export_id = y->h.export_id, .flags = WB_MOVE_ONLY};
        ino_key(kb, 'W', y->ino);
        r = misc_put(t, txn, kb, 9, &w, sizeof(w));
    }
    if (r)
        return r;
    y->h.flags |= IREC_LOCAL | IREC_MOVING;
    return 0;
}

struct rekey_arg {
    struct inode_table *t;
    struct rename_arg *a;
    size_t olen;
};

static int rekey_cb(void *arg, DB_TXN *txn, struct inode_rec *y)
{
    struct rekey_arg *x = arg;
    struct rename_arg *a = x->a;
    char nk[OBJ_KEY_MAX + 1];
    int r;
    if (strncmp(y->key, a->oldkey, x->olen) != 0)
        return 0;
    if ((r = key_rebase(nk, y->key, x->olen, a->newkey)))
        return r;
    /* Its object follows in the background (a file in the bucket). */
    if (a->background && !S_ISDIR(y->h.mode) && rec_in_bucket(y) &&
        !(y->h.flags & IREC_MOVE_ANY) && (r = move_mark(x->t, txn, y, a->now)))
        return r;
    if (a->background && S_ISDIR(y->h.mode))
        y->h.flags |= IREC_MOVE_DIR;
    memcpy(y->key, nk, sizeof(nk));
    /* Copied in the bucket: the copy's ETag may differ (multipart); HEAD it. */
    if (!(y->h.flags & IREC_LOCAL))
        y->h.validated_at = 0;
    return rec_put(x->t, txn, y);
}

/* Rewrite the keys of the subtree under directory top from prefix old to new. */
static int rekey_subtree(struct inode_table *t, DB_TXN *txn, struct rename_arg *a, uint64_t top)
{
    struct rekey_arg x = {.t = t, .a = a, .olen = strlen(a->oldkey)};
    return subtree_walk(t, txn, top, DB_RMW, rekey_cb, &x);
}

static int rename_fn(struct inode_table *t, DB_TXN *txn, void *arg)
{
    struct rename_arg *a = arg;
    struct dval dv;
    int r;

    if ((r = rec_get(t, txn, a->fdir, &a->fd, DB_RMW)))
        return r == ENOENT ? ESTALE : r;
    rec_to_attr(&a->fd, &a->fbefore);
    if (a->tdir == a->fdir) {
        a->td = a->fd;
    } else {
        if ((r = rec_get(t, txn, a->tdir, &a->td, DB_RMW)))
            return r == ENOENT ? ESTALE : r;
    }
    rec_to_attr(&a->td, &a->tbefore);
    if ((r = dirent_get(t, txn, a->fdir, a->fname, &dv, DB_RMW)))
        return r;
    if (dv.ino != a->ino)
        return RACED;
    if ((r = rec_get(t, txn, a->ino, &a->c, DB_RMW)))
        return r == ENOENT ? RACED : r;
    bool isdir = S_ISDIR(a->c.h.mode);

    r = dirent_get(t, txn, a->tdir, a->tname, &dv, DB_RMW);
    if (r == 0 && dv.ino != a->tino)
        return RACED;
    if (r == ENOENT && a->tino)
        return RACED;
    if (r && r != ENOENT)
        return r;
    if (a->tino) {
        if ((r = rec_get(t, txn, a->tino, &a->x, DB_RMW)))
            return r == ENOENT ? RACED : r;
        if (S_ISDIR(a->x.h.mode) && (r = dir_has_entries(t, a->e, &a->x, txn)))
            return r;
        if ((r = rec_del(t, txn, a->tino)) || (r = wb_forget(t, txn, a->tino)))
            return r;
        if (a->x.h.flags & IREC_MOVE_ANY) {
            /* Its object at the old key is left over: inode_moves_settle deletes it. */
            uint8_t kb[9];
            ino_key(kb, 'm', a->tino);
            if ((r = misc_del(t, txn, kb, sizeof(kb))))
                return r;
        }
        if (S_ISDIR(a->x.h.mode) && a->td.h.nlink > 2)
            a->td.h.nlink--;
    }
    if ((r = dirent_del(t, txn, a->fdir, a->fname)))
        return r;
    dv.ino = a->ino;
    dv.epoch = a->td.h.epoch;
    if ((r = dirent_put(t, txn, a->tdir, a->tname, &dv)))
        return r;
    snprintf(a->c.name, sizeof(a->c.name), "%s", a->tname);
    a->c.h.parent = a->tdir;
    set_now(&a->c.h.ctime_sec, &a->c.h.ctime_nsec, a->now);
    a->c.h.change++;
    if (a->silly) {
        /* The object keeps its key, hidden from listings until the file is removed. */
        uint8_t kb[1 + OBJ_KEY_MAX];
        a->c.h.flags |= IREC_SILLY;
        if ((r = misc_put(t, txn, kb, hide_key(kb, a->c.key), &a->ino, sizeof(a->ino))))
            return r;
    } else {
        if (a->c.h.flags & IREC_SILLY) {
            /* Out of hiding: its object moves with it (below). */
            uint8_t kb[1 + OBJ_KEY_MAX];
            a->c.h.flags &= ~IREC_SILLY;
            if ((r = misc_del(t, txn, kb, hide_key(kb, a->c.key))))
                return r;
        }
        /* The table first; the object follows (inode_move_object), so a crash rolls forward. */
        if (a->move_file && (r = move_mark(t, txn, &a->c, a->now)))
            return r;
        memcpy(a->c.key, a->newkey, sizeof(a->newkey));
        if (rec_in_bucket(&a->c) && !(a->c.h.flags & IREC_LOCAL))
            a->c.h.validated_at = 0; /* a copy: its ETag is the store's to say */
    }
    if (a->background)
        a->c.h.flags |= IREC_MOVE_DIR;
    if ((r = rec_put(t, txn, &a->c)))
        return r;
    if (isdir && !a->silly && (r = rekey_subtree(t, txn, a, a->ino)))
        return r;
    if (a->journaled) {
        struct journal_arg j = {.id = a->ino, .export_id = a->e->id,
                                .phase = a->background ? 3 : 2, .oldp = a->oldkey,
                                .newp = a->newkey, .n = a->jkeys};
        if ((r = journal_put(t, txn, &j)))
            return r;
    }
    if (a->background) {
        /* The old name stays out of listings until the last object has left it. */
        uint8_t kb[1 + OBJ_KEY_MAX];
        if ((r = misc_put(t, txn, kb, hide_key(kb, a->oldkey), &a->ino, sizeof(a->ino))))
            return r;
    }
    if (isdir && a->fdir != a->tdir) {
        if (a->fd.h.nlink > 2)
            a->fd.h.nlink--;
        a->td.h.nlink++;
    }
    rec_touch(&a->td, a->now);
    if (a->fdir != a->tdir) {
        rec_touch(&a->fd, a->now);
        if ((r = rec_put(t, txn, &a->fd)))
            return r;
    }
    return rec_put(t, txn, &a->td);
}

/* Is dir `anc` an ancestor of (or) directory `dir`? */
static int is_ancestor(struct inode_table *t, uint64_t anc, uint64_t dir, bool *yes)
{
    struct inode_rec *r = malloc(sizeof(*r));
    int rc = 0;
    if (!r)
        return ENOMEM;
    *yes = false;
    for (int depth = 0; depth < 4096; depth++) {
        if (dir == anc) {
            *yes = true;
            break;
        }
        if ((rc = public_errno(rec_get(t, NULL, dir, r, 0))))
            break;
        if (r->h.parent == dir)
            break; /* the root */
        dir = r->h.parent;
    }
    free(r);
    return rc;
}

int inode_rename(struct inode_table *t, const struct meta_export *e, uint64_t fdir,
                 const char *fname, uint64_t tdir, const char *tname,
                 struct inode_attr *replaced, struct inode_attr *fdir_before,
                 struct inode_attr *fdir_after, struct inode_attr *tdir_before,
                 struct inode_attr *tdir_after)
{
    struct inode_attr src, dst, tdattr;
    struct keylist keys = {0};
    int rc;

    memset(replaced, 0, sizeof(*replaced));
    if ((rc = name_check(fname)) || (rc = name_check_new(e, tname)))
        return rc;
    if (!strcmp(fname, ".") || !strcmp(fname, "..") || !strcmp(tname, ".") ||
        !strcmp(tname, ".."))
        return EINVAL;
    if ((rc = inode_lookup(t, e, fdir, fname, &src, NULL)))
        return rc;
    rc = inode_lookup(t, e, tdir, tname, &dst, &tdattr);
    if (rc && rc != ENOENT)
        return rc;
    bool have_dst = rc == 0;
    if (have_dst && dst.ino == src.ino)
        return 0; /* the same file under both names: nothing to do */
    bool isdir = S_ISDIR(src.mode);
    if (have_dst && isdir && !S_ISDIR(dst.mode))
        return ENOTDIR;
    if (have_dst && !isdir && S_ISDIR(dst.mode))
        return EISDIR;
    if (isdir) {
        bool loop;
        if ((rc = is_ancestor(t, src.ino, tdir, &loop)))
            return rc;
        if (loop)
            return EINVAL;
    }
    struct rename_arg *a = calloc(1, sizeof(*a));
    if (!a)
        return ENOMEM;
    a->e = e;
    a->fdir = fdir;
    a->tdir = tdir;
    a->ino = src.ino;
    a->tino = have_dst ? dst.ino : 0;
    a->fname = fname;
    a->tname = tname;
    if ((rc = hold(t, a->ino)))
        goto out_free;
    if ((rc = hold(t, a->tino)))
        goto out_unhold;
    if ((rc = public_errno(rec_get(t, NULL, a->ino, &a->c, 0))))
        goto out;
    /* A file a directory rename is still moving gets to its key first (one copy). */
    if (!isdir && (a->c.h.flags & IREC_MOVE_ANY) &&
        ((rc = inode_move_object(t, e->store, e->bucket, a->ino)) ||
         (rc = public_errno(rec_get(t, NULL, a->ino, &a->c, 0)))))
        goto out;
    if (have_dst && (rc = public_errno(rec_get(t, NULL, a->tino, &a->x, 0))))
        goto out;
    if (have_dst && (a->x.h.flags & IREC_MOVE_ANY) &&
        public_errno(move_src(t, NULL, a->tino, a->xsrc, 0)) != 0)
        a->xsrc[0] = '\0'; /* no record of where: nothing to delete there */
    if (have_dst && S_ISDIR(a->x.h.mode)) {
        rc = public_errno(dir_has_entries(t, e, &a->x, NULL));
        if (rc == 0 && rec_in_bucket(&a->x))
            rc = bucket_dir_empty(e, a->x.key);
        if (rc)
            goto out;
    }
    /* The new key: the target directory's key + name (+ '/'). */
    struct inode_rec *td = &a->td;
    if ((rc = rec_get_export(t, e, tdir, td)))
        goto out;
    size_t dlen = strlen(td->key), nlen = strlen(tname);
    if (dlen + nlen + isdir > OBJ_KEY_MAX) {
        rc = ENAMETOOLONG;
        goto out;
    }
    memcpy(a->newkey, td->key, dlen);
    memcpy(a->newkey + dlen, tname, nlen);
    if (isdir)
        a->newkey[dlen + nlen++] = '/';
    a->newkey[dlen + nlen] = '\0';
    snprintf(a->oldkey, sizeof(a->oldkey), "%s", a->c.key);
    if ((rc = moves_clear(t, e, a->oldkey, a->newkey, isdir)))
        goto out;
    a->silly = !isdir && is_silly_name(tname) && !is_silly_name(fname) &&
               rec_in_bucket(&a->c) && !(a->c.h.flags & IREC_SILLY);

    /* The bucket first: copies under the new name, journaled (see above). */
    /*
     * What may be in the bucket: a file's object unless it was never
     * uploaded; anything under a directory, even one made here whose marker
     * is not uploaded yet (its files may be): the listing says.  A silly-
     * renamed file renamed again takes its hidden object along.
     */
    bool in_bucket = isdir || rec_in_bucket(&a->c);
    if (in_bucket && !isdir && (a->c.h.flags & IREC_SILLY) && !silly_hidden(t, NULL, a->c.key))
        in_bucket = false; /* its object was taken over by a new file of that name */
    struct journal_arg j = {.id = a->ino, .export_id = e->id, .phase = 1,
                            .oldp = a->oldkey, .newp = a->newkey};
    if (in_bucket && !a->silly) {
        if (isdir) {
            keys.max = e->rename_dir_max;
            rc = keylist_fill(e, a->oldkey, &keys);
            if (rc == EFBIG)
                LOG_AT(LOG_NOTICE, "rename of %s:%s refused: more than rename_dir_max (%u) "
                                   "objects under it", e->bucket, a->oldkey, e->rename_dir_max);
            /* What the table knows moves after the answer; the journal keeps the rest. */
            if (rc == 0 && (rc = move_keys(t, a->ino, a->oldkey, &keys)) == 0)
                a->background = true;
        } else {
            a->move_file = true; /* no copy before the commit: the target stays whole */
        }
        j.keys = keys.v;
        j.n = keys.n;
        if (rc == 0 && (keys.n || a->background) &&
            (rc = txn_run(t, journal_begin_fn, &j, true)) == 0) {
            a->journaled = true;
            a->jkeys = keys.n;
        }
        if (rc == 0 && a->journaled && isdir)
            rc = copy_markers(e, keys.v, keys.n, a->oldkey, strlen(a->oldkey), a->newkey);
        for (size_t i = 0; rc == 0 && i < keys.n; i++) {
            char nk[OBJ_KEY_MAX + 1];
            if (isdir && keys.v[i][strlen(keys.v[i]) - 1] == '/')
                continue; /* a marker: copied above */
            if ((rc = key_rebase(nk, keys.v[i], strlen(a->oldkey), a->newkey)) == 0)
                rc = obj_copy(e->store, e->bucket, keys.v[i], nk, NULL);
            if (rc == ENOENT && isdir)
                rc = 0; /* deleted meanwhile by another tool */
        }
        if (rc)
            goto undo;
    }
    a->now = now_ns();
    rc = txn_run(t, rename_fn, a, true);
    if (rc == RACED)
        rc = ESTALE; /* a name changed under us: the client looks again */
    if (rc)
        goto undo;
    gone_note(t, fdir, fname);
    if (a->background)
        atomic_fetch_add(&t->n_moves, 1);
    if (a->move_file) {
        /* The object to its new key now (a failure: the uploader retries; reads find it). */
        int mr = inode_move_object(t, e->store, e->bucket, a->ino);
        if (mr)
            LOG_AT(LOG_WARNING, "rename: moving %s:%s to %s: %s; the uploader retries it",
                   e->bucket, a->oldkey, a->newkey, strerror(mr));
    }
    /* Then the old objects go (a failure leaves the journal to finish at the next start). */
    if (a->journaled && !a->background) {
        j.phase = 2;
        int dr = journal_apply(e, &j);
        if (dr)
            LOG_AT(LOG_WARNING, "rename: deleting the old object(s) at %s:%s failed: %s; "
                                "retried at the next start", e->bucket, a->oldkey, strerror(dr));
        else if ((dr = txn_run(t, journal_end_fn, &j, false)))
            LOG_AT(LOG_WARNING, "rename: closing its journal: %s", strerror(dr));
    }
    /* A replaced target of another key that was in the bucket goes too. */
    if (have_dst && rec_in_bucket(&a->x) && strcmp(a->x.key, a->newkey) != 0) {
        int dr = obj_del(e->store, e->bucket, a->x.key);
        if (dr)
            LOG_AT(LOG_WARNING, "rename: deleting the replaced object %s:%s failed: %s",
                   e->bucket, a->x.key, strerror(dr));
    }
    /* So does the old object of a replaced target that was still moving, and its "K". */
    if (have_dst && a->xsrc[0] && strcmp(a->xsrc, a->newkey) != 0) {
        struct hidden_arg h = {.key = a->xsrc, .ino = a->tino};
        int dr = obj_del(e->store, e->bucket, a->xsrc);
        if (dr == 0)
            dr = txn_run(t, hidden_drop_fn, &h, false);
        if (dr)
            LOG_AT(LOG_WARNING, "rename: deleting the replaced object %s:%s failed: %s",
                   e->bucket, a->xsrc, strerror(dr));
    }
    if (have_dst) {
        rec_to_attr(&a->x, replaced);
        atomic_fetch_sub(&t->n_inodes, 1);
    }
    if (fdir_before)
        *fdir_before = a->fbefore;
    if (tdir_before)
        *tdir_before = a->tbefore;
    if (fdir_after)
        rec_to_attr(&a->fd, fdir_after);
    if (tdir_after)
        rec_to_attr(&a->td, tdir_after);
    if (fdir == tdir && fdir_after)
        rec_to_attr(&a->td, fdir_after);
    goto out;
undo:
    /* Nothing changed in the table: the copies made so far go. */
    if (a->journaled) {
        j.phase = 1;
        int ur = journal_apply(e, &j);
        if (ur == 0)
            ur = txn_run(t, journal_end_fn, &j, false);
        if (ur)
            LOG_AT(LOG_WARNING, "rename of %s:%s: undoing its copies: %s; retried at the next "
                                "start", e->bucket, a->oldkey, strerror(ur));
    }
out:
    unhold(t, a->tino);
out_unhold:
    unhold(t, a->ino);
out_free:
    keylist_free(&keys);
    free(a);
    return rc;
}

/* ---- background moves ------------------------------------------------------------- */

/*
 * A rename of a directory in the bucket answers once the table has the
 * new names; the objects follow (phase 3 of the rename journal):
 *   - before the answer: the tree is listed (at most rename_dir_max keys),
 *     its directory markers and the objects the table does not know are
 *     copied (journaled as phase 1, undone on failure as before), then one
 *     synchronous transaction renames the table, marks each file of the
 *     tree in the bucket IREC_MOVING ("m" = where its bytes are, "K" hides
 *     that key, a "W" record due at once), hides the old prefix ("K" +
 *     old prefix) and turns the journal record to phase 3, whose keys are
 *     the old markers and the objects copied before the answer;
 *   - the uploader moves each file (inode_move_object: copy, table, delete
 *     the old object, its "K"), reads meanwhile come from the old key;
 *   - once no "K" record of a moving file is left under the old prefix,
 *     inode_moves_settle deletes the journal's keys (objects first, then
 *     markers, deepest first) and closes the journal and the old prefix.
 * A crash anywhere leaves records that say what is left: a file is moved
 * again (a copy is idempotent), a "K" record whose file moved already (or
 * is gone) names an object left over, deleted by the settling.  A create
 * or rename to a name under the old prefix of an open move, or a directory
 * rename touching its old or new prefix, finishes that move first
 * (moves_clear; past FINISH_MAX files left: EAGAIN while the uploader
 * does): a tree is never moved twice at once, and nothing new is made
 * where old objects wait to leave.  Files made, renamed or removed under
 * the new prefix meanwhile need nothing of the sort.
 */

struct move_info {
    uint64_t id;
    uint32_t export_id, nkeys;
    char oldp[OBJ_KEY_MAX + 1], newp[OBJ_KEY_MAX + 1];
};

#define MOVES_MAX 16 /* open moves looked at per call */

struct moves_scan {
    bool any;
    uint32_t export_id;
    struct move_info *out;
    size_t n;
};

static int moves_cb(void *arg, const uint8_t *key, size_t klen, const void *val, size_t vlen)
{
    struct moves_scan *x = arg;
    struct rjview j;
    if (klen != 9 || rjrec_decode(val, vlen, &j) != 0 || j.h.phase != 3)
        return 0; /* replay's to judge (a corrupt one is dropped there) */
    if (!x->any && j.h.export_id != x->export_id)
        return 0;
    struct move_info *m = &x->out[x->n++];
    m->id = get_be64(key + 1);
    m->export_id = j.h.export_id;
    m->nkeys = j.h.nkeys;
    snprintf(m->oldp, sizeof(m->oldp), "%s", j.oldp);
    snprintf(m->newp, sizeof(m->newp), "%s", j.newp);
    return x->n == MOVES_MAX;
}

/* Up to MOVES_MAX open moves (phase 3) of export_id (any export: all), in id order. */
static int moves_list(struct inode_table *t, bool any, uint32_t export_id, struct move_info *out,
                      size_t *n)
{
    struct moves_scan x = {.any = any, .export_id = export_id, .out = out};
    int r = misc_scan(t, 'J', 0, moves_cb, &x);
    *n = x.n;
    return r;
}

/* The first "K" record after `after` (exclusive) whose key starts with prefix: ENOENT, none. */
static int hidden_next(struct inode_table *t, const char *prefix, const char *after, char *key,
                       uint64_t *ino)
{
    DBC *c;
    DBT k = {0}, v = {0};
    uint8_t kb[1 + OBJ_KEY_MAX + 1];
    size_t plen = strlen(prefix);
    int r = db_errno(t->misc->cursor(t->misc, NULL, &c, 0));
    if (r)
        return public_errno(r);
    k.data = kb;
    k.size = (uint32_t)hide_key(kb, after);
    k.ulen = sizeof(kb);
    k.flags = DB_DBT_USERMEM;
    v.flags = DB_DBT_REALLOC;
    for (uint32_t op = DB_SET_RANGE;; op = DB_NEXT) {
        r = db_errno(c->get(c, &k, &v, op));
        if (r)
            break;
        if (v.size != sizeof(*ino))
            continue; /* not a record this layout wrote: skipped */
        memcpy(ino, v.data, sizeof(*ino));
        size_t klen = k.size - 1;
        if (kb[0] != 'K' || klen < plen || memcmp(kb + 1, prefix, plen) != 0) {
            r = ENOENT;
            break;
        }
        if (klen == strlen(after) && memcmp(kb + 1, after, klen) == 0)
            continue;
        memcpy(key, kb + 1, klen);
        key[klen] = '\0';
        break;
    }
    c->close(c);
    free(v.data);
    return public_errno(r);
}

/*
 * Call fn(arg, key, owner) for every "K" record under prefix (not prefix's
 * own), in key order; fn returns 0 to go on, 1 to stop, or an error.
 */
static int hidden_each(struct inode_table *t, const char *prefix,
                       int (*fn)(void *arg, const char *key, uint64_t ino), void *arg)
{
    char *key = malloc(OBJ_KEY_MAX + 1), *after = malloc(OBJ_KEY_MAX + 1);
    uint64_t ino;
    int rc = key && after ? 0 : ENOMEM;
    if (rc == 0)
        snprintf(after, OBJ_KEY_MAX + 1, "%s", prefix);
    while (rc == 0) {
        if ((rc = hidden_next(t, prefix, after, key, &ino)) == ENOENT) {
            rc = 0;
            break;
        }
        if (rc == 0) {
            snprintf(after, OBJ_KEY_MAX + 1, "%s", key);
            rc = fn(arg, key, ino);
        }
    }
    free(key);
    free(after);
    return rc == 1 ? 0 : rc;
}

static pthread_mutex_t *move_lock(struct inode_table *t, uint64_t ino)
{
    return &t->move_mu[(ino * 0x9E3779B97F4A7C15ull) >> 60];
}

struct move_arg {
    uint64_t ino;
    const char *src, *dst;
    bool copied;        /* move_done_fn: MOVING -> MOVED_OLD; else MOVED_OLD -> done */
    struct inode_rec r;
};

/*
 * copied: the object is at dst now: reads go there (MOVING -> MOVED_OLD).
 * Otherwise the old object is deleted too: the move's records go, and a
 * file that was local for the move only is clean.
 */
static int move_done_fn(struct inode_table *t, DB_TXN *txn, void *arg)
{
    struct move_arg *a = arg;
    uint8_t kb[1 + OBJ_KEY_MAX];
    struct wbrec w;
    uint64_t owner;
    int r;
    if ((r = rec_get(t, txn, a->ino, &a->r, DB_RMW)))
        return r;
    if (!(a->r.h.flags & IREC_MOVE_ANY) || strcmp(a->r.key, a->dst) != 0)
        return 0; /* cannot be while the caller holds the move lock: nothing to do */
    if (a->copied) {
        a->r.h.flags = (a->r.h.flags & ~IREC_MOVING) | IREC_MOVED_OLD;
        return rec_put(t, txn, &a->r);
    }
    ino_key(kb, 'm', a->ino);
    if ((r = misc_del(t, txn, kb, 9)))
        return r;
    if (a->src[0]) {
        r = hidden_owner(t, txn, a->src, &owner, DB_RMW);
        if (r == 0 && owner == a->ino)
            r = misc_del(t, txn, kb, hide_key(kb, a->src));
        if (r && r != ENOENT && r != EIO)
            return r;
    }
    a->r.h.flags &= ~IREC_MOVE_ANY;
    if (a->r.h.flags & IREC_SILLY) {
        /* Still removed while open: hidden at its new key now. */
        if ((r = misc_put(t, txn, kb, hide_key(kb, a->r.key), &a->ino, sizeof(a->ino))))
            return r;
    }
    r = wb_get(t, txn, a->ino, &w, DB_RMW);
    if (r == 0 && (w.flags & WB_MOVE_ONLY)) {
        ino_key(kb, 'W', a->ino);
        if ((r = misc_del(t, txn, kb, 9)))
            return r;
        a->r.h.flags &= ~(IREC_LOCAL | IREC_STAGED);
        a->r.h.validated_at = 0; /* a copy: its ETag is the store's to say */
    } else if (r && r != ENOENT) {
        return r;
    }
    return rec_put(t, txn, &a->r);
}

int inode_move_object(struct inode_table *t, struct objstore *s, const char *bucket, uint64_t ino)
{
    struct move_arg *a = calloc(1, sizeof(*a));
    char *src = malloc(OBJ_KEY_MAX + 1), *dst = malloc(OBJ_KEY_MAX + 1);
    int rc = a && src && dst ? 0 : ENOMEM;
    pthread_mutex_t *mu = move_lock(t, ino);
    pthread_mutex_lock(mu);
    if (rc == 0)
        rc = public_errno(rec_get(t, NULL, ino, &a->r, 0));
    if (rc == 0 && !(a->r.h.flags & IREC_MOVE_ANY))
        goto out; /* moved already (or never moving) */
    if (rc == 0) {
        snprintf(dst, OBJ_KEY_MAX + 1, "%s", a->r.key);
        rc = public_errno(move_src(t, NULL, ino, src, 0));
        if (rc == EIO)
            LOG_AT(LOG_ERR, "inode: the move record of inode %llu is corrupt: its object "
                            "stays where it was", (unsigned long long)ino);
        if (rc == ENOENT || rc == EIO)
            src[0] = '\0'; /* nothing to copy or delete: the flags go */
        else if (rc)
            goto out;
        rc = 0;
    }
    a->ino = ino;
    a->src = src;
    a->dst = dst;
    /* Copy, then reads go to the copy (a crash after: the uploader deletes the old one). */
    if (rc == 0 && src[0] && (a->r.h.flags & IREC_MOVING)) {
        rc = obj_copy(s, bucket, src, dst, NULL);
        if (rc == ENOENT)
            rc = 0; /* deleted in the bucket meanwhile: the next HEAD of dst says so */
        a->copied = true;
        if (rc == 0)
            rc = txn_run(t, move_done_fn, a, true);
    }
    /* Then the old object, then the move's records. */
    if (rc == 0 && src[0])
        rc = obj_del(s, bucket, src);
    if (rc == 0) {
        a->copied = false;
        rc = txn_run(t, move_done_fn, a, true);
    }
    if (rc == 0)
        atomic_fetch_add(&t->n_moved, 1);
out:
    pthread_mutex_unlock(mu);
    free(a);
    free(src);
    free(dst);
    return rc == ENOENT ? 0 : rc; /* the file is gone: nothing left to move */
}

/* Is the object at key, hidden for ino, still to move (or a silly rename's)? */
static int member_pending(struct inode_table *t, uint64_t ino, const char *key, bool *pending)
{
    struct inode_rec *r = malloc(sizeof(*r));
    char src[OBJ_KEY_MAX + 1];
    if (!r)
        return ENOMEM;
    *pending = false;
    int rc = public_errno(rec_get(t, NULL, ino, r, 0));
    if (rc == 0 && (r->h.flags & IREC_MOVE_ANY)) {
        /* Its move (the uploader's) deletes the old object itself. */
        rc = public_errno(move_src(t, NULL, ino, src, 0));
        *pending = rc == 0 && strcmp(src, key) == 0;
    } else if (rc == 0 && (r->h.flags & IREC_SILLY)) {
        *pending = strcmp(r->key, key) == 0;
    }
    free(r);
    return rc == ENOENT || rc == EIO ? 0 : rc;
}

/* Read the "j" keys of journal record id (nkeys of them; a corrupt one is skipped). */
static int journal_keys(struct inode_table *t, uint64_t id, uint32_t nkeys, struct keylist *keys)
{
    char *key = malloc(OBJ_KEY_MAX + 1);
    uint8_t *kv = malloc(OBJ_KEY_MAX + 1);
    int rc = key && kv ? 0 : ENOMEM;
    keylist_free(keys);
    keys->max = nkeys;
    for (uint32_t i = 0; i < nkeys && rc == 0; i++) {
        size_t len = 0;
        uint8_t jb[13];
        int gr = misc_get(t, NULL, jb, jkey(jb, id, i), kv, OBJ_KEY_MAX + 1, &len, 0);
        if (gr == ENOENT)
            continue;
        if (gr == 0 && rjkey_decode(kv, len, key) != 0)
            gr = EOVERFLOW;
        if (gr == EOVERFLOW) {
            LOG_AT(LOG_ERR, "inode: rename journal record %llu: key %u is corrupt: skipped",
                   (unsigned long long)id, i);
            continue;
        }
        if (gr) {
            rc = public_errno(gr);
            break;
        }
        rc = keylist_cb(keys, &(struct obj_entry){.key = key});
    }
    free(key);
    free(kv);
    return rc;
}

struct close_arg {
    struct journal_arg j;
    const char *oldp;
};

static int move_close_fn(struct inode_table *t, DB_TXN *txn, void *arg)
{
    struct close_arg *a = arg;
    uint8_t kb[1 + OBJ_KEY_MAX];
    int r = journal_end_fn(t, txn, &a->j);
    if (r == 0)
        r = misc_del(t, txn, kb, hide_key(kb, a->oldp));
    return r;
}

struct dirflag_arg {
    struct inode_table *t;
    uint64_t ino;
    struct inode_rec r;
};

static int dirflag_clear_fn(struct inode_table *t, DB_TXN *txn, void *arg)
{
    struct dirflag_arg *a = arg;
    int r = rec_get(t, txn, a->ino, &a->r, DB_RMW);
    if (r || !(a->r.h.flags & IREC_MOVE_DIR))
        return r;
    a->r.h.flags &= ~IREC_MOVE_DIR;
    return rec_put(t, txn, &a->r);
}

static int dirflag_cb(void *arg, DB_TXN *txn, struct inode_rec *r)
{
    if (!S_ISDIR(r->h.mode) || !(r->h.flags & IREC_MOVE_DIR))
        return 0;
    struct dirflag_arg *a = arg;
    a->ino = r->ino;
    int rc = txn_run(a->t, dirflag_clear_fn, a, false);
    return rc == ENOENT ? 0 : rc;
}

/* The directories under (and) top are no longer a move's (IREC_MOVE_DIR goes). */
static int move_dirs_clear(struct inode_table *t, uint64_t top)
{
    struct dirflag_arg *a = malloc(sizeof(*a));
    if (!a)
        return ENOMEM;
    a->t = t;
    a->ino = top;
    int rc = txn_run(t, dirflag_clear_fn, a, false);
    if (rc == 0)
        rc = subtree_walk(t, NULL, top, 0, dirflag_cb, a);
    free(a);
    return rc == ENOENT ? 0 : public_errno(rc);
}

/*
 * Close move m if every file of it has moved: left-over objects go, then
 * the journal's keys, then the journal.  *closed: it was closed.
 */
struct settle_arg {
    struct inode_table *t;
    struct objstore *s;
    const char *bucket;
    bool pending;
};

/* A hidden object under a move's old prefix: still to move (stop), or left over (deleted). */
static int settle_cb(void *arg, const char *key, uint64_t ino)
{
    struct settle_arg *x = arg;
    int rc = member_pending(x->t, ino, key, &x->pending);
    if (rc || x->pending)
        return rc ? rc : 1;
    /* Left by a move cut off after the table moved the file: the object goes. */
    if ((rc = obj_del(x->s, x->bucket, key)) == 0) {
        struct hidden_arg h = {.key = key, .ino = ino};
        rc = txn_run(x->t, hidden_drop_fn, &h, false);
    }
    return rc;
}

static int move_settle(struct inode_table *t, struct objstore *s, const char *bucket,
                       const struct move_info *m, bool *closed)
{
    struct keylist keys = {0};
    struct settle_arg x = {.t = t, .s = s, .bucket = bucket};
    *closed = false;
    int rc = hidden_each(t, m->oldp, settle_cb, &x);
    if (rc || x.pending)
        return rc;
    rc = journal_keys(t, m->id, m->nkeys, &keys);
    struct meta_export ex = {.id = m->export_id, .store = s, .bucket = bucket};
    struct close_arg c = {.j = {.id = m->id, .export_id = m->export_id, .phase = 2,
                                .oldp = m->oldp, .newp = m->newp, .keys = keys.v, .n = keys.n},
                          .oldp = m->oldp};
    if (rc == 0)
        rc = journal_apply(&ex, &c.j);
    if (rc == 0)
        rc = move_dirs_clear(t, m->id);
    if (rc == 0) {
        c.j.n = m->nkeys; /* every "j" record goes, also ones not read */
        rc = txn_run(t, move_close_fn, &c, false);
    }
    if (rc == 0) {
        *closed = true;
        atomic_fetch_sub(&t->n_moves, 1);
        LOG_AT(LOG_INFO, "inode: the objects of %s:%s are all at %s now", bucket, m->oldp,
               m->newp);
    }
    keylist_free(&keys);
    return rc;
}

int inode_moves_settle(struct inode_table *t, uint32_t export_id, struct objstore *s,
                       const char *bucket)
{
    if (atomic_load(&t->n_moves) <= 0)
        return 0;
    struct move_info *v = malloc(MOVES_MAX * sizeof(*v));
    size_t n = 0;
    int rc = v ? moves_list(t, false, export_id, v, &n) : ENOMEM;
    for (size_t i = 0; i < n && rc == 0; i++) {
        bool closed;
        rc = move_settle(t, s, bucket, &v[i], &closed);
    }
    free(v);
    return rc;
}

int inode_moves_open(struct inode_table *t, bool one_export, uint32_t export_id, uint64_t *n)
{
    *n = 0;
    if (atomic_load(&t->n_moves) <= 0)
        return 0;
    struct move_info *v = malloc(MOVES_MAX * sizeof(*v));
    size_t got = 0;
    int rc = v ? moves_list(t, !one_export, export_id, v, &got) : ENOMEM;
    *n = got;
    free(v);
    return rc;
}

struct finish_arg {
    struct inode_table *t;
    const struct meta_export *e;
};

static int finish_cb(void *arg, const char *key, uint64_t ino)
{
    struct finish_arg *x = arg;
    int rc = hold(x->t, ino);
    if (rc == 0) {
        rc = inode_move_object(x->t, x->e->store, x->e->bucket, ino);
        unhold(x->t, ino);
    }
    return rc;
}

/* Files a caller finishes moving itself; past that it is told to come back (EAGAIN). */
#define FINISH_MAX 32

static int left_cb(void *arg, const char *key, uint64_t ino)
{
    unsigned *n = arg;
    return ++*n > FINISH_MAX;
}

/*
 * Move every file of m now and close it (the caller waits for what the
 * uploader would do), if there are at most FINISH_MAX left; else EAGAIN
 * (NFS3ERR_JUKEBOX: the client retries while the uploader moves them, in
 * parallel, rather than one call copying a whole tree one object at a time).
 */
static int move_finish(struct inode_table *t, const struct meta_export *e,
                       const struct move_info *m)
{
    struct finish_arg x = {.t = t, .e = e};
    bool closed = false;
    unsigned left = 0;
    int rc = hidden_each(t, m->oldp, left_cb, &left);
    if (rc == 0 && left > FINISH_MAX)
        return EAGAIN;
    if (rc == 0)
        rc = hidden_each(t, m->oldp, finish_cb, &x);
    if (rc == 0 && (rc = move_settle(t, e->store, e->bucket, m, &closed)) == 0 && !closed)
        rc = EAGAIN; /* a file of it is still to move (cannot be: we hold none) */
    return rc;
}

/* Is key under prefix p, or p under key (a directory's key)? */
static bool key_overlaps(const char *key, const char *p)
{
    size_t kl = strlen(key), pl = strlen(p);
    if (kl >= pl)
        return memcmp(key, p, pl) == 0;
    return kl && key[kl - 1] == '/' && memcmp(key, p, kl) == 0;
}

/*
 * Finish every open move of e whose old prefix overlaps k1 or k2 (k2 may
 * be NULL), or with `tree` (a directory renamed: k1 and k2 its old and new
 * keys) whose new prefix does too: nothing new is made where old objects
 * wait to leave, and a tree is not moved again while its objects are on
 * their way.  A file made or renamed under a new prefix meets nothing: a
 * moving file's name is its own.
 */
static int moves_clear(struct inode_table *t, const struct meta_export *e, const char *k1,
                       const char *k2, bool tree)
{
    if (atomic_load(&t->n_moves) <= 0)
        return 0;
    struct move_info *v = malloc(MOVES_MAX * sizeof(*v));
    size_t n = 0;
    int rc = v ? moves_list(t, false, e->id, v, &n) : ENOMEM;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct move_info *m = &v[i];
        bool hit = key_overlaps(k1, m->oldp) || (k2 && key_overlaps(k2, m->oldp)) ||
                   (tree && (key_overlaps(k1, m->newp) || (k2 && key_overlaps(k2, m->newp))));
        if (hit)
            rc = move_finish(t, e, m);
    }
    free(v);
    return rc;
}

/* ---- attribute and data changes ------------------------------------------------- */

struct change_arg {
    const struct meta_export *e;
    uint64_t ino;
    const struct inode_change *c;
    int64_t now;
    bool sync; /* commit durably: c->sync, unless nothing but ctime changed */
    struct inode_rec r;
    struct inode_attr before;
};

static int change_fn(struct inode_table *t, DB_TXN *txn, void *arg)
{
    struct change_arg *a = arg;
    const struct inode_change *c = a->c;
    struct inode_rec *r = &a->r;
    int rc;
    a->sync = c->sync;
    if ((rc = rec_get(t, txn, a->ino, r, DB_RMW)))
        return rc == ENOENT ? ESTALE : rc;
    if (r->h.export_id != a->e->id)
        return ESTALE;
    rec_to_attr(r, &a->before);
    if (c->guard && (r->h.ctime_sec != c->guard_sec || r->h.ctime_nsec != c->guard_nsec))
        return INODE_ENOTSYNC;
    bool dir = S_ISDIR(r->h.mode);
    if ((c->set_size || c->write_end || c->staged) && dir)
        return EISDIR;
    /*
     * What really changes: `tar x` and `chown -R` set owners and modes a
     * file already has.  Such a call moves ctime only (POSIX), which is not
     * worth an upload of the file nor a sync of the log: a crash may take
     * the new ctime back, never a value a client set.
     */
    uint32_t mode = (r->h.mode & S_IFMT) | (c->mode & 07777);
    bool changes = (c->set_mode && mode != r->h.mode) || (c->set_uid && c->uid != r->h.uid) ||
                   (c->set_gid && c->gid != r->h.gid) || c->staged ||
                   (c->set_mtime &&
                    (c->mtime_sec != r->h.mtime_sec || c->mtime_nsec != r->h.mtime_nsec));
    if (c->set_mode)
        r->h.mode = mode;
    if (c->set_uid)
        r->h.uid = c->uid;
    if (c->set_gid)
        r->h.gid = c->gid;
    bool data = false;
    uint64_t low = UINT64_MAX; /* the lowest byte this change touches */
    if (c->set_size)
        low = c->size < r->h.size ? c->size : r->h.size;
    if (c->write_end && c->write_start < low)
        low = c->write_start;
    if (c->set_size && c->size != r->h.size) {
        r->h.size = c->size;
        data = true;
    } else if (c->set_size) {
        data = true; /* truncating to the same size still stamps mtime (POSIX) */
    }
    if (c->write_end) {
        if (c->write_end > r->h.size)
            r->h.size = c->write_end;
        data = true;
    }
    if (c->staged)
        r->h.flags |= IREC_STAGED;
    if (data)
        set_now(&r->h.mtime_sec, &r->h.mtime_nsec, a->now);
    if (c->set_mtime) {
        r->h.mtime_sec = c->mtime_sec;
        r->h.mtime_nsec = c->mtime_nsec;
    }
    set_now(&r->h.ctime_sec, &r->h.ctime_nsec, a->now);
    r->h.change++;
    r->h.validated_at = a->now;
    if (dir && (c->set_mtime || data))
        r->h.flags &= ~IREC_MTIME_LISTED; /* the marker carries it now */
    changes = changes || data;
    if (changes && (rc = wb_touch_at(t, txn, r, a->now, low, c)))
        return rc;
    if (!changes)
        a->sync = false;
    return rec_put(t, txn, r);
}

int inode_change(struct inode_table *t, const struct meta_export *e, uint64_t ino,
                 const struct inode_change *c, struct inode_attr *before,
                 struct inode_attr *after)
{
    struct change_arg *a = calloc(1, sizeof(*a));
    if (!a)
        return ENOMEM;
    a->e = e;
    a->ino = ino;
    a->c = c;
    a->now = now_ns();
    int rc = txn_run_sync_if(t, change_fn, a, &a->sync);
    if (rc == ENOENT)
        rc = ESTALE;
    if (rc == 0) {
        if (before)
            *before = a->before;
        if (after)
            rec_to_attr(&a->r, after);
    }
    free(a);
    return rc;
}

int inode_sync(struct inode_table *t)
{
    return public_errno(db_errno(t->env->log_flush(t->env, NULL)));
}

/* ---- the write-back queue ------------------------------------------------------- */

struct dirty_scan {
    struct inode_dirty *out;
    size_t max, n;
};

static int dirty_cb(void *arg, const uint8_t *key, size_t klen, const void *val, size_t vlen)
{
    struct dirty_scan *x = arg;
    struct wbrec w;
    if (klen != 9 || wbrec_decode(val, vlen, &w) != 0) {
        LOG_AT(LOG_ERR, "inode: a corrupt write-back record (key %zu, value %zu bytes): "
                        "skipped", klen, vlen);
        return 0;
    }
    x->out[x->n++] = (struct inode_dirty){.ino = get_be64(key + 1), .export_id = w.export_id,
                                          .dver = w.dver, .first_ns = w.first_ns,
                                          .last_ns = w.last_ns, .base_size = w.base_size,
                                          .clean_below = w.clean_below};
    return x->n == x->max;
}

int inode_dirty_scan(struct inode_table *t, uint64_t after, struct inode_dirty *out,
                     size_t max, size_t *n)
{
    struct dirty_scan x = {.out = out, .max = max};
    *n = 0;
    if (max == 0 || after == UINT64_MAX)
        return 0;
    int r = misc_scan(t, 'W', after + 1, dirty_cb, &x);
    *n = x.n;
    return r;
}

int inode_upload_get(struct inode_table *t, uint64_t ino, struct inode_attr *a, char *key,
                     struct inode_dirty *d)
{
    struct inode_rec *r = malloc(sizeof(*r));
    struct wbrec w;
    if (!r)
        return ENOMEM;
    int rc = public_errno(rec_get(t, NULL, ino, r, 0));
    if (rc == 0 && !(r->h.flags & IREC_LOCAL))
        rc = ENOENT;
    if (rc == 0)
        rc = public_errno(wb_get(t, NULL, ino, &w, 0));
    if (rc == 0) {
        rec_to_attr(r, a);
        memcpy(key, r->key, (size_t)r->h.key_len + 1);
        *d = (struct inode_dirty){.ino = ino, .export_id = w.export_id, .dver = w.dver,
                                  .first_ns = w.first_ns, .last_ns = w.last_ns,
                                  .base_size = w.base_size, .clean_below = w.clean_below};
        if (r->h.flags & IREC_SILLY)
            rc = EBUSY; /* removed while open: never uploaded under its .nfs name */
        else if (is_silly_name(r->name) && (r->h.flags & IREC_NEW))
            rc = EBUSY;
    }
    free(r);
    return rc;
}

struct done_arg {
    uint64_t ino, dver;
    const char *key, *etag;
    int64_t now;
    bool clean, moved;
    struct inode_rec r, p;
};

static int done_fn(struct inode_table *t, DB_TXN *txn, void *arg)
{
    struct done_arg *a = arg;
    struct wbrec w;
    struct dval dv;
    int r;
    a->clean = a->moved = false;
    if ((r = rec_get(t, txn, a->ino, &a->r, DB_RMW)))
        return r;
    if (strcmp(a->r.key, a->key) != 0) {
        /*
         * Renamed while it was uploaded: upload it again at its key.  The
         * object just written is nobody's, unless a directory rename left
         * the file's bytes there to move (IREC_MOVING): the move takes it.
         */
        char src[OBJ_KEY_MAX + 1];
        r = a->r.h.flags & IREC_MOVING ? move_src(t, txn, a->ino, src, 0) : ENOENT;
        if (r && r != ENOENT && r != EIO)
            return r;
        a->moved = r != 0 || strcmp(src, a->key) != 0;
        return 0;
    }
    /* The object is in the bucket now, whatever else changed meanwhile. */
    a->r.h.flags &= ~IREC_NEW;
    if (a->etag)
        snprintf(a->r.h.etag, sizeof(a->r.h.etag), "%s", a->etag);
    r = wb_get(t, txn, a->ino, &w, DB_RMW);
    if (r == 0 && w.dver == a->dver) {
        uint8_t kb[9];
        ino_key(kb, 'W', a->ino);
        if ((r = misc_del(t, txn, kb, sizeof(kb))))
            return r;
        a->r.h.flags &= ~(IREC_LOCAL | IREC_STAGED);
        a->r.h.validated_at = a->now;
        a->clean = true;
        /*
         * A listing running now may have paged past this name before the
         * object existed: stamp the entry with its epoch so its sweep keeps it.
         * A lost deadlock must end the transaction here (txn_run retries it):
         * Berkeley DB refuses every later call in it (BDB0102, EINVAL).
         */
        r = rec_get(t, txn, a->r.h.parent, &a->p, 0);
        if (r == 0)
            r = dirent_get(t, txn, a->r.h.parent, a->r.name, &dv, DB_RMW);
        if (r && r != ENOENT)
            return r;
        if (r == 0 && dv.ino == a->ino && dv.epoch != a->p.h.epoch) {
            dv.epoch = a->p.h.epoch;
            if ((r = dirent_put(t, txn, a->r.h.parent, a->r.name, &dv)))
                return r;
        }
    } else if (r && r != ENOENT) {
        return r;
    }
    return rec_put(t, txn, &a->r);
}

int inode_upload_done(struct inode_table *t, uint64_t ino, uint64_t dver, const char *key,
                      const char *etag, bool *clean, bool *moved)
{
    struct done_arg *a = calloc(1, sizeof(*a));
    if (!a)
        return ENOMEM;
    *a = (struct done_arg){.ino = ino, .dver = dver, .key = key, .etag = etag, .now = now_ns()};
    int rc = txn_run(t, done_fn, a, true);
    *clean = rc == 0 && a->clean;
    *moved = rc == 0 && a->moved;
    free(a);
    return rc;
}

void inode_dirty_summary(struct inode_table *t, uint64_t *count, int64_t *oldest_ns)
{
    struct inode_dirty d[256];
    size_t n = 0;
    uint64_t after = 0;
    *count = 0;
    *oldest_ns = 0;
    do {
        if (inode_dirty_scan(t, after, d, 256, &n))
            return;
        for (size_t i = 0; i < n; i++) {
            (*count)++;
            if (*oldest_ns == 0 || d[i].first_ns < *oldest_ns)
                *oldest_ns = d[i].first_ns;
            after = d[i].ino;
        }
    } while (n == 256);
}

/* ---- multipart upload records ("M" + ino) --------------------------------------- */

struct mp_arg {
    uint64_t ino;
    struct inode_mp *m;
    bool del;
};

static int mp_fn(struct inode_table *t, DB_TXN *txn, void *arg)
{
    struct mp_arg *a = arg;
    uint8_t kb[9];
    ino_key(kb, 'M', a->ino);
    if (a->del)
        return misc_del(t, txn, kb, sizeof(kb));
    return misc_put(t, txn, kb, sizeof(kb), a->m, sizeof(*a->m));
}

int inode_mp_get(struct inode_table *t, uint64_t ino, struct inode_mp *m)
{
    uint8_t kb[9];
    size_t len = 0;
    struct inode_mp *v = malloc(sizeof(*v) + 1); /* one byte more: a longer record is no "M" */
    if (!v)
        return ENOMEM;
    ino_key(kb, 'M', ino);
    int r = misc_get(t, NULL, kb, sizeof(kb), v, sizeof(*v) + 1, &len, 0);
    if (r == EOVERFLOW)
        r = EIO;
    if (r == 0)
        r = mprec_decode(v, len, m);
    free(v);
    return public_errno(r);
}

int inode_mp_put(struct inode_table *t, uint64_t ino, const struct inode_mp *m)
{
    struct mp_arg a = {.ino = ino, .m = (struct inode_mp *)m};
    return txn_run(t, mp_fn, &a, true);
}

int inode_mp_del(struct inode_table *t, uint64_t ino)
{
    struct mp_arg a = {.ino = ino, .del = true};
    return txn_run(t, mp_fn, &a, false);
}

/* ---- replaying the rename journal at start ------------------------------------- */

int inode_journal_replay(struct inode_table *t, const struct meta_export *const *v, size_t n)
{
    /* The "J" record read and its key, of any size (DB_DBT_REALLOC): a corrupt one is dropped. */
    uint8_t *kb = malloc(9);
    void *val = NULL;
    struct keylist keys = {0};
    int rc = kb ? 0 : ENOMEM;
    uint64_t after = 0, done = 0;
    int64_t open_moves = 0;
    while (rc == 0) {
        /* The next "J" record after `after` (past the last one: after + 1 wraps to 0). */
        DBC *c;
        DBT k = {0}, d = {0};
        if (after == UINT64_MAX || (rc = db_errno(t->misc->cursor(t->misc, NULL, &c, 0))))
            break;
        ino_key(kb, 'J', after + 1);
        k.data = kb;
        k.size = 9;
        k.flags = DB_DBT_REALLOC;
        d.data = val;
        d.flags = DB_DBT_REALLOC;
        int r = db_errno(c->get(c, &k, &d, DB_SET_RANGE));
        c->close(c);
        kb = k.data;
        val = d.data;
        if (r == ENOENT || (r == 0 && (k.size < 1 || kb[0] != 'J')))
            break;
        if (r) {
            rc = public_errno(r);
            break;
        }
        if (k.size != 9) {
            /* Not a key this layout wrote: no id to drop it by; the next "J" key after it. */
            LOG_AT(LOG_ERR, "inode: a corrupt rename journal key (%u bytes): ignored", k.size);
            uint8_t pad[8] = {0};
            memcpy(pad, kb + 1, k.size > 9 ? 8 : k.size - 1);
            /* Longer: past every "J" key of its first 8 bytes; shorter: before its padding. */
            uint64_t next = k.size > 9 ? get_be64(pad) : get_be64(pad) - 1;
            if (next <= after)
                break; /* no progress: cannot be, but never loop */
            after = next;
            continue;
        }
        uint64_t id = get_be64(kb + 1);
        after = id;
        struct rjview j0;
        if (rjrec_decode(val, d.size, &j0) != 0) {
            LOG_AT(LOG_ERR, "inode: rename journal record %llu is corrupt: dropped",
                   (unsigned long long)id);
            struct journal_arg j = {.id = id};
            txn_run(t, journal_end_fn, &j, false);
            continue;
        }
        struct rjrec h = j0.h;
        const char *oldp = j0.oldp, *newp = j0.newp;
        if (h.phase == 3) {
            /* The table has the new names: the uploader moves the rest (inode_moves_settle). */
            open_moves++;
            continue;
        }
        const struct meta_export *e = NULL;
        for (size_t i = 0; i < n; i++)
            if (v[i]->id == h.export_id)
                e = v[i];
        if (!e)
            continue; /* its export is not served now: kept for a later start */
        if ((rc = journal_keys(t, id, h.nkeys, &keys)))
            break;
        struct journal_arg j = {.id = id, .export_id = h.export_id, .phase = h.phase,
                                .oldp = oldp, .newp = newp, .keys = keys.v, .n = keys.n};
        int ar = journal_apply(e, &j);
        if (ar) {
            LOG_AT(LOG_WARNING, "inode: finishing the rename of %s:%s -> %s: %s; kept for the "
                                "next start", e->bucket, oldp, newp, strerror(ar));
            continue;
        }
        j.n = h.nkeys; /* every "j" record goes, also ones not read */
        if ((rc = txn_run(t, journal_end_fn, &j, false)))
            break;
        LOG_AT(LOG_NOTICE, "inode: %s the rename of %s:%s -> %s cut off by a crash",
               h.phase == 1 ? "undid" : "finished", e->bucket, oldp, newp);
        done++;
    }
    if (rc == 0)
        atomic_store(&t->n_moves, open_moves);
    keylist_free(&keys);
    free(val);
    free(kb);
    return rc;
}
