/*
 * rpc_internal.h - the pieces of the RPC layer that are pure functions of
 * their input bytes, exposed for the unit tests and the fuzz target.
 *
 *   rpc_rec_*          RFC 5531 section 11 record-marking reassembly
 *   rpc_decode_call    call header + credential decoding (RFC 5531 section 9)
 *   rpc_encode_*       reply header encoding
 *   rpc_arena_*        per-request memory behind rpc_alloc()
 *
 * None of these take locks or keep global state; each object is used by one
 * thread at a time.
 */
#ifndef BNFS_RPC_INTERNAL_H
#define BNFS_RPC_INTERNAL_H

#include "rpc/oncrpc.h"

#include <stddef.h>
#include <stdint.h>

#define RPC_MAX_AUTH_BYTES 400   /* opaque_auth body limit, RFC 5531 section 8.2 */
#define RPC_MAX_MACHINENAME 255  /* authsys_parms.machinename, RFC 5531 appendix A */
#define RPC_REPLY_HDR_MAX 40     /* largest reply header we encode, bytes */
#define RPC_LAST_FRAG 0x80000000u

/* ---- record marking ---------------------------------------------------- */

/*
 * Reassembly state of one TCP byte stream.  Fragments are appended to buf
 * until one with the last-fragment bit completes the record.
 */
struct rpc_rec {
    size_t max_record;  /* a fragment or record longer than this is an error */
    uint8_t mark[4];    /* partial record mark */
    unsigned mark_have; /* bytes of mark[] filled */
    uint32_t frag_left; /* bytes of the current fragment still to come */
    bool in_frag;       /* a mark was read and its body is being copied */
    bool last;          /* the current fragment ends the record */
    uint8_t *buf;       /* record assembled so far (malloc) */
    size_t len, cap;
};

void rpc_rec_init(struct rpc_rec *r, size_t max_record);
void rpc_rec_free(struct rpc_rec *r);

/*
 * Consume bytes from data[0..n).  *used receives how many were consumed.
 * When a record completes, *rec / *rec_len receive it (malloc'd, the
 * caller frees it; rec_len may be 0) and consumption stops right after it,
 * so the caller can decide whether to read on.  Otherwise *rec is NULL.
 * Returns 0, EMSGSIZE (fragment or record over max_record: the stream is
 * unusable), or ENOMEM.
 */
int rpc_rec_feed(struct rpc_rec *r, const uint8_t *data, size_t n, size_t *used,
                 uint8_t **rec, size_t *rec_len);

/* ---- call header ------------------------------------------------------- */

enum rpc_call_verdict {
    RPC_CALL_OK,           /* header and credential good: dispatch */
    RPC_CALL_SHORT,        /* not even an xid: drop, and close a TCP stream */
    RPC_CALL_IGNORE,       /* not a call, or header cut short: drop silently */
    RPC_CALL_RPC_MISMATCH, /* rpcvers != 2: MSG_DENIED / RPC_MISMATCH */
    RPC_CALL_AUTH_ERROR,   /* MSG_DENIED / AUTH_ERROR with .why */
};

struct rpc_call_hdr {
    uint32_t xid, rpcvers, prog, vers, proc;
    struct rpc_cred cred;
    enum auth_stat why; /* for RPC_CALL_AUTH_ERROR */
    size_t args_off;    /* offset of the procedure arguments in the record */
};

/* Decode the call header at rec[0..len).  Fills what it could decode into *h. */
enum rpc_call_verdict rpc_decode_call(const uint8_t *rec, size_t len, struct rpc_call_hdr *h);

/* ---- reply header ------------------------------------------------------ */

/*
 * Encode an accepted reply header (verifier AUTH_NONE) with `stat`; for
 * PROG_MISMATCH, low/high are the versions served.  Returns false only if
 * the XDR stream is out of room.
 */
bool rpc_encode_accepted(XDR *x, uint32_t xid, enum accept_stat stat, uint32_t low,
                         uint32_t high);

/* MSG_DENIED / RPC_MISMATCH (versions 2..2). */
bool rpc_encode_rpc_mismatch(XDR *x, uint32_t xid);

/* MSG_DENIED / AUTH_ERROR / why. */
bool rpc_encode_auth_error(XDR *x, uint32_t xid, enum auth_stat why);

/* ---- duplicate request cache (drc.c) ----------------------------------- */

struct rpc_drc;

enum rpc_drc_verdict {
    RPC_DRC_NEW,         /* first sight: serve it, then rpc_drc_done(id, reply) */
    RPC_DRC_IN_PROGRESS, /* the original is still being served: drop this copy */
    RPC_DRC_REPLAY,      /* answered before: send *reply (malloc'd, *len bytes; caller frees) */
};

struct rpc_drc_stats {
    uint64_t entered, replayed, dropped, evicted;
    uint64_t entries, bytes;
};

/* At most max_entries calls and max_bytes of replies.  NULL + errno. */
struct rpc_drc *rpc_drc_create(size_t max_entries, size_t max_bytes);
void rpc_drc_destroy(struct rpc_drc *d);

/*
 * Look a call up by its client address (not port), XID, program, version,
 * procedure and the CRC-32C of its argument bytes.  RPC_DRC_NEW enters it
 * as in progress and sets *id (0: not entered, no memory).
 */
enum rpc_drc_verdict rpc_drc_check(struct rpc_drc *d, const struct sockaddr_storage *peer,
                                   uint32_t xid, uint32_t prog, uint32_t vers, uint32_t proc,
                                   uint32_t crc, uint64_t *id, uint8_t **reply, size_t *len);

/* The call entered as id was answered with reply[0..len) (the RPC message, no record
   mark), or not at all (reply NULL: forget it). */
void rpc_drc_done(struct rpc_drc *d, uint64_t id, const uint8_t *reply, size_t len);

void rpc_drc_get_stats(struct rpc_drc *d, struct rpc_drc_stats *out);

/* ---- request arena ----------------------------------------------------- */

struct rpc_arena;

/* NULL + errno. */
struct rpc_arena *rpc_arena_create(void);
void rpc_arena_destroy(struct rpc_arena *a);

/* Zeroed memory aligned for any type; NULL + ENOMEM (or EOVERFLOW). */
void *rpc_arena_alloc(struct rpc_arena *a, size_t n);

#endif
