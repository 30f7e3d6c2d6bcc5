#!/usr/bin/env bash
# install-deps.sh {build|run|test|bench|soak} - install the Debian packages a
# step needs, only those missing.  Runs apt-get as root (or through sudo).
# `run` (make run) adds rpcbind, for clients' port-less mounts of the demo;
# it is skipped, with a message, when neither root nor sudo without a
# password is at hand (the demo serves without it).
# Every download is retried with backoff (tools/retry.sh): one transient
# network error must not fail a fresh `make test`.
set -euo pipefail
. "$(dirname "$0")/retry.sh"

build_pkgs=(gcc make rpcsvc-proto libtirpc-dev libdb-dev libconfig-dev
            libcurl4-openssl-dev libssl-dev libexpat1-dev libnfs-dev pkg-config)
test_pkgs=(libnfs-utils clang libclang-rt-14-dev python3 python3-pip python3-botocore
           qemu-system-x86 busybox-static cpio kmod rpcbind curl iproute2 util-linux libc6-dev python3-boto3
           rsync git # tests/kernel/posix_write.sh
           faketime # tests/integration/clock.sh (libfaketime)
           python3-prometheus-client
           systemd man-db groff-base) # the last three: tests/integration/install.sh
run_pkgs=(rpcbind) # tools/start-rpcbind.sh
soak_pkgs=(python3-matplotlib) # tests/soak/report.py draws the soak's time series
bench_pkgs=(nfs-ganesha nfs-ganesha-vfs iperf3)
# bench/cache.sh runs s3rver (npm ci in bench/s3emu): node and npm, from
# Debian unless the machine already has them from elsewhere.
if [ "${1:-build}" = bench ] && ! { command -v node && command -v npm; } >/dev/null 2>&1; then
    bench_pkgs+=(nodejs npm)
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

case "${1:-build}" in
    build) want=("${build_pkgs[@]}") ;;
    run)   want=("${build_pkgs[@]}")
           if [ "$(id -u)" = 0 ] || sudo -n true 2>/dev/null; then
               want+=("${run_pkgs[@]}")
           elif ! installed rpcbind; then
               echo "install-deps: not root (and no sudo without a password): rpcbind is not installed;" \
                    "clients must mount the demo with -o port=2049,mountport=20048"
           fi ;;
    test)  want=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
    bench) want=("${build_pkgs[@]}" "${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
    soak)  want=("${build_pkgs[@]}" "${test_pkgs[@]}" "${soak_pkgs[@]}") ;;
    *) echo "usage: $0 build|run|test|bench|soak" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
    installed "$p" || missing+=("$p")
done

if ((${#missing[@]})); then
    echo "install-deps: installing ${missing[*]}"
    sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    # --error-on=any: apt-get update otherwise exits 0 when a mirror could
    # not be reached ("W: Failed to fetch"), and install then fails on the
    # old lists.  The lock timeout: another apt-get may be running.
    retry 5 "${sudo[@]}" apt-get update -qq --error-on=any
    retry 5 "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
        -o DPkg::Lock::Timeout=300 "${missing[@]}" >/dev/null
fi

# moto_server for the S3 tests (pip), only where it is missing.
if [ "${1:-build}" != build ] && ! command -v moto_server >/dev/null 2>&1; then
    echo "install-deps: installing moto[server] with pip"
    # Debian's own python3 is "externally managed" (PEP 668): allow pip
    # there.  Decided up front, so a retry is spent on the network only.
    pip_opts=(-q)
    if python3 -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))'; then
        pip_opts+=(--break-system-packages)
    fi
    retry 5 python3 -m pip install "${pip_opts[@]}" 'moto[server]'
fi
exit 0
