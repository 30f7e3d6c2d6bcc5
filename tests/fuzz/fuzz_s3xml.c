/*
 * fuzz_s3xml.c - libFuzzer target for the S3 answer parser
 * (objstore/s3xml.c): the bytes an S3 endpoint, or anything between us and
 * it, sends back (listings, multipart and copy results, errors, also
 * inside a 200).
 *
 * The first byte chooses the parser options (url_decode, skip, how many
 * parts the caller's array holds, at which entry the listing callback
 * says stop) and the chunk size; the rest is the document.  It is parsed
 * twice, whole and in chunks, as curl would hand it over: the result, the
 * entries delivered and every field of s3xml_info must be the same, each
 * string terminated inside its field, each key a C string of at most
 * OBJ_KEY_MAX bytes.  The document is also given, as a string, to
 * s3xml_url_decode and s3xml_parse_time.  Invariants are checked with
 * abort(), which libFuzzer reports as a crash.
 */
#include "objstore/s3xml.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PARTS_MAX 4

struct seen {
    unsigned n, stop_at;
    uint64_t hash; /* FNV-1a over the keys delivered, in order */
};

static int on_entry(void *arg, const struct obj_entry *e)
{
    struct seen *s = arg;
    size_t len = strnlen(e->key, OBJ_KEY_MAX + 1);
    if (len > OBJ_KEY_MAX)
        abort();
    if (s->n++ == s->stop_at)
        return ECANCELED;
    for (size_t i = 0; i <= len; i++)
        s->hash = (s->hash ^ (unsigned char)e->key[i]) * 0x100000001b3ull;
    s->hash = (s->hash ^ e->is_prefix) * 0x100000001b3ull;
    return 0;
}

static void check_str(const char *s, size_t cap)
{
    if (strnlen(s, cap) == cap)
        abort();
}

/* Parse doc in chunks of `step` bytes (0: whole); info and parts get the result. */
static int parse(const uint8_t *doc, size_t size, size_t step, struct s3xml_opts o,
                 struct seen *seen, struct obj_part *parts, struct s3xml_info *info)
{
    o.cb = on_entry;
    o.cb_arg = seen;
    o.parts = parts;
    struct s3xml *x = s3xml_create(&o);
    if (!x)
        abort();
    int rc = 0;
    size_t off = 0;
    do {
        size_t n = step && size - off > step ? step : size - off;
        rc = s3xml_feed(x, doc + off, n, off + n == size);
        off += n;
    } while (!rc && off < size);
    *info = *s3xml_info(x);
    s3xml_destroy(x);
    return rc;
}

static void check_info(const struct s3xml_info *i, size_t max_parts)
{
    check_str(i->root, sizeof(i->root));
    check_str(i->code, sizeof(i->code));
    check_str(i->message, sizeof(i->message));
    check_str(i->request_id, sizeof(i->request_id));
    check_str(i->next_token, sizeof(i->next_token));
    check_str(i->upload_id, sizeof(i->upload_id));
    check_str(i->etag, sizeof(i->etag));
    if (i->nparts > max_parts || i->next_part_marker > 10000)
        abort();
}

static bool same_info(const struct s3xml_info *a, const struct s3xml_info *b)
{
    return strcmp(a->root, b->root) == 0 && a->is_error == b->is_error &&
           strcmp(a->code, b->code) == 0 && strcmp(a->message, b->message) == 0 &&
           strcmp(a->request_id, b->request_id) == 0 && a->truncated == b->truncated &&
           strcmp(a->next_token, b->next_token) == 0 && a->nentries == b->nentries &&
           a->nskipped_keys == b->nskipped_keys && strcmp(a->upload_id, b->upload_id) == 0 &&
           strcmp(a->etag, b->etag) == 0 && a->nparts == b->nparts &&
           a->next_part_marker == b->next_part_marker;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t ctl = data[0];
    struct s3xml_opts o = {
        .url_decode = ctl & 1, .skip = (ctl >> 1) & 3, .max_parts = (ctl >> 3) % (PARTS_MAX + 1)};
    size_t step = 1 + (ctl >> 6) * 7; /* 1, 8, 15 or 22 bytes at a time */
    data++;
    size--;

    struct obj_part p1[PARTS_MAX], p2[PARTS_MAX];
    struct s3xml_info i1, i2;
    unsigned stop_at = ctl & 0x80 ? (ctl >> 3) & 7 : ~0u;
    struct seen s1 = {0, stop_at, 0xcbf29ce484222325ull}, s2 = s1;
    int rc1 = parse(data, size, 0, o, &s1, p1, &i1);
    int rc2 = parse(data, size, step, o, &s2, p2, &i2);
    check_info(&i1, o.max_parts);
    check_info(&i2, o.max_parts);
    if (rc1 != rc2 || s1.n != s2.n || s1.hash != s2.hash || !same_info(&i1, &i2))
        abort(); /* the answer must not depend on how the network cut it */
    for (size_t i = 0; i < i1.nparts; i++) {
        check_str(p1[i].etag, sizeof(p1[i].etag));
        if (p1[i].number < 1 || p1[i].number > 10000 || p1[i].number != p2[i].number ||
            p1[i].size != p2[i].size || strcmp(p1[i].etag, p2[i].etag) != 0)
            abort();
    }

    /* The helpers, on the document as one string. */
    char *str = malloc(size + 1);
    if (!str)
        return 0;
    memcpy(str, data, size);
    str[size] = '\0';
    size_t n = strlen(str), len = 0;
    int64_t sec;
    uint32_t nsec;
    if (s3xml_parse_time(str, &sec, &nsec) == 0 && nsec >= 1000000000u)
        abort();
    if (s3xml_url_decode(str, &len) == 0 && len > n)
        abort();
    free(str);
    return 0;
}
