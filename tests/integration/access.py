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
import socket
import struct
import sys

NFS_PORT, MOUNT_PORT = int(sys.argv[1]), int(sys.argv[2])
passed = failed = 0
xid = 0x7000


def result(name, good, detail=""):
    global passed, failed
    if good:
        passed += 1
        print(f"ok - {name}")
    else:
        failed += 1
        print(f"not ok - {name}: {detail}")


def auth_sys(uid=0, gid=0):
    machine = b"acl"
    body = struct.pack(">II", 1, len(machine)) + machine + b"\0"
    body += struct.pack(">III", uid, gid, 0)
    return struct.pack(">II", 1, len(body)) + body


def xdr_opaque(b):
    return struct.pack(">I", len(b)) + b + b"\0" * ((4 - len(b) % 4) % 4)


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def rpc(port, prog, vers, proc, args, src="127.0.0.1", sport=0, uid=0):
    """One call on a fresh connection from src:sport; (accept_stat or None, result bytes)."""
    global xid
    xid += 1
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((src, sport))
    s.connect(("127.0.0.1", port))
    body = struct.pack(">IIIIII", xid, 0, 2, prog, vers, proc) + auth_sys(uid, uid)
    body += struct.pack(">II", 0, 0) + args
    s.sendall(struct.pack(">I", 0x80000000 | len(body)) + body)
    (mark,) = struct.unpack(">I", recv_exact(s, 4))
    rep = recv_exact(s, mark & 0x7FFFFFFF)
    s.close()
    rxid, mtype, stat = struct.unpack(">III", rep[:12])
    if stat != 0:  # MSG_DENIED
        return None, rep[12:]
    # verifier flavor + length (0), accept_stat
    (vlen,) = struct.unpack(">I", rep[16:20])
    off = 20 + vlen
    (astat,) = struct.unpack(">I", rep[off:off + 4])
    return astat, rep[off + 4:]


def mnt(path, **kw):
    """MOUNT3 MNT: (status, file handle or None)."""
    st, res = rpc(MOUNT_PORT, 100005, 3, 1, xdr_opaque(path.encode()), **kw)
    if st != 0:
        return ("rpc", st), None
    (status,) = struct.unpack(">I", res[:4])
    if status != 0:
        return status, None
    (n,) = struct.unpack(">I", res[4:8])
    return 0, res[8:8 + n]


def nfs(proc, fh, extra=b"", **kw):
    """An NFS3 call taking a handle first: (nfsstat3, rest) or (('rpc', stat), b'')."""
    st, res = rpc(NFS_PORT, 100003, 3, proc, xdr_opaque(fh) + extra, **kw)
    if st != 0:
        return ("rpc", st), b""
    (status,) = struct.unpack(">I", res[:4])
    return status, res[4:]


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

print(f"access.py: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
