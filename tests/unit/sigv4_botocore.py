#!/usr/bin/env python3
"""sigv4_botocore.py TOOL - compare bucketnfs's S3 signer with botocore's.

For each S3 request below (awkward keys: spaces, '+', '=', '&', '~', '%',
UTF-8, '//' and '..' segments; awkward query values; metadata, range,
copy-source, copy-source-range / -if-match and session-token headers) botocore's S3SigV4Auth signs it at a
fixed time, and TOOL (test_sigv4_botocore --sign ...) signs the same raw
request.  The Authorization headers must be equal byte for byte.
Prints "botocore VERSION: N passed, N failed"; exits 1 on any difference.
"""
import datetime
import hashlib
import subprocess
import sys
from unittest import mock
from urllib.parse import quote

import botocore
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

WHEN = datetime.datetime(2026, 3, 14, 15, 9, 26)
EPOCH = int(WHEN.replace(tzinfo=datetime.timezone.utc).timestamp())
AK, SK = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = "FQoGZXIvYXdzE+token/with=signs=="

CASES = [
    # (method, scheme+host, raw path, query pairs, extra headers, body, token?)
    ("GET", "http://127.0.0.1:9000", "/examplebucket/with space/and+plus=eq&amp~tilde",
     [], [("Range", "bytes=0-1048575")], b"", False),
    ("PUT", "http://127.0.0.1:9000", "/examplebucket/\u65e5\u672c\u8a9e/\u30d5\u30a1\u30a4\u30eb.bin",
     [], [("x-amz-meta-file-permissions", "0100644"), ("x-amz-meta-file-owner", "1000"),
          ("x-amz-meta-file-group", "1000"), ("x-amz-meta-file-mtime", "1700000000123456789ns")],
     b"hello, world\n", False),
    ("HEAD", "http://127.0.0.1:9000", "/examplebucket/100%/literal%20percent", [], [], b"", False),
    ("GET", "http://127.0.0.1:9000", "/examplebucket/a//b/../c/./d", [], [], b"", False),
    ("GET", "http://127.0.0.1:9000", "/examplebucket/",
     [("list-type", "2"), ("prefix", "dir with space/+plus&amp=eq~"), ("delimiter", "/"),
      ("continuation-token", "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM="),
      ("max-keys", "1000"), ("encoding-type", "url")], [], b"", False),
    ("GET", "https://examplebucket.s3.us-west-2.amazonaws.com", "/",
     [("list-type", "2"), ("prefix", "\u00e9t\u00e9/"), ("start-after", "a b")], [], b"", False),
    ("POST", "http://127.0.0.1:9000", "/examplebucket/big log.bin", [("uploads", "")],
     [("x-amz-meta-file-permissions", "0100600")], b"", False),
    ("PUT", "http://127.0.0.1:9000", "/examplebucket/big log.bin",
     [("partNumber", "3"), ("uploadId", "VXBsb2FkIElE+a/b=c==")], [], b"x" * 4096, False),
    ("POST", "http://127.0.0.1:9000", "/examplebucket/big log.bin",
     [("uploadId", "VXBsb2FkIElE+a/b=c==")], [("content-type", "application/xml")],
     b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&quot;e&quot;</ETag>"
     b"</Part></CompleteMultipartUpload>", False),
    ("PUT", "http://127.0.0.1:9000", "/examplebucket/dst key+1",
     [], [("x-amz-copy-source", "/examplebucket/src%20key%2B1%E2%82%AC"),
          ("x-amz-metadata-directive", "REPLACE")], b"", False),
    # UploadPartCopy: the source, its byte range and a quoted ETag condition.
    ("PUT", "http://127.0.0.1:9000", "/examplebucket/big log.bin",
     [("partNumber", "2"), ("uploadId", "VXBsb2FkIElE+a/b=c==")],
     [("x-amz-copy-source", "/examplebucket/src%20key%2B1%E2%82%AC"),
      ("x-amz-copy-source-range", "bytes=5242880-10485759"),
      ("x-amz-copy-source-if-match", '"9b2cf535f27731c974343645a3985328"')], b"", False),
    ("DELETE", "https://s3.eu-central-1.amazonaws.com", "/examplebucket/tmp/~$lock#1",
     [], [], b"", True),
]


def botocore_sign(method, base, path, query, headers, body, token):
    url = base + quote(path, safe="/~")
    creds = Credentials(AK, SK, TOKEN if token else None)
    region = "us-west-2" if "us-west-2" in base else "eu-central-1" if "eu-central" in base else "us-east-1"
    req = AWSRequest(method=method, url=url, data=body, headers=dict(headers),
                     params=dict(query) if query else None)
    auth = botocore.auth.S3SigV4Auth(creds, "s3", region)
    # Freeze botocore's clock: newer releases call get_current_datetime(),
    # older ones datetime.datetime.utcnow().
    if hasattr(botocore.auth, "get_current_datetime"):
        patch = mock.patch.object(botocore.auth, "get_current_datetime", return_value=WHEN)
    else:
        fake = mock.Mock(wraps=datetime)
        fake.datetime = mock.Mock(wraps=datetime.datetime)
        fake.datetime.utcnow.return_value = WHEN
        patch = mock.patch.object(botocore.auth, "datetime", fake)
    with patch:
        auth.add_auth(req)
    return req.headers["Authorization"], req.headers["X-Amz-Content-SHA256"], region


def ours(tool, method, base, path, query, headers, payload_hash, region, token):
    host = base.split("://", 1)[1]
    args = [tool, "--sign", method, host, path, payload_hash, str(EPOCH), region, AK, SK,
            TOKEN if token else "-"]
    for n, v in query:
        args += ["q", n, v]
    for n, v in headers:
        args += ["h", n, v]
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()


def main():
    tool = sys.argv[1]
    passed = failed = 0
    for method, base, path, query, headers, body, token in CASES:
        want, payload_hash, region = botocore_sign(method, base, path, query, headers, body, token)
        if payload_hash != hashlib.sha256(body).hexdigest():
            print(f"FAIL {method} {path}: botocore did not sign the payload ({payload_hash})")
            failed += 1
            continue
        got = ours(tool, method, base, path, query, headers, payload_hash, region, token)
        if got == want:
            passed += 1
        else:
            failed += 1
            print(f"FAIL {method} {base}{path} {query}\n  botocore: {want}\n  ours:     {got}")
    print(f"botocore {botocore.__version__} ({sys.executable}): {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
