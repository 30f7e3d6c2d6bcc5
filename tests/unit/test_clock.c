/*
 * test_clock.c - common/clock.h: the age of wall-clock stamps across a
 * clock jump, and timed waits on CLOCK_MONOTONIC deadlines.
 */
#include "common/clock.h"

#include <errno.h>

#include "testlib.h"

#define S 1000000000LL

static void test_wall_passed(void)
{
    int64_t now = clock_wall_ns();
    CHECK(clock_wall_passed(now - 5 * S, now, 2 * S));   /* old enough */
    CHECK(clock_wall_passed(now - 2 * S, now, 2 * S));   /* exactly */
    CHECK(!clock_wall_passed(now - 1 * S, now, 2 * S));  /* young */
    CHECK(!clock_wall_passed(now, now, 2 * S));
    /* A stamp made a moment after `now` was read (another thread): young, not "from the future". */
    CHECK(!clock_wall_passed(now + S / 2, now, 2 * S));
    CHECK(!clock_wall_passed(now + CLOCK_JUMP_NS, now, 2 * S));
    /* The clock went back an hour since the stamp: its age is unknown, it has passed. */
    CHECK(clock_wall_passed(now + 3600 * S, now, 2 * S));
    CHECK(clock_wall_passed(now + 3600 * S, now, 7200 * S));
    /* Forward an hour: old at once. */
    CHECK(clock_wall_passed(now - 3600 * S, now, 2 * S));
    CHECK(!clock_wall_passed(now - 3600 * S, now, 7200 * S));
    /* An age of 0: always passed. */
    CHECK(clock_wall_passed(now, now, 0));
}

static void test_timed_wait(void)
{
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c;
    CHECK_EQ_INT(clock_cond_init(&c), 0);
    pthread_mutex_lock(&mu);
    int64_t t0 = clock_mono_ns();
    struct timespec dl = clock_deadline(50000000LL); /* 50 ms */
    int r;
    do
        r = pthread_cond_timedwait(&c, &mu, &dl);
    while (r == 0); /* spurious wake-ups */
    int64_t took = clock_mono_ns() - t0;
    pthread_mutex_unlock(&mu);
    CHECK_EQ_INT(r, ETIMEDOUT);
    CHECK(took >= 50000000LL);
    CHECK(took < 2 * S);
    /* The deadline is on CLOCK_MONOTONIC: about 50 ms past the monotonic now, not the wall clock. */
    int64_t at = (int64_t)dl.tv_sec * S + dl.tv_nsec;
    CHECK(at > t0 && at - t0 < S);
    pthread_cond_destroy(&c);
}

int main(void)
{
    test_wall_passed();
    test_timed_wait();
    return test_done("tests/unit/test_clock.c");
}
