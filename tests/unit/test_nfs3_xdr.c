/*
 * test_nfs3_xdr.c - the NFS v3 and MOUNT v3 wire encoding, as a client
 * sees it.
 *
 * 1. Every argument type the server decodes is encoded with rpcgen's
 *    routine, decoded back and compared field by field; the encoded length
 *    is checked against the layout of RFC 1813, so a wrong type in the .x
 *    files shows up as a size mismatch.  Bounds: handles (64 bytes),
 *    filenames (1024, so the handler can answer NAMETOOLONG), WRITE data
 *    (1 MiB), mount paths (1024); every strict prefix of a record fails.
 * 2. The hand-written READDIR / READDIRPLUS encoder is decoded with
 *    rpcgen's READDIR3res / READDIRPLUS3res (what a client library does)
 *    and its size is checked against the budget the handlers use.
 * 3. errno -> nfsstat3.
 * 4. MOUNT: the procedures of mnt_program() run as the RPC layer runs them
 *    (arguments decoded by the table's decoder, handler, result encoded by
 *    the table's encoder into max_reply bytes), against a dir store in a
 *    temporary folder; the replies are decoded with rpcgen's routines.
 * 5. READDIR / READDIRPLUS through nfs3_program()'s handlers on the same
 *    export: paged as a client pages, every reply within maxcount.
 *
 * No network, no threads besides the ones the libraries start.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/conf.h"
#include "common/log.h"
#include "meta/export.h"
#include "meta/fh.h"
#include "meta/inode.h"
#include "mountd/mount3.h"
#include "nfsd/nfs3.h"
#include "nfsd/nfs3_xdr.h"
#include "rpc/oncrpc.h"
#include "rpc/rpc_internal.h"
#include "tests/unit/testlib.h"

#include "mount3_prot.h"
#include "nfs3_prot.h"

#define XP(f)   ((xdrproc_t)(f))
#define MIB     (1024u * 1024u)
#define SCRATCH (2 * MIB + 4096)

static uint8_t *scratch; /* encode buffer shared by the round trips */

/* Encoded size of a counted opaque or string of n bytes (RFC 4506 4.10, 4.11). */
static size_t xsz(size_t n)
{
    return 4 + ((n + 3) & ~(size_t)3);
}

/* ---- 1. argument round trips -------------------------------------------- */

/*
 * Encode *in with proc, check the encoded length is want_len, decode into
 * *out (zeroed first) and check every byte was consumed.  Returns true if
 * both directions succeeded (the caller then compares and xdr_frees out).
 */
static bool roundtrip(xdrproc_t proc, void *in, void *out, size_t out_size, size_t want_len)
{
    XDR x;
    xdrmem_create(&x, (char *)scratch, SCRATCH, XDR_ENCODE);
    bool enc = proc(&x, in, 0);
    size_t len = xdr_getpos(&x);
    xdr_destroy(&x);
    CHECK(enc);
    CHECK_EQ_INT(len, want_len);
    if (!enc)
        return false;
    memset(out, 0, out_size);
    xdrmem_create(&x, (char *)scratch, (u_int)len, XDR_DECODE);
    bool dec = proc(&x, out, 0);
    CHECK(dec);
    CHECK_EQ_INT(xdr_getpos(&x), len);
    xdr_destroy(&x);
    if (!dec)
        xdr_free(proc, out);
    return dec;
}

/* A handle of len bytes whose content depends on seed. */
struct fhbuf {
    nfs_fh3 h;
    char data[NFS3_FHSIZE + 1];
};

static nfs_fh3 *mkfh(struct fhbuf *b, unsigned len, unsigned seed)
{
    for (unsigned i = 0; i < sizeof(b->data); i++)
        b->data[i] = (char)(seed * 31 + i * 7 + 1);
    b->h.data.data_len = len;
    b->h.data.data_val = b->data;
    return &b->h;
}

static bool fh_eq(const nfs_fh3 *a, const nfs_fh3 *b)
{
    /* A decoded empty handle may have no buffer at all. */
    return a->data.data_len == b->data.data_len &&
           (a->data.data_len == 0 ||
            memcmp(a->data.data_val, b->data.data_val, a->data.data_len) == 0);
}

static bool name_eq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

static bool dirop_eq(const diropargs3 *a, const diropargs3 *b)
{
    return fh_eq(&a->dir, &b->dir) && name_eq(a->name, b->name);
}

/* Every field set (all = true) or none set. */
static void mksattr(sattr3 *s, bool all)
{
    memset(s, 0, sizeof(*s));
    if (!all) {
        s->atime.set_it = DONT_CHANGE;
        s->mtime.set_it = DONT_CHANGE;
        return;
    }
    s->mode.set_it = TRUE;
    s->mode.set_mode3_u.mode = 04755;
    s->uid.set_it = TRUE;
    s->uid.set_uid3_u.uid = 4000000001u;
    s->gid.set_it = TRUE;
    s->gid.set_gid3_u.gid = 65534;
    s->size.set_it = TRUE;
    s->size.set_size3_u.size = 0x123456789abcdefull;
    s->atime.set_it = SET_TO_CLIENT_TIME;
    s->atime.set_atime_u.atime.seconds = 1700000000;
    s->atime.set_atime_u.atime.nseconds = 999999999;
    s->mtime.set_it = SET_TO_SERVER_TIME;
}

static size_t sattr_size(bool all)
{
    return all ? 8 + 8 + 8 + 12 + 12 + 4 : 6 * 4;
}

static bool sattr_eq(const sattr3 *a, const sattr3 *b)
{
    if (a->mode.set_it != b->mode.set_it || a->uid.set_it != b->uid.set_it ||
        a->gid.set_it != b->gid.set_it || a->size.set_it != b->size.set_it ||
        a->atime.set_it != b->atime.set_it || a->mtime.set_it != b->mtime.set_it)
        return false;
    if (a->mode.set_it && a->mode.set_mode3_u.mode != b->mode.set_mode3_u.mode)
        return false;
    if (a->uid.set_it && a->uid.set_uid3_u.uid != b->uid.set_uid3_u.uid)
        return false;
    if (a->gid.set_it && a->gid.set_gid3_u.gid != b->gid.set_gid3_u.gid)
        return false;
    if (a->size.set_it && a->size.set_size3_u.size != b->size.set_size3_u.size)
        return false;
    if (a->atime.set_it == SET_TO_CLIENT_TIME &&
        (a->atime.set_atime_u.atime.seconds != b->atime.set_atime_u.atime.seconds ||
         a->atime.set_atime_u.atime.nseconds != b->atime.set_atime_u.atime.nseconds))
        return false;
    if (a->mtime.set_it == SET_TO_CLIENT_TIME &&
        (a->mtime.set_mtime_u.mtime.seconds != b->mtime.set_mtime_u.mtime.seconds ||
         a->mtime.set_mtime_u.mtime.nseconds != b->mtime.set_mtime_u.mtime.nseconds))
        return false;
    return true;
}

/* Types with one handle: GETATTR, READLINK, FSSTAT, FSINFO, PATHCONF. */
static void test_fh_only(void)
{
    static const struct {
        const char *name;
        xdrproc_t proc;
    } types[] = {
        {"GETATTR3args", XP(xdr_GETATTR3args)},   {"READLINK3args", XP(xdr_READLINK3args)},
        {"FSSTAT3args", XP(xdr_FSSTAT3args)},     {"FSINFO3args", XP(xdr_FSINFO3args)},
        {"PATHCONF3args", XP(xdr_PATHCONF3args)},
    };
    /* Each of these is struct { nfs_fh3 }: one layout serves all five. */
    static const unsigned lens[] = {0, 1, FH_SIZE, 63, NFS3_FHSIZE};
    for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
        for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
            struct fhbuf b;
            nfs_fh3 in = *mkfh(&b, lens[l], (unsigned)(t * 10 + l)), out;
            if (!roundtrip(types[t].proc, &in, &out, sizeof(out), xsz(lens[l])))
                continue;
            if (!fh_eq(&in, &out))
                fprintf(stderr, "  %s: handle of %u bytes differs\n", types[t].name, lens[l]);
            CHECK(fh_eq(&in, &out));
            xdr_free(types[t].proc, &out);
        }
    }
}

static void test_setattr(void)
{
    for (int all = 0; all < 2; all++) {
        struct fhbuf b;
        SETATTR3args in = {.object = *mkfh(&b, FH_SIZE, 2)}, out;
        mksattr(&in.new_attributes, all);
        in.guard.check = all;
        in.guard.sattrguard3_u.obj_ctime.seconds = 0xfffffffeu;
        in.guard.sattrguard3_u.obj_ctime.nseconds = 5;
        size_t want = xsz(FH_SIZE) + sattr_size(all) + (all ? 12 : 4);
        if (!roundtrip(XP(xdr_SETATTR3args), &in, &out, sizeof(out), want))
            continue;
        CHECK(fh_eq(&in.object, &out.object));
        CHECK(sattr_eq(&in.new_attributes, &out.new_attributes));
        CHECK_EQ_INT(out.guard.check, all);
        if (all) {
            CHECK_EQ_INT(out.guard.sattrguard3_u.obj_ctime.seconds, 0xfffffffeu);
            CHECK_EQ_INT(out.guard.sattrguard3_u.obj_ctime.nseconds, 5);
        }
        xdr_free(XP(xdr_SETATTR3args), &out);
    }
}

static void test_lookup_access_read(void)
{
    struct fhbuf b;
    LOOKUP3args lin = {.what = {.dir = *mkfh(&b, FH_SIZE, 3), .name = "frame-000017.jpg"}}, lout;
    if (roundtrip(XP(xdr_LOOKUP3args), &lin, &lout, sizeof(lout), xsz(FH_SIZE) + xsz(16))) {
        CHECK(dirop_eq(&lin.what, &lout.what));
        xdr_free(XP(xdr_LOOKUP3args), &lout);
    }

    ACCESS3args ain = {.object = *mkfh(&b, FH_SIZE, 4), .access = ACCESS3_READ | ACCESS3_EXECUTE},
                aout;
    if (roundtrip(XP(xdr_ACCESS3args), &ain, &aout, sizeof(aout), xsz(FH_SIZE) + 4)) {
        CHECK(fh_eq(&ain.object, &aout.object));
        CHECK_EQ_INT(aout.access, ACCESS3_READ | ACCESS3_EXECUTE);
        xdr_free(XP(xdr_ACCESS3args), &aout);
    }

    READ3args rin = {.file = *mkfh(&b, FH_SIZE, 5), .offset = 0xfedcba9876543210ull, .count = MIB},
              rout;
    if (roundtrip(XP(xdr_READ3args), &rin, &rout, sizeof(rout), xsz(FH_SIZE) + 8 + 4)) {
        CHECK(fh_eq(&rin.file, &rout.file));
        CHECK(rout.offset == 0xfedcba9876543210ull);
        CHECK_EQ_INT(rout.count, MIB);
        xdr_free(XP(xdr_READ3args), &rout);
    }

    /* The bytes on the wire, per RFC 1813 3.3.6: handle, offset (hyper, big-endian), count. */
    static const uint8_t want[] = {0,    0,    0,    2,    0xaa, 0xbb, 0, 0,    0x01, 0x02,
                                   0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0, 0x01, 0,    0};
    char h2[2] = {(char)0xaa, (char)0xbb};
    READ3args small = {.file = {.data = {2, h2}}, .offset = 0x0102030405060708ull, .count = 65536};
    XDR x;
    xdrmem_create(&x, (char *)scratch, SCRATCH, XDR_ENCODE);
    CHECK(xdr_READ3args(&x, &small));
    CHECK_EQ_INT(xdr_getpos(&x), sizeof(want));
    CHECK(memcmp(scratch, want, sizeof(want)) == 0);
    xdr_destroy(&x);
}

