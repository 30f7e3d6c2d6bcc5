/*
 * it_write.c - the write path as a libnfs client sees it, and what reaches
 * the bucket (for write.sh).
 *
 *   it_write NFS_PORT MOUNT_PORT BUCKET_DIR MODE [ARGS]
 *
 * The daemon on 127.0.0.1 exports /demo read-write with a short
 * writeback_delay; BUCKET_DIR is the dir-store folder of its bucket, where
 * an uploaded file is a plain file whose POSIX attributes are the
 * user.bucketnfs.file-* xattrs ("0100644", "0", "0", "<ns>ns").  Modes:
 *
 *   files              files of 0, 1, 4095, 1 MiB+3 and 20 MiB written and
 *                      read back; then overwrite in the middle, truncate down
 *                      and to 0, extend with a hole, write past the end,
 *                      append.  After each step: the bytes through NFS, the
 *                      object in the bucket once written back (bytes, mode,
 *                      owner, mtime), and the bytes through NFS again (now
 *                      read from the bucket).
 *   names              renames (a file before and after its upload, a
 *                      directory of uploaded files, over an existing file),
 *                      remove, rmdir (NOTEMPTY also for a child only the
 *                      bucket has), chmod / chown / utimes, mkdir, symlink.
 *   errors RO_EXPORT   the status of calls that must fail: EXIST, NOTEMPTY,
 *                      ISDIR, NOTDIR, NOENT, INVAL, ACCES and PERM (uid 1000),
 *                      ROFS (on RO_EXPORT, which holds seed.txt and the empty
 *                      folder empty-dir), NOTSUPP
 *                      (LINK, MKNOD), NOT_SYNC, NAMETOOLONG; EXCLUSIVE create;
 *                      the bits ACCESS grants (write bits where writes are
 *                      allowed).
 *   retrans            CREATE, MKDIR, REMOVE, RMDIR, RENAME sent twice with
 *                      one XID (libnfs's rpc_set_next_xid) on one
 *                      connection: the first reply again; from another
 *                      port (another process): a new call.
 *   verf NAME          WRITE UNSTABLE / DATA_SYNC / FILE_SYNC and COMMIT
 *                      answer one verifier; the last line is "verf HEX".
 *   put LOCAL NAME     LOCAL written to NAME in UNSTABLE WRITEs of 1 MiB,
 *                      then COMMIT (one verifier throughout).
 *   jukebox NAME OUT MAX_MIB
 *                      UNSTABLE WRITEs of 1 MiB to NAME until NFS3ERR_JUKEBOX
 *                      (the stage is at cache.dirty_max); the refused write
 *                      changed nothing, the acknowledged bytes read back and
 *                      are committed; OUT receives them (for the bucket check
 *                      after write-back).
 *
 * Each check prints "ok - WHAT" or "not ok - WHAT: WHY"; the last line is
 * "it_write MODE: N passed, N failed".  Exit 1 on a failure, 2 when the
 * export could not be mounted.  Calls whose exact status matters go out
 * through libnfs's raw RPC API (its synchronous API maps statuses to errno
 * and is used for the rest); every wait is bounded.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <nfsc/libnfs.h>
/* the raw API's headers after libnfs.h, which defines what they use */
#include <nfsc/libnfs-raw-mount.h>
#include <nfsc/libnfs-raw-nfs.h>
#include <nfsc/libnfs-raw.h>

#define MIB            (1u << 20)
#define CALL_TIMEOUT_S 30.0 /* one RPC */
#define WB_WAIT_S      20.0 /* write-back of one change (writeback_delay is 0 or 1 s) */
#define FOREIGN_UID    1000 /* the non-root user of the permission checks */

static int passed, failed;
static int nfs_port, mount_port;
static const char *bucket;
static struct nfs_context *nfs; /* root (uid 0, not squashed) on /demo */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- results ------------------------------------------------------------------ */

/* Count and print one check: "ok - WHAT" or "not ok - WHAT: WHY" (why: printf format). */
static bool verdict(bool good, const char *what, const char *why, ...)
{
    if (good) {
        passed++;
        printf("ok - %s\n", what);
    } else {
        failed++;
        printf("not ok - %s: ", what);
        va_list ap;
        va_start(ap, why);
        vprintf(why, ap);
        va_end(ap);
        printf("\n");
    }
    fflush(stdout);
    return good;
}

