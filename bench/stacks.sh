#!/usr/bin/env bash
# Issue 14's measured targets for storage stacks, in one run, on the bench's generated ext4 root
# (bench/mkdisk.sh, 1 GiB by default) and its FAT32 ESP, laid out as Debian's guided LVM install:
#   1. image size: `asrimg backup DISK -o IMG` (critical volumes, level 3) of ESP + /boot + a PV
#      holding the root, swap and /home LVs, against `partclone | zstd -3` of ESP, /boot and root;
#   2. the same layout with the PV inside LUKS2, backed up with --key-file: image size against the
#      used bytes of the filesystems it takes (ciphertext does not compress), also of the container
#      alone (--volumes 3: every LV in it) against the used bytes of its LVs; and without the key;
#   3. backup speed of the root in its LV against the same filesystem on a plain partition of a disk
#      of the same size, level 3 (the default) and level 0 (the read path), page cache cold and warm,
#      median of BENCH_RUNS.
# The disks are built as tests/stack_disks.sh builds them: lvm2 with --driverloaded n on a loop
# device (no device-mapper), filesystems written into the LVs' extents at the offsets LVM gives,
# LUKS2 made offline by `cryptsetup reencrypt --encrypt`. Prints a table and replaces its section
# of bench/RESULTS.md.
#
# Usage, as root:   bash bench/stacks.sh        # ~4 min with the bench disk already built
#   BENCH_ROOT_MIB (1024), BENCH_RUNS (5), BENCH_DIR, ASRIMG, BENCH_RESULTS: as bench/run.sh
#   BENCH_KEEP=1   keep the disks, the JSON of every backup and speed.tsv (their folder is printed)
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
# shellcheck source=tests/lvm_env.sh
. "$here/../tests/lvm_env.sh"
bench_clock_start

bench_require partclone.ext4 partclone.fat32 zstd losetup python3 sfdisk mkfs.ext4 mkswap debugfs \
  dumpe2fs pvcreate vgcreate lvcreate lvs cryptsetup openssl mkfs.vfat mcopy
export BENCH_ROOT_MIB=${BENCH_ROOT_MIB:-1024} BENCH_RUNS=${BENCH_RUNS:-5}
# The ext4 root only (mkdisk.sh builds XFS and btrfs roots for run.sh).
[ "${BENCH_FS:-ext4}" = ext4 ] || die "BENCH_FS=$BENCH_FS: stacks.sh measures the ext4 root only"
bench_settings
bench_asrimg

disk=$bench_dir/disk-${root_mib}M.img
"$here/mkdisk.sh" "$disk"

