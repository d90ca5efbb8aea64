#!/usr/bin/env bash
# Fetches the guest kernel the microVM tests and example boot: the vmlinuz of Debian's
# cloud kernel (linux-image-<version>-cloud-amd64), unpacked with dpkg -x into a fixed
# cache directory, plus a stable `vmlinuz` symlink to it. Installs nothing on the host.
#
#   scripts/fetch-guest-kernel.sh [CACHE_DIR]     (default /var/cache/tasksandbox/guest)
#
# Prints the path of the kernel. Does nothing when the kernel is already there.
set -euo pipefail

cache="${1:-${TASKSANDBOX_GUEST_DIR:-/var/cache/tasksandbox/guest}}"
if [ -e "$cache/vmlinuz" ]; then
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
install -m 0644 "$kernel" "$cache/$(basename "$kernel")"
ln -sfn "$(basename "$kernel")" "$cache/vmlinuz"
readlink -f "$cache/vmlinuz"
