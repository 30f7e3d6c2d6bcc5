#!/usr/bin/env python3
"""soak.py - the Python half of the soak (tests/soak/soak.sh).

    soak.py seed ENDPOINT BUCKET LIST COUNT
        put COUNT files under seed/ in the bucket and write LIST, the
        "PATH SIZE INDEX" lines soakload reads.  File INDEX holds 64-bit
        little-endian words, word k = INDEX << 40 | k (soakload checks any
        range of it without keeping the data).  Sizes: every eighth file
        4 MiB, the others 64 KiB to 448 KiB.
    soak.py sample PID METRICS_URL OUT INTERVAL SECONDS
        every INTERVAL s until SECONDS have passed (or PID is gone), append
        one JSON line to OUT: the daemon's VmRSS and open descriptors, and
        from its /metrics the NFS call-latency histograms, replies by
        status, store errors and retries, dirty bytes.
    soak.py verify ENDPOINT BUCKET MANIFEST OUT
        every "F PATH SIZE SHA256" of the manifest must be an object of
        that size and SHA-256 in the bucket (else it is a lost write); every
        "G PATH" must not be one (a removed or renamed-away name that came
        back).  Writes the counts and the first problems to OUT (JSON).
    soak.py report DIR SECONDS
        DIR holds load.jsonl (soakload's output), samples.jsonl, verify.json,
        shell_checks.txt (any may be missing: what it would show fails);
        writes DIR/report.md and DIR/soak.png and prints the verdict line
        "soak: N passed, N failed"; exit status 1 when one check failed.

What the report judges (each a check of the verdict):
    - the load generator ran and no call failed, no byte read was wrong;
    - no lost write, no removed name back in the bucket;
    - soak.sh's own checks (DIR/shell_checks.txt, "ok NAME" or "fail NAME");
    - every NFS reply NFS3_OK (soakload makes no call that should fail), or
      NFS3ERR_JUKEBOX (dirty data at its bound: soakload waits and sends the
      call again, as the Linux client does; counted in the report);
    - RSS and open descriptors flat: the maximum over the last sixth of
      the run at most 20 % (RSS: plus 16 MiB, descriptors: plus 8) above
      the maximum over the second sixth (the first is warm-up: the cache
      and the inode table fill).
"""
import array
import hashlib
import json
import os
import sys
import time
import urllib.request

FLAT_RATIO = 1.2
FLAT_RSS_SLACK_KB = 16 * 1024
FLAT_FD_SLACK = 8


def s3client(endpoint):
    import boto3
    from botocore.config import Config
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        config=Config(retries={"max_attempts": 5}))


def seed_size(i):
    return 4 << 20 if i % 8 == 0 else (64 << 10) * (1 + i % 7)


