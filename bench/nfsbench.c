/*
 * nfsbench.c - NFSv3 metadata, read and write benchmark.
 *
 * What it measures (one "key value" line per result on stdout, so scripts
 * can compare servers; diagnostics go to stderr):
 *
 *   getattr   GETATTR round-robin over the regular files of one directory
 *   lookup    LOOKUP of those files' names in that directory (all hits)
 *   readdirplus  full listing of a large directory, cookie by cookie:
 *             entries/s over whole passes, and each call's latency
 *   read      sequential READ of one large file, wrapping at EOF
 *   seqread, randread, multiread, smallfiles
 *             reads over several connections (-C), as nconnect mounts
 *             make them: see "multi-connection tests" below
 *   seqwrite, smallcreate
 *             WRITEs over several connections: large files written
 *             sequentially with COMMITs, and small files each CREATEd,
 *             written and COMMITted: see "write tests" below
 *
 * getattr and lookup run twice: with `depth` requests in flight on the one
 * connection (the Linux client multiplexes a mount over a single socket the
 * same way) and with one in flight, which is the latency a single process
 * sees.  READDIRPLUS is inherently one at a time: each call needs the cookie
 * the previous reply ended on.  Its sizes follow Linux (fs/nfs/client.c and
 * nfs3xdr.c since 5.18): maxcount is the server's FSINFO dtpref rounded down
 * to a power of two and capped at rtmax and 1 MiB, dircount is maxcount / 8;
 * -M forces a maxcount.
 *
 * Everything is bounded: each test stops issuing after `seconds` or
 * `max_ops`, requests still in flight must come back within
 * BENCH_DRAIN_SECONDS, a READDIRPLUS pass is abandoned after 3 x `seconds`
 * or BENCH_PASS_MIN_SECONDS, whichever is longer (the first listing of a
 * cold server is the slow one, and warm-up runs use short `seconds`),
 * and setup calls time out after BENCH_SETUP_SECONDS.  A timeout or any NFS
 * error ends the program with exit status 1: a number measured over errors
 * would be a lie.
 *
 * The client is libnfs's raw RPC layer driven by poll(2): the MOUNT call
 * is made on its own connection (explicit port, no portmapper), then all
 * NFS calls go over a second one.  Single-threaded; all state lives in
 * struct bench, which outlives the RPC context so that callbacks for
 * requests cancelled at teardown still find their slots.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* libnfs.h first: the raw headers use its EXTERN and rpc_cb. */
#include <nfsc/libnfs.h>

#include <nfsc/libnfs-raw-mount.h>
#include <nfsc/libnfs-raw-nfs.h>
#include <nfsc/libnfs-raw.h>

#define BENCH_MAX_DEPTH        256
#define BENCH_FH_MAX           64             /* NFS3_FHSIZE, RFC 1813 section 2.4 */
#define BENCH_LAT_BUCKETS      100000         /* 1 us buckets: exact up to 100 ms */
#define BENCH_SLOW_BUCKETS     10000          /* then 1 ms buckets: up to 10.1 s */
#define BENCH_DRAIN_SECONDS    10.0           /* in-flight replies due after the deadline */
#define BENCH_SETUP_SECONDS    30.0           /* MOUNT, LOOKUP, FSINFO during setup */
#define BENCH_PASS_MIN_SECONDS 60.0           /* a cold first listing may be slow */
#define BENCH_MAX_IO           (1024u * 1024) /* Linux NFS_MAX_FILE_IO_SIZE */
#define BENCH_MIN_IO           1024u          /* Linux NFS_MIN_FILE_IO_SIZE */
#define BENCH_DEF_IO           4096u          /* Linux NFS_DEF_FILE_IO_SIZE */
#define BENCH_MAX_CONNS        16             /* Linux nconnect allows 16 */

/*
 * libnfs decodes replies into memory that is only 4-byte aligned (its
 * zdr allocator), so structures holding 64-bit fields are misaligned.
 * Harmless on the machines this runs on, but UBSan builds abort on it:
 * functions reading decoded replies opt out of that one check.
 */
#define BENCH_READS_LIBNFS_REPLY __attribute__((no_sanitize("alignment")))

struct bench_conf {
    const char *server;
    int nfs_port;
    int mount_port;
    const char *export_path;
    unsigned depth;          /* requests in flight for getattr/lookup */
    unsigned read_depth;     /* requests in flight for read */
    double seconds;          /* per test */
    uint64_t max_ops;        /* per test */
    const char *files_dir;   /* relative to the export root */
    unsigned max_files;      /* how many of its files to use */
    const char *big_dir;     /* relative to the export root */
    uint64_t expect_entries; /* 0: do not check */
    unsigned passes;         /* READDIRPLUS passes at most */
    uint32_t rdp_maxcount;   /* 0: like Linux, from FSINFO */
    const char *big_file;    /* relative to the export root */
    const char *tests;       /* comma-separated test names */
    unsigned conns;          /* connections of the multi-connection tests */
    bool once;               /* seqread: one pass, stop at EOF */
    uint32_t rand_io;        /* randread request size */
    unsigned streams;        /* multiread: files read at once */
    unsigned stream_depth;   /* multiread: requests in flight per file */
    const char *write_dir;   /* seqwrite, smallcreate: where their directory goes */
    uint64_t write_bytes;    /* seqwrite: bytes per file at most (0: -t decides) */
    uint32_t create_min;     /* smallcreate: file sizes, bytes */
    uint32_t create_max;
    bool keep; /* keep what the write tests made */
};

enum bench_op { BENCH_GETATTR, BENCH_LOOKUP, BENCH_READ };

struct bench;
struct bench_run;

/* One request slot: at most one request in flight per slot. */
struct bench_slot {
    struct bench_run *run;
    double t0;
};

/* State of one pipelined test (getattr, lookup, read). */
struct bench_run {
    struct bench *b;
    enum bench_op op;
    unsigned depth;
    uint64_t max_ops;
    double deadline; /* no new request after this */
    bool stop;
    int err; /* first failure: 0 or a positive errno */
    uint64_t issued;
    uint64_t completed;
    unsigned inflight;
    double t_start;
    double t_last;  /* time of the last completion */
    uint64_t bytes; /* READ payload received */
    uint64_t next_offset;
    uint64_t file_size;
    uint32_t io_size;
    uint32_t *lat;     /* BENCH_LAT_BUCKETS counters, 1 us each, then
                          BENCH_SLOW_BUCKETS counters, 1 ms each */
    uint64_t lat_over; /* completions slower than the histogram */
    struct bench_slot slots[BENCH_MAX_DEPTH];
};

/* What a READDIRPLUS pass collects. */
struct bench_listing {
    bool done;
    int err;
    bool eof;
    cookie3 cookie;
    cookieverf3 verf;
    uint64_t entries; /* excluding "." and ".." */
    uint64_t calls;
    /* when timing (the readdirplus test): each call's latency, histogram as bench_run's */
    uint32_t *lat;
    uint64_t lat_over;
    double lat_max; /* seconds */
    /* when collecting (setup of getattr/lookup): regular files only */
    bool collect;
    unsigned max_names;
    unsigned nnames;
    char **names;
    nfs_fh3 *fhs;    /* data_len 0 when the server sent no handle */
    uint64_t *sizes; /* from the entry's attributes */
};

/* A synchronous setup call: connect, MNT, LOOKUP, GETATTR, FSINFO. */
struct bench_call {
    bool done;
    int err;
    nfs_fh3 fh;      /* MNT, LOOKUP result (owned) */
    uint64_t size;   /* LOOKUP: object size when attributes came back */
    uint32_t rtmax;  /* FSINFO */
    uint32_t dtpref; /* FSINFO */
    uint32_t wtmax;  /* FSINFO */
    uint32_t wtpref; /* FSINFO */
};

struct bench {
    struct bench_conf conf;
    struct rpc_context *rpc;
    nfs_fh3 root;
    uint32_t rtmax;
    uint32_t dtpref;
    uint32_t wtmax;
    uint32_t wtpref;
    nfs_fh3 files_fh; /* the directory of getattr/lookup */
    unsigned nfiles;
    char **names;
    nfs_fh3 *fhs;
    uint64_t *sizes;
    /*
     * State of the request in flight, kept here rather than on the stack:
     * after a timeout the request is still queued, and rpc_destroy_context
     * calls it back (cancelled) long after the caller has returned.
     */
    struct bench_call call;       /* setup calls, one at a time */
    struct bench_listing listing; /* READDIRPLUS, one call at a time */
    struct bench_run run;         /* pipelined tests */
};

static double bench_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* NFS3 status codes below 10000 are errno values (RFC 1813 section 2.6). */
static int bench_nfs_errno(nfsstat3 status)
{
    return (int)status < 10000 ? (int)status : EIO;
}

/*
 * Copy a handle received from the server into `dst` (caller frees
 * dst->data.data_val).  Returns 0, EPROTO for a handle longer than the
 * protocol allows, or ENOMEM.
 */
BENCH_READS_LIBNFS_REPLY
static int bench_fh_copy(nfs_fh3 *dst, const nfs_fh3 *src)
{
    if (src->data.data_len == 0 || src->data.data_len > BENCH_FH_MAX)
        return EPROTO;
    dst->data.data_val = malloc(src->data.data_len);
    if (dst->data.data_val == NULL)
        return ENOMEM;
    memcpy(dst->data.data_val, src->data.data_val, src->data.data_len);
    dst->data.data_len = src->data.data_len;
    return 0;
}

static void bench_fh_free(nfs_fh3 *fh)
{
    free(fh->data.data_val);
    fh->data.data_val = NULL;
    fh->data.data_len = 0;
}

/* Service `n` connections once (at most 100 ms).  Returns 0 or errno. */
static int bench_poll_conns(struct rpc_context *const *rpc, unsigned n)
{
    struct pollfd pfd[BENCH_MAX_CONNS];
    unsigned i;
    int ready;

    for (i = 0; i < n; i++)
        pfd[i] =
            (struct pollfd){.fd = rpc_get_fd(rpc[i]), .events = (short)rpc_which_events(rpc[i])};
    ready = poll(pfd, n, 100);
    if (ready < 0)
        return errno == EINTR ? 0 : errno;
    for (i = 0; i < n; i++) {
        if (rpc_service(rpc[i], ready > 0 ? pfd[i].revents : 0) < 0) {
            fprintf(stderr, "nfsbench: connection %u failed: %s\n", i, rpc_get_error(rpc[i]));
            return ECONNRESET;
        }
    }
    return 0;
}

/*
 * Service `n` connections until *inflight drops to 0, setting *stop once
 * `deadline` has passed (no new requests after it).  Gives up at `hard`.
 * Returns 0 or errno.
 */
static int bench_drain(struct rpc_context *const *rpc, unsigned n, const unsigned *inflight,
                       bool *stop, double deadline, double hard)
{
    while (*inflight > 0) {
        double t = bench_now();
        int err;

        if (t > deadline)
            *stop = true;
        if (t > hard) {
            fprintf(stderr, "nfsbench: %u requests unanswered %.0f s after the deadline\n",
                    *inflight, hard - deadline);
            return ETIMEDOUT;
        }
        err = bench_poll_conns(rpc, n);
        if (err)
            return err;
    }
    return 0;
}

