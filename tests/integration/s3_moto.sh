#!/usr/bin/env bash
# s3_moto.sh TEST_BINARY - run an S3 backend test against a private moto_server.
#
# Starts moto_server on a free 127.0.0.1 port, creates the test bucket and an
# IAM user (tests/integration/moto_setup.py), switches SigV4 checking on,
# starts tests/integration/faultproxy.py in front of moto, runs TEST_BINARY
# with BNFS_S3_* in its environment, and stops both servers whatever happens.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
test_bin=${1:?usage: s3_moto.sh TEST_BINARY}
name=$(basename "$test_bin")

if ! command -v moto_server >/dev/null 2>&1 || ! command -v python3 >/dev/null 2>&1; then
    echo "$name: SKIP: moto_server or python3 is not installed (tools/install-deps.sh test)"
    exit 0
fi

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

work=$(mktemp -d)
moto_pid= proxy_pid=
cleanup() {
    [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null || true
    [ -n "$moto_pid" ] && kill "$moto_pid" 2>/dev/null || true
    [ -n "$moto_pid" ] && wait "$moto_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

moto_port=$(free_port)
moto_server -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
moto_pid=$!
endpoint=http://127.0.0.1:$moto_port
for _ in $(seq 1 150); do # up to 30 s
    if curl -s -o /dev/null "$endpoint/moto-api/"; then break; fi
    if ! kill -0 "$moto_pid" 2>/dev/null; then cat "$work/moto.log"; exit 1; fi
    sleep 0.2
done

read -r access_key secret_key < <(python3 "$here/moto_setup.py" "$endpoint" bnfs-test)

proxy_port=$(free_port)
python3 "$here/faultproxy.py" "$proxy_port" "$moto_port" &
proxy_pid=$!
for _ in $(seq 1 50); do
    if curl -s -o /dev/null "http://127.0.0.1:$proxy_port/__fault__"; then break; fi
    sleep 0.1
done

# Evidence for the moto limitation the test works around: boto3, the
# reference signer, is refused for a key holding '+' just as we are.
if python3 -c 'import boto3' 2>/dev/null; then
    python3 - "$endpoint" "$access_key" "$secret_key" <<'PY' || true
import sys, boto3, botocore
ep, ak, sk = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=ep, region_name="us-east-1",
                  aws_access_key_id=ak, aws_secret_access_key=sk)
for key in ["evidence/plain-key", "evidence/plus+sign"]:
    try:
        s3.put_object(Bucket="bnfs-test", Key=key, Body=b"x")
        print(f"boto3 evidence: PUT {key!r} with moto checking on: OK")
    except botocore.exceptions.ClientError as e:
        print(f"boto3 evidence: PUT {key!r} with moto checking on: {e.response['Error']['Code']}")
PY
else
    echo "boto3 evidence: boto3 is not installed, skipped"
fi

export BNFS_S3_ENDPOINT=$endpoint BNFS_S3_BUCKET=bnfs-test
export BNFS_S3_ACCESS_KEY=$access_key BNFS_S3_SECRET_KEY=$secret_key
export BNFS_S3_PROXY=http://127.0.0.1:$proxy_port
rc=0
timeout 900 "$test_bin" || rc=$?
exit $rc
