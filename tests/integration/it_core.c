/*
 * it_core.c - the core server as libnfs sees it.
 *
 *   it_core URL SRC_DIR [slow-name fast-name]
 *
 * URL is nfs://127.0.0.1/demo?nfsport=P&mountport=M.  SRC_DIR is the
 * bucket folder the export serves (the dir store), walked here with plain
 * POSIX calls to know what the NFS side must show: the tree (every level),
 * every file's size, type and bytes, reads past EOF, missing names.
 * With slow-name/fast-name (the daemon injects latency on slow-name's key),
 * a read of fast-name issued after a read of slow-name on the same
 * connection must complete first: one slow fetch never stalls the others.
 *
 * BNFS_IT_NO_MTIME=1 in the environment skips the mtime comparison, for a
 * source that is a mirror of a bucket (an object's Last-Modified is its
 * upload time, not the mirror file's mtime); sizes, types, modes and bytes
 * are still compared.
 */

#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <nfsc/libnfs.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tests/unit/testlib.h"

static struct nfs_context *nfs;
static const char *src;
static unsigned files_read, dirs_listed;
static unsigned long long bytes_read;
static bool no_mtime;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of a local directory (without . and ..). */
static size_t local_names(const char *path, char ***out)
{
    DIR *d = opendir(path);
    size_t n = 0, cap = 64;
    char **v = malloc(cap * sizeof(*v));
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (n == cap)
            v = realloc(v, (cap *= 2) * sizeof(*v));
        v[n++] = strdup(e->d_name);
    }
    if (d)
        closedir(d);
    qsort(v, n, sizeof(*v), cmp_str);
    *out = v;
    return n;
}

