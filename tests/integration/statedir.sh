#!/usr/bin/env bash
# statedir.sh - state_dir (the inode table, Berkeley DB) on a full disk under
# a running daemon (dir store, read-write export): a tmpfs mounted over
# state_dir in a private mount namespace (needs root and unshare -m), then
# filled to the last byte with a file.
#   - changes that need a commit (CREATE, MKDIR, RENAME, a WRITE that grows
#     a file) answer NFS3ERR_NOSPC, and the daemon goes on: READs of files
#     written before are right (the refused WRITE changed nothing);
#   - once the filler is removed, CREATE works again, with no restart;
#   - after a restart, every file whose CREATE and WRITE were answered is
#     there, byte for byte (uploads are held back: they come from the
#     table and the stage, not the bucket).
# Berkeley DB makes each log file whole (zeroed) ahead of use, 10 MiB by
# default, so a full disk shows when a new one is needed; a DB_CONFIG in
# state_dir makes them 256 KiB, so that comes after about 80 changes.
# Prints "N passed, N failed" last.
set -u
. "$(dirname "$0")/lib.sh"
it_setup
if [ "$(id -u)" != 0 ] || ! unshare -m --propagation private true 2>/dev/null; then
    fail "state_dir on a full disk" "needs root and unshare -m (mount -t tmpfs in a private mount namespace)"
    it_done; exit 1
fi
mkdir -p "$IT_TMP/b/demo"
IT_ACCESS=rw it_write_conf s "$IT_TMP/b" '' 'writeback_delay = 600;'
state=$IT_TMP/s/state
# A process holding the private mount namespace the tmpfs lives in, across
# the daemon's restart; it ends with the test.
unshare -m --propagation private sleep 600 &
holder=$!
trap 'kill "$holder" 2>/dev/null; it_cleanup' EXIT
in_ns() { nsenter -t "$holder" -m -- "$@"; }
for _ in $(seq 50); do [ "$(readlink /proc/$holder/ns/mnt)" != "$(readlink /proc/self/ns/mnt)" ] && break; sleep 0.1; done
in_ns mount -t tmpfs -o size=32m bnfs-state "$state" || { fail "mount a tmpfs over state_dir" ""; it_done; exit 1; }
echo "set_lg_max 262144" | in_ns tee "$state/DB_CONFIG" >/dev/null

start() { # start the daemon in the namespace; sets NFS_PORT MOUNT_PORT
    in_ns rm -f "$state/bucketnfsd.ports"
    nsenter -t "$holder" -m -- "$IT_BIN" -f -c "$IT_TMP/s/bucketnfs.conf" >>"$IT_TMP/s/daemon.log" 2>&1 &
    IT_PIDS[s]=$!
    for _ in $(seq 100); do
        if in_ns test -s "$state/bucketnfsd.ports"; then
            NFS_PORT=$(in_ns sed -n 's/^nfs_port=//p' "$state/bucketnfsd.ports")
            MOUNT_PORT=$(in_ns sed -n 's/^mount_port=//p' "$state/bucketnfsd.ports")
            return 0
        fi
        sleep 0.1
    done
    tail -5 "$IT_TMP/s/daemon.log"; return 1
}
u() { echo "nfs://127.0.0.1/demo/$1?nfsport=$NFS_PORT&mountport=$MOUNT_PORT"; }
reads_right() { nfs-cat "$(u "$1")" | cmp - "$IT_TMP/$2"; }

start || { fail "the daemon starts with state_dir on a tmpfs" ""; it_done; exit 1; }
head -c 300000 /dev/urandom >"$IT_TMP/big"
echo small >"$IT_TMP/small"
check "a file is written before the disk fills" nfs_tool nfs-cp "$IT_TMP/big" "$(u before)"
in_ns dd if=/dev/zero of="$state/filler" bs=1M 2>/dev/null
check "state_dir's disk is full" bash -c "in_ns() { nsenter -t $holder -m -- \"\$@\"; }; in_ns df -k '$state' | awk 'NR == 2 {exit \$4 != 0}'"
# Creates until one is refused (the log needs a new file): 400 at most, in
# one mount (it_nfsop session: one "ok" or "err ..." line per create).
url="nfs://127.0.0.1/demo?nfsport=$NFS_PORT&mountport=$MOUNT_PORT"
for i in $(seq 400); do echo "put $IT_TMP/small /x$i"; done |
    "$IT_BUILD/tests/it_nfsop" "$url" session >"$IT_TMP/creates.out" 2>&1
