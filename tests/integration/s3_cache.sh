#!/usr/bin/env bash
# s3_cache.sh - the block cache as users meet it: files in a moto bucket
# read through bucketnfsd with libnfs (nfs-cat, it_cache), and every GET
# the daemon sends counted by faultproxy.py (/__requests__) between it and
# moto.  Cache blocks of 64 KiB, metadata_ttl 2 s.
#
#  a. a file read cold makes one GET per block, each block once; read again
#     it makes none
#  b. after kill -9 and a restart on the same state_dir and cache folder,
#     the same read makes none either (and the cache says it loaded blocks);
#     a second daemon given the same cache folder refuses to start
#  c. 16 nfs-cat processes reading one cold 33-block file at once: one GET
#     per block in all (single flight), and all 16 copies right
#  d. an object replaced in the bucket is served in its new version once
#     the TTL has passed, never the cached old one; and while a writer keeps
#     replacing it (new versions, then A/B/A/B), readers that read the
#     whole file in one READ get one whole version every time, never a mix
#     (cache_versions.py writes them, it_cache checks them), and each of
#     them sees the version change.  A/B alternating comes in bursts with
#     holds longer than the TTL between them (A held, a burst, B held, ...):
#     a gateway that looks once per TTL may find the same one of two
#     versions at every look while they alternate faster than that, and
#     then no reader sees a change though nothing is wrong; a version held
#     longer than the TTL and a HEAD's time it must find while it holds
#  e. bytes flipped in a cached block on disk (daemon stopped) are caught
#     by the checksum: the read returns the right bytes and makes exactly
#     one GET, for that block
#  f. cache folders on an 8 MiB tmpfs with cache.size 256M (a full cache
#     disk): 32 MiB of files still read back right, twice, and the daemon
#     stays up (the tmpfs is mounted in a private mount namespace: root)
# Prints "N passed, N failed" last.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/moto_lib.sh"
it_setup
trap 'moto_stop_all; it_cleanup' EXIT

for tool in moto_server python3 curl nfs-cat; do
    command -v "$tool" >/dev/null || { fail "$tool installed" "tools/install-deps.sh test"; it_done; exit 1; }
done
python3 -c 'import boto3' 2>/dev/null || { fail "boto3 installed" "python3-boto3"; it_done; exit 1; }
for b in "$IT_BIN" "$IT_BUILD/tests/it_cache"; do
    [ -x "$b" ] || { fail "$b built" "make it first"; it_done; exit 1; }
done

BS=65536
TTL=2
bucket=cachet
export AWS_ACCESS_KEY_ID=AKIDCACHETEST AWS_SECRET_ACCESS_KEY=cache-test-secret
unset AWS_SESSION_TOKEN AWS_PROFILE
seed() { python3 "$here/s3_seed.py" "$MOTO_ENDPOINT" "$bucket" "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" "$@" >/dev/null; }
versions() { python3 "$here/cache_versions.py" "$@"; }

moto_start "$IT_TMP/moto.log" || { fail "moto_server starts" ""; it_done; exit 1; }
moto_auth "$MOTO_ENDPOINT" off
faultproxy_start "$MOTO_PORT" || { fail "faultproxy starts" ""; it_done; exit 1; }
proxy=http://127.0.0.1:$PROXY_PORT

