/*
 * shufflebench.c - the block cache under shuffled training epochs, and a
 * data loader's name-order reads with and without cross-file prefetch.
 *
 *   shufflebench DIR [FRAMES [FRAME_KB [LATENCY_MS]]]
 *
 * 1. Epochs: FRAMES frames (default 2048 of 200 KB) in a dir store, read
 *    in a new random order each of 3 epochs through a cache of half the
 *    dataset's size; the hit ratio of epochs 2 and 3 with the export's
 *    shuffle mode on and off (S3-FIFO alone), next to plain LRU simulated
 *    on the same trace with the same capacity in frames.
 * 2. Loader: 500 frames read cold one after another in name order, each
 *    whole, through the inode table and meta_read, with the store delaying
 *    every request by LATENCY_MS (default 20, an S3 first byte); files/s
 *    with cross-file prefetch on and off.
 * Prints one line per figure; BENCHMARKS.md records a run.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void put_file(const char *path, size_t size, unsigned seed)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(2);
    }
    for (size_t i = 0; i < size; i++)
        fputc((int)((i * 131 + seed * 7) & 0xff), f);
    fclose(f);
}

static struct cache *cache_at(const char *dir, uint64_t size)
{
    char *dirs[1] = {(char *)dir};
    struct cache_conf cc = {.dirs = dirs, .ndirs = 1, .size = size, .block_size = 1u << 20,
                            .readahead_max = 16u << 20, .fetch_max = 16, .shards = 1};
    struct cache *c = cache_create(&cc);
    if (!c) {
        perror("cache_create");
        exit(2);
    }
    cache_wait_loaded(c);
    return c;
}

static void shuffle(unsigned *v, unsigned n, unsigned *seed)
{
    for (unsigned i = n - 1; i > 0; i--) {
        unsigned j = (unsigned)rand_r(seed) % (i + 1);
        unsigned t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

/* Plain LRU over the trace with room for cap frames: hits of epochs 2 and 3. */
static unsigned lru_hits(const unsigned *trace, unsigned len, unsigned n, unsigned cap,
                         unsigned from)
{
    uint64_t *last = calloc(n, sizeof(*last)); /* time of last use, 0 = not cached */
    unsigned cached = 0, hits = 0;
    for (unsigned t = 0; t < len; t++) {
        unsigned f = trace[t];
        if (last[f]) {
            hits += t >= from;
        } else if (cached == cap) {
            unsigned victim = 0;
            uint64_t oldest = UINT64_MAX;
            for (unsigned i = 0; i < n; i++)
                if (last[i] && last[i] < oldest) {
                    oldest = last[i];
                    victim = i;
                }
            last[victim] = 0;
        } else {
            cached++;
        }
        last[f] = t + 1;
    }
    free(last);
    return hits;
}

static void epochs(const char *root, struct objstore *s, unsigned n, size_t frame)
{
    unsigned *trace = malloc(3u * n * sizeof(*trace)), seed = 42;
    for (unsigned e = 0; e < 3; e++) {
        for (unsigned i = 0; i < n; i++)
            trace[e * n + i] = i;
        shuffle(trace + e * n, n, &seed);
    }
    uint64_t dataset = (uint64_t)n * frame;
    char *buf = malloc(frame);
    for (int mode = 0; mode < 2; mode++) {
        char cdir[4096], key[64];
        snprintf(cdir, sizeof(cdir), "%s/cache-epochs-%d", root, mode);
        struct cache *c = cache_at(cdir, dataset / 2);
        struct cache_stats st;
        uint64_t h0 = 0;
        for (unsigned t = 0; t < 3 * n; t++) {
            unsigned f = trace[t];
            snprintf(key, sizeof(key), "frames/f%06u.jpg", f);
            struct obj_meta m;
            if (obj_head(s, "bench", key, &m)) {
                fprintf(stderr, "head %s failed\n", key);
                exit(2);
            }
            struct cache_obj o = {.export_id = 1, .gen = 1, .ino = 1000 + f,
                                  .version = cache_version(m.etag, m.size), .size = m.size,
                                  .store = s, .bucket = "bench", .key = key, .etag = m.etag,
                                  .noevict_when_full = mode == 1};
            size_t got;
            if (cache_read(c, &o, 0, frame, buf, &got) || got != frame) {
                fprintf(stderr, "read %s failed\n", key);
                exit(2);
            }
            if (t + 1 == n) {
                cache_get_stats(c, UINT32_MAX, &st);
                h0 = st.hits;
            }
        }
        cache_get_stats(c, UINT32_MAX, &st);
        double ratio = (double)(st.hits - h0) / (2.0 * n);
        unsigned cap_frames = (unsigned)(st.blocks ? st.blocks : 1);
        printf("epochs 2-3 hit ratio, %s: %.3f (cache holds %" PRIu64 " of %u frames: %.3f of "
               "the dataset)\n",
               mode ? "shuffle mode" : "S3-FIFO alone", ratio, st.blocks, n,
               (double)st.blocks / n);
        if (mode == 1) {
            unsigned lh = lru_hits(trace, 3 * n, n, cap_frames, n);
            printf("epochs 2-3 hit ratio, plain LRU with room for the same %u frames: %.3f\n",
                   cap_frames, (double)lh / (2.0 * n));
        }
        cache_destroy(c);
    }
    free(buf);
    free(trace);
}

