/*
 * testlib.h - the smallest test harness that does the job.
 *
 * CHECK(cond) records one assertion; TEST_DONE() prints
 * "N passed, N failed" and returns the exit status (non-zero on any
 * failure).  A failed CHECK prints file:line and the expression.
 */
#ifndef BNFS_TESTLIB_H
#define BNFS_TESTLIB_H

#include <stdio.h>

static int test_passed, test_failed;

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (cond) {                                                            \
            test_passed++;                                                     \
        } else {                                                               \
            test_failed++;                                                     \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);    \
        }                                                                      \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                     \
    do {                                                                       \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);        \
        if (check_a_ == check_b_) {                                            \
            test_passed++;                                                     \
        } else {                                                               \
            test_failed++;                                                     \
            fprintf(stderr, "FAIL %s:%d: %s == %s (%lld != %lld)\n", __FILE__, \
                    __LINE__, #a, #b, check_a_, check_b_);                     \
        }                                                                      \
    } while (0)

static inline int test_done(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, test_passed, test_failed);
    return test_failed ? 1 : 0;
}

#define TEST_DONE() test_done(__FILE__)

#endif
