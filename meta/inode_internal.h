/*
 * inode_internal.h - what the files of the inode table share (meta/inode*.c
 * only; everything else goes through meta/inode.h).
 *
 * The files, one job each:
 *   inode.c        the public API: open/close, export ids and roots,
 *                  getattr / lookup / readdir / key / invalidate / stats
 *   inode_db.c     the schema: transactions, record and dirent encoding,
 *                  inode-number allocation, removal of detached subtrees
 *   inode_list.c   listing a directory from the store and reconciling its
 *                  entries with the table; one listing per directory
 *   inode_reval.c  HEAD revalidation of files and of directory markers
 *
 * The schema.  Five B-tree databases in one transactional environment:
 *
 *   inodes.db   ino (u64 BE) -> struct irec + name + full object key
 *   dirents.db  parent ino (u64 BE) + name bytes -> struct dval {child, epoch}
 *               (B-tree byte order = the entries of a directory, by name)
 *   exports.db  export path -> export id (u32)
 *   counters.db "next_ino" (u64): only ever locked by inode-number
 *               reservations, which run while other transactions of the
 *               same thread are open, so they must not share its pages
 *   misc.db     "next_export" counter (u32),
 *               "R" + export id BE -> root ino + bucket NUL prefix,
 *               "O" + ino BE -> orphaned directory subtrees awaiting removal,
 *               "P" + dir BE + name -> an object listed under the name of a
 *               known directory, settled after the listing's last page,
 *               "W" + ino BE -> struct wbrec: a local inode waiting for upload,
 *               "X" + ino BE -> an EXCLUSIVE create's verifier (u64),
 *               "K" + object key -> ino: an object a silly rename hides, or one
 *               a directory rename is moving (see IREC_MOVING), or the old
 *               prefix of a directory being moved (its listing is hidden),
 *               "m" + ino BE -> the object key where a moving file's bytes are
 *
 * Internal functions return 0, a positive errno, or DB_LOCK_DEADLOCK (which
 * txn_run retries); public_errno() turns that into what the API returns.
 * These names carry no inode_ prefix on purpose: they are not the module's
 * interface, and the prefix would make them look like it.
 */
#ifndef BNFS_INODE_INTERNAL_H
#define BNFS_INODE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <db.h>

#include "common/clock.h"
#include "meta/inode.h"

#define INO_BLOCK 16384       /* inode numbers reserved per durable (fsync) counter update */
#define PAGE_MAX 1000         /* listing entries per store page */
#define LIST_TXN_ENTRIES 100  /* listing entries applied per transaction */
#define SWEEP_BATCH 512       /* dirents examined per sweep transaction */
#define RM_BATCH 256          /* records deleted per remove_tree transaction */
#define READDIR_BATCH 32      /* entries read per cursor pass in inode_readdir */
#define TXN_RETRIES 20
#define DIR_SIZE 4096         /* the size a directory reports */
#define NS 1000000000LL

/* Stored inode record (native byte order: the database never leaves this host). */
struct irec {
    uint64_t parent;
    uint64_t size;
    uint64_t change;
    uint64_t epoch;        /* dirs: epoch of the current/last listing */
    int64_t mtime_sec, ctime_sec;
    int64_t listed_at;     /* dirs: ns, start of the last complete listing; 0 never */
    int64_t validated_at;  /* ns: attributes last confirmed by LIST or HEAD (dirs: by the
                              marker's HEAD or a listing carrying its metadata); 0 never */
    uint32_t mtime_nsec, ctime_nsec;
    uint32_t export_id, gen;
    uint32_t mode, uid, gid, nlink;
    char etag[OBJ_ETAG_MAX];
    uint16_t name_len, key_len;
    uint32_t flags;        /* IREC_* (fits the struct's tail padding: the size is unchanged) */
};

/* dirs: mtime was set by a change a re-listing found, not taken from the marker. */
#define IREC_MTIME_LISTED 1u
/*
 * dirs: a re-listing was asked for (inode_invalidate, inode_refresh): the
 * next caller waits for one instead of being answered from the table.  A
 * listing that begins takes the request (RELIST -> RELIST_TAKEN) and
 * clears it when it succeeds, so a request made during a listing, or one
 * whose listing failed, still makes the next caller wait.
 */
