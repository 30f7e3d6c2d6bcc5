/*
 * stage.c - staged files: written data waiting for upload (see stage.h for
 * the contract).
 *
 * The index: one struct sfile per staged file, in a hash table keyed by
 * (export, inode) that grows with the number of files.  It holds what the
 * accounting and stage_size/stage_list need (the file's size and space as
 * last measured) and the file's cached descriptor, if open.  The files
 * found at start are indexed by stage_create; afterwards every file comes
 * and goes through this module.
 *
 * Entry states
 *
 *   state     hashed  on_disk  removed  seen by                 leaves by
 *   --------  ------  -------  -------  ----------------------  -----------------------------
 *   creating  yes     no       no       writers (they wait on   the creator's open: staged,
 *                                       f->lock); others: none  or failed: removed
 *   staged    yes     yes      no       everyone                stage_remove: removed
 *   removed   no      -        yes      its users only          the last user's sf_put: freed
 *
 *   A staged entry's descriptor is open (fd >= 0, in the LRU list) or
 *   closed (-1).  It is opened under f->lock by the first user that needs
 *   it (one open per file), used with no lock by every user (users > 0
 *   keeps it open), and closed only when nobody uses it: by the LRU trim
 *   when more than STAGE_OPEN_MAX are open, or by the last sf_put of a
 *   removed entry.
 *
 * Names: every operation on a file's name (create, unlink, open by name)
 * runs under its entry's f->lock while the entry is hashed.  stage_remove
 * unlinks first and unhashes after, so a writer of the same key that comes
 * meanwhile waits for f->lock, finds the entry removed, and creates a new
 * file under a new entry: it never loses its file to the unlink.
 *
 * Accounting: after each write or truncate the file is fstat'ed under
 * f->lock and the difference to its last measured space applied to
 * s->bytes (f->lock orders the measurements of concurrent writers, so a
 * stale one never replaces a newer one).  A write reserves its span in
 * s->reserved before writing; the limit check counts bytes + reserved, so
 * concurrent writers cannot pass max_bytes together.  Invariants (checked
 * under s->lock in debug builds, stage_check): stats.bytes is the sum of
 * the hashed entries' space, stats.files their number, nopen the number of
 * entries with an open descriptor, all of which are in the LRU list.
 *
 * Threads and locks: callers only (no threads of its own).  Lock order:
 * f->lock, then s->lock.  s->lock is held for table and counter updates
 * only, never across a system call; f->lock is held across open, unlink,
 * fstat, never across pwrite, pread or fdatasync, so writers of one file
 * run in parallel.  dsync_mu (before s->lock) is held across the folder's
 * fsync: one at a time, and whoever waited for it finds its file covered
 * when created_gen had passed it before the fsync began.
 * `removed` and `on_disk` change under both locks and are read under
 * either.
 */
#include "cache/stage.h"

#include "common/fsutil.h"
#include "common/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define NAME_LEN    25 /* "%08x-%016llx" */
#define NAME_SIZE   (NAME_LEN + 1)
#define BUCKETS_MIN 64
#define OFF_LIMIT   INT64_MAX /* off_t's range */

struct sfile {
    struct sfile *hnext;
    struct sfile *prev, *next; /* LRU of open descriptors, most recent first (fd >= 0) */
    uint32_t exp;
    uint64_t ino;
    int fd;         /* cached O_RDWR descriptor or -1 */
    unsigned users; /* calls using the entry now */
    bool on_disk, removed;
    uint64_t dir_gen;     /* its name is durable once synced_gen reaches this */
    uint64_t size, space; /* st_size, st_blocks * 512 as last measured */
    pthread_mutex_t lock; /* name operations and measurements (see the top) */
};

