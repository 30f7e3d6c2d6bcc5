/*
 * nfs3_proc.c - the NFS version 3 procedures (RFC 1813 section 3).
 *
 * Handlers are thin: check the file handle, find the export, apply the
 * export's client list and squashing, ask the inode table or the object
 * store, and always set a status.  Every reply carries the post-op
 * attributes RFC 1813 allows, so clients revalidate without extra GETATTRs.
 *
 * The write path: SETATTR, WRITE, CREATE, MKDIR, SYMLINK, REMOVE, RMDIR,
 * RENAME and COMMIT go to meta/fileio.h (the table, the stage, the
 * uploader); an `ro` export or client gets NFS3ERR_ROFS for each.  LINK
 * and MKNOD answer NFS3ERR_NOTSUPP: objects have no hard links and no
 * device nodes, sockets or FIFOs.
 *
 * Threads: handlers run on the RPC worker threads, many at once; they share
 * only the nfs3_server (read-only) and the modules below, which lock
 * themselves.  Reply memory comes from the request arena (rpc_alloc).
 * GETATTR, LOOKUP and ACCESS also have a handler_nowait, which the RPC event
 * loop may run itself: the same code with call.nowait set, asking the inode
 * table's _nowait functions, and giving the call back to a worker
 * (RPC_HANDLER_WOULDBLOCK) when the answer needs the object store.
 */
#include "nfsd/nfs3.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/log.h"
#include "nfs3_prot.h"
#include "nfsd/nfs3_xdr.h"
#include "cache/cache.h"
#include "meta/fileio.h"
#include "meta/writeback.h"
#include "objstore/objstore.h"

#define NFS3_MAX_FILESIZE (5ull << 40) /* S3's largest object: 5 TiB */
#define NFS3_DTPREF (64u * 1024u)

/* One call's view: handle decoded, export found, caller's identity squashed. */
struct call {
    struct nfs3_server *srv;
    struct rpc_req *req;
    const struct export_set *set;
    const struct export *exp;
    struct fh fh;
    bool rw;                   /* this client may write (its `clients` entry, or the export) */
    enum conf_squash squash;   /* and is squashed so */
    uint32_t uid, gid, ngids;
    const uint32_t *gids;
    bool nowait; /* on the event loop: never wait on the store (EWOULDBLOCK instead) */
};

static void call_squash(struct call *c)
{
    const struct rpc_cred *cr = &c->req->cred;
    const struct export *e = c->exp;
    bool anon = cr->flavor != AUTH_SYS || c->squash == CONF_SQUASH_ALL ||
                (c->squash == CONF_SQUASH_ROOT && cr->uid == 0);
    if (anon) {
        c->uid = e->anon_uid;
        c->gid = e->anon_gid;
        c->ngids = 0;
        c->gids = NULL;
        return;
    }
    c->uid = cr->uid;
    c->gid = cr->gid;
    c->ngids = cr->ngids;
    c->gids = cr->gids;
}

/* One audit line per refused call, rate-limited (a client can cause them at will). */
static void refused(const struct sockaddr *peer, const struct export *e, const char *why)
{
    static struct log_rate rate;
    unsigned held = 0;
    if (LOG_NOTICE > log_level || !log_rate_ok(&rate, &held))
        return;
    char addr[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (peer->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)peer)->sin_addr, addr, sizeof(addr));
        port = ntohs(((const struct sockaddr_in *)peer)->sin_port);
    } else if (peer->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)peer)->sin6_addr, addr, sizeof(addr));
        port = ntohs(((const struct sockaddr_in6 *)peer)->sin6_port);
    }
    log_msg(LOG_NOTICE, "nfs: refused a call from %s port %u to export %s: %s%s", addr, port,
            e->path, why, held ? " (and earlier refusals not logged)" : "");
}

/*
 * Decode the handle and find its export.  Returns 0, EBADMSG (forged or
 * malformed: BADHANDLE), ESTALE (no such export any more) or EACCES (this
 * client is not in the export's list).  call_end must follow in every case.
 */
static int call_begin(struct rpc_req *req, const nfs_fh3 *h, struct call *c, bool nowait)
{
    memset(c, 0, sizeof(*c));
    c->nowait = nowait;
    c->srv = req->prog_ctx;
    c->req = req;
    int err = fh_decode(c->srv->fh_key, (const uint8_t *)h->data.data_val, h->data.data_len,
                        &c->fh);
    if (err)
        return err;
    c->set = export_set_get(c->srv->exports);
    c->exp = export_by_id(c->set, c->fh.export_id);
    if (!c->exp)
        return ESTALE;
    const struct sockaddr *peer = (const struct sockaddr *)&req->peer;
    if (!export_client_opts(c->exp, peer, &c->rw, &c->squash)) {
        refused(peer, c->exp, "not in its clients");
        return EACCES;
    }
    if (c->exp->secure && !export_port_secure(peer)) {
        refused(peer, c->exp, "from an unprivileged port (the export is secure)");
        return EACCES;
    }
    call_squash(c);
    return 0;
}

static void call_end(struct call *c)
{
    if (c->set)
        export_set_put(c->srv->exports, c->set);
}

/*
 * Attributes of inode ino of the call's export; ESTALE if the generation
 * moved on; EWOULDBLOCK for a nowait call that needs the store.
 */
static int call_getattr(struct call *c, uint64_t ino, uint32_t gen, struct inode_attr *a)
{
    int err = c->nowait ? inode_getattr_nowait(c->srv->inodes, &c->exp->m, ino, a)
                        : inode_getattr(c->srv->inodes, &c->exp->m, ino, a);
    if (!err && a->gen != gen)
        err = ESTALE;
    return err;
}

/* Attributes of the object the call's handle names. */
static int call_attr(struct call *c, struct inode_attr *a)
{
    return call_getattr(c, c->fh.ino, c->fh.gen, a);
}

/* call_begin, then the attributes of the handle's object: the prologue of most handlers. */
static int call_open(struct rpc_req *req, const nfs_fh3 *h, struct call *c, bool nowait,
                     struct inode_attr *a)
{
    int err = call_begin(req, h, c, nowait);
    return err ? err : call_attr(c, a);
}

static ftype3 attr_type(uint32_t mode)
{
    switch (mode & S_IFMT) {
    case S_IFDIR:
        return NF3DIR;
    case S_IFLNK:
        return NF3LNK;
    default:
        return NF3REG;
    }
}

void nfs3_fattr(fattr3 *f, const struct inode_attr *a)
{
    f->type = attr_type(a->mode);
    f->mode = a->mode & 07777;
    f->nlink = a->nlink;
    f->uid = a->uid;
    f->gid = a->gid;
    f->size = a->size;
    f->used = (a->size + 4095) & ~(uint64_t)4095;
    f->rdev.specdata1 = 0;
    f->rdev.specdata2 = 0;
    f->fsid = a->export_id;
    f->fileid = a->ino;
    f->mtime.seconds = (uint32_t)a->mtime_sec;
    f->mtime.nseconds = a->mtime_nsec;
    f->atime = f->mtime; /* objects keep no access time */
    f->ctime.seconds = (uint32_t)a->ctime_sec;
    f->ctime.nseconds = a->ctime_nsec;
}

static void post_op(post_op_attr *p, const struct inode_attr *a)
{
    p->attributes_follow = a != NULL;
    if (a)
        nfs3_fattr(&p->post_op_attr_u.attributes, a);
}

