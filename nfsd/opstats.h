/*
 * opstats.h - one snapshot of every counter the daemon keeps, for the admin
 * socket (`bucketnfs stats`, `status`) and the Prometheus endpoint.
 *
 * A snapshot copies: the cache's totals and each export's share
 * (cache_get_stats), each store's obj_stats and health (its last error,
 * last answer, calls waiting to retry), the inode table's counters, the
 * RPC server's counters, its per-procedure call counts for NFS v3 and
 * MOUNT v3 and its open connections (grouped by client address), the
 * mount list (each entry with the export it falls in), each export's
 * upload backoff, and the process's resident memory and open descriptors
 * (from /proc/self).  Taking one costs what those getters cost (the cache
 * takes each shard lock briefly) and never waits on the object store, so
 * it may run beside the NFS service at any time.
 *
 * Contract: functions returning int return 0 or a positive errno.
 * Threads: opstats_collect is safe from many threads; a snapshot belongs
 * to its caller.
 */
#ifndef BNFS_OPSTATS_H
#define BNFS_OPSTATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"
#include "cache/stage.h"
#include "meta/inode.h"
#include "meta/writeback.h"
#include "mountd/mount3.h"
#include "nfsd/nfs3.h"
#include "objstore/objstore.h"
#include "rpc/oncrpc.h"

struct conf;
struct export_ctx;

/* Where the counters live (all required; they outlive every snapshot call). */
struct opstats_src {
    const struct conf *conf; /* store types (conf->stores parallels the export_ctx stores) */
    struct inode_table *inodes;
    struct export_ctx *exports;
    struct cache *cache;
    struct rpc_server *rpc;
    struct stage *stage;    /* written bytes not yet uploaded */
    struct wb *wb;          /* the uploader */
    struct mnt_server *mnt; /* the mount list (NULL: none) */
    const struct nfs3_server *nfs3; /* NFS call latencies and reply statuses (NULL: none) */
    int64_t start_time_sec; /* when the daemon started (CLOCK_REALTIME) */
};

struct opstats_export {
    char *path, *store, *bucket, *prefix;
    bool rw;
    uint32_t id;
    struct cache_stats cache; /* this export's share (index fields are totals only) */
    uint64_t mounts;          /* mount-list entries in this export */
    int64_t backoff_until_ns; /* uploads paused until (CLOCK_REALTIME; 0: not paused) */
    int64_t backoff_step_ns;  /* the current backoff step (0: none) */
};

/* The connections of one client address. */
struct opstats_client {
    char host[48];
    uint64_t connections;
    uint64_t calls;    /* calls its open connections brought */
    uint64_t idle_ms;  /* since its last call (the least over its connections) */
    uint64_t age_ms;   /* since its oldest open connection was made */
};

/* A mount-list entry and the export it falls in (-1: in none now, after a reload). */
struct opstats_mount {
    struct mnt_listed m;
    long export_index;
};

struct opstats_store {
    char *name;
    const char *type; /* "dir" or "s3" */
    struct obj_stats st;
    struct obj_health health;
};

#define OPSTATS_MAX_PROCS 32 /* NFS v3 has 22 procedures, MOUNT v3 6 */

struct opstats {
    int64_t time_sec;         /* when the snapshot was taken (CLOCK_REALTIME) */
    int64_t start_time_sec;   /* when the process started */
    struct cache_stats cache; /* totals */
    struct opstats_export *exports;
    size_t nexports;
    struct opstats_store *stores;
    size_t nstores;
    struct inode_stats inodes;
    struct wb_stats wb;
    struct stage_stats stage;
    struct rpc_stats rpc;
    struct rpc_proc_stat nfs3[OPSTATS_MAX_PROCS];
    uint32_t nnfs3;
    struct rpc_proc_stat mount3[OPSTATS_MAX_PROCS];
    uint32_t nmount3;
    struct nfs3_stats nfs3_calls; /* latency per procedure, replies by status (zeros: none) */
    struct opstats_client *clients; /* by address, in the order their connections were listed */
    size_t nclients;
    struct opstats_mount *mounts;
    size_t nmounts;
    uint64_t rss_bytes;       /* resident set size; 0 if /proc is not readable */
    uint64_t open_fds;        /* descriptors open; 0 if /proc is not readable */
};

/* Fill *out (free with opstats_free, also after an error).  ENOMEM. */
int opstats_collect(const struct opstats_src *src, struct opstats *out);
void opstats_free(struct opstats *s);

/*
 * Every counter of a snapshot, one call each, in a fixed order:
 *   section "cache"   instance "total" or an export path (an export: the
 *                     counters only, not the total_only fields)
 *   section "store"   instance the store's name (the counters, then its
 *                     health: last_success_time and last_error_time in
 *                     seconds since the epoch or 0, last_error_status,
 *                     errors_in_a_row, retrying)
 *   section "export"  instance an export path: mounts, upload_backoff_seconds
 *                     (left of the current pause; 0: none)
 *   section "inode", "writeback", "rpc", "nfs3", "mount3", "nfs3_status",
 *           "process"   instance "-" (rpc also has "clients": addresses
 *                     connected now)
 * name is the counter's name ("hits", "gets", a procedure name in nfs3 /
 * mount3, a status name such as "NFS3ERR_NOENT" in nfs3_status: replies).  Return non-zero from fn to stop; that value is returned.
 */
typedef int (*opstats_fn)(void *arg, const char *section, const char *instance,
                          const char *name, uint64_t value);
int opstats_each(const struct opstats *s, opstats_fn fn, void *arg);

/* The counters of a struct by name, in declaration order (for opstats_each and the metrics). */
struct opstats_field {
    const char *name;
    size_t off;
    bool gauge;      /* a level (bytes held, requests in flight), not a running count */
    bool total_only; /* cache_stats: kept for the whole cache, not per export */
    const char *help;
};
extern const struct opstats_field opstats_cache_fields[];
extern const size_t opstats_ncache_fields;
extern const struct opstats_field opstats_store_fields[]; /* struct obj_stats */
extern const size_t opstats_nstore_fields;

static inline uint64_t opstats_field_get(const void *base, const struct opstats_field *f)
{
    return *(const uint64_t *)((const char *)base + f->off);
}

#endif
