/*
 * test_dirstore.c - the "dir" object store against a temporary folder:
 * objects, ranges, metadata, markers, listings (paged, prefixed, with and
 * without delimiter, 2,500 and 100,000 entries), symlinks, multipart, copy,
 * delete, keys that try to leave the bucket, the latency and failure knobs,
 * and concurrent readers.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "common/conf.h"
#include "common/log.h"
#include "objstore/objstore.h"
#include "tests/unit/testlib.h"
#include "tests/unit/testobj.h"

static char tmp[PATH_MAX];     /* the store's root */
static char outside[PATH_MAX]; /* a folder next to it, that keys must never reach */

static struct objstore *store_new(unsigned latency_ms, const char *match, double fail_rate)
{
    struct conf_store c = {
        .name = "t",
        .type = CONF_STORE_DIR,
        .root = tmp,
        .latency_ms = latency_ms,
        .latency_match = (char *)match,
        .fail_rate = fail_rate,
    };
    struct objstore *s = obj_create(&c);
    if (!s) {
        perror("obj_create");
        exit(2);
    }
    return s;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Write a file straight into the bucket folder, as another tool would. */
static void raw_file(const char *rel, const char *content)
{
    char path[PATH_MAX * 2];
    snprintf(path, sizeof(path), "%s/%s", tmp, rel);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        perror(path);
        exit(2);
    }
    if (write(fd, content, strlen(content)) != (ssize_t)strlen(content))
        exit(2);
    close(fd);
}

static void raw_mkdir(const char *rel)
{
    char path[PATH_MAX * 2];
    snprintf(path, sizeof(path), "%s/%s", tmp, rel);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        perror(path);
        exit(2);
    }
}

static bool raw_exists(const char *rel)
{
    char path[PATH_MAX * 2];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", tmp, rel);
    return lstat(path, &st) == 0;
}

/* ---- listing collector ---------------------------------------------------- */

#define MAXSEEN 64

struct seen {
    size_t n;
    char key[MAXSEEN][256];
    bool prefix[MAXSEEN];
    struct obj_meta meta[MAXSEEN];
};

static int collect(void *arg, const struct obj_entry *e)
{
    struct seen *s = arg;
    if (s->n < MAXSEEN) {
        snprintf(s->key[s->n], sizeof(s->key[0]), "%s", e->key);
        s->prefix[s->n] = e->is_prefix;
        s->meta[s->n] = e->meta;
    }
    s->n++;
    return 0;
}

/* List every page into s; returns the listing's rc. */
static int list_all(struct objstore *st, const char *prefix, const char *delim, struct seen *s)
{
    char tok[OBJ_TOKEN_MAX] = "", next[OBJ_TOKEN_MAX];
    memset(s, 0, sizeof(*s));
    for (int page = 0; page < 100; page++) {
        int rc = obj_list(st, "b", prefix, delim, tok, 1000, collect, s, next);
        if (rc || !next[0])
            return rc;
        strcpy(tok, next);
    }
    return E2BIG;
}

/* List without delimiter in pages of max keys into s; returns the number of pages. */
static int list_paged(struct objstore *st, const char *prefix, unsigned max, struct seen *s)
{
    char tok[OBJ_TOKEN_MAX] = "", next[OBJ_TOKEN_MAX];
    memset(s, 0, sizeof(*s));
    for (int page = 0; page < 100; page++) {
        CHECK_EQ_INT(obj_list(st, "b", prefix, NULL, tok, max, collect, s, next), 0);
        if (!next[0])
            return page + 1;
        strcpy(tok, next);
    }
    return -1;
}

static int find(const struct seen *s, const char *key)
{
    for (size_t i = 0; i < s->n && i < MAXSEEN; i++)
        if (strcmp(s->key[i], key) == 0)
            return (int)i;
    return -1;
}

/* ---- tests -------------------------------------------------------------- */

static void test_put_get_head(struct objstore *s)
{
    char etag[OBJ_ETAG_MAX], buf[64];
    struct obj_meta m;
    size_t got;

    CHECK_EQ_INT(obj_put(s, "b", "hello.txt", "hello world", 11, NULL, etag), 0);
    CHECK(strcmp(etag, "5eb63bbbe01eeed093cb22bb8f5acdc3") == 0); /* MD5, like S3 */
    CHECK_EQ_INT(obj_get(s, "b", "hello.txt", 6, 5, buf, &got, &m), 0);
    CHECK(got == 5 && memcmp(buf, "world", 5) == 0);
    CHECK_EQ_INT(m.size, 11);
    CHECK(strcmp(m.etag, etag) == 0);
    CHECK_EQ_INT(obj_get(s, "b", "hello.txt", 6, sizeof(buf), buf, &got, NULL), 0);
    CHECK_EQ_INT(got, 5); /* short only at the end */
    CHECK_EQ_INT(obj_get(s, "b", "hello.txt", 11, 10, buf, &got, NULL), 0);
    CHECK_EQ_INT(got, 0);
    CHECK_EQ_INT(obj_get(s, "b", "hello.txt", 1000, 10, buf, &got, NULL), 0);
    CHECK_EQ_INT(got, 0);

    CHECK_EQ_INT(obj_head(s, "b", "hello.txt", &m), 0);
    CHECK(m.size == 11 && !m.has_posix && strcmp(m.etag, etag) == 0);
    CHECK_EQ_INT(obj_head(s, "b", "nothing", &m), ENOENT);
    CHECK_EQ_INT(obj_head(s, "nobucket", "hello.txt", &m), ENOENT);
    CHECK_EQ_INT(obj_get(s, "b", "nothing", 0, 1, buf, &got, NULL), ENOENT);

    /* replace: readers see the new content and a new ETag */
    CHECK_EQ_INT(obj_put(s, "b", "hello.txt", "hello again", 11, NULL, NULL), 0);
    CHECK_EQ_INT(obj_get(s, "b", "hello.txt", 0, sizeof(buf), buf, &got, &m), 0);
    CHECK(got == 11 && memcmp(buf, "hello again", 11) == 0);
    CHECK(strcmp(m.etag, etag) != 0);
    /* If-Match: the old version's ETag is refused, the current one reads */
    CHECK_EQ_INT(obj_get_if(s, "b", "hello.txt", 0, sizeof(buf), buf, &got, NULL, etag), ESTALE);
    CHECK_EQ_INT(got, 0);
    CHECK_EQ_INT(obj_get_if(s, "b", "hello.txt", 6, 5, buf, &got, NULL, m.etag), 0);
    CHECK(got == 5 && memcmp(buf, "again", 5) == 0);

    /* a file written by another tool: stat's size, a stable ETag, no POSIX metadata */
    raw_file("b/other.txt", "abc");
    struct obj_meta m2;
    CHECK_EQ_INT(obj_head(s, "b", "other.txt", &m), 0);
    CHECK_EQ_INT(obj_head(s, "b", "other.txt", &m2), 0);
    CHECK(m.size == 3 && !m.has_posix && m.etag[0] && strcmp(m.etag, m2.etag) == 0);
    /* and a file changed behind our back gets a new ETag, not the recorded MD5 */
    CHECK_EQ_INT(obj_put(s, "b", "changed.txt", "v1", 2, NULL, etag), 0);
    usleep(10000);
    raw_file("b/changed.txt", "version 2");
    CHECK_EQ_INT(obj_head(s, "b", "changed.txt", &m), 0);
    CHECK(m.size == 9 && strcmp(m.etag, etag) != 0);

    /* nested keys create their folders; a file in the way is refused */
    CHECK_EQ_INT(obj_put(s, "b", "a/b/c.txt", "c", 1, NULL, NULL), 0);
    CHECK(raw_exists("b/a/b/c.txt"));
    CHECK(obj_put(s, "b", "hello.txt/x", "x", 1, NULL, NULL) == EEXIST);
    CHECK(obj_put(s, "b", "a/b", "x", 1, NULL, NULL) == EEXIST);
}