#define IREC_RELIST 2u
#define IREC_RELIST_TAKEN 4u
/*
 * The write path (inode_write.c).  LOCAL: changed here, not yet uploaded
 * (a "W" record says since when); the table's attributes win over what
 * listings and HEADs report.  STAGED: the bytes are in the stage.  NEW:
 * nothing of it is in the bucket yet (made here, never uploaded).  SILLY:
 * renamed to a ".nfs*" name while open and removed; its object stays under
 * its old key (the record's key), hidden from listings by a "K" record,
 * until the file is removed.
 */
#define IREC_LOCAL 8u
#define IREC_STAGED 16u
#define IREC_NEW 32u
#define IREC_SILLY 64u
/*
 * A file of a renamed directory whose object has not followed yet (the
 * directory rename answered before its objects were copied: inode_write.c,
 * "background moves").  The record's key is the new one; the object is
 * still at the key of its "m" record, hidden from listings by a "K"
 * record, and the file is LOCAL with a "W" record, so the uploader moves
 * it (inode_move_object) and a listing keeps it as it is.  A file renamed
 * in the bucket moves the same way (at once, before the answer).
 */
#define IREC_MOVING 128u
/*
 * A moving file whose object is at its key now; the old copy (the "m"
 * key, still hidden by its "K" record) is left to delete, then the "m",
 * "K" (and a WB_MOVE_ONLY "W") records go.  The uploader finishes it.
 */
#define IREC_MOVED_OLD 512u
#define IREC_MOVE_ANY (IREC_MOVING | IREC_MOVED_OLD)
/*
 * dirs: a directory of such a tree (the renamed one and those under it)
 * while its move is open: its objects may not be at its key yet, so a
 * listing keeps it even when it does not see it.  Cleared when the move
 * closes.
 */
#define IREC_MOVE_DIR 256u

/* An inode record decoded, with NUL-terminated name and key. */
struct inode_rec {
    uint64_t ino;
    struct irec h;
    char name[INODE_NAME_MAX + 1];
    char key[OBJ_KEY_MAX + 1];
};

/* Stored dirent value. */
struct dval {
    uint64_t ino;
    uint64_t epoch; /* listing epoch in which the entry was last seen */
};

/* flags took the tail padding: records written before it keep their size. */
_Static_assert(sizeof(struct irec) % 8 == 0 && offsetof(struct irec, flags) + 4 == sizeof(struct irec),
               "struct irec grew: stored records would no longer decode");

#define IREC_MAX (sizeof(struct irec) + INODE_NAME_MAX + OBJ_KEY_MAX)
#define DKEY_MAX (8 + INODE_NAME_MAX + 1)

/* One listing in progress (single flight). */
/*
 * Background listings (stale-while-revalidate, inode_list.c): a pool of
 * BG_THREADS threads owned by the table; at most BG_PER_EXPORT listings of
 * one export queued or running, at most BG_QUEUE_MAX queued in all.  A
 * directory that cannot get a background listing now simply stays stale:
 * the next caller asks again.
 */
#define BG_THREADS 8
#define BG_PER_EXPORT 4
#define BG_QUEUE_MAX 256

/* One listing queued or in progress (single flight: at most one per directory). */
struct listing {
    uint64_t dir;
    uint32_t export_id;
    bool background;    /* queued for (or run by) the pool */
    bool started;       /* a thread runs it (a queued one may be taken by a waiting caller) */
    bool done;
    int err;
    unsigned refs;      /* the thread running it + callers waiting for it */
    pthread_cond_t listing_done;
    struct listing *next;  /* t->flights */
    struct listing *qnext; /* t->queue (background, not started) */
    struct meta_export e;  /* background: a copy; bucket and prefix are owned */
};

#define GONE_SLOTS 4096

/*
 * HEADs (inode_reval.c).  Single flight: at most one HEAD of an inode in
 * progress; callers wanting one meanwhile wait for it and take its result.
 */
struct head_flight {
    uint64_t ino;
    bool done;
    int err;
    unsigned refs;          /* the caller running it + callers waiting for it */
    pthread_cond_t head_done;
    struct head_flight *next;
};

/*
 * HEADs ahead of a READDIRPLUS walk (inode_ahead.c): a pool of AHEAD_THREADS
 * threads owned by the table; at most AHEAD_PER_EXPORT HEADs of one export
 * in flight at once.
 */
#define AHEAD_THREADS 32
#define AHEAD_PER_EXPORT 16

