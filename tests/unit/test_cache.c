/*
 * test_cache.c - the block cache over a dir store in a temporary folder:
 * reads through it are byte-exact; a warm re-read makes no store GET, also
 * after a restart; concurrent readers of a cold block cause one GET; small
 * objects take their size on disk; the disk never holds more than
 * cache.size; a scan larger than the cache leaves a hot set cached; a block
 * corrupted on disk is detected and fetched again; a replaced object is
 * never served mixed or stale once its new version is named; sequential
 * readers get read-ahead and random ones do not; a shuffle-mode export stops
 * replacing once the cache is full; a miss does not hold back a hit; a full
 * cache disk (a small tmpfs) still serves every read; cache_evict drops
 * every version of the inodes it names, and only those, for good.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"
#include "common/crc32c.h"
#include "common/conf.h"
#include "common/log.h"
#include "objstore/objstore.h"
#include "tests/unit/testlib.h"

#define BS (64u * 1024u)

static char root[256];   /* the store's root; bucket "b" inside */
static char cdir[PATH_MAX];   /* the cache directory */

static struct objstore *store_new(unsigned latency_ms, const char *match)
{
    struct conf_store c = {.name = "t", .type = CONF_STORE_DIR, .root = root,
                           .latency_ms = latency_ms, .latency_match = (char *)match};
    struct objstore *s = obj_create(&c);
    if (!s) {
        perror("obj_create");
        exit(2);
    }
    return s;
}

static struct cache *cache_new(const char *dir, uint64_t size, bool readahead)
{
    char *dirs[1] = {(char *)dir};
    struct cache_conf cc = {.dirs = dirs, .ndirs = 1, .size = size, .block_size = BS,
                            .readahead_max = readahead ? 16 * BS : 0, .fetch_max = 8};
    struct cache *c = cache_create(&cc);
    if (!c) {
        perror("cache_create");
        exit(2);
    }
    cache_wait_loaded(c);
    return c;
}

static unsigned char byte_at(unsigned seed, uint64_t off)
{
    uint64_t x = (off / 8) * 0x9e3779b97f4a7c15ull + seed * 0xbf58476d1ce4e5b9ull;
    x ^= x >> 29;
    return (unsigned char)(x >> (8 * (off % 8)));
}

/* Write an object of `size` bytes straight into the bucket folder (another tool). */
static void put_raw(const char *key, uint64_t size, unsigned seed)
{
    char path[PATH_MAX * 2], tmpp[PATH_MAX * 2 + 8];
    snprintf(path, sizeof(path), "%s/b/%s", root, key);
    snprintf(tmpp, sizeof(tmpp), "%s.tmp", path);
    int fd = open(tmpp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        perror(tmpp);
        exit(2);
    }
    unsigned char buf[65536];
    for (uint64_t off = 0; off < size;) {
        size_t n = size - off < sizeof(buf) ? (size_t)(size - off) : sizeof(buf);
        for (size_t i = 0; i < n; i++)
            buf[i] = byte_at(seed, off + i);
        if (write(fd, buf, n) != (ssize_t)n) {
            perror("write");
            exit(2);
        }
        off += n;
    }
    close(fd);
    if (rename(tmpp, path) != 0) { /* replaced whole, as S3 does */
        perror("rename");
        exit(2);
    }
}

struct obj {
    struct cache_obj o;
    char key[256];
    char etag[OBJ_ETAG_MAX];
    unsigned seed;
};

/* The current version of key as the inode table would name it. */
static void obj_load(struct objstore *s, struct obj *b, const char *key, uint64_t ino,
                     unsigned seed)
{
    struct obj_meta m;
    memset(b, 0, sizeof(*b));
    snprintf(b->key, sizeof(b->key), "%s", key);
    if (obj_head(s, "b", key, &m) != 0) {
        fprintf(stderr, "head %s failed\n", key);
        exit(2);
    }
    snprintf(b->etag, sizeof(b->etag), "%s", m.etag);
    b->seed = seed;
    b->o = (struct cache_obj){.export_id = 7, .gen = 1, .ino = ino,
                              .version = cache_version(m.etag, m.size), .size = m.size,
                              .store = s, .bucket = "b", .key = b->key, .etag = b->etag};
}

