/*
 * conf.c - bucketnfs.conf and exports.conf, parsed once with libconfig into
 * the plain structs of conf.h.
 *
 * Owns: every libconfig object (nothing else in the tree links against it)
 * and the only table of defaults (conf_keys[] below).  That table also says
 * which keys exist: a key that is not in it, at any level, is an error.
 *
 * Errors: the first one wins and is written as "file:line: message" into the
 * caller's buffer; parsing stops there and everything built so far is freed.
 * Syntax errors come from libconfig with its own file and line.
 *
 * Paths: the configuration file is resolved with realpath(); relative paths
 * inside it (state_dir, cache.dirs, dir-store root, exports_file,
 * credentials_file) are joined to that file's folder and normalized
 * lexically ("a/./b/../c" -> "a/c").  They do not have to exist yet.
 *
 * Threads: none; conf_load / conf_load_exports are called from the main
 * thread (startup, SIGHUP handling), results are read-only afterwards.
 */
#include "common/conf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "common/log.h"

#define CONF_PREFIX_MAX 1000 /* leaves room under S3's 1024-byte key limit */

/*
 * Every key, per section, with its default ("" = empty string, NULL = no
 * default).  REQ marks keys that must be present.  Sections: "top" (the
 * main file), "server", "cache", "store" (every store), "dir" and "s3"
 * (per store type), "xtop" (the exports file), "export".
 */
enum { OPT = 0, REQ = 1 };

static const struct conf_key {
    const char *section;
    const char *name;
    const char *def;
    int flags;
} conf_keys[] = {
    {"top", "server", NULL, OPT},
    {"top", "cache", NULL, OPT},
    {"top", "stores", NULL, REQ},
    {"top", "exports_file", "exports.conf", OPT},

    {"server", "listen", "0.0.0.0", OPT},
    {"server", "nfs_port", "2049", OPT},
    {"server", "mount_port", "20048", OPT},
    {"server", "rpcbind", "true", OPT},
    {"server", "threads", "16", OPT},
    {"server", "state_dir", "/var/lib/bucketnfs", OPT},
    {"server", "meta_cache", "64M", OPT},
    {"server", "metrics", NULL, OPT},
    {"server", "log_level", "info", OPT},

    {"cache", "dirs", "/var/cache/bucketnfs", OPT},
    {"cache", "size", "8G", OPT},
    {"cache", "block_size", "1M", OPT},
    {"cache", "readahead_max", "64M", OPT},
    {"cache", "prefetch_budget", "256M", OPT},
    {"cache", "fetch_max", "64", OPT},
    {"cache", "dirty_max", "0", OPT},
    {"cache", "upload_threads", "4", OPT},

    {"store", "name", NULL, REQ},
    {"store", "type", NULL, REQ},

    {"dir", "root", NULL, REQ},
    {"dir", "latency_ms", "0", OPT},
    {"dir", "latency_match", NULL, OPT},
    {"dir", "fail_rate", "0", OPT},
    {"dir", "list_posix", "true", OPT},

    {"s3", "endpoint", NULL, REQ},
    {"s3", "region", "us-east-1", OPT},
    {"s3", "addressing", "virtual", OPT},
    {"s3", "credentials", "env", OPT},
    {"s3", "profile", "default", OPT},
    {"s3", "credentials_file", NULL, OPT},
    {"s3", "access_key", NULL, OPT},
    {"s3", "secret_key", NULL, OPT},
    {"s3", "session_token", NULL, OPT},

    {"xtop", "exports", NULL, REQ},

    {"export", "path", NULL, REQ},
    {"export", "store", NULL, REQ},
    {"export", "bucket", NULL, REQ},
    {"export", "prefix", "", OPT},
    {"export", "access", "ro", OPT},
    {"export", "clients", NULL, REQ},
    {"export", "squash", "root", OPT},
    {"export", "anon_uid", "65534", OPT},
    {"export", "anon_gid", "65534", OPT},
    {"export", "metadata_ttl", "30", OPT},
    {"export", "file_mode", "0644", OPT},
    {"export", "dir_mode", "0755", OPT},
    {"export", "uid", "0", OPT},
    {"export", "gid", "0", OPT},
    {"export", "shuffle", "false", OPT},
    {"export", "secure", "false", OPT},
    {"export", "writeback_delay", "5", OPT},
    {"export", "rename_dir_max", "10000", OPT},
    {"export", "consistency", "ttl", OPT},
    {"export", "posix_metadata", "any", OPT},

    {"client", "match", NULL, REQ},
    {"client", "access", NULL, OPT},
    {"client", "squash", NULL, OPT},
};

/* One parse in progress: where errors go and which file is being read. */
struct pctx {
    const char *file; /* the file being parsed (resolved) */
    char *dir;        /* its folder, for relative paths */
    char *err;
    size_t errlen;
};

static const struct conf_key *key_find(const char *section, const char *name)
{
    for (size_t i = 0; i < sizeof(conf_keys) / sizeof(conf_keys[0]); i++)
        if (strcmp(conf_keys[i].section, section) == 0 && strcmp(conf_keys[i].name, name) == 0)
            return &conf_keys[i];
    return NULL;
}

static const char *key_default(const char *section, const char *name)
{
    const struct conf_key *k = key_find(section, name);
    return k ? k->def : NULL;
}