void nfs3_handle(struct nfs3_server *srv, struct rpc_req *req, const struct inode_attr *a,
                 nfs_fh3 *out)
{
    struct fh fh = {.export_id = a->export_id, .ino = a->ino, .gen = a->gen};
    uint8_t *buf = rpc_alloc(req, FH_SIZE);
    fh_encode(srv->fh_key, &fh, buf);
    out->data.data_val = (char *)buf;
    out->data.data_len = FH_SIZE;
}

static bool in_group(const struct call *c, uint32_t gid)
{
    if (c->gid == gid)
        return true;
    for (uint32_t i = 0; i < c->ngids; i++)
        if (c->gids[i] == gid)
            return true;
    return false;
}

/* The rwx bits (4/2/1) the caller holds on an object, by its mode and owner. */
static uint32_t perm_bits(const struct call *c, const struct inode_attr *a)
{
    if (c->uid == 0) {
        /* root may read and write anything; execute needs some x bit (or a dir) */
        bool x = S_ISDIR(a->mode) || (a->mode & 0111);
        return 6u | (x ? 1u : 0u);
    }
    if (c->uid == a->uid)
        return (a->mode >> 6) & 7;
    if (in_group(c, a->gid))
        return (a->mode >> 3) & 7;
    return a->mode & 7;
}

/*
 * The ACCESS3 bits granted, from the mode bits and the caller's identity,
 * as the mutating procedures check them (may_write_file, may_change_dir).
 * The write bits only for a client that may write: the Linux client decides
 * open-for-write and truncate() from this reply alone, and refuses them with
 * EACCES; granting them and refusing the WRITE later would let
 * `echo x >> file` "succeed" with the data in the client's page cache and
 * the error reaching only close(), which most programs ignore.  The owner
 * override of WRITE is not granted here: a process that created a 0444 file
 * writes it through the descriptor it created it with, which the client does
 * not check against ACCESS (RFC 1813 3.3.4: the server may still refuse).
 */
static uint32_t access_bits(const struct call *c, const struct inode_attr *a, uint32_t want)
{
    uint32_t p = perm_bits(c, a), got = 0;
    bool dir = S_ISDIR(a->mode);
    if (p & 4)
        got |= ACCESS3_READ;
    if (p & 1)
        got |= dir ? ACCESS3_LOOKUP : ACCESS3_EXECUTE;
    if (c->rw && dir && (p & 3) == 3)
        got |= ACCESS3_MODIFY | ACCESS3_EXTEND | ACCESS3_DELETE;
    else if (c->rw && !dir && (p & 2))
        got |= ACCESS3_MODIFY | ACCESS3_EXTEND;
    return got & want;
}

/* ---- NULL ---- */

static enum rpc_handler_status nfs3_null(struct rpc_req *req, void *args, void *res)
{
    return RPC_HANDLER_OK;
}

/* ---- GETATTR ---- */

static enum rpc_handler_status getattr_run(struct rpc_req *req, void *args, void *res, bool nowait)
{
    GETATTR3args *a = args;
    GETATTR3res *r = res;
    struct call c;
    struct inode_attr attr;
    int err = call_open(req, &a->object, &c, nowait, &attr);
    if (nowait && err == EWOULDBLOCK) {
        call_end(&c);
        return RPC_HANDLER_WOULDBLOCK;
    }
    r->status = nfs3_stat(err);
    if (!err)
        nfs3_fattr(&r->GETATTR3res_u.resok.obj_attributes, &attr);
    call_end(&c);
    return RPC_HANDLER_OK;
}

static enum rpc_handler_status nfs3_getattr(struct rpc_req *req, void *args, void *res)
{
    return getattr_run(req, args, res, false);
}

static enum rpc_handler_status nfs3_getattr_nowait(struct rpc_req *req, void *args, void *res)
{
    return getattr_run(req, args, res, true);
}

/* ---- LOOKUP ---- */

/*
 * LOOKUP's fast path: one pass through the table (the directory is read
 * once, not once for its checks and again for the lookup), with the
 * directory's checks made afterwards on the attributes that pass returned.
 * Only a hit, or a miss in a searchable directory, is answered here; any
 * other outcome is EWOULDBLOCK, and the worker's LOOKUP answers it with the
 * checks in their order.
 */
static int lookup_nowait(struct call *c, const char *name, struct inode_attr *obj,
                         struct inode_attr *dir)
{
    if (strlen(name) > INODE_NAME_MAX)
        return EWOULDBLOCK;
    int err = inode_lookup_nowait(c->srv->inodes, &c->exp->m, c->fh.ino, name, obj, dir);
    if (err != 0 && err != ENOENT)
        return EWOULDBLOCK;
    if (dir->gen != c->fh.gen || !S_ISDIR(dir->mode) || !(perm_bits(c, dir) & 1))
        return EWOULDBLOCK;
    return err;
}

static enum rpc_handler_status lookup_run(struct rpc_req *req, void *args, void *res, bool nowait)
{
    LOOKUP3args *a = args;
    LOOKUP3res *r = res;
    struct call c;
    struct inode_attr dir, obj;
    bool have_dir = false;
    int err = call_begin(req, &a->what.dir, &c, nowait);
    if (!err && nowait) {
        err = lookup_nowait(&c, a->what.name, &obj, &dir);
        have_dir = err == 0 || err == ENOENT;
    } else if (!err) {
        err = call_attr(&c, &dir);
        if (!err) {
            have_dir = true;
            if (!S_ISDIR(dir.mode))
                err = ENOTDIR;
            else if (!(perm_bits(&c, &dir) & 1))
                err = EACCES; /* search permission on the directory */
        }
        if (!err && strlen(a->what.name) > INODE_NAME_MAX)
            err = ENAMETOOLONG;
        if (!err)
            err = inode_lookup(c.srv->inodes, &c.exp->m, dir.ino, a->what.name, &obj, &dir);
    }
    if (nowait && err == EWOULDBLOCK) {
        call_end(&c);
        return RPC_HANDLER_WOULDBLOCK;
    }
    r->status = nfs3_stat(err);
    if (!err) {
        LOOKUP3resok *ok = &r->LOOKUP3res_u.resok;
        nfs3_handle(c.srv, req, &obj, &ok->object);
        post_op(&ok->obj_attributes, &obj);
        post_op(&ok->dir_attributes, &dir);
    } else {
        post_op(&r->LOOKUP3res_u.resfail.dir_attributes, have_dir ? &dir : NULL);
    }
    call_end(&c);
    return RPC_HANDLER_OK;
}

static enum rpc_handler_status nfs3_lookup(struct rpc_req *req, void *args, void *res)
{
    return lookup_run(req, args, res, false);
}

static enum rpc_handler_status nfs3_lookup_nowait(struct rpc_req *req, void *args, void *res)
{
    return lookup_run(req, args, res, true);
}

/* ---- ACCESS ---- */

