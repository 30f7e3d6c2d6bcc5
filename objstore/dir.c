/*
 * dir.c - the "dir" object store: a local directory whose subdirectories
 * are buckets.  The embedded default, and the store the tests run against.
 *
 * Layout.  Object "a/b/c" of bucket "demo" is the file ROOT/demo/a/b/c.  A
 * directory marker "d/" is the directory ROOT/demo/d/ (so every directory
 * is a marker; an emptied directory reads as its marker).  A symlink in a
 * bucket is an object whose content is the link target and whose metadata
 * says S_IFLNK|0777; putting an object with that mode creates a symlink.
 * Symlinks are never followed: every path is resolved one component at a
 * time with openat(O_NOFOLLOW), so no key can leave ROOT/bucket.
 *
 * Metadata.  The POSIX attributes live in xattrs holding the exact
 * x-amz-meta-file-* strings ("user.bucketnfs.file-permissions", -owner,
 * -group, -mtime).  put also records "user.bucketnfs.etag" = "MD5 SIZE
 * SEC.NSEC"; the MD5 is the ETag only while size and mtime still match the
 * file (a tool writing the file directly changes them), otherwise, and for
 * files written by other tools, the ETag is derived from (inode, size,
 * mtime).  Directories have the ETag of an empty object.
 *
 * Writes go to ".bucketnfs-tmp.<random>" in the target directory, are
 * fsync'd and renamed over the key: readers see the old or the new object,
 * never a mix.  Those names are reserved (refused as keys, hidden from
 * listings).  Deleting a file never removes its parent directories;
 * deleting a marker removes the directory only if it is empty.
 *
 * Listings.  With delimiter "/" one directory is read with readdir; the
 * continuation token is "D" + the telldir() cookie of the first entry not
 * returned, so a page costs O(page) no matter how large the directory is.
 * (On Linux that cookie is the file system's d_off, valid for a later
 * opendir() of the same folder; ext4, xfs, btrfs and tmpfs keep it stable.)
 * Entries come in the file system's order (hash order on ext4).  An entry
 * present for the whole listing is returned exactly once; one created or
 * removed meanwhile may or may not appear (the readdir(3) guarantee).
 * Without delimiter the tree is walked in S3 key order; the token is "W" +
 * the last key returned and each page re-scans the directories on the path
 * to it, keeping at most max_keys+1 names per directory level in memory.
 * A folder is returned as its marker "d/" (before "d/..." as in S3) when it
 * is empty, or when a marker was put there (it carries the POSIX xattrs):
 * what S3 would list, so a copy or delete of everything under a prefix
 * (a folder renamed) carries the markers along.  Folders made only as the
 * parents of objects are no objects.
 *
 * Multipart uploads live in ROOT/.bucketnfs-uploads/<32 hex>/: an "info"
 * file (bucket and key, the POSIX xattrs to apply) and "part.NNNNN" files.
 * Part sizes are not checked against S3's 5 MiB minimum.  mp_copy_part
 * copies a range of an object of the bucket into a part file (UploadPartCopy).
 *
 * Bodies.  put_file and mp_put_part_file copy a range of the caller's file
 * with pread through one COPY_BUF buffer, hashing it on the way for the
 * ETag: memory does not grow with the object.
 *
 * Knobs from the store's configuration: latency_ms is slept before head,
 * get, list, put, copy (matched on the source key) and delete of keys
 * containing latency_match (all keys if unset);
 * fail_rate is the share of calls that fail with EIO (PRNG: an atomic
 * counter through splitmix64, so threads never share mutable state but that
 * counter); list_posix = false lists like S3, without the POSIX metadata
 * (HEAD still has it), so the store costs what a bucket would in HEADs.
 *
 * Threads: no locks.  The store holds only the root descriptor and the
 * configuration, both read-only after creation; stats are relaxed atomics.
 */
#include "objstore/objstore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "common/conf.h"
#include "common/fsutil.h"
#include "common/log.h"

#define XA_PERM "user.bucketnfs.file-permissions"
#define XA_OWNER "user.bucketnfs.file-owner"
#define XA_GROUP "user.bucketnfs.file-group"
#define XA_MTIME "user.bucketnfs.file-mtime"
#define XA_ETAG "user.bucketnfs.etag"

#define TMP_PREFIX ".bucketnfs-tmp."
#define UPLOADS_DIR ".bucketnfs-uploads"
#define UPLOAD_ID_LEN 32
#define MAX_PARTS 10000
#define LIST_MAX 1000 /* S3's cap on max-keys */
#define COPY_BUF (256u << 10)

static const char empty_md5[] = "d41d8cd98f00b204e9800998ecf8427e";

struct dirstore {
    int rootfd;
    unsigned latency_ms;
    bool list_bare;
    char *latency_match;
    double fail_rate;
    uint64_t rng; /* splitmix64 state, advanced atomically */
};

/* A validated key, split into its folder ("a/b/", maybe "") and last name. */
struct keypath {
    char dir[OBJ_KEY_MAX + 1];
    char name[NAME_MAX + 1];
    bool marker; /* the key ended with '/' */
};

#define STAT_ADD(s, field, n) __atomic_fetch_add(&(s)->stats.field, (n), __ATOMIC_RELAXED)

static struct dirstore *D(struct objstore *s)
{
    return s->priv;
}

/* ---- knobs, logging ------------------------------------------------------ */

