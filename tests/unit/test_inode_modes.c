/*
 * test_inode_modes.c - what `ls -l` costs in store requests, by export
 * option: posix_metadata "own" (a listing is as good as a HEAD), parallel
 * HEADs ahead of READDIRPLUS, and the consistency modes (immutable, strict),
 * against the in-memory store double (teststore.h) made to list like S3
 * (no POSIX metadata in listings) and, where it matters, slow to HEAD.
 *
 * `ls -l` of a directory, as the Linux client does it: READDIRPLUS from
 * cookie 0 to the end, then LOOKUP and GETATTR of every entry.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "meta/inode.h"
#include "tests/unit/testlib.h"
#include "tests/unit/teststore.h"

static char state_dir[512];

/* Store requests so far (list + head). */
struct reqs {
    unsigned lists, heads;
};

static struct reqs reqs_now(struct tstore *s)
{
    struct reqs r = {atomic_load(&s->lists), atomic_load(&s->heads)};
    return r;
}

/* READDIRPLUS entries: names and attributes (the walk keeps at most NAMES_MAX). */
#define NAMES_MAX 4096
struct walk {
    unsigned n, unconfirmed, room;
    uint64_t last_cookie;
    char (*names)[32];
    struct inode_attr *attrs;
};

static int walk_cb(void *arg, const char *name, uint64_t cookie, const struct inode_attr *a)
{
    struct walk *w = arg;
    if (w->room == 0)
        return 1; /* the reply is full: continue from the last cookie */
    w->room--;
    w->last_cookie = cookie;
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return 0;
    if (w->n < NAMES_MAX) {
        snprintf(w->names[w->n], sizeof(w->names[0]), "%s", name);
        w->attrs[w->n] = *a;
    }
    w->n++;
    if (a->unconfirmed)
        w->unconfirmed++;
    return 0;
}

/* A READDIRPLUS walk of dir in replies of `per_reply` entries: the entries seen (0 on an error). */
static unsigned rdplus(struct inode_table *t, const struct meta_export *e, uint64_t dir,
                       unsigned per_reply, struct walk *w)
{
    bool eof = false;
    uint64_t verf = 0, cookie = 0;
    w->n = w->unconfirmed = 0;
    for (int calls = 0; !eof && calls < 100000; calls++) {
        w->room = per_reply;
        w->last_cookie = cookie;
        int rc = inode_readdirplus(t, e, dir, cookie, walk_cb, w, &eof, &verf);
        CHECK_EQ_INT(rc, 0);
        if (rc)
            return 0;
        cookie = w->last_cookie;
    }
    return w->n;
}

/*
 * `ls -l` of dir: READDIRPLUS in replies of `per_reply` entries, then
 * LOOKUP + GETATTR of each name.  Returns the entries seen (0 on an error).
 */
static unsigned ls_l(struct inode_table *t, const struct meta_export *e, uint64_t dir,
                     unsigned per_reply, struct walk *w)
{
    if (rdplus(t, e, dir, per_reply, w) == 0)
        return 0;
    unsigned n = w->n < NAMES_MAX ? w->n : NAMES_MAX;
    for (unsigned i = 0; i < n; i++) {
        struct inode_attr a, g;
        int rc = inode_lookup(t, e, dir, w->names[i], &a, NULL);
        if (rc == 0)
            rc = inode_getattr(t, e, a.ino, &g);
        if (rc) {
            CHECK_EQ_INT(rc, 0);
            return 0;
        }
    }
    return w->n;
}

static struct walk *walk_new(void)
{
    struct walk *w = calloc(1, sizeof(*w));
    w->names = calloc(NAMES_MAX, sizeof(w->names[0]));
    w->attrs = calloc(NAMES_MAX, sizeof(w->attrs[0]));
    if (!w || !w->names || !w->attrs)
        abort();
    return w;
}

static void walk_free(struct walk *w)
{
    free(w->names);
    free(w->attrs);
    free(w);
}

