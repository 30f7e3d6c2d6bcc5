/*
 * test_inode_write.c - the inode table's write path (inode_write.c) against
 * the in-memory store (teststore.h): local state against listings and
 * HEADs, create, remove, rename and its journal, attribute changes and the
 * write-back records.
 *
 * The uploader is played by upload() below: it puts the object in the
 * store double and reports it as meta/writeback.c does.  Each test uses an
 * export of its own (its own prefix), so they do not see each other.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "meta/inode.h"
#include "meta/inode_internal.h"
#include "tests/unit/testlib.h"
#include "tests/unit/teststore.h"

/* ---- helpers ------------------------------------------------------------------- */

static char state_dir[64], crash_dir[64];

static struct meta_export export_of(struct tstore *s, struct inode_table *t, const char *path,
                                    const char *prefix)
{
    uint32_t id = 0;
    CHECK_EQ_INT(inode_export_id(t, path, &id), 0);
    struct meta_export e = ts_export(s, id, prefix, 3600);
    e.rename_dir_max = 100;
    return e;
}

static int mk(struct inode_table *t, const struct meta_export *e, uint64_t dir, const char *name,
              uint32_t mode, struct inode_attr *out)
{
    bool existed = false;
    int rc = inode_create(t, e, dir, name, mode, 10, 20, 0, INODE_UNCHECKED, 0, out, &existed, NULL,
                          NULL);
    if (rc == 0 && existed)
        rc = EEXIST;
    return rc;
}

static int mkfile(struct inode_table *t, const struct meta_export *e, uint64_t dir,
                  const char *name, struct inode_attr *out)
{
    return mk(t, e, dir, name, S_IFREG | 0644, out);
}

static int mkdir_(struct inode_table *t, const struct meta_export *e, uint64_t dir,
                  const char *name, struct inode_attr *out)
{
    return mk(t, e, dir, name, S_IFDIR | 0755, out);
}

static int rm(struct inode_table *t, const struct meta_export *e, uint64_t dir, const char *name,
              bool rmdir)
{
    struct inode_attr gone;
    return inode_remove(t, e, dir, name, rmdir, &gone, NULL, NULL);
}

static int mv(struct inode_table *t, const struct meta_export *e, uint64_t fdir, const char *fname,
              uint64_t tdir, const char *tname, struct inode_attr *replaced)
{
    struct inode_attr none;
    return inode_rename(t, e, fdir, fname, tdir, tname, replaced ? replaced : &none, NULL, NULL,
                        NULL, NULL);
}

/*
 * What the uploader does for a directory renamed in the bucket: move every
 * moving file (inode_move_object), then close the moves (inode_moves_settle).
 */
static int drain_moves(struct inode_table *t, const struct meta_export *e)
{
    struct inode_dirty d[64];
    size_t n = 0;
    uint64_t after = 0;
    int rc = 0;
    do {
        int sr = inode_dirty_scan(t, after, d, 64, &n);
        if (sr)
            return sr;
        for (size_t i = 0; i < n; i++) {
            struct inode_attr a;
            struct inode_dirty dd;
            char key[OBJ_KEY_MAX + 1];
            after = d[i].ino;
            int gr = inode_upload_get(t, d[i].ino, &a, key, &dd);
            if ((gr == 0 || gr == EBUSY) && a.moving) {
                int mr = inode_move_object(t, e->store, e->bucket, d[i].ino);
                if (mr && !rc)
                    rc = mr;
            }
        }
    } while (n == 64);
    int sr = inode_moves_settle(t, e->id, e->store, e->bucket);
    return rc ? rc : sr;
}

/* What the uploader does: put ino's object (a marker for a directory) and report it.  Clean? */
static bool upload(struct inode_table *t, struct tstore *s, uint64_t ino, const char *etag)
{
    struct inode_attr a;
    struct inode_dirty d;
    char key[OBJ_KEY_MAX + 1];
    bool clean = false, moved = false;
    int rc = inode_upload_get(t, ino, &a, key, &d);
    CHECK_EQ_INT(rc, 0);
    if (rc)
        return false;
    CHECK_EQ_INT(inode_upload_begin(t, ino), 0);
    ts_put(s, key, a.size, etag);
    CHECK_EQ_INT(
        inode_upload_done(t, ino, d.dver, key, S_ISDIR(a.mode) ? NULL : etag, &clean, &moved), 0);
    inode_upload_end(t, ino);
    CHECK(!moved);
    return clean;
}

static uint64_t dver_of(struct inode_table *t, uint64_t ino)
{
    struct inode_attr a;
    struct inode_dirty d = {0};
    char key[OBJ_KEY_MAX + 1];
    return inode_upload_get(t, ino, &a, key, &d) == 0 ? d.dver : 0;
}

static bool key_is(struct inode_table *t, uint64_t ino, const char *want)
{
    char key[OBJ_KEY_MAX + 1];
    int rc = inode_key(t, ino, key, sizeof(key));
    if (rc == 0 && strcmp(key, want) == 0)
        return true;
    fprintf(stderr, "inode %llu: key %s, want %s (rc %d)\n", (unsigned long long)ino,
            rc ? "-" : key, want, rc);
    return false;
}

static bool same_attr(const struct inode_attr *a, const struct inode_attr *b)
{
    return a->ino == b->ino && a->gen == b->gen && a->mode == b->mode && a->size == b->size &&
           a->uid == b->uid && a->gid == b->gid && a->mtime_sec == b->mtime_sec &&
           a->mtime_nsec == b->mtime_nsec && a->ctime_sec == b->ctime_sec &&
           a->ctime_nsec == b->ctime_nsec && a->change == b->change &&
           strcmp(a->etag, b->etag) == 0 && a->local == b->local && a->staged == b->staged &&
           a->in_bucket == b->in_bucket;
}

static int count_entry(void *arg, const char *name, uint64_t cookie, const struct inode_attr *a)
{
    (*(unsigned *)arg)++;
    return 0;
}

/* Entries of dir READDIR hands out, "." and ".." included. */
static unsigned entries(struct inode_table *t, const struct meta_export *e, uint64_t dir)
{
    unsigned n = 0;
    bool eof = false;
    uint64_t verf;
    CHECK_EQ_INT(inode_readdir(t, e, dir, 0, count_entry, &n, &eof, &verf), 0);
    CHECK(eof);
    return n;
}

/* ---- 1. local state wins over listings -------------------------------------------- */

static void test_local_wins(struct inode_table *t, struct tstore *s)
{
    struct meta_export e = export_of(s, t, "/local", "lw/");
    struct inode_attr root, d, old, f, a, sub, x;
    ts_put(s, "lw/d/old", 5, "e-old");
    CHECK_EQ_INT(inode_root(t, &e, &root), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "d", &d, NULL), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, d.ino, "old", &old, NULL), 0); /* d is listed */

    CHECK_EQ_INT(mkfile(t, &e, d.ino, "new", &f), 0);
    CHECK(f.local && f.staged && !f.in_bucket);
    CHECK_EQ_INT(f.mode, S_IFREG | 0644);
    CHECK_EQ_INT(f.size, 0);
    /* A write, so that what is kept is more than a new file's defaults. */
    struct inode_change w = {.write_end = 3, .staged = true};
    CHECK_EQ_INT(inode_change(t, &e, f.ino, &w, NULL, &f), 0);
    CHECK_EQ_INT(f.size, 3);

    /* A re-listing of a bucket that lacks it keeps it, attributes and all. */
    unsigned lists = atomic_load(&s->lists);
    CHECK_EQ_INT(inode_refresh(t, &e, d.ino, true), 0);
    CHECK(atomic_load(&s->lists) > lists);
    CHECK_EQ_INT(inode_lookup(t, &e, d.ino, "new", &a, NULL), 0);
    CHECK(same_attr(&a, &f));
    CHECK_EQ_INT(entries(t, &e, d.ino), 4);

    /* An object of that name from another writer changes nothing until the upload. */
    ts_put(s, "lw/d/new", 99, "e-other");
    CHECK_EQ_INT(inode_refresh(t, &e, d.ino, true), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, d.ino, "new", &a, NULL), 0);
    CHECK(same_attr(&a, &f));
    CHECK_EQ_INT(a.size, 3);
    CHECK(strcmp(a.etag, "e-other") != 0);

    /* A directory made here, and a file in it: kept too, and counted in nlink. */
    CHECK_EQ_INT(mkdir_(t, &e, d.ino, "sub", &sub), 0);
    CHECK_EQ_INT(mkfile(t, &e, sub.ino, "x", &x), 0);
    CHECK_EQ_INT(inode_refresh(t, &e, d.ino, true), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, d.ino, "sub", &a, NULL), 0);
    CHECK(a.ino == sub.ino && S_ISDIR(a.mode) && a.local);
    CHECK_EQ_INT(inode_lookup(t, &e, sub.ino, "x", &a, NULL), 0);
    CHECK_EQ_INT(a.ino, x.ino);
    CHECK_EQ_INT(inode_getattr(t, &e, d.ino, &a), 0);
    CHECK_EQ_INT(a.nlink, 3);

    /* Uploaded: clean and in the bucket; a listing that has it keeps it. */
    CHECK(upload(t, s, f.ino, "e-up"));
    CHECK_EQ_INT(inode_getattr(t, &e, f.ino, &a), 0);
    CHECK(!a.local && !a.staged && a.in_bucket);
    CHECK(a.ino == f.ino && a.size == 3 && strcmp(a.etag, "e-up") == 0);
    CHECK_EQ_INT(inode_refresh(t, &e, d.ino, true), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, d.ino, "new", &a, NULL), 0);
    CHECK(a.ino == f.ino && a.gen == f.gen && a.size == 3 && strcmp(a.etag, "e-up") == 0);
    /* ... and one that lacks it drops it, as the bucket says. */
    ts_del(s, "lw/d/new");
    CHECK_EQ_INT(inode_refresh(t, &e, d.ino, true), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, d.ino, "new", &a, NULL), ENOENT);
    CHECK_EQ_INT(inode_getattr(t, &e, f.ino, &a), ESTALE);

    /*
     * A chmod, chown or utimes to what the file has already changes its
     * ctime only: nothing to upload (tar x and chown -R do it to every file).
     */
    struct inode_attr b;
    CHECK_EQ_INT(inode_getattr(t, &e, old.ino, &b), 0);
    struct inode_change same = {.set_mode = true, .mode = b.mode & 07777, .set_uid = true,
                                .uid = b.uid, .set_gid = true, .gid = b.gid,
                                .set_mtime = true, .mtime_sec = b.mtime_sec,
                                .mtime_nsec = b.mtime_nsec, .sync = true};
    usleep(2000);
    CHECK_EQ_INT(inode_change(t, &e, old.ino, &same, NULL, &a), 0);
    CHECK(!a.local && a.in_bucket && a.mode == b.mode && a.uid == b.uid);
    CHECK(a.ctime_sec > b.ctime_sec || (a.ctime_sec == b.ctime_sec && a.ctime_nsec > b.ctime_nsec));
    CHECK(a.change > b.change);

    /* A listed file changed here (chmod), then deleted in the bucket: kept until uploaded. */
    struct inode_change chmod = {.set_mode = true, .mode = 0600};
    CHECK_EQ_INT(inode_change(t, &e, old.ino, &chmod, NULL, &a), 0);
    CHECK(a.local && a.in_bucket && !a.staged);
    ts_del(s, "lw/d/old");
    CHECK_EQ_INT(inode_refresh(t, &e, d.ino, true), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, d.ino, "old", &a, NULL), 0);
    CHECK(a.ino == old.ino && a.mode == (S_IFREG | 0600) && a.size == 5);
}

