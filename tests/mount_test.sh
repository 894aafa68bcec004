#!/usr/bin/env bash
# End-to-end checks of `asrimg mount` / `asrimg umount` (FUSE) on a GPT disk holding every
# filesystem asrimg captures by its used blocks (FAT, exFAT, NTFS, ext4, XFS, btrfs), boot code in
# sector 0 and random bytes in the gap before the first partition, backed up with --volumes all:
#   - each DIR/disk0pN.img opens read-only (ext4, XFS with norecovery and btrfs through the kernel;
#     FAT through mtools, exFAT through mount.exfat-fuse, NTFS through ntfs-3g, as a user without
#     root would) and every file equals its source;
#   - DIR/disk0.img has the source disk's size and bytes over every captured range and the boot
#     regions (sector 0, the GPT, the gap, the backup GPT), and equals a restore of the image to a
#     file byte for byte; a split set mounts the same;
#   - a damaged chunk: I/O errors on its pages only, every other page as in the intact image, the
#     chunk named on asrimg's standard error;
#   - umount while a file is held open (detached, the file still readable, the process gone after
#     it is closed); kill -9 of the FUSE process, then asrimg umount: nothing left hanging, and the
#     next mount on the same directory works;
#   - an incomplete image and a .partial one are refused.
# Usage: mount_test.sh ASRIMG
set -u
asrimg=$1
skip_all() { echo "SKIP: $1"; echo "mount: 0 passed, 0 failed, 1 skipped"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip_all "needs root (loop devices, mount)"
[ -c /dev/fuse ] || skip_all "no /dev/fuse"
for tool in losetup mount umount sfdisk fusermount3 mkfs.vfat mcopy mkfs.exfat mount.exfat-fuse mkntfs ntfs-3g \
            mkfs.ext4 mkfs.xfs mkfs.btrfs cmp diff python3 timeout; do
  command -v "$tool" >/dev/null || skip_all "$tool not installed"
done

work=$(mktemp -d /tmp/asrimg-mount-XXXXXX)
mkdir -p "$work/mnt" "$work/vol" "$work/fill"
source "$(dirname "${BASH_SOURCE[0]}")/loop_lib.sh"
loops=() pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for d in "$work/vol" "$work/fill"; do umount "$d" 2>/dev/null || fusermount3 -u "$d" 2>/dev/null; done
  for d in "$work"/mnt*; do fusermount3 -u -z "$d" 2>/dev/null; done
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
    fail=$((fail + 1)); echo "FAIL: $name"; sed 's/^/  out: /' "$work/out" | head -5; sed 's/^/  err: /' "$work/err" | head -8; fi
}

# ---- the source disk -------------------------------------------------------------------------
content=$work/content
mkdir -p "$content/data/sub/deeper"
head -c 3000000 /dev/urandom >"$content/data/random.bin"
seq 1 150000 >"$content/data/numbers.txt"
head -c 700000 /dev/urandom >"$content/data/sub/deeper/more.bin"
cp "$content/data/random.bin" "$content/data/sub/copy.bin" # dedups
echo "small" >"$content/data/sub/small.txt"

src=$work/src.img
truncate -s 640M "$src"
sfdisk -q "$src" <<'EOF' || exit 1
label: gpt
start=2048, size=65536, type=uefi, name=esp
size=32768, type=ebd0a0a2-b9e5-4433-87c0-68b6b72699c7, name=exfat
size=32768, type=ebd0a0a2-b9e5-4433-87c0-68b6b72699c7, name=ntfs
size=65536, type=linux, name=ext4
size=614400, type=linux, name=xfs
size=262144, type=linux, name=btrfs
EOF
# Boot code in sector 0 (the table stays) and random bytes in the gap after the GPT.
head -c 440 /dev/urandom | dd of="$src" conv=notrunc status=none
head -c $((1024 * 1024 - 34 * 512)) /dev/urandom | dd of="$src" bs=512 seek=34 conv=notrunc status=none

