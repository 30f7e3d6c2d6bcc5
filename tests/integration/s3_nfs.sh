#!/usr/bin/env bash
# s3_nfs.sh - an NFS client reads S3 buckets through bucketnfsd, end to end.
#
# Two private moto_servers on free 127.0.0.1 ports:
#   open    SigV4 checking off: the big tree, awkward names, metadata, faults
#   signed  SigV4 / IAM checking on (moto_setup.py): right and wrong secrets
# moto mis-checks correct signatures whenever a key or a query value holds a
# character its framework re-quotes (it_s3_moto.c lists them, s3_moto.sh
# shows boto3 refused alike).  Every listing the server sends carries
# delimiter=/ (and prefix=dir/), so no listing passes moto's check, even
# boto3's.  Hence the tree with awkward keys is served from the open moto,
# and on the signed one listings run while checking is briefly off; every
# GET and HEAD there is checked.
#
# Sections:
#  1. boto3 uploads a local mirror tree (3 levels, 2,500 objects in one
#     folder, a 64 MB multipart object, awkward names, an empty-folder
#     marker) plus keys no file can be named by; libnfs (it_core) walks the
#     export and compares every name, type, size, mode and byte; the daemon
#     logs one line per skipped key.
#  2. x-amz-meta-file-* metadata written by boto3 shows over NFS after the
#     metadata TTL.
#  3. faultproxy.py between the daemon and moto: 503 SlowDown and dropped
#     connections on every request -> NFS3ERR_JUKEBOX in bounded time, then
#     NFS3_OK when the store is healthy; an object deleted in the bucket ->
#     NFS3ERR_STALE after the TTL.
#  4. the signed moto: reads with the right secret are accepted; the same
#     daemon restarted with a wrong secret still mounts, and READDIR, LOOKUP,
#     GETATTR and READ answer NFS3ERR_ACCES (S3 403).
# Prints "N passed, N failed" last.  BNFS_S3_NFS_BIG_MB=N makes the big
# object N MB instead of 64.  moto reads a whole object for every ranged GET,
# so reading an object of N blocks costs it N x N MB: at 300 MB (the old
# default) the walk outgrew its time limit once the block cache fetched
# ahead in parallel; 64 MB still takes the multipart path (8 MB parts).
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/moto_lib.sh"
it_setup
trap 'moto_stop_all; it_cleanup' EXIT

for tool in moto_server python3 curl; do
    command -v "$tool" >/dev/null || { fail "$tool installed" "tools/install-deps.sh test"; it_done; exit 1; }
done
python3 -c 'import boto3' 2>/dev/null || { fail "boto3 installed" "python3-boto3"; it_done; exit 1; }
for b in "$IT_BIN" "$IT_BUILD/tests/it_core" "$IT_BUILD/tests/it_handles"; do
    [ -x "$b" ] || { fail "$b built" "make it first"; it_done; exit 1; }
done

seed() { python3 "$here/s3_seed.py" "$@"; }
handles() { "$IT_BUILD/tests/it_handles" "$NFS_PORT" "$MOUNT_PORT" "$@"; }
# expect NAME OP STATUS ARG: one it_handles "expect" call, bounded to 60 s.
expect() {
    local name=$1; shift
    local t0=$SECONDS
    timeout 60 "$IT_BUILD/tests/it_handles" "$NFS_PORT" "$MOUNT_PORT" expect "$@" \
        >"$IT_TMP/expect.out" 2>&1
    local rc=$?
    grep '^#' "$IT_TMP/expect.out"
    if [ $rc = 0 ]; then ok "$name ($((SECONDS - t0)) s)"
    else fail "$name" "rc=$rc $(grep -v '^#' "$IT_TMP/expect.out" | tail -5)"; fi
}

