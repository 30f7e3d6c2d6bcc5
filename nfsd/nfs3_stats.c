/*
 * nfs3_stats.c - what the NFS v3 program's calls took and answered: a
 * latency histogram per procedure and a count per reply status, for the
 * Prometheus endpoint and `bucketnfs stats`.
 *
 * nfs3_observe runs once per call answered by a handler, on the thread
 * finishing the call (rpc_program.observe): four relaxed atomic adds, no
 * lock.  A snapshot reads the counters one by one, so it may see a call in
 * one counter and not yet in another; each counter only grows.
 */
#include "nfsd/nfs3.h"

#include <stdatomic.h>

#include "nfs3_prot.h"

/* From a cached READ (tens of microseconds) to a store that is slow to answer. */
const double nfs3_lat_bounds[NFS3_LAT_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,     10,
};

static const struct {
    int stat;
    const char *name;
} statuses[NFS3_NSTATUS - 1] = {
    {NFS3_OK, "NFS3_OK"},
    {NFS3ERR_PERM, "NFS3ERR_PERM"},
    {NFS3ERR_NOENT, "NFS3ERR_NOENT"},
    {NFS3ERR_IO, "NFS3ERR_IO"},
    {NFS3ERR_NXIO, "NFS3ERR_NXIO"},
    {NFS3ERR_ACCES, "NFS3ERR_ACCES"},
    {NFS3ERR_EXIST, "NFS3ERR_EXIST"},
    {NFS3ERR_XDEV, "NFS3ERR_XDEV"},
    {NFS3ERR_NODEV, "NFS3ERR_NODEV"},
    {NFS3ERR_NOTDIR, "NFS3ERR_NOTDIR"},
    {NFS3ERR_ISDIR, "NFS3ERR_ISDIR"},
    {NFS3ERR_INVAL, "NFS3ERR_INVAL"},
    {NFS3ERR_FBIG, "NFS3ERR_FBIG"},
    {NFS3ERR_NOSPC, "NFS3ERR_NOSPC"},
    {NFS3ERR_ROFS, "NFS3ERR_ROFS"},
    {NFS3ERR_MLINK, "NFS3ERR_MLINK"},
    {NFS3ERR_NAMETOOLONG, "NFS3ERR_NAMETOOLONG"},
    {NFS3ERR_NOTEMPTY, "NFS3ERR_NOTEMPTY"},
    {NFS3ERR_DQUOT, "NFS3ERR_DQUOT"},
    {NFS3ERR_STALE, "NFS3ERR_STALE"},
    {NFS3ERR_REMOTE, "NFS3ERR_REMOTE"},
    {NFS3ERR_BADHANDLE, "NFS3ERR_BADHANDLE"},
    {NFS3ERR_NOT_SYNC, "NFS3ERR_NOT_SYNC"},
    {NFS3ERR_BAD_COOKIE, "NFS3ERR_BAD_COOKIE"},
    {NFS3ERR_NOTSUPP, "NFS3ERR_NOTSUPP"},
    {NFS3ERR_TOOSMALL, "NFS3ERR_TOOSMALL"},
    {NFS3ERR_SERVERFAULT, "NFS3ERR_SERVERFAULT"},
    {NFS3ERR_BADTYPE, "NFS3ERR_BADTYPE"},
    {NFS3ERR_JUKEBOX, "NFS3ERR_JUKEBOX"},
};

const char *nfs3_status_name(size_t i)
{
    if (i < NFS3_NSTATUS - 1)
        return statuses[i].name;
    return i == NFS3_NSTATUS - 1 ? "other" : NULL;
}

static size_t status_slot(int stat)
{
    for (size_t i = 0; i < NFS3_NSTATUS - 1; i++)
        if (statuses[i].stat == stat)
            return i;
    return NFS3_NSTATUS - 1;
}

void nfs3_observe(void *ctx, uint32_t proc, const void *res, uint64_t nsec)
{
    struct nfs3_counters *n = &((struct nfs3_server *)ctx)->counters;
    if (proc >= NFS3_NPROCS)
        return;
    size_t b = 0;
    while (b < NFS3_LAT_BUCKETS && (double)nsec > nfs3_lat_bounds[b] * 1e9)
        b++;
    atomic_fetch_add_explicit(&n->lat[proc][b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&n->lat_ns[proc], nsec, memory_order_relaxed);
    if (proc != NFSPROC3_NULL && res)
        atomic_fetch_add_explicit(&n->status[status_slot(*(const nfsstat3 *)res)], 1,
                                  memory_order_relaxed);
}

void nfs3_get_stats(const struct nfs3_server *srv, struct nfs3_stats *out)
{
    const struct nfs3_counters *n = &srv->counters;
    for (size_t p = 0; p < NFS3_NPROCS; p++) {
        for (size_t b = 0; b <= NFS3_LAT_BUCKETS; b++)
            out->lat[p][b] = atomic_load_explicit(&n->lat[p][b], memory_order_relaxed);
        out->lat_ns[p] = atomic_load_explicit(&n->lat_ns[p], memory_order_relaxed);
    }
    for (size_t i = 0; i < NFS3_NSTATUS; i++)
        out->status[i] = atomic_load_explicit(&n->status[i], memory_order_relaxed);
}
