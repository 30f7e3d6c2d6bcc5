#!/usr/bin/env bash
# run.sh SECONDS BIN... - run each libFuzzer binary for SECONDS.
#
# Seeds come from tests/fuzz/corpus/<name>/ (name = the binary's file name)
# and are only read; new inputs go to a scratch corpus that is thrown away.
# A crash, leak or sanitizer report counts as a failure; the reproducer is
# kept as build-fuzz/artifacts/<name>/crash-*.  Prints "N passed, N failed"
# and exits non-zero if any fuzzer failed.
set -u

if [ $# -lt 2 ]; then
    echo "usage: $0 SECONDS BIN..." >&2
    exit 2
fi
secs=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
passed=0
failed=0
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

for bin in "$@"; do
    name=$(basename "$bin")
    if [ ! -x "$bin" ]; then
        echo "FAIL $name: $bin is not built"
        failed=$((failed + 1))
        continue
    fi
    seeds="$here/corpus/$name"
    work="$scratch/$name"
    artifacts="$(dirname "$bin")/artifacts/$name"
    mkdir -p "$work" "$artifacts"
    dirs=("$work")
    [ -d "$seeds" ] && dirs+=("$seeds")
    log="$scratch/$name.log"
    if "$bin" -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$artifacts/" "${dirs[@]}" >"$log" 2>&1; then
        echo "PASS $name ($(grep -c '^#' "$log") status lines)"
        passed=$((passed + 1))
    else
        echo "FAIL $name: reproducer in $artifacts/"
        grep -E 'ERROR|SUMMARY|runtime error|deadly signal' "$log" | head -n 5
        failed=$((failed + 1))
    fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
