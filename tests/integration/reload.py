#!/usr/bin/env python3
"""reload.py NFSOP TOOL CONF EXPORTS NFS_PORT MOUNT_PORT - live exports under
mounted libnfs clients (for reload.sh).

The daemon starts with /keep (ro), /gone (ro) and /change (rw), each a
bucket holding hello.txt and scratch.txt.  One it_nfsop session (a libnfs
client that stays mounted) per export; then EXPORTS is rewritten and
`bucketnfs reload` run:
  - /gone removed: its mounted client's next call is NFS3ERR_STALE;
  - /change made ro: its mounted client's next change is refused (EROFS),
    reads go on;
  - /new added: served at once;
  - /keep untouched: its client notices nothing;
then a broken file: reload exits 1 naming file:line, and all of the above
stays as it was.  Prints "N passed, N failed"; exits non-zero on failure."""
import subprocess
import sys

from oncrpc import done, result

NFSOP, TOOL, CONF, EXPORTS = sys.argv[1:5]
NFS_PORT, MOUNT_PORT = int(sys.argv[5]), int(sys.argv[6])
ESTALE, EROFS, EACCES = 116, 30, 13


def url(export):
    return "nfs://127.0.0.1%s?nfsport=%d&mountport=%d" % (export, NFS_PORT, MOUNT_PORT)


class Session:
    """A libnfs client mounted on one export, kept for the whole test."""

    def __init__(self, export):
        self.p = subprocess.Popen([NFSOP, url(export), "session"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        self.mounted = self.p.stdout.readline().strip() == "mounted"

    def op(self, line):
        """(errno or 0, what it printed before its answer)."""
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        out = []
        while True:
            l = self.p.stdout.readline()
            if not l:
                return -1, "session ended"
            l = l.rstrip("\n")
            if l == "ok":
                return 0, "\n".join(out)
            if l.startswith("err "):
                return int(l.split()[1]), l
            out.append(l)

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=30)


def tool(*args):
    p = subprocess.run([TOOL, "-c", CONF, *args], capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


def exports(*entries):
    with open(EXPORTS, "w") as f:
        f.write("exports = (\n%s\n);\n" % ",\n".join(entries))


def entry(path, bucket, access):
    return ('  { path = "%s"; store = "local"; bucket = "%s"; access = "%s"; '
            'clients = ( "127.0.0.0/8" ); squash = "none"; }' % (path, bucket, access))


def fresh_ls(export):
    p = subprocess.run(["nfs-ls", url(export)], capture_output=True, text=True, timeout=60)
    return p.returncode == 0 and "hello.txt" in p.stdout


keep, gone, change = Session("/keep"), Session("/gone"), Session("/change")
result("three libnfs clients mounted /keep, /gone, /change",
       keep.mounted and gone.mounted and change.mounted)
for s, name in ((keep, "/keep"), (gone, "/gone"), (change, "/change")):
    rc, out = s.op("stat /hello.txt")
    result("before the reload: stat %s/hello.txt" % name, rc == 0, out)
rc, out = change.op("truncate 3 /scratch.txt")
result("before the reload: /change is rw (truncate works)", rc == 0, out)

exports(entry("/keep", "keep", "ro"), entry("/change", "change", "ro"),
        entry("/new", "keep", "ro"))
rc, out = tool("reload")
result("bucketnfs reload of a changed exports file: exit 0", rc == 0 and "reloaded" in out,
       (rc, out))
rc, out = keep.op("stat /hello.txt")
result("the untouched export's mounted client notices nothing", rc == 0, out)
rc, out = gone.op("stat /hello.txt")
result("the removed export's mounted client gets NFS3ERR_STALE (ESTALE)", rc == ESTALE, out)
rc, out = change.op("truncate 2 /scratch.txt")
result("the export changed to ro refuses its mounted client's next change (EROFS)",
       rc in (EROFS, EACCES), out)
rc, out = change.op("stat /hello.txt")
result("... and still serves its reads", rc == 0, out)
result("the added export is served at once", fresh_ls("/new"))
result("the removed export cannot be mounted any more", not fresh_ls("/gone"))

with open(EXPORTS, "a") as f:
    f.write("exports = ( { path = \"/x\"; \n")  # broken: a second setting, unclosed
rc, out = tool("reload")
result("a broken exports file: reload exits 1 and names file:line",
       rc == 1 and "exports.conf:" in out, (rc, out))
rc1, _ = keep.op("stat /hello.txt")
rc2, _ = change.op("truncate 1 /scratch.txt")
rc3, _ = change.op("stat /hello.txt")
result("after the broken reload the old exports stay: /keep served, /change still ro, /new served",
       rc1 == 0 and rc2 in (EROFS, EACCES) and rc3 == 0 and fresh_ls("/new"), (rc1, rc2, rc3))
rc, _ = gone.op("stat /hello.txt")
result("... and /gone stays removed", rc == ESTALE, rc)

for s in (keep, gone, change):
    s.close()
sys.exit(done("reload.py"))
