/*
 * admin.c - the admin control socket (see admin.h; the wire format is in
 * admin_proto.h).
 *
 * Threads
 *   accept   polls the listening socket and an eventfd that admin_stop
 *            writes; checks the peer's uid, finds a free slot and starts a
 *            request thread for the connection (or answers EBUSY).
 *   request  one per connection: reads the request line (bounded in size
 *            and time), serves it, writes the records and the final line,
 *            closes.  Long requests (preload, pin or evict of a tree) look between
 *            blocks and directory batches whether the client went away or
 *            the server is stopping, and stop if so.
 *
 * Slots: a fixed table of ADMIN_CLIENTS_MAX.  A slot is free, running (fd
 * open, thread running) or finished (fd closed, thread to be joined).  The
 * request thread closes its fd and marks the slot finished under a->lock;
 * the accept thread joins finished slots before reusing them; admin_stop
 * shuts down the fds of running slots under a->lock (so never a closed or
 * reused fd) and joins every thread.
 *
 * Lock order: a->lock only, never held across a socket write, a store
 * call or an inode/cache call.
 *
 * Walking a tree (pin, unpin, evict, preload): an explicit stack of directories
 * (ADMIN_WALK_DEPTH deep at most), each listed in batches with
 * inode_readdir; a batch stops after its first subdirectory, which is
 * walked before the rest of its parent, so memory stays bounded whatever
 * the size of the tree.  No inode-table call is in progress while a file
 * is read.  A preload walks twice: once to count files and bytes (the
 * listings it makes are then in the table), once to read them.
 */
#include "nfsd/admin.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"
#include "common/conf.h"
#include "common/log.h"
#include "meta/export.h"
#include "meta/fileio.h"
#include "meta/inode.h"
#include "nfsd/admin_proto.h"

#define ADMIN_SEND_TIMEOUT_S 30     /* a client that stops reading this long is dropped */
#define ADMIN_PROGRESS_MS 200       /* progress records at most this often */
#define ADMIN_WALK_DEPTH 128        /* directory levels below a named PATH */
#define ADMIN_WALK_BATCH 32         /* entries per inode_readdir call */
#define ADMIN_READ_CHUNK (4u << 20) /* bytes per meta_read of a preload */
#define ADMIN_EVICT_BATCH 4096      /* inodes per cache_evict call (one pass over the index) */
#define ADMIN_LINGER_MS 200         /* at close, how long to drain what the client sent */
#define ADMIN_LINGER_BYTES (1u << 20)

struct admin_slot {
    bool used;     /* running or finished: the thread is to be joined */
    bool finished; /* the thread closed its fd */
    int fd;
    pthread_t th;
    struct admin_server *a;
};

struct admin_server {
    struct admin_conf c;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int lfd;
    int wakefd;
    pthread_t accept_th;
    bool stopping; /* atomic */
    pthread_mutex_t lock;
    struct admin_slot slots[ADMIN_CLIENTS_MAX];
};

/* One request being served. */
struct conn {
    struct admin_server *a;
    struct admin_slot *slot;
    int fd;
    bool gone; /* the client went away (or sent more): stop */
    struct admin_reader rd;
    struct admin_msg msg;
    char out[ADMIN_LINE_MAX + 1];
    /* preload progress */
    const char *phase;
    uint64_t files, files_total, bytes, bytes_total, failed;
    int64_t t0_ms, last_progress_ms;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool stopping(const struct admin_server *a)
{
    return __atomic_load_n(&a->stopping, __ATOMIC_ACQUIRE);
}

/* ---- replies ---------------------------------------------------------- */

/* Send one line; a failure marks the client gone.  0 or EPIPE. */
static int send_words(struct conn *c, const char *const *w, size_t n)
{
    size_t len;
    if (c->gone)
        return EPIPE;
    int rc = admin_encode(w, n, c->out, sizeof(c->out), &len);
    if (rc) {
        LOG_AT(LOG_WARNING, "admin: a %s record does not encode: %s", w[0], strerror(rc));
        return 0; /* this record is lost, the rest of the answer is not */
    }
    for (size_t off = 0; off < len;) {
        ssize_t k = send(c->fd, c->out + off, len - off, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            c->gone = true;
            return EPIPE;
        }
        off += (size_t)k;
    }
    return 0;
}

#define SEND(c, ...)                                                                           \
    send_words((c), (const char *[]){__VA_ARGS__},                                             \
               sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *))

static int send_error(struct conn *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int send_error(struct conn *c, int err, const char *fmt, ...)
{
    char msg[1024], nb[16];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return SEND(c, "error", admin_errno_name(err, nb, sizeof(nb)), msg);
}

static int send_warn(struct conn *c, const char *path, int err)
{
    char nb[16];
    return SEND(c, "warn", path, admin_errno_name(err, nb, sizeof(nb)), strerror(err));
}

static const char *u64s(char *buf, uint64_t v)
{
    sprintf(buf, "%" PRIu64, v);
    return buf;
}

/*
 * Has the request to stop?  The server is stopping, or the client closed
 * its side or wrote anything after its request (both cancel).
 */
static bool cancelled(struct conn *c)
{
    if (c->gone || stopping(c->a))
        return true;
    struct pollfd p = {.fd = c->fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) > 0 && p.revents) {
        c->gone = true;
        return true;
    }
    return false;
}

