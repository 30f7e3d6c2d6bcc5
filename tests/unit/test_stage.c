/*
 * test_stage.c - staged files (cache/stage) in a temporary folder: bytes
 * written read back exactly, holes read as zeros and take no space, a file
 * cut and extended has the size asked; the space accounted is what the
 * files take on disk, also after a restart; a write over max_bytes fails
 * with EAGAIN and changes nothing; a removed file stays readable through a
 * descriptor from stage_open; concurrent writers to one file and to many
 * give the right bytes, also with a remover racing them; more files than
 * cached descriptors all read back; stage_list sees every file; other names
 * in dirty/ are ignored and left alone; a second process is kept out; a
 * full disk fails a write with ENOSPC and the file as it was.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/stage.h"
#include "common/log.h"
#include "tests/unit/testlib.h"

static char root[256];
static char sdir[PATH_MAX]; /* the configured directory of the current test */

static struct stage *stage_new(uint64_t max)
{
    struct stage_conf c = {.dir = sdir, .max_bytes = max};
    struct stage *s = stage_create(&c);
    if (!s) {
        perror("stage_create");
        exit(2);
    }
    return s;
}

static unsigned char byte_at(unsigned seed, uint64_t off)
{
    uint64_t x = (off / 8) * 0x9e3779b97f4a7c15ull + seed * 0xbf58476d1ce4e5b9ull;
    x ^= x >> 29;
    return (unsigned char)(x >> (8 * (off % 8)));
}

static void fill(unsigned char *buf, size_t len, unsigned seed, uint64_t off)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = byte_at(seed, off + i);
}

/* Whether [off, off+len) of the staged file holds seed's bytes. */
static bool holds(struct stage *s, uint32_t exp, uint64_t ino, uint64_t off, size_t len,
                  unsigned seed)
{
    unsigned char *buf = malloc(len);
    size_t got = 0;
    bool ok = buf && stage_read(s, exp, ino, off, len, buf, &got) == 0 && got == len;
    for (size_t i = 0; ok && i < len; i++)
        ok = buf[i] == byte_at(seed, off + i);
    free(buf);
    return ok;
}

static bool zeros(struct stage *s, uint32_t exp, uint64_t ino, uint64_t off, size_t len)
{
    unsigned char *buf = malloc(len);
    size_t got = 0;
    bool ok = buf && stage_read(s, exp, ino, off, len, buf, &got) == 0 && got == len;
    for (size_t i = 0; ok && i < len; i++)
        ok = buf[i] == 0;
    free(buf);
    return ok;
}

static int put(struct stage *s, uint32_t exp, uint64_t ino, uint64_t off, size_t len, unsigned seed)
{
    unsigned char *buf = malloc(len ? len : 1);
    fill(buf, len, seed, off);
    int err = stage_write(s, exp, ino, off, buf, len);
    free(buf);
    return err;
}

/* What dirty/ holds: the staged files' number and st_blocks * 512 (other names not counted). */
static void on_disk(uint64_t *files, uint64_t *bytes)
{
    char path[PATH_MAX + 8];
    snprintf(path, sizeof(path), "%s/dirty", sdir);
    DIR *d = opendir(path);
    *files = *bytes = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        struct stat st;
        unsigned e;
        unsigned long long i;
        char again[32];
        if (sscanf(de->d_name, "%8x-%16llx", &e, &i) != 2 ||
            snprintf(again, sizeof(again), "%08x-%016llx", e, i) < 0 ||
            strcmp(again, de->d_name) != 0 ||
            fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue;
        (*files)++;
        *bytes += (uint64_t)st.st_blocks * 512;
    }
    if (d)
        closedir(d);
}

