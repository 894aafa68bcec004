#!/usr/bin/env python3
"""The used extents of a partition, from `asrimg layout --json --extents`, as exactly the bytes a
used-cluster backup reads: concatenated into a file (for timing compression and reading without a
filesystem in the way), or as the reads asrimg makes, in a fio iolog (for timing those same reads
on the same device).

Usage: asrimg layout DISK --json --extents --volumes all | extents.py DISK PART OUT
         copies PART's used extents of DISK into OUT; prints "<used bytes> <extent count>"
       asrimg layout DISK --json --extents --volumes all | extents.py --iolog DEV PARTS OUT
         writes to OUT a fio version 2 iolog reading DEV (the whole disk, as asrimg is given it)
         the way asrimg's reader (engine/source.c) plans the used extents of PARTS (a comma list,
         in that order): requests of up to 1 MiB in offset order, extents split at that size,
         neighbours less than 64 KiB apart read as one request through the gap, every request
         widened to 4 KiB alignment for O_DIRECT; prints "<requests> <bytes read> <used bytes>"
Fails if a partition has no extents (not a used capture) or they do not add up to its used_bytes."""
import json
import os
import sys

# engine/source.c's plan: request_size (default), GAP_MAX and ALIGN.
REQUEST = 1 << 20
GAP_MAX = 64 << 10
ALIGN = 4096


def copy(src: int, dst: int, length: int, pos: int) -> int:
    """copy_file_range between regular files; pread and write where it is refused (devices)."""
    try:
        return os.copy_file_range(src, dst, length, pos)
    except OSError:
        data = os.pread(src, length, pos)
        os.write(dst, data)
        return len(data)


def partition(layout: list, disk: str, part: int) -> dict:
    parts = [p for p in layout[0]["partitions"] if p["number"] == part]
    if not parts or "extents" not in parts[0]:
        sys.exit(f"extents.py: error: partition {part} of {disk} has no extents (capture not used/header?)")
    p = parts[0]
    total = sum(length for _, length in p["extents"])
    if total != p["used_bytes"]:
        sys.exit(f"extents.py: error: extents add up to {total} bytes, used_bytes says {p['used_bytes']}")
    return p


def plan(base: int, extents: list) -> list:
    """(disk offset, length) of each read asrimg's reader issues for these volume-relative extents
    (sorted, not overlapping) of a volume at disk offset base: plan_request() of engine/source.c."""
    reads = []
    i, skip, n = 0, 0, len(extents)
    while i < n:
        start = base + extents[i][0] + skip
        end = start
        while True:
            avail = extents[i][1] - skip
            take = min(avail, REQUEST - (end - start))
            skip += take
            end += take
            if skip == extents[i][1]:
                i, skip = i + 1, 0
            if take < avail or i >= n:
                break
            following = base + extents[i][0]
            if following - end > GAP_MAX or following + 1 - start > REQUEST:
                break
            end = following  # read through the gap
        aligned = start // ALIGN * ALIGN
        reads.append((aligned, (end + ALIGN - 1) // ALIGN * ALIGN - aligned))
    return reads


def iolog(layout: list, dev: str, parts: list, out: str) -> int:
    if any(c.isspace() for c in dev):
        sys.exit(f"extents.py: error: {dev}: fio's iolog cannot name a path with spaces")
    reads, used = [], 0
    for part in parts:
        p = partition(layout, dev, part)
        reads += plan(p["start_bytes"], p["extents"])
        used += p["used_bytes"]
    with open(out, "w") as f:
        f.write(f"fio version 2 iolog\n{dev} add\n{dev} open\n")
        f.writelines(f"{dev} read {off} {length}\n" for off, length in reads)
        f.write(f"{dev} close\n")
    print(len(reads), sum(length for _, length in reads), used)
    return 0


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--iolog":
        return iolog(json.load(sys.stdin), sys.argv[2], [int(x) for x in sys.argv[3].split(",")], sys.argv[4])
    if len(sys.argv) != 4:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    disk, part, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    p = partition(json.load(sys.stdin), disk, part)
    src = os.open(disk, os.O_RDONLY)
    dst = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for off, length in p["extents"]:
            pos = p["start_bytes"] + off
            while length:
                n = copy(src, dst, min(length, 1 << 24), pos)
                if n <= 0:
                    sys.exit(f"extents.py: error: {disk}: short read at byte {pos}")
                pos += n
                length -= n
    finally:
        os.close(src)
        os.close(dst)
    print(p["used_bytes"], len(p["extents"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
