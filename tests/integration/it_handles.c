/*
 * it_handles.c - file handles and procedures as a plain libtirpc client
 * sees them (a second client implementation beside libnfs).
 *
 *   it_handles NFS_PORT MOUNT_PORT check            MNT, EXPORT, LOOKUP, forged
 *                                                  handles, READDIR paging, ROFS
 *   it_handles NFS_PORT MOUNT_PORT save FILE PATH.. write the handles of PATHs
 *   it_handles NFS_PORT MOUNT_PORT verify FILE      every saved handle still works
 *                                                  (after a daemon restart)
 *   it_handles NFS_PORT MOUNT_PORT stale FILE       every saved handle is NFS3ERR_STALE
 *                                                  (its object was deleted)
 *   it_handles NFS_PORT MOUNT_PORT stat PATH..      print "PATH MODE UID GID SIZE MTIME"
 *                                                  (MODE in octal, type included)
 *   it_handles NFS_PORT MOUNT_PORT expect OP STATUS ARG
 *                                                  OP answers STATUS (NFS3_OK, NFS3ERR_...):
 *                                                  getattr FILE / read FILE: every saved
 *                                                  handle (READ of 4 KiB at 0); lookup PATH;
 *                                                  readdir PATH (a directory, "." the root)
 */

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "mount3_prot.h"
#include "nfs3_prot.h"
#include "tests/unit/testlib.h"

static struct timeval tmo = {10, 0};

/* No arguments (libtirpc's xdr_void has no parameters, so it cannot be cast cleanly). */
static bool_t xdr_noargs(XDR *x, void *p)
{
    return TRUE;
}

static CLIENT *connect_to(uint16_t port, unsigned long prog, unsigned long vers)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    int sock = RPC_ANYSOCK;
    CLIENT *c = clnttcp_create(&sin, prog, vers, &sock, 0, 0);
    if (!c) {
        clnt_pcreateerror("clnttcp_create");
        return NULL;
    }
    c->cl_auth = authunix_create_default();
    return c;
}

/* MNT /demo: the root handle. */
static int mount_root(CLIENT *m, nfs_fh3 *root)
{
    char *path = "/demo";
    mountres3 res;
    memset(&res, 0, sizeof(res));
    if (clnt_call(m, MOUNTPROC3_MNT, (xdrproc_t)xdr_mntdirpath, (char *)&path,
                  (xdrproc_t)xdr_mountres3, (char *)&res, tmo) != RPC_SUCCESS)
        return -1;
    int st = res.fhs_status;
    if (st == MNT3_OK) {
        root->data.data_len = res.mountres3_u.mountinfo.fhandle.fhandle3_len;
        root->data.data_val = malloc(root->data.data_len);
        memcpy(root->data.data_val, res.mountres3_u.mountinfo.fhandle.fhandle3_val,
               root->data.data_len);
        CHECK_EQ_INT(res.mountres3_u.mountinfo.auth_flavors.auth_flavors_len, 1);
        CHECK_EQ_INT(res.mountres3_u.mountinfo.auth_flavors.auth_flavors_val[0], AUTH_SYS);
    }
    xdr_free((xdrproc_t)xdr_mountres3, (char *)&res);
    return st;
}

static int getattr(CLIENT *c, nfs_fh3 *fh, fattr3 *out)
{
    GETATTR3args a = {.object = *fh};
    GETATTR3res r;
    memset(&r, 0, sizeof(r));
    if (clnt_call(c, NFSPROC3_GETATTR, (xdrproc_t)xdr_GETATTR3args, (char *)&a,
                  (xdrproc_t)xdr_GETATTR3res, (char *)&r, tmo) != RPC_SUCCESS)
        return -1;
    int st = r.status;
    if (st == NFS3_OK && out)
        *out = r.GETATTR3res_u.resok.obj_attributes;
    xdr_free((xdrproc_t)xdr_GETATTR3res, (char *)&r);
    return st;
}

