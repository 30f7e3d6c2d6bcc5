/*
 * s3xml.c - streaming parse of S3 response bodies with libexpat.
 *
 * Owns: one expat parser and the text of the element being read.
 * State: the element path is tracked by depth and the names at depths 1
 * (document kind), 2 (field or record) and 3 (field of a record); text is
 * collected only for the current leaf, capped at TEXT_MAX bytes.  A listing
 * record (Contents, CommonPrefixes) is handed to the callback when its end
 * tag is seen, so memory does not grow with the listing.
 * Threads: a parser belongs to one request on one thread.
 */
#include "objstore/s3xml.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <expat.h>

#include "common/log.h"

/* An encoded key is at most 3 * OBJ_KEY_MAX bytes; nothing else we keep is longer. */
#define TEXT_MAX  (3 * OBJ_KEY_MAX + 16)
#define NAME_MAX_ 48

struct s3xml {
    XML_Parser p;
    struct s3xml_opts o;
    struct s3xml_info info;
    int depth;
    char names[4][NAME_MAX_]; /* names[d] = element at depth d (1..3) */
    char text[TEXT_MAX + 1];
    size_t text_len;
    bool text_overflow;
    int err; /* first error: EBADMSG or the callback's */

    /* The record being read. */
    char key[TEXT_MAX + 1];
    size_t key_len;
    bool key_overflow;
    struct obj_meta meta;
    struct obj_part part;
};

/* Copy at most cap - 1 bytes of src[0..n) and terminate (a field over its limit is cut). */
static void copy_n(char *dst, size_t cap, const char *src, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void copy_field(char *dst, size_t cap, const char *src)
{
    copy_n(dst, cap, src, strlen(src));
}

int s3xml_url_decode(char *s, size_t *len)
{
    size_t in = 0, out = 0, n = strlen(s);
    while (in < n) {
        char c = s[in];
        if (c == '%') {
            if (in + 2 >= n)
                return EINVAL;
            int v = 0;
            for (int i = 1; i <= 2; i++) {
                char h = s[in + i];
                v <<= 4;
                if (h >= '0' && h <= '9')
                    v |= h - '0';
                else if (h >= 'a' && h <= 'f')
                    v |= h - 'a' + 10;
                else if (h >= 'A' && h <= 'F')
                    v |= h - 'A' + 10;
                else
                    return EINVAL;
            }
            s[out++] = (char)v;
            in += 3;
        } else {
            s[out++] = c == '+' ? ' ' : c; /* S3 writes a space as '+', a '+' as %2B */
            in++;
        }
    }
    s[out] = '\0';
    *len = out;
    return 0;
}

int s3xml_parse_time(const char *s, int64_t *sec, uint32_t *nsec)
{
    struct tm tm;
    int consumed = 0;
    memset(&tm, 0, sizeof(tm));
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &consumed) != 6)
        return EINVAL;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    uint32_t ns = 0;
    const char *p = s + consumed;
    if (*p == '.') {
        uint32_t scale = 100000000u;
        for (p++; *p >= '0' && *p <= '9'; p++) {
            ns += (uint32_t)(*p - '0') * scale;
            scale /= 10;
        }
    }
    if (*p != 'Z' && *p != '\0')
        return EINVAL;
    *sec = (int64_t)timegm(&tm);
    *nsec = ns;
    return 0;
}

static void strip_quotes(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= 2 && src[0] == '"' && src[n - 1] == '"')
        copy_n(dst, cap, src + 1, n - 2);
    else
        copy_n(dst, cap, src, n);
}

static void fail(struct s3xml *x, int err)
{
    if (!x->err)
        x->err = err;
    XML_StopParser(x->p, XML_FALSE);
}

