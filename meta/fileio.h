/*
 * fileio.h - the contents of files: READ and READLINK bytes, served by the
 * block cache for the version of the object the inode table names.
 *
 * The inode table knows which object an inode is and which version of it
 * (ETag, size); the cache serves that version's bytes, fetching misses with
 * If-Match.  When the object changed in the bucket since the table last
 * looked, the fetch is refused (ESTALE), the object is checked again with
 * HEAD, and the read is answered from the new version with the new
 * attributes - never with bytes of two versions.  If the object is gone,
 * the read fails with ESTALE (NFS3ERR_STALE).
 *
 * Threads: safe from many threads.  Completions run on the cache's fetch
 * threads (which may make one HEAD request there, to revalidate).
 */
#ifndef BNFS_FILEIO_H
#define BNFS_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meta/inode.h"

struct cache;
struct stage;
struct wb;

/*
 * One read in progress.  The caller owns the memory and fills the inputs;
 * it must stay valid until the read is over (meta_read returned other than
 * EINPROGRESS, or done was called).
 */
struct meta_read {
    /* in */
    struct inode_table *t;
    struct cache *cache;
    struct stage *stage;    /* bytes written here, not yet uploaded (NULL: none) */
    struct xfile *xf;       /* cross-file prefetch to tell (NULL: none) */
    const struct meta_export *e;
    struct inode_attr attr; /* the file's attributes as the caller found them */
    uint64_t off;
    size_t len;
    void *buf;              /* len bytes */
    void (*done)(struct meta_read *r, int err); /* NULL: meta_read waits instead */
    void *arg;
    bool nowait;            /* cached bytes only: EWOULDBLOCK where a fetch is needed */
    /* out (valid when err == 0) */
    size_t got;
    bool eof;               /* the read reached the end of the file */
    /* private */
    int tries;
    char key[OBJ_KEY_MAX + 1];
    char etag[OBJ_ETAG_MAX];
};

/*
 * Read r->len bytes at r->off of the file r->attr names.  Returns 0 when the
 * bytes are in r->buf (r->got, r->eof and r->attr set: the attributes of
 * the version read), EINPROGRESS when r->done(r, err) will be called later,
 * or an error (ESTALE: the object is gone; EAGAIN: the store is unavailable;
 * EISDIR / EINVAL for a directory / another kind of file).  With r->done
 * NULL it never returns EINPROGRESS; with r->nowait it never waits and
 * returns EWOULDBLOCK where it would have to.
 */
int meta_read(struct meta_read *r);

struct cache_seg;

/*
 * The same read as pieces of the cache's files, when all of it is cached
 * (for a reply sent with sendfile): 0 with segs[0..*n) held (release with
 * cache_put_segs), r->got and r->eof set; EWOULDBLOCK when a byte is not
 * cached (or nothing is to be read): use meta_read.  Never waits.
 */
int meta_read_segs(struct meta_read *r, struct cache_seg *segs, unsigned max, unsigned *n);

/* ---- the write path ------------------------------------------------------------
 *
 * A file written here has its whole content in the stage (cache/stage.h)
 * until it is uploaded (meta/writeback.h); reads of it come from there.
 * Writing to a file that is only in the bucket first copies the object
 * into the stage (through the cache), except when it is truncated to zero
 * first (the usual overwrite: open with O_TRUNC).
 *
 * Durability: a WRITE or SETATTR with `sync` (FILE_SYNC / DATA_SYNC,
 * SETATTR always) returns once its bytes and its table record are on disk;
 * an UNSTABLE write once they are in the system's buffers (a kill -9 keeps
 * them, a power cut may not), and meta_commit makes them durable.
 *
 * Errors: EAGAIN when the stage is at cache.dirty_max (NFS3ERR_JUKEBOX: the
 * client retries once uploads have made room), ENOSPC when the cache disk
 * is full, EISDIR / EINVAL for what is not a regular file, ESTALE.
 */

/*
 * At start: drop staged files that no inode of the table claims (left by a
 * crash between an upload's end and the removal of its staged bytes, or by
 * a remove).  0 or an errno.
 */
int meta_stage_recover(struct inode_table *t, struct stage *st);

/* What the write path works with. */
struct meta_io {
    struct inode_table *t;
    struct cache *cache;
    struct stage *stage;
    struct wb *wb;
};

/* Write len bytes at off of file ino; *before / *after (may be NULL): wcc data. */
int meta_write(const struct meta_io *io, const struct meta_export *e, uint64_t ino,
               uint64_t off, const void *buf, size_t len, bool sync,
               struct inode_attr *before, struct inode_attr *after);

/* SETATTR: c applied to ino; a size change truncates or extends the staged bytes. */
int meta_setattr(const struct meta_io *io, const struct meta_export *e, uint64_t ino,
                 struct inode_change *c, struct inode_attr *before, struct inode_attr *after);

/* COMMIT: ino's staged bytes and every table change so far on disk. */
int meta_commit(const struct meta_io *io, const struct meta_export *e, uint64_t ino);

/* CREATE / MKDIR / SYMLINK (target: the link's text, else NULL); see inode_create. */
int meta_create(const struct meta_io *io, const struct meta_export *e, uint64_t dir,
                const char *name, uint32_t mode, uint32_t uid, uint32_t gid,
                enum inode_how how, uint64_t verf, const char *target,
                struct inode_attr *out, bool *existed, struct inode_attr *dir_before,
                struct inode_attr *dir_after);

/* REMOVE / RMDIR; see inode_remove.  The removed file's staged bytes go too. */
int meta_remove(const struct meta_io *io, const struct meta_export *e, uint64_t dir,
                const char *name, bool rmdir, struct inode_attr *dir_before,
                struct inode_attr *dir_after);

/* RENAME; see inode_rename.  A replaced file's staged bytes go too. */
int meta_rename(const struct meta_io *io, const struct meta_export *e, uint64_t fdir,
                const char *fname, uint64_t tdir, const char *tname,
                struct inode_attr *fdir_before, struct inode_attr *fdir_after,
                struct inode_attr *tdir_before, struct inode_attr *tdir_after);

#endif