static void send_progress(struct conn *c, bool force)
{
    int64_t now = mono_ms();
    if (!force && now - c->last_progress_ms < ADMIN_PROGRESS_MS)
        return;
    c->last_progress_ms = now;
    char b[5][24];
    SEND(c, "progress", c->phase, u64s(b[0], c->files), u64s(b[1], c->files_total),
         u64s(b[2], c->bytes), u64s(b[3], c->bytes_total),
         u64s(b[4], (uint64_t)(now - c->t0_ms)));
}

/* ---- paths ------------------------------------------------------------ */

/*
 * The inode of PATH (relative to the export root; "", "/" and "." name the
 * root) by LOOKUP from the root, component by component.
 */
static int resolve(struct admin_server *a, const struct export *ex, const char *path,
                   struct inode_attr *out)
{
    struct inode_table *t = a->c.src.inodes;
    int rc = inode_getattr(t, &ex->m, ex->root.ino, out);
    const char *p = path;
    char name[INODE_NAME_MAX + 1];

    while (!rc && *p) {
        while (*p == '/')
            p++;
        size_t n = strcspn(p, "/");
        if (n == 0)
            break;
        if (n > INODE_NAME_MAX)
            return ENAMETOOLONG;
        memcpy(name, p, n);
        name[n] = '\0';
        p += n;
        if (strcmp(name, ".") == 0)
            continue;
        struct inode_attr next;
        rc = inode_lookup(t, &ex->m, out->ino, name, &next, NULL);
        if (!rc)
            *out = next;
    }
    return rc;
}

/* ---- walking trees ---------------------------------------------------- */

struct walk;
/* Called for each regular file: 0 to go on, ECANCELED to stop the walk (other errors: counted). */
typedef int (*walk_fn)(struct conn *c, struct walk *w, const char *path,
                       const struct inode_attr *a);

struct walk {
    const struct export *ex;
    walk_fn fn;
    bool quiet;       /* no warn records (the counting pass of a preload) */
    bool pin;         /* pin_one: pin (true) or unpin */
    uint64_t files;   /* files fn was called for */
    uint64_t failed;  /* files and directories that failed */
    /* evict_one */
    bool force;       /* drop pinned files' blocks too */
    uint64_t *inos;   /* the batch for the next cache_evict (ADMIN_EVICT_BATCH) */
    size_t ninos;
    uint64_t pinned;  /* pinned files left alone */
    uint64_t bytes;   /* bytes dropped */
};

struct batch_ent {
    char name[INODE_NAME_MAX + 1];
    uint64_t cookie;
    struct inode_attr a;
};

struct batch {
    size_t n;
    bool has_dir;
    struct batch_ent e[ADMIN_WALK_BATCH];
};

/* inode_readdir callback: take entries until the batch is full or holds a directory. */
static int batch_add(void *arg, const char *name, uint64_t cookie, const struct inode_attr *attr)
{
    struct batch *b = arg;
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return 0;
    if (b->n == ADMIN_WALK_BATCH || b->has_dir)
        return 1; /* not taken: the next call starts with it */
    struct batch_ent *e = &b->e[b->n++];
    snprintf(e->name, sizeof(e->name), "%s", name);
    e->cookie = cookie;
    e->a = *attr;
    if (S_ISDIR(attr->mode))
        b->has_dir = true;
    return 0;
}

static void walk_fail(struct conn *c, struct walk *w, const char *path, int err)
{
    w->failed++;
    if (!w->quiet)
        send_warn(c, path[0] ? path : "/", err);
}

/*
 * Call w->fn for every regular file under directory dir, whose path is
 * path (ADMIN_WORD_MAX + 1 bytes; restored on return).  0, or ECANCELED.
 */
