#!/usr/bin/env bash
# Read and write faults beyond read_error_test.sh's bad data sectors, end to end through
# asrimg-eiofs (a FUSE disk with faults at chosen ranges) on disks made by the real tools:
#  - backup, bad sectors in metadata: the MBR, the post-MBR gap, an EBR, the GPT header, entries and
#    backup header, the FAT, ext4 group descriptors and block bitmap, NTFS's $MFT; and in a volume
#    captured whole. Each stops the backup with exit 1 and one error line naming what could not be
#    read and the disk byte of the bad sector, leaving no image and no .partial;
#  - backup, faults that must not stop it: short reads, errors that go away when read again (the
#    image is then exactly the source), a bad sector with --ignore-read-errors (recorded exactly);
#  - backup, a disk that vanishes mid-read: it stops, even with --ignore-read-errors;
#  - restore: the image failing to read, a target failing a write, filling up (ENOSPC, a small
#    tmpfs), failing fsync, and --verify failing to read it back. Each exits 1 with one error line
#    naming the file and offset, and nothing (text or --json) says it was restored or verified.
# Offsets come from the tools' own answers (sfdisk, the FAT and NTFS boot sectors, dumpe2fs).
# Usage: read_fault_test.sh ASRIMG ASRIMG-READVOL EIOFS
set -u
asrimg=$1 readvol=$2 eiofs=$3
skip_all() { echo "SKIP: $1"; exit 77; }
[ -x "$eiofs" ] || skip_all "asrimg-eiofs not built (no libfuse3 at configure time)"
[ -c /dev/fuse ] || skip_all "no /dev/fuse"
for tool in fusermount3 sfdisk mkfs.vfat mcopy mkfs.ext4 dumpe2fs mkntfs python3; do
  command -v "$tool" >/dev/null || skip_all "$tool not installed"
done

work=$(mktemp -d /tmp/asrimg-readfault-XXXXXX)
mnt=$work/mnt small=$work/small fuse_pid=""
mkdir -p "$mnt" "$small"
. "$(dirname "$0")/eiofs_lib.sh" # unmount
cleanup() {
  unmount
  mountpoint -q "$small" && umount "$small"
  rm -rf "$work"
}
trap cleanup EXIT
pass=0 fail=0
check() { # name, then a command that must succeed
  local name=$1; shift
  if "$@" >"$work/out" 2>"$work/err"; then pass=$((pass + 1)); else
    fail=$((fail + 1)); echo "FAIL: $name"; sed 's/^/  out: /' "$work/out" | head -5; sed 's/^/  err: /' "$work/err" | head -5
    sed 's/^/  asrimg: /' "$work/err.saved" 2>/dev/null | grep -v '^  asrimg:  ' | head -5; fi
}
run_saving() { timeout 120 "$@" >"$work/out.saved" 2>"$work/err.saved"; echo $? >"$work/rc.saved"; }
rc_is() { [ "$(cat "$work/rc.saved")" -eq "$1" ]; }
py() { python3 -c "$1" "${@:2}"; }

# Serves DISK as $mnt/disk with the given eiofs faults.
mount_eiofs() { # disk, eiofs options
  local disk=$1; shift
  "$eiofs" "$disk" "$mnt" -f -s --log "$work/eiofs.log" "$@" 2>"$work/eiofs.err" &
  fuse_pid=$!
  for _ in $(seq 200); do
    [ -e "$mnt/disk" ] && return 0
    kill -0 "$fuse_pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "SKIP: cannot mount asrimg-eiofs here:"; sed 's/^/  /' "$work/eiofs.err"
  fuse_pid=""
  exit 77
}

# The saved run failed as it must: exit 1, exactly one error line, and it matches the regex.
failed_saying() { # name, regex for what follows "asrimg: error: "
  check "$1: exits 1" rc_is 1
  check "$1: exactly one error line" test "$(grep -c '^asrimg: error:' "$work/err.saved")" -eq 1
  check "$1: it says what and where" grep -qE "^asrimg: error: $2\$" "$work/err.saved"
}