static const char *stat_name(int st)
{
    static const struct {
        int st;
        const char *name;
    } names[] = {
        {NFS3_OK, "NFS3_OK"},
        {NFS3ERR_PERM, "NFS3ERR_PERM"},
        {NFS3ERR_NOENT, "NFS3ERR_NOENT"},
        {NFS3ERR_IO, "NFS3ERR_IO"},
        {NFS3ERR_ACCES, "NFS3ERR_ACCES"},
        {NFS3ERR_EXIST, "NFS3ERR_EXIST"},
        {NFS3ERR_XDEV, "NFS3ERR_XDEV"},
        {NFS3ERR_NOTDIR, "NFS3ERR_NOTDIR"},
        {NFS3ERR_ISDIR, "NFS3ERR_ISDIR"},
        {NFS3ERR_INVAL, "NFS3ERR_INVAL"},
        {NFS3ERR_FBIG, "NFS3ERR_FBIG"},
        {NFS3ERR_NOSPC, "NFS3ERR_NOSPC"},
        {NFS3ERR_ROFS, "NFS3ERR_ROFS"},
        {NFS3ERR_NAMETOOLONG, "NFS3ERR_NAMETOOLONG"},
        {NFS3ERR_NOTEMPTY, "NFS3ERR_NOTEMPTY"},
        {NFS3ERR_STALE, "NFS3ERR_STALE"},
        {NFS3ERR_BADHANDLE, "NFS3ERR_BADHANDLE"},
        {NFS3ERR_NOT_SYNC, "NFS3ERR_NOT_SYNC"},
        {NFS3ERR_NOTSUPP, "NFS3ERR_NOTSUPP"},
        {NFS3ERR_SERVERFAULT, "NFS3ERR_SERVERFAULT"},
        {NFS3ERR_JUKEBOX, "NFS3ERR_JUKEBOX"},
        {-1, "no reply"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (names[i].st == st)
            return names[i].name;
    return "another status";
}

/* One status check: "WHAT" passes when got is want. */
static bool expect_stat(int got, int want, const char *what)
{
    return verdict(got == want, what, "got %s (%d), want %s", stat_name(got), got, stat_name(want));
}

/* ---- file contents: a pattern anyone can recompute, and a model of each file -- */

static uint8_t pat_byte(uint64_t pos, uint32_t seed)
{
    uint64_t x = (pos >> 3) * 0x9E3779B97F4A7C15ull + (seed + 1) * 0xBF58476D1CE4E5B9ull;
    x ^= x >> 31;
    x *= 0x94D049BB133111EBull;
    x ^= x >> 29;
    return (uint8_t)(x >> ((pos & 7) * 8));
}

static void pattern(uint8_t *buf, size_t n, uint64_t off, uint32_t seed)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = pat_byte(off + i, seed);
}

/* What a file must hold: its bytes and attributes as the client made them. */
struct model {
    char name[256];
    uint8_t *data;
    size_t len;
    uint32_t mode; /* type and permission bits */
    uint32_t uid, gid;
};

static void m_init(struct model *m, const char *name, uint32_t mode)
{
    memset(m, 0, sizeof(*m));
    snprintf(m->name, sizeof(m->name), "%s", name);
    m->mode = S_IFREG | mode;
}

/* The size becomes len: cut, or grown with zeros. */
static void m_resize(struct model *m, size_t len)
{
    if (len > m->len) {
        m->data = realloc(m->data, len ? len : 1);
        memset(m->data + m->len, 0, len - m->len);
    }
    m->len = len;
}

static void m_free(struct model *m)
{
    free(m->data);
    m->data = NULL;
    m->len = 0;
}

/*
 * Write n pattern bytes (seed) at off of m's file through libnfs, in WRITEs
 * of 1 MiB at most, and into the model.  0 or a negative errno.
 */
static int put_range(struct model *m, uint64_t off, size_t n, uint32_t seed)
{
    struct nfsfh *fh = NULL;
    int rc = nfs_open(nfs, m->name, O_RDWR, &fh);
    if (rc)
        return rc;
    if (off + n > m->len)
        m_resize(m, off + n);
    pattern(m->data + off, n, off, seed);
    for (size_t done = 0; done < n && rc == 0;) {
        size_t chunk = n - done < MIB ? n - done : MIB;
        int got = nfs_pwrite(nfs, fh, off + done, chunk, m->data + off + done);
        if (got <= 0)
            rc = got < 0 ? got : -EIO;
        else
            done += (size_t)got;
    }
    if (rc == 0)
        rc = nfs_fsync(nfs, fh);
    nfs_close(nfs, fh);
    return rc;
}

/* NULL when m's file reads back through NFS as m says (size, bytes), else why not. */
static const char *nfs_differs(const struct model *m)
{
    static char why[256];
    struct nfs_stat_64 st;
    int rc = nfs_stat64(nfs, m->name, &st);
    if (rc) {
        snprintf(why, sizeof(why), "stat: %s", nfs_get_error(nfs));
        return why;
    }
    if (st.nfs_size != m->len || st.nfs_mode != m->mode) {
        snprintf(why, sizeof(why), "size %" PRIu64 " mode 0%" PRIo64 ", want %zu 0%o", st.nfs_size,
                 st.nfs_mode, m->len, m->mode);
        return why;
    }
    struct nfsfh *fh = NULL;
    if (nfs_open(nfs, m->name, O_RDONLY, &fh)) {
        snprintf(why, sizeof(why), "open: %s", nfs_get_error(nfs));
        return why;
    }
    uint8_t *buf = malloc(MIB);
    why[0] = 0;
    uint64_t off = 0;
    for (;;) {
        int n = nfs_pread(nfs, fh, off, MIB, buf);
        if (n < 0) {
            snprintf(why, sizeof(why), "read at %" PRIu64 ": %s", off, nfs_get_error(nfs));
            break;
        }
        if (n == 0)
            break;
        if (off + (uint64_t)n > m->len || memcmp(buf, m->data + off, (size_t)n) != 0) {
            size_t i = 0;
            while (off + i < m->len && i < (size_t)n && buf[i] == m->data[off + i])
                i++;
            snprintf(why, sizeof(why), "bytes differ at %" PRIu64 " (read %d at %" PRIu64 ")",
                     off + i, n, off);
            break;
        }
        off += (uint64_t)n;
    }
    if (!why[0] && off != m->len)
        snprintf(why, sizeof(why), "read %" PRIu64 " bytes, want %zu", off, m->len);
    free(buf);
    nfs_close(nfs, fh);
    return why[0] ? why : NULL;
}

/* ---- the bucket side ------------------------------------------------------------ */

/* What the object of a file must be once written back. */
struct want {
    const uint8_t *data; /* NULL: bytes not compared */
    size_t len;
    uint32_t mode; /* type and permission bits (0: not compared) */
    long uid, gid; /* -1: not compared */
    bool mtime;    /* compare the mtime xattr with mtime_sec.mtime_nsec */
    int64_t mtime_sec;
    uint32_t mtime_nsec;
    const char *link; /* a symlink to this target */
};

static void bucket_path(char *out, size_t len, const char *rel)
{
    snprintf(out, len, "%s/%s", bucket, rel);
}

static bool xattr_is(const char *path, const char *name, const char *want, char *got, size_t glen)
{
    char full[96];
    snprintf(full, sizeof(full), "user.bucketnfs.file-%s", name);
    ssize_t n = lgetxattr(path, full, got, glen - 1);
    got[n < 0 ? 0 : n] = 0;
    if (n < 0)
        snprintf(got, glen, "(none: %s)", strerror(errno));
    return n >= 0 && strcmp(got, want) == 0;
}

/* NULL when BUCKET/rel is what w says, else why not. */
static const char *bucket_differs(const char *rel, const struct want *w)
{
    static char why[512];
    char path[4096], v[128], want[64];
    bucket_path(path, sizeof(path), rel);
    struct stat st;
    if (lstat(path, &st) != 0) {
        snprintf(why, sizeof(why), "%s: %s", rel, strerror(errno));
        return why;
    }
    if (w->link) {
        ssize_t n = readlink(path, v, sizeof(v) - 1);
        v[n < 0 ? 0 : n] = 0;
        if (!S_ISLNK(st.st_mode) || strcmp(v, w->link) != 0) {
            snprintf(why, sizeof(why), "%s: not a symlink to %s (mode 0%o, '%s')", rel, w->link,
                     st.st_mode, v);
            return why;
        }
        return NULL;
    }
    if (w->data) {
        if (!S_ISREG(st.st_mode) || (size_t)st.st_size != w->len) {
            snprintf(why, sizeof(why), "%s: size %lld (mode 0%o), want %zu", rel,
                     (long long)st.st_size, st.st_mode, w->len);
            return why;
        }
        int fd = open(path, O_RDONLY);
        uint8_t *buf = malloc(w->len ? w->len : 1);
        ssize_t got = 0;
        while (fd >= 0 && (size_t)got < w->len) {
            ssize_t n = pread(fd, buf + got, w->len - (size_t)got, got);
            if (n <= 0)
                break;
            got += n;
        }
        bool same = (size_t)got == w->len && memcmp(buf, w->data, w->len) == 0;
        if (fd >= 0)
            close(fd);
        free(buf);
        if (!same) {
            snprintf(why, sizeof(why), "%s: the bytes differ", rel);
            return why;
        }
    }
    if (w->mode) {
        snprintf(want, sizeof(want), "%07o", w->mode);
        if (!xattr_is(path, "permissions", want, v, sizeof(v))) {
            snprintf(why, sizeof(why), "%s: permissions '%s', want '%s'", rel, v, want);
            return why;
        }
    }
    if (w->uid >= 0) {
        snprintf(want, sizeof(want), "%ld", w->uid);
        if (!xattr_is(path, "owner", want, v, sizeof(v))) {
            snprintf(why, sizeof(why), "%s: owner '%s', want '%s'", rel, v, want);
            return why;
        }
    }
    if (w->gid >= 0) {
        snprintf(want, sizeof(want), "%ld", w->gid);
        if (!xattr_is(path, "group", want, v, sizeof(v))) {
            snprintf(why, sizeof(why), "%s: group '%s', want '%s'", rel, v, want);
            return why;
        }
    }
    if (w->mtime) {
        snprintf(want, sizeof(want), "%" PRId64 "%09" PRIu32 "ns", w->mtime_sec, w->mtime_nsec);
        if (!xattr_is(path, "mtime", want, v, sizeof(v))) {
            snprintf(why, sizeof(why), "%s: mtime '%s', want '%s'", rel, v, want);
            return why;
        }
    }
    return NULL;
}

/* Wait (WB_WAIT_S at most) until BUCKET/rel is what w says; one check. */
static bool wait_bucket(const char *rel, const struct want *w, const char *what)
{
    double t0 = now();
    const char *why;
    while ((why = bucket_differs(rel, w)) && now() - t0 < WB_WAIT_S)
        usleep(100 * 1000);
    return verdict(why == NULL, what, "after %.1f s: %s", now() - t0, why);
}

static bool bucket_has(const char *rel)
{
    char path[4096];
    struct stat st;
    bucket_path(path, sizeof(path), rel);
    return lstat(path, &st) == 0;
}

static unsigned nftw_files;

static int count_file(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    if (type == FTW_F)
        nftw_files++;
    return 0;
}

/* Regular files under BUCKET/rel (0 when it is not there). */
static unsigned bucket_files_under(const char *rel)
{
    char path[4096];
    bucket_path(path, sizeof(path), rel);
    nftw_files = 0;
    if (nftw(path, count_file, 16, FTW_PHYS) != 0)
        return 0;
    return nftw_files;
}

/* Put a file into the bucket directly, as another tool would. */
static bool bucket_put(const char *rel, const char *text)
{
    char path[4096];
    bucket_path(path, sizeof(path), rel);
    FILE *f = fopen(path, "w");
    if (!f)
        return false;
    fputs(text, f);
    return fclose(f) == 0;
}

/* The model's object as it must be after write-back, its mtime what GETATTR says now. */
static struct want want_of(const struct model *m)
{
    struct want w = {.data = m->data, .len = m->len, .mode = m->mode, .uid = m->uid, .gid = m->gid};
    struct nfs_stat_64 st;
    if (nfs_stat64(nfs, m->name, &st) == 0) {
        w.mtime = true;
        w.mtime_sec = (int64_t)st.nfs_mtime;
        w.mtime_nsec = (uint32_t)st.nfs_mtime_nsec;
    }
    return w;
}

/*
 * One step of a file's life checked three ways: through NFS now (the
 * staged bytes), in the bucket after write-back (bytes and attributes),
 * and through NFS again (read from the uploaded object).
 */
static void verify(const struct model *m, const char *step)
{
    char what[512];
    const char *why = nfs_differs(m);
    snprintf(what, sizeof(what), "%s: %s (%zu bytes) reads back through NFS", step, m->name,
             m->len);
    verdict(why == NULL, what, "%s", why);
    struct want w = want_of(m);
    snprintf(what, sizeof(what),
             "%s: the object in the bucket is byte-identical, mode 0%o, owner %u:%u, mtime", step,
             m->mode, m->uid, m->gid);
    wait_bucket(m->name, &w, what);
    why = nfs_differs(m);
    snprintf(what, sizeof(what), "%s: %s reads back through NFS after write-back", step, m->name);
    verdict(why == NULL, what, "%s", why);
}

/* ---- raw NFSv3 calls through libnfs, for exact statuses -------------------------- */

struct xfh {
    uint32_t len;
    char val[NFS3_FHSIZE];
};

/* One call in flight and what its reply said. */
struct call {
    int proc; /* NFS3_* procedure (or -1: MNT) */
    bool done;
    int status;    /* nfsstat3 / mountstat3; -1: no reply */
    struct xfh fh; /* LOOKUP, CREATE, MKDIR, SYMLINK, MNT: the object's handle */
    bool have_fh;
    fattr3 attr;                   /* GETATTR */
    uint32_t count;                /* WRITE */
    uint32_t access;               /* ACCESS: the bits granted */
    int committed;                 /* WRITE */
    char verf[NFS3_WRITEVERFSIZE]; /* WRITE, COMMIT */
};

static void set_fh(struct xfh *out, u_int len, const char *val)
{
    out->len = len <= NFS3_FHSIZE ? len : 0;
    memcpy(out->val, val, out->len);
}

static void post_fh(struct call *c, const post_op_fh3 *p)
{
    c->have_fh = p->handle_follows;
    if (p->handle_follows)
        set_fh(&c->fh, p->post_op_fh3_u.handle.data.data_len,
               p->post_op_fh3_u.handle.data.data_val);
}

static void call_cb(struct rpc_context *rpc, int st, void *data, void *priv)
{
    struct call *c = priv;
    c->done = true;
    if (st != RPC_STATUS_SUCCESS || !data) {
        c->status = -1;
        return;
    }
    if (c->proc < 0) {
        mountres3 *r = data;
        c->status = (int)r->fhs_status;
        if (r->fhs_status == MNT3_OK) {
            c->have_fh = true;
            set_fh(&c->fh, r->mountres3_u.mountinfo.fhandle.fhandle3_len,
                   r->mountres3_u.mountinfo.fhandle.fhandle3_val);
        }
        return;
    }
    c->status = (int)*(nfsstat3 *)data; /* every NFSv3 result starts with its status */
    if (c->status != NFS3_OK)
        return;
    switch (c->proc) {
    case NFS3_LOOKUP: {
        nfs_fh3 *o = &((LOOKUP3res *)data)->LOOKUP3res_u.resok.object;
        c->have_fh = true;
        set_fh(&c->fh, o->data.data_len, o->data.data_val);
        break;
    }
    case NFS3_CREATE: post_fh(c, &((CREATE3res *)data)->CREATE3res_u.resok.obj); break;
    case NFS3_MKDIR: post_fh(c, &((MKDIR3res *)data)->MKDIR3res_u.resok.obj); break;
    case NFS3_SYMLINK: post_fh(c, &((SYMLINK3res *)data)->SYMLINK3res_u.resok.obj); break;
    case NFS3_ACCESS: c->access = ((ACCESS3res *)data)->ACCESS3res_u.resok.access; break;
    case NFS3_GETATTR: c->attr = ((GETATTR3res *)data)->GETATTR3res_u.resok.obj_attributes; break;
    case NFS3_WRITE: {
        WRITE3resok *ok = &((WRITE3res *)data)->WRITE3res_u.resok;
        c->count = ok->count;
        c->committed = (int)ok->committed;
        memcpy(c->verf, ok->verf, sizeof(c->verf));
        break;
    }
    case NFS3_COMMIT:
        memcpy(c->verf, ((COMMIT3res *)data)->COMMIT3res_u.resok.verf, sizeof(c->verf));
        break;
    }
}

/* Run rpc's event loop until c is answered (CALL_TIMEOUT_S at most); c->status. */
static int call_wait(struct rpc_context *rpc, struct call *c)
{
    double deadline = now() + CALL_TIMEOUT_S;
    while (!c->done && now() < deadline) {
        struct pollfd pfd = {.fd = rpc_get_fd(rpc), .events = (short)rpc_which_events(rpc)};
        if (poll(&pfd, 1, 100) < 0 && errno != EINTR)
            break;
        if (rpc_service(rpc, pfd.revents) < 0)
            break;
    }
    if (!c->done)
        c->status = -1;
    return c->status;
}

/* Start a call (rc: what the _async function returned) and wait for it. */
static int call_run(struct rpc_context *rpc, struct call *c, int rc)
{
    if (rc != 0) {
        c->status = -1;
        return -1;
    }
    return call_wait(rpc, c);
}

static struct rpc_context *rpc_of(struct nfs_context *n)
{
    return nfs_get_rpc_context(n);
}

static void connect_cb(struct rpc_context *rpc, int st, void *data, void *priv)
{
    struct call *c = priv;
    c->done = true;
    c->status = st == RPC_STATUS_SUCCESS ? 0 : -1;
}

/* MNT export on the mount port: its root handle.  0 or -1. */
static int mount_root(const char *export, struct xfh *root)
{
    struct rpc_context *rpc = rpc_init_context();
    struct call c = {.proc = -1};
    int rc = -1;
    if (!rpc)
        return -1;
    if (call_run(rpc, &c, rpc_connect_async(rpc, "127.0.0.1", mount_port, connect_cb, &c)) == 0) {
        struct call m = {.proc = -1};
        if (call_run(rpc, &m, rpc_mount3_mnt_async(rpc, call_cb, (char *)export, &m)) == MNT3_OK &&
            m.have_fh) {
            *root = m.fh;
            rc = 0;
        }
    }
    rpc_destroy_context(rpc);
    return rc;
}

static nfs_fh3 fh3(const struct xfh *f)
{
    nfs_fh3 h = {.data = {.data_len = f->len, .data_val = (char *)f->val}};
    return h;
}

static int r_lookup(struct nfs_context *n, const struct xfh *dir, const char *name, struct xfh *out)
{
    LOOKUP3args a = {.what = {.dir = fh3(dir), .name = (char *)name}};
    struct call c = {.proc = NFS3_LOOKUP};
    int st = call_run(rpc_of(n), &c, rpc_nfs3_lookup_async(rpc_of(n), call_cb, &a, &c));
    if (st == NFS3_OK && out)
        *out = c.fh;
    return st;
}

static int r_getattr(struct nfs_context *n, const struct xfh *f, fattr3 *out)
{
    GETATTR3args a = {.object = fh3(f)};
    struct call c = {.proc = NFS3_GETATTR};
    int st = call_run(rpc_of(n), &c, rpc_nfs3_getattr_async(rpc_of(n), call_cb, &a, &c));
    if (st == NFS3_OK && out)
        *out = c.attr;
    return st;
}

/* ACCESS asking for every bit: the bits granted in *got. */
static int r_access(struct nfs_context *n, const struct xfh *f, uint32_t *got)
{
    ACCESS3args a = {.object = fh3(f),
                     .access = ACCESS3_READ | ACCESS3_LOOKUP | ACCESS3_MODIFY | ACCESS3_EXTEND |
                               ACCESS3_DELETE | ACCESS3_EXECUTE};
    struct call c = {.proc = NFS3_ACCESS};
    int st = call_run(rpc_of(n), &c, rpc_nfs3_access_async(rpc_of(n), call_cb, &a, &c));
    *got = st == NFS3_OK ? c.access : 0;
    return st;
}

/* ACCESS of f as n's user grants exactly want. */
static bool expect_access(struct nfs_context *n, const struct xfh *f, uint32_t want,
                          const char *what)
{
    uint32_t got = 0;
    int st = r_access(n, f, &got);
    return verdict(st == NFS3_OK && got == want, what, "%s, granted 0x%x, want 0x%x", stat_name(st),
                   got, want);
}

/* CREATE dir/name: how UNCHECKED / GUARDED with mode, or EXCLUSIVE with verf. */
static int r_create(struct nfs_context *n, const struct xfh *dir, const char *name, createmode3 how,
                    uint32_t mode, uint64_t verf, struct xfh *out)
{
    CREATE3args a;
    memset(&a, 0, sizeof(a));
    a.where.dir = fh3(dir);
    a.where.name = (char *)name;
    a.how.mode = how;
    if (how == EXCLUSIVE) {
        memcpy(a.how.createhow3_u.verf, &verf, sizeof(a.how.createhow3_u.verf));
    } else {
        a.how.createhow3_u.obj_attributes.mode.set_it = 1;
        a.how.createhow3_u.obj_attributes.mode.set_mode3_u.mode = mode;
    }
    struct call c = {.proc = NFS3_CREATE};
    int st = call_run(rpc_of(n), &c, rpc_nfs3_create_async(rpc_of(n), call_cb, &a, &c));
    if (st == NFS3_OK && out)
        *out = c.fh;
    return st;
}

static int r_mkdir(struct nfs_context *n, const struct xfh *dir, const char *name, struct xfh *out)
{
    MKDIR3args a;
    memset(&a, 0, sizeof(a));
    a.where.dir = fh3(dir);
    a.where.name = (char *)name;
    a.attributes.mode.set_it = 1;
    a.attributes.mode.set_mode3_u.mode = 0755;
    struct call c = {.proc = NFS3_MKDIR};
    int st = call_run(rpc_of(n), &c, rpc_nfs3_mkdir_async(rpc_of(n), call_cb, &a, &c));
    if (st == NFS3_OK && out)
        *out = c.fh;
    return st;
}

static int r_symlink(struct nfs_context *n, const struct xfh *dir, const char *name,
                     const char *target)
{
    SYMLINK3args a;
    memset(&a, 0, sizeof(a));
    a.where.dir = fh3(dir);
    a.where.name = (char *)name;
    a.symlink.symlink_data = (char *)target;
    struct call c = {.proc = NFS3_SYMLINK};
    return call_run(rpc_of(n), &c, rpc_nfs3_symlink_async(rpc_of(n), call_cb, &a, &c));
}

static int r_remove(struct nfs_context *n, const struct xfh *dir, const char *name, bool rmdir)
{
    REMOVE3args a = {.object = {.dir = fh3(dir), .name = (char *)name}};
    RMDIR3args d = {.object = {.dir = fh3(dir), .name = (char *)name}};
    struct call c = {.proc = rmdir ? NFS3_RMDIR : NFS3_REMOVE};
    struct rpc_context *rpc = rpc_of(n);
    return call_run(rpc, &c,
                    rmdir ? rpc_nfs3_rmdir_async(rpc, call_cb, &d, &c)
                          : rpc_nfs3_remove_async(rpc, call_cb, &a, &c));
}

static int r_rename(struct nfs_context *n, const struct xfh *fdir, const char *fname,
                    const struct xfh *tdir, const char *tname)
{
    RENAME3args a = {.from = {.dir = fh3(fdir), .name = (char *)fname},
                     .to = {.dir = fh3(tdir), .name = (char *)tname}};
    struct call c = {.proc = NFS3_RENAME};
    return call_run(rpc_of(n), &c, rpc_nfs3_rename_async(rpc_of(n), call_cb, &a, &c));
}

static int r_link(struct nfs_context *n, const struct xfh *file, const struct xfh *dir,
                  const char *name)
{
    LINK3args a = {.file = fh3(file), .link = {.dir = fh3(dir), .name = (char *)name}};
    struct call c = {.proc = NFS3_LINK};
    return call_run(rpc_of(n), &c, rpc_nfs3_link_async(rpc_of(n), call_cb, &a, &c));
}

static int r_mknod_fifo(struct nfs_context *n, const struct xfh *dir, const char *name)
{
    MKNOD3args a;
    memset(&a, 0, sizeof(a));
    a.where.dir = fh3(dir);
    a.where.name = (char *)name;
    a.what.type = NF3FIFO;
    a.what.mknoddata3_u.pipe_attributes.mode.set_it = 1;
    a.what.mknoddata3_u.pipe_attributes.mode.set_mode3_u.mode = 0644;
    struct call c = {.proc = NFS3_MKNOD};
    return call_run(rpc_of(n), &c, rpc_nfs3_mknod_async(rpc_of(n), call_cb, &a, &c));
}

/* WRITE len bytes of buf at off; the reply in *out (count, committed, verf). */
static int r_write(struct nfs_context *n, const struct xfh *f, uint64_t off, const void *buf,
                   uint32_t len, stable_how how, struct call *out)
{
    WRITE3args a = {.file = fh3(f),
                    .offset = off,
                    .count = len,
                    .stable = how,
                    .data = {.data_len = len, .data_val = (char *)buf}};
    memset(out, 0, sizeof(*out));
    out->proc = NFS3_WRITE;
    return call_run(rpc_of(n), out, rpc_nfs3_write_async(rpc_of(n), call_cb, &a, out));
}

static int r_commit(struct nfs_context *n, const struct xfh *f, char verf[NFS3_WRITEVERFSIZE])
{
    COMMIT3args a = {.file = fh3(f), .offset = 0, .count = 0};
    struct call c = {.proc = NFS3_COMMIT};
    int st = call_run(rpc_of(n), &c, rpc_nfs3_commit_async(rpc_of(n), call_cb, &a, &c));
    if (verf)
        memcpy(verf, c.verf, NFS3_WRITEVERFSIZE);
    return st;
}

/* SETATTR: s; with guard, only if the ctime is still guard_ctime. */
static int r_setattr(struct nfs_context *n, const struct xfh *f, const sattr3 *s,
                     const nfstime3 *guard_ctime)
{
    SETATTR3args a;
    memset(&a, 0, sizeof(a));
    a.object = fh3(f);
    a.new_attributes = *s;
    if (guard_ctime) {
        a.guard.check = 1;
        a.guard.sattrguard3_u.obj_ctime = *guard_ctime;
    }
    struct call c = {.proc = NFS3_SETATTR};
    return call_run(rpc_of(n), &c, rpc_nfs3_setattr_async(rpc_of(n), call_cb, &a, &c));
}

static sattr3 sattr_mode(uint32_t mode)
{
    sattr3 s;
    memset(&s, 0, sizeof(s));
    s.mode.set_it = 1;
    s.mode.set_mode3_u.mode = mode;
    return s;
}

static sattr3 sattr_owner(uint32_t uid, uint32_t gid)
{
    sattr3 s;
    memset(&s, 0, sizeof(s));
    s.uid.set_it = 1;
    s.uid.set_uid3_u.uid = uid;
    s.gid.set_it = 1;
    s.gid.set_gid3_u.gid = gid;
    return s;
}

static bool same_fh(const struct xfh *a, const struct xfh *b)
{
    return a->len == b->len && memcmp(a->val, b->val, a->len) == 0;
}

/* A libnfs context mounted on export as uid:gid; NULL (said why) when it cannot be. */
static struct nfs_context *mount_as(const char *export, int uid, int gid)
{
    char url[256];
    snprintf(url, sizeof(url), "nfs://127.0.0.1%s?nfsport=%d&mountport=%d", export, nfs_port,
             mount_port);
    struct nfs_context *n = nfs_init_context();
    struct nfs_url *u = n ? nfs_parse_url_dir(n, url) : NULL;
    if (!u) {
        fprintf(stderr, "%s: %s\n", url, n ? nfs_get_error(n) : "no context");
        if (n)
            nfs_destroy_context(n);
        return NULL;
    }
    nfs_set_uid(n, uid);
    nfs_set_gid(n, gid);
    nfs_set_readahead(n, 0);
    int rc = nfs_mount(n, u->server, u->path);
    nfs_destroy_url(u);
    if (rc) {
        fprintf(stderr, "mount %s: %s\n", url, nfs_get_error(n));
        nfs_destroy_context(n);
        return NULL;
    }
    return n;
}

/* ---- files: write, read back, upload; overwrite, truncate, extend, append ------ */

static void mode_files(void)
{
    static const size_t sizes[] = {0, 1, 4095, MIB + 3, 20 * MIB};
    enum { N = sizeof(sizes) / sizeof(sizes[0]) };
    struct model m[N];
    char name[64], what[256];
    for (size_t i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "size-%zu", sizes[i]);
        m_init(&m[i], name, 0644);
        struct nfsfh *fh = NULL;
        int rc = nfs_creat(nfs, name, 0644, &fh);
        snprintf(what, sizeof(what), "CREATE %s", name);
        if (!verdict(rc == 0, what, "%s", nfs_get_error(nfs)))
            continue;
        nfs_close(nfs, fh);
        rc = sizes[i] ? put_range(&m[i], 0, sizes[i], (uint32_t)i) : 0;
        snprintf(what, sizeof(what), "WRITE %zu bytes to %s, COMMIT", sizes[i], name);
        verdict(rc == 0, what, "%s", nfs_get_error(nfs));
    }
    for (size_t i = 0; i < N; i++)
        verify(&m[i], "new file");

    /* 1 MiB + 3, uploaded: overwrite in the middle, then cut down, then to 0. */
    struct model *a = &m[3];
    verdict(put_range(a, 500000, 1000, 7) == 0, "overwrite 1000 bytes in the middle", "%s",
            nfs_get_error(nfs));
    verify(a, "overwrite in the middle");
    verdict(nfs_truncate(nfs, a->name, 300000) == 0, "truncate down to 300000", "%s",
            nfs_get_error(nfs));
    m_resize(a, 300000);
    verify(a, "truncate down");
    verdict(nfs_truncate(nfs, a->name, 0) == 0, "truncate to 0", "%s", nfs_get_error(nfs));
    m_resize(a, 0);
    verify(a, "truncate to 0");

    /* 4095 bytes, uploaded: extend to 3 MiB + 5 (a hole of zeros), then write past the end. */
    struct model *b = &m[2];
    verdict(nfs_truncate(nfs, b->name, 3 * MIB + 5) == 0, "extend to 3 MiB + 5 with SETATTR", "%s",
            nfs_get_error(nfs));
    m_resize(b, 3 * MIB + 5);
    verify(b, "extend with a hole (reads zeros)");
    verdict(put_range(b, 5 * MIB, 100, 8) == 0, "write 100 bytes at 5 MiB (past the end)", "%s",
            nfs_get_error(nfs));
    verify(b, "write past the end (a hole between)");

    /* 1 byte, uploaded: append twice. */
    struct model *c = &m[1];
    verdict(put_range(c, c->len, 10000, 9) == 0, "append 10000 bytes", "%s", nfs_get_error(nfs));
    verify(c, "append");
    verdict(put_range(c, c->len, 3 * MIB, 10) == 0, "append 3 MiB", "%s", nfs_get_error(nfs));
    verify(c, "append again");

    /* 20 MiB, uploaded (multipart): rewrite one block in the middle. */
    struct model *d = &m[4];
    verdict(put_range(d, 9 * MIB + 17, 70000, 11) == 0, "rewrite 70000 bytes of the 20 MiB file",
            "%s", nfs_get_error(nfs));
    verify(d, "rewrite in a 20 MiB file");
    for (size_t i = 0; i < N; i++)
        m_free(&m[i]);
}

