#!/usr/bin/env bash
# Restore throughput on the generated bench disk (bench/mkdisk.sh, the same disk bench/run.sh backs
# up), the page cache dropped before every run and every target a new file: asrimg restore of the
# whole disk onto one target and onto two mirrored targets in one pass, against
# `zstd -dc | partclone.ext4 -r` of the ext4 root and against the two limits: `zstd -dc` of exactly
# the root's used bytes (decompression) and fio's sequential O_DIRECT write of as many bytes as the
# image captured, to a new file beside the targets (I/O). Adds a Restore section to bench/RESULTS.md
# (one per disk size) and prints it.
#
# Usage, as root:   bench/restore.sh                                   # 4 GiB root, 3 rounds
#                   BENCH_ROOT_MIB=1024 BENCH_RUNS=1 bench/restore.sh  # quick
#   BENCH_DIR      where the disk, the inputs and the targets go (default /var/tmp/asrimg-bench;
#                  not tmpfs): the targets are written to the same filesystem the image is read from
#   ASRIMG         the asrimg executable (default: build-bench/, built here in Release)
#   BENCH_LEVEL    zstd level of the asrimg image and of the partclone and zstd inputs (default 3)
#   BENCH_RUNS     rounds of every row; the table shows each row's median (default 3)
#   BENCH_RESULTS  the Markdown file to update (default bench/RESULTS.md)
#   BENCH_NOTE     a sentence added to the section as it stands (say, what else ran on the machine)
#   BENCH_MEM_PAIRS  one- and two-target restores in memory run back to back, pairs a round (default 3)
#   BENCH_ROOT_MIB, BENCH_FILL_PCT, BENCH_DELETED_PCT, BENCH_SEED, BENCH_FREE: see bench/mkdisk.sh
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
bench_clock_start

# The exact command, for the report: the knobs given (taken before bench_settings exports
# BENCH_ROOT_MIB), then this script.
command_line=""
for v in BENCH_DIR ASRIMG BENCH_LEVEL BENCH_RUNS BENCH_MEM_PAIRS BENCH_RESULTS BENCH_ROOT_MIB BENCH_ESP_MIB BENCH_FILL_PCT \
         BENCH_DELETED_PCT BENCH_SEED BENCH_FREE; do
  [ -z "${!v:-}" ] || command_line+="$v=${!v} "
done
command_line+="bench/restore.sh"

bench_require fio partclone.ext4 zstd losetup python3 openssl sfdisk mkfs.vfat mkfs.ext4 mcopy debugfs e2fsck truncate
# The ext4 root only (mkdisk.sh builds XFS and btrfs roots for run.sh).
[ "${BENCH_FS:-ext4}" = ext4 ] || die "BENCH_FS=$BENCH_FS: restore.sh measures the ext4 root only"
bench_settings
bench_asrimg
"$asrimg" help 2>/dev/null | grep -q '^  restore ' || die "$asrimg has no restore command"

disk=$bench_dir/disk-${root_mib}M.img
"$here/mkdisk.sh" "$disk"

work=$(mktemp -d "$bench_dir/restore.XXXXXX")
targets=$work/targets # every target, and fio's file, are made here, on the same filesystem
mem_targets=""        # two targets in memory (tmpfs), when there is room: each a device of its own
disk_dev="" root_dev="" check_dev="" check_file=""
# detach DEV FILE: detaches loop device DEV if it still reads FILE. Other tests on this machine
# attach and detach loop devices too: once, one of ours was gone before we detached it, and its
# number could by then be someone else's.
detach() {
  local back
  back=$(losetup -n -O BACK-FILE "$1" 2>/dev/null || true)
  if [ "${back% (deleted)}" = "$(realpath "$2")" ]; then
    losetup -d "$1"
  else
    say "$1: no longer over $2 (detached by someone else?), left alone"
  fi
}
cleanup() {
  [ -z "$check_dev" ] || detach "$check_dev" "$check_file" || true
  [ -z "$root_dev" ] || detach "$root_dev" "$disk" || true
  [ -z "$disk_dev" ] || detach "$disk_dev" "$disk" || true
  rm -rf "$work"
  [ -z "$mem_targets" ] || rm -rf "$mem_targets"
}
trap cleanup EXIT

