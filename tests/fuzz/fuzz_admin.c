/*
 * fuzz_admin.c - libFuzzer target for the admin socket's decoder
 * (nfsd/admin_proto.c): the bytes any local client can send the daemon.
 *
 * Each input is used two ways:
 *   1. as a byte stream through admin_read_line (over a socketpair, closed
 *      after the input), every line it yields decoded with admin_decode;
 *   2. as one line for admin_decode directly.
 * Every line that decodes is checked (word count and lengths within the
 * limits, no NUL inside a word), encoded again with admin_encode and
 * decoded again: the words must come back the same.  Invariants are
 * checked with abort(), which libFuzzer reports as a crash.
 */
#include "nfsd/admin_proto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct admin_msg m1, m2;
static char enc[ADMIN_LINE_MAX + 1];

static void check_line(const char *line, size_t len)
{
    if (admin_decode(line, len, &m1) != 0)
        return;
    if (m1.n == 0 || m1.n > ADMIN_WORDS_MAX)
        abort();
    const char *words[ADMIN_WORDS_MAX];
    for (size_t i = 0; i < m1.n; i++) {
        if (m1.wlen[i] > ADMIN_WORD_MAX || strlen(m1.w[i]) != m1.wlen[i])
            abort();
        if (m1.w[i] < m1.buf || m1.w[i] + m1.wlen[i] >= m1.buf + sizeof(m1.buf))
            abort();
        words[i] = m1.w[i];
    }
    size_t elen;
    int rc = admin_encode(words, m1.n, enc, sizeof(enc), &elen);
    if (rc == EMSGSIZE)
        return; /* escapes can grow a line past the limit */
    if (rc != 0 || elen == 0 || enc[elen - 1] != '\n' || elen > ADMIN_LINE_MAX)
        abort();
    if (admin_decode(enc, elen - 1, &m2) != 0 || m2.n != m1.n)
        abort();
    for (size_t i = 0; i < m1.n; i++)
        if (m2.wlen[i] != m1.wlen[i] || memcmp(m2.w[i], m1.w[i], m1.wlen[i]) != 0)
            abort();
}

static void check_stream(const uint8_t *data, size_t size)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return;
    /* -max_len is 4096 in run.sh: the socket buffer takes it at once. */
    size_t off = 0;
    while (off < size) {
        ssize_t n = write(sv[1], data + off, size - off);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    close(sv[1]);
    struct admin_reader *r = malloc(sizeof(*r));
    if (r) {
        admin_reader_init(r, sv[0]);
        char *line;
        size_t len;
        size_t total = 0;
        while (admin_read_line(r, 1000, &line, &len) == 0) {
            if (len >= ADMIN_LINE_MAX || line[len] != '\0')
                abort();
            total += len + 1;
            if (total > size)
                abort();
            check_line(line, len);
        }
        free(r);
    }
    close(sv[0]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_stream(data, size);
    check_line((const char *)data, size);
    return 0;
}
