#!/bin/bash
# live_exports.sh - live exports under the Linux NFS client: the exports file
# changed and reloaded (`bucketnfs reload`) while the kernel has it mounted.
# Runs in the guest (guest-run.sh) against bucketnfsd.sh, which changes the
# exports file and reloads when asked (reload.req in $BNFS_CTL: base,
# added, live-ro, broken).  In turn:
#   added    /live (rw, an empty bucket) appears: it mounts at once (on
#            /mnt/live, noac: every access asks the server) and takes writes
#   live-ro  the mounted /live turns read-only: the next create, mkdir, rm,
#            mv and chmod answer "Read-only file system" (EROFS); a write to
#            an existing file too, or EACCES when the client asked ACCESS
#            anew (the reply refuses MODIFY without saying why); reads go on
#   broken   a syntax error: the reload fails and names file:line (the tool
#            and the daemon's log), /live stays mounted, read-only, readable
#   base     /live removed: the next stat and ls answer "Stale file handle"
#            (NFS3ERR_STALE), and /live cannot be mounted any more
# Throughout, the untouched exports' mounts (/demo on /mnt/a) notice nothing.
# Prints "ok - NAME" / "not ok - NAME: why"; the last line counts them.
set -u
[ "${BNFS_TRACE:-0}" = 1 ] && set -x
ctl=${BNFS_CTL:-}
live=/mnt/live
a=$BNFS_MNT_A
pass=0 fail=0

. "$(dirname "${BASH_SOURCE[0]}")/guest-lib.sh" # ok, not_ok, fails, section
# erofs_or_eacces NAME CMD...: a write to an existing file, which the client
# may refuse from a fresh ACCESS reply (EACCES) before the server's EROFS.
erofs_or_eacces() {
    local name=$1 out rc; shift
    out=$("$@" 2>&1)
    rc=$?
    if [ $rc != 0 ] && [[ $out == *"Read-only file system"* ]]; then ok "$name: EROFS"
    elif [ $rc != 0 ] && [[ $out == *"Permission denied"* ]]; then ok "$name: EACCES from the ACCESS reply"
    else not_ok "$name" "exit $rc, said '$(tr '\n' '|' <<<"$out")'"; fi
}
finish() {
    cd /
    # mountpoint(1) stats the folder, which a stale mount refuses.
    if grep -q " $live nfs " /proc/mounts; then
        # A stale mount needs no server to go; -l should it hang all the same.
        if timeout 30 umount "$live" 2>/dev/null || umount -l "$live" 2>/dev/null; then
            ok "umount $live (stale or not)"
        else not_ok "umount $live" "busy or hung"; fi
    fi
    echo "live_exports: $pass passed, $fail failed"
    [ "$fail" = 0 ]
    exit
}
# reload VARIANT: have the host write that exports file and run `bucketnfs
# reload`; its answer (rc=N, the tool's output, the log) in $reply.  1 when
# the host does not answer within 20 s.
reply=""
reload() {
    [ -n "$ctl" ] && [ -d "$ctl" ] || { reply="no BNFS_CTL"; return 1; }
    rm -f "$ctl/reload.done"
    echo "$1" >"$ctl/reload.tmp" && mv "$ctl/reload.tmp" "$ctl/reload.req"
    for _ in $(seq 200); do
        if [ -e "$ctl/reload.done" ]; then
            reply=$(cat "$ctl/reload.done")
            rm -f "$ctl/reload.done"
            return 0
        fi
        sleep 0.1
    done
    reply="no answer to reload.req in 20 s: the server command must be bucketnfsd.sh"
    return 1
}
# reloaded NAME VARIANT: the reload of VARIANT succeeds.
reloaded() {
    if reload "$2" && [[ $reply == rc=0* ]]; then ok "$1"
    else not_ok "$1" "$(tr '\n' '|' <<<"$reply")"; return 1; fi
}
mount_live() {
    mkdir -p "$live"
    "$BNFS_MOUNT" "10.0.2.2:/live" "$live" \
        "$BNFS_MOUNT_BASE${BNFS_MOUNT_PORTS:+,$BNFS_MOUNT_PORTS},noac"
}
# untouched WHEN: the /demo mount (never changed) reads a fixture file.
demo_file=$a/files/small.txt
demo_sum=$(sha256sum <"$demo_file" 2>&1)
untouched() {
    local got
    got=$(sha256sum <"$demo_file" 2>&1)
    [ "$got" = "$demo_sum" ] && ok "$1: /demo's mount notices nothing" ||
        not_ok "$1: /demo's mount" "sha256 of files/small.txt: '$got', before: '$demo_sum'"
}

