/*
 * svc.c - the RPC server: listeners, connections, the event loop, the work
 * queue and the worker threads, and call dispatch.
 *
 * Threads
 *   loop      one thread.  Owns the epoll set, accepts, reads every TCP
 *             connection (nonblocking), reassembles records (record.c),
 *             reads UDP datagrams, and queues one work item per call.  It
 *             is the only thread that reads a socket or touches a
 *             connection's reassembly state and read buffer.
 *             Fast path: when one read of a connection brought exactly one
 *             call, the queue is empty, and the procedure has a
 *             handler_nowait, the loop serves the call itself: one thread
 *             wake-up per call instead of two, which is most of the cost of
 *             a call when one is in flight.  handler_nowait never waits on
 *             the store (it answers RPC_HANDLER_WOULDBLOCK and the call is
 *             queued as usual), so this cannot stall the other calls.
 *   workers   conf.threads threads.  Each takes a work item, decodes the
 *             call header (msg.c), runs the procedure, encodes the reply
 *             into a buffer of its own and writes it at once, under the
 *             connection's send lock.  Replies thus leave in completion
 *             order, not arrival order.  A worker never waits for a peer:
 *             what the socket does not take at once is appended to the
 *             connection's output queue, which the loop flushes on EPOLLOUT.
 *   others    any thread a handler hands a call to (RPC_HANDLER_ASYNC)
 *             finishes it with rpc_complete(), which encodes and sends the
 *             reply exactly as a worker would.
 *
 * Calls
 *   A call being served is a heap object (struct rpc_call: the rpc_req,
 *   args and res in one allocation, plus the arena and the work item that
 *   holds the record the args were decoded from and the call's connection
 *   reference).  It is never on a worker's stack, so it can outlive the
 *   handler:
 *     sync    the handler returns a status; the same thread finishes the
 *             call (call_finish: encode, release hook, xdr_free of the
 *             args, arena destroy, send, connection accounting).
 *     async   the handler returns RPC_HANDLER_ASYNC and the worker goes on
 *             to the next call.  Of the two events "handler returned ASYNC"
 *             and "rpc_complete called", whichever comes second (an atomic
 *             counter in the call decides) runs call_finish, so rpc_complete
 *             may come before the handler returns, even from the handler.
 *             srv->async_pending counts these calls until call_finish is
 *             over; the connection counts them in flight until the reply
 *             has left, so max_inflight bounds them as it bounds the rest.
 *   handler_nowait (the loop's fast path) must not return ASYNC: such a
 *   call is answered SYSTEM_ERR.
 *
 * Connection life
 *   open      registered in epoll for input; refs = 1 (the loop's) plus one
 *             per queued or running call.
 *   paused    inflight reached conf.max_inflight: input interest removed.
 *             A call counts as in flight until its reply has left the
 *             output queue, so a peer that stops reading holds at most
 *             max_inflight replies in memory.
 *             The worker whose reply brings inflight below the limit puts
 *             the connection on the resume list and wakes the loop, which
 *             consumes what is left in the read buffer and re-arms input.
 *   dead      the loop saw EOF, an error, or a bad record, or queued output
 *             made no progress for RPC_SEND_TIMEOUT_MS: removed from epoll,
 *             shut down, dropped from the connection list.  Workers still
 *             running calls for it, and async calls completed later, skip
 *             their replies.  The fd is closed and the memory freed when
 *             the last reference is put.
 *
 * Work queue: a list bounded by qmax items and conf.max_queue_bytes bytes
 * of records (a record never waits for an empty queue).  When it is full the loop
 * waits for room, which stops reading everywhere - back-pressure rather
 * than unbounded memory.  Idle workers wait on a stack, each on a
 * condition variable of its own (struct idle_worker): a call wakes the
 * most recently idle worker, signalled after the queue's lock is dropped.
 *
 * The epoll interest of a connection (EPOLLIN unless paused, EPOLLOUT while
 * output is queued) is set only under conn->lock, from the current state,
 * so the loop and the workers may both change it.
 *
 * Lock order: conn->send_lock, then conn->lock, then srv->lock;
 * srv->conns_lock (the connection list, for rpc_server_get_conns) is a
 * leaf, taken with none of the others held.  No lock
 * is held across a handler call, an encoder or a release hook; send_lock
 * is held across nonblocking writes only, and srv->lock across the
 * nonblocking sendto of an async UDP reply (so stop cannot close the
 * socket under it).
 *
 * Stop: the loop exits at its next wake-up; workers drain the queue (every
 * call already read is answered), then exit; async calls get up to
 * conf.async_stop_ms to complete; queued output gets up to
 * RPC_STOP_FLUSH_MS to leave; then the connections and listeners close.
 * An async call completed after that finds its connection dead (or the
 * listeners closed): its reply is dropped and its memory released.  The
 * server's own memory is freed by rpc_server_destroy only once no async
 * call is outstanding (it waits conf.async_stop_ms again, then leaves it).
 */
#include "rpc/oncrpc.h"
#include "rpc/rpc_internal.h"

#include "common/crc32c.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>
#include <time.h>
#include <unistd.h>

#define RPC_MAX_PROGRAMS 16
#define RPC_MAX_LISTENERS 8
#define RPC_RBUF_SIZE (32 * 1024)
#define RPC_UDP_MAX 65535
#define RPC_SEND_TIMEOUT_MS 30000  /* queued output making no progress this long: close */
#define RPC_SWEEP_MS 1000          /* how often the loop looks for stuck output */
#define RPC_STOP_FLUSH_MS 5000     /* at stop, how long queued output may take to leave */
#define RPC_ASYNC_STOP_MS 10000    /* default conf.async_stop_ms */
#define RPC_LOOP_BATCH 64          /* records or datagrams per wake-up before yielding */
#define RPC_EVICT_QUIET_MS 2000    /* at the connection limit, one quiet this long may go */
#define RPC_DEFAULT_MAX_REPLY 4096
#define RPC_DRC_ENTRIES 8192       /* duplicate request cache: calls remembered */
#define RPC_DRC_BYTES (32u << 20)  /* ... and bytes of their replies */

enum ep_kind { EP_WAKE, EP_TCP_LISTEN, EP_UDP, EP_CONN };

struct ep_wake {
    enum ep_kind kind;
};

struct listener {
    enum ep_kind kind; /* EP_TCP_LISTEN or EP_UDP */
    int fd;
    bool paused;       /* out of descriptors: not polled until the next sweep (loop only) */
};

/*
 * A reply, or its unsent tail, waiting for the socket to take it: bytes in
 * memory (record mark, header, encoded result), then file segments sent
 * with sendfile (a READ's data from the cache), then XDR padding.  done
 * runs once the segments are sent, or will never be (the item is freed).
 */
struct out_item {
    struct out_item *next;
    uint8_t *buf;
    size_t off, len;
    struct rpc_fileseg segs[RPC_FILESEGS_MAX];
    unsigned nsegs, seg;  /* segments, and the one being sent */
    uint64_t seg_sent;    /* bytes of segs[seg] sent */
    uint32_t pad, pad_sent;
    uint64_t sent;        /* bytes written so far, all parts */
    void (*done)(void *arg);
    void *done_arg;
};

struct rpc_conn {
    enum ep_kind kind; /* EP_CONN */
    struct rpc_server *srv;
    int fd;
    struct sockaddr_storage peer;
    socklen_t peerlen;
    uint16_t local_port;  /* of the listener it came in on */
    uint64_t opened_ms;   /* CLOCK_MONOTONIC at accept */
    uint64_t calls;       /* records read: written by the loop, read with relaxed atomics */
    uint64_t last_call_ms; /* accepted, or last read a whole call (CLOCK_MONOTONIC): likewise */

    pthread_mutex_t send_lock; /* one reply on the wire at a time; the output queue */
    struct out_item *out_head, *out_tail;

    pthread_mutex_t lock;      /* the fields below up to the loop-only ones */
    unsigned refs;
    unsigned inflight;         /* calls read whose reply has not left yet */
    bool dead;
    bool paused;
    bool out_pending;          /* output queued: EPOLLOUT armed */
    uint64_t out_progress_ms;  /* when queued output, or the socket's send queue, last moved */
    int out_sockq;             /* unsent bytes in the socket at the last sweep */
    bool resume_queued;
    struct rpc_conn *resume_next; /* under srv->lock */

    /* Loop thread only. */
    struct rpc_rec rec;
    uint8_t *rbuf;
    size_t roff, rlen;
    struct rpc_conn *prev, *next;
};

