/*
 * cache.c - the sharded SSD block cache (see cache.h for the contract).
 *
 * Layout on disk
 *   Each shard owns one data file, dirs[shard % ndirs]/shard-NN.dat, of
 *   nregions regions of region_size bytes (a sparse file: its length never
 *   exceeds the shard's share of cache.size, so neither can its blocks).
 *   A region is a log: records are appended from its start, each a 64-byte
 *   header (magic, key, length, CRC-32C of the data, the region's sequence
 *   number, header CRC) followed by the data, padded to 4 KiB.  So a 200 KB
 *   frame takes 200 KB + 64 bytes rounded to 4 KiB, not a block.  When a
 *   region is full it is sealed: a summary of its records (48 bytes each,
 *   with their checksums) and a summary header are written at its end.
 *   Loading the index reads one summary per sealed region (a few KiB per
 *   64 MiB) and scans record headers only in regions that were open at a
 *   crash; it never reads data.  A block loaded from disk is verified
 *   against its checksum the first time it is read; one that fails is
 *   dropped and fetched again.
 *
 * Block states (one key = export, inode, generation, version, block no.)
 *
 *   state      where                        readable  evictable  leaves by
 *   ---------  ---------------------------  --------  ---------  -------------------------
 *   absent     nowhere                      -         -          a read (demand fetch) or
 *                                                                read-ahead/prefetch
 *   fetching   shard->fetches (single-      waiters   -          fetch done: clean (kept)
 *              flight: one GET per block)   join it              or absent (not admitted,
 *                                                                error)
 *   clean      index + a record in an open  yes       yes        eviction of its region
 *              or sealed region                                  (dropped, or copied forward
 *                                                                when it was read again), or
 *                                                                cache_evict of its inode
 *   pinned     clean, inode in the pin set  yes       never      unpin (cache_evict drops
 *                                                                it too: the caller decides)
 *
 *   The write path (issue 8) is to add `dirty` and `uploading` here: WRITE
 *   data appended to this same log, which then is the write-back journal (a
 *   record is durable once its shard file is fdatasync'ed), and copied
 *   forward by the cleaner like a pinned block until it is uploaded.
 *
 * Region states: free -> open (appended to) -> sealed (in the S or M queue)
 * -> evicting (the cleaner copies what stays, then drops the rest) -> free
 * (hole punched), at once or, while readers hold it (a reply being sent
 * from it with sendfile, cache_get_segs), when the last one lets go.
 * Invariants (checked under the shard lock in debug builds, cache_check):
 *   - every indexed block is in exactly one region that is open, sealed or
 *     evicting, and that region's list holds it;
 *   - a region's records and summary fit in it: used + summary <= size;
 *   - a free region has no blocks; readers of a region hold it (readers > 0)
 *     and it is not made free while they do.
 *
 * Eviction: S3-FIFO (Yang et al., SOSP 2023) on regions.  New blocks go to
 * the small queue S (10% of the regions); a block read again while cached
 * gets a frequency bit (0..3).  When a region of S is evicted, its blocks
 * that were read again move to the main queue M and the others are dropped
 * (their keys go to a ghost table; a ghost hit inserts straight into M).
 * When a region of M is evicted, blocks read again are copied forward with
 * their frequency decreased, at most half a region per eviction.  One pass
 * over a replay log larger than the cache thus only ever churns S: the hot
 * set read twice sits in M.  S3-FIFO was chosen over LRU/2Q/ARC because
 * it is FIFO (regions are written once and freed whole, as flash wants),
 * needs one bit-sized counter per block and no list move on a hit, and its
 * paper shows it at or above ARC and TinyLFU miss ratios on 6,594 traces.
 * Read-ahead and prefetched blocks that were never read are dropped first
 * (they carry no frequency and do not enter the ghost table).  Pinned
 * inodes' blocks are always copied forward.
 *
 * Eviction on request (cache_evict, `bucketnfs evict`): the inodes' blocks
 * leave the index region by region; each record is marked dropped on disk
 * (CACHE_REC_DROPPED in its header) and a sealed region's summary is
 * written again without them, so a restart does not bring them back; the
 * data pages are punched out unless the region has readers.  The region's
 * space is reused when the cleaner gets to it, as for every other block.
 *
 * Shuffled epochs (CoorDL, VLDB 2021): an export that says its dataset is
 * read in random order every epoch (obj.noevict_when_full) has its misses
 * admitted only while free regions remain; once the cache is full its
 * cached blocks stay and the rest is served from the store, so each epoch
 * hits the cached fraction instead of what a recency policy leaves.
 *
 * Fetching: a pool of fetch_max threads takes fetches from two queues,
 * demand first; read-ahead and prefetch use at most 3/4 of the threads and
 * prefetch_budget bytes (their buffers) at once.  A read that misses
 * registers a waiter on the block's fetch and returns EINPROGRESS at once;
 * the fetch thread copies the block into every waiter's buffer and calls
 * their completions.  Hits are served by pread from the data file, or
 * handed out as file segments for sendfile (cache_get_segs), never queued
 * behind a miss.
 *
 * Read-ahead: a table of streams (export, inode, version, position).  A
 * read near a stream's position (within its window: clients send several
 * READs at once, out of order) advances it; after two such reads the
 * stream gets a window of one block, doubled with each further read of
 * the stream, up to readahead_max, and topped up ahead of the reader each
 * time less than half of it is left (so that read-ahead leaves in runs of
 * consecutive blocks, one ranged GET per run of up to 8 MiB); halved when
 * its blocks were evicted before the reader got to them.  A
 * read far from every stream starts a new one (the least recently used is
 * replaced): random access never reads ahead.
 *
 * Threads and locks
 *   fetchers (fetch_max), one cleaner (frees regions ahead of need),
 *   callers (RPC workers / event loop: hits, registering misses).
 *   Lock order: shard->lock, then c->qlock.  c->ralock, c->pinlock and
 *   c->cleanlock are taken with no other lock held, except pinlock, which
 *   the cleaner takes under a shard lock.  No lock is held across store
 *   requests; shard locks are held across a summary write or a hole punch
 *   only (and cache_evict's rewrite of a dropped record's header).  cache_put_segs may be called under the RPC layer's send lock
 *   (it takes shard locks only).
 */
#include "cache/cache.h"
#include "cache/cache_fmt.h"
#include "common/clock.h"
#include "common/crc32c.h"

#include "common/fsutil.h"
#include "common/log.h"
#include "objstore/objstore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define FREE_LOW 3            /* free regions per shard the cleaner keeps ready */
#define FREE_RESERVE 1        /* of which the last is the cleaner's own, for copying forward */
#define FREQ_MAX 3
#define GHOST_PER_REGION 64   /* ghost slots per region of the shard */
#define STREAMS 256           /* read-ahead streams tracked at once */
#define EXP_SLOTS 64          /* exports with counters of their own */
#define DEFAULT_FETCH_MAX 64
#define DEFAULT_BUDGET (256ull << 20)
#define PINS_MAX 65536
#define LOAD_THREADS 8        /* shards loaded at once at start */
#define RA_RUN_MAX 8          /* read-ahead blocks fetched by one GET, at most ... */
#define RA_RUN_BYTES (8u << 20) /* ... and bytes (S3 bills and delays per request) */

enum { Q_S = 0, Q_M = 1 };
enum { R_FREE, R_OPEN, R_SEALED, R_EVICTING };
/* entry flags */
#define E_VERIFIED 0x01u /* checksum checked (or written) since this process started */
#define E_RA 0x02u       /* fetched by read-ahead, not read yet */
#define E_PF 0x04u       /* fetched by cross-file prefetch, not read yet */
enum fetch_kind { F_DEMAND, F_RA, F_PF };
enum { FQ_NONE, FQ_DEMAND, FQ_PREFETCH };


struct entry {
    struct entry *hnext;
    struct entry *rprev, *rnext;
    struct cache_key key;
    uint32_t region, off, len, crc;
    uint8_t freq, flags;
};

#define ENT_CHUNK 4096 /* entries allocated at once: one malloc per 4096 blocks */
struct ent_chunk {
    struct ent_chunk *next;
    struct entry v[ENT_CHUNK];
};

struct region {
    uint32_t idx;
    uint8_t state, queue;
    bool full;          /* no more appends; sealed when pending reaches 0 */
    uint64_t seq;
    uint32_t used;      /* bytes of records appended (reserved) */
    uint32_t count;     /* indexed blocks in it */
    uint32_t pending;   /* appends reserved but not yet indexed */
    uint32_t readers;   /* preads in progress */
    struct entry *ents; /* its blocks */
    struct region *qnext;
};

struct waiter {
    struct waiter *next;
    struct rd *rd;
    uint32_t from, len; /* within the block */
    size_t dst;         /* within rd->buf */
};

struct fetch {
    struct fetch *next;  /* shard's in-flight list */
    struct fetch *qnext; /* queue */
    struct shard *sh;
    struct cache_key key;
    enum fetch_kind kind; /* why it was issued (stats, flags of the block) */
    bool budgeted;        /* counted in c->pf_bytes */
    uint8_t queued;       /* Q_NONE, in the demand queue, or in the prefetch queue */
    bool noevict;
    uint32_t len;
    uint64_t off;
    struct objstore *store;
    char *bucket, *okey, *etag; /* one allocation: bucket */
    struct waiter *waiters;
    /*
     * Read-ahead of consecutive blocks is fetched with one ranged GET: the
     * first block's fetch (the leader) is queued and carries the others
     * (riders, registered for single-flight but never queued themselves).
     */
    struct fetch *leader;          /* a rider's leader (NULL: not a rider) */
    struct fetch *riders[RA_RUN_MAX - 1];
    unsigned nriders;
};

/* One read waiting for fetches. */
struct rd {
    atomic_uint pending;
    atomic_int err;
    char *buf;
    size_t got;
    cache_done_fn done;
    void *arg;
};

struct shard {
    pthread_mutex_t lock;
    unsigned no;
    int fd;
    uint32_t nregions;
    struct region *regions;
    struct region *open[2];
    struct region *qhead[2], *qtail[2];
    uint32_t qlen[2];
    struct region *free;
    uint32_t nfree;
    struct entry **htab;
    size_t hmask, hcount;
    struct entry *efree;      /* entries to reuse */
    struct ent_chunk *chunks; /* where entries come from */
    uint64_t bytes; /* data bytes of the indexed blocks */
    uint64_t *ghost;
    size_t nghost;
    struct fetch *fetches;
    uint64_t seq;
    bool loaded; /* the index is built: before, reads miss and nothing is admitted */
};

struct counters {
    _Atomic uint64_t hits, misses, bytes_hit, bytes_miss, gets, get_bytes, waits, ra_issued,
        ra_used, pf_issued, pf_used, pf_skipped, evictions, reinserted, not_admitted, corrupt,
        write_errors, stale, dropped, inserted;
};

