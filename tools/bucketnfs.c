/*
 * bucketnfs.c - the admin tool: talks to a running bucketnfsd over its
 * admin socket (state_dir/bucketnfsd.sock; protocol in nfsd/admin_proto.h).
 *
 *   bucketnfs [-c FILE | -s SOCKET] COMMAND [ARGS]
 *
 * One command is one connection: the request line goes out, the records
 * come back and are printed as they arrive (a preload's progress bar is
 * redrawn from its progress records), the final line decides the exit
 * code (see usage()).  Ctrl-C closes the connection, which cancels the
 * request in the daemon.  Records of `stats` are kept in memory until the
 * final line (their number is bounded by the exports and stores) and then
 * printed as a table or JSON.
 *
 * Single-threaded; the only signal handled is SIGINT/SIGTERM (a flag).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/conf.h"
#include "nfsd/admin.h"
#include "nfsd/admin_proto.h"

enum {
    EXIT_OK = 0,
    EXIT_FAILED = 1,      /* the daemon refused the request, or some paths failed */
    EXIT_USAGE = 2,       /* bad arguments or configuration */
    EXIT_NOT_RUNNING = 3, /* no socket, or nothing answers on it */
    EXIT_PROTOCOL = 4,    /* the connection broke or the answer made no sense */
    EXIT_INTERRUPTED = 130,
};

#define REPLY_TIMEOUT_MS 120000 /* every request but preload answers well within this */

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void usage(FILE *to)
{
    fprintf(to,
            "usage: bucketnfs [-c FILE | -s SOCKET] COMMAND [ARGS]\n"
            "\n"
            "commands:\n"
            "  status                    exports, cache use and hit ratio, store requests, RPC\n"
            "  stats [--json]            every counter\n"
            "  pin EXPORT PATH...        keep files (every file under a directory) in the cache\n"
            "  unpin EXPORT PATH...      let them be evicted again\n"
            "  evict [--force] EXPORT PATH...\n"
            "                            drop the cached blocks of files (every file under a\n"
            "                            directory); pinned files are kept (and counted as\n"
            "                            failed) unless --force, which leaves their pins\n"
            "  refresh EXPORT [PATH]     list a directory again now (default: the export root)\n"
            "  reload                    re-read the exports file (as SIGHUP)\n"
            "  flush [EXPORT [PATH]] [--wait]\n"
            "                            upload now what was written and not yet uploaded\n"
            "                            (PATH a file: that file; EXPORT alone or with a\n"
            "                            directory: that export; nothing: every export);\n"
            "                            --wait: return when it is all in the bucket, with\n"
            "                            progress\n"
            "  preload [--json] EXPORT PATH...\n"
            "                            read files and trees into the cache, with progress;\n"
            "                            Ctrl-C stops it\n"
            "\n"
            "options:\n"
            "  -c FILE    bucketnfs.conf, to find server.state_dir (default: $BUCKETNFS_CONF,\n"
            "             else etc/bucketnfs.conf or etc/bucketnfs/bucketnfs.conf beside the\n"
            "             folder of this program, else /etc/bucketnfs/bucketnfs.conf)\n"
            "  -s SOCKET  the admin socket itself (state_dir/%s)\n"
            "  -h, --help this help\n"
            "\n"
            "PATH is relative to the export's root.  Exit codes: 0 done; 1 the daemon refused\n"
            "the request or some paths failed; 2 bad usage or configuration; 3 the daemon is\n"
            "not running; 4 the connection broke or the answer was malformed; 130 interrupted.\n",
            ADMIN_SOCKET_NAME);
}

/* ---- finding and talking to the daemon -------------------------------- */

static int default_conf(char *buf, size_t len)
{
    const char *env = getenv("BUCKETNFS_CONF");
    if (env && *env) {
        snprintf(buf, len, "%s", env);
        return 0;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return ENOENT;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return ENOENT;
    *slash = '\0';
    static const char *const rel[] = {"../etc/bucketnfs.conf", "../etc/bucketnfs/bucketnfs.conf"};
    for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
        if (snprintf(buf, len, "%s/%s", exe, rel[i]) >= (int)len)
            continue;
        if (access(buf, R_OK) == 0)
            return 0;
    }
    /* A system install (PREFIX=/usr) keeps its configuration in /etc, not /usr/etc. */
    snprintf(buf, len, "%s", "/etc/bucketnfs/bucketnfs.conf");
    if (access(buf, R_OK) == 0)
        return 0;
    return ENOENT;
}

static int socket_from_conf(const char *conf_path, char *sock, size_t len)
{
    char path[PATH_MAX];
    if (!conf_path) {
        if (default_conf(path, sizeof(path))) {
            fprintf(stderr, "bucketnfs: no configuration found: give -c FILE or -s SOCKET\n");
            return EXIT_USAGE;
        }
        conf_path = path;
    }
    char err[1024] = "";
    struct conf *c = NULL;
    if (conf_load_server(conf_path, &c, err, sizeof(err)) != 0) {
        fprintf(stderr, "bucketnfs: %s\n", err);
        return EXIT_USAGE;
    }
    int rc = admin_socket_path(c->server.state_dir, sock, len);
    if (rc)
        fprintf(stderr, "bucketnfs: %s/%s: path too long for a socket\n", c->server.state_dir,
                ADMIN_SOCKET_NAME);
    conf_free(c);
    return rc ? EXIT_USAGE : EXIT_OK;
}

