/*
 * inode.h - the inode table: file handles' inode numbers <-> objects.
 *
 * A transactional Berkeley DB environment in state_dir holds, per inode:
 * export id, parent inode, generation, type+mode, uid, gid, size, mtime,
 * ctime, ETag, name and full object key; per directory: its entries
 * (name -> child inode, sorted by name) and when it was last listed.
 * The environment is recovered at open (DB_RECOVER), so inode numbers and
 * generations survive restarts, and so do the file handles built on them.
 *
 * Directories are listed lazily from the object store: the first
 * LOOKUP/READDIR of a directory lists it (one listing at a time per
 * directory: concurrent callers wait for it).  A re-listing keeps the inode
 * number of every entry whose name and type did not change, updates
 * attributes that did (size, mtime, ETag), and removes entries that are
 * gone; when the set of entries changes the directory's mtime and change
 * counter move, so clients drop their cached listings.
 *
 * Stale-while-revalidate.  What a client sees of a directory that has been
 * listed once:
 *   - within metadata_ttl of the end of its last listing, the table's
 *     entries, without a store request (a LOOKUP of a missing name too);
 *   - after that, still the table's entries, at once: the call starts a
 *     re-listing in the background (one per directory at a time, at most
 *     BG_PER_EXPORT of an export queued or running, on threads the table
 *     owns) and later calls see what it found.  GETATTR, READDIR and a
 *     LOOKUP of a name the listing has do not wait for it; a LOOKUP of a
 *     name the old listing lacks does (joining it), so an object put in
 *     the bucket is found by name once the TTL has passed.  A new entry
 *     shows in READDIR within metadata_ttl plus one listing's time of the
 *     first call past the TTL, and a listing slower than the TTL is not
 *     started again the moment it ends;
 *   - after inode_invalidate or inode_refresh, after a background listing
 *     that failed (so a store refusing or failing shows as an error, not as
 *     stale entries for ever), and for a listing made before the server
 *     restarted once its TTL is over, the next caller waits for a new
 *     listing (joining one in progress), as for a directory never listed.
 * Files are not served stale: a file's attributes older than the TTL are
 * checked with HEAD before they are handed out (close-to-open consistency),
 * and so are a directory's own attributes (its marker object) once per TTL
 * -- except in READDIRPLUS, where attributes a listing confirmed, on an
 * export whose listing is as good as a HEAD (posix_metadata "own", or the
 * dir store's listing), are served stale with the names while the
 * directory is listed again (GETATTR and LOOKUP still HEAD them).
 * HEADs are single flight (callers wanting a HEAD of an inode in progress
 * share it) and READDIRPLUS issues its entries' HEADs in parallel.  The
 * export's consistency (enum inode_consistency) and posix_metadata
 * (meta_export.posix_own) change what expires and what a listing confirms.
 *
 * Inode numbers are never reused; numbers below INODE_FIRST are reserved.
 *
 * Threads: every function is safe to call from many threads.
 */
#ifndef BNFS_INODE_H
#define BNFS_INODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "objstore/objstore.h"

#define INODE_FIRST 16 /* lowest inode number handed out (cookies 0..2 are READDIR's) */
#define INODE_NAME_MAX 255

/*
 * How an export keeps its metadata in step with the bucket (exports.conf
 * `consistency`):
 *   INODE_TTL        listings and file attributes expire after metadata_ttl
 *                    (stale-while-revalidate for directories, HEAD for files);
 *   INODE_IMMUTABLE  the bucket does not change behind the server: a
 *                    directory is listed once and a file confirmed (HEAD or
 *                    listing) once, then the table answers for ever, across
 *                    restarts too; only inode_invalidate / inode_refresh
 *                    (bucketnfs refresh) make it list or HEAD again.  Changes
 *                    made through the server are in the table, so they show;
 *   INODE_STRICT     every GETATTR and LOOKUP of a file asks HEAD, every
 *                    GETATTR of a directory HEADs its marker, a LOOKUP of a
 *                    missing name and a READDIR from cookie 0 wait for a new
 *                    listing; concurrent callers share one store request
 *                    (single flight: one in progress is joined).
 */
enum inode_consistency { INODE_TTL, INODE_IMMUTABLE, INODE_STRICT };