/* Service the one connection once (at most 100 ms).  Returns 0 or errno. */
static int bench_poll_once(struct rpc_context *rpc)
{
    return bench_poll_conns(&rpc, 1);
}

/* Run the connection until *done or `timeout` seconds.  Returns 0 or errno. */
static int bench_wait(struct rpc_context *rpc, const bool *done, double timeout)
{
    double deadline = bench_now() + timeout;
    int err;

    while (!*done) {
        if (bench_now() > deadline)
            return ETIMEDOUT;
        err = bench_poll_once(rpc);
        if (err)
            return err;
    }
    return 0;
}

static void bench_connect_cb(struct rpc_context *rpc, int status, void *data, void *priv)
{
    struct bench_call *c = priv;

    if (status != RPC_STATUS_SUCCESS) {
        fprintf(stderr, "nfsbench: connect: %s\n",
                status == RPC_STATUS_ERROR ? (char *)data : "cancelled");
        c->err = ECONNREFUSED;
    }
    c->done = true;
}

/* Connect `rpc` to server:port for program/version.  Returns 0 or errno. */
static int bench_connect(struct bench *b, struct rpc_context *rpc, int port, int prog, int vers)
{
    struct bench_call *c = &b->call;
    int err;

    memset(c, 0, sizeof(*c));
    if (rpc_connect_port_async(rpc, b->conf.server, port, prog, vers, bench_connect_cb, c) != 0) {
        fprintf(stderr, "nfsbench: connect %s:%d: %s\n", b->conf.server, port, rpc_get_error(rpc));
        return ECONNREFUSED;
    }
    err = bench_wait(rpc, &c->done, BENCH_SETUP_SECONDS);
    return err ? err : c->err;
}

BENCH_READS_LIBNFS_REPLY
static void bench_mnt_cb(struct rpc_context *rpc, int status, void *data, void *priv)
{
    struct bench_call *c = priv;
    mountres3 *res = data;

    c->done = true;
    if (status != RPC_STATUS_SUCCESS) {
        fprintf(stderr, "nfsbench: MNT: %s\n",
                status == RPC_STATUS_ERROR ? (char *)data : "cancelled");
        c->err = EIO;
        return;
    }
    if (res->fhs_status != MNT3_OK) {
        fprintf(stderr, "nfsbench: MNT refused: status %d\n", (int)res->fhs_status);
        c->err = (int)res->fhs_status < 10000 ? (int)res->fhs_status : EIO;
        return;
    }
    {
        nfs_fh3 fh = {.data = {.data_len = res->mountres3_u.mountinfo.fhandle.fhandle3_len,
                               .data_val = res->mountres3_u.mountinfo.fhandle.fhandle3_val}};
        c->err = bench_fh_copy(&c->fh, &fh);
    }
}

/*
 * Ask the MOUNT service for the export's root handle, on a connection of
 * its own that is closed afterwards.  Returns 0 or errno.
 */
static int bench_mount(struct bench *b)
{
    struct rpc_context *mrpc = rpc_init_context();
    struct bench_call *c = &b->call;
    int err;

    if (mrpc == NULL)
        return ENOMEM;
    err = bench_connect(b, mrpc, b->conf.mount_port, MOUNT_PROGRAM, MOUNT_V3);
    if (err)
        goto out;
    memset(c, 0, sizeof(*c));
    if (rpc_mount3_mnt_async(mrpc, bench_mnt_cb, (char *)b->conf.export_path, c) != 0) {
        err = EIO;
        goto out;
    }
    err = bench_wait(mrpc, &c->done, BENCH_SETUP_SECONDS);
    if (err == 0)
        err = c->err;
    if (err == 0) {
        b->root = c->fh;
        c->fh.data.data_val = NULL;
    }
out:
    rpc_destroy_context(mrpc);
    return err;
}

BENCH_READS_LIBNFS_REPLY
static void bench_fsinfo_cb(struct rpc_context *rpc, int status, void *data, void *priv)
{
    struct bench_call *c = priv;
    FSINFO3res *res = data;

    c->done = true;
    if (status != RPC_STATUS_SUCCESS) {
        c->err = EIO;
        return;
    }
    if (res->status != NFS3_OK) {
        c->err = bench_nfs_errno(res->status);
        return;
    }
    c->rtmax = res->FSINFO3res_u.resok.rtmax;
    c->wtmax = res->FSINFO3res_u.resok.wtmax;
    c->wtpref = res->FSINFO3res_u.resok.wtpref;
    c->dtpref = res->FSINFO3res_u.resok.dtpref;
}

static int bench_fsinfo(struct bench *b)
{
    struct bench_call *c = &b->call;
    FSINFO3args args = {.fsroot = b->root};
    int err;

    memset(c, 0, sizeof(*c));
    if (rpc_nfs3_fsinfo_async(b->rpc, bench_fsinfo_cb, &args, c) != 0)
        return EIO;
    err = bench_wait(b->rpc, &c->done, BENCH_SETUP_SECONDS);
    if (err == 0)
        err = c->err;
    if (err)
        return err;
    b->rtmax = c->rtmax;
    b->dtpref = c->dtpref;
    b->wtmax = c->wtmax;
    b->wtpref = c->wtpref;
    return 0;
}

BENCH_READS_LIBNFS_REPLY
static void bench_lookup_cb(struct rpc_context *rpc, int status, void *data, void *priv)
{
    struct bench_call *c = priv;
    LOOKUP3res *res = data;

    c->done = true;
    if (status != RPC_STATUS_SUCCESS) {
        c->err = EIO;
        return;
    }
    if (res->status != NFS3_OK) {
        c->err = bench_nfs_errno(res->status);
        return;
    }
    if (res->LOOKUP3res_u.resok.obj_attributes.attributes_follow)
        c->size = res->LOOKUP3res_u.resok.obj_attributes.post_op_attr_u.attributes.size;
    c->err = bench_fh_copy(&c->fh, &res->LOOKUP3res_u.resok.object);
}

/* LOOKUP one name in `dir`; on success *out is a new handle.  0 or errno. */
static int bench_lookup(struct bench *b, const nfs_fh3 *dir, const char *name, nfs_fh3 *out,
                        uint64_t *size)
{
    struct bench_call *c = &b->call;
    LOOKUP3args args = {.what = {.dir = *dir, .name = (char *)name}};
    int err;

    memset(c, 0, sizeof(*c));
    if (rpc_nfs3_lookup_async(b->rpc, bench_lookup_cb, &args, c) != 0)
        return EIO;
    err = bench_wait(b->rpc, &c->done, BENCH_SETUP_SECONDS);
    if (err == 0)
        err = c->err;
    if (err) {
        /* Still queued after a timeout: the handle, if any, is freed at exit. */
        if (c->done)
            bench_fh_free(&c->fh);
        return err;
    }
    *out = c->fh;
    c->fh.data.data_val = NULL;
    c->fh.data.data_len = 0;
    if (size != NULL)
        *size = c->size;
    return 0;
}

/*
 * Resolve a '/'-separated path relative to the export root, one LOOKUP per
 * component.  "" or "." is the root itself.  Returns 0 or errno; *out is a
 * new handle.
 */
static int bench_resolve(struct bench *b, const char *path, nfs_fh3 *out, uint64_t *size)
{
    char comp[256];
    nfs_fh3 cur = {0}, next = {0};
    const char *p = path;
    int err;

    err = bench_fh_copy(&cur, &b->root);
    if (err)
        return err;
    while (*p != '\0') {
        size_t len = strcspn(p, "/");

        if (len >= sizeof(comp)) {
            err = ENAMETOOLONG;
            goto fail;
        }
        if (len > 0 && !(len == 1 && p[0] == '.')) {
            memcpy(comp, p, len);
            comp[len] = '\0';
            err = bench_lookup(b, &cur, comp, &next, size);
            if (err) {
                fprintf(stderr, "nfsbench: LOOKUP %s in %s: %s\n", comp, path, strerror(err));
                goto fail;
            }
            bench_fh_free(&cur);
            cur = next;
        }
        p += len;
        if (*p == '/')
            p++;
    }
    *out = cur;
    return 0;
fail:
    bench_fh_free(&cur);
    return err;
}

/*
 * The end of a setup call's callback: marks it done and records a failed
 * RPC or NFS status in c->err.  Every NFSv3 result starts with its
 * nfsstat3.  Returns 0 when the call succeeded.
 */
BENCH_READS_LIBNFS_REPLY
static int bench_call_status(struct bench_call *c, int status, void *data, const char *what)
{
    nfsstat3 st;

    c->done = true;
    if (status != RPC_STATUS_SUCCESS) {
        fprintf(stderr, "nfsbench: %s: %s\n", what,
                status == RPC_STATUS_ERROR ? (char *)data : "cancelled");
        return c->err = EIO;
    }
    st = *(nfsstat3 *)data;
    if (st != NFS3_OK) {
        fprintf(stderr, "nfsbench: %s: NFS error %d\n", what, (int)st);
        return c->err = bench_nfs_errno(st);
    }
    return 0;
}

/* Keep the handle a CREATE or MKDIR returned in c->fh.  0 or errno. */
BENCH_READS_LIBNFS_REPLY
static int bench_call_handle(struct bench_call *c, const post_op_fh3 *obj)
{
    if (!obj->handle_follows) {
        fprintf(stderr, "nfsbench: the server returned no handle for a new object\n");
        return EPROTO;
    }
    return bench_fh_copy(&c->fh, &obj->post_op_fh3_u.handle);
}

BENCH_READS_LIBNFS_REPLY
static void bench_create_cb(struct rpc_context *rpc, int status, void *data, void *priv)
{
    struct bench_call *c = priv;

    if (bench_call_status(c, status, data, "CREATE") == 0)
        c->err = bench_call_handle(c, &((CREATE3res *)data)->CREATE3res_u.resok.obj);
}

BENCH_READS_LIBNFS_REPLY
static void bench_mkdir_cb(struct rpc_context *rpc, int status, void *data, void *priv)
{
    struct bench_call *c = priv;

    if (bench_call_status(c, status, data, "MKDIR") == 0)
        c->err = bench_call_handle(c, &((MKDIR3res *)data)->MKDIR3res_u.resok.obj);
}

static void bench_remove_cb(struct rpc_context *rpc, int status, void *data, void *priv)
{
    bench_call_status(priv, status, data, "REMOVE or RMDIR");
}

/* Wait for the setup call just queued (rc: what queueing it returned).  0 or errno. */
static int bench_call_wait(struct bench *b, int rc)
{
    int err;

    if (rc != 0) {
        fprintf(stderr, "nfsbench: cannot queue request: %s\n", rpc_get_error(b->rpc));
        return EIO;
    }
    err = bench_wait(b->rpc, &b->call.done, BENCH_SETUP_SECONDS);
    return err ? err : b->call.err;
}

/*
 * Make `name` in `dir`: a directory (mode 0755) or an empty regular file
 * (UNCHECKED, mode 0644).  On success *out is its new handle.  0 or errno.
 */
