/*
 * sigv4.c - AWS Signature Version 4 (header form) for S3, over OpenSSL.
 *
 * Owns: the canonical request / string to sign / signature computation and
 * a small cache of derived signing keys.
 *
 * The steps, as the SigV4 documentation names them:
 *   1. canonical request = method \n canonical URI \n canonical query \n
 *      canonical headers \n signed headers \n payload hash
 *      - URI: S3 rules, the raw path is encoded once per byte, '/' kept, no
 *        normalization of "." / ".." / "//" (the generic rule normalizes
 *        and encodes twice; S3 does neither);
 *      - query: each name and value encoded, pairs sorted by encoded name
 *        then encoded value, "name=" when the value is empty;
 *      - headers: names lowercased, values trimmed with inner whitespace
 *        runs folded to one space, repeated names joined with ',' in the
 *        order given, sorted by name.
 *   2. string to sign = "AWS4-HMAC-SHA256" \n amz-date \n scope \n
 *      hex(SHA-256(canonical request)).
 *   3. signing key = HMAC chain "AWS4"+secret -> date -> region -> service
 *      -> "aws4_request"; signature = hex(HMAC(key, string to sign)).
 *
 * Threads: sigv4_sign is reentrant.  The key cache has one mutex, held only
 * while a slot is looked up or filled (never while hashing the request).
 */
#include "objstore/sigv4.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "objstore/sbuf.h"

#define SIGV4_ALGO     "AWS4-HMAC-SHA256"
#define KC_SLOTS       4
#define SCOPE_PART_MAX 64

struct kc_slot {
    bool used;
    char date[9];
    char region[SCOPE_PART_MAX];
    char service[SCOPE_PART_MAX];
    unsigned char secret_id[SHA256_DIGEST_LENGTH]; /* SHA-256 of the secret, not the secret */
    unsigned char key[SHA256_DIGEST_LENGTH];
};

struct sigv4_keycache {
    pthread_mutex_t lock; /* guards slots and next */
    struct kc_slot slots[KC_SLOTS];
    unsigned next; /* round-robin victim */
};

struct sigv4_keycache *sigv4_keycache_create(void)
{
    struct sigv4_keycache *kc = calloc(1, sizeof(*kc));
    if (!kc) {
        errno = ENOMEM;
        return NULL;
    }
    int rc = pthread_mutex_init(&kc->lock, NULL);
    if (rc) {
        free(kc);
        errno = rc;
        return NULL;
    }
    return kc;
}

void sigv4_keycache_destroy(struct sigv4_keycache *kc)
{
    if (!kc)
        return;
    pthread_mutex_destroy(&kc->lock);
    OPENSSL_cleanse(kc->slots, sizeof(kc->slots));
    free(kc);
}

static void to_hex(const unsigned char *d, size_t n, char *hex)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    hex[2 * n] = '\0';
}

void sigv4_sha256_hex(const void *buf, size_t len, char *hex)
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256(buf, len, d);
    to_hex(d, sizeof(d), hex);
}

int sigv4_sha256_fd_hex(int fd, uint64_t off, uint64_t len, char *hex)
{
    enum { CHUNK = 256 * 1024 };
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned dlen = 0;
    int rc = 0;
    if (off > (uint64_t)INT64_MAX || len > (uint64_t)INT64_MAX - off)
        return EINVAL;
    char *buf = malloc(CHUNK);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!buf || !ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        rc = ENOMEM;
        goto out;
    }
    for (uint64_t done = 0; done < len;) {
        size_t want = len - done < CHUNK ? (size_t)(len - done) : CHUNK;
        ssize_t n = pread(fd, buf, want, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? errno : EIO; /* 0: the file ends inside the range */
            goto out;
        }
        if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) {
            rc = EIO;
            goto out;
        }
        done += (uint64_t)n;
    }
    if (EVP_DigestFinal_ex(ctx, d, &dlen) != 1 || dlen != SHA256_DIGEST_LENGTH) {
        rc = EIO;
        goto out;
    }
    to_hex(d, dlen, hex);
out:
    EVP_MD_CTX_free(ctx);
    free(buf);
    return rc;
}

static int hmac(const void *key, size_t keylen, const void *msg, size_t len,
                unsigned char out[SHA256_DIGEST_LENGTH])
{
    unsigned int outlen = 0;
    if (!HMAC(EVP_sha256(), key, (int)keylen, msg, len, out, &outlen) ||
        outlen != SHA256_DIGEST_LENGTH)
        return EINVAL;
    return 0;
}

void sigv4_amz_date(time_t t, char *buf)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, 17, "%Y%m%dT%H%M%SZ", &tm);
}

char *sigv4_uri_encode(const char *s, size_t len, bool keep_slash)
{
    struct sbuf b = SBUF_INIT;
    sbuf_add_uri(&b, s, len, keep_slash);
    return sbuf_take(&b);
}