/* Read [off, off+len) through the cache and compare; returns the error. */
static int read_check(struct cache *c, struct obj *b, uint64_t off, size_t len, bool *same)
{
    unsigned char *buf = malloc(len ? len : 1);
    size_t got = 0;
    int err = cache_read(c, &b->o, off, len, buf, &got);
    bool ok = !err;
    if (!err) {
        size_t want = off >= b->o.size ? 0 : (b->o.size - off < len ? b->o.size - off : len);
        ok = got == want;
        for (size_t i = 0; ok && i < got; i++)
            ok = buf[i] == byte_at(b->seed, off + i);
    }
    free(buf);
    if (same)
        *same = ok;
    return err;
}

static bool read_all(struct cache *c, struct obj *b)
{
    bool same = false;
    return read_check(c, b, 0, b->o.size, &same) == 0 && same;
}

static struct cache_stats stats(struct cache *c)
{
    struct cache_stats st;
    cache_get_stats(c, UINT32_MAX, &st);
    return st;
}

static void test_crc(void)
{
    CHECK_EQ_INT(crc32c("123456789", 9), 0xe3069283u);
    CHECK_EQ_INT(crc32c_extend(crc32c("1234", 4), "56789", 5), 0xe3069283u);
    CHECK_EQ_INT(crc32c("", 0), 0);
}

/* Byte-exact reads at awkward offsets, warm re-reads make no GET, and a restart keeps it warm. */
static void test_basic_and_restart(void)
{
    struct objstore *s = store_new(0, NULL);
    put_raw("log.bin", 5 * BS + 1234, 1);
    put_raw("tiny.txt", 10, 2);
    struct obj a, t;
    obj_load(s, &a, "log.bin", 100, 1);
    obj_load(s, &t, "tiny.txt", 101, 2);

    struct cache *c = cache_new(cdir, 32u << 20, false);
    CHECK(read_all(c, &a));
    CHECK(read_all(c, &t));
    struct cache_stats st = stats(c);
    CHECK_EQ_INT(st.gets, 7); /* 6 blocks + 1 */
    bool same = false;
    CHECK_EQ_INT(read_check(c, &a, BS - 10, 20, &same), 0); /* across a block boundary */
    CHECK(same);
    CHECK_EQ_INT(read_check(c, &a, 5 * BS + 1000, 5000, &same), 0); /* short at the end */
    CHECK(same);
    CHECK_EQ_INT(read_check(c, &a, a.o.size, 100, &same), 0); /* at EOF: 0 bytes */
    CHECK(same);
    CHECK(read_all(c, &a));
    CHECK_EQ_INT(stats(c).gets, 7); /* all warm */
    CHECK(stats(c).hits >= 6);
    cache_destroy(c);

    /* Read at once, while the index may still be loading: right bytes either way. */
    char *dirs[1] = {cdir};
    struct cache_conf cc = {.dirs = dirs, .ndirs = 1, .size = 32u << 20, .block_size = BS,
                            .fetch_max = 4};
    c = cache_create(&cc);
    CHECK(c && read_all(c, &a) && read_all(c, &t));
    cache_destroy(c);

    c = cache_new(cdir, 32u << 20, false);
    CHECK_EQ_INT(stats(c).blocks, 7);
    CHECK(read_all(c, &a));
    CHECK(read_all(c, &t));
    CHECK_EQ_INT(stats(c).gets, 0); /* warm after a restart */
    cache_destroy(c);
    obj_destroy(s);
}

struct racer {
    struct cache *c;
    struct obj *b;
    bool ok;
};

static void *race_read(void *arg)
{
    struct racer *r = arg;
    r->ok = read_all(r->c, r->b);
    return NULL;
}

/* 16 readers of one cold object: one GET per block. */
static void test_single_flight(void)
{
    struct objstore *s = store_new(150, "cold/");
    put_raw("cold/one.bin", 3 * BS, 3);
    struct obj b;
    obj_load(s, &b, "cold/one.bin", 200, 3);
    struct cache *c = cache_new(cdir, 32u << 20, false);
    pthread_t th[16];
    struct racer r[16];
    for (int i = 0; i < 16; i++) {
        r[i] = (struct racer){c, &b, false};
        pthread_create(&th[i], NULL, race_read, &r[i]);
    }
    bool all = true;
    for (int i = 0; i < 16; i++) {
        pthread_join(th[i], NULL);
        all = all && r[i].ok;
    }
    CHECK(all);
    CHECK_EQ_INT(stats(c).gets, 3);
    cache_destroy(c);
    obj_destroy(s);
}