static void test_metadata(struct objstore *s)
{
    struct obj_meta in = {.has_posix = true, .mode = 0100640, .uid = 1000, .gid = 1001,
                          .mtime_sec = 1700000000, .mtime_nsec = 123456789};
    struct obj_meta m;
    char path[PATH_MAX * 2], v[64];

    CHECK_EQ_INT(obj_put(s, "b", "meta/f.bin", "data", 4, &in, NULL), 0);
    CHECK_EQ_INT(obj_head(s, "b", "meta/f.bin", &m), 0);
    CHECK(m.has_posix);
    CHECK_EQ_INT(m.mode, 0100640);
    CHECK_EQ_INT(m.uid, 1000);
    CHECK_EQ_INT(m.gid, 1001);
    CHECK_EQ_INT(m.mtime_sec, 1700000000);
    CHECK_EQ_INT(m.mtime_nsec, 123456789);
    /* the xattrs hold exactly the x-amz-meta-file-* strings */
    snprintf(path, sizeof(path), "%s/b/meta/f.bin", tmp);
    ssize_t n = getxattr(path, "user.bucketnfs.file-permissions", v, sizeof(v) - 1);
    CHECK(n == 7 && memcmp(v, "0100640", 7) == 0);
    n = getxattr(path, "user.bucketnfs.file-mtime", v, sizeof(v) - 1);
    CHECK(n == 21 && memcmp(v, "1700000000123456789ns", 21) == 0);
    struct stat st;
    CHECK(stat(path, &st) == 0 && st.st_mtim.tv_sec == 1700000000);

    /* a marker with metadata: a folder carrying the xattrs */
    struct obj_meta dm = {.has_posix = true, .mode = 040750, .uid = 5, .gid = 6,
                          .mtime_sec = 1600000000};
    char etag[OBJ_ETAG_MAX];
    CHECK_EQ_INT(obj_put(s, "b", "meta/dir/", NULL, 0, &dm, etag), 0);
    CHECK(strcmp(etag, "d41d8cd98f00b204e9800998ecf8427e") == 0);
    CHECK_EQ_INT(obj_head(s, "b", "meta/dir/", &m), 0);
    CHECK(m.has_posix && m.mode == 040750 && m.uid == 5 && m.size == 0);
    CHECK_EQ_INT(obj_head(s, "b", "meta/dir", &m), ENOENT); /* "dir" and "dir/" differ */
    CHECK_EQ_INT(obj_put(s, "b", "meta/bad/", "x", 1, NULL, NULL), EINVAL);
}

static void test_symlinks(struct objstore *s)
{
    char path[PATH_MAX * 2], buf[64];
    struct obj_meta m;
    size_t got;

    snprintf(path, sizeof(path), "%s/b/link", tmp);
    CHECK(symlink("target/file.txt", path) == 0);
    CHECK_EQ_INT(obj_head(s, "b", "link", &m), 0);
    CHECK(m.has_posix && m.mode == (S_IFLNK | 0777) && m.size == 15);
    CHECK_EQ_INT(obj_get(s, "b", "link", 0, sizeof(buf), buf, &got, NULL), 0);
    CHECK(got == 15 && memcmp(buf, "target/file.txt", 15) == 0);
    CHECK_EQ_INT(obj_get(s, "b", "link", 7, 4, buf, &got, NULL), 0);
    CHECK(got == 4 && memcmp(buf, "file", 4) == 0);

    /* putting an S_IFLNK object makes a symlink, with the mtime (and, as
       root, the owner) it was put with: read back, and kept by a copy */
    struct obj_meta lm = {.has_posix = true, .mode = S_IFLNK | 0777, .uid = 7, .gid = 8,
                          .mtime_sec = 1500000000, .mtime_nsec = 250};
    CHECK_EQ_INT(obj_put(s, "b", "made-link", "../x/y", 6, &lm, NULL), 0);
    snprintf(path, sizeof(path), "%s/b/made-link", tmp);
    ssize_t n = readlink(path, buf, sizeof(buf));
    CHECK(n == 6 && memcmp(buf, "../x/y", 6) == 0);
    bool root = geteuid() == 0;
    CHECK_EQ_INT(obj_head(s, "b", "made-link", &m), 0);
    CHECK(m.mode == (S_IFLNK | 0777) && m.mtime_sec == 1500000000 && m.mtime_nsec == 250);
    CHECK(!root || (m.uid == 7 && m.gid == 8));
    CHECK_EQ_INT(obj_copy(s, "b", "made-link", "copied-link", NULL), 0);
    CHECK_EQ_INT(obj_head(s, "b", "copied-link", &m), 0);
    CHECK(m.mode == (S_IFLNK | 0777) && m.mtime_sec == 1500000000 && m.mtime_nsec == 250);
    CHECK(!root || (m.uid == 7 && m.gid == 8));
    CHECK_EQ_INT(obj_del(s, "b", "copied-link"), 0);
}

