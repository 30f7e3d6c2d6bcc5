/*
 * cache.h - the sharded SSD block cache between the inode table and the
 * object store.
 *
 * Objects are cached in fixed-size blocks (cache.block_size; the last block
 * of an object, and a whole small object, take their own size, not a
 * block's).  A block is named by the object's identity *and version*:
 * (export id, inode, generation, version, block number), where version is
 * cache_version() of the ETag and size the inode table holds.  A new version
 * of an object therefore never finds the old version's blocks, and a miss
 * is fetched with If-Match on that ETag, so a READ never returns bytes of
 * two versions: when the object changed underneath, the fetch fails with
 * ESTALE and the caller revalidates (HEAD) and asks again for the new
 * version.
 *
 * Blocks live on the cache directories (one per SSD) in one data file per
 * shard, written as a log of regions (see cache.c for the layout, the block
 * states and the eviction policy).  The cache survives restarts and
 * `kill -9`: every intact block is found again without a store request; a
 * torn or corrupt block fails its checksum and is fetched again, never
 * served.
 *
 * Contract, for every function returning int: 0 or a positive errno.
 *   ESTALE   the object is no longer the version `o` names (If-Match failed)
 *   ENOENT   the object is gone from the store
 *   EAGAIN   the store is unavailable for now (NFS3ERR_JUKEBOX)
 *   EACCES, EIO, ENOMEM   as the store or the system said
 * A full or failing cache disk is never an error of a read: the block is
 * served from memory and not kept (stats.write_errors counts it).
 *
 * Threads: every function is safe to call from many threads.  Completion
 * callbacks run on the cache's fetch threads, which exist to wait on the
 * store: a callback may make a short store request (a HEAD) but should not
 * do more.  Memory is bounded by configuration: at most fetch_max blocks are
 * being fetched at once, demand fetches first, and read-ahead and prefetch
 * together hold at most prefetch_budget bytes in memory.
 */
#ifndef BNFS_CACHE_H
#define BNFS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct objstore;

struct cache_conf {
    char **dirs;             /* cache directories (created if missing); shards spread over them */
    size_t ndirs;
    uint64_t size;           /* hard bound on bytes on disk, index included */
    uint32_t block_size;     /* power of two, 4 KiB .. 64 MiB */
    uint64_t readahead_max;  /* largest read-ahead window of one stream, bytes */
    uint64_t prefetch_budget;/* read-ahead + prefetch bytes in flight at most (0: default) */
    unsigned fetch_max;      /* concurrent store requests, demand and prefetch together (0: 64) */
    unsigned shards;         /* 0: chosen from size (at most 16) */
};

/* One version of one object: what is read, and where to fetch it from. */
struct cache_obj {
    uint32_t export_id;
    uint32_t gen;
    uint64_t ino;
    uint64_t version;       /* cache_version(etag, size) */
    uint64_t size;          /* the object's size in this version */
    struct objstore *store; /* where misses come from */
    const char *bucket;
    const char *key;        /* full object key */
    const char *etag;       /* If-Match for every fetch; "" = unconditional */
    bool noevict_when_full; /* the export reads shuffled epochs: keep what is cached (see cache.c) */
};

struct cache;

/*
 * Open (creating as needed) the cache.  NULL + errno; logs why.  The index
 * of what is on disk loads in the background (summaries only: well under a
 * second per TiB, see BENCHMARKS.md): until a shard is loaded its reads are
 * misses served from the store and not kept.
 */
struct cache *cache_create(const struct cache_conf *c);

/* Wait until the index has loaded (tests, tools). */
void cache_wait_loaded(struct cache *c);

/* Stop the fetch threads (fetches in flight complete) and close the files.  NULL is fine. */
void cache_destroy(struct cache *c);

/* The version number of an object's ETag and size (never 0). */
uint64_t cache_version(const char *etag, uint64_t size);

/*
 * Completion of cache_read_async: err as in the contract above, got the
 * number of bytes placed in the caller's buffer (short only at the end of
 * the object).
 */
typedef void (*cache_done_fn)(void *arg, int err, size_t got);

/*
 * Read len bytes at off of object o into buf.  Returns 0 when every block
 * was cached and the bytes are in buf (*got set, done not called), or
 * EINPROGRESS when a block has to be fetched: then done(arg, err, got) is
 * called exactly once, later, from a fetch thread, and buf, o's strings and
 * arg must stay valid until it is.  Any other value is an error (done not
 * called).  A miss never delays the hit of another caller.  The read also
 * feeds the read-ahead of its stream (sequential readers of a file get the
 * following blocks fetched ahead of them).
 * With done NULL it serves hits only: EWOULDBLOCK as soon as a block is not
 * cached, having registered nothing (for callers that must never wait,
 * like the RPC event loop; the caller then asks again with a done).
 */
int cache_read_async(struct cache *c, const struct cache_obj *o, uint64_t off, size_t len,
                     void *buf, size_t *got, cache_done_fn done, void *arg);

/*
 * A cached range as pieces of the cache's files, for sending with
 * sendfile(2) instead of copying: fd, offset and length of each piece.
 * shard and region are the cache's own (for cache_put_segs).
 */
