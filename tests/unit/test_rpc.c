/*
 * test_rpc.c - the RPC layer seen from the wire.
 *
 * Starts an rpc_server on 127.0.0.1 (port 0) serving a test program and
 * talks to it over raw TCP and UDP sockets with hand-built records, then
 * with libtirpc's own client to prove interoperability.  Every socket read
 * has a receive timeout, so a server bug fails a check instead of hanging.
 */
#include "rpc/oncrpc.h"
#include "rpc/rpc_internal.h"
#include "tests/unit/testlib.h"

#include "common/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TPROG 0x20000099u
#define MAX_RECORD 8192
#define RECV_TIMEOUT_S 5

enum { P_NULL, P_ECHO, P_SLOW, P_CRED, P_GREET, P_TOOBIG, P_HOLE, P_BIG, P_FAST, P_BIGOVER,
       P_ASYNC, P_NWASYNC, P_COUNT, P_FILE, NPROCS };

#define BIG_REPLY (256 * 1024)

/* ---- the test program -------------------------------------------------- */

struct cred_res {
    uint32_t uid, gid, ngids, gids[RPC_AUTH_SYS_MAX_GIDS];
};

/* XDR routines with their natural types, cast to xdrproc_t as rpcgen output is. */
static bool_t xdr_cred_res(XDR *x, struct cred_res *r)
{
    if (!xdr_u_int(x, &r->uid) || !xdr_u_int(x, &r->gid) || !xdr_u_int(x, &r->ngids))
        return FALSE;
    for (uint32_t i = 0; i < r->ngids && i < RPC_AUTH_SYS_MAX_GIDS; i++)
        if (!xdr_u_int(x, &r->gids[i]))
            return FALSE;
    return TRUE;
}

static bool_t xdr_str_res(XDR *x, char **p)
{
    return xdr_string(x, p, 1024);
}

static bool_t xdr_big_res(XDR *x, char **p)
{
    return xdr_opaque(x, *p, BIG_REPLY);
}

static bool_t xdr_nothing(XDR *x, void *p)
{
    return TRUE;
}

#define XP(f) ((xdrproc_t)(f))

static enum rpc_handler_status h_null(struct rpc_req *req, void *args, void *res)
{
    return RPC_HANDLER_OK;
}

static enum rpc_handler_status h_echo(struct rpc_req *req, void *args, void *res)
{
    *(uint32_t *)res = *(uint32_t *)args;
    return RPC_HANDLER_OK;
}

static enum rpc_handler_status h_slow(struct rpc_req *req, void *args, void *res)
{
    struct timespec ts = {1, 500000000};
    nanosleep(&ts, NULL);
    *(uint32_t *)res = *(uint32_t *)args;
    return RPC_HANDLER_OK;
}

static enum rpc_handler_status h_cred(struct rpc_req *req, void *args, void *res)
{
    struct cred_res *r = res;
    r->uid = req->cred.uid;
    r->gid = req->cred.gid;
    r->ngids = req->cred.ngids;
    memcpy(r->gids, req->cred.gids, sizeof(r->gids));
    return RPC_HANDLER_OK;
}

/* Builds its reply in the request arena, in many small pieces and one big one. */
static enum rpc_handler_status h_greet(struct rpc_req *req, void *args, void *res)
{
    for (int i = 0; i < 100; i++)
        rpc_alloc(req, 100);
    char *big = rpc_alloc(req, 20000);
    CHECK(big[0] == 0 && big[19999] == 0);
    char *s = rpc_strdup(req, "hello from the arena");
    *(char **)res = s;
    return RPC_HANDLER_OK;
}

static int released;

static void r_greet(struct rpc_req *req, void *res)
{
    __atomic_fetch_add(&released, 1, __ATOMIC_RELAXED);
}

/* A result larger than the declared max_reply: the server must answer SYSTEM_ERR. */
static enum rpc_handler_status h_toobig(struct rpc_req *req, void *args, void *res)
{
    char *s = rpc_alloc(req, 1001);
    memset(s, 'x', 1000);
    *(char **)res = s;
    return RPC_HANDLER_OK;
}

/* A large reply filled with the low byte of the xid. */
static enum rpc_handler_status h_big(struct rpc_req *req, void *args, void *res)
{
    char *b = rpc_alloc(req, BIG_REPLY);
    memset(b, (int)(req->xid & 0xff), BIG_REPLY);
    *(char **)res = b;
    return RPC_HANDLER_OK;
}

/*
 * P_FAST: the worker's handler answers 2000 + arg; the event loop's
 * handler_nowait answers 1000 + arg for an even arg and gives an odd one
 * back to a worker (RPC_HANDLER_WOULDBLOCK), so a reply tells who ran it.
 */
static int fast_released;

static enum rpc_handler_status h_fast(struct rpc_req *req, void *args, void *res)
{
    *(uint32_t *)res = 2000 + *(uint32_t *)args;
    return RPC_HANDLER_OK;
}

static enum rpc_handler_status h_fast_nowait(struct rpc_req *req, void *args, void *res)
{
    uint32_t a = *(uint32_t *)args;
    rpc_alloc(req, 64); /* arena memory is freed on either outcome */
    if (a & 1)
        return RPC_HANDLER_WOULDBLOCK;
    *(uint32_t *)res = 1000 + a;
    return RPC_HANDLER_OK;
}

static void r_fast(struct rpc_req *req, void *res)
{
    __atomic_fetch_add(&fast_released, 1, __ATOMIC_RELAXED);
}

/*
 * P_ASYNC: the handler takes the call (RPC_HANDLER_ASYNC) and it is
 * answered later, 5000 + payload and a note "p<payload>" built in the
 * request arena by the completing thread, with the status asked for:
 *   A_LATER       the completer thread answers it after delay_ms
 *   A_HOLD        the completer answers it once the test releases it
 *   A_INLINE      the handler calls rpc_complete itself before returning
 *   A_THREAD_NOW  a new thread answers it at once, racing the handler's return
 * P_NWASYNC: a handler_nowait that (wrongly) returns RPC_HANDLER_ASYNC.
 */
enum { A_LATER, A_HOLD, A_INLINE, A_THREAD_NOW };

struct async_args {
    uint32_t mode, delay_ms, payload, status;
};

struct async_res {
    uint32_t value;
    char *note;
};

static bool_t xdr_async_args(XDR *x, struct async_args *a)
{
    return xdr_u_int(x, &a->mode) && xdr_u_int(x, &a->delay_ms) && xdr_u_int(x, &a->payload) &&
           xdr_u_int(x, &a->status);
}

static bool_t xdr_async_res(XDR *x, struct async_res *r)
{
    return xdr_u_int(x, &r->value) && xdr_string(x, &r->note, 64);
}

/* A call the completer holds; lives in the call's own arena. */
struct held {
    struct held *next;
    struct rpc_req *req;
    struct async_res *res;
    uint32_t payload;
    enum rpc_handler_status status;
    double due; /* now_s() time to answer; < 0: until released */
};

static double now_s(void);

static pthread_mutex_t a_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t a_wake = PTHREAD_COND_INITIALIZER; /* a call was added or released */
static struct held *a_list;
static bool a_quit;
static int async_released;

static void held_complete(struct held *h)
{
    struct rpc_req *req = h->req;
    enum rpc_handler_status st = h->status;
    h->res->value = 5000 + h->payload;
    h->res->note = rpc_alloc(req, 32); /* the arena, from another thread */
    snprintf(h->res->note, 32, "p%u", h->payload);
    rpc_complete(req, st); /* h, req and res are gone from here on */
}

static void *completer_main(void *arg)
{
    pthread_mutex_lock(&a_lock);
    while (!a_quit) {
        double now = now_s();
        struct held *h = NULL;
        for (struct held **pp = &a_list; *pp; pp = &(*pp)->next) {
            if ((*pp)->due >= 0 && (*pp)->due <= now) {
                h = *pp;
                *pp = h->next;
                break;
            }
        }
        if (h) {
            pthread_mutex_unlock(&a_lock);
            held_complete(h);
            pthread_mutex_lock(&a_lock);
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 2000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&a_wake, &a_lock, &ts);
    }
    pthread_mutex_unlock(&a_lock);
    return NULL;
}

static void *complete_now_main(void *arg)
{
    held_complete(arg);
    return NULL;
}

/* Release the held call with this payload (all held calls if `all`); how many were found. */
static int async_release(uint32_t payload, bool all)
{
    int n = 0;
    pthread_mutex_lock(&a_lock);
    for (struct held *h = a_list; h; h = h->next) {
        if (h->due < 0 && (all || h->payload == payload)) {
            h->due = 0;
            n++;
        }
    }
    pthread_cond_signal(&a_wake);
    pthread_mutex_unlock(&a_lock);
    return n;
}

static enum rpc_handler_status h_async(struct rpc_req *req, void *args, void *res)
{
    struct async_args *a = args;
    struct async_res *r = res;

    if (a->mode == A_INLINE) {
        r->value = 5000 + a->payload;
        r->note = rpc_strdup(req, "inline");
        rpc_complete(req, (enum rpc_handler_status)a->status);
        return RPC_HANDLER_ASYNC; /* and touch nothing of the call */
    }
    struct held *h = rpc_alloc(req, sizeof(*h));
    h->req = req;
    h->res = r;
    h->payload = a->payload;
    h->status = (enum rpc_handler_status)a->status;
    if (a->mode == A_THREAD_NOW) {
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &at, complete_now_main, h) != 0)
            held_complete(h);
        pthread_attr_destroy(&at);
        return RPC_HANDLER_ASYNC;
    }
    h->due = a->mode == A_HOLD ? -1 : now_s() + a->delay_ms / 1000.0;
    pthread_mutex_lock(&a_lock);
    h->next = a_list;
    a_list = h;
    pthread_cond_signal(&a_wake);
    pthread_mutex_unlock(&a_lock);
    return RPC_HANDLER_ASYNC;
}

