/*
 * cache_fmt.h - the on-disk format of the block cache (see cache.c).
 *
 * Shared by cache.c, the index-load benchmark (bench/cacheload.c) and the
 * fuzz target of the loader: nothing else should write these files.
 *
 *   DIR/shard-NN-RxS.dat   shard NN of R regions of S bytes (sparse)
 *   region:  record record ... [free] [summary entries][summary header]
 *   record:  struct cache_rec_hdr (64 bytes) + data, padded to CACHE_ALIGN;
 *            a record dropped by cache_evict keeps its header with
 *            CACHE_REC_DROPPED set (the scan of an open region steps over
 *            it without indexing it) and may have its data punched out
 *   summary: count x struct cache_sum_ent, padded to CACHE_ALIGN, ending
 *            right before the last CACHE_SUM_HDR bytes of the region, which
 *            start with struct cache_sum_hdr
 *
 * Integers are in the machine's byte order (a cache does not move between
 * machines).  Every header carries a CRC-32C of itself with its crc field
 * zero; a record's data and a summary's entries have their own CRC-32C.
 */
#ifndef BNFS_CACHE_FMT_H
#define BNFS_CACHE_FMT_H

#include <stdint.h>

#define CACHE_ALIGN 4096u
#define CACHE_REC_HDR 64u
#define CACHE_SUM_HDR 4096u
#define CACHE_SUM_ENT 48u
#define CACHE_REC_MAGIC 0x424e4652u /* "BNFR" */
#define CACHE_SUM_MAGIC 0x424e4653u /* "BNFS" */

/* A block's name: one version of one object, one block of it. */
struct cache_key {
    uint32_t export_id, gen;
    uint64_t ino, version, blkno;
};

struct cache_rec_hdr { /* CACHE_REC_HDR bytes */
    uint32_t magic, hdr_crc;
    struct cache_key key;
    uint32_t len, data_crc;
    uint64_t seq;          /* the region's sequence number when it was written */
    uint32_t queue;        /* 0: S, 1: M */
    uint32_t flags;        /* CACHE_REC_DROPPED; 0 when written */
};

#define CACHE_REC_DROPPED 0x1u /* evicted on request: not a block any more */

struct cache_sum_ent { /* CACHE_SUM_ENT bytes */
    struct cache_key key;
    uint32_t off, len, data_crc, pad; /* off: of the record, within the region */
};

struct cache_sum_hdr {
    uint32_t magic, hdr_crc;
    uint64_t seq;
    uint32_t count, queue, ents_crc, pad;
};

_Static_assert(sizeof(struct cache_rec_hdr) == CACHE_REC_HDR, "record header size");
_Static_assert(sizeof(struct cache_sum_ent) == CACHE_SUM_ENT, "summary entry size");

/*
 * How a cache of `size` bytes with `block_size` blocks is laid out:
 * region size, shards (0: chosen) and regions per shard.  Returns 0, or
 * EINVAL when the size cannot hold 4 regions.
 */
int cache_geometry(uint64_t size, uint32_t block_size, unsigned shards_wanted,
                   uint32_t *region_size, unsigned *shards, uint32_t *regions_per_shard);

#endif
