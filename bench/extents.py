#!/usr/bin/env python3
"""Concatenates the used extents of one partition into a file: exactly the bytes a used-cluster
backup reads, for timing compression and reading without a filesystem in the way.

Usage: asrimg layout DISK --json --extents --volumes all | extents.py DISK PART OUT
Prints "<used bytes> <extent count>"; fails if the partition has no extents (not a used capture)
or the extents do not add up to its used_bytes."""
import json
import os
import sys


def copy(src: int, dst: int, length: int, pos: int) -> int:
    """copy_file_range between regular files; pread and write where it is refused (devices)."""
    try:
        return os.copy_file_range(src, dst, length, pos)
    except OSError:
        data = os.pread(src, length, pos)
        os.write(dst, data)
        return len(data)


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    disk, part, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    layout = json.load(sys.stdin)
    parts = [p for p in layout[0]["partitions"] if p["number"] == part]
    if not parts or "extents" not in parts[0]:
        sys.exit(f"extents.py: error: partition {part} of {disk} has no extents (capture not used/header?)")
    p = parts[0]
    extents = p["extents"]
    total = sum(length for _, length in extents)
    if total != p["used_bytes"]:
        sys.exit(f"extents.py: error: extents add up to {total} bytes, used_bytes says {p['used_bytes']}")
    src = os.open(disk, os.O_RDONLY)
    dst = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for off, length in extents:
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
    print(total, len(extents))
    return 0


if __name__ == "__main__":
    sys.exit(main())
