"""oncrpc.py - ONC RPC over TCP by hand, for the tests that need control a
client library does not give (badrpc.py, access.py, drc.py): record
marking, AUTH_SYS, XDR opaques, replies, calls from a chosen source address
and port with a chosen XID, and the "ok - ..." / "N passed, N failed" lines
every test prints.

    rpc(port, prog, vers, proc, args, src=, sport=, uid=, xid=, abort=)
        one call on a fresh connection: (accept_stat or None, result, reply)
    mnt(mount_port, path), nfs(nfs_port, proc, fh, extra)
        MOUNT3 MNT and an NFS3 call taking a handle first
"""
import random
import socket
import struct

passed = failed = 0
_xid = random.randrange(1 << 20, 1 << 30)
NFS_PROG, NFS_VERS = 100003, 3
MOUNT_PROG, MOUNT_VERS = 100005, 3


def result(name, good, detail=""):
    """Count and print one check."""
    global passed, failed
    if good:
        passed += 1
        print(f"ok - {name}")
    else:
        failed += 1
        print(f"not ok - {name}: {detail}")


def done(name):
    """Print the closing line; the exit status."""
    print(f"{name}: {passed} passed, {failed} failed")
    return 1 if failed else 0


def next_xid():
    global _xid
    _xid += 1
    return _xid


def auth_none():
    return struct.pack(">II", 0, 0)


def auth_sys(uid=0, gid=0, gids=(), machine=b"host"):
    pad = (4 - len(machine) % 4) % 4
    body = struct.pack(">I", 1) + struct.pack(">I", len(machine)) + machine + b"\0" * pad
    body += struct.pack(">III", uid, gid, len(gids)) + b"".join(struct.pack(">I", g) for g in gids)
    return struct.pack(">II", 1, len(body)) + body


def xdr_opaque(b):
    return struct.pack(">I", len(b)) + b + b"\0" * ((4 - len(b) % 4) % 4)


def call_body(xid, prog, vers, proc, cred=None, args=b"", rpcvers=2):
    """A CALL message: header, credential (AUTH_NONE if None), null verifier, args."""
    cred = cred if cred is not None else auth_none()
    return struct.pack(">IIIIII", xid, 0, rpcvers, prog, vers, proc) + cred + auth_none() + args


def record(body, frags=1):
    """body in record marking, split into frags fragments."""
    out = b""
    step = max(1, len(body) // frags)
    chunks = [body[i:i + step] for i in range(0, len(body), step)] or [b""]
    for i, c in enumerate(chunks):
        last = 0x80000000 if i == len(chunks) - 1 else 0
        out += struct.pack(">I", last | len(c)) + c
    return out


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def read_reply(s):
    """One record (all its fragments)."""
    body = b""
    while True:
        (mark,) = struct.unpack(">I", recv_exact(s, 4))
        body += recv_exact(s, mark & 0x7FFFFFFF)
        if mark & 0x80000000:
            return body


def parse(body):
    """(xid, 'accepted', accept_stat, rest) or (xid, 'denied', reject_stat, rest)"""
    x, mtype, rstat = struct.unpack(">III", body[:12])
    assert mtype == 1
    if rstat == 0:
        flavor, vlen = struct.unpack(">II", body[12:20])
        off = 20 + vlen + (4 - vlen % 4) % 4
        (astat,) = struct.unpack(">I", body[off:off + 4])
        return x, "accepted", astat, body[off + 4:]
    (rej,) = struct.unpack(">I", body[12:16])
    return x, "denied", rej, body[16:]


def connect(port, src="127.0.0.1", sport=0, timeout=10):
    """A TCP connection to 127.0.0.1:port from src:sport (0: any port)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((src, sport))
    s.connect(("127.0.0.1", port))
    return s


def abort(s):
    """Close with a reset, as a client giving up on a connection does: no
    TIME_WAIT, so the same source port can connect again at once."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def rpc(port, prog, vers, proc, args, src="127.0.0.1", sport=0, uid=0, xid=None, abort_after=False):
    """One call on a fresh connection from src:sport with AUTH_SYS uid:uid.
    (accept_stat or None when denied, result bytes, the whole reply)."""
    s = connect(port, src, sport)
    try:
        body = call_body(xid if xid is not None else next_xid(), prog, vers, proc,
                         auth_sys(uid, uid), args)
        s.sendall(record(body))
        rep = read_reply(s)
    finally:
        if abort_after:
            abort(s)
        else:
            s.close()
    _, kind, stat, rest = parse(rep)
    if kind == "denied":
        return None, rest, rep
    return stat, rest, rep


def mnt(mount_port, path, **kw):
    """MOUNT3 MNT: (status, file handle or None)."""
    st, res, _ = rpc(mount_port, MOUNT_PROG, MOUNT_VERS, 1, xdr_opaque(path.encode()), **kw)
    if st != 0:
        return ("rpc", st), None
    (status,) = struct.unpack(">I", res[:4])
    if status != 0:
        return status, None
    (n,) = struct.unpack(">I", res[4:8])
    return 0, res[8:8 + n]


def nfs(nfs_port, proc, fh, extra=b"", **kw):
    """An NFS3 call taking a handle first: (nfsstat3, rest) or (('rpc', stat), b'')."""
    st, res, _ = rpc(nfs_port, NFS_PROG, NFS_VERS, proc, xdr_opaque(fh) + extra, **kw)
    if st != 0:
        return ("rpc", st), b""
    (status,) = struct.unpack(">I", res[:4])
    return status, res[4:]