/* ---- 2. an upload that ends while a listing pages past its name -------------------- */

struct race {
    struct inode_table *t;
    struct tstore *s;
    const struct meta_export *e;
    uint64_t dir;
    int list_rc;
    unsigned lists; /* list calls seen by the hook */
    bool paged, uploaded;
    pthread_mutex_t mu;
    pthread_cond_t step; /* signals: paged or uploaded moved */
};

/* The second page waits until the upload has ended: the first page was read without it. */
static int race_hook(void *arg, const char *op, const char *key)
{
    struct race *r = arg;
    if (strcmp(op, "list") != 0)
        return 0;
    pthread_mutex_lock(&r->mu);
    if (++r->lists == 2) {
        r->paged = true;
        pthread_cond_broadcast(&r->step);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 20;
        while (!r->uploaded && pthread_cond_timedwait(&r->step, &r->mu, &until) == 0)
            ;
    }
    pthread_mutex_unlock(&r->mu);
    return 0;
}

static void *race_list(void *p)
{
    struct race *r = p;
    r->list_rc = inode_refresh(r->t, r->e, r->dir, true);
    return NULL;
}

static void test_upload_during_listing(struct inode_table *t, struct tstore *s)
{
    struct meta_export e = export_of(s, t, "/race", "rc/");
    struct inode_attr root, d, b, a;
    ts_put(s, "rc/d/m1", 1, "e");
    ts_put(s, "rc/d/m2", 1, "e");
    ts_put(s, "rc/d/m3", 1, "e");
    CHECK_EQ_INT(inode_root(t, &e, &root), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "d", &d, NULL), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, d.ino, "m1", &a, NULL), 0);
    CHECK_EQ_INT(mkfile(t, &e, d.ino, "b", &b), 0);

    /*
     * One key a page: m1, m2, m3.  "b" sorts before the first page's m1,
     * so no page after it can hold b's object, put while page 2 waits.
     */
    struct race r = {.t = t, .s = s, .e = &e, .dir = d.ino};
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.step, NULL);
    s->max_page = 1;
    s->hook_arg = &r;
    s->hook = race_hook;
    pthread_t th;
    pthread_create(&th, NULL, race_list, &r);
    pthread_mutex_lock(&r.mu);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    while (!r.paged && pthread_cond_timedwait(&r.step, &r.mu, &until) == 0)
        ;
    bool paged = r.paged;
    pthread_mutex_unlock(&r.mu);
    CHECK(paged);
    CHECK(upload(t, s, b.ino, "e-b"));
    pthread_mutex_lock(&r.mu);
    r.uploaded = true;
    pthread_cond_broadcast(&r.step);
    pthread_mutex_unlock(&r.mu);
    pthread_join(th, NULL);
    s->hook = NULL;
    s->max_page = 0;
    CHECK_EQ_INT(r.list_rc, 0);
    CHECK_EQ_INT(r.lists, 3);

    /* The listing's sweep kept the entry the upload stamped. */
    CHECK_EQ_INT(inode_lookup(t, &e, d.ino, "b", &a, NULL), 0);
    CHECK(a.ino == b.ino && a.gen == b.gen && !a.local && a.in_bucket);
    CHECK_EQ_INT(inode_getattr(t, &e, b.ino, &a), 0);
    CHECK_EQ_INT(entries(t, &e, d.ino), 6);
    /* The next listing has its object. */
    CHECK_EQ_INT(inode_refresh(t, &e, d.ino, true), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, d.ino, "b", &a, NULL), 0);
    CHECK_EQ_INT(a.ino, b.ino);
    pthread_cond_destroy(&r.step);
    pthread_mutex_destroy(&r.mu);
}

/* ---- 3. HEAD 404 of a local file ------------------------------------------------------ */

static void test_head_404_local(struct inode_table *t, struct tstore *s)
{
    struct meta_export e = export_of(s, t, "/head", "hd/");
    struct inode_attr root, f, g, a;
    ts_put(s, "hd/g", 4, "e-g");
    CHECK_EQ_INT(inode_root(t, &e, &root), 0);
    CHECK_EQ_INT(mkfile(t, &e, root.ino, "f", &f), 0);
    unsigned heads = atomic_load(&s->heads);
    CHECK_EQ_INT(inode_revalidate(t, &e, f.ino, &a), 0);
    CHECK_EQ_INT(atomic_load(&s->heads) - heads, 1); /* asked, and found nothing */
    CHECK(a.ino == f.ino && a.local);
    CHECK_EQ_INT(inode_getattr(t, &e, f.ino, &a), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "f", &a, NULL), 0);
    CHECK_EQ_INT(a.ino, f.ino);

    /* A file from the bucket changed here (local) whose object went: kept too. */
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "g", &g, NULL), 0);
    struct inode_change chown = {.set_uid = true, .uid = 77};
    CHECK_EQ_INT(inode_change(t, &e, g.ino, &chown, NULL, NULL), 0);
    ts_del(s, "hd/g");
    CHECK_EQ_INT(inode_revalidate(t, &e, g.ino, &a), 0);
    CHECK(a.ino == g.ino && a.uid == 77 && a.size == 4);

    /* Uploaded, then deleted in the bucket: now HEAD's 404 rules. */
    CHECK(upload(t, s, f.ino, "e-f"));
    ts_del(s, "hd/f");
    CHECK_EQ_INT(inode_revalidate(t, &e, f.ino, &a), ESTALE);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "f", &a, NULL), ENOENT);
}

/* ---- 4. inode_create: how, names ----------------------------------------------------- */

