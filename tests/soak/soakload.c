/*
 * soakload.c - the mixed load of the soak (tests/soak/soak.sh).
 *
 *   soakload [options] NFS_URL
 *     NFS_URL   nfs://127.0.0.1/EXPORT?nfsport=N&mountport=M
 *     -c CONNS      client threads, one TCP connection (libnfs context) each (64)
 *     -t SECONDS    how long new operations are started (600)
 *     -i SECONDS    report interval (10)
 *     -S FILE       the seeded files: lines "PATH SIZE INDEX" (see below)
 *     -m FILE       write the manifest of what the load left there (below)
 *     -w MB/S       write bandwidth of all threads together, at most (6)
 *     -b COUNT      multi-MiB files above the multipart threshold, at most
 *                   (default: one per 30 s of -t, at least 2)
 *     -l COUNT      files a thread keeps, at most; past it the oldest is removed (48)
 *
 * Every thread loops until the deadline, picking one operation at random:
 * a READ of a seeded file (a random range, or all of it; some hit the
 * cache, some miss it), a new file CREATEd, WRITten in 1 MiB requests and
 * COMMITted (mostly small, some MiBs, a few past 16 MiB, the store's
 * multipart threshold), a read back of a file it wrote, GETATTR, a
 * directory listing (READDIRPLUS), SETATTR (chmod), RENAME, REMOVE, MKDIR.
 * Each thread works in its own folder /soak/tNN, so what it knows of its
 * files is the truth: every read is checked, byte for byte.
 *
 * Seeded file INDEX holds 64-bit little-endian words, word k = INDEX << 40 | k,
 * so any range can be checked without keeping the data.  A written file's
 * bytes come from the thread's generator; their SHA-256 goes to the manifest.
 *
 * Output, one JSON object per line on stdout:
 *   every interval {"t": s, "ops": {KIND: n}, "errors": {KIND: n},
 *                   "p99_ms": {KIND: ms}, "read_bytes": n, "written_bytes": n,
 *                   "jukebox": n}
 *   at the end     {"final": true, "ops": ..., "errors": ..., "p99_ms": ...,
 *                   "wrong_bytes": n, "files": n, "gone": n, "big_files": n}
 * Latencies are per libnfs call as this client sees it (a path-based call
 * LOOKUPs its way there first).  Errors are printed on stderr (the first
 * 100).  Manifest lines: "F PATH SIZE SHA256" for each file the load left,
 * "G PATH" for each name it removed or renamed away (must be gone from
 * the bucket).  Exit status 0 when no call failed and no byte was wrong.
 *
 * Bounded: a call that does not answer in 120 s fails (libnfs timeout);
 * operations started before the deadline finish after it.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nfsc/libnfs.h>
#include <openssl/evp.h>

#define SOAK_IO          (1024u * 1024)   /* READ and WRITE request size */
#define SOAK_TIMEOUT_MS  120000           /* one libnfs call, at most */
#define SOAK_HIST        200              /* latency buckets: 20 per decade from 1 us */
#define SOAK_BIG_MIN     (17u << 20)      /* past the store's 16 MiB single PUT */
#define SOAK_BIG_SPAN    (8u << 20)
#define SOAK_MAX_ERRLOG  100
#define SOAK_PATH        256
#define SOAK_JUKEBOX_TRIES 120            /* 1 s apart */

enum soak_kind {
    K_READ,     /* READ of a seeded file */
    K_READBACK, /* READ of a file the thread wrote */
    K_OPEN,     /* the LOOKUPs and ACCESS of an open */
    K_CREATE,
    K_WRITE,
    K_COMMIT,
    K_GETATTR,
    K_READDIR,
    K_SETATTR,
    K_RENAME,
    K_REMOVE,
    K_MKDIR,
    K_NKINDS
};

static const char *const kind_name[K_NKINDS] = {
    "read", "readback", "open", "create", "write", "commit", "getattr",
    "readdirplus", "setattr", "rename", "remove", "mkdir",
};

