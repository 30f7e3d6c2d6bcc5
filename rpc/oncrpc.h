/*
 * oncrpc.h - ONC RPC (RFC 5531) server transport and dispatch.
 *
 * libtirpc provides XDR; this module provides the rest: TCP record marking
 * (RFC 5531 section 11) and UDP, call header and credential decoding
 * (AUTH_NONE, AUTH_SYS), the RPC-level error replies (PROG_UNAVAIL,
 * PROG_MISMATCH, PROC_UNAVAIL, GARBAGE_ARGS, SYSTEM_ERR, RPC_MISMATCH,
 * AUTH_ERROR), a pool of worker threads, and rpcbind registration.
 *
 * Many calls may be in flight on one TCP connection: each complete record
 * is handed to a worker (or, for a lone call to a procedure with a
 * handler_nowait, answered by the event loop itself), and each reply is
 * written as soon as it is ready, in whatever order that is.  A per-connection limit on calls in
 * flight and a limit on record size bound memory; a record over the limit,
 * or a malformed record mark, closes that connection only.
 *
 * A program is a table of procedures (struct rpc_proc), in the manner of
 * Linux nfsd's dispatch tables: decoder, encoder, handler, reply size.
 *
 * A handler either answers before it returns (RPC_HANDLER_OK and the
 * other statuses), or takes the call (RPC_HANDLER_ASYNC) and has it
 * answered later by rpc_complete(), from any thread, so a call that waits
 * on the object store holds memory but no worker thread.  An async call
 * counts against the connection's max_inflight until its reply has left,
 * like any other.
 */
#ifndef BNFS_RPC_H
#define BNFS_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <rpc/rpc.h>

#define RPC_AUTH_SYS_MAX_GIDS 16 /* RFC 5531 appendix A */

struct rpc_cred {
    uint32_t flavor; /* AUTH_NONE (0) or AUTH_SYS (1) */
    uint32_t uid, gid;
    uint32_t ngids;
    uint32_t gids[RPC_AUTH_SYS_MAX_GIDS];
};

/*
 * One call being served.  Owned by the transport; valid until the handler
 * returns, or, if the handler returned RPC_HANDLER_ASYNC, until
 * rpc_complete() is called for it.
 */
struct rpc_req {
    uint32_t xid, prog, vers, proc;
    struct rpc_cred cred;
    struct sockaddr_storage peer;
    socklen_t peerlen;
    bool tcp;
    void *prog_ctx; /* rpc_program.ctx */
    struct rpc_arena *arena;
};

/* What a handler returns. */
enum rpc_handler_status {
    RPC_HANDLER_OK = 0,      /* reply SUCCESS with the encoded result */
    RPC_HANDLER_GARBAGE,     /* reply GARBAGE_ARGS */
    RPC_HANDLER_SYSTEM_ERR,  /* reply SYSTEM_ERR */
    RPC_HANDLER_AUTH_TOOWEAK,/* reply MSG_DENIED / AUTH_ERROR / AUTH_TOOWEAK */
    RPC_HANDLER_DROP,        /* send no reply (the client will retransmit) */
    RPC_HANDLER_WOULDBLOCK,  /* handler_nowait only: run the call on a worker instead */
    /*
     * `handler` only: the handler has taken the call.  It (or whoever it
     * hands the call to) calls rpc_complete(req, status) exactly once, from
     * any thread, after filling res.  Until then req, args, res and the
     * request arena stay valid and belong to the call; after it, none of
     * them may be touched.  rpc_complete may come before the handler
     * returns (a fast completion, even from the handler itself): the call
     * is then answered once the handler has returned.  A handler_nowait
     * that returns this is a bug: the call is answered SYSTEM_ERR at once
     * (and a later rpc_complete would touch freed memory).
     */
    RPC_HANDLER_ASYNC,
};