static void test_bad_keys(struct objstore *s)
{
    static const char *const bad[] = {"", "/abs", "../b2/x", "a/../x", "./x", "a/./x",
                                      "a//b", "..", ".", "x/..", ".bucketnfs-tmp.1234",
                                      NULL};
    char buf[64], key[OBJ_KEY_MAX + 10], path[PATH_MAX * 2];
    struct obj_meta m;
    size_t got;

    for (int i = 0; bad[i]; i++) {
        CHECK_EQ_INT(obj_head(s, "b", bad[i], &m), EINVAL);
        CHECK_EQ_INT(obj_put(s, "b", bad[i], "x", 1, NULL, NULL), EINVAL);
        CHECK_EQ_INT(obj_get(s, "b", bad[i], 0, 1, buf, &got, NULL), EINVAL);
        CHECK_EQ_INT(obj_del(s, "b", bad[i]), EINVAL);
    }
    memset(key, 'k', OBJ_KEY_MAX + 1);
    key[OBJ_KEY_MAX + 1] = '\0';
    CHECK_EQ_INT(obj_put(s, "b", key, "x", 1, NULL, NULL), EINVAL);
    memset(key, 'n', 300); /* a valid S3 key whose name the file system cannot hold */
    key[300] = '\0';
    CHECK_EQ_INT(obj_put(s, "b", key, "x", 1, NULL, NULL), ENAMETOOLONG);
    CHECK_EQ_INT(obj_head(s, "..", "x", &m), EINVAL);
    CHECK_EQ_INT(obj_head(s, ".hidden", "x", &m), EINVAL);
    CHECK_EQ_INT(obj_head(s, "b/a", "x", &m), EINVAL);
    CHECK_EQ_INT(obj_head(s, "", "x", &m), EINVAL);

    /* symlinks are objects, never folders: nothing outside is read or written */
    snprintf(path, sizeof(path), "%s/secret", outside);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs("top secret", f);
        fclose(f);
    }
    snprintf(path, sizeof(path), "%s/b/evil", tmp);
    CHECK(symlink(outside, path) == 0);
    got = 99;
    CHECK(obj_get(s, "b", "evil/secret", 0, sizeof(buf), buf, &got, NULL) != 0);
    CHECK(got == 0);
    CHECK(obj_head(s, "b", "evil/secret", &m) != 0);
    CHECK(obj_put(s, "b", "evil/planted", "x", 1, NULL, NULL) != 0);
    snprintf(path, sizeof(path), "%s/planted", outside);
    CHECK(access(path, F_OK) != 0);
    struct seen sn;
    CHECK_EQ_INT(list_all(s, "evil/", "/", &sn), 0);
    CHECK_EQ_INT(sn.n, 0);
    CHECK_EQ_INT(list_all(s, "evil/", NULL, &sn), 0);
    CHECK_EQ_INT(sn.n, 0);
    /* a bucket that is a symlink is not a bucket */
    snprintf(path, sizeof(path), "%s/outbucket", tmp);
    CHECK(symlink(outside, path) == 0);
    CHECK_EQ_INT(obj_head(s, "outbucket", "secret", &m), ENOENT);
    unlink(path);
    snprintf(path, sizeof(path), "%s/b/evil", tmp);
    unlink(path);
}

