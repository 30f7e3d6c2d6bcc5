/*
 * sigv4.h - AWS Signature Version 4 for S3 requests, over OpenSSL.
 *
 * A pure function of its inputs: method, raw path, raw query parameters,
 * the headers that will be sent, the payload hash, a time and the
 * credentials give the canonical request, the string to sign and the
 * Authorization header value.  No clock, no network, no globals, so the
 * published test vectors and botocore's signer can be compared byte for
 * byte.  The only state is an optional signing-key cache (one derived key
 * per date / region / service / access key), safe to share between threads.
 *
 * S3's rules (not the generic service rules): the path is not normalized
 * ("//", "/./", "/../" are signed as they are) and each path segment is
 * URI-encoded exactly once; the caller sends the same encoding
 * (sigv4_uri_encode) on the wire.
 */
#ifndef BNFS_SIGV4_H
#define BNFS_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
#define SIGV4_EMPTY_SHA256     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* A name/value pair: a query parameter (raw, not encoded; value NULL means
 * "name=") or a header (name in any case; value trimmed by the signer). */
struct sigv4_kv {
    const char *name;
    const char *value;
};

struct sigv4_request {
    const char *method;           /* "GET", "PUT", ... */
    const char *path;             /* raw path: "/bucket/key with space" */
    const struct sigv4_kv *query; /* raw parameters, any order */
    size_t nquery;
    const struct sigv4_kv *headers; /* every header to sign, host and x-amz-date
                                       included; repeated names are joined */
    size_t nheaders;
    const char *payload_hash; /* lowercase hex SHA-256 or SIGV4_UNSIGNED_PAYLOAD */
};

struct sigv4_creds {
    const char *access_key;
    const char *secret_key;
    /* A session token travels as the x-amz-security-token header, which the
     * caller puts in sigv4_request.headers so that it is signed. */
};

/* What sigv4_sign produces; every string is malloc'd (sigv4_result_free). */
struct sigv4_result {
    char *creq;           /* canonical request */
    char *sts;            /* string to sign */
    char *signed_headers; /* "host;x-amz-date" */
    char *authorization;  /* value of the Authorization header */
};

struct sigv4_keycache;

/* A cache of derived signing keys, guarded by its own mutex.  NULL + errno. */
struct sigv4_keycache *sigv4_keycache_create(void);
void sigv4_keycache_destroy(struct sigv4_keycache *kc);

/*
 * Sign request r at time t for region/service.  kc may be NULL (derive the
 * key every time).  Returns 0 and fills *out, or ENOMEM / EINVAL.
 */
int sigv4_sign(const struct sigv4_request *r, const struct sigv4_creds *c, const char *region,
               const char *service, time_t t, struct sigv4_keycache *kc, struct sigv4_result *out);
void sigv4_result_free(struct sigv4_result *out);

/* "20150830T123600Z" for t (UTC); buf holds at least 17 bytes. */
void sigv4_amz_date(time_t t, char *buf);

/* Lowercase hex SHA-256 of buf[0..len); hex holds 65 bytes. */
void sigv4_sha256_hex(const void *buf, size_t len, char *hex);

/*
 * The same over bytes [off, off + len) of fd, read with pread in bounded
 * chunks (a payload streamed from a file).  0, EIO if fd ends before
 * off + len, EINVAL, ENOMEM or pread's errno.
 */
int sigv4_sha256_fd_hex(int fd, uint64_t off, uint64_t len, char *hex);

/*
 * URI-encode s[0..len) the way SigV4 wants it: A-Z a-z 0-9 - . _ ~ stay,
 * every other byte becomes %XX (uppercase hex); '/' stays when keep_slash.
 * Returns a malloc'd string, or NULL with errno = ENOMEM.
 */
char *sigv4_uri_encode(const char *s, size_t len, bool keep_slash);

#endif
