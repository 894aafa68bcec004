#!/usr/bin/env bash
# End-to-end checks of `asrimg restore` (and `asrimg verify --against`) with real filesystems and
# the real tools that check them. Source disks are files (and, for 4Kn, a loop device with
# 4096-byte sectors) partitioned with sfdisk and filled through loop devices at each partition's
# offset (this kernel does no partition scanning of loop devices):
#   - a GPT disk holding every filesystem asrimg knows (FAT12, FAT16, FAT32 ESP, exFAT, NTFS, ext2,
#     ext3, ext4, swap), with boot code in sector 0 and random bytes in the gap before the first
#     partition; restored onto a 1.5x larger target full of random garbage: every filesystem's
#     checker passes, every file reads back identical, the partition table, ids, boot code, gap
#     and the backup GPT at the new end are right, and the garbage in unused space is untouched;
#   - an MBR disk with an extended partition and two logical ones (EBR chain);
#   - mirrors (--to A --to B, --verify, --json); an image of two disks mapped with --to N=TARGET;
#   - refusals that must leave the target byte for byte unchanged: smaller, mounted, holding the
#     image, no --yes without a terminal, the same target twice, targets sharing storage (loop
#     devices over a target or the same file), a target another restore holds, another logical
#     sector size;
#   - a damaged chunk (stop naming it and its ranges; --keep-going), verify --against;
#   - 4Kn disks, --new-ids, --grow, --zero-unused, --discard, restore from stdin (one file and a
#     split set), and idempotence (a second run, and a run after a restore that stopped half way);
#   - from stdin, a disk whose files dedup (a block repeated through files, copies of a file): the
#     bytes of the restore from the file; a failed restore (a cut stream, a damaged chunk, a full
#     target) says after its error what each target holds and what to do.
#   - FAT12/16/32, exFAT and NTFS made on the whole disk, no partition table (sector 0 a boot
#     sector that libfdisk takes for an MBR): read, backed up and restored as that filesystem; an
#     MBR whose sector 0 also carries a BPB stays partitioned.
# Usage: restore_test.sh ASRIMG
# shellcheck disable=SC2154 # loop_at VAR ... assigns VAR
set -u
unset COLUMNS # tables wrap to it: the checks read them one row a line, as on a pipe
asrimg=$1
skip_all() { echo "SKIP: $1"; echo "restore: 0 passed, 0 failed, 1 skipped"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip_all "needs root (loop devices, mount)"
for tool in losetup mount umount sfdisk sgdisk blkid mkfs.ext4 e2fsck debugfs dumpe2fs mkfs.vfat fsck.vfat \
            mcopy mkswap cmp diff sha256sum python3; do
  command -v "$tool" >/dev/null || skip_all "$tool not installed"
done
start_time=$(date +%s)

work=$(mktemp -d /tmp/asrimg-restore-XXXXXX)
mkdir -p "$work/mnt" "$work/tmnt"
loops=()
source "$(dirname "${BASH_SOURCE[0]}")/loop_lib.sh"
cleanup() {
  umount "$work/mnt" 2>/dev/null
  umount "$work/tmnt" 2>/dev/null
  detach_ours "$work" "${loops[@]}"
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
export MTOOLS_SKIP_CHECK=1
pass=0 fail=0 skipped=0
check() { # name, then a command that must succeed
  local name=$1; shift
  if "$@" >"$work/out" 2>"$work/err"; then pass=$((pass + 1)); else
    fail=$((fail + 1)); echo "FAIL: $name"; sed 's/^/  out: /' "$work/out" | head -5; sed 's/^/  err: /' "$work/err" | head -8; fi
}
skip() { skipped=$((skipped + 1)); echo "SKIP: $1"; }
run_saving() { # the command's stdout, stderr and exit status, for the checks after it
  "$@" >"$work/out.saved" 2>"$work/err.saved"
  echo $? >"$work/rc.saved"
  grep -E 'Sanitizer|runtime error:' "$work/err.saved" # shown, so that ctest sees them (ASan builds)
}
rc_is() { # the saved command's exit status is $1 (else show its stderr)
  local rc; rc=$(cat "$work/rc.saved")
  [ "$rc" -eq "$1" ] || { echo "exit status $rc, expected $1" >&2; head -8 "$work/err.saved" >&2; false; }
}
err_has() { grep -qF -- "$1" "$work/err.saved" || { head -8 "$work/err.saved" >&2; false; }; }
err_has_word() { grep -qw -- "$1" "$work/err.saved" || { head -8 "$work/err.saved" >&2; false; }; }
is_error() { grep -q '^asrimg: error: ' "$work/err.saved" || { head -8 "$work/err.saved" >&2; false; }; }
note_follows_error() { # one error line, and the note on the line after it
  if [ "$(grep -c '^asrimg: error: ' "$work/err.saved")" -ne 1 ] ||
    ! grep -A1 '^asrimg: error: ' "$work/err.saved" | tail -n 1 | grep -q '^asrimg: note: '; then
    tail -4 "$work/err.saved" >&2
    false
  fi
}
json_ok() { # a Python expression over d, the JSON object the saved command printed on stdout
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert $1, d" "$work/out.saved"
}
restore() { run_saving "$asrimg" restore "$@"; } # IMAGE --to ... [options]
sum_of() { sha256sum <"$1" | cut -d' ' -f1; }
same_bytes() { cmp -n "$4" -i "$3:$3" "$1" "$2"; } # A B OFFSET LENGTH
same_file() { cmp "$1" "$2"; }
equal() { [ "$1" = "$2" ] || { echo "got '$1', expected '$2'" >&2; false; }; }

# ---- small tools ------------------------------------------------------------------------------
# geom DISK N: "offset size" in bytes of partition N (sfdisk's view, any sector size); walk IMAGE:
# the chunk records (id, file offset of the stored bytes, stored and content length) and extents
# (volume, offset, length, chunk) of a single-file image, read with SPEC sections 3-9 and nothing
# of asrimg; ebrs DISK: byte offsets of the EBR chain; zeros/hole FILE OFFSET LENGTH: the range
# reads as zeros / holds no data (SEEK_DATA); flip FILE OFFSET: inverts one byte; ext_free DEV:
# "offset length" in bytes of the largest free block range of an ext2/3/4 filesystem;
# captured_equal IMAGE SRC TARGET: every data and zero extent of an image of one whole-disk
# volume reads the same on SRC and TARGET; reseal_exfat FILE: exFAT's boot checksum and backup
# boot region made again after its boot code changed.
cat >"$work/util.py" <<'EOF'
import json, os, re, struct, subprocess, sys

def geom(disk, n):
    t = json.loads(subprocess.check_output(["sfdisk", "-J", disk]))["partitiontable"]
    ss = t.get("sectorsize", 512)
    for p in t["partitions"]:
        if re.search(r"\D%s$" % n, p["node"]):
            print(p["start"] * ss, p["size"] * ss)
            return
    sys.exit("no partition %s on %s" % (n, disk))

def records(path):  # ("chunk", id, offset, stored, content) and ("extent", volume, offset, length, ref)
    with open(path, "rb") as f:
        data = f.read()
    pos = 64 + struct.unpack_from("<I", data, 64 + 4)[0]  # part header, then AHDR of header_len
    while pos < len(data):
        tag = data[pos:pos + 4]
        if tag == b"ACNK":
            cid, stored, content = struct.unpack_from("<QII", data, pos + 8)
            yield ("chunk", cid, pos + 64, stored, content)
            pos += 64 + stored
        elif tag in (b"ALAY", b"AVOL", b"AEXT"):
            clen = struct.unpack_from("<Q", data, pos + 8)[0]
            if tag == b"AEXT":
                vol, count = struct.unpack_from("<II", data, pos + 32)
                for i in range(count):
                    off, length, ref = struct.unpack_from("<QQQ", data, pos + 40 + 32 * i)
                    yield ("extent", vol, off, length, ref)
            pos += 32 + clen
        elif tag == b"AIDX":
            return
        else:
            sys.exit("unknown record %r at %d" % (tag, pos))

def walk(path):  # chunks, and the extents that have data in a chunk
    for r in records(path):
        if r[0] == "chunk" or r[4] < 0xFFFFFFFFFFFFFFFE:
            print(*r)

def captured_equal(image, src, tgt):  # every captured range (data or zero) of an image of one
    n = 0                             # whole-disk volume reads the same on SRC and TARGET
    with open(src, "rb") as a, open(tgt, "rb") as b:
        for r in records(image):
            if r[0] != "extent" or r[4] == 0xFFFFFFFFFFFFFFFE:
                continue
            if r[1] != 0:
                sys.exit("volume %d: not an image of one volume" % r[1])
            a.seek(r[2])
            b.seek(r[2])
            if a.read(r[3]) != b.read(r[3]):
                sys.exit("captured range %d+%d differs" % (r[2], r[3]))
            n += 1
    if not n:
        sys.exit("no captured range")
    print(n, "ranges equal")

def reseal_exfat(path):  # exFAT's boot checksum (sector 11) and backup boot region, made again
    with open(path, "r+b") as f:
        boot = bytearray(f.read(12 * 512))
        s = 0
        for i in range(11 * 512):
            if i not in (106, 107, 112):
                s = ((0x80000000 if s & 1 else 0) + (s >> 1) + boot[i]) & 0xFFFFFFFF
        boot[11 * 512:] = struct.pack("<I", s) * 128
        f.seek(0)
        f.write(boot)
        f.write(boot)

def ebrs(disk):
    with open(disk, "rb") as f:
        def sector(lba):
            f.seek(lba * 512)
            return f.read(512)
        entries = lambda s: [struct.unpack_from("<4xB3xII", s, 446 + 16 * i) for i in range(4)]
        ext = [e for e in entries(sector(0)) if e[0] in (0x05, 0x0F, 0x85)]
        if not ext:
            sys.exit("no extended partition")
        base = ebr = ext[0][1]
        while True:
            print(ebr * 512)
            link = [e for e in entries(sector(ebr))[1:2] if e[0] in (0x05, 0x0F, 0x85)]
            if not link:
                return
            ebr = base + link[0][1]

def zeros(path, off, length):
    with open(path, "rb") as f:
        f.seek(off)
        while length:
            b = f.read(min(length, 1 << 20))
            if not b or b.count(0) != len(b):
                sys.exit("nonzero bytes in the range")
            length -= len(b)

def hole(path, off, length):  # the host filesystem's blocks inside the range
    fd = os.open(path, os.O_RDONLY)
    bs = os.fstat(fd).st_blksize
    end = (off + length) // bs * bs
    off = (off + bs - 1) // bs * bs
    length = end - off
    try:
        data = os.lseek(fd, off, os.SEEK_DATA)
    except OSError:
        data = os.fstat(fd).st_size  # ENXIO: no data after off
    if data < off + length:
        sys.exit("data at %d, inside the range %d+%d" % (data, off, length))

def flip(path, off):
    with open(path, "r+b") as f:
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ 0xFF]))