/* Small objects take their size; the disk never holds more than cache.size. */
static void test_small_and_bound(void)
{
    struct objstore *s = store_new(0, NULL);
    struct cache *c = cache_new(cdir, 8u << 20, false);
    char key[64];
    bool all = true;
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "frames/f%03d.jpg", i);
        put_raw(key, 10000 + (uint64_t)i, 10 + (unsigned)i);
        struct obj b;
        obj_load(s, &b, key, 1000 + (uint64_t)i, 10 + (unsigned)i);
        all = all && read_all(c, &b);
    }
    CHECK(all);
    struct cache_stats st = stats(c);
    CHECK_EQ_INT(st.blocks, 100);
    /* 100 frames of ~10 KB: 12 KiB each with header and padding, not a 64 KiB block */
    CHECK(st.disk_bytes <= 100u * 12288u + (1u << 20));
    CHECK(st.disk_bytes >= 100u * 10000u);

    /* Now 40 MiB through an 8 MiB cache: the bound holds after every file. */
    uint64_t worst = 0;
    for (int i = 0; i < 20 && all; i++) {
        snprintf(key, sizeof(key), "big/%02d.bin", i);
        put_raw(key, 2u << 20, 50 + (unsigned)i);
        struct obj b;
        obj_load(s, &b, key, 2000 + (uint64_t)i, 50 + (unsigned)i);
        all = read_all(c, &b);
        st = stats(c);
        if (st.disk_bytes > worst)
            worst = st.disk_bytes;
    }
    CHECK(all);
    printf("8 MiB cache after 40 MiB of reads: at most %llu bytes on disk, %llu evictions\n",
           (unsigned long long)worst, (unsigned long long)st.evictions);
    CHECK(worst <= (8u << 20));
    CHECK(st.evictions > 0);
    cache_destroy(c);
    obj_destroy(s);
}

/* A hot set read twice survives one scan larger than the cache. */
static void test_scan_resistance(void)
{
    struct objstore *s = store_new(0, NULL);
    struct cache *c = cache_new(cdir, 16u << 20, false);
    struct obj hot[16];
    char key[64];
    for (int i = 0; i < 16; i++) { /* 16 x 128 KiB = 2 MiB hot set */
        snprintf(key, sizeof(key), "hot/%02d", i);
        put_raw(key, 2 * BS, 100 + (unsigned)i);
        obj_load(s, &hot[i], key, 3000 + (uint64_t)i, 100 + (unsigned)i);
    }
    for (int pass = 0; pass < 3; pass++)
        for (int i = 0; i < 16; i++)
            read_all(c, &hot[i]);
    put_raw("scan/replay.log", 48u << 20, 7); /* one pass over 3x the cache */
    struct obj scan;
    obj_load(s, &scan, "scan/replay.log", 3100, 7);
    CHECK(read_all(c, &scan));
    uint64_t before = stats(c).gets;
    bool all = true;
    for (int i = 0; i < 16; i++)
        all = all && read_all(c, &hot[i]);
    CHECK(all);
    uint64_t refetched = stats(c).gets - before;
    printf("after a 48 MiB scan through a 16 MiB cache: %llu of 32 hot blocks refetched\n",
           (unsigned long long)refetched);
    CHECK(refetched <= 3); /* >= 90% of the hot set stayed */
    cache_destroy(c);
    obj_destroy(s);
}

/* The data file of the (only) shard of the cache in cdir, into path (PATH_MAX). */
static void shard_file(char *path)
{
    char cmd[PATH_MAX * 2];
    snprintf(cmd, sizeof(cmd), "ls %s/shard-00-*.dat", cdir);
    FILE *p = popen(cmd, "r");
    path[0] = '\0';
    if (!p || !fgets(path, PATH_MAX, p)) {
        fprintf(stderr, "no shard file\n");
        exit(2);
    }
    pclose(p);
    path[strcspn(path, "\n")] = '\0';
}

/* Flip a byte of the first record's data in the shard file. */
static void corrupt_first_block(void)
{
    char path[PATH_MAX];
    shard_file(path);
    int fd = open(path, O_RDWR);
    unsigned char ch;
    /* The first region's first record: 64-byte header, then data. */
    if (fd < 0 || pread(fd, &ch, 1, 64 + 100) != 1) {
        perror(path);
        exit(2);
    }
    ch ^= 0x5a;
    if (pwrite(fd, &ch, 1, 64 + 100) != 1)
        exit(2);
    close(fd);
}

