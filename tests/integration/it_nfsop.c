/*
 * it_nfsop.c - one namespace operation through libnfs, for shell tests:
 *
 *   it_nfsop URL mkdir PATH | rmdir PATH | rm PATH | mv FROM TO
 *              | chmod MODE PATH | symlink TARGET PATH | readlink PATH
 *              | truncate SIZE PATH | stat PATH | read PATH (prints its size)
 *              | put LOCAL PATH     (overwrite: open O_TRUNC, or create)
 *              | append LOCAL PATH  (write LOCAL's bytes at PATH's end)
 *   it_nfsop URL session
 *              one mount, then operations read from stdin, one a line
 *              ("stat /f", "put /tmp/x /f"; words split at spaces), each
 *              answered "ok" or "err ERRNO MESSAGE" on a line of its own
 *              after what it prints: a client that stays mounted while the
 *              server changes (reload.sh)
 *
 * URL is nfs://127.0.0.1/EXPORT?nfsport=P&mountport=M; paths are relative
 * to the export's root ("/dir/file").  Prints what readlink and stat return
 * ("size mode uid gid"); on failure prints libnfs's error and exits 1
 * (2: usage or mount).
 */
#include <fcntl.h>
#include <nfsc/libnfs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Copy f's bytes to fh from offset off on, then COMMIT.  0 or -1. */
static int write_from(struct nfs_context *nfs, struct nfsfh *fh, FILE *f, uint64_t off)
{
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
        if (nfs_pwrite(nfs, fh, off, n, buf) != (int)n)
            return -1;
        off += n;
    }
    return nfs_fsync(nfs, fh);
}

/*
 * One operation: argv[2] is its name, argv[3..argc) its arguments (argv[0]
 * and argv[1] are not used).  libnfs's result (0, or a negative errno), or
 * USAGE.
 */
#define USAGE 1000
static int run_op(struct nfs_context *nfs, int argc, char **argv)
{
    const char *op = argv[2];
    int r = -1;
    if (strcmp(op, "mkdir") == 0 && argc == 4) {
        r = nfs_mkdir(nfs, argv[3]);
    } else if (strcmp(op, "rmdir") == 0 && argc == 4) {
        r = nfs_rmdir(nfs, argv[3]);
    } else if (strcmp(op, "rm") == 0 && argc == 4) {
        r = nfs_unlink(nfs, argv[3]);
    } else if (strcmp(op, "mv") == 0 && argc == 5) {
        r = nfs_rename(nfs, argv[3], argv[4]);
    } else if (strcmp(op, "chmod") == 0 && argc == 5) {
        r = nfs_chmod(nfs, argv[4], (int)strtol(argv[3], NULL, 8));
    } else if (strcmp(op, "symlink") == 0 && argc == 5) {
        r = nfs_symlink(nfs, argv[3], argv[4]);
    } else if (strcmp(op, "truncate") == 0 && argc == 5) {
        r = nfs_truncate(nfs, argv[4], strtoull(argv[3], NULL, 10));
    } else if (strcmp(op, "put") == 0 && argc == 5) {
        FILE *f = fopen(argv[3], "rb");
        struct nfsfh *fh = NULL;
        if (!f)
            return USAGE;
        /* libnfs 4.0's open does not truncate for O_TRUNC: ftruncate says it. */
        r = nfs_open(nfs, argv[4], O_WRONLY, &fh);
        if (r == 0)
            r = nfs_ftruncate(nfs, fh, 0);
        else
            r = nfs_creat(nfs, argv[4], 0644, &fh);
        char buf[65536];
        uint64_t off = 0;
        size_t n;
        while (r == 0 && (n = fread(buf, 1, sizeof(buf), f)) > 0) {
            if (nfs_pwrite(nfs, fh, off, n, buf) != (int)n)
                r = -1;
            off += n;
        }
        if (r == 0)
            r = nfs_fsync(nfs, fh);
        if (fh)
            nfs_close(nfs, fh);
        fclose(f);
    } else if (strcmp(op, "append") == 0 && argc == 5) {
        FILE *f = fopen(argv[3], "rb");
        struct nfsfh *fh = NULL;
        struct nfs_stat_64 st;
        if (!f)
            return USAGE;
        r = nfs_open(nfs, argv[4], O_WRONLY, &fh);
        if (r == 0)
            r = nfs_fstat64(nfs, fh, &st);
        if (r == 0)
            r = write_from(nfs, fh, f, st.nfs_size);
        if (fh)
            nfs_close(nfs, fh);
        fclose(f);
    } else if (strcmp(op, "readlink") == 0 && argc == 4) {
        char buf[4097];
        r = nfs_readlink(nfs, argv[3], buf, sizeof(buf));
        if (r == 0)
            printf("%s\n", buf);
    } else if (strcmp(op, "read") == 0 && argc == 4) {
        struct nfsfh *fh = NULL;
        char buf[65536];
        uint64_t total = 0;
        r = nfs_open(nfs, argv[3], O_RDONLY, &fh);
        for (int n; r == 0 && (n = nfs_read(nfs, fh, sizeof(buf), buf)) != 0; total += (uint64_t)n)
            if (n < 0)
                r = n;
        if (fh)
            nfs_close(nfs, fh);
        if (r == 0)
            printf("%llu\n", (unsigned long long)total);
    } else if (strcmp(op, "stat") == 0 && argc == 4) {
        struct nfs_stat_64 st;
        r = nfs_stat64(nfs, argv[3], &st);
        if (r == 0)
            printf("%llu %llo %llu %llu\n", (unsigned long long)st.nfs_size,
                   (unsigned long long)st.nfs_mode, (unsigned long long)st.nfs_uid,
                   (unsigned long long)st.nfs_gid);
    } else {
        fprintf(stderr, "it_nfsop: unknown operation or wrong arguments: %s\n", op);
        return USAGE;
    }
    return r;
}

/* Operations from stdin until it ends; 0. */
static int session(struct nfs_context *nfs)
{
    char line[4096];
    while (fgets(line, sizeof(line), stdin)) {
        char *words[8] = {"it_nfsop", "-"};
        int n = 2;
        for (char *w = strtok(line, " \n"); w && n < 8; w = strtok(NULL, " \n"))
            words[n++] = w;
        if (n == 2)
            continue;
        int r = run_op(nfs, n, words);
        if (r == 0)
            printf("ok\n");
        else if (r == USAGE)
            printf("err 0 usage\n");
        else
            printf("err %d %s\n", r < 0 ? -r : r, nfs_get_error(nfs));
        fflush(stdout);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3 || (argc < 4 && strcmp(argv[2], "session") != 0)) {
        fprintf(stderr, "usage: it_nfsop URL OP ARGS... | it_nfsop URL session\n");
        return 2;
    }
    struct nfs_context *nfs = nfs_init_context();
    struct nfs_url *u = nfs ? nfs_parse_url_dir(nfs, argv[1]) : NULL;
    if (!u || nfs_mount(nfs, u->server, u->path) != 0) {
        fprintf(stderr, "mount %s: %s\n", argv[1], nfs ? nfs_get_error(nfs) : "no context");
        return 2;
    }
    int r;
    if (strcmp(argv[2], "session") == 0) {
        printf("mounted\n");
        fflush(stdout);
        r = session(nfs);
    } else {
        r = run_op(nfs, argc, argv);
        if (r == USAGE)
            return 2;
        if (r != 0)
            fprintf(stderr, "it_nfsop %s: %s\n", argv[2], nfs_get_error(nfs));
    }
    nfs_destroy_url(u);
    nfs_destroy_context(nfs);
    return r == 0 ? 0 : 1;
}
