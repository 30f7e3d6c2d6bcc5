/*
 * opstats.c - a snapshot of every counter (see opstats.h).
 *
 * Owns nothing but the snapshots it fills.  No locks of its own: it calls
 * the getters of each layer (cache_get_stats takes the shard locks in
 * turn, the others read relaxed atomics) and takes a reference on the
 * current export set while it copies it.  /proc/self is read for the
 * process figures; a /proc that cannot be read gives zeros, not an error.
 */
#include "nfsd/opstats.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/conf.h"
#include "meta/export.h"
#include "mount3_prot.h"
#include "nfs3_prot.h"

#define CC(f, h) {#f, offsetof(struct cache_stats, f), false, false, h}
#define CG(f, h) {#f, offsetof(struct cache_stats, f), true, true, h}
const struct opstats_field opstats_cache_fields[] = {
    CC(hits, "Block lookups of reads served from the cache."),
    CC(misses, "Block lookups of reads that had to fetch from the store."),
    CC(bytes_hit, "Bytes served from the cache."),
    CC(bytes_miss, "Bytes fetched from the store for readers."),
    CC(gets, "Store GETs issued by the cache (demand, read-ahead and prefetch)."),
    CC(get_bytes, "Bytes the cache's store GETs returned."),
    CC(waits, "Reads that joined a fetch already in flight."),
    CC(ra_issued, "Read-ahead blocks fetched."),
    CC(ra_used, "Read-ahead blocks later read."),
    CC(pf_issued, "Prefetch (cross-file) blocks fetched."),
    CC(pf_used, "Prefetch blocks later read."),
    CC(pf_skipped, "Read-ahead or prefetch not issued: the budget was spent."),
    CG(ra_shrinks, "Read-ahead windows halved because their blocks were evicted before use."),
    CC(evictions, "Blocks dropped by eviction."),
    CC(reinserted, "Blocks copied forward by eviction."),
    CC(not_admitted, "Blocks served but not kept (shuffle mode, full disk)."),
    CC(corrupt, "Blocks that failed their checksum (dropped, fetched again)."),
    CC(write_errors, "Cache disk writes that failed."),
    CC(stale, "Fetches refused by If-Match (the object changed)."),
    CC(dropped, "Blocks dropped on request (bucketnfs evict)."),
    CC(inserted, "Blocks of uploaded files kept from the stage (read back without a download)."),
    CG(blocks, "Blocks in the cache index."),
    CG(bytes, "Bytes of the blocks in the cache index."),
    CG(disk_bytes, "Bytes the cache files hold on disk."),
    CG(capacity, "Configured cache size in bytes."),
    CG(fetching, "Store fetches of the cache in flight."),
    CG(prefetch_bytes_inflight, "Read-ahead and prefetch bytes in flight."),
    CG(load_usec, "Microseconds the cache index took to load at start."),
    CG(loading, "1 while the cache index is still loading at start."),
};
const size_t opstats_ncache_fields = sizeof(opstats_cache_fields) / sizeof(opstats_cache_fields[0]);
_Static_assert(sizeof(struct cache_stats) == 29 * sizeof(uint64_t),
               "a cache_stats field is missing from opstats_cache_fields");

#define SF(f, h) {#f, offsetof(struct obj_stats, f), false, false, h}
const struct opstats_field opstats_store_fields[] = {
    SF(heads, "HEAD requests."),
    SF(gets, "GET requests."),
    SF(lists, "LIST requests."),
    SF(puts, "PUT requests."),
    SF(deletes, "DELETE requests."),
    SF(copies, "Server-side copies."),
    SF(mp_ops, "Multipart upload requests."),
    SF(bytes_in, "Bytes received from the store."),
    SF(bytes_out, "Bytes sent to the store."),
    SF(errors, "Requests that failed after their retries."),
    SF(retries, "Requests retried."),
    SF(http_2xx, "HTTP answers 2xx (S3)."),
    SF(http_3xx, "HTTP answers 3xx (S3)."),
    SF(http_4xx, "HTTP answers 4xx (S3)."),
    SF(http_5xx, "HTTP answers 5xx (S3)."),
    SF(http_failed, "Attempts without an HTTP answer (S3: refused, reset, timed out)."),
};
const size_t opstats_nstore_fields = sizeof(opstats_store_fields) / sizeof(opstats_store_fields[0]);
_Static_assert(sizeof(struct obj_stats) == 16 * sizeof(uint64_t),
               "an obj_stats field is missing from opstats_store_fields");

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

