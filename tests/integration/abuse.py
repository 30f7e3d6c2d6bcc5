#!/usr/bin/env python3
"""abuse.py NFS_PORT MOUNT_PORT DAEMON_PID - protocol abuse against a running
bucketnfsd whose /demo holds big.bin (4 MiB): what badrpc.py does not do.

Each scenario runs while a second, well-behaved client (its own connection)
sends GETATTR every 50 ms; a fresh connection's GETATTR is tried after the
scenario too.  Printed per scenario: that client's GETATTR latency (p50 and
max), the daemon's RSS before and after.  Asserted: the daemon lives, the
other client is answered within 5 s (liveness, not speed) every time, and
memory stays bounded.

  idle         up to 2000 connections held open doing nothing (the server
               keeps 1024: a new client, served while they are held, takes
               the place of one quiet for 2 s)
  non-reader   one connection sends 3000 READs of 1 MiB and never reads
               (the server stops reading it at 128 calls in flight)
  slow-loris   100 connections trickling one record a byte at a time
  2^31 record  record marks announcing 2^31 - 1 bytes, final and not
  readdir      READDIR / READDIRPLUS with counts 0..64: an answer each
  read         READ count 0, offsets 2^63 and 2^64 - 1, count 2^32 - 1
  versions     1000 pipelined calls of NFS v2/v4, MOUNT v1/v4, rpcvers 3
  replayed xid 1000 pipelined GETATTRs with one XID
Prints "N passed, N failed"; exits non-zero on failure."""
import resource
import socket
import struct
import sys
import threading
import time

import oncrpc
from oncrpc import (MOUNT_PROG, NFS_PROG, auth_sys, call_body, connect, done, mnt, parse,
                    read_reply, record, result, xdr_opaque)

NFS_PORT, MOUNT_PORT, PID = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
GETATTR, LOOKUP, READ, READDIR, READDIRPLUS = 1, 3, 6, 16, 17
LIVE_S = 5.0
RSS_SLACK_MB = 256  # a non-reader holds 128 replies of 1 MiB at most


