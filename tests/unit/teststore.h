/*
 * teststore.h - an in-memory object store for the inode table's tests
 * (test_inode, test_inode_write).
 *
 * struct tstore keeps objects (metadata only, no bytes) in a sorted array
 * and implements head and list with S3 ListObjectsV2 semantics: delimiter
 * roll-up into common prefixes, pages of at most max_keys, continuation
 * tokens; copy (CopyObject) and del (DeleteObject: an absent key is no
 * error).  It counts calls and can inject errors and a listing delay; a
 * hook sees every list, copy and del before it runs and may fail it (or
 * stop the test there).  ts_put, ts_del and friends change the bucket
 * behind the table's back (another tool).
 */
#ifndef BNFS_TESTSTORE_H
#define BNFS_TESTSTORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "meta/inode.h"
#include "objstore/objstore.h"

struct tobj {
    char *key;
    struct obj_meta meta;
};

struct tstore {
    struct objstore base;
    pthread_mutex_t mu;
    struct tobj *v;
    size_t n, cap;
    int fail_list, fail_head; /* errno to return, 0 = none */
    int fail_copy, fail_del;  /* the same, for every copy / del */
    unsigned list_delay_ms;
    unsigned head_delay_ms;   /* slept in every head: a store with latency */
    unsigned head_reply_delay_ms; /* slept after a head has read the object: a slow answer */
    bool markers_as_keys;     /* "d/" markers listed as keys (as a dir backend may) */
    bool list_no_posix;       /* listings carry no POSIX metadata (as S3's never do) */
    atomic_uint heads_inflight, heads_inflight_max; /* heads running now / at most at once */
    atomic_uint lists, heads; /* calls */
    atomic_uint copies, dels; /* calls, failed ones included */
    unsigned max_page;        /* the store's own page limit (0 = max_keys) */
    /*
     * Called (without the store's lock) at the start of every list, copy
     * and del with op "list" (key: the prefix), "copy" (key: the source) or
     * "del"; a non-zero return fails the call with that errno.
     */
    int (*hook)(void *arg, const char *op, const char *key);
    void *hook_arg;
};

/* First index whose key is >= k. */
static inline size_t ts_lower(struct tstore *s, const char *k)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(s->v[mid].key, k) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The object named key, made (zeroed, mtime 1700000000) if absent; *made says which.  mu held. */
static inline struct tobj *ts_slot(struct tstore *s, const char *key, bool *made)
{
    size_t i = ts_lower(s, key);
    *made = !(i < s->n && strcmp(s->v[i].key, key) == 0);
    if (!*made)
        return &s->v[i];
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->v = realloc(s->v, s->cap * sizeof(*s->v));
        if (!s->v)
            abort();
    }
    memmove(&s->v[i + 1], &s->v[i], (s->n - i) * sizeof(*s->v));
    s->n++;
    memset(&s->v[i], 0, sizeof(s->v[i]));
    if (!(s->v[i].key = strdup(key)))
        abort();
    s->v[i].meta.mtime_sec = 1700000000;
    return &s->v[i];
}

static inline void ts_put(struct tstore *s, const char *key, uint64_t size, const char *etag)
{
    bool made;
    pthread_mutex_lock(&s->mu);
    struct tobj *o = ts_slot(s, key, &made);
    o->meta.size = size;
    snprintf(o->meta.etag, OBJ_ETAG_MAX, "%s", etag);
    if (!made)
        o->meta.mtime_sec++;
    pthread_mutex_unlock(&s->mu);
}

/* Is there an object named key? */
static inline bool ts_has(struct tstore *s, const char *key)
{
    pthread_mutex_lock(&s->mu);
    size_t i = ts_lower(s, key);
    bool has = i < s->n && strcmp(s->v[i].key, key) == 0;
    pthread_mutex_unlock(&s->mu);
    return has;
}

