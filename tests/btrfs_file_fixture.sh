#!/bin/bash
# Builds real btrfs filesystems for test_fs_btrfs_file with mkfs.btrfs and the kernel (mounted
# from a loop device, filled, unmounted), the sources of their files beside them. Leaves in OUT:
#   fedora.img  Fedora's layout: subvolumes root and home at the top level (default subvolume 5),
#               mounted compress=zstd; /root/etc/lzo and /root/etc/zlib with those compressions
#               (btrfs property), small inline files, a larger file of regular extents with a
#               hole, a compressible file with a hole, a compressed file rewritten in its middle,
#               /root/big with 2000 entries, relative and absolute symbolic links and a loop,
#               a snapshot of root (snap) taken before
#               root/etc/fstab changed, a subvolume nested in home (home/nested/file), a
#               snapshot of home (home-snap) where nested is the empty placeholder a snapshot keeps.
#   src/        the same files as the top level holds them (src/root/etc/fstab...), for the
#               test to compare each with what the reader reads; no absolute links in it.
#   suse.img    openSUSE's: subvolume @ set as the default, @/var nested in it, @/etc/fstab,
#               made without no-holes, @/holes with a hole (source: suse-holes); snapper's
#               snapshot of @ at @/.snapshots/1/snapshot (.snapshots a subvolume, 1 a directory).
#   ids.txt     `btrfs subvolume list` of each image, for the test's subvolume listing check.
# Exit 77 (skip) without root, loop devices or mkfs.btrfs; 1 when the kernel did not compress
# with each algorithm (the test would then prove nothing about them).
set -euo pipefail
out=$1
[[ $(id -u) == 0 ]] && command -v mkfs.btrfs >/dev/null && command -v losetup >/dev/null &&
    grep -qw btrfs /proc/filesystems || exit 77
rm -rf "$out" && mkdir -p "$out/src"
mnt=$(mktemp -d)
loop=
cleanup() {
    mountpoint -q "$mnt" && umount "$mnt"
    [[ -n $loop ]] && losetup -d "$loop"
    rmdir "$mnt"
}
trap cleanup EXIT

attach() { # image -> loop device, mounted with options $2
    loop=$(losetup -f --show "$1") || exit 77
    mount -t btrfs -o "$2" "$loop" "$mnt"
}
detach() {
    umount "$mnt"
    losetup -d "$loop"
    loop=
}

# ---- the sources ----
s=$out/src
mkdir -p "$s/root/etc/lzo" "$s/root/etc/zlib" "$s/root/usr/lib" "$s/root/big" "$s/root/data" "$s/home/user"
text() { # lines of compressible text, $1 of them, seeded by $2
    awk -v n="$1" -v s="$2" 'BEGIN { for (i = 0; i < n; i++) printf "UUID=%08x-%d /mnt/%d btrfs subvol=root,compress=zstd:1 0 0\n", s * 7919 + i, i % 13, i }'
}
printf 'UUID=1234 / btrfs subvol=root,compress=zstd:1 0 0\nUUID=1234 /home btrfs subvol=home 0 0\n' >"$s/root/etc/fstab"
printf 'NAME="Fedora Linux"\nID=fedora\n' >"$s/root/usr/lib/os-release"
ln -s ../usr/lib/os-release "$s/root/etc/os-release" # relative, through ..
ln -s fstab "$s/root/etc/fstab.link"
text 3000 1 >"$s/root/etc/zstd.txt"   # ~200 KiB: compressed extents of 128 KiB
text 3000 2 >"$s/root/etc/lzo/a.txt"
text 20 3 >"$s/root/etc/lzo/small.txt" # inline, compressed
text 3000 4 >"$s/root/etc/zlib/a.txt"
text 20 5 >"$s/root/etc/zlib/small.txt"
printf 'x' >"$s/root/etc/one"
: >"$s/root/etc/empty"
# Regular extents (noise: stored uncompressed) around a 1 MiB hole, and compressible text after
# a hole at the start.
head -c 300000 /dev/urandom >"$s/root/data/holes.bin"
truncate -s $((300000 + 1048576)) "$s/root/data/holes.bin"
head -c 70000 /dev/urandom >>"$s/root/data/holes.bin"
truncate -s 524288 "$s/root/data/text_hole.txt"
text 2000 6 >>"$s/root/data/text_hole.txt"
truncate -s 10000 "$s/root/data/sparse_end" # size only: no extent at all
for ((i = 0; i < 2000; i++)); do printf 'entry %d\n' "$i" >"$s/root/big/file-$i"; done
text 50 7 >"$s/home/user/notes"