struct stage {
    int dirfd;  /* DIR/dirty, flock'ed */
    char *path; /* DIR/dirty, for messages */
    uint64_t max_bytes;
    uint64_t blksize;         /* the file system's block size: write spans round to it */
    atomic_bool no_fallocate; /* the file system refused fallocate: write without */
    pthread_mutex_t lock;
    struct sfile **buckets;
    size_t nbuckets, nhashed;
    struct sfile lru; /* sentinel of the LRU list */
    unsigned nopen;
    uint64_t reserved;     /* spans of writes in progress */
    uint64_t created_gen;  /* files created so far (each entry's dir_gen) */
    uint64_t synced_gen;   /* the names of files up to this one are durable */
    pthread_mutex_t dsync_mu; /* one directory fsync at a time (group sync) */
    struct stage_stats st; /* files, bytes and the counters */
    struct log_rate rate;  /* failure lines */
};

/* ---- the index --------------------------------------------------------- */

static size_t key_hash(uint32_t exp, uint64_t ino)
{
    uint64_t x = ino ^ ((uint64_t)exp << 32 | exp);
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return (size_t)x;
}

static void sf_name(char buf[NAME_SIZE], uint32_t exp, uint64_t ino)
{
    snprintf(buf, NAME_SIZE, "%08" PRIx32 "-%016" PRIx64, exp, ino);
}