/* How many objects have keys starting with prefix? */
static inline size_t ts_count(struct tstore *s, const char *prefix)
{
    size_t n = 0, len = strlen(prefix);
    pthread_mutex_lock(&s->mu);
    for (size_t i = ts_lower(s, prefix); i < s->n && strncmp(s->v[i].key, prefix, len) == 0; i++)
        n++;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static inline void ts_posix(struct tstore *s, const char *key, uint32_t mode, uint32_t uid,
                            uint32_t gid)
{
    pthread_mutex_lock(&s->mu);
    size_t i = ts_lower(s, key);
    if (i < s->n && strcmp(s->v[i].key, key) == 0) {
        s->v[i].meta.has_posix = true;
        s->v[i].meta.mode = mode;
        s->v[i].meta.uid = uid;
        s->v[i].meta.gid = gid;
    }
    pthread_mutex_unlock(&s->mu);
}

/* A "d/" marker object carrying POSIX metadata, as a bucket or the dir store keeps it. */
static inline void ts_marker(struct tstore *s, const char *key, uint32_t perm, uint32_t uid,
                             uint32_t gid, int64_t mtime_sec, uint32_t mtime_nsec)
{
    ts_put(s, key, 0, "marker");
    ts_posix(s, key, S_IFDIR | perm, uid, gid);
    pthread_mutex_lock(&s->mu);
    size_t i = ts_lower(s, key);
    if (i < s->n && strcmp(s->v[i].key, key) == 0) {
        s->v[i].meta.mtime_sec = mtime_sec;
        s->v[i].meta.mtime_nsec = mtime_nsec;
    }
    pthread_mutex_unlock(&s->mu);
}

static inline void ts_del(struct tstore *s, const char *key)
{
    pthread_mutex_lock(&s->mu);
    size_t i = ts_lower(s, key);
    if (i < s->n && strcmp(s->v[i].key, key) == 0) {
        free(s->v[i].key);
        memmove(&s->v[i], &s->v[i + 1], (s->n - i - 1) * sizeof(*s->v));
        s->n--;
    }
    pthread_mutex_unlock(&s->mu);
}

static inline int ts_head(struct objstore *o, const char *bucket, const char *key,
                          struct obj_meta *out)
{
    struct tstore *s = o->priv;
    int r = ENOENT;
    atomic_fetch_add(&s->heads, 1);
    unsigned in = atomic_fetch_add(&s->heads_inflight, 1) + 1;
    unsigned max = atomic_load(&s->heads_inflight_max);
    while (in > max && !atomic_compare_exchange_weak(&s->heads_inflight_max, &max, in))
        ;
    if (s->head_delay_ms)
        usleep(s->head_delay_ms * 1000);
    pthread_mutex_lock(&s->mu);
    if (s->fail_head) {
        r = s->fail_head;
    } else {
        size_t i = ts_lower(s, key);
        if (i < s->n && strcmp(s->v[i].key, key) == 0) {
            *out = s->v[i].meta;
            r = 0;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (s->head_reply_delay_ms)
        usleep(s->head_reply_delay_ms * 1000);
    atomic_fetch_sub(&s->heads_inflight, 1);
    return r;
}

static inline int ts_list(struct objstore *o, const char *bucket, const char *prefix,
                          const char *delim, const char *token_in, unsigned max_keys,
                          obj_list_cb cb, void *arg, char *token_out)
{
    struct tstore *s = o->priv;
    size_t plen = strlen(prefix), i;
    unsigned count = 0;
    int r = 0;
    char cp[OBJ_KEY_MAX + 2];

    atomic_fetch_add(&s->lists, 1);
    if (s->hook && (r = s->hook(s->hook_arg, "list", prefix)))
        return r;
    if (s->list_delay_ms)
        usleep(s->list_delay_ms * 1000);
    if (s->max_page && max_keys > s->max_page)
        max_keys = s->max_page;
    token_out[0] = '\0';
    pthread_mutex_lock(&s->mu);
    if (s->fail_list) {
        r = s->fail_list;
        goto out;
    }
    if (!token_in || !token_in[0]) {
        i = ts_lower(s, prefix);
    } else {
        size_t tl = strlen(token_in);
        snprintf(cp, sizeof(cp), "%s", token_in);
        if (tl && cp[tl - 1] == '/') {
            cp[tl - 1] = '0'; /* past every key under the rolled-up prefix */
            i = ts_lower(s, cp);
        } else {
            i = ts_lower(s, token_in);
            if (i < s->n && strcmp(s->v[i].key, token_in) == 0)
                i++;
        }
    }
    while (i < s->n && strncmp(s->v[i].key, prefix, plen) == 0) {
        if (count == max_keys) {
            goto out; /* token_out already names the last entry */
        }
        const char *k = s->v[i].key;
        const char *slash = (delim && *delim) ? strchr(k + plen, '/') : NULL;
        struct obj_entry e = {0};
        if (slash) {
            size_t cl = (size_t)(slash - k) + 1;
            memcpy(cp, k, cl);
            cp[cl] = '\0';
            e.key = cp;
            e.is_prefix = true;
            if (s->markers_as_keys && strcmp(k, cp) == 0 && strlen(k) > plen) {
                e.is_prefix = false;
                e.meta = s->v[i].meta;
                e.meta.has_posix = e.meta.has_posix && !s->list_no_posix;
            }
            snprintf(token_out, OBJ_TOKEN_MAX, "%s", cp);
            cp[cl - 1] = '0';
            i = ts_lower(s, cp);
            cp[cl - 1] = '/';
        } else {
            e.key = k;
            e.meta = s->v[i].meta;
            e.meta.has_posix = e.meta.has_posix && !s->list_no_posix;
            snprintf(token_out, OBJ_TOKEN_MAX, "%s", k);
            i++;
        }
        count++;
        if ((r = cb(arg, &e)))
            goto out;
    }
    token_out[0] = '\0';
out:
    pthread_mutex_unlock(&s->mu);
    return r;
}

static inline int ts_copy(struct objstore *o, const char *bucket, const char *src, const char *dst,
                          const struct obj_meta *meta)
{
    struct tstore *s = o->priv;
    int r = 0;
    atomic_fetch_add(&s->copies, 1);
    if (s->hook && (r = s->hook(s->hook_arg, "copy", src)))
        return r;
    pthread_mutex_lock(&s->mu);
    size_t i = ts_lower(s, src);
    if (s->fail_copy) {
        r = s->fail_copy;
    } else if (i < s->n && strcmp(s->v[i].key, src) == 0) {
        struct obj_meta m = s->v[i].meta; /* ts_slot may move the array */
        if (meta) {
            m.has_posix = meta->has_posix;
            m.mode = meta->mode;
            m.uid = meta->uid;
            m.gid = meta->gid;
        }
        bool made;
        ts_slot(s, dst, &made)->meta = m;
    } else {
        r = ENOENT;
    }
    pthread_mutex_unlock(&s->mu);
    return r;
}

static inline int ts_delete(struct objstore *o, const char *bucket, const char *key)
{
    struct tstore *s = o->priv;
    int r = 0;
    atomic_fetch_add(&s->dels, 1);
    if (s->hook && (r = s->hook(s->hook_arg, "del", key)))
        return r;
    if (s->fail_del)
        return s->fail_del;
    ts_del(s, key);
    return 0;
}

static inline void ts_destroy(struct objstore *o)
{
    struct tstore *s = o->priv;
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i].key);
    free(s->v);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static const struct obj_ops ts_ops = {
    .head = ts_head,
    .list = ts_list,
    .copy = ts_copy,
    .del = ts_delete,
    .destroy = ts_destroy,
};

static inline struct tstore *ts_create(void)
{
    struct tstore *s = calloc(1, sizeof(*s));
    if (!s)
        abort();
    s->base.ops = &ts_ops;
    s->base.name = "test";
    s->base.priv = s;
    pthread_mutex_init(&s->mu, NULL);
    return s;
}

/* An export of the store s: bucket "bkt", modes 0644/0755, owner 10:20. */
static inline struct meta_export ts_export(struct tstore *s, uint32_t id, const char *prefix,
                                           unsigned ttl)
{
    struct meta_export e = {
        .id = id, .store = &s->base, .bucket = "bkt", .prefix = prefix,
        .metadata_ttl = ttl, .file_mode = 0644, .dir_mode = 0755, .uid = 10, .gid = 20,
    };
    return e;
}

#endif
