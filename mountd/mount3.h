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

/*
 * NULL + errno.  The server keeps these pointers; they must outlive it.
 * state_dir (may be NULL: the list is not kept) holds the mount list
 * across restarts as MNT_RMTAB_NAME: read here (a missing file is an
 * empty list; a malformed line is skipped and logged), rewritten (to a
 * temporary file, fsync'd, renamed over it) whenever MNT adds an entry or
 * UMNT / UMNTALL removes one.  A failure to write it is logged and the
 * list in memory stays right.
 */
struct mnt_server *mnt_server_create(struct export_ctx *exports, struct fh_key *key,
                                     struct inode_table *inodes, const char *state_dir);
void mnt_server_destroy(struct mnt_server *m);

/* One entry of the mount list (what DUMP answers), with when it was first mounted. */
struct mnt_listed {
    char host[48];  /* the client's address as text (inet_ntop) */
    char *path;     /* the path it mounted */
    int64_t since;  /* seconds since the epoch */
};

/* A copy of the mount list into *out (free with mnt_list_free), *n entries.  0 or ENOMEM. */
int mnt_list_get(struct mnt_server *m, struct mnt_listed **out, size_t *n);
void mnt_list_free(struct mnt_listed *v, size_t n);

/*
 * The mount-list file: one line per entry, "HOST SINCE PATH\n", PATH with
 * every byte up to 0x20, 0x7f and '\\' written as '\\' and three octal
 * digits (as /proc/mounts writes names).
 */
#define MNT_RMTAB_NAME "rmtab"
#define MNT_RMTAB_PATH_MAX 1024 /* MNTPATHLEN */
/* Format one line with its "\n" into out.  0, or ENAMETOOLONG if it does not fit. */
int mnt_rmtab_format(const char *host, int64_t since, const char *path, char *out, size_t outlen);
/*
 * Parse one line of len bytes (without "\n"; the file's, so not trusted):
 * host (48 bytes: an IPv4 or IPv6 address), since, path
 * (MNT_RMTAB_PATH_MAX + 1 bytes).  0 or EINVAL.
 */
int mnt_rmtab_parse(const char *line, size_t len, char *host, int64_t *since, char *path);

/* Fill p with the MOUNT v3 program served from m. */
void mnt_program(struct mnt_server *m, struct rpc_program *p);

#endif
