/*
 * test_fh.c - file handles: round trip, tamper detection, secret handling.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/log.h"
#include "meta/fh.h"
#include "tests/unit/testlib.h"

static char dir_a[64], dir_b[64];

static void make_dirs(void)
{
    strcpy(dir_a, "/tmp/test_fh_a.XXXXXX");
    strcpy(dir_b, "/tmp/test_fh_b.XXXXXX");
    if (!mkdtemp(dir_a) || !mkdtemp(dir_b)) {
        perror("mkdtemp");
        exit(2);
    }
}

static void remove_dir(const char *d)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/fh.secret", d);
    unlink(p);
    rmdir(d);
}

static int read_secret(const char *d, unsigned char *buf, size_t len)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/fh.secret", d);
    FILE *f = fopen(p, "rb");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, len + 1, f);
    fclose(f);
    return (int)n;
}

static void test_round_trip(struct fh_key *k)
{
    struct fh in[] = {
        {1, 16, 0},
        {0xffffffffu, UINT64_MAX, 0xffffffffu},
        {7, 0x0102030405060708ull, 0xdeadbeef},
    };
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        uint8_t buf[FH_SIZE];
        struct fh out = {0};
        fh_encode(k, &in[i], buf);
        CHECK_EQ_INT(fh_decode(k, buf, sizeof(buf), &out), 0);
        CHECK(out.export_id == in[i].export_id);
        CHECK(out.ino == in[i].ino);
        CHECK(out.gen == in[i].gen);
    }
}

/* The MAC must be HMAC-SHA256 truncated, over the first 17 bytes, under the file's secret. */
static void test_mac_is_hmac_sha256(struct fh_key *k, const char *dir)
{
    unsigned char secret[64], md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    CHECK_EQ_INT(read_secret(dir, secret, 32), 32);
    struct fh f = {42, 123456789, 99};
    uint8_t buf[FH_SIZE];
    fh_encode(k, &f, buf);
    HMAC(EVP_sha256(), secret, 32, buf, 17, md, &mdlen);
    CHECK_EQ_INT(mdlen, 32);
    CHECK(memcmp(md, buf + 17, 16) == 0);
    CHECK_EQ_INT(buf[0], 1);
    CHECK_EQ_INT(buf[4], 42); /* export id, big-endian */
}

static void test_tamper(struct fh_key *k)
{
    struct fh f = {3, 1000, 0x12345678};
    uint8_t good[FH_SIZE], bad[FH_SIZE];
    struct fh out;
    fh_encode(k, &f, good);

    int accepted = 0;
    for (size_t bit = 0; bit < FH_SIZE * 8; bit++) {
        memcpy(bad, good, sizeof(bad));
        bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        if (fh_decode(k, bad, sizeof(bad), &out) != EBADMSG)
            accepted++;
    }
    CHECK_EQ_INT(accepted, 0);

    uint8_t longer[FH_SIZE + 1];
    memcpy(longer, good, FH_SIZE);
    longer[FH_SIZE] = 0;
    CHECK_EQ_INT(fh_decode(k, longer, sizeof(longer), &out), EBADMSG);
    CHECK_EQ_INT(fh_decode(k, good, FH_SIZE - 1, &out), EBADMSG);
    CHECK_EQ_INT(fh_decode(k, good, 0, &out), EBADMSG);

    /* A forged handle for another inode with the MAC copied from a real one. */
    struct fh other = {3, 1001, 0x12345678};
    uint8_t forged[FH_SIZE];
    fh_encode(k, &other, forged);
    memcpy(forged + 17, good + 17, 16);
    CHECK_EQ_INT(fh_decode(k, forged, sizeof(forged), &out), EBADMSG);
}

static void test_secret_files(void)
{
    struct fh f = {9, 777, 31337};
    uint8_t h[FH_SIZE];
    struct fh out;
    unsigned char s1[64], s2[64];

    struct fh_key *a = fh_key_open(dir_a);
    CHECK(a != NULL);
    if (!a)
        return;
    fh_encode(a, &f, h);
    CHECK_EQ_INT(read_secret(dir_a, s1, 32), 32);

    char p[128];
    struct stat st;
    snprintf(p, sizeof(p), "%s/fh.secret", dir_a);
    CHECK(stat(p, &st) == 0 && (st.st_mode & 0777) == 0600);

    /* Restart: same secret, the old handle still decodes. */
    fh_key_free(a);
    a = fh_key_open(dir_a);
    CHECK(a != NULL);
    CHECK_EQ_INT(read_secret(dir_a, s2, 32), 32);
    CHECK(memcmp(s1, s2, 32) == 0);
    if (a) {
        CHECK_EQ_INT(fh_decode(a, h, sizeof(h), &out), 0);
        CHECK(out.ino == 777 && out.gen == 31337 && out.export_id == 9);
    }

    test_round_trip(a);
    test_mac_is_hmac_sha256(a, dir_a);
    test_tamper(a);

    /* Another server (another secret) rejects our handles. */
    struct fh_key *b = fh_key_open(dir_b);
    CHECK(b != NULL);
    if (b) {
        CHECK_EQ_INT(fh_decode(b, h, sizeof(h), &out), EBADMSG);
        fh_key_free(b);
    }

    /* A truncated secret file is an error and is left alone. */
    snprintf(p, sizeof(p), "%s/fh.secret", dir_b);
    CHECK(truncate(p, 10) == 0);
    errno = 0;
    b = fh_key_open(dir_b);
    CHECK(b == NULL);
    CHECK(errno != 0);
    CHECK(stat(p, &st) == 0 && st.st_size == 10);
    fh_key_free(b);

    /* A state directory that does not exist is an error too. */
    b = fh_key_open("/nonexistent-bucketnfs-state");
    CHECK(b == NULL);
    fh_key_free(b);

    /* Cost of one handle (READDIRPLUS makes one per entry). */
    enum { N = 200000 };
    struct timespec t0, t1;
    uint8_t sink = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (unsigned i = 0; i < N; i++) {
        f.ino = i;
        fh_encode(a, &f, h);
        sink ^= h[20];
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / N;
    printf("fh_encode: %.0f ns per handle (%u handles, sink %u)\n", ns, (unsigned)N, sink);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int bad = 0;
    for (unsigned i = 0; i < N; i++)
        bad += fh_decode(a, h, sizeof(h), &out) != 0;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / N;
    printf("fh_decode: %.0f ns per handle\n", ns);
    CHECK_EQ_INT(bad, 0);
    fh_key_free(a);
}

int main(void)
{
    log_init("test_fh", 1, LOG_WARNING);
    make_dirs();
    test_secret_files();
    remove_dir(dir_a);
    remove_dir(dir_b);
    return TEST_DONE();
}
