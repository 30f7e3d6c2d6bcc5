/*
 * it_cache.c - whole-file reads through libnfs that check which version of
 * an object they got, for s3_cache.sh's replacement races.
 *
 *   it_cache URL version PATH           print the version PATH holds
 *   it_cache URL race PATH SECONDS      read PATH again and again
 *
 * URL is nfs://127.0.0.1/demo?nfsport=P&mountport=M.  The objects are
 * written by cache_versions.py: 64-byte records "vNNNNNNNNNN oOOOOOOOOOOOO
 * ....\n", every record naming the version and its own offset, so a read
 * is either one whole version or provably a mix.  Each read is one READ
 * call of the whole file (at most the server's rtmax, 1 MiB), the unit
 * within which the server promises one version.
 *
 * version: prints "N" (exit 0), or "mixed ..." / "bad ..." (exit 1).
 * race: prints "# reads R, versions V (first F, last L), jukebox J" and
 * exits 0, or 1 at the first read that is not one whole version (what it
 * held is printed).  NFS3ERR_JUKEBOX (the object changed twice during
 * one read, so the server asks the client to come back) is retried after
 * 50 ms, as the kernel client does, and counted.  libnfs 4.0's nfs_pread
 * reports a JUKEBOX reply to READ as EFAULT, not EAGAIN (seen on the wire:
 * the reply is accepted, status 10008), so both count as JUKEBOX; twenty
 * in a row are an error, not a race.  After one, the reader mounts again
 * on a fresh libnfs context.  The buffer is zeroed before every read, so
 * bytes a READ did not deliver show as a bad version.  BNFS_IT_TRACE=1
 * prints a line per version change (with the fileid and times) and per
 * failed read.  Exit 2: could not mount, open or
 * read.
 */
#include <errno.h>
#include <fcntl.h>
#include <nfsc/libnfs.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define REC 64u

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The record at off of version v (as cache_versions.py writes it). */
static void record(char *out, unsigned long v, uint64_t off)
{
    int n = snprintf(out, REC + 1, "v%010lu o%012llu ", v, (unsigned long long)off);
    memset(out + n, '.', REC - 1 - (size_t)n);
    out[REC - 1] = '\n';
}

/*
 * Which version buf (len bytes) holds: 0 and *v, or 1 with why in msg
 * (a record of another version, or no version at all).
 */
static int which(const char *buf, size_t len, unsigned long *v, char *msg, size_t msz)
{
    char want[REC + 1];
    if (len == 0 || len % REC) {
        snprintf(msg, msz, "bad: %zu bytes, not a multiple of %u", len, REC);
        return 1;
    }
    if (sscanf(buf, "v%10lu", v) != 1) {
        snprintf(msg, msz, "bad: the first record names no version: %.26s", buf);
        return 1;
    }
    for (size_t off = 0; off < len; off += REC) {
        record(want, *v, off);
        if (memcmp(buf + off, want, REC) != 0) {
            unsigned long other = 0;
            sscanf(buf + off, "v%10lu", &other);
            snprintf(msg, msz, "mixed: version %lu at 0, but at offset %zu: %.26s (version %lu)",
                     *v, off, buf + off, other);
            return 1;
        }
    }
    return 0;
}

static bool trace; /* BNFS_IT_TRACE=1: a line per version change and per JUKEBOX */
static double t0;
static struct nfs_stat_64 last_st;

/* Read the whole file in one READ: its length, or -errno. */
static long read_whole(struct nfs_context *nfs, const char *path, char *buf, size_t cap)
{
    struct nfsfh *fh;
    int rc = nfs_open(nfs, path, O_RDONLY, &fh);
    if (rc < 0)
        return rc;
    struct nfs_stat_64 st;
    rc = nfs_fstat64(nfs, fh, &st);
    last_st = st;
    if (rc == 0 && st.nfs_size > cap)
        rc = -EFBIG;
    if (rc == 0)
        rc = nfs_pread(nfs, fh, 0, st.nfs_size, buf);
    nfs_close(nfs, fh);
    return rc;
}

