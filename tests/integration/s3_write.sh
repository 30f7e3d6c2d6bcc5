#!/usr/bin/env bash
# s3_write.sh - the write path against an S3 bucket (moto_server, versioning
# on), through libnfs.  moto's SigV4 checking stays off: it mis-checks every
# listing with delimiter=/ (see s3_nfs.sh); the signing of PUT, multipart and
# copy requests is checked by s3_moto.sh with checking on.
#   - small and multipart uploads arrive byte-identical, with the
#     x-amz-meta-file-* attributes, and each written file makes exactly one
#     object version (the attributes travel in the same PUT);
#   - chmod of an uploaded file: one more version, new attributes, same bytes;
#   - rename of a file and of a directory (CopyObject + DeleteObject), remove,
#     rmdir; symlinks are small objects marked as links;
#   - an object changed in the bucket under local changes: the gateway's
#     version wins at upload, and the conflict is counted;
#   - outage: every store request fails (faultproxy answers 503), then the
#     store is stopped for 60 s (connections refused), while files are
#     written; the writes succeed, cached reads keep working, and once the
#     store answers again everything arrives.
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/moto_lib.sh"
OP=$IT_BUILD/tests/it_nfsop
TOOL=$IT_ROOT/bin/bucketnfs
it_setup
trap 'moto_stop_all; it_cleanup' EXIT
moto_start "$IT_TMP/moto.log" || { echo "s3_write: 0 passed, 1 failed"; exit 1; }
AK=AKIDOPENMOTO SK=open-moto-secret
faultproxy_start "$MOTO_PORT" || { echo "s3_write: 0 passed, 1 failed"; exit 1; }
export AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK
unset AWS_SESSION_TOKEN
s3py() { python3 - "$MOTO_ENDPOINT" "$@"; }
s3py <<'PY'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
s3.create_bucket(Bucket="bnfs-w")
s3.put_bucket_versioning(Bucket="bnfs-w", VersioningConfiguration={"Status": "Enabled"})
PY
it_write_s3_conf w "http://127.0.0.1:$PROXY_PORT" bnfs-w 'credentials = "env";' \
    'metadata_ttl = 300; writeback_delay = 1;'
sed -i 's/access = "ro"/access = "rw"/' "$IT_TMP/w/exports.conf"
conf=$IT_TMP/w/bucketnfs.conf
it_start w || { echo "s3_write: 0 passed, 1 failed"; exit 1; }
url="nfs://127.0.0.1/demo?nfsport=$NFS_PORT&mountport=$MOUNT_PORT"
u() { echo "nfs://127.0.0.1/demo/$1?nfsport=$NFS_PORT&mountport=$MOUNT_PORT"; }
flush() { timeout 120 "$TOOL" -c "$conf" flush --wait >/dev/null; }

# check_obj KEY LOCALFILE MODE: bytes, attributes and one version
check_obj() {
    s3py "$@" <<'PY'
import sys, boto3, hashlib
ep, key, local, mode = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=ep, region_name="us-east-1")
o = s3.get_object(Bucket="bnfs-w", Key=key)
body = o["Body"].read()
want = open(local, "rb").read()
assert body == want, f"{key}: {len(body)} bytes, want {len(want)} (or different bytes)"
m = o["Metadata"]
assert m.get("file-permissions") == mode, f"{key}: permissions {m}"
for k in ("file-owner", "file-group", "file-mtime"):
    assert k in m, f"{key}: no {k} in {m}"
v = [x for x in s3.list_object_versions(Bucket="bnfs-w", Prefix=key).get("Versions", []) if x["Key"] == key]
assert len(v) == 1, f"{key}: {len(v)} versions"
PY
}

head -c 100000 /dev/urandom >"$IT_TMP/small"
head -c $((40 << 20)) /dev/urandom >"$IT_TMP/big"
check "write a small file" nfs_tool nfs-cp "$IT_TMP/small" "$(u small.bin)"
check "write a 40 MiB file" nfs_tool nfs-cp "$IT_TMP/big" "$(u big.bin)"
check "flush --wait returns once all is uploaded" flush
check "small file: same bytes, attributes, one version" check_obj small.bin "$IT_TMP/small" 0100660
check "40 MiB file (multipart): same bytes, attributes, one version" check_obj big.bin "$IT_TMP/big" 0100660
check "read back through NFS after upload" bash -c "nfs-cat '$(u big.bin)' | cmp - '$IT_TMP/big'"

