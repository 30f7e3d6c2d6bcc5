#!/usr/bin/env python3
"""bucket_keys.py REQ OUT dir ROOT | REQ OUT s3 ENDPOINT BUCKET

Answers the guest's bucket-keys.req (posix_corners.sh): the keys of a
bucket under a prefix, exactly as the store holds them.  REQ holds two
lines: "full" or "names", then the prefix (raw bytes).  OUT gets one line
a key, sorted by its bytes:

    HEXKEY SIZE SHA256 MTIME

HEXKEY is the key's bytes in hex (a name may hold a newline or any byte),
SIZE the object's size, SHA256 its body's (for a symlink, of its target:
what bucketnfs stores as the object's body), MTIME the stored
file-mtime metadata as written ("<ns>ns"), "-" when there is none.  With
"names" SIZE is the listed size and SHA256 and MTIME are "-" (no GET nor
HEAD: a quick count of many keys).  A folder is its "name/" key (the dir
store's directories listed that way).  On a failure OUT holds one line
"error WHY".

dir: ROOT is the bucket's folder in a dir store (files, directories,
symlinks; metadata in user.bucketnfs.file-* xattrs).  s3: the bucket on an
S3 endpoint (credentials from the environment), listed with
encoding-type=url so that keys with control characters survive the XML.
"""
import hashlib
import os
import stat
import sys
import urllib.parse


def sha(data):
    return hashlib.sha256(data).hexdigest()


def dir_entry(root, path, prefix, full):
    """(key, size, sha256, mtime) of one file or folder, None if not under prefix."""
    key = os.path.relpath(path, root)
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode):
        key += b"/"
    if not key.startswith(prefix) or key == prefix:
        return None
    size, digest, mtime = st.st_size, "-", "-"
    if full and stat.S_ISLNK(st.st_mode):
        target = os.readlink(path)
        size, digest = len(target), sha(target)
    elif full and stat.S_ISREG(st.st_mode):
        with open(path, "rb") as f:
            digest = sha(f.read())
    elif stat.S_ISDIR(st.st_mode):
        size = 0
    if full:
        try:
            mtime = os.getxattr(path, "user.bucketnfs.file-mtime", follow_symlinks=False).decode()
        except OSError:
            pass
    return key, size, digest, mtime


def dir_keys(root, prefix, full):
    root = os.fsencode(root)
    out = []
    # The folder holding the prefix's last complete component, then filter.
    base = prefix.rsplit(b"/", 1)[0] if b"/" in prefix else b""
    start = os.path.join(root, base) if base else root
    if not os.path.isdir(start):
        return out
    # The store changes under the walk (the write-back uploads, renames and
    # deletes meanwhile): an entry gone between the walk and its lstat or
    # read is not listed, as a listing a moment later would not list it.
    # The guest asks again until what it waits for holds.
    for d, dirs, files in os.walk(start):
        for n in dirs + files:
            try:
                e = dir_entry(root, os.path.join(d, n), prefix, full)
            except FileNotFoundError:
                continue
            if e:
                out.append(e)
    return out


def s3_keys(endpoint, bucket, prefix, full):
    import boto3
    from botocore.config import Config
    cfg = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10,
                 read_timeout=60, s3={"addressing_style": "path"})
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", config=cfg)
    # The prefix goes out as UTF-8 (S3 keys are UTF-8); the keys come back
    # URL-encoded and are decoded to their bytes here.
    pfx = prefix.decode("utf-8", "surrogateescape")
    out, token = [], None
    while True:
        kw = {"Bucket": bucket, "Prefix": pfx, "EncodingType": "url"}
        if token:
            kw["ContinuationToken"] = token
        page = s3.list_objects_v2(**kw)
        for o in page.get("Contents", []):
            key = urllib.parse.unquote_to_bytes(o["Key"])
            if key == prefix:
                continue
            size, digest, mtime = o["Size"], "-", "-"
            if full:
                raw = key.decode("utf-8", "surrogateescape")
                try:
                    got = s3.get_object(Bucket=bucket, Key=raw)
                except s3.exceptions.NoSuchKey:
                    continue  # deleted since the page was listed (as in dir_keys)
                digest = sha(got["Body"].read())
                mtime = got.get("Metadata", {}).get("file-mtime", "-")
            out.append((key, size, digest, mtime))
        if not page.get("IsTruncated"):
            return out
        token = page["NextContinuationToken"]


def main():
    req, out_path, kind = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(req, "rb") as f:
        lines = f.read().split(b"\n")
    full, prefix = lines[0] == b"full", lines[1] if len(lines) > 1 else b""
    try:
        if kind == "dir":
            keys = dir_keys(sys.argv[4], prefix, full)
        else:
            keys = s3_keys(sys.argv[4], sys.argv[5], prefix, full)
        text = "".join("%s %d %s %s\n" % (k.hex(), s, d, m) for k, s, d, m in sorted(keys))
    except Exception as e:  # the guest sees why instead of waiting
        text = "error %s\n" % repr(e).replace("\n", " ")
    tmp = out_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, out_path)


if __name__ == "__main__":
    main()
