/*
 * log.c - the logging sink.
 *
 * Owns: the current level and the destination, one of
 *   stderr    "HH:MM:SS.mmm ident: level: msg" (foreground, -f, on a terminal or file)
 *   journal   "<N>level: msg" on stderr, when stderr is the journal's stream
 *             (systemd sets JOURNAL_STREAM to its device:inode); journald reads
 *             the <N> prefix as the line's priority and stamps time and ident
 *   syslog    openlog(ident, LOG_PID, LOG_DAEMON) + syslog(level): detached
 * Every event is exactly one line: control characters in a message (a
 * newline in an object key, a path, an error text) become '?', so nothing
 * logged can split an event or forge a line.
 * Threads: any thread may log; each line is written with one write(2) (or
 * one syslog call) so lines from different threads never interleave.
 */
#include "common/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum log_dest { LOG_DEST_STDERR, LOG_DEST_JOURNAL, LOG_DEST_SYSLOG };

int log_level = LOG_INFO;
static enum log_dest log_dest = LOG_DEST_STDERR;
static const char *log_ident = "bucketnfs";

static const char *const level_names[] = {
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
};

/* 1 if stderr is the stream systemd named in JOURNAL_STREAM ("DEV:INO"). */
static int stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) != 0)
        return 0;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_init(const char *ident, int to_stderr, int level)
{
    log_ident = ident;
    log_level = level;
    if (to_stderr) {
        log_dest = stderr_is_journal() ? LOG_DEST_JOURNAL : LOG_DEST_STDERR;
    } else {
        log_dest = LOG_DEST_SYSLOG;
        openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
    }
}

int log_level_parse(const char *name)
{
    for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

void log_msg(int level, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    int n = 0;

    if (level < 0)
        level = 0;
    if (level > LOG_DEBUG)
        level = LOG_DEBUG;
    if (log_dest == LOG_DEST_STDERR) {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = snprintf(line, sizeof(line), "%02d:%02d:%02d.%03ld %s: %s: ", tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, log_ident, level_names[level]);
    } else if (log_dest == LOG_DEST_JOURNAL) {
        n = snprintf(line, sizeof(line), "<%d>%s: ", level, level_names[level]);
    }
    if (n < 0)
        return;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    for (size_t i = (size_t)n; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c < 0x20 || c == 0x7f)
            line[i] = c == '\t' ? ' ' : '?';
    }
    if (log_dest == LOG_DEST_SYSLOG) {
        line[len] = '\0';
        syslog(level, "%s", line);
        return;
    }
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

static pthread_mutex_t rate_lock = PTHREAD_MUTEX_INITIALIZER;

bool log_rate_ok(struct log_rate *r, unsigned *suppressed)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    pthread_mutex_lock(&rate_lock);
    if (r->second != (long)ts.tv_sec) {
        r->second = (long)ts.tv_sec;
        r->n = 0;
    }
    bool ok = r->n < LOG_RATE_BURST;
    if (ok) {
        r->n++;
        *suppressed = r->suppressed;
        r->suppressed = 0;
    } else {
        r->suppressed++;
    }
    pthread_mutex_unlock(&rate_lock);
    return ok;
}