def ext_log(dev):  # "offset length" of each run of an ext journal's log: its blocks but the first
    out = subprocess.check_output(["debugfs", "-R", "stat <8>", dev], stderr=subprocess.DEVNULL, text=True)
    bs = int(re.search(r"^Block size:\s+(\d+)", subprocess.check_output(
        ["dumpe2fs", "-h", dev], stderr=subprocess.DEVNULL, text=True), re.M).group(1))
    runs = re.search(r"^(?:BLOCKS|EXTENTS):\n(.*)$", out, re.M).group(1)
    for a, b, p in re.findall(r"\((\d+)(?:-(\d+))?\):(\d+)", runs):  # (IND), (ETB0) are not the log
        a, b, p = int(a), int(b or a), int(p)
        if a == 0:
            a, p = 1, p + 1
        if a <= b:
            print(p * bs, (b - a + 1) * bs)

def ext_free(dev):
    out = subprocess.check_output(["dumpe2fs", dev], stderr=subprocess.DEVNULL, text=True)
    bs = int(re.search(r"^Block size:\s+(\d+)", out, re.M).group(1))
    best = (0, 0)
    for line in re.findall(r"^\s+Free blocks: (.+)$", out, re.M):
        for r in line.split(", "):
            a, _, b = r.partition("-")
            a, b = int(a), int(b or a)
            best = max(best, (b - a + 1, a))
    print(best[1] * bs, best[0] * bs)

cmd, args = sys.argv[1], sys.argv[2:]
{"ext_log": ext_log, "geom": geom, "walk": walk, "captured_equal": captured_equal, "reseal_exfat": reseal_exfat, "ebrs": ebrs,
 "zeros": lambda p, o, l: zeros(p, int(o), int(l)),
 "hole": lambda p, o, l: hole(p, int(o), int(l)), "flip": lambda p, o: flip(p, int(o)),
 "ext_free": ext_free}[cmd](*args)
EOF
util() { python3 "$work/util.py" "$@"; }

# loop_at VAR FILE OFFSET SIZE SECTOR [losetup options]: a loop device over FILE's byte range, in VAR.
loop_at() {
  local _dev
  _dev=$(losetup -f --show -o "$3" --sizelimit "$4" --sector-size "$5" "${@:6}" "$2") || return 1
  loops+=("$_dev")
  printf -v "$1" %s "$_dev"
}

# ---- filesystems ------------------------------------------------------------------------------
# Which optional filesystems can be made and read here: without them their partition stays empty
# and its checks are skipped.
have_exfat=1 have_ntfs=1
for tool in mkfs.exfat fsck.exfat mount.exfat-fuse; do command -v $tool >/dev/null || have_exfat=""; done
for tool in mkntfs ntfsfix ntfs-3g; do command -v $tool >/dev/null || have_ntfs=""; done
[ -e /dev/fuse ] || { have_exfat=""; have_ntfs=""; }

# make_content NAME MiB: $work/content/NAME/data holds documentation, MiB of random bytes and a
# copy of them (a duplicate), and a file naming it: what filesystem NAME is filled with.
make_content() {
  local d=$work/content/$1/data
  mkdir -p "$d/doc" "$d/dup"
  cp -rL /usr/share/doc/e2fsprogs /usr/share/doc/mtools "$d/doc/" 2>/dev/null
  echo "$1" >"$d/name.txt"
  head -c "$2M" /dev/urandom >"$d/random.bin"
  cp "$d/random.bin" "$d/dup/random-copy.bin"
}

# make_fs DISK SECTOR N FS NAME: filesystem FS in partition N of DISK, holding content NAME
# (swap: its UUID is kept in content/NAME/uuid instead).
make_fs() {
  local disk=$1 ss=$2 n=$3 fs=$4 content=$work/content/$5 off size dev rc
  read -r off size < <(util geom "$disk" "$n")
  loop_at dev "$disk" "$off" "$size" "$ss" || return 1
  exec 3>&2 2>>"$work/make.log" # the tools' chatter (geometry warnings); shown if this fails
  case $fs in
    fat12 | fat16 | fat32) mkfs.vfat -F "${fs#fat}" "$dev" >/dev/null && mcopy -s -i "$dev" "$content/data" ::/ ;;
    fat) mkfs.vfat "$dev" >/dev/null && mcopy -s -i "$dev" "$content/data" ::/ ;;
    exfat) mkfs.exfat "$dev" >/dev/null && fill_mounted "$dev" "$content" mount.exfat-fuse ;;
    ntfs) mkntfs -Q -F -q "$dev" && fill_mounted "$dev" "$content" ntfs-3g ;;
    ext2 | ext3 | ext4) mkfs.ext4 -q -F -t "$fs" -d "$content" "$dev" ;;
    swap) mkswap "$dev" >/dev/null && blkid -p -s UUID -o value "$dev" >"$content/uuid" ;;
    none) true ;;
  esac
  rc=$?
  exec 2>&3 3>&-
  losetup -d "$dev"
  [ $rc -eq 0 ] || tail -5 "$work/make.log" >&2
  return $rc
}
fill_mounted() { # DEV CONTENT MOUNT_COMMAND
  "$3" "$1" "$work/mnt" || return 1
  cp -r "$2/data" "$work/mnt/"
  local rc=$?
  umount "$work/mnt" && return $rc
}

fs_type_is() { equal "$(blkid -p -s TYPE -o value "$1")" "$2"; }
fat_files_equal() { # DEV CONTENT
  rm -rf "$work/fatout" && mkdir "$work/fatout" &&
    mcopy -s -n -i "$1" ::/data "$work/fatout/" && diff -r "$2/data" "$work/fatout/data"
}
mounted_files_equal() { # DEV CONTENT MOUNT_COMMAND...
  local dev=$1 content=$2 rc
  "${@:3}" "$dev" "$work/mnt" || return 1
  diff -r "$content/data" "$work/mnt/data"
  rc=$?
  umount "$work/mnt" && return $rc
}

# check_volume LABEL DISK SECTOR OFFSET SIZE FS NAME: the filesystem at DISK's byte range is of
# type FS, its checker passes and it holds exactly the files of content NAME. Read-only loop.
check_volume() {
  local label=$1 disk=$2 ss=$3 off=$4 size=$5 fs=$6 content=$work/content/$7 dev
  case $fs in
    none) skip "$label: no $7 tools here"; return ;;
  esac
  if ! loop_at dev "$disk" "$off" "$size" "$ss" -r; then check "$label: loop device at $off" false; return; fi
  case $fs in
    fat*)
      check "$label: vfat signature" fs_type_is "$dev" vfat
      check "$label: fsck.vfat passes" fsck.vfat -n "$dev"
      check "$label: files equal" fat_files_equal "$dev" "$content" ;;
    exfat)
      check "$label: exfat signature" fs_type_is "$dev" exfat
      check "$label: fsck.exfat passes" fsck.exfat -n "$dev"
      check "$label: files equal" mounted_files_equal "$dev" "$content" mount.exfat-fuse -o ro ;;
    ntfs)
      check "$label: ntfs signature" fs_type_is "$dev" ntfs
      check "$label: ntfsfix -n passes" ntfsfix -n "$dev"
      check "$label: files equal" mounted_files_equal "$dev" "$content" ntfs-3g -o ro ;;
    ext*)
      check "$label: $fs signature" fs_type_is "$dev" "$fs"
      check "$label: e2fsck -fn passes" e2fsck -fn "$dev"
      check "$label: files equal" mounted_files_equal "$dev" "$content" mount -o ro ;;
    swap)
      check "$label: swap signature" fs_type_is "$dev" swap
      check "$label: swap UUID equal" equal "$(blkid -p -s UUID -o value "$dev")" "$(cat "$content/uuid")" ;;
  esac
  losetup -d "$dev"
}