static void inject_latency(struct dirstore *d, const char *key)
{
    if (!d->latency_ms || (d->latency_match && !strstr(key, d->latency_match)))
        return;
    struct timespec ts = {d->latency_ms / 1000, (long)(d->latency_ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static bool inject_failure(struct dirstore *d)
{
    if (d->fail_rate <= 0.0)
        return false;
    uint64_t z = __atomic_add_fetch(&d->rng, 0x9e3779b97f4a7c15ull, __ATOMIC_RELAXED);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1.0p-53 < d->fail_rate;
}

/* What enter() returns for an injected failure; done() turns it into EIO. */
#define INJECTED (-1)

/* Count and log the end of one call; returns rc (INJECTED becomes EIO). */
static int done(struct objstore *s, const char *method, const char *bucket, const char *key,
                int rc)
{
    /* An If-Match refused, or an absent object read, is an answer, as S3 gives it. */
    bool answer = rc == 0 || rc == ESTALE ||
                  (rc == ENOENT && (strcmp(method, "head") == 0 || strcmp(method, "get") == 0));
    if (answer)
        obj_health_ok(s);
    if (rc == 0)
        return 0;
    STAT_ADD(s, errors, 1);
    const char *why = rc == INJECTED ? " (injected: fail_rate)" : "";
    if (rc == INJECTED)
        rc = EIO;
    if (!answer) {
        /* The reason first: a long key is what the record's length limit cuts. */
        char msg[2 * OBJ_KEY_MAX];
        snprintf(msg, sizeof(msg), "%s%s: %s/%s", strerror(rc), why, bucket ? bucket : "-",
                 key ? key : "");
        obj_health_error(s, method, 0, rc, msg);
    }
    int level = (rc == ENOENT && strcmp(method, "head") == 0) ? LOG_DEBUG : LOG_WARNING;
    LOG_AT(level, "dir store %s: %s %s/%s failed: %s (errno %d)%s", s->name, method,
           bucket ? bucket : "-", key ? key : "", strerror(rc), rc, why);
    return rc;
}

/* Common entry of every call: latency (if `delay`), then injected failure. */
static int enter(struct objstore *s, const char *key, bool delay)
{
    if (delay)
        inject_latency(D(s), key ? key : "");
    return inject_failure(D(s)) ? INJECTED : 0;
}

/* ---- names ---------------------------------------------------------------- */

static int check_bucket(const char *b)
{
    size_t n = b ? strlen(b) : 0;
    if (n == 0 || n > NAME_MAX || b[0] == '.' || strchr(b, '/'))
        return EINVAL;
    return 0;
}

/* One path component: not empty, ".", "..", or a reserved temp name. */
static int check_component(const char *c, size_t n)
{
    if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
        return EINVAL;
    if (n >= sizeof(TMP_PREFIX) - 1 && memcmp(c, TMP_PREFIX, sizeof(TMP_PREFIX) - 1) == 0)
        return EINVAL;
    if (n > NAME_MAX)
        return ENAMETOOLONG;
    return 0;
}

/* Check that `path` is a sequence of valid "comp/" parts (or empty). */
static int check_dirpath(const char *path, size_t len)
{
    size_t i = 0;
    while (i < len) {
        const char *e = memchr(path + i, '/', len - i);
        if (!e)
            return EINVAL;
        int rc = check_component(path + i, (size_t)(e - (path + i)));
        if (rc)
            return rc;
        i = (size_t)(e - path) + 1;
    }
    return 0;
}

static int key_split(const char *key, struct keypath *kp)
{
    size_t n = key ? strlen(key) : 0;
    if (n == 0 || n > OBJ_KEY_MAX || key[0] == '/')
        return EINVAL; /* a component over NAME_MAX is ENAMETOOLONG: valid in S3, not here */
    kp->marker = key[n - 1] == '/';
    size_t end = kp->marker ? n - 1 : n; /* the last name is key[start, end) */
    size_t start = end;
    while (start > 0 && key[start - 1] != '/')
        start--;
    int rc = check_dirpath(key, start);
    if (rc)
        return rc;
    if ((rc = check_component(key + start, end - start)))
        return rc;
    memcpy(kp->dir, key, start);
    kp->dir[start] = '\0';
    memcpy(kp->name, key + start, end - start);
    kp->name[end - start] = '\0';
    return 0;
}

/* ---- walking the tree without following symlinks -------------------------- */

static int open_bucket(struct dirstore *d, const char *bucket, int *out)
{
    int rc = check_bucket(bucket);
    if (rc)
        return rc;
    int fd = openat(d->rootfd, bucket, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return (errno == ENOTDIR || errno == ELOOP) ? ENOENT : errno;
    *out = fd;
    return 0;
}

/*
 * Open the folder `path` ("a/b/" or "") under dirfd, creating missing parts
 * if `create`.  A file or symlink where a folder should be gives ENOENT
 * (EEXIST when creating).  *out is a new descriptor.
 */
static int open_dirpath(int dirfd, const char *path, bool create, int *out)
{
    int cur = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    if (cur < 0)
        return errno;
    char name[NAME_MAX + 1];
    const char *p = path;
    while (*p) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n > NAME_MAX) {
            close(cur);
            return ENAMETOOLONG;
        }
        memcpy(name, p, n);
        name[n] = '\0';
        int fd = openat(cur, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT && create) {
            if (mkdirat(cur, name, 0755) == 0) {
                fsync(cur); /* the new folder's entry must survive a crash after put returns */
            } else if (errno != EEXIST) {
                int rc = errno;
                close(cur);
                return rc;
            }
            fd = openat(cur, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        if (fd < 0) {
            int rc = errno;
            close(cur);
            if (rc == ENOTDIR || rc == ELOOP)
                return create ? EEXIST : ENOENT;
            return rc;
        }
        close(cur);
        cur = fd;
        p += n;
        if (*p == '/')
            p++;
    }
    *out = cur;
    return 0;
}

/* ---- metadata ----------------------------------------------------------- */

static bool get_xattr(int fd, const char *name, char *buf, size_t len)
{
    ssize_t n = fgetxattr(fd, name, buf, len - 1);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    return true;
}

static bool parse_u32(const char *s, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v > UINT32_MAX || s[0] == '-')
        return false;
    *out = (uint32_t)v;
    return true;
}

static void derived_etag(const struct stat *st, char *etag)
{
    snprintf(etag, OBJ_ETAG_MAX, "%" PRIx64 "-%" PRIx64 "-%" PRIx64 "%08" PRIx32,
             (uint64_t)st->st_ino, (uint64_t)st->st_size, (uint64_t)st->st_mtim.tv_sec,
             (uint32_t)st->st_mtim.tv_nsec);
}

/* Metadata of a regular file or directory open on fd (st = its fstat). */
static void read_meta(int fd, const struct stat *st, struct obj_meta *m)
{
    char v[128];
    memset(m, 0, sizeof(*m));
    m->size = S_ISDIR(st->st_mode) ? 0 : (uint64_t)st->st_size;
    m->mtime_sec = st->st_mtim.tv_sec;
    m->mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;

    if (get_xattr(fd, XA_PERM, v, sizeof(v)) && obj_meta_parse_mode(v, &m->mode) == 0) {
        m->has_posix = true;
        if (!get_xattr(fd, XA_OWNER, v, sizeof(v)) || !parse_u32(v, &m->uid))
            m->uid = 0;
        if (!get_xattr(fd, XA_GROUP, v, sizeof(v)) || !parse_u32(v, &m->gid))
            m->gid = 0;
        int64_t sec;
        uint32_t nsec;
        if (get_xattr(fd, XA_MTIME, v, sizeof(v)) && obj_meta_parse_mtime(v, &sec, &nsec) == 0) {
            m->mtime_sec = sec;
            m->mtime_nsec = nsec;
        }
    }

    if (S_ISDIR(st->st_mode)) {
        strcpy(m->etag, empty_md5);
        return;
    }
    char tag[OBJ_ETAG_MAX];
    unsigned long long size, sec;
    unsigned nsec;
    if (get_xattr(fd, XA_ETAG, v, sizeof(v)) &&
        sscanf(v, "%79s %llu %llu.%u", tag, &size, &sec, &nsec) == 4 &&
        size == (unsigned long long)st->st_size &&
        sec == (unsigned long long)st->st_mtim.tv_sec && nsec == (unsigned)st->st_mtim.tv_nsec) {
        strcpy(m->etag, tag);
        return;
    }
    derived_etag(st, m->etag);
}

static void symlink_meta(const struct stat *st, struct obj_meta *m)
{
    memset(m, 0, sizeof(*m));
    m->size = (uint64_t)st->st_size;
    m->mtime_sec = st->st_mtim.tv_sec;
    m->mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
    m->has_posix = true;
    m->mode = S_IFLNK | 0777;
    m->uid = st->st_uid;
    m->gid = st->st_gid;
    derived_etag(st, m->etag);
}

/* Set the x-amz-meta-file-* xattrs of meta on fd (and the file's mtime). */
static int write_posix(int fd, const struct obj_meta *meta)
{
    char mode[32], owner[16], group[16], mtime[40];
    int rc;
    if ((rc = obj_meta_format_mode(meta->mode, mode, sizeof(mode))) ||
        (rc = obj_meta_format_mtime(meta->mtime_sec, meta->mtime_nsec, mtime, sizeof(mtime))))
        return rc == ENOSPC ? EINVAL : rc;
    snprintf(owner, sizeof(owner), "%" PRIu32, meta->uid);
    snprintf(group, sizeof(group), "%" PRIu32, meta->gid);
    if (fsetxattr(fd, XA_PERM, mode, strlen(mode), 0) != 0 ||
        fsetxattr(fd, XA_OWNER, owner, strlen(owner), 0) != 0 ||
        fsetxattr(fd, XA_GROUP, group, strlen(group), 0) != 0 ||
        fsetxattr(fd, XA_MTIME, mtime, strlen(mtime), 0) != 0)
        return errno;
    struct timespec ts[2] = {{0, UTIME_OMIT}, {meta->mtime_sec, (long)meta->mtime_nsec}};
    return futimens(fd, ts) == 0 ? 0 : errno;
}

/* Stat `name` in dirfd as an object (no marker): ENOENT for folders and specials. */
static int stat_object(int dirfd, const char *name, struct stat *st)
{
    if (fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW) != 0)
        return errno;
    if (!S_ISREG(st->st_mode) && !S_ISLNK(st->st_mode))
        return ENOENT;
    return 0;
}

/* Open a regular file object for reading; *st is its fstat. */
static int open_object(int dirfd, const char *name, int *fd, struct stat *st)
{
    int f = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (f < 0)
        return (errno == ELOOP) ? ENOENT : errno;
    if (fstat(f, st) != 0 || !S_ISREG(st->st_mode)) {
        int rc = S_ISREG(st->st_mode) ? errno : ENOENT;
        close(f);
        return rc;
    }
    *fd = f;
    return 0;
}

/* Metadata of object `name` in dirfd (marker: the folder itself). */
static int meta_at(int dirfd, const char *name, bool marker, struct obj_meta *m)
{
    struct stat st;
    int fd, rc;
    if (marker) {
        fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return (errno == ENOTDIR || errno == ELOOP) ? ENOENT : errno;
        if (fstat(fd, &st) != 0) {
            rc = errno;
            close(fd);
            return rc;
        }
        read_meta(fd, &st, m);
        close(fd);
        return 0;
    }
    if ((rc = stat_object(dirfd, name, &st)))
        return rc;
    if (S_ISLNK(st.st_mode)) {
        symlink_meta(&st, m);
        return 0;
    }
    if ((rc = open_object(dirfd, name, &fd, &st)))
        return rc;
    read_meta(fd, &st, m);
    close(fd);
    return 0;
}

/* ---- MD5 ------------------------------------------------------------------ */

static void hex(const unsigned char *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static EVP_MD_CTX *md5_new(void)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (c && EVP_DigestInit_ex(c, EVP_md5(), NULL) != 1) {
        EVP_MD_CTX_free(c);
        c = NULL;
    }
    return c;
}

/* Finish into 32 hex digits (out: 33 bytes) and free the context. */
static int md5_end(EVP_MD_CTX *c, char *out)
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    int ok = EVP_DigestFinal_ex(c, d, &n) == 1 && n == 16;
    EVP_MD_CTX_free(c);
    if (!ok)
        return EIO;
    hex(d, 16, out);
    return 0;
}

/* ---- temp files and atomic replace ---------------------------------------- */

struct tmpfile {
    int dirfd;           /* borrowed */
    int fd;
    char name[64];
};

static int random_hex(char *out, size_t nbytes)
{
    unsigned char b[32];
    if (nbytes > sizeof(b))
        return EINVAL;
    if (getrandom(b, nbytes, 0) != (ssize_t)nbytes)
        return EIO;
    hex(b, nbytes, out);
    return 0;
}

static int tmp_open(int dirfd, struct tmpfile *t)
{
    char r[33];
    int rc = random_hex(r, 8);
    if (rc)
        return rc;
    snprintf(t->name, sizeof(t->name), TMP_PREFIX "%s", r);
    t->dirfd = dirfd;
    t->fd = openat(dirfd, t->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    return t->fd < 0 ? errno : 0;
}

static void tmp_abort(struct tmpfile *t)
{
    if (t->fd >= 0)
        close(t->fd);
    unlinkat(t->dirfd, t->name, 0);
    t->fd = -1;
}

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/*
 * Apply meta (if has_posix), record etag, fsync, rename over `final`, fsync
 * the folder.  Consumes t in every case.  On a file system without user
 * xattrs the ETag cannot be recorded: etag (OBJ_ETAG_MAX bytes) is then
 * replaced by the derived one that head will report.
 */
static int tmp_commit(struct tmpfile *t, const char *final, const struct obj_meta *meta,
                      char *etag)
{
    struct stat st;
    char v[OBJ_ETAG_MAX + 64];
    int rc = 0;

    if (meta && meta->has_posix && (rc = write_posix(t->fd, meta)))
        goto fail;
    if (fstat(t->fd, &st) != 0) {
        rc = errno;
        goto fail;
    }
    snprintf(v, sizeof(v), "%s %llu %llu.%09ld", etag, (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec);
    if (fsetxattr(t->fd, XA_ETAG, v, strlen(v), 0) != 0) {
        if (errno != ENOTSUP) {
            rc = errno;
            goto fail;
        }
        derived_etag(&st, etag);
    }
    if (fsync(t->fd) != 0) {
        rc = errno;
        goto fail;
    }
    if (renameat(t->dirfd, t->name, t->dirfd, final) != 0) {
        rc = (errno == EISDIR || errno == ENOTEMPTY) ? EEXIST : errno;
        goto fail;
    }
    close(t->fd);
    t->fd = -1;
    fsync(t->dirfd);
    return 0;
fail:
    tmp_abort(t);
    return rc;
}

#define TO_END UINT64_MAX /* copy_range: up to the source's end, however far that is */

/*
 * Copy bytes [off, off + len) of src (pread: its file offset stays) into dst
 * (at dst's offset), hashing them into ctx if not NULL.  A len other than
 * TO_END must be there in full: EIO if src ends first.  The bytes pass
 * through one COPY_BUF buffer (copy_file_range would skip that, but the
 * ETag is the MD5 of the bytes, so they are read anyway).
 */
static int copy_range(int src, uint64_t off, uint64_t len, int dst, EVP_MD_CTX *ctx)
{
    bool to_end = len == TO_END;
    char *buf = malloc(COPY_BUF);
    int rc = 0;
    if (!buf)
        return ENOMEM;
    while (to_end || len > 0) {
        size_t want = !to_end && len < COPY_BUF ? (size_t)len : COPY_BUF;
        ssize_t n = pread(src, buf, want, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = errno;
            break;
        }
        if (n == 0) {
            rc = to_end ? 0 : EIO;
            break;
        }
        if (ctx && EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) {
            rc = EIO;
            break;
        }
        if ((rc = write_all(dst, buf, (size_t)n)))
            break;
        off += (uint64_t)n;
        if (!to_end)
            len -= (uint64_t)n;
    }
    free(buf);
    return rc;
}

/* Where the bytes of a put or a part come from: buf[0..len), or, if buf
 * is NULL, bytes [off, off + len) of fd. */
struct body {
    const void *buf;
    int fd;
    uint64_t off, len;
};

/* Check a file body's range (off_t arithmetic must not overflow).  0 or EINVAL. */
static int body_check(const struct body *b)
{
    if (b->buf)
        return 0;
    return b->fd < 0 || b->off > (uint64_t)INT64_MAX || b->len > (uint64_t)INT64_MAX - b->off
               ? EINVAL
               : 0;
}

/* Write body b to dst, hashing it into ctx. */
static int write_body(const struct body *b, int dst, EVP_MD_CTX *ctx)
{
    if (!b->buf)
        return copy_range(b->fd, b->off, b->len, dst, ctx);
    if (EVP_DigestUpdate(ctx, b->buf, (size_t)b->len) != 1)
        return EIO;
    return write_all(dst, b->buf, (size_t)b->len);
}

/* Body b, with meta, becomes `final` in dirfd (temp file, rename); etag_out gets its MD5. */
static int body_commit(int dirfd, const struct body *b, const char *final,
                       const struct obj_meta *meta, char *etag_out)
{
    struct tmpfile t;
    char etag[OBJ_ETAG_MAX];
    EVP_MD_CTX *ctx = md5_new();
    int rc;
    if (!ctx)
        return ENOMEM;
    if ((rc = tmp_open(dirfd, &t))) {
        EVP_MD_CTX_free(ctx);
        return rc;
    }
    if ((rc = write_body(b, t.fd, ctx))) {
        EVP_MD_CTX_free(ctx);
        tmp_abort(&t);
        return rc;
    }
    if ((rc = md5_end(ctx, etag))) {
        tmp_abort(&t);
        return rc;
    }
    if ((rc = tmp_commit(&t, final, meta, etag)))
        return rc;
    if (etag_out)
        strcpy(etag_out, etag);
    return 0;
}

/* Create folder `name` in dirfd (a marker), or accept it if there. */
static int make_marker(int dirfd, const char *name, const struct obj_meta *meta)
{
    if (mkdirat(dirfd, name, 0755) != 0 && errno != EEXIST)
        return errno;
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return (errno == ENOTDIR || errno == ELOOP) ? EEXIST : errno;
    int rc = 0;
    if (meta && meta->has_posix)
        rc = write_posix(fd, meta);
    if (!rc && fsync(fd) != 0)
        rc = errno;
    close(fd);
    if (!rc)
        fsync(dirfd);
    return rc;
}

/*
 * Replace `name` in dirfd by a symlink to target[0..len).  A symlink holds
 * no xattrs: meta's mtime and owner (if meta has POSIX attributes) become
 * the symlink's own, which symlink_meta reads back.  The owner only where
 * the daemon may chown (root); elsewhere the symlink stays the daemon's.
 */
static int make_symlink(int dirfd, const char *name, const char *target, size_t len,
                        const struct obj_meta *meta)
{
    char t[PATH_MAX];
    char r[17];
    char tmp[64];
    if (len == 0 || len >= sizeof(t) || memchr(target, '\0', len))
        return EINVAL;
    memcpy(t, target, len);
    t[len] = '\0';
    int rc = random_hex(r, 8);
    if (rc)
        return rc;
    snprintf(tmp, sizeof(tmp), TMP_PREFIX "%s", r);
    if (symlinkat(t, dirfd, tmp) != 0)
        return errno;
    if (meta && meta->has_posix) {
        struct timespec ts[2] = {{0, UTIME_OMIT}, {meta->mtime_sec, (long)meta->mtime_nsec}};
        if (fchownat(dirfd, tmp, meta->uid, meta->gid, AT_SYMLINK_NOFOLLOW) != 0 &&
            errno != EPERM) {
            rc = errno;
            unlinkat(dirfd, tmp, 0);
            return rc;
        }
        if (utimensat(dirfd, tmp, ts, AT_SYMLINK_NOFOLLOW) != 0) {
            rc = errno;
            unlinkat(dirfd, tmp, 0);
            return rc;
        }
    }
    if (renameat(dirfd, tmp, dirfd, name) != 0) {
        rc = (errno == EISDIR || errno == ENOTEMPTY) ? EEXIST : errno;
        unlinkat(dirfd, tmp, 0);
        return rc;
    }
    fsync(dirfd);
    return 0;
}

/* ---- head / get / put ------------------------------------------------------ */

static int dir_head(struct objstore *s, const char *bucket, const char *key, struct obj_meta *out)
{
    struct keypath kp;
    int bfd = -1, dfd = -1, rc;

    STAT_ADD(s, heads, 1);
    if ((rc = enter(s, key, true)) || (rc = key_split(key, &kp)))
        return done(s, "head", bucket, key, rc);
    if ((rc = open_bucket(D(s), bucket, &bfd)))
        return done(s, "head", bucket, key, rc);
    if (!(rc = open_dirpath(bfd, kp.dir, false, &dfd))) {
        rc = meta_at(dfd, kp.name, kp.marker, out);
        close(dfd);
    }
    close(bfd);
    return done(s, "head", bucket, key, rc);
}

static int get_at(int dfd, const struct keypath *kp, uint64_t off, size_t len, void *buf,
                  size_t *got, struct obj_meta *meta, const char *if_match)
{
    struct obj_meta m;
    struct stat st;
    int fd, rc;

    *got = 0;
    if (kp->marker) {
        return meta_at(dfd, kp->name, true, meta ? meta : &m);
    }
    if ((rc = stat_object(dfd, kp->name, &st)))
        return rc;
    if (S_ISLNK(st.st_mode)) {
        char t[PATH_MAX];
        ssize_t n = readlinkat(dfd, kp->name, t, sizeof(t));
        if (n < 0)
            return errno;
        st.st_size = n;
        symlink_meta(&st, &m);
        if (if_match && strcmp(if_match, m.etag) != 0)
            return ESTALE;
        if (meta)
            *meta = m;
        if (off < (uint64_t)n) {
            size_t c = (size_t)n - (size_t)off;
            if (c > len)
                c = len;
            memcpy(buf, t + off, c);
            *got = c;
        }
        return 0;
    }
    if ((rc = open_object(dfd, kp->name, &fd, &st)))
        return rc;
    /*
     * Objects are replaced by rename, so the open file is one version for
     * as long as it stays open: checking its ETag once makes the whole read
     * of that version (S3's If-Match).
     */
    read_meta(fd, &st, &m);
    if (if_match && strcmp(if_match, m.etag) != 0) {
        close(fd);
        return ESTALE;
    }
    if (meta)
        *meta = m;
    rc = fs_pread_full(fd, buf, len, off, got);
    close(fd);
    return rc;
}

static int dir_get(struct objstore *s, const char *bucket, const char *key, uint64_t off,
                   size_t len, void *buf, size_t *got, struct obj_meta *meta,
                   const char *if_match)
{
    struct keypath kp;
    int bfd = -1, dfd = -1, rc;

    *got = 0;
    STAT_ADD(s, gets, 1);
    if ((rc = enter(s, key, true)) || (rc = key_split(key, &kp)))
        return done(s, "get", bucket, key, rc);
    if ((rc = open_bucket(D(s), bucket, &bfd)))
        return done(s, "get", bucket, key, rc);
    if (!(rc = open_dirpath(bfd, kp.dir, false, &dfd))) {
        rc = get_at(dfd, &kp, off, len, buf, got, meta, if_match);
        close(dfd);
    }
    close(bfd);
    if (!rc)
        STAT_ADD(s, bytes_in, *got);
    return done(s, "get", bucket, key, rc);
}

static int put_at(int dfd, const struct keypath *kp, const struct body *b,
                  const struct obj_meta *meta, char *etag_out)
{
    int rc;

    if (kp->marker) {
        if (b->len != 0)
            return EINVAL; /* a folder cannot hold bytes */
        if ((rc = make_marker(dfd, kp->name, meta)))
            return rc;
        if (etag_out)
            strcpy(etag_out, empty_md5);
        return 0;
    }
    if (meta && meta->has_posix && S_ISLNK(meta->mode)) {
        char target[PATH_MAX];
        const char *t = b->buf;
        size_t got = 0;
        if (!t) {
            /* The link target is the body: short, so it is read whole. */
            if (b->len >= sizeof(target))
                return EINVAL;
            if ((rc = fs_pread_full(b->fd, target, (size_t)b->len, b->off, &got)))
                return rc;
            if (got != b->len)
                return EIO;
            t = target;
        }
        if ((rc = make_symlink(dfd, kp->name, t, (size_t)b->len, meta)))
            return rc;
        if (etag_out) {
            struct obj_meta m;
            rc = meta_at(dfd, kp->name, false, &m);
            strcpy(etag_out, rc ? "" : m.etag);
        }
        return rc;
    }
    return body_commit(dfd, b, kp->name, meta, etag_out);
}

/* put and put_file: body b becomes object key. */
static int put_body(struct objstore *s, const char *bucket, const char *key, const struct body *b,
                    const struct obj_meta *meta, char *etag_out)
{
    struct keypath kp;
    int bfd = -1, dfd = -1, rc;

    STAT_ADD(s, puts, 1);
    if ((rc = enter(s, key, true)) || (rc = key_split(key, &kp)) || (rc = body_check(b)))
        return done(s, "put", bucket, key, rc);
    if ((rc = open_bucket(D(s), bucket, &bfd)))
        return done(s, "put", bucket, key, rc);
    if (!(rc = open_dirpath(bfd, kp.dir, true, &dfd))) {
        rc = put_at(dfd, &kp, b, meta, etag_out);
        close(dfd);
    }
    close(bfd);
    if (!rc)
        STAT_ADD(s, bytes_out, b->len);
    return done(s, "put", bucket, key, rc);
}

static int dir_put(struct objstore *s, const char *bucket, const char *key, const void *buf,
                   size_t len, const struct obj_meta *meta, char *etag_out)
{
    struct body b = {.buf = buf ? buf : "", .fd = -1, .len = len};
    return put_body(s, bucket, key, &b, meta, etag_out);
}

static int dir_put_file(struct objstore *s, const char *bucket, const char *key, int fd,
                        uint64_t off, uint64_t len, const struct obj_meta *meta, char *etag_out)
{
    struct body b = {.buf = NULL, .fd = fd, .off = off, .len = len};
    return put_body(s, bucket, key, &b, meta, etag_out);
}

/* ---- list ------------------------------------------------------------------- */

enum ent_kind { ENT_NONE, ENT_FILE, ENT_DIR };

/* What a directory entry is, as far as listings go. */
static enum ent_kind classify(int dirfd, const struct dirent *de)
{
    const char *n = de->d_name;
    if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0 ||
        strncmp(n, TMP_PREFIX, sizeof(TMP_PREFIX) - 1) == 0)
        return ENT_NONE;
    unsigned char t = de->d_type;
    if (t == DT_UNKNOWN) {
        struct stat st;
        if (fstatat(dirfd, n, &st, AT_SYMLINK_NOFOLLOW) != 0)
            return ENT_NONE;
        t = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG
            : S_ISLNK(st.st_mode) ? DT_LNK : DT_UNKNOWN;
    }
    if (t == DT_DIR)
        return ENT_DIR;
    if (t == DT_REG || t == DT_LNK)
        return ENT_FILE;
    return ENT_NONE;
}

/* Emit a file entry `key` (name in dirfd); a file that vanished is skipped. */
static int emit_file(int dirfd, const char *name, const char *key, obj_list_cb cb, void *arg,
                     bool *emitted)
{
    struct obj_entry e = {.key = key, .is_prefix = false};
    *emitted = false;
    int rc = meta_at(dirfd, name, false, &e.meta);
    if (rc == ENOENT)
        return 0;
    if (rc)
        return rc;
    *emitted = true;
    return cb(arg, &e);
}

/* With delimiter "/": one page of the folder `dirpart`, names starting with `filter`. */
static int list_delim(int bfd, const char *dirpart, const char *filter, const char *token,
                      unsigned max, obj_list_cb cb, void *arg, char *token_out)
{
    char key[OBJ_KEY_MAX + 2];
    size_t dlen = strlen(dirpart), flen = strlen(filter);
    int dfd, rc;
    long start = 0;

    if (token && *token) {
        char *end;
        if (token[0] != 'D' || !token[1])
            return EINVAL;
        errno = 0;
        start = (long)strtoul(token + 1, &end, 16);
        if (errno || *end || token[1] == '-')
            return EINVAL;
    }
    if ((rc = open_dirpath(bfd, dirpart, false, &dfd)))
        return rc == ENOENT ? 0 : rc; /* no such folder: an empty listing */
    DIR *dp = fdopendir(dfd);
    if (!dp) {
        rc = errno;
        close(dfd);
        return rc;
    }
    if (start)
        seekdir(dp, start);
    unsigned n = 0;
    for (;;) {
        long pos = telldir(dp);
        errno = 0;
        struct dirent *de = readdir(dp);
        if (!de) {
            rc = errno;
            break;
        }
        size_t nlen = strlen(de->d_name);
        if (nlen < flen || memcmp(de->d_name, filter, flen) != 0)
            continue;
        enum ent_kind k = classify(dirfd(dp), de);
        if (k == ENT_NONE || dlen + nlen + 1 > OBJ_KEY_MAX)
            continue;
        if (n == max) {
            snprintf(token_out, OBJ_TOKEN_MAX, "D%lx", (unsigned long)pos);
            break;
        }
        memcpy(key, dirpart, dlen);
        memcpy(key + dlen, de->d_name, nlen + 1);
        if (k == ENT_DIR) {
            strcat(key, "/");
            struct obj_entry e = {.key = key, .is_prefix = true};
            rc = cb(arg, &e);
            n++;
        } else {
            bool emitted;
            rc = emit_file(dirfd(dp), de->d_name, key, cb, arg, &emitted);
            n += emitted;
        }
        if (rc)
            break;
    }
    closedir(dp);
    return rc;
}

/* The sorted walk (no delimiter). */
struct walk {
    char key[OBJ_KEY_MAX + 2]; /* key of the folder being walked ("a/b/") */
    size_t keylen;
    unsigned left;             /* entries still allowed on this page */
    bool more;                 /* the page is full and something is left */
    char last[OBJ_KEY_MAX + 1]; /* last key emitted */
    obj_list_cb cb;
    void *arg;
};

struct sel {
    char *sk; /* sort key: the name, with '/' appended for folders */
    bool dir;
};

static void sel_swap(struct sel *a, struct sel *b)
{
    struct sel t = *a;
    *a = *b;
    *b = t;
}

/* Max-heap on sk: keeps the n smallest names seen. */
static void heap_push(struct sel *h, size_t *n, size_t cap, struct sel e)
{
    if (*n < cap) {
        size_t i = (*n)++;
        h[i] = e;
        while (i > 0 && strcmp(h[(i - 1) / 2].sk, h[i].sk) < 0) {
            sel_swap(&h[(i - 1) / 2], &h[i]);
            i = (i - 1) / 2;
        }
        return;
    }
    if (strcmp(e.sk, h[0].sk) >= 0) {
        free(e.sk);
        return;
    }
    free(h[0].sk);
    h[0] = e;
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < *n && strcmp(h[l].sk, h[m].sk) > 0)
            m = l;
        if (r < *n && strcmp(h[r].sk, h[m].sk) > 0)
            m = r;
        if (m == i)
            break;
        sel_swap(&h[i], &h[m]);
        i = m;
    }
}