static void r_async(struct rpc_req *req, void *res)
{
    __atomic_fetch_add(&async_released, 1, __ATOMIC_RELAXED);
}

static enum rpc_handler_status h_nowait_async(struct rpc_req *req, void *args, void *res)
{
    return RPC_HANDLER_ASYNC; /* a contract violation the server must survive */
}

/* P_COUNT: not idempotent (dup_cache): each run adds one to a counter and answers it plus the argument. */
static atomic_uint count_runs;

static enum rpc_handler_status h_count(struct rpc_req *req, void *args, void *res)
{
    *(uint32_t *)res = atomic_fetch_add(&count_runs, 1) + 1 + *(uint32_t *)args * 1000u;
    return RPC_HANDLER_OK;
}

/*
 * P_FILE: a reply whose data comes from a file (rpc_reply_filesegs): arg
 * bytes of fileseg_path from offset 5, in two segments, as an opaque after
 * a word 0xf11e; arg 0 attaches them and then answers GARBAGE_ARGS (the
 * segments must be released unsent).
 */
static int fileseg_fd = -1;
static atomic_int fileseg_done;

static void fileseg_release(void *arg)
{
    (void)arg;
    atomic_fetch_add(&fileseg_done, 1);
}

struct file_res {
    uint32_t magic, len;
};

static bool_t xdr_file_res(XDR *x, struct file_res *r)
{
    return xdr_u_int(x, &r->magic) && xdr_u_int(x, &r->len); /* the bytes follow from the file */
}

static enum rpc_handler_status h_file(struct rpc_req *req, void *args, void *res)
{
    uint32_t n = *(uint32_t *)args;
    struct file_res *r = res;
    uint32_t half = n / 2;
    struct rpc_fileseg segs[2] = {{fileseg_fd, 5, half}, {fileseg_fd, 5 + half, n - half}};
    if (rpc_reply_filesegs(req, segs, n ? 2 : 1, fileseg_release, NULL) != 0)
        return RPC_HANDLER_SYSTEM_ERR;
    if (n == 0)
        return RPC_HANDLER_GARBAGE;
    r->magic = 0xf11e;
    r->len = n;
    return RPC_HANDLER_OK;
}

static const struct rpc_proc tprocs[NPROCS] = {
    [P_NULL] = {"null", NULL, 0, NULL, 0, h_null, 0, NULL},
    [P_ECHO] = {"echo", XP(xdr_u_int), sizeof(uint32_t), XP(xdr_u_int), sizeof(uint32_t), h_echo, 4,
                NULL},
    [P_SLOW] = {"slow", XP(xdr_u_int), sizeof(uint32_t), XP(xdr_u_int), sizeof(uint32_t), h_slow, 4,
                NULL},
    [P_CRED] = {"cred", NULL, 0, XP(xdr_cred_res), sizeof(struct cred_res), h_cred, 80, NULL},
    [P_GREET] = {"greet", NULL, 0, XP(xdr_str_res), sizeof(char *), h_greet, 128, r_greet},
    [P_TOOBIG] = {"toobig", NULL, 0, XP(xdr_str_res), sizeof(char *), h_toobig, 64, NULL},
    [P_HOLE] = {"hole", NULL, 0, NULL, 0, NULL, 0, NULL},
    [P_BIG] = {"big", NULL, 0, XP(xdr_big_res), sizeof(char *), h_big, BIG_REPLY, NULL},
    /* A large procedure (reply buffer sized by need) whose result is over its max_reply. */
    [P_BIGOVER] = {"bigover", NULL, 0, XP(xdr_big_res), sizeof(char *), h_big, BIG_REPLY / 2, NULL},
    [P_FAST] = {"fast", XP(xdr_u_int), sizeof(uint32_t), XP(xdr_u_int), sizeof(uint32_t), h_fast, 4,
                r_fast, h_fast_nowait},
    [P_ASYNC] = {"async", XP(xdr_async_args), sizeof(struct async_args), XP(xdr_async_res),
                 sizeof(struct async_res), h_async, 80, r_async},
    [P_NWASYNC] = {"nwasync", XP(xdr_u_int), sizeof(uint32_t), XP(xdr_u_int), sizeof(uint32_t),
                   h_echo, 4, NULL, h_nowait_async},
    [P_COUNT] = {"count", XP(xdr_u_int), sizeof(uint32_t), XP(xdr_u_int), sizeof(uint32_t), h_count,
                 4, NULL, NULL, true},
    [P_FILE] = {"file", XP(xdr_u_int), sizeof(uint32_t), XP(xdr_file_res), sizeof(struct file_res),
                h_file, 64, NULL},
};

/*
 * rpc_program.observe of version 1: calls per procedure, the shortest
 * P_SLOW (its handler sleeps 1.5 s) and the P_FAST results seen.
 */
static uint64_t obs_calls[NPROCS], obs_slow_min_ns = UINT64_MAX, obs_max_ns;
static uint32_t obs_fast_sum;
static pthread_mutex_t obs_mu = PTHREAD_MUTEX_INITIALIZER;

static void observe(void *ctx, uint32_t proc, const void *res, uint64_t nsec)
{
    pthread_mutex_lock(&obs_mu);
    if (proc < NPROCS)
        obs_calls[proc]++;
    if (proc == P_SLOW && nsec < obs_slow_min_ns)
        obs_slow_min_ns = nsec;
    if (proc == P_FAST)
        obs_fast_sum += *(const uint32_t *)res;
    if (nsec > obs_max_ns)
        obs_max_ns = nsec;
    pthread_mutex_unlock(&obs_mu);
}

/* ---- raw wire helpers -------------------------------------------------- */

struct wbuf {
    uint8_t b[4096];
    size_t n;
};

static void put32(struct wbuf *w, uint32_t v)
{
    uint32_t be = htonl(v);
    memcpy(w->b + w->n, &be, 4);
    w->n += 4;
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t be;
    memcpy(&be, p, 4);
    return ntohl(be);
}

/* Call header with AUTH_NONE credentials. */
static void call_hdr(struct wbuf *w, uint32_t xid, uint32_t rpcvers, uint32_t prog,
                     uint32_t vers, uint32_t proc)
{
    w->n = 0;
    put32(w, xid);
    put32(w, 0); /* CALL */
    put32(w, rpcvers);
    put32(w, prog);
    put32(w, vers);
    put32(w, proc);
    put32(w, AUTH_NONE);
    put32(w, 0);
    put32(w, AUTH_NONE);
    put32(w, 0);
}

/* Call header with AUTH_SYS credentials carrying ngids groups (1000, 1001, ...). */
static void call_hdr_sys(struct wbuf *w, uint32_t xid, uint32_t proc, uint32_t ngids)
{
    w->n = 0;
    put32(w, xid);
    put32(w, 0);
    put32(w, 2);
    put32(w, TPROG);
    put32(w, 1);
    put32(w, proc);
    put32(w, AUTH_SYS);
    put32(w, 4 + 4 + 8 + 4 + 4 + 4 + 4 * ngids);
    put32(w, 12345);    /* stamp */
    put32(w, 5);        /* machinename "node1" + 3 bytes padding */
    memcpy(w->b + w->n, "node1\0\0\0", 8);
    w->n += 8;
    put32(w, 4242);     /* uid */
    put32(w, 77);       /* gid */
    put32(w, ngids);
    for (uint32_t i = 0; i < ngids; i++)
        put32(w, 1000 + i);
    put32(w, AUTH_NONE);
    put32(w, 0);
}

/* When set, connections come from this source port (the duplicate request cache keys on it). */
static uint16_t src_port;

static int tcp_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (src_port) {
        /* Closed with a reset (no TIME_WAIT), so the port is free again at once. */
        int one = 1;
        struct linger lg = {1, 0};
        struct sockaddr_in me = {.sin_family = AF_INET, .sin_port = htons(src_port)};
        me.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        if (bind(fd, (struct sockaddr *)&me, sizeof(me)) < 0) {
            close(fd);
            return -1;
        }
    }
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {RECV_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        b += w;
        n -= (size_t)w;
    }
    return true;
}

/* Send w as one record split into nfrag fragments. */
static bool send_record(int fd, const struct wbuf *w, unsigned nfrag)
{
    size_t off = 0;
    for (unsigned i = 0; i < nfrag; i++) {
        size_t len = i + 1 == nfrag ? w->n - off : w->n / nfrag;
        uint32_t mark = htonl((i + 1 == nfrag ? RPC_LAST_FRAG : 0) | (uint32_t)len);
        if (!write_all(fd, &mark, 4) || !write_all(fd, w->b + off, len))
            return false;
        off += len;
    }
    return true;
}

static bool read_full(int fd, void *p, size_t n)
{
    uint8_t *b = p;
    while (n) {
        ssize_t r = recv(fd, b, n, 0);
        if (r <= 0)
            return false;
        b += r;
        n -= (size_t)r;
    }
    return true;
}

/* One reply record into buf; returns its length, or -1 on EOF/timeout. */
static ssize_t recv_record(int fd, uint8_t *buf, size_t cap)
{
    size_t len = 0;
    for (int frags = 0; frags < 16; frags++) {
        uint8_t m[4];
        if (!read_full(fd, m, 4))
            return -1;
        uint32_t mark = get32(m);
        uint32_t fl = mark & ~RPC_LAST_FRAG;
        if (fl > cap - len || !read_full(fd, buf + len, fl))
            return -1;
        len += fl;
        if (mark & RPC_LAST_FRAG)
            return (ssize_t)len;
    }
    return -1;
}

/* True when the server closed the connection (EOF or reset) within the timeout. */
static bool peer_closed(int fd)
{
    uint8_t b[64];
    for (int i = 0; i < 100; i++) {
        ssize_t r = recv(fd, b, sizeof(b), 0);
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            return true;
        if (r < 0)
            return false; /* timeout */
    }
    return false;
}

