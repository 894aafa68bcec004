#!/usr/bin/env bash
# The main job on a sample disk it makes itself: a GPT disk image with a FAT32 EFI System
# partition and an ext4 root holding real files, its layout shown, backed up (used clusters only,
# deduplicated, compressed), then the image shown and verified, and the machine measured.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
scripts/deps.sh test   # mkfs tools for the sample disk
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)" --target asrimg >/dev/null

work=${ASRIMG_DEMO_DIR:-build/demo}
rm -rf "$work" && mkdir -p "$work/root"
disk=$work/sample-disk.img
truncate -s 256M "$disk"
sfdisk --quiet "$disk" <<'PT'
label: gpt
start=2048, size=64MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI System"
start=133120, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="root"
PT
# Populate the root from real system files so the data compresses like a real disk.
cp -a /usr/share/doc "$work/root/doc" 2>/dev/null || true
mkdir -p "$work/root/etc" && cp /etc/os-release "$work/root/etc/"
head -c 16M /dev/urandom > "$work/root/random.bin"
cp "$work/root/random.bin" "$work/root/random-copy.bin"
mkfs.ext4 -q -F -d "$work/root" -E offset=$((133120 * 512)) "$disk" $(( (256 * 1024 - 133120 / 2 - 1024) ))k
mkfs.vfat -F 32 --offset 2048 "$disk" $((64 * 1024)) >/dev/null 2>&1
echo "sample disk: $disk"
sfdisk -l "$disk" | sed 's/^/  /'

build/asrimg layout "$disk"
build/asrimg backup "$disk" -o "$work/sample.asrimg" --force
build/asrimg info "$work/sample.asrimg"
build/asrimg verify "$work/sample.asrimg"
build/asrimg bench "$disk"

# Bare-metal restore onto a replacement disk 1.5x larger, full of garbage, then the checks a
# person would make: the filesystems' own checkers, the GPT, and a comparison with the image.
target=$work/replacement-disk.img
head -c 384M /dev/urandom > "$target"
build/asrimg restore "$work/sample.asrimg" --to "$target" --yes --verify
sgdisk -v "$target" | sed -n '/No problems\|Problem/p'
root_loop=$(losetup -f --show -r -o $((133120 * 512)) --sizelimit $((389120 * 512)) "$target")
esp_loop=$(losetup -f --show -r -o $((2048 * 512)) --sizelimit $((131072 * 512)) "$target")
trap 'losetup -d "$root_loop" "$esp_loop" 2>/dev/null' EXIT
e2fsck -fn "$root_loop" >/dev/null && echo "e2fsck: the restored root is clean"
fsck.vfat -n "$esp_loop" >/dev/null && echo "fsck.vfat: the restored ESP is clean"
build/asrimg verify "$work/sample.asrimg" --against "$target"
