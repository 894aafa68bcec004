#!/usr/bin/env bash
# Writes the whole-disk seeds of fuzz/corpus/layout/ with the real tools (mkfs.vfat, mtools,
# sfdisk; no root): 128 KiB disks whose sector 0 is a FAT12 boot sector, one for each way the
# layout reader can read such a disk (engine/disk/disk.c, "a filesystem on the whole disk"):
#   whole-fat12           a FAT12 on the whole disk, MBR entries all empty (mkfs.vfat)
#   whole-fat12-boot-text the same with Windows XP's boot messages where the entries would be
#   mbr-bpb-fat12         an MBR whose sector 0 also carries the BPB, a FAT12 in partition 1
#   mbr-bpb-empty         the same table with nothing in its partitions
# Usage: bash fuzz/layout_seeds.sh fuzz/corpus/layout
set -euo pipefail
out=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export MTOOLS_SKIP_CHECK=1
echo 'a file on a whole-disk FAT12 volume' >"$tmp/note.txt"

whole=$tmp/whole-fat12.img
truncate -s 128K "$whole"
mkfs.vfat -F 12 --invariant -n WHOLEDISK "$whole" >/dev/null
mcopy -i "$whole" "$tmp/note.txt" ::/
mmd -i "$whole" ::/dir
mcopy -i "$whole" /etc/os-release ::/dir/
fsck.vfat -n "$whole" >/dev/null

text=$tmp/whole-fat12-boot-text.img
cp "$whole" "$text"
printf '\r\nRemove disks or other media.\377\r\nDisk error\377\r\nPress any key to restart\r\n' |
  dd of="$text" bs=1 seek=$((0x1ac)) conv=notrunc status=none

for name in mbr-bpb-fat12 mbr-bpb-empty; do
  disk=$tmp/$name.img
  truncate -s 128K "$disk"
  printf 'label: dos\nlabel-id: 0x5eed0001\nstart=32, size=128, type=1\nstart=160, type=83\n' | sfdisk -q "$disk"
  if [ $name = mbr-bpb-fat12 ]; then
    mkfs.vfat -F 12 --invariant --offset 32 "$disk" 64 >/dev/null 2>&1
    mcopy -i "$disk@@16K" "$tmp/note.txt" ::/
  fi
  dd if="$whole" of="$disk" bs=440 count=1 conv=notrunc status=none # the BPB, not the table
done
cp "$whole" "$text" "$tmp"/mbr-bpb-*.img "$out"/
