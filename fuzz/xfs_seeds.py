#!/usr/bin/env python3
"""Writes the seeds of fuzz/corpus/xfs/ with mkfs.xfs -p (no root, no mount).
Usage: python3 fuzz/xfs_seeds.py fuzz/corpus/xfs

XFS is at least 300 MiB with its AG headers spread over it (one AG every 150 MiB here) and the
log and further inodes in the middle, so a seed is not the start of a volume but the volume's
non-zero 512-byte sectors as records, which fuzz_xfs.c writes back into a sparse 512 MiB window:
a 4-byte big-endian sector number, a 2-byte big-endian length in bytes, then that many bytes
(neighbouring runs closer than 1 KiB joined). A freshly made filesystem is some 110 KiB of them.
Each holds a root tree like a RHEL one: /etc/fstab, /etc/os-release as a relative symbolic link,
/boot/vmlinuz over several blocks, a directory of 20 empty files
(one directory block on 4 KiB blocks) and one of 150 (leaf form). One seed per layout the readers must handle:
v5 with 1 KiB and 4 KiB blocks, v4 (no CRCs: mutations reach past the checksums) with 512-byte
blocks and with 1 KiB blocks without file types in directory entries. xfs_repair -n checks each
filesystem before it is cut. (No symbolic link long enough to need a block: mkfs.xfs 6.1 -p writes
those with a header xfs_repair calls bad on v5; test_fs_file makes them through the kernel.)"""
import os
import subprocess
import sys
import tempfile

SEEDS = {
    "v5-1k": "-b size=1024 -d agcount=2",
    "v5-4k": "-d agcount=2",
    "v4-512": "-m crc=0 -b size=512 -d agcount=2",
    "v4-1k-noftype": "-m crc=0 -n ftype=0 -b size=1024 -d agcount=2",
}
UUID = "5eed5eed-0000-4000-8000-000000000001"
JOIN = 1024


def tree(root):
    os.makedirs(f"{root}/etc")
    os.makedirs(f"{root}/usr/lib")
    os.makedirs(f"{root}/boot")
    with open(f"{root}/etc/fstab", "w") as f:
        f.write(f"UUID={UUID} / xfs defaults 0 0\n")
    with open(f"{root}/usr/lib/os-release", "w") as f:
        f.write('NAME="Red Hat Enterprise Linux"\nID="rhel"\n')
    with open(f"{root}/boot/vmlinuz", "wb") as f:
        f.write(bytes((i * 7) & 0xFF for i in range(5000)))
    lines = ["/dev/null", "0 0", "d--755 0 0",
             "etc d--755 0 0", f"fstab ---644 0 0 {root}/etc/fstab",
             "os-release l--777 0 0 ../usr/lib/os-release", "$",
             "usr d--755 0 0", "lib d--755 0 0", f"os-release ---644 0 0 {root}/usr/lib/os-release", "$", "$",
             "boot d--755 0 0", f"vmlinuz ---644 0 0 {root}/boot/vmlinuz", "$"]
    open(f"{root}/empty", "w").close()
    for name, n in (("d20", 20), ("d150", 150)):
        lines.append(f"{name} d--755 0 0")
        lines += [f"entry-with-a-long-name-{i} ---644 0 0 {root}/empty" for i in range(n)]
        lines.append("$")
    lines.append("$")
    with open(f"{root}.proto", "w") as f:
        f.write("\n".join(lines) + "\n")


def records(img):
    """The non-zero sectors of img as (offset, bytes) runs."""
    runs = []
    with open(img, "rb") as f:
        off = 0
        while True:
            block = f.read(1 << 20)
            if not block:
                break
            for i in range(0, len(block), 512):
                s = block[i:i + 512]
                if s.count(0) == len(s):
                    continue
                at = off + i
                if runs and at - (runs[-1][0] + len(runs[-1][1])) < JOIN and len(runs[-1][1]) < 60000:
                    f.seek(runs[-1][0])
                    runs[-1][1] = f.read(at + 512 - runs[-1][0])
                    f.seek(off + len(block))
                else:
                    runs.append([at, s])
            off += len(block)
    return runs


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tree(f"{tmp}/root")
        for name, opts in SEEDS.items():
            img = f"{tmp}/{name}.img"
            with open(img, "wb") as f:
                f.truncate(300 << 20)
            subprocess.run(f"mkfs.xfs -q -f {opts} -m uuid={UUID} -p {tmp}/root.proto {img}", shell=True,
                           check=True, stderr=subprocess.DEVNULL)
            subprocess.run(["xfs_repair", "-n", img], check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            data = b"".join((at // 512).to_bytes(4, "big") + len(b).to_bytes(2, "big") + b
                            for at, b in records(img))
            with open(f"{out}/{name}", "wb") as f:
                f.write(data)
            print(f"{name}: {len(data)} bytes")


main()