struct exp_slot {
    _Atomic uint32_t id; /* UINT32_MAX: unused */
    struct counters n;
};

struct stream {
    uint32_t export_id;
    uint64_t ino, version;
    uint64_t pos;    /* end of the furthest read */
    uint64_t ra_end; /* read-ahead issued up to here */
    uint64_t window; /* bytes; 0: not sequential (yet) */
    unsigned seq;    /* sequential reads seen */
    uint64_t used;   /* last use (clock) */
};

struct cache {
    struct cache_conf conf;
    uint32_t bs;
    uint32_t region_size;
    unsigned nshards;
    struct shard *shards;

    pthread_mutex_t qlock;
    pthread_cond_t work; /* a fetch was queued, or stop */
    struct fetch *dq_head, *dq_tail, *pq_head, *pq_tail;
    unsigned pf_running, pf_max;
    bool stop;
    pthread_t *fetchers;
    unsigned nfetchers;
    _Atomic uint64_t pf_bytes; /* read-ahead/prefetch bytes queued or in flight */
    _Atomic uint64_t fetching;

    pthread_mutex_t cleanlock;      /* also guards `loading` */
    pthread_cond_t clean_needed;
    pthread_cond_t loaded_cv;       /* the index finished loading */
    bool loading;
    pthread_t loaders[LOAD_THREADS];
    unsigned nloaders;
    atomic_uint load_next, load_done;
    uint64_t load_start;
    bool clean_stop, clean_wanted;
    pthread_t cleaner;
    bool cleaner_started;

    pthread_mutex_t ralock;
    struct stream streams[STREAMS];
    uint64_t ra_clock;
    uint64_t ra_shrinks; /* windows halved: read-ahead evicted before use (ralock) */

    pthread_mutex_t pinlock;
    uint64_t *pins; /* (export_id << 48) ^ ino hashes, 0 = empty; open addressing */
    size_t npins;
    char *pins_path;

    struct counters total;
    struct exp_slot exps[EXP_SLOTS];
    uint64_t load_usec;

    int *lock_fds; /* one per cache dir (-1: none), flock'ed for the cache's life */
};

/* ---- small helpers ----------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static uint64_t key_hash(const struct cache_key *k)
{
    uint64_t h = mix64(k->ino ^ ((uint64_t)k->export_id << 40) ^ ((uint64_t)k->gen << 20));
    h = mix64(h ^ k->version);
    return mix64(h ^ k->blkno);
}

static bool key_eq(const struct cache_key *a, const struct cache_key *b)
{
    return a->ino == b->ino && a->blkno == b->blkno && a->version == b->version &&
           a->export_id == b->export_id && a->gen == b->gen;
}

static uint32_t align_up(uint64_t n)
{
    return (uint32_t)((n + CACHE_ALIGN - 1) & ~(uint64_t)(CACHE_ALIGN - 1));
}

static uint32_t sum_space(uint32_t count)
{
    return CACHE_SUM_HDR + align_up((uint64_t)count * CACHE_SUM_ENT);
}

static uint64_t now_usec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static struct shard *shard_of(struct cache *c, const struct cache_key *k)
{
    return &c->shards[key_hash(k) % c->nshards];
}

static uint64_t region_base(const struct cache *c, const struct region *r)
{
    return (uint64_t)r->idx * c->region_size;
}

static struct counters *exp_counters(struct cache *c, uint32_t id)
{
    for (unsigned i = 0; i < EXP_SLOTS; i++) {
        struct exp_slot *s = &c->exps[(id + i) % EXP_SLOTS];
        uint32_t cur = atomic_load_explicit(&s->id, memory_order_acquire);
        if (cur == id)
            return &s->n;
        if (cur == UINT32_MAX) {
            uint32_t expect = UINT32_MAX;
            if (atomic_compare_exchange_strong(&s->id, &expect, id) || expect == id)
                return &s->n;
        }
    }
    return NULL; /* more exports than slots: totals only */
}

#define COUNT(c, id, field, v)                                                      \
    do {                                                                            \
        atomic_fetch_add_explicit(&(c)->total.field, (v), memory_order_relaxed);    \
        struct counters *n_ = exp_counters((c), (id));                              \
        if (n_)                                                                     \
            atomic_fetch_add_explicit(&n_->field, (v), memory_order_relaxed);       \
    } while (0)

/* ---- index ------------------------------------------------------------- */

/* An entry from the shard's pool (shard lock held, or the shard not yet shared).  NULL: ENOMEM. */
static struct entry *ent_alloc(struct shard *sh)
{
    if (!sh->efree) {
        struct ent_chunk *ch = malloc(sizeof(*ch));
        if (!ch)
            return NULL;
        ch->next = sh->chunks;
        sh->chunks = ch;
        for (size_t i = ENT_CHUNK; i-- > 0;) {
            ch->v[i].hnext = sh->efree;
            sh->efree = &ch->v[i];
        }
    }
    struct entry *e = sh->efree;
    sh->efree = e->hnext;
    return e;
}

static void ent_free(struct shard *sh, struct entry *e)
{
    e->hnext = sh->efree;
    sh->efree = e;
}

static struct entry *idx_find(struct shard *sh, const struct cache_key *k)
{
    for (struct entry *e = sh->htab[key_hash(k) & sh->hmask]; e; e = e->hnext)
        if (key_eq(&e->key, k))
            return e;
    return NULL;
}

static void idx_grow(struct shard *sh)
{
    size_t n = (sh->hmask + 1) * 2;
    struct entry **t = calloc(n, sizeof(*t));
    if (!t)
        return; /* longer chains, still correct */
    for (size_t i = 0; i <= sh->hmask; i++) {
        struct entry *e = sh->htab[i];
        while (e) {
            struct entry *next = e->hnext;
            size_t b = key_hash(&e->key) & (n - 1);
            e->hnext = t[b];
            t[b] = e;
            e = next;
        }
    }
    free(sh->htab);
    sh->htab = t;
    sh->hmask = n - 1;
}

static void idx_insert(struct shard *sh, struct entry *e)
{
    if (sh->hcount >= sh->hmask + 1)
        idx_grow(sh);
    size_t b = key_hash(&e->key) & sh->hmask;
    e->hnext = sh->htab[b];
    sh->htab[b] = e;
    sh->hcount++;
    sh->bytes += e->len;
    struct region *r = &sh->regions[e->region];
    e->rprev = NULL;
    e->rnext = r->ents;
    if (r->ents)
        r->ents->rprev = e;
    r->ents = e;
    r->count++;
}

/* Unlink e from the hash and its region, and free it. */
static void idx_remove(struct shard *sh, struct entry *e)
{
    struct entry **pp = &sh->htab[key_hash(&e->key) & sh->hmask];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    sh->hcount--;
    sh->bytes -= e->len;
    struct region *r = &sh->regions[e->region];
    if (e->rprev)
        e->rprev->rnext = e->rnext;
    else
        r->ents = e->rnext;
    if (e->rnext)
        e->rnext->rprev = e->rprev;
    r->count--;
    ent_free(sh, e);
}

static void ghost_add(struct shard *sh, const struct cache_key *k)
{
    uint64_t h = key_hash(k) | 1;
    sh->ghost[h % sh->nghost] = h;
}

static bool ghost_hit(struct shard *sh, const struct cache_key *k)
{
    uint64_t h = key_hash(k) | 1;
    return sh->ghost[h % sh->nghost] == h;
}

#ifdef BNFS_DEBUG
/* The invariants of the table at the top of the file.  Shard lock held. */
static void cache_check(const struct cache *c, struct shard *sh)
{
    size_t total = 0;
    for (uint32_t i = 0; i < sh->nregions; i++) {
        struct region *r = &sh->regions[i];
        uint32_t n = 0;
        for (struct entry *e = r->ents; e; e = e->rnext) {
            if (e->region != i || r->state == R_FREE)
                abort();
            n++;
        }
        if (n != r->count || (r->state == R_FREE && (r->count || r->readers)))
            abort();
        if ((uint64_t)r->used + sum_space(r->count + r->pending) > c->region_size &&
            r->state != R_FREE)
            abort();
        total += n;
    }
    if (total != sh->hcount)
        abort();
}
#define CHECK_SHARD(c, sh) cache_check((c), (sh))
#else
#define CHECK_SHARD(c, sh) ((void)0)
#endif

/* ---- regions ----------------------------------------------------------- */

static void queue_push(struct shard *sh, struct region *r)
{
    r->qnext = NULL;
    if (sh->qtail[r->queue])
        sh->qtail[r->queue]->qnext = r;
    else
        sh->qhead[r->queue] = r;
    sh->qtail[r->queue] = r;
    sh->qlen[r->queue]++;
}

static struct region *queue_pop(struct shard *sh, int q)
{
    struct region *r = sh->qhead[q];
    if (!r)
        return NULL;
    sh->qhead[q] = r->qnext;
    if (!sh->qhead[q])
        sh->qtail[q] = NULL;
    sh->qlen[q]--;
    r->qnext = NULL;
    return r;
}

/*
 * Write r's summary at its end.  Shard lock held; no appends to r are
 * pending.  A failed write only costs a header scan of the region at the
 * next start.
 */
static void summary_write(struct cache *c, struct shard *sh, struct region *r)
{
    uint32_t n = r->count;
    size_t elen = (size_t)align_up((uint64_t)n * CACHE_SUM_ENT);
    struct cache_sum_ent *ents = elen ? calloc(1, elen) : NULL;
    if (elen && !ents) {
        COUNT(c, UINT32_MAX, write_errors, 1);
        return;
    }
    uint32_t i = 0;
    for (struct entry *e = r->ents; e && i < n; e = e->rnext, i++)
        ents[i] = (struct cache_sum_ent){.key = e->key, .off = e->off, .len = e->len, .data_crc = e->crc};
    char hbuf[CACHE_SUM_HDR] = {0};
    struct cache_sum_hdr *h = (struct cache_sum_hdr *)hbuf;
    h->magic = CACHE_SUM_MAGIC;
    h->seq = r->seq;
    h->count = n;
    h->queue = r->queue;
    h->ents_crc = crc32c(ents ? (const void *)ents : "", (size_t)n * CACHE_SUM_ENT);
    h->hdr_crc = crc32c(h, sizeof(*h));
    uint64_t end = region_base(c, r) + c->region_size;
    if ((elen && pwrite(sh->fd, ents, elen, (off_t)(end - CACHE_SUM_HDR - elen)) != (ssize_t)elen) ||
        pwrite(sh->fd, hbuf, CACHE_SUM_HDR, (off_t)(end - CACHE_SUM_HDR)) != CACHE_SUM_HDR)
        COUNT(c, UINT32_MAX, write_errors, 1);
    free(ents);
}

/* A full region with no appends pending: summary, then the tail of its queue.  Shard lock held. */
static void region_seal(struct cache *c, struct shard *sh, struct region *r)
{
    summary_write(c, sh, r);
    r->state = R_SEALED;
    r->full = false;
    queue_push(sh, r);
}