part() { # N: "offset size" in bytes
  sfdisk -J "$src" | python3 -c "import json,sys; p=json.load(sys.stdin)['partitiontable']['partitions'][$1-1]; print(p['start']*512, p['size']*512)"
}
loop_part() { # VAR N
  local off size dev
  read -r off size < <(part "$2")
  dev=$(losetup -f --show -o "$off" --sizelimit "$size" "$src") || return 1
  loops+=("$dev")
  printf -v "$1" %s "$dev"
}
fill_with() { # DEV MOUNT_COMMAND...
  local dev=$1; shift
  "$@" "$dev" "$work/fill" && cp -r "$content/data" "$work/fill/" && umount "$work/fill"
}
loop_part d1 1 && mkfs.vfat -F 16 "$d1" >/dev/null 2>&1 && mcopy -s -i "$d1" "$content/data" ::/ || exit 1
loop_part d2 2 && mkfs.exfat "$d2" >/dev/null && fill_with "$d2" mount.exfat-fuse || exit 1
loop_part d3 3 && mkntfs -Q -F -q "$d3" >/dev/null 2>&1 && fill_with "$d3" ntfs-3g || exit 1
loop_part d4 4 && mkfs.ext4 -q -F -d "$content" "$d4" || exit 1
loop_part d5 5 && mkfs.xfs -q -f "$d5" && fill_with "$d5" mount -t xfs || exit 1
loop_part d6 6 && mkfs.btrfs -q -f "$d6" >/dev/null && fill_with "$d6" mount -t btrfs || exit 1
for l in "${loops[@]}"; do losetup -d "$l"; done
loops=()

img=$work/img.asrimg
"$asrimg" backup "$src" --volumes all -o "$img" >"$work/backup.out" 2>&1 || { cat "$work/backup.out"; exit 1; }
"$asrimg" layout "$src" --volumes all --json --extents >"$work/layout.json" 2>/dev/null || exit 1

# ---- mount ------------------------------------------------------------------------------------
mounted() { [ -f "$1/README" ]; }
wait_mounted() { for _ in $(seq 100); do mounted "$1" && return 0; sleep 0.1; done; return 1; }
mnt=$work/mnt
check "mount -d returns once mounted" "$asrimg" mount "$img" "$mnt" -d
check "DIR lists README, disk0.img and one file per partition" \
  test "$(ls "$mnt" | tr '\n' ' ')" = "README disk0.img disk0p1.img disk0p2.img disk0p3.img disk0p4.img disk0p5.img disk0p6.img "
check "disk0.img has the source disk's size" test "$(stat -c %s "$mnt/disk0.img")" = "$(stat -c %s "$src")"
check "README names each volume's filesystem and how to mount XFS" \
  sh -c "grep -q 'fs xfs' '$mnt/README' && grep -q 'fs ntfs' '$mnt/README' && grep -q norecovery '$mnt/README' &&
         grep -q 'format=raw,snapshot=on' '$mnt/README'"
check "files are read-only" sh -c "! echo x >>'$mnt/disk0p4.img'"

vol_equal() { # FILE MOUNT_COMMAND...: mounted read-only, every file equal to the source's
  local f=$1; shift
  "$@" "$f" "$work/vol" || return 1
  diff -r "$content/data" "$work/vol/data"
  local rc=$?
  umount "$work/vol" || fusermount3 -u "$work/vol"
  return $rc
}
fat_equal() {
  rm -rf "$work/fatout" && mkdir "$work/fatout" && mcopy -s -n -i "$1" ::/data "$work/fatout/" &&
    diff -r "$content/data" "$work/fatout/data"
}
check "FAT volume (mtools): every file equal" fat_equal "$mnt/disk0p1.img"
# As root, exfat-fuse wants a block device: a read-only loop device over the file (a user opens it directly).
exfat_equal() {
  local dev rc
  dev=$(losetup -r -f --show "$1") || return 1
  loops+=("$dev")
  vol_equal "$dev" mount.exfat-fuse -o ro
  rc=$?
  losetup -d "$dev"
  return $rc
}
check "exFAT volume (mount.exfat-fuse -o ro on a read-only loop device): every file equal" exfat_equal "$mnt/disk0p2.img"
check "NTFS volume (ntfs-3g -o ro): every file equal" vol_equal "$mnt/disk0p3.img" ntfs-3g -o ro
check "ext4 volume (mount -o ro,loop): every file equal" vol_equal "$mnt/disk0p4.img" mount -o ro,loop
check "XFS volume (mount -o ro,norecovery,loop): every file equal" \
  vol_equal "$mnt/disk0p5.img" mount -t xfs -o ro,norecovery,loop
