#!/usr/bin/env python3
"""access.py NFS_PORT MOUNT_PORT - access control against a running bucketnfsd
whose exports.conf is access.sh's:

  /open    clients 127.0.0.1 (ro) and { 127.0.0.3: rw, squash all }
  /secure  clients 127.0.0.0/8, secure = true

Raw ONC RPC from chosen source addresses (127.0.0.1, 127.0.0.2, 127.0.0.3)
and ports: a client outside `clients` is refused at MNT and when it replays
a valid handle; the most specific `clients` entry decides access and
squashing; a `secure` export refuses an unprivileged source port and serves
a privileged one.  Prints "N passed, N failed"; exits non-zero on failure."""
import struct
import sys

import oncrpc
from oncrpc import done, result, xdr_opaque

NFS_PORT, MOUNT_PORT = int(sys.argv[1]), int(sys.argv[2])


def mnt(path, **kw):
    return oncrpc.mnt(MOUNT_PORT, path, **kw)


def nfs(proc, fh, extra=b"", **kw):
    return oncrpc.nfs(NFS_PORT, proc, fh, extra, **kw)


def lookup(dirfh, name, **kw):
    st, rest = nfs(3, dirfh, xdr_opaque(name.encode()), **kw)
    if st != 0:
        return st, None
    (n,) = struct.unpack(">I", rest[:4])
    return 0, rest[4:4 + n]


def fsstat_fbytes(fh, **kw):
    st, rest = nfs(18, fh, **kw)
    if st != 0:
        return st, None
    (follows,) = struct.unpack(">I", rest[:4])
    off = 4 + (84 if follows else 0)
    tbytes, fbytes = struct.unpack(">QQ", rest[off:off + 16])
    return 0, fbytes


def access_read(fh, uid, **kw):
    st, rest = nfs(4, fh, struct.pack(">I", 1), uid=uid, **kw)  # ACCESS3_READ
    if st != 0:
        return st, None
    (follows,) = struct.unpack(">I", rest[:4])
    off = 4 + (84 if follows else 0)
    (got,) = struct.unpack(">I", rest[off:off + 4])
    return 0, got & 1


NFS3ERR_ACCES, MNT3ERR_ACCES, AUTH_ERROR_DENIED = 13, 13, None

# /open from its own client: a handle, read-only
st, root = mnt("/open")
result("MNT /open from 127.0.0.1 (listed)", st == 0 and root, st)
st, root2 = mnt("/open", src="127.0.0.2")
result("MNT /open from 127.0.0.2 (not listed) is MNT3ERR_ACCES", st == MNT3ERR_ACCES, st)
if root:
    st, _ = nfs(1, root)
    result("GETATTR from 127.0.0.1", st == 0, st)
    st, _ = nfs(1, root, src="127.0.0.2")
    result("the same handle replayed from 127.0.0.2 is NFS3ERR_ACCES", st == NFS3ERR_ACCES, st)
    st, fb = fsstat_fbytes(root)
    result("127.0.0.1 gets the export's access (ro: no free bytes)", st == 0 and fb == 0, (st, fb))
    st, fb = fsstat_fbytes(root, src="127.0.0.3")
    result("127.0.0.3's own entry makes it rw (free bytes)", st == 0 and fb and fb > 0, (st, fb))
    st, fh = lookup(root, "mine.txt")
    result("LOOKUP mine.txt (0600, owner 1000)", st == 0 and fh, st)
    if fh:
        st, ok = access_read(fh, 1000)
        result("uid 1000 from 127.0.0.1 may read its 0600 file", st == 0 and ok == 1, (st, ok))
        st, ok = access_read(fh, 1000, src="127.0.0.3")
        result("uid 1000 from 127.0.0.3 (squash all) may not", st == 0 and ok == 0, (st, ok))
        st, ok = access_read(fh, 0)
        result("root from 127.0.0.1 is squashed (root squash): may not", st == 0 and ok == 0,
                (st, ok))

# /secure: privileged source ports only
st, _ = mnt("/secure")
result("MNT /secure from an unprivileged port is MNT3ERR_ACCES", st == MNT3ERR_ACCES, st)
st, sroot = mnt("/secure", sport=812)
result("MNT /secure from port 812", st == 0 and sroot, st)
if sroot:
    st, _ = nfs(1, sroot, sport=813)
    result("GETATTR on /secure from port 813", st == 0, st)
    st, _ = nfs(1, sroot)
    result("GETATTR on /secure from an unprivileged port is NFS3ERR_ACCES", st == NFS3ERR_ACCES,
           st)

sys.exit(done("access.py"))
