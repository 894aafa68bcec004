#!/usr/bin/env bash
# Read errors on a failing source disk, end to end. asrimg-eiofs serves a disk image (GPT, one
# FAT32 volume with known files) through FUSE, failing every read that touches two chosen ranges
# inside a file's clusters with EIO. Without --ignore-read-errors the backup stops with one error
# line naming the disk and the first bad byte, and leaves nothing behind. With it, the image
# records exactly the bad bytes as unreadable (not the whole failed request, nor the good
# sectors beside them), info and verify say so, verify lists the ranges, and every other byte of
# the volume reads back equal. Run twice: through O_DIRECT (the engine's normal path) and with
# O_DIRECT refused (the buffered fallback). Then a restore from an image with a bad sector says
# what its target holds. Usage: read_error_test.sh ASRIMG ASRIMG-READVOL EIOFS
set -u
asrimg=$1 readvol=$2 eiofs=$3
skip_all() { echo "SKIP: $1"; exit 77; }
[ -x "$eiofs" ] || skip_all "asrimg-eiofs not built (no libfuse3 at configure time)"
[ -c /dev/fuse ] || skip_all "no /dev/fuse"
for tool in fusermount3 sfdisk mkfs.vfat mcopy python3; do
  command -v "$tool" >/dev/null || skip_all "$tool not installed"
done

work=$(mktemp -d /tmp/asrimg-readerr-XXXXXX)
mnt=$work/mnt fuse_pid=""
. "$(dirname "$0")/eiofs_lib.sh" # unmount
cleanup() {
  unmount
  rm -rf "$work"
}
trap cleanup EXIT
pass=0 fail=0
check() { # name, then a command that must succeed
  local name=$1; shift
  if "$@" >"$work/out" 2>"$work/err"; then pass=$((pass + 1)); else
    fail=$((fail + 1)); echo "FAIL: $name"; sed 's/^/  out: /' "$work/out" | head -5; sed 's/^/  err: /' "$work/err" | head -5; fi
}
run_saving() { "$@" >"$work/out.saved" 2>"$work/err.saved"; echo $? >"$work/rc.saved"; }
# A backup that hangs on a failing disk is a failure of its own, not a ctest timeout much later.
asrimg_t() { timeout 120 "$asrimg" "$@"; }
rc_is() { [ "$(cat "$work/rc.saved")" -eq "$1" ]; }
py() { python3 -c "$1" "${@:2}"; }

# The source: GPT, a FAT32 volume at 1 MiB holding an 8 MiB random file and two small ones. The
# disk file is sparse, so the volume's free clusters are zeros, as an image reads them back.
disk=$work/disk.img
part_start=$((1 << 20)) part_size=$((60 << 20))
truncate -s 64M "$disk"
printf 'label: gpt\nstart=2048, size=60MiB, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\n' | sfdisk --quiet "$disk"
mkfs.vfat -F 32 --offset 2048 "$disk" $((part_size >> 10)) >/dev/null 2>&1
head -c 8M /dev/urandom >"$work/big.bin"
mcopy -i "$disk@@$part_start" "$work/big.bin" ::big.bin
mcopy -i "$disk@@$part_start" /etc/os-release ::os-release
printf 'known text\n' >"$work/note.txt"
mcopy -i "$disk@@$part_start" "$work/note.txt" ::note.txt

# Where big.bin's clusters are on the disk (random data: its first 4 KiB occur once). The bad
# ranges: 4 KiB 1 MiB into it, starting off a page boundary so that a page-sized read would
# spoil good sectors beside it, and one sector 5 MiB into it, in another read request.
big=$(py 'import sys; print(open(sys.argv[1],"rb").read().find(open(sys.argv[2],"rb").read(4096)))' "$disk" "$work/big.bin")
bad1=$(( (big + (1 << 20)) / 4096 * 4096 + 1536 )) len1=4096
bad2=$(( big + (5 << 20) + 512 )) len2=512
bad_total=$((len1 + len2))
if [ "$big" -le 0 ] || [ $((big % 512)) -ne 0 ]; then echo "FAIL: big.bin not found sector-aligned on the disk ($big)"; exit 1; fi

