/*
 * s3.c - the S3 / OSS / MinIO backend: struct obj_ops over libcurl, signed
 * with SigV4 (sigv4.c), responses parsed as a stream (s3xml.c).
 *
 * Owns: the store's endpoint, region and credentials, a pool of curl easy
 * handles (kept so their connections stay alive between requests), and a
 * curl share object holding the DNS cache and connection cache the pooled
 * handles use together.
 *
 * One operation = one call to s3_perform(): build the URL (path-style
 * "/bucket/key" or virtual-hosted "bucket.host/key", each key byte that is
 * not unreserved sent as %XX, exactly as it is signed), sign, send, and read
 * the answer through the header and body callbacks; on a temporary failure
 * sleep and try again.
 *
 * Retries (s3_tuning): at most max_attempts tries and no new try after
 * deadline_ms; between tries a full-jitter exponential backoff, rand(0,
 * min(max_delay, base * 2^n)).  Retried: HTTP 500, 502, 503, 504, the S3
 * codes SlowDown, InternalError, RequestTimeout, ServiceUnavailable (also
 * inside a 200 answer to CopyObject / CompleteMultipartUpload), curl
 * timeouts, refused / reset / dropped connections.  Each failed try logs one
 * line: operation, bucket/key, HTTP status, attempt, S3 code, request id.
 *
 * errno mapping (the objstore.h contract):
 *   403, AccessDenied, SignatureDoesNotMatch, InvalidAccessKeyId -> EACCES
 *   404, NoSuchKey, NoSuchBucket, NoSuchUpload                   -> ENOENT
 *   temporary failures that outlived the retries                  -> EAGAIN
 *     (the NFS layer answers NFS3ERR_JUKEBOX: the client retries later)
 *   anything else (bad answers, other 4xx, malformed XML)         -> EIO
 *
 * Bodies.  A PUT body is memory, or a range of a file (put_file,
 * mp_put_part_file) read with pread as curl asks for it, so a file of any
 * size takes curl's upload buffer and no more.  Its SHA-256 is computed in
 * a first pass over the range (a body of 1 MiB or more sent over https goes
 * UNSIGNED-PAYLOAD instead, as memory bodies do); each retry reads the range
 * again from its first byte (body_pos back to 0; curl's seek callback for
 * its own rewinds).
 *
 * Copies.  copy HEADs the source: up to tun.copy_part_max (5 GiB, S3's
 * CopyObject limit) it is one CopyObject; above it a multipart upload of
 * the destination whose parts are UploadPartCopy ranges of the version the
 * HEAD saw (x-amz-copy-source-if-match), completed, or aborted on failure.
 *
 * A listing page is read once without encoding-type=url (keys arrive as
 * XML text, the same on every S3 implementation); only if that page is not
 * well-formed XML (a key holding a control character) is it asked again
 * with encoding-type=url, decoded with S3's rules ('+' is a space).  Entries
 * already handed to the callback by a failed try are not handed out again.
 *
 * Threads: every operation may run on many threads at once.  Locks: the
 * pool mutex (held only to take or return a handle) and the share mutexes
 * (held by curl around its shared caches); no lock is held across a
 * request, and the two are never held together.
 * Secrets: the secret key and session token never reach a log line; the
 * Authorization header is built per request and freed after it.
 */
#include "objstore/s3.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "common/conf.h"
#include "common/log.h"
#include "objstore/s3xml.h"
#include "objstore/sbuf.h"

#define S3_POOL_MAX    64 /* the block cache fetches up to cache.fetch_max (64) at once */
#define S3_MAX_QUERY   8
#define S3_MAX_HDRS    12
#define S3_ERRBODY_MAX (64 * 1024) /* error documents are small; ignore the rest */
#define MIB            (1024ull * 1024ull)
#define S3_PART_MIN    (8 * MIB)
#define S3_PART_MAX    (5ull * 1024 * MIB) /* also the largest PUT and CopyObject source */
#define S3_COPY_PART   (256 * MIB)         /* UploadPartCopy ranges of a multipart copy */
#define S3_PARTS_MAX   10000u
#define S3_LIST_MAX    1000u

struct s3 {
    struct objstore os;
    char *scheme; /* "http" or "https" */
    char *host;   /* endpoint host[:port] */
    char *region;
    bool virtual_hosted;
    char *access_key, *secret_key, *session_token;
    struct sigv4_keycache *kc;
    struct s3_tuning tun;

    pthread_mutex_t pool_lock; /* guards pool, npool */
    CURL *pool[S3_POOL_MAX];
    unsigned npool;

    CURLSH *share;
    pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
};

/* One operation, and what its latest attempt saw. */
struct s3_call {
    const char *op; /* for log lines: "HEAD", "LIST", "MP-PUT" ... */
    const char *method;
    const char *bucket;
    const char *key; /* "" for bucket-level requests */
    struct sigv4_kv query[S3_MAX_QUERY];
    size_t nquery;
    struct sigv4_kv hdrs[S3_MAX_HDRS];
    size_t nhdrs;
    /* The request body: body[0..body_len), or, with body_fd_set, bytes
     * [body_off, body_off + body_len) of body_fd read with pread as curl asks
     * for them (its upload buffer is all the memory a file body takes).
     * body_pos is where the current attempt is; each attempt starts at 0. */
    const void *body;
    uint64_t body_len, body_pos;
    bool body_fd_set;
    int body_fd;
    uint64_t body_off;
    int read_err; /* why the body could not be read (pread's errno, EIO if short) */

    /* GET: the destination buffer; skip is how many leading bytes to drop
     * (a server that ignored Range and sent the whole object). */
    char *buf;
    size_t cap, got;
    uint64_t off, skip;
    const char *if_match; /* GET: the ETag asked for (unquoted), or NULL */
    bool buf_full;
    bool skip_set; /* skip decided for this attempt */

    /* A 2xx body parsed as XML (list, multipart, copy). */
    bool want_xml;
    struct s3xml_opts xo;
    struct s3xml *xml; /* this attempt's parser (success or error body) */
    bool xml_is_error;
    int xml_err;
    size_t errbody_len;     /* bytes of an error document seen */
    struct s3xml_info info; /* copied from the parser after the attempt */

