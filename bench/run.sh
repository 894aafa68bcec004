#!/usr/bin/env bash
# Side-by-side throughput on one generated disk (bench/mkdisk.sh), page cache cold and warm:
# asrimg backup against partclone.<fs> | zstd and dd | zstd, and against the limits measured on
# exactly the used bytes of the same root (ext4, XFS or btrfs: BENCH_FS): zstd alone
# (compression), fio's io_uring read of them copied into one file (I/O), and fio replaying
# asrimg's own reads of them on the device asrimg reads (I/O, same extents); and the map step
# (`asrimg layout`, which computes the used map a backup starts with) against the backup's time. Writes a Markdown table to bench/RESULTS.md (one
# section per filesystem and disk size) and prints it.
#
# Usage, as root:   bench/run.sh                        # 4 GiB root: a few minutes
#                   BENCH_ROOT_MIB=512 bench/run.sh     # quick: well under a minute
#   BENCH_DIR      where the disk and the outputs go (default /var/tmp/asrimg-bench; not tmpfs)
#   ASRIMG         the asrimg executable (default: build-bench/, built here in Release)
#   BENCH_LEVEL    zstd level of asrimg and of the baselines (default 3)
#   BENCH_RUNS     rounds of every row; the table shows each row's median (default 3)
#   BENCH_RESULTS  the Markdown file to update (default bench/RESULTS.md)
#   BENCH_FS       the root's filesystem: ext4 (default), xfs or btrfs (partclone.<fs> against it)
#   BENCH_MAP_PAIRS  how many times a round the map step and its baseline run (default 3)
#   BENCH_ROOT_MIB, BENCH_FILL_PCT, BENCH_DELETED_PCT, BENCH_SEED, BENCH_FREE: see bench/mkdisk.sh
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
bench_clock_start

bench_settings
map_pairs=${BENCH_MAP_PAIRS:-3}
[[ "$map_pairs" =~ ^[1-9][0-9]*$ ]] || die "BENCH_MAP_PAIRS=$map_pairs: a positive number"
# shellcheck disable=SC2046 # a list of tool names
bench_require fio "partclone.$fs" zstd dd losetup python3 openssl sfdisk mkfs.vfat mcopy $(bench_fs_tools)
# asrimg: the given one, or a Release build of this tree.
bench_asrimg
# `asrimg backup` rows run only where the command exists; its help line is the test.
if "$asrimg" help 2>/dev/null | grep -q '^  backup '; then have_backup=1; else have_backup=0; fi

"$here/mkdisk.sh" "$disk"

work=$(mktemp -d "$bench_dir/run.XXXXXX")
disk_dev="" root_dev="" blank_dev=""
cleanup() {
  [ -z "$blank_dev" ] || losetup -d "$blank_dev" || true
  [ -z "$root_dev" ] || losetup -d "$root_dev" || true
  [ -z "$disk_dev" ] || losetup -d "$disk_dev" || true
  rm -rf "$work"
}
trap cleanup EXIT

bench_open_disk "$disk" "$work"
# The map step's baseline: the same disk with nothing in the root (a sparse copy of the partition
# table, the ESP and the backup table), read through a loop device as the disk is. `asrimg layout`
# of it does all the command does but the root's map (start, tables, probing, the ESP's FAT).
disk_bytes=$(stat -c %s "$disk")
truncate -s "$disk_bytes" "$work/blank.img"
dd if="$disk" of="$work/blank.img" bs=1M count=$((root_start >> 20)) conv=notrunc,sparse status=none
dd if="$disk" of="$work/blank.img" bs=1M skip=$(((root_start + root_size) >> 20)) seek=$(((root_start + root_size) >> 20)) \
  conv=notrunc,sparse status=none
blank_dio=()
[ "$loop_dio" = off ] || blank_dio=(--direct-io=on)
blank_dev=$(losetup -f --show -r "${blank_dio[@]}" "$work/blank.img")

