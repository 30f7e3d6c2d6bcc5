/*
 * inode_ahead.c - HEADs in parallel ahead of a READDIRPLUS walk.
 *
 * A READDIRPLUS reply carries the attributes of up to a few hundred
 * entries, and the client caches them.  For files known only from a
 * listing without POSIX metadata (S3), or whose attributes have expired,
 * those attributes must be confirmed with HEAD first (inode_reval.c).  One
 * after the other that is a round trip per entry on the worker thread --
 * `ls -l` of 100,000 frames waits for 100,000 sequential HEADs.  Instead
 * inode_readdirplus hands each batch of such entries to this pool and waits
 * for the batch: the HEADs run side by side.
 *
 * The pool: AHEAD_THREADS threads, started by inode_open and joined by
 * inode_quiesce / inode_close; a FIFO of jobs (one file each), each job
 * belonging to a batch whose caller waits on its batch_done.  A thread
 * takes the first queued job whose export has fewer than AHEAD_PER_EXPORT
 * HEADs running (t->ahead_loads counts them per export id), so one export's
 * walk cannot take every thread, nor send the store more than that at once.
 * Each job is file_revalidate: single flight with any other HEAD of the same
 * inode, and the record is updated (or removed, ESTALE) in its own
 * transaction.  Callers' export and records outlive their batch (the caller
 * waits), so jobs point at them.
 *
 * Stopping: ahead_pool_stop lets the threads finish the queue, then joins
 * them; later batches run on the caller's thread, one job after the other.
 *
 * Lock: ahead_mu guards the queue, the loads, the counters of the pool and
 * every batch's pending count; never held across a store call or a
 * transaction.  Lock order: ahead_mu is taken alone.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "common/log.h"
#include "meta/inode_internal.h"

struct ahead_batch {
    const struct meta_export *e;
    size_t pending;             /* jobs not yet done */
    pthread_cond_t batch_done;  /* signals: pending reached 0 */
};

/* The load record of export id, made on first use (NULL: out of memory).  ahead_mu held. */
static struct ahead_load *load_of(struct inode_table *t, uint32_t id)
{
    for (struct ahead_load *l = t->ahead_loads; l; l = l->next)
        if (l->export_id == id)
            return l;
    struct ahead_load *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->export_id = id;
    l->next = t->ahead_loads;
    t->ahead_loads = l;
    return l;
}

/*
 * Take the first queued job whose export is below its limit; NULL if none
 * may start now.  *load receives that export's load record.  ahead_mu held.
 */
static struct ahead_job *take_job(struct inode_table *t, struct ahead_load **load)
{
    for (struct ahead_job **pp = &t->ahead_queue; *pp; pp = &(*pp)->next) {
        struct ahead_job *j = *pp;
        struct ahead_load *l = load_of(t, j->b->e->id);
        if (l && l->running >= AHEAD_PER_EXPORT)
            continue;
        *pp = j->next;
        if (t->ahead_tail == &j->next)
            t->ahead_tail = pp;
        *load = l;
        return j;
    }
    return NULL;
}

static void *ahead_main(void *arg)
{
    struct inode_table *t = arg;
    pthread_mutex_lock(&t->ahead_mu);
    for (;;) {
        struct ahead_load *l = NULL;
        struct ahead_job *j = take_job(t, &l);
        if (!j) {
            if (t->ahead_stopping && !t->ahead_queue)
                break;
            pthread_cond_wait(&t->ahead_ready, &t->ahead_mu);
            continue;
        }
        if (l && ++l->running > t->ahead_running_max)
            t->ahead_running_max = l->running;
        pthread_mutex_unlock(&t->ahead_mu);

        atomic_fetch_add(&t->n_heads_ahead, 1);
        int rc = file_revalidate(t, j->b->e, j->rec);

        pthread_mutex_lock(&t->ahead_mu);
        if (l) {
            l->running--;
            pthread_cond_broadcast(&t->ahead_ready); /* a job held back by the limit may go */
        }
        j->rc = rc;
        if (--j->b->pending == 0)
            pthread_cond_signal(&j->b->batch_done);
    }
    pthread_mutex_unlock(&t->ahead_mu);
    return NULL;
}

void ahead_run(struct inode_table *t, const struct meta_export *e, struct ahead_job *jobs,
               size_t n)
{
    struct ahead_batch b = {.e = e, .pending = n};
    pthread_mutex_lock(&t->ahead_mu);
    if (t->nahead == 0 || t->ahead_stopping) {
        pthread_mutex_unlock(&t->ahead_mu);
        for (size_t i = 0; i < n; i++)
            jobs[i].rc = file_revalidate(t, e, jobs[i].rec);
        return;
    }
    pthread_cond_init(&b.batch_done, NULL);
    for (size_t i = 0; i < n; i++) {
        jobs[i].b = &b;
        jobs[i].rc = 0;
        jobs[i].next = NULL;
        *t->ahead_tail = &jobs[i];
        t->ahead_tail = &jobs[i].next;
    }
    pthread_cond_broadcast(&t->ahead_ready);
    while (b.pending)
        pthread_cond_wait(&b.batch_done, &t->ahead_mu);
    pthread_mutex_unlock(&t->ahead_mu);
    pthread_cond_destroy(&b.batch_done);
}

int ahead_pool_start(struct inode_table *t)
{
    int rc = 0;
    pthread_mutex_lock(&t->ahead_mu);
    t->ahead_stopping = false;
    for (; t->nahead < AHEAD_THREADS; t->nahead++) {
        if ((rc = pthread_create(&t->ahead[t->nahead], NULL, ahead_main, t)))
            break;
    }
    pthread_mutex_unlock(&t->ahead_mu);
    return rc;
}

void ahead_pool_stop(struct inode_table *t)
{
    pthread_mutex_lock(&t->ahead_mu);
    t->ahead_stopping = true;
    pthread_cond_broadcast(&t->ahead_ready);
    unsigned n = t->nahead;
    pthread_mutex_unlock(&t->ahead_mu);
    for (unsigned i = 0; i < n; i++)
        pthread_join(t->ahead[i], NULL);
    pthread_mutex_lock(&t->ahead_mu);
    t->nahead = 0;
    pthread_mutex_unlock(&t->ahead_mu);
}