static void check_accounting(struct stage *s, const char *when)
{
    struct stage_stats st;
    uint64_t files, bytes;
    stage_get_stats(s, &st);
    on_disk(&files, &bytes);
    if (st.files != files || st.bytes != bytes)
        fprintf(stderr, "%s: stats %llu files %llu bytes, disk %llu files %llu bytes\n", when,
                (unsigned long long)st.files, (unsigned long long)st.bytes,
                (unsigned long long)files, (unsigned long long)bytes);
    CHECK_EQ_INT(st.files, files);
    CHECK_EQ_INT(st.bytes, bytes);
}

/* Nothing staged, nothing on disk. */
static void check_empty(struct stage *s, const char *when)
{
    struct stage_stats st;
    stage_get_stats(s, &st);
    CHECK_EQ_INT(st.files, 0);
    CHECK_EQ_INT(st.bytes, 0);
    check_accounting(s, when);
}

static void test_basic(void)
{
    struct stage *s = stage_new(0);
    uint64_t size = 1;
    size_t got = 1;
    char buf[64];
    CHECK(!stage_exists(s, 1, 2));
    CHECK_EQ_INT(stage_read(s, 1, 2, 0, sizeof(buf), buf, &got), ENOENT);
    CHECK_EQ_INT(stage_size(s, 1, 2, &size), ENOENT);
    CHECK_EQ_INT(stage_sync(s, 1, 2), ENOENT);
    int fd = -1;
    CHECK_EQ_INT(stage_open(s, 1, 2, &fd), ENOENT);
    CHECK_EQ_INT(stage_remove(s, 1, 2), 0);

    CHECK_EQ_INT(put(s, 1, 2, 0, 100000, 7), 0);
    CHECK(stage_exists(s, 1, 2));
    CHECK(!stage_exists(s, 2, 2));
    CHECK(!stage_exists(s, 1, 3));
    CHECK_EQ_INT(stage_size(s, 1, 2, &size), 0);
    CHECK_EQ_INT(size, 100000);
    CHECK(holds(s, 1, 2, 0, 100000, 7));
    CHECK(holds(s, 1, 2, 4095, 3000, 7));
    /* Short only at the end, nothing past it. */
    CHECK_EQ_INT(stage_read(s, 1, 2, 99990, sizeof(buf), buf, &got), 0);
    CHECK_EQ_INT(got, 10);
    CHECK_EQ_INT(stage_read(s, 1, 2, 200000, sizeof(buf), buf, &got), 0);
    CHECK_EQ_INT(got, 0);
    /* An overwrite in the middle. */
    CHECK_EQ_INT(put(s, 1, 2, 5000, 1000, 8), 0);
    CHECK(holds(s, 1, 2, 0, 5000, 7));
    CHECK(holds(s, 1, 2, 5000, 1000, 8));
    CHECK(holds(s, 1, 2, 6000, 94000, 7));
    CHECK_EQ_INT(stage_size(s, 1, 2, &size), 0);
    CHECK_EQ_INT(size, 100000);

    /* The name is (export, inode) in hex. */
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/dirty/00000001-0000000000000002", sdir);
    struct stat st;
    CHECK(stat(path, &st) == 0 && st.st_size == 100000 && (st.st_mode & 0777) == 0600);
    CHECK_EQ_INT(put(s, 0xdeadbeef, 0x0123456789abcdefull, 0, 10, 1), 0);
    snprintf(path, sizeof(path), "%s/dirty/deadbeef-0123456789abcdef", sdir);
    CHECK(stat(path, &st) == 0 && st.st_size == 10);

    /* A zero-length write creates an empty file, and so does truncate to 0. */
    CHECK_EQ_INT(stage_write(s, 1, 50, 4096, buf, 0), 0);
    CHECK(stage_exists(s, 1, 50));
    CHECK_EQ_INT(stage_size(s, 1, 50, &size), 0);
    CHECK_EQ_INT(size, 0);
    CHECK_EQ_INT(stage_truncate(s, 1, 51, 0), 0);
    CHECK(stage_exists(s, 1, 51));

    /* Beyond what a file can hold. */
    CHECK_EQ_INT(stage_write(s, 1, 52, UINT64_MAX - 10, buf, 20), EFBIG);
    CHECK_EQ_INT(stage_truncate(s, 1, 52, UINT64_MAX), EFBIG);
    CHECK(!stage_exists(s, 1, 52));

    CHECK_EQ_INT(stage_sync(s, 1, 2), 0);
    CHECK_EQ_INT(stage_sync(s, 1, 2), 0);
    CHECK_EQ_INT(stage_sync_all(s), 0);
    struct stage_stats ss;
    stage_get_stats(s, &ss);
    CHECK_EQ_INT(ss.files, 4);
    CHECK_EQ_INT(ss.writes, 4);
    CHECK_EQ_INT(ss.write_bytes, 100000 + 1000 + 10);
    CHECK_EQ_INT(ss.syncs, 2 + 4);
    CHECK_EQ_INT(ss.errors + ss.nospc + ss.over_limit, 0);
    check_accounting(s, "basic");

    CHECK_EQ_INT(stage_remove(s, 1, 2), 0);
    CHECK(!stage_exists(s, 1, 2));
    CHECK_EQ_INT(stage_remove(s, 1, 2), 0);
    check_accounting(s, "basic, removed");
    stage_destroy(s);
    stage_destroy(NULL);
}

