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
 *
 * The scratch folder ($TMPDIR/bnfs-fuzz-cache-*) and the shard file are
 * made once and removed at exit.  Each input writes zeros over the file's
 * data extents (SEEK_DATA: what earlier inputs and the cache wrote), then
 * the bytes of the region that are not zero (its start and its last two
 * pages): the file cache_create opens holds the same bytes as the whole
 * region written into a new file.  Not a new file per input: that wrote
 * 1 MiB, and freeing the blocks of the one before (O_TRUNC) cost a
 * write-back on close (ext4's auto_da_alloc) and, on a filesystem mounted
 * with discard, a discard.
 */
#include <dirent.h>
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
static char path[256];
static int fd = -1;
static uint8_t *region;
static uint32_t rs, per;

/* atexit: the shard file and what the cache made beside it (lock, pins). */
static void cleanup(void)
{
    if (fd >= 0)
        close(fd);
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            char f[512];
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            snprintf(f, sizeof(f), "%s/%s", dir, de->d_name);
            unlink(f);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* Write zeros over every data extent of fd below end (holes stay holes). */
static void zero_data(int fd, off_t end)
{
    static const uint8_t zero[64 * 1024];
    off_t off = lseek(fd, 0, SEEK_DATA);
    while (off >= 0 && off < end) {
        off_t hole = lseek(fd, off, SEEK_HOLE);
        if (hole < 0 || hole > end)
            hole = end;
        while (off < hole) {
            size_t n = hole - off < (off_t)sizeof(zero) ? (size_t)(hole - off) : sizeof(zero);
            if (pwrite(fd, zero, n, off) != (ssize_t)n)
                abort();
            off += (off_t)n;
        }
        off = lseek(fd, hole, SEEK_DATA);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        unsigned ns;
        log_init("fuzz_cacheload", 0, LOG_EMERG);
        if (cache_geometry(SIZE, BS, 1, &rs, &ns, &per))
            abort();
        snprintf(dir, sizeof(dir), "%s/bnfs-fuzz-cache-XXXXXX",
                 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(dir))
            abort();
        atexit(cleanup);
        snprintf(path, sizeof(path), "%s/shard-00-%ux%u.dat", dir, per, rs);
        fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        region = calloc(1, rs);
        if (fd < 0 || !region)
            abort();
    }
    if (size < 2)
        return 0;
    uint8_t flags = data[0];
    size_t head = data[1] * (size - 2) / 255;
    const uint8_t *h = data + 2, *t = data + 2 + head;
    size_t tlen = size - 2 - head;

    memcpy(region, h, head);
    /* The tail's last bytes are the summary header; the rest its first page of entries. */
    size_t hl = tlen < sizeof(struct cache_sum_hdr) ? tlen : sizeof(struct cache_sum_hdr);
    memcpy(region + rs - CACHE_SUM_HDR, t + tlen - hl, hl);
    memcpy(region + rs - CACHE_SUM_HDR - CACHE_ALIGN, t, tlen - hl);
    size_t hi = head; /* region[hi..] is zero up to the tail's pages */
    if (flags & 1) {
        for (size_t off = 0; off + CACHE_REC_HDR <= rs - CACHE_SUM_HDR;) {
            struct cache_rec_hdr r;
            memcpy(&r, region + off, sizeof(r));
            if (r.magic != CACHE_REC_MAGIC || r.len == 0 || r.len > BS)
                break;
            r.hdr_crc = 0;
            r.hdr_crc = crc32c(&r, sizeof(r));
            memcpy(region + off, &r, sizeof(r));
            if (off + sizeof(r) > hi)
                hi = off + sizeof(r);
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

    /* The file as a new one holding the region: zeros but for the two extents. */
    size_t tail_off = rs - CACHE_SUM_HDR - CACHE_ALIGN;
    zero_data(fd, (off_t)per * rs);
    if (ftruncate(fd, (off_t)per * rs) != 0 || (hi && pwrite(fd, region, hi, 0) != (ssize_t)hi) ||
        pwrite(fd, region + tail_off, rs - tail_off, (off_t)tail_off) != (ssize_t)(rs - tail_off))
        abort();
    memset(region, 0, hi);
    memset(region + tail_off, 0, rs - tail_off);

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