# The files whose create was answered (a few after the first refusal may be).
# (A create whose COMMIT failed is not answered: its data was refused.)
awk '$1 == "ok" || $1 == "err" {k++} $1 == "ok" {print "/x" k}' "$IT_TMP/creates.out" >"$IT_TMP/made"
made=$(awk '$1 == "err" {exit} $1 == "ok" {n++} END {print n + 0}' "$IT_TMP/creates.out")
refused=$(grep -m1 '^err' "$IT_TMP/creates.out")
echo "# $made creates answered before the first refusal, $(wc -l <"$IT_TMP/made") in all"
if grep -q "NFS3ERR_NOSPC" <<<"$refused"; then ok "a CREATE on the full disk answers NFS3ERR_NOSPC"
else fail "a CREATE on the full disk answers NFS3ERR_NOSPC" "${refused:-none refused in 400}"; fi
"$IT_BUILD/tests/it_nfsop" "$url" mkdir /dir1 >"$IT_TMP/mk.out" 2>&1
check "MKDIR answers NFS3ERR_NOSPC" grep -q NFS3ERR_NOSPC "$IT_TMP/mk.out"
"$IT_BUILD/tests/it_nfsop" "$url" mv /x1 /x1-moved >"$IT_TMP/mv.out" 2>&1
check "RENAME answers NFS3ERR_NOSPC" grep -q NFS3ERR_NOSPC "$IT_TMP/mv.out"
"$IT_BUILD/tests/it_nfsop" "$url" append "$IT_TMP/small" /before >"$IT_TMP/ap.out" 2>&1
check "a WRITE that grows a file answers NFS3ERR_NOSPC" grep -q NFS3ERR_NOSPC "$IT_TMP/ap.out"
check "the daemon still runs" kill -0 "${IT_PIDS[s]}"
check "a file written before reads right" reads_right before big
check "a file created last before the refusal reads right" reads_right "x$made" small
in_ns rm -f "$state/filler"
check "space freed: a CREATE works again, no restart" nfs_tool nfs-cp "$IT_TMP/big" "$(u after)"
check "... and MKDIR" "$IT_BUILD/tests/it_nfsop" "nfs://127.0.0.1/demo?nfsport=$NFS_PORT&mountport=$MOUNT_PORT" mkdir /dir2
check "the daemon stops cleanly" it_stop s
start || fail "the daemon starts again" ""
check "after a restart: the file written before reads right" reads_right before big
check "... the one written once space was freed" reads_right after big
# Each file is "small" (6 bytes): its size read back (one mount), and two read whole.
url="nfs://127.0.0.1/demo?nfsport=$NFS_PORT&mountport=$MOUNT_PORT"
sed 's/^/read /' "$IT_TMP/made" | "$IT_BUILD/tests/it_nfsop" "$url" session >"$IT_TMP/reads.out" 2>&1
lost=$(awk '$1 == "ok" && prev == "6" {good++} {prev = $1} END {print n - good}' n="$(wc -l <"$IT_TMP/made")" "$IT_TMP/reads.out")
check "... every one of the $(wc -l <"$IT_TMP/made") files whose CREATE was answered ($lost lost)" test "$lost" = 0
check "... x1 and x$made read right" bash -c "$(declare -f u reads_right); NFS_PORT=$NFS_PORT MOUNT_PORT=$MOUNT_PORT IT_TMP=$IT_TMP; reads_right x1 small && reads_right x$made small"
check "the daemon stops cleanly again" it_stop s
it_done