static void test_sparse_truncate(void)
{
    struct stage *s = stage_new(0);
    uint64_t size;
    const uint64_t far = 64ull << 20;
    CHECK_EQ_INT(put(s, 3, 9, 0, 4096, 1), 0);
    CHECK_EQ_INT(put(s, 3, 9, far, 4096, 2), 0);
    CHECK_EQ_INT(stage_size(s, 3, 9, &size), 0);
    CHECK_EQ_INT(size, far + 4096);
    CHECK(holds(s, 3, 9, 0, 4096, 1));
    CHECK(zeros(s, 3, 9, 4096, 1 << 20));
    CHECK(zeros(s, 3, 9, far - 100000, 100000));
    CHECK(holds(s, 3, 9, far, 4096, 2));
    struct stage_stats st;
    stage_get_stats(s, &st);
    CHECK(st.bytes < (1u << 20)); /* the hole takes no space */
    CHECK(st.bytes >= 8192);
    check_accounting(s, "sparse");

    /* Cut down: the end is gone, and its space. */
    CHECK_EQ_INT(stage_truncate(s, 3, 9, 100), 0);
    CHECK_EQ_INT(stage_size(s, 3, 9, &size), 0);
    CHECK_EQ_INT(size, 100);
    char buf[300];
    size_t got;
    CHECK_EQ_INT(stage_read(s, 3, 9, 0, sizeof(buf), buf, &got), 0);
    CHECK_EQ_INT(got, 100);
    CHECK(holds(s, 3, 9, 0, 100, 1));
    check_accounting(s, "cut");
    /* Extended: zeros after the old end, not what was there before the cut. */
    CHECK_EQ_INT(stage_truncate(s, 3, 9, 8192), 0);
    CHECK_EQ_INT(stage_size(s, 3, 9, &size), 0);
    CHECK_EQ_INT(size, 8192);
    CHECK(holds(s, 3, 9, 0, 100, 1));
    CHECK(zeros(s, 3, 9, 100, 8092));
    /* A write past the end leaves a hole from the old end. */
    CHECK_EQ_INT(put(s, 3, 9, 20000, 10, 3), 0);
    CHECK(zeros(s, 3, 9, 8192, 20000 - 8192));
    CHECK(holds(s, 3, 9, 20000, 10, 3));
    /* A truncate creates a missing file with the size asked, all hole. */
    CHECK_EQ_INT(stage_truncate(s, 3, 10, 1 << 20), 0);
    CHECK_EQ_INT(stage_size(s, 3, 10, &size), 0);
    CHECK_EQ_INT(size, 1 << 20);
    CHECK(zeros(s, 3, 10, 0, 1 << 20));
    check_accounting(s, "extended");
    stage_destroy(s);
}