/* What the inode layer needs to know of an export (built from conf_export). */
struct meta_export {
    uint32_t id;             /* stable export id (see inode_export_id) */
    struct objstore *store;
    const char *bucket;
    const char *prefix;      /* "" or ends with '/' */
    const char *path;        /* the export's path, for messages (NULL: unknown) */
    unsigned metadata_ttl;   /* seconds */
    uint32_t file_mode, dir_mode; /* permission bits for objects without POSIX metadata */
    uint32_t uid, gid;
    bool shuffle;            /* read in shuffled epochs (cache: keep what is cached when full) */
    unsigned writeback_delay; /* seconds a changed file stays quiet before it is uploaded */
    unsigned rename_dir_max;  /* objects a directory rename may copy in the bucket */
    enum inode_consistency consistency;
    /*
     * posix_metadata = "own": only objects this server wrote carry POSIX
     * metadata, and the table knows them; a listing entry of any other
     * object is as good as its HEAD (the export's file_mode, uid, gid; size,
     * Last-Modified, ETag from the listing).  No HEAD for a listed file.
     */
    bool posix_own;
};

struct inode_attr {
    uint64_t ino;
    uint64_t parent;        /* the root's parent is itself */
    uint32_t export_id;
    uint32_t gen;
    uint32_t mode;          /* S_IFREG / S_IFDIR / S_IFLNK | permission bits */
    uint32_t uid, gid;
    uint32_t nlink;
    uint64_t size;          /* bytes; for a symlink the target's length */
    int64_t mtime_sec;  uint32_t mtime_nsec;
    int64_t ctime_sec;  uint32_t ctime_nsec;
    uint64_t change;        /* bumped on every attribute or entry change (dirs: listing changes) */
    char etag[OBJ_ETAG_MAX];
    bool unconfirmed;       /* a file's mode, owner and mtime are a listing's guess
                               (no POSIX metadata in it), not yet checked by HEAD */
    bool local;             /* changed here and not yet uploaded (write-back pending) */
    bool staged;            /* its bytes are in the stage (written here), not the bucket */
    bool in_bucket;         /* an object (or a directory's prefix) exists in the bucket */
    bool moving;            /* its directory was renamed; the object follows (local too) */
};

struct inode_table;

#define INODE_CACHE_DEFAULT (64ull << 20) /* server.meta_cache's default */

/*
 * Open (creating and recovering as needed) the environment in state_dir,
 * with a Berkeley DB cache of cache_bytes (0: INODE_CACHE_DEFAULT); what
 * does not fit is read from state_dir's files.  NULL + errno.
 */
struct inode_table *inode_open(const char *state_dir, uint64_t cache_bytes);
void inode_close(struct inode_table *t);

/*
 * The stable id of an export path: allocated on first sight and kept in the
 * table, so it survives restarts and reordering of exports.conf.
 */
int inode_export_id(struct inode_table *t, const char *export_path, uint32_t *id);

/* The export's root directory (key = prefix), created on first use.  Does not list it. */
int inode_root(struct inode_table *t, const struct meta_export *e, struct inode_attr *out);

/*
 * Attributes of ino.  ESTALE if there is no such inode, or if it belongs to
 * another export than e->id.  A directory whose listing has expired is
 * answered at once and listed again in the background (after
 * inode_invalidate: listed again first); a file whose attributes are older
 * than the TTL is checked with HEAD (and becomes ESTALE if the object is gone).
 */
int inode_getattr(struct inode_table *t, const struct meta_export *e, uint64_t ino,
                  struct inode_attr *out);

/*
 * Look up name in directory dir ("." and ".." included).  Lists the
 * directory first if needed.  ENOENT, ENOTDIR, ENAMETOOLONG, EINVAL (bad
 * name: empty, contains '/', or NUL), ESTALE, or a store error.
 * dir_attr (may be NULL) receives the directory's attributes.
 */
int inode_lookup(struct inode_table *t, const struct meta_export *e, uint64_t dir,
                 const char *name, struct inode_attr *out, struct inode_attr *dir_attr);

/*
 * The same two answers from the table alone, for callers that must not wait
 * on the object store (the RPC event loop's fast path): EWOULDBLOCK where
 * inode_getattr / inode_lookup would list a directory or HEAD an object,
 * otherwise exactly their results.
 */
int inode_getattr_nowait(struct inode_table *t, const struct meta_export *e, uint64_t ino,
                         struct inode_attr *out);
int inode_lookup_nowait(struct inode_table *t, const struct meta_export *e, uint64_t dir,
                        const char *name, struct inode_attr *out, struct inode_attr *dir_attr);