static void test_list_small(struct objstore *s)
{
    struct seen sn;

    raw_mkdir("b/l");
    raw_mkdir("b/l/b"); /* an empty folder made by another tool */
    CHECK_EQ_INT(obj_put(s, "b", "l/x/1", "1", 1, NULL, NULL), 0);
    CHECK_EQ_INT(obj_put(s, "b", "l/x/2", "22", 2, NULL, NULL), 0);
    CHECK_EQ_INT(obj_put(s, "b", "l/y/deep/3", "3", 1, NULL, NULL), 0);
    CHECK_EQ_INT(obj_put(s, "b", "l/empty/", NULL, 0, NULL, NULL), 0);
    CHECK_EQ_INT(obj_put(s, "b", "l/a.txt", "aa", 2, NULL, NULL), 0);
    CHECK_EQ_INT(obj_put(s, "b", "l/x.txt", "xxx", 3, NULL, NULL), 0);
    raw_file("b/l/.bucketnfs-tmp.dead", "half-written"); /* a crashed put: hidden */

    /* with delimiter: one folder, sub-folders as common prefixes */
    CHECK_EQ_INT(list_all(s, "l/", "/", &sn), 0);
    CHECK_EQ_INT(sn.n, 6);
    int i = find(&sn, "l/x/");
    CHECK(i >= 0 && sn.prefix[i]);
    i = find(&sn, "l/empty/");
    CHECK(i >= 0 && sn.prefix[i]);
    CHECK(find(&sn, "l/y/") >= 0 && find(&sn, "l/b/") >= 0);
    i = find(&sn, "l/x.txt");
    CHECK(i >= 0 && !sn.prefix[i] && sn.meta[i].size == 3);
    CHECK(i >= 0 && strcmp(sn.meta[i].etag, "f561aaf6ef0bf14d4208bb46a4ccb3ad") == 0);
    CHECK(find(&sn, "l/a.txt") >= 0);

    /* a prefix ending mid-name filters by name */
    CHECK_EQ_INT(list_all(s, "l/x", "/", &sn), 0);
    CHECK_EQ_INT(sn.n, 2);
    CHECK(find(&sn, "l/x/") >= 0 && find(&sn, "l/x.txt") >= 0);
    CHECK_EQ_INT(list_all(s, "l/x/", "/", &sn), 0);
    CHECK(sn.n == 2 && find(&sn, "l/x/1") >= 0 && find(&sn, "l/x/2") >= 0);
    CHECK_EQ_INT(list_all(s, "l/nothing/", "/", &sn), 0);
    CHECK_EQ_INT(sn.n, 0);

    /* without delimiter: every key, S3 order, empty folders as markers */
    static const char *const all[] = {"l/a.txt", "l/b/", "l/empty/", "l/x.txt",
                                      "l/x/1", "l/x/2", "l/y/deep/3"};
    CHECK_EQ_INT(list_all(s, "l/", NULL, &sn), 0);
    CHECK_EQ_INT(sn.n, 7);
    for (size_t k = 0; k < 7 && k < sn.n; k++)
        CHECK(strcmp(sn.key[k], all[k]) == 0);
    CHECK_EQ_INT(list_all(s, "l/x", NULL, &sn), 0);
    CHECK(sn.n == 3 && strcmp(sn.key[0], "l/x.txt") == 0 && strcmp(sn.key[2], "l/x/2") == 0);
    CHECK_EQ_INT(list_all(s, "l/empty/", NULL, &sn), 0);
    CHECK(sn.n == 1 && strcmp(sn.key[0], "l/empty/") == 0 && !sn.prefix[0]);

    /* a marker put over a folder that has objects is listed too, first;
       pages of one resume after it, and deletes deepest first empty it */
    struct obj_meta dm = {.has_posix = true, .mode = 040755, .mtime_sec = 1};
    CHECK_EQ_INT(obj_put(s, "b", "mk/d/sub/f", "f", 1, NULL, NULL), 0);
    CHECK_EQ_INT(obj_put(s, "b", "mk/d/", NULL, 0, &dm, NULL), 0);
    CHECK_EQ_INT(obj_put(s, "b", "mk/d/sub/", NULL, 0, &dm, NULL), 0);
    CHECK_EQ_INT(obj_put(s, "b", "mk/d/g", "g", 1, NULL, NULL), 0);
    static const char *const mk[] = {"mk/d/", "mk/d/g", "mk/d/sub/", "mk/d/sub/f"};
    CHECK_EQ_INT(list_all(s, "mk/", NULL, &sn), 0);
    CHECK_EQ_INT(sn.n, 4);
    for (size_t k = 0; k < 4 && k < sn.n; k++)
        CHECK(strcmp(sn.key[k], mk[k]) == 0 && !sn.prefix[k]);
    CHECK_EQ_INT(list_all(s, "mk/d/", NULL, &sn), 0);
    CHECK(sn.n == 4 && strcmp(sn.key[0], "mk/d/") == 0);
    int pages = list_paged(s, "mk/", 1, &sn);
    CHECK(sn.n == 4 && pages >= 4 && pages <= 5);
    for (size_t k = 0; k < 4 && k < sn.n; k++)
        CHECK(strcmp(sn.key[k], mk[k]) == 0);
    for (int k = 3; k >= 0; k--)
        CHECK_EQ_INT(obj_del(s, "b", mk[k]), 0);
    CHECK(!raw_exists("b/mk/d"));

    /* pages of 2 without delimiter resume after the last key */
    CHECK_EQ_INT(list_paged(s, "l/", 2, &sn), 4);
    CHECK_EQ_INT(sn.n, 7);
    for (size_t k = 0; k < 7 && k < sn.n; k++)
        CHECK(strcmp(sn.key[k], all[k]) == 0);

    char next[OBJ_TOKEN_MAX];
    CHECK_EQ_INT(obj_list(s, "b", "l/", ",", NULL, 10, collect, &sn, next), ENOTSUP);
    CHECK_EQ_INT(obj_list(s, "b", "../", "/", NULL, 10, collect, &sn, next), EINVAL);
    CHECK_EQ_INT(obj_list(s, "nobucket", "", "/", NULL, 10, collect, &sn, next), ENOENT);
    CHECK_EQ_INT(obj_list(s, "b", "l/", "/", "Dzz", 10, collect, &sn, next), EINVAL);
}

/* Bitmap collector for the big listings: keys "<dir>/f<number>". */
struct bigseen {
    const char *dir;
    unsigned char *count;
    size_t n, max, dups, strays, calls;
};

static int collect_big(void *arg, const struct obj_entry *e)
{
    struct bigseen *b = arg;
    size_t dl = strlen(b->dir);
    char *end;
    b->calls++;
    if (strncmp(e->key, b->dir, dl) != 0 || e->key[dl] != 'f') {
        b->strays++;
        return 0;
    }
    unsigned long v = strtoul(e->key + dl + 1, &end, 10);
    if (*end || v >= b->max) {
        b->strays++;
        return 0;
    }
    if (b->count[v]++)
        b->dups++;
    b->n++;
    return 0;
}

/* Create n files root/b/dir/f0..f(n-1) directly (another tool filling the bucket). */
static void make_many(const char *root, const char *dir, size_t n)
{
    char path[PATH_MAX * 2];
    snprintf(path, sizeof(path), "%s/b/%s", root, dir);
    mkdir(path, 0755);
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s/b/%sf%zu", root, dir, i);
        int fd = open(path, O_WRONLY | O_CREAT, 0644);
        if (fd < 0) {
            perror(path);
            exit(2);
        }
        close(fd);
    }
}

/* Page through dir with max 1000; returns pages used. */
static int page_through(struct objstore *s, const char *dir, const char *delim, size_t n,
                        struct bigseen *b)
{
    char tok[OBJ_TOKEN_MAX] = "", next[OBJ_TOKEN_MAX];
    memset(b, 0, sizeof(*b));
    b->dir = dir;
    b->max = n;
    b->count = calloc(n, 1);
    int pages = 0;
    while (pages < 1000) {
        size_t before = b->calls;
        int rc = obj_list(s, "b", dir, delim, tok, 1000, collect_big, b, next);
        pages++;
        if (rc || b->calls - before > 1000) {
            CHECK(!"page within max_keys and no error");
            break;
        }
        if (!next[0])
            break;
        strcpy(tok, next);
    }
    return pages;
}