static void test_write_commit(void)
{
    struct fhbuf b;
    /* Data lengths around the 4-byte padding, and the 1 MiB maximum. */
    static const unsigned lens[] = {0, 1, 3, 4, 5, 4097, MIB};
    char *data = malloc(MIB);
    for (unsigned i = 0; i < MIB; i++)
        data[i] = (char)(i * 131 + (i >> 12));
    for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
        WRITE3args in = {.file = *mkfh(&b, FH_SIZE, 6),
                         .offset = 1ull << 40,
                         .count = lens[l],
                         .stable = l % 3 == 0   ? UNSTABLE
                                   : l % 3 == 1 ? DATA_SYNC
                                                : FILE_SYNC,
                         .data = {lens[l], data}},
                   out;
        if (!roundtrip(XP(xdr_WRITE3args), &in, &out, sizeof(out),
                       xsz(FH_SIZE) + 8 + 4 + 4 + xsz(lens[l])))
            continue;
        CHECK(fh_eq(&in.file, &out.file));
        CHECK(out.offset == 1ull << 40);
        CHECK_EQ_INT(out.count, lens[l]);
        CHECK_EQ_INT(out.stable, in.stable);
        CHECK_EQ_INT(out.data.data_len, lens[l]);
        CHECK(lens[l] == 0 || memcmp(out.data.data_val, data, lens[l]) == 0);
        xdr_free(XP(xdr_WRITE3args), &out);
    }
    free(data);

    COMMIT3args cin = {.file = *mkfh(&b, FH_SIZE, 7), .offset = 4096, .count = 0}, cout;
    if (roundtrip(XP(xdr_COMMIT3args), &cin, &cout, sizeof(cout), xsz(FH_SIZE) + 8 + 4)) {
        CHECK(fh_eq(&cin.file, &cout.file));
        CHECK(cout.offset == 4096);
        CHECK_EQ_INT(cout.count, 0);
        xdr_free(XP(xdr_COMMIT3args), &cout);
    }
}

static void test_create_family(void)
{
    struct fhbuf b, b2;
    /* CREATE in each mode: UNCHECKED / GUARDED carry attributes, EXCLUSIVE a verifier. */
    for (int mode = UNCHECKED; mode <= EXCLUSIVE; mode++) {
        CREATE3args in = {.where = {.dir = *mkfh(&b, FH_SIZE, 8), .name = "new.bin"}}, out;
        in.how.mode = (createmode3)mode;
        if (mode == EXCLUSIVE)
            memcpy(in.how.createhow3_u.verf, "\x01\x02\x03\x04\xfc\xfd\xfe\xff", 8);
        else
            mksattr(&in.how.createhow3_u.obj_attributes, mode == GUARDED);
        size_t want =
            xsz(FH_SIZE) + xsz(7) + 4 + (mode == EXCLUSIVE ? 8 : sattr_size(mode == GUARDED));
        if (!roundtrip(XP(xdr_CREATE3args), &in, &out, sizeof(out), want))
            continue;
        CHECK(dirop_eq(&in.where, &out.where));
        CHECK_EQ_INT(out.how.mode, mode);
        if (mode == EXCLUSIVE)
            CHECK(memcmp(out.how.createhow3_u.verf, in.how.createhow3_u.verf, 8) == 0);
        else
            CHECK(sattr_eq(&in.how.createhow3_u.obj_attributes,
                           &out.how.createhow3_u.obj_attributes));
        xdr_free(XP(xdr_CREATE3args), &out);
    }

    MKDIR3args min = {.where = {.dir = *mkfh(&b, FH_SIZE, 9), .name = "drive-0001"}}, mout;
    mksattr(&min.attributes, true);
    if (roundtrip(XP(xdr_MKDIR3args), &min, &mout, sizeof(mout),
                  xsz(FH_SIZE) + xsz(10) + sattr_size(true))) {
        CHECK(dirop_eq(&min.where, &mout.where));
        CHECK(sattr_eq(&min.attributes, &mout.attributes));
        xdr_free(XP(xdr_MKDIR3args), &mout);
    }

    SYMLINK3args sin = {.where = {.dir = *mkfh(&b, FH_SIZE, 10), .name = "latest"}}, sout;
    mksattr(&sin.symlink.symlink_attributes, false);
    sin.symlink.symlink_data = "../runs/2024-05-01/../2024-05-02";
    if (roundtrip(XP(xdr_SYMLINK3args), &sin, &sout, sizeof(sout),
                  xsz(FH_SIZE) + xsz(6) + sattr_size(false) + xsz(32))) {
        CHECK(dirop_eq(&sin.where, &sout.where));
        CHECK(sattr_eq(&sin.symlink.symlink_attributes, &sout.symlink.symlink_attributes));
        CHECK(name_eq(sout.symlink.symlink_data, sin.symlink.symlink_data));
        xdr_free(XP(xdr_SYMLINK3args), &sout);
    }

    /* MKNOD: a device carries attributes + major/minor, a FIFO attributes, a file nothing. */
    static const ftype3 types[] = {NF3CHR, NF3BLK, NF3FIFO, NF3SOCK, NF3REG};
    for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
        MKNOD3args in = {.where = {.dir = *mkfh(&b, FH_SIZE, 11), .name = "dev"}}, out;
        in.what.type = types[t];
        size_t body = 0;
        if (types[t] == NF3CHR || types[t] == NF3BLK) {
            mksattr(&in.what.mknoddata3_u.device.dev_attributes, true);
            in.what.mknoddata3_u.device.spec.specdata1 = 8;
            in.what.mknoddata3_u.device.spec.specdata2 = 0xffffffffu;
            body = sattr_size(true) + 8;
        } else if (types[t] == NF3FIFO || types[t] == NF3SOCK) {
            mksattr(&in.what.mknoddata3_u.pipe_attributes, true);
            body = sattr_size(true);
        }
        if (!roundtrip(XP(xdr_MKNOD3args), &in, &out, sizeof(out),
                       xsz(FH_SIZE) + xsz(3) + 4 + body))
            continue;
        CHECK(dirop_eq(&in.where, &out.where));
        CHECK_EQ_INT(out.what.type, types[t]);
        if (types[t] == NF3CHR || types[t] == NF3BLK) {
            CHECK(sattr_eq(&in.what.mknoddata3_u.device.dev_attributes,
                           &out.what.mknoddata3_u.device.dev_attributes));
            CHECK_EQ_INT(out.what.mknoddata3_u.device.spec.specdata1, 8);
            CHECK_EQ_INT(out.what.mknoddata3_u.device.spec.specdata2, 0xffffffffu);
        } else if (body) {
            CHECK(sattr_eq(&in.what.mknoddata3_u.pipe_attributes,
                           &out.what.mknoddata3_u.pipe_attributes));
        }
        xdr_free(XP(xdr_MKNOD3args), &out);
    }

    /* REMOVE and RMDIR share REMOVE3args. */
    REMOVE3args rin = {.object = {.dir = *mkfh(&b, FH_SIZE, 12), .name = "x"}}, rout;
    if (roundtrip(XP(xdr_REMOVE3args), &rin, &rout, sizeof(rout), xsz(FH_SIZE) + xsz(1))) {
        CHECK(dirop_eq(&rin.object, &rout.object));
        xdr_free(XP(xdr_REMOVE3args), &rout);
    }

    RENAME3args nin = {.from = {.dir = *mkfh(&b, FH_SIZE, 13), .name = "a.tmp"},
                       .to = {.dir = *mkfh(&b2, 40, 14), .name = "a"}},
                nout;
    if (roundtrip(XP(xdr_RENAME3args), &nin, &nout, sizeof(nout),
                  xsz(FH_SIZE) + xsz(5) + xsz(40) + xsz(1))) {
        CHECK(dirop_eq(&nin.from, &nout.from));
        CHECK(dirop_eq(&nin.to, &nout.to));
        xdr_free(XP(xdr_RENAME3args), &nout);
    }

    LINK3args kin = {.file = *mkfh(&b, FH_SIZE, 15),
                     .link = {.dir = *mkfh(&b2, FH_SIZE, 16), .name = "hard"}},
              kout;
    if (roundtrip(XP(xdr_LINK3args), &kin, &kout, sizeof(kout), 2 * xsz(FH_SIZE) + xsz(4))) {
        CHECK(fh_eq(&kin.file, &kout.file));
        CHECK(dirop_eq(&kin.link, &kout.link));
        CHECK(!fh_eq(&kout.file, &kout.link.dir));
        xdr_free(XP(xdr_LINK3args), &kout);
    }
}

static void test_readdir_args(void)
{
    struct fhbuf b;
    READDIR3args in = {.dir = *mkfh(&b, FH_SIZE, 17),
                       .cookie = 0x8000000000000003ull,
                       .cookieverf = "\x11\x22\x33\x44\x55\x66\x77\x88",
                       .count = 32768},
                 out;
    if (roundtrip(XP(xdr_READDIR3args), &in, &out, sizeof(out), xsz(FH_SIZE) + 8 + 8 + 4)) {
        CHECK(fh_eq(&in.dir, &out.dir));
        CHECK(out.cookie == 0x8000000000000003ull);
        CHECK(memcmp(out.cookieverf, in.cookieverf, 8) == 0);
        CHECK_EQ_INT(out.count, 32768);
        xdr_free(XP(xdr_READDIR3args), &out);
    }

    READDIRPLUS3args pin = {.dir = *mkfh(&b, FH_SIZE, 18),
                            .cookie = 2,
                            .cookieverf = "\xff\0\xfe\0\x01\0\x02\0",
                            .dircount = 8192,
                            .maxcount = MIB},
                     pout;
    if (roundtrip(XP(xdr_READDIRPLUS3args), &pin, &pout, sizeof(pout),
                  xsz(FH_SIZE) + 8 + 8 + 4 + 4)) {
        CHECK(fh_eq(&pin.dir, &pout.dir));
        CHECK(pout.cookie == 2);
        CHECK(memcmp(pout.cookieverf, pin.cookieverf, 8) == 0);
        CHECK_EQ_INT(pout.dircount, 8192);
        CHECK_EQ_INT(pout.maxcount, MIB);
        xdr_free(XP(xdr_READDIRPLUS3args), &pout);
    }
}

