#!/usr/bin/env python3
"""rpcrecord.py - record the ONC RPC calls a client sends, for seed corpora.

  rpcrecord.py proxy RAW_DIR PORTS_FILE [LISTEN_PORT:]UPSTREAM_PORT...
      A TCP proxy on 127.0.0.1: one listener per upstream port on
      127.0.0.1 (on LISTEN_PORT if given, else a free port), written to
      PORTS_FILE as one line "P1 P2 ..." once all listen.  Bytes go both ways unchanged; the client's stream is cut
      into records (RFC 5531 section 11 record marking) and each complete
      record is saved as RAW_DIR/<connection>-<n>.rec, and the first 4 KiB
      of each connection's stream, marks included, as RAW_DIR/<connection>.stream.
      Runs until SIGTERM.

  rpcrecord.py corpus RAW_DIR CORPUS_DIR [PER_PROC [PREFIX]]
      Turn the recorded calls into the seed formats of two fuzz targets:
      CORPUS_DIR/fuzz_rpc/ (a call record as it is, and connection streams)
      and CORPUS_DIR/fuzz_nfs3_args/ (one byte choosing the decoder, then the
      arguments after the RPC header: see fuzz_nfs3_args.c).  Calls that
      differ only in XID and credentials are one; at most PER_PROC (8) of a
      procedure are kept, of spread sizes; nothing over 4096 bytes (the
      fuzz runs' -max_len).  Files are named PREFIX-... (default "rec":
      libnfs's calls; capture-kernel.sh uses "krec" for the kernel
      client's); old files of the same PREFIX are replaced.
"""
import hashlib
import os
import signal
import socket
import struct
import sys
import threading

MAX_LEN = 4096
NFS_PROG, MOUNT_PROG = 100003, 100005
NFS3_PROCS = ["NULL", "GETATTR", "SETATTR", "LOOKUP", "ACCESS", "READLINK", "READ", "WRITE",
              "CREATE", "MKDIR", "SYMLINK", "MKNOD", "REMOVE", "RMDIR", "RENAME", "LINK",
              "READDIR", "READDIRPLUS", "FSSTAT", "FSINFO", "PATHCONF", "COMMIT"]
MOUNT_PROCS = ["NULL", "MNT", "DUMP", "UMNT", "UMNTALL", "EXPORT"]


def proxy(raw_dir, ports_file, upstreams):
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM, signal.SIGINT])  # for sigwait
    os.makedirs(raw_dir, exist_ok=True)
    conn_no = [0]
    lock = threading.Lock()

    def pump(src, dst, record_to=None):
        buf, stream, n = b"", b"", 0
        frags = b""
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
                if record_to is None:
                    continue
                if len(stream) < MAX_LEN:
                    stream += data[:MAX_LEN - len(stream)]
                    with open(record_to + ".stream", "wb") as f:
                        f.write(stream)
                buf += data
                while len(buf) >= 4:
                    (mark,) = struct.unpack(">I", buf[:4])
                    size = mark & 0x7FFFFFFF
                    if len(buf) < 4 + size:
                        break
                    frags += buf[4:4 + size]
                    buf = buf[4 + size:]
                    if mark & 0x80000000:
                        with open("%s-%d.rec" % (record_to, n), "wb") as f:
                            f.write(frags)
                        n += 1
                        frags = b""
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def serve(lsock, upstream):
        while True:
            c, _ = lsock.accept()
            try:
                u = socket.create_connection(("127.0.0.1", upstream))
            except OSError:
                c.close()
                continue
            with lock:
                conn_no[0] += 1
                name = os.path.join(raw_dir, "c%04d" % conn_no[0])
            threading.Thread(target=pump, args=(c, u, name), daemon=True).start()
            threading.Thread(target=pump, args=(u, c), daemon=True).start()

    ports = []
    for spec in upstreams:
        listen, _, up = spec.rpartition(":")
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", int(listen) if listen else 0))
        s.listen(64)
        ports.append(s.getsockname()[1])
        threading.Thread(target=serve, args=(s, int(up)), daemon=True).start()
    with open(ports_file + ".tmp", "w") as f:
        f.write(" ".join(map(str, ports)) + "\n")
    os.rename(ports_file + ".tmp", ports_file)
    signal.sigwait([signal.SIGTERM, signal.SIGINT])


