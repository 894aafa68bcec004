#!/usr/bin/env bash
# End-to-end checks of `asrimg backup` on a real disk image (GPT, FAT32 ESP, ext4 root): verify
# of the result, stdout to a pipe, split sets, --json, refusals (existing image without --force,
# image onto the source disk or into a filesystem mounted from it, one disk given twice under
# two names or through a loop device), and an interrupted backup
# (kill -9) that must leave nothing that looks valid. Usage: backup_cli_test.sh ASRIMG
set -u
asrimg=$1
work=$(mktemp -d /tmp/asrimg-backup-XXXXXX)
loops=() mnt=""
# A loop device this test set up and has not detached: it reads a file in $work. One detached
# already may since be another program's: it is left alone.
ours() { case $(losetup -n -O BACK-FILE "$1" 2>/dev/null) in "$work"/*) true ;; *) false ;; esac; }
cleanup() {
  [ -n "$mnt" ] && umount "$mnt" 2>/dev/null
  for l in "${loops[@]}"; do ! ours "$l" || losetup -d "$l" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
pass=0 fail=0 skipped=0
check() { # name, then a command that must succeed
  local name=$1; shift
  if "$@" >"$work/out" 2>"$work/err"; then pass=$((pass + 1)); else
    fail=$((fail + 1)); echo "FAIL: $name"; sed 's/^/  out: /' "$work/out" | head -5; sed 's/^/  err: /' "$work/err" | head -5; fi
}
skip() { skipped=$((skipped + 1)); echo "SKIP: $1"; }
run_saving() { "$@" >"$work/out.saved" 2>"$work/err.saved"; echo $? >"$work/rc.saved"; }
rc_is() { [ "$(cat "$work/rc.saved")" -eq "$1" ]; }
error_names() { grep -q "^asrimg: error: .*$1" "$work/err.saved"; }

# The source disk: GPT, a FAT32 ESP and an ext4 root with real files and a duplicate.
disk=$work/disk.img
mkdir -p "$work/root/etc"
cp /etc/os-release "$work/root/etc/"
cp -r /usr/share/doc/e2fsprogs "$work/root/doc" 2>/dev/null
head -c 24M /dev/urandom >"$work/root/random.bin"
cp "$work/root/random.bin" "$work/root/random-copy.bin"
truncate -s 160M "$disk"
sfdisk --quiet "$disk" <<'EOF'
label: gpt
start=2048, size=40MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
type=0FC63DAF-8483-4772-8E79-3D69D8477DE4
EOF
mkfs.vfat -F 32 --offset 2048 "$disk" $((40 * 1024)) >/dev/null 2>&1
root_off=$((83968 * 512))
mkfs.ext4 -q -F -d "$work/root" -E offset=$root_off "$disk" 110M

run_saving "$asrimg" backup "$disk" -o "$work/a.asrimg" --volumes all
check "backup exits 0" rc_is 0
check "backup shows the plan with reasons" grep -q "EFI System partition" "$work/err.saved"
check "backup reports a summary" grep -q "^backup: .* read in" "$work/err.saved"
check "backup leaves no .partial" test ! -e "$work/a.asrimg.partial"
check "the image verifies" "$asrimg" verify "$work/a.asrimg"
check "info lists both volumes" sh -c "'$asrimg' info --json '$work/a.asrimg' | python3 -c 'import json,sys; d=json.load(sys.stdin); assert len(d[\"volumes\"])==2, d'"

check "--json summary" sh -c "'$asrimg' backup '$disk' -o '$work/j.asrimg' --volumes all --json 2>/dev/null | python3 -c '
import json,sys; d=json.load(sys.stdin)
assert d[\"read_bytes\"] == d[\"new_bytes\"] + d[\"dedup_bytes\"] + d[\"zero_bytes\"], d
assert d[\"dedup_bytes\"] >= 16 << 20, d  # the 24 MiB copy; ext4 metadata every 8 MiB costs a chunk or two
assert d[\"image_bytes\"] > 0 and d[\"ratio\"] > 1 and d[\"seconds\"] > 0
for k in (\"read_wait_seconds\", \"chunk_seconds\", \"hash_cpu_seconds\", \"compress_cpu_seconds\", \"write_seconds\"): assert k in d[\"stages\"]'"

check "backup to a pipe (-o -)" sh -c "'$asrimg' backup '$disk' -o - --volumes all 2>/dev/null | cat > '$work/p.asrimg'"
check "the piped image verifies" "$asrimg" verify "$work/p.asrimg"
check "-o - --json: image on stdout, summary on stderr" sh -c "'$asrimg' backup '$disk' -o - --json 2>'$work/pj.json' > '$work/pj.asrimg' && '$asrimg' verify '$work/pj.asrimg' && python3 -c 'import json; json.load(open(\"$work/pj.json\"))'"
run_saving "$asrimg" backup "$disk" -o - --split 1M
check "--split with stdout is a usage error" rc_is 2

check "split backup" "$asrimg" backup "$disk" -o "$work/s.asrimg" --volumes all --split 4M
check "split set has several parts" test -e "$work/s.asrimg.003"
check "split set verifies" "$asrimg" verify "$work/s.asrimg"
check "parts are at most 4 MiB" sh -c "! find '$work' -name 's.asrimg*' -size +4096k | grep -q ."

sum=$(sha256sum <"$work/a.asrimg")
run_saving "$asrimg" backup "$disk" -o "$work/a.asrimg"
check "an existing image is refused" rc_is 1
check "the refusal says it exists" error_names "exists"
check "the existing image is untouched" test "$(sha256sum <"$work/a.asrimg")" = "$sum"
check "--force replaces it" "$asrimg" backup "$disk" -o "$work/a.asrimg" --force --level 1

run_saving "$asrimg" backup "$disk" -o "$disk" --force
check "the image onto its own source is refused" rc_is 1
check "that refusal names the source" error_names "being imaged"
check "the source is untouched" test ! -e "$disk.partial"

# One disk given twice, under any name: refused before anything is read or written, by backup,
# layout and bench alike (one line, exit 1, no image).
# twice NAME WORD CMD...: the command was refused naming WORD, and made no image.
twice() {
  local name=$1 word=$2; shift 2
  rm -f "$work/twice.asrimg" "$work/twice.asrimg.partial"
  run_saving "$@"
  check "$name: refused" rc_is 1
  check "$name: one error line" test "$(wc -l <"$work/err.saved")" -eq 1
  check "$name: the error says '$word'" error_names "$word"
  check "$name: no image" test ! -e "$work/twice.asrimg" -a ! -e "$work/twice.asrimg.partial"
}
ln -s "$disk" "$work/disk-link.img"
twice "backup D D" "given twice" "$asrimg" backup "$disk" "$disk" -o "$work/twice.asrimg" --volumes all
twice "backup D and a symlink to D" "given twice" "$asrimg" backup "$disk" "$work/disk-link.img" -o "$work/twice.asrimg"
twice "backup D ./D" "given twice" "$asrimg" backup "$disk" "$(dirname "$disk")/./disk.img" -o "$work/twice.asrimg"
twice "layout D D" "given twice" "$asrimg" layout "$disk" "$work/disk-link.img"
twice "bench D D" "given twice" "$asrimg" bench "$disk" "$disk"

# The image inside a filesystem mounted from a loop device over the source disk file.
if whole=$(losetup -f --show "$disk" 2>/dev/null); then
  loops+=("$whole")
  part=$(losetup -f --show -o $root_off --sizelimit $((110 << 20)) "$disk")
  loops+=("$part")
  mkdir -p "$work/mnt"
  if mount -o ro "$part" "$work/mnt" 2>/dev/null; then
    mnt=$work/mnt
    mkdir -p "$work/other"
    run_saving "$asrimg" backup "$whole" -o "$mnt/inside.asrimg"
    check "an image inside a mounted source volume is refused" rc_is 1
    check "that refusal names the disk" error_names "being imaged"
    umount "$mnt"; mnt=""
  else
    skip "mount of a loop device not permitted here"
  fi
  check "backup of a loop device works" "$asrimg" backup "$whole" -o "$work/loop.asrimg" --volumes all
  check "and verifies" "$asrimg" verify "$work/loop.asrimg"
  # A loop device is the file (or the part of it) it reads; two loop devices over one file are
  # each other. (A partition and its whole disk resolve the same way; no partition scanning here.)
  twice "backup of a loop device and its file" "shares storage" \
    "$asrimg" backup "$whole" "$disk" -o "$work/twice.asrimg" --volumes all
  twice "backup of a file and a loop device at an offset in it" "shares storage" \
    "$asrimg" backup "$disk" "$part" -o "$work/twice.asrimg"
  twice "backup of two loop devices over one file" "shares storage" \
    "$asrimg" backup "$part" "$whole" -o "$work/twice.asrimg"
  twice "layout of a loop device and its file" "shares storage" "$asrimg" layout "$work/disk-link.img" "$whole"
  if other=$(losetup -f --show "$disk" 2>/dev/null); then
    loops+=("$other")
    twice "backup of two loop devices over the whole file" "shares storage" \
      "$asrimg" backup "$whole" "$other" -o "$work/twice.asrimg"
    losetup -d "$other"
  fi
else
  skip "no loop devices"
fi

# kill -9 in the middle: no IMAGE, and whatever .partial is left is not a valid image.
truncate -s 600M "$work/big.img"
head -c 400M /dev/urandom | dd of="$work/big.img" conv=notrunc status=none
"$asrimg" backup "$work/big.img" -o "$work/k.asrimg" --volumes all --level 19 --threads 1 >/dev/null 2>&1 &
pid=$!
sleep 1
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null || true
check "a killed backup leaves no image" test ! -e "$work/k.asrimg"
if [ -e "$work/k.asrimg.partial" ]; then
  run_saving "$asrimg" verify "$work/k.asrimg.partial"
  check "the .partial is reported incomplete" sh -c "! [ \"\$(cat '$work/rc.saved')\" -eq 0 ] && grep -qi 'incomplete' '$work/err.saved'"
fi

echo "backup_cli_test: $pass passed, $fail failed, $skipped skipped"
[ "$fail" -eq 0 ]
