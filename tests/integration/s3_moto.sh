#!/usr/bin/env bash
# s3_moto.sh [TEST_BINARY...] - run the S3 backend tests against a private
# moto_server.
#
# Starts moto_server on a free 127.0.0.1 port, creates the test bucket and an
# IAM user (tests/integration/moto_setup.py), switches SigV4 checking on,
# starts tests/integration/faultproxy.py in front of moto, runs each test
# binary (default: it_s3_moto and it_s3_faults from $IT_BUILD/tests or
# build/tests) with BNFS_S3_* in its environment, prints one closing
# "N passed, N failed" line adding theirs up, and stops both servers
# whatever happens.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${IT_BUILD:-$root/build}
if [ $# -gt 0 ]; then
    tests=("$@")
else
    tests=("$build/tests/it_s3_moto" "$build/tests/it_s3_faults")
fi
for t in "${tests[@]}"; do
    if [ ! -x "$t" ]; then
        echo "s3_moto: $t is not built (make $t)"
        echo "s3_moto: 0 passed, 1 failed"
        exit 1
    fi
done

if ! command -v moto_server >/dev/null 2>&1 || ! command -v python3 >/dev/null 2>&1; then
    echo "s3_moto: moto_server or python3 is not installed (tools/install-deps.sh test)"
    echo "s3_moto: 0 passed, 1 failed"
    exit 1
fi

. "$here/moto_lib.sh"

work=$(mktemp -d)
cleanup() {
    moto_stop_all
    rm -rf "$work"
}
trap cleanup EXIT

moto_start "$work/moto.log" || exit 1
endpoint=$MOTO_ENDPOINT
moto_port=$MOTO_PORT

read -r access_key secret_key tmp_key tmp_secret tmp_token \
    < <(python3 "$here/moto_setup.py" "$endpoint" bnfs-test)
if [ -z "${tmp_token:-}" ]; then
    echo "s3_moto: moto setup failed"; cat "$work/moto.log"
    echo "s3_moto: 0 passed, 1 failed"
    exit 1
fi

faultproxy_start "$moto_port" || exit 1
proxy_port=$PROXY_PORT

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
export BNFS_S3_TMP_ACCESS_KEY=$tmp_key BNFS_S3_TMP_SECRET_KEY=$tmp_secret
export BNFS_S3_TMP_TOKEN=$tmp_token
export BNFS_S3_PROXY=http://127.0.0.1:$proxy_port
passed=0 failed=0
for t in "${tests[@]}"; do
    out=$work/$(basename "$t").out
    timeout --kill-after=5 400 "$t" 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$out" | tail -1)
    p=$(echo "$line" | sed -nE 's/.*[^0-9]([0-9]+) passed, ([0-9]+) failed.*/\1/p')
    f=$(echo "$line" | sed -nE 's/.*[^0-9]([0-9]+) passed, ([0-9]+) failed.*/\2/p')
    p=${p:-0} f=${f:-0}
    if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; fi # crashed or timed out
    passed=$((passed + p)) failed=$((failed + f))
done
echo "s3_moto: $passed passed, $failed failed"
[ "$failed" = 0 ]
