/*
 * test_conf.c - configuration parsing: a valid file and its defaults, every
 * kind of mistake reported as "file:line: why", relative paths, CIDR
 * matching, sizes, and re-reading the exports file.
 *
 * Each case writes its files into a fresh temporary folder; the files are
 * built from line arrays so the expected line numbers are visible here.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/conf.h"
#include "common/log.h"
#include "tests/unit/testlib.h"

static char tmp[PATH_MAX];

static const char *const base_conf[] = {
    "server = {",                                                          /* 1 */
    "  listen = \"127.0.0.1\"; nfs_port = 0; mount_port = 0;",             /* 2 */
    "  rpcbind = false; threads = 4; state_dir = \"state\";",             /* 3 */
    "};",                                                                  /* 4 */
    "cache = { dirs = ( \"cache\" ); size = \"128M\"; block_size = \"1M\"; };", /* 5 */
    "stores = ( { name = \"local\"; type = \"dir\"; root = \"buckets\"; } );", /* 6 */
    "exports_file = \"exports.conf\";",                                    /* 7 */
    NULL,
};

static const char *const base_exports[] = {
    "exports = (",                                                           /* 1 */
    "  { path = \"/demo\"; store = \"local\"; bucket = \"demo\";",           /* 2 */
    "    clients = ( \"127.0.0.0/8\" ); },",                                 /* 3 */
    "  { path = \"/cam\"; store = \"local\"; bucket = \"cam-data\"; prefix = \"2024/front\";",
    "    access = \"rw\"; clients = ( \"10.0.2.0/24\", \"::1\" ); squash = \"all\";", /* 5 */
    "    anon_uid = 1000; anon_gid = 1001; metadata_ttl = 5; file_mode = \"0600\";", /* 6 */
    "    dir_mode = 448; uid = 7; gid = 8; consistency = \"immutable\"; posix_metadata = \"own\"; }", /* 7 */
    ");",                                                                    /* 8 */
    NULL,
};

/* Write lines to tmp/name; line `repl_line` (1-based, 0 = none) replaced by repl. */
static void write_lines(const char *name, const char *const *lines, int repl_line,
                        const char *repl, mode_t mode)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/%s", tmp, name);
    unlink(path);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(2);
    }
    for (int i = 0; lines[i]; i++)
        fprintf(f, "%s\n", i + 1 == repl_line ? repl : lines[i]);
    fclose(f);
    chmod(path, mode);
}

static int load(struct conf **c, char *err, size_t len)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/bucketnfs.conf", tmp);
    err[0] = '\0';
    return conf_load(path, c, err, len);
}

/*
 * Load with one line of the main file (conf_line) or of the exports file
 * (xline) replaced; expect failure with "FILE:LINE: " + a message holding want.
 */
static void expect_error(int conf_line, const char *conf_repl, int xline, const char *xrepl,
                         const char *file, int line, const char *want)
{
    struct conf *c = NULL;
    char err[512], prefix[PATH_MAX + 80];
    write_lines("bucketnfs.conf", base_conf, conf_line, conf_repl, 0644);
    write_lines("exports.conf", base_exports, xline, xrepl, 0644);
    int rc = load(&c, err, sizeof(err));
    snprintf(prefix, sizeof(prefix), "%s/%s:%d: ", tmp, file, line);
    bool ok = rc != 0 && c == NULL && strncmp(err, prefix, strlen(prefix)) == 0 &&
              strstr(err, want) != NULL;
    CHECK(ok);
    if (!ok)
        fprintf(stderr, "  wanted %s...%s\n  got rc=%d: %s\n", prefix, want, rc, err);
    conf_free(c);
}