    /* From the response headers of the latest attempt. */
    CURL *h;
    long status;
    struct s3_resp rh; /* what its header lines said (s3hdr.c) */
    char curl_err[CURL_ERROR_SIZE];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_global(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void stat_add(uint64_t *ctr, uint64_t v)
{
    __atomic_fetch_add(ctr, v, __ATOMIC_RELAXED);
}

uint64_t s3_part_size(uint64_t size)
{
    uint64_t per = size / S3_PARTS_MAX + (size % S3_PARTS_MAX ? 1 : 0);
    per = (per + MIB - 1) / MIB * MIB;
    if (per < S3_PART_MIN)
        per = S3_PART_MIN;
    return per > S3_PART_MAX ? S3_PART_MAX : per;
}

/* ---- signing ---------------------------------------------------------- */

int s3_sign_request(const struct s3_signing *k, struct sigv4_keycache *kc, const char *method,
                    const char *host, const char *path, const struct sigv4_kv *query, size_t nquery,
                    const struct sigv4_kv *headers, size_t nheaders, const char *payload_hash,
                    time_t t, char **authz)
{
    struct sigv4_kv h[S3_MAX_HDRS + 4];
    char amz_date[17];
    size_t n = 0;

    if (nheaders > S3_MAX_HDRS)
        return EINVAL;
    sigv4_amz_date(t, amz_date);
    h[n++] = (struct sigv4_kv){"host", host};
    h[n++] = (struct sigv4_kv){"x-amz-date", amz_date};
    h[n++] = (struct sigv4_kv){"x-amz-content-sha256", payload_hash};
    if (k->session_token && *k->session_token)
        h[n++] = (struct sigv4_kv){"x-amz-security-token", k->session_token};
    for (size_t i = 0; i < nheaders; i++)
        h[n++] = headers[i];

    struct sigv4_request r = {method, path, query, nquery, h, n, payload_hash};
    struct sigv4_creds c = {k->access_key, k->secret_key};
    struct sigv4_result res;
    int rc = sigv4_sign(&r, &c, k->region, "s3", t, kc, &res);
    if (rc)
        return rc;
    *authz = res.authorization;
    res.authorization = NULL;
    sigv4_result_free(&res);
    return 0;
}

/* ---- curl handles ----------------------------------------------------- */

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *ud)
{
    struct s3 *s = ud;
    (void)h;
    (void)access;
    if (data >= 0 && data < CURL_LOCK_DATA_LAST)
        pthread_mutex_lock(&s->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *ud)
{
    struct s3 *s = ud;
    (void)h;
    if (data >= 0 && data < CURL_LOCK_DATA_LAST)
        pthread_mutex_unlock(&s->share_locks[data]);
}

static CURL *handle_get(struct s3 *s)
{
    CURL *h = NULL;
    pthread_mutex_lock(&s->pool_lock);
    if (s->npool)
        h = s->pool[--s->npool];
    pthread_mutex_unlock(&s->pool_lock);
    if (h) {
        curl_easy_reset(h); /* options go, the connection stays */
        return h;
    }
    return curl_easy_init();
}

static void handle_put(struct s3 *s, CURL *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&s->pool_lock);
    if (s->npool < S3_POOL_MAX) {
        s->pool[s->npool++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&s->pool_lock);
    if (h)
        curl_easy_cleanup(h);
}

/* ---- response callbacks ----------------------------------------------- */

static void reset_response(struct s3_call *c)
{
    c->status = 0;
    s3_resp_reset(&c->rh);
}

/* Each header line goes to s3hdr.c's parser; a status line starts a new answer. */
static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    struct s3_call *c = ud;
    size_t len = size * nmemb;
    if (s3_resp_header(&c->rh, p, len))
        c->status = 0;
    return len;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    struct s3_call *c = ud;
    size_t len = size * nmemb;
    long status = 0;
    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);

    if (status < 200 || status >= 300 || c->want_xml) {
        /* An XML document: the operation's answer or an S3 error. */
        bool error_doc = status < 200 || status >= 300;
        if (!c->xml) {
            struct s3xml_opts eo = {0};
            c->xml = s3xml_create(error_doc ? &eo : &c->xo);
            c->xml_is_error = error_doc;
            if (!c->xml) {
                c->xml_err = ENOMEM;
                return 0;
            }
        }
        if (c->xml_is_error && c->errbody_len > S3_ERRBODY_MAX)
            return len; /* the rest of an oversized error body is not needed */
        if (c->xml_is_error)
            c->errbody_len += len;
        int rc = s3xml_feed(c->xml, p, len, false);
        if (rc) {
            c->xml_err = rc;
            return c->xml_is_error ? len : 0; /* a broken error body is not a reason to stop */
        }
        return len;
    }
    if (!c->buf)
        return len;
    if (!c->skip_set) {
        /* 200 instead of 206: the server ignored Range and sends from byte 0. */
        c->skip_set = true;
        c->skip = status == 200 ? c->off : 0;
    }
    size_t use = len;
    const char *src = p;
    if (c->skip) {
        size_t drop = c->skip < use ? (size_t)c->skip : use;
        c->skip -= drop;
        src += drop;
        use -= drop;
    }
    size_t room = c->cap - c->got;
    if (use > room) {
        memcpy(c->buf + c->got, src, room);
        c->got += room;
        c->buf_full = true;
        return 0; /* we have what we asked for: stop the transfer */
    }
    memcpy(c->buf + c->got, src, use);
    c->got += use;
    return len;
}

static size_t on_read(char *dst, size_t size, size_t nmemb, void *ud)
{
    struct s3_call *c = ud;
    uint64_t room = (uint64_t)size * nmemb, left = c->body_len - c->body_pos;
    size_t n = (size_t)(left < room ? left : room);
    if (n && c->body_fd_set) {
        ssize_t r;
        do
            r = pread(c->body_fd, dst, n, (off_t)(c->body_off + c->body_pos));
        while (r < 0 && errno == EINTR);
        if (r <= 0) {
            /* Not worth another try: the file is unreadable or shorter than promised. */
            c->read_err = r < 0 ? errno : EIO;
            return CURL_READFUNC_ABORT;
        }
        n = (size_t)r;
    } else if (n) {
        memcpy(dst, (const char *)c->body + c->body_pos, n);
    }
    c->body_pos += n;
    return n;
}

static int on_seek(void *ud, curl_off_t off, int origin)
{
    struct s3_call *c = ud;
    if (origin != SEEK_SET || off < 0 || (uint64_t)off > c->body_len)
        return CURL_SEEKFUNC_FAIL;
    c->body_pos = (uint64_t)off;
    return CURL_SEEKFUNC_OK;
}

/* ---- one request ------------------------------------------------------ */

static bool code_is(const char *code, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(code, *list) == 0)
            return true;
    return false;
}

static const char *const temporary_codes[] = {
    "SlowDown", "InternalError", "RequestTimeout", "ServiceUnavailable", "OperationAborted", NULL};
static const char *const denied_codes[] = {"AccessDenied",
                                           "SignatureDoesNotMatch",
                                           "InvalidAccessKeyId",
                                           "ExpiredToken",
                                           "InvalidToken",
                                           "RequestTimeTooSkewed",
                                           NULL};
static const char *const absent_codes[] = {"NoSuchKey", "NoSuchBucket", "NoSuchUpload", NULL};

/*
 * A GET's 2xx answer against what was asked (RFC 9110 section 14.4; S3
 * always names the range it sends).  A 206 must start at the offset asked,
 * end where the range or the object ends, and bring all of it: a body
 * short of its Content-Range (a proxy or a store that gave up half way yet
 * closed cleanly) is a failed try, never a short read.  With If-Match, an
 * answer carrying another ETag is another version of the object (a store
 * that ignores If-Match): ESTALE, as a 412 would be.  A 200 (Range
 * ignored) is checked by curl against its Content-Length.  Returns 0 or an
 * errno, *temporary set for the short body; the reason goes where the log
 * line takes an S3 error code from.
 */
static int check_get_body(struct s3_call *c, bool *temporary)
{
    if (c->if_match && c->rh.meta.etag[0] && strcmp(c->rh.meta.etag, c->if_match) != 0) {
        snprintf(c->info.code, sizeof(c->info.code), "(another ETag than If-Match's)");
        return ESTALE;
    }
    if (c->status != 206)
        return 0;
    uint64_t want_last = c->off + c->cap - 1;
    if (c->rh.have_range_total && c->rh.range_total && want_last > c->rh.range_total - 1)
        want_last = c->rh.range_total - 1;
    uint64_t want = want_last - c->off + 1;
    if (!c->rh.have_range || c->rh.range_first != c->off || c->rh.range_last != want_last ||
        (c->got != want && !c->buf_full)) {
        snprintf(c->info.code, sizeof(c->info.code), "(body short of the range asked)");
        *temporary = true;
        return EAGAIN;
    }
    return 0;
}

/*
 * Classify an attempt.  Returns 0 on success, else a positive errno and sets
 * *temporary when another attempt may succeed.
 */
