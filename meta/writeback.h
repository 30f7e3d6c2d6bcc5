/*
 * writeback.h - the uploader: what was written through the server reaches
 * the bucket.
 *
 * The inode table records every local change (inode.h, "the write path":
 * a "W" record per local inode, with a data version); the stage holds the
 * bytes of files written here (cache/stage.h).  The uploader scans the
 * local inodes and uploads each one that has been quiet for its export's
 * writeback_delay (at once when a flush asks for it):
 *   - a file or symlink whose bytes are staged: one PUT up to
 *     single_max bytes, multipart above it (parts of part_size, more where
 *     10,000 parts would not hold the file), the POSIX attributes in the
 *     same request (x-amz-meta-file-*), so one change makes one object
 *     version;
 *   - a file whose attributes alone changed: CopyObject onto itself with
 *     the new attributes;
 *   - a directory: its marker object ("dir/") with its attributes.
 * A big file that was copied into the stage from the bucket (to be
 * appended to or patched) is uploaded as multipart where whole parts below
 * the lowest byte changed since are copied in the store (UploadPartCopy of
 * the object's own key, If-Match on its ETag) instead of sent again; if the
 * object changed in the bucket meanwhile, everything is sent.
 * The uploaded bytes are then put into the block cache (wb_conf.cache) as
 * the new object version's blocks, so reading a file back after its upload
 * is a hit, not a download.  Then, if the inode did not change meanwhile
 * (same data version), it is marked clean and its staged bytes are
 * dropped; otherwise it stays local and is uploaded again later, and the
 * blocks just kept are dropped from the cache (they may hold a later
 * write's bytes).  At start, the cached blocks of every staged file are
 * dropped for the same reason (a crash between the two).
 *
 * Multipart uploads resume: the upload id is recorded in the inode table
 * before the first part, and after a restart an upload of the same data
 * version continues from the parts the store already has (ListParts);
 * one of an older version is aborted.
 *
 * Conflicts: an object changed in the bucket (by another tool or gateway)
 * while the gateway holds changes for it is overwritten by the gateway's
 * version at upload: the last writer wins, as on a local file system, and
 * the event is logged and counted (stats.conflicts).  The gateway checks
 * with HEAD before uploading a file that is already in the bucket.
 *
 * Pressure: once the staged bytes pass half of cache.dirty_max, every
 * local inode is due at once (writers past dirty_max get JUKEBOX until
 * uploads make room, and should not wait out the delay as well).
 *
 * Failures: a store that fails (unreachable, 5xx, refusing) pauses that
 * export's uploads with exponential backoff (1 s .. 60 s); nothing is lost
 * meanwhile (writes keep landing in the stage up to cache.dirty_max).
 * A file whose staged bytes cannot be read (its staged file or the cache
 * folder deleted under the daemon) cannot be written back: that is logged
 * once at ERR with the file's name, counted (stats.unwritable), and the
 * file alone is retried with its own backoff (1 s .. 60 s), so that it is
 * written back if its staged file is restored; the rest of its export goes
 * on.  A flush that waits ends with EIO instead of waiting for it
 * (wb_unwritable names such files).
 *
 * Threads: `threads` upload workers and one scanner, owned by the uploader.
 * Writers and the end of an upload exclude each other per inode with
 * wb_lock (shared for writers, exclusive for the upload's completion and
 * for copying an object into the stage).  Every function is thread-safe.
 */
#ifndef BNFS_WRITEBACK_H
#define BNFS_WRITEBACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meta/inode.h"

struct stage;

struct wb_conf {
    unsigned threads;     /* concurrent uploads (cache.upload_threads) */
    uint64_t single_max;  /* largest file sent with one PUT (0: 16 MiB) */
    uint64_t part_size;   /* multipart part size (0: 16 MiB; at least 5 MiB) */
    unsigned scan_ms;     /* how often local inodes are looked at (0: 500 ms) */
    struct cache *cache;  /* the block cache uploaded files go into (NULL: none) */
};

struct wb;

/* Start the uploader on table t and stage st.  NULL + errno. */
struct wb *wb_create(const struct wb_conf *c, struct inode_table *t, struct stage *st);

/* Stop the workers (an upload in progress is abandoned and resumes at the next start). */
void wb_destroy(struct wb *w);

/*
 * The exports as they are now: the uploader finds an inode's store,
 * bucket and writeback_delay by export id.  Copied; call again after a
 * reload.  An export that is gone keeps its local inodes until it returns.
 */
int wb_set_exports(struct wb *w, const struct meta_export *const *v, size_t n);

/* Per-inode exclusion between writers (shared) and upload completion (exclusive). */
void wb_lock(struct wb *w, uint64_t ino, bool exclusive);
void wb_unlock(struct wb *w, uint64_t ino);

/* Something became local: look soon (a flush or a zero delay need not wait for the scan). */
void wb_kick(struct wb *w);

/*
 * Upload now what is local, without waiting for writeback_delay: ino's
 * changes, or everything (ino 0).  wait_ms > 0: return when it is all in
 * the bucket (0), when all that is left cannot be written back (EIO: each
 * file of it was tried again since this call began and its staged bytes
 * could still not be read; wb_unwritable names them), or after wait_ms
 * (ETIMEDOUT); 0: return once a scan has queued it (the request ends
 * there: later changes wait their delay).
 */
int wb_flush(struct wb *w, uint64_t ino, unsigned wait_ms);

/* The same for everything local of one export. */
int wb_flush_export(struct wb *w, uint32_t export_id, unsigned wait_ms);

/* Local (not yet uploaded) inodes now: of one export, or of all.  0 or an errno. */
int wb_local_count(struct wb *w, bool one_export, uint32_t export_id, uint64_t *count);

/*
 * Call cb(arg, name, err) for each file that cannot be written back now
 * (its staged bytes unreadable: err why), of inode ino, else of one
 * export, else of all; name is "EXPORT/PATH" as the file was called when
 * it last failed.  With no lock held.  0 or ENOMEM.
 */
int wb_unwritable(struct wb *w, uint64_t ino, bool one_export, uint32_t export_id,
                  void (*cb)(void *arg, const char *name, int err), void *arg);

struct wb_stats {
    uint64_t uploads;        /* objects written (PUT, multipart, copy, marker) */
    uint64_t upload_bytes;   /* bytes sent */
    uint64_t parts, parts_resumed;
    uint64_t failures;       /* uploads that failed (retried later) */
    uint64_t conflicts;      /* objects changed in the bucket under local changes */
    uint64_t superseded;     /* uploads that ended after a newer change (uploaded again) */
    uint64_t copied_bytes;   /* bytes copied in the store (UploadPartCopy) instead of sent */
    uint64_t pending;        /* local inodes now */
    int64_t oldest_ns;       /* when the oldest local change was made (0: none) */
    uint64_t inflight;       /* uploads running now */
    uint64_t unwritable;     /* files now whose staged bytes cannot be read (see Failures) */
    uint64_t unwritable_total; /* files found so since the start */
};
void wb_get_stats(struct wb *w, struct wb_stats *out);

/*
 * The upload backoff of export id: *until_ns is when its uploads may go
 * again (CLOCK_REALTIME ns; 0: not backing off), *step_ns the current step
 * (1 s doubling to 60 s; 0: none).  0, or ENOENT for an export the
 * uploader does not know.
 */
int wb_export_backoff(struct wb *w, uint32_t id, int64_t *until_ns, int64_t *step_ns);

#endif