static void wake_cleaner(struct cache *c)
{
    pthread_mutex_lock(&c->cleanlock);
    c->clean_wanted = true;
    pthread_cond_signal(&c->clean_needed);
    pthread_mutex_unlock(&c->cleanlock);
}

/* Append modes. */
enum { AP_NORMAL, AP_NOEVICT, AP_REINSERT };

/*
 * Append a record of key k to the open region of queue q and index it.
 * AP_NOEVICT takes a new region only while more than FREE_LOW are free
 * (shuffle mode: never causes eviction); AP_REINSERT (the cleaner) moves
 * the block only if it is still indexed in region `from`.  Returns 0, or
 * ENOSPC / EIO when the block is not kept (the caller serves it anyway).
 * Takes and drops the shard lock.
 */
static int append(struct cache *c, struct shard *sh, const struct cache_key *k, const void *data,
                  uint32_t len, uint32_t crc, int q, uint8_t freq, uint8_t flags, int mode,
                  uint32_t from)
{
    uint32_t rec = align_up((uint64_t)CACHE_REC_HDR + len);
    bool wake = false;

    pthread_mutex_lock(&sh->lock);
    if (!sh->loaded) {
        pthread_mutex_unlock(&sh->lock);
        return EAGAIN; /* its index is still loading: served, not kept */
    }
    if (mode == AP_REINSERT) {
        struct entry *e = idx_find(sh, k);
        if (!e || e->region != from) {
            pthread_mutex_unlock(&sh->lock);
            return 0;
        }
    } else if (mode == AP_NORMAL && ghost_hit(sh, k)) {
        q = Q_M; /* S3-FIFO: seen recently and evicted from S: straight to M */
    }
    struct region *r = sh->open[q];
    if (!r || (uint64_t)r->used + rec + sum_space(r->count + r->pending + 1) > c->region_size) {
        if (r) {
            r->full = true;
            sh->open[q] = NULL;
            if (r->pending == 0)
                region_seal(c, sh, r);
        }
        /*
         * The last free region is the cleaner's: copying a victim's blocks
         * forward must never find no room, or evicting would lose them.
         */
        uint32_t floor = mode == AP_REINSERT ? 0 : mode == AP_NOEVICT ? FREE_LOW : FREE_RESERVE;
        if (sh->nfree <= floor) {
            pthread_mutex_unlock(&sh->lock);
            if (mode == AP_NORMAL)
                wake_cleaner(c);
            return ENOSPC;
        }
        r = sh->free;
        sh->free = r->qnext;
        sh->nfree--;
        r->qnext = NULL;
        r->state = R_OPEN;
        r->queue = (uint8_t)q;
        r->seq = ++sh->seq;
        r->used = 0;
        sh->open[q] = r;
        wake = sh->nfree < FREE_LOW && mode != AP_NOEVICT;
    }
    uint32_t off = r->used;
    r->used += rec;
    r->pending++;
    uint64_t seq = r->seq;
    pthread_mutex_unlock(&sh->lock);
    if (wake)
        wake_cleaner(c);

    struct cache_rec_hdr h = {.magic = CACHE_REC_MAGIC, .key = *k, .len = len, .data_crc = crc, .seq = seq,
                        .queue = (uint32_t)q};
    h.hdr_crc = crc32c(&h, sizeof(h));
    struct iovec iov[2] = {{&h, sizeof(h)}, {(void *)data, len}};
    ssize_t n = pwritev(sh->fd, iov, 2, (off_t)(region_base(c, r) + off));
    int err = n == (ssize_t)(sizeof(h) + len) ? 0 : (n < 0 ? errno : EIO);

    pthread_mutex_lock(&sh->lock);
    r->pending--;
    if (!err) {
        struct entry *old = idx_find(sh, k);
        uint8_t keep = 0;
        if (old) {
            keep = old->flags & (uint8_t)~E_VERIFIED;
            idx_remove(sh, old);
        }
        struct entry *e = ent_alloc(sh);
        if (e) {
            *e = (struct entry){.key = *k, .region = r->idx, .off = off, .len = len, .crc = crc,
                                .freq = freq, .flags = (uint8_t)(flags | keep | E_VERIFIED)};
            idx_insert(sh, e);
        } else {
            err = ENOMEM;
        }
    }
    if (r->full && r->pending == 0)
        region_seal(c, sh, r);
    CHECK_SHARD(c, sh);
    pthread_mutex_unlock(&sh->lock);
    if (err && err != ENOMEM) {
        COUNT(c, k->export_id, write_errors, 1);
        LOG_AT(err == ENOSPC ? LOG_NOTICE : LOG_WARNING,
               "cache: shard %u: writing a block failed: %s; served uncached", sh->no,
               strerror(err));
        if (err == ENOSPC)
            wake_cleaner(c); /* a full disk: free regions give space back */
    }
    return err;
}

/*
 * An evicting region with no blocks and no readers becomes free: its space
 * goes back to the disk (hole punched) and no summary of its old life
 * survives.  Shard lock held.
 */
static void region_free(struct cache *c, struct shard *sh, struct region *v)
{
    uint64_t base = region_base(c, v);
    if (fallocate(sh->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)base,
                  (off_t)c->region_size) != 0) {
        static const char zero[CACHE_SUM_HDR];
        if (pwrite(sh->fd, zero, CACHE_SUM_HDR, (off_t)(base + c->region_size - CACHE_SUM_HDR)) < 0 ||
            pwrite(sh->fd, zero, CACHE_REC_HDR, (off_t)base) < 0)
            COUNT(c, UINT32_MAX, write_errors, 1);
    }
    v->state = R_FREE;
    v->used = 0;
    v->qnext = sh->free;
    sh->free = v;
    sh->nfree++;
}

/* A reader of r is done (shard lock held): the last reader of an evicted region frees it. */
static void reader_put(struct cache *c, struct shard *sh, struct region *r)
{
    if (--r->readers == 0 && r->state == R_EVICTING && !r->ents)
        region_free(c, sh, r);
}

static bool pinned(struct cache *c, uint32_t export_id, uint64_t ino);

/* Candidate for being copied forward by the cleaner. */
struct keep {
    struct cache_key key;
    uint32_t off, len, crc;
    uint8_t freq, flags;
};

/*
 * Free one region of sh: the oldest of S while S holds more than its 10%
 * share, else the oldest of M.  Returns false when there was nothing to
 * evict.  Called by the cleaner with no lock held.
 */
static bool region_evict(struct cache *c, struct shard *sh)
{
    pthread_mutex_lock(&sh->lock);
    /* S's size counts its open region too: the share is of all the space S holds. */
    uint32_t s_target = sh->nregions / 10 ? sh->nregions / 10 : 1;
    uint32_t s_size = sh->qlen[Q_S] + (sh->open[Q_S] != NULL);
    int q = (s_size > s_target || !sh->qhead[Q_M]) ? Q_S : Q_M;
    struct region *v = queue_pop(sh, q);
    if (!v) {
        pthread_mutex_unlock(&sh->lock);
        return false;
    }
    v->state = R_EVICTING;
    size_t nkeep = 0, cap = v->count;
    struct keep *keep = cap ? malloc(cap * sizeof(*keep)) : NULL;
    uint64_t keep_bytes = 0;
    struct entry *e = v->ents;
    while (e) {
        struct entry *next = e->rnext;
        bool pin = pinned(c, e->key.export_id, e->key.ino);
        /* S -> M promotes every block read again; M copies forward at most half a region. */
        bool hot = e->freq > 0 && (q == Q_S || keep_bytes + e->len <= c->region_size / 2);
        if (keep && (pin || hot)) {
            keep[nkeep++] = (struct keep){.key = e->key, .off = e->off, .len = e->len,
                                          .crc = e->crc, .freq = e->freq, .flags = e->flags};
            keep_bytes += e->len;
        } else {
            if (q == Q_S && !(e->flags & (E_RA | E_PF)))
                ghost_add(sh, &e->key);
            COUNT(c, e->key.export_id, evictions, 1);
            idx_remove(sh, e);
        }
        e = next;
    }
    pthread_mutex_unlock(&sh->lock);

    /* Copy forward what stays (read outside the lock: the region is evicting, nobody writes it). */
    char *buf = nkeep ? malloc(c->bs) : NULL;
    for (size_t i = 0; i < nkeep; i++) {
        struct keep *k = &keep[i];
        bool moved = false;
        if (buf && pread(sh->fd, buf, k->len,
                         (off_t)(region_base(c, v) + k->off + CACHE_REC_HDR)) == (ssize_t)k->len &&
            crc32c(buf, k->len) == k->crc) {
            /* S -> M keeps no frequency (S3-FIFO); M -> M decrements it. */
            uint8_t f = q == Q_S ? 0 : (uint8_t)(k->freq - (k->freq > 0));
            moved = append(c, sh, &k->key, buf, k->len, k->crc, Q_M, f, k->flags & ~E_VERIFIED,
                           AP_REINSERT, v->idx) == 0;
        }
        if (moved)
            COUNT(c, k->key.export_id, reinserted, 1);
    }
    free(buf);
    free(keep);

    pthread_mutex_lock(&sh->lock);
    while (v->ents) {
        COUNT(c, v->ents->key.export_id, evictions, 1);
        idx_remove(sh, v->ents);
    }
    /* Readers still in it (a reply being sent from it): the last one frees it. */
    if (v->readers == 0)
        region_free(c, sh, v);
    CHECK_SHARD(c, sh);
    pthread_mutex_unlock(&sh->lock);
    return true;
}

static void *cleaner_main(void *arg)
{
    struct cache *c = arg;
    pthread_mutex_lock(&c->cleanlock);
    while (!c->clean_stop) {
        if (!c->clean_wanted) {
            struct timespec ts = clock_deadline(1000000000LL);
            pthread_cond_timedwait(&c->clean_needed, &c->cleanlock, &ts);
        }
        c->clean_wanted = false;
        pthread_mutex_unlock(&c->cleanlock);
        for (unsigned i = 0; i < c->nshards; i++) {
            struct shard *sh = &c->shards[i];
            for (;;) {
                pthread_mutex_lock(&sh->lock);
                bool need = sh->loaded && sh->nfree < FREE_LOW;
                pthread_mutex_unlock(&sh->lock);
                if (!need || !region_evict(c, sh))
                    break;
            }
        }
        pthread_mutex_lock(&c->cleanlock);
    }
    pthread_mutex_unlock(&c->cleanlock);
    return NULL;
}

/* ---- pins -------------------------------------------------------------- */

static uint64_t pin_hash(uint32_t export_id, uint64_t ino)
{
    return mix64(((uint64_t)export_id << 48) ^ ino ^ 0x9e3779b97f4a7c15ull) | 1;
}

