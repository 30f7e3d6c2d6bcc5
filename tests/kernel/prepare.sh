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
# network the newest cached kernel is used.
#
# Prints two lines on success, for run.sh:
#   kernel=PATH
#   initrd=PATH
# Exit status: 0 ready, 1 could not prepare (the reason is on stderr).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
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

# Which kernel package: ask apt, fall back to the newest cached one.
kpkg=$(apt-cache depends "$meta_pkg" 2>/dev/null |
       awk '/Depends: linux-image-[0-9]/ { print $2; exit }' || true)
deb=""
if [ -n "$kpkg" ]; then
    deb=$(ls -t "$cache/debs/${kpkg}"_*.deb 2>/dev/null | head -n1 || true)
    if [ -z "$deb" ]; then
        say "downloading $kpkg"
        (cd "$cache/debs" && apt-get download "$kpkg" >&2) || say "apt-get download $kpkg failed"
        deb=$(ls -t "$cache/debs/${kpkg}"_*.deb 2>/dev/null | head -n1 || true)
    fi
fi
if [ -z "$deb" ]; then
    deb=$(ls -t "$cache/debs"/linux-image-*.deb 2>/dev/null | head -n1 || true)
    [ -n "$deb" ] || die "no kernel package: apt-get download of $meta_pkg's kernel failed and the cache is empty"
    say "using cached $(basename "$deb")"
fi

# The cache key: the kernel package and every input that goes into the image.
key=$( { basename "$deb"; cat "$here/prepare.sh" "$here/init" "$here/nfsmount.c";
         printf '%s\n' "${want_modules[@]}"; } | sha256sum | cut -c1-16)
out="$cache/img-$key"
if [ -s "$out/vmlinuz" ] && [ -s "$out/initramfs.cpio.gz" ]; then
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

mkdir -p "$out.tmp"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -6 > "$out.tmp/initramfs.cpio.gz"
cp "$vmlinuz" "$out.tmp/vmlinuz"
echo "$kver" > "$out.tmp/kernel-version"
rm -rf "$out"
mv "$out.tmp" "$out"
# Old images are dead weight: keep only this one (and the .deb cache).
for old in "$cache"/img-*; do
    [ "$old" = "$out" ] || rm -rf "$old"
done
echo "kernel=$out/vmlinuz"
echo "initrd=$out/initramfs.cpio.gz"