/* n foreign objects prefix + "f%05d" of (i % 7) * 100 bytes, no POSIX metadata. */
static void fill(struct tstore *s, const char *prefix, unsigned n)
{
    char key[128], etag[32];
    for (unsigned i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "%sf%05u", prefix, i);
        snprintf(etag, sizeof(etag), "e%u", i);
        ts_put(s, key, (i % 7) * 100, etag);
    }
}

static uint64_t subdir(struct inode_table *t, const struct meta_export *e, uint64_t dir,
                       const char *name)
{
    struct inode_attr a;
    CHECK_EQ_INT(inode_lookup(t, e, dir, name, &a, NULL), 0);
    return a.ino;
}

/* ---- posix_metadata = "own" ------------------------------------------------------- */

/*
 * 2500 foreign objects: `ls -l` costs the LIST pages (3) plus a constant,
 * no HEAD, and every entry has the export's mode and owner and the
 * listing's size.
 */
static void test_own_ls_l(struct inode_table *t, struct tstore *s, uint32_t id)
{
    enum { N = 2500 };
    fill(s, "own/d/", N);
    struct meta_export e = ts_export(s, id, "own/", 3600);
    e.posix_own = true;
    struct inode_attr root;
    CHECK_EQ_INT(inode_root(t, &e, &root), 0);
    uint64_t d = subdir(t, &e, root.ino, "d");
    struct walk *w = walk_new();
    struct reqs r0 = reqs_now(s);
    CHECK_EQ_INT(ls_l(t, &e, d, 200, w), N);
    struct reqs r1 = reqs_now(s);
    CHECK_EQ_INT(r1.heads - r0.heads, 0);
    CHECK_EQ_INT(r1.lists - r0.lists, (N + 999) / 1000); /* PAGE_MAX entries a page */
    CHECK_EQ_INT(w->unconfirmed, 0);
    CHECK_EQ_INT(w->attrs[10].mode, S_IFREG | 0644);
    CHECK_EQ_INT(w->attrs[10].uid, 10);
    CHECK_EQ_INT(w->attrs[10].gid, 20);
    CHECK_EQ_INT(w->attrs[10].size, (10 % 7) * 100);
    printf("posix_metadata own: ls -l of %d foreign objects: %u LIST, %u HEAD\n", N,
           r1.lists - r0.lists, r1.heads - r0.heads);

    /* A second `ls -l` within the TTL: nothing; and a missing name neither. */
    CHECK_EQ_INT(ls_l(t, &e, d, 500, w), N);
    struct inode_attr a;
    CHECK_EQ_INT(inode_lookup(t, &e, d, "nope", &a, NULL), ENOENT);
    struct reqs r2 = reqs_now(s);
    CHECK_EQ_INT(r2.lists - r1.lists, 0);
    CHECK_EQ_INT(r2.heads - r1.heads, 0);
    walk_free(w);
}

/* What the uploader does: put ino's object and report it uploaded. */
static void upload(struct inode_table *t, struct tstore *s, uint64_t ino, const char *etag)
{
    struct inode_attr a;
    struct inode_dirty d;
    char key[OBJ_KEY_MAX + 1];
    bool clean = false, moved = false;
    CHECK_EQ_INT(inode_upload_get(t, ino, &a, key, &d), 0);
    CHECK_EQ_INT(inode_upload_begin(t, ino), 0);
    ts_put(s, key, a.size, etag);
    ts_posix(s, key, a.mode, a.uid, a.gid); /* what our PUT carries (listings hide it) */
    CHECK_EQ_INT(inode_upload_done(t, ino, d.dver, key, etag, &clean, &moved), 0);
    inode_upload_end(t, ino);
    CHECK(clean);
}

/*
 * A file this server wrote keeps the mode and owner it was given through
 * re-listings that carry none; when another tool rewrites it (another
 * ETag), the listing's size and the export's defaults replace them.  Past
 * the TTL a file is fresh while its directory's listing is: no HEAD.
 */