struct ahead_batch;
struct ahead_job {
    struct inode_rec *rec;  /* in: the file's record; out: as the HEAD left it */
    int rc;                 /* file_revalidate's result */
    struct ahead_batch *b;
    struct ahead_job *next; /* t->ahead_queue */
};

/* HEADs of one export running in the pool now. */
struct ahead_load {
    uint32_t export_id;
    unsigned running;
    struct ahead_load *next;
};

struct inode_table {
    DB_ENV *env;
    DB *inodes, *dirents, *exports, *misc;
    DB *counters; /* touched only by reserve_fn, under alloc_mu (see ino_alloc) */

    pthread_mutex_t alloc_mu;
    uint64_t next_ino, ino_limit; /* [next_ino, ino_limit) is reserved and unused */
    uint32_t gens[64];
    unsigned ngens;

    pthread_mutex_t flight_mu;
    struct listing *flights;        /* queued or in progress, one per directory */
    struct listing *queue, **queue_tail; /* background listings not started, FIFO */
    unsigned queued;
    pthread_cond_t work_ready;      /* signals: a background listing queued, or stopping */
    pthread_t bg[BG_THREADS];
    unsigned nbg;                   /* pool threads running */
    atomic_bool stopping;           /* inode_quiesce: no new background work; cancel */
    int64_t opened_at;              /* ns: listings older than this are not served stale */

    /* Uploads in progress and namespace changes holding inodes (inode_write.c). */
    pthread_mutex_t busy_mu;
    pthread_cond_t busy_cv;
    struct ino_busy *busy;

    /*
     * When (ns) a name was last removed or renamed away here, by a hash of
     * (directory, name): a listing that read the store before then must not
     * bring the name back from what it read (gone_note, gone_since).
     */
    _Atomic int64_t gone_at[GONE_SLOTS];

    /* HEADs in progress (single flight, inode_reval.c). */
    pthread_mutex_t head_mu;
    struct head_flight *head_flights;

    /* The pool of HEADs ahead of READDIRPLUS (inode_ahead.c).  Lock: ahead_mu. */
    pthread_mutex_t ahead_mu;
    pthread_cond_t ahead_ready;     /* signals: a job queued, a slot freed, or stopping */
    struct ahead_job *ahead_queue, **ahead_tail;
    struct ahead_load *ahead_loads;
    pthread_t ahead[AHEAD_THREADS];
    unsigned nahead;                /* pool threads running */
    bool ahead_stopping;
    unsigned ahead_running_max;     /* the most HEADs of one export seen in flight at once */

    _Atomic int64_t n_inodes;
    _Atomic uint64_t n_lists, n_list_entries, n_heads, n_heads_ahead, n_heads_joined;
    _Atomic uint64_t n_bg_lists, n_bg_skipped;
    _Atomic uint64_t n_sync_commits;
    _Atomic int64_t n_moves;        /* open background moves (phase 3 "J" records) */
    pthread_mutex_t move_mu[16];    /* one inode_move_object of an inode at a time (by hash) */
    _Atomic uint64_t n_moved;       /* files moved by inode_move_object */
};

enum list_want { LIST_IF_NEEDED, LIST_IF_EXPIRED };

static inline int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
}

/*
 * Is it metadata_ttl or more since `at` (ns)?  A stamp from the future
 * (the wall clock went back since) counts as passed (common/clock.h).
 */
static inline bool ttl_passed(const struct meta_export *e, int64_t at, int64_t now)
{
    return clock_wall_passed(at, now, (int64_t)e->metadata_ttl * NS);
}

/*
 * Has what was confirmed at `at` expired at now, by the export's
 * consistency: ttl -> metadata_ttl has passed; immutable -> never; strict
 * -> always (every use asks the store again).
 */
static inline bool ttl_expired(const struct meta_export *e, int64_t at, int64_t now)
{
    switch (e->consistency) {
    case INODE_IMMUTABLE:
        return false;
    case INODE_STRICT:
        return true;
    default:
        return ttl_passed(e, at, now);
    }
}

static inline void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static inline uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static inline bool is_deadlock(int r)
{
    return r == DB_LOCK_DEADLOCK || r == DB_LOCK_NOTGRANTED;
}

/* ---- inode_db.c: transactions, records, allocation, subtree removal ---- */

typedef int (*txn_fn)(struct inode_table *t, DB_TXN *txn, void *arg);

