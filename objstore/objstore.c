/*
 * objstore.c - what every backend shares: creation by type, and the
 * encoding of the POSIX attributes carried as x-amz-meta-file-* metadata.
 */
#include "objstore/objstore.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/conf.h"

struct objstore *obj_create(const struct conf_store *c)
{
    switch (c->type) {
    case CONF_STORE_DIR:
        return obj_dir_create(c);
    case CONF_STORE_S3:
        return obj_s3_create(c);
    }
    errno = ENOTSUP;
    return NULL;
}

void obj_destroy(struct objstore *s)
{
    if (s)
        s->ops->destroy(s);
}

/* x-amz-meta-file-permissions: octal type+mode, as FSx / File Cache write it ("0100644"). */
int obj_meta_format_mode(uint32_t mode, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%07" PRIo32, mode);
    return (n < 0 || (size_t)n >= len) ? ENOSPC : 0;
}

int obj_meta_parse_mode(const char *s, uint32_t *mode)
{
    uint32_t v = 0;
    if (!s || !*s || strlen(s) > 7)
        return EINVAL;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '7')
            return EINVAL;
        v = v * 8 + (uint32_t)(*p - '0');
    }
    *mode = v;
    return 0;
}

/* x-amz-meta-file-mtime: nanoseconds since the epoch followed by "ns". */
int obj_meta_format_mtime(int64_t sec, uint32_t nsec, char *buf, size_t len)
{
    if (nsec >= 1000000000u)
        return EINVAL;
    int n;
    if (sec >= 0)
        n = snprintf(buf, len, "%" PRId64 "%09" PRIu32 "ns", sec, nsec);
    else
        return EINVAL; /* times before 1970 are not representable in this format */
    if (sec == 0)
        n = snprintf(buf, len, "%" PRIu32 "ns", nsec);
    return (n < 0 || (size_t)n >= len) ? ENOSPC : 0;
}

int obj_meta_parse_mtime(const char *s, int64_t *sec, uint32_t *nsec)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 3 || strcmp(s + n - 2, "ns") != 0 || n - 2 > 19)
        return EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < n - 2; i++) {
        if (s[i] < '0' || s[i] > '9')
            return EINVAL;
        if (v > (UINT64_MAX - 9) / 10)
            return ERANGE;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *sec = (int64_t)(v / 1000000000u);
    *nsec = (uint32_t)(v % 1000000000u);
    return 0;
}