static int classify(struct s3_call *c, CURLcode cc, bool *temporary)
{
    const char *code = c->info.code;
    *temporary = false;

    if (c->read_err)
        return c->read_err; /* our side failed, the server said nothing about it */
    if (cc != CURLE_OK && !(cc == CURLE_WRITE_ERROR && c->buf_full)) {
        if (cc == CURLE_WRITE_ERROR && c->xml_err && !c->xml_is_error)
            return c->xml_err; /* the listing callback stopped us, or bad XML */
        switch (cc) {
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_OPERATION_TIMEDOUT:
        case CURLE_GOT_NOTHING:
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_PARTIAL_FILE:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM: *temporary = true; return EAGAIN;
        case CURLE_OUT_OF_MEMORY: return ENOMEM;
        default: return EIO;
        }
    }
    if (c->status >= 200 && c->status < 300) {
        if (c->want_xml) {
            if (c->xml_err)
                return c->xml_err;
            if (!c->info.root[0])
                return EBADMSG; /* an empty body where a document was due */
            if (!c->info.is_error)
                return 0;
            /* An error inside a 200 (CopyObject, CompleteMultipartUpload). */
            if (code_is(code, temporary_codes)) {
                *temporary = true;
                return EAGAIN;
            }
            if (code_is(code, denied_codes))
                return EACCES;
            if (code_is(code, absent_codes))
                return ENOENT;
            return EIO;
        }
        return c->buf ? check_get_body(c, temporary) : 0;
    }
    if (code_is(code, temporary_codes) || c->status == 500 || c->status == 502 ||
        c->status == 503 || c->status == 504) {
        *temporary = true;
        return EAGAIN;
    }
    if (c->status == 403 || code_is(code, denied_codes))
        return EACCES;
    if (c->status == 404 || code_is(code, absent_codes))
        return ENOENT;
    if (c->status == 416)
        return ERANGE; /* only GET asks for ranges; it turns this into "0 bytes" */
    if (c->status == 412)
        return ESTALE; /* If-Match: the object is another version now */
    return EIO;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* Append "name: value" (value NULL: "name:", which removes a curl default).  0 or ENOMEM. */
static int add_header(struct curl_slist **hl, const char *name, const char *value)
{
    struct sbuf line = SBUF_INIT;
    sbuf_printf(&line, value ? "%s: %s" : "%s:", name, value ? value : "");
    struct curl_slist *nl = sbuf_err(&line) ? NULL : curl_slist_append(*hl, line.p);
    if (line.p)
        OPENSSL_cleanse(line.p, line.len); /* it may be the Authorization or the token */
    sbuf_free(&line);
    if (!nl)
        return ENOMEM;
    *hl = nl;
    return 0;
}

/* One try: build, sign, send, read.  Returns the curl code; c->status etc. are set. */
static CURLcode attempt(struct s3 *s, struct s3_call *c, const char *payload_hash, int *err)
{
    time_t now = time(NULL);
    struct sbuf path = SBUF_INIT, url = SBUF_INIT, hostb = SBUF_INIT;
    struct curl_slist *hl = NULL;
    char *authz = NULL;
    CURLcode cc = CURLE_FAILED_INIT;
    *err = 0;

    /* Path-style: /bucket/key on the endpoint; virtual-hosted: /key on bucket.endpoint. */
    if (s->virtual_hosted) {
        sbuf_printf(&hostb, "%s.%s", c->bucket, s->host);
        sbuf_addc(&path, '/');
    } else {
        sbuf_adds(&hostb, s->host);
        sbuf_printf(&path, "/%s/", c->bucket);
    }
    sbuf_adds(&path, c->key);
    sbuf_printf(&url, "%s://%s", s->scheme, hostb.p ? hostb.p : "");
    if (path.p)
        sbuf_add_uri(&url, path.p, path.len, 1);
    for (size_t i = 0; i < c->nquery; i++) {
        const char *v = c->query[i].value ? c->query[i].value : "";
        sbuf_addc(&url, i ? '&' : '?');
        sbuf_add_uri(&url, c->query[i].name, strlen(c->query[i].name), 0);
        sbuf_addc(&url, '=');
        sbuf_add_uri(&url, v, strlen(v), 0);
    }
    if (sbuf_err(&path) || sbuf_err(&url) || sbuf_err(&hostb)) {
        *err = ENOMEM;
        goto out;
    }

    struct s3_signing k = {s->access_key, s->secret_key, s->session_token, s->region};
    *err = s3_sign_request(&k, s->kc, c->method, hostb.p, path.p, c->query, c->nquery, c->hdrs,
                           c->nhdrs, payload_hash, now, &authz);
    if (*err)
        goto out;

    /* Every signed header, sent exactly as signed, then the Authorization. */
    char amz_date[17];
    sigv4_amz_date(now, amz_date);
    bool has_type = false;
    if ((*err = add_header(&hl, "Host", hostb.p)) ||
        (*err = add_header(&hl, "x-amz-date", amz_date)) ||
        (*err = add_header(&hl, "x-amz-content-sha256", payload_hash)))
        goto out;
    if (s->session_token && *s->session_token &&
        (*err = add_header(&hl, "x-amz-security-token", s->session_token)))
        goto out;
    for (size_t i = 0; i < c->nhdrs; i++) {
        has_type |= strcasecmp(c->hdrs[i].name, "content-type") == 0;
        if ((*err = add_header(&hl, c->hdrs[i].name, c->hdrs[i].value)))
            goto out;
    }
    if ((*err = add_header(&hl, "Authorization", authz)))
        goto out;
    /* "Name:" with no value stops curl from adding its own (unsigned) header:
     * no 100-continue round trip, no form-encoded Content-Type on POST. */
    if ((*err = add_header(&hl, "Expect", NULL)) ||
        (!has_type && (*err = add_header(&hl, "Content-Type", NULL))))
        goto out;

    CURL *h = c->h;
    curl_easy_setopt(h, CURLOPT_URL, url.p);
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L); /* S3 keys may hold "/../" or "//" */
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_SHARE, s->share);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)s->tun.connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)s->tun.stall_timeout_s);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->curl_err);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (strcmp(c->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(c->method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, c);
        curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(h, CURLOPT_SEEKDATA, c);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)c->body_len);
    } else if (strcmp(c->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body ? (const char *)c->body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->body_len);
    } else if (strcmp(c->method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, c->method);
    }

    c->curl_err[0] = '\0';
    cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c->status);
    {
        struct obj_stats *st = &s->os.stats;
        long k = c->status / 100;
        stat_add(k == 2 ? &st->http_2xx : k == 3 ? &st->http_3xx : k == 4 ? &st->http_4xx
                 : k == 5 ? &st->http_5xx : &st->http_failed, 1);
    }
    if (c->xml) {
        if (!c->xml_err)
            c->xml_err = s3xml_feed(c->xml, "", 0, true);
        c->info = *s3xml_info(c->xml);
    }
    curl_off_t up = 0;
    if (curl_easy_getinfo(h, CURLINFO_SIZE_UPLOAD_T, &up) == CURLE_OK && up > 0)
        stat_add(&s->os.stats.bytes_out, (uint64_t)up);

out:
    curl_slist_free_all(hl);
    if (authz) {
        OPENSSL_cleanse(authz, strlen(authz));
        free(authz);
    }
    sbuf_free(&url);
    sbuf_free(&path);
    sbuf_free(&hostb);
    return cc;
}

/*
 * The store's health after a failed try: a refused If-Match (412) is an
 * answer; anything else is the store's last error, with what the log line
 * says (S3 code or curl's reason, attempt).
 */