/*
 * Check a file's object with HEAD now, whatever its TTL (a read found the
 * object changed: its If-Match failed), and return its new attributes.
 * ESTALE if the object is gone.  Directories are returned as they are.
 */
int inode_revalidate(struct inode_table *t, const struct meta_export *e, uint64_t ino,
                     struct inode_attr *out);

/*
 * One directory entry, in name order.  cookie is what READDIR hands the
 * client to continue after this entry.  Return 0 to go on, 1 to stop
 * (reply full) without error, or a positive errno.
 */
typedef int (*inode_readdir_cb)(void *arg, const char *name, uint64_t cookie,
                                const struct inode_attr *attr);

/*
 * List directory dir starting after cookie (0 = from the start; "." and
 * ".." come first with cookies 1 and 2).  *eof is set when the callback saw
 * the last entry.  *verf receives the cookie verifier of the listing.
 * EINVAL ("bad cookie") if the cookie names no entry any more.  ENOTDIR.
 */
int inode_readdir(struct inode_table *t, const struct meta_export *e, uint64_t dir,
                  uint64_t cookie, inode_readdir_cb cb, void *arg, bool *eof,
                  uint64_t *verf);

/*
 * inode_readdir for READDIRPLUS, whose attributes the client caches: files
 * among the entries whose attributes are unconfirmed (known from a listing
 * only) or expired are HEADed before they are handed out -- in parallel, at
 * most 16 (AHEAD_PER_EXPORT) of the export in flight, a batch of entries
 * at a time, so the entries after the reply's last are confirmed for the
 * next call too.  An entry whose object is gone is left out; one whose
 * HEAD failed goes out unconfirmed.
 */
int inode_readdirplus(struct inode_table *t, const struct meta_export *e, uint64_t dir,
                      uint64_t cookie, inode_readdir_cb cb, void *arg, bool *eof,
                      uint64_t *verf);

/* The full object key of ino into buf (OBJ_KEY_MAX + 1 bytes).  ESTALE. */
int inode_key(struct inode_table *t, uint64_t ino, char *buf, size_t len);

/*
 * Forget the listing of dir so the next use lists it again and waits for
 * it (bucketnfs refresh); for a file, the next GETATTR asks HEAD.
 */
int inode_invalidate(struct inode_table *t, uint64_t dir);

/*
 * List directory dir of export e again now.  wait: return when a listing
 * that began after this call has ended (its error, if it failed); without
 * wait, start it in the background and return (if none can start now, the
 * next caller lists it and waits, as after inode_invalidate).  ESTALE,
 * ENOTDIR.
 */
int inode_refresh(struct inode_table *t, const struct meta_export *e, uint64_t dir, bool wait);

/*
 * Stop background listings and wait for their threads: one in progress
 * stops at its next page.  Call before the stores the exports name are
 * destroyed; expired directories are then listed by callers, as with no
 * pool.  inode_close does it too.
 */
void inode_quiesce(struct inode_table *t);

/* ---- the write path (inode_write.c) --------------------------------------------
 *
 * Changes made through the server are recorded in the table first and
 * reach the bucket later (write-back, meta/writeback.c):
 *   - a record changed here carries `local` until its upload; listings and
 *     HEADs never overwrite or remove a local record (the table's version
 *     wins until it is uploaded), and a listing running while an upload
 *     ends keeps the uploaded entry;
 *   - every local record has a write-back record ("W": a data version
 *     bumped by every change, when the oldest and latest change were
 *     made); the uploader uploads a record quiet for writeback_delay and
 *     clears it only if no change came in meanwhile;
 *   - a new file's or symlink's bytes live in the stage (cache/stage.h)
 *     until uploaded (`staged`); an object that is written to is first
 *     copied into the stage;
 *   - namespace changes (create, remove, rename) commit synchronously
 *     (fsync of the log): what a client was told happened survives a crash.
 *     Removing or renaming something that exists in the bucket changes the
 *     bucket first (DeleteObject; CopyObject + DeleteObject), then the table,
 *     so the bucket never loses an object the table still names; while the
 *     store is unreachable those answer EAGAIN (NFS3ERR_JUKEBOX).
 */

/* SETATTR's guard did not match the object's ctime (NFS3ERR_NOT_SYNC). */
#define INODE_ENOTSYNC ENOTUNIQ

enum inode_how { INODE_UNCHECKED, INODE_GUARDED, INODE_EXCLUSIVE };