static void test_list_big(struct objstore *s)
{
    struct bigseen b;
    int pages;

    make_many(tmp, "mid/", 2500);
    pages = page_through(s, "mid/", "/", 2500, &b);
    CHECK_EQ_INT(pages, 3);
    CHECK(b.n == 2500 && b.dups == 0 && b.strays == 0);
    free(b.count);
    pages = page_through(s, "mid/", NULL, 2500, &b);
    CHECK_EQ_INT(pages, 3);
    CHECK(b.n == 2500 && b.dups == 0 && b.strays == 0);
    free(b.count);

    /*
     * The 100,000-entry folder goes to tmpfs when there is one: creating
     * that many inodes on a busy disk takes minutes, and what is tested
     * here is the store's paging, not the disk.
     */
    char root[PATH_MAX], path[PATH_MAX + 8];
    snprintf(root, sizeof(root), "/dev/shm/test_dirstore_huge.XXXXXX");
    if (access("/dev/shm", W_OK) != 0 || !mkdtemp(root))
        snprintf(root, sizeof(root), "%s", tmp);
    snprintf(path, sizeof(path), "%s/b", root);
    mkdir(path, 0755);
    struct conf_store c = {.name = "huge", .type = CONF_STORE_DIR, .root = root};
    struct objstore *hs = obj_create(&c);
    CHECK(hs != NULL);
    if (!hs)
        return;
    double t0 = now();
    make_many(root, "huge/", 100000);
    double t1 = now();
    pages = page_through(hs, "huge/", "/", 100000, &b);
    double t2 = now();
    CHECK_EQ_INT(pages, 100);
    CHECK(b.n == 100000 && b.dups == 0 && b.strays == 0);
    free(b.count);
    printf("100,000-entry folder: created in %.2f s, listed with delimiter in %d pages in %.2f s\n",
           t1 - t0, pages, t2 - t1);
    obj_destroy(hs);
    if (strcmp(root, tmp) != 0) {
        char cmd[PATH_MAX + 16];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", root);
    }
}

static void test_multipart(struct objstore *s)
{
    const struct obj_ops *o = s->ops;
    char id[OBJ_UPLOAD_ID_MAX], e1[OBJ_ETAG_MAX], e2[OBJ_ETAG_MAX], etag[OBJ_ETAG_MAX];
    size_t len = 100000, got, n;
    char *p1 = malloc(len), *p2 = malloc(len), *out = malloc(2 * len + 10);
    struct obj_part parts[4];
    struct obj_meta meta = {.has_posix = true, .mode = 0100600, .uid = 42, .gid = 43,
                            .mtime_sec = 1650000000};
    struct obj_meta m;

    memset(p1, 'A', len);
    memset(p2, 'B', len);
    CHECK_EQ_INT(o->mp_create(s, "b", "mp/big.bin", &meta, id), 0);
    CHECK_EQ_INT(strlen(id), 32);
    CHECK_EQ_INT(o->mp_put_part(s, "b", "mp/big.bin", id, 2, p2, len, e2), 0); /* any order */
    CHECK_EQ_INT(o->mp_put_part(s, "b", "mp/big.bin", id, 1, p1, len, e1), 0);
    CHECK_EQ_INT(o->mp_list_parts(s, "b", "mp/big.bin", id, parts, 4, &n), 0);
    CHECK_EQ_INT(n, 2);
    CHECK(n == 2 && parts[0].number == 1 && parts[1].number == 2 && parts[0].size == len &&
          strcmp(parts[0].etag, e1) == 0 && strcmp(parts[1].etag, e2) == 0);
    CHECK_EQ_INT(obj_head(s, "b", "mp/big.bin", &m), ENOENT); /* nothing visible yet */
    /* an upload is bound to its key, and parts are checked */
    CHECK_EQ_INT(o->mp_put_part(s, "b", "mp/other", id, 3, p1, 10, etag), ENOENT);
    CHECK_EQ_INT(o->mp_put_part(s, "b", "mp/big.bin", "../../etc", 3, p1, 10, etag), EINVAL);
    struct obj_part wrong[2] = {{1, "", 0}, {2, "", 0}};
    strcpy(wrong[0].etag, e1);
    strcpy(wrong[1].etag, e1);
    CHECK_EQ_INT(o->mp_complete(s, "b", "mp/big.bin", id, wrong, 2, etag), EINVAL);
    struct obj_part backwards[2] = {parts[1], parts[0]};
    CHECK_EQ_INT(o->mp_complete(s, "b", "mp/big.bin", id, backwards, 2, etag), EINVAL);

    snprintf(parts[0].etag, sizeof(parts[0].etag), "\"%.32s\"", e1); /* quoted, as S3 returns */
    CHECK_EQ_INT(o->mp_complete(s, "b", "mp/big.bin", id, parts, 2, etag), 0);
    CHECK(strlen(etag) == 34 && strcmp(etag + 32, "-2") == 0);
    CHECK_EQ_INT(obj_get(s, "b", "mp/big.bin", 0, 2 * len + 10, out, &got, &m), 0);
    CHECK_EQ_INT(got, 2 * len);
    CHECK(memcmp(out, p1, len) == 0 && memcmp(out + len, p2, len) == 0);
    CHECK(m.has_posix && m.mode == 0100600 && m.uid == 42 && strcmp(m.etag, etag) == 0);
    /* the upload is gone */
    CHECK_EQ_INT(o->mp_list_parts(s, "b", "mp/big.bin", id, parts, 4, &n), ENOENT);

    /* abort throws the parts away */
    CHECK_EQ_INT(o->mp_create(s, "b", "mp/aborted", NULL, id), 0);
    CHECK_EQ_INT(o->mp_put_part(s, "b", "mp/aborted", id, 1, p1, 10, e1), 0);
    CHECK_EQ_INT(o->mp_abort(s, "b", "mp/aborted", id), 0);
    CHECK_EQ_INT(o->mp_put_part(s, "b", "mp/aborted", id, 2, p1, 10, e1), ENOENT);
    CHECK_EQ_INT(obj_head(s, "b", "mp/aborted", &m), ENOENT);
    char path[PATH_MAX * 2];
    snprintf(path, sizeof(path), "%s/.bucketnfs-uploads/%s", tmp, id);
    CHECK(access(path, F_OK) != 0);
    free(p1);
    free(p2);
    free(out);
}

