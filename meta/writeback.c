/*
 * writeback.c - the uploader (see writeback.h).
 *
 * One scanner thread walks the local inodes of the table (inode_dirty_scan)
 * every scan_ms, or at once when kicked, and queues those that are due:
 * quiet for their export's writeback_delay, or asked for by a flush, and
 * whose export is not backing off.  `threads` workers take inodes off the
 * queue and upload them.  An inode is queued at most once (w->queued
 * marks it until its worker is done), so the queue is bounded by the
 * number of local inodes the scanner found, and the scanner stops filling
 * it at QUEUE_MAX.
 *
 * Locks: w->mu guards the queue, the flush request, the exports and the
 * backoff state; it is never held across a store call, a stage call or a
 * transaction.  The per-inode stripes (wb_lock) are rwlocks, taken
 * exclusive only around an upload's completion (mark clean + drop the
 * staged file) so that no write lands in a staged file being dropped.
 */
#include "meta/writeback.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/stage.h"
#include "common/clock.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "objstore/objstore.h"

#define STRIPES 256
#define QUEUE_MAX 4096
#define SCAN_BATCH 256
#define BACKOFF_MIN_NS (1000000000LL)
#define BACKOFF_MAX_NS (60000000000LL)
#define PARTS_MAX 10000u
#define PART_MIN (5ull << 20)
#define PART_THREADS 4 /* parts of one file in flight at once */
#define FLUSH_EXPORTS 64 /* export flushes at once (more: they flush everything) */

struct wb_export {
    uint32_t id;
    struct objstore *store;
    char *bucket;
    unsigned delay;          /* seconds */
    bool shuffle;            /* the cache keeps what it has when full (cache_obj) */
    int64_t backoff_until;   /* CLOCK_MONOTONIC ns: no uploads before */
    int64_t backoff_ns;      /* current backoff step */
    char *path;              /* the export's path, for messages ("" if unknown) */
    size_t prefix_len;       /* its prefix's length: a key minus it is the file's path */
};

/*
 * A file whose staged bytes cannot be read (deleted from the cache disk
 * under the daemon, say): it cannot be written back, and every retry would
 * fail the same way.  It is said once (ERR), counted, and retried on its
 * own backoff (1 s doubling to 60 s: the operator may restore the bytes),
 * not its export's: the other files of the export go on.
 */
struct wb_stuck {
    uint64_t ino;
    uint32_t export_id;
    int err;
    int64_t until;    /* no retry before (ns) */
    int64_t step;     /* current backoff step */
    int64_t last_try; /* when its last retry failed (ns) */
    uint64_t seen;    /* the last scan that found it local */
    char *name;       /* EXPORT/PATH, for messages and flush's answer */
};

struct wb {
    struct wb_conf c;
    struct inode_table *t;
    struct stage *st;

    pthread_mutex_t mu;
    pthread_cond_t work;     /* workers: queue not empty, or stopping */
    pthread_cond_t scan;     /* scanner: kicked, or stopping */
    pthread_cond_t scanned;  /* a scan ended (scans moved) */
    uint64_t scans;          /* scans ended so far */
    atomic_bool stopping;
    bool kicked;
    uint64_t *queue;         /* ring of inode numbers */
    size_t qhead, qlen;
    uint64_t *busy;          /* queued or being uploaded (sorted? no: small linear set) */
    size_t nbusy, capbusy;
    unsigned flush_all;      /* flushes of everything in progress */
    uint64_t flush_ino;      /* one inode to upload now (0: none) */
    uint32_t flush_exp[FLUSH_EXPORTS]; /* exports being flushed (one entry per flush) */
    size_t nflush_exp;
    struct wb_export *ex;
    size_t nex;
    struct wb_stuck *stuck;  /* sorted by ino */
    size_t nstuck, capstuck;

    pthread_rwlock_t stripes[STRIPES];
    pthread_t scanner;
    pthread_t *workers;
    unsigned nworkers;
    bool scanner_started;

    _Atomic uint64_t n_uploads, n_bytes, n_parts, n_resumed, n_failures, n_conflicts,
        n_superseded, n_inflight, n_copied, n_unwritable;
};

/* ---- per-inode locks ------------------------------------------------------------ */

static pthread_rwlock_t *stripe(struct wb *w, uint64_t ino)
{
    return &w->stripes[(ino * 0x9E3779B97F4A7C15ull) >> 56];
}

void wb_lock(struct wb *w, uint64_t ino, bool exclusive)
{
    if (exclusive)
        pthread_rwlock_wrlock(stripe(w, ino));
    else
        pthread_rwlock_rdlock(stripe(w, ino));
}

void wb_unlock(struct wb *w, uint64_t ino)
{
    pthread_rwlock_unlock(stripe(w, ino));
}

/* ---- exports ---------------------------------------------------------------------- */

int wb_set_exports(struct wb *w, const struct meta_export *const *v, size_t n)
{
    struct wb_export *ex = calloc(n ? n : 1, sizeof(*ex));
    if (!ex)
        return ENOMEM;
    for (size_t i = 0; i < n; i++) {
        ex[i].id = v[i]->id;
        ex[i].store = v[i]->store;
        ex[i].delay = v[i]->writeback_delay;
        ex[i].shuffle = v[i]->shuffle;
        ex[i].prefix_len = v[i]->prefix ? strlen(v[i]->prefix) : 0;
        ex[i].bucket = strdup(v[i]->bucket);
        ex[i].path = strdup(v[i]->path ? v[i]->path : "");
        if (!ex[i].bucket || !ex[i].path) {
            for (size_t j = 0; j <= i; j++) {
                free(ex[j].bucket);
                free(ex[j].path);
            }
            free(ex);
            return ENOMEM;
        }
    }
    pthread_mutex_lock(&w->mu);
    /* Keep the backoff of exports that stay. */
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < w->nex; j++)
            if (w->ex[j].id == ex[i].id) {
                ex[i].backoff_until = w->ex[j].backoff_until;
                ex[i].backoff_ns = w->ex[j].backoff_ns;
            }
    struct wb_export *old = w->ex;
    size_t nold = w->nex;
    w->ex = ex;
    w->nex = n;
    w->kicked = true;
    pthread_cond_signal(&w->scan);
    pthread_mutex_unlock(&w->mu);
    for (size_t j = 0; j < nold; j++) {
        free(old[j].bucket);
        free(old[j].path);
    }
    free(old);
    return 0;
}