python3 -c '
import json, sys
p = [p for p in json.load(open(sys.argv[1]))[0]["partitions"] if p["number"] == int(sys.argv[2])][0]
if p.get("capture", "used") != "used":
    sys.exit("bench: error: asrimg captures the %s root %s (%s), not its used blocks: this asrimg has no "
             "used map for it" % (sys.argv[3], p.get("capture"), p.get("reason", "")))' "$work/layout.json" "$root_part" "$fs"
say "concatenating the root's used extents into $work/used.bin"
read -r used_bytes extent_count < <("$here/extents.py" "$disk" "$root_part" "$work/used.bin" <"$work/layout.json")
say "root: $used_bytes used bytes in $extent_count extents"
# The reads asrimg's level-0 row makes of the root (it is given $disk_dev, --volumes $root_part),
# planned as engine/backup/source.c plans them, as a fio iolog of $disk_dev to replay.
read -r replay_reads replay_bytes replay_used < <("$here/extents.py" --iolog "$disk_dev" "$root_part" "$work/extents.iolog" <"$work/layout.json")
[ "$replay_used" = "$used_bytes" ] || die "extents.py --iolog: $replay_used used bytes, not $used_bytes"
say "asrimg's reads of the root: $replay_reads requests, $replay_bytes bytes (gaps read through included)"

# fio with io_uring, or libaio where io_uring is switched off (kernel.io_uring_disabled).
fio_engine=$(bench_fio_engine "$work/used.bin")

rows=$work/rows.tsv
: >"$rows"
# measure ID CACHE COMMAND [FIO_BYTES]: runs COMMAND (a pipeline; "$T1", "$T2" prefix its stages
# with /usr/bin/time) after dropping the page cache or not, and records wall seconds, the size of
# $work/out (or the image_bytes of $work/out.json, for an image thrown away), and peak RSS summed
# over the stages. A fio COMMAND writes $work/fio.json, and its seconds are FIO_BYTES (default:
# the used bytes) at fio's own rate.
measure() {
  local id=$1 cache=$2 cmd=$3 fio_bytes=${4:-$used_bytes}
  rm -f "$work"/out* "$work"/rss.*
  # Every run starts with nothing dirty: the last row's output still being written back would
  # throttle this row's writes (zstd's 1 GB after zstd's 1 GB ran at half speed). Warm stays warm.
  sync
  [ "$cache" = cold ] && drop_caches
  say "$id ($cache)"
  local t0=$EPOCHREALTIME
  if ! T1="/usr/bin/time -v -o $work/rss.1" T2="/usr/bin/time -v -o $work/rss.2" OUT=$work/out \
       bash -c "set -euo pipefail; $cmd" 2>"$work/$id.err"; then
    tail -5 "$work/$id.err" >&2
    die "$id ($cache) failed: $cmd"
  fi
  local t1=$EPOCHREALTIME
  local out_bytes=0 rss=0
  [ -e "$work/out" ] && out_bytes=$(stat -c %s "$work/out")
  [ -e "$work/out.json" ] && out_bytes=$(python3 -c '
import json, sys
t = open(sys.argv[1]).read()
print(json.loads(t[t.index("{"):t.rindex("}") + 1])["image_bytes"])' "$work/out.json")
  for f in "$work"/rss.*; do
    rss=$((rss + $(awk -F': ' '/Maximum resident set size/ {print $2}' "$f")))
  done
  local secs
  secs=$(python3 -c "print('%.3f' % ($t1 - $t0))")
  # fio's own clock and rate: it reads whole blocks only (used.bin), and a replay leaves its last
  # reads, still in flight when the log runs out, out of its count.
  if [ -e "$work/fio.json" ]; then
    read -r secs out_bytes < <(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))["jobs"][0]["read"]
print("%.3f 0" % (int(sys.argv[2]) / r["bw_bytes"]))' "$work/fio.json" "$fio_bytes")
    rm -f "$work/fio.json"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$id" "$cache" "$secs" "$out_bytes" "$rss" "$round" >>"$rows"
}
# The map step: `asrimg layout DISK --volumes ROOT` reads the partition table, probes every volume
# and computes its used map (the root's is the work; the ESP's is a FAT of 40 MiB), as a backup does
# before it reads any data: its wall time, process start included, bounds the map step from above.
# The same of the blank-root copy (map-base) leaves out all but the root's map: the difference is the
# map step itself.
map_row() { measure "map$2" "$1" "\$T1 '$asrimg' layout '$3' --volumes $root_part >/dev/null"; }
# phase ID CACHE JSON: asrimg's own clock of its data phase ("seconds" of backup --json), beside the
# wall time measure() took: the difference is what the backup spends outside reading and
# compressing (start, the map step, the image's index and trailer).
phase() {
  python3 -c '
import json, sys
t = open(sys.argv[1]).read()
print("%s\t%s\t%.3f\t%s" % (sys.argv[2], sys.argv[3], json.loads(t[t.index("{"):t.rindex("}") + 1])["seconds"], sys.argv[4]))' \
    "$3" "$1" "$2" "$round" >>"$work/phases.tsv"
}
: >"$work/phases.tsv"
unavailable() { printf '%s\t%s\tna\t0\t0\t%s\n' "$1" "$2" "$round" >>"$rows"; }

