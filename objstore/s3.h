/*
 * s3.h - what the S3 backend offers beyond struct obj_ops: retry tuning,
 * the multipart part-size rule, and the request signer it uses (exposed
 * so tests can compare it with other signers).  obj_s3_create() itself is
 * declared in objstore.h.
 */
#ifndef BNFS_S3_H
#define BNFS_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "objstore/objstore.h"
#include "objstore/sigv4.h"

struct s3_tuning {
    unsigned max_attempts;       /* tries per operation, first included (5) */
    unsigned base_delay_ms;      /* backoff base: attempt n sleeps rand(0, base * 2^n) (100) */
    unsigned max_delay_ms;       /* cap of one sleep (5000) */
    unsigned deadline_ms;        /* no new attempt starts after this much time (60000) */
    unsigned connect_timeout_ms; /* TCP/TLS connect (10000) */
    unsigned stall_timeout_s;    /* abort a transfer that moves no byte for this long (30) */
    /*
     * The largest source copied by one CopyObject, and the largest range of
     * one UploadPartCopy: a larger object is copied in parts (5 GiB, S3's
     * limit; OSS's is 1 GiB; tests lower it to reach the multipart path).
     */
    uint64_t copy_part_max;
};

void s3_get_tuning(struct objstore *s, struct s3_tuning *t);
void s3_set_tuning(struct objstore *s, const struct s3_tuning *t);

/*
 * Part size for a multipart upload of an object of `size` bytes: 8 MiB, or
 * more (a whole number of MiB) so that the object fits in 10,000 parts;
 * never above S3's 5 GiB part limit.
 */
uint64_t s3_part_size(uint64_t size);

/*
 * What the backend keeps from the header lines of one answer (s3hdr.c).
 * A have_ flag is false while its header is absent or did not parse.
 */
struct s3_resp {
    struct obj_meta meta; /* etag (quotes stripped); mode, uid, gid (x-amz-meta-file-*) */
    bool have_length;     /* Content-Length */
    uint64_t length;
    bool have_range; /* Content-Range "bytes FIRST-LAST/TOTAL" with FIRST <= LAST */
    uint64_t range_first, range_last;
    bool have_range_total; /* its TOTAL (a 416 sends the TOTAL alone) */
    uint64_t range_total;
    int64_t lm_sec;   /* Last-Modified; 0 if absent or not a date */
    bool have_perm;   /* x-amz-meta-file-permissions parsed into meta.mode */
    bool have_fmtime; /* x-amz-meta-file-mtime (nanoseconds, then "ns") parsed */
    int64_t fm_sec;
    uint32_t fm_nsec;
    char request_id[128]; /* x-amz-request-id, truncated */
};

/* Clear every field (an answer with no header yet). */
void s3_resp_reset(struct s3_resp *r);

/*
 * Take one header line as curl hands it: line[0..len), not NUL-terminated,
 * CRLF included, any bytes.  A status line ("HTTP/...") starts a new answer:
 * r is reset and true returned.  Otherwise false; a header this backend
 * reads sets its field (the last one of a name wins), others are ignored.
 */
bool s3_resp_header(struct s3_resp *r, const char *line, size_t len);

struct s3_signing {
    const char *access_key;
    const char *secret_key;
    const char *session_token; /* NULL or "" if none */
    const char *region;
};

/*
 * Sign one request the way the backend sends it: host, x-amz-date,
 * x-amz-content-sha256 and (with a session token) x-amz-security-token are
 * added to the caller's headers and everything is signed.  path and query
 * are raw (the signer encodes them).  *authz receives the malloc'd
 * Authorization value.  Returns 0 or a positive errno.
 */
int s3_sign_request(const struct s3_signing *k, struct sigv4_keycache *kc, const char *method,
                    const char *host, const char *path, const struct sigv4_kv *query, size_t nquery,
                    const struct sigv4_kv *headers, size_t nheaders, const char *payload_hash,
                    time_t t, char **authz);

#endif