static int walk_dir(struct conn *c, struct walk *w, char *path, const struct inode_attr *dir)
{
    struct frame {
        uint64_t ino, cookie;
        size_t plen;
        bool done;
    };
    struct frame *st = malloc(ADMIN_WALK_DEPTH * sizeof(*st));
    struct batch *b = malloc(sizeof(*b));
    size_t depth = 0, base = strlen(path);
    int rc = 0;

    if (!st || !b) {
        walk_fail(c, w, path, ENOMEM);
        goto out;
    }
    st[depth++] = (struct frame){.ino = dir->ino, .plen = base};
    while (depth > 0) {
        struct frame *f = &st[depth - 1];
        path[f->plen] = '\0';
        if (f->done) {
            depth--;
            continue;
        }
        if (cancelled(c)) {
            rc = ECANCELED;
            goto out;
        }
        bool eof = false;
        uint64_t verf;
        b->n = 0;
        b->has_dir = false;
        int err = inode_readdir(c->a->c.src.inodes, &w->ex->m, f->ino, f->cookie, batch_add, b,
                                &eof, &verf);
        if (err) {
            walk_fail(c, w, path, err);
            depth--;
            continue;
        }
        if (eof || b->n == 0)
            f->done = true;
        if (b->n)
            f->cookie = b->e[b->n - 1].cookie;
        size_t plen = f->plen;
        for (size_t i = 0; i < b->n; i++) {
            struct batch_ent *e = &b->e[i];
            path[plen] = '\0';
            size_t nl = strlen(e->name);
            if (plen + 1 + nl > ADMIN_WORD_MAX) {
                walk_fail(c, w, path, ENAMETOOLONG);
                continue;
            }
            path[plen] = '/';
            memcpy(path + plen + 1, e->name, nl + 1);
            if (S_ISREG(e->a.mode)) {
                w->files++;
                if ((rc = w->fn(c, w, path, &e->a)) == ECANCELED)
                    goto out;
                rc = 0;
            } else if (S_ISDIR(e->a.mode)) {
                /* The batch's last entry (batch_add stops after a directory). */
                if (depth == ADMIN_WALK_DEPTH) {
                    walk_fail(c, w, path, ELOOP);
                    continue;
                }
                st[depth++] = (struct frame){.ino = e->a.ino, .plen = plen + 1 + nl};
            }
        }
    }
out:
    path[base] = '\0';
    free(st);
    free(b);
    return rc;
}

/* w->fn for a named PATH: a file directly, a directory's files by walking it. */
static int walk_path(struct conn *c, struct walk *w, const char *arg, const struct inode_attr *a)
{
    char *path = malloc(ADMIN_WORD_MAX + 1);
    if (!path)
        return ENOMEM;
    /* Paths in records are relative to the export root, without a trailing '/'. */
    const char *p = arg;
    while (*p == '/')
        p++;
    snprintf(path, ADMIN_WORD_MAX + 1, "%s", p);
    size_t n = strlen(path);
    while (n && path[n - 1] == '/')
        path[--n] = '\0';
    int rc = 0;
    if (S_ISREG(a->mode)) {
        w->files++;
        rc = w->fn(c, w, path, a);
        if (rc != ECANCELED)
            rc = 0;
    } else if (S_ISDIR(a->mode)) {
        rc = walk_dir(c, w, path, a);
    }
    free(path);
    return rc;
}

/*
 * walk_path for a PATH word of a request.  0 when it was walked;
 * ECANCELED; else the error that kept it from being walked (a path that
 * does not resolve), already sent as a warning and counted in w->failed.
 */
static int walk_arg(struct conn *c, struct walk *w, const char *arg)
{
    struct inode_attr at;
    int rc = resolve(c->a, w->ex, arg, &at);
    if (!rc)
        rc = walk_path(c, w, arg, &at);
    if (rc && rc != ECANCELED) {
        send_warn(c, arg, rc);
        w->failed++;
    }
    return rc;
}

/* ---- requests --------------------------------------------------------- */

static int emit_stat(void *arg, const char *section, const char *instance, const char *name,
                     uint64_t value)
{
    char b[24];
    return SEND((struct conn *)arg, "stat", section, instance, name, u64s(b, value));
}

static void cmd_stats(struct conn *c)
{
    struct admin_server *a = c->a;
    struct opstats s;
    int rc = opstats_collect(&a->c.src, &s);
    if (rc) {
        send_error(c, rc, "cannot collect the counters: %s", strerror(rc));
        opstats_free(&s);
        return;
    }
    char b[4][24];
    SEND(c, "info", "proto", u64s(b[0], ADMIN_PROTO_VERSION));
    SEND(c, "info", "pid", u64s(b[1], (uint64_t)getpid()));
    SEND(c, "info", "state_dir", a->c.state_dir);
    SEND(c, "info", "block_size", u64s(b[2], a->c.src.conf->cache.block_size));
    SEND(c, "info", "time", u64s(b[3], (uint64_t)s.time_sec));
    for (size_t i = 0; i < s.nstores; i++)
        SEND(c, "store", s.stores[i].name, s.stores[i].type);
    for (size_t i = 0; i < s.nexports; i++) {
        const struct opstats_export *e = &s.exports[i];
        SEND(c, "export", e->path, e->store, e->bucket, e->prefix, e->rw ? "rw" : "ro",
             u64s(b[0], e->id));
    }
    for (size_t i = 0; i < s.nmounts; i++) {
        const struct opstats_mount *m = &s.mounts[i];
        SEND(c, "mount", m->export_index >= 0 ? s.exports[m->export_index].path : "-",
             m->m.host, m->m.path, u64s(b[0], (uint64_t)m->m.since));
    }
    for (size_t i = 0; i < s.nclients; i++) {
        const struct opstats_client *k = &s.clients[i];
        SEND(c, "client", k->host, u64s(b[0], k->connections), u64s(b[1], k->calls),
             u64s(b[2], k->idle_ms), u64s(b[3], k->age_ms));
    }
    for (size_t i = 0; i < s.nstores; i++) {
        const struct obj_health *h = &s.stores[i].health;
        char nb[16];
        if (h->last_error_ns)
            SEND(c, "storeerror", s.stores[i].name,
                 u64s(b[0], (uint64_t)(h->last_error_ns / 1000000000LL)), h->last_error_op,
                 u64s(b[1], (uint64_t)h->last_error_status),
                 admin_errno_name(h->last_error_errno, nb, sizeof(nb)), h->last_error_msg);
    }
    opstats_each(&s, emit_stat, c);
    opstats_free(&s);
    SEND(c, "ok");
}