static void test_put_file(struct objstore *s)
{
    size_t n = (3 << 20) + 123;
    unsigned char *data = malloc(n);
    struct obj_meta in = {.has_posix = true,
                          .mode = 0100640,
                          .uid = 1000,
                          .gid = 1001,
                          .mtime_sec = 1700000000,
                          .mtime_nsec = 5};
    struct obj_meta m;
    char etag[OBJ_ETAG_MAX], want[OBJ_ETAG_MAX];
    test_fill(data, n, 3);
    int fd = test_staging_file(outside, data, n);
    CHECK(lseek(fd, 17, SEEK_SET) == 17);
    uint64_t puts0 = s->stats.puts, out0 = s->stats.bytes_out;

    /* The whole file: the same bytes, ETag and metadata as a put of them. */
    CHECK_EQ_INT(obj_put_file(s, "b", "pf/whole.bin", fd, 0, n, &in, etag), 0);
    CHECK_EQ_INT(obj_put(s, "b", "pf/from-memory.bin", data, n, NULL, want), 0);
    CHECK(strcmp(etag, want) == 0);
    CHECK(test_holds(s, "b", "pf/whole.bin", data, n));
    CHECK_EQ_INT(obj_head(s, "b", "pf/whole.bin", &m), 0);
    CHECK(m.has_posix && m.mode == 0100640 && m.uid == 1000 && m.gid == 1001);
    CHECK(m.mtime_sec == 1700000000 && m.mtime_nsec == 5 && strcmp(m.etag, etag) == 0);
    CHECK_EQ_INT(s->stats.puts - puts0, 2);
    CHECK_EQ_INT(s->stats.bytes_out - out0, 2 * n);
    CHECK_EQ_INT(lseek(fd, 0, SEEK_CUR), 17); /* pread: the caller's offset stays */

    /* A range that does not start or end on a buffer boundary. */
    CHECK_EQ_INT(obj_put_file(s, "b", "pf/range.bin", fd, 1000, (1 << 20) + 7, NULL, NULL), 0);
    CHECK(test_holds(s, "b", "pf/range.bin", data + 1000, (1 << 20) + 7));
    CHECK_EQ_INT(obj_put_file(s, "b", "pf/empty", fd, n, 0, NULL, etag), 0);
    CHECK(strcmp(etag, "d41d8cd98f00b204e9800998ecf8427e") == 0);
    CHECK(test_holds(s, "b", "pf/empty", data, 0));

    /* A range past the file's end: nothing is written, the old object stays. */
    CHECK_EQ_INT(obj_put_file(s, "b", "pf/range.bin", fd, n - 10, 11, NULL, NULL), EIO);
    CHECK(test_holds(s, "b", "pf/range.bin", data + 1000, (1 << 20) + 7));
    CHECK_EQ_INT(obj_put_file(s, "b", "pf/never", fd, n + 1, 5, NULL, NULL), EIO);
    CHECK_EQ_INT(obj_head(s, "b", "pf/never", &m), ENOENT);
    CHECK_EQ_INT(obj_put_file(s, "b", "pf/never", fd, UINT64_MAX - 2, 5, NULL, NULL), EINVAL);
    CHECK_EQ_INT(obj_put_file(s, "b", "pf/never", -1, 0, 5, NULL, NULL), EINVAL);

    /* Markers and symlinks, as put makes them. */
    CHECK_EQ_INT(obj_put_file(s, "b", "pf/dir/", fd, 0, 0, NULL, NULL), 0);
    CHECK_EQ_INT(obj_head(s, "b", "pf/dir/", &m), 0);
    CHECK_EQ_INT(obj_put_file(s, "b", "pf/bad/", fd, 0, 1, NULL, NULL), EINVAL);
    int lfd = test_staging_file(outside, "xx../target/file", 16);
    struct obj_meta lm = {.has_posix = true, .mode = S_IFLNK | 0777};
    CHECK_EQ_INT(obj_put_file(s, "b", "pf/link", lfd, 2, 14, &lm, NULL), 0);
    char path[PATH_MAX * 2], t[64];
    snprintf(path, sizeof(path), "%s/b/pf/link", tmp);
    ssize_t tl = readlink(path, t, sizeof(t));
    CHECK(tl == 14 && memcmp(t, "../target/file", 14) == 0);
    close(lfd);
    close(fd);
    free(data);
}