static void test_own_written_here(struct inode_table *t, struct tstore *s, uint32_t id)
{
    struct meta_export e = ts_export(s, id, "ownw/", 1);
    e.posix_own = true;
    e.writeback_delay = 0;
    ts_put(s, "ownw/other", 5, "o1");
    struct inode_attr root, f, a;
    CHECK_EQ_INT(inode_root(t, &e, &root), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "other", &a, NULL), 0);
    bool existed = false;
    CHECK_EQ_INT(inode_create(t, &e, root.ino, "mine", S_IFREG | 0600, 7, 8, 0, INODE_UNCHECKED,
                              0, &f, &existed, NULL, NULL),
                 0);
    upload(t, s, f.ino, "m1");
    CHECK_EQ_INT(inode_refresh(t, &e, root.ino, true), 0);
    CHECK_EQ_INT(inode_getattr(t, &e, f.ino, &a), 0);
    CHECK_EQ_INT(a.mode, S_IFREG | 0600);
    CHECK_EQ_INT(a.uid, 7);
    CHECK_EQ_INT(a.gid, 8);
    CHECK(!a.unconfirmed);

    /*
     * Renamed here: the copy's ETag is the store's to say (multipart copies
     * get new ones), so a listing showing another ETag for it does not reset
     * the mode and owner this server set; its HEAD decides.
     */
    struct inode_attr none, r;
    CHECK_EQ_INT(inode_rename(t, &e, root.ino, "mine", root.ino, "moved", &none, NULL, NULL,
                              NULL, NULL),
                 0);
    ts_put(s, "ownw/moved", 0, "copy-etag"); /* POSIX metadata kept by the copy */
    CHECK_EQ_INT(inode_refresh(t, &e, root.ino, true), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "moved", &r, NULL), 0);
    CHECK_EQ_INT(r.mode, S_IFREG | 0600);
    CHECK_EQ_INT(r.uid, 7);
    CHECK(strcmp(r.etag, "copy-etag") == 0);
    CHECK_EQ_INT(inode_rename(t, &e, root.ino, "moved", root.ino, "mine", &none, NULL, NULL,
                              NULL, NULL),
                 0);
    CHECK_EQ_INT(inode_getattr(t, &e, f.ino, &a), 0);

    /* Rewritten by another tool: new size, the export's mode and owner. */
    ts_put(s, "ownw/mine", 4096, "m2");
    pthread_mutex_lock(&s->mu);
    s->v[ts_lower(s, "ownw/mine")].meta.has_posix = false;
    pthread_mutex_unlock(&s->mu);
    CHECK_EQ_INT(inode_refresh(t, &e, root.ino, true), 0);
    struct reqs r0 = reqs_now(s);
    CHECK_EQ_INT(inode_getattr(t, &e, f.ino, &a), 0);
    CHECK_EQ_INT(a.size, 4096);
    CHECK_EQ_INT(a.mode, S_IFREG | 0644);
    CHECK_EQ_INT(a.uid, 10);
    CHECK_EQ_INT(a.gid, 20);
    CHECK(strcmp(a.etag, "m2") == 0);

    /*
     * Past the TTL: a fresh listing of the directory stands for the file.
     * (A listing slower than the TTL: the files it confirmed are older than
     * the TTL when it ends, the directory's listing is not.)
     */
    sleep(2);
    s->list_delay_ms = 1200;
    CHECK_EQ_INT(inode_refresh(t, &e, root.ino, true), 0);
    s->list_delay_ms = 0;
    CHECK_EQ_INT(inode_getattr(t, &e, root.ino, &a), 0); /* a refresh re-checks the marker too */
    struct reqs r1 = reqs_now(s);
    CHECK_EQ_INT(inode_getattr(t, &e, f.ino, &a), 0);
    CHECK_EQ_INT(reqs_now(s).heads - r1.heads, 0);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "other", &a, NULL), 0);
    struct reqs r2 = reqs_now(s);
    CHECK_EQ_INT(r2.heads - r1.heads, 0);
    CHECK_EQ_INT(r1.heads - r0.heads, 1); /* that marker; no file */
    /* ... and a stale one does not: close-to-open asks HEAD. */
    sleep(2);
    CHECK_EQ_INT(inode_getattr(t, &e, f.ino, &a), 0);
    CHECK_EQ_INT(reqs_now(s).heads - r2.heads, 1);
}

/* ---- parallel HEADs ahead of READDIRPLUS (posix_metadata "any") -------------- */

