/*
 * mount3.c - MOUNT v3: NULL, MNT, DUMP, UMNT, UMNTALL, EXPORT.
 *
 * MNT hands out the handle of an export's root, or of a directory below it,
 * and the AUTH_SYS flavor, to clients the export's list allows.  The mount list (for DUMP) is advisory, as in
 * every NFS server: it records host + path pairs, capped at MNT_LIST_MAX so
 * a client mounting in a loop cannot grow memory without bound.
 *
 * Threads: handlers run on RPC workers; the mount list has its own lock
 * (m->lock), taken after nothing else.
 */
#include "mountd/mount3.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "mount3_prot.h"

#define MNT_LIST_MAX 4096

struct mnt_entry {
    char host[INET6_ADDRSTRLEN];
    char *path;
};

struct mnt_server {
    struct export_ctx *exports;
    struct fh_key *key;
    struct inode_table *inodes;
    pthread_mutex_t lock;
    struct mnt_entry *list;
    size_t n;
};

struct mnt_server *mnt_server_create(struct export_ctx *exports, struct fh_key *key,
                                     struct inode_table *inodes)
{
    struct mnt_server *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->list = calloc(MNT_LIST_MAX, sizeof(*m->list));
    if (!m->list) {
        free(m);
        errno = ENOMEM;
        return NULL;
    }
    m->exports = exports;
    m->key = key;
    m->inodes = inodes;
    pthread_mutex_init(&m->lock, NULL);
    return m;
}

void mnt_server_destroy(struct mnt_server *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        free(m->list[i].path);
    free(m->list);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static void peer_host(const struct rpc_req *req, char *buf, size_t len)
{
    const struct sockaddr *sa = (const struct sockaddr *)&req->peer;
    const void *addr = sa->sa_family == AF_INET6
                           ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                           : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
    if (!inet_ntop(sa->sa_family, addr, buf, (socklen_t)len))
        snprintf(buf, len, "unknown");
}

static void list_add(struct mnt_server *m, const char *host, const char *path)
{
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->list[i].host, host) == 0 && strcmp(m->list[i].path, path) == 0)
            goto out;
    if (m->n < MNT_LIST_MAX) {
        char *p = strdup(path);
        if (p) {
            snprintf(m->list[m->n].host, sizeof(m->list[m->n].host), "%s", host);
            m->list[m->n++].path = p;
        }
    }
out:
    pthread_mutex_unlock(&m->lock);
}

/* Remove host's entries for path (or all of host's entries when path is NULL). */
static void list_remove(struct mnt_server *m, const char *host, const char *path)
{
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->n;) {
        struct mnt_entry *e = &m->list[i];
        if (strcmp(e->host, host) == 0 && (!path || strcmp(e->path, path) == 0)) {
            free(e->path);
            m->list[i] = m->list[--m->n];
        } else {
            i++;
        }
    }
    pthread_mutex_unlock(&m->lock);
}

static enum rpc_handler_status mnt_null(struct rpc_req *req, void *args, void *res)
{
    return RPC_HANDLER_OK;
}

/*
 * The export a mount path falls in: an export's own path, or a directory
 * below it ("/demo/drive-0001", as Linux mounts a subtree and as libnfs's
 * tools ask for a file's folder).  *rest points at what follows the
 * export's path ("" or "drive-0001").
 */
static const struct export *export_for_path(const struct export_set *set, const char *path,
                                            const char **rest)
{
    const struct export *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < set->n; i++) {
        const char *ep = set->v[i].path;
        size_t n = strlen(ep);
        if (strcmp(ep, "/") == 0)
            n = 0; /* "/" is a prefix of everything */
        if (strncmp(path, ep, n) != 0 || (path[n] != 0 && path[n] != '/'))
            continue;
        if (!best || n >= best_len) {
            best = &set->v[i];
            best_len = n;
        }
    }
    if (best) {
        *rest = path + best_len;
        while (**rest == '/')
            (*rest)++;
    }
    return best;
}

/* Walk the components of rest from the export's root.  0, ENOENT, ENOTDIR, ... */
static int walk_subdir(struct mnt_server *m, const struct export *e, const char *rest,
                       struct inode_attr *out)
{
    char name[INODE_NAME_MAX + 1];
    *out = e->root;
    while (*rest) {
        size_t n = strcspn(rest, "/");
        if (n > INODE_NAME_MAX)
            return ENAMETOOLONG;
        memcpy(name, rest, n);
        name[n] = 0;
        rest += n;
        while (*rest == '/')
            rest++;
        struct inode_attr next;
        int err = inode_lookup(m->inodes, &e->m, out->ino, name, &next, NULL);
        if (err)
            return err;
        *out = next;
    }
    return S_ISDIR(out->mode) ? 0 : ENOTDIR;
}