/* New attributes (SETATTR), or a write's effect on them. */
struct inode_change {
    bool set_mode, set_uid, set_gid, set_size, set_mtime;
    uint32_t mode, uid, gid;   /* mode: permission bits only */
    uint64_t size;
    int64_t mtime_sec;         /* set_mtime: this time (the caller fills the server's
                                  time for SET_TO_SERVER_TIME) */
    uint32_t mtime_nsec;
    bool touch_ctime;          /* an atime-only change: ctime moves, nothing else */
    uint64_t write_end;        /* a WRITE ended at this offset: size grows to it, mtime = now */
    uint64_t write_start;      /* ... and began at this one */
    bool staged;               /* the bytes are in the stage from now on */
    bool set_base;             /* staged copied from the bucket's object: base_size bytes of it */
    uint64_t base_size;
    bool guard;                /* apply only if ctime is still guard_sec.guard_nsec */
    int64_t guard_sec;
    uint32_t guard_nsec;
    bool sync;                 /* commit durably before returning */
};

/*
 * Make name in directory dir: a regular file, directory or symlink as mode's
 * type says (S_IFREG / S_IFDIR / S_IFLNK | permission bits), owned by
 * uid:gid, of size `size` (a symlink: its target's length; the caller puts
 * the target in the stage).  how: UNCHECKED returns an existing regular
 * file as it is (*existed set); GUARDED answers EEXIST; EXCLUSIVE answers
 * EEXIST unless the existing file was made by an EXCLUSIVE create with the
 * same verifier (a retransmission: *existed set).  Lists the directory
 * first if it never was.  EEXIST, ENOTDIR, EINVAL (also a name that is not
 * UTF-8 when the store's keys must be: name_check_new), ENAMETOOLONG, ESTALE.
 * dir_before / dir_after (may be NULL): the directory around the change.
 */
int inode_create(struct inode_table *t, const struct meta_export *e, uint64_t dir,
                 const char *name, uint32_t mode, uint32_t uid, uint32_t gid, uint64_t size,
                 enum inode_how how, uint64_t verf, struct inode_attr *out, bool *existed,
                 struct inode_attr *dir_before, struct inode_attr *dir_after);

/*
 * Remove name from dir: a file (rmdir false; EISDIR for a directory) or an
 * empty directory (rmdir true; ENOTDIR for a file, ENOTEMPTY when it has
 * entries in the table or objects in the bucket).  *gone receives the
 * removed inode's attributes (the caller drops its staged bytes).
 */
int inode_remove(struct inode_table *t, const struct meta_export *e, uint64_t dir,
                 const char *name, bool rmdir, struct inode_attr *gone,
                 struct inode_attr *dir_before, struct inode_attr *dir_after);

/*
 * Rename fdir/fname to tdir/tname, replacing a target of a compatible type
 * (EISDIR, ENOTDIR, ENOTEMPTY otherwise; EINVAL to move a directory into
 * itself).  A file or directory that exists in the bucket is copied there
 * (a directory: every object under it, at most e->rename_dir_max, else
 * EFBIG) before the table changes and its old objects are deleted after.
 * A name ".nfs*" is the Linux client's silly rename of an open file being
 * removed: the object stays where it is (hidden from listings) until the
 * file is removed, so it never reaches the bucket under that name.
 * *replaced (ino 0 if none): the target that was replaced.
 */
int inode_rename(struct inode_table *t, const struct meta_export *e, uint64_t fdir,
                 const char *fname, uint64_t tdir, const char *tname,
                 struct inode_attr *replaced, struct inode_attr *fdir_before,
                 struct inode_attr *fdir_after, struct inode_attr *tdir_before,
                 struct inode_attr *tdir_after);

/*
 * At start, before serving: finish or undo renames a crash cut off in the
 * bucket (see the rename journal in inode_write.c), for the exports v.
 */
int inode_journal_replay(struct inode_table *t, const struct meta_export *const *v, size_t n);

/*
 * The inode a silly rename hides under the object key that name would have
 * in dir (ENOENT: none).  Before something new takes that key, the caller
 * copies the hidden file's bytes into the stage: the open file still reads
 * them after the bucket's object is replaced.
 */
int inode_hidden_by(struct inode_table *t, uint64_t dir, const char *name, uint64_t *ino);

/* Apply c to ino (a local change; see struct inode_change).  INODE_ENOTSYNC, ESTALE. */
int inode_change(struct inode_table *t, const struct meta_export *e, uint64_t ino,
                 const struct inode_change *c, struct inode_attr *before,
                 struct inode_attr *after);