static void cmd_reload(struct conn *c)
{
    char err[1024] = "";
    int rc = c->a->c.reload(c->a->c.reload_arg, err, sizeof(err));
    if (rc)
        send_error(c, rc, "%s", err[0] ? err : strerror(rc));
    else
        SEND(c, "ok");
}

/* The export a request names, with a reference on its set (put it), or NULL after an error reply. */
static const struct export *get_export(struct conn *c, const char *path,
                                       const struct export_set **set)
{
    *set = export_set_get(c->a->c.src.exports);
    const struct export *ex = export_by_path(*set, path);
    if (!ex) {
        export_set_put(c->a->c.src.exports, *set);
        *set = NULL;
        send_error(c, ENOENT, "no export %s", path);
    }
    return ex;
}

static void cmd_refresh(struct conn *c)
{
    struct admin_msg *m = &c->msg;
    if (m->n < 2 || m->n > 3) {
        send_error(c, EINVAL, "usage: refresh EXPORT [PATH]");
        return;
    }
    const struct export_set *set;
    const struct export *ex = get_export(c, m->w[1], &set);
    if (!ex)
        return;
    const char *path = m->n == 3 ? m->w[2] : "";
    struct inode_attr at;
    int rc = resolve(c->a, ex, path, &at);
    if (!rc)
        rc = inode_invalidate(c->a->c.src.inodes, at.ino);
    if (rc) {
        send_error(c, rc, "%s%s%s: %s", ex->path, *path == '/' ? "" : "/", path,
                   strerror(rc));
    } else {
        SEND(c, "done", path[0] ? path : "/", "1");
        SEND(c, "ok");
    }
    export_set_put(c->a->c.src.exports, set);
}

static int pin_one(struct conn *c, struct walk *w, const char *path, const struct inode_attr *a)
{
    int rc = cache_pin(c->a->c.src.cache, w->ex->m.id, a->ino, w->pin);
    if (rc) {
        w->files--;
        walk_fail(c, w, path, rc);
    }
    return cancelled(c) ? ECANCELED : 0;
}

static void cmd_pin(struct conn *c, bool pin)
{
    struct admin_msg *m = &c->msg;
    if (m->n < 3) {
        send_error(c, EINVAL, "usage: %s EXPORT PATH...", pin ? "pin" : "unpin");
        return;
    }
    const struct export_set *set;
    const struct export *ex = get_export(c, m->w[1], &set);
    if (!ex)
        return;
    uint64_t total = 0, failed = 0;
    int rc = 0;
    for (size_t i = 2; i < m->n && rc != ECANCELED; i++) {
        struct walk w = {.ex = ex, .fn = pin_one, .pin = pin};
        rc = walk_arg(c, &w, m->w[i]);
        char b[24];
        if (rc == 0)
            SEND(c, "done", m->w[i], u64s(b, w.files));
        total += w.files;
        failed += w.failed;
    }
    export_set_put(c->a->c.src.exports, set);
    if (rc == ECANCELED) {
        send_error(c, ECANCELED, "cancelled");
        return;
    }
    char b[2][24];
    SEND(c, "ok", "files", u64s(b[0], total), "failed", u64s(b[1], failed));
}

/* Drop the batch's blocks.  A failure (ENOMEM) fails the batch's files. */
static void evict_batch(struct conn *c, struct walk *w, const char *path)
{
    uint64_t bytes = 0;
    int rc = 0;
    if (w->ninos)
        rc = cache_evict(c->a->c.src.cache, w->ex->m.id, w->inos, w->ninos, NULL, &bytes);
    if (rc) {
        w->files -= w->ninos;
        w->failed += w->ninos - 1; /* walk_fail counts one */
        walk_fail(c, w, path, rc);
    }
    w->bytes += bytes;
    w->ninos = 0;
}