/* Resident set size from /proc/self/statm (second field, pages). */
static uint64_t proc_rss(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, rss = 0;
    if (!f)
        return 0;
    int n = fscanf(f, "%llu %llu", &size, &rss);
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return n == 2 && page > 0 ? rss * (uint64_t)page : 0;
}

/* Entries of /proc/self/fd, less the one opendir itself holds. */
static uint64_t proc_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    uint64_t n = 0;
    if (!d)
        return 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n ? n - 1 : 0;
}

/* Seconds from now to until_ns, rounded up (0: past or none). */
static uint64_t secs_left(int64_t until_ns, int64_t now_sec)
{
    int64_t now_ns = now_sec * 1000000000LL;
    return until_ns > now_ns ? (uint64_t)((until_ns - now_ns + 999999999LL) / 1000000000LL) : 0;
}

static void peer_text(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    const void *addr = ss->ss_family == AF_INET6
                           ? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
                           : (const void *)&((const struct sockaddr_in *)ss)->sin_addr;
    if (!inet_ntop(ss->ss_family, addr, buf, (socklen_t)len))
        snprintf(buf, len, "unknown");
}

/* The RPC connections open now, grouped by client address.  0 or ENOMEM. */
static int collect_clients(const struct opstats_src *src, struct opstats *out)
{
    size_t max = 64, n;
    struct rpc_conn_info *v = NULL;
    for (;;) {
        struct rpc_conn_info *nv = realloc(v, max * sizeof(*v));
        if (!nv) {
            free(v);
            return ENOMEM;
        }
        v = nv;
        n = rpc_server_get_conns(src->rpc, v, max);
        if (n <= max)
            break;
        max = n + 16; /* more came meanwhile: ask again with room for them */
    }
    out->clients = calloc(n ? n : 1, sizeof(*out->clients));
    if (!out->clients) {
        free(v);
        return ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        char host[sizeof(out->clients[0].host)];
        peer_text(&v[i].peer, host, sizeof(host));
        struct opstats_client *c = NULL;
        for (size_t k = 0; k < out->nclients && !c; k++)
            if (strcmp(out->clients[k].host, host) == 0)
                c = &out->clients[k];
        if (!c) {
            c = &out->clients[out->nclients++];
            memcpy(c->host, host, sizeof(c->host));
            c->idle_ms = UINT64_MAX;
        }
        c->connections++;
        c->calls += v[i].calls;
        if (v[i].idle_ms < c->idle_ms)
            c->idle_ms = v[i].idle_ms;
        if (v[i].age_ms > c->age_ms)
            c->age_ms = v[i].age_ms;
    }
    free(v);
    return 0;
}

/* The mount list, each entry with its export (set is the current export set).  0 or ENOMEM. */
static int collect_mounts(const struct opstats_src *src, const struct export_set *set,
                          struct opstats *out)
{
    struct mnt_listed *v;
    size_t n;
    if (!src->mnt)
        return 0;
    int rc = mnt_list_get(src->mnt, &v, &n);
    if (rc)
        return rc;
    out->mounts = calloc(n ? n : 1, sizeof(*out->mounts));
    if (!out->mounts) {
        mnt_list_free(v, n);
        return ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const struct export *e = export_for_mount_path(set, v[i].path, NULL);
        out->mounts[i].m = v[i]; /* takes the path */
        out->mounts[i].export_index = e ? (long)(e - set->v) : -1;
        if (e && (size_t)(e - set->v) < out->nexports)
            out->exports[e - set->v].mounts++;
    }
    out->nmounts = n;
    free(v); /* the paths now belong to out->mounts */
    return 0;
}

