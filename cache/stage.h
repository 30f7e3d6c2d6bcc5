/*
 * stage.h - written data waiting for upload, on the cache disk.
 *
 * NFS WRITEs land here ("staged", dirty files); an uploader later sends each
 * file to the object store and then removes its staged file.  This module
 * stores the bytes only: which inode a staged file belongs to, when it is
 * uploaded and what a WRITE answers are the callers' (meta/, nfsd/), which
 * it never calls.
 *
 * One staged file per file being written, named by (export id, inode):
 * DIR/dirty/EEEEEEEE-IIIIIIIIIIIIIIII (the export id as 8 and the inode as
 * 16 lower-case hex digits).  It holds the file's *whole* current content,
 * sparse where the file has holes, and its length is the file's size.
 * Staged files are the durable dirty data: they survive restarts and
 * `kill -9`, and stage_create finds them again.  What stage_sync (or
 * stage_sync_all) returned 0 for also survives a crash of the machine;
 * anything else may or may not.  A file removed just before a crash may
 * come back (its name's removal is made durable by the next directory
 * fsync): it holds what was uploaded.  Other names in dirty/ are ignored
 * (logged), never removed.
 *
 * Accounting: stats.bytes is the space the staged files take on disk
 * (st_blocks * 512, measured after each operation that may change it), at
 * most max_bytes as far as writes go: a write that could take the total
 * over max_bytes fails with EAGAIN before anything is written or created
 * (the write's length, rounded out to whole blocks, is counted as new space
 * even where it overwrites; the NFS layer answers NFS3ERR_JUKEBOX and the
 * client retries once uploads have freed space).  Truncation never counts
 * as new space (it allocates nothing).
 *
 * Contract, for every function returning int: 0 or a positive errno.
 *   ENOENT   there is no staged file for (exp, ino) (where said)
 *   EAGAIN   max_bytes would be exceeded: nothing was written
 *   ENOSPC   the disk (or a quota) is full: the write failed
 *   EFBIG    offset + length beyond what a file can hold
 *   EIO      also for our own files or folder refused to us (EPERM, EACCES,
 *            EROFS: a read-only or immutable cache disk), never the client's fault
 *   ENOMEM, EMFILE ...   as the system said
 * A staged file deleted under the module (by hand, or with its folder)
 * fails what uses it with EIO, the writes and syncs that landed in its
 * deleted file included (they cannot be read back after it is closed).
 * The folder is not created again while running (its path may be an
 * unmounted disk's mount point); one put back at its path is used again.
 * A failed write is never silently partial.  Space is allocated for the
 * write's range before any byte is written (fallocate), so a full disk
 * fails the write with the file unchanged (a file the write was to create
 * may have been created, empty).  Where that cannot hold (a file
 * system without fallocate, or a copy-on-write one, or an I/O error in the
 * middle) the call still fails, and the range it was writing is undefined
 * (the rest of the file and its size are as before, unless the write
 * reached past the end: then the file may have grown).
 *
 * Threads: every function is safe to call from many threads at once, on the
 * same file or different ones; writes to distinct ranges of one file run in
 * parallel.  The order of a stage_remove and a write of the same file is
 * the caller's: a write racing a remove lands in the removed file or in a
 * new one.  Open descriptors are cached, at most STAGE_OPEN_MAX (more only
 * while more files than that are in calls at once); a removed file's
 * descriptor is closed when its last user is done, and descriptors from
 * stage_open stay readable after a remove.
 */
#ifndef BNFS_STAGE_H
#define BNFS_STAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STAGE_OPEN_MAX 256 /* cached descriptors */

struct stage_conf {
    const char *dir;    /* a cache directory; staged files go in DIR/dirty (created) */
    uint64_t max_bytes; /* bound on stats.bytes for writes (0: none) */
};

struct stage;

/*
 * Create DIR/dirty if missing, lock it against a second process (EBUSY),
 * and index the staged files found there (their sizes and space).  NULL +
 * errno; logs why.
 */
struct stage *stage_create(const struct stage_conf *c);

/* Close every descriptor and free the index; no call may be in progress.  Does not sync. */
void stage_destroy(struct stage *s);

/*
 * Write len bytes of buf at off of (exp, ino)'s staged file, creating it
 * (empty, mode 0600) if missing; the file grows to off + len if shorter,
 * with a hole between its old end and off.  len 0 only creates.
 */
int stage_write(struct stage *s, uint32_t exp, uint64_t ino, uint64_t off, const void *buf,
                size_t len);

/*
 * Read up to len bytes at off into buf; *got is set to the bytes read
 * (short only at the end of the file, 0 at or past it; holes read as
 * zeros).  ENOENT if there is no staged file.
 */
int stage_read(struct stage *s, uint32_t exp, uint64_t ino, uint64_t off, size_t len, void *buf,
               size_t *got);

/* Set the file's size (cut, or extended with a hole), creating it if missing. */
int stage_truncate(struct stage *s, uint32_t exp, uint64_t ino, uint64_t size);

/* The file's size as of the last completed write or truncate.  ENOENT if none. */
int stage_size(struct stage *s, uint32_t exp, uint64_t ino, uint64_t *size);

/* Whether (exp, ino) has a staged file. */
bool stage_exists(struct stage *s, uint32_t exp, uint64_t ino);

/*
 * Make the file's data and size durable (fdatasync); the first sync after
 * the file was created also syncs the dirty/ folder, so that its name
 * survives a crash (one folder sync serves every file created before it
 * began: concurrent first syncs share it).  ENOENT if there is no staged
 * file.
 */
int stage_sync(struct stage *s, uint32_t exp, uint64_t ino);

/* stage_sync of every staged file, then of the folder (removals too); the first error. */
int stage_sync_all(struct stage *s);

/*
 * Remove the staged file (its space leaves stats.bytes at once).  No file
 * is not an error.  Descriptors other threads hold (stage_open's, or the
 * cache's while a call is using one) stay valid until closed.
 */
int stage_remove(struct stage *s, uint32_t exp, uint64_t ino);

/*
 * A new read-only descriptor of the staged file, for streaming it to the
 * store with pread; the caller closes it.  ENOENT if there is no staged
 * file; EIO if there is one but its file was deleted under us (by hand, or
 * with the folder).
 */
int stage_open(struct stage *s, uint32_t exp, uint64_t ino, int *fd);

/*
 * Call cb once per staged file (a snapshot: files created meanwhile may be
 * missed), with no lock held: cb may call stage_* functions.  Returns 0, or
 * the first non-zero value cb returned, which stops the walk.
 */
int stage_list(struct stage *s, int (*cb)(void *arg, uint32_t exp, uint64_t ino, uint64_t size),
               void *arg);

struct stage_stats {
    uint64_t files;       /* staged files */
    uint64_t bytes;       /* their space on disk (st_blocks * 512) */
    uint64_t max_bytes;   /* the configured bound (0: none) */
    uint64_t writes;      /* stage_write calls that succeeded */
    uint64_t write_bytes; /* and their bytes */
    uint64_t syncs;       /* stage_sync calls that succeeded (stage_sync_all's included) */
    uint64_t dir_syncs;   /* folder syncs they made (fewer: shared by new files) */
    uint64_t over_limit;  /* writes refused with EAGAIN (max_bytes) */
    uint64_t nospc;       /* operations that failed with ENOSPC (disk or quota full) */
    uint64_t errors;      /* operations that failed with another system error */
};

void stage_get_stats(struct stage *s, struct stage_stats *out);

#endif