static int evict_one(struct conn *c, struct walk *w, const char *path, const struct inode_attr *a)
{
    if (!w->force && cache_pinned(c->a->c.src.cache, w->ex->m.id, a->ino)) {
        w->files--;
        w->pinned++;
    } else {
        w->inos[w->ninos++] = a->ino;
        if (w->ninos == ADMIN_EVICT_BATCH)
            evict_batch(c, w, path);
    }
    return cancelled(c) ? ECANCELED : 0;
}

/*
 * evict [--force] EXPORT PATH...: drop the cached blocks of files and trees.
 * Pinned files are left alone (one warning per PATH that holds any) unless
 * --force; their pins stay either way.  Written data not yet uploaded is in
 * the stage, not the cache: nothing here touches it.
 */
static void cmd_evict(struct conn *c)
{
    struct admin_msg *m = &c->msg;
    bool force = m->n >= 2 && strcmp(m->w[1], "--force") == 0;
    size_t first = force ? 2 : 1; /* the export's word */
    if (m->n < first + 2) {
        send_error(c, EINVAL, "usage: evict [--force] EXPORT PATH...");
        return;
    }
    uint64_t *inos = malloc(ADMIN_EVICT_BATCH * sizeof(*inos));
    if (!inos) {
        send_error(c, ENOMEM, "out of memory");
        return;
    }
    const struct export_set *set;
    const struct export *ex = get_export(c, m->w[first], &set);
    if (!ex) {
        free(inos);
        return;
    }
    uint64_t total = 0, failed = 0, bytes = 0, pinned = 0;
    int rc = 0;
    for (size_t i = first + 1; i < m->n && rc != ECANCELED; i++) {
        struct walk w = {.ex = ex, .fn = evict_one, .force = force, .inos = inos};
        rc = walk_arg(c, &w, m->w[i]);
        if (rc == ECANCELED)
            break;
        evict_batch(c, &w, m->w[i]);
        char b[2][24];
        if (rc == 0)
            SEND(c, "done", m->w[i], u64s(b[0], w.files), u64s(b[1], w.bytes));
        if (w.pinned) {
            char msg[160];
            snprintf(msg, sizeof(msg), "%" PRIu64 " pinned file(s) kept: unpin them, or use --force",
                     w.pinned);
            SEND(c, "warn", m->w[i], "EBUSY", msg);
        }
        total += w.files;
        failed += w.failed;
        bytes += w.bytes;
        pinned += w.pinned;
    }
    export_set_put(c->a->c.src.exports, set);
    free(inos);
    if (rc == ECANCELED) {
        send_error(c, ECANCELED, "cancelled");
        return;
    }
    LOG_AT(LOG_NOTICE, "admin: evict from %s: %" PRIu64 " files, %" PRIu64 " bytes dropped, %"
           PRIu64 " pinned kept, %" PRIu64 " failed", ex->path, total, bytes, pinned, failed);
    char b[4][24];
    SEND(c, "ok", "files", u64s(b[0], total), "bytes", u64s(b[1], bytes), "pinned",
         u64s(b[2], pinned), "failed", u64s(b[3], failed));
}

/* Counting pass of a preload. */
static int count_one(struct conn *c, struct walk *w, const char *path, const struct inode_attr *a)
{
    c->files_total++;
    c->bytes_total += a->size;
    send_progress(c, false);
    return 0;
}

/* Reading pass: every byte of the file through the cache, one chunk at a time. */
static int read_one(struct conn *c, struct walk *w, const char *path, const struct inode_attr *a)
{
    struct admin_server *s = c->a;
    void *buf = malloc(ADMIN_READ_CHUNK);
    if (!buf) {
        walk_fail(c, w, path, ENOMEM);
        return 0;
    }
    struct meta_read r = {
        .t = s->c.src.inodes,
        .cache = s->c.src.cache,
        .e = &w->ex->m,
        .attr = *a,
        .buf = buf,
        .len = ADMIN_READ_CHUNK,
        .done = NULL, /* wait: this thread is the preload's own */
    };
    int rc = 0;
    for (;;) {
        if (cancelled(c)) {
            rc = ECANCELED;
            break;
        }
        int err = meta_read(&r);
        if (err) {
            walk_fail(c, w, path, err);
            break;
        }
        c->bytes += r.got;
        r.off += r.got;
        send_progress(c, false);
        if (r.eof || r.got == 0)
            break;
    }
    free(buf);
    if (rc == 0)
        c->files++;
    return rc;
}