static void test_create(struct inode_table *t, struct tstore *s)
{
    struct meta_export e = export_of(s, t, "/create", "cr/");
    struct inode_attr root, d, f, a, sd, before, after, inb;
    bool existed = true;
    ts_put(s, "cr/d/inbucket", 8, "e-in");
    CHECK_EQ_INT(inode_root(t, &e, &root), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "d", &d, NULL), 0);

    /* UNCHECKED over an object the table has not listed yet: the directory is listed first. */
    CHECK_EQ_INT(inode_create(t, &e, d.ino, "inbucket", S_IFREG | 0600, 1, 2, 0, INODE_UNCHECKED, 0,
                              &inb, &existed, NULL, NULL),
                 0);
    CHECK(existed);
    CHECK(inb.in_bucket && !inb.local && inb.size == 8);
    CHECK_EQ_INT(inode_lookup(t, &e, d.ino, "inbucket", &a, NULL), 0);
    CHECK_EQ_INT(a.ino, inb.ino);

    CHECK_EQ_INT(inode_create(t, &e, d.ino, "f", S_IFREG | 0640, 1, 2, 0, INODE_UNCHECKED, 0, &f,
                              &existed, &before, &after),
                 0);
    CHECK(!existed);
    CHECK(f.local && f.staged && !f.in_bucket);
    CHECK(f.mode == (S_IFREG | 0640) && f.uid == 1 && f.gid == 2 && f.nlink == 1);
    CHECK(after.ino == d.ino && after.change > before.change);
    CHECK(f.parent == d.ino);
    CHECK(key_is(t, f.ino, "cr/d/f"));
    CHECK_EQ_INT(inode_create(t, &e, d.ino, "f", S_IFREG | 0600, 3, 4, 0, INODE_UNCHECKED, 0, &a,
                              &existed, NULL, NULL),
                 0);
    CHECK(existed && a.ino == f.ino && a.mode == (S_IFREG | 0640) && a.uid == 1);
    CHECK_EQ_INT(inode_create(t, &e, d.ino, "f", S_IFREG | 0600, 3, 4, 0, INODE_GUARDED, 0, &a,
                              &existed, NULL, NULL),
                 EEXIST);
    /* EXCLUSIVE over a file made without a verifier. */
    CHECK_EQ_INT(inode_create(t, &e, d.ino, "f", S_IFREG | 0600, 3, 4, 0, INODE_EXCLUSIVE, 0, &a,
                              &existed, NULL, NULL),
                 EEXIST);

    /* EXCLUSIVE: a retransmission (same verifier) finds its file; another verifier does not. */
    struct inode_attr x;
    CHECK_EQ_INT(inode_create(t, &e, d.ino, "x", S_IFREG | 0600, 1, 2, 0, INODE_EXCLUSIVE, 42, &x,
                              &existed, NULL, NULL),
                 0);
    CHECK(!existed);
    CHECK_EQ_INT(inode_create(t, &e, d.ino, "x", S_IFREG | 0600, 1, 2, 0, INODE_EXCLUSIVE, 42, &a,
                              &existed, NULL, NULL),
                 0);
    CHECK(existed && a.ino == x.ino && a.gen == x.gen);
    CHECK_EQ_INT(inode_create(t, &e, d.ino, "x", S_IFREG | 0600, 1, 2, 0, INODE_EXCLUSIVE, 43, &a,
                              &existed, NULL, NULL),
                 EEXIST);

    /* Directories: a name taken by anything is EEXIST, however asked. */
    CHECK_EQ_INT(inode_create(t, &e, d.ino, "sd", S_IFDIR | 0750, 1, 2, 0, INODE_UNCHECKED, 0, &sd,
                              &existed, &before, &after),
                 0);
    CHECK(S_ISDIR(sd.mode) && sd.nlink == 2 && sd.local && !sd.in_bucket && !sd.staged);
    CHECK_EQ_INT(after.nlink, before.nlink + 1);
    CHECK(key_is(t, sd.ino, "cr/d/sd/"));
    CHECK_EQ_INT(mkdir_(t, &e, d.ino, "sd", &a), EEXIST);
    CHECK_EQ_INT(mkdir_(t, &e, d.ino, "f", &a), EEXIST);
    CHECK_EQ_INT(inode_create(t, &e, d.ino, "sd", S_IFREG | 0644, 1, 2, 0, INODE_UNCHECKED, 0, &a,
                              &existed, NULL, NULL),
                 EEXIST);
    CHECK_EQ_INT(entries(t, &e, sd.ino), 2); /* made here: nothing to list */

    /* A symlink: its target's length, its bytes in the stage. */
    CHECK_EQ_INT(mk(t, &e, d.ino, "ln", S_IFLNK | 0777, &a), 0);
    CHECK(S_ISLNK(a.mode) && a.staged);

    /* Names and types the table refuses. */
    char longname[300];
    memset(longname, 'n', 256);
    longname[256] = '\0';
    CHECK_EQ_INT(mkfile(t, &e, d.ino, "", &a), EINVAL);
    CHECK_EQ_INT(mkfile(t, &e, d.ino, "a/b", &a), EINVAL);
    CHECK_EQ_INT(mkfile(t, &e, d.ino, longname, &a), ENAMETOOLONG);
    CHECK_EQ_INT(mkdir_(t, &e, d.ino, longname, &a), ENAMETOOLONG);
    CHECK_EQ_INT(mkfile(t, &e, d.ino, ".", &a), EEXIST);
    CHECK_EQ_INT(mkdir_(t, &e, d.ino, "..", &a), EEXIST);
    CHECK_EQ_INT(mk(t, &e, d.ino, "fifo", S_IFIFO | 0644, &a), EINVAL);
    CHECK_EQ_INT(mkfile(t, &e, f.ino, "in-a-file", &a), ENOTDIR);
    CHECK_EQ_INT(mkfile(t, &e, 999999999, "nowhere", &a), ESTALE);
    longname[255] = '\0';
    CHECK_EQ_INT(mkfile(t, &e, d.ino, longname, &a), 0);
    CHECK_EQ_INT(a.size, 0);

    /* A store whose keys are UTF-8 (S3) takes no other name: not made, not
     * renamed to; a dir-like store takes any bytes. */
    s->base.utf8_keys = true;
    CHECK_EQ_INT(mkfile(t, &e, d.ino, "bad\xff\xfe", &a), EINVAL);
    CHECK_EQ_INT(mkdir_(t, &e, d.ino, "overlong\xc0\xaf", &a), EINVAL);
    CHECK_EQ_INT(mkfile(t, &e, d.ino, "surrogate\xed\xa0\x80", &a), EINVAL);
    CHECK_EQ_INT(mkfile(t, &e, d.ino, "past-10ffff\xf4\x90\x80\x80", &a), EINVAL);
    CHECK_EQ_INT(mkfile(t, &e, d.ino, "cut\xe2\x82", &a), EINVAL);
    CHECK_EQ_INT(mv(t, &e, d.ino, "f", d.ino, "bad\xff", NULL), EINVAL);
    CHECK_EQ_INT(inode_lookup(t, &e, d.ino, "bad\xff\xfe", &a, NULL), ENOENT);
    CHECK_EQ_INT(inode_lookup(t, &e, d.ino, "f", &a, NULL), 0);
    CHECK_EQ_INT(mkfile(t, &e, d.ino, "caf\xc3\xa9 \xe5\x90\x8d \xf0\x9f\x98\x80 \x01\x7f", &a), 0);
    CHECK_EQ_INT(mv(t, &e, d.ino, "f", d.ino, "f-\xc3\xa9", NULL), 0);
    s->base.utf8_keys = false;
    CHECK_EQ_INT(mkfile(t, &e, d.ino, "bad\xff\xfe", &a), 0);
}

/* ---- 5. inode_remove ------------------------------------------------------------------ */

static void test_remove(struct inode_table *t, struct tstore *s)
{
    struct meta_export e = export_of(s, t, "/remove", "rm/");
    struct inode_attr root, full, unl, f, a, gone, before, after, emptyd, ld, z;
    ts_put(s, "rm/full/x", 1, "e");
    ts_put(s, "rm/unlisted/y", 1, "e");
    ts_put(s, "rm/f", 3, "e-f");
    ts_put(s, "rm/emptyd/", 0, "e-m");
    CHECK_EQ_INT(inode_root(t, &e, &root), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "full", &full, NULL), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, full.ino, "x", &a, NULL), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "unlisted", &unl, NULL), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "f", &f, NULL), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "emptyd", &emptyd, NULL), 0);
    unsigned dels = atomic_load(&s->dels);

    /* Not empty: an entry in the table, or an object the table never listed. */
    CHECK_EQ_INT(rm(t, &e, root.ino, "full", true), ENOTEMPTY);
    CHECK_EQ_INT(rm(t, &e, root.ino, "unlisted", true), ENOTEMPTY);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "unlisted", &a, NULL), 0);
    CHECK_EQ_INT(a.ino, unl.ino);
    CHECK(ts_has(s, "rm/unlisted/y"));
    /* The wrong kind of remove. */
    CHECK_EQ_INT(rm(t, &e, root.ino, "full", false), EISDIR);
    CHECK_EQ_INT(rm(t, &e, root.ino, "f", true), ENOTDIR);
    CHECK_EQ_INT(rm(t, &e, root.ino, "nope", false), ENOENT);
    CHECK_EQ_INT(rm(t, &e, root.ino, ".", true), EINVAL);
    CHECK_EQ_INT(rm(t, &e, root.ino, "..", true), ENOTEMPTY);
    CHECK_EQ_INT(atomic_load(&s->dels), dels);

    /* The store cannot delete: the file stays (JUKEBOX for the client). */
    s->fail_del = EAGAIN;
    CHECK_EQ_INT(rm(t, &e, root.ino, "f", false), EAGAIN);
    s->fail_del = 0;
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "f", &a, NULL), 0);
    CHECK(ts_has(s, "rm/f"));

    /* A file in the bucket: its object goes with it. */
    dels = atomic_load(&s->dels);
    CHECK_EQ_INT(inode_remove(t, &e, root.ino, "f", false, &gone, &before, &after), 0);
    CHECK_EQ_INT(atomic_load(&s->dels) - dels, 1);
    CHECK(!ts_has(s, "rm/f"));
    CHECK(gone.ino == f.ino && gone.in_bucket);
    CHECK(after.change > before.change);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "f", &a, NULL), ENOENT);
    CHECK_EQ_INT(inode_getattr(t, &e, f.ino, &a), ESTALE);

    /* A file never uploaded: nothing to delete in the bucket. */
    struct inode_attr n;
    CHECK_EQ_INT(mkfile(t, &e, root.ino, "n", &n), 0);
    dels = atomic_load(&s->dels);
    CHECK_EQ_INT(inode_remove(t, &e, root.ino, "n", false, &gone, NULL, NULL), 0);
    CHECK(gone.ino == n.ino && gone.local && !gone.in_bucket);
    CHECK_EQ_INT(atomic_load(&s->dels), dels);
    CHECK_EQ_INT(dver_of(t, n.ino), 0); /* no write-back record left behind */

    /* An empty directory of the bucket: its marker goes; the parent loses a link. */
    CHECK_EQ_INT(inode_getattr(t, &e, root.ino, &before), 0);
    CHECK_EQ_INT(inode_remove(t, &e, root.ino, "emptyd", true, &gone, NULL, &after), 0);
    CHECK(!ts_has(s, "rm/emptyd/"));
    CHECK_EQ_INT(after.nlink, before.nlink - 1);

    /* A directory made here: not empty while it has a file, then removed without the store. */
    CHECK_EQ_INT(mkdir_(t, &e, root.ino, "ld", &ld), 0);
    CHECK_EQ_INT(mkfile(t, &e, ld.ino, "z", &z), 0);
    CHECK_EQ_INT(rm(t, &e, root.ino, "ld", true), ENOTEMPTY);
    CHECK_EQ_INT(rm(t, &e, ld.ino, "z", false), 0);
    dels = atomic_load(&s->dels);
    unsigned lists = atomic_load(&s->lists);
    CHECK_EQ_INT(rm(t, &e, root.ino, "ld", true), 0);
    CHECK_EQ_INT(atomic_load(&s->dels), dels);
    CHECK_EQ_INT(atomic_load(&s->lists), lists);
    CHECK_EQ_INT(inode_getattr(t, &e, ld.ino, &a), ESTALE);
}

/* ---- 6. inode_rename ------------------------------------------------------------------ */