static void test_corruption(void)
{
    struct objstore *s = store_new(0, NULL);
    put_raw("c/one.bin", BS, 9);
    struct obj b;
    obj_load(s, &b, "c/one.bin", 4000, 9);
    char *dirs[1] = {cdir};
    struct cache_conf cc = {.dirs = dirs, .ndirs = 1, .size = 8u << 20, .block_size = BS,
                            .shards = 1, .fetch_max = 4};
    struct cache *c = cache_create(&cc);
    if (c)
        cache_wait_loaded(c);
    CHECK(c && read_all(c, &b));
    cache_destroy(c);
    corrupt_first_block();
    c = cache_create(&cc);
    CHECK(c != NULL);
    if (!c)
        return;
    cache_wait_loaded(c);
    CHECK(read_all(c, &b)); /* right bytes, from the store */
    struct cache_stats st = stats(c);
    CHECK_EQ_INT(st.corrupt, 1);
    CHECK_EQ_INT(st.gets, 1);
    CHECK(read_all(c, &b));
    CHECK_EQ_INT(stats(c).gets, 1); /* the refetched copy is good */
    cache_destroy(c);
    obj_destroy(s);
}

/*
 * Two caches on one folder at once would write into each other's regions
 * and serve each other's bytes: the second is refused (EBUSY) while the
 * first is open, and opens once it is closed.  The same folder named twice
 * by one cache is fine.
 */
static void test_folder_lock(void)
{
    char *dirs[2] = {cdir, cdir};
    struct cache_conf cc = {.dirs = dirs, .ndirs = 1, .size = 8u << 20, .block_size = BS,
                            .shards = 2, .fetch_max = 2};
    struct cache *c = cache_create(&cc);
    CHECK(c != NULL);
    errno = 0;
    struct cache *second = cache_create(&cc);
    CHECK(second == NULL);
    CHECK_EQ_INT(errno, EBUSY);
    cache_destroy(second);
    cache_destroy(c);
    c = cache_create(&cc);
    CHECK(c != NULL);
    cache_destroy(c);
    cc.ndirs = 2;
    c = cache_create(&cc);
    CHECK(c != NULL);
    cache_destroy(c);
}

/* A replaced object: the old version's name fails (If-Match) instead of mixing; the new name reads new bytes. */
static void test_versions(void)
{
    struct objstore *s = store_new(0, NULL);
    struct cache *c = cache_new(cdir, 16u << 20, false);
    put_raw("v/file", 4 * BS, 20);
    struct obj v1;
    obj_load(s, &v1, "v/file", 5000, 20);
    bool same = false;
    CHECK_EQ_INT(read_check(c, &v1, 0, BS, &same), 0); /* block 0 of v1 cached */
    CHECK(same);
    usleep(20000);
    put_raw("v/file", 4 * BS, 21); /* replaced in the bucket */
    /* A read spanning cached block 0 and uncached block 1 of "v1": never half and half. */
    unsigned char *buf = malloc(2 * BS);
    size_t got = 0;
    CHECK_EQ_INT(cache_read(c, &v1.o, BS / 2, BS, buf, &got), ESTALE);
    CHECK(stats(c).stale >= 1);
    struct obj v2;
    obj_load(s, &v2, "v/file", 5000, 21);
    CHECK(v2.o.version != v1.o.version);
    CHECK(read_all(c, &v2)); /* the new version, none of the old bytes */
    free(buf);
    cache_destroy(c);
    obj_destroy(s);
}