/* A fresh libnfs context mounted at url: NULL (said why) on failure. */
static struct nfs_context *connect_to(const char *url_s)
{
    struct nfs_context *nfs = nfs_init_context();
    struct nfs_url *url = nfs ? nfs_parse_url_dir(nfs, url_s) : NULL;
    if (!url) {
        fprintf(stderr, "bad url %s: %s\n", url_s, nfs ? nfs_get_error(nfs) : "no memory");
        if (nfs)
            nfs_destroy_context(nfs);
        return NULL;
    }
    nfs_set_readahead(nfs, 0);
    if (nfs_mount(nfs, url->server, url->path) != 0) {
        fprintf(stderr, "mount: %s\n", nfs_get_error(nfs));
        nfs_destroy_url(url);
        nfs_destroy_context(nfs);
        return NULL;
    }
    nfs_destroy_url(url);
    return nfs;
}

int main(int argc, char **argv)
{
    if (argc < 4 || (strcmp(argv[2], "version") != 0 && strcmp(argv[2], "race") != 0) ||
        (strcmp(argv[2], "race") == 0 && argc < 5)) {
        fprintf(stderr, "usage: it_cache URL version PATH | it_cache URL race PATH SECONDS\n");
        return 2;
    }
    struct nfs_context *nfs = connect_to(argv[1]);
    if (!nfs)
        return 2;
    size_t cap = nfs_get_readmax(nfs);
    char *buf = malloc(cap);
    char msg[256];
    unsigned long v = 0;
    if (!buf)
        return 2;
    const char *path = argv[3];

    if (strcmp(argv[2], "version") == 0) {
        int rc = 0;
        long n = read_whole(nfs, path, buf, cap);
        if (n < 0) {
            fprintf(stderr, "read %s: %s\n", path, strerror((int)-n));
            rc = 2;
        } else if (which(buf, (size_t)n, &v, msg, sizeof(msg))) {
            printf("%s\n", msg);
            rc = 1;
        } else {
            printf("%lu\n", v);
        }
        nfs_destroy_context(nfs);
        free(buf);
        return rc;
    }

    trace = getenv("BNFS_IT_TRACE") && strcmp(getenv("BNFS_IT_TRACE"), "1") == 0;
    t0 = now();
    double end = t0 + atof(argv[4]);
    unsigned long reads = 0, versions = 0, jukebox = 0, first = 0, last = 0, in_row = 0;
    while (now() < end) {
        memset(buf, 0, cap); /* what the READ did not fill shows */
        long n = read_whole(nfs, path, buf, cap);
        if ((n == -EAGAIN || n == -EFAULT) && ++in_row < 20) {
            jukebox++;
            if (trace)
                printf("# %.3f s: read failed: %s\n", now() - t0, strerror((int)-n));
            usleep(50000);
            /* After an error reply, libnfs 4.0 may not fill the buffer of
             * later READs on the same context: start a fresh one. */
            nfs_destroy_context(nfs);
            if (!(nfs = connect_to(argv[1])))
                return 2;
            continue;
        }
        in_row = 0;
        if (n < 0) {
            fprintf(stderr, "read %s after %lu reads: %s (%s)\n", path, reads, strerror((int)-n),
                    nfs_get_error(nfs));
            return 2;
        }
        reads++;
        if (which(buf, (size_t)n, &v, msg, sizeof(msg))) {
            printf("read %lu of %s: %s\n", reads, path, msg);
            return 1;
        }
        if (reads == 1)
            first = v;
        if (reads == 1 || v != last) {
            versions++;
            if (trace)
                printf("# %.3f s: read %lu: version %lu (fileid %llu, mtime %llu.%09llu, ctime "
                       "%llu.%09llu)\n",
                       now() - t0, reads, v, (unsigned long long)last_st.nfs_ino,
                       (unsigned long long)last_st.nfs_mtime,
                       (unsigned long long)last_st.nfs_mtime_nsec,
                       (unsigned long long)last_st.nfs_ctime,
                       (unsigned long long)last_st.nfs_ctime_nsec);
        }
        last = v;
    }
    printf("# reads %lu, versions %lu (first %lu, last %lu), jukebox %lu\n", reads, versions, first,
           last, jukebox);
    nfs_destroy_context(nfs);
    free(buf);
    return 0;
}
