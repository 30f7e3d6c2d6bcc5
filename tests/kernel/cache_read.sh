#!/bin/bash
# cache_read.sh - large reads through the server's block cache, as a
# training job streams a sensor log, through the Linux NFS client.  Runs in
# the guest (guest-run.sh) against bucketnfsd.sh, whose source tree
# mkfixture.sh made with BNFS_BIG_MB=N: big/seq and big/crash, N MiB of
# random bytes each, with their sha256 in big/*.sha256.
#
#   1. /mnt/a is mounted with nconnect=4 (run.sh --opts-a nconnect=4: four
#      TCP connections, READs spread over them); small files read right
#   2. dd bs=1M of big/seq, cold (every block a miss): the checksum is the
#      source's, and the mount has 4 transports
#   3. dd of big/crash, cold; once a third is read the guest asks the host
#      (restart.req in $BNFS_CTL, see bucketnfsd.sh) to kill -9 the daemon
#      and start it again on the same ports, state_dir and cache folder;
#      the hard mount retries, dd finishes, the checksum is right, and the
#      restarted daemon's cache loaded at least what had been read
#   4. the host then changes the bytes of big/crash in the store, keeping
#      its ETag (keep-etag.req; the dir store's ETag is inode, size and
#      mtime): a re-read through a cold client page cache still returns
#      the old bytes, which only the restarted daemon's cache can have kept
# Prints "ok - NAME" / "not ok - NAME: why".
set -u
[ "${BNFS_TRACE:-0}" = 1 ] && set -x
src=${BNFS_SRC:?BNFS_SRC is not set}
a=${BNFS_MNT_A:-/mnt/a}
ctl=${BNFS_CTL:-}
tmp=$(mktemp -d)
pass=0 fail=0