static void test_restart(void)
{
    struct stage *s = stage_new(0);
    for (uint64_t i = 0; i < 20; i++)
        CHECK_EQ_INT(put(s, 5, i, i * 5000, 3000 + i * 1000, (unsigned)i), 0);
    CHECK_EQ_INT(stage_remove(s, 5, 7), 0);
    struct stage_stats before, after;
    stage_get_stats(s, &before);
    CHECK_EQ_INT(before.files, 19);
    check_accounting(s, "before restart");
    /* A second process on the same folder is kept out. */
    struct stage_conf c = {.dir = sdir};
    errno = 0;
    log_level = LOG_CRIT; /* its error line is expected */
    CHECK(stage_create(&c) == NULL && errno == EBUSY);
    log_level = LOG_ERR;
    stage_destroy(s); /* as after kill -9: no sync, no flush */

    s = stage_new(0);
    stage_get_stats(s, &after);
    CHECK_EQ_INT(after.files, before.files);
    CHECK_EQ_INT(after.bytes, before.bytes);
    CHECK_EQ_INT(after.writes, 0);
    check_accounting(s, "after restart");
    for (uint64_t i = 0; i < 20; i++) {
        uint64_t size = 0;
        if (i == 7) {
            CHECK(!stage_exists(s, 5, i));
            continue;
        }
        CHECK_EQ_INT(stage_size(s, 5, i, &size), 0);
        CHECK_EQ_INT(size, i * 5000 + 3000 + i * 1000);
        CHECK(holds(s, 5, i, i * 5000, 3000 + i * 1000, (unsigned)i));
        if (i)
            CHECK(zeros(s, 5, i, 0, i * 5000));
    }
    /* Files found at start are written to and removed like the others. */
    CHECK_EQ_INT(put(s, 5, 3, 0, 100, 99), 0);
    CHECK(holds(s, 5, 3, 0, 100, 99));
    CHECK_EQ_INT(stage_remove(s, 5, 4), 0);
    check_accounting(s, "after restart, written");
    stage_destroy(s);
}

static void test_over_limit(void)
{
    const uint64_t max = 256 << 10;
    struct stage *s = stage_new(max);
    struct stage_stats st, st2;
    uint64_t size;
    CHECK_EQ_INT(put(s, 1, 1, 0, 128 << 10, 1), 0);
    stage_get_stats(s, &st);
    CHECK_EQ_INT(st.max_bytes, max);
    CHECK(st.bytes >= 128 << 10 && st.bytes <= max);
    /* Over the bound: EAGAIN, and nothing changed. */
    CHECK_EQ_INT(put(s, 1, 1, 128 << 10, 192 << 10, 2), EAGAIN);
    CHECK_EQ_INT(put(s, 1, 1, 0, 200 << 10, 2), EAGAIN);
    CHECK_EQ_INT(stage_size(s, 1, 1, &size), 0);
    CHECK_EQ_INT(size, 128 << 10);
    CHECK(holds(s, 1, 1, 0, 128 << 10, 1));
    /* A new file over the bound is not created. */
    CHECK_EQ_INT(put(s, 1, 2, 0, 200 << 10, 3), EAGAIN);
    CHECK(!stage_exists(s, 1, 2));
    stage_get_stats(s, &st2);
    CHECK_EQ_INT(st2.bytes, st.bytes);
    CHECK_EQ_INT(st2.files, 1);
    CHECK_EQ_INT(st2.over_limit, 3);
    CHECK_EQ_INT(st2.writes, 1);
    /* What fits still goes; once uploads have freed space, the refused write goes. */
    CHECK_EQ_INT(put(s, 1, 2, 0, 64 << 10, 4), 0);
    CHECK_EQ_INT(put(s, 1, 1, 128 << 10, 192 << 10, 2), EAGAIN);
    CHECK_EQ_INT(stage_remove(s, 1, 2), 0);
    CHECK_EQ_INT(put(s, 1, 1, 128 << 10, 64 << 10, 2), 0);
    CHECK(holds(s, 1, 1, 0, 128 << 10, 1));
    CHECK(holds(s, 1, 1, 128 << 10, 64 << 10, 2));
    stage_get_stats(s, &st2);
    CHECK(st2.bytes <= max);
    /* Truncation allocates nothing and is not refused. */
    CHECK_EQ_INT(stage_truncate(s, 1, 3, 1ull << 30), 0);
    check_accounting(s, "over limit");
    stage_destroy(s);
}