# ---- disks ------------------------------------------------------------------------------------
# A disk is described by its sfdisk script and a list of N:FS:NAME:MiB (partition N holds
# filesystem FS filled with content NAME, with MiB of random data).
# make_disk DISK SECTOR SCRIPT FSLIST: partitions DISK (a file or a loop device), writes random
# boot code into sector 0 bytes 0-439 and random bytes into the gap before the first partition,
# and makes and fills the filesystems.
make_disk() {
  local disk=$1 ss=$2 spec n fs name mib gap_off gap_len
  sfdisk --quiet --no-reread "$disk" <<<"$3" 2>>"$work/make.log" || { tail -5 "$work/make.log" >&2; return 1; }
  head -c 440 /dev/urandom | dd of="$disk" conv=notrunc status=none
  read -r gap_off gap_len < <(gap_of "$disk" "$ss")
  head -c "$gap_len" /dev/urandom | dd of="$disk" bs="$ss" seek=$((gap_off / ss)) conv=notrunc status=none
  for spec in $4; do
    IFS=: read -r n fs name mib <<<"$spec"
    [ -d "$work/content/$name" ] || make_content "$name" "$mib"
    make_fs "$disk" "$ss" "$n" "$fs" "$name" || { echo "making $fs in $disk partition $n failed" >&2; return 1; }
  done
  sync
}
# gap_of DISK SECTOR: "offset length" of the bytes between the partition table (sector 0, or the
# primary GPT entry array of 128 entries) and the first partition.
gap_of() {
  local first table_end
  first=$(sfdisk -J "$1" | python3 -c 'import json,sys; t=json.load(sys.stdin)["partitiontable"]; print(min(p["start"] for p in t["partitions"]) * t.get("sectorsize", 512))')
  if sfdisk -d "$1" | grep -q '^label: gpt'; then table_end=$((2 * $2 + 128 * 128)); else table_end=$2; fi
  echo "$table_end $((first - table_end))"
}
table_of() { sfdisk -d "$1" | sed -e "s|$1|DISK|g" -e '/^last-lba:/d'; } # the disk named DISK, no last-lba
ids_of() { sfdisk -d "$1" | grep -o -e '^label-id: .*' -e 'uuid=[^,]*'; }
last_lba_of() { sfdisk -d "$1" | sed -n 's/^last-lba: //p'; }
size_of() { if [ -b "$1" ]; then blockdev --getsize64 "$1"; else stat -c %s "$1"; fi; }
sgdisk_clean() { sgdisk -v "$1" | grep -q "No problems found" || { sgdisk -v "$1"; false; }; }
backup_gpt_at_end() { # DISK SECTOR: the last sector holds a GPT header
  equal "$(dd if="$1" bs="$2" skip=$(($(size_of "$1") / $2 - 1)) count=1 status=none | head -c 8)" "EFI PART"
}
last_lba_at_end() { # DISK SECTOR: the last usable LBA is just before the backup entries and header
  equal "$(last_lba_of "$1")" $(($(size_of "$1") / $2 - 2 - 128 * 128 / $2))
}
same_ebrs() { # SRC TARGET: the same EBR chain, each EBR sector identical
  local a b e
  a=$(util ebrs "$1") && b=$(util ebrs "$2") && equal "$b" "$a" || return 1
  for e in $a; do same_bytes "$1" "$2" "$e" 512 || return 1; done
}

