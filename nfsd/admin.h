/*
 * admin.h - the admin control socket of bucketnfsd: state_dir/bucketnfsd.sock,
 * what `bin/bucketnfs` talks to (protocol: nfsd/admin_proto.h).
 *
 * The socket is created mode 0600, and a peer whose uid (SO_PEERCRED) is
 * neither root nor the daemon's own is refused, so only root (or the
 * daemon's user) can use it.  A stale socket of a dead daemon is replaced;
 * one a live daemon answers on is left alone (EADDRINUSE).
 *
 * Threads: one accept thread, plus one thread per request being served
 * (ADMIN_CLIENTS_MAX at most; a request beyond that is answered EBUSY).
 * They use the same inode table, cache and export table as the NFS
 * service, through the same thread-safe calls, and never take a lock of
 * the RPC layer: a long preload or a stuck admin client holds admin
 * threads only, never the NFS service.
 *
 * Contract: functions returning int return 0 or a positive errno.
 */
#ifndef BNFS_ADMIN_H
#define BNFS_ADMIN_H

#include <stddef.h>

#include "nfsd/opstats.h"

struct admin_conf {
    const char *state_dir;      /* the socket goes here */
    struct opstats_src src;     /* counters, exports, inode table, cache */
    /*
     * Re-read the exports file (as SIGHUP does): 0, or an errno with a
     * message in err.  Called from an admin thread; the daemon serializes
     * it with its own SIGHUP handling.
     */
    int (*reload)(void *arg, char *err, size_t errlen);
    void *reload_arg;
};

struct admin_server;

/*
 * Create the socket and start the accept thread.  NULL + errno (logged):
 * ENAMETOOLONG if the socket path does not fit sun_path, EADDRINUSE if a
 * live daemon already answers on it.  c is copied; its pointers must
 * outlive the server.
 */
struct admin_server *admin_start(const struct admin_conf *c);

/*
 * Stop: no new requests; requests in progress are cancelled (their
 * connections shut down; a preload stops at its next block) and their
 * threads joined; the socket file is removed.  NULL is fine.
 */
void admin_stop(struct admin_server *a);

/* The socket path of a state_dir into buf.  ENAMETOOLONG past sun_path. */
int admin_socket_path(const char *state_dir, char *buf, size_t len);

#endif
