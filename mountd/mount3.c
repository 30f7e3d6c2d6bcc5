/*
 * mount3.c - MOUNT v3: NULL, MNT, DUMP, UMNT, UMNTALL, EXPORT.
 *
 * MNT hands out the handle of an export's root, or of a directory below it,
 * and the AUTH_SYS flavor, to clients the export's list allows.  The mount
 * list (for DUMP and `bucketnfs status`) is advisory, as in every NFS
 * server: it records host + path pairs with the time of the first MNT,
 * capped at MNT_LIST_MAX so a client mounting in a loop cannot grow memory
 * without bound.  Like Linux's /var/lib/nfs/rmtab it survives restarts (a
 * client's mount does too: its handles stay valid): it is kept in
 * state_dir/rmtab, rewritten whole when an entry comes or goes; a repeated
 * MNT of the same host and path changes nothing and writes nothing.
 *
 * Threads: handlers run on RPC workers; the mount list has its own lock
 * (m->lock), taken after nothing else, and held while the file is
 * rewritten, so that the file follows the list's changes in order (MNT and
 * UMNT are rare; a rewrite is at most MNT_LIST_MAX short lines).
 */
#include "mountd/mount3.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "mount3_prot.h"

#define MNT_LIST_MAX 4096
#define RMTAB_LINE_MAX (48 + 24 + 4 * MNT_RMTAB_PATH_MAX + 4)

_Static_assert(MNT_RMTAB_PATH_MAX == MNTPATHLEN, "the mount-list file holds MNT paths");
_Static_assert(sizeof(((struct mnt_listed *)0)->host) >= INET6_ADDRSTRLEN, "host text");

struct mnt_entry {
    char host[INET6_ADDRSTRLEN];
    char *path;
    int64_t since;
};

struct mnt_server {
    struct export_ctx *exports;
    struct fh_key *key;
    struct inode_table *inodes;
    char *rmtab;             /* state_dir/rmtab, or NULL */
    pthread_mutex_t lock;
    struct mnt_entry *list;
    size_t n;
};

/* ---- the mount-list file ---------------------------------------------- */

static bool rmtab_escaped(unsigned char c)
{
    return c <= 0x20 || c == 0x7f || c == '\\';
}

int mnt_rmtab_format(const char *host, int64_t since, const char *path, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, "%s %" PRId64 " ", host, since);
    if (n < 0 || (size_t)n >= outlen)
        return ENAMETOOLONG;
    size_t o = (size_t)n;
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        if (o + 5 >= outlen)
            return ENAMETOOLONG;
        if (rmtab_escaped(*p)) {
            snprintf(out + o, 5, "\\%03o", (unsigned)*p);
            o += 4;
        } else {
            out[o++] = (char)*p;
        }
    }
    if (o + 2 > outlen)
        return ENAMETOOLONG;
    out[o++] = '\n';
    out[o] = '\0';
    return 0;
}

int mnt_rmtab_parse(const char *line, size_t len, char *host, int64_t *since, char *path)
{
    const char *end = line + len, *p = line;
    /* HOST: an address inet_pton accepts. */
    const char *sp = memchr(p, ' ', len);
    if (!sp || sp == p || (size_t)(sp - p) >= INET6_ADDRSTRLEN)
        return EINVAL;
    memcpy(host, p, (size_t)(sp - p));
    host[sp - p] = '\0';
    unsigned char addr[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, host, addr) != 1 && inet_pton(AF_INET6, host, addr) != 1)
        return EINVAL;
    /* SINCE: 1 to 18 decimal digits. */
    p = sp + 1;
    int64_t v = 0;
    int digits = 0;
    while (p < end && *p >= '0' && *p <= '9' && digits < 18) {
        v = v * 10 + (*p++ - '0');
        digits++;
    }
    if (digits == 0 || p >= end || *p != ' ')
        return EINVAL;
    *since = v;
    /* PATH: not empty, escapes of three octal digits (not NUL), no raw byte that needs one. */
    p++;
    size_t o = 0;
    if (p >= end)
        return EINVAL;
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (c == '\\') {
            if (end - p < 4)
                return EINVAL;
            unsigned v8 = 0;
            for (int k = 1; k <= 3; k++) {
                if (p[k] < '0' || p[k] > '7')
                    return EINVAL;
                v8 = v8 * 8 + (unsigned)(p[k] - '0');
            }
            if (v8 == 0 || v8 > 0xff)
                return EINVAL;
            c = (unsigned char)v8;
            p += 4;
        } else if (rmtab_escaped(c)) {
            return EINVAL;
        } else {
            p++;
        }
        if (o == MNT_RMTAB_PATH_MAX)
            return EINVAL;
        path[o++] = (char)c;
    }
    path[o] = '\0';
    return 0;
}

/* Rewrite the file from the list (m->lock held).  0 or an errno. */
static int rmtab_save(struct mnt_server *m)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", m->rmtab) >= (int)sizeof(tmp))
        return ENAMETOOLONG;
    FILE *f = fopen(tmp, "we");
    if (!f)
        return errno;
    char *line = malloc(RMTAB_LINE_MAX);
    int rc = line ? 0 : ENOMEM;
    for (size_t i = 0; !rc && i < m->n; i++) {
        struct mnt_entry *e = &m->list[i];
        rc = mnt_rmtab_format(e->host, e->since, e->path, line, RMTAB_LINE_MAX);
        if (!rc && fputs(line, f) == EOF)
            rc = errno ? errno : EIO;
    }
    free(line);
    if (!rc && (fflush(f) != 0 || fsync(fileno(f)) != 0))
        rc = errno;
    if (fclose(f) != 0 && !rc)
        rc = errno;
    if (!rc && rename(tmp, m->rmtab) != 0)
        rc = errno;
    if (rc)
        unlink(tmp);
    return rc;
}