/* Format "file:line: message" for setting s (or line 0 of the file). Returns EINVAL. */
static int __attribute__((format(printf, 3, 4)))
perr(struct pctx *p, const config_setting_t *s, const char *fmt, ...)
{
    const char *file = p->file;
    int line = 0;
    if (s) {
        line = config_setting_source_line(s);
        if (config_setting_source_file(s))
            file = config_setting_source_file(s);
    }
    int n = snprintf(p->err, p->errlen, "%s:%d: ", file, line);
    if (n >= 0 && (size_t)n < p->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return EINVAL;
}

static int nomem(struct pctx *p)
{
    snprintf(p->err, p->errlen, "%s: out of memory", p->file);
    return ENOMEM;
}

/* strdup that reports ENOMEM through p. */
static int dup_str(struct pctx *p, const char *s, char **out)
{
    if (!s) {
        *out = NULL;
        return 0;
    }
    *out = strdup(s);
    return *out ? 0 : nomem(p);
}

/* Every child of group g must be a key of `section` (or of `section2`). */
static int check_keys(struct pctx *p, const config_setting_t *g, const char *what,
                      const char *section, const char *section2)
{
    int n = config_setting_length(g);
    for (int i = 0; i < n; i++) {
        config_setting_t *c = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(c);
        if (!name)
            return perr(p, c, "%s: unexpected unnamed value", what);
        if (!key_find(section, name) && !(section2 && key_find(section2, name)))
            return perr(p, c, "unknown key '%s' in %s", name, what);
    }
    for (size_t i = 0; i < sizeof(conf_keys) / sizeof(conf_keys[0]); i++) {
        const struct conf_key *k = &conf_keys[i];
        if (!(k->flags & REQ))
            continue;
        if ((strcmp(k->section, section) == 0 || (section2 && strcmp(k->section, section2) == 0)) &&
            !config_setting_get_member(g, k->name))
            return perr(p, g, "%s: missing required key '%s'", what, k->name);
    }
    return 0;
}

/* ---- lexical path handling ---------------------------------------------- */

/*
 * Normalize an absolute path lexically: collapse "//", drop ".", resolve
 * ".." against the previous component (".." at "/" stays at "/").  Writes
 * into a new string; returns NULL on ENOMEM.
 */
static char *path_normalize(const char *in)
{
    size_t len = strlen(in);
    char *out = malloc(len + 2);
    if (!out)
        return NULL;
    size_t o = 0;
    const char *s = in;
    while (*s) {
        while (*s == '/')
            s++;
        if (!*s)
            break;
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 1 && s[0] == '.') {
            /* skip */
        } else if (n == 2 && s[0] == '.' && s[1] == '.') {
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--; /* drop the '/' too */
        } else {
            out[o++] = '/';
            memcpy(out + o, s, n);
            o += n;
        }
        s += n;
    }
    if (o == 0)
        out[o++] = '/';
    out[o] = '\0';
    return out;
}

/* Resolve `v` (absolute or relative to p->dir) into *out. */
static int resolve_path(struct pctx *p, const config_setting_t *s, const char *v, char **out)
{
    if (!*v)
        return perr(p, s, "%s: empty path", config_setting_name(s) ? config_setting_name(s) : "path");
    char *joined;
    if (v[0] == '/') {
        joined = strdup(v);
    } else if (asprintf(&joined, "%s/%s", p->dir, v) < 0) {
        joined = NULL;
    }
    if (!joined)
        return nomem(p);
    *out = path_normalize(joined);
    free(joined);
    return *out ? 0 : nomem(p);
}

/* ---- typed getters: the setting if present, else the table's default ---- */

/* A string value: key absent -> default (may be NULL). */
static int get_str(struct pctx *p, const config_setting_t *g, const char *section,
                   const char *name, const char **out, const config_setting_t **where)
{
    config_setting_t *s = config_setting_get_member(g, name);
    *where = s ? s : g;
    if (!s) {
        *out = key_default(section, name);
        return 0;
    }
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return perr(p, s, "%s: must be a string", name);
    *out = config_setting_get_string(s);
    return 0;
}

static int get_dup(struct pctx *p, const config_setting_t *g, const char *section,
                   const char *name, char **out)
{
    const char *v = NULL;
    const config_setting_t *w;
    int rc = get_str(p, g, section, name, &v, &w);
    return rc ? rc : dup_str(p, v, out);
}

/* An integer in [min, max]. */
static int get_int(struct pctx *p, const config_setting_t *g, const char *section,
                   const char *name, long long min, long long max, long long *out)
{
    config_setting_t *s = config_setting_get_member(g, name);
    long long v;
    if (!s) {
        const char *d = key_default(section, name);
        v = d ? strtoll(d, NULL, 10) : 0;
    } else if (config_setting_type(s) == CONFIG_TYPE_INT) {
        v = config_setting_get_int(s);
    } else if (config_setting_type(s) == CONFIG_TYPE_INT64) {
        v = config_setting_get_int64(s);
    } else {
        return perr(p, s, "%s: must be an integer", name);
    }
    if (v < min || v > max)
        return perr(p, s ? s : g, "%s: %lld is out of range %lld..%lld", name, v, min, max);
    *out = v;
    return 0;
}

static int get_bool(struct pctx *p, const config_setting_t *g, const char *section,
                    const char *name, bool *out)
{
    config_setting_t *s = config_setting_get_member(g, name);
    if (!s) {
        const char *d = key_default(section, name);
        *out = d && strcmp(d, "true") == 0;
        return 0;
    }
    if (config_setting_type(s) != CONFIG_TYPE_BOOL)
        return perr(p, s, "%s: must be true or false", name);
    *out = config_setting_get_bool(s);
    return 0;
}

/* A size: "8G" / "1M" / "4096" or an integer number of bytes. */
static int get_size(struct pctx *p, const config_setting_t *g, const char *section,
                    const char *name, uint64_t *out, const config_setting_t **where)
{
    config_setting_t *s = config_setting_get_member(g, name);
    *where = s ? s : g;
    const char *str = NULL;
    if (!s) {
        str = key_default(section, name);
    } else if (config_setting_type(s) == CONFIG_TYPE_STRING) {
        str = config_setting_get_string(s);
    } else if (config_setting_type(s) == CONFIG_TYPE_INT ||
               config_setting_type(s) == CONFIG_TYPE_INT64) {
        long long v = config_setting_get_int64(s);
        if (config_setting_type(s) == CONFIG_TYPE_INT)
            v = config_setting_get_int(s);
        if (v < 0)
            return perr(p, s, "%s: size must not be negative", name);
        *out = (uint64_t)v;
        return 0;
    } else {
        return perr(p, s, "%s: must be a size like \"8G\" or a number of bytes", name);
    }
    if (conf_parse_size(str, out) != 0)
        return perr(p, *where, "%s: bad size \"%s\" (use e.g. \"4096\", \"64K\", \"1M\", \"8G\")",
                    name, str);
    return 0;
}