static void note_failure(struct s3 *s, const struct s3_call *c, CURLcode cc, int rc, unsigned n)
{
    if (rc == ESTALE) {
        obj_health_ok(&s->os);
        return;
    }
    /* The reason first: a long key is what the record's length limit cuts. */
    char msg[2 * OBJ_KEY_MAX];
    const char *why = c->info.code[0] ? c->info.code : NULL;
    if (!why && cc != CURLE_OK && !c->buf_full)
        why = c->curl_err[0] ? c->curl_err : curl_easy_strerror(cc);
    snprintf(msg, sizeof(msg), "%s (attempt %u/%u): %s/%s", why ? why : strerror(rc), n,
             s->tun.max_attempts, c->bucket, c->key ? c->key : "");
    obj_health_error(&s->os, c->op, (int)c->status, rc, msg);
}

/*
 * Run an operation with retries.  Returns 0 or a positive errno (see the
 * mapping at the top).  On return c->status / c->rh.meta / c->info describe
 * the last attempt.
 */
static int s3_perform(struct s3 *s, struct s3_call *c)
{
    char payload_hash[65];
    uint64_t start = now_ms();
    int rc = EIO;
    unsigned seed = (unsigned)(start ^ (uintptr_t)c ^ (uintptr_t)pthread_self());

    /*
     * Over http the body must be signed; over https a big body may go
     * unsigned.  A file body is hashed in a pass of its own before the
     * first try, so that it is never held in memory.
     */
    if (c->body_len >= MIB && strcmp(s->scheme, "https") == 0) {
        snprintf(payload_hash, sizeof(payload_hash), "%s", SIGV4_UNSIGNED_PAYLOAD);
    } else if (c->body_fd_set) {
        rc = sigv4_sha256_fd_hex(c->body_fd, c->body_off, c->body_len, payload_hash);
        if (rc) {
            LOG_AT(LOG_WARNING, "s3: %s %s/%s: cannot read the body to send: %s", c->op, c->bucket,
                   c->key, strerror(rc));
            stat_add(&s->os.stats.errors, 1);
            return rc;
        }
    } else {
        sigv4_sha256_hex(c->body ? c->body : "", (size_t)c->body_len, payload_hash);
    }

    c->h = handle_get(s);
    if (!c->h)
        return ENOMEM;

    for (unsigned n = 1;; n++) {
        bool temporary = false;
        int aerr = 0;
        reset_response(c);
        c->got = 0;
        c->skip = 0;
        c->buf_full = false;
        c->skip_set = false;
        c->body_pos = 0;
        c->read_err = 0;
        c->xml = NULL;
        c->xml_err = 0;
        c->errbody_len = 0;
        c->xml_is_error = false;
        memset(&c->info, 0, sizeof(c->info));

        CURLcode cc = attempt(s, c, payload_hash, &aerr);
        bool stopped_by_caller = cc == CURLE_WRITE_ERROR && c->xml && !c->xml_is_error &&
                                 c->xml_err && c->xml_err != EBADMSG;
        if (c->xml && !c->xml_is_error && c->info.nentries > c->xo.skip)
            c->xo.skip = c->info.nentries; /* a retry must not deliver these again */
        s3xml_destroy(c->xml);
        c->xml = NULL;
        if (aerr) {
            rc = aerr;
            break;
        }
        rc = classify(c, cc, &temporary);
        if (rc == 0 || rc == ERANGE || stopped_by_caller) {
            obj_health_ok(&s->os);
            break; /* success, "past the end", or the listing callback said stop */
        }
        if (rc == EBADMSG && c->op && strcmp(c->op, "LIST") == 0)
            break; /* the caller asks again with encoding-type=url */
        if (rc == ENOENT && c->status == 404 &&
            (strcmp(c->method, "HEAD") == 0 || strcmp(c->method, "GET") == 0)) {
            /* An absent object is an answer (a LOOKUP miss), not a failure. */
            LOG_AT(LOG_DEBUG, "s3: %s %s/%s: not found", c->op, c->bucket, c->key);
            obj_health_ok(&s->os);
            break;
        }

        stat_add(&s->os.stats.errors, 1);
        LOG_AT(
            LOG_WARNING, "s3: %s %s/%s: status %ld attempt %u/%u code %s request-id %s%s%s", c->op,
            c->bucket, c->key, c->status, n, s->tun.max_attempts,
            c->info.code[0] ? c->info.code : "-",
            c->info.request_id[0] ? c->info.request_id : (c->rh.request_id[0] ? c->rh.request_id : "-"),
            cc != CURLE_OK && !c->buf_full ? ": " : "",
            cc != CURLE_OK && !c->buf_full ? (c->curl_err[0] ? c->curl_err : curl_easy_strerror(cc))
                                           : "");
        note_failure(s, c, cc, rc, n);
        if (!temporary)
            break;
        if (n >= s->tun.max_attempts)
            break;
        uint64_t cap = (uint64_t)s->tun.base_delay_ms << (n < 20 ? n : 20);
        if (cap > s->tun.max_delay_ms)
            cap = s->tun.max_delay_ms;
        uint64_t delay = cap ? (uint64_t)rand_r(&seed) % (cap + 1) : 0;
        if (now_ms() + delay - start >= s->tun.deadline_ms)
            break;
        stat_add(&s->os.stats.retries, 1);
        __atomic_fetch_add(&s->os.health.retrying, 1, __ATOMIC_RELAXED);
        sleep_ms(delay);
        __atomic_fetch_sub(&s->os.health.retrying, 1, __ATOMIC_RELAXED);
        /* A handle whose transfer failed may hold a broken connection: curl
         * drops it itself; the handle stays usable. */
    }
    if (rc == EBADMSG && !(c->op && strcmp(c->op, "LIST") == 0))
        rc = EIO;
    handle_put(s, c->h);
    c->h = NULL;
    return rc;
}

/* ---- metadata headers ------------------------------------------------- */

struct meta_hdrs {
    char mode[16], uid[16], gid[16], mtime[32];
};

/* Append the x-amz-meta-file-* headers of m to c.  0 or EINVAL. */
static int add_meta(struct s3_call *c, const struct obj_meta *m, struct meta_hdrs *mh)
{
    if (!m || !m->has_posix)
        return 0;
    if (c->nhdrs + 4 > S3_MAX_HDRS)
        return EINVAL;
    if (obj_meta_format_mode(m->mode, mh->mode, sizeof(mh->mode)) ||
        obj_meta_format_mtime(m->mtime_sec, m->mtime_nsec, mh->mtime, sizeof(mh->mtime)))
        return EINVAL;
    snprintf(mh->uid, sizeof(mh->uid), "%" PRIu32, m->uid);
    snprintf(mh->gid, sizeof(mh->gid), "%" PRIu32, m->gid);
    c->hdrs[c->nhdrs++] = (struct sigv4_kv){"x-amz-meta-file-permissions", mh->mode};
    c->hdrs[c->nhdrs++] = (struct sigv4_kv){"x-amz-meta-file-owner", mh->uid};
    c->hdrs[c->nhdrs++] = (struct sigv4_kv){"x-amz-meta-file-group", mh->gid};
    c->hdrs[c->nhdrs++] = (struct sigv4_kv){"x-amz-meta-file-mtime", mh->mtime};
    return 0;
}

static void take_meta(const struct s3_call *c, struct obj_meta *out, uint64_t size)
{
    *out = c->rh.meta;
    out->size = size;
    out->mtime_sec = c->rh.have_fmtime ? c->rh.fm_sec : c->rh.lm_sec;
    out->mtime_nsec = c->rh.have_fmtime ? c->rh.fm_nsec : 0;
    out->has_posix = c->rh.have_perm;
    if (!c->rh.have_perm)
        out->mode = out->uid = out->gid = 0;
}

