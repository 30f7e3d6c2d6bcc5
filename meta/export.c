/*
 * export.c - the live export table.
 *
 * Owns: the stores (created once), the current export_set, and the sets
 * still referenced by calls in flight.
 * Lock order: x->lock only; it is held just long enough to take or drop a
 * reference or to swap the current set.  Sets are never changed once
 * published, so readers need no lock while they hold a reference.
 */
#include "meta/export.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "objstore/objstore.h"

struct set_holder {
    struct export_set set;
    unsigned refs; /* under export_ctx.lock; the current set holds one */
};

struct export_ctx {
    pthread_mutex_t lock;
    struct inode_table *t;
    const struct conf *conf;
    struct objstore **stores; /* parallel to conf->stores */
    size_t nstores;
    struct set_holder *cur;
};

static void set_free(struct set_holder *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->set.n; i++) {
        struct export *e = &h->set.v[i];
        free(e->path);
        free((char *)e->m.bucket);
        free((char *)e->m.prefix);
        free(e->clients);
    }
    free(h->set.v);
    free(h);
}

static struct objstore *store_named(struct export_ctx *x, const char *name)
{
    for (size_t i = 0; i < x->nstores; i++)
        if (strcmp(x->conf->stores[i].name, name) == 0)
            return x->stores[i];
    return NULL;
}

/* Build a set from parsed exports.  Returns NULL with a message in err. */
static struct set_holder *set_build(struct export_ctx *x, const struct conf_exports *ce,
                                    char *err, size_t errlen)
{
    struct set_holder *h = calloc(1, sizeof(*h));
    if (!h)
        goto nomem;
    h->set.v = calloc(ce->n ? ce->n : 1, sizeof(struct export));
    if (!h->set.v)
        goto nomem;
    for (size_t i = 0; i < ce->n; i++) {
        const struct conf_export *c = &ce->v[i];
        struct export *e = &h->set.v[i];
        h->set.n = i + 1;
        e->path = strdup(c->path);
        e->m.bucket = strdup(c->bucket);
        e->m.prefix = strdup(c->prefix);
        e->clients = calloc(c->nclients ? c->nclients : 1, sizeof(*e->clients));
        if (!e->path || !e->m.bucket || !e->m.prefix || !e->clients)
            goto nomem;
        memcpy(e->clients, c->clients, c->nclients * sizeof(*e->clients));
        e->nclients = c->nclients;
        e->rw = c->rw;
        e->squash = c->squash;
        e->secure = c->secure;
        e->anon_uid = c->anon_uid;
        e->anon_gid = c->anon_gid;
        e->m.store = store_named(x, c->store);
        if (!e->m.store) {
            snprintf(err, errlen, "%s:%d: export %s: no store named \"%s\"", ce->file, c->line,
                     c->path, c->store);
            goto fail;
        }
        e->m.path = e->path;
        e->m.metadata_ttl = c->metadata_ttl;
        e->m.shuffle = c->shuffle;
        e->m.writeback_delay = c->writeback_delay;
        e->m.rename_dir_max = c->rename_dir_max;
        e->m.consistency = c->consistency == CONF_CONSISTENCY_IMMUTABLE ? INODE_IMMUTABLE
                           : c->consistency == CONF_CONSISTENCY_STRICT  ? INODE_STRICT
                                                                        : INODE_TTL;
        e->m.posix_own = c->posix_own;
        e->m.file_mode = c->file_mode;
        e->m.dir_mode = c->dir_mode;
        e->m.uid = c->uid;
        e->m.gid = c->gid;
        int rc = inode_export_id(x->t, c->path, &e->m.id);
        if (!rc)
            rc = inode_root(x->t, &e->m, &e->root);
        if (rc) {
            snprintf(err, errlen, "%s:%d: export %s: inode table: %s", ce->file, c->line,
                     c->path, strerror(rc));
            errno = rc;
            set_free(h);
            return NULL;
        }
    }
    return h;
nomem:
    snprintf(err, errlen, "out of memory building the export table");
fail:
    set_free(h);
    errno = ENOMEM;
    return NULL;
}

