/*
 * log.c - the logging sink.
 *
 * Owns: the current level and the destination (stderr or syslog).
 * Threads: any thread may log; each line is written with one write(2) so
 * lines from different threads never interleave.
 */
#include "common/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int log_level = LOG_INFO;
static int log_to_stderr = 1;
static const char *log_ident = "bucketnfs";

static const char *const level_names[] = {
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
};

void log_init(const char *ident, int to_stderr, int level)
{
    log_ident = ident;
    log_to_stderr = to_stderr;
    log_level = level;
    if (!to_stderr)
        openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
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

    if (level < 0)
        level = 0;
    if (level > LOG_DEBUG)
        level = LOG_DEBUG;
    if (!log_to_stderr) {
        va_start(ap, fmt);
        vsyslog(level, fmt, ap);
        va_end(ap);
        return;
    }

    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%02d:%02d:%02d.%03ld %s: %s: ", tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, log_ident,
                     level_names[level]);
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