static bool key_ok(const char *key)
{
    return key && strlen(key) <= OBJ_KEY_MAX;
}

static struct s3 *S3(struct objstore *os)
{
    return os->priv;
}

/* ---- operations ------------------------------------------------------- */

static int s3_head(struct objstore *os, const char *bucket, const char *key, struct obj_meta *out)
{
    struct s3 *s = S3(os);
    struct s3_call c = {.op = "HEAD", .method = "HEAD", .bucket = bucket, .key = key};
    if (!key_ok(key) || !*key)
        return EINVAL;
    stat_add(&os->stats.heads, 1);
    int rc = s3_perform(s, &c);
    if (rc)
        return rc;
    take_meta(&c, out, c.rh.have_length ? c.rh.length : 0);
    return 0;
}

static int s3_get(struct objstore *os, const char *bucket, const char *key, uint64_t off,
                  size_t len, void *buf, size_t *got, struct obj_meta *meta,
                  const char *if_match)
{
    struct s3 *s = S3(os);
    char range[64], match[OBJ_ETAG_MAX + 2];
    *got = 0;
    if (!key_ok(key) || !*key)
        return EINVAL;
    if (len == 0)
        return meta ? s3_head(os, bucket, key, meta) : 0;
    if (off > UINT64_MAX - len)
        return EINVAL;

    struct s3_call c = {.op = "GET",
                        .method = "GET",
                        .bucket = bucket,
                        .key = key,
                        .buf = buf,
                        .cap = len,
                        .off = off};
    snprintf(range, sizeof(range), "bytes=%" PRIu64 "-%" PRIu64, off, off + len - 1);
    c.hdrs[c.nhdrs++] = (struct sigv4_kv){"range", range};
    if (if_match) {
        /* ETags travel quoted (RFC 9110 section 8.8.3); a 412 comes back as ESTALE. */
        snprintf(match, sizeof(match), "\"%s\"", if_match);
        c.hdrs[c.nhdrs++] = (struct sigv4_kv){"if-match", match};
        c.if_match = if_match;
    }
    stat_add(&os->stats.gets, 1);

    int rc = s3_perform(s, &c);
    if (rc == ERANGE) {
        /* 416: the offset is at or past the end of the object. */
        if (meta) {
            if (c.rh.have_range_total)
                take_meta(&c, meta, c.rh.range_total);
            else
                return s3_head(os, bucket, key, meta);
        }
        return 0;
    }
    if (rc)
        return rc;
    uint64_t size;
    if (c.status == 200) {
        /* The whole object came back (Range ignored); on_body kept [off, off+len). */
        size = c.rh.have_length ? c.rh.length : off + c.got;
    } else {
        size = c.rh.have_range_total ? c.rh.range_total : off + c.got;
    }
    *got = c.got;
    stat_add(&os->stats.bytes_in, c.got);
    if (meta)
        take_meta(&c, meta, size);
    return 0;
}

static int s3_list(struct objstore *os, const char *bucket, const char *prefix,
                   const char *delimiter, const char *token_in, unsigned max_keys, obj_list_cb cb,
                   void *arg, char *token_out)
{
    struct s3 *s = S3(os);
    char maxk[16];
    int rc = EIO;
    unsigned skip = 0;

    token_out[0] = '\0';
    if (max_keys == 0 || max_keys > S3_LIST_MAX)
        max_keys = S3_LIST_MAX;
    snprintf(maxk, sizeof(maxk), "%u", max_keys);
    stat_add(&os->stats.lists, 1);

    for (int encoded = 0; encoded < 2; encoded++) {
        struct s3_call c = {
            .op = "LIST", .method = "GET", .bucket = bucket, .key = "", .want_xml = true};
        c.query[c.nquery++] = (struct sigv4_kv){"list-type", "2"};
        c.query[c.nquery++] = (struct sigv4_kv){"max-keys", maxk};
        if (prefix && *prefix)
            c.query[c.nquery++] = (struct sigv4_kv){"prefix", prefix};
        if (delimiter && *delimiter)
            c.query[c.nquery++] = (struct sigv4_kv){"delimiter", delimiter};
        if (token_in && *token_in)
            c.query[c.nquery++] = (struct sigv4_kv){"continuation-token", token_in};
        if (encoded)
            c.query[c.nquery++] = (struct sigv4_kv){"encoding-type", "url"};
        c.xo =
            (struct s3xml_opts){.cb = cb, .cb_arg = arg, .url_decode = encoded != 0, .skip = skip};
        rc = s3_perform(s, &c);
        skip = c.xo.skip;
        if (rc == EBADMSG && !encoded) {
            LOG_AT(LOG_NOTICE,
                   "s3: LIST %s/%s: page is not well-formed XML, asking again "
                   "with encoding-type=url",
                   bucket, prefix ? prefix : "");
            continue;
        }
        if (rc == EBADMSG)
            rc = EIO;
        if (rc)
            return rc;
        if (strcmp(c.info.root, "ListBucketResult") != 0)
            return EIO;
        if (c.info.truncated) {
            if (!c.info.next_token[0]) {
                LOG_AT(LOG_WARNING, "s3: LIST %s: truncated page without a token", bucket);
                return EIO;
            }
            snprintf(token_out, OBJ_TOKEN_MAX, "%s", c.info.next_token);
        }
        return 0;
    }
    return rc;
}

/* A file body: bytes [off, off + len) of fd.  0, EINVAL or EFBIG (over 5 GiB). */
static int body_from_fd(struct s3_call *c, int fd, uint64_t off, uint64_t len)
{
    if (fd < 0 || off > (uint64_t)INT64_MAX || len > (uint64_t)INT64_MAX - off)
        return EINVAL;
    if (len > S3_PART_MAX)
        return EFBIG; /* S3 refuses a bigger PUT or part (EntityTooLarge) */
    c->body_fd_set = true;
    c->body_fd = fd;
    c->body_off = off;
    c->body_len = len;
    return 0;
}

/* PutObject of c->key, whose body c already names (memory or file). */
static int put_object(struct objstore *os, struct s3_call *c, const struct obj_meta *meta,
                      char *etag_out)
{
    struct meta_hdrs mh;
    if (!key_ok(c->key) || !*c->key)
        return EINVAL;
    int rc = add_meta(c, meta, &mh);
    if (rc)
        return rc;
    stat_add(&os->stats.puts, 1);
    rc = s3_perform(S3(os), c);
    if (rc)
        return rc;
    if (etag_out)
        snprintf(etag_out, OBJ_ETAG_MAX, "%s", c->rh.meta.etag);
    return 0;
}

static int s3_put(struct objstore *os, const char *bucket, const char *key, const void *buf,
                  size_t len, const struct obj_meta *meta, char *etag_out)
{
    struct s3_call c = {
        .op = "PUT", .method = "PUT", .bucket = bucket, .key = key, .body = buf, .body_len = len};
    return put_object(os, &c, meta, etag_out);
}

static int s3_put_file(struct objstore *os, const char *bucket, const char *key, int fd,
                       uint64_t off, uint64_t len, const struct obj_meta *meta, char *etag_out)
{
    struct s3_call c = {.op = "PUT", .method = "PUT", .bucket = bucket, .key = key};
    int rc = body_from_fd(&c, fd, off, len);
    return rc ? rc : put_object(os, &c, meta, etag_out);
}

