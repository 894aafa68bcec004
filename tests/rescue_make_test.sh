#!/usr/bin/env bash
# End-to-end checks of `asrimg rescue make` and `rescue update` on image files and a loop device,
# with the Debian boot pieces scripts/bootkit.sh unpacks as --system-root:
#   - rescue make FILE.img --size 1G with each --data-fs (exfat, ext4, fat32): the GPT as specified
#     (sfdisk --json: BIOS boot 1 MiB at 1 MiB, the ESP after it, the data partition to the end,
#     their types and names), the ESP fsck.vfat clean holding shim and Debian's signed GRUB on both
#     UEFI paths (byte-equal to the bootkit's), both grub.cfg naming the data partition's GUID and
#     the environment, the kernel (byte-equal) and the initramfs (a newc cpio holding /init,
#     busybox, asrimg, ld.so and the modules in load order), the marker; the data partition checked
#     clean by its own checker with an images/ directory; GRUB's boot.img in the MBR code area
#     with the partition table intact and core.img in the BIOS boot partition;
#   - --json says what was done; an existing file is refused without --yes off a terminal, byte for
#     byte untouched; a too-small file and a missing --system-root piece are refused by name;
#   - rescue update keeps a file in images/ byte-equal, replaces env-1 by env-2 and switches both
#     grub.cfg; an unknown disk (no table, a foreign GPT) is refused untouched;
#   - the drive given as a block device (a loop device over a file): the same result.
# Usage: rescue_make_test.sh ASRIMG SOURCE_DIR
set -u
asrimg=$1
src=$2
skip_all() { echo "SKIP: $1"; echo "rescue_make: 0 passed, 0 failed, 1 skipped"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip_all "needs root (loop devices)"
for tool in losetup sfdisk mdir mtype mcopy fsck.vfat fsck.exfat e2fsck debugfs mount.exfat-fuse cpio zstd python3 \
            sha256sum cmp; do
  command -v "$tool" >/dev/null || skip_all "$tool not installed"
done
kit=${ASRIMG_BOOTKIT:-/var/cache/asrimg/bootkit}
[ -f "$kit/.bootkit-packages" ] || "$src/scripts/bootkit.sh" "$kit" >/dev/null 2>&1 ||
  skip_all "no bootkit in $kit (scripts/bootkit.sh could not make it)"

work=$(mktemp -d /tmp/asrimg-rescue-make-XXXXXX)
mkdir "$work/mnt"
source "$(dirname "${BASH_SOURCE[0]}")/loop_lib.sh"
loops=()
cleanup() {
  mountpoint -q "$work/mnt" 2>/dev/null && umount "$work/mnt"
  mountpoint -q "$work/initrd/proc" 2>/dev/null && umount "$work/initrd/proc"
  detach_ours "$work" "${loops[@]}"
  rm -rf "$work"
}
trap cleanup EXIT
export MTOOLS_SKIP_CHECK=1
pass=0 fail=0
check() { # name, then a command that must succeed
  local name=$1; shift
  if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $name"; fi
}
loop_at() { # VAR FILE OFFSET SIZE
  local l
  l=$(losetup -f --show -o "$3" --sizelimit "$4" "$2") || return 1
  loops+=("$l")
  printf -v "$1" '%s' "$l"
}
# The loop device's cache is written back first: mtools writes through it, and when udev still
# holds the device open, losetup -d only marks it for auto-clear and the cache reaches the file
# at udev's close, after the test has hashed the file.
unloop() { blockdev --flushbufs "$1"; losetup -d "$1"; }
# A value of the --json report: json_get FILE EXPR (python on the parsed object j).
json_get() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"; }

# The partition table as specified, from sfdisk --json: prints "ESP_OFFSET ESP_SIZE DATA_OFFSET DATA_SIZE DATA_GUID".
table_ok() { # IMAGE DATA_TYPE
  sfdisk --json "$1" | python3 -c '
import json, sys
t = json.load(sys.stdin)["partitiontable"]
p = t["partitions"]
ss = t["sectorsize"]
assert t["label"] == "gpt" and len(p) == 3, "three GPT partitions"
assert p[0]["type"] == "21686148-6449-6E6F-744E-656564454649" and p[0]["start"] * ss == 1 << 20 and p[0]["size"] * ss == 1 << 20, "BIOS boot"
assert p[1]["type"] == "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" and p[1]["start"] * ss == 2 << 20 and p[1]["size"] * ss >= 64 << 20, "ESP"
assert p[2]["type"] == sys.argv[1] and p[2]["start"] == p[1]["start"] + p[1]["size"], "data after the ESP"
assert (p[2]["start"] + p[2]["size"]) * ss >= t["lastlba"] * ss - (1 << 20), "data to the end"
print(p[1]["start"] * ss, p[1]["size"] * ss, p[2]["start"] * ss, p[2]["size"] * ss, p[2]["uuid"].lower())
' "$2"
}

# Everything rescue make puts on the ESP; the data partition checked by fsck_cmd.
esp_ok() { # IMAGE ESP_OFFSET ESP_SIZE DATA_GUID ENV
  local img=$1 esp env=$5 ok=0 f
  loop_at esp "$img" "$2" "$3" || return 1
  shift
  fsck.vfat -n "$esp" >"$work/fsck.out" 2>&1 || { echo "fsck.vfat:"; cat "$work/fsck.out"; ok=1; }
  for f in EFI/BOOT/BOOTX64.EFI:usr/lib/shim/shimx64.efi.signed EFI/debian/shimx64.efi:usr/lib/shim/shimx64.efi.signed \
           EFI/BOOT/grubx64.efi:usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed \
           EFI/debian/grubx64.efi:usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed \
           "asrimg/$env/vmlinuz:$(cd "$kit" && ls boot/vmlinuz-* | sort -V | tail -1)"; do
    mcopy -n -i "$esp" "::/${f%%:*}" "$work/got" 2>/dev/null && cmp -s "$work/got" "$kit/${f#*:}" ||
      { echo "ESP: /${f%%:*} is not $kit/${f#*:}"; ok=1; }
  done
  mdir -i "$esp" ::/EFI/BOOT 2>/dev/null | grep -qi fbx64 && { echo "ESP: fbx64.efi present"; ok=1; }
  for f in EFI/debian/grub.cfg boot/grub/grub.cfg; do
    mtype -i "$esp" "::/$f" >"$work/grub.cfg" 2>/dev/null || { echo "ESP: no /$f"; ok=1; continue; }
    grep -q "linux /asrimg/$env/vmlinuz asrimg.drive=$3 .*console=ttyS0" "$work/grub.cfg" &&
      grep -q "initrd /asrimg/$env/initrd.img" "$work/grub.cfg" && grep -q "^serial " "$work/grub.cfg" &&
      grep -q "^set timeout=" "$work/grub.cfg" || { echo "ESP: /$f:"; cat "$work/grub.cfg"; ok=1; }
  done
  mtype -i "$esp" ::/asrimg/rescue.conf >"$work/marker" 2>/dev/null && head -1 "$work/marker" | grep -qx asrimg-rescue-drive &&
    grep -qx "env=$env" "$work/marker" && grep -qx "data=$3" "$work/marker" || { echo "ESP: marker"; cat "$work/marker"; ok=1; }
  # The initramfs: a newc cpio (zstd) with what the environment needs, modules in load order.
  rm -rf "$work/initrd" && mkdir "$work/initrd"
  if mcopy -n -i "$esp" "::/asrimg/$env/initrd.img" "$work/initrd.img" 2>/dev/null &&
     zstd -dc "$work/initrd.img" | (cd "$work/initrd" && cpio -id --quiet 2>/dev/null); then
    for f in init bin/busybox usr/bin/asrimg lib64/ld-linux-x86-64.so.2 lib/modules/load.list dev/console \
             etc/asrimg-rescue; do
      [ -e "$work/initrd/$f" ] || { echo "initramfs: no /$f"; ok=1; }
    done
    cmp -s "$work/initrd/init" "$src/cli/rescue_init.sh" || { echo "initramfs: /init is not cli/rescue_init.sh"; ok=1; }
    cmp -s "$work/initrd/usr/bin/asrimg" "$asrimg" || { echo "initramfs: asrimg is not this one"; ok=1; }
    for m in virtio_blk nvme ahci usb_storage uas xhci_pci mmc_block megaraid_sas mpt3sas ext4 vfat exfat nls_utf8; do
      [ -f "$work/initrd/lib/modules/$m.ko" ] && grep -qx "$m" "$work/initrd/lib/modules/load.list" ||
        { echo "initramfs: module $m missing"; ok=1; }
    done
    # Dependencies load first: virtio before virtio_blk, scsi_mod before sd_mod, jbd2 before ext4.
    for pair in virtio:virtio_blk scsi_mod:sd_mod jbd2:ext4 usbcore:usb_storage; do
      awk -v a="${pair%%:*}" -v b="${pair#*:}" '$0 == a {sa = NR} $0 == b {sb = NR} END {exit !(sa && sb && sa < sb)}' \
        "$work/initrd/lib/modules/load.list" || { echo "initramfs: ${pair%%:*} not loaded before ${pair#*:}"; ok=1; }
    done
    # ld.so in the initramfs runs this asrimg with the libraries beside it, nothing from the host
    # (/proc as the environment mounts it: an ASan build reads its options and threads there).
    mount -t proc proc "$work/initrd/proc"
    chroot "$work/initrd" /usr/bin/asrimg --version >"$work/ver" 2>&1 && grep -q "^asrimg " "$work/ver" ||
      { echo "initramfs: asrimg does not run in it:"; cat "$work/ver"; ok=1; }
    umount "$work/initrd/proc"
  else
    echo "initramfs: not a zstd newc cpio"; ok=1
  fi
  unloop "$esp"
  return $ok
}

# GRUB for BIOS: boot.img's code in the MBR (the partition table kept), core.img in the BIOS boot
# partition with boot.img pointing at its first sector and its block list at the rest.
bios_ok() { # IMAGE
  python3 - "$1" /usr/lib/grub/i386-pc/boot.img <<'EOF'
import struct, sys
d = open(sys.argv[1], "rb").read(4 << 20)
boot = open(sys.argv[2], "rb").read(512)
mbr = d[:512]
assert mbr[0x5c:0x5c + 8] == struct.pack("<Q", 2048), "boot.img: core.img at sector 2048"
assert mbr[:0x5c] == boot[:0x5c] and mbr[0x68:440] == boot[0x68:440], "boot.img code"
assert mbr[0x1c2] == 0xee and mbr[510:512] == b"\x55\xaa", "protective MBR kept"
core = d[2048 * 512:2049 * 512]
start, length = struct.unpack("<QH", core[500:510])
assert start == 2049 and 0 < length < 2048, "core.img block list"
EOF
}

fsck_data() { # IMAGE OFFSET SIZE FS
  local dev ok=0
  loop_at dev "$1" "$2" "$3" || return 1
  case $4 in
    exfat) fsck.exfat -n "$dev" >"$work/f.out" 2>&1 || ok=1
           mount.exfat-fuse -o ro "$dev" "$work/mnt" 2>/dev/null && { [ -d "$work/mnt/images" ] || ok=1; umount "$work/mnt"; } || ok=1
           blkid -p -s LABEL -o value "$dev" | grep -qx ASRIMG || ok=1 ;;
    ext4) e2fsck -fn "$dev" >"$work/f.out" 2>&1 || ok=1
          debugfs -R "stat /images" "$dev" 2>/dev/null | grep -q "Type: directory" || ok=1
          blkid -p -s LABEL -o value "$dev" | grep -qx ASRIMG || ok=1 ;;
    fat32) fsck.vfat -n "$dev" >"$work/f.out" 2>&1 || ok=1
           mdir -i "$dev" ::/images >/dev/null 2>&1 || ok=1
           blkid -p -s LABEL -o value "$dev" | grep -qx ASRIMG || ok=1 ;;
  esac
  [ $ok -eq 0 ] || cat "$work/f.out"
  unloop "$dev"
  return $ok
}