/* A choice among `names`; *out receives its index. */
static int get_enum(struct pctx *p, const config_setting_t *g, const char *section,
                    const char *name, const char *const *names, int *out)
{
    const char *v = NULL;
    const config_setting_t *w;
    int rc = get_str(p, g, section, name, &v, &w);
    if (rc)
        return rc;
    for (int i = 0; names[i]; i++) {
        if (v && strcmp(v, names[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    char allowed[128] = "";
    for (int i = 0; names[i]; i++) {
        size_t n = strlen(allowed);
        snprintf(allowed + n, sizeof(allowed) - n, "%s\"%s\"", i ? ", " : "", names[i]);
    }
    return perr(p, w, "%s: \"%s\" is not one of %s", name, v ? v : "", allowed);
}

/* A permission mode: octal string "0644" or an integer 0..07777. */
static int get_mode(struct pctx *p, const config_setting_t *g, const char *section,
                    const char *name, uint32_t *out)
{
    config_setting_t *s = config_setting_get_member(g, name);
    const char *str = NULL;
    unsigned long v = 0;
    if (!s) {
        str = key_default(section, name);
    } else if (config_setting_type(s) == CONFIG_TYPE_STRING) {
        str = config_setting_get_string(s);
    } else if (config_setting_type(s) == CONFIG_TYPE_INT) {
        int i = config_setting_get_int(s);
        if (i < 0 || i > 07777)
            return perr(p, s, "%s: mode %d is out of range (write octal modes as strings: \"0644\")",
                        name, i);
        *out = (uint32_t)i;
        return 0;
    } else {
        return perr(p, s, "%s: must be an octal string like \"0644\"", name);
    }
    size_t n = strlen(str);
    bool ok = n >= 1 && n <= 5;
    for (size_t i = 0; ok && i < n; i++) {
        if (str[i] < '0' || str[i] > '7')
            ok = false;
        else
            v = v * 8 + (unsigned long)(str[i] - '0');
    }
    if (!ok || v > 07777)
        return perr(p, s ? s : g, "%s: bad mode \"%s\" (octal, 0000..7777)", name, str);
    *out = (uint32_t)v;
    return 0;
}

/* A float in [min, max] (an integer is accepted too). */
static int get_float(struct pctx *p, const config_setting_t *g, const char *section,
                     const char *name, double min, double max, double *out)
{
    config_setting_t *s = config_setting_get_member(g, name);
    double v;
    if (!s) {
        const char *d = key_default(section, name);
        v = d ? strtod(d, NULL) : 0;
    } else if (config_setting_type(s) == CONFIG_TYPE_FLOAT) {
        v = config_setting_get_float(s);
    } else if (config_setting_type(s) == CONFIG_TYPE_INT) {
        v = config_setting_get_int(s);
    } else {
        return perr(p, s, "%s: must be a number", name);
    }
    if (!(v >= min && v <= max))
        return perr(p, s ? s : g, "%s: %g is out of range %g..%g", name, v, min, max);
    *out = v;
    return 0;
}

/* ---- sizes and CIDRs ----------------------------------------------------- */

int conf_parse_size(const char *s, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return EINVAL;
    uint64_t v = 0;
    const char *c = s;
    for (; *c >= '0' && *c <= '9'; c++) {
        if (v > (UINT64_MAX - 9) / 10)
            return ERANGE;
        v = v * 10 + (uint64_t)(*c - '0');
    }
    unsigned shift = 0;
    switch (*c) {
    case '\0': break;
    case 'K': case 'k': shift = 10; break;
    case 'M': case 'm': shift = 20; break;
    case 'G': case 'g': shift = 30; break;
    case 'T': case 't': shift = 40; break;
    default: return EINVAL;
    }
    if (*c && c[1] != '\0')
        return EINVAL;
    if (shift && v > (UINT64_MAX >> shift))
        return ERANGE;
    *out = v << shift;
    return 0;
}

/* Parse "10.0.0.0/8", "10.1.2.3", "::1/128".  Host bits must be zero. */
static int parse_cidr(const char *s, struct conf_cidr *out)
{
    char buf[INET6_ADDRSTRLEN + 8];
    if (strlen(s) >= sizeof(buf))
        return EINVAL;
    strcpy(buf, s);
    char *slash = strchr(buf, '/');
    long plen = -1;
    if (slash) {
        *slash = '\0';
        char *end;
        if (!slash[1] || slash[1] < '0' || slash[1] > '9')
            return EINVAL;
        plen = strtol(slash + 1, &end, 10);
        if (*end)
            return EINVAL;
    }
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        if (plen < 0)
            plen = 32;
        if (plen > 32)
            return EINVAL;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        if (plen < 0)
            plen = 128;
        if (plen > 128)
            return EINVAL;
    } else {
        return EINVAL;
    }
    out->prefix_len = (uint8_t)plen;
    size_t nbytes = out->family == AF_INET ? 4 : 16;
    for (size_t i = 0; i < nbytes; i++) {
        unsigned bits = (unsigned)plen > i * 8 ? (unsigned)plen - (unsigned)i * 8 : 0;
        uint8_t mask = bits >= 8 ? 0xff : (uint8_t)(0xff00u >> bits);
        if (out->addr[i] & (uint8_t)~mask)
            return EINVAL; /* host bits set: "10.0.2.5/24" is ambiguous, say 10.0.2.0/24 */
    }
    return 0;
}

static bool cidr_contains(const struct conf_cidr *c, const uint8_t *a)
{
    unsigned bits = c->prefix_len;
    for (size_t i = 0; bits > 0; i++) {
        uint8_t mask = bits >= 8 ? 0xff : (uint8_t)(0xff00u >> bits);
        if ((a[i] & mask) != c->addr[i])
            return false;
        bits = bits >= 8 ? bits - 8 : 0;
    }
    return true;
}

bool conf_cidr_match(const struct conf_cidr *v, size_t n, int family, const void *addr)
{
    return conf_cidr_find(v, n, family, addr) != NULL;
}

const struct conf_cidr *conf_cidr_find(const struct conf_cidr *v, size_t n, int family,
                                       const void *addr)
{
    const struct conf_cidr *best = NULL;
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    const uint8_t *a = addr;
    const uint8_t *a4 = NULL; /* the IPv4 address, if there is one */

    if (family == AF_INET)
        a4 = a;
    else if (family == AF_INET6 && memcmp(a, v4mapped, sizeof(v4mapped)) == 0)
        a4 = a + 12;
    for (size_t i = 0; i < n; i++) {
        bool in = (v[i].family == AF_INET && a4 && cidr_contains(&v[i], a4)) ||
                  (v[i].family == AF_INET6 && family == AF_INET6 && cidr_contains(&v[i], a));
        if (in && (!best || v[i].prefix_len > best->prefix_len))
            best = &v[i];
    }
    return best;
}

/* ---- exports --------------------------------------------------------------- */

/* A host name as RFC 1123 allows it: letters, digits, '-' and '.', 1..253 bytes. */
static bool host_name_ok(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > 253 || h[0] == '-' || h[0] == '.')
        return false;
    for (const char *c = h; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '.'))
            return false;
    return true;
}

/*
 * Add the client `spec` (CIDR, address or host name) with per-client
 * options rw/squash (-1: the export's) to x->clients.  A host name is
 * resolved now (every address it has); on SIGHUP it is resolved again.
 */
static int add_client(struct pctx *p, const config_setting_t *where, struct conf_export *x,
                      size_t *cap, const char *spec, int rw, int squash)
{
    struct conf_cidr one[64];
    size_t n = 0;
    if (parse_cidr(spec, &one[0]) == 0) {
        n = 1;
    } else if (strchr(spec, '/') || strchr(spec, ':') || !host_name_ok(spec)) {
        return perr(p, where, "clients: bad CIDR \"%s\" (address[/prefix] with host bits "
                    "zero) and not a host name", spec);
    } else {
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        struct addrinfo *res = NULL;
        int gr = getaddrinfo(spec, NULL, &hints, &res);
        if (gr != 0)
            return perr(p, where, "clients: cannot resolve host name \"%s\": %s", spec,
                        gai_strerror(gr));
        for (struct addrinfo *ai = res; ai && n < sizeof(one) / sizeof(one[0]); ai = ai->ai_next) {
            struct conf_cidr c = {0};
            if (ai->ai_family == AF_INET) {
                c.family = AF_INET;
                c.prefix_len = 32;
                memcpy(c.addr, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, 4);
            } else if (ai->ai_family == AF_INET6) {
                c.family = AF_INET6;
                c.prefix_len = 128;
                memcpy(c.addr, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, 16);
            } else {
                continue;
            }
            bool dup = false;
            for (size_t k = 0; k < n && !dup; k++)
                dup = memcmp(&one[k], &c, sizeof(c)) == 0;
            if (!dup)
                one[n++] = c;
        }
        freeaddrinfo(res);
        if (n == 0)
            return perr(p, where, "clients: host name \"%s\" has no IPv4 or IPv6 address", spec);
    }
    for (size_t k = 0; k < n; k++) {
        if (x->nclients == *cap) {
            size_t nc = *cap ? *cap * 2 : 8;
            struct conf_cidr *v = realloc(x->clients, nc * sizeof(*v));
            if (!v)
                return nomem(p);
            x->clients = v;
            *cap = nc;
        }
        one[k].rw = (int8_t)rw;
        one[k].squash = (int8_t)squash;
        x->clients[x->nclients++] = one[k];
    }
    return 0;
}

/*
 * clients = ( "10.0.0.0/8", "gpu-17.lab", { match = "10.1.0.0/16"; access = "ro";
 *             squash = "all"; } ): strings take the export's options, groups
 * set their own (as /etc/exports's per-client options).
 */
static int parse_clients(struct pctx *p, const config_setting_t *g, struct conf_export *x)
{
    static const char *const access_names[] = {"ro", "rw", NULL};
    static const char *const squash_names[] = {"none", "root", "all", NULL};
    config_setting_t *cl = config_setting_get_member(g, "clients");
    if (!config_setting_is_aggregate(cl) || config_setting_type(cl) == CONFIG_TYPE_GROUP)
        return perr(p, cl, "clients: must be a list like ( \"127.0.0.0/8\" )");
    int ncl = config_setting_length(cl);
    if (ncl == 0)
        return perr(p, cl, "clients: must name at least one address or network");
    size_t cap = 0;
    for (int i = 0; i < ncl; i++) {
        config_setting_t *c = config_setting_get_elem(cl, (unsigned)i);
        int rc;
        if (config_setting_type(c) == CONFIG_TYPE_STRING) {
            if ((rc = add_client(p, c, x, &cap, config_setting_get_string(c), -1, -1)))
                return rc;
            continue;
        }
        if (config_setting_type(c) != CONFIG_TYPE_GROUP)
            return perr(p, c, "clients: entries are strings like \"10.0.0.0/8\" or groups like "
                        "{ match = \"10.1.0.0/16\"; access = \"ro\"; }");
        if ((rc = check_keys(p, c, "a clients entry", "client", NULL)))
            return rc;
        const char *m = NULL;
        if (!config_setting_lookup_string(c, "match", &m))
            return perr(p, c, "clients: match must be a string");
        int rw = -1, squash = -1, idx;
        if (config_setting_get_member(c, "access")) {
            if ((rc = get_enum(p, c, "client", "access", access_names, &idx)))
                return rc;
            rw = idx;
        }
        if (config_setting_get_member(c, "squash")) {
            if ((rc = get_enum(p, c, "client", "squash", squash_names, &idx)))
                return rc;
            squash = idx == 0 ? CONF_SQUASH_NONE : idx == 1 ? CONF_SQUASH_ROOT : CONF_SQUASH_ALL;
        }
        if ((rc = add_client(p, c, x, &cap, m, rw, squash)))
            return rc;
    }
    return 0;
}

/* S3 bucket names: 3..63 of [a-z0-9.-], alphanumeric at both ends, no "..". */
static bool bucket_name_ok(const char *b)
{
    size_t n = strlen(b);
    if (n < 3 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && c != '.' && c != '-')
            return false;
        if ((i == 0 || i == n - 1) && !alnum)
            return false;
        if (c == '.' && b[i + 1] == '.')
            return false;
    }
    return true;
}

