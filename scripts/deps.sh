#!/usr/bin/env bash
# Installs the Debian 12 packages asrimg needs to build, test and benchmark, when missing.
# Idempotent; needs root (apt-get). Usage: scripts/deps.sh [build|test|bench|all]
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config libzstd-dev zlib1g-dev liblzo2-dev libxxhash-dev liburing-dev libfdisk-dev
            libblkid-dev libmount-dev libext2fs-dev ntfs-3g-dev uuid-dev
            libcryptsetup-dev libjson-c-dev libssl-dev libefivar-dev libefiboot-dev libarchive-dev libfuse3-dev fuse3
            libcurl4-openssl-dev)
test_pkgs=(libcriterion-dev clang libclang-rt-14-dev zstd fdisk gdisk dosfstools mtools fatcat exfatprogs exfat-fuse partclone
           ntfs-3g e2fsprogs python3 groff-base man-db lvm2 mdadm
           cryptsetup-bin xfsprogs btrfs-progs
           qemu-system-x86 ovmf grub-pc-bin grub-efi-amd64-bin busybox-static cpio kmod tmux
           swift swift-proxy swift-account swift-container swift-object python3-swift memcached)
# tests/s3/swift_env.sh runs Swift with s3api (and a memcached behind its proxy) on localhost for
# the S3 chunk store tests (issue 18).
# bench/run.sh: the baselines it measures against (partclone, zstd, fio), peak RSS (time), and
# what bench/mkdisk.sh builds its disk with; bench/stacks.sh also builds LVM and LUKS2 (lvm2, cryptsetup).
bench_pkgs=(fio partclone zstd time python3 openssl fdisk dosfstools mtools e2fsprogs util-linux lvm2 cryptsetup-bin
            xfsprogs btrfs-progs)

case "${1:-all}" in
  build) want=("${build_pkgs[@]}") ;;
  test) want=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
  bench) want=("${build_pkgs[@]}" "${bench_pkgs[@]}") ;;
  all) want=("${build_pkgs[@]}" "${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
  *) echo "usage: $0 [build|test|bench|all]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "asrimg: error: missing Debian packages (${missing[*]}): run as root or install them" >&2
  exit 1
fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Daemon packages (swift-*, memcached, rsyslog) start their services from their maintainer scripts through
# invoke-rc.d; a policy-rc.d answering 101 forbids it, so installing needs no systemd and starts
# nothing (the tests start what they need themselves).
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