static void test_mntdirpath(void)
{
    static const char *const paths[] = {"/", "/demo", "/demo/drive-0001/camera front"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        mntdirpath in = (char *)paths[i], out;
        if (roundtrip(XP(xdr_mntdirpath), &in, &out, sizeof(out), xsz(strlen(paths[i])))) {
            CHECK(name_eq(out, paths[i]));
            xdr_free(XP(xdr_mntdirpath), &out);
        }
    }
}

/* ---- 1b. bounds, built by hand since rpcgen refuses to encode past them ---- */

/*
 * Decode bytes[0..len) with proc into a zeroed struct of size sz; return
 * whether it decoded.  Frees whatever was decoded either way.
 */
static bool decodes(xdrproc_t proc, const uint8_t *bytes, size_t len, size_t sz)
{
    void *out = calloc(1, sz);
    XDR x;
    xdrmem_create(&x, (char *)bytes, (u_int)len, XDR_DECODE);
    bool ok = proc(&x, out, 0);
    xdr_destroy(&x);
    xdr_free(proc, out);
    free(out);
    return ok;
}

/* Append a counted opaque of n bytes (length word n, content, padding) at *pos. */
static void put_counted(uint8_t *buf, size_t *pos, uint32_t n, uint8_t fill)
{
    uint32_t be = htonl(n);
    memcpy(buf + *pos, &be, 4);
    *pos += 4;
    memset(buf + *pos, fill, n);
    *pos += n;
    while (*pos % 4)
        buf[(*pos)++] = 0;
}

static void put_u32(uint8_t *buf, size_t *pos, uint32_t v)
{
    uint32_t be = htonl(v);
    memcpy(buf + *pos, &be, 4);
    *pos += 4;
}

static void test_bounds(void)
{
    uint8_t *buf = malloc(2 * MIB + 64);
    size_t n;

    /* Handles: 64 bytes (NFS3_FHSIZE) decode, 65 do not. */
    n = 0;
    put_counted(buf, &n, NFS3_FHSIZE, 0xab);
    CHECK(decodes(XP(xdr_GETATTR3args), buf, n, sizeof(GETATTR3args)));
    n = 0;
    put_counted(buf, &n, NFS3_FHSIZE + 1, 0xab);
    CHECK(!decodes(XP(xdr_GETATTR3args), buf, n, sizeof(GETATTR3args)));
    n = 0;
    put_counted(buf, &n, NFS3_FHSIZE + 1, 0xab);
    put_u32(buf, &n, 0); /* cookie ... */
    put_u32(buf, &n, 0);
    CHECK(!decodes(XP(xdr_COMMIT3args), buf, n, sizeof(COMMIT3args)));
    /* A handle length near 2^32 must fail without trying to allocate it. */
    n = 0;
    put_u32(buf, &n, 0xfffffffcu);
    CHECK(!decodes(XP(xdr_GETATTR3args), buf, n, sizeof(GETATTR3args)));

    /* Names: 1024 bytes decode (the handler answers NAMETOOLONG), 1025 do not. */
    n = 0;
    put_counted(buf, &n, FH_SIZE, 1);
    put_counted(buf, &n, 1024, 'n');
    CHECK(decodes(XP(xdr_LOOKUP3args), buf, n, sizeof(LOOKUP3args)));
    LOOKUP3args la;
    memset(&la, 0, sizeof(la));
    XDR x;
    xdrmem_create(&x, (char *)buf, (u_int)n, XDR_DECODE);
    if (xdr_LOOKUP3args(&x, &la)) {
        CHECK_EQ_INT(strlen(la.what.name), 1024);
        xdr_free(XP(xdr_LOOKUP3args), &la);
    }
    xdr_destroy(&x);
    n = 0;
    put_counted(buf, &n, FH_SIZE, 1);
    put_counted(buf, &n, 1025, 'n');
    CHECK(!decodes(XP(xdr_LOOKUP3args), buf, n, sizeof(LOOKUP3args)));
    /* The same bound on the second name of RENAME. */
    n = 0;
    put_counted(buf, &n, FH_SIZE, 1);
    put_counted(buf, &n, 3, 'a');
    put_counted(buf, &n, FH_SIZE, 2);
    put_counted(buf, &n, 1025, 'b');
    CHECK(!decodes(XP(xdr_RENAME3args), buf, n, sizeof(RENAME3args)));

    /* WRITE data: 1 MiB decodes, 1 MiB + 1 does not. */
    for (uint32_t extra = 0; extra < 2; extra++) {
        n = 0;
        put_counted(buf, &n, FH_SIZE, 3);
        put_u32(buf, &n, 0);
        put_u32(buf, &n, 0);           /* offset */
        put_u32(buf, &n, MIB + extra); /* count */
        put_u32(buf, &n, FILE_SYNC);
        put_counted(buf, &n, MIB + extra, 'd');
        bool ok = decodes(XP(xdr_WRITE3args), buf, n, sizeof(WRITE3args));
        CHECK(extra ? !ok : ok);
    }

    /* Mount paths: MNTPATHLEN (1024) decodes, 1025 does not. */
    n = 0;
    put_counted(buf, &n, 1024, '/');
    CHECK(decodes(XP(xdr_mntdirpath), buf, n, sizeof(mntdirpath)));
    n = 0;
    put_counted(buf, &n, 1025, '/');
    CHECK(!decodes(XP(xdr_mntdirpath), buf, n, sizeof(mntdirpath)));

    /* Symlink targets: nfspath3 is bounded at 4096. */
    n = 0;
    put_counted(buf, &n, FH_SIZE, 4);
    put_counted(buf, &n, 1, 'l');
    for (int i = 0; i < 6; i++)
        put_u32(buf, &n, 0); /* sattr3: nothing set */
    size_t at = n;
    put_counted(buf, &n, 4096, 't');
    CHECK(decodes(XP(xdr_SYMLINK3args), buf, n, sizeof(SYMLINK3args)));
    n = at;
    put_counted(buf, &n, 4097, 't');
    CHECK(!decodes(XP(xdr_SYMLINK3args), buf, n, sizeof(SYMLINK3args)));

    /* A union arm that does not exist fails (CREATE mode 3). */
    n = 0;
    put_counted(buf, &n, FH_SIZE, 5);
    put_counted(buf, &n, 1, 'c');
    put_u32(buf, &n, 3);
    put_u32(buf, &n, 0);
    put_u32(buf, &n, 0);
    CHECK(!decodes(XP(xdr_CREATE3args), buf, n, sizeof(CREATE3args)));

    free(buf);
}

/* Every strict prefix of an encoded record fails to decode, and frees cleanly. */
static void test_truncated(const char *what, xdrproc_t proc, void *in, size_t sz)
{
    XDR x;
    xdrmem_create(&x, (char *)scratch, SCRATCH, XDR_ENCODE);
    CHECK(proc(&x, in, 0));
    size_t len = xdr_getpos(&x);
    xdr_destroy(&x);
    unsigned decoded = 0;
    for (size_t cut = 0; cut < len; cut++) {
        /* Copy so ASan sees a read past the cut as a heap overflow. */
        uint8_t *copy = malloc(cut ? cut : 1);
        memcpy(copy, scratch, cut);
        if (decodes(proc, copy, cut, sz)) {
            decoded++;
            fprintf(stderr, "  %s: a %zu-byte prefix of %zu decoded\n", what, cut, len);
        }
        free(copy);
    }
    CHECK_EQ_INT(decoded, 0);
    CHECK(decodes(proc, scratch, len, sz));
}

static void test_truncation(void)
{
    struct fhbuf b;
    READDIRPLUS3args rp = {.dir = *mkfh(&b, FH_SIZE, 19),
                           .cookie = 77,
                           .cookieverf = "abcdefgh",
                           .dircount = 4096,
                           .maxcount = 65536};
    test_truncated("READDIRPLUS3args", XP(xdr_READDIRPLUS3args), &rp, sizeof(rp));

    char data[37];
    memset(data, 'w', sizeof(data)); /* 37: the record ends in 3 bytes of padding */
    WRITE3args w = {.file = *mkfh(&b, FH_SIZE, 20),
                    .offset = 1,
                    .count = sizeof(data),
                    .stable = UNSTABLE,
                    .data = {sizeof(data), data}};
    test_truncated("WRITE3args", XP(xdr_WRITE3args), &w, sizeof(w));

    SETATTR3args s = {.object = *mkfh(&b, FH_SIZE, 21)};
    mksattr(&s.new_attributes, true);
    s.guard.check = TRUE;
    test_truncated("SETATTR3args", XP(xdr_SETATTR3args), &s, sizeof(s));

    RENAME3args r = {.from = {.dir = *mkfh(&b, FH_SIZE, 22), .name = "from-name"},
                     .to = {.dir = *mkfh(&b, FH_SIZE, 23), .name = "to"}};
    test_truncated("RENAME3args", XP(xdr_RENAME3args), &r, sizeof(r));
}

/* ---- 2. READDIR / READDIRPLUS encoder -------------------------------------- */

static void fill_fattr(fattr3 *f, unsigned seed)
{
    f->type = seed % 3 == 0 ? NF3DIR : seed % 3 == 1 ? NF3REG : NF3LNK;
    f->mode = 0640 | (seed & 7);
    f->nlink = 1 + seed % 5;
    f->uid = 1000 + seed;
    f->gid = 2000000000u + seed;
    f->size = ((uint64_t)seed << 33) | 0x1234;
    f->used = f->size + 4095;
    f->rdev.specdata1 = seed;
    f->rdev.specdata2 = ~seed;
    f->fsid = 0xf00d000000000000ull | seed;
    f->fileid = 100000 + seed;
    f->atime.seconds = 1700000000u + seed;
    f->atime.nseconds = seed % 1000000000u;
    f->mtime.seconds = 1600000000u + seed;
    f->mtime.nseconds = 999999999u - seed;
    f->ctime.seconds = 0xffffffffu - seed;
    f->ctime.nseconds = 1;
}

