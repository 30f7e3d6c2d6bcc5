#!/usr/bin/env bash
# retry.sh - tests of tools/retry.sh, the backoff wrapper every download in
# install-deps.sh and the kernel suite's prepare.sh goes through.  Short
# delays (BNFS_RETRY_DELAY_MS) keep it under a second.
# Prints "N passed, N failed".
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
retry_sh=$root/tools/retry.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bnfs-retry.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { echo "ok - $1"; pass=$((pass + 1)); }
not_ok() { echo "not ok - $1: $2"; fail=$((fail + 1)); }
check() { # check NAME WHY-IF-NOT TEST...
    local name=$1 why=$2; shift 2
    if "$@"; then ok "$name"; else not_ok "$name" "$why"; fi
}

# flaky FILE K: fails (exit 3) the first K times it runs, then succeeds.
cat >"$tmp/flaky" <<'EOF'
#!/bin/sh
n=$(($(cat "$1" 2>/dev/null || echo 0) + 1))
echo "$n" > "$1"
[ "$n" -gt "$2" ] || exit 3
EOF
chmod +x "$tmp/flaky"
export BNFS_RETRY_DELAY_MS=20

"$retry_sh" 3 "$tmp/flaky" "$tmp/c0" 0 2>"$tmp/e0"
rc=$?
check "a command that succeeds runs once, quietly" \
    "exit $rc, $(cat "$tmp/c0") runs, stderr: $(cat "$tmp/e0")" \
    test "$rc:$(cat "$tmp/c0"):$(wc -c <"$tmp/e0")" = "0:1:0"

"$retry_sh" 5 "$tmp/flaky" "$tmp/c1" 2 2>"$tmp/e1"
rc=$?
check "failing twice then succeeding: exit 0 after 3 runs" \
    "exit $rc after $(cat "$tmp/c1") runs" test "$rc:$(cat "$tmp/c1")" = "0:3"
check "each failed attempt is one line on stderr" "$(cat "$tmp/e1")" \
    test "$(grep -c '^retry: attempt [12]/5 failed (exit 3), next in ' "$tmp/e1"):$(wc -l <"$tmp/e1")" = "2:2"

"$retry_sh" 3 "$tmp/flaky" "$tmp/c2" 1000 2>"$tmp/e2"
rc=$?
check "always failing: N runs, then the command's own status" \
    "exit $rc after $(cat "$tmp/c2") runs" test "$rc:$(cat "$tmp/c2")" = "3:3"
check "always failing: the last line says it gives up" "$(tail -1 "$tmp/e2")" \
    grep -q '^retry: attempt 3/3 failed (exit 3), giving up: ' "$tmp/e2"

# The waits double, with at most a quarter more of jitter: 20-25 ms, then
# 40-50 ms; capped by BNFS_RETRY_MAX_MS.
waits=$(sed -n 's/.*next in \([0-9.]*\)s.*/\1/p' "$tmp/e2" | tr '\n' ' ')
in_range() { awk -v v="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(v >= lo && v <= hi) }'; }
read -r w1 w2 _ <<<"$waits"
in_range "${w1:-x}" 0.020 0.025 && in_range "${w2:-x}" 0.040 0.050
check "backoff doubles with a little jitter (waits: $waits)" "expected 0.020-0.025 then 0.040-0.050" \
    test $? = 0
BNFS_RETRY_MAX_MS=30 "$retry_sh" 4 false 2>"$tmp/e3"
waits=$(sed -n 's/.*next in \([0-9.]*\)s.*/\1/p' "$tmp/e3" | tr '\n' ' ')
read -r _ w2 w3 _ <<<"$waits"
in_range "${w2:-x}" 0.030 0.037 && in_range "${w3:-x}" 0.030 0.037
check "backoff is capped by BNFS_RETRY_MAX_MS (waits: $waits)" "expected the 2nd and 3rd 0.030-0.037" \
    test $? = 0

"$retry_sh" 0 touch "$tmp/never" 2>/dev/null
rc=$?
check "a bad count is refused (exit 2) without running the command" "exit $rc" \
    test "$rc:$([ -e "$tmp/never" ] && echo ran)" = "2:"

"$retry_sh" 2 sh -c 'printf "%s|" "$@" > "$0"' "$tmp/args" "a b" "" 'c*'
check "arguments pass through unchanged" "got $(cat "$tmp/args" 2>/dev/null)" \
    test "$(cat "$tmp/args" 2>/dev/null)" = "a b||c*|"

# Sourced, under set -e: a shell function may be retried, and the caller
# goes on (or stops) by the final status alone.
out=$(bash -c '
    set -euo pipefail
    . "$1"
    n=0
    twice() { n=$((n + 1)); [ "$n" -gt 2 ]; }
    retry 4 twice 2>/dev/null
    echo "went on after $n calls"
    retry 2 false 2>/dev/null
    echo "not reached"' _ "$retry_sh" 2>&1)
rc=$?
check "sourced: retries a shell function; set -e callers see only the final status" \
    "exit $rc, output: $out" test "$rc:$out" = "1:went on after 3 calls"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
