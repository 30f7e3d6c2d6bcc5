/*
 * it_s3_faults.c - retries of the S3 backend, with a fault-injecting
 * proxy (tests/integration/faultproxy.py) between it and moto_server.
 *
 * Run by tests/integration/s3_moto.sh (BNFS_S3_PROXY is the proxy); started
 * without it, it says so and exits.  What a user would notice:
 * a few 503 SlowDown answers, dropped or reset connections, a body cut
 * short, an error inside a 200 are all invisible (the operation succeeds
 * after retries); a store that keeps failing gives EAGAIN (NFS3ERR_JUKEBOX)
 * after a bounded number of tries and a bounded time; nothing hangs.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "common/conf.h"
#include "common/log.h"
#include "objstore/objstore.h"
#include "objstore/s3.h"
#include "tests/unit/testlib.h"
#include "tests/unit/testobj.h"

static const char *bucket = "bnfs-test";

struct body {
    char text[256];
    size_t len;
};

static size_t keep(char *p, size_t sz, size_t n, void *ud)
{
    struct body *b = ud;
    size_t len = sz * n, room = sizeof(b->text) - 1 - b->len;
    size_t take = len < room ? len : room;
    memcpy(b->text + b->len, p, take);
    b->len += take;
    b->text[b->len] = '\0';
    return len;
}

/* Arm the proxy ("MODE COUNT [METHOD]", or NULL to ask); returns faults injected so far or -1. */
static long proxy(const char *cmd)
{
    char url[512];
    struct body b = {.len = 0};
    snprintf(url, sizeof(url), "%s/__fault__", getenv("BNFS_S3_PROXY"));
    CURL *h = curl_easy_init();
    if (!h)
        return -1;
    curl_easy_setopt(h, CURLOPT_URL, url);
    if (cmd)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, cmd);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, keep);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    CURLcode cc = curl_easy_perform(h);
    curl_easy_cleanup(h);
    long n = -1;
    if (cc == CURLE_OK && sscanf(b.text, "injected %ld", &n) != 1)
        n = -1;
    return n;
}

/* Switch moto's signature checking on or off (body "0" / "inf").  0 or -1. */
static int moto_auth(bool on)
{
    char url[512];
    struct body b = {.len = 0};
    snprintf(url, sizeof(url), "%s/moto-api/reset-auth", getenv("BNFS_S3_ENDPOINT"));
    CURL *h = curl_easy_init();
    if (!h)
        return -1;
    struct curl_slist *hl = curl_slist_append(NULL, "Content-Type: text/plain");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, on ? "0" : "inf");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, keep);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    CURLcode cc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(h);
    return cc == CURLE_OK && status == 200 ? 0 : -1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * Bodies read from a file are sent again from their first byte when a try
 * fails; an UploadPartCopy error inside a 200 is retried; S3's 412 to
 * x-amz-copy-source-if-match (moto does not check that header) is ESTALE
 * at once, not retried.
 */