/* ---- names: rename, remove, rmdir, attributes, mkdir, symlink -------------------- */

/* A new file name with n pattern bytes, written and committed; false (said) on failure. */
static bool make_file(struct model *m, const char *name, size_t n, uint32_t seed)
{
    m_init(m, name, 0644);
    struct nfsfh *fh = NULL;
    int rc = nfs_creat(nfs, name, 0644, &fh);
    if (rc == 0) {
        nfs_close(nfs, fh);
        rc = n ? put_range(m, 0, n, seed) : 0;
    }
    char what[300];
    snprintf(what, sizeof(what), "make %s (%zu bytes)", name, n);
    if (rc)
        return verdict(false, what, "%s", nfs_get_error(nfs));
    return true;
}

/* Wait until m's object is in the bucket as m says (one check). */
static bool uploaded(const struct model *m)
{
    char what[300];
    struct want w = want_of(m);
    snprintf(what, sizeof(what), "%s is written back", m->name);
    return wait_bucket(m->name, &w, what);
}

static void mode_names(void)
{
    struct model f, g;
    struct want w;

    /* A file renamed before its upload: it appears under the new name only. */
    if (make_file(&f, "ren-early", 70000, 20)) {
        bool early = !bucket_has("ren-early");
        verdict(nfs_rename(nfs, "ren-early", "ren-early-moved") == 0,
                "rename a file not uploaded yet", "%s", nfs_get_error(nfs));
        snprintf(f.name, sizeof(f.name), "ren-early-moved");
        printf("# ren-early %s in the bucket when renamed\n", early ? "was not" : "was already");
        verify(&f, "renamed before upload");
        verdict(!bucket_has("ren-early"), "nothing left under the old name", "it is there");
        m_free(&f);
    }

    /* A file renamed after its upload: the bucket changes with the RENAME. */
    if (make_file(&f, "ren-late", 80000, 21) && uploaded(&f)) {
        verdict(nfs_rename(nfs, "ren-late", "ren-late-moved") == 0, "rename an uploaded file", "%s",
                nfs_get_error(nfs));
        snprintf(f.name, sizeof(f.name), "ren-late-moved");
        w = (struct want){.data = f.data, .len = f.len, .mode = f.mode, .uid = 0, .gid = 0};
        const char *why = bucket_differs("ren-late-moved", &w);
        verdict(why == NULL, "the object is under the new name when RENAME returns", "%s", why);
        verdict(!bucket_has("ren-late"), "and gone from the old name", "it is there");
        verify(&f, "renamed after upload");
        m_free(&f);
    }

    /* A directory of uploaded files renamed: every object moves. */
    verdict(nfs_mkdir(nfs, "rd1") == 0 && nfs_mkdir(nfs, "rd1/sub") == 0, "mkdir rd1, rd1/sub",
            "%s", nfs_get_error(nfs));
    if (make_file(&f, "rd1/a", 1000, 22) && make_file(&g, "rd1/sub/b", 2 * MIB + 1, 23) &&
        uploaded(&f) && uploaded(&g)) {
        verdict(nfs_rename(nfs, "rd1", "rd2") == 0, "rename a directory of uploaded files", "%s",
                nfs_get_error(nfs));
        snprintf(f.name, sizeof(f.name), "rd2/a");
        snprintf(g.name, sizeof(g.name), "rd2/sub/b");
        /* The names change at once, the files' objects follow in the background. */
        const char *why = nfs_differs(&f);
        verdict(why == NULL, "rd2/a reads back through NFS as soon as RENAME returns", "%s", why);
        why = nfs_differs(&g);
        verdict(why == NULL, "rd2/sub/b too", "%s", why);
        w = (struct want){.mode = S_IFDIR | 0755, .uid = 0, .gid = 0};
        why = bucket_differs("rd2", &w);
        verdict(why == NULL, "rd2/ carries the directory's attributes when RENAME returns",
                "%s", why);
        why = bucket_differs("rd2/sub", &w);
        verdict(why == NULL, "rd2/sub/ too", "%s", why);
        w = (struct want){.data = f.data, .len = f.len, .uid = -1, .gid = -1};
        wait_bucket("rd2/a", &w, "rd2/a is moved in the bucket after the RENAME");
        w = (struct want){.data = g.data, .len = g.len, .uid = -1, .gid = -1};
        wait_bucket("rd2/sub/b", &w, "rd2/sub/b too");
        double t0 = now();
        while (bucket_files_under("rd1") && now() - t0 < WB_WAIT_S)
            usleep(100 * 1000);
        unsigned left = bucket_files_under("rd1");
        verdict(left == 0, "no object left under rd1/", "%u files", left);
        t0 = now();
        while (bucket_has("rd1") && now() - t0 < WB_WAIT_S)
            usleep(100 * 1000);
        verdict(!bucket_has("rd1"), "no marker left for rd1/ or rd1/sub/ either",
                "rd1 is still a folder in the bucket after %.1f s", now() - t0);
        struct nfs_stat_64 st;
        int rc = nfs_stat64(nfs, "rd1", &st);
        verdict(rc == -ENOENT, "rd1 is gone through NFS", "stat: %d (mode 0%" PRIo64 ")", rc,
                rc ? 0 : st.nfs_mode);
        verify(&f, "directory renamed");
        verify(&g, "directory renamed");
    }
    m_free(&f);
    m_free(&g);

    /* Rename over an existing file (both uploaded): the target is replaced. */
    if (make_file(&f, "over-src", 5000, 24) && make_file(&g, "over-dst", 9000, 25) &&
        uploaded(&f) && uploaded(&g)) {
        verdict(nfs_rename(nfs, "over-src", "over-dst") == 0, "rename over an existing file", "%s",
                nfs_get_error(nfs));
        snprintf(f.name, sizeof(f.name), "over-dst");
        verify(&f, "renamed over a file");
        verdict(!bucket_has("over-src"), "the source name is gone from the bucket", "it is there");
        struct nfs_stat_64 st;
        verdict(nfs_stat64(nfs, "over-src", &st) == -ENOENT, "and through NFS", "%s",
                nfs_get_error(nfs));
    }
    m_free(&f);
    m_free(&g);

    /* Rename over an uploaded file of a file not uploaded yet. */
    if (make_file(&f, "over2-dst", 7000, 26) && uploaded(&f) &&
        make_file(&g, "over2-src", 3000, 27)) {
        verdict(nfs_rename(nfs, "over2-src", "over2-dst") == 0,
                "rename a new file over an uploaded one", "%s", nfs_get_error(nfs));
        snprintf(g.name, sizeof(g.name), "over2-dst");
        verify(&g, "new file renamed over an uploaded one");
        verdict(!bucket_has("over2-src"), "the new file's old name never reaches the bucket",
                "it is there");
    }
    m_free(&f);
    m_free(&g);

    /* Remove: an uploaded file leaves the bucket at once; a new one never reaches it. */
    if (make_file(&f, "rm-up", 4000, 28) && uploaded(&f)) {
        verdict(nfs_unlink(nfs, "rm-up") == 0, "remove an uploaded file", "%s", nfs_get_error(nfs));
        verdict(!bucket_has("rm-up"), "its object is gone when REMOVE returns", "still there");
    }
    m_free(&f);
    if (make_file(&f, "rm-new", 4000, 29)) {
        verdict(nfs_unlink(nfs, "rm-new") == 0, "remove a file not uploaded yet", "%s",
                nfs_get_error(nfs));
        sleep(3); /* longer than writeback_delay and a scan */
        verdict(!bucket_has("rm-new"), "it never reaches the bucket", "it is there");
    }
    m_free(&f);

    /* rmdir: a child known to the server, then children only the bucket has. */
    verdict(nfs_mkdir(nfs, "full") == 0, "mkdir full", "%s", nfs_get_error(nfs));
    if (make_file(&f, "full/child", 10, 30)) {
        verdict(nfs_rmdir(nfs, "full") == -ENOTEMPTY,
                "rmdir of a directory with a file: "
                "ENOTEMPTY",
                "%s", nfs_get_error(nfs));
        verdict(nfs_unlink(nfs, "full/child") == 0 && nfs_rmdir(nfs, "full") == 0,
                "rmdir once it is empty", "%s", nfs_get_error(nfs));
        double t0 = now();
        while (bucket_has("full") && now() - t0 < WB_WAIT_S)
            usleep(100 * 1000);
        verdict(!bucket_has("full"), "no marker left for full/", "still a folder");
    }
    m_free(&f);
    struct nfs_stat_64 st;
    verdict(nfs_stat64(nfs, "bdir", &st) == 0 && S_ISDIR(st.nfs_mode),
            "bdir (made in the bucket) looked up, never listed", "%s", nfs_get_error(nfs));
    verdict(nfs_rmdir(nfs, "bdir") == -ENOTEMPTY,
            "rmdir of a directory whose only child is in the bucket: ENOTEMPTY", "got %s",
            nfs_get_error(nfs));
    verdict(bucket_has("bdir/only-in-bucket"), "and the child is still there", "gone");
    verdict(nfs_mkdir(nfs, "ndir") == 0, "mkdir ndir", "%s", nfs_get_error(nfs));
    w = (struct want){.mode = S_IFDIR | 0755, .uid = 0, .gid = 0};
    if (wait_bucket("ndir", &w, "ndir's marker is written back (mode 0040755, owner 0:0)")) {
        verdict(bucket_put("ndir/dropped", "put by another tool\n"),
                "a file put into ndir/ in the bucket directly", "%s", strerror(errno));
        verdict(nfs_rmdir(nfs, "ndir") == -ENOTEMPTY,
                "rmdir of a directory made here whose child only the bucket has: ENOTEMPTY",
                "got %s", nfs_get_error(nfs));
        verdict(bucket_has("ndir/dropped"), "and the child is still there", "gone");
    }

    /* chmod, chown, utimes on an uploaded file: the object's metadata follows. */
    if (make_file(&f, "attrs", 3000, 31) && uploaded(&f)) {
        verdict(nfs_chmod(nfs, "attrs", 0640) == 0, "chmod 0640", "%s", nfs_get_error(nfs));
        f.mode = S_IFREG | 0640;
        verify(&f, "chmod");
        verdict(nfs_chown(nfs, "attrs", 1234, 5678) == 0, "chown 1234:5678", "%s",
                nfs_get_error(nfs));
        f.uid = 1234;
        f.gid = 5678;
        verify(&f, "chown");
        struct timeval tv[2] = {{1234567890, 250000}, {1234567890, 500000}};
        verdict(nfs_utimes(nfs, "attrs", tv) == 0, "utimes to 1234567890.5", "%s",
                nfs_get_error(nfs));
        verdict(nfs_stat64(nfs, "attrs", &st) == 0 && st.nfs_mtime == 1234567890 &&
                    st.nfs_mtime_nsec == 500000000,
                "GETATTR shows the new mtime", "%" PRIu64 ".%09" PRIu64, st.nfs_mtime,
                st.nfs_mtime_nsec);
        w = (struct want){.data = f.data,
                          .len = f.len,
                          .mode = f.mode,
                          .uid = 1234,
                          .gid = 5678,
                          .mtime = true,
                          .mtime_sec = 1234567890,
                          .mtime_nsec = 500000000};
        wait_bucket("attrs", &w, "utimes: the object's mtime is 1234567890500000000ns");
    }
    m_free(&f);

    /* mkdir with a mode; symlink. */
    verdict(nfs_mkdir(nfs, "mk") == 0 && nfs_chmod(nfs, "mk", 0750) == 0, "mkdir mk, chmod 0750",
            "%s", nfs_get_error(nfs));
    w = (struct want){.mode = S_IFDIR | 0750, .uid = 0, .gid = 0};
    wait_bucket("mk", &w, "mk's marker in the bucket: mode 0040750, owner 0:0");
    verdict(nfs_symlink(nfs, "some/where/else", "ln") == 0, "symlink ln -> some/where/else", "%s",
            nfs_get_error(nfs));
    char target[256] = "";
    verdict(nfs_readlink(nfs, "ln", target, sizeof(target)) == 0 &&
                strcmp(target, "some/where/else") == 0,
            "READLINK returns the target", "'%s' %s", target, nfs_get_error(nfs));
    verdict(nfs_lstat64(nfs, "ln", &st) == 0 && S_ISLNK(st.nfs_mode) &&
                st.nfs_size == strlen("some/where/else"),
            "GETATTR: a symlink, size the target's length", "mode 0%" PRIo64 " size %" PRIu64,
            st.nfs_mode, st.nfs_size);
    /* The dir store makes an object of mode 0120777 a symlink (its xattrs cannot live there). */
    w = (struct want){.link = "some/where/else"};
    wait_bucket("ln", &w, "the symlink's object: the dir store's symlink to the target");
}

