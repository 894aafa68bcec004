#!/usr/bin/env bash
# The boot tests' source disk (tests/boot/mkbootdisk.sh) boots, one image, on legacy BIOS, UEFI and
# UEFI with Secure Boot enforced, and its initramfs reports the root it found by PARTUUID with the
# filesystem UUID the image was made with, the firmware, and Secure Boot; on UEFI the Boot####
# entries it lists include the one the firmware says it started, with its description. A copy whose
# root filesystem UUID was changed (tune2fs -U) still boots and reports FAIL, never OK: the check is
# real. Prints each boot's time. Exit 77 (skip) without root or the tools.
# Usage: boot_fixture_test.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (mkbootdisk.sh mounts in a private namespace)"; exit 77; }
for t in qemu-system-x86_64 grub-mkimage mkfs.fat mcopy tune2fs busybox; do
  command -v "$t" >/dev/null || { echo "SKIP: $t missing (scripts/deps.sh test)"; exit 77; }
done

work=$(mktemp -d /tmp/asrimg-bootfixture-XXXXXX)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
bad() { echo "FAILED: $*"; failed=$((failed + 1)); }
timeout=240   # per boot; TCG on a loaded machine takes up to a minute

t=$SECONDS
"$here/mkbootdisk.sh" "$work/disk.img"
echo "mkbootdisk.sh: $((SECONDS - t)) s"
# shellcheck disable=SC1091
. "$work/disk.img.env"

# The ASRIMG lines of a serial log, carriage returns dropped.
marks() { tr -d '\r' <"$1" | grep -a '^ASRIMG-' || true; }

boot_ok() {   # FIRMWARE SECUREBOOT
  local fw=$1 sb=$2 log=$work/$1.log t=$SECONDS want got
  if ! "$here/qemu.sh" --firmware "$fw" --disk "$work/disk.img" --expect ASRIMG-BOOT-OK \
      --fail ASRIMG-BOOT-FAIL --timeout "$timeout" --log "$log"; then
    bad "$fw: no ASRIMG-BOOT-OK ($((SECONDS - t)) s)"
    return
  fi
  echo "$fw: booted in $((SECONDS - t)) s"
  want="ASRIMG-BOOT-OK fsuuid=$ROOT_FSUUID firmware=${fw%-sb} secureboot=$sb"
  got=$(marks "$log" | grep '^ASRIMG-BOOT-' || true)
  [ "$got" = "$want" ] && ok "$fw: $got" || bad "$fw: '$got', expected '$want'"
  [ "$fw" = bios ] && {
    marks "$log" | grep -q '^ASRIMG-EFI-' && bad "bios: EFI lines on a BIOS boot" || ok "bios: no EFI lines"
    return
  }
  # The entry OVMF says it started ("BdsDxe: starting Boot0001 "UEFI Misc Device" from ...") is
  # listed with the same description, the boot order lists only listed entries, and both come
  # before the verdict.
  local started num desc order n
  started=$(tr -d '\r' <"$log" | sed -n 's/.*BdsDxe: starting \(Boot[0-9A-F]\{4\}\) "\([^"]*\)".*/\1 \2/p' | tail -n 1)
  [ -n "$started" ] || { bad "$fw: the firmware named no entry it started"; return; }
  marks "$log" | grep -qxF "ASRIMG-EFI-ENTRY $started" &&
    ok "$fw: entry listed as the firmware names it: $started" ||
    bad "$fw: no 'ASRIMG-EFI-ENTRY $started' in: $(marks "$log" | grep EFI-ENTRY | tr '\n' ';')"
  order=$(marks "$log" | sed -n 's/^ASRIMG-EFI-BOOTORDER //p')
  n=0
  for num in ${order//,/ }; do
    marks "$log" | grep -q "^ASRIMG-EFI-ENTRY Boot$num " || bad "$fw: BootOrder names Boot$num, not listed"
    n=$((n + 1))
  done
  [ "$n" -gt 0 ] && [[ " ${order//,/ } " == *" ${started:4:4} "* ]] &&
    ok "$fw: BootOrder $order holds the started entry" || bad "$fw: BootOrder '$order' lacks ${started:4:4}"
  desc=$(marks "$log" | tail -n 1)
  [[ $desc == ASRIMG-BOOT-OK* ]] && ok "$fw: EFI lines before the verdict" || bad "$fw: last line '$desc'"
}

boot_ok bios 0
boot_ok uefi 0
boot_ok uefi-sb 1

# The negative case: the same disk with another root fs UUID. GRUB finds the root by its marker file,
# so the initramfs runs and must refuse it.
cp --sparse=always "$work/disk.img" "$work/other.img"
other_uuid=0b0b0b0b-1111-4222-8333-444444444444
mib=$((1024 * 1024))
dd if="$work/other.img" of="$work/root.fs" bs=1M skip=$((ROOT_OFFSET / mib)) count=$((ROOT_SIZE / mib)) \
  status=none
tune2fs -U "$other_uuid" "$work/root.fs" >/dev/null
dd if="$work/root.fs" of="$work/other.img" bs=1M seek=$((ROOT_OFFSET / mib)) conv=notrunc status=none
t=$SECONDS
if "$here/qemu.sh" --firmware bios --disk "$work/other.img" --expect ASRIMG-BOOT-FAIL \
    --fail ASRIMG-BOOT-OK --timeout "$timeout" --log "$work/other.log"; then
  echo "bios, root fs UUID changed: booted in $((SECONDS - t)) s"
  got=$(marks "$work/other.log" | grep '^ASRIMG-BOOT-' || true)
  want="ASRIMG-BOOT-FAIL fsuuid mismatch on /dev/vda$ROOT_PARTNUM: $other_uuid, expected $ROOT_FSUUID"
  [ "$got" = "$want" ] && ok "changed fs UUID: $got" || bad "changed fs UUID: '$got', expected '$want'"
else
  bad "changed fs UUID: no ASRIMG-BOOT-FAIL ($(marks "$work/other.log" | tr '\n' ';'))"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
