/*
 * admin_proto.c - the admin socket's line codec and line reader (see
 * admin_proto.h for the format).
 *
 * The decoder takes bytes from any local process that can open the
 * socket: every length is checked against the limits before use, output
 * never outgrows struct admin_msg's buffer, and a malformed line is an
 * error, never a guess.  tests/fuzz/fuzz_admin.c exercises it.
 * No state, no locks, no threads of its own.
 */
#include "nfsd/admin_proto.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Bytes written as %XX: controls, space, '%', DEL. */
static bool must_escape(unsigned char c)
{
    return c <= 0x20 || c == '%' || c == 0x7f;
}

int admin_decode(const char *line, size_t len, struct admin_msg *out)
{
    const unsigned char *p = (const unsigned char *)line;
    size_t o = 0; /* bytes used in out->buf */

    out->n = 0;
    if (len >= ADMIN_LINE_MAX)
        return EMSGSIZE;
    if (len == 0)
        return EINVAL;
    size_t i = 0;
    for (;;) {
        /* One word: p[i..end). */
        size_t end = i;
        while (end < len && p[end] != ' ')
            end++;
        if (end == i)
            return EINVAL; /* empty: leading, trailing or doubled space */
        if (out->n == ADMIN_WORDS_MAX)
            return EMSGSIZE;
        size_t start = o;
        if (end - i == 1 && p[i] == '%') {
            /* the empty word */
        } else {
            for (size_t k = i; k < end; k++) {
                unsigned char c = p[k];
                if (c == '%') {
                    if (end - k < 3)
                        return EINVAL;
                    int hi = hexval(p[k + 1]), lo = hexval(p[k + 2]);
                    if (hi < 0 || lo < 0)
                        return EINVAL;
                    c = (unsigned char)(hi << 4 | lo);
                    if (c == 0)
                        return EINVAL; /* words are C strings */
                    k += 2;
                } else if (must_escape(c)) {
                    return EINVAL;
                }
                if (o - start >= ADMIN_WORD_MAX)
                    return EMSGSIZE;
                if (o + 1 >= sizeof(out->buf))
                    return EMSGSIZE; /* cannot happen (decoding shrinks); checked anyway */
                out->buf[o++] = (char)c;
            }
        }
        if (o >= sizeof(out->buf))
            return EMSGSIZE;
        out->buf[o++] = '\0';
        out->w[out->n] = out->buf + start;
        out->wlen[out->n] = o - 1 - start;
        out->n++;
        if (end == len)
            return 0;
        i = end + 1; /* past the space */
        if (i == len)
            return EINVAL; /* trailing space */
    }
}

int admin_encode(const char *const *words, size_t n, char *out, size_t outlen, size_t *len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t cap = outlen < ADMIN_LINE_MAX + 1 ? outlen : ADMIN_LINE_MAX + 1; /* with the NUL */
    size_t o = 0;

    *len = 0;
    if (n == 0 || n > ADMIN_WORDS_MAX)
        return EINVAL;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *w = (const unsigned char *)(words[i] ? words[i] : "");
        size_t wl = strlen((const char *)w);
        if (wl > ADMIN_WORD_MAX)
            return EINVAL;
        if (i > 0) {
            if (o + 1 >= cap)
                return EMSGSIZE;
            out[o++] = ' ';
        }
        if (wl == 0) {
            if (o + 1 >= cap)
                return EMSGSIZE;
            out[o++] = '%';
            continue;
        }
        for (size_t k = 0; k < wl; k++) {
            if (must_escape(w[k])) {
                if (o + 3 >= cap)
                    return EMSGSIZE;
                out[o++] = '%';
                out[o++] = hex[w[k] >> 4];
                out[o++] = hex[w[k] & 15];
            } else {
                if (o + 1 >= cap)
                    return EMSGSIZE;
                out[o++] = (char)w[k];
            }
        }
    }
    if (o + 1 >= cap)
        return EMSGSIZE;
    out[o++] = '\n';
    out[o] = '\0';
    *len = o;
    return 0;
}

void admin_reader_init(struct admin_reader *r, int fd)
{
    r->fd = fd;
    r->off = r->len = 0;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int admin_read_line(struct admin_reader *r, int timeout_ms, char **line, size_t *len)
{
    int64_t deadline = timeout_ms >= 0 ? mono_ms() + timeout_ms : 0;

    /* Drop the line handed out last time. */
    if (r->off) {
        memmove(r->buf, r->buf + r->off, r->len - r->off);
        r->len -= r->off;
        r->off = 0;
    }
    for (;;) {
        char *nl = memchr(r->buf, '\n', r->len);
        if (nl) {
            *nl = '\0';
            *line = r->buf;
            *len = (size_t)(nl - r->buf);
            r->off = *len + 1;
            return 0;
        }
        if (r->len >= sizeof(r->buf) - 1)
            return EMSGSIZE;
        int wait = -1;
        if (timeout_ms >= 0) {
            int64_t left = deadline - mono_ms();
            if (left <= 0)
                return ETIMEDOUT;
            wait = (int)left;
        }
        struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
        int pr = poll(&pfd, 1, wait);
        if (pr < 0) {
            if (errno == EINTR)
                return EINTR; /* the caller decides (the tool: Ctrl-C) */
            return errno;
        }
        if (pr == 0)
            continue; /* the deadline check above answers */
        ssize_t got = recv(r->fd, r->buf + r->len, sizeof(r->buf) - 1 - r->len, 0);
        if (got < 0) {
            if (errno == EINTR)
                return EINTR;
            if (errno == EAGAIN)
                continue;
            return errno;
        }
        if (got == 0)
            return ECONNRESET;
        r->len += (size_t)got;
    }
}

static const struct {
    int err;
    const char *name;
} errnames[] = {
    {EPERM, "EPERM"},       {ENOENT, "ENOENT"},   {EIO, "EIO"},
    {ENOMEM, "ENOMEM"},     {EACCES, "EACCES"},   {EBUSY, "EBUSY"},
    {EEXIST, "EEXIST"},     {ENOTDIR, "ENOTDIR"}, {EISDIR, "EISDIR"},
    {EINVAL, "EINVAL"},     {ENOSPC, "ENOSPC"},   {EROFS, "EROFS"},
    {EAGAIN, "EAGAIN"},     {ENAMETOOLONG, "ENAMETOOLONG"},
    {ENOTSUP, "ENOTSUP"},   {ESTALE, "ESTALE"},   {ETIMEDOUT, "ETIMEDOUT"},
    {ECANCELED, "ECANCELED"}, {EMSGSIZE, "EMSGSIZE"}, {ELOOP, "ELOOP"},
    {ENOSYS, "ENOSYS"},     {ECONNRESET, "ECONNRESET"},
};

const char *admin_errno_name(int err, char *buf, size_t len)
{
    for (size_t i = 0; i < sizeof(errnames) / sizeof(errnames[0]); i++)
        if (errnames[i].err == err)
            return errnames[i].name;
    snprintf(buf, len, "E%d", err);
    return buf;
}

int admin_errno_value(const char *name)
{
    for (size_t i = 0; i < sizeof(errnames) / sizeof(errnames[0]); i++)
        if (strcmp(errnames[i].name, name) == 0)
            return errnames[i].err;
    if (name[0] == 'E' && name[1] >= '1' && name[1] <= '9') {
        char *end;
        long v = strtol(name + 1, &end, 10);
        if (!*end && v > 0 && v < 4096)
            return (int)v;
    }
    return EIO;
}