# ---- helpers --------------------------------------------------------------
url() { echo "nfs://127.0.0.1/demo/$1?nfsport=$NFS_PORT&mountport=$MOUNT_PORT"; }
export_url() { echo "nfs://127.0.0.1/demo?nfsport=$NFS_PORT&mountport=$MOUNT_PORT"; }
# nfs_cat KEY OUT: nfs-cat the file into OUT (retried as nfs_tool does).
nfs_cat() {
    local i
    for i in 1 2 3; do
        nfs-cat "$(url "$1")" >"$2" 2>"$2.err" && return 0
        sleep 1
    done
    echo "nfs-cat $1: $(cat "$2.err")"
    return 1
}
# same NAME KEY LOCAL: read KEY with nfs-cat, compare with LOCAL.
same() {
    if nfs_cat "$2" "$IT_TMP/got" && cmp -s "$IT_TMP/got" "$3"; then ok "$1"
    else fail "$1" "$(cmp "$IT_TMP/got" "$3" 2>&1 | head -2)"; fi
}
requests_clear() { curl -s -f -o /dev/null -X POST "$proxy/__requests__"; }
# gets KEY: the Range of every GET of KEY since the last clear, sorted.
gets() { curl -s -f "$proxy/__requests__" | awk -v t="/$bucket/$1" '$1 == "GET" && $2 == t { print $3 }' | sort; }
# blocks SIZE: the Range of every block of a SIZE-byte object, sorted.
blocks() {
    local off=0 size=$1
    while [ "$off" -lt "$size" ]; do
        local end=$((off + BS - 1))
        [ "$end" -ge "$size" ] && end=$((size - 1))
        echo "bytes=$off-$end"
        off=$((off + BS))
    done | sort
}
# one_get_per_block NAME KEY SIZE: the GETs of KEY since the last clear
# cover its blocks exactly once: no byte fetched twice, none missing.  A GET
# may carry several consecutive blocks (read-ahead runs share one GET), so
# its range must start and end on block boundaries.
one_get_per_block() {
    gets "$2" >"$IT_TMP/gets"
    local verdict
    verdict=$(python3 - "$IT_TMP/gets" "$3" "$BS" <<'PY'
import sys
ranges = []
for line in open(sys.argv[1]):
    a, b = line.strip().split("=", 1)[1].split("-")
    ranges.append((int(a), int(b)))
size, bs = int(sys.argv[2]), int(sys.argv[3])
ranges.sort()
at, bad = 0, []
for a, b in ranges:
    if a != at:
        bad.append(f"gap or overlap at {at}: next range {a}-{b}")
    if a % bs or ((b + 1) % bs and b + 1 != size):
        bad.append(f"range {a}-{b} not on block boundaries")
    at = b + 1
if at != size:
    bad.append(f"covered up to {at} of {size}")
print(f"ok {len(ranges)}" if not bad else "bad " + "; ".join(bad[:3]))
PY
)
    case "$verdict" in
    ok*) ok "$1 (${verdict#ok } GETs for $(( ($3 + BS - 1) / BS )) blocks)" ;;
    *) fail "$1" "$verdict: $(head -5 "$IT_TMP/gets" | tr '\n' ' ')" ;;
    esac
}
# no_gets NAME KEY
no_gets() {
    local n
    n=$(gets "$2" | wc -l)
    if [ "$n" = 0 ]; then ok "$1"; else fail "$1" "$n GETs: $(gets "$2" | head -3 | tr '\n' ' ')"; fi
}
# loaded NAME: the block count of the last "N blocks (M MiB) loaded" line.
loaded() { grep 'loaded in' "$IT_TMP/$1/daemon.log" | tail -1 | sed -n 's/.*; \([0-9]*\) blocks (.*/\1/p'; }

# ---- the bucket -----------------------------------------------------------
seed bucket
head -c $((16 * BS + 12345)) /dev/urandom >"$IT_TMP/cold.bin"
head -c $((32 * BS + 777)) /dev/urandom >"$IT_TMP/conc.bin"
head -c $((3 * BS)) /dev/urandom >"$IT_TMP/corrupt.bin"
head -c $((24 << 20)) /dev/urandom >"$IT_TMP/full.bin"
head -c $((8 << 20)) /dev/urandom >"$IT_TMP/full2.bin"
for f in cold conc full full2; do seed put "$f.bin" "$IT_TMP/$f.bin"; done
# Named to sort before cold.bin: reading cold.bin then conc.bin is a reader
# going through the folder in name order, and cross-file prefetch fetches
# the files after conc.bin ahead of it; this one must still be cold in (e).
seed put a-corrupt.bin "$IT_TMP/corrupt.bin"
versions put "$MOTO_ENDPOINT" "$bucket" stale.bin 1 $((4 * BS)) >/dev/null
versions put "$MOTO_ENDPOINT" "$bucket" race.bin 100 $((8 * BS)) >/dev/null

