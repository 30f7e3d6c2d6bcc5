#!/usr/bin/env bash
# tsan.sh [BUILD_DIR] - the concurrency tests under ThreadSanitizer
# (make tsan; BUILD_DIR = build-tsan, built with TSAN=1).
#
# Runs every unit test of BUILD_DIR (the cache's shards and fetchers, the
# write stage, the inode table's background listings and uploads, the RPC
# worker pool, read-ahead and prefetch threads), then, unless
# BNFS_TSAN_UNIT_ONLY=1, the integration suites core.sh, write.sh and
# abuse.sh (many connections, pipelined calls) against the TSan daemon of
# BUILD_DIR.  A suite passes when it passes and
# TSan reported nothing: reports go to BUILD_DIR/tsan-reports/<suite>.*
# (halt_on_error: the first report stops the program).  Suppressions, each
# justified, are in tests/tsan.supp.  Prints "N passed, N failed" (suites)
# and exits non-zero if any failed.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build-tsan}
cd "$root"
case $build in /*) ;; *) build=$root/$build ;; esac
reports=$build/tsan-reports
rm -rf "$reports"
mkdir -p "$reports"
passed=0
failed=0

suite() { # suite NAME TIMEOUT CMD...
    local name=$1 limit=$2; shift 2
    local log=$reports/$name.log t0=$SECONDS
    TSAN_OPTIONS="suppressions=$root/tests/tsan.supp halt_on_error=1 exitcode=66 second_deadlock_stack=1 log_path=$reports/$name.tsan" \
        timeout --kill-after=10 "$limit" "$@" >"$log" 2>&1
    local rc=$?
    local nrep
    nrep=$(cat "$reports/$name".tsan.* 2>/dev/null | grep -c 'WARNING: ThreadSanitizer')
    if [ "$rc" = 0 ] && [ "$nrep" = 0 ]; then
        printf 'PASS %-24s %4ds\n' "$name" $((SECONDS - t0))
        passed=$((passed + 1))
    else
        printf 'FAIL %-24s %4ds  exit %s, %s TSan report(s)\n' "$name" $((SECONDS - t0)) "$rc" "$nrep"
        grep -h -A12 'WARNING: ThreadSanitizer' "$reports/$name".tsan.* 2>/dev/null | head -40
        [ "$rc" != 0 ] && tail -5 "$log"
        failed=$((failed + 1))
    fi
}

for t in "$build"/tests/test_*; do
    [ -x "$t" ] || continue
    suite "$(basename "$t")" 900 "$t"
done
if [ "${BNFS_TSAN_UNIT_ONLY:-0}" != 1 ]; then
    for s in core write abuse; do
        suite "it-$s" 1200 env IT_BIN="$build/bin/bucketnfsd" IT_BUILD="$build" \
            bash tests/integration/$s.sh
    done
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