static mountstat3 mnt_stat(int err)
{
    switch (err) {
    case 0:            return MNT3_OK;
    case ENOENT:       return MNT3ERR_NOENT;
    case ENOTDIR:      return MNT3ERR_NOTDIR;
    case EACCES:       return MNT3ERR_ACCES;
    case ENAMETOOLONG: return MNT3ERR_NAMETOOLONG;
    case EINVAL:       return MNT3ERR_INVAL;
    default:           return MNT3ERR_IO;
    }
}

static enum rpc_handler_status mnt_mnt(struct rpc_req *req, void *args, void *res)
{
    struct mnt_server *m = req->prog_ctx;
    char *path = *(mntdirpath *)args;
    mountres3 *r = res;
    char host[INET6_ADDRSTRLEN];
    peer_host(req, host, sizeof(host));

    const struct export_set *set = export_set_get(m->exports);
    const char *rest = "";
    const struct export *e = export_for_path(set, path, &rest);
    struct inode_attr dir;
    const char *why = NULL;
    int err;
    if (!e) {
        err = ENOENT;
        why = "no such export";
    } else if (!export_client_allowed(e, (const struct sockaddr *)&req->peer)) {
        err = EACCES;
        why = "client not in the export's list";
    } else if (e->secure && !export_port_secure((const struct sockaddr *)&req->peer)) {
        err = EACCES;
        why = "unprivileged source port (the export is secure)";
    } else {
        err = walk_subdir(m, e, rest, &dir);
        why = err ? strerror(err) : NULL;
    }
    r->fhs_status = mnt_stat(err);
    if (err) {
        /* A client can ask as often as it likes: rate-limited. */
        static struct log_rate rate;
        unsigned held = 0;
        if (LOG_NOTICE <= log_level && log_rate_ok(&rate, &held))
            log_msg(LOG_NOTICE, "mount %s from %s refused: %s%s", path, host, why,
                    held ? " (and earlier refusals not logged)" : "");
    } else {
        struct fh fh = {.export_id = e->m.id, .ino = dir.ino, .gen = dir.gen};
        uint8_t *buf = rpc_alloc(req, FH_SIZE);
        int *flavors = rpc_alloc(req, sizeof(int));
        fh_encode(m->key, &fh, buf);
        flavors[0] = AUTH_SYS;
        r->mountres3_u.mountinfo.fhandle.fhandle3_len = FH_SIZE;
        r->mountres3_u.mountinfo.fhandle.fhandle3_val = (char *)buf;
        r->mountres3_u.mountinfo.auth_flavors.auth_flavors_len = 1;
        r->mountres3_u.mountinfo.auth_flavors.auth_flavors_val = flavors;
        list_add(m, host, path);
        LOG_AT(LOG_INFO, "mount %s from %s", path, host);
    }
    export_set_put(m->exports, set);
    return RPC_HANDLER_OK;
}

static enum rpc_handler_status mnt_umnt(struct rpc_req *req, void *args, void *res)
{
    struct mnt_server *m = req->prog_ctx;
    char host[INET6_ADDRSTRLEN];
    peer_host(req, host, sizeof(host));
    list_remove(m, host, *(mntdirpath *)args);
    return RPC_HANDLER_OK;
}

static enum rpc_handler_status mnt_umntall(struct rpc_req *req, void *args, void *res)
{
    struct mnt_server *m = req->prog_ctx;
    char host[INET6_ADDRSTRLEN];
    peer_host(req, host, sizeof(host));
    list_remove(m, host, NULL);
    return RPC_HANDLER_OK;
}

/* DUMP result: a snapshot of the mount list, encoded iteratively. */
struct mnt_dump_res {
    struct mnt_entry *v;
    size_t n;
};

static bool_t xdr_mnt_dump_res(XDR *x, struct mnt_dump_res *r)
{
    for (size_t i = 0; i < r->n; i++) {
        bool_t more = TRUE;
        char *host = r->v[i].host, *path = r->v[i].path;
        if (!xdr_bool(x, &more) || !xdr_string(x, &host, MNTNAMLEN) ||
            !xdr_string(x, &path, MNTPATHLEN))
            return FALSE;
    }
    bool_t more = FALSE;
    return xdr_bool(x, &more);
}