check "btrfs volume (mount -o ro,loop): every file equal" vol_equal "$mnt/disk0p6.img" mount -t btrfs -o ro,loop

# Every captured range (layout --extents, relative to each partition) and the boot regions: the
# first MiB (sector 0, GPT, gap) and the backup GPT in the last 33 sectors.
ranges_equal() { # A B: equal over those ranges
  python3 - "$work/layout.json" "$1" "$2" <<'EOF'
import json, sys
disk = json.load(open(sys.argv[1]))[0]
a, b = open(sys.argv[2], "rb"), open(sys.argv[3], "rb")
size = disk["size_bytes"]
ranges = [(0, 1 << 20), (size - 33 * 512, 33 * 512)]
for p in disk["partitions"]:
    ranges += [(p["start_bytes"] + o, n) for o, n in p.get("extents", [])]
total = 0
for off, n in ranges:
    for at in range(off, off + n, 1 << 20):
        k = min(1 << 20, off + n - at)
        a.seek(at); b.seek(at)
        if a.read(k) != b.read(k):
            sys.exit(f"differ in [{at}, +{k})")
        total += k
print(f"{total} bytes in {len(ranges)} ranges equal")
EOF
}
check "disk0.img equals the source disk over every captured range and the boot regions" ranges_equal "$mnt/disk0.img" "$src"
parts_equal() { # every disk0pN.img is disk0.img's bytes at partition N
  local n off size
  for n in 1 2 3 4 5 6; do
    read -r off size < <(part $n)
    cmp -n "$size" -i "$off:0" "$mnt/disk0.img" "$mnt/disk0p$n.img" || return 1
  done
}
check "each disk0pN.img is disk0.img's bytes at partition N" parts_equal
check "restore of the image to a file" "$asrimg" restore "$img" --to "$work/restored.img" --yes
check "disk0.img equals the restored disk byte for byte" cmp "$mnt/disk0.img" "$work/restored.img"
rm -f "$work/restored.img"

check "split set backup" "$asrimg" backup "$src" --volumes all -o "$work/split.asrimg" --split 1M
mkdir -p "$work/mnt-split"
check "a split set mounts" "$asrimg" mount "$work/split.asrimg" "$work/mnt-split" -d
check "its disk0.img equals the single file's" cmp "$work/mnt-split/disk0.img" "$mnt/disk0.img"
check "umount of the split set" "$asrimg" umount "$work/mnt-split"