/* Sequential readers get read-ahead; random readers do not. */
static void test_readahead(void)
{
    struct objstore *s = store_new(0, NULL);
    struct cache *c = cache_new(cdir, 32u << 20, true);
    put_raw("ra/seq.log", 32 * BS, 30);
    put_raw("ra/rand.bin", 32 * BS, 31);
    struct obj q, r;
    obj_load(s, &q, "ra/seq.log", 6000, 30);
    obj_load(s, &r, "ra/rand.bin", 6001, 31);
    bool all = true, same;
    for (uint64_t off = 0; off < q.o.size; off += BS) {
        all = all && read_check(c, &q, off, BS, &same) == 0 && same;
        usleep(2000);
    }
    CHECK(all);
    struct cache_stats st = stats(c);
    printf("sequential 32 blocks: %llu read-ahead issued, %llu used, %llu demand misses, "
           "%llu store GETs\n",
           (unsigned long long)st.ra_issued, (unsigned long long)st.ra_used,
           (unsigned long long)st.misses, (unsigned long long)st.gets);
    CHECK(st.gets <= 16); /* consecutive read-ahead blocks share a GET */
    CHECK(st.ra_issued >= 16);
    CHECK(st.ra_used >= 16);
    CHECK(st.misses <= 16);
    uint64_t issued = st.ra_issued;
    CHECK_EQ_INT(st.ra_shrinks, 0);
    static const unsigned order[] = {17, 3, 29, 8, 22, 1, 14, 26, 5, 11};
    for (unsigned i = 0; i < 10; i++)
        all = all && read_check(c, &r, (uint64_t)order[i] * BS, 4096, &same) == 0 && same;
    CHECK(all);
    CHECK_EQ_INT(stats(c).ra_issued, issued); /* random access reads nothing ahead */

    /* Read-ahead evicted before its reader came: the window halves. */
    put_raw("ra/slow.log", 64 * BS, 32);
    struct obj w;
    obj_load(s, &w, "ra/slow.log", 6002, 32);
    for (uint64_t off = 0; off < 8 * BS; off += BS) {
        read_check(c, &w, off, BS, &same);
        usleep(2000);
    }
    usleep(100000); /* its read-ahead lands */
    put_raw("scan/flush.bin", 48u << 20, 33); /* then a scan larger than the cache */
    struct obj f;
    obj_load(s, &f, "scan/flush.bin", 6003, 33);
    read_all(c, &f);
    all = true;
    for (uint64_t off = 8 * BS; off < 16 * BS; off += BS)
        all = all && read_check(c, &w, off, BS, &same) == 0 && same;
    CHECK(all);
    printf("read-ahead evicted before use: %llu window(s) halved\n",
           (unsigned long long)stats(c).ra_shrinks);
    CHECK(stats(c).ra_shrinks >= 1);
    cache_destroy(c);
    obj_destroy(s);
}

/* Shuffle mode: once full, misses are served without replacing what is cached. */
static void test_shuffle_mode(void)
{
    struct objstore *s = store_new(0, NULL);
    char *dirs[1] = {cdir};
    struct cache_conf cc = {.dirs = dirs, .ndirs = 1, .size = 32u << 20, .block_size = BS,
                            .shards = 1, .fetch_max = 4};
    struct cache *c = cache_create(&cc);
    cache_wait_loaded(c);
    enum { N = 1024 }; /* 1024 x 64 KiB = 64 MiB: twice the cache */
    static struct obj f[N];
    char key[64];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "shuf/%03d", i);
        put_raw(key, BS, 300 + (unsigned)i);
        obj_load(s, &f[i], key, 7000 + (uint64_t)i, 300 + (unsigned)i);
        f[i].o.noevict_when_full = true;
    }
    unsigned perm[N];
    for (int i = 0; i < N; i++)
        perm[i] = (unsigned)i;
    srand(42);
    uint64_t hits[3];
    bool all = true;
    for (int epoch = 0; epoch < 3; epoch++) {
        for (int i = N - 1; i > 0; i--) {
            int j = rand() % (i + 1);
            unsigned t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        uint64_t h0 = stats(c).hits;
        for (int i = 0; i < N; i++)
            all = all && read_all(c, &f[perm[i]]);
        hits[epoch] = stats(c).hits - h0;
    }
    CHECK(all);
    struct cache_stats st = stats(c);
    printf("shuffle mode, dataset 2x the cache: epoch hits %llu %llu %llu of %d, evictions %llu\n",
           (unsigned long long)hits[0], (unsigned long long)hits[1],
           (unsigned long long)hits[2], N, (unsigned long long)st.evictions);
    CHECK_EQ_INT(st.evictions, 0);
    /* Every epoch after the first hits what the cache holds: (nearly) all of it. */
    CHECK(st.blocks >= N * 35 / 100); /* 64 KiB blocks: 6% header padding, 2 regions kept free */
    CHECK(hits[1] >= st.blocks * 9 / 10 && hits[2] >= st.blocks * 9 / 10);
    cache_destroy(c);
    obj_destroy(s);
}

struct async_res {
    pthread_mutex_t m;
    bool done;
    int err;
    size_t got;
};

static void on_done(void *arg, int err, size_t got)
{
    struct async_res *r = arg;
    pthread_mutex_lock(&r->m);
    r->done = true;
    r->err = err;
    r->got = got;
    pthread_mutex_unlock(&r->m);
}