struct cache_seg {
    int fd;
    uint64_t off;
    uint32_t len;
    uint32_t shard, region;
};

#define CACHE_SEGS_MAX 4 /* a READ of up to 1 MiB over blocks of 512 KiB or more */

/*
 * Hits only, without copying: when every block of [off, off+len) of o is
 * cached and was verified since the start, fill segs (at most max) and
 * return 0 with *nsegs and *got set; the blocks' space is held (not
 * reused) until cache_put_segs.  Otherwise EWOULDBLOCK, holding nothing
 * (read it with cache_read_async).  Feeds read-ahead like a read.
 */
int cache_get_segs(struct cache *c, const struct cache_obj *o, uint64_t off, size_t len,
                   struct cache_seg *segs, unsigned max, unsigned *nsegs, size_t *got);

/* Release what cache_get_segs held. */
void cache_put_segs(struct cache *c, const struct cache_seg *segs, unsigned n);

/* The same, waiting for the fetches: 0 and *got, or an error. */
int cache_read(struct cache *c, const struct cache_obj *o, uint64_t off, size_t len, void *buf,
               size_t *got);

/*
 * Fetch [off, off+len) of o ahead of its readers, under the prefetch budget
 * (skipped, not queued, when the budget is spent).  o's strings are copied.
 */
void cache_prefetch(struct cache *c, const struct cache_obj *o, uint64_t off, uint64_t len);

/*
 * Keep len bytes at off of object version o, which the caller has and knows
 * to be exactly that version's bytes (a file just uploaded from the stage:
 * its next read is a hit, not a download).  off is a multiple of the block
 * size; only whole blocks are kept (the object's last block may be short).
 * Best effort: 0 when every block was kept, else ENOSPC, EIO or EAGAIN (a
 * full disk, a write error, the index still loading) and the rest is left
 * out, which only costs a fetch later.  Blocks enter like fetched ones (the
 * small queue: evicted first unless read again).  stats.inserted counts them.
 */
int cache_insert(struct cache *c, const struct cache_obj *o, uint64_t off, const void *data,
                 size_t len);

/* The block size (cache_insert's unit). */
uint32_t cache_block_size(const struct cache *c);

/*
 * Pinned objects are never evicted (every version of ino).  Pins are kept in
 * the index and survive restarts.
 */
int cache_pin(struct cache *c, uint32_t export_id, uint64_t ino, bool pinned);

/* Whether (export_id, ino) is pinned. */
bool cache_pinned(struct cache *c, uint32_t export_id, uint64_t ino);

/*
 * Drop the cached blocks of the inodes inos[0..n) of export export_id:
 * every generation and version of them, pinned or not (a pin stays: what
 * is read next is kept again; whether pinned files are to be dropped is the
 * caller's decision, see cache_pinned).  The drop outlasts a restart (the
 * records are marked dropped on disk).  Blocks being fetched during the
 * call are kept when they arrive: a reader asked for them.  Written data
 * is not in the cache (cache/stage.h) and is never touched.  The cost is
 * one pass over the index whatever n is (n inodes are looked up in a
 * sorted copy): callers should batch.  *blocks, *bytes (may be NULL): what
 * was dropped.  Waits for the index to load.  0 or ENOMEM.
 */
int cache_evict(struct cache *c, uint32_t export_id, const uint64_t *inos, size_t n,
                uint64_t *blocks, uint64_t *bytes);

struct cache_stats {
    uint64_t hits, misses;           /* block lookups of reads */
    uint64_t bytes_hit, bytes_miss;  /* bytes served from the cache / fetched for readers */
    uint64_t gets, get_bytes;        /* store GETs and their bytes (demand + prefetch) */
    uint64_t waits;                  /* reads that joined a fetch already in flight */
    uint64_t ra_issued, ra_used;     /* read-ahead blocks fetched / later read */
    uint64_t pf_issued, pf_used;     /* prefetch (cross-file) blocks fetched / later read */
    uint64_t pf_skipped;             /* read-ahead or prefetch not issued: budget spent */
    uint64_t ra_shrinks;             /* read-ahead windows halved: blocks evicted before use */
    uint64_t evictions, reinserted;  /* blocks dropped / copied forward by eviction */
    uint64_t not_admitted;           /* blocks served but not kept (shuffle mode, full disk) */
    uint64_t corrupt;                /* blocks that failed their checksum (dropped, refetched) */
    uint64_t write_errors;           /* cache disk writes that failed (ENOSPC, EIO) */
    uint64_t stale;                  /* fetches refused by If-Match (object changed) */
    uint64_t dropped;                /* blocks dropped by cache_evict */
    uint64_t inserted;               /* blocks kept by cache_insert (uploaded files) */
    uint64_t blocks, bytes;          /* blocks indexed and their bytes */
    uint64_t disk_bytes;             /* bytes the cache files hold on disk (<= size) */
    uint64_t capacity;               /* cache.size */
    uint64_t fetching, prefetch_bytes_inflight;
    uint64_t load_usec;              /* time the index took to load at start */
    uint64_t loading;                /* 1 while the index is still loading */
};

/* Totals (export_id = UINT32_MAX) or one export's counters (index fields are totals only). */
void cache_get_stats(struct cache *c, uint32_t export_id, struct cache_stats *out);

#endif
