#!/usr/bin/env bash
# Writes fuzz/corpus/md/ (run by hand, output committed): md members made by tests/md_gen.py
# (checked against mdadm --examine by test_md). Members with their superblock at the start
# (1.1, 1.2) are cut to their first 16 KiB (superblock, bitmap, bad-block log), which fuzz_md
# zero-extends; members with it at the end (1.0, 0.90) are kept whole and small.
set -euo pipefail
cd "$(dirname "$0")/.."
out=fuzz/corpus/md
gen=tests/md_gen.py
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
head16() { python3 "$gen" "$tmp/m" "${@:2}" && head -c 16384 "$tmp/m" > "$out/$1"; }
whole() { python3 "$gen" "$out/$1" "${@:2}"; }
head16 v1.2-raid1-bitmap.img --size 67108864 --metadata 1.2 --level 1 --role 1 --bitmap
head16 v1.1-raid0.img --size 67108864 --metadata 1.1 --level 0 --role 0 --chunk-kib 128
head16 v1.2-raid10-near2.img --size 67108864 --metadata 1.2 --level 10 --layout 258 --raid-disks 3 --role 2
head16 v1.2-raid5-spare.img --size 67108864 --metadata 1.2 --level 5 --layout 2 --raid-disks 4 --role spare
whole v1.0-raid1-bitmap.img --size 65536 --metadata 1.0 --level 1 --role 0 --bitmap
whole v0.90-raid1-bitmap.img --size 196608 --metadata 0.90 --level 1 --role 1 --bitmap
whole v0.90-raid0.img --size 262144 --metadata 0.90 --level 0 --role 1 --chunk-kib 64