# ---- the inputs, made once -------------------------------------------------------------------
bench_open_disk "$disk" "$work"

say "asrimg backup --volumes all --level $level"
"$asrimg" backup "$disk_dev" -o "$work/bench.asrimg" --volumes all --level "$level" --json >"$work/backup.json" \
  2>"$work/backup.err" || die "asrimg backup $disk_dev -o $work/bench.asrimg --volumes all --level $level: $(tail -3 "$work/backup.err")"
"$asrimg" verify "$work/bench.asrimg" >"$work/verify.out" 2>&1 || die "asrimg verify $work/bench.asrimg: $(tail -3 "$work/verify.out")"
"$asrimg" info "$work/bench.asrimg" --json >"$work/info.json"
# What a restore of it lays down: every captured byte (data and all-zero extents) of the disk.
read -r captured_bytes disk_size < <(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(sum(v["data_bytes"] + v["zero_bytes"] for v in d["volumes"]), d["disks"][0]["size_bytes"])' "$work/info.json")

say "partclone.ext4 -c | zstd -T0 -$level of the root"
partclone.ext4 -c -s "$root_dev" -o - -L "$work/partclone-c.log" 2>"$work/partclone-c.err" |
  zstd -T0 -"$level" -q -c >"$work/root.pc.zst" || die "partclone.ext4 -c $root_dev | zstd failed: $(tail -3 "$work/partclone-c.err")"

say "zstd -T0 -$level of the root's used bytes"
read -r used_bytes extent_count < <("$here/extents.py" "$disk" "$root_part" "$work/used.bin" <"$work/layout.json")
zstd -T0 -"$level" -q -c "$work/used.bin" >"$work/used.zst"
rm -f "$work/used.bin"
# Done with the loop devices (the restored targets are checked against the disk file itself).
detach "$root_dev" "$disk"
root_dev=""
detach "$disk_dev" "$disk"
disk_dev=""
say "root: $used_bytes used bytes in $extent_count extents; the image captures $captured_bytes bytes of a $disk_size-byte disk"

fio_engine=$(bench_fio_engine "$work/used.zst")

# Mirroring measured where the targets do not share a device: this machine may have one disk, and
# two targets on it share its bandwidth. Two tmpfs files are two memory "devices" (the CPU copies
# into them, so they share the cores instead). Each is written whole before the run, as a disk's
# sectors exist before a restore: a page that tmpfs only reserved (fallocate) is cleared at its
# first write, and on a VM may first be faulted in from the host; measured on one: dd of 2.6 GB
# into a fallocated tmpfs file 735 MB/s, into the same file once written 2.7 GB/s.
if [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] &&
   [ "$(df -B1 --output=avail /dev/shm | tail -1)" -gt $((2 * disk_size + (1 << 30))) ] &&
   [ "$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)" -gt $(((2 * disk_size + (4 << 30)) >> 10)) ]; then
  mem_targets=$(mktemp -d "/dev/shm/asrimg-bench.XXXXXX")
  for t in a b; do
    dd if=/dev/zero of="$mem_targets/$t.img" bs=4M count="$disk_size" iflag=count_bytes status=none
  done
else
  say "no room for two targets of $disk_size bytes in memory (/dev/shm): the rows in memory are left out"
fi

mem_pairs=${BENCH_MEM_PAIRS:-3}
[[ "$mem_pairs" =~ ^[1-9][0-9]*$ ]] || die "BENCH_MEM_PAIRS=$mem_pairs: a positive number of pairs"
fio_size=$(( (captured_bytes + (1 << 20) - 1) >> 20 << 20 ))
fio_write="--ioengine=$fio_engine --rw=write --bs=1M --direct=1 --iodepth=16 --fallocate=none --end_fsync=1 --output-format=json --output='$work/fio.json'"

# ---- the runs ---------------------------------------------------------------------------------
rows=$work/rows.tsv
: >"$rows"
# measure ID BYTES PREPARE COMMAND: deletes every target (a fresh $targets), runs PREPARE, syncs
# and drops the page cache, then times COMMAND (a pipeline: "$T1", "$T2" prefix its stages with
# /usr/bin/time) on the wall clock, fio rows on fio's own. Records seconds, BYTES (what its MB/s
# counts), peak RSS and CPU seconds (user + system) summed over the stages, the round, and asrimg's
# own clock when it printed one.
measure() {
  local id=$1 bytes=$2 prepare=$3 cmd=$4
  rm -rf "$targets" "$work"/rss.* "$work/out.json" "$work/fio.json"
  mkdir "$targets"
  [ -z "$prepare" ] || bash -c "set -euo pipefail; $prepare"
  drop_caches
  say "$id (round $round of $runs)"
  local t0=$EPOCHREALTIME
  if ! T1="/usr/bin/time -f %M,%U,%S -o $work/rss.1" T2="/usr/bin/time -f %M,%U,%S -o $work/rss.2" OUT=$work/out.json \
       bash -c "set -euo pipefail; $cmd" 2>"$work/$id.err"; then
    tail -5 "$work/$id.err" >&2
    die "$id failed: $cmd"
  fi
  local t1=$EPOCHREALTIME
  local rss=0 cpu=0 f secs own="" stage
  for f in "$work"/rss.*; do
    IFS=, read -r -a stage < <(tail -1 "$f")
    rss=$((rss + stage[0]))
    cpu=$(python3 -c "print('%.2f' % ($cpu + ${stage[1]} + ${stage[2]}))")
  done
  secs=$(python3 -c "print('%.3f' % ($t1 - $t0))")
  if [ -e "$work/fio.json" ]; then # fio's own clock: it excludes fio's start-up and file set-up
    secs=$(python3 -c '
import json, sys
w = json.load(open(sys.argv[1]))["jobs"][0]["write"]  # with --group_reporting: all jobs together
print("%.3f" % (int(sys.argv[2]) / w["bw_bytes"]))' "$work/fio.json" "$bytes")
  fi
  if [ -e "$work/out.json" ]; then # asrimg restore --json: it must have restored every captured byte
    own=$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
if not d["ok"] or d["data_bytes"] + d["zero_bytes"] != int(sys.argv[2]) or d["damaged"] or d["unreadable"]:
    sys.exit("restore --json: %s" % json.dumps(d))
print("%.3f %d %s" % (d["seconds"], d["bytes_written"], "yes" if d["direct_io"] else "no"))' "$work/out.json" "$bytes") ||
      die "$id: asrimg restore did not report a complete restore ($cmd)"
    cp "$work/out.json" "$work/$id.json"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$id" "$secs" "$bytes" "$rss" "$cpu" "$round" "$own" >>"$rows"
}

# check_disk TARGET: the target of an asrimg restore holds the disk (bench/restored.py: the
# partition table and every used extent of both partitions; "bytes extents" into $checked), and
# its root passes e2fsck -fn.
check_disk() {
  checked=$("$here/restored.py" "$work/layout.json" "$disk" "$1") || die "restored $1 is not the bench disk"
  check_file=$1
  check_dev=$(losetup -f --show -r -o "$root_start" --sizelimit "$root_size" "$1")
  e2fsck -fn "$check_dev" >"$work/fsck.out" 2>&1 || die "e2fsck -fn of the root restored in $1: $(tail -3 "$work/fsck.out")"
  detach "$check_dev" "$1"
  check_dev=""
}

checks=""
restore="\$T1 '$asrimg' restore '$work/bench.asrimg' --yes --json"
for round in $(seq "$runs"); do
  say "round $round of $runs"
  # Each limit runs right before the rows held against it; the report also takes the median of
  # those same-round ratios.
  measure write-limit "$captured_bytes" "" \
    "\$T1 fio $fio_write --size=$fio_size --name=write --filename='$targets/fio.img'"
  measure zstd-limit "$used_bytes" "" "\$T1 zstd -dc -T0 '$work/used.zst' >/dev/null"
  measure asrimg-1 "$captured_bytes" "" "$restore --to '$targets/a.img' >\$OUT"
  if [ "$round" = 1 ]; then
    check_disk "$targets/a.img"
    checks="one target: ${checked% *} bytes in ${checked#* } extents equal the disk's, partition table equal, e2fsck -fn clean"
  fi
  # What the device takes when two files are written at once, as two mirrored targets on it are.
  measure write-limit-2 "$((2 * captured_bytes))" "" \
    "\$T1 fio $fio_write --size=$fio_size --group_reporting --name=a --filename='$targets/fio-a.img' --name=b --filename='$targets/fio-b.img'"
  measure asrimg-2 "$captured_bytes" "" "$restore --to '$targets/a.img' --to '$targets/b.img' >\$OUT"
  if [ "$round" = 1 ]; then
    check_disk "$targets/a.img"
    check_disk "$targets/b.img"
    checks+="; two targets: both the same"
  fi
  # In memory, one and two targets back to back, $mem_pairs times a round: quick runs, which the
  # host's share of the cores sways from one to the next.
  for pair in $([ -z "$mem_targets" ] || seq "$mem_pairs"); do
    round=${round%.*}.$pair
    measure asrimg-1-mem "$captured_bytes" "" "$restore --to '$mem_targets/a.img' >\$OUT"
    # In round 1 A is zeroed again first (in place: its pages stay), so the check below shows that
    # this run wrote it too.
    measure asrimg-2-mem "$captured_bytes" \
      "$([ "$round" != 1.1 ] || echo "dd if=/dev/zero of='$mem_targets/a.img' bs=4M count=$disk_size iflag=count_bytes conv=notrunc status=none")" \
      "$restore --to '$mem_targets/a.img' --to '$mem_targets/b.img' >\$OUT"
    if [ "$round" = 1.1 ]; then
      check_disk "$mem_targets/a.img"
      check_disk "$mem_targets/b.img"
      checks+="; two targets in memory: both the same"
    fi
  done
  round=${round%.*}
  measure partclone "$used_bytes" "truncate -s $root_size '$targets/root.img'" \
    "\$T1 zstd -dc '$work/root.pc.zst' | \$T2 partclone.ext4 -r -s - -O '$targets/root.img' -L '$work/partclone-r.log'"
  if [ "$round" = 1 ]; then
    checked=$("$here/restored.py" "$work/layout.json" "$disk" "$targets/root.img" --part "$root_part") ||
      die "partclone's restored root is not the disk's"
    e2fsck -fn "$targets/root.img" >"$work/fsck.out" 2>&1 || die "e2fsck -fn of partclone's root: $(tail -3 "$work/fsck.out")"
    checks+="; partclone's root: ${checked% *} bytes in ${checked#* } extents equal, e2fsck -fn clean"
  fi
done
rm -rf "$targets"
[ -z "$mem_targets" ] || rm -rf "$mem_targets"
mem_targets=""

# ---- the report -------------------------------------------------------------------------------
times >"$work/times" # in this shell: user and system time of the script, then of its children
{
  bench_facts "$fio_engine"
  echo "level=$level"
  echo "runs=$runs"
  echo "root_mib=$root_mib"
  echo "root_part=$root_part"
  echo "root_size=$root_size"
  echo "used_bytes=$used_bytes"
  echo "extents=$extent_count"
  echo "captured_bytes=$captured_bytes"
  echo "disk_size=$disk_size"
  echo "image_bytes=$(stat -c %s "$work/bench.asrimg")"
  echo "partclone_bytes=$(stat -c %s "$work/root.pc.zst")"
  echo "used_zst_bytes=$(stat -c %s "$work/used.zst")"
  echo "disk_params=$(cat "$disk.params")"
  echo "checks=$checks"
  bench_clock_facts "$work/times"
  echo "note=${BENCH_NOTE:-}"
  echo "command=$command_line"
} >"$work/facts"

python3 "$here/restore_report.py" "$work/facts" "$rows" "$disk.manifest" "$results"
say "results written to $results"