def rss_mb():
    with open(f"/proc/{PID}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return -1


def alive():
    try:
        with open(f"/proc/{PID}/status") as f:
            return "zombie" not in f.read()
    except OSError:
        return False


def nfs_call(s, proc, args, xid=None):
    x = xid if xid is not None else oncrpc.next_xid()
    s.sendall(record(call_body(x, NFS_PROG, 3, proc, auth_sys(0, 0), args)))
    return parse(read_reply(s))


st, ROOT = mnt(MOUNT_PORT, "/demo")
if st != 0:
    print(f"MNT /demo failed: {st}")
    sys.exit(1)
with connect(NFS_PORT) as s0:
    x, kind, stat, rest = nfs_call(s0, LOOKUP, xdr_opaque(ROOT) + xdr_opaque(b"big.bin"))
    (n,) = struct.unpack(">I", rest[4:8])
    BIG = rest[8:8 + n]
    if kind != "accepted" or stat != 0 or struct.unpack(">I", rest[:4])[0] != 0:
        print("LOOKUP big.bin failed")
        sys.exit(1)


class Prober(threading.Thread):
    """The other client: GETATTR on its own connection every 50 ms."""

    def __init__(self):
        super().__init__(daemon=True)
        self.lat, self.errors, self.stop = [], [], threading.Event()

    def run(self):
        try:
            s = connect(NFS_PORT, timeout=LIVE_S)
        except OSError as e:
            self.errors.append(f"connect: {e!r}")
            return
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                r = nfs_call(s, GETATTR, xdr_opaque(ROOT))
                if r[1] != "accepted" or r[2] != 0:
                    self.errors.append(str(r[:3]))
            except OSError as e:
                self.errors.append(repr(e))
                return
            self.lat.append(time.monotonic() - t0)
            time.sleep(0.05)
        s.close()


def fresh_getattr():
    """A new client: connect and GETATTR, retrying for LIVE_S (a full server
    takes a new connection once some other is quiet for 2 s).  Seconds, or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < LIVE_S:
        try:
            with connect(NFS_PORT, timeout=LIVE_S) as s:
                r = nfs_call(s, GETATTR, xdr_opaque(ROOT))
                if r[1] == "accepted" and r[2] == 0:
                    return time.monotonic() - t0
        except OSError:
            time.sleep(0.1)
    return None


def scenario(name, fn):
    before = rss_mb()
    p = Prober()
    p.start()
    time.sleep(0.2)
    detail = ""
    try:
        detail = fn() or ""
    except Exception as e:  # noqa: BLE001 - a failing scenario is reported, the rest still run
        detail = f"scenario raised {e!r}"
        result(f"{name}: scenario ran", False, detail)
    fresh = fresh_getattr()
    p.stop.set()
    p.join(LIVE_S + 1)
    after = rss_mb()
    lat = sorted(p.lat)
    p50 = lat[len(lat) // 2] * 1000 if lat else -1
    mx = lat[-1] * 1000 if lat else -1
    fresh_ms = fresh * 1000 if fresh is not None else -1
    print(f"# {name}: other client GETATTR p50 {p50:.1f} ms, max {mx:.1f} ms ({len(lat)} calls); "
          f"new client served after {fresh_ms:.0f} ms; daemon RSS {before:.0f} -> {after:.0f} MB"
          + (f"; {detail}" if detail else ""))
    result(f"{name}: daemon alive", alive(), "the daemon is gone")
    result(f"{name}: other client answered within {LIVE_S:.0f} s each time",
           not p.errors and lat and mx < LIVE_S * 1000, f"errors {p.errors[:3]}, max {mx:.0f} ms")
    result(f"{name}: a new client served within {LIVE_S:.0f} s", fresh is not None, "never")
    result(f"{name}: RSS bounded (+{after - before:.0f} MB)", after - before < RSS_SLACK_MB,
           f"{before:.0f} -> {after:.0f} MB")


def idle():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2000
    if soft < want + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, want + 100), hard))
        soft = min(hard, want + 100)
    n = min(want, soft - 100)
    conns = []
    for _ in range(n):
        try:
            c = socket.socket()
            c.settimeout(2)
            c.connect(("127.0.0.1", NFS_PORT))
            conns.append(c)
        except OSError:
            break
    time.sleep(1)
    held = fresh_getattr()  # while they are all still open
    for c in conns:
        c.close()
    result("idle: a new client served while they are held", held is not None, "never")
    return (f"{len(conns)} idle connections held; a new client among them served after "
            f"{held * 1000 if held is not None else -1:.0f} ms")


def non_reader():
    s = connect(NFS_PORT)
    s.setblocking(False)
    args = xdr_opaque(BIG) + struct.pack(">QI", 0, 1 << 20)
    data = b"".join(record(call_body(oncrpc.next_xid(), NFS_PROG, 3, READ, auth_sys(0, 0), args))
                    for _ in range(3000))
    sent, t0 = 0, time.monotonic()
    while sent < len(data) and time.monotonic() - t0 < 5:
        try:
            sent += s.send(data[sent:])
        except BlockingIOError:
            time.sleep(0.05)
    time.sleep(2)
    peak = rss_mb()
    s.close()
    return f"sent {sent // len(data[:len(data) // 3000])} of 3000 calls, RSS at peak {peak:.0f} MB"


def slow_loris():
    conns = []
    for _ in range(100):
        c = connect(NFS_PORT)
        c.sendall(struct.pack(">I", 0x80000000 | 1000))
        conns.append(c)
    t0 = time.monotonic()
    sent = 0
    while time.monotonic() - t0 < 4:
        for c in conns:
            try:
                c.send(b"\0")
                sent += 1
            except OSError:
                pass
        time.sleep(0.2)
    for c in conns:
        c.close()
    return f"100 connections trickled {sent} bytes over 4 s"


def huge_record():
    closed = 0
    for mark in (0x80000000 | 0x7FFFFFFF, 0x7FFFFFFF):
        with connect(NFS_PORT) as c:
            c.sendall(struct.pack(">I", mark) + b"\0" * 1024)
            c.settimeout(LIVE_S)
            try:
                closed += c.recv(16) == b""
            except (ConnectionResetError, socket.timeout):
                closed += 1
    result("2^31 record: connection closed (final and non-final mark)", closed == 2,
           f"{closed} of 2 closed")


def readdir_tiny():
    bad = []
    with connect(NFS_PORT) as s:
        for count in (0, 1, 8, 16, 64):
            r = nfs_call(s, READDIR, xdr_opaque(ROOT) + struct.pack(">QQI", 0, 0, count))
            if r[1] != "accepted" or r[2] != 0:
                bad.append(("READDIR", count, r[:3]))
            r = nfs_call(s, READDIRPLUS, xdr_opaque(ROOT) + struct.pack(">QQII", 0, 0, count, count))
            if r[1] != "accepted" or r[2] != 0:
                bad.append(("READDIRPLUS", count, r[:3]))
    result("READDIR / READDIRPLUS with count 0..64 answered", not bad, str(bad))


def read_odd():
    bad = []
    with connect(NFS_PORT) as s:
        for off, count in ((0, 0), (1 << 63, 4096), ((1 << 64) - 1, 4096), (4 << 20, 0),
                           (0, (1 << 32) - 1)):
            r = nfs_call(s, READ, xdr_opaque(BIG) + struct.pack(">QI", off, count))
            if r[1] != "accepted" or r[2] != 0:
                bad.append((off, count, r[:3]))
                continue
            (status,) = struct.unpack(">I", r[3][:4])
            if status not in (0, 22):  # NFS3_OK, or NFS3ERR_INVAL for an offset past 2^63
                bad.append((off, count, "status", status))
    result("READ count 0, offsets 2^63 and 2^64-1, count 2^32-1 answered", not bad, str(bad))


def versions():
    bodies = []
    for _ in range(200):
        for prog, vers, rpcv in ((NFS_PROG, 2, 2), (NFS_PROG, 4, 2), (MOUNT_PROG, 1, 2),
                                 (MOUNT_PROG, 4, 2), (NFS_PROG, 3, 3)):
            bodies.append(record(call_body(oncrpc.next_xid(), prog, vers, 0, None, b"", rpcv)))
    answered = 0
    with connect(NFS_PORT) as s:
        s.sendall(b"".join(bodies))
        try:
            for _ in bodies:
                r = parse(read_reply(s))
                answered += r[1] == "denied" or r[2] in (1, 2)  # mismatch / prog unavailable
        except (OSError, ConnectionError):
            pass
    result("1000 calls of wrong versions each refused", answered == len(bodies),
           f"{answered} of {len(bodies)}")


def replayed():
    x = oncrpc.next_xid()
    body = record(call_body(x, NFS_PROG, 3, GETATTR, auth_sys(0, 0), xdr_opaque(ROOT)))
    got = 0
    with connect(NFS_PORT) as s:
        s.sendall(body * 1000)
        s.settimeout(LIVE_S)
        try:
            for _ in range(1000):
                got += parse(read_reply(s))[0] == x
        except (OSError, ConnectionError):
            pass
    return f"{got} of 1000 replies to one replayed XID"


scenario("idle", idle)
scenario("non-reader", non_reader)
scenario("slow-loris", slow_loris)
scenario("2^31 record", huge_record)
scenario("readdir tiny count", readdir_tiny)
scenario("read odd counts/offsets", read_odd)
scenario("wrong versions", versions)
scenario("replayed xid", replayed)
sys.exit(done("abuse"))