/* pinlock held. */
static size_t pin_slot(struct cache *c, uint64_t h)
{
    size_t i = h % PINS_MAX;
    while (c->pins[i] && c->pins[i] != h)
        i = (i + 1) % PINS_MAX;
    return i;
}

static bool pinned(struct cache *c, uint32_t export_id, uint64_t ino)
{
    uint64_t h = pin_hash(export_id, ino);
    pthread_mutex_lock(&c->pinlock);
    bool yes = c->npins && c->pins[pin_slot(c, h)] == h;
    pthread_mutex_unlock(&c->pinlock);
    return yes;
}

/* Write the pin set to pins_path (temp + fsync + rename).  pinlock held. */
static int pins_save(struct cache *c)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", c->pins_path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno;
    int err = 0;
    for (size_t i = 0; i < PINS_MAX && !err; i++)
        if (c->pins[i] && write(fd, &c->pins[i], 8) != 8)
            err = errno ? errno : EIO;
    if (!err && fsync(fd) != 0)
        err = errno;
    close(fd);
    if (!err && rename(tmp, c->pins_path) != 0)
        err = errno;
    if (err)
        unlink(tmp);
    return err;
}

int cache_pin(struct cache *c, uint32_t export_id, uint64_t ino, bool pin)
{
    uint64_t h = pin_hash(export_id, ino);
    pthread_mutex_lock(&c->pinlock);
    size_t i = pin_slot(c, h);
    int err = 0;
    if (pin && !c->pins[i]) {
        if (c->npins >= PINS_MAX / 2) {
            err = ENOSPC;
        } else {
            c->pins[i] = h;
            c->npins++;
            err = pins_save(c);
        }
    } else if (!pin && c->pins[i]) {
        /* Remove with backward-shift so later probes still find their slots. */
        c->pins[i] = 0;
        c->npins--;
        for (size_t j = (i + 1) % PINS_MAX; c->pins[j]; j = (j + 1) % PINS_MAX) {
            uint64_t v = c->pins[j];
            c->pins[j] = 0;
            c->pins[pin_slot(c, v)] = v;
        }
        err = pins_save(c);
    }
    pthread_mutex_unlock(&c->pinlock);
    return err;
}

static void pins_load(struct cache *c)
{
    int fd = open(c->pins_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    uint64_t h;
    while (read(fd, &h, 8) == 8 && c->npins < PINS_MAX / 2) {
        if (!(h & 1))
            continue; /* not a pin hash: a damaged file */
        size_t i = pin_slot(c, h);
        if (!c->pins[i]) {
            c->pins[i] = h;
            c->npins++;
        }
    }
    close(fd);
}

bool cache_pinned(struct cache *c, uint32_t export_id, uint64_t ino)
{
    return pinned(c, export_id, ino);
}

/* ---- eviction on request ------------------------------------------------ */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static bool in_sorted(const uint64_t *v, size_t n, uint64_t x)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid] < x)
            lo = mid + 1;
        else if (v[mid] > x)
            hi = mid;
        else
            return true;
    }
    return false;
}

/*
 * Make e's record (in region r, open or sealed) invisible to the next load
 * of the index: its header gets CACHE_REC_DROPPED (the scan of an open
 * region steps over it; a sealed region's summary is rewritten by the
 * caller), and when nobody reads r its data pages go back to the disk.
 * Shard lock held, e still indexed.  A failed header write is counted
 * only: the block may come back after a restart, intact, as a block of the
 * version it is.
 */
static void rec_drop(struct cache *c, struct shard *sh, struct region *r, const struct entry *e)
{
    uint64_t at = region_base(c, r) + e->off;
    struct cache_rec_hdr h;
    if (pread(sh->fd, &h, sizeof(h), (off_t)at) == (ssize_t)sizeof(h) &&
        h.magic == CACHE_REC_MAGIC && key_eq(&h.key, &e->key)) {
        h.flags |= CACHE_REC_DROPPED;
        h.hdr_crc = 0;
        h.hdr_crc = crc32c(&h, sizeof(h));
        if (pwrite(sh->fd, &h, sizeof(h), (off_t)at) != (ssize_t)sizeof(h))
            COUNT(c, UINT32_MAX, write_errors, 1);
    }
    /*
     * Readers of r (a pread, or segments held for sendfile) may be reading
     * any of its records: punching now could hand them zeros.  Then the
     * space comes back when r is recycled, like every evicted block's.
     */
    uint32_t rec = align_up((uint64_t)CACHE_REC_HDR + e->len);
    if (r->readers == 0 && rec > CACHE_ALIGN &&
        fallocate(sh->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(at + CACHE_ALIGN),
                  (off_t)(rec - CACHE_ALIGN)) != 0 &&
        errno != EOPNOTSUPP)
        COUNT(c, UINT32_MAX, write_errors, 1);
}

int cache_evict(struct cache *c, uint32_t export_id, const uint64_t *inos, size_t n,
                uint64_t *blocks_out, uint64_t *bytes_out)
{
    uint64_t blocks = 0, bytes = 0;
    uint64_t *set = NULL;
    if (n) {
        if (!(set = malloc(n * sizeof(*set))))
            return ENOMEM;
        memcpy(set, inos, n * sizeof(*set));
        qsort(set, n, sizeof(*set), cmp_u64);
    }
    cache_wait_loaded(c);
    /* Region by region, so that the shard lock is held for one region's blocks at a time. */
    for (unsigned s = 0; s < c->nshards && n; s++) {
        struct shard *sh = &c->shards[s];
        for (uint32_t i = 0; i < sh->nregions; i++) {
            pthread_mutex_lock(&sh->lock);
            struct region *r = &sh->regions[i];
            if (!sh->loaded) { /* its load failed: it holds nothing */
                pthread_mutex_unlock(&sh->lock);
                break;
            }
            uint32_t dropped = 0;
            for (struct entry *e = r->ents, *next; e; e = next) {
                next = e->rnext;
                if (e->key.export_id != export_id || !in_sorted(set, n, e->key.ino))
                    continue;
                /* An evicting region is about to be freed whole: no need to mark it. */
                if (r->state != R_EVICTING)
                    rec_drop(c, sh, r, e);
                blocks++;
                bytes += e->len;
                dropped++;
                idx_remove(sh, e);
            }
            /* An open region's summary is written when it is sealed, from its index. */
            if (dropped && r->state == R_SEALED)
                summary_write(c, sh, r);
            CHECK_SHARD(c, sh);
            pthread_mutex_unlock(&sh->lock);
        }
    }
    free(set);
    if (blocks)
        COUNT(c, export_id, dropped, blocks);
    if (blocks_out)
        *blocks_out = blocks;
    if (bytes_out)
        *bytes_out = bytes;
    return 0;
}

/* ---- fetching ---------------------------------------------------------- */

static void rd_finish(struct rd *rd)
{
    int err = atomic_load(&rd->err);
    rd->done(rd->arg, err, err ? 0 : rd->got);
    free(rd);
}

static void rd_fail(struct rd *rd, int err)
{
    int zero = 0;
    atomic_compare_exchange_strong(&rd->err, &zero, err);
}

static void fetch_free(struct fetch *f)
{
    free(f->bucket);
    free(f);
}

/* qlock held. */
static void enqueue(struct cache *c, struct fetch *f, bool demand)
{
    f->qnext = NULL;
    f->queued = demand ? FQ_DEMAND : FQ_PREFETCH;
    if (demand) {
        if (c->dq_tail)
            c->dq_tail->qnext = f;
        else
            c->dq_head = f;
        c->dq_tail = f;
    } else {
        if (c->pq_tail)
            c->pq_tail->qnext = f;
        else
            c->pq_head = f;
        c->pq_tail = f;
    }
    pthread_cond_signal(&c->work);
}

/*
 * A new fetch of block k of o (len bytes at off), registered in sh's
 * in-flight list.  Shard lock held.  NULL on ENOMEM.
 */
static struct fetch *fetch_new(struct shard *sh, const struct cache_key *k, const struct cache_obj *o,
                               uint64_t off, uint32_t len, enum fetch_kind kind)
{
    size_t bl = strlen(o->bucket) + 1, kl = strlen(o->key) + 1,
           el = (o->etag ? strlen(o->etag) : 0) + 1;
    struct fetch *f = calloc(1, sizeof(*f));
    char *s = malloc(bl + kl + el);
    if (!f || !s) {
        free(f);
        free(s);
        return NULL;
    }
    f->bucket = s;
    memcpy(s, o->bucket, bl);
    f->okey = s + bl;
    memcpy(f->okey, o->key, kl);
    f->etag = s + bl + kl;
    memcpy(f->etag, o->etag ? o->etag : "", el);
    f->sh = sh;
    f->key = *k;
    f->kind = kind;
    f->noevict = o->noevict_when_full;
    f->off = off;
    f->len = len;
    f->store = o->store;
    f->next = sh->fetches;
    sh->fetches = f;
    return f;
}

static struct fetch *fetch_find(struct shard *sh, const struct cache_key *k)
{
    for (struct fetch *f = sh->fetches; f; f = f->next)
        if (key_eq(&f->key, k))
            return f;
    return NULL;
}

/*
 * Fetch f's block(s) is over: keep the block (unless err), take f out of
 * its shard's in-flight list, serve its waiters, free f.  buf holds
 * f->len bytes.
 */
static void fetch_complete(struct cache *c, struct fetch *f, const char *buf, int err)
{
    struct shard *sh = f->sh;
    if (!err) {
        uint8_t flags = f->kind == F_RA ? E_RA : f->kind == F_PF ? E_PF : 0;
        int mode = f->noevict ? AP_NOEVICT : AP_NORMAL;
        if (append(c, sh, &f->key, buf, f->len, crc32c(buf, f->len), Q_S, 0, flags, mode, 0))
            COUNT(c, f->key.export_id, not_admitted, 1);
    }

    pthread_mutex_lock(&sh->lock);
    struct fetch **pp = &sh->fetches;
    while (*pp != f)
        pp = &(*pp)->next;
    *pp = f->next;
    struct waiter *w = f->waiters;
    f->waiters = NULL;
    if (!err && w && sh->loaded) {
        /* Demand readers are here: the block counts as read, not as read-ahead. */
        struct entry *e = idx_find(sh, &f->key);
        if (e)
            e->flags &= (uint8_t)~(E_RA | E_PF);
    }
    pthread_mutex_unlock(&sh->lock);

    if (f->budgeted)
        atomic_fetch_sub(&c->pf_bytes, f->len);
    while (w) {
        struct waiter *next = w->next;
        if (err)
            rd_fail(w->rd, err);
        else
            memcpy(w->rd->buf + w->dst, buf + w->from, w->len);
        if (atomic_fetch_sub(&w->rd->pending, 1) == 1)
            rd_finish(w->rd);
        free(w);
        w = next;
    }
    fetch_free(f);
}