static enum rpc_handler_status access_run(struct rpc_req *req, void *args, void *res, bool nowait)
{
    ACCESS3args *a = args;
    ACCESS3res *r = res;
    struct call c;
    struct inode_attr attr;
    int err = call_open(req, &a->object, &c, nowait, &attr);
    if (nowait && err == EWOULDBLOCK) {
        call_end(&c);
        return RPC_HANDLER_WOULDBLOCK;
    }
    r->status = nfs3_stat(err);
    if (!err) {
        post_op(&r->ACCESS3res_u.resok.obj_attributes, &attr);
        r->ACCESS3res_u.resok.access = access_bits(&c, &attr, a->access);
    } else {
        post_op(&r->ACCESS3res_u.resfail.obj_attributes, NULL);
    }
    call_end(&c);
    return RPC_HANDLER_OK;
}

static enum rpc_handler_status nfs3_access(struct rpc_req *req, void *args, void *res)
{
    return access_run(req, args, res, false);
}

static enum rpc_handler_status nfs3_access_nowait(struct rpc_req *req, void *args, void *res)
{
    return access_run(req, args, res, true);
}

/* ---- READLINK ---- */

static enum rpc_handler_status nfs3_readlink(struct rpc_req *req, void *args, void *res)
{
    READLINK3args *a = args;
    READLINK3res *r = res;
    struct call c;
    struct meta_read mr = {0};
    bool have = false;
    char *target = NULL;
    int err = call_open(req, &a->symlink, &c, false, &mr.attr);
    if (!err) {
        have = true;
        if (!S_ISLNK(mr.attr.mode))
            err = EINVAL; /* RFC 1813: READLINK on a non-symlink */
        else if (mr.attr.size > 4095)
            err = ENAMETOOLONG;
    }
    if (!err) {
        /* A link target is a small object: the cache serves it like file data. */
        target = rpc_alloc(req, mr.attr.size + 1);
        mr.t = c.srv->inodes;
        mr.cache = c.srv->cache;
        mr.stage = c.srv->stage;
        mr.e = &c.exp->m;
        mr.len = mr.attr.size;
        mr.buf = target;
        err = meta_read(&mr);
        if (!err && (mr.got != mr.attr.size || memchr(target, 0, mr.got)))
            err = EIO; /* not a path */
        if (!err)
            target[mr.got] = 0;
    }
    r->status = nfs3_stat(err);
    if (!err) {
        post_op(&r->READLINK3res_u.resok.symlink_attributes, &mr.attr);
        r->READLINK3res_u.resok.data = target;
    } else {
        post_op(&r->READLINK3res_u.resfail.symlink_attributes, have ? &mr.attr : NULL);
    }
    call_end(&c);
    return RPC_HANDLER_OK;
}

/* ---- READ ---- */

/*
 * A READ in progress: lives in the call's arena until the reply is sent.
 * A hit is answered by the handler; a miss returns RPC_HANDLER_ASYNC and is
 * answered from the cache's fetch thread (read_done), so no worker waits
 * on the store.
 */
struct read_call {
    struct call c;
    struct meta_read mr;
    bool have; /* mr.attr holds the file's attributes */
    struct rpc_req *req;
    READ3res *res;
};

/* Fill the reply from the read's outcome and release the call's export. */
static void read_reply(struct read_call *x, int err)
{
    READ3res *r = x->res;
    r->status = nfs3_stat(err);
    if (!err) {
        READ3resok *ok = &r->READ3res_u.resok;
        post_op(&ok->file_attributes, &x->mr.attr);
        ok->count = (uint32_t)x->mr.got;
        ok->eof = x->mr.eof;
        ok->data.data_len = (u_int)x->mr.got;
        ok->data.data_val = x->mr.buf;
    } else {
        post_op(&r->READ3res_u.resfail.file_attributes, x->have ? &x->mr.attr : NULL);
    }
    call_end(&x->c);
}

static void read_done(struct meta_read *mr, int err)
{
    struct read_call *x = mr->arg;
    atomic_fetch_sub(&x->c.srv->async_read_bytes, mr->len);
    read_reply(x, err);
    rpc_complete(x->req, RPC_HANDLER_OK);
}

/* Cached blocks held for a reply sent from the cache's files; freed when it has left. */
struct seg_hold {
    struct cache *cache;
    struct cache_seg segs[CACHE_SEGS_MAX];
    unsigned n;
};

static void seg_hold_done(void *arg)
{
    struct seg_hold *h = arg;
    cache_put_segs(h->cache, h->segs, h->n);
    free(h);
}

/*
 * A hit sent without copying: when every byte of the READ is cached, the
 * reply's data goes from the cache's files to the socket with sendfile.
 * Returns 0 with the reply filled, or EWOULDBLOCK (nothing held): copy it.
 */
static int read_from_files(struct read_call *x, struct nfs3_read_res *res)
{
    _Static_assert(CACHE_SEGS_MAX <= RPC_FILESEGS_MAX, "segments per READ");
    struct seg_hold *h = malloc(sizeof(*h));
    if (!h)
        return EWOULDBLOCK;
    h->cache = x->c.srv->cache;
    if (meta_read_segs(&x->mr, h->segs, CACHE_SEGS_MAX, &h->n) != 0) {
        free(h);
        return EWOULDBLOCK;
    }
    struct rpc_fileseg fs[RPC_FILESEGS_MAX];
    for (unsigned i = 0; i < h->n; i++)
        fs[i] = (struct rpc_fileseg){.fd = h->segs[i].fd, .off = h->segs[i].off,
                                     .len = h->segs[i].len};
    if (rpc_reply_filesegs(x->req, fs, h->n, seg_hold_done, h) != 0) {
        seg_hold_done(h);
        return EWOULDBLOCK;
    }
    res->data_in_files = true;
    x->mr.buf = NULL;
    read_reply(x, 0);
    return 0;
}

/*
 * READ; nowait (the event loop): answered only when every byte is cached,
 * else RPC_HANDLER_WOULDBLOCK and a worker runs it.
 */
static enum rpc_handler_status read_run(struct rpc_req *req, void *args, void *res, bool nowait)
{
    READ3args *a = args;
    struct read_call *x = rpc_alloc(req, sizeof(*x));
    struct meta_read *mr = &x->mr;
    x->req = req;
    x->res = res;
    int err = call_open(req, &a->file, &x->c, nowait, &mr->attr);
    if (!err) {
        x->have = true;
        if (S_ISDIR(mr->attr.mode))
            err = EISDIR;
        else if (!S_ISREG(mr->attr.mode))
            err = EINVAL;
        /* The owner may always read (open-then-chmod); others need r or x. */
        else if (x->c.uid != mr->attr.uid && !(perm_bits(&x->c, &mr->attr) & 5))
            err = EACCES;
    }
    if (!err) {
        uint32_t count = a->count > NFS3_MAX_IO ? NFS3_MAX_IO : a->count;
        if (a->offset < mr->attr.size && count > mr->attr.size - a->offset)
            count = (uint32_t)(mr->attr.size - a->offset);
        if (a->offset >= mr->attr.size)
            count = 0;
        mr->t = x->c.srv->inodes;
        mr->cache = x->c.srv->cache;
        mr->stage = x->c.srv->stage;
        mr->xf = x->c.srv->xf;
        mr->e = &x->c.exp->m;
        mr->off = a->offset;
        mr->len = count;
        if (req->tcp && read_from_files(x, res) == 0)
            return RPC_HANDLER_OK;
        mr->buf = count ? rpc_alloc(req, count) : NULL;
        mr->arg = x;
        mr->nowait = nowait;
        /*
         * A READ waiting on the store holds its reply buffer: at most
         * NFS3_ASYNC_READ_MAX bytes of them are parked at once.  Past that
         * the worker waits for its fetch itself, so the worker threads
         * bound the rest (back-pressure, not unbounded memory).
         */
        bool parked = !nowait && atomic_fetch_add(&x->c.srv->async_read_bytes, count) + count <=
                                     NFS3_ASYNC_READ_MAX;
        if (!nowait && !parked)
            atomic_fetch_sub(&x->c.srv->async_read_bytes, count);
        mr->done = parked ? read_done : NULL;
        err = meta_read(mr);
        if (err == EINPROGRESS)
            return RPC_HANDLER_ASYNC;
        if (parked)
            atomic_fetch_sub(&x->c.srv->async_read_bytes, count);
    }
    if (nowait && err == EWOULDBLOCK) {
        call_end(&x->c);
        return RPC_HANDLER_WOULDBLOCK;
    }
    read_reply(x, err);
    return RPC_HANDLER_OK;
}