it_write_s3_conf c "$proxy" "$bucket" 'credentials = "env";' "metadata_ttl = $TTL;"
sed -i 's/block_size = "1M"/block_size = "64K"/' "$IT_TMP/c/bucketnfs.conf"
it_start c || { fail "daemon starts" ""; it_done; exit 1; }
ok "daemon starts behind the counting proxy, 64 KiB cache blocks"

# ---- a. cold, then warm ----------------------------------------------------
requests_clear
same "a cold read of a 17-block file is right" cold.bin "$IT_TMP/cold.bin"
one_get_per_block "the cold read fetches each block once" cold.bin $((16 * BS + 12345))
requests_clear
same "the second read is right" cold.bin "$IT_TMP/cold.bin"
no_gets "the second read makes no GET" cold.bin

# ---- b. kill -9 and restart --------------------------------------------------
it_kill9 c
it_start c || { fail "daemon restarts after kill -9" "$(tail -5 "$IT_TMP/c/daemon.log")"; it_done; exit 1; }
n=$(loaded c)
if [ "${n:-0}" -ge 17 ]; then ok "after kill -9 the restarted cache loads $n blocks"
else fail "after kill -9 the restarted cache loads the blocks" "$(grep 'loaded in' "$IT_TMP/c/daemon.log" | tail -1)"; fi
requests_clear
same "after kill -9 and a restart the read is right" cold.bin "$IT_TMP/cold.bin"
no_gets "after kill -9 and a restart the read makes no GET" cold.bin

# A second daemon given the same cache folder would write into the first's
# regions and each would serve the other's bytes: it must refuse to start.
it_write_s3_conf c2 "$proxy" "$bucket" 'credentials = "env";' "metadata_ttl = $TTL;"
sed -i "s|dirs = ( \"cache\" )|dirs = ( \"$IT_TMP/c/cache\" )|" "$IT_TMP/c2/bucketnfs.conf"
if it_start c2 >/dev/null; then
    fail "a second daemon on the same cache folder is refused" "it started"
    it_stop c2
elif grep -q 'in use by another process' "$IT_TMP/c2/daemon.log"; then
    ok "a second daemon on the same cache folder is refused"
else fail "a second daemon on the same cache folder is refused" "$(tail -2 "$IT_TMP/c2/daemon.log")"; fi

# ---- c. 16 readers of one cold file ------------------------------------------
requests_clear
pids=()
for i in $(seq 1 16); do
    nfs_cat conc.bin "$IT_TMP/conc.$i" >/dev/null &
    pids+=($!)
done
bad=0
for i in $(seq 1 16); do
    wait "${pids[$((i - 1))]}" && cmp -s "$IT_TMP/conc.$i" "$IT_TMP/conc.bin" || bad=$((bad + 1))
done
if [ "$bad" = 0 ]; then ok "16 concurrent nfs-cat of a cold 33-block file all read it right"
else fail "16 concurrent nfs-cat of a cold 33-block file all read it right" "$bad of 16 wrong or failed"; fi
one_get_per_block "16 concurrent readers: each block fetched once in all" conc.bin $((32 * BS + 777))

# ---- d. replaced objects --------------------------------------------------------
vcheck() { # vcheck NAME KEY WANT: it_cache reads KEY whole, it must be version WANT
    local got
    got=$("$IT_BUILD/tests/it_cache" "$(export_url)" version "/$2" 2>&1)
    if [ "$got" = "$3" ]; then ok "$1"; else fail "$1" "read '$got', want version $3"; fi
}
vcheck "version 1 of an object is read (and cached)" stale.bin 1
versions put "$MOTO_ENDPOINT" "$bucket" stale.bin 2 $((4 * BS)) >/dev/null
sleep $((TTL + 1))
vcheck "replaced in the bucket: after the TTL version 2 is served, not the cached version 1" stale.bin 2
vcheck "and again" stale.bin 2

