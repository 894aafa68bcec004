#!/usr/bin/env python3
"""Writes the damaged FAT and exFAT seeds of fuzz/corpus/fat and fuzz/corpus/exfat: small volumes
whose allocation maps disagree with their directories, so that the fuzzers start from inputs that
drive the used maps' directory walk through every kind of damage it handles.
Usage (as root: exfat-fuse needs a loop device): python3 fuzz/damaged_seeds.py fuzz/corpus

- fat/fat12-damaged, fat/fat16-damaged: mkfs.vfat (512-byte clusters) filled by mtools, then, in
  both FATs: BIG.BIN's chain freed, the DOCS directory's chain freed, LATE.BIN's chain running into
  a free cluster after two, CUT.BIN ended after one cluster by an end mark, LOOP.BIN's second
  cluster linking back to its first.
- fat/fat32-root-free: an empty FAT32 whose root directory cluster is free in the FAT.
- exfat/exfat-damaged: mkfs.exfat with 512-byte clusters and 4 KiB alignment (the heap right
  after the FAT) filled through exfat-fuse, then the allocation bitmap's bits cleared for the docs directory, the second
  cluster of many (a FAT-chained directory) and big.bin (contiguous).
Everything lies in the first 256 KiB (run.sh's -max_len) and trailing zeros are cut: the harnesses
zero-extend their input. Content is random, so seeds differ from run to run."""
import os
import struct
import subprocess
import sys
import tempfile

LIMIT = 256 << 10


def sh(cmd):
    subprocess.run(cmd, shell=True, check=True)


def make_tree(d):
    os.makedirs(f"{d}/docs/deep")
    os.makedirs(f"{d}/many")
    sizes = {"big.bin": 20000, "late.bin": 9000, "cut.bin": 5000, "loop.bin": 3000,
             "docs/note.txt": 3000, "docs/deep/nested.bin": 2000}
    sizes.update({f"many/f{i}.txt": 100 + 23 * i for i in range(60)})
    for name, size in sizes.items():
        with open(f"{d}/{name}", "wb") as f:
            f.write(os.urandom(size))


def save(img, out):
    with open(img, "rb") as f:
        data = f.read(LIMIT).rstrip(b"\0")
    with open(out, "wb") as f:
        f.write(data)
    print(out, len(data), "bytes")


