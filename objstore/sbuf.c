/*
 * sbuf.c - growable strings with a sticky error (see sbuf.h).
 *
 * Owns nothing shared; a struct sbuf belongs to one thread at a time.
 */
#include "objstore/sbuf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int sbuf_reserve(struct sbuf *b, size_t more)
{
    if (b->err)
        return b->err;
    if (more > ((size_t)-1) / 2 - b->len) {
        b->err = ENOMEM;
        return b->err;
    }
    size_t need = b->len + more + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->err = ENOMEM;
        return b->err;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void sbuf_add(struct sbuf *b, const void *data, size_t len)
{
    if (sbuf_reserve(b, len))
        return;
    if (len)
        memcpy(b->p + b->len, data, len);
    b->len += len;
    b->p[b->len] = '\0';
}

void sbuf_adds(struct sbuf *b, const char *s)
{
    sbuf_add(b, s, strlen(s));
}

void sbuf_addc(struct sbuf *b, char c)
{
    sbuf_add(b, &c, 1);
}

void sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        if (!b->err)
            b->err = EINVAL;
        return;
    }
    if (sbuf_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void sbuf_add_uri(struct sbuf *b, const char *s, size_t len, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/')) {
            sbuf_addc(b, (char)c);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            sbuf_add(b, e, 3);
        }
    }
}

void sbuf_add_xml(struct sbuf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': sbuf_adds(b, "&amp;"); break;
        case '<': sbuf_adds(b, "&lt;"); break;
        case '>': sbuf_adds(b, "&gt;"); break;
        case '"': sbuf_adds(b, "&quot;"); break;
        case '\'': sbuf_adds(b, "&apos;"); break;
        default: sbuf_addc(b, *s); break;
        }
    }
}

int sbuf_err(const struct sbuf *b)
{
    return b->err;
}

char *sbuf_take(struct sbuf *b)
{
    if (b->err) {
        sbuf_free(b);
        errno = ENOMEM;
        return NULL;
    }
    if (!b->p) {
        char *e = strdup("");
        if (!e)
            errno = ENOMEM;
        return e;
    }
    char *p = b->p;
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

void sbuf_free(struct sbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->err = 0;
}