static void cmd_preload(struct conn *c)
{
    struct admin_msg *m = &c->msg;
    if (m->n < 3) {
        send_error(c, EINVAL, "usage: preload EXPORT PATH...");
        return;
    }
    const struct export_set *set;
    const struct export *ex = get_export(c, m->w[1], &set);
    if (!ex)
        return;
    size_t np = m->n - 2;
    struct inode_attr *at = calloc(np, sizeof(*at));
    int *bad = calloc(np, sizeof(*bad));
    int rc = 0;
    if (!at || !bad) {
        send_error(c, ENOMEM, "out of memory");
        goto out;
    }
    c->t0_ms = mono_ms();
    c->phase = "scan";
    for (size_t i = 0; i < np && rc != ECANCELED; i++) {
        bad[i] = resolve(c->a, ex, m->w[i + 2], &at[i]);
        if (bad[i]) {
            send_warn(c, m->w[i + 2], bad[i]);
            c->failed++;
            continue;
        }
        struct walk w = {.ex = ex, .fn = count_one, .quiet = true};
        rc = walk_path(c, &w, m->w[i + 2], &at[i]);
    }
    c->phase = "read";
    send_progress(c, true);
    for (size_t i = 0; i < np && rc != ECANCELED; i++) {
        if (bad[i])
            continue;
        struct walk w = {.ex = ex, .fn = read_one};
        rc = walk_path(c, &w, m->w[i + 2], &at[i]);
        c->failed += w.failed;
    }
    if (rc == ECANCELED) {
        LOG_AT(LOG_NOTICE, "admin: preload of %s cancelled after %" PRIu64 " files, %" PRIu64
               " bytes", ex->path, c->files, c->bytes);
        send_error(c, ECANCELED, "cancelled");
        goto out;
    }
    send_progress(c, true);
    LOG_AT(LOG_NOTICE, "admin: preload of %s: %" PRIu64 " files, %" PRIu64 " bytes in %.1f s",
           ex->path, c->files, c->bytes, (double)(mono_ms() - c->t0_ms) / 1000);
    char b[4][24];
    SEND(c, "ok", "files", u64s(b[0], c->files), "bytes", u64s(b[1], c->bytes), "failed",
         u64s(b[2], c->failed), "ms", u64s(b[3], (uint64_t)(mono_ms() - c->t0_ms)));
out:
    free(at);
    free(bad);
    export_set_put(c->a->c.src.exports, set);
}

/* One flush call of cmd_flush's scope: a file, an export, or everything. */
static int flush_scope(struct wb *wb, uint64_t ino, bool one_export, uint32_t export_id,
                       unsigned wait_ms)
{
    if (ino)
        return wb_flush(wb, ino, wait_ms);
    if (one_export)
        return wb_flush_export(wb, export_id, wait_ms);
    return wb_flush(wb, 0, wait_ms);
}

/* Local inodes of the scope now: ino's 1 or 0, else those of one export or of all. */
static uint64_t local_count(struct conn *c, uint64_t ino, bool one_export, uint32_t export_id)
{
    uint64_t count = 0;
    if (ino)
        return 1;
    wb_local_count(c->a->c.src.wb, one_export, export_id, &count);
    return count;
}

/* One file that cannot be written back: a warn record. */
static void warn_unwritable(void *arg, const char *name, int err)
{
    struct conn *c = arg;
    char nb[16], msg[160];
    snprintf(msg, sizeof(msg),
             "cannot be written back: its data is gone from the cache disk (%s)", strerror(err));
    SEND(c, "warn", name, admin_errno_name(err, nb, sizeof(nb)), msg);
    c->failed++;
}

/*
 * flush [EXPORT [PATH]] [--wait]: upload now what is local: PATH naming a
 * file, that file; else EXPORT's local files and folders (PATH naming a
 * folder too); no EXPORT, everything.  --wait: "flushing FILES BYTES" every
 * half second until nothing in scope is left (BYTES: all staged bytes),
 * then "ok waited 1"; if what is left cannot be written back (its staged
 * data is gone), one "warn" per such file and "error EIO".
 */
static void cmd_flush(struct conn *c)
{
    struct admin_msg *m = &c->msg;
    struct wb *wb = c->a->c.src.wb;
    bool wait = m->n >= 2 && strcmp(m->w[m->n - 1], "--wait") == 0;
    size_t nargs = m->n - 1 - (wait ? 1 : 0);
    uint64_t ino = 0;
    bool one_export = false;
    uint32_t export_id = 0;
    if (!wb) {
        send_error(c, ENOTSUP, "no uploader");
        return;
    }
    if (nargs > 2) {
        send_error(c, EINVAL, "usage: flush [EXPORT [PATH]] [--wait]");
        return;
    }
    if (nargs >= 1) {
        const struct export_set *set;
        const struct export *ex = get_export(c, m->w[1], &set);
        if (!ex)
            return;
        int rc = 0;
        one_export = true;
        export_id = ex->m.id;
        if (nargs == 2) {
            struct inode_attr at;
            rc = resolve(c->a, ex, m->w[2], &at);
            if (rc == 0 && !S_ISDIR(at.mode))
                ino = at.ino;
            if (rc)
                send_error(c, rc, "%s/%s: %s", ex->path, m->w[2], strerror(rc));
        }
        export_set_put(c->a->c.src.exports, set);
        if (rc)
            return;
    }
    flush_scope(wb, ino, one_export, export_id, 0);
    if (!wait) {
        SEND(c, "ok");
        return;
    }
    for (;;) {
        int rc = flush_scope(wb, ino, one_export, export_id, 500);
        if (rc == 0)
            break;
        if (rc == EIO) {
            wb_unwritable(wb, ino, one_export, export_id, warn_unwritable, c);
            send_error(c, EIO,
                       "%" PRIu64 " file(s) cannot be written back: their data is gone from "
                       "the cache disk (named above; see the daemon's log)",
                       c->failed);
            return;
        }
        if (cancelled(c)) {
            send_error(c, ECANCELED, "cancelled");
            return;
        }
        struct stage_stats ss;
        stage_get_stats(c->a->c.src.stage, &ss);
        char b[2][24];
        SEND(c, "flushing", u64s(b[0], local_count(c, ino, one_export, export_id)),
             u64s(b[1], ss.bytes));
    }
    SEND(c, "ok", "waited", "1");
}

