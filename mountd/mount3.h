/*
 * mount3.h - the MOUNT version 3 program (RFC 1813 appendix I).
 */
#ifndef BNFS_MOUNT3_H
#define BNFS_MOUNT3_H

#include "meta/export.h"
#include "meta/fh.h"
#include "meta/inode.h"
#include "rpc/oncrpc.h"

struct mnt_server;

/* NULL + errno.  The server keeps these pointers; they must outlive it. */
struct mnt_server *mnt_server_create(struct export_ctx *exports, struct fh_key *key,
                                     struct inode_table *inodes);
void mnt_server_destroy(struct mnt_server *m);

/* Fill p with the MOUNT v3 program served from m. */
void mnt_program(struct mnt_server *m, struct rpc_program *p);

#endif
