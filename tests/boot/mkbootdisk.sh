#!/usr/bin/env bash
# Builds the small bootable SOURCE disk the boot tests start from: one GPT disk image that boots on
# legacy BIOS, on UEFI and on UEFI with Secure Boot enforced, into Debian's signed kernel and a
# busybox initramfs that checks it came up on the right root and says so on the serial console:
#   ASRIMG-EFI-ENTRY Boot0003 <description>      (UEFI only: one line per Boot#### variable)
#   ASRIMG-EFI-BOOTORDER 0003,0001,...           (UEFI only)
#   ASRIMG-BOOT-OK fsuuid=<uuid> firmware=<bios|uefi> secureboot=<0|1>
#   or ASRIMG-BOOT-FAIL <reason>; then it powers off.
# Layout: p1 BIOS boot (1 MiB, GRUB's core.img), p2 ESP (32 MiB FAT16, written with mtools), p3 ext4
# root holding /boot/vmlinuz-VER, /boot/initrd.img-VER, /boot/grub/grub.cfg and the marker file
# /boot/asrimg-fixture. Partition GUIDs, the disk GUID and the fs UUID derive from --seed, so the
# same seed gives the same identities (the bytes differ only in a few directory and inode times).
# Writes OUT.img.env (shell key=value) for the tests.
# Needs only Debian packages (scripts/deps.sh) and scripts/bootkit.sh, root (for mount,
# below) and no loop device.
#
# Findings the recovery drive (`asrimg rescue make`) needs too:
# - Debian's signed grubx64.efi (grub-efi-amd64-signed 2.06-13) is built with prefix "/EFI/debian"
#   on the device it was loaded from, and its embedded config (memdisk) reads, in this order,
#   $prefix/x86_64-efi/grub.cfg, $prefix/grub.cfg, else $cmdpath/grub.cfg; only when $prefix does
#   not exist does it search for /.disk/info and use ($root)/boot/grub. So even when started as the
#   removable path \EFI\BOOT\BOOTX64.EFI (shim) -> \EFI\BOOT\grubx64.efi, GRUB reads
#   \EFI\debian\grub.cfg from the ESP whenever \EFI\debian exists; without \EFI\debian it reads
#   \EFI\BOOT\grub.cfg (after "no such device: /.disk/info" errors). Both seen under OVMF.
#   Here \EFI\debian\grub.cfg is a stub that finds the root and runs its /boot/grub/grub.cfg, as
#   grub-install's stub does.
# - shim started from \EFI\BOOT\ runs fbx64.efi when it sits beside it, and fallback then creates
#   boot entries by itself (from \EFI\*\BOOTX64.CSV); without it shim starts grubx64.efi beside it.
#   fbx64.efi is left off so that every Boot#### entry a test sees was made by the firmware or
#   by asrimg.
# - BIOS GRUB on an image file, without a loop device or partition scanning: grub-mkimage -O i386-pc
#   builds a core.img holding every module the boot needs plus an early config (search for the root,
#   set prefix); grub-bios-setup (grub-pc-bin's /usr/lib/grub/i386-pc/grub-bios-setup, not on
#   PATH) with a device map "(hd0) IMAGE" and -d DIR holding boot.img and core.img then reads
#   the image's GPT itself, embeds core.img in the BIOS boot partition (on GPT it needs one) and
#   writes boot.img into the MBR keeping the protective partition table, patching the sector
#   numbers as grub-install does. One catch: it also guesses a "root device" from the filesystem
#   holding DIR and stops when GRUB cannot open that device (the host's /dev/vda, or "tmpfs").
#   DIR is therefore a tmpfs mounted with the image's path as its source (needs root): the guess
#   is the image itself. Not in a private mount namespace (unshare -m): that copies every mount
#   of the machine, and other tests' umounts would then only detach their own copy.
#   grub-install (grub2-common, not installed) wants a mounted /boot on a partitioned block
#   device, which an offset loop device is not.
# - GRUB finds the root by the marker file (search --file), not by fs UUID, so that a root whose fs
#   UUID changed still boots into the initramfs, which then says ASRIMG-BOOT-FAIL fsuuid mismatch.
# - Debian 6.1 modules are plain .ko (not .ko.xz), signed (lockdown under Secure Boot accepts them),
#   and the bootkit has no modules.dep (depmod runs in the package's postinst): dependencies are
#   resolved here with modinfo, and busybox insmod loads them in order. ext4 needs crc32c
#   (softdep "crypto-crc32c"), loaded explicitly. efivarfs fails to load without EFI.
# - The kernel exposes no PARTUUID in sysfs or uevent (only PARTN and PARTNAME), and busybox blkid
#   reads no GPT: /init reads the GPT entry of each partition with od.
# - efivarfs files cannot seek: od -j on them silently reads from the start; /init pipes them.
# - Under TCG a boot takes 25-45 s (kernel decompression and init dominate; GRUB loads the kernel
#   and initramfs in 2-5 s); each command /init runs costs a fork and exec, so it runs few.
# Usage: mkbootdisk.sh OUT.img [--size MiB] [--seed TEXT] [--bootkit DIR]
set -euo pipefail

