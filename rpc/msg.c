/*
 * msg.c - RPC call header and credential decoding, reply header encoding
 * (RFC 5531 sections 8, 9 and appendix A).
 *
 * Decoding runs over the raw record bytes with libtirpc's xdrmem; every
 * length from the wire is checked against its protocol maximum before it
 * is used (opaque_auth bodies <= 400 bytes, machinename <= 255, at most 16
 * supplementary gids).  Nothing here allocates: the credential lands in a
 * fixed struct rpc_cred, opaque bodies are skipped or decoded in place.
 *
 * Replies always carry an AUTH_NONE verifier.
 *
 * Threads: pure functions, called from workers and the fuzzer; no state.
 */
#include "rpc/rpc_internal.h"

#include <string.h>

/*
 * Decode an AUTH_SYS body (authsys_parms) of `len` bytes.  Returns false if
 * it is malformed or has more than RPC_AUTH_SYS_MAX_GIDS groups.
 */
static bool decode_authsys(const uint8_t *body, uint32_t len, struct rpc_cred *c)
{
    XDR x;
    uint32_t stamp, namelen, ngids;
    bool ok = false;

    xdrmem_create(&x, (char *)body, len, XDR_DECODE);
    if (!xdr_u_int(&x, &stamp) || !xdr_u_int(&x, &namelen))
        goto out;
    if (namelen > RPC_MAX_MACHINENAME)
        goto out;
    /* The name is not kept: skip it with its XDR padding. */
    uint32_t padded = (namelen + 3) & ~3u;
    if (padded > len - xdr_getpos(&x) || !xdr_setpos(&x, xdr_getpos(&x) + padded))
        goto out;
    if (!xdr_u_int(&x, &c->uid) || !xdr_u_int(&x, &c->gid) || !xdr_u_int(&x, &ngids))
        goto out;
    if (ngids > RPC_AUTH_SYS_MAX_GIDS)
        goto out;
    for (uint32_t i = 0; i < ngids; i++)
        if (!xdr_u_int(&x, &c->gids[i]))
            goto out;
    c->ngids = ngids;
    c->flavor = AUTH_SYS;
    ok = true;
out:
    xdr_destroy(&x);
    return ok;
}

/*
 * Read one opaque_auth (flavor, body <= 400 bytes) at the current position.
 * *body points into the record.  Returns false if it is cut short or too long.
 */
static bool decode_opaque_auth(XDR *x, const uint8_t *rec, size_t len, uint32_t *flavor,
                               const uint8_t **body, uint32_t *body_len)
{
    if (!xdr_u_int(x, flavor) || !xdr_u_int(x, body_len))
        return false;
    if (*body_len > RPC_MAX_AUTH_BYTES)
        return false;
    size_t pos = xdr_getpos(x);
    size_t padded = ((size_t)*body_len + 3) & ~(size_t)3;
    if (padded > len - pos)
        return false;
    *body = rec + pos;
    return xdr_setpos(x, (u_int)(pos + padded));
}

enum rpc_call_verdict rpc_decode_call(const uint8_t *rec, size_t len, struct rpc_call_hdr *h)
{
    XDR x;
    uint32_t mtype, flavor, body_len = 0, vflavor, vlen = 0;
    const uint8_t *body, *vbody;
    enum rpc_call_verdict v = RPC_CALL_IGNORE;

    memset(h, 0, sizeof(*h));
    if (len < 4)
        return RPC_CALL_SHORT;
    if (len > UINT32_MAX)
        return RPC_CALL_IGNORE;
    xdrmem_create(&x, (char *)rec, (u_int)len, XDR_DECODE);
    if (!xdr_u_int(&x, &h->xid))
        goto out;
    if (!xdr_u_int(&x, &mtype) || mtype != CALL)
        goto out;
    if (!xdr_u_int(&x, &h->rpcvers))
        goto out;
    if (h->rpcvers != RPC_MSG_VERSION) {
        /* The rest of the header may follow another layout: do not read it. */
        v = RPC_CALL_RPC_MISMATCH;
        goto out;
    }
    if (!xdr_u_int(&x, &h->prog) || !xdr_u_int(&x, &h->vers) || !xdr_u_int(&x, &h->proc))
        goto out;
    if (!decode_opaque_auth(&x, rec, len, &flavor, &body, &body_len)) {
        if (body_len > RPC_MAX_AUTH_BYTES) {
            h->why = AUTH_BADCRED;
            v = RPC_CALL_AUTH_ERROR;
        }
        goto out;
    }
    if (!decode_opaque_auth(&x, rec, len, &vflavor, &vbody, &vlen)) {
        if (vlen > RPC_MAX_AUTH_BYTES) {
            h->why = AUTH_BADVERF;
            v = RPC_CALL_AUTH_ERROR;
        }
        goto out;
    }
    h->args_off = xdr_getpos(&x);

    switch (flavor) {
    case AUTH_NONE:
        h->cred.flavor = AUTH_NONE;
        v = RPC_CALL_OK;
        break;
    case AUTH_SYS:
        if (decode_authsys(body, body_len, &h->cred)) {
            v = RPC_CALL_OK;
        } else {
            memset(&h->cred, 0, sizeof(h->cred));
            h->why = AUTH_BADCRED;
            v = RPC_CALL_AUTH_ERROR;
        }
        break;
    default:
        /* RPCSEC_GSS, AUTH_DH, ...: not served; the client must pick another flavor. */
        h->why = AUTH_REJECTEDCRED;
        v = RPC_CALL_AUTH_ERROR;
        break;
    }
out:
    xdr_destroy(&x);
    return v;
}

/* xid, REPLY: the start of every reply. */
static bool encode_reply_start(XDR *x, uint32_t xid, uint32_t reply_stat)
{
    uint32_t mtype = REPLY;
    return xdr_u_int(x, &xid) && xdr_u_int(x, &mtype) && xdr_u_int(x, &reply_stat);
}

bool rpc_encode_accepted(XDR *x, uint32_t xid, enum accept_stat stat, uint32_t low,
                         uint32_t high)
{
    uint32_t vflavor = AUTH_NONE, vlen = 0, st = (uint32_t)stat;

    if (!encode_reply_start(x, xid, MSG_ACCEPTED) || !xdr_u_int(x, &vflavor) ||
        !xdr_u_int(x, &vlen) || !xdr_u_int(x, &st))
        return false;
    if (stat == PROG_MISMATCH)
        return xdr_u_int(x, &low) && xdr_u_int(x, &high);
    return true;
}

bool rpc_encode_rpc_mismatch(XDR *x, uint32_t xid)
{
    uint32_t rs = RPC_MISMATCH, low = RPC_MSG_VERSION, high = RPC_MSG_VERSION;

    return encode_reply_start(x, xid, MSG_DENIED) && xdr_u_int(x, &rs) &&
           xdr_u_int(x, &low) && xdr_u_int(x, &high);
}

bool rpc_encode_auth_error(XDR *x, uint32_t xid, enum auth_stat why)
{
    uint32_t rs = AUTH_ERROR, w = (uint32_t)why;

    return encode_reply_start(x, xid, MSG_DENIED) && xdr_u_int(x, &rs) && xdr_u_int(x, &w);
}