class Fat:
    def __init__(self, img):
        self.f = open(img, "r+b")
        b = self.read(0, 512)
        self.bps, self.spc, self.res, self.nfats, self.rootents = struct.unpack_from("<HBHBH", b, 11)
        fatsz = struct.unpack_from("<H", b, 22)[0] or struct.unpack_from("<I", b, 36)[0]
        total = struct.unpack_from("<H", b, 19)[0] or struct.unpack_from("<I", b, 32)[0]
        self.fatsz = fatsz * self.bps
        self.root = self.res * self.bps + self.nfats * self.fatsz
        self.data = self.root + self.rootents * 32
        clusters = (total * self.bps - self.data) // (self.spc * self.bps)
        self.bits = 12 if clusters <= 4084 else 16 if clusters <= 65524 else 32
        self.rootc = struct.unpack_from("<I", b, 44)[0] if self.bits == 32 else 0

    def read(self, off, n):
        self.f.seek(off)
        return self.f.read(n)

    def write(self, off, b):
        self.f.seek(off)
        self.f.write(b)

    def get(self, c):
        v = int.from_bytes(self.read(self.res * self.bps + c * self.bits // 8, 4), "little")
        return {12: (v >> 4 if c & 1 else v) & 0xFFF, 16: v & 0xFFFF, 32: v & 0x0FFFFFFF}[self.bits]

    def set(self, c, value):
        for k in range(self.nfats):
            at = self.res * self.bps + k * self.fatsz + c * self.bits // 8
            old = int.from_bytes(self.read(at, 4), "little")
            if self.bits == 12:
                new = (old & ~(0xFFF << 4) | value << 4) if c & 1 else (old & ~0xFFF | value)
            else:
                mask = 0xFFFF if self.bits == 16 else 0x0FFFFFFF
                new = old & ~mask | value
            self.write(at, (new & 0xFFFFFFFF).to_bytes(4, "little"))

    def chain(self, name):
        d = self.read(self.root, self.rootents * 32)
        e = next(d[i:i + 32] for i in range(0, len(d), 32) if d[i:i + 11] == name.encode())
        c, out = struct.unpack_from("<H", e, 26)[0], []
        while 2 <= c < (0xFF8 if self.bits == 12 else 0xFFF8):
            out.append(c)
            c = self.get(c)
        return out


def fat_damaged(out, bits, size):
    with tempfile.TemporaryDirectory() as t:
        img = f"{t}/v.img"
        make_tree(f"{t}/tree")
        sh(f"truncate -s {size} {img} && mkfs.vfat -F {bits} -s 1 -i 5EED{bits:04d} {img} >/dev/null")
        sh(f"MTOOLS_SKIP_CHECK=1 mcopy -s -i {img} {t}/tree/* ::/")
        v = Fat(img)
        eoc = 0xFFF if bits == 12 else 0xFFFF
        for c in v.chain("BIG     BIN") + v.chain("DOCS       "):
            v.set(c, 0)
        for c in v.chain("LATE    BIN")[2:]:
            v.set(c, 0)
        cut = v.chain("CUT     BIN")
        v.set(cut[0], eoc)
        for c in cut[1:]:
            v.set(c, 0)
        loop = v.chain("LOOP    BIN")
        v.set(loop[1], loop[0])
        v.f.close()
        save(img, out)


def fat32_root_free(out):
    with tempfile.TemporaryDirectory() as t:
        img = f"{t}/v.img"
        sh(f"truncate -s 34M {img} && mkfs.vfat -F 32 -s 1 -i 5EED0032 {img} >/dev/null")
        v = Fat(img)
        v.set(v.rootc, 0)
        v.f.close()
        save(img, out)


def exfat_damaged(out):
    with tempfile.TemporaryDirectory() as t:
        img, mnt = f"{t}/v.img", f"{t}/mnt"
        make_tree(f"{t}/tree")
        os.mkdir(mnt)
        sh(f"truncate -s 4M {img} && mkfs.exfat -b 4K -c 512 {img} >/dev/null")
        dev = subprocess.check_output(["losetup", "-f", "--show", img], text=True).strip()
        try:
            sh(f"mount.exfat-fuse {dev} {mnt} >/dev/null && cp -r {t}/tree/. {mnt}/ && fusermount -u {mnt}")
        finally:
            subprocess.run(["losetup", "-d", dev], check=False)
        f = open(img, "r+b")
        b = f.read(512)
        ss = 1 << b[108]
        cs = ss << b[109]
        fat, heap, root = (struct.unpack_from("<I", b, o)[0] for o in (80, 88, 96))
        fat, heap = fat * ss, heap * ss
        d, c = b"", root
        while c < 0xFFFFFFF7:  # the root directory's chain
            f.seek(heap + (c - 2) * cs)
            d += f.read(cs)
            f.seek(fat + 4 * c)
            c = struct.unpack("<I", f.read(4))[0]
        bitmap = next(struct.unpack_from("<I", d, i + 20)[0] for i in range(0, len(d), 32) if d[i] == 0x81)
        files = {}
        for i in range(0, len(d) - 64, 32):
            if d[i] == 0x85:
                s = d[i + 32:i + 64]
                name = d[i + 66:i + 66 + 2 * s[3]].decode("utf-16le")
                files[name] = (s[1] & 2, struct.unpack_from("<I", s, 20)[0], struct.unpack_from("<Q", s, 24)[0])

        def clusters(name):
            contiguous, c, length = files[name]
            out = []
            for _ in range((length + cs - 1) // cs):
                out.append(c)
                f.seek(fat + 4 * c)
                c = c + 1 if contiguous else struct.unpack("<I", f.read(4))[0]
            return out

        for c in clusters("docs") + clusters("many")[1:2] + clusters("big.bin"):
            at = heap + (bitmap - 2) * cs + (c - 2) // 8
            f.seek(at)
            byte = f.read(1)[0]
            f.seek(at)
            f.write(bytes([byte & ~(1 << ((c - 2) % 8))]))
        f.close()
        save(img, out)


corpus = sys.argv[1]
fat_damaged(f"{corpus}/fat/fat12-damaged.img", 12, "256K")
fat_damaged(f"{corpus}/fat/fat16-damaged.img", 16, "2200K")
fat32_root_free(f"{corpus}/fat/fat32-root-free.img")
exfat_damaged(f"{corpus}/exfat/exfat-damaged.img")