struct reply {
    uint32_t xid, reply_stat, stat; /* stat: accept_stat or reject_stat */
    uint32_t a, b;                  /* mismatch low/high, auth_stat, or first result words */
    const uint8_t *body;            /* results, for accepted replies */
    size_t body_len;
};

/* Parse a reply record; false if it is malformed. */
static bool parse_reply(const uint8_t *p, ssize_t n, struct reply *r)
{
    memset(r, 0, sizeof(*r));
    if (n < 12 || get32(p + 4) != 1)
        return false;
    r->xid = get32(p);
    r->reply_stat = get32(p + 8);
    if (r->reply_stat == MSG_ACCEPTED) {
        if (n < 24 || get32(p + 12) != AUTH_NONE || get32(p + 16) != 0)
            return false;
        r->stat = get32(p + 20);
        r->body = p + 24;
        r->body_len = (size_t)n - 24;
        if (r->body_len >= 4)
            r->a = get32(p + 24);
        if (r->body_len >= 8)
            r->b = get32(p + 28);
        return true;
    }
    if (n < 20)
        return false;
    r->stat = get32(p + 12);
    r->a = get32(p + 16);
    if (n >= 24)
        r->b = get32(p + 20);
    return true;
}

/* One call on a fresh connection; false on any transport failure. */
static bool call_once(uint16_t port, const struct wbuf *w, struct reply *r, uint8_t *buf,
                      size_t cap)
{
    int fd = tcp_connect(port);
    if (fd < 0)
        return false;
    bool ok = send_record(fd, w, 1);
    ssize_t n = ok ? recv_record(fd, buf, cap) : -1;
    close(fd);
    return n >= 0 && parse_reply(buf, n, r);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- tests ------------------------------------------------------------- */

static void test_basic(uint16_t port)
{
    struct wbuf w;
    struct reply r;
    uint8_t buf[4096];

    call_hdr(&w, 1, 2, TPROG, 1, P_NULL);
    CHECK(call_once(port, &w, &r, buf, sizeof(buf)));
    CHECK_EQ_INT(r.xid, 1);
    CHECK_EQ_INT(r.reply_stat, MSG_ACCEPTED);
    CHECK_EQ_INT(r.stat, SUCCESS);
    CHECK_EQ_INT(r.body_len, 0);

    call_hdr(&w, 2, 2, TPROG, 1, P_ECHO);
    put32(&w, 0xdeadbeef);
    CHECK(call_once(port, &w, &r, buf, sizeof(buf)));
    CHECK_EQ_INT(r.xid, 2);
    CHECK_EQ_INT(r.stat, SUCCESS);
    CHECK_EQ_INT(r.a, 0xdeadbeef);

    /* Arena-built reply, and the release hook ran. */
    call_hdr(&w, 3, 2, TPROG, 1, P_GREET);
    CHECK(call_once(port, &w, &r, buf, sizeof(buf)));
    CHECK_EQ_INT(r.stat, SUCCESS);
    CHECK_EQ_INT(r.a, 20);
    CHECK(r.body_len >= 24 && memcmp(r.body + 4, "hello from the arena", 20) == 0);
    CHECK_EQ_INT(__atomic_load_n(&released, __ATOMIC_RELAXED), 1);

    /* A result that does not fit max_reply: SYSTEM_ERR, not a crash or a cut reply. */
    call_hdr(&w, 4, 2, TPROG, 1, P_TOOBIG);
    CHECK(call_once(port, &w, &r, buf, sizeof(buf)));
    CHECK_EQ_INT(r.xid, 4);
    CHECK_EQ_INT(r.stat, SYSTEM_ERR);
    call_hdr(&w, 5, 2, TPROG, 1, P_BIGOVER);
    CHECK(call_once(port, &w, &r, buf, sizeof(buf)));
    CHECK_EQ_INT(r.xid, 5);
    CHECK_EQ_INT(r.stat, SYSTEM_ERR);
}

static void test_errors(uint16_t port)
{
    struct wbuf w;
    struct reply r;
    uint8_t buf[4096];

    /* Garbage after a valid header: two bytes where a uint is expected. */
    call_hdr(&w, 10, 2, TPROG, 1, P_ECHO);
    w.b[w.n++] = 0x12;
    w.b[w.n++] = 0x34;
    CHECK(call_once(port, &w, &r, buf, sizeof(buf)));
    CHECK_EQ_INT(r.xid, 10);
    CHECK_EQ_INT(r.reply_stat, MSG_ACCEPTED);
    CHECK_EQ_INT(r.stat, GARBAGE_ARGS);

    call_hdr(&w, 11, 2, 0x20000777, 1, P_NULL);
    CHECK(call_once(port, &w, &r, buf, sizeof(buf)));
    CHECK_EQ_INT(r.stat, PROG_UNAVAIL);

    /* Versions 1 and 3 are served. */
    call_hdr(&w, 12, 2, TPROG, 2, P_NULL);
    CHECK(call_once(port, &w, &r, buf, sizeof(buf)));
    CHECK_EQ_INT(r.stat, PROG_MISMATCH);
    CHECK_EQ_INT(r.a, 1);
    CHECK_EQ_INT(r.b, 3);

    call_hdr(&w, 13, 2, TPROG, 1, 99);
    CHECK(call_once(port, &w, &r, buf, sizeof(buf)));
    CHECK_EQ_INT(r.stat, PROC_UNAVAIL);

    call_hdr(&w, 14, 2, TPROG, 1, P_HOLE);
    CHECK(call_once(port, &w, &r, buf, sizeof(buf)));
    CHECK_EQ_INT(r.stat, PROC_UNAVAIL);

    call_hdr(&w, 15, 3, TPROG, 1, P_NULL);
    CHECK(call_once(port, &w, &r, buf, sizeof(buf)));
    CHECK_EQ_INT(r.xid, 15);
    CHECK_EQ_INT(r.reply_stat, MSG_DENIED);
    CHECK_EQ_INT(r.stat, RPC_MISMATCH);
    CHECK_EQ_INT(r.a, 2);
    CHECK_EQ_INT(r.b, 2);

    /* 100 groups: the credential body is over 400 bytes. */
    call_hdr_sys(&w, 16, P_CRED, 100);
    CHECK(call_once(port, &w, &r, buf, sizeof(buf)));
    CHECK_EQ_INT(r.reply_stat, MSG_DENIED);
    CHECK_EQ_INT(r.stat, AUTH_ERROR);
    CHECK_EQ_INT(r.a, AUTH_BADCRED);

    /* 17 groups fit in 400 bytes but break the AUTH_SYS limit of 16. */
    call_hdr_sys(&w, 17, P_CRED, 17);
    CHECK(call_once(port, &w, &r, buf, sizeof(buf)));
    CHECK_EQ_INT(r.stat, AUTH_ERROR);
    CHECK_EQ_INT(r.a, AUTH_BADCRED);

    /* An unsupported flavor (RPCSEC_GSS = 6). */
    call_hdr(&w, 18, 2, TPROG, 1, P_NULL);
    w.b[27] = 6;
    CHECK(call_once(port, &w, &r, buf, sizeof(buf)));
    CHECK_EQ_INT(r.reply_stat, MSG_DENIED);
    CHECK_EQ_INT(r.stat, AUTH_ERROR);
    CHECK_EQ_INT(r.a, AUTH_REJECTEDCRED);
}

static void test_authsys(uint16_t port)
{
    struct wbuf w;
    struct reply r;
    uint8_t buf[4096];

    call_hdr_sys(&w, 20, P_CRED, RPC_AUTH_SYS_MAX_GIDS);
    CHECK(call_once(port, &w, &r, buf, sizeof(buf)));
    CHECK_EQ_INT(r.stat, SUCCESS);
    CHECK_EQ_INT(r.a, 4242);
    CHECK_EQ_INT(r.b, 77);
    CHECK(r.body_len == 12 + 4 * RPC_AUTH_SYS_MAX_GIDS);
    if (r.body_len == 12 + 4 * RPC_AUTH_SYS_MAX_GIDS) {
        CHECK_EQ_INT(get32(r.body + 8), RPC_AUTH_SYS_MAX_GIDS);
        CHECK_EQ_INT(get32(r.body + 12), 1000);
        CHECK_EQ_INT(get32(r.body + 12 + 4 * 15), 1015);
    }

    call_hdr(&w, 21, 2, TPROG, 1, P_CRED);
    CHECK(call_once(port, &w, &r, buf, sizeof(buf)));
    CHECK_EQ_INT(r.stat, SUCCESS);
    CHECK_EQ_INT(r.body_len, 12); /* AUTH_NONE: no ids, no groups */
}

/* Slow call first, fast call second, same connection: the fast reply comes first. */
static void test_out_of_order(uint16_t port)
{
    struct wbuf w;
    struct reply r1, r2;
    uint8_t buf[4096];
    int fd = tcp_connect(port);
    CHECK(fd >= 0);
    if (fd < 0)
        return;

    double t0 = now_s();
    call_hdr(&w, 100, 2, TPROG, 1, P_SLOW);
    put32(&w, 1);
    CHECK(send_record(fd, &w, 1));
    call_hdr(&w, 101, 2, TPROG, 1, P_ECHO);
    put32(&w, 2);
    CHECK(send_record(fd, &w, 1));

    ssize_t n = recv_record(fd, buf, sizeof(buf));
    double t1 = now_s() - t0;
    CHECK(parse_reply(buf, n, &r1));
    n = recv_record(fd, buf, sizeof(buf));
    double t2 = now_s() - t0;
    CHECK(parse_reply(buf, n, &r2));
    close(fd);

    CHECK_EQ_INT(r1.xid, 101);
    CHECK_EQ_INT(r1.a, 2);
    CHECK_EQ_INT(r2.xid, 100);
    CHECK_EQ_INT(r2.a, 1);
    /* "Did not wait for the slow one", with generous bounds. */
    CHECK(t1 < 1.0);
    CHECK(t2 >= 1.4);
}

/* Record mark and body in one write, so the server reads the call whole at once. */
static bool send_whole(int fd, const struct wbuf *w)
{
    uint8_t b[sizeof(w->b) + 4];
    uint32_t mark = htonl(RPC_LAST_FRAG | (uint32_t)w->n);
    memcpy(b, &mark, 4);
    memcpy(b + 4, w->b, w->n);
    return write_all(fd, b, w->n + 4);
}

/*
 * The event loop's fast path: a lone call is answered by handler_nowait; a
 * call it gives back is answered by the worker's handler, exactly once;
 * neither waits behind a slow call on the same connection.
 */
static void test_fast_path(uint16_t port)
{
    struct wbuf w;
    struct reply r;
    uint8_t buf[4096];
    int fd = tcp_connect(port);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    int rel0 = __atomic_load_n(&fast_released, __ATOMIC_RELAXED);

    /* Alone on an idle server: the loop answers it. */
    call_hdr(&w, 300, 2, TPROG, 1, P_FAST);
    put32(&w, 4);
    CHECK(send_whole(fd, &w));
    CHECK(parse_reply(buf, recv_record(fd, buf, sizeof(buf)), &r));
    CHECK_EQ_INT(r.xid, 300);
    CHECK_EQ_INT(r.stat, SUCCESS);
    CHECK_EQ_INT(r.a, 1004);

    /* Given back: a worker answers it, once. */
    call_hdr(&w, 301, 2, TPROG, 1, P_FAST);
    put32(&w, 5);
    CHECK(send_whole(fd, &w));
    CHECK(parse_reply(buf, recv_record(fd, buf, sizeof(buf)), &r));
    CHECK_EQ_INT(r.xid, 301);
    CHECK_EQ_INT(r.a, 2005);

    /* Behind a slow call, both kinds still come back before it. */
    double t0 = now_s();
    call_hdr(&w, 302, 2, TPROG, 1, P_SLOW);
    put32(&w, 7);
    CHECK(send_whole(fd, &w));
    struct timespec ts = {0, 100000000}; /* let the slow call reach a worker */
    nanosleep(&ts, NULL);
    call_hdr(&w, 303, 2, TPROG, 1, P_FAST);
    put32(&w, 9);
    CHECK(send_whole(fd, &w));
    CHECK(parse_reply(buf, recv_record(fd, buf, sizeof(buf)), &r));
    CHECK_EQ_INT(r.xid, 303);
    CHECK_EQ_INT(r.a, 2009);
    call_hdr(&w, 304, 2, TPROG, 1, P_FAST);
    put32(&w, 8);
    CHECK(send_whole(fd, &w));
    CHECK(parse_reply(buf, recv_record(fd, buf, sizeof(buf)), &r));
    CHECK_EQ_INT(r.xid, 304);
    CHECK(r.a == 1008 || r.a == 2008);
    CHECK(now_s() - t0 < 1.0); /* "did not wait for the slow one" */
    CHECK(parse_reply(buf, recv_record(fd, buf, sizeof(buf)), &r));
    CHECK_EQ_INT(r.xid, 302);
    CHECK_EQ_INT(r.a, 7);
    close(fd);
    /* release runs only for replies the handler built: 300, 301, 303, 304. */
    CHECK_EQ_INT(__atomic_load_n(&fast_released, __ATOMIC_RELAXED) - rel0, 4);
}

/*
 * max_inflight is 2: with two slow calls running, a third call is not even
 * read until one finishes, so its reply cannot overtake both slow ones.
 */
static void test_inflight_limit(uint16_t port)
{
    struct wbuf w;
    struct reply r[3];
    uint8_t buf[4096];
    int fd = tcp_connect(port);
    CHECK(fd >= 0);
    if (fd < 0)
        return;

    for (uint32_t i = 0; i < 2; i++) {
        call_hdr(&w, 200 + i, 2, TPROG, 1, P_SLOW);
        put32(&w, i);
        CHECK(send_record(fd, &w, 1));
    }
    call_hdr(&w, 202, 2, TPROG, 1, P_ECHO);
    put32(&w, 2);
    CHECK(send_record(fd, &w, 1));
    for (int i = 0; i < 3; i++) {
        ssize_t n = recv_record(fd, buf, sizeof(buf));
        CHECK(parse_reply(buf, n, &r[i]));
    }
    close(fd);
    CHECK(r[0].xid == 200 || r[0].xid == 201);
    CHECK(r[1].xid == 202 || r[2].xid == 202); /* and it was answered once reading resumed */
    CHECK_EQ_INT(r[0].stat, SUCCESS);
}

static void test_framing(uint16_t port)
{
    struct wbuf w;
    struct reply r;
    uint8_t buf[4096];

    /* One call split into five fragments, sent byte-split as well. */
    int fd = tcp_connect(port);
    call_hdr(&w, 30, 2, TPROG, 1, P_ECHO);
    put32(&w, 31337);
    CHECK(send_record(fd, &w, 5));
    ssize_t n = recv_record(fd, buf, sizeof(buf));
    CHECK(parse_reply(buf, n, &r));
    CHECK_EQ_INT(r.xid, 30);
    CHECK_EQ_INT(r.a, 31337);

    /* Zero-length fragments before the data are harmless. */
    uint32_t empty = htonl(0);
    CHECK(write_all(fd, &empty, 4) && write_all(fd, &empty, 4));
    call_hdr(&w, 32, 2, TPROG, 1, P_NULL);
    CHECK(send_record(fd, &w, 1));
    n = recv_record(fd, buf, sizeof(buf));
    CHECK(parse_reply(buf, n, &r));
    CHECK_EQ_INT(r.xid, 32);
    close(fd);

    /* A truncated record, then the client goes away: the server must carry on. */
    fd = tcp_connect(port);
    uint32_t mark = htonl(RPC_LAST_FRAG | 100);
    CHECK(write_all(fd, &mark, 4) && write_all(fd, w.b, 20));
    close(fd);
    call_hdr(&w, 33, 2, TPROG, 1, P_ECHO);
    put32(&w, 5);
    CHECK(call_once(port, &w, &r, buf, sizeof(buf)));
    CHECK_EQ_INT(r.xid, 33);

    /* A fragment claiming more than max_record: that connection is closed. */
    fd = tcp_connect(port);
    mark = htonl(RPC_LAST_FRAG | (MAX_RECORD + 1));
    CHECK(write_all(fd, &mark, 4));
    CHECK(peer_closed(fd));
    close(fd);

    /* Fragments each under the limit, summing over it: closed too. */
    fd = tcp_connect(port);
    static uint8_t chunk[MAX_RECORD / 2];
    bool sent = true;
    for (int i = 0; i < 3 && sent; i++) {
        mark = htonl(sizeof(chunk));
        sent = write_all(fd, &mark, 4) && write_all(fd, chunk, sizeof(chunk));
    }
    CHECK(peer_closed(fd));
    close(fd);

    /* The largest mark (2^31 - 1): closed, nothing allocated for it. */
    fd = tcp_connect(port);
    mark = htonl(0x7fffffff);
    CHECK(write_all(fd, &mark, 4));
    CHECK(peer_closed(fd));
    close(fd);

    /* A record too short to hold an xid: closed. */
    fd = tcp_connect(port);
    mark = htonl(RPC_LAST_FRAG | 2);
    CHECK(write_all(fd, &mark, 4) && write_all(fd, "ab", 2));
    CHECK(peer_closed(fd));
    close(fd);

    /* And the server still answers. */
    call_hdr(&w, 34, 2, TPROG, 1, P_NULL);
    CHECK(call_once(port, &w, &r, buf, sizeof(buf)));
    CHECK_EQ_INT(r.xid, 34);
}

/*
 * The duplicate request cache: a retransmitted call of a dup_cache procedure
 * (same XID and arguments, from the same address and port, on a new
 * connection too, as the Linux client reconnects) gets the first reply
 * again and does not run twice; the same XID with other arguments, or from
 * another port (another client process), is a new call.
 */
static void test_drc(struct rpc_server *s, uint16_t port, uint16_t uport)
{
    struct wbuf w;
    struct reply r;
    uint8_t buf[4096];
    unsigned before = atomic_load(&count_runs);

    src_port = (uint16_t)(20000 + (getpid() % 20000));
    call_hdr(&w, 0x4400, 2, TPROG, 1, P_COUNT);
    put32(&w, 7);
    CHECK(call_once(port, &w, &r, buf, sizeof(buf)));
    uint32_t first = r.a;
    CHECK_EQ_INT(first, 7000 + before + 1);
    for (int i = 0; i < 3; i++) { /* retransmissions, each on a new connection */
        CHECK(call_once(port, &w, &r, buf, sizeof(buf)));
        CHECK_EQ_INT(r.xid, 0x4400);
        CHECK_EQ_INT(r.a, first);
    }
    CHECK_EQ_INT(atomic_load(&count_runs), before + 1);

    call_hdr(&w, 0x4400, 2, TPROG, 1, P_COUNT); /* same XID, other arguments: a new call */
    put32(&w, 8);
    CHECK(call_once(port, &w, &r, buf, sizeof(buf)));
    CHECK_EQ_INT(r.a, 8000 + before + 2);
    CHECK_EQ_INT(atomic_load(&count_runs), before + 2);

    /* The same call from another port: another client, a new call. */
    src_port++;
    CHECK(call_once(port, &w, &r, buf, sizeof(buf)));
    CHECK_EQ_INT(r.a, 8000 + before + 3);
    CHECK_EQ_INT(atomic_load(&count_runs), before + 3);
    src_port = 0;
    before++;

    /* Over UDP too. */
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(uport),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {RECV_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    call_hdr(&w, 0x4401, 2, TPROG, 1, P_COUNT);
    put32(&w, 9);
    uint32_t got[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        sendto(fd, w.b, w.n, 0, (struct sockaddr *)&sa, sizeof(sa));
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        CHECK(n > 0 && parse_reply(buf, n, &r));
        got[i] = r.a;
    }
    close(fd);
    CHECK(got[0] == got[1] && got[0] == 9000 + before + 3);
    CHECK_EQ_INT(atomic_load(&count_runs), before + 3);

    struct rpc_stats st;
    rpc_server_get_stats(s, &st);
    CHECK(st.drc_replayed >= 4);
    CHECK(st.drc_entries >= 3);
}

/* Replies whose data is sent from a file: the bytes, the XDR padding, the release. */
static void test_filesegs(uint16_t port, uint16_t uport)
{
    char path[] = "/tmp/bnfs-fileseg-XXXXXX";
    fileseg_fd = mkstemp(path);
    CHECK(fileseg_fd >= 0);
    if (fileseg_fd < 0)
        return;
    unlink(path);
    static uint8_t content[300000];
    for (size_t i = 0; i < sizeof(content); i++)
        content[i] = (uint8_t)(i * 7 + 3);
    CHECK(write(fileseg_fd, content, sizeof(content)) == (ssize_t)sizeof(content));

    static const uint32_t sizes[] = {1, 3, 4, 4097, 299000};
    static uint8_t buf[310000];
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        struct wbuf w;
        struct reply r;
        int before = atomic_load(&fileseg_done);
        call_hdr(&w, 0x5500 + (uint32_t)k, 2, TPROG, 1, P_FILE);
        put32(&w, sizes[k]);
        int fd = tcp_connect(port);
        CHECK(fd >= 0 && send_record(fd, &w, 1));
        ssize_t n = recv_record(fd, buf, sizeof(buf));
        CHECK(n > 0 && parse_reply(buf, n, &r));
        uint32_t pad = (4 - sizes[k] % 4) % 4;
        CHECK_EQ_INT(r.body_len, 8 + sizes[k] + pad);
        CHECK_EQ_INT(r.a, 0xf11e);
        CHECK_EQ_INT(r.b, sizes[k]);
        CHECK(r.body_len >= 8 + sizes[k] && memcmp(r.body + 8, content + 5, sizes[k]) == 0);
        bool zero_pad = true;
        for (uint32_t i = 0; i < pad && r.body_len == 8 + sizes[k] + pad; i++)
            zero_pad = zero_pad && r.body[8 + sizes[k] + i] == 0;
        CHECK(zero_pad);
        close(fd);
        /* done runs once the server's send returned: the reply may be here a moment before. */
        for (int i = 0; i < 200 && atomic_load(&fileseg_done) == before; i++)
            usleep(10000);
        CHECK_EQ_INT(atomic_load(&fileseg_done), before + 1);
    }
    /* Attached, then another answer: released unsent. */
    struct wbuf w;
    struct reply r;
    int before = atomic_load(&fileseg_done);
    call_hdr(&w, 0x5600, 2, TPROG, 1, P_FILE);
    put32(&w, 0);
    CHECK(call_once(port, &w, &r, buf, sizeof(buf)));
    CHECK_EQ_INT(r.stat, GARBAGE_ARGS);
    for (int i = 0; i < 200 && atomic_load(&fileseg_done) == before; i++)
        usleep(10000);
    CHECK_EQ_INT(atomic_load(&fileseg_done), before + 1);
    /* Over UDP it is refused (the handler answers SYSTEM_ERR). */
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(uport),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {RECV_TIMEOUT_S, 0};
    setsockopt(u, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    call_hdr(&w, 0x5601, 2, TPROG, 1, P_FILE);
    put32(&w, 10);
    sendto(u, w.b, w.n, 0, (struct sockaddr *)&sa, sizeof(sa));
    ssize_t n = recv(u, buf, sizeof(buf), 0);
    CHECK(n > 0 && parse_reply(buf, n, &r) && r.stat == SYSTEM_ERR);
    close(u);
    close(fileseg_fd);
}

static void test_udp(uint16_t uport)
{
    struct wbuf w;
    struct reply r;
    uint8_t buf[4096];
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(uport)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {RECV_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

    call_hdr(&w, 40, 2, TPROG, 1, P_ECHO);
    put32(&w, 4040);
    CHECK(sendto(fd, w.b, w.n, 0, (struct sockaddr *)&sin, sizeof(sin)) == (ssize_t)w.n);
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    CHECK(parse_reply(buf, n, &r));
    CHECK_EQ_INT(r.xid, 40);
    CHECK_EQ_INT(r.stat, SUCCESS);
    CHECK_EQ_INT(r.a, 4040);

    call_hdr(&w, 41, 2, 0x20000777, 1, P_NULL);
    CHECK(sendto(fd, w.b, w.n, 0, (struct sockaddr *)&sin, sizeof(sin)) == (ssize_t)w.n);
    n = recv(fd, buf, sizeof(buf), 0);
    CHECK(parse_reply(buf, n, &r));
    CHECK_EQ_INT(r.xid, 41);
    CHECK_EQ_INT(r.stat, PROG_UNAVAIL);
    close(fd);
}

/* libtirpc's own client against our server, over TCP and UDP. */
static void test_tirpc_client(uint16_t port, uint16_t uport)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int sock = RPC_ANYSOCK;
    struct timeval tmo = {RECV_TIMEOUT_S, 0};
    u_int in = 777, out = 0;

    CLIENT *cl = clnttcp_create(&sin, TPROG, 1, &sock, 0, 0);
    CHECK(cl != NULL);
    if (cl) {
        enum clnt_stat st = clnt_call(cl, P_ECHO, (xdrproc_t)xdr_u_int, (char *)&in,
                                      (xdrproc_t)xdr_u_int, (char *)&out, tmo);
        CHECK_EQ_INT(st, RPC_SUCCESS);
        CHECK_EQ_INT(out, 777);
        st = clnt_call(cl, 55, XP(xdr_nothing), NULL, XP(xdr_nothing), NULL, tmo);
        CHECK_EQ_INT(st, RPC_PROCUNAVAIL);
        clnt_destroy(cl);
    }

    sock = RPC_ANYSOCK;
    cl = clnttcp_create(&sin, TPROG, 2, &sock, 0, 0);
    CHECK(cl != NULL);
    if (cl) {
        enum clnt_stat st =
            clnt_call(cl, P_NULL, XP(xdr_nothing), NULL, XP(xdr_nothing), NULL, tmo);
        CHECK_EQ_INT(st, RPC_PROGVERSMISMATCH);
        struct rpc_err err;
        clnt_geterr(cl, &err);
        CHECK_EQ_INT(err.re_vers.low, 1);
        CHECK_EQ_INT(err.re_vers.high, 3);
        clnt_destroy(cl);
    }

    sin.sin_port = htons(uport);
    sock = RPC_ANYSOCK;
    struct timeval wait = {1, 0};
    cl = clntudp_create(&sin, TPROG, 3, wait, &sock);
    CHECK(cl != NULL);
    if (cl) {
        in = 4321;
        enum clnt_stat st = clnt_call(cl, P_ECHO, (xdrproc_t)xdr_u_int, (char *)&in,
                                      (xdrproc_t)xdr_u_int, (char *)&out, tmo);
        CHECK_EQ_INT(st, RPC_SUCCESS);
        CHECK_EQ_INT(out, 4321);
        clnt_destroy(cl);
    }
}

/* A server of our own on 127.0.0.1 (TCP, and UDP if uport); NULL on failure. */
static struct rpc_server *start_server(const struct rpc_server_conf *c,
                                       const struct rpc_program *progs, int nprogs,
                                       uint16_t *port, uint16_t *uport)
{
    struct rpc_server *s = rpc_server_create(c);
    CHECK(s != NULL);
    if (!s)
        return NULL;
    for (int i = 0; i < nprogs; i++)
        CHECK_EQ_INT(rpc_server_add_program(s, &progs[i]), 0);
    CHECK_EQ_INT(rpc_listen_tcp(s, "127.0.0.1", 0, port), 0);
    if (uport)
        CHECK_EQ_INT(rpc_listen_udp(s, "127.0.0.1", 0, uport), 0);
    CHECK_EQ_INT(rpc_server_start(s), 0);
    return s;
}

/*
 * A second server allowing one connection: a second one is closed at once,
 * unless the first has sent no whole call for RPC_EVICT_QUIET_MS: then it goes.
 */
static void test_max_connections(const struct rpc_program *progs, int nprogs)
{
    struct rpc_server_conf c = {.threads = 1, .max_record = MAX_RECORD, .max_inflight = 4,
                                .max_connections = 1};
    uint16_t port = 0;
    struct rpc_server *s = start_server(&c, progs, nprogs, &port, NULL);
    if (!s)
        return;

    struct wbuf w;
    struct reply r;
    uint8_t buf[256];
    int a = tcp_connect(port);
    call_hdr(&w, 50, 2, TPROG, 1, P_NULL);
    CHECK(send_record(a, &w, 1));
    ssize_t n = recv_record(a, buf, sizeof(buf));
    CHECK(parse_reply(buf, n, &r) && r.xid == 50);

    int b = tcp_connect(port);
    CHECK(b >= 0);
    CHECK(peer_closed(b));
    close(b);

    /* The first connection is still served, and a stop with it open is clean. */
    call_hdr(&w, 51, 2, TPROG, 1, P_NULL);
    CHECK(send_record(a, &w, 1));
    n = recv_record(a, buf, sizeof(buf));
    CHECK(parse_reply(buf, n, &r) && r.xid == 51);
    struct rpc_stats st;
    rpc_server_get_stats(s, &st);
    CHECK_EQ_INT(st.connections, 1);

    /* Quiet for 2 s (idle, or trickling a record): a new connection takes its place. */
    uint8_t partial[6] = {0x80, 0, 0, 40, 0, 0};
    CHECK(write(a, partial, sizeof(partial)) == (ssize_t)sizeof(partial));
    usleep(2200 * 1000);
    b = tcp_connect(port);
    call_hdr(&w, 52, 2, TPROG, 1, P_NULL);
    CHECK(send_record(b, &w, 1));
    n = recv_record(b, buf, sizeof(buf));
    CHECK(parse_reply(buf, n, &r) && r.xid == 52);
    CHECK(peer_closed(a));
    close(a);
    rpc_server_get_stats(s, &st);
    CHECK_EQ_INT(st.connections, 1);
    rpc_server_stop(s);
    CHECK(peer_closed(b));
    close(b);
    rpc_server_destroy(s);
}

/* Seconds of CPU this process has used. */
static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/*
 * Out of descriptors (RLIMIT_NOFILE): connections wait in the backlog.  The
 * loop must not spin on its listener, which stays readable (it was: a core
 * at 100%), and must accept again once descriptors are free.
 */
static void test_out_of_fds(const struct rpc_program *progs, int nprogs)
{
    struct rpc_server_conf c = {.threads = 1, .max_record = MAX_RECORD, .max_inflight = 4,
                                .max_connections = 64};
    uint16_t port = 0;
    struct rpc_server *s = start_server(&c, progs, nprogs, &port, NULL);
    if (!s)
        return;

    enum { N = 6 };
    int cl[N];
    for (int i = 0; i < N; i++) {
        cl[i] = socket(AF_INET, SOCK_STREAM, 0);
        struct timeval tv = {RECV_TIMEOUT_S, 0};
        setsockopt(cl[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    }
    /* Room for two more descriptors (the lowest free one and the next). */
    struct rlimit old, low;
    getrlimit(RLIMIT_NOFILE, &old);
    int probe = open("/dev/null", O_RDONLY);
    close(probe);
    low = old;
    low.rlim_cur = (rlim_t)probe + 2;
    CHECK_EQ_INT(setrlimit(RLIMIT_NOFILE, &low), 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < N; i++)
        CHECK_EQ_INT(connect(cl[i], (struct sockaddr *)&sin, sizeof(sin)), 0);
    usleep(200 * 1000);
    double t0 = cpu_seconds();
    usleep(1000 * 1000);
    double used = cpu_seconds() - t0;
    CHECK(used < 0.3);
    if (used >= 0.3)
        fprintf(stderr, "out of descriptors: %.2f s of CPU in 1 s\n", used);
    setrlimit(RLIMIT_NOFILE, &old);

    /* Descriptors again: the last connection in the backlog is served. */
    struct wbuf w;
    struct reply r;
    uint8_t buf[256];
    call_hdr(&w, 60, 2, TPROG, 1, P_NULL);
    CHECK(send_record(cl[N - 1], &w, 1));
    ssize_t n = recv_record(cl[N - 1], buf, sizeof(buf));
    CHECK(parse_reply(buf, n, &r) && r.xid == 60);
    for (int i = 0; i < N; i++)
        close(cl[i]);
    rpc_server_stop(s);
    rpc_server_destroy(s);
}

/* Calls still running when the server stops are answered before it returns. */
static void test_stop_finishes_calls(const struct rpc_program *progs, int nprogs)
{
    struct rpc_server_conf c = {.threads = 2, .max_record = MAX_RECORD, .max_inflight = 4,
                                .max_connections = 4};
    uint16_t port = 0;
    struct rpc_server *s = start_server(&c, progs, nprogs, &port, NULL);
    if (!s)
        return;

    struct wbuf w;
    struct reply r;
    uint8_t buf[256];
    int fd = tcp_connect(port);
    call_hdr(&w, 60, 2, TPROG, 1, P_SLOW);
    put32(&w, 6);
    CHECK(send_record(fd, &w, 1));
    /* Let the loop read it, then stop while the handler sleeps. */
    struct timespec ts = {0, 300000000};
    nanosleep(&ts, NULL);
    rpc_server_stop(s);
    ssize_t n = recv_record(fd, buf, sizeof(buf));
    CHECK(parse_reply(buf, n, &r) && r.xid == 60 && r.a == 6);
    close(fd);
    rpc_server_destroy(s);
}

/*
 * One worker thread, and a client that sends many calls with large replies
 * and reads nothing: the worker must not get stuck writing to it, so
 * another client is still answered; and when the first client finally
 * reads, every one of its replies arrives whole.
 */
static void test_slow_reader(const struct rpc_program *progs, int nprogs)
{
    struct rpc_server_conf c = {.threads = 1, .max_record = MAX_RECORD, .max_inflight = 4,
                                .max_connections = 4};
    uint16_t port = 0;
    struct rpc_server *s = start_server(&c, progs, nprogs, &port, NULL);
    if (!s)
        return;

    enum { NCALLS = 40 };
    struct wbuf w;
    struct reply r;
    int a = tcp_connect(port);
    for (uint32_t i = 0; i < NCALLS; i++) {
        call_hdr(&w, 0x700 + i, 2, TPROG, 1, P_BIG);
        CHECK(send_record(a, &w, 1));
    }
    struct timespec ts = {0, 300000000};
    nanosleep(&ts, NULL);

    uint8_t small[256];
    call_hdr(&w, 0x800, 2, TPROG, 1, P_NULL);
    CHECK(call_once(port, &w, &r, small, sizeof(small)));
    CHECK_EQ_INT(r.xid, 0x800);

    uint8_t *big = malloc(BIG_REPLY + 64);
    bool seen[NCALLS] = {false};
    int whole = 0;
    for (int i = 0; i < NCALLS && big; i++) {
        ssize_t n = recv_record(a, big, BIG_REPLY + 64);
        if (!parse_reply(big, n, &r) || r.body_len != BIG_REPLY || r.xid < 0x700 ||
            r.xid >= 0x700 + NCALLS)
            break;
        if (!seen[r.xid - 0x700] && r.body[0] == (r.xid & 0xff) &&
            r.body[BIG_REPLY - 1] == (r.xid & 0xff))
            whole++;
        seen[r.xid - 0x700] = true;
    }
    CHECK_EQ_INT(whole, NCALLS);
    free(big);
    close(a);
    rpc_server_stop(s);
    rpc_server_destroy(s);
}

/* ---- asynchronous completion ------------------------------------------- */

static void async_call(struct wbuf *w, uint32_t xid, uint32_t mode, uint32_t delay_ms,
                       uint32_t payload, enum rpc_handler_status status)
{
    call_hdr(w, xid, 2, TPROG, 1, P_ASYNC);
    put32(w, mode);
    put32(w, delay_ms);
    put32(w, payload);
    put32(w, (uint32_t)status);
}

/* A successful P_ASYNC reply for `payload`, note included ("p<payload>" or "inline"). */
static bool async_reply_ok(const struct reply *r, uint32_t payload, bool inline_note)
{
    char note[32];
    snprintf(note, sizeof(note), inline_note ? "inline" : "p%u", payload);
    size_t n = strlen(note);
    return r->reply_stat == MSG_ACCEPTED && r->stat == SUCCESS && r->a == 5000 + payload &&
           r->b == n && r->body_len == 8 + ((n + 3) & ~(size_t)3) &&
           memcmp(r->body + 8, note, n) == 0;
}

static uint64_t async_pending(struct rpc_server *s)
{
    struct rpc_stats st;
    rpc_server_get_stats(s, &st);
    return st.async_pending;
}

/*
 * Wait up to 5 s for the server's async_pending to be n.  (A call stops
 * counting only after its reply was sent: a client that has its reply may
 * still see it pending for a moment.)
 */
static bool wait_pending(struct rpc_server *s, uint64_t n)
{
    for (int i = 0; i < 500; i++) {
        if (async_pending(s) == n)
            return true;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    return false;
}

static bool recv_reply(int fd, struct reply *r, uint8_t *buf, size_t cap)
{
    return parse_reply(buf, recv_record(fd, buf, cap), r);
}

/*
 * One worker thread.  A call waiting for its completion does not hold it:
 * a synchronous call on the same connection, and one on another, are
 * answered at once; the async reply comes when it is completed.
 */
static void test_async_does_not_pin(struct rpc_server *s, uint16_t port)
{
    struct wbuf w;
    struct reply r;
    uint8_t buf[4096];
    int fd = tcp_connect(port);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    CHECK(wait_pending(s, 0));
    struct rpc_stats st0, st;
    rpc_server_get_stats(s, &st0);

    double t0 = now_s();
    async_call(&w, 0x2000, A_LATER, 1500, 7, RPC_HANDLER_OK);
    CHECK(send_record(fd, &w, 1));
    call_hdr(&w, 0x2001, 2, TPROG, 1, P_ECHO);
    put32(&w, 8);
    CHECK(send_record(fd, &w, 1));
    CHECK(recv_reply(fd, &r, buf, sizeof(buf)));
    CHECK_EQ_INT(r.xid, 0x2001);
    CHECK_EQ_INT(r.a, 8);
    CHECK(now_s() - t0 < 0.5);

    call_hdr(&w, 0x2002, 2, TPROG, 1, P_ECHO);
    put32(&w, 9);
    CHECK(call_once(port, &w, &r, buf, sizeof(buf)));
    CHECK_EQ_INT(r.xid, 0x2002);
    CHECK(now_s() - t0 < 0.5);
    CHECK_EQ_INT(async_pending(s), 1);
    rpc_server_get_stats(s, &st);
    CHECK_EQ_INT(st.async_calls - st0.async_calls, 1);
    CHECK_EQ_INT(st.inflight, 1); /* the async call, until it is completed */

    CHECK(recv_reply(fd, &r, buf, sizeof(buf)));
    CHECK_EQ_INT(r.xid, 0x2000);
    CHECK(async_reply_ok(&r, 7, false));
    CHECK(now_s() - t0 >= 1.4);
    CHECK(wait_pending(s, 0));
    close(fd);
}

/* Replies leave in completion order, whatever the order of the calls. */
static void test_async_order(uint16_t port)
{
    struct wbuf w;
    struct reply r[4];
    uint8_t buf[4096];
    int fd = tcp_connect(port);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    async_call(&w, 0x1001, A_LATER, 600, 1, RPC_HANDLER_OK);
    CHECK(send_record(fd, &w, 1));
    async_call(&w, 0x1002, A_LATER, 200, 2, RPC_HANDLER_OK);
    CHECK(send_record(fd, &w, 1));
    async_call(&w, 0x1003, A_INLINE, 0, 3, RPC_HANDLER_OK);
    CHECK(send_record(fd, &w, 1));
    call_hdr(&w, 0x1004, 2, TPROG, 1, P_ECHO);
    put32(&w, 4);
    CHECK(send_record(fd, &w, 1));
    /* r[i].body points into buf: check each reply before reading the next. */
    bool ok[4] = {false};
    for (int i = 0; i < 4; i++) {
        CHECK(recv_reply(fd, &r[i], buf, sizeof(buf)));
        if (r[i].xid == 0x1004)
            ok[i] = r[i].stat == SUCCESS && r[i].a == 4;
        else if (r[i].xid >= 0x1001 && r[i].xid <= 0x1003)
            ok[i] = async_reply_ok(&r[i], r[i].xid - 0x1000, r[i].xid == 0x1003);
    }
    close(fd);
    CHECK(ok[0] && ok[1] && ok[2] && ok[3]);
    /* The two answered at once, in either order, then 200 ms, then 600 ms. */
    CHECK((r[0].xid == 0x1003 && r[1].xid == 0x1004) || (r[0].xid == 0x1004 && r[1].xid == 0x1003));
    CHECK_EQ_INT(r[2].xid, 0x1002);
    CHECK_EQ_INT(r[3].xid, 0x1001);
}

/*
 * 64 calls held, then completed one by one in a random order: each reply
 * carries its own call's xid and payload, in the order of completion.
 */
static void test_async_random_order(struct rpc_server *s, uint16_t port)
{
    enum { N = 64 };
    struct wbuf w;
    struct reply r;
    uint8_t buf[4096];
    CHECK(wait_pending(s, 0));
    int fd = tcp_connect(port);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    for (uint32_t i = 0; i < N; i++) {
        async_call(&w, 0x4000 + i, A_HOLD, 0, 100 + i, RPC_HANDLER_OK);
        CHECK(send_record(fd, &w, 1));
    }
    CHECK(wait_pending(s, N));

    uint32_t perm[N];
    unsigned seed = 12345;
    for (uint32_t i = 0; i < N; i++)
        perm[i] = i;
    for (uint32_t i = N - 1; i > 0; i--) {
        uint32_t j = (uint32_t)rand_r(&seed) % (i + 1);
        uint32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    int good = 0;
    for (int k = 0; k < N; k++) {
        CHECK_EQ_INT(async_release(100 + perm[k], false), 1);
        if (recv_reply(fd, &r, buf, sizeof(buf)) && r.xid == 0x4000 + perm[k] &&
            async_reply_ok(&r, 100 + perm[k], false))
            good++;
    }
    CHECK_EQ_INT(good, N);
    CHECK(wait_pending(s, 0));
    close(fd);
}

/*
 * Completion racing the handler's return (inline, and from a new thread at
 * once), many times over one connection; every status a completion can
 * carry; and a handler_nowait that returns ASYNC.
 */
static void test_async_fast_completion(struct rpc_server *s, uint16_t port)
{
    enum { N = 300 };
    struct wbuf w;
    struct reply r;
    uint8_t buf[4096];
    int fd = tcp_connect(port);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    int rel0 = __atomic_load_n(&async_released, __ATOMIC_RELAXED);

    for (uint32_t i = 0; i < N; i++) {
        async_call(&w, 0x3000 + i, i % 2 ? A_THREAD_NOW : A_INLINE, 0, 7 * i, RPC_HANDLER_OK);
        CHECK(send_record(fd, &w, 1));
    }
    static bool seen[N];
    int good = 0;
    for (int k = 0; k < N; k++) {
        if (!recv_reply(fd, &r, buf, sizeof(buf)) || r.xid < 0x3000 || r.xid >= 0x3000 + N)
            break;
        uint32_t i = r.xid - 0x3000;
        if (!seen[i] && async_reply_ok(&r, 7 * i, i % 2 == 0))
            good++;
        seen[i] = true;
    }
    CHECK_EQ_INT(good, N);

    /* Statuses, completed by the completer thread. */
    async_call(&w, 0x3500, A_LATER, 0, 1, RPC_HANDLER_GARBAGE);
    CHECK(send_record(fd, &w, 1));
    CHECK(recv_reply(fd, &r, buf, sizeof(buf)));
    CHECK(r.xid == 0x3500 && r.reply_stat == MSG_ACCEPTED && r.stat == GARBAGE_ARGS);
    async_call(&w, 0x3501, A_LATER, 0, 1, RPC_HANDLER_SYSTEM_ERR);
    CHECK(send_record(fd, &w, 1));
    CHECK(recv_reply(fd, &r, buf, sizeof(buf)));
    CHECK(r.xid == 0x3501 && r.stat == SYSTEM_ERR);
    async_call(&w, 0x3502, A_INLINE, 0, 1, RPC_HANDLER_AUTH_TOOWEAK);
    CHECK(send_record(fd, &w, 1));
    CHECK(recv_reply(fd, &r, buf, sizeof(buf)));
    CHECK(r.xid == 0x3502 && r.reply_stat == MSG_DENIED && r.stat == AUTH_ERROR &&
          r.a == AUTH_TOOWEAK);
    /* "Completed" with ASYNC itself: a caller's bug, answered SYSTEM_ERR. */
    async_call(&w, 0x3503, A_LATER, 0, 1, RPC_HANDLER_ASYNC);
    CHECK(send_record(fd, &w, 1));
    CHECK(recv_reply(fd, &r, buf, sizeof(buf)));
    CHECK(r.xid == 0x3503 && r.stat == SYSTEM_ERR);
    /* DROP: no reply at all; the next call's reply is the next on the wire. */
    async_call(&w, 0x3504, A_LATER, 0, 1, RPC_HANDLER_DROP);
    CHECK(send_record(fd, &w, 1));
    for (int i = 0; i < 500 && __atomic_load_n(&async_released, __ATOMIC_RELAXED) - rel0 < N + 5;
         i++) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    call_hdr(&w, 0x3505, 2, TPROG, 1, P_ECHO);
    put32(&w, 5);
    CHECK(send_record(fd, &w, 1));
    CHECK(recv_reply(fd, &r, buf, sizeof(buf)));
    CHECK_EQ_INT(r.xid, 0x3505);
    close(fd);
    /* The release hook ran once for every call, dropped or not. */
    CHECK_EQ_INT(__atomic_load_n(&async_released, __ATOMIC_RELAXED) - rel0, N + 5);

    /* handler_nowait must never return ASYNC: answered SYSTEM_ERR, once. */
    fd = tcp_connect(port);
    call_hdr(&w, 0x3600, 2, TPROG, 1, P_NWASYNC);
    put32(&w, 1);
    CHECK(send_whole(fd, &w));
    CHECK(recv_reply(fd, &r, buf, sizeof(buf)));
    CHECK(r.xid == 0x3600 && r.stat == SYSTEM_ERR);
    call_hdr(&w, 0x3601, 2, TPROG, 1, P_ECHO);
    put32(&w, 6);
    CHECK(send_whole(fd, &w));
    CHECK(recv_reply(fd, &r, buf, sizeof(buf)));
    CHECK_EQ_INT(r.xid, 0x3601);
    close(fd);
}

static void test_async_udp(uint16_t uport)
{
    struct wbuf w;
    struct reply r;
    uint8_t buf[4096];
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(uport)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {RECV_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    async_call(&w, 0x5000, A_LATER, 50, 55, RPC_HANDLER_OK);
    CHECK(sendto(fd, w.b, w.n, 0, (struct sockaddr *)&sin, sizeof(sin)) == (ssize_t)w.n);
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    CHECK(parse_reply(buf, n, &r));
    CHECK_EQ_INT(r.xid, 0x5000);
    CHECK(async_reply_ok(&r, 55, false));
    close(fd);
}

/*
 * The client goes away while its calls are held: completing them later
 * drops the replies and frees everything (ASan would tell), and the server
 * goes on.
 */
static void test_async_conn_closed(struct rpc_server *s, uint16_t port)
{
    enum { N = 10 };
    struct wbuf w;
    struct reply r;
    uint8_t buf[4096];
    CHECK(wait_pending(s, 0));
    int rel0 = __atomic_load_n(&async_released, __ATOMIC_RELAXED);
    int fd = tcp_connect(port);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    for (uint32_t i = 0; i < N; i++) {
        async_call(&w, 0x6000 + i, A_HOLD, 0, 600 + i, RPC_HANDLER_OK);
        CHECK(send_record(fd, &w, 1));
    }
    CHECK(wait_pending(s, N));
    close(fd);
    struct timespec ts = {0, 200000000}; /* let the loop see the hang-up */
    nanosleep(&ts, NULL);
    struct rpc_stats st;
    rpc_server_get_stats(s, &st);
    CHECK_EQ_INT(st.connections, 0);
    CHECK_EQ_INT(async_release(0, true), N);
    CHECK(wait_pending(s, 0));
    CHECK_EQ_INT(__atomic_load_n(&async_released, __ATOMIC_RELAXED) - rel0, N);

    call_hdr(&w, 0x6100, 2, TPROG, 1, P_ECHO);
    put32(&w, 3);
    CHECK(call_once(port, &w, &r, buf, sizeof(buf)));
    CHECK_EQ_INT(r.xid, 0x6100);
}

/*
 * max_inflight 4: of 8 calls held, only 4 are even read; the rest follow
 * once replies have left.
 */
static void test_async_inflight_limit(const struct rpc_program *progs, int nprogs)
{
    struct rpc_server_conf c = {.threads = 1, .max_record = MAX_RECORD, .max_inflight = 4,
                                .max_connections = 4};
    uint16_t port = 0;
    struct rpc_server *s = start_server(&c, progs, nprogs, &port, NULL);
    if (!s)
        return;
    struct wbuf w;
    struct reply r;
    uint8_t buf[4096];
    int fd = tcp_connect(port);
    for (uint32_t i = 0; i < 8; i++) {
        async_call(&w, 0x7000 + i, A_HOLD, 0, 700 + i, RPC_HANDLER_OK);
        CHECK(send_record(fd, &w, 1));
    }
    CHECK(wait_pending(s, 4));
    struct timespec ts = {0, 200000000};
    nanosleep(&ts, NULL);
    CHECK_EQ_INT(async_pending(s), 4);

    bool seen[8] = {false};
    int good = 0;
    for (int round = 0; round < 2; round++) {
        CHECK(wait_pending(s, 4));
        CHECK_EQ_INT(async_release(0, true), 4);
        for (int k = 0; k < 4; k++) {
            if (!recv_reply(fd, &r, buf, sizeof(buf)) || r.xid < 0x7000 || r.xid >= 0x7008)
                break;
            uint32_t i = r.xid - 0x7000;
            if (!seen[i] && async_reply_ok(&r, 700 + i, false))
                good++;
            seen[i] = true;
        }
    }
    CHECK_EQ_INT(good, 8);
    CHECK(wait_pending(s, 0));
    close(fd);
    rpc_server_stop(s);
    rpc_server_destroy(s);
}

/* Stop waits for an async call still out, and its reply is sent. */
static void test_async_stop_waits(const struct rpc_program *progs, int nprogs)
{
    struct rpc_server_conf c = {.threads = 1, .max_record = MAX_RECORD, .max_inflight = 4,
                                .max_connections = 4};
    uint16_t port = 0;
    struct rpc_server *s = start_server(&c, progs, nprogs, &port, NULL);
    if (!s)
        return;
    struct wbuf w;
    struct reply r;
    uint8_t buf[4096];
    int fd = tcp_connect(port);
    async_call(&w, 0x8000, A_LATER, 600, 80, RPC_HANDLER_OK);
    CHECK(send_record(fd, &w, 1));
    CHECK(wait_pending(s, 1));
    double t0 = now_s();
    rpc_server_stop(s);
    CHECK(now_s() - t0 >= 0.3);
    CHECK(recv_reply(fd, &r, buf, sizeof(buf)));
    CHECK_EQ_INT(r.xid, 0x8000);
    CHECK(async_reply_ok(&r, 80, false));
    CHECK(peer_closed(fd));
    close(fd);
    rpc_server_destroy(s);
}

/*
 * Stop gives up on calls not completed within async_stop_ms: the
 * connections close; completing the calls afterwards (TCP and UDP) drops
 * their replies without harm.
 */
static void test_async_stop_timeout(const struct rpc_program *progs, int nprogs)
{
    struct rpc_server_conf c = {.threads = 1, .max_record = MAX_RECORD, .max_inflight = 4,
                                .max_connections = 4, .async_stop_ms = 200};
    uint16_t port = 0, uport = 0;
    struct rpc_server *s = start_server(&c, progs, nprogs, &port, &uport);
    if (!s)
        return;
    struct wbuf w;
    int rel0 = __atomic_load_n(&async_released, __ATOMIC_RELAXED);
    int fd = tcp_connect(port);
    async_call(&w, 0x9000, A_HOLD, 0, 90, RPC_HANDLER_OK);
    CHECK(send_record(fd, &w, 1));
    int ufd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(uport)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    async_call(&w, 0x9001, A_HOLD, 0, 91, RPC_HANDLER_OK);
    CHECK(sendto(ufd, w.b, w.n, 0, (struct sockaddr *)&sin, sizeof(sin)) == (ssize_t)w.n);
    CHECK(wait_pending(s, 2));

    double t0 = now_s();
    rpc_server_stop(s);
    double dt = now_s() - t0;
    CHECK(dt >= 0.15 && dt < 2.0);
    CHECK(peer_closed(fd));
    CHECK_EQ_INT(async_pending(s), 2);
    CHECK_EQ_INT(async_release(0, true), 2);
    CHECK(wait_pending(s, 0));
    CHECK_EQ_INT(__atomic_load_n(&async_released, __ATOMIC_RELAXED) - rel0, 2);
    close(fd);
    close(ufd);
    rpc_server_destroy(s);
}

static void test_async(const struct rpc_program *progs, int nprogs)
{
    /* One worker: whatever is answered while calls wait was not stuck behind them. */
    struct rpc_server_conf c = {.threads = 1, .max_record = MAX_RECORD, .max_inflight = 512,
                                .max_connections = 8};
    uint16_t port = 0, uport = 0;
    struct rpc_server *s = start_server(&c, progs, nprogs, &port, &uport);
    if (!s)
        return;
    test_async_does_not_pin(s, port);
    test_async_order(port);
    test_async_random_order(s, port);
    test_async_fast_completion(s, port);
    test_async_udp(uport);
    test_async_conn_closed(s, port);
    struct rpc_stats st;
    rpc_server_get_stats(s, &st);
    CHECK_EQ_INT(st.async_pending, 0);
    CHECK_EQ_INT(st.inflight, 0);
    CHECK_EQ_INT(st.async_calls, 1 + 3 + 64 + 305 + 1 + 10); /* each test's ASYNC calls */
    rpc_server_stop(s);
    rpc_server_destroy(s);

    test_async_inflight_limit(progs, nprogs);
    test_async_stop_waits(progs, nprogs);
    test_async_stop_timeout(progs, nprogs);
}

static void test_register_without_rpcbind(void)
{
    double t0 = now_s();
    int err = rpc_register(TPROG, 1, IPPROTO_TCP, 1);
    double dt = now_s() - t0;
    /* With rpcbind running this registers (and we undo it); without, it fails fast. */
    CHECK(err == 0 || err == ECONNREFUSED || err == ENOENT);
    if (err == 0)
        rpc_unregister(TPROG, 1);
    else
        CHECK(dt < 10.0);
    CHECK_EQ_INT(rpc_register(TPROG, 1, 99, 1), EPROTONOSUPPORT);
}

int main(void)
{
    log_init("test_rpc", 1, LOG_ERR);

    struct rpc_program progs[2] = {
        {.prog = TPROG, .vers = 1, .procs = tprocs, .nprocs = NPROCS, .observe = observe},
        {.prog = TPROG, .vers = 3, .procs = tprocs, .nprocs = NPROCS},
    };
    struct rpc_server_conf c = {.threads = 4, .max_record = MAX_RECORD, .max_inflight = 2,
                                .max_connections = 64};
    struct rpc_server_conf bad = c;
    bad.threads = 0;
    errno = 0;
    CHECK(rpc_server_create(&bad) == NULL && errno == EINVAL);

    struct rpc_server *s = rpc_server_create(&c);
    CHECK(s != NULL);
    if (!s)
        return TEST_DONE();
    uint16_t port = 0, uport = 0;
    CHECK_EQ_INT(rpc_server_add_program(s, &progs[0]), 0);
    CHECK_EQ_INT(rpc_server_add_program(s, &progs[1]), 0);
    CHECK_EQ_INT(rpc_server_add_program(s, &progs[1]), EEXIST);
    CHECK_EQ_INT(rpc_listen_tcp(s, "127.0.0.1", 0, &port), 0);
    CHECK_EQ_INT(rpc_listen_udp(s, "127.0.0.1", 0, &uport), 0);
    CHECK(port != 0 && uport != 0);
    CHECK_EQ_INT(rpc_listen_tcp(s, "not-an-address", 0, NULL), EINVAL);
    CHECK_EQ_INT(rpc_server_start(s), 0);

    test_basic(port);
    test_errors(port);
    test_authsys(port);
    test_out_of_order(port);
    test_fast_path(port);
    test_inflight_limit(port);
    test_framing(port);
    test_udp(uport);
    test_tirpc_client(port, uport);
    test_drc(s, port, uport);
    test_filesegs(port, uport);

    struct rpc_stats st;
    rpc_server_get_stats(s, &st);
    CHECK(st.calls >= 30);
    CHECK(st.replies >= 30);
    CHECK(st.garbage >= 1);
    CHECK(st.bad_records >= 4);
    CHECK_EQ_INT(st.inflight, 0);
    /*
     * observe saw the calls handlers answered, with their results, served
     * by the loop or a worker, and the time from arrival to reply.
     */
    pthread_mutex_lock(&obs_mu);
    uint64_t observed = 0;
    for (int i = 0; i < NPROCS; i++)
        observed += obs_calls[i];
    CHECK(observed > 0 && observed <= st.replies);
    CHECK(obs_calls[P_SLOW] > 0 && obs_slow_min_ns >= 1500000000u);
    CHECK(obs_max_ns < 60000000000u);
    CHECK(obs_calls[P_FAST] >= 2 && obs_fast_sum >= 1004 + 2005);
    CHECK_EQ_INT(obs_calls[P_HOLE], 0); /* no handler: PROC_UNAVAIL, nothing to observe */
    pthread_mutex_unlock(&obs_mu);
    rpc_server_stop(s);
    rpc_server_destroy(s);

    test_max_connections(progs, 2);
    test_out_of_fds(progs, 2);
    test_stop_finishes_calls(progs, 2);
    test_slow_reader(progs, 2);

    pthread_t completer;
    CHECK_EQ_INT(pthread_create(&completer, NULL, completer_main, NULL), 0);
    test_async(progs, 2);
    pthread_mutex_lock(&a_lock);
    a_quit = true;
    CHECK(a_list == NULL);
    pthread_cond_signal(&a_wake);
    pthread_mutex_unlock(&a_lock);
    pthread_join(completer, NULL);

    test_register_without_rpcbind();
    return TEST_DONE();
}