moto_start "$IT_TMP/moto-open.log" || { fail "open moto_server starts" ""; it_done; exit 1; }
open_port=$MOTO_PORT open_ep=$MOTO_ENDPOINT
# Any key is accepted while checking is off; the daemon reads them from its environment.
export AWS_ACCESS_KEY_ID=AKIDOPENMOTO AWS_SECRET_ACCESS_KEY=open-moto-secret
unset AWS_SESSION_TOKEN
opn() { seed "$open_ep" "$1" AKIDOPENMOTO open-moto-secret "${@:2}"; }

# ---- 1. a mirror tree read back byte-identical ----------------------------------
t0=$SECONDS
if opn tree bucket && opn tree tree "$IT_TMP/mirror" "${BNFS_S3_NFS_BIG_MB:-64}"; then
    ok "boto3 uploads the mirror tree ($((SECONDS - t0)) s)"
else
    fail "boto3 uploads the mirror tree" "see above"; it_done; exit 1
fi
it_write_s3_conf tree "$open_ep" tree 'credentials = "env";' 'metadata_ttl = 600;'
it_start tree || { fail "daemon starts with an s3 store" ""; it_done; exit 1; }
ok "daemon starts with an s3 store (ports $NFS_PORT, $MOUNT_PORT)"
url="nfs://127.0.0.1/demo?nfsport=$NFS_PORT&mountport=$MOUNT_PORT"
BNFS_IT_NO_MTIME=1 timeout 400 "$IT_BUILD/tests/it_core" "$url" "$IT_TMP/mirror" \
    >"$IT_TMP/it_core.out" 2>&1
rc=$?
grep '^#' "$IT_TMP/it_core.out"
name="libnfs: every name, type, size, default mode and byte of the bucket (2,500-object folder, 64 MB multipart object, awkward names, empty folder), EOF"
if [ $rc = 0 ]; then ok "$name"
else fail "$name" "rc=$rc $(grep -v '^#' "$IT_TMP/it_core.out" | tail -15)"; fi

# Skipped keys: one warning each for this one listing of their folders (TTL 600).
long=$(printf 'x%.0s' $(seq 1 300))
for k in "bad//" "dir/../" "$long"; do
    n=$(grep -c -F "skipping object $k: not a usable file name" "$IT_TMP/tree/daemon.log")
    if [ "$n" = 1 ]; then ok "daemon logs one line for the invalid key ${k:0:20}"
    else fail "daemon logs one line for the invalid key ${k:0:20}" "$n lines"; fi
done
if kill -0 "${IT_PIDS[tree]}" 2>/dev/null && it_stop tree; then ok "daemon still up after the walk, stops cleanly"
else fail "daemon still up after the walk, stops cleanly" "$(tail -5 "$IT_TMP/tree/daemon.log")"; fi

# ---- 2. POSIX metadata from the object, after the TTL ---------------------------
opn live bucket >/dev/null
printf 'written by another tool\n' >"$IT_TMP/owned.txt"
printf 'a file that will go away\n' >"$IT_TMP/doomed.txt"
opn live put meta/owned.txt "$IT_TMP/owned.txt" >/dev/null
opn live put meta/doomed.txt "$IT_TMP/doomed.txt" >/dev/null
opn live put unread.txt "$IT_TMP/doomed.txt" >/dev/null
faultproxy_start "$open_port" || { fail "faultproxy starts" ""; it_done; exit 1; }
it_write_s3_conf live "http://127.0.0.1:$PROXY_PORT" live 'credentials = "env";' 'metadata_ttl = 1;'
it_start live || { fail "daemon starts behind the fault proxy" ""; it_done; exit 1; }
handles stat meta/owned.txt >"$IT_TMP/stat0.out" 2>&1
if grep -q '^meta/owned.txt 100644 ' "$IT_TMP/stat0.out"; then ok "an object without metadata has the export's default mode"
else fail "an object without metadata has the export's default mode" "$(cat "$IT_TMP/stat0.out")"; fi
mtime_ns=1600000000123456789
opn live put meta/owned.txt "$IT_TMP/owned.txt" 0100600 1234 2345 $mtime_ns >/dev/null
opn live put meta/new.txt "$IT_TMP/owned.txt" 0100640 4321 5432 $mtime_ns >/dev/null
sleep 1.5
handles stat meta/owned.txt meta/new.txt >"$IT_TMP/stat1.out" 2>&1
size=$(stat -c %s "$IT_TMP/owned.txt")
for want in "meta/owned.txt 100600 1234 2345 $size 1600000000" "meta/new.txt 100640 4321 5432 $size 1600000000"; do
    if grep -qx "$want" "$IT_TMP/stat1.out"; then ok "boto3 x-amz-meta-file-* shows over NFS after the TTL: $want"
    else fail "boto3 x-amz-meta-file-* shows over NFS after the TTL: $want" "$(cat "$IT_TMP/stat1.out")"; fi
