/*
 * clock.h - time for timers, and wall-clock stamps across a clock jump.
 *
 * Timers (delays, backoffs, deadlines, periodic wake-ups) run on
 * CLOCK_MONOTONIC, which a change of the wall clock (an operator, NTP
 * stepping it, a VM resumed) does not move: a timer on CLOCK_REALTIME set
 * back an hour would sleep an hour.  Condition variables that are waited
 * on with a deadline are made with clock_cond_init so that the deadline is
 * a CLOCK_MONOTONIC one.
 *
 * What must survive a restart (when a file last changed, when a listing
 * was made) is stamped with CLOCK_REALTIME.  clock_wall_passed judges the
 * age of such a stamp: one from the future by more than CLOCK_JUMP_NS
 * means the wall clock went back since, and its age is unknown; it counts
 * as passed (check again, upload now) rather than as young for as long as
 * the jump.  A jump forward makes stamps old at once: the same outcome.
 *
 * Header only; every function is thread-safe.
 */
#ifndef BNFS_CLOCK_H
#define BNFS_CLOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define CLOCK_JUMP_NS (1000000000LL) /* a stamp this far ahead: the clock went back */

/* CLOCK_MONOTONIC in ns. */
static inline int64_t clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* CLOCK_REALTIME in ns (stamps that outlive the process). */
static inline int64_t clock_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* A condition variable whose timed waits take CLOCK_MONOTONIC deadlines.  0 or an errno. */
static inline int clock_cond_init(pthread_cond_t *c)
{
    pthread_condattr_t a;
    int r = pthread_condattr_init(&a);
    if (r)
        return r;
    r = pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    if (r == 0)
        r = pthread_cond_init(c, &a);
    pthread_condattr_destroy(&a);
    return r;
}

/* The CLOCK_MONOTONIC deadline after_ns from now, for a clock_cond_init variable. */
static inline struct timespec clock_deadline(int64_t after_ns)
{
    int64_t at = clock_mono_ns() + after_ns;
    struct timespec ts = {.tv_sec = at / 1000000000LL, .tv_nsec = at % 1000000000LL};
    return ts;
}

/*
 * Has age_ns passed since the wall-clock stamp at, now being now (both
 * CLOCK_REALTIME ns)?  Also true for a stamp more than CLOCK_JUMP_NS in
 * the future (the clock went back since it was made).
 */
static inline bool clock_wall_passed(int64_t at, int64_t now, int64_t age_ns)
{
    return now - at >= age_ns || at - now > CLOCK_JUMP_NS;
}

#endif
