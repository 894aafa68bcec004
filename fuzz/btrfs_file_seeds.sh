#!/bin/bash
# Writes the seeds of fuzz/corpus/btrfs_file/ (run by hand as root, output committed): small btrfs
# filesystems made by mkfs.btrfs with 4 KiB tree blocks and filled through the kernel on a loop
# device, Fedora's layout (subvolumes root and home; /root/etc/fstab inline and zstd-compressed,
# /root/etc/lzo.txt and /root/etc/zlib.txt compressed in extents, /root/data/reg a regular extent
# after a hole, /root/etc/os-release a symbolic link through ..), one with mixed block groups
# and one with single metadata (DUP would double a seed past run.sh's -max_len). Each seed is
# the image's non-zero 4 KiB blocks as fuzz_btrfs_file.c reads them: a 4-byte little-endian
# block number, then the block, for each.
# Usage: bash fuzz/btrfs_file_seeds.sh fuzz/corpus/btrfs_file
set -euo pipefail
out=$1
mkdir -p "$out"
work=$(mktemp -d)
loop=
cleanup() {
    mountpoint -q "$work/mnt" && umount "$work/mnt"
    [[ -n $loop ]] && losetup -d "$loop"
    rm -rf "$work"
}
trap cleanup EXIT
mkdir "$work/mnt"

seed() { # name, size, mkfs options...
    local name=$1 size=$2
    shift 2
    truncate -s "$size" "$work/$name.img"
    mkfs.btrfs -q -f -n 4096 -s 4096 "$@" "$work/$name.img" >/dev/null 2>&1
    loop=$(losetup -f --show "$work/$name.img")
    mount -t btrfs -o compress=zstd "$loop" "$work/mnt"
    local m=$work/mnt
    btrfs -q subvolume create "$m/root"
    btrfs -q subvolume create "$m/home"
    mkdir -p "$m/root/etc" "$m/root/usr/lib" "$m/root/data"
    printf 'UUID=1234 / btrfs subvol=root,compress=zstd:1 0 0\nUUID=1234 /home btrfs subvol=home 0 0\n' >"$m/root/etc/fstab"
    echo 'ID=fedora' >"$m/root/usr/lib/os-release"
    ln -s ../usr/lib/os-release "$m/root/etc/os-release"
    seq 1 1000 | sed 's/^/line /' >"$work/text"
    cp "$work/text" "$m/root/etc/zstd.txt"
    touch "$m/root/etc/lzo.txt" "$m/root/etc/zlib.txt"
    btrfs property set "$m/root/etc/lzo.txt" compression lzo
    btrfs property set "$m/root/etc/zlib.txt" compression zlib
    cat "$work/text" >>"$m/root/etc/lzo.txt"
    cat "$work/text" >>"$m/root/etc/zlib.txt"
    truncate -s 8192 "$m/root/data/reg"
    head -c 5000 /dev/urandom >>"$m/root/data/reg"
    umount "$m"
    losetup -d "$loop"
    loop=
    python3 - "$work/$name.img" "$out/$name" <<'PY'
import struct, sys
src, dst = sys.argv[1], sys.argv[2]
with open(src, 'rb') as f, open(dst, 'wb') as o:
    n = 0
    while True:
        b = f.read(4096)
        if not b:
            break
        if any(b):
            o.write(struct.pack('<I', n) + b)
        n += 1
PY
    echo "$name: $(stat -c %s "$out/$name") bytes" >&2
}

seed mixed 32M --mixed
seed single 128M -m single -d single
