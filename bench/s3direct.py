#!/usr/bin/env python3
"""s3direct.py - read, fill or empty an S3 bucket directly, for bench/cache.sh
and bench/write.sh: the peers a gateway's cold reads and uploads are
measured against.

    s3direct.py ENDPOINT BUCKET upload DIR
        upload every file under DIR as the key of its relative path
        (multipart above 64 MiB, 8 threads)
    s3direct.py ENDPOINT BUCKET parallel KEY THREADS CHUNK_MB
        boto3 download_fileobj of KEY with THREADS threads, each a ranged GET
        of CHUNK_MB: the best a direct reader does through one link
    s3direct.py ENDPOINT BUCKET single KEY
        one GET of the whole of KEY, read as it arrives: one S3 connection
    s3direct.py ENDPOINT BUCKET files PREFIX COUNT
        COUNT threads, each one GET of one of the first COUNT keys under
        PREFIX, all at once
    s3direct.py ENDPOINT BUCKET put DIR FILES PARTS PART_MB
        upload every file under DIR (key: its relative path), FILES files at
        once, in name order; a file of more than PART_MB goes multipart
        (boto3 upload_file, parts of PART_MB, PARTS of them in flight), a
        smaller one in one PUT: what a gateway uploading FILES files at a
        time, parts one after the other when PARTS is 1, is measured against
    s3direct.py ENDPOINT BUCKET count PREFIX
        the objects under PREFIX and their bytes (count_objects, count_bytes),
        and how many of them are directory markers, keys ending in "/"
        (count_markers)
    s3direct.py ENDPOINT BUCKET list PREFIX
        one directory's listing as the gateway asks for it: ListObjectsV2 of
        PREFIX with delimiter "/", 1000 keys a page, paged by continuation
        token; its time and counts (list_seconds, list_keys, list_prefixes,
        list_pages): what the store itself takes to list it
    s3direct.py ENDPOINT BUCKET mv FROM TO THREADS
        move every object under the prefix FROM to the prefix TO as
        `aws s3 mv --recursive` does: list FROM, then CopyObject and
        DeleteObject of each key, THREADS keys at once (the AWS CLI's
        max_concurrent_requests is 10); the time includes the listing
    s3direct.py ENDPOINT BUCKET clear
        delete every object of BUCKET

Prints "name value" lines (bytes, seconds, mib_per_s, cpu_s_per_gib); exits 1 when fewer
bytes arrived than the objects hold.  Credentials come from the environment
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY); path-style addressing.
Every request has connect and read timeouts, so no read hangs.
"""
import concurrent.futures
import os
import resource
import sys
import threading
import time

import boto3
import botocore.config
from boto3.s3.transfer import TransferConfig

MIB = 1024 * 1024


class Sink:
    """A write-only file object that counts bytes (download_fileobj writes in order to it)."""

    def __init__(self):
        self.bytes = 0

    def write(self, data):
        self.bytes += len(data)
        return len(data)


def client(endpoint, pool):
    # No CRC32 of every body (boto3's default since 1.36): the gateway sends
    # none, and both sign the payload's SHA-256 over plain HTTP.
    cfg = botocore.config.Config(s3={"addressing_style": "path"}, max_pool_connections=pool,
                                 connect_timeout=10, read_timeout=60,
                                 retries={"max_attempts": 3, "mode": "standard"},
                                 request_checksum_calculation="when_required")
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", config=cfg)


def report(name, nbytes, seconds):
    print("%s_bytes %d" % (name, nbytes))
    print("%s_seconds %.3f" % (name, seconds))
    print("%s_mib_per_s %.1f" % (name, nbytes / MIB / seconds if seconds > 0 else 0))
    ru = resource.getrusage(resource.RUSAGE_SELF)
    # CPU the reader spent (start-up included) per GiB it read: its cost on a shared machine.
    print("%s_cpu_s_per_gib %.2f" % (name, (ru.ru_utime + ru.ru_stime) / (nbytes / MIB / 1024)
                                     if nbytes else 0))
    sys.stdout.flush()


def upload(s3, bucket, root):
    cfg = TransferConfig(multipart_threshold=64 * MIB, multipart_chunksize=64 * MIB,
                         max_concurrency=8)
    for dirpath, _, files in os.walk(root):
        for f in sorted(files):
            path = os.path.join(dirpath, f)
            s3.upload_file(path, bucket, os.path.relpath(path, root), Config=cfg)


def put_tree(s3, bucket, root, files, parts, part):
    """Upload the tree under root, `files` files at once; returns (bytes, seconds)."""
    paths = []
    for dirpath, _, names in os.walk(root):
        paths += [os.path.join(dirpath, n) for n in names]
    paths.sort()
    total = sum(os.path.getsize(p) for p in paths)
    cfg = TransferConfig(multipart_threshold=part + 1, multipart_chunksize=part,
                         max_concurrency=parts, use_threads=parts > 1)
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=files) as pool:
        futs = [pool.submit(s3.upload_file, p, bucket, os.path.relpath(p, root), Config=cfg)
                for p in paths]
        for f in futs:
            f.result(timeout=3600)  # raises what the upload raised: the run fails
    return total, time.monotonic() - t0, len(paths)


