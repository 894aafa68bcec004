# bench/lib.sh: what bench/run.sh (backup) and bench/restore.sh share. Sourced, never run.
# The caller has set -euo pipefail, LC_ALL=C, $here (this folder) and $top (the source tree).
# shellcheck shell=bash disable=SC2154 # here and top are the caller's

say() { echo "bench: $*" >&2; }
die() { echo "bench: error: $*" >&2; exit 1; }

# bench_require TOOL...: root, every TOOL on the PATH, and /usr/bin/time (peak RSS).
bench_require() {
  [ "$(id -u)" -eq 0 ] || die "needs root (loop devices, dropping the page cache)"
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null || die "$c not found: run scripts/deps.sh bench"
  done
  [ -x /usr/bin/time ] || die "/usr/bin/time not found (package time): run scripts/deps.sh bench"
}

# bench_settings: the environment knobs both scripts take, into bench_dir, level, runs, results,
# root_mib and fs (exported again as BENCH_ROOT_MIB and BENCH_FS for bench/mkdisk.sh), disk (the
# bench disk's path: disk-<size>M.img for ext4, disk-<fs>-<size>M.img otherwise, so that disks of
# different filesystems never take each other's place); refuses a tmpfs BENCH_DIR.
# shellcheck disable=SC2034 # set for the caller
bench_settings() {
  bench_dir=${BENCH_DIR:-/var/tmp/asrimg-bench}
  level=${BENCH_LEVEL:-3}
  runs=${BENCH_RUNS:-3}
  [[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS=$runs: a positive number of rounds"
  results=${BENCH_RESULTS:-$here/RESULTS.md}
  root_mib=${BENCH_ROOT_MIB:-4096}
  export BENCH_ROOT_MIB=$root_mib
  fs=${BENCH_FS:-ext4}
  case $fs in ext4|xfs|btrfs) ;; *) die "BENCH_FS=$fs: ext4, xfs or btrfs" ;; esac
  export BENCH_FS=$fs
  mkdir -p "$bench_dir"
  bench_dir=$(cd "$bench_dir" && pwd)
  [ "$(findmnt -no FSTYPE -T "$bench_dir")" != tmpfs ] || die "BENCH_DIR=$bench_dir is tmpfs: a cold read would still come from memory"
  if [ "$fs" = ext4 ]; then disk=$bench_dir/disk-${root_mib}M.img; else disk=$bench_dir/disk-$fs-${root_mib}M.img; fi
}

# bench_fs_tools: the tools bench/mkdisk.sh needs to build a root of $fs, beside the common ones.
bench_fs_tools() {
  case $fs in
    ext4) echo mkfs.ext4 debugfs e2fsck ;;
    xfs) echo mkfs.xfs xfs_repair mount umount tar ;;
    btrfs) echo mkfs.btrfs btrfs mount umount tar ;;
  esac
}

# bench_asrimg: $ASRIMG, or a Release build of this tree in build-bench/; sets asrimg.
bench_asrimg() {
  if [ -n "${ASRIMG:-}" ]; then
    asrimg=$ASRIMG
  else
    say "building asrimg (Release) in $top/build-bench"
    cmake -S "$top" -B "$top/build-bench" -DCMAKE_BUILD_TYPE=Release -DASRIMG_BUILD_TESTS=OFF >/dev/null ||
      die "cmake configure failed (scripts/deps.sh build; or set ASRIMG=path/to/asrimg)"
    cmake --build "$top/build-bench" --target asrimg -j"$(nproc)" >/dev/null ||
      die "cmake build failed (or set ASRIMG=path/to/asrimg)"
    asrimg=$top/build-bench/asrimg
  fi
  [ -x "$asrimg" ] || die "$asrimg: not an executable"
}

# bench_root_part LAYOUT_JSON: "number start_bytes size_bytes" of the partition named root, from
# `asrimg layout --json` of the bench disk.
bench_root_part() {
  python3 -c '
import json, sys
p = [p for p in json.load(open(sys.argv[1]))[0]["partitions"] if p["name"] == "root"][0]
print(p["number"], p["start_bytes"], p["size_bytes"])' "$1"
}

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# bench_fio_engine FILE: io_uring, or libaio where io_uring is switched off
# (kernel.io_uring_disabled); probed with a 1 MiB O_DIRECT read of FILE.
bench_fio_engine() {
  if fio --name=probe --filename="$1" --ioengine=io_uring --rw=read --bs=1M --size=1M --direct=1 \
       --output=/dev/null >/dev/null 2>&1; then
    echo io_uring
  else
    say "fio: io_uring unavailable here, using libaio"
    echo libaio
  fi
}