for fs in exfat ext4 fat32; do
  img=$work/$fs.img
  "$asrimg" rescue make "$img" --size 1G --data-fs "$fs" --system-root "$kit" --json >"$work/$fs.json" 2>"$work/$fs.err"
  check "make $fs: exits 0" test $? -eq 0
  [ -f "$img" ] || { cat "$work/$fs.err"; continue; }
  type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7
  [ "$fs" = ext4 ] && type=0FC63DAF-8483-4772-8E79-3D69D8477DE4
  if read -r esp_off esp_size data_off data_size guid < <(table_ok "$img" "$type"); then pass=$((pass + 1)); else
    fail=$((fail + 1)); echo "FAIL: make $fs: partition table"; sfdisk -d "$img"; continue; fi
  check "make $fs: the ESP holds the environment" esp_ok "$img" "$esp_off" "$esp_size" "$guid" env-1
  check "make $fs: data partition clean, labelled, with images/" fsck_data "$img" "$data_off" "$data_size" "$fs"
  check "make $fs: GRUB for BIOS" bios_ok "$img"
  check "make $fs: --json names the data GUID and sizes" test "$(json_get "$work/$fs.json" \
    '[p["guid"] for p in j["partitions"] if p["role"] == "data"][0] == "'"$guid"'" and j["environment"]["kernel_bytes"] > 0 and j["environment"]["initramfs_bytes"] > 0 and j["environment"]["modules"] > 20 and j["data_fs"] == "'"$fs"'"' 2>/dev/null)" = True
