#!/usr/bin/env bash
# access.sh - access control end to end: a daemon on 127.0.0.1 whose exports
# name clients by address, by host name and with per-client options, and a
# `secure` export, and two read-write exports squashing root and everyone;
# access.py calls it over raw RPC from 127.0.0.1/.2/.3 and from privileged
# and unprivileged ports, and checks who owns what it creates.  Also: a broken clients entry is
# refused by `bucketnfsd -t` with file:line.  Prints "N passed, N failed".
set -u
. "$(dirname "$0")/lib.sh"
it_setup

buckets=$IT_TMP/buckets
mkdir -p "$buckets/open" "$buckets/secure" "$buckets/sqroot" "$buckets/sqall"
echo "secret of uid 1000" >"$buckets/open/mine.txt"
python3 - "$buckets/open/mine.txt" <<'PY'
import os, sys
for k, v in (("permissions", "0100600"), ("owner", "1000"), ("group", "1000")):
    os.setxattr(sys.argv[1], "user.bucketnfs.file-" + k, v.encode())
PY
echo hello >"$buckets/secure/hello.txt"

it_write_conf acl "$buckets"
cat >"$IT_TMP/acl/exports.conf" <<CONF
exports = (
  { path = "/open"; store = "local"; bucket = "open"; access = "ro"; squash = "root";
    clients = ( "localhost", { match = "127.0.0.3"; access = "rw"; squash = "all"; } ); },
  { path = "/secure"; store = "local"; bucket = "secure"; secure = true;
    clients = ( "127.0.0.0/8" ); },
  { path = "/sqroot"; store = "local"; bucket = "sqroot"; access = "rw"; squash = "root";
    anon_uid = 4242; anon_gid = 4343; dir_mode = "0777"; writeback_delay = 0; clients = ( "127.0.0.0/8" ); },
  { path = "/sqall"; store = "local"; bucket = "sqall"; access = "rw"; squash = "all";
    anon_uid = 5151; anon_gid = 5252; dir_mode = "0777"; writeback_delay = 0; clients = ( "127.0.0.0/8" ); }
);
CONF
if python3 -c 'import os,sys; sys.exit(os.getxattr(sys.argv[1], "user.bucketnfs.file-owner") != b"1000")' "$buckets/open/mine.txt" 2>/dev/null; then
    ok "the fixture's file carries owner 1000 and mode 0600"
else
    fail "the fixture's file carries owner 1000 and mode 0600" "xattrs could not be set here"
fi
it_start acl || { fail "daemon starts" "see above"; it_done; exit 1; }
ok "daemon starts with host-name and per-client entries"

it_sub access python3 "$IT_ROOT/tests/integration/access.py" "$NFS_PORT" "$MOUNT_PORT"

if grep -q "refused a call from 127.0.0.2" "$IT_TMP/acl/daemon.log" 2>/dev/null ||
   grep -rq "refused a call from 127.0.0.2" "$IT_TMP/acl/" 2>/dev/null; then
    ok "refused calls are logged with the client's address"
else
    fail "refused calls are logged with the client's address" "$(ls "$IT_TMP/acl")"
fi

# The squashed owner reaches the bucket: the uploaded objects' POSIX xattrs
# (polled: the upload follows the CREATE, 20 s at most).
owner_in_bucket() {
    python3 -c 'import os, sys
g = lambda k: os.getxattr(sys.argv[1], "user.bucketnfs.file-" + k).decode()
print(g("owner") + ":" + g("group"))' "$1" 2>/dev/null
}
for want in "sqroot/by-root 4242:4343" "sqall/by-1000 5151:5252"; do
    f=${want% *} got=""
    for _ in $(seq 200); do
        got=$(owner_in_bucket "$buckets/$f")
        [ "$got" = "${want#* }" ] && break
        sleep 0.1
    done
    if [ "$got" = "${want#* }" ]; then ok "the object $f in the bucket is owned by $got"
    else fail "the object $f in the bucket is owned by ${want#* }" "got '$got'"; fi
done

# A clients entry that is neither an address nor a resolvable name: file:line.
cat >"$IT_TMP/acl/exports.conf" <<CONF
exports = (
  { path = "/open"; store = "local"; bucket = "open";
    clients = ( { match = "no-such-host.invalid"; access = "rw"; } ); }
);
CONF
out=$("$IT_BIN" -t -c "$IT_TMP/acl/bucketnfs.conf" 2>&1)
case "$out" in
*"exports.conf:3:"*"cannot resolve host name"*) ok "bucketnfsd -t names file:line of an unresolvable client" ;;
*) fail "bucketnfsd -t names file:line of an unresolvable client" "$out" ;;
esac
it_done