static enum rpc_handler_status nfs3_read(struct rpc_req *req, void *args, void *res)
{
    return read_run(req, args, res, false);
}

static enum rpc_handler_status nfs3_read_nowait(struct rpc_req *req, void *args, void *res)
{
    return read_run(req, args, res, true);
}

/* ---- READDIR / READDIRPLUS ---- */

struct readdir_fill {
    struct call *c;
    struct nfs3_dirlist *list;
    size_t space; /* bytes of reply left for entries */
};

static int readdir_cb(void *arg, const char *name, uint64_t cookie, const struct inode_attr *a)
{
    struct readdir_fill *f = arg;
    size_t len = strlen(name);
    size_t need = nfs3_dirent_size(len, f->list->plus);
    if (need > f->space)
        return 1; /* reply full: the client continues from the last cookie */
    struct nfs3_dirent *d = rpc_alloc(f->c->req, sizeof(*d) + len + 1);
    f->space -= need;
    d->fileid = a->ino;
    d->cookie = cookie;
    memcpy(d->name, name, len + 1);
    if (f->list->plus) {
        /*
         * Attributes a listing only guessed (S3 lists no POSIX metadata)
         * whose HEAD failed are left out: the client caches what
         * READDIRPLUS sends, and without them it asks GETATTR, which HEADs
         * the object again.
         */
        d->have_attr = !a->unconfirmed;
        nfs3_fattr(&d->attr, a);
        struct fh fh = {.export_id = a->export_id, .ino = a->ino, .gen = a->gen};
        fh_encode(f->c->srv->fh_key, &fh, d->fh);
    }
    if (f->list->tail)
        f->list->tail->next = d;
    else
        f->list->head = d;
    f->list->tail = d;
    f->list->n++;
    return 0;
}

/*
 * READDIR and READDIRPLUS share everything but the entry size and content.
 * maxcount bounds the whole reply (RFC 1813 3.3.16/3.3.17); like Linux
 * nfsd, READDIRPLUS replies are sized by maxcount alone (dircount is a hint).
 */
static void readdir_common(struct rpc_req *req, const nfs_fh3 *h, uint64_t cookie,
                           uint32_t maxcount, bool plus, struct nfs3_readdir_res *r)
{
    struct call c;
    struct inode_attr dir;
    bool have = false, too_small = false, bad_cookie = false;
    int err = call_open(req, h, &c, false, &dir);
    if (!err) {
        have = true;
        if (!S_ISDIR(dir.mode))
            err = ENOTDIR;
        else if (!(perm_bits(&c, &dir) & 4))
            err = EACCES;
    }
    if (maxcount > NFS3_MAX_IO)
        maxcount = NFS3_MAX_IO;
    if (!err && maxcount < nfs3_readdir_fixed_size())
        too_small = true;
    if (!err && !too_small) {
        struct readdir_fill f = {.c = &c, .list = &r->list,
                                 .space = maxcount - nfs3_readdir_fixed_size()};
        r->list.plus = plus;
        /* READDIRPLUS: attributes still to be confirmed are HEADed first, in parallel. */
        err = (plus ? inode_readdirplus : inode_readdir)(c.srv->inodes, &c.exp->m, dir.ino,
                                                         cookie, readdir_cb, &f, &r->list.eof,
                                                         &r->verf);
        if (err == EINVAL)
            bad_cookie = true; /* the entry the cookie named is gone */
        else if (!err && r->list.n == 0 && !r->list.eof)
            too_small = true; /* not even one entry fits */
    }
    if (bad_cookie)
        r->status = NFS3ERR_BAD_COOKIE;
    else if (too_small)
        r->status = NFS3ERR_TOOSMALL;
    else
        r->status = nfs3_stat(err);
    r->have_dir = have;
    if (have)
        nfs3_fattr(&r->dir, &dir);
    call_end(&c);
}

static enum rpc_handler_status nfs3_readdir(struct rpc_req *req, void *args, void *res)
{
    READDIR3args *a = args;
    readdir_common(req, &a->dir, a->cookie, a->count, false, res);
    return RPC_HANDLER_OK;
}

static enum rpc_handler_status nfs3_readdirplus(struct rpc_req *req, void *args, void *res)
{
    READDIRPLUS3args *a = args;
    readdir_common(req, &a->dir, a->cookie, a->maxcount, true, res);
    return RPC_HANDLER_OK;
}

/* ---- FSSTAT / FSINFO / PATHCONF ---- */

static enum rpc_handler_status nfs3_fsstat(struct rpc_req *req, void *args, void *res)
{
    FSSTAT3args *a = args;
    FSSTAT3res *r = res;
    struct call c;
    struct inode_attr attr;
    int err = call_open(req, &a->fsroot, &c, false, &attr);
    r->status = nfs3_stat(err);
    if (!err) {
        /*
         * A bucket has no capacity to report: advertise 1 PiB and 2^32
         * files, nothing free on this read-only server.
         */
        FSSTAT3resok *ok = &r->FSSTAT3res_u.resok;
        post_op(&ok->obj_attributes, &attr);
        ok->tbytes = 1ull << 50;
        ok->fbytes = c.rw ? ok->tbytes : 0;
        ok->abytes = ok->fbytes;
        ok->tfiles = 1ull << 32;
        ok->ffiles = c.rw ? ok->tfiles : 0;
        ok->afiles = ok->ffiles;
        ok->invarsec = 0;
    } else {
        post_op(&r->FSSTAT3res_u.resfail.obj_attributes, NULL);
    }
    call_end(&c);
    return RPC_HANDLER_OK;
}

static enum rpc_handler_status nfs3_fsinfo(struct rpc_req *req, void *args, void *res)
{
    FSINFO3args *a = args;
    FSINFO3res *r = res;
    struct call c;
    struct inode_attr attr;
    int err = call_open(req, &a->fsroot, &c, false, &attr);
    r->status = nfs3_stat(err);
    if (!err) {
        FSINFO3resok *ok = &r->FSINFO3res_u.resok;
        post_op(&ok->obj_attributes, &attr);
        ok->rtmax = ok->rtpref = NFS3_MAX_IO;
        ok->wtmax = ok->wtpref = NFS3_MAX_IO;
        ok->rtmult = ok->wtmult = 4096;
        ok->dtpref = NFS3_DTPREF;
        ok->maxfilesize = NFS3_MAX_FILESIZE;
        ok->time_delta.seconds = 0;
        ok->time_delta.nseconds = 1;
        /* No hard links in an object store; symlinks are objects (File Cache layout). */
        ok->properties = FSF3_SYMLINK | FSF3_HOMOGENEOUS | FSF3_CANSETTIME;
    } else {
        post_op(&r->FSINFO3res_u.resfail.obj_attributes, NULL);
    }
    call_end(&c);
    return RPC_HANDLER_OK;
}

