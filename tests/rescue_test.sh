#!/usr/bin/env bash
# End-to-end checks of the restore half of the recovery drive: `asrimg rescue images`, `rescue
# plan` and `rescue run`, on loop devices standing for the disks of a machine. A small GPT disk
# with an ext4 partition is backed up twice (HOST-YYYYmmdd-HHMMSS.asrimg, a file added between
# the two) into the images directory of a "recovery drive": an ext4 filesystem on a loop device
# that is also offered as a disk, so that it must never be chosen. Beside them: a damaged image,
# an unfinished .partial, a split set missing a part, a file of another kind.
#   - images: newest first, machine and disks, the damaged one listed, the unfinished skipped;
#   - plan: the disk of exactly the image disk's size preferred over a larger one, else the
#     smallest that fits; the drive never offered nor accepted; a smaller --target refused naming
#     both sizes (and rescue run refuses it with its bytes unchanged); two equal disks ambiguous;
#   - run, unattended through --cmdline-file: onto a larger disk full of garbage, e2fsck clean,
#     every file equal to the newest backup's, the report (text and JSON) written, next: poweroff;
#     a failure (ambiguous, from unattended.conf) says shell with a report of what failed;
#   - run, interactive in a tmux pane: the list, the plan, the confirmation; "n" leaves the target
#     byte for byte as it was, then "yes" restores it and the answer to "Reboot now?" is the next.
# Usage: rescue_test.sh ASRIMG
set -u
unset COLUMNS ASRIMG_EFIVARS_DIR
asrimg=$(realpath "$1")
skip_all() { echo "SKIP: $1"; echo "rescue: 0 passed, 0 failed, 1 skipped"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip_all "needs root (loop devices, mount)"
for tool in losetup mount umount sfdisk mkfs.ext4 e2fsck cmp diff sha256sum python3 tmux; do
  command -v "$tool" >/dev/null || skip_all "$tool not installed"
done
# rescue run adds --boot-entries on UEFI firmware, which these checks do not cover.
[ -e /sys/firmware/efi/efivars ] && skip_all "UEFI firmware here (restore --boot-entries would be added)"

work=$(mktemp -d /tmp/asrimg-rescue-XXXXXX)
mkdir -p "$work/mnt" "$work/drive" "$work/files"
loops=()
tmux_sock="$work/tmux.0.sock" panes=0
source "$(dirname "${BASH_SOURCE[0]}")/loop_lib.sh"
cleanup() {
  for s in "$work"/tmux.*.sock; do [ -S "$s" ] && tmux -S "$s" kill-server 2>/dev/null; done
  umount "$work/mnt" 2>/dev/null
  umount "$work/drive" 2>/dev/null
  detach_ours "$work" "${loops[@]}"
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
pass=0 fail=0
check() { # name, then a command that must succeed
  local name=$1; shift
  if "$@" >"$work/out" 2>"$work/err"; then pass=$((pass + 1)); else
    fail=$((fail + 1)); echo "FAIL: $name"; sed 's/^/  out: /' "$work/out" | head -5; sed 's/^/  err: /' "$work/err" | head -8; fi
}
run_saving() { # the command's stdout, stderr and exit status, for the checks after it
  "$@" >"$work/out.saved" 2>"$work/err.saved"
  echo $? >"$work/rc.saved"
  grep -E 'Sanitizer|runtime error:' "$work/err.saved"
}
rc_is() {
  local rc; rc=$(cat "$work/rc.saved")
  [ "$rc" -eq "$1" ] || { echo "exit status $rc, expected $1" >&2; head -12 "$work/err.saved" >&2; false; }
}
out_has() { grep -qF -- "$1" "$work/out.saved" || { head -30 "$work/out.saved" >&2; false; }; }
err_has() { grep -qF -- "$1" "$work/err.saved" || { head -12 "$work/err.saved" >&2; false; }; }
json_ok() { # a python expression over j, the saved stdout as JSON
  python3 -c "import json,sys; j=json.load(open('$work/out.saved')); sys.exit(0 if ($1) else 1)" ||
    { head -c 1500 "$work/out.saved" >&2; false; }
}
loop_file() { # VAR FILE: a loop device over FILE
  local _dev
  _dev=$(losetup -f --show "$2") || { echo "losetup $2 failed"; exit 1; }
  loops+=("$_dev")
  printf -v "$1" %s "$_dev"
}
same_file() { cmp -s "$1" "$2" || { echo "$1 and $2 differ" >&2; false; }; }

# ---- the machine's disk, backed up twice ------------------------------------------------------
# The images record this machine's hostname (their machine record), which names them rather than
# the HOST of their file names.
host=$(hostname)
src=$work/src.img
truncate -s 64M "$src"
echo 'label: gpt
start=2048, size=120832, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4' | sfdisk -q "$src" || exit 1
part_dev=$(losetup -f --show -o $((2048 * 512)) --sizelimit $((120832 * 512)) "$src") || exit 1
loops+=("$part_dev")
mkfs.ext4 -q -F -L rescueroot "$part_dev" || exit 1
mount "$part_dev" "$work/mnt" || exit 1
mkdir -p "$work/mnt/etc" "$work/mnt/data"
echo "rescue test" >"$work/mnt/etc/hostname"
head -c 3000000 /dev/urandom >"$work/mnt/data/blob"
seq 1 100000 >"$work/mnt/data/numbers"
umount "$work/mnt"

drive_file=$work/drive.img
truncate -s 200M "$drive_file"
mkfs.ext4 -q -F -L RESCUE "$drive_file" || exit 1
loop_file drive "$drive_file"
mount "$drive" "$work/drive" || exit 1
images=$work/drive/images
mkdir -p "$images"

"$asrimg" backup "$src" --volumes all -o "$images/testhost-20260101-100000.asrimg" 2>"$work/err" || { cat "$work/err"; exit 1; }
mount "$part_dev" "$work/mnt" || exit 1
echo "made after the first backup" >"$work/mnt/etc/second"
cp -a "$work/mnt/." "$work/files/"
umount "$work/mnt"
sleep 1 # the header's created_unix counts seconds: the second backup is newer
"$asrimg" backup "$src" --volumes all -o "$images/testhost-20260102-100000.asrimg" 2>"$work/err" || { cat "$work/err"; exit 1; }
older=$images/testhost-20260101-100000.asrimg newer=$images/testhost-20260102-100000.asrimg
# A damaged image (its index overwritten), an unfinished one, a split set missing its last part,
# and a file of another kind.
cp "$older" "$images/broken-20260103-100000.asrimg"
size=$(stat -c %s "$older")
printf 'garbage!garbage!garbage!garbage!' | dd of="$images/broken-20260103-100000.asrimg" bs=1 seek=$((size - 200)) conv=notrunc status=none
cp "$older" "$images/testhost-20260104-100000.asrimg.partial"
"$asrimg" backup "$src" --volumes all -o "$images/split-20260105-100000.asrimg" --split 1M 2>"$work/err" || { cat "$work/err"; exit 1; }
last_part=$(ls "$images"/split-20260105-100000.asrimg.0* | tail -n 1)
[ -n "$last_part" ] && rm "$last_part"
echo "notes" >"$images/README.txt"

# ---- the disks of the machine being restored --------------------------------------------------
mk_target() { # VAR MiB: a loop device over a file of that size full of garbage
  head -c $(($2 << 20)) /dev/urandom >"$work/$1.img"
  loop_file "$1" "$work/$1.img"
}
mk_target exact 64
mk_target big 128
mk_target big2 128
mk_target small 32
sum() { sha256sum <"$1" | cut -d' ' -f1; }
small_sum=$(sum "$small") exact_sum=$(sum "$exact") big2_sum=$(sum "$big2")

# ---- rescue images ------------------------------------------------------------------------------
run_saving "$asrimg" rescue images "$images" --json
check "images --json exits 0" rc_is 0
check "images: the two that open, newest first, with machine and disk" json_ok \
  "[i['file'] for i in j['images'] if i['opens']] == ['testhost-20260102-100000.asrimg', 'testhost-20260101-100000.asrimg'] and all(i['machine'] == '$host' and i['disk_count'] == 1 and i['disk_bytes'] == [64 << 20] for i in j['images'] if i['opens'])"
check "images: the damaged one is listed as damaged, with why" json_ok \
  "[(i['file'], i['state'], bool(i['error'])) for i in j['images'] if not i['opens']] == [('broken-20260103-100000.asrimg', 'damaged', True)]"
check "images: .partial and the split set missing a part are skipped, saying why; README.txt is not an image" json_ok \
  "sorted((s['file'], s['why'].split(':')[0]) for s in j['skipped']) == [('split-20260105-100000.asrimg', 'incomplete'), ('testhost-20260104-100000.asrimg.partial', 'unfinished')]"
run_saving "$asrimg" rescue images "$images"
check "images (text): the newest first, damaged listed, skipped said" python3 - "$work/out.saved" <<'PY'
import sys
lines = open(sys.argv[1]).read().splitlines()
rows = [l for l in lines if '.asrimg' in l and not l.strip().startswith('skipped')]
order = [next(w for w in l.split() if w.endswith('.asrimg')) for l in rows]
assert order.index('testhost-20260102-100000.asrimg') < order.index('testhost-20260101-100000.asrimg'), order
assert any('broken-' in l and 'damaged' in l for l in rows), rows
assert any(l.strip().startswith('skipped testhost-20260104-100000.asrimg.partial') for l in lines), lines
assert not any('README' in l for l in lines), lines
PY

# ---- rescue plan ---------------------------------------------------------------------------------
export ASRIMG_RESCUE_DISKS="$drive $big $small $exact"
run_saving "$asrimg" rescue plan "$newer"
check "plan exits 0 with a complete plan" rc_is 0
check "plan: the disk of exactly the image disk's size is preferred over a larger one" out_has "-> $exact (64.0 MiB, exact size)"
check "plan: the drive is marked and never a target" grep -qE "^  $drive .*recovery drive: never a target" "$work/out.saved"
check "plan: the restore command it implies" out_has "asrimg restore $newer --to $exact --verify --yes"
check "plan: says what the target holds and that all of it is overwritten" err_has "ALL OF IT WILL BE OVERWRITTEN"
run_saving "$asrimg" rescue plan "$newer" --json
check "plan --json: target, how, command" json_ok \
  "j['plan'][0]['target'] == '$exact' and j['plan'][0]['how'] == 'exact size' and j['drive'] == '$drive' and j['complete'] and j['command'].endswith('--to $exact --verify --yes')"

ASRIMG_RESCUE_DISKS="$small $big $drive" run_saving "$asrimg" rescue plan "$newer" --json
check "plan: without an exact one, the smallest that fits" json_ok \
  "j['plan'][0]['target'] == '$big' and j['plan'][0]['how'] == 'smallest that fits'"

# An image of two disks (32 MiB, then 64 MiB): the second takes the disk of exactly its size, the
# first the smallest that fits of the rest; the command names each as N=DEV.
src2=$work/src2.img
truncate -s 32M "$src2"
echo 'label: gpt
start=2048, size=61440, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4' | sfdisk -q "$src2" || exit 1
"$asrimg" backup "$src2" "$src" --volumes all -o "$work/two.asrimg" 2>"$work/err" || { cat "$work/err"; exit 1; }
ASRIMG_RESCUE_DISKS="$drive $big $exact" run_saving "$asrimg" rescue plan "$work/two.asrimg" --json
check "plan, two image disks: exact size first, then the smallest that fits; N=DEV in the command" json_ok \
  "[(p['target'], p['how']) for p in j['plan']] == [('$big', 'smallest that fits'), ('$exact', 'exact size')] and j['command'].endswith('--to 0=$big --to 1=$exact --verify --yes')"
ASRIMG_RESCUE_DISKS="$drive $big $exact" run_saving "$asrimg" rescue plan "$work/two.asrimg" --target "1=$big" --json
check "plan, two image disks, --target 1=DEV: the other disk matched around it" json_ok \
  "[(p['target'], p['how']) for p in j['plan']] == [('$exact', 'smallest that fits'), ('$big', 'named (--target)')]"

# The drive (200 MiB, large enough) is the only disk: no target.
ASRIMG_RESCUE_DISKS="$drive $small" run_saving "$asrimg" rescue plan "$newer" --json
check "plan: the drive is never offered, even when it is the only disk large enough" rc_is 1
check "plan: ... and the plan says no target" json_ok "j['plan'][0]['target'] is None and not j['complete'] and [d['drive'] for d in j['disks']] == [True, False]"
run_saving "$asrimg" rescue plan "$newer" --target "$drive"
check "plan --target DRIVE is refused" rc_is 1
check "... saying it is the recovery drive" err_has "is the recovery drive"
# --drive names it too, when the images are elsewhere (here: the same drive, named).
ASRIMG_RESCUE_DISKS="$drive $big" run_saving "$asrimg" rescue plan "$newer" --drive "$drive" --json
check "plan --drive DEV: that disk is never a target" json_ok "j['plan'][0]['target'] == '$big' and j['disks'][0]['drive']"

run_saving "$asrimg" rescue plan "$newer" --target "$small"
check "plan: a smaller --target is refused" rc_is 1
check "... naming both sizes" err_has "target $small is smaller than image disk 0: 33554432 bytes (32.0 MiB) < 67108864 bytes (64.0 MiB)"
echo "asrimg.restore=latest asrimg.target=$small asrimg.yes" >"$work/cmdline-small"
run_saving "$asrimg" rescue run --images "$images" --cmdline-file "$work/cmdline-small" --next-file "$work/next"
check "run: a smaller target is refused" rc_is 1
check "... before anything is written: its bytes are unchanged" test "$(sum "$small")" = "$small_sum"
check "... and the next action is a shell" test "$(cat "$work/next")" = shell

ASRIMG_RESCUE_DISKS="$drive $big $big2 $small" run_saving "$asrimg" rescue plan "$newer"
check "plan: two equally good disks are ambiguous" rc_is 1
check "... both named" out_has "ambiguous: $big or $big2 (equally good: 128.0 MiB each)"
ASRIMG_RESCUE_DISKS="$drive $big $big2 $small" run_saving "$asrimg" rescue plan "$newer" --json
check "plan --json: ambiguous, with the candidates" json_ok \
  "j['plan'][0]['ambiguous'] and j['plan'][0]['candidates'] == ['$big', '$big2'] and j['command'] is None"
ASRIMG_RESCUE_DISKS="$drive $big $big2 $small" run_saving "$asrimg" rescue plan "$newer" --target "$big2" --json
check "plan: --target settles it" json_ok "j['plan'][0]['target'] == '$big2' and j['complete']"

# ---- rescue run, unattended ------------------------------------------------------------------------
# From unattended.conf: ambiguous, so it fails, says shell, and reports what failed.
printf '# unattended restore\nrestore=latest\nasrimg.yes\nthen=reboot\n' >"$images/unattended.conf"
ASRIMG_RESCUE_DISKS="$drive $big $big2" run_saving "$asrimg" rescue run --images "$images" --cmdline-file /dev/null \
  --next-file "$work/next" --json
check "run (unattended.conf): an ambiguous plan fails" rc_is 1
check "... the next action is a shell" test "$(cat "$work/next")" = shell
check "... and the report says what failed" json_ok \
  "not j['ok'] and j['failed_while'] == 'matching the disks' and 'equally good' in j['error'] and j['mode'] == 'unattended' and j['next'] == 'shell'"
check "... in the report files too" grep -q "FAILED while matching the disks" "$images"/reports/rescue-*.txt
check "... the ambiguous disks untouched" test "$(sum "$big2")" = "$big2_sum"
rm -f "$images/unattended.conf" "$images"/reports/*

# A setting it does not know: refused, and the init still hears "shell".
echo "asrimg.restore=latest asrimg.yes asrimg.then=explode" >"$work/cmdline-bad"
run_saving "$asrimg" rescue run --images "$images" --cmdline-file "$work/cmdline-bad" --next-file "$work/next"
check "run: an unknown setting is a usage error" rc_is 2
check "... named" err_has "asrimg.then=explode: not a setting"
check "... and the next action is a shell" test "$(cat "$work/next")" = shell

head -c $((128 << 20)) /dev/urandom >"$work/garbage" && cp "$work/garbage" "$work/big.img"
# As the recovery environment boots it: the kernel line also holds the drive rescue make wrote (for the init).
echo "BOOT_IMAGE=/asrimg/vmlinuz quiet asrimg.drive=7a41976d-d389-bd46-87da-d3af9dc802f0 asrimg.restore=latest asrimg.yes asrimg.then=poweroff" >"$work/cmdline"
ASRIMG_RESCUE_DISKS="$drive $small $big" run_saving "$asrimg" rescue run --images "$images" \
  --cmdline-file "$work/cmdline" --next-file "$work/next"
check "run (unattended, kernel command line) exits 0" rc_is 0
check "... printing the restore command it runs" err_has "+ asrimg restore $newer --to $big --verify --yes --json"
check "... the next action is poweroff" test "$(cat "$work/next")" = poweroff
check "... one text and one JSON report" test "$(ls "$images"/reports/rescue-*.txt | wc -l)$(ls "$images"/reports/rescue-*.json | wc -l)" = 11
cp "$images"/reports/rescue-*.json "$work/out.saved"
check "... the JSON report: image, target, verified, timings, the restore's own summary" json_ok \
  "j['ok'] and j['verified'] and j['image'] == 'testhost-20260102-100000.asrimg' and j['machine'] == '$host' and j['targets'] == [{'disk': 0, 'path': '$big'}] and j['restore']['ok'] and j['restore']['verified'] and j['restore']['targets'][0]['state'] == 'restored' and j['restore_seconds'] > 0 and j['next'] == 'poweroff' and j['command'].startswith('asrimg restore ')"
check "... the text report says restored and verified" grep -q "^result:   restored" "$images"/reports/rescue-*.txt
restored_part=$(losetup -f --show -r -o $((2048 * 512)) --sizelimit $((120832 * 512)) "$big") && loops+=("$restored_part")
check "... the restored ext4 is clean (e2fsck -fn)" e2fsck -fn "$restored_part"
mount -o ro "$restored_part" "$work/mnt" &&
  check "... every file equals the newest backup's (the file added between the two is there)" diff -r --no-dereference "$work/files" "$work/mnt"
umount "$work/mnt" 2>/dev/null
losetup -d "$restored_part"
check "... the drive is still mounted and its images intact" "$asrimg" verify "$newer"
rm -f "$images"/reports/*

# ---- rescue run, interactive in a pty ---------------------------------------------------------------
pane() { tmux -S "$tmux_sock" capture-pane -p -J -S -200 -t rescue; }
wait_for() { # TEXT: until the pane shows it (30 s at most)
  for _ in $(seq 1 300); do pane | grep -qF -- "$1" && return 0; sleep 0.1; done
  echo "the pane never showed: $1" >&2; pane | tail -25 >&2; false
}
keys() { tmux -S "$tmux_sock" send-keys -t rescue "$@"; }
start_pane() { # [DISKS]; a server of its own each time: one being killed may still answer on its socket
  local disks=${1:-$drive $big $exact $small}
  tmux -S "$tmux_sock" kill-server 2>/dev/null
  panes=$((panes + 1)) tmux_sock="$work/tmux.$panes.sock"
  : >"$work/next"
  tmux -S "$tmux_sock" new-session -d -s rescue -x 220 -y 60 \
    "ASRIMG_RESCUE_DISKS='$disks' '$asrimg' rescue run --images '$images' --cmdline-file /dev/null --next-file '$work/next'; echo EXIT=\$?; sleep 600"
}
start_pane
check "interactive: the list, numbered, newest first, and the question" wait_for "Restore which image? [1-2, q to quit]:"
pane >"$work/out.saved"
check "... image 1 is the newest" grep -qE "^ +1 +testhost-20260102-100000.asrimg +$host" "$work/out.saved"
check "... image 2 the older" grep -qE "^ +2 +testhost-20260101-100000.asrimg" "$work/out.saved"
check "... the damaged one listed, without a number" grep -qE "^ +- +broken-20260103-100000.asrimg .*damaged" "$work/out.saved"
keys 1 Enter
check "... then the plan and the confirmation" wait_for "Type 'yes' to overwrite the targets above:"
pane >"$work/out.saved"
check "... the plan: the exact disk" out_has "-> $exact (64.0 MiB, exact size)"
check "... what will be overwritten" out_has "ALL OF IT WILL BE OVERWRITTEN by image disk 0"
keys n Enter
check "... 'n' ends it" wait_for "EXIT=1"
pane >"$work/out.saved"
check "... saying nothing was written" out_has "not confirmed: nothing was written"
check "... the target untouched, byte for byte" test "$(sum "$exact")" = "$exact_sum"
check "... the next action is a shell" test "$(cat "$work/next")" = shell
check "... no report for a no" test -z "$(ls "$images/reports" 2>/dev/null)"

# Two equally good disks: it asks which, and plans with the answer.
start_pane "$drive $big $big2"
check "interactive, ambiguous" wait_for "Restore which image?"
keys 1 Enter
check "... asks which of the equal disks" wait_for "Which one takes image disk 0? [1-2, q to quit]:"
pane >"$work/out.saved"
check "... naming both" grep -qE "^  2\) $big2\$" "$work/out.saved"
keys 2 Enter
check "... then confirms" wait_for "Type 'yes' to overwrite the targets above:"
pane >"$work/out.saved"
check "... the plan has the disk chosen" out_has "-> $big2 (128.0 MiB, chosen when asked)"
keys n Enter
check "... 'n' ends it" wait_for "EXIT=1"
check "... the chosen disk untouched" test "$(sum "$big2")" = "$big2_sum"

start_pane
tmux -S "$tmux_sock" pipe-pane -t rescue -o "cat >>'$work/pane.raw'" # all it wrote, the progress redrawn too
check "interactive, again" wait_for "Restore which image?"
keys 2 Enter
check "... the older image's plan" wait_for "Type 'yes' to overwrite the targets above:"
keys yes Enter
check "... the restore runs and asks about rebooting" wait_for "Reboot now? [Y/n]"
pane >"$work/out.saved"
check "... the command was shown" out_has "+ asrimg restore $older --to $exact --verify --yes --json"
check "... its progress went to the terminal (it runs with --json: the summary is read, the progress shown)" \
  grep -qaE "restore: [0-9.]+ [KMG]?i?B / [0-9.]+ [KMG]?i?B" "$work/pane.raw"
check "... and what it did" grep -qE "^rescue run: restored [0-9.]+ [KMG]iB in [0-9.]+ s; verified" "$work/out.saved"
keys Enter
check "... and ends" wait_for "EXIT=0"
check "... the next action is reboot" test "$(cat "$work/next")" = reboot
check "... a report was written" test "$(ls "$images"/reports/rescue-*.json | wc -l)" = 1
restored_part=$(losetup -f --show -r -o $((2048 * 512)) --sizelimit $((120832 * 512)) "$exact") && loops+=("$restored_part")
check "... the restored ext4 is clean" e2fsck -fn "$restored_part"
mount -o ro "$restored_part" "$work/mnt" &&
  check "... it is the older backup (no file made after it)" test ! -e "$work/mnt/etc/second" -a -s "$work/mnt/data/blob"
umount "$work/mnt" 2>/dev/null

echo "rescue: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