/* A multipart upload mixing parts from a file and parts copied from another object. */
static void test_multipart_file(struct objstore *s)
{
    const struct obj_ops *o = s->ops;
    size_t fn = 3 << 20, sn = (5 << 19) + 99; /* 3 MiB file, 2.5 MiB + 99 source */
    unsigned char *fdata = malloc(fn), *sdata = malloc(sn), *want = malloc(fn + sn);
    struct obj_meta meta = {.has_posix = true,
                            .mode = 0100600,
                            .uid = 7,
                            .gid = 8,
                            .mtime_sec = 1650000000,
                            .mtime_nsec = 42};
    struct obj_meta m;
    struct obj_part parts[4], listed[8];
    char id[OBJ_UPLOAD_ID_MAX], src_etag[OBJ_ETAG_MAX], etag[OBJ_ETAG_MAX], e[OBJ_ETAG_MAX];
    size_t n, w = 0;
    test_fill(fdata, fn, 11);
    test_fill(sdata, sn, 12);
    int fd = test_staging_file(outside, fdata, fn);
    CHECK_EQ_INT(obj_put(s, "b", "mpf/src.bin", sdata, sn, NULL, src_etag), 0);

    CHECK_EQ_INT(o->mp_create(s, "b", "mpf/out.bin", &meta, id), 0);
    uint64_t mp0 = s->stats.mp_ops, out0 = s->stats.bytes_out;
    /* 1: file [0, 1 MiB)   2: source [100, 100 + 1 MiB)   3: file [1 MiB + 5, 3 MiB)
     * 4: source [2 MiB, end) */
    struct {
        bool copy;
        uint64_t off, len;
    } plan[4] = {{false, 0, 1 << 20},
                 {true, 100, 1 << 20},
                 {false, (1 << 20) + 5, (2 << 20) - 5},
                 {true, 2 << 20, sn - (2 << 20)}};
    for (int i = 0; i < 4; i++) {
        parts[i].number = (uint32_t)i + 1;
        parts[i].size = plan[i].len;
        if (plan[i].copy) {
            CHECK_EQ_INT(obj_mp_copy_part(s, "b", "mpf/out.bin", id, parts[i].number, "mpf/src.bin",
                                          i == 1 ? src_etag : NULL, plan[i].off, plan[i].len,
                                          parts[i].etag),
                         0);
            memcpy(want + w, sdata + plan[i].off, plan[i].len);
        } else {
            CHECK_EQ_INT(obj_mp_put_part_file(s, "b", "mpf/out.bin", id, parts[i].number, fd,
                                              plan[i].off, plan[i].len, parts[i].etag),
                         0);
            memcpy(want + w, fdata + plan[i].off, plan[i].len);
        }
        /* Each part's ETag is the MD5 of its bytes, as put would give. */
        CHECK_EQ_INT(obj_put(s, "b", "mpf/scratch", want + w, plan[i].len, NULL, e), 0);
        CHECK(strcmp(parts[i].etag, e) == 0);
        w += plan[i].len;
    }
    CHECK_EQ_INT(s->stats.mp_ops - mp0, 4);
    CHECK_EQ_INT(s->stats.bytes_out - out0, (1 << 20) + (2 << 20) - 5 + w); /* + the scratch puts */
    CHECK_EQ_INT(o->mp_list_parts(s, "b", "mpf/out.bin", id, listed, 8, &n), 0);
    CHECK_EQ_INT(n, 4);
    for (size_t i = 0; i < n && i < 4; i++)
        CHECK(listed[i].size == parts[i].size && strcmp(listed[i].etag, parts[i].etag) == 0);

    /* What is refused, and leaves the upload as it was. */
    CHECK_EQ_INT(obj_mp_copy_part(s, "b", "mpf/out.bin", id, 5, "mpf/src.bin",
                                  "0123456789abcdef0123456789abcdef", 0, 10, e),
                 ESTALE);
    CHECK_EQ_INT(obj_mp_copy_part(s, "b", "mpf/out.bin", id, 5, "mpf/src.bin", NULL, sn - 5, 6, e),
                 EINVAL);
    CHECK_EQ_INT(obj_mp_copy_part(s, "b", "mpf/out.bin", id, 5, "mpf/src.bin", NULL, 0, 0, e),
                 EINVAL);
    CHECK_EQ_INT(obj_mp_copy_part(s, "b", "mpf/out.bin", id, 5, "mpf/absent", NULL, 0, 1, e),
                 ENOENT);
    CHECK_EQ_INT(obj_mp_copy_part(s, "b", "mpf/out.bin", id, 5, "mpf/", NULL, 0, 1, e), EINVAL);
    CHECK_EQ_INT(obj_mp_copy_part(s, "b", "mpf/other", id, 5, "mpf/src.bin", NULL, 0, 1, e),
                 ENOENT); /* the upload belongs to another key */
    CHECK_EQ_INT(obj_mp_put_part_file(s, "b", "mpf/out.bin", id, 5, fd, fn - 1, 2, e), EIO);
    CHECK_EQ_INT(o->mp_list_parts(s, "b", "mpf/out.bin", id, listed, 8, &n), 0);
    CHECK_EQ_INT(n, 4);

    CHECK_EQ_INT(o->mp_complete(s, "b", "mpf/out.bin", id, parts, 4, etag), 0);
    CHECK(strlen(etag) == 34 && strcmp(etag + 32, "-4") == 0);
    CHECK(test_holds(s, "b", "mpf/out.bin", want, w));
    CHECK_EQ_INT(obj_head(s, "b", "mpf/out.bin", &m), 0);
    CHECK(m.has_posix && m.mode == 0100600 && m.uid == 7 && m.gid == 8);
    CHECK(m.mtime_sec == 1650000000 && m.mtime_nsec == 42 && m.size == w);
    CHECK(test_holds(s, "b", "mpf/src.bin", sdata, sn)); /* the source is untouched */
    close(fd);
    free(fdata);
    free(sdata);
    free(want);
}

static void test_copy_delete(struct objstore *s)
{
    struct obj_meta m;
    char buf[32];
    size_t got;

    /* copy keeps content and metadata */
    CHECK_EQ_INT(obj_copy(s, "b", "meta/f.bin", "copies/f.bin", NULL), 0);
    CHECK_EQ_INT(obj_get(s, "b", "copies/f.bin", 0, sizeof(buf), buf, &got, &m), 0);
    CHECK(got == 4 && memcmp(buf, "data", 4) == 0);
    CHECK(m.has_posix && m.mode == 0100640 && m.uid == 1000);
    /* copy with new metadata replaces it */
    struct obj_meta nm = {.has_posix = true, .mode = 0100444, .uid = 9, .gid = 9,
                          .mtime_sec = 1000};
    CHECK_EQ_INT(obj_copy(s, "b", "copies/f.bin", "copies/f.bin", &nm), 0);
    CHECK_EQ_INT(obj_head(s, "b", "copies/f.bin", &m), 0);
    CHECK(m.mode == 0100444 && m.uid == 9 && m.size == 4);
    CHECK_EQ_INT(obj_copy(s, "b", "link", "copies/link", NULL), 0);
    CHECK_EQ_INT(obj_head(s, "b", "copies/link", &m), 0);
    CHECK(m.mode == (S_IFLNK | 0777));
    CHECK_EQ_INT(obj_copy(s, "b", "absent", "copies/x", NULL), ENOENT);

    /* delete */
    CHECK_EQ_INT(obj_del(s, "b", "copies/f.bin"), 0);
    CHECK_EQ_INT(obj_head(s, "b", "copies/f.bin", &m), ENOENT);
    CHECK_EQ_INT(obj_del(s, "b", "copies/f.bin"), 0); /* absent: fine, like S3 */
    CHECK_EQ_INT(obj_del(s, "b", "no/such/dir/x"), 0);
    CHECK_EQ_INT(obj_del(s, "b", "copies/link"), 0);
    CHECK(!raw_exists("b/copies/link"));
    CHECK_EQ_INT(obj_head(s, "b", "copies/", &m), 0); /* emptied folder: its marker remains */
    CHECK_EQ_INT(obj_del(s, "b", "copies/"), 0);
    CHECK(!raw_exists("b/copies"));
    CHECK_EQ_INT(obj_del(s, "b", "l/x/"), 0); /* not empty: the folder stays */
    CHECK(raw_exists("b/l/x/1"));
    CHECK_EQ_INT(obj_del(s, "b", "l/x"), 0); /* "l/x" is no object: nothing happens */
    CHECK(raw_exists("b/l/x/1"));
}

