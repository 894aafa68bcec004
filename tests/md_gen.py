#!/usr/bin/env python3
"""Writes one member of a Linux md array into an image file, as mdadm --create would, for
machines without the md driver (mdadm --create needs it): a 1.0, 1.1, 1.2 or 0.90 superblock
with its checksum, an optional internal write-intent bitmap and a bad-block log (1.x), and
optionally the array's data laid out on this member by the level's layout (RAID1 mirrors,
RAID0 chunked striping, RAID10 near=2). Checked against `mdadm --examine` by tests/test_md.c.
Damage options write what a broken or foreign member looks like, for the reader's refusals.

usage: md_gen.py --batch LINES   (each line: the arguments below, for one member)
       md_gen.py FILE --size BYTES [--metadata 1.2|1.1|1.0|0.90] [--level N] [--raid-disks N]
       [--role N|spare|journal] [--uuid HEX32] [--name NAME] [--events N] [--chunk-kib N] [--layout N]
       [--data-offset-sectors N] [--bitmap] [--data-from FILE] [--noise SEED]
       [--max-dev N] [--ctime SECONDS] [--over] [--bad-csum] [--big-endian] [--data-offset-past-end] [--role-out-of-range]
"""
import argparse
import random
import shlex
import struct
import sys

MAGIC = 0xA92B4EFC
BITMAP_MAGIC = 0x6D746962
SECTOR = 512


def csum1(sb, max_dev):
    """mdadm's calc_sb_1_csum: 32-bit little-endian words of the first 256 + 2*max_dev bytes
    (sb_csum taken as 0), a trailing 16-bit word, then the carry folded in once."""
    size = 256 + 2 * max_dev
    b = bytearray(sb[:size])
    b[216:220] = b"\0\0\0\0"
    total = 0
    i = 0
    while size - i >= 4:
        total += struct.unpack_from("<I", b, i)[0]
        i += 4
    if size - i == 2:
        total += struct.unpack_from("<H", b, i)[0]
    return ((total & 0xFFFFFFFF) + (total >> 32)) & 0xFFFFFFFF


def csum0(words):
    total = sum(words) - words[38]
    return ((total & 0xFFFFFFFF) + (total >> 32)) & 0xFFFFFFFF