static void test_parallel_heads(struct inode_table *t, struct tstore *s, uint32_t id)
{
    enum { N = 300 };
    fill(s, "par/", N);
    struct meta_export e = ts_export(s, id, "par/", 3600);
    struct inode_attr root;
    CHECK_EQ_INT(inode_root(t, &e, &root), 0);
    struct walk *w = walk_new();
    struct inode_stats st0, st1;
    inode_get_stats(t, &st0);
    atomic_store(&s->heads_inflight_max, 0);
    s->head_delay_ms = 20;
    struct reqs r0 = reqs_now(s);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    CHECK_EQ_INT(ls_l(t, &e, root.ino, 100, w), N);
    clock_gettime(CLOCK_MONOTONIC, &b);
    s->head_delay_ms = 0;
    struct reqs r1 = reqs_now(s);
    inode_get_stats(t, &st1);
    double secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    unsigned inflight = atomic_load(&s->heads_inflight_max);
    printf("posix_metadata any: ls -l of %d foreign objects: %u LIST, %u HEAD, at most %u HEADs "
           "in flight (%llu ahead), %.2f s with 20 ms per HEAD\n",
           N, r1.lists - r0.lists, r1.heads - r0.heads, inflight,
           (unsigned long long)(st1.heads_ahead - st0.heads_ahead), secs);
    /* Every file once, all of them ahead of the walk, and every entry confirmed. */
    CHECK_EQ_INT(r1.heads - r0.heads, N);
    CHECK_EQ_INT(st1.heads_ahead - st0.heads_ahead, N);
    CHECK_EQ_INT(w->unconfirmed, 0);
    CHECK(inflight > 1);
    CHECK(inflight <= 16);
    CHECK(st1.heads_ahead_max > 1 && st1.heads_ahead_max <= 16);
    CHECK(secs < N * 0.020 / 2); /* one at a time would take N * 20 ms */

    /* A gone object is left out of the walk (its HEAD removes it). */
    ts_del(s, "par/f00007");
    struct inode_attr x;
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "f00007", &x, NULL), 0);
    CHECK_EQ_INT(inode_invalidate(t, x.ino), 0);
    CHECK_EQ_INT(ls_l(t, &e, root.ino, 1000, w), N - 1);
    walk_free(w);
}

/* ---- consistency = "immutable" ---------------------------------------------------- */

/* A tree walk (READDIRPLUS + LOOKUP + GETATTR) of root and its subdirectories a..c. */
static unsigned walk_tree(struct inode_table *t, const struct meta_export *e, uint64_t root,
                          struct walk *w)
{
    unsigned n = ls_l(t, e, root, 64, w);
    const char *subs[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++)
        n += ls_l(t, e, subdir(t, e, root, subs[i]), 64, w);
    return n;
}

static struct inode_table *test_immutable(struct inode_table *t, struct tstore *s, uint32_t id)
{
    fill(s, "imm/a/", 100);
    fill(s, "imm/b/", 100);
    fill(s, "imm/c/", 100);
    ts_put(s, "imm/top", 1, "t");
    /* metadata_ttl 0: immutable ignores it. */
    struct meta_export e = ts_export(s, id, "imm/", 0);
    e.consistency = INODE_IMMUTABLE;
    struct inode_attr root, a;
    CHECK_EQ_INT(inode_root(t, &e, &root), 0);
    struct walk *w = walk_new();
    CHECK_EQ_INT(walk_tree(t, &e, root.ino, w), 304);
    struct reqs r1 = reqs_now(s);
    CHECK_EQ_INT(walk_tree(t, &e, root.ino, w), 304);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "missing", &a, NULL), ENOENT);
    struct reqs r2 = reqs_now(s);
    CHECK_EQ_INT(r2.lists - r1.lists, 0);
    CHECK_EQ_INT(r2.heads - r1.heads, 0);
    printf("immutable: second walk + stat of 304 entries: %u LIST, %u HEAD\n",
           r2.lists - r1.lists, r2.heads - r1.heads);

    /* The bucket changes behind it: pinned, even after a restart. */
    ts_put(s, "imm/top", 2, "t2");
    ts_put(s, "imm/new", 1, "n");
    inode_close(t);
    t = inode_open(state_dir, 0);
    CHECK(t != NULL);
    if (!t)
        abort();
    CHECK_EQ_INT(walk_tree(t, &e, root.ino, w), 304);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "top", &a, NULL), 0);
    CHECK_EQ_INT(a.size, 1);
    CHECK(strcmp(a.etag, "t") == 0);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "new", &a, NULL), ENOENT);
    struct reqs r3 = reqs_now(s);
    CHECK_EQ_INT(r3.lists - r2.lists, 0);
    CHECK_EQ_INT(r3.heads - r2.heads, 0);

    /* bucketnfs refresh lists it again. */
    CHECK_EQ_INT(inode_refresh(t, &e, root.ino, true), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "new", &a, NULL), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "top", &a, NULL), 0);
    CHECK_EQ_INT(a.size, 2);
    CHECK_EQ_INT(reqs_now(s).lists - r3.lists, 1);
    walk_free(w);
    return t;
}