def cmd_seed(endpoint, bucket, listfile, count):
    s3 = s3client(endpoint)
    s3.create_bucket(Bucket=bucket)
    with open(listfile, "w") as out:
        for i in range(int(count)):
            size = seed_size(i)
            words = array.array("Q", range(i << 40, (i << 40) + size // 8))
            if sys.byteorder != "little":
                words.byteswap()
            key = f"seed/s{i:04d}"
            s3.put_object(Bucket=bucket, Key=key, Body=words.tobytes())
            out.write(f"/{key} {size} {i}\n")


def parse_metrics(text):
    """The metrics the report uses, from Prometheus text format."""
    hist, replies, scalars = {}, {}, {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        name, _, value = line.rpartition(" ")
        try:
            v = float(value)
        except ValueError:
            continue
        if name.startswith("bucketnfs_nfs3_call_duration_seconds_bucket{"):
            labels = dict(kv.split("=", 1) for kv in name[name.index("{") + 1:-1].split(","))
            proc, le = labels["proc"].strip('"'), labels["le"].strip('"')
            hist.setdefault(proc, []).append((float(le), v))
        elif name.startswith("bucketnfs_nfs3_replies_total{"):
            replies[name.split('"')[1]] = v
        elif name in ("bucketnfs_dirty_bytes", "bucketnfs_dirty_files",
                      "bucketnfs_rpc_connections", "bucketnfs_inodes"):
            scalars[name[len("bucketnfs_"):]] = v
        elif name.startswith("bucketnfs_store_errors_total") or \
                name.startswith("bucketnfs_store_retries_total"):
            key = "store_errors" if "errors" in name else "store_retries"
            scalars[key] = scalars.get(key, 0) + v
    return {"hist": hist, "replies": replies, **scalars}


def cmd_sample(pid, url, out, interval, seconds):
    interval, seconds = float(interval), float(seconds)
    t0 = time.monotonic()
    nxt = t0
    while time.monotonic() - t0 <= seconds:
        rec = {"t": round(time.monotonic() - t0, 1)}
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rec["rss_kb"] = int(line.split()[1])
            rec["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            rec["gone"] = True
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                rec.update(parse_metrics(r.read().decode()))
        except OSError as e:
            rec["metrics_error"] = str(e)
        with open(out, "a") as f:
            f.write(json.dumps(rec) + "\n")
        if rec.get("gone"):
            return
        nxt += interval
        time.sleep(max(0.0, nxt - time.monotonic()))


def cmd_verify(endpoint, bucket, manifest, out):
    s3 = s3client(endpoint)
    res = {"files": 0, "bytes": 0, "lost": 0, "gone": 0, "back": 0, "problems": []}
    with open(manifest) as f:
        lines = [l.split() for l in f if l.strip()]
    for fields in lines:
        key = fields[1].lstrip("/")
        if fields[0] == "F":
            size, sha = int(fields[2]), fields[3]
            res["files"] += 1
            res["bytes"] += size
            try:
                body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            except s3.exceptions.NoSuchKey:
                body = None
            if body is None or len(body) != size or hashlib.sha256(body).hexdigest() != sha:
                res["lost"] += 1
                if len(res["problems"]) < 20:
                    what = "missing" if body is None else f"{len(body)} bytes, want {size}" \
                        if len(body) != size else "different bytes"
                    res["problems"].append(f"lost write: {key}: {what}")
        elif fields[0] == "G":
            res["gone"] += 1
            r = s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=2)
            if any(o["Key"] == key for o in r.get("Contents", [])):
                res["back"] += 1
                if len(res["problems"]) < 20:
                    res["problems"].append(f"removed name still in the bucket: {key}")
    with open(out, "w") as f:
        json.dump(res, f, indent=1)


def hist_p99(buckets):
    """p99 of a (cumulative) Prometheus histogram delta: the bucket bound it falls in."""
    buckets = sorted(buckets)
    total = buckets[-1][1] if buckets else 0
    if total <= 0:
        return None
    want = 0.99 * total
    for le, cum in buckets:
        if cum >= want:
            return le
    return float("inf")


def hist_delta(a, b):
    """b - a per bucket bound (a may lack the procedure)."""
    old = dict(a or [])
    return [(le, cum - old.get(le, 0)) for le, cum in b]


def read_jsonl(path):
    out = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        pass
    return out


def window_max(samples, key, lo, hi):
    vals = [s[key] for s in samples if key in s and lo <= s["t"] <= hi]
    return max(vals) if vals else None


def fmt_ms(v):
    if v is None:
        return "-"
    if v == float("inf"):
        return "> max bucket"
    return f"{v * 1000:.1f}" if v < 10 else f"{v * 1000:.0f}"


def cmd_report(d, seconds):
    seconds = float(seconds)
    load = read_jsonl(os.path.join(d, "load.jsonl"))
    intervals = [r for r in load if "t" in r and not r.get("final")]
    final = next((r for r in load if r.get("final")), None)
    samples = read_jsonl(os.path.join(d, "samples.jsonl"))
    verify = {}
    if os.path.exists(os.path.join(d, "verify.json")):
        with open(os.path.join(d, "verify.json")) as f:
            verify = json.load(f)
    checks = []

    def check(name, good, detail=""):
        checks.append((name, bool(good), detail))

    # Per-interval figures: client ops/s and errors, server p99 per procedure.
    rows = []
    for r in intervals:
        rows.append({"t": r["t"], "ops": sum(r["ops"].values()), "errors": sum(r["errors"].values()),
                     "mb_r": r["read_bytes"] / 1e6, "mb_w": r["written_bytes"] / 1e6})
    span = intervals[1]["t"] - intervals[0]["t"] if len(intervals) > 1 else 10.0
    server_p99 = {}  # proc -> [(t, p99 s)]
    for a, b in zip(samples, samples[1:]):
        for proc, hb in b.get("hist", {}).items():
            p = hist_p99(hist_delta(a.get("hist", {}).get(proc), hb))
            if p is not None:
                server_p99.setdefault(proc, []).append((b["t"], p))
    whole_p99 = {}
    if len(samples) >= 2:
        first, last = samples[0].get("hist", {}), samples[-1].get("hist", {})
        for proc, hb in last.items():
            d_ = hist_delta(first.get(proc), hb)
            whole_p99[proc] = (hist_p99(d_), sorted(d_)[-1][1] if d_ else 0)

    # Checks: soak.sh's own first, then the figures'.
    shell = os.path.join(d, "shell_checks.txt")
    if os.path.exists(shell):
        with open(shell) as f:
            for line in f:
                status, _, name = line.strip().partition(" ")
                if name:
                    check(name, status == "ok", "see the output above")
    check("the load ran to its end", final is not None, "no final line from soakload")
    errors = sum(final["errors"].values()) if final else None
    check("no failed call", final is not None and errors == 0, f"{errors} errors")
    wrong = final["wrong_bytes"] if final else None
    check("no wrong byte read", final is not None and wrong == 0, f"{wrong} wrong bytes")
    check("the bucket was verified", verify.get("files", 0) > 0, "no files verified")
    check("no lost write", verify.get("files", 0) > 0 and verify.get("lost") == 0,
          f"{verify.get('lost')} lost")
    check("no removed or renamed-away name left in the bucket", verify.get("back") == 0,
          f"{verify.get('back')} back")
    replies = samples[-1].get("replies", {}) if samples else {}
    bad = {k: v for k, v in replies.items() if k not in ("NFS3_OK", "NFS3ERR_JUKEBOX") and v}
    check("every NFS reply NFS3_OK (or NFS3ERR_JUKEBOX, sent again)", samples and not bad,
          json.dumps(bad))
    lo, hi = seconds / 6, seconds / 3
    flat = {}
    for key, slack in (("rss_kb", FLAT_RSS_SLACK_KB), ("fds", FLAT_FD_SLACK)):
        base = window_max(samples, key, lo, hi)
        end = window_max(samples, key, seconds * 5 / 6, seconds + span)
        flat[key] = (base, end)
        check(f"{key} flat (last sixth max <= {FLAT_RATIO} x second sixth max + {slack})",
              base is not None and end is not None and end <= base * FLAT_RATIO + slack,
              f"second sixth {base}, last sixth {end}")
    check("the daemon ran to the end", samples and not any(s.get("gone") for s in samples),
          "the daemon's process went away")

    passed = sum(1 for c in checks if c[1])
    failed = len(checks) - passed

    # The plot.
    png = os.path.join(d, "soak.png")
    plotted = False
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(4, 1, figsize=(11, 13), sharex=True)
        t = [r["t"] for r in rows]
        ax[0].plot(t, [r["ops"] / span for r in rows], label="client calls/s")
        ax[0].plot(t, [r["errors"] for r in rows], "r", label="errors (per interval)")
        ax0b = ax[0].twinx()
        ax0b.plot(t, [r["mb_r"] / span for r in rows], "g--", label="read MB/s")
        ax0b.plot(t, [r["mb_w"] / span for r in rows], "m--", label="written MB/s")
        ax0b.set_ylabel("MB/s")
        ax[0].set_ylabel("calls/s")
        ax[0].legend(loc="upper left")
        ax0b.legend(loc="upper right")
        ax[0].set_title(f"bucketnfsd soak: {final['conns'] if final else '?'} connections of mixed load "
                        "against moto_server")
        main = sorted(server_p99, key=lambda p: -whole_p99.get(p, (0, 0))[1])[:8]
        for proc in main:
            pts = server_p99[proc]
            ax[1].plot([p[0] for p in pts], [p[1] * 1000 for p in pts], label=proc)
        ax[1].set_yscale("log")
        ax[1].set_ylabel("server p99 per 10 s, ms")
        ax[1].legend(loc="upper left", fontsize=8, ncol=4)
        ax[2].plot([s["t"] for s in samples if "rss_kb" in s],
                   [s["rss_kb"] / 1024 for s in samples if "rss_kb" in s], label="VmRSS MiB")
        ax[2].plot([s["t"] for s in samples if "dirty_bytes" in s],
                   [s["dirty_bytes"] / 2**20 for s in samples if "dirty_bytes" in s],
                   label="dirty MiB (not yet uploaded)")
        ax[2].set_ylabel("MiB")
        ax[2].legend(loc="upper left")
        ax[3].plot([s["t"] for s in samples if "fds" in s], [s["fds"] for s in samples if "fds" in s],
                   label="open descriptors")
        ax[3].plot([s["t"] for s in samples if "rpc_connections" in s],
                   [s["rpc_connections"] for s in samples if "rpc_connections" in s],
                   label="RPC connections")
        ax[3].set_ylabel("count")
        ax[3].set_xlabel("seconds")
        ax[3].legend(loc="upper left")
        fig.tight_layout()
        fig.savefig(png, dpi=90)
        plotted = True
    except ImportError:
        pass
    check("the time series is drawn (soak.png)", plotted, "python3-matplotlib missing")
    passed = sum(1 for c in checks if c[1])
    failed = len(checks) - passed

    # The report.
    L = [f"# bucketnfsd soak, {seconds:.0f} s", ""]
    L.append(f"Verdict: **{passed} passed, {failed} failed**" + ("" if failed else " (clean)"))
    L.append("")
    for name, good, detail in checks:
        L.append(f"- {'ok' if good else 'FAILED'}: {name}" + ("" if good else f" ({detail})"))
    L.append("")
    if final:
        tot = sum(final["ops"].values())
        L.append(f"Client calls: {tot} in {final['seconds']:.0f} s ({tot / max(final['seconds'], 1):.0f}/s), "
                 f"read {final['read_bytes'] / 1e6:.0f} MB, written {final['written_bytes'] / 1e6:.0f} MB, "
                 f"{final['big_files']} files past the multipart threshold; "
                 f"{final['files']} files left and checked, {final['gone']} names removed or renamed; "
                 f"{final.get('jukebox', 0)} NFS3ERR_JUKEBOX answers waited out and sent again.")
        L.append("")
    if rows:
        ops = [r["ops"] / span for r in rows]
        L.append(f"Throughput per {span:.0f} s interval: min {min(ops):.0f}, median "
                 f"{sorted(ops)[len(ops) // 2]:.0f}, max {max(ops):.0f} calls/s; first "
                 f"{ops[0]:.0f}, last {ops[-1]:.0f}.")
        L.append("")
        L.append("| t (s) | calls/s | errors | read MB/s | written MB/s |")
        L.append("|---:|---:|---:|---:|---:|")
        for r in rows:
            L.append(f"| {r['t']:.0f} | {r['ops'] / span:.0f} | {r['errors']} | {r['mb_r'] / span:.1f} "
                     f"| {r['mb_w'] / span:.2f} |")
        L.append("")
    if whole_p99:
        L.append("Server-side latency per NFS procedure over the whole run (from the daemon's "
                 "bucketnfs_nfs3_call_duration_seconds histogram; p99 is the bucket bound it falls in):")
        L.append("")
        L.append("| procedure | calls | p99 ms | worst 10 s p99 ms |")
        L.append("|---|---:|---:|---:|")
        for proc, (p, n) in sorted(whole_p99.items(), key=lambda kv: -kv[1][1]):
            if n:
                worst = max((x[1] for x in server_p99.get(proc, [])), default=None)
                L.append(f"| {proc} | {n:.0f} | {fmt_ms(p)} | {fmt_ms(worst)} |")
        L.append("")
    if final:
        L.append("Client-side latency per libnfs call (path-based calls include their LOOKUPs):")
        L.append("")
        L.append("| call | count | errors | p99 ms |")
        L.append("|---|---:|---:|---:|")
        for k, n in final["ops"].items():
            if n:
                L.append(f"| {k} | {n} | {final['errors'][k]} | {final['p99_ms'][k]:.1f} |")
        L.append("")
    L.append("Daemon resources (max of the second sixth of the run vs max of the last sixth):")
    L.append("")
    first = samples[0] if samples else {}
    last = samples[-1] if samples else {}
    L.append(f"- VmRSS: first sample {first.get('rss_kb', 0) / 1024:.1f} MiB, second sixth "
             f"{(flat['rss_kb'][0] or 0) / 1024:.1f} MiB, last sixth {(flat['rss_kb'][1] or 0) / 1024:.1f} "
             f"MiB, last sample {last.get('rss_kb', 0) / 1024:.1f} MiB")
    L.append(f"- open descriptors: first {first.get('fds')}, second sixth {flat['fds'][0]}, last sixth "
             f"{flat['fds'][1]}, last {last.get('fds')}")
    L.append(f"- store retries {last.get('store_retries', 0):.0f}, store errors "
             f"{last.get('store_errors', 0):.0f}; NFS replies by status: "
             f"{json.dumps({k: int(v) for k, v in replies.items() if v})}")
    L.append("")
    if verify:
        L.append(f"Bucket check after `bucketnfs flush --wait`: {verify['files']} files "
                 f"({verify['bytes'] / 1e6:.0f} MB) compared by SHA-256, {verify['lost']} lost; "
                 f"{verify['gone']} removed names checked, {verify['back']} still there.")
        for p in verify.get("problems", []):
            L.append(f"- {p}")
        L.append("")
    if plotted:
        L.append("![time series](soak.png)")
    with open(os.path.join(d, "report.md"), "w") as f:
        f.write("\n".join(L) + "\n")
    for name, good, detail in checks:
        print(f"{'ok' if good else 'not ok'} - {name}" + ("" if good else f": {detail}"))
    print(f"soak: {passed} passed, {failed} failed")
    return 1 if failed else 0


def main():
    cmds = {"seed": (cmd_seed, 4), "sample": (cmd_sample, 5), "verify": (cmd_verify, 4),
            "report": (cmd_report, 2)}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds or len(sys.argv) - 2 != cmds[sys.argv[1]][1]:
        print(__doc__, file=sys.stderr)
        return 2
    return cmds[sys.argv[1]][0](*sys.argv[2:]) or 0


if __name__ == "__main__":
    sys.exit(main())
