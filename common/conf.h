/*
 * conf.h - bucketnfs configuration, parsed once into plain structs.
 *
 * libconfig is used only inside conf.c.  Every other module reads these
 * structs.  Every error is reported as "file:line: what is wrong"; unknown
 * keys and bad values are errors.  Defaults live in one table in conf.c.
 *
 * Relative paths (state_dir, cache dirs, dir-store roots, exports_file) are
 * resolved against the folder of the file that names them, and stored here
 * already resolved.
 */
#ifndef BNFS_CONF_H
#define BNFS_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum conf_store_type { CONF_STORE_DIR, CONF_STORE_S3 };

struct conf_store {
    char *name;
    enum conf_store_type type;
    int line; /* where it was defined, for messages */

    /* type = "dir": a local directory whose subdirectories are buckets. */
    char *root;
    unsigned latency_ms;  /* injected delay before each get/head/list (0 = none) */
    char *latency_match;  /* only keys containing this substring are delayed (NULL = all) */
    double fail_rate;     /* 0..1: share of operations that fail with EIO (injected) */
    bool list_bare;       /* list_posix = false: listings carry no POSIX metadata, as S3's */

    /* type = "s3" (filled for issue 3; validated here). */
    char *endpoint;       /* "https://s3.us-west-2.amazonaws.com" */
    char *region;
    bool virtual_hosted;  /* addressing = "virtual" (true) or "path" */
    char *credentials;    /* "env", "file" or "config" */
    char *profile;        /* credentials file profile (credentials = "file") */
    char *credentials_file;
    char *access_key;     /* credentials = "config" only */
    char *secret_key;
    char *session_token;
};

enum conf_squash { CONF_SQUASH_NONE, CONF_SQUASH_ROOT, CONF_SQUASH_ALL };

/* An export's `consistency` (see meta/inode.h, enum inode_consistency). */
enum conf_consistency {
    CONF_CONSISTENCY_TTL,
    CONF_CONSISTENCY_IMMUTABLE,
    CONF_CONSISTENCY_STRICT,
};

struct conf_cidr {
    uint8_t family; /* AF_INET or AF_INET6 */
    uint8_t prefix_len;
    uint8_t addr[16]; /* network byte order; IPv4 uses the first 4 bytes */
    /* Per-client options of an export's `clients` entry (-1: the export's own). */
    int8_t rw;        /* access: 0 "ro", 1 "rw" */
    int8_t squash;    /* enum conf_squash */
};

struct conf_export {
    char *path;     /* "/demo": what clients mount */
    char *store;    /* name of a conf_store */
    char *bucket;
    char *prefix;   /* "" or "some/prefix/" (always ends with '/' unless empty) */
    bool rw;        /* access = "rw" | "ro" */
    struct conf_cidr *clients;
    size_t nclients;
    enum conf_squash squash;
    uint32_t anon_uid, anon_gid;  /* squash target (default 65534) */
    unsigned metadata_ttl;        /* seconds (default 30) */
    uint32_t file_mode, dir_mode; /* for objects without POSIX metadata (0644, 0755) */
    uint32_t uid, gid;            /* owner of such objects (0, 0) */
    bool shuffle;                 /* read in shuffled epochs: once the cache is full, keep it */
    bool secure;                  /* calls only from privileged source ports (< 1024) */
    unsigned writeback_delay;     /* seconds a written file stays quiet before upload (5) */
    unsigned rename_dir_max;      /* objects a directory RENAME copies at most (10000) */
    enum conf_consistency consistency; /* consistency = "ttl" | "immutable" | "strict" */
    bool posix_own;               /* posix_metadata = "own": only objects we wrote carry it */
    int line;
};

/* Bounds of server.meta_cache. */
#define CONF_META_CACHE_MIN (1ull << 20)
#define CONF_META_CACHE_MAX (1ull << 40)

struct conf_server {
    char *listen;        /* "0.0.0.0" */
    uint16_t nfs_port;   /* 2049 */
    uint16_t mount_port; /* 20048 */
    bool rpcbind;        /* register with rpcbind if it runs */
    unsigned threads;    /* worker threads (16) */
    char *state_dir;     /* resolved path */
    uint64_t meta_cache; /* Berkeley DB cache of the inode table, bytes (64M) */
    char *metrics;       /* "127.0.0.1:9102" (port 0: any free port), or NULL: off */
    int log_level;       /* syslog level (LOG_INFO) */
};

struct conf_cache {
    char **dirs;
    size_t ndirs;
    uint64_t size;          /* bytes */
    uint32_t block_size;    /* bytes */
    uint64_t readahead_max; /* bytes */
    uint64_t prefetch_budget; /* read-ahead + prefetch bytes in flight at most (256M) */
    unsigned fetch_max;       /* concurrent store requests of the cache (64) */
    uint64_t dirty_max;       /* bytes of written, not yet uploaded data (size / 4) */
    unsigned upload_threads;  /* concurrent uploads (4) */
};

struct conf_exports {
    char *file; /* resolved path of the exports file */
    struct conf_export *v;
    size_t n;
};

struct conf {
    char *file; /* resolved path of bucketnfs.conf */
    struct conf_server server;
    struct conf_cache cache;
    struct conf_store *stores;
    size_t nstores;
    struct conf_exports exports;
};

/*
 * Parse `path` and the exports file it names.  Returns 0 and *out (free
 * with conf_free), or a positive errno with "file:line: why" in err.
 */
int conf_load(const char *path, struct conf **out, char *err, size_t errlen);

/*
 * The same without reading the exports file (exports.n is 0, exports.file
 * is set): for tools that need the server section only, such as
 * bin/bucketnfs finding state_dir, so a broken exports file does not stop
 * them.
 */
int conf_load_server(const char *path, struct conf **out, char *err, size_t errlen);

/*
 * Re-read only the exports file of a loaded configuration (SIGHUP).
 * Checks store names against c->stores.  Returns 0 and fills *out (free
 * with conf_exports_free), or a positive errno with a message in err.
 */
int conf_load_exports(const struct conf *c, struct conf_exports *out, char *err,
                      size_t errlen);

const struct conf_store *conf_store_find(const struct conf *c, const char *name);

/* Parse "8G", "1M", "4096" (K/M/G/T binary units).  0 or EINVAL/ERANGE. */
int conf_parse_size(const char *s, uint64_t *out);

/* True if the address (family AF_INET/AF_INET6, bytes in network order) is in the list. */
bool conf_cidr_match(const struct conf_cidr *v, size_t n, int family, const void *addr);

/* The most specific entry of the list containing the address, or NULL. */
const struct conf_cidr *conf_cidr_find(const struct conf_cidr *v, size_t n, int family,
                                       const void *addr);

void conf_exports_free(struct conf_exports *e);
void conf_free(struct conf *c);

#endif