int db_errno(int r);
int public_errno(int r);
/*
 * Run fn in a transaction, retrying on deadlock.  fn must leave its
 * outputs in arg only when it returns 0 (it may run several times).
 * sync: commit with DB_TXN_SYNC (for what cannot be derived from the store).
 */
int txn_run(struct inode_table *t, txn_fn fn, void *arg, bool sync);
/*
 * The same, with the commit's durability decided by fn: *sync is read after
 * fn returns 0 (fn may clear it when its transaction changed nothing a
 * crash must keep).
 */
int txn_run_sync_if(struct inode_table *t, txn_fn fn, void *arg, const bool *sync);

int rec_get(struct inode_table *t, DB_TXN *txn, uint64_t ino, struct inode_rec *r,
            uint32_t flags);
/*
 * The records of inodes inos[0..n) outside any transaction, each result in
 * got[i] (0, ENOENT, ...) as rec_get's: through one cursor, which steps to
 * the next record when the numbers follow each other (as a listing's do)
 * rather than searching the tree for each.  Returns an error only when no
 * cursor could be opened.
 */
int rec_get_many(struct inode_table *t, const uint64_t *inos, size_t n, struct inode_rec *out,
                 int *got);
int rec_put(struct inode_table *t, DB_TXN *txn, struct inode_rec *r);
int rec_del(struct inode_table *t, DB_TXN *txn, uint64_t ino);
size_t dkey_make(uint8_t *buf, uint64_t parent, const char *name, size_t len);
int dirent_get(struct inode_table *t, DB_TXN *txn, uint64_t parent, const char *name,
               struct dval *out, uint32_t flags);
int dirent_put(struct inode_table *t, DB_TXN *txn, uint64_t parent, const char *name,
               const struct dval *dv);
int dirent_del(struct inode_table *t, DB_TXN *txn, uint64_t parent, const char *name);
int misc_get(struct inode_table *t, DB_TXN *txn, const void *key, size_t klen, void *val,
             size_t vmax, size_t *vlen, uint32_t flags);
int misc_put(struct inode_table *t, DB_TXN *txn, const void *key, size_t klen,
             const void *val, size_t vlen);
void orphan_key(uint8_t kb[9], uint64_t ino);
void rec_to_attr(const struct inode_rec *r, struct inode_attr *a);
/* A directory's set of entries changed: mtime, ctime and change move. */
void rec_touch(struct inode_rec *r, int64_t now);

/* A new inode number (never handed out before) and a random generation. */
int ino_alloc(struct inode_table *t, uint64_t *ino, uint32_t *gen);
/* Delete every subtree recorded as an orphan. */
int remove_orphans(struct inode_table *t);

/* ---- inode.c, for the write path ------------------------------------------ */

/* Read ino for export e: ESTALE if absent or another export's. */
int rec_get_export(struct inode_table *t, const struct meta_export *e, uint64_t ino,
                   struct inode_rec *r);
/* EINVAL (empty, '/'), ENAMETOOLONG, or 0. */
int name_check(const char *name);
/* name_check for a name to be made: also EINVAL when e's store keeps UTF-8
 * keys (S3) and the name is not strict UTF-8: its object could never be
 * written, nor listed back under the same bytes. */
int name_check_new(const struct meta_export *e, const char *name);

/* ---- inode_write.c ------------------------------------------------------- */

/* A write-back record (misc "W" + ino). */
struct wbrec {
    uint64_t dver;
    int64_t first_ns, last_ns;
    uint32_t export_id, flags; /* WB_* */
    /*
     * The staged bytes were copied from the bucket's object (of the
     * record's ETag) of base_size bytes, and [0, clean_below) is still that
     * object's: the upload copies it in the store (UploadPartCopy) instead
     * of sending it.  0 and 0 for a file made here.  (Absent in records of
     * the first layout, WBREC_V1_SIZE bytes: read as 0.)
     */
    uint64_t base_size, clean_below;
};
#define WBREC_V1_SIZE 32
/*
 * Made local by a directory rename only: the object at the "m" key is
 * the file, attributes included (never HEADed, maybe), so the move copies
 * it as it is and nothing else is uploaded.  Any local change clears it.
 */
#define WB_MOVE_ONLY 1u

/*
 * The rename journal's "J" record (inode_write.c, "the rename journal"):
 * this header, then the old prefix and the new prefix, each NUL-ended.
 */