static void test_remove_open(void)
{
    struct stage *s = stage_new(0);
    CHECK_EQ_INT(put(s, 2, 8, 0, 50000, 5), 0);
    int fd = -1;
    CHECK_EQ_INT(stage_open(s, 2, 8, &fd), 0);
    CHECK(fd >= 0);
    CHECK(write(fd, "x", 1) < 0); /* read-only */
    CHECK_EQ_INT(stage_remove(s, 2, 8), 0);
    CHECK(!stage_exists(s, 2, 8));
    check_empty(s, "removed while open");
    /* The same file again: new content, while the reader still has the old. */
    CHECK_EQ_INT(put(s, 2, 8, 0, 1000, 6), 0);
    CHECK(holds(s, 2, 8, 0, 1000, 6));
    unsigned char buf[50000];
    CHECK_EQ_INT(pread(fd, buf, sizeof(buf), 0), 50000);
    bool same = true;
    for (size_t i = 0; i < sizeof(buf); i++)
        same = same && buf[i] == byte_at(5, i);
    CHECK(same);
    close(fd);
    check_accounting(s, "remove open");
    stage_destroy(s);
}

/*
 * A real full disk (a 1 MiB tmpfs, no max_bytes): a write that does not fit
 * fails with ENOSPC and leaves the file as it was; overwrites of space
 * already allocated still go.  Mounting needs root: without it the test
 * says so and is skipped.
 */
static void test_full_disk(void)
{
    snprintf(sdir, sizeof(sdir), "%s/small", root);
    mkdir(sdir, 0700);
    if (mount("bnfs-test", sdir, "tmpfs", 0, "size=1m") != 0) {
        printf("full disk: SKIPPED, cannot mount a tmpfs (%s): needs root\n", strerror(errno));
        return;
    }
    struct stage *s = stage_new(0);
    uint64_t size;
    CHECK_EQ_INT(put(s, 7, 1, 0, 512 << 10, 1), 0);
    /* A new file that does not fit: exists, empty. */
    CHECK_EQ_INT(put(s, 7, 2, 0, 768 << 10, 2), ENOSPC);
    CHECK_EQ_INT(stage_size(s, 7, 2, &size), 0);
    CHECK_EQ_INT(size, 0);
    /* Extending past the disk: nothing of it is there. */
    CHECK_EQ_INT(put(s, 7, 1, 512 << 10, 768 << 10, 3), ENOSPC);
    CHECK_EQ_INT(stage_size(s, 7, 1, &size), 0);
    CHECK_EQ_INT(size, 512 << 10);
    CHECK(holds(s, 7, 1, 0, 512 << 10, 1));
    /* Overwriting what is allocated needs no new space. */
    CHECK_EQ_INT(put(s, 7, 1, 128 << 10, 256 << 10, 4), 0);
    CHECK(holds(s, 7, 1, 0, 128 << 10, 1));
    CHECK(holds(s, 7, 1, 128 << 10, 256 << 10, 4));
    CHECK(holds(s, 7, 1, 384 << 10, 128 << 10, 1));
    struct stage_stats st;
    stage_get_stats(s, &st);
    CHECK_EQ_INT(st.nospc, 2);
    CHECK_EQ_INT(st.errors, 0);
    check_accounting(s, "full disk");
    /* Once uploaded and removed, the space is there again. */
    CHECK_EQ_INT(stage_remove(s, 7, 1), 0);
    CHECK_EQ_INT(put(s, 7, 2, 0, 768 << 10, 2), 0);
    CHECK(holds(s, 7, 2, 0, 768 << 10, 2));
    check_accounting(s, "full disk, space freed");
    stage_destroy(s);
    umount2(sdir, MNT_DETACH);
}

