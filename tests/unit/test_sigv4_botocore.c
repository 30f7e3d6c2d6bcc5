/*
 * test_sigv4_botocore.c - our S3 request signer against botocore's
 * S3SigV4Auth, byte for byte.
 *
 * Two modes:
 *   test_sigv4_botocore
 *       runs tests/unit/sigv4_botocore.py (with every python3 that has
 *       botocore), which signs a set of S3 requests with awkward keys and
 *       queries in botocore and calls this binary back for ours;
 *   test_sigv4_botocore --sign METHOD HOST PATH PAYLOAD_HASH EPOCH REGION
 *                       ACCESS SECRET TOKEN [q NAME VALUE]... [h NAME VALUE]...
 *       prints the Authorization value s3_sign_request() gives (the function
 *       the backend signs every request with).  PATH, query names and values
 *       are raw; TOKEN "-" means none.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "objstore/s3.h"
#include "tests/unit/testlib.h"

#define MAXKV 16

static int sign_mode(int argc, char **argv)
{
    if (argc < 11)
        return 2;
    struct sigv4_kv q[MAXKV], h[MAXKV];
    size_t nq = 0, nh = 0;
    for (int i = 11; i + 2 < argc; i += 3) {
        struct sigv4_kv kv = {argv[i + 1], argv[i + 2]};
        if (strcmp(argv[i], "q") == 0 && nq < MAXKV)
            q[nq++] = kv;
        else if (strcmp(argv[i], "h") == 0 && nh < MAXKV)
            h[nh++] = kv;
        else
            return 2;
    }
    /* argv: 1 --sign, 2 METHOD, 3 HOST, 4 PATH, 5 PAYLOAD_HASH, 6 EPOCH, 7 REGION,
     * 8 ACCESS, 9 SECRET, 10 TOKEN, then triples. */
    struct s3_signing k = {argv[8], argv[9], strcmp(argv[10], "-") ? argv[10] : NULL, argv[7]};
    char *authz = NULL;
    int rc = s3_sign_request(&k, NULL, argv[2], argv[3], argv[4], q, nq, h, nh, argv[5],
                             (time_t)strtoll(argv[6], NULL, 10), &authz);
    if (rc) {
        fprintf(stderr, "s3_sign_request: %s\n", strerror(rc));
        return 1;
    }
    printf("%s\n", authz);
    free(authz);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--sign") == 0)
        return sign_mode(argc, argv);

    char script[PATH_MAX], cmd[3 * PATH_MAX];
    const char *src = getenv("BNFS_SRCDIR") ? getenv("BNFS_SRCDIR") : ".";
    snprintf(script, sizeof(script), "%s/tests/unit/sigv4_botocore.py", src);
    CHECK(access(script, R_OK) == 0);
    if (access(script, R_OK) != 0)
        return TEST_DONE();
    /* Every interpreter that has botocore: the Debian one and any other first in PATH. */
    const char *pythons[] = {"python3", "/usr/bin/python3"};
    int ran = 0;
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof(cmd), "%s -c 'import botocore' 2>/dev/null", pythons[i]);
        if (system(cmd) != 0)
            continue;
        snprintf(cmd, sizeof(cmd), "%s '%s' '%s'", pythons[i], script, argv[0]);
        int rc = system(cmd);
        CHECK_EQ_INT(rc, 0);
        ran++;
    }
    CHECK(ran > 0); /* python3-botocore is a test dependency */
    return TEST_DONE();
}