static int bench_make(struct bench *b, const nfs_fh3 *dir, const char *name, bool is_dir,
                      nfs_fh3 *out)
{
    struct bench_call *c = &b->call;
    int rc, err;

    memset(c, 0, sizeof(*c));
    if (is_dir) {
        MKDIR3args a;

        memset(&a, 0, sizeof(a));
        a.where.dir = *dir;
        a.where.name = (char *)name;
        a.attributes.mode.set_it = 1;
        a.attributes.mode.set_mode3_u.mode = 0755;
        rc = rpc_nfs3_mkdir_async(b->rpc, bench_mkdir_cb, &a, c);
    } else {
        CREATE3args a;

        memset(&a, 0, sizeof(a));
        a.where.dir = *dir;
        a.where.name = (char *)name;
        a.how.mode = UNCHECKED;
        a.how.createhow3_u.obj_attributes.mode.set_it = 1;
        a.how.createhow3_u.obj_attributes.mode.set_mode3_u.mode = 0644;
        rc = rpc_nfs3_create_async(b->rpc, bench_create_cb, &a, c);
    }
    err = bench_call_wait(b, rc);
    if (err) {
        if (c->done)
            bench_fh_free(&c->fh);
        fprintf(stderr, "nfsbench: making %s: %s\n", name, strerror(err));
        return err;
    }
    *out = c->fh;
    c->fh.data.data_val = NULL;
    c->fh.data.data_len = 0;
    return 0;
}

/* REMOVE (or RMDIR) `name` in `dir`.  0 or errno. */
static int bench_remove(struct bench *b, const nfs_fh3 *dir, const char *name, bool is_dir)
{
    struct bench_call *c = &b->call;
    diropargs3 what = {.dir = *dir, .name = (char *)name};
    int rc;

    memset(c, 0, sizeof(*c));
    if (is_dir) {
        RMDIR3args a = {.object = what};

        rc = rpc_nfs3_rmdir_async(b->rpc, bench_remove_cb, &a, c);
    } else {
        REMOVE3args a = {.object = what};

        rc = rpc_nfs3_remove_async(b->rpc, bench_remove_cb, &a, c);
    }
    return bench_call_wait(b, rc);
}

/* ---- pipelined tests ------------------------------------------------- */

/* Count one completion that took t - t0 seconds in histogram `lat`. */
static void bench_lat_add(uint32_t *lat, uint64_t *over, double t0, double t)
{
    double us = (t - t0) * 1e6;

    if (us < BENCH_LAT_BUCKETS)
        lat[(unsigned)us]++;
    else if (us < BENCH_LAT_BUCKETS + 1000.0 * BENCH_SLOW_BUCKETS)
        lat[BENCH_LAT_BUCKETS + (unsigned)((us - BENCH_LAT_BUCKETS) / 1000)]++;
    else
        (*over)++;
}

static int bench_run_issue(struct bench_slot *slot);

BENCH_READS_LIBNFS_REPLY
static void bench_run_cb(struct rpc_context *rpc, int status, void *data, void *priv)
{
    struct bench_slot *slot = priv;
    struct bench_run *run = slot->run;
    double t = bench_now();
    int nfs_err = 0;

    run->inflight--;
    if (status != RPC_STATUS_SUCCESS) {
        if (run->err == 0) {
            fprintf(stderr, "nfsbench: RPC failed: %s\n",
                    status == RPC_STATUS_ERROR ? (char *)data : "cancelled");
            run->err = EIO;
        }
        run->stop = true;
        return;
    }
    switch (run->op) {
    case BENCH_GETATTR: nfs_err = bench_nfs_errno(((GETATTR3res *)data)->status); break;
    case BENCH_LOOKUP: nfs_err = bench_nfs_errno(((LOOKUP3res *)data)->status); break;
    case BENCH_READ: {
        READ3res *res = data;

        nfs_err = bench_nfs_errno(res->status);
        if (nfs_err == 0)
            run->bytes += res->READ3res_u.resok.count;
        break;
    }
    }
    if (nfs_err) {
        if (run->err == 0) {
            fprintf(stderr, "nfsbench: NFS error %d\n", nfs_err);
            run->err = nfs_err;
        }
        run->stop = true;
        return;
    }
    bench_lat_add(run->lat, &run->lat_over, slot->t0, t);
    run->completed++;
    run->t_last = t;
    if (t > run->deadline)
        run->stop = true;
    if (!run->stop && run->issued < run->max_ops) {
        int err = bench_run_issue(slot);

        if (err) {
            run->err = err;
            run->stop = true;
        }
    }
}

/* Queue the next request of `slot`'s run.  Returns 0 or errno. */
static int bench_run_issue(struct bench_slot *slot)
{
    struct bench_run *run = slot->run;
    struct bench *b = run->b;
    unsigned i = (unsigned)(run->issued % b->nfiles);
    int rc = -1;

    slot->t0 = bench_now();
    switch (run->op) {
    case BENCH_GETATTR: {
        GETATTR3args args = {.object = b->fhs[i]};

        rc = rpc_nfs3_getattr_async(b->rpc, bench_run_cb, &args, slot);
        break;
    }
    case BENCH_LOOKUP: {
        LOOKUP3args args = {.what = {.dir = b->files_fh, .name = b->names[i]}};

        rc = rpc_nfs3_lookup_async(b->rpc, bench_run_cb, &args, slot);
        break;
    }
    case BENCH_READ: {
        READ3args args = {.file = b->fhs[0], .offset = run->next_offset, .count = run->io_size};

        rc = rpc_nfs3_read_async(b->rpc, bench_run_cb, &args, slot);
        run->next_offset += run->io_size;
        if (run->next_offset >= run->file_size)
            run->next_offset = 0; /* another pass over the file */
        break;
    }
    }
    if (rc != 0) {
        fprintf(stderr, "nfsbench: cannot queue request: %s\n", rpc_get_error(b->rpc));
        return EIO;
    }
    run->issued++;
    run->inflight++;
    return 0;
}

/*
 * Run one pipelined test with `depth` requests in flight until
 * conf.seconds or conf.max_ops.  `run` must have op (and the READ fields)
 * set.  Returns 0 or errno; results are left in b->run.
 */
static int bench_run(struct bench *b, enum bench_op op, unsigned depth)
{
    struct bench_run *run = &b->run;
    uint32_t *lat = run->lat;
    double hard;
    unsigned i;

    memset(lat, 0, (BENCH_LAT_BUCKETS + BENCH_SLOW_BUCKETS) * sizeof(*lat));
    run->b = b;
    run->op = op;
    run->depth = depth;
    run->max_ops = b->conf.max_ops;
    run->stop = false;
    run->err = 0;
    run->issued = run->completed = 0;
    run->inflight = 0;
    run->bytes = 0;
    run->lat_over = 0;
    run->next_offset = 0;
    run->t_start = run->t_last = bench_now();
    run->deadline = run->t_start + b->conf.seconds;
    hard = run->deadline + BENCH_DRAIN_SECONDS;
    for (i = 0; i < depth && run->issued < run->max_ops; i++) {
        run->slots[i].run = run;
        run->err = bench_run_issue(&run->slots[i]);
        if (run->err) {
            run->stop = true;
            break;
        }
    }
    {
        int err = bench_drain(&b->rpc, 1, &run->inflight, &run->stop, run->deadline, hard);

        return err ? err : run->err;
    }
}

/* Latency at quantile q (0..1) of the last run, in microseconds. */
static double bench_run_quantile(const struct bench_run *run, double q)
{
    uint64_t want = (uint64_t)((double)run->completed * q), seen = 0;
    unsigned i;

    if (run->completed == 0)
        return 0;
    if (want >= run->completed)
        want = run->completed - 1;
    for (i = 0; i < BENCH_LAT_BUCKETS + BENCH_SLOW_BUCKETS; i++) {
        seen += run->lat[i];
        if (seen <= want)
            continue;
        if (i < BENCH_LAT_BUCKETS)
            return (double)i + 0.5;
        return BENCH_LAT_BUCKETS + 1000.0 * (i - BENCH_LAT_BUCKETS) + 500;
    }
    /* Slower than the histogram (over 10 s): report its limit. */
    return BENCH_LAT_BUCKETS + 1000.0 * BENCH_SLOW_BUCKETS;
}

static void bench_report_run(const struct bench *b, const char *name)
{
    const struct bench_run *run = &b->run;
    double elapsed = run->t_last - run->t_start;
    double rate = elapsed > 0 ? (double)run->completed / elapsed : 0;

    printf("%s_qd%u_ops_per_s %.0f\n", name, run->depth, rate);
    printf("%s_qd%u_lat_p50_us %.1f\n", name, run->depth, bench_run_quantile(run, 0.50));
    printf("%s_qd%u_lat_p99_us %.1f\n", name, run->depth, bench_run_quantile(run, 0.99));
    if (run->op == BENCH_READ)
        printf("%s_qd%u_mib_per_s %.1f\n", name, run->depth,
               elapsed > 0 ? (double)run->bytes / elapsed / (1024.0 * 1024.0) : 0);
    fflush(stdout);
}

/* ---- READDIRPLUS ------------------------------------------------------ */

BENCH_READS_LIBNFS_REPLY
static void bench_rdp_cb(struct rpc_context *rpc, int status, void *data, void *priv)
{
    struct bench_listing *l = priv;
    READDIRPLUS3res *res = data;
    entryplus3 *e;

    l->done = true;
    if (status != RPC_STATUS_SUCCESS) {
        fprintf(stderr, "nfsbench: READDIRPLUS: %s\n",
                status == RPC_STATUS_ERROR ? (char *)data : "cancelled");
        l->err = EIO;
        return;
    }
    if (res->status != NFS3_OK) {
        fprintf(stderr, "nfsbench: READDIRPLUS: NFS error %d\n", (int)res->status);
        l->err = bench_nfs_errno(res->status);
        return;
    }
    memcpy(l->verf, res->READDIRPLUS3res_u.resok.cookieverf, sizeof(l->verf));
    l->eof = res->READDIRPLUS3res_u.resok.reply.eof;
    e = res->READDIRPLUS3res_u.resok.reply.entries;
    if (e == NULL && !l->eof) {
        /* RFC 1813 3.3.17: a reply with no entries must set eof. */
        fprintf(stderr, "nfsbench: READDIRPLUS: empty reply without eof\n");
        l->err = EPROTO;
        return;
    }
    for (; e != NULL; e = e->nextentry) {
        l->cookie = e->cookie;
        if (strcmp(e->name, ".") == 0 || strcmp(e->name, "..") == 0)
            continue;
        l->entries++;
        if (!l->collect || l->nnames >= l->max_names)
            continue;
        /*
         * Entries without attributes are kept and looked up later: a server
         * may leave out what it only guessed (bucketnfs does for objects an
         * S3 listing named).
         */
        if (e->name_attributes.attributes_follow &&
            e->name_attributes.post_op_attr_u.attributes.type != NF3REG)
            continue;
        l->names[l->nnames] = strdup(e->name);
        if (l->names[l->nnames] == NULL) {
            l->err = ENOMEM;
            return;
        }
        memset(&l->fhs[l->nnames], 0, sizeof(l->fhs[l->nnames]));
        l->sizes[l->nnames] = e->name_attributes.attributes_follow
                                  ? e->name_attributes.post_op_attr_u.attributes.size
                                  : UINT64_MAX;
        if (e->name_handle.handle_follows) {
            int err = bench_fh_copy(&l->fhs[l->nnames], &e->name_handle.post_op_fh3_u.handle);

            if (err) {
                free(l->names[l->nnames]);
                l->err = err;
                return;
            }
        }
        l->nnames++;
    }
}