# race ROUND SECONDS FIRST CYCLE [HOLD]: 4 readers while cache_versions.py
# replaces race.bin (HOLD: bursts and holds of HOLD seconds, see above; the
# last hold may end after SECONDS, so the readers go on for HOLD more).
race() {
    local round=$1 secs=$2 first=$3 cycle=$4 hold=${5:-0} rpids=() i v bad=0 still=0 reads=0
    local jukebox=0 last rsecs
    rsecs=$(awk -v s="$secs" -v h="$hold" 'BEGIN { printf "%d", s + h + 0.999 }')
    rm -f "$IT_TMP/writer.ready"
    versions race "$MOTO_ENDPOINT" "$bucket" race.bin $((8 * BS)) "$secs" "$first" "$cycle" 0.1 \
        "$IT_TMP/writer.ready" "$hold" >"$IT_TMP/writer.out" 2>&1 &
    local wpid=$!
    for _ in $(seq 300); do [ -e "$IT_TMP/writer.ready" ] && break; sleep 0.1; done
    for i in 1 2 3 4; do
        "$IT_BUILD/tests/it_cache" "$(export_url)" race /race.bin "$rsecs" >"$IT_TMP/race.$i" 2>&1 &
        rpids+=($!)
    done
    wait "$wpid"
    last=$(tail -1 "$IT_TMP/writer.out")
    for i in 1 2 3 4; do
        wait "${rpids[$((i - 1))]}" || bad=$((bad + 1))
        sed "s/^/# reader $i: /" "$IT_TMP/race.$i"
        # Every reader must have seen the version change at least once.
        v=$(sed -n 's/.* versions \([0-9]*\) .*/\1/p' "$IT_TMP/race.$i" | head -1)
        [ "${v:-0}" -ge 2 ] || still=$((still + 1))
        v=$(sed -n 's/# reads \([0-9]*\),.*/\1/p' "$IT_TMP/race.$i" | head -1)
        reads=$((reads + ${v:-0}))
        v=$(sed -n 's/.* jukebox \([0-9]*\)$/\1/p' "$IT_TMP/race.$i" | head -1)
        jukebox=$((jukebox + ${v:-0}))
    done
    echo "# writer: $(sed -n 's/^held //p' "$IT_TMP/writer.out" | tr '\n' ' ' | sed 's/^./held &/')$last"
    if [ "$bad" = 0 ] && [ "$still" = 0 ]; then
        ok "$round: $reads whole-file reads racing the writer, each one whole version ($jukebox NFS3ERR_JUKEBOX retried)"
    else
        fail "$round: every read racing the writer is one whole version" \
            "$bad readers failed; $still readers never saw the version change (the race must happen)"
    fi
    sleep $((TTL + 1))
    vcheck "$round: after the writer stops and the TTL passes, its last version (${last##* }) is served" \
        race.bin "${last##* }"
}
race "new versions" 8 101 0
# Bursts of 2 s and holds of TTL + 1.5 s: A/B/A/B for 2 s, X held until
# 5.5 s, A/B/A/B, Y held (Y != X) from 7.5 to 11 s.  Every reader, reading
# from 0 to 14 s, sees X by 2 s + TTL + a HEAD's time, while X still holds,
# and Y by 7.5 s + TTL + a HEAD's time.
race "versions A/B alternating" 10 200 2 $((TTL + 1)).5

