#!/usr/bin/env python3
"""Writes the seeds of fuzz/corpus/ext/ with Debian's mke2fs and e2fsck (no root, no mount).
Usage: python3 fuzz/ext_seeds.py fuzz/corpus/ext

Each seed is a small ext2 or ext4 volume made by mke2fs -d from a tree holding every path the
critical-volume check looks for (/boot/grub, /boot/grub2 as a symlink, /loader, /etc/fstab,
/etc/os-release, /boot/vmlinuz-*, a /vmlinuz symlink), a directory of 40 long names that
e2fsck -D turns into an htree index, and a long symlink. One seed per layout the parser must
handle: 1 KiB and 4 KiB blocks, with and without metadata_csum, inline_data, bigalloc, meta_bg.
The check stops at the first path it finds, so two more seeds hold only /boot/vmlinuz-* and the
big directory: every lookup misses and the check ends scanning /boot.
Everything lies in the first 256 KiB (run.sh's -max_len) and trailing zeros are cut: the
harness zero-extends the input, so the volume reads back the same. The UUID and directory hash
seed are fixed; inode times and checksums still differ from run to run (mke2fs -d takes each
inode's change time from the clock). The script checks each volume with e2fsck -fn before
cutting it."""
import os
import subprocess
import sys
import tempfile

LIMIT = 256 << 10
UUID = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"

# name: (tree, mkfs program, options, volume size)
SEEDS = {
    "ext2-1k": ("full", "mkfs.ext2", "-b 1024 -N 96 -I 128", "256K"),
    "ext4-1k-nocsum": ("full", "mkfs.ext4", "-b 1024 -N 96 -O ^metadata_csum", "256K"),
    "ext4-1k-csum": ("full", "mkfs.ext4", "-b 1024 -N 96", "256K"),
    "ext4-4k-csum": ("full", "mkfs.ext4", "-b 4096 -N 96", "512K"),
    "ext4-1k-inline": ("full", "mkfs.ext4", "-b 1024 -N 96 -O inline_data,^metadata_csum", "256K"),
    "ext4-1k-bigalloc": ("full", "mkfs.ext4", "-b 1024 -N 96 -O bigalloc -C 4096", "256K"),
    "ext4-1k-meta_bg": ("full", "mkfs.ext4", "-b 1024 -N 96 -g 256 -O meta_bg,^resize_inode,^metadata_csum", "256K"),
    "ext2-1k-kernel": ("kernel", "mkfs.ext2", "-b 1024 -N 96 -I 128", "256K"),
    "ext4-1k-kernel": ("kernel", "mkfs.ext4", "-b 1024 -N 96 -O ^metadata_csum", "256K"),
}


def sh(cmd):
    subprocess.run(cmd, shell=True, check=True)


def make_tree(tree, full):
    sh(f"""set -e; mkdir -p {tree}; cd {tree}; mkdir -p boot many
        head -c 3000 /dev/zero | tr '\\0' k > boot/vmlinuz-6.1.0-asr
        for i in $(seq 1 40); do : > many/an-empty-entry-with-a-rather-long-name-$i; done""")
    if full:
        sh(f"""set -e; cd {tree}; mkdir -p boot/grub etc loader/entries
            echo 'set timeout=5' > boot/grub/grub.cfg
            ln -s boot/vmlinuz-6.1.0-asr vmlinuz; ln -s grub boot/grub2
            echo 'UUID={UUID} / ext4 defaults 0 1' > etc/fstab; echo 'ID=debian' > etc/os-release
            : > loader/entries/debian.conf
            ln -s "$(printf 'a-long-symlink-target-%.0s' $(seq 1 5))" long-link""")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("full", "kernel"):
            make_tree(os.path.join(tmp, kind), kind == "full")
        for name, (kind, mkfs, opts, size) in SEEDS.items():
            tree = os.path.join(tmp, kind)
            img = os.path.join(tmp, name)
            sh(f"truncate -s {size} {img}")
            sh(f"{mkfs} -q -F -U {UUID} -E hash_seed={UUID} -L {name} {opts} -d {tree} {img} >/dev/null 2>&1")
            # -D indexes /many (an htree); exit status 1 only says it changed something.
            subprocess.run(f"e2fsck -fyD {img} >/dev/null 2>&1", shell=True)
            sh(f"e2fsck -fn {img} >/dev/null 2>&1")
            data = open(img, "rb").read()
            if any(data[LIMIT:]):
                sys.exit(f"{name}: data past the first {LIMIT} bytes")
            open(os.path.join(out, name + ".img"), "wb").write(data[:LIMIT].rstrip(b"\0"))


if __name__ == "__main__":
    main()