struct rpc_work {
    struct rpc_work *next;
    struct rpc_conn *conn; /* NULL for UDP */
    int udp_fd;
    struct sockaddr_storage peer;
    socklen_t peerlen;
    uint8_t *rec;
    size_t len;
    uint64_t t0_ns; /* CLOCK_MONOTONIC when the record was read whole (rpc_program.observe) */
};

struct rpc_server {
    struct rpc_server_conf conf;
    struct rpc_program progs[RPC_MAX_PROGRAMS];
    unsigned nprogs;
    struct listener lis[RPC_MAX_LISTENERS];
    unsigned nlis;
    int epfd;
    int wakefd;
    struct ep_wake wake;

    pthread_t loop_thread;
    pthread_t *workers;
    unsigned nworkers;
    bool started, stopped;

    pthread_mutex_t lock;      /* queue, resume list, async count, stopping flags */
    struct idle_worker *idle;  /* workers waiting for a call, most recently idle first */
    pthread_cond_t queue_room; /* queue below qmax, or stopping */
    pthread_cond_t async_idle; /* async_pending fell to 0 (CLOCK_MONOTONIC) */
    struct rpc_work *qhead, *qtail;
    size_t qlen, qmax;
    size_t qbytes;             /* bytes of the queued records (bounded by conf.max_queue_bytes) */
    struct rpc_conn *resume;
    unsigned async_pending;    /* calls taken by RPC_HANDLER_ASYNC, not finished yet */
    bool stopping;
    bool loop_done;
    bool lis_closed;           /* stop closed the listeners: late UDP replies are dropped */

    /*
     * Changed by the loop thread only (and rpc_server_stop after the loop is
     * joined), under conns_lock so that rpc_server_get_conns may walk the
     * list from another thread; the loop reads it without the lock.
     * conns_lock is a leaf: nothing else is taken while it is held.
     */
    pthread_mutex_t conns_lock;
    struct rpc_conn *conns;
    unsigned nconns;

    struct rpc_stats stats; /* updated with atomics */
    struct rpc_drc *drc;    /* replies of dup_cache procedures */
    uint64_t *proc_calls[RPC_MAX_PROGRAMS]; /* per program, per procedure (relaxed atomics) */
};

#define STAT_ADD(s, field, n) __atomic_fetch_add(&(s)->stats.field, (n), __ATOMIC_RELAXED)
#define STAT_SUB(s, field, n) __atomic_fetch_sub(&(s)->stats.field, (n), __ATOMIC_RELAXED)

