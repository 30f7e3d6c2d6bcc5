#!/usr/bin/env bash
# run.sh SECONDS BIN... - run each libFuzzer binary for SECONDS.
#
# Seeds come from tests/fuzz/corpus/<name>/ (name = the binary's file name)
# and are only read; new inputs go to a scratch corpus that is thrown away.
# A crash, leak or sanitizer report counts as a failure; the reproducer is
# kept as build-fuzz/artifacts/<name>/crash-*.  Prints "N passed, N failed"
# and exits non-zero if any fuzzer failed.  FUZZ_JOBS targets run at once
# (default: the number of cores).
set -u

if [ $# -lt 2 ]; then
    echo "usage: $0 SECONDS BIN..." >&2
    exit 2
fi
secs=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
# Targets run FUZZ_JOBS at a time (default: one per core).  Each is one
# single-threaded process that gets the full SECONDS either way: running
# them side by side on idle cores shortens the wall time, not the fuzzing.
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
[ "$jobs" -ge 1 ] 2>/dev/null || jobs=1
passed=0
failed=0
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# fuzz_one BIN: run one target; its verdict goes to $scratch/NAME.verdict
# (printed in the order the targets were given, once all have finished).
fuzz_one() {
    local bin=$1 name
    name=$(basename "$bin")
    local out="$scratch/$name.verdict"
    if [ ! -x "$bin" ]; then
        echo "FAIL $name: $bin is not built" >"$out"
        return
    fi
    local seeds="$here/corpus/$name"
    local work="$scratch/$name"
    local artifacts
    artifacts="$(dirname "$bin")/artifacts/$name"
    mkdir -p "$work" "$artifacts"
    local dirs=("$work")
    [ -d "$seeds" ] && dirs+=("$seeds")
    local log="$scratch/$name.log"
    if "$bin" -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$artifacts/" "${dirs[@]}" >"$log" 2>&1; then
        echo "PASS $name ($(grep -c '^#' "$log") status lines," \
            "$(grep -oE '^Done [0-9]+ runs' "$log" | cut -d' ' -f2) runs)" >"$out"
    else
        { echo "FAIL $name: reproducer in $artifacts/"
          grep -E 'ERROR|SUMMARY|runtime error|deadly signal' "$log" | head -n 5; } >"$out"
    fi
}

running=0
for bin in "$@"; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
    fuzz_one "$bin" &
    running=$((running + 1))
done
wait

for bin in "$@"; do
    out="$scratch/$(basename "$bin").verdict"
    if [ -f "$out" ] && head -n1 "$out" | grep -q '^PASS '; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        [ -f "$out" ] || echo "FAIL $(basename "$bin"): no verdict" >"$out"
    fi
    cat "$out"
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
