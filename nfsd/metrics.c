/*
 * metrics.c - the Prometheus endpoint (see metrics.h).
 *
 * One thread: poll on the listening socket and on an eventfd that
 * metrics_stop writes; each connection is served to the end before the
 * next is accepted (a scrape every few seconds needs no more), with
 * nonblocking I/O and a deadline of METRICS_IO_MS for the request and
 * another for the answer.  The request is read until its blank line, at
 * most METRICS_REQUEST_MAX bytes; only its request line is looked at.
 * The snapshot is taken for each scrape (opstats_collect never waits on
 * the store).  No locks of its own.
 */
#include "nfsd/metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "objstore/sbuf.h"

struct metrics_server {
    struct opstats_src src;
    int lfd, wakefd;
    pthread_t th;
    bool stopping; /* atomic */
};

/* ---- exposition ------------------------------------------------------- */

/* A label value with \, " and newline escaped (exposition format 0.0.4). */
static void add_label(struct sbuf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\')
            sbuf_adds(b, "\\\\");
        else if (*v == '"')
            sbuf_adds(b, "\\\"");
        else if (*v == '\n')
            sbuf_adds(b, "\\n");
        else
            sbuf_addc(b, *v);
    }
}

static void family(struct sbuf *b, const char *name, const char *type, const char *help)
{
    sbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One sample: name{label="value"} v (label NULL: no labels). */
static void sample(struct sbuf *b, const char *name, const char *label, const char *value,
                   uint64_t v)
{
    sbuf_adds(b, name);
    if (label) {
        sbuf_printf(b, "{%s=\"", label);
        add_label(b, value);
        sbuf_adds(b, "\"}");
    }
    sbuf_printf(b, " %" PRIu64 "\n", v);
}

/* The metric name of a cache field: bucketnfs_[export_]cache_<field>[_total]. */
static void cache_name(char *buf, size_t len, const struct opstats_field *f, bool per_export)
{
    snprintf(buf, len, "bucketnfs_%scache_%s%s", per_export ? "export_" : "", f->name,
             f->gauge ? "" : "_total");
}

static void render_cache(const struct opstats *s, struct sbuf *b)
{
    char name[96];
    for (size_t k = 0; k < opstats_ncache_fields; k++) {
        const struct opstats_field *f = &opstats_cache_fields[k];
        cache_name(name, sizeof(name), f, false);
        family(b, name, f->gauge ? "gauge" : "counter", f->help);
        sample(b, name, NULL, NULL, opstats_field_get(&s->cache, f));
    }
    for (size_t k = 0; k < opstats_ncache_fields; k++) {
        const struct opstats_field *f = &opstats_cache_fields[k];
        if (f->total_only)
            continue;
        cache_name(name, sizeof(name), f, true);
        family(b, name, f->gauge ? "gauge" : "counter", f->help);
        for (size_t i = 0; i < s->nexports; i++)
            sample(b, name, "export", s->exports[i].path,
                   opstats_field_get(&s->exports[i].cache, f));
    }
}

static void render_stores(const struct opstats *s, struct sbuf *b)
{
    /* Requests by type in one family; bytes, errors and retries in their own. */
    static const struct {
        const char *field, *type;
    } req[] = {{"heads", "head"},     {"gets", "get"},     {"lists", "list"},
               {"puts", "put"},       {"deletes", "delete"}, {"copies", "copy"},
               {"mp_ops", "multipart"}};
    static const struct {
        const char *field, *metric, *help;
    } other[] = {
        {"bytes_in", "bucketnfs_store_received_bytes_total", "Bytes received from the store."},
        {"bytes_out", "bucketnfs_store_sent_bytes_total", "Bytes sent to the store."},
        {"errors", "bucketnfs_store_errors_total", "Store requests that failed after their retries."},
        {"retries", "bucketnfs_store_retries_total", "Store requests retried."},
    };
    family(b, "bucketnfs_store_requests_total", "counter", "Object-store requests by type.");
    for (size_t i = 0; i < s->nstores; i++) {
        for (size_t r = 0; r < sizeof(req) / sizeof(req[0]); r++) {
            for (size_t k = 0; k < opstats_nstore_fields; k++) {
                const struct opstats_field *f = &opstats_store_fields[k];
                if (strcmp(f->name, req[r].field) != 0)
                    continue;
                sbuf_adds(b, "bucketnfs_store_requests_total{store=\"");
                add_label(b, s->stores[i].name);
                sbuf_printf(b, "\",type=\"%s\"} %" PRIu64 "\n", req[r].type,
                            opstats_field_get(&s->stores[i].st, f));
            }
        }
    }
    /* HTTP answers by status class (every attempt: retries show as 5xx or failed, then 2xx). */
    static const char *const cls[] = {"http_2xx", "http_3xx", "http_4xx", "http_5xx",
                                      "http_failed"};
    family(b, "bucketnfs_store_responses_total", "counter",
           "Object-store HTTP answers by status class (S3); class=\"none\": no answer.");
    for (size_t i = 0; i < s->nstores; i++) {
        for (size_t c = 0; c < sizeof(cls) / sizeof(cls[0]); c++) {
            for (size_t k = 0; k < opstats_nstore_fields; k++) {
                const struct opstats_field *f = &opstats_store_fields[k];
                if (strcmp(f->name, cls[c]) != 0)
                    continue;
                sbuf_adds(b, "bucketnfs_store_responses_total{store=\"");
                add_label(b, s->stores[i].name);
                sbuf_printf(b, "\",class=\"%s\"} %" PRIu64 "\n",
                            c == 4 ? "none" : cls[c] + 5, opstats_field_get(&s->stores[i].st, f));
            }
        }
    }
    for (size_t o = 0; o < sizeof(other) / sizeof(other[0]); o++) {
        family(b, other[o].metric, "counter", other[o].help);
        for (size_t k = 0; k < opstats_nstore_fields; k++) {
            const struct opstats_field *f = &opstats_store_fields[k];
            if (strcmp(f->name, other[o].field) != 0)
                continue;
            for (size_t i = 0; i < s->nstores; i++)
                sample(b, other[o].metric, "store", s->stores[i].name,
                       opstats_field_get(&s->stores[i].st, f));
        }
    }
}

/* Each store's health, each export's mounts and upload backoff, the clients connected. */
static void render_health(const struct opstats *s, struct sbuf *b)
{
    static const struct {
        const char *metric, *help;
    } hm[] = {
        {"bucketnfs_store_last_success_timestamp_seconds",
         "When a store call last got an answer (seconds since the epoch; 0: never)."},
        {"bucketnfs_store_last_error_timestamp_seconds",
         "When a store call last failed (seconds since the epoch; 0: never)."},
        {"bucketnfs_store_consecutive_errors",
         "Store calls failed since the last one that got an answer."},
        {"bucketnfs_store_requests_retrying",
         "Store requests waiting before another try now."},
    };
    for (size_t k = 0; k < sizeof(hm) / sizeof(hm[0]); k++) {
        family(b, hm[k].metric, "gauge", hm[k].help);
        for (size_t i = 0; i < s->nstores; i++) {
            const struct obj_health *h = &s->stores[i].health;
            uint64_t v = k == 0   ? (uint64_t)(h->last_ok_ns / 1000000000LL)
                         : k == 1 ? (uint64_t)(h->last_error_ns / 1000000000LL)
                         : k == 2 ? h->errors_in_a_row
                                  : h->retrying;
            sample(b, hm[k].metric, "store", s->stores[i].name, v);
        }
    }
    family(b, "bucketnfs_export_mounts", "gauge",
           "Entries of the mount list (MNT not yet undone by UMNT) in each export.");
    for (size_t i = 0; i < s->nexports; i++)
        sample(b, "bucketnfs_export_mounts", "export", s->exports[i].path, s->exports[i].mounts);
    family(b, "bucketnfs_export_upload_backoff_seconds", "gauge",
           "Seconds left before an export's uploads go again after store failures (0: not paused).");
    int64_t now_ns = s->time_sec * 1000000000LL;
    for (size_t i = 0; i < s->nexports; i++) {
        int64_t until = s->exports[i].backoff_until_ns;
        sample(b, "bucketnfs_export_upload_backoff_seconds", "export", s->exports[i].path,
               until > now_ns ? (uint64_t)((until - now_ns + 999999999LL) / 1000000000LL) : 0);
    }
    family(b, "bucketnfs_clients_connected", "gauge",
           "Client addresses with an RPC connection open now.");
    sample(b, "bucketnfs_clients_connected", NULL, NULL, s->nclients);
}

static void render_procs(struct sbuf *b, const char *metric, const char *help,
                         const struct rpc_proc_stat *p, uint32_t n)
{
    family(b, metric, "counter", help);
    for (uint32_t i = 0; i < n; i++)
        sample(b, metric, "proc", p[i].name, p[i].calls);
}

/* NFS call latency per procedure (a histogram) and replies by status. */
static void render_nfs3_calls(const struct opstats *s, struct sbuf *b)
{
    const struct nfs3_stats *n = &s->nfs3_calls;
    const char *h = "bucketnfs_nfs3_call_duration_seconds";
    family(b, h, "histogram",
           "NFS v3 calls by procedure and time from the call's arrival to its reply.");
    for (uint32_t i = 0; i < s->nnfs3; i++) {
        uint32_t p = s->nfs3[i].proc;
        if (p >= NFS3_NPROCS)
            continue;
        uint64_t cum = 0;
        for (size_t k = 0; k <= NFS3_LAT_BUCKETS; k++) {
            cum += n->lat[p][k];
            sbuf_printf(b, "%s_bucket{proc=\"", h);
            add_label(b, s->nfs3[i].name);
            if (k < NFS3_LAT_BUCKETS)
                sbuf_printf(b, "\",le=\"%g\"} %" PRIu64 "\n", nfs3_lat_bounds[k], cum);
            else
                sbuf_printf(b, "\",le=\"+Inf\"} %" PRIu64 "\n", cum);
        }
        sbuf_printf(b, "%s_sum{proc=\"", h);
        add_label(b, s->nfs3[i].name);
        sbuf_printf(b, "\"} %.9f\n", (double)n->lat_ns[p] / 1e9);
        sample(b, "bucketnfs_nfs3_call_duration_seconds_count", "proc", s->nfs3[i].name, cum);
    }
    family(b, "bucketnfs_nfs3_replies_total", "counter",
           "NFS v3 replies by status (NFS3_OK, or the error; NULL has none).");
    for (size_t i = 0; nfs3_status_name(i); i++)
        sample(b, "bucketnfs_nfs3_replies_total", "status", nfs3_status_name(i), n->status[i]);
}

void metrics_render(const struct opstats *s, struct sbuf *b)
{
    family(b, "bucketnfs_export_info", "gauge", "Exports served (value 1), with where they come from.");
    for (size_t i = 0; i < s->nexports; i++) {
        const struct opstats_export *e = &s->exports[i];
        sbuf_adds(b, "bucketnfs_export_info{export=\"");
        add_label(b, e->path);
        sbuf_adds(b, "\",store=\"");
        add_label(b, e->store);
        sbuf_adds(b, "\",bucket=\"");
        add_label(b, e->bucket);
        sbuf_printf(b, "\",access=\"%s\"} 1\n", e->rw ? "rw" : "ro");
    }
    render_procs(b, "bucketnfs_nfs3_calls_total", "NFS v3 calls by procedure.", s->nfs3,
                 s->nnfs3);
    render_procs(b, "bucketnfs_mount3_calls_total", "MOUNT v3 calls by procedure.", s->mount3,
                 s->nmount3);
    render_nfs3_calls(s, b);
    static const struct {
        const char *metric, *type, *help;
        size_t off;
    } rpc[] = {
        {"bucketnfs_rpc_calls_total", "counter", "RPC calls received.",
         offsetof(struct rpc_stats, calls)},
        {"bucketnfs_rpc_replies_total", "counter", "RPC replies sent.",
         offsetof(struct rpc_stats, replies)},
        {"bucketnfs_rpc_garbage_args_total", "counter", "Calls answered GARBAGE_ARGS.",
         offsetof(struct rpc_stats, garbage)},
        {"bucketnfs_rpc_bad_records_total", "counter", "Records that were not well-formed calls.",
         offsetof(struct rpc_stats, bad_records)},
        {"bucketnfs_rpc_connections", "gauge", "TCP connections open.",
         offsetof(struct rpc_stats, connections)},
        {"bucketnfs_rpc_inflight", "gauge", "Calls being served.",
         offsetof(struct rpc_stats, inflight)},
        {"bucketnfs_rpc_async_calls_total", "counter", "Calls answered asynchronously.",
         offsetof(struct rpc_stats, async_calls)},
        {"bucketnfs_rpc_async_pending", "gauge", "Asynchronous calls waiting on the store.",
         offsetof(struct rpc_stats, async_pending)},
    };
    for (size_t i = 0; i < sizeof(rpc) / sizeof(rpc[0]); i++) {
        family(b, rpc[i].metric, rpc[i].type, rpc[i].help);
        sample(b, rpc[i].metric, NULL, NULL,
               *(const uint64_t *)((const char *)&s->rpc + rpc[i].off));
    }
    render_cache(s, b);
    render_stores(s, b);
    render_health(s, b);
    family(b, "bucketnfs_inodes", "gauge", "Inodes in the inode table.");
    sample(b, "bucketnfs_inodes", NULL, NULL, s->inodes.inodes);
    family(b, "bucketnfs_inode_lists_total", "counter", "Directory listings made.");
    sample(b, "bucketnfs_inode_lists_total", NULL, NULL, s->inodes.lists);
    family(b, "bucketnfs_inode_list_entries_total", "counter", "Entries directory listings returned.");
    sample(b, "bucketnfs_inode_list_entries_total", NULL, NULL, s->inodes.list_entries);
    family(b, "bucketnfs_inode_heads_total", "counter", "HEADs made to check attributes.");
    sample(b, "bucketnfs_inode_heads_total", NULL, NULL, s->inodes.heads);
    int64_t oldest = s->wb.oldest_ns / 1000000000LL;
    const struct {
        const char *metric, *type, *help;
        uint64_t value;
    } wb[] = {
        {"bucketnfs_dirty_files", "gauge", "Files changed here and not yet uploaded.",
         s->wb.pending},
        {"bucketnfs_dirty_bytes", "gauge", "Bytes of written data waiting for upload (on disk).",
         s->stage.bytes},
        {"bucketnfs_dirty_max_bytes", "gauge", "cache.dirty_max: the bound on dirty bytes.",
         s->stage.max_bytes},
        {"bucketnfs_oldest_dirty_age_seconds", "gauge",
         "Age of the oldest change not yet uploaded (0: none).",
         s->wb.oldest_ns && s->time_sec > oldest ? (uint64_t)(s->time_sec - oldest) : 0},
        {"bucketnfs_uploads_total", "counter", "Objects written back to the bucket.",
         s->wb.uploads},
        {"bucketnfs_upload_bytes_total", "counter", "Bytes written back to the bucket.",
         s->wb.upload_bytes},
        {"bucketnfs_uploads_inflight", "gauge", "Uploads running now.", s->wb.inflight},
        {"bucketnfs_upload_failures_total", "counter", "Uploads that failed (retried later).",
         s->wb.failures},
        {"bucketnfs_upload_conflicts_total", "counter",
         "Objects changed in the bucket while they had local changes (the local version won).",
         s->wb.conflicts},
        {"bucketnfs_unwritable_files", "gauge",
         "Files whose written data cannot be read from the cache disk (deleted under the "
         "daemon): they cannot be written back.",
         s->wb.unwritable},
        {"bucketnfs_unwritable_files_total", "counter",
         "Files found whose written data could not be read from the cache disk.",
         s->wb.unwritable_total},
        {"bucketnfs_writes_over_limit_total", "counter",
         "Writes refused with NFS3ERR_JUKEBOX: dirty data at cache.dirty_max.",
         s->stage.over_limit},
    };
    for (size_t i = 0; i < sizeof(wb) / sizeof(wb[0]); i++) {
        family(b, wb[i].metric, wb[i].type, wb[i].help);
        sample(b, wb[i].metric, NULL, NULL, wb[i].value);
    }
    family(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    sample(b, "process_resident_memory_bytes", NULL, NULL, s->rss_bytes);
    family(b, "process_open_fds", "gauge", "Number of open file descriptors.");
    sample(b, "process_open_fds", NULL, NULL, s->open_fds);
    family(b, "process_start_time_seconds", "gauge", "Start time of the process since the epoch in seconds.");
    sample(b, "process_start_time_seconds", NULL, NULL, (uint64_t)s->start_time_sec);
}

/* ---- HTTP ------------------------------------------------------------- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for fd to be ready for `events` before deadline: 0 or ETIMEDOUT / errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - mono_ms();
        if (left <= 0)
            return ETIMEDOUT;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, (int)left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return errno;
    }
}

static void send_all(int fd, const char *buf, size_t len, int64_t deadline)
{
    size_t off = 0;
    while (off < len) {
        ssize_t k = send(fd, buf + off, len - off, MSG_NOSIGNAL);
        if (k > 0) {
            off += (size_t)k;
            continue;
        }
        if (k < 0 && errno != EAGAIN && errno != EINTR)
            return;
        if (wait_fd(fd, POLLOUT, deadline))
            return; /* the scraper does not read: give up */
    }
}