/* One GET for f and its riders (consecutive blocks), then complete each. */
static void fetch_run(struct cache *c, struct fetch *f)
{
    size_t total = f->len;
    for (unsigned i = 0; i < f->nriders; i++)
        total += f->riders[i]->len;
    char *buf = malloc(total ? total : 1);
    size_t got = 0;
    int err = buf ? 0 : ENOMEM;
    if (!err) {
        err = obj_get_if(f->store, f->bucket, f->okey, f->off, total, buf, &got, NULL,
                         f->etag[0] ? f->etag : NULL);
        COUNT(c, f->key.export_id, gets, 1);
        COUNT(c, f->key.export_id, get_bytes, got);
    }
    if (!err && got != total)
        err = ESTALE; /* shorter than this version's size: the object changed */
    if (err == ESTALE)
        COUNT(c, f->key.export_id, stale, 1);
    /*
     * Riders first, the leader last: a reader that finds a rider (under its
     * shard's lock) may promote the leader, which must outlive every rider.
     */
    size_t at = f->len;
    for (unsigned i = 0; i < f->nriders; i++) {
        size_t len = f->riders[i]->len;
        fetch_complete(c, f->riders[i], buf ? buf + at : NULL, err);
        at += len;
    }
    fetch_complete(c, f, buf, err); /* frees f */
    free(buf);
}

static void *fetcher_main(void *arg)
{
    struct cache *c = arg;
    pthread_mutex_lock(&c->qlock);
    for (;;) {
        struct fetch *f = NULL;
        bool counted = false; /* taken from the prefetch queue: holds a pf_running slot */
        if (c->dq_head) {
            f = c->dq_head;
            c->dq_head = f->qnext;
            if (!c->dq_head)
                c->dq_tail = NULL;
        } else if (c->pq_head && c->pf_running < c->pf_max) {
            f = c->pq_head;
            c->pq_head = f->qnext;
            if (!c->pq_head)
                c->pq_tail = NULL;
            c->pf_running++;
            counted = true;
        } else if (c->stop) {
            break;
        } else {
            pthread_cond_wait(&c->work, &c->qlock);
            continue;
        }
        f->queued = FQ_NONE;
        pthread_mutex_unlock(&c->qlock);
        atomic_fetch_add(&c->fetching, 1);
        fetch_run(c, f);
        atomic_fetch_sub(&c->fetching, 1);
        pthread_mutex_lock(&c->qlock);
        if (counted) {
            c->pf_running--;
            pthread_cond_signal(&c->work);
        }
    }
    pthread_mutex_unlock(&c->qlock);
    return NULL;
}

/* ---- reading ----------------------------------------------------------- */

static struct cache_key key_of(const struct cache *c, const struct cache_obj *o, uint64_t blkno)
{
    (void)c;
    return (struct cache_key){.export_id = o->export_id, .gen = o->gen, .ino = o->ino,
                         .version = o->version, .blkno = blkno};
}

/*
 * A demand reader joined f: if f still waits in the prefetch queue, move it
 * to the demand queue.  Shard lock held (then qlock: the lock order).
 */
static void promote(struct cache *c, struct fetch *f)
{
    pthread_mutex_lock(&c->qlock);
    if (f->queued == FQ_PREFETCH) {
        struct fetch *prev = NULL, *p = c->pq_head;
        while (p && p != f) {
            prev = p;
            p = p->qnext;
        }
        if (p) {
            if (prev)
                prev->qnext = f->qnext;
            else
                c->pq_head = f->qnext;
            if (c->pq_tail == f)
                c->pq_tail = prev;
            enqueue(c, f, true);
        }
    }
    pthread_mutex_unlock(&c->qlock);
}

/*
 * Copy n bytes at `from` of cached block e into dst.  Called with the shard
 * lock held; returns with it released.  A block not yet verified since the
 * start is read whole and checked first.  Returns 0, or EIO when the block
 * could not be read or failed its checksum (it is then dropped: a miss).
 */
static int read_hit(struct cache *c, struct shard *sh, struct entry *e, uint32_t from, uint32_t n,
                    char *dst)
{
    struct region *r = &sh->regions[e->region];
    bool verified = e->flags & E_VERIFIED;
    uint32_t off = e->off, len = e->len, crc = e->crc;
    struct cache_key k = e->key;
    if (e->freq < FREQ_MAX)
        e->freq++;
    if (e->flags & E_RA)
        COUNT(c, k.export_id, ra_used, 1);
    if (e->flags & E_PF)
        COUNT(c, k.export_id, pf_used, 1);
    e->flags &= (uint8_t)~(E_RA | E_PF);
    r->readers++;
    pthread_mutex_unlock(&sh->lock);

    uint64_t at = region_base(c, r) + off + CACHE_REC_HDR;
    bool ok;
    if (verified) {
        ok = pread(sh->fd, dst, n, (off_t)(at + from)) == (ssize_t)n;
    } else {
        char *tmp = malloc(len);
        ok = tmp && pread(sh->fd, tmp, len, (off_t)at) == (ssize_t)len && crc32c(tmp, len) == crc;
        if (ok)
            memcpy(dst, tmp + from, n);
        free(tmp);
    }

    pthread_mutex_lock(&sh->lock);
    reader_put(c, sh, r);
    struct entry *cur = idx_find(sh, &k);
    bool same = cur && cur->region == r->idx && cur->off == off;
    if (ok && same)
        cur->flags |= E_VERIFIED;
    if (!ok && same) {
        idx_remove(sh, cur);
        COUNT(c, k.export_id, corrupt, 1);
        LOG_AT(LOG_WARNING,
               "cache: shard %u: block %" PRIu64 " of inode %" PRIu64
               " failed its checksum or could not be read; dropped, fetching it again",
               sh->no, k.blkno, k.ino);
    }
    pthread_mutex_unlock(&sh->lock);
    return ok ? 0 : EIO;
}

/*
 * Fetch up to n blocks of o from blkno on ahead of their reader
 * (read-ahead or prefetch), under the budget: the first block that is not
 * cached nor being fetched starts a run of consecutive such blocks (at most
 * RA_RUN_MAX and RA_RUN_BYTES) fetched by one ranged GET.  Returns how many
 * of the n blocks were dealt with (cached, in flight or issued); fewer
 * than n means the budget is spent and the caller stops.
 */
static unsigned issue_bg(struct cache *c, const struct cache_obj *o, uint64_t blkno, unsigned n,
                         enum fetch_kind kind)
{
    struct fetch *lead = NULL;
    unsigned done = 0;
    uint64_t run_bytes = 0;
    for (; done < n; done++) {
        uint64_t b = blkno + done;
        uint64_t off = b * c->bs;
        if (off >= o->size)
            break;
        uint32_t len = (uint32_t)(o->size - off < c->bs ? o->size - off : c->bs);
        struct cache_key k = key_of(c, o, b);
        struct shard *sh = shard_of(c, &k);

        pthread_mutex_lock(&sh->lock);
        if (!sh->loaded || idx_find(sh, &k) || fetch_find(sh, &k)) {
            pthread_mutex_unlock(&sh->lock);
            if (lead)
                break; /* the run ends here; the caller goes on after it */
            continue;
        }
        bool join = lead && lead->nriders < RA_RUN_MAX - 1 && run_bytes + len <= RA_RUN_BYTES;
        if (lead && !join) {
            pthread_mutex_unlock(&sh->lock);
            break;
        }
        if (atomic_fetch_add(&c->pf_bytes, len) + len > c->conf.prefetch_budget) {
            atomic_fetch_sub(&c->pf_bytes, len);
            pthread_mutex_unlock(&sh->lock);
            COUNT(c, o->export_id, pf_skipped, 1);
            n = 0; /* spent: stop after queueing what we have */
            break;
        }
        struct fetch *f = fetch_new(sh, &k, o, off, len, kind);
        if (!f) {
            atomic_fetch_sub(&c->pf_bytes, len);
            pthread_mutex_unlock(&sh->lock);
            n = 0;
            break;
        }
        f->budgeted = true;
        if (lead) {
            f->leader = lead;
            lead->riders[lead->nriders++] = f;
        } else {
            lead = f;
        }
        run_bytes += len;
        pthread_mutex_unlock(&sh->lock);
        if (kind == F_RA)
            COUNT(c, o->export_id, ra_issued, 1);
        else
            COUNT(c, o->export_id, pf_issued, 1);
    }
    if (lead) {
        pthread_mutex_lock(&c->qlock);
        enqueue(c, lead, false);
        pthread_mutex_unlock(&c->qlock);
    }
    return n == 0 ? 0 : done;
}

/*
 * lost: this read missed a block that nobody was fetching although the
 * stream had read ahead past it - its read-ahead was evicted before use,
 * so the window is too large for the cache's pace: halve it.
 */
static void ra_feed(struct cache *c, const struct cache_obj *o, uint64_t off, size_t n, bool lost)
{
    if (c->conf.readahead_max < c->bs)
        return;
    /*
     * Near a stream: within a few requests of its position (clients send
     * several READs at once and they arrive out of order), or behind it by
     * no more than its window.  Scaled by the request size, so that small
     * random reads of one file do not look like a stream.
     */
    uint64_t slop = 4 * (uint64_t)n;
    uint64_t from = 0, to = 0;
    struct stream *s = NULL;

    pthread_mutex_lock(&c->ralock);
    uint64_t now = ++c->ra_clock;
    struct stream *lru = &c->streams[0];
    for (unsigned i = 0; i < STREAMS; i++) {
        struct stream *t = &c->streams[i];
        if (t->ino == o->ino && t->export_id == o->export_id && t->version == o->version) {
            uint64_t back = t->window + slop;
            uint64_t lo = t->pos > back ? t->pos - back : 0;
            if (off + n >= lo && off <= t->pos + slop) {
                s = t;
                break;
            }
        }
        if (t->used < lru->used)
            lru = t;
    }
    if (!s) {
        *lru = (struct stream){.export_id = o->export_id, .ino = o->ino, .version = o->version,
                               .pos = off + n, .ra_end = off + n, .seq = 1, .used = now};
        pthread_mutex_unlock(&c->ralock);
        return;
    }
    s->used = now;
    s->seq++;
    bool wasted = lost && off < s->ra_end;
    if (off + n > s->pos)
        s->pos = off + n;
    if (wasted) {
        /* What it read ahead is gone: read ahead again from here, half as far. */
        s->window = s->window / 2 > c->bs ? s->window / 2 : c->bs;
        s->ra_end = s->pos;
        c->ra_shrinks++;
    } else if (s->window == 0) {
        s->window = c->bs;
    } else if (s->window < c->conf.readahead_max) {
        s->window = s->window * 2 < c->conf.readahead_max ? s->window * 2 : c->conf.readahead_max;
    }
    if (s->ra_end < s->pos)
        s->ra_end = s->pos;
    uint64_t target = s->pos + s->window < o->size ? s->pos + s->window : o->size;
    /*
     * Top the window up only once less than half of it is left ahead of
     * the reader: read-ahead then goes out in runs of consecutive blocks,
     * each run one GET (RA_RUN_MAX), not one block per READ.
     */
    bool low = s->ra_end < s->pos + s->window / 2 || s->window <= c->bs;
    if (low && target > s->ra_end) {
        from = s->ra_end;
        to = target;
        s->ra_end = target;
    }
    pthread_mutex_unlock(&c->ralock);

    uint64_t last = to > from ? (to - 1) / c->bs : 0;
    for (uint64_t b = from / c->bs; to > from && b <= last;) {
        unsigned want = (unsigned)(last - b + 1 < 64 ? last - b + 1 : 64);
        unsigned got = issue_bg(c, o, b, want, F_RA);
        if (got == 0) {
            /* Budget spent: the stream asks again from here next time. */
            pthread_mutex_lock(&c->ralock);
            if (s->ino == o->ino && s->ra_end == to)
                s->ra_end = b * c->bs > from ? b * c->bs : from;
            pthread_mutex_unlock(&c->ralock);
            break;
        }
        b += got;
    }
}