/* ---- errors ----------------------------------------------------------------------- */

static void mode_errors(const char *ro_export)
{
    struct xfh root, ro_root, file, dir, x, y;
    if (!verdict(mount_root("/demo", &root) == 0 && mount_root(ro_export, &ro_root) == 0,
                 "MNT /demo and the read-only export", "refused"))
        return;
    uint8_t buf[4096];
    pattern(buf, sizeof(buf), 0, 40);
    expect_stat(r_create(nfs, &root, "e-file", GUARDED, 0644, 0, &file), NFS3_OK,
                "GUARDED CREATE of a new name");
    struct call w;
    expect_stat(r_write(nfs, &file, 0, buf, sizeof(buf), FILE_SYNC, &w), NFS3_OK,
                "WRITE 4 KiB to it");
    expect_stat(r_mkdir(nfs, &root, "e-dir", &dir), NFS3_OK, "MKDIR e-dir");
    expect_stat(r_create(nfs, &dir, "inner", GUARDED, 0644, 0, NULL), NFS3_OK,
                "CREATE e-dir/inner");

    /* ACCESS: the write bits where the mode and the export allow writing (no execute: 0644). */
    const uint32_t file_rw = ACCESS3_READ | ACCESS3_MODIFY | ACCESS3_EXTEND;
    const uint32_t dir_rw =
        ACCESS3_READ | ACCESS3_LOOKUP | ACCESS3_MODIFY | ACCESS3_EXTEND | ACCESS3_DELETE;
    expect_access(nfs, &file, file_rw, "root's ACCESS to a 0644 file: READ, MODIFY, EXTEND");
    expect_access(nfs, &dir, dir_rw,
                  "root's ACCESS to a directory: READ, LOOKUP, MODIFY, "
                  "EXTEND, DELETE");

    /* EXIST */
    expect_stat(r_create(nfs, &root, "e-file", GUARDED, 0644, 0, NULL), NFS3ERR_EXIST,
                "GUARDED CREATE of an existing file: NFS3ERR_EXIST");
    expect_stat(r_create(nfs, &root, "e-dir", GUARDED, 0644, 0, NULL), NFS3ERR_EXIST,
                "GUARDED CREATE over a directory: NFS3ERR_EXIST");
    expect_stat(r_mkdir(nfs, &root, "e-dir", NULL), NFS3ERR_EXIST,
                "MKDIR of an existing directory: NFS3ERR_EXIST");
    expect_stat(r_mkdir(nfs, &root, "e-file", NULL), NFS3ERR_EXIST,
                "MKDIR over a file: NFS3ERR_EXIST");
    expect_stat(r_symlink(nfs, &root, "e-file", "t"), NFS3ERR_EXIST,
                "SYMLINK over a file: NFS3ERR_EXIST");
    if (expect_stat(r_create(nfs, &root, "e-file", UNCHECKED, 0644, 0, &x), NFS3_OK,
                    "UNCHECKED CREATE of an existing file: NFS3_OK")) {
        fattr3 a = {0};
        verdict(same_fh(&x, &file) && r_getattr(nfs, &x, &a) == NFS3_OK && a.size == 4096,
                "the same file, its bytes kept", "size %" PRIu64, (uint64_t)a.size);
    }
    /* EXCLUSIVE: the same verifier again is a retransmission, another one is EXIST. */
    uint64_t v1 = 0x1122334455667788ull, v2 = 0x99aabbccddeeff00ull;
    expect_stat(r_create(nfs, &root, "e-excl", EXCLUSIVE, 0, v1, &x), NFS3_OK, "EXCLUSIVE CREATE");
    if (expect_stat(r_create(nfs, &root, "e-excl", EXCLUSIVE, 0, v1, &y), NFS3_OK,
                    "EXCLUSIVE CREATE again with the same verifier: NFS3_OK"))
        verdict(same_fh(&x, &y), "the same file", "another handle");
    expect_stat(r_create(nfs, &root, "e-excl", EXCLUSIVE, 0, v2, NULL), NFS3ERR_EXIST,
                "EXCLUSIVE CREATE with another verifier: NFS3ERR_EXIST");
    expect_stat(r_create(nfs, &root, "e-file", EXCLUSIVE, 0, v1, NULL), NFS3ERR_EXIST,
                "EXCLUSIVE CREATE over a file made otherwise: NFS3ERR_EXIST");

    /* NOTEMPTY, ISDIR, NOTDIR, NOENT, INVAL */
    expect_stat(r_remove(nfs, &root, "e-dir", true), NFS3ERR_NOTEMPTY,
                "RMDIR of a non-empty directory: NFS3ERR_NOTEMPTY");
    expect_stat(r_mkdir(nfs, &root, "e-dir2", &y), NFS3_OK, "MKDIR e-dir2");
    expect_stat(r_create(nfs, &y, "f", GUARDED, 0644, 0, NULL), NFS3_OK, "CREATE e-dir2/f");
    expect_stat(r_rename(nfs, &root, "e-dir2", &root, "e-dir"), NFS3ERR_NOTEMPTY,
                "RENAME a directory over a non-empty one: NFS3ERR_NOTEMPTY");
    expect_stat(r_write(nfs, &dir, 0, buf, 10, UNSTABLE, &w), NFS3ERR_ISDIR,
                "WRITE to a directory: NFS3ERR_ISDIR");
    expect_stat(r_remove(nfs, &root, "e-dir", false), NFS3ERR_ISDIR,
                "REMOVE of a directory: NFS3ERR_ISDIR");
    expect_stat(r_commit(nfs, &dir, NULL), NFS3ERR_ISDIR, "COMMIT of a directory: NFS3ERR_ISDIR");
    expect_stat(r_rename(nfs, &root, "e-file", &root, "e-dir"), NFS3ERR_ISDIR,
                "RENAME a file over a directory: NFS3ERR_ISDIR");
    expect_stat(r_rename(nfs, &root, "e-dir2", &root, "e-file"), NFS3ERR_NOTDIR,
                "RENAME a directory over a file: NFS3ERR_NOTDIR");
    expect_stat(r_remove(nfs, &root, "e-file", true), NFS3ERR_NOTDIR,
                "RMDIR of a file: NFS3ERR_NOTDIR");
    expect_stat(r_lookup(nfs, &file, "x", NULL), NFS3ERR_NOTDIR,
                "LOOKUP in a file: NFS3ERR_NOTDIR");
    expect_stat(r_create(nfs, &file, "x", GUARDED, 0644, 0, NULL), NFS3ERR_NOTDIR,
                "CREATE in a file: NFS3ERR_NOTDIR");
    expect_stat(r_mkdir(nfs, &file, "x", NULL), NFS3ERR_NOTDIR, "MKDIR in a file: NFS3ERR_NOTDIR");
    expect_stat(r_remove(nfs, &root, "no-such", false), NFS3ERR_NOENT,
                "REMOVE of a missing name: NFS3ERR_NOENT");
    expect_stat(r_rename(nfs, &root, "no-such", &root, "other"), NFS3ERR_NOENT,
                "RENAME of a missing name: NFS3ERR_NOENT");
    expect_stat(r_rename(nfs, &root, "e-dir2", &y, "inside"), NFS3ERR_INVAL,
                "RENAME a directory into itself: NFS3ERR_INVAL");
    char longname[300];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    expect_stat(r_create(nfs, &root, longname, GUARDED, 0644, 0, NULL), NFS3ERR_NAMETOOLONG,
                "CREATE of a 299-byte name: NFS3ERR_NAMETOOLONG");

    /* NOT_SYNC: SETATTR guarded by a ctime that is not the file's. */
    fattr3 a = {0};
    if (expect_stat(r_getattr(nfs, &file, &a), NFS3_OK, "GETATTR e-file")) {
        sattr3 s = sattr_mode(0600);
        nfstime3 wrong = {a.ctime.seconds - 100, a.ctime.nseconds};
        expect_stat(r_setattr(nfs, &file, &s, &wrong), NFS3ERR_NOT_SYNC,
                    "SETATTR guarded by another ctime: NFS3ERR_NOT_SYNC");
        expect_stat(r_setattr(nfs, &file, &s, &a.ctime), NFS3_OK,
                    "SETATTR guarded by the file's ctime: NFS3_OK");
        fattr3 b = {0};
        verdict(r_getattr(nfs, &file, &b) == NFS3_OK && (b.mode & 07777) == 0600,
                "the mode changed once", "0%o", b.mode);
        s = sattr_mode(0644);
        expect_stat(r_setattr(nfs, &file, &s, NULL), NFS3_OK, "chmod back to 0644");
    }

    /* NOTSUPP: no hard links, no device nodes; nothing is made. */
    expect_stat(r_link(nfs, &file, &root, "e-hard"), NFS3ERR_NOTSUPP, "LINK: NFS3ERR_NOTSUPP");
    expect_stat(r_lookup(nfs, &root, "e-hard", NULL), NFS3ERR_NOENT, "and no e-hard appears");
    expect_stat(r_mknod_fifo(nfs, &root, "e-fifo"), NFS3ERR_NOTSUPP,
                "MKNOD of a FIFO: NFS3ERR_NOTSUPP");
    expect_stat(r_lookup(nfs, &root, "e-fifo", NULL), NFS3ERR_NOENT, "and no e-fifo appears");

    /* ACCES and PERM: uid 1000 against root's 0644 file in root's 0755 directory. */
    struct nfs_context *u = mount_as("/demo", FOREIGN_UID, FOREIGN_UID);
    if (verdict(u != NULL, "mount /demo as uid 1000", "failed")) {
        expect_access(u, &file, ACCESS3_READ, "uid 1000's ACCESS to root's 0644 file: READ");
        expect_access(u, &root, ACCESS3_READ | ACCESS3_LOOKUP,
                      "uid 1000's ACCESS to root's 0755 directory: READ, LOOKUP");
        expect_stat(r_write(u, &file, 0, buf, 10, FILE_SYNC, &w), NFS3ERR_ACCES,
                    "uid 1000 WRITE to root's 0644 file: NFS3ERR_ACCES");
        expect_stat(r_create(u, &root, "e-u", GUARDED, 0644, 0, NULL), NFS3ERR_ACCES,
                    "uid 1000 CREATE in root's 0755 directory: NFS3ERR_ACCES");
        expect_stat(r_remove(u, &root, "e-file", false), NFS3ERR_ACCES,
                    "uid 1000 REMOVE in root's 0755 directory: NFS3ERR_ACCES");
        expect_stat(r_rename(u, &root, "e-file", &root, "e-u"), NFS3ERR_ACCES,
                    "uid 1000 RENAME in root's 0755 directory: NFS3ERR_ACCES");
        sattr3 s = sattr_mode(0666);
        expect_stat(r_setattr(u, &file, &s, NULL), NFS3ERR_PERM,
                    "uid 1000 chmod of root's file: NFS3ERR_PERM");
        s.mode.set_it = 0;
        s.size.set_it = 1;
        s.size.set_size3_u.size = 0;
        expect_stat(r_setattr(u, &file, &s, NULL), NFS3ERR_ACCES,
                    "uid 1000 truncate of root's 0644 file: NFS3ERR_ACCES");
        fattr3 b = {0};
        verdict(r_getattr(nfs, &file, &b) == NFS3_OK && b.size == 4096 && (b.mode & 0777) == 0644,
                "root's file is unchanged", "size %" PRIu64 " mode 0%o", (uint64_t)b.size, b.mode);
        /* A 0444 file owned by uid 1000: its owner may still write (knfsd's override). */
        expect_stat(r_create(nfs, &root, "e-mine", GUARDED, 0444, 0, &x), NFS3_OK,
                    "CREATE e-mine 0444");
        s = sattr_owner(FOREIGN_UID, FOREIGN_UID);
        expect_stat(r_setattr(nfs, &x, &s, NULL), NFS3_OK, "root chowns it to 1000:1000");
        expect_stat(r_write(u, &x, 0, buf, 100, FILE_SYNC, &w), NFS3_OK,
                    "its owner writes to the 0444 file: NFS3_OK");
        s = sattr_owner(0, 0);
        expect_stat(r_setattr(u, &x, &s, NULL), NFS3ERR_PERM,
                    "its owner chowns it to root: NFS3ERR_PERM");
        s = sattr_mode(0600);
        expect_stat(r_setattr(u, &x, &s, NULL), NFS3_OK, "its owner chmods it: NFS3_OK");
        expect_stat(r_mkdir(nfs, &root, "e-open", &y), NFS3_OK, "MKDIR e-open");
        s = sattr_mode(0777);
        expect_stat(r_setattr(nfs, &y, &s, NULL), NFS3_OK, "chmod e-open 0777");
        expect_access(u, &y, dir_rw, "uid 1000's ACCESS to a 0777 directory: all but EXECUTE");
        expect_stat(r_create(u, &y, "by-1000", GUARDED, 0644, 0, &x), NFS3_OK,
                    "uid 1000 CREATE in a 0777 directory: NFS3_OK");
        verdict(r_getattr(nfs, &x, &b) == NFS3_OK && b.uid == FOREIGN_UID && b.gid == FOREIGN_UID,
                "the new file is owned by 1000:1000", "%u:%u", b.uid, b.gid);
        nfs_umount(u);
        nfs_destroy_context(u);
    }

    /* ROFS on the read-only export, for every kind of change. */
    struct nfs_context *ro = mount_as(ro_export, 0, 0);
    struct xfh seed;
    if (verdict(ro != NULL, "mount the read-only export", "failed") &&
        expect_stat(r_lookup(ro, &ro_root, "seed.txt", &seed), NFS3_OK, "LOOKUP seed.txt")) {
        expect_access(ro, &seed, ACCESS3_READ, "read-only export: root's ACCESS: READ only");
        expect_access(ro, &ro_root, ACCESS3_READ | ACCESS3_LOOKUP,
                      "read-only export: root's ACCESS to the root: READ, LOOKUP");
        expect_stat(r_create(ro, &ro_root, "new", GUARDED, 0644, 0, NULL), NFS3ERR_ROFS,
                    "read-only export: CREATE: NFS3ERR_ROFS");
        expect_stat(r_mkdir(ro, &ro_root, "new", NULL), NFS3ERR_ROFS,
                    "read-only export: MKDIR: NFS3ERR_ROFS");
        expect_stat(r_symlink(ro, &ro_root, "new", "t"), NFS3ERR_ROFS,
                    "read-only export: SYMLINK: NFS3ERR_ROFS");
        expect_stat(r_write(ro, &seed, 0, buf, 10, FILE_SYNC, &w), NFS3ERR_ROFS,
                    "read-only export: WRITE: NFS3ERR_ROFS");
        sattr3 s = sattr_mode(0600);
        expect_stat(r_setattr(ro, &seed, &s, NULL), NFS3ERR_ROFS,
                    "read-only export: SETATTR: NFS3ERR_ROFS");
        expect_stat(r_remove(ro, &ro_root, "seed.txt", false), NFS3ERR_ROFS,
                    "read-only export: REMOVE: NFS3ERR_ROFS");
        expect_stat(r_remove(ro, &ro_root, "empty-dir", true), NFS3ERR_ROFS,
                    "read-only export: RMDIR of an empty folder: NFS3ERR_ROFS");
        expect_stat(r_rename(ro, &ro_root, "seed.txt", &ro_root, "moved"), NFS3ERR_ROFS,
                    "read-only export: RENAME: NFS3ERR_ROFS");
        expect_stat(r_lookup(ro, &ro_root, "seed.txt", NULL), NFS3_OK,
                    "read-only export: seed.txt is still there");
        expect_stat(r_lookup(ro, &ro_root, "empty-dir", NULL), NFS3_OK,
                    "read-only export: empty-dir is still there");
    }
    if (ro) {
        nfs_umount(ro);
        nfs_destroy_context(ro);
    }
}