static void test_file_bodies(struct objstore *st, const unsigned char *data, size_t n)
{
    size_t fn = 6u << 20, p1 = 5u << 20;
    unsigned char *fdata = malloc(fn), *back = malloc(p1 + n + 1), *want = malloc(p1 + n);
    for (size_t i = 0; i < fn; i++)
        fdata[i] = (unsigned char)(i * 13 + i / 1000);
    int fd = test_staging_file(NULL, fdata, fn);
    size_t got;

    uint64_t retries0 = st->stats.retries;
    CHECK(proxy("503 2") >= 0);
    CHECK_EQ_INT(obj_put_file(st, bucket, "body-file", fd, 1000, fn - 1000, NULL, NULL), 0);
    CHECK_EQ_INT(st->stats.retries - retries0, 2);
    CHECK_EQ_INT(obj_get(st, bucket, "body-file", 0, fn, back, &got, NULL), 0);
    CHECK(got == fn - 1000 && memcmp(back, fdata + 1000, fn - 1000) == 0);

    char upload[OBJ_UPLOAD_ID_MAX], e3[OBJ_ETAG_MAX];
    struct obj_part parts[2] = {{.number = 1}, {.number = 2}};
    CHECK_EQ_INT(st->ops->mp_create(st, bucket, "body-mp", NULL, upload), 0);
    proxy("drop 1");
    CHECK_EQ_INT(obj_mp_put_part_file(st, bucket, "body-mp", upload, 1, fd, 0, p1, parts[0].etag),
                 0);
    proxy("err200 1");
    CHECK_EQ_INT(
        obj_mp_copy_part(st, bucket, "body-mp", upload, 2, "flt-object", NULL, 0, n, parts[1].etag),
        0);
    long before = proxy("412 5");
    CHECK_EQ_INT(obj_mp_copy_part(st, bucket, "body-mp", upload, 3, "flt-object",
                                  "0123456789abcdef0123456789abcdef", 0, n, e3),
                 ESTALE);
    CHECK_EQ_INT(proxy("none 0") - before, 1);
    CHECK_EQ_INT(st->ops->mp_complete(st, bucket, "body-mp", upload, parts, 2, NULL), 0);
    memcpy(want, fdata, p1);
    memcpy(want + p1, data, n);
    CHECK_EQ_INT(obj_get(st, bucket, "body-mp", 0, p1 + n + 1, back, &got, NULL), 0);
    CHECK(got == p1 + n && memcmp(back, want, p1 + n) == 0);
    close(fd);
    free(fdata);
    free(back);
    free(want);
}

/*
 * Bodies that are not what they claim, on GETs (the cache reads blocks with
 * ranged GETs, If-Match on the version's ETag):
 *  - the store stalls after half the body: the stall timeout (2 s here) ends
 *    the try and the next reads it whole;
 *  - more bytes announced (Content-Length) than sent, then close: retried;
 *  - a well-formed answer (its Content-Length matches what it sends) shorter
 *    than its Content-Range: retried, never returned as a short read;
 *  - another ETag than the If-Match asked for (a store that ignores If-Match
 *    and serves another version): ESTALE, never that version's bytes.
 * A body whose bytes were changed on the way with lengths and ETag intact is
 * not detectable on a ranged GET (S3 sends no checksum of a range); TCP (and
 * TLS over https) are what guard it, and the cache's CRC-32C guards a block
 * once stored.
 */
static void test_body_faults(struct objstore *st, const unsigned char *data, size_t n)
{
    unsigned char *back = malloc(n);
    size_t got;
    struct obj_meta m;

    long before = proxy("stall 1 GET");
    double t0 = now_s();
    CHECK_EQ_INT(obj_get(st, bucket, "flt-object", 4096, n - 4096, back, &got, NULL), 0);
    CHECK(got == n - 4096 && memcmp(back, data + 4096, n - 4096) == 0);
    double took = now_s() - t0;
    CHECK(took >= 1.5 && took < 15);
    CHECK_EQ_INT(proxy(NULL) - before, 1);

    uint64_t retries0 = st->stats.retries;
    proxy("longlen 1 GET");
    CHECK_EQ_INT(obj_get(st, bucket, "flt-object", 1000, 200000, back, &got, NULL), 0);
    CHECK(got == 200000 && memcmp(back, data + 1000, 200000) == 0);
    CHECK_EQ_INT(st->stats.retries - retries0, 1);

    retries0 = st->stats.retries;
    proxy("shortlen 1 GET");
    CHECK_EQ_INT(obj_get(st, bucket, "flt-object", 5000, 300000, back, &got, NULL), 0);
    CHECK(got == 300000 && memcmp(back, data + 5000, 300000) == 0);
    CHECK_EQ_INT(st->stats.retries - retries0, 1);
    /* The same at the object's end: the range is cut by the size, not by the fault. */
    retries0 = st->stats.retries;
    proxy("shortlen 1 GET");
    CHECK_EQ_INT(obj_get(st, bucket, "flt-object", n - 3000, 10000, back, &got, NULL), 0);
    CHECK(got == 3000 && memcmp(back, data + n - 3000, 3000) == 0);
    CHECK_EQ_INT(st->stats.retries - retries0, 1);

    CHECK_EQ_INT(obj_head(st, bucket, "flt-object", &m), 0);
    proxy("etag 1 GET");
    CHECK_EQ_INT(obj_get_if(st, bucket, "flt-object", 0, 1000, back, &got, NULL, m.etag), ESTALE);
    CHECK_EQ_INT(got, 0);
    proxy("none 0");
    CHECK_EQ_INT(obj_get_if(st, bucket, "flt-object", 0, 1000, back, &got, NULL, m.etag), 0);
    CHECK(got == 1000 && memcmp(back, data, 1000) == 0);
    free(back);
}