static void test_rename(struct inode_table *t, struct tstore *s)
{
    struct meta_export e = export_of(s, t, "/rename", "mv/");
    struct inode_attr root, da, db, tree, sub, deep, x, y, z, loc, f1, f2, s1, big, full, emptyd, a,
        rep, fb, fa, tb, ta;
    ts_put(s, "mv/a/f1", 1, "e-f1");
    ts_put(s, "mv/a/f2", 2, "e-f2");
    ts_put(s, "mv/a/s1", 3, "e-s1");
    ts_put(s, "mv/b/", 0, "e-m");
    ts_put(s, "mv/tree/x", 1, "e-x");
    ts_put(s, "mv/tree/sub/y", 2, "e-y");
    ts_put(s, "mv/tree/sub/deep/z", 3, "e-z");
    ts_put(s, "mv/full/q", 1, "e-q");
    ts_put(s, "mv/emptyd/", 0, "e-m");
    char key[64];
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "mv/big/k%d", i);
        ts_put(s, key, 1, "e");
    }
    CHECK_EQ_INT(inode_root(t, &e, &root), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "a", &da, NULL), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "b", &db, NULL), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, da.ino, "f1", &f1, NULL), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, da.ino, "f2", &f2, NULL), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, da.ino, "s1", &s1, NULL), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "tree", &tree, NULL), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, tree.ino, "x", &x, NULL), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, tree.ino, "sub", &sub, NULL), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, sub.ino, "y", &y, NULL), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, sub.ino, "deep", &deep, NULL), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, deep.ino, "z", &z, NULL), 0);
    CHECK_EQ_INT(mkfile(t, &e, sub.ino, "loc", &loc), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "big", &big, NULL), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "full", &full, NULL), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, full.ino, "q", &a, NULL), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "emptyd", &emptyd, NULL), 0);
    unsigned copies = atomic_load(&s->copies), dels = atomic_load(&s->dels);

    /* A file never uploaded, within its directory: the table only. */
    struct inode_attr l1;
    CHECK_EQ_INT(mkfile(t, &e, da.ino, "l1", &l1), 0);
    CHECK_EQ_INT(inode_rename(t, &e, da.ino, "l1", da.ino, "l2", &rep, &fb, &fa, &tb, &ta), 0);
    CHECK_EQ_INT(rep.ino, 0);
    CHECK(fa.change > fb.change && ta.change == fa.change);
    CHECK_EQ_INT(inode_lookup(t, &e, da.ino, "l1", &a, NULL), ENOENT);
    CHECK_EQ_INT(inode_lookup(t, &e, da.ino, "l2", &a, NULL), 0);
    CHECK(a.ino == l1.ino && a.gen == l1.gen && a.local);
    CHECK(key_is(t, l1.ino, "mv/a/l2"));
    CHECK_EQ_INT(atomic_load(&s->copies), copies);
    CHECK_EQ_INT(atomic_load(&s->dels), dels);

    /* A file in the bucket, across directories: CopyObject, then DeleteObject. */
    CHECK_EQ_INT(inode_rename(t, &e, da.ino, "f1", db.ino, "g1", &rep, &fb, &fa, &tb, &ta), 0);
    CHECK_EQ_INT(atomic_load(&s->copies) - copies, 1);
    CHECK_EQ_INT(atomic_load(&s->dels) - dels, 1);
    CHECK(ts_has(s, "mv/b/g1") && !ts_has(s, "mv/a/f1"));
    CHECK(fa.ino == da.ino && ta.ino == db.ino);
    CHECK(fa.change > fb.change && ta.change > tb.change);
    CHECK_EQ_INT(inode_lookup(t, &e, db.ino, "g1", &a, NULL), 0);
    CHECK(a.ino == f1.ino && a.gen == f1.gen && a.parent == db.ino);
    CHECK(key_is(t, f1.ino, "mv/b/g1"));
    CHECK_EQ_INT(inode_lookup(t, &e, da.ino, "f1", &a, NULL), ENOENT);
    CHECK_EQ_INT(inode_getattr(t, &e, f1.ino, &a), 0); /* HEADs the new key */

    /* Over an existing file: the replaced one is returned and its handle goes stale. */
    copies = atomic_load(&s->copies);
    dels = atomic_load(&s->dels);
    CHECK_EQ_INT(mv(t, &e, da.ino, "f2", db.ino, "g1", &rep), 0);
    CHECK(rep.ino == f1.ino && rep.gen == f1.gen && rep.size == 1);
    CHECK_EQ_INT(inode_getattr(t, &e, f1.ino, &a), ESTALE);
    CHECK_EQ_INT(inode_lookup(t, &e, db.ino, "g1", &a, NULL), 0);
    CHECK(a.ino == f2.ino && a.size == 2);
    struct obj_meta m;
    CHECK(ts_head(&s->base, "bkt", "mv/b/g1", &m) == 0 && strcmp(m.etag, "e-f2") == 0);
    CHECK(!ts_has(s, "mv/a/f2"));
    CHECK_EQ_INT(atomic_load(&s->copies) - copies, 1);
    CHECK_EQ_INT(atomic_load(&s->dels) - dels, 1); /* the replaced object was overwritten */
    /* The same file under both names: nothing happens. */
    CHECK_EQ_INT(mv(t, &e, db.ino, "g1", db.ino, "g1", &rep), 0);

    /* Wrong kinds. */
    copies = atomic_load(&s->copies);
    dels = atomic_load(&s->dels);
    CHECK_EQ_INT(mv(t, &e, root.ino, "tree", sub.ino, "t2", NULL), EINVAL);
    CHECK_EQ_INT(mv(t, &e, root.ino, "tree", tree.ino, "t2", NULL), EINVAL);
    CHECK_EQ_INT(mv(t, &e, root.ino, "emptyd", root.ino, "full", NULL), ENOTEMPTY);
    CHECK_EQ_INT(mv(t, &e, db.ino, "g1", root.ino, "emptyd", NULL), EISDIR);
    CHECK_EQ_INT(mv(t, &e, root.ino, "emptyd", db.ino, "g1", NULL), ENOTDIR);
    CHECK_EQ_INT(mv(t, &e, root.ino, "nope", root.ino, "x", NULL), ENOENT);
    CHECK_EQ_INT(mv(t, &e, root.ino, ".", root.ino, "x", NULL), EINVAL);
    CHECK_EQ_INT(mv(t, &e, root.ino, "emptyd", root.ino, "a/b", NULL), EINVAL);
    CHECK_EQ_INT(atomic_load(&s->copies), copies);
    CHECK_EQ_INT(atomic_load(&s->dels), dels);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "full", &a, NULL), 0);
    CHECK_EQ_INT(a.ino, full.ino);

    /* A directory over an empty one: allowed, the empty one is replaced. */
    struct inode_attr mt;
    CHECK_EQ_INT(mkdir_(t, &e, root.ino, "mt", &mt), 0);
    CHECK_EQ_INT(mv(t, &e, root.ino, "emptyd", root.ino, "mt", &rep), 0);
    CHECK_EQ_INT(rep.ino, mt.ino);
    CHECK(ts_has(s, "mv/mt/")); /* the marker is copied before the answer ... */
    CHECK_EQ_INT(drain_moves(t, &e), 0);
    CHECK(ts_has(s, "mv/mt/") && !ts_has(s, "mv/emptyd/")); /* ... the old one goes after */

    /*
     * A directory: every descendant's key in the table at once; the files'
     * objects follow (read from the old keys meanwhile); the old tree is
     * hidden from listings until the last one has left it.
     */
    copies = atomic_load(&s->copies);
    CHECK_EQ_INT(mv(t, &e, root.ino, "tree", root.ino, "moved", NULL), 0);
    CHECK(!ts_has(s, "mv/moved/x") && ts_has(s, "mv/tree/x")); /* no file copied yet */
    CHECK(key_is(t, tree.ino, "mv/moved/"));
    CHECK(key_is(t, x.ino, "mv/tree/x")); /* its bytes are still there */
    CHECK(key_is(t, sub.ino, "mv/moved/sub/"));
    CHECK(key_is(t, deep.ino, "mv/moved/sub/deep/"));
    CHECK(key_is(t, loc.ino, "mv/moved/sub/loc"));
    CHECK_EQ_INT(inode_getattr(t, &e, x.ino, &a), 0);
    CHECK(a.moving && a.local && a.size == 1);
    CHECK_EQ_INT(inode_refresh(t, &e, root.ino, true), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "tree", &a, NULL), ENOENT);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "moved", &a, NULL), 0);
    CHECK_EQ_INT(a.ino, tree.ino);
    CHECK_EQ_INT(inode_refresh(t, &e, tree.ino, true), 0); /* nothing moved yet: kept */
    CHECK_EQ_INT(inode_lookup(t, &e, tree.ino, "x", &a, NULL), 0);
    CHECK_EQ_INT(a.ino, x.ino);
    struct inode_stats st;
    inode_get_stats(t, &st);
    CHECK_EQ_INT(st.moves_open, 1);
    uint64_t open = 0;
    CHECK_EQ_INT(inode_moves_open(t, true, e.id, &open), 0);
    CHECK_EQ_INT(open, 1);
    /* Settling before the files moved closes nothing. */
    CHECK_EQ_INT(inode_moves_settle(t, e.id, e.store, e.bucket), 0);
    CHECK_EQ_INT(ts_count(s, "mv/tree/"), 3);
    CHECK_EQ_INT(drain_moves(t, &e), 0);
    inode_get_stats(t, &st);
    CHECK_EQ_INT(st.moves_open, 0);
    CHECK(st.moved >= 3);
    CHECK(key_is(t, x.ino, "mv/moved/x"));
    CHECK(key_is(t, y.ino, "mv/moved/sub/y"));
    CHECK(key_is(t, z.ino, "mv/moved/sub/deep/z"));
    CHECK_EQ_INT(inode_getattr(t, &e, x.ino, &a), 0);
    CHECK(!a.moving && !a.local);
    CHECK_EQ_INT(ts_count(s, "mv/tree/"), 0);
    CHECK(ts_has(s, "mv/moved/x") && ts_has(s, "mv/moved/sub/y") &&
          ts_has(s, "mv/moved/sub/deep/z"));
    CHECK_EQ_INT(ts_count(s, "mv/moved/"), 3); /* loc was never uploaded */
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "moved", &a, NULL), 0);
    CHECK_EQ_INT(a.ino, tree.ino);
    CHECK_EQ_INT(inode_getattr(t, &e, z.ino, &a), 0); /* HEADs the new key */
    CHECK_EQ_INT(a.size, 3);
    struct inode_attr la;
    struct inode_dirty ld;
    char lkey[OBJ_KEY_MAX + 1];
    CHECK_EQ_INT(inode_upload_get(t, loc.ino, &la, lkey, &ld), 0);
    CHECK(strcmp(lkey, "mv/moved/sub/loc") == 0);

    /* More objects than rename_dir_max: EFBIG, and nothing changed anywhere. */
    e.rename_dir_max = 5;
    copies = atomic_load(&s->copies);
    dels = atomic_load(&s->dels);
    CHECK_EQ_INT(mv(t, &e, root.ino, "big", root.ino, "big2", NULL), EFBIG);
    e.rename_dir_max = 100;
    CHECK_EQ_INT(atomic_load(&s->copies), copies);
    CHECK_EQ_INT(atomic_load(&s->dels), dels);
    CHECK_EQ_INT(ts_count(s, "mv/big/"), 10);
    CHECK_EQ_INT(ts_count(s, "mv/big2"), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "big", &a, NULL), 0);
    CHECK_EQ_INT(a.ino, big.ino);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "big2", &a, NULL), ENOENT);

    /* Silly rename: the object stays under its key, hidden from listings. */
    copies = atomic_load(&s->copies);
    dels = atomic_load(&s->dels);
    CHECK_EQ_INT(mv(t, &e, da.ino, "s1", da.ino, ".nfs1234", NULL), 0);
    CHECK_EQ_INT(atomic_load(&s->copies), copies);
    CHECK_EQ_INT(atomic_load(&s->dels), dels);
    CHECK(ts_has(s, "mv/a/s1"));
    CHECK_EQ_INT(inode_lookup(t, &e, da.ino, ".nfs1234", &a, NULL), 0);
    CHECK(a.ino == s1.ino && a.size == 3);
    CHECK_EQ_INT(inode_refresh(t, &e, da.ino, true), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, da.ino, "s1", &a, NULL), ENOENT);
    CHECK_EQ_INT(inode_lookup(t, &e, da.ino, ".nfs1234", &a, NULL), 0);
    CHECK_EQ_INT(a.ino, s1.ino);
    CHECK_EQ_INT(rm(t, &e, da.ino, ".nfs1234", false), 0);
    CHECK(!ts_has(s, "mv/a/s1"));
    CHECK_EQ_INT(atomic_load(&s->dels) - dels, 1);
    CHECK_EQ_INT(inode_refresh(t, &e, da.ino, true), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, da.ino, "s1", &a, NULL), ENOENT);

    /*
     * Something made where a moved directory's old objects still wait
     * (mv logs logs.1; mkdir logs): a small move is finished by that call,
     * a large one answers EAGAIN (NFS3ERR_JUKEBOX) until the uploader is done.
     */
    char mkey[48];
    for (int i = 0; i < 40; i++) {
        snprintf(mkey, sizeof(mkey), "mv/%s/f%02d", i < 3 ? "few" : "lots", i);
        ts_put(s, mkey, 1, "e");
    }
    struct inode_attr few, lots, nd;
    CHECK_EQ_INT(inode_refresh(t, &e, root.ino, true), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "few", &few, NULL), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, few.ino, "f00", &a, NULL), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "lots", &lots, NULL), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, lots.ino, "f03", &a, NULL), 0);
    CHECK_EQ_INT(mv(t, &e, root.ino, "few", root.ino, "few.1", NULL), 0);
    CHECK_EQ_INT(mv(t, &e, root.ino, "lots", root.ino, "lots.1", NULL), 0);
    CHECK_EQ_INT(ts_count(s, "mv/few/"), 3);
    CHECK_EQ_INT(mkdir_(t, &e, root.ino, "few", &nd), 0);
    CHECK_EQ_INT(ts_count(s, "mv/few/"), 0);
    CHECK_EQ_INT(ts_count(s, "mv/few.1/"), 3);
    CHECK_EQ_INT(mkdir_(t, &e, root.ino, "lots", &nd), EAGAIN);
    CHECK_EQ_INT(ts_count(s, "mv/lots/"), 37);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "lots.1", &a, NULL), 0); /* the names are there */
    CHECK_EQ_INT(a.ino, lots.ino);
    /* Under the new name nothing waits: a new file, a folder, a moving file renamed. */
    struct inode_attr nf;
    CHECK_EQ_INT(mk(t, &e, lots.ino, "new", S_IFREG | 0644, &nf), 0);
    CHECK_EQ_INT(mkdir_(t, &e, lots.ino, "newd", &nd), 0);
    CHECK_EQ_INT(mv(t, &e, lots.ino, "f05", lots.ino, "f05b", NULL), 0);
    CHECK(ts_has(s, "mv/lots.1/f05b") && !ts_has(s, "mv/lots/f05"));
    CHECK_EQ_INT(ts_count(s, "mv/lots/"), 36);
    CHECK_EQ_INT(drain_moves(t, &e), 0);
    CHECK_EQ_INT(mkdir_(t, &e, root.ino, "lots", &nd), 0);
    CHECK_EQ_INT(ts_count(s, "mv/lots/"), 0);
    CHECK_EQ_INT(ts_count(s, "mv/lots.1/"), 37);
}

