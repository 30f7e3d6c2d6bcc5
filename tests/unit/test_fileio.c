/*
 * test_fileio.c - file contents through meta/fileio and meta/xfile, with a
 * real inode table, dir store and block cache in a temporary folder:
 * a file replaced in the bucket behind the table's back is read as the new
 * version with its new attributes (If-Match refused, HEAD, read again),
 * never mixed; a deleted one is ESTALE; a reader going through a folder's
 * frames in name order gets the next frames prefetched (most reads hit),
 * and one reading in a shuffled order does not.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"
#include "common/conf.h"
#include "common/log.h"
#include "meta/fileio.h"
#include "meta/xfile.h"
#include "objstore/objstore.h"
#include "tests/unit/testlib.h"

static char root[256];

static void put_file(const char *rel, size_t size, int seed)
{
    char path[PATH_MAX], tmpp[PATH_MAX + 8];
    snprintf(path, sizeof(path), "%s/store/b/%s", root, rel);
    snprintf(tmpp, sizeof(tmpp), "%s.tmp", path);
    FILE *f = fopen(tmpp, "w");
    if (!f) {
        perror(tmpp);
        exit(2);
    }
    for (size_t i = 0; i < size; i++)
        fputc((int)((i * 31 + (size_t)seed * 7) & 0xff), f);
    fclose(f);
    if (rename(tmpp, path) != 0)
        exit(2);
}

static bool content_is(const unsigned char *buf, size_t off, size_t n, int seed)
{
    for (size_t i = 0; i < n; i++)
        if (buf[i] != (unsigned char)(((off + i) * 31 + (size_t)seed * 7) & 0xff))
            return false;
    return true;
}

struct fixture {
    struct objstore *store;
    struct inode_table *t;
    struct cache *cache;
    struct xfile *xf;
    struct meta_export e;
    struct inode_attr rootattr;
};

static void lookup(struct fixture *fx, const char *dir, const char *name, struct inode_attr *a)
{
    struct inode_attr d;
    int rc = inode_lookup(fx->t, &fx->e, fx->rootattr.ino, dir, &d, NULL);
    if (rc == 0)
        rc = inode_lookup(fx->t, &fx->e, d.ino, name, a, NULL);
    if (rc) {
        fprintf(stderr, "lookup %s/%s: %s\n", dir, name, strerror(rc));
        exit(2);
    }
}

static int read_file(struct fixture *fx, struct inode_attr *a, uint64_t off, size_t len,
                     unsigned char *buf, size_t *got, bool prefetch)
{
    struct meta_read r = {.t = fx->t, .cache = fx->cache, .xf = prefetch ? fx->xf : NULL,
                          .e = &fx->e, .attr = *a, .off = off, .len = len, .buf = buf};
    int err = meta_read(&r);
    *got = r.got;
    *a = r.attr;
    return err;
}

static void test_replaced_and_deleted(struct fixture *fx)
{
    enum { SZ = 3 * 65536 };
    static unsigned char buf[SZ];
    struct inode_attr a;
    size_t got;
    lookup(fx, "v", "file.bin", &a);
    CHECK_EQ_INT(read_file(fx, &a, 0, 65536, buf, &got, false), 0); /* block 0 of v1 cached */
    CHECK(got == 65536 && content_is(buf, 0, got, 1));
    char etag1[OBJ_ETAG_MAX];
    snprintf(etag1, sizeof(etag1), "%s", a.etag);
    usleep(20000);
    put_file("v/file.bin", SZ, 2); /* replaced behind the table's back */
    /* The table still says v1: reading blocks 0-1 is refused by If-Match, then read as v2. */
    CHECK_EQ_INT(read_file(fx, &a, 0, 2 * 65536, buf, &got, false), 0);
    CHECK_EQ_INT(got, 2 * 65536);
    CHECK(content_is(buf, 0, got, 2)); /* all v2: none of v1's cached block */
    CHECK(strcmp(a.etag, etag1) != 0);
    struct cache_stats st;
    cache_get_stats(fx->cache, UINT32_MAX, &st);
    CHECK(st.stale >= 1);

    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/store/b/v/file.bin", root);
    unlink(path);
    struct inode_attr gone = a;
    gone.etag[0] = 'x'; /* a version the cache does not hold: it must fetch */
    CHECK_EQ_INT(read_file(fx, &gone, 0, 100, buf, &got, false), ESTALE);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Read frames/f000..f039 in order (or shuffled); returns the cache's demand misses. */