static void test_valid(void)
{
    struct conf *c = NULL;
    char err[512];
    write_lines("bucketnfs.conf", base_conf, 0, NULL, 0644);
    write_lines("exports.conf", base_exports, 0, NULL, 0644);
    int rc = load(&c, err, sizeof(err));
    CHECK_EQ_INT(rc, 0);
    if (rc) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    char want[PATH_MAX + 64];
    CHECK(strcmp(c->server.listen, "127.0.0.1") == 0);
    CHECK_EQ_INT(c->server.nfs_port, 0);
    CHECK_EQ_INT(c->server.threads, 4);
    CHECK(!c->server.rpcbind);
    snprintf(want, sizeof(want), "%s/state", tmp);
    CHECK(strcmp(c->server.state_dir, want) == 0);
    CHECK(c->server.metrics == NULL);
    CHECK_EQ_INT(c->server.log_level, LOG_INFO);
    CHECK_EQ_INT(c->cache.ndirs, 1);
    snprintf(want, sizeof(want), "%s/cache", tmp);
    CHECK(strcmp(c->cache.dirs[0], want) == 0);
    CHECK_EQ_INT(c->cache.size, 128u << 20);
    CHECK_EQ_INT(c->cache.block_size, 1u << 20);
    CHECK_EQ_INT(c->cache.readahead_max, 64u << 20); /* default */
    CHECK_EQ_INT(c->nstores, 1);
    const struct conf_store *s = conf_store_find(c, "local");
    CHECK(s != NULL && s->type == CONF_STORE_DIR);
    snprintf(want, sizeof(want), "%s/buckets", tmp);
    CHECK(s && strcmp(s->root, want) == 0);
    CHECK(s && s->latency_ms == 0 && s->latency_match == NULL && s->fail_rate == 0.0);
    CHECK(s && !s->list_bare);
    CHECK(conf_store_find(c, "nope") == NULL);
    snprintf(want, sizeof(want), "%s/exports.conf", tmp);
    CHECK(strcmp(c->exports.file, want) == 0);
    CHECK_EQ_INT(c->exports.n, 2);
    if (c->exports.n == 2) {
        const struct conf_export *d = &c->exports.v[0], *x = &c->exports.v[1];
        /* defaults */
        CHECK(strcmp(d->path, "/demo") == 0 && strcmp(d->prefix, "") == 0);
        CHECK(!d->rw);
        CHECK_EQ_INT(d->squash, CONF_SQUASH_ROOT);
        CHECK_EQ_INT(d->anon_uid, 65534);
        CHECK_EQ_INT(d->anon_gid, 65534);
        CHECK_EQ_INT(d->metadata_ttl, 30);
        CHECK_EQ_INT(d->file_mode, 0644);
        CHECK_EQ_INT(d->dir_mode, 0755);
        CHECK_EQ_INT(d->uid, 0);
        CHECK_EQ_INT(d->consistency, CONF_CONSISTENCY_TTL);
        CHECK(!d->posix_own);
        CHECK_EQ_INT(d->line, 2);
        /* explicit values */
        CHECK(strcmp(x->bucket, "cam-data") == 0);
        CHECK(strcmp(x->prefix, "2024/front/") == 0);
        CHECK(x->rw);
        CHECK_EQ_INT(x->squash, CONF_SQUASH_ALL);
        CHECK_EQ_INT(x->anon_uid, 1000);
        CHECK_EQ_INT(x->anon_gid, 1001);
        CHECK_EQ_INT(x->metadata_ttl, 5);
        CHECK_EQ_INT(x->file_mode, 0600);
        CHECK_EQ_INT(x->dir_mode, 0700);
        CHECK_EQ_INT(x->uid, 7);
        CHECK_EQ_INT(x->gid, 8);
        CHECK_EQ_INT(x->consistency, CONF_CONSISTENCY_IMMUTABLE);
        CHECK(x->posix_own);
        CHECK_EQ_INT(x->nclients, 2);

        uint8_t a4[4], a6[16];
        inet_pton(AF_INET, "127.1.2.3", a4);
        CHECK(conf_cidr_match(d->clients, d->nclients, AF_INET, a4));
        inet_pton(AF_INET, "128.0.0.1", a4);
        CHECK(!conf_cidr_match(d->clients, d->nclients, AF_INET, a4));
        inet_pton(AF_INET6, "::ffff:127.0.0.1", a6); /* v4-mapped matches v4 rules */
        CHECK(conf_cidr_match(d->clients, d->nclients, AF_INET6, a6));
        inet_pton(AF_INET6, "::1", a6);
        CHECK(!conf_cidr_match(d->clients, d->nclients, AF_INET6, a6));
        CHECK(conf_cidr_match(x->clients, x->nclients, AF_INET6, a6));
        inet_pton(AF_INET, "10.0.2.15", a4);
        CHECK(conf_cidr_match(x->clients, x->nclients, AF_INET, a4));
        inet_pton(AF_INET, "10.0.3.15", a4);
        CHECK(!conf_cidr_match(x->clients, x->nclients, AF_INET, a4));
    }
    conf_free(c);
}