static bool fattr_eq(const fattr3 *a, const fattr3 *b)
{
    return a->type == b->type && a->mode == b->mode && a->nlink == b->nlink && a->uid == b->uid &&
           a->gid == b->gid && a->size == b->size && a->used == b->used &&
           a->rdev.specdata1 == b->rdev.specdata1 && a->rdev.specdata2 == b->rdev.specdata2 &&
           a->fsid == b->fsid && a->fileid == b->fileid && a->atime.seconds == b->atime.seconds &&
           a->atime.nseconds == b->atime.nseconds && a->mtime.seconds == b->mtime.seconds &&
           a->mtime.nseconds == b->mtime.nseconds && a->ctime.seconds == b->ctime.seconds &&
           a->ctime.nseconds == b->ctime.nseconds;
}

static size_t name_len(unsigned i)
{
    return 1 + i % 255; /* 1 .. 255 (NAME_MAX) */
}

static void fill_name(char *s, unsigned i)
{
    size_t len = name_len(i);
    for (size_t j = 0; j < len; j++)
        s[j] = (char)('!' + (i * 7 + j) % 94); /* printable, includes '.', ' ' is not */
    s[len] = 0;
}

/* A list of n entries; *sum receives the sum of nfs3_dirent_size over them. */
static void make_list(struct nfs3_readdir_res *r, unsigned n, bool plus, bool eof, size_t *sum)
{
    memset(&r->list, 0, sizeof(r->list));
    r->list.plus = plus;
    r->list.eof = eof;
    *sum = 0;
    for (unsigned i = 0; i < n; i++) {
        struct nfs3_dirent *d = calloc(1, sizeof(*d) + name_len(i) + 1);
        d->fileid = INODE_FIRST + i * 3ull + ((uint64_t)i << 40);
        d->cookie = 3 + i + ((uint64_t)(i % 7) << 56);
        fill_name(d->name, i);
        if (plus) {
            fill_fattr(&d->attr, i);
            d->have_attr = true;
            for (unsigned k = 0; k < FH_SIZE; k++)
                d->fh[k] = (uint8_t)(i * 13 + k);
        }
        if (r->list.tail)
            r->list.tail->next = d;
        else
            r->list.head = d;
        r->list.tail = d;
        r->list.n++;
        *sum += nfs3_dirent_size(name_len(i), plus);
    }
}

static void free_list(struct nfs3_readdir_res *r)
{
    struct nfs3_dirent *d = r->list.head;
    while (d) {
        struct nfs3_dirent *next = d->next;
        free(d);
        d = next;
    }
    memset(&r->list, 0, sizeof(r->list));
}

/* Encode r into a buffer of exactly cap bytes.  Returns the length, or 0 if it failed. */
static size_t encode_readdir(struct nfs3_readdir_res *r, uint8_t *buf, size_t cap)
{
    XDR x;
    xdrmem_create(&x, (char *)buf, (u_int)cap, XDR_ENCODE);
    bool ok = nfs3_xdr_readdir_res(&x, r);
    size_t len = xdr_getpos(&x);
    xdr_destroy(&x);
    return ok ? len : 0;
}

static void check_verf(const char *v)
{
    static const uint8_t want[8] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
    CHECK(memcmp(v, want, 8) == 0); /* the 64-bit verifier, most significant byte first */
}

static void test_readdir_encode(unsigned n, bool plus, bool eof)
{
    struct nfs3_readdir_res r = {
        .status = NFS3_OK, .have_dir = true, .verf = 0x0123456789abcdefull};
    fill_fattr(&r.dir, 4242);
    size_t sum;
    make_list(&r, n, plus, eof, &sum);
    size_t want = nfs3_readdir_fixed_size() + sum;

    /* Exactly the budgeted size is enough; 4 bytes less is not. */
    uint8_t *buf = malloc(want);
    size_t len = encode_readdir(&r, buf, want);
    CHECK_EQ_INT(len, want);
    uint8_t *small = malloc(want - 4);
    CHECK_EQ_INT(encode_readdir(&r, small, want - 4), 0);
    free(small);
    if (len != want)
        goto out;

    XDR x;
    xdrmem_create(&x, (char *)buf, (u_int)len, XDR_DECODE);
    unsigned seen = 0, bad_name = 0, bad_ids = 0, bad_attr = 0, bad_fh = 0;
    struct nfs3_dirent *d = r.list.head;
    if (!plus) {
        READDIR3res out;
        memset(&out, 0, sizeof(out));
        bool ok = xdr_READDIR3res(&x, &out);
        CHECK(ok);
        CHECK_EQ_INT(xdr_getpos(&x), len);
        if (ok) {
            READDIR3resok *ok3 = &out.READDIR3res_u.resok;
            CHECK_EQ_INT(out.status, NFS3_OK);
            CHECK(ok3->dir_attributes.attributes_follow);
            CHECK(fattr_eq(&ok3->dir_attributes.post_op_attr_u.attributes, &r.dir));
            check_verf(ok3->cookieverf);
            CHECK_EQ_INT(ok3->reply.eof, eof);
            for (entry3 *e = ok3->reply.entries; e && d; e = e->nextentry, d = d->next) {
                seen++;
                bad_name += !name_eq(e->name, d->name);
                bad_ids += e->fileid != d->fileid || e->cookie != d->cookie;
            }
        }
        xdr_free(XP(xdr_READDIR3res), &out);
    } else {
        READDIRPLUS3res out;
        memset(&out, 0, sizeof(out));
        bool ok = xdr_READDIRPLUS3res(&x, &out);
        CHECK(ok);
        CHECK_EQ_INT(xdr_getpos(&x), len);
        if (ok) {
            READDIRPLUS3resok *ok3 = &out.READDIRPLUS3res_u.resok;
            CHECK_EQ_INT(out.status, NFS3_OK);
            CHECK(ok3->dir_attributes.attributes_follow);
            CHECK(fattr_eq(&ok3->dir_attributes.post_op_attr_u.attributes, &r.dir));
            check_verf(ok3->cookieverf);
            CHECK_EQ_INT(ok3->reply.eof, eof);
            for (entryplus3 *e = ok3->reply.entries; e && d; e = e->nextentry, d = d->next) {
                seen++;
                bad_name += !name_eq(e->name, d->name);
                bad_ids += e->fileid != d->fileid || e->cookie != d->cookie;
                bad_attr += !e->name_attributes.attributes_follow ||
                            !fattr_eq(&e->name_attributes.post_op_attr_u.attributes, &d->attr);
                const nfs_fh3 *h = &e->name_handle.post_op_fh3_u.handle;
                bad_fh += !e->name_handle.handle_follows || h->data.data_len != FH_SIZE ||
                          memcmp(h->data.data_val, d->fh, FH_SIZE) != 0;
            }
        }
        xdr_free(XP(xdr_READDIRPLUS3res), &out);
    }
    xdr_destroy(&x);
    if (seen != n || bad_name || bad_ids || bad_attr || bad_fh)
        fprintf(stderr, "  readdir n=%u plus=%d: seen %u, bad names %u ids %u attrs %u fh %u\n", n,
                plus, seen, bad_name, bad_ids, bad_attr, bad_fh);
    CHECK_EQ_INT(seen, n);
    CHECK_EQ_INT(bad_name, 0);
    CHECK_EQ_INT(bad_ids, 0);
    CHECK_EQ_INT(bad_attr, 0);
    CHECK_EQ_INT(bad_fh, 0);
out:
    free(buf);
    free_list(&r);
}

/*
 * A READDIRPLUS entry whose attributes the server only guessed goes out
 * without them (attributes_follow FALSE) but with its handle; the others
 * keep theirs, and the reply is one fattr3 (84 bytes) shorter than budgeted.
 */
static void test_readdirplus_no_attr(void)
{
    struct nfs3_readdir_res r = {.status = NFS3_OK, .have_dir = true};
    fill_fattr(&r.dir, 7);
    size_t sum;
    make_list(&r, 3, true, true, &sum);
    r.list.head->next->have_attr = false;
    size_t want = nfs3_readdir_fixed_size() + sum;
    uint8_t *buf = malloc(want);
    size_t len = encode_readdir(&r, buf, want);
    CHECK_EQ_INT(len, want - 84);
    XDR x;
    xdrmem_create(&x, (char *)buf, (u_int)len, XDR_DECODE);
    READDIRPLUS3res out;
    memset(&out, 0, sizeof(out));
    bool ok = len && xdr_READDIRPLUS3res(&x, &out);
    CHECK(ok);
    if (ok) {
        entryplus3 *e = out.READDIRPLUS3res_u.resok.reply.entries;
        const bool follows[3] = {true, false, true};
        for (int i = 0; i < 3; i++, e = e ? e->nextentry : NULL) {
            CHECK(e != NULL);
            if (!e)
                break;
            CHECK_EQ_INT(e->name_attributes.attributes_follow, follows[i]);
            CHECK(e->name_handle.handle_follows);
        }
    }
    xdr_free(XP(xdr_READDIRPLUS3res), &out);
    xdr_destroy(&x);
    free(buf);
    free_list(&r);
}

/* An error reply: status and the directory's attributes if known, no verifier, no entries. */
static void test_readdir_error(bool plus, bool have_dir)
{
    struct nfs3_readdir_res r = {.status = NFS3ERR_NOTDIR, .have_dir = have_dir, .verf = 99};
    fill_fattr(&r.dir, 7);
    size_t sum;
    make_list(&r, 3, plus, true, &sum); /* must not be sent with an error */
    uint8_t buf[512];
    size_t len = encode_readdir(&r, buf, sizeof(buf));
    CHECK_EQ_INT(len, 4 + 4 + (have_dir ? 84 : 0));
    XDR x;
    xdrmem_create(&x, (char *)buf, (u_int)len, XDR_DECODE);
    if (!plus) {
        READDIR3res out;
        memset(&out, 0, sizeof(out));
        CHECK(xdr_READDIR3res(&x, &out));
        CHECK_EQ_INT(out.status, NFS3ERR_NOTDIR);
        post_op_attr *a = &out.READDIR3res_u.resfail.dir_attributes;
        CHECK_EQ_INT(a->attributes_follow, have_dir);
        CHECK(!have_dir || fattr_eq(&a->post_op_attr_u.attributes, &r.dir));
        xdr_free(XP(xdr_READDIR3res), &out);
    } else {
        READDIRPLUS3res out;
        memset(&out, 0, sizeof(out));
        CHECK(xdr_READDIRPLUS3res(&x, &out));
        CHECK_EQ_INT(out.status, NFS3ERR_NOTDIR);
        post_op_attr *a = &out.READDIRPLUS3res_u.resfail.dir_attributes;
        CHECK_EQ_INT(a->attributes_follow, have_dir);
        CHECK(!have_dir || fattr_eq(&a->post_op_attr_u.attributes, &r.dir));
        xdr_free(XP(xdr_READDIRPLUS3res), &out);
    }
    CHECK_EQ_INT(xdr_getpos(&x), len);
    xdr_destroy(&x);
    free_list(&r);
}

