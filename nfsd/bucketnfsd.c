/*
 * bucketnfsd.c - the daemon: configuration, state, listeners, signals.
 *
 *   bucketnfsd -c FILE [-f]     serve (-f: foreground, log to stderr)
 *   bucketnfsd -t -c FILE       check the configuration; exit 0 or 1
 *
 * Start-up order: configuration -> state_dir -> handle secret -> inode
 * table -> stores and exports -> RPC server (NFS v3, MOUNT v3) -> rpcbind
 * -> admin socket (state_dir/bucketnfsd.sock, nfsd/admin.h) -> metrics
 * endpoint (server.metrics, nfsd/metrics.h).  Those two run on threads of
 * their own; failing to start them is logged, and the NFS service goes on.
 * The main thread then waits for signals: SIGHUP re-reads the exports
 * file (a broken file is reported and the old exports stay), SIGTERM and
 * SIGINT stop the server, let calls in flight finish, and close the inode
 * table cleanly.  `bucketnfs reload` re-reads the exports the same way,
 * from an admin thread: reload_lock keeps the two apart.
 *
 * With port 0 in the configuration the kernel picks free ports; the ports
 * in use are written to state_dir/bucketnfsd.ports for tests and tools.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/conf.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "cache/cache.h"
#include "cache/stage.h"
#include "meta/fileio.h"
#include "meta/writeback.h"
#include "meta/export.h"
#include "meta/fh.h"
#include "meta/inode.h"
#include "meta/xfile.h"
#include "mount3_prot.h"
#include "mountd/mount3.h"
#include "nfs3_prot.h"
#include "nfsd/admin.h"
#include "nfsd/admin_proto.h"
#include "nfsd/metrics.h"
#include "nfsd/nfs3.h"
#include "rpc/oncrpc.h"

static void usage(FILE *to)
{
    fprintf(to, "usage: bucketnfsd -c FILE [-f]\n"
                "       bucketnfsd -t -c FILE\n"
                "  -c FILE  configuration (bucketnfs.conf)\n"
                "  -f       stay in the foreground and log to stderr\n"
                "  -t       check the configuration and exit (0 valid, 1 not)\n"
                "  -h       this help (also --help)\n"
                "The admin tool bin/bucketnfs talks to the daemon over state_dir/%s;\n"
                "server.metrics = \"ADDRESS:PORT\" serves Prometheus metrics at /metrics.\n",
            ADMIN_SOCKET_NAME);
}

/* The WRITE/COMMIT verifier: different at every start, so clients resend what was not committed. */
static uint64_t write_verifier(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 16);
}

static int write_ports(const char *state_dir, uint16_t nfs, uint16_t mnt, uint16_t metrics)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof(path), "%s/bucketnfsd.ports", state_dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return errno;
    fprintf(f, "nfs_port=%u\nmount_port=%u\npid=%ld\n", nfs, mnt, (long)getpid());
    if (metrics)
        fprintf(f, "metrics_port=%u\n", metrics);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        return errno;
    return 0;
}

static int daemonize(void)
{
    pid_t pid = fork();
    if (pid < 0)
        return errno;
    if (pid > 0)
        _exit(0);
    if (setsid() < 0)
        return errno;
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
    return 0;
}

/* What a reload needs; reload_lock serializes SIGHUP and `bucketnfs reload`. */
struct reloader {
    pthread_mutex_t reload_lock;
    struct conf *conf;
    struct export_ctx *exports;
    struct wb *wb;
};

/* The exports' meta_export views (for the uploader and the rename journal), with the set held. */
static const struct meta_export **meta_exports(struct export_ctx *exports,
                                               const struct export_set **set)
{
    *set = export_set_get(exports);
    const struct meta_export **v = calloc((*set)->n ? (*set)->n : 1, sizeof(*v));
    for (size_t i = 0; v && i < (*set)->n; i++)
        v[i] = &(*set)->v[i].m;
    return v;
}

/* Tell the uploader the exports as they are now (at start and after a reload). */
static void wb_exports(struct wb *wb, struct export_ctx *exports)
{
    const struct export_set *set;
    const struct meta_export **v = meta_exports(exports, &set);
    int rc = v ? wb_set_exports(wb, v, set->n) : ENOMEM;
    if (rc)
        LOG_AT(LOG_ERR, "writeback: cannot take the new exports: %s", strerror(rc));
    free(v);
    export_set_put(exports, set);
}