ok() { echo "ok - $1"; pass=$((pass + 1)); }
not_ok() { echo "not ok - $1: $2"; fail=$((fail + 1)); }
section() { echo "# --- $1 (at ${SECONDS}s)"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# rate BYTES MS: "N MiB in S s (R MiB/s)"
rate() { echo "$(($1 >> 20)) MiB in $(($2 / 1000)).$(($2 % 1000 / 100)) s ($(($1 * 1000 / ($2 + 1) >> 20)) MiB/s)"; }
# sum FILE: sha256 of FILE read with dd bs=1M
sum() { dd if="$1" bs=1M status=none | sha256sum | cut -d' ' -f1; }
drop_client_cache() { sync; echo 3 > /proc/sys/vm/drop_caches; }
finish() {
    cd /
    rm -rf "$tmp"
    echo "# cache_read.sh: $pass passed, $fail failed"
    [ "$fail" = 0 ]
    exit
}

for f in seq crash; do
    if [ ! -s "$src/big/$f" ] || [ ! -s "$src/big/$f.sha256" ]; then
        not_ok "fixture big/$f" "missing: the suite must run mkfixture.sh with BNFS_BIG_MB=N"
        finish
    fi
done
big_size=$(stat -c %s "$src/big/crash")

# ---- 1. nconnect=4 ------------------------------------------------------
# The suite mounts /mnt/a with nconnect=4 (run.sh --opts-a).  The kernel
# keeps one client per server address and port for every NFSv3 mount of it,
# made with the first mount's nconnect: so it has to be the first mount,
# and /mnt/b shares its four connections.
section "nconnect=4"
if grep -q " $a nfs .*nconnect=4" /proc/mounts; then ok "$a is mounted with nconnect=4"
else not_ok "$a is mounted with nconnect=4" "$(grep " $a " /proc/mounts) (run.sh --opts-a nconnect=4)"; fi
(cd "$src" && find files -type f -print0 | sort -z | xargs -0 sha256sum) > "$tmp/sums"
if out=$(cd "$a" && sha256sum --quiet -c "$tmp/sums" 2>&1); then
    ok "sha256 of $(wc -l < "$tmp/sums") small files through nconnect=4"
else not_ok "sha256 of the small files through nconnect=4" "$(head -n 3 <<<"$out" | tr '\n' '|')"; fi

# ---- 2. a large sequential read ------------------------------------------
section "dd of a large file"
want=$(cat "$src/big/seq.sha256")
t=$(now_ms); got=$(sum "$a/big/seq"); ms=$(($(now_ms) - t))
[ "$got" = "$want" ] && ok "dd bs=1M of $(rate "$big_size" "$ms"), cold: checksum matches" ||
    not_ok "dd bs=1M of a $((big_size >> 20)) MiB file, cold" "sha256 $got, want $want"
# The transports of an nconnect mount are listed in mountstats, one "xprt:"
# line each.
x=$(awk -v m="$a" '$1 == "device" { on = ($5 == m) } on && $1 == "xprt:" { n++ } END { print n + 0 }' /proc/self/mountstats)
[ "$x" = 4 ] && ok "the nconnect=4 mount has 4 transports" ||
    not_ok "the nconnect=4 mount has 4 transports" "mountstats lists $x"

# ---- 3. kill -9 and restart in the middle of a cold dd --------------------
section "kill -9 and restart of the server during a dd"
if [ -z "$ctl" ] || [ ! -d "$ctl" ]; then
    not_ok "kill -9 during a dd" "no control folder shared with the host (BNFS_CTL): run.sh with --server-cmd bucketnfsd.sh"
    finish
fi
want=$(cat "$src/big/crash.sha256")
rm -f "$ctl"/restart.*
mkfifo "$tmp/pipe"
sha256sum < "$tmp/pipe" | cut -d' ' -f1 > "$tmp/crash.sum" &
sum_pid=$!
t=$(now_ms)
dd if="$a/big/crash" of="$tmp/pipe" bs=1M status=none 2> "$tmp/dd.err" &
dd_pid=$!
rchar() { sed -n 's/^rchar: //p' "/proc/$dd_pid/io" 2>/dev/null; }
read_at=0
for _ in $(seq 1200); do # 120 s at most
    kill -0 "$dd_pid" 2>/dev/null || break
    read_at=$(rchar); read_at=${read_at:-0}
    [ "$read_at" -ge $((big_size / 3)) ] && break
    sleep 0.1
done
if kill -0 "$dd_pid" 2>/dev/null && [ "$read_at" -lt "$big_size" ]; then
    echo "# dd has read $((read_at >> 20)) MiB: asking the host to kill -9 and restart the server"
    echo "kill -9 and restart" > "$ctl/restart.req"
    ok "dd still running after $((read_at >> 20)) of $((big_size >> 20)) MiB: restart requested"
else
    not_ok "kill -9 during a dd" "dd ended before a third was read ($((read_at >> 20)) MiB): $(cat "$tmp/dd.err")"
fi
for _ in $(seq 1200); do # 120 s at most
    [ -e "$ctl/restart.done" ] || [ -e "$ctl/restart.failed" ] && break
    sleep 0.1
done
if [ -e "$ctl/restart.done" ]; then
    sed 's/^/# host: /' "$ctl/restart.done"
    grep -q '^killed=[0-9]' "$ctl/restart.done" && grep -q '^restarted=[0-9]' "$ctl/restart.done" &&
        ok "the host killed the server (-9) and started it again on the same ports" ||
        not_ok "the host killed and restarted the server" "$(tr '\n' '|' < "$ctl/restart.done")"
else
    not_ok "the host killed and restarted the server" "$(cat "$ctl/restart.failed" 2>/dev/null || echo 'no answer in 120 s')"
fi
left=$(rchar)
echo "# dd had read $((${left:-$big_size} >> 20)) MiB when the server was back"
# The hard mount retries until the server answers again: dd must finish.
dd_rc=1
for _ in $(seq 3000); do # 300 s at most
    kill -0 "$dd_pid" 2>/dev/null || { wait "$dd_pid"; dd_rc=$?; break; }
    sleep 0.1
done
ms=$(($(now_ms) - t))
if kill -0 "$dd_pid" 2>/dev/null; then
    not_ok "dd across the restart finishes" "still running after 300 s"
    kill -KILL "$dd_pid" 2>/dev/null
fi
wait "$sum_pid"
got=$(cat "$tmp/crash.sum")
[ "$dd_rc" = 0 ] && [ "$got" = "$want" ] &&
    ok "dd bs=1M across kill -9 and restart, $(rate "$big_size" "$ms"): checksum matches" ||
    not_ok "dd across kill -9 and restart" "dd exit $dd_rc ($(head -c 200 "$tmp/dd.err")), sha256 $got, want $want"
dmesg | grep -E 'nfs: server .* (not responding|OK)' | tail -n 4 | sed 's/^/# dmesg: /'

# What the restarted daemon found in its cache: big/seq whole (read twice
# before) and every block of big/crash the client had been sent before the
# kill (a block is in the cache file before the reply leaves).
load=$(sed -n 's/^load=//p' "$ctl/restart.done" 2>/dev/null)
mib=$(sed -n 's/.* blocks (\([0-9]*\) MiB) loaded in .*/\1/p' <<<"$load")
need=$(((big_size + read_at) >> 20))
if [ -n "$mib" ] && [ "$mib" -ge "$need" ]; then
    ok "the restarted cache loaded $mib MiB (>= the $need MiB read before the kill)"
else
    not_ok "the restarted cache loaded what was read before the kill" "log: '${load:-no load line}', want >= $need MiB"
fi

# ---- 4. the re-read is served by the cache --------------------------------
section "re-read after the restart"
# The host changes 1 MiB of the stored bytes and puts the mtime back: the
# store still names the same version (same ETag), so only the cache can
# give the old bytes back.
echo big/crash > "$ctl/keep-etag.req"
for _ in $(seq 300); do [ -e "$ctl/keep-etag.done" ] && break; sleep 0.1; done
before=$(sed -n 's/^before=//p' "$ctl/keep-etag.done" 2>/dev/null)
after=$(sed -n 's/^after=//p' "$ctl/keep-etag.done" 2>/dev/null)
if [ -z "$before" ] || [ "$before" != "$after" ]; then
    not_ok "the host changes the stored bytes under the same version" \
        "$(tr '\n' '|' < "$ctl/keep-etag.done" 2>/dev/null || echo 'no answer in 30 s')"
else
    drop_client_cache
    t=$(now_ms); got=$(sum "$a/big/crash"); ms=$(($(now_ms) - t))
    [ "$got" = "$want" ] &&
        ok "re-read after the restart ($(rate "$big_size" "$ms")) is served by the cache: the old bytes, though the store's changed under the same ETag" ||
        not_ok "re-read after the restart is served by the cache" "sha256 $got, not the bytes read before ($want): READs went to the store"
fi
finish
