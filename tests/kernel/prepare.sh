#!/usr/bin/env bash
# prepare.sh - build the kernel + initramfs the kernel-client tests boot.
#
# Everything comes from Debian packages: the kernel is the package that
# linux-image-amd64 depends on (apt-get download + dpkg -x, no install),
# the initramfs holds busybox-static, the few modules the guest needs (with
# their dependencies from modprobe --show-depends after depmod -b), our
# static mount helper (nfsmount.c) and the guest init (init).
#
# Results are cached in $BNFS_KERNEL_CACHE (default
# ${XDG_CACHE_HOME:-~/.cache}/bucketnfs-kernel) and rebuilt only when the
# kernel package or one of the inputs in this folder changes.  Without
# network the newest cached kernel is used.  Needs the network the first
# time: suite.sh runs it (through run.sh --prepare-only) before it enters
# its network namespace.  The download is retried with backoff
# (tools/retry.sh); apt-get update runs (as root) only when apt's lists do
# not name the kernel package, or name one the mirror no longer serves.
# Several runs may share the cache at once: downloads and builds happen in
# private folders and are renamed into place.
#
# Prints two lines on success, for run.sh:
#   kernel=PATH
#   initrd=PATH
# Exit status: 0 ready, 1 could not prepare (the reason is on stderr).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../../tools/retry.sh"
cache=${BNFS_KERNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bucketnfs-kernel}
meta_pkg=${BNFS_KERNEL_PACKAGE:-linux-image-amd64}

# Modules the guest loads, in addition to their dependencies.  virtio_rng:
# without an entropy source getrandom() blocks for minutes under TCG.
want_modules=(virtio_pci virtio_net virtio_rng 9pnet_virtio 9p nfsv3)

say() { echo "prepare: $*" >&2; }
die() { say "$*"; exit 1; }

for tool in dpkg dpkg-deb depmod modprobe cpio gzip gcc; do
    command -v "$tool" >/dev/null 2>&1 || die "missing '$tool' (tools/install-deps.sh test installs it)"
done
busybox=${BNFS_BUSYBOX:-$(command -v busybox 2>/dev/null || true)}
[ -n "$busybox" ] || die "missing busybox (Debian busybox-static)"
# The initramfs has no libc: busybox must be the static build.
if ldd "$busybox" >/dev/null 2>&1; then
    die "$busybox is dynamically linked; install busybox-static"
fi

mkdir -p "$cache/debs"

