#!/usr/bin/env bash
# capture-s3hdr.sh [OUT_DIR] - seed corpus of fuzz_s3hdr from moto_server.
#
# Starts moto_server on 127.0.0.1 (free port), sends with curl the kinds of
# request bucketnfsd sends (PUT with the x-amz-meta-file-* attributes, HEAD,
# GET whole and ranged, a range past the end (416), a missing key (404),
# CopyObject, a multipart upload, a listing, DELETE, a versioned bucket) and
# keeps the response header block of each (curl -D) as one corpus file, as
# curl's header callback sees it: one line per CRLF.  Identical files are
# kept once.  OUT_DIR defaults to tests/fuzz/corpus/fuzz_s3hdr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/corpus/fuzz_s3hdr}
. "$here/../integration/moto_lib.sh"
work=$(mktemp -d)
trap 'moto_stop_all; rm -rf "$work"' EXIT
mkdir -p "$out"

moto_start "$work/moto.log"
ep=$MOTO_ENDPOINT
# Signed as bucketnfsd signs (moto checks no signature until told to, but
# answers 403 to anonymous reads).
sign=(--aws-sigv4 'aws:amz:us-east-1:s3' --user 'capture:capture')
n=0
# hdrs NAME CURL_ARGS...: one request, its response headers into the corpus.
hdrs() {
    local name=$1
    shift
    if ! curl -s --max-time 20 "${sign[@]}" -H 'Content-Type: application/octet-stream' \
        -o /dev/null -D "$work/h" "$@"; then
        echo "capture-s3hdr: $name: curl failed" >&2
        return 1
    fi
    local sum
    sum=$(sha1sum <"$work/h" | cut -c1-16)
    cp "$work/h" "$out/moto-$name-$sum"
    n=$((n + 1))
}
meta=(-H 'x-amz-meta-file-permissions: 0100644' -H 'x-amz-meta-file-owner: 1000'
      -H 'x-amz-meta-file-group: 100' -H 'x-amz-meta-file-mtime: 1733241600123456789ns')
head -c 5000 /dev/urandom >"$work/body"

hdrs create-bucket -X PUT "$ep/bnfs-hdr"
hdrs put "${meta[@]}" -X PUT --data-binary @"$work/body" "$ep/bnfs-hdr/f.bin"
hdrs put-link -X PUT -H 'x-amz-meta-file-permissions: 0120777' -H 'x-amz-meta-file-owner: 0' \
    -H 'x-amz-meta-file-group: 0' -H 'x-amz-meta-file-mtime: 5ns' --data-binary '../f.bin' "$ep/bnfs-hdr/l"
hdrs put-dir -X PUT -H 'x-amz-meta-file-permissions: 040755' --data-binary '' "$ep/bnfs-hdr/d/"
hdrs put-foreign -X PUT --data-binary 'no attributes' "$ep/bnfs-hdr/foreign.txt"
hdrs head -I "$ep/bnfs-hdr/f.bin"
hdrs head-foreign -I "$ep/bnfs-hdr/foreign.txt"
hdrs head-missing -I "$ep/bnfs-hdr/nope"
hdrs get "$ep/bnfs-hdr/f.bin"
hdrs get-range -H 'Range: bytes=100-1099' "$ep/bnfs-hdr/f.bin"
hdrs get-range-tail -H 'Range: bytes=4000-9999' "$ep/bnfs-hdr/f.bin"
hdrs get-range-past -H 'Range: bytes=6000-6999' "$ep/bnfs-hdr/f.bin"
etag=$(curl -s "${sign[@]}" -I "$ep/bnfs-hdr/f.bin" | tr -d '\r' | awk -F': ' 'tolower($1) == "etag" {print $2}')
hdrs get-if-match -H "If-Match: $etag" -H 'Range: bytes=0-9' "$ep/bnfs-hdr/f.bin"
hdrs get-if-match-stale -H 'If-Match: "0123"' "$ep/bnfs-hdr/f.bin"
hdrs get-missing "$ep/bnfs-hdr/nope"
hdrs copy -X PUT -H 'x-amz-copy-source: /bnfs-hdr/f.bin' -H 'x-amz-metadata-directive: REPLACE' \
    "${meta[@]}" "$ep/bnfs-hdr/g.bin"
hdrs mp-init -X POST "$ep/bnfs-hdr/big?uploads="
upload=$(curl -s "${sign[@]}" -X POST "$ep/bnfs-hdr/big2?uploads=" | sed -n 's|.*<UploadId>\(.*\)</UploadId>.*|\1|p')
hdrs mp-part -X PUT --data-binary @"$work/body" "$ep/bnfs-hdr/big2?partNumber=1&uploadId=$upload"
hdrs list "$ep/bnfs-hdr?list-type=2&prefix=&delimiter=/"
hdrs list-missing-bucket "$ep/nobucket?list-type=2"
hdrs delete -X DELETE "$ep/bnfs-hdr/g.bin"
hdrs expect-100 -X PUT -H 'Expect: 100-continue' --data-binary @"$work/body" "$ep/bnfs-hdr/e.bin"
hdrs create-versioned -X PUT "$ep/bnfs-ver"
hdrs versioning -X PUT --data-binary \
    '<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>' "$ep/bnfs-ver?versioning="
hdrs put-versioned -X PUT "${meta[@]}" --data-binary 'v1' "$ep/bnfs-ver/k"
hdrs head-versioned -I "$ep/bnfs-ver/k"
echo "capture-s3hdr: $n answers, $(ls "$out" | wc -l) files in $out"
