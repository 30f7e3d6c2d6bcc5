#!/usr/bin/env python3
"""s3_fixture.py ENDPOINT BUCKET SRC WHAT - put the kernel suite's source tree
(mkfixture.sh) into an S3 bucket, as bucketnfs itself would have written it.

WHAT is one of:
  upload        create BUCKET and upload every entry of SRC:
                  a file       -> an object with its bytes,
                  a folder     -> a zero-byte "folder/" marker,
                  a symlink    -> an object whose body is the link target;
                each with x-amz-meta-file-{permissions,owner,group,mtime}
                taken from lstat ("%07o" type+mode, uid, gid, "<ns>ns"),
                symlinks with permissions 0120777.  Files under mutable/
                get no metadata: they play objects another tool writes,
                whose mtime is the object's Last-Modified, so their local
                mtime is then set to it (the source tree keeps describing
                what the bucket holds).  Objects go up 32 at a time.
  watch SECONDS mirror SRC/mutable into the bucket for at most SECONDS:
                every 0.5 s, a file whose size or mtime changed is uploaded
                again (no metadata, like the original) and a file that went
                away is deleted.  This stands for "another tool rewrites the
                object" in the close-to-open cases, whose writes land in SRC.
Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (any value for a moto
with checking off).  Every request is bounded by boto3's timeouts and retry
limits.
"""
import os
import stat
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

MUTABLE = "mutable"


def client(endpoint, workers):
    cfg = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10,
                 read_timeout=60, max_pool_connections=workers,
                 s3={"addressing_style": "path"})
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", config=cfg)


def posix_meta(st):
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        mode = stat.S_IFLNK | 0o777
    return {"file-permissions": "%07o" % mode, "file-owner": str(st.st_uid),
            "file-group": str(st.st_gid), "file-mtime": "%dns" % st.st_mtime_ns}


def entries(src):
    """(key, path, kind, with_meta) for every entry of src but its root."""
    for root, dirs, files in os.walk(src):
        rel = os.path.relpath(root, src)
        prefix = "" if rel == "." else rel + "/"
        in_mutable = prefix.startswith(MUTABLE + "/")
        for d in dirs:
            p = os.path.join(root, d)
            # os.walk lists symlinks to folders among dirs without entering them
            kind = "link" if os.path.islink(p) else "dir"
            yield (prefix + d + ("/" if kind == "dir" else ""), p, kind, not in_mutable)
        for f in files:
            p = os.path.join(root, f)
            yield (prefix + f, p, "link" if os.path.islink(p) else "file", not in_mutable)


def put_entry(s3, bucket, key, path, kind, with_meta):
    st = os.lstat(path)
    if kind == "dir":
        body = b""
    elif kind == "link":
        body = os.fsencode(os.readlink(path))
    else:
        with open(path, "rb") as f:
            body = f.read()
    extra = {"Metadata": posix_meta(st)} if with_meta else {}
    s3.put_object(Bucket=bucket, Key=key, Body=body, **extra)


def upload(s3, bucket, src):
    s3.create_bucket(Bucket=bucket)
    todo = list(entries(src))
    with ThreadPoolExecutor(max_workers=32) as pool:
        for _ in pool.map(lambda e: put_entry(s3, bucket, *e), todo):
            pass
    for key, path, kind, with_meta in todo:
        if not with_meta:
            lm = s3.head_object(Bucket=bucket, Key=key)["LastModified"]
            ns = int(lm.timestamp()) * 1_000_000_000
            os.utime(path, ns=(ns, ns), follow_symlinks=False)
    print(f"s3_fixture: {len(todo)} objects in {bucket}", flush=True)


def snapshot(folder):
    snap = {}
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return snap
    for n in names:
        try:
            st = os.lstat(os.path.join(folder, n))
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode):
            snap[n] = (st.st_size, st.st_mtime_ns)
    return snap


def watch(s3, bucket, src, seconds):
    folder = os.path.join(src, MUTABLE)
    seen = snapshot(folder)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = snapshot(folder)
        for n, sig in now.items():
            if seen.get(n) != sig:
                try:
                    put_entry(s3, bucket, f"{MUTABLE}/{n}", os.path.join(folder, n), "file", False)
                except FileNotFoundError:
                    continue  # gone again before it could be read: the next round deletes it
                print(f"s3_fixture: uploaded {MUTABLE}/{n} again", flush=True)
        for n in set(seen) - set(now):
            s3.delete_object(Bucket=bucket, Key=f"{MUTABLE}/{n}")
            print(f"s3_fixture: deleted {MUTABLE}/{n}", flush=True)
        seen = now


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__.splitlines()[0])
    endpoint, bucket, src, what = sys.argv[1:5]
    if what == "upload":
        upload(client(endpoint, 32), bucket, src)
    elif what == "watch" and len(sys.argv) == 6:
        watch(client(endpoint, 2), bucket, src, float(sys.argv[5]))
    else:
        sys.exit(f"s3_fixture: unknown action {what}")


if __name__ == "__main__":
    main()
