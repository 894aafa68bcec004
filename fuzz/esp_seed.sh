#!/usr/bin/env bash
# Writes fuzz/corpus/fat/fat16-esp.img: the first 256 KiB of a FAT16 EFI system partition made
# with mkfs.vfat and filled with mtools (no root) as Debian's grub and systemd-boot fill one:
# /EFI/debian/grub.cfg, /loader/entries with a long and a mixed-case name, /loader/loader.conf.
# The paths fuzz_fat.c reads and lists, so the fuzzer starts inside the small-file reader's long
# names and nested directories (engine/fs/fs_fat_file.c). Usage: bash fuzz/esp_seed.sh fuzz/corpus/fat
set -euo pipefail
out=$(cd "$1" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
export MTOOLS_SKIP_CHECK=1
printf 'search --no-floppy --fs-uuid --set=dev 1234-ABCD\nset prefix=($dev)/boot/grub\nconfigfile $prefix/grub.cfg\n' > grub.cfg
printf 'title Arch Linux\nlinux /vmlinuz-linux\ninitrd /initramfs-linux.img\noptions root=UUID=1234 rw\n' > 'Arch Linux.conf'
printf 'title Fallback\nlinux /vmlinuz-linux\noptions root=LABEL=root ro quiet\n' > MixedCase-Entry.Conf
printf 'default arch.conf\ntimeout 4\n' > loader.conf
mkfs.vfat -F 16 -s 4 -n SEED -i 8046E5F0 -C esp.img 32768 >/dev/null
mmd -i esp.img ::/EFI ::/EFI/debian ::/loader ::/loader/entries
mcopy -i esp.img grub.cfg ::/EFI/debian/
mcopy -i esp.img 'Arch Linux.conf' MixedCase-Entry.Conf ::/loader/entries/
mcopy -i esp.img loader.conf ::/loader/
fsck.vfat -n esp.img >/dev/null
head -c 262144 esp.img > "$out/fat16-esp.img"