static bool server_stopping(struct rpc_server *s)
{
    pthread_mutex_lock(&s->lock);
    bool st = s->stopping;
    pthread_mutex_unlock(&s->lock);
    return st;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void wake_loop(struct rpc_server *s)
{
    uint64_t one = 1;
    ssize_t n = write(s->wakefd, &one, sizeof(one));
    (void)n; /* EAGAIN: the counter is already non-zero, the loop will wake */
}

/* ---- connections ------------------------------------------------------- */

/* Free what an output item holds (its buffer, its segments' hold) and the item. */
static void item_release(struct out_item *o)
{
    free(o->buf);
    o->buf = NULL;
    if (o->done)
        o->done(o->done_arg);
    o->done = NULL;
}

static void item_free(struct out_item *o)
{
    item_release(o);
    free(o);
}

/*
 * Write as much of o as the (nonblocking) socket takes.  Returns 1 when all
 * of it has left, 0 when the socket is full, -1 on an error or a file
 * segment that ended early.
 */
static int item_push(int fd, struct out_item *o)
{
    static const uint8_t zeros[4];
    while (o->off < o->len) {
        int more = o->nsegs || o->pad ? MSG_MORE : 0;
        ssize_t n = send(fd, o->buf + o->off, o->len - o->off, MSG_NOSIGNAL | MSG_DONTWAIT | more);
        if (n > 0) {
            o->off += (size_t)n;
            o->sent += (uint64_t)n;
        }
        else if (n < 0 && errno == EINTR)
            continue;
        else
            return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
    }
    while (o->seg < o->nsegs) {
        const struct rpc_fileseg *g = &o->segs[o->seg];
        if (o->seg_sent == g->len) { /* an empty segment */
            o->seg++;
            o->seg_sent = 0;
            continue;
        }
        off_t pos = (off_t)(g->off + o->seg_sent);
        ssize_t n = sendfile(fd, g->fd, &pos, g->len - o->seg_sent);
        if (n > 0) {
            o->seg_sent += (uint64_t)n;
            o->sent += (uint64_t)n;
            if (o->seg_sent == g->len) {
                o->seg++;
                o->seg_sent = 0;
            }
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
        }
    }
    while (o->pad_sent < o->pad) {
        ssize_t n = send(fd, zeros, o->pad - o->pad_sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            o->pad_sent += (uint32_t)n;
            o->sent += (uint64_t)n;
        }
        else if (n < 0 && errno == EINTR)
            continue;
        else
            return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
    }
    return 1;
}

/* Drop one reference; the last one closes the fd and frees the connection. */
static void conn_put(struct rpc_conn *c)
{
    pthread_mutex_lock(&c->lock);
    bool last = --c->refs == 0;
    pthread_mutex_unlock(&c->lock);
    if (!last)
        return;
    close(c->fd);
    while (c->out_head) {
        struct out_item *o = c->out_head;
        c->out_head = o->next;
        item_free(o);
    }
    rpc_rec_free(&c->rec);
    free(c->rbuf);
    pthread_mutex_destroy(&c->lock);
    pthread_mutex_destroy(&c->send_lock);
    free(c);
}

/* Loop thread: take the connection out of service and drop the loop's reference. */
static void conn_close(struct rpc_server *s, struct rpc_conn *c)
{
    pthread_mutex_lock(&c->lock);
    c->dead = true;
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    pthread_mutex_unlock(&c->lock);
    /* The peer learns at once; the fd stays open until the last put, so a worker
     * finishing a call never writes to a reused descriptor. */
    shutdown(c->fd, SHUT_RDWR);
    pthread_mutex_lock(&s->conns_lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    pthread_mutex_unlock(&s->conns_lock);
    STAT_SUB(s, connections, 1);
    conn_put(c);
}

/* Set the epoll interest from the connection's state.  Caller holds c->lock. */
static void conn_update_events(struct rpc_server *s, struct rpc_conn *c)
{
    if (c->dead)
        return;
    struct epoll_event ev = {.events = (c->paused ? 0 : EPOLLIN) | (c->out_pending ? EPOLLOUT : 0),
                             .data.ptr = c};
    epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* ---- work queue -------------------------------------------------------- */

/* Loop thread: queue one call; waits while the queue is full (back-pressure). */
/*
 * An idle worker, on its own stack while it waits.  Workers wait each on a
 * condition variable of their own, on a stack with the most recently idle
 * on top: a new call wakes exactly one worker, the one whose caches are
 * warmest, and one signal goes out after the lock is dropped - not a
 * shared condition variable that every worker re-acquires the queue's
 * mutex through (measured: with 16 workers that contention cost a quarter
 * of the throughput of small cached READs).
 */
struct idle_worker {
    pthread_cond_t wake;       /* woken set, or the server stops */
    struct idle_worker *next;
    bool woken;                /* taken off the stack by queue_push (s->lock) */
};

/* Take the top idle worker off the stack (s->lock held); NULL if none. */
static struct idle_worker *idle_pop(struct rpc_server *s)
{
    struct idle_worker *iw = s->idle;
    if (iw) {
        s->idle = iw->next;
        iw->woken = true;
    }
    return iw;
}

/* Wake every idle worker (s->lock held): the server stops. */
static void idle_wake_all(struct rpc_server *s)
{
    struct idle_worker *iw;
    while ((iw = idle_pop(s)) != NULL)
        pthread_cond_signal(&iw->wake);
}

static void queue_push(struct rpc_server *s, struct rpc_work *w)
{
    pthread_mutex_lock(&s->lock);
    while ((s->qlen >= s->qmax ||
            (s->qlen > 0 && s->qbytes + w->len > s->conf.max_queue_bytes)) &&
           !s->stopping)
        pthread_cond_wait(&s->queue_room, &s->lock);
    s->qbytes += w->len;
    w->next = NULL;
    if (s->qtail)
        s->qtail->next = w;
    else
        s->qhead = w;
    s->qtail = w;
    s->qlen++;
    struct idle_worker *iw = idle_pop(s);
    pthread_mutex_unlock(&s->lock);
    /* After the unlock: the worker does not wake into a held mutex.  It stays
       blocked until this signal or its own spurious wake-up sees `woken`, and
       its wake variable lives as long as the worker, which outlives the loop. */
    if (iw)
        pthread_cond_signal(&iw->wake);
}

/* Worker: the next call, or NULL when the server stops and the queue is empty. */
static struct rpc_work *queue_pop(struct rpc_server *s, struct idle_worker *me)
{
    pthread_mutex_lock(&s->lock);
    while (!s->qhead && !s->loop_done) {
        me->woken = false;
        me->next = s->idle;
        s->idle = me;
        while (!me->woken)
            pthread_cond_wait(&me->wake, &s->lock);
    }
    struct rpc_work *w = s->qhead;
    if (w) {
        s->qhead = w->next;
        if (!s->qhead)
            s->qtail = NULL;
        s->qlen--;
        s->qbytes -= w->len;
        pthread_cond_signal(&s->queue_room); /* cheap when the loop is not waiting */
    }
    pthread_mutex_unlock(&s->lock);
    return w;
}

static void work_free(struct rpc_work *w)
{
    free(w->rec);
    free(w);
}

static bool queue_empty(struct rpc_server *s)
{
    pthread_mutex_lock(&s->lock);
    bool empty = s->qlen == 0;
    pthread_mutex_unlock(&s->lock);
    return empty;
}

/* ---- replies ----------------------------------------------------------- */

/*
 * `n` calls of `c` are over (replies sent, dropped, or never to be sent):
 * if reading was paused at the limit, have the loop resume it.  Any thread.
 */
static void conn_call_done(struct rpc_server *s, struct rpc_conn *c, unsigned n)
{
    bool queue = false;

    pthread_mutex_lock(&c->lock);
    c->inflight -= n;
    if (c->paused && !c->dead && !c->resume_queued && c->inflight < s->conf.max_inflight) {
        c->resume_queued = true;
        c->refs++; /* held by the resume list */
        queue = true;
    }
    pthread_mutex_unlock(&c->lock);
    if (queue) {
        pthread_mutex_lock(&s->lock);
        c->resume_next = s->resume;
        s->resume = c;
        pthread_mutex_unlock(&s->lock);
        wake_loop(s);
    }
}

/*
 * Worker: send one reply record (*tmpl: its buffer, file segments and their
 * hold are owned by the callee from here on).  Writes what the socket takes
 * now; the rest goes to the output queue for the loop to flush.  The call
 * stays in flight until its last byte left.
 */
static void conn_queue_reply(struct rpc_server *s, struct rpc_conn *c, struct out_item *tmpl)
{
    bool failed = false, sent = false;

    pthread_mutex_lock(&c->send_lock);
    pthread_mutex_lock(&c->lock);
    bool dead = c->dead;
    pthread_mutex_unlock(&c->lock);
    if (dead) {
        failed = true;
    } else if (!c->out_head) {
        /* Nothing queued before us: the bytes may go straight out. */
        int r = item_push(c->fd, tmpl);
        sent = r == 1;
        failed = r < 0;
    }
    if (!failed && !sent) {
        struct out_item *o = malloc(sizeof(*o));
        if (o) {
            *o = *tmpl;
            o->next = NULL;
            if (c->out_tail)
                c->out_tail->next = o;
            else
                c->out_head = o;
            c->out_tail = o;
            pthread_mutex_lock(&c->lock);
            if (!c->out_pending) {
                c->out_pending = true;
                c->out_progress_ms = now_ms();
                conn_update_events(s, c);
            }
            pthread_mutex_unlock(&c->lock);
            pthread_mutex_unlock(&c->send_lock);
            return;
        }
        LOG_AT(LOG_ERR, "rpc: out of memory queueing a reply; closing connection");
        failed = true;
    }
    if (failed && !dead)
        shutdown(c->fd, SHUT_RDWR); /* the loop sees the hang-up and closes */
    pthread_mutex_unlock(&c->send_lock);
    if (!failed)
        STAT_ADD(s, replies, 1);
    item_release(tmpl);
    conn_call_done(s, c, 1);
}

/*
 * Loop thread (or stop): write queued output.  Returns false if the
 * connection failed and was closed (c may be gone).
 */
static bool conn_flush(struct rpc_server *s, struct rpc_conn *c)
{
    unsigned done = 0;
    bool progress = false, broken = false;

    struct out_item *finished = NULL; /* freed after send_lock: their done may take locks */
    pthread_mutex_lock(&c->send_lock);
    while (c->out_head) {
        struct out_item *o = c->out_head;
        uint64_t before = o->sent;
        int r = item_push(c->fd, o);
        if (o->sent != before)
            progress = true;
        if (r < 0) {
            broken = true;
            break;
        }
        if (r == 0)
            break;
        c->out_head = o->next;
        if (!c->out_head)
            c->out_tail = NULL;
        o->next = finished;
        finished = o;
        done++;
    }
    pthread_mutex_lock(&c->lock);
    if (progress)
        c->out_progress_ms = now_ms();
    if (!c->out_head && c->out_pending) {
        c->out_pending = false;
        conn_update_events(s, c);
    }
    pthread_mutex_unlock(&c->lock);
    pthread_mutex_unlock(&c->send_lock);
    while (finished) {
        struct out_item *next = finished->next;
        item_free(finished);
        finished = next;
    }

    if (done) {
        STAT_ADD(s, replies, done);
        conn_call_done(s, c, done);
    }
    if (broken) {
        conn_close(s, c);
        return false;
    }
    return true;
}

/* A reply under construction: 4 bytes of record mark, then the XDR stream. */
struct reply {
    uint8_t *buf;
    size_t cap;
    XDR x;
};

static bool reply_init(struct reply *r, size_t body_max)
{
    r->cap = 4 + RPC_REPLY_HDR_MAX + body_max;
    r->buf = malloc(r->cap);
    if (!r->buf)
        return false;
    xdrmem_create(&r->x, (char *)r->buf + 4, (u_int)(r->cap - 4), XDR_ENCODE);
    return true;
}

/* Start over (an encoder failed half-way). */
static void reply_reset(struct reply *r)
{
    xdr_destroy(&r->x);
    xdrmem_create(&r->x, (char *)r->buf + 4, (u_int)(r->cap - 4), XDR_ENCODE);
}

/*
 * Send the reply.  For TCP the buffer passes to the connection (r->buf
 * becomes NULL), which from then on accounts for the call's end: returns
 * true.  For UDP returns false.  `late`: an async completion, which may
 * race with rpc_server_stop closing the listeners, so a datagram is sent
 * under s->lock, where stop marks them closed.
 */
static bool reply_send(struct rpc_server *s, struct rpc_work *w, struct reply *r, bool late,
                       struct out_item *tail)
{
    size_t len = xdr_getpos(&r->x);

    if (w->conn) {
        struct out_item o = {0};
        if (tail)
            o = *tail; /* file segments, padding, their done */
        uint64_t total = len + o.pad;
        for (unsigned i = 0; i < o.nsegs; i++)
            total += o.segs[i].len;
        uint32_t mark = htonl(RPC_LAST_FRAG | (uint32_t)total);
        memcpy(r->buf, &mark, 4);
        o.buf = r->buf;
        o.off = 0;
        o.len = len + 4;
        r->buf = NULL;
        conn_queue_reply(s, w->conn, &o);
        return true;
    }
    if (late) {
        pthread_mutex_lock(&s->lock);
        if (s->lis_closed) {
            pthread_mutex_unlock(&s->lock);
            LOG_AT(LOG_DEBUG, "rpc: udp reply completed after stop: dropped");
            return false;
        }
    }
    ssize_t n = sendto(w->udp_fd, r->buf + 4, len, MSG_DONTWAIT, (struct sockaddr *)&w->peer,
                       w->peerlen);
    if (late)
        pthread_mutex_unlock(&s->lock);
    if (n == (ssize_t)len)
        STAT_ADD(s, replies, 1);
    else
        LOG_AT(LOG_DEBUG, "rpc: udp reply of %zu bytes not sent: %s", len,
               n < 0 ? strerror(errno) : "short write");
    return false;
}

static void reply_free(struct reply *r)
{
    xdr_destroy(&r->x);
    free(r->buf);
}

/*
 * The call read into w is over: account for its end on the connection
 * (unless `replied`: a reply handed to the connection does that when it
 * leaves), drop the call's connection reference, free w.
 */
static void work_done(struct rpc_server *s, struct rpc_work *w, bool replied)
{
    if (w->conn) {
        if (!replied)
            conn_call_done(s, w->conn, 1);
        conn_put(w->conn);
    }
    work_free(w);
}

/* ---- dispatch ---------------------------------------------------------- */

/*
 * One call from argument decoding to reply.  On the heap, not on a worker's
 * stack, so that it can outlive the thread that ran its handler
 * (RPC_HANDLER_ASYNC).  args and res follow in the same allocation.
 *
 * steps counts two events, "the handler returned RPC_HANDLER_ASYNC" and
 * "rpc_complete was called"; whichever comes second finishes the call
 * (call_finish), so a completion that comes before the handler returns is
 * no race.  A synchronous call never touches steps.
 */
struct rpc_call {
    struct rpc_req req; /* first: rpc_complete finds the call from it */
    struct rpc_server *srv;
    struct rpc_work *w; /* the record (decoded args may point into it), the connection */
    const struct rpc_program *prog;
    const struct rpc_proc *pr;
    void *args, *res;
    uint64_t drc_id;                /* its entry in the duplicate request cache (0: none) */
    struct out_item tail;           /* file segments the handler attached (rpc_reply_filesegs) */
    bool handler_ran;               /* release only what a handler built */
    bool async;                     /* counted in srv->async_pending */
    enum rpc_handler_status status; /* from rpc_complete */
    unsigned steps;                 /* atomic, see above */
    alignas(max_align_t) unsigned char mem[];
};

static const struct rpc_program *find_program(struct rpc_server *s, uint32_t prog, uint32_t vers,
                                              bool *prog_known, uint32_t *low, uint32_t *high)
{
    *prog_known = false;
    for (unsigned i = 0; i < s->nprogs; i++) {
        const struct rpc_program *p = &s->progs[i];
        if (p->prog != prog)
            continue;
        if (!*prog_known || p->vers < *low)
            *low = p->vers;
        if (!*prog_known || p->vers > *high)
            *high = p->vers;
        *prog_known = true;
        if (p->vers == vers)
            return p;
    }
    return NULL;
}

/* A handler took a call (RPC_HANDLER_ASYNC): rpc_server_stop waits for it. */
static void async_begin(struct rpc_server *s)
{
    STAT_ADD(s, async_calls, 1);
    pthread_mutex_lock(&s->lock);
    s->async_pending++;
    pthread_mutex_unlock(&s->lock);
}

/* An async call is over.  The server may be freed as soon as s->lock is released. */
static void async_end(struct rpc_server *s)
{
    pthread_mutex_lock(&s->lock);
    if (--s->async_pending == 0)
        pthread_cond_broadcast(&s->async_idle);
    pthread_mutex_unlock(&s->lock);
}

/*
 * Wait up to `ms` for every async call to be over.  Returns how many are
 * still outstanding.
 */
static unsigned async_wait(struct rpc_server *s, unsigned ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (long)(ms % 1000) * 1000000;
    if (dl.tv_nsec >= 1000000000) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&s->lock);
    while (s->async_pending && pthread_cond_timedwait(&s->async_idle, &s->lock, &dl) != ETIMEDOUT)
        ;
    unsigned left = s->async_pending;
    pthread_mutex_unlock(&s->lock);
    return left;
}

/*
 * Answer the call with `hs`: encode the reply, release what the handler
 * holds, free the call, send the reply and account for the call's end.
 * Exactly once per call, on the thread that ran the handler or on the one
 * that called rpc_complete.  No lock held.
 */
static void call_finish(struct rpc_call *call, enum rpc_handler_status hs)
{
    struct rpc_server *s = call->srv;
    struct rpc_work *w = call->w;
    const struct rpc_proc *pr = call->pr;
    uint32_t xid = call->req.xid;
    bool async = call->async;
    bool reply = hs != RPC_HANDLER_DROP;
    size_t body_max = pr->max_reply ? pr->max_reply : RPC_DEFAULT_MAX_REPLY;
    struct out_item tail = call->tail;
    bool segs = tail.nsegs > 0;
    if (segs && hs == RPC_HANDLER_OK)
        body_max = RPC_DEFAULT_MAX_REPLY; /* the bulk follows from the files */
    struct reply r;

    if (reply && !reply_init(&r, body_max)) {
        LOG_AT(LOG_ERR, "rpc: %s: out of memory for a %zu-byte reply; call dropped", pr->name,
               body_max);
        reply = false;
    }
    if (reply) {
        switch (hs) {
        case RPC_HANDLER_OK:
            if (!rpc_encode_accepted(&r.x, xid, SUCCESS, 0, 0) ||
                (pr->encode_res && !pr->encode_res(&r.x, call->res, 0))) {
                LOG_AT(LOG_ERR, "rpc: %s: reply does not fit or does not encode (max_reply %zu)",
                       pr->name, pr->max_reply);
                reply_reset(&r);
                rpc_encode_accepted(&r.x, xid, SYSTEM_ERR, 0, 0);
            } else {
                segs = false; /* they go out with this reply */
            }
            break;
        case RPC_HANDLER_GARBAGE:
            STAT_ADD(s, garbage, 1);
            rpc_encode_accepted(&r.x, xid, GARBAGE_ARGS, 0, 0);
            break;
        case RPC_HANDLER_AUTH_TOOWEAK:
            rpc_encode_auth_error(&r.x, xid, AUTH_TOOWEAK);
            break;
        case RPC_HANDLER_WOULDBLOCK: /* only handler_nowait may say so */
        case RPC_HANDLER_ASYNC:      /* only a handler may say so, and only once */
        case RPC_HANDLER_SYSTEM_ERR:
        default:
            rpc_encode_accepted(&r.x, xid, SYSTEM_ERR, 0, 0);
            break;
        }
    }
    if (call->drc_id)
        rpc_drc_done(s->drc, call->drc_id, reply ? r.buf + 4 : NULL,
                     reply ? xdr_getpos(&r.x) : 0);
    if (call->handler_ran && hs == RPC_HANDLER_OK && call->prog->observe)
        call->prog->observe(call->prog->ctx, call->req.proc, call->res, now_ns() - w->t0_ns);
    if (call->handler_ran && pr->release)
        pr->release(&call->req, call->res);
    if (pr->decode_args)
        xdr_free(pr->decode_args, call->args);
    rpc_arena_destroy(call->req.arena);
    free(call);

    /* Before the reply leaves: whoever sees it must not see the call in flight. */
    STAT_SUB(s, inflight, 1);
    bool replied = false;
    if (segs) {
        /* Not sent after all (another answer, no reply, no memory): release them now. */
        item_release(&tail);
        memset(&tail, 0, sizeof(tail));
    }
    if (reply) {
        replied = reply_send(s, w, &r, async, tail.nsegs ? &tail : NULL);
        reply_free(&r);
    }
    work_done(s, w, replied);
    if (async)
        async_end(s); /* last: s may be gone after it */
}

int rpc_reply_filesegs(struct rpc_req *req, const struct rpc_fileseg *segs, unsigned n,
                       void (*done)(void *arg), void *arg)
{
    struct rpc_call *call = (struct rpc_call *)req; /* req is the call's first member */
    if (!req->tcp)
        return ENOTSUP;
    if (n == 0 || n > RPC_FILESEGS_MAX || call->tail.nsegs)
        return EINVAL;
    uint64_t total = 0;
    for (unsigned i = 0; i < n; i++) {
        call->tail.segs[i] = segs[i];
        total += segs[i].len;
    }
    call->tail.nsegs = n;
    call->tail.pad = (uint32_t)((4 - total % 4) % 4); /* XDR pads opaques to 4 bytes */
    call->tail.done = done;
    call->tail.done_arg = arg;
    return 0;
}

void rpc_complete(struct rpc_req *req, enum rpc_handler_status status)
{
    struct rpc_call *call = (struct rpc_call *)req; /* req is the call's first member */

    if (status == RPC_HANDLER_ASYNC || status == RPC_HANDLER_WOULDBLOCK)
        LOG_AT(LOG_ERR, "rpc: %s: rpc_complete with status %d: answering SYSTEM_ERR",
               call->pr->name, (int)status);
    call->status = status;
    /* First of the two steps: the thread that ran the handler finishes the call. */
    if (__atomic_fetch_add(&call->steps, 1, __ATOMIC_ACQ_REL) == 0)
        return;
    call_finish(call, status);
}

/* What became of a call handed to serve() or run_proc(). */
enum served {
    SERVED_DONE,     /* taken: answered, dropped, or to be answered by rpc_complete; w is gone */
    SERVED_DEFERRED, /* nowait: the call needs a worker; w untouched, nothing counted */
    SERVED_NOMEM,    /* run_proc only: no memory for the call; w untouched */
};

/*
 * Decode the arguments and run one procedure (its handler_nowait if
 * `nowait`).  SERVED_DONE: the call (and w) is taken, and is over, or will
 * be at rpc_complete.  SERVED_DEFERRED if handler_nowait would have had to
 * wait; SERVED_NOMEM if the call could not be allocated.
 */
static enum served run_proc(struct rpc_server *s, struct rpc_work *w, const struct rpc_call_hdr *h,
                            const struct rpc_program *p, const struct rpc_proc *pr, bool nowait,
                            uint64_t drc_id)
{
    const size_t align = alignof(max_align_t);
    size_t args_size = ((pr->args_size ? pr->args_size : 1) + align - 1) & ~(align - 1);
    size_t res_size = pr->res_size ? pr->res_size : 1;
    struct rpc_call *call = calloc(1, sizeof(*call) + args_size + res_size);
    struct rpc_arena *arena = rpc_arena_create();

    if (!call || !arena) {
        LOG_AT(LOG_ERR, "rpc: out of memory serving %s", pr->name);
        free(call);
        rpc_arena_destroy(arena);
        return SERVED_NOMEM;
    }
    call->req = (struct rpc_req){
        .xid = h->xid, .prog = h->prog, .vers = h->vers, .proc = h->proc,
        .cred = h->cred, .tcp = w->conn != NULL, .prog_ctx = p->ctx, .arena = arena,
    };
    if (w->conn) {
        call->req.peer = w->conn->peer;
        call->req.peerlen = w->conn->peerlen;
    } else {
        call->req.peer = w->peer;
        call->req.peerlen = w->peerlen;
    }
    call->srv = s;
    call->w = w;
    call->prog = p;
    call->pr = pr;
    call->drc_id = drc_id;
    call->args = call->mem;
    call->res = call->mem + args_size;
    STAT_ADD(s, inflight, 1);

    enum rpc_handler_status hs;
    bool decoded = true;
    if (pr->decode_args) {
        XDR ax;
        xdrmem_create(&ax, (char *)w->rec + h->args_off, (u_int)(w->len - h->args_off),
                      XDR_DECODE);
        decoded = pr->decode_args(&ax, call->args, 0);
        xdr_destroy(&ax);
    }
    if (!decoded) {
        LOG_AT(LOG_DEBUG, "rpc: %s: arguments do not decode (xid %#x)", pr->name, h->xid);
        hs = RPC_HANDLER_GARBAGE;
    } else {
        hs = nowait ? pr->handler_nowait(&call->req, call->args, call->res)
                    : pr->handler(&call->req, call->args, call->res);
        call->handler_ran = true;
    }
    if (nowait && hs == RPC_HANDLER_WOULDBLOCK) {
        /* The handler holds nothing: no release (and it attached no file segments). */
        if (call->tail.nsegs)
            item_release(&call->tail);
        STAT_SUB(s, inflight, 1);
        if (pr->decode_args)
            xdr_free(pr->decode_args, call->args);
        rpc_arena_destroy(arena);
        free(call);
        return SERVED_DEFERRED;
    }
    __atomic_fetch_add(&s->proc_calls[p - s->progs][h->proc], 1, __ATOMIC_RELAXED);
    if (nowait) {
        STAT_ADD(s, calls, 1); /* a fast-path call counts once it is answered */
        if (hs == RPC_HANDLER_ASYNC) {
            LOG_AT(LOG_ERR, "rpc: %s: handler_nowait returned RPC_HANDLER_ASYNC", pr->name);
            hs = RPC_HANDLER_SYSTEM_ERR;
        }
    }
    if (hs == RPC_HANDLER_ASYNC) {
        async_begin(s);
        call->async = true;
        /* First of the two steps: rpc_complete finishes the call, maybe already now. */
        if (__atomic_fetch_add(&call->steps, 1, __ATOMIC_ACQ_REL) == 0)
            return SERVED_DONE;
        hs = call->status; /* completed before the handler returned */
    } else if (__atomic_load_n(&call->steps, __ATOMIC_ACQUIRE) != 0) {
        LOG_AT(LOG_ERR, "rpc: %s: handler called rpc_complete, then returned %d, not ASYNC",
               pr->name, (int)hs);
        hs = call->status;
    }
    call_finish(call, hs);
    return SERVED_DONE;
}

/*
 * Serve one call: a worker (nowait false), or the loop (nowait true: only a
 * well-formed call to a procedure with a handler_nowait; anything else is
 * SERVED_DEFERRED at once).  SERVED_DONE: w is taken.
 */
static enum served serve(struct rpc_server *s, struct rpc_work *w, bool nowait)
{
    struct rpc_call_hdr h;
    const struct rpc_proc *pr = NULL;

    enum rpc_call_verdict v = rpc_decode_call(w->rec, w->len, &h);
    bool known = false;
    uint32_t low = 0, high = 0;
    const struct rpc_program *p = NULL;
    if (v == RPC_CALL_OK) {
        p = find_program(s, h.prog, h.vers, &known, &low, &high);
        if (p && h.proc < p->nprocs && p->procs[h.proc].handler)
            pr = &p->procs[h.proc];
    }
    if (nowait && (!pr || !pr->handler_nowait))
        return SERVED_DEFERRED;

    if (!nowait)
        STAT_ADD(s, calls, 1); /* a fast-path call counts once it is answered */
    if (v == RPC_CALL_SHORT || v == RPC_CALL_IGNORE) {
        STAT_ADD(s, bad_records, 1);
        LOG_AT(LOG_DEBUG, "rpc: dropped a record of %zu bytes that is not a well-formed call",
               w->len);
        work_done(s, w, false);
        return SERVED_DONE;
    }
    bool nomem = false;
    uint64_t drc_id = 0;
    if (pr && pr->dup_cache && s->drc) {
        /* A retransmission of a call that must not run twice (see drc.c). */
        uint8_t *old = NULL;
        size_t oldlen = 0;
        uint32_t crc = crc32c(w->rec + h.args_off, w->len - h.args_off);
        switch (rpc_drc_check(s->drc, w->conn ? &w->conn->peer : &w->peer, h.xid, h.prog,
                              h.vers, h.proc, crc, &drc_id, &old, &oldlen)) {
        case RPC_DRC_NEW:
            break;
        case RPC_DRC_IN_PROGRESS:
            LOG_AT(LOG_DEBUG, "rpc: %s xid %#x: retransmission of a call in progress: dropped",
                   pr->name, h.xid);
            work_done(s, w, false);
            return SERVED_DONE;
        case RPC_DRC_REPLAY: {
            LOG_AT(LOG_DEBUG, "rpc: %s xid %#x: retransmission answered from the reply cache",
                   pr->name, h.xid);
            struct reply r;
            bool replied = false;
            if (reply_init(&r, oldlen)) {
                memcpy(r.buf + 4, old, oldlen);
                xdr_setpos(&r.x, (u_int)oldlen);
                replied = reply_send(s, w, &r, false, NULL);
                reply_free(&r);
            }
            free(old);
            work_done(s, w, replied);
            return SERVED_DONE;
        }
        }
    }
    if (pr) {
        enum served done = run_proc(s, w, &h, p, pr, nowait, drc_id);
        if (done != SERVED_DONE && drc_id)
            rpc_drc_done(s->drc, drc_id, NULL, 0); /* it did not run: forget it */
        if (done != SERVED_NOMEM)
            return done;
        if (nowait)
            return SERVED_DEFERRED;
        nomem = true;
    }

    /* An answer from the RPC layer itself: no procedure runs. */
    struct reply r;
    if (!reply_init(&r, 0)) {
        LOG_AT(LOG_ERR, "rpc: out of memory for a reply; call dropped");
        work_done(s, w, false);
        return SERVED_DONE;
    }
    if (nomem) {
        rpc_encode_accepted(&r.x, h.xid, SYSTEM_ERR, 0, 0);
    } else if (v == RPC_CALL_RPC_MISMATCH) {
        rpc_encode_rpc_mismatch(&r.x, h.xid);
    } else if (v == RPC_CALL_AUTH_ERROR) {
        LOG_AT(LOG_DEBUG, "rpc: call xid %#x rejected: auth_stat %d", h.xid, (int)h.why);
        rpc_encode_auth_error(&r.x, h.xid, h.why);
    } else if (!p && !known) {
        rpc_encode_accepted(&r.x, h.xid, PROG_UNAVAIL, 0, 0);
    } else if (!p) {
        rpc_encode_accepted(&r.x, h.xid, PROG_MISMATCH, low, high);
    } else {
        rpc_encode_accepted(&r.x, h.xid, PROC_UNAVAIL, 0, 0);
    }
    bool replied = reply_send(s, w, &r, false, NULL);
    reply_free(&r);
    work_done(s, w, replied);
    return SERVED_DONE;
}

static void *worker_main(void *arg)
{
    struct rpc_server *s = arg;
    struct rpc_work *w;
    struct idle_worker me = {.woken = false};
    pthread_cond_init(&me.wake, NULL);

    while ((w = queue_pop(s, &me)) != NULL)
        serve(s, w, false);
    pthread_cond_destroy(&me.wake);
    return NULL;
}

/* ---- event loop -------------------------------------------------------- */

/*
 * Loop thread: try the fast path for a call just read (see the top of the
 * file).  Returns true if the call was taken here (w is gone); false if
 * it needs a worker (w untouched).
 */
static bool serve_here(struct rpc_server *s, struct rpc_work *w)
{
    return serve(s, w, true) != SERVED_DEFERRED;
}

/*
 * Loop thread, at the connection limit: close the connection that has gone
 * longest without sending a whole call, if it has no call in flight, no
 * output queued, and has been quiet for RPC_EVICT_QUIET_MS.  Idle
 * connections, or ones trickling a record a byte at a time, must not lock
 * every other client out (a client whose connection goes reconnects, as
 * with any server that closes idle connections).  True if one was closed.
 */
static bool conn_evict_quiet(struct rpc_server *s)
{
    uint64_t now = now_ms();
    struct rpc_conn *victim = NULL;
    for (struct rpc_conn *c = s->conns; c; c = c->next) {
        if (now - c->last_call_ms < RPC_EVICT_QUIET_MS ||
            (victim && c->last_call_ms >= victim->last_call_ms))
            continue;
        pthread_mutex_lock(&c->lock);
        bool quiet = c->inflight == 0 && !c->out_pending;
        pthread_mutex_unlock(&c->lock);
        if (quiet)
            victim = c;
    }
    if (!victim)
        return false;
    LOG_AT(LOG_INFO, "rpc: %u connections open (the limit): closing one quiet for %llu ms",
           s->nconns, (unsigned long long)(now - victim->last_call_ms));
    conn_close(s, victim);
    return true;
}

static void loop_accept(struct rpc_server *s, struct listener *l)
{
    for (int i = 0; i < RPC_LOOP_BATCH; i++) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof(peer);
        int fd = accept4(l->fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0 && (errno == EMFILE || errno == ENFILE) && conn_evict_quiet(s))
            continue; /* a descriptor is free again */
        if (fd < 0 && (errno == EMFILE || errno == ENFILE)) {
            /*
             * The connection stays in the backlog, and the listener stays
             * readable: polled on, the loop would spin.  Not polled until the
             * next sweep (RPC_SWEEP_MS), which tries again.
             */
            LOG_AT(LOG_WARNING, "rpc: accept: %s (%u connections): waiting", strerror(errno),
                   s->nconns);
            struct epoll_event ev = {.events = 0, .data.ptr = l};
            epoll_ctl(s->epfd, EPOLL_CTL_MOD, l->fd, &ev);
            l->paused = true;
            return;
        }
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                errno != ECONNABORTED)
                LOG_AT(LOG_WARNING, "rpc: accept: %s", strerror(errno));
            return;
        }
        if (s->nconns >= s->conf.max_connections && !conn_evict_quiet(s)) {
            LOG_AT(LOG_WARNING, "rpc: %u connections open (the limit): refusing a new one",
                   s->nconns);
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

        struct rpc_conn *c = calloc(1, sizeof(*c));
        uint8_t *rbuf = malloc(RPC_RBUF_SIZE);
        if (!c || !rbuf) {
            LOG_AT(LOG_ERR, "rpc: out of memory accepting a connection");
            free(c);
            free(rbuf);
            close(fd);
            continue;
        }
        c->kind = EP_CONN;
        c->srv = s;
        c->fd = fd;
        c->peer = peer;
        c->peerlen = plen;
        c->opened_ms = now_ms();
        struct sockaddr_storage local;
        socklen_t llen = sizeof(local);
        if (getsockname(fd, (struct sockaddr *)&local, &llen) == 0)
            c->local_port = ntohs(local.ss_family == AF_INET6
                                      ? ((struct sockaddr_in6 *)&local)->sin6_port
                                      : ((struct sockaddr_in *)&local)->sin_port);
        c->refs = 1;
        c->rbuf = rbuf;
        c->last_call_ms = now_ms();
        pthread_mutex_init(&c->lock, NULL);
        pthread_mutex_init(&c->send_lock, NULL);
        rpc_rec_init(&c->rec, s->conf.max_record);

        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            LOG_AT(LOG_ERR, "rpc: epoll_ctl: %s", strerror(errno));
            conn_put(c);
            continue;
        }
        pthread_mutex_lock(&s->conns_lock);
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
        s->nconns++;
        pthread_mutex_unlock(&s->conns_lock);
        STAT_ADD(s, connections, 1);
    }
}

