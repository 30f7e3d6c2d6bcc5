/*
 * xfile.c - cross-file prefetch (see xfile.h).
 *
 * State: a table of XF_STREAMS directory streams (export, directory, the
 * last file read, how many in-order steps were seen, the files predicted
 * and prefetched ahead, the window), replaced least recently used first;
 * a ring of XF_QUEUE jobs; one worker thread.
 *
 *   xfile_note (any thread, never waits)
 *     file in the stream's predicted window  -> slide; when less than half
 *                                               the window is left ahead,
 *                                               double it and queue EXTEND
 *     any other file                          -> queue CHECK(prev, this)
 *   worker
 *     CHECK   is `this` the next regular file after `prev` in name order?
 *             yes: the stream has a step; prefetch the next window of files
 *             no:  the stream starts over from `this`
 *     EXTEND  prefetch the files after the last one predicted
 *
 * The worker walks directories with inode_readdir (cookie = the inode of
 * the entry to continue after) and names each file's version to the cache
 * exactly as a READ would (fileio.c), so a prefetched block is a hit for
 * the reader.  Jobs carry a copy of the export's description: an export
 * removed by a reload meanwhile is only walked once more.
 *
 * Lock: x->lock guards the streams, the queue and the stop flag; it is not
 * held across inode table or cache calls.
 */
#include "meta/xfile.h"

#include "cache/cache.h"
#include "common/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define XF_STREAMS 64
#define XF_QUEUE 256
#define XF_WINDOW0 4
#define XF_WINDOW_MAX 256

struct stream {
    uint32_t export_id;
    uint64_t dir;     /* 0: unused slot */
    uint64_t last;    /* inode of the last file read */
    unsigned steps;   /* in-order steps seen */
    unsigned window;  /* files to keep ahead (0: none yet) */
    uint64_t pred[XF_WINDOW_MAX]; /* files prefetched ahead, in name order */
    unsigned npred;
    bool extending;   /* an EXTEND is queued or running */
    uint64_t used;
};

enum job_kind { J_CHECK, J_EXTEND };

struct job {
    enum job_kind kind;
    struct meta_export e; /* bucket and prefix point into the job */
    char bucket[256];
    char prefix[OBJ_KEY_MAX + 1];
    uint64_t dir, prev, cur;
    unsigned count;
};

struct xfile {
    struct inode_table *t;
    struct cache *cache;
    uint64_t window_bytes;
    pthread_mutex_t lock;
    pthread_cond_t work; /* a job was queued, or stop */
    struct stream streams[XF_STREAMS];
    uint64_t clock;
    struct job *q; /* ring of XF_QUEUE */
    unsigned qhead, qlen;
    bool stop;
    pthread_t thread;
    _Atomic uint64_t n_streams, n_files, n_bytes, n_dropped;
};

/* lock held */
static struct stream *stream_find(struct xfile *x, uint32_t export_id, uint64_t dir)
{
    for (unsigned i = 0; i < XF_STREAMS; i++)
        if (x->streams[i].dir == dir && x->streams[i].export_id == export_id)
            return &x->streams[i];
    return NULL;
}

/* Queue a job (lock held); false when the queue is full. */
static bool enqueue(struct xfile *x, enum job_kind kind, const struct meta_export *e,
                    uint64_t dir, uint64_t prev, uint64_t cur, unsigned count)
{
    if (x->qlen == XF_QUEUE || strlen(e->bucket) >= sizeof(x->q[0].bucket) ||
        strlen(e->prefix) >= sizeof(x->q[0].prefix)) {
        atomic_fetch_add(&x->n_dropped, 1);
        return false;
    }
    struct job *j = &x->q[(x->qhead + x->qlen++) % XF_QUEUE];
    j->kind = kind;
    j->e = *e;
    strcpy(j->bucket, e->bucket);
    strcpy(j->prefix, e->prefix);
    j->e.bucket = j->bucket;
    j->e.prefix = j->prefix;
    j->dir = dir;
    j->prev = prev;
    j->cur = cur;
    j->count = count;
    pthread_cond_signal(&x->work);
    return true;
}

