/*
 * it_s3_moto.c - the S3 backend against a real S3 emulator (moto_server
 * with SigV4 / IAM checking on), through the obj_ops API only.
 *
 * Run by tests/integration/s3_moto.sh, which starts moto on a free
 * 127.0.0.1 port, creates the bucket and an IAM user, and passes
 * BNFS_S3_ENDPOINT, BNFS_S3_BUCKET, BNFS_S3_ACCESS_KEY, BNFS_S3_SECRET_KEY.
 * Started without them (as the unit-test runner does), it says so and exits.
 *
 * What a user would notice: a wrong secret is refused; right credentials
 * (config, env or credentials file) work; bytes read back are the bytes
 * written, at any offset; a directory of 2,500 objects lists completely
 * over pages; POSIX attributes survive put, multipart and copy; objects
 * streamed from a file (put_file, mp_put_part_file), parts copied from
 * another object (mp_copy_part) and copies too large for one CopyObject
 * (copy_part_max lowered to 5 MiB) read back byte for byte; awkward key
 * names round-trip exactly.
 *
 * moto mis-checks correct signatures whenever the key or a query value
 * holds a character its web framework re-encodes differently from S3
 * ('+', '=', '&', '%', '(', '!', ';', ':', ',', UTF-8, and '/' in a query
 * value such as prefix=dir/): it rebuilds the canonical request from its
 * own re-quoted URL.  boto3 is refused the same way (s3_moto.sh shows it),
 * and test_sigv4_botocore shows our header equals botocore's byte for byte
 * for those requests.  Those cases run below with moto's checking off
 * (POST /moto-api/reset-auth "inf"); everything else runs with it on.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "common/conf.h"
#include "common/log.h"
#include "objstore/objstore.h"
#include "objstore/s3.h"
#include "tests/unit/testlib.h"
#include "tests/unit/testobj.h"

static const char *bucket;

static struct objstore *make_store(const char *creds, const char *ak, const char *sk)
{
    struct conf_store c = {0};
    c.name = "moto";
    c.type = CONF_STORE_S3;
    c.endpoint = getenv("BNFS_S3_ENDPOINT");
    c.region = "us-east-1";
    c.virtual_hosted = false;
    c.credentials = (char *)creds;
    c.access_key = (char *)ak;
    c.secret_key = (char *)sk;
    return obj_create(&c);
}

/* ---- listing helpers ---- */

struct seen {
    char **keys;
    size_t n, cap;
    size_t prefixes;
};

static int collect(void *arg, const struct obj_entry *e)
{
    struct seen *s = arg;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        char **k = realloc(s->keys, cap * sizeof(*k));
        if (!k)
            return ENOMEM;
        s->keys = k;
        s->cap = cap;
    }
    s->keys[s->n] = strdup(e->key);
    if (!s->keys[s->n])
        return ENOMEM;
    s->n++;
    if (e->is_prefix)
        s->prefixes++;
    return 0;
}

static bool seen_has(const struct seen *s, const char *key)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->keys[i], key) == 0)
            return true;
    return false;
}

static void seen_free(struct seen *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->keys[i]);
    free(s->keys);
    memset(s, 0, sizeof(*s));
}

/* List every page; returns 0 or errno; *pages counts the pages. */
static int list_all(struct objstore *st, const char *prefix, const char *delim, unsigned max,
                    struct seen *out, int *pages)
{
    char tok[OBJ_TOKEN_MAX] = "", next[OBJ_TOKEN_MAX];
    *pages = 0;
    for (int i = 0; i < 100; i++) { /* bounded: 2,500 keys / 1,000 = 3 pages */
        int rc = obj_list(st, bucket, prefix, delim, tok, max, collect, out, next);
        if (rc)
            return rc;
        (*pages)++;
        if (!next[0])
            return 0;
        snprintf(tok, sizeof(tok), "%s", next);
    }
    return EIO;
}

static int stop_after_one(void *arg, const struct obj_entry *e)
{
    (void)e;
    (*(int *)arg)++;
    return ECANCELED;
}

/* ---- the tests ---- */

/* Switch moto's signature / IAM checking on or off.  0 or -1. */
static int moto_auth(bool on)
{
    char url[512];
    snprintf(url, sizeof(url), "%s/moto-api/reset-auth", getenv("BNFS_S3_ENDPOINT"));
    CURL *h = curl_easy_init();
    if (!h)
        return -1;
    struct curl_slist *hl = curl_slist_append(NULL, "Content-Type: text/plain");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, on ? "0" : "inf");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fwrite);
    FILE *null = fopen("/dev/null", "w");
    curl_easy_setopt(h, CURLOPT_WRITEDATA, null);
    CURLcode cc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(h);
    if (null)
        fclose(null);
    return cc == CURLE_OK && status == 200 ? 0 : -1;
}