/* ---- threads ------------------------------------------------------------ */

#define THREADS 8
#define PIECE   (16u << 10)
#define PIECES  32 /* per thread, in the shared file */

struct worker {
    struct stage *s;
    unsigned t; /* 0 .. n-1 */
    int errs;   /* calls that failed */
};

/* Run fn on n threads (at most THREADS), each with its own worker; the failed calls of all. */
static int run_workers(struct stage *s, unsigned n, void *(*fn)(void *))
{
    pthread_t th[THREADS];
    struct worker w[THREADS];
    for (unsigned t = 0; t < n; t++) {
        w[t] = (struct worker){.s = s, .t = t};
        pthread_create(&th[t], NULL, fn, &w[t]);
    }
    int errs = 0;
    for (unsigned t = 0; t < n; t++) {
        pthread_join(th[t], NULL);
        errs += w[t].errs;
    }
    return errs;
}

/* Thread t writes pieces t, t+THREADS, ... of file (9, 1) and all of its own file (9, 100+t). */
static void *writer(void *arg)
{
    struct worker *w = arg;
    unsigned char *buf = malloc(PIECE);
    for (unsigned p = 0; p < PIECES; p++) {
        uint64_t off = (uint64_t)(p * THREADS + w->t) * PIECE;
        fill(buf, PIECE, 42, off);
        w->errs += stage_write(w->s, 9, 1, off, buf, PIECE) != 0;
        off = (uint64_t)p * PIECE;
        fill(buf, PIECE, 100 + w->t, off);
        w->errs += stage_write(w->s, 9, 100 + w->t, off, buf, PIECE) != 0;
    }
    free(buf);
    return NULL;
}

static void test_concurrent_writers(void)
{
    struct stage *s = stage_new(0);
    CHECK_EQ_INT(run_workers(s, THREADS, writer), 0);
    uint64_t size;
    CHECK_EQ_INT(stage_size(s, 9, 1, &size), 0);
    CHECK_EQ_INT(size, (uint64_t)PIECES * THREADS * PIECE);
    CHECK(holds(s, 9, 1, 0, (size_t)PIECES * THREADS * PIECE, 42));
    for (unsigned t = 0; t < THREADS; t++) {
        CHECK_EQ_INT(stage_size(s, 9, 100 + t, &size), 0);
        CHECK_EQ_INT(size, (uint64_t)PIECES * PIECE);
        CHECK(holds(s, 9, 100 + t, 0, (size_t)PIECES * PIECE, 100 + t));
    }
    struct stage_stats st;
    stage_get_stats(s, &st);
    CHECK_EQ_INT(st.writes, 2 * THREADS * PIECES);
    check_accounting(s, "concurrent writers");
    stage_destroy(s);
}

static pthread_barrier_t sync_barrier;

static void *syncer(void *arg)
{
    struct worker *w = arg;
    pthread_barrier_wait(&sync_barrier);
    w->errs += stage_sync(w->s, 7, 200 + w->t) != 0;
    return NULL;
}

/*
 * New files synced at once share one sync of the folder: the first covers
 * every file created before it began.  A file created later needs its own;
 * a file synced before needs none.
 */