static void serve(struct conn *c)
{
    char *line;
    size_t len;
    int rc = admin_read_line(&c->rd, ADMIN_REQUEST_TIMEOUT_MS, &line, &len);
    if (rc) {
        if (rc != ECONNRESET)
            send_error(c, rc, "no request read: %s", strerror(rc));
        return;
    }
    rc = admin_decode(line, len, &c->msg);
    if (rc) {
        send_error(c, rc, "malformed request line");
        return;
    }
    const char *verb = c->msg.w[0];
    LOG_AT(strcmp(verb, "stats") == 0 ? LOG_DEBUG : LOG_INFO, "admin: %s (%zu argument(s))",
           verb, c->msg.n - 1);
    if (strcmp(verb, "stats") == 0)
        cmd_stats(c);
    else if (strcmp(verb, "reload") == 0)
        cmd_reload(c);
    else if (strcmp(verb, "refresh") == 0)
        cmd_refresh(c);
    else if (strcmp(verb, "pin") == 0)
        cmd_pin(c, true);
    else if (strcmp(verb, "unpin") == 0)
        cmd_pin(c, false);
    else if (strcmp(verb, "evict") == 0)
        cmd_evict(c);
    else if (strcmp(verb, "preload") == 0)
        cmd_preload(c);
    else if (strcmp(verb, "flush") == 0)
        cmd_flush(c);
    else
        send_error(c, ENOSYS, "unknown request \"%s\"", verb);
}

/*
 * Before closing: say we are done (EOF to the client) and read what the
 * client may still have sent, for a bounded time.  A socket closed with
 * unread input resets the connection, and the client would lose the
 * answer (an oversized request's EMSGSIZE, say).
 */
static void linger_close(int fd)
{
    char sink[4096];
    int64_t deadline = mono_ms() + ADMIN_LINGER_MS;
    shutdown(fd, SHUT_WR);
    for (size_t total = 0; total < ADMIN_LINGER_BYTES;) {
        int64_t left = deadline - mono_ms();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            break;
        ssize_t k = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
        if (k <= 0)
            break;
        total += (size_t)k;
    }
}

static void *conn_main(void *arg)
{
    struct admin_slot *slot = arg;
    struct conn *c = calloc(1, sizeof(*c));
    if (c) {
        c->a = slot->a;
        c->slot = slot;
        c->fd = slot->fd;
        c->phase = "";
        admin_reader_init(&c->rd, c->fd);
        serve(c);
        free(c);
    }
    linger_close(slot->fd);
    pthread_mutex_lock(&slot->a->lock);
    close(slot->fd);
    slot->fd = -1;
    slot->finished = true;
    pthread_mutex_unlock(&slot->a->lock);
    return NULL;
}

/* ---- the socket ------------------------------------------------------- */

/* A reply to a connection that gets no thread (best effort, nonblocking). */
static void refuse(int fd, int err, const char *msg)
{
    char line[512], nb[16];
    const char *w[] = {"error", admin_errno_name(err, nb, sizeof(nb)), msg};
    size_t len;
    if (admin_encode(w, 3, line, sizeof(line), &len) == 0) {
        ssize_t k = send(fd, line, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)k;
    }
    close(fd);
}

/* Join finished slots; return a free one (a->lock held), or NULL. */
static struct admin_slot *free_slot(struct admin_server *a)
{
    struct admin_slot *found = NULL;
    for (int i = 0; i < ADMIN_CLIENTS_MAX; i++) {
        struct admin_slot *s = &a->slots[i];
        if (s->used && s->finished) {
            pthread_join(s->th, NULL); /* it has closed its fd: it is exiting */
            s->used = false;
        }
        if (!s->used && !found)
            found = s;
    }
    return found;
}