static void respond(int fd, int status, const char *reason, const char *ctype, const char *body,
                    size_t len, bool head, int64_t deadline)
{
    char hdr[256];
    int n = snprintf(hdr, sizeof(hdr),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, reason, ctype, len);
    send_all(fd, hdr, (size_t)n, deadline);
    if (!head)
        send_all(fd, body, len, deadline);
}

static void respond_text(int fd, int status, const char *reason, const char *text,
                         int64_t deadline)
{
    respond(fd, status, reason, "text/plain; charset=utf-8", text, strlen(text), false,
            deadline);
}

static void serve_conn(struct metrics_server *m, int fd)
{
    char req[METRICS_REQUEST_MAX + 1];
    size_t len = 0;
    int64_t deadline = mono_ms() + METRICS_IO_MS;

    /* The request head, up to its blank line. */
    for (;;) {
        if (len == METRICS_REQUEST_MAX) {
            respond_text(fd, 431, "Request Header Fields Too Large", "request too large\n",
                         mono_ms() + METRICS_IO_MS);
            return;
        }
        ssize_t k = recv(fd, req + len, METRICS_REQUEST_MAX - len, 0);
        if (k == 0)
            return;
        if (k < 0) {
            if (errno != EAGAIN && errno != EINTR)
                return;
            if (wait_fd(fd, POLLIN, deadline))
                return; /* slow or silent: drop it */
            continue;
        }
        len += (size_t)k;
        req[len] = '\0';
        if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
            break;
    }
    deadline = mono_ms() + METRICS_IO_MS;

    /* Request line: METHOD SP TARGET SP HTTP/1.x */
    char method[16], target[512], version[16];
    size_t eol = strcspn(req, "\r\n");
    req[eol] = '\0';
    if (sscanf(req, "%15s %511s %15s", method, target, version) != 3 ||
        strncmp(version, "HTTP/1.", 7) != 0) {
        respond_text(fd, 400, "Bad Request", "bad request\n", deadline);
        return;
    }
    bool head = strcmp(method, "HEAD") == 0;
    if (strcmp(method, "GET") != 0 && !head) {
        respond_text(fd, 405, "Method Not Allowed", "only GET\n", deadline);
        return;
    }
    size_t plen = strcspn(target, "?");
    if (plen != 8 || strncmp(target, "/metrics", 8) != 0) {
        respond_text(fd, 404, "Not Found", "not found: try /metrics\n", deadline);
        return;
    }
    struct opstats s;
    struct sbuf b = SBUF_INIT;
    int rc = opstats_collect(&m->src, &s);
    if (!rc) {
        metrics_render(&s, &b);
        rc = sbuf_err(&b);
    }
    opstats_free(&s);
    if (rc)
        respond_text(fd, 500, "Internal Server Error", "out of memory\n", deadline);
    else
        respond(fd, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", b.p ? b.p : "",
                b.len, head, deadline);
    sbuf_free(&b);
}

