#!/bin/bash
# posix_corners.sh - POSIX corners through the Linux NFS client that
# posix_write.sh does not try: what a user with their own suite reaches
# first.  Runs in the guest (guest-run.sh) against the read-write export
# BNFS_RW_EXPORT (suite.sh --rw-export: bucketnfsd.sh's dir store, or
# bucketnfsd-s3.sh's moto bucket), in its own folder corners/:
#   /mnt/cx-a   default caching: where the changes go
#   /mnt/cx-b   a second superblock (nosharecache), noac: reads back
#   /mnt/cx-c   mounted fresh for a check, unmounted after it
#
#   keys        file and folder names with every character a shell user
#               types (space + % # ? & = ~ * ' " \ ; : @ ! $ ( ) [ ] { }
#               < > | ^ ` ,), tab, newline, CR, 0x01, 0x7f, NFC and NFD
#               forms (two names), emoji, CJK, "...", a leading dash,
#               255-byte names of 2- and 4-byte characters, bytes that are
#               not UTF-8 (dir store; S3 refuses them: EINVAL), a case-only
#               rename, a symlink target with a newline: created, read
#               back on a fresh mount, in the bucket under exactly those
#               bytes, renamed (the bucket follows), removed (the bucket
#               is empty again)
#   sparse      1 byte at 5 GiB (64-bit offsets), the hole reads zeros,
#               truncate down (dir store only: moto holds objects in memory)
#   open files  mmap MAP_SHARED + msync read on the other mount; O_APPEND
#               from two descriptors; open(O_TRUNC) with no write;
#               ftruncate while another descriptor (and mount) reads;
#               O_CREAT in a folder removed from the other mount
#   rename      onto itself, into its own subfolder, over a symlink, mv
#               into a symlinked folder, over an open file, across mounts
#   times       touch -a / -m (UTIME_OMIT, UTIME_NOW; atime reads as the
#               mtime: objects keep none), nanoseconds kept in the bucket,
#               2040 and 2106; before 1970 and after 2106 the client
#               clamps (NFSv3 times are unsigned 32-bit: knfsd the same)
#   modes       set-group-id folders (SysV: the folder's group, subfolders
#               inherit the bit), chmod g+s by a non-member, chown clears
#               set-user-id, a write by another user clears it; sticky
#               folder: uid 1000 cannot remove or rename root's file
#   space       statvfs sane, du of a written and a 0-byte file, fsync and
#               fdatasync return 0 and the bytes reach the bucket
#   big folders rm -rf of a tree of BNFS_CORNERS_COUNT (300) files after
#               their upload (the bucket empties); ls on one mount while
#               the other creates files
#
# Every expectation is what Linux's local file systems and knfsd do, unless
# the line says why bucketnfs differs.  The bucket is asked for through the
# control folder (bucket-keys.req, answered by bucketnfsd.sh and
# bucketnfsd-s3.sh): the exact key bytes under a prefix, sizes, sha256 and
# the stored mtime.
# Knobs (run.sh --env NAME=VALUE):
#   BNFS_RW_EXPORT=/rw          the MOUNT path of the read-write export
#   BNFS_NONROOT_UID=1000
#   BNFS_WRITEBACK_WAIT=20      seconds the bucket may take to catch up
#   BNFS_CORNERS_COUNT=300      files in the rm -rf tree (2000 took 68 s to
#                               create and 50 s to remove under TCG)
#   BNFS_CORNERS_STORE=dir|s3   s3: no 5 GiB sparse file
#   BNFS_CORNERS_ONLY=LIST      only these sections (comma-separated: keys,
#                               sparse, open, rename, times, modes, space,
#                               big); each other one prints "# skipped"
# Prints "ok - NAME" / "not ok - NAME: why"; the last line counts them.
set -u
[ "${BNFS_TRACE:-0}" = 1 ] && set -x
rw_export=${BNFS_RW_EXPORT:?BNFS_RW_EXPORT is not set: run suite.sh with --rw-export}
export CX_UID=${BNFS_NONROOT_UID:-1000}
export CX_CTL=${BNFS_CTL:-}
export CX_WAIT=${BNFS_WRITEBACK_WAIT:-20}
export CX_COUNT=${BNFS_CORNERS_COUNT:-300}
export CX_STORE=${BNFS_CORNERS_STORE:-dir}
cx_only=${BNFS_CORNERS_ONLY:-}
export BNFS_RW_EXPORT=$rw_export
export CX_A=/mnt/cx-a CX_B=/mnt/cx-b CX_C=/mnt/cx-c
pass=0 fail=0
umask 022

. "$(dirname "${BASH_SOURCE[0]}")/guest-lib.sh" # ok, not_ok, check, fails, section, mount_rw, umount_each
# want SECTION: whether BNFS_CORNERS_ONLY leaves SECTION in (said if not).
want() {
    [ -z "$cx_only" ] || [[ ",$cx_only," == *",$1,"* ]] && return 0
    echo "# skipped: section $1 (BNFS_CORNERS_ONLY=$cx_only)"
    return 1
}
as_user() { setpriv --reuid="$CX_UID" --regid="$CX_UID" --clear-groups -- "$@"; }
finish() {
    cd /
    umount_each "$CX_C" "$CX_B" "$CX_A"
    echo "posix_corners: $pass passed, $fail failed"
    [ "$fail" = 0 ]
    exit
}