int cache_read_async(struct cache *c, const struct cache_obj *o, uint64_t off, size_t len,
                     void *buf, size_t *got, cache_done_fn done, void *arg)
{
    *got = 0;
    if (off >= o->size || len == 0)
        return 0;
    size_t n = o->size - off < len ? (size_t)(o->size - off) : len;
    struct rd *rd = NULL;
    int err = 0;
    bool lost = false; /* a block missed that no fetch was bringing */
    uint64_t first = off / c->bs, last = (off + n - 1) / c->bs;

    for (uint64_t b = first; b <= last && !err; b++) {
        uint64_t bstart = b * c->bs;
        uint32_t blen = (uint32_t)(o->size - bstart < c->bs ? o->size - bstart : c->bs);
        uint32_t from = b == first ? (uint32_t)(off - bstart) : 0;
        uint32_t to = off + n - bstart < blen ? (uint32_t)(off + n - bstart) : blen;
        char *dst = (char *)buf + (bstart + from - off);
        struct cache_key k = key_of(c, o, b);
        struct shard *sh = shard_of(c, &k);

        for (;;) {
            pthread_mutex_lock(&sh->lock);
            struct entry *e = sh->loaded ? idx_find(sh, &k) : NULL;
            if (e && !done && !(e->flags & E_VERIFIED)) {
                /* Verifying reads the whole block: not for a caller that must not wait. */
                pthread_mutex_unlock(&sh->lock);
                return EWOULDBLOCK;
            }
            if (e) {
                if (read_hit(c, sh, e, from, to - from, dst) == 0) {
                    COUNT(c, o->export_id, hits, 1);
                    COUNT(c, o->export_id, bytes_hit, to - from);
                    break;
                }
                continue; /* dropped as corrupt: now a miss */
            }
            if (!done) {
                /* Hits only (the RPC event loop): nothing is registered or read ahead. */
                pthread_mutex_unlock(&sh->lock);
                return EWOULDBLOCK;
            }
            struct waiter *w = malloc(sizeof(*w));
            if (!rd && w) {
                rd = calloc(1, sizeof(*rd));
                if (rd) {
                    atomic_init(&rd->pending, 1); /* ours, until the loop is over */
                    rd->buf = buf;
                    rd->got = n;
                    rd->done = done;
                    rd->arg = arg;
                }
            }
            struct fetch *f = w && rd ? fetch_find(sh, &k) : NULL;
            bool joined = f != NULL;
            if (w && rd && !f) {
                f = fetch_new(sh, &k, o, bstart, blen, F_DEMAND);
                if (f) {
                    pthread_mutex_lock(&c->qlock);
                    enqueue(c, f, true);
                    pthread_mutex_unlock(&c->qlock);
                }
            }
            if (!f) {
                pthread_mutex_unlock(&sh->lock);
                free(w);
                err = ENOMEM;
                break;
            }
            if (joined) {
                promote(c, f->leader ? f->leader : f);
                if (f->kind == F_RA)
                    COUNT(c, o->export_id, ra_used, 1);
                else if (f->kind == F_PF)
                    COUNT(c, o->export_id, pf_used, 1);
            }
            *w = (struct waiter){.next = f->waiters, .rd = rd, .from = from, .len = to - from,
                                 .dst = bstart + from - off};
            f->waiters = w;
            atomic_fetch_add(&rd->pending, 1);
            pthread_mutex_unlock(&sh->lock);
            COUNT(c, o->export_id, misses, 1);
            COUNT(c, o->export_id, bytes_miss, to - from);
            if (joined)
                COUNT(c, o->export_id, waits, 1);
            else
                lost = true;
            break;
        }
    }
    if (!err)
        ra_feed(c, o, off, n, lost);

    if (!rd) {
        if (!err)
            *got = n;
        return err;
    }
    if (err)
        rd_fail(rd, err);
    if (atomic_fetch_sub(&rd->pending, 1) == 1) {
        /* Every fetch we joined finished before we got here: answer now. */
        err = atomic_load(&rd->err);
        free(rd);
        if (!err)
            *got = n;
        return err;
    }
    return EINPROGRESS;
}

int cache_get_segs(struct cache *c, const struct cache_obj *o, uint64_t off, size_t len,
                   struct cache_seg *segs, unsigned max, unsigned *nsegs, size_t *got)
{
    *nsegs = 0;
    *got = 0;
    if (off >= o->size || len == 0)
        return 0;
    size_t n = o->size - off < len ? (size_t)(o->size - off) : len;
    uint64_t first = off / c->bs, last = (off + n - 1) / c->bs;
    if (last - first + 1 > max)
        return EWOULDBLOCK;
    unsigned k = 0;
    for (uint64_t b = first; b <= last; b++, k++) {
        uint64_t bstart = b * c->bs;
        uint32_t from = b == first ? (uint32_t)(off - bstart) : 0;
        uint64_t end = off + n - bstart;
        struct cache_key key = key_of(c, o, b);
        struct shard *sh = shard_of(c, &key);
        pthread_mutex_lock(&sh->lock);
        struct entry *e = sh->loaded ? idx_find(sh, &key) : NULL;
        if (!e || !(e->flags & E_VERIFIED)) {
            pthread_mutex_unlock(&sh->lock);
            cache_put_segs(c, segs, k);
            return EWOULDBLOCK;
        }
        uint32_t to = end < e->len ? (uint32_t)end : e->len;
        struct region *r = &sh->regions[e->region];
        r->readers++;
        if (e->freq < FREQ_MAX)
            e->freq++;
        if (e->flags & E_RA)
            COUNT(c, key.export_id, ra_used, 1);
        if (e->flags & E_PF)
            COUNT(c, key.export_id, pf_used, 1);
        e->flags &= (uint8_t)~(E_RA | E_PF);
        segs[k] = (struct cache_seg){.fd = sh->fd,
                                     .off = region_base(c, r) + e->off + CACHE_REC_HDR + from,
                                     .len = to - from,
                                     .shard = (uint32_t)(sh - c->shards),
                                     .region = r->idx};
        pthread_mutex_unlock(&sh->lock);
        COUNT(c, o->export_id, hits, 1);
        COUNT(c, o->export_id, bytes_hit, to - from);
    }
    *nsegs = k;
    *got = n;
    ra_feed(c, o, off, n, false);
    return 0;
}

void cache_put_segs(struct cache *c, const struct cache_seg *segs, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        struct shard *sh = &c->shards[segs[i].shard];
        pthread_mutex_lock(&sh->lock);
        reader_put(c, sh, &sh->regions[segs[i].region]);
        pthread_mutex_unlock(&sh->lock);
    }
}

struct sync_wait {
    pthread_mutex_t m;
    pthread_cond_t finished;
    bool done;
    int err;
    size_t got;
};

static void sync_done(void *arg, int err, size_t got)
{
    struct sync_wait *w = arg;
    pthread_mutex_lock(&w->m);
    w->done = true;
    w->err = err;
    w->got = got;
    pthread_cond_signal(&w->finished);
    pthread_mutex_unlock(&w->m);
}

int cache_read(struct cache *c, const struct cache_obj *o, uint64_t off, size_t len, void *buf,
               size_t *got)
{
    struct sync_wait w = {.m = PTHREAD_MUTEX_INITIALIZER, .finished = PTHREAD_COND_INITIALIZER};
    int err = cache_read_async(c, o, off, len, buf, got, sync_done, &w);
    if (err == EINPROGRESS) {
        pthread_mutex_lock(&w.m);
        while (!w.done)
            pthread_cond_wait(&w.finished, &w.m);
        pthread_mutex_unlock(&w.m);
        err = w.err;
        *got = w.got;
    }
    pthread_cond_destroy(&w.finished);
    pthread_mutex_destroy(&w.m);
    return err;
}

void cache_prefetch(struct cache *c, const struct cache_obj *o, uint64_t off, uint64_t len)
{
    if (off >= o->size || len == 0)
        return;
    uint64_t end = o->size - off < len ? o->size : off + len;
    uint64_t last = (end - 1) / c->bs;
    for (uint64_t b = off / c->bs; b <= last;) {
        unsigned want = (unsigned)(last - b + 1 < 64 ? last - b + 1 : 64);
        unsigned got = issue_bg(c, o, b, want, F_PF);
        if (got == 0)
            break;
        b += got;
    }
}

uint64_t cache_version(const char *etag, uint64_t size)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)etag; p && *p; p++)
        h = (h ^ *p) * 0x100000001b3ull;
    h = mix64(h ^ size);
    return h ? h : 1;
}

/* ---- loading the index at start --------------------------------------- */

/* Index a block found on disk in region r (whose seq is set); the newest copy of a key wins. */
static void load_entry(struct shard *sh, struct region *r, const struct cache_key *k, uint32_t off,
                       uint32_t len, uint32_t crc)
{
    struct entry *old = idx_find(sh, k);
    if (old) {
        if (sh->regions[old->region].seq > r->seq)
            return;
        idx_remove(sh, old);
    }
    struct entry *e = ent_alloc(sh);
    if (!e)
        return; /* forgotten: it is only a cache */
    *e = (struct entry){.key = *k, .region = r->idx, .off = off, .len = len, .crc = crc};
    idx_insert(sh, e);
}

/* A record or summary entry describes a block that fits where it says. */
static bool rec_fits(const struct cache *c, uint32_t off, uint32_t len, uint32_t limit)
{
    return len > 0 && len <= c->bs && off % CACHE_ALIGN == 0 &&
           (uint64_t)off + CACHE_REC_HDR + len <= limit;
}

