/*
 * fuzz_s3hdr.c - libFuzzer target for the S3 answer's header lines
 * (objstore/s3hdr.c, s3_resp_header): the bytes an S3 endpoint, or
 * anything between us and it, sends before the body.
 *
 * The input is cut after each '\n' into lines, as curl hands them to the
 * header callback; each line is copied into a buffer of exactly its length
 * (so AddressSanitizer sees a read past the line) and parsed into one
 * struct s3_resp, in order.  Then the whole input is parsed as one line.
 * After every line:
 *   - a status line ("HTTP/...") returns true and leaves every field clear,
 *     any other line returns false;
 *   - the ETag and the request id are terminated inside their fields;
 *   - a range has FIRST <= LAST; a mode is at most 7 octal digits; the
 *     nanoseconds of file-mtime are below 10^9;
 *   - a Content-Length or Content-Range that parsed, printed again in the
 *     canonical form and parsed into a fresh struct, gives the same numbers.
 * Invariants are checked with abort(), which libFuzzer reports as a crash.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "objstore/s3.h"

static void reparse(const char *line, struct s3_resp *out)
{
    size_t n = strlen(line);
    char *copy = malloc(n ? n : 1);
    if (!copy)
        abort();
    memcpy(copy, line, n);
    s3_resp_reset(out);
    if (s3_resp_header(out, copy, n))
        abort();
    free(copy);
}

static void check(const struct s3_resp *r, bool status, const char *line, size_t len)
{
    static const struct s3_resp zero;
    bool is_status = len >= 5 && memcmp(line, "HTTP/", 5) == 0;
    if (status != is_status)
        abort();
    if (status && memcmp(r, &zero, sizeof(zero)) != 0)
        abort();
    if (!memchr(r->meta.etag, '\0', sizeof(r->meta.etag)) ||
        !memchr(r->request_id, '\0', sizeof(r->request_id)))
        abort();
    if (r->have_range && r->range_first > r->range_last)
        abort();
    if (r->have_perm && r->meta.mode > 07777777)
        abort();
    if (r->have_fmtime && r->fm_nsec >= 1000000000u)
        abort();

    char canon[128];
    struct s3_resp again;
    if (r->have_length) {
        snprintf(canon, sizeof(canon), "Content-Length: %" PRIu64 "\r\n", r->length);
        reparse(canon, &again);
        if (!again.have_length || again.length != r->length)
            abort();
    }
    if (r->have_range) {
        snprintf(canon, sizeof(canon),
                 "content-range: bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64 "\r\n", r->range_first,
                 r->range_last, r->range_total);
        reparse(canon, &again);
        if (!again.have_range || again.range_first != r->range_first ||
            again.range_last != r->range_last || again.range_total != r->range_total)
            abort();
    }
}

static void feed(struct s3_resp *r, const uint8_t *p, size_t len)
{
    char *line = malloc(len ? len : 1);
    if (!line)
        abort();
    memcpy(line, p, len);
    bool status = s3_resp_header(r, line, len);
    check(r, status, line, len);
    free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct s3_resp r;
    s3_resp_reset(&r);
    size_t start = 0;
    for (size_t i = 0; i < size; i++) {
        if (data[i] == '\n') {
            feed(&r, data + start, i + 1 - start);
            start = i + 1;
        }
    }
    if (start < size)
        feed(&r, data + start, size - start);

    s3_resp_reset(&r);
    feed(&r, data, size);
    return 0;
}
