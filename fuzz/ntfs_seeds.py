#!/usr/bin/env python3
"""Writes the seeds of fuzz/corpus/ntfs/ (run as root: it needs mkntfs, a loop device and
ntfs-3g). Usage: python3 fuzz/ntfs_seeds.py fuzz/corpus/ntfs

Each seed is the first 256 KiB (run.sh's -max_len; trailing zeros cut) of a 2 MiB volume made
by mkntfs and filled through ntfs-3g with \\Windows\\System32\\drivers\\etc\\hosts, \\bootmgr
and a directory of many files. mkntfs and ntfs-3g put $Bitmap and the directory index blocks
past the middle of such a volume, out of the fuzzer's reach, so this script moves them into
free clusters below 256 KiB (copying the clusters, rewriting the mapping pairs and $Bitmap) and
checks the moved volume with ntfsfix -n before cutting it. The used map then succeeds on each
seed and the lookups find every path (fuzz_ntfs.c)."""
import os
import struct
import subprocess
import sys
import tempfile

LIMIT = 256 << 10


def sh(cmd):
    subprocess.run(cmd, shell=True, check=True)


class Volume:
    def __init__(self, path):
        self.path = path
        self.b = bytearray(open(path, "rb").read())
        bps, spc = struct.unpack_from("<HB", self.b, 11)
        self.cluster = bps * spc if spc <= 0x80 else bps << (256 - spc)
        rs = struct.unpack_from("<b", self.b, 0x40)[0]
        self.record = rs * self.cluster if rs > 0 else 1 << -rs
        self.mft = struct.unpack_from("<Q", self.b, 0x30)[0] * self.cluster
        self.clusters = struct.unpack_from("<Q", self.b, 0x28)[0] * bps // self.cluster

    def save(self):
        open(self.path, "wb").write(self.b)

    # MFT records, fixups undone on read and redone on write (the MFT is contiguous here).
    def read_record(self, n):
        at = self.mft + n * self.record
        r = bytearray(self.b[at:at + self.record])
        if r[:4] != b"FILE":
            return None
        usa, count = struct.unpack_from("<HH", r, 4)
        for i in range(1, count):
            r[i * 512 - 2:i * 512] = r[usa + 2 * i:usa + 2 * i + 2]
        return r

    def write_record(self, n, r):
        usa, count = struct.unpack_from("<HH", r, 4)
        usn = r[usa:usa + 2]
        for i in range(1, count):
            r[usa + 2 * i:usa + 2 * i + 2] = r[i * 512 - 2:i * 512]
            r[i * 512 - 2:i * 512] = usn
        at = self.mft + n * self.record
        self.b[at:at + self.record] = r

    def attrs(self, r):
        at = struct.unpack_from("<H", r, 0x14)[0]
        while struct.unpack_from("<I", r, at)[0] != 0xFFFFFFFF:
            length = struct.unpack_from("<I", r, at + 4)[0]
            yield at, struct.unpack_from("<I", r, at)[0], length
            at += length

    def bitmap(self):
        r = self.read_record(6)
        for at, t, _ in self.attrs(r):
            if t == 0x80:
                runs = decode(r, at)
                return runs[0][1] * self.cluster  # mkntfs writes it in one run
        raise SystemExit("no $Bitmap")

    def set_bit(self, c, used):
        at = self.bitmap() + c // 8
        if used:
            self.b[at] |= 1 << (c % 8)
        else:
            self.b[at] &= ~(1 << (c % 8)) & 0xFF

    def free_low_clusters(self):
        base = self.bitmap()
        return [c for c in range(LIMIT // self.cluster) if not self.b[base + c // 8] >> (c % 8) & 1]


def decode(r, at):
    pos = at + struct.unpack_from("<H", r, at + 0x20)[0]
    runs, lcn = [], 0
    while r[pos]:
        ls, os_ = r[pos] & 15, r[pos] >> 4
        length = int.from_bytes(r[pos + 1:pos + 1 + ls], "little")
        lcn += int.from_bytes(r[pos + 1 + ls:pos + 1 + ls + os_], "little", signed=True)
        runs.append((length, lcn))
        pos += 1 + ls + os_
    return runs


def encode(runs):
    out, prev = bytearray(), 0
    for length, lcn in runs:
        lb = length.to_bytes(8, "little").rstrip(b"\0") or b"\0"
        delta = lcn - prev
        ob = delta.to_bytes(8, "little", signed=True)
        while len(ob) > 1 and ((ob[-1] == 0 and ob[-2] < 0x80) or (ob[-1] == 0xFF and ob[-2] >= 0x80)):
            ob = ob[:-1]
        out += bytes([len(lb) | len(ob) << 4]) + lb + ob
        prev = lcn
    return out + b"\0"


def take(free, count, rec):
    """Removes count contiguous clusters from the sorted free list; returns the first."""
    for i in range(len(free) - count + 1):
        if free[i + count - 1] - free[i] == count - 1:
            first = free[i]
            del free[i:i + count]
            return first
    raise SystemExit("no %d free clusters below %d for record %d" % (count, LIMIT, rec))


def move_attr(v, n, r, at, length, free):
    """Moves the runs of the non-resident attribute at offset at of record n past LIMIT into free
    clusters below it: copies the clusters, rewrites the mapping pairs and the record, then
    $Bitmap (whose location the record may just have changed, when n is 6)."""
    runs, moved, bits = decode(r, at), [], []
    for rl, lcn in runs:
        if (lcn + rl) * v.cluster <= LIMIT:
            moved.append((rl, lcn))
            continue
        new = take(free, rl, n)
        for k in range(rl):
            src, dst = (lcn + k) * v.cluster, (new + k) * v.cluster
            v.b[dst:dst + v.cluster] = v.b[src:src + v.cluster]
            bits += [(lcn + k, False), (new + k, True)]
        moved.append((rl, new))
    pairs = encode(moved)
    start = at + struct.unpack_from("<H", r, at + 0x20)[0]
    if len(pairs) > length - (start - at):
        raise SystemExit("new mapping pairs do not fit record %d" % n)
    r[start:at + length] = pairs + bytes(at + length - start - len(pairs))
    v.write_record(n, r)
    for c, used in bits:
        v.set_bit(c, used)


def relocate(v):
    """$Bitmap first (the used map reads it), then every directory's $INDEX_ALLOCATION."""
    free = v.free_low_clusters()
    r = v.read_record(6)
    for at, t, length in list(v.attrs(r)):
        if t == 0x80:
            move_attr(v, 6, r, at, length, free)
    for n in range(256):
        if v.mft + (n + 1) * v.record > len(v.b):
            break
        r = v.read_record(n)
        if r is None or not struct.unpack_from("<H", r, 0x16)[0] & 1:
            continue
        for at, t, length in list(v.attrs(r)):
            if t == 0xA0:
                move_attr(v, n, r, at, length, free)


def make(out_dir, name, mkntfs, small_files):
    """small_files 0: no files at all (4096-byte records put the first user file at record 64,
    past 256 KiB), so the seed covers the used map and lookups that find nothing."""
    with tempfile.TemporaryDirectory() as tmp:
        img, mnt = os.path.join(tmp, "v.img"), os.path.join(tmp, "mnt")
        os.mkdir(mnt)
        sh("truncate -s 2M %s && mkntfs -Q -F -T %s %s >/dev/null 2>&1" % (img, mkntfs, img))
        loop = subprocess.run(["losetup", "-f", "--show", img], check=True, capture_output=True, text=True).stdout.strip()
        try:
            sh("ntfs-3g %s %s" % (loop, mnt))
            if small_files:
                sh("cd %s && mkdir -p Windows/System32/drivers/etc many && echo boot > bootmgr && "
                   "echo 127.0.0.1 localhost > Windows/System32/drivers/etc/hosts && "
                   "for i in $(seq 1 %d); do echo $i > Windows/System32/lib$i.dll; echo $i > many/f$i.txt; done"
                   % (mnt, small_files))
            sh("umount %s" % mnt)
        finally:
            sh("losetup -d %s" % loop)
        v = Volume(img)
        relocate(v)
        v.save()
        sh("ntfsfix -n %s >/dev/null" % img)
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(bytes(v.b[:LIMIT]).rstrip(b"\0"))  # the harness zero-extends it again


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "fuzz/corpus/ntfs"
    make(out, "ntfs-2M-c4096-windows.img", "-c 4096", 40)
    make(out, "ntfs-2M-c512-windows.img", "-c 512", 40)
    make(out, "ntfs-2M-s4096-empty.img", "-s 4096 -c 4096", 0)