/* Linux nfs_block_size(): round down to a power of two within the limits. */
static uint32_t bench_block_size(uint32_t size)
{
    uint32_t p = BENCH_MIN_IO;

    if (size < BENCH_MIN_IO)
        return BENCH_DEF_IO;
    if (size >= BENCH_MAX_IO)
        return BENCH_MAX_IO;
    while (p * 2 <= size)
        p *= 2;
    return p;
}

/* The maxcount the Linux client would send to this server. */
static uint32_t bench_rdp_maxcount(const struct bench *b)
{
    uint32_t m;

    if (b->conf.rdp_maxcount != 0)
        return b->conf.rdp_maxcount;
    m = bench_block_size(b->dtpref);
    if (b->rtmax != 0 && m > bench_block_size(b->rtmax))
        m = bench_block_size(b->rtmax);
    return m;
}

/*
 * List directory `dir` completely, one READDIRPLUS after the other, within
 * `timeout` seconds.  Returns 0 or errno; counts are left in *l.
 */
static int bench_list(struct bench *b, const nfs_fh3 *dir, struct bench_listing *l, double timeout)
{
    double deadline = bench_now() + timeout;
    uint32_t maxcount = bench_rdp_maxcount(b);

    l->cookie = 0;
    memset(l->verf, 0, sizeof(l->verf));
    l->eof = false;
    l->entries = 0;
    l->calls = 0;
    while (!l->eof) {
        READDIRPLUS3args args = {
            .dir = *dir, .cookie = l->cookie, .dircount = maxcount / 8, .maxcount = maxcount};
        double left = deadline - bench_now();
        int err;

        memcpy(args.cookieverf, l->verf, sizeof(args.cookieverf));
        if (left <= 0)
            return ETIMEDOUT;
        l->done = false;
        l->err = 0;
        if (rpc_nfs3_readdirplus_async(b->rpc, bench_rdp_cb, &args, l) != 0)
            return EIO;
        l->calls++;
        double t0 = bench_now();
        err = bench_wait(b->rpc, &l->done, left);
        if (err)
            return err;
        if (l->err)
            return l->err;
        if (l->lat != NULL) {
            double t = bench_now();

            bench_lat_add(l->lat, &l->lat_over, t0, t);
            if (t - t0 > l->lat_max)
                l->lat_max = t - t0;
        }
    }
    return 0;
}

/* ---- tests ------------------------------------------------------------ */

/*
 * Find the regular files of conf.files_dir (at most conf.max_files) and a
 * handle for each, for getattr and lookup.  Returns 0 or errno.
 */
static int bench_setup_files(struct bench *b)
{
    struct bench_listing *l = &b->listing;
    unsigned i;
    int err;

    if (b->nfiles > 0)
        return 0;
    err = bench_resolve(b, b->conf.files_dir, &b->files_fh, NULL);
    if (err)
        return err;
    memset(l, 0, sizeof(*l));
    l->collect = true;
    l->max_names = b->conf.max_files;
    l->names = calloc(l->max_names, sizeof(*l->names));
    l->fhs = calloc(l->max_names, sizeof(*l->fhs));
    l->sizes = calloc(l->max_names, sizeof(*l->sizes));
    b->names = l->names;
    b->fhs = l->fhs;
    b->sizes = l->sizes;
    if (l->names == NULL || l->fhs == NULL || l->sizes == NULL)
        return ENOMEM;
    err = bench_list(b, &b->files_fh, l, BENCH_SETUP_SECONDS);
    b->nfiles = l->nnames;
    l->collect = false;
    if (err)
        return err;
    if (l->nnames == 0) {
        fprintf(stderr, "nfsbench: no regular files in %s\n", b->conf.files_dir);
        return ENOENT;
    }
    /*
     * A server may leave name_handle or name_attributes out (RFC 1813
     * 3.3.17): look those up.
     */
    for (i = 0; i < b->nfiles; i++) {
        nfs_fh3 fh = {0};

        if (b->fhs[i].data.data_len != 0 && b->sizes[i] != UINT64_MAX)
            continue;
        b->sizes[i] = 0;
        err = bench_lookup(b, &b->files_fh, b->names[i], &fh, &b->sizes[i]);
        if (err)
            return err;
        bench_fh_free(&b->fhs[i]);
        b->fhs[i] = fh;
    }
    printf("files_used %u\n", b->nfiles);
    return 0;
}

static int bench_test_meta(struct bench *b, enum bench_op op, const char *name)
{
    unsigned depths[2] = {b->conf.depth, 1};
    unsigned i;
    int err;

    err = bench_setup_files(b);
    if (err)
        return err;
    for (i = 0; i < 2; i++) {
        if (i == 1 && depths[1] == depths[0])
            break;
        err = bench_run(b, op, depths[i]);
        if (err)
            return err;
        bench_report_run(b, name);
    }
    return 0;
}

static int bench_test_readdirplus(struct bench *b)
{
    struct bench_listing *l = &b->listing;
    nfs_fh3 dir = {0};
    double start = bench_now(), spent = 0;
    uint64_t entries = 0, calls = 0;
    unsigned pass = 0;
    int err;

    err = bench_resolve(b, b->conf.big_dir, &dir, NULL);
    if (err)
        return err;
    /* Every call of every pass in one histogram: a slow call (one that waited
       for the store) shows in the tail even when the passes' rate hides it. */
    l->lat = b->run.lat;
    memset(l->lat, 0, (BENCH_LAT_BUCKETS + BENCH_SLOW_BUCKETS) * sizeof(*l->lat));
    l->lat_over = 0;
    l->lat_max = 0;
    while (pass < b->conf.passes && (pass == 0 || bench_now() - start < b->conf.seconds)) {
        double t0 = bench_now();

        double limit = 3 * b->conf.seconds;

        if (limit < BENCH_PASS_MIN_SECONDS)
            limit = BENCH_PASS_MIN_SECONDS;
        err = bench_list(b, &dir, l, limit);
        if (err) {
            fprintf(stderr, "nfsbench: listing %s: %s\n", b->conf.big_dir, strerror(err));
            goto out;
        }
        spent += bench_now() - t0;
        if (b->conf.expect_entries != 0 && l->entries != b->conf.expect_entries) {
            fprintf(stderr, "nfsbench: %s lists %" PRIu64 " entries, expected %" PRIu64 "\n",
                    b->conf.big_dir, l->entries, b->conf.expect_entries);
            err = EPROTO;
            goto out;
        }
        entries += l->entries;
        calls += l->calls;
        pass++;
    }
    printf("readdirplus_maxcount %u\n", bench_rdp_maxcount(b));
    printf("readdirplus_entries %" PRIu64 "\n", l->entries);
    printf("readdirplus_calls_per_pass %.0f\n", (double)calls / pass);
    printf("readdirplus_passes %u\n", pass);
    printf("readdirplus_pass_seconds %.3f\n", spent / pass);
    printf("readdirplus_entries_per_s %.0f\n", spent > 0 ? (double)entries / spent : 0);
    {
        struct bench_run r = {.completed = calls, .lat = l->lat};

        printf("readdirplus_call_p50_us %.1f\n", bench_run_quantile(&r, 0.50));
        printf("readdirplus_call_p99_us %.1f\n", bench_run_quantile(&r, 0.99));
        printf("readdirplus_call_max_us %.1f\n", l->lat_max * 1e6);
    }
    fflush(stdout);
out:
    l->lat = NULL;
    bench_fh_free(&dir);
    return err;
}

static int bench_test_read(struct bench *b)
{
    nfs_fh3 *saved_fhs = b->fhs;
    unsigned saved_n = b->nfiles;
    nfs_fh3 file = {0};
    uint64_t size = 0;
    int err;

    err = bench_resolve(b, b->conf.big_file, &file, &size);
    if (err)
        return err;
    if (size == 0) {
        fprintf(stderr, "nfsbench: %s is empty or its size is unknown\n", b->conf.big_file);
        err = EINVAL;
        goto out;
    }
    b->run.file_size = size;
    b->run.io_size = bench_block_size(b->rtmax);
    /* The READ request takes its handle from b->fhs[0]. */
    b->fhs = &file;
    b->nfiles = 1;
    err = bench_run(b, BENCH_READ, b->conf.read_depth);
    b->fhs = saved_fhs;
    b->nfiles = saved_n;
    if (err)
        goto out;
    printf("read_io_size %u\n", b->run.io_size);
    bench_report_run(b, "read");
out:
    bench_fh_free(&file);
    return err;
}

/* ---- multi-connection tests ------------------------------------------- */

/*
 * seqread, randread, multiread and smallfiles spread their requests over
 * conf.conns connections, as a Linux mount with nconnect=N does: slot j of
 * conns x read_depth slots always uses connection j % conns, so each
 * connection has read_depth requests in flight at most.
 *
 *   seqread    one file (-b), READs of rsize from offset 0 onwards taken
 *              by whichever slot is free; wraps at EOF, or with -O stops
 *              there (one pass: what a cold read measures)
 *   randread   one file (-b), READs of -I bytes at random aligned offsets
 *   multiread  the first -S regular files of -f, each read once to EOF by
 *              -W slots of its own (a reader with its read-ahead); slots
 *              are dealt to connections round-robin
 *   smallfiles the regular files of -f in turn: LOOKUP by name, then READ
 *              to EOF; each slot opens the next file when it is done; with
 *              -O every file once
 *
 * All stop issuing at conf.seconds; what is in flight must come back
 * within BENCH_DRAIN_SECONDS.  A READ that returns fewer bytes than asked
 * before EOF is an error: it would inflate the numbers.
 */
enum bench_mmode { BENCH_M_SEQ, BENCH_M_RAND, BENCH_M_MULTI, BENCH_M_SMALL };

struct bench_mrun;

struct bench_mslot {
    struct bench_mrun *m;
    unsigned conn;
    unsigned stream; /* multiread: the file; smallfiles: the file in progress */
    bool active;     /* a request in flight */
    bool looking_up; /* smallfiles: the LOOKUP, not a READ */
    nfs_fh3 fh;      /* smallfiles: the handle LOOKUP returned (owned) */
    uint64_t off;    /* offset of the READ in flight */
    uint32_t count;  /* bytes it asked for */
    double t0;
};

struct bench_mstream {
    uint64_t next; /* next offset to issue */
};

struct bench_mrun {
    struct bench *b;
    enum bench_mmode mode;
    unsigned conns;
    struct rpc_context *rpc[BENCH_MAX_CONNS];
    unsigned nslots;
    struct bench_mslot *slots;
    unsigned nstreams;
    struct bench_mstream *streams;
    nfs_fh3 file; /* seqread, randread */
    uint64_t file_size;
    uint32_t io_size;
    uint64_t cursor;      /* seqread: next offset; smallfiles: next file number */
    bool once;            /* seqread: stop at EOF */
    uint64_t rng;         /* randread */
    bool stop;
    int err;
    unsigned inflight;
    uint64_t ops, bytes, files;
    double t_start, t_last, deadline;
    uint32_t *lat;
    uint64_t lat_over;
};