/* Derive (or find) the signing key for date/region/service. */
static int signing_key(const char *secret, const char *date, const char *region,
                       const char *service, struct sigv4_keycache *kc,
                       unsigned char key[SHA256_DIGEST_LENGTH])
{
    unsigned char secret_id[SHA256_DIGEST_LENGTH];
    bool cacheable = kc && strlen(region) < SCOPE_PART_MAX && strlen(service) < SCOPE_PART_MAX;

    if (cacheable) {
        SHA256((const unsigned char *)secret, strlen(secret), secret_id);
        pthread_mutex_lock(&kc->lock);
        for (unsigned i = 0; i < KC_SLOTS; i++) {
            struct kc_slot *sl = &kc->slots[i];
            if (sl->used && strcmp(sl->date, date) == 0 && strcmp(sl->region, region) == 0 &&
                strcmp(sl->service, service) == 0 &&
                CRYPTO_memcmp(sl->secret_id, secret_id, sizeof(secret_id)) == 0) {
                memcpy(key, sl->key, SHA256_DIGEST_LENGTH);
                pthread_mutex_unlock(&kc->lock);
                return 0;
            }
        }
        pthread_mutex_unlock(&kc->lock);
    }

    size_t slen = strlen(secret);
    char *k0 = malloc(slen + 5);
    if (!k0)
        return ENOMEM;
    memcpy(k0, "AWS4", 4);
    memcpy(k0 + 4, secret, slen + 1);
    unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
    int rc = hmac(k0, slen + 4, date, strlen(date), a);
    OPENSSL_cleanse(k0, slen + 4);
    free(k0);
    if (!rc)
        rc = hmac(a, sizeof(a), region, strlen(region), b);
    if (!rc)
        rc = hmac(b, sizeof(b), service, strlen(service), a);
    if (!rc)
        rc = hmac(a, sizeof(a), "aws4_request", 12, key);
    OPENSSL_cleanse(a, sizeof(a));
    OPENSSL_cleanse(b, sizeof(b));
    if (rc)
        return rc;

    if (cacheable) {
        pthread_mutex_lock(&kc->lock);
        struct kc_slot *sl = &kc->slots[kc->next++ % KC_SLOTS];
        sl->used = true;
        snprintf(sl->date, sizeof(sl->date), "%s", date);
        snprintf(sl->region, sizeof(sl->region), "%s", region);
        snprintf(sl->service, sizeof(sl->service), "%s", service);
        memcpy(sl->secret_id, secret_id, sizeof(secret_id));
        memcpy(sl->key, key, SHA256_DIGEST_LENGTH);
        pthread_mutex_unlock(&kc->lock);
    }
    return 0;
}

/* One encoded query pair, for sorting. */
struct qpair {
    char *name;
    char *value;
};

static int qpair_cmp(const void *a, const void *b)
{
    const struct qpair *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

/* Append the trimmed, whitespace-folded header value. */
static void add_header_value(struct sbuf *b, const char *v)
{
    bool pending_space = false, started = false;
    for (; v && *v; v++) {
        if (isspace((unsigned char)*v)) {
            pending_space = started;
            continue;
        }
        if (pending_space)
            sbuf_addc(b, ' ');
        pending_space = false;
        started = true;
        sbuf_addc(b, *v);
    }
}

static int name_cmp_lower(const char *a, const char *b)
{
    for (;; a++, b++) {
        int x = tolower((unsigned char)*a), y = tolower((unsigned char)*b);
        if (x != y || !x)
            return x - y;
    }
}

/* Canonical query string into b.  Returns 0 or ENOMEM. */
static int canonical_query(const struct sigv4_request *r, struct sbuf *b)
{
    if (!r->nquery)
        return 0;
    struct qpair *q = calloc(r->nquery, sizeof(*q));
    if (!q)
        return ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < r->nquery && !rc; i++) {
        const char *n = r->query[i].name, *v = r->query[i].value ? r->query[i].value : "";
        q[i].name = sigv4_uri_encode(n, strlen(n), false);
        q[i].value = sigv4_uri_encode(v, strlen(v), false);
        if (!q[i].name || !q[i].value)
            rc = ENOMEM;
    }
    if (!rc) {
        qsort(q, r->nquery, sizeof(*q), qpair_cmp);
        for (size_t i = 0; i < r->nquery; i++) {
            if (i)
                sbuf_addc(b, '&');
            sbuf_adds(b, q[i].name);
            sbuf_addc(b, '=');
            sbuf_adds(b, q[i].value);
        }
    }
    for (size_t i = 0; i < r->nquery; i++) {
        free(q[i].name);
        free(q[i].value);
    }
    free(q);
    return rc;
}