usage() { echo "usage: $0 OUT.img [--size MiB] [--seed TEXT] [--bootkit DIR]" >&2; exit 2; }
die() { echo "asrimg: error: mkbootdisk: $*" >&2; exit 1; }

out="" size=128 seed=asrimg-boot-fixture kit=""
while [ $# -gt 0 ]; do
  case "$1" in
    --size) size=${2:-}; shift 2 || usage ;;
    --seed) seed=${2:-}; shift 2 || usage ;;
    --bootkit) kit=${2:-}; shift 2 || usage ;;
    -*) usage ;;
    *) [ -z "$out" ] || usage; out=$1; shift ;;
  esac
done
[ -n "$out" ] || usage
case "$size" in ''|*[!0-9]*) usage ;; esac
[ "$size" -ge 64 ] || die "--size $size: at least 64 MiB"

here=$(cd "$(dirname "$0")" && pwd)
[ -n "$kit" ] || kit=$("$here/../../scripts/bootkit.sh" | tail -n 1)   # it prints its directory last
kver=$(cd "$kit/boot" && ls vmlinuz-* 2>/dev/null | sed 's/^vmlinuz-//' | sort -V | tail -n 1)
[ -n "$kver" ] || die "no kernel in $kit/boot"
moddir=$kit/lib/modules/$kver
shim=$kit/usr/lib/shim/shimx64.efi.signed
grubefi=$kit/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed
grubpc=/usr/lib/grub/i386-pc
for f in "$shim" "$grubefi" "$grubpc/boot.img" "$grubpc/grub-bios-setup" /bin/busybox; do
  [ -e "$f" ] || die "missing $f (scripts/deps.sh test; scripts/bootkit.sh)"
done

# A GUID from the seed: stable per (seed, what), shaped as a random (version 4) UUID.
guid() {
  local h
  h=$(printf '%s/%s' "$seed" "$1" | sha256sum | cut -c1-32)
  printf '%s-%s-4%s-%s%s-%s\n' "${h:0:8}" "${h:8:4}" "${h:13:3}" \
    "$(printf '%x' $(( (0x${h:16:1} & 3) | 8 )))" "${h:17:3}" "${h:20:12}"
}
disk_guid=$(guid disk) bios_guid=$(guid biosboot) esp_guid=$(guid esp) root_guid=$(guid root)
fsuuid=$(guid rootfs)
marker=asrimg-fixture-$(printf '%s/marker' "$seed" | sha256sum | cut -c1-16)
esp_volid=$(printf '%s/espvol' "$seed" | sha256sum | cut -c1-8)

# Sectors of 512 bytes, MiB-aligned.
mib=2048
bios_start=$mib bios_len=$mib
esp_start=$((bios_start + bios_len)) esp_len=$((32 * mib))
root_start=$((esp_start + esp_len)) root_len=$(((size - 1) * mib - root_start))
# The last MiB stays free for the backup GPT.

work=$(realpath "$(mktemp -d)")
stamp="2020-01-01 00:00:00 UTC"   # every file's time (FAT has none before 1980)
trap 'rm -rf "$work"' EXIT
img=$work/disk.img
truncate -s "${size}M" "$img"
sfdisk -q --no-reread --no-tell-kernel "$img" >"$work/sfdisk.out" 2>&1 <<EOF || { cat "$work/sfdisk.out" >&2; die "sfdisk failed"; }
label: gpt
label-id: $disk_guid
first-lba: 2048
start=$bios_start, size=$bios_len, type=21686148-6449-6E6F-744E-656564454649, uuid=$bios_guid, name="BIOS boot"
start=$esp_start, size=$esp_len, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=$esp_guid, name="EFI System"
start=$root_start, size=$root_len, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=$root_guid, name="root"
EOF

# --- initramfs: busybox, the modules, /init ---------------------------------------------------
ird=$work/initrd
mkdir -p "$ird"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,mnt,lib/modules}
cp /bin/busybox "$ird/bin/busybox"