struct rpc_proc {
    const char *name;
    xdrproc_t decode_args;   /* NULL: procedure takes no arguments */
    size_t args_size;        /* bytes of the decoded argument struct */
    xdrproc_t encode_res;    /* NULL: void result */
    size_t res_size;         /* bytes of the result struct (zeroed before the handler) */
    /*
     * Fill res from args.  Allocate reply memory with rpc_alloc (freed after
     * the reply is sent).  May return RPC_HANDLER_ASYNC (see above).
     */
    enum rpc_handler_status (*handler)(struct rpc_req *req, void *args, void *res);
    size_t max_reply;        /* upper bound of the encoded result, bytes (0: 4096) */
    /*
     * Called after encoding with the same res, to release what the handler
     * holds (may be NULL).  For an async call it runs inside rpc_complete,
     * on the completing thread.
     */
    void (*release)(struct rpc_req *req, void *res);
    /*
     * Optional fast path (may be NULL).  When a TCP read brings exactly one
     * call and no work is queued, the event loop runs this instead of
     * handing the call to a worker, saving a thread wake-up.  It answers
     * from local state only and must never wait on the object store or a
     * peer: when it would have to, it returns RPC_HANDLER_WOULDBLOCK,
     * holding nothing (release is not called), and the call goes to a
     * worker's `handler` as usual.
     */
    enum rpc_handler_status (*handler_nowait)(struct rpc_req *req, void *args, void *res);
    /*
     * Not idempotent (CREATE, REMOVE, RENAME, ...): the reply is kept in the
     * duplicate request cache and a retransmission (same client address,
     * XID and arguments) gets it again instead of running the call twice.
     */
    bool dup_cache;
};

struct rpc_program {
    uint32_t prog;
    uint32_t vers;
    const struct rpc_proc *procs; /* indexed by procedure number */
    uint32_t nprocs;
    void *ctx;                    /* handed to handlers as req->prog_ctx */
    /*
     * Optional (NULL: none).  Called once per call a handler answered
     * (RPC_HANDLER_OK), after its reply was encoded and before release,
     * with ctx, the procedure, its result and the nanoseconds since the
     * call's record was read whole (queueing included: what the client
     * waits, less the network).  Not called for replies from the duplicate
     * request cache.  Runs on the thread finishing the call: keep it to a
     * few counters.
     */
    void (*observe)(void *ctx, uint32_t proc, const void *res, uint64_t nsec);
};

struct rpc_server_conf {
    unsigned threads;          /* worker threads (>= 1) */
    size_t max_record;         /* largest accepted call record, bytes (e.g. 1 MiB + 4 KiB) */
    unsigned max_inflight;     /* calls in flight per connection before reading pauses */
    unsigned max_connections;  /* at this many, a new one closes the quietest (svc.c) or is closed */
    /*
     * How long rpc_server_stop waits for async calls (RPC_HANDLER_ASYNC)
     * still outstanding before it closes the connections, and
     * rpc_server_destroy waits again before it frees the server; 0: 10000.
     */
    unsigned async_stop_ms;
    /*
     * Bytes of call records queued for the workers at most (0: 256 MiB):
     * with 1 MiB WRITEs a count bound alone would let the queue hold
     * gigabytes.  A record arriving past it waits (reading stops: back-
     * pressure), unless the queue is empty.
     */
    size_t max_queue_bytes;
};

struct rpc_server;

/* NULL + errno. */
struct rpc_server *rpc_server_create(const struct rpc_server_conf *c);

/* Serve a program/version on every listener (call before rpc_server_start). */
int rpc_server_add_program(struct rpc_server *s, const struct rpc_program *p);

/*
 * Listen on addr:port (port 0 picks a free port; *bound_port receives the
 * port).  Returns 0 or a positive errno.
 */
int rpc_listen_tcp(struct rpc_server *s, const char *addr, uint16_t port, uint16_t *bound_port);
int rpc_listen_udp(struct rpc_server *s, const char *addr, uint16_t port, uint16_t *bound_port);

/* Start the event loop and the workers in background threads. */
int rpc_server_start(struct rpc_server *s);

/*
 * Stop accepting, finish calls in flight, join threads.  Safe to call once.
 * Async calls still outstanding are waited for up to conf.async_stop_ms;
 * then the connections close, and a reply completed later is dropped (its
 * memory is released by rpc_complete as usual).
 */
void rpc_server_stop(struct rpc_server *s);

/*
 * Stop, then free the server.  If async calls are still outstanding after
 * another conf.async_stop_ms, the server's memory is left allocated (and
 * logged) rather than freed, so their late rpc_complete stays safe.
 */