/* Per-client options, host names, the most specific entry, secure. */
static void test_clients(void)
{
    struct conf *c = NULL;
    char err[512];
    write_lines("bucketnfs.conf", base_conf, 0, NULL, 0644);
    write_lines("exports.conf", base_exports, 3,
                "    clients = ( \"10.0.0.0/8\", \"localhost\", { match = \"10.1.0.0/16\"; "
                "access = \"rw\"; squash = \"all\"; } ); secure = true; },",
                0644);
    CHECK_EQ_INT(load(&c, err, sizeof(err)), 0);
    if (!c) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    const struct conf_export *d = &c->exports.v[0];
    CHECK(d->secure);
    CHECK(!d->rw);
    uint8_t a4[4], a6[16];
    inet_pton(AF_INET, "10.1.2.3", a4); /* both entries hold it: the /16 wins */
    const struct conf_cidr *m = conf_cidr_find(d->clients, d->nclients, AF_INET, a4);
    CHECK(m && m->prefix_len == 16 && m->rw == 1 && m->squash == CONF_SQUASH_ALL);
    inet_pton(AF_INET, "10.2.0.1", a4);
    m = conf_cidr_find(d->clients, d->nclients, AF_INET, a4);
    CHECK(m && m->prefix_len == 8 && m->rw == -1 && m->squash == -1);
    inet_pton(AF_INET, "127.0.0.1", a4); /* localhost, resolved */
    CHECK(conf_cidr_match(d->clients, d->nclients, AF_INET, a4));
    inet_pton(AF_INET6, "::2", a6);
    CHECK(!conf_cidr_match(d->clients, d->nclients, AF_INET6, a6));
    conf_free(c);
}

/* A file with only the required keys takes every default. */
static void test_minimal(void)
{
    static const char *const min_conf[] = {
        "stores = ( { name = \"s\"; type = \"dir\"; root = \"/srv/b\"; } );",
        NULL,
    };
    static const char *const min_exports[] = {"exports = ( );", NULL};
    struct conf *c = NULL;
    char err[512];
    write_lines("bucketnfs.conf", min_conf, 0, NULL, 0644);
    write_lines("exports.conf", min_exports, 0, NULL, 0644);
    int rc = load(&c, err, sizeof(err));
    CHECK_EQ_INT(rc, 0);
    if (rc) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    CHECK(strcmp(c->server.listen, "0.0.0.0") == 0);
    CHECK_EQ_INT(c->server.nfs_port, 2049);
    CHECK_EQ_INT(c->server.mount_port, 20048);
    CHECK(c->server.rpcbind);
    CHECK_EQ_INT(c->server.threads, 16);
    CHECK_EQ_INT(c->server.meta_cache, 64u << 20);
    CHECK_EQ_INT(c->cache.size, 8ull << 30);
    CHECK_EQ_INT(c->cache.block_size, 1u << 20);
    CHECK(strcmp(c->stores[0].root, "/srv/b") == 0);
    CHECK_EQ_INT(c->exports.n, 0);
    conf_free(c);
}