/* Canonical headers (each "name:value\n") into b, signed header list into sh. */
static int canonical_headers(const struct sigv4_request *r, struct sbuf *b, struct sbuf *sh)
{
    size_t n = r->nheaders;
    size_t *idx = calloc(n ? n : 1, sizeof(*idx));
    if (!idx)
        return ENOMEM;
    /* Insertion sort by lowercase name: stable, so repeated headers keep their order. */
    for (size_t i = 0; i < n; i++) {
        size_t j = i;
        while (j > 0 && name_cmp_lower(r->headers[idx[j - 1]].name, r->headers[i].name) > 0) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = i;
    }
    for (size_t i = 0; i < n; i++) {
        const struct sigv4_kv *h = &r->headers[idx[i]];
        bool same_as_prev = i > 0 && name_cmp_lower(r->headers[idx[i - 1]].name, h->name) == 0;
        if (same_as_prev) {
            sbuf_addc(b, ',');
        } else {
            if (i) {
                sbuf_addc(b, '\n');
                sbuf_addc(sh, ';');
            }
            for (const char *p = h->name; *p; p++) {
                sbuf_addc(b, (char)tolower((unsigned char)*p));
                sbuf_addc(sh, (char)tolower((unsigned char)*p));
            }
            sbuf_addc(b, ':');
        }
        add_header_value(b, h->value);
    }
    if (n)
        sbuf_addc(b, '\n');
    free(idx);
    return sbuf_err(b) ? sbuf_err(b) : sbuf_err(sh);
}

int sigv4_sign(const struct sigv4_request *r, const struct sigv4_creds *c, const char *region,
               const char *service, time_t t, struct sigv4_keycache *kc, struct sigv4_result *out)
{
    struct sbuf creq = SBUF_INIT, sh = SBUF_INIT, sts = SBUF_INIT, authz = SBUF_INIT;
    char amz_date[17], date[9], creq_hash[65], sig_hex[65];
    unsigned char key[SHA256_DIGEST_LENGTH], sig[SHA256_DIGEST_LENGTH];
    int rc;

    memset(out, 0, sizeof(*out));
    if (!r->method || !r->path || !r->payload_hash || !c->access_key || !c->secret_key || !region ||
        !service || strchr(region, '/') || strchr(service, '/'))
        return EINVAL;

    sigv4_amz_date(t, amz_date);
    memcpy(date, amz_date, 8);
    date[8] = '\0';

    /* 1. canonical request */
    sbuf_adds(&creq, r->method);
    sbuf_addc(&creq, '\n');
    if (r->path[0])
        sbuf_add_uri(&creq, r->path, strlen(r->path), 1);
    else
        sbuf_addc(&creq, '/');
    sbuf_addc(&creq, '\n');
    rc = canonical_query(r, &creq);
    if (rc)
        goto fail;
    sbuf_addc(&creq, '\n');
    rc = canonical_headers(r, &creq, &sh);
    if (rc)
        goto fail;
    sbuf_addc(&creq, '\n');
    sbuf_add(&creq, sh.p ? sh.p : "", sh.len);
    sbuf_addc(&creq, '\n');
    sbuf_adds(&creq, r->payload_hash);
    rc = sbuf_err(&creq);
    if (rc)
        goto fail;

    /* 2. string to sign */
    sigv4_sha256_hex(creq.p, creq.len, creq_hash);
    sbuf_printf(&sts, SIGV4_ALGO "\n%s\n%s/%s/%s/aws4_request\n%s", amz_date, date, region, service,
                creq_hash);
    rc = sbuf_err(&sts);
    if (rc)
        goto fail;

    /* 3. signature */
    rc = signing_key(c->secret_key, date, region, service, kc, key);
    if (rc)
        goto fail;
    rc = hmac(key, sizeof(key), sts.p, sts.len, sig);
    OPENSSL_cleanse(key, sizeof(key));
    if (rc)
        goto fail;
    to_hex(sig, sizeof(sig), sig_hex);

    sbuf_printf(&authz,
                SIGV4_ALGO " Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=%s, "
                           "Signature=%s",
                c->access_key, date, region, service, sh.p ? sh.p : "", sig_hex);
    rc = sbuf_err(&authz);
    if (rc)
        goto fail;

    out->creq = sbuf_take(&creq);
    out->sts = sbuf_take(&sts);
    out->signed_headers = sbuf_take(&sh);
    out->authorization = sbuf_take(&authz);
    if (!out->creq || !out->sts || !out->signed_headers || !out->authorization) {
        sigv4_result_free(out);
        return ENOMEM;
    }
    return 0;

fail:
    sbuf_free(&authz);
    sbuf_free(&sts);
    sbuf_free(&sh);
    sbuf_free(&creq);
    return rc;
}

void sigv4_result_free(struct sigv4_result *out)
{
    free(out->creq);
    free(out->sts);
    free(out->signed_headers);
    free(out->authorization);
    memset(out, 0, sizeof(*out));
}
