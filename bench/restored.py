#!/usr/bin/env python3
"""Checks a restored target against the bench disk it came from, independently of asrimg: every used
extent of every partition (from `asrimg layout --json --extents` of the source) must hold the same
bytes on the target, and a whole-disk target must carry the same partition table (sfdisk --json,
device names aside).

Usage: restored.py LAYOUT DISK TARGET             TARGET is a whole disk (asrimg restore)
       restored.py LAYOUT DISK TARGET --part N    TARGET is partition N alone (partclone -r)
Prints "<bytes compared> <extents compared>"; exits 1 naming the first difference."""
import json
import os
import subprocess
import sys


def table(path: str) -> dict:
    t = json.loads(subprocess.run(["sfdisk", "--json", path], check=True, capture_output=True, text=True).stdout)
    t = t["partitiontable"]
    t.pop("device", None)
    for p in t.get("partitions", []):
        p.pop("node", None)
    return t


def main() -> int:
    args = sys.argv[1:]
    part = None
    if len(args) == 5 and args[3] == "--part":
        part = int(args[4])
        args = args[:3]
    if len(args) != 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    layout_path, disk, target = args
    parts = json.load(open(layout_path))[0]["partitions"]
    if part is not None:
        parts = [p for p in parts if p["number"] == part]
        if not parts:
            sys.exit(f"restored.py: error: no partition {part} in {layout_path}")
    elif table(disk) != table(target):
        sys.exit(f"restored.py: error: {target}: partition table differs from {disk}'s")
    nbytes = nextents = 0
    src, dst = os.open(disk, os.O_RDONLY), os.open(target, os.O_RDONLY)
    for p in parts:
        if "extents" not in p:
            sys.exit(f"restored.py: error: partition {p['number']} has no extents in {layout_path}")
        at_target = 0 if part is not None else p["start_bytes"]
        for off, length in p["extents"]:
            pos = 0
            while pos < length:
                n = min(length - pos, 1 << 24)
                a = os.pread(src, n, p["start_bytes"] + off + pos)
                b = os.pread(dst, n, at_target + off + pos)
                if a != b:
                    at = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
                    sys.exit(f"restored.py: error: {target}: partition {p['number']} differs from {disk} at "
                             f"partition byte {off + pos + at}")
                pos += n
            nbytes += length
            nextents += 1
    os.close(src)
    os.close(dst)
    print(nbytes, nextents)
    return 0


if __name__ == "__main__":
    sys.exit(main())