static void test_errors(void)
{
    /* libconfig syntax error, reported with its line */
    expect_error(3, "  rpcbind = false; threads = = 4;", 0, NULL, "bucketnfs.conf", 3, "syntax");
    /* unknown keys at every level */
    expect_error(7, "exports_fle = \"exports.conf\";", 0, NULL, "bucketnfs.conf", 7,
                 "unknown key 'exports_fle'");
    expect_error(2, "  listen = \"127.0.0.1\"; nfs_prt = 0;", 0, NULL, "bucketnfs.conf", 2,
                 "unknown key 'nfs_prt' in server");
    expect_error(6, "stores = ( { name = \"local\"; type = \"dir\"; root = \"b\"; region = \"x\"; } );",
                 0, NULL, "bucketnfs.conf", 6, "unknown key 'region' in dir store");
    expect_error(0, NULL, 3, "    clients = ( \"127.0.0.0/8\" ); acess = \"rw\"; },",
                 "exports.conf", 3, "unknown key 'acess' in export");
    /* bad values */
    expect_error(2, "  listen = \"127.0.0.1\"; nfs_port = 70000; mount_port = 0;", 0, NULL,
                 "bucketnfs.conf", 2, "nfs_port: 70000 is out of range 0..65535");
    expect_error(3, "  rpcbind = false; threads = \"4\"; state_dir = \"state\";", 0, NULL,
                 "bucketnfs.conf", 3, "threads: must be an integer");
    expect_error(3, "  rpcbind = false; threads = 0; state_dir = \"state\";", 0, NULL,
                 "bucketnfs.conf", 3, "threads: 0 is out of range 1..1024");
    expect_error(5, "cache = { dirs = ( \"c\" ); size = \"8X\"; };", 0, NULL, "bucketnfs.conf",
                 5, "size: bad size \"8X\"");
    expect_error(5, "cache = { dirs = ( \"c\" ); block_size = \"3K\"; };", 0, NULL,
                 "bucketnfs.conf", 5, "power of two");
    expect_error(5, "cache = { dirs = ( \"c\" ); size = \"512K\"; };", 0, NULL,
                 "bucketnfs.conf", 5, "at least 4 regions");
    expect_error(6, "stores = ( { name = \"l\"; type = \"dir\"; root = \"b\"; fail_rate = 1.5; } );",
                 0, NULL, "bucketnfs.conf", 6, "fail_rate");
    expect_error(6, "stores = ( { name = \"l\"; type = \"dir\"; root = \"b\"; list_posix = \"no\"; } );",
                 0, NULL, "bucketnfs.conf", 6, "list_posix");
    expect_error(6, "stores = ( { name = \"l\"; type = \"dir\"; root = \"b\"; }, { name = \"l\"; type = \"dir\"; root = \"c\"; } );",
                 0, NULL, "bucketnfs.conf", 6, "duplicate store name 'l'");
    expect_error(6, "stores = ( { name = \"l\"; type = \"nfs\"; root = \"b\"; } );", 0, NULL,
                 "bucketnfs.conf", 6, "type: \"nfs\" is not one of");
    expect_error(6, "stores = ( { name = \"a\"; type = \"s3\"; endpoint = \"https://h\"; access_key = \"AK\"; } );",
                 0, NULL, "bucketnfs.conf", 6, "only allowed with credentials = \"config\"");
    expect_error(6, "stores = ( { name = \"a\"; type = \"s3\"; endpoint = \"https://h\"; credentials = \"config\"; access_key = \"AK\"; secret_key = \"SK\"; } );",
                 0, NULL, "bucketnfs.conf", 6, "readable by group or others");
    expect_error(0, NULL, 3, "    clients = ( \"10.0.0.0/33\" ); },", "exports.conf", 3,
                 "bad CIDR \"10.0.0.0/33\"");
    expect_error(0, NULL, 3, "    clients = ( \"10.0.2.5/24\" ); },", "exports.conf", 3,
                 "bad CIDR \"10.0.2.5/24\"");
    expect_error(0, NULL, 3, "    clients = ( ); },", "exports.conf", 3, "at least one");
    expect_error(0, NULL, 3, "    clients = ( \"no-such-host.invalid\" ); },", "exports.conf", 3,
                 "cannot resolve host name \"no-such-host.invalid\"");
    expect_error(0, NULL, 3, "    clients = ( { match = \"10.0.0.0/8\"; acess = \"ro\"; } ); },",
                 "exports.conf", 3, "unknown key 'acess'");
    expect_error(0, NULL, 3, "    clients = ( { access = \"ro\"; } ); },", "exports.conf", 3,
                 "missing required key 'match'");
    expect_error(0, NULL, 3, "    clients = ( { match = \"10.0.0.0/8\"; squash = \"some\"; } ); },",
                 "exports.conf", 3, "squash: \"some\" is not one of");
    expect_error(0, NULL, 3, "    clients = ( 42 ); },", "exports.conf", 3, "entries are strings");
    expect_error(0, NULL, 2, "  { path = \"/demo\"; store = \"s3\"; bucket = \"demo\";",
                 "exports.conf", 2, "unknown store 's3'");
    expect_error(0, NULL, 4, "  { path = \"/demo\"; store = \"local\"; bucket = \"cam-data\";",
                 "exports.conf", 4, "duplicate export path \"/demo\" (first defined at line 2)");
    expect_error(0, NULL, 6, "    file_mode = \"0999\";", "exports.conf", 6,
                 "file_mode: bad mode \"0999\"");
    expect_error(0, NULL, 7, "    dir_mode = 448; consistency = \"eventual\"; }", "exports.conf", 7,
                 "consistency: \"eventual\" is not one of \"ttl\", \"immutable\", \"strict\"");
    expect_error(0, NULL, 7, "    consistency = 1; }", "exports.conf", 7, "consistency");
    expect_error(0, NULL, 7, "    posix_metadata = \"none\"; }", "exports.conf", 7,
                 "posix_metadata: \"none\" is not one of \"any\", \"own\"");
    expect_error(0, NULL, 2, "  { path = \"/demo/../x/\"; store = \"local\"; bucket = \"demo\";",
                 "exports.conf", 2, "did you mean \"/x\"");
    expect_error(0, NULL, 2, "  { path = \"/demo\"; store = \"local\"; bucket = \"Demo_1\";",
                 "exports.conf", 2, "not a valid bucket name");
    expect_error(0, NULL, 4, "  { path = \"/cam\"; store = \"local\"; bucket = \"cam\"; prefix = \"a/../b\";",
                 "exports.conf", 4, "prefix");
    expect_error(0, NULL, 2, "  { store = \"local\"; bucket = \"demo\";", "exports.conf", 2,
                 "missing required key 'path'");
    expect_error(0, NULL, 5, "    access = \"write\"; clients = ( \"::1\" ); squash = \"all\";",
                 "exports.conf", 5, "access: \"write\" is not one of");

    /* a missing exports file is reported by its name */
    struct conf *c = NULL;
    char err[512];
    write_lines("bucketnfs.conf", base_conf, 7, "exports_file = \"nowhere.conf\";", 0644);
    int rc = load(&c, err, sizeof(err));
    CHECK_EQ_INT(rc, ENOENT);
    CHECK(strstr(err, "nowhere.conf") != NULL);

    /* An exports file, or a configuration, that is a folder is an error,
       not an exit() in libconfig's scanner (fuzz_conf found exports_file =
       "." ending the process). */
    write_lines("bucketnfs.conf", base_conf, 7, "exports_file = \".\";", 0644);
    rc = load(&c, err, sizeof(err));
    CHECK_EQ_INT(rc, EISDIR);
    CHECK(c == NULL && strstr(err, "cannot read") != NULL);
    char dpath[PATH_MAX + 64];
    snprintf(dpath, sizeof(dpath), "%s/sub.conf", tmp);
    CHECK_EQ_INT(mkdir(dpath, 0700), 0);
    err[0] = '\0';
    rc = conf_load(dpath, &c, err, sizeof(err));
    CHECK_EQ_INT(rc, EISDIR);
    CHECK(c == NULL && strstr(err, "sub.conf:0: cannot read") != NULL);
    rmdir(dpath);
    /* a device: read by no parser (/dev/zero would never end) */
    rc = conf_load("/dev/zero", &c, err, sizeof(err));
    CHECK_EQ_INT(rc, EINVAL);
    CHECK(c == NULL && strstr(err, "not a regular file") != NULL);
}