static void rmtab_save_logged(struct mnt_server *m)
{
    if (!m->rmtab)
        return;
    int rc = rmtab_save(m);
    if (rc) {
        static struct log_rate rate;
        unsigned held = 0;
        if (LOG_WARNING <= log_level && log_rate_ok(&rate, &held))
            log_msg(LOG_WARNING, "mount list: cannot write %s: %s (the list in memory is kept)",
                    m->rmtab, strerror(rc));
    }
}

/* Read the file into the (empty) list.  A missing file is an empty list. */
static void rmtab_load(struct mnt_server *m)
{
    FILE *f = fopen(m->rmtab, "re");
    if (!f) {
        if (errno != ENOENT)
            LOG_AT(LOG_WARNING, "mount list: cannot read %s: %s (starting empty)", m->rmtab,
                   strerror(errno));
        return;
    }
    char *line = malloc(RMTAB_LINE_MAX + 2), *path = malloc(MNT_RMTAB_PATH_MAX + 1);
    unsigned bad = 0, lineno = 0;
    while (line && path && fgets(line, RMTAB_LINE_MAX + 2, f)) {
        lineno++;
        size_t len = strlen(line);
        bool whole = len > 0 && line[len - 1] == '\n';
        if (!whole) {
            /* Too long, or cut short by a crash: skip to the next line. */
            int c;
            while ((c = fgetc(f)) != EOF && c != '\n')
                ;
            bad++;
            continue;
        }
        struct mnt_entry e = {0};
        if (mnt_rmtab_parse(line, len - 1, e.host, &e.since, path) != 0 || m->n == MNT_LIST_MAX) {
            bad++;
            continue;
        }
        if (!(e.path = strdup(path)))
            break;
        m->list[m->n++] = e;
    }
    if (bad)
        LOG_AT(LOG_WARNING, "mount list: %s: %u malformed line(s) of %u skipped", m->rmtab, bad,
               lineno);
    if (m->n)
        LOG_AT(LOG_INFO, "mount list: %zu mount(s) from %s", m->n, m->rmtab);
    free(line);
    free(path);
    fclose(f);
}

struct mnt_server *mnt_server_create(struct export_ctx *exports, struct fh_key *key,
                                     struct inode_table *inodes, const char *state_dir)
{
    struct mnt_server *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->list = calloc(MNT_LIST_MAX, sizeof(*m->list));
    if (state_dir) {
        size_t n = strlen(state_dir) + sizeof(MNT_RMTAB_NAME) + 1;
        if ((m->rmtab = malloc(n)))
            snprintf(m->rmtab, n, "%s/%s", state_dir, MNT_RMTAB_NAME);
    }
    if (!m->list || (state_dir && !m->rmtab)) {
        free(m->list);
        free(m->rmtab);
        free(m);
        errno = ENOMEM;
        return NULL;
    }
    m->exports = exports;
    m->key = key;
    m->inodes = inodes;
    pthread_mutex_init(&m->lock, NULL);
    if (m->rmtab)
        rmtab_load(m);
    return m;
}

void mnt_server_destroy(struct mnt_server *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        free(m->list[i].path);
    free(m->list);
    free(m->rmtab);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

int mnt_list_get(struct mnt_server *m, struct mnt_listed **out, size_t *n)
{
    int rc = 0;
    pthread_mutex_lock(&m->lock);
    struct mnt_listed *v = calloc(m->n ? m->n : 1, sizeof(*v));
    size_t k = 0;
    for (; v && k < m->n; k++) {
        snprintf(v[k].host, sizeof(v[k].host), "%s", m->list[k].host);
        v[k].since = m->list[k].since;
        if (!(v[k].path = strdup(m->list[k].path)))
            break;
    }
    if (!v || k < m->n)
        rc = ENOMEM;
    pthread_mutex_unlock(&m->lock);
    if (rc) {
        if (v)
            mnt_list_free(v, k);
        v = NULL;
        k = 0;
    }
    *out = v;
    *n = k;
    return rc;
}

void mnt_list_free(struct mnt_listed *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i].path);
    free(v);
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
            m->list[m->n].since = (int64_t)time(NULL);
            m->list[m->n++].path = p;
            rmtab_save_logged(m);
        }
    }
out:
    pthread_mutex_unlock(&m->lock);
}

/* Remove host's entries for path (or all of host's entries when path is NULL). */
static void list_remove(struct mnt_server *m, const char *host, const char *path)
{
    pthread_mutex_lock(&m->lock);
    size_t before = m->n;
    for (size_t i = 0; i < m->n;) {
        struct mnt_entry *e = &m->list[i];
        if (strcmp(e->host, host) == 0 && (!path || strcmp(e->path, path) == 0)) {
            free(e->path);
            m->list[i] = m->list[--m->n];
        } else {
            i++;
        }
    }
    if (m->n != before)
        rmtab_save_logged(m);
    pthread_mutex_unlock(&m->lock);
}

static enum rpc_handler_status mnt_null(struct rpc_req *req, void *args, void *res)
{
    return RPC_HANDLER_OK;
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
    const struct export *e = export_for_mount_path(set, path, &rest);
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
