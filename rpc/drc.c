/*
 * drc.c - the duplicate request cache (the reply cache of Linux nfsd's
 * nfscache.c, written for this server).
 *
 * A client that does not see a reply sends the call again with the same
 * XID.  For a procedure that is not idempotent (CREATE, REMOVE, RENAME,
 * MKDIR, ...) running it twice would give a wrong answer (EEXIST for the
 * create that succeeded, ENOENT for the remove that did), so the reply of
 * such a call is kept and a retransmission gets it again, byte for byte.
 *
 * An entry is named by the client's address and port, XID, program,
 * version, procedure and a CRC-32C of the argument bytes, as Linux nfsd
 * names them.  The port belongs in it: the Linux client reconnects from
 * the same port (for this very cache), and two client processes on one
 * host (libnfs tools run one after the other) may well pick the same XIDs
 * for the same call - without the port the second one's SETATTR would be
 * answered with the first one's reply and never run.  States:
 *   in progress  the call is being served: a retransmission is dropped (the
 *                client will send it again, and the reply will be there)
 *   done         the reply is kept: a retransmission gets it
 * Entries live in a hash table and an LRU list, bounded by count and by
 * reply bytes, and are forgotten after DRC_TTL_MS.
 *
 * Threads: one mutex guards everything; no I/O under it.
 */
#include "rpc/rpc_internal.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DRC_TTL_MS (120u * 1000u) /* longer than any client's retransmission window */

struct drc_ent {
    struct drc_ent *hnext;
    struct drc_ent *prev, *next; /* LRU: head is the oldest */
    uint64_t id;
    uint8_t family;
    uint8_t addr[16];
    uint16_t port;
    uint32_t xid, prog, vers, proc, crc;
    bool done;
    uint64_t at_ms;
    uint8_t *reply;
    size_t len;
};

struct rpc_drc {
    pthread_mutex_t lock;
    struct drc_ent **htab;
    size_t hsize;
    struct drc_ent *head, *tail;
    size_t n, max_entries;
    size_t bytes, max_bytes;
    uint64_t next_id;
    struct rpc_drc_stats st;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The address and port of a peer. */
static void peer_addr(const struct sockaddr_storage *p, uint8_t *family, uint8_t addr[16],
                      uint16_t *port)
{
    memset(addr, 0, 16);
    *port = 0;
    *family = (uint8_t)p->ss_family;
    if (p->ss_family == AF_INET) {
        memcpy(addr, &((const struct sockaddr_in *)p)->sin_addr, 4);
        *port = ((const struct sockaddr_in *)p)->sin_port;
    } else if (p->ss_family == AF_INET6) {
        memcpy(addr, &((const struct sockaddr_in6 *)p)->sin6_addr, 16);
        *port = ((const struct sockaddr_in6 *)p)->sin6_port;
    }
}

static size_t slot(const struct rpc_drc *d, uint32_t xid, uint32_t crc)
{
    uint64_t h = ((uint64_t)xid << 32 | crc) * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 20) % d->hsize;
}

struct rpc_drc *rpc_drc_create(size_t max_entries, size_t max_bytes)
{
    struct rpc_drc *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->max_entries = max_entries ? max_entries : 1;
    d->max_bytes = max_bytes;
    d->hsize = d->max_entries * 2 + 1;
    d->htab = calloc(d->hsize, sizeof(*d->htab));
    if (!d->htab) {
        free(d);
        errno = ENOMEM;
        return NULL;
    }
    pthread_mutex_init(&d->lock, NULL);
    return d;
}