/* Hand one listing record to the callback (or skip it). */
static void emit(struct s3xml *x, bool is_prefix)
{
    if (!x->o.url_decode && memchr(x->key, '\n', x->key_len)) {
        /* XML parsers turn a raw CR (and CR LF) into LF: a key read with a
         * line feed may have had a CR in the store.  Only encoding-type=url
         * tells them apart: the caller asks again that way, from this entry
         * on (it is not counted as handed on). */
        fail(x, EBADMSG);
        return;
    }
    unsigned index = x->info.nentries++;
    if (x->key_overflow) {
        fail(x, EBADMSG);
        return;
    }
    size_t len = x->key_len;
    if (x->o.url_decode && s3xml_url_decode(x->key, &len)) {
        fail(x, EBADMSG);
        return;
    }

    if (len > OBJ_KEY_MAX) {
        fail(x, EBADMSG);
        return;
    }
    if (memchr(x->key, '\0', len)) {
        /* Only reachable through %00: a C string cannot name it. */
        x->info.nskipped_keys++;
        LOG_AT(LOG_WARNING, "s3: listing: skipping a key holding a NUL byte");
        return;
    }
    if (index < x->o.skip || !x->o.cb)
        return;
    struct obj_entry e = {.key = x->key, .is_prefix = is_prefix};
    if (!is_prefix)
        e.meta = x->meta;
    int rc = x->o.cb(x->o.cb_arg, &e);
    if (rc)
        fail(x, rc);
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
    struct s3xml *x = ud;
    (void)attrs;
    x->depth++;
    if (x->depth <= 3)
        copy_field(x->names[x->depth], NAME_MAX_, name);
    x->text_len = 0;
    x->text[0] = '\0';
    x->text_overflow = false;
    if (x->depth == 1) {
        copy_field(x->info.root, sizeof(x->info.root), name);
        x->info.is_error = strcmp(name, "Error") == 0;
    } else if (x->depth == 2) {
        if (strcmp(name, "Contents") == 0 || strcmp(name, "CommonPrefixes") == 0) {
            x->key[0] = '\0';
            x->key_len = 0;
            x->key_overflow = false;
            memset(&x->meta, 0, sizeof(x->meta));
        } else if (strcmp(name, "Part") == 0) {
            memset(&x->part, 0, sizeof(x->part));
        }
    }
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
    struct s3xml *x = ud;
    if (len <= 0)
        return;
    size_t n = (size_t)len;
    if (x->text_len + n > TEXT_MAX) {
        x->text_overflow = true;
        n = TEXT_MAX - x->text_len;
    }
    memcpy(x->text + x->text_len, s, n);
    x->text_len += n;
    x->text[x->text_len] = '\0';
}

static uint64_t to_u64(const char *s, bool *ok)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    *ok = errno == 0 && end != s && *end == '\0' && s[0] != '-';
    return v;
}

static void end_list_field(struct s3xml *x, const char *rec, const char *field)
{
    bool ok = true;
    if (strcmp(field, "Key") == 0 || strcmp(field, "Prefix") == 0) {
        memcpy(x->key, x->text, x->text_len + 1);
        x->key_len = x->text_len;
        x->key_overflow = x->text_overflow;
    } else if (strcmp(rec, "Contents") != 0) {
        return;
    } else if (strcmp(field, "Size") == 0) {
        x->meta.size = to_u64(x->text, &ok);
    } else if (strcmp(field, "ETag") == 0) {
        strip_quotes(x->meta.etag, sizeof(x->meta.etag), x->text);
    } else if (strcmp(field, "LastModified") == 0) {
        ok = s3xml_parse_time(x->text, &x->meta.mtime_sec, &x->meta.mtime_nsec) == 0;
    }
    if (!ok)
        fail(x, EBADMSG);
}