static int sel_cmp(const void *a, const void *b)
{
    return strcmp(((const struct sel *)a)->sk, ((const struct sel *)b)->sk);
}

/*
 * Wanted in the walk?  after: resume point relative to this folder (NULL =
 * none); excl: entries up to this sort key are done (NULL = none).
 */
static bool sel_wanted(const char *sk, bool dir, const char *after, const char *excl)
{
    if (excl && strcmp(sk, excl) <= 0)
        return false;
    if (!after)
        return true;
    if (strcmp(sk, after) > 0)
        return true;
    return dir && strncmp(after, sk, strlen(sk)) == 0; /* resume inside it */
}

/*
 * Read folder fd once; keep in h (cap entries) the smallest wanted entries.
 * *visible counts every entry that is an object or folder.
 */
static int walk_select(int fd, const char *filter, const char *after, const char *excl,
                       struct sel *h, size_t cap, size_t *n, size_t *visible)
{
    int dup = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dup < 0)
        return errno;
    DIR *dp = fdopendir(dup);
    if (!dp) {
        int rc = errno;
        close(dup);
        return rc;
    }
    int rc = 0;
    *n = 0;
    *visible = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(dp);
        if (!de) {
            rc = errno;
            break;
        }
        enum ent_kind k = classify(fd, de);
        if (k == ENT_NONE)
            continue;
        (*visible)++;
        if (filter && strncmp(de->d_name, filter, strlen(filter)) != 0)
            continue;
        char key[NAME_MAX + 2];
        size_t len = strlen(de->d_name);
        memcpy(key, de->d_name, len);
        key[len] = k == ENT_DIR ? '/' : '\0';
        key[len + 1] = '\0';
        if (!sel_wanted(key, k == ENT_DIR, after, excl))
            continue;
        if (*n == cap && strcmp(key, h[0].sk) >= 0)
            continue; /* not among the cap smallest: no allocation */
        char *sk = strdup(key);
        if (!sk) {
            rc = ENOMEM;
            break;
        }
        heap_push(h, n, cap, (struct sel){sk, k == ENT_DIR});
    }
    closedir(dp);
    return rc;
}

