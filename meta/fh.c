/*
 * fh.c - NFS file handles: (export id, inode, generation) sealed with a MAC.
 *
 * Wire layout (FH_SIZE = 33 bytes, all integers big-endian):
 *
 *   0      version (FH_VERSION)
 *   1..4   export id
 *   5..12  inode number
 *   13..16 generation
 *   17..32 HMAC-SHA256(secret, bytes 0..16), first 16 bytes
 *
 * The 32-byte secret lives in state_dir/fh.secret.  It is created once with
 * O_EXCL and mode 0600 from getrandom(2) and read back on every later start;
 * a secret file of the wrong size is an error (replacing it would silently
 * invalidate every handle clients hold).  The secret is never logged.
 *
 * READDIRPLUS encodes one handle per entry, so the keyed HMAC state is
 * computed once in fh_key_open: the SHA-256 states after absorbing the
 * inner and outer padded keys.  Each MAC then copies the two states (plain
 * struct copies, no allocation) and hashes 17 + 32 bytes.  The low-level
 * SHA256_* calls are deprecated in OpenSSL 3 only in favour of EVP, whose
 * context copies allocate; they remain supported, hence OPENSSL_API_COMPAT.
 *
 * Threads: an fh_key is immutable after fh_key_open, so fh_encode and
 * fh_decode may run concurrently on the same key.
 */
#define OPENSSL_API_COMPAT 0x10100000L

#include "meta/fh.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "common/log.h"

#define FH_VERSION 1
#define FH_SECRET_LEN 32
#define FH_BODY_LEN 17 /* version + export id + ino + gen: what the MAC covers */
#define FH_MAC_LEN 16
#define FH_SECRET_FILE "fh.secret"

_Static_assert(FH_BODY_LEN + FH_MAC_LEN == FH_SIZE, "handle layout must fill FH_SIZE");

struct fh_key {
    SHA256_CTX inner; /* state after H(secret ^ ipad) block */
    SHA256_CTX outer; /* state after H(secret ^ opad) block */
};

/* Read exactly len bytes; 0, EIO for a short file, or errno. */
static int read_full(int fd, uint8_t *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno;
        if (n == 0)
            return EIO;
        got += (size_t)n;
    }
    return 0;
}

static int write_full(int fd, const uint8_t *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, buf + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno;
        done += (size_t)n;
    }
    return 0;
}

static int random_bytes(uint8_t *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = getrandom(buf + got, len - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno;
        got += (size_t)n;
    }
    return 0;
}

/*
 * Create state_dir/fh.secret with a fresh secret.  EEXIST if another
 * process won the race (the caller then reads the winner's file).  A
 * partially written file is removed so the next start does not trip on it.
 */
static int secret_create(const char *path, uint8_t secret[FH_SECRET_LEN])
{
    int rc = random_bytes(secret, FH_SECRET_LEN);
    if (rc)
        return rc;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno;
    rc = write_full(fd, secret, FH_SECRET_LEN);
    if (rc == 0 && fsync(fd) != 0)
        rc = errno;
    if (close(fd) != 0 && rc == 0)
        rc = errno;
    if (rc)
        unlink(path);
    return rc;
}

/* Load an existing secret: ENOENT if absent, EINVAL if its size is wrong. */
static int secret_load(const char *path, uint8_t secret[FH_SECRET_LEN])
{
    struct stat st;
    int rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    if (fstat(fd, &st) != 0) {
        rc = errno;
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_size != FH_SECRET_LEN) {
        LOG_AT(LOG_ERR, "%s: expected a %d-byte regular file, found %lld bytes; "
                        "refusing to replace it (existing file handles depend on it)",
               path, FH_SECRET_LEN, (long long)st.st_size);
        rc = EINVAL;
        goto out;
    }
    rc = read_full(fd, secret, FH_SECRET_LEN);
out:
    close(fd);
    return rc;
}

struct fh_key *fh_key_open(const char *state_dir)
{
    char path[PATH_MAX];
    uint8_t secret[FH_SECRET_LEN], pad[SHA256_CBLOCK];
    struct fh_key *k = NULL;
    int rc;

    int n = snprintf(path, sizeof(path), "%s/%s", state_dir, FH_SECRET_FILE);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        rc = ENAMETOOLONG;
        goto fail;
    }
    rc = secret_load(path, secret);
    if (rc == ENOENT) {
        rc = secret_create(path, secret);
        if (rc == 0)
            LOG_AT(LOG_NOTICE, "%s: created a new file handle secret", path);
        else if (rc == EEXIST)
            rc = secret_load(path, secret);
    }
    if (rc) {
        LOG_AT(LOG_ERR, "%s: cannot load the file handle secret: %s", path, strerror(rc));
        goto fail;
    }

    k = calloc(1, sizeof(*k));
    if (!k) {
        rc = ENOMEM;
        goto fail;
    }
    /* RFC 2104: the key is shorter than the block, so it is zero-padded. */
    memset(pad, 0x36, sizeof(pad));
    for (size_t i = 0; i < FH_SECRET_LEN; i++)
        pad[i] ^= secret[i];
    SHA256_Init(&k->inner);
    SHA256_Update(&k->inner, pad, sizeof(pad));
    memset(pad, 0x5c, sizeof(pad));
    for (size_t i = 0; i < FH_SECRET_LEN; i++)
        pad[i] ^= secret[i];
    SHA256_Init(&k->outer);
    SHA256_Update(&k->outer, pad, sizeof(pad));
    OPENSSL_cleanse(pad, sizeof(pad));
    OPENSSL_cleanse(secret, sizeof(secret));
    return k;

fail:
    OPENSSL_cleanse(secret, sizeof(secret));
    errno = rc;
    return NULL;
}

void fh_key_free(struct fh_key *k)
{
    if (!k)
        return;
    OPENSSL_cleanse(k, sizeof(*k));
    free(k);
}

static void fh_mac(const struct fh_key *k, const uint8_t body[FH_BODY_LEN],
                   uint8_t mac[FH_MAC_LEN])
{
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256_CTX c = k->inner;
    SHA256_Update(&c, body, FH_BODY_LEN);
    SHA256_Final(digest, &c);
    c = k->outer;
    SHA256_Update(&c, digest, sizeof(digest));
    SHA256_Final(digest, &c);
    memcpy(mac, digest, FH_MAC_LEN);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_be64(const uint8_t *p)
{
    return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

void fh_encode(const struct fh_key *k, const struct fh *fh, uint8_t out[FH_SIZE])
{
    out[0] = FH_VERSION;
    put_be32(out + 1, fh->export_id);
    put_be64(out + 5, fh->ino);
    put_be32(out + 13, fh->gen);
    fh_mac(k, out, out + FH_BODY_LEN);
}

int fh_decode(const struct fh_key *k, const uint8_t *buf, size_t len, struct fh *out)
{
    uint8_t mac[FH_MAC_LEN];

    if (len != FH_SIZE || buf[0] != FH_VERSION)
        return EBADMSG;
    fh_mac(k, buf, mac);
    if (CRYPTO_memcmp(mac, buf + FH_BODY_LEN, FH_MAC_LEN) != 0)
        return EBADMSG;
    out->export_id = get_be32(buf + 1);
    out->ino = get_be64(buf + 5);
    out->gen = get_be32(buf + 13);
    return 0;
}
