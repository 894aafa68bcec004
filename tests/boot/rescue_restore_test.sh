#!/usr/bin/env bash
# Issue 16 end to end under qemu. The bootable fixture disk (mkbootdisk.sh) is backed up, as a UEFI
# machine whose firmware has a boot entry for its shim (a fabricated efivarfs: ASRIMG_EFIVARS_DIR),
# into the images/ of a recovery drive made by `asrimg rescue make FILE.img`. A VM started from the
# drive with a larger, garbage-filled blank disk restores the newest image unattended
# (images/unattended.conf: no target named, so the plan must pick the blank disk and never the
# drive), re-creates the boot entry on UEFI, and powers off. The restored disk, booted alone with
# the same firmware variables, prints the fixture's marker: the root found by its PARTUUID, its
# filesystem UUID checked. Under UEFI (Secure Boot enforced too) the recorded entry exists exactly
# once and first in BootOrder, also after a second restore. The drive's report says ok.
# Usage: rescue_restore_test.sh ASRIMG SOURCE_DIR [FIRMWARE...]   (default: bios uefi uefi-sb)
set -u
asrimg=$1
src=$2
shift 2
firmwares=("$@")
[ ${#firmwares[@]} -gt 0 ] || firmwares=(bios uefi uefi-sb)
here=$src/tests/boot
skip_all() { echo "SKIP: $1"; echo "rescue_restore: 0 passed, 0 failed, 1 skipped"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip_all "needs root (loop devices, exfat-fuse)"
for tool in qemu-system-x86_64 losetup mount.exfat-fuse sfdisk python3 mcopy; do
  command -v "$tool" >/dev/null || skip_all "$tool not installed"
done
[ -f /usr/share/OVMF/OVMF_CODE_4M.secboot.fd ] || skip_all "no OVMF (Debian package ovmf)"
kit=${ASRIMG_BOOTKIT:-/var/cache/asrimg/bootkit}
[ -f "$kit/.bootkit-packages" ] || "$src/scripts/bootkit.sh" "$kit" >/dev/null 2>&1 ||
  skip_all "no bootkit in $kit (scripts/bootkit.sh could not make it)"

work=$(mktemp -d /var/tmp/asrimg-rescue-restore-XXXXXX)
data=
cleanup() {
  mountpoint -q "$work/mnt" && umount "$work/mnt"
  [ -n "$data" ] && losetup -d "$data" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
pass=0 fail=0
check() { # name, then a command that must succeed
  local name=$1; shift
  if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $name"; fi
}
die() { echo "rescue_restore: $*" >&2; echo "rescue_restore: $pass passed, $((fail + 1)) failed"; exit 1; }

# ---- the source machine: the fixture disk, its firmware's entry for it -------------------------
"$here/mkbootdisk.sh" "$work/src.img" --bootkit "$kit" || die "mkbootdisk failed"
# shellcheck disable=SC1091
. "$work/src.img.env"
efivars="python3 $src/tests/efivars.py"
mkdir "$work/efivars"
entry_desc="asrimg fixture"
$efivars boot "$work/efivars" 4 "$entry_desc" "$ESP_PARTUUID" "$ESP_PARTNUM" $((ESP_OFFSET / 512)) \
  $((ESP_SIZE / 512)) '\EFI\debian\shimx64.efi' || die "efivars.py failed"
$efivars other "$work/efivars" 1 "UEFI Shell" && $efivars order "$work/efivars" 4 1 || die "efivars.py failed"

# ---- the recovery drive with the image on it ----------------------------------------------------
drive=$work/drive.img
"$asrimg" rescue make "$drive" --size 1G --system-root "$kit" --yes >/dev/null 2>"$work/err" ||
  { cat "$work/err"; die "rescue make failed"; }
read -r off size < <(sfdisk --json "$drive" | python3 -c '
import json, sys
t = json.load(sys.stdin)["partitiontable"]; p = t["partitions"][2]
print(p["start"] * t["sectorsize"], p["size"] * t["sectorsize"])')
mkdir "$work/mnt"
data_mount() { data=$(losetup -f --show -o "$off" --sizelimit "$size" "$drive") && mount.exfat-fuse "$data" "$work/mnt"; }
data_umount() { umount "$work/mnt"; losetup -d "$data"; data=; }
data_mount || die "cannot mount the drive's data partition"
ASRIMG_EFIVARS_DIR=$work/efivars "$asrimg" backup "$work/src.img" --output-dir "$work/mnt/images" \
  >/dev/null 2>"$work/err" || { cat "$work/err"; data_umount; die "backup failed"; }
printf 'restore=latest\nyes\nthen=poweroff\n' >"$work/mnt/images/unattended.conf"
image=$(cd "$work/mnt/images" && ls -- *.asrimg)
check "backup --output-dir named the image HOST-YYYYmmdd-HHMMSS.asrimg" \
  grep -qE "^$(hostname)-[0-9]{8}-[0-9]{6}\.asrimg$" <<<"$image"
"$asrimg" info "$work/mnt/images/$image" --json >"$work/info.json"
check "the image records the UEFI entry of the fixture's ESP only" python3 -c "
import json, sys
m = json.load(open('$work/info.json'))['machine']
e = m['boot_entries']
sys.exit(not (len(e) == 1 and e[0]['description'] == '$entry_desc'))"
data_umount

# ---- restore from the drive, then boot the restored disk ----------------------------------------
restore_from_drive() { # FIRMWARE TARGET VARS TAG
  "$here/qemu.sh" --firmware "$1" --vars "$3" --disk "$drive" --disk "$2" --mem 1024 \
    --expect "asrimg-rescue: next: poweroff" --fail "asrimg-rescue: a shell;" --until-off --timeout 600 \
    --log "$work/$4.log"
}
boot_restored() { # FIRMWARE TARGET VARS TAG
  "$here/qemu.sh" --firmware "$1" --vars "$3" --disk "$2" --expect "ASRIMG-BOOT-" --until-off --timeout 240 \
    --log "$work/$4.log"
}
# The entries the restored disk's /init listed: how many are ours, and whether ours is first.
entries_of() { grep -ac "ASRIMG-EFI-ENTRY Boot[0-9A-F]\{4\} $entry_desc" "$1"; }
ours_first() {
  local num order
  num=$(grep -a "ASRIMG-EFI-ENTRY Boot[0-9A-F]\{4\} $entry_desc" "$1" | head -n 1 | sed 's/.*Boot\([0-9A-F]\{4\}\).*/\1/')
  order=$(grep -a "ASRIMG-EFI-BOOTORDER" "$1" | head -n 1 | awk '{print $2}')
  [ -n "$num" ] && [ "${order%%,*}" = "$num" ]
}

for fw in "${firmwares[@]}"; do
  target=$work/target-$fw.img
  vars=$work/vars-$fw.fd
  # Larger than the source, and garbage: nothing of it may survive where the image has bytes.
  head -c $(((DISK_SIZE_MIB + 64) << 20)) /dev/urandom >"$target"
  t0=$SECONDS
  restore_from_drive "$fw" "$target" "$vars" "$fw-restore"
  check "$fw: the drive restored unattended and powered off" test $? -eq 0
  echo "rescue_restore: $fw: restore from the drive $((SECONDS - t0)) s (TCG unless KVM was found)"
  check "$fw: restore ran with --verify" grep -qa "asrimg restore .*--verify" "$work/$fw-restore.log"
  boot_restored "$fw" "$target" "$vars" "$fw-boot"
  check "$fw: the restored disk boots to its root (fs UUID $ROOT_FSUUID)" \
    grep -qa "ASRIMG-BOOT-OK fsuuid=$ROOT_FSUUID firmware=${fw%-sb}" "$work/$fw-boot.log"
  if [ "$fw" != bios ]; then
    check "$fw: the boot entry exists once" test "$(entries_of "$work/$fw-boot.log")" -eq 1
    check "$fw: the boot entry is first in BootOrder" ours_first "$work/$fw-boot.log"
  fi
  [ "$fw" = uefi-sb ] && check "uefi-sb: Secure Boot was on" grep -qa "ASRIMG-BOOT-OK .* secureboot=1" "$work/$fw-boot.log"
  if [ "$fw" = uefi ]; then
    # A second restore onto the same disk, with the same firmware variables: still one entry.
    restore_from_drive "$fw" "$target" "$vars" "$fw-restore2"
    check "uefi: the second restore finished" test $? -eq 0
    boot_restored "$fw" "$target" "$vars" "$fw-boot2"
    check "uefi: after two restores the disk boots" grep -qa "ASRIMG-BOOT-OK fsuuid=$ROOT_FSUUID" "$work/$fw-boot2.log"
    check "uefi: after two restores the entry exists exactly once" test "$(entries_of "$work/$fw-boot2.log")" -eq 1
    check "uefi: ... and is first in BootOrder" ours_first "$work/$fw-boot2.log"
  fi
done

# ---- the reports the environment left on the drive ----------------------------------------------
data_mount || die "cannot mount the drive's data partition"
reports=$(ls "$work/mnt/images/reports/"*.json 2>/dev/null | wc -l)
check "a JSON report per restore on the drive" test "$reports" -ge "${#firmwares[@]}"
check "every report says the restore and its verify were ok" python3 -c "
import glob, json, sys
r = [json.load(open(f)) for f in glob.glob('$work/mnt/images/reports/*.json')]
sys.exit(not (r and all(j['ok'] and j['verified'] for j in r)))"
data_umount

echo "rescue_restore: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
