#!/usr/bin/env bash
# run.sh - boot a Debian kernel in QEMU and run test scripts in it against
# an NFS server on this host, through the real Linux NFS client.
#
#   run.sh [options] TEST.sh...
#     --export PATH       MOUNT path of the export (default /)
#     --nfs-port N        NFS port on 127.0.0.1 } omit both to let the guest
#     --mount-port N      MOUNT port            } ask rpcbind (port 111)
#     --server-cmd CMD    start CMD (bash -c) before booting, stop it after;
#                         waits until --nfs-port accepts connections
#     --server-wait S     at most S seconds for that (default 300: a server
#                         may first fill its store), less if CMD exits
#     --server-log FILE   where CMD's output goes (default: in the job dir)
#                         CMD finds in BNFS_CTL_DIR a folder the guest sees
#                         as /run/bnfs/job/ctl (BNFS_CTL in the tests): a
#                         channel for requests to the host side (restart)
#     --src DIR           the export's source tree, shared read-write with
#                         the guest at the same path (BNFS_SRC)
#     --opts-a OPTS       extra mount options for /mnt/a
#     --opts-b OPTS       extra mount options for /mnt/b (default noac)
#     --env NAME=VALUE    passed to the tests (repeatable)
#     --timeout SECONDS   guest deadline for all tests (default 420)
#     --test-timeout S    per test script (default 300)
#     --memory SIZE       the guest's RAM, as QEMU's -m takes it (default 1G)
#     --quiet             do not stream the guest console
#     --kernel FILE       boot this guest image, prepared beforehand by
#     --initrd FILE       `run.sh --prepare-only` (default: prepare now)
#     --prepare-only      check QEMU, prepare the guest image (prepare.sh:
#                         may download the kernel package) and print its
#                         "kernel=FILE" and "initrd=FILE" lines; no boot
#
# The guest's userland is this host's root, read-only over 9p, so TEST.sh
# and --src must be host paths outside /tmp, /run and /mnt (the guest
# mounts tmpfs there), except --src, which is shared on its own.
# Each test prints "ok - NAME" / "not ok - NAME: why"; the summary line is
# "N passed, N failed".  Exit: 0 all passed, 1 a test failed, 2 the harness
# failed (could not prepare, boot or finish), 77 SKIP: QEMU cannot run here.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

export_path=/ nfs_port="" mount_port="" server_cmd="" server_log="" src="" server_wait=300
opts_a="" opts_b="noac" timeout=420 test_timeout=300 quiet=0 memory=1G
kernel="" initrd="" prepare_only=0
extra_env=() tests=()
usage() { sed -n '2,/^set -uo/p' "$0" | sed -n 's/^# \{0,1\}//p' >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --export) export_path=$2; shift 2 ;;
        --nfs-port) nfs_port=$2; shift 2 ;;
        --mount-port) mount_port=$2; shift 2 ;;
        --server-cmd) server_cmd=$2; shift 2 ;;
        --server-log) server_log=$2; shift 2 ;;
        --server-wait) server_wait=$2; shift 2 ;;
        --src) src=$(cd "$2" && pwd) || exit 2; shift 2 ;;
        --opts-a) opts_a=$2; shift 2 ;;
        --opts-b) opts_b=$2; shift 2 ;;
        --env) extra_env+=("$2"); shift 2 ;;
        --timeout) timeout=$2; shift 2 ;;
        --test-timeout) test_timeout=$2; shift 2 ;;
        --memory) memory=$2; shift 2 ;;
        --quiet) quiet=1; shift ;;
        --kernel) kernel=$2; shift 2 ;;
        --initrd) initrd=$2; shift 2 ;;
        --prepare-only) prepare_only=1; shift ;;
        -h|--help) usage ;;
        -*) echo "run.sh: unknown option $1" >&2; usage ;;
        *) tests+=("$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"); shift ;;
    esac