void xfile_note(struct xfile *x, const struct meta_export *e, const struct inode_attr *a)
{
    if (!x || !S_ISREG(a->mode))
        return;
    pthread_mutex_lock(&x->lock);
    uint64_t now = ++x->clock;
    struct stream *s = stream_find(x, e->id, a->parent);
    if (!s) {
        s = &x->streams[0];
        for (unsigned i = 1; i < XF_STREAMS; i++)
            if (x->streams[i].used < s->used)
                s = &x->streams[i];
        memset(s, 0, sizeof(*s));
        s->export_id = e->id;
        s->dir = a->parent;
        s->last = a->ino;
        s->used = now;
        pthread_mutex_unlock(&x->lock);
        return;
    }
    s->used = now;
    if (a->ino == s->last) {
        pthread_mutex_unlock(&x->lock);
        return;
    }
    unsigned idx = 0;
    while (idx < s->npred && s->pred[idx] != a->ino)
        idx++;
    if (idx < s->npred) {
        /* In the window: slide it, and keep at least half of it ahead. */
        s->last = a->ino;
        s->steps++;
        memmove(s->pred, s->pred + idx + 1, (s->npred - idx - 1) * sizeof(s->pred[0]));
        s->npred -= idx + 1;
        if (s->npred < s->window / 2 && !s->extending) {
            if (s->window < XF_WINDOW_MAX)
                s->window *= 2;
            uint64_t from = s->npred ? s->pred[s->npred - 1] : a->ino;
            if (enqueue(x, J_EXTEND, e, s->dir, from, 0, s->window - s->npred))
                s->extending = true;
        }
        pthread_mutex_unlock(&x->lock);
        return;
    }
    enqueue(x, J_CHECK, e, s->dir, s->last, a->ino, 0);
    s->last = a->ino;
    s->npred = 0;
    s->window = 0;
    pthread_mutex_unlock(&x->lock);
}

/* ---- the worker -------------------------------------------------------- */

struct walk {
    struct xfile *x;
    const struct meta_export *e;
    unsigned want, n;
    uint64_t bytes;
    uint64_t *found; /* inodes of the regular files, in order */
    bool first_only; /* CHECK: stop at the first regular file */
};

static int walk_cb(void *arg, const char *name, uint64_t cookie, const struct inode_attr *a)
{
    struct walk *w = arg;
    (void)name;
    (void)cookie;
    if (!S_ISREG(a->mode))
        return 0;
    if (w->first_only) {
        w->found[w->n++] = a->ino;
        return 1;
    }
    if (w->n >= w->want || (w->n > 0 && w->bytes >= w->x->window_bytes))
        return 1;
    w->found[w->n++] = a->ino;
    if (a->size == 0)
        return 0;
    /* Written here and not uploaded: the bytes are in the stage, the object may not exist. */
    uint64_t len = a->in_bucket && !a->staged ? a->size : 0;
    if (len > w->x->window_bytes - (w->bytes < w->x->window_bytes ? w->bytes : 0))
        len = w->x->window_bytes > w->bytes ? w->x->window_bytes - w->bytes : 0;
    char key[OBJ_KEY_MAX + 1];
    if (len && inode_key(w->x->t, a->ino, key, sizeof(key)) == 0) {
        struct cache_obj o = {
            .export_id = w->e->id,
            .gen = a->gen,
            .ino = a->ino,
            .version = cache_version(a->etag, a->size),
            .size = a->size,
            .store = w->e->store,
            .bucket = w->e->bucket,
            .key = key,
            .etag = a->etag,
            .noevict_when_full = w->e->shuffle,
        };
        cache_prefetch(w->x->cache, &o, 0, len);
        atomic_fetch_add(&w->x->n_files, 1);
        atomic_fetch_add(&w->x->n_bytes, len);
    }
    w->bytes += len;
    return 0;
}

/* Prefetch up to `count` files after `after` in dir; their inodes go to found. */
static unsigned prefetch_after(struct xfile *x, const struct meta_export *e, uint64_t dir,
                               uint64_t after, unsigned count, uint64_t *found)
{
    struct walk w = {.x = x, .e = e, .want = count, .found = found};
    bool eof;
    uint64_t verf;
    if (inode_readdir(x->t, e, dir, after, walk_cb, &w, &eof, &verf) != 0)
        return 0;
    return w.n;
}

