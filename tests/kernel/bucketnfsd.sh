#!/usr/bin/env bash
# bucketnfsd.sh SRC NFS_PORT MOUNT_PORT - serve the folder SRC with
# bucketnfsd for the kernel suite: a dir store rooted at SRC's parent,
# bucket = SRC's name, exported read-only as /demo, registered with
# rpcbind, its block cache in its own work folder (1 GiB, 1 MiB blocks).
# BNFS_TTL sets the export's metadata_ttl (default 2).
# A second export, /rw, serves an empty bucket of its own (a second dir
# store in the work folder) read-write, squash none, writeback_delay 1:
# the write-side suite's (posix_write.sh).  live_exports.sh adds a third,
# /live (bucket live-test of that store), by asking for a reload.
#
# It also answers the guest's requests in BNFS_CTL_DIR (run.sh's control
# folder; the guest writes them to $BNFS_CTL), polled every 0.2 s:
#   restart.req   kill -9 the daemon, start it again with the same ports,
#                 state_dir and cache folder, and write restart.done:
#                   killed=PID connections=N (NFS connections it had)
#                   restarted=PID down_ms=MS (until it listened again)
#                   load=the cache's "N blocks (M MiB) loaded" log line
#                 or restart.failed with the reason.
#   keep-etag.req holding a path in SRC: overwrite 1 MiB in the middle of
#                 that file with random bytes and put its mtime back, so the
#                 dir store still names the same version (its ETag is
#                 inode, size and mtime) while the bytes differ: only a
#                 cache can still return the old ones.  keep-etag.done
#                 holds "inode size mtime" before and after (here, because
#                 the guest's 9p mount drops the nanoseconds of a utime).
#   bucket-list.req  list the /rw bucket as it is now into bucket-list.done
#                 (see bucket_list), for the guest to compare with what its
#                 mount shows once the write-back is done.
#   bucket-keys.req  the /rw bucket's keys under a prefix, as bytes, with
#                 sizes, sha256 and stored mtimes, into bucket-keys.done
#                 (bucket_keys.py has the format; posix_corners.sh asks).
#   reload.req    holding one word, the exports to serve from now on:
#                   base     /demo and /rw, as at start
#                   added    those and /live (rw, squash none, writeback_delay 1)
#                   live-ro  /live changed to access = "ro"
#                   broken   live-ro's file and a second `exports` setting
#                            at its line 12 (reload must refuse it there)
#                 written to the exports file, then `bucketnfs reload`;
#                 reload.done holds "rc=N" (the tool's exit status), its
#                 output, and the daemon's log lines from the reload on.
# The daemon's log goes to stdout (run.sh keeps it as the server log).
# Runs in the foreground; SIGTERM stops it.
set -euo pipefail
src=$(cd "$1" && pwd)
nfs_port=$2 mount_port=$3
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=${BUCKETNFSD:-$here/../../build/bin/bucketnfsd}
tool=${BUCKETNFS:-$(dirname "$bin")/bucketnfs}
ctl=${BNFS_CTL_DIR:-}
work=$(mktemp -d "${TMPDIR:-/tmp}/bnfs-kernel.XXXXXX")
trap 'rm -rf "$work"' EXIT
# log_level info: the cache says what it loaded at start (restart.done).
cat >"$work/bucketnfs.conf" <<CONF
server = { listen = "127.0.0.1"; nfs_port = $nfs_port; mount_port = $mount_port; rpcbind = true;
           threads = 16; state_dir = "state"; log_level = "info"; };
cache = { dirs = ( "cache" ); size = "1G"; block_size = "1M"; readahead_max = "16M"; };
stores = ( { name = "local"; type = "dir"; root = "$(dirname "$src")"; },
           { name = "rwlocal"; type = "dir"; root = "$work/buckets"; } );
exports_file = "exports.conf";
CONF
# exports_conf VARIANT: the exports file (the variants of reload.req).
exports_conf() {
    local live=""
    case $1 in
    added) live=rw ;;
    live-ro | broken) live=ro ;;
    esac
    cat <<CONF
