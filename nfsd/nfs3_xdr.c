/*
 * nfs3_xdr.c - READDIR and READDIRPLUS reply encoding (RFC 1813 3.3.16,
 * 3.3.17) without recursion: rpcgen's entry3/entryplus3 routines call
 * themselves once per entry, and a 1 MiB reply holds tens of thousands.
 * And READ's (3.3.6), whose data may follow from the cache's files.
 */
#include "nfsd/nfs3_xdr.h"

#include <string.h>

#define XDR_PAD4(n) (((n) + 3) & ~(size_t)3)
#define FATTR3_SIZE 84 /* 13 fields of RFC 1813 2.5 (fattr3) */

size_t nfs3_dirent_size(size_t namelen, bool plus)
{
    /* value_follows, fileid, name<>, cookie */
    size_t n = 4 + 8 + 4 + XDR_PAD4(namelen) + 8;
    if (plus)
        n += 4 + FATTR3_SIZE + 4 + 4 + XDR_PAD4(FH_SIZE); /* post_op_attr, post_op_fh3 */
    return n;
}

size_t nfs3_readdir_fixed_size(void)
{
    /* status, post_op_attr, cookieverf, end of list, eof */
    return 4 + 4 + FATTR3_SIZE + 8 + 4 + 4;
}

static bool_t put_post_op(XDR *x, const fattr3 *a)
{
    bool_t follows = a != NULL;
    if (!xdr_bool(x, &follows))
        return FALSE;
    return !a || xdr_fattr3(x, (fattr3 *)a);
}

bool_t nfs3_xdr_readdir_res(XDR *x, struct nfs3_readdir_res *r)
{
    if (x->x_op != XDR_ENCODE)
        return FALSE;
    if (!xdr_nfsstat3(x, &r->status))
        return FALSE;
    if (!put_post_op(x, r->have_dir ? &r->dir : NULL))
        return FALSE;
    if (r->status != NFS3_OK)
        return TRUE;
    char verf[8];
    for (int i = 0; i < 8; i++)
        verf[i] = (char)(r->verf >> (56 - 8 * i));
    if (!xdr_opaque(x, verf, 8))
        return FALSE;
    for (struct nfs3_dirent *d = r->list.head; d; d = d->next) {
        bool_t more = TRUE;
        char *name = d->name;
        if (!xdr_bool(x, &more) || !xdr_u_int64_t(x, &d->fileid) ||
            !xdr_string(x, &name, ~0u) || !xdr_u_int64_t(x, &d->cookie))
            return FALSE;
        if (r->list.plus) {
            bool_t fh_follows = TRUE;
            u_int fhlen = FH_SIZE;
            char *fh = (char *)d->fh;
            if (!put_post_op(x, d->have_attr ? &d->attr : NULL) || !xdr_bool(x, &fh_follows) ||
                !xdr_bytes(x, &fh, &fhlen, FH_SIZE))
                return FALSE;
        }
    }
    bool_t more = FALSE, eof = r->list.eof;
    return xdr_bool(x, &more) && xdr_bool(x, &eof);
}

bool_t nfs3_xdr_write_args(XDR *x, WRITE3args *a)
{
    if (x->x_op == XDR_FREE)
        return xdr_nfs_fh3(x, &a->file); /* the data belongs to the record */
    if (x->x_op != XDR_DECODE)
        return FALSE;
    u_int len;
    if (!xdr_nfs_fh3(x, &a->file) || !xdr_offset3(x, &a->offset) || !xdr_count3(x, &a->count) ||
        !xdr_stable_how(x, &a->stable) || !xdr_u_int(x, &len) || len > NFS3_WRITE_MAX)
        return FALSE;
    char *p = NULL;
    if (len && !(p = (char *)xdr_inline(x, (int)((len + 3) & ~3u))))
        return FALSE;
    a->data.data_len = len;
    a->data.data_val = p;
    return TRUE;
}

bool_t nfs3_xdr_read_res(XDR *x, struct nfs3_read_res *r)
{
    if (x->x_op != XDR_ENCODE)
        return FALSE;
    if (!r->data_in_files || r->res.status != NFS3_OK)
        return xdr_READ3res(x, &r->res);
    READ3resok *ok = &r->res.READ3res_u.resok;
    u_int len = ok->data.data_len;
    /* status, file_attributes, count, eof, then data<>'s length: its bytes follow. */
    return xdr_nfsstat3(x, &r->res.status) && xdr_post_op_attr(x, &ok->file_attributes) &&
           xdr_count3(x, &ok->count) && xdr_bool(x, &ok->eof) && xdr_u_int(x, &len);
}