static void run_job(struct xfile *x, struct job *j)
{
    uint64_t *found = malloc(XF_WINDOW_MAX * sizeof(*found));
    if (!found)
        return;
    unsigned count = j->count, n = 0;
    if (j->kind == J_CHECK) {
        /* Is cur the regular file right after prev? */
        struct walk w = {.x = x, .e = &j->e, .found = found, .first_only = true};
        bool eof;
        uint64_t verf;
        bool next = inode_readdir(x->t, &j->e, j->dir, j->prev, walk_cb, &w, &eof, &verf) == 0 &&
                    w.n == 1 && found[0] == j->cur;
        pthread_mutex_lock(&x->lock);
        struct stream *s = stream_find(x, j->e.id, j->dir);
        bool go = next && s && s->last == j->cur;
        if (s && !go && s->last == j->cur)
            s->steps = 0;
        if (go) {
            s->steps++;
            s->window = XF_WINDOW0;
            count = s->window;
            atomic_fetch_add(&x->n_streams, 1);
        }
        pthread_mutex_unlock(&x->lock);
        if (go)
            n = prefetch_after(x, &j->e, j->dir, j->cur, count, found);
        j->prev = j->cur;
    } else {
        n = prefetch_after(x, &j->e, j->dir, j->prev, count, found);
    }

    pthread_mutex_lock(&x->lock);
    struct stream *s = stream_find(x, j->e.id, j->dir);
    if (s && j->kind == J_EXTEND)
        s->extending = false;
    /* Append what was prefetched, if the stream is still where the job left it. */
    bool fits = s && (j->kind == J_CHECK || s->npred == 0
                          ? s->last == j->prev
                          : s->pred[s->npred - 1] == j->prev);
    for (unsigned i = 0; fits && i < n && s->npred < XF_WINDOW_MAX; i++)
        s->pred[s->npred++] = found[i];
    pthread_mutex_unlock(&x->lock);
    free(found);
}

static void *worker_main(void *arg)
{
    struct xfile *x = arg;
    struct job *j = malloc(sizeof(*j));
    pthread_mutex_lock(&x->lock);
    while (j) {
        while (!x->qlen && !x->stop)
            pthread_cond_wait(&x->work, &x->lock);
        if (x->stop)
            break;
        *j = x->q[x->qhead];
        j->e.bucket = j->bucket;
        j->e.prefix = j->prefix;
        x->qhead = (x->qhead + 1) % XF_QUEUE;
        x->qlen--;
        pthread_mutex_unlock(&x->lock);
        run_job(x, j);
        pthread_mutex_lock(&x->lock);
    }
    pthread_mutex_unlock(&x->lock);
    free(j);
    return NULL;
}

struct xfile *xfile_create(struct inode_table *t, struct cache *c, uint64_t window_bytes)
{
    struct xfile *x = calloc(1, sizeof(*x));
    if (!x)
        return NULL;
    x->t = t;
    x->cache = c;
    x->window_bytes = window_bytes ? window_bytes : (64u << 20);
    x->q = calloc(XF_QUEUE, sizeof(*x->q));
    pthread_mutex_init(&x->lock, NULL);
    pthread_cond_init(&x->work, NULL);
    int err = x->q ? pthread_create(&x->thread, NULL, worker_main, x) : ENOMEM;
    if (err) {
        pthread_cond_destroy(&x->work);
        pthread_mutex_destroy(&x->lock);
        free(x->q);
        free(x);
        errno = err;
        return NULL;
    }
    return x;
}

void xfile_destroy(struct xfile *x)
{
    if (!x)
        return;
    pthread_mutex_lock(&x->lock);
    x->stop = true;
    pthread_cond_signal(&x->work);
    pthread_mutex_unlock(&x->lock);
    pthread_join(x->thread, NULL);
    pthread_cond_destroy(&x->work);
    pthread_mutex_destroy(&x->lock);
    free(x->q);
    free(x);
}

void xfile_get_stats(struct xfile *x, struct xfile_stats *out)
{
    out->streams = atomic_load(&x->n_streams);
    out->files = atomic_load(&x->n_files);
    out->bytes = atomic_load(&x->n_bytes);
    out->dropped = atomic_load(&x->n_dropped);
}
