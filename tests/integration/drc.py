#!/usr/bin/env python3
"""drc.py NFS_PORT MOUNT_PORT - the duplicate request cache as the Linux
client meets it: a client that loses a connection reconnects from the same
source port and sends its call again with the same XID.  Against a running
bucketnfsd whose /demo is read-write:

  - a CREATE (GUARDED), REMOVE, RENAME and MKDIR answered, the connection
    reset, the call sent again from the same port: the first reply, byte
    for byte (run again they would be EXIST / NOENT);
  - a REMOVE whose connection is reset before its reply is read: sent again
    (and again while the server holds it as in progress), it answers
    NFS3_OK once, never NOENT;
  - the same XID and arguments from another port: a new call.

Prints "N passed, N failed"; exits non-zero on failure."""
import socket
import struct
import sys
import time

import oncrpc
from oncrpc import abort, connect, done, read_reply, record, result, xdr_opaque

NFS_PORT, MOUNT_PORT = int(sys.argv[1]), int(sys.argv[2])
CREATE, MKDIR, REMOVE, RENAME, LOOKUP = 8, 9, 12, 14, 3
OK, NOENT, EXIST = 0, 2, 17


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def diropargs(fh, name):
    return xdr_opaque(fh) + xdr_opaque(name.encode())


def sattr_mode(mode):
    # set_mode3 (1, mode), then uid, gid, size, atime, mtime unset
    return struct.pack(">II", 1, mode) + struct.pack(">IIIII", 0, 0, 0, 0, 0)


def call(proc, args, sport, xid):
    """proc(args) from 127.0.0.1:sport with XID xid on a new connection,
    reset after the reply: (nfsstat3, whole reply)."""
    st, res, rep = oncrpc.rpc(NFS_PORT, oncrpc.NFS_PROG, oncrpc.NFS_VERS, proc, args,
                              sport=sport, xid=xid, abort_after=True)
    if st != 0:
        return ("rpc", st), rep
    return struct.unpack(">I", res[:4])[0], rep


def lookup(dirfh, name):
    st, _ = oncrpc.nfs(NFS_PORT, LOOKUP, dirfh, xdr_opaque(name.encode()))
    return st


def twice(what, proc, args, before=OK):
    """proc sent, reset, sent again from the same port with the same XID."""
    port, xid = free_port(), oncrpc.next_xid()
    st1, rep1 = call(proc, args, port, xid)
    result(f"{what}", st1 == before, st1)
    st2, rep2 = call(proc, args, port, xid)
    result(f"{what} again after a reconnect from the same port: the first reply, byte for byte",
           rep2 == rep1, f"status {st2}, {len(rep2)} bytes vs {len(rep1)}")
    return port, xid


st, root = oncrpc.mnt(MOUNT_PORT, "/demo")
result("MNT /demo", st == 0 and root, st)
if not root:
    sys.exit(done("drc.py"))

create = diropargs(root, "drc-file") + struct.pack(">I", 1) + sattr_mode(0o644)  # GUARDED
port, xid = twice("CREATE GUARDED drc-file", CREATE, create)
st, _ = call(CREATE, create, free_port(), xid)
result("the same CREATE (XID, arguments) from another port is a new call: NFS3ERR_EXIST",
       st == EXIST, st)

mkdir = diropargs(root, "drc-dir") + sattr_mode(0o755)
twice("MKDIR drc-dir", MKDIR, mkdir)

rename = diropargs(root, "drc-file") + diropargs(root, "drc-moved")
twice("RENAME drc-file drc-moved", RENAME, rename)
result("drc-moved is there, drc-file is not",
       lookup(root, "drc-moved") == OK and lookup(root, "drc-file") == NOENT, "")

remove = diropargs(root, "drc-moved")
twice("REMOVE drc-moved", REMOVE, remove)
result("drc-moved is gone", lookup(root, "drc-moved") == NOENT, "")

# A lost reply: the connection is reset right after the call is sent.
st, _ = call(CREATE, diropargs(root, "drc-lost") + struct.pack(">I", 1) + sattr_mode(0o644),
             free_port(), oncrpc.next_xid())
result("CREATE drc-lost", st == OK, st)
port, xid = free_port(), oncrpc.next_xid()
remove = diropargs(root, "drc-lost")
s = connect(NFS_PORT, sport=port)
s.sendall(record(oncrpc.call_body(xid, oncrpc.NFS_PROG, oncrpc.NFS_VERS, REMOVE,
                                  oncrpc.auth_sys(), remove)))
abort(s)
got = None
for attempt in range(10):  # the server drops a retransmission while the call is in progress
    s = connect(NFS_PORT, sport=port, timeout=2)
    try:
        s.sendall(record(oncrpc.call_body(xid, oncrpc.NFS_PROG, oncrpc.NFS_VERS, REMOVE,
                                          oncrpc.auth_sys(), remove)))
        _, kind, astat, rest = oncrpc.parse(read_reply(s))
        got = struct.unpack(">I", rest[:4])[0] if kind == "accepted" and astat == 0 else (kind, astat)
        break
    except (socket.timeout, ConnectionError):
        time.sleep(0.2)
    finally:
        abort(s)
print(f"# the lost REMOVE was answered after {attempt + 1} sends")
result("a REMOVE whose reply was lost, sent again from the same port: NFS3_OK (not NOENT)",
       got == OK, f"{got} after {attempt + 1} tries")
result("drc-lost is gone", lookup(root, "drc-lost") == NOENT, "")

sys.exit(done("drc.py"))