# Appending to a big uploaded file: what is still the object is copied in the store.
head -c 1000000 /dev/urandom >"$IT_TMP/tail"
cat "$IT_TMP/big" "$IT_TMP/tail" >"$IT_TMP/big2"
copied0=$("$TOOL" -c "$conf" stats | awk '$1 == "writeback" && $3 == "copied_bytes" {print $4}')
check "append 1 MB to the 40 MiB file" "$OP" "$url" append "$IT_TMP/tail" /big.bin
check "flush the append" flush
copied1=$("$TOOL" -c "$conf" stats | awk '$1 == "writeback" && $3 == "copied_bytes" {print $4}')
check "the append's upload copied 32 MiB in the store (UploadPartCopy) instead of sending it" \
    test "$((${copied1:-0} - ${copied0:-0}))" = $((32 << 20))
check "the appended object is byte-identical" s3py big.bin "$IT_TMP/big2" <<'PY'
import sys, boto3
ep, key, local = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=ep, region_name="us-east-1")
got = s3.get_object(Bucket="bnfs-w", Key=key)["Body"].read()
assert got == open(local, "rb").read(), len(got)
v = [x for x in s3.list_object_versions(Bucket="bnfs-w", Prefix=key).get("Versions", []) if x["Key"] == key]
assert len(v) == 2, f"{len(v)} versions"
PY
cp "$IT_TMP/big2" "$IT_TMP/big"

check "chmod an uploaded file" "$OP" "$url" chmod 600 /small.bin
flush
check "chmod: the object has the new mode and the same bytes" s3py small.bin "$IT_TMP/small" <<'PY'
import sys, boto3
ep, key, local = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=ep, region_name="us-east-1")
o = s3.get_object(Bucket="bnfs-w", Key=key)
assert o["Body"].read() == open(local, "rb").read()
assert o["Metadata"]["file-permissions"] == "0100600", o["Metadata"]
PY

check "mkdir" "$OP" "$url" mkdir /d
check "write into the new directory" nfs_tool nfs-cp "$IT_TMP/small" "$(u d/a.bin)"
check "symlink" "$OP" "$url" symlink ../small.bin /d/link
flush
check "rename a file (uploaded)" "$OP" "$url" mv /small.bin /renamed.bin
check "rename a directory (uploaded)" "$OP" "$url" mv /d /e
check "readlink after the directory rename" bash -c "[ \"\$('$OP' '$url' readlink /e/link)\" = ../small.bin ]"
flush # the directory's objects follow its RENAME in the background
check "the bucket holds the new names and not the old ones" s3py <<'PY'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
keys = {o["Key"] for o in s3.list_objects_v2(Bucket="bnfs-w").get("Contents", [])}
for k in ("renamed.bin", "e/", "e/a.bin", "e/link", "big.bin"):
    assert k in keys, f"{k} missing from {sorted(keys)}"
for k in ("small.bin", "d/", "d/a.bin", "d/link"):
    assert k not in keys, f"{k} still in {sorted(keys)}"
h = s3.head_object(Bucket="bnfs-w", Key="e/link")
assert h["Metadata"]["file-permissions"].startswith("0120"), h["Metadata"]
assert s3.get_object(Bucket="bnfs-w", Key="e/link")["Body"].read() == b"../small.bin"
PY
check "rmdir of a non-empty directory fails" bash -c "! '$OP' '$url' rmdir /e 2>/dev/null"
check "rm" "$OP" "$url" rm /e/a.bin
check "rm the link" "$OP" "$url" rm /e/link
check "rmdir" "$OP" "$url" rmdir /e
check "the bucket no longer has them" s3py <<'PY'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
keys = {o["Key"] for o in s3.list_objects_v2(Bucket="bnfs-w").get("Contents", [])}
assert not any(k.startswith("e/") for k in keys), sorted(keys)
PY

# Conflict: the object changes in the bucket while the gateway holds changes.
sed -i 's/writeback_delay = 1/writeback_delay = 30/' "$IT_TMP/w/exports.conf"
kill -HUP "${IT_PIDS[w]}"; sleep 0.5
head -c 5000 /dev/urandom >"$IT_TMP/mine"
check "write over an uploaded file" "$OP" "$url" put "$IT_TMP/mine" /renamed.bin
check "the overwrite has the new size (no stale SETATTR reply from the duplicate request cache)" \
    bash -c "[ \"\$('$OP' '$url' stat /renamed.bin | cut -d' ' -f1)\" = 5000 ]"
s3py <<'PY'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
s3.put_object(Bucket="bnfs-w", Key="renamed.bin", Body=b"written by another tool")
PY
before=$("$TOOL" -c "$conf" stats | awk '$1 == "writeback" && $3 == "conflicts" {print $4}')
flush
after=$("$TOOL" -c "$conf" stats | awk '$1 == "writeback" && $3 == "conflicts" {print $4}')
check "conflict: the gateway's version is in the bucket" s3py renamed.bin "$IT_TMP/mine" <<'PY'
import sys, boto3
ep, key, local = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=ep, region_name="us-east-1")
got = s3.get_object(Bucket="bnfs-w", Key=key)["Body"].read()
want = open(local, "rb").read()
assert got == want, f"{len(got)} bytes {got[:30]!r}, want {len(want)}"
PY
check "conflict: counted" test "${after:-0}" -gt "${before:-0}"
check "conflict: logged" grep -q "was changed in the bucket while it had changes here" "$IT_TMP/w/daemon.log"