int opstats_collect(const struct opstats_src *src, struct opstats *out)
{
    memset(out, 0, sizeof(*out));
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    out->time_sec = now.tv_sec;
    out->start_time_sec = src->start_time_sec;

    cache_get_stats(src->cache, UINT32_MAX, &out->cache);
    if (src->nfs3)
        nfs3_get_stats(src->nfs3, &out->nfs3_calls);

    const struct export_set *set = export_set_get(src->exports);
    int rc = 0;
    out->exports = calloc(set->n ? set->n : 1, sizeof(*out->exports));
    if (!out->exports) {
        rc = ENOMEM;
        goto put;
    }
    for (size_t i = 0; i < set->n; i++) {
        const struct export *e = &set->v[i];
        struct opstats_export *o = &out->exports[i];
        out->nexports = i + 1;
        o->path = dup_or_empty(e->path);
        o->store = dup_or_empty(e->m.store ? e->m.store->name : "");
        o->bucket = dup_or_empty(e->m.bucket);
        o->prefix = dup_or_empty(e->m.prefix);
        if (!o->path || !o->store || !o->bucket || !o->prefix) {
            rc = ENOMEM;
            goto put;
        }
        o->rw = e->rw;
        o->id = e->m.id;
        cache_get_stats(src->cache, e->m.id, &o->cache);
        if (src->wb)
            wb_export_backoff(src->wb, e->m.id, &o->backoff_until_ns, &o->backoff_step_ns);
    }
    rc = collect_mounts(src, set, out);
put:
    export_set_put(src->exports, set);
    if (rc)
        return rc;

    size_t ns = export_ctx_nstores(src->exports);
    out->stores = calloc(ns ? ns : 1, sizeof(*out->stores));
    if (!out->stores)
        return ENOMEM;
    for (size_t i = 0; i < ns; i++) {
        struct objstore *s = export_ctx_store(src->exports, i);
        struct opstats_store *o = &out->stores[i];
        out->nstores = i + 1;
        o->name = dup_or_empty(s->name);
        if (!o->name)
            return ENOMEM;
        o->type = "?";
        if (i < src->conf->nstores)
            o->type = src->conf->stores[i].type == CONF_STORE_S3 ? "s3" : "dir";
        /* The backends update these with relaxed atomics: read them the same way. */
        for (size_t k = 0; k < opstats_nstore_fields; k++) {
            size_t off = opstats_store_fields[k].off;
            uint64_t *from = (uint64_t *)((char *)&s->stats + off);
            *(uint64_t *)((char *)&o->st + off) = __atomic_load_n(from, __ATOMIC_RELAXED);
        }
        obj_health_get(s, &o->health);
    }
    if ((rc = collect_clients(src, out)))
        return rc;

    inode_get_stats(src->inodes, &out->inodes);
    if (src->wb)
        wb_get_stats(src->wb, &out->wb);
    if (src->stage)
        stage_get_stats(src->stage, &out->stage);
    rpc_server_get_stats(src->rpc, &out->rpc);
    out->nnfs3 = rpc_server_get_proc_stats(src->rpc, NFS3_PROGRAM, NFS_V3, out->nfs3,
                                           OPSTATS_MAX_PROCS);
    out->nmount3 = rpc_server_get_proc_stats(src->rpc, MOUNT_PROGRAM, MOUNT_V3, out->mount3,
                                             OPSTATS_MAX_PROCS);
    out->rss_bytes = proc_rss();
    out->open_fds = proc_fds();
    return 0;
}

void opstats_free(struct opstats *s)
{
    for (size_t i = 0; i < s->nexports; i++) {
        free(s->exports[i].path);
        free(s->exports[i].store);
        free(s->exports[i].bucket);
        free(s->exports[i].prefix);
    }
    free(s->exports);
    for (size_t i = 0; i < s->nstores; i++)
        free(s->stores[i].name);
    free(s->stores);
    free(s->clients);
    for (size_t i = 0; i < s->nmounts; i++)
        free(s->mounts[i].m.path);
    free(s->mounts);
    memset(s, 0, sizeof(*s));
}

static int each_cache(const struct cache_stats *c, const char *instance, bool total,
                      opstats_fn fn, void *arg)
{
    for (size_t k = 0; k < opstats_ncache_fields; k++) {
        if (!total && opstats_cache_fields[k].total_only)
            continue;
        int rc = fn(arg, "cache", instance, opstats_cache_fields[k].name,
                    opstats_field_get(c, &opstats_cache_fields[k]));
        if (rc)
            return rc;
    }
    return 0;
}