done

# Refusals: nothing written.
img=$work/exfat.img
sum=$(sha256sum <"$img")
"$asrimg" rescue make "$img" --system-root "$kit" </dev/null >/dev/null 2>"$work/err"; rc=$?
check "no --yes off a terminal: exit 1" test $rc -eq 1
check "no --yes: says why" grep -q "pass --yes to confirm" "$work/err"
check "no --yes: shows what it would overwrite" grep -q "becomes a recovery drive" "$work/err"
check "no --yes: the file is untouched" test "$(sha256sum <"$img")" = "$sum"
"$asrimg" rescue make "$work/small.img" --size 100M --yes --system-root "$kit" >/dev/null 2>"$work/err"
check "too small: refused, no file left" sh -c "grep -q 'too small' '$work/err' && [ ! -e '$work/small.img' ]"
mkdir -p "$work/badroot/boot"
"$asrimg" rescue make "$work/x.img" --size 1G --yes --system-root "$work/badroot" >/dev/null 2>"$work/err"
check "no kernel in --system-root: named with its package" grep -q "linux-image-amd64" "$work/err"
check "no kernel: no file left" test ! -e "$work/x.img"
"$asrimg" rescue make "$work/y.img" --size 1G --yes --data-fs btrfs >/dev/null 2>&1
check "--data-fs btrfs: usage error" test $? -eq 2