static void test_group_sync(void)
{
    struct stage *s = stage_new(0);
    for (unsigned t = 0; t < THREADS; t++)
        CHECK_EQ_INT(stage_write(s, 7, 200 + t, 0, "new", 3), 0);
    pthread_barrier_init(&sync_barrier, NULL, THREADS);
    CHECK_EQ_INT(run_workers(s, THREADS, syncer), 0);
    pthread_barrier_destroy(&sync_barrier);
    struct stage_stats st;
    stage_get_stats(s, &st);
    CHECK_EQ_INT(st.syncs, THREADS);
    CHECK_EQ_INT(st.dir_syncs, 1);
    CHECK_EQ_INT(stage_write(s, 7, 300, 0, "later", 5), 0);
    CHECK_EQ_INT(stage_sync(s, 7, 300), 0);
    CHECK_EQ_INT(stage_sync(s, 7, 200), 0);
    CHECK_EQ_INT(stage_write(s, 7, 200, 3, "more", 4), 0);
    CHECK_EQ_INT(stage_sync(s, 7, 200), 0);
    stage_get_stats(s, &st);
    CHECK_EQ_INT(st.syncs, THREADS + 3);
    CHECK_EQ_INT(st.dir_syncs, 2);
    check_accounting(s, "group sync");
    stage_destroy(s);
}

/*
 * Writers (t < 2), a remover (t == 2) and an opener (t == 3) on the same few
 * files: nothing may fail, crash or be miscounted.
 */
static void *racer(void *arg)
{
    struct worker *r = arg;
    unsigned char buf[8192];
    memset(buf, (int)r->t + 1, sizeof(buf));
    for (unsigned i = 0; i < 2000; i++) {
        uint64_t ino = i % 4;
        if (r->t == 2) {
            r->errs += stage_remove(r->s, 4, ino) != 0;
        } else if (r->t == 3) {
            int fd;
            int err = stage_open(r->s, 4, ino, &fd);
            if (!err)
                close(fd);
            r->errs += err && err != ENOENT;
        } else {
            r->errs += stage_write(r->s, 4, ino, (i % 7) * 4096, buf, sizeof(buf)) != 0;
            if (i % 16 == 0)
                r->errs += stage_truncate(r->s, 4, ino, 1000) != 0;
        }
    }
    return NULL;
}

static void test_remove_race(void)
{
    struct stage *s = stage_new(0);
    CHECK_EQ_INT(run_workers(s, 4, racer), 0);
    check_accounting(s, "remove race");
    for (uint64_t ino = 0; ino < 4; ino++)
        CHECK_EQ_INT(stage_remove(s, 4, ino), 0);
    check_empty(s, "remove race, all removed");
    stage_destroy(s);
}

static unsigned open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    unsigned n = 0;
    while (d && readdir(d))
        n++;
    if (d)
        closedir(d);
    return n;
}

struct seen {
    unsigned n, bad;
};

static int count_cb(void *arg, uint32_t exp, uint64_t ino, uint64_t size)
{
    struct seen *sn = arg;
    sn->n++;
    if (exp != 6 || ino >= 600 || size != 100 + ino)
        sn->bad++;
    return 0;
}

static int stop_cb(void *arg, uint32_t exp, uint64_t ino, uint64_t size)
{
    (*(unsigned *)arg)++;
    return 77;
}

/* Remove every file it is shown (as recovery does with unclaimed ones). */
static int remove_cb(void *arg, uint32_t exp, uint64_t ino, uint64_t size)
{
    return stage_remove(arg, exp, ino);
}

