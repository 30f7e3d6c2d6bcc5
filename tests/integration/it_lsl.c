/*
 * it_lsl.c - `ls -l` of one directory as libnfs does it: READDIRPLUS
 * through the whole directory (nfs_opendir), then LOOKUP + GETATTR of every
 * entry (nfs_stat64 of its path).
 *
 *   it_lsl URL DIR EXPECT [MODE]
 *
 * URL is nfs://127.0.0.1/demo?nfsport=P&mountport=M, DIR a path in the
 * export ("/frames"), EXPECT how many entries (besides . and ..) it must
 * hold; MODE (octal, optional) the permission bits every regular file must
 * show.  Prints what it saw and the time it took, then "N passed, N failed".
 * The store requests it cost are counted by the caller (bucketnfs stats).
 */
#include <nfsc/libnfs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "tests/unit/testlib.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: it_lsl URL DIR EXPECT [MODE]\n");
        return 2;
    }
    const char *dir = argv[2];
    unsigned long expect = strtoul(argv[3], NULL, 10);
    long want_mode = argc > 4 ? strtol(argv[4], NULL, 8) : -1;
    struct nfs_context *nfs = nfs_init_context();
    struct nfs_url *url = nfs ? nfs_parse_url_dir(nfs, argv[1]) : NULL;
    if (!url || nfs_mount(nfs, url->server, url->path) != 0) {
        fprintf(stderr, "mount %s: %s\n", argv[1], nfs ? nfs_get_error(nfs) : "no context");
        return 2;
    }
    double t0 = now_s();
    struct nfsdir *d;
    CHECK_EQ_INT(nfs_opendir(nfs, dir, &d), 0);
    if (test_failed)
        return TEST_DONE();
    size_t cap = 1024, n = 0;
    char **names = malloc(cap * sizeof(*names));
    struct nfsdirent *ent;
    while (names && (ent = nfs_readdir(nfs, d)) != NULL) {
        if (strcmp(ent->name, ".") == 0 || strcmp(ent->name, "..") == 0)
            continue;
        if (n == cap) {
            cap *= 2;
            char **nn = realloc(names, cap * sizeof(*names));
            if (!nn)
                break;
            names = nn;
        }
        names[n++] = strdup(ent->name);
    }
    nfs_closedir(nfs, d);
    double t1 = now_s();
    CHECK_EQ_INT(n, expect);

    unsigned long statted = 0, bad_mode = 0, errors = 0;
    char path[4096];
    for (size_t i = 0; i < n; i++) {
        struct nfs_stat_64 st;
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        int rc = nfs_stat64(nfs, path, &st);
        free(names[i]);
        if (rc != 0) {
            if (errors++ < 3)
                fprintf(stderr, "stat %s: %s\n", path, nfs_get_error(nfs));
            continue;
        }
        statted++;
        if (want_mode >= 0 && S_ISREG(st.nfs_mode) && (long)(st.nfs_mode & 07777) != want_mode)
            bad_mode++;
    }
    double t2 = now_s();
    CHECK_EQ_INT(statted, expect);
    CHECK_EQ_INT(errors, 0);
    CHECK_EQ_INT(bad_mode, 0);
    printf("ls -l %s: %zu entries, READDIRPLUS walk %.2f s, LOOKUP+GETATTR of each %.2f s\n", dir,
           n, t1 - t0, t2 - t1);
    free(names);
    nfs_destroy_url(url);
    nfs_destroy_context(nfs);
    return TEST_DONE();
}