static void test_readdir(void)
{
    static const unsigned counts[] = {0, 1, 5000};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        test_readdir_encode(counts[i], false, true);
        test_readdir_encode(counts[i], true, true);
    }
    test_readdir_encode(255, false, false); /* a page that is not the last */
    test_readdir_encode(255, true, false);
    test_readdir_error(false, true);
    test_readdir_error(false, false);
    test_readdir_error(true, true);
    test_readdir_error(true, false);
    test_readdirplus_no_attr();

    /* A READDIR reply of 1 MiB holds many entries; the budget agrees with nfs3_dirent_size. */
    CHECK_EQ_INT(nfs3_dirent_size(1, false), 4 + 8 + 8 + 8);
    CHECK_EQ_INT(nfs3_dirent_size(4, false), 4 + 8 + 8 + 8);
    CHECK_EQ_INT(nfs3_dirent_size(5, false), 4 + 8 + 12 + 8);
    CHECK_EQ_INT(nfs3_dirent_size(255, true) - nfs3_dirent_size(255, false),
                 4 + 84 + 4 + xsz(FH_SIZE));

    /* The encoder encodes only. */
    struct nfs3_readdir_res r = {.status = NFS3_OK};
    uint8_t buf[16] = {0};
    XDR x;
    xdrmem_create(&x, (char *)buf, sizeof(buf), XDR_DECODE);
    CHECK(!nfs3_xdr_readdir_res(&x, &r));
    xdr_destroy(&x);
}

/* ---- 3. errno -> nfsstat3 --------------------------------------------- */

static void test_stat(void)
{
    static const struct {
        int err;
        nfsstat3 want;
    } map[] = {
        {0, NFS3_OK},
        {EPERM, NFS3ERR_PERM},
        {ENOENT, NFS3ERR_NOENT},
        {EIO, NFS3ERR_IO},
        {ENXIO, NFS3ERR_NXIO},
        {EACCES, NFS3ERR_ACCES},
        {EEXIST, NFS3ERR_EXIST},
        {EXDEV, NFS3ERR_XDEV},
        {ENODEV, NFS3ERR_NODEV},
        {ENOTDIR, NFS3ERR_NOTDIR},
        {EISDIR, NFS3ERR_ISDIR},
        {EINVAL, NFS3ERR_INVAL},
        {EFBIG, NFS3ERR_FBIG},
        {ENOSPC, NFS3ERR_NOSPC},
        {EROFS, NFS3ERR_ROFS},
        {EMLINK, NFS3ERR_MLINK},
        {ENAMETOOLONG, NFS3ERR_NAMETOOLONG},
        {ENOTEMPTY, NFS3ERR_NOTEMPTY},
        {EDQUOT, NFS3ERR_DQUOT},
        {ESTALE, NFS3ERR_STALE},
        {EBADMSG, NFS3ERR_BADHANDLE},
        {ENOTSUP, NFS3ERR_NOTSUPP},
        {EAGAIN, NFS3ERR_JUKEBOX},
        {ETIMEDOUT, NFS3ERR_JUKEBOX},
        {ENOMEM, NFS3ERR_SERVERFAULT},
        /* Anything else is an I/O error. */
        {EBUSY, NFS3ERR_IO},
        {ECONNREFUSED, NFS3ERR_IO},
        {EPROTO, NFS3ERR_IO},
        {-1, NFS3ERR_IO},
        {100000, NFS3ERR_IO},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        int got = nfs3_stat(map[i].err);
        if (got != (int)map[i].want)
            fprintf(stderr, "  nfs3_stat(%d: %s) = %d, want %d\n", map[i].err, strerror(map[i].err),
                    got, map[i].want);
        CHECK_EQ_INT(got, map[i].want);
    }
}

/* ---- 4. MOUNT through the program table ------------------------------- */

static char tmp[PATH_MAX];

struct mnt_fixture {
    struct conf *conf;
    struct inode_table *inodes;
    struct fh_key *key;
    struct export_ctx *exports;
    struct mnt_server *mnt;
    struct rpc_program prog;
    struct nfs3_server nfs;
    struct rpc_program nfs_prog;
};

static int write_file(const char *name, const char *text)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/%s", tmp, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return errno;
    }
    fputs(text, f);
    return fclose(f) == 0 ? 0 : errno;
}

static int make_dir(const char *name)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/%s", tmp, name);
    if (mkdir(path, 0755) != 0) {
        perror(path);
        return errno;
    }
    return 0;
}

#define MANY_FILES 300

/* The name of file i of the "many" folder: 1 to 200 bytes, unique by its prefix. */
static void many_name(char *buf, unsigned i)
{
    size_t len = 1 + (i * 37) % 200;
    int k = snprintf(buf, 16, "%u", i);
    if ((size_t)k > len)
        len = (size_t)k;
    buf[k] = k < (int)len ? '_' : 0;
    for (size_t j = (size_t)k + 1; j < len; j++)
        buf[j] = (char)('a' + (i + j) % 26);
    buf[len] = 0;
}

static int make_files(const char *dir, unsigned n)
{
    char name[PATH_MAX], file[256];
    for (unsigned i = 0; i < n; i++) {
        many_name(file, i);
        snprintf(name, sizeof(name), "%s/%s", dir, file);
        int rc = write_file(name, "x");
        if (rc)
            return rc;
    }
    return 0;
}

static const char exports_v1[] =
    "exports = (\n"
    "  { path = \"/demo\"; store = \"local\"; bucket = \"demo\";\n"
    "    clients = ( \"127.0.0.0/8\", \"::1\" ); },\n"
    "  { path = \"/archive\"; store = \"local\"; bucket = \"archive\"; access = \"ro\";\n"
    "    clients = ( \"10.0.0.0/8\", \"192.168.1.0/24\" ); }\n"
    ");\n";

static const char exports_v2[] = "exports = (\n"
                                 "  { path = \"/demo\"; store = \"local\"; bucket = \"demo\";\n"
                                 "    clients = ( \"10.0.0.0/8\" ); }\n"
                                 ");\n";

static int fixture_open(struct mnt_fixture *f)
{
    char err[512] = "";
    char path[PATH_MAX + 64];
    memset(f, 0, sizeof(*f));
    if (make_dir("state") || make_dir("buckets") || make_dir("buckets/demo") ||
        make_dir("buckets/demo/sub") || make_dir("buckets/demo/sub/deeper") ||
        make_dir("buckets/archive") || write_file("buckets/demo/file.txt", "not a directory\n") ||
        make_dir("buckets/demo/many") || make_files("buckets/demo/many", MANY_FILES) ||
        write_file("bucketnfs.conf",
                   "server = { state_dir = \"state\"; };\n"
                   "stores = ( { name = \"local\"; type = \"dir\"; root = \"buckets\"; } );\n"
                   "exports_file = \"exports.conf\";\n") ||
        write_file("exports.conf", exports_v1))
        return EIO;
    snprintf(path, sizeof(path), "%s/bucketnfs.conf", tmp);
    int rc = conf_load(path, &f->conf, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "conf_load: %s\n", err);
        return rc;
    }
    if (!(f->inodes = inode_open(f->conf->server.state_dir, f->conf->server.meta_cache)) ||
        !(f->key = fh_key_open(f->conf->server.state_dir))) {
        rc = errno;
        fprintf(stderr, "inode_open / fh_key_open: %s\n", strerror(rc));
        return rc;
    }
    if (!(f->exports = export_ctx_create(f->conf, f->inodes, err, sizeof(err)))) {
        rc = errno;
        fprintf(stderr, "export_ctx_create: %s\n", err);
        return rc;
    }
    if (!(f->mnt = mnt_server_create(f->exports, f->key, f->inodes, f->conf->server.state_dir)))
        return errno;
    mnt_program(f->mnt, &f->prog);
    f->nfs.inodes = f->inodes;
    f->nfs.fh_key = f->key;
    f->nfs.exports = f->exports;
    nfs3_program(&f->nfs, &f->nfs_prog);
    return 0;
}

static void fixture_close(struct mnt_fixture *f)
{
    mnt_server_destroy(f->mnt);
    inode_quiesce(f->inodes); /* background listings use the stores */
    export_ctx_destroy(f->exports);
    fh_key_free(f->key);
    if (f->inodes)
        inode_close(f->inodes);
    conf_free(f->conf);
}

static void set_peer(struct rpc_req *req, const char *addr)
{
    memset(&req->peer, 0, sizeof(req->peer));
    if (strchr(addr, ':')) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&req->peer;
        s->sin6_family = AF_INET6;
        s->sin6_port = htons(700);
        CHECK(inet_pton(AF_INET6, addr, &s->sin6_addr) == 1);
        req->peerlen = sizeof(*s);
    } else {
        struct sockaddr_in *s = (struct sockaddr_in *)&req->peer;
        s->sin_family = AF_INET;
        s->sin_port = htons(700);
        CHECK(inet_pton(AF_INET, addr, &s->sin_addr) == 1);
        req->peerlen = sizeof(*s);
    }
}

/*
 * Serve one call as the RPC layer does: the arguments (if the procedure
 * takes any) are encoded with argproc, decoded with the table's decoder,
 * the handler runs as AUTH_SYS uid/gid 1000 from peer, and the result is
 * encoded with the table's encoder into a buffer of the procedure's
 * max_reply bytes.  The caller frees *out.  Returns false if any step failed.
 */
