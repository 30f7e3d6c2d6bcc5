/*
 * test_s3xml.c - the streaming S3 XML parser on canned answers, fed whole
 * and one byte at a time, plus s3.c's part-size rule and the answer's
 * header lines (s3hdr.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "objstore/s3.h"
#include "objstore/s3xml.h"
#include "tests/unit/testlib.h"

#define MAXE 16

struct got {
    char keys[MAXE][256];
    bool prefix[MAXE];
    struct obj_meta meta[MAXE];
    int n;
    int stop_at; /* return ECANCELED at this entry (-1: never) */
};

static int on_entry(void *arg, const struct obj_entry *e)
{
    struct got *g = arg;
    if (g->n == g->stop_at)
        return ECANCELED;
    if (g->n < MAXE) {
        snprintf(g->keys[g->n], sizeof(g->keys[0]), "%s", e->key);
        g->prefix[g->n] = e->is_prefix;
        g->meta[g->n] = e->meta;
    }
    g->n++;
    return 0;
}

/* Parse doc with chunks of `step` bytes (0 = whole).  Returns feed's result. */
static int parse(const char *doc, size_t step, struct s3xml_opts *o, struct s3xml_info *info)
{
    struct s3xml *x = s3xml_create(o);
    if (!x)
        return ENOMEM;
    size_t len = strlen(doc);
    int rc = 0;
    if (step == 0) {
        rc = s3xml_feed(x, doc, len, true);
    } else {
        for (size_t i = 0; i < len && !rc; i += step)
            rc = s3xml_feed(x, doc + i, len - i < step ? len - i : step, false);
        if (!rc)
            rc = s3xml_feed(x, "", 0, true);
    }
    *info = *s3xml_info(x);
    s3xml_destroy(x);
    return rc;
}