/* From the summary at r's end.  Returns false when there is no intact summary. */
static bool load_summary(struct cache *c, struct shard *sh, struct region *r)
{
    uint64_t end = region_base(c, r) + c->region_size;
    struct cache_sum_hdr h;
    if (pread(sh->fd, &h, sizeof(h), (off_t)(end - CACHE_SUM_HDR)) != (ssize_t)sizeof(h) ||
        h.magic != CACHE_SUM_MAGIC || h.queue > Q_M)
        return false;
    uint32_t want = h.hdr_crc;
    h.hdr_crc = 0;
    if (crc32c(&h, sizeof(h)) != want || h.count > c->region_size / CACHE_ALIGN ||
        sum_space(h.count) > c->region_size)
        return false;
    size_t elen = align_up((uint64_t)h.count * CACHE_SUM_ENT);
    struct cache_sum_ent *ents = elen ? malloc(elen) : NULL;
    if (elen && (!ents || pread(sh->fd, ents, elen, (off_t)(end - CACHE_SUM_HDR - elen)) !=
                              (ssize_t)elen)) {
        free(ents);
        return false;
    }
    if (crc32c(ents ? (const void *)ents : "", (size_t)h.count * CACHE_SUM_ENT) != h.ents_crc) {
        free(ents);
        return false;
    }
    r->seq = h.seq;
    r->queue = (uint8_t)h.queue;
    uint32_t limit = c->region_size - sum_space(h.count);
    for (uint32_t i = 0; i < h.count; i++) {
        struct cache_sum_ent *se = &ents[i];
        if (!rec_fits(c, se->off, se->len, limit))
            continue;
        load_entry(sh, r, &se->key, se->off, se->len, se->data_crc);
        uint32_t endrec = se->off + align_up((uint64_t)CACHE_REC_HDR + se->len);
        if (endrec > r->used)
            r->used = endrec;
    }
    free(ents);
    return true;
}

/* A region that was open at a stop: walk its record headers; the first bad one ends it. */
static void load_scan(struct cache *c, struct shard *sh, struct region *r)
{
    uint64_t base = region_base(c, r);
    uint32_t off = 0, limit = c->region_size - CACHE_SUM_HDR;
    bool any = false;
    while ((uint64_t)off + CACHE_REC_HDR <= limit) {
        struct cache_rec_hdr h;
        if (pread(sh->fd, &h, sizeof(h), (off_t)(base + off)) != (ssize_t)sizeof(h) ||
            h.magic != CACHE_REC_MAGIC || h.queue > Q_M)
            break;
        uint32_t want = h.hdr_crc;
        h.hdr_crc = 0;
        if (crc32c(&h, sizeof(h)) != want || !rec_fits(c, off, h.len, limit) ||
            (any && h.seq != r->seq))
            break;
        if (!any) {
            r->seq = h.seq;
            r->queue = (uint8_t)h.queue;
            any = true;
        }
        if (!(h.flags & CACHE_REC_DROPPED))
            load_entry(sh, r, &h.key, off, h.len, h.data_crc);
        off += align_up((uint64_t)CACHE_REC_HDR + h.len);
    }
    r->used = off;
    /* Records from an earlier life of the region would follow; the summary
       written below ends the region at what was found. */
    while (r->count && (uint64_t)r->used + sum_space(r->count) > c->region_size) {
        struct entry *last = r->ents; /* drop blocks until the summary fits */
        idx_remove(sh, last);
    }
    if (r->count)
        summary_write(c, sh, r);
}

static int cmp_seq(const void *a, const void *b)
{
    const struct region *x = *(struct region *const *)a, *y = *(struct region *const *)b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int shard_open(struct cache *c, struct shard *sh, unsigned no, uint32_t nregions)
{
    const char *dir = c->conf.dirs[no % c->conf.ndirs];
    char path[4096];
    /* The geometry is in the name: a cache resized or re-blocked starts empty. */
    snprintf(path, sizeof(path), "%s/shard-%02u-%ux%u.dat", dir, no, nregions, c->region_size);
    sh->no = no;
    sh->nregions = nregions;
    pthread_mutex_init(&sh->lock, NULL);
    sh->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (sh->fd < 0) {
        int err = errno;
        LOG_AT(LOG_ERR, "cache: cannot open %s: %s", path, strerror(err));
        return err;
    }
    uint64_t want = (uint64_t)nregions * c->region_size;
    struct stat st;
    if (fstat(sh->fd, &st) != 0 || ((uint64_t)st.st_size != want && ftruncate(sh->fd, (off_t)want))) {
        int err = errno;
        LOG_AT(LOG_ERR, "cache: cannot size %s: %s", path, strerror(err));
        return err;
    }
    sh->regions = calloc(nregions, sizeof(*sh->regions));
    sh->nghost = (size_t)nregions * GHOST_PER_REGION;
    sh->ghost = calloc(sh->nghost, sizeof(*sh->ghost));
    /* Sized for a full shard of whole blocks: loading never rehashes. */
    size_t want_slots = (size_t)nregions * (c->region_size / c->bs);
    sh->hmask = 1023;
    while (sh->hmask + 1 < want_slots)
        sh->hmask = sh->hmask * 2 + 1;
    sh->htab = calloc(sh->hmask + 1, sizeof(*sh->htab));
    if (!sh->regions || !sh->ghost || !sh->htab)
        return ENOMEM;
    for (uint32_t i = 0; i < nregions; i++)
        sh->regions[i].idx = i;
    return 0;
}

/*
 * Build sh's index from its file (a loader thread, before sh->loaded: no
 * other thread touches the index, the regions or the queues until then).
 * ENOMEM leaves the shard unloaded: it serves nothing from disk.
 */
static int shard_load(struct cache *c, struct shard *sh)
{
    uint32_t nregions = sh->nregions;
    struct region **sealed = calloc(nregions, sizeof(*sealed));
    if (!sealed)
        return ENOMEM;
    uint32_t nsealed = 0;
    for (uint32_t i = 0; i < nregions; i++) {
        struct region *r = &sh->regions[i];
        if (!load_summary(c, sh, r))
            load_scan(c, sh, r);
    }
    /* Drop regions that ended up empty (every copy was newer elsewhere). */
    for (uint32_t i = 0; i < nregions; i++) {
        struct region *r = &sh->regions[i];
        if (r->count) {
            r->state = R_SEALED;
            sealed[nsealed++] = r;
            if (r->seq > sh->seq)
                sh->seq = r->seq;
        } else {
            r->state = R_FREE;
            r->used = 0;
        }
    }
    qsort(sealed, nsealed, sizeof(*sealed), cmp_seq);
    for (uint32_t i = 0; i < nsealed; i++)
        queue_push(sh, sealed[i]);
    free(sealed);
    for (uint32_t i = nregions; i-- > 0;) {
        struct region *r = &sh->regions[i];
        if (r->state == R_FREE) {
            r->qnext = sh->free;
            sh->free = r;
            sh->nfree++;
        }
    }
    pthread_mutex_lock(&sh->lock);
    sh->loaded = true;
    CHECK_SHARD(c, sh);
    pthread_mutex_unlock(&sh->lock);
    return 0;
}

/* Loader thread: load shards until none is left; the last one out says so. */
static void *loader_main(void *arg)
{
    struct cache *c = arg;
    unsigned i;
    while ((i = atomic_fetch_add(&c->load_next, 1)) < c->nshards) {
        struct shard *sh = &c->shards[i];
        if (shard_load(c, sh))
            LOG_AT(LOG_ERR, "cache: shard %u: out of memory loading its index; it serves "
                   "nothing cached", i);
        if (atomic_fetch_add(&c->load_done, 1) + 1 == c->nshards) {
            uint64_t blocks = 0, bytes = 0;
            for (unsigned k = 0; k < c->nshards; k++) {
                pthread_mutex_lock(&c->shards[k].lock);
                blocks += c->shards[k].hcount;
                bytes += c->shards[k].bytes;
                pthread_mutex_unlock(&c->shards[k].lock);
            }
            pthread_mutex_lock(&c->cleanlock);
            c->load_usec = now_usec() - c->load_start;
            c->loading = false;
            pthread_cond_broadcast(&c->loaded_cv);
            pthread_mutex_unlock(&c->cleanlock);
            LOG_AT(LOG_INFO,
                   "cache: %u shards x %u regions of %u KiB on %zu dir(s); %" PRIu64
                   " blocks (%" PRIu64 " MiB) loaded in %" PRIu64 " ms; checksums %s",
                   c->nshards, c->shards[0].nregions, c->region_size >> 10, c->conf.ndirs,
                   blocks, bytes >> 20, c->load_usec / 1000,
                   crc32c_hw() ? "by the CPU's crc32 instruction" : "in software");
            wake_cleaner(c);
        }
    }
    return NULL;
}

void cache_wait_loaded(struct cache *c)
{
    pthread_mutex_lock(&c->cleanlock);
    while (c->loading)
        pthread_cond_wait(&c->loaded_cv, &c->cleanlock);
    pthread_mutex_unlock(&c->cleanlock);
}

/* Remove shard files of another geometry (an old size or block size). */
static void remove_stale(struct cache *c, const char *dir, unsigned nshards, uint32_t nregions)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        unsigned no, nr, rs;
        char tail;
        if (sscanf(de->d_name, "shard-%u-%ux%u.da%c", &no, &nr, &rs, &tail) != 4 || tail != 't')
            continue;
        if (no < nshards && nr == nregions && rs == c->region_size)
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) == 0)
            LOG_AT(LOG_NOTICE, "cache: removed %s/%s (another cache geometry)", dir, de->d_name);
    }
    closedir(d);
}

/*
 * Regions of 16 blocks at least (so that a region's unusable tail is small)
 * and 64 MiB at most, smaller while that gives fewer than 1024 regions;
 * shards of at least 64 regions where the size allows, so that the FREE_LOW
 * regions each shard keeps ready are a few percent of it.  64 KiB of the
 * size are kept for the pins file.
 */
int cache_geometry(uint64_t size, uint32_t bs, unsigned shards_wanted, uint32_t *region_size,
                   unsigned *shards, uint32_t *per_shard)
{
    uint64_t usable = size > (1u << 20) ? size - (64u << 10) : size;
    uint32_t min_rs = 16 * bs > (1u << 20) ? 16 * bs : (1u << 20);
    uint32_t rs = 64u << 20;
    if (rs < min_rs)
        rs = min_rs;
    while (rs / 2 >= min_rs && usable / rs < 1024)
        rs /= 2;
    uint64_t total = usable / rs;
    if (total < 4)
        return EINVAL;
    unsigned ns = shards_wanted ? shards_wanted : (unsigned)(total / 64 < 16 ? total / 64 : 16);
    if (ns == 0)
        ns = 1;
    if (ns > total / 4)
        ns = (unsigned)(total / 4);
    *region_size = rs;
    *shards = ns;
    *per_shard = (uint32_t)(total / ns);
    return 0;
}

