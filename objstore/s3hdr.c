/*
 * s3hdr.c - the header lines of an S3 answer, as curl hands them to s3.c's
 * header callback, parsed into struct s3_resp (s3.h).
 *
 * Owns nothing: each call reads one line (not NUL-terminated, its CRLF
 * included) and fills fields of the caller's struct.  Pure: no curl
 * handle, no lock, no allocation; curl_getdate only reads its argument.
 * A status line starts a new answer (a "100 Continue" comes before the
 * real one), so it clears every field.  Numbers are decimal digits only,
 * at most 20 of them, without sign or blanks, and never wrap: anything
 * else does not parse.
 * Threads: a struct s3_resp belongs to one request on one thread.
 */
#include "objstore/s3.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

/* Is line "NAME: value" (name case-insensitive)?  *value / *vlen: the value without blanks around
 * it or CRLF. */
static bool hdr_is(const char *line, size_t len, const char *name, const char **value, size_t *vlen)
{
    size_t n = strlen(name);
    if (len <= n || line[n] != ':' || strncasecmp(line, name, n) != 0)
        return false;
    const char *v = line + n + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *value = v;
    *vlen = (size_t)(end - v);
    return true;
}

/* v[0..n) as an unsigned decimal; false if empty, not all digits, or too large. */
static bool parse_u64(const char *v, size_t n, uint64_t *out)
{
    uint64_t x = 0;
    if (n == 0 || n > 20)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9' || x > (UINT64_MAX - 9) / 10)
            return false;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    *out = x;
    return true;
}

/* dst = v[0..n) truncated to cap - 1 bytes (and at a NUL byte), NUL-terminated. */
static void copy_value(char *dst, size_t cap, const char *v, size_t n)
{
    if (n > cap - 1)
        n = cap - 1;
    snprintf(dst, cap, "%.*s", (int)n, v);
}

void s3_resp_reset(struct s3_resp *r)
{
    memset(r, 0, sizeof(*r));
}

bool s3_resp_header(struct s3_resp *r, const char *p, size_t len)
{
    const char *v;
    size_t n;
    char tmp[256];

    if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
        s3_resp_reset(r); /* a new response: 100 Continue came first */
        return true;
    }
    if (hdr_is(p, len, "content-length", &v, &n)) {
        r->have_length = parse_u64(v, n, &r->length);
    } else if (hdr_is(p, len, "etag", &v, &n)) {
        /* ETags travel quoted (RFC 9110 section 8.8.3); kept without the quotes. */
        if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
            v++;
            n -= 2;
        }
        copy_value(r->meta.etag, sizeof(r->meta.etag), v, n);
    } else if (hdr_is(p, len, "last-modified", &v, &n)) {
        copy_value(tmp, sizeof(tmp), v, n);
        time_t t = curl_getdate(tmp, NULL);
        if (t != (time_t)-1)
            r->lm_sec = t;
    } else if (hdr_is(p, len, "content-range", &v, &n)) {
        /* "bytes 0-99/1234", or after a 416 the total alone after the slash (RFC 9110 14.4) */
        const char *slash = memchr(v, '/', n);
        if (slash)
            r->have_range_total =
                parse_u64(slash + 1, n - (size_t)(slash + 1 - v), &r->range_total);
        const char *dash = slash ? memchr(v, '-', (size_t)(slash - v)) : NULL;
        if (dash && n > 6 && strncasecmp(v, "bytes ", 6) == 0)
            r->have_range = parse_u64(v + 6, (size_t)(dash - v - 6), &r->range_first) &&
                            parse_u64(dash + 1, (size_t)(slash - dash - 1), &r->range_last) &&
                            r->range_first <= r->range_last;
    } else if (hdr_is(p, len, "x-amz-request-id", &v, &n)) {
        copy_value(r->request_id, sizeof(r->request_id), v, n);
    } else if (hdr_is(p, len, "x-amz-meta-file-permissions", &v, &n)) {
        copy_value(tmp, sizeof(tmp), v, n);
        r->have_perm = obj_meta_parse_mode(tmp, &r->meta.mode) == 0;
    } else if (hdr_is(p, len, "x-amz-meta-file-owner", &v, &n)) {
        uint64_t x;
        if (parse_u64(v, n, &x) && x <= UINT32_MAX)
            r->meta.uid = (uint32_t)x;
    } else if (hdr_is(p, len, "x-amz-meta-file-group", &v, &n)) {
        uint64_t x;
        if (parse_u64(v, n, &x) && x <= UINT32_MAX)
            r->meta.gid = (uint32_t)x;
    } else if (hdr_is(p, len, "x-amz-meta-file-mtime", &v, &n)) {
        copy_value(tmp, sizeof(tmp), v, n);
        r->have_fmtime = obj_meta_parse_mtime(tmp, &r->fm_sec, &r->fm_nsec) == 0;
    }
    return false;
}