/* ---- consistency = "strict" ------------------------------------------------------ */

struct opener {
    struct inode_table *t;
    const struct meta_export *e;
    pthread_barrier_t *go;
    uint64_t dir, ino;
    bool lookup;
    int rc;
};

static void *open_one(void *arg)
{
    struct opener *o = arg;
    struct inode_attr a;
    pthread_barrier_wait(o->go);
    o->rc = o->lookup ? inode_lookup(o->t, o->e, o->dir, "f", &a, NULL)
                      : inode_getattr(o->t, o->e, o->ino, &a);
    return NULL;
}

/* 32 threads open the file at once (LOOKUP or GETATTR); how many HEADs did that cost? */
static unsigned opens32(struct inode_table *t, struct tstore *s, const struct meta_export *e,
                        uint64_t dir, uint64_t ino, bool lookup)
{
    enum { T = 32 };
    pthread_t th[T];
    struct opener o[T];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, T);
    unsigned h0 = atomic_load(&s->heads);
    s->head_delay_ms = 200;
    for (int i = 0; i < T; i++) {
        o[i] = (struct opener){.t = t, .e = e, .go = &go, .dir = dir, .ino = ino,
                               .lookup = lookup};
        pthread_create(&th[i], NULL, open_one, &o[i]);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ_INT(o[i].rc, 0);
    }
    s->head_delay_ms = 0;
    pthread_barrier_destroy(&go);
    return atomic_load(&s->heads) - h0;
}

static void test_strict(struct inode_table *t, struct tstore *s, uint32_t id)
{
    ts_put(s, "str/f", 10, "s1");
    struct meta_export e = ts_export(s, id, "str/", 3600);
    e.consistency = INODE_STRICT;
    struct inode_attr root, f, a;
    CHECK_EQ_INT(inode_root(t, &e, &root), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "f", &f, NULL), 0);

    unsigned hg = opens32(t, s, &e, root.ino, f.ino, false);
    unsigned hl = opens32(t, s, &e, root.ino, f.ino, true);
    printf("strict: 32 concurrent GETATTRs of one file: %u HEAD; 32 LOOKUPs: %u HEAD\n", hg, hl);
    CHECK_EQ_INT(hg, 1);
    CHECK_EQ_INT(hl, 1);

    /* Every GETATTR asks: a change in the bucket shows at once (TTL an hour). */
    ts_put(s, "str/f", 20, "s2");
    CHECK_EQ_INT(inode_getattr(t, &e, f.ino, &a), 0);
    CHECK_EQ_INT(a.size, 20);
    /* Negative results are not cached: each missing LOOKUP lists, and a new object is found. */
    unsigned l0 = atomic_load(&s->lists);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "g", &a, NULL), ENOENT);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "g", &a, NULL), ENOENT);
    CHECK_EQ_INT(atomic_load(&s->lists) - l0, 2);
    ts_put(s, "str/g", 1, "g");
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "g", &a, NULL), 0);
    /* A READDIR from the start lists (and sees a new name); a continuation does not. */
    ts_put(s, "str/h", 1, "h");
    struct walk *w = walk_new();
    l0 = atomic_load(&s->lists);
    bool eof;
    uint64_t verf;
    w->room = 1000;
    CHECK_EQ_INT(inode_readdir(t, &e, root.ino, 0, walk_cb, w, &eof, &verf), 0);
    CHECK_EQ_INT(w->n, 3);
    CHECK_EQ_INT(atomic_load(&s->lists) - l0, 1);
    w->room = 1000;
    CHECK_EQ_INT(inode_readdir(t, &e, root.ino, 2, walk_cb, w, &eof, &verf), 0);
    CHECK_EQ_INT(atomic_load(&s->lists) - l0, 1);
    walk_free(w);
}