# The python side: CX is a prelude every part shares.  A part prints "ok -"
# and "not ok -" lines; py counts them.
read -r -d '' CX <<'PY'
import errno, hashlib, mmap, os, stat, subprocess, sys, time, unicodedata
A, B, C = (os.environ[k].encode() for k in ("CX_A", "CX_B", "CX_C"))
CTL = os.environ.get("CX_CTL", "")
WAIT = int(os.environ["CX_WAIT"])
UID = int(os.environ["CX_UID"])
def ok(name): print("ok - " + name, flush=True)
def not_ok(name, why): print("not ok - %s: %s" % (name, why), flush=True)
def eq(name, got, want):
    if got == want: ok(name)
    else: not_ok(name, "got %r, want %r" % (got, want))
def err_of(fn, *a, **kw):
    try:
        fn(*a, **kw)
        return 0
    except OSError as e:
        return e.errno
def fails_with(name, want, fn, *a, **kw):
    got = err_of(fn, *a, **kw)
    want = want if isinstance(want, tuple) else (want,)
    if got in want: ok("%s: %s" % (name, errno.errorcode.get(got, got)))
    else: not_ok(name, "errno %s, want %s" % (errno.errorcode.get(got, got), "/".join(errno.errorcode[w] for w in want)))
def p(*parts): return b"/".join(x if isinstance(x, bytes) else x.encode("utf-8", "surrogateescape") for x in parts)
def read(path):
    with open(path, "rb") as f: return f.read()
def write(path, data, mode="wb"):
    with open(path, mode) as f: f.write(data)
def mount(where, opts="nosharecache"):
    os.makedirs(where, exist_ok=True)
    base = os.environ["BNFS_MOUNT_BASE"] + ("," + os.environ["BNFS_MOUNT_PORTS"] if os.environ.get("BNFS_MOUNT_PORTS") else "")
    r = subprocess.run([os.environ["BNFS_MOUNT"], "10.0.2.2:" + os.environ["BNFS_RW_EXPORT"], where, base + "," + opts],
                       capture_output=True, text=True)
    if r.returncode: raise OSError(errno.EIO, "mount: " + r.stdout + r.stderr)
def umount(where): subprocess.run(["umount", where], check=True)
def bucket(prefix, full=True):
    """{key bytes: (size, sha256 or '-', mtime or '-')} under prefix, or None."""
    if not CTL: return None
    done = os.path.join(CTL, "bucket-keys.done")
    if os.path.exists(done): os.unlink(done)
    with open(os.path.join(CTL, "bucket-keys.tmp"), "wb") as f:
        f.write(b"%s\n%s\n" % (b"full" if full else b"names", prefix))
    os.rename(os.path.join(CTL, "bucket-keys.tmp"), os.path.join(CTL, "bucket-keys.req"))
    for _ in range(300):
        if os.path.exists(done):
            out = {}
            for line in read(done).decode().splitlines():
                if line.startswith("error "): raise OSError(errno.EIO, line)
                k, size, sha, mt = line.split(" ")
                out[bytes.fromhex(k)] = (int(size), sha, mt)
            os.unlink(done)
            return out
        time.sleep(0.1)
    return None
def wait_bucket(prefix, cond, full=True, wait=WAIT):
    """Poll the bucket until cond(keys) holds, wait seconds at most; the last listing."""
    t0 = time.time()
    while True:
        got = bucket(prefix, full)
        if got is not None and cond(got): return True, got
        if time.time() - t0 > wait: return False, got
        time.sleep(1)
def keydiff(got, want):
    got = set(got or ())
    return "missing %r, extra %r" % (sorted(want - got)[:4], sorted(got - want)[:4])
