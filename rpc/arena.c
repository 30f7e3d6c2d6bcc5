/*
 * arena.c - per-request memory: what rpc_alloc() and rpc_strdup() hand out.
 *
 * A handler allocates reply data (names, entry lists, read buffers) that
 * must live until the reply is encoded; the arena frees it all at once
 * after the reply is sent.  Memory comes in chunks: small allocations are
 * carved from the current chunk, one larger than a chunk gets a chunk of
 * its own.  Every allocation is zeroed and aligned for max_align_t.
 *
 * Threads: one arena belongs to one request and is used by one thread at
 * a time: the one running its handler, then (for an async call) whichever
 * the handler hands the call to, up to rpc_complete.  No locks.
 */
#include "rpc/rpc_internal.h"

#include "common/log.h"

#include <errno.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_CHUNK 8192
#define ARENA_ALIGN alignof(max_align_t)

struct arena_chunk {
    struct arena_chunk *next;
    size_t size, used;
    alignas(max_align_t) unsigned char data[];
};

struct rpc_arena {
    struct arena_chunk *head; /* the chunk being carved; older ones follow */
};

struct rpc_arena *rpc_arena_create(void)
{
    return calloc(1, sizeof(struct rpc_arena));
}

void rpc_arena_destroy(struct rpc_arena *a)
{
    if (!a)
        return;
    struct arena_chunk *c = a->head;
    while (c) {
        struct arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    free(a);
}

void *rpc_arena_alloc(struct rpc_arena *a, size_t n)
{
    if (n == 0)
        n = 1;
    if (n > SIZE_MAX - ARENA_ALIGN - sizeof(struct arena_chunk)) {
        errno = EOVERFLOW;
        return NULL;
    }
    size_t need = (n + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
    struct arena_chunk *c = a->head;
    if (!c || c->size - c->used < need) {
        size_t size = need > ARENA_CHUNK ? need : ARENA_CHUNK;
        c = malloc(sizeof(*c) + size);
        if (!c) {
            errno = ENOMEM;
            return NULL;
        }
        c->size = size;
        c->used = 0;
        if (a->head && need > ARENA_CHUNK) {
            /* A big one-off: keep carving the current chunk afterwards. */
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    void *p = c->data + c->used;
    c->used += need;
    memset(p, 0, need);
    return p;
}

void *rpc_alloc(struct rpc_req *req, size_t n)
{
    void *p = rpc_arena_alloc(req->arena, n);
    if (!p) {
        LOG_AT(LOG_CRIT, "rpc: out of memory allocating %zu bytes for a reply", n);
        abort();
    }
    return p;
}

char *rpc_strdup(struct rpc_req *req, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = rpc_alloc(req, n);
    memcpy(p, s, n);
    return p;
}