static bool serve(const struct rpc_program *prog, uint32_t procnum, xdrproc_t argproc, void *argp,
                  const char *peer, uint8_t **out, size_t *outlen)
{
    const struct rpc_proc *pr = &prog->procs[procnum];
    struct rpc_req req = {.prog = prog->prog,
                          .vers = prog->vers,
                          .proc = procnum,
                          .tcp = true,
                          .prog_ctx = prog->ctx,
                          .cred = {.flavor = AUTH_SYS, .uid = 1000, .gid = 1000}};
    bool ok = false;
    set_peer(&req, peer);
    req.arena = rpc_arena_create();
    void *args = calloc(1, pr->args_size ? pr->args_size : 1);
    void *res = calloc(1, pr->res_size ? pr->res_size : 1);
    uint8_t *abuf = malloc(8192);
    size_t cap = pr->max_reply ? pr->max_reply : 4096;
    *out = malloc(cap);
    *outlen = 0;
    if (!req.arena || !args || !res || !abuf || !*out)
        goto cleanup;
    if (pr->decode_args) {
        XDR x;
        xdrmem_create(&x, (char *)abuf, 8192, XDR_ENCODE);
        bool enc = argproc(&x, argp, 0);
        size_t alen = xdr_getpos(&x);
        xdr_destroy(&x);
        if (!enc)
            goto cleanup;
        xdrmem_create(&x, (char *)abuf, (u_int)alen, XDR_DECODE);
        bool dec = pr->decode_args(&x, args, 0);
        xdr_destroy(&x);
        if (!dec)
            goto cleanup_args;
    }
    if (pr->handler(&req, args, res) != RPC_HANDLER_OK)
        goto cleanup_release;
    if (pr->encode_res) {
        XDR x;
        xdrmem_create(&x, (char *)*out, (u_int)cap, XDR_ENCODE);
        ok = pr->encode_res(&x, res, 0);
        *outlen = xdr_getpos(&x);
        xdr_destroy(&x);
    } else {
        ok = true;
    }
cleanup_release:
    if (pr->release)
        pr->release(&req, res);
cleanup_args:
    if (pr->decode_args)
        xdr_free(pr->decode_args, args);
cleanup:
    free(abuf);
    free(res);
    free(args);
    if (req.arena)
        rpc_arena_destroy(req.arena);
    return ok;
}

static bool mnt_call(struct mnt_fixture *f, uint32_t procnum, const char *path, const char *peer,
                     uint8_t **out, size_t *outlen)
{
    char *p = (char *)path;
    return serve(&f->prog, procnum, XP(xdr_mntdirpath), &p, peer, out, outlen);
}

/*
 * MNT path from peer.  Returns the status (-1 if the call failed) and, on
 * MNT3_OK, the handle in fh (FH_SIZE bytes expected).
 */
static int do_mnt(struct mnt_fixture *f, const char *path, const char *peer, uint8_t *fh,
                  size_t *fhlen)
{
    uint8_t *buf;
    size_t len;
    int status = -1;
    *fhlen = 0;
    if (!mnt_call(f, MOUNTPROC3_MNT, path, peer, &buf, &len)) {
        free(buf);
        return -1;
    }
    mountres3 r;
    memset(&r, 0, sizeof(r));
    XDR x;
    xdrmem_create(&x, (char *)buf, (u_int)len, XDR_DECODE);
    if (xdr_mountres3(&x, &r) && xdr_getpos(&x) == len) {
        status = r.fhs_status;
        if (status == MNT3_OK) {
            mountres3_ok *ok = &r.mountres3_u.mountinfo;
            *fhlen = ok->fhandle.fhandle3_len;
            if (*fhlen <= FHSIZE3)
                memcpy(fh, ok->fhandle.fhandle3_val, *fhlen);
            /* The client picks a flavor from this list: AUTH_SYS is what we check. */
            CHECK_EQ_INT(ok->auth_flavors.auth_flavors_len, 1);
            CHECK(ok->auth_flavors.auth_flavors_len == 1 &&
                  ok->auth_flavors.auth_flavors_val[0] == AUTH_SYS);
        } else {
            CHECK_EQ_INT(len, 4); /* an error is the status alone */
        }
    }
    xdr_free(XP(xdr_mountres3), &r);
    xdr_destroy(&x);
    free(buf);
    return status;
}

/* The inode a MNT handle names, or 0 if the handle does not check out. */
static uint64_t fh_ino(struct mnt_fixture *f, const uint8_t *fh, size_t len)
{
    struct fh h;
    if (fh_decode(f->key, fh, len, &h) != 0)
        return 0;
    return h.ino;
}

/* DUMP as "host path" lines joined by ';' in the server's order; n receives the count. */
static void do_dump(struct mnt_fixture *f, char *text, size_t cap, unsigned *n)
{
    uint8_t *buf;
    size_t len;
    text[0] = 0;
    *n = 0;
    bool ok = mnt_call(f, MOUNTPROC3_DUMP, NULL, "127.0.0.1", &buf, &len);
    CHECK(ok);
    if (ok) {
        mountlist ml = NULL;
        XDR x;
        xdrmem_create(&x, (char *)buf, (u_int)len, XDR_DECODE);
        CHECK(xdr_mountlist(&x, &ml));
        CHECK_EQ_INT(xdr_getpos(&x), len);
        for (mountbody *b = ml; b && *n < 100; b = b->ml_next) {
            size_t used = strlen(text);
            snprintf(text + used, cap - used, "%s %s;", b->ml_hostname, b->ml_directory);
            (*n)++;
        }
        xdr_free(XP(xdr_mountlist), &ml);
        xdr_destroy(&x);
    }
    free(buf);
}

static bool dump_has(const char *text, const char *entry)
{
    char want[512];
    snprintf(want, sizeof(want), "%s;", entry);
    for (const char *p = text; (p = strstr(p, want)); p++)
        if (p == text || p[-1] == ';')
            return true;
    return false;
}

/* EXPORT as "path:group,group;" in the server's order. */
static void do_export(struct mnt_fixture *f, char *text, size_t cap)
{
    uint8_t *buf;
    size_t len;
    text[0] = 0;
    bool ok = mnt_call(f, MOUNTPROC3_EXPORT, NULL, "127.0.0.1", &buf, &len);
    CHECK(ok);
    if (ok) {
        mntexports ex = NULL;
        XDR x;
        xdrmem_create(&x, (char *)buf, (u_int)len, XDR_DECODE);
        CHECK(xdr_mntexports(&x, &ex));
        CHECK_EQ_INT(xdr_getpos(&x), len);
        unsigned count = 0;
        for (exportnode *e = ex; e && count < 100; e = e->ex_next, count++) {
            size_t used = strlen(text);
            snprintf(text + used, cap - used, "%s:", e->ex_dir);
            for (groupnode *g = e->ex_groups; g; g = g->gr_next) {
                used = strlen(text);
                snprintf(text + used, cap - used, "%s%s", g->gr_name, g->gr_next ? "," : "");
            }
            used = strlen(text);
            snprintf(text + used, cap - used, ";");
        }
        xdr_free(XP(xdr_mntexports), &ex);
        xdr_destroy(&x);
    }
    free(buf);
}

static int reload_exports(struct mnt_fixture *f, const char *text)
{
    char err[512] = "";
    struct conf_exports ex;
    memset(&ex, 0, sizeof(ex));
    int rc = write_file("exports.conf", text);
    if (!rc)
        rc = conf_load_exports(f->conf, &ex, err, sizeof(err));
    if (!rc)
        rc = export_ctx_reload(f->exports, &ex, err, sizeof(err));
    if (rc)
        fprintf(stderr, "reload: %s\n", err);
    conf_exports_free(&ex);
    return rc;
}

/* ---- 5. READDIR / READDIRPLUS through the NFS handlers ------------------- */

struct walk {
    unsigned seen[MANY_FILES]; /* times each file was listed */
    unsigned dots;             /* "." and ".." */
    unsigned pages, oversize, bad;
    int status; /* of the last reply */
    bool eof;
    uint8_t file_fh[FHSIZE3]; /* a file's handle (READDIRPLUS) */
    size_t file_fhlen;
};

/* One listed name: which file it is, or a dot, or bad. */
static void walk_name(struct walk *w, const char *name)
{
    char want[256];
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        w->dots++;
        return;
    }
    char *end;
    unsigned long i = strtoul(name, &end, 10);
    if (end == name || i >= MANY_FILES) {
        w->bad++;
        return;
    }
    many_name(want, (unsigned)i);
    if (strcmp(want, name) == 0)
        w->seen[i]++;
    else
        w->bad++;
}

/*
 * List the folder whose handle is dirfh, maxcount bytes per reply, as a
 * client does: each page continues from the last cookie with the verifier.
 * At most 2000 pages.
 */
static void walk_dir(struct mnt_fixture *f, const uint8_t *dirfh, size_t fhlen, bool plus,
                     uint32_t maxcount, const char *peer, struct walk *w)
{
    memset(w, 0, sizeof(*w));
    uint64_t cookie = 0;
    char verf[NFS3_COOKIEVERFSIZE] = {0};
    nfs_fh3 dir = {.data = {(u_int)fhlen, (char *)dirfh}};
    while (w->pages < 2000) {
        uint8_t *buf;
        size_t len;
        bool ok;
        w->pages++;
        if (plus) {
            READDIRPLUS3args a = {
                .dir = dir, .cookie = cookie, .dircount = maxcount, .maxcount = maxcount};
            memcpy(a.cookieverf, verf, sizeof(verf));
            ok = serve(&f->nfs_prog, NFSPROC3_READDIRPLUS, XP(xdr_READDIRPLUS3args), &a, peer, &buf,
                       &len);
        } else {
            READDIR3args a = {.dir = dir, .cookie = cookie, .count = maxcount};
            memcpy(a.cookieverf, verf, sizeof(verf));
            ok = serve(&f->nfs_prog, NFSPROC3_READDIR, XP(xdr_READDIR3args), &a, peer, &buf, &len);
        }
        CHECK(ok);
        if (!ok) {
            free(buf);
            return;
        }
        w->oversize += len > maxcount;
        unsigned entries = 0;
        XDR x;
        xdrmem_create(&x, (char *)buf, (u_int)len, XDR_DECODE);
        if (plus) {
            READDIRPLUS3res r;
            memset(&r, 0, sizeof(r));
            CHECK(xdr_READDIRPLUS3res(&x, &r));
            w->status = r.status;
            if (r.status == NFS3_OK) {
                READDIRPLUS3resok *ok3 = &r.READDIRPLUS3res_u.resok;
                for (entryplus3 *e = ok3->reply.entries; e; e = e->nextentry) {
                    entries++;
                    walk_name(w, e->name);
                    cookie = e->cookie;
                    const nfs_fh3 *h = &e->name_handle.post_op_fh3_u.handle;
                    const fattr3 *at = &e->name_attributes.post_op_attr_u.attributes;
                    /*
                     * Attributes may be left out (a listing without POSIX
                     * metadata only guesses them; the client then asks
                     * GETATTR); the handle never is.  Sent ones must match.
                     */
                    bool has_at = e->name_attributes.attributes_follow;
                    if (!e->name_handle.handle_follows || h->data.data_len != FH_SIZE ||
                        fh_ino(f, (const uint8_t *)h->data.data_val, FH_SIZE) != e->fileid ||
                        (has_at && at->fileid != e->fileid)) {
                        w->bad++;
                        continue;
                    }
                    if (has_at && isdigit((unsigned char)e->name[0]) &&
                        (at->type != NF3REG || at->size != 1))
                        w->bad++;
                    if (isdigit((unsigned char)e->name[0]) && !w->file_fhlen) {
                        memcpy(w->file_fh, h->data.data_val, FH_SIZE);
                        w->file_fhlen = FH_SIZE;
                    }
                }
                w->eof = ok3->reply.eof;
                memcpy(verf, ok3->cookieverf, sizeof(verf));
            }
            xdr_free(XP(xdr_READDIRPLUS3res), &r);
        } else {
            READDIR3res r;
            memset(&r, 0, sizeof(r));
            CHECK(xdr_READDIR3res(&x, &r));
            w->status = r.status;
            if (r.status == NFS3_OK) {
                READDIR3resok *ok3 = &r.READDIR3res_u.resok;
                for (entry3 *e = ok3->reply.entries; e; e = e->nextentry) {
                    entries++;
                    walk_name(w, e->name);
                    cookie = e->cookie;
                }
                w->eof = ok3->reply.eof;
                memcpy(verf, ok3->cookieverf, sizeof(verf));
            }
            xdr_free(XP(xdr_READDIR3res), &r);
        }
        CHECK_EQ_INT(xdr_getpos(&x), len);
        xdr_destroy(&x);
        free(buf);
        if (w->status != NFS3_OK || w->eof)
            return;
        if (entries == 0) {
            w->bad++; /* no progress and no eof: a client would loop */
            return;
        }
    }
}