/* The export of id (under w->mu), or NULL. */
static struct wb_export *export_find(struct wb *w, uint32_t id)
{
    for (size_t i = 0; i < w->nex; i++)
        if (w->ex[i].id == id)
            return &w->ex[i];
    return NULL;
}

/* The store failed (or recovered, err 0): back off that export's uploads. */
static void export_backoff(struct wb *w, uint32_t id, int err)
{
    pthread_mutex_lock(&w->mu);
    struct wb_export *x = export_find(w, id);
    if (x && err) {
        x->backoff_ns = x->backoff_ns ? x->backoff_ns * 2 : BACKOFF_MIN_NS;
        if (x->backoff_ns > BACKOFF_MAX_NS)
            x->backoff_ns = BACKOFF_MAX_NS;
        x->backoff_until = clock_mono_ns() + x->backoff_ns;
    } else if (x) {
        x->backoff_ns = 0;
        x->backoff_until = 0;
    }
    pthread_mutex_unlock(&w->mu);
}

/* ---- files that cannot be written back ------------------------------------------- */

/* The entry of ino, or where it would go (w->mu held). */
static size_t stuck_at(const struct wb *w, uint64_t ino)
{
    size_t lo = 0, hi = w->nstuck;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (w->stuck[mid].ino < ino)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static struct wb_stuck *stuck_find(struct wb *w, uint64_t ino)
{
    size_t i = stuck_at(w, ino);
    return i < w->nstuck && w->stuck[i].ino == ino ? &w->stuck[i] : NULL;
}

static void stuck_remove_at(struct wb *w, size_t i)
{
    free(w->stuck[i].name);
    memmove(&w->stuck[i], &w->stuck[i + 1], (w->nstuck - i - 1) * sizeof(w->stuck[0]));
    w->nstuck--;
}

/*
 * ino's staged bytes could not be read (err): note it, or its retry
 * (backoff doubled).  Returns true the first time (the caller says so).
 * w->mu held.  name is copied.
 */
static bool stuck_note(struct wb *w, uint64_t ino, uint32_t export_id, int err, const char *name)
{
    int64_t now = clock_mono_ns();
    struct wb_stuck *e = stuck_find(w, ino);
    if (e) {
        e->step = e->step * 2 > BACKOFF_MAX_NS ? BACKOFF_MAX_NS : e->step * 2;
        e->until = now + e->step;
        e->last_try = now;
        e->err = err;
        return false;
    }
    if (w->nstuck == w->capstuck) {
        size_t cap = w->capstuck ? 2 * w->capstuck : 16;
        struct wb_stuck *v = realloc(w->stuck, cap * sizeof(*v));
        if (!v)
            return true; /* said, not remembered: retried as any failure */
        w->stuck = v;
        w->capstuck = cap;
    }
    char *nm = strdup(name);
    if (!nm)
        return true;
    size_t i = stuck_at(w, ino);
    memmove(&w->stuck[i + 1], &w->stuck[i], (w->nstuck - i) * sizeof(w->stuck[0]));
    w->stuck[i] = (struct wb_stuck){.ino = ino, .export_id = export_id, .err = err,
                                     .until = now + BACKOFF_MIN_NS, .step = BACKOFF_MIN_NS,
                                     .last_try = now, .seen = w->scans + 1, .name = nm};
    w->nstuck++;
    return true;
}

/* ---- the queue --------------------------------------------------------------------- */

static bool busy_has(struct wb *w, uint64_t ino)
{
    for (size_t i = 0; i < w->nbusy; i++)
        if (w->busy[i] == ino)
            return true;
    return false;
}

static void busy_del(struct wb *w, uint64_t ino)
{
    for (size_t i = 0; i < w->nbusy; i++)
        if (w->busy[i] == ino) {
            w->busy[i] = w->busy[--w->nbusy];
            return;
        }
}

/* Queue ino (under w->mu) unless it is queued or running; false if full. */
static bool enqueue(struct wb *w, uint64_t ino)
{
    if (busy_has(w, ino))
        return true;
    if (w->qlen == QUEUE_MAX || w->nbusy == w->capbusy)
        return false;
    w->queue[(w->qhead + w->qlen++) % QUEUE_MAX] = ino;
    w->busy[w->nbusy++] = ino;
    pthread_cond_signal(&w->work);
    return true;
}

/* ---- one upload --------------------------------------------------------------------- */

static void meta_of(const struct inode_attr *a, struct obj_meta *m)
{
    memset(m, 0, sizeof(*m));
    m->has_posix = true;
    m->mode = a->mode;
    m->uid = a->uid;
    m->gid = a->gid;
    m->mtime_sec = a->mtime_sec;
    m->mtime_nsec = a->mtime_nsec;
    m->size = a->size;
}

struct upload {
    struct wb *w;
    struct inode_attr a;
    struct inode_dirty d;
    struct objstore *store;
    const char *bucket;
    char key[OBJ_KEY_MAX + 1];
    char etag[OBJ_ETAG_MAX];
    struct obj_meta meta;
    bool conflict; /* the object changed in the bucket: nothing of it is copied */
    bool shuffle;  /* the export's cache mode */
    bool cached;   /* keep_in_cache put blocks of the new version in the cache */
    bool stage_err; /* the failure was reading the staged bytes, not the store */
};

static int upload_single(struct upload *u, int fd, uint64_t size)
{
    int r = fd >= 0 ? obj_put_file(u->store, u->bucket, u->key, fd, 0, size, &u->meta, u->etag)
                    : obj_put(u->store, u->bucket, u->key, "", 0, &u->meta, u->etag);
    if (r == 0)
        atomic_fetch_add(&u->w->n_bytes, size);
    return r;
}

/* Parts of one multipart upload sent by several threads (each takes the next part). */
struct part_run {
    struct upload *u;
    int fd;
    uint64_t psize;
    uint64_t copy_len; /* parts below this are copied from the object in the store */
    struct obj_part *parts;
    uint32_t nparts;
    const char *upload_id;
    atomic_uint next;
    atomic_int err;
};

static void *part_main(void *arg)
{
    struct part_run *pr = arg;
    struct upload *u = pr->u;
    struct wb *w = u->w;
    for (;;) {
        unsigned i = atomic_fetch_add(&pr->next, 1);
        if (i >= pr->nparts || atomic_load(&pr->err))
            break;
        struct obj_part *p = &pr->parts[i];
        if (p->etag[0])
            continue; /* resumed: the store has it */
        if (inode_upload_wanted(w->t, u->a.ino) || w->stopping) {
            int z = 0;
            atomic_compare_exchange_strong(&pr->err, &z, ECANCELED);
            break; /* removed or renamed meanwhile, or stopping: resume later */
        }
        uint64_t off = (uint64_t)i * pr->psize;
        bool copy = off + p->size <= pr->copy_len;
        int r = copy ? obj_mp_copy_part(u->store, u->bucket, u->key, pr->upload_id, p->number,
                                        u->key, u->a.etag, off, p->size, p->etag)
                     : obj_mp_put_part_file(u->store, u->bucket, u->key, pr->upload_id,
                                            p->number, pr->fd, off, p->size, p->etag);
        if (r) {
            int z = 0;
            atomic_compare_exchange_strong(&pr->err, &z, r);
            break;
        }
        atomic_fetch_add(&w->n_parts, 1);
        atomic_fetch_add(copy ? &w->n_copied : &w->n_bytes, p->size);
    }
    return NULL;
}

/*
 * copy_below: [0, copy_below) of the file is the bucket's object of the
 * record's ETag: whole parts of it are copied in the store (UploadPartCopy,
 * If-Match on that ETag) instead of sent; 0: everything is sent.
 */
static int upload_multipart(struct upload *u, int fd, uint64_t size, uint64_t copy_below)
{
    struct wb *w = u->w;
    const struct obj_ops *ops = u->store->ops;
    struct inode_mp *mp = calloc(1, sizeof(*mp));
    struct obj_part *parts = NULL, *have = NULL;
    size_t nhave = 0;
    int r;
    if (!mp)
        return ENOMEM;

    uint64_t psize = w->c.part_size;
    while ((size + psize - 1) / psize > PARTS_MAX)
        psize *= 2;
    uint32_t nparts = (uint32_t)((size + psize - 1) / psize);

    /* Resume an upload of this very version, or abort a stale one. */
    bool resumed = false;
    if (inode_mp_get(w->t, u->a.ino, mp) == 0) {
        if (mp->dver == u->d.dver && strcmp(mp->key, u->key) == 0 && mp->part_size == psize) {
            resumed = true;
        } else {
            ops->mp_abort(u->store, u->bucket, mp->key, mp->upload_id);
            inode_mp_del(w->t, u->a.ino);
        }
    }
    parts = calloc(nparts, sizeof(*parts));
    if (!parts) {
        r = ENOMEM;
        goto out;
    }
    if (resumed) {
        have = calloc(nparts, sizeof(*have));
        if (!have) {
            r = ENOMEM;
            goto out;
        }
        if (ops->mp_list_parts(u->store, u->bucket, u->key, mp->upload_id, have, nparts,
                               &nhave) != 0) {
            /* The store forgot it (expired, aborted): start over. */
            resumed = false;
            nhave = 0;
        }
    }
    if (!resumed) {
        memset(mp, 0, sizeof(*mp));
        mp->dver = u->d.dver;
        mp->part_size = psize;
        snprintf(mp->key, sizeof(mp->key), "%s", u->key);
        if ((r = ops->mp_create(u->store, u->bucket, u->key, &u->meta, mp->upload_id)))
            goto out;
        if ((r = inode_mp_put(w->t, u->a.ino, mp)))
            goto out;
    }
    for (uint32_t i = 0; i < nparts; i++) {
        uint64_t off = (uint64_t)i * psize;
        parts[i].number = i + 1;
        parts[i].size = (size_t)(size - off < psize ? size - off : psize);
        for (size_t j = 0; j < nhave; j++)
            if (have[j].number == i + 1 && have[j].size == parts[i].size && have[j].etag[0]) {
                snprintf(parts[i].etag, sizeof(parts[i].etag), "%s", have[j].etag);
                atomic_fetch_add(&w->n_resumed, 1);
            }
    }
    /* The parts not in the store yet, PART_THREADS at a time. */
    uint64_t copy_len = copy_below / psize * psize;
    struct part_run pr = {.u = u, .fd = fd, .psize = psize, .parts = parts, .nparts = nparts,
                          .upload_id = mp->upload_id,
                          .copy_len = copy_len >= PART_MIN ? copy_len : 0};
    unsigned nt = nparts < PART_THREADS ? nparts : PART_THREADS;
    pthread_t th[PART_THREADS];
    unsigned started = 0;
    for (; started + 1 < nt; started++)
        if (pthread_create(&th[started], NULL, part_main, &pr) != 0)
            break;
    part_main(&pr);
    for (unsigned i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    if ((r = pr.err))
        goto out;
    r = ops->mp_complete(u->store, u->bucket, u->key, mp->upload_id, parts, nparts, u->etag);
    if (r == 0)
        inode_mp_del(w->t, u->a.ino);
out:
    if (r && r != EAGAIN && r != ETIMEDOUT && r != ECANCELED && mp->upload_id[0]) {
        /* Not a passing failure (a part the store refuses, say): start over next time. */
        ops->mp_abort(u->store, u->bucket, u->key, mp->upload_id);
        inode_mp_del(w->t, u->a.ino);
    }
    free(parts);
    free(have);
    free(mp);
    return r;
}

/*
 * A stage call of u's upload failed with r: note that the failure is the
 * local disk's (its staged bytes cannot be read), unless it is a passing
 * shortage of memory or descriptors.  Returns r.
 */
static int stage_failed(struct upload *u, int r)
{
    if (r != ENOMEM && r != EMFILE && r != ENFILE && r != EINTR && r != EAGAIN)
        u->stage_err = true;
    return r;
}

/* Upload the staged bytes of u's file: as many as the table says it has. */
static int upload_staged(struct upload *u)
{
    struct wb *w = u->w;
    int fd = -1;
    int r = stage_open(w->st, u->a.export_id, u->a.ino, &fd);
    if (r == ENOENT && u->a.size == 0) {
        fd = -1; /* created and never written: an empty object */
    } else if (r == ENOENT) {
        /* Extended but never written (SETATTR size): a hole, as reads see it. */
        if ((r = stage_truncate(w->st, u->a.export_id, u->a.ino, u->a.size)) ||
            (r = stage_open(w->st, u->a.export_id, u->a.ino, &fd)))
            return stage_failed(u, r);
    } else if (r) {
        return stage_failed(u, r);
    }
    uint64_t size = u->a.size, have = 0;
    u->meta.size = size;
    /*
     * The table's size is the file's: a staged file that is shorter (a crash
     * between a size change and the staged file following it) ends in a
     * hole; bytes past the size (a write the table never had) are not sent.
     */
    if (fd >= 0 && stage_size(w->st, u->a.export_id, u->a.ino, &have) == 0 && have < size &&
        (r = stage_truncate(w->st, u->a.export_id, u->a.ino, size))) {
        close(fd);
        return stage_failed(u, r);
    }
    /*
     * What is still the bucket's object (a big file appended to or patched
     * near its end) is copied in the store rather than sent again; if the
     * object changed meanwhile (a conflict: If-Match fails), everything is
     * sent from the stage, which has it all.
     */
    uint64_t copy_below = 0;
    if (u->a.in_bucket && u->a.etag[0] && u->d.base_size && !u->conflict)
        copy_below = u->d.clean_below < u->d.base_size ? u->d.clean_below : u->d.base_size;
    if (size <= w->c.single_max)
        r = upload_single(u, fd, size);
    else if ((r = upload_multipart(u, fd, size, copy_below)) == ESTALE && copy_below)
        r = upload_multipart(u, fd, size, 0);
    if (fd >= 0)
        close(fd);
    return r;
}

/*
 * The bytes just uploaded are the new object version's: put them into the
 * block cache, so that reading the file back is a hit, not a download (a
 * checkpoint written, then evaluated).  Before the upload is recorded, with
 * no lock: a write meanwhile makes the upload not clean, and the caller
 * drops these blocks again before anyone reads that version (reads of a
 * local file come from the stage).  Best effort.
 */
static void keep_in_cache(struct upload *u)
{
    struct wb *w = u->w;
    struct cache *c = w->c.cache;
    uint64_t size = u->a.size;
    int fd;
    if (!c || !size || !u->etag[0])
        return;
    /* Written again during the upload: not clean, nothing worth keeping. */
    struct inode_attr now;
    struct inode_dirty d;
    char *key = malloc(OBJ_KEY_MAX + 1);
    int r = key ? inode_upload_get(w->t, u->a.ino, &now, key, &d) : ENOMEM;
    free(key);
    if (r || d.dver != u->d.dver || stage_open(w->st, u->a.export_id, u->a.ino, &fd))
        return;
    uint32_t bs = cache_block_size(c);
    size_t chunk = bs >= (4u << 20) ? bs : (4u << 20) / bs * bs;
    char *buf = malloc(chunk);
    struct cache_obj o = {
        .export_id = u->a.export_id,
        .gen = u->a.gen,
        .ino = u->a.ino,
        .version = cache_version(u->etag, size),
        .size = size,
        .store = u->store,
        .bucket = u->bucket,
        .key = u->key,
        .etag = u->etag,
        .noevict_when_full = u->shuffle,
    };
    for (uint64_t off = 0; buf && off < size;) {
        size_t want = size - off < chunk ? (size_t)(size - off) : chunk, got = 0;
        while (got < want) {
            ssize_t n = pread(fd, buf + got, want - got, (off_t)(off + got));
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        if (got < want)
            break; /* the upload truncated it to size: a short read is an error here */
        u->cached = true;
        if (cache_insert(c, &o, off, buf, want))
            break;
        off += want;
    }
    free(buf);
    close(fd);
}

/* Drop every cached block of ino (blocks keep_in_cache may have put there). */
static void drop_cached(struct wb *w, uint32_t export_id, uint64_t ino)
{
    if (w->c.cache && cache_evict(w->c.cache, export_id, &ino, 1, NULL, NULL))
        LOG_AT(LOG_WARNING, "writeback: dropping the cached blocks of inode %llu failed",
               (unsigned long long)ino);
}

/*
 * Did the object change in the bucket under our changes?  Logged and
 * counted; we win (true: it did, or it is gone).
 */
static bool check_conflict(struct upload *u)
{
    if (!u->a.in_bucket || S_ISDIR(u->a.mode) || !u->a.etag[0])
        return false;
    struct obj_meta m;
    int r = obj_head(u->store, u->bucket, u->key, &m);
    if ((r == 0 && strcmp(m.etag, u->a.etag) != 0) || r == ENOENT) {
        atomic_fetch_add(&u->w->n_conflicts, 1);
        LOG_AT(LOG_WARNING, "writeback: %s:%s was %s in the bucket while it had changes here; "
                            "the changes made here are uploaded over it",
               u->bucket, u->key, r == ENOENT ? "deleted" : "changed");
        return true;
    }
    return false;
}

/* Upload ino if it is still local and due; returns the store's error, if any. */
static int upload_one(struct wb *w, uint64_t ino)
{
    struct upload *u = calloc(1, sizeof(*u));
    int r;
    if (!u)
        return ENOMEM;
    u->w = w;
    if ((r = inode_upload_begin(w->t, ino))) {
        free(u);
        return r == EBUSY ? 0 : r; /* a namespace change holds it: later */
    }
    r = inode_upload_get(w->t, ino, &u->a, u->key, &u->d);
    if (r && !(r == EBUSY && u->a.moving)) {
        inode_upload_end(w->t, ino);
        free(u);
        if (r == ENOENT) {
            /* Not local any more (removed, say): nothing is left to write back. */
            pthread_mutex_lock(&w->mu);
            size_t i = stuck_at(w, ino);
            if (i < w->nstuck && w->stuck[i].ino == ino)
                stuck_remove_at(w, i);
            pthread_mutex_unlock(&w->mu);
        }
        return r == ENOENT || r == EBUSY ? 0 : r;
    }
    /*
     * The export's store and bucket (copied: a reload may replace the
     * exports), and the file's name for messages: EXPORT/PATH.
     */
    char *bucket = NULL, *name = NULL;
    pthread_mutex_lock(&w->mu);
    struct wb_export *x = export_find(w, u->d.export_id);
    if (x) {
        u->store = x->store;
        u->shuffle = x->shuffle;
        bucket = strdup(x->bucket);
        size_t pl = strlen(x->path), kl = strlen(u->key);
        const char *rel = u->key + (x->prefix_len <= kl ? x->prefix_len : kl);
        if ((name = malloc(pl + 1 + strlen(rel) + 1)))
            sprintf(name, "%s%s%s", x->path, pl && x->path[pl - 1] == '/' ? "" : "/", rel);
    }
    pthread_mutex_unlock(&w->mu);
    if (!bucket || !name) {
        inode_upload_end(w->t, ino);
        free(bucket);
        free(name);
        free(u);
        return x ? ENOMEM : 0; /* no export (gone for now): kept */
    }
    u->bucket = bucket;
    atomic_fetch_add(&w->n_inflight, 1);
    if (u->a.moving) {
        /* Its directory was renamed: the object moves to the new key first. */
        r = inode_move_object(w->t, u->store, u->bucket, ino);
        if (r == 0)
            r = inode_upload_get(w->t, ino, &u->a, u->key, &u->d);
        if (r == ENOENT || r == EBUSY) {
            r = 0; /* moved, and nothing else to upload (or never: a silly rename's) */
            goto end;
        }
        if (r)
            goto end;
    }
    meta_of(&u->a, &u->meta);

    u->conflict = check_conflict(u);
    if (S_ISDIR(u->a.mode)) {
        r = u->key[0] ? obj_put(u->store, u->bucket, u->key, "", 0, &u->meta, u->etag) : 0;
    } else if (u->a.staged) {
        r = upload_staged(u);
    } else {
        /* Attributes only: the object gets them in place (one new version). */
        r = obj_copy(u->store, u->bucket, u->key, u->key, &u->meta);
        if (r == 0) {
            struct obj_meta m;
            if (obj_head(u->store, u->bucket, u->key, &m) == 0)
                snprintf(u->etag, sizeof(u->etag), "%s", m.etag);
        }
    }
    if (r == 0 && u->a.staged && S_ISREG(u->a.mode))
        keep_in_cache(u);
    if (r == 0) {
        bool clean = false, moved = false;
        wb_lock(w, ino, true);
        r = inode_upload_done(w->t, ino, u->d.dver, u->key,
                              S_ISDIR(u->a.mode) ? NULL : u->etag, &clean, &moved);
        if (r == 0 && clean && u->a.staged) {
            int sr = stage_remove(w->st, u->a.export_id, ino);
            if (sr)
                LOG_AT(LOG_WARNING, "writeback: dropping the staged bytes of inode %llu: %s",
                       (unsigned long long)ino, strerror(sr));
        }
        wb_unlock(w, ino);
        if (u->cached && (r || !clean))
            drop_cached(w, u->a.export_id, ino);
        if (r == 0) {
            atomic_fetch_add(&w->n_uploads, 1);
            if (!clean)
                atomic_fetch_add(&w->n_superseded, 1);
            if (moved) {
                /* Renamed while it was uploaded: this object is nobody's. */
                obj_del(u->store, u->bucket, u->key);
            }
        }
    }
end:
    atomic_fetch_sub(&w->n_inflight, 1);
    inode_upload_end(w->t, ino);
    if (r && r != ECANCELED && u->stage_err) {
        /* The local disk's failure, not the store's: this file alone waits. */
        atomic_fetch_add(&w->n_failures, 1);
        pthread_mutex_lock(&w->mu);
        bool first = stuck_note(w, ino, u->d.export_id, r, name);
        pthread_mutex_unlock(&w->mu);
        if (first) {
            atomic_fetch_add(&w->n_unwritable, 1);
            LOG_AT(LOG_ERR,
                   "writeback: %s: the data written to it cannot be read from the cache disk "
                   "(%s: its staged file was deleted or damaged under the daemon); it cannot be "
                   "written back to %s:%s; retried every 60 s at most in case it is restored",
                   name, strerror(r), u->bucket, u->key);
        } else {
            LOG_AT(LOG_DEBUG, "writeback: %s: its staged data still cannot be read: %s", name,
                   strerror(r));
        }
    } else if (r && r != ECANCELED) {
        atomic_fetch_add(&w->n_failures, 1);
        LOG_AT(LOG_WARNING, "writeback: uploading %s:%s failed: %s; retrying later", u->bucket,
               u->key, strerror(r));
        export_backoff(w, u->d.export_id, r);
    } else if (r == 0) {
        export_backoff(w, u->d.export_id, 0);
        pthread_mutex_lock(&w->mu);
        size_t i = stuck_at(w, ino);
        bool was = i < w->nstuck && w->stuck[i].ino == ino;
        if (was)
            stuck_remove_at(w, i);
        pthread_mutex_unlock(&w->mu);
        if (was)
            LOG_AT(LOG_NOTICE, "writeback: %s: its staged data is readable again: written back",
                   name);
    }
    if (r == ECANCELED)
        r = 0;
    free(bucket);
    free(name);
    free(u);
    return r;
}

/* ---- threads ------------------------------------------------------------------------ */

static void *worker_main(void *arg)
{
    struct wb *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->stopping && w->qlen == 0)
            pthread_cond_wait(&w->work, &w->mu);
        if (w->stopping)
            break;
        uint64_t ino = w->queue[w->qhead];
        w->qhead = (w->qhead + 1) % QUEUE_MAX;
        w->qlen--;
        pthread_mutex_unlock(&w->mu);
        upload_one(w, ino);
        pthread_mutex_lock(&w->mu);
        busy_del(w, ino);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Whether an export flush of export_id is in progress.  w->mu held. */
static bool flushing_export(const struct wb *w, uint32_t export_id)
{
    for (size_t i = 0; i < w->nflush_exp; i++)
        if (w->flush_exp[i] == export_id)
            return true;
    return false;
}

/* One pass over the local inodes: queue what is due. */
static void scan_once(struct wb *w)
{
    struct inode_dirty *d = malloc(SCAN_BATCH * sizeof(*d));
    if (!d)
        return;
    uint64_t after = 0;
    size_t n;
    pthread_mutex_lock(&w->mu);
    bool all = w->flush_all > 0;
    uint64_t one = w->flush_ino;
    pthread_mutex_unlock(&w->mu);
    /*
     * Dirty space past half of cache.dirty_max: upload now, whatever the
     * delay, so writers waiting on NFS3ERR_JUKEBOX get room soon.
     */
    struct stage_stats ss;
    stage_get_stats(w->st, &ss);
    bool pressure = ss.max_bytes && ss.bytes > ss.max_bytes / 2;
    all = all || pressure;
    pthread_mutex_lock(&w->mu);
    uint64_t gen = w->scans + 1; /* this scan's number */
    pthread_mutex_unlock(&w->mu);
    bool complete = false; /* every local inode was seen */
    do {
        if (inode_dirty_scan(w->t, after, d, SCAN_BATCH, &n) != 0)
            break;
        int64_t now = clock_wall_ns(), mnow = clock_mono_ns();
        pthread_mutex_lock(&w->mu);
        bool full = false;
        for (size_t i = 0; i < n && !full; i++) {
            after = d[i].ino;
            struct wb_stuck *e = w->nstuck ? stuck_find(w, d[i].ino) : NULL;
            if (e)
                e->seen = gen;
            struct wb_export *x = export_find(w, d[i].export_id);
            if (!x || mnow < x->backoff_until || (e && mnow < e->until))
                continue;
            bool due = all || one == d[i].ino || flushing_export(w, d[i].export_id) ||
                       clock_wall_passed(d[i].last_ns, now, (int64_t)x->delay * 1000000000LL);
            if (due)
                full = !enqueue(w, d[i].ino);
        }
        bool stop = w->stopping || full;
        complete = !stop && n < SCAN_BATCH;
        pthread_mutex_unlock(&w->mu);
        if (stop)
            break;
    } while (n == SCAN_BATCH);
    free(d);
    if (complete) {
        /* Files that cannot be written back and are not local any more (removed): forget them. */
        pthread_mutex_lock(&w->mu);
        for (size_t i = w->nstuck; i-- > 0;)
            if (w->stuck[i].seen != gen)
                stuck_remove_at(w, i);
        pthread_mutex_unlock(&w->mu);
    }
}

/* Close the background moves whose files have all moved (inode_moves_settle). */
static void settle_moves(struct wb *w)
{
    uint64_t open = 0;
    if (inode_moves_open(w->t, false, 0, &open) != 0 || open == 0)
        return;
    pthread_mutex_lock(&w->mu);
    size_t n = w->nex;
    struct wb_export *ex = calloc(n ? n : 1, sizeof(*ex));
    for (size_t i = 0; ex && i < n; i++) {
        ex[i] = w->ex[i];
        ex[i].bucket = strdup(w->ex[i].bucket);
    }
    int64_t now = clock_mono_ns();
    pthread_mutex_unlock(&w->mu);
    for (size_t i = 0; ex && i < n; i++) {
        if (ex[i].bucket && now >= ex[i].backoff_until) {
            int r = inode_moves_settle(w->t, ex[i].id, ex[i].store, ex[i].bucket);
            if (r)
                LOG_AT(LOG_WARNING, "writeback: finishing a directory move in %s: %s; "
                                    "retrying later", ex[i].bucket, strerror(r));
        }
        free(ex[i].bucket);
    }
    free(ex);
}

static void *scanner_main(void *arg)
{
    struct wb *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stopping) {
        w->kicked = false;
        pthread_mutex_unlock(&w->mu);
        scan_once(w);
        settle_moves(w);
        pthread_mutex_lock(&w->mu);
        w->scans++;
        pthread_cond_broadcast(&w->scanned);
        if (w->stopping || w->kicked)
            continue;
        struct timespec ts = clock_deadline((int64_t)w->c.scan_ms * 1000000LL);
        pthread_cond_timedwait(&w->scan, &w->mu, &ts);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

void wb_kick(struct wb *w)
{
    pthread_mutex_lock(&w->mu);
    w->kicked = true;
    pthread_cond_signal(&w->scan);
    pthread_mutex_unlock(&w->mu);
}

/* What a flush covers: one inode, one export, or everything. */
struct flush_scope {
    uint64_t ino;       /* 0: not one inode */
    bool one_export;
    uint32_t export_id;
};

/*
 * Count the local inodes of one export or of all (one_export false), and
 * among them those that cannot be written back and failed again at or
 * after since_ns (*stuck; NULL: not counted).  0 or an errno.
 */
static int count_local(struct wb *w, bool one_export, uint32_t export_id, int64_t since_ns,
                       uint64_t *count, uint64_t *stuck)
{
    struct inode_dirty d[256];
    size_t n = 0;
    uint64_t after = 0;
    *count = 0;
    if (stuck)
        *stuck = 0;
    do {
        int r = inode_dirty_scan(w->t, after, d, 256, &n);
        if (r)
            return r;
        if (stuck)
            pthread_mutex_lock(&w->mu);
        for (size_t i = 0; i < n; i++) {
            after = d[i].ino;
            if (one_export && d[i].export_id != export_id)
                continue;
            ++*count;
            struct wb_stuck *e = stuck && w->nstuck ? stuck_find(w, d[i].ino) : NULL;
            if (e && e->last_try >= since_ns)
                ++*stuck;
        }
        if (stuck)
            pthread_mutex_unlock(&w->mu);
    } while (n == 256);
    /* A directory move still open has old objects to delete: not in the bucket as it should. */
    uint64_t moves = 0;
    int r = inode_moves_open(w->t, one_export, export_id, &moves);
    *count += moves;
    return r;
}

int wb_local_count(struct wb *w, bool one_export, uint32_t export_id, uint64_t *count)
{
    return count_local(w, one_export, export_id, 0, count, NULL);
}

/*
 * Where a flush of f that began at since_ns stands: 0 (nothing in scope is
 * local any more), EIO (what is left cannot be written back: each of it
 * failed so since the flush began) or EINPROGRESS.
 */
static int flush_state(struct wb *w, const struct flush_scope *f, int64_t since_ns)
{
    uint64_t count = 0, stuck = 0;
    if (f->ino) {
        struct inode_attr a;
        struct inode_dirty d;
        char *key = malloc(OBJ_KEY_MAX + 1);
        int gr = key ? inode_upload_get(w->t, f->ino, &a, key, &d) : ENOMEM;
        free(key);
        if (gr == ENOENT)
            return 0;
        pthread_mutex_lock(&w->mu);
        struct wb_stuck *e = stuck_find(w, f->ino);
        bool failed = e && e->last_try >= since_ns;
        pthread_mutex_unlock(&w->mu);
        return failed ? EIO : EINPROGRESS;
    }
    if (count_local(w, f->one_export, f->export_id, since_ns, &count, &stuck))
        return EINPROGRESS;
    return count == 0 ? 0 : count == stuck ? EIO : EINPROGRESS;
}

int wb_unwritable(struct wb *w, uint64_t ino, bool one_export, uint32_t export_id,
                  void (*cb)(void *arg, const char *name, int err), void *arg)
{
    pthread_mutex_lock(&w->mu);
    size_t n = 0;
    struct wb_stuck *v = malloc((w->nstuck ? w->nstuck : 1) * sizeof(*v));
    for (size_t i = 0; v && i < w->nstuck; i++) {
        const struct wb_stuck *e = &w->stuck[i];
        if ((ino && e->ino != ino) || (!ino && one_export && e->export_id != export_id))
            continue;
        v[n] = *e;
        if (!(v[n].name = strdup(e->name)))
            break;
        n++;
    }
    pthread_mutex_unlock(&w->mu);
    if (!v)
        return ENOMEM;
    for (size_t i = 0; i < n; i++) {
        cb(arg, v[i].name, v[i].err);
        free(v[i].name);
    }
    free(v);
    return 0;
}

static int flush_run(struct wb *w, const struct flush_scope *f, unsigned wait_ms)
{
    pthread_mutex_lock(&w->mu);
    bool as_export = false;
    if (f->ino)
        w->flush_ino = f->ino;
    else if (f->one_export && w->nflush_exp < FLUSH_EXPORTS)
        w->flush_exp[w->nflush_exp++] = f->export_id, as_export = true;
    else
        w->flush_all++;
    /*
     * A flush goes now, backoff or not: the operator asked.  Files that
     * could not be written back are tried again too (their data may have
     * been restored).
     */
    for (size_t i = 0; i < w->nex; i++)
        if (!f->one_export || w->ex[i].id == f->export_id)
            w->ex[i].backoff_until = 0;
    int64_t since = clock_mono_ns();
    for (size_t i = 0; i < w->nstuck; i++)
        if (f->ino ? w->stuck[i].ino == f->ino
                   : !f->one_export || w->stuck[i].export_id == f->export_id)
            w->stuck[i].until = 0;
    w->kicked = true;
    pthread_cond_signal(&w->scan);
    pthread_mutex_unlock(&w->mu);
    int r = 0;
    if (wait_ms) {
        int64_t until = clock_mono_ns() + (int64_t)wait_ms * 1000000LL;
        while ((r = flush_state(w, f, since)) == EINPROGRESS) {
            if (clock_mono_ns() >= until) {
                r = ETIMEDOUT;
                break;
            }
            usleep(20000);
            wb_kick(w);
        }
    }
    pthread_mutex_lock(&w->mu);
    if (!wait_ms) {
        /*
         * The request must outlive a whole scan that began after it (the
         * one in progress may have read the flags before): that scan queues
         * everything in scope.  Bounded: a stuck scan does not hold us.
         */
        uint64_t target = w->scans + 2;
        for (int i = 0; i < 50 && w->scans < target && !atomic_load(&w->stopping); i++) {
            struct timespec ts = clock_deadline(100000000LL);
            pthread_cond_timedwait(&w->scanned, &w->mu, &ts);
        }
    }
    if (f->ino && w->flush_ino == f->ino) {
        w->flush_ino = 0;
    } else if (as_export) {
        for (size_t i = 0; i < w->nflush_exp; i++)
            if (w->flush_exp[i] == f->export_id) {
                w->flush_exp[i] = w->flush_exp[--w->nflush_exp];
                break;
            }
    } else if (!f->ino) {
        w->flush_all--;
    }
    pthread_mutex_unlock(&w->mu);
    return r;
}

int wb_flush(struct wb *w, uint64_t ino, unsigned wait_ms)
{
    struct flush_scope f = {.ino = ino};
    return flush_run(w, &f, wait_ms);
}

int wb_flush_export(struct wb *w, uint32_t export_id, unsigned wait_ms)
{
    struct flush_scope f = {.one_export = true, .export_id = export_id};
    return flush_run(w, &f, wait_ms);
}

void wb_get_stats(struct wb *w, struct wb_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->uploads = atomic_load(&w->n_uploads);
    out->upload_bytes = atomic_load(&w->n_bytes);
    out->parts = atomic_load(&w->n_parts);
    out->parts_resumed = atomic_load(&w->n_resumed);
    out->failures = atomic_load(&w->n_failures);
    out->conflicts = atomic_load(&w->n_conflicts);
    out->superseded = atomic_load(&w->n_superseded);
    out->copied_bytes = atomic_load(&w->n_copied);
    out->inflight = atomic_load(&w->n_inflight);
    out->unwritable_total = atomic_load(&w->n_unwritable);
    pthread_mutex_lock(&w->mu);
    out->unwritable = w->nstuck;
    pthread_mutex_unlock(&w->mu);
    inode_dirty_summary(w->t, &out->pending, &out->oldest_ns);
}

int wb_export_backoff(struct wb *w, uint32_t id, int64_t *until_ns, int64_t *step_ns)
{
    pthread_mutex_lock(&w->mu);
    struct wb_export *x = export_find(w, id);
    /* Kept on CLOCK_MONOTONIC; told as the wall-clock time it is due. */
    *until_ns = x && x->backoff_until
                    ? clock_wall_ns() + (x->backoff_until - clock_mono_ns()) : 0;
    *step_ns = x ? x->backoff_ns : 0;
    pthread_mutex_unlock(&w->mu);
    return x ? 0 : ENOENT;
}

struct staged_list {
    uint32_t *exp;
    uint64_t *ino;
    size_t n, cap;
};

static int collect_staged(void *arg, uint32_t exp, uint64_t ino, uint64_t size)
{
    struct staged_list *l = arg;
    (void)size;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 256;
        uint32_t *e = realloc(l->exp, cap * sizeof(*e));
        if (e)
            l->exp = e;
        uint64_t *i = e ? realloc(l->ino, cap * sizeof(*i)) : NULL;
        if (!i)
            return ENOMEM;
        l->ino = i;
        l->cap = cap;
    }
    l->exp[l->n] = exp;
    l->ino[l->n++] = ino;
    return 0;
}

/*
 * A staged file's data is the stage's: blocks of it that keep_in_cache put
 * into the cache before a crash (its upload not recorded) may hold bytes of
 * a later write under the uploaded version's name.  Drop them, export by
 * export, in batches (one pass over the cache index per call).
 */
static int drop_staged_from_cache(struct wb *w)
{
    struct staged_list l = {0};
    int r = stage_list(w->st, collect_staged, &l);
    for (size_t i = 0; r == 0 && i < l.n;) {
        uint64_t batch[4096];
        size_t n = 0;
        uint32_t exp = l.exp[i];
        for (size_t j = i; j < l.n && n < 4096; j++)
            if (l.exp[j] == exp && l.ino[j] != UINT64_MAX) {
                batch[n++] = l.ino[j];
                l.ino[j] = UINT64_MAX; /* done */
            }
        r = cache_evict(w->c.cache, exp, batch, n, NULL, NULL);
        while (i < l.n && l.ino[i] == UINT64_MAX)
            i++;
    }
    free(l.exp);
    free(l.ino);
    return r;
}

struct wb *wb_create(const struct wb_conf *c, struct inode_table *t, struct stage *st)
{
    struct wb *w = calloc(1, sizeof(*w));
    if (!w) {
        errno = ENOMEM;
        return NULL;
    }
    w->c = *c;
    if (!w->c.threads)
        w->c.threads = 4;
    if (!w->c.single_max)
        w->c.single_max = 16ull << 20;
    if (!w->c.part_size)
        w->c.part_size = 16ull << 20;
    if (w->c.part_size < PART_MIN)
        w->c.part_size = PART_MIN;
    if (!w->c.scan_ms)
        w->c.scan_ms = 500;
    w->t = t;
    w->st = st;
    if (w->c.cache) {
        int r = drop_staged_from_cache(w);
        if (r) {
            free(w);
            errno = r;
            return NULL;
        }
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->work, NULL);
    clock_cond_init(&w->scan);    /* timed waits: CLOCK_MONOTONIC deadlines */
    clock_cond_init(&w->scanned);
    for (int i = 0; i < STRIPES; i++)
        pthread_rwlock_init(&w->stripes[i], NULL);
    w->queue = calloc(QUEUE_MAX, sizeof(*w->queue));
    w->capbusy = QUEUE_MAX + w->c.threads;
    w->busy = calloc(w->capbusy, sizeof(*w->busy));
    w->workers = calloc(w->c.threads, sizeof(*w->workers));
    if (!w->queue || !w->busy || !w->workers) {
        wb_destroy(w);
        errno = ENOMEM;
        return NULL;
    }
    for (unsigned i = 0; i < w->c.threads; i++) {
        int r = pthread_create(&w->workers[i], NULL, worker_main, w);
        if (r) {
            wb_destroy(w);
            errno = r;
            return NULL;
        }
        w->nworkers++;
    }
    int r = pthread_create(&w->scanner, NULL, scanner_main, w);
    if (r) {
        wb_destroy(w);
        errno = r;
        return NULL;
    }
    w->scanner_started = true;
    return w;
}

void wb_destroy(struct wb *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_broadcast(&w->work);
    pthread_cond_broadcast(&w->scan);
    pthread_mutex_unlock(&w->mu);
    if (w->scanner_started)
        pthread_join(w->scanner, NULL);
    for (unsigned i = 0; i < w->nworkers; i++)
        pthread_join(w->workers[i], NULL);
    for (size_t i = 0; i < w->nex; i++) {
        free(w->ex[i].bucket);
        free(w->ex[i].path);
    }
    free(w->ex);
    for (size_t i = 0; i < w->nstuck; i++)
        free(w->stuck[i].name);
    free(w->stuck);
    free(w->queue);
    free(w->busy);
    free(w->workers);
    for (int i = 0; i < STRIPES; i++)
        pthread_rwlock_destroy(&w->stripes[i]);
    pthread_cond_destroy(&w->work);
    pthread_cond_destroy(&w->scan);
    pthread_cond_destroy(&w->scanned);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
