#!/usr/bin/env python3
"""admin_clients.py TOOL CONF NFS_PORT MOUNT_PORT METRICS_PORT - who mounted
what, and who is connected, as `bucketnfs status`, `stats --json` and
/metrics show it (for admin.sh, whose daemon exports /demo to 127.0.0.0/8).

  - after UMNTALL from 127.0.0.1 no mount of 127.0.0.1 is listed;
  - a MNT of /demo from 127.0.0.1 is listed under /demo (status, JSON,
    bucketnfs_export_mounts);
  - a client holding an NFS connection from 127.0.0.6 that made three
    calls is listed as connected, with its calls;
  - after UMNT from 127.0.0.1 its mount is gone;
  - last, /demo is mounted again from 127.0.0.1 and left so (admin.sh then
    restarts the daemon and looks for it).
Prints "N passed, N failed"; exits non-zero on a failure."""
import json
import re
import subprocess
import sys
import urllib.request

import oncrpc
from oncrpc import done, result, xdr_opaque

TOOL, CONF = sys.argv[1], sys.argv[2]
NFS_PORT, MOUNT_PORT, METRICS_PORT = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
MOUNTPROC3_UMNT, MOUNTPROC3_UMNTALL = 3, 4


def tool(*args):
    p = subprocess.run([TOOL, "-c", CONF, *args], capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout + p.stderr


def status():
    rc, out = tool("status")
    return out if rc == 0 else "status failed: rc %d: %s" % (rc, out)


def stats():
    rc, out = tool("stats", "--json")
    return json.loads(out) if rc == 0 else None


def metric(name, **labels):
    """The value of one sample of /metrics (None: no such sample)."""
    from prometheus_client.parser import text_string_to_metric_families
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % METRICS_PORT, timeout=10).read()
    for fam in text_string_to_metric_families(text.decode()):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


def mount_line(text, host, path):
    """The MOUNTS line of host/path under /demo, or None."""
    pat = re.compile(r"^/demo +%s +%s +\S" % (re.escape(host), re.escape(path)), re.M)
    m = pat.search(text)
    return m.group(0) if m else None


def json_mounts(d, export):
    for e in d["exports"]:
        if e["path"] == export:
            return e["mounts"]
    return None


st, _, _ = oncrpc.rpc(MOUNT_PORT, oncrpc.MOUNT_PROG, oncrpc.MOUNT_VERS, MOUNTPROC3_UMNTALL, b"")
text = status()
result("UMNTALL from 127.0.0.1: no mount of 127.0.0.1 in status",
       st == 0 and "MOUNTS OF" in text and not re.search(r"^\S+ +127\.0\.0\.1 ", text, re.M),
       (st, text))

st, root = oncrpc.mnt(MOUNT_PORT, "/demo")
text = status()
line = mount_line(text, "127.0.0.1", "/demo")
result("MNT /demo from 127.0.0.1: status lists it under /demo (%s)" % line,
       st == 0 and root and line is not None, (st, text))
d = stats()
m = json_mounts(d, "/demo") if d else None
result("stats --json: /demo's mounts hold 127.0.0.1",
       m is not None and any(x["host"] == "127.0.0.1" and x["path"] == "/demo" and x["since"] > 0
                             for x in m), m)
v = metric("bucketnfs_export_mounts", export="/demo")
result("/metrics: bucketnfs_export_mounts{export=\"/demo\"} is 1", v == 1, v)

# An NFS client that keeps its connection: three NULL calls from 127.0.0.6, then look.
s = oncrpc.connect(NFS_PORT, src="127.0.0.6")
try:
    for _ in range(3):
        s.sendall(oncrpc.record(oncrpc.call_body(oncrpc.next_xid(), oncrpc.NFS_PROG,
                                                 oncrpc.NFS_VERS, 0)))
        oncrpc.read_reply(s)
    text = status()
    m = re.search(r"^127\.0\.0\.6 +(\d+) +(\d+) +(\S+ ago|none) ", text, re.M)
    result("a connected client is listed with its connections and calls (%s)"
           % (m.group(0).strip() if m else None),
           m is not None and m.group(1) == "1" and m.group(2) == "3", text)
    d = stats()
    c = [x for x in d["clients"] if x["address"] == "127.0.0.6"] if d else []
    result("stats --json: clients holds 127.0.0.6 (1 connection, 3 calls)",
           len(c) == 1 and c[0]["connections"] == 1 and c[0]["calls"] == 3, d and d["clients"])
    v = metric("bucketnfs_clients_connected")
    result("/metrics: bucketnfs_clients_connected counts it", v is not None and v >= 1, v)
finally:
    s.close()

st, _, _ = oncrpc.rpc(MOUNT_PORT, oncrpc.MOUNT_PROG, oncrpc.MOUNT_VERS, MOUNTPROC3_UMNT,
                      xdr_opaque(b"/demo"))
text = status()
result("UMNT /demo from 127.0.0.1: status no longer lists it",
       st == 0 and mount_line(text, "127.0.0.1", "/demo") is None, text)
v = metric("bucketnfs_export_mounts", export="/demo")
result("/metrics: bucketnfs_export_mounts{export=\"/demo\"} is 0 again", v == 0, v)

st, root = oncrpc.mnt(MOUNT_PORT, "/demo")
result("MNT /demo from 127.0.0.1 again (kept for the restart)", st == 0 and root, st)
sys.exit(done("admin_clients.py"))