/* ---- ttl: negative LOOKUPs cost nothing within the TTL ----------------------- */

static void test_ttl_negative(struct inode_table *t, struct tstore *s, uint32_t id)
{
    ts_put(s, "neg/x", 1, "x");
    struct meta_export e = ts_export(s, id, "neg/", 3600);
    struct inode_attr root, a;
    CHECK_EQ_INT(inode_root(t, &e, &root), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "x", &a, NULL), 0);
    struct reqs r0 = reqs_now(s);
    for (int i = 0; i < 50; i++)
        CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "y", &a, NULL), ENOENT);
    struct reqs r1 = reqs_now(s);
    CHECK_EQ_INT(r1.lists - r0.lists, 0);
    CHECK_EQ_INT(r1.heads - r0.heads, 0);
}

/* ---- ttl: a slow HEAD's answer counts from when it was asked ---------------------- */

/*
 * The store reads the object at once and takes 1.5 s to answer (a loaded
 * store), with a TTL of 1 s.  The object is replaced the moment the answer
 * is in: what the answer said was read 1.5 s before, past the TTL, so the
 * next GETATTR asks again and sees the new version.  (Counted from the
 * answer, the old version would be served for the TTL plus the HEAD's time.)
 */
static void test_ttl_slow_head(struct inode_table *t, struct tstore *s, uint32_t id)
{
    ts_put(s, "slow/f", 10, "v1");
    struct meta_export e = ts_export(s, id, "slow/", 1);
    struct inode_attr root, f, a;
    CHECK_EQ_INT(inode_root(t, &e, &root), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "f", &f, NULL), 0);
    usleep(1100000); /* past the TTL */
    s->head_reply_delay_ms = 1500;
    struct reqs r0 = reqs_now(s);
    CHECK_EQ_INT(inode_getattr(t, &e, f.ino, &a), 0);
    CHECK_EQ_INT(a.size, 10);
    CHECK_EQ_INT(reqs_now(s).heads - r0.heads, 1);
    s->head_reply_delay_ms = 0;
    ts_put(s, "slow/f", 20, "v2");
    CHECK_EQ_INT(inode_getattr(t, &e, f.ino, &a), 0);
    CHECK_EQ_INT(a.size, 20);
    CHECK_EQ_INT(reqs_now(s).heads - r0.heads, 2);
}

/* ---- ttl: READDIRPLUS past the TTL where the listing is as good as HEAD ------------ */

/*
 * A store whose listing carries what HEAD does (the dir store): once the
 * TTL has passed, READDIRPLUS answers from the stale listing, names and
 * attributes, without a HEAD (no call waits for the store, however slow
 * it is); the background re-listing brings the changes in.
 */