/*
 * Take dir's lock file (dir/lock, flock exclusive) for as long as the cache
 * is open: a second process given the same folder would append to the same
 * regions from its own index, and each would then serve the other's bytes
 * as its own blocks (blocks it wrote itself are not checked again), or
 * remove its files as another geometry.  The kernel drops the lock when the
 * process dies, kill -9 included.  The same folder named twice in dirs is
 * locked once (*fd stays -1).  0, EBUSY (held by another process, logged)
 * or an errno.
 */
static int dir_lock(struct cache *c, size_t i, const char *dir)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    struct stat st, other;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int err = errno;
        LOG_AT(LOG_ERR, "cache: cannot open %s: %s", path, strerror(err));
        if (fd >= 0)
            close(fd);
        return err;
    }
    for (size_t j = 0; j < i; j++)
        if (c->lock_fds[j] >= 0 && fstat(c->lock_fds[j], &other) == 0 &&
            other.st_dev == st.st_dev && other.st_ino == st.st_ino) {
            close(fd);
            return 0;
        }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno == EWOULDBLOCK ? EBUSY : errno;
        if (err == EBUSY)
            LOG_AT(LOG_ERR, "cache: %s is in use by another process (%s is locked): two daemons "
                            "cannot share a cache folder", dir, path);
        else
            LOG_AT(LOG_ERR, "cache: cannot lock %s: %s", path, strerror(err));
        close(fd);
        return err;
    }
    c->lock_fds[i] = fd;
    return 0;
}

struct cache *cache_create(const struct cache_conf *cf)
{
    int err = EINVAL;
    if (!cf->ndirs || cf->block_size < 4096 || cf->block_size > (64u << 20) ||
        (cf->block_size & (cf->block_size - 1))) {
        LOG_AT(LOG_ERR, "cache: block_size must be a power of two from 4K to 64M");
        errno = EINVAL;
        return NULL;
    }
    struct cache *c = calloc(1, sizeof(*c));
    if (!c) {
        errno = ENOMEM;
        return NULL;
    }
    c->conf = *cf;
    c->bs = cf->block_size;
    if (!c->conf.fetch_max)
        c->conf.fetch_max = DEFAULT_FETCH_MAX;
    if (!c->conf.prefetch_budget)
        c->conf.prefetch_budget = DEFAULT_BUDGET;
    if (c->conf.prefetch_budget < c->bs)
        c->conf.prefetch_budget = c->bs;
    pthread_mutex_init(&c->qlock, NULL);
    pthread_cond_init(&c->work, NULL);
    pthread_mutex_init(&c->cleanlock, NULL);
    clock_cond_init(&c->clean_needed); /* timed waits: CLOCK_MONOTONIC deadlines */
    pthread_cond_init(&c->loaded_cv, NULL);
    pthread_mutex_init(&c->ralock, NULL);
    pthread_mutex_init(&c->pinlock, NULL);
    for (unsigned i = 0; i < EXP_SLOTS; i++)
        atomic_init(&c->exps[i].id, UINT32_MAX);

    uint32_t rs, per;
    unsigned ns;
    if ((err = cache_geometry(cf->size, c->bs, cf->shards, &rs, &ns, &per))) {
        LOG_AT(LOG_ERR, "cache: size %" PRIu64 " is too small for blocks of %u bytes: it must "
               "hold 4 regions of 16 blocks (and at least 1 MiB) each", cf->size, c->bs);
        goto fail;
    }
    c->region_size = rs;
    c->nshards = ns;

    c->load_start = now_usec();
    c->lock_fds = malloc(cf->ndirs * sizeof(*c->lock_fds));
    if (!c->lock_fds) {
        err = ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < cf->ndirs; i++)
        c->lock_fds[i] = -1;
    for (size_t i = 0; i < cf->ndirs; i++) {
        if ((err = fs_mkdirs(cf->dirs[i]))) {
            LOG_AT(LOG_ERR, "cache: cannot create %s: %s", cf->dirs[i], strerror(err));
            goto fail;
        }
        if ((err = dir_lock(c, i, cf->dirs[i])))
            goto fail;
        remove_stale(c, cf->dirs[i], ns, per);
    }
    c->shards = calloc(ns, sizeof(*c->shards));
    if (!c->shards) {
        err = ENOMEM;
        goto fail;
    }
    for (unsigned i = 0; i < ns; i++)
        c->shards[i].fd = -1;
    for (unsigned i = 0; i < ns; i++)
        if ((err = shard_open(c, &c->shards[i], i, per)))
            goto fail;

    char pp[4096];
    snprintf(pp, sizeof(pp), "%s/pins", cf->dirs[0]);
    c->pins_path = strdup(pp);
    c->pins = calloc(PINS_MAX, sizeof(*c->pins));
    if (!c->pins_path || !c->pins) {
        err = ENOMEM;
        goto fail;
    }
    pins_load(c);


    c->pf_max = c->conf.fetch_max * 3 / 4 ? c->conf.fetch_max * 3 / 4 : 1;
    c->fetchers = calloc(c->conf.fetch_max, sizeof(*c->fetchers));
    if (!c->fetchers) {
        err = ENOMEM;
        goto fail;
    }
    for (unsigned i = 0; i < c->conf.fetch_max; i++) {
        if ((err = pthread_create(&c->fetchers[i], NULL, fetcher_main, c)))
            goto fail;
        c->nfetchers++;
    }
    if ((err = pthread_create(&c->cleaner, NULL, cleaner_main, c)))
        goto fail;
    c->cleaner_started = true;
    /* The index loads in the background: until a shard is loaded, its reads are misses. */
    c->loading = true;
    for (unsigned i = 0; i < LOAD_THREADS && i < ns; i++) {
        if ((err = pthread_create(&c->loaders[i], NULL, loader_main, c)))
            goto fail;
        c->nloaders++;
    }
    return c;

fail:
    cache_destroy(c);
    errno = err;
    return NULL;
}

void cache_destroy(struct cache *c)
{
    if (!c)
        return;
    for (unsigned i = 0; i < c->nloaders; i++)
        pthread_join(c->loaders[i], NULL);
    pthread_mutex_lock(&c->qlock);
    c->stop = true;
    pthread_cond_broadcast(&c->work);
    pthread_mutex_unlock(&c->qlock);
    for (unsigned i = 0; i < c->nfetchers; i++)
        pthread_join(c->fetchers[i], NULL);
    if (c->cleaner_started) {
        pthread_mutex_lock(&c->cleanlock);
        c->clean_stop = true;
        pthread_cond_signal(&c->clean_needed);
        pthread_mutex_unlock(&c->cleanlock);
        pthread_join(c->cleaner, NULL);
    }
    for (unsigned i = 0; c->shards && i < c->nshards; i++) {
        struct shard *sh = &c->shards[i];
        if (sh->regions && sh->fd >= 0) {
            /* Seal the open regions so that the next start reads summaries only. */
            pthread_mutex_lock(&sh->lock);
            for (int q = 0; q < 2; q++)
                if (sh->open[q] && sh->open[q]->count)
                    summary_write(c, sh, sh->open[q]);
            pthread_mutex_unlock(&sh->lock);
        }
        while (sh->chunks) {
            struct ent_chunk *next = sh->chunks->next;
            free(sh->chunks);
            sh->chunks = next;
        }
        free(sh->htab);
        free(sh->regions);
        free(sh->ghost);
        if (sh->fd >= 0)
            close(sh->fd);
        if (sh->regions || sh->fd >= 0) {
            pthread_mutex_destroy(&sh->lock);
        }
    }
    free(c->shards);
    free(c->fetchers);
    free(c->pins);
    free(c->pins_path);
    for (size_t i = 0; c->lock_fds && i < c->conf.ndirs; i++)
        if (c->lock_fds[i] >= 0)
            close(c->lock_fds[i]); /* last: the files are closed, another process may take them */
    free(c->lock_fds);
    free(c);
}

/* ---- insertion of known bytes ------------------------------------------ */

uint32_t cache_block_size(const struct cache *c)
{
    return c->bs;
}

int cache_insert(struct cache *c, const struct cache_obj *o, uint64_t off, const void *data,
                 size_t len)
{
    if (off % c->bs)
        return EINVAL;
    const char *p = data;
    int mode = o->noevict_when_full ? AP_NOEVICT : AP_NORMAL;
    for (uint64_t b = off / c->bs; off < o->size; b++, off += c->bs) {
        uint32_t blen = (uint32_t)(o->size - off < c->bs ? o->size - off : c->bs);
        if (len < blen)
            break; /* a partial block is not kept */
        struct cache_key k = key_of(c, o, b);
        int err = append(c, shard_of(c, &k), &k, p, blen, crc32c(p, blen), Q_S, 0, 0, mode, 0);
        if (err)
            return err;
        COUNT(c, o->export_id, inserted, 1);
        p += blen;
        len -= blen;
    }
    return 0;
}

/* ---- statistics -------------------------------------------------------- */

void cache_get_stats(struct cache *c, uint32_t export_id, struct cache_stats *out)
{
    memset(out, 0, sizeof(*out));
    struct counters *n = &c->total;
    if (export_id != UINT32_MAX) {
        n = NULL;
        for (unsigned i = 0; i < EXP_SLOTS && !n; i++)
            if (atomic_load(&c->exps[i].id) == export_id)
                n = &c->exps[i].n;
        if (!n)
            return;
    }
#define G(f) out->f = atomic_load_explicit(&n->f, memory_order_relaxed)
    G(hits); G(misses); G(bytes_hit); G(bytes_miss); G(gets); G(get_bytes); G(waits);
    G(ra_issued); G(ra_used); G(pf_issued); G(pf_used); G(pf_skipped); G(evictions);
    G(reinserted); G(not_admitted); G(corrupt); G(write_errors); G(stale); G(dropped);
    G(inserted);
#undef G
    if (export_id != UINT32_MAX)
        return;
    for (unsigned i = 0; i < c->nshards; i++) {
        struct shard *sh = &c->shards[i];
        pthread_mutex_lock(&sh->lock);
        if (sh->loaded) {
            out->blocks += sh->hcount;
            out->bytes += sh->bytes;
        }
        pthread_mutex_unlock(&sh->lock);
        struct stat st;
        if (fstat(sh->fd, &st) == 0)
            out->disk_bytes += (uint64_t)st.st_blocks * 512u;
    }
    struct stat st;
    if (c->pins_path && stat(c->pins_path, &st) == 0)
        out->disk_bytes += (uint64_t)st.st_blocks * 512u;
    out->capacity = c->conf.size;
    out->fetching = atomic_load(&c->fetching);
    pthread_mutex_lock(&c->ralock);
    out->ra_shrinks = c->ra_shrinks;
    pthread_mutex_unlock(&c->ralock);
    out->prefetch_bytes_inflight = atomic_load(&c->pf_bytes);
    pthread_mutex_lock(&c->cleanlock);
    out->load_usec = c->load_usec;
    out->loading = c->loading;
    pthread_mutex_unlock(&c->cleanlock);
}
