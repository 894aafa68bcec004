#!/usr/bin/env bash
# Writes fuzz/corpus/btrfs/ (run by hand, output committed): filesystems mkfs.btrfs makes on
# 256 MiB sparse files with 4 KiB nodes (no root needed: files come from --rootdir), each turned
# into fuzz_btrfs's input: the count of its non-zero 4 KiB blocks (at most 63, the superblock
# first), their places (16-bit, in 4 KiB units), then the blocks. DUP and single metadata, with
# and without the free-space tree, mixed block groups, both devices of a RAID1 pair, the device
# of a pair that lacks the chunk tree, and xxhash64 sums (refused).
set -euo pipefail
cd "$(dirname "$0")/.."
out=fuzz/corpus/btrfs
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out" "$tmp/root/etc" "$tmp/root/boot/grub2"
printf 'UUID=3f1e2d4c-5b6a-4798-8a9b-0c1d2e3f4a5b / btrfs subvol=root,compress=zstd:1 0 0\n' > "$tmp/root/etc/fstab"
printf 'NAME="Fedora Linux"\nID=fedora\n' > "$tmp/root/etc/os-release"
head -c 6000 /dev/urandom > "$tmp/root/boot/vmlinuz-6.5.6"
ln -s vmlinuz-6.5.6 "$tmp/root/boot/vmlinuz"
seq 1 3000 > "$tmp/root/boot/grub2/grub.cfg"

pack() { # device file, seed name
  python3 - "$1" "$out/$2" <<'PY'
import struct, sys
src, dst = sys.argv[1], sys.argv[2]
blocks = []
with open(src, "rb") as f:
    i = 0
    while True:
        b = f.read(4096)
        if not b:
            break
        if any(b):
            blocks.append((i, b))
        i += 1
blocks.sort(key=lambda x: x[0] != 16)  # the superblock (64 KiB) first
blocks = blocks[:63]
with open(dst, "wb") as o:
    o.write(bytes([len(blocks)]))
    for i, _ in blocks:
        o.write(struct.pack("<H", i))
    for _, b in blocks:
        o.write(b)
PY
}
make() { # seed name, number of devices, mkfs options...
  local name=$1 n=$2 files=() i
  shift 2
  for ((i = 0; i < n; i++)); do truncate -s 256M "$tmp/d$i"; files+=("$tmp/d$i"); done
  mkfs.btrfs -q -f "$@" "${files[@]}" >/dev/null 2>&1
  if [ "$n" -eq 1 ]; then pack "$tmp/d0" "$name"; else
    for ((i = 0; i < n; i++)); do pack "$tmp/d$i" "$name-dev$((i + 1))"; done
  fi
  rm -f "${files[@]}"
}
make dup-fst 1 -n 4096 --rootdir "$tmp/root"
make single-extent-tree 1 -n 4096 -m single -R ^free-space-tree --rootdir "$tmp/root"
make mixed 1 -M --rootdir "$tmp/root"
make raid1 2 -n 4096 -d raid1 -m raid1
make single-pair 2 -n 4096 -d raid0 -m single
make xxhash 1 -n 4096 --csum xxhash
# Only its superblock matters: the sums are refused before anything else is read.
python3 - "$out/xxhash" <<'PY'
import sys
p = sys.argv[1]
b = open(p, "rb").read()
open(p, "wb").write(bytes([1]) + b[1:3] + b[1 + 2 * b[0]:1 + 2 * b[0] + 4096])
PY