/* Parse a staged file's name (exactly the form sf_name writes); false for anything else. */
static bool sf_parse(const char *name, uint32_t *exp, uint64_t *ino)
{
    if (strlen(name) != NAME_LEN || name[8] != '-')
        return false;
    uint64_t v[2] = {0, 0};
    for (int i = 0; i < NAME_LEN; i++) {
        char ch = name[i];
        if (i == 8)
            continue;
        unsigned d;
        if (ch >= '0' && ch <= '9')
            d = (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f')
            d = (unsigned)(ch - 'a' + 10);
        else
            return false;
        v[i > 8] = v[i > 8] << 4 | d;
    }
    *exp = (uint32_t)v[0];
    *ino = v[1];
    return true;
}

/* s->lock held. */
static struct sfile *lookup(struct stage *s, uint32_t exp, uint64_t ino)
{
    struct sfile *f = s->buckets[key_hash(exp, ino) & (s->nbuckets - 1)];
    while (f && (f->exp != exp || f->ino != ino))
        f = f->hnext;
    return f;
}

/* s->lock held.  Doubles the table past two entries a bucket (stays as is without memory). */
static void hash_insert(struct stage *s, struct sfile *f)
{
    if (s->nhashed >= 2 * s->nbuckets) {
        size_t nb = 2 * s->nbuckets;
        struct sfile **b = calloc(nb, sizeof(*b));
        if (b) {
            for (size_t i = 0; i < s->nbuckets; i++)
                while (s->buckets[i]) {
                    struct sfile *e = s->buckets[i];
                    s->buckets[i] = e->hnext;
                    size_t h = key_hash(e->exp, e->ino) & (nb - 1);
                    e->hnext = b[h];
                    b[h] = e;
                }
            free(s->buckets);
            s->buckets = b;
            s->nbuckets = nb;
        }
    }
    size_t h = key_hash(f->exp, f->ino) & (s->nbuckets - 1);
    f->hnext = s->buckets[h];
    s->buckets[h] = f;
    s->nhashed++;
}

/* s->lock held. */
static void hash_remove(struct stage *s, struct sfile *f)
{
    struct sfile **p = &s->buckets[key_hash(f->exp, f->ino) & (s->nbuckets - 1)];
    while (*p != f)
        p = &(*p)->hnext;
    *p = f->hnext;
    f->hnext = NULL;
    s->nhashed--;
}

static void lru_unlink(struct sfile *f)
{
    f->prev->next = f->next;
    f->next->prev = f->prev;
    f->prev = f->next = NULL;
}

static void lru_push(struct stage *s, struct sfile *f)
{
    f->next = s->lru.next;
    f->prev = &s->lru;
    s->lru.next->prev = f;
    s->lru.next = f;
}

#ifdef BNFS_DEBUG
/* The invariants at the top of the file.  s->lock held. */
static void stage_check(const struct stage *s)
{
    uint64_t space = 0, files = 0, hashed = 0, open = 0, listed = 0;
    for (size_t i = 0; i < s->nbuckets; i++)
        for (const struct sfile *f = s->buckets[i]; f; f = f->hnext) {
            if (f->removed || (!f->on_disk && (f->space || f->fd >= 0)))
                abort();
            hashed++;
            files += f->on_disk;
            space += f->space;
        }
    for (const struct sfile *f = s->lru.next; f != &s->lru; f = f->next) {
        if (f->fd < 0)
            abort();
        listed++;
    }
    for (size_t i = 0; i < s->nbuckets; i++)
        for (const struct sfile *f = s->buckets[i]; f; f = f->hnext)
            open += f->fd >= 0;
    /* Removed entries still open are listed but not hashed. */
    if (hashed != s->nhashed || files != s->st.files || space != s->st.bytes ||
        listed != s->nopen || open > listed)
        abort();
}
#define CHECK_STAGE(s) stage_check(s)
#else
#define CHECK_STAGE(s) ((void)0)
#endif

/*
 * Close idle descriptors while more than STAGE_OPEN_MAX are open, least
 * recently used first.  Takes s->lock; closes with it dropped.
 */
static void lru_trim(struct stage *s)
{
    int fds[8];
    unsigned n = 0;
    pthread_mutex_lock(&s->lock);
    for (struct sfile *f = s->lru.prev; f != &s->lru && s->nopen > STAGE_OPEN_MAX && n < 8;) {
        struct sfile *prev = f->prev;
        if (!f->users) {
            fds[n++] = f->fd;
            f->fd = -1;
            lru_unlink(f);
            s->nopen--;
        }
        f = prev;
    }
    CHECK_STAGE(s);
    pthread_mutex_unlock(&s->lock);
    for (unsigned i = 0; i < n; i++)
        close(fds[i]);
}

/* ---- failures ---------------------------------------------------------- */

/*
 * Count and log a failed system call on (exp, ino); returns the errno the
 * caller reports (EDQUOT is reported as ENOSPC: the client sees a full disk;
 * EPERM, EACCES and EROFS as EIO).
 */
static int io_failed(struct stage *s, const char *what, uint32_t exp, uint64_t ino, int err)
{
    int sys_err = err; /* what the log says */
    if (err == EDQUOT)
        err = ENOSPC;
    /*
     * Our own files refused to us (the cache disk remounted read-only, made
     * immutable, its modes changed): an I/O error, not a permission the
     * client lacks.
     */
    if (err == EPERM || err == EACCES || err == EROFS)
        err = EIO;
    pthread_mutex_lock(&s->lock);
    if (err == ENOSPC)
        s->st.nospc++;
    else
        s->st.errors++;
    pthread_mutex_unlock(&s->lock);
    int level = err == ENOSPC ? LOG_NOTICE : LOG_WARNING;
    unsigned held;
    if (level <= log_level && log_rate_ok(&s->rate, &held))
        log_msg(level, "stage: %s %s/%08" PRIx32 "-%016" PRIx64 ": %s (%u lines held back)", what,
                s->path, exp, ino, strerror(sys_err), held);
    return err;
}

/*
 * Our folder was deleted under us (the directory we hold has no link
 * left): if one was put back at its path (the operator restored it), use
 * that from now on and return true.  A missing folder is not created here:
 * its path may be an unmounted disk's mount point.  dup3 swaps the
 * descriptor atomically for concurrent openat calls; the lock is taken on
 * the new folder first (a second daemon may hold it: then not ours).
 */
static bool reattach(struct stage *s)
{
    struct stat st;
    if (fstat(s->dirfd, &st) != 0 || st.st_nlink != 0)
        return false;
    int fd = open(s->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = flock(fd, LOCK_EX | LOCK_NB) == 0 && fsync(fd) == 0 &&
              dup3(fd, s->dirfd, O_CLOEXEC) >= 0;
    close(fd); /* the lock stays: s->dirfd shares the open file */
    if (ok)
        LOG_AT(LOG_NOTICE, "stage: %s was deleted under the daemon and is back: using it", s->path);
    return ok;
}

/* ---- entries ----------------------------------------------------------- */

/*
 * Drop a use of f.  The last user of a removed entry closes its descriptor
 * and frees it; the last user of an open one may trim the LRU.
 */
static void sf_put(struct stage *s, struct sfile *f)
{
    pthread_mutex_lock(&s->lock);
    bool last = --f->users == 0;
    if (last && f->removed) {
        int fd = f->fd;
        if (fd >= 0) {
            lru_unlink(f);
            s->nopen--;
        }
        CHECK_STAGE(s);
        pthread_mutex_unlock(&s->lock);
        if (fd >= 0)
            close(fd);
        pthread_mutex_destroy(&f->lock);
        free(f);
        return;
    }
    bool trim = last && s->nopen > STAGE_OPEN_MAX;
    CHECK_STAGE(s);
    pthread_mutex_unlock(&s->lock);
    if (trim)
        lru_trim(s);
}

/*
 * Take a use of (exp, ino)'s entry with its descriptor open: 0 and *out
 * (release with sf_put), ENOENT (no staged file and !create), or an
 * errno (counted and logged).  With create, a missing file is created
 * (empty, 0600); a removed entry met on the way is passed over for the
 * file that replaces it.
 */
static int sf_get(struct stage *s, uint32_t exp, uint64_t ino, bool create, struct sfile **out)
{
    char name[NAME_SIZE];
    for (;;) {
        pthread_mutex_lock(&s->lock);
        struct sfile *f = lookup(s, exp, ino);
        if (!f) {
            if (!create) {
                pthread_mutex_unlock(&s->lock);
                return ENOENT;
            }
            if (!(f = calloc(1, sizeof(*f)))) {
                pthread_mutex_unlock(&s->lock);
                return io_failed(s, "create", exp, ino, ENOMEM);
            }
            f->exp = exp;
            f->ino = ino;
            f->fd = -1;
            pthread_mutex_init(&f->lock, NULL);
            hash_insert(s, f);
        } else if (!f->on_disk && !create) {
            pthread_mutex_unlock(&s->lock);
            return ENOENT; /* being created: not there yet */
        }
        f->users++;
        if (f->fd >= 0) {
            lru_unlink(f);
            lru_push(s, f);
            pthread_mutex_unlock(&s->lock);
            *out = f;
            return 0;
        }
        pthread_mutex_unlock(&s->lock);

        pthread_mutex_lock(&f->lock);
        if (f->removed) {
            pthread_mutex_unlock(&f->lock);
            sf_put(s, f);
            continue;
        }
        pthread_mutex_lock(&s->lock);
        bool open_already = f->fd >= 0;
        pthread_mutex_unlock(&s->lock);
        if (open_already) {
            pthread_mutex_unlock(&f->lock);
            *out = f;
            return 0;
        }
        bool creating = !f->on_disk;
        sf_name(name, exp, ino);
        int flags = O_RDWR | O_CLOEXEC | O_NOFOLLOW | (creating ? O_CREAT : 0);
        int fd = openat(s->dirfd, name, flags, 0600);
        if (fd < 0 && errno == ENOENT && reattach(s))
            fd = openat(s->dirfd, name, flags, 0600);
        int err = fd < 0 ? errno : 0;
        struct stat st = {0};
        if (fd >= 0 && creating && fstat(fd, &st) != 0)
            st = (struct stat){0}; /* measured again after the first write */
        pthread_mutex_lock(&s->lock);
        if (err) {
            if (creating) {
                hash_remove(s, f);
                f->removed = true;
            }
        } else {
            f->fd = fd;
            lru_push(s, f);
            s->nopen++;
            if (creating) {
                f->on_disk = true;
                f->dir_gen = ++s->created_gen; /* its name exists now */
                f->size = (uint64_t)st.st_size;
                f->space = (uint64_t)st.st_blocks * 512;
                s->st.bytes += f->space;
                s->st.files++;
            }
        }
        bool trim = s->nopen > STAGE_OPEN_MAX;
        CHECK_STAGE(s);
        pthread_mutex_unlock(&s->lock);
        pthread_mutex_unlock(&f->lock);
        if (err) {
            sf_put(s, f);
            /*
             * An indexed file that vanished was deleted behind our back: its
             * data is lost.  A create that finds our own folder gone or
             * read-only (deleted or remounted under us) is an I/O error, not
             * a missing, read-only or forbidden file of the client's.
             */
            bool own_folder = err == ENOENT || err == ENOTDIR || err == EROFS || err == EACCES ||
                              err == EPERM;
            if (creating ? own_folder : err == ENOENT)
                err = EIO;
            return io_failed(s, creating ? "create" : "open", exp, ino, err);
        }
        if (trim)
            lru_trim(s);
        *out = f;
        return 0;
    }
}

/*
 * Measure f after a write or truncate and apply the change of its space to
 * the total; release `reserved` bytes of reservation; count a write of
 * `written` bytes.  0 or fstat's errno.
 */
static int sf_measure(struct stage *s, struct sfile *f, uint64_t reserved, bool is_write,
                      size_t written)
{
    pthread_mutex_lock(&f->lock);
    struct stat st;
    int err = fstat(f->fd, &st) != 0 ? errno : 0;
    /*
     * Deleted under us (by hand, or with the whole folder): what was just
     * written is in a file nobody can open again, and will be lost.
     */
    if (!err && st.st_nlink == 0 && !f->removed)
        err = EIO;
    pthread_mutex_lock(&s->lock);
    if (!err && !f->removed) {
        uint64_t space = (uint64_t)st.st_blocks * 512;
        s->st.bytes = s->st.bytes - f->space + space;
        f->space = space;
        f->size = (uint64_t)st.st_size;
    }
    s->reserved -= reserved;
    if (is_write) {
        s->st.writes++;
        s->st.write_bytes += written;
    }
    CHECK_STAGE(s);
    pthread_mutex_unlock(&s->lock);
    pthread_mutex_unlock(&f->lock);
    return err;
}

/* ---- I/O --------------------------------------------------------------- */

/*
 * Allocate [off, off+len) before writing it, without changing the size, so
 * that a full disk fails here with nothing written (see the contract).  A
 * file system without fallocate is remembered and written without.
 */
static int space_for(struct stage *s, int fd, uint64_t off, size_t len)
{
    if (atomic_load_explicit(&s->no_fallocate, memory_order_relaxed))
        return 0;
    for (;;) {
        if (fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
            return 0;
        if (errno == EINTR)
            continue;
        int err = errno;
        if (err == EOPNOTSUPP || err == ENOSYS) {
            if (!atomic_exchange(&s->no_fallocate, true))
                LOG_AT(LOG_NOTICE,
                       "stage: %s: no fallocate (%s): a full disk may fail a write "
                       "after part of it was written",
                       s->path, strerror(err));
            return 0;
        }
        return err;
    }
}

/* The blocks [off, off+len) touches, in bytes: what the write may add at most. */
static uint64_t write_span(const struct stage *s, uint64_t off, size_t len)
{
    uint64_t first = off / s->blksize, last = (off + len - 1) / s->blksize;
    return (last - first + 1) * s->blksize;
}

/* ---- the API ----------------------------------------------------------- */

int stage_write(struct stage *s, uint32_t exp, uint64_t ino, uint64_t off, const void *buf,
                size_t len)
{
    if (off > OFF_LIMIT || len > OFF_LIMIT - off)
        return EFBIG;
    uint64_t need = len ? write_span(s, off, len) : 0;
    pthread_mutex_lock(&s->lock);
    if (need && s->max_bytes && s->st.bytes + s->reserved + need > s->max_bytes) {
        s->st.over_limit++;
        pthread_mutex_unlock(&s->lock);
        return EAGAIN;
    }
    s->reserved += need;
    pthread_mutex_unlock(&s->lock);

    struct sfile *f;
    int err = sf_get(s, exp, ino, true, &f);
    if (err) {
        pthread_mutex_lock(&s->lock);
        s->reserved -= need;
        pthread_mutex_unlock(&s->lock);
        return err;
    }
    const char *what = "allocate";
    if (len && !(err = space_for(s, f->fd, off, len))) {
        what = "write";
        err = fs_pwrite_full(f->fd, buf, len, off);
    }
    int merr = sf_measure(s, f, need, !err, len);
    if (!err && merr) {
        what = "measure";
        err = merr;
    }
    sf_put(s, f);
    return err ? io_failed(s, what, exp, ino, err) : 0;
}

int stage_read(struct stage *s, uint32_t exp, uint64_t ino, uint64_t off, size_t len, void *buf,
               size_t *got)
{
    *got = 0;
    struct sfile *f;
    int err = sf_get(s, exp, ino, false, &f);
    if (err)
        return err;
    if (off < OFF_LIMIT) {
        if (len > OFF_LIMIT - off)
            len = OFF_LIMIT - off;
        err = fs_pread_full(f->fd, buf, len, off, got);
    }
    sf_put(s, f);
    return err ? io_failed(s, "read", exp, ino, err) : 0;
}

int stage_truncate(struct stage *s, uint32_t exp, uint64_t ino, uint64_t size)
{
    if (size > OFF_LIMIT)
        return EFBIG;
    struct sfile *f;
    int err = sf_get(s, exp, ino, true, &f);
    if (err)
        return err;
    const char *what = "truncate";
    if (ftruncate(f->fd, (off_t)size) != 0)
        err = errno;
    int merr = sf_measure(s, f, 0, false, 0);
    if (!err && merr) {
        what = "measure";
        err = merr;
    }
    sf_put(s, f);
    return err ? io_failed(s, what, exp, ino, err) : 0;
}

int stage_size(struct stage *s, uint32_t exp, uint64_t ino, uint64_t *size)
{
    pthread_mutex_lock(&s->lock);
    struct sfile *f = lookup(s, exp, ino);
    int err = f && f->on_disk ? 0 : ENOENT;
    if (!err)
        *size = f->size;
    pthread_mutex_unlock(&s->lock);
    return err;
}

bool stage_exists(struct stage *s, uint32_t exp, uint64_t ino)
{
    pthread_mutex_lock(&s->lock);
    struct sfile *f = lookup(s, exp, ino);
    bool yes = f && f->on_disk;
    pthread_mutex_unlock(&s->lock);
    return yes;
}

/*
 * Make the name of a file created with dir_gen durable: one fsync of the
 * folder covers every file created before it began, so concurrent callers
 * (COMMITs of many new files) share it instead of queueing a sync each.
 */
static int dir_sync(struct stage *s, uint64_t dir_gen)
{
    int err = 0;
    pthread_mutex_lock(&s->dsync_mu);
    pthread_mutex_lock(&s->lock);
    bool covered = dir_gen <= s->synced_gen;
    uint64_t target = s->created_gen;
    pthread_mutex_unlock(&s->lock);
    if (!covered) {
        if (fsync(s->dirfd) != 0) {
            err = errno;
        } else {
            pthread_mutex_lock(&s->lock);
            s->synced_gen = target;
            s->st.dir_syncs++;
            pthread_mutex_unlock(&s->lock);
        }
    }
    pthread_mutex_unlock(&s->dsync_mu);
    return err;
}

int stage_sync(struct stage *s, uint32_t exp, uint64_t ino)
{
    struct sfile *f;
    int err = sf_get(s, exp, ino, false, &f);
    if (err)
        return err;
    const char *what = "sync";
    struct stat st;
    if (fdatasync(f->fd) != 0)
        err = errno;
    else if (fstat(f->fd, &st) == 0 && st.st_nlink == 0 && !f->removed)
        err = EIO; /* deleted under us: durable in a file nobody can open again */
    pthread_mutex_lock(&s->lock);
    bool dir_synced = f->dir_gen <= s->synced_gen;
    pthread_mutex_unlock(&s->lock);
    /* The file's fsync does not make its name durable: the folder's does. */
    if (!err && !dir_synced && (err = dir_sync(s, f->dir_gen)))
        what = "sync the folder of";
    if (!err) {
        pthread_mutex_lock(&s->lock);
        s->st.syncs++;
        pthread_mutex_unlock(&s->lock);
    }
    sf_put(s, f);
    return err ? io_failed(s, what, exp, ino, err) : 0;
}

struct key {
    uint32_t exp;
    uint64_t ino;
    uint64_t size;
};

/* The staged files now: a malloc'ed array (*n entries), or NULL and ENOMEM. */
static struct key *snapshot(struct stage *s, size_t *n)
{
    pthread_mutex_lock(&s->lock);
    struct key *k = malloc((s->nhashed ? s->nhashed : 1) * sizeof(*k));
    size_t m = 0;
    for (size_t i = 0; k && i < s->nbuckets; i++)
        for (struct sfile *f = s->buckets[i]; f; f = f->hnext)
            if (f->on_disk)
                k[m++] = (struct key){f->exp, f->ino, f->size};
    pthread_mutex_unlock(&s->lock);
    *n = m;
    return k;
}

int stage_sync_all(struct stage *s)
{
    size_t n;
    struct key *k = snapshot(s, &n);
    if (!k)
        return ENOMEM;
    int first = 0;
    for (size_t i = 0; i < n; i++) {
        int err = stage_sync(s, k[i].exp, k[i].ino);
        if (err && err != ENOENT && !first)
            first = err;
    }
    free(k);
    if (fsync(s->dirfd) != 0 && !first) {
        first = errno;
        LOG_AT(LOG_WARNING, "stage: cannot sync %s: %s", s->path, strerror(first));
    }
    return first;
}

int stage_remove(struct stage *s, uint32_t exp, uint64_t ino)
{
    pthread_mutex_lock(&s->lock);
    struct sfile *f = lookup(s, exp, ino);
    if (!f || !f->on_disk) {
        pthread_mutex_unlock(&s->lock);
        return 0;
    }
    f->users++;
    pthread_mutex_unlock(&s->lock);

    int err = 0;
    pthread_mutex_lock(&f->lock);
    if (!f->removed) {
        char name[NAME_SIZE];
        sf_name(name, exp, ino);
        if (unlinkat(s->dirfd, name, 0) != 0 && errno != ENOENT)
            err = errno;
        if (!err) {
            pthread_mutex_lock(&s->lock);
            hash_remove(s, f);
            f->removed = true;
            s->st.bytes -= f->space;
            s->st.files--;
            f->space = 0;
            pthread_mutex_unlock(&s->lock);
        }
    }
    pthread_mutex_unlock(&f->lock);
    sf_put(s, f);
    return err ? io_failed(s, "remove", exp, ino, err) : 0;
}

int stage_open(struct stage *s, uint32_t exp, uint64_t ino, int *fd)
{
    pthread_mutex_lock(&s->lock);
    struct sfile *f = lookup(s, exp, ino);
    if (!f || !f->on_disk) {
        pthread_mutex_unlock(&s->lock);
        return ENOENT;
    }
    f->users++;
    pthread_mutex_unlock(&s->lock);

    int err = ENOENT;
    pthread_mutex_lock(&f->lock);
    if (!f->removed) {
        char name[NAME_SIZE];
        sf_name(name, exp, ino);
        *fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (*fd < 0 && errno == ENOENT && reattach(s))
            *fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        err = *fd < 0 ? errno : 0;
        /* An indexed file that vanished was deleted behind our back: its data is lost. */
        if (err == ENOENT)
            err = EIO;
    }
    pthread_mutex_unlock(&f->lock);
    sf_put(s, f);
    if (err == ENOENT)
        return ENOENT; /* removed meanwhile */
    return err ? io_failed(s, "open", exp, ino, err) : 0;
}

int stage_list(struct stage *s, int (*cb)(void *arg, uint32_t exp, uint64_t ino, uint64_t size),
               void *arg)
{
    size_t n;
    struct key *k = snapshot(s, &n);
    if (!k)
        return ENOMEM;
    int ret = 0;
    for (size_t i = 0; i < n && !ret; i++)
        ret = cb(arg, k[i].exp, k[i].ino, k[i].size);
    free(k);
    return ret;
}

void stage_get_stats(struct stage *s, struct stage_stats *out)
{
    pthread_mutex_lock(&s->lock);
    *out = s->st;
    pthread_mutex_unlock(&s->lock);
}

/* ---- create / destroy --------------------------------------------------- */

/*
 * Index the staged files in dirty/.  Other names are logged and left alone
 * (not ours to remove: an operator may have put them there).  0 or errno.
 */
static int scan(struct stage *s)
{
    int dfd = dup(s->dirfd);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d) {
        int err = errno;
        if (dfd >= 0)
            close(dfd);
        return err;
    }
    int err = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            err = errno;
            break;
        }
        const char *nm = de->d_name;
        if (!strcmp(nm, ".") || !strcmp(nm, ".."))
            continue;
        uint32_t exp;
        uint64_t ino;
        struct stat st;
        if (!sf_parse(nm, &exp, &ino)) {
            LOG_AT(LOG_WARNING, "stage: ignoring %s/%s: not a staged file's name", s->path, nm);
            continue;
        }
        if (fstatat(s->dirfd, nm, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) {
            LOG_AT(LOG_WARNING, "stage: ignoring %s/%s: not a regular file", s->path, nm);
            continue;
        }
        struct sfile *f = calloc(1, sizeof(*f));
        if (!f) {
            err = ENOMEM;
            break;
        }
        f->exp = exp;
        f->ino = ino;
        f->fd = -1;
        f->on_disk = true;
        f->dir_gen = 0; /* made durable by the fsync below */
        f->size = (uint64_t)st.st_size;
        f->space = (uint64_t)st.st_blocks * 512;
        pthread_mutex_init(&f->lock, NULL);
        hash_insert(s, f);
        s->st.files++;
        s->st.bytes += f->space;
    }
    closedir(d);
    if (!err && fsync(s->dirfd) != 0)
        err = errno;
    return err;
}

struct stage *stage_create(const struct stage_conf *c)
{
    int err;
    struct stage *s = calloc(1, sizeof(*s));
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    s->dirfd = -1;
    s->lru.next = s->lru.prev = &s->lru;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->dsync_mu, NULL);
    s->max_bytes = c->max_bytes;
    s->st.max_bytes = c->max_bytes;
    s->nbuckets = BUCKETS_MIN;
    size_t plen = strlen(c->dir) + sizeof("/dirty");
    if (!(s->path = malloc(plen)) || !(s->buckets = calloc(s->nbuckets, sizeof(*s->buckets)))) {
        err = ENOMEM;
        goto fail;
    }
    snprintf(s->path, plen, "%s/dirty", c->dir);
    if ((err = fs_mkdirs(s->path))) {
        LOG_AT(LOG_ERR, "stage: cannot create %s: %s", s->path, strerror(err));
        goto fail;
    }
    struct stat st;
    s->dirfd = open(s->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dirfd < 0 || fstat(s->dirfd, &st) != 0) {
        err = errno;
        LOG_AT(LOG_ERR, "stage: cannot open %s: %s", s->path, strerror(err));
        goto fail;
    }
    s->blksize = st.st_blksize >= 512 ? (uint64_t)st.st_blksize : 4096;
    /* Two daemons writing the same staged files would corrupt each other's data. */
    if (flock(s->dirfd, LOCK_EX | LOCK_NB) != 0) {
        err = errno == EWOULDBLOCK ? EBUSY : errno;
        if (err == EBUSY)
            LOG_AT(LOG_ERR,
                   "stage: %s is in use by another process: two daemons cannot share "
                   "staged files",
                   s->path);
        else
            LOG_AT(LOG_ERR, "stage: cannot lock %s: %s", s->path, strerror(err));
        goto fail;
    }
    if ((err = scan(s))) {
        LOG_AT(LOG_ERR, "stage: cannot read %s: %s", s->path, strerror(err));
        goto fail;
    }
    if (s->st.files)
        LOG_AT(LOG_INFO, "stage: %s: %" PRIu64 " staged files, %" PRIu64 " bytes on disk", s->path,
               s->st.files, s->st.bytes);
    return s;
fail:
    stage_destroy(s);
    errno = err;
    return NULL;
}

void stage_destroy(struct stage *s)
{
    if (!s)
        return;
    for (size_t i = 0; s->buckets && i < s->nbuckets; i++)
        while (s->buckets[i]) {
            struct sfile *f = s->buckets[i];
            s->buckets[i] = f->hnext;
            if (f->fd >= 0)
                close(f->fd);
            pthread_mutex_destroy(&f->lock);
            free(f);
        }
    if (s->dirfd >= 0)
        close(s->dirfd);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->dsync_mu);
    free(s->buckets);
    free(s->path);
    free(s);
}