done

# ---- 3. store failures as the client sees them ----------------------------------
handles save "$IT_TMP/h-owned" meta/owned.txt >/dev/null 2>&1 || fail "handle saved" "meta/owned.txt"
handles save "$IT_TMP/h-unread" unread.txt >/dev/null 2>&1 || fail "handle saved" "unread.txt"
handles save "$IT_TMP/h-doomed" meta/doomed.txt >/dev/null 2>&1 || fail "handle saved" "meta/doomed.txt"
faultproxy_arm 503 100000
sleep 1.5
expect "503 SlowDown on every try: GETATTR after the TTL answers NFS3ERR_JUKEBOX" getattr NFS3ERR_JUKEBOX "$IT_TMP/h-owned"
expect "503 SlowDown on every try: READ of a never-read file answers NFS3ERR_JUKEBOX" read NFS3ERR_JUKEBOX "$IT_TMP/h-unread"
faultproxy_arm drop 100000
sleep 1.1
expect "dropped connections: GETATTR answers NFS3ERR_JUKEBOX" getattr NFS3ERR_JUKEBOX "$IT_TMP/h-owned"
faultproxy_arm none 0
expect "store healthy again: the same GETATTR answers NFS3_OK" getattr NFS3_OK "$IT_TMP/h-owned"
expect "store healthy again: the same READ answers NFS3_OK" read NFS3_OK "$IT_TMP/h-unread"
# (HEAD answers carry no body, so no S3 code: the status tells.)
if grep -q 'status 503 attempt 5/5' "$IT_TMP/live/daemon.log"; then ok "each failed try is logged, up to the 5th"
else fail "each failed try is logged, up to the 5th" "$(grep -m3 's3:' "$IT_TMP/live/daemon.log")"; fi
opn live delete meta/doomed.txt >/dev/null
sleep 1.5
expect "an object deleted in the bucket: GETATTR answers NFS3ERR_STALE after the TTL" getattr NFS3ERR_STALE "$IT_TMP/h-doomed"
expect "an object deleted in the bucket: LOOKUP answers NFS3ERR_NOENT" lookup NFS3ERR_NOENT meta/doomed.txt
it_stop live || fail "daemon behind the proxy stops cleanly" "$(tail -3 "$IT_TMP/live/daemon.log")"

# ---- 4. signatures checked: right and wrong secret ------------------------------
moto_start "$IT_TMP/moto-signed.log" || { fail "signed moto_server starts" ""; it_done; exit 1; }
signed_ep=$MOTO_ENDPOINT
read -r ak sk _ < <(python3 "$here/moto_setup.py" "$signed_ep" signed 2>/dev/null)
if [ -n "${sk:-}" ] && seed "$signed_ep" signed "$ak" "$sk" plain "$IT_TMP/plain" >/dev/null; then
    ok "signed moto: IAM user created, checking on, boto3 uploads with its key"
else
    fail "signed moto: IAM user created, checking on, boto3 uploads with its key" "$(tail -5 "$IT_TMP/moto-signed.log")"
    it_done; exit 1