def call_header(rec):
    """(prog, vers, proc, args offset) of a call record, or None."""
    try:
        xid, mtype, rpcvers, prog, vers, proc = struct.unpack(">6I", rec[:24])
        off = 24
        for _ in range(2):  # credentials, verifier
            _, n = struct.unpack(">2I", rec[off:off + 8])
            off += 8 + (n + 3) // 4 * 4
        if mtype != 0 or rpcvers != 2 or off > len(rec):
            return None
        return prog, vers, proc, off
    except struct.error:
        return None


def nfs3_args_index(prog, proc):
    """The decoders[] indexes of fuzz_nfs3_args.c that take this call's arguments."""
    if prog == MOUNT_PROG:
        return [20] if proc in (1, 3) else []  # MNT, UMNT: a mntdirpath
    if prog != NFS_PROG or not 1 <= proc <= 21:
        return []
    if proc == 7:
        return [6, 21]  # WRITE: rpcgen's decoder and the in-place one
    if proc <= 12:
        return [proc - 1]
    if proc == 13:
        return [11]  # RMDIR takes REMOVE's diropargs3
    return [proc - 2]


def spread(items, k):
    """At most k of items (sorted by size), spread from the smallest to the largest."""
    items = sorted(items, key=lambda kv: (len(kv[1]), kv[0]))
    if len(items) <= k:
        return items
    return [items[round(i * (len(items) - 1) / (k - 1))] for i in range(k)]


def corpus(raw_dir, out_dir, per_proc, prefix="rec"):
    by_proc = {}
    streams = {}
    for name in sorted(os.listdir(raw_dir)):
        with open(os.path.join(raw_dir, name), "rb") as f:
            data = f.read()
        if name.endswith(".stream"):
            if data:
                streams[hashlib.sha1(data).hexdigest()[:12]] = data
            continue
        h = call_header(data)
        if h is None or len(data) > MAX_LEN:
            continue
        prog, vers, proc, off = h
        if prog == NFS_PROG and proc < len(NFS3_PROCS):
            label = "nfs3-" + NFS3_PROCS[proc]
        elif prog == MOUNT_PROG and proc < len(MOUNT_PROCS):
            label = "mount3-" + MOUNT_PROCS[proc]
        else:
            label = "prog%d-%d" % (prog, proc)
        key = hashlib.sha1(struct.pack(">3I", prog, vers, proc) + data[off:]).hexdigest()[:12]
        by_proc.setdefault(label, {}).setdefault(key, (data, prog, proc, off))

    rpc_dir = os.path.join(out_dir, "fuzz_rpc")
    args_dir = os.path.join(out_dir, "fuzz_nfs3_args")
    for d in (rpc_dir, args_dir):
        os.makedirs(d, exist_ok=True)
        for name in os.listdir(d):
            if name.startswith(prefix + "-"):
                os.remove(os.path.join(d, name))
    n_rpc = n_args = 0
    for label, calls in sorted(by_proc.items()):
        chosen = spread([(k, v[0]) for k, v in calls.items()], per_proc)
        for key, data in chosen:
            _, prog, proc, off = calls[key]
            with open(os.path.join(rpc_dir, "%s-%s-%s" % (prefix, label, key)), "wb") as f:
                f.write(data)
            n_rpc += 1
            for idx in nfs3_args_index(prog, proc):
                with open(os.path.join(args_dir, "%s-%s-%d-%s" % (prefix, label, idx, key)), "wb") as f:
                    f.write(bytes([idx]) + data[off:])
                n_args += 1
    for key, data in sorted(streams.items())[:per_proc * 2]:
        with open(os.path.join(rpc_dir, prefix + "-stream-" + key), "wb") as f:
            f.write(data)
        n_rpc += 1
    print("rpcrecord: %d procedures; %d files for fuzz_rpc, %d for fuzz_nfs3_args"
          % (len(by_proc), n_rpc, n_args))


def main():
    if len(sys.argv) >= 5 and sys.argv[1] == "proxy":
        proxy(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif len(sys.argv) in (4, 5, 6) and sys.argv[1] == "corpus":
        corpus(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) >= 5 else 8,
               sys.argv[5] if len(sys.argv) == 6 else "rec")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