/* "" or "a/b" or "a/b/": relative, no empty, "." or ".." components.  Stored as "a/b/". */
static int prefix_norm(const char *in, char **out)
{
    size_t n = strlen(in);
    if (n == 0)
        return (*out = strdup("")) ? 0 : ENOMEM;
    if (in[0] == '/' || n > CONF_PREFIX_MAX)
        return EINVAL;
    for (const char *s = in; *s;) {
        const char *e = strchr(s, '/');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len == 0 || (len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
            return EINVAL;
        s += len;
        if (*s == '/')
            s++;
    }
    bool slash = in[n - 1] == '/';
    if (asprintf(out, "%s%s", in, slash ? "" : "/") < 0)
        return ENOMEM;
    return 0;
}

static void export_free(struct conf_export *e)
{
    free(e->path);
    free(e->store);
    free(e->bucket);
    free(e->prefix);
    free(e->clients);
}

void conf_exports_free(struct conf_exports *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->n; i++)
        export_free(&e->v[i]);
    free(e->v);
    free(e->file);
    memset(e, 0, sizeof(*e));
}

static int parse_export(struct pctx *p, const config_setting_t *g, const struct conf_store *stores,
                        size_t nstores, struct conf_export *x)
{
    static const char *const access_names[] = {"ro", "rw", NULL};
    static const char *const squash_names[] = {"none", "root", "all", NULL};
    const char *v = NULL;
    const config_setting_t *w;
    long long n;
    int rc, idx;

    x->line = config_setting_source_line(g);
    if (config_setting_type(g) != CONFIG_TYPE_GROUP)
        return perr(p, g, "each export must be a group { path = ...; ... }");
    if ((rc = check_keys(p, g, "export", "export", NULL)))
        return rc;

    if ((rc = get_str(p, g, "export", "path", &v, &w)))
        return rc;
    if (v[0] != '/')
        return perr(p, w, "path: \"%s\" must be absolute", v);
    if (!(x->path = path_normalize(v)))
        return nomem(p);
    if (strcmp(x->path, v) != 0)
        return perr(p, w, "path: \"%s\" is not normalized (did you mean \"%s\"?)", v, x->path);
    if (strlen(x->path) > 1024)
        return perr(p, w, "path: too long");

    if ((rc = get_str(p, g, "export", "store", &v, &w)))
        return rc;
    bool found = false;
    for (size_t i = 0; i < nstores; i++)
        found = found || strcmp(stores[i].name, v) == 0;
    if (!found)
        return perr(p, w, "export %s: unknown store '%s'", x->path, v);
    if ((rc = dup_str(p, v, &x->store)))
        return rc;

    if ((rc = get_str(p, g, "export", "bucket", &v, &w)))
        return rc;
    if (!bucket_name_ok(v))
        return perr(p, w, "bucket: \"%s\" is not a valid bucket name (3..63 of a-z 0-9 . -)", v);
    if ((rc = dup_str(p, v, &x->bucket)))
        return rc;

    if ((rc = get_str(p, g, "export", "prefix", &v, &w)))
        return rc;
    rc = prefix_norm(v, &x->prefix);
    if (rc == ENOMEM)
        return nomem(p);
    if (rc)
        return perr(p, w, "prefix: \"%s\" must be relative, without empty, \".\" or \"..\" parts", v);

    if ((rc = get_enum(p, g, "export", "access", access_names, &idx)))
        return rc;
    x->rw = idx == 1;
    if ((rc = get_enum(p, g, "export", "squash", squash_names, &idx)))
        return rc;
    x->squash = idx == 0 ? CONF_SQUASH_NONE : idx == 1 ? CONF_SQUASH_ROOT : CONF_SQUASH_ALL;

    if ((rc = parse_clients(p, g, x)))
        return rc;
    if ((rc = get_bool(p, g, "export", "secure", &x->secure)))
        return rc;

    if ((rc = get_int(p, g, "export", "anon_uid", 0, UINT32_MAX - 1, &n)))
        return rc;
    x->anon_uid = (uint32_t)n;
    if ((rc = get_int(p, g, "export", "anon_gid", 0, UINT32_MAX - 1, &n)))
        return rc;
    x->anon_gid = (uint32_t)n;
    if ((rc = get_int(p, g, "export", "uid", 0, UINT32_MAX - 1, &n)))
        return rc;
    x->uid = (uint32_t)n;
    if ((rc = get_int(p, g, "export", "gid", 0, UINT32_MAX - 1, &n)))
        return rc;
    x->gid = (uint32_t)n;
    if ((rc = get_int(p, g, "export", "metadata_ttl", 0, 86400, &n)))
        return rc;
    x->metadata_ttl = (unsigned)n;
    if ((rc = get_mode(p, g, "export", "file_mode", &x->file_mode)))
        return rc;
    if ((rc = get_mode(p, g, "export", "dir_mode", &x->dir_mode)))
        return rc;
    if ((rc = get_bool(p, g, "export", "shuffle", &x->shuffle)))
        return rc;
    if ((rc = get_int(p, g, "export", "writeback_delay", 0, 86400, &n)))
        return rc;
    x->writeback_delay = (unsigned)n;
    if ((rc = get_int(p, g, "export", "rename_dir_max", 0, 10000000, &n)))
        return rc;
    x->rename_dir_max = (unsigned)n;
    static const char *const consistency_names[] = {"ttl", "immutable", "strict", NULL};
    if ((rc = get_enum(p, g, "export", "consistency", consistency_names, &idx)))
        return rc;
    x->consistency = idx == 0   ? CONF_CONSISTENCY_TTL
                     : idx == 1 ? CONF_CONSISTENCY_IMMUTABLE
                                : CONF_CONSISTENCY_STRICT;
    static const char *const posix_names[] = {"any", "own", NULL};
    if ((rc = get_enum(p, g, "export", "posix_metadata", posix_names, &idx)))
        return rc;
    x->posix_own = idx == 1;
    return 0;
}

