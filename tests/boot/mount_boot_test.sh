#!/usr/bin/env bash
# A backup boots straight from `asrimg mount` (issue 17): the boot tests' source disk
# (mkbootdisk.sh: BIOS boot partition, ESP, ext4 root) is backed up with the default selection,
# the image mounted with -d, and DIR/disk0.img, a read-only FUSE file, booted under qemu with
# snapshot=on on legacy BIOS, UEFI and UEFI with Secure Boot enforced; each boot must report the
# source's root filesystem UUID. The default backup must hold every partition the boot needs (no
# --volumes). After `asrimg umount` nothing is left mounted, and the source disk and the image are
# unchanged (sha256 before and after). Prints each boot's time. Exit 77 (skip) without root or
# the tools.
# Usage: mount_boot_test.sh ASRIMG
set -euo pipefail
asrimg=$1
here=$(cd "$(dirname "$0")" && pwd)

[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (mkbootdisk.sh, FUSE mount)"; exit 77; }
[ -c /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
for t in qemu-system-x86_64 grub-mkimage mkfs.fat mcopy busybox fusermount3 sha256sum; do
  command -v "$t" >/dev/null || { echo "SKIP: $t missing (scripts/deps.sh test)"; exit 77; }
done

work=$(mktemp -d /tmp/asrimg-mountboot-XXXXXX)
mnt=$work/mnt
mkdir "$mnt"
listed() { grep -q " $mnt fuse.asrimg " /proc/self/mounts; }
cleanup() {
  if listed; then "$asrimg" umount "$mnt" 2>/dev/null || fusermount3 -u -z "$mnt" 2>/dev/null || true; fi
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
passed=0 failed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
bad() { echo "FAILED: $*"; failed=$((failed + 1)); }
timeout=240   # per boot; TCG on a loaded machine takes up to a minute

t=$SECONDS
"$here/mkbootdisk.sh" "$work/disk.img" >"$work/mkbootdisk.out" 2>&1 || { cat "$work/mkbootdisk.out"; exit 1; }
echo "mkbootdisk.sh: $((SECONDS - t)) s"
# shellcheck disable=SC1091
. "$work/disk.img.env"

img=$work/disk.asrimg
"$asrimg" backup "$work/disk.img" -o "$img" >"$work/backup.out" 2>&1 || { cat "$work/backup.out"; exit 1; }
sums() { sha256sum "$work/disk.img" "$img"; }
sums >"$work/sums.before"

"$asrimg" mount "$img" "$mnt" -d || { bad "asrimg mount -d"; echo "$passed passed, $failed failed"; exit 1; }
listed && ok "mounted: $mnt is fuse.asrimg" || bad "$mnt is not listed as fuse.asrimg in /proc/self/mounts"
# The default selection kept the BIOS boot partition, the ESP and the root: one volume file each.
got=$(cd "$mnt" && echo *)
want="README disk0.img disk0p$BIOS_PARTNUM.img disk0p$ESP_PARTNUM.img disk0p$ROOT_PARTNUM.img"
[ "$got" = "$want" ] && ok "default backup holds the BIOS boot partition, ESP and root: $got" ||
  bad "DIR lists '$got', expected '$want'"
# README: the BIOS boot partition has no filesystem; its type says what it is.
grep -A1 "^disk0p$BIOS_PARTNUM.img" "$mnt/README" | grep -q 'no filesystem (type BIOS boot)' &&
  ok "README: disk0p$BIOS_PARTNUM.img is a BIOS boot partition without a filesystem" ||
  bad "README: $(grep -A1 "^disk0p$BIOS_PARTNUM.img" "$mnt/README" | tail -1)"
[ "$(stat -c %a "$mnt/disk0.img")" = 444 ] && ok "disk0.img is read-only (0444)" ||
  bad "disk0.img mode $(stat -c %a "$mnt/disk0.img")"

marks() { tr -d '\r' <"$1" | grep -a '^ASRIMG-BOOT-' || true; }
boot_ok() {   # FIRMWARE SECUREBOOT
  local fw=$1 sb=$2 log=$work/$1.log t=$SECONDS want got
  if ! "$here/qemu.sh" --snapshot --firmware "$fw" --disk "$mnt/disk0.img" --expect ASRIMG-BOOT-OK \
      --fail ASRIMG-BOOT-FAIL --timeout "$timeout" --log "$log"; then
    bad "$fw: no ASRIMG-BOOT-OK from disk0.img ($((SECONDS - t)) s)"
    return
  fi
  echo "$fw: booted from disk0.img in $((SECONDS - t)) s"
  want="ASRIMG-BOOT-OK fsuuid=$ROOT_FSUUID firmware=${fw%-sb} secureboot=$sb"
  got=$(marks "$log")
  [ "$got" = "$want" ] && ok "$fw: $got" || bad "$fw: '$got', expected '$want'"
}
boot_ok bios 0
boot_ok uefi 0
boot_ok uefi-sb 1

"$asrimg" umount "$mnt" && ok "asrimg umount" || bad "asrimg umount"
listed && bad "$mnt still mounted after umount" || ok "nothing left mounted on $mnt"
sums >"$work/sums.after"
cmp -s "$work/sums.before" "$work/sums.after" && ok "source disk and image unchanged (sha256)" ||
  bad "changed: $(diff "$work/sums.before" "$work/sums.after" | tr '\n' ' ')"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
