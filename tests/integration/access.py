#!/usr/bin/env python3
"""access.py NFS_PORT MOUNT_PORT - access control against a running bucketnfsd
whose exports.conf is access.sh's:

  /open    clients 127.0.0.1 (ro) and { 127.0.0.3: rw, squash all }
  /secure  clients 127.0.0.0/8, secure = true
  /sqroot  rw, squash root, anon 4242:4343, dir_mode 0777
  /sqall   rw, squash all, anon 5151:5252, dir_mode 0777

Raw ONC RPC from chosen source addresses (127.0.0.1, 127.0.0.2, 127.0.0.3)
and ports: a client outside `clients` is refused at MNT and when it replays
a valid handle; the most specific `clients` entry decides access and
squashing; a `secure` export refuses an unprivileged source port and serves
a privileged one; what uid 0 (root squash) and any uid (squash all) create
belongs to the export's anon_uid:anon_gid, checked with GETATTR.  On
/sqroot, as three users: a sticky folder lets only the folder's and the
entry's owner remove or rename an entry (NFS3ERR_PERM otherwise), and a
WRITE clears set-user-id and (on a group-executable file) set-group-id.  Prints "N passed, N failed"; exits non-zero on failure."""
import random
import socket
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


def sattr_mode(mode):
    """sattr3: the mode set; uid, gid, size, times left alone."""
    return struct.pack(">II", 1, mode) + struct.pack(">IIIII", 0, 0, 0, 0, 0)


def new_entry(dirfh, name, uid, directory=False, **kw):
    """CREATE (UNCHECKED, 0644) or MKDIR (0755) as uid:uid; (status, handle)."""
    args = xdr_opaque(name.encode())
    args += sattr_mode(0o755) if directory else struct.pack(">I", 0) + sattr_mode(0o644)
    st, rest = nfs(9 if directory else 8, dirfh, args, uid=uid, **kw)
    if st != 0:
        return st, None
    follows, n = struct.unpack(">II", rest[:8])
    return (0, rest[8:8 + n]) if follows else ("no handle", None)


def owner(fh, **kw):
    """GETATTR: (status, (uid, gid))."""
    st, rest = nfs(1, fh, **kw)
    if st != 0:
        return st, None
    return 0, struct.unpack(">II", rest[12:20])  # fattr3: type, mode, nlink, uid, gid


def check_owner(export_root, what, name, uid, want, directory=False):
    st, fh = new_entry(export_root, name, uid, directory)
    kind = "MKDIR" if directory else "CREATE"
    result("%s %s as uid %d (%s)" % (kind, name, uid, what), st == 0 and fh, st)
    if fh:
        st, got = owner(fh)
        result("GETATTR: %s belongs to %d:%d" % (name, want[0], want[1]),
               st == 0 and got == want, (st, got))


def privileged_port():
    """A privileged source port no socket here holds now: other tests on this
    machine bind fixed ones too (a fixed port failed with EADDRINUSE)."""
    for p in random.sample(range(600, 1024), 424):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", p))
            return p
        except OSError:
            continue
        finally:
            s.close()
    raise OSError("no free privileged port")


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
port = privileged_port()
st, sroot = mnt("/secure", sport=port)
result("MNT /secure from privileged port %d" % port, st == 0 and sroot, st)
if sroot:
    port = privileged_port()
    st, _ = nfs(1, sroot, sport=port)
    result("GETATTR on /secure from privileged port %d" % port, st == 0, st)
    st, _ = nfs(1, sroot)
    result("GETATTR on /secure from an unprivileged port is NFS3ERR_ACCES", st == NFS3ERR_ACCES,
           st)

# Squashing of what is created: root squash maps uid 0 alone, squash all any uid.
st, sq = mnt("/sqroot")
result("MNT /sqroot", st == 0 and sq, st)
if sq:
    check_owner(sq, "root squash", "by-root", 0, (4242, 4343))
    check_owner(sq, "root squash", "dir-by-root", 0, (4242, 4343), directory=True)
    check_owner(sq, "root squash leaves it alone", "by-1000", 1000, (1000, 1000))
