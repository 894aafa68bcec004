#!/usr/bin/env bash
# asrimg mount on the generated bench disk (bench/mkdisk.sh, the disk bench/run.sh backs up and
# bench/restore.sh restores): an image of the whole disk (--volumes all), then, every round with the
# page cache dropped and a fresh mount (asrimg's chunk cache empty):
#   - mount:   `asrimg mount IMAGE DIR -d` wall time until it returns (mounted), and the FUSE
#              process's peak RSS (VmHWM) right then;
#   - dd:      `dd if=DIR/disk0pN.img of=/dev/null bs=1M` of the root's volume file, cold; its peak
#              RSS after (the cache is --cache, default 256 MiB);
#   - random:  4 KiB reads (os.pread, POSIX_FADV_RANDOM so the kernel reads no more) at random
#              4 KiB-aligned offsets inside the root's used extents, cold, for BENCH_RANDOM_SECS;
#   - restore: `asrimg restore IMAGE --to FILE --yes` of the same image to a new file beside it.
# MB/s of dd and restore count captured bytes (what each decodes): the root's for dd, the whole
# image's for restore; dd's rate over the volume's full size is shown too. Adds a Mount section to
# bench/RESULTS.md (one per disk size) and prints it.
#
# Usage, as root:   bench/mount.sh                                   # 4 GiB root, 3 rounds
#                   BENCH_ROOT_MIB=1024 BENCH_RUNS=1 bench/mount.sh  # quick
#   BENCH_DIR, ASRIMG, BENCH_LEVEL, BENCH_RUNS, BENCH_RESULTS, BENCH_ROOT_MIB ...: as bench/restore.sh
#   BENCH_RANDOM_SECS  how long the random reads run each round (default 10)
#   BENCH_CACHE        asrimg mount --cache (default: its own, 256M)
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
bench_clock_start

command_line=""
for v in BENCH_DIR ASRIMG BENCH_LEVEL BENCH_RUNS BENCH_RESULTS BENCH_ROOT_MIB BENCH_RANDOM_SECS BENCH_CACHE; do
  [ -z "${!v:-}" ] || command_line+="$v=${!v} "
done
command_line+="bench/mount.sh"

bench_require losetup python3 sfdisk mkfs.vfat mkfs.ext4 mcopy debugfs e2fsck fusermount3 dd
[ "${BENCH_FS:-ext4}" = ext4 ] || die "BENCH_FS=$BENCH_FS: mount.sh measures the ext4 root only"
bench_settings
bench_asrimg
"$asrimg" help 2>/dev/null | grep -q '^  mount ' || die "$asrimg has no mount command"
random_secs=${BENCH_RANDOM_SECS:-10}
cache_opt=()
[ -z "${BENCH_CACHE:-}" ] || cache_opt=(--cache "$BENCH_CACHE")

