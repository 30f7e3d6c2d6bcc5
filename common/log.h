/*
 * log.h - one printf-checked logging function with syslog levels.
 *
 * The level is tested before any formatting happens (LOG_AT), so a disabled
 * debug line costs one comparison.  Lines go to stderr in the foreground
 * (-f; with "<N>" priority prefixes when stderr is the systemd journal) and
 * to syslog otherwise, one line per event.  Never pass a secret to these
 * functions.
 */
#ifndef BNFS_LOG_H
#define BNFS_LOG_H

#include <stdbool.h>
#include <syslog.h>

extern int log_level; /* highest syslog level that is emitted (LOG_INFO default) */

/*
 * Set up logging.  to_stderr != 0: "time ident: level: msg" lines on stderr, or
 * "<N>level: msg" when stderr is the journal (JOURNAL_STREAM); 0: syslog as
 * ident with LOG_PID, facility LOG_DAEMON.  Call before threads start.
 */
void log_init(const char *ident, int to_stderr, int level);

/* Emit one line at `level` (syslog LOG_ERR..LOG_DEBUG).  Thread-safe. */
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parse "err", "warning", "notice", "info", "debug"; returns -1 if unknown. */
int log_level_parse(const char *name);

/*
 * Rate limit for lines a client can cause at will (refused mounts and
 * calls): at most LOG_RATE_BURST lines per second per limiter.
 */
#define LOG_RATE_BURST 10
struct log_rate {
    long second;          /* the second being counted (CLOCK_MONOTONIC) */
    unsigned n;           /* lines let through in it */
    unsigned suppressed;  /* lines held back since the last one let through */
};
/* True if a line may be logged now; *suppressed receives how many were held back before it. */
bool log_rate_ok(struct log_rate *r, unsigned *suppressed);

#define LOG_AT(level, ...)                                                     \
    do {                                                                       \
        if ((level) <= log_level)                                              \
            log_msg((level), __VA_ARGS__);                                     \
    } while (0)

#endif