static void check_complete(const struct walk *w, const char *what)
{
    unsigned missing = 0, twice = 0;
    for (unsigned i = 0; i < MANY_FILES; i++) {
        missing += w->seen[i] == 0;
        twice += w->seen[i] > 1;
    }
    if (w->status != NFS3_OK || !w->eof || missing || twice || w->bad || w->oversize ||
        w->dots != 2)
        fprintf(stderr,
                "  %s: status %d eof %d pages %u missing %u twice %u bad %u oversize %u "
                "dots %u\n",
                what, w->status, w->eof, w->pages, missing, twice, w->bad, w->oversize, w->dots);
    CHECK_EQ_INT(w->status, NFS3_OK);
    CHECK(w->eof);
    CHECK_EQ_INT(missing, 0);
    CHECK_EQ_INT(twice, 0);
    CHECK_EQ_INT(w->bad, 0);
    CHECK_EQ_INT(w->oversize, 0);
    CHECK_EQ_INT(w->dots, 2);
}

static void test_nfs_readdir(struct mnt_fixture *f)
{
    uint8_t dirfh[FHSIZE3 + 1];
    size_t fhlen;
    CHECK_EQ_INT(do_mnt(f, "/demo/many", "127.0.0.1", dirfh, &fhlen), MNT3_OK);
    if (fhlen != FH_SIZE)
        return;

    /* The table decodes and encodes every procedure; both READDIRs use the iterative encoder. */
    CHECK_EQ_INT(f->nfs_prog.nprocs, NFSPROC3_COMMIT + 1);
    for (uint32_t p = NFSPROC3_GETATTR; p < f->nfs_prog.nprocs; p++)
        CHECK(f->nfs_prog.procs[p].decode_args && f->nfs_prog.procs[p].encode_res);
    CHECK(f->nfs_prog.procs[NFSPROC3_READDIR].encode_res == XP(nfs3_xdr_readdir_res));
    CHECK(f->nfs_prog.procs[NFSPROC3_READDIRPLUS].encode_res == XP(nfs3_xdr_readdir_res));

    /* Small pages: many replies, each within maxcount, every name exactly once. */
    struct walk *w = malloc(sizeof(*w));
    walk_dir(f, dirfh, fhlen, true, 4096, "127.0.0.1", w);
    check_complete(w, "READDIRPLUS 4096");
    CHECK(w->pages > 5);
    uint8_t file_fh[FHSIZE3];
    size_t file_fhlen = w->file_fhlen;
    memcpy(file_fh, w->file_fh, sizeof(file_fh));
    walk_dir(f, dirfh, fhlen, false, 1024, "127.0.0.1", w);
    check_complete(w, "READDIR 1024");
    CHECK(w->pages > 5);
    /* One reply of 1 MiB holds the whole folder. */
    walk_dir(f, dirfh, fhlen, true, MIB, "127.0.0.1", w);
    check_complete(w, "READDIRPLUS 1M");
    CHECK_EQ_INT(w->pages, 1);
    walk_dir(f, dirfh, fhlen, false, MIB, "::1", w);
    check_complete(w, "READDIR 1M");
    CHECK_EQ_INT(w->pages, 1);
    /* A client asking for more than we serve gets at most NFS3_MAX_IO. */
    walk_dir(f, dirfh, fhlen, true, 0xffffffffu, "127.0.0.1", w);
    check_complete(w, "READDIRPLUS 4G");

    /* Too small for the reply header, or for one entry: TOOSMALL, not an empty page. */
    walk_dir(f, dirfh, fhlen, true, (uint32_t)nfs3_readdir_fixed_size() - 4, "127.0.0.1", w);
    CHECK_EQ_INT(w->status, NFS3ERR_TOOSMALL);
    walk_dir(f, dirfh, fhlen, true, (uint32_t)nfs3_readdir_fixed_size() + 16, "127.0.0.1", w);
    CHECK_EQ_INT(w->status, NFS3ERR_TOOSMALL);
    CHECK_EQ_INT(w->bad, 0);

    /* A file's handle: NOTDIR.  An altered handle: BADHANDLE.  A stranger: ACCES. */
    CHECK_EQ_INT(file_fhlen, FH_SIZE);
    if (file_fhlen == FH_SIZE) {
        walk_dir(f, file_fh, file_fhlen, false, 4096, "127.0.0.1", w);
        CHECK_EQ_INT(w->status, NFS3ERR_NOTDIR);
        walk_dir(f, file_fh, file_fhlen, true, 4096, "127.0.0.1", w);
        CHECK_EQ_INT(w->status, NFS3ERR_NOTDIR);
    }
    dirfh[FH_SIZE - 1] ^= 0x40;
    walk_dir(f, dirfh, fhlen, true, 4096, "127.0.0.1", w);
    CHECK_EQ_INT(w->status, NFS3ERR_BADHANDLE);
    dirfh[FH_SIZE - 1] ^= 0x40;
    walk_dir(f, dirfh, fhlen, false, 4096, "10.1.1.1", w);
    CHECK_EQ_INT(w->status, NFS3ERR_ACCES);
    free(w);
}

