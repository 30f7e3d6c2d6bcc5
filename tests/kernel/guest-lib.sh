# guest-lib.sh - what the guest's test scripts share; sourced by them (run.sh
# copies it beside them into the job share).  The caller sets pass=0 fail=0.
#   ok NAME / not_ok NAME WHY   print and count one result
#   check NAME CMD...           ok when CMD succeeds, else its output is why
#   fails NAME WANT CMD...      CMD must fail and say WANT (a glob, * for any)
#   section NAME                a "# --- NAME (at Ns)" line
ok() { echo "ok - $1"; pass=$((pass + 1)); }
not_ok() { echo "not ok - $1: $2"; fail=$((fail + 1)); }
check() {
    local name=$1 out; shift
    if out=$("$@" 2>&1); then ok "$name"; else not_ok "$name" "$(head -c 400 <<<"$out" | tr '\n' '|')"; fi
}
fails() {
    local name=$1 want=$2 out rc; shift 2
    out=$("$@" 2>&1)
    rc=$?
    if [ $rc != 0 ] && [[ $out == *$want* ]]; then ok "$name"
    else not_ok "$name" "exit $rc, said '$(tr '\n' '|' <<<"$out")', want '$want'"; fi
}
section() { echo "# --- $1 (at ${SECONDS}s)"; }