/* credentials = "config" is accepted from a file only its owner can read. */
static void test_secret_file_mode(void)
{
    struct conf *c = NULL;
    char err[512];
    write_lines("bucketnfs.conf", base_conf, 6,
                "stores = ( { name = \"local\"; type = \"s3\"; endpoint = \"http://127.0.0.1:9\"; "
                "credentials = \"config\"; access_key = \"AK\"; secret_key = \"SK\"; } );",
                0600);
    write_lines("exports.conf", base_exports, 0, NULL, 0644);
    int rc = load(&c, err, sizeof(err));
    CHECK_EQ_INT(rc, 0);
    if (!rc) {
        CHECK(strcmp(c->stores[0].secret_key, "SK") == 0);
        CHECK(c->stores[0].virtual_hosted);
        CHECK(strcmp(c->stores[0].region, "us-east-1") == 0);
    } else {
        fprintf(stderr, "  %s\n", err);
    }
    conf_free(c);
}

static void test_reload(void)
{
    struct conf *c = NULL;
    struct conf_exports x;
    char err[512];
    write_lines("bucketnfs.conf", base_conf, 0, NULL, 0644);
    write_lines("exports.conf", base_exports, 0, NULL, 0644);
    if (load(&c, err, sizeof(err)) != 0) {
        CHECK(!"base configuration loads");
        return;
    }
    /* publish a third export */
    write_lines("exports.conf", base_exports, 8,
                "  , { path = \"/new\"; store = \"local\"; bucket = \"new\"; clients = ( \"::1\" ); } );",
                0644);
    CHECK_EQ_INT(conf_load_exports(c, &x, err, sizeof(err)), 0);
    CHECK_EQ_INT(x.n, 3);
    if (x.n == 3)
        CHECK(strcmp(x.v[2].path, "/new") == 0);
    conf_exports_free(&x);
    /* a broken exports file is reported and leaves the loaded config as it was */
    write_lines("exports.conf", base_exports, 8, "  , { path = \"/new\"; store = \"gone\"; } );",
                0644);
    CHECK(conf_load_exports(c, &x, err, sizeof(err)) == EINVAL);
    CHECK(strstr(err, "exports.conf:8: ") != NULL);
    CHECK_EQ_INT(c->exports.n, 2);
    conf_free(c);
}