struct rjrec {
    uint32_t export_id;
    /*
     * 1: copying; 2: the table has the new name, old objects go; 3: the
     * table has the new name and its files move in the background (the
     * listed keys are the old markers and the objects the table did not
     * know, copied already: deleted once no file of the tree is left to move)
     */
    uint32_t phase;
    uint32_t nkeys;
    uint32_t spare;
};
/* A rename copies this many keys at most (conf.c's bound on rename_dir_max, + markers). */
#define RJREC_KEYS_MAX 20000000u

/* A decoded "J" record: the prefixes point into the bytes decoded. */
struct rjview {
    struct rjrec h;
    const char *oldp, *newp;
};

/*
 * Decoders of the write path's records in misc.db, as read back from disk
 * at start or by the uploader.  Each takes any bytes of any length (a torn
 * or corrupted record included), never reads past v[len), and returns 0
 * with *out filled, or EIO: the record is not one this layout wrote.
 *   wbrec_decode:  "W" (struct wbrec, or its first WBREC_V1_SIZE-byte layout)
 *   mprec_decode:  "M" (struct inode_mp; its strings come back NUL-ended)
 *   rjrec_decode:  "J" (phase 1, 2 or 3, nkeys <= RJREC_KEYS_MAX, both prefixes
 *                  NUL-ended, at most OBJ_KEY_MAX bytes, nothing after them)
 *   rjkey_decode:  "j" (an object key: 1..OBJ_KEY_MAX bytes, no NUL; key
 *                  holds OBJ_KEY_MAX + 1 bytes)
 */
int wbrec_decode(const void *v, size_t len, struct wbrec *out);
int mprec_decode(const void *v, size_t len, struct inode_mp *out);
int rjrec_decode(const void *v, size_t len, struct rjview *out);
int rjkey_decode(const void *v, size_t len, char *key);

struct ino_busy {
    uint64_t ino;
    bool upload;       /* an upload runs */
    bool wanted;       /* a namespace change waits for it */
    unsigned holds;    /* namespace changes holding ino */
    struct ino_busy *next;
};

/*
 * Does a namespace change (remove, rename) hold ino now?  It may have
 * changed the bucket already and not yet the table: a listing leaves the
 * entry to it.  Takes busy_mu briefly (never held across a transaction).
 */
bool inode_held(struct inode_table *t, uint64_t ino);

/*
 * Name `name` of directory dir is gone from the table now (removed or
 * renamed away here, its object deleted).  gone_since: was a name of the
 * same hash slot gone at or after `since`?  A listing that began before
 * then may hold the deleted object: it leaves the name to the next listing
 * (a collision only delays a new name by one listing).  Lock-free.
 */
void gone_note(struct inode_table *t, uint64_t dir, const char *name);
bool gone_since(struct inode_table *t, uint64_t dir, const char *name, int64_t since);

/*
 * Is an object named key hidden from listings: by a silly rename (see
 * IREC_SILLY), as a file a directory rename still moves, or as the old
 * prefix of a moved directory (IREC_MOVING)?
 */
bool silly_hidden(struct inode_table *t, DB_TXN *txn, const char *key);

/* Where the bytes of a moving file are (its "m" record): ENOENT if it is not moving, EIO. */
int move_src(struct inode_table *t, DB_TXN *txn, uint64_t ino, char *key, uint32_t flags);

/* ---- inode_observe.c: what the store says, merged into a record ---------- */

enum obs_source {
    OBS_LIST,   /* an entry of a directory listing */
    OBS_HEAD,   /* HEAD of a file */
    OBS_MARKER, /* HEAD of a directory's marker object (meta NULL: there is none) */
};

struct observed {
    enum obs_source source;
    const struct obj_meta *meta; /* NULL: a listing's common prefix, or no marker object */
    const struct meta_export *e; /* defaults for what the object does not say */
    int64_t now;                 /* ns: when it was observed */
};

/*
 * Merge an observation of the object behind record c into c (read by the
 * caller with DB_RMW; the caller writes it back).  The rules are at the top
 * of inode_observe.c; it is the single place that decides what a listing or
 * a HEAD may change in a record, and where local (not yet uploaded) state
 * will be weighed against it.  Returns true when attributes changed (ctime
 * and the change counter moved).  An observation of the wrong kind for the
 * record (a file HEAD on what is now a directory, a marker HEAD on a file)
 * changes nothing.
 */
bool rec_apply_observed(struct inode_rec *c, const struct observed *o);

/* ---- inode_list.c: listing and single flight ---------------------------- */