/* Make every change committed so far durable (COMMIT: the log is flushed to disk). */
int inode_sync(struct inode_table *t);

/* ---- the write-back queue (for meta/writeback.c) ---- */

struct inode_dirty {
    uint64_t ino;
    uint32_t export_id;
    uint64_t dver;      /* data version: moves with every change */
    int64_t first_ns;   /* the oldest change not uploaded */
    int64_t last_ns;    /* the latest change */
    uint64_t base_size;   /* the staged bytes came from the bucket's object of this size ... */
    uint64_t clean_below; /* ... and [0, clean_below) of them are still that object's */
};

/* Up to max local inodes with numbers > after, in order; *n how many. */
int inode_dirty_scan(struct inode_table *t, uint64_t after, struct inode_dirty *out,
                     size_t max, size_t *n);

/*
 * What to upload for ino: its attributes, key (OBJ_KEY_MAX + 1), its
 * write-back record.  ENOENT when it is not local any more.
 */
int inode_upload_get(struct inode_table *t, uint64_t ino, struct inode_attr *a, char *key,
                     struct inode_dirty *d);

/*
 * The upload of version dver of ino to key ended with etag (NULL for a
 * directory marker).  If ino changed since (another dver) it stays local
 * (*clean false); if it moved to another key, *moved is set: the object just
 * written at key is not the file's any more and the caller deletes it.
 * Otherwise ino is clean: in the bucket, attributes kept, not staged.
 */
int inode_upload_done(struct inode_table *t, uint64_t ino, uint64_t dver, const char *key,
                      const char *etag, bool *clean, bool *moved);

/*
 * An upload of ino is starting / has ended.  EBUSY: a namespace change
 * holds ino (try later).  While an upload runs, a remove or rename of ino
 * waits for it; inode_upload_wanted says one is waiting (stop early).
 */
int inode_upload_begin(struct inode_table *t, uint64_t ino);
void inode_upload_end(struct inode_table *t, uint64_t ino);
bool inode_upload_wanted(struct inode_table *t, uint64_t ino);

/* A multipart upload in progress (resumed after a restart if dver still matches). */
struct inode_mp {
    uint64_t dver;
    uint64_t part_size;
    char upload_id[OBJ_UPLOAD_ID_MAX];
    char key[OBJ_KEY_MAX + 1];
};
int inode_mp_get(struct inode_table *t, uint64_t ino, struct inode_mp *m); /* ENOENT */
int inode_mp_put(struct inode_table *t, uint64_t ino, const struct inode_mp *m);
int inode_mp_del(struct inode_table *t, uint64_t ino);

/*
 * Background moves (a directory renamed before its objects were copied;
 * inode_write.c, "background moves").  inode_move_object: copy ino's
 * object from where it waits to its key, update the table, delete the old
 * object (0 when ino is not moving); the caller holds ino against
 * namespace changes (inode_upload_begin).  inode_moves_settle: close the
 * moves of an export whose files have all moved (their old markers and
 * left-over objects are deleted); the uploader calls it every scan.
 * inode_moves_open: how many are open (of one export, or all).
 */
int inode_move_object(struct inode_table *t, struct objstore *s, const char *bucket,
                      uint64_t ino);
int inode_moves_settle(struct inode_table *t, uint32_t export_id, struct objstore *s,
                       const char *bucket);
int inode_moves_open(struct inode_table *t, bool one_export, uint32_t export_id, uint64_t *n);

/* Local inodes now, and when the oldest change among them was made (0: none). */
void inode_dirty_summary(struct inode_table *t, uint64_t *count, int64_t *oldest_ns);

struct inode_stats {
    uint64_t inodes, lists, list_entries, heads;
    uint64_t heads_ahead;      /* HEADs made ahead of READDIRPLUS (by the HEAD threads) */
    uint64_t heads_ahead_max;  /* the most of one export in flight at once, so far */
    uint64_t heads_joined;     /* callers that took a HEAD in progress (single flight) */
    uint64_t lists_background; /* listings run by the background threads */
    uint64_t lists_skipped;    /* background listings not started: export at its limit */
    uint64_t lists_pending;    /* listings queued or in progress now */
    uint64_t sync_commits;     /* transactions committed with a sync of the log */
    uint64_t moves_open;       /* directory renames whose objects are still moving */
    uint64_t moved;            /* files moved after their directory's rename */
};
void inode_get_stats(struct inode_table *t, struct inode_stats *out);

#endif
