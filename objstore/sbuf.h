/*
 * sbuf.h - a growable byte string for building requests (canonical
 * requests, URLs, XML bodies).  Errors are sticky: after a failed
 * allocation every append is a no-op and sbuf_err() returns ENOMEM, so a
 * builder checks once at the end instead of after every append.
 */
#ifndef BNFS_SBUF_H
#define BNFS_SBUF_H

#include <stddef.h>

struct sbuf {
    char *p; /* always NUL-terminated when len > 0 or cap > 0 */
    size_t len;
    size_t cap;
    int err; /* 0 or ENOMEM */
};

#define SBUF_INIT                                                                                  \
    {                                                                                              \
        NULL, 0, 0, 0                                                                              \
    }

void sbuf_add(struct sbuf *b, const void *data, size_t len);
void sbuf_adds(struct sbuf *b, const char *s);
void sbuf_addc(struct sbuf *b, char c);
void sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append s[0..len) percent-encoded (SigV4 unreserved set; '/' kept if keep_slash). */
void sbuf_add_uri(struct sbuf *b, const char *s, size_t len, int keep_slash);
/* Append s with &, <, >, ", ' escaped for XML text. */
void sbuf_add_xml(struct sbuf *b, const char *s);
int sbuf_err(const struct sbuf *b);
/* Hand the string over to the caller (malloc'd, "" if empty); NULL on error. */
char *sbuf_take(struct sbuf *b);
void sbuf_free(struct sbuf *b);

#endif