static int s3_mp_create(struct objstore *os, const char *bucket, const char *key,
                        const struct obj_meta *meta, char *upload_id)
{
    struct s3 *s = S3(os);
    struct meta_hdrs mh;
    struct s3_call c = {
        .op = "MP-CREATE", .method = "POST", .bucket = bucket, .key = key, .want_xml = true};
    if (!key_ok(key) || !*key)
        return EINVAL;
    c.query[c.nquery++] = (struct sigv4_kv){"uploads", ""};
    int rc = add_meta(&c, meta, &mh);
    if (rc)
        return rc;
    stat_add(&os->stats.mp_ops, 1);
    rc = s3_perform(s, &c);
    if (rc)
        return rc;
    if (!c.info.upload_id[0])
        return EIO;
    snprintf(upload_id, OBJ_UPLOAD_ID_MAX, "%s", c.info.upload_id);
    return 0;
}

/* UploadPart `number` of upload_id, whose body c already names (memory or file). */
static int put_part(struct objstore *os, struct s3_call *c, const char *upload_id, uint32_t number,
                    char *etag_out)
{
    char num[16];
    if (!key_ok(c->key) || !*c->key || number < 1 || number > S3_PARTS_MAX || !upload_id)
        return EINVAL;
    snprintf(num, sizeof(num), "%" PRIu32, number);
    c->query[c->nquery++] = (struct sigv4_kv){"partNumber", num};
    c->query[c->nquery++] = (struct sigv4_kv){"uploadId", upload_id};
    stat_add(&os->stats.mp_ops, 1);
    int rc = s3_perform(S3(os), c);
    if (rc)
        return rc;
    if (!c->rh.meta.etag[0])
        return EIO;
    snprintf(etag_out, OBJ_ETAG_MAX, "%s", c->rh.meta.etag);
    return 0;
}

static int s3_mp_put_part(struct objstore *os, const char *bucket, const char *key,
                          const char *upload_id, uint32_t number, const void *buf, size_t len,
                          char *etag_out)
{
    struct s3_call c = {.op = "MP-PUT",
                        .method = "PUT",
                        .bucket = bucket,
                        .key = key,
                        .body = buf,
                        .body_len = len};
    return put_part(os, &c, upload_id, number, etag_out);
}

static int s3_mp_put_part_file(struct objstore *os, const char *bucket, const char *key,
                               const char *upload_id, uint32_t number, int fd, uint64_t off,
                               uint64_t len, char *etag_out)
{
    struct s3_call c = {.op = "MP-PUT", .method = "PUT", .bucket = bucket, .key = key};
    int rc = body_from_fd(&c, fd, off, len);
    return rc ? rc : put_part(os, &c, upload_id, number, etag_out);
}

/* x-amz-copy-source: "/bucket/key", URL-encoded like a path.  0 or ENOMEM. */
static int copy_source(struct sbuf *src, const char *bucket, const char *key)
{
    sbuf_addc(src, '/');
    sbuf_add_uri(src, bucket, strlen(bucket), 0);
    sbuf_addc(src, '/');
    sbuf_add_uri(src, key, strlen(key), 1);
    return sbuf_err(src);
}

static int s3_mp_copy_part(struct objstore *os, const char *bucket, const char *key,
                           const char *upload_id, uint32_t number, const char *src_key,
                           const char *src_etag, uint64_t off, uint64_t len, char *etag_out)
{
    struct s3 *s = S3(os);
    struct sbuf src = SBUF_INIT;
    char num[16], range[64], match[OBJ_ETAG_MAX + 2];
    if (!key_ok(key) || !*key || !key_ok(src_key) || !*src_key || number < 1 ||
        number > S3_PARTS_MAX || !upload_id || len == 0 || off > UINT64_MAX - len)
        return EINVAL;
    if (len > S3_PART_MAX)
        return EFBIG;
    if (copy_source(&src, bucket, src_key)) {
        sbuf_free(&src);
        return ENOMEM;
    }
    /* UploadPartCopy: PUT ?partNumber&uploadId with the source and its byte range
     * (inclusive, like Range); the answer is a CopyPartResult document. */
    struct s3_call c = {
        .op = "MP-COPY", .method = "PUT", .bucket = bucket, .key = key, .want_xml = true};
    snprintf(num, sizeof(num), "%" PRIu32, number);
    snprintf(range, sizeof(range), "bytes=%" PRIu64 "-%" PRIu64, off, off + len - 1);
    c.query[c.nquery++] = (struct sigv4_kv){"partNumber", num};
    c.query[c.nquery++] = (struct sigv4_kv){"uploadId", upload_id};
    c.hdrs[c.nhdrs++] = (struct sigv4_kv){"x-amz-copy-source", src.p};
    c.hdrs[c.nhdrs++] = (struct sigv4_kv){"x-amz-copy-source-range", range};
    if (src_etag) {
        /* Quoted like If-Match; S3 answers 412 (ESTALE) for another version. */
        snprintf(match, sizeof(match), "\"%s\"", src_etag);
        c.hdrs[c.nhdrs++] = (struct sigv4_kv){"x-amz-copy-source-if-match", match};
    }
    stat_add(&os->stats.mp_ops, 1);
    int rc = s3_perform(s, &c);
    sbuf_free(&src);
    if (rc)
        return rc;
    if (strcmp(c.info.root, "CopyPartResult") != 0 || !c.info.etag[0])
        return EIO;
    snprintf(etag_out, OBJ_ETAG_MAX, "%s", c.info.etag);
    return 0;
}

static int s3_mp_complete(struct objstore *os, const char *bucket, const char *key,
                          const char *upload_id, const struct obj_part *parts, size_t nparts,
                          char *etag_out)
{
    struct s3 *s = S3(os);
    struct sbuf body = SBUF_INIT;
    if (!key_ok(key) || !*key || !upload_id || nparts == 0 || nparts > S3_PARTS_MAX)
        return EINVAL;
    sbuf_adds(&body, "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for (size_t i = 0; i < nparts; i++) {
        sbuf_printf(&body, "<Part><PartNumber>%" PRIu32 "</PartNumber><ETag>&quot;",
                    parts[i].number);
        sbuf_add_xml(&body, parts[i].etag);
        sbuf_adds(&body, "&quot;</ETag></Part>");
    }
    sbuf_adds(&body, "</CompleteMultipartUpload>");
    if (sbuf_err(&body)) {
        sbuf_free(&body);
        return ENOMEM;
    }
    struct s3_call c = {.op = "MP-COMPLETE",
                        .method = "POST",
                        .bucket = bucket,
                        .key = key,
                        .body = body.p,
                        .body_len = body.len,
                        .want_xml = true};
    c.query[c.nquery++] = (struct sigv4_kv){"uploadId", upload_id};
    c.hdrs[c.nhdrs++] = (struct sigv4_kv){"content-type", "application/xml"};
    stat_add(&os->stats.mp_ops, 1);
    int rc = s3_perform(s, &c);
    sbuf_free(&body);
    if (rc)
        return rc;
    if (etag_out)
        snprintf(etag_out, OBJ_ETAG_MAX, "%s", c.info.etag);
    return 0;
}

static int s3_mp_abort(struct objstore *os, const char *bucket, const char *key,
                       const char *upload_id)
{
    struct s3 *s = S3(os);
    struct s3_call c = {.op = "MP-ABORT", .method = "DELETE", .bucket = bucket, .key = key};
    if (!key_ok(key) || !*key || !upload_id)
        return EINVAL;
    c.query[c.nquery++] = (struct sigv4_kv){"uploadId", upload_id};
    stat_add(&os->stats.mp_ops, 1);
    return s3_perform(s, &c);
}

