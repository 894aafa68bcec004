#!/usr/bin/env bash
# The Debian boot pieces the recovery drive and the boot tests are built from, unpacked (never
# installed) into a directory laid out like a root filesystem: DIR/boot/vmlinuz-VER,
# DIR/lib/modules/VER, DIR/usr/lib/shim/shimx64.efi.signed, DIR/usr/lib/grub/x86_64-efi-signed/
# grubx64.efi.signed. Installing shim-signed, grub-efi-amd64-signed or a linux-image package would
# run their maintainer scripts against this machine's own boot; unpacking them touches nothing.
# `asrimg rescue make --system-root DIR` takes the same layout as the host's own root.
# Idempotent (a stamp names the packages unpacked); needs root only for apt-get.
# Usage: scripts/bootkit.sh [DIR]   (default /var/cache/asrimg/bootkit; prints DIR)
set -euo pipefail

dir=${1:-/var/cache/asrimg/bootkit}
kernel_pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
if [ -z "$kernel_pkg" ]; then
  apt-get update -qq
  kernel_pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
fi
[ -n "$kernel_pkg" ] || { echo "asrimg: error: bootkit: no kernel package behind linux-image-amd64" >&2; exit 1; }
pkgs=("$kernel_pkg" shim-signed shim-helpers-amd64-signed grub-efi-amd64-signed)
stamp="$dir/.bootkit-packages"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${pkgs[*]}" ]; then
  echo "$dir"
  exit 0
fi

debs=$(mktemp -d)
trap 'rm -rf "$debs"' EXIT
mkdir -p "$dir"
(cd "$debs" && apt-get download -qq "${pkgs[@]}" >/dev/null 2>&1) ||
  { apt-get update -qq && (cd "$debs" && apt-get download -qq "${pkgs[@]}" >/dev/null); }
for deb in "$debs"/*.deb; do
  dpkg-deb -x "$deb" "$dir"
done
echo "${pkgs[*]}" >"$stamp"
echo "$dir"
