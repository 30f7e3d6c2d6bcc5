/*
 * it_crash.c - the client side of the crash campaign (crash.sh).
 *
 *   it_crash write URL DIR LOG SEED MAXBYTES
 *       write files DIR/fSEED-N through libnfs (WRITE, then COMMIT via
 *       nfs_fsync) until MAXBYTES are written or the server goes away; after
 *       each COMMIT returned, append "NAME SEED SIZE" to LOG and fsync it:
 *       LOG lists exactly the files the server acknowledged as durable.
 *       Sizes vary from 0 to 64 MiB; writes are 1 MiB (the last shorter),
 *       some files are rewritten in the middle before their COMMIT.
 *   it_crash verify ROOT LOG
 *       every file LOG names must be ROOT/NAME with its exact bytes (ROOT
 *       is the bucket's folder of a dir store).  Prints "# verified N files,
 *       B bytes; lost L files" and exits 1 if any is missing or differs.
 *
 * File contents are a function of (seed, offset), so nothing but the log
 * is kept on the client side.  Exit 2: usage, or the first mount failed.
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
#include <unistd.h>

#define CHUNK (1u << 20)

/* The 8 bytes at 8-aligned offset off of the file of seed s. */
static uint64_t word(uint64_t s, uint64_t off)
{
    uint64_t x = s * 0x9E3779B97F4A7C15ull ^ (off / 8 + 1) * 0xBF58476D1CE4E5B9ull;
    x ^= x >> 31;
    x *= 0x94D049BB133111EBull;
    x ^= x >> 29;
    return x;
}

static void fill(uint8_t *buf, uint64_t seed, uint64_t off, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        uint64_t o = off + i;
        buf[i] = (uint8_t)(word(seed, o & ~7ull) >> ((o & 7) * 8));
    }
}

static uint64_t rnd(uint64_t *st)
{
    *st ^= *st << 13;
    *st ^= *st >> 7;
    *st ^= *st << 17;
    return *st;
}

static int do_write(const char *url, const char *dir, const char *logpath, uint64_t seed,
                    uint64_t max)
{
    struct nfs_context *nfs = nfs_init_context();
    struct nfs_url *u = nfs ? nfs_parse_url_dir(nfs, url) : NULL;
    if (nfs) {
        nfs_set_autoreconnect(nfs, 0); /* a killed server ends the run */
        nfs_set_timeout(nfs, 20000);
    }
    if (!u || nfs_mount(nfs, u->server, u->path) != 0) {
        fprintf(stderr, "mount %s: %s\n", url, nfs ? nfs_get_error(nfs) : "no context");
        return 2;
    }
    int log = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
    uint8_t *buf = malloc(CHUNK);
    if (log < 0 || !buf) {
        free(buf);
        return 2;
    }
    nfs_mkdir(nfs, dir); /* may exist */
    uint64_t st = seed | 1, written = 0;
    for (unsigned n = 0; written < max; n++) {
        uint64_t fseed = seed * 1000003 + n;
        uint64_t r = rnd(&st) % 100;
        uint64_t size = r < 20 ? rnd(&st) % 4096
                        : r < 70 ? rnd(&st) % (1u << 20)
                        : r < 95 ? rnd(&st) % (16u << 20)
                                 : rnd(&st) % (64u << 20);
        if (written + size > max)
            size = max - written;
        char name[512];
        snprintf(name, sizeof(name), "%s/f%llu-%u", dir, (unsigned long long)seed, n);
        struct nfsfh *fh;
        if (nfs_creat(nfs, name, 0644, &fh) != 0)
            break;
        int err = 0;
        for (uint64_t off = 0; off < size && !err; off += CHUNK) {
            size_t len = size - off < CHUNK ? (size_t)(size - off) : CHUNK;
            fill(buf, fseed, off, len);
            err = nfs_pwrite(nfs, fh, off, len, buf) != (int)len;
        }
        /* Sometimes patch the middle again (same bytes: the content stays a function). */
        if (!err && size > 8192 && rnd(&st) % 4 == 0) {
            uint64_t off = rnd(&st) % (size - 4096);
            fill(buf, fseed, off, 4096);
            err = nfs_pwrite(nfs, fh, off, 4096, buf) != 4096;
        }
        if (!err)
            err = nfs_fsync(nfs, fh) != 0;
        nfs_close(nfs, fh);
        if (err)
            break; /* the server went away: what was not COMMITted is not promised */
        char line[600];
        int ll = snprintf(line, sizeof(line), "%s %llu %llu\n", name + strlen(dir) + 1,
                          (unsigned long long)fseed, (unsigned long long)size);
        if (write(log, line, (size_t)ll) != ll || fsync(log) != 0) {
            free(buf);
            return 2;
        }
        written += size;
    }
    close(log);
    free(buf);
    nfs_destroy_url(u);
    nfs_destroy_context(nfs);
    return 0;
}

static int do_verify(const char *root, const char *logpath)
{
    FILE *f = fopen(logpath, "r");
    if (!f)
        return 2;
    uint8_t *want = malloc(CHUNK), *got = malloc(CHUNK);
    char name[512];
    unsigned long long seed, size;
    uint64_t files = 0, bytes = 0, lost = 0;
    while (fscanf(f, "%511s %llu %llu", name, &seed, &size) == 3) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", root, name);
        int fd = open(path, O_RDONLY);
        struct stat sb;
        bool ok = fd >= 0 && fstat(fd, &sb) == 0 && (uint64_t)sb.st_size == size;
        for (uint64_t off = 0; ok && off < size; off += CHUNK) {
            size_t len = size - off < CHUNK ? (size_t)(size - off) : CHUNK;
            fill(want, seed, off, len);
            ok = pread(fd, got, len, (off_t)off) == (ssize_t)len && memcmp(want, got, len) == 0;
        }
        if (fd >= 0)
            close(fd);
        if (ok) {
            files++;
            bytes += size;
        } else {
            lost++;
            printf("# LOST: %s (%llu bytes)\n", name, size);
        }
    }
    fclose(f);
    free(want);
    free(got);
    printf("# verified %llu files, %llu bytes; lost %llu files\n", (unsigned long long)files,
           (unsigned long long)bytes, (unsigned long long)lost);
    return lost ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc == 7 && strcmp(argv[1], "write") == 0)
        return do_write(argv[2], argv[3], argv[4], strtoull(argv[5], NULL, 10),
                        strtoull(argv[6], NULL, 10));
    if (argc == 4 && strcmp(argv[1], "verify") == 0)
        return do_verify(argv[2], argv[3]);
    fprintf(stderr, "usage: it_crash write URL DIR LOG SEED MAXBYTES | verify ROOT LOG\n");
    return 2;
}
