/*
 * objstore.h - the object-store backend interface.
 *
 * One table of operations (struct obj_ops) that every backend implements:
 * `dir` (a local directory whose subdirectories are buckets, dir.c) and
 * `s3` (S3 / OSS / MinIO over libcurl, s3.c).  Callers use the obj_*()
 * wrappers below.
 *
 * Contract, for every operation:
 *   - returns 0 or a positive errno:
 *       ENOENT   no such object / bucket (S3 404)
 *       EACCES   refused (S3 403)
 *       EAGAIN   temporary failure that outlived the retries (S3 503, timeout,
 *                connection reset): the caller may answer NFS3ERR_JUKEBOX
 *       EIO      any other failure (bad response, injected failure)
 *       EINVAL   bad argument (a key the backend cannot represent)
 *       ESTALE   a get's if_match, or mp_copy_part's src_etag, named another
 *                version than the object's
 *       ENAMETOOLONG, ENOTSUP, ENOSPC, EEXIST, EFBIG  where they say what happened
 *   - may block (network, injected latency); is safe to call from many
 *     threads at once on the same store;
 *   - keys are full object keys (export prefix + path), bytes without NUL;
 *     a directory marker is a zero-byte object whose key ends in '/'.
 *   - never logs secrets; logs one line per failed backend call.
 *
 * POSIX attributes travel as user metadata with the keys Amazon File Cache
 * / FSx use: x-amz-meta-file-permissions (octal type+mode, e.g. "0100644"),
 * x-amz-meta-file-owner, x-amz-meta-file-group, x-amz-meta-file-mtime
 * ("1700000000000000000ns" style, nanoseconds since the epoch).  struct
 * obj_meta carries them decoded; has_posix says whether they were present.
 */
#ifndef BNFS_OBJSTORE_H
#define BNFS_OBJSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conf_store;

#define OBJ_KEY_MAX 1024  /* S3's limit on key length in bytes */
#define OBJ_ETAG_MAX 80
#define OBJ_TOKEN_MAX 1100 /* continuation token, with room for a key */
#define OBJ_UPLOAD_ID_MAX 256

struct obj_meta {
    uint64_t size;
    int64_t mtime_sec;  /* file-mtime if present, else Last-Modified */
    uint32_t mtime_nsec;
    char etag[OBJ_ETAG_MAX]; /* as the store returns it, quotes stripped */
    bool has_posix;     /* the x-amz-meta-file-* keys were present */
    uint32_t mode;      /* S_IFREG|0644, S_IFLNK|0777, S_IFDIR|0755 ... (has_posix) */
    uint32_t uid, gid;  /* (has_posix) */
};

/* One listing entry.  For a common prefix (is_prefix) only key is set; it ends with the delimiter. */
struct obj_entry {
    const char *key;
    bool is_prefix;
    struct obj_meta meta; /* LIST gives size, mtime, etag; has_posix only if the backend knows it cheaply */
};

/* Called once per entry; return 0 to go on, or a positive errno to stop the listing with it. */
typedef int (*obj_list_cb)(void *arg, const struct obj_entry *e);

struct obj_part {
    uint32_t number; /* 1..10000 */
    char etag[OBJ_ETAG_MAX];
    uint64_t size;
};

struct objstore;

struct obj_ops {
    /* Metadata of one object.  ENOENT if absent. */
    int (*head)(struct objstore *s, const char *bucket, const char *key, struct obj_meta *out);

    /*
     * Read up to len bytes from offset off into buf; *got is set to the
     * number of bytes read (short only at end of object; 0 at or past it).
     * If meta is not NULL it receives the object's metadata (size, etag).
     * If if_match is not NULL, the bytes come from the object version whose
     * ETag is if_match or not at all: ESTALE when the object's ETag differs
     * (S3 answers 412 Precondition Failed to If-Match), so a reader that
     * pieces an object together from several GETs never mixes versions.
     */
    int (*get)(struct objstore *s, const char *bucket, const char *key, uint64_t off,
               size_t len, void *buf, size_t *got, struct obj_meta *meta,
               const char *if_match);

    /*
     * One page of a listing of keys starting with prefix.  With delimiter
     * "/" keys holding another "/" after the prefix are rolled up into one
     * common-prefix entry (S3 ListObjectsV2 semantics); delimiter NULL or ""
     * lists every key under the prefix.  token_in: NULL or "" for the first
     * page, else the token_out of the previous page (opaque).  max_keys is an
     * upper bound the backend may lower.  token_out (OBJ_TOKEN_MAX bytes)
     * receives "" when the listing is complete.  Entries are not promised in
     * any order.  Returns the callback's error if it stopped the listing.
     */
    int (*list)(struct objstore *s, const char *bucket, const char *prefix,
                const char *delimiter, const char *token_in, unsigned max_keys,
                obj_list_cb cb, void *arg, char *token_out);