/* ---- 7. the rename journal ------------------------------------------------------------ */

/* Fail the copy whose source is `key` with `err`. */
struct fail_at {
    const char *op, *key;
    int err;
};

static int fail_hook(void *arg, const char *op, const char *key)
{
    const struct fail_at *f = arg;
    return strcmp(op, f->op) == 0 && strcmp(key, f->key) == 0 ? f->err : 0;
}

/*
 * jr/t holds k1..k4 (listed into the table) and u/k0, u/k5 (u never
 * listed); is it all there, under its old name, in the table and the bucket?
 */
static void check_unmoved(struct inode_table *t, struct tstore *s, const struct meta_export *e,
                          uint64_t root, uint64_t tdir, uint64_t k1)
{
    struct inode_attr a;
    CHECK_EQ_INT(ts_count(s, "jr/t/"), 6);
    CHECK_EQ_INT(ts_count(s, "jr/t2/"), 0);
    CHECK_EQ_INT(inode_lookup(t, e, root, "t", &a, NULL), 0);
    CHECK_EQ_INT(a.ino, tdir);
    CHECK_EQ_INT(inode_lookup(t, e, root, "t2", &a, NULL), ENOENT);
    CHECK(key_is(t, k1, "jr/t/k1"));
}

static void test_journal(struct inode_table *t, struct tstore *s)
{
    struct meta_export e = export_of(s, t, "/journal", "jr/");
    const struct meta_export *ev[] = {&e};
    struct inode_attr root, d, k1, a, f;
    char key[32];
    for (int i = 1; i <= 4; i++) {
        snprintf(key, sizeof(key), "jr/t/k%d", i);
        ts_put(s, key, 1, "e");
    }
    ts_put(s, "jr/t/u/k0", 1, "e");
    ts_put(s, "jr/t/u/k5", 1, "e");
    ts_put(s, "jr/f", 1, "e-f");
    CHECK_EQ_INT(inode_root(t, &e, &root), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "t", &d, NULL), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, d.ino, "k1", &k1, NULL), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "f", &f, NULL), 0);

    /*
     * A copy made before the answer (of an object the table does not know)
     * fails: the rename fails and the copies made go.
     */
    struct fail_at k5 = {"copy", "jr/t/u/k5", EIO};
    s->hook_arg = &k5;
    s->hook = fail_hook;
    CHECK_EQ_INT(mv(t, &e, root.ino, "t", root.ino, "t2", NULL), EIO);
    s->hook = NULL;
    check_unmoved(t, s, &e, root.ino, d.ino, k1.ino);
    unsigned dels = atomic_load(&s->dels);
    CHECK_EQ_INT(inode_journal_replay(t, ev, 1), 0); /* nothing left to do */
    CHECK_EQ_INT(atomic_load(&s->dels), dels);
    /*
     * A file: the table moves first, the object follows; a failed copy
     * leaves it to the uploader (reads find it at the old key meanwhile).
     */
    struct fail_at file = {"copy", "jr/f", EAGAIN};
    s->hook_arg = &file;
    s->hook = fail_hook;
    CHECK_EQ_INT(mv(t, &e, root.ino, "f", root.ino, "g", NULL), 0);
    s->hook = NULL;
    CHECK(ts_has(s, "jr/f") && !ts_has(s, "jr/g"));
    CHECK(key_is(t, f.ino, "jr/f"));
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "g", &a, NULL), 0);
    CHECK(a.ino == f.ino && a.moving);
    CHECK_EQ_INT(drain_moves(t, &e), 0);
    CHECK(!ts_has(s, "jr/f") && ts_has(s, "jr/g"));
    CHECK(key_is(t, f.ino, "jr/g"));
    CHECK_EQ_INT(inode_getattr(t, &e, f.ino, &a), 0);
    CHECK(!a.moving && !a.local);
    /*
     * Over an uploaded file, the copy failing: the target's object is not
     * touched before the table says it is replaced (no undo deletes it).
     */
    struct inode_attr h, rep;
    ts_put(s, "jr/h", 2, "e-h");
    CHECK_EQ_INT(inode_refresh(t, &e, root.ino, true), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "h", &h, NULL), 0);
    struct fail_at gcopy = {"copy", "jr/g", EIO};
    s->hook_arg = &gcopy;
    s->hook = fail_hook;
    CHECK_EQ_INT(mv(t, &e, root.ino, "g", root.ino, "h", &rep), 0);
    s->hook = NULL;
    CHECK_EQ_INT(rep.ino, h.ino);
    struct obj_meta om;
    CHECK(ts_head(&s->base, "bkt", "jr/h", &om) == 0 && strcmp(om.etag, "e-h") == 0);
    CHECK(key_is(t, f.ino, "jr/g")); /* read from there until it moved */
    CHECK_EQ_INT(drain_moves(t, &e), 0);
    CHECK(ts_head(&s->base, "bkt", "jr/h", &om) == 0 && strcmp(om.etag, "e-f") == 0);
    CHECK(!ts_has(s, "jr/g"));
    CHECK(key_is(t, f.ino, "jr/h"));
    /* A target still moving, replaced: its object at the old key goes with it. */
    struct inode_attr pa, qa;
    ts_put(s, "jr/p", 1, "e-p");
    ts_put(s, "jr/q", 1, "e-q");
    CHECK_EQ_INT(inode_refresh(t, &e, root.ino, true), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "p", &pa, NULL), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "q", &qa, NULL), 0);
    struct fail_at pcopy = {"copy", "jr/p", EIO};
    s->hook_arg = &pcopy;
    s->hook = fail_hook;
    CHECK_EQ_INT(mv(t, &e, root.ino, "p", root.ino, "p2", NULL), 0);
    s->hook = NULL;
    CHECK(ts_has(s, "jr/p") && !ts_has(s, "jr/p2"));
    CHECK_EQ_INT(mv(t, &e, root.ino, "q", root.ino, "p2", &rep), 0);
    CHECK_EQ_INT(rep.ino, pa.ino);
    CHECK(!ts_has(s, "jr/p") && !ts_has(s, "jr/q"));
    CHECK(ts_head(&s->base, "bkt", "jr/p2", &om) == 0 && strcmp(om.etag, "e-q") == 0);
    CHECK_EQ_INT(drain_moves(t, &e), 0);
    CHECK(ts_head(&s->base, "bkt", "jr/p2", &om) == 0 && strcmp(om.etag, "e-q") == 0);

    /* Phase 1 left behind: the copy fails and so does the undo; the next start undoes it. */
    s->hook_arg = &k5;
    s->hook = fail_hook;
    s->fail_del = EAGAIN;
    CHECK_EQ_INT(mv(t, &e, root.ino, "t", root.ino, "t2", NULL), EIO);
    s->hook = NULL;
    s->fail_del = 0;
    CHECK_EQ_INT(ts_count(s, "jr/t2/"), 1);          /* u/k0 copied */
    CHECK_EQ_INT(inode_journal_replay(t, ev, 0), 0); /* its export not served: kept */
    CHECK_EQ_INT(ts_count(s, "jr/t2/"), 1);
    CHECK_EQ_INT(inode_journal_replay(t, ev, 1), 0);
    check_unmoved(t, s, &e, root.ino, d.ino, k1.ino);
    dels = atomic_load(&s->dels);
    CHECK_EQ_INT(inode_journal_replay(t, ev, 1), 0); /* done once only */
    CHECK_EQ_INT(atomic_load(&s->dels), dels);

    /*
     * Phase 3: the table moved at once, the unknown objects were copied,
     * the files follow; the old objects cannot be deleted at first.
     */
    CHECK_EQ_INT(mv(t, &e, root.ino, "t", root.ino, "t2", NULL), 0);
    CHECK_EQ_INT(ts_count(s, "jr/t2/"), 2); /* u/k0 and u/k5 */
    CHECK(key_is(t, k1.ino, "jr/t/k1"));    /* read from there until it moved */
    s->fail_del = EAGAIN;
    CHECK_EQ_INT(drain_moves(t, &e), EAGAIN);
    s->fail_del = 0;
    CHECK_EQ_INT(ts_count(s, "jr/t/"), 6);
    CHECK_EQ_INT(ts_count(s, "jr/t2/"), 6);
    CHECK(key_is(t, k1.ino, "jr/t2/k1"));
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "t2", &a, NULL), 0);
    CHECK_EQ_INT(a.ino, d.ino);
    dels = atomic_load(&s->dels);
    CHECK_EQ_INT(inode_journal_replay(t, ev, 1), 0); /* a restart: left to the uploader */
    CHECK_EQ_INT(atomic_load(&s->dels), dels);
    uint64_t open = 0;
    CHECK_EQ_INT(inode_moves_open(t, false, 0, &open), 0);
    CHECK_EQ_INT(open, 1);
    CHECK_EQ_INT(drain_moves(t, &e), 0); /* the left-over objects go, then the journal */
    CHECK_EQ_INT(ts_count(s, "jr/t/"), 0);
    CHECK_EQ_INT(ts_count(s, "jr/t2/"), 6);
    CHECK_EQ_INT(inode_moves_open(t, false, 0, &open), 0);
    CHECK_EQ_INT(open, 0);
    CHECK_EQ_INT(inode_refresh(t, &e, root.ino, true), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "t", &a, NULL), ENOENT);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "t2", &a, NULL), 0);
    CHECK_EQ_INT(a.ino, d.ino);
    dels = atomic_load(&s->dels);
    CHECK_EQ_INT(inode_journal_replay(t, ev, 1), 0);
    CHECK_EQ_INT(drain_moves(t, &e), 0);
    CHECK_EQ_INT(atomic_load(&s->dels), dels);
}

