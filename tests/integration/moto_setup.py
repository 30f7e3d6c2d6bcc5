#!/usr/bin/env python3
"""moto_setup.py ENDPOINT BUCKET... - prepare a fresh moto_server for the S3 tests.

Creates the buckets, an IAM user with an access key and an s3:* policy, a
role the user may assume and temporary credentials for it (STS AssumeRole:
access key, secret, session token), then
switches moto's SigV4 / IAM checking on (POST /moto-api/reset-auth with
body "0": no further request goes unchecked).  Prints
"ACCESS_KEY SECRET_KEY TMP_ACCESS_KEY TMP_SECRET_KEY SESSION_TOKEN" on stdout.  Uses boto3 when it is installed, else
plain HTTP (the requests moto accepts before checking is switched on).
"""
import json
import sys
import urllib.parse
import urllib.request

POLICY = json.dumps({"Version": "2012-10-17",
                     "Statement": [{"Effect": "Allow", "Action": ["s3:*", "sts:AssumeRole"],
                                    "Resource": "*"}]})
ROLE_POLICY = json.dumps({"Version": "2012-10-17",
                          "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})


def trust(user_arn):
    return json.dumps({"Version": "2012-10-17",
                       "Statement": [{"Effect": "Allow", "Principal": {"AWS": user_arn},
                                      "Action": "sts:AssumeRole"}]})


def with_boto3(endpoint, buckets):
    import boto3
    kw = dict(endpoint_url=endpoint, region_name="us-east-1",
              aws_access_key_id="setup", aws_secret_access_key="setup")
    s3 = boto3.client("s3", **kw)
    for b in buckets:
        s3.create_bucket(Bucket=b)
    iam = boto3.client("iam", **kw)
    user = iam.create_user(UserName="bnfs")["User"]
    iam.put_user_policy(UserName="bnfs", PolicyName="s3all", PolicyDocument=POLICY)
    k = iam.create_access_key(UserName="bnfs")["AccessKey"]
    role = iam.create_role(RoleName="bnfs-role", AssumeRolePolicyDocument=trust(user["Arn"]))
    iam.put_role_policy(RoleName="bnfs-role", PolicyName="s3all", PolicyDocument=ROLE_POLICY)
    sts = boto3.client("sts", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id=k["AccessKeyId"],
                       aws_secret_access_key=k["SecretAccessKey"])
    t = sts.assume_role(RoleArn=role["Role"]["Arn"], RoleSessionName="bnfs-test")["Credentials"]
    return (k["AccessKeyId"], k["SecretAccessKey"], t["AccessKeyId"], t["SecretAccessKey"],
            t["SessionToken"])


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

    def call(params, service="iam", version="2010-05-08", key="setup"):
        params["Version"] = version
        h = {"Authorization": auth["Authorization"].replace("setup/", key + "/")
                                                   .replace("/iam/", "/" + service + "/"),
             "Content-Type": "application/x-www-form-urlencoded"}
        return http(endpoint, "POST", "/", urllib.parse.urlencode(params).encode(), h).decode()

    def field(doc, name):
        return re.search(f"<{name}>([^<]+)</{name}>", doc).group(1)

    out = call({"Action": "CreateUser", "UserName": "bnfs"})
    user_arn = field(out, "Arn")
    call({"Action": "PutUserPolicy", "UserName": "bnfs", "PolicyName": "s3all",
          "PolicyDocument": POLICY})
    out = call({"Action": "CreateAccessKey", "UserName": "bnfs"})
    ak, sk = field(out, "AccessKeyId"), field(out, "SecretAccessKey")
    out = call({"Action": "CreateRole", "RoleName": "bnfs-role",
                "AssumeRolePolicyDocument": trust(user_arn)})
    role_arn = field(out, "Arn")
    call({"Action": "PutRolePolicy", "RoleName": "bnfs-role", "PolicyName": "s3all",
          "PolicyDocument": ROLE_POLICY})
    out = call({"Action": "AssumeRole", "RoleArn": role_arn, "RoleSessionName": "bnfs-test"},
               service="sts", version="2011-06-15", key=ak)
    return (ak, sk, field(out, "AccessKeyId"), field(out, "SecretAccessKey"),
            field(out, "SessionToken"))


def main():
    endpoint, buckets = sys.argv[1], sys.argv[2:]
    try:
        import boto3  # noqa: F401
        have_boto3 = True
    except ImportError:
        have_boto3 = False
    if have_boto3:
        keys = with_boto3(endpoint, buckets)
        how = "boto3"
    else:
        keys = without_boto3(endpoint, buckets)
        how = "plain HTTP"
    # moto 5 reads the body as one number: how many more requests go unchecked.
    http(endpoint, "POST", "/moto-api/reset-auth", b"0", {"Content-Type": "text/plain"})
    print(f"moto_setup: buckets {' '.join(buckets)}, IAM user via {how}, auth checking on",
          file=sys.stderr)
    print(*keys)


if __name__ == "__main__":
    main()
