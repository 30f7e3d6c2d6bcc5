/*
 * export.h - the live export table (etc/exports.conf made runnable).
 *
 * An export_set is an immutable snapshot of every export: what the MOUNT
 * and NFS handlers consult for each call (by path or by the export id in a
 * file handle), together with each export's root inode.  SIGHUP builds a
 * new set from the re-read exports file and swaps it in; calls in flight
 * keep the set they started with (reference counted), so a reload never
 * pulls an export from under a running call.
 *
 * Stores are created once at start (struct export_ctx owns them); a
 * reload may add, remove or change exports but not stores.
 */
#ifndef BNFS_EXPORT_H
#define BNFS_EXPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/conf.h"
#include "meta/inode.h"

struct objstore;

struct export {
    struct meta_export m;  /* id, store, bucket, prefix, ttl, defaults */
    char *path;
    bool rw;
    struct conf_cidr *clients;
    size_t nclients;
    enum conf_squash squash;
    bool secure;            /* calls only from privileged source ports */
    uint32_t anon_uid, anon_gid;
    struct inode_attr root; /* the root directory's inode (number, generation) */
};

struct export_set {
    struct export *v;
    size_t n;
};

struct export_ctx;

/*
 * Create the stores named in c and the first export set.  The inode table
 * gives each export its stable id and root inode.  NULL + errno, with a
 * message in err.
 */
struct export_ctx *export_ctx_create(const struct conf *c, struct inode_table *t, char *err,
                                     size_t errlen);
void export_ctx_destroy(struct export_ctx *x);

/* Swap in the exports of e (already parsed).  0 or a positive errno with a message in err. */
int export_ctx_reload(struct export_ctx *x, const struct conf_exports *e, char *err,
                      size_t errlen);

/* Take / drop a reference on the current set.  export_set_get never fails. */
const struct export_set *export_set_get(struct export_ctx *x);
void export_set_put(struct export_ctx *x, const struct export_set *s);

const struct export *export_by_id(const struct export_set *s, uint32_t id);
const struct export *export_by_path(const struct export_set *s, const char *path);

/*
 * The export a mount path falls in: an export's own path, or a directory
 * below it ("/demo/drive-0001", as Linux mounts a subtree); the longest
 * export path wins.  *rest (if rest is not NULL) points at what follows
 * the export's path, without leading '/' ("" or "drive-0001").  NULL: none.
 */
const struct export *export_for_mount_path(const struct export_set *s, const char *path,
                                           const char **rest);

/* Is the peer address allowed by the export's clients list? */
bool export_client_allowed(const struct export *e, const struct sockaddr *peer);

/*
 * What the export grants the client at peer: false if the client is not in
 * its list; else *rw and *squash are the client's (its most specific
 * `clients` entry's options, or the export's).
 */
bool export_client_opts(const struct export *e, const struct sockaddr *peer, bool *rw,
                        enum conf_squash *squash);

/* The peer's source port is privileged (< 1024), as `secure` exports require. */
bool export_port_secure(const struct sockaddr *peer);

/*
 * The stores, in the order of conf->stores (for their counters: the admin
 * socket and the metrics).  They live as long as the context.
 */
size_t export_ctx_nstores(const struct export_ctx *x);
struct objstore *export_ctx_store(const struct export_ctx *x, size_t i); /* NULL past the end */

#endif