PY
export CX
py() {
    local out
    out=$(python3 -c "$CX
$1" 2>&1)
    printf '%s\n' "$out" | grep -v '^$'
    pass=$((pass + $(grep -c '^ok - ' <<<"$out")))
    fail=$((fail + $(grep -c '^not ok - ' <<<"$out")))
    if ! grep -q '^ok - \|^not ok - ' <<<"$out" || grep -q '^Traceback' <<<"$out"; then
        not_ok "python part ${2:-}" "it stopped: $(tail -n 3 <<<"$out" | tr '\n' '|')"
    fi
}

section "mounts"
if out=$(mount_rw "$CX_A" 2>&1) && out=$(mount_rw "$CX_B" nosharecache,noac 2>&1); then
    ok "mount 10.0.2.2:$rw_export twice ($CX_A, and $CX_B with nosharecache,noac)"
else
    not_ok "mount 10.0.2.2:$rw_export" "$out"
    finish
fi
rm -rf "$CX_A/corners"
mkdir -p "$CX_A/corners"
if [ -n "$CX_CTL" ] && py 'b = bucket(b"corners/")
if b is None: not_ok("the host lists the bucket (bucket-keys.req)", "no answer")
else: ok("the host lists the bucket (bucket-keys.req)")' ctl && [ "$fail" = 0 ]; then
    :
else
    echo "# the bucket cannot be listed: the server command must be bucketnfsd.sh or bucketnfsd-s3.sh"
    finish
fi

# ---- keys ----------------------------------------------------------------
if want keys; then
section "object keys"
py '
names = ["with space", " leading space", "trailing space ", "plus+sign", "+", "100%", "%41%2F",
         "%", "hash#tag", "#", "what?", "?", "a&b=c", "=", "tilde~", "star*", "quote'"'"'", "dquote\"",
         "back\\slash", "\\", "semi;colon", "colon:", "at@", "bang!", "dollar$", "paren()",
         "brackets[]{}", "angle<>", "pipe|", "caret^", "backtick`", "comma,", "tab\there",
         "new\nline", "cr\rhere", "ctl\x01", "del\x7f", "caf\u00e9", "cafe\u0301", "emoji\U0001F600",
         "\u540d\u524d", "...", "-dash", "--", ".hidden", "..dots", "Case",
         "x" + "\u00e9" * 127, "ab" + "\U0001F600" * 63 + "c"]
enc = lambda s: s.encode("utf-8", "surrogateescape")
if os.environ["CX_STORE"] == "s3":
    # moto answers 404 to a PUT of a key with a line feed (its routing):
    # a moto limit, not S3 one; the dir store run has the name.
    names.remove("new\nline")
    print("# skipped: the name with a line feed on moto (its PUT of such a key answers 404)")
    # S3 keys are UTF-8: a name of other bytes is refused (README).
    fails_with("a name that is not UTF-8 on an S3 store", errno.EINVAL, write, p(A, "corners/bad\udcff\udcfe"), b"x")
    eq("and nothing of it is left", [x for x in os.listdir(p(B, "corners")) if x.startswith(b"bad")], [])
else:
    names.append("bad\udcff\udcfe") # not UTF-8: a dir store takes any bytes
assert all(len(enc(n)) <= 255 for n in names)
assert sum(1 for n in names if len(enc(n)) == 255) == 2
assert unicodedata.normalize("NFC", "cafe\u0301") == "caf\u00e9"
def dname(n): return n + ".d" if len(enc(n)) <= 253 else "d" + n[1:]
def mname(n): return n + "~mv" if len(enc(n)) <= 252 else "m" + n[1:]
top = p(A, "corners/keys")
os.mkdir(top)
bad = []
for n in names:
    try:
        write(p(top, n), enc(n) + b"\n")
        os.mkdir(p(top, dname(n)))
        write(p(top, dname(n), "f"), b"in " + enc(n))
    except OSError as e:
        bad.append("%r: %s" % (n, e))
target = "t\u00e4rget with\nnewline #?%"
os.symlink(target, p(top, "link"))
eq("%d files and %d folders named with special characters, a symlink to a target with a newline" % (len(names), len(names)), bad, [])
def want_keys(fname, dn):
    w = {p("corners/keys", fname(n)) for n in names} | {p("corners/keys", dn(n)) + b"/" for n in names}
    return w | {p("corners/keys", dn(n), "f") for n in names} | {b"corners/keys/link"}
def check_fresh(what, fname, dn):
    mount(C)
    try:
        got = set(os.listdir(p(C, "corners/keys")))
        want = {enc(fname(n)) for n in names} | {enc(dn(n)) for n in names} | {b"link"}
        eq(what + ": a fresh mount lists exactly those names", sorted(got ^ want), [])
        wrong = [n for n in names if read(p(C, "corners/keys", fname(n))) != enc(n) + b"\n"
                 or read(p(C, "corners/keys", dn(n), "f")) != b"in " + enc(n)]
        eq(what + ": and reads each file back", wrong, [])
        eq(what + ": readlink of the symlink", os.readlink(p(C, "corners/keys/link")), enc(target))
    finally:
        umount(C)
def check_bucket(what, fname, dn):
    want = want_keys(fname, dn)
    good, got = wait_bucket(b"corners/keys/", lambda k: set(k) - {b"corners/keys/"} == want)
    if good:
        wrong = [n for n in names if got[p("corners/keys", fname(n))][1] != hashlib.sha256(enc(n) + b"\n").hexdigest()]
        eq(what + ": the bucket has exactly those %d keys (bytes of each name), the files their bytes" % len(want), wrong, [])
        eq(what + ": the symlink object holds its target", got[b"corners/keys/link"][1], hashlib.sha256(enc(target)).hexdigest())
    else:
        not_ok(what + ": the bucket has exactly those keys", "after %ds: %s" % (WAIT, keydiff(set(got or ()) - {b"corners/keys/"}, want)))
check_fresh("created", lambda n: n, dname)
check_bucket("created", lambda n: n, dname)
def rdn(n): return dname(n) + "r" if len(enc(dname(n))) <= 254 else "r" + dname(n)[1:]
bad = []
for n in names:
    try:
        os.rename(p(top, n), p(top, mname(n)))
        os.rename(p(top, dname(n)), p(top, rdn(n)))
    except OSError as e:
        bad.append("%r: %s" % (n, e))
eq("rename(2) of every such file and folder to another special name", bad, [])
check_fresh("renamed", mname, rdn)
check_bucket("renamed", mname, rdn)
# A rename that changes case only, and NFC to NFD: each a new key.
os.rename(p(top, "Case~mv"), p(top, "case~mv"))
os.rename(p(top, "caf\u00e9~mv"), p(top, "cafe\u0301~NFD"))
ls = set(os.listdir(p(B, "corners/keys")))
eq("a case-only rename and an NFC -> NFD rename: only the new names on the other mount",
   (b"Case~mv" in ls, b"case~mv" in ls, enc("caf\u00e9~mv") in ls, enc("cafe\u0301~NFD") in ls, enc("cafe\u0301~mv") in ls),
   (False, True, False, True, True))
good, got = wait_bucket(b"corners/keys/", lambda k: b"corners/keys/case~mv" in k and b"corners/keys/Case~mv" not in k
                        and p("corners/keys/cafe\u0301~NFD") in k and p("corners/keys/caf\u00e9~mv") not in k)
eq("and in the bucket", good, True)
r = subprocess.run(["rm", "-rf", "--", top], capture_output=True, text=True)
eq("rm -rf of them all", (r.returncode, r.stderr), (0, ""))
good, got = wait_bucket(b"corners/keys/", lambda k: set(k) <= {b"corners/keys/"})
eq("the bucket has none of their keys left", good or keydiff(got, set()), True)
' keys
fi

# ---- sparse --------------------------------------------------------------
if want sparse; then
section "sparse files"
if [ "$CX_STORE" = s3 ]; then
    echo "# skipped: 5 sparse cases: the S3 bucket is moto, which holds a 5 GiB object in memory"
else
py '
f = p(A, "corners/sparse")
G = 1 << 30
fd = os.open(f, os.O_CREAT | os.O_WRONLY, 0o644)
eq("pwrite of 1 byte at 5 GiB", os.pwrite(fd, b"Z", 5 * G), 1)
os.close(fd)
g = p(B, "corners/sparse")
eq("the size on the other mount is 5 GiB + 1", os.stat(g).st_size, 5 * G + 1)
fd = os.open(g, os.O_RDONLY)
eq("the hole reads zeros (at 4 GiB - 10, 64 KiB)", os.pread(fd, 65536, 4 * G - 10), bytes(65536))
eq("the byte past 4 GiB reads back (64-bit offsets)", os.pread(fd, 10, 5 * G - 5), bytes(5) + b"Z")
os.close(fd)
os.truncate(f, 4 * G + 3)
eq("truncate down to 4 GiB + 3: the size on the other mount", os.stat(g).st_size, 4 * G + 3)
os.truncate(f, 1000)
eq("truncate to 1000: the tail is gone, zeros stay", (os.stat(g).st_size, read(g)), (1000, bytes(1000)))
os.unlink(f)
' sparse
fi
fi

# ---- open files ----------------------------------------------------------
if want open; then
section "open files"
py '
d = p(A, "corners/open")
os.mkdir(d)
# mmap MAP_SHARED, msync, read on the other mount.
f = p(d, "mm")
write(f, bytes(65536))
m0 = os.stat(f).st_mtime_ns
time.sleep(1.1)
fd = os.open(f, os.O_RDWR)
mm = mmap.mmap(fd, 65536, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
mm[0:5] = b"first"
mm[20487:20494] = b"MIDDLE!"
mm[65530:65536] = b"last.."
mm.flush()
got = read(p(B, "corners/open/mm"))
eq("mmap MAP_SHARED + msync: the other mount reads the bytes", (got[0:5], got[20487:20494], got[65530:]), (b"first", b"MIDDLE!", b"last.."))
mm.close(); os.close(fd)
eq("and the mtime moved", os.stat(p(B, "corners/open/mm")).st_mtime_ns > m0, True)
# mmap read of a file written on the other mount.
write(p(B, "corners/open/mm2"), b"written on b" * 1000)
fd = os.open(p(d, "mm2"), os.O_RDONLY)
mm = mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ)
eq("mmap read of a file the other mount wrote", mm[:], b"written on b" * 1000)
mm.close(); os.close(fd)
# O_APPEND from two descriptors of one mount: each write lands at the end.
f = p(d, "app")
write(f, b"0123456789")
a1 = os.open(f, os.O_WRONLY | os.O_APPEND)
a2 = os.open(f, os.O_WRONLY | os.O_APPEND)
for i in range(3):
    os.write(a1, b"<a%d>" % i)
    os.write(a2, b"<b%d>" % i)
pl = os.open(f, os.O_WRONLY)
os.pwrite(pl, b"XY", 2)
os.write(a1, b"<end>")
for x in (a1, a2, pl): os.close(x)
eq("O_APPEND from two descriptors (and a pwrite between): every write at the end",
   read(p(B, "corners/open/app")), b"01XY456789<a0><b0><a1><b1><a2><b2><end>")
# open(O_TRUNC) with no write.
f = p(d, "trunc")
write(f, b"x" * 5000)
m0 = os.stat(p(B, "corners/open/trunc")).st_mtime_ns
time.sleep(1.1)
os.close(os.open(f, os.O_WRONLY | os.O_TRUNC))
st = os.stat(p(B, "corners/open/trunc"))
eq("open(O_TRUNC) and close, nothing written: size 0 on the other mount, mtime moved", (st.st_size, st.st_mtime_ns > m0), (0, True))
# ftruncate while another descriptor (this mount and the other) reads.
f = p(d, "ft")
data = os.urandom(100000)
write(f, data)
r1 = os.open(f, os.O_RDONLY)
r2 = os.open(p(B, "corners/open/ft"), os.O_RDONLY)
eq("two readers read the start", (os.read(r1, 100), os.read(r2, 100)), (data[:100], data[:100]))
w = os.open(f, os.O_WRONLY)
os.ftruncate(w, 50)
eq("after ftruncate(50) by a writer: the reader on this mount gets 50 bytes, then EOF",
   (os.pread(r1, 100, 0), os.pread(r1, 100, 200), os.fstat(r1).st_size), (data[:50], b"", 50))
eq("and the reader on the other mount", (os.fstat(r2).st_size, os.pread(r2, 100, 0), os.pread(r2, 10, 60000)), (50, data[:50], b""))
os.ftruncate(w, 200)
eq("ftruncate(200) up: zeros after the 50 bytes, on the other mount", os.pread(r2, 300, 0), data[:50] + bytes(150))
for x in (r1, r2, w): os.close(x)
# O_CREAT in a folder removed (from the other mount) while this one holds it.
os.mkdir(p(d, "gone"))
dfd = os.open(p(d, "gone"), os.O_RDONLY | os.O_DIRECTORY)
os.rmdir(p(B, "corners/open/gone"))
fails_with("open(O_CREAT) in a folder the other mount removed", (errno.ENOENT, errno.ESTALE),
           os.open, "new", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=dfd)
fails_with("mkdir in it", (errno.ENOENT, errno.ESTALE), os.mkdir, "sub", dir_fd=dfd)
os.close(dfd)
eq("nothing of it on the other mount", os.path.exists(p(B, "corners/open/gone")), False)
good, got = wait_bucket(b"corners/open/", lambda k: b"corners/open/mm" in k and b"corners/open/ft" in k)
eq("no object of the removed folder reaches the bucket", [k for k in (got or {}) if b"gone" in k], [])
' open
fi

# ---- rename --------------------------------------------------------------
if want rename; then
section "rename"
py '
d = p(A, "corners/ren")
os.makedirs(p(d, "tdir/sub/deeper"))
write(p(d, "f"), b"file f")
os.rename(p(d, "f"), p(d, "f"))
eq("rename(2) of a file onto itself: nothing changes", read(p(B, "corners/ren/f")), b"file f")
os.rename(p(d, "tdir"), p(d, "tdir"))
eq("rename(2) of a folder onto itself", os.path.isdir(p(B, "corners/ren/tdir/sub/deeper")), True)
fails_with("rename(2) of a folder into its own subfolder", errno.EINVAL, os.rename, p(d, "tdir"), p(d, "tdir/sub/deeper/x"))
fails_with("rename(2) of a folder onto its own subfolder", (errno.EINVAL, errno.ENOTEMPTY), os.rename, p(d, "tdir"), p(d, "tdir/sub"))
fails_with("rename(2) of a folder onto its parent", (errno.ENOTEMPTY, errno.EEXIST, errno.EINVAL), os.rename, p(d, "tdir/sub"), p(d, "tdir"))
# Over a symlink: the link is replaced, its target untouched.
os.symlink("tdir", p(d, "sl"))
os.rename(p(d, "f"), p(d, "sl"))
st = os.lstat(p(B, "corners/ren/sl"))
eq("rename(2) of a file over a symlink to a folder replaces the link", (stat.S_ISREG(st.st_mode), read(p(B, "corners/ren/sl"))), (True, b"file f"))
eq("the folder it pointed to is untouched", sorted(os.listdir(p(B, "corners/ren/tdir"))), [b"sub"])
os.symlink("tdir", p(d, "sl2"))
fails_with("rename(2) of a folder over a symlink", errno.ENOTDIR, os.rename, p(d, "tdir/sub"), p(d, "sl2"))
write(p(d, "g"), b"file g")
r = subprocess.run(["mv", p(d, "g"), p(d, "sl2")], capture_output=True)
eq("mv FILE LINK-TO-FOLDER moves the file into the folder",
   (r.returncode, os.path.islink(p(B, "corners/ren/sl2")), read(p(B, "corners/ren/tdir/g"))), (0, True, b"file g"))
# Over a file another descriptor holds open: that one reads the old bytes.
write(p(d, "old"), b"old bytes")
write(p(d, "new"), b"new bytes")
fd = os.open(p(d, "old"), os.O_RDONLY)
os.rename(p(d, "new"), p(d, "old"))
eq("rename(2) over a file open elsewhere: the name has the new bytes", read(p(B, "corners/ren/old")), b"new bytes")
eq("the open descriptor still reads the old", os.pread(fd, 100, 0), b"old bytes")
os.close(fd)
fails_with("rename(2) from one mount to the other: EXDEV (the VFS says it)", errno.EXDEV, os.rename, p(d, "old"), p(B, "corners/ren/x"))
time.sleep(1)
good, got = wait_bucket(b"corners/ren/", lambda k: b"corners/ren/sl" in k and k[b"corners/ren/sl"][0] == 6 and b"corners/ren/tdir/g" in k
                        and b"corners/ren/old" in k and k[b"corners/ren/old"][1] == hashlib.sha256(b"new bytes").hexdigest()
                        and not any(b".nfs" in x for x in k))
eq("the bucket: the link replaced by the file, g in the folder, the new bytes under old, no .nfs*", good or sorted(got or ()), True)
' rename
fi

# ---- times ---------------------------------------------------------------
if want times; then
section "times"
tm=$CX_A/corners/times
mkdir -p "$tm"
echo t >"$tm/f"
tb=$CX_B/corners/times
# Objects keep no access time (README): atime reads as the mtime, and
# setting it moves only the ctime; a local file system keeps both.
touch -m -d '2001-02-03 04:05:06.123456789 UTC' "$tm/f"
got=$(stat -c '%.9Y' "$tb/f")
[ "$got" = 981173106.123456789 ] && ok "touch -m -d with nanoseconds: all nine digits kept" || not_ok "touch -m -d (ns)" "$got"
now=$(date +%s)
touch -a -d '2002-03-04 05:06:07.5 UTC' "$tm/f"
read -r at mt ct <<<"$(stat -c '%.9X %.9Y %Z' "$tb/f")"
[ "$mt" = 981173106.123456789 ] && [ "$at" = "$mt" ] && [ "$ct" -ge $((now - 5)) ] &&
    ok "touch -a -d (mtime UTIME_OMIT): mtime kept, atime reads as the mtime (no atime kept: README), ctime moves" ||
    not_ok "touch -a -d" "atime $at mtime $mt ctime $ct, now $now"
touch -a "$tm/f"
read -r at mt <<<"$(stat -c '%.9X %.9Y' "$tb/f")"
[ "$mt" = 981173106.123456789 ] && [ "$at" = "$mt" ] &&
    ok "touch -a (UTIME_NOW on atime only): mtime kept" || not_ok "touch -a" "atime $at mtime $mt"
touch -m "$tm/f"
read -r at mt <<<"$(stat -c '%X %Y' "$tb/f")"
[ "$mt" -ge $((now - 5)) ] && [ "$mt" -le $((now + 5)) ] && [ "$at" = "$mt" ] &&
    ok "touch -m (UTIME_NOW on mtime only): mtime now" || not_ok "touch -m" "atime $at mtime $mt, now $now"
for t in '2040-01-01 00:00:00 UTC=2208988800' '2106-02-07 06:28:15 UTC=4294967295' \
         '1970-01-01 00:00:00 UTC=0'; do
    echo x >"$tm/y${t#*=}"
    touch -d "${t%=*}" "$tm/y${t#*=}"
    got=$(stat -c %Y "$tb/y${t#*=}")
    [ "$got" = "${t#*=}" ] && ok "mtime ${t%=*} reads back as ${t#*=}" || not_ok "mtime ${t%=*}" "reads $got, want ${t#*=}"
done
# NFSv3 times are unsigned 32-bit seconds: the Linux client clamps what it
# sends to 1970..2106 (the superblock's time range), whatever the server.
echo x >"$tm/pre1970"
touch -d '1969-12-31 23:59:59 UTC' "$tm/pre1970"
got=$(stat -c %Y "$tb/pre1970")
[ "$got" = 0 ] && ok "mtime 1969-12-31 23:59:59 reads back as 0: the client clamps to NFSv3's unsigned 32-bit range (knfsd the same)" ||
    not_ok "mtime before 1970" "reads $got, want 0 (the client clamps)"
echo x >"$tm/post2106"
touch -d '2200-01-01 00:00:00 UTC' "$tm/post2106"
got=$(stat -c %Y "$tb/post2106")
[ "$got" = 4294967295 ] && ok "mtime 2200-01-01 reads back as 4294967295 (2106-02-07 06:28:15): clamped the same way" ||
    not_ok "mtime after 2106" "reads $got, want 4294967295 (the client clamps)"
py '
good, got = wait_bucket(b"corners/times/", lambda k: all(x in k for x in (b"corners/times/y2208988800", b"corners/times/y4294967295", b"corners/times/y0", b"corners/times/pre1970")))
mt = lambda n: (got or {}).get(b"corners/times/" + n, (0, "", "-"))[2]
eq("the bucket keeps 2040, 2106, 1970-01-01 as mtimes", (mt(b"y2208988800"), mt(b"y4294967295"), mt(b"y0")),
   ("2208988800000000000ns", "4294967295000000000ns", "0ns"))
os.utime(p(A, "corners/times/y0"), ns=(0, 1234567890123456789))
good, got = wait_bucket(b"corners/times/", lambda k: k.get(b"corners/times/y0", (0, "", ""))[2] == "1234567890123456789ns")
eq("utimensat with nanoseconds on an uploaded file: the bucket keeps all nine digits", mt(b"y0"), "1234567890123456789ns")
' times
fi

# ---- modes ---------------------------------------------------------------
if want modes; then
section "modes"
md=$CX_A/corners/modes
mb=$CX_B/corners/modes
mkdir -p "$md/sg"
chown 0:1234 "$md/sg"
chmod 2777 "$md/sg"
echo r >"$md/sg/rootfile"
mkdir "$md/sg/sub"
as_user bash -c "echo u >'$md/sg/userfile'"
got=$(stat -c '%g' "$mb/sg/rootfile" "$mb/sg/userfile" | tr '\n' ' ')
[ "$got" = "1234 1234 " ] && ok "set-group-id folder: new files get its group (SysV, as ext4 and knfsd)" ||
    not_ok "files in a set-group-id folder" "groups $got, want 1234 1234"
got=$(stat -c '%g %a' "$mb/sg/sub")
[ "$got" = "1234 2755" ] && ok "a subfolder gets its group and the set-group-id bit (2755)" || not_ok "a subfolder of a set-group-id folder" "$got, want 1234 2755"
as_user chmod 2755 "$md/sg/userfile"
got=$(stat -c '%a' "$mb/sg/userfile")
[ "$got" = 755 ] && ok "chmod g+s by the owner not in the file's group: the bit is dropped (0755)" ||
    not_ok "chmod 2755 by a non-member" "mode $got, want 755"
echo s >"$md/suid" && chmod 4755 "$md/suid" && chown "$CX_UID" "$md/suid"
got=$(stat -c '%a %u' "$mb/suid")
[ "$got" = "755 $CX_UID" ] && ok "chown of a set-user-id file clears the bit" || not_ok "chown of a set-user-id file" "$got, want 755 $CX_UID"
echo s >"$md/suid2" && chmod 6777 "$md/suid2"
as_user bash -c "echo more >>'$md/suid2'"
got=$(stat -c '%a' "$mb/suid2")
[ "$got" = 777 ] && ok "a write by another user clears set-user-id and set-group-id (as knfsd: 6777 -> 777)" ||
    not_ok "a write by another user to a 6777 file" "mode $got, want 777"
echo own >"$md/suid3" && chmod 4755 "$md/suid3"
echo more >>"$md/suid3"
got=$(stat -c '%a' "$mb/suid3")
[ "$got" = 4755 ] && ok "a write by root keeps set-user-id (CAP_FSETID)" || not_ok "a write by root to a 4755 file" "mode $got"
mkdir "$md/sticky"
chmod 1777 "$md/sticky"
echo root >"$md/sticky/rootfile"
chmod 0666 "$md/sticky/rootfile"
fails "sticky folder: uid $CX_UID cannot remove root's file" "Operation not permitted" as_user rm -f "$md/sticky/rootfile"
fails "sticky folder: uid $CX_UID cannot rename root's file" "Operation not permitted" as_user mv "$md/sticky/rootfile" "$md/sticky/x"
check "sticky folder: uid $CX_UID writes root's 0666 file" as_user bash -c "echo w >>'$md/sticky/rootfile'"
check "sticky folder: uid $CX_UID creates, renames and removes its own file" \
    as_user bash -c "echo u >'$md/sticky/u' && mv '$md/sticky/u' '$md/sticky/u2' && rm '$md/sticky/u2'"
as_user bash -c "echo u >'$md/sticky/u3'"
check "sticky folder: root removes uid $CX_UID's file" rm "$md/sticky/u3"
[ -e "$mb/sticky/rootfile" ] && [ ! -e "$mb/sticky/x" ] && ok "root's file is still there" ||
    not_ok "root's file in the sticky folder" "$(ls -A "$mb/sticky" | tr '\n' ' ')"
fi

# ---- space ---------------------------------------------------------------
if want space; then
section "space"
py '
s = os.statvfs(A)
eq("statvfs: sizes non-zero, free <= size, available <= free",
   (s.f_bsize > 0, s.f_frsize > 0, s.f_blocks > 0, s.f_bfree <= s.f_blocks, s.f_bavail <= s.f_bfree, s.f_ffree <= s.f_files),
   (True, True, True, True, True, True))
d = p(A, "corners/space")
os.mkdir(d)
data = os.urandom(1 << 20)
write(p(d, "mib"), data)
write(p(d, "zero"), b"")
st = os.stat(p(B, "corners/space/mib"))
eq("a 1 MiB file: st_blocks covers its size (du)", st.st_blocks * 512 >= (1 << 20), True)
z = os.stat(p(B, "corners/space/zero"))
eq("a 0-byte file: size 0, reads empty", (z.st_size, read(p(B, "corners/space/zero"))), (0, b""))
r = subprocess.run(["du", "-k", p(B, "corners/space/mib"), p(B, "corners/space/zero")], capture_output=True, text=True)
sizes = [int(l.split()[0]) for l in r.stdout.splitlines()]
eq("du -k: >= 1024 for the 1 MiB file, 0 for the empty one", (len(sizes) == 2 and sizes[0] >= 1024, sizes[1:]), (True, [0]))
r = subprocess.run(["df", "-k", A], capture_output=True, text=True)
f = r.stdout.splitlines()[-1].split()
eq("df -k: size > 0, used <= size", (int(f[1]) > 0, 0 <= int(f[2]) <= int(f[1])), (True, True))
fd = os.open(p(d, "synced"), os.O_CREAT | os.O_WRONLY, 0o644)
data2 = os.urandom(300000)
os.write(fd, data2)
eq("fsync returns 0", os.fsync(fd), None)
os.write(fd, b"tail")
eq("fdatasync returns 0", os.fdatasync(fd), None)
os.close(fd)
dfd = os.open(d, os.O_RDONLY)
eq("fsync of a folder returns 0", os.fsync(dfd), None)
os.close(dfd)
sha = lambda b: hashlib.sha256(b).hexdigest()
good, got = wait_bucket(b"corners/space/", lambda k: all(x in k for x in (b"corners/space/synced", b"corners/space/zero", b"corners/space/mib"))
                        and k[b"corners/space/synced"][1] == sha(data2 + b"tail"))
g = got or {}
eq("the bucket: the fsynced bytes, the 0-byte object, the 1 MiB one (writeback_delay 1)",
   (g.get(b"corners/space/synced", (0, ""))[1], g.get(b"corners/space/zero", (-1,))[0], g.get(b"corners/space/mib", (0, ""))[1]),
   (sha(data2 + b"tail"), 0, sha(data)))
' space
fi

# ---- big folders ---------------------------------------------------------
if want big; then
section "big folders"
py '
N = int(os.environ["CX_COUNT"])
top = p(A, "corners/big")
os.mkdir(top)
t0 = time.time()
for i in range(N):
    if i % 100 == 0: os.mkdir(p(top, "d%02d" % (i // 100)))
    os.close(os.open(p(top, "d%02d" % (i // 100), "f%04d" % i), os.O_CREAT | os.O_WRONLY, 0o644))
print("# created %d empty files in %d folders in %.1fs" % (N, (N + 99) // 100, time.time() - t0))
n = sum(len(os.listdir(p(B, "corners/big", x))) for x in os.listdir(p(B, "corners/big")))
eq("%d files listed on the other mount" % N, n, N)
good, got = wait_bucket(b"corners/big/", lambda k: sum(1 for x in k if not x.endswith(b"/")) == N, full=False, wait=max(WAIT, N // 40))
eq("they reach the bucket", good or len(got or ()), True)
t0 = time.time()
r = subprocess.run(["rm", "-rf", "--", top], capture_output=True, text=True)
eq("rm -rf of the tree of %d files" % N, (r.returncode, r.stderr), (0, ""))
print("# rm -rf took %.1fs" % (time.time() - t0))
eq("it is gone on the other mount", os.path.exists(p(B, "corners/big")), False)
good, got = wait_bucket(b"corners/big/", lambda k: len(k) == 0, full=False, wait=max(WAIT, N // 40))
eq("the bucket has none of its keys left", good or "%d left" % len(got or ()), True)
# ls on one mount while the other creates.
import threading
os.mkdir(p(A, "corners/live"))
M = 300
errs = []
def creator():
    try:
        for i in range(M): write(p(A, "corners/live", "n%03d" % i), b"%d" % i)
    except OSError as e: errs.append(str(e))
th = threading.Thread(target=creator)
th.start()
seen, dups, strange, lerrs = [], 0, set(), []
allowed = {b"n%03d" % i for i in range(M)}
while th.is_alive() and len(seen) < 2000:
    try:
        ls = os.listdir(p(B, "corners/live"))
    except OSError as e:
        lerrs.append(str(e)); continue
    seen.append(len(ls))
    dups += len(ls) - len(set(ls))
    strange |= set(ls) - allowed
th.join()
final = sorted(os.listdir(p(B, "corners/live")))
print("# %d listings while the other mount created %d files: counts %s" % (len(seen), M, seen[:3] + ["..."] + seen[-3:]))
eq("ls while the other mount creates: no error, no duplicate, no stray name", (errs, lerrs, dups, sorted(strange)), ([], [], 0, []))
eq("and the last listing has all %d" % M, final, sorted(allowed))
eq("each file reads its bytes on the other mount", [x for x in final if read(p(B, "corners/live", x)) != b"%d" % int(x[1:])], [])
' big
fi
rm -rf "$CX_A/corners"
finish