/* ---- retransmissions ---------------------------------------------------------------- */

/* Send one call with XID xid: set the context's next XID first. */
static void with_xid(struct nfs_context *n, uint32_t xid)
{
    rpc_set_next_xid(rpc_of(n), xid);
}

static void mode_retrans(void)
{
    struct xfh root, a, b;
    if (!verdict(mount_root("/demo", &root) == 0, "MNT /demo", "refused"))
        return;
    uint32_t xid = 0x5e000000u ^ ((uint32_t)getpid() << 8);
    /* CREATE GUARDED: run twice it would be EXIST the second time. */
    with_xid(nfs, xid);
    expect_stat(r_create(nfs, &root, "rt-file", GUARDED, 0644, 0, &a), NFS3_OK,
                "CREATE GUARDED rt-file");
    with_xid(nfs, xid);
    if (expect_stat(r_create(nfs, &root, "rt-file", GUARDED, 0644, 0, &b), NFS3_OK,
                    "the same CREATE again (same XID): the first reply, NFS3_OK"))
        verdict(same_fh(&a, &b), "with the same handle", "another handle");
    /*
     * Another connection comes from another port: another client process
     * that happens to use the same XID (libnfs tools run one after the
     * other do), whose call runs (the cache is keyed by address and port,
     * as Linux nfsd's; the Linux client reconnects from the same port).
     */
    struct nfs_context *n2 = mount_as("/demo", 0, 0);
    if (verdict(n2 != NULL, "a second connection (another port)", "mount failed")) {
        with_xid(n2, xid);
        expect_stat(r_create(n2, &root, "rt-file", GUARDED, 0644, 0, NULL), NFS3ERR_EXIST,
                    "the same CREATE from another port is a new call: NFS3ERR_EXIST");
    }
    /* The same XID with other arguments is a new call. */
    with_xid(nfs, xid);
    if (expect_stat(r_create(nfs, &root, "rt-other", GUARDED, 0644, 0, &b), NFS3_OK,
                    "the same XID with another name is a new CREATE"))
        verdict(!same_fh(&a, &b) && r_lookup(nfs, &root, "rt-other", NULL) == NFS3_OK,
                "which made rt-other", "not made");
    /* MKDIR */
    with_xid(nfs, xid + 1);
    expect_stat(r_mkdir(nfs, &root, "rt-dir", &a), NFS3_OK, "MKDIR rt-dir");
    with_xid(nfs, xid + 1);
    if (expect_stat(r_mkdir(nfs, &root, "rt-dir", &b), NFS3_OK,
                    "the same MKDIR again: NFS3_OK (not EXIST)"))
        verdict(same_fh(&a, &b), "with the same handle", "another handle");
    /* REMOVE: run twice it would be NOENT. */
    with_xid(nfs, xid + 2);
    expect_stat(r_remove(nfs, &root, "rt-other", false), NFS3_OK, "REMOVE rt-other");
    with_xid(nfs, xid + 2);
    expect_stat(r_remove(nfs, &root, "rt-other", false), NFS3_OK,
                "the same REMOVE again: NFS3_OK (not NOENT)");
    expect_stat(r_lookup(nfs, &root, "rt-other", NULL), NFS3ERR_NOENT, "rt-other is gone");
    /* RENAME */
    with_xid(nfs, xid + 3);
    expect_stat(r_rename(nfs, &root, "rt-file", &root, "rt-moved"), NFS3_OK,
                "RENAME rt-file rt-moved");
    with_xid(nfs, xid + 3);
    expect_stat(r_rename(nfs, &root, "rt-file", &root, "rt-moved"), NFS3_OK,
                "the same RENAME again: NFS3_OK (not NOENT)");
    if (n2) {
        with_xid(n2, xid + 3);
        expect_stat(r_rename(n2, &root, "rt-file", &root, "rt-moved"), NFS3ERR_NOENT,
                    "the same RENAME from another port is a new call: NFS3ERR_NOENT");
    }
    expect_stat(r_lookup(nfs, &root, "rt-moved", &b), NFS3_OK, "rt-moved is there");
    expect_stat(r_lookup(nfs, &root, "rt-file", NULL), NFS3ERR_NOENT, "rt-file is not");
    /* RMDIR */
    with_xid(nfs, xid + 4);
    expect_stat(r_remove(nfs, &root, "rt-dir", true), NFS3_OK, "RMDIR rt-dir");
    with_xid(nfs, xid + 4);
    expect_stat(r_remove(nfs, &root, "rt-dir", true), NFS3_OK,
                "the same RMDIR again: NFS3_OK (not NOENT)");
    if (n2) {
        nfs_umount(n2);
        nfs_destroy_context(n2);
    }
}

