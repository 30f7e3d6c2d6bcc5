/*
 * nfs3_xdr.h - hand-written encoders for the NFS v3 replies whose rpcgen
 * form would recurse once per entry (READDIR, READDIRPLUS), and the sizes
 * the handlers budget replies with.
 */
#ifndef BNFS_NFS3_XDR_H
#define BNFS_NFS3_XDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meta/fh.h"
#include "meta/inode.h"
#include "rpc/oncrpc.h"
#include "nfs3_prot.h"

struct nfs3_dirent {
    struct nfs3_dirent *next;
    uint64_t fileid, cookie;
    fattr3 attr;        /* READDIRPLUS only */
    bool have_attr;     /* READDIRPLUS: send attr (else the client asks GETATTR) */
    uint8_t fh[FH_SIZE];/* READDIRPLUS only */
    char name[];
};

struct nfs3_dirlist {
    struct nfs3_dirent *head, *tail;
    unsigned n;
    bool eof;
    bool plus;
};

/* The READDIR3res / READDIRPLUS3res a handler fills. */
struct nfs3_readdir_res {
    nfsstat3 status;
    bool have_dir;
    fattr3 dir;
    uint64_t verf;
    struct nfs3_dirlist list;
};

/*
 * The READ3res a handler fills.  With data_in_files, a successful reply's
 * data bytes are not in res.resok.data.data_val: the encoder stops after
 * the opaque's length word and the RPC layer sends the bytes from the
 * cache's files (rpc_reply_filesegs).
 */
struct nfs3_read_res {
    READ3res res;
    bool data_in_files;
};

/*
 * xdrproc_t for WRITE3args (decode and free): the data is not copied, it
 * points into the call's record (alive until the call's arguments are
 * freed); more than NFS3_WRITE_MAX bytes is GARBAGE_ARGS.
 */
#define NFS3_WRITE_MAX (1024u * 1024u)
bool_t nfs3_xdr_write_args(XDR *x, WRITE3args *a);

/* xdrproc_t for struct nfs3_read_res (encode only). */
bool_t nfs3_xdr_read_res(XDR *x, struct nfs3_read_res *r);

/* Encoded bytes of one entry with a name of namelen bytes. */
size_t nfs3_dirent_size(size_t namelen, bool plus);

/* Encoded bytes of a successful reply with no entries (status .. eof). */
size_t nfs3_readdir_fixed_size(void);

/* xdrproc_t for struct nfs3_readdir_res (encode only; iterative). */
bool_t nfs3_xdr_readdir_res(XDR *x, struct nfs3_readdir_res *r);

/* Shared with the handlers (nfs3_proc.c). */
void nfs3_fattr(fattr3 *f, const struct inode_attr *a);
struct nfs3_server;
void nfs3_handle(struct nfs3_server *srv, struct rpc_req *req, const struct inode_attr *a,
                 nfs_fh3 *out);

#endif