static int s3_mp_list_parts(struct objstore *os, const char *bucket, const char *key,
                            const char *upload_id, struct obj_part *parts, size_t max, size_t *n)
{
    struct s3 *s = S3(os);
    char marker[16] = "0";
    *n = 0;
    if (!key_ok(key) || !*key || !upload_id)
        return EINVAL;
    /* At most 10,000 parts, 1,000 a page: the loop is bounded by 11 pages. */
    for (unsigned page = 0; page < S3_PARTS_MAX / S3_LIST_MAX + 1 && *n < max; page++) {
        struct s3_call c = {
            .op = "MP-LIST", .method = "GET", .bucket = bucket, .key = key, .want_xml = true};
        c.query[c.nquery++] = (struct sigv4_kv){"uploadId", upload_id};
        c.query[c.nquery++] = (struct sigv4_kv){"max-parts", "1000"};
        if (page)
            c.query[c.nquery++] = (struct sigv4_kv){"part-number-marker", marker};
        c.xo = (struct s3xml_opts){.parts = parts + *n, .max_parts = max - *n};
        stat_add(&os->stats.mp_ops, 1);
        int rc = s3_perform(s, &c);
        if (rc)
            return rc;
        if (strcmp(c.info.root, "ListPartsResult") != 0 &&
            strcmp(c.info.root, "ListPartsResponse") != 0)
            return EIO;
        *n += c.info.nparts;
        if (!c.info.truncated)
            return 0;
        if (!c.info.next_part_marker)
            return EIO;
        snprintf(marker, sizeof(marker), "%" PRIu32, c.info.next_part_marker);
    }
    return 0;
}

/* CopyObject: one request, a source of at most 5 GiB. */
static int copy_object(struct s3 *s, const char *bucket, const char *src_key, const char *dst_key,
                       const struct obj_meta *meta)
{
    struct meta_hdrs mh;
    struct sbuf src = SBUF_INIT;
    if (copy_source(&src, bucket, src_key)) {
        sbuf_free(&src);
        return ENOMEM;
    }
    struct s3_call c = {
        .op = "COPY", .method = "PUT", .bucket = bucket, .key = dst_key, .want_xml = true};
    c.hdrs[c.nhdrs++] = (struct sigv4_kv){"x-amz-copy-source", src.p};
    if (meta) {
        c.hdrs[c.nhdrs++] = (struct sigv4_kv){"x-amz-metadata-directive", "REPLACE"};
        int rc = add_meta(&c, meta, &mh);
        if (rc) {
            sbuf_free(&src);
            return rc;
        }
    }
    int rc = s3_perform(s, &c);
    sbuf_free(&src);
    return rc;
}

/*
 * Copy a source too large for CopyObject: a multipart upload of dst_key
 * (with the POSIX metadata of meta) whose parts are UploadPartCopy ranges
 * of src_key, one after the other, each from the version the HEAD saw
 * (src->etag), so a source replaced meanwhile gives ESTALE, never a mix.
 * On failure the upload is aborted.
 */
static int copy_multipart(struct objstore *os, const char *bucket, const char *src_key,
                          const char *dst_key, const struct obj_meta *meta,
                          const struct obj_meta *src)
{
    struct s3 *s = S3(os);
    char upload_id[OBJ_UPLOAD_ID_MAX];
    uint64_t part = s3_part_size(src->size);
    if (part < S3_COPY_PART)
        part = S3_COPY_PART; /* fewer, larger ranges: a part costs a request, not bandwidth */
    if (part > s->tun.copy_part_max)
        part = s->tun.copy_part_max;
    uint64_t nparts = (src->size + part - 1) / part;
    if (nparts == 0 || nparts > S3_PARTS_MAX)
        return EFBIG;
    struct obj_part *parts = calloc((size_t)nparts, sizeof(*parts));
    if (!parts)
        return ENOMEM;
    int rc = s3_mp_create(os, bucket, dst_key, meta, upload_id);
    if (rc)
        goto out;
    for (uint64_t i = 0; i < nparts && !rc; i++) {
        uint64_t off = i * part, len = src->size - off < part ? src->size - off : part;
        parts[i].number = (uint32_t)i + 1;
        parts[i].size = len;
        rc = s3_mp_copy_part(os, bucket, dst_key, upload_id, parts[i].number, src_key,
                             src->etag[0] ? src->etag : NULL, off, len, parts[i].etag);
    }
    if (!rc)
        rc = s3_mp_complete(os, bucket, dst_key, upload_id, parts, (size_t)nparts, NULL);
    if (rc && s3_mp_abort(os, bucket, dst_key, upload_id) != 0)
        LOG_AT(LOG_WARNING, "s3: COPY %s/%s: upload %s is left behind (abort failed)", bucket,
               dst_key, upload_id);
out:
    free(parts);
    return rc;
}

static int s3_copy(struct objstore *os, const char *bucket, const char *src_key,
                   const char *dst_key, const struct obj_meta *meta)
{
    struct s3 *s = S3(os);
    struct obj_meta sm;
    if (!key_ok(src_key) || !*src_key || !key_ok(dst_key) || !*dst_key)
        return EINVAL;
    stat_add(&os->stats.copies, 1);
    /* CopyObject takes a source of up to 5 GiB (OSS: 1 GiB); only a HEAD tells the size. */
    int rc = s3_head(os, bucket, src_key, &sm);
    if (rc)
        return rc;
    if (sm.size > s->tun.copy_part_max)
        return copy_multipart(os, bucket, src_key, dst_key, meta ? meta : &sm, &sm);
    return copy_object(s, bucket, src_key, dst_key, meta);
}

static int s3_del(struct objstore *os, const char *bucket, const char *key)
{
    struct s3 *s = S3(os);
    struct s3_call c = {.op = "DELETE", .method = "DELETE", .bucket = bucket, .key = key};
    if (!key_ok(key) || !*key)
        return EINVAL;
    stat_add(&os->stats.deletes, 1);
    int rc = s3_perform(s, &c);
    return rc == ENOENT && c.status == 404 && strcmp(c.info.code, "NoSuchBucket") != 0 ? 0 : rc;
}

static void s3_destroy(struct objstore *os)
{
    struct s3 *s = S3(os);
    for (unsigned i = 0; i < s->npool; i++)
        curl_easy_cleanup(s->pool[i]);
    if (s->share)
        curl_share_cleanup(s->share);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&s->share_locks[i]);
    pthread_mutex_destroy(&s->pool_lock);
    sigv4_keycache_destroy(s->kc);
    if (s->secret_key)
        OPENSSL_cleanse(s->secret_key, strlen(s->secret_key));
    if (s->session_token)
        OPENSSL_cleanse(s->session_token, strlen(s->session_token));
    free(s->access_key);
    free(s->secret_key);
    free(s->session_token);
    free(s->scheme);
    free(s->host);
    free(s->region);
    free(s->os.name);
    free(s);
}

static const struct obj_ops s3_ops = {
    .head = s3_head,
    .get = s3_get,
    .list = s3_list,
    .put = s3_put,
    .put_file = s3_put_file,
    .mp_create = s3_mp_create,
    .mp_put_part = s3_mp_put_part,
    .mp_put_part_file = s3_mp_put_part_file,
    .mp_copy_part = s3_mp_copy_part,
    .mp_complete = s3_mp_complete,
    .mp_abort = s3_mp_abort,
    .mp_list_parts = s3_mp_list_parts,
    .copy = s3_copy,
    .del = s3_del,
    .destroy = s3_destroy,
};

void s3_get_tuning(struct objstore *os, struct s3_tuning *t)
{
    *t = S3(os)->tun;
}