static int walk_emit(struct walk *w, int fd, const char *name, bool marker)
{
    bool emitted = true;
    int rc = 0;
    size_t nlen = marker ? 0 : strlen(name);
    if (w->keylen + nlen > OBJ_KEY_MAX)
        return 0; /* not representable as a key */
    if (w->left == 0) {
        w->more = true;
        return 0;
    }
    memcpy(w->key + w->keylen, name, nlen);
    w->key[w->keylen + nlen] = '\0';
    if (marker) {
        struct obj_entry e = {.key = w->key, .is_prefix = false};
        struct stat st;
        if (fstat(fd, &st) != 0)
            rc = errno;
        else {
            read_meta(fd, &st, &e.meta);
            rc = w->cb(w->arg, &e);
        }
    } else {
        rc = emit_file(fd, name, w->key, w->cb, w->arg, &emitted);
    }
    if (emitted && !rc) {
        strcpy(w->last, w->key);
        w->left--;
    }
    w->key[w->keylen] = '\0';
    return rc;
}

/*
 * Walk folder fd (key w->key) in key order.  after: resume point relative
 * to it, or NULL when nothing of it was returned yet; filter: first-level
 * name prefix (top folder only); may_mark: an empty folder is returned as
 * its marker.
 */
static int walk_dir(struct walk *w, int fd, const char *after, const char *filter, bool may_mark)
{
    size_t cap = (size_t)w->left + 1, n = 0, visible = 0;
    struct sel *h = calloc(cap, sizeof(*h));
    char *excl = NULL;
    int rc = 0;
    bool first = true;

    if (!h)
        return ENOMEM;
    for (;;) {
        if ((rc = walk_select(fd, filter, after, excl, h, cap, &n, &visible)))
            break;
        if (first && visible == 0 && may_mark && !after) {
            rc = walk_emit(w, fd, "", true);
            break;
        }
        if (first && may_mark && !after && fgetxattr(fd, XA_PERM, NULL, 0) >= 0) {
            /* a marker put here, over a folder that is not empty: listed first */
            if ((rc = walk_emit(w, fd, "", true)) || w->more)
                break;
        }
        first = false;
        qsort(h, n, sizeof(*h), sel_cmp);
        for (size_t i = 0; i < n && !rc && !w->more; i++) {
            if (!h[i].dir) {
                rc = walk_emit(w, fd, h[i].sk, false);
                continue;
            }
            size_t sl = strlen(h[i].sk);
            if (w->keylen + sl > OBJ_KEY_MAX)
                continue;
            int cfd = openat(fd, h[i].sk, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (cfd < 0)
                continue; /* vanished or replaced meanwhile */
            const char *cafter = NULL;
            if (after && strncmp(after, h[i].sk, sl) == 0)
                cafter = after + sl;
            size_t saved = w->keylen;
            memcpy(w->key + w->keylen, h[i].sk, sl + 1);
            w->keylen += sl;
            rc = walk_dir(w, cfd, cafter, NULL, true);
            w->keylen = saved;
            w->key[saved] = '\0';
            close(cfd);
        }
        if (rc || w->more || n < cap) {
            break;
        }
        /* The selection was full: continue after its last entry. */
        free(excl);
        excl = h[n - 1].sk;
        h[n - 1].sk = NULL;
        for (size_t i = 0; i < n; i++)
            free(h[i].sk);
        n = 0;
    }
    for (size_t i = 0; i < n; i++)
        free(h[i].sk);
    free(h);
    free(excl);
    return rc;
}

static int list_walk(int bfd, const char *dirpart, const char *filter, const char *token,
                     unsigned max, obj_list_cb cb, void *arg, char *token_out)
{
    struct walk *w;
    size_t dlen = strlen(dirpart);
    const char *after = NULL;
    int fd, rc;

    if (token && *token) {
        if (token[0] != 'W' || strlen(token + 1) > OBJ_KEY_MAX ||
            strncmp(token + 1, dirpart, dlen) != 0)
            return EINVAL;
        after = token + 1 + dlen;
    }
    if ((rc = open_dirpath(bfd, dirpart, false, &fd)))
        return rc == ENOENT ? 0 : rc;
    if (!(w = calloc(1, sizeof(*w)))) {
        close(fd);
        return ENOMEM;
    }
    memcpy(w->key, dirpart, dlen + 1);
    w->keylen = dlen;
    w->left = max;
    w->cb = cb;
    w->arg = arg;
    rc = walk_dir(w, fd, after, filter, dlen > 0 && !*filter);
    if (!rc && w->more)
        snprintf(token_out, OBJ_TOKEN_MAX, "W%s", w->last);
    free(w);
    close(fd);
    return rc;
}

/* list_posix = false: the caller's callback, behind one that drops the POSIX metadata. */
struct s3like {
    obj_list_cb cb;
    void *arg;
};

static int s3like_cb(void *arg, const struct obj_entry *e)
{
    struct s3like *x = arg;
    struct obj_entry bare = *e;
    bare.meta.has_posix = false;
    bare.meta.mode = bare.meta.uid = bare.meta.gid = 0;
    return x->cb(x->arg, &bare);
}

static int dir_list(struct objstore *s, const char *bucket, const char *prefix,
                    const char *delimiter, const char *token_in, unsigned max_keys,
                    obj_list_cb cb, void *arg, char *token_out)
{
    struct s3like x = {cb, arg};
    if (D(s)->list_bare) {
        cb = s3like_cb;
        arg = &x;
    }
    const char *pfx = prefix ? prefix : "";
    int bfd = -1, rc;

    token_out[0] = '\0';
    STAT_ADD(s, lists, 1);
    if ((rc = enter(s, pfx, true)))
        return done(s, "list", bucket, pfx, rc);
    if (delimiter && *delimiter && strcmp(delimiter, "/") != 0)
        return done(s, "list", bucket, pfx, ENOTSUP);
    if (max_keys == 0 || max_keys > LIST_MAX)
        max_keys = LIST_MAX;

    /* prefix "a/b/na" = folder "a/b/" + name filter "na" */
    size_t plen = strlen(pfx);
    if (plen > OBJ_KEY_MAX)
        return done(s, "list", bucket, pfx, EINVAL);
    const char *slash = strrchr(pfx, '/');
    size_t dlen = slash ? (size_t)(slash - pfx) + 1 : 0;
    char dirpart[OBJ_KEY_MAX + 1];
    memcpy(dirpart, pfx, dlen);
    dirpart[dlen] = '\0';
    if (pfx[0] == '/' || (rc = check_dirpath(dirpart, dlen)))
        return done(s, "list", bucket, pfx, rc ? rc : EINVAL);
    if ((rc = open_bucket(D(s), bucket, &bfd)))
        return done(s, "list", bucket, pfx, rc);
    if (delimiter && *delimiter)
        rc = list_delim(bfd, dirpart, pfx + dlen, token_in, max_keys, cb, arg, token_out);
    else
        rc = list_walk(bfd, dirpart, pfx + dlen, token_in, max_keys, cb, arg, token_out);
    close(bfd);
    if (rc)
        token_out[0] = '\0';
    return done(s, "list", bucket, pfx, rc);
}

/* ---- copy / delete ------------------------------------------------------- */

static int copy_at(int sfd, const struct keypath *sk, int dfd, const struct keypath *dk,
                   const struct obj_meta *meta)
{
    struct stat st;
    struct obj_meta m;
    int fd, rc;

    if (sk->marker != dk->marker)
        return EINVAL;
    if (sk->marker) {
        if ((rc = meta_at(sfd, sk->name, true, &m)))
            return rc;
        return make_marker(dfd, dk->name, meta ? meta : &m);
    }
    if ((rc = stat_object(sfd, sk->name, &st)))
        return rc;
    if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlinkat(sfd, sk->name, target, sizeof(target));
        if (n < 0)
            return errno;
        symlink_meta(&st, &m); /* a copy keeps the source's times and owner */
        return make_symlink(dfd, dk->name, target, (size_t)n, meta ? meta : &m);
    }
    if ((rc = open_object(sfd, sk->name, &fd, &st)))
        return rc;
    read_meta(fd, &st, &m);
    struct body b = {.buf = NULL, .fd = fd, .off = 0, .len = TO_END};
    rc = body_commit(dfd, &b, dk->name, meta ? meta : &m, NULL);
    close(fd);
    return rc;
}

