#!/usr/bin/env python3
"""moto_setup.py ENDPOINT BUCKET... - prepare a fresh moto_server for the S3 tests.

Creates the buckets, an IAM user with an access key and an s3:* policy, then
switches moto's SigV4 / IAM checking on (POST /moto-api/reset-auth with
body "0": no further request goes unchecked).  Prints
"ACCESS_KEY SECRET_KEY" on stdout.  Uses boto3 when it is installed, else
plain HTTP (the requests moto accepts before checking is switched on).
"""
import json
import sys
import urllib.parse
import urllib.request

POLICY = json.dumps({"Version": "2012-10-17",
                     "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})


def with_boto3(endpoint, buckets):
    import boto3
    kw = dict(endpoint_url=endpoint, region_name="us-east-1",
              aws_access_key_id="setup", aws_secret_access_key="setup")
    s3 = boto3.client("s3", **kw)
    for b in buckets:
        s3.create_bucket(Bucket=b)
    iam = boto3.client("iam", **kw)
    iam.create_user(UserName="bnfs")
    iam.put_user_policy(UserName="bnfs", PolicyName="s3all", PolicyDocument=POLICY)
    k = iam.create_access_key(UserName="bnfs")["AccessKey"]
    return k["AccessKeyId"], k["SecretAccessKey"]


def http(endpoint, method, path, body=None, headers=None):
    req = urllib.request.Request(endpoint + path, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=20) as r:
        return r.read()


def without_boto3(endpoint, buckets):
    import re
    auth = {"Authorization": "AWS4-HMAC-SHA256 Credential=setup/20200101/us-east-1/iam/aws4_request, "
                             "SignedHeaders=host, Signature=0"}
    for b in buckets:
        http(endpoint, "PUT", "/" + b)

    def iam(params):
        params["Version"] = "2010-05-08"
        h = dict(auth, **{"Content-Type": "application/x-www-form-urlencoded"})
        return http(endpoint, "POST", "/", urllib.parse.urlencode(params).encode(), h).decode()

    iam({"Action": "CreateUser", "UserName": "bnfs"})
    iam({"Action": "PutUserPolicy", "UserName": "bnfs", "PolicyName": "s3all",
         "PolicyDocument": POLICY})
    out = iam({"Action": "CreateAccessKey", "UserName": "bnfs"})
    ak = re.search(r"<AccessKeyId>([^<]+)</AccessKeyId>", out).group(1)
    sk = re.search(r"<SecretAccessKey>([^<]+)</SecretAccessKey>", out).group(1)
    return ak, sk


def main():
    endpoint, buckets = sys.argv[1], sys.argv[2:]
    try:
        import boto3  # noqa: F401
        ak, sk = with_boto3(endpoint, buckets)
        how = "boto3"
    except ImportError:
        ak, sk = without_boto3(endpoint, buckets)
        how = "plain HTTP"
    # moto 5 reads the body as one number: how many more requests go unchecked.
    http(endpoint, "POST", "/moto-api/reset-auth", b"0", {"Content-Type": "text/plain"})
    print(f"moto_setup: buckets {' '.join(buckets)}, IAM user via {how}, auth checking on",
          file=sys.stderr)
    print(ak, sk)


if __name__ == "__main__":
    main()