void rpc_server_destroy(struct rpc_server *s);

/*
 * Answer a call its handler returned RPC_HANDLER_ASYNC for, with `status`
 * (any status but RPC_HANDLER_ASYNC and RPC_HANDLER_WOULDBLOCK, which are
 * answered SYSTEM_ERR), once res is filled.  Exactly once per such call,
 * from any thread.  Encodes the result, runs the procedure's release hook,
 * frees the arguments and the arena, and sends the reply as a worker would
 * (or drops it if the connection died meanwhile); req must not be touched
 * afterwards.  Never waits for a peer; it takes only the RPC layer's own
 * locks, but the release hook runs on the calling thread, so call it with
 * no lock held that the hook may take.
 */
void rpc_complete(struct rpc_req *req, enum rpc_handler_status status);

/*
 * rpcbind: register (prog, vers, proto, port) with the local rpcbind if it
 * is running; returns 0, or ECONNREFUSED/ENOENT quickly when it is not.
 * rpc_unregister removes what was registered.
 */
int rpc_register(uint32_t prog, uint32_t vers, int proto, uint16_t port);
void rpc_unregister(uint32_t prog, uint32_t vers);

/* A piece of a file that a reply's last bytes come from. */
struct rpc_fileseg {
    int fd;
    uint64_t off;
    uint32_t len;
};
#define RPC_FILESEGS_MAX 4

/*
 * Zero-copy replies (TCP only): the encoded result ends with the length word
 * of an opaque whose bytes are these file segments, in order; they are sent
 * with sendfile(2) after the encoded part, then the XDR padding.  The files'
 * contents must not change until done(arg) runs: once, on any thread, when
 * the segments have left or never will (another answer was sent, the
 * connection died).  Call from the handler, before it returns or completes.
 * 0, or ENOTSUP (UDP) / EINVAL (none, too many, twice): nothing attached.
 */
int rpc_reply_filesegs(struct rpc_req *req, const struct rpc_fileseg *segs, unsigned n,
                       void (*done)(void *arg), void *arg);

/* Request-lifetime memory (zeroed, aligned for any type).  Never NULL: aborts on exhaustion of memory. */
void *rpc_alloc(struct rpc_req *req, size_t n);
char *rpc_strdup(struct rpc_req *req, const char *s);

struct rpc_stats {
    uint64_t calls, replies, garbage, bad_records, connections;
    uint64_t inflight;      /* calls between decoding and their reply being encoded */
    uint64_t async_calls;   /* calls whose handler returned RPC_HANDLER_ASYNC, ever */
    uint64_t async_pending; /* of those, calls rpc_complete has not finished yet */
    uint64_t drc_replayed;  /* retransmissions answered from the duplicate request cache */
    uint64_t drc_dropped;   /* retransmissions of calls still in progress, dropped */
    uint64_t drc_entries;   /* calls the cache remembers now */
};
void rpc_server_get_stats(struct rpc_server *s, struct rpc_stats *out);

/* One TCP connection open now. */
struct rpc_conn_info {
    struct sockaddr_storage peer;
    socklen_t peerlen;
    uint16_t local_port; /* the port of the listener it came in on */
    uint64_t calls;      /* call records it brought */
    uint64_t age_ms;     /* since it was accepted */
    uint64_t idle_ms;    /* since its last call arrived (age_ms if it brought none) */
};

/*
 * The TCP connections open now, into out[0..max).  Returns how many are
 * open (more than max: the rest were not written).  Takes the connection
 * list's lock briefly; safe from any thread.
 */
size_t rpc_server_get_conns(struct rpc_server *s, struct rpc_conn_info *out, size_t max);

/* Calls run by one procedure (answered, or taken by an async handler). */
struct rpc_proc_stat {
    uint32_t proc;
    const char *name; /* rpc_proc.name: lives as long as the program table */
    uint64_t calls;
};

/*
 * The per-procedure counters of program prog/vers, in procedure order, into
 * out[0..max).  Returns how many were written (0: no such program).
 * Counting costs one relaxed atomic add per call.
 */
uint32_t rpc_server_get_proc_stats(struct rpc_server *s, uint32_t prog, uint32_t vers,
                                   struct rpc_proc_stat *out, uint32_t max);

#endif