struct soak_counts {
    uint64_t ops[K_NKINDS];
    uint64_t errors[K_NKINDS];
    uint32_t hist[K_NKINDS][SOAK_HIST];
    uint64_t read_bytes, written_bytes;
    uint64_t jukebox; /* NFS3ERR_JUKEBOX answers, each waited out and sent again */
};

struct seed_file {
    char path[SOAK_PATH];
    uint64_t size;
    uint64_t index;
};

struct own_file {
    char path[SOAK_PATH];
    uint64_t size;
    unsigned char sha[32];
    int mode;
};

struct soak {
    const char *url;
    unsigned conns;
    double seconds, interval, write_mbps;
    unsigned big_max, live_max;
    struct seed_file *seeds;
    size_t nseeds;
    double t0, deadline;

    pthread_mutex_t lock; /* everything below */
    struct soak_counts interval_c, total_c;
    uint64_t wrong_bytes;
    unsigned big_files;
    unsigned errlogged;
    double write_clock; /* the write limiter: when the bytes reserved so far are due */
    bool stop;
    pthread_cond_t stop_changed;
};

struct worker {
    struct soak *s;
    unsigned id;
    pthread_t thread;
    struct nfs_context *nfs;
    uint64_t rng;
    unsigned next_name;
    char dir[SOAK_PATH];
    char subdirs[8][SOAK_PATH];
    unsigned nsubdirs;
    struct own_file *files;
    size_t nfiles;
    char **gone;
    size_t ngone, gone_cap;
    unsigned char *buf;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t rnd(struct worker *w)
{
    /* xorshift64*: fast, and good enough to pick operations and fill files */
    w->rng ^= w->rng >> 12;
    w->rng ^= w->rng << 25;
    w->rng ^= w->rng >> 27;
    return w->rng * 2685821657736338717ull;
}

static uint64_t rnd_below(struct worker *w, uint64_t n)
{
    return n ? rnd(w) % n : 0;
}

static unsigned hist_bucket(double secs)
{
    double us = secs * 1e6;
    if (us < 1)
        return 0;
    unsigned b = (unsigned)(20 * log10(us));
    return b < SOAK_HIST ? b : SOAK_HIST - 1;
}

/* The upper bound of bucket b, in milliseconds. */
static double hist_ms(unsigned b)
{
    return pow(10, (b + 1) / 20.0) / 1000;
}

static double hist_p99(const uint32_t *h)
{
    uint64_t n = 0, seen = 0;
    for (unsigned b = 0; b < SOAK_HIST; b++)
        n += h[b];
    if (!n)
        return 0;
    uint64_t want = (uint64_t)ceil(n * 0.99);
    for (unsigned b = 0; b < SOAK_HIST; b++) {
        seen += h[b];
        if (seen >= want)
            return hist_ms(b);
    }
    return hist_ms(SOAK_HIST - 1);
}

/* Count one call of `kind` that started at t0 and ended now; rc < 0 is a failure. */
static void account(struct worker *w, enum soak_kind kind, double t0, int rc, const char *what)
{
    struct soak *s = w->s;
    unsigned b = hist_bucket(now() - t0);
    pthread_mutex_lock(&s->lock);
    struct soak_counts *cs[2] = {&s->interval_c, &s->total_c};
    for (int i = 0; i < 2; i++) {
        cs[i]->ops[kind]++;
        cs[i]->hist[kind][b]++;
        if (rc < 0)
            cs[i]->errors[kind]++;
    }
    bool log = rc < 0 && s->errlogged < SOAK_MAX_ERRLOG;
    if (log)
        s->errlogged++;
    pthread_mutex_unlock(&s->lock);
    if (log)
        fprintf(stderr, "soakload: t%02u at %.1f s: %s %s: %d (%s)\n", w->id, now() - s->t0,
                kind_name[kind], what, rc, nfs_get_error(w->nfs));
}

/*
 * NFS3ERR_JUKEBOX (libnfs: -EAGAIN) is the server's "not now" (here: dirty
 * data at cache.dirty_max while uploads catch up).  A Linux client waits
 * 5 s (NFS_JUKEBOX_RETRY_TIME) and sends the call again; so does this one,
 * after 1 s, at most SOAK_JUKEBOX_TRIES times.  Each is counted (reported,
 * not an error).  Returns true when the call is to be sent again.
 */
static bool jukebox(struct worker *w, int rc, unsigned *tries)
{
    if (rc != -EAGAIN || ++*tries > SOAK_JUKEBOX_TRIES)
        return false;
    pthread_mutex_lock(&w->s->lock);
    w->s->interval_c.jukebox++;
    w->s->total_c.jukebox++;
    pthread_mutex_unlock(&w->s->lock);
    sleep(1);
    return true;
}

static void add_bytes(struct soak *s, uint64_t rd, uint64_t wr)
{
    pthread_mutex_lock(&s->lock);
    s->interval_c.read_bytes += rd;
    s->total_c.read_bytes += rd;
    s->interval_c.written_bytes += wr;
    s->total_c.written_bytes += wr;
    pthread_mutex_unlock(&s->lock);
}

static void wrong(struct worker *w, const char *path, uint64_t off, uint64_t n)
{
    pthread_mutex_lock(&w->s->lock);
    w->s->wrong_bytes += n;
    pthread_mutex_unlock(&w->s->lock);
    fprintf(stderr, "soakload: t%02u: WRONG BYTES: %s: %" PRIu64 " bytes at %" PRIu64 "\n", w->id,
            path, n, off);
}

/* The write limiter: wait until `n` more bytes fit in the bandwidth. */
static void throttle(struct soak *s, uint64_t n)
{
    double t = now(), due;
    pthread_mutex_lock(&s->lock);
    if (s->write_clock < t - 1) /* one second of burst, no more */
        s->write_clock = t - 1;
    s->write_clock += n / (s->write_mbps * 1e6);
    due = s->write_clock;
    pthread_mutex_unlock(&s->lock);
    if (due > t) {
        struct timespec ts = {(time_t)(due - t), (long)((due - t - (time_t)(due - t)) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

static bool stopping(struct soak *s)
{
    return now() >= s->deadline;
}

static void gone_add(struct worker *w, const char *path)
{
    if (w->ngone == w->gone_cap) {
        size_t cap = w->gone_cap ? w->gone_cap * 2 : 64;
        char **g = realloc(w->gone, cap * sizeof(*g));
        if (!g)
            return; /* the check of that one name is lost; the load goes on */
        w->gone = g;
        w->gone_cap = cap;
    }
    char *p = strdup(path);
    if (p)
        w->gone[w->ngone++] = p;
}

/* The expected byte at `off` of seeded file `index`. */
static unsigned char seed_byte(uint64_t index, uint64_t off)
{
    uint64_t word = index << 40 | off / 8;
    return (unsigned char)(word >> (8 * (off % 8)));
}

/* Read [off, off + len) of an open file into w->buf (len <= SOAK_IO); returns bytes or -1. */
static int64_t read_range(struct worker *w, struct nfsfh *fh, enum soak_kind kind, uint64_t off,
                          uint64_t len, const char *path)
{
    uint64_t got = 0;
    while (got < len) {
        double t0 = now();
        int rc = nfs_pread(w->nfs, fh, off + got, len - got, w->buf + got);
        account(w, kind, t0, rc, path);
        if (rc < 0)
            return -1;
        if (rc == 0)
            break;
        got += (uint64_t)rc;
    }
    add_bytes(w->s, got, 0);
    return (int64_t)got;
}

static void op_read_seed(struct worker *w)
{
    struct soak *s = w->s;
    if (!s->nseeds)
        return;
    const struct seed_file *f = &s->seeds[rnd_below(w, s->nseeds)];
    struct nfsfh *fh;
    double t0 = now();
    int rc = nfs_open(w->nfs, f->path, O_RDONLY, &fh);
    account(w, K_OPEN, t0, rc, f->path);
    if (rc < 0)
        return;
    uint64_t off, end;
    if (rnd_below(w, 10) == 0) { /* all of it */
        off = 0;
        end = f->size;
    } else {
        off = rnd_below(w, f->size);
        end = off + 1 + rnd_below(w, 256 * 1024);
        if (end > f->size)
            end = f->size;
    }
    while (off < end) {
        uint64_t n = end - off < SOAK_IO ? end - off : SOAK_IO;
        int64_t got = read_range(w, fh, K_READ, off, n, f->path);
        if (got < 0)
            break;
        if ((uint64_t)got != n) {
            wrong(w, f->path, off + (uint64_t)got, n - (uint64_t)got);
            break;
        }
        for (uint64_t i = 0; i < n; i++)
            if (w->buf[i] != seed_byte(f->index, off + i)) {
                wrong(w, f->path, off + i, 1);
                break;
            }
        off += n;
    }
    nfs_close(w->nfs, fh);
}

static uint64_t pick_size(struct worker *w)
{
    struct soak *s = w->s;
    uint64_t r = rnd_below(w, 1000);
    if (r < 4) {
        bool big = false;
        pthread_mutex_lock(&s->lock);
        /* spread the big ones over the run, not all at its start */
        double share = (now() - s->t0) / s->seconds;
        if (s->big_files < s->big_max && s->big_files < 1 + share * s->big_max) {
            s->big_files++;
            big = true;
        }
        pthread_mutex_unlock(&s->lock);
        if (big)
            return SOAK_BIG_MIN + rnd_below(w, SOAK_BIG_SPAN);
    }
    if (r < 130)
        return 256 * 1024 + rnd_below(w, 4 << 20);
    return 1 + rnd_below(w, 128 * 1024);
}

static void own_add(struct worker *w, const struct own_file *f)
{
    struct own_file *n = realloc(w->files, (w->nfiles + 1) * sizeof(*n));
    if (!n)
        return;
    w->files = n;
    w->files[w->nfiles++] = *f;
}

static void op_remove_at(struct worker *w, size_t i)
{
    double t0 = now();
    unsigned tries = 0;
    int rc;
    do
        rc = nfs_unlink(w->nfs, w->files[i].path);
    while (jukebox(w, rc, &tries));
    account(w, K_REMOVE, t0, rc, w->files[i].path);
    if (rc < 0)
        return;
    gone_add(w, w->files[i].path);
    w->files[i] = w->files[--w->nfiles];
}

static void op_write(struct worker *w)
{
    struct own_file f = {.mode = 0644};
    const char *dir = w->nsubdirs && rnd_below(w, 3) == 0 ? w->subdirs[rnd_below(w, w->nsubdirs)]
                                                          : w->dir;
    snprintf(f.path, sizeof(f.path), "%.200s/f%06u", dir, w->next_name++);
    f.size = pick_size(w);

    struct nfsfh *fh;
    double t0 = now();
    unsigned tries = 0;
    int rc;
    do
        rc = nfs_create(w->nfs, f.path, O_WRONLY | O_CREAT | O_TRUNC, f.mode, &fh);
    while (jukebox(w, rc, &tries));
    account(w, K_CREATE, t0, rc, f.path);
    if (rc < 0)
        return;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    uint64_t off = 0;
    while (ok && off < f.size) {
        uint32_t n = f.size - off < SOAK_IO ? (uint32_t)(f.size - off) : SOAK_IO;
        for (uint32_t i = 0; i < n; i += 8) {
            uint64_t v = rnd(w);
            memcpy(w->buf + i, &v, n - i < 8 ? n - i : 8);
        }
        EVP_DigestUpdate(md, w->buf, n);
        throttle(w->s, n);
        uint32_t done = 0;
        while (ok && done < n) {
            t0 = now();
            tries = 0;
            do
                rc = nfs_pwrite(w->nfs, fh, off + done, n - done, w->buf + done);
            while (jukebox(w, rc, &tries));
            account(w, K_WRITE, t0, rc < 0 ? rc : rc == 0 ? -1 : 0, f.path);
            ok = rc > 0;
            if (ok)
                done += (uint32_t)rc;
        }
        add_bytes(w->s, 0, done);
        off += done;
    }
    if (ok) {
        t0 = now();
        tries = 0;
        do
            rc = nfs_fsync(w->nfs, fh);
        while (jukebox(w, rc, &tries));
        account(w, K_COMMIT, t0, rc, f.path);
        ok = rc >= 0;
    }
    nfs_close(w->nfs, fh);
    unsigned int len = 0;
    if (md && ok)
        EVP_DigestFinal_ex(md, f.sha, &len);
    EVP_MD_CTX_free(md);
    if (!ok || len != 32) {
        /* A failed file is counted as an error already; its name must not be checked. */
        return;
    }
    own_add(w, &f);
    if (w->nfiles > w->s->live_max)
        op_remove_at(w, 0);
}

static void op_readback(struct worker *w)
{
    if (!w->nfiles)
        return;
    struct own_file *f = &w->files[rnd_below(w, w->nfiles)];
    if (f->size > (8u << 20))
        return; /* the big ones are checked in the bucket at the end */
    struct nfsfh *fh;
    double t0 = now();
    int rc = nfs_open(w->nfs, f->path, O_RDONLY, &fh);
    account(w, K_OPEN, t0, rc, f->path);
    if (rc < 0)
        return;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    uint64_t off = 0;
    while (ok && off < f->size) {
        uint64_t n = f->size - off < SOAK_IO ? f->size - off : SOAK_IO;
        int64_t got = read_range(w, fh, K_READBACK, off, n, f->path);
        if (got < 0) {
            ok = false;
            break;
        }
        if ((uint64_t)got != n) {
            wrong(w, f->path, off + (uint64_t)got, n - (uint64_t)got);
            ok = false;
            break;
        }
        EVP_DigestUpdate(md, w->buf, n);
        off += n;
    }
    nfs_close(w->nfs, fh);
    unsigned char sha[32];
    unsigned int len = 0;
    if (ok && EVP_DigestFinal_ex(md, sha, &len) && (len != 32 || memcmp(sha, f->sha, 32)))
        wrong(w, f->path, 0, f->size);
    EVP_MD_CTX_free(md);
}

static void op_getattr(struct worker *w)
{
    struct nfs_stat_64 st;
    const char *path;
    uint64_t want;
    if (w->nfiles && rnd_below(w, 2)) {
        struct own_file *f = &w->files[rnd_below(w, w->nfiles)];
        path = f->path;
        want = f->size;
    } else if (w->s->nseeds) {
        struct seed_file *f = &w->s->seeds[rnd_below(w, w->s->nseeds)];
        path = f->path;
        want = f->size;
    } else {
        return;
    }
    double t0 = now();
    int rc = nfs_stat64(w->nfs, path, &st);
    account(w, K_GETATTR, t0, rc, path);
    if (rc == 0 && st.nfs_size != want) {
        fprintf(stderr, "soakload: t%02u: %s: size %" PRIu64 ", want %" PRIu64 "\n", w->id, path,
                (uint64_t)st.nfs_size, want);
        wrong(w, path, 0, 1);
    }
}

static void op_readdir(struct worker *w)
{
    const char *path = rnd_below(w, 4) == 0 ? "/seed" : w->dir;
    struct nfsdir *d;
    double t0 = now();
    int rc = nfs_opendir(w->nfs, path, &d);
    account(w, K_READDIR, t0, rc, path);
    if (rc < 0)
        return;
    size_t n = 0;
    while (nfs_readdir(w->nfs, d))
        n++;
    nfs_closedir(w->nfs, d);
    if (strcmp(path, "/seed") == 0 && n < w->s->nseeds) {
        fprintf(stderr, "soakload: t%02u: /seed lists %zu entries, want at least %zu\n", w->id, n,
                w->s->nseeds);
        wrong(w, path, 0, 1);
    }
}

static void op_setattr(struct worker *w)
{
    if (!w->nfiles)
        return;
    struct own_file *f = &w->files[rnd_below(w, w->nfiles)];
    int mode = f->mode == 0644 ? 0600 : 0644;
    double t0 = now();
    unsigned tries = 0;
    int rc;
    do
        rc = nfs_chmod(w->nfs, f->path, mode);
    while (jukebox(w, rc, &tries));
    account(w, K_SETATTR, t0, rc, f->path);
    if (rc == 0)
        f->mode = mode;
}

static void op_rename(struct worker *w)
{
    if (!w->nfiles)
        return;
    struct own_file *f = &w->files[rnd_below(w, w->nfiles)];
    char to[SOAK_PATH];
    const char *slash = strrchr(f->path, '/');
    snprintf(to, sizeof(to), "%.*s/r%06u", (int)(slash - f->path) % 200, f->path, w->next_name++);
    double t0 = now();
    unsigned tries = 0;
    int rc;
    do
        rc = nfs_rename(w->nfs, f->path, to);
    while (jukebox(w, rc, &tries));
    account(w, K_RENAME, t0, rc, f->path);
    if (rc < 0)
        return;
    gone_add(w, f->path);
    memcpy(f->path, to, sizeof(f->path));
}

static void op_remove(struct worker *w)
{
    if (w->nfiles)
        op_remove_at(w, rnd_below(w, w->nfiles));
}

static void op_mkdir(struct worker *w)
{
    if (w->nsubdirs == sizeof(w->subdirs) / sizeof(w->subdirs[0]))
        return;
    char *p = w->subdirs[w->nsubdirs];
    snprintf(p, SOAK_PATH, "%.200s/d%06u", w->dir, w->next_name++);
    double t0 = now();
    unsigned tries = 0;
    int rc;
    do
        rc = nfs_mkdir(w->nfs, p);
    while (jukebox(w, rc, &tries));
    account(w, K_MKDIR, t0, rc, p);
    if (rc == 0)
        w->nsubdirs++;
}

static int worker_connect(struct worker *w)
{
    w->nfs = nfs_init_context();
    if (!w->nfs)
        return -1;
    nfs_set_timeout(w->nfs, SOAK_TIMEOUT_MS);
    struct nfs_url *u = nfs_parse_url_dir(w->nfs, w->s->url);
    if (!u) {
        fprintf(stderr, "soakload: %s: %s\n", w->s->url, nfs_get_error(w->nfs));
        return -1;
    }
    int rc = nfs_mount(w->nfs, u->server, u->path);
    if (rc < 0)
        fprintf(stderr, "soakload: t%02u: mount %s: %s\n", w->id, u->path, nfs_get_error(w->nfs));
    nfs_destroy_url(u);
    return rc;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct soak *s = w->s;
    int rc = -1;
    for (int i = 0; i < 3 && rc < 0; i++) { /* a source port in TIME_WAIT: connect again */
        if (w->nfs)
            nfs_destroy_context(w->nfs);
        w->nfs = NULL;
        rc = worker_connect(w);
        if (rc < 0)
            sleep(1);
    }
    if (rc < 0) {
        account(w, K_MKDIR, now(), -1, "mount");
        return NULL;
    }
    double t0 = now();
    rc = nfs_mkdir(w->nfs, w->dir);
    account(w, K_MKDIR, t0, rc, w->dir);
    if (rc < 0)
        return NULL;

    /* Weights of the operations, per thousand. */
    static const struct {
        unsigned weight;
        void (*op)(struct worker *);
    } mix[] = {
        {330, op_read_seed}, {150, op_write}, {60, op_readback}, {170, op_getattr},
        {50, op_readdir},    {80, op_setattr}, {70, op_rename},  {60, op_remove},
        {30, op_mkdir},
    };
    while (!stopping(s)) {
        uint64_t r = rnd_below(w, 1000);
        for (size_t i = 0; i < sizeof(mix) / sizeof(mix[0]); i++) {
            if (r < mix[i].weight) {
                mix[i].op(w);
                break;
            }
            r -= mix[i].weight;
        }
    }
    return NULL;
}

static void print_kinds(const char *key, const uint64_t *v, bool comma)
{
    printf("\"%s\": {", key);
    for (int k = 0; k < K_NKINDS; k++)
        printf("%s\"%s\": %" PRIu64, k ? ", " : "", kind_name[k], v[k]);
    printf("}%s", comma ? ", " : "");
}

static void print_counts(const struct soak_counts *c)
{
    print_kinds("ops", c->ops, true);
    print_kinds("errors", c->errors, true);
    printf("\"p99_ms\": {");
    for (int k = 0; k < K_NKINDS; k++)
        printf("%s\"%s\": %.3f", k ? ", " : "", kind_name[k], hist_p99(c->hist[k]));
    printf("}, \"read_bytes\": %" PRIu64 ", \"written_bytes\": %" PRIu64 ", \"jukebox\": %" PRIu64,
           c->read_bytes, c->written_bytes, c->jukebox);
}

/* The reporter: one line per interval until the workers are done. */
static void *reporter_main(void *arg)
{
    struct soak *s = arg;
    double next = s->t0 + s->interval;
    pthread_mutex_lock(&s->lock);
    while (!s->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double wait = next - now();
        if (wait > 0) {
            ts.tv_sec += (time_t)wait;
            ts.tv_nsec += (long)((wait - (time_t)wait) * 1e9);
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&s->stop_changed, &s->lock, &ts);
            continue;
        }
        struct soak_counts c = s->interval_c;
        memset(&s->interval_c, 0, sizeof(s->interval_c));
        printf("{\"t\": %.1f, ", next - s->t0);
        print_counts(&c);
        printf("}\n");
        fflush(stdout);
        next += s->interval;
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static int load_seeds(struct soak *s, const char *file)
{
    FILE *f = fopen(file, "r");
    if (!f)
        return -1;
    char line[512];
    size_t cap = 0;
    while (fgets(line, sizeof(line), f)) {
        struct seed_file sf;
        if (sscanf(line, "%255s %" SCNu64 " %" SCNu64, sf.path, &sf.size, &sf.index) != 3)
            continue;
        if (s->nseeds == cap) {
            cap = cap ? cap * 2 : 256;
            struct seed_file *n = realloc(s->seeds, cap * sizeof(*n));
            if (!n) {
                fclose(f);
                return -1;
            }
            s->seeds = n;
        }
        s->seeds[s->nseeds++] = sf;
    }
    fclose(f);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: soakload [-c CONNS] [-t SECONDS] [-i SECONDS] [-S SEEDLIST] [-m MANIFEST]\n"
                    "                [-w MB/S] [-b BIGFILES] [-l FILES] NFS_URL\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct soak s = {.conns = 64, .seconds = 600, .interval = 10, .write_mbps = 6, .live_max = 48};
    const char *seeds = NULL, *manifest = NULL;
    long big = -1;
    int opt;
    while ((opt = getopt(argc, argv, "c:t:i:S:m:w:b:l:")) != -1) {
        switch (opt) {
        case 'c': s.conns = (unsigned)atoi(optarg); break;
        case 't': s.seconds = atof(optarg); break;
        case 'i': s.interval = atof(optarg); break;
        case 'S': seeds = optarg; break;
        case 'm': manifest = optarg; break;
        case 'w': s.write_mbps = atof(optarg); break;
        case 'b': big = atol(optarg); break;
        case 'l': s.live_max = (unsigned)atoi(optarg); break;
        default: usage();
        }
    }
    if (optind != argc - 1 || s.conns < 1 || s.conns > 1024 || s.seconds <= 0 ||
        s.interval <= 0 || s.write_mbps <= 0 || s.live_max < 1)
        usage();
    s.url = argv[optind];
    s.big_max = big >= 0 ? (unsigned)big : (unsigned)fmax(2, s.seconds / 30);
    if (seeds && load_seeds(&s, seeds)) {
        perror(seeds);
        return 2;
    }
    pthread_mutex_init(&s.lock, NULL);
    pthread_cond_init(&s.stop_changed, NULL);

    /* /soak first, on one connection, so the threads' mkdirs do not race for it. */
    struct worker *w = calloc(s.conns, sizeof(*w));
    if (!w)
        return 2;
    s.t0 = now();
    s.deadline = s.t0 + s.seconds;
    for (unsigned i = 0; i < s.conns; i++) {
        w[i].s = &s;
        w[i].id = i;
        w[i].rng = 0x9e3779b97f4a7c15ull * (i + 1) ^ (uint64_t)time(NULL);
        snprintf(w[i].dir, sizeof(w[i].dir), "/soak/t%02u", i);
        w[i].buf = malloc(SOAK_IO);
        if (!w[i].buf)
            return 2;
    }
    if (worker_connect(&w[0]) < 0)
        return 1;
    int rc = nfs_mkdir(w[0].nfs, "/soak");
    if (rc < 0 && rc != -EEXIST) {
        fprintf(stderr, "soakload: mkdir /soak: %s\n", nfs_get_error(w[0].nfs));
        return 1;
    }
    nfs_destroy_context(w[0].nfs);
    w[0].nfs = NULL;

    pthread_t reporter;
    pthread_create(&reporter, NULL, reporter_main, &s);
    for (unsigned i = 0; i < s.conns; i++)
        pthread_create(&w[i].thread, NULL, worker_main, &w[i]);
    for (unsigned i = 0; i < s.conns; i++)
        pthread_join(w[i].thread, NULL);
    pthread_mutex_lock(&s.lock);
    s.stop = true;
    pthread_cond_signal(&s.stop_changed);
    pthread_mutex_unlock(&s.lock);
    pthread_join(reporter, NULL);

    size_t files = 0, gone = 0;
    FILE *m = manifest ? fopen(manifest, "w") : NULL;
    if (manifest && !m)
        perror(manifest);
    for (unsigned i = 0; i < s.conns; i++) {
        for (size_t j = 0; j < w[i].nfiles; j++) {
            struct own_file *f = &w[i].files[j];
            if (m) {
                fprintf(m, "F %s %" PRIu64 " ", f->path, f->size);
                for (int k = 0; k < 32; k++)
                    fprintf(m, "%02x", f->sha[k]);
                fprintf(m, "\n");
            }
            files++;
        }
        for (size_t j = 0; j < w[i].ngone; j++) {
            if (m)
                fprintf(m, "G %s\n", w[i].gone[j]);
            gone++;
            free(w[i].gone[j]);
        }
        free(w[i].gone);
        free(w[i].files);
        free(w[i].buf);
        if (w[i].nfs)
            nfs_destroy_context(w[i].nfs);
    }
    bool written = !m || fclose(m) == 0;

    uint64_t errors = 0;
    for (int k = 0; k < K_NKINDS; k++)
        errors += s.total_c.errors[k];
    printf("{\"final\": true, \"conns\": %u, \"seconds\": %.1f, ", s.conns, now() - s.t0);
    print_counts(&s.total_c);
    printf(", \"wrong_bytes\": %" PRIu64 ", \"files\": %zu, \"gone\": %zu, \"big_files\": %u}\n",
           s.wrong_bytes, files, gone, s.big_files);
    free(w);
    free(s.seeds);
    return errors || s.wrong_bytes || !written ? 1 : 0;
}
