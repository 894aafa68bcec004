#!/usr/bin/env bash
# What engine/disk/mounts.c finds in /proc/swaps and /proc/self/mountinfo under names the kernel
# escapes there (space, tab, newline and backslash as \ooo): a swap device and a mount point whose
# names have a space and a backslash, on a disk image whose own path has a space. A restore onto
# the disk must refuse it as in use, naming the swap or the mount point as it is spelled; a backup
# warns of the mount by its real name, and --freeze freezes and thaws it there. The same with
# plain names, so that both spellings are seen to work.
# Usage: mounts_test.sh ASRIMG
set -u
asrimg=$1
skip_all() { echo "SKIP: $1"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip_all "needs root (loop devices, swapon, mount)"
for tool in losetup mount umount swapon swapoff mkswap mknod sfdisk mkfs.ext4 fsfreeze sha256sum; do
  command -v "$tool" >/dev/null || skip_all "$tool not installed"
done

work=$(mktemp -d "/tmp/asrimg mounts-XXXXXX")
source "$(dirname "${BASH_SOURCE[0]}")/loop_lib.sh"
loops=() swaps=() mounts=()
cleanup() {
  for m in "${mounts[@]}"; do fsfreeze -u "$m" 2>/dev/null; umount "$m" 2>/dev/null; done
  for s in "${swaps[@]}"; do swapoff "$s" 2>/dev/null; done
  detach_ours "$work" "${loops[@]}"
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
pass=0 fail=0
check() { # name, then a command that must succeed
  local name=$1; shift
  if "$@" >"$work/out" 2>"$work/err"; then pass=$((pass + 1)); else
    fail=$((fail + 1)); echo "FAIL: $name"; sed 's/^/  out: /' "$work/out" | head -5; sed 's/^/  err: /' "$work/err" | head -5; fi
}
run_saving() {
  "$@" >"$work/out.saved" 2>"$work/err.saved"; echo $? >"$work/rc.saved"
  cat "$work/err.saved" >>"$work/all.err"
}
rc_is() { [ "$(cat "$work/rc.saved")" -eq "$1" ]; }
err_has() { grep -qF -- "$1" "$work/err.saved" || { cat "$work/err.saved" >&2; false; }; }
unchanged() { [ "$(sha256sum <"$disk")" = "$sum" ]; }

# The disk: GPT; 1: swap, 2: ext4.
disk="$work/disk one.img"
truncate -s 64M "$disk"
sfdisk --quiet "$disk" <<'EOF' || skip_all "sfdisk cannot write a GPT"
label: gpt
start=2048, size=16MiB, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F
size=32MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4
EOF
off1=$((1 << 20)) size1=$((16 << 20))
off2=$((17 << 20)) size2=$((32 << 20))
attached=""
attach() { # OFFSET SIZE: a loop device over the disk at OFFSET, in $attached
  attached=$(losetup -f --show -o "$1" --sizelimit "$2" "$disk" 2>/dev/null) || return 1
  loops+=("$attached")
}
attach $off1 $size1 || skip_all "no loop devices"
loop1=$attached
mkswap "$loop1" >/dev/null 2>&1 || skip_all "mkswap failed"
mkfs.ext4 -q -F -E offset=$off2 "$disk" 32M || skip_all "mkfs.ext4 failed"
"$asrimg" backup "$disk" -o "$work/disk.asrimg" --volumes all 2>/dev/null || skip_all "cannot back up the disk"
sum=$(sha256sum <"$disk")

# The restore onto the disk is refused as in use, with WHAT in the reason, and leaves the disk as
# it was ($sum).
refused_in_use() { # NAME WHAT
  run_saving "$asrimg" restore "$work/disk.asrimg" --to "$disk" --yes
  check "$1: restore exits 1" rc_is 1
  check "$1: restore says why" err_has "asrimg: error: target $disk is in use: $2"
  check "$1: the disk is unchanged" unchanged
}

# ---- swap on partition 1, enabled under a plain name and under an escaped one ---------------
if swapon "$loop1" 2>/dev/null; then
  swaps+=("$loop1")
  refused_in_use "swap on $loop1" "$loop1 is in use as swap"
  swapoff "$loop1"
  # A device node of the same loop device whose name /proc/swaps writes as swap\040dev\134x.
  node="$work/swap dev\\x"
  mknod "$node" b $((0x$(stat -c %t "$loop1"))) $((0x$(stat -c %T "$loop1")))
  if swapon "$node" 2>/dev/null; then
    swaps+=("$node")
    check "/proc/swaps escapes the name" grep -qF 'swap\040dev\134x' /proc/swaps
    refused_in_use "swap under an escaped name" "$node is in use as swap"
    swapoff "$node"
  else
    fail=$((fail + 1)); echo "FAIL: cannot swapon $node"
  fi
else
  echo "SKIP: swapon not permitted here"
fi
run_saving "$asrimg" restore "$work/disk.asrimg" --to "$disk.copy" --yes
check "with nothing in use, a restore of the disk goes through" rc_is 0

# ---- ext4 on partition 2, mounted at a plain point and at an escaped one --------------------
attach $off2 $size2 || skip_all "no loop devices"
loop2=$attached
for mnt in "$work/mnt" "$work/mnt point\\x"; do
  mkdir -p "$mnt"
  mount "$loop2" "$mnt" 2>/dev/null || { fail=$((fail + 1)); echo "FAIL: cannot mount $loop2 at $mnt"; continue; }
  mounts+=("$mnt")
  run_saving "$asrimg" backup "$disk" -o "$work/w.asrimg" --volumes 2 --force
  check "mounted at $mnt: backup exits 0" rc_is 0
  check "mounted at $mnt: backup warns of the mount" \
    err_has "asrimg: warning: volume 2 ($disk) is mounted read-write at $mnt: the image may be inconsistent"
  run_saving "$asrimg" backup "$disk" -o "$work/f.asrimg" --volumes 2 --force --freeze
  check "mounted at $mnt: --freeze exits 0" rc_is 0
  check "mounted at $mnt: --freeze froze it there" err_has "is mounted read-write at $mnt: frozen while it is read"
  check "mounted at $mnt: thawed afterwards (fsfreeze -u finds it not frozen)" sh -c '! fsfreeze -u "$1"' sh "$mnt"
  check "mounted at $mnt: the image verifies" "$asrimg" verify "$work/f.asrimg"
  # Read-only now, so that only a restore could change the disk's bytes.
  if mount -o remount,ro "$mnt"; then
    sum=$(sha256sum <"$disk")
    refused_in_use "mounted at $mnt" "a filesystem on it is mounted at $mnt"
  else
    fail=$((fail + 1)); echo "FAIL: cannot remount $mnt read-only"
  fi
  umount "$mnt"
  mounts=()
done

# Under ASRIMG_SANITIZE: any report above fails the test, and is shown for ctest.
if grep -qE "LeakSanitizer|AddressSanitizer|runtime error:" "$work/all.err"; then
  fail=$((fail + 1)); echo "FAIL: sanitizer reports:"; grep -E -A5 "LeakSanitizer|AddressSanitizer|runtime error:" "$work/all.err"
fi

echo "mounts_test: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