/*
 * Open, read and syntax-check one libconfig file.  cfg is initialized on
 * success.  Only a regular file: libconfig's scanner calls exit() when a
 * read fails, which a directory does (EISDIR), so a configuration naming a
 * folder would end `bucketnfsd -t`, or the serving daemon on SIGHUP, with
 * no message of ours; a device or a FIFO may never end.
 */
static int read_file(struct pctx *p, const char *path, config_t *cfg)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        snprintf(p->err, p->errlen, "%s:0: cannot open: %s", path, strerror(e));
        return e;
    }
    struct stat st;
    int e = fstat(fileno(f), &st) != 0 ? errno
            : S_ISDIR(st.st_mode)      ? EISDIR
            : !S_ISREG(st.st_mode)     ? EINVAL
                                       : 0;
    if (e) {
        snprintf(p->err, p->errlen, "%s:0: cannot read: %s", path,
                 e == EINVAL ? "not a regular file" : strerror(e));
        fclose(f);
        return e;
    }
    config_init(cfg);
    config_set_include_dir(cfg, p->dir);
    int ok = config_read(cfg, f);
    fclose(f);
    if (ok != CONFIG_TRUE) {
        const char *ef = config_error_file(cfg);
        snprintf(p->err, p->errlen, "%s:%d: %s", ef ? ef : path, config_error_line(cfg),
                 config_error_text(cfg));
        config_destroy(cfg);
        return EINVAL;
    }
    return 0;
}