    /* Create or replace an object with body buf[0..len) and the POSIX metadata of meta (may be NULL). etag_out may be NULL. */
    int (*put)(struct objstore *s, const char *bucket, const char *key, const void *buf,
               size_t len, const struct obj_meta *meta, char *etag_out);

    /*
     * put, with the body read from bytes [off, off + len) of fd (pread:
     * fd's file offset is neither used nor moved), streamed in bounded
     * buffers, so an object of any size costs no more memory than a small
     * one.  The caller keeps that range unchanged until the call returns (S3
     * hashes it before sending it, and a retry sends it again).  EIO if fd
     * ends before off + len; EFBIG if len is over S3's 5 GiB limit of one
     * PUT (S3 only: use a multipart upload).
     */
    int (*put_file)(struct objstore *s, const char *bucket, const char *key, int fd, uint64_t off,
                    uint64_t len, const struct obj_meta *meta, char *etag_out);

    /* Multipart upload (S3 CreateMultipartUpload / UploadPart / Complete / Abort / ListParts). */
    int (*mp_create)(struct objstore *s, const char *bucket, const char *key,
                     const struct obj_meta *meta, char *upload_id /* OBJ_UPLOAD_ID_MAX */);
    int (*mp_put_part)(struct objstore *s, const char *bucket, const char *key,
                       const char *upload_id, uint32_t number, const void *buf, size_t len,
                       char *etag_out /* OBJ_ETAG_MAX */);
    /* mp_put_part from bytes [off, off + len) of fd, as put_file reads them. */
    int (*mp_put_part_file)(struct objstore *s, const char *bucket, const char *key,
                            const char *upload_id, uint32_t number, int fd, uint64_t off,
                            uint64_t len, char *etag_out /* OBJ_ETAG_MAX */);
    /*
     * Part `number` of the upload is bytes [off, off + len) of object
     * src_key of the same bucket, copied inside the store (S3
     * UploadPartCopy: no byte passes through us).  If src_etag is not
     * NULL, the bytes come from that version of the source or not at all:
     * ESTALE when the source's ETag is another (S3 answers 412 to
     * x-amz-copy-source-if-match).  len 0 is EINVAL; a range past the
     * source's end is refused (EINVAL from dir, EIO from S3).
     */
    int (*mp_copy_part)(struct objstore *s, const char *bucket, const char *key,
                        const char *upload_id, uint32_t number, const char *src_key,
                        const char *src_etag, uint64_t off, uint64_t len,
                        char *etag_out /* OBJ_ETAG_MAX */);
    int (*mp_complete)(struct objstore *s, const char *bucket, const char *key,
                       const char *upload_id, const struct obj_part *parts, size_t nparts,
                       char *etag_out);
    int (*mp_abort)(struct objstore *s, const char *bucket, const char *key,
                    const char *upload_id);
    /* Fills up to max parts; *n receives how many were written. */
    int (*mp_list_parts)(struct objstore *s, const char *bucket, const char *key,
                         const char *upload_id, struct obj_part *parts, size_t max, size_t *n);

    /*
     * Server-side copy; meta NULL keeps the source's metadata, else replaces
     * it.  S3 copies an object over 5 GiB in parts (multipart upload +
     * UploadPartCopy); those carry only the POSIX metadata of the source.
     */
    int (*copy)(struct objstore *s, const char *bucket, const char *src_key,
                const char *dst_key, const struct obj_meta *meta);

    /* Delete one object.  Deleting an absent object is not an error (S3 semantics). */
    int (*del)(struct objstore *s, const char *bucket, const char *key);

    void (*destroy)(struct objstore *s);
};

/* Counters every backend keeps (updated with relaxed atomics). */
struct obj_stats {
    uint64_t heads, gets, lists, puts, deletes, copies, mp_ops;
    /* As the gateway sees them: in = read from the store (GET), out = written (PUT, parts). */
    uint64_t bytes_in, bytes_out;
    uint64_t errors, retries;
    /* HTTP answers by status class (S3; every attempt, retries included); failed: no answer. */
    uint64_t http_2xx, http_3xx, http_4xx, http_5xx, http_failed;
};

/*
 * Health of a store, as the backend saw its own calls: when a call last got
 * an answer (an absent object or a refused If-Match is an answer), and the
 * last call that failed (after its retries, or each failed try for S3):
 * when, which operation, the HTTP status (0: no answer, or not HTTP), the
 * errno it returned and a one-line message.  `retrying` counts calls
 * sleeping before another try now.  The backend records with
 * obj_health_ok / obj_health_error and the retrying counter; readers take
 * a copy with obj_health_get.  Times are CLOCK_REALTIME nanoseconds (0:
 * never).  `lock` is a spin flag (0: free) held only to copy the error
 * fields, so a zeroed struct is ready to use.
 */