/* Re-read the exports file.  0, or an errno with the reason in err. */
static int reload_exports(struct reloader *r, const char *why, char *err, size_t errlen)
{
    struct conf_exports e;
    pthread_mutex_lock(&r->reload_lock);
    int rc = conf_load_exports(r->conf, &e, err, errlen);
    if (!rc) {
        rc = export_ctx_reload(r->exports, &e, err, errlen);
        if (rc)
            conf_exports_free(&e);
    }
    if (rc) {
        LOG_AT(LOG_ERR, "%s: exports not reloaded, the old ones stay: %s", why, err);
    } else {
        /* The new set copied what it needs; keep the parsed list for the next reload's checks. */
        if (r->wb)
            wb_exports(r->wb, r->exports);
        conf_exports_free(&r->conf->exports);
        r->conf->exports = e;
        LOG_AT(LOG_NOTICE, "%s: %zu export(s) loaded from %s", why, e.n, e.file);
    }
    pthread_mutex_unlock(&r->reload_lock);
    return rc;
}

static int admin_reload(void *arg, char *err, size_t errlen)
{
    return reload_exports(arg, "bucketnfs reload", err, errlen);
}

/* Descriptors the daemon needs beside its connections: inode table, cache shards, store sockets. */
#define FD_RESERVE 256

/*
 * How many connections the RPC server may keep (want at most).  Each needs
 * a descriptor: past RLIMIT_NOFILE, accept() fails with EMFILE before the
 * connection limit is reached, and the limit's remedy (closing a quiet
 * connection for a new one) never runs.  So the soft limit is raised
 * toward want + FD_RESERVE (never past the hard one), and the connection
 * limit lowered to what the descriptors allow.
 */
static unsigned connection_limit(unsigned want)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)want + FD_RESERVE;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
        return want;
    struct rlimit up = {.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need
                                        ? need : rl.rlim_max,
                        .rlim_max = rl.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &up) == 0)
        rl.rlim_cur = up.rlim_cur;
    if (rl.rlim_cur >= need)
        return want;
    unsigned n = rl.rlim_cur > 2 * FD_RESERVE ? (unsigned)(rl.rlim_cur - FD_RESERVE)
                                              : (unsigned)(rl.rlim_cur / 2);
    LOG_AT(LOG_WARNING, "RLIMIT_NOFILE is %llu: %u connections at most (%u with %llu)",
           (unsigned long long)rl.rlim_cur, n, want, (unsigned long long)need);
    return n ? n : 1;
}