/* Split a resolved file name into p->file / p->dir.  `file` stays owned by the caller. */
static int pctx_init(struct pctx *p, const char *file, char *err, size_t errlen)
{
    p->file = file;
    p->err = err;
    p->errlen = errlen;
    p->dir = strdup(file);
    if (!p->dir)
        return nomem(p);
    char *slash = strrchr(p->dir, '/');
    if (slash == p->dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    return 0;
}

static int load_exports_file(const char *file, const struct conf_store *stores, size_t nstores,
                             struct conf_exports *out, char *err, size_t errlen)
{
    struct pctx p;
    config_t cfg;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = pctx_init(&p, file, err, errlen)))
        return rc;
    if ((rc = read_file(&p, file, &cfg)))
        goto out_dir;
    config_setting_t *root = config_root_setting(&cfg);
    if ((rc = check_keys(&p, root, "exports file", "xtop", NULL)))
        goto out_cfg;
    config_setting_t *list = config_setting_get_member(root, "exports");
    if (!config_setting_is_aggregate(list) || config_setting_type(list) == CONFIG_TYPE_GROUP) {
        rc = perr(&p, list, "exports: must be a list ( { path = ...; }, ... )");
        goto out_cfg;
    }
    if (!(out->file = strdup(file))) {
        rc = nomem(&p);
        goto out_cfg;
    }
    size_t n = (size_t)config_setting_length(list);
    if (n && !(out->v = calloc(n, sizeof(*out->v)))) {
        rc = nomem(&p);
        goto out_exports;
    }
    for (size_t i = 0; i < n; i++) {
        config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        struct conf_export *x = &out->v[i];
        out->n++; /* counted first so that a partly parsed export is freed */
        if ((rc = parse_export(&p, g, stores, nstores, x)))
            goto out_exports;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(out->v[j].path, x->path) == 0) {
                rc = perr(&p, config_setting_get_member(g, "path"),
                          "duplicate export path \"%s\" (first defined at line %d)", x->path,
                          out->v[j].line);
                goto out_exports;
            }
        }
    }
    config_destroy(&cfg);
    free(p.dir);
    return 0;

out_exports:
    conf_exports_free(out);
out_cfg:
    config_destroy(&cfg);
out_dir:
    free(p.dir);
    return rc;
}

int conf_load_exports(const struct conf *c, struct conf_exports *out, char *err, size_t errlen)
{
    return load_exports_file(c->exports.file, c->stores, c->nstores, out, err, errlen);
}

/* ---- the main file ------------------------------------------------------ */

/*
 * The section `name` of root as a group; a missing section is added empty
 * so that every key takes its default from conf_keys[].
 */
static int section(struct pctx *p, config_setting_t *root, const char *name,
                   config_setting_t **out)
{
    config_setting_t *g = config_setting_get_member(root, name);
    if (g && config_setting_type(g) != CONFIG_TYPE_GROUP)
        return perr(p, g, "%s: must be a group { ... }", name);
    if (!g && !(g = config_setting_add(root, name, CONFIG_TYPE_GROUP)))
        return nomem(p);
    *out = g;
    return check_keys(p, g, name, name, NULL);
}

static int parse_server(struct pctx *p, config_setting_t *root, struct conf_server *sv)
{
    config_setting_t *g;
    const char *v = NULL;
    const config_setting_t *w;
    long long n;
    int rc;

    if ((rc = section(p, root, "server", &g)))
        return rc;
    if ((rc = get_str(p, g, "server", "listen", &v, &w)))
        return rc;
    unsigned char tmp[16];
    if (inet_pton(AF_INET, v, tmp) != 1 && inet_pton(AF_INET6, v, tmp) != 1)
        return perr(p, w, "listen: \"%s\" is not an IPv4 or IPv6 address", v);
    if ((rc = dup_str(p, v, &sv->listen)))
        return rc;
    if ((rc = get_int(p, g, "server", "nfs_port", 0, 65535, &n)))
        return rc;
    sv->nfs_port = (uint16_t)n;
    if ((rc = get_int(p, g, "server", "mount_port", 0, 65535, &n)))
        return rc;
    sv->mount_port = (uint16_t)n;
    if ((rc = get_bool(p, g, "server", "rpcbind", &sv->rpcbind)))
        return rc;
    if ((rc = get_int(p, g, "server", "threads", 1, 1024, &n)))
        return rc;
    sv->threads = (unsigned)n;
    if ((rc = get_str(p, g, "server", "state_dir", &v, &w)))
        return rc;
    if ((rc = resolve_path(p, w, v, &sv->state_dir)))
        return rc;
    if ((rc = get_size(p, g, "server", "meta_cache", &sv->meta_cache, &w)))
        return rc;
    /* Berkeley DB wants room for a few hundred pages; past 1T is a typo. */
    if (sv->meta_cache < CONF_META_CACHE_MIN || sv->meta_cache > CONF_META_CACHE_MAX)
        return perr(p, w, "meta_cache: %llu bytes must be between 1M and 1T",
                    (unsigned long long)sv->meta_cache);
    if ((rc = get_str(p, g, "server", "metrics", &v, &w)))
        return rc;
    if (v && *v) { /* "" (or no key): no metrics endpoint */
        const char *colon = strrchr(v, ':');
        char *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : -1;
        /* port 0 picks a free port (tests): bucketnfsd.ports names it */
        if (!colon || colon == v || !colon[1] || *end || port < 0 || port > 65535)
            return perr(p, w, "metrics: \"%s\" must be address:port", v);
        if ((rc = dup_str(p, v, &sv->metrics)))
            return rc;
    }
    if ((rc = get_str(p, g, "server", "log_level", &v, &w)))
        return rc;
    sv->log_level = log_level_parse(v);
    if (sv->log_level < LOG_ERR)
        return perr(p, w, "log_level: \"%s\" is not one of err, warning, notice, info, debug",
                    v);
    return 0;
}