/* A miss returns EINPROGRESS at once and completes later; a hit meanwhile is answered at once. */
static void test_async(void)
{
    struct objstore *s = store_new(1500, "slow/");
    put_raw("slow/x", BS, 40);
    put_raw("fast/y", BS, 41);
    struct obj x, y;
    obj_load(s, &x, "slow/x", 8000, 40);
    obj_load(s, &y, "fast/y", 8001, 41);
    struct cache *c = cache_new(cdir, 16u << 20, false);
    CHECK(read_all(c, &y)); /* y is cached */
    char *buf = malloc(BS), *buf2 = malloc(BS);
    struct async_res r = {.m = PTHREAD_MUTEX_INITIALIZER};
    size_t got = 0;
    CHECK_EQ_INT(cache_read_async(c, &x.o, 0, BS, buf, &got, on_done, &r), EINPROGRESS);
    /* The slow miss is in flight (1.5 s); the hit does not wait for it. */
    CHECK_EQ_INT(cache_read_async(c, &y.o, 0, BS, buf2, &got, on_done, NULL), 0);
    CHECK_EQ_INT(got, BS);
    pthread_mutex_lock(&r.m);
    bool early = r.done;
    pthread_mutex_unlock(&r.m);
    CHECK(!early);
    for (int i = 0; i < 500; i++) {
        pthread_mutex_lock(&r.m);
        bool d = r.done;
        pthread_mutex_unlock(&r.m);
        if (d)
            break;
        usleep(10000);
    }
    CHECK(r.done && r.err == 0 && r.got == BS);
    bool same = true;
    for (size_t i = 0; i < BS; i++)
        same = same && (unsigned char)buf[i] == byte_at(40, i);
    CHECK(same);
    free(buf);
    free(buf2);
    cache_destroy(c);
    obj_destroy(s);
}

/* Cached ranges handed out as file segments: right bytes, and held space is not reused. */
static void test_segments(void)
{
    struct objstore *s = store_new(0, NULL);
    put_raw("c/seg.bin", 3 * BS + 100, 60);
    struct obj b;
    obj_load(s, &b, "c/seg.bin", 4100, 60);
    struct cache *c = cache_new(cdir, 8u << 20, false);
    struct cache_seg segs[CACHE_SEGS_MAX];
    unsigned n = 0;
    size_t got = 0;
    CHECK_EQ_INT(cache_get_segs(c, &b.o, 10, 2 * BS, segs, CACHE_SEGS_MAX, &n, &got),
                 EWOULDBLOCK); /* not cached yet */
    CHECK(read_all(c, &b));
    CHECK_EQ_INT(cache_get_segs(c, &b.o, 10, 2 * BS, segs, CACHE_SEGS_MAX, &n, &got), 0);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(got, 2 * BS);
    /* Evict everything while the segments are held: 24 MiB through an 8 MiB cache. */
    char key[64];
    for (int i = 0; i < 12; i++) {
        snprintf(key, sizeof(key), "big/seg%02d", i);
        put_raw(key, 2u << 20, 600 + (unsigned)i);
        struct obj o;
        obj_load(s, &o, key, 4200 + (uint64_t)i, 600 + (unsigned)i);
        read_all(c, &o);
    }
    CHECK(stats(c).evictions > 0);
    bool same = true;
    uint64_t at = 10;
    for (unsigned i = 0; i < n; i++) {
        unsigned char *buf = malloc(segs[i].len);
        same = same && pread(segs[i].fd, buf, segs[i].len, (off_t)segs[i].off) == (ssize_t)segs[i].len;
        for (uint32_t k = 0; same && k < segs[i].len; k++)
            same = buf[k] == byte_at(60, at + k);
        at += segs[i].len;
        free(buf);
    }
    CHECK(same); /* held space was not reused */
    cache_put_segs(c, segs, n);
    cache_destroy(c);
    obj_destroy(s);
}

/*
 * As after a crash: wipe every region's summary header in the (only)
 * shard file, so that the next start scans record headers instead.
 */
static void forget_summaries(void)
{
    char path[PATH_MAX];
    shard_file(path);
    unsigned nregions = 0, rsize = 0;
    const char *name = strrchr(path, '/');
    if (sscanf(name, "/shard-00-%ux%u.dat", &nregions, &rsize) != 2 || rsize < 8192) {
        fprintf(stderr, "%s: unexpected name\n", path);
        exit(2);
    }
    int fd = open(path, O_RDWR);
    static const char zero[4096];
    for (unsigned i = 0; fd >= 0 && i < nregions; i++)
        if (pwrite(fd, zero, sizeof(zero), (off_t)i * rsize + rsize - sizeof(zero)) != sizeof(zero))
            exit(2);
    if (fd < 0)
        exit(2);
    close(fd);
}

/* Whether every block of b is cached and verified: a hits-only read of all of it succeeds. */
static bool all_cached(struct cache *c, struct obj *b)
{
    unsigned char *buf = malloc(b->o.size ? b->o.size : 1);
    size_t got = 0;
    int err = cache_read_async(c, &b->o, 0, b->o.size, buf, &got, NULL, NULL);
    free(buf);
    return err == 0;
}