# A directory made here (its marker not uploaded yet) whose file was uploaded, renamed.
check "mkdir (not uploaded: writeback_delay 30)" "$OP" "$url" mkdir /young
check "a file in it" "$OP" "$url" put "$IT_TMP/mine" /young/f
check "upload that file alone" timeout 60 "$TOOL" -c "$conf" flush /demo young/f --wait
check "rename the directory before its marker is uploaded" "$OP" "$url" mv /young /grown
check "the uploaded file moved in the bucket too" s3py <<'PY'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
keys = {o["Key"] for o in s3.list_objects_v2(Bucket="bnfs-w").get("Contents", [])}
assert "grown/f" in keys and "young/f" not in keys, sorted(keys)
PY
check "read it back under its new name" bash -c "nfs-cat '$(u grown/f)' | cmp - '$IT_TMP/mine'"

# Outage: every request to the store fails for a while.
sed -i 's/writeback_delay = 30/writeback_delay = 0/' "$IT_TMP/w/exports.conf"
kill -HUP "${IT_PIDS[w]}"; sleep 0.5
check "a cached read before the outage" bash -c "nfs-cat '$(u big.bin)' | cmp - '$IT_TMP/big'"
faultproxy_arm 503 1000000
for i in 1 2 3 4 5; do
    head -c $((i * 300000)) /dev/urandom >"$IT_TMP/out$i"
    check "write during the outage ($i)" nfs_tool nfs-cp "$IT_TMP/out$i" "$(u out$i.bin)"
done
check "cached read during the outage" bash -c "nfs-cat '$(u big.bin)' | cmp - '$IT_TMP/big'"
check "read back a file written during the outage" bash -c "nfs-cat '$(u out3.bin)' | cmp - '$IT_TMP/out3'"
sleep 3
check "nothing reached the bucket during the outage" s3py <<'PY'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
keys = {o["Key"] for o in s3.list_objects_v2(Bucket="bnfs-w").get("Contents", [])}
assert not any(k.startswith("out") for k in keys), sorted(keys)
PY
faultproxy_arm none 0
check "after the outage, flush --wait" flush
for i in 1 2 3 4 5; do
    check "file $i written during the outage is in the bucket" check_obj "out$i.bin" "$IT_TMP/out$i" 0100660
done

# The store stopped for 60 s (nothing listens on its port: connections are
# refused), while files are written every few seconds; then it is started
# again on the same port and everything written arrives.
kill "$PROXY_PID"; wait "$PROXY_PID" 2>/dev/null
t0=$SECONDS
n=0
while [ $((SECONDS - t0)) -lt 60 ] && [ $n -lt 12 ]; do
    n=$((n + 1))
    head -c $((n * 100000)) /dev/urandom >"$IT_TMP/down$n"
    if ! nfs_tool nfs-cp "$IT_TMP/down$n" "$(u down$n.bin)" >/dev/null 2>&1; then
        fail "write $n while the store is stopped"
    fi
    sleep 4
done
check "a cached read while the store is stopped" bash -c "nfs-cat '$(u big.bin)' | cmp - '$IT_TMP/big'"
check "a file written while the store is stopped reads back" bash -c "nfs-cat '$(u down2.bin)' | cmp - '$IT_TMP/down2'"
while [ $((SECONDS - t0)) -lt 60 ]; do sleep 1; done
ok "$n files written while the store was stopped for $((SECONDS - t0)) s"
python3 "$(dirname "$0")/faultproxy.py" "$PROXY_PORT" "$MOTO_PORT" &
PROXY_PID=$!
MOTO_LIB_PIDS+=("$PROXY_PID")
for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$PROXY_PORT/__fault__" && break; sleep 0.1; done
check "the store is back: flush --wait" flush
for i in $(seq 1 "$n"); do
    check "file $i written while the store was stopped is in the bucket" \
        check_obj "down$i.bin" "$IT_TMP/down$i" 0100660
done
"$TOOL" -c "$conf" stats >"$IT_TMP/stats.txt"
st() { awk -v n="$1" '$1 == "store" && $3 == n {print $4}' "$IT_TMP/stats.txt"; }
check "the store's answers are counted by HTTP status: 2xx, 5xx (SlowDown), none (stopped)" \
    test "$(st http_2xx)" -gt 0 -a "$(st http_5xx)" -gt 0 -a "$(st http_failed)" -gt 0
it_stop w || fail "daemon stopped cleanly"
it_done