/*
 * Must a caller wanting `w` of directory r wait for a listing?  Yes when
 * it was never listed (LIST_IF_NEEDED only: a GETATTR does not list a
 * directory nobody looked into), a re-listing was asked for (or the last
 * background one failed), or its expired listing is from before this
 * process started.  Otherwise an expired listing is no reason to wait
 * (ensure_listed starts one in the background).
 */
bool list_must_wait(const struct inode_table *t, const struct meta_export *e,
                    const struct inode_rec *r, enum list_want w);
/*
 * Has r's listing expired (ttl: older than the export's metadata_ttl,
 * measured from its end; immutable: never; strict: always)?
 */
bool list_stale(const struct meta_export *e, const struct inode_rec *r, int64_t now);
/*
 * Should a caller answered from r's expired listing start a background
 * re-listing?  Only in ttl mode: strict callers that need a new listing
 * wait for one (list_now), immutable listings never expire.
 */
bool list_bg_due(const struct meta_export *e, const struct inode_rec *r, int64_t now);
/*
 * Make sure directory r (read by the caller) is listed as `w` asks: wait
 * for a listing when list_must_wait() says so (joining the one in
 * progress, if any), and start a background listing when the listing is
 * merely stale.  On return r holds the directory's current record.
 */
int ensure_listed(struct inode_table *t, const struct meta_export *e, struct inode_rec *r,
                  enum list_want w);
/*
 * Wait for a listing of r's directory now if it is stale, never listed or
 * asked for (joining one in progress or queued); r is re-read.
 */
int list_now(struct inode_table *t, const struct meta_export *e, struct inode_rec *r);
/*
 * Queue a background listing of dir unless one is queued or running, or e
 * is at its limit (then dir stays stale for now).  false: there is no pool
 * (quiesced, or its threads could not start): the caller must list.
 */
bool list_in_background(struct inode_table *t, const struct meta_export *e, uint64_t dir);
/* Start the pool (inode_open) / stop it, cancelling its work, and join it (inode_quiesce). */
int list_pool_start(struct inode_table *t);
void list_pool_stop(struct inode_table *t);

/* ---- inode_reval.c: HEAD revalidation ------------------------------------ */

/*
 * Must file r be confirmed with HEAD before its attributes go out: never
 * confirmed, or expired (ttl_expired) -- but with posix_metadata "own" in
 * ttl mode a file whose directory's listing is fresh is fresh from it (the
 * listing is as good as a HEAD; reads the parent's record).
 */
bool file_stale(struct inode_table *t, const struct meta_export *e, const struct inode_rec *r,
                int64_t now);
/*
 * HEAD a file whose attributes have expired; ESTALE if the object is gone.
 * Single flight: joins a HEAD of the same inode in progress (r re-read).
 */
int file_revalidate(struct inode_table *t, const struct meta_export *e, struct inode_rec *r);
/*
 * Does directory r need its marker HEADed: never checked, or expired.
 * getattr: for GETATTR (strict: every time); otherwise for attributes a
 * LOOKUP or READDIR carries along (strict: once per metadata_ttl).  With
 * posix_metadata "own", once checked (or listed) is enough.
 */
bool dir_marker_stale(const struct meta_export *e, const struct inode_rec *r, int64_t now,
                      bool getattr);
/* HEAD the marker of directory r and bring r's attributes in line (single flight). */
int dir_revalidate(struct inode_table *t, const struct meta_export *e, struct inode_rec *r);
/* Set up / tear down the single-flight table (inode_open / inode_close). */
void head_flights_init(struct inode_table *t);
void head_flights_destroy(struct inode_table *t);

/* ---- inode_ahead.c: HEADs in parallel ahead of READDIRPLUS ----------------- */

/*
 * file_revalidate every record of jobs[0..n) for export e, in the pool (at
 * most AHEAD_PER_EXPORT of e in flight), and return when all are done
 * (each job's rc and rec set).  Without a pool, one after the other here.
 */
void ahead_run(struct inode_table *t, const struct meta_export *e, struct ahead_job *jobs,
               size_t n);
int ahead_pool_start(struct inode_table *t);
void ahead_pool_stop(struct inode_table *t);
/* dir_revalidate once per TTL for attributes handed out with a lookup or listing; only logs. */
void dir_refresh_quiet(struct inode_table *t, const struct meta_export *e, struct inode_rec *r);

#endif