static enum rpc_handler_status mnt_dump(struct rpc_req *req, void *args, void *res)
{
    struct mnt_server *m = req->prog_ctx;
    struct mnt_dump_res *r = res;
    pthread_mutex_lock(&m->lock);
    r->v = rpc_alloc(req, (m->n ? m->n : 1) * sizeof(*r->v));
    for (size_t i = 0; i < m->n; i++) {
        r->v[i] = m->list[i];
        r->v[i].path = rpc_strdup(req, m->list[i].path);
    }
    r->n = m->n;
    pthread_mutex_unlock(&m->lock);
    return RPC_HANDLER_OK;
}

/* EXPORT result: each export path with its client list as group names. */
struct mnt_export_res {
    const struct export_set *set;
    struct mnt_server *m;
};

static bool_t xdr_mnt_export_res(XDR *x, struct mnt_export_res *r)
{
    for (size_t i = 0; i < r->set->n; i++) {
        const struct export *e = &r->set->v[i];
        bool_t more = TRUE;
        char *path = e->path;
        if (!xdr_bool(x, &more) || !xdr_string(x, &path, MNTPATHLEN))
            return FALSE;
        for (size_t j = 0; j < e->nclients; j++) {
            const struct conf_cidr *c = &e->clients[j];
            char addr[INET6_ADDRSTRLEN], group[INET6_ADDRSTRLEN + 8], *g = group;
            if (!inet_ntop(c->family, c->addr, addr, sizeof(addr)))
                continue;
            snprintf(group, sizeof(group), "%s/%u", addr, c->prefix_len);
            if (!xdr_bool(x, &more) || !xdr_string(x, &g, MNTNAMLEN))
                return FALSE;
        }
        bool_t end = FALSE;
        if (!xdr_bool(x, &end))
            return FALSE;
    }
    bool_t end = FALSE;
    return xdr_bool(x, &end);
}

static enum rpc_handler_status mnt_export(struct rpc_req *req, void *args, void *res)
{
    struct mnt_export_res *r = res;
    r->m = req->prog_ctx;
    r->set = export_set_get(r->m->exports);
    return RPC_HANDLER_OK;
}

static void mnt_export_release(struct rpc_req *req, void *res)
{
    struct mnt_export_res *r = res;
    if (r->set)
        export_set_put(r->m->exports, r->set);
}

static const struct rpc_proc mnt_procs[] = {
    [MOUNTPROC3_NULL] = {.name = "NULL", .handler = mnt_null, .max_reply = 64},
    [MOUNTPROC3_MNT] = {.name = "MNT", .decode_args = (xdrproc_t)xdr_mntdirpath,
                        .args_size = sizeof(mntdirpath),
                        .encode_res = (xdrproc_t)xdr_mountres3,
                        .res_size = sizeof(mountres3), .handler = mnt_mnt, .max_reply = 256},
    [MOUNTPROC3_DUMP] = {.name = "DUMP", .encode_res = (xdrproc_t)xdr_mnt_dump_res,
                         .res_size = sizeof(struct mnt_dump_res), .handler = mnt_dump,
                         .max_reply = MNT_LIST_MAX * (MNTNAMLEN + MNTPATHLEN + 16) + 64},
    [MOUNTPROC3_UMNT] = {.name = "UMNT", .decode_args = (xdrproc_t)xdr_mntdirpath,
                         .args_size = sizeof(mntdirpath), .handler = mnt_umnt,
                         .max_reply = 64},
    [MOUNTPROC3_UMNTALL] = {.name = "UMNTALL", .handler = mnt_umntall, .max_reply = 64},
    [MOUNTPROC3_EXPORT] = {.name = "EXPORT", .encode_res = (xdrproc_t)xdr_mnt_export_res,
                           .res_size = sizeof(struct mnt_export_res), .handler = mnt_export,
                           .release = mnt_export_release, .max_reply = 1024 * 1024},
};

void mnt_program(struct mnt_server *m, struct rpc_program *p)
{
    memset(p, 0, sizeof(*p));
    p->prog = MOUNT_PROGRAM;
    p->vers = MOUNT_V3;
    p->procs = mnt_procs;
    p->nprocs = sizeof(mnt_procs) / sizeof(mnt_procs[0]);
    p->ctx = m;
}