static void free_names(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Compare one regular file's bytes through NFS with the source, in 1 MiB reads. */
static void check_file(const char *rel, const struct stat *st)
{
    char lpath[4096];
    if (snprintf(lpath, sizeof(lpath), "%s/%s", src, rel) >= (int)sizeof(lpath))
        return;
    struct nfsfh *fh = NULL;
    int rc = nfs_open(nfs, rel, O_RDONLY, &fh);
    if (rc) {
        fprintf(stderr, "open %s: %s\n", rel, nfs_get_error(nfs));
        CHECK(rc == 0);
        return;
    }
    int fd = open(lpath, O_RDONLY);
    size_t bs = 1024 * 1024;
    char *a = malloc(bs), *b = malloc(bs);
    uint64_t off = 0;
    bool same = true;
    for (;;) {
        int n = nfs_pread(nfs, fh, off, bs, a);
        ssize_t m = pread(fd, b, bs, (off_t)off);
        if (n < 0 || m < 0 || n != m || memcmp(a, b, (size_t)n) != 0) {
            fprintf(stderr, "content differs: %s at %llu (nfs %d, local %zd)\n", rel,
                    (unsigned long long)off, n, m);
            same = false;
            break;
        }
        if (n == 0)
            break;
        off += (uint64_t)n;
        bytes_read += (uint64_t)n;
    }
    CHECK(same);
    CHECK_EQ_INT(off, st->st_size);
    /* Past EOF: zero bytes, no error. */
    CHECK_EQ_INT(nfs_pread(nfs, fh, (uint64_t)st->st_size + 100, 4096, a), 0);
    CHECK_EQ_INT(nfs_pread(nfs, fh, (uint64_t)st->st_size, 4096, a), 0);
    if (st->st_size > 10) {
        /* A read that straddles EOF returns the tail only. */
        CHECK_EQ_INT(nfs_pread(nfs, fh, (uint64_t)st->st_size - 10, 4096, a), 10);
    }
    files_read++;
    free(a);
    free(b);
    close(fd);
    nfs_close(nfs, fh);
}

/* Walk rel (a directory) on both sides: same names, same types and sizes, same bytes. */
static void walk(const char *rel, int depth)
{
    char lpath[4096];
    snprintf(lpath, sizeof(lpath), "%s/%s", src, rel);
    char **names;
    size_t n = local_names(lpath, &names);

    struct nfsdir *dir = NULL;
    int rc = nfs_opendir(nfs, rel[0] ? rel : "/", &dir);
    CHECK(rc == 0);
    if (rc) {
        fprintf(stderr, "opendir %s: %s\n", rel, nfs_get_error(nfs));
        free_names(names, n);
        return;
    }
    size_t seen = 0, cap = n + 8;
    char **remote = calloc(cap, sizeof(*remote));
    struct nfsdirent *e;
    while ((e = nfs_readdir(nfs, dir))) {
        if (!strcmp(e->name, ".") || !strcmp(e->name, ".."))
            continue;
        if (seen == cap)
            remote = realloc(remote, (cap *= 2) * sizeof(*remote));
        remote[seen++] = strdup(e->name);
    }
    nfs_closedir(nfs, dir);
    qsort(remote, seen, sizeof(*remote), cmp_str);
    bool same = seen == n;
    for (size_t i = 0; same && i < n; i++)
        same = strcmp(names[i], remote[i]) == 0;
    if (!same)
        fprintf(stderr, "listing of '%s' differs: %zu local, %zu nfs\n", rel, n, seen);
    CHECK(same);
    dirs_listed++;
    free_names(remote, seen);

    for (size_t i = 0; i < n; i++) {
        char crel[2048], cl[4096];
        if (snprintf(crel, sizeof(crel), "%s%s%s", rel, rel[0] ? "/" : "", names[i]) >=
                (int)sizeof(crel) ||
            snprintf(cl, sizeof(cl), "%s/%s", src, crel) >= (int)sizeof(cl))
            continue;
        struct stat st;
        struct nfs_stat_64 ns;
        if (lstat(cl, &st) != 0)
            continue;
        rc = nfs_lstat64(nfs, crel, &ns);
        CHECK(rc == 0);
        if (rc) {
            fprintf(stderr, "stat %s: %s\n", crel, nfs_get_error(nfs));
            continue;
        }
        CHECK_EQ_INT(ns.nfs_mode & S_IFMT, st.st_mode & S_IFMT);
        if (S_ISREG(st.st_mode)) {
            CHECK_EQ_INT(ns.nfs_size, st.st_size);
            /* Foreign objects carry no POSIX metadata: the export's defaults apply. */
            CHECK_EQ_INT(ns.nfs_mode & 07777, 0644);
            if (!no_mtime)
                CHECK_EQ_INT(ns.nfs_mtime, st.st_mtime);
            if ((st.st_mode & 0444) == 0444)
                check_file(crel, &st);
        } else if (S_ISDIR(st.st_mode)) {
            CHECK_EQ_INT(ns.nfs_mode & 07777, 0755);
            if (depth < 8)
                walk(crel, depth + 1);
        } else if (S_ISLNK(st.st_mode)) {
            char target[4096], got[4096];
            ssize_t tl = readlink(cl, target, sizeof(target) - 1);
            target[tl < 0 ? 0 : tl] = 0;
            rc = nfs_readlink(nfs, crel, got, sizeof(got));
            CHECK(rc == 0);
            CHECK(rc == 0 && strcmp(got, target) == 0);
            CHECK_EQ_INT(ns.nfs_size, strlen(target));
        }
    }
    free_names(names, n);
}

static void check_missing(void)
{
    struct nfs_stat_64 ns;
    CHECK_EQ_INT(nfs_stat64(nfs, "no-such-file", &ns), -ENOENT);
    CHECK_EQ_INT(nfs_stat64(nfs, "a/b/no-such-file", &ns), -ENOENT);
    CHECK_EQ_INT(nfs_stat64(nfs, "no-such-dir/x", &ns), -ENOENT);
    /* A file used as a directory. */
    CHECK_EQ_INT(nfs_stat64(nfs, "one-byte/x", &ns), -ENOTDIR);
    char longname[300];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    CHECK_EQ_INT(nfs_stat64(nfs, longname, &ns), -ENAMETOOLONG);
}

struct pending {
    const char *name;
    int done;
    int result;
    double at;
};

static void read_cb(int status, struct nfs_context *n, void *data, void *priv)
{
    struct pending *p = priv;
    p->done = 1;
    p->result = status;
    p->at = now();
}

/* Run the event loop until every pending call is done or the deadline passes. */
static void service_until(struct pending *v, int n, double deadline)
{
    for (;;) {
        int all = 1;
        for (int i = 0; i < n; i++)
            all &= v[i].done;
        if (all || now() > deadline)
            return;
        struct pollfd pfd = {.fd = nfs_get_fd(nfs), .events = (short)nfs_which_events(nfs)};
        if (poll(&pfd, 1, 100) < 0)
            return;
        if (nfs_service(nfs, pfd.revents) < 0)
            return;
    }
}

/*
 * The daemon injects latency on every fetch of slow's key.  Both files are
 * opened first; then the slow read is sent, then the fast one, on the same
 * connection.  The fast reply must not wait for the slow one.
 */
static void check_no_head_of_line(const char *slow, const char *fast)
{
    struct nfsfh *fs = NULL, *ff = NULL;
    CHECK(nfs_open(nfs, slow, O_RDONLY, &fs) == 0);
    CHECK(nfs_open(nfs, fast, O_RDONLY, &ff) == 0);
    if (!fs || !ff)
        return;
    char buf[4096];
    CHECK(nfs_pread(nfs, ff, 0, sizeof(buf), buf) > 0); /* warm: fast is in the block cache */
    struct pending p[2] = {{.name = slow}, {.name = fast}};
    double t0 = now();
    CHECK(nfs_pread_async(nfs, fs, 0, 4096, read_cb, &p[0]) == 0);
    CHECK(nfs_pread_async(nfs, ff, 0, 4096, read_cb, &p[1]) == 0);
    service_until(p, 2, t0 + 30);
    CHECK(p[0].done && p[1].done);
    CHECK(p[0].result > 0 && p[1].result > 0);
    printf("# slow read %.3f s, fast read %.3f s (same connection)\n", p[0].at - t0,
           p[1].at - t0);
    CHECK(p[1].at < p[0].at);
    CHECK(p[0].at - t0 >= 1.0); /* the injected latency did apply */
    nfs_close(nfs, fs);
    nfs_close(nfs, ff);
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 5) {
        fprintf(stderr, "usage: it_core URL SRC_DIR [slow fast]\n");
        return 2;
    }
    src = argv[2];
    no_mtime = getenv("BNFS_IT_NO_MTIME") && strcmp(getenv("BNFS_IT_NO_MTIME"), "1") == 0;
    nfs = nfs_init_context();
    struct nfs_url *url = nfs_parse_url_dir(nfs, argv[1]);
    CHECK(url != NULL);
    if (!url) {
        fprintf(stderr, "%s\n", nfs_get_error(nfs));
        return TEST_DONE();
    }
    nfs_set_readahead(nfs, 0);
    int rc = nfs_mount(nfs, url->server, url->path);
    CHECK(rc == 0);
    if (rc) {
        fprintf(stderr, "mount: %s\n", nfs_get_error(nfs));
        return TEST_DONE();
    }
    /* First, while slow's blocks are not cached yet: its read is a real store fetch. */
    if (argc == 5)
        check_no_head_of_line(argv[3], argv[4]);
    double t0 = now();
    walk("", 0);
    printf("# walked %u directories, read %u files (%.1f MB) in %.2f s\n", dirs_listed,
           files_read, bytes_read / 1e6, now() - t0);
    CHECK(dirs_listed >= 4); /* the tree has three levels below the root */
    check_missing();
    nfs_umount(nfs);
    nfs_destroy_url(url);
    nfs_destroy_context(nfs);
    return TEST_DONE();
}