/* server.metrics: "" is off, port 0 is allowed (a free port); conf_load_server skips exports. */
static void test_metrics_and_server_only(void)
{
    struct conf *c = NULL;
    char err[512], path[PATH_MAX + 64];
    write_lines("bucketnfs.conf", base_conf, 3,
                "  rpcbind = false; threads = 4; state_dir = \"state\"; metrics = \"127.0.0.1:0\";",
                0644);
    write_lines("exports.conf", base_exports, 0, NULL, 0644);
    CHECK_EQ_INT(load(&c, err, sizeof(err)), 0);
    CHECK(c && c->server.metrics && strcmp(c->server.metrics, "127.0.0.1:0") == 0);
    conf_free(c);
    c = NULL;
    write_lines("bucketnfs.conf", base_conf, 3,
                "  rpcbind = false; threads = 4; state_dir = \"state\"; metrics = \"\";", 0644);
    CHECK_EQ_INT(load(&c, err, sizeof(err)), 0);
    CHECK(c && c->server.metrics == NULL);
    conf_free(c);
    c = NULL;
    expect_error(3, "  rpcbind = false; threads = 4; state_dir = \"state\"; metrics = \"x:99999\";",
                 0, NULL, "bucketnfs.conf", 3, "must be address:port");

    /* A broken exports file stops conf_load, not conf_load_server. */
    write_lines("bucketnfs.conf", base_conf, 0, NULL, 0644);
    write_lines("exports.conf", base_exports, 2, "  { path = \"/demo\"; store = \"nope\";", 0644);
    snprintf(path, sizeof(path), "%s/bucketnfs.conf", tmp);
    CHECK(conf_load(path, &c, err, sizeof(err)) != 0);
    conf_free(c);
    c = NULL;
    CHECK_EQ_INT(conf_load_server(path, &c, err, sizeof(err)), 0);
    if (c) {
        snprintf(path, sizeof(path), "%s/state", tmp);
        CHECK(strcmp(c->server.state_dir, path) == 0);
        CHECK_EQ_INT(c->exports.n, 0);
        CHECK(c->exports.file && strstr(c->exports.file, "exports.conf"));
    }
    conf_free(c);
}

static void test_sizes(void)
{
    uint64_t v = 0;
    CHECK(conf_parse_size("4096", &v) == 0 && v == 4096);
    CHECK(conf_parse_size("64K", &v) == 0 && v == 65536);
    CHECK(conf_parse_size("1M", &v) == 0 && v == 1048576);
    CHECK(conf_parse_size("8G", &v) == 0 && v == 8ull << 30);
    CHECK(conf_parse_size("2T", &v) == 0 && v == 2ull << 40);
    CHECK_EQ_INT(conf_parse_size("", &v), EINVAL);
    CHECK_EQ_INT(conf_parse_size("8GB", &v), EINVAL);
    CHECK_EQ_INT(conf_parse_size("-1", &v), EINVAL);
    CHECK_EQ_INT(conf_parse_size("1.5G", &v), EINVAL);
    CHECK_EQ_INT(conf_parse_size("99999999999999999999", &v), ERANGE);
    CHECK_EQ_INT(conf_parse_size("99999999T", &v), ERANGE);
}