static int parse_cache(struct pctx *p, config_setting_t *root, struct conf_cache *cc)
{
    config_setting_t *g;
    const config_setting_t *w;
    uint64_t bs;
    int rc;

    if ((rc = section(p, root, "cache", &g)))
        return rc;
    config_setting_t *dirs = config_setting_get_member(g, "dirs");
    if (dirs) {
        bool islist = config_setting_type(dirs) == CONFIG_TYPE_LIST ||
                      config_setting_type(dirs) == CONFIG_TYPE_ARRAY;
        int n = islist ? config_setting_length(dirs) : 0;
        if (!islist || n == 0)
            return perr(p, dirs, "dirs: must be a non-empty list of paths ( \"dir\", ... )");
        if (!(cc->dirs = calloc((size_t)n, sizeof(char *))))
            return nomem(p);
        for (int i = 0; i < n; i++) {
            config_setting_t *d = config_setting_get_elem(dirs, (unsigned)i);
            if (config_setting_type(d) != CONFIG_TYPE_STRING)
                return perr(p, d, "dirs: entries must be strings");
            if ((rc = resolve_path(p, dirs, config_setting_get_string(d), &cc->dirs[i])))
                return rc;
            cc->ndirs++;
        }
    } else {
        if (!(cc->dirs = calloc(1, sizeof(char *))))
            return nomem(p);
        if ((rc = resolve_path(p, g, key_default("cache", "dirs"), &cc->dirs[0])))
            return rc;
        cc->ndirs = 1;
    }
    if ((rc = get_size(p, g, "cache", "block_size", &bs, &w)))
        return rc;
    if (bs < 4096 || bs > (64u << 20) || (bs & (bs - 1)))
        return perr(p, w, "block_size: %llu must be a power of two between 4K and 64M",
                    (unsigned long long)bs);
    cc->block_size = (uint32_t)bs;
    if ((rc = get_size(p, g, "cache", "size", &cc->size, &w)))
        return rc;
    /* The cache is laid out in regions of 16 blocks (and 1 MiB) at least, and needs 4. */
    uint64_t min_size = (bs * 16 > (1u << 20) ? bs * 16 : (1u << 20)) * 4 + (64u << 10);
    if (cc->size < min_size)
        return perr(p, w, "size: the cache (%llu bytes) must hold at least 4 regions of 16 "
                    "blocks: %llu bytes with block_size %llu",
                    (unsigned long long)cc->size, (unsigned long long)min_size,
                    (unsigned long long)bs);
    if ((rc = get_size(p, g, "cache", "readahead_max", &cc->readahead_max, &w)))
        return rc;
    if (cc->readahead_max > cc->size)
        return perr(p, w, "readahead_max: must not exceed the cache size");
    if ((rc = get_size(p, g, "cache", "prefetch_budget", &cc->prefetch_budget, &w)))
        return rc;
    if (cc->prefetch_budget < bs)
        return perr(p, w, "prefetch_budget: must hold at least one block (%llu bytes)",
                    (unsigned long long)bs);
    long long n;
    if ((rc = get_int(p, g, "cache", "fetch_max", 1, 1024, &n)))
        return rc;
    cc->fetch_max = (unsigned)n;
    if ((rc = get_size(p, g, "cache", "dirty_max", &cc->dirty_max, &w)))
        return rc;
    /* Dirty data takes its share of cache.size: the clean blocks get the rest. */
    if (cc->dirty_max == 0) {
        cc->dirty_max = cc->size / 4;
        if (cc->size - cc->dirty_max < min_size)
            cc->dirty_max = cc->size - min_size;
    } else if (cc->dirty_max > cc->size / 2)
        return perr(p, w, "dirty_max: at most half the cache size (%llu bytes)",
                    (unsigned long long)(cc->size / 2));
    if (cc->size - cc->dirty_max < min_size)
        return perr(p, w, "dirty_max: leaves the clean cache less than %llu bytes",
                    (unsigned long long)min_size);
    if ((rc = get_int(p, g, "cache", "upload_threads", 1, 256, &n)))
        return rc;
    cc->upload_threads = (unsigned)n;
    return 0;
}

static void store_free(struct conf_store *s)
{
    free(s->name);
    free(s->root);
    free(s->latency_match);
    free(s->endpoint);
    free(s->region);
    free(s->credentials);
    free(s->profile);
    free(s->credentials_file);
    free(s->access_key);
    free(s->secret_key);
    free(s->session_token);
}

static int parse_store_dir(struct pctx *p, const config_setting_t *g, struct conf_store *s)
{
    const char *v = NULL;
    const config_setting_t *w;
    long long n;
    int rc;

    if ((rc = get_str(p, g, "dir", "root", &v, &w)))
        return rc;
    if ((rc = resolve_path(p, w, v, &s->root)))
        return rc;
    if ((rc = get_int(p, g, "dir", "latency_ms", 0, 600000, &n)))
        return rc;
    s->latency_ms = (unsigned)n;
    if ((rc = get_str(p, g, "dir", "latency_match", &v, &w)))
        return rc;
    if (v && !*v)
        return perr(p, w, "latency_match: must not be empty (leave it out to delay every key)");
    if ((rc = dup_str(p, v, &s->latency_match)))
        return rc;
    bool list_posix;
    if ((rc = get_bool(p, g, "dir", "list_posix", &list_posix)))
        return rc;
    s->list_bare = !list_posix;
    return get_float(p, g, "dir", "fail_rate", 0.0, 1.0, &s->fail_rate);
}

