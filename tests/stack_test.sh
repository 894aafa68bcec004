#!/bin/bash
# Proves tests/stack_disks.sh and tests/stack_check.sh on each other: every layout built, then
# checked whole (--all) as built; then a copy of debian-lvm on a larger disk (backup GPT moved to
# its end) with the /home LV turned to garbage passes the default check (data volumes may be
# garbage) and fails --all naming home; with one byte of a root file's data flipped in the root
# LV (fsck stays clean) it fails naming that file. Exit 77 when the builder skips.
# Usage: stack_test.sh
set -u
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/asrimg-stacktest-XXXXXX)
loop=
cleanup() {
    [[ -n $loop ]] && losetup -d "$loop"
    rm -rf "$work"
}
trap cleanup EXIT
passed=0 failed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
bad() { echo "FAILED: $*"; failed=$((failed + 1)); }

"$here/stack_disks.sh" "$work"
rc=$?
((rc == 77)) && { echo "SKIP: stack_disks.sh skipped"; exit 77; }
((rc == 0)) || { echo "FAILED: stack_disks.sh exit $rc"; exit 1; }

for m in "$work"/*.manifest; do
    name=$(basename "$m" .manifest)
    mapfile -t imgs < <(sed -n 's/^disk index=[0-9]* file=\([^ ]*\) .*/\1/p' "$m")
    if out=$(cd "$work" && "$here/stack_check.sh" --all "$m" "${imgs[@]}" 2>&1); then
        ok "$name as built: $(tail -1 <<<"$out")"
    else
        bad "$name as built: $out"
    fi
done

# The two disks of lvm-two-disks given the wrong way round (one volume only: the tables and LVM
# are checked whatever the selection).
m=$work/lvm-two-disks.manifest
out=$("$here/stack_check.sh" --volumes swap_1 "$m" "$work/lvm-two-disks-1.img" "$work/lvm-two-disks-0.img" 2>&1)
[[ $? == 1 && $out == *"FAIL: disk 0 "*"disk id"* && $out == *"FAIL: VG vg0: not found on the PVs"* ]] &&
    ok "two disks swapped fail the tables and LVM" || bad "two disks swapped: $out"

m=$work/debian-lvm.manifest
field() { sed -n "s|^$1 .*\<$2=\([^ ]*\).*|\1|p" "$m" | head -1; }
cp --sparse=always "$work/debian-lvm.img" "$work/copy.img"
truncate -s +32M "$work/copy.img"
sgdisk -e "$work/copy.img" >/dev/null 2>&1 || bad "sgdisk -e on the larger copy"
home_off=$(field 'seg lv=vg0/home' off)
dd if=/dev/urandom of="$work/copy.img" bs=1M count=4 seek="$home_off" oflag=seek_bytes conv=notrunc status=none
out=$("$here/stack_check.sh" "$m" "$work/copy.img" 2>&1) && ok "larger disk, /home garbage: the default check passes" ||
    bad "larger disk, /home garbage: the default check fails: $out"
out=$("$here/stack_check.sh" --all "$m" "$work/copy.img" 2>&1)
[[ $? == 1 && $out == *"FAIL: home "* ]] && ok "larger disk, /home garbage: --all fails naming home" ||
    bad "larger disk, /home garbage: --all: $out"
out=$("$here/stack_check.sh" --volumes home "$m" "$work/copy.img" 2>&1)
[[ $? == 1 && $out == *"FAIL: home "* ]] && ok "--volumes home fails naming home" || bad "--volumes home: $out"

# One byte of /etc/os-release's data, found by debugfs through a loop device at the root LV.
root_off=$(field 'seg lv=vg0/root' off) root_len=$(field 'seg lv=vg0/root' len)
loop=$(losetup -f --show -r -o "$root_off" --sizelimit "$root_len" "$work/copy.img")
blk=$(debugfs -R 'bmap /etc/os-release 0' "$loop" 2>/dev/null)
bs=$(dumpe2fs -h "$loop" 2>/dev/null | sed -n 's/^Block size: *//p')
losetup -d "$loop"
loop=
if [[ $blk =~ ^[0-9]+$ && $blk != 0 && -n $bs ]]; then
    at=$((root_off + blk * bs + 3))
    byte=$(od -An -tu1 -j "$at" -N1 "$work/copy.img" | tr -d ' ')
    printf "$(printf '\\%03o' $((byte ^ 0x20)))" | dd of="$work/copy.img" bs=1 seek="$at" conv=notrunc status=none
    out=$("$here/stack_check.sh" "$m" "$work/copy.img" 2>&1)
    [[ $? == 1 && $out == *"FAIL: root: file /etc/os-release"* && $out != *e2fsck* ]] &&
        ok "a flipped byte in root's /etc/os-release fails the check, naming it" ||
        bad "a flipped byte in root's /etc/os-release: $out"
else
    bad "debugfs found no block for /etc/os-release ($blk, block size $bs)"
fi

echo "stacks: $passed passed, $failed failed"
((failed == 0))
