/*
 * objstore.c - what every backend shares: creation by type, the health
 * record of a store (struct obj_health), and the encoding of the POSIX
 * attributes carried as x-amz-meta-file-* metadata.
 *
 * The health record's error fields are written by the thread whose call
 * failed and read by the admin and metrics threads; a spin flag in the
 * record guards them (held for a copy of under 200 bytes, never across a
 * call).  The last-answer time and the retrying count are relaxed atomics.
 */
#include "objstore/objstore.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

static int64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void health_lock(struct obj_health *h)
{
    while (__atomic_exchange_n(&h->lock, 1, __ATOMIC_ACQUIRE))
        while (__atomic_load_n(&h->lock, __ATOMIC_RELAXED))
            ;
}

static void health_unlock(struct obj_health *h)
{
    __atomic_store_n(&h->lock, 0, __ATOMIC_RELEASE);
}

void obj_health_ok(struct objstore *s)
{
    struct obj_health *h = &s->health;
    __atomic_store_n(&h->last_ok_ns, realtime_ns(), __ATOMIC_RELAXED);
    /* Read first: most calls succeed, and then there is nothing to reset. */
    if (__atomic_load_n(&h->errors_in_a_row, __ATOMIC_RELAXED))
        __atomic_store_n(&h->errors_in_a_row, 0, __ATOMIC_RELAXED);
}

void obj_health_error(struct objstore *s, const char *op, int http_status, int err,
                      const char *msg)
{
    struct obj_health *h = &s->health;
    int64_t now = realtime_ns();
    health_lock(h);
    h->last_error_ns = now;
    h->last_error_status = http_status;
    h->last_error_errno = err;
    snprintf(h->last_error_op, sizeof(h->last_error_op), "%s", op ? op : "?");
    snprintf(h->last_error_msg, sizeof(h->last_error_msg), "%s", msg ? msg : strerror(err));
    /* One line: a message from the store must not break a line-based display. */
    for (char *p = h->last_error_msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    health_unlock(h);
    __atomic_fetch_add(&h->errors_in_a_row, 1, __ATOMIC_RELAXED);
}

void obj_health_get(struct objstore *s, struct obj_health *out)
{
    struct obj_health *h = &s->health;
    memset(out, 0, sizeof(*out));
    health_lock(h);
    out->last_error_ns = h->last_error_ns;
    out->last_error_status = h->last_error_status;
    out->last_error_errno = h->last_error_errno;
    memcpy(out->last_error_op, h->last_error_op, sizeof(out->last_error_op));
    memcpy(out->last_error_msg, h->last_error_msg, sizeof(out->last_error_msg));
    health_unlock(h);
    out->last_ok_ns = __atomic_load_n(&h->last_ok_ns, __ATOMIC_RELAXED);
    out->retrying = __atomic_load_n(&h->retrying, __ATOMIC_RELAXED);
    out->errors_in_a_row = __atomic_load_n(&h->errors_in_a_row, __ATOMIC_RELAXED);
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