mkdir -p "$mnt"
served=$disk bads=(--bad "$bad1:$len1" --bad "$bad2:$len2") # what eiofs serves, failing where
mount_eiofs() { # extra eiofs options
  : >"$work/eiofs.log"
  "$eiofs" "$served" "$mnt" -f -s "${bads[@]}" --log "$work/eiofs.log" "$@" \
    2>"$work/eiofs.err" &
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

# Both ranges lie inside what the backup reads: used extents of the volume.
mount_eiofs
check "the bad ranges lie inside used extents" py '
import json, sys
d = json.load(sys.stdin)[0]
p = [p for p in d["partitions"] if p["number"] == 1][0]
assert p["capture"] == "used", p["capture"]
for start, length in ((int(sys.argv[1]), int(sys.argv[2])), (int(sys.argv[3]), int(sys.argv[4]))):
    rel = start - p["start_bytes"]
    assert any(o <= rel and rel + length <= o + n for o, n in p["extents"]), (start, p["extents"])
' "$bad1" "$len1" "$bad2" "$len2" < <("$asrimg" layout "$mnt/disk" --volumes all --json --extents)
unmount

for mode in direct buffered; do
  if [ $mode = direct ]; then
    mount_eiofs
  else
    # The FUSE file refuses O_DIRECT, so the engine reads through its ordinary descriptor; every
    # read then reaches eiofs as issued, as O_DIRECT reads do in the other round.
    mount_eiofs --refuse-o-direct --all-direct
  fi
  img=$work/$mode.asrimg

  # (a) A read error stops the backup: one error line naming the disk and the first bad byte.
  run_saving asrimg_t backup "$mnt/disk" -o "$img" --volumes all
  check "$mode: backup over a bad sector fails" rc_is 1
  check "$mode: exactly one error line" test "$(grep -c '^asrimg: error:' "$work/err.saved")" -eq 1
  check "$mode: it names the disk and the first bad byte" \
    grep -qx "asrimg: error: backup: reading $mnt/disk at byte $bad1: Input/output error" "$work/err.saved"
  check "$mode: no image is left" test ! -e "$img"
  check "$mode: no .partial is left" test ! -e "$img.partial"

  # (b) --ignore-read-errors: exactly the bad bytes are recorded, and everyone says so.
  run_saving asrimg_t backup "$mnt/disk" -o "$img" --volumes all --ignore-read-errors
  check "$mode: backup with --ignore-read-errors succeeds" rc_is 0
  check "$mode: it warns of the unreadable bytes" grep -q "^backup: warning: 4.5 KiB could not be read" "$work/err.saved"
  want_direct=$([ $mode = direct ] && echo True || echo False)
  check "$mode: --json unreadable_bytes is the bad bytes, read path as expected" py '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["unreadable_bytes"] == int(sys.argv[2]), d["unreadable_bytes"]
assert str(d["direct_io"]) == sys.argv[3], d["direct_io"]
' <(asrimg_t backup "$mnt/disk" -o - --volumes all --ignore-read-errors --json 2>&1 >/dev/null) \
    "$bad_total" "$want_direct"
  if [ $mode = direct ]; then
    check "direct: the engine opened the disk with O_DIRECT" grep -qx "open O_DIRECT" "$work/eiofs.log"
  else
    check "buffered: no O_DIRECT open succeeded" sh -c "! grep -q O_DIRECT '$work/eiofs.log'"
  fi
  # The failed 1 MiB requests were probed sector by sector: the bad sector's own read failed.
  check "$mode: the probe read the first bad sector alone" grep -qx "read $bad1 512 eio" "$work/eiofs.log"
  check "$mode: info --json reports the unreadable bytes on the volume" py '
import json, sys
d = json.load(sys.stdin)
assert d["unreadable_bytes"] == int(sys.argv[1]), d["unreadable_bytes"]
assert [v["unreadable_bytes"] for v in d["volumes"]] == [int(sys.argv[1])], d["volumes"]
' "$bad_total" < <("$asrimg" info --json "$img")

  # The image is intact: verify passes, and lists what it lacks.
  run_saving "$asrimg" verify "$img"
  check "$mode: verify passes" rc_is 0
  check "$mode: verify lists the first range" grep -qx \
    "  unreadable: volume 0 offset $((bad1 - part_start)) length $len1 (disk 0 offset $bad1)" "$work/out.saved"
  check "$mode: verify lists the second range" grep -qx \
    "  unreadable: volume 0 offset $((bad2 - part_start)) length $len2 (disk 0 offset $bad2)" "$work/out.saved"
  check "$mode: verify --json lists exactly the bad ranges" py '
import json, sys
d = json.load(sys.stdin)
a = [int(x) for x in sys.argv[1:]]
want = [{"volume": 0, "offset": a[0] - a[4], "length": a[1], "disk": 0, "disk_offset": a[0]},
        {"volume": 0, "offset": a[2] - a[4], "length": a[3], "disk": 0, "disk_offset": a[2]}]
assert d["ok"] is True and d["unreadable"] == want, d
assert d["unreadable_bytes"] == a[1] + a[3]
' "$bad1" "$len1" "$bad2" "$len2" "$part_start" < <("$asrimg" verify --json "$img")

  # (c) Every other byte of the volume reads back equal; the unreadable ones read as zeros.
  check "$mode: the volume reads back" "$readvol" "$img" 0 "$work/vol.raw"
  check "$mode: every byte but the bad ones is the source's" py '
import sys
disk, vol = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
start, size = int(sys.argv[3]), int(sys.argv[4])
want = bytearray(disk[start:start + size])
for off, n in ((int(sys.argv[5]), int(sys.argv[6])), (int(sys.argv[7]), int(sys.argv[8]))):
    assert any(want[off - start:off - start + n]), "the bad range holds data on the source"
    want[off - start:off - start + n] = bytes(n)
assert len(vol) == size, len(vol)
if vol != want:
    first = next(i for i in range(size) if vol[i] != want[i])
    raise SystemExit("volume differs at byte %d (disk %d)" % (first, start + first))
' "$disk" "$work/vol.raw" "$part_start" "$part_size" "$bad1" "$len1" "$bad2" "$len2"
  rm -f "$work/vol.raw"
  unmount
done

# (d) A read error in the image a restore reads: one error line, then a note saying what the
# target holds and what to do. The bad sector is in the middle of the last chunk's stored bytes,
# so the restore has written the chunks before it.
img=$work/direct.asrimg
bad_img=$(py '
import struct, sys
b = open(sys.argv[1], "rb").read()
at = b.rfind(b"ACNK")
print((at + 64 + struct.unpack_from("<I", b, at + 16)[0] // 2) // 512 * 512)' "$img")
served=$img bads=(--bad "$bad_img:512")
mount_eiofs --all-direct
run_saving asrimg_t restore "$mnt/disk" --to "$work/restored.img" --yes
unmount
check "restore from an image with a bad sector fails" rc_is 1
check "restore: one error line, naming the read error" sh -c \
  "[ \$(grep -c '^asrimg: error:' '$work/err.saved') -eq 1 ] && grep -q '^asrimg: error: .*Input/output error' '$work/err.saved'"
check "restore: then a note saying what the target holds and what to do" sh -c \
  "grep -A1 '^asrimg: error:' '$work/err.saved' | tail -n 1 | grep -qx 'asrimg: note: $work/restored.img: partly written, no valid partition table yet; run the same restore again from an intact copy of the image'"

echo "read_error_test: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
