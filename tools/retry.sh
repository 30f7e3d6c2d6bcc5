#!/usr/bin/env bash
# retry.sh - run a command again when it fails, with exponential backoff,
# for downloads: one transient network error (a name that did not resolve,
# a mirror that reset the connection, a lock held by a parallel apt-get)
# must not fail a fresh `make test`.
#
#   tools/retry.sh N CMD [ARG...]          executed
#   . tools/retry.sh; retry N CMD [ARG...] sourced (CMD may be a function)
#
# Runs CMD at most N times.  After failed attempt k (k < N) it waits
# BNFS_RETRY_DELAY_MS * 2^(k-1) milliseconds (default 2000: 2 s, 4 s, 8 s
# ...), at most BNFS_RETRY_MAX_MS (default 60000), plus up to a quarter more
# at random, so parallel jobs that failed together do not retry together.
# Each failed attempt is one line on stderr:
#   retry: attempt K/N failed (exit S), next in Ts: CMD ARG...
# Exit status: 0 as soon as CMD succeeds, else CMD's status of the last
# attempt; 2 for a bad N.  Does not change the caller's set -e / errexit.
# Its locals are prefixed _r_: a retried shell function would see them.

retry() {
    local _r_n=$1 _r_k=1 _r_rc _r_ms _r_pause _r_secs
    shift
    case "$_r_n" in
        '' | *[!0-9]* | 0) echo "retry: N must be a positive count, not '$_r_n'" >&2; return 2 ;;
    esac
    _r_ms=${BNFS_RETRY_DELAY_MS:-2000}
    while :; do
        "$@" && return 0
        _r_rc=$?
        if [ "$_r_k" -ge "$_r_n" ]; then
            echo "retry: attempt $_r_k/$_r_n failed (exit $_r_rc), giving up: $*" >&2
            return "$_r_rc"
        fi
        [ "$_r_ms" -le "${BNFS_RETRY_MAX_MS:-60000}" ] || _r_ms=${BNFS_RETRY_MAX_MS:-60000}
        _r_pause=$((_r_ms + RANDOM % (_r_ms / 4 + 1)))
        _r_secs=$((_r_pause / 1000)).$(printf '%03d' $((_r_pause % 1000)))
        echo "retry: attempt $_r_k/$_r_n failed (exit $_r_rc), next in ${_r_secs}s: $*" >&2
        sleep "$_r_secs"
        _r_ms=$((_r_ms * 2))
        _r_k=$((_r_k + 1))
    done
}

# Executed rather than sourced: retry the command line given.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    [ $# -ge 2 ] || { echo "usage: $0 N CMD [ARG...]" >&2; exit 2; }
    retry "$@"
fi