static const char listing[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
    "<Name>b</Name><Prefix>dir/</Prefix><KeyCount>4</KeyCount><MaxKeys>4</MaxKeys>"
    "<Delimiter>/</Delimiter><IsTruncated>true</IsTruncated>"
    "<Contents><Key>dir/a &amp; b.txt</Key><LastModified>2009-10-12T17:50:30.250Z</LastModified>"
    "<ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><Size>434234</Size>"
    "<StorageClass>STANDARD</StorageClass></Contents>"
    "<Contents><Key>dir/\xe6\x97\xa5\xe6\x9c\xac</Key><LastModified>2020-01-01T00:00:00Z</"
    "LastModified>"
    "<ETag>\"abc-2\"</ETag><Size>0</Size></Contents>"
    "<CommonPrefixes><Prefix>dir/sub/</Prefix></CommonPrefixes>"
    "<CommonPrefixes><Prefix>dir/other/</Prefix></CommonPrefixes>"
    "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>"
    "</ListBucketResult>";

static void check_listing(size_t step)
{
    struct got g = {.stop_at = -1};
    struct s3xml_opts o = {.cb = on_entry, .cb_arg = &g};
    struct s3xml_info info;
    CHECK_EQ_INT(parse(listing, step, &o, &info), 0);
    CHECK_EQ_INT(g.n, 4);
    CHECK(strcmp(g.keys[0], "dir/a & b.txt") == 0);
    CHECK_EQ_INT(g.meta[0].size, 434234);
    CHECK(strcmp(g.meta[0].etag, "fba9dede5f27731c9771645a39863328") == 0);
    CHECK_EQ_INT(g.meta[0].mtime_sec, 1255369830);
    CHECK_EQ_INT(g.meta[0].mtime_nsec, 250000000);
    CHECK(!g.meta[0].has_posix);
    CHECK(strcmp(g.keys[1], "dir/\xe6\x97\xa5\xe6\x9c\xac") == 0);
    CHECK(strcmp(g.meta[1].etag, "abc-2") == 0);
    CHECK(g.prefix[2] && strcmp(g.keys[2], "dir/sub/") == 0);
    CHECK(g.prefix[3] && strcmp(g.keys[3], "dir/other/") == 0);
    CHECK(info.truncated);
    CHECK(strcmp(info.next_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=") == 0);
    CHECK(strcmp(info.root, "ListBucketResult") == 0);
    CHECK(!info.is_error);
}

static void test_listing(void)
{
    check_listing(0);
    check_listing(1); /* one byte at a time: entity and UTF-8 split across chunks */
    check_listing(7);

    /* A retried page: the first two entries were delivered already. */
    struct got g = {.stop_at = -1};
    struct s3xml_opts o = {.cb = on_entry, .cb_arg = &g, .skip = 2};
    struct s3xml_info info;
    CHECK_EQ_INT(parse(listing, 0, &o, &info), 0);
    CHECK_EQ_INT(g.n, 2);
    CHECK(strcmp(g.keys[0], "dir/sub/") == 0);
    CHECK_EQ_INT(info.nentries, 4);

    /* The callback stops the listing with its error. */
    struct got g2 = {.stop_at = 1};
    o = (struct s3xml_opts){.cb = on_entry, .cb_arg = &g2};
    CHECK_EQ_INT(parse(listing, 3, &o, &info), ECANCELED);
    CHECK_EQ_INT(g2.n, 1);
}

static void test_url_encoded(void)
{
    static const char doc[] =
        "<ListBucketResult><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>"
        "<Contents><Key>a+b%2Bc%26d%3D%25%E2%82%AC%01</Key><Size>1</Size></Contents>"
        "<Contents><Key>nul%00byte</Key><Size>1</Size></Contents>"
        "<CommonPrefixes><Prefix>p+q%2F</Prefix></CommonPrefixes></ListBucketResult>";
    struct got g = {.stop_at = -1};
    struct s3xml_opts o = {.cb = on_entry, .cb_arg = &g, .url_decode = true};
    struct s3xml_info info;
    CHECK_EQ_INT(parse(doc, 1, &o, &info), 0);
    CHECK_EQ_INT(g.n, 2); /* the NUL key is skipped */
    CHECK(strcmp(g.keys[0], "a b+c&d=%\xe2\x82\xac\x01") == 0);
    CHECK(strcmp(g.keys[1], "p q/") == 0);
    CHECK_EQ_INT(info.nskipped_keys, 1);
    CHECK(!info.truncated);
    CHECK(info.next_token[0] == '\0');

    /* Bad escapes are a malformed answer, not a wrong key. */
    static const char bad[] =
        "<ListBucketResult><Contents><Key>x%G1</Key></Contents></ListBucketResult>";
    struct got g2 = {.stop_at = -1};
    o.cb_arg = &g2;
    CHECK_EQ_INT(parse(bad, 0, &o, &info), EBADMSG);
    CHECK_EQ_INT(g2.n, 0);

    /* A raw control character is not XML: the caller retries with encoding-type=url. */
    static const char ctl[] =
        "<ListBucketResult><Contents><Key>a&#1;b</Key></Contents></ListBucketResult>";
    o = (struct s3xml_opts){.cb = on_entry, .cb_arg = &g2};
    CHECK_EQ_INT(parse(ctl, 0, &o, &info), EBADMSG);

    /* A raw CR reaches us as LF (XML end-of-line handling), as does a raw LF:
     * a key with a line feed is ambiguous unless URL-encoded, so the caller
     * asks again; %0D and %0A decode to the right bytes. */
    static const char cr[] =
        "<ListBucketResult><Contents><Key>ok</Key></Contents>"
        "<Contents><Key>cr\rhere</Key></Contents></ListBucketResult>";
    struct got g3 = {.stop_at = -1};
    o = (struct s3xml_opts){.cb = on_entry, .cb_arg = &g3};
    CHECK_EQ_INT(parse(cr, 0, &o, &info), EBADMSG);
    CHECK_EQ_INT(g3.n, 1); /* the keys before it were handed on: the retry skips them */
    CHECK_EQ_INT(info.nentries, 1); /* and only them */
    static const char crenc[] =
        "<ListBucketResult><Contents><Key>cr%0Dhere</Key></Contents>"
        "<Contents><Key>new%0Aline</Key></Contents></ListBucketResult>";
    struct got g4 = {.stop_at = -1};
    o = (struct s3xml_opts){.cb = on_entry, .cb_arg = &g4, .url_decode = true};
    CHECK_EQ_INT(parse(crenc, 1, &o, &info), 0);
    CHECK_EQ_INT(g4.n, 2);
    CHECK(strcmp(g4.keys[0], "cr\rhere") == 0);
    CHECK(strcmp(g4.keys[1], "new\nline") == 0);
}

static void test_errors(void)
{
    static const char err[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code>"
        "<Message>The resource you requested does not exist</Message>"
        "<Resource>/mybucket/myfoto.jpg</Resource><RequestId>4442587FB7D0A2F9</RequestId></Error>";
    struct s3xml_opts o = {0};
    struct s3xml_info info;
    CHECK_EQ_INT(parse(err, 1, &o, &info), 0);
    CHECK(info.is_error);
    CHECK(strcmp(info.code, "NoSuchKey") == 0);
    CHECK(strcmp(info.request_id, "4442587FB7D0A2F9") == 0);
    CHECK(strstr(info.message, "does not exist") != NULL);

    /* CompleteMultipartUpload can answer 200 and then an error. */
    static const char in200[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\n\n<Error><Code>InternalError</Code>"
        "<Message>We encountered an internal error. Please try again.</Message>"
        "<RequestId>656c76696e6727732072657175657374</RequestId></Error>";
    CHECK_EQ_INT(parse(in200, 5, &o, &info), 0);
    CHECK(info.is_error);
    CHECK(strcmp(info.code, "InternalError") == 0);

    /* Truncated or garbage bodies are reported, not half-read. */
    CHECK_EQ_INT(parse("<Error><Code>Slow", 0, &o, &info), EBADMSG);
    CHECK_EQ_INT(parse("<html>oops</body>", 0, &o, &info), EBADMSG);
}

static void test_multipart_docs(void)
{
    struct s3xml_opts o = {0};
    struct s3xml_info info;
    CHECK_EQ_INT(
        parse("<InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
              "<Bucket>b</Bucket><Key>k</Key><UploadId>VXBsb2FkIElE-x.y_z</UploadId>"
              "</InitiateMultipartUploadResult>",
              1, &o, &info),
        0);
    CHECK(strcmp(info.upload_id, "VXBsb2FkIElE-x.y_z") == 0);

    CHECK_EQ_INT(
        parse("<CompleteMultipartUploadResult><Location>http://x/b/k</Location>"
              "<Bucket>b</Bucket><Key>k</Key><ETag>\"3858f62230ac3c915f300c664312c11f-9\"</ETag>"
              "</CompleteMultipartUploadResult>",
              0, &o, &info),
        0);
    CHECK(strcmp(info.etag, "3858f62230ac3c915f300c664312c11f-9") == 0);
    CHECK(!info.is_error);

    CHECK_EQ_INT(
        parse("<CopyObjectResult><LastModified>2009-10-28T22:32:00Z</LastModified>"
              "<ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag></CopyObjectResult>",
              2, &o, &info),
        0);
    CHECK(strcmp(info.etag, "9b2cf535f27731c974343645a3985328") == 0);

    /* UploadPartCopy's answer, after the blanks S3 sends while a long copy runs. */
    CHECK_EQ_INT(parse("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n \n \n"
                       "<CopyPartResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                       "<LastModified>2011-04-11T20:34:56.000Z</LastModified>"
                       "<ETag>\"b5d8ad5ff1b7ba1e5ab0fe1a2b35e2c8\"</ETag>"
                       "<ChecksumCRC32>AAAAAA==</ChecksumCRC32></CopyPartResult>",
                       1, &o, &info),
                 0);
    CHECK(strcmp(info.root, "CopyPartResult") == 0 && !info.is_error);
    CHECK(strcmp(info.etag, "b5d8ad5ff1b7ba1e5ab0fe1a2b35e2c8") == 0);
    CHECK_EQ_INT(parse("<Error><Code>PreconditionFailed</Code><Message>At least one of the "
                       "pre-conditions you specified did not hold</Message>"
                       "<Condition>x-amz-copy-source-If-Match</Condition></Error>",
                       3, &o, &info),
                 0);
    CHECK(info.is_error && strcmp(info.code, "PreconditionFailed") == 0);

    struct obj_part parts[2];
    o.parts = parts;
    o.max_parts = 2;
    static const char lp[] =
        "<ListPartsResult><Bucket>b</Bucket><Key>k</Key><UploadId>u</UploadId>"
        "<PartNumberMarker>1</PartNumberMarker><NextPartNumberMarker>3</NextPartNumberMarker>"
        "<MaxParts>2</MaxParts><IsTruncated>true</IsTruncated>"
        "<Part><PartNumber>2</PartNumber><LastModified>2010-11-10T20:48:34.000Z</LastModified>"
        "<ETag>\"7778aef83f66abc1fa1e8477f296d394\"</ETag><Size>10485760</Size></Part>"
        "<Part><PartNumber>3</PartNumber><ETag>\"aaaa18db4cc2f85cedef654fccc4a4x8\"</ETag>"
        "<Size>10485760</Size></Part>"
        "<Part><PartNumber>4</PartNumber><ETag>\"over\"</ETag><Size>1</Size></Part>"
        "</ListPartsResult>";
    CHECK_EQ_INT(parse(lp, 1, &o, &info), 0);
    CHECK_EQ_INT(info.nparts, 2); /* the caller's array holds two */
    CHECK_EQ_INT(parts[0].number, 2);
    CHECK_EQ_INT(parts[0].size, 10485760);
    CHECK(strcmp(parts[0].etag, "7778aef83f66abc1fa1e8477f296d394") == 0);
    CHECK_EQ_INT(parts[1].number, 3);
    CHECK(info.truncated);
    CHECK_EQ_INT(info.next_part_marker, 3);
}

static void test_limits(void)
{
    /* A key longer than S3 allows is a malformed answer, not a buffer overrun. */
    size_t n = 3 * OBJ_KEY_MAX + 100;
    char *doc = malloc(n + 200);
    strcpy(doc, "<ListBucketResult><Contents><Key>");
    size_t l = strlen(doc);
    memset(doc + l, 'k', n);
    strcpy(doc + l + n, "</Key></Contents></ListBucketResult>");
    struct got g = {.stop_at = -1};
    struct s3xml_opts o = {.cb = on_entry, .cb_arg = &g};
    struct s3xml_info info;
    CHECK_EQ_INT(parse(doc, 0, &o, &info), EBADMSG);
    CHECK_EQ_INT(g.n, 0);
    free(doc);

    int64_t sec;
    uint32_t nsec;
    CHECK_EQ_INT(s3xml_parse_time("1970-01-01T00:00:01.5Z", &sec, &nsec), 0);
    CHECK(sec == 1 && nsec == 500000000);
    CHECK_EQ_INT(s3xml_parse_time("yesterday", &sec, &nsec), EINVAL);
}

static int count_only(void *arg, const struct obj_entry *e)
{
    (void)e;
    (*(unsigned *)arg)++;
    return 0;
}

/* 100,000 keys, produced and fed 64 KiB at a time: never one document in memory. */
static void test_huge_listing(void)
{
    unsigned count = 0;
    struct s3xml_opts o = {.cb = count_only, .cb_arg = &count};
    struct s3xml *x = s3xml_create(&o);
    CHECK(x != NULL);
    if (!x)
        return;
    static char chunk[65536 + 512];
    size_t len = 0;
    int rc = 0;
    len = (size_t)sprintf(chunk, "<ListBucketResult><IsTruncated>false</IsTruncated>");
    for (unsigned i = 0; i < 100000 && !rc; i++) {
        len += (size_t)sprintf(chunk + len,
                               "<Contents><Key>frames/cam0/%09u.jpg</Key><Size>%u</Size>"
                               "<ETag>\"%032x\"</ETag></Contents>",
                               i, 50000 + i, i);
        if (len > 65536) {
            rc = s3xml_feed(x, chunk, len, false);
            len = 0;
        }
    }
    len += (size_t)sprintf(chunk + len, "</ListBucketResult>");
    if (!rc)
        rc = s3xml_feed(x, chunk, len, true);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(count, 100000);
    CHECK_EQ_INT(s3xml_info(x)->nentries, 100000);
    s3xml_destroy(x);
}

static void test_part_size(void)
{
    const uint64_t MiB = 1024 * 1024, GiB = 1024 * MiB;
    CHECK_EQ_INT(s3_part_size(0), 8 * MiB);
    CHECK_EQ_INT(s3_part_size(20 * MiB), 8 * MiB);
    CHECK_EQ_INT(s3_part_size(80000 * MiB), 8 * MiB);
    uint64_t sizes[] = {100 * GiB, 100ull * 1000 * 1000 * 1000, 1024 * GiB, 5000 * GiB};
    for (size_t i = 0; i < 4; i++) {
        uint64_t p = s3_part_size(sizes[i]);
        CHECK(p % MiB == 0);
        CHECK((sizes[i] + p - 1) / p <= 10000); /* fits in 10,000 parts */
        CHECK(p < sizes[i] / 10000 + MiB);      /* and not much bigger than needed */
    }
    CHECK_EQ_INT(s3_part_size(100 * GiB), 11 * MiB);
    CHECK_EQ_INT(s3_part_size(60000 * GiB), 5 * GiB); /* S3's part limit */
}

/* One header line into r, from a buffer holding exactly the line (no NUL after it). */
static bool hdr(struct s3_resp *r, const char *line)
{
    size_t n = strlen(line);
    char *copy = malloc(n);
    memcpy(copy, line, n);
    bool status = s3_resp_header(r, copy, n);
    free(copy);
    return status;
}

/* A fresh struct, then one Content-Range line. */
static struct s3_resp range(const char *value)
{
    struct s3_resp r;
    char line[256];
    s3_resp_reset(&r);
    snprintf(line, sizeof(line), "Content-Range: %s\r\n", value);
    hdr(&r, line);
    return r;
}

static void test_resp_headers(void)
{
    struct s3_resp r;

    /* Content-Range (RFC 9110 section 14.4) */
    r = range("bytes 0-99/1234");
    CHECK(r.have_range && r.range_first == 0 && r.range_last == 99);
    CHECK(r.have_range_total && r.range_total == 1234);
    r = range("bytes 100-1099/5000");
    CHECK(r.have_range && r.range_first == 100 && r.range_last == 1099 && r.range_total == 5000);
    r = range("bytes */123"); /* a 416's: the total alone */
    CHECK(!r.have_range && r.have_range_total && r.range_total == 123);
    r = range("bytes 0-99"); /* no '/' */
    CHECK(!r.have_range && !r.have_range_total);
    r = range("bytes 0-99/*"); /* total unknown */
    CHECK(r.have_range && r.range_last == 99 && !r.have_range_total);
    r = range("bytes 10-5/100"); /* FIRST > LAST */
    CHECK(!r.have_range && r.have_range_total);
    r = range("bytes -5-10/100"); /* negative */
    CHECK(!r.have_range);
    r = range("bytes 5--10/100");
    CHECK(!r.have_range);
    r = range("bytes 0-10/-100");
    CHECK(r.have_range && !r.have_range_total);
    r = range("bytes +1-2/3");
    CHECK(!r.have_range);
    r = range("bytes 1 -2/3");
    CHECK(!r.have_range);
    r = range("bytes 0-9223372036854775808/18446744073709551609"); /* 2^63, and near 2^64 */
    CHECK(r.have_range && r.range_last == 9223372036854775808ull);
    CHECK(r.have_range_total && r.range_total == 18446744073709551609ull);
    r = range("bytes 0-18446744073709551616/1"); /* 2^64: does not wrap to 0 */
    CHECK(!r.have_range && r.have_range_total);
    r = range("bytes 0-99999999999999999999/1"); /* 20 digits, too large */
    CHECK(!r.have_range);
    r = range("bytes 0-1/000000000000000000001"); /* 21 digits */
    CHECK(r.have_range && !r.have_range_total);
    r = range("bytes 0-1/99999999999999999999999999");
    CHECK(!r.have_range_total);
    r = range("bytes -/");
    CHECK(!r.have_range && !r.have_range_total);
    r = range("bytes");
    CHECK(!r.have_range && !r.have_range_total);
    r = range("");
    CHECK(!r.have_range && !r.have_range_total);
    s3_resp_reset(&r);
    hdr(&r, "content-range:bytes 7-8/9 \t\r\n"); /* blanks around the value, any case */
    CHECK(r.have_range && r.range_first == 7 && r.range_last == 8 && r.range_total == 9);

    /* Content-Length */
    s3_resp_reset(&r);
    hdr(&r, "Content-Length: 5000\r\n");
    CHECK(r.have_length && r.length == 5000);
    hdr(&r, "content-length: -1\r\n");
    CHECK(!r.have_length);
    hdr(&r, "Content-Length: 1 2\r\n");
    CHECK(!r.have_length);
    hdr(&r, "Content-Length:\r\n");
    CHECK(!r.have_length);
    hdr(&r, "Content-Length: 18446744073709551616\r\n");
    CHECK(!r.have_length);
    /* The line ends where curl says, not at a NUL: digits after it are not read. */
    char buf[32] = "Content-Length: 1234";
    CHECK(!s3_resp_header(&r, buf, 18));
    CHECK(r.have_length && r.length == 12);

    /* A name must be followed by ':' at once. */
    s3_resp_reset(&r);
    hdr(&r, "Content-Length : 7\r\n");
    hdr(&r, "Content-LengthX: 7\r\n");
    hdr(&r, "Content-Lengt: 7\r\n");
    CHECK(!r.have_length);

    /* ETag: quotes stripped, truncated to its field */
    hdr(&r, "ETag: \"1d7bfe47e57b4c9e48222e3c4f3d62cb-3\"\r\n");
    CHECK(strcmp(r.meta.etag, "1d7bfe47e57b4c9e48222e3c4f3d62cb-3") == 0);
    hdr(&r, "etag: \"\r\n"); /* one quote: kept as it is */
    CHECK(strcmp(r.meta.etag, "\"") == 0);
    char line[600];
    int n = snprintf(line, sizeof(line), "ETag: \"");
    memset(line + n, 'e', 500);
    snprintf(line + n + 500, sizeof(line) - (size_t)n - 500, "\"\r\n");
    hdr(&r, line);
    CHECK(strlen(r.meta.etag) == OBJ_ETAG_MAX - 1 && r.meta.etag[0] == 'e');

    /* x-amz-meta-file-* */
    s3_resp_reset(&r);
    hdr(&r, "x-amz-meta-file-permissions: 0100644\r\n");
    CHECK(r.have_perm && r.meta.mode == 0100644);
    hdr(&r, "x-amz-meta-file-permissions: 0100648\r\n");
    CHECK(!r.have_perm);
    hdr(&r, "x-amz-meta-file-permissions: 01006440\r\n");
    CHECK(!r.have_perm);
    hdr(&r, "x-amz-meta-file-owner: 4294967295\r\n");
    CHECK_EQ_INT(r.meta.uid, 4294967295u);
    hdr(&r, "x-amz-meta-file-owner: 4294967296\r\n"); /* out of range: kept as it was */
    CHECK_EQ_INT(r.meta.uid, 4294967295u);
    hdr(&r, "X-Amz-Meta-File-Group: 100\r\n");
    CHECK_EQ_INT(r.meta.gid, 100);
    hdr(&r, "x-amz-meta-file-group: -1\r\n");
    CHECK_EQ_INT(r.meta.gid, 100);
    hdr(&r, "x-amz-meta-file-mtime: 1733241600123456789ns\r\n");
    CHECK(r.have_fmtime && r.fm_sec == 1733241600 && r.fm_nsec == 123456789);
    hdr(&r, "x-amz-meta-file-mtime: 99999999999999999999ns\r\n");
    CHECK(!r.have_fmtime);
    hdr(&r, "x-amz-meta-file-mtime: 1733241600\r\n");
    CHECK(!r.have_fmtime);

    /* Last-Modified, request id */
    hdr(&r, "last-modified: Thu, 03 Dec 2026 17:04:22 GMT\r\n");
    CHECK_EQ_INT(r.lm_sec, 1796317462);
    hdr(&r, "Last-Modified: yesterday\r\n"); /* not a date: kept as it was */
    CHECK_EQ_INT(r.lm_sec, 1796317462);
    hdr(&r, "x-amz-request-id: 4442587FB7D0A2F9\r\n");
    CHECK(strcmp(r.request_id, "4442587FB7D0A2F9") == 0);

    /* A status line (a 100 Continue came first) clears everything. */
    hdr(&r, "Content-Range: bytes 0-1/2\r\n");
    CHECK(hdr(&r, "HTTP/1.1 200 OK\r\n"));
    CHECK(!r.have_range && !r.have_range_total && !r.have_perm && !r.have_fmtime);
    CHECK(r.meta.etag[0] == '\0' && r.request_id[0] == '\0' && r.lm_sec == 0 && r.meta.uid == 0);
    CHECK(!hdr(&r, "\r\n"));
    CHECK(!hdr(&r, "HTTP"));
}

int main(void)
{
    test_listing();
    test_url_encoded();
    test_errors();
    test_multipart_docs();
    test_limits();
    test_huge_listing();
    test_part_size();
    test_resp_headers();
    return TEST_DONE();
}