/*
 * cache_evict drops every version of the named inodes and nothing else, a
 * restart does not bring them back (blocks in sealed and in open regions),
 * their disk space goes back, segments held for sendfile in the same region
 * keep their bytes, and the next read of an evicted file fetches again.
 */
static void test_evict(void)
{
    struct objstore *s = store_new(0, NULL);
    put_raw("ev/a.bin", 5 * BS + 100, 70);
    put_raw("ev/b.bin", 3 * BS, 71);
    put_raw("ev/c.txt", 1000, 72);
    put_raw("ev/big.bin", 40 * BS, 73); /* 1 MiB regions: fills and seals a few */
    struct obj a, b, t, big;
    obj_load(s, &a, "ev/a.bin", 7000, 70);
    obj_load(s, &b, "ev/b.bin", 7001, 71);
    obj_load(s, &t, "ev/c.txt", 7002, 72);
    obj_load(s, &big, "ev/big.bin", 7003, 73);
    struct cache *c = cache_new(cdir, 32u << 20, false);
    CHECK(read_all(c, &big) && read_all(c, &a) && read_all(c, &b) && read_all(c, &t));
    struct cache_stats st = stats(c);
    CHECK_EQ_INT(st.blocks, 40 + 6 + 3 + 1);
    uint64_t disk0 = st.disk_bytes;

    /* Another export's inode of the same number: nothing. */
    uint64_t blocks = 9, bytes = 9;
    uint64_t ino_b = 7001;
    CHECK_EQ_INT(cache_evict(c, 8, &ino_b, 1, &blocks, &bytes), 0);
    CHECK_EQ_INT(blocks, 0);
    CHECK_EQ_INT(bytes, 0);

    /* Segments of b held (a reply being sent) while a, in the same region, goes. */
    struct cache_seg segs[CACHE_SEGS_MAX];
    unsigned nsegs = 0;
    size_t got = 0;
    CHECK_EQ_INT(cache_get_segs(c, &b.o, 0, 2 * BS, segs, CACHE_SEGS_MAX, &nsegs, &got), 0);
    uint64_t two[2] = {7002, 7000};
    CHECK_EQ_INT(cache_evict(c, 7, two, 2, &blocks, &bytes), 0);
    CHECK_EQ_INT(blocks, 6 + 1);
    CHECK_EQ_INT(bytes, a.o.size + t.o.size);
    bool same = true;
    for (unsigned i = 0, at = 0; i < nsegs; at += segs[i].len, i++) {
        unsigned char *buf = malloc(segs[i].len);
        same = same && pread(segs[i].fd, buf, segs[i].len, (off_t)segs[i].off) == (ssize_t)segs[i].len;
        for (uint32_t k = 0; same && k < segs[i].len; k++)
            same = buf[k] == byte_at(71, at + k);
        free(buf);
    }
    CHECK(same);
    cache_put_segs(c, segs, nsegs);
    CHECK(!all_cached(c, &a) && !all_cached(c, &t));
    CHECK(all_cached(c, &b) && all_cached(c, &big));
    st = stats(c);
    CHECK_EQ_INT(st.blocks, 40 + 3);
    CHECK_EQ_INT(st.dropped, 7);

    /* big, with no reader: its pages go back to the disk at once. */
    uint64_t ino_big = 7003;
    CHECK_EQ_INT(cache_evict(c, 7, &ino_big, 1, &blocks, &bytes), 0);
    CHECK_EQ_INT(blocks, 40);
    st = stats(c);
    printf("evict: disk %llu -> %llu bytes after dropping %llu\n", (unsigned long long)disk0,
           (unsigned long long)st.disk_bytes, (unsigned long long)(big.o.size + a.o.size));
    CHECK(st.disk_bytes + big.o.size / 2 <= disk0);
    CHECK(!all_cached(c, &big));

    /* Read a again, then a new version of it: both versions go with one call. */
    CHECK(read_all(c, &a));
    usleep(20000);
    put_raw("ev/a.bin", 2 * BS, 74);
    struct obj a2;
    obj_load(s, &a2, "ev/a.bin", 7000, 74);
    CHECK(read_all(c, &a2));
    uint64_t ino_a = 7000;
    CHECK_EQ_INT(cache_evict(c, 7, &ino_a, 1, &blocks, &bytes), 0);
    CHECK_EQ_INT(blocks, 6 + 2);
    CHECK_EQ_INT(stats(c).blocks, 3);
    cache_destroy(c);

    /* After a restart: only b is cached; the others are fetched again. */
    c = cache_new(cdir, 32u << 20, false);
    CHECK_EQ_INT(stats(c).blocks, 3);
    uint64_t gets0 = stats(c).gets;
    CHECK(read_all(c, &b));
    CHECK_EQ_INT(stats(c).gets - gets0, 0);
    CHECK(read_all(c, &big) && read_all(c, &t) && read_all(c, &a2));
    CHECK_EQ_INT(stats(c).gets - gets0, 40 + 1 + 2);
    CHECK_EQ_INT(cache_evict(c, 7, NULL, 0, &blocks, &bytes), 0); /* nothing named */
    CHECK_EQ_INT(blocks, 0);

    /* The same after a crash (record headers scanned, no summaries): b stays, t goes. */
    uint64_t ino_t = 7002;
    CHECK_EQ_INT(cache_evict(c, 7, &ino_t, 1, &blocks, &bytes), 0);
    CHECK_EQ_INT(blocks, 1);
    cache_destroy(c);
    forget_summaries();
    c = cache_new(cdir, 32u << 20, false);
    CHECK_EQ_INT(stats(c).blocks, 3 + 40 + 2);
    gets0 = stats(c).gets;
    CHECK(read_all(c, &b) && read_all(c, &big) && read_all(c, &a2));
    CHECK_EQ_INT(stats(c).gets - gets0, 0);
    CHECK(read_all(c, &t));
    CHECK_EQ_INT(stats(c).gets - gets0, 1);
    cache_destroy(c);
    obj_destroy(s);
}

