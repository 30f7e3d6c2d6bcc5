#!/usr/bin/env python3
"""badrpc.py PORT - malformed and unusual ONC RPC input against a running
bucketnfsd (NFS port).  Each case must get the right RPC error or a closed
connection, and after each one a fresh client must still be served.
Prints "N passed, N failed"; exits non-zero on any failure."""
import os
import socket
import struct
import sys

from oncrpc import auth_sys, call_body, done, parse, read_reply, record, result

PORT = int(sys.argv[1])
NFS_PROG, NFS_VERS = 100003, 3
xid = 0x1000


def conn():
    return socket.create_connection(("127.0.0.1", PORT), timeout=10)


def call(prog=NFS_PROG, vers=NFS_VERS, proc=0, rpcvers=2, cred=None, args=b""):
    global xid
    xid += 1
    return xid, call_body(xid, prog, vers, proc, cred, args, rpcvers)


def one(body, frags=1):
    with conn() as s:
        s.sendall(record(body, frags))
        return parse(read_reply(s))


def server_alive(name):
    try:
        x, body = call()
        r = one(body)
        result(f"server still serves after: {name}", r[1] == "accepted" and r[2] == 0, str(r))
    except Exception as e:  # noqa: BLE001 - any failure here is the finding
        result(f"server still serves after: {name}", False, repr(e))


def closed_within(s, seconds=10):
    s.settimeout(seconds)
    try:
        while True:
            if not s.recv(4096):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


# 1. NULL works, also split over three fragments.
x, b = call()
r = one(b)
result("NULL call", r[0] == x and r[1] == "accepted" and r[2] == 0, str(r))
x, b = call()
r = one(b, frags=3)
result("NULL call in three fragments", r[0] == x and r[2] == 0, str(r))

# 2. Unknown program, version, procedure.
x, b = call(prog=123456)
r = one(b)
result("unknown program -> PROG_UNAVAIL", r[1] == "accepted" and r[2] == 1, str(r))
x, b = call(vers=2)
r = one(b)
ok = r[1] == "accepted" and r[2] == 2 and struct.unpack(">II", r[3][:8]) == (3, 3)
result("NFS v2 -> PROG_MISMATCH 3..3", ok, str(r))
x, b = call(proc=99)
r = one(b)
result("procedure 99 -> PROC_UNAVAIL", r[1] == "accepted" and r[2] == 3, str(r))

# 3. Garbage arguments: GETATTR whose handle length runs past the record.
x, b = call(proc=1, args=struct.pack(">I", 64) + b"\x01\x02")
r = one(b)
result("truncated GETATTR args -> GARBAGE_ARGS", r[1] == "accepted" and r[2] == 4, str(r))
x, b = call(proc=1, args=struct.pack(">I", 0xFFFFFFF0) + b"\0" * 8)
r = one(b)
result("handle length 4 GiB -> GARBAGE_ARGS", r[1] == "accepted" and r[2] == 4, str(r))

# 4. RPC version 3 -> RPC_MISMATCH 2..2.
x, b = call(rpcvers=3)
r = one(b)
ok = r[1] == "denied" and r[2] == 0 and struct.unpack(">II", r[3][:8]) == (2, 2)
result("rpcvers 3 -> RPC_MISMATCH 2..2", ok, str(r))

# 5. AUTH_SYS with 100 gids -> AUTH_ERROR / AUTH_BADCRED; 16 gids are fine.
x, b = call(cred=auth_sys(1000, 1000, gids=range(100)))
try:
    r = one(b)
    ok = r[1] == "denied" and r[2] == 1 and struct.unpack(">I", r[3][:4])[0] == 1
    result("AUTH_SYS with 100 gids -> AUTH_BADCRED", ok, str(r))
except ConnectionError as e:
    result("AUTH_SYS with 100 gids -> AUTH_BADCRED", False, repr(e))
x, b = call(cred=auth_sys(1000, 1000, gids=range(16)))
r = one(b)
result("AUTH_SYS with 16 gids accepted", r[1] == "accepted" and r[2] == 0, str(r))
x, b = call(cred=struct.pack(">II", 6, 4) + b"abcd")
r = one(b)
result("unknown auth flavor -> AUTH_ERROR", r[1] == "denied" and r[2] == 1, str(r))
server_alive("auth errors")

# 6. Truncated record: promise 100 bytes, send 20, close.
with conn() as s:
    s.sendall(struct.pack(">I", 0x80000000 | 100) + os.urandom(20))
server_alive("truncated record")

# 7. Fragment length over the limit: the server closes the connection.
with conn() as s:
    s.sendall(struct.pack(">I", 0x80000000 | 0x7FFFFFF0) + b"\0" * 64)
    result("fragment of 2 GiB -> connection closed", closed_within(s), "still open after 10 s")
server_alive("oversized fragment")
# Many small non-final fragments adding up past the limit.
with conn() as s:
    try:
        for _ in range(300):
            s.sendall(struct.pack(">I", 8192) + b"\0" * 8192)
    except (BrokenPipeError, ConnectionResetError):
        pass
    result("fragments adding past the limit -> connection closed", closed_within(s), "still open")
server_alive("oversized record in fragments")

# 8. Garbage records and a reply-type message.
for i in range(20):
    with conn() as s:
        s.sendall(record(os.urandom(16 + i * 13)))
        s.settimeout(2)
        try:
            s.recv(4096)
        except (socket.timeout, ConnectionResetError):
            pass
server_alive("random garbage records")
with conn() as s:
    s.sendall(record(struct.pack(">II", 7, 1) + b"\0" * 24))
    s.settimeout(2)
    try:
        s.recv(4096)
    except (socket.timeout, ConnectionResetError):
        pass
server_alive("a REPLY sent to the server")

# 9. Pipelined calls on one connection all answered, matched by xid.
with conn() as s:
    xids = []
    data = b""
    for _ in range(50):
        x, b = call()
        xids.append(x)
        data += record(b)
    s.sendall(data)
    got = set()
    for _ in range(50):
        got.add(parse(read_reply(s))[0])
    result("50 pipelined calls answered", got == set(xids), f"{len(got)} replies")

sys.exit(done("badrpc"))