# update: the images stay, the environment is replaced.
loop_at data "$img" "$data_off" "$data_size" 2>/dev/null
if mount.exfat-fuse "$data" "$work/mnt" 2>/dev/null; then
  head -c 5000000 /dev/urandom >"$work/mnt/images/pc.asrimg"
  cp "$work/mnt/images/pc.asrimg" "$work/pc.asrimg"
  umount "$work/mnt"
fi
unloop "$data"
read -r esp_off esp_size data_off data_size guid < <(table_ok "$img" EBD0A0A2-B9E5-4433-87C0-68B6B72699C7)
"$asrimg" rescue update "$img" --system-root "$kit" --json >"$work/update.json" 2>"$work/err"
check "update: exits 0" test $? -eq 0
check "update: env-2 replaces env-1" test "$(json_get "$work/update.json" 'j["environment"]["dir"] + " " + j["environment"]["replaced"]')" = "env-2 env-1"
check "update: the ESP holds env-2" esp_ok "$img" "$esp_off" "$esp_size" "$guid" env-2
loop_at esp "$img" "$esp_off" "$esp_size"
check "update: env-1 is gone" sh -c "! mdir -i '$esp' ::/asrimg/env-1 >/dev/null 2>&1"
unloop "$esp"
check "update: GRUB for BIOS" bios_ok "$img"
loop_at data "$img" "$data_off" "$data_size"
check "update: exFAT still clean" fsck.exfat -n "$data"
mount.exfat-fuse -o ro "$data" "$work/mnt" 2>/dev/null
check "update: the image in images/ is byte-equal" cmp "$work/mnt/images/pc.asrimg" "$work/pc.asrimg"
umount "$work/mnt" 2>/dev/null
unloop "$data"
# Unknown disks: no table; a foreign GPT; the layout rescue make writes but no marker on the ESP;
# a marker naming another data partition.
for kind in plain foreign unmarked othermarker; do
  case $kind in
    plain) truncate -s 300M "$work/$kind.img" ;;
    foreign) truncate -s 300M "$work/$kind.img"
             printf 'label: gpt\ntype=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, size=100M\ntype=L\n' | sfdisk -q "$work/$kind.img" ;;
    unmarked | othermarker)
      cp --sparse=always "$img" "$work/$kind.img"
      loop_at esp "$work/$kind.img" "$esp_off" "$esp_size"
      if [ $kind = unmarked ]; then mdel -i "$esp" ::/asrimg/rescue.conf; else
        mtype -i "$esp" ::/asrimg/rescue.conf | sed "s/^data=.*/data=00000000-1111-2222-3333-444444444444/" >"$work/m"
        mcopy -o -i "$esp" "$work/m" ::/asrimg/rescue.conf; fi
      unloop "$esp" ;;
  esac
  sum=$(sha256sum <"$work/$kind.img")
  "$asrimg" rescue update "$work/$kind.img" --system-root "$kit" >/dev/null 2>"$work/err"; rc=$?
  check "update of a $kind disk: refused" sh -c "[ $rc -eq 1 ] && grep -q 'not a recovery drive made by asrimg rescue make' '$work/err'"
  check "update of a $kind disk: untouched" test "$(sha256sum <"$work/$kind.img")" = "$sum"
done

# A block device: a loop device over a file, as a USB stick would be.
truncate -s 1G "$work/stick.file"
loop_at stick "$work/stick.file" 0 $((1 << 30))
"$asrimg" rescue make "$stick" --yes --system-root "$kit" >/dev/null 2>"$work/err"
check "make on a block device: exits 0" test $? -eq 0 || cat "$work/err"
if read -r esp_off esp_size data_off data_size guid < <(table_ok "$stick" EBD0A0A2-B9E5-4433-87C0-68B6B72699C7); then
  check "block device: the ESP holds the environment" esp_ok "$work/stick.file" "$esp_off" "$esp_size" "$guid" env-1
  check "block device: exFAT clean" fsck_data "$work/stick.file" "$data_off" "$data_size" exfat
else
  check "block device: partition table" false
fi
"$asrimg" rescue make "$stick" --size 2G --yes --system-root "$kit" >/dev/null 2>"$work/err"
check "--size on a block device: refused" grep -q "is a block device" "$work/err"

echo "rescue_make: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