/* Torn or corrupted write-path records, written raw into misc.db. */
struct raw_rec {
    const void *key, *val;
    size_t klen, vlen;
};

static int raw_put_fn(struct inode_table *t, DB_TXN *txn, void *arg)
{
    const struct raw_rec *r = arg;
    return misc_put(t, txn, r->key, r->klen, r->val, r->vlen);
}

static void raw_put(struct inode_table *t, const void *key, size_t klen, const void *val,
                    size_t vlen)
{
    struct raw_rec r = {key, val, klen, vlen};
    CHECK_EQ_INT(txn_run(t, raw_put_fn, &r, true), 0);
}

static void raw_key(uint8_t kb[9], char tag, uint64_t ino)
{
    kb[0] = (uint8_t)tag;
    put_be64(kb + 1, ino);
}

/*
 * Recovery reads the rename journal and the write-back records back from
 * disk: a corrupt record is dropped or skipped, never crashes the start,
 * never stops it (replay returns 0), never deletes an object no rename
 * copied, and never hides the intact records after it.
 */
static void test_corrupt_records(struct inode_table *t, struct tstore *s)
{
    struct meta_export e = export_of(s, t, "/corrupt", "jx/");
    const struct meta_export *ev[] = {&e};
    uint8_t kb[9], v[64];
    ts_put(s, "jx/c/k", 1, "e");
    ts_put(s, "jx/d/k", 1, "e");
    unsigned dels = atomic_load(&s->dels);

    /* A phase of neither 1 nor 2 (read as "roll forward" before: the old objects went). */
    struct rjrec h = {.export_id = e.id, .phase = 7, .nkeys = 1};
    memcpy(v, &h, sizeof(h));
    memcpy(v + sizeof(h), "jx/c/\0jx/e/", 12);
    raw_key(kb, 'J', 0xE000000000000001ull);
    raw_put(t, kb, 9, v, sizeof(h) + 12);
    uint8_t jb[13];
    memcpy(jb, kb, 9);
    jb[0] = 'j';
    memset(jb + 9, 0, 4);
    raw_put(t, jb, 13, "jx/c/k", 6);
    /* One prefix only (the second one was read past the record's end). */
    h.phase = 2;
    memcpy(v, &h, sizeof(h));
    memcpy(v + sizeof(h), "jx/d/", 6);
    raw_key(kb, 'J', 0xE000000000000002ull);
    raw_put(t, kb, 9, v, sizeof(h) + 6);
    jb[8] = 2;
    raw_put(t, jb, 13, "jx/d/k", 6);
    /* A key longer than any object key (stopped the start before), in an intact phase 1. */
    h.phase = 1;
    memcpy(v, &h, sizeof(h));
    memcpy(v + sizeof(h), "jx/d/\0jx/f/", 12);
    raw_key(kb, 'J', 0xE000000000000003ull);
    raw_put(t, kb, 9, v, sizeof(h) + 12);
    char *big = malloc(OBJ_KEY_MAX + 100);
    memset(big, 'a', OBJ_KEY_MAX + 100);
    jb[8] = 3;
    raw_put(t, jb, 13, big, OBJ_KEY_MAX + 100);
    /* A "K" key longer than the replay's key buffer, after the "J" records. */
    big[0] = 'K';
    raw_put(t, big, 200, &h, 8);
    free(big);

    CHECK_EQ_INT(inode_journal_replay(t, ev, 1), 0);
    CHECK(ts_has(s, "jx/c/k"));
    CHECK(ts_has(s, "jx/d/k"));
    CHECK_EQ_INT(atomic_load(&s->dels) - dels, 1); /* the intact one's undo: the jx/f/ marker */
    dels = atomic_load(&s->dels);
    CHECK_EQ_INT(inode_journal_replay(t, ev, 1), 0); /* the corrupt ones dropped: once only */
    CHECK_EQ_INT(atomic_load(&s->dels), dels);

    /* A "W" record too long, then an intact one: the scan skips the first, finds the second. */
    struct wbrec w = {.dver = 3, .first_ns = 1, .last_ns = 2, .export_id = e.id};
    memset(v, 0x5a, sizeof(v));
    raw_key(kb, 'W', 0xE000000000000001ull);
    raw_put(t, kb, 9, v, sizeof(v));
    raw_key(kb, 'W', 0xE000000000000002ull);
    raw_put(t, kb, 9, &w, sizeof(w));
    struct inode_dirty d[4];
    size_t n = 0;
    CHECK_EQ_INT(inode_dirty_scan(t, 0xE000000000000000ull, d, 4, &n), 0);
    CHECK_EQ_INT(n, 1);
    CHECK(n == 1 && d[0].ino == 0xE000000000000002ull && d[0].dver == 3);
    /* The first layout (32 bytes) reads with no base. */
    w.base_size = w.clean_below = 77;
    raw_key(kb, 'W', 0xE000000000000003ull);
    raw_put(t, kb, 9, &w, WBREC_V1_SIZE);
    CHECK_EQ_INT(inode_dirty_scan(t, 0xE000000000000002ull, d, 4, &n), 0);
    CHECK(n == 1 && d[0].ino == 0xE000000000000003ull && d[0].base_size == 0 &&
          d[0].clean_below == 0);
}