work=$(mktemp -d "$bench_dir/stacks.XXXXXX")
source "$here/../tests/loop_lib.sh"
loops=()
cleanup() {
  local l
  detach_ours "$work" "${loops[@]}"
  if [ -n "${BENCH_KEEP:-}" ]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

MiB=$((1 << 20))
T_ESP=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
T_LINUX=0FC63DAF-8483-4772-8E79-3D69D8477DE4
T_LVM=E6D6D379-F507-44C2-A23C-238F2A3DF928
T_SWAP=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F
BOOT_MIB=256 SWAP_MIB=256 HOME_MIB=512 HOME_DATA_MIB=160
PASS=$work/key

# part_geom FILE N: "START SIZE" of partition N, in bytes.
part_geom() {
  sfdisk -J "$1" | python3 -c '
import json, sys
t = json.load(sys.stdin)["partitiontable"]
ss = t.get("sectorsize", 512)
p = [p for p in t["partitions"] if p["node"].endswith(sys.argv[1]) and
     p["node"][len(p["node"]) - len(sys.argv[1]) - 1] not in "0123456789"][0]
print(p["start"] * ss, p["size"] * ss)' "$2"
}
# new_disk FILE SIZE LINE...: a sparse file with a GPT made by sfdisk.
new_disk() {
  local f=$1 size=$2
  shift 2
  rm -f "$f"
  truncate -s "$size" "$f"
  printf '%s\n' 'label: gpt' "$@" | sfdisk -q --no-reread --no-tell-kernel "$f" >/dev/null
}
# put IMG FILE OFFSET [SKIP LEN]: writes IMG (or LEN bytes of it from SKIP) into FILE at OFFSET.
put() {
  local extra=()
  [ -z "${5:-}" ] || extra=(skip="$4" count="$5")
  dd if="$1" of="$2" bs=4M seek="$3" "${extra[@]}" iflag=skip_bytes,count_bytes oflag=seek_bytes \
    conv=notrunc,sparse status=none
}
# ext4_used FS: bytes in use ((block count - free blocks) x block size), from dumpe2fs.
ext4_used() {
  dumpe2fs -h "$1" 2>/dev/null | awk -F': *' '/^Block count/ {c = $2} /^Free blocks/ {f = $2}
    /^Block size/ {b = $2} END {print (c - f) * b}'
}
# fat_used FS: bytes in use: every cluster not free, plus the reserved sectors and the FATs.
fat_used() {
  python3 - "$1" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
bps, spc, rsv, nfat = struct.unpack_from("<HBHB", b, 11)
tot = struct.unpack_from("<I", b, 32)[0] or struct.unpack_from("<H", b, 19)[0]
fatsz = struct.unpack_from("<I", b, 36)[0]
meta = (rsv + nfat * fatsz) * bps
nclus = (tot - rsv - nfat * fatsz) // spc
fat = b[rsv * bps: rsv * bps + (nclus + 2) * 4]
used = sum(1 for i in range(2, nclus + 2) if struct.unpack_from("<I", fat, i * 4)[0] & 0x0FFFFFFF)
print(meta + used * spc * bps)
PY
}
# random_bytes MIB SEED: incompressible bytes, the same on every run (AES-128-CTR of zeros).
random_bytes() { head -c $(($1 * MiB)) < <(openssl enc -aes-128-ctr -nosalt -pass "pass:$2" -in /dev/zero 2>/dev/null); }
# size FILE: bytes.
size() { stat -c %s "$1"; }

# --- the filesystems -----------------------------------------------------------------------------

read -r esp_start esp_size < <(part_geom "$disk" 1)
read -r root_start root_size < <(part_geom "$disk" 2)
say "taking the ESP and the ${root_mib} MiB root of $disk as the filesystems"
put "$disk" "$work/esp.fs" 0 "$esp_start" "$esp_size"
put "$disk" "$work/root.fs" 0 "$root_start" "$root_size"
truncate -s "$esp_size" "$work/esp.fs"
truncate -s "$root_size" "$work/root.fs"
((root_size % (4 * MiB) == 0)) || die "root of $root_size bytes: not a whole number of 4 MiB extents"
root_mib_lv=$((root_size / MiB))
esp_uuid=$(blkid -s UUID -o value "$work/esp.fs")

# /boot as Debian's: a kernel and an initrd (compressed already: random here), System.map, config, grub.
boot_uuid=$(cat /proc/sys/kernel/random/uuid)
mkdir -p "$work/boot/grub"
random_bytes 8 boot >"$work/boot/vmlinuz-6.1.0-13-amd64"
random_bytes 36 initrd >"$work/boot/initrd.img-6.1.0-13-amd64"
head -c $((4 * MiB)) < <(find /usr/share/doc -type f -name copyright -print0 2>/dev/null | sort -z | xargs -0 cat 2>/dev/null) \
  >"$work/boot/System.map-6.1.0-13-amd64"
head -c $((256 * 1024)) "$work/boot/System.map-6.1.0-13-amd64" >"$work/boot/config-6.1.0-13-amd64"
printf 'search --fs-uuid --set=root %s\nlinux /vmlinuz-6.1.0-13-amd64 root=/dev/mapper/vg0-root ro quiet\ninitrd /initrd.img-6.1.0-13-amd64\n' \
  "$boot_uuid" >"$work/boot/grub/grub.cfg"
truncate -s $((BOOT_MIB * MiB)) "$work/boot.fs"
mkfs.ext4 -q -F -U "$boot_uuid" -L boot -d "$work/boot" "$work/boot.fs"
rm -rf "${work:?}/boot"

# /home: data the default backup leaves out.
mkdir -p "$work/home/user"
random_bytes "$HOME_DATA_MIB" home >"$work/home/user/data.bin"
truncate -s $((HOME_MIB * MiB)) "$work/home.fs"
mkfs.ext4 -q -F -L home -d "$work/home" "$work/home.fs"
rm -rf "${work:?}/home"
truncate -s $((SWAP_MIB * MiB)) "$work/swap.fs"
mkswap "$work/swap.fs" >/dev/null 2>&1

# The root names the LVs in /etc/fstab as Debian's installer does (the bench root has no /etc).
luks_uuid=$(cat /proc/sys/kernel/random/uuid)
cat >"$work/fstab" <<FSTAB
/dev/mapper/vg0-root /               ext4    errors=remount-ro 0       1
UUID=$boot_uuid /boot           ext4    defaults        0       2
UUID=$esp_uuid  /boot/efi       vfat    umask=0077      0       1
/dev/mapper/vg0-home /home           ext4    defaults        0       2
/dev/mapper/vg0-swap_1 none            swap    sw              0       0
FSTAB
echo "sda3_crypt UUID=$luks_uuid none luks,discard" >"$work/crypttab"
debugfs -w -R "mkdir /etc" "$work/root.fs" >/dev/null 2>&1
debugfs -w -R "write $work/fstab /etc/fstab" "$work/root.fs" >/dev/null 2>&1
debugfs -w -R "write $work/crypttab /etc/crypttab" "$work/root.fs" >/dev/null 2>&1
debugfs -R "cat /etc/fstab" "$work/root.fs" 2>/dev/null | grep -q vg0-root || die "could not write /etc/fstab into the root"

esp_used=$(fat_used "$work/esp.fs")
boot_used=$(ext4_used "$work/boot.fs")
root_used=$(ext4_used "$work/root.fs")
home_used=$(ext4_used "$work/home.fs")
swap_hdr=4096

# --- the disks ------------------------------------------------------------------------------------

# Every disk is this size: ESP, /boot, then the PV (or LUKS, or the plain partitions) to the end.
pv_mib=$((root_mib_lv + SWAP_MIB + HOME_MIB + 64))
disk_mib=$((1 + 40 + BOOT_MIB + 16 + 32 + pv_mib + 1))

# make_vg FILE BASE SIZE: vg0 on a PV over SIZE bytes of FILE at BASE, LVs root, swap_1, home, each
# one segment, the filesystems written into their extents; sets lv_off[LV] (offset in FILE).
declare -A lv_off
make_vg() {
  local f=$1 base=$2 sz=$3 l pe_start ext lv r
  loop_at "$f" "$base" "$sz" || die "losetup failed"
  l=$LOOP
  lvm_conf "$l"
  lvmq pvcreate -y "$l"
  lvmq vgcreate -y -s 4M vg0 "$l"
  lvmq lvcreate -an -Zn -y -L "${root_mib_lv}M" -n root vg0
  lvmq lvcreate -an -Zn -y -L "${SWAP_MIB}M" -n swap_1 vg0
  lvmq lvcreate -an -Zn -y -L "${HOME_MIB}M" -n home vg0
  pe_start=$(lvmr pvs -o pe_start "$l" | tr -d ' ')
  ext=$(lvmr vgs -o vg_extent_size vg0 | tr -d ' ')
  while IFS=';' read -r lv r; do
    [ "$(grep -o : <<<"$r" | wc -l)" = 1 ] || die "vg0/$lv: not one segment ($r)"
    r=${r#*:}
    lv_off[$lv]=$((base + pe_start + ${r%-*} * ext))
  done < <(lvmr lvs --segments -o lv_name,seg_pe_ranges vg0)
  unloop "$l"
  put "$work/root.fs" "$f" "${lv_off[root]}"
  put "$work/swap.fs" "$f" "${lv_off[swap_1]}"
  put "$work/home.fs" "$f" "${lv_off[home]}"
}

say "building the disks ($disk_mib MiB each): Debian LVM, the same in LUKS2, plain partitions"
lvm_disk=$work/lvm.img
new_disk "$lvm_disk" "${disk_mib}M" "size=40MiB, type=$T_ESP" "size=${BOOT_MIB}MiB, type=$T_LINUX" "type=$T_LVM"
put "$work/esp.fs" "$lvm_disk" "$(part_geom "$lvm_disk" 1 | cut -d' ' -f1)"
put "$work/boot.fs" "$lvm_disk" "$(part_geom "$lvm_disk" 2 | cut -d' ' -f1)"
read -r p3_start p3_size < <(part_geom "$lvm_disk" 3)
make_vg "$lvm_disk" "$p3_start" "$p3_size"

# LUKS2: the PV on a plain file as large as the data area (partition - 16 MiB header), encrypted
# offline; --reduce-device-size 32M keeps its first (partition - 32 MiB): the LVs end before that.
luks_disk=$work/luks.img
cp --sparse=always "$lvm_disk" "$luks_disk"
sfdisk -q --no-reread --no-tell-kernel --part-type "$luks_disk" 3 "$T_LINUX"
plain=$work/pv.plain
truncate -s $((p3_size - 16 * MiB)) "$plain"
make_vg "$plain" 0 $((p3_size - 16 * MiB))
for lv in root swap_1 home; do
  ((lv_off[$lv] + MiB <= p3_size - 32 * MiB)) || die "vg0/$lv lies past what reencrypt keeps"
done
printf %s asrimg-bench >"$PASS"
truncate -s "$p3_size" "$plain"
say "encrypting the PV (cryptsetup reencrypt --encrypt, offline)"
cryptsetup reencrypt --encrypt --type luks2 --uuid "$luks_uuid" --reduce-device-size 32M --pbkdf pbkdf2 \
  --pbkdf-force-iterations 1000 --key-file "$PASS" -q "$plain" 2>"$work/cs.log" ||
  { cat "$work/cs.log" >&2; die "cryptsetup reencrypt --encrypt failed"; }
put "$plain" "$luks_disk" "$p3_start"
rm -f "$plain"

# Plain partitions on a disk of the same size: the same ESP and /boot, the root in partition 3,
# swap and /home after it.
plain_disk=$work/plain.img
new_disk "$plain_disk" "${disk_mib}M" "size=40MiB, type=$T_ESP" "size=${BOOT_MIB}MiB, type=$T_LINUX" \
  "size=${root_mib_lv}MiB, type=$T_LINUX" "size=${SWAP_MIB}MiB, type=$T_SWAP" "type=$T_LINUX"
put "$work/esp.fs" "$plain_disk" "$(part_geom "$plain_disk" 1 | cut -d' ' -f1)"
put "$work/boot.fs" "$plain_disk" "$(part_geom "$plain_disk" 2 | cut -d' ' -f1)"
put "$work/root.fs" "$plain_disk" "$(part_geom "$plain_disk" 3 | cut -d' ' -f1)"
put "$work/swap.fs" "$plain_disk" "$(part_geom "$plain_disk" 4 | cut -d' ' -f1)"
put "$work/home.fs" "$plain_disk" "$(part_geom "$plain_disk" 5 | cut -d' ' -f1)"
rm -f "$work/swap.fs" "$work/home.fs"

# Loop devices over the whole disks, read-only, with direct I/O (no page cache beneath, as a disk).
declare -A dev
for d in lvm luks plain; do
  loop_at "$work/$d.img" 0 "$(size "$work/$d.img")" -r --direct-io=on || die "losetup failed"
  dev[$d]=$LOOP
done
loop_dio=on
for d in lvm luks plain; do
  [ "$(cat "/sys/block/${dev[$d]#/dev/}/loop/dio" 2>/dev/null)" = 1 ] || loop_dio=off
done

# --- 1 and 2: image sizes -------------------------------------------------------------------------

say "1. partclone | zstd -3 of the ESP, /boot and the root"
pc_size() { "$1" -c -s "$2" -o - -L /dev/null 2>/dev/null | zstd -T0 -3 -q -c | wc -c; }
pc_esp=$(pc_size partclone.fat32 "$work/esp.fs")
pc_boot=$(pc_size partclone.ext4 "$work/boot.fs")
pc_root=$(pc_size partclone.ext4 "$work/root.fs")

# backup_size NAME DEV [OPTION...]: the default backup (critical volumes, level 3) of DEV to a file.
backup_size() {
  local n=$1 d=$2
  shift 2
  "$asrimg" backup "$d" -o "$work/$n.asrimg" --json "$@" >"$work/$n.json" 2>"$work/$n.err" ||
    { cat "$work/$n.err" >&2; die "asrimg backup of the $n disk failed"; }
  size "$work/$n.asrimg"
  rm -f "$work/$n.asrimg"
}
say "1. asrimg backup of the Debian LVM disk"
img_lvm=$(backup_size lvm "${dev[lvm]}")
say "2. asrimg backup of the LUKS2 disk: with the key, without it, the container alone"
img_luks=$(backup_size luks "${dev[luks]}" --key-file "$PASS")
img_luks_nokey=$(backup_size luks-nokey "${dev[luks]}")
img_luks_only=$(backup_size luks-only "${dev[luks]}" --volumes 3 --key-file "$PASS")

# --- 3: speed of the root in its LV against the same root on a plain partition -------------------

# One image per run, written beside the disks and removed: the level-3 backup, root only.
speed=$work/speed.tsv
: >"$speed"
run_speed() { # run_speed CACHE KIND LEVEL: level 3 writes its image beside the disks, level 0 to /dev/null
  local cache=$1 kind=$2 lvl=$3 sel d t0 t1 rc=0
  if [ "$kind" = lv ]; then sel=vg0/root d=${dev[lvm]}; else sel=3 d=${dev[plain]}; fi
  rm -f "$work/speed.asrimg"
  sync
  [ "$cache" = cold ] && drop_caches
  t0=$EPOCHREALTIME
  if [ "$lvl" = 0 ]; then
    /usr/bin/time -f '%U %S' -o "$work/cpu" "$asrimg" backup "$d" --volumes "$sel" -o - --level 0 --json \
      >/dev/null 2>"$work/speed.err" || rc=$?
  else
    /usr/bin/time -f '%U %S' -o "$work/cpu" "$asrimg" backup "$d" --volumes "$sel" -o "$work/speed.asrimg" --json \
      >"$work/speed.err" 2>&1 || rc=$?
  fi
  t1=$EPOCHREALTIME
  [ "$rc" = 0 ] || { tail -5 "$work/speed.err" >&2; die "asrimg backup --volumes $sel --level $lvl failed"; }
  python3 - "$cache" "$kind" "$lvl" "$t0" "$t1" "$work/speed.err" "$(tail -1 "$work/cpu")" >>"$speed" <<'PY'
import json, sys
cache, kind, lvl, t0, t1, js, cpu = sys.argv[1:]
t = open(js).read()
j = json.loads(t[t.index("{"):t.rindex("}") + 1])
j["cpu_seconds"] = sum(float(x) for x in cpu.split())
print("\t".join([cache, kind, lvl, "%.4f" % (float(t1) - float(t0)), str(j["image_bytes"]), json.dumps(j, separators=(",", ":"))]))
PY
}
say "3. backup speed, root only: $runs rounds, level 3 and level 0, cold then warm, LV and plain partition alternating first"
for ((r = 1; r <= runs; r++)); do
  if ((r % 2)); then order=(lv plain); else order=(plain lv); fi
  for lvl in 3 0; do
    for k in "${order[@]}"; do run_speed cold "$k" "$lvl"; done
    for k in "${order[@]}"; do run_speed warm "$k" "$lvl"; done
  done
done
rm -f "$work/speed.asrimg"

times >"$work/times"
bench_clock_facts "$work/times" >"$work/facts"
bench_facts none >>"$work/facts"

# --- the report -----------------------------------------------------------------------------------

section=$work/section.md
{
  echo "root_mib=$root_mib"
  echo "runs=$runs"
  echo "disk_mib=$disk_mib"
  echo "boot_mib=$BOOT_MIB"
  echo "swap_mib=$SWAP_MIB"
  echo "home_mib=$HOME_MIB"
  echo "home_data_mib=$HOME_DATA_MIB"
  echo "loop_dio=$loop_dio"
  echo "esp_used=$esp_used"
  echo "boot_used=$boot_used"
  echo "root_used=$root_used"
  echo "home_used=$home_used"
  echo "swap_hdr=$swap_hdr"
  echo "pc_esp=$pc_esp"
  echo "pc_boot=$pc_boot"
  echo "pc_root=$pc_root"
  echo "img_lvm=$img_lvm"
  echo "img_luks=$img_luks"
  echo "img_luks_nokey=$img_luks_nokey"
  echo "img_luks_only=$img_luks_only"
} >>"$work/facts"
"$here/stacks_report.py" "$work" >"$section"

# Replace this script's section of RESULTS.md: it always goes last.
python3 "$here/results_merge.py" --at-end "$results" "## Stacks (issue 14)" "$section"