/*
 * Loop thread: read and queue calls from `c` until the socket is drained,
 * the in-flight limit is reached, or RPC_LOOP_BATCH records were queued or
 * reads done (so one busy peer cannot starve the others).  May close the
 * connection.
 */
static void conn_read(struct rpc_server *s, struct rpc_conn *c)
{
    /* A read shorter than the buffer emptied the socket: the next recv would
     * most likely say EAGAIN.  Epoll is level-triggered, so bytes that arrive
     * later still wake the loop; skipping that recv saves a system call per
     * wake-up. */
    bool drained = false;

    for (int records = 0, reads = 0; records < RPC_LOOP_BATCH && reads < RPC_LOOP_BATCH;) {
        pthread_mutex_lock(&c->lock);
        bool full = c->inflight >= s->conf.max_inflight;
        if (full) {
            c->paused = true;
            conn_update_events(s, c);
        }
        pthread_mutex_unlock(&c->lock);
        if (full)
            return;

        if (c->roff == c->rlen) {
            if (drained)
                return;
            reads++;
            ssize_t n = recv(c->fd, c->rbuf, RPC_RBUF_SIZE, 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return;
            if (n <= 0) {
                if (c->rec.len || c->rec.in_frag || c->rec.mark_have)
                    LOG_AT(LOG_INFO, "rpc: connection closed in the middle of a record");
                conn_close(s, c);
                return;
            }
            c->roff = 0;
            c->rlen = (size_t)n;
            drained = c->rlen < RPC_RBUF_SIZE;
        }

        size_t used;
        uint8_t *rec;
        size_t rec_len;
        int err = rpc_rec_feed(&c->rec, c->rbuf + c->roff, c->rlen - c->roff, &used, &rec,
                               &rec_len);
        c->roff += used;
        if (err) {
            STAT_ADD(s, bad_records, 1);
            LOG_AT(LOG_WARNING, "rpc: closing connection: %s (max_record %zu)",
                   err == EMSGSIZE ? "record or fragment over the size limit" : strerror(err),
                   s->conf.max_record);
            conn_close(s, c);
            return;
        }
        if (!rec)
            continue;
        if (rec_len < 4) {
            STAT_ADD(s, bad_records, 1);
            LOG_AT(LOG_WARNING, "rpc: closing connection: %zu-byte record holds no xid",
                   rec_len);
            free(rec);
            conn_close(s, c);
            return;
        }
        struct rpc_work *w = calloc(1, sizeof(*w));
        if (!w) {
            LOG_AT(LOG_ERR, "rpc: out of memory queueing a call; closing connection");
            free(rec);
            conn_close(s, c);
            return;
        }
        w->conn = c;
        w->rec = rec;
        w->len = rec_len;
        w->t0_ns = now_ns();
        __atomic_store_n(&c->calls, c->calls + 1, __ATOMIC_RELAXED);
        __atomic_store_n(&c->last_call_ms, w->t0_ns / 1000000u, __ATOMIC_RELAXED);
        pthread_mutex_lock(&c->lock);
        c->refs++;
        c->inflight++;
        pthread_mutex_unlock(&c->lock);
        records++;
        if (records == 1 && c->roff == c->rlen && queue_empty(s) && serve_here(s, w))
            continue;
        queue_push(s, w);
    }
    /* Batch used up.  Bytes still buffered would raise no epoll event: come back. */
    if (c->roff < c->rlen) {
        pthread_mutex_lock(&c->lock);
        bool queue = !c->resume_queued;
        if (queue) {
            c->resume_queued = true;
            c->refs++;
        }
        pthread_mutex_unlock(&c->lock);
        if (queue) {
            pthread_mutex_lock(&s->lock);
            c->resume_next = s->resume;
            s->resume = c;
            pthread_mutex_unlock(&s->lock);
            wake_loop(s);
        }
    }
}

static void loop_udp(struct rpc_server *s, int fd, uint8_t *buf)
{
    for (int i = 0; i < RPC_LOOP_BATCH; i++) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof(peer);
        ssize_t n = recvfrom(fd, buf, RPC_UDP_MAX, MSG_DONTWAIT, (struct sockaddr *)&peer, &plen);
        if (n < 0)
            return;
        if (n < 4 || (size_t)n > s->conf.max_record) {
            STAT_ADD(s, bad_records, 1);
            continue;
        }
        struct rpc_work *w = calloc(1, sizeof(*w));
        uint8_t *rec = malloc((size_t)n);
        if (!w || !rec) {
            free(w);
            free(rec);
            LOG_AT(LOG_ERR, "rpc: out of memory queueing a datagram");
            return;
        }
        memcpy(rec, buf, (size_t)n);
        w->udp_fd = fd;
        w->peer = peer;
        w->peerlen = plen;
        w->rec = rec;
        w->len = (size_t)n;
        w->t0_ns = now_ns();
        queue_push(s, w);
    }
}