# ---- fedora.img ----
truncate -s 256M "$out/fedora.img"
mkfs.btrfs -q -f -L fedora "$out/fedora.img" 2>>"$out/mkfs.log"
attach "$out/fedora.img" compress=zstd
btrfs -q subvolume create "$mnt/root"
btrfs -q subvolume create "$mnt/home"
mkdir -p "$mnt/root/etc/lzo" "$mnt/root/etc/zlib"
btrfs property set "$mnt/root/etc/lzo" compression lzo
btrfs property set "$mnt/root/etc/zlib" compression zlib
cp -a --sparse=always "$s/root/." "$mnt/root/"
cp -a "$s/home/." "$mnt/home/"
ln -s /etc/fstab "$mnt/root/etc/fstab.abs" # absolute: from the root of the subvolume opened
# A compressed extent rewritten in its middle: the rest is read through items that take part of
# it, at an offset into its decompressed bytes.
text 3000 8 >"$s/root/data/rewritten.txt"
cp "$s/root/data/rewritten.txt" "$mnt/root/data/rewritten.txt"
sync
for f in "$s/root/data/rewritten.txt" "$mnt/root/data/rewritten.txt"; do
    printf 'REWRITTEN' | dd of="$f" bs=1 seek=70000 conv=notrunc status=none
done
ln -s loop.b "$mnt/root/etc/loop.a"
ln -s loop.a "$mnt/root/etc/loop.b"
btrfs -q subvolume create "$mnt/home/nested"
echo 'in nested' >"$mnt/home/nested/file"
sync
btrfs -q subvolume snapshot "$mnt/root" "$mnt/snap"
cp -a "$s/root" "$s/snap"
btrfs -q subvolume snapshot "$mnt/home" "$mnt/home-snap" # nested: an empty placeholder there
cp -a "$s/home" "$s/home-snap"
echo '# changed after the snapshot' >>"$s/root/etc/fstab"
echo '# changed after the snapshot' >>"$mnt/root/etc/fstab"
mkdir "$s/home/nested"
echo 'in nested' >"$s/home/nested/file"
sync
btrfs subvolume list "$mnt" | sed 's/^/fedora /' >"$out/ids.txt"
detach
dump=$(btrfs inspect-internal dump-tree -t 256 "$out/fedora.img")
for c in 1 2 3; do
    grep -q "compression $c" <<<"$dump" || { echo "btrfs_fixture: no extent compressed with type $c" >&2; exit 1; }
done

# ---- suse.img ----
truncate -s 128M "$out/suse.img"
mkfs.btrfs -q -f -L suse -O ^no-holes "$out/suse.img" 2>>"$out/mkfs.log"
attach "$out/suse.img" defaults
btrfs -q subvolume create "$mnt/@"
btrfs -q subvolume create "$mnt/@/var"
mkdir "$mnt/@/etc"
echo 'UUID=5678 / btrfs defaults 0 0' >"$mnt/@/etc/fstab"
echo 'var data' >"$mnt/@/var/log"
# Without no-holes a hole is an extent item of its own (disk_bytenr 0).
head -c 8192 /dev/urandom >"$out/suse-holes"
truncate -s 1000000 "$out/suse-holes"
head -c 5000 /dev/urandom >>"$out/suse-holes"
cp --sparse=always "$out/suse-holes" "$mnt/@/holes"
btrfs subvolume set-default "$mnt/@"
# snapper's layout: a snapshot in a directory of a subvolume nested in @.
btrfs -q subvolume create "$mnt/@/.snapshots"
mkdir "$mnt/@/.snapshots/1"
btrfs -q subvolume snapshot "$mnt/@" "$mnt/@/.snapshots/1/snapshot"
sync
btrfs subvolume list "$mnt" | sed 's/^/suse /' >>"$out/ids.txt"
detach
