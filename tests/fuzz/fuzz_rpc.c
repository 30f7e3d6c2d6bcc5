/*
 * fuzz_rpc.c - libFuzzer target for the bytes the RPC layer takes from the
 * network before any procedure sees them.
 *
 * Each input is used three ways:
 *   1. as one call record for rpc_decode_call (header + credentials);
 *   2. as a TCP byte stream for the record-mark reassembler, delivered in
 *      chunks whose sizes come from the input itself, with a small
 *      max_record so the limits are reached; every record it produces is
 *      decoded as a call and answered with the matching reply header;
 *   3. as a list of allocation sizes for the request arena.
 * Invariants are checked with abort(), which libFuzzer reports as a crash.
 */
#include "rpc/rpc_internal.h"

#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_RECORD 1024

static void check_call(const uint8_t *rec, size_t len)
{
    struct rpc_call_hdr h;
    enum rpc_call_verdict v = rpc_decode_call(rec, len, &h);

    if (v == RPC_CALL_OK && (h.args_off > len || h.cred.ngids > RPC_AUTH_SYS_MAX_GIDS))
        abort();
    if (v == RPC_CALL_SHORT && len >= 4)
        abort();

    /* Encode the reply the server would send; it must fit the header room. */
    char out[RPC_REPLY_HDR_MAX];
    XDR x;
    xdrmem_create(&x, out, sizeof(out), XDR_ENCODE);
    bool ok = true;
    if (v == RPC_CALL_RPC_MISMATCH)
        ok = rpc_encode_rpc_mismatch(&x, h.xid);
    else if (v == RPC_CALL_AUTH_ERROR)
        ok = rpc_encode_auth_error(&x, h.xid, h.why);
    else if (v == RPC_CALL_OK)
        ok = rpc_encode_accepted(&x, h.xid, PROG_MISMATCH, h.vers, h.vers);
    xdr_destroy(&x);
    if (!ok)
        abort();
}

static void check_stream(const uint8_t *data, size_t size)
{
    struct rpc_rec r;
    size_t off = 0;
    unsigned step = size ? (unsigned)data[0] % 61 + 1 : 1;

    rpc_rec_init(&r, FUZZ_MAX_RECORD);
    while (off < size) {
        size_t n = size - off < step ? size - off : step;
        size_t used;
        uint8_t *rec;
        size_t rec_len;
        int err = rpc_rec_feed(&r, data + off, n, &used, &rec, &rec_len);
        if (used > n)
            abort();
        if (err) {
            if (rec)
                abort();
            break;
        }
        if (rec) {
            if (rec_len > FUZZ_MAX_RECORD)
                abort();
            check_call(rec, rec_len);
            free(rec);
        } else if (used != n) {
            abort(); /* stopped early without a record or an error */
        }
        off += used;
        step = step * 7 % 61 + 1;
    }
    rpc_rec_free(&r);
}

static void check_arena(const uint8_t *data, size_t size)
{
    struct rpc_arena *a = rpc_arena_create();
    if (!a)
        return;
    for (size_t i = 0; i + 1 < size && i < 64; i += 2) {
        size_t n = (size_t)data[i] << 8 | data[i + 1];
        uint8_t *p = rpc_arena_alloc(a, n);
        if (!p)
            abort();
        /* Zeroed: one memcmp of the block against itself shifted by a
         * byte (a byte loop here, traced by the fuzzer's instrumentation,
         * cost more than everything else the target does). */
        if (n && (p[0] != 0 || memcmp(p, p + 1, n - 1) != 0))
            abort();
        memset(p, 0xa5, n);
    }
    rpc_arena_destroy(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_call(data, size);
    check_stream(data, size);
    check_arena(data, size);
    return 0;
}
