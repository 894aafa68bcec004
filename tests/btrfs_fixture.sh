#!/usr/bin/env bash
# btrfs fixtures for test_fs_btrfs.c, made by the real tools: mkfs.btrfs on sparse files, mounted
# from loop devices (several devices registered with `btrfs device scan`), filled with real files
# (small ones inline in the metadata, compressible and random ones, a subvolume and a snapshot of
# it), then aged: junk written, committed, deleted, a late file written over the freed space. The
# same operations build the expected tree in a plain directory. `check` mounts copies read-only
# the same way, runs `btrfs check --readonly` and compares every file with the expected tree.
#
#   btrfs_fixture.sh make  DIR NAME NDEV SIZE_MIB "MKFS_OPTS" "MOUNT_OPTS"
#       -> DIR/NAME.0 .. NAME.<NDEV-1> (the devices), DIR/NAME.expect (the expected tree)
#   btrfs_fixture.sh crash DIR NAME 1 SIZE_MIB
#       -> as make, plus DIR/NAME.crash.0: the device as a crash after an fsync leaves it
#   btrfs_fixture.sh check DIR NAME NDEV PREFIX
#       -> PREFIX.0 .. PREFIX.<NDEV-1> are the copies to judge against DIR/NAME.expect
# Exit 77 when this machine cannot run it (not root, no loop devices, no btrfs in the kernel).
set -u
cmd=$1 dir=$(cd "$2" && pwd) name=$3 ndev=$4
skip() { echo "SKIP: $1" >&2; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root (loop devices, mount)"
for tool in mkfs.btrfs btrfs losetup mount umount diff; do
  command -v "$tool" >/dev/null || skip "$tool not installed"
done

mnt=$(mktemp -d "$dir/mnt.XXXXXX")
source "$(dirname "${BASH_SOURCE[0]}")/loop_lib.sh"
loops=()
cleanup() {
  mountpoint -q "$mnt" && umount "$mnt"
  for l in "${loops[@]}"; do
    ! loop_ours "$dir" "$l" || btrfs device scan --forget "$l" >/dev/null 2>&1
  done
  detach_ours "$dir" "${loops[@]}"
  rmdir "$mnt" 2>/dev/null
}
trap cleanup EXIT

attach() { # files... -> loops[], each registered with the kernel's btrfs device list
  local f l
  for f in "$@"; do
    l=$(losetup -f --show "$f" 2>/dev/null) || skip "losetup cannot attach a loop device"
    loops+=("$l")
  done
  [ "${#loops[@]}" -gt 1 ] && btrfs device scan "${loops[@]}" >/dev/null
  return 0
}

# Writes the content both into the filesystem (at $1) and the expected tree (at $2).
fill() {
  local fs=$1 exp=$2 t
  for t in "$fs" "$exp"; do mkdir -p "$t/data/deep/er" "$t/text"; done
  for i in $(seq 1 40); do # inline (< 2 KiB), then a few blocks
    head -c $(( (i * 977) % 9000 + 1 )) /dev/urandom > "$exp/data/f$i"
  done
  head -c 3M /dev/urandom > "$exp/data/big.bin"
  head -c 150000 /dev/urandom > "$exp/data/deep/er/nested.bin"
  for i in $(seq 1 6); do # compressible: stored compressed under compress=zstd
    seq 1 $((i * 40000)) | sed 's/$/ some text that compresses well/' > "$exp/text/t$i.txt"
  done
  cp -a "$exp/data" "$exp/text" "$fs/"
  btrfs subvolume create "$fs/sub" >/dev/null
  mkdir -p "$exp/sub"
  head -c 2M /dev/urandom > "$exp/sub/s1.bin"
  seq 1 100000 > "$exp/sub/s2.txt"
  echo small > "$exp/sub/s3"
  cp -a "$exp/sub/." "$fs/sub/"
  # Junk the filesystem commits, then frees: its old bytes stay in the data block groups.
  mkdir -p "$fs/junk"
  for i in 1 2 3 4; do head -c 4M /dev/urandom > "$fs/junk/j$i"; done
  sync
  btrfs subvolume snapshot "$fs/sub" "$fs/snap" >/dev/null
  cp -a "$exp/sub" "$exp/snap"
  rm -r "$fs/junk" "$fs/sub/s1.bin" "$exp/sub/s1.bin" # the snapshot keeps s1.bin
  sync
  head -c 300000 /dev/urandom > "$exp/late.bin"
  cp "$exp/late.bin" "$fs/late.bin"
  sync
}

case "$cmd" in
make)
  size=$5 mkfs_opts=$6 mount_opts=$7
  files=()
  for ((i = 0; i < ndev; i++)); do
    rm -f "$dir/$name.$i"
    truncate -s "${size}M" "$dir/$name.$i"
    files+=("$dir/$name.$i")
  done
  # shellcheck disable=SC2086 # the options are words
  mkfs.btrfs -q -f $mkfs_opts "${files[@]}" >/dev/null || { echo "mkfs.btrfs $mkfs_opts failed" >&2; exit 1; }
  attach "${files[@]}"
  rm -rf "$dir/$name.expect"
  mkdir -p "$dir/$name.expect"
  mount -t btrfs ${mount_opts:+-o "$mount_opts"} "${loops[0]}" "$mnt" 2>/dev/null || skip "cannot mount btrfs here"
  fill "$mnt" "$dir/$name.expect"
  ;;
crash)
  # As make (default mkfs options), then a file written and fsynced after the last commit: the
  # device copied at that moment (DIR/NAME.crash.0) holds a log tree that mounting replays.
  size=$5
  rm -f "$dir/$name.0"
  truncate -s "${size}M" "$dir/$name.0"
  mkfs.btrfs -q -f "$dir/$name.0" >/dev/null || { echo "mkfs.btrfs failed" >&2; exit 1; }
  attach "$dir/$name.0"
  rm -rf "$dir/$name.expect"
  mkdir -p "$dir/$name.expect"
  mount -t btrfs -o commit=300 "${loops[0]}" "$mnt" 2>/dev/null || skip "cannot mount btrfs here"
  fill "$mnt" "$dir/$name.expect"
  head -c 2M /dev/urandom > "$dir/$name.expect/fsynced.bin"
  dd if="$dir/$name.expect/fsynced.bin" of="$mnt/fsynced.bin" bs=1M conv=fsync status=none
  cp --sparse=always "$dir/$name.0" "$dir/$name.crash.0"
  ;;
check)
  prefix=$5
  files=()
  for ((i = 0; i < ndev; i++)); do files+=("$prefix.$i"); done
  attach "${files[@]}"
  btrfs check --readonly "${loops[0]}" >"$dir/check.out" 2>&1 || { cat "$dir/check.out" >&2; echo "btrfs check failed" >&2; exit 1; }
  mount -t btrfs -o ro "${loops[0]}" "$mnt" || { echo "the copy does not mount" >&2; exit 1; }
  diff -r "$dir/$name.expect" "$mnt" >&2 || { echo "files differ" >&2; exit 1; }
  ;;
*)
  echo "usage: btrfs_fixture.sh make|check ..." >&2
  exit 2
  ;;
esac
exit 0