static enum rpc_handler_status nfs3_pathconf(struct rpc_req *req, void *args, void *res)
{
    PATHCONF3args *a = args;
    PATHCONF3res *r = res;
    struct call c;
    struct inode_attr attr;
    int err = call_open(req, &a->object, &c, false, &attr);
    r->status = nfs3_stat(err);
    if (!err) {
        PATHCONF3resok *ok = &r->PATHCONF3res_u.resok;
        post_op(&ok->obj_attributes, &attr);
        ok->linkmax = 1;
        ok->name_max = INODE_NAME_MAX;
        ok->no_trunc = TRUE;
        ok->chown_restricted = TRUE;
        ok->case_insensitive = FALSE;
        ok->case_preserving = TRUE;
    } else {
        post_op(&r->PATHCONF3res_u.resfail.obj_attributes, NULL);
    }
    call_end(&c);
    return RPC_HANDLER_OK;
}

/* ---- the mutating procedures ---- */

/*
 * Permission checks, made on every call from the caller's (squashed)
 * identity and the object's mode bits, as ACCESS answers them:
 *   - nothing changes through a client (or export) that is not `rw`: EROFS;
 *   - making, removing or renaming an entry needs write and search
 *     permission on the directory (EACCES);
 *   - WRITE and a size change need write permission on the file, or to be
 *     its owner: a file created with mode 0444 is written by the process
 *     that created it (cp, tar), as the Linux server allows (owner override);
 *   - chmod and times set to a given value: the owner or root (EPERM);
 *     chown: root only; chgrp: the owner, to a group it is in; times set to
 *     "now": the owner, root, or whoever may write.
 */
static int may_modify(const struct call *c)
{
    return c->rw ? 0 : EROFS;
}

static int may_change_dir(const struct call *c, const struct inode_attr *dir)
{
    if (!c->rw)
        return EROFS;
    if (!S_ISDIR(dir->mode))
        return ENOTDIR;
    return (perm_bits(c, dir) & 3) == 3 ? 0 : EACCES;
}

/*
 * The sticky bit of a directory (/tmp): only root, the directory's owner and
 * the entry's owner may remove or rename the entry name (EPERM), as on a
 * local file system.  A name that is not there passes: the call itself says
 * ENOENT.
 */
static int may_delete(const struct call *c, uint64_t dir_ino, const struct inode_attr *dir,
                      const char *name)
{
    if (!(dir->mode & S_ISVTX) || c->uid == 0 || c->uid == dir->uid || !strcmp(name, ".") ||
        !strcmp(name, ".."))
        return 0;
    struct inode_attr obj, d;
    int err = inode_lookup(c->srv->inodes, &c->exp->m, dir_ino, name, &obj, &d);
    if (err == ENOENT)
        return 0;
    if (err)
        return err;
    return obj.uid == c->uid ? 0 : EPERM;
}

/*
 * The bits a WRITE by anyone but root clears: set-user-id, and set-group-id
 * on a group-executable file (Linux's should_remove_suid, which knfsd applies
 * to every WRITE by a caller without CAP_FSETID).
 */
