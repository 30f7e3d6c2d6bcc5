/*
 * cacheload.c - how long the block cache takes to load its index at start,
 * for a cache of any size, without writing its data.
 *
 *   cacheload DIR SIZE BLOCK_SIZE OBJECT_SIZE [--cold]
 *
 * Lays out DIR as cache_create would for SIZE bytes of BLOCK_SIZE blocks
 * (sparse shard files: only the region summaries are written, as a full
 * cache of OBJECT_SIZE objects would have them), then times cache_create
 * loading it.  With --cold the page cache is dropped first (root), so the
 * summaries come from the disk.  Prints the blocks indexed, the time, and
 * the time per TiB of cache.
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
#include "cache/cache_fmt.h"
#include "common/crc32c.h"
#include "common/conf.h"
#include "common/log.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint32_t up(uint64_t n)
{
    return (uint32_t)((n + CACHE_ALIGN - 1) & ~(uint64_t)(CACHE_ALIGN - 1));
}

int main(int argc, char **argv)
{
    uint64_t size, bs, osize;
    if (argc < 5 || conf_parse_size(argv[2], &size) || conf_parse_size(argv[3], &bs) ||
        conf_parse_size(argv[4], &osize) || osize == 0 || osize > bs) {
        fprintf(stderr, "usage: cacheload DIR SIZE BLOCK_SIZE OBJECT_SIZE(<= BLOCK_SIZE) [--cold]\n");
        return 2;
    }
    bool cold = argc > 5 && strcmp(argv[5], "--cold") == 0;
    log_init("cacheload", 1, LOG_WARNING);
    const char *dir = argv[1];
    mkdir(dir, 0700);
    uint32_t rs, per;
    unsigned ns;
    if (cache_geometry(size, (uint32_t)bs, 0, &rs, &ns, &per)) {
        fprintf(stderr, "size too small\n");
        return 2;
    }
    uint32_t rec = up(CACHE_REC_HDR + osize);
    uint32_t n = 0;
    while ((uint64_t)(n + 1) * rec + CACHE_SUM_HDR + up((uint64_t)(n + 1) * CACHE_SUM_ENT) <= rs)
        n++;
    size_t elen = up((uint64_t)n * CACHE_SUM_ENT);
    struct cache_sum_ent *ents = calloc(1, elen);
    char *hbuf = calloc(1, CACHE_SUM_HDR);
    if (!ents || !hbuf)
        return 2;

    double t0 = now();
    uint64_t blocks = 0, ino = 1000;
    for (unsigned s = 0; s < ns; s++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/shard-%02u-%ux%u.dat", dir, s, per, rs);
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
        if (fd < 0 || ftruncate(fd, (off_t)per * rs) != 0) {
            perror(path);
            return 2;
        }
        for (uint32_t r = 0; r < per; r++) {
            for (uint32_t i = 0; i < n; i++) {
                ents[i] = (struct cache_sum_ent){
                    .key = {.export_id = 1, .gen = 1, .ino = ino++, .version = 7, .blkno = 0},
                    .off = i * rec, .len = (uint32_t)osize, .data_crc = 0};
            }
            struct cache_sum_hdr *h = (struct cache_sum_hdr *)hbuf;
            memset(hbuf, 0, CACHE_SUM_HDR);
            h->magic = CACHE_SUM_MAGIC;
            h->seq = r + 1;
            h->count = n;
            h->queue = 1;
            h->ents_crc = crc32c(ents, (size_t)n * CACHE_SUM_ENT);
            h->hdr_crc = crc32c(h, sizeof(*h));
            uint64_t end = (uint64_t)(r + 1) * rs;
            if (pwrite(fd, ents, elen, (off_t)(end - CACHE_SUM_HDR - elen)) != (ssize_t)elen ||
                pwrite(fd, hbuf, CACHE_SUM_HDR, (off_t)(end - CACHE_SUM_HDR)) != CACHE_SUM_HDR) {
                perror("pwrite");
                return 2;
            }
            blocks += n;
        }
        close(fd);
    }
    printf("laid out %u shards x %u regions of %u MiB, %" PRIu64 " blocks of %" PRIu64
           " bytes, in %.1f s\n",
           ns, per, rs >> 20, blocks, osize, now() - t0);
    if (cold) {
        sync();
        int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
        if (fd < 0 || write(fd, "3", 1) != 1) {
            perror("drop_caches (--cold needs root)");
            return 2;
        }
        close(fd);
    }

    char *dirs[1] = {(char *)dir};
    struct cache_conf cc = {.dirs = dirs, .ndirs = 1, .size = size, .block_size = (uint32_t)bs,
                            .readahead_max = bs, .fetch_max = 1};
    double t1 = now();
    struct cache *c = cache_create(&cc);
    if (!c) {
        perror("cache_create");
        return 1;
    }
    double serving = now() - t1;
    cache_wait_loaded(c);
    double dt = now() - t1;
    struct cache_stats st;
    cache_get_stats(c, UINT32_MAX, &st);
    double tib = (double)size / (double)(1ull << 40);
    printf("serving after %.3f s; loaded %" PRIu64 " blocks (%.1f TiB of cache) in %.3f s (%s): "
           "%.3f s per TiB, %.0f ns per block\n",
           serving, st.blocks, tib, dt,
           cold ? "summaries from disk" : "summaries in the page cache", dt / tib,
           dt * 1e9 / (double)(st.blocks ? st.blocks : 1));
    cache_destroy(c);
    /* The cleaner may already have freed a few regions to keep some ready. */
    return st.blocks >= blocks - blocks / 50 ? 0 : 1;
}
