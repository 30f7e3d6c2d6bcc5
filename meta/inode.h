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
 * directory: concurrent callers wait for it), and it is listed again once
 * the export's metadata_ttl has passed since the last listing.  A re-listing
 * keeps the inode number of every entry whose name and type did not change,
 * updates attributes that did (size, mtime, ETag), and removes entries that
 * are gone; when the set of entries changes the directory's mtime and
 * change counter move, so clients drop their cached listings.
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

/* What the inode layer needs to know of an export (built from conf_export). */
struct meta_export {
    uint32_t id;             /* stable export id (see inode_export_id) */
    struct objstore *store;
    const char *bucket;
    const char *prefix;      /* "" or ends with '/' */
    unsigned metadata_ttl;   /* seconds */
    uint32_t file_mode, dir_mode; /* permission bits for objects without POSIX metadata */
    uint32_t uid, gid;
    bool shuffle;            /* read in shuffled epochs (cache: keep what is cached when full) */
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
};

struct inode_table;

/* Open (creating and recovering as needed) the environment in state_dir.  NULL + errno. */
struct inode_table *inode_open(const char *state_dir);
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
 * listed again first; a file whose attributes are older than the TTL is
 * checked with HEAD (and becomes ESTALE if the object is gone).
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

/* The full object key of ino into buf (OBJ_KEY_MAX + 1 bytes).  ESTALE. */
int inode_key(struct inode_table *t, uint64_t ino, char *buf, size_t len);

/* Forget the listing of dir so the next use lists it again (bucketnfs refresh). */
int inode_invalidate(struct inode_table *t, uint64_t dir);

struct inode_stats {
    uint64_t inodes, lists, list_entries, heads;
};
void inode_get_stats(struct inode_table *t, struct inode_stats *out);

#endif