static void *metrics_main(void *arg)
{
    struct metrics_server *m = arg;
    while (!__atomic_load_n(&m->stopping, __ATOMIC_ACQUIRE)) {
        struct pollfd p[2] = {{.fd = m->lfd, .events = POLLIN}, {.fd = m->wakefd, .events = POLLIN}};
        int n = poll(p, 2, -1);
        if (n < 0 && errno != EINTR) {
            LOG_AT(LOG_ERR, "metrics: poll: %s", strerror(errno));
            break;
        }
        if (n <= 0 || !p[0].revents)
            continue;
        int fd = accept4(m->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
            continue;
        serve_conn(m, fd);
        close(fd);
    }
    return NULL;
}

/* Split "host:port" / "[v6]:port" into host and port strings. */
static int split_addr(const char *addr, char *host, size_t hlen, char *port, size_t plen)
{
    const char *colon;
    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');
        if (!end || end[1] != ':')
            return EINVAL;
        if ((size_t)(end - addr - 1) >= hlen)
            return ENAMETOOLONG;
        memcpy(host, addr + 1, (size_t)(end - addr - 1));
        host[end - addr - 1] = '\0';
        colon = end + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon)
            return EINVAL;
        if ((size_t)(colon - addr) >= hlen)
            return ENAMETOOLONG;
        memcpy(host, addr, (size_t)(colon - addr));
        host[colon - addr] = '\0';
    }
    if (snprintf(port, plen, "%s", colon + 1) >= (int)plen)
        return EINVAL;
    return 0;
}