static void test_latency(void)
{
    struct objstore *s = store_new(400, "slow/", 0.0);
    struct obj_meta m;
    double t0 = now();
    CHECK_EQ_INT(obj_head(s, "b", "slow/x", &m), ENOENT);
    double t1 = now();
    CHECK_EQ_INT(obj_head(s, "b", "hello.txt", &m), 0);
    double t2 = now();
    CHECK(t1 - t0 >= 0.4);
    CHECK(t2 - t1 < 0.4); /* did not wait like the slow one */
    obj_destroy(s);
}

static void test_failures(void)
{
    struct objstore *s = store_new(0, NULL, 1.0);
    struct obj_meta m;
    struct seen sn;
    char buf[8], next[OBJ_TOKEN_MAX], id[OBJ_UPLOAD_ID_MAX] = "", etag[OBJ_ETAG_MAX];
    size_t got;
    int old = log_level;
    log_level = LOG_ERR; /* the warnings are expected */
    CHECK_EQ_INT(obj_head(s, "b", "hello.txt", &m), EIO);
    CHECK_EQ_INT(obj_get(s, "b", "hello.txt", 0, 1, buf, &got, NULL), EIO);
    CHECK_EQ_INT(obj_list(s, "b", "", "/", NULL, 10, collect, &sn, next), EIO);
    CHECK_EQ_INT(obj_put(s, "b", "f", "x", 1, NULL, NULL), EIO);
    CHECK_EQ_INT(obj_copy(s, "b", "hello.txt", "f2", NULL), EIO);
    CHECK_EQ_INT(obj_del(s, "b", "hello.txt"), EIO);
    CHECK_EQ_INT(s->ops->mp_create(s, "b", "f", NULL, id), EIO);
    CHECK_EQ_INT(obj_put_file(s, "b", "f", 0, 0, 0, NULL, NULL), EIO);
    CHECK_EQ_INT(obj_mp_put_part_file(s, "b", "f", id, 1, 0, 0, 0, etag), EIO);
    CHECK_EQ_INT(obj_mp_copy_part(s, "b", "f", id, 1, "hello.txt", NULL, 0, 1, etag), EIO);
    log_level = old;
    CHECK_EQ_INT(s->stats.errors, 10);
    CHECK(!raw_exists("b/f") && raw_exists("b/hello.txt"));
    obj_destroy(s);

    /* a rate of 0.5 fails some calls and not others */
    s = store_new(0, NULL, 0.5);
    log_level = LOG_ERR;
    int fails = 0;
    for (int i = 0; i < 200; i++)
        fails += obj_head(s, "b", "hello.txt", &m) == EIO;
    log_level = old;
    CHECK(fails > 20 && fails < 180);
    obj_destroy(s);
}

struct reader {
    struct objstore *s;
    const unsigned char *want;
    size_t size;
    int errors;
    unsigned seed;
};

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    unsigned char buf[8192];
    for (int i = 0; i < 300; i++) {
        size_t off = (size_t)rand_r(&r->seed) % r->size, got;
        size_t len = 1 + (size_t)rand_r(&r->seed) % sizeof(buf);
        if (obj_get(r->s, "b", "conc/blob", off, len, buf, &got, NULL) != 0) {
            r->errors++;
            continue;
        }
        size_t expect = off + len > r->size ? r->size - off : len;
        if (got != expect || memcmp(buf, r->want + off, got) != 0)
            r->errors++;
    }
    return NULL;
}

static void test_concurrent(struct objstore *s)
{
    size_t size = 1 << 20;
    unsigned char *blob = malloc(size);
    for (size_t i = 0; i < size; i++)
        blob[i] = (unsigned char)(i * 2654435761u >> 13);
    CHECK_EQ_INT(obj_put(s, "b", "conc/blob", blob, size, NULL, NULL), 0);
    pthread_t th[8];
    struct reader r[8];
    uint64_t gets0 = s->stats.gets;
    for (int i = 0; i < 8; i++) {
        r[i] = (struct reader){s, blob, size, 0, (unsigned)i + 1};
        pthread_create(&th[i], NULL, reader_main, &r[i]);
    }
    int errors = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        errors += r[i].errors;
    }
    CHECK_EQ_INT(errors, 0);
    CHECK_EQ_INT(s->stats.gets - gets0, 8 * 300);
    free(blob);
}

/* list_posix = false: listings as S3's (no POSIX metadata), HEAD unchanged. */
static void test_list_bare(void)
{
    struct conf_store c = {.name = "bare", .type = CONF_STORE_DIR, .root = tmp, .list_bare = true};
    struct objstore *s = obj_create(&c);
    CHECK(s != NULL);
    if (!s)
        return;
    CHECK(!s->list_is_head);
    static struct seen seen;
    CHECK_EQ_INT(list_all(s, "meta/", "/", &seen), 0);
    bool found = false;
    for (unsigned i = 0; i < seen.n && i < MAXSEEN; i++) {
        if (strcmp(seen.key[i], "meta/f.bin") == 0) {
            found = true;
            CHECK(!seen.meta[i].has_posix);
            CHECK_EQ_INT(seen.meta[i].size, 4);
        }
    }
    CHECK(found);
    struct obj_meta m;
    CHECK_EQ_INT(obj_head(s, "b", "meta/f.bin", &m), 0);
    CHECK(m.has_posix && m.mode == 0100640);
    obj_destroy(s);
}

int main(void)
{
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(tmp, sizeof(tmp), "%s/test_dirstore.XXXXXX", base);
    snprintf(outside, sizeof(outside), "%s/test_dirstore_out.XXXXXX", base);
    if (!mkdtemp(tmp) || !mkdtemp(outside)) {
        perror("mkdtemp");
        return 2;
    }
    log_init("test_dirstore", 1, LOG_ERR); /* expected failures would be noise */
    raw_mkdir("b");

    struct objstore *s = store_new(0, NULL, 0.0);
    test_put_get_head(s);
    test_metadata(s);
    test_symlinks(s);
    test_bad_keys(s);
    test_list_small(s);
    test_list_big(s);
    test_multipart(s);
    test_put_file(s);
    test_multipart_file(s);
    test_copy_delete(s);
    test_concurrent(s);
    CHECK(s->stats.puts > 0 && s->stats.bytes_in > 0 && s->stats.bytes_out > 0);
    obj_destroy(s);
    test_latency();
    test_failures();
    test_list_bare();

    char cmd[PATH_MAX * 2 + 32];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", tmp, outside);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp);
    return TEST_DONE();
}
