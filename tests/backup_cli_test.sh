#!/usr/bin/env bash
# End-to-end checks of `asrimg backup` on a real disk image (GPT, FAT32 ESP, ext4 root): verify
# of the result, stdout to a pipe, split sets, --json, refusals (existing image without --force,
# image onto the source disk or into a filesystem mounted from it, one disk given twice under
# two names or through a loop device), what is already under the image's names (IMAGE.partial
# and parts as symlinks or hard links to a source or another file, a killed backup's leftovers),
# two backups to one image at once, a closed pipe and the file size limit, and an interrupted
# backup (kill -9) that must leave nothing that looks valid.
# Usage: backup_cli_test.sh ASRIMG
set -u
asrimg=$1
work=$(mktemp -d /tmp/asrimg-backup-XXXXXX)
loops=() mnt=""
source "$(dirname "${BASH_SOURCE[0]}")/loop_lib.sh"
cleanup() {
  [ -n "$mnt" ] && umount "$mnt" 2>/dev/null
  detach_ours "$work" "${loops[@]}"
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
one_error_line() { [ "$(grep -c '^asrimg: error: ' "$work/err.saved")" -eq 1 ]; }
unchanged() { [ "$(sha256sum <"$1")" = "$2" ]; } # file, its sha256sum output from before
no_partials() { ! ls "$1"*.partial >/dev/null 2>&1; } # image

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

# --json lists every volume and how it was taken: with the default selection, the same captures
# as `layout --json` says, and the sum of the captured bytes is what was read.
check "--json lists every volume and its capture" sh -c "'$asrimg' layout '$disk' --json > '$work/lj.json' &&
  '$asrimg' backup '$disk' -o '$work/v.asrimg' --json 2>/dev/null | python3 -c '
import json,sys; d=json.load(sys.stdin); l=json.load(open(\"$work/lj.json\"))
parts=[p for disk in l for p in disk[\"partitions\"]]
vols=[v for v in d[\"volumes\"] if v[\"kind\"] == \"partition\"]
assert sorted((v[\"partition\"], v[\"capture\"]) for v in vols) == sorted((p[\"number\"], p[\"capture\"]) for p in parts), (vols, parts)
assert sum(v[\"capture_bytes\"] for v in d[\"volumes\"]) == d[\"read_bytes\"], d'"

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

# A small raw disk for what follows: the image's names, two backups at once, broken output.
tiny=$work/tiny.img
truncate -s 12M "$tiny"
head -c 10M /dev/urandom | dd of="$tiny" conv=notrunc status=none
tiny_sum=$(sha256sum <"$tiny")
tb() { "$asrimg" backup "$tiny" --volumes all --level 1 "$@"; }

# Whatever is under the image's names already is never written through (issue 12): a .partial
# is a new file of the writer's. One that is, or leads to, a source is refused, as is replacing
# or removing a part of an older image that is a source.
ln -s "$tiny" "$work/sl.asrimg.partial"
run_saving tb -o "$work/sl.asrimg"
check "IMAGE.partial a symlink to the source: refused" rc_is 1
check "that refusal names it" error_names "sl.asrimg.partial .*being imaged"
check "the source behind the symlink is untouched" unchanged "$tiny" "$tiny_sum"
ln -s "$tiny" "$work/sl2.asrimg.002.partial"
run_saving tb -o "$work/sl2.asrimg" --split 4M
check "split: IMAGE.002.partial a symlink to the source: refused" rc_is 1
check "that refusal names the part" error_names "sl2.asrimg.002.partial .*being imaged"
check "the source behind the part's symlink is untouched" unchanged "$tiny" "$tiny_sum"
check "the refused split set leaves no image and no .partial file of its own" \
  sh -c "! [ -e '$work/sl2.asrimg' ] && ! [ -e '$work/sl2.asrimg.partial' ] && [ -L '$work/sl2.asrimg.002.partial' ]"
ln "$tiny" "$work/hs.asrimg.partial"
run_saving tb -o "$work/hs.asrimg"
check "IMAGE.partial a hard link to the source: refused" rc_is 1
check "the source keeps that name" test "$work/hs.asrimg.partial" -ef "$tiny"
check "and its bytes" unchanged "$tiny" "$tiny_sum"

head -c 300000 /dev/urandom >"$work/precious"
head -c 300000 /dev/urandom >"$work/precious2"
precious_sum=$(sha256sum <"$work/precious") precious2_sum=$(sha256sum <"$work/precious2")
ln "$work/precious" "$work/hl.asrimg.partial"
ln "$work/precious" "$work/hl.asrimg.002.partial"
ln -s "$work/precious2" "$work/hl.asrimg.003.partial"
run_saving tb -o "$work/hl.asrimg" --split 4M
check "the parts' .partial names hard links or symlinks to other files: backup works" rc_is 0
check "the hard-linked file is untouched" unchanged "$work/precious" "$precious_sum"
check "the symlinked file is untouched" unchanged "$work/precious2" "$precious2_sum"
check "the split set written beside them verifies" "$asrimg" verify "$work/hl.asrimg"
check "and leaves no .partial" no_partials "$work/hl.asrimg"
ln "$work/precious" "$work/hl1.asrimg.partial"
run_saving tb -o "$work/hl1.asrimg"
check "IMAGE.partial a hard link to another file: backup works" rc_is 0
check "that file is untouched too" unchanged "$work/precious" "$precious_sum"
check "that image verifies" "$asrimg" verify "$work/hl1.asrimg"

# An older image with more parts, one of them (a link to) the source: --force neither removes it
# as a part left over nor renames a new part over it; the older image stays as it was.
for k in "" .002 .004; do echo "older$k" >"$work/st.asrimg$k"; done
ln "$tiny" "$work/st.asrimg.003"
run_saving tb -o "$work/st.asrimg" --force
check "an older image's extra part that is the source: refused" rc_is 1
check "that refusal names the part" error_names "st.asrimg.003 .*being imaged"
check "the source keeps its name" test "$work/st.asrimg.003" -ef "$tiny"
check "the older image is left as it was" sh -c "grep -qx older '$work/st.asrimg' && grep -qx older.004 '$work/st.asrimg.004'"
check "the refused image leaves no .partial" no_partials "$work/st.asrimg"
run_saving tb -o "$work/st.asrimg" --force --split 4M
check "a new part renamed over the source: refused" rc_is 1
check "the source keeps its name again" test "$work/st.asrimg.003" -ef "$tiny"
check "the source is untouched after all this" unchanged "$tiny" "$tiny_sum"

# A killed backup's leftovers (plain files no one holds) are replaced; one a live process holds
# is another backup writing the image: refused, and left alone.
echo leftover >"$work/lo.asrimg.partial"
echo leftover >"$work/lo.asrimg.002.partial"
check "leftover .partial files are replaced" tb -o "$work/lo.asrimg" --split 4M
check "the image written over the leftovers verifies" "$asrimg" verify "$work/lo.asrimg"
check "no .partial is left" no_partials "$work/lo.asrimg"
echo held >"$work/held.asrimg.partial"
flock "$work/held.asrimg.partial" sleep 30 &
holder=$!
for _ in $(seq 50); do flock -n "$work/held.asrimg.partial" true || break; sleep 0.1; done
run_saving tb -o "$work/held.asrimg"
kill $holder 2>/dev/null; wait $holder 2>/dev/null
check "an IMAGE.partial held by a live writer: refused" rc_is 1
check "that refusal says another backup is writing the image" error_names "another backup is writing"
check "the held file is left alone" grep -qx held "$work/held.asrimg.partial"

# Two backups to one image at once: each time one is refused with one clear line or both
# succeed, and the image is complete and valid, with no .partial left.
race() { # image, backup options
  local img=$1; shift
  rm -f "$img" "$img".*
  tb -o "$img" "$@" >/dev/null 2>"$work/race1" &
  local p1=$!
  tb -o "$img" "$@" >/dev/null 2>"$work/race2" &
  local p2=$!
  wait $p1; local r1=$?
  wait $p2; local r2=$?
  echo "exits $r1 $r2"; grep -h '^asrimg: ' "$work/race1" "$work/race2"
  [ $r1 -eq 0 ] || [ $r2 -eq 0 ] || return 1
  for i in 1 2; do
    local r=$r1; [ $i -eq 2 ] && r=$r2
    [ $r -eq 0 ] && continue
    [ $r -eq 1 ] && [ "$(grep -c '^asrimg: error: ' "$work/race$i")" -eq 1 ] &&
      grep -Eq '^asrimg: error: (another backup is writing|.*already exists)' "$work/race$i" || return 1
  done
  "$asrimg" verify "$img" && no_partials "$img"
}
for t in 1 2 3 4; do check "two backups at once, --force (round $t)" race "$work/race.asrimg" --force; done
for t in 1 2; do check "two backups at once (round $t)" race "$work/race.asrimg"; done
for t in 1 2; do check "two split backups at once, --force (round $t)" race "$work/race.asrimg" --force --split 4M; done

# A reader that stops early, and the file size limit: one error line and exit 1, not a silent
# death by SIGPIPE or SIGXFSZ, and no .partial left.
tb -o - 2>"$work/err.saved" | head -c 1000000 >/dev/null
echo "${PIPESTATUS[0]}" >"$work/rc.saved"
check "-o - into a pipe closed early exits 1" rc_is 1
check "with one error line naming the broken pipe" sh -c "grep -c '^asrimg: error: ' '$work/err.saved' | grep -qx 1 && grep -q 'Broken pipe' '$work/err.saved'"
run_saving sh -c "ulimit -f 4000; exec '$asrimg' backup '$tiny' --volumes all --level 1 -o '$work/fz.asrimg'"
check "an image over the file size limit exits 1" rc_is 1
check "with one error line naming the limit" sh -c "grep -c '^asrimg: error: ' '$work/err.saved' | grep -qx 1 && grep -q 'File too large' '$work/err.saved'"
check "and leaves neither image nor .partial" sh -c "! ls '$work'/fz.asrimg* >/dev/null 2>&1"
run_saving sh -c "ulimit -f 2000; exec '$asrimg' backup '$tiny' --volumes all --level 1 -o '$work/fz2.asrimg' --split 4M"
check "split: a part over the file size limit exits 1" rc_is 1
check "split: one error line" one_error_line
check "the split set leaves no image and no .partial" sh -c "! ls '$work'/fz2.asrimg* >/dev/null 2>&1"

# Any command's standard output that cannot be written (a closed pipe, a full disk): one error
# line and exit 1, never a silent death nor a success.
closed_pipe() { # command...: run with standard output a pipe whose reader is gone
  rm -f "$work/fifo"; mkfifo "$work/fifo"
  local r w rc
  exec {r}<>"$work/fifo" {w}>"$work/fifo"
  exec {r}<&-
  "$@" >&$w; rc=$?
  exec {w}>&-
  return $rc
}
tb -o "$work/t.asrimg" 2>/dev/null
for cmd in "layout --json $tiny" "info $work/t.asrimg" "verify --json $work/t.asrimg"; do
  run_saving closed_pipe "$asrimg" $cmd
  check "$cmd into a closed pipe: exit 1" rc_is 1
  check "$cmd into a closed pipe: one error line" one_error_line
done
for cmd in "layout $tiny" "info --json $work/t.asrimg" "version"; do
  run_saving sh -c "exec '$asrimg' $cmd >/dev/full"
  check "$cmd onto a full disk: exit 1" rc_is 1
  check "$cmd onto a full disk: one error line" one_error_line
done
run_saving sh -c "exec '$asrimg' backup '$tiny' --volumes all -o '$work/full.asrimg' --json >/dev/full"
check "backup --json with its summary onto a full disk: exit 1" rc_is 1
check "and one error line" one_error_line

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
  # IMAGE.partial a symlink to the source device: writing through it would overwrite the source.
  tloop=$(losetup -f --show "$tiny")
  loops+=("$tloop")
  ln -s "$tloop" "$work/ll.asrimg.partial"
  run_saving "$asrimg" backup "$tloop" --volumes all -o "$work/ll.asrimg"
  check "IMAGE.partial a symlink to the source loop device: refused" rc_is 1
  check "that refusal names it" error_names "ll.asrimg.partial .*being imaged"
  ln -s "$tloop" "$work/ll2.asrimg.002.partial"
  run_saving "$asrimg" backup "$tloop" --volumes all -o "$work/ll2.asrimg" --split 4M
  check "split: IMAGE.002.partial a symlink to the source loop device: refused" rc_is 1
  check "the file behind the loop device is untouched" unchanged "$tiny" "$tiny_sum"

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
check "a backup after the killed one works" "$asrimg" backup "$disk" -o "$work/k.asrimg"
check "it verifies" "$asrimg" verify "$work/k.asrimg"
check "and leaves no .partial" no_partials "$work/k.asrimg"

echo "backup_cli_test: $pass passed, $fail failed, $skipped skipped"
[ "$fail" -eq 0 ]