/* Unlink e from the table and the list and free it.  Lock held. */
static void ent_drop(struct rpc_drc *d, struct drc_ent *e)
{
    struct drc_ent **pp = &d->htab[slot(d, e->xid, e->crc)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    if (e->prev)
        e->prev->next = e->next;
    else
        d->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        d->tail = e->prev;
    d->n--;
    d->bytes -= e->len;
    free(e->reply);
    free(e);
}

/* Forget the oldest entries while over the bounds or expired (never one in progress
   younger than the TTL: its call is still running).  Lock held. */
static void trim(struct rpc_drc *d, uint64_t now)
{
    struct drc_ent *e = d->head;
    while (e) {
        struct drc_ent *next = e->next;
        bool over = d->n > d->max_entries || d->bytes > d->max_bytes;
        bool old = now - e->at_ms > DRC_TTL_MS;
        if (!over && !old)
            break;
        if (e->done || old) {
            ent_drop(d, e);
            d->st.evicted++;
        }
        e = next;
    }
}

void rpc_drc_destroy(struct rpc_drc *d)
{
    if (!d)
        return;
    while (d->head)
        ent_drop(d, d->head);
    free(d->htab);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

enum rpc_drc_verdict rpc_drc_check(struct rpc_drc *d, const struct sockaddr_storage *peer,
                                   uint32_t xid, uint32_t prog, uint32_t vers, uint32_t proc,
                                   uint32_t crc, uint64_t *id, uint8_t **reply, size_t *len)
{
    uint8_t family, addr[16];
    uint16_t port;
    peer_addr(peer, &family, addr, &port);
    uint64_t now = now_ms();
    *reply = NULL;
    *len = 0;

    pthread_mutex_lock(&d->lock);
    trim(d, now);
    for (struct drc_ent *e = d->htab[slot(d, xid, crc)]; e; e = e->hnext) {
        if (e->xid != xid || e->crc != crc || e->proc != proc || e->prog != prog ||
            e->vers != vers || e->family != family || e->port != port ||
            memcmp(e->addr, addr, 16) != 0)
            continue;
        enum rpc_drc_verdict v = RPC_DRC_IN_PROGRESS;
        if (e->done) {
            *reply = malloc(e->len);
            if (*reply) {
                memcpy(*reply, e->reply, e->len);
                *len = e->len;
                v = RPC_DRC_REPLAY;
                d->st.replayed++;
            }
        } else {
            d->st.dropped++;
        }
        pthread_mutex_unlock(&d->lock);
        return v;
    }
    struct drc_ent *e = calloc(1, sizeof(*e));
    if (!e) {
        pthread_mutex_unlock(&d->lock);
        *id = 0;
        return RPC_DRC_NEW; /* served without a cache entry */
    }
    e->id = ++d->next_id;
    e->family = family;
    e->port = port;
    memcpy(e->addr, addr, 16);
    e->xid = xid;
    e->prog = prog;
    e->vers = vers;
    e->proc = proc;
    e->crc = crc;
    e->at_ms = now;
    size_t s = slot(d, xid, crc);
    e->hnext = d->htab[s];
    d->htab[s] = e;
    e->prev = d->tail;
    if (d->tail)
        d->tail->next = e;
    else
        d->head = e;
    d->tail = e;
    d->n++;
    d->st.entered++;
    *id = e->id;
    pthread_mutex_unlock(&d->lock);
    return RPC_DRC_NEW;
}

/* Find entry id (lock held); NULL if it was forgotten meanwhile. */
static struct drc_ent *find_id(struct rpc_drc *d, uint64_t id)
{
    for (struct drc_ent *e = d->tail; e; e = e->prev)
        if (e->id == id)
            return e;
    return NULL;
}

void rpc_drc_done(struct rpc_drc *d, uint64_t id, const uint8_t *reply, size_t len)
{
    if (!id)
        return;
    uint8_t *copy = reply && len ? malloc(len) : NULL;
    if (copy)
        memcpy(copy, reply, len);
    pthread_mutex_lock(&d->lock);
    struct drc_ent *e = find_id(d, id);
    if (e && copy) {
        e->done = true;
        e->reply = copy;
        e->len = len;
        d->bytes += len;
        e->at_ms = now_ms();
        copy = NULL;
    } else if (e) {
        ent_drop(d, e); /* no reply (dropped call), or no memory for it: forget the call */
    }
    trim(d, now_ms());
    pthread_mutex_unlock(&d->lock);
    free(copy);
}

void rpc_drc_get_stats(struct rpc_drc *d, struct rpc_drc_stats *out)
{
    pthread_mutex_lock(&d->lock);
    *out = d->st;
    out->entries = d->n;
    out->bytes = d->bytes;
    pthread_mutex_unlock(&d->lock);
}