void s3_set_tuning(struct objstore *os, const struct s3_tuning *t)
{
    struct s3 *s = S3(os);
    s->tun = *t;
    if (s->tun.max_attempts == 0)
        s->tun.max_attempts = 1;
    if (s->tun.stall_timeout_s == 0)
        s->tun.stall_timeout_s = 1;
    if (s->tun.copy_part_max == 0 || s->tun.copy_part_max > S3_PART_MAX)
        s->tun.copy_part_max = S3_PART_MAX;
}

/* ---- credentials ------------------------------------------------------ */

static char *trim(char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    char *e = p + strlen(p);
    while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
        *--e = '\0';
    return p;
}

/* Read [profile] of an AWS credentials INI file.  0, ENOENT (no such profile) or errno. */
static int creds_from_file(struct s3 *s, const char *path, const char *profile)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return errno;
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 0077))
        LOG_AT(LOG_WARNING, "s3: credentials file %s is readable by group or others", path);
    char line[4096];
    bool in = false, found = false;
    int rc = 0;
    for (unsigned lines = 0; lines < 100000 && fgets(line, sizeof(line), f); lines++) {
        char *p = trim(line);
        if (*p == '#' || *p == ';' || *p == '\0')
            continue;
        if (*p == '[') {
            char *e = strchr(p, ']');
            if (!e)
                continue;
            *e = '\0';
            char *name = trim(p + 1);
            if (strncmp(name, "profile ", 8) == 0)
                name = trim(name + 8);
            in = strcmp(name, profile) == 0;
            found |= in;
            continue;
        }
        char *eq = strchr(p, '=');
        if (!in || !eq)
            continue;
        *eq = '\0';
        char *k = trim(p), *v = trim(eq + 1);
        char **dst = strcmp(k, "aws_access_key_id") == 0       ? &s->access_key
                     : strcmp(k, "aws_secret_access_key") == 0 ? &s->secret_key
                     : strcmp(k, "aws_session_token") == 0     ? &s->session_token
                                                               : NULL;
        if (dst) {
            free(*dst);
            *dst = strdup(v);
            if (!*dst)
                rc = ENOMEM;
        }
    }
    OPENSSL_cleanse(line, sizeof(line));
    fclose(f);
    if (rc)
        return rc;
    return found ? 0 : ENOENT;
}

static int dup_opt(char **dst, const char *src)
{
    if (!src || !*src)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : ENOMEM;
}

static int load_creds(struct s3 *s, const struct conf_store *c)
{
    const char *how = c->credentials ? c->credentials : "env";
    int rc;
    if (strcmp(how, "env") == 0) {
        if ((rc = dup_opt(&s->access_key, getenv("AWS_ACCESS_KEY_ID"))) ||
            (rc = dup_opt(&s->secret_key, getenv("AWS_SECRET_ACCESS_KEY"))) ||
            (rc = dup_opt(&s->session_token, getenv("AWS_SESSION_TOKEN"))))
            return rc;
    } else if (strcmp(how, "config") == 0) {
        if ((rc = dup_opt(&s->access_key, c->access_key)) ||
            (rc = dup_opt(&s->secret_key, c->secret_key)) ||
            (rc = dup_opt(&s->session_token, c->session_token)))
            return rc;
    } else if (strcmp(how, "file") == 0) {
        char path[4096];
        const char *profile = c->profile ? c->profile : getenv("AWS_PROFILE");
        if (!profile || !*profile)
            profile = "default";
        if (c->credentials_file)
            snprintf(path, sizeof(path), "%s", c->credentials_file);
        else if (getenv("AWS_SHARED_CREDENTIALS_FILE"))
            snprintf(path, sizeof(path), "%s", getenv("AWS_SHARED_CREDENTIALS_FILE"));
        else
            snprintf(path, sizeof(path), "%s/.aws/credentials",
                     getenv("HOME") ? getenv("HOME") : "");
        rc = creds_from_file(s, path, profile);
        if (rc) {
            LOG_AT(LOG_ERR, "s3: store %s: credentials file %s, profile %s: %s", s->os.name, path,
                   profile, rc == ENOENT ? "no such profile" : strerror(rc));
            return EINVAL;
        }
    } else {
        LOG_AT(LOG_ERR, "s3: store %s: unknown credentials source \"%s\"", s->os.name, how);
        return EINVAL;
    }
    if (!s->access_key || !s->secret_key) {
        LOG_AT(LOG_ERR, "s3: store %s: no access key / secret key from credentials \"%s\"",
               s->os.name, how);
        return EINVAL;
    }
    return 0;
}

/* "http://host:port" or "https://host[/]" -> scheme + host.  0 or EINVAL. */
static int parse_endpoint(struct s3 *s, const char *ep)
{
    const char *rest;
    if (strncmp(ep, "https://", 8) == 0) {
        s->scheme = strdup("https");
        rest = ep + 8;
    } else if (strncmp(ep, "http://", 7) == 0) {
        s->scheme = strdup("http");
        rest = ep + 7;
    } else {
        return EINVAL;
    }
    size_t n = strcspn(rest, "/?#");
    if (n == 0 || (rest[n] && strcmp(rest + n, "/") != 0))
        return EINVAL;
    for (size_t i = 0; i < n; i++)
        if (rest[i] == '@' || isspace((unsigned char)rest[i]))
            return EINVAL;
    s->host = strndup(rest, n);
    return s->scheme && s->host ? 0 : ENOMEM;
}

struct objstore *obj_s3_create(const struct conf_store *conf)
{
    struct s3 *s;
    int rc = 0;
    char def_ep[256];

    pthread_once(&curl_once, curl_global);
    if (curl_init_rc != CURLE_OK) {
        errno = EIO;
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    s->os.ops = &s3_ops;
    s->os.utf8_keys = true;
    s->os.priv = s;
    s->tun = (struct s3_tuning){.max_attempts = 5,
                                .base_delay_ms = 100,
                                .max_delay_ms = 5000,
                                .deadline_ms = 60000,
                                .connect_timeout_ms = 10000,
                                .stall_timeout_s = 30,
                                .copy_part_max = S3_PART_MAX};
    pthread_mutex_init(&s->pool_lock, NULL);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&s->share_locks[i], NULL);

    s->os.name = strdup(conf->name ? conf->name : "s3");
    s->region = strdup(conf->region && *conf->region ? conf->region : "us-east-1");
    if (!s->os.name || !s->region) {
        rc = ENOMEM;
        goto fail;
    }
    s->virtual_hosted = conf->virtual_hosted;
    if (conf->endpoint && *conf->endpoint) {
        rc = parse_endpoint(s, conf->endpoint);
    } else {
        snprintf(def_ep, sizeof(def_ep), "https://s3.%s.amazonaws.com", s->region);
        rc = parse_endpoint(s, def_ep);
    }
    if (rc) {
        LOG_AT(LOG_ERR, "s3: store %s: bad endpoint \"%s\" (want http[s]://host[:port])",
               s->os.name, conf->endpoint ? conf->endpoint : "");
        goto fail;
    }
    rc = load_creds(s, conf);
    if (rc)
        goto fail;
    s->kc = sigv4_keycache_create();
    s->share = curl_share_init();
    if (!s->kc || !s->share) {
        rc = ENOMEM;
        goto fail;
    }
    curl_share_setopt(s->share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(s->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(s->share, CURLSHOPT_USERDATA, s);
    curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    LOG_AT(LOG_INFO, "s3: store %s: %s://%s region %s, %s addressing, access key %.4s...",
           s->os.name, s->scheme, s->host, s->region, s->virtual_hosted ? "virtual" : "path",
           s->access_key);
    return &s->os;

fail:
    s3_destroy(&s->os);
    errno = rc;
    return NULL;
}