# bench_facts FIO_ENGINE [ASRIMG_NOTE]: key=value lines describing the machine, the storage under
# $bench_dir and the tools (asrimg from $asrimg, with ASRIMG_NOTE appended), for the reports.
bench_facts() {
  local fio_engine=$1 asrimg_note=${2:-}
  local cpu ram src storage dev model rota build_type
  cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
  ram=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
  src=$(findmnt -no SOURCE -T "$bench_dir")
  storage="$src ($(findmnt -no FSTYPE -T "$bench_dir"), $(df -h --output=size "$bench_dir" | tail -1 | tr -d ' '))"
  dev=$(lsblk -no PKNAME "$src" 2>/dev/null | head -1 || true)
  [ -n "$dev" ] || dev=$(basename "$src")
  model=$(lsblk -dno MODEL "/dev/$dev" 2>/dev/null | xargs || true)
  rota=$(cat "/sys/block/$dev/queue/rotational" 2>/dev/null || echo "?")
  storage="$storage; device $dev${model:+ ($model)}, rotational=$rota"
  build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$(dirname "$asrimg")/CMakeCache.txt" 2>/dev/null || true)
  echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "cpu=$cpu"
  echo "cores=$(nproc)"
  echo "ram=$ram"
  echo "kernel=$(uname -sr)"
  echo "storage=$storage"
  echo "asrimg=$("$asrimg" version 2>/dev/null)${build_type:+, $build_type build}$asrimg_note"
  echo "zstd=$(zstd -V | grep -o 'v[0-9][0-9.]*' | head -1)"
  echo "partclone=$(partclone.ext4 -v 2>&1 | sed -n 's/^Partclone : //p' | cut -d' ' -f1)"
  echo "fio=$(fio --version) ($fio_engine)"
}

# bench_open_disk DISK WORK: two read-only loop devices over the bench disk file (loop devices here
# get no partitions): the whole disk in disk_dev, for asrimg, which reads the partition table
# itself; the ext4 root in root_dev, for partclone, dd and fio. Also the layout asrimg sees, in
# WORK/layout.json, and root_part, root_start, root_size. With BENCH_LOOP_DIO=1 (the default) the
# loop devices read their file with O_DIRECT, as a disk has no page cache beneath it (README.md,
# "Reading the numbers"); loop_dio says what the kernel granted: on, or off.
bench_open_disk() {
  local dio=()
  [ "${BENCH_LOOP_DIO:-1}" = 0 ] || dio=(--direct-io=on)
  disk_dev=$(losetup -f --show -r "${dio[@]}" "$1")
  "$asrimg" layout "$disk_dev" --json --extents --volumes all >"$2/layout.json" ||
    die "asrimg layout --json --extents failed"
  read -r root_part root_start root_size < <(bench_root_part "$2/layout.json")
  root_dev=$(losetup -f --show -r "${dio[@]}" -o "$root_start" --sizelimit "$root_size" "$1")
  loop_dio=off
  if [ "$(cat "/sys/block/${disk_dev#/dev/}/loop/dio" 2>/dev/null)" = 1 ] &&
     [ "$(cat "/sys/block/${root_dev#/dev/}/loop/dio" 2>/dev/null)" = 1 ]; then
    loop_dio=on
  elif [ ${#dio[@]} -gt 0 ]; then
    say "the loop devices could not read their file with O_DIRECT: they go through the page cache"
  fi
  say "disk $disk_dev, root (partition $root_part) $root_dev, direct I/O $loop_dio"
}

# bench_clock_start: what else ran meanwhile is measured from here: the machine's busy CPU time
# (/proc/stat, in clock ticks) less the script's own and its children's (bash's `times`), and the
# load average at both ends.
bench_cpu_busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
# shellcheck disable=SC2034 # read by bench_clock_facts
bench_clock_start() {
  script_t0=$EPOCHREALTIME
  busy_start=$(bench_cpu_busy)
  load_start=$(cut -d' ' -f1-3 /proc/loadavg)
}

# bench_clock_facts TIMES: the facts lines load=, other_cpu= (other core-seconds, ours) and
# script_seconds=, TIMES holding what `times` printed in the script's own shell just before.
bench_clock_facts() {
  echo "load=$load_start / $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "other_cpu=$(python3 -c '
import re, sys
busy = (int(sys.argv[1]) - int(sys.argv[2])) / int(sys.argv[3])
ours = sum(int(m) * 60 + float(s) for m, s in re.findall(r"(\d+)m([\d.]+)s", sys.argv[4]))
print("%.0f %.0f" % (max(0.0, busy - ours), ours))' "$(bench_cpu_busy)" "$busy_start" "$(getconf CLK_TCK)" "$(cat "$1")")"
  echo "script_seconds=$(python3 -c "print('%.0f' % ($EPOCHREALTIME - $script_t0))")"
}