static void test_auth(void)
{
    struct obj_meta m;
    struct objstore *bad =
        make_store("config", getenv("BNFS_S3_ACCESS_KEY"), "wrong-secret-wrong-secret-wrong-secre");
    CHECK(bad != NULL);
    if (bad) {
        CHECK_EQ_INT(obj_head(bad, bucket, "nothing-here", &m), EACCES);
        CHECK_EQ_INT(obj_put(bad, bucket, "refused", "x", 1, NULL, NULL), EACCES);
        obj_destroy(bad);
    }
    struct objstore *unknown = make_store("config", "AKIANOSUCHKEY0000000", "whatever");
    CHECK(unknown != NULL);
    if (unknown) {
        CHECK_EQ_INT(obj_head(unknown, bucket, "nothing-here", &m), EACCES);
        obj_destroy(unknown);
    }
}

static void test_put_head_get(struct objstore *st)
{
    struct obj_meta in = {.has_posix = true,
                          .mode = 0100640,
                          .uid = 1234,
                          .gid = 5678,
                          .mtime_sec = 1700000000,
                          .mtime_nsec = 123456789};
    struct obj_meta m;
    char etag[OBJ_ETAG_MAX] = "";
    size_t n = 1 << 20;
    unsigned char *data = malloc(n), *back = malloc(n);
    test_fill(data, n, 7);

    CHECK_EQ_INT(obj_put(st, bucket, "dir1/data.bin", data, n, &in, etag), 0);
    CHECK(etag[0] != '\0');
    CHECK_EQ_INT(obj_head(st, bucket, "dir1/data.bin", &m), 0);
    CHECK_EQ_INT(m.size, n);
    CHECK(m.has_posix);
    CHECK_EQ_INT(m.mode, 0100640);
    CHECK_EQ_INT(m.uid, 1234);
    CHECK_EQ_INT(m.gid, 5678);
    CHECK_EQ_INT(m.mtime_sec, 1700000000);
    CHECK_EQ_INT(m.mtime_nsec, 123456789);
    CHECK(strcmp(m.etag, etag) == 0);

    /* Ranged reads at a few offsets, one crossing the end, one past it. */
    size_t got = 0;
    CHECK_EQ_INT(obj_get(st, bucket, "dir1/data.bin", 0, n, back, &got, &m), 0);
    CHECK_EQ_INT(got, n);
    CHECK(memcmp(back, data, n) == 0);
    CHECK_EQ_INT(m.size, n);
    CHECK_EQ_INT(obj_get(st, bucket, "dir1/data.bin", 12345, 4096, back, &got, NULL), 0);
    CHECK_EQ_INT(got, 4096);
    CHECK(memcmp(back, data + 12345, 4096) == 0);
    CHECK_EQ_INT(obj_get(st, bucket, "dir1/data.bin", n - 100, 4096, back, &got, &m), 0);
    CHECK_EQ_INT(got, 100);
    CHECK(memcmp(back, data + n - 100, 100) == 0);
    CHECK_EQ_INT(obj_get(st, bucket, "dir1/data.bin", n, 4096, back, &got, &m), 0);
    CHECK_EQ_INT(got, 0);
    CHECK_EQ_INT(m.size, n);
    CHECK_EQ_INT(obj_get(st, bucket, "dir1/data.bin", n + 5000, 10, back, &got, NULL), 0);
    CHECK_EQ_INT(got, 0);

    /* If-Match: the current ETag reads, another one is a 412 (ESTALE) and no bytes. */
    CHECK_EQ_INT(obj_get_if(st, bucket, "dir1/data.bin", 100, 50, back, &got, NULL, etag), 0);
    CHECK(got == 50 && memcmp(back, data + 100, 50) == 0);
    got = 7;
    CHECK_EQ_INT(obj_get_if(st, bucket, "dir1/data.bin", 100, 50, back, &got, NULL,
                            "0123456789abcdef0123456789abcdef"),
                 ESTALE);
    CHECK_EQ_INT(got, 0);

    /* An object written without POSIX metadata (another tool) says so. */
    CHECK_EQ_INT(obj_put(st, bucket, "foreign.txt", "plain", 5, NULL, NULL), 0);
    CHECK_EQ_INT(obj_head(st, bucket, "foreign.txt", &m), 0);
    CHECK(!m.has_posix);
    CHECK_EQ_INT(m.size, 5);
    CHECK(m.mtime_sec > 1600000000);

    /* An empty object and a directory marker. */
    CHECK_EQ_INT(obj_put(st, bucket, "emptydir/", "", 0, NULL, NULL), 0);
    CHECK_EQ_INT(obj_head(st, bucket, "emptydir/", &m), 0);
    CHECK_EQ_INT(m.size, 0);
    CHECK_EQ_INT(obj_get(st, bucket, "emptydir/", 0, 10, back, &got, NULL), 0);
    CHECK_EQ_INT(got, 0);

    CHECK_EQ_INT(obj_head(st, bucket, "no/such/key", &m), ENOENT);
    CHECK_EQ_INT(obj_get(st, bucket, "no/such/key", 0, 10, back, &got, NULL), ENOENT);
    CHECK_EQ_INT(obj_head(st, "no-such-bucket-bnfs", "k", &m), ENOENT);
    free(data);
    free(back);
}

