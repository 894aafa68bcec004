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
cutting it.

The damaged seeds (DAMAGED) are made the same way and then hurt with debugfs as e2fsprogs' test
images are: block bitmaps calling free what a file, a directory, a symlink or indirect blocks use
(fs_ext_refs.c must still find them), an ext2 not cleanly unmounted, a block bitmap failing its
checksum, and a journal holding a committed transaction to replay (fs_ext_journal.c). The journal
seed needs a journal of 1024 blocks and so holds 3 MiB (it exceeds run.sh's -max_len: libFuzzer
mutates its start only, the replay test reads it all). `--damaged-only` writes only those."""
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


# name: (tree, mkfs program, options, volume size, damage: shell with $IMG, or a function)
DAMAGED = {
    "ext4-1k-freed-blocks": ("full", "mkfs.ext4", "-b 1024 -N 96 -I 256", "256K",
                             "freeb() { printf 'freeb %s\\n' \"$@\" > $IMG.cmd; debugfs -w -f $IMG.cmd $IMG; };"
                             "freeb $(debugfs -R 'blocks /many' $IMG) $(debugfs -R 'blocks /long-link' $IMG)"
                             " $(debugfs -R 'blocks /boot/vmlinuz-6.1.0-asr' $IMG)"),
    "ext2-1k-unclean-freed": ("full", "mkfs.ext2", "-b 1024 -N 96 -I 128", "256K",
                              "freeb() { printf 'freeb %s\\n' \"$@\" > $IMG.cmd; debugfs -w -f $IMG.cmd $IMG; };"
                              "freeb $(debugfs -R 'blocks /many' $IMG) $(debugfs -R 'blocks /etc' $IMG);"
                              "debugfs -w -R 'ssv state 0' $IMG"),
    "ext4-1k-bitmap-csum": ("full", "mkfs.ext4", "-b 1024 -N 96 -I 256", "256K",
                            "b=$(dumpe2fs $IMG | sed -n 's/^  Block bitmap at \\([0-9]*\\).*/\\1/p' | head -1);"
                            "printf '\\0\\0' | dd of=$IMG bs=1 seek=$((b * 1024 + 1)) conv=notrunc"),
    "ext4-1k-journal-replay": ("full", "mkfs.ext4", "-b 1024 -N 96 -I 256", "3M", "journal"),
}


def journal_transaction(img, tmp):
    """/new's data in place and the metadata that makes it /new's only in a committed journal
    transaction, as a crash leaves ordered mode."""
    after = img + ".after"
    sh(f"cp {img} {after}; head -c 20K /dev/urandom > {tmp}/new; debugfs -w -R 'write {tmp}/new /new' {after}")
    a, b, bs = bytearray(open(img, "rb").read()), open(after, "rb").read(), 1024
    data = set(int(x) for x in subprocess.run(f"debugfs -R 'blocks /new' {after} 2>/dev/null", shell=True,
                                              capture_output=True, text=True, check=True).stdout.split())
    meta = []
    for blk in range(len(a) // bs):
        if a[blk * bs:(blk + 1) * bs] != b[blk * bs:(blk + 1) * bs]:
            if blk in data:
                a[blk * bs:(blk + 1) * bs] = b[blk * bs:(blk + 1) * bs]
            else:
                meta.append(blk)
    open(img, "wb").write(a)
    open(f"{tmp}/meta", "wb").write(b"".join(b[m * bs:(m + 1) * bs] for m in meta))
    open(f"{tmp}/jcmd", "w").write(f"jo -c -v 3\njw -b {','.join(map(str, meta))} {tmp}/meta\njc\n")
    sh(f"debugfs -w -f {tmp}/jcmd {img}")
    os.remove(after)


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
    damaged_only = "--damaged-only" in sys.argv[1:]
    args = [a for a in sys.argv[1:] if a != "--damaged-only"]
    if len(args) != 1:
        sys.exit(__doc__)
    out = args[0]
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("full", "kernel"):
            make_tree(os.path.join(tmp, kind), kind == "full")
        for name, (kind, mkfs, opts, size) in ({} if damaged_only else SEEDS).items():
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
        for name, (kind, mkfs, opts, size, damage) in DAMAGED.items():
            tree = os.path.join(tmp, kind)
            img = os.path.join(tmp, name)
            sh(f"truncate -s {size} {img}")
            sh(f"{mkfs} -q -F -U {UUID} -E hash_seed={UUID} -L {name[:16]} {opts} -d {tree} {img} >/dev/null 2>&1")
            subprocess.run(f"e2fsck -fyD {img} >/dev/null 2>&1", shell=True)
            if damage == "journal":
                journal_transaction(img, tmp)
            else:
                sh(f"IMG={img}; {{ {damage}; }} >/dev/null 2>&1")
            data = open(img, "rb").read()
            open(os.path.join(out, name + ".img"), "wb").write(data.rstrip(b"\0"))


if __name__ == "__main__":
    main()