static int dir_copy(struct objstore *s, const char *bucket, const char *src_key,
                    const char *dst_key, const struct obj_meta *meta)
{
    struct keypath sk, dk;
    int bfd = -1, sfd = -1, dfd = -1, rc;

    STAT_ADD(s, copies, 1);
    if ((rc = enter(s, src_key, true)) || (rc = key_split(src_key, &sk)) ||
        (rc = key_split(dst_key, &dk)))
        return done(s, "copy", bucket, dst_key, rc);
    if ((rc = open_bucket(D(s), bucket, &bfd)))
        return done(s, "copy", bucket, dst_key, rc);
    if (!(rc = open_dirpath(bfd, sk.dir, false, &sfd))) {
        if (!(rc = open_dirpath(bfd, dk.dir, true, &dfd))) {
            rc = copy_at(sfd, &sk, dfd, &dk, meta);
            close(dfd);
        }
        close(sfd);
    }
    close(bfd);
    return done(s, "copy", bucket, dst_key, rc);
}

static int dir_del(struct objstore *s, const char *bucket, const char *key)
{
    struct keypath kp;
    int bfd = -1, dfd = -1, rc;

    STAT_ADD(s, deletes, 1);
    if ((rc = enter(s, key, true)) || (rc = key_split(key, &kp)))
        return done(s, "delete", bucket, key, rc);
    if ((rc = open_bucket(D(s), bucket, &bfd)))
        return done(s, "delete", bucket, key, rc);
    rc = open_dirpath(bfd, kp.dir, false, &dfd);
    if (rc == ENOENT) {
        rc = 0; /* deleting an absent object succeeds (S3) */
    } else if (rc == 0) {
        struct stat st;
        if (kp.marker) {
            /* The folder stays while it holds objects: they still imply the prefix. */
            if (unlinkat(dfd, kp.name, AT_REMOVEDIR) != 0 && errno != ENOENT &&
                errno != ENOTEMPTY && errno != EEXIST && errno != ENOTDIR)
                rc = errno;
        } else if (fstatat(dfd, kp.name, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode)) {
            if (unlinkat(dfd, kp.name, 0) != 0 && errno != ENOENT)
                rc = errno;
        }
        if (!rc)
            fsync(dfd);
        close(dfd);
    }
    close(bfd);
    return done(s, "delete", bucket, key, rc);
}