static void test_awkward_keys(struct objstore *st)
{
    static const char *const keys[] = {
        "awk/with space",
        "awk/plus+sign",
        "awk/eq=and&amp",
        "awk/tilde~name",
        "awk/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e.bin",
        "awk/percent%20lit",
        "awk/100%",
        "awk/q?mark#hash",
        "awk/star*(paren)!'",
        "awk/semi;colon:comma,",
        "awk/a//double",
        "awk/dots/../x",
        "awk/./dot",
        "awk/<xml>&\"quote\"",
    };
    size_t nk = sizeof(keys) / sizeof(keys[0]);
    char buf[256];
    size_t got;
    struct obj_meta m;
    for (size_t i = 0; i < nk; i++) {
        char body[256];
        snprintf(body, sizeof(body), "body of %s", keys[i]);
        int rc = obj_put(st, bucket, keys[i], body, strlen(body), NULL, NULL);
        CHECK_EQ_INT(rc, 0);
        rc = obj_head(st, bucket, keys[i], &m);
        CHECK_EQ_INT(rc, 0);
        CHECK_EQ_INT(m.size, strlen(body));
        rc = obj_get(st, bucket, keys[i], 0, sizeof(buf), buf, &got, NULL);
        CHECK_EQ_INT(rc, 0);
        CHECK(got == strlen(body) && memcmp(buf, body, got) == 0);
        if (rc || got != strlen(body))
            fprintf(stderr, "awkward key failed: \"%s\"\n", keys[i]);
    }
    struct seen s = {0};
    int pages;
    CHECK_EQ_INT(list_all(st, "awk/", NULL, 1000, &s, &pages), 0);
    CHECK_EQ_INT(s.n, nk);
    for (size_t i = 0; i < nk; i++) {
        CHECK(seen_has(&s, keys[i]));
        if (!seen_has(&s, keys[i]))
            fprintf(stderr, "listing lacks \"%s\"\n", keys[i]);
    }
    seen_free(&s);
}

struct putter {
    struct objstore *st;
    int first, step, failures;
};

static void *put_many(void *arg)
{
    struct putter *p = arg;
    char key[64];
    for (int i = p->first; i < 2500; i += p->step) {
        snprintf(key, sizeof(key), "many/k%05d", i);
        if (obj_put(p->st, bucket, key, key, strlen(key), NULL, NULL))
            p->failures++;
    }
    return NULL;
}

