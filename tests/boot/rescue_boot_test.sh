#!/usr/bin/env bash
# Boots a recovery drive made by `asrimg rescue make FILE.img --kernel-args asrimg.probe` under
# qemu (tests/boot/qemu.sh) with BIOS, UEFI, and UEFI with Secure Boot enforced (Microsoft's keys:
# shim, Debian's signed GRUB and kernel must all pass), one image file in images/. Each boot must
# print the environment's ready line with that one image, say which firmware it came up on (and
# that Secure Boot is on under uefi-sb), run asrimg inside (its --version, the same as this one's)
# and power off. Prints each boot's seconds from qemu's start to the ready line.
# Usage: rescue_boot_test.sh ASRIMG SOURCE_DIR
set -u
asrimg=$1
src=$2
skip_all() { echo "SKIP: $1"; echo "rescue_boot: 0 passed, 0 failed, 1 skipped"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip_all "needs root (loop devices)"
for tool in qemu-system-x86_64 losetup mount.exfat-fuse sfdisk python3; do
  command -v "$tool" >/dev/null || skip_all "$tool not installed"
done
[ -f /usr/share/OVMF/OVMF_CODE_4M.secboot.fd ] || skip_all "no OVMF (Debian package ovmf)"
kit=${ASRIMG_BOOTKIT:-/var/cache/asrimg/bootkit}
[ -f "$kit/.bootkit-packages" ] || "$src/scripts/bootkit.sh" "$kit" >/dev/null 2>&1 ||
  skip_all "no bootkit in $kit (scripts/bootkit.sh could not make it)"

work=$(mktemp -d /tmp/asrimg-rescue-boot-XXXXXX)
trap 'mountpoint -q "$work/mnt" && umount "$work/mnt"; [ -n "${data:-}" ] && losetup -d "$data" 2>/dev/null; rm -rf "$work"' EXIT
pass=0 fail=0
check() { # name, then a command that must succeed
  local name=$1; shift
  if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $name"; fi
}

img=$work/rescue.img
"$asrimg" rescue make "$img" --size 512M --system-root "$kit" --kernel-args asrimg.probe --yes >/dev/null 2>"$work/err" ||
  { cat "$work/err"; echo "rescue_boot: 0 passed, 1 failed"; exit 1; }
# One image in images/, for the ready line to count.
read -r off size < <(sfdisk --json "$img" | python3 -c '
import json, sys
t = json.load(sys.stdin)["partitiontable"]; p = t["partitions"][2]
print(p["start"] * t["sectorsize"], p["size"] * t["sectorsize"])')
mkdir "$work/mnt"
data=$(losetup -f --show -o "$off" --sizelimit "$size" "$img")
mount.exfat-fuse "$data" "$work/mnt" 2>/dev/null && head -c 4096 /dev/urandom >"$work/mnt/images/pc-20260101-000000.asrimg" &&
  umount "$work/mnt"
losetup -d "$data" && data=

version=$("$asrimg" --version)
for fw in bios uefi uefi-sb; do
  log=$work/$fw.log
  t0=$(date +%s.%N)
  "$src/tests/boot/qemu.sh" --firmware "$fw" --disk "$img" --expect "asrimg-rescue: probe done" --until-off \
    --timeout 150 --log "$log" &
  qpid=$!
  ready=
  while kill -0 $qpid 2>/dev/null; do
    [ -z "$ready" ] && grep -qa "asrimg-rescue: ready:" "$log" 2>/dev/null && ready=$(date +%s.%N)
    sleep 0.5
  done
  wait $qpid
  check "$fw: boots and powers off after the probe" test $? -eq 0
  check "$fw: ready, one image" grep -qa "asrimg-rescue: ready: 1 images in /mnt/rescue/images" "$log"
  check "$fw: asrimg runs inside ($version)" grep -qaF "$version" "$log"
  case $fw in
    bios) check "bios: came up on BIOS" grep -qa "asrimg-rescue: firmware: bios" "$log" ;;
    uefi) check "uefi: came up on UEFI" grep -qa "asrimg-rescue: firmware: uefi, Secure boot disabled, [1-9][0-9]* variables in efivarfs" "$log" ;;
    uefi-sb) check "uefi-sb: Secure Boot enforced" grep -qa "asrimg-rescue: firmware: uefi, Secure boot enabled, [1-9][0-9]* variables in efivarfs" "$log" ;;
  esac
  [ -n "$ready" ] && echo "rescue_boot: $fw: ready line $(echo "$ready - $t0" | bc 2>/dev/null || python3 -c "print(round($ready - $t0, 1))") s after qemu started"
done

echo "rescue_boot: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
