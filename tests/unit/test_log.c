/*
 * test_log.c - what a reader of the logs sees: one line per event whatever
 * the message holds, the stderr format, the journal's priority prefix when
 * stderr is the stream systemd names in JOURNAL_STREAM, and the level
 * filter.  (The syslog destination is checked by tests/integration/
 * install.sh against the installed daemon.)
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "tests/unit/testlib.h"

static char tmpl[] = "/tmp/test_log.XXXXXX";
static int saved_stderr = -1;

/* Point stderr at a fresh empty file; returns its fd. */
static int capture(void)
{
    int fd = mkstemp(tmpl);
    if (fd < 0)
        return -1;
    unlink(tmpl);
    strcpy(tmpl + strlen(tmpl) - 6, "XXXXXX");
    dup2(fd, STDERR_FILENO);
    return fd;
}

/* What was written to the captured stderr; restores the real one. */
static void captured(int fd, char *buf, size_t len)
{
    ssize_t n = pread(fd, buf, len - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    dup2(saved_stderr, STDERR_FILENO);
    close(fd);
}

static size_t count_char(const char *s, char c)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == c;
    return n;
}

int main(void)
{
    char out[4096];
    saved_stderr = dup(STDERR_FILENO);
    unsetenv("JOURNAL_STREAM");

    /* stderr: "HH:MM:SS.mmm ident: level: msg", control characters made harmless. */
    int fd = capture();
    CHECK(fd >= 0);
    log_init("test_log", 1, LOG_INFO);
    LOG_AT(LOG_WARNING, "key %s gone",
           "a\nb\rc\x01"
           "d\te");
    captured(fd, out, sizeof(out));
    CHECK_EQ_INT(count_char(out, '\n'), 1);
    CHECK(strstr(out, " test_log: warning: key a?b?c?d e gone\n") != NULL);
    CHECK(out[2] == ':' && out[5] == ':' && out[8] == '.');

    /* Below the level: nothing at all. */
    fd = capture();
    LOG_AT(LOG_DEBUG, "not shown");
    captured(fd, out, sizeof(out));
    CHECK_EQ_INT(strlen(out), 0);

    /* stderr is the journal: "<N>level: msg", no time or ident (journald adds them). */
    fd = capture();
    struct stat st;
    CHECK(fstat(fd, &st) == 0);
    char js[64];
    snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", js, 1);
    log_init("test_log", 1, LOG_DEBUG);
    LOG_AT(LOG_ERR, "store %s: %s", "s3", "two\nlines");
    LOG_AT(LOG_NOTICE, "serving");
    LOG_AT(LOG_DEBUG, "detail");
    captured(fd, out, sizeof(out));
    CHECK(strcmp(out, "<3>err: store s3: two?lines\n<5>notice: serving\n<7>debug: detail\n") == 0);

    /* JOURNAL_STREAM naming another stream (stderr redirected by hand): plain lines. */
    fd = capture();
    setenv("JOURNAL_STREAM", "1:2", 1);
    log_init("test_log", 1, LOG_INFO);
    LOG_AT(LOG_INFO, "plain");
    captured(fd, out, sizeof(out));
    CHECK(out[0] != '<' && strstr(out, " test_log: info: plain\n") != NULL);
    unsetenv("JOURNAL_STREAM");

    /* A line longer than the buffer is cut, still one line. */
    static char big[5000];
    memset(big, 'x', sizeof(big) - 1);
    fd = capture();
    log_init("test_log", 1, LOG_INFO);
    LOG_AT(LOG_INFO, "%s", big);
    captured(fd, out, sizeof(out));
    CHECK_EQ_INT(count_char(out, '\n'), 1);
    CHECK(out[strlen(out) - 1] == '\n');

    return TEST_DONE();
}
