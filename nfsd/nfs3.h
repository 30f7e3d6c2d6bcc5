/*
 * nfs3.h - the NFS version 3 program (RFC 1813) served by bucketnfsd.
 */
#ifndef BNFS_NFS3_H
#define BNFS_NFS3_H

#include <stdint.h>

#include "meta/export.h"
#include "meta/fh.h"
#include "meta/inode.h"
#include "rpc/oncrpc.h"

#define NFS3_MAX_IO (1024u * 1024u) /* rtmax / wtmax advertised by FSINFO */
/* Reply buffers of READs waiting on the store, bytes at most (see nfs3_proc.c). */
#define NFS3_ASYNC_READ_MAX (256u << 20)

struct cache;
struct stage;
struct wb;
struct xfile;

struct nfs3_server {
    struct inode_table *inodes;
    struct cache *cache;       /* file contents (READ, READLINK) */
    struct stage *stage;       /* bytes written here, not yet uploaded */
    struct wb *wb;             /* the uploader */
    uint64_t write_verf;       /* WRITE / COMMIT verifier: new at every start */
    struct xfile *xf;          /* cross-file prefetch (may be NULL) */
    _Atomic uint64_t async_read_bytes; /* reply buffers of READs parked on a fetch */
    struct fh_key *fh_key;
    struct export_ctx *exports;
};

/* Fill p with the NFS v3 program served from srv. */
void nfs3_program(struct nfs3_server *srv, struct rpc_program *p);

/* The one place errno becomes nfsstat3 (see the table in nfs3_err.c). */
int nfs3_stat(int err);

#endif