/* ---- the write verifier, COMMIT, durability, the dirty limit ------------------------ */

static void hex(char *out, const char v[NFS3_WRITEVERFSIZE])
{
    for (int i = 0; i < NFS3_WRITEVERFSIZE; i++)
        sprintf(out + 2 * i, "%02x", (unsigned char)v[i]);
}

/* CREATE name (UNCHECKED, truncated to 0) under root; its handle. */
static int open_new(const struct xfh *root, const char *name, struct xfh *f)
{
    int st = r_create(nfs, root, name, UNCHECKED, 0644, 0, f);
    if (st == NFS3_OK) {
        sattr3 s;
        memset(&s, 0, sizeof(s));
        s.size.set_it = 1;
        s.size.set_size3_u.size = 0;
        st = r_setattr(nfs, f, &s, NULL);
    }
    return st;
}

static void mode_verf(const char *name)
{
    struct xfh root, f;
    struct call w;
    char v1[17], v2[17];
    uint8_t buf[4096];
    pattern(buf, sizeof(buf), 0, 50);
    if (!verdict(mount_root("/demo", &root) == 0, "MNT /demo", "refused") ||
        !expect_stat(open_new(&root, name, &f), NFS3_OK, "CREATE the verifier's file"))
        return;
    if (!expect_stat(r_write(nfs, &f, 0, buf, sizeof(buf), UNSTABLE, &w), NFS3_OK,
                     "WRITE UNSTABLE"))
        return;
    char verf[NFS3_WRITEVERFSIZE];
    memcpy(verf, w.verf, sizeof(verf));
    hex(v1, verf);
    verdict(w.count == sizeof(buf), "all 4096 bytes written", "count %u", w.count);
    char cv[NFS3_WRITEVERFSIZE];
    if (expect_stat(r_commit(nfs, &f, cv), NFS3_OK, "COMMIT")) {
        hex(v2, cv);
        verdict(memcmp(cv, verf, sizeof(cv)) == 0, "COMMIT answers the WRITE's verifier",
                "WRITE %s, COMMIT %s", v1, v2);
    }
    if (expect_stat(r_write(nfs, &f, 4096, buf, sizeof(buf), FILE_SYNC, &w), NFS3_OK,
                    "WRITE FILE_SYNC")) {
        hex(v2, w.verf);
        verdict(w.committed == FILE_SYNC && memcmp(w.verf, verf, sizeof(verf)) == 0,
                "committed FILE_SYNC, the same verifier", "committed %d, verf %s", w.committed, v2);
    }
    if (expect_stat(r_write(nfs, &f, 8192, buf, sizeof(buf), DATA_SYNC, &w), NFS3_OK,
                    "WRITE DATA_SYNC")) {
        hex(v2, w.verf);
        verdict(w.committed != UNSTABLE && memcmp(w.verf, verf, sizeof(verf)) == 0,
                "committed DATA_SYNC or better, the same verifier", "committed %d, verf %s",
                w.committed, v2);
    }
    printf("verf %s\n", v1);
}