/* S3 answers ListParts with <ListPartsResult>; moto 5 with <ListPartsResponse>. */
static bool is_list_parts(const char *root)
{
    return strcmp(root, "ListPartsResult") == 0 || strcmp(root, "ListPartsResponse") == 0;
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    struct s3xml *x = ud;
    const char *root = x->names[1];
    bool ok = true;

    if (x->depth == 2) {
        if (x->info.is_error) {
            if (strcmp(name, "Code") == 0)
                copy_field(x->info.code, sizeof(x->info.code), x->text);
            else if (strcmp(name, "Message") == 0)
                copy_field(x->info.message, sizeof(x->info.message), x->text);
            else if (strcmp(name, "RequestId") == 0)
                copy_field(x->info.request_id, sizeof(x->info.request_id), x->text);
        } else if (strcmp(name, "IsTruncated") == 0) {
            x->info.truncated = strcmp(x->text, "true") == 0;
        } else if (strcmp(root, "ListBucketResult") == 0) {
            if (strcmp(name, "Contents") == 0)
                emit(x, false);
            else if (strcmp(name, "CommonPrefixes") == 0)
                emit(x, true);
            else if (strcmp(name, "NextContinuationToken") == 0) {
                if (x->text_len >= sizeof(x->info.next_token))
                    fail(x, EBADMSG);
                else
                    copy_field(x->info.next_token, sizeof(x->info.next_token), x->text);
            }
        } else if (strcmp(root, "InitiateMultipartUploadResult") == 0) {
            if (strcmp(name, "UploadId") == 0) {
                if (x->text_len >= sizeof(x->info.upload_id) || x->text_len == 0)
                    fail(x, EBADMSG);
                else
                    copy_field(x->info.upload_id, sizeof(x->info.upload_id), x->text);
            }
        } else if (is_list_parts(root)) {
            if (strcmp(name, "Part") == 0) {
                if (x->part.number >= 1 && x->part.number <= 10000 &&
                    x->info.nparts < x->o.max_parts)
                    x->o.parts[x->info.nparts++] = x->part;
            } else if (strcmp(name, "NextPartNumberMarker") == 0) {
                uint64_t v = to_u64(x->text, &ok);
                x->info.next_part_marker = ok && v <= 10000 ? (uint32_t)v : 0;
            }
        } else if (strcmp(name, "ETag") == 0) {
            /* CompleteMultipartUploadResult, CopyObjectResult, CopyPartResult */
            strip_quotes(x->info.etag, sizeof(x->info.etag), x->text);
        }
    } else if (x->depth == 3) {
        const char *rec = x->names[2];
        if (strcmp(root, "ListBucketResult") == 0 &&
            (strcmp(rec, "Contents") == 0 || strcmp(rec, "CommonPrefixes") == 0)) {
            end_list_field(x, rec, name);
        } else if (is_list_parts(root) && strcmp(rec, "Part") == 0) {
            if (strcmp(name, "PartNumber") == 0) {
                uint64_t v = to_u64(x->text, &ok);
                x->part.number = ok && v <= 10000 ? (uint32_t)v : 0;
            } else if (strcmp(name, "ETag") == 0) {
                strip_quotes(x->part.etag, sizeof(x->part.etag), x->text);
            } else if (strcmp(name, "Size") == 0) {
                x->part.size = to_u64(x->text, &ok);
            }
            if (!ok)
                fail(x, EBADMSG);
        }
    }
    x->text_len = 0;
    x->text[0] = '\0';
    x->depth--;
}

struct s3xml *s3xml_create(const struct s3xml_opts *o)
{
    struct s3xml *x = calloc(1, sizeof(*x));
    if (!x)
        goto fail;
    x->o = *o;
    x->p = XML_ParserCreate(NULL);
    if (!x->p)
        goto fail_free;
    XML_SetUserData(x->p, x);
    XML_SetElementHandler(x->p, on_start, on_end);
    XML_SetCharacterDataHandler(x->p, on_text);
    return x;

fail_free:
    free(x);
fail:
    errno = ENOMEM;
    return NULL;
}

int s3xml_feed(struct s3xml *x, const void *buf, size_t len, bool final)
{
    if (x->err)
        return x->err;
    const char *p = buf;
    do {
        /* expat takes an int length: feed big chunks in pieces. */
        int n = len > (1u << 30) ? (1 << 30) : (int)len;
        bool last = final && (size_t)n == len;
        if (XML_Parse(x->p, p, n, last) == XML_STATUS_ERROR && !x->err)
            x->err = EBADMSG;
        p += n;
        len -= (size_t)n;
    } while (len > 0 && !x->err);
    return x->err;
}

const struct s3xml_info *s3xml_info(const struct s3xml *x)
{
    return &x->info;
}

void s3xml_destroy(struct s3xml *x)
{
    if (!x)
        return;
    XML_ParserFree(x->p);
    free(x);
}