# ---- a damaged chunk ----------------------------------------------------------------------------
bad=$work/bad.asrimg
cp "$img" "$bad"
# The middle chunk record's stored bytes: one flipped in its middle. Its id is printed.
chunk=$(python3 - "$bad" <<'EOF'
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
at, recs = 64, []
while True:
    i = b.find(b"ACNK", at)
    if i < 0: break
    recs.append(i); at = i + 4
i = recs[len(recs) // 2]
cid, stored = struct.unpack_from("<Q", b, i + 8)[0], struct.unpack_from("<I", b, i + 16)[0]
b[i + 64 + stored // 2] ^= 0x40
open(sys.argv[1], "wb").write(b)
print(cid)
EOF
)
mkdir -p "$work/mnt-bad"
"$asrimg" mount "$bad" "$work/mnt-bad" 2>"$work/bad.log" &
pids+=($!)
wait_mounted "$work/mnt-bad"
pages_check() { # damaged good: EIO pages only around the damaged chunk, every other page as in good
  python3 - "$1" "$2" <<'EOF'
import os, sys
a, b = os.open(sys.argv[1], os.O_RDONLY), os.open(sys.argv[2], os.O_RDONLY)
size, bad, at = os.fstat(a).st_size, 0, 0
while at < size:
    try:
        got = os.pread(a, 1 << 16, at)
        if got != os.pread(b, len(got), at):
            sys.exit(f"wrong bytes at {at}")
        at += len(got)
    except OSError:
        for p in range(at, min(at + (1 << 16), size), 4096):
            try:
                got = os.pread(a, 4096, p)
                if got != os.pread(b, len(got), p):
                    sys.exit(f"wrong bytes at {p}")
            except OSError:
                bad += 1
        at += 1 << 16
if not bad:
    sys.exit("no page gave an I/O error")
if bad * 4096 > 8 << 20:
    sys.exit(f"{bad} pages gave I/O errors: more than a chunk's")
print(f"{bad} pages gave I/O errors")
EOF
}
check "damaged chunk: I/O errors on its pages only, every other page right" pages_check "$work/mnt-bad/disk0.img" "$mnt/disk0.img"
check "the damaged chunk is named on standard error" grep -q "chunk $chunk\b" "$work/bad.log"
check "umount of the damaged image's mount" "$asrimg" umount "$work/mnt-bad"

# ---- unmounting -----------------------------------------------------------------------------------
exec 3<"$mnt/disk0p4.img"
check "umount while a file is held open: detached" "$asrimg" umount "$mnt"
read -r p4off _ < <(part 4)
check "the open file still reads" sh -c "cmp -n 1048576 -i 0:$p4off - '$src' <&3"
check "the mount is gone from the mount table" sh -c "! grep -q ' $mnt ' /proc/mounts"
mount_pid=$(pgrep -f "asrimg mount $img $mnt" | head -1)
check "the asrimg process still serves the open file" test -n "$mount_pid"
exec 3<&-
gone() { for _ in $(seq 50); do kill -0 "$mount_pid" 2>/dev/null || return 0; sleep 0.1; done; return 1; }
check "the asrimg process ends once the file is closed" gone

"$asrimg" mount "$img" "$mnt" 2>/dev/null &
fg_pid=$!
pids+=("$fg_pid")
check "mount in the foreground" wait_mounted "$mnt"
disown "$fg_pid" # no "Killed" from the shell
kill -9 "$fg_pid"
for _ in $(seq 50); do kill -0 "$fg_pid" 2>/dev/null || break; sleep 0.1; done
check "after kill -9, DIR is a dead mount" sh -c "! timeout 5 ls '$mnt' >/dev/null 2>&1"
check "asrimg umount clears it" timeout 10 "$asrimg" umount "$mnt"
check "the next mount on DIR works" "$asrimg" mount "$img" "$mnt" -d
check "and reads" cmp -n 1048576 "$mnt/disk0.img" "$src"
check "umount" "$asrimg" umount "$mnt"
check "nothing left mounted" sh -c "! grep -q '$work' /proc/mounts"

# ---- refusals --------------------------------------------------------------------------------------
head -c $(($(stat -c %s "$img") - 100)) "$img" >"$work/cut.asrimg"
check "an incomplete image is refused" sh -c "! '$asrimg' mount '$work/cut.asrimg' '$mnt' 2>'$work/refused' &&
  grep -q '^asrimg: error: incomplete image' '$work/refused' && ! grep -q ' $mnt ' /proc/mounts"
cp "$work/cut.asrimg" "$work/p.asrimg.partial"
check "a .partial image is refused" sh -c "! '$asrimg' mount '$work/p.asrimg.partial' '$mnt' 2>/dev/null"
check "DIR not a directory is refused" sh -c "! '$asrimg' mount '$img' '$src' 2>/dev/null"
check "umount of a directory asrimg does not serve is refused" sh -c "! '$asrimg' umount '$work' 2>'$work/refused' &&
  grep -q '^asrimg: error: umount: .*not a mount of asrimg mount' '$work/refused'"
check "a missing image is named" sh -c "! '$asrimg' mount '$work/none.asrimg' '$mnt' 2>'$work/refused' &&
  grep -q '^asrimg: error: .*none.asrimg: No such file' '$work/refused'"
check "usage: no directory exits 2" sh -c "'$asrimg' mount '$img' 2>/dev/null; test \$? -eq 2"

echo "mount: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
