/*
 * metrics.h - the Prometheus endpoint of bucketnfsd (server.metrics).
 *
 * A tiny HTTP/1.1 server on its own thread: GET (or HEAD) /metrics answers
 * 200 with every counter of an opstats snapshot in the text exposition
 * format, version 0.0.4; any other path is 404, any other method 405, a
 * malformed or oversized request 400.  One connection at a time, closed
 * after its answer; a request must arrive within METRICS_IO_MS and be at
 * most METRICS_REQUEST_MAX bytes, and the answer must leave within
 * METRICS_IO_MS, so a stuck scraper holds this thread for a bounded time
 * and never the NFS service.
 *
 * Metric names start with bucketnfs_ (the process_ ones follow the
 * Prometheus convention); cache counters come as totals and per export
 * (label export="/path"), store counters per store (label store="name").
 *
 * Contract: functions returning int return 0 or a positive errno.
 */
#ifndef BNFS_METRICS_H
#define BNFS_METRICS_H

#include <stdint.h>

#include "nfsd/opstats.h"

#define METRICS_REQUEST_MAX 8192
#define METRICS_IO_MS 2000

struct sbuf;
struct metrics_server;

/*
 * Listen on addr ("127.0.0.1:9102", "[::1]:9102"; port 0 picks a free
 * port, written to *bound_port) and serve src's counters.  NULL + errno
 * (logged).  src is copied; its pointers must outlive the server.
 */
struct metrics_server *metrics_start(const char *addr, const struct opstats_src *src,
                                     uint16_t *bound_port);

/* Stop the thread, close the socket, free.  NULL is fine. */
void metrics_stop(struct metrics_server *m);

/* The exposition text of a snapshot, appended to b (sticky ENOMEM in b). */
void metrics_render(const struct opstats *s, struct sbuf *b);

#endif