/* Loop thread: connections whose reading was paused (or cut short) and may go on. */
static void loop_resume(struct rpc_server *s)
{
    uint64_t cnt;
    ssize_t n = read(s->wakefd, &cnt, sizeof(cnt));
    (void)n;

    pthread_mutex_lock(&s->lock);
    struct rpc_conn *list = s->resume;
    s->resume = NULL;
    pthread_mutex_unlock(&s->lock);
    while (list) {
        struct rpc_conn *c = list;
        list = c->resume_next;
        pthread_mutex_lock(&c->lock);
        c->resume_queued = false;
        if (c->paused) {
            c->paused = false;
            conn_update_events(s, c);
        }
        bool dead = c->dead;
        pthread_mutex_unlock(&c->lock);
        if (!dead)
            conn_read(s, c);
        conn_put(c);
    }
}

/*
 * Loop thread: close connections whose queued output has not moved for too
 * long.  The peer's progress shows in the socket's own send queue first:
 * EPOLLOUT only fires once a third of a (possibly large) send buffer is
 * free, which a slow but live reader may take longer than the timeout to do.
 */
static void loop_sweep(struct rpc_server *s)
{
    uint64_t now = now_ms();
    struct rpc_conn *c = s->conns;

    for (unsigned i = 0; i < s->nlis; i++) {
        struct listener *l = &s->lis[i];
        if (l->paused) {
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = l};
            epoll_ctl(s->epfd, EPOLL_CTL_MOD, l->fd, &ev);
            l->paused = false;
        }
    }

    while (c) {
        struct rpc_conn *next = c->next;
        pthread_mutex_lock(&c->lock);
        int q;
        if (c->out_pending && ioctl(c->fd, SIOCOUTQ, &q) == 0 && q != c->out_sockq) {
            c->out_sockq = q;
            c->out_progress_ms = now;
        }
        bool stuck = c->out_pending && now - c->out_progress_ms > RPC_SEND_TIMEOUT_MS;
        pthread_mutex_unlock(&c->lock);
        if (stuck) {
            LOG_AT(LOG_WARNING, "rpc: peer took no reply data for %d ms, closing connection",
                   RPC_SEND_TIMEOUT_MS);
            conn_close(s, c);
        }
        c = next;
    }
}