struct export_ctx *export_ctx_create(const struct conf *c, struct inode_table *t, char *err,
                                     size_t errlen)
{
    struct export_ctx *x = calloc(1, sizeof(*x));
    if (!x) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&x->lock, NULL);
    x->t = t;
    x->conf = c;
    x->stores = calloc(c->nstores ? c->nstores : 1, sizeof(*x->stores));
    if (!x->stores) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < c->nstores; i++) {
        x->stores[i] = obj_create(&c->stores[i]);
        if (!x->stores[i]) {
            int e = errno;
            snprintf(err, errlen, "%s:%d: store \"%s\": %s", c->file, c->stores[i].line,
                     c->stores[i].name, strerror(e));
            goto fail;
        }
        x->nstores = i + 1;
    }
    x->cur = set_build(x, &c->exports, err, errlen);
    if (!x->cur)
        goto fail;
    x->cur->refs = 1;
    return x;
fail:
    export_ctx_destroy(x);
    errno = EINVAL;
    return NULL;
}

void export_ctx_destroy(struct export_ctx *x)
{
    if (!x)
        return;
    set_free(x->cur);
    for (size_t i = 0; i < x->nstores; i++)
        obj_destroy(x->stores[i]);
    free(x->stores);
    pthread_mutex_destroy(&x->lock);
    free(x);
}

int export_ctx_reload(struct export_ctx *x, const struct conf_exports *e, char *err,
                      size_t errlen)
{
    struct set_holder *h = set_build(x, e, err, errlen);
    if (!h)
        return errno ? errno : EINVAL;
    h->refs = 1;
    pthread_mutex_lock(&x->lock);
    struct set_holder *old = x->cur;
    x->cur = h;
    bool last = --old->refs == 0;
    pthread_mutex_unlock(&x->lock);
    if (last)
        set_free(old);
    return 0;
}

const struct export_set *export_set_get(struct export_ctx *x)
{
    pthread_mutex_lock(&x->lock);
    struct set_holder *h = x->cur;
    h->refs++;
    pthread_mutex_unlock(&x->lock);
    return &h->set;
}

void export_set_put(struct export_ctx *x, const struct export_set *s)
{
    struct set_holder *h = (struct set_holder *)((char *)s - offsetof(struct set_holder, set));
    pthread_mutex_lock(&x->lock);
    bool last = --h->refs == 0;
    pthread_mutex_unlock(&x->lock);
    if (last)
        set_free(h);
}

const struct export *export_by_id(const struct export_set *s, uint32_t id)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].m.id == id)
            return &s->v[i];
    return NULL;
}

const struct export *export_by_path(const struct export_set *s, const char *path)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i].path, path) == 0)
            return &s->v[i];
    return NULL;
}

const struct export *export_for_mount_path(const struct export_set *s, const char *path,
                                           const char **rest)
{
    const struct export *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < s->n; i++) {
        const char *ep = s->v[i].path;
        size_t n = strlen(ep);
        if (strcmp(ep, "/") == 0)
            n = 0; /* "/" is a prefix of everything */
        if (strncmp(path, ep, n) != 0 || (path[n] != 0 && path[n] != '/'))
            continue;
        if (!best || n >= best_len) {
            best = &s->v[i];
            best_len = n;
        }
    }
    if (best && rest) {
        *rest = path + best_len;
        while (**rest == '/')
            (*rest)++;
    }
    return best;
}

bool export_client_opts(const struct export *e, const struct sockaddr *peer, bool *rw,
                        enum conf_squash *squash)
{
    const struct conf_cidr *c = NULL;
    if (peer->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)peer;
        c = conf_cidr_find(e->clients, e->nclients, AF_INET, &in->sin_addr);
    } else if (peer->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)peer;
        c = conf_cidr_find(e->clients, e->nclients, AF_INET6, &in6->sin6_addr);
    }
    if (!c)
        return false;
    *rw = c->rw >= 0 ? c->rw == 1 : e->rw;
    *squash = c->squash >= 0 ? (enum conf_squash)c->squash : e->squash;
    return true;
}

bool export_client_allowed(const struct export *e, const struct sockaddr *peer)
{
    bool rw;
    enum conf_squash squash;
    return export_client_opts(e, peer, &rw, &squash);
}

bool export_port_secure(const struct sockaddr *peer)
{
    if (peer->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)peer)->sin_port) < 1024;
    if (peer->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)peer)->sin6_port) < 1024;
    return false;
}

size_t export_ctx_nstores(const struct export_ctx *x)
{
    return x->nstores;
}

struct objstore *export_ctx_store(const struct export_ctx *x, size_t i)
{
    return i < x->nstores ? x->stores[i] : NULL;
}
