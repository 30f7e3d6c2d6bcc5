/*
 * fuzz_conf.c - libFuzzer over the configuration and exports parsers
 * (common/conf.c): the files an operator edits, checked by `bucketnfsd -t`
 * and re-read on SIGHUP while the daemon serves.  A broken file must give
 * an error, never a crash or a leak.
 *
 * Input: the bucketnfs.conf text, then a line "%%", then the text of the
 * exports file (written as exports.conf beside it; the configuration names
 * it).  Both are written into a scratch folder and loaded with conf_load;
 * a loaded configuration re-reads its exports (conf_load_exports) as
 * SIGHUP does.  conf_parse_size gets the first line too.
 *
 * Inputs with "@include" are skipped: libconfig would read any file the
 * input names (/dev/zero never ends), which an operator may do, not an
 * attacker.  Host names in `clients` are not looked up (no network here):
 * the build wraps getaddrinfo (-Wl,--wrap) with one that knows
 * "localhost" and nothing else.
 */
#include <fcntl.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/conf.h"
#include "common/log.h"

int __real_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);

int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res)
{
    if (!node || strcmp(node, "localhost") != 0)
        return EAI_NONAME;
    struct addrinfo h = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM,
                         .ai_flags = AI_NUMERICHOST};
    return __real_getaddrinfo("127.0.0.1", service, &h, res);
}

/*
 * libconfig's parser leaks a string token it drops while recovering from a
 * syntax error (a string followed by something that cannot come after
 * it): hyperrealm/libconfig issue 142, fixed upstream by a bison
 * %destructor (PR 155) that the packaged library predates.  conf.c calls
 * config_destroy on every error; the leak is the library's, a few bytes
 * per broken file read.  The input that found it is corpus/fuzz_conf/
 * leak-libconfig-string.
 */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libconfig.so\n";
}

static char dir[64], conf_path[128], exports_path[128];

static void cleanup(void)
{
    unlink(conf_path);
    unlink(exports_path);
    rmdir(dir);
}

/*
 * Replace path's bytes with p[0..n): written over the old ones, then cut
 * to n.  Not fopen "w": ext4 (auto_da_alloc) writes a file truncated to
 * zero back to the disk when it is closed, so each input cost a write to
 * the disk and, on a filesystem mounted with discard, a discard of the
 * block the next input freed.
 */
static void put(const char *path, const uint8_t *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0666); /* as fopen */
    if (fd < 0)
        abort();
    if ((n && pwrite(fd, p, n, 0) != (ssize_t)n) || ftruncate(fd, (off_t)n) != 0)
        abort();
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        log_init("fuzz_conf", 0, LOG_EMERG);
        snprintf(dir, sizeof(dir), "%s/bnfs-fuzz-conf-XXXXXX",
                 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(dir))
            abort();
        snprintf(conf_path, sizeof(conf_path), "%s/bucketnfs.conf", dir);
        snprintf(exports_path, sizeof(exports_path), "%s/exports.conf", dir);
        atexit(cleanup);
    }
    if (memmem(data, size, "@include", 8))
        return 0;
    const uint8_t *sep = memmem(data, size, "\n%%\n", 4);
    size_t clen = sep ? (size_t)(sep - data) : size;
    put(conf_path, data, clen);
    if (sep)
        put(exports_path, sep + 4, size - clen - 4);
    else
        unlink(exports_path);

    char line[256];
    size_t ll = 0;
    while (ll < clen && ll < sizeof(line) - 1 && data[ll] != '\n')
        ll++;
    memcpy(line, data, ll);
    line[ll] = '\0';
    uint64_t sz;
    (void)conf_parse_size(line, &sz);

    char err[512];
    struct conf *c = NULL;
    if (conf_load(conf_path, &c, err, sizeof(err)) == 0) {
        struct conf_exports e;
        if (conf_load_exports(c, &e, err, sizeof(err)) == 0)
            conf_exports_free(&e);
        conf_free(c);
    }
    return 0;
}