static void test_many_files_and_list(void)
{
    struct stage *s = stage_new(0);
    unsigned fds0 = open_fds();
    const unsigned n = STAGE_OPEN_MAX + 100;
    int errs = 0;
    for (unsigned i = 0; i < n; i++)
        errs += put(s, 6, i, 0, 100 + i, i) != 0;
    CHECK_EQ_INT(errs, 0);
    CHECK(open_fds() <= fds0 + STAGE_OPEN_MAX);
    bool all = true;
    for (unsigned i = 0; i < n; i++)
        all = all && holds(s, 6, i, 0, 100 + i, i);
    CHECK(all);
    CHECK_EQ_INT(stage_sync_all(s), 0);
    CHECK(open_fds() <= fds0 + STAGE_OPEN_MAX);
    struct seen sn = {0};
    CHECK_EQ_INT(stage_list(s, count_cb, &sn), 0);
    CHECK_EQ_INT(sn.n, n);
    CHECK_EQ_INT(sn.bad, 0);
    unsigned calls = 0;
    CHECK_EQ_INT(stage_list(s, stop_cb, &calls), 77);
    CHECK_EQ_INT(calls, 1);
    check_accounting(s, "many files");
    stage_destroy(s);

    /* After a restart, listing finds them all; a callback may remove them. */
    s = stage_new(0);
    sn = (struct seen){0};
    CHECK_EQ_INT(stage_list(s, count_cb, &sn), 0);
    CHECK_EQ_INT(sn.n, n);
    CHECK_EQ_INT(sn.bad, 0);
    CHECK_EQ_INT(stage_list(s, remove_cb, s), 0);
    check_empty(s, "many files removed");
    stage_destroy(s);
}

static void test_garbage_names(void)
{
    char dirty[PATH_MAX + 8], p[PATH_MAX + 64];
    snprintf(dirty, sizeof(dirty), "%s/dirty", sdir);
    struct stage *s = stage_new(0);
    CHECK_EQ_INT(put(s, 1, 1, 0, 5000, 1), 0);
    stage_destroy(s);
    const char *junk[] = {"junk",
                          "0000000A-000000000000000b",
                          "00000001-0000000000000002.tmp",
                          "00000001-000000000000002",
                          "00000001_0000000000000002",
                          "0000000g-0000000000000002"};
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", dirty, junk[i]);
        FILE *f = fopen(p, "w");
        if (f) {
            fputs("not staged", f);
            fclose(f);
        }
    }
    /* A well-formed name that is not a regular file. */
    snprintf(p, sizeof(p), "%s/00000002-0000000000000003", dirty);
    mkdir(p, 0700);

    log_level = LOG_WARNING; /* the lines saying what was ignored, in the test's log */
    s = stage_new(0);
    log_level = LOG_ERR;
    struct stage_stats st;
    stage_get_stats(s, &st);
    CHECK_EQ_INT(st.files, 1);
    CHECK(stage_exists(s, 1, 1));
    CHECK(!stage_exists(s, 10, 11));
    CHECK(!stage_exists(s, 2, 3));
    CHECK(holds(s, 1, 1, 0, 5000, 1));
    unsigned calls = 0;
    CHECK_EQ_INT(stage_list(s, stop_cb, &calls), 77);
    CHECK_EQ_INT(calls, 1);
    check_accounting(s, "garbage");
    stage_destroy(s);
    /* Left alone. */
    snprintf(p, sizeof(p), "%s/junk", dirty);
    CHECK(access(p, F_OK) == 0);
    snprintf(p, sizeof(p), "%s/00000002-0000000000000003", dirty);
    CHECK(access(p, F_OK) == 0);
}

int main(void)
{
    log_init("test_stage", 1, LOG_ERR);
    snprintf(root, sizeof(root), "/tmp/bnfs-stage-XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 2;
    }
    int n = 0;
#define FRESH_DIR() snprintf(sdir, sizeof(sdir), "%s/cache%d", root, n++)
    FRESH_DIR();
    test_basic();
    FRESH_DIR();
    test_sparse_truncate();
    FRESH_DIR();
    test_restart();
    FRESH_DIR();
    test_over_limit();
    FRESH_DIR();
    test_remove_open();
    FRESH_DIR();
    test_concurrent_writers();
    FRESH_DIR();
    test_group_sync();
    FRESH_DIR();
    test_remove_race();
    FRESH_DIR();
    test_many_files_and_list();
    FRESH_DIR();
    test_garbage_names();
    test_full_disk();
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", root);
    return TEST_DONE();
}