fi
if seed "$signed_ep" signed "$ak" wrong-secret put x "$IT_TMP/owned.txt" >/dev/null 2>&1; then
    fail "signed moto refuses boto3 with a wrong secret" "accepted"
else ok "signed moto refuses boto3 with a wrong secret"; fi
signed_conf() { # signed_conf SECRET TTL
    it_write_s3_conf signed "$signed_ep" signed \
        "credentials = \"config\"; access_key = \"$ak\"; secret_key = \"$1\";" "metadata_ttl = $2;"
}
signed_conf "$sk" 600
it_start signed || { fail "daemon starts with credentials from its 0600 config" ""; it_done; exit 1; }
url="nfs://127.0.0.1/demo?nfsport=$NFS_PORT&mountport=$MOUNT_PORT"
# Listings (delimiter=/) while moto's checking is off, as explained at the top.
moto_auth "$signed_ep" off
BNFS_IT_NO_MTIME=1 timeout 120 "$IT_BUILD/tests/it_core" "$url" "$IT_TMP/plain" >"$IT_TMP/plain1.out" 2>&1
handles save "$IT_TMP/h-signed" plain.txt drive/lidar/log-2m.bin >/dev/null 2>&1 || fail "handles saved" "signed"
moto_auth "$signed_ep" on
# Listings are cached (TTL 600): every READ below is a GET moto checks.
BNFS_IT_NO_MTIME=1 timeout 120 "$IT_BUILD/tests/it_core" "$url" "$IT_TMP/plain" >"$IT_TMP/plain2.out" 2>&1
rc=$?
grep '^#' "$IT_TMP/plain2.out"
if [ $rc = 0 ]; then ok "right secret, checking on: every file reads back byte-identical"
else fail "right secret, checking on: every file reads back byte-identical" "$(grep -v '^#' "$IT_TMP/plain2.out" | tail -8)"; fi
it_stop signed || fail "signed daemon stops" ""
signed_conf "$sk" 1
it_start signed || fail "signed daemon restarts" ""
sleep 1.1
expect "right secret, checking on: GETATTR after the TTL (a checked HEAD) answers NFS3_OK" getattr NFS3_OK "$IT_TMP/h-signed"
it_stop signed || fail "signed daemon stops" ""
if [ "$(stat -c %a "$IT_TMP/signed/bucketnfs.conf")" = 600 ]; then ok "the config holding the secret is 0600"
else fail "the config holding the secret is 0600" "$(stat -c %a "$IT_TMP/signed/bucketnfs.conf")"; fi
signed_conf "wrong-${sk}" 1
it_start signed || fail "daemon starts with a wrong secret (it is only used on the first request)" ""
sleep 1.1
# Each of these MNTs first: a wrong secret does not stop the mount (nothing is listed yet).
expect "wrong secret: MNT works, READDIR of the root answers NFS3ERR_ACCES" readdir NFS3ERR_ACCES .
expect "wrong secret: LOOKUP answers NFS3ERR_ACCES" lookup NFS3ERR_ACCES drive/lidar
expect "wrong secret: GETATTR of a held handle answers NFS3ERR_ACCES" getattr NFS3ERR_ACCES "$IT_TMP/h-signed"
expect "wrong secret: READ answers NFS3ERR_ACCES" read NFS3ERR_ACCES "$IT_TMP/h-signed"
if grep -q 'status 403' "$IT_TMP/signed/daemon.log" && ! grep -q -F "wrong-${sk}" "$IT_TMP/signed/daemon.log"; then
    ok "the 403s are logged, the secret is not"
else fail "the 403s are logged, the secret is not" "$(grep -m3 's3:' "$IT_TMP/signed/daemon.log")"; fi
it_stop signed || fail "daemon with a wrong secret stops cleanly" ""

if grep -qi 'sanitizer\|runtime error' "$IT_TMP"/*/daemon.log; then
    fail "no sanitizer reports in the daemon logs" "$(grep -i -m3 'sanitizer\|runtime error' "$IT_TMP"/*/daemon.log)"
fi
it_done