# A backup of every volume of DISK served with the eiofs options fails saying the regex, and
# leaves nothing behind. --all-direct: every read reaches eiofs as issued, so the bad sector
# named is the bad sector itself (through the page cache it would be the page holding it).
backup_fails() { # name, regex, disk, eiofs options
  local name=$1 re=$2 disk=$3; shift 3
  mount_eiofs "$disk" --all-direct "$@"
  run_saving "$asrimg" backup "$mnt/disk" -o "$work/fail.asrimg" --volumes all
  unmount
  failed_saying "$name" "$re"
  check "$name: no image is left" test ! -e "$work/fail.asrimg"
  check "$name: no .partial is left" test ! -e "$work/fail.asrimg.partial"
}

# ---- the disks -----------------------------------------------------------------------------

# GPT, one FAT32 volume at 1 MiB holding an 8 MiB random file (as read_error_test.sh).
fat=$work/fat.img
truncate -s 64M "$fat"
printf 'label: gpt\nstart=2048, size=60MiB, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\n' | sfdisk --quiet "$fat"
mkfs.vfat -F 32 --offset 2048 "$fat" $((60 << 10)) >/dev/null 2>&1
head -c 8M /dev/urandom >"$work/big.bin"
mcopy -i "$fat@@1M" "$work/big.bin" ::big.bin
big=$(py 'import sys; print(open(sys.argv[1],"rb").read().find(open(sys.argv[2],"rb").read(4096)))' "$fat" "$work/big.bin")
# The first FAT: reserved sectors times bytes per sector (boot sector offsets 14 and 11).
fat_at=$(py 'import struct, sys
b = open(sys.argv[1], "rb").read()[1 << 20:(1 << 20) + 512]
print((1 << 20) + struct.unpack_from("<H", b, 14)[0] * struct.unpack_from("<H", b, 11)[0])' "$fat")
# The GPT entries: the primary header's entry LBA (header offset 72); their third sector.
gpt_entries=$(py 'import struct, sys; print(struct.unpack_from("<Q", open(sys.argv[1], "rb").read(1024), 512 + 72)[0] * 512 + 1024)' "$fat")

# GPT, an ext4 volume (1 KiB blocks) at 1 MiB and an NTFS volume at 41 MiB.
en=$work/en.img
truncate -s 96M "$en"
printf 'label: gpt\nstart=2048, size=40MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\nstart=83968, size=40MiB, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\n' |
  sfdisk --quiet "$en"
mkfs.ext4 -q -F -b 1024 -E offset=$((1 << 20)) "$en" 40M
truncate -s 40M "$work/ntfs.img"
mkntfs -q -F -Q -p 83968 "$work/ntfs.img" >/dev/null 2>&1
dd if="$work/ntfs.img" of="$en" bs=1M seek=41 conv=notrunc,sparse status=none
rm -f "$work/ntfs.img"
ext_at=$((1 << 20)) ntfs_at=$((41 << 20))
# dumpe2fs: group 0's descriptors and block bitmap, in blocks of the block size.
dumpe2fs "$en?offset=$ext_at" >"$work/dumpe2fs" 2>/dev/null
ext_bs=$(sed -n 's/^Block size: *//p' "$work/dumpe2fs")
ext_gd=$(sed -n 's/.*Group descriptors at \([0-9]*\)-.*/\1/p' "$work/dumpe2fs" | head -1)
ext_bb=$(sed -n 's/.*Block bitmap at \([0-9]*\) .*/\1/p' "$work/dumpe2fs" | head -1)
# NTFS: $MFT's first cluster (boot sector offset 48) times the cluster size (offsets 11 and 13).
mft_at=$(py 'import struct, sys
b = open(sys.argv[1], "rb").read()[int(sys.argv[2]):int(sys.argv[2]) + 512]
print(int(sys.argv[2]) + struct.unpack_from("<Q", b, 48)[0] * struct.unpack_from("<H", b, 11)[0] * b[13])' "$en" $ntfs_at)

# MBR: a primary partition of random data (no filesystem: captured whole), an extended one with
# a logical FAT volume, and boot code in the post-MBR gap.
mbr=$work/mbr.img
truncate -s 32M "$mbr"
printf 'label: dos\nstart=2048, size=8MiB, type=da\nstart=18432, size=16MiB, type=5\nstart=20480, size=8MiB, type=c\n' |
  sfdisk --quiet "$mbr"
head -c 8M /dev/urandom | dd of="$mbr" bs=1M seek=1 conv=notrunc status=none
head -c 64K /dev/urandom | dd of="$mbr" bs=512 seek=1 conv=notrunc status=none
mkfs.vfat --offset 20480 "$mbr" 8192 >/dev/null 2>&1
ebr=$(sfdisk -J "$mbr" | py 'import json, sys
print(min(p["start"] for p in json.load(sys.stdin)["partitiontable"]["partitions"] if p["type"] == "5") * 512)')

check "the disks were made" test "$big" -gt 0 -a "$fat_at" -gt 0 -a -n "$ext_gd" -a -n "$ext_bb" -a "$mft_at" -gt "$ntfs_at" \
  -a "$ebr" -gt 0
echo "# FAT at $fat_at, big.bin at $big; ext4 descriptors at block $ext_gd, bitmap at $ext_bb ($ext_bs-byte blocks); \$MFT at $mft_at; EBR at $ebr"

# ---- backup: bad sectors in metadata and in a volume captured whole ---------------------------

d="$mnt/disk"
# The partition table and the boot regions, read when the disk is opened.
backup_fails "MBR" "cannot read the MBR \($d at byte 0\): Input/output error" "$mbr" --bad 0:512
backup_fails "post-MBR gap" "cannot read the post-MBR gap \($d at byte 51200\): Input/output error" "$mbr" --bad 51200:512
backup_fails "EBR" "cannot read an EBR \($d at byte $ebr\): Input/output error" "$mbr" --bad "$ebr:512"
backup_fails "GPT header" "cannot read the GPT header \($d at byte 512\): Input/output error" "$fat" --bad 512:512
backup_fails "GPT entries" "cannot read the GPT partition entries \($d at byte $gpt_entries\): Input/output error" "$fat" \
  --bad "$gpt_entries:512"
backup_fails "backup GPT header" "cannot read the backup GPT header \($d at byte $(((64 << 20) - 512))\): Input/output error" \
  "$fat" --bad $(((64 << 20) - 512)):512
# Filesystem metadata, read to map the used blocks. Past libblkid's first 256 KiB of the volume
# the parser meets it; inside them libblkid does, and the parsers are asked to name it.
bad=$((fat_at + (256 << 10) + 1024))
backup_fails "FAT" "backup: volume 1 of $d: vfat metadata: cannot read the FAT \($d at byte $bad\): Input/output error \(--ignore-read-errors captures it whole\)" \
  "$fat" --bad "$bad:512"
bad=$((fat_at + 512))
backup_fails "FAT, first sectors" "backup: volume 1 of $d: cannot probe its filesystem type: cannot read the FAT \($d at byte $bad\): Input/output error .*" \
  "$fat" --bad "$bad:512"
bad=$((ext_at + ext_gd * ext_bs + 512))
backup_fails "ext4 group descriptors" "backup: volume 1 of $d: .*ext: cannot open the filesystem: cannot read the group descriptors \($d at byte $bad\): Input/output error .*" \
  "$en" --bad "$bad:512"
bad=$((ext_at + ext_bb * ext_bs + 512))
backup_fails "ext4 block bitmap" "backup: volume 1 of $d: ext4 metadata: ext: cannot read the block bitmap: cannot read $d at byte $bad: Input/output error .*" \
  "$en" --bad "$bad:512"
bad=$((mft_at + 512))
backup_fails "NTFS \$MFT" "backup: volume 2 of $d: .*cannot read \\\$MFT record 0 \($d at byte $bad\): Input/output error .*" \
  "$en" --bad "$bad:512"
# A volume with no filesystem is read whole, as data.
bad=$(((1 << 20) + (3 << 20) + 512))
backup_fails "raw volume" "backup: reading $d at byte $bad: Input/output error" "$mbr" --bad "$bad:512"

# --ignore-read-errors: a volume whose FAT cannot be read is captured whole, and exactly the bad
# sector is recorded as unreadable; the same for the raw volume.
for what in fat mbr; do
  if [ $what = fat ]; then disk=$fat bad=$((fat_at + (256 << 10) + 1024)) vol=0 part=$((1 << 20)); else
    disk=$mbr bad=$(((1 << 20) + (3 << 20) + 512)) vol=0 part=$((1 << 20)); fi
  mount_eiofs "$disk" --all-direct --bad "$bad:512"
  run_saving "$asrimg" backup "$d" -o "$work/$what.asrimg" --volumes all --ignore-read-errors
  unmount
  check "$what --ignore-read-errors: the backup succeeds" rc_is 0
  check "$what --ignore-read-errors: verify lists exactly the bad sector" py '
import json, sys
d = json.load(sys.stdin)
want = [{"volume": 0, "offset": int(sys.argv[1]) - int(sys.argv[2]), "length": 512, "disk": 0, "disk_offset": int(sys.argv[1])}]
assert d["ok"] is True and d["unreadable"] == want, d
' "$bad" "$part" < <("$asrimg" verify --json "$work/$what.asrimg")
done
check "fat --ignore-read-errors: the volume was captured whole" py '
import json, sys
d = json.load(sys.stdin)
assert [p["capture"] for p in d["disks"][0]["partitions"]] == ["full"], d["disks"][0]["partitions"]
' < <("$asrimg" info --json "$work/fat.asrimg")

# ---- backup: faults that must not stop it ---------------------------------------------------

# Errors that go away: a data sector failing twice (its read request, then its first read
# alone) and a FAT sector failing once. The backup reads them again and gets them: nothing is
# unreadable, the volume is mapped by its FAT, and its every byte is the source's. Short reads
# (all bytes in the end, to a reader that asks again) in big.bin and in the FAT, likewise.
check_clean_copy() { # name, image
  check "$1: nothing unreadable, the volume mapped by its FAT" py '
import json, sys
d = json.load(sys.stdin)
assert d["unreadable_bytes"] == 0, d["unreadable_bytes"]
assert [p["capture"] for p in d["disks"][0]["partitions"]] == ["used"], d["disks"][0]["partitions"]
' < <("$asrimg" info --json "$2")
  check "$1: the volume reads back" "$readvol" "$2" 0 "$work/vol.raw"
  check "$1: every used byte is the source's" py '
import sys
disk, vol = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
big = open(sys.argv[3], "rb").read()
at = int(sys.argv[4]) - (1 << 20)
assert vol[at:at + len(big)] == big, "big.bin differs"
meta = int(sys.argv[5]) - (1 << 20) + (512 << 10) # the reserved sectors and the FATs
assert vol[:meta] == disk[1 << 20:(1 << 20) + meta], "the FAT differs"
' "$fat" "$work/vol.raw" "$work/big.bin" "$big" "$fat_at"
  rm -f "$work/vol.raw"
}
: >"$work/eiofs.log"
mount_eiofs "$fat" --bad $((big + (1 << 20) + 512)):512:2 --bad $((fat_at + (256 << 10) + 1024)):512:1
run_saving "$asrimg" backup "$d" -o "$work/transient.asrimg" --volumes all
unmount
check "transient: the backup succeeds" rc_is 0
check "transient: the errors happened" test "$(grep -c ' eio$' "$work/eiofs.log")" -ge 3
check_clean_copy "transient" "$work/transient.asrimg"

: >"$work/eiofs.log"
mount_eiofs "$fat" --all-direct --short $((big + (1 << 20) + 512)):4096 --short $((fat_at + (256 << 10))):512
run_saving "$asrimg" backup "$d" -o "$work/short.asrimg" --volumes all
unmount
check "short reads: the backup succeeds" rc_is 0
check "short reads: there were short reads" grep -q ' short$' "$work/eiofs.log"
check_clean_copy "short reads" "$work/short.asrimg"

# ---- backup: a disk that vanishes mid-read --------------------------------------------------

# After 4 MiB every read fails and the disk's size reads as 0. Recording the rest of the disk as
# unreadable, sector by sector, would be no backup: it stops even with --ignore-read-errors.
for opt in "" --ignore-read-errors; do
  mount_eiofs "$fat" --vanish-after $((4 << 20))
  run_saving "$asrimg" backup "$d" -o "$work/fail.asrimg" --volumes all $opt
  unmount
  failed_saying "vanish $opt" "backup: reading $d at byte [0-9]+: Input/output error: the disk is gone \(its size reads as 0 bytes, not 67108864\)"
  check "vanish $opt: no image is left" test ! -e "$work/fail.asrimg"
  check "vanish $opt: no .partial is left" test ! -e "$work/fail.asrimg.partial"
done

# ---- restore: the image, the target, fsync, --verify ----------------------------------------

"$asrimg" backup "$fat" -o "$work/good.asrimg" --volumes all 2>/dev/null
img=$work/good.asrimg
target=$work/target.img
truncate -s 64M "$target"
# Nothing claims it was restored: no summary line, and --json says ok false with no byte counts.
claims_nothing() { # name
  check "$1: no summary line" sh -c "! grep -q '^restore: ' '$work/err.saved'"
  check "$1: --json says ok false, counts nothing, verified nothing" py '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["ok"] is False and d["error"] and d["verified"] is False, d
assert "bytes_written" not in d and "data_bytes" not in d, d
' "$work/json"
}
restore_fails() { # name, regex, image, target, eiofs backing (or ""), eiofs options; restore options after --
  local name=$1 re=$2 image=$3 to=$4 backing=$5; shift 5
  local eio=() ropt=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do eio+=("$1"); shift; done
  [ $# -gt 0 ] && shift && ropt=("$@")
  [ -n "$backing" ] && mount_eiofs "$backing" "${eio[@]}"
  [ "$to" = new ] && to=$small/new.img
  timeout 120 "$asrimg" restore "$image" --to "$to" --yes --json "${ropt[@]}" >"$work/json" 2>/dev/null
  rm -f "$small/new.img"
  run_saving "$asrimg" restore "$image" --to "$to" --yes "${ropt[@]}"
  rm -f "$small/new.img"
  unmount
  failed_saying "$name" "$re"
  claims_nothing "$name"
}
# The image: a sector in its middle (chunk data) fails.
sz=$(stat -c %s "$img")
restore_fails "image EIO" "cannot read $d at offset [0-9]+: Input/output error; it holds volume 0 offset .*" \
  "$d" new "$img" --bad $((sz / 2)):512
# The target: a write touching 5 MiB fails. A device fails a write as a whole: the message gives
# the whole write, and the bad sector must lie in it.
restore_fails "target write EIO" "cannot write $d at offset [0-9]+ \(a write of [0-9]+ bytes\): Input/output error" \
  "$img" "$d" "$target" --writable --bad-write $((5 << 20)):4096
check "target write EIO: the write named holds the bad sector" py '
import re, sys
m = re.search(r"at offset (\d+) \(a write of (\d+) bytes\)", open(sys.argv[1]).read())
off, n = int(m.group(1)), int(m.group(2))
assert off <= 5 << 20 < off + n, (off, n)
' "$work/err.saved"
# A new file in a 4 MiB tmpfs: the volume's 8 MiB do not fit.
if mount -t tmpfs -o size=4M tmpfs "$small" 2>/dev/null; then
  restore_fails "ENOSPC" "cannot write $small/new.img at offset [0-9]+ \(a write of [0-9]+ bytes\): No space left on device" \
    "$img" new ""
  umount "$small"
else
  echo "# no tmpfs mount here: ENOSPC not tried"
fi
restore_fails "fsync" "cannot sync $d: Input/output error" "$img" "$d" "$target" --writable --fail-fsync
# --verify: everything was written, but reading it back fails at a sector of big.bin.
bad=$((big + (1 << 20) + 512))
restore_fails "--verify read-back" "verify: cannot read $d at offset [0-9]+: Input/output error" \
  "$img" "$d" "$target" --writable --bad "$bad:512" -- --verify
# Named at the O_DIRECT unit that holds it (the FUSE file says no alignment: 4 KiB).
check "--verify read-back: the offset named is the unit holding the bad sector" py '
import re, sys
off = int(re.search(r"at offset (\d+):", open(sys.argv[1]).read()).group(1))
assert off <= int(sys.argv[2]) < off + 4096, off
' "$work/err.saved" "$bad"

echo "read_fault_test: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
