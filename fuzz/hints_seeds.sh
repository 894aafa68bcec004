#!/usr/bin/env bash
# Writes fuzz/corpus/hints/ (run by hand, output committed): re-backup hints files written by
# asrimg itself (ASRIMG: the program, build/asrimg by default) backing up small disks into a new
# directory store: one volume (an unpartitioned ext4), and two (a GPT with FAT12 and ext4), at
# 4 KiB average chunks so that they stay small; and one with a patched region (a byte changed
# behind the filesystem's back, backed up again at 64 KiB chunks). Needs root (mkfs, sfdisk, debugfs).
set -euo pipefail
cd "$(dirname "$0")/.."
asrimg=${ASRIMG:-$PWD/build/asrimg}
out=fuzz/corpus/hints
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out" "$tmp/c"
export ASRIMG_STORE_KEY_FILE=$tmp/key ASRIMG_CACHE_DIR=$tmp/cache TMPDIR=$tmp
head -c 60000 /dev/urandom >"$tmp/c/random.bin"
seq 1 20000 >"$tmp/c/numbers.txt"
"$asrimg" store init "$tmp/store" >/dev/null
seed() { # NAME DISK
  rm -rf "$tmp/cache"
  "$asrimg" backup "$2" --volumes all -o "$tmp/store" --avg-chunk 4K >/dev/null 2>&1
  cp "$tmp"/cache/hints-*.bin "$out/$1"
}
truncate -s 8M "$tmp/one.img" && mkfs.ext4 -q -F -b 1024 -d "$tmp/c" "$tmp/one.img"
seed one-volume.bin "$tmp/one.img"
truncate -s 24M "$tmp/two.img"
printf 'label: gpt\nstart=2048, size=16384, type=uefi\nsize=24576, type=linux\n' | sfdisk -q "$tmp/two.img"
truncate -s 8M "$tmp/esp" && mkfs.vfat -F 12 "$tmp/esp" >/dev/null && MTOOLS_SKIP_CHECK=1 mcopy -i "$tmp/esp" "$tmp/c/random.bin" ::/
dd if="$tmp/esp" of="$tmp/two.img" bs=1M seek=1 conv=notrunc status=none
truncate -s 12M "$tmp/root" && mkfs.ext4 -q -F -b 1024 -d "$tmp/c" "$tmp/root"
dd if="$tmp/root" of="$tmp/two.img" bs=1M seek=9 conv=notrunc status=none
seed two-volumes.bin "$tmp/two.img"
# A patched region: backed up, one byte of random.bin changed on the disk, backed up again.
rm -rf "$tmp/cache"
truncate -s 8M "$tmp/three.img" && mkfs.ext4 -q -F -b 1024 -d "$tmp/c" "$tmp/three.img"
"$asrimg" backup "$tmp/three.img" --volumes all -o "$tmp/store" --avg-chunk 64K >/dev/null 2>&1
blk=$(debugfs -R "bmap /random.bin 30" "$tmp/three.img" 2>/dev/null)
printf 'Z' | dd of="$tmp/three.img" bs=1 seek=$((blk * 1024 + 10)) conv=notrunc status=none
"$asrimg" backup "$tmp/three.img" --volumes all -o "$tmp/store" --avg-chunk 64K --json >"$tmp/p.json" 2>/dev/null
python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["store"]["patched_chunks"] == 0)' "$tmp/p.json"
cp "$tmp"/cache/hints-*.bin "$out/patched.bin"