int opstats_each(const struct opstats *s, opstats_fn fn, void *arg)
{
    int rc;
    if ((rc = each_cache(&s->cache, "total", true, fn, arg)))
        return rc;
    for (size_t i = 0; i < s->nexports; i++)
        if ((rc = each_cache(&s->exports[i].cache, s->exports[i].path, false, fn, arg)))
            return rc;
    for (size_t i = 0; i < s->nstores; i++) {
        const struct opstats_store *st = &s->stores[i];
        for (size_t k = 0; k < opstats_nstore_fields; k++)
            if ((rc = fn(arg, "store", st->name, opstats_store_fields[k].name,
                         opstats_field_get(&st->st, &opstats_store_fields[k]))))
                return rc;
        const struct {
            const char *name;
            uint64_t value;
        } health[] = {
            {"last_success_time", (uint64_t)(st->health.last_ok_ns / 1000000000LL)},
            {"last_error_time", (uint64_t)(st->health.last_error_ns / 1000000000LL)},
            {"last_error_status", (uint64_t)st->health.last_error_status},
            {"errors_in_a_row", st->health.errors_in_a_row},
            {"retrying", st->health.retrying},
        };
        for (size_t k = 0; k < sizeof(health) / sizeof(health[0]); k++)
            if ((rc = fn(arg, "store", st->name, health[k].name, health[k].value)))
                return rc;
    }
    for (size_t i = 0; i < s->nexports; i++) {
        const struct opstats_export *e = &s->exports[i];
        if ((rc = fn(arg, "export", e->path, "mounts", e->mounts)) ||
            (rc = fn(arg, "export", e->path, "upload_backoff_seconds",
                     secs_left(e->backoff_until_ns, s->time_sec))))
            return rc;
    }

    uint64_t up = s->time_sec > s->start_time_sec ? (uint64_t)(s->time_sec - s->start_time_sec) : 0;
    int64_t oldest = s->wb.oldest_ns / 1000000000LL;
    uint64_t dirty_age = s->wb.oldest_ns && s->time_sec > oldest ? (uint64_t)(s->time_sec - oldest) : 0;
    const struct {
        const char *section, *name;
        uint64_t value;
    } fixed[] = {
        {"inode", "inodes", s->inodes.inodes},
        {"inode", "lists", s->inodes.lists},
        {"inode", "list_entries", s->inodes.list_entries},
        {"inode", "heads", s->inodes.heads},
        {"inode", "sync_commits", s->inodes.sync_commits},
        {"inode", "moves_open", s->inodes.moves_open},
        {"inode", "moved", s->inodes.moved},
        {"inode", "heads_ahead", s->inodes.heads_ahead},
        {"inode", "heads_ahead_max_inflight", s->inodes.heads_ahead_max},
        {"inode", "heads_joined", s->inodes.heads_joined},
        {"writeback", "dirty_files", s->wb.pending},
        {"writeback", "dirty_bytes", s->stage.bytes},
        {"writeback", "dirty_max", s->stage.max_bytes},
        {"writeback", "oldest_dirty_seconds", dirty_age},
        {"writeback", "uploads", s->wb.uploads},
        {"writeback", "upload_bytes", s->wb.upload_bytes},
        {"writeback", "copied_bytes", s->wb.copied_bytes},
        {"writeback", "uploading", s->wb.inflight},
        {"writeback", "parts", s->wb.parts},
        {"writeback", "parts_resumed", s->wb.parts_resumed},
        {"writeback", "failures", s->wb.failures},
        {"writeback", "conflicts", s->wb.conflicts},
        {"writeback", "unwritable", s->wb.unwritable},
        {"writeback", "unwritable_total", s->wb.unwritable_total},
        {"writeback", "superseded", s->wb.superseded},
        {"writeback", "over_limit", s->stage.over_limit},
        {"writeback", "nospc", s->stage.nospc},
        {"writeback", "stage_syncs", s->stage.syncs},
        {"writeback", "stage_dir_syncs", s->stage.dir_syncs},
        {"rpc", "calls", s->rpc.calls},
        {"rpc", "replies", s->rpc.replies},
        {"rpc", "garbage", s->rpc.garbage},
        {"rpc", "bad_records", s->rpc.bad_records},
        {"rpc", "connections", s->rpc.connections},
        {"rpc", "inflight", s->rpc.inflight},
        {"rpc", "async_calls", s->rpc.async_calls},
        {"rpc", "async_pending", s->rpc.async_pending},
        {"rpc", "clients", s->nclients},
    };
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        if ((rc = fn(arg, fixed[i].section, "-", fixed[i].name, fixed[i].value)))
            return rc;
    for (uint32_t i = 0; i < s->nnfs3; i++)
        if ((rc = fn(arg, "nfs3", "-", s->nfs3[i].name, s->nfs3[i].calls)))
            return rc;
    for (uint32_t i = 0; i < s->nmount3; i++)
        if ((rc = fn(arg, "mount3", "-", s->mount3[i].name, s->mount3[i].calls)))
            return rc;
    for (size_t i = 0; nfs3_status_name(i); i++)
        if ((rc = fn(arg, "nfs3_status", "-", nfs3_status_name(i), s->nfs3_calls.status[i])))
            return rc;
    const struct {
        const char *name;
        uint64_t value;
    } proc[] = {
        {"rss_bytes", s->rss_bytes},
        {"open_fds", s->open_fds},
        {"start_time_seconds", (uint64_t)s->start_time_sec},
        {"uptime_seconds", up},
    };
    for (size_t i = 0; i < sizeof(proc) / sizeof(proc[0]); i++)
        if ((rc = fn(arg, "process", "-", proc[i].name, proc[i].value)))
            return rc;
    return 0;
}