/* Copy a local file to name in UNSTABLE WRITEs of 1 MiB, then COMMIT. */
static void mode_put(const char *local, const char *name)
{
    struct xfh root, f;
    struct call w;
    char what[300];
    int fd = open(local, O_RDONLY);
    if (!verdict(fd >= 0, "open the local file", "%s: %s", local, strerror(errno)) ||
        !verdict(mount_root("/demo", &root) == 0, "MNT /demo", "refused")) {
        if (fd >= 0)
            close(fd);
        return;
    }
    snprintf(what, sizeof(what), "CREATE %s", name);
    if (!expect_stat(open_new(&root, name, &f), NFS3_OK, what)) {
        close(fd);
        return;
    }
    uint8_t *buf = malloc(MIB);
    uint64_t off = 0;
    char verf[NFS3_WRITEVERFSIZE];
    bool ok = true, same_verf = true;
    ssize_t n;
    while (ok && (n = read(fd, buf, MIB)) > 0) {
        int st = r_write(nfs, &f, off, buf, (uint32_t)n, UNSTABLE, &w);
        ok = st == NFS3_OK && w.count == (uint32_t)n;
        if (!ok)
            verdict(false, "WRITE UNSTABLE", "at %" PRIu64 ": %s, count %u", off, stat_name(st),
                    w.count);
        if (off == 0)
            memcpy(verf, w.verf, sizeof(verf));
        same_verf &= memcmp(verf, w.verf, sizeof(verf)) == 0;
        off += (uint64_t)n;
    }
    close(fd);
    free(buf);
    if (!ok)
        return;
    snprintf(what, sizeof(what), "%s: %" PRIu64 " bytes in UNSTABLE WRITEs", name, off);
    verdict(true, what, "");
    char cv[NFS3_WRITEVERFSIZE];
    snprintf(what, sizeof(what), "%s: COMMIT", name);
    if (expect_stat(r_commit(nfs, &f, cv), NFS3_OK, what)) {
        snprintf(what, sizeof(what), "%s: one verifier for every WRITE and the COMMIT", name);
        verdict(same_verf && (off == 0 || memcmp(cv, verf, sizeof(cv)) == 0), what, "it changed");
    }
}