static void accept_one(struct admin_server *a)
{
    int fd = accept4(a->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    struct ucred cred;
    socklen_t cl = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0 ||
        (cred.uid != 0 && cred.uid != geteuid())) {
        LOG_AT(LOG_WARNING, "admin: connection from uid %ld refused", (long)cred.uid);
        refuse(fd, EACCES, "only root may use the admin socket");
        return;
    }
    struct timeval tv = {.tv_sec = ADMIN_SEND_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));

    pthread_mutex_lock(&a->lock);
    struct admin_slot *s = free_slot(a);
    if (s) {
        s->used = true;
        s->finished = false;
        s->fd = fd;
        s->a = a;
        if (pthread_create(&s->th, NULL, conn_main, s) != 0) {
            s->used = false;
            s = NULL;
        }
    }
    pthread_mutex_unlock(&a->lock);
    if (!s)
        refuse(fd, EBUSY, "too many admin requests running; try again");
}

static void *accept_main(void *arg)
{
    struct admin_server *a = arg;
    while (!stopping(a)) {
        struct pollfd p[2] = {{.fd = a->lfd, .events = POLLIN}, {.fd = a->wakefd, .events = POLLIN}};
        int n = poll(p, 2, -1);
        if (n < 0 && errno != EINTR) {
            LOG_AT(LOG_ERR, "admin: poll: %s", strerror(errno));
            break;
        }
        if (n > 0 && p[0].revents)
            accept_one(a);
    }
    return NULL;
}

int admin_socket_path(const char *state_dir, char *buf, size_t len)
{
    size_t max = sizeof(((struct sockaddr_un *)0)->sun_path);
    int n = snprintf(buf, len, "%s/%s", state_dir, ADMIN_SOCKET_NAME);
    if (n < 0 || (size_t)n >= len || (size_t)n >= max)
        return ENAMETOOLONG;
    return 0;
}

/* Bind path; a socket file no daemon answers on is stale and replaced. */
static int bind_socket(int fd, const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
        return 0;
    if (errno != EADDRINUSE)
        return errno;
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0)
        return errno;
    int live = connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(probe);
    if (live)
        return EADDRINUSE;
    unlink(path);
    return bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 0 : errno;
}

struct admin_server *admin_start(const struct admin_conf *c)
{
    struct admin_server *a = calloc(1, sizeof(*a));
    int rc;
    if (!a)
        return NULL;
    a->c = *c;
    a->lfd = a->wakefd = -1;
    pthread_mutex_init(&a->lock, NULL);
    if ((rc = admin_socket_path(c->state_dir, a->path, sizeof(a->path)))) {
        LOG_AT(LOG_ERR, "admin socket: %s/%s is longer than a socket path may be",
               c->state_dir, ADMIN_SOCKET_NAME);
        goto fail;
    }
    a->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    a->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (a->lfd < 0 || a->wakefd < 0) {
        rc = errno;
        LOG_AT(LOG_ERR, "admin socket: %s", strerror(rc));
        goto fail;
    }
    if ((rc = bind_socket(a->lfd, a->path))) {
        LOG_AT(LOG_ERR, "admin socket %s: %s%s", a->path, strerror(rc),
               rc == EADDRINUSE ? " (another bucketnfsd answers on it)" : "");
        goto fail;
    }
    /* The state_dir is 0700 already; the socket itself is the daemon user's only. */
    if (chmod(a->path, 0600) != 0 || listen(a->lfd, 16) != 0) {
        rc = errno;
        LOG_AT(LOG_ERR, "admin socket %s: %s", a->path, strerror(rc));
        unlink(a->path);
        goto fail;
    }
    if ((rc = pthread_create(&a->accept_th, NULL, accept_main, a))) {
        LOG_AT(LOG_ERR, "admin socket: thread: %s", strerror(rc));
        unlink(a->path);
        goto fail;
    }
    LOG_AT(LOG_INFO, "admin socket %s", a->path);
    return a;
fail:
    if (a->lfd >= 0)
        close(a->lfd);
    if (a->wakefd >= 0)
        close(a->wakefd);
    pthread_mutex_destroy(&a->lock);
    free(a);
    errno = rc;
    return NULL;
}

void admin_stop(struct admin_server *a)
{
    if (!a)
        return;
    __atomic_store_n(&a->stopping, true, __ATOMIC_RELEASE);
    uint64_t one = 1;
    ssize_t k = write(a->wakefd, &one, sizeof(one));
    (void)k;
    pthread_join(a->accept_th, NULL);
    unlink(a->path);
    close(a->lfd);

    /* Wake requests blocked on their client; they see `stopping` and end. */
    pthread_mutex_lock(&a->lock);
    for (int i = 0; i < ADMIN_CLIENTS_MAX; i++)
        if (a->slots[i].used && !a->slots[i].finished)
            shutdown(a->slots[i].fd, SHUT_RDWR);
    pthread_mutex_unlock(&a->lock);
    for (int i = 0; i < ADMIN_CLIENTS_MAX; i++)
        if (a->slots[i].used)
            pthread_join(a->slots[i].th, NULL);
    close(a->wakefd);
    pthread_mutex_destroy(&a->lock);
    free(a);
}