/* A cache directory on a 6 MiB tmpfs with a 32 MiB cache.size: every read is still right. */
static void test_full_disk(void)
{
    char small[PATH_MAX];
    snprintf(small, sizeof(small), "%s/small", root);
    mkdir(small, 0700);
    if (mount("bnfs-test", small, "tmpfs", 0, "size=6m") != 0) {
        perror("mount tmpfs (the full-disk test needs root)");
        CHECK(!"tmpfs mounted for the full-disk test");
        return;
    }
    struct objstore *s = store_new(0, NULL);
    struct cache *c = cache_new(small, 32u << 20, false);
    bool all = true;
    char key[64];
    for (int i = 0; i < 12; i++) { /* 24 MiB of reads onto 6 MiB of disk */
        snprintf(key, sizeof(key), "full/%02d", i);
        put_raw(key, 2u << 20, 500 + (unsigned)i);
        struct obj b;
        obj_load(s, &b, key, 9000 + (uint64_t)i, 500 + (unsigned)i);
        all = all && read_all(c, &b) && read_all(c, &b);
    }
    CHECK(all);
    struct cache_stats st = stats(c);
    printf("full disk: %llu block writes failed, every read right\n",
           (unsigned long long)st.write_errors);
    CHECK(st.write_errors > 0);
    cache_destroy(c);
    obj_destroy(s);
    umount2(small, MNT_DETACH);
}

int main(void)
{
    log_init("test_cache", 1, LOG_ERR);
    snprintf(root, sizeof(root), "/tmp/bnfs-cache-XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 2;
    }
    char b[PATH_MAX + 8];
    snprintf(b, sizeof(b), "%s/b", root);
    mkdir(b, 0755);
    const char *dirs[] = {"frames", "big", "hot", "scan", "c", "v", "ra", "shuf", "slow", "fast",
                          "cold", "full", "ev"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        char d[PATH_MAX * 2];
        snprintf(d, sizeof(d), "%s/b/%s", root, dirs[i]);
        mkdir(d, 0755);
    }
    int n = 0;
#define FRESH_CACHE() snprintf(cdir, sizeof(cdir), "%s/cache%d", root, n++)
    test_crc();
    FRESH_CACHE();
    test_basic_and_restart();
    FRESH_CACHE();
    test_single_flight();
    FRESH_CACHE();
    test_small_and_bound();
    FRESH_CACHE();
    test_scan_resistance();
    FRESH_CACHE();
    test_corruption();
    FRESH_CACHE();
    test_folder_lock();
    FRESH_CACHE();
    test_versions();
    FRESH_CACHE();
    test_readahead();
    FRESH_CACHE();
    test_shuffle_mode();
    FRESH_CACHE();
    test_async();
    FRESH_CACHE();
    test_segments();
    FRESH_CACHE();
    test_evict();
    test_full_disk();

    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", root);
    return TEST_DONE();
}