static int parse_store_s3(struct pctx *p, const config_setting_t *g, struct conf_store *s)
{
    static const char *const addressing_names[] = {"virtual", "path", NULL};
    static const char *const cred_names[] = {"env", "file", "config", NULL};
    const char *v = NULL;
    const config_setting_t *w;
    int rc, idx;

    if ((rc = get_str(p, g, "s3", "endpoint", &v, &w)))
        return rc;
    if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0)
        return perr(p, w, "endpoint: \"%s\" must start with http:// or https://", v);
    if ((rc = dup_str(p, v, &s->endpoint)))
        return rc;
    if ((rc = get_dup(p, g, "s3", "region", &s->region)))
        return rc;
    if ((rc = get_enum(p, g, "s3", "addressing", addressing_names, &idx)))
        return rc;
    s->virtual_hosted = idx == 0;
    if ((rc = get_enum(p, g, "s3", "credentials", cred_names, &idx)))
        return rc;
    if ((rc = dup_str(p, cred_names[idx], &s->credentials)))
        return rc;
    if ((rc = get_dup(p, g, "s3", "profile", &s->profile)))
        return rc;
    if ((rc = get_str(p, g, "s3", "credentials_file", &v, &w)))
        return rc;
    if (v && (rc = resolve_path(p, w, v, &s->credentials_file)))
        return rc;

    static const char *const secrets[] = {"access_key", "secret_key", "session_token"};
    for (size_t i = 0; i < 3; i++) {
        config_setting_t *k = config_setting_get_member(g, secrets[i]);
        if (k && idx != 2)
            return perr(p, k, "%s: only allowed with credentials = \"config\"", secrets[i]);
    }
    if (idx == 2) {
        for (size_t i = 0; i < 2; i++)
            if (!config_setting_get_member(g, secrets[i]))
                return perr(p, g, "store %s: credentials = \"config\" needs %s", s->name,
                            secrets[i]);
        config_setting_t *k = config_setting_get_member(g, "secret_key");
        const char *f = config_setting_source_file(k) ? config_setting_source_file(k) : p->file;
        struct stat st;
        if (stat(f, &st) != 0)
            return perr(p, k, "cannot stat %s: %s", f, strerror(errno));
        if (st.st_mode & (S_IRGRP | S_IROTH))
            return perr(p, k, "secret_key: %s is readable by group or others (chmod 600 it)", f);
        if ((rc = get_dup(p, g, "s3", "access_key", &s->access_key)) ||
            (rc = get_dup(p, g, "s3", "secret_key", &s->secret_key)) ||
            (rc = get_dup(p, g, "s3", "session_token", &s->session_token)))
            return rc;
    }
    return 0;
}

static int parse_stores(struct pctx *p, const config_setting_t *root, struct conf *c)
{
    static const char *const type_names[] = {"dir", "s3", NULL};
    config_setting_t *list = config_setting_get_member(root, "stores");
    int rc, idx;

    if (!config_setting_is_aggregate(list) || config_setting_type(list) == CONFIG_TYPE_GROUP ||
        config_setting_length(list) == 0)
        return perr(p, list, "stores: must be a non-empty list ( { name = ...; type = ...; } )");
    size_t n = (size_t)config_setting_length(list);
    if (!(c->stores = calloc(n, sizeof(*c->stores))))
        return nomem(p);
    for (size_t i = 0; i < n; i++) {
        config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        struct conf_store *s = &c->stores[i];
        c->nstores++;
        s->line = config_setting_source_line(g);
        if (config_setting_type(g) != CONFIG_TYPE_GROUP)
            return perr(p, g, "each store must be a group { name = ...; type = ...; }");
        if (!config_setting_get_member(g, "type"))
            return perr(p, g, "store: missing required key 'type' (\"dir\" or \"s3\")");
        if ((rc = get_enum(p, g, "store", "type", type_names, &idx)))
            return rc;
        s->type = idx == 0 ? CONF_STORE_DIR : CONF_STORE_S3;
        if ((rc = check_keys(p, g, idx == 0 ? "dir store" : "s3 store", "store", type_names[idx])))
            return rc;
        const char *v;
        const config_setting_t *w;
        if ((rc = get_str(p, g, "store", "name", &v, &w)))
            return rc;
        if (!*v)
            return perr(p, w, "name: must not be empty");
        for (size_t j = 0; j < i; j++)
            if (strcmp(c->stores[j].name, v) == 0)
                return perr(p, w, "duplicate store name '%s' (first defined at line %d)", v,
                            c->stores[j].line);
        if ((rc = dup_str(p, v, &s->name)))
            return rc;
        rc = s->type == CONF_STORE_DIR ? parse_store_dir(p, g, s) : parse_store_s3(p, g, s);
        if (rc)
            return rc;
    }
    return 0;
}

static int load(const char *path, bool with_exports, struct conf **out, char *err, size_t errlen)
{
    struct pctx p;
    config_t cfg;
    int rc;

    *out = NULL;
    struct conf *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "%s: out of memory", path);
        return ENOMEM;
    }
    if (!(c->file = realpath(path, NULL))) {
        rc = errno;
        snprintf(err, errlen, "%s:0: cannot open: %s", path, strerror(rc));
        goto out_conf;
    }
    if ((rc = pctx_init(&p, c->file, err, errlen)))
        goto out_conf;
    if ((rc = read_file(&p, c->file, &cfg)))
        goto out_dir;
    config_setting_t *root = config_root_setting(&cfg);
    if ((rc = check_keys(&p, root, "the top level", "top", NULL)) ||
        (rc = parse_server(&p, root, &c->server)) || (rc = parse_cache(&p, root, &c->cache)) ||
        (rc = parse_stores(&p, root, c)))
        goto out_cfg;

    const char *v = NULL;
    const config_setting_t *w;
    char *xfile = NULL;
    if ((rc = get_str(&p, root, "top", "exports_file", &v, &w)) ||
        (rc = resolve_path(&p, w, v, &xfile)))
        goto out_cfg;
    if (with_exports) {
        rc = load_exports_file(xfile, c->stores, c->nstores, &c->exports, err, errlen);
        free(xfile);
    } else {
        c->exports.file = xfile; /* freed by conf_free */
    }
    if (rc)
        goto out_cfg;

    config_destroy(&cfg);
    free(p.dir);
    *out = c;
    return 0;

out_cfg:
    config_destroy(&cfg);
out_dir:
    free(p.dir);
out_conf:
    conf_free(c);
    return rc;
}

int conf_load(const char *path, struct conf **out, char *err, size_t errlen)
{
    return load(path, true, out, err, errlen);
}

int conf_load_server(const char *path, struct conf **out, char *err, size_t errlen)
{
    return load(path, false, out, err, errlen);
}

const struct conf_store *conf_store_find(const struct conf *c, const char *name)
{
    for (size_t i = 0; i < c->nstores; i++)
        if (strcmp(c->stores[i].name, name) == 0)
            return &c->stores[i];
    return NULL;
}

void conf_free(struct conf *c)
{
    if (!c)
        return;
    free(c->server.listen);
    free(c->server.state_dir);
    free(c->server.metrics);
    for (size_t i = 0; i < c->cache.ndirs; i++)
        free(c->cache.dirs[i]);
    free(c->cache.dirs);
    for (size_t i = 0; i < c->nstores; i++)
        store_free(&c->stores[i]);
    free(c->stores);
    conf_exports_free(&c->exports);
    free(c->file);
    free(c);
}