# ---- added: a new export is mountable at once -----------------------------
section added
reloaded "reload adding /live: exit 0" added || finish
if out=$(mount_live 2>&1); then ok "/live mounts at once"
else not_ok "/live mounts at once" "$out"; finish; fi
echo hello >"$live/hello.txt" && mkdir "$live/dir" && echo keep >"$live/dir/keep.txt" &&
    [ "$(cat "$live/hello.txt")" = hello ] && ok "/live takes writes (rw)" ||
    not_ok "/live takes writes" "$(ls -la "$live" 2>&1 | tr '\n' '|')"
sync
untouched "added"

# ---- live-ro: the mounted export turns read-only ---------------------------
section live-ro
reloaded "reload changing /live to ro: exit 0" live-ro || finish
fails "ro: touch of a new file (CREATE)" "Read-only file system" touch "$live/new.txt"
fails "ro: mkdir (MKDIR)" "Read-only file system" mkdir "$live/newdir"
fails "ro: rm (REMOVE)" "Read-only file system" rm -f "$live/dir/keep.txt"
fails "ro: mv (RENAME)" "Read-only file system" mv "$live/hello.txt" "$live/moved.txt"
fails "ro: chmod (SETATTR)" "Read-only file system" chmod 0600 "$live/hello.txt"
erofs_or_eacces "ro: open for writing an existing file" bash -c "echo x > '$live/hello.txt'"
erofs_or_eacces "ro: touch an existing file" touch "$live/hello.txt"
[ "$(cat "$live/hello.txt" 2>&1)" = hello ] && [ "$(cat "$live/dir/keep.txt" 2>&1)" = keep ] &&
    ok "ro: reads go on, the files unchanged" ||
    not_ok "ro: reads go on" "hello.txt: '$(cat "$live/hello.txt" 2>&1)', dir/keep.txt: '$(cat "$live/dir/keep.txt" 2>&1)'"
got=$(cd "$live" && ls -A | tr '\n' ' ')
[ "$got" = "dir hello.txt " ] && ok "ro: ls shows what was there, nothing added" ||
    not_ok "ro: ls" "got '$got'"
untouched "live-ro"

# ---- broken: the reload fails, the running exports stay --------------------
section broken
reload broken
if [[ $reply == rc=1* ]] && grep -q 'exports.conf:12:' <<<"${reply%%== log*}"; then
    ok "a broken exports file: reload exits 1 and names exports.conf:12"
else not_ok "a broken exports file: reload exits 1 and names file:line" "$(tr '\n' '|' <<<"$reply")"; fi
if grep -q 'exports not reloaded, the old ones stay: .*exports.conf:12:' <<<"${reply#*== log}"; then
    ok "the daemon's log names exports.conf:12"
else not_ok "the daemon's log names file:line" "$(tr '\n' '|' <<<"${reply#*== log}")"; fi
[ "$(cat "$live/hello.txt" 2>&1)" = hello ] && ok "after the broken reload /live is still mounted and read" ||
    not_ok "after the broken reload /live is read" "$(cat "$live/hello.txt" 2>&1)"
fails "after the broken reload /live is still ro" "Read-only file system" mkdir "$live/newdir"
untouched "broken"

# ---- base: the mounted export is removed -----------------------------------
section removed
reloaded "reload removing /live: exit 0" base || finish
fails "removed: stat of a file answers ESTALE" "Stale file handle" stat "$live/hello.txt"
fails "removed: ls answers ESTALE" "Stale file handle" ls "$live/dir"
fails "removed: cat answers ESTALE" "Stale file handle" cat "$live/hello.txt"
mkdir -p /mnt/live-again
if out=$("$BNFS_MOUNT" "10.0.2.2:/live" /mnt/live-again \
        "$BNFS_MOUNT_BASE${BNFS_MOUNT_PORTS:+,$BNFS_MOUNT_PORTS}" 2>&1); then
    not_ok "removed: /live cannot be mounted any more" "it mounted"
    umount /mnt/live-again
else ok "removed: /live cannot be mounted any more (${out##*: })"; fi
untouched "removed"
finish