/*
 * The same after a kill -9: a child renames jc/t (k1..k4) to jc/t2 and is
 * killed at a store call - after sending the bucket's keys up the pipe, so
 * that this process's copy of the store becomes the bucket the crash left.
 * A table opened afterwards replays the journal.
 */
struct crash_at {
    const char *op, *key;
    struct tstore *s;
    int fd;
};

static int crash_hook(void *arg, const char *op, const char *key)
{
    struct crash_at *c = arg;
    if (strcmp(op, c->op) != 0 || strcmp(key, c->key) != 0)
        return 0;
    pthread_mutex_lock(&c->s->mu);
    for (size_t i = 0; i < c->s->n; i++)
        if (write(c->fd, c->s->v[i].key, strlen(c->s->v[i].key) + 1) < 0)
            _exit(3);
    raise(SIGKILL);
    return 0;
}

/*
 * Rename jc/<from> to jc/<to> in a child, then move its files as the
 * uploader would, killed at op on key; the store becomes what it left.
 * Killed?
 */
static bool crash_rename(struct tstore *s, const char *from, const char *to, const char *op,
                         const char *key)
{
    int pfd[2];
    if (pipe(pfd) != 0)
        return false;
    pid_t pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        struct inode_table *t = inode_open(crash_dir, 0);
        struct inode_attr root, d, a;
        if (!t)
            _exit(2);
        struct meta_export e = export_of(s, t, "/crash", "jc/");
        if (inode_root(t, &e, &root) || inode_lookup(t, &e, root.ino, from, &d, NULL) ||
            inode_lookup(t, &e, d.ino, "k1", &a, NULL))
            _exit(2);
        struct crash_at c = {op, key, s, pfd[1]};
        s->hook_arg = &c;
        s->hook = crash_hook;
        if (mv(t, &e, root.ino, from, root.ino, to, NULL) == 0)
            drain_moves(t, &e);
        _exit(4); /* not killed */
    }
    close(pfd[1]);
    /* The child's keys, NUL-terminated, in order. */
    size_t len = 0, cap = 1 << 16;
    char *buf = malloc(cap);
    ssize_t n;
    while (buf && (n = read(pfd[0], buf + len, cap - len)) > 0)
        len += (size_t)n;
    close(pfd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    bool killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    /* This store becomes the child's: what it had is put, what it had not is deleted. */
    for (size_t off = 0; buf && killed && off < len; off += strlen(buf + off) + 1)
        if (!ts_has(s, buf + off))
            ts_put(s, buf + off, 1, "copied");
    for (size_t i = 0; buf && killed && i < s->n;) {
        bool kept = false;
        for (size_t off = 0; off < len && !kept; off += strlen(buf + off) + 1)
            kept = strcmp(buf + off, s->v[i].key) == 0;
        if (!kept && strncmp(s->v[i].key, "jc/", 3) == 0) {
            char k[OBJ_KEY_MAX + 1];
            snprintf(k, sizeof(k), "%s", s->v[i].key);
            ts_del(s, k);
            continue; /* the next key moved to i */
        }
        i++;
    }
    free(buf);
    return killed;
}

/* After a crash: the journal replayed, the files moved; is jc/<name> complete (5 objects)? */
static void check_crash_moved(struct tstore *s, const char *gone, const char *name)
{
    struct inode_attr root, a, k1;
    struct inode_table *t = inode_open(crash_dir, 0);
    CHECK(t != NULL);
    if (!t)
        return;
    struct meta_export e = export_of(s, t, "/crash", "jc/");
    const struct meta_export *ev[] = {&e};
    char p[32], want[48];
    CHECK_EQ_INT(inode_journal_replay(t, ev, 1), 0);
    CHECK_EQ_INT(drain_moves(t, &e), 0);
    snprintf(p, sizeof(p), "jc/%s/", gone);
    CHECK_EQ_INT(ts_count(s, p), 0);
    snprintf(p, sizeof(p), "jc/%s/", name);
    CHECK_EQ_INT(ts_count(s, p), 5);
    CHECK_EQ_INT(inode_root(t, &e, &root), 0);
    CHECK_EQ_INT(inode_refresh(t, &e, root.ino, true), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, gone, &a, NULL), ENOENT);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, name, &a, NULL), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, a.ino, "k1", &k1, NULL), 0);
    snprintf(want, sizeof(want), "jc/%s/k1", name);
    CHECK(key_is(t, k1.ino, want));
    uint64_t open = 1;
    CHECK_EQ_INT(inode_moves_open(t, false, 0, &open), 0);
    CHECK_EQ_INT(open, 0);
    inode_close(t); /* its threads end: the next fork is safe */
}

/* Run before this process has threads or an open table (it forks). */
static void test_journal_crash(struct tstore *s)
{
    char key[32];
    for (int i = 1; i <= 4; i++) {
        snprintf(key, sizeof(key), "jc/t/k%d", i);
        ts_put(s, key, 1, "e");
    }
    ts_put(s, "jc/t/u/k5", 1, "e"); /* under a folder never listed: copied before the answer */
    struct inode_attr root, a;

    /* Killed before copying u/k5: the table has not moved; the next start undoes it. */
    CHECK(crash_rename(s, "t", "t2", "copy", "jc/t/u/k5"));
    struct inode_table *t = inode_open(crash_dir, 0);
    CHECK(t != NULL);
    if (!t)
        return;
    struct meta_export e = export_of(s, t, "/crash", "jc/");
    const struct meta_export *ev[] = {&e};
    CHECK_EQ_INT(inode_journal_replay(t, ev, 1), 0);
    CHECK_EQ_INT(ts_count(s, "jc/t2/"), 0);
    CHECK_EQ_INT(ts_count(s, "jc/t/"), 5);
    CHECK_EQ_INT(inode_root(t, &e, &root), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "t", &a, NULL), 0);
    CHECK_EQ_INT(inode_lookup(t, &e, root.ino, "t2", &a, NULL), ENOENT);
    inode_close(t);

    /* Killed while moving k3 after the answer: the next start moves the rest. */
    CHECK(crash_rename(s, "t", "t2", "copy", "jc/t/k3"));
    CHECK(ts_count(s, "jc/t2/") >= 1 && ts_count(s, "jc/t/") >= 2);
    check_crash_moved(s, "t", "t2");

    /* Killed between moving k3 and deleting its old object: the object is deleted later. */
    CHECK(crash_rename(s, "t2", "t", "del", "jc/t2/k3"));
    CHECK(ts_has(s, "jc/t2/k3") && ts_has(s, "jc/t/k3"));
    check_crash_moved(s, "t2", "t");
}

/* ---- 8. inode_change and the write-back records --------------------------------------- */

static bool later(int64_t s1, uint32_t n1, int64_t s0, uint32_t n0)
{
    return s1 > s0 || (s1 == s0 && n1 > n0);
}

struct remover {
    struct inode_table *t;
    const struct meta_export *e;
    uint64_t dir;
    int rc;
    atomic_bool done;
};

static void *remover_main(void *p)
{
    struct remover *r = p;
    r->rc = rm(r->t, r->e, r->dir, "busy", false);
    atomic_store(&r->done, true);
    return NULL;
}

