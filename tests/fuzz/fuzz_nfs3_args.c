/*
 * fuzz_nfs3_args.c - libFuzzer over every NFS v3 and MOUNT v3 argument
 * decoder the server uses (WRITE's in-place one too).  The first byte picks the procedure, the rest is
 * the call body after the RPC header.  Decoding must never crash, read out
 * of bounds, or leak, whatever the bytes; whatever it allocated is freed
 * with xdr_free as the RPC layer does.
 */
#include <stdint.h>
#include <string.h>

#include "mount3_prot.h"
#include "nfs3_prot.h"
#include "nfsd/nfs3_xdr.h"

struct dec {
    xdrproc_t fn;
    size_t size;
};

#define D(t) {(xdrproc_t)xdr_##t, sizeof(t)}

static const struct dec decoders[] = {
    D(GETATTR3args),  D(SETATTR3args), D(LOOKUP3args),      D(ACCESS3args),
    D(READLINK3args), D(READ3args),    D(WRITE3args),       D(CREATE3args),
    D(MKDIR3args),    D(SYMLINK3args), D(MKNOD3args),       D(REMOVE3args),
    D(RENAME3args),   D(LINK3args),    D(READDIR3args),     D(READDIRPLUS3args),
    D(FSSTAT3args),   D(FSINFO3args),  D(PATHCONF3args),    D(COMMIT3args),
    D(mntdirpath),
    {(xdrproc_t)nfs3_xdr_write_args, sizeof(WRITE3args)}, /* what the server decodes WRITE with */
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const struct dec *d = &decoders[data[0] % (sizeof(decoders) / sizeof(decoders[0]))];
    union {
        WRITE3args w;
        SETATTR3args s;
        READDIRPLUS3args r;
        char *path;
        char pad[512];
    } args;
    memset(&args, 0, sizeof(args));
    XDR x;
    xdrmem_create(&x, (char *)data + 1, (u_int)(size - 1), XDR_DECODE);
    (void)d->fn(&x, &args);
    xdr_free(d->fn, (char *)&args);
    xdr_destroy(&x);
    return 0;
}