int main(int argc, char **argv)
{
    const char *conf_path = NULL;
    int foreground = 0, check_only = 0, opt;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        }
    }
    while ((opt = getopt(argc, argv, "c:fth")) != -1) {
        switch (opt) {
        case 'c': conf_path = optarg; break;
        case 'f': foreground = 1; break;
        case 't': check_only = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!conf_path || optind != argc) {
        usage(stderr);
        return 2;
    }

    char err[1024] = "";
    struct conf *conf = NULL;
    if (conf_load(conf_path, &conf, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (check_only) {
        printf("%s: configuration OK (%zu store(s), %zu export(s))\n", conf->file, conf->nstores,
               conf->exports.n);
        conf_free(conf);
        return 0;
    }

    log_init("bucketnfsd", foreground, conf->server.log_level);
    if (!foreground && daemonize() != 0) {
        fprintf(stderr, "bucketnfsd: cannot detach: %s\n", strerror(errno));
        return 1;
    }

    /* Signals are taken by sigwait in this thread only; workers inherit the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    int status = 1, rc;
    struct fh_key *key = NULL;
    struct inode_table *inodes = NULL;
    struct export_ctx *exports = NULL;
    struct mnt_server *mnt = NULL;
    struct rpc_server *rpc = NULL;
    struct cache *cache = NULL;
    struct stage *stage = NULL;
    struct wb *wb = NULL;
    struct xfile *xf = NULL;
    struct admin_server *admin = NULL;
    struct metrics_server *metrics = NULL;
    bool registered = false;
    struct reloader reloader = {.reload_lock = PTHREAD_MUTEX_INITIALIZER, .conf = conf};
    struct timespec started;
    clock_gettime(CLOCK_REALTIME, &started);

    rc = fs_mkdirs(conf->server.state_dir);
    if (rc) {
        LOG_AT(LOG_ERR, "state_dir %s: %s", conf->server.state_dir, strerror(rc));
        goto out;
    }
    key = fh_key_open(conf->server.state_dir);
    if (!key) {
        LOG_AT(LOG_ERR, "file handle secret in %s: %s", conf->server.state_dir,
               strerror(errno));
        goto out;
    }
    inodes = inode_open(conf->server.state_dir, conf->server.meta_cache);
    if (!inodes) {
        LOG_AT(LOG_ERR, "inode table in %s: %s", conf->server.state_dir, strerror(errno));
        goto out;
    }
    exports = export_ctx_create(conf, inodes, err, sizeof(err));
    if (!exports) {
        LOG_AT(LOG_ERR, "%s", err);
        goto out;
    }
    struct cache_conf cc = {
        .dirs = conf->cache.dirs,
        .ndirs = conf->cache.ndirs,
        .size = conf->cache.size - conf->cache.dirty_max, /* the rest is the stage's */
        .block_size = conf->cache.block_size,
        .readahead_max = conf->cache.readahead_max,
        .prefetch_budget = conf->cache.prefetch_budget,
        .fetch_max = conf->cache.fetch_max,
    };
    cache = cache_create(&cc);
    if (!cache) {
        LOG_AT(LOG_ERR, "block cache in %s: %s", conf->cache.dirs[0], strerror(errno));
        goto out;
    }
    struct stage_conf sc = {.dir = conf->cache.dirs[0], .max_bytes = conf->cache.dirty_max};
    stage = stage_create(&sc);
    if (!stage) {
        LOG_AT(LOG_ERR, "stage (written data) in %s: %s", conf->cache.dirs[0], strerror(errno));
        goto out;
    }
    {
        /* Renames a crash cut off in the bucket: finished or undone before anything is served. */
        const struct export_set *set;
        const struct meta_export **v = meta_exports(exports, &set);
        rc = v ? inode_journal_replay(inodes, v, set->n) : ENOMEM;
        free(v);
        export_set_put(exports, set);
        if (rc)
            LOG_AT(LOG_WARNING, "rename journal: %s (retried at the next start)", strerror(rc));
    }
    rc = meta_stage_recover(inodes, stage);
    if (rc) {
        LOG_AT(LOG_ERR, "stage: recovery: %s", strerror(rc));
        goto out;
    }
    struct wb_conf wc = {.threads = conf->cache.upload_threads, .cache = cache};
    wb = wb_create(&wc, inodes, stage);
    if (!wb) {
        LOG_AT(LOG_ERR, "uploader: %s", strerror(errno));
        goto out;
    }
    wb_exports(wb, exports);
    xf = xfile_create(inodes, cache, conf->cache.readahead_max);
    if (!xf) {
        LOG_AT(LOG_ERR, "cross-file prefetch: %s", strerror(errno));
        goto out;
    }
    mnt = mnt_server_create(exports, key, inodes, conf->server.state_dir);
    if (!mnt) {
        LOG_AT(LOG_ERR, "mount server: %s", strerror(errno));
        goto out;
    }

    struct rpc_server_conf rc_conf = {
        .threads = conf->server.threads,
        .max_record = NFS3_MAX_IO + 64 * 1024, /* a 1 MiB WRITE plus its headers */
        .max_inflight = 128,
        .max_connections = connection_limit(1024),
    };
    rpc = rpc_server_create(&rc_conf);
    if (!rpc) {
        LOG_AT(LOG_ERR, "rpc server: %s", strerror(errno));
        goto out;
    }
    struct nfs3_server nfs = {.inodes = inodes, .fh_key = key, .exports = exports,
                              .cache = cache, .xf = xf, .stage = stage, .wb = wb,
                              .write_verf = write_verifier()};
    struct rpc_program nfs_prog, mnt_prog;
    nfs3_program(&nfs, &nfs_prog);
    mnt_program(mnt, &mnt_prog);
    uint16_t nfs_port = 0, mnt_port = 0, mnt_udp_port = 0;
    if ((rc = rpc_server_add_program(rpc, &nfs_prog)) ||
        (rc = rpc_server_add_program(rpc, &mnt_prog))) {
        LOG_AT(LOG_ERR, "rpc programs: %s", strerror(rc));
        goto out;
    }
    rc = rpc_listen_tcp(rpc, conf->server.listen, conf->server.nfs_port, &nfs_port);
    if (rc) {
        LOG_AT(LOG_ERR, "listen %s:%u/tcp (nfs): %s", conf->server.listen,
               conf->server.nfs_port, strerror(rc));
        goto out;
    }
    rc = rpc_listen_tcp(rpc, conf->server.listen, conf->server.mount_port, &mnt_port);
    if (!rc)
        rc = rpc_listen_udp(rpc, conf->server.listen, mnt_port, &mnt_udp_port);
    if (rc) {
        LOG_AT(LOG_ERR, "listen %s:%u (mount): %s", conf->server.listen,
               conf->server.mount_port, strerror(rc));
        goto out;
    }
    if ((rc = rpc_server_start(rpc))) {
        LOG_AT(LOG_ERR, "rpc server start: %s", strerror(rc));
        goto out;
    }
    if (conf->server.rpcbind) {
        rc = rpc_register(NFS3_PROGRAM, NFS_V3, IPPROTO_TCP, nfs_port);
        if (!rc)
            rc = rpc_register(MOUNT_PROGRAM, MOUNT_V3, IPPROTO_TCP, mnt_port);
        if (!rc)
            rc = rpc_register(MOUNT_PROGRAM, MOUNT_V3, IPPROTO_UDP, mnt_udp_port);
        if (rc)
            LOG_AT(LOG_WARNING, "rpcbind registration failed (%s): clients must give "
                   "port=%u,mountport=%u", strerror(rc), nfs_port, mnt_port);
        else
            registered = true;
    }
    reloader.exports = exports;
    reloader.wb = wb;
    struct admin_conf ac = {
        .state_dir = conf->server.state_dir,
        .src = {.conf = conf, .inodes = inodes, .exports = exports, .cache = cache, .rpc = rpc,
                .stage = stage, .wb = wb, .mnt = mnt, .nfs3 = &nfs,
                .start_time_sec = started.tv_sec},
        .reload = admin_reload,
        .reload_arg = &reloader,
    };
    admin = admin_start(&ac); /* logs why not; the NFS service does not need it */
    uint16_t metrics_port = 0;
    if (conf->server.metrics) {
        metrics = metrics_start(conf->server.metrics, &ac.src, &metrics_port);
        if (metrics)
            LOG_AT(LOG_INFO, "metrics: http://%s/metrics (port %u)", conf->server.metrics,
                   metrics_port);
    }
    if ((rc = write_ports(conf->server.state_dir, nfs_port, mnt_port, metrics_port)))
        LOG_AT(LOG_WARNING, "cannot write %s/bucketnfsd.ports: %s", conf->server.state_dir,
               strerror(rc));
    LOG_AT(LOG_NOTICE, "serving %zu export(s): nfs %s:%u/tcp, mount %s:%u/tcp+udp%s",
           conf->exports.n, conf->server.listen, nfs_port, conf->server.listen, mnt_port,
           registered ? ", registered with rpcbind" : "");

    for (;;) {
        int sig = 0;
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            reload_exports(&reloader, "SIGHUP", err, sizeof(err));
            continue;
        }
        LOG_AT(LOG_NOTICE, "signal %d: stopping", sig);
        break;
    }
    status = 0;

out:
    /* First the threads that read the other modules' state. */
    admin_stop(admin);
    metrics_stop(metrics);
    if (registered) {
        rpc_unregister(NFS3_PROGRAM, NFS_V3);
        rpc_unregister(MOUNT_PROGRAM, MOUNT_V3);
    }
    /*
     * Stop taking calls and wait for the ones waiting on the cache; then the
     * cache's fetch threads finish (a late completion is dropped by the
     * stopped server); then the server's memory goes.
     */
    if (rpc)
        rpc_server_stop(rpc);
    xfile_destroy(xf);
    /* An upload in progress stops (it resumes at the next start); what is staged stays. */
    wb_destroy(wb);
    if (stage && stage_sync_all(stage) == 0 && inodes && inode_sync(inodes) == 0)
        LOG_AT(LOG_INFO, "written data not yet uploaded is on disk");
    stage_destroy(stage);
    cache_destroy(cache);
    if (rpc)
        rpc_server_destroy(rpc);
    mnt_server_destroy(mnt);
    /* Background listings use the stores: stop them before the stores go. */
    if (inodes)
        inode_quiesce(inodes);
    export_ctx_destroy(exports);
    inode_close(inodes);
    fh_key_free(key);
    conf_free(conf);
    return status;
}