static void mode_jukebox(const char *name, const char *out, unsigned max_mib)
{
    struct xfh root, f;
    struct call w;
    if (!verdict(mount_root("/demo", &root) == 0, "MNT /demo", "refused") ||
        !expect_stat(open_new(&root, name, &f), NFS3_OK, "CREATE the big file"))
        return;
    FILE *o = fopen(out, "w");
    if (!verdict(o != NULL, "open the expected-bytes file", "%s", strerror(errno)))
        return;
    uint8_t *buf = malloc(MIB);
    uint64_t acked = 0;
    int st = NFS3_OK;
    for (unsigned i = 0; i < max_mib; i++) {
        pattern(buf, MIB, acked, 60);
        st = r_write(nfs, &f, acked, buf, MIB, UNSTABLE, &w);
        if (st != NFS3_OK)
            break;
        if (w.count != MIB) {
            verdict(false, "WRITE UNSTABLE of 1 MiB", "count %u", w.count);
            break;
        }
        fwrite(buf, 1, MIB, o);
        acked += MIB;
    }
    fclose(o);
    printf("# %" PRIu64 " MiB acknowledged, then %s\n", acked / MIB, stat_name(st));
    verdict(st == NFS3ERR_JUKEBOX, "past cache.dirty_max a WRITE answers NFS3ERR_JUKEBOX",
            "%" PRIu64 " MiB written, then %s", acked / MIB, stat_name(st));
    verdict(acked >= 4 * MIB, "several MiB were acknowledged before", "%" PRIu64 " bytes", acked);
    /* The refused write changed nothing, and is refused again (nothing is uploaded yet). */
    fattr3 a = {0};
    verdict(r_getattr(nfs, &f, &a) == NFS3_OK && a.size == acked,
            "the refused WRITE did not change the size", "size %" PRIu64 ", acknowledged %" PRIu64,
            (uint64_t)a.size, acked);
    pattern(buf, MIB, acked, 60);
    expect_stat(r_write(nfs, &f, acked, buf, MIB, UNSTABLE, &w), NFS3ERR_JUKEBOX,
                "the same WRITE again: still NFS3ERR_JUKEBOX");
    struct xfh g;
    if (expect_stat(open_new(&root, "jukebox-small", &g), NFS3_OK, "CREATE still works (no data)"))
        expect_stat(r_write(nfs, &g, 0, buf, MIB, UNSTABLE, &w), NFS3ERR_JUKEBOX,
                    "a WRITE of 1 MiB to another file: NFS3ERR_JUKEBOX too");
    expect_stat(r_commit(nfs, &f, NULL), NFS3_OK, "COMMIT of what was acknowledged");
    /* Every acknowledged byte reads back. */
    struct model m;
    m_init(&m, name, 0644);
    m_resize(&m, acked);
    for (uint64_t off = 0; off < acked; off += MIB)
        pattern(m.data + off, MIB, off, 60);
    const char *why = nfs_differs(&m);
    verdict(why == NULL, "every acknowledged byte reads back through NFS", "%s", why);
    m_free(&m);
    free(buf);
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: it_write NFS_PORT MOUNT_PORT BUCKET_DIR MODE [ARGS]\n");
        return 2;
    }
    nfs_port = atoi(argv[1]);
    mount_port = atoi(argv[2]);
    bucket = argv[3];
    const char *mode = argv[4];
    nfs = mount_as("/demo", 0, 0);
    if (!nfs)
        return 2;
    double t0 = now();
    if (strcmp(mode, "files") == 0)
        mode_files();
    else if (strcmp(mode, "names") == 0)
        mode_names();
    else if (strcmp(mode, "errors") == 0 && argc == 6)
        mode_errors(argv[5]);
    else if (strcmp(mode, "retrans") == 0)
        mode_retrans();
    else if (strcmp(mode, "verf") == 0 && argc == 6)
        mode_verf(argv[5]);
    else if (strcmp(mode, "put") == 0 && argc == 7)
        mode_put(argv[5], argv[6]);
    else if (strcmp(mode, "jukebox") == 0 && argc == 8)
        mode_jukebox(argv[5], argv[6], (unsigned)atoi(argv[7]));
    else {
        fprintf(stderr, "it_write: unknown mode or arguments: %s\n", mode);
        return 2;
    }
    nfs_umount(nfs);
    nfs_destroy_context(nfs);
    printf("# %s took %.1f s\n", mode, now() - t0);
    printf("it_write %s: %d passed, %d failed\n", mode, passed, failed);
    return failed ? 1 : 0;
}
