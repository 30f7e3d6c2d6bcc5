#!/usr/bin/env bash
# abuse.sh - protocol abuse (abuse.py) against the real daemon on a dir
# store: idle connection floods, a client that never reads its replies,
# slow-loris senders, 2^31-byte records, tiny READDIR counts, odd READs,
# wrong versions, replayed XIDs.  Each while another client's GETATTR
# latency is measured.  Prints "N passed, N failed".
set -u
. "$(dirname "$0")/lib.sh"
it_setup

buckets=$IT_TMP/buckets
mkdir -p "$buckets/demo"
head -c $((4 << 20)) /dev/urandom >"$buckets/demo/big.bin"
for i in $(seq 1 40); do echo "$i" >"$buckets/demo/f$i.txt"; done
it_write_conf abuse "$buckets"
# The daemon runs with the common default of 1024 descriptors, fewer than
# its connection limit plus what it needs besides: it must lower the limit
# (else accept fails with EMFILE and no new client gets in).
if command -v prlimit >/dev/null; then IT_WRAP="${IT_WRAP:-} prlimit --nofile=1024:1024"; fi
it_start abuse || { fail "daemon starts" "see above"; it_done; exit 1; }
ok "daemon starts on free ports ($NFS_PORT, $MOUNT_PORT)"

it_sub abuse python3 "$IT_ROOT/tests/integration/abuse.py" "$NFS_PORT" "$MOUNT_PORT" \
    "${IT_PIDS[abuse]}"

if kill -0 "${IT_PIDS[abuse]}" 2>/dev/null; then ok "daemon still running"
else fail "daemon still running" "$(tail -5 "$IT_TMP/abuse/daemon.log")"; fi
it_done