# kernel_pkg: the kernel package $meta_pkg depends on, from apt's lists.
kernel_pkg() {
    apt-cache depends "$meta_pkg" 2>/dev/null |
        awk '/Depends: linux-image-[0-9]/ { print $2; exit }' || true
}
# cached_deb PATTERN: the newest cached .deb matching PATTERN.
cached_deb() {
    ls -t "$cache/debs"/$1 2>/dev/null | head -n1 || true
}
# download PKG: apt-get download, retried, into a private folder first so
# that a parallel run never takes a half-written .deb.  0 or apt's status.
download() {
    local tmp rc=0
    tmp=$(mktemp -d "$cache/debs/dl.XXXXXX")
    (cd "$tmp" && retry 4 apt-get download "$1" >&2) || rc=$?
    [ "$rc" = 0 ] && { mv -f "$tmp"/*.deb "$cache/debs/" || rc=$?; }
    rm -rf "$tmp"
    return "$rc"
}
# apt_update: refresh apt's lists, retried; root only.  --error-on=any:
# otherwise a mirror that could not be reached still exits 0.
apt_update() {
    [ "$(id -u)" = 0 ] || return 1
    say "apt-get update"
    retry 4 apt-get update -qq --error-on=any >&2
}

# Which kernel package: ask apt (refreshing its lists when they do not know
# it and nothing is cached), fall back to the newest cached one.
kpkg=$(kernel_pkg)
if [ -z "$kpkg" ] && [ -z "$(cached_deb 'linux-image-*.deb')" ]; then
    apt_update || say "apt-get update failed"
    kpkg=$(kernel_pkg)
fi
deb=""
if [ -n "$kpkg" ]; then
    deb=$(cached_deb "${kpkg}_*.deb")
    if [ -z "$deb" ]; then
        say "downloading $kpkg"
        if ! download "$kpkg"; then
            # Stale lists name a kernel the mirror has replaced.
            say "apt-get download $kpkg failed; refreshing apt's lists"
            if apt_update; then
                kpkg=$(kernel_pkg)
                [ -z "$kpkg" ] || download "$kpkg" || say "apt-get download $kpkg failed"
            fi
        fi
        [ -z "$kpkg" ] || deb=$(cached_deb "${kpkg}_*.deb")
    fi
fi
if [ -z "$deb" ]; then
    deb=$(cached_deb 'linux-image-*.deb')
    [ -n "$deb" ] || die "no kernel package: apt-get download of $meta_pkg's kernel failed and the cache is empty"
    say "using cached $(basename "$deb")"
fi

# The cache key: the kernel package and every input that goes into the image.
key=$( { basename "$deb"; cat "$here/prepare.sh" "$here/init" "$here/nfsmount.c";
         printf '%s\n' "${want_modules[@]}"; } | sha256sum | cut -c1-16)
out="$cache/img-$key"
if [ -s "$out/vmlinuz" ] && [ -s "$out/initramfs.cpio.gz" ]; then
    touch "$out" 2>/dev/null || true # in use: see the pruning below
    echo "kernel=$out/vmlinuz"
    echo "initrd=$out/initramfs.cpio.gz"
    exit 0
fi

say "building $out"
work=$(mktemp -d "$cache/work.XXXXXX")
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$deb" "$work/pkg"
kver=$(ls "$work/pkg/lib/modules" | head -n1)
[ -n "$kver" ] || die "$(basename "$deb") holds no modules"
vmlinuz="$work/pkg/boot/vmlinuz-$kver"
[ -f "$vmlinuz" ] || die "$(basename "$deb") holds no vmlinuz-$kver"
depmod -b "$work/pkg" "$kver"

root="$work/root"
mkdir -p "$root"/{bin,dev,proc,sys,host,job,lib/modules,etc}
cp "$busybox" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
cp "$here/init" "$root/init"
chmod 755 "$root/init"
gcc -static -O2 -Wall -Wextra -Werror -o "$root/bin/nfsmount" "$here/nfsmount.c"

# Dependencies first, each module once, in the order modprobe would load them.
: > "$root/modules.list"
for m in "${want_modules[@]}"; do
    modprobe -d "$work/pkg" -S "$kver" --show-depends "$m" ||
        die "module $m not found in $kver"
done | while read -r verb path _; do
    [ "$verb" = insmod ] || continue          # "builtin X" needs nothing
    name=$(basename "$path")
    name=${name%%.ko*}
    grep -qx "$name" "$root/modules.list" && continue
    case "$path" in
        *.ko.xz) xz -dc "$path" > "$root/lib/modules/$name.ko" ;;
        *.ko.zst) zstd -qdc "$path" > "$root/lib/modules/$name.ko" ;;
        *.ko.gz) gzip -dc "$path" > "$root/lib/modules/$name.ko" ;;
        *) cp "$path" "$root/lib/modules/$name.ko" ;;
    esac
    echo "$name" >> "$root/modules.list"
done
say "modules: $(tr '\n' ' ' < "$root/modules.list")"

img="$work/img"
mkdir -p "$img"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -6 > "$img/initramfs.cpio.gz"
cp "$vmlinuz" "$img/vmlinuz"
echo "$kver" > "$img/kernel-version"
chmod 755 "$img"
# A parallel run may have built the same image meanwhile: then keep its.
if ! mv -T "$img" "$out" 2>/dev/null &&
   ! { [ -s "$out/vmlinuz" ] && [ -s "$out/initramfs.cpio.gz" ]; }; then
    rm -rf "$out"
    mv -T "$img" "$out"
fi
# Old images are dead weight, but another checkout (other inputs, another
# key) may be about to boot its own: drop only those unused for a day.
find "$cache" -maxdepth 1 -name 'img-*' ! -path "$out" -mmin +1440 -exec rm -rf {} + 2>/dev/null || true
echo "kernel=$out/vmlinuz"
echo "initrd=$out/initramfs.cpio.gz"