static void *loop_main(void *arg)
{
    struct rpc_server *s = arg;
    struct epoll_event evs[64];
    uint8_t *udpbuf = malloc(RPC_UDP_MAX);

    if (!udpbuf) {
        LOG_AT(LOG_CRIT, "rpc: out of memory starting the event loop");
        return NULL;
    }
    uint64_t last_sweep = now_ms();
    while (!server_stopping(s)) {
        int n = epoll_wait(s->epfd, evs, 64, RPC_SWEEP_MS);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            LOG_AT(LOG_CRIT, "rpc: epoll_wait: %s", strerror(errno));
            break;
        }
        bool woken = false;
        for (int i = 0; i < n; i++) {
            enum ep_kind kind = *(enum ep_kind *)evs[i].data.ptr;
            if (kind == EP_WAKE) {
                woken = true;
            } else if (kind == EP_TCP_LISTEN) {
                loop_accept(s, evs[i].data.ptr);
            } else if (kind == EP_UDP) {
                loop_udp(s, ((struct listener *)evs[i].data.ptr)->fd, udpbuf);
            } else {
                /* Each connection appears at most once per batch, and only its own
                 * event closes it here, so c is alive. */
                struct rpc_conn *c = evs[i].data.ptr;
                uint32_t e = evs[i].events;
                if ((e & EPOLLOUT) && !conn_flush(s, c))
                    continue;
                if (e & EPOLLIN)
                    conn_read(s, c);
                else if (e & (EPOLLERR | EPOLLHUP))
                    conn_close(s, c);
            }
        }
        /* Last: resuming may close and free connections named by events above. */
        if (woken)
            loop_resume(s);
        if (now_ms() - last_sweep >= RPC_SWEEP_MS) {
            loop_sweep(s);
            last_sweep = now_ms();
        }
    }
    free(udpbuf);
    return NULL;
}

