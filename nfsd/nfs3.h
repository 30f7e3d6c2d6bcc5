/*
 * nfs3.h - the NFS version 3 program (RFC 1813) served by bucketnfsd.
 */
#ifndef BNFS_NFS3_H
#define BNFS_NFS3_H

#include <stdint.h>

#include "meta/export.h"
#include "meta/fh.h"
#include "meta/inode.h"
#include "rpc/oncrpc.h"

#define NFS3_MAX_IO (1024u * 1024u) /* rtmax / wtmax advertised by FSINFO */
/* Reply buffers of READs waiting on the store, bytes at most (see nfs3_proc.c). */
#define NFS3_ASYNC_READ_MAX (256u << 20)

struct cache;
struct stage;
struct wb;
struct xfile;

#define NFS3_NPROCS 22      /* NULL .. COMMIT */
#define NFS3_LAT_BUCKETS 16 /* latency histogram: bounds in nfs3_lat_bounds, then +Inf */
#define NFS3_NSTATUS 30     /* reply statuses counted: NFS3_OK, the 28 errors, then any other */

/* What nfs3_observe counts (relaxed atomics; a snapshot is nfs3_get_stats). */
struct nfs3_counters {
    _Atomic uint64_t lat[NFS3_NPROCS][NFS3_LAT_BUCKETS + 1]; /* calls per bucket (not cumulative) */
    _Atomic uint64_t lat_ns[NFS3_NPROCS];                    /* their durations, summed */
    _Atomic uint64_t status[NFS3_NSTATUS];                   /* replies by status (nfs3_status_name) */
};

struct nfs3_server {
    struct inode_table *inodes;
    struct cache *cache;       /* file contents (READ, READLINK) */
    struct stage *stage;       /* bytes written here, not yet uploaded */
    struct wb *wb;             /* the uploader */
    uint64_t write_verf;       /* WRITE / COMMIT verifier: new at every start */
    struct xfile *xf;          /* cross-file prefetch (may be NULL) */
    _Atomic uint64_t async_read_bytes; /* reply buffers of READs parked on a fetch */
    struct fh_key *fh_key;
    struct export_ctx *exports;
    struct nfs3_counters counters; /* zeroed with the struct */
};

/* Fill p with the NFS v3 program served from srv. */
void nfs3_program(struct nfs3_server *srv, struct rpc_program *p);

/* The one place errno becomes nfsstat3 (see the table in nfs3_err.c). */
int nfs3_stat(int err);

/* ---- call statistics (nfs3_stats.c) ---- */

/* Upper bounds of the latency buckets, seconds, increasing (Prometheus `le`). */
extern const double nfs3_lat_bounds[NFS3_LAT_BUCKETS];

/* The name of status slot i ("NFS3_OK", "NFS3ERR_NOENT", ..., "other"); NULL past the end. */
const char *nfs3_status_name(size_t i);

/* A snapshot of srv->counters: the same arrays, plain. */
struct nfs3_stats {
    uint64_t lat[NFS3_NPROCS][NFS3_LAT_BUCKETS + 1];
    uint64_t lat_ns[NFS3_NPROCS];
    uint64_t status[NFS3_NSTATUS];
};
void nfs3_get_stats(const struct nfs3_server *srv, struct nfs3_stats *out);

/*
 * rpc_program.observe of the NFS program: one call of proc took nsec and
 * answered res.  Counts its latency and, but for NULL, its status (every
 * NFS v3 result starts with its nfsstat3).
 */
void nfs3_observe(void *ctx, uint32_t proc, const void *res, uint64_t nsec);

#endif