static int count_cb(void *arg, const struct obj_entry *e)
{
    (void)e;
    (*(unsigned *)arg)++;
    return 0;
}

int main(int argc, char **argv)
{
    (void)argc;
    if (!getenv("BNFS_S3_PROXY")) {
        /* The unit-test runner starts us bare: this suite needs moto_server and
         * runs under tests/integration/s3_moto.sh, which starts it and passes
         * BNFS_S3_*.  Say so instead of failing or passing silently. */
        printf("it_s3_faults: runs under integration/s3_moto (needs moto_server): "
               "0 passed, 0 failed\n");
        return 0;
    }
    log_init("it_s3_faults", 1, LOG_WARNING);

    struct conf_store c = {.name = "faulty",
                           .type = CONF_STORE_S3,
                           .endpoint = getenv("BNFS_S3_PROXY"),
                           .region = "us-east-1",
                           .credentials = "config",
                           .access_key = getenv("BNFS_S3_ACCESS_KEY"),
                           .secret_key = getenv("BNFS_S3_SECRET_KEY")};
    struct objstore *st = obj_create(&c);
    CHECK(st != NULL);
    if (!st)
        return TEST_DONE();
    struct s3_tuning t;
    s3_get_tuning(st, &t);
    CHECK_EQ_INT(t.max_attempts, 5); /* the documented default */
    t.base_delay_ms = 20;
    t.max_delay_ms = 200;
    t.deadline_ms = 20000;
    t.stall_timeout_s = 2;
    s3_set_tuning(st, &t);

    size_t n = 3 << 20;
    unsigned char *data = malloc(n), *back = malloc(n);
    for (size_t i = 0; i < n; i++)
        data[i] = (unsigned char)(i * 7 + i / 4096);
    struct obj_meta m;
    size_t got;
    char next[OBJ_TOKEN_MAX];

    CHECK_EQ_INT(proxy("none 0"), 0);
    CHECK_EQ_INT(obj_put(st, bucket, "flt-object", data, n, NULL, NULL), 0);

    /* Temporary failures below the retry limit are invisible. */
    long before = proxy(NULL);
    uint64_t retries0 = st->stats.retries;
    CHECK(proxy("503 2") >= 0);
    CHECK_EQ_INT(obj_get(st, bucket, "flt-object", 0, n, back, &got, NULL), 0);
    CHECK(got == n && memcmp(back, data, n) == 0);
    CHECK_EQ_INT(proxy(NULL) - before, 2);
    CHECK_EQ_INT(st->stats.retries - retries0, 2);

    proxy("drop 2");
    CHECK_EQ_INT(obj_head(st, bucket, "flt-object", &m), 0);
    CHECK_EQ_INT(m.size, n);

    proxy("reset 2");
    CHECK_EQ_INT(obj_put(st, bucket, "flt-small", "abc", 3, NULL, NULL), 0);

    proxy("truncate 1"); /* the body stops half way: read again, whole */
    CHECK_EQ_INT(obj_get(st, bucket, "flt-object", 1000, n - 1000, back, &got, NULL), 0);
    CHECK(got == n - 1000 && memcmp(back, data + 1000, n - 1000) == 0);

    test_body_faults(st, data, n);

    /* CopyObject answering 200 with an InternalError inside (copy HEADs the source first:
     * the fault goes to the PUT). */
    proxy("err200 1 PUT");
    CHECK_EQ_INT(obj_copy(st, bucket, "flt-small", "flt-copy", NULL), 0);
    CHECK_EQ_INT(obj_head(st, bucket, "flt-copy", &m), 0);

    test_file_bodies(st, data, n);

    /* A server that ignores Range and sends the whole object: the right bytes
     * anyway.  Range is a signed header, so the proxy's removing it breaks the
     * signature: moto's checking is off for these three reads. */
    CHECK_EQ_INT(moto_auth(false), 0);
    proxy("norange 3");
    CHECK_EQ_INT(obj_get(st, bucket, "flt-object", 70000, 5000, back, &got, &m), 0);
    CHECK(got == 5000 && memcmp(back, data + 70000, 5000) == 0);
    CHECK_EQ_INT(m.size, n);
    CHECK_EQ_INT(obj_get(st, bucket, "flt-object", n - 7, 5000, back, &got, NULL), 0);
    CHECK(got == 7 && memcmp(back, data + n - 7, 7) == 0);
    CHECK_EQ_INT(obj_get(st, bucket, "flt-object", n + 10, 5000, back, &got, NULL), 0);
    CHECK_EQ_INT(got, 0);
    CHECK_EQ_INT(moto_auth(true), 0);

    unsigned entries = 0;
    proxy("503 1");
    CHECK_EQ_INT(obj_list(st, bucket, "flt", NULL, NULL, 1000, count_cb, &entries, next), 0);
    CHECK_EQ_INT(entries, 3);

    /* Exhausted retries: EAGAIN, after exactly max_attempts tries, in bounded time. */
    before = proxy("503 100");
    double t0 = now_s();
    CHECK_EQ_INT(obj_get(st, bucket, "flt-object", 0, 100, back, &got, NULL), EAGAIN);
    CHECK(now_s() - t0 < 15);
    CHECK_EQ_INT(proxy(NULL) - before, 5);

    before = proxy("drop 100");
    CHECK_EQ_INT(obj_put(st, bucket, "flt-never", "x", 1, NULL, NULL), EAGAIN);
    CHECK_EQ_INT(proxy(NULL) - before, 5);

    before = proxy("err200 100 PUT");
    CHECK_EQ_INT(obj_copy(st, bucket, "flt-small", "flt-copy2", NULL), EAGAIN);
    CHECK_EQ_INT(proxy(NULL) - before, 5);

    /* A store that accepts and never answers: the stall timeout ends each try. */
    t.max_attempts = 2;
    s3_set_tuning(st, &t);
    before = proxy("hang 100");
    t0 = now_s();
    CHECK_EQ_INT(obj_head(st, bucket, "flt-object", &m), EAGAIN);
    double took = now_s() - t0;
    CHECK(took >= 1.5 && took < 20);
    CHECK_EQ_INT(proxy(NULL) - before, 2);

    /* The deadline also bounds the tries. */
    t.max_attempts = 50;
    t.deadline_ms = 1500;
    t.base_delay_ms = 100;
    t.max_delay_ms = 400;
    s3_set_tuning(st, &t);
    proxy("503 1000");
    t0 = now_s();
    CHECK_EQ_INT(obj_head(st, bucket, "flt-object", &m), EAGAIN);
    CHECK(now_s() - t0 < 5);

    /* And once the store recovers, everything works again. */
    proxy("none 0");
    CHECK_EQ_INT(obj_get(st, bucket, "flt-object", n - 10, 10, back, &got, NULL), 0);
    CHECK(got == 10 && memcmp(back, data + n - 10, 10) == 0);
    CHECK_EQ_INT(obj_head(st, bucket, "flt-never", &m), ENOENT);

    printf("s3 store stats: %llu failed tries, %llu retries\n",
           (unsigned long long)st->stats.errors, (unsigned long long)st->stats.retries);
    free(data);
    free(back);
    obj_destroy(st);
    return TEST_DONE();
}