/* ---- public API -------------------------------------------------------- */

struct rpc_server *rpc_server_create(const struct rpc_server_conf *c)
{
    int err;

    if (!c || c->threads < 1 || c->max_record < 64 || c->max_record > 0x7fffffffu ||
        c->max_inflight < 1 || c->max_connections < 1) {
        errno = EINVAL;
        return NULL;
    }
    struct rpc_server *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->conf = *c;
    if (!s->conf.async_stop_ms)
        s->conf.async_stop_ms = RPC_ASYNC_STOP_MS;
    if (!s->conf.max_queue_bytes)
        s->conf.max_queue_bytes = 256u << 20;
    /* Enough for every connection to be at its limit, within reason. */
    size_t qmax = (size_t)c->max_inflight * c->max_connections;
    s->qmax = qmax < 64 ? 64 : qmax > 65536 ? 65536 : qmax;
    s->wake.kind = EP_WAKE;
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0)
        goto fail_free;
    s->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->wakefd < 0)
        goto fail_epoll;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &s->wake};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->wakefd, &ev) < 0)
        goto fail_wake;
    s->drc = rpc_drc_create(RPC_DRC_ENTRIES, RPC_DRC_BYTES);
    if (!s->drc)
        goto fail_wake;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->conns_lock, NULL);
    pthread_cond_init(&s->queue_room, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->async_idle, &ca);
    pthread_condattr_destroy(&ca);
    return s;

fail_wake:
    err = errno;
    close(s->wakefd);
    errno = err;
fail_epoll:
    err = errno;
    close(s->epfd);
    errno = err;
fail_free:
    err = errno;
    free(s);
    errno = err;
    return NULL;
}

int rpc_server_add_program(struct rpc_server *s, const struct rpc_program *p)
{
    if (s->started)
        return EBUSY;
    if (!p->procs && p->nprocs)
        return EINVAL;
    for (unsigned i = 0; i < s->nprogs; i++)
        if (s->progs[i].prog == p->prog && s->progs[i].vers == p->vers)
            return EEXIST;
    if (s->nprogs == RPC_MAX_PROGRAMS)
        return ENOSPC;
    s->proc_calls[s->nprogs] = calloc(p->nprocs ? p->nprocs : 1, sizeof(uint64_t));
    if (!s->proc_calls[s->nprogs])
        return ENOMEM;
    s->progs[s->nprogs++] = *p;
    return 0;
}