# Module name -> file (names use _ where files may use -).
find "$moddir/kernel" -name '*.ko' | awk -F/ '{n=$NF; sub(/\.ko$/,"",n); gsub(/-/,"_",n); print n, $0}' \
  >"$work/modindex"
modfile() { awk -v n="${1//-/_}" '$1 == n {print $2; exit}' "$work/modindex"; }
: >"$work/modorder"
add_module() {   # depth-first: dependencies first, each once
  local name=${1//-/_} file dep
  grep -qx "$name" "$work/modorder" && return 0
  file=$(modfile "$name")
  [ -n "$file" ] || die "module $name not in $moddir"
  for dep in $(modinfo -F depends "$file" | tr ',' ' '); do add_module "$dep"; done
  grep -qx "$name" "$work/modorder" || { echo "$name" >>"$work/modorder"; cp "$file" "$ird/lib/modules/$name.ko"; }
}
# crc32c is ext4's soft dependency (crypto alias): the generic one. SATA (ahci, sd_mod, and
# crct10dif, t10-pi's soft dependency) goes to a second list /init loads only when needed.
for m in crc32c_generic virtio_pci virtio_blk ext4; do add_module "$m"; done
cp "$work/modorder" "$ird/lib/modules/order"
for m in crct10dif_generic ahci sd_mod; do add_module "$m"; done
grep -vxF -f "$ird/lib/modules/order" "$work/modorder" >"$ird/lib/modules/order.sata"
# efivarfs refuses to load without EFI: /init loads it on UEFI only.
cp "$(modfile efivarfs)" "$ird/lib/modules/efivarfs.ko"

cat >"$ird/init" <<'INIT'
#!/bin/busybox sh
# asrimg boot fixture: find the root by PARTUUID, check its fs UUID and marker, report, power off.
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sys /sys

finish() { umount /mnt 2>/dev/null; sync; poweroff -f; sleep 10; }
fail() { echo "ASRIMG-BOOT-FAIL $*"; finish; }

load() { # the modules listed in /lib/modules/$1, in order
  for m in $(cat "/lib/modules/$1"); do
    insmod "/lib/modules/$m.ko" 2>/dev/null || echo "asrimg-init: insmod $m failed"
  done
}
load order

partuuid="" fsuuid="" marker=""
for w in $(cat /proc/cmdline); do
  case "$w" in
    root=PARTUUID=*) partuuid=${w#root=PARTUUID=} ;;
    asrimg.fsuuid=*) fsuuid=${w#asrimg.fsuuid=} ;;
    asrimg.marker=*) marker=${w#asrimg.marker=} ;;
  esac
done
partuuid=$(echo "$partuuid" | tr A-F a-f)
[ -n "$partuuid" ] && [ -n "$fsuuid" ] && [ -n "$marker" ] ||
  fail "command line lacks root=PARTUUID=, asrimg.fsuuid= or asrimg.marker="

# Commands cost a fork and exec each, slow under emulation: disks and partitions are read with one od
# per disk and per partition, numbers and GUIDs put together by the shell.
bytes() { od -A n -t x1 -v -j "$2" -N "$3" "$1"; }   # FILE OFFSET COUNT -> hex bytes

# The partition whose GPT entry carries the PARTUUID; sets root.
find_root() {
  local d disk ss entries esize p n
  for d in /sys/block/*; do
    disk=${d##*/}
    [ -b "/dev/$disk" ] && [ -r "$d/queue/logical_block_size" ] || continue
    read -r ss <"$d/queue/logical_block_size"
    set -- $(bytes "/dev/$disk" "$ss" 92)
    [ $# -eq 92 ] && [ "$1$2$3$4$5$6$7$8" = 4546492050415254 ] || continue   # "EFI PART"
    shift 72   # header bytes 72..79: the entries' LBA; 84..87: an entry's size
    entries=$((0x$8$7$6$5$4$3$2$1)) esize=$((0x${16}${15}${14}${13}))
    for p in "$d/$disk"*; do
      [ -r "$p/partition" ] || continue
      read -r n <"$p/partition"
      set -- $(bytes "/dev/$disk" $((entries * ss + (n - 1) * esize + 16)) 16)
      [ $# -eq 16 ] && [ "$4$3$2$1-$6$5-$8$7-$9${10}-${11}${12}${13}${14}${15}${16}" = "$partuuid" ] &&
        { root=${p##*/}; return 0; }
    done
  done
  return 1
}
# virtio disks are probed as their module loads; SATA ones (ahci, sd_mod) are loaded only when no
# disk holds the root yet, and are scanned asynchronously: wait for them.
root=""
if ! find_root; then
  load order.sata
  for _ in $(seq 1 100); do
    find_root && break
    sleep 0.1
  done
fi
[ -n "$root" ] || fail "no partition with PARTUUID $partuuid"

firmware=bios secureboot=0
if [ -d /sys/firmware/efi ]; then
  firmware=uefi
  vars=/sys/firmware/efi/efivars
  insmod /lib/modules/efivarfs.ko 2>/dev/null
  mount -t efivarfs efivarfs "$vars" || fail "cannot mount efivarfs"
  g=8be4df61-93ca-11d2-aa0d-00e098032b8c
  # efivarfs files start with 4 bytes of variable attributes and cannot seek (od -j reads wrong
  # bytes): read them whole through a pipe and drop what comes before.
  set -- $(cat "$vars/SecureBoot-$g" 2>/dev/null | od -A n -t u1 -v)
  [ "${5:-}" = 1 ] && secureboot=1
  for f in "$vars"/Boot[0-9A-F][0-9A-F][0-9A-F][0-9A-F]-$g; do
    [ -f "$f" ] || continue
    # EFI_LOAD_OPTION: u32 attributes, u16 FilePathListLength, then the UTF-16LE description up to
    # a NUL; its ASCII subset is shown.
    set -- $(cat "$f" | od -A n -t u1 -v)
    if [ $# -ge 10 ]; then shift 10; else set --; fi
    desc=""   # as \0ooo escapes for printf %b: no command per character
    while [ $# -ge 2 ]; do
      [ "$1" = 0 ] && [ "$2" = 0 ] && break
      if [ "$2" = 0 ] && [ "$1" -ge 32 ] && [ "$1" -lt 127 ]; then
        desc="$desc\\0$(( ($1 / 64) * 100 + ($1 / 8 % 8) * 10 + $1 % 8 ))"
      else
        desc="$desc?"
      fi
      shift 2
    done
    name=${f##*/}
    printf 'ASRIMG-EFI-ENTRY %s %b\n' "${name%%-*}" "$desc"
  done
  order=""
  set -- $(cat "$vars/BootOrder-$g" 2>/dev/null | od -A n -t u1 -v)
  if [ $# -ge 4 ]; then shift 4; else set --; fi
  while [ $# -ge 2 ]; do
    order="$order${order:+,}$(printf %02X%02X "$2" "$1")"   # one command per entry
    shift 2
  done
  echo "ASRIMG-EFI-BOOTORDER $order"
fi

mount -t ext4 -o ro "/dev/$root" /mnt || fail "cannot mount /dev/$root read-only as ext4"
set -- $(bytes "/dev/$root" $((1024 + 104)) 16)   # the ext4 superblock's s_uuid
[ $# -eq 16 ] || fail "cannot read the superblock of /dev/$root"
got="$1$2$3$4-$5$6-$7$8-$9${10}-${11}${12}${13}${14}${15}${16}"
[ "$got" = "$fsuuid" ] || fail "fsuuid mismatch on /dev/$root: $got, expected $fsuuid"
[ "$(cat /mnt/boot/asrimg-fixture 2>/dev/null)" = "$marker" ] || fail "marker /boot/asrimg-fixture differs on /dev/$root"
echo "ASRIMG-BOOT-OK fsuuid=$got firmware=$firmware secureboot=$secureboot"
finish
INIT
chmod 755 "$ird/init"
# Fixed times and owners, sorted names: the same inputs make the same initramfs.
find "$ird" -exec touch -h -d "$stamp" {} +
(cd "$ird" && find . -mindepth 1 | LC_ALL=C sort |
  cpio --quiet -o -H newc -R 0:0 --reproducible | gzip -n -1) >"$work/initrd.img"

# --- the root filesystem ---------------------------------------------------------------------
rootdir=$work/root
mkdir -p "$rootdir/boot/grub"
cp "$kit/boot/vmlinuz-$kver" "$rootdir/boot/vmlinuz-$kver"
cp "$work/initrd.img" "$rootdir/boot/initrd.img-$kver"
echo "$marker" >"$rootdir/boot/asrimg-fixture"
cat >"$rootdir/boot/grub/grub.cfg" <<EOF
serial --unit=0 --speed=115200
terminal_input serial
terminal_output serial
set timeout=0
set default=0
menuentry 'asrimg boot fixture' {
  linux /boot/vmlinuz-$kver root=PARTUUID=$root_guid ro console=ttyS0,115200 quiet panic=-1 asrimg.fsuuid=$fsuuid asrimg.marker=$marker
  initrd /boot/initrd.img-$kver
}
EOF
find "$rootdir" -exec touch -h -d "$stamp" {} +
E2FSPROGS_FAKE_TIME=1 mkfs.ext4 -q -F -U "$fsuuid" -E "offset=$((root_start * 512)),hash_seed=$fsuuid,nodiscard" \
  -L fixture-root -d "$rootdir" "$img" $((root_len / 2))k >"$work/mkfs.out" 2>&1 ||
  { cat "$work/mkfs.out" >&2; die "mkfs.ext4 failed"; }

# --- GRUB for BIOS: core.img in p1, boot.img in the MBR -------------------------------------------
stub="search --no-floppy --file --set=root /boot/asrimg-fixture
set prefix=(\$root)/boot/grub"
mkdir "$work/pc"
printf '%s\n' "$stub" >"$work/pc/early.cfg"
grub-mkimage -O i386-pc -d "$grubpc" -o "$work/pc/core.img" -p /boot/grub -c "$work/pc/early.cfg" \
  biosdisk part_gpt ext2 search search_fs_file configfile normal linux serial terminal test echo
printf '(hd0) %s\n' "$img" >"$work/pc/device.map"
# grub-bios-setup guesses a "root device" from the mount that holds -d DIR and fails unless GRUB
# can open it; a tmpfs whose source is the image itself makes that guess the image (hd0), so
# nothing of the host's disks is looked at. Mounted here, not in a mount namespace of its own: a
# new namespace copies every mount of the machine, and while it lives another test's umount of a
# FUSE or loop-mounted filesystem only detaches its own copy, so that filesystem is written back
# later, behind the test's back (fs_exfat saw an image without its files so).
mkdir "$work/pc/dir"
mount -t tmpfs "$img" "$work/pc/dir" || die "cannot mount a tmpfs on $work/pc/dir"
trap 'mountpoint -q "$work/pc/dir" && umount "$work/pc/dir"; rm -rf "$work"' EXIT
cp "$work/pc/core.img" "$grubpc/boot.img" "$work/pc/dir/"
setup_rc=0
"$grubpc/grub-bios-setup" -d "$work/pc/dir" -m "$work/pc/device.map" "$img" >"$work/pc/setup.out" 2>&1 || setup_rc=$?
umount "$work/pc/dir"
[ "$setup_rc" -eq 0 ] || { cat "$work/pc/setup.out" >&2; die "grub-bios-setup failed"; }

# --- the ESP: shim and Debian's signed GRUB, removable path and \EFI\debian -------------------
esp="$img@@$((esp_start * 512))"
mkfs.fat -F 16 -n ESP -i "$esp_volid" --offset "$esp_start" "$img" $((esp_len / 2)) >"$work/fat.out" 2>&1 ||
  { cat "$work/fat.out" >&2; die "mkfs.fat failed"; }
mkdir "$work/esp"
cp "$shim" "$work/esp/shimx64.efi"
cp "$grubefi" "$work/esp/grubx64.efi"
printf '%s\nconfigfile $prefix/grub.cfg\n' "$stub" >"$work/esp/grub.cfg"
touch -d "$stamp" "$work/esp"/*
export MTOOLS_SKIP_CHECK=1
mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/EFI/debian
mcopy -m -i "$esp" "$work/esp/shimx64.efi" ::/EFI/BOOT/BOOTX64.EFI
mcopy -m -i "$esp" "$work/esp/grubx64.efi" ::/EFI/BOOT/grubx64.efi
mcopy -m -i "$esp" "$work/esp/shimx64.efi" "$work/esp/grubx64.efi" "$work/esp/grub.cfg" ::/EFI/debian/

cat >"$work/env" <<EOF
DISK_SIZE_MIB=$size
DISK_GUID=$disk_guid
KERNEL_VERSION=$kver
BIOS_PARTNUM=1
BIOS_OFFSET=$((bios_start * 512))
BIOS_SIZE=$((bios_len * 512))
BIOS_PARTUUID=$bios_guid
ESP_PARTNUM=2
ESP_OFFSET=$((esp_start * 512))
ESP_SIZE=$((esp_len * 512))
ESP_PARTUUID=$esp_guid
ROOT_PARTNUM=3
ROOT_OFFSET=$((root_start * 512))
ROOT_SIZE=$((root_len * 512))
ROOT_PARTUUID=$root_guid
ROOT_FSUUID=$fsuuid
MARKER=$marker
EOF
mv "$img" "$out"
mv "$work/env" "$out.env"
