/*
 * nfs3_err.c - errno -> nfsstat3, in one place.
 *
 * Every layer below nfsd returns 0 or a positive errno; the NFS handlers
 * turn it into the status the client sees here and nowhere else.
 * EAGAIN from the object store means a temporary failure that outlived the
 * backend's retries: the client is told NFS3ERR_JUKEBOX and retries later
 * (RFC 1813 section 2.6), which a GPU job survives, where EIO would fail it.
 */
#include "nfsd/nfs3.h"

#include <errno.h>

#include "nfs3_prot.h"

int nfs3_stat(int err)
{
    switch (err) {
    case 0:            return NFS3_OK;
    case EPERM:        return NFS3ERR_PERM;
    case ENOENT:       return NFS3ERR_NOENT;
    case EIO:          return NFS3ERR_IO;
    case ENXIO:        return NFS3ERR_NXIO;
    case EACCES:       return NFS3ERR_ACCES;
    case EEXIST:       return NFS3ERR_EXIST;
    case EXDEV:        return NFS3ERR_XDEV;
    case ENODEV:       return NFS3ERR_NODEV;
    case ENOTDIR:      return NFS3ERR_NOTDIR;
    case EISDIR:       return NFS3ERR_ISDIR;
    case EINVAL:       return NFS3ERR_INVAL;
    case EFBIG:        return NFS3ERR_FBIG;
    case ENOSPC:       return NFS3ERR_NOSPC;
    case EROFS:        return NFS3ERR_ROFS;
    case EMLINK:       return NFS3ERR_MLINK;
    case ENAMETOOLONG: return NFS3ERR_NAMETOOLONG;
    case ENOTEMPTY:    return NFS3ERR_NOTEMPTY;
    case EDQUOT:       return NFS3ERR_DQUOT;
    case ESTALE:       return NFS3ERR_STALE;
    case EBADMSG:      return NFS3ERR_BADHANDLE;  /* fh_decode: forged or altered handle */
    case ENOTSUP:      return NFS3ERR_NOTSUPP;
    case EAGAIN:       return NFS3ERR_JUKEBOX;    /* store busy or unreachable: retry */
    case ETIMEDOUT:    return NFS3ERR_JUKEBOX;
    case ENOMEM:       return NFS3ERR_SERVERFAULT;
    default:           return NFS3ERR_IO;
    }
}