static int listen_on(struct rpc_server *s, const char *addr, uint16_t port, bool tcp,
                     uint16_t *bound_port)
{
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_PASSIVE,
                             .ai_family = AF_UNSPEC,
                             .ai_socktype = tcp ? SOCK_STREAM : SOCK_DGRAM};
    struct addrinfo *ai = NULL;
    int err, fd = -1;

    if (s->nlis == RPC_MAX_LISTENERS)
        return ENOSPC;
    int gai = getaddrinfo(addr, NULL, &hints, &ai);
    if (gai != 0 || !ai)
        return EINVAL;
    struct sockaddr_storage ss;
    socklen_t sl = ai->ai_addrlen;
    memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    if (ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);

    fd = socket(ss.ss_family, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC,
                0);
    if (fd < 0)
        return errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || (tcp && listen(fd, 128) < 0))
        goto fail;
    sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        goto fail;
    struct listener *l = &s->lis[s->nlis];
    l->kind = tcp ? EP_TCP_LISTEN : EP_UDP;
    l->fd = fd;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = l};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        goto fail;
    s->nlis++;
    if (bound_port)
        *bound_port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                                    : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
fail:
    err = errno;
    close(fd);
    return err;
}

int rpc_listen_tcp(struct rpc_server *s, const char *addr, uint16_t port, uint16_t *bound_port)
{
    return listen_on(s, addr, port, true, bound_port);
}

int rpc_listen_udp(struct rpc_server *s, const char *addr, uint16_t port, uint16_t *bound_port)
{
    return listen_on(s, addr, port, false, bound_port);
}

int rpc_server_start(struct rpc_server *s)
{
    int err;

    if (s->started)
        return EBUSY;
    s->workers = calloc(s->conf.threads, sizeof(pthread_t));
    if (!s->workers)
        return ENOMEM;
    for (s->nworkers = 0; s->nworkers < s->conf.threads; s->nworkers++) {
        err = pthread_create(&s->workers[s->nworkers], NULL, worker_main, s);
        if (err)
            goto fail_workers;
    }
    err = pthread_create(&s->loop_thread, NULL, loop_main, s);
    if (err)
        goto fail_workers;
    s->started = true;
    return 0;

fail_workers:
    pthread_mutex_lock(&s->lock);
    s->loop_done = true;
    idle_wake_all(s);
    pthread_mutex_unlock(&s->lock);
    for (unsigned i = 0; i < s->nworkers; i++)
        pthread_join(s->workers[i], NULL);
    free(s->workers);
    s->workers = NULL;
    s->nworkers = 0;
    s->loop_done = false;
    return err;
}

void rpc_server_stop(struct rpc_server *s)
{
    if (!s->started || s->stopped)
        return;
    s->stopped = true;

    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_cond_broadcast(&s->queue_room);
    pthread_mutex_unlock(&s->lock);
    wake_loop(s);
    pthread_join(s->loop_thread, NULL);

    /* No more calls can arrive: let the workers answer what is queued, then exit. */
    pthread_mutex_lock(&s->lock);
    s->loop_done = true;
    idle_wake_all(s);
    pthread_mutex_unlock(&s->lock);
    for (unsigned i = 0; i < s->nworkers; i++)
        pthread_join(s->workers[i], NULL);
    free(s->workers);
    s->workers = NULL;

    /* Every handler has returned; calls they took may still be out.  Their
     * replies are welcome for a bounded time. */
    unsigned left = async_wait(s, s->conf.async_stop_ms);
    if (left)
        LOG_AT(LOG_WARNING, "rpc: stopping with %u async calls outstanding after %u ms: "
               "their replies will be dropped", left, s->conf.async_stop_ms);

    /* The connection list is ours alone from here on (late rpc_complete calls
     * touch only connections they hold a reference to).  Give queued replies a
     * bounded time to leave. */
    uint64_t deadline = now_ms() + RPC_STOP_FLUSH_MS;
    for (struct rpc_conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        for (;;) {
            pthread_mutex_lock(&c->send_lock);
            bool pending = c->out_head != NULL;
            pthread_mutex_unlock(&c->send_lock);
            uint64_t now = now_ms();
            if (!pending || now >= deadline || !conn_flush(s, c))
                break;
            struct pollfd p = {.fd = c->fd, .events = POLLOUT};
            uint64_t wait = deadline - now;
            poll(&p, 1, wait > 100 ? 100 : (int)wait);
        }
    }
    /* Dead connections are never put on the resume list again, so close them first. */
    while (s->conns)
        conn_close(s, s->conns);
    pthread_mutex_lock(&s->lock);
    struct rpc_conn *resume = s->resume;
    s->resume = NULL;
    s->lis_closed = true;
    pthread_mutex_unlock(&s->lock);
    while (resume) {
        struct rpc_conn *c = resume;
        resume = c->resume_next;
        conn_put(c);
    }
    for (unsigned i = 0; i < s->nlis; i++) {
        epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->lis[i].fd, NULL);
        close(s->lis[i].fd);
    }
    s->nlis = 0;
}

void rpc_server_destroy(struct rpc_server *s)
{
    if (!s)
        return;
    rpc_server_stop(s);
    /* A late rpc_complete touches the server (its lock, its stats). */
    unsigned left = async_wait(s, s->conf.async_stop_ms);
    if (left) {
        LOG_AT(LOG_CRIT, "rpc: %u async calls never completed: leaving the server allocated",
               left);
        return;
    }
    for (unsigned i = 0; i < s->nlis; i++)
        close(s->lis[i].fd);
    close(s->wakefd);
    close(s->epfd);
    rpc_drc_destroy(s->drc);
    pthread_cond_destroy(&s->async_idle);
    pthread_cond_destroy(&s->queue_room);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->conns_lock);
    for (unsigned i = 0; i < s->nprogs; i++)
        free(s->proc_calls[i]);
    free(s);
}

void rpc_server_get_stats(struct rpc_server *s, struct rpc_stats *out)
{
    out->calls = __atomic_load_n(&s->stats.calls, __ATOMIC_RELAXED);
    out->replies = __atomic_load_n(&s->stats.replies, __ATOMIC_RELAXED);
    out->garbage = __atomic_load_n(&s->stats.garbage, __ATOMIC_RELAXED);
    out->bad_records = __atomic_load_n(&s->stats.bad_records, __ATOMIC_RELAXED);
    out->connections = __atomic_load_n(&s->stats.connections, __ATOMIC_RELAXED);
    out->inflight = __atomic_load_n(&s->stats.inflight, __ATOMIC_RELAXED);
    out->async_calls = __atomic_load_n(&s->stats.async_calls, __ATOMIC_RELAXED);
    pthread_mutex_lock(&s->lock);
    out->async_pending = s->async_pending;
    pthread_mutex_unlock(&s->lock);
    struct rpc_drc_stats d;
    rpc_drc_get_stats(s->drc, &d);
    out->drc_replayed = d.replayed;
    out->drc_dropped = d.dropped;
    out->drc_entries = d.entries;
}

size_t rpc_server_get_conns(struct rpc_server *s, struct rpc_conn_info *out, size_t max)
{
    uint64_t now = now_ms();
    size_t n = 0;
    pthread_mutex_lock(&s->conns_lock);
    for (struct rpc_conn *c = s->conns; c; c = c->next, n++) {
        if (n >= max)
            continue;
        uint64_t last = __atomic_load_n(&c->last_call_ms, __ATOMIC_RELAXED);
        out[n] = (struct rpc_conn_info){
            .peer = c->peer,
            .peerlen = c->peerlen,
            .local_port = c->local_port,
            .calls = __atomic_load_n(&c->calls, __ATOMIC_RELAXED),
            .age_ms = now > c->opened_ms ? now - c->opened_ms : 0,
        };
        out[n].idle_ms = last && now > last ? now - last : last ? 0 : out[n].age_ms;
    }
    pthread_mutex_unlock(&s->conns_lock);
    return n;
}

uint32_t rpc_server_get_proc_stats(struct rpc_server *s, uint32_t prog, uint32_t vers,
                                   struct rpc_proc_stat *out, uint32_t max)
{
    for (unsigned i = 0; i < s->nprogs; i++) {
        const struct rpc_program *p = &s->progs[i];
        if (p->prog != prog || p->vers != vers)
            continue;
        uint32_t n = 0;
        for (uint32_t k = 0; k < p->nprocs && n < max; k++) {
            if (!p->procs[k].handler)
                continue; /* a hole in the table: not a procedure */
            out[n].proc = k;
            out[n].name = p->procs[k].name;
            out[n].calls = __atomic_load_n(&s->proc_calls[i][k], __ATOMIC_RELAXED);
            n++;
        }
        return n;
    }
    return 0;
}
