/*
 * record.c - RFC 5531 section 11 record marking: reassembling call records
 * from a TCP byte stream.
 *
 * A record is one or more fragments; each fragment is preceded by a 4-byte
 * big-endian mark whose top bit says "last fragment" and whose low 31 bits
 * give the fragment length.  States of struct rpc_rec:
 *
 *   reading mark   mark_have 0..3, in_frag false
 *   copying body   in_frag true, frag_left bytes still to come
 *   complete       after the body of a last fragment: the record is handed
 *                  out and the state returns to "reading mark"
 *
 * Zero-length fragments are legal and simply contribute nothing; a
 * zero-length record is handed out (the caller rejects it as too short to
 * hold an xid).  Memory grows with the bytes that actually arrive, never
 * with a length the peer merely claims, and never past max_record.
 *
 * Threads: one rpc_rec belongs to one connection and is only touched by the
 * event-loop thread (or the fuzzer).  No locks.
 */
#include "rpc/rpc_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define REC_MIN_ALLOC 1024

void rpc_rec_init(struct rpc_rec *r, size_t max_record)
{
    memset(r, 0, sizeof(*r));
    r->max_record = max_record;
}

void rpc_rec_free(struct rpc_rec *r)
{
    free(r->buf);
    r->buf = NULL;
    r->len = r->cap = 0;
}

/* Make room for `more` bytes after r->len.  Caller checked the total against max_record. */
static int rec_reserve(struct rpc_rec *r, size_t more)
{
    size_t need = r->len + more;
    if (need <= r->cap)
        return 0;
    size_t cap = r->cap ? r->cap : REC_MIN_ALLOC;
    while (cap < need)
        cap *= 2;
    if (cap > r->max_record)
        cap = r->max_record > need ? r->max_record : need;
    uint8_t *nb = realloc(r->buf, cap);
    if (!nb)
        return ENOMEM;
    r->buf = nb;
    r->cap = cap;
    return 0;
}

int rpc_rec_feed(struct rpc_rec *r, const uint8_t *data, size_t n, size_t *used,
                 uint8_t **rec, size_t *rec_len)
{
    size_t off = 0;

    *rec = NULL;
    *rec_len = 0;
    while (off < n) {
        if (!r->in_frag) {
            while (r->mark_have < 4 && off < n)
                r->mark[r->mark_have++] = data[off++];
            if (r->mark_have < 4)
                break;
            uint32_t m = (uint32_t)r->mark[0] << 24 | (uint32_t)r->mark[1] << 16 |
                         (uint32_t)r->mark[2] << 8 | r->mark[3];
            r->mark_have = 0;
            r->last = (m & RPC_LAST_FRAG) != 0;
            r->frag_left = m & ~RPC_LAST_FRAG;
            /* Checked before any allocation: the claim alone can end the stream. */
            if (r->frag_left > r->max_record || r->len + r->frag_left > r->max_record) {
                *used = off;
                return EMSGSIZE;
            }
            r->in_frag = true;
        }
        if (r->frag_left > 0) {
            size_t take = n - off;
            if (take > r->frag_left)
                take = r->frag_left;
            if (take == 0)
                break;
            int err = rec_reserve(r, take);
            if (err) {
                *used = off;
                return err;
            }
            memcpy(r->buf + r->len, data + off, take);
            r->len += take;
            off += take;
            r->frag_left -= (uint32_t)take;
            if (r->frag_left > 0)
                break;
        }
        /* Fragment body complete. */
        r->in_frag = false;
        if (r->last) {
            if (!r->buf) {
                /* Zero-length record: hand out a valid pointer all the same. */
                r->buf = malloc(1);
                if (!r->buf) {
                    *used = off;
                    return ENOMEM;
                }
            }
            *rec = r->buf;
            *rec_len = r->len;
            r->buf = NULL;
            r->len = r->cap = 0;
            r->last = false;
            break;
        }
    }
    *used = off;
    return 0;
}