static void test_ttl_swr_plus(struct inode_table *t, struct tstore *s, uint32_t id)
{
    enum { N = 200 };
    s->list_no_posix = false;
    s->base.list_is_head = true;
    fill(s, "swrp/", N);
    struct meta_export e = ts_export(s, id, "swrp/", 1);
    struct inode_attr root;
    CHECK_EQ_INT(inode_root(t, &e, &root), 0);
    struct walk *w = walk_new();
    struct reqs r0 = reqs_now(s);
    CHECK_EQ_INT(rdplus(t, &e, root.ino, 50, w), N);
    CHECK_EQ_INT(w->unconfirmed, 0);
    struct reqs r1 = reqs_now(s);
    CHECK_EQ_INT(r1.lists - r0.lists, 1);
    CHECK_EQ_INT(r1.heads - r0.heads, 0);

    ts_put(s, "swrp/new", 7, "n");
    ts_del(s, "swrp/f00003");
    usleep(1100 * 1000); /* past the TTL: directory and files expired */
    s->head_delay_ms = 200;
    s->list_delay_ms = 500;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    /*
     * The old listing: no file HEADed (200 ms each), the listing in the
     * background.  One HEAD is the directory's own marker, for ".": once
     * per TTL, as GETATTR of the directory would.
     */
    CHECK_EQ_INT(rdplus(t, &e, root.ino, 50, w), N);
    clock_gettime(CLOCK_MONOTONIC, &b);
    CHECK_EQ_INT(w->unconfirmed, 0);
    struct reqs r2 = reqs_now(s);
    CHECK_EQ_INT(r2.heads - r1.heads, 1);
    double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;

    /* The changes show once the background listing has run: N - 1 + 1 entries, "new" among them. */
    bool seen = false;
    for (int i = 0; i < 100 && !seen; i++) {
        usleep(100 * 1000);
        seen = rdplus(t, &e, root.ino, 50, w) == N;
        bool has_new = false, has_gone = false;
        for (unsigned k = 0; k < w->n && k < NAMES_MAX; k++) {
            has_new |= strcmp(w->names[k], "new") == 0;
            has_gone |= strcmp(w->names[k], "f00003") == 0;
        }
        seen = seen && has_new && !has_gone;
    }
    CHECK(seen);
    struct reqs r3 = reqs_now(s);
    CHECK_EQ_INT(r3.heads - r1.heads, 1);
    CHECK(r3.lists - r1.lists >= 1);
    printf("ttl, listing as good as HEAD: READDIRPLUS of %d entries past the TTL in %.1f ms, "
           "no file HEADed (200 ms each), 1 marker HEAD; the change showed after %u background "
           "listing(s)\n",
           N, ms, r3.lists - r1.lists);
    s->head_delay_ms = 0;
    s->list_delay_ms = 0;
    /* A GETATTR of an expired file still asks HEAD (close-to-open). */
    usleep(1100 * 1000);
    struct inode_attr x, g;
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "f00001", &x, NULL), 0);
    struct reqs r4 = reqs_now(s);
    CHECK_EQ_INT(inode_getattr(t, &e, x.ino, &g), 0);
    CHECK_EQ_INT(reqs_now(s).heads - r4.heads, 0); /* the LOOKUP just HEADed it */
    usleep(1100 * 1000);
    CHECK_EQ_INT(inode_getattr(t, &e, x.ino, &g), 0);
    CHECK_EQ_INT(reqs_now(s).heads - r4.heads, 1);
    s->base.list_is_head = false;
    s->list_no_posix = true;
    walk_free(w);
}

int main(void)
{
    log_init("test_inode_modes", 1, LOG_ERR);
    alarm(300);
    const char *tmp = getenv("TMPDIR");
    snprintf(state_dir, sizeof(state_dir), "%s/test_inode_modes.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(state_dir)) {
        perror("mkdtemp");
        return 2;
    }
    struct tstore *s = ts_create();
    s->list_no_posix = true; /* list like S3 */
    struct inode_table *t = inode_open(state_dir, 0);
    CHECK(t != NULL);
    if (!t)
        return TEST_DONE();
    uint32_t ids[8];
    const char *paths[] = {"/own", "/ownw", "/par", "/imm", "/strict", "/neg", "/swrp", "/slow"};
    for (int i = 0; i < 8; i++)
        CHECK_EQ_INT(inode_export_id(t, paths[i], &ids[i]), 0);

    test_own_ls_l(t, s, ids[0]);
    test_own_written_here(t, s, ids[1]);
    test_parallel_heads(t, s, ids[2]);
    t = test_immutable(t, s, ids[3]);
    test_strict(t, s, ids[4]);
    test_ttl_negative(t, s, ids[5]);
    test_ttl_swr_plus(t, s, ids[6]);
    test_ttl_slow_head(t, s, ids[7]);

    inode_close(t);
    ts_destroy(&s->base);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", state_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", state_dir);
    return TEST_DONE();
}