/* server.meta_cache: a size (string or bytes) within 1M..1T, errors at its line. */
static void test_meta_cache(void)
{
    static const struct {
        const char *value;
        uint64_t want;
    } ok[] = {{"\"2G\"", 2ull << 30}, {"\"1M\"", 1u << 20}, {"268435456", 256u << 20},
              {"\"1T\"", 1ull << 40}, {"5368709120L", 5ull << 30}};
    char line[256], err[512];
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct conf *c = NULL;
        snprintf(line, sizeof(line),
                 "  rpcbind = false; threads = 4; state_dir = \"state\"; meta_cache = %s;",
                 ok[i].value);
        write_lines("bucketnfs.conf", base_conf, 3, line, 0644);
        write_lines("exports.conf", base_exports, 0, NULL, 0644);
        int rc = load(&c, err, sizeof(err));
        CHECK_EQ_INT(rc, 0);
        if (rc)
            fprintf(stderr, "  meta_cache = %s: %s\n", ok[i].value, err);
        CHECK(c && c->server.meta_cache == ok[i].want);
        conf_free(c);
    }
    expect_error(3, "  rpcbind = false; threads = 4; state_dir = \"state\"; meta_cache = \"64X\";",
                 0, NULL, "bucketnfs.conf", 3, "meta_cache: bad size \"64X\"");
    expect_error(3, "  rpcbind = false; threads = 4; state_dir = \"state\"; meta_cache = \"512K\";",
                 0, NULL, "bucketnfs.conf", 3, "meta_cache: 524288 bytes must be between 1M and 1T");
    expect_error(3, "  rpcbind = false; threads = 4; state_dir = \"state\"; meta_cache = \"2T\";",
                 0, NULL, "bucketnfs.conf", 3, "between 1M and 1T");
    expect_error(3, "  rpcbind = false; threads = 4; state_dir = \"state\"; meta_cache = -1;",
                 0, NULL, "bucketnfs.conf", 3, "meta_cache: size must not be negative");
    expect_error(3, "  rpcbind = false; threads = 4; state_dir = \"state\"; meta_cache = true;",
                 0, NULL, "bucketnfs.conf", 3, "meta_cache: must be a size");
}

/* The shipped sample configuration is valid. */
static void test_shipped(void)
{
    struct conf *c = NULL;
    char err[512];
    int rc = conf_load("etc/bucketnfs.conf", &c, err, sizeof(err));
    CHECK_EQ_INT(rc, 0);
    if (rc) {
        fprintf(stderr, "  %s (run from the top of the tree)\n", err);
        return;
    }
    CHECK(c->exports.n >= 1 && strcmp(c->exports.v[0].path, "/demo") == 0);
    CHECK(c->nstores == 1 && c->stores[0].type == CONF_STORE_DIR);
    /* "../var/state" next to etc/, resolved and normalized */
    size_t n = strlen(c->server.state_dir);
    CHECK(n > 10 && strcmp(c->server.state_dir + n - 10, "/var/state") == 0);
    CHECK(c->server.state_dir[0] == '/' && strstr(c->server.state_dir, "..") == NULL);
    CHECK(strstr(c->stores[0].root, "/var/buckets") != NULL);
    CHECK(c->exports.v[0].rw); /* the demo export takes writes (the write path) */
    conf_free(c);
}

int main(void)
{
    snprintf(tmp, sizeof(tmp), "%s/test_conf.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 2;
    }
    log_init("test_conf", 1, LOG_WARNING);
    test_valid();
    test_minimal();
    test_clients();
    test_errors();
    test_secret_file_mode();
    test_reload();
    test_metrics_and_server_only();
    test_sizes();
    test_meta_cache();
    test_shipped();

    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp);
    return TEST_DONE();
}