static uint64_t read_frames(struct fixture *fx, const char *dir, bool shuffled, bool *all_ok)
{
    static unsigned char buf[20000];
    struct cache_stats st0, st1;
    cache_get_stats(fx->cache, UINT32_MAX, &st0);
    static const int order[40] = {17, 3, 29, 8, 22, 1, 14, 36, 5, 11, 39, 0, 25, 19, 33, 7,
                                  27, 12, 2, 38, 20, 9, 31, 15, 4, 35, 23, 10, 28, 16, 6,
                                  37, 21, 13, 30, 18, 34, 24, 26, 32};
    *all_ok = true;
    for (int i = 0; i < 40; i++) {
        int n = shuffled ? order[i] : i;
        char name[32];
        snprintf(name, sizeof(name), "f%03d.jpg", n);
        struct inode_attr a;
        lookup(fx, dir, name, &a);
        size_t got = 0;
        int err = read_file(fx, &a, 0, sizeof(buf), buf, &got, true);
        *all_ok = *all_ok && err == 0 && got == 20000 && content_is(buf, 0, got, 100 + n);
        usleep(30000); /* a data loader's work on the frame */
    }
    cache_get_stats(fx->cache, UINT32_MAX, &st1);
    return st1.misses - st0.misses;
}

static void test_cross_file(struct fixture *fx)
{
    bool ok;
    double t0 = now();
    uint64_t in_order = read_frames(fx, "frames", false, &ok);
    double t1 = now();
    CHECK(ok);
    uint64_t shuffled = read_frames(fx, "frames2", true, &ok);
    double t2 = now();
    CHECK(ok);
    struct xfile_stats xs;
    xfile_get_stats(fx->xf, &xs);
    printf("40 frames (80 ms store latency): in name order %llu misses in %.2f s, "
           "shuffled %llu misses in %.2f s; %llu files prefetched\n",
           (unsigned long long)in_order, t1 - t0, (unsigned long long)shuffled, t2 - t1,
           (unsigned long long)xs.files);
    CHECK(in_order <= 8);   /* the first two, and the odd one the prefetch did not reach */
    CHECK(shuffled >= 36);  /* no order: no prefetch to speak of */
    CHECK(xs.files >= 30);
}

int main(void)
{
    log_init("test_fileio", 1, LOG_ERR);
    snprintf(root, sizeof(root), "/tmp/bnfs-fileio-XXXXXX");
    if (!mkdtemp(root))
        return 2;
    char p[PATH_MAX];
    const char *dirs[] = {"store", "store/b", "store/b/v", "store/b/frames", "store/b/frames2",
                          "state", "cache"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", root, dirs[i]);
        mkdir(p, 0755);
    }
    put_file("v/file.bin", 3 * 65536, 1);
    for (int i = 0; i < 40; i++) {
        char rel[64];
        snprintf(rel, sizeof(rel), "frames/f%03d.jpg", i);
        put_file(rel, 20000, 100 + i);
        snprintf(rel, sizeof(rel), "frames2/f%03d.jpg", i);
        put_file(rel, 20000, 100 + i);
    }

    char storeroot[PATH_MAX], state[PATH_MAX], cdir[PATH_MAX];
    snprintf(storeroot, sizeof(storeroot), "%s/store", root);
    snprintf(state, sizeof(state), "%s/state", root);
    snprintf(cdir, sizeof(cdir), "%s/cache", root);
    struct conf_store cs = {.name = "t", .type = CONF_STORE_DIR, .root = storeroot,
                            .latency_ms = 80, .latency_match = "frames"};
    struct fixture fx = {0};
    fx.store = obj_create(&cs);
    fx.t = inode_open(state, 0);
    char *cdirs[1] = {cdir};
    struct cache_conf cc = {.dirs = cdirs, .ndirs = 1, .size = 64u << 20, .block_size = 65536,
                            .readahead_max = 1u << 20, .fetch_max = 8};
    fx.cache = cache_create(&cc);
    if (fx.cache)
        cache_wait_loaded(fx.cache);
    fx.xf = fx.cache && fx.t ? xfile_create(fx.t, fx.cache, 4u << 20) : NULL;
    if (!fx.store || !fx.t || !fx.cache || !fx.xf) {
        perror("fixture");
        return 2;
    }
    fx.e = (struct meta_export){.store = fx.store, .bucket = "b", .prefix = "",
                                .metadata_ttl = 3600, .file_mode = 0644, .dir_mode = 0755};
    CHECK_EQ_INT(inode_export_id(fx.t, "/t", &fx.e.id), 0);
    CHECK_EQ_INT(inode_root(fx.t, &fx.e, &fx.rootattr), 0);

    test_replaced_and_deleted(&fx);
    test_cross_file(&fx);

    xfile_destroy(fx.xf);
    cache_destroy(fx.cache);
    inode_close(fx.t);
    obj_destroy(fx.store);
    snprintf(p, sizeof(p), "rm -rf %s", root);
    if (system(p) != 0)
        fprintf(stderr, "could not remove %s\n", root);
    return TEST_DONE();
}