def list_all(s3, bucket, prefix=""):
    # ListObjects (v1, paged by marker): s3rver 3.7 makes V2's continuation
    # token with a cipher Node 17+ refuses, so V2 fails past 1000 keys.
    objs = []
    for page in s3.get_paginator("list_objects").paginate(Bucket=bucket, Prefix=prefix):
        objs += page.get("Contents", [])
    return objs


def move_tree(s3, bucket, src, dst, threads):
    """Every key under src to dst: copy, then delete; returns (objects, bytes, seconds)."""
    t0 = time.monotonic()
    objs = list_all(s3, bucket, src)

    def one(o):
        key = o["Key"]
        s3.copy_object(Bucket=bucket, Key=dst + key[len(src):],
                       CopySource={"Bucket": bucket, "Key": key})
        s3.delete_object(Bucket=bucket, Key=key)

    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        for f in [pool.submit(one, o) for o in objs]:
            f.result(timeout=3600)  # raises what the copy or delete raised: the run fails
    return len(objs), sum(o["Size"] for o in objs), time.monotonic() - t0


def read_body(body, chunk=MIB):
    n = 0
    while True:
        b = body.read(chunk)
        if not b:
            return n
        n += len(b)


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    endpoint, bucket, mode, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    if mode == "upload":
        upload(client(endpoint, 16), bucket, args[0])
        return
    if mode == "put":
        files, parts, part = int(args[1]), int(args[2]), int(args[3]) * MIB
        nbytes, secs, nfiles = put_tree(client(endpoint, files * parts + 4), bucket, args[0],
                                        files, parts, part)
        report("put", nbytes, secs)
        print("put_files %d" % nfiles)
        return
    if mode == "count":
        objs = list_all(client(endpoint, 4), bucket, args[0])
        print("count_objects %d" % len(objs))
        print("count_bytes %d" % sum(o["Size"] for o in objs))
        print("count_markers %d" % sum(1 for o in objs if o["Key"].endswith("/")))
        return
    if mode == "list":
        s3 = client(endpoint, 1)
        keys = prefixes = pages = 0
        t0 = time.monotonic()
        for page in s3.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=args[0], Delimiter="/", PaginationConfig={"PageSize": 1000}):
            keys += len(page.get("Contents", []))
            prefixes += len(page.get("CommonPrefixes", []))
            pages += 1
        print("list_seconds %.3f" % (time.monotonic() - t0))
        print("list_keys %d" % keys)
        print("list_prefixes %d" % prefixes)
        print("list_pages %d" % pages)
        return
    if mode == "mv":
        src, dst, threads = args[0], args[1], int(args[2])
        nobj, nbytes, secs = move_tree(client(endpoint, threads + 4), bucket, src, dst, threads)
        print("mv_objects %d" % nobj)
        print("mv_bytes %d" % nbytes)
        print("mv_seconds %.3f" % secs)
        return
    if mode == "clear":
        s3 = client(endpoint, 4)
        keys = [{"Key": o["Key"]} for o in list_all(s3, bucket)]
        for i in range(0, len(keys), 1000):
            r = s3.delete_objects(Bucket=bucket, Delete={"Objects": keys[i:i + 1000], "Quiet": True})
            if r.get("Errors"):
                sys.exit("s3direct: clear: %s" % r["Errors"][0])
        print("cleared_objects %d" % len(keys))
        return
    if mode == "parallel":
        key, threads, chunk = args[0], int(args[1]), int(args[2]) * MIB
        s3 = client(endpoint, threads)
        size = s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
        sink = Sink()
        t0 = time.monotonic()
        s3.download_fileobj(bucket, key, sink,
                            Config=TransferConfig(multipart_threshold=chunk,
                                                  multipart_chunksize=chunk,
                                                  max_concurrency=threads))
        report("parallel", sink.bytes, time.monotonic() - t0)
        ok = sink.bytes == size
    elif mode == "single":
        key = args[0]
        s3 = client(endpoint, 1)
        size = s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
        t0 = time.monotonic()
        n = read_body(s3.get_object(Bucket=bucket, Key=key)["Body"])
        report("single", n, time.monotonic() - t0)
        ok = n == size
    elif mode == "files":
        prefix, count = args[0], int(args[1])
        s3 = client(endpoint, count)
        objs = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=count).get("Contents", [])
        want = sum(o["Size"] for o in objs)
        got = [0] * len(objs)
        errs = []

        def one(i):
            try:
                got[i] = read_body(s3.get_object(Bucket=bucket, Key=objs[i]["Key"])["Body"])
            except Exception as e:  # reported below: the run fails
                errs.append(repr(e))

        ts = [threading.Thread(target=one, args=(i,)) for i in range(len(objs))]
        t0 = time.monotonic()
        for t in ts:
            t.start()
        for t in ts:
            t.join(600)
        report("files", sum(got), time.monotonic() - t0)
        print("files_count %d" % len(objs))
        ok = not errs and sum(got) == want and len(objs) == count
        if errs:
            print("s3direct: %s" % errs[0], file=sys.stderr)
    else:
        sys.exit(__doc__)
    if not ok:
        print("s3direct: %s read fewer bytes than the object holds" % mode, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