static int connect_daemon(const char *path, int *out)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "bucketnfs: %s: path too long for a socket\n", path);
        return EXIT_USAGE;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "bucketnfs: socket: %s\n", strerror(errno));
        return EXIT_PROTOCOL;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int e = errno;
        close(fd);
        if (e == ENOENT || e == ENOTDIR)
            fprintf(stderr, "bucketnfs: the daemon is not running (no socket at %s)\n", path);
        else if (e == ECONNREFUSED)
            fprintf(stderr, "bucketnfs: the daemon is not running (nothing answers on %s)\n",
                    path);
        else if (e == EACCES || e == EPERM)
            fprintf(stderr, "bucketnfs: %s: permission denied (the admin socket is root's)\n",
                    path);
        else
            fprintf(stderr, "bucketnfs: connect %s: %s\n", path, strerror(e));
        return e == ENOENT || e == ENOTDIR || e == ECONNREFUSED ? EXIT_NOT_RUNNING : EXIT_FAILED;
    }
    *out = fd;
    return EXIT_OK;
}

static int send_request(int fd, const char *const *w, size_t n)
{
    char line[ADMIN_LINE_MAX + 1];
    size_t len;
    int rc = admin_encode(w, n, line, sizeof(line), &len);
    if (rc) {
        fprintf(stderr, "bucketnfs: request too long (%s)\n", strerror(rc));
        return EXIT_USAGE;
    }
    for (size_t off = 0; off < len;) {
        ssize_t k = send(fd, line + off, len - off, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR && !interrupted)
            continue;
        if (k <= 0) {
            fprintf(stderr, "bucketnfs: sending the request: %s\n", strerror(errno));
            return interrupted ? EXIT_INTERRUPTED : EXIT_PROTOCOL;
        }
        off += (size_t)k;
    }
    return EXIT_OK;
}

/* ---- formatting ------------------------------------------------------- */

static const char *human(char *buf, size_t len, double v)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%.0f %s", v, units[u]);
    else
        snprintf(buf, len, "%.1f %s", v, units[u]);
    return buf;
}

