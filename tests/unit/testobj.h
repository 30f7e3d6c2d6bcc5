/*
 * testobj.h - what the object-store tests share (test_dirstore and the S3
 * integration tests): reproducible bytes, an unlinked staging file holding
 * them (what the write path's file on local SSD will be), and a check that
 * an object holds exactly the expected bytes.
 */
#ifndef BNFS_TESTOBJ_H
#define BNFS_TESTOBJ_H

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "objstore/objstore.h"

/* n bytes of xorshift32 started from seed: the same for the same seed, not compressible. */
static inline void test_fill(unsigned char *p, size_t n, unsigned seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (unsigned char)x;
    }
}

/* An unlinked file in dir (NULL: $TMPDIR or /tmp) holding data[0..n); exits if it cannot. */
static inline int test_staging_file(const char *dir, const void *data, size_t n)
{
    char path[PATH_MAX + 32];
    if (!dir)
        dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(path, sizeof(path), "%s/bnfs-staging.XXXXXX", dir);
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, data, n) != (ssize_t)n) {
        perror(path);
        exit(2);
    }
    unlink(path);
    return fd;
}

/* Does bucket/key hold exactly want[0..n)?  One GET of n + 1 bytes; says what differs. */
static inline bool test_holds(struct objstore *st, const char *bucket, const char *key,
                              const void *want, size_t n)
{
    unsigned char *back = malloc(n + 1);
    size_t got = 0;
    int rc = back ? obj_get(st, bucket, key, 0, n + 1, back, &got, NULL) : ENOMEM;
    bool ok = rc == 0 && got == n && memcmp(back, want, n) == 0;
    if (!ok)
        fprintf(stderr, "%s: rc %d, %zu bytes of %zu%s\n", key, rc, got, n,
                rc == 0 && got == n ? ", other bytes" : "");
    free(back);
    return ok;
}

#endif
