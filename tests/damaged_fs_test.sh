#!/usr/bin/env bash
# End to end: damaged filesystems restore exactly as they were. A GPT disk holds FAT16, FAT32, exFAT
# and NTFS volumes filled with files, then damaged where their allocation maps disagree with their
# directories: on FAT, a file's and a directory's cluster chains freed in both FATs; on exFAT, the
# allocation bitmap's bits of a directory (FAT-chained) and of a contiguous file cleared; on NTFS,
# the $Bitmap bits of a file's data and of a directory's index blocks cleared and the volume marked
# dirty (as Windows leaves it when chkdsk is pending). Offsets come from the partition table, boot
# sectors and directory entries (for NTFS, the runs ntfsinfo lists). `asrimg layout` must capture
# each volume by used clusters with a note saying what was found, `asrimg backup --volumes all`
# must say it again (--json warnings), and the image restored onto a disk full of garbage must read
# as the source does: the same fsck.vfat / fsck.exfat / ntfsfix -n report (plus ntfsinfo -m's
# flags and free clusters), the same files through mtools and fatcat (which reads chains that run
# into free entries contiguously), exfat-fuse or ntfs-3g.
# Usage: damaged_fs_test.sh ASRIMG
set -u
asrimg=$1
skip_all() { echo "SKIP: $1"; echo "damaged_fs: 0 passed, 0 failed, 1 skipped"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip_all "needs root (loop devices)"
for tool in losetup blockdev sfdisk mkfs.vfat fsck.vfat mcopy fatcat mkfs.exfat fsck.exfat mount.exfat-fuse fusermount \
            mkntfs ntfs-3g ntfsinfo ntfsfix umount diff python3; do
  command -v "$tool" >/dev/null || skip_all "$tool not installed"
done
[ -e /dev/fuse ] || skip_all "no /dev/fuse (exfat-fuse, ntfs-3g)"

work=$(mktemp -d /tmp/asrimg-damaged-XXXXXX)
mkdir -p "$work/mnt"
source "$(dirname "${BASH_SOURCE[0]}")/loop_lib.sh"
loops=()
cleanup() {
  umount "$work/mnt" 2>/dev/null || fusermount -u "$work/mnt" 2>/dev/null
  detach_ours "$work" "${loops[@]}"
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
export MTOOLS_SKIP_CHECK=1
pass=0 fail=0
check() { # name, then a command that must succeed
  local name=$1; shift
  if "$@" >"$work/out" 2>"$work/err"; then pass=$((pass + 1)); else
    fail=$((fail + 1)); echo "FAIL: $name"; sed 's/^/  out: /' "$work/out" | head -8; sed 's/^/  err: /' "$work/err" | head -8; fi
}

# ---- damage, done the way a broken driver or a careless repair leaves it -------------------
cat >"$work/damage.py" <<'EOF'
import json, re, struct, subprocess, sys

def geom(disk, n):
    t = json.loads(subprocess.check_output(["sfdisk", "-J", disk]))["partitiontable"]
    for p in t["partitions"]:
        if re.search(r"\D%s$" % n, p["node"]):
            return p["start"] * 512, p["size"] * 512
    sys.exit("no partition %s" % n)

class Vol:
    def __init__(self, disk, base):
        self.f, self.base = open(disk, "r+b"), base
    def read(self, off, n):
        self.f.seek(self.base + off)
        return self.f.read(n)
    def write(self, off, b):
        self.f.seek(self.base + off)
        self.f.write(b)

def fat(disk, n, names):  # frees the whole chain of each root entry named (8.3, padded) in every FAT
    v = Vol(disk, geom(disk, n)[0])
    b = v.read(0, 512)
    bps, spc, res, nfats, rootents, total16, _, fatsz16 = struct.unpack_from("<HBHBHHBH", b, 11)
    fatsz = fatsz16 or struct.unpack_from("<I", b, 36)[0]
    total = total16 or struct.unpack_from("<I", b, 32)[0]
    root = (res + nfats * fatsz) * bps
    data = root + rootents * 32
    clusters = (total * bps - data) // (spc * bps)
    bits = 12 if clusters <= 4084 else 16 if clusters <= 65524 else 32
    assert bits != 12
    width, mask = bits // 8, (1 << bits) - 1 if bits == 16 else 0x0FFFFFFF
    get = lambda c: int.from_bytes(v.read(res * bps + c * width, width), "little") & mask
    if bits == 32:
        rootc = struct.unpack_from("<I", b, 44)[0]
        d = v.read(data + (rootc - 2) * spc * bps, spc * bps)
    else:
        d = v.read(root, rootents * 32)
    for name in names:
        e = next(d[i:i + 32] for i in range(0, len(d), 32) if d[i:i + 11] == name.encode())
        c = struct.unpack_from("<H", e, 26)[0] | (struct.unpack_from("<H", e, 20)[0] << 16 if bits == 32 else 0)
        chain = []
        while 2 <= c < (mask & ~7):
            chain.append(c)
            c = get(c)
        for c in chain:
            for k in range(nfats):
                old = int.from_bytes(v.read((res + k * fatsz) * bps + c * width, width), "little")
                v.write((res + k * fatsz) * bps + c * width, (old & ~mask).to_bytes(width, "little"))
        print(name.strip(), "chain of", len(chain), "freed")

def exfat(disk, n, names):  # clears the bitmap bits of every cluster of each root entry named
    v = Vol(disk, geom(disk, n)[0])
    b = v.read(0, 512)
    ss = 1 << b[108]
    cs = ss << b[109]
    fat, heap, root = (struct.unpack_from("<I", b, o)[0] for o in (80, 88, 96))
    fat *= ss
    heap *= ss
    d = v.read(heap + (root - 2) * cs, cs)
    bitmap = next(struct.unpack_from("<I", d, i + 20)[0] for i in range(0, cs, 32) if d[i] == 0x81)
    files = {}
    for i in range(0, cs, 32):
        if d[i] == 0x85:
            s = d[i + 32:i + 64]
            name = b"".join(d[i + 64 + 32 * k + 2:i + 96 + 32 * k] for k in range(d[i + 1] - 1)).decode("utf-16le")[:s[3]]
            files[name] = (s[1] & 2, struct.unpack_from("<I", s, 20)[0], struct.unpack_from("<Q", s, 24)[0])
    for name in names:
        contiguous, c, length = files[name]
        chain = []
        for _ in range((length + cs - 1) // cs):
            chain.append(c)
            c = c + 1 if contiguous else struct.unpack("<I", v.read(fat + 4 * c, 4))[0]
        for c in chain:
            at = heap + (bitmap - 2) * cs + (c - 2) // 8
            v.write(at, bytes([v.read(at, 1)[0] & ~(1 << ((c - 2) % 8))]))
        print(name, "contiguous" if contiguous else "chained", len(chain), "clusters cleared in the bitmap")

def ntfs(disk, n, names):  # clears the $Bitmap bits of every cluster of each path named; marks it dirty
    off, size = geom(disk, n)
    v = Vol(disk, off)
    b = v.read(0, 512)
    bps, spc = struct.unpack_from("<HB", b, 11)
    cs = bps * (spc if spc <= 0x80 else 1 << (256 - spc))
    mft, mirror = (struct.unpack_from("<Q", b, o)[0] * cs for o in (0x30, 0x38))
    rs = struct.unpack_from("<b", b, 0x40)[0]
    rs = rs * cs if rs > 0 else 1 << -rs
    # the runs ntfsinfo reads (not our own parse of the mapping pairs), on a read-only loop device
    dev = subprocess.check_output(["losetup", "-f", "--show", "-r", "-o", str(off), "--sizelimit", str(size), disk],
                                  text=True).strip()
    def runs(sel):
        out, r = [], False
        for line in subprocess.check_output(["ntfsinfo", "-f", "-v"] + sel + [dev], text=True).splitlines():
            m = re.fullmatch(r"\t+(0x[0-9a-f]+)\t+(0x[0-9a-f]+)\t+(0x[0-9a-f]+)", line) if r else None
            if m:
                out.append(tuple(int(x, 16) for x in m.groups()))
            r = bool(m) or "Runlist:" in line
        assert out, sel
        return out
    try:
        bitmap = runs(["-i", "6"])
        targets = [(name, runs(["-F", "/" + name])) for name in names]
    finally:
        subprocess.run(["losetup", "-d", dev])
    total = 0
    for name, rl in targets:
        cleared = 0
        for _, lcn, length in rl:
            for c in range(lcn, lcn + length):
                vcn = c // 8 // cs
                k = next(k for k in bitmap if k[0] <= vcn < k[0] + k[2])
                at = (k[1] + vcn - k[0]) * cs + c // 8 % cs
                old = v.read(at, 1)[0]
                cleared += old >> (c % 8) & 1
                v.write(at, bytes([old & ~(1 << (c % 8))]))
        assert cleared, name
        print(name, cleared, "clusters cleared in $Bitmap")
        total += cleared
    # $Volume (record 3): the flags of its $VOLUME_INFORMATION (0x70), in $MFT and in $MFTMirr
    r = v.read(mft + 3 * rs, rs)
    assert r[:4] == b"FILE"
    a = struct.unpack_from("<H", r, 0x14)[0]
    while struct.unpack_from("<I", r, a)[0] != 0x70:
        a += struct.unpack_from("<I", r, a + 4)[0]
    at = 3 * rs + a + struct.unpack_from("<H", r, a + 0x14)[0] + 10
    assert at % bps + 2 <= bps - 2  # clear of the update sequence number at each sector's end
    for base in (mft, mirror):
        v.write(base + at, struct.pack("<H", struct.unpack("<H", v.read(base + at, 2))[0] | 1))
    print("total", total, "clusters cleared; marked dirty")

cmd, disk, n = sys.argv[1:4]
{"fat": fat, "exfat": exfat, "ntfs": ntfs}[cmd](disk, n, sys.argv[4:])
EOF
damage() { python3 "$work/damage.py" "$@"; }
geom() { # DISK N: "offset size" in bytes of partition N
  sfdisk -d "$1" | awk -v n="$2" -F '[=,]' '$1 ~ "[^0-9]" n " *: start" {printf "%.0f %.0f\n", $2 * 512, $4 * 512}'
}

# ---- the source disk ----------------------------------------------------------------------------
disk=$work/disk.img
truncate -s 220M "$disk"
sfdisk -q "$disk" <<'EOF' || { echo "FAIL: sfdisk"; exit 1; }
label: gpt
size=40MiB, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, name=fat16
size=70MiB, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, name=fat32
size=64MiB, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, name=exfat
size=16MiB, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, name=ntfs
EOF
tree=$work/tree
mkdir -p "$tree/docs/deep" "$tree/many"
for i in $(seq 1 60); do head -c $((i * 97)) /dev/urandom >"$tree/many/f$i.txt"; done
head -c 70000 /dev/urandom >"$tree/docs/deep/nested.bin"
head -c 5000 /dev/urandom >"$tree/docs/note.txt"
head -c 300000 /dev/urandom >"$tree/big.bin"
head -c 20000 /dev/urandom >"$tree/small.bin"

make_fs() { # N MKFS...: a filesystem on partition N, filled with the tree
  local n=$1 dev off size; shift
  read -r off size < <(geom "$disk" "$n")
  dev=$(losetup -f --show -o "$off" --sizelimit "$size" "$disk") || return 1
  loops+=("$dev")
  "$@" "$dev" >/dev/null || return 1
  case $1 in
    mkfs.vfat) mcopy -s -i "$dev" "$tree"/* ::/ || return 1 ;;
    mkfs.exfat) { mount.exfat-fuse "$dev" "$work/mnt" >/dev/null && cp -r "$tree"/. "$work/mnt/" &&
                  fusermount -u "$work/mnt"; } || return 1 ;;
    mkntfs) { ntfs-3g "$dev" "$work/mnt" && cp -r "$tree"/. "$work/mnt/" && umount "$work/mnt"; } || return 1 ;;
  esac
  # Written through the loop device's own cache: flushed into the disk image before damage.py and
  # asrimg read the image file. The last close of the device flushes it, but mcopy's close is not
  # the last when anything else holds the device open then (tests run side by side); once, the
  # FAT16 root directory read back as zeros here.
  blockdev --flushbufs "$dev"
}
check "FAT16 made" make_fs 1 mkfs.vfat -F 16 -s 4
check "FAT32 made" make_fs 2 mkfs.vfat -F 32 -s 1
check "exFAT made" make_fs 3 mkfs.exfat -c 4K
check "FAT16 damaged" damage fat "$disk" 1 "BIG     BIN" "DOCS       "
check "FAT32 damaged" damage fat "$disk" 2 "BIG     BIN" "DOCS       "
check "exFAT damaged" damage exfat "$disk" 3 big.bin many docs
check "NTFS made" make_fs 4 mkntfs -f -Q -c 4096
check "NTFS damaged" damage ntfs "$disk" 4 big.bin many
ntfs_holes=$(sed -n 's/^total \([0-9]*\) .*/\1/p' "$work/out") # check keeps the last command's output there

# ---- layout and backup say what they found -----------------------------------------------------
show_sanitizer() { grep -E 'Sanitizer|runtime error:' "$@"; } # shown, so that ctest sees them (ASan builds)
"$asrimg" layout "$disk" --volumes all --json >"$work/layout.json" 2>"$work/layout.err"
show_sanitizer "$work/layout.err"
check "layout: each FAT/exFAT volume captured by used clusters, with a note" python3 -c "import json,sys
p=json.load(open(sys.argv[1]))[0]['partitions']
assert len(p) == 4, p
for v, what in zip(p, ['free in the FAT', 'free in the FAT', 'free in the allocation bitmap']):
    assert v['capture'] == 'used' and what in v['warning'], v" "$work/layout.json"
check "layout: the dirty NTFS volume captured by used clusters, with what \$Bitmap missed" python3 -c "import json,sys
v=json.load(open(sys.argv[1]))[0]['partitions'][3]
n='%d' % int(sys.argv[2]) + ' clusters referenced by MFT records but free in \$Bitmap, captured too'
assert v['capture'] == 'used' and v['warning'].startswith('ntfs: marked dirty') and n in v['warning'], v
assert v['used_bytes'] < v['size_bytes'] // 2, v" "$work/layout.json" "$ntfs_holes"
"$asrimg" backup "$disk" --volumes all -o "$work/img.asrimg" --json >"$work/backup.json" 2>"$work/backup.err"
echo $? >"$work/backup.rc"
show_sanitizer "$work/backup.err"
check "backup succeeds" grep -qx 0 "$work/backup.rc"
check "backup --json warns of the three damaged FAT/exFAT volumes" python3 -c "import json,sys
w=json.load(open(sys.argv[1]))['warnings']
assert sum('free in the FAT' in x for x in w) == 2 and sum('free in the allocation bitmap' in x for x in w) == 1, w" "$work/backup.json"
check "backup --json warns of the damaged NTFS volume" python3 -c "import json,sys
w=json.load(open(sys.argv[1]))['warnings']
n='%d' % int(sys.argv[2]) + ' clusters referenced by MFT records but free in \$Bitmap, captured too'
assert sum('marked dirty' in x and n in x for x in w) == 1, w" "$work/backup.json" "$ntfs_holes"

# ---- restored onto garbage, it reads as the source does -----------------------------------------
target=$work/target.img
head -c 220M /dev/urandom >"$target"
"$asrimg" restore "$work/img.asrimg" --to "$target" --yes >"$work/restore.out" 2>&1
check "restore succeeds" test $? -eq 0
show_sanitizer "$work/restore.out"

view() { # DISK N KIND VIEWDIR: what fsck and the readers see on partition N
  local off size dev
  read -r off size < <(geom "$1" "$2")
  dev=$(losetup -f --show -r -o "$off" --sizelimit "$size" "$1") || return 1
  loops+=("$dev")
  mkdir -p "$4"
  if [ "$3" = fat ]; then
    fsck.vfat -n "$dev" >"$4/fsck.txt" 2>&1
    echo "exit $?" >>"$4/fsck.txt"
    mkdir "$4/mtools" "$4/fatcat"
    mcopy -s -n -i "$dev" '::/*' "$4/mtools/" >/dev/null 2>&1
    echo "exit $?" >"$4/mtools.exit"
    fatcat "$dev" -x "$4/fatcat" >/dev/null 2>&1
    echo "exit $?" >"$4/fatcat.exit"
  elif [ "$3" = ntfs ]; then
    ntfsfix -n "$dev" >"$4/fsck.txt" 2>&1
    echo "exit $?" >>"$4/fsck.txt"
    ntfsinfo -f -m "$dev" >>"$4/fsck.txt" 2>&1 # the volume's flags, free clusters as $Bitmap counts them
    echo "exit $?" >>"$4/fsck.txt"
    ntfs-3g -o ro "$dev" "$work/mnt" >/dev/null || return 1
    cp -r "$work/mnt" "$4/files" 2>/dev/null
    echo "exit $?" >"$4/cp.exit"
    umount "$work/mnt"
  else
    fsck.exfat -n "$dev" >"$4/fsck.txt" 2>&1
    echo "exit $?" >>"$4/fsck.txt"
    mount.exfat-fuse -o ro "$dev" "$work/mnt" >/dev/null || return 1
    cp -r "$work/mnt" "$4/files" 2>/dev/null
    echo "exit $?" >"$4/cp.exit"
    fusermount -u "$work/mnt"
  fi
  sed -i "s|$dev|VOLUME|g" "$4/fsck.txt"
}
reports_damage() { # KIND FSCK_TXT: the source's report shows the damage (ntfsfix -n checks neither flag nor $Bitmap)
  if [ "$1" = ntfs ]; then grep -q 'Volume Flags: .*DIRTY' "$2"; else ! grep -qx "exit 0" "$2"; fi
}
same_view() { # N KIND
  view "$disk" "$1" "$2" "$work/src$1" && view "$target" "$1" "$2" "$work/dst$1" &&
    reports_damage "$2" "$work/src$1/fsck.txt" && diff -r "$work/src$1" "$work/dst$1"
}
check "FAT16: restored copy reads as its damaged source" same_view 1 fat
check "FAT32: restored copy reads as its damaged source" same_view 2 fat
check "exFAT: restored copy reads as its damaged source" same_view 3 exfat
check "NTFS: restored copy reads as its damaged source" same_view 4 ntfs
check "FAT16: fatcat reads the freed file from the source" cmp "$tree/big.bin" "$work/src1/fatcat/BIG.BIN"
check "exFAT: exfat-fuse reads every file of the source" diff -r "$tree" "$work/src3/files"
check "NTFS: ntfs-3g reads every file of the source" diff -r "$tree" "$work/src4/files"

echo "damaged_fs: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