struct metrics_server *metrics_start(const char *addr, const struct opstats_src *src,
                                     uint16_t *bound_port)
{
    struct metrics_server *m = calloc(1, sizeof(*m));
    char host[256], port[16];
    struct addrinfo *ai = NULL;
    int rc;
    if (!m)
        return NULL;
    m->src = *src;
    m->lfd = m->wakefd = -1;
    if ((rc = split_addr(addr, host, sizeof(host), port, sizeof(port)))) {
        LOG_AT(LOG_ERR, "metrics: \"%s\" is not address:port", addr);
        goto fail;
    }
    struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV,
                             .ai_socktype = SOCK_STREAM};
    int gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
    if (gai) {
        LOG_AT(LOG_ERR, "metrics: %s: %s", addr, gai_strerror(gai));
        rc = EINVAL;
        goto fail;
    }
    m->lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    m->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (m->lfd < 0 || m->wakefd < 0) {
        rc = errno;
        LOG_AT(LOG_ERR, "metrics: socket: %s", strerror(rc));
        goto fail;
    }
    int one = 1;
    setsockopt(m->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(m->lfd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(m->lfd, 16) != 0) {
        rc = errno;
        LOG_AT(LOG_ERR, "metrics: listen on %s: %s", addr, strerror(rc));
        goto fail;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(m->lfd, (struct sockaddr *)&ss, &sl) == 0 && bound_port)
        *bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                     : ((struct sockaddr_in *)&ss)->sin_port);
    if ((rc = pthread_create(&m->th, NULL, metrics_main, m))) {
        LOG_AT(LOG_ERR, "metrics: thread: %s", strerror(rc));
        goto fail;
    }
    freeaddrinfo(ai);
    return m;
fail:
    if (ai)
        freeaddrinfo(ai);
    if (m->lfd >= 0)
        close(m->lfd);
    if (m->wakefd >= 0)
        close(m->wakefd);
    free(m);
    errno = rc;
    return NULL;
}

void metrics_stop(struct metrics_server *m)
{
    if (!m)
        return;
    __atomic_store_n(&m->stopping, true, __ATOMIC_RELEASE);
    uint64_t one = 1;
    ssize_t k = write(m->wakefd, &one, sizeof(one));
    (void)k;
    pthread_join(m->th, NULL);
    close(m->lfd);
    close(m->wakefd);
    free(m);
}