#define OBJ_HEALTH_OP_MAX 16
#define OBJ_HEALTH_MSG_MAX 160
struct obj_health {
    int64_t last_ok_ns;  /* relaxed atomic */
    uint64_t retrying;   /* relaxed atomic: calls waiting before a retry */
    int lock;            /* guards the fields below */
    int64_t last_error_ns;
    int last_error_status;
    int last_error_errno;
    uint64_t errors_in_a_row; /* failed calls since the last answer */
    char last_error_op[OBJ_HEALTH_OP_MAX];
    char last_error_msg[OBJ_HEALTH_MSG_MAX];
};

struct objstore {
    const struct obj_ops *ops;
    char *name;          /* the store's name in bucketnfs.conf */
    void *priv;          /* backend state */
    /*
     * A listing entry of an object carries everything HEAD would (the dir
     * store reads both from the same stat and xattrs); S3's LIST does not,
     * so its objects are confirmed with HEAD before their attributes count.
     */
    bool list_is_head;
    /* Keys are UTF-8 text (S3): a name of other bytes cannot be stored. */
    bool utf8_keys;
    struct obj_stats stats;
    struct obj_health health;
};

/* A call of s got an answer: the store is reachable and working. */
void obj_health_ok(struct objstore *s);
/*
 * A call of s failed: op ("GET", "put", ...), http_status (0: none), err
 * (the errno returned or to be returned), msg (one line; may be NULL: the
 * errno's text).  Never a secret in msg.
 */
void obj_health_error(struct objstore *s, const char *op, int http_status, int err,
                      const char *msg);
/* A consistent copy of s's health (lock not meaningful in the copy). */
void obj_health_get(struct objstore *s, struct obj_health *out);

/* Create the backend a store section describes (dir or s3).  NULL + errno on failure. */
struct objstore *obj_create(const struct conf_store *c);
void obj_destroy(struct objstore *s);

/* Backends. */
struct objstore *obj_dir_create(const struct conf_store *c);
struct objstore *obj_s3_create(const struct conf_store *c);

/* Encode/decode the x-amz-meta-file-* values (shared by every backend). */
int obj_meta_format_mode(uint32_t mode, char *buf, size_t len);      /* "0100644" */
int obj_meta_parse_mode(const char *s, uint32_t *mode);              /* 0 or EINVAL */
int obj_meta_format_mtime(int64_t sec, uint32_t nsec, char *buf, size_t len); /* "…ns" */
int obj_meta_parse_mtime(const char *s, int64_t *sec, uint32_t *nsec);

static inline int obj_head(struct objstore *s, const char *b, const char *k, struct obj_meta *m)
{
    return s->ops->head(s, b, k, m);
}
static inline int obj_get(struct objstore *s, const char *b, const char *k, uint64_t off,
                          size_t len, void *buf, size_t *got, struct obj_meta *m)
{
    return s->ops->get(s, b, k, off, len, buf, got, m, NULL);
}
/* obj_get of the version whose ETag is etag only (ESTALE if the object is another one now). */
static inline int obj_get_if(struct objstore *s, const char *b, const char *k, uint64_t off,
                             size_t len, void *buf, size_t *got, struct obj_meta *m,
                             const char *etag)
{
    return s->ops->get(s, b, k, off, len, buf, got, m, etag);
}
static inline int obj_list(struct objstore *s, const char *b, const char *prefix,
                           const char *delim, const char *tok, unsigned max_keys,
                           obj_list_cb cb, void *arg, char *tok_out)
{
    return s->ops->list(s, b, prefix, delim, tok, max_keys, cb, arg, tok_out);
}
static inline int obj_put(struct objstore *s, const char *b, const char *k, const void *buf,
                          size_t len, const struct obj_meta *m, char *etag)
{
    return s->ops->put(s, b, k, buf, len, m, etag);
}
static inline int obj_put_file(struct objstore *s, const char *b, const char *k, int fd,
                               uint64_t off, uint64_t len, const struct obj_meta *m, char *etag)
{
    return s->ops->put_file(s, b, k, fd, off, len, m, etag);
}
static inline int obj_mp_put_part_file(struct objstore *s, const char *b, const char *k,
                                       const char *upload_id, uint32_t number, int fd, uint64_t off,
                                       uint64_t len, char *etag)
{
    return s->ops->mp_put_part_file(s, b, k, upload_id, number, fd, off, len, etag);
}
static inline int obj_mp_copy_part(struct objstore *s, const char *b, const char *k,
                                   const char *upload_id, uint32_t number, const char *src_key,
                                   const char *src_etag, uint64_t off, uint64_t len, char *etag)
{
    return s->ops->mp_copy_part(s, b, k, upload_id, number, src_key, src_etag, off, len, etag);
}
static inline int obj_copy(struct objstore *s, const char *b, const char *src,
                           const char *dst, const struct obj_meta *m)
{
    return s->ops->copy(s, b, src, dst, m);
}
static inline int obj_del(struct objstore *s, const char *b, const char *k)
{
    return s->ops->del(s, b, k);
}

#endif