/* LOOKUP name in dir; on success *out gets a malloc'd handle. */
static int lookup(CLIENT *c, nfs_fh3 *dir, const char *name, nfs_fh3 *out)
{
    LOOKUP3args a = {.what = {.dir = *dir, .name = (char *)name}};
    LOOKUP3res r;
    memset(&r, 0, sizeof(r));
    if (clnt_call(c, NFSPROC3_LOOKUP, (xdrproc_t)xdr_LOOKUP3args, (char *)&a,
                  (xdrproc_t)xdr_LOOKUP3res, (char *)&r, tmo) != RPC_SUCCESS)
        return -1;
    int st = r.status;
    if (st == NFS3_OK && out) {
        nfs_fh3 *h = &r.LOOKUP3res_u.resok.object;
        out->data.data_len = h->data.data_len;
        out->data.data_val = malloc(h->data.data_len);
        memcpy(out->data.data_val, h->data.data_val, h->data.data_len);
        CHECK(r.LOOKUP3res_u.resok.obj_attributes.attributes_follow);
        CHECK(r.LOOKUP3res_u.resok.dir_attributes.attributes_follow);
    }
    xdr_free((xdrproc_t)xdr_LOOKUP3res, (char *)&r);
    return st;
}

static int lookup_path(CLIENT *c, nfs_fh3 *root, const char *path, nfs_fh3 *out)
{
    char *copy = strdup(path), *save = NULL;
    nfs_fh3 cur = {.data = {root->data.data_len, malloc(root->data.data_len)}};
    memcpy(cur.data.data_val, root->data.data_val, root->data.data_len);
    int st = NFS3_OK;
    for (char *p = strtok_r(copy, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
        nfs_fh3 next;
        st = lookup(c, &cur, p, &next);
        free(cur.data.data_val);
        if (st != NFS3_OK) {
            cur.data.data_val = NULL;
            break;
        }
        cur = next;
    }
    free(copy);
    if (st == NFS3_OK)
        *out = cur;
    return st;
}

static void check_export_list(CLIENT *m)
{
    mntexports res = NULL;
    enum clnt_stat s = clnt_call(m, MOUNTPROC3_EXPORT, (xdrproc_t)xdr_noargs, NULL,
                                 (xdrproc_t)xdr_mntexports, (char *)&res, tmo);
    CHECK(s == RPC_SUCCESS);
    CHECK(res && strcmp(res->ex_dir, "/demo") == 0);
    CHECK(res && res->ex_groups && strcmp(res->ex_groups->gr_name, "127.0.0.0/8") == 0);
    xdr_free((xdrproc_t)xdr_mntexports, (char *)&res);
    char *nope = "/no-such-export";
    mountres3 r;
    memset(&r, 0, sizeof(r));
    CHECK(clnt_call(m, MOUNTPROC3_MNT, (xdrproc_t)xdr_mntdirpath, (char *)&nope,
                    (xdrproc_t)xdr_mountres3, (char *)&r, tmo) == RPC_SUCCESS);
    CHECK_EQ_INT(r.fhs_status, MNT3ERR_NOENT);
}

static void check_forged(CLIENT *c, nfs_fh3 *root)
{
    CHECK_EQ_INT(getattr(c, root, NULL), NFS3_OK);
    /* Every single-byte change of a valid handle is refused. */
    int refused = 0;
    for (u_int i = 0; i < root->data.data_len; i++) {
        nfs_fh3 f = {.data = {root->data.data_len, malloc(root->data.data_len)}};
        memcpy(f.data.data_val, root->data.data_val, root->data.data_len);
        f.data.data_val[i] ^= 0x01;
        int st = getattr(c, &f, NULL);
        refused += st == NFS3ERR_BADHANDLE || st == NFS3ERR_STALE;
        free(f.data.data_val);
    }
    CHECK_EQ_INT(refused, root->data.data_len);
    /* Truncated, empty, and oversized-but-legal handles. */
    nfs_fh3 t = {.data = {root->data.data_len - 1, root->data.data_val}};
    CHECK_EQ_INT(getattr(c, &t, NULL), NFS3ERR_BADHANDLE);
    nfs_fh3 e = {.data = {0, root->data.data_val}};
    CHECK_EQ_INT(getattr(c, &e, NULL), NFS3ERR_BADHANDLE);
    char big[64];
    memset(big, 0xab, sizeof(big));
    nfs_fh3 b = {.data = {64, big}};
    CHECK_EQ_INT(getattr(c, &b, NULL), NFS3ERR_BADHANDLE);
    /* A forged handle in a LOOKUP's directory is refused the same way. */
    CHECK_EQ_INT(lookup(c, &b, "x", NULL), NFS3ERR_BADHANDLE);
}

static void check_lookup_errors(CLIENT *c, nfs_fh3 *root)
{
    nfs_fh3 f;
    CHECK_EQ_INT(lookup(c, root, "no-such-name", NULL), NFS3ERR_NOENT);
    CHECK_EQ_INT(lookup_path(c, root, "one-byte", &f), NFS3_OK);
    CHECK_EQ_INT(lookup(c, &f, "x", NULL), NFS3ERR_NOTDIR);
    free(f.data.data_val);
    char longname[300];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    CHECK_EQ_INT(lookup(c, root, longname, NULL), NFS3ERR_NAMETOOLONG);
    /* Names no file can have: '/' inside, empty. */
    CHECK_EQ_INT(lookup(c, root, "a/b", NULL), NFS3ERR_INVAL);
    CHECK_EQ_INT(lookup(c, root, "", NULL), NFS3ERR_INVAL);
    nfs_fh3 dot, dotdot;
    CHECK_EQ_INT(lookup(c, root, ".", &dot), NFS3_OK);
    CHECK_EQ_INT(lookup(c, root, "..", &dotdot), NFS3_OK); /* the root's parent is itself */
    fattr3 ra, da;
    CHECK_EQ_INT(getattr(c, root, &ra), NFS3_OK);
    CHECK_EQ_INT(getattr(c, &dotdot, &da), NFS3_OK);
    CHECK_EQ_INT(ra.fileid, da.fileid);
    free(dot.data.data_val);
    free(dotdot.data.data_val);
}

/* READDIR with a small count: several calls, cookies continue, every name once, then eof. */
static void check_readdir_paging(CLIENT *c, nfs_fh3 *root)
{
    nfs_fh3 dir;
    CHECK_EQ_INT(lookup_path(c, root, "drive-0001/camera/front", &dir), NFS3_OK);
    uint64_t cookie = 0;
    char verf[8] = {0};
    unsigned calls = 0, names = 0, dots = 0;
    bool eof = false;
    while (!eof && calls < 1000) {
        READDIR3args a = {.dir = dir, .cookie = cookie, .count = 1024};
        memcpy(a.cookieverf, verf, 8);
        READDIR3res r;
        memset(&r, 0, sizeof(r));
        if (clnt_call(c, NFSPROC3_READDIR, (xdrproc_t)xdr_READDIR3args, (char *)&a,
                      (xdrproc_t)xdr_READDIR3res, (char *)&r, tmo) != RPC_SUCCESS)
            break;
        calls++;
        if (r.status != NFS3_OK) {
            CHECK_EQ_INT(r.status, NFS3_OK);
            xdr_free((xdrproc_t)xdr_READDIR3res, (char *)&r);
            break;
        }
        memcpy(verf, r.READDIR3res_u.resok.cookieverf, 8);
        for (entry3 *e = r.READDIR3res_u.resok.reply.entries; e; e = e->nextentry) {
            if (!strcmp(e->name, ".") || !strcmp(e->name, ".."))
                dots++;
            else
                names++;
            cookie = e->cookie;
        }
        eof = r.READDIR3res_u.resok.reply.eof;
        xdr_free((xdrproc_t)xdr_READDIR3res, (char *)&r);
    }
    printf("# READDIR count=1024: %u calls, %u names\n", calls, names);
    CHECK(eof);
    CHECK(calls > 1);
    CHECK_EQ_INT(dots, 2);
    CHECK_EQ_INT(names, 40); /* the test seed's frame count */
    /* A cookie naming nothing in this directory. */
    READDIR3args a = {.dir = dir, .cookie = 0x7fffffffffffULL, .count = 4096};
    READDIR3res r;
    memset(&r, 0, sizeof(r));
    CHECK(clnt_call(c, NFSPROC3_READDIR, (xdrproc_t)xdr_READDIR3args, (char *)&a,
                    (xdrproc_t)xdr_READDIR3res, (char *)&r, tmo) == RPC_SUCCESS);
    CHECK_EQ_INT(r.status, NFS3ERR_BAD_COOKIE);
    xdr_free((xdrproc_t)xdr_READDIR3res, (char *)&r);
    /* Too small for even one entry. */
    a.cookie = 0;
    a.count = 16;
    memset(&r, 0, sizeof(r));
    CHECK(clnt_call(c, NFSPROC3_READDIR, (xdrproc_t)xdr_READDIR3args, (char *)&a,
                    (xdrproc_t)xdr_READDIR3res, (char *)&r, tmo) == RPC_SUCCESS);
    CHECK_EQ_INT(r.status, NFS3ERR_TOOSMALL);
    xdr_free((xdrproc_t)xdr_READDIR3res, (char *)&r);
    free(dir.data.data_val);
}

/* Every mutating procedure answers ROFS (this server's write path is not built yet). */
static void check_rofs(CLIENT *c, nfs_fh3 *root)
{
    CREATE3args ca;
    memset(&ca, 0, sizeof(ca));
    ca.where.dir = *root;
    ca.where.name = "new-file";
    ca.how.mode = UNCHECKED;
    CREATE3res cr;
    memset(&cr, 0, sizeof(cr));
    CHECK(clnt_call(c, NFSPROC3_CREATE, (xdrproc_t)xdr_CREATE3args, (char *)&ca,
                    (xdrproc_t)xdr_CREATE3res, (char *)&cr, tmo) == RPC_SUCCESS);
    CHECK_EQ_INT(cr.status, NFS3ERR_ROFS);
    xdr_free((xdrproc_t)xdr_CREATE3res, (char *)&cr);

    nfs_fh3 f;
    CHECK_EQ_INT(lookup_path(c, root, "one-byte", &f), NFS3_OK);
    char data[4] = "abc";
    WRITE3args wa = {.file = f, .offset = 0, .count = 3, .stable = FILE_SYNC,
                     .data = {3, data}};
    WRITE3res wr;
    memset(&wr, 0, sizeof(wr));
    CHECK(clnt_call(c, NFSPROC3_WRITE, (xdrproc_t)xdr_WRITE3args, (char *)&wa,
                    (xdrproc_t)xdr_WRITE3res, (char *)&wr, tmo) == RPC_SUCCESS);
    CHECK_EQ_INT(wr.status, NFS3ERR_ROFS);
    CHECK(wr.WRITE3res_u.resfail.file_wcc.after.attributes_follow);
    xdr_free((xdrproc_t)xdr_WRITE3res, (char *)&wr);

    REMOVE3args ra = {.object = {.dir = *root, .name = "one-byte"}};
    REMOVE3res rr;
    memset(&rr, 0, sizeof(rr));
    CHECK(clnt_call(c, NFSPROC3_REMOVE, (xdrproc_t)xdr_REMOVE3args, (char *)&ra,
                    (xdrproc_t)xdr_REMOVE3res, (char *)&rr, tmo) == RPC_SUCCESS);
    CHECK_EQ_INT(rr.status, NFS3ERR_ROFS);
    xdr_free((xdrproc_t)xdr_REMOVE3res, (char *)&rr);
    free(f.data.data_val);

    FSINFO3args fa = {.fsroot = *root};
    FSINFO3res fr;
    memset(&fr, 0, sizeof(fr));
    CHECK(clnt_call(c, NFSPROC3_FSINFO, (xdrproc_t)xdr_FSINFO3args, (char *)&fa,
                    (xdrproc_t)xdr_FSINFO3res, (char *)&fr, tmo) == RPC_SUCCESS);
    CHECK_EQ_INT(fr.status, NFS3_OK);
    CHECK_EQ_INT(fr.FSINFO3res_u.resok.rtmax, 1024 * 1024);
    CHECK_EQ_INT(fr.FSINFO3res_u.resok.wtmax, 1024 * 1024);
    xdr_free((xdrproc_t)xdr_FSINFO3res, (char *)&fr);
}

/* ACCESS: read and lookup follow the mode; no write bit while the server is read-only. */
static void check_access(CLIENT *c, nfs_fh3 *root)
{
    const uint32_t all = ACCESS3_READ | ACCESS3_LOOKUP | ACCESS3_MODIFY | ACCESS3_EXTEND |
                         ACCESS3_DELETE | ACCESS3_EXECUTE;
    nfs_fh3 f;
    CHECK_EQ_INT(lookup_path(c, root, "one-byte", &f), NFS3_OK);
    nfs_fh3 *objs[2] = {root, &f};
    uint32_t want[2] = {ACCESS3_READ | ACCESS3_LOOKUP, ACCESS3_READ};
    for (int i = 0; i < 2; i++) {
        ACCESS3args a = {.object = *objs[i], .access = all};
        ACCESS3res r;
        memset(&r, 0, sizeof(r));
        CHECK(clnt_call(c, NFSPROC3_ACCESS, (xdrproc_t)xdr_ACCESS3args, (char *)&a,
                        (xdrproc_t)xdr_ACCESS3res, (char *)&r, tmo) == RPC_SUCCESS);
        CHECK_EQ_INT(r.status, NFS3_OK);
        CHECK_EQ_INT(r.ACCESS3res_u.resok.access, want[i]);
        xdr_free((xdrproc_t)xdr_ACCESS3res, (char *)&r);
    }
    free(f.data.data_val);
}

static int save(CLIENT *c, nfs_fh3 *root, const char *file, char **paths, int n)
{
    FILE *f = fopen(file, "w");
    if (!f)
        return 1;
    for (int i = 0; i < n; i++) {
        nfs_fh3 h;
        fattr3 a;
        int st = lookup_path(c, root, paths[i], &h);
        CHECK_EQ_INT(st, NFS3_OK);
        if (st != NFS3_OK)
            continue;
        CHECK_EQ_INT(getattr(c, &h, &a), NFS3_OK);
        fprintf(f, "%s %llu ", paths[i], (unsigned long long)a.fileid);
        for (u_int j = 0; j < h.data.data_len; j++)
            fprintf(f, "%02x", (unsigned char)h.data.data_val[j]);
        fprintf(f, "\n");
        free(h.data.data_val);
    }
    fclose(f);
    return 0;
}

static void verify(CLIENT *c, const char *file, int want)
{
    FILE *f = fopen(file, "r");
    CHECK(f != NULL);
    if (!f)
        return;
    char path[4096], hex[200];
    unsigned long long fileid;
    unsigned n = 0;
    while (fscanf(f, "%4095s %llu %199s", path, &fileid, hex) == 3) {
        char bytes[100];
        u_int len = (u_int)strlen(hex) / 2;
        for (u_int j = 0; j < len; j++)
            sscanf(hex + 2 * j, "%2hhx", (unsigned char *)&bytes[j]);
        nfs_fh3 h = {.data = {len, bytes}};
        fattr3 a;
        int st = getattr(c, &h, &a);
        if (st != want)
            fprintf(stderr, "saved handle of %s: status %d, want %d\n", path, st, want);
        CHECK_EQ_INT(st, want);
        if (want == NFS3_OK)
            CHECK_EQ_INT(a.fileid, fileid);
        n++;
    }
    fclose(f);
    printf("# %u saved handles checked\n", n);
    CHECK(n > 0);
}

static const struct {
    const char *name;
    int st;
} status_names[] = {
    {"NFS3_OK", NFS3_OK},           {"NFS3ERR_NOENT", NFS3ERR_NOENT},
    {"NFS3ERR_IO", NFS3ERR_IO},     {"NFS3ERR_ACCES", NFS3ERR_ACCES},
    {"NFS3ERR_STALE", NFS3ERR_STALE}, {"NFS3ERR_JUKEBOX", NFS3ERR_JUKEBOX},
    {"NFS3ERR_NOTDIR", NFS3ERR_NOTDIR}, {"NFS3ERR_BADHANDLE", NFS3ERR_BADHANDLE},
};

static int status_of(const char *name)
{
    for (size_t i = 0; i < sizeof(status_names) / sizeof(status_names[0]); i++)
        if (!strcmp(status_names[i].name, name))
            return status_names[i].st;
    return -2;
}

static const char *status_name(int st)
{
    for (size_t i = 0; i < sizeof(status_names) / sizeof(status_names[0]); i++)
        if (status_names[i].st == st)
            return status_names[i].name;
    return st == -1 ? "RPC failure" : "other";
}

static void stat_paths(CLIENT *c, nfs_fh3 *root, char **paths, int n)
{
    for (int i = 0; i < n; i++) {
        nfs_fh3 h;
        fattr3 a;
        int st = lookup_path(c, root, paths[i], &h);
        CHECK_EQ_INT(st, NFS3_OK);
        if (st != NFS3_OK) {
            printf("%s error %s (%d)\n", paths[i], status_name(st), st);
            continue;
        }
        st = getattr(c, &h, &a);
        CHECK_EQ_INT(st, NFS3_OK);
        if (st == NFS3_OK) {
            unsigned type = a.type == NF3DIR ? 0040000 : a.type == NF3LNK ? 0120000 : 0100000;
            printf("%s %o %u %u %llu %u\n", paths[i], type | a.mode, a.uid, a.gid,
                   (unsigned long long)a.size, a.mtime.seconds);
        } else {
            printf("%s error %s (%d)\n", paths[i], status_name(st), st);
        }
        free(h.data.data_val);
    }
}

/* READ 4 KiB at offset 0 of fh; the status. */
static int read_status(CLIENT *c, nfs_fh3 *fh)
{
    READ3args a = {.file = *fh, .offset = 0, .count = 4096};
    READ3res r;
    memset(&r, 0, sizeof(r));
    if (clnt_call(c, NFSPROC3_READ, (xdrproc_t)xdr_READ3args, (char *)&a,
                  (xdrproc_t)xdr_READ3res, (char *)&r, tmo) != RPC_SUCCESS)
        return -1;
    int st = r.status;
    xdr_free((xdrproc_t)xdr_READ3res, (char *)&r);
    return st;
}

/* READDIR (first page) of the directory at path; the status. */
static int readdir_status(CLIENT *c, nfs_fh3 *root, const char *path)
{
    nfs_fh3 dir = *root;
    bool looked_up = strcmp(path, ".") != 0;
    if (looked_up) {
        int st = lookup_path(c, root, path, &dir);
        if (st != NFS3_OK)
            return st;
    }
    READDIR3args a = {.dir = dir, .cookie = 0, .count = 4096};
    READDIR3res r;
    memset(&r, 0, sizeof(r));
    int st = -1;
    if (clnt_call(c, NFSPROC3_READDIR, (xdrproc_t)xdr_READDIR3args, (char *)&a,
                  (xdrproc_t)xdr_READDIR3res, (char *)&r, tmo) == RPC_SUCCESS) {
        st = r.status;
        xdr_free((xdrproc_t)xdr_READDIR3res, (char *)&r);
    }
    if (looked_up)
        free(dir.data.data_val);
    return st;
}

/* Handles saved by "save", one per line; each goes to fn. */
static void each_saved(CLIENT *c, const char *file, int want, int (*fn)(CLIENT *, nfs_fh3 *))
{
    FILE *f = fopen(file, "r");
    CHECK(f != NULL);
    if (!f)
        return;
    char path[4096], hex[200];
    unsigned long long fileid;
    unsigned n = 0;
    while (fscanf(f, "%4095s %llu %199s", path, &fileid, hex) == 3) {
        char bytes[100];
        u_int len = (u_int)strlen(hex) / 2;
        for (u_int j = 0; j < len && j < sizeof(bytes); j++)
            sscanf(hex + 2 * j, "%2hhx", (unsigned char *)&bytes[j]);
        nfs_fh3 h = {.data = {len < sizeof(bytes) ? len : sizeof(bytes), bytes}};
        int st = fn(c, &h);
        printf("# %s: %s (%d), want %s\n", path, status_name(st), st, status_name(want));
        CHECK_EQ_INT(st, want);
        n++;
    }
    fclose(f);
    CHECK(n > 0);
}

static int getattr_status(CLIENT *c, nfs_fh3 *fh)
{
    return getattr(c, fh, NULL);
}

static void expect(CLIENT *c, nfs_fh3 *root, const char *op, const char *want_name,
                   const char *arg)
{
    int want = status_of(want_name);
    CHECK(want != -2);
    if (want == -2) {
        fprintf(stderr, "unknown status %s\n", want_name);
        return;
    }
    if (!strcmp(op, "getattr")) {
        each_saved(c, arg, want, getattr_status);
    } else if (!strcmp(op, "read")) {
        each_saved(c, arg, want, read_status);
    } else if (!strcmp(op, "lookup") || !strcmp(op, "readdir")) {
        nfs_fh3 h;
        int st = op[0] == 'l' ? lookup_path(c, root, arg, &h) : readdir_status(c, root, arg);
        if (op[0] == 'l' && st == NFS3_OK)
            free(h.data.data_val);
        printf("# %s %s: %s (%d), want %s\n", op, arg, status_name(st), st, want_name);
        CHECK_EQ_INT(st, want);
    } else {
        fprintf(stderr, "unknown operation %s\n", op);
        CHECK(0);
    }
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: it_handles NFS_PORT MOUNT_PORT check|save FILE PATH..|verify FILE\n");
        return 2;
    }
    CLIENT *m = connect_to((uint16_t)atoi(argv[2]), MOUNT_PROGRAM, MOUNT_V3);
    CLIENT *c = connect_to((uint16_t)atoi(argv[1]), NFS3_PROGRAM, NFS_V3);
    CHECK(m && c);
    if (!m || !c)
        return TEST_DONE();
    nfs_fh3 root;
    int st = mount_root(m, &root);
    CHECK_EQ_INT(st, MNT3_OK);
    if (st != MNT3_OK)
        return TEST_DONE();
    if (!strcmp(argv[3], "check")) {
        check_export_list(m);
        check_forged(c, &root);
        check_lookup_errors(c, &root);
        check_readdir_paging(c, &root);
        check_rofs(c, &root);
        check_access(c, &root);
    } else if (!strcmp(argv[3], "save") && argc >= 6) {
        save(c, &root, argv[4], argv + 5, argc - 5);
    } else if (!strcmp(argv[3], "verify") && argc == 5) {
        verify(c, argv[4], NFS3_OK);
    } else if (!strcmp(argv[3], "stale") && argc == 5) {
        verify(c, argv[4], NFS3ERR_STALE);
    } else if (!strcmp(argv[3], "stat") && argc >= 5) {
        stat_paths(c, &root, argv + 4, argc - 4);
    } else if (!strcmp(argv[3], "expect") && argc == 7) {
        expect(c, &root, argv[4], argv[5], argv[6]);
    } else {
        fprintf(stderr, "unknown mode %s\n", argv[3]);
        return 2;
    }
    free(root.data.data_val);
    auth_destroy(c->cl_auth);
    auth_destroy(m->cl_auth);
    clnt_destroy(c);
    clnt_destroy(m);
    return TEST_DONE();
}