/* The mount-list file's lines: what is written reads back; damaged lines are refused. */
static void test_rmtab_lines(void)
{
    char line[8192], host[48], path[MNT_RMTAB_PATH_MAX + 1];
    int64_t since;
    const char *odd = "/demo/a b\\c\n\x7f\x01\xc3\xa9";
    CHECK_EQ_INT(mnt_rmtab_format("10.0.2.15", 1700000000, odd, line, sizeof(line)), 0);
    CHECK(strchr(line, ' ') != NULL && strchr(line, '\n') == line + strlen(line) - 1);
    CHECK_EQ_INT(strcmp(line, "10.0.2.15 1700000000 /demo/a\\040b\\134c\\012\\177\\001\xc3\xa9\n"), 0);
    CHECK_EQ_INT(mnt_rmtab_parse(line, strlen(line) - 1, host, &since, path), 0);
    CHECK_EQ_INT(strcmp(host, "10.0.2.15"), 0);
    CHECK_EQ_INT(since, 1700000000);
    CHECK_EQ_INT(strcmp(path, odd), 0);
    CHECK_EQ_INT(mnt_rmtab_format("::1", 5, "/x", line, sizeof(line)), 0);
    CHECK_EQ_INT(mnt_rmtab_parse(line, strlen(line) - 1, host, &since, path), 0);
    CHECK(strcmp(host, "::1") == 0 && since == 5 && strcmp(path, "/x") == 0);
    CHECK_EQ_INT(mnt_rmtab_format("::1", 5, "/x", line, 8), ENAMETOOLONG);
    static const char *const bad[] = {
        "",                                /* empty */
        "10.0.0.1 5",                      /* no path */
        "10.0.0.1 5 ",                     /* empty path */
        "not-an-address 5 /x",             /* host */
        "10.0.0.1 x5 /x",                  /* since */
        "10.0.0.1 1234567890123456789 /x", /* since too long */
        "10.0.0.1 5 /a b",                 /* a raw space */
        "10.0.0.1 5 /a\\000",              /* NUL */
        "10.0.0.1 5 /a\\400",              /* over a byte */
        "10.0.0.1 5 /a\\12",               /* cut escape */
        "10.0.0.1 5 /a\\9zz",              /* not octal */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_EQ_INT(mnt_rmtab_parse(bad[i], strlen(bad[i]), host, &since, path), EINVAL);
    /* A path of MNTPATHLEN bytes is the longest. */
    char lp[MNT_RMTAB_PATH_MAX + 2];
    memset(lp, 'a', sizeof(lp) - 1);
    lp[sizeof(lp) - 1] = '\0';
    CHECK_EQ_INT(mnt_rmtab_format("10.0.0.1", 5, lp, line, sizeof(line)), 0);
    CHECK_EQ_INT(mnt_rmtab_parse(line, strlen(line) - 1, host, &since, path), EINVAL);
    lp[MNT_RMTAB_PATH_MAX] = '\0';
    CHECK_EQ_INT(mnt_rmtab_format("10.0.0.1", 5, lp, line, sizeof(line)), 0);
    CHECK_EQ_INT(mnt_rmtab_parse(line, strlen(line) - 1, host, &since, path), 0);
}

static void test_mount(void)
{
    struct mnt_fixture f;
    int rc = fixture_open(&f);
    CHECK_EQ_INT(rc, 0);
    if (rc) {
        fixture_close(&f);
        return;
    }
    CHECK_EQ_INT(f.prog.prog, MOUNT_PROGRAM);
    CHECK_EQ_INT(f.prog.vers, MOUNT_V3);
    CHECK(f.prog.nprocs > MOUNTPROC3_EXPORT);

    char text[4096];
    do_export(&f, text, sizeof(text));
    CHECK(strcmp(text, "/demo:127.0.0.0/8,::1/128;/archive:10.0.0.0/8,192.168.1.0/24;") == 0);
    if (strcmp(text, "/demo:127.0.0.0/8,::1/128;/archive:10.0.0.0/8,192.168.1.0/24;") != 0)
        fprintf(stderr, "  EXPORT: %s\n", text);

    /* The export's root: a handle that names the root inode. */
    const struct export_set *set = export_set_get(f.exports);
    const struct export *demo = export_by_path(set, "/demo");
    CHECK(demo != NULL);
    uint64_t root_ino = demo ? demo->root.ino : 0;
    struct meta_export demo_m = demo ? demo->m : (struct meta_export){0};
    export_set_put(f.exports, set);

    uint8_t fh[FHSIZE3 + 1], fh2[FHSIZE3 + 1];
    size_t fhlen, fhlen2;
    CHECK_EQ_INT(do_mnt(&f, "/demo", "127.0.0.1", fh, &fhlen), MNT3_OK);
    CHECK_EQ_INT(fhlen, FH_SIZE);
    CHECK(root_ino != 0 && fh_ino(&f, fh, fhlen) == root_ino);
    /* A trailing slash names the same directory, and the handle is the same bytes. */
    CHECK_EQ_INT(do_mnt(&f, "/demo/", "127.0.0.1", fh2, &fhlen2), MNT3_OK);
    CHECK(fhlen2 == fhlen && memcmp(fh, fh2, fhlen) == 0);
    /* IPv6 loopback is in the list too. */
    CHECK_EQ_INT(do_mnt(&f, "/demo", "::1", fh2, &fhlen2), MNT3_OK);
    CHECK(fhlen2 == fhlen && memcmp(fh, fh2, fhlen) == 0);

    /* A folder below the export: the handle of that folder. */
    struct inode_attr sub, deeper;
    CHECK_EQ_INT(inode_lookup(f.inodes, &demo_m, root_ino, "sub", &sub, NULL), 0);
    CHECK_EQ_INT(inode_lookup(f.inodes, &demo_m, sub.ino, "deeper", &deeper, NULL), 0);
    CHECK_EQ_INT(do_mnt(&f, "/demo/sub", "127.0.0.1", fh, &fhlen), MNT3_OK);
    CHECK(fh_ino(&f, fh, fhlen) == sub.ino && sub.ino != root_ino);
    CHECK_EQ_INT(do_mnt(&f, "/demo//sub/", "127.0.0.1", fh2, &fhlen2), MNT3_OK);
    CHECK(fhlen2 == fhlen && memcmp(fh, fh2, fhlen) == 0);
    CHECK_EQ_INT(do_mnt(&f, "/demo/sub/deeper", "127.0.0.1", fh, &fhlen), MNT3_OK);
    CHECK(fh_ino(&f, fh, fhlen) == deeper.ino && deeper.ino != sub.ino);

    /* What a user gets wrong. */
    CHECK_EQ_INT(do_mnt(&f, "/demo/missing", "127.0.0.1", fh, &fhlen), MNT3ERR_NOENT);
    CHECK_EQ_INT(do_mnt(&f, "/demo/sub/missing", "127.0.0.1", fh, &fhlen), MNT3ERR_NOENT);
    CHECK_EQ_INT(do_mnt(&f, "/nope", "127.0.0.1", fh, &fhlen), MNT3ERR_NOENT);
    CHECK_EQ_INT(do_mnt(&f, "/demox", "127.0.0.1", fh, &fhlen), MNT3ERR_NOENT);
    /* "/demosub" is not "/demo" + "sub", though that folder exists. */
    CHECK_EQ_INT(do_mnt(&f, "/demosub", "127.0.0.1", fh, &fhlen), MNT3ERR_NOENT);
    CHECK_EQ_INT(do_mnt(&f, "/dem", "127.0.0.1", fh, &fhlen), MNT3ERR_NOENT);
    CHECK_EQ_INT(do_mnt(&f, "", "127.0.0.1", fh, &fhlen), MNT3ERR_NOENT);
    CHECK_EQ_INT(do_mnt(&f, "/demo/file.txt", "127.0.0.1", fh, &fhlen), MNT3ERR_NOTDIR);
    CHECK_EQ_INT(do_mnt(&f, "/demo/file.txt/x", "127.0.0.1", fh, &fhlen), MNT3ERR_NOTDIR);
    char longname[300];
    snprintf(longname, sizeof(longname), "/demo/%0256d", 0);
    CHECK_EQ_INT(do_mnt(&f, longname, "127.0.0.1", fh, &fhlen), MNT3ERR_NAMETOOLONG);
    CHECK_EQ_INT(fhlen, 0);

    /* Client lists: /archive admits 10/8 only. */
    CHECK_EQ_INT(do_mnt(&f, "/archive", "127.0.0.1", fh, &fhlen), MNT3ERR_ACCES);
    CHECK_EQ_INT(do_mnt(&f, "/archive", "::1", fh, &fhlen), MNT3ERR_ACCES);
    CHECK_EQ_INT(do_mnt(&f, "/archive", "10.9.8.7", fh, &fhlen), MNT3_OK);
    CHECK(fh_ino(&f, fh, fhlen) != 0 && fh_ino(&f, fh, fhlen) != root_ino);
    CHECK_EQ_INT(do_mnt(&f, "/demo", "10.9.8.7", fh, &fhlen), MNT3ERR_ACCES);

    /* DUMP lists what was mounted, once per (host, path), and nothing that was refused. */
    unsigned n;
    do_dump(&f, text, sizeof(text), &n);
    CHECK(dump_has(text, "127.0.0.1 /demo"));
    CHECK(dump_has(text, "127.0.0.1 /demo/sub"));
    CHECK(dump_has(text, "127.0.0.1 /demo/sub/deeper"));
    CHECK(dump_has(text, "::1 /demo"));
    CHECK(dump_has(text, "10.9.8.7 /archive"));
    CHECK(!dump_has(text, "127.0.0.1 /archive"));
    CHECK(!dump_has(text, "127.0.0.1 /demo/missing"));
    CHECK(!dump_has(text, "10.9.8.7 /demo"));
    CHECK_EQ_INT(n, 7); /* /demo, /demo/, /demo/sub, /demo//sub/, deeper, ::1, 10.9.8.7 */
    CHECK_EQ_INT(do_mnt(&f, "/demo", "127.0.0.1", fh, &fhlen), MNT3_OK);
    do_dump(&f, text, sizeof(text), &n);
    CHECK_EQ_INT(n, 7);

    /* UMNT removes that entry only; UMNTALL removes the host's entries. */
    uint8_t *buf;
    size_t len;
    CHECK(mnt_call(&f, MOUNTPROC3_UMNT, "/demo", "127.0.0.1", &buf, &len));
    CHECK_EQ_INT(len, 0);
    free(buf);
    do_dump(&f, text, sizeof(text), &n);
    CHECK(!dump_has(text, "127.0.0.1 /demo"));
    CHECK(dump_has(text, "127.0.0.1 /demo/sub"));
    CHECK(dump_has(text, "::1 /demo"));
    CHECK_EQ_INT(n, 6);
    CHECK(mnt_call(&f, MOUNTPROC3_UMNTALL, NULL, "127.0.0.1", &buf, &len));
    free(buf);
    do_dump(&f, text, sizeof(text), &n);
    CHECK_EQ_INT(n, 2);
    CHECK(dump_has(text, "::1 /demo"));
    CHECK(dump_has(text, "10.9.8.7 /archive"));
    CHECK(mnt_call(&f, MOUNTPROC3_NULL, NULL, "127.0.0.1", &buf, &len));
    free(buf);

    /* The mount list survives a restart (state_dir/rmtab), with when each was mounted. */
    struct mnt_listed *ml;
    size_t nl;
    CHECK_EQ_INT(mnt_list_get(f.mnt, &ml, &nl), 0);
    CHECK_EQ_INT(nl, 2);
    int64_t since0 = nl ? ml[0].since : 0;
    CHECK(since0 > 1600000000);
    mnt_list_free(ml, nl);
    mnt_server_destroy(f.mnt);
    f.mnt = mnt_server_create(f.exports, f.key, f.inodes, f.conf->server.state_dir);
    CHECK(f.mnt != NULL);
    mnt_program(f.mnt, &f.prog);
    do_dump(&f, text, sizeof(text), &n);
    CHECK_EQ_INT(n, 2);
    CHECK(dump_has(text, "::1 /demo"));
    CHECK(dump_has(text, "10.9.8.7 /archive"));
    CHECK_EQ_INT(mnt_list_get(f.mnt, &ml, &nl), 0);
    CHECK(nl == 2 && (ml[0].since == since0 || ml[1].since == since0));
    mnt_list_free(ml, nl);

    /* An IPv4 client on a dual-stack socket arrives as ::ffff:a.b.c.d. */
    CHECK_EQ_INT(do_mnt(&f, "/demo", "::ffff:127.0.0.1", fh, &fhlen), MNT3_OK);
    CHECK_EQ_INT(do_mnt(&f, "/archive", "::ffff:10.1.1.1", fh, &fhlen), MNT3_OK);
    CHECK_EQ_INT(do_mnt(&f, "/archive", "::ffff:127.0.0.1", fh, &fhlen), MNT3ERR_ACCES);
    /* ".." never leads out of the export. */
    CHECK_EQ_INT(do_mnt(&f, "/demo/..", "127.0.0.1", fh, &fhlen), MNT3_OK);
    CHECK(fh_ino(&f, fh, fhlen) == root_ino);
    CHECK_EQ_INT(do_mnt(&f, "/demo/sub/../..", "127.0.0.1", fh, &fhlen), MNT3_OK);
    CHECK(fh_ino(&f, fh, fhlen) == root_ino);

    test_nfs_readdir(&f);

    /* Reload with /demo for 10/8 only: loopback is refused, 10.x gets the same handle. */
    CHECK_EQ_INT(do_mnt(&f, "/demo", "127.0.0.1", fh2, &fhlen2), MNT3_OK);
    CHECK_EQ_INT(reload_exports(&f, exports_v2), 0);
    CHECK_EQ_INT(do_mnt(&f, "/demo", "127.0.0.1", fh, &fhlen), MNT3ERR_ACCES);
    CHECK_EQ_INT(do_mnt(&f, "/demo", "::1", fh, &fhlen), MNT3ERR_ACCES);
    CHECK_EQ_INT(do_mnt(&f, "/demo", "10.1.2.3", fh, &fhlen), MNT3_OK);
    CHECK(fhlen == fhlen2 && memcmp(fh, fh2, fhlen) == 0);
    CHECK_EQ_INT(do_mnt(&f, "/archive", "10.9.8.7", fh, &fhlen), MNT3ERR_NOENT);
    do_export(&f, text, sizeof(text));
    CHECK(strcmp(text, "/demo:10.0.0.0/8;") == 0);

    fixture_close(&f);
}

int main(void)
{
    log_init("test_nfs3_xdr", 1, LOG_WARNING);
    scratch = malloc(SCRATCH);
    if (!scratch)
        return 2;

    test_fh_only();
    test_setattr();
    test_lookup_access_read();
    test_write_commit();
    test_create_family();
    test_readdir_args();
    test_mntdirpath();
    test_bounds();
    test_truncation();
    test_readdir();
    test_stat();

    snprintf(tmp, sizeof(tmp), "%s/test_nfs3_xdr.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 2;
    }
    test_rmtab_lines();
    test_mount();
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp);

    free(scratch);
    return TEST_DONE();
}
