/*
 * fh.h - NFS file handles: (export id, inode, generation) + MAC.
 *
 * A handle is FH_SIZE opaque bytes: a version byte, the export id, the
 * inode number, the generation, and a 128-bit MAC over those fields under a
 * per-server secret kept in state_dir/fh.secret (created 0600 on first run,
 * never logged).  The same secret is used after a restart, so handles stay
 * valid; an altered or forged handle fails the MAC check.
 */
#ifndef BNFS_FH_H
#define BNFS_FH_H

#include <stddef.h>
#include <stdint.h>

#define FH_SIZE 33 /* well under NFS3_FHSIZE (64) */

struct fh {
    uint32_t export_id;
    uint64_t ino;
    uint32_t gen;
};

struct fh_key;

/* Load the secret from state_dir, creating it on first use.  NULL + errno. */
struct fh_key *fh_key_open(const char *state_dir);
void fh_key_free(struct fh_key *k);

/* Write the FH_SIZE-byte handle for fh into out.  Thread-safe. */
void fh_encode(const struct fh_key *k, const struct fh *fh, uint8_t out[FH_SIZE]);

/*
 * Check and decode a handle a client sent.  Returns 0, or EBADMSG if the
 * length, version or MAC is wrong (NFS3ERR_BADHANDLE).  Thread-safe.
 */
int fh_decode(const struct fh_key *k, const uint8_t *buf, size_t len, struct fh *out);

#endif