static uint64_t bench_rand(uint64_t *s)
{
    /* splitmix64: a different, reproducible offset sequence per seed */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void bench_mfail(struct bench_mrun *m, int err, const char *what)
{
    if (m->err == 0) {
        fprintf(stderr, "nfsbench: %s: %s\n", what, strerror(err));
        m->err = err;
    }
    m->stop = true;
}

static int bench_missue(struct bench_mslot *s);

static void bench_mlat(struct bench_mrun *m, double t0, double t)
{
    bench_lat_add(m->lat, &m->lat_over, t0, t);
}

BENCH_READS_LIBNFS_REPLY
static void bench_mread_cb(struct rpc_context *rpc, int status, void *data, void *priv)
{
    struct bench_mslot *s = priv;
    struct bench_mrun *m = s->m;
    READ3res *res = data;
    double t = bench_now();
    bool more = false;

    s->active = false;
    m->inflight--;
    if (status != RPC_STATUS_SUCCESS) {
        bench_mfail(m, EIO, status == RPC_STATUS_ERROR ? (char *)data : "READ cancelled");
        return;
    }
    if (res->status != NFS3_OK) {
        bench_mfail(m, bench_nfs_errno(res->status), "READ");
        return;
    }
    {
        uint32_t got = res->READ3res_u.resok.count;
        bool eof = res->READ3res_u.resok.eof;

        if (got < s->count && !eof) {
            fprintf(stderr, "nfsbench: READ at %" PRIu64 " returned %u of %u bytes before EOF\n",
                    s->off, got, s->count);
            bench_mfail(m, EPROTO, "short READ");
            return;
        }
        m->bytes += got;
        m->ops++;
        bench_mlat(m, s->t0, t);
        m->t_last = t;
        if (m->mode == BENCH_M_SMALL) {
            if (eof || got == 0) {
                m->files++;
                bench_fh_free(&s->fh);
            } else {
                s->off += got;
                more = true; /* the rest of this file */
            }
        }
    }
    if (t > m->deadline)
        m->stop = true;
    if (!m->stop) {
        int err = more ? 0 : bench_missue(s);

        if (more) {
            READ3args args = {.file = s->fh, .offset = s->off, .count = m->io_size};

            s->count = m->io_size;
            s->t0 = bench_now();
            if (rpc_nfs3_read_async(m->rpc[s->conn], bench_mread_cb, &args, s) != 0)
                err = EIO;
            else {
                s->active = true;
                m->inflight++;
            }
        }
        if (err)
            bench_mfail(m, err, "queueing a request");
    }
}

BENCH_READS_LIBNFS_REPLY
static void bench_mlookup_cb(struct rpc_context *rpc, int status, void *data, void *priv)
{
    struct bench_mslot *s = priv;
    struct bench_mrun *m = s->m;
    LOOKUP3res *res = data;
    int err;

    s->active = false;
    m->inflight--;
    if (status != RPC_STATUS_SUCCESS) {
        bench_mfail(m, EIO, status == RPC_STATUS_ERROR ? (char *)data : "LOOKUP cancelled");
        return;
    }
    if (res->status != NFS3_OK) {
        bench_mfail(m, bench_nfs_errno(res->status), "LOOKUP");
        return;
    }
    m->ops++;
    err = bench_fh_copy(&s->fh, &res->LOOKUP3res_u.resok.object);
    if (err) {
        bench_mfail(m, err, "LOOKUP handle");
        return;
    }
    /* The file is opened: read it even past the deadline, so files/s counts whole files. */
    {
        READ3args args = {.file = s->fh, .offset = 0, .count = m->io_size};

        s->looking_up = false;
        s->off = 0;
        s->count = m->io_size;
        s->t0 = bench_now();
        if (rpc_nfs3_read_async(m->rpc[s->conn], bench_mread_cb, &args, s) != 0) {
            bench_mfail(m, EIO, "queueing a READ");
            return;
        }
        s->active = true;
        m->inflight++;
    }
}

/*
 * Give slot s its next request, if there is one.  Returns 0 (also when
 * there is nothing left for it to do) or errno.
 */
static int bench_missue(struct bench_mslot *s)
{
    struct bench_mrun *m = s->m;
    struct bench *b = m->b;
    struct rpc_context *rpc = m->rpc[s->conn];
    READ3args args = {.count = m->io_size};

    switch (m->mode) {
    case BENCH_M_SEQ:
        if (m->cursor >= m->file_size) {
            if (m->once)
                return 0;
            m->cursor = 0; /* another pass over the file */
        }
        args.file = m->file;
        args.offset = m->cursor;
        m->cursor += m->io_size;
        break;
    case BENCH_M_RAND: {
        uint64_t nblocks = m->file_size / m->io_size;

        args.file = m->file;
        args.offset = nblocks ? (bench_rand(&m->rng) % nblocks) * m->io_size : 0;
        break;
    }
    case BENCH_M_MULTI: {
        struct bench_mstream *st = &m->streams[s->stream];

        if (st->next >= b->sizes[s->stream])
            return 0; /* this file is read: the slot retires */
        args.file = b->fhs[s->stream];
        args.offset = st->next;
        st->next += m->io_size;
        break;
    }
    case BENCH_M_SMALL: {
        LOOKUP3args la;

        if (m->once && m->cursor >= b->nfiles)
            return 0; /* every file read once */
        s->stream = (unsigned)(m->cursor++ % b->nfiles);
        la.what.dir = b->files_fh;
        la.what.name = b->names[s->stream];
        s->looking_up = true;
        s->t0 = bench_now();
        if (rpc_nfs3_lookup_async(rpc, bench_mlookup_cb, &la, s) != 0)
            return EIO;
        s->active = true;
        m->inflight++;
        return 0;
    }
    }
    s->off = args.offset;
    s->count = m->io_size;
    if (m->mode == BENCH_M_SEQ || m->mode == BENCH_M_MULTI) {
        uint64_t size = m->mode == BENCH_M_SEQ ? m->file_size : b->sizes[s->stream];

        if (size - args.offset < s->count)
            s->count = (uint32_t)(size - args.offset);
    }
    s->t0 = bench_now();
    if (rpc_nfs3_read_async(rpc, bench_mread_cb, &args, s) != 0)
        return EIO;
    s->active = true;
    m->inflight++;
    return 0;
}

/*
 * Run one multi-connection test on m (mode, conns, slots and the mode's
 * fields set; connections open).  Returns 0 or errno.
 */
static int bench_mrun_go(struct bench_mrun *m)
{
    double hard;
    unsigned i;

    memset(m->lat, 0, (BENCH_LAT_BUCKETS + BENCH_SLOW_BUCKETS) * sizeof(*m->lat));
    m->t_start = m->t_last = bench_now();
    m->deadline = m->t_start + m->b->conf.seconds;
    hard = m->deadline + BENCH_DRAIN_SECONDS;
    for (i = 0; i < m->nslots && !m->stop; i++) {
        int err = bench_missue(&m->slots[i]);

        if (err)
            bench_mfail(m, err, "queueing a request");
    }
    {
        int err = bench_drain(m->rpc, m->conns, &m->inflight, &m->stop, m->deadline, hard);

        return err ? err : m->err;
    }
}

/* Latency at quantile q of the last multi-connection run, microseconds. */
static double bench_mquantile(const struct bench_mrun *m, double q)
{
    struct bench_run r = {.completed = m->ops, .lat = m->lat};

    return bench_run_quantile(&r, q);
}

static int bench_test_multi(struct bench *b, enum bench_mmode mode, const char *name)
{
    struct bench_mrun *m;
    unsigned i;
    int err = 0;

    m = calloc(1, sizeof(*m));
    if (m == NULL)
        return ENOMEM;
    m->b = b;
    m->mode = mode;
    m->conns = b->conf.conns;
    m->lat = b->run.lat;
    m->rng = 0x62756e6673ull; /* fixed: both servers get the same offsets */
    m->once = b->conf.once;
    m->io_size = mode == BENCH_M_RAND ? b->conf.rand_io : bench_block_size(b->rtmax);
    if (mode == BENCH_M_SEQ || mode == BENCH_M_RAND) {
        err = bench_resolve(b, b->conf.big_file, &m->file, &m->file_size);
        if (err)
            goto out;
        if (m->file_size < m->io_size) {
            fprintf(stderr, "nfsbench: %s is smaller than one READ\n", b->conf.big_file);
            err = EINVAL;
            goto out;
        }
    } else {
        err = bench_setup_files(b);
        if (err)
            goto out;
    }
    if (mode == BENCH_M_MULTI) {
        m->nstreams = b->conf.streams < b->nfiles ? b->conf.streams : b->nfiles;
        m->nslots = m->nstreams * b->conf.stream_depth;
    } else {
        m->nslots = m->conns * b->conf.read_depth;
    }
    m->slots = calloc(m->nslots, sizeof(*m->slots));
    m->streams = calloc(m->nstreams ? m->nstreams : 1, sizeof(*m->streams));
    if (m->slots == NULL || m->streams == NULL) {
        err = ENOMEM;
        goto out;
    }
    for (i = 0; i < m->nslots; i++) {
        m->slots[i].m = m;
        m->slots[i].conn = i % m->conns;
        if (mode == BENCH_M_MULTI)
            m->slots[i].stream = i / b->conf.stream_depth;
    }
    for (i = 0; i < m->conns; i++) {
        m->rpc[i] = rpc_init_context();
        if (m->rpc[i] == NULL) {
            err = ENOMEM;
            goto out;
        }
        err = bench_connect(b, m->rpc[i], b->conf.nfs_port, NFS_PROGRAM, NFS_V3);
        if (err)
            goto out;
    }
    err = bench_mrun_go(m);
    if (err)
        goto out;
    {
        double el = m->t_last - m->t_start;
        double mib = (double)m->bytes / (1024.0 * 1024.0);

        printf("%s_conns %u\n%s_in_flight %u\n%s_io_size %u\n", name, m->conns, name, m->nslots,
               name, m->io_size);
        printf("%s_bytes %" PRIu64 "\n%s_seconds %.3f\n", name, m->bytes, name, el);
        printf("%s_mib_per_s %.1f\n", name, el > 0 ? mib / el : 0);
        if (mode == BENCH_M_RAND) {
            printf("%s_ops_per_s %.0f\n", name, el > 0 ? (double)m->ops / el : 0);
            printf("%s_lat_p50_us %.1f\n", name, bench_mquantile(m, 0.50));
            printf("%s_lat_p99_us %.1f\n", name, bench_mquantile(m, 0.99));
        }
        if (mode == BENCH_M_SMALL)
            printf("%s_files_per_s %.0f\n%s_files %" PRIu64 "\n", name,
                   el > 0 ? (double)m->files / el : 0, name, m->files);
        if (mode == BENCH_M_MULTI)
            printf("%s_streams %u\n", name, m->nstreams);
        if (mode == BENCH_M_SEQ && m->once && m->bytes != m->file_size) {
            fprintf(stderr, "nfsbench: %s: read %" PRIu64 " of %" PRIu64 " bytes in %.0f s\n",
                    name, m->bytes, m->file_size, b->conf.seconds);
            err = ETIMEDOUT;
        }
        if (mode == BENCH_M_MULTI) {
            uint64_t want = 0;

            for (i = 0; i < m->nstreams; i++)
                want += b->sizes[i];
            if (m->bytes != want) {
                fprintf(stderr, "nfsbench: %s: read %" PRIu64 " of %" PRIu64 " bytes in %.0f s\n",
                        name, m->bytes, want, b->conf.seconds);
                err = ETIMEDOUT;
            }
        }
        fflush(stdout);
    }
out:
    /* Contexts first: cancelled requests call back into the slots. */
    for (i = 0; i < m->conns; i++)
        if (m->rpc[i] != NULL)
            rpc_destroy_context(m->rpc[i]);
    for (i = 0; i < m->nslots && m->slots != NULL; i++)
        bench_fh_free(&m->slots[i].fh);
    bench_fh_free(&m->file);
    free(m->slots);
    free(m->streams);
    free(m);
    return err;
}

/* ---- write tests ------------------------------------------------------ */

/*
 * seqwrite and smallcreate write over conf.conns connections, as an
 * nconnect mount does, into a directory of their own that each run makes
 * under -w (nfsbench-TEST-PID-N) and, unless -K, removes afterwards, out of
 * the measured time (a failure there prints TEST_cleanup_errno, not an
 * error: the measurement is done).
 *
 *   seqwrite     one file per connection, CREATEd first.  Each file has
 *                read_depth WRITEs of wsize in flight (UNSTABLE, as the
 *                Linux client's writeback sends them), its next offset
 *                taken by whichever of its slots is free.  Every
 *                BENCH_COMMIT_EVERY bytes a file's WRITEs acknowledge, a
 *                COMMIT of that file goes out alongside them (the client's
 *                writeback does the same); when issuing stops (-t seconds,
 *                or -B bytes per file) every file gets a last COMMIT.  The
 *                rate is the bytes acknowledged over the time from the
 *                first WRITE to the reply of the last COMMIT: data on the
 *                server's stable storage.
 *   smallcreate  in each slot, file after file: CREATE (UNCHECKED, mode
 *                0644), one UNSTABLE WRITE of -z MIN,MAX bytes (sizes drawn
 *                from a fixed seed per file number: the same for every
 *                server), COMMIT, as an application writing a small file
 *                and closing it; files/s over whole files.  With -O exactly
 *                -N files; a file begun before the deadline is finished.
 *
 * A WRITE shorter than asked, a COMMIT or WRITE whose verifier differs
 * from the first one (the server restarted and may have lost unstable
 * data), and any NFS error fail the run.  NFS3ERR_JUKEBOX (bucketnfs says
 * it when cache.dirty_max is full) is reported, not retried as the kernel
 * would: the run was then measuring the limit, not the write path.
 */
#define BENCH_COMMIT_EVERY    (64ull << 20)
#define BENCH_COMMIT_SECONDS  300.0 /* the last COMMITs: all that was written reaches the disk */
#define BENCH_NFS3ERR_JUKEBOX 10008

struct bench_wrun;

/* seqwrite: one file per connection. */
struct bench_wfile {
    struct bench_wrun *w;
    unsigned conn;
    nfs_fh3 fh;
    uint64_t next;      /* next offset to issue */
    uint64_t acked;     /* bytes its WRITE replies acknowledged */
    uint64_t commit_at; /* acknowledged bytes that send its next COMMIT */
    bool committing;    /* a COMMIT in flight */
};

struct bench_wslot {
    struct bench_wrun *w;
    unsigned conn;
    struct bench_wfile *file; /* seqwrite */
    uint64_t fileno;          /* smallcreate: the file being made */
    nfs_fh3 fh;               /* smallcreate: its handle (owned) */
    uint32_t count;           /* bytes of the WRITE in flight */
    double t0;                /* smallcreate: when its CREATE went out */
};

struct bench_wrun {
    struct bench *b;
    bool create; /* smallcreate; else seqwrite */
    unsigned conns;
    struct rpc_context *rpc[BENCH_MAX_CONNS];
    nfs_fh3 parent, dir; /* -w, and the run's directory in it */
    char dirname[64];
    bool dir_made;
    struct bench_wfile files[BENCH_MAX_CONNS];
    unsigned nfiles;
    unsigned nslots;
    struct bench_wslot *slots;
    uint32_t io_size;
    char *buf; /* what every WRITE sends: BENCH_MAX_IO pseudo-random bytes */
    bool have_verf;
    char verf[NFS3_WRITEVERFSIZE];
    uint64_t cursor; /* smallcreate: next file number */
    bool stop;
    int err;
    unsigned inflight;
    uint64_t bytes, files_done, commits;
    double t_start, t_last, deadline;
    uint32_t *lat; /* smallcreate: per file, CREATE to COMMIT reply */
    uint64_t lat_over;
};

/* The WRITE size a Linux mount would use: wtpref, at most wtmax and 1 MiB. */
static uint32_t bench_wsize(const struct bench *b)
{
    uint32_t ws = bench_block_size(b->wtpref ? b->wtpref : b->wtmax);

    if (b->wtmax >= BENCH_MIN_IO && ws > bench_block_size(b->wtmax))
        ws = bench_block_size(b->wtmax);
    return ws;
}

/* smallcreate: the size of file n, the same sequence for every server. */
static uint32_t bench_create_size(const struct bench *b, uint64_t n)
{
    uint64_t s = 0x736d616c6cull + n;
    uint32_t lo = b->conf.create_min, hi = b->conf.create_max;

    return lo + (uint32_t)(bench_rand(&s) % (hi - lo + 1));
}

static void bench_wfail(struct bench_wrun *w, int err, const char *what)
{
    if (w->err == 0) {
        fprintf(stderr, "nfsbench: %s: %s\n", what, strerror(err));
        w->err = err;
    }
    w->stop = true;
}

/*
 * A reply arrived for a request of w: is it a success?  Otherwise the run
 * fails, saying why.  Every NFSv3 result starts with its nfsstat3.
 */
BENCH_READS_LIBNFS_REPLY
static bool bench_wok(struct bench_wrun *w, int status, void *data, const char *what)
{
    nfsstat3 st;

    w->inflight--;
    if (status != RPC_STATUS_SUCCESS) {
        if (w->err == 0)
            fprintf(stderr, "nfsbench: %s: %s\n", what,
                    status == RPC_STATUS_ERROR ? (char *)data : "cancelled");
        bench_wfail(w, EIO, what);
        return false;
    }
    st = *(nfsstat3 *)data;
    if (st != NFS3_OK) {
        if (w->err == 0)
            fprintf(stderr, "nfsbench: %s: NFS error %d%s\n", what, (int)st,
                    (int)st == BENCH_NFS3ERR_JUKEBOX
                        ? " (JUKEBOX: the server cannot take more now, e.g. its dirty limit)"
                        : "");
        bench_wfail(w, bench_nfs_errno(st), what);
        return false;
    }
    return true;
}

/* Check a WRITE or COMMIT verifier against the first one of the run.  0 or EPROTO. */
static int bench_wverf(struct bench_wrun *w, const char *verf)
{
    if (!w->have_verf) {
        memcpy(w->verf, verf, sizeof(w->verf));
        w->have_verf = true;
        return 0;
    }
    if (memcmp(w->verf, verf, sizeof(w->verf)) == 0)
        return 0;
    fprintf(stderr, "nfsbench: the write verifier changed: the server restarted and may have "
                    "lost unstable WRITEs\n");
    return EPROTO;
}

/* A request was just queued on w (rc: what queueing returned).  0 or EIO. */
static int bench_wqueued(struct bench_wrun *w, unsigned conn, int rc)
{
    if (rc != 0) {
        fprintf(stderr, "nfsbench: cannot queue request: %s\n", rpc_get_error(w->rpc[conn]));
        return EIO;
    }
    w->inflight++;
    return 0;
}

static int bench_wissue(struct bench_wslot *s);

BENCH_READS_LIBNFS_REPLY
static void bench_wfile_commit_cb(struct rpc_context *rpc, int status, void *data, void *priv)
{
    struct bench_wfile *f = priv;
    struct bench_wrun *w = f->w;
    COMMIT3res *res = data;
    int err;

    f->committing = false;
    if (!bench_wok(w, status, data, "COMMIT"))
        return;
    err = bench_wverf(w, res->COMMIT3res_u.resok.verf);
    if (err) {
        bench_wfail(w, err, "COMMIT");
        return;
    }
    w->commits++;
    w->t_last = bench_now();
}

/* COMMIT all of seqwrite's file f (offset 0, count 0).  0 or errno. */
static int bench_wcommit_file(struct bench_wfile *f)
{
    struct bench_wrun *w = f->w;
    COMMIT3args a = {.file = f->fh};
    int err;

    f->commit_at = (f->acked / BENCH_COMMIT_EVERY + 1) * BENCH_COMMIT_EVERY;
    err = bench_wqueued(w, f->conn,
                        rpc_nfs3_commit_async(w->rpc[f->conn], bench_wfile_commit_cb, &a, f));
    if (err == 0)
        f->committing = true;
    return err;
}

BENCH_READS_LIBNFS_REPLY
static void bench_wcommit_cb(struct rpc_context *rpc, int status, void *data, void *priv)
{
    struct bench_wslot *s = priv;
    struct bench_wrun *w = s->w;
    COMMIT3res *res = data;
    double t = bench_now();
    int err;

    if (!bench_wok(w, status, data, "COMMIT"))
        return;
    err = bench_wverf(w, res->COMMIT3res_u.resok.verf);
    if (err == 0) {
        w->commits++;
        w->files_done++;
        w->bytes += s->count;
        w->t_last = t;
        bench_lat_add(w->lat, &w->lat_over, s->t0, t);
        bench_fh_free(&s->fh);
        if (t > w->deadline)
            w->stop = true;
        err = bench_wissue(s);
    }
    if (err)
        bench_wfail(w, err, "COMMIT");
}

BENCH_READS_LIBNFS_REPLY
static void bench_wwrite_cb(struct rpc_context *rpc, int status, void *data, void *priv)
{
    struct bench_wslot *s = priv;
    struct bench_wrun *w = s->w;
    WRITE3res *res = data;
    double t = bench_now();
    int err;

    if (!bench_wok(w, status, data, "WRITE"))
        return;
    if (res->WRITE3res_u.resok.count != s->count) {
        fprintf(stderr, "nfsbench: WRITE of %u bytes wrote %u\n", s->count,
                res->WRITE3res_u.resok.count);
        bench_wfail(w, EPROTO, "short WRITE");
        return;
    }
    err = bench_wverf(w, res->WRITE3res_u.resok.verf);
    if (err == 0 && w->create) {
        /* The file is written: COMMIT it, as close() does after UNSTABLE WRITEs. */
        COMMIT3args a = {.file = s->fh};

        err = bench_wqueued(w, s->conn,
                            rpc_nfs3_commit_async(w->rpc[s->conn], bench_wcommit_cb, &a, s));
    } else if (err == 0) {
        struct bench_wfile *f = s->file;

        w->bytes += s->count;
        w->t_last = t;
        f->acked += s->count;
        if (t > w->deadline)
            w->stop = true;
        if (!w->stop && f->acked >= f->commit_at && !f->committing)
            err = bench_wcommit_file(f);
        if (err == 0)
            err = bench_wissue(s);
    }
    if (err)
        bench_wfail(w, err, "WRITE");
}

BENCH_READS_LIBNFS_REPLY
static void bench_wcreate_cb(struct rpc_context *rpc, int status, void *data, void *priv)
{
    struct bench_wslot *s = priv;
    struct bench_wrun *w = s->w;
    CREATE3res *res = data;
    WRITE3args a = {.offset = 0, .stable = UNSTABLE};
    int err;

    if (!bench_wok(w, status, data, "CREATE"))
        return;
    if (!res->CREATE3res_u.resok.obj.handle_follows) {
        bench_wfail(w, EPROTO, "CREATE returned no handle");
        return;
    }
    err = bench_fh_copy(&s->fh, &res->CREATE3res_u.resok.obj.post_op_fh3_u.handle);
    if (err) {
        bench_wfail(w, err, "CREATE");
        return;
    }
    s->count = bench_create_size(w->b, s->fileno);
    a.file = s->fh;
    a.count = s->count;
    a.data.data_len = s->count;
    a.data.data_val = w->buf;
    err = bench_wqueued(w, s->conn, rpc_nfs3_write_async(w->rpc[s->conn], bench_wwrite_cb, &a, s));
    if (err)
        bench_wfail(w, err, "WRITE");
}

/*
 * Give slot s its next request, if there is one: seqwrite, the next WRITE
 * of its file; smallcreate, the CREATE of the next file.  Returns 0 (also
 * when the slot retires) or errno.
 */
static int bench_wissue(struct bench_wslot *s)
{
    struct bench_wrun *w = s->w;
    const struct bench_conf *c = &w->b->conf;

    if (w->stop)
        return 0;
    if (!w->create) {
        struct bench_wfile *f = s->file;
        WRITE3args a = {.file = f->fh, .offset = f->next, .count = w->io_size, .stable = UNSTABLE};

        if (c->write_bytes != 0 && f->next >= c->write_bytes)
            return 0; /* the file has all its bytes: the slot retires */
        if (c->write_bytes != 0 && c->write_bytes - f->next < a.count)
            a.count = (count3)(c->write_bytes - f->next);
        a.data.data_len = a.count;
        a.data.data_val = w->buf;
        f->next += a.count;
        s->count = a.count;
        return bench_wqueued(w, s->conn,
                             rpc_nfs3_write_async(w->rpc[s->conn], bench_wwrite_cb, &a, s));
    }
    if (c->once && w->cursor >= c->max_files)
        return 0; /* every file made */
    {
        char name[32];
        CREATE3args a;

        memset(&a, 0, sizeof(a));
        s->fileno = w->cursor++;
        snprintf(name, sizeof(name), "f%08" PRIu64, s->fileno);
        a.where.dir = w->dir;
        a.where.name = name;
        a.how.mode = UNCHECKED;
        a.how.createhow3_u.obj_attributes.mode.set_it = 1;
        a.how.createhow3_u.obj_attributes.mode.set_mode3_u.mode = 0644;
        s->t0 = bench_now();
        return bench_wqueued(w, s->conn,
                             rpc_nfs3_create_async(w->rpc[s->conn], bench_wcreate_cb, &a, s));
    }
}

/*
 * Remove what the run made, one call at a time on the main connection:
 * the files, then the directory.  Returns 0 or the first errno.
 */
static int bench_wclean(struct bench_wrun *w)
{
    struct bench *b = w->b;
    char name[32];
    uint64_t i, n = w->create ? w->cursor : w->nfiles;
    int err;

    for (i = 0; i < n; i++) {
        if (w->create)
            snprintf(name, sizeof(name), "f%08" PRIu64, i);
        else
            snprintf(name, sizeof(name), "seqwrite_%02u", (unsigned)i);
        err = bench_remove(b, &w->dir, name, false);
        if (err)
            return err;
    }
    return bench_remove(b, &w->parent, w->dirname, true);
}

static int bench_test_write(struct bench *b, bool create, const char *name)
{
    static unsigned runs;
    struct bench_wrun *w;
    double hard, t_writes = 0;
    unsigned i;
    int err = 0;

    w = calloc(1, sizeof(*w));
    if (w == NULL)
        return ENOMEM;
    w->b = b;
    w->create = create;
    w->conns = b->conf.conns;
    w->lat = b->run.lat;
    w->io_size = bench_wsize(b);
    w->buf = malloc(BENCH_MAX_IO);
    if (w->buf == NULL) {
        err = ENOMEM;
        goto out;
    }
    {
        uint64_t s = 0x7772697465ull; /* "write": the same bytes for every server */

        for (i = 0; i + 8 <= BENCH_MAX_IO; i += 8) {
            uint64_t v = bench_rand(&s);

            memcpy(w->buf + i, &v, 8);
        }
    }
    if (create && b->conf.create_max > w->io_size) {
        fprintf(stderr, "nfsbench: -z: %u bytes do not fit one WRITE of %u\n", b->conf.create_max,
                w->io_size);
        err = EINVAL;
        goto out;
    }
    err = bench_resolve(b, b->conf.write_dir, &w->parent, NULL);
    if (err)
        goto out;
    snprintf(w->dirname, sizeof(w->dirname), "nfsbench-%s-%ld-%u", name, (long)getpid(), runs++);
    err = bench_make(b, &w->parent, w->dirname, true, &w->dir);
    if (err)
        goto out;
    w->dir_made = true;
    if (!create) {
        w->nfiles = w->conns;
        for (i = 0; i < w->nfiles; i++) {
            char fname[32];

            snprintf(fname, sizeof(fname), "seqwrite_%02u", i);
            w->files[i].w = w;
            w->files[i].conn = i;
            w->files[i].commit_at = BENCH_COMMIT_EVERY;
            err = bench_make(b, &w->dir, fname, false, &w->files[i].fh);
            if (err)
                goto out;
        }
    }
    w->nslots = w->conns * b->conf.read_depth;
    w->slots = calloc(w->nslots, sizeof(*w->slots));
    if (w->slots == NULL) {
        err = ENOMEM;
        goto out;
    }
    for (i = 0; i < w->nslots; i++) {
        w->slots[i].w = w;
        w->slots[i].conn = i % w->conns;
        w->slots[i].file = create ? NULL : &w->files[i % w->conns];
    }
    for (i = 0; i < w->conns; i++) {
        w->rpc[i] = rpc_init_context();
        if (w->rpc[i] == NULL) {
            err = ENOMEM;
            goto out;
        }
        err = bench_connect(b, w->rpc[i], b->conf.nfs_port, NFS_PROGRAM, NFS_V3);
        if (err)
            goto out;
    }

    memset(w->lat, 0, (BENCH_LAT_BUCKETS + BENCH_SLOW_BUCKETS) * sizeof(*w->lat));
    w->t_start = w->t_last = bench_now();
    w->deadline = w->t_start + b->conf.seconds;
    hard = w->deadline + BENCH_DRAIN_SECONDS;
    for (i = 0; i < w->nslots && !w->stop; i++) {
        err = bench_wissue(&w->slots[i]);
        if (err)
            bench_wfail(w, err, "queueing a request");
    }
    err = bench_drain(w->rpc, w->conns, &w->inflight, &w->stop, w->deadline, hard);
    if (err == 0)
        err = w->err;
    if (err == 0 && !create) {
        /* What is written must reach stable storage before it counts. */
        t_writes = w->t_last;
        for (i = 0; i < w->nfiles && err == 0; i++)
            err = bench_wcommit_file(&w->files[i]);
        if (err == 0)
            err = bench_drain(w->rpc, w->conns, &w->inflight, &w->stop, bench_now(),
                              bench_now() + BENCH_COMMIT_SECONDS);
        if (err == 0)
            err = w->err;
    }
    if (err)
        goto out;
    {
        double el = w->t_last - w->t_start;
        double mib = (double)w->bytes / (1024.0 * 1024.0);

        printf("%s_dir %s\n%s_conns %u\n%s_in_flight %u\n%s_io_size %u\n", name, w->dirname, name,
               w->conns, name, w->nslots, name, w->io_size);
        printf("%s_bytes %" PRIu64 "\n%s_seconds %.3f\n", name, w->bytes, name, el);
        printf("%s_mib_per_s %.1f\n%s_commits %" PRIu64 "\n", name, el > 0 ? mib / el : 0, name,
               w->commits);
        if (create) {
            struct bench_run r = {.completed = w->files_done, .lat = w->lat};

            printf("%s_files %" PRIu64 "\n%s_files_per_s %.0f\n", name, w->files_done, name,
                   el > 0 ? (double)w->files_done / el : 0);
            printf("%s_lat_p50_us %.1f\n%s_lat_p99_us %.1f\n", name, bench_run_quantile(&r, 0.50),
                   name, bench_run_quantile(&r, 0.99));
        } else {
            printf("%s_write_seconds %.3f\n%s_last_commit_seconds %.3f\n", name,
                   t_writes - w->t_start, name, w->t_last - t_writes);
        }
        fflush(stdout);
    }
out:
    /* Contexts first: cancelled requests call back into the slots. */
    for (i = 0; i < w->conns; i++)
        if (w->rpc[i] != NULL)
            rpc_destroy_context(w->rpc[i]);
    if (err == 0 && w->dir_made && !b->conf.keep) {
        /*
         * Out of the measured time: a failure here is reported, and the
         * figures above stand.  (bucketnfs with writeback_delay 0 has been
         * seen refusing the RMDIR: files removed while their upload ended
         * stayed in the bucket.)
         */
        int cerr = bench_wclean(w);

        if (cerr) {
            fprintf(stderr, "nfsbench: warning: removing %s: %s\n", w->dirname, strerror(cerr));
            printf("%s_cleanup_errno %d\n", name, cerr);
        }
    } else if (w->dir_made && !b->conf.keep) {
        fprintf(stderr, "nfsbench: left %s behind (the run failed)\n", w->dirname);
    }
    for (i = 0; i < w->nslots && w->slots != NULL; i++)
        bench_fh_free(&w->slots[i].fh);
    for (i = 0; i < w->nfiles; i++)
        bench_fh_free(&w->files[i].fh);
    bench_fh_free(&w->dir);
    bench_fh_free(&w->parent);
    free(w->slots);
    free(w->buf);
    free(w);
    return err;
}

static bool bench_wants(const struct bench *b, const char *test)
{
    const char *p = b->conf.tests;
    size_t n = strlen(test);

    while (p != NULL && *p != '\0') {
        if (strncmp(p, test, n) == 0 && (p[n] == ',' || p[n] == '\0'))
            return true;
        p = strchr(p, ',');
        if (p != NULL)
            p++;
    }
    return false;
}

static void bench_usage(FILE *f)
{
    fprintf(f, "usage: nfsbench -p NFS_PORT -m MOUNT_PORT -e EXPORT [options]\n"
               "  -s HOST      server address (127.0.0.1)\n"
               "  -T TESTS     comma list of getattr,lookup,readdirplus,read,\n"
               "               seqread,randread,multiread,smallfiles,seqwrite,smallcreate\n"
               "               (default: every test whose path is given)\n"
               "  -f DIR       directory of files for getattr/lookup, relative to the export\n"
               "  -N COUNT     use at most COUNT of its files (10000)\n"
               "  -D DIR       large directory for readdirplus, relative to the export\n"
               "  -E COUNT     fail unless DIR lists exactly COUNT entries\n"
               "  -P PASSES    readdirplus passes at most (3; -t stops them sooner)\n"
               "  -M BYTES     readdirplus maxcount (default: as Linux, from FSINFO)\n"
               "  -b FILE      large file for read, relative to the export\n"
               "  -q DEPTH     requests in flight for getattr/lookup (32); also runs at 1\n"
               "  -Q DEPTH     requests in flight for read (8)\n"
               "  -t SECONDS   time limit per test (10)\n"
               "  -n OPS       operation limit per test (5000000)\n"
               "  -C CONNS     connections of seqread/randread/multiread/smallfiles/seqwrite/\n"
               "               smallcreate (1); each has -Q requests in flight (multiread:\n"
               "               -S x -W in all)\n"
               "  -O           seqread: one pass, stop at EOF (fails unless it gets there);\n"
               "               smallfiles: each file once; smallcreate: exactly -N files\n"
               "  -I BYTES     randread request size (4096)\n"
               "  -S STREAMS   multiread: files of -f read at once, each once to EOF (64)\n"
               "  -W DEPTH     multiread: requests in flight per file (2)\n"
               "  -w DIR       seqwrite/smallcreate: make their directory in DIR, relative\n"
               "               to the export (the export's root)\n"
               "  -B BYTES     seqwrite: bytes per file (one per connection) at most\n"
               "               (default: -t alone decides)\n"
               "  -z MIN,MAX   smallcreate: file sizes in bytes (4096,65536)\n"
               "  -K           keep what seqwrite/smallcreate wrote (default: removed)\n");
}

static int bench_parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s || *end != '\0' || v > max || s[0] == '-')
        return EINVAL;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    struct bench *b;
    unsigned long long v;
    char deflt[64];
    int opt, err = 0, status = 1;
    unsigned i;

    b = calloc(1, sizeof(*b));
    if (b == NULL)
        return 1;
    b->run.lat = calloc(BENCH_LAT_BUCKETS + BENCH_SLOW_BUCKETS, sizeof(*b->run.lat));
    if (b->run.lat == NULL)
        goto out;
    b->conf = (struct bench_conf){.server = "127.0.0.1",
                                  .depth = 32,
                                  .read_depth = 8,
                                  .seconds = 10,
                                  .max_ops = 5000000,
                                  .max_files = 10000,
                                  .passes = 3,
                                  .conns = 1,
                                  .rand_io = 4096,
                                  .streams = 64,
                                  .stream_depth = 2,
                                  .write_dir = "",
                                  .create_min = 4096,
                                  .create_max = 65536};
    while ((opt = getopt(argc, argv, "s:p:m:e:T:f:N:D:E:P:M:b:q:Q:t:n:C:OI:S:W:w:B:z:Kh")) != -1) {
        err = 0;
        switch (opt) {
        case 's': b->conf.server = optarg; break;
        case 'e': b->conf.export_path = optarg; break;
        case 'T': b->conf.tests = optarg; break;
        case 'f': b->conf.files_dir = optarg; break;
        case 'D': b->conf.big_dir = optarg; break;
        case 'b': b->conf.big_file = optarg; break;
        case 'p':
            if ((err = bench_parse_uint(optarg, 65535, &v)) == 0)
                b->conf.nfs_port = (int)v;
            break;
        case 'm':
            if ((err = bench_parse_uint(optarg, 65535, &v)) == 0)
                b->conf.mount_port = (int)v;
            break;
        case 'N':
            if ((err = bench_parse_uint(optarg, 1000000, &v)) == 0 && v > 0)
                b->conf.max_files = (unsigned)v;
            break;
        case 'E':
            if ((err = bench_parse_uint(optarg, 100000000, &v)) == 0)
                b->conf.expect_entries = v;
            break;
        case 'P':
            if ((err = bench_parse_uint(optarg, 1000000, &v)) == 0 && v > 0)
                b->conf.passes = (unsigned)v;
            break;
        case 'M':
            /* RFC 1813 count3 is 32 bits; below 1 KiB no 100k listing is sane. */
            if ((err = bench_parse_uint(optarg, BENCH_MAX_IO * 4ull, &v)) == 0 && v != 0 &&
                v < 1024)
                err = EINVAL;
            if (err == 0)
                b->conf.rdp_maxcount = (uint32_t)v;
            break;
        case 'q':
            if ((err = bench_parse_uint(optarg, BENCH_MAX_DEPTH, &v)) == 0 && v == 0)
                err = EINVAL;
            if (err == 0)
                b->conf.depth = (unsigned)v;
            break;
        case 'Q':
            if ((err = bench_parse_uint(optarg, BENCH_MAX_DEPTH, &v)) == 0 && v == 0)
                err = EINVAL;
            if (err == 0)
                b->conf.read_depth = (unsigned)v;
            break;
        case 't':
            if ((err = bench_parse_uint(optarg, 3600, &v)) == 0 && v == 0)
                err = EINVAL;
            if (err == 0)
                b->conf.seconds = (double)v;
            break;
        case 'n':
            if ((err = bench_parse_uint(optarg, UINT64_MAX, &v)) == 0 && v == 0)
                err = EINVAL;
            if (err == 0)
                b->conf.max_ops = v;
            break;
        case 'C':
            if ((err = bench_parse_uint(optarg, BENCH_MAX_CONNS, &v)) == 0 && v == 0)
                err = EINVAL;
            if (err == 0)
                b->conf.conns = (unsigned)v;
            break;
        case 'O': b->conf.once = true; break;
        case 'I':
            if ((err = bench_parse_uint(optarg, BENCH_MAX_IO, &v)) == 0 && v < 512)
                err = EINVAL;
            if (err == 0)
                b->conf.rand_io = (uint32_t)v;
            break;
        case 'S':
            if ((err = bench_parse_uint(optarg, 1024, &v)) == 0 && v == 0)
                err = EINVAL;
            if (err == 0)
                b->conf.streams = (unsigned)v;
            break;
        case 'W':
            if ((err = bench_parse_uint(optarg, 64, &v)) == 0 && v == 0)
                err = EINVAL;
            if (err == 0)
                b->conf.stream_depth = (unsigned)v;
            break;
        case 'w': b->conf.write_dir = optarg; break;
        case 'K': b->conf.keep = true; break;
        case 'B':
            if ((err = bench_parse_uint(optarg, UINT64_MAX, &v)) == 0 && v == 0)
                err = EINVAL;
            if (err == 0)
                b->conf.write_bytes = v;
            break;
        case 'z': {
            unsigned long long lo, hi;
            char *comma = strchr(optarg, ',');

            err = EINVAL;
            if (comma != NULL) {
                *comma = '\0';
                if (bench_parse_uint(optarg, BENCH_MAX_IO, &lo) == 0 &&
                    bench_parse_uint(comma + 1, BENCH_MAX_IO, &hi) == 0 && lo <= hi) {
                    b->conf.create_min = (uint32_t)lo;
                    b->conf.create_max = (uint32_t)hi;
                    err = 0;
                }
                *comma = ',';
            }
            break;
        }
        case 'h':
            bench_usage(stdout);
            status = 0;
            goto out;
        default:
            bench_usage(stderr);
            status = 2;
            goto out;
        }
        if (err) {
            fprintf(stderr, "nfsbench: bad value for -%c: %s\n", opt, optarg);
            status = 2;
            goto out;
        }
    }
    if (b->conf.nfs_port == 0 || b->conf.mount_port == 0 || b->conf.export_path == NULL ||
        optind != argc) {
        bench_usage(stderr);
        status = 2;
        goto out;
    }
    if (b->conf.tests == NULL) {
        snprintf(deflt, sizeof(deflt), "%s%s%s", b->conf.files_dir ? "getattr,lookup," : "",
                 b->conf.big_dir ? "readdirplus," : "", b->conf.big_file ? "read" : "");
        b->conf.tests = deflt;
    }
    if ((bench_wants(b, "getattr") || bench_wants(b, "lookup")) && b->conf.files_dir == NULL) {
        fprintf(stderr, "nfsbench: getattr and lookup need -f DIR\n");
        status = 2;
        goto out;
    }
    if (bench_wants(b, "readdirplus") && b->conf.big_dir == NULL) {
        fprintf(stderr, "nfsbench: readdirplus needs -D DIR\n");
        status = 2;
        goto out;
    }
    if ((bench_wants(b, "seqread") || bench_wants(b, "randread")) && b->conf.big_file == NULL) {
        fprintf(stderr, "nfsbench: seqread and randread need -b FILE\n");
        status = 2;
        goto out;
    }
    if ((bench_wants(b, "multiread") || bench_wants(b, "smallfiles")) &&
        b->conf.files_dir == NULL) {
        fprintf(stderr, "nfsbench: multiread and smallfiles need -f DIR\n");
        status = 2;
        goto out;
    }
    if (bench_wants(b, "read") && b->conf.big_file == NULL) {
        fprintf(stderr, "nfsbench: read needs -b FILE\n");
        status = 2;
        goto out;
    }

    err = bench_mount(b);
    if (err) {
        fprintf(stderr, "nfsbench: mount %s:%s failed: %s\n", b->conf.server, b->conf.export_path,
                strerror(err));
        goto out;
    }
    b->rpc = rpc_init_context();
    if (b->rpc == NULL)
        goto out;
    err = bench_connect(b, b->rpc, b->conf.nfs_port, NFS_PROGRAM, NFS_V3);
    if (err == 0)
        err = bench_fsinfo(b);
    if (err) {
        fprintf(stderr, "nfsbench: NFS service at %s:%d: %s\n", b->conf.server, b->conf.nfs_port,
                strerror(err));
        goto out;
    }
    printf("server_rtmax %u\nserver_dtpref %u\nserver_wtmax %u\nserver_wtpref %u\n", b->rtmax,
           b->dtpref, b->wtmax, b->wtpref);

    if (bench_wants(b, "getattr") && (err = bench_test_meta(b, BENCH_GETATTR, "getattr")))
        goto fail;
    if (bench_wants(b, "lookup") && (err = bench_test_meta(b, BENCH_LOOKUP, "lookup")))
        goto fail;
    if (bench_wants(b, "readdirplus") && (err = bench_test_readdirplus(b)))
        goto fail;
    if (bench_wants(b, "read") && (err = bench_test_read(b)))
        goto fail;
    if (bench_wants(b, "seqread") && (err = bench_test_multi(b, BENCH_M_SEQ, "seqread")))
        goto fail;
    if (bench_wants(b, "randread") && (err = bench_test_multi(b, BENCH_M_RAND, "randread")))
        goto fail;
    if (bench_wants(b, "multiread") && (err = bench_test_multi(b, BENCH_M_MULTI, "multiread")))
        goto fail;
    if (bench_wants(b, "smallfiles") && (err = bench_test_multi(b, BENCH_M_SMALL, "smallfiles")))
        goto fail;
    if (bench_wants(b, "seqwrite") && (err = bench_test_write(b, false, "seqwrite")))
        goto fail;
    if (bench_wants(b, "smallcreate") && (err = bench_test_write(b, true, "smallcreate")))
        goto fail;
    status = 0;
    goto out;
fail:
    fprintf(stderr, "nfsbench: aborted: %s\n", strerror(err));
out:
    /* The context goes first: cancelled requests call back into b->run. */
    if (b->rpc != NULL)
        rpc_destroy_context(b->rpc);
    for (i = 0; i < b->nfiles; i++) {
        free(b->names[i]);
        bench_fh_free(&b->fhs[i]);
    }
    free(b->names);
    free(b->fhs);
    free(b->sizes);
    bench_fh_free(&b->files_fh);
    bench_fh_free(&b->root);
    bench_fh_free(&b->call.fh);
    free(b->run.lat);
    free(b);
    return status;
}