/* ---- multipart ------------------------------------------------------------ */

static int check_upload_id(const char *id)
{
    if (!id || strlen(id) != UPLOAD_ID_LEN)
        return EINVAL;
    for (const char *p = id; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return EINVAL;
    return 0;
}

/* Open the upload folder of id and check it belongs to bucket/key. */
static int open_upload(struct dirstore *d, const char *bucket, const char *key, const char *id,
                       int *out)
{
    char want[NAME_MAX + OBJ_KEY_MAX + 4], have[sizeof(want)];
    int rc = check_upload_id(id);
    if (rc)
        return rc;
    int ufd = openat(d->rootfd, UPLOADS_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (ufd < 0)
        return errno == ENOENT ? ENOENT : errno;
    int fd = openat(ufd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    close(ufd);
    if (fd < 0)
        return errno;
    int ifd = openat(fd, "info", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    size_t got = 0;
    snprintf(want, sizeof(want), "%s\n%s\n", bucket, key);
    rc = ifd < 0 ? errno : fs_pread_full(ifd, have, sizeof(have) - 1, 0, &got);
    if (ifd >= 0)
        close(ifd);
    if (!rc && (got != strlen(want) || memcmp(have, want, got) != 0))
        rc = ENOENT; /* an upload of another object: S3's NoSuchUpload */
    if (rc) {
        close(fd);
        return rc;
    }
    *out = fd;
    return 0;
}

static int dir_mp_create(struct objstore *s, const char *bucket, const char *key,
                         const struct obj_meta *meta, char *upload_id)
{
    struct dirstore *d = D(s);
    struct keypath kp;
    char id[UPLOAD_ID_LEN + 1], info[NAME_MAX + OBJ_KEY_MAX + 4];
    int bfd = -1, ufd = -1, fd = -1, ifd = -1, rc;

    STAT_ADD(s, mp_ops, 1);
    if ((rc = enter(s, key, false)) || (rc = key_split(key, &kp)))
        return done(s, "mp_create", bucket, key, rc);
    if (kp.marker)
        return done(s, "mp_create", bucket, key, EINVAL);
    if ((rc = open_bucket(d, bucket, &bfd)))
        return done(s, "mp_create", bucket, key, rc);
    close(bfd);
    if ((rc = random_hex(id, UPLOAD_ID_LEN / 2)))
        return done(s, "mp_create", bucket, key, rc);
    if (mkdirat(d->rootfd, UPLOADS_DIR, 0700) != 0 && errno != EEXIST)
        return done(s, "mp_create", bucket, key, errno);
    if ((rc = open_dirpath(d->rootfd, UPLOADS_DIR "/", false, &ufd)))
        return done(s, "mp_create", bucket, key, rc);
    if (mkdirat(ufd, id, 0700) != 0) {
        rc = errno;
        goto out;
    }
    if ((fd = openat(ufd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        rc = errno;
        goto out;
    }
    if ((ifd = openat(fd, "info", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
        rc = errno;
        goto out;
    }
    snprintf(info, sizeof(info), "%s\n%s\n", bucket, key);
    if ((rc = write_all(ifd, info, strlen(info))))
        goto out;
    if (meta && meta->has_posix && (rc = write_posix(ifd, meta)))
        goto out;
    if (fsync(ifd) != 0)
        rc = errno;
    else
        strcpy(upload_id, id);
out:
    if (ifd >= 0)
        close(ifd);
    if (fd >= 0)
        close(fd);
    close(ufd);
    return done(s, "mp_create", bucket, key, rc);
}

/* Body b becomes part `number` of the upload in folder ufd (replacing an earlier one). */
static int part_at(int ufd, uint32_t number, const struct body *b, char *etag_out)
{
    char name[32];
    snprintf(name, sizeof(name), "part.%05" PRIu32, number);
    return body_commit(ufd, b, name, NULL, etag_out);
}

/* mp_put_part and mp_put_part_file. */
static int put_part_body(struct objstore *s, const char *bucket, const char *key,
                         const char *upload_id, uint32_t number, const struct body *b,
                         char *etag_out)
{
    int fd = -1, rc;

    STAT_ADD(s, mp_ops, 1);
    if ((rc = enter(s, key, false)) || (rc = body_check(b)))
        return done(s, "mp_put_part", bucket, key, rc);
    if (number < 1 || number > MAX_PARTS)
        return done(s, "mp_put_part", bucket, key, EINVAL);
    if ((rc = open_upload(D(s), bucket, key, upload_id, &fd)))
        return done(s, "mp_put_part", bucket, key, rc);
    rc = part_at(fd, number, b, etag_out);
    close(fd);
    if (!rc)
        STAT_ADD(s, bytes_out, b->len);
    return done(s, "mp_put_part", bucket, key, rc);
}

static int dir_mp_put_part(struct objstore *s, const char *bucket, const char *key,
                           const char *upload_id, uint32_t number, const void *buf, size_t len,
                           char *etag_out)
{
    struct body b = {.buf = buf ? buf : "", .fd = -1, .len = len};
    return put_part_body(s, bucket, key, upload_id, number, &b, etag_out);
}

static int dir_mp_put_part_file(struct objstore *s, const char *bucket, const char *key,
                                const char *upload_id, uint32_t number, int fd, uint64_t off,
                                uint64_t len, char *etag_out)
{
    struct body b = {.buf = NULL, .fd = fd, .off = off, .len = len};
    return put_part_body(s, bucket, key, upload_id, number, &b, etag_out);
}

/*
 * Part `number` in ufd = bytes [off, off + len) of object `name` in sfd,
 * of the version whose ETag is src_etag (if not NULL).  A symlink object's
 * bytes are its target, as get reads them.
 */
static int copy_part_at(int sfd, const char *name, const char *src_etag, uint64_t off, uint64_t len,
                        int ufd, uint32_t number, char *etag_out)
{
    char target[PATH_MAX];
    struct obj_meta m;
    struct stat st;
    struct body b = {.buf = NULL, .fd = -1, .off = off, .len = len};
    int rc;

    if ((rc = stat_object(sfd, name, &st)))
        return rc;
    if (S_ISLNK(st.st_mode)) {
        ssize_t n = readlinkat(sfd, name, target, sizeof(target));
        if (n < 0)
            return errno;
        st.st_size = n;
        symlink_meta(&st, &m);
    } else {
        /* The open file is one version for as long as it is open (objects are
         * replaced by rename): its ETag checked once covers every byte read. */
        if ((rc = open_object(sfd, name, &b.fd, &st)))
            return rc;
        read_meta(b.fd, &st, &m);
    }
    if (src_etag && strcmp(src_etag, m.etag) != 0)
        rc = ESTALE; /* S3: 412 to x-amz-copy-source-if-match */
    else if (off > m.size || len > m.size - off)
        rc = EINVAL; /* S3: InvalidRange */
    if (!rc && b.fd < 0)
        b.buf = target + off;
    if (!rc)
        rc = part_at(ufd, number, &b, etag_out);
    if (b.fd >= 0)
        close(b.fd);
    return rc;
}

static int dir_mp_copy_part(struct objstore *s, const char *bucket, const char *key,
                            const char *upload_id, uint32_t number, const char *src_key,
                            const char *src_etag, uint64_t off, uint64_t len, char *etag_out)
{
    struct keypath sk;
    int ufd = -1, bfd = -1, sfd = -1, rc;

    STAT_ADD(s, mp_ops, 1);
    if ((rc = enter(s, key, false)) || (rc = key_split(src_key, &sk)))
        return done(s, "mp_copy_part", bucket, key, rc);
    if (number < 1 || number > MAX_PARTS || sk.marker || len == 0)
        return done(s, "mp_copy_part", bucket, key, EINVAL);
    if ((rc = open_upload(D(s), bucket, key, upload_id, &ufd)))
        return done(s, "mp_copy_part", bucket, key, rc);
    if (!(rc = open_bucket(D(s), bucket, &bfd))) {
        if (!(rc = open_dirpath(bfd, sk.dir, false, &sfd))) {
            rc = copy_part_at(sfd, sk.name, src_etag, off, len, ufd, number, etag_out);
            close(sfd);
        }
        close(bfd);
    }
    close(ufd);
    return done(s, "mp_copy_part", bucket, key, rc);
}

static int part_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int dir_mp_list_parts(struct objstore *s, const char *bucket, const char *key,
                             const char *upload_id, struct obj_part *parts, size_t max,
                             size_t *n)
{
    uint32_t *nums = NULL;
    size_t count = 0;
    int fd = -1, rc;

    *n = 0;
    STAT_ADD(s, mp_ops, 1);
    if ((rc = enter(s, key, false)))
        return done(s, "mp_list_parts", bucket, key, rc);
    if ((rc = open_upload(D(s), bucket, key, upload_id, &fd)))
        return done(s, "mp_list_parts", bucket, key, rc);
    if (!(nums = malloc(MAX_PARTS * sizeof(*nums)))) {
        close(fd);
        return done(s, "mp_list_parts", bucket, key, ENOMEM);
    }
    int dup = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dp = dup >= 0 ? fdopendir(dup) : NULL;
    if (!dp) {
        rc = errno;
        if (dup >= 0)
            close(dup);
        goto out;
    }
    struct dirent *de;
    while ((de = readdir(dp)) && count < MAX_PARTS) {
        uint32_t num;
        if (strncmp(de->d_name, "part.", 5) == 0 && parse_u32(de->d_name + 5, &num) &&
            num >= 1 && num <= MAX_PARTS)
            nums[count++] = num;
    }
    closedir(dp);
    qsort(nums, count, sizeof(*nums), part_cmp);
    for (size_t i = 0; i < count && *n < max; i++) {
        char name[32];
        struct obj_meta m;
        snprintf(name, sizeof(name), "part.%05" PRIu32, nums[i]);
        if (meta_at(fd, name, false, &m) != 0)
            continue;
        parts[*n].number = nums[i];
        parts[*n].size = m.size;
        strcpy(parts[*n].etag, m.etag);
        (*n)++;
    }
out:
    free(nums);
    close(fd);
    return done(s, "mp_list_parts", bucket, key, rc);
}

/* Remove an upload folder and what it holds (parts, info, temp files). */
static void remove_upload(struct dirstore *d, const char *id)
{
    int ufd = openat(d->rootfd, UPLOADS_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (ufd < 0)
        return;
    int fd = openat(ufd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *dp = fd >= 0 ? fdopendir(fd) : NULL;
    if (dp) {
        struct dirent *de;
        while ((de = readdir(dp)))
            if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                unlinkat(dirfd(dp), de->d_name, 0);
        closedir(dp);
    } else if (fd >= 0) {
        close(fd);
    }
    unlinkat(ufd, id, AT_REMOVEDIR);
    close(ufd);
}

/* Strip the quotes S3 puts around ETags. */
static void unquote(const char *in, char *out)
{
    size_t n = strnlen(in, OBJ_ETAG_MAX - 1);
    if (n >= 2 && in[0] == '"' && in[n - 1] == '"') {
        in++;
        n -= 2;
    }
    memcpy(out, in, n);
    out[n] = '\0';
}

static int complete_at(int ufd, int dfd, const struct keypath *kp, const struct obj_part *parts,
                       size_t nparts, char *etag_out)
{
    struct tmpfile t;
    struct obj_meta meta, pm;
    struct stat st;
    char name[32], want[OBJ_ETAG_MAX], etag[OBJ_ETAG_MAX + 16];
    int rc = 0, fd;

    if (nparts == 0 || nparts > MAX_PARTS)
        return EINVAL;
    EVP_MD_CTX *ctx = md5_new(); /* over the binary part MD5s: S3's multipart ETag */
    if (!ctx)
        return ENOMEM;
    if ((rc = tmp_open(dfd, &t))) {
        EVP_MD_CTX_free(ctx);
        return rc;
    }
    for (size_t i = 0; i < nparts && !rc; i++) {
        unsigned char bin[16];
        if (parts[i].number < 1 || parts[i].number > MAX_PARTS ||
            (i > 0 && parts[i].number <= parts[i - 1].number)) {
            rc = EINVAL; /* S3 InvalidPartOrder */
            break;
        }
        snprintf(name, sizeof(name), "part.%05" PRIu32, parts[i].number);
        if ((rc = open_object(ufd, name, &fd, &st))) {
            rc = rc == ENOENT ? EINVAL : rc; /* S3 InvalidPart */
            break;
        }
        read_meta(fd, &st, &pm);
        unquote(parts[i].etag, want);
        if (strcmp(want, pm.etag) != 0 || strlen(pm.etag) != 32) {
            close(fd);
            rc = EINVAL;
            break;
        }
        for (int j = 0; j < 16; j++)
            sscanf(pm.etag + 2 * j, "%2hhx", &bin[j]);
        if (EVP_DigestUpdate(ctx, bin, 16) != 1)
            rc = EIO;
        if (!rc)
            rc = copy_range(fd, 0, TO_END, t.fd, NULL);
        close(fd);
    }
    if (rc) {
        EVP_MD_CTX_free(ctx);
        tmp_abort(&t);
        return rc;
    }
    if ((rc = md5_end(ctx, etag))) {
        tmp_abort(&t);
        return rc;
    }
    snprintf(etag + 32, sizeof(etag) - 32, "-%zu", nparts);
    int ifd = openat(ufd, "info", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (ifd < 0 || fstat(ifd, &st) != 0) {
        rc = errno;
        if (ifd >= 0)
            close(ifd);
        tmp_abort(&t);
        return rc;
    }
    read_meta(ifd, &st, &meta);
    close(ifd);
    if ((rc = tmp_commit(&t, kp->name, meta.has_posix ? &meta : NULL, etag)))
        return rc;
    if (etag_out)
        strcpy(etag_out, etag);
    return 0;
}

static int dir_mp_complete(struct objstore *s, const char *bucket, const char *key,
                           const char *upload_id, const struct obj_part *parts, size_t nparts,
                           char *etag_out)
{
    struct keypath kp;
    int bfd = -1, ufd = -1, dfd = -1, rc;

    STAT_ADD(s, mp_ops, 1);
    if ((rc = enter(s, key, false)) || (rc = key_split(key, &kp)))
        return done(s, "mp_complete", bucket, key, rc);
    if ((rc = open_upload(D(s), bucket, key, upload_id, &ufd)))
        return done(s, "mp_complete", bucket, key, rc);
    if (!(rc = open_bucket(D(s), bucket, &bfd))) {
        if (!(rc = open_dirpath(bfd, kp.dir, true, &dfd))) {
            rc = complete_at(ufd, dfd, &kp, parts, nparts, etag_out);
            close(dfd);
        }
        close(bfd);
    }
    close(ufd);
    if (!rc)
        remove_upload(D(s), upload_id);
    return done(s, "mp_complete", bucket, key, rc);
}

static int dir_mp_abort(struct objstore *s, const char *bucket, const char *key,
                        const char *upload_id)
{
    int fd = -1, rc;

    STAT_ADD(s, mp_ops, 1);
    if ((rc = enter(s, key, false)))
        return done(s, "mp_abort", bucket, key, rc);
    if ((rc = open_upload(D(s), bucket, key, upload_id, &fd)))
        return done(s, "mp_abort", bucket, key, rc);
    close(fd);
    remove_upload(D(s), upload_id);
    return 0;
}

/* ---- life cycle ------------------------------------------------------------ */

static void dir_destroy(struct objstore *s)
{
    struct dirstore *d = D(s);
    close(d->rootfd);
    free(d->latency_match);
    free(d);
    free(s->name);
    free(s);
}

static const struct obj_ops dir_ops = {
    .head = dir_head,
    .get = dir_get,
    .list = dir_list,
    .put = dir_put,
    .put_file = dir_put_file,
    .mp_create = dir_mp_create,
    .mp_put_part = dir_mp_put_part,
    .mp_put_part_file = dir_mp_put_part_file,
    .mp_copy_part = dir_mp_copy_part,
    .mp_complete = dir_mp_complete,
    .mp_abort = dir_mp_abort,
    .mp_list_parts = dir_mp_list_parts,
    .copy = dir_copy,
    .del = dir_del,
    .destroy = dir_destroy,
};

struct objstore *obj_dir_create(const struct conf_store *c)
{
    struct objstore *s = NULL;
    struct dirstore *d = NULL;
    int e;

    if (!c || c->type != CONF_STORE_DIR || !c->root || !c->name) {
        errno = EINVAL;
        return NULL;
    }
    if (!(s = calloc(1, sizeof(*s))) || !(d = calloc(1, sizeof(*d))))
        goto fail;
    d->rootfd = -1;
    if (!(s->name = strdup(c->name)))
        goto fail;
    if (c->latency_match && !(d->latency_match = strdup(c->latency_match)))
        goto fail;
    d->latency_ms = c->latency_ms;
    d->fail_rate = c->fail_rate;
    d->list_bare = c->list_bare;
    if (getrandom(&d->rng, sizeof(d->rng), 0) != sizeof(d->rng))
        d->rng = (uint64_t)time(NULL);
    d->rootfd = open(c->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d->rootfd < 0) {
        e = errno;
        LOG_AT(LOG_ERR, "dir store %s: cannot open root %s: %s", c->name, c->root, strerror(e));
        goto fail_errno;
    }
    s->ops = &dir_ops;
    s->list_is_head = !c->list_bare; /* list and head read the same stat and xattrs */
    s->priv = d;
    return s;

fail:
    e = ENOMEM;
fail_errno:
    if (d) {
        if (d->rootfd >= 0)
            close(d->rootfd);
        free(d->latency_match);
        free(d);
    }
    if (s)
        free(s->name);
    free(s);
    errno = e;
    return NULL;
}
