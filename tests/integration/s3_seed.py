#!/usr/bin/env python3
"""s3_seed.py ENDPOINT BUCKET ACCESS_KEY SECRET_KEY WHAT [ARGS] - fill a moto
bucket with boto3, as other tools write buckets: objects with no POSIX
metadata.

WHAT is one of:
  tree MIRROR [BIG_MB]  build the local mirror tree in MIRROR (a fresh
                        folder) and upload it: a 3-level tree, 2,500 small
                        objects in one folder (more than two listing pages),
                        a BIG_MB (300) MB object sent with boto3's multipart
                        transfer, awkward key names, an empty-folder marker
                        "emptydir/"; then the keys that are no valid file
                        name, which the server must skip and which are NOT
                        in the mirror (their valid leading folders are).
  plain MIRROR          a small 3-level mirror with plain names only, for a
                        store that checks signatures.
  put KEY FILE [MODE UID GID MTIME_NS]
                        upload FILE as KEY, with the x-amz-meta-file-*
                        metadata when MODE.. are given.
  delete KEY            delete one object.
  bucket                create the bucket.
Prints one line saying what it did.  Every call is bounded by boto3's own
timeouts and retry limits.
"""
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

MIB = 1024 * 1024

# Keys no file can be named by; listed by the store, skipped by the server.
INVALID_KEYS = ["bad//double", "dir/../up", "x" * 300]
# Their leading components are ordinary folder names: those folders exist.
INVALID_PARENTS = ["bad", "dir"]

AWKWARD = [
    "with space",
    "plus+sign",
    "eq=and&amp",
    "tilde~name",
    "100%",
    "percent%20lit",
    "\u65e5\u672c\u8a9e.bin",
    "semi;colon:comma,",
    "n" * 251 + ".bin",  # 255 bytes, the longest name NFS allows
]


def client(endpoint, ak, sk):
    cfg = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10,
                 read_timeout=120, s3={"addressing_style": "path"})
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=ak, aws_secret_access_key=sk, config=cfg)


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def big_file(path, mb):
    """mb MiB: 16 random 1 MiB blocks, each copy stamped with its block number."""
    blocks = [os.urandom(MIB) for _ in range(16)]
    with open(path, "wb") as f:
        for i in range(mb):
            b = bytearray(blocks[i % 16])
            b[:16] = b"block %09d\n" % i
            f.write(b)


def build_tree(mirror, big_mb):
    write(f"{mirror}/one-byte", b"x")
    write(f"{mirror}/top.txt", b"top of the tree\n")
    write(f"{mirror}/l1/file-a.txt", b"level one\n" * 100)
    write(f"{mirror}/l1/l2/file-b.bin", os.urandom(100 * 1024 + 7))
    write(f"{mirror}/l1/l2/l3/leaf.txt", b"level three\n")
    write(f"{mirror}/l1/l2/l3/empty", b"")
    for i in range(2500):
        write(f"{mirror}/many/obj-{i:05d}", b"object %d\n" % i * (1 + i % 7))
    for name in AWKWARD:
        write(f"{mirror}/awkward/{name}", ("awkward name: %s\n" % name).encode())
    os.makedirs(f"{mirror}/emptydir")
    for d in INVALID_PARENTS:
        os.makedirs(f"{mirror}/{d}")
    os.makedirs(f"{mirror}/big")
    big_file(f"{mirror}/big/log.bin", big_mb)


def put_small(s3, bucket, key, path):
    with open(path, "rb") as f:
        s3.put_object(Bucket=bucket, Key=key, Body=f.read())


def upload_mirror(s3, bucket, mirror):
    """Every file as one object (small ones 8 at a time), every empty folder as a marker."""
    cfg = TransferConfig(multipart_threshold=8 * MIB, multipart_chunksize=16 * MIB,
                         max_concurrency=4)
    small = []
    n = 0
    for root, dirs, files in os.walk(mirror):
        rel = os.path.relpath(root, mirror)
        prefix = "" if rel == "." else rel + "/"
        if not dirs and not files and prefix and not any(
                prefix == p + "/" for p in INVALID_PARENTS):
            s3.put_object(Bucket=bucket, Key=prefix, Body=b"")  # empty-folder marker
            n += 1
        for f in files:
            path = os.path.join(root, f)
            if os.path.getsize(path) >= 8 * MIB:
                s3.upload_file(path, bucket, prefix + f, Config=cfg)  # multipart
                n += 1
            else:
                small.append((prefix + f, path))
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in pool.map(lambda kp: put_small(s3, bucket, *kp), small):
            n += 1
    return n


def main():
    endpoint, bucket, ak, sk, what = sys.argv[1:6]
    args = sys.argv[6:]
    s3 = client(endpoint, ak, sk)
    if what == "tree":
        mirror = args[0]
        build_tree(mirror, int(args[1]) if len(args) > 1 else 300)
        n = upload_mirror(s3, bucket, mirror)
        for k in INVALID_KEYS:
            s3.put_object(Bucket=bucket, Key=k, Body=b"not a file name\n")
        print(f"s3_seed: {n} objects from the mirror and {len(INVALID_KEYS)} invalid keys in {bucket}")
    elif what == "plain":
        mirror = args[0]
        write(f"{mirror}/one-byte", b"x")
        write(f"{mirror}/plain.txt", b"signed and checked\n" * 50)
        write(f"{mirror}/drive/camera/front/frame_0001.jpg", os.urandom(300 * 1024))
        write(f"{mirror}/drive/lidar/log-2m.bin", os.urandom(2 * MIB + 5))
        n = upload_mirror(s3, bucket, mirror)
        print(f"s3_seed: {n} plain objects in {bucket}")
    elif what == "put":
        key, path = args[0], args[1]
        extra = {}
        if len(args) == 6:
            extra = {"Metadata": {"file-permissions": args[2], "file-owner": args[3],
                                  "file-group": args[4], "file-mtime": args[5] + "ns"}}
        with open(path, "rb") as f:
            s3.put_object(Bucket=bucket, Key=key, Body=f.read(), **extra)
        print(f"s3_seed: put {key} {'with' if extra else 'without'} POSIX metadata")
    elif what == "bucket":
        s3.create_bucket(Bucket=bucket)
        print(f"s3_seed: created bucket {bucket}")
    elif what == "delete":
        s3.delete_object(Bucket=bucket, Key=args[0])
        print(f"s3_seed: deleted {args[0]}")
    else:
        sys.exit(f"s3_seed: unknown action {what}")


if __name__ == "__main__":
    main()
