#!/usr/bin/env python3
"""cache_versions.py - versions of one object whose every record says which
version it belongs to, for s3_cache.sh (read back by it_cache.c).

Version V of SIZE bytes (a multiple of 64) is SIZE/64 records of 64 bytes:
"v%010d o%012d " (the version and the record's own offset), dots up to 63
bytes, "\\n".  Two versions differ in every record; a mix of two is seen in
any record.

  cache_versions.py make V SIZE FILE
        write version V to FILE
  cache_versions.py put ENDPOINT BUCKET KEY V SIZE
        upload version V as KEY
  cache_versions.py race ENDPOINT BUCKET KEY SIZE SECONDS FIRST CYCLE PAUSE READY [HOLD]
        upload versions FIRST, FIRST+1, ... for SECONDS, PAUSE seconds
        apart; with CYCLE > 0 the versions go round FIRST..FIRST+CYCLE-1
        (CYCLE 2: A, B, A, B ...).  Creates the file READY after the first
        upload (starting Python and boto3 takes a second or more: readers
        wait for it).  With HOLD > 0 the uploads come in bursts of BURST
        seconds, each followed by HOLD seconds without an upload (a hold is
        never cut short: the last one may end after SECONDS), and two
        holds in a row never keep the same version (a burst goes on until
        its version differs from the last one held).  A gateway that looks
        at the object once per TTL may see any version of a burst (A/B
        alternating faster than the TTL can look unchanged at every look),
        but a hold longer than the TTL it must see: readers across two
        holds see the version change.  Prints "held V" at each hold, and
        last "uploaded N, last V": V is the object's version when it
        returns.
Credentials come from the environment (AWS_ACCESS_KEY_ID, ...), as boto3
reads them.  Every request is bounded by boto3's timeouts and retries.
"""
import sys
import time

import boto3
from botocore.config import Config

REC = 64
BURST = 2.0  # seconds of uploads between two holds


def version(v, size):
    if size % REC:
        raise SystemExit(f"size {size} is not a multiple of {REC}")
    out = bytearray()
    for off in range(0, size, REC):
        head = f"v{v:010d} o{off:012d} ".encode()
        out += head + b"." * (REC - 1 - len(head)) + b"\n"
    return bytes(out)


def client(endpoint):
    cfg = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10,
                 read_timeout=60, s3={"addressing_style": "path"})
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", config=cfg)


def main(argv):
    what = argv[1] if len(argv) > 1 else ""
    if what == "make" and len(argv) == 5:
        with open(argv[4], "wb") as f:
            f.write(version(int(argv[2]), int(argv[3])))
    elif what == "put" and len(argv) == 7:
        _, _, endpoint, bucket, key, v, size = argv
        client(endpoint).put_object(Bucket=bucket, Key=key, Body=version(int(v), int(size)))
        print(f"uploaded version {v} of {key}")
    elif what == "race" and len(argv) in (11, 12):
        _, _, endpoint, bucket, key, size, seconds, first, cycle, pause, ready = argv[:11]
        hold = float(argv[11]) if len(argv) == 12 else 0.0
        s3, size, first, cycle = client(endpoint), int(size), int(first), int(cycle)
        end = burst_end = None
        n, v, held = 0, first, None
        while end is None or time.monotonic() < end:
            v = first + (n % cycle if cycle > 0 else n)
            s3.put_object(Bucket=bucket, Key=key, Body=version(v, size))
            if end is None:
                end = time.monotonic() + float(seconds)
                burst_end = time.monotonic() + BURST
                open(ready, "w").close()
            n += 1
            if hold > 0 and time.monotonic() >= burst_end and v != held:
                held = v
                print(f"held {v}", flush=True)
                time.sleep(hold)  # whole, even past SECONDS
                burst_end = time.monotonic() + BURST
            else:
                time.sleep(float(pause))
        print(f"uploaded {n}, last {v}")
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
