/*
 * fuzz_sigv4.c - libFuzzer over the SigV4 signer's canonicalisation
 * (objstore/sigv4.c): the path, query parameters and headers it encodes,
 * sorts, trims and joins.  Object keys come from NFS clients (any bytes a
 * file name may hold) and listings, so every byte must be safe.
 *
 * Input: lines ("\n"-separated).  Line 1 is the method, line 2 the path;
 * every later line is "q" + name + "=" + value (a query parameter; no "=":
 * a NULL value) or "h" + name + ":" + value (a header); other lines are
 * skipped.  At most 64 of each.
 *
 * Checked beside "no crash": signing is deterministic and the key cache
 * changes nothing; the canonical request ends with the payload hash and
 * holds the signed-header list; the signed-header list is lowercase; and
 * sigv4_uri_encode of the path gives only unreserved bytes and %XX
 * escapes that decode back to the path.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "objstore/sigv4.h"

#define MAXKV 64

static struct sigv4_keycache *kc;

static void check_uri_encode(const char *s, size_t len, bool keep_slash)
{
    char *e = sigv4_uri_encode(s, len, keep_slash);
    if (!e)
        return;
    size_t j = 0;
    for (const char *p = e; *p; p++) {
        unsigned char c = (unsigned char)*p, back;
        if (c == '%') {
            if (!isxdigit((unsigned char)p[1]) || !isxdigit((unsigned char)p[2]) ||
                islower((unsigned char)p[1]) || islower((unsigned char)p[2]))
                abort();
            char hex[3] = {p[1], p[2], 0};
            back = (unsigned char)strtoul(hex, NULL, 16);
            p += 2;
        } else if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' ||
                   (c == '/' && keep_slash)) {
            back = c;
        } else {
            abort(); /* a byte that had to be escaped */
        }
        if (j >= len || (unsigned char)s[j] != back)
            abort();
        j++;
    }
    if (j != len)
        abort();
    free(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!kc && !(kc = sigv4_keycache_create()))
        abort();
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';

    struct sigv4_kv q[MAXKV], h[MAXKV];
    size_t nq = 0, nh = 0, line = 0;
    const char *method = "GET", *path = "/";
    for (char *save = NULL, *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (line == 0) {
            method = l;
        } else if (line == 1) {
            path = l;
        } else if (l[0] == 'q' && nq < MAXKV) {
            char *eq = strchr(l + 1, '=');
            if (eq)
                *eq++ = '\0';
            q[nq++] = (struct sigv4_kv){.name = l + 1, .value = eq};
        } else if (l[0] == 'h' && nh < MAXKV) {
            char *colon = strchr(l + 1, ':');
            if (colon)
                *colon++ = '\0';
            h[nh++] = (struct sigv4_kv){.name = l + 1, .value = colon ? colon : ""};
        }
        line++;
    }
    check_uri_encode(path, strlen(path), true);
    check_uri_encode(path, strlen(path), false);

    struct sigv4_request r = {.method = method, .path = path, .query = q, .nquery = nq,
                              .headers = h, .nheaders = nh, .payload_hash = SIGV4_EMPTY_SHA256};
    struct sigv4_creds c = {.access_key = "AKIDEXAMPLE",
                            .secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"};
    struct sigv4_result a, b;
    int ra = sigv4_sign(&r, &c, "us-east-1", "s3", 1440938160, NULL, &a);
    int rb = sigv4_sign(&r, &c, "us-east-1", "s3", 1440938160, kc, &b);
    if (ra != rb)
        abort();
    if (ra == 0) {
        if (strcmp(a.authorization, b.authorization) || strcmp(a.creq, b.creq))
            abort();
        size_t cl = strlen(a.creq), hl = strlen(SIGV4_EMPTY_SHA256);
        if (cl < hl || strcmp(a.creq + cl - hl, SIGV4_EMPTY_SHA256) != 0)
            abort();
        if (!strstr(a.creq, a.signed_headers))
            abort();
        for (const char *p = a.signed_headers; *p; p++)
            if (isupper((unsigned char)*p))
                abort();
        sigv4_result_free(&a);
        sigv4_result_free(&b);
    }
    free(buf);
    return 0;
}