exports = ( { path = "/demo"; store = "local"; bucket = "$(basename "$src")"; prefix = "";
              access = "ro"; clients = ( "127.0.0.0/8" ); squash = "none";
              metadata_ttl = ${BNFS_TTL:-2}; },
            { path = "/rw"; store = "rwlocal"; bucket = "rw-test"; prefix = "";
              access = "rw"; clients = ( "127.0.0.0/8" ); squash = "none";
              metadata_ttl = ${BNFS_TTL:-2}; writeback_delay = 1; }
CONF
    [ -n "$live" ] && cat <<CONF
          , { path = "/live"; store = "rwlocal"; bucket = "live-test"; prefix = "";
              access = "$live"; clients = ( "127.0.0.0/8" ); squash = "none";
              metadata_ttl = ${BNFS_TTL:-2}; writeback_delay = 1; }
CONF
    echo "          );"
    # line 12: a second exports setting, never closed
    [ "$1" = broken ] && printf '\nexports = ( { path = "/x";\n'
    return 0
}
exports_conf base >"$work/exports.conf"
rw_bucket=$work/buckets/rw-test
mkdir -p "$rw_bucket" "$work/buckets/live-test"
log=$work/daemon.log
: >"$log"
tail -n +1 -f "$log" &
tail_pid=$!
pid=""
start() {
    "$bin" -f -c "$work/bucketnfs.conf" >>"$log" 2>&1 &
    pid=$!
}
stop() {
    [ -n "$pid" ] && { kill -TERM "$pid" 2>/dev/null; wait "$pid" || true; }
    sleep 0.2 # the last lines reach stdout
    kill "$tail_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap stop EXIT
trap 'exit 143' TERM INT

now_ms() { echo $(($(date +%s%N) / 1000000)); }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$nfs_port") 2>/dev/null; }

# restart: kill -9 and start again; writes restart.done or restart.failed.
restart() {
    local old=$pid conns lines t0 up=0 load=""
    conns=$(ss -Htn state established "( sport = :$nfs_port )" 2>/dev/null | wc -l)
    lines=$(wc -l <"$log")
    t0=$(now_ms)
    kill -KILL "$old"
    wait "$old" 2>/dev/null || true
    echo "bucketnfsd.sh: killed $old (-9) with $conns NFS connections; restarting" >>"$log"
    start
    for _ in $(seq 300); do # 60 s at most
        kill -0 "$pid" 2>/dev/null || break
        if listening; then up=1; break; fi
        sleep 0.2
    done
    if [ "$up" != 1 ]; then
        echo "the restarted daemon did not listen on $nfs_port" >"$ctl/restart.tmp"
        mv "$ctl/restart.tmp" "$ctl/restart.failed"
        return
    fi
    load=$(tail -n +"$((lines + 1))" "$log" | grep -m1 'loaded in' || true)
    printf 'killed=%s connections=%s\nrestarted=%s down_ms=%s\nload=%s\n' \
        "$old" "$conns" "$pid" $(($(now_ms) - t0)) "$load" >"$ctl/restart.tmp"
    mv "$ctl/restart.tmp" "$ctl/restart.done"
}

# keep_etag REL: the keep-etag.req request for SRC/REL.
keep_etag() {
    local f=$src/$1 size before
    case "/$1/" in */../*) echo "refused: $1" >"$ctl/keep-etag.tmp"; mv "$ctl/keep-etag.tmp" "$ctl/keep-etag.done"; return ;; esac
    before=$(stat -c '%i %s %.9Y' "$f")
    size=$(stat -c %s "$f")
    touch -r "$f" "$work/ref"
    dd if=/dev/urandom of="$f" bs=1M count=1 seek=$((size >> 21)) conv=notrunc status=none
    touch -r "$work/ref" "$f"
    printf 'before=%s\nafter=%s\n' "$before" "$(stat -c '%i %s %.9Y' "$f")" >"$ctl/keep-etag.tmp"
    mv "$ctl/keep-etag.tmp" "$ctl/keep-etag.done"
}

# reload VARIANT: the reload.req request.
reload() {
    local lines rc out
    case $1 in
    base | added | live-ro | broken) ;;
    *) echo "rc=refused: unknown variant '$1'" >"$ctl/reload.tmp"; mv "$ctl/reload.tmp" "$ctl/reload.done"; return ;;
    esac
    exports_conf "$1" >"$work/exports.conf"
    lines=$(wc -l <"$log")
    out=$("$tool" -c "$work/bucketnfs.conf" reload 2>&1) && rc=0 || rc=$?
    sleep 0.2 # the daemon's lines reach the log
    { echo "rc=$rc"; echo "$out"; echo "== log"; tail -n +"$((lines + 1))" "$log"; } >"$ctl/reload.tmp"
    mv "$ctl/reload.tmp" "$ctl/reload.done"
}

# bucket_list: the /rw bucket into bucket-list.done, one line an entry,
# then "== sha256" and a sha256sum line for each file, each part sorted
# in byte order (LC_ALL=C sort):
#   f MODE UID GID SIZE MTIME PATH    a file: its POSIX xattrs (MODE in
#                                     octal like find's %m, MTIME in whole
#                                     seconds), "-" for a missing one
#   d MODE UID GID PATH               a folder (a directory marker)
#   l PATH -> TARGET                  a symlink
#   ? PATH                            anything else
# Every name is listed, hidden ones (.nfs*, temporary files) too.
bucket_list() {
    python3 - "$rw_bucket" >"$ctl/bucket-list.tmp" 2>&1 <<'PY' || true
import hashlib, os, stat, sys
root = sys.argv[1]
def xa(path, name):
    try:
        return os.getxattr(path, "user.bucketnfs.file-" + name, follow_symlinks=False).decode()
    except OSError:
        return None
def attrs(path):
    mode, uid, gid, mtime = (xa(path, n) for n in ("permissions", "owner", "group", "mtime"))
    mode = "%o" % (int(mode, 8) & 0o7777) if mode else "-"
    if mtime and mtime.endswith("ns"):
        mtime = str(int(mtime[:-2]) // 10**9)
    return mode, uid or "-", gid or "-", mtime or "-"
lines, sums = [], []
for d, dirs, files in os.walk(root):
    for n in dirs + files:
        p = os.path.join(d, n)
        rel = os.path.relpath(p, root)
        st = os.lstat(p)
        if stat.S_ISLNK(st.st_mode):
            lines.append("l %s -> %s" % (rel, os.readlink(p)))
        elif stat.S_ISDIR(st.st_mode):
            m, u, g, _ = attrs(p)
            lines.append("d %s %s %s %s" % (m, u, g, rel))
        elif stat.S_ISREG(st.st_mode):
            m, u, g, t = attrs(p)
            lines.append("f %s %s %s %d %s %s" % (m, u, g, st.st_size, t, rel))
            h = hashlib.sha256()
            with open(p, "rb") as f:
                for b in iter(lambda: f.read(1 << 20), b""):
                    h.update(b)
            sums.append("%s  %s" % (h.hexdigest(), rel))
        else:
            lines.append("? %s" % rel)
key = lambda s: s.encode("utf-8", "surrogateescape")
for line in sorted(lines, key=key) + ["== sha256"] + sorted(sums, key=key):
    print(line)
PY
    mv "$ctl/bucket-list.tmp" "$ctl/bucket-list.done"
}

start
while kill -0 "$pid" 2>/dev/null; do
    if [ -n "$ctl" ] && [ -e "$ctl/bucket-list.req" ]; then
        rm -f "$ctl/bucket-list.req" "$ctl/bucket-list.done"
        bucket_list
    fi
    if [ -n "$ctl" ] && [ -e "$ctl/bucket-keys.req" ]; then
        mv -f "$ctl/bucket-keys.req" "$work/bucket-keys.req"
        python3 "$here/bucket_keys.py" "$work/bucket-keys.req" "$ctl/bucket-keys.done" dir "$rw_bucket"
    fi
    if [ -n "$ctl" ] && [ -e "$ctl/restart.req" ]; then
        rm -f "$ctl/restart.req" "$ctl/restart.done" "$ctl/restart.failed"
        restart
    fi
    if [ -n "$ctl" ] && [ -e "$ctl/reload.req" ]; then
        variant=$(head -n1 "$ctl/reload.req")
        rm -f "$ctl/reload.req" "$ctl/reload.done"
        reload "$variant"
    fi
    if [ -n "$ctl" ] && [ -e "$ctl/keep-etag.req" ]; then
        rel=$(head -n1 "$ctl/keep-etag.req")
        rm -f "$ctl/keep-etag.req" "$ctl/keep-etag.done"
        keep_etag "$rel"
    fi
    sleep 0.2
done
wait "$pid"
