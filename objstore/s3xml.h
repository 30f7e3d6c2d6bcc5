/*
 * s3xml.h - streaming parser (libexpat) for the XML bodies S3 answers with.
 *
 * Feed the body as it arrives, chunk by chunk (from curl's write callback);
 * nothing is kept but the current element's text, so a listing of any size
 * is parsed in constant memory.  The document kind is recognised from its
 * root element:
 *   ListBucketResult              one obj_list_cb call per Contents / CommonPrefixes
 *   Error                         Code, Message, RequestId (also inside a 200)
 *   InitiateMultipartUploadResult UploadId
 *   CompleteMultipartUploadResult, CopyObjectResult, CopyPartResult   ETag
 *   ListPartsResult               Part entries into the caller's array
 *                                 (moto names it ListPartsResponse: both are read)
 */
#ifndef BNFS_S3XML_H
#define BNFS_S3XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "objstore/objstore.h"

struct s3xml_opts {
    obj_list_cb cb; /* listing entries (may be NULL) */
    void *cb_arg;
    bool url_decode;        /* keys/prefixes are encoding-type=url encoded */
    unsigned skip;          /* do not deliver the first `skip` entries (a retried page) */
    struct obj_part *parts; /* ListPartsResult destination */
    size_t max_parts;
};

struct s3xml_info {
    char root[48]; /* root element name, "" until seen */
    bool is_error; /* root element was <Error> */
    char code[64], message[256], request_id[128];
    bool truncated; /* IsTruncated */
    char next_token[OBJ_TOKEN_MAX];
    unsigned nentries;      /* listing entries seen (delivered or skipped) */
    unsigned nskipped_keys; /* keys dropped because they cannot be a C string (NUL) */
    char upload_id[OBJ_UPLOAD_ID_MAX];
    char etag[OBJ_ETAG_MAX];
    size_t nparts;
    uint32_t next_part_marker;
};

struct s3xml;

/* NULL + errno (ENOMEM). */
struct s3xml *s3xml_create(const struct s3xml_opts *o);

/*
 * Parse the next len bytes; final = true after the last chunk.  Returns 0,
 * EBADMSG if the document is malformed or a field is over its limit, or the
 * listing callback's error (parsing stops there).
 */
int s3xml_feed(struct s3xml *x, const void *buf, size_t len, bool final);

const struct s3xml_info *s3xml_info(const struct s3xml *x);
void s3xml_destroy(struct s3xml *x);

/* "2009-10-12T17:50:30.000Z" -> seconds + nanoseconds.  0 or EINVAL. */
int s3xml_parse_time(const char *s, int64_t *sec, uint32_t *nsec);

/* Decode %XX and '+' (S3's encoding-type=url) in place; *len gets the length.  0 or EINVAL. */
int s3xml_url_decode(char *s, size_t *len);

#endif