# ---- e. a corrupt block on disk ---------------------------------------------
requests_clear
same "a 3-block file read cold" a-corrupt.bin "$IT_TMP/corrupt.bin"
one_get_per_block "it is fetched once per block" a-corrupt.bin $((3 * BS))
it_stop c || fail "daemon stops on SIGTERM" "$(tail -3 "$IT_TMP/c/daemon.log")"
# Flip 16 bytes in the middle of block 1 wherever the cache files hold it.
flipped=$(python3 - "$IT_TMP/corrupt.bin" "$IT_TMP"/c/cache/shard-*.dat <<'PY'
import sys
src = open(sys.argv[1], "rb").read()
needle = src[65536 + 1000:65536 + 1064]
hits = 0
for path in sys.argv[2:]:
    data = open(path, "rb").read()
    at = data.find(needle)
    while at >= 0:
        with open(path, "r+b") as f:
            f.seek(at + 20)
            f.write(bytes(b ^ 0xFF for b in data[at + 20:at + 36]))
        hits += 1
        at = data.find(needle, at + 1)
print(hits)
PY
)
if [ "$flipped" -ge 1 ] 2>/dev/null; then ok "block 1 found in the cache files and 16 bytes of it flipped ($flipped copies)"
else fail "block 1 found in the cache files" "found ${flipped:-nothing}"; fi
it_start c || { fail "daemon restarts over a corrupt block" "$(tail -5 "$IT_TMP/c/daemon.log")"; it_done; exit 1; }
requests_clear
same "the corrupt block is not served: the file reads back right" a-corrupt.bin "$IT_TMP/corrupt.bin"
g=$(gets a-corrupt.bin | tr '\n' ' ')
if [ "$g" = "bytes=65536-131071 " ]; then ok "exactly one GET, for the corrupt block"
else fail "exactly one GET, for the corrupt block" "GETs: ${g:-none}"; fi
if grep -q 'failed its checksum' "$IT_TMP/c/daemon.log"; then ok "the daemon logs the failed checksum"
else fail "the daemon logs the failed checksum" "no such line"; fi
requests_clear
same "read again: right" a-corrupt.bin "$IT_TMP/corrupt.bin"
no_gets "read again: no GET (the refetched block was kept)" a-corrupt.bin
it_stop c || fail "daemon stops on SIGTERM" "$(tail -3 "$IT_TMP/c/daemon.log")"

# ---- f. a full cache disk ----------------------------------------------------------
if [ "$(id -u)" != 0 ] || ! unshare -m --propagation private true 2>/dev/null; then
    fail "a cache on a full tmpfs" "needs root and unshare -m (mount -t tmpfs in a private mount namespace)"
else
    it_write_s3_conf full "$proxy" "$bucket" 'credentials = "env";' "metadata_ttl = $TTL;"
    sed -i -e 's/block_size = "1M"/block_size = "64K"/' \
        -e 's|dirs = ( "cache" )|dirs = ( "tmpfs/a", "tmpfs/b" )|' "$IT_TMP/full/bucketnfs.conf"
    mkdir -p "$IT_TMP/full/tmpfs"
    cat >"$IT_TMP/full/wrap.sh" <<WRAP
mount -t tmpfs -o size=8m bnfs-full-cache "$IT_TMP/full/tmpfs" || exit 1
exec "\$@"
WRAP
    IT_WRAP="unshare -m --propagation private bash $IT_TMP/full/wrap.sh" it_start full ||
        { fail "daemon starts with its cache on an 8 MiB tmpfs" "$(tail -5 "$IT_TMP/full/daemon.log")"; it_done; exit 1; }
    ok "daemon starts with cache.size 256M on an 8 MiB tmpfs"
    same "a 24 MiB file read through a full cache disk is right" full.bin "$IT_TMP/full.bin"
    same "an 8 MiB file after it is right" full2.bin "$IT_TMP/full2.bin"
    same "the 24 MiB file read again is right" full.bin "$IT_TMP/full.bin"
    df=$(nsenter -t "${IT_PIDS[full]}" -m df -k "$IT_TMP/full/tmpfs" 2>/dev/null | tail -1)
    echo "# the cache tmpfs: $df"
    echo "# $(grep -c 'writing a block failed' "$IT_TMP/full/daemon.log") 'writing a block failed' lines in the log"
    if kill -0 "${IT_PIDS[full]}" 2>/dev/null && it_stop full; then ok "the daemon with a full cache disk is up and stops cleanly"
    else fail "the daemon with a full cache disk is up and stops cleanly" "$(tail -5 "$IT_TMP/full/daemon.log")"; fi
fi

if grep -qi 'sanitizer\|runtime error' "$IT_TMP"/*/daemon.log; then
    fail "no sanitizer reports in the daemon logs" "$(grep -i -m3 'sanitizer\|runtime error' "$IT_TMP"/*/daemon.log)"
fi
it_done
