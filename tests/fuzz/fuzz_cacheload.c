/*
 * fuzz_cacheload.c - libFuzzer over the block cache's index loader: a shard
 * file whose first region holds the fuzzer's bytes (records at its start, a
 * summary at its end), loaded by cache_create.  A torn or corrupt cache
 * must load as "those blocks are not cached", never crash or hang.
 *
 * Input: byte 0 = flags (bit 0: fix the CRC of every record header found
 * walking from offset 0; bit 1: fix the summary header's and entries' CRCs,
 * so that the fuzzer gets past the checksums to the checks behind them),
 * byte 1 = how many of the remaining bytes go to the region's start; of the
 * rest, the last 32 bytes are the summary header and the others the first
 * page of summary entries before it.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/cache_fmt.h"
#include "common/crc32c.h"
#include "common/log.h"

#define SIZE (8u << 20)
#define BS (64u * 1024u)

static char dir[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        log_init("fuzz_cacheload", 0, LOG_EMERG);
        snprintf(dir, sizeof(dir), "/tmp/bnfs-fuzz-cache-XXXXXX");
        if (!mkdtemp(dir))
            abort();
    }
    if (size < 2)
        return 0;
    uint32_t rs, per;
    unsigned ns;
    if (cache_geometry(SIZE, BS, 1, &rs, &ns, &per))
        abort();
    uint8_t flags = data[0];
    size_t head = data[1] * (size - 2) / 255;
    const uint8_t *h = data + 2, *t = data + 2 + head;
    size_t tlen = size - 2 - head;

    uint8_t *region = calloc(1, rs);
    if (!region)
        return 0;
    memcpy(region, h, head);
    /* The tail's last bytes are the summary header; the rest its first page of entries. */
    size_t hl = tlen < sizeof(struct cache_sum_hdr) ? tlen : sizeof(struct cache_sum_hdr);
    memcpy(region + rs - CACHE_SUM_HDR, t + tlen - hl, hl);
    memcpy(region + rs - CACHE_SUM_HDR - CACHE_ALIGN, t, tlen - hl);
    if (flags & 1) {
        for (size_t off = 0; off + CACHE_REC_HDR <= rs - CACHE_SUM_HDR;) {
            struct cache_rec_hdr r;
            memcpy(&r, region + off, sizeof(r));
            if (r.magic != CACHE_REC_MAGIC || r.len == 0 || r.len > BS)
                break;
            r.hdr_crc = 0;
            r.hdr_crc = crc32c(&r, sizeof(r));
            memcpy(region + off, &r, sizeof(r));
            off += (CACHE_REC_HDR + r.len + CACHE_ALIGN - 1) & ~(size_t)(CACHE_ALIGN - 1);
        }
    }
    if (flags & 2) {
        struct cache_sum_hdr sh;
        memcpy(&sh, region + rs - CACHE_SUM_HDR, sizeof(sh));
        size_t elen = (size_t)sh.count * CACHE_SUM_ENT;
        size_t ealigned = (elen + CACHE_ALIGN - 1) & ~(size_t)(CACHE_ALIGN - 1);
        if (sh.count < rs / CACHE_ALIGN && ealigned + CACHE_SUM_HDR <= rs)
            sh.ents_crc = crc32c(region + rs - CACHE_SUM_HDR - ealigned, elen);
        sh.hdr_crc = 0;
        sh.hdr_crc = crc32c(&sh, sizeof(sh));
        memcpy(region + rs - CACHE_SUM_HDR, &sh, sizeof(sh));
    }

    char path[256];
    snprintf(path, sizeof(path), "%s/shard-00-%ux%u.dat", dir, per, rs);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)per * rs) != 0 || pwrite(fd, region, rs, 0) != (ssize_t)rs)
        abort();
    close(fd);
    free(region);

    char *dirs[1] = {dir};
    struct cache_conf cc = {.dirs = dirs, .ndirs = 1, .size = SIZE, .block_size = BS,
                            .fetch_max = 1, .shards = 1};
    struct cache *c = cache_create(&cc);
    if (c) {
        cache_wait_loaded(c);
        struct cache_stats st;
        cache_get_stats(c, UINT32_MAX, &st);
        if (st.disk_bytes > SIZE)
            abort();
        cache_destroy(c);
    }
    return 0;
}