static const char *duration(char *buf, size_t len, double sec)
{
    if (sec < 0 || sec > 1e9)
        return snprintf(buf, len, "--"), buf;
    uint64_t s = (uint64_t)(sec + 0.5);
    if (s >= 3600)
        snprintf(buf, len, "%" PRIu64 "h%02" PRIu64 "m", s / 3600, s / 60 % 60);
    else if (s >= 60)
        snprintf(buf, len, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
    else
        snprintf(buf, len, "%" PRIu64 "s", s);
    return buf;
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* ---- stats and status ------------------------------------------------- */

struct stat_rec {
    char *section, *instance, *name;
    uint64_t value;
};

struct export_rec {
    char *path, *store, *bucket, *prefix, *access;
    uint64_t id;
};

struct store_rec {
    char *name, *type;
};

struct info_rec {
    char *key, *value;
};

struct mount_rec {
    char *export, *host, *path;
    uint64_t since;
};

struct client_rec {
    char *host;
    uint64_t connections, calls, idle_ms, age_ms;
};

struct storeerr_rec {
    char *store, *op, *code, *message;
    uint64_t time, status;
};

struct answer {
    struct stat_rec *st;
    size_t nst, capst;
    struct export_rec *ex;
    size_t nex;
    struct store_rec *so;
    size_t nso;
    struct info_rec *in;
    size_t nin;
    struct mount_rec *mo;
    size_t nmo;
    struct client_rec *cl;
    size_t ncl;
    struct storeerr_rec *se;
    size_t nse;
};

static void *grow(void *p, size_t n, size_t size)
{
    void *q = realloc(p, (n + 1) * size);
    if (!q) {
        fprintf(stderr, "bucketnfs: out of memory\n");
        exit(EXIT_FAILED);
    }
    return q;
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (!d) {
        fprintf(stderr, "bucketnfs: out of memory\n");
        exit(EXIT_FAILED);
    }
    return d;
}

/* Keep one record of a stats answer.  false: not a record this answer has. */
static bool keep(struct answer *a, const struct admin_msg *m)
{
    const char *k = m->w[0];
    if (strcmp(k, "stat") == 0 && m->n == 5) {
        a->st = grow(a->st, a->nst, sizeof(*a->st));
        a->st[a->nst++] = (struct stat_rec){xstrdup(m->w[1]), xstrdup(m->w[2]), xstrdup(m->w[3]),
                                            strtoull(m->w[4], NULL, 10)};
    } else if (strcmp(k, "export") == 0 && m->n == 7) {
        a->ex = grow(a->ex, a->nex, sizeof(*a->ex));
        a->ex[a->nex++] = (struct export_rec){xstrdup(m->w[1]), xstrdup(m->w[2]), xstrdup(m->w[3]),
                                              xstrdup(m->w[4]), xstrdup(m->w[5]),
                                              strtoull(m->w[6], NULL, 10)};
    } else if (strcmp(k, "store") == 0 && m->n == 3) {
        a->so = grow(a->so, a->nso, sizeof(*a->so));
        a->so[a->nso++] = (struct store_rec){xstrdup(m->w[1]), xstrdup(m->w[2])};
    } else if (strcmp(k, "mount") == 0 && m->n == 5) {
        a->mo = grow(a->mo, a->nmo, sizeof(*a->mo));
        a->mo[a->nmo++] = (struct mount_rec){xstrdup(m->w[1]), xstrdup(m->w[2]), xstrdup(m->w[3]),
                                             strtoull(m->w[4], NULL, 10)};
    } else if (strcmp(k, "client") == 0 && m->n == 6) {
        a->cl = grow(a->cl, a->ncl, sizeof(*a->cl));
        a->cl[a->ncl++] = (struct client_rec){xstrdup(m->w[1]), strtoull(m->w[2], NULL, 10),
                                              strtoull(m->w[3], NULL, 10),
                                              strtoull(m->w[4], NULL, 10),
                                              strtoull(m->w[5], NULL, 10)};
    } else if (strcmp(k, "storeerror") == 0 && m->n == 7) {
        a->se = grow(a->se, a->nse, sizeof(*a->se));
        a->se[a->nse++] = (struct storeerr_rec){xstrdup(m->w[1]), xstrdup(m->w[3]),
                                                xstrdup(m->w[5]), xstrdup(m->w[6]),
                                                strtoull(m->w[2], NULL, 10),
                                                strtoull(m->w[4], NULL, 10)};
    } else if (strcmp(k, "info") == 0 && m->n == 3) {
        a->in = grow(a->in, a->nin, sizeof(*a->in));
        a->in[a->nin++] = (struct info_rec){xstrdup(m->w[1]), xstrdup(m->w[2])};
    } else {
        return false;
    }
    return true;
}

static uint64_t stat_of(const struct answer *a, const char *section, const char *instance,
                        const char *name)
{
    for (size_t i = 0; i < a->nst; i++)
        if (strcmp(a->st[i].section, section) == 0 && strcmp(a->st[i].instance, instance) == 0 &&
            strcmp(a->st[i].name, name) == 0)
            return a->st[i].value;
    return 0;
}

static const struct storeerr_rec *storeerr_of(const struct answer *a, const char *store)
{
    for (size_t i = 0; i < a->nse; i++)
        if (strcmp(a->se[i].store, store) == 0)
            return &a->se[i];
    return NULL;
}

static const struct client_rec *client_of(const struct answer *a, const char *host)
{
    for (size_t i = 0; i < a->ncl; i++)
        if (strcmp(a->cl[i].host, host) == 0)
            return &a->cl[i];
    return NULL;
}

static const char *info_of(const struct answer *a, const char *key)
{
    for (size_t i = 0; i < a->nin; i++)
        if (strcmp(a->in[i].key, key) == 0)
            return a->in[i].value;
    return "";
}

/* The counters of one section/instance as a JSON object (with "type": type first, if given). */
static void json_group(FILE *f, const struct answer *a, const char *section, const char *instance,
                       const char *type)
{
    bool first = true;
    fputc('{', f);
    if (type) {
        fputs("\"type\": ", f);
        json_str(f, type);
        first = false;
    }
    for (size_t i = 0; i < a->nst; i++) {
        if (strcmp(a->st[i].section, section) != 0 || strcmp(a->st[i].instance, instance) != 0)
            continue;
        fputs(first ? "" : ", ", f);
        json_str(f, a->st[i].name);
        fprintf(f, ": %" PRIu64, a->st[i].value);
        first = false;
    }
    fputc('}', f);
}

/* The mounts of export path (or "-": of no export) as JSON objects, comma-separated. */
static void json_mounts(FILE *f, const struct answer *a, const char *path)
{
    bool first = true;
    for (size_t i = 0; i < a->nmo; i++) {
        const struct mount_rec *m = &a->mo[i];
        if (strcmp(m->export, path) != 0)
            continue;
        fputs(first ? "{\"host\": " : ", {\"host\": ", f);
        json_str(f, m->host);
        fputs(", \"path\": ", f);
        json_str(f, m->path);
        fprintf(f, ", \"since\": %" PRIu64 ", \"connected\": %s}", m->since,
                client_of(a, m->host) ? "true" : "false");
        first = false;
    }
}

static void print_json(const struct answer *a)
{
    FILE *f = stdout;
    fputs("{\n  \"daemon\": {", f);
    for (size_t i = 0; i < a->nin; i++) {
        fputs(i ? ", " : "", f);
        json_str(f, a->in[i].key);
        fputs(": ", f);
        char *end;
        strtoull(a->in[i].value, &end, 10);
        if (a->in[i].value[0] && !*end)
            fputs(a->in[i].value, f);
        else
            json_str(f, a->in[i].value);
    }
    fputs("},\n  \"cache\": ", f);
    json_group(f, a, "cache", "total", NULL);
    fputs(",\n  \"exports\": [", f);
    for (size_t i = 0; i < a->nex; i++) {
        const struct export_rec *e = &a->ex[i];
        fputs(i ? ",\n    {" : "\n    {", f);
        fputs("\"path\": ", f);
        json_str(f, e->path);
        fputs(", \"store\": ", f);
        json_str(f, e->store);
        fputs(", \"bucket\": ", f);
        json_str(f, e->bucket);
        fputs(", \"prefix\": ", f);
        json_str(f, e->prefix);
        fputs(", \"access\": ", f);
        json_str(f, e->access);
        fprintf(f, ", \"id\": %" PRIu64 ", \"cache\": ", e->id);
        json_group(f, a, "cache", e->path, NULL);
        fprintf(f, ", \"upload_backoff_seconds\": %" PRIu64 ", \"mounts\": [",
                stat_of(a, "export", e->path, "upload_backoff_seconds"));
        json_mounts(f, a, e->path);
        fputs("]}", f);
    }
    fputs(a->nex ? "\n  ],\n  \"stores\": {" : "],\n  \"stores\": {", f);
    for (size_t i = 0; i < a->nso; i++) {
        fputs(i ? ",\n    " : "\n    ", f);
        json_str(f, a->so[i].name);
        fputs(": ", f);
        json_group(f, a, "store", a->so[i].name, a->so[i].type);
    }
    fputs(a->nso ? "\n  }" : "}", f);
    fputs(",\n  \"store_errors\": {", f);
    for (size_t i = 0; i < a->nse; i++) {
        const struct storeerr_rec *se = &a->se[i];
        fputs(i ? ",\n    " : "\n    ", f);
        json_str(f, se->store);
        fprintf(f, ": {\"time\": %" PRIu64 ", \"op\": ", se->time);
        json_str(f, se->op);
        fprintf(f, ", \"status\": %" PRIu64 ", \"error\": ", se->status);
        json_str(f, se->code);
        fputs(", \"message\": ", f);
        json_str(f, se->message);
        fputc('}', f);
    }
    fputs(a->nse ? "\n  }" : "}", f);
    fputs(",\n  \"clients\": [", f);
    for (size_t i = 0; i < a->ncl; i++) {
        const struct client_rec *c = &a->cl[i];
        fputs(i ? ",\n    {\"address\": " : "\n    {\"address\": ", f);
        json_str(f, c->host);
        fprintf(f, ", \"connections\": %" PRIu64 ", \"calls\": %" PRIu64
                   ", \"idle_ms\": %" PRIu64 ", \"age_ms\": %" PRIu64 "}",
                c->connections, c->calls, c->idle_ms, c->age_ms);
    }
    fputs(a->ncl ? "\n  ]" : "]", f);
    fputs(",\n  \"unexported_mounts\": [", f);
    json_mounts(f, a, "-");
    fputc(']', f);
    static const char *const singles[] = {"inode", "writeback", "rpc", "nfs3", "nfs3_status",
                                          "mount3", "process"};
    for (size_t i = 0; i < sizeof(singles) / sizeof(singles[0]); i++) {
        fprintf(f, ",\n  \"%s\": ", singles[i]);
        json_group(f, a, singles[i], "-", NULL);
    }
    fputs("\n}\n", f);
}

static void print_plain(const struct answer *a)
{
    for (size_t i = 0; i < a->nin; i++)
        printf("%-8s %-20s %-26s %s\n", "daemon", "-", a->in[i].key, a->in[i].value);
    for (size_t i = 0; i < a->nst; i++)
        printf("%-8s %-20s %-26s %" PRIu64 "\n", a->st[i].section, a->st[i].instance,
               a->st[i].name, a->st[i].value);
}

static double ratio(uint64_t part, uint64_t whole)
{
    return whole ? 100.0 * (double)part / (double)whole : 0;
}

/* One line: title, then "NAME VALUE" for each non-zero counter of section but skip; else none. */
static void print_nonzero(const struct answer *a, const char *title, const char *section,
                          const char *skip, const char *none)
{
    printf("%s", title);
    bool any = false;
    for (size_t i = 0; i < a->nst; i++) {
        if (strcmp(a->st[i].section, section) != 0 || a->st[i].value == 0 ||
            (skip && strcmp(a->st[i].name, skip) == 0))
            continue;
        printf(" %s %" PRIu64, a->st[i].name, a->st[i].value);
        any = true;
    }
    printf("%s\n", any ? "" : none);
}

/* "Xs ago" for an epoch time t seen at now ("never" for 0). */
static const char *ago(char *buf, size_t len, uint64_t t, uint64_t now)
{
    char d[24];
    if (!t)
        return snprintf(buf, len, "never"), buf;
    snprintf(buf, len, "%s ago", duration(d, sizeof(d), now > t ? (double)(now - t) : 0));
    return buf;
}

/* Who mounted what (per export), and the clients connected now. */
static void print_mounts(const struct answer *a, uint64_t now)
{
    char b1[32], b2[32];
    printf("\n%-20s %-39s %-28s %s\n", "MOUNTS OF", "CLIENT", "PATH", "MOUNTED");
    size_t shown = 0;
    for (size_t pass = 0; pass <= a->nex; pass++) {
        /* Export by export, in the exports' order; last those no export holds now. */
        const char *ex = pass < a->nex ? a->ex[pass].path : "-";
        for (size_t i = 0; i < a->nmo; i++) {
            const struct mount_rec *m = &a->mo[i];
            if (strcmp(m->export, ex) != 0)
                continue;
            printf("%-20s %-39s %-28s %s%s\n", pass < a->nex ? ex : "(no export)", m->host,
                   m->path, ago(b1, sizeof(b1), m->since, now),
                   client_of(a, m->host) ? "" : ", not connected now");
            shown++;
        }
    }
    if (!shown)
        printf("(no client has mounted an export)\n");

    printf("\n%-39s %6s %10s %12s %10s  %s\n", "CONNECTED CLIENT", "CONNS", "CALLS",
           "LAST CALL", "FOR", "MOUNTS");
    for (size_t i = 0; i < a->ncl; i++) {
        const struct client_rec *c = &a->cl[i];
        printf("%-39s %6" PRIu64 " %10" PRIu64 " %12s %10s ", c->host, c->connections, c->calls,
               c->calls ? ago(b1, sizeof(b1), now - c->idle_ms / 1000, now) : "none",
               duration(b2, sizeof(b2), (double)c->age_ms / 1000));
        size_t n = 0;
        for (size_t k = 0; k < a->nmo; k++)
            if (strcmp(a->mo[k].host, c->host) == 0)
                printf("%s%s", n++ ? ", " : " ", a->mo[k].path);
        printf("%s\n", n ? "" : " -");
    }
    if (!a->ncl)
        printf("(no client connected)\n");
}

/* Each store's health, and the exports whose uploads wait out a backoff. */
static void print_health(const struct answer *a, uint64_t now)
{
    char b1[32], b2[32];
    for (size_t i = 0; i < a->nso; i++) {
        const char *n = a->so[i].name;
        uint64_t ok = stat_of(a, "store", n, "last_success_time");
        uint64_t retrying = stat_of(a, "store", n, "retrying");
        uint64_t in_a_row = stat_of(a, "store", n, "errors_in_a_row");
        const struct storeerr_rec *se = storeerr_of(a, n);
        const char *state = in_a_row ? "FAILING" : retrying ? "retrying" : ok ? "ok" : "not used yet";
        printf("store %s: %s; last answer %s", n, state, ago(b1, sizeof(b1), ok, now));
        if (in_a_row)
            printf("; %" PRIu64 " failed call(s) since", in_a_row);
        if (retrying)
            printf("; %" PRIu64 " request(s) waiting to retry now", retrying);
        printf("\n");
        if (se) {
            char status[32] = "";
            if (se->status)
                snprintf(status, sizeof(status), " HTTP %" PRIu64, se->status);
            printf("  last error %s: %s%s %s: %s\n", ago(b1, sizeof(b1), se->time, now), se->op,
                   status, se->code, se->message);
        }
    }
    for (size_t i = 0; i < a->nex; i++) {
        uint64_t left = stat_of(a, "export", a->ex[i].path, "upload_backoff_seconds");
        if (left)
            printf("uploads of %s paused %s more after store failures (backoff)\n", a->ex[i].path,
                   duration(b2, sizeof(b2), (double)left));
    }
}

static void print_status(const struct answer *a)
{
    char b1[32], b2[32], b3[32];
    uint64_t now = strtoull(info_of(a, "time"), NULL, 10);
    uint64_t started = stat_of(a, "process", "-", "start_time_seconds");
    printf("bucketnfsd: pid %s, up %s, state_dir %s\n\n", info_of(a, "pid"),
           duration(b1, sizeof(b1), now >= started ? (double)(now - started) : 0),
           info_of(a, "state_dir"));

    printf("%-20s %-10s %-20s %-16s %-6s %10s %10s %7s\n", "EXPORT", "STORE", "BUCKET", "PREFIX",
           "ACCESS", "HITS", "MISSES", "HIT%");
    for (size_t i = 0; i < a->nex; i++) {
        const struct export_rec *e = &a->ex[i];
        uint64_t h = stat_of(a, "cache", e->path, "hits"), m = stat_of(a, "cache", e->path, "misses");
        printf("%-20s %-10s %-20s %-16s %-6s %10" PRIu64 " %10" PRIu64 " %6.1f%%\n", e->path,
               e->store, e->bucket, e->prefix[0] ? e->prefix : "-", e->access, h, m,
               ratio(h, h + m));
    }

    print_mounts(a, now);

    uint64_t hits = stat_of(a, "cache", "total", "hits"), misses = stat_of(a, "cache", "total", "misses");
    uint64_t disk = stat_of(a, "cache", "total", "disk_bytes");
    uint64_t cap = stat_of(a, "cache", "total", "capacity");
    printf("\ncache:  %s of %s used (%.1f%%), %" PRIu64 " blocks; hit ratio %.1f%% (%" PRIu64
           " hits, %" PRIu64 " misses)\n",
           human(b1, sizeof(b1), (double)disk), human(b2, sizeof(b2), (double)cap),
           ratio(disk, cap), stat_of(a, "cache", "total", "blocks"), ratio(hits, hits + misses),
           hits, misses);
    printf("        %s served from cache, %s fetched in %" PRIu64 " GETs; read-ahead %" PRIu64
           " issued, %" PRIu64 " used; %" PRIu64 " evictions\n",
           human(b1, sizeof(b1), (double)stat_of(a, "cache", "total", "bytes_hit")),
           human(b3, sizeof(b3), (double)stat_of(a, "cache", "total", "get_bytes")),
           stat_of(a, "cache", "total", "gets"), stat_of(a, "cache", "total", "ra_issued"),
           stat_of(a, "cache", "total", "ra_used"), stat_of(a, "cache", "total", "evictions"));

    printf("\n%-12s %-5s %9s %9s %9s %9s %9s %9s %11s\n", "STORE", "TYPE", "HEADS", "GETS",
           "LISTS", "PUTS", "ERRORS", "RETRIES", "RECEIVED");
    for (size_t i = 0; i < a->nso; i++) {
        const char *n = a->so[i].name;
        printf("%-12s %-5s %9" PRIu64 " %9" PRIu64 " %9" PRIu64 " %9" PRIu64 " %9" PRIu64
               " %9" PRIu64 " %11s\n",
               n, a->so[i].type, stat_of(a, "store", n, "heads"), stat_of(a, "store", n, "gets"),
               stat_of(a, "store", n, "lists"), stat_of(a, "store", n, "puts"),
               stat_of(a, "store", n, "errors"), stat_of(a, "store", n, "retries"),
               human(b1, sizeof(b1), (double)stat_of(a, "store", n, "bytes_in")));
    }

    print_health(a, now);

    printf("\nrpc:    %" PRIu64 " calls, %" PRIu64 " connections open, %" PRIu64
           " in flight, %" PRIu64 " malformed\n",
           stat_of(a, "rpc", "-", "calls"), stat_of(a, "rpc", "-", "connections"),
           stat_of(a, "rpc", "-", "inflight"),
           stat_of(a, "rpc", "-", "garbage") + stat_of(a, "rpc", "-", "bad_records"));
    print_nonzero(a, "nfs3:  ", "nfs3", NULL, " no calls yet");
    print_nonzero(a, "errors:", "nfs3_status", "NFS3_OK", " none");
    uint64_t dirty_age = stat_of(a, "writeback", "-", "oldest_dirty_seconds");
    char b4[32];
    printf("writeback: %" PRIu64 " file(s) not yet uploaded, %s of %s dirty, oldest %s; "
           "%" PRIu64 " uploads (%s), %" PRIu64 " failed, %" PRIu64 " conflicts\n",
           stat_of(a, "writeback", "-", "dirty_files"),
           human(b1, sizeof(b1), (double)stat_of(a, "writeback", "-", "dirty_bytes")),
           human(b2, sizeof(b2), (double)stat_of(a, "writeback", "-", "dirty_max")),
           dirty_age || stat_of(a, "writeback", "-", "dirty_files")
               ? duration(b3, sizeof(b3), (double)dirty_age) : "-",
           stat_of(a, "writeback", "-", "uploads"),
           human(b4, sizeof(b4), (double)stat_of(a, "writeback", "-", "upload_bytes")),
           stat_of(a, "writeback", "-", "failures"), stat_of(a, "writeback", "-", "conflicts"));
    if (stat_of(a, "writeback", "-", "unwritable"))
        printf("writeback: %" PRIu64 " file(s) CANNOT BE WRITTEN BACK: their data is gone from "
               "the cache disk (see the log; `bucketnfs flush --wait` names them)\n",
               stat_of(a, "writeback", "-", "unwritable"));
    printf("inodes: %" PRIu64 " in the table, %" PRIu64 " listings, %" PRIu64 " HEADs\n",
           stat_of(a, "inode", "-", "inodes"), stat_of(a, "inode", "-", "lists"),
           stat_of(a, "inode", "-", "heads"));
    printf("memory: %s resident, %" PRIu64 " open files\n",
           human(b1, sizeof(b1), (double)stat_of(a, "process", "-", "rss_bytes")),
           stat_of(a, "process", "-", "open_fds"));
}

static void answer_free(struct answer *a)
{
    for (size_t i = 0; i < a->nst; i++) {
        free(a->st[i].section);
        free(a->st[i].instance);
        free(a->st[i].name);
    }
    for (size_t i = 0; i < a->nex; i++) {
        free(a->ex[i].path);
        free(a->ex[i].store);
        free(a->ex[i].bucket);
        free(a->ex[i].prefix);
        free(a->ex[i].access);
    }
    for (size_t i = 0; i < a->nso; i++) {
        free(a->so[i].name);
        free(a->so[i].type);
    }
    for (size_t i = 0; i < a->nin; i++) {
        free(a->in[i].key);
        free(a->in[i].value);
    }
    for (size_t i = 0; i < a->nmo; i++) {
        free(a->mo[i].export);
        free(a->mo[i].host);
        free(a->mo[i].path);
    }
    for (size_t i = 0; i < a->ncl; i++)
        free(a->cl[i].host);
    for (size_t i = 0; i < a->nse; i++) {
        free(a->se[i].store);
        free(a->se[i].op);
        free(a->se[i].code);
        free(a->se[i].message);
    }
    free(a->mo);
    free(a->cl);
    free(a->se);
    free(a->st);
    free(a->ex);
    free(a->so);
    free(a->in);
}

/* ---- the answer loop -------------------------------------------------- */

enum mode { MODE_STATUS, MODE_STATS, MODE_PIN, MODE_UNPIN, MODE_REFRESH, MODE_RELOAD, MODE_PRELOAD,
            MODE_FLUSH, MODE_EVICT };

struct run {
    enum mode mode;
    bool json;
    bool tty;          /* stdout is a terminal: a progress bar */
    bool bar_drawn;    /* a bar is on the current line */
    int64_t last_plain_ms;
    uint64_t warns;
    struct answer ans;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void end_bar(struct run *r)
{
    if (r->bar_drawn) {
        fputc('\n', stdout);
        r->bar_drawn = false;
    }
}

static void show_progress(struct run *r, const struct admin_msg *m, bool last)
{
    const char *phase = m->w[1];
    uint64_t files = strtoull(m->w[2], NULL, 10), files_total = strtoull(m->w[3], NULL, 10);
    uint64_t bytes = strtoull(m->w[4], NULL, 10), bytes_total = strtoull(m->w[5], NULL, 10);
    uint64_t ms = strtoull(m->w[6], NULL, 10);
    bool scan = strcmp(phase, "scan") == 0;
    double rate = ms ? (double)bytes * 1000.0 / (double)ms : 0;
    double eta = rate > 0 && bytes_total > bytes ? (double)(bytes_total - bytes) / rate : 0;
    char b1[32], b2[32], b3[32], b4[32];

    if (r->json) {
        printf("{\"phase\": \"%s\", \"files\": %" PRIu64 ", \"files_total\": %" PRIu64
               ", \"bytes\": %" PRIu64 ", \"bytes_total\": %" PRIu64 ", \"elapsed_ms\": %" PRIu64
               ", \"bytes_per_sec\": %.0f, \"eta_sec\": %.1f}\n",
               scan ? "scan" : "read", files, files_total, bytes, bytes_total, ms, rate, eta);
        fflush(stdout);
        return;
    }
    if (r->tty) {
        if (scan) {
            printf("\r\033[Kscanning: %" PRIu64 " files, %s", files_total,
                   human(b1, sizeof(b1), (double)bytes_total));
        } else {
            const int width = 30;
            double frac = bytes_total ? (double)bytes / (double)bytes_total : (last ? 1.0 : 0.0);
            if (frac > 1)
                frac = 1;
            int full = (int)(frac * width + 0.5);
            char bar[64];
            for (int i = 0; i < width; i++)
                bar[i] = i < full ? '#' : '-';
            bar[width] = '\0';
            printf("\r\033[K[%s] %3.0f%%  %" PRIu64 "/%" PRIu64 " files  %s/%s  %s/s  ETA %s", bar,
                   frac * 100, files, files_total, human(b1, sizeof(b1), (double)bytes),
                   human(b2, sizeof(b2), (double)bytes_total), human(b3, sizeof(b3), rate),
                   duration(b4, sizeof(b4), eta));
        }
        fflush(stdout);
        r->bar_drawn = true;
        return;
    }
    /* Plain lines for logs and pipes: one a second at most. */
    int64_t now = mono_ms();
    if (!last && now - r->last_plain_ms < 1000)
        return;
    r->last_plain_ms = now;
    if (scan)
        printf("preload: scanning: %" PRIu64 " files, %s\n", files_total,
               human(b1, sizeof(b1), (double)bytes_total));
    else
        printf("preload: %" PRIu64 "/%" PRIu64 " files, %s/%s, %s/s, ETA %s\n", files,
               files_total, human(b1, sizeof(b1), (double)bytes),
               human(b2, sizeof(b2), (double)bytes_total), human(b3, sizeof(b3), rate),
               duration(b4, sizeof(b4), eta));
    fflush(stdout);
}

/* One record.  Returns false if it makes no sense here. */
static bool on_record(struct run *r, const struct admin_msg *m)
{
    const char *k = m->w[0];
    if (strcmp(k, "progress") == 0 && m->n == 7) {
        show_progress(r, m, false);
        return true;
    }
    if (strcmp(k, "flushing") == 0 && m->n == 3) {
        /* files and bytes not yet in the bucket */
        char b1[32];
        if (r->tty) {
            printf("\r\033[Kflush: %s file(s), %s still to upload", m->w[1],
                   human(b1, sizeof(b1), (double)strtoull(m->w[2], NULL, 10)));
            r->bar_drawn = true;
        } else {
            int64_t now = mono_ms();
            if (now - r->last_plain_ms < 1000)
                return true;
            r->last_plain_ms = now;
            printf("flush: %s file(s), %s still to upload\n", m->w[1],
                   human(b1, sizeof(b1), (double)strtoull(m->w[2], NULL, 10)));
        }
        fflush(stdout);
        return true;
    }
    if (strcmp(k, "warn") == 0 && m->n == 4) {
        r->warns++;
        if (r->json && r->mode == MODE_PRELOAD) {
            fputs("{\"warn\": {\"path\": ", stdout);
            json_str(stdout, m->w[1]);
            fputs(", \"error\": ", stdout);
            json_str(stdout, m->w[2]);
            fputs(", \"message\": ", stdout);
            json_str(stdout, m->w[3]);
            fputs("}}\n", stdout);
        } else {
            end_bar(r);
            fprintf(stderr, "bucketnfs: %s: %s\n", m->w[1], m->w[3]);
        }
        return true;
    }
    if (strcmp(k, "done") == 0 && m->n == 4 && r->mode == MODE_EVICT) {
        char b1[32];
        printf("evicted %s file(s), %s under %s\n", m->w[2],
               human(b1, sizeof(b1), (double)strtoull(m->w[3], NULL, 10)), m->w[1]);
        return true;
    }
    if (strcmp(k, "done") == 0 && m->n == 3) {
        if (r->mode == MODE_PIN)
            printf("pinned %s file(s) under %s\n", m->w[2], m->w[1]);
        else if (r->mode == MODE_UNPIN)
            printf("unpinned %s file(s) under %s\n", m->w[2], m->w[1]);
        else if (r->mode == MODE_REFRESH)
            printf("refreshed %s\n", m->w[1]);
        return true;
    }
    return keep(&r->ans, m);
}

static int on_ok(struct run *r, const struct admin_msg *m)
{
    uint64_t failed = 0, files = 0, bytes = 0, ms = 0;
    for (size_t i = 1; i + 1 < m->n; i += 2) {
        uint64_t v = strtoull(m->w[i + 1], NULL, 10);
        if (strcmp(m->w[i], "failed") == 0)
            failed = v;
        else if (strcmp(m->w[i], "files") == 0)
            files = v;
        else if (strcmp(m->w[i], "bytes") == 0)
            bytes = v;
        else if (strcmp(m->w[i], "ms") == 0)
            ms = v;
    }
    switch (r->mode) {
    case MODE_STATUS:
        print_status(&r->ans);
        break;
    case MODE_STATS:
        if (r->json)
            print_json(&r->ans);
        else
            print_plain(&r->ans);
        break;
    case MODE_RELOAD:
        printf("exports reloaded\n");
        break;
    case MODE_FLUSH:
        end_bar(r);
        printf("%s\n", m->n >= 3 && strcmp(m->w[1], "waited") == 0
                           ? "everything written is in the bucket"
                           : "upload requested");
        break;
    case MODE_PRELOAD: {
        end_bar(r);
        char b1[32], b2[32];
        double rate = ms ? (double)bytes * 1000.0 / (double)ms : 0;
        if (r->json)
            printf("{\"result\": \"ok\", \"files\": %" PRIu64 ", \"bytes\": %" PRIu64
                   ", \"failed\": %" PRIu64 ", \"elapsed_ms\": %" PRIu64 "}\n",
                   files, bytes, failed, ms);
        else
            printf("preloaded %" PRIu64 " file(s), %s in %.1f s (%s/s)%s\n", files,
                   human(b1, sizeof(b1), (double)bytes), (double)ms / 1000,
                   human(b2, sizeof(b2), rate), failed ? "; some failed (above)" : "");
        break;
    }
    default:
        break;
    }
    return failed || r->warns ? EXIT_FAILED : EXIT_OK;
}

static int on_error(struct run *r, const struct admin_msg *m)
{
    end_bar(r);
    int err = admin_errno_value(m->w[1]);
    if (r->json && r->mode == MODE_PRELOAD) {
        fputs("{\"result\": \"error\", \"error\": ", stdout);
        json_str(stdout, m->w[1]);
        fputs(", \"message\": ", stdout);
        json_str(stdout, m->w[2]);
        fputs("}\n", stdout);
    }
    if (err == ECANCELED)
        return EXIT_INTERRUPTED;
    fprintf(stderr, "bucketnfs: %s\n", m->w[2]);
    return EXIT_FAILED;
}

static int talk(int fd, struct run *r)
{
    struct admin_reader *rd = malloc(sizeof(*rd));
    struct admin_msg *m = malloc(sizeof(*m));
    int ex = EXIT_PROTOCOL;
    if (!rd || !m) {
        fprintf(stderr, "bucketnfs: out of memory\n");
        ex = EXIT_FAILED;
        goto out;
    }
    admin_reader_init(rd, fd);
    int timeout = r->mode == MODE_PRELOAD || r->mode == MODE_PIN || r->mode == MODE_UNPIN ||
                          r->mode == MODE_FLUSH || r->mode == MODE_EVICT
                      ? -1 : REPLY_TIMEOUT_MS;
    for (;;) {
        char *line;
        size_t len;
        int rc = admin_read_line(rd, timeout, &line, &len);
        if (rc == EINTR && !interrupted)
            continue;
        if (interrupted) {
            /* Closing the socket is what cancels the request in the daemon. */
            end_bar(r);
            fprintf(stderr, "bucketnfs: interrupted%s\n",
                    r->mode == MODE_PRELOAD ? ": preload stopped" : r->mode == MODE_FLUSH ? ": the uploads go on" : "");
            ex = EXIT_INTERRUPTED;
            goto out;
        }
        if (rc) {
            end_bar(r);
            fprintf(stderr, "bucketnfs: no answer from the daemon: %s\n",
                    rc == ECONNRESET ? "it closed the connection" : strerror(rc));
            goto out;
        }
        if ((rc = admin_decode(line, len, m))) {
            end_bar(r);
            fprintf(stderr, "bucketnfs: malformed answer from the daemon\n");
            goto out;
        }
        if (strcmp(m->w[0], "ok") == 0) {
            ex = on_ok(r, m);
            goto out;
        }
        if (strcmp(m->w[0], "error") == 0 && m->n == 3) {
            ex = on_error(r, m);
            goto out;
        }
        if (!on_record(r, m)) {
            /* A newer daemon may send records this tool does not know: skip them. */
            continue;
        }
    }
out:
    free(rd);
    free(m);
    return ex;
}

/* Remove every `flag` from words[1..*n] (closing the gaps); whether there was one. */
static bool take_flag(const char **words, size_t *n, const char *flag)
{
    size_t k = 0;
    bool seen = false;
    for (size_t i = 1; i <= *n; i++) {
        if (strcmp(words[i], flag) == 0)
            seen = true;
        else
            words[1 + k++] = words[i];
    }
    *n = k;
    return seen;
}

int main(int argc, char **argv)
{
    const char *conf_path = NULL, *sock_path = NULL;
    int argi = 1;
    for (; argi < argc && argv[argi][0] == '-'; argi++) {
        const char *o = argv[argi];
        if (strcmp(o, "-h") == 0 || strcmp(o, "--help") == 0) {
            usage(stdout);
            return EXIT_OK;
        } else if (strcmp(o, "-c") == 0 && argi + 1 < argc) {
            conf_path = argv[++argi];
        } else if (strcmp(o, "-s") == 0 && argi + 1 < argc) {
            sock_path = argv[++argi];
        } else {
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (argi >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[argi++];
    struct run r = {.tty = isatty(STDOUT_FILENO)};
    /* Command options (--json) may come anywhere after the command. */
    const char *words[ADMIN_WORDS_MAX];
    size_t n = 0;
    for (int i = argi; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            r.json = true;
            continue;
        }
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return EXIT_OK;
        }
        if (n + 2 > ADMIN_WORDS_MAX) {
            fprintf(stderr, "bucketnfs: too many arguments (at most %d)\n", ADMIN_WORDS_MAX - 2);
            return EXIT_USAGE;
        }
        words[1 + n++] = argv[i];
    }
    size_t want_min = 0, want_max = 0;
    bool json_ok = false;
    if (strcmp(cmd, "status") == 0) {
        r.mode = MODE_STATUS;
        words[0] = "stats";
    } else if (strcmp(cmd, "stats") == 0) {
        r.mode = MODE_STATS;
        words[0] = "stats";
        json_ok = true;
    } else if (strcmp(cmd, "pin") == 0 || strcmp(cmd, "unpin") == 0) {
        r.mode = cmd[0] == 'p' ? MODE_PIN : MODE_UNPIN;
        words[0] = cmd;
        want_min = 2, want_max = ADMIN_WORDS_MAX;
    } else if (strcmp(cmd, "evict") == 0) {
        r.mode = MODE_EVICT;
        words[0] = "evict";
        /* --force goes first, before the export (which starts with '/') */
        bool force = take_flag(words, &n, "--force");
        if (force) {
            memmove(&words[2], &words[1], n * sizeof(words[0]));
            words[1] = "--force";
            n++;
        }
        want_min = force ? 3 : 2, want_max = ADMIN_WORDS_MAX;
    } else if (strcmp(cmd, "refresh") == 0) {
        r.mode = MODE_REFRESH;
        words[0] = "refresh";
        want_min = 1, want_max = 2;
    } else if (strcmp(cmd, "reload") == 0) {
        r.mode = MODE_RELOAD;
        words[0] = "reload";
    } else if (strcmp(cmd, "flush") == 0) {
        r.mode = MODE_FLUSH;
        words[0] = "flush";
        /* --wait goes last */
        bool wait = take_flag(words, &n, "--wait");
        if (n > 2) {
            fprintf(stderr, "bucketnfs: wrong arguments for flush (see bucketnfs --help)\n");
            return EXIT_USAGE;
        }
        if (wait)
            words[1 + n++] = "--wait";
        want_min = 0, want_max = 3;
    } else if (strcmp(cmd, "preload") == 0) {
        r.mode = MODE_PRELOAD;
        words[0] = "preload";
        want_min = 2, want_max = ADMIN_WORDS_MAX;
        json_ok = true;
    } else {
        fprintf(stderr, "bucketnfs: unknown command \"%s\" (see bucketnfs --help)\n", cmd);
        return EXIT_USAGE;
    }
    if (n < want_min || n > want_max || (r.json && !json_ok)) {
        fprintf(stderr, "bucketnfs: wrong arguments for %s (see bucketnfs --help)\n", cmd);
        return EXIT_USAGE;
    }

    char sock[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
    if (sock_path) {
        snprintf(sock, sizeof(sock), "%s", sock_path);
    } else {
        int ex = socket_from_conf(conf_path, sock, sizeof(sock));
        if (ex)
            return ex;
    }

    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: poll returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int fd;
    int ex = connect_daemon(sock, &fd);
    if (ex)
        return ex;
    ex = send_request(fd, words, n + 1);
    if (!ex)
        ex = talk(fd, &r);
    close(fd);
    answer_free(&r.ans);
    return ex;
}