static uint32_t privs_to_kill(const struct call *c, const struct inode_attr *a)
{
    uint32_t kill = 0;
    if (c->uid == 0 || !S_ISREG(a->mode))
        return 0;
    if (a->mode & S_ISUID)
        kill |= S_ISUID;
    if ((a->mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
        kill |= S_ISGID;
    return kill;
}

static int may_write_file(const struct call *c, const struct inode_attr *a)
{
    if (!c->rw)
        return EROFS;
    if (c->uid == a->uid || (perm_bits(c, a) & 2))
        return 0;
    return EACCES;
}

static void wcc_attr_of(wcc_attr *w, const struct inode_attr *a)
{
    w->size = a->size;
    w->mtime.seconds = (uint32_t)a->mtime_sec;
    w->mtime.nseconds = a->mtime_nsec;
    w->ctime.seconds = (uint32_t)a->ctime_sec;
    w->ctime.nseconds = a->ctime_nsec;
}

/* wcc_data from the attributes before and after (either may be NULL). */
static void wcc_set(wcc_data *w, const struct inode_attr *before, const struct inode_attr *after)
{
    w->before.attributes_follow = before != NULL;
    if (before)
        wcc_attr_of(&w->before.pre_op_attr_u.attributes, before);
    post_op(&w->after, after);
}

static void write_verf(const struct nfs3_server *srv, char out[NFS3_WRITEVERFSIZE])
{
    memcpy(out, &srv->write_verf, NFS3_WRITEVERFSIZE);
}

static struct meta_io call_io(const struct call *c)
{
    return (struct meta_io){.t = c->srv->inodes, .cache = c->srv->cache,
                            .stage = c->srv->stage, .wb = c->srv->wb};
}

/* sattr3 -> inode_change, with the permission rules above.  a: the object now. */
static int sattr_change(const struct call *c, const sattr3 *s, const struct inode_attr *a,
                        struct inode_change *ch)
{
    bool owner = c->uid == 0 || c->uid == a->uid;
    memset(ch, 0, sizeof(*ch));
    if (s->mode.set_it) {
        if (!owner)
            return EPERM;
        ch->set_mode = true;
        ch->mode = s->mode.set_mode3_u.mode & 07777;
        /* A non-root owner outside the file's group cannot make it set-group-id. */
        if (c->uid != 0 && !S_ISDIR(a->mode) && !in_group(c, a->gid))
            ch->mode &= ~(uint32_t)S_ISGID;
    }
    if (s->uid.set_it && s->uid.set_uid3_u.uid != a->uid) {
        if (c->uid != 0)
            return EPERM;
        ch->set_uid = true;
        ch->uid = s->uid.set_uid3_u.uid;
    }
    if (s->gid.set_it && s->gid.set_gid3_u.gid != a->gid) {
        if (c->uid != 0 && !(c->uid == a->uid && in_group(c, s->gid.set_gid3_u.gid)))
            return EPERM;
        ch->set_gid = true;
        ch->gid = s->gid.set_gid3_u.gid;
    }
    if ((ch->set_uid || ch->set_gid) && !S_ISDIR(a->mode) && (a->mode & (S_ISUID | S_ISGID))) {
        /* chown drops set-user-id and set-group-id, as on a local file system. */
        ch->set_mode = true;
        ch->mode = (ch->mode ? ch->mode : a->mode & 07777) & ~(uint32_t)(S_ISUID | S_ISGID);
    }
    if (s->size.set_it) {
        if (S_ISDIR(a->mode))
            return EISDIR;
        if (!S_ISREG(a->mode))
            return EINVAL;
        int err = may_write_file(c, a);
        if (err)
            return err;
        if (s->size.set_size3_u.size > NFS3_MAX_FILESIZE)
            return EFBIG;
        ch->set_size = true;
        ch->size = s->size.set_size3_u.size;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (s->mtime.set_it == SET_TO_CLIENT_TIME) {
        if (!owner)
            return EPERM;
        ch->set_mtime = true;
        ch->mtime_sec = s->mtime.set_mtime_u.mtime.seconds;
        ch->mtime_nsec = s->mtime.set_mtime_u.mtime.nseconds % 1000000000u;
    } else if (s->mtime.set_it == SET_TO_SERVER_TIME) {
        if (!owner && !(perm_bits(c, a) & 2))
            return EACCES;
        ch->set_mtime = true;
        ch->mtime_sec = now.tv_sec;
        ch->mtime_nsec = (uint32_t)now.tv_nsec;
    }
    if (s->atime.set_it == SET_TO_CLIENT_TIME && !owner)
        return EPERM;
    if (s->atime.set_it != DONT_CHANGE)
        ch->touch_ctime = true; /* objects keep no atime: only ctime moves */
    return 0;
}

static enum rpc_handler_status nfs3_setattr(struct rpc_req *req, void *args, void *res)
{
    SETATTR3args *a = args;
    SETATTR3res *r = res;
    struct call c;
    struct inode_attr before, after;
    bool have_before = false, have_after = false;
    struct inode_change ch;
    int err = call_open(req, &a->object, &c, false, &before);
    if (!err) {
        have_before = true;
        err = may_modify(&c);
    }
    if (!err)
        err = sattr_change(&c, &a->new_attributes, &before, &ch);
    if (!err && a->guard.check) {
        ch.guard = true;
        ch.guard_sec = a->guard.sattrguard3_u.obj_ctime.seconds;
        ch.guard_nsec = a->guard.sattrguard3_u.obj_ctime.nseconds;
        /* ctime seconds go out as 32 bits: compare what the client saw */
        ch.guard_sec = (int64_t)(uint32_t)before.ctime_sec == ch.guard_sec ? before.ctime_sec
                                                                            : ch.guard_sec;
    }
    if (!err) {
        struct meta_io io = call_io(&c);
        err = meta_setattr(&io, &c.exp->m, c.fh.ino, &ch, &before, &after);
        have_after = err == 0;
    }
    if (err == INODE_ENOTSYNC) {
        r->status = NFS3ERR_NOT_SYNC;
        err = -1;
    } else {
        r->status = nfs3_stat(err);
    }
    if (!have_after && have_before && call_attr(&c, &after) == 0)
        have_after = true;
    wcc_set(err ? &r->SETATTR3res_u.resfail.obj_wcc : &r->SETATTR3res_u.resok.obj_wcc,
            have_before ? &before : NULL, have_after ? &after : NULL);
    call_end(&c);
    return RPC_HANDLER_OK;
}

static enum rpc_handler_status nfs3_write(struct rpc_req *req, void *args, void *res)
{
    WRITE3args *a = args;
    WRITE3res *r = res;
    struct call c;
    struct inode_attr before, after;
    bool have_before = false, have_after = false;
    int err = call_open(req, &a->file, &c, false, &before);
    if (!err) {
        have_before = true;
        if (S_ISDIR(before.mode))
            err = EISDIR;
        else if (!S_ISREG(before.mode))
            err = EINVAL;
        else
            err = may_write_file(&c, &before);
    }
    if (!err && a->data.data_len < a->count)
        err = EINVAL; /* fewer bytes than announced */
    if (!err && (a->offset > NFS3_MAX_FILESIZE || a->count > NFS3_MAX_FILESIZE - a->offset))
        err = EFBIG;
    bool sync = a->stable != UNSTABLE;
    uint32_t kill = err ? 0 : privs_to_kill(&c, &before);
    struct inode_attr pre = before;
    if (kill) {
        struct meta_io io = call_io(&c);
        struct inode_change ch = {.set_mode = true, .mode = (before.mode & 07777) & ~kill};
        err = meta_setattr(&io, &c.exp->m, c.fh.ino, &ch, NULL, NULL);
    }
    if (!err) {
        struct meta_io io = call_io(&c);
        err = meta_write(&io, &c.exp->m, c.fh.ino, a->offset, a->data.data_val, a->count,
                         sync, &before, &after);
        have_after = err == 0;
        if (kill)
            before = pre; /* the wcc data: the file as it was before this call */
    }
    r->status = nfs3_stat(err);
    if (!err) {
        WRITE3resok *ok = &r->WRITE3res_u.resok;
        wcc_set(&ok->file_wcc, &before, &after);
        ok->count = a->count;
        ok->committed = sync ? FILE_SYNC : UNSTABLE;
        write_verf(c.srv, ok->verf);
    } else {
        if (have_before && call_attr(&c, &after) == 0)
            have_after = true;
        wcc_set(&r->WRITE3res_u.resfail.file_wcc, NULL, have_after ? &after : NULL);
    }
    call_end(&c);
    return RPC_HANDLER_OK;
}

/* The owner and group a new entry gets: the caller's, the group of a set-group-id directory. */
static void new_owner(const struct call *c, const struct inode_attr *dir, uint32_t *uid,
                      uint32_t *gid, uint32_t *mode)
{
    *uid = c->uid;
    *gid = c->gid;
    if (dir->mode & S_ISGID) {
        *gid = dir->gid;
        if (S_ISDIR(*mode))
            *mode |= S_ISGID;
    }
}

/*
 * CREATE, MKDIR and SYMLINK: make the entry, then apply what of sattr the
 * creation did not (owner given by root, times, a size on an existing file).
 */
static void create_run(struct rpc_req *req, const diropargs3 *where, uint32_t type,
                       uint32_t dflt_mode, const sattr3 *sa, enum inode_how how,
                       uint64_t verf, const char *target, CREATE3res *r)
{
    struct call c;
    struct inode_attr dir_before, dir_after, obj;
    bool have_dir = false, have_after = false, existed = false;
    int err = call_open(req, &where->dir, &c, false, &dir_before);
    if (!err) {
        have_dir = true;
        err = may_change_dir(&c, &dir_before);
    }
    if (!err && target && (strlen(target) > 4095 || !target[0]))
        err = target[0] ? ENAMETOOLONG : EINVAL;
    uint32_t mode = type | ((sa && sa->mode.set_it) ? sa->mode.set_mode3_u.mode & 07777
                                                    : dflt_mode);
    uint32_t uid = 0, gid = 0;
    struct meta_io io = call_io(&c);
    if (!err) {
        new_owner(&c, &dir_before, &uid, &gid, &mode);
        err = meta_create(&io, &c.exp->m, c.fh.ino, where->name, mode, uid, gid, how, verf,
                          target, &obj, &existed, NULL, &dir_after);
        have_after = err == 0;
    }
    if (!err && sa && how != INODE_EXCLUSIVE) {
        /* The rest of sattr: owner (root), times; on an existing file, its size. */
        sattr3 rest = *sa;
        rest.mode.set_it = FALSE;
        if (!existed && rest.size.set_it && rest.size.set_size3_u.size == 0)
            rest.size.set_it = FALSE; /* new and empty already */
        struct inode_change ch;
        bool any = rest.uid.set_it || rest.gid.set_it || rest.size.set_it ||
                   rest.mtime.set_it != DONT_CHANGE || rest.atime.set_it != DONT_CHANGE;
        if (any && (err = sattr_change(&c, &rest, &obj, &ch)) == 0)
            err = meta_setattr(&io, &c.exp->m, obj.ino, &ch, NULL, &obj);
    }
    r->status = nfs3_stat(err);
    if (!err) {
        CREATE3resok *ok = &r->CREATE3res_u.resok;
        ok->obj.handle_follows = TRUE;
        nfs3_handle(c.srv, req, &obj, &ok->obj.post_op_fh3_u.handle);
        post_op(&ok->obj_attributes, &obj);
        wcc_set(&ok->dir_wcc, &dir_before, have_after ? &dir_after : &dir_before);
    } else {
        if (have_dir && call_attr(&c, &dir_after) == 0)
            wcc_set(&r->CREATE3res_u.resfail.dir_wcc, &dir_before, &dir_after);
        else
            wcc_set(&r->CREATE3res_u.resfail.dir_wcc, NULL, NULL);
    }
    call_end(&c);
}

static enum rpc_handler_status nfs3_create(struct rpc_req *req, void *args, void *res)
{
    CREATE3args *a = args;
    const createhow3 *h = &a->how;
    enum inode_how how = h->mode == GUARDED ? INODE_GUARDED
                         : h->mode == EXCLUSIVE ? INODE_EXCLUSIVE : INODE_UNCHECKED;
    uint64_t verf = 0;
    if (how == INODE_EXCLUSIVE)
        memcpy(&verf, h->createhow3_u.verf, sizeof(verf));
    /* EXCLUSIVE: mode 0600 until the client's SETATTR that follows gives the real one. */
    create_run(req, &a->where, S_IFREG, how == INODE_EXCLUSIVE ? 0600 : 0644,
               how == INODE_EXCLUSIVE ? NULL : &h->createhow3_u.obj_attributes, how, verf,
               NULL, res);
    return RPC_HANDLER_OK;
}

static enum rpc_handler_status nfs3_mkdir(struct rpc_req *req, void *args, void *res)
{
    MKDIR3args *a = args;
    create_run(req, &a->where, S_IFDIR, 0755, &a->attributes, INODE_GUARDED, 0, NULL, res);
    return RPC_HANDLER_OK;
}

static enum rpc_handler_status nfs3_symlink(struct rpc_req *req, void *args, void *res)
{
    SYMLINK3args *a = args;
    create_run(req, &a->where, S_IFLNK, 0777, &a->symlink.symlink_attributes, INODE_GUARDED,
               0, a->symlink.symlink_data ? a->symlink.symlink_data : "", res);
    return RPC_HANDLER_OK;
}

/*
 * MKNOD: objects have no device nodes, sockets or FIFOs: NFS3ERR_NOTSUPP
 * (after the checks every call gets).
 */
static enum rpc_handler_status nfs3_mknod(struct rpc_req *req, void *args, void *res)
{
    MKNOD3args *a = args;
    CREATE3res *r = res;
    struct call c;
    struct inode_attr dir;
    int err = call_open(req, &a->where.dir, &c, false, &dir);
    bool have = err == 0;
    if (!err)
        err = may_change_dir(&c, &dir);
    r->status = nfs3_stat(err ? err : ENOTSUP);
    wcc_set(&r->CREATE3res_u.resfail.dir_wcc, NULL, have ? &dir : NULL);
    call_end(&c);
    return RPC_HANDLER_OK;
}

static void remove_run(struct rpc_req *req, const diropargs3 *o, bool rmdir, REMOVE3res *r)
{
    struct call c;
    struct inode_attr before, after;
    bool have = false, have_after = false;
    int err = call_open(req, &o->dir, &c, false, &before);
    if (!err) {
        have = true;
        err = may_change_dir(&c, &before);
    }
    if (!err)
        err = may_delete(&c, c.fh.ino, &before, o->name);
    if (!err) {
        struct meta_io io = call_io(&c);
        err = meta_remove(&io, &c.exp->m, c.fh.ino, o->name, rmdir, NULL, &after);
        have_after = err == 0;
    }
    if (!have_after && have && call_attr(&c, &after) == 0)
        have_after = true;
    r->status = nfs3_stat(err);
    wcc_set(err ? &r->REMOVE3res_u.resfail.dir_wcc : &r->REMOVE3res_u.resok.dir_wcc,
            have ? &before : NULL, have_after ? &after : NULL);
    call_end(&c);
}

static enum rpc_handler_status nfs3_remove(struct rpc_req *req, void *args, void *res)
{
    remove_run(req, &((REMOVE3args *)args)->object, false, res);
    return RPC_HANDLER_OK;
}

static enum rpc_handler_status nfs3_rmdir(struct rpc_req *req, void *args, void *res)
{
    remove_run(req, &((REMOVE3args *)args)->object, true, res);
    return RPC_HANDLER_OK;
}

static enum rpc_handler_status nfs3_rename(struct rpc_req *req, void *args, void *res)
{
    RENAME3args *a = args;
    RENAME3res *r = res;
    struct call c, c2;
    struct inode_attr fb, fa, tb, ta;
    bool have_f = false, have_t = false, done = false;
    int err = call_open(req, &a->from.dir, &c, false, &fb);
    int err2 = call_open(req, &a->to.dir, &c2, false, &tb);
    have_f = err == 0;
    have_t = err2 == 0;
    if (!err)
        err = err2;
    if (!err && c.fh.export_id != c2.fh.export_id)
        err = EXDEV; /* two exports are two file systems */
    if (!err)
        err = may_change_dir(&c, &fb);
    if (!err)
        err = may_change_dir(&c2, &tb);
    if (!err)
        err = may_delete(&c, c.fh.ino, &fb, a->from.name);
    if (!err)
        err = may_delete(&c2, c2.fh.ino, &tb, a->to.name);
    if (!err) {
        struct meta_io io = call_io(&c);
        err = meta_rename(&io, &c.exp->m, c.fh.ino, a->from.name, c2.fh.ino, a->to.name, &fb,
                          &fa, &tb, &ta);
        done = err == 0;
    }
    if (!done) {
        have_f = have_f && call_attr(&c, &fa) == 0;
        have_t = have_t && call_attr(&c2, &ta) == 0;
    }
    r->status = nfs3_stat(err);
    wcc_data *wf = err ? &r->RENAME3res_u.resfail.fromdir_wcc : &r->RENAME3res_u.resok.fromdir_wcc;
    wcc_data *wt = err ? &r->RENAME3res_u.resfail.todir_wcc : &r->RENAME3res_u.resok.todir_wcc;
    wcc_set(wf, done ? &fb : NULL, have_f || done ? &fa : NULL);
    wcc_set(wt, done ? &tb : NULL, have_t || done ? &ta : NULL);
    call_end(&c2);
    call_end(&c);
    return RPC_HANDLER_OK;
}

/* LINK: objects have no hard links: NFS3ERR_NOTSUPP (after the usual checks). */
static enum rpc_handler_status nfs3_link(struct rpc_req *req, void *args, void *res)
{
    LINK3args *a = args;
    LINK3res *r = res;
    struct call c, c2;
    struct inode_attr file, dir;
    int err = call_open(req, &a->file, &c, false, &file);
    int err2 = call_open(req, &a->link.dir, &c2, false, &dir);
    bool have_file = err == 0, have_dir = err2 == 0;
    if (!err)
        err = err2;
    if (!err)
        err = may_change_dir(&c2, &dir);
    r->status = nfs3_stat(err ? err : ENOTSUP);
    post_op(&r->LINK3res_u.resfail.file_attributes, have_file ? &file : NULL);
    wcc_set(&r->LINK3res_u.resfail.linkdir_wcc, NULL, have_dir ? &dir : NULL);
    call_end(&c2);
    call_end(&c);
    return RPC_HANDLER_OK;
}

static enum rpc_handler_status nfs3_commit(struct rpc_req *req, void *args, void *res)
{
    COMMIT3args *a = args;
    COMMIT3res *r = res;
    struct call c;
    struct inode_attr attr;
    int err = call_open(req, &a->file, &c, false, &attr);
    bool have = err == 0;
    if (!err && !S_ISREG(attr.mode))
        err = S_ISDIR(attr.mode) ? EISDIR : EINVAL;
    if (!err) {
        struct meta_io io = call_io(&c);
        err = meta_commit(&io, &c.exp->m, c.fh.ino);
    }
    r->status = nfs3_stat(err);
    if (!err) {
        wcc_set(&r->COMMIT3res_u.resok.file_wcc, &attr, &attr);
        write_verf(c.srv, r->COMMIT3res_u.resok.verf);
    } else {
        wcc_set(&r->COMMIT3res_u.resfail.file_wcc, NULL, have ? &attr : NULL);
    }
    call_end(&c);
    return RPC_HANDLER_OK;
}

/* ---- the dispatch table ---- */

#define ST 512 /* room for status + attributes + wcc in any small reply */
#define PROC(n, fn, at, rt, maxrep)                                                         \
    [NFSPROC3_##n] = {.name = #n, .decode_args = (xdrproc_t)xdr_##at, .args_size = sizeof(at), \
                      .encode_res = (xdrproc_t)xdr_##rt, .res_size = sizeof(rt),             \
                      .handler = fn, .max_reply = (maxrep)}
/* A procedure whose fast path (fn_nowait) the event loop may run itself. */
#define PROC_NOWAIT(n, fn, fn_nowait, at, rt, maxrep)                                       \
    [NFSPROC3_##n] = {.name = #n, .decode_args = (xdrproc_t)xdr_##at, .args_size = sizeof(at), \
                      .encode_res = (xdrproc_t)xdr_##rt, .res_size = sizeof(rt),             \
                      .handler = fn, .max_reply = (maxrep), .handler_nowait = fn_nowait}

/*
 * Not idempotent: a retransmission gets the first reply from the duplicate
 * request cache (rpc/drc.c) instead of running again (RFC 1813 section
 * 4.4: EEXIST for the CREATE that succeeded, ENOENT for the REMOVE that did).
 */
#define PROC_DRC(n, fn, at, rt, maxrep)                                                     \
    [NFSPROC3_##n] = {.name = #n, .decode_args = (xdrproc_t)xdr_##at, .args_size = sizeof(at), \
                      .encode_res = (xdrproc_t)xdr_##rt, .res_size = sizeof(rt),             \
                      .handler = fn, .max_reply = (maxrep), .dup_cache = true}

static const struct rpc_proc nfs3_procs[] = {
    [NFSPROC3_NULL] = {.name = "NULL", .handler = nfs3_null, .max_reply = 64},
    PROC_NOWAIT(GETATTR, nfs3_getattr, nfs3_getattr_nowait, GETATTR3args, GETATTR3res, ST),
    PROC_DRC(SETATTR, nfs3_setattr, SETATTR3args, SETATTR3res, ST),
    PROC_NOWAIT(LOOKUP, nfs3_lookup, nfs3_lookup_nowait, LOOKUP3args, LOOKUP3res, ST),
    PROC_NOWAIT(ACCESS, nfs3_access, nfs3_access_nowait, ACCESS3args, ACCESS3res, ST),
    PROC(READLINK, nfs3_readlink, READLINK3args, READLINK3res, ST + 4096),
    [NFSPROC3_READ] = {.name = "READ", .decode_args = (xdrproc_t)xdr_READ3args,
                       .args_size = sizeof(READ3args),
                       .encode_res = (xdrproc_t)nfs3_xdr_read_res,
                       .res_size = sizeof(struct nfs3_read_res), .handler = nfs3_read,
                       .max_reply = ST + NFS3_MAX_IO, .handler_nowait = nfs3_read_nowait},
    [NFSPROC3_WRITE] = {.name = "WRITE", .decode_args = (xdrproc_t)nfs3_xdr_write_args,
                        .args_size = sizeof(WRITE3args), .encode_res = (xdrproc_t)xdr_WRITE3res,
                        .res_size = sizeof(WRITE3res), .handler = nfs3_write, .max_reply = ST},
    PROC_DRC(CREATE, nfs3_create, CREATE3args, CREATE3res, ST),
    PROC_DRC(MKDIR, nfs3_mkdir, MKDIR3args, CREATE3res, ST),
    PROC_DRC(SYMLINK, nfs3_symlink, SYMLINK3args, CREATE3res, ST),
    PROC_DRC(MKNOD, nfs3_mknod, MKNOD3args, CREATE3res, ST),
    PROC_DRC(REMOVE, nfs3_remove, REMOVE3args, REMOVE3res, ST),
    PROC_DRC(RMDIR, nfs3_rmdir, REMOVE3args, REMOVE3res, ST), /* same layout as RMDIR3 */
    PROC_DRC(RENAME, nfs3_rename, RENAME3args, RENAME3res, ST),
    PROC_DRC(LINK, nfs3_link, LINK3args, LINK3res, ST),
    [NFSPROC3_READDIR] = {.name = "READDIR", .decode_args = (xdrproc_t)xdr_READDIR3args,
                          .args_size = sizeof(READDIR3args),
                          .encode_res = (xdrproc_t)nfs3_xdr_readdir_res,
                          .res_size = sizeof(struct nfs3_readdir_res),
                          .handler = nfs3_readdir, .max_reply = ST + NFS3_MAX_IO},
    [NFSPROC3_READDIRPLUS] = {.name = "READDIRPLUS",
                              .decode_args = (xdrproc_t)xdr_READDIRPLUS3args,
                              .args_size = sizeof(READDIRPLUS3args),
                              .encode_res = (xdrproc_t)nfs3_xdr_readdir_res,
                              .res_size = sizeof(struct nfs3_readdir_res),
                              .handler = nfs3_readdirplus, .max_reply = ST + NFS3_MAX_IO},
    PROC(FSSTAT, nfs3_fsstat, FSSTAT3args, FSSTAT3res, ST),
    PROC(FSINFO, nfs3_fsinfo, FSINFO3args, FSINFO3res, ST),
    PROC(PATHCONF, nfs3_pathconf, PATHCONF3args, PATHCONF3res, ST),
    PROC(COMMIT, nfs3_commit, COMMIT3args, COMMIT3res, ST),
};

void nfs3_program(struct nfs3_server *srv, struct rpc_program *p)
{
    memset(p, 0, sizeof(*p));
    p->prog = NFS3_PROGRAM;
    p->vers = NFS_V3;
    p->procs = nfs3_procs;
    p->nprocs = sizeof(nfs3_procs) / sizeof(nfs3_procs[0]);
    p->ctx = srv;
    p->observe = nfs3_observe;
}
_Static_assert(sizeof(nfs3_procs) / sizeof(nfs3_procs[0]) == NFS3_NPROCS, "NFS3_NPROCS");