def bitmap_block(uuid, events, sync_sectors, chunk=64 << 10):
    bm = bytearray(256)
    struct.pack_into("<II16sQQQIIIIII", bm, 0, BITMAP_MAGIC, 4, uuid, events, events, sync_sectors, 0, chunk, 5,
                     0, 0, 0)
    bits = (sync_sectors * SECTOR + chunk - 1) // chunk
    nbytes = 256 + (bits + 7) // 8
    nbytes = (nbytes + 511) // 512 * 512
    return (bytes(bm) + b"\xff" * ((bits + 7) // 8)).ljust(nbytes, b"\0")


def place_data(f, a, data_offset, member_data):
    """The array's bytes (file a.data_from) that land on this member, at data_offset."""
    with open(a.data_from, "rb") as src:
        data = src.read()
    n, chunk = a.raid_disks, a.chunk_kib * 1024
    if a.level == 1:
        f.seek(data_offset)
        f.write(data)
        return
    if a.level not in (0, 10):
        sys.exit("md_gen.py: --data-from handles levels 0, 1 and 10")
    copies = 2 if a.level == 10 else 1
    for k in range(0, (len(data) + chunk - 1) // chunk):
        piece = data[k * chunk:(k + 1) * chunk]
        for c in range(copies):
            slot = k * copies + c
            if slot % n == int(a.role):
                at = data_offset + (slot // n) * chunk
                if at + len(piece) > data_offset + member_data:
                    sys.exit("md_gen.py: the data does not fit the member")
                f.seek(at)
                f.write(piece)


def write_v1(f, a, uuid):
    size_s = a.size // SECTOR
    minor = {"1.0": 0, "1.1": 1, "1.2": 2}[a.metadata]
    sb_off = {0: (size_s - 16) & ~7, 1: 0, 2: 8}[minor]
    bitmap = b""
    bblog_size = 8
    if minor == 0:
        data_offset = 0
        room = sb_off - bblog_size
        if a.bitmap:
            sync = room & ~7
            bitmap = bitmap_block(uuid, a.events, sync)
            room -= len(bitmap) // SECTOR
        data_size = room & ~7
        bitmap_offset = -(bblog_size + len(bitmap) // SECTOR)
        bblog_offset = -bblog_size
    else:
        data_offset = a.data_offset_sectors
        data_size = size_s - data_offset
        bitmap_offset = 8
        if a.bitmap:
            bitmap = bitmap_block(uuid, a.events, data_size)
        bblog_offset = 8 + len(bitmap) // SECTOR
        if sb_off + bblog_offset + bblog_size > data_offset:
            sys.exit("md_gen.py: no room before the data offset")
    chunk_s = a.chunk_kib * 2 if a.level in (0, 4, 5, 6, 10) else 0
    if a.level in (0, 10):
        used = data_size // chunk_s * chunk_s
    else:
        used = data_size // 128 * 128  # 64 KiB, as mdadm rounds a mirror's used size
    if a.data_offset_past_end:
        data_offset = size_s + 8
    max_dev = a.max_dev
    special = {"spare": 0xFFFF, "journal": 0xFFFD}  # the journal: a raid4/5/6 write journal (1.x only)
    role = special[a.role] if a.role in special else int(a.role)
    if a.role_out_of_range:
        role = a.raid_disks + 3
    dev_number = a.raid_disks if a.role in special else int(a.role)
    feature = (1 if a.bitmap else 0) | (512 if a.role == "journal" else 0)
    sb = bytearray(4096)
    struct.pack_into("<IIII16s32sQIIQII", sb, 0, MAGIC, 1, feature, 0, uuid, a.name.encode()[:32],
                     a.ctime, a.level & 0xFFFFFFFF, a.layout, used, chunk_s, a.raid_disks)
    struct.pack_into("<i", sb, 96, bitmap_offset if a.bitmap else 0)
    struct.pack_into("<QQQ", sb, 128, data_offset, data_size, sb_off)
    struct.pack_into("<I", sb, 160, dev_number)
    dev_uuid = bytes((uuid[i] ^ (0x5A + dev_number)) & 0xFF for i in range(16))
    struct.pack_into("<16sBBHi", sb, 168, dev_uuid, 0, 9, bblog_size, bblog_offset)
    struct.pack_into("<QQQ", sb, 192, 1700000100, a.events, 0xFFFFFFFFFFFFFFFF)
    struct.pack_into("<I", sb, 220, max_dev)
    for i in range(min(max_dev, 1920)):
        r = i if i < a.raid_disks else 0xFFFF
        if i == dev_number:
            r = role
        struct.pack_into("<H", sb, 256 + 2 * i, r)
    struct.pack_into("<I", sb, 216, csum1(sb, min(max_dev, 1920)))
    if a.bad_csum:
        sb[216] ^= 0x01
    f.seek(sb_off * SECTOR)
    f.write(sb[:4096] if minor != 0 else sb[:min(4096, a.size - sb_off * SECTOR)])
    if bitmap:
        f.seek((sb_off + bitmap_offset) * SECTOR)
        f.write(bitmap)
    f.seek((sb_off + bblog_offset) * SECTOR)
    f.write(b"\xff" * (bblog_size * SECTOR))
    return data_offset * SECTOR, data_size * SECTOR


def write_v090(f, a, uuid):
    sb_off = (a.size & ~65535) - 65536
    chunk = a.chunk_kib * 1024
    size_kib = sb_off // 1024
    if a.level in (0, 10):
        size_kib = size_kib // a.chunk_kib * a.chunk_kib
    else:
        size_kib = size_kib // 64 * 64
    w = [0] * 1024
    u = struct.unpack("<4I", uuid)
    w[0:16] = [MAGIC, 0, 90, 0, 0, u[0], a.ctime, a.level & 0xFFFFFFFF, size_kib, a.raid_disks, a.raid_disks,
               0, 0, u[1], u[2], u[3]]
    w[32] = 1700000100
    w[33] = 1 | ((1 << 8) if a.bitmap else 0)  # clean, bitmap present
    w[34] = w[35] = a.raid_disks
    ev = a.events
    w[39], w[40] = ev & 0xFFFFFFFF, ev >> 32
    w[41], w[42] = ev & 0xFFFFFFFF, ev >> 32
    w[43] = 0xFFFFFFFF
    w[64], w[65] = a.layout, chunk
    for i in range(a.raid_disks):
        w[128 + 32 * i: 128 + 32 * i + 5] = [i, 0, 0, i, 6]
    me = a.raid_disks if a.role == "spare" else int(a.role)
    if a.role_out_of_range:
        me = a.raid_disks + 3
    w[992:997] = [me, 0, 0, me, 0 if a.role == "spare" else 6]
    w[38] = csum0(w)
    if a.bad_csum:
        w[38] ^= 1
    if a.big_endian:
        w[39], w[40], w[41], w[42] = w[40], w[39], w[42], w[41]
        raw = struct.pack(">1024I", *w)
    else:
        raw = struct.pack("<1024I", *w)
    f.seek(sb_off)
    f.write(raw)
    if a.bitmap:
        f.seek(sb_off + 4096)
        f.write(bitmap_block(uuid, ev, size_kib * 2))
    return 0, (size_kib * 1024 if a.level >= 1 else sb_off)


def main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("file")
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--metadata", default="1.2", choices=["1.0", "1.1", "1.2", "0.90"])
    p.add_argument("--level", type=int, default=1)
    p.add_argument("--raid-disks", type=int, default=2)
    p.add_argument("--role", default="0")
    p.add_argument("--uuid", default="0123456789abcdeffedcba9876543210")
    p.add_argument("--name", default="host:md0")
    p.add_argument("--events", type=int, default=18)
    p.add_argument("--chunk-kib", type=int, default=64)
    p.add_argument("--layout", type=int, default=0)
    p.add_argument("--data-offset-sectors", type=int, default=2048)
    p.add_argument("--bitmap", action="store_true")
    p.add_argument("--data-from")
    p.add_argument("--noise", type=int, help="fill the member with pseudo-random bytes first")
    p.add_argument("--ctime", type=int, default=1700000000)
    p.add_argument("--over", action="store_true", help="write over the file as it is (a leftover stays)")
    p.add_argument("--max-dev", type=int, default=384)
    p.add_argument("--bad-csum", action="store_true")
    p.add_argument("--big-endian", action="store_true")
    p.add_argument("--data-offset-past-end", action="store_true")
    p.add_argument("--role-out-of-range", action="store_true")
    a = p.parse_args(argv)
    uuid = bytes.fromhex(a.uuid)
    with open(a.file, "r+b" if a.over else "wb") as f:
        if a.over:
            pass
        elif a.noise is not None:
            f.write(random.Random(a.noise).randbytes(a.size))
        else:
            f.truncate(a.size)
        if a.metadata == "0.90":
            off, size = write_v090(f, a, uuid)
        else:
            off, size = write_v1(f, a, uuid)
        if a.data_from:
            place_data(f, a, off, size)
        f.truncate(a.size)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--batch"]:  # one member per line of the file: python starts once
        with open(sys.argv[2]) as lines:
            for line in lines:
                if line.strip():
                    main(shlex.split(line))
    else:
        main(sys.argv[1:])