static double loader(const char *root, struct objstore *s, unsigned n, size_t frame, bool pf,
                     uint64_t *misses)
{
    char state[4096], cdir[4096];
    snprintf(state, sizeof(state), "%s/state-%d", root, pf);
    snprintf(cdir, sizeof(cdir), "%s/cache-loader-%d", root, pf);
    mkdir(state, 0700);
    struct inode_table *t = inode_open(state, 0);
    struct cache *c = cache_at(cdir, 2048ull << 20);
    struct xfile *xf = pf ? xfile_create(t, c, 64u << 20) : NULL;
    struct meta_export e = {.store = s, .bucket = "bench", .prefix = "", .metadata_ttl = 3600,
                            .file_mode = 0644, .dir_mode = 0755};
    struct inode_attr root_attr, dir, a;
    if (!t || inode_export_id(t, "/bench", &e.id) || inode_root(t, &e, &root_attr) ||
        inode_lookup(t, &e, root_attr.ino, "loader", &dir, NULL)) {
        fprintf(stderr, "inode table setup failed\n");
        exit(2);
    }
    char *buf = malloc(frame);
    char name[64];
    /* Listing and attributes first, as a loader's file list does: only the reads are timed. */
    for (unsigned i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "f%06u.jpg", i);
        inode_lookup(t, &e, dir.ino, name, &a, NULL);
    }
    double t0 = now();
    for (unsigned i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "f%06u.jpg", i);
        if (inode_lookup(t, &e, dir.ino, name, &a, NULL)) {
            fprintf(stderr, "lookup %s failed\n", name);
            exit(2);
        }
        struct meta_read r = {.t = t, .cache = c, .xf = xf, .e = &e, .attr = a, .off = 0,
                              .len = frame, .buf = buf};
        if (meta_read(&r) || r.got != frame) {
            fprintf(stderr, "read %s failed\n", name);
            exit(2);
        }
    }
    double secs = now() - t0;
    struct cache_stats st;
    cache_get_stats(c, UINT32_MAX, &st);
    *misses = st.misses;
    free(buf);
    xfile_destroy(xf);
    cache_destroy(c);
    inode_quiesce(t);
    inode_close(t);
    return n / secs;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: shufflebench DIR [FRAMES [FRAME_KB [LATENCY_MS]]]\n");
        return 2;
    }
    const char *root = argv[1];
    unsigned n = argc > 2 ? (unsigned)atoi(argv[2]) : 2048;
    size_t frame = (argc > 3 ? (size_t)atoi(argv[3]) : 200) * 1000;
    unsigned lat = argc > 4 ? (unsigned)atoi(argv[4]) : 20;
    log_init("shufflebench", 1, LOG_WARNING);
    char p[4096];
    snprintf(p, sizeof(p), "mkdir -p %s/store/bench/frames %s/store/bench/loader", root, root);
    if (system(p) != 0)
        return 2;
    unsigned loader_n = 500;
    for (unsigned i = 0; i < n || i < loader_n; i++) {
        if (i < n) {
            snprintf(p, sizeof(p), "%s/store/bench/frames/f%06u.jpg", root, i);
            if (access(p, F_OK) != 0)
                put_file(p, frame, i);
        }
        if (i < loader_n) {
            snprintf(p, sizeof(p), "%s/store/bench/loader/f%06u.jpg", root, i);
            if (access(p, F_OK) != 0)
                put_file(p, frame, i);
        }
    }
    snprintf(p, sizeof(p), "%s/store", root);
    struct conf_store cs = {.name = "b", .type = CONF_STORE_DIR, .root = p};
    struct objstore *s = obj_create(&cs);
    epochs(root, s, n, frame);
    obj_destroy(s);

    cs.latency_ms = lat;
    cs.latency_match = "loader/";
    s = obj_create(&cs);
    uint64_t m_on = 0, m_off = 0;
    double off = loader(root, s, loader_n, frame, false, &m_off);
    double on = loader(root, s, loader_n, frame, true, &m_on);
    printf("loader, %u frames of %zu KB in name order, %u ms per store request: prefetch off "
           "%.1f files/s (%" PRIu64 " misses), on %.1f files/s (%" PRIu64 " misses): %.1fx\n",
           loader_n, frame / 1000, lat, off, m_off, on, m_on, on / off);
    obj_destroy(s);
    return 0;
}