# One round: every row once. Rounds repeat (BENCH_RUNS) so that each row's median is taken over
# runs spread through the whole bench: what the host does meanwhile (its own page cache holds the
# disk file too, so "cold" is cold only inside this machine) falls on every row alike.
#
# asrimg: the root only (--volumes $root_part), as partclone takes it. The level-3 image goes to a
# file like every other row's output. The level-0 image (1.4x smaller than the data, not 4x) is
# thrown away (`-o -` to /dev/null, its size taken from --json): written to the same disk it
# would share the bandwidth being measured, and the row is there to show how close the pipeline
# comes to the I/O limit, which reads and writes nothing else either.
asrimg_notes=""
fio_args="--ioengine=$fio_engine --rw=read --bs=1M --direct=1 --iodepth=16 --output-format=json --output=$work/fio.json"
fio_size=$(( (used_bytes + (1 << 20) - 1) >> 20 << 20 ))
[ "$fio_size" -le "$root_size" ] || fio_size=$root_size
# The same-extents limit: fio replays the iolog (no --rw, --bs: the log gives them) as fast as it
# can (--replay_no_stall: there are no timestamps to keep), O_DIRECT, 16 in flight, as asrimg.
replay_args="--ioengine=$fio_engine --direct=1 --iodepth=16 --read_iolog=$work/extents.iolog --replay_no_stall=1 --output-format=json --output=$work/fio.json"
fio_replay() { measure fio-extents cold "\$T1 fio --name=extents $replay_args" "$replay_bytes"; }
# Each limit runs close to the row held against it (the replay just before or just after level 0
# cold, by turns), and report.py also takes the median of those per-round ratios: the disk's
# speed drifts between rounds here, far less within seconds.
asrimg_row() { # LEVEL CACHE
  if [ "$have_backup" != 1 ]; then
    unavailable "asrimg-$1" "$2"
  elif [ "$1" = 0 ]; then
    measure asrimg-0 "$2" "\$T1 '$asrimg' backup '$disk_dev' -o - --volumes $root_part --level 0 --json 2>\$OUT.json >/dev/null"
    phase asrimg-0 "$2" "$work/out.json"
  else
    measure "asrimg-$1" "$2" "\$T1 '$asrimg' backup '$disk_dev' -o \$OUT --volumes $root_part --level $1 --json >'$work/asrimg-$1.json'"
    phase "asrimg-$1" "$2" "$work/asrimg-$1.json"
  fi
}
for round in $(seq "$runs"); do
  say "round $round of $runs"
  # A warm run follows its own cold run, which filled the page cache (a cold run in between
  # would empty it again).
  measure fio-limit cold "\$T1 fio --name=used $fio_args --filename='$work/used.bin'"
  # The replay and level 0 read the same blocks, and a cold read here depends on what ran just
  # before it (the host's cache of the disk file; on a VM with free page reporting, how long ago
  # the guest freed the memory its page cache refills, README.md): the two take turns at going
  # first.
  [ $((round % 2)) = 0 ] || fio_replay
  asrimg_row 0 cold
  asrimg_row 0 warm
  [ $((round % 2)) = 1 ] || fio_replay
  measure fio-partition cold "\$T1 fio --name=partition $fio_args --filename='$root_dev' --size=$fio_size"
  # The compression limit at both cache states, so a cold row is held against a cold limit: a
  # cold read costs CPU too (filling the page cache), on the cores zstd needs.
  for cache in cold warm; do
    measure zstd-limit "$cache" "\$T1 zstd -T0 -$level -q -c '$work/used.bin' >\$OUT"
  done
  for cache in cold warm; do
    asrimg_row "$level" "$cache"
    if [ "$have_backup" = 1 ] && [ "$round" = 1 ] && [ "$cache" = cold ]; then # the image just timed must be a good one
      if "$asrimg" verify "$work/out" >/dev/null 2>&1; then verified=ok; else verified=FAILED; fi
      asrimg_notes=$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print("asrimg backup --level %s read %d bytes: %d new, %d deduplicated, %d all-zero; %d threads, O_DIRECT %s; asrimg verify of the image: %s."
      % (sys.argv[2], d["read_bytes"], d["new_bytes"], d["dedup_bytes"], d["zero_bytes"], d["threads"],
         "yes" if d["direct_io"] else "no", sys.argv[3]))' "$work/asrimg-$level.json" "$level" "$verified")
    fi
  done
  for cache in cold warm; do
    measure partclone "$cache" "\$T1 partclone.$fs -c -s '$root_dev' -o - -L '$work/partclone.log' | \$T2 zstd -T0 -$level -q -c >\$OUT"
  done
  for cache in cold warm; do
    measure dd "$cache" "\$T1 dd if='$root_dev' bs=4M status=none | \$T2 zstd -T0 -$level -q -c >\$OUT"
  done
  # Last in the round, so that no limit moves away from the row held against it. The map step
  # takes a tenth of a second, process start included, and the difference of two such is noisy:
  # map_pairs pairs a round, the one or the other first by turns, each pair its own "round" for
  # the same-round differences.
  for pair in $(seq "$map_pairs"); do
    this_round=$round
    round=$round.$pair
    if [ $((pair % 2)) = 1 ]; then order=("" "$disk_dev" -base "$blank_dev"); else order=(-base "$blank_dev" "" "$disk_dev"); fi
    for cache in cold warm; do map_row "$cache" "${order[0]}" "${order[1]}"; done
    for cache in cold warm; do map_row "$cache" "${order[2]}" "${order[3]}"; done
    round=$this_round
  done
done

# The machine, the tools, the disk, and what else ran.
times >"$work/times" # in this shell: user and system time of the script, then of its children
{
  bench_facts "$fio_engine" "$([ "$have_backup" = 1 ] || echo ', no backup command')"
  echo "level=$level"
  echo "fs=$fs"
  echo "runs=$runs"
  echo "root_mib=$root_mib"
  echo "root_part=$root_part"
  echo "loop_dio=$loop_dio"
  echo "root_size=$root_size"
  echo "used_bytes=$used_bytes"
  echo "extents=$extent_count"
  echo "replay_reads=$replay_reads"
  echo "replay_bytes=$replay_bytes"
  echo "disk_params=$(cat "$disk.params")"
  # partclone's own count of the used bytes, from the last run's log.
  tr '\r' '\n' <"$work/partclone.log" | awk '/^Space in use:/ {n = $(NF - 1)} /^Block size:/ {b = $3}
    END {if (n && b) printf "partclone_used=%.0f\n", n * b}'
  echo "asrimg_notes=$asrimg_notes"
  bench_clock_facts "$work/times"
} >"$work/facts"

python3 "$here/report.py" "$work/facts" "$rows" "$disk.manifest" "$results" "$work/phases.tsv"
say "results written to $results"