done
[ ${#tests[@]} -gt 0 ] || [ "$prepare_only" = 1 ] || { echo "run.sh: no test scripts given" >&2; usage; }
for p in "${tests[@]}"; do
    [ -e "$p" ] || { echo "run.sh: $p does not exist" >&2; exit 2; }
done

skip() {
    echo "##################################################################" >&2
    echo "## SKIP: kernel NFS client tests not run: $*" >&2
    echo "##################################################################" >&2
    exit 77
}
qemu=$(command -v qemu-system-x86_64 || true)
[ -n "$qemu" ] || skip "qemu-system-x86_64 is not installed (Debian qemu-system-x86)"
echo q | timeout 20 "$qemu" -accel tcg -machine none -nodefaults -display none \
    -monitor stdio >/dev/null 2>&1 || skip "$qemu cannot start with -accel tcg"

if [ -n "$kernel$initrd" ] && { [ -z "$kernel" ] || [ -z "$initrd" ]; }; then
    echo "run.sh: --kernel and --initrd go together" >&2; exit 2
fi
if [ -z "$kernel" ]; then
    img=$("$here/prepare.sh") || { echo "run.sh: FAIL: prepare.sh could not build the guest image" >&2; exit 2; }
    kernel=$(sed -n 's/^kernel=//p' <<<"$img")
    initrd=$(sed -n 's/^initrd=//p' <<<"$img")
fi
for f in "$kernel" "$initrd"; do
    [ -s "$f" ] || { echo "run.sh: FAIL: guest image $f is missing" >&2; exit 2; }
done
if [ "$prepare_only" = 1 ]; then
    echo "kernel=$kernel"
    echo "initrd=$initrd"
    exit 0
fi

mkdir -p "$repo/build/kernel"
job=$(mktemp -d "$repo/build/kernel/job.XXXXXX")
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then
        kill -TERM -- "-$server_pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$server_pid" 2>/dev/null
    fi
}
trap cleanup EXIT
trap 'exit 2' INT TERM

if [ -n "$server_cmd" ]; then
    [ -n "$nfs_port" ] || { echo "run.sh: --server-cmd needs --nfs-port to know when it is up" >&2; exit 2; }
    server_log=${server_log:-$job/server.log}
    # The server command may take requests from the tests through the job
    # share (BNFS_CTL_DIR, /run/bnfs/job/ctl in the guest), e.g. to be
    # killed and restarted at a moment the guest chooses.
    mkdir -p "$job/share/ctl"
    BNFS_CTL_DIR=$job/share/ctl setsid bash -c "$server_cmd" >"$server_log" 2>&1 </dev/null &
    server_pid=$!
    up=0 # bounded by --server-wait; a server that exits ends the wait at once
    for _ in $(seq $((server_wait * 5))); do
        kill -0 "$server_pid" 2>/dev/null || break
        if (exec 3<>"/dev/tcp/127.0.0.1/$nfs_port") 2>/dev/null; then up=1; break; fi
        sleep 0.2
    done
    if [ "$up" != 1 ]; then
        echo "run.sh: FAIL: the server did not listen on 127.0.0.1:$nfs_port; its log:" >&2
        tail -n 30 "$server_log" >&2
        exit 2
    fi
fi

# The guest sees the host's root, but with tmpfs over /tmp, /run and /mnt
# (a CI clone may well live under /tmp): it runs copies of the scripts from
# the job share, /run/bnfs/job/scripts in its chroot.
mkdir -p "$job/share/scripts"
cp "$here/guest-run.sh" "$here/guest-lib.sh" "$job/share/scripts/"
guest_tests=()
for t in "${tests[@]}"; do
    cp "$t" "$job/share/scripts/"
    guest_tests+=("/run/bnfs/job/scripts/$(basename "$t")")
done
{
    printf 'BNFS_REPO=%q\n' "$repo"
    printf 'BNFS_EXPORT=%q\n' "$export_path"
    printf 'BNFS_NFS_PORT=%q\n' "$nfs_port"
    printf 'BNFS_MOUNT_PORT=%q\n' "$mount_port"
    printf 'BNFS_SRC=%q\n' "$src"
    printf 'BNFS_OPTS_A=%q\n' "$opts_a"
    printf 'BNFS_OPTS_B=%q\n' "$opts_b"
    printf 'BNFS_TESTS=%q\n' "${guest_tests[*]}"
    printf 'BNFS_GUEST_TIMEOUT=%q\n' "$timeout"
    printf 'BNFS_TEST_TIMEOUT=%q\n' "$test_timeout"
    for kv in "${extra_env[@]}"; do
        printf 'export %s=%q\n' "${kv%%=*}" "${kv#*=}"
    done
    echo 'export BNFS_REPO BNFS_EXPORT BNFS_NFS_PORT BNFS_MOUNT_PORT BNFS_SRC BNFS_TESTS'
} > "$job/share/job.env"

shares=(-virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"
        -virtfs "local,path=$job/share,mount_tag=job,security_model=none")
[ -n "$src" ] && shares+=(-virtfs "local,path=$src,mount_tag=src,security_model=none")

echo "run.sh: booting $(basename "$kernel") ($(cat "$(dirname "$kernel")/kernel-version" 2>/dev/null || echo "version unknown")), job $job" >&2
t0=$(date +%s)
# The console goes to our stdout through fd 3: reopening /dev/stdout would,
# when stdout is a log file (tests/run.sh), truncate it and write over
# what was logged before the boot (prepare.sh's and the fixture's lines).
exec 3>&1
[ "$quiet" = 1 ] && exec 3>/dev/null
timeout -k 10 $((timeout + 90)) "$qemu" -accel tcg -smp 2 -m "$memory" \
    -nographic -no-reboot -nodefaults -serial stdio -monitor none \
    -kernel "$kernel" -initrd "$initrd" \
    -append "console=ttyS0 quiet loglevel=4 panic=-1 rdinit=/init" \
    -netdev user,id=n0 -device virtio-net-pci,netdev=n0 -device virtio-rng-pci \
    "${shares[@]}" </dev/null 2>&1 |
    sed -u -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1b[c()][0-9A-Z]\{0,1\}//g' -e 's/\r//g' | tee "$job/console.log" >&3
qrc=${PIPESTATUS[0]}
t1=$(date +%s)
boot=$(sed -n 's/.*bnfs-init: up after \([0-9.]*\)s.*/\1/p' "$job/console.log")
echo "run.sh: guest ran $((t1 - t0))s (qemu exit $qrc; userland up after ${boot:-?}s of guest uptime)" >&2

# Count the ok / not ok lines of every result; a script that failed
# without saying why, or never finished, counts as one failure.
res=$job/share/results
pass=0 fail=0
failures=()
for log in "$res"/*.log; do
    [ -e "$log" ] || continue
    p=$(grep -c '^ok - ' "$log")
    f=$(grep -c '^not ok - ' "$log")
    rc=$(cat "${log%.log}.rc" 2>/dev/null || echo missing)
    pass=$((pass + p)); fail=$((fail + f))
    mapfile -t lines < <(grep '^not ok - ' "$log")
    failures+=("${lines[@]}")
    if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
        name=$(basename "$log" .log)
        [[ $name =~ ^[0-9]+$ ]] && [ $((10#$name)) -ge 1 ] && [ $((10#$name)) -le ${#tests[@]} ] &&
            name=${tests[$((10#$name - 1))]}
        fail=$((fail + 1)); failures+=("not ok - $name: exit status $rc")
    fi
done
n=0
for t in "${tests[@]}"; do
    n=$((n + 1))
    [ -e "$res/$(printf '%02d' "$n").rc" ] && continue
    fail=$((fail + 1)); failures+=("not ok - $t: did not run or did not finish")
done
[ -e "$res/finished" ] || { fail=$((fail + 1)); failures+=("not ok - guest did not finish (see $job/console.log)"); }

for l in "${failures[@]}"; do echo "$l"; done
echo "$pass passed, $fail failed"
if [ ! -e "$res/finished" ] && [ "$pass" = 0 ]; then
    echo "run.sh: FAIL: the guest never ran the tests; console: $job/console.log" >&2
    exit 2
fi
[ "$fail" = 0 ] || exit 1
rm -rf "$job"
exit 0