# check_disk LABEL SRC TARGET SECTOR FSLIST: TARGET holds what SRC held: boot code, gap, EBRs,
# partition table (same ids; on GPT the backup at the target's end) and every filesystem.
check_disk() {
  local label=$1 src=$2 tgt=$3 ss=$4 gap_off gap_len
  read -r gap_off gap_len < <(gap_of "$src" "$ss")
  check "$label: boot code (sector 0 bytes 0-439) identical" same_bytes "$src" "$tgt" 0 440
  check "$label: gap before the first partition identical" same_bytes "$src" "$tgt" "$gap_off" "$gap_len"
  check "$label: partition table identical (sfdisk -d)" equal "$(table_of "$tgt")" "$(table_of "$src")"
  check "$label: disk id and partition GUIDs identical" equal "$(ids_of "$tgt")" "$(ids_of "$src")"
  if sfdisk -d "$src" | grep -q '^label: gpt'; then
    check "$label: sgdisk -v finds no problems" sgdisk_clean "$tgt"
    check "$label: backup GPT header in the last sector" backup_gpt_at_end "$tgt" "$ss"
    check "$label: last usable LBA at the target's end" last_lba_at_end "$tgt" "$ss"
  else
    check "$label: sector 0 identical" same_bytes "$src" "$tgt" 0 "$ss"
    check "$label: EBR chain identical" same_ebrs "$src" "$tgt"
  fi
  check_volumes "$label" "$src" "$tgt" "$ss" "$5"
}
check_volumes() { # LABEL SRC TARGET SECTOR FSLIST: check_volume of each partition (SRC's geometry)
  local spec n fs name mib off size
  for spec in $5; do
    IFS=: read -r n fs name mib <<<"$spec"
    read -r off size < <(util geom "$2" "$n")
    check_volume "$1: partition $n" "$3" "$4" "$off" "$size" "$fs" "$name"
  done
}
fs_of() { # FSLIST N: the FS of partition N
  local spec; for spec in $1; do [ "${spec%%:*}" = "$2" ] && { spec=${spec#*:}; echo "${spec%%:*}"; }; done
}
name_of() { local spec; for spec in $1; do [ "${spec%%:*}" = "$2" ] && echo "$spec" | cut -d: -f3; done; }
check_partition() { # LABEL SRC TARGET SECTOR FSLIST N: check_volume of partition N (SRC's geometry)
  local off size
  read -r off size < <(util geom "$2" "$6")
  check_volume "$1" "$3" "$4" "$off" "$size" "$(fs_of "$5" "$6")" "$(name_of "$5" "$6")"
}
# garbage FILE MiB: FILE of MiB, every byte the same random garbage as every other garbage file.
garbage() { head -c "$2M" "$work/garbage" >"$1"; }

# ---- the source disks -------------------------------------------------------------------------
esp=C12A7328-F81F-11D2-BA4B-00A0C93EC93B data=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7
linux=0FC63DAF-8483-4772-8E79-3D69D8477DE4 swapt=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F
gpt_script="label: gpt
start=2MiB, size=40MiB, type=$esp, name=\"EFI system\"
size=4MiB, type=$data, name=fat12
size=16MiB, type=$data, name=fat16
size=16MiB, type=$data, name=exfat
size=16MiB, type=$data, name=ntfs
size=8MiB, type=$linux, name=ext2
size=16MiB, type=$linux, name=ext3
size=4MiB, type=$swapt, name=swap
size=24MiB, type=$linux, name=root, attrs=\"RequiredPartition\""
gpt_fs="1:fat32:esp:6 2:fat12:fat12:1 3:fat16:fat16:4 4:exfat:exfat:4 5:ntfs:ntfs:4 6:ext2:ext2:2
        7:ext3:ext3:4 8:swap:swap:0 9:ext4:root:6"
[ -n "$have_exfat" ] || gpt_fs=${gpt_fs/4:exfat:exfat:4/4:none:exfat:0}
[ -n "$have_ntfs" ] || gpt_fs=${gpt_fs/5:ntfs:ntfs:4/5:none:ntfs:0}
gpt_mib=148 # 2 MiB before the first partition, 144 MiB of partitions, room for the backup GPT
mbr_script="label: dos
start=2MiB, size=24MiB, type=83, bootable
start=26MiB, size=30MiB, type=5
start=27MiB, size=12MiB, type=6
start=40MiB, size=16MiB, type=83"
mbr_fs="1:ext4:mbr-root:2 5:fat16:mbr-fat:2 6:ext3:mbr-ext3:2"
mbr_mib=64
big_mib=$((gpt_mib * 3 / 2)) # the larger targets of the GPT disk

head -c "$big_mib"M /dev/urandom >"$work/garbage"
gpt=$work/gpt.img mbr=$work/mbr.img
truncate -s ${gpt_mib}M "$gpt"
truncate -s ${mbr_mib}M "$mbr"
if ! make_disk "$gpt" 512 "$gpt_script" "$gpt_fs" || ! make_disk "$mbr" 512 "$mbr_script" "$mbr_fs"; then
  echo "FAIL: making the source disks"; echo "restore: $pass passed, 1 failed, $skipped skipped"; exit 1
fi
# The fixtures themselves pass the checks the restored disks must pass.
check "source gpt: sgdisk -v finds no problems" sgdisk_clean "$gpt"
check_volumes "source gpt" "$gpt" "$gpt" 512 "$gpt_fs"
check_volumes "source mbr" "$mbr" "$mbr" 512 "$mbr_fs"

# The ext4 root mounted and a file touched: the kernel writes through its journal and leaves the
# transaction in the log at unmount (s_start 0, an empty journal): that log is captured as zeros.
read -r root_off root_size < <(util geom "$gpt" 9)
loop_at dev "$gpt" "$root_off" "$root_size" 512
mount "$dev" "$work/mnt" && touch "$work/mnt/data" && sync && umount "$work/mnt"
util ext_log "$dev" >"$work/root.log"
losetup -d "$dev"
log_nonzero() { # FILE: whether some byte of the root's journal log on FILE (the GPT disk's geometry) is not zero
  local off len
  while read -r off len; do util zeros "$1" $((root_off + off)) "$len" 2>/dev/null || return 0; done <"$work/root.log"
  return 1
}
log_zero() { ! log_nonzero "$1"; }
check "source gpt: the root's journal log holds the kernel's transactions" log_nonzero "$gpt"
run_saving "$asrimg" layout "$gpt" --json --volumes all
check "layout: the root's journal log is cleared" json_ok "[p['cleared_bytes'] for p in d[0]['partitions'] if p['number'] == 9] == [sum(int(l.split()[1]) for l in open('$work/root.log'))]"
run_saving "$asrimg" backup "$gpt" -o "$work/gpt.asrimg" --volumes all
check "backup of the GPT disk" rc_is 0
run_saving "$asrimg" backup "$mbr" -o "$work/mbr.asrimg" --volumes all
check "backup of the MBR disk" rc_is 0
"$asrimg" restore --help >/dev/null 2>&1 || { echo "FAIL: asrimg has no restore command"; fail=$((fail + 1)); }

# ---- 1. GPT, every filesystem, onto a larger target full of garbage ---------------------------
t1=$work/t1.img
garbage "$t1" $big_mib
restore "$work/gpt.asrimg" --to "$t1" --yes
check "gpt restore onto a 1.5x garbage target exits 0" rc_is 0
check "the plan names the target" err_has "$t1"
check_disk "gpt restored" "$gpt" "$t1" 512 "$gpt_fs"
# Unused space is left as it was: the largest free range of the ext4 root still holds garbage.
read -r root_off root_size < <(util geom "$gpt" 9)
loop_at dev "$gpt" "$root_off" "$root_size" 512 -r
read -r free_off free_len < <(util ext_free "$dev")
losetup -d "$dev"
check "ext4 has a free range of at least 1 MiB" test "$free_len" -ge $((1 << 20))
check "unused space inside a volume is left untouched" same_bytes "$work/garbage" "$t1" $((root_off + free_off)) "$free_len"
gpt_end=$((root_off + root_size)) # where the last partition ends
tail_len=$((big_mib * 1048576 - gpt_end - 33 * 512)) # from there to the target's backup GPT
check "space after the last partition is left untouched" same_bytes "$work/garbage" "$t1" "$gpt_end" $((1 << 20))

run_saving "$asrimg" verify "$work/gpt.asrimg" --against "$t1"
check "verify --against a good restore exits 0" rc_is 0
# The root's journal log: zeros on the restored disk (written over the garbage), while the source
# keeps its old transactions, which verify --against the source does not count against it.
check "the restored root's journal log reads as zeros" log_zero "$t1"
run_saving "$asrimg" verify "$work/gpt.asrimg" --against "$gpt"
check "verify --against the source, whose journal log is not zeros, exits 0" rc_is 0

# ---- 2. MBR with an extended partition and logical ones ---------------------------------------
t2=$work/t2.img
garbage "$t2" $((mbr_mib * 3 / 2))
restore "$work/mbr.asrimg" --to "$t2" --yes
check "mbr restore onto a 1.5x garbage target exits 0" rc_is 0
check_disk "mbr restored" "$mbr" "$t2" 512 "$mbr_fs"
check "mbr: sfdisk -d identical including sizes" equal "$(sfdisk -d "$t2" | sed "s|$t2|DISK|g")" \
  "$(sfdisk -d "$mbr" | sed "s|$mbr|DISK|g")"
# --grow where the last partition is a logical one: the extended partition around it grows too.
tgl=$work/grow-logical.img
garbage "$tgl" $((mbr_mib * 3 / 2))
restore "$work/mbr.asrimg" --to "$tgl" --yes --grow --verify
check "--grow of a logical last partition exits 0 (--verify passes)" rc_is 0
check "--grow of a logical: the plan says which partitions grow" \
  sh -c "grep -q '^ *6 .*--grow: to the end of the target (not its filesystem)' '$work/err.saved' &&
         grep -q '^ *2 .*--grow: to the end of the target, around the last partition' '$work/err.saved'"
ends_at() { # DISK END N...: each partition N of DISK ends at byte END
  local n start size
  for n in "${@:3}"; do
    read -r start size < <(util geom "$1" "$n")
    equal $((start + size)) "$2" || return 1
  done
}
check "--grow of a logical: it and its extended partition end at the target's end" ends_at "$tgl" "$(size_of "$tgl")" 6 2
check "--grow of a logical: the other partitions unchanged" equal \
  "$(table_of "$tgl" | grep -v -e '^DISK2 ' -e '^DISK6 ')" "$(table_of "$mbr" | grep -v -e '^DISK2 ' -e '^DISK6 ')"
check "--grow of a logical: the EBRs where they were" equal "$(util ebrs "$tgl")" "$(util ebrs "$mbr")"
check "--grow of a logical: sfdisk -V finds no problems" sfdisk -V "$tgl"
check_partition "--grow of a logical: partition 5" "$mbr" "$tgl" 512 "$mbr_fs" 5
check_partition "--grow of a logical: partition 6" "$mbr" "$tgl" 512 "$mbr_fs" 6
check_partition "--grow of a logical: partition 1" "$mbr" "$tgl" 512 "$mbr_fs" 1
# An MBR addresses 2^32 sectors: on a larger disk (a sparse 3 TiB file) the growth stops there.
tbig=$work/grow-3t.img
truncate -s 3T "$tbig"
restore "$work/mbr.asrimg" --to "$tbig" --yes --grow --verify
check "--grow onto a 3 TiB target with an MBR exits 0" rc_is 0
check "--grow with an MBR: the partitions end at sector 2^32 - 1" ends_at "$tbig" $((512 << 32)) 6 2
check "--grow with an MBR: sfdisk -V finds no problems" sfdisk -V "$tbig"
check "--grow with an MBR: says where it stopped and why" err_has "where an MBR stops addressing sectors"
rm -f "$tbig"

# --grow where an extended partition without the last data partition ends after it: refused.
mbr_ext_after="label: dos
start=1MiB, size=8MiB, type=83
start=9MiB, size=7MiB, type=5"
truncate -s 16M "$work/ext-after.img"
sfdisk -q "$work/ext-after.img" <<<"$mbr_ext_after" >/dev/null 2>&1
run_saving "$asrimg" backup "$work/ext-after.img" -o "$work/ext-after.asrimg" --volumes all
check "an MBR ending in an empty extended partition backs up" rc_is 0
garbage "$work/ext-after-t.img" 24
sum_before=$(sum_of "$work/ext-after-t.img")
restore "$work/ext-after.asrimg" --to "$work/ext-after-t.img" --yes --grow
check "--grow with an extended partition after the last one: refused" rc_is 1
check "--grow with an extended partition after the last one: says why" err_has "partition 2 ends after it"
check "--grow with an extended partition after the last one: refused before the plan is shown" \
  sh -c "! grep -q 'WILL BE OVERWRITTEN' '$work/err.saved'"
check "--grow with an extended partition after the last one: nothing written" \
  equal "$(sum_of "$work/ext-after-t.img")" "$sum_before"

# ---- 3. mirrors, --verify, --json --------------------------------------------------------------
ma=$work/mirror-a.img mb=$work/mirror-b.img
garbage "$ma" $big_mib
garbage "$mb" $big_mib
restore "$work/gpt.asrimg" --to "$ma" --to "$mb" --yes --verify --json
check "restore to two mirrors exits 0" rc_is 0
check "the mirrors are identical" same_file "$ma" "$mb"
check "a mirror is what a single restore gives" same_file "$ma" "$t1"
check "--json summary" json_ok 'd["bytes_written"] > 0 and d["seconds"] >= 0 and len(d["targets"]) == 2 and d["damaged"] == [] and d["verified"] is True'
check "--json: every target restored" json_ok 'all(t["state"] == "restored" for t in d["targets"])'
check_partition "mirror b: root" "$gpt" "$mb" 512 "$gpt_fs" 9
check_partition "mirror b: esp" "$gpt" "$mb" 512 "$gpt_fs" 1
# verify --against DISK...: the disks after --against, as README writes it (and --against twice).
run_saving "$asrimg" verify "$work/gpt.asrimg" --against "$ma" "$mb"
check "verify IMAGE --against A B: both mirrors match" rc_is 0
check "verify IMAGE --against A B: says two disks" grep -q "OK: 2 disks match" "$work/out.saved"
run_saving "$asrimg" verify "$work/gpt.asrimg" --against "$ma" --against "$mb"
check "verify IMAGE --against A --against B: both mirrors match" rc_is 0
util flip "$mb" $((root_off + 4096))
run_saving "$asrimg" verify "$work/gpt.asrimg" --against "$ma" "$mb"
check "verify IMAGE --against A B: a byte changed on B is found" rc_is 1
check "verify IMAGE --against A B: ... and named on B" err_has "mismatch: $mb"
util flip "$mb" $((root_off + 4096))

# ---- an image of two disks, mapped with --to N=TARGET and in order ---------------------------
run_saving "$asrimg" backup "$gpt" "$mbr" -o "$work/two.asrimg" --volumes all
check "backup of two disks" rc_is 0
restore "$work/two.asrimg" --to 1="$work/two-1.img" --to 0="$work/two-0.img" --yes
check "restore of two disks with --to N=TARGET exits 0" rc_is 0
check "disk 0 made with its size" equal "$(size_of "$work/two-0.img" 2>&1)" $((gpt_mib << 20))
check "disk 1 made with its size" equal "$(size_of "$work/two-1.img" 2>&1)" $((mbr_mib << 20))
check "disk 0 got the GPT disk's table" equal "$(sfdisk -d "$work/two-0.img" | sed "s|$work/two-0.img|DISK|g")" \
  "$(sfdisk -d "$gpt" | sed "s|$gpt|DISK|g")"
check "disk 1 got the MBR disk's table" equal "$(table_of "$work/two-1.img")" "$(table_of "$mbr")"
check_partition "two disks: disk 0 root" "$gpt" "$work/two-0.img" 512 "$gpt_fs" 9
check_partition "two disks: disk 1 logical fat" "$mbr" "$work/two-1.img" 512 "$mbr_fs" 5
restore "$work/two.asrimg" --to "$work/order-0.img" --to "$work/order-1.img" --yes
check "restore of two disks in order exits 0" rc_is 0
check "in order: the first target is disk 0" same_file "$work/order-0.img" "$work/two-0.img"
check "in order: the second target is disk 1" same_file "$work/order-1.img" "$work/two-1.img"

# ---- 4. refusals: exit 1, an error, and the target unchanged -----------------------------------
# refused NAME SUM TARGET [WORD]: the saved restore was refused, TARGET still has SUM, and the
# error has WORD (when given).
refused() {
  check "$1: exit 1" rc_is 1
  check "$1: says asrimg: error:" is_error
  check "$1: target unchanged" equal "$(sum_of "$3")" "$2"
  [ $# -lt 4 ] || check "$1: error says '$4'" err_has "$4"
}
img=$work/mbr.asrimg
small=$work/small.img
garbage "$small" $((mbr_mib - 1))
sum=$(sum_of "$small")
restore "$img" --to "$small" --yes
refused "smaller target" "$sum" "$small"

tg=$work/refuse.img
garbage "$tg" $((mbr_mib * 3 / 2))
sum=$(sum_of "$tg")
restore "$img" --to "$tg" </dev/null
refused "no --yes, stdin not a terminal" "$sum" "$tg"
check "no --yes: the plan names the target" err_has "$tg"
restore "$img" --to "$work/new-no-yes.img" </dev/null
check "no --yes: a new target is refused" rc_is 1
check "no --yes: the new target is not created" test ! -e "$work/new-no-yes.img"

restore "$img" --to "$tg" --to "$tg" --yes
refused "the same target twice" "$sum" "$tg"
ln -s "$tg" "$work/refuse-link.img"
restore "$img" --to "$tg" --to "$work/refuse-link.img" --yes
refused "the same target twice (through a symlink)" "$sum" "$tg"

# A new file named twice (./ in between): both would be made as one.
restore "$img" --to "$work/new-twice.img" --to "$work/./new-twice.img" --yes
check "a new target named twice: exit 1" rc_is 1
check "a new target named twice: says so" err_has "given twice"
check "a new target named twice: not created" test ! -e "$work/new-twice.img"

# Targets that share storage: a loop device over a target file (whole, or at an offset inside
# it), two loop devices over one file, a loop device over a target loop device (as a partition of
# a target disk would be). Each alone would be a valid target (large enough); together they are
# refused before the plan is shown, and the target is left unchanged.
# shared NAME TARGET...: the saved restore onto TARGETs was refused for sharing storage.
shared() {
  local name=$1; shift
  local args=() t
  for t in "$@"; do args+=(--to "$t"); done
  restore "$img" "${args[@]}" --yes
  refused "$name" "$sum" "$tg" "shares storage with"
  check "$name: refused before the plan is shown" sh -c "! grep -q 'WILL BE OVERWRITTEN' '$work/err.saved'"
}
if loop_at lw "$tg" 0 $((mbr_mib * 3 / 2 << 20)) 512 && loop_at lw2 "$tg" 0 $((mbr_mib * 3 / 2 << 20)) 512 &&
  loop_at loff "$tg" $((16 << 20)) $((mbr_mib + 8 << 20)) 512 &&
  loop_at lover "$lw" $((8 << 20)) $((mbr_mib + 8 << 20)) 512; then
  shared "a target file and a loop device over it" "$tg" "$lw"
  shared "a loop device over a target file, and the file" "$lw" "$tg"
  shared "a target file and a loop device at an offset inside it" "$tg" "$loff"
  shared "two loop devices over one file" "$lw" "$lw2"
  shared "a loop device and a loop device over part of it" "$lw" "$lover"
  shared "a loop device over a loop device over a target file, and the file" "$tg" "$lover"
  losetup -d "$lover" && losetup -d "$loff" && losetup -d "$lw2" && losetup -d "$lw"
  # Two loop devices over disjoint ranges of one file are two disks: mirrors.
  truncate -s $((2 * mbr_mib << 20)) "$work/halves.img"
  if loop_at lh1 "$work/halves.img" 0 $((mbr_mib << 20)) 512 &&
    loop_at lh2 "$work/halves.img" $((mbr_mib << 20)) $((mbr_mib << 20)) 512; then
    restore "$img" --to "$lh1" --to "$lh2" --yes --verify
    check "two loop devices over the two halves of one file are two targets" rc_is 0
    check "the halves are equal" cmp -n $((mbr_mib << 20)) "$work/halves.img" "$work/halves.img" 0 $((mbr_mib << 20))
    losetup -d "$lh2" && losetup -d "$lh1"
  fi
  rm -f "$work/halves.img"
else
  skip "loop devices over a target (losetup failed)"
fi

# Two restores of one target at once: the first, from a pipe fed up to its first chunk, holds the
# target (its plan is shown) while a second restore, verify --against, and a restore onto a loop
# device over the target are refused, leaving it as it was; then the first finishes as usual.
tl=$work/locked.img
garbage "$tl" $((mbr_mib * 3 / 2))
sum=$(sum_of "$tl")
first_chunk=$(util walk "$img" | awk '$1 == "chunk" { print $3 - 64; exit }')
mkfifo "$work/img.fifo"
( # the writer: the image up to its first chunk, then, once told (or after 2 minutes), the rest
  trap '' PIPE
  head -c "$first_chunk" "$img"
  for _ in $(seq 1200); do [ -e "$work/go" ] && break; sleep 0.1; done
  tail -c +$((first_chunk + 1)) "$img"
) >"$work/img.fifo" 2>/dev/null &
writer=$!
"$asrimg" restore - --to "$tl" --yes <"$work/img.fifo" >/dev/null 2>"$work/first.err" &
first=$!
for _ in $(seq 200); do grep -q 'WILL BE OVERWRITTEN' "$work/first.err" && break; sleep 0.1; done
check "the first restore holds the target, waiting for its image" grep -q 'WILL BE OVERWRITTEN' "$work/first.err"
restore "$img" --to "$tl" --yes
refused "a second restore of a target being restored" "$sum" "$tl" "in use: another asrimg"
run_saving "$asrimg" verify "$img" --against "$tl"
check "verify --against a target being restored: exit 1" rc_is 1
check "verify --against a target being restored: says so" err_has "is being restored by another asrimg"
if loop_at ll "$tl" 0 $((mbr_mib * 3 / 2 << 20)) 512; then
  restore "$img" --to "$ll" --yes
  refused "a restore onto a loop device over a target being restored" "$sum" "$tl" "in use: another asrimg"
  losetup -d "$ll"
else
  skip "a loop device over a target being restored (losetup failed)"
fi
touch "$work/go"
wait "$writer"
wait "$first"
echo $? >"$work/rc.saved"
cp "$work/first.err" "$work/err.saved"
check "the first restore then finishes: exit 0" rc_is 0
check "the first restore gives what a restore alone gives" same_file "$tl" "$t2"
rm -f "$tl"

# The image file itself as the target: an image of 4 MiB of random bytes is larger than its
# disk, so size is no reason to refuse it.
head -c 4M /dev/urandom >"$work/raw.img"
printf '\0\0' | dd of="$work/raw.img" bs=1 seek=510 conv=notrunc status=none
"$asrimg" backup "$work/raw.img" -o "$work/raw.asrimg" --volumes all 2>/dev/null
check "an image of random bytes is larger than its disk" test "$(size_of "$work/raw.asrimg")" -gt $((4 << 20))
sum=$(sum_of "$work/raw.asrimg")
restore "$work/raw.asrimg" --to "$work/raw.asrimg" --yes
refused "the image file itself as target" "$sum" "$work/raw.asrimg"

# A target with a filesystem mounted from it through a loop device at an offset, by file and by
# that loop device; and the image stored inside that filesystem.
# The filesystem is made without lazy initialisation and remounted read-only once the image is in
# it, so that nothing but a restore could change the target's bytes.
if loop_at mdev "$tg" $((1 << 20)) $((80 << 20)) 512 &&
  mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$mdev" && mount "$mdev" "$work/tmnt" &&
  cp "$img" "$work/tmnt/inside.asrimg" && mount -o remount,ro "$work/tmnt"; then
  sum=$(sum_of "$tg")
  restore "$img" --to "$tg" --yes
  refused "a file with a mounted filesystem in it" "$sum" "$tg" mount
  restore "$img" --to "$mdev" --yes
  refused "a mounted loop device" "$sum" "$tg" mount
  loop_at wdev "$tg" 0 $((mbr_mib * 3 / 2 << 20)) 512
  restore "$img" --to "$wdev" --yes
  refused "a loop device over a file with a mounted filesystem in it" "$sum" "$tg" mount
  losetup -d "$wdev"
  restore "$work/tmnt/inside.asrimg" --to "$tg" --yes
  refused "the target holding the image" "$sum" "$tg"
  umount "$work/tmnt"
  losetup -d "$mdev"
else
  skip "mounting a filesystem on a loop device failed here"
fi

# A 512-byte-sector image onto a 4096-byte-sector loop device.
truncate -s 128M "$work/4k-refuse.img"
if loop_at dev4 "$work/4k-refuse.img" 0 $((128 << 20)) 4096; then
  sum=$(sum_of "$dev4")
  restore "$img" --to "$dev4" --yes
  refused "a target with 4096-byte sectors for a 512-byte image" "$sum" "$dev4" sector
  losetup -d "$dev4"
else
  skip "no 4096-byte-sector loop devices here"
fi

# ---- 5. a damaged chunk, verify --against ------------------------------------------------------
# The chunk holding most bytes of the root volume (ext4, partition 9) and of no other volume.
root_vol=$("$asrimg" info --json "$work/gpt.asrimg" | python3 -c 'import json,sys
print([i for i, v in enumerate(json.load(sys.stdin)["volumes"]) if v["partition"] == 9][0])')
util walk "$work/gpt.asrimg" >"$work/map"
read -r bad_chunk bad_at bad_len < <(awk -v vol="$root_vol" '
  $1 == "chunk" { at[$2] = $3; len[$2] = $4 }
  $1 == "extent" { bytes[$5] += $4; if ($2 != vol) other[$5] = 1 }
  END { for (c in bytes) if (!(c in other) && bytes[c] > best) { best = bytes[c]; pick = c }
        print pick, at[pick], len[pick] }' "$work/map")
# The ranges that chunk covers ("volume offset" each; the duplicate file makes them two or more).
bad_ranges=$(awk -v c="$bad_chunk" '$1 == "extent" && $5 == c { print $2, $3 }' "$work/map")
read -r _ bad_range <<<"$bad_ranges"
err_has_range() { grep -Eq -- "volume $1 (bytes|offset) $2\b" "$work/err.saved" || { head -8 "$work/err.saved" >&2; false; }; }
err_has_ranges() { # every one of $bad_ranges
  local vol off
  while read -r vol off; do err_has_range "$vol" "$off" || { echo "volume $vol offset $off not named" >&2; return 1; }; done <<<"$bad_ranges"
}
check "the image map finds every chunk" equal "$(grep -c '^chunk' "$work/map")" \
  "$("$asrimg" info --json "$work/gpt.asrimg" | python3 -c 'import json,sys; print(json.load(sys.stdin)["chunks"])')"
cp "$work/gpt.asrimg" "$work/bad.asrimg"
util flip "$work/bad.asrimg" $((bad_at + bad_len / 2))

tbad=$work/tbad.img
garbage "$tbad" $big_mib
restore "$work/bad.asrimg" --to "$tbad" --yes
check "damaged chunk: restore exits 1" rc_is 1
check "damaged chunk: the error names the chunk" err_has_word "chunk $bad_chunk"
check "damaged chunk: a note follows the error line" note_follows_error
check "damaged chunk: the note says what the target holds and what to do" \
  err_has "asrimg: note: $tbad: partly written, no valid partition table yet; run the same restore again from an intact copy of the image"
check "damaged chunk: the chunk covers several ranges" test "$(wc -l <<<"$bad_ranges")" -ge 2
check "damaged chunk: the error names the first range" err_has_range "$root_vol" "$bad_range"
check "damaged chunk: the error names every range of the chunk" err_has_ranges
tkeep=$work/tkeep.img
garbage "$tkeep" $big_mib
restore "$work/bad.asrimg" --to "$tkeep" --yes --keep-going
check "--keep-going: exits 1" rc_is 1
check "--keep-going: names the chunk" err_has_word "chunk $bad_chunk"
check "--keep-going: lists every range of the chunk" err_has_ranges
restore "$work/bad.asrimg" --to "$work/keep-json.img" --yes --keep-going --json
check "--keep-going --json: exits 1" rc_is 1
check "--keep-going --json: lists the damaged range with its chunk" json_ok \
  "{'chunk': $bad_chunk, 'volume': $root_vol, 'offset': $bad_range}.items() <= d['damaged'][0].items()"
check "--keep-going --json: does not say ok" json_ok 'd.get("ok") is not True'
check "--keep-going: the partition table is restored" equal "$(table_of "$tkeep")" "$(table_of "$gpt")"
check_partition "--keep-going: esp" "$gpt" "$tkeep" 512 "$gpt_fs" 1
check_partition "--keep-going: ext3" "$gpt" "$tkeep" 512 "$gpt_fs" 7

# One byte changed inside a restored file: verify --against names the volume and its offset.
cp "$t1" "$work/t1-changed.img"
loop_at dev "$t1" "$root_off" "$root_size" 512 -r
blk=$(debugfs -R "bmap /data/random.bin 100" "$dev" 2>/dev/null)
bsz=$(dumpe2fs -h "$dev" 2>/dev/null | sed -n 's/^Block size: *//p')
losetup -d "$dev"
changed=$((blk * bsz + 7)) # in the volume
util flip "$work/t1-changed.img" $((root_off + changed))
run_saving "$asrimg" verify "$work/gpt.asrimg" --against "$work/t1-changed.img"
check "verify --against a changed byte exits 1" rc_is 1
check "verify --against names the volume" err_has_word "volume $root_vol"
check "verify --against names the offset ($changed)" err_has "$changed"

# ---- 6. 4Kn --------------------------------------------------------------------------------
k4_script="label: gpt
start=2MiB, size=16MiB, type=$esp, name=ESP
size=40MiB, type=$linux, name=root"
k4_fs="1:fat:k4-esp:2 2:ext4:k4-root:4"
truncate -s 64M "$work/k4-src.img"
truncate -s 96M "$work/k4-dst.img"
if loop_at k4s "$work/k4-src.img" 0 $((64 << 20)) 4096 && loop_at k4t "$work/k4-dst.img" 0 $((96 << 20)) 4096; then
  if make_disk "$k4s" 4096 "$k4_script" "$k4_fs"; then
    check "4Kn source: sgdisk -v finds no problems" sgdisk_clean "$k4s"
    check_volumes "4Kn source" "$k4s" "$k4s" 4096 "$k4_fs"
    run_saving "$asrimg" backup "$k4s" -o "$work/k4.asrimg" --volumes all
    check "4Kn backup from the loop device" rc_is 0
    restore "$work/k4.asrimg" --to "$k4t" --yes
    check "4Kn restore onto a larger 4Kn loop device exits 0" rc_is 0
    check_disk "4Kn restored" "$k4s" "$k4t" 4096 "$k4_fs"
  else
    check "making the 4Kn disk" false
  fi
else
  skip "no 4096-byte-sector loop devices here"
fi

# ---- 7. --new-ids, --grow, --zero-unused, --discard, stdin -------------------------------------
tn=$work/new-ids.img
restore "$work/gpt.asrimg" --to "$tn" --yes --new-ids
check "--new-ids onto a new file exits 0" rc_is 0
check "a new file target gets the disk's size" equal "$(size_of "$tn" 2>&1)" $((gpt_mib << 20))
check "a new file target is sparse" test $(($(stat -c %b "$tn") * 512)) -lt $((gpt_mib << 20))
strip_ids() { table_of "$1" | sed -e '/^label-id:/d' -e 's/, uuid=[^,]*//'; }
check "--new-ids: everything but the ids equal" equal "$(strip_ids "$tn")" "$(strip_ids "$gpt")"
ids_all_new() { # SRC TARGET: every id of TARGET differs from every id of SRC, and they are as many
  local a b
  a=$(ids_of "$1" | sed 's/^[a-z-]*[:=] *//' | sort) b=$(ids_of "$2" | sed 's/^[a-z-]*[:=] *//' | sort)
  if [ "$(wc -l <<<"$a")" -ne "$(wc -l <<<"$b")" ] || [ -n "$(comm -12 <(echo "$a") <(echo "$b"))" ] ||
    [ "$(sort -u <<<"$b" | wc -l)" -ne "$(wc -l <<<"$b")" ]; then
    echo "source: $a"; echo "target: $b"; false
  fi
}
check "--new-ids: disk GUID and every partition GUID new" ids_all_new "$gpt" "$tn"
check "--new-ids: sgdisk -v finds no problems" sgdisk_clean "$tn"
check_partition "--new-ids: root" "$gpt" "$tn" 512 "$gpt_fs" 9
restore "$work/mbr.asrimg" --to "$work/new-ids-mbr.img" --yes --new-ids
check "--new-ids on MBR exits 0" rc_is 0
check "--new-ids on MBR: a new disk signature" ids_all_new "$mbr" "$work/new-ids-mbr.img"
check "--new-ids on MBR: everything else equal" equal "$(strip_ids "$work/new-ids-mbr.img")" "$(strip_ids "$mbr")"

tgrow=$work/grow.img
garbage "$tgrow" $big_mib
restore "$work/gpt.asrimg" --to "$tgrow" --yes --grow
check "--grow exits 0" rc_is 0
grown_end() { # DISK N: partition N ends at the last usable LBA
  local ss=512 start size
  read -r start size < <(util geom "$1" "$2")
  equal $(((start + size) / ss - 1)) "$(last_lba_of "$1")"
}
check "--grow: the last partition ends at the last usable LBA" grown_end "$tgrow" 9
check "--grow: the last usable LBA is at the target's end" last_lba_at_end "$tgrow" 512
check "--grow: the other partitions unchanged" equal "$(table_of "$tgrow" | grep -v '^DISK9 ')" \
  "$(table_of "$gpt" | grep -v '^DISK9 ')"
check "--grow: sgdisk -v finds no problems" sgdisk_clean "$tgrow"
read -r goff gsize < <(util geom "$tgrow" 9)
check_volume "--grow: root" "$tgrow" 512 "$goff" "$gsize" ext4 root

# GPT numbers need not follow the disk's order: here partition 1 is the last one, and grows.
gpt_out_of_order="label: gpt
1: start=20MiB, size=8MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4
2: start=1MiB, size=8MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4"
truncate -s 32M "$work/order.img"
sfdisk -q "$work/order.img" <<<"$gpt_out_of_order" >/dev/null 2>&1
head -c 1M "$work/garbage" | dd of="$work/order.img" bs=1M seek=21 conv=notrunc status=none
run_saving "$asrimg" backup "$work/order.img" -o "$work/order.asrimg" --volumes all
check "a GPT numbered out of order backs up" rc_is 0
garbage "$work/order-t.img" 48
restore "$work/order.asrimg" --to "$work/order-t.img" --yes --grow --verify
check "--grow of partition 1, last on the disk, exits 0 (--verify passes)" rc_is 0
check "--grow of partition 1: it ends at the last usable LBA" grown_end "$work/order-t.img" 1
check "--grow of partition 1: partition 2 unchanged" equal "$(table_of "$work/order-t.img" | grep '^DISK2 ')" \
  "$(table_of "$work/order.img" | grep '^DISK2 ')"
check "--grow of partition 1: its bytes restored" same_bytes "$work/order.img" "$work/order-t.img" $((21 << 20)) $((1 << 20))
check "--grow of partition 1: sgdisk -v finds no problems" sgdisk_clean "$work/order-t.img"

tzero=$work/zero.img
garbage "$tzero" $big_mib
restore "$work/gpt.asrimg" --to "$tzero" --yes --zero-unused
check "--zero-unused exits 0" rc_is 0
check "--zero-unused: a free range of ext4 reads as zeros" util zeros "$tzero" $((root_off + free_off)) "$free_len"
check "--zero-unused: the space after the last partition reads as zeros" \
  util zeros "$tzero" "$gpt_end" "$tail_len"
check_partition "--zero-unused: root" "$gpt" "$tzero" 512 "$gpt_fs" 9
check_partition "--zero-unused: ntfs" "$gpt" "$tzero" 512 "$gpt_fs" 5

tdisc=$work/discard.img
garbage "$tdisc" $big_mib
restore "$work/gpt.asrimg" --to "$tdisc" --yes --discard
check "--discard exits 0" rc_is 0
check "--discard: a free range of ext4 is a hole" util hole "$tdisc" $((root_off + free_off)) "$free_len"
check "--discard: the space after the last partition is a hole" \
  util hole "$tdisc" "$gpt_end" "$tail_len"
check_partition "--discard: root" "$gpt" "$tdisc" 512 "$gpt_fs" 9

# From stdin: the same target bytes as a restore from the file.
stdin_restore() { # NAME TARGET FILE...: cat FILEs | restore - --to TARGET
  local name=$1 tgt=$2; shift 2
  garbage "$tgt" $big_mib
  # shellcheck disable=SC2016 # expanded by that sh
  run_saving sh -c 'tgt=$1 asrimg=$2; shift 2; cat "$@" | "$asrimg" restore - --to "$tgt" --yes' sh "$tgt" "$asrimg" "$@"
  if ! rc_is 0 2>/dev/null && grep -qi "not supported" "$work/err.saved"; then
    skip "$name: restore - says not supported yet"
    return
  fi
  check "$name: exits 0" rc_is 0
  check "$name: the same bytes as a restore from the file" same_file "$tgt" "$t1"
}
stdin_restore "restore from stdin" "$work/stdin.img" "$work/gpt.asrimg"
run_saving "$asrimg" backup "$gpt" -o "$work/split.asrimg" --volumes all --split 12M
check "split backup" rc_is 0
check "the split set has at least 3 parts" test -e "$work/split.asrimg.003"
stdin_restore "restore of a split set from stdin" "$work/stdin-split.img" "$work"/split.asrimg{,.[0-9][0-9][0-9]}

# ---- 8. idempotence ----------------------------------------------------------------------------
sum=$(sum_of "$t1")
restore "$work/gpt.asrimg" --to "$t1" --yes --threads 1
check "a second restore (--threads 1) exits 0" rc_is 0
check "a second restore gives the same bytes" equal "$(sum_of "$t1")" "$sum"
restore "$work/gpt.asrimg" --to "$tbad" --yes
check "a restore over one that stopped half way exits 0" rc_is 0
check "a restore over one that stopped half way gives the same bytes" same_file "$tbad" "$t1"

# ---- 9. from a pipe: blocks that dedup, a cut stream; what a failed restore leaves ------------
# A chunk laid at many places (one 4 KiB block repeated through a file) and used again after the
# next chunk was once refused from a pipe as "damaged" (issue 12). Files that dedup on FAT32 and
# ext4: copies of one file, and files of a 4 KiB block of zeros with a few bytes set.
make_dedup_content() { # NAME: content NAME (see make_content) of files that dedup
  local d=$work/content/$1/data i
  mkdir -p "$d"
  python3 -c 'import sys
b = bytearray(4096); b[17] = 0x5a; b[2100] = 0xa5; b[4000] = 1
sys.stdout.buffer.write(bytes(b) * 512)' >"$d/blocks.bin"
  head -c 3M /dev/urandom >"$d/random.bin"
  for i in 1 2 3; do
    cp "$d/blocks.bin" "$d/blocks-$i.bin"
    cp "$d/random.bin" "$d/random-$i.bin"
  done
  cp -rL /usr/share/doc/e2fsprogs "$d/doc" 2>/dev/null
}
dd_script="label: gpt
start=1MiB, size=40MiB, type=$esp, name=ESP
size=28MiB, type=$linux, name=root"
dd_fs="1:fat32:dd-esp:0 2:ext4:dd-root:0"
make_dedup_content dd-esp
make_dedup_content dd-root
ddisk=$work/dedup.img
truncate -s 72M "$ddisk"
if make_disk "$ddisk" 512 "$dd_script" "$dd_fs"; then
  run_saving "$asrimg" backup "$ddisk" -o "$work/dedup.asrimg" --volumes all
  check "backup of the disk of files that dedup" rc_is 0
  util walk "$work/dedup.asrimg" >"$work/dedup.map"
  # The pattern itself: a chunk laid at two places or more while it is the last chunk of the
  # stream (all a pipe still holds), then used again after a later chunk.
  check "the image lays a chunk at several places, then uses it again after later chunks" \
    test "$(awk '$1 == "chunk" { last = $2 } $1 == "extent" && $5 == last { laid[$5]++ }
                 $1 == "extent" && $5 < last && laid[$5] >= 2 { n++ } END { print n + 0 }' "$work/dedup.map")" -gt 0
  restore "$work/dedup.asrimg" --to "$work/dd-file.img" --yes
  check "files that dedup: restore from the file exits 0" rc_is 0
  check_disk "files that dedup, restored from the file" "$ddisk" "$work/dd-file.img" 512 "$dd_fs"
  for threads in 1 4; do
    # shellcheck disable=SC2016 # expanded by that sh
    run_saving sh -c 'cat "$1" | "$2" restore - --to "$3" --yes --threads "$4"' sh "$work/dedup.asrimg" "$asrimg" \
      "$work/dd-pipe$threads.img" "$threads"
    check "files that dedup, from stdin with $threads threads: exits 0" rc_is 0
    check "files that dedup, from stdin with $threads threads: the bytes of the restore from the file" \
      same_file "$work/dd-pipe$threads.img" "$work/dd-file.img"
  done

  # A stream cut short: one error line, then a note saying what the target holds and what to do;
  # doing it gives the restore from the file.
  cut=$(($(size_of "$work/dedup.asrimg") / 2))
  # shellcheck disable=SC2016 # expanded by that sh
  run_saving sh -c 'head -c "$1" "$2" | "$3" restore - --to "$4" --yes' sh "$cut" "$work/dedup.asrimg" "$asrimg" \
    "$work/dd-cut.img"
  check "a cut stream: exits 1" rc_is 1
  check "a cut stream: the error says where the stream ended" err_has "image stream ended at logical offset"
  check "a cut stream: a note follows the error line" note_follows_error
  check "a cut stream: the note says what the target holds and what to do" err_has \
    "asrimg: note: $work/dd-cut.img: partly written, no valid partition table yet; run the same restore again with the complete image"
  # shellcheck disable=SC2016 # expanded by that sh
  run_saving sh -c 'cat "$1" | "$2" restore - --to "$3" --yes' sh "$work/dedup.asrimg" "$asrimg" "$work/dd-cut.img"
  check "a cut stream, then the same restore with the complete image: exits 0" rc_is 0
  check "a cut stream, then the same restore: the bytes of the restore from the file" \
    same_file "$work/dd-cut.img" "$work/dd-file.img"

  # A target that cannot take the writes (a file on a full tmpfs): the same note.
  mkdir -p "$work/full"
  if mount -t tmpfs -o size=4M tmpfs "$work/full"; then
    restore "$work/dedup.asrimg" --to "$work/full/t.img" --yes --json
    check "a full target: exits 1" rc_is 1
    check "a full target: --json says the target is partly written" \
      json_ok 'd["ok"] is False and d["targets"][0]["state"] == "partial" and "cannot write" in d["error"]'
    check "a full target: the error names the target" err_has "cannot write $work/full/t.img"
    check "a full target: a note follows the error line" note_follows_error
    check "a full target: the note says what the target holds" err_has \
      "asrimg: note: $work/full/t.img: partly written, no valid partition table yet; run the same restore again once"
    umount "$work/full"
  else
    skip "no tmpfs here"
  fi
else
  check "making the disk of files that dedup" false
fi

# A damaged chunk met in a stream stops it the same way.
# shellcheck disable=SC2016 # expanded by that sh
run_saving sh -c 'cat "$1" | "$2" restore - --to "$3" --yes' sh "$work/bad.asrimg" "$asrimg" "$work/bad-pipe.img"
check "damaged chunk from stdin: exits 1" rc_is 1
check "damaged chunk from stdin: names the chunk" err_has_word "chunk $bad_chunk"
check "damaged chunk from stdin: the note says what the target holds" \
  err_has "asrimg: note: $work/bad-pipe.img: partly written, no valid partition table yet"

# ---- 10. a gap before the first partition larger than a raw region -----------------------------
# The first partition at 100 MiB and data at 2 and 70 MiB inside the gap: past its first MiB the
# gap is a disk area, captured like a volume (zeros elided), restored byte-exact and compared by
# verify --against, which says what it did not compare. MBR and GPT.
ext_clean_at() { # FILE OFFSET: e2fsck -fn of the ext filesystem there passes
  local dev rc
  dev=$(losetup -f --show -r -o "$2" "$1") || return 1
  e2fsck -fn "$dev"; rc=$?
  losetup -d "$dev"
  return $rc
}
wide_gap() { # LABEL SFDISK-LABEL
  local label=$1 src=$work/widegap-$1.img img=$work/widegap-$1.asrimg tgt=$work/widegap-$1.t.img gap_off gap_len
  local front=$((100 << 20))
  truncate -s 140M "$src"
  printf 'label: %s\nstart=204800, size=61440, type=%s\n' "$2" "$([ "$2" = gpt ] && echo "$linux" || echo 83)" |
    sfdisk -q "$src"
  mkfs.ext4 -q -F -E offset=$front "$src" 30M
  head -c 1M /dev/urandom | dd of="$src" bs=1M seek=2 conv=notrunc status=none
  head -c 1M /dev/urandom | dd of="$src" bs=1M seek=70 conv=notrunc status=none
  head -c 4096 /dev/urandom | dd of="$src" bs=4096 seek=100 conv=notrunc status=none # in the raw part
  run_saving "$asrimg" layout "$src"
  check "$label wide gap: layout lists the gap as captured" grep -qE '^  -  .*pre-partition gap.* full ' "$work/out.saved"
  run_saving "$asrimg" backup "$src" -o "$img" --volumes all
  check "$label wide gap: backup exits 0" rc_is 0
  check "$label wide gap: zeros of the gap elided (image under 6 MiB)" test "$(stat -c %s "$img")" -lt $((6 << 20))
  garbage "$tgt" 180
  restore "$img" --to "$tgt" --yes
  check "$label wide gap: restore exits 0" rc_is 0
  read -r gap_off gap_len < <(gap_of "$src" 512)
  check "$label wide gap: the whole gap before the first partition identical" same_bytes "$src" "$tgt" "$gap_off" "$gap_len"
  check "$label wide gap: ... which is the 100 MiB before it" equal $((gap_off + gap_len)) $front
  check "$label wide gap: the filesystem is clean" ext_clean_at "$tgt" $front
  run_saving "$asrimg" verify "$img" --against "$tgt"
  check "$label wide gap: verify --against matches" rc_is 0
  check "$label wide gap: verify --against says what it did not compare" grep -q "not compared" "$work/out.saved"
  util flip "$tgt" $(((70 << 20) + 12345))
  run_saving "$asrimg" verify "$img" --against "$tgt"
  check "$label wide gap: verify --against finds a byte changed in the gap" rc_is 1
  check "$label wide gap: ... and names it" grep -q "volume .* offset $(((70 << 20) + 12345 - (1 << 20)))" "$work/err.saved"
}
wide_gap mbr dos
wide_gap gpt gpt

# ---- 11. filesystems on the whole disk, no partition table ---------------------------------------
# A FAT, exFAT or NTFS volume made on the whole device (a USB stick, an SD card, mkntfs -F) ends
# sector 0 in 55 AA as an MBR does, with its boot code where an MBR keeps its entries: empty, or
# text and code that read as impossible entries. Each is read as that filesystem, backed up, and
# restored onto a larger target full of garbage: its checker passes, its files are equal, and
# every captured range is byte-equal.
# make_whole NAME FS MiB MKFS...: $work/whole-NAME.img of MiB, made by MKFS (run on the file, with
# the file last) and filled with content NAME (FS: fat*, exfat or ntfs).
make_whole() {
  local name=$1 fs=$2 mib=$3 img=$work/whole-$1.img dev rc=0
  shift 3
  truncate -s "${mib}M" "$img" && "$@" "$img" >>"$work/make.log" 2>&1 || return 1
  [ -d "$work/content/$name" ] || make_content "$name" 1
  case $fs in
    fat*) mcopy -s -i "$img" "$work/content/$name/data" ::/ ;;
    *)
      loop_at dev "$img" 0 $((mib << 20)) 512 || return 1
      if [ "$fs" = exfat ]; then fill_mounted "$dev" "$work/content/$name" mount.exfat-fuse; else
        fill_mounted "$dev" "$work/content/$name" ntfs-3g; fi
      rc=$?
      losetup -d "$dev" ;;
  esac
  return $rc
}
# whole_layout_is IMAGE-FILE BLKID-TYPE: layout reads the file as one whole-disk volume of that type.
whole_layout_is() {
  run_saving "$asrimg" layout --json "$1"
  rc_is 0 && json_ok "(d[0]['label'] == 'none' and d[0]['reading'].startswith('read as a whole-disk $2: sector 0 is ')
    and [(p['number'], p['start_bytes'], p['fs']) for p in d[0]['partitions']] == [(0, 0, '$2')])"
}
# whole_image_is [TYPE]: `asrimg info` (saved) shows one disk, no partition table, no boot
# regions, and its one volume (partition 0, of TYPE), or none.
whole_image_is() {
  local out=$work/out.saved
  grep -q '^disk 0: .*, label none, id -$' "$out" && ! grep -q -e 'raw region' -e '^disk 1:' "$out" &&
    if [ -n "$1" ]; then grep -Eq "^volume 0: +disk 0 partition 0, fs $1 " "$out" && ! grep -q '^volume 1:' "$out"
    else ! grep -q '^volume ' "$out"; fi || { cat "$out" >&2; false; }
}
# check_whole NAME FS BLKID-TYPE MiB: layout, backups (default and --volumes all), restore onto a
# garbage target half as large again, verify --against, and the restored volume checked.
check_whole() {
  local name=$1 fs=$2 type=$3 mib=$4 img=$work/whole-$1.img tgt=$work/whole-$1-t.img
  check "whole $name: layout reads one whole-disk $type volume" whole_layout_is "$img" "$type"
  run_saving "$asrimg" backup "$img" -o "$work/whole-$name-default.asrimg"
  check "whole $name: default backup exits 0" rc_is 0
  check "whole $name: default backup lists the volume" grep -Eq "^  0 +$type " "$work/err.saved"
  run_saving "$asrimg" info "$work/whole-$name-default.asrimg"
  check "whole $name: default image: no partition table, no boot regions" whole_image_is ""
  run_saving "$asrimg" backup "$img" -o "$work/whole-$name.asrimg" --volumes all
  check "whole $name: backup --volumes all exits 0" rc_is 0
  run_saving "$asrimg" info "$work/whole-$name.asrimg"
  check "whole $name: the image holds the whole-disk volume, no boot regions" whole_image_is "$type"
  garbage "$tgt" $((mib * 3 / 2))
  restore "$work/whole-$name.asrimg" --to "$tgt" --yes
  check "whole $name: restore onto a larger garbage target exits 0" rc_is 0
  check "whole $name: every captured range byte-equal" util captured_equal "$work/whole-$name.asrimg" "$img" "$tgt"
  check_volume "whole $name restored" "$tgt" 512 0 $((mib << 20)) "$fs" "$name"
  run_saving "$asrimg" verify "$work/whole-$name.asrimg" --against "$tgt"
  check "whole $name: verify --against exits 0" rc_is 0
}
# NAME FS BLKID-TYPE MiB MKFS...; mkfs.vfat with and without -I (which only matters on a device
# holding partitions), FAT32 with small and larger clusters.
whole_disks=(
  "fat12 fat12 vfat 8 mkfs.vfat -F 12"
  "fat16 fat16 vfat 32 mkfs.vfat -F 16 -s 4"
  "fat32 fat32 vfat 40 mkfs.vfat -F 32 -s 1"
  "fat32-I fat32 vfat 72 mkfs.vfat -I -F 32 -s 2"
)
[ -n "$have_exfat" ] && whole_disks+=("exfat exfat exfat 24 mkfs.exfat")
[ -n "$have_ntfs" ] && whole_disks+=("ntfs ntfs ntfs 16 mkntfs -Q -F -q")
for spec in "${whole_disks[@]}"; do
  read -r name fs type mib mkfs <<<"$spec"
  # shellcheck disable=SC2086 # mkfs is a command and its options
  if make_whole "$name" "$fs" "$mib" $mkfs; then check_whole "$name" "$fs" "$type" "$mib"; else
    check "making the whole-disk $name" false; fi
done
# Boot code where the entries would be: Windows XP's FAT32 messages, Windows 7's NTFS ones (in
# both boot sectors, as Windows writes them: mkntfs keeps its backup in the disk's last sector),
# and exFAT boot code read as an entry past the end of the disk (the report's numbers), its boot
# checksum made again as Windows makes it.
if make_whole fat32-xp fat32 40 mkfs.vfat -F 32; then
  printf '\r\nRemove disks or other media.\377\r\nDisk error\377\r\nPress any key to restart\r\n' |
    dd of="$work/whole-fat32-xp.img" bs=1 seek=$((0x1ac)) conv=notrunc status=none
  check_whole fat32-xp fat32 vfat 40
else
  check "making the whole-disk fat32-xp" false
fi
if [ -n "$have_ntfs" ] && make_whole ntfs-win7 ntfs 16 mkntfs -Q -F -q; then
  for at in $((0x18a)) $(((16 << 20) - 512 + 0x18a)); do
    printf 'A disk read error occurred\r\n\0BOOTMGR is missing\r\n\0BOOTMGR is compressed\r\n\0Press Ctrl+Alt+Del to restart\r\n' |
      dd of="$work/whole-ntfs-win7.img" bs=1 seek="$at" conv=notrunc status=none
  done
  check_whole ntfs-win7 ntfs ntfs 16
fi
if [ -n "$have_exfat" ] && make_whole exfat-code exfat 24 mkfs.exfat; then
  printf '\0\040\041\0\007\376\377\377\163\145\144\0\015\012\120\162' |
    dd of="$work/whole-exfat-code.img" bs=1 seek=446 conv=notrunc status=none
  util reseal_exfat "$work/whole-exfat-code.img"
  check_whole exfat-code exfat exfat 24
fi
# The plan of a restore lists the volume of a disk without a partition table, in the image or not.
restore "$work/whole-fat32.asrimg" --to "$work/whole-plan.img" </dev/null
check "whole-disk plan: refused without --yes" rc_is 1
check "whole-disk plan: lists the volume to be restored" \
  grep -Eq '^ +0 +0 +40.0 MiB +vfat +restored: the one volume of the disk' "$work/err.saved"
restore "$work/whole-fat32-default.asrimg" --to "$work/whole-fat32-t.img" </dev/null
check "whole-disk plan of a default image: lists the volume as not in the image" \
  grep -Eq '^ +0 +0 +40.0 MiB +not in the image' "$work/err.saved"
check "whole-disk plan: says what the target holds" err_has "holds no partition table: vfat on the whole disk"
restore "$work/whole-fat32-default.asrimg" --to "$work/whole-fat32-t.img" --yes --json
check "whole-disk restore of a default image: exits 0" rc_is 0
check "whole-disk restore of a default image: --json lists the disk's volume as untouched" \
  json_ok "([(u['disk'], u['partition'], u['start_bytes'], u['size_bytes'], u['type']) for u in d['untouched']] ==
    [(0, 0, 0, 40 << 20, '')] and d['untouched'][0]['why'].startswith('not in the image'))"

# The converse: an MBR whose sector 0 also carries a FAT boot sector's BPB (as some old DOS disks
# do), with filesystems in its partitions, stays partitioned and is restored as such.
bpb_script="label: dos
start=1MiB, size=16MiB, type=c
start=17MiB, size=30MiB, type=5
start=18MiB, size=29MiB, type=83"
bpb_fs="1:fat16:bpb-fat:1 5:ext4:bpb-ext:1"
bpb=$work/bpb-mbr.img
truncate -s 48M "$bpb" "$work/bpb-src.img"
if make_disk "$bpb" 512 "$bpb_script" "$bpb_fs" && mkfs.vfat -F 16 "$work/bpb-src.img" >/dev/null &&
  dd if="$work/bpb-src.img" of="$bpb" bs=440 count=1 conv=notrunc status=none; then
  check "bpb mbr: blkid sees a FAT boot sector in sector 0" fs_type_is "$bpb" vfat
  run_saving "$asrimg" layout --json "$bpb"
  check "bpb mbr: layout reads the MBR and says why" json_ok "(d[0]['label'] == 'mbr' and
    [p['fs'] for p in d[0]['partitions']] == ['vfat', '', 'ext4'] and 'though sector 0 is also a FAT16' in d[0]['reading'])"
  run_saving "$asrimg" backup "$bpb" -o "$work/bpb-mbr.asrimg" --volumes all
  check "bpb mbr: backup exits 0" rc_is 0
  garbage "$work/bpb-mbr-t.img" 72
  restore "$work/bpb-mbr.asrimg" --to "$work/bpb-mbr-t.img" --yes
  check "bpb mbr: restore exits 0" rc_is 0
  check_disk "bpb mbr restored" "$bpb" "$work/bpb-mbr-t.img" 512 "$bpb_fs"
else
  check "making the MBR disk with a BPB in sector 0" false
fi

echo "restore_test: $(($(date +%s) - start_time)) s"
echo "restore: $pass passed, $fail failed, $skipped skipped"
[ "$fail" -eq 0 ]