static void test_change(struct inode_table *t, struct tstore *s)
{
    struct meta_export e = export_of(s, t, "/change", "ch/");
    struct meta_export other = export_of(s, t, "/change-other", "ch/");
    struct inode_attr root, f, sd, a, b;
    CHECK_EQ_INT(inode_root(t, &e, &root), 0);
    CHECK_EQ_INT(mkfile(t, &e, root.ino, "f", &f), 0);
    CHECK_EQ_INT(mkdir_(t, &e, root.ino, "sd", &sd), 0);
    uint64_t v = dver_of(t, f.ino);
    CHECK(v > 0);

    /* SETATTR's guard: a ctime other than the file's changes nothing. */
    struct inode_change g = {.set_mode = true,
                             .mode = 0600,
                             .guard = true,
                             .guard_sec = f.ctime_sec + 1,
                             .guard_nsec = f.ctime_nsec};
    CHECK_EQ_INT(inode_change(t, &e, f.ino, &g, NULL, NULL), INODE_ENOTSYNC);
    CHECK_EQ_INT(inode_getattr(t, &e, f.ino, &a), 0);
    CHECK(same_attr(&a, &f));
    CHECK_EQ_INT(dver_of(t, f.ino), v);
    g.guard_sec = f.ctime_sec;
    CHECK_EQ_INT(inode_change(t, &e, f.ino, &g, &b, &a), 0);
    CHECK(same_attr(&b, &f));
    CHECK_EQ_INT(a.mode, S_IFREG | 0600);
    CHECK(a.change > f.change);
    CHECK_EQ_INT(dver_of(t, f.ino), ++v);

    /* No size on a directory; a file or directory of another export is stale. */
    struct inode_change sz = {.set_size = true, .size = 10};
    CHECK_EQ_INT(inode_change(t, &e, sd.ino, &sz, NULL, NULL), EISDIR);
    struct inode_change wr = {.write_end = 10};
    CHECK_EQ_INT(inode_change(t, &e, sd.ino, &wr, NULL, NULL), EISDIR);
    CHECK_EQ_INT(inode_change(t, &other, f.ino, &sz, NULL, NULL), ESTALE);
    CHECK_EQ_INT(inode_change(t, &e, 999999999, &sz, NULL, NULL), ESTALE);
    struct inode_change dmode = {.set_mode = true, .mode = 0700};
    CHECK_EQ_INT(inode_change(t, &e, sd.ino, &dmode, NULL, &a), 0);
    CHECK_EQ_INT(a.mode, S_IFDIR | 0700);

    /* A write grows the size to its end and moves mtime; one inside it moves mtime only. */
    usleep(2000);
    struct inode_change w = {.write_end = 100, .staged = true};
    CHECK_EQ_INT(inode_change(t, &e, f.ino, &w, &b, &a), 0);
    CHECK_EQ_INT(a.size, 100);
    CHECK(later(a.mtime_sec, a.mtime_nsec, b.mtime_sec, b.mtime_nsec));
    CHECK(a.staged && a.local);
    CHECK_EQ_INT(dver_of(t, f.ino), ++v);
    usleep(2000);
    w.write_end = 50;
    CHECK_EQ_INT(inode_change(t, &e, f.ino, &w, &b, &a), 0);
    CHECK_EQ_INT(a.size, 100);
    CHECK(later(a.mtime_sec, a.mtime_nsec, b.mtime_sec, b.mtime_nsec));
    CHECK_EQ_INT(dver_of(t, f.ino), ++v);
    /* Truncate, and an explicit mtime. */
    sz.size = 7;
    CHECK_EQ_INT(inode_change(t, &e, f.ino, &sz, NULL, &a), 0);
    CHECK_EQ_INT(a.size, 7);
    CHECK_EQ_INT(dver_of(t, f.ino), ++v);
    struct inode_change mt = {.set_mtime = true, .mtime_sec = 1600000000, .mtime_nsec = 9};
    CHECK_EQ_INT(inode_change(t, &e, f.ino, &mt, NULL, &a), 0);
    CHECK(a.mtime_sec == 1600000000 && a.mtime_nsec == 9);
    CHECK_EQ_INT(dver_of(t, f.ino), ++v);
    /* An atime-only change moves ctime, not the data version. */
    usleep(2000);
    struct inode_change at = {.touch_ctime = true};
    CHECK_EQ_INT(inode_change(t, &e, f.ino, &at, &b, &a), 0);
    CHECK(later(a.ctime_sec, a.ctime_nsec, b.ctime_sec, b.ctime_nsec));
    CHECK(a.mtime_sec == 1600000000 && a.size == 7);
    CHECK_EQ_INT(dver_of(t, f.ino), v);
    CHECK_EQ_INT(inode_sync(t), 0);

    /* An upload of an older version: in the bucket now, but still local. */
    struct inode_dirty d;
    char key[OBJ_KEY_MAX + 1];
    bool clean = true, moved = true;
    CHECK_EQ_INT(inode_upload_get(t, f.ino, &a, key, &d), 0);
    CHECK(strcmp(key, "ch/f") == 0 && d.dver == v && a.size == 7);
    CHECK(d.first_ns > 0 && d.last_ns >= d.first_ns);
    ts_put(s, key, a.size, "e-v1");
    CHECK_EQ_INT(inode_change(t, &e, f.ino, &w, NULL, NULL), 0); /* a write meanwhile */
    CHECK_EQ_INT(inode_upload_done(t, f.ino, d.dver, key, "e-v1", &clean, &moved), 0);
    CHECK(!clean && !moved);
    CHECK_EQ_INT(inode_getattr(t, &e, f.ino, &a), 0);
    CHECK(a.local && a.in_bucket && a.size == 50);
    CHECK_EQ_INT(dver_of(t, f.ino), v + 1);
    CHECK(upload(t, s, f.ino, "e-v2"));
    CHECK_EQ_INT(inode_getattr(t, &e, f.ino, &a), 0);
    CHECK(!a.local && !a.staged && a.in_bucket && strcmp(a.etag, "e-v2") == 0);
    CHECK_EQ_INT(inode_upload_get(t, f.ino, &a, key, &d), ENOENT);

    /* Renamed while it was uploaded: the object written is not the file's any more. */
    struct inode_attr r1;
    CHECK_EQ_INT(mkfile(t, &e, root.ino, "r1", &r1), 0);
    CHECK_EQ_INT(inode_upload_get(t, r1.ino, &a, key, &d), 0);
    CHECK_EQ_INT(mv(t, &e, root.ino, "r1", root.ino, "r2", NULL), 0);
    CHECK_EQ_INT(inode_upload_done(t, r1.ino, d.dver, key, "e-r", &clean, &moved), 0);
    CHECK(moved && !clean);
    CHECK_EQ_INT(inode_upload_get(t, r1.ino, &a, key, &d), 0);
    CHECK(strcmp(key, "ch/r2") == 0 && a.local);

    /* The dirty scan: local inodes in order, clean ones not; paged by `after`. */
    struct inode_attr x1, x2, x3;
    CHECK_EQ_INT(mkfile(t, &e, root.ino, "x1", &x1), 0);
    CHECK_EQ_INT(mkfile(t, &e, root.ino, "x2", &x2), 0);
    CHECK_EQ_INT(mkfile(t, &e, root.ino, "x3", &x3), 0);
    CHECK(upload(t, s, x2.ino, "e-x2"));
    struct inode_dirty list[64];
    size_t n = 0;
    CHECK_EQ_INT(inode_dirty_scan(t, 0, list, 64, &n), 0);
    bool ordered = true, has1 = false, has2 = false, has3 = false, hasf = false;
    for (size_t i = 0; i < n; i++) {
        if (i && list[i].ino <= list[i - 1].ino)
            ordered = false;
        has1 |= list[i].ino == x1.ino;
        has2 |= list[i].ino == x2.ino;
        has3 |= list[i].ino == x3.ino;
        hasf |= list[i].ino == f.ino;
        if (list[i].ino == x1.ino)
            CHECK(list[i].export_id == e.id && list[i].dver == dver_of(t, x1.ino));
    }
    CHECK(n < 64 && ordered && has1 && !has2 && has3 && !hasf);
    CHECK_EQ_INT(inode_dirty_scan(t, x1.ino, list, 1, &n), 0);
    CHECK(n == 1 && list[0].ino == x3.ino);
    CHECK_EQ_INT(inode_dirty_scan(t, x3.ino, list, 64, &n), 0);
    for (size_t i = 0; i < n; i++)
        CHECK(list[i].ino > x3.ino);
    uint64_t count = 0;
    int64_t oldest = 0;
    inode_dirty_summary(t, &count, &oldest);
    CHECK(count >= 3 && oldest > 0);

    /* Multipart records. */
    struct inode_mp mp = {.dver = 3, .part_size = 5 << 20, .upload_id = "up-1", .key = "ch/x1"};
    struct inode_mp mq;
    CHECK_EQ_INT(inode_mp_get(t, x1.ino, &mq), ENOENT);
    CHECK_EQ_INT(inode_mp_put(t, x1.ino, &mp), 0);
    CHECK_EQ_INT(inode_mp_get(t, x1.ino, &mq), 0);
    CHECK(mq.dver == 3 && mq.part_size == 5 << 20 && strcmp(mq.upload_id, "up-1") == 0 &&
          strcmp(mq.key, "ch/x1") == 0);
    CHECK_EQ_INT(inode_mp_del(t, x1.ino), 0);
    CHECK_EQ_INT(inode_mp_get(t, x1.ino, &mq), ENOENT);

    /* A remove waits for the upload running, which is told it is wanted. */
    struct inode_attr busy;
    CHECK_EQ_INT(mkfile(t, &e, root.ino, "busy", &busy), 0);
    CHECK_EQ_INT(inode_upload_get(t, busy.ino, &a, key, &d), 0);
    CHECK_EQ_INT(inode_upload_begin(t, busy.ino), 0);
    CHECK_EQ_INT(inode_upload_begin(t, busy.ino), EBUSY);
    CHECK(!inode_upload_wanted(t, busy.ino));
    struct remover r = {.t = t, .e = &e, .dir = root.ino};
    pthread_t th;
    pthread_create(&th, NULL, remover_main, &r);
    bool wanted = false;
    for (int i = 0; i < 1000 && !wanted; i++) {
        wanted = inode_upload_wanted(t, busy.ino);
        if (!wanted)
            usleep(5000);
    }
    CHECK(wanted);
    usleep(50000);
    CHECK(!atomic_load(&r.done));
    /* The upload puts the object and ends: the remove, now, deletes it. */
    ts_put(s, key, 0, "e-busy");
    CHECK_EQ_INT(inode_upload_done(t, busy.ino, d.dver, key, "e-busy", &clean, &moved), 0);
    CHECK(clean);
    unsigned dels = atomic_load(&s->dels);
    inode_upload_end(t, busy.ino);
    pthread_join(th, NULL);
    CHECK_EQ_INT(r.rc, 0);
    CHECK_EQ_INT(atomic_load(&s->dels) - dels, 1);
    CHECK(!ts_has(s, key));
    CHECK(!inode_upload_wanted(t, busy.ino));
    CHECK_EQ_INT(inode_getattr(t, &e, busy.ino, &a), ESTALE);
}

int main(void)
{
    log_init("test_inode_write", 1, LOG_ERR);
    alarm(300); /* a hang (an upload and a namespace change waiting on each other) fails */
    strcpy(state_dir, "/tmp/test_inode_write.XXXXXX");
    strcpy(crash_dir, "/tmp/test_inode_write_c.XXXXXX");
    if (!mkdtemp(state_dir) || !mkdtemp(crash_dir)) {
        perror("mkdtemp");
        return 2;
    }
    struct tstore *s = ts_create();

    /* The crash tests fork: first, before this process has threads. */
    test_journal_crash(s);

    struct inode_table *t = inode_open(state_dir, 0);
    CHECK(t != NULL);
    if (!t)
        return TEST_DONE();
    test_local_wins(t, s);
    test_upload_during_listing(t, s);
    test_head_404_local(t, s);
    test_create(t, s);
    test_remove(t, s);
    test_rename(t, s);
    test_journal(t, s);
    test_change(t, s);
    test_corrupt_records(t, s);
    inode_close(t);
    ts_destroy(&s->base);

    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf %s %s", state_dir, crash_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", state_dir);
    return TEST_DONE();
}