"$here/mkdisk.sh" "$disk"
work=$(mktemp -d "$bench_dir/mount.XXXXXX")
mnt=$work/mnt
mkdir -p "$mnt"
cleanup() {
  fusermount3 -u -z "$mnt" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

say "asrimg backup --volumes all --level $level"
"$asrimg" backup "$disk" -o "$work/bench.asrimg" --volumes all --level "$level" >"$work/backup.out" 2>&1 ||
  die "asrimg backup: $(tail -3 "$work/backup.out")"
"$asrimg" layout "$disk" --json --extents --volumes all >"$work/layout.json" 2>/dev/null || die "asrimg layout failed"
"$asrimg" info "$work/bench.asrimg" --json >"$work/info.json"
read -r root_part root_start root_size < <(bench_root_part "$work/layout.json")
read -r captured_all captured_root used_root chunks < <(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
vols = d["volumes"]
root = [v for v in vols if v["partition"] == int(sys.argv[2])][0]
print(sum(v["data_bytes"] + v["zero_bytes"] for v in vols), root["data_bytes"] + root["zero_bytes"], root["used_bytes"],
      d["chunks"])' \
  "$work/info.json" "$root_part")
say "root: partition $root_part, $captured_root bytes captured of $root_size; the image captures $captured_all"

rows=$work/rows.tsv
: >"$rows"
row() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$round" >>"$rows"; } # id seconds value round
hwm() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; } # KiB
fuse_pid() { pgrep -f "asrimg mount $work/bench.asrimg $mnt" | head -1; }

for round in $(seq "$runs"); do
  say "round $round of $runs"
  drop_caches
  t0=$EPOCHREALTIME
  "$asrimg" mount "$work/bench.asrimg" "$mnt" -d "${cache_opt[@]}" || die "asrimg mount failed"
  t1=$EPOCHREALTIME
  pid=$(fuse_pid)
  row mount "$(python3 -c "print('%.3f' % ($t1 - $t0))")" "$(hwm "$pid")"

  t0=$EPOCHREALTIME
  dd if="$mnt/disk0p$root_part.img" of=/dev/null bs=1M status=none
  t1=$EPOCHREALTIME
  row dd "$(python3 -c "print('%.3f' % ($t1 - $t0))")" "$(hwm "$pid")"
  "$asrimg" umount "$mnt"

  drop_caches
  "$asrimg" mount "$work/bench.asrimg" "$mnt" -d "${cache_opt[@]}" || die "asrimg mount failed"
  pid=$(fuse_pid)
  n=$(python3 - "$mnt/disk0p$root_part.img" "$work/layout.json" "$root_part" "$random_secs" <<'EOF'
import json, os, random, sys, time
path, layout, part, secs = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
p = [p for p in json.load(open(layout))[0]["partitions"] if p["number"] == part][0]
ext = [(o, n) for o, n in p["extents"] if n >= 4096]
weights = [n for _, n in ext]
rng = random.Random(1)
fd = os.open(path, os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
n, t0 = 0, time.monotonic()
while time.monotonic() - t0 < secs:
    o, l = rng.choices(ext, weights)[0]
    at = (o + rng.randrange(0, l - 4095)) // 4096 * 4096
    if len(os.pread(fd, 4096, at)) != 4096:
        sys.exit("short read")
    n += 1
print("%.3f %d" % (time.monotonic() - t0, n))
EOF
)
  row random "${n% *}" "${n#* }"
  "$asrimg" umount "$mnt"

  rm -f "$work/restored.img"
  drop_caches
  t0=$EPOCHREALTIME
  "$asrimg" restore "$work/bench.asrimg" --to "$work/restored.img" --yes >/dev/null 2>"$work/restore.err" ||
    die "asrimg restore: $(tail -3 "$work/restore.err")"
  t1=$EPOCHREALTIME
  row restore "$(python3 -c "print('%.3f' % ($t1 - $t0))")" 0
  rm -f "$work/restored.img"
done

times >"$work/times"
{
  bench_facts "n/a"
  echo "level=$level"
  echo "runs=$runs"
  echo "root_mib=$root_mib"
  echo "root_size=$root_size"
  echo "used_root=$used_root"
  echo "captured_root=$captured_root"
  echo "captured_all=$captured_all"
  echo "image_bytes=$(stat -c %s "$work/bench.asrimg")"
  echo "cache=${BENCH_CACHE:-256M (default)}"
  echo "random_secs=$random_secs"
  bench_clock_facts "$work/times"
  echo "command=$command_line"
} >"$work/facts"

python3 - "$work/facts" "$rows" >"$work/section.md" <<'EOF'
import statistics, sys, time
facts = dict(l.rstrip("\n").split("=", 1) for l in open(sys.argv[1]) if "=" in l)
rows = {}
for l in open(sys.argv[2]):
    i, s, v, r = l.rstrip("\n").split("\t")
    rows.setdefault(i, []).append((float(s), float(v)))
med = lambda i, k: statistics.median(x[k] for x in rows[i])
span = lambda i, k, f: "%s to %s" % (f(min(x[k] for x in rows[i])), f(max(x[k] for x in rows[i])))
mb = lambda b, s: b / s / 1e6
root, cap_root, cap_all, size = (int(facts[k]) for k in ("root_mib", "captured_root", "captured_all", "root_size"))
dd_s, rs_s = med("dd", 0), med("restore", 0)
dd_rate, rs_rate = mb(cap_root, dd_s), mb(cap_all, rs_s)
rnd = statistics.median(x[1] / x[0] for x in rows["random"])
title = f"## Mount (issue 17): {root} MiB ext4 root, zstd level {facts['level']}, median of {facts['runs']} runs"
out = [title + time.strftime(" (%Y-%m-%d %H:%M UTC)", time.gmtime()), "",
       f"`{facts['command']}`. Image of the whole disk (`--volumes all`), {int(facts['image_bytes']) / 2**20:.0f} MiB; the "
       f"root captures {cap_root / 2**20:.0f} MiB of {size / 2**20:.0f} MiB, the image {cap_all / 2**20:.0f} MiB. Page cache "
       f"dropped and a fresh mount (chunk cache {facts['cache']}) before each row.", "",
       "| row | median | range | MB/s (captured bytes) | peak RSS |", "| --- | --- | --- | --- | --- |",
       f"| `asrimg mount -d` (returns once mounted) | {med('mount', 0):.3f} s | {span('mount', 0, lambda v: '%.3f' % v)} | | "
       f"{med('mount', 1) / 1024:.1f} MiB |",
       f"| `dd bs=1M` of disk0p2.img, cold | {dd_s:.2f} s | {span('dd', 0, lambda v: '%.2f' % v)} | {dd_rate:.0f} "
       f"({mb(size, dd_s):.0f} over the volume's {size / 2**20:.0f} MiB) | {med('dd', 1) / 1024:.1f} MiB |",
       f"| `asrimg restore` of the image to a file, cold | {rs_s:.2f} s | {span('restore', 0, lambda v: '%.2f' % v)} | "
       f"{rs_rate:.0f} | |",
       f"| random 4 KiB reads in the root's used extents, cold, {facts['random_secs']} s | {rnd:.0f} reads/s | "
       f"{span('random', 1, lambda v: '%d' % v)} reads | | |", "",
       f"dd reads the volume file at {100 * dd_rate / rs_rate:.0f}% of restore's rate (captured bytes per second; "
       f"target: at least 50%). Machine: {facts.get('cpu', '?')}, {facts.get('ram', '?')}; storage {facts.get('storage', '?')}; "
       f"load {facts.get('load', '?')}.", ""]
print("\n".join(out))
EOF
python3 "$here/results_merge.py" "$results" "## Mount (issue 17): $root_mib MiB " "$work/section.md"
say "results written to $results"