st, sa = mnt("/sqall")
result("MNT /sqall", st == 0 and sa, st)
if sa:
    check_owner(sa, "squash all", "by-root", 0, (5151, 5252))
    check_owner(sa, "squash all", "by-1000", 1000, (5151, 5252))
    check_owner(sa, "squash all", "dir-by-1234", 1234, (5151, 5252), directory=True)


def mode_of(fh):
    st, rest = nfs(1, fh)
    return struct.unpack(">I", rest[4:8])[0] & 0o7777 if st == 0 else st


def chmod(fh, mode, uid):
    return nfs(2, fh, sattr_mode(mode) + struct.pack(">I", 0), uid=uid)[0]  # no guard


def remove(dirfh, name, uid):
    return nfs(12, dirfh, xdr_opaque(name.encode()), uid=uid)[0]


def rename(dirfh, name, todir, toname, uid):
    return nfs(14, dirfh, xdr_opaque(name.encode()) + xdr_opaque(todir) + xdr_opaque(toname.encode()),
               uid=uid)[0]


def write(fh, data, uid):
    return nfs(7, fh, struct.pack(">QII", 0, len(data), 2) + xdr_opaque(data), uid=uid)[0]


NFS3ERR_PERM = 1
if sq:
    # A sticky folder of uid 1000, files of 2000 and 3000 in it.
    st, sdir = new_entry(sq, "sticky", 1000, directory=True)
    result("MKDIR sticky as uid 1000, chmod 1777", st == 0 and chmod(sdir, 0o1777, 1000) == 0
           and mode_of(sdir) == 0o1777, (st, mode_of(sdir) if sdir else None))
    if sdir:
        for n, u in (("of2000", 2000), ("of2000b", 2000), ("of3000", 3000), ("of2000c", 2000)):
            new_entry(sdir, n, u)
        result("sticky: uid 3000 REMOVE of uid 2000's file is NFS3ERR_PERM",
               remove(sdir, "of2000", 3000) == NFS3ERR_PERM)
        result("sticky: uid 3000 RENAME of uid 2000's file is NFS3ERR_PERM",
               rename(sdir, "of2000", sdir, "x", 3000) == NFS3ERR_PERM)
        result("sticky: uid 3000 RENAME of its file over uid 2000's is NFS3ERR_PERM",
               rename(sdir, "of3000", sdir, "of2000b", 3000) == NFS3ERR_PERM)
        result("sticky: uid 3000 RENAME out of it into the export's root is NFS3ERR_PERM too",
               rename(sdir, "of2000", sq, "stolen", 3000) == NFS3ERR_PERM)
        st_a, st_b = lookup(sdir, "of2000")[0], lookup(sdir, "of2000b")[0]
        result("and the files are still there", st_a == 0 and st_b == 0, (st_a, st_b))
        result("sticky: uid 3000 renames and removes its own file",
               rename(sdir, "of3000", sdir, "of3000-moved", 3000) == 0 and remove(sdir, "of3000-moved", 3000) == 0)
        result("sticky: uid 2000 removes its own file", remove(sdir, "of2000b", 2000) == 0)
        result("sticky: uid 1000, the folder's owner, removes uid 2000's file",
               remove(sdir, "of2000", 1000) == 0)
        result("sticky: a missing name is NFS3ERR_NOENT, not NFS3ERR_PERM", remove(sdir, "nothing", 3000) == 2)
        chmod(sdir, 0o777, 1000)
        result("without the sticky bit uid 3000 removes uid 2000's file", remove(sdir, "of2000c", 3000) == 0)
    # WRITE by a user clears set-user-id (and set-group-id with group execute).
    for name, mode, uid, want in (("suid-other", 0o6777, 3000, 0o777), ("sgid-owner", 0o2755, 2000, 0o755),
                                  ("sgid-noexec", 0o2666, 3000, 0o2666), ("suid-dir-mode", 0o4666, 3000, 0o666)):
        st, fh = new_entry(sq, name, 2000)
        if not fh:
            result("CREATE " + name, False, st)
            continue
        chmod(fh, mode, 2000)
        before = mode_of(fh)
        st = write(fh, b"written", uid)
        result("WRITE by uid %d to a %04o file of uid 2000 leaves it %04o" % (uid, before, want),
               st == 0 and before == mode and mode_of(fh) == want, (st, oct(before), oct(mode_of(fh))))

sys.exit(done("access.py"))
