#!/usr/bin/env bash
# Fetches the guest kernel the microVM tests, example and benchmark boot: the vmlinuz of
# Debian's cloud kernel (linux-image-<version>-cloud-amd64), unpacked with dpkg -x into
# a cache directory, with a stable `vmlinuz` symlink to it, and the few modules a guest
# needs for virtio disks and network interfaces (flat, in `modules/`). Installs nothing
# on the host.
#
#   scripts/fetch-guest-kernel.sh [GUEST_DIR]
#
# The directory is GUEST_DIR, else $TASKSANDBOX_GUEST_DIR, else
# /var/cache/tasksandbox/guest: the same variable and default the tests, the example
# and the benchmark read (tasksandbox::microvm::guest::guest_dir). Prints the path of
# the kernel. Does nothing when the kernel and its modules are already there.
set -euo pipefail

cache="${1:-${TASKSANDBOX_GUEST_DIR:-/var/cache/tasksandbox/guest}}"
# virtio-mmio transport and virtio core, disks, network (with its failover helpers).
modules="virtio virtio_ring virtio_mmio virtio_blk virtio_net net_failover failover"

have_all() {
    [ -e "$cache/vmlinuz" ] || return 1
    for m in $modules; do
        [ -e "$cache/modules/$m.ko" ] || return 1
    done
}
if have_all; then
    readlink -f "$cache/vmlinuz"
    exit 0
fi

# The exact package behind the meta package, e.g. linux-image-6.1.0-48-cloud-amd64.
pkg="$(apt-cache depends linux-image-cloud-amd64 2>/dev/null \
    | sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -n1)"
if [ -z "$pkg" ]; then
    apt-get update -qq
    pkg="$(apt-cache depends linux-image-cloud-amd64 \
        | sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -n1)"
fi
if [ -z "$pkg" ]; then
    echo "no linux-image-*-cloud-amd64 package is known to apt" >&2
    exit 1
fi

mkdir -p "$cache"
work="$(mktemp -d "$cache/.fetch.XXXXXX")"
chmod 0755 "$work"  # apt-get download drops to the _apt user
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -qq "$pkg")
dpkg -x "$work"/"$pkg"_*.deb "$work/root"
kernel="$(ls "$work"/root/boot/vmlinuz-* | head -n1)"
release="$(basename "$kernel")"
release="${release#vmlinuz-}"

# The modules of this very kernel, replacing any of another one.
mkdir -p "$work/modules"
for m in $modules; do
    found="$(find "$work/root/lib/modules/$release" -name "$m.ko" -o -name "$m.ko.xz" \
        -o -name "$m.ko.zst" | head -n1)"
    if [ -z "$found" ]; then
        echo "$pkg has no module $m" >&2
        exit 1
    fi
    case "$found" in
        *.xz) xz -dc "$found" > "$work/modules/$m.ko" ;;
        *.zst) zstd -qdc "$found" > "$work/modules/$m.ko" ;;
        *) cp "$found" "$work/modules/$m.ko" ;;
    esac
done
chmod 0644 "$work"/modules/*.ko
chmod 0755 "$work/modules"
rm -rf "$cache/modules"
mv "$work/modules" "$cache/modules"

install -m 0644 "$kernel" "$cache/vmlinuz-$release"
ln -sfn "vmlinuz-$release" "$cache/vmlinuz"
readlink -f "$cache/vmlinuz"
