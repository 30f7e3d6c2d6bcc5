# guest-lib.sh - what the guest's test scripts share; sourced by them (run.sh
# copies it beside them into the job share).  The caller sets pass=0 fail=0.
#   ok NAME / not_ok NAME WHY   print and count one result
#   check NAME CMD...           ok when CMD succeeds, else its output is why
#   fails NAME WANT CMD...      CMD must fail and say WANT (a glob, * for any)
#   section NAME                a "# --- NAME (at Ns)" line
#   mount_rw DIR [OPTS]         mount the read-write export $rw_export on DIR
#   umount_each DIR...          unmount each that is mounted, one result each
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
mount_rw() {
    mkdir -p "$1"
    "$BNFS_MOUNT" "10.0.2.2:$rw_export" "$1" \
        "$BNFS_MOUNT_BASE${BNFS_MOUNT_PORTS:+,$BNFS_MOUNT_PORTS}${2:+,$2}"
}
umount_each() {
    local d
    for d in "$@"; do
        mountpoint -q "$d" || continue
        if umount "$d" 2>/dev/null; then ok "umount $d"; else not_ok "umount $d" "busy or hung"; fi
    done
}