static void test_big_listing(struct objstore *st)
{
    char key[64];
    /* Four threads share the store (and its connection pool). */
    struct putter p[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        p[i] = (struct putter){st, i, 4, 0};
        CHECK_EQ_INT(pthread_create(&t[i], NULL, put_many, &p[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ_INT(p[0].failures + p[1].failures + p[2].failures + p[3].failures, 0);
    struct seen s = {0};
    int pages = 0;
    CHECK_EQ_INT(list_all(st, "many/", "/", 1000, &s, &pages), 0);
    CHECK_EQ_INT(s.n, 2500);
    CHECK_EQ_INT(pages, 3);
    int missing = 0;
    for (int i = 0; i < 2500; i += 1) {
        snprintf(key, sizeof(key), "many/k%05d", i);
        if (!seen_has(&s, key))
            missing++;
    }
    CHECK_EQ_INT(missing, 0);
    seen_free(&s);

    /* A callback error stops the listing and is returned. */
    int calls = 0;
    char next[OBJ_TOKEN_MAX];
    CHECK_EQ_INT(obj_list(st, bucket, "many/", NULL, NULL, 1000, stop_after_one, &calls, next),
                 ECANCELED);
    CHECK_EQ_INT(calls, 1);
}

static void test_delimiter(struct objstore *st)
{
    static const char *const keys[] = {"tree/a/b/c.txt", "tree/a/x.txt", "tree/top.txt",
                                       "tree/z/deep/er/f"};
    for (size_t i = 0; i < 4; i++)
        CHECK_EQ_INT(obj_put(st, bucket, keys[i], "t", 1, NULL, NULL), 0);
    struct seen s = {0};
    int pages;
    CHECK_EQ_INT(list_all(st, "tree/", "/", 1000, &s, &pages), 0);
    CHECK_EQ_INT(s.n, 3);
    CHECK_EQ_INT(s.prefixes, 2);
    CHECK(seen_has(&s, "tree/a/"));
    CHECK(seen_has(&s, "tree/z/"));
    CHECK(seen_has(&s, "tree/top.txt"));
    seen_free(&s);
    CHECK_EQ_INT(list_all(st, "tree/a/", "/", 1000, &s, &pages), 0);
    CHECK_EQ_INT(s.n, 2);
    CHECK(seen_has(&s, "tree/a/b/"));
    CHECK(seen_has(&s, "tree/a/x.txt"));
    seen_free(&s);
    CHECK_EQ_INT(list_all(st, "tree/", NULL, 1000, &s, &pages), 0);
    CHECK_EQ_INT(s.n, 4);
    seen_free(&s);
}

static void test_multipart(struct objstore *st)
{
    size_t total = 20 * 1024 * 1024 + 12345;
    size_t psz = (size_t)s3_part_size(total);
    unsigned char *data = malloc(total), *back = malloc(1 << 20);
    char upload[OBJ_UPLOAD_ID_MAX];
    struct obj_part parts[8], listed[8];
    size_t np = 0, nl = 0;
    struct obj_meta in = {
        .has_posix = true, .mode = 0100600, .uid = 42, .gid = 43, .mtime_sec = 1600000000};
    struct obj_meta m;
    test_fill(data, total, 99);
    CHECK_EQ_INT(psz, 8 * 1024 * 1024);

    CHECK_EQ_INT(st->ops->mp_create(st, bucket, "big/log.bin", &in, upload), 0);
    for (size_t off = 0; off < total && np < 8; off += psz, np++) {
        size_t len = total - off < psz ? total - off : psz;
        parts[np].number = (uint32_t)np + 1;
        parts[np].size = len;
        CHECK_EQ_INT(st->ops->mp_put_part(st, bucket, "big/log.bin", upload, parts[np].number,
                                          data + off, len, parts[np].etag),
                     0);
    }
    CHECK_EQ_INT(np, 3);
    CHECK_EQ_INT(st->ops->mp_list_parts(st, bucket, "big/log.bin", upload, listed, 8, &nl), 0);
    CHECK_EQ_INT(nl, 3);
    for (size_t i = 0; i < nl && i < np; i++) {
        CHECK_EQ_INT(listed[i].number, parts[i].number);
        CHECK_EQ_INT(listed[i].size, parts[i].size);
        CHECK(strcmp(listed[i].etag, parts[i].etag) == 0);
    }
    char etag[OBJ_ETAG_MAX] = "";
    CHECK_EQ_INT(st->ops->mp_complete(st, bucket, "big/log.bin", upload, parts, np, etag), 0);
    CHECK(strchr(etag, '-') != NULL); /* multipart ETags are "md5-of-md5s-N" */
    CHECK_EQ_INT(obj_head(st, bucket, "big/log.bin", &m), 0);
    CHECK_EQ_INT(m.size, total);
    CHECK(m.has_posix);
    CHECK_EQ_INT(m.mode, 0100600);
    size_t got;
    /* A read across the first part boundary. */
    CHECK_EQ_INT(obj_get(st, bucket, "big/log.bin", psz - 1000, 1 << 20, back, &got, NULL), 0);
    CHECK_EQ_INT(got, 1 << 20);
    CHECK(memcmp(back, data + psz - 1000, 1 << 20) == 0);
    CHECK_EQ_INT(obj_get(st, bucket, "big/log.bin", total - 10, 1 << 20, back, &got, NULL), 0);
    CHECK_EQ_INT(got, 10);
    CHECK(memcmp(back, data + total - 10, 10) == 0);

    /* Completing with a wrong ETag is refused, not silently accepted. */
    char up2[OBJ_UPLOAD_ID_MAX];
    CHECK_EQ_INT(st->ops->mp_create(st, bucket, "big/other.bin", NULL, up2), 0);
    struct obj_part p1 = {.number = 1};
    CHECK_EQ_INT(st->ops->mp_put_part(st, bucket, "big/other.bin", up2, 1, data, 1000, p1.etag), 0);
    struct obj_part wrong = {.number = 1};
    snprintf(wrong.etag, sizeof(wrong.etag), "00000000000000000000000000000000");
    CHECK(st->ops->mp_complete(st, bucket, "big/other.bin", up2, &wrong, 1, NULL) != 0);
    CHECK_EQ_INT(st->ops->mp_abort(st, bucket, "big/other.bin", up2), 0);
    CHECK_EQ_INT(st->ops->mp_list_parts(st, bucket, "big/other.bin", up2, listed, 8, &nl), ENOENT);
    CHECK_EQ_INT(obj_head(st, bucket, "big/other.bin", &m), ENOENT);
    free(data);
    free(back);
}

#define MiB (1024u * 1024u)

/* put_file: a multi-MiB object streamed from a file, signed with the real payload hash. */
static void test_put_file(struct objstore *st)
{
    size_t n = 7 * MiB + 13;
    unsigned char *data = malloc(n);
    struct obj_meta in = {.has_posix = true,
                          .mode = 0100600,
                          .uid = 501,
                          .gid = 20,
                          .mtime_sec = 1710000000,
                          .mtime_nsec = 999999999};
    struct obj_meta m;
    char etag[OBJ_ETAG_MAX] = "", want[OBJ_ETAG_MAX] = "";
    test_fill(data, n, 21);
    int fd = test_staging_file(NULL, data, n);
    uint64_t puts0 = st->stats.puts, out0 = st->stats.bytes_out;

    CHECK_EQ_INT(obj_put_file(st, bucket, "pf/whole.bin", fd, 0, n, &in, etag), 0);
    CHECK(test_holds(st, bucket, "pf/whole.bin", data, n));
    CHECK_EQ_INT(obj_head(st, bucket, "pf/whole.bin", &m), 0);
    CHECK(m.size == n && m.has_posix && m.mode == 0100600 && m.uid == 501 && m.gid == 20);
    CHECK(m.mtime_sec == 1710000000 && m.mtime_nsec == 999999999);
    CHECK(etag[0] && strcmp(m.etag, etag) == 0);
    CHECK_EQ_INT(st->stats.puts - puts0, 1);
    CHECK(st->stats.bytes_out - out0 >= n);
    /* The same bytes from memory: the same ETag (the MD5 of the body). */
    CHECK_EQ_INT(obj_put(st, bucket, "pf/memory.bin", data, n, NULL, want), 0);
    CHECK(strcmp(etag, want) == 0);

    /* A range of the file, not starting on a buffer boundary. */
    CHECK_EQ_INT(obj_put_file(st, bucket, "pf/range.bin", fd, 12345, 3 * MiB + 1, NULL, NULL), 0);
    CHECK(test_holds(st, bucket, "pf/range.bin", data + 12345, 3 * MiB + 1));
    /* A range past the file's end is refused before anything is sent. */
    CHECK_EQ_INT(obj_put_file(st, bucket, "pf/never.bin", fd, n - 10, 11, NULL, NULL), EIO);
    CHECK_EQ_INT(obj_head(st, bucket, "pf/never.bin", &m), ENOENT);
    close(fd);
    free(data);
}

/*
 * A multipart upload whose 5 MiB parts alternate between a staging file
 * (mp_put_part_file) and ranges of another object (mp_copy_part), the
 * last one shorter; completed, read back, metadata kept.
 */
static void test_multipart_file_copy(struct objstore *st)
{
    size_t fn = 11 * MiB, sn = 12 * MiB + 777;
    unsigned char *fdata = malloc(fn), *sdata = malloc(sn), *want = malloc(4 * 5 * MiB);
    struct obj_meta in = {.has_posix = true,
                          .mode = 0100644,
                          .uid = 3,
                          .gid = 4,
                          .mtime_sec = 1690000000,
                          .mtime_nsec = 1};
    struct obj_meta m;
    struct obj_part parts[4], listed[8];
    char upload[OBJ_UPLOAD_ID_MAX], src_etag[OBJ_ETAG_MAX], etag[OBJ_ETAG_MAX] = "";
    size_t w = 0, nl = 0;
    test_fill(fdata, fn, 31);
    test_fill(sdata, sn, 32);
    int fd = test_staging_file(NULL, fdata, fn);
    CHECK_EQ_INT(obj_put(st, bucket, "mpc/src.bin", sdata, sn, NULL, src_etag), 0);

    CHECK_EQ_INT(st->ops->mp_create(st, bucket, "mpc/out.bin", &in, upload), 0);
    uint64_t mp0 = st->stats.mp_ops;
    struct {
        bool copy;
        uint64_t off, len;
    } plan[4] = {{false, 0, 5 * MiB},
                 {true, MiB + 3, 5 * MiB},
                 {false, 5 * MiB + 1, 5 * MiB},
                 {true, 10 * MiB, sn - 10 * MiB}};
    for (int i = 0; i < 4; i++) {
        parts[i].number = (uint32_t)i + 1;
        parts[i].size = plan[i].len;
        if (plan[i].copy) {
            CHECK_EQ_INT(obj_mp_copy_part(st, bucket, "mpc/out.bin", upload, parts[i].number,
                                          "mpc/src.bin", i == 1 ? src_etag : NULL, plan[i].off,
                                          plan[i].len, parts[i].etag),
                         0);
            memcpy(want + w, sdata + plan[i].off, plan[i].len);
        } else {
            CHECK_EQ_INT(obj_mp_put_part_file(st, bucket, "mpc/out.bin", upload, parts[i].number,
                                              fd, plan[i].off, plan[i].len, parts[i].etag),
                         0);
            memcpy(want + w, fdata + plan[i].off, plan[i].len);
        }
        CHECK(parts[i].etag[0] != '\0');
        w += plan[i].len;
    }
    CHECK_EQ_INT(st->stats.mp_ops - mp0, 4);
    CHECK_EQ_INT(st->ops->mp_list_parts(st, bucket, "mpc/out.bin", upload, listed, 8, &nl), 0);
    CHECK_EQ_INT(nl, 4);
    for (size_t i = 0; i < nl && i < 4; i++)
        CHECK(listed[i].size == parts[i].size && strcmp(listed[i].etag, parts[i].etag) == 0);

    /* moto does not check x-amz-copy-source-if-match on UploadPartCopy (it_s3_faults
     * shows that S3's 412 answer becomes ESTALE): say what it did, into a part not used. */
    char e5[OBJ_ETAG_MAX];
    int rc = obj_mp_copy_part(st, bucket, "mpc/out.bin", upload, 5, "mpc/src.bin",
                              "0123456789abcdef0123456789abcdef", 0, 5 * MiB, e5);
    printf("note: moto answers %s to UploadPartCopy with a wrong x-amz-copy-source-if-match "
           "(S3: 412, ESTALE)\n",
           rc ? strerror(rc) : "OK");
    CHECK_EQ_INT(obj_mp_copy_part(st, bucket, "mpc/out.bin", upload, 5, "mpc/absent.bin", NULL, 0,
                                  5 * MiB, e5),
                 ENOENT);

    CHECK_EQ_INT(st->ops->mp_complete(st, bucket, "mpc/out.bin", upload, parts, 4, etag), 0);
    CHECK(strstr(etag, "-4") != NULL);
    CHECK(test_holds(st, bucket, "mpc/out.bin", want, w));
    CHECK_EQ_INT(obj_head(st, bucket, "mpc/out.bin", &m), 0);
    CHECK(m.size == w && m.has_posix && m.mode == 0100644 && m.uid == 3 && m.gid == 4);
    CHECK(m.mtime_sec == 1690000000 && m.mtime_nsec == 1);
    close(fd);
    free(fdata);
    free(sdata);
    free(want);
}

/* copy of an object over copy_part_max (lowered from 5 GiB to 5 MiB): a multipart copy. */
static void test_copy_multipart(struct objstore *st)
{
    size_t n = 12 * MiB + 777;
    unsigned char *data = malloc(n);
    struct obj_meta in = {.has_posix = true,
                          .mode = 0100751,
                          .uid = 65534,
                          .gid = 100,
                          .mtime_sec = 1234567890,
                          .mtime_nsec = 123};
    struct obj_meta m;
    struct s3_tuning t, saved;
    test_fill(data, n, 41);
    CHECK_EQ_INT(obj_put(st, bucket, "mcp/src.bin", data, n, &in, NULL), 0);
    s3_get_tuning(st, &saved);
    CHECK_EQ_INT(saved.copy_part_max, 5ull << 30); /* S3's CopyObject limit by default */
    t = saved;
    t.copy_part_max = 5 * MiB;
    s3_set_tuning(st, &t);

    /* Metadata kept: a multipart upload (create, 3 part copies, complete) after a HEAD. */
    uint64_t mp0 = st->stats.mp_ops, copies0 = st->stats.copies;
    CHECK_EQ_INT(obj_copy(st, bucket, "mcp/src.bin", "mcp/dst.bin", NULL), 0);
    CHECK_EQ_INT(st->stats.mp_ops - mp0, 5);
    CHECK_EQ_INT(st->stats.copies - copies0, 1);
    CHECK(test_holds(st, bucket, "mcp/dst.bin", data, n));
    CHECK_EQ_INT(obj_head(st, bucket, "mcp/dst.bin", &m), 0);
    CHECK(strstr(m.etag, "-3") != NULL); /* three parts: 5 + 5 + 2 MiB */
    CHECK(m.size == n && m.has_posix && m.mode == 0100751 && m.uid == 65534 && m.gid == 100);
    CHECK(m.mtime_sec == 1234567890 && m.mtime_nsec == 123);

    /* Metadata replaced, onto itself (how a rename or chmod of a big file goes). */
    struct obj_meta repl = {
        .has_posix = true, .mode = 0100400, .uid = 9, .gid = 10, .mtime_sec = 1300000000};
    CHECK_EQ_INT(obj_copy(st, bucket, "mcp/src.bin", "mcp/src.bin", &repl), 0);
    CHECK(test_holds(st, bucket, "mcp/src.bin", data, n));
    CHECK_EQ_INT(obj_head(st, bucket, "mcp/src.bin", &m), 0);
    CHECK(m.mode == 0100400 && m.uid == 9 && m.gid == 10 && m.mtime_sec == 1300000000);

    /* At or under the limit: still one CopyObject (a single-part ETag). */
    mp0 = st->stats.mp_ops;
    CHECK_EQ_INT(obj_put(st, bucket, "mcp/small.bin", data, 5 * MiB, &in, NULL), 0);
    CHECK_EQ_INT(obj_copy(st, bucket, "mcp/small.bin", "mcp/small-copy.bin", NULL), 0);
    CHECK_EQ_INT(st->stats.mp_ops - mp0, 0);
    CHECK_EQ_INT(obj_head(st, bucket, "mcp/small-copy.bin", &m), 0);
    CHECK(strchr(m.etag, '-') == NULL && m.size == 5 * MiB && m.uid == 65534);
    CHECK(test_holds(st, bucket, "mcp/small-copy.bin", data, 5 * MiB));
    CHECK_EQ_INT(obj_copy(st, bucket, "mcp/absent.bin", "mcp/never.bin", NULL), ENOENT);

    s3_set_tuning(st, &saved);
    free(data);
}

static void test_copy_delete(struct objstore *st)
{
    struct obj_meta in = {
        .has_posix = true, .mode = 0100644, .uid = 1, .gid = 2, .mtime_sec = 1500000000};
    struct obj_meta m;
    char buf[64];
    size_t got;
    CHECK_EQ_INT(obj_put(st, bucket, "cp/src file 1", "copy me", 7, &in, NULL), 0);
    CHECK_EQ_INT(obj_copy(st, bucket, "cp/src file 1", "cp/dst same", NULL), 0);
    CHECK_EQ_INT(obj_head(st, bucket, "cp/dst same", &m), 0);
    CHECK(m.has_posix);
    CHECK_EQ_INT(m.mode, 0100644);
    CHECK_EQ_INT(m.uid, 1);
    CHECK_EQ_INT(obj_get(st, bucket, "cp/dst same", 0, sizeof(buf), buf, &got, NULL), 0);
    CHECK(got == 7 && memcmp(buf, "copy me", 7) == 0);

    struct obj_meta repl = {
        .has_posix = true, .mode = 0100755, .uid = 77, .gid = 88, .mtime_sec = 1500000001};
    CHECK_EQ_INT(obj_copy(st, bucket, "cp/src file 1", "cp/dst new", &repl), 0);
    CHECK_EQ_INT(obj_head(st, bucket, "cp/dst new", &m), 0);
    CHECK_EQ_INT(m.mode, 0100755);
    CHECK_EQ_INT(m.uid, 77);
    CHECK_EQ_INT(m.gid, 88);
    CHECK_EQ_INT(m.mtime_sec, 1500000001);
    /* rename = copy onto itself with new metadata */
    CHECK_EQ_INT(obj_copy(st, bucket, "cp/src file 1", "cp/src file 1", &repl), 0);
    CHECK_EQ_INT(obj_head(st, bucket, "cp/src file 1", &m), 0);
    CHECK_EQ_INT(m.uid, 77);

    CHECK_EQ_INT(obj_copy(st, bucket, "cp/absent", "cp/never", NULL), ENOENT);

    CHECK_EQ_INT(obj_del(st, bucket, "cp/dst same"), 0);
    CHECK_EQ_INT(obj_head(st, bucket, "cp/dst same", &m), ENOENT);
    CHECK_EQ_INT(obj_del(st, bucket, "cp/dst same"), 0); /* absent: not an error */
}

/* Temporary credentials (STS AssumeRole): the session token is sent and signed. */
static void test_session_token(void)
{
    const char *ak = getenv("BNFS_S3_TMP_ACCESS_KEY"), *sk = getenv("BNFS_S3_TMP_SECRET_KEY");
    const char *tok = getenv("BNFS_S3_TMP_TOKEN");
    CHECK(ak && sk && tok);
    if (!ak || !sk || !tok)
        return;
    struct conf_store c = {.name = "sts",
                           .type = CONF_STORE_S3,
                           .endpoint = getenv("BNFS_S3_ENDPOINT"),
                           .region = "us-east-1",
                           .credentials = "config",
                           .access_key = (char *)ak,
                           .secret_key = (char *)sk,
                           .session_token = (char *)tok};
    struct obj_meta m;
    struct objstore *st = obj_create(&c);
    CHECK(st != NULL);
    if (st) {
        CHECK_EQ_INT(obj_put(st, bucket, "sts-object", "temp", 4, NULL, NULL), 0);
        CHECK_EQ_INT(obj_head(st, bucket, "sts-object", &m), 0);
        obj_destroy(st);
    }
    /* The same keys without their token are refused. */
    c.session_token = NULL;
    st = obj_create(&c);
    CHECK(st != NULL);
    if (st) {
        CHECK_EQ_INT(obj_head(st, bucket, "sts-object", &m), EACCES);
        obj_destroy(st);
    }
    /* From the environment. */
    setenv("AWS_ACCESS_KEY_ID", ak, 1);
    setenv("AWS_SECRET_ACCESS_KEY", sk, 1);
    setenv("AWS_SESSION_TOKEN", tok, 1);
    struct conf_store e = {.name = "sts-env",
                           .type = CONF_STORE_S3,
                           .endpoint = getenv("BNFS_S3_ENDPOINT"),
                           .region = "us-east-1",
                           .credentials = "env"};
    st = obj_create(&e);
    CHECK(st != NULL);
    if (st) {
        CHECK_EQ_INT(obj_head(st, bucket, "sts-object", &m), 0);
        obj_destroy(st);
    }
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_SESSION_TOKEN");
}

/* Virtual-hosted addressing: "bucket.localhost:port" (curl resolves *.localhost to loopback
 * itself). */
static void test_virtual_hosted(void)
{
    const char *ep = getenv("BNFS_S3_ENDPOINT");
    const char *port = strrchr(ep, ':');
    char vep[128];
    snprintf(vep, sizeof(vep), "http://localhost%s", port ? port : "");
    struct conf_store c = {.name = "vhost",
                           .type = CONF_STORE_S3,
                           .endpoint = vep,
                           .region = "us-east-1",
                           .virtual_hosted = true,
                           .credentials = "config",
                           .access_key = getenv("BNFS_S3_ACCESS_KEY"),
                           .secret_key = getenv("BNFS_S3_SECRET_KEY")};
    struct objstore *st = obj_create(&c);
    CHECK(st != NULL);
    if (!st)
        return;
    struct obj_meta m;
    char buf[32];
    size_t got;
    CHECK_EQ_INT(obj_put(st, bucket, "vhost-object", "virtual", 7, NULL, NULL), 0);
    CHECK_EQ_INT(obj_head(st, bucket, "vhost-object", &m), 0);
    CHECK_EQ_INT(m.size, 7);
    CHECK_EQ_INT(obj_get(st, bucket, "vhost-object", 1, 100, buf, &got, NULL), 0);
    CHECK(got == 6 && memcmp(buf, "irtual", 6) == 0);
    struct seen s = {0};
    int pages;
    CHECK_EQ_INT(list_all(st, "vhost", NULL, 1000, &s, &pages), 0);
    CHECK(s.n == 1 && seen_has(&s, "vhost-object"));
    seen_free(&s);
    obj_destroy(st);
}

static void test_other_credentials(void)
{
    struct obj_meta m;
    const char *ak = getenv("BNFS_S3_ACCESS_KEY"), *sk = getenv("BNFS_S3_SECRET_KEY");

    setenv("AWS_ACCESS_KEY_ID", ak, 1);
    setenv("AWS_SECRET_ACCESS_KEY", sk, 1);
    unsetenv("AWS_SESSION_TOKEN");
    struct objstore *st = make_store("env", NULL, NULL);
    CHECK(st != NULL);
    if (st) {
        CHECK_EQ_INT(obj_head(st, bucket, "foreign.txt", &m), 0);
        obj_destroy(st);
    }
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    st = make_store("env", NULL, NULL);
    CHECK(st == NULL && errno == EINVAL); /* no credentials: refused at creation */
    obj_destroy(st);

    char path[] = "/tmp/bnfs-creds-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    FILE *f = fdopen(fd, "w");
    fprintf(f,
            "[default]\naws_access_key_id = AKIAWRONGWRONGWRONG0\n"
            "aws_secret_access_key = nope\n\n[bnfs]\naws_access_key_id = %s\n"
            "aws_secret_access_key = %s\n",
            ak, sk);
    fclose(f);
    struct conf_store c = {.name = "file",
                           .type = CONF_STORE_S3,
                           .endpoint = getenv("BNFS_S3_ENDPOINT"),
                           .region = "us-east-1",
                           .credentials = "file",
                           .credentials_file = path,
                           .profile = "bnfs"};
    st = obj_create(&c);
    CHECK(st != NULL);
    if (st) {
        CHECK_EQ_INT(obj_head(st, bucket, "foreign.txt", &m), 0);
        obj_destroy(st);
    }
    c.profile = "no-such-profile";
    st = obj_create(&c);
    CHECK(st == NULL);
    obj_destroy(st);
    unlink(path);
}

int main(int argc, char **argv)
{
    (void)argc;
    if (!getenv("BNFS_S3_ENDPOINT")) {
        /* The unit-test runner starts us bare: this suite needs moto_server and
         * runs under tests/integration/s3_moto.sh, which starts it and passes
         * BNFS_S3_*.  Say so instead of failing or passing silently. */
        printf("it_s3_moto: runs under integration/s3_moto (needs moto_server): "
               "0 passed, 0 failed\n");
        return 0;
    }
    log_init("it_s3_moto", 1, getenv("BNFS_S3_DEBUG") ? LOG_DEBUG : LOG_ERR);
    bucket = getenv("BNFS_S3_BUCKET");

    /* Phase 1: moto checks every signature. */
    CHECK_EQ_INT(moto_auth(true), 0);
    test_auth();
    struct objstore *st =
        make_store("config", getenv("BNFS_S3_ACCESS_KEY"), getenv("BNFS_S3_SECRET_KEY"));
    CHECK(st != NULL);
    if (!st)
        return TEST_DONE();
    test_put_head_get(st);
    test_multipart(st);
    test_put_file(st);
    test_multipart_file_copy(st);
    test_copy_multipart(st);
    test_copy_delete(st);
    test_other_credentials();
    test_virtual_hosted();
    test_session_token();
    struct seen s = {0};
    int pages = 0;
    CHECK_EQ_INT(list_all(st, "dir1", NULL, 1000, &s, &pages), 0);
    CHECK(s.n == 1 && seen_has(&s, "dir1/data.bin"));
    seen_free(&s);
    int rc = obj_put(st, bucket, "awk/plus+sign", "x", 1, NULL, NULL);
    printf("note: with checking on, moto answers %s to a PUT of \"awk/plus+sign\" "
           "(boto3 gets the same, see s3_moto.sh)\n",
           rc ? strerror(rc) : "OK");

    /* Phase 2: checking off, for what moto cannot check (see the top). */
    CHECK_EQ_INT(moto_auth(false), 0);
    test_awkward_keys(st);
    test_delimiter(st);
    test_big_listing(st);
    CHECK_EQ_INT(moto_auth(true), 0);
    printf("s3 store stats: %llu requests failed, %llu retried\n",
           (unsigned long long)st->stats.errors, (unsigned long long)st->stats.retries);
    obj_destroy(st);
    return TEST_DONE();
}
