# tests/store_lib.sh: the disks the chunk store tests back up and the checks of what they restore,
# shared by store_test.sh (a directory store) and s3/store_s3_test.sh (an S3 store). Sourced; the
# caller sets asrimg and work ($work/mnt exists) and uses MTOOLS_SKIP_CHECK=1.
pass=0 fail=0
check() { # name, then a command that must succeed
  local name=$1; shift
  if "$@" >"$work/out" 2>"$work/err"; then pass=$((pass + 1)); else
    fail=$((fail + 1)); echo "FAIL: $name"; sed 's/^/  out: /' "$work/out" | head -5; sed 's/^/  err: /' "$work/err" | head -8; fi
}
json_get() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"; }
# A GPT with an ESP (FAT16) and an ext4 root full of files.
make_disk() { # IMAGE SEED: a disk whose ext4 holds 48 MiB of random files and some text
  local img=$1 c=$work/content-$2
  rm -rf "$c"; mkdir -p "$c/etc" "$c/data"
  for i in $(seq 1 12); do head -c $((4 << 20)) /dev/urandom >"$c/data/blob$i.bin"; done
  seq 1 200000 >"$c/etc/numbers.txt"
  echo "disk $2" >"$c/etc/hostname"
  truncate -s 256M "$img"
  printf 'label: gpt\nstart=2048, size=65536, type=uefi\nsize=389120, type=linux\n' | sfdisk -q "$img" || return 1
  head -c 440 /dev/urandom | dd of="$img" conv=notrunc status=none
  truncate -s 32M "$work/esp.tmp"; mkfs.vfat -F 16 "$work/esp.tmp" >/dev/null && mmd -i "$work/esp.tmp" ::/EFI &&
    echo "boot $2" >"$work/boot.txt" && mcopy -i "$work/esp.tmp" "$work/boot.txt" ::/EFI/boot.txt || return 1
  dd if="$work/esp.tmp" of="$img" bs=1M seek=1 conv=notrunc status=none
  truncate -s $((389120 * 512)) "$work/root.tmp"; mkfs.ext4 -q -F -d "$c" "$work/root.tmp" || return 1
  dd if="$work/root.tmp" of="$img" bs=1M seek=33 conv=notrunc status=none
  rm -f "$work/esp.tmp" "$work/root.tmp"
}
ROOT_OFF=$((67584 * 512)) ROOT_SIZE=$((389120 * 512))
# The restored disk: fsck clean, every file of the source content equal, the ESP's file there.
disk_ok() { # IMAGE SEED
  local img=$1 c=$work/content-$2 rc=0 l
  l=$(losetup -f --show -r -o $ROOT_OFF --sizelimit $ROOT_SIZE "$img") || return 1
  e2fsck -fn "$l" >/dev/null 2>&1 || rc=1
  losetup -d "$l"
  [ $rc = 0 ] || { echo "ext4 not clean"; return 1; }
  mount -o ro,loop,offset=$ROOT_OFF,sizelimit=$ROOT_SIZE "$img" "$work/mnt" || return 1
  diff -r "$c" "$work/mnt" --exclude=lost+found || rc=1
  umount "$work/mnt"
  [ "$(mtype -i "$img@@1M" ::/EFI/boot.txt)" = "boot $2" ] || { echo "ESP file differs"; rc=1; }
  return $rc
}
# A restore of REF to a new file: exit 0 and the disk as disk_ok wants.
restore_ok() { # REF SEED
  rm -f "$work/target.img"; truncate -s 300M "$work/target.img"
  "$asrimg" restore "$1" --to "$work/target.img" --yes >/dev/null 2>"$work/rerr" || { cat "$work/rerr"; return 1; }
  disk_ok "$work/target.img" "$2"
}

# Every snapshot STORE lists opens and verifies (chunks read and checked against their ids).
every_snapshot_verifies() { # STORE
  local n
  for n in $("$asrimg" store list "$1" --json | python3 -c 'import json,sys; print(" ".join(s["name"] for s in json.load(sys.stdin)["snapshots"]))'); do
    "$asrimg" verify "$1::$n" >/dev/null || { echo "$n does not verify"; return 1; }
  done
}
