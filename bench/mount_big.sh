#!/usr/bin/env bash
# asrimg mount and info opening a 1 TiB image (issue 17: "mounting a 1 TiB image takes under 2 s
# and a few MiB of memory"). The image is synthetic (bench/bigimage.c, asrimg-bigimage): a
# BENCH_BIG_GIB disk captured whole by distinct 256 KiB chunks, one extent each, so its index is
# that of a real backup of that much used data (32 bytes a chunk and an extent: 256 MiB for 1 TiB)
# while the file stays small; it is made once and kept in BENCH_DIR. Every round, page cache
# dropped first:
#   - mount: `asrimg mount IMAGE DIR -d` wall time until it returns (mounted) and its peak RSS (GNU
#            time's maximum resident set: the command, which opens the image and checks the index
#            before it forks), then the FUSE process's peak RSS (VmHWM, counted from the fork);
#   - reads: 64 reads of 4 KiB of disk0.img at random chunks, each checked (a chunk's first 8 bytes
#            are its number), and the FUSE process's peak RSS after them;
#   - info:  `asrimg info IMAGE --json`, wall time and peak RSS (GNU time's maximum resident set).
# BENCH_BEFORE=path/to/an/older/asrimg adds the same rows for that build (the eager index), for the
# before/after table. Adds a "Mount, lazy open" section to bench/RESULTS.md and prints it.
#
# Usage, as root:   bench/mount_big.sh                                   # 1024 GiB, 3 rounds
#                   BENCH_BIG_GIB=64 BENCH_RUNS=1 bench/mount_big.sh     # quick
#   BENCH_DIR, ASRIMG, BENCH_RUNS, BENCH_RESULTS: as bench/run.sh (README.md)
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
bench_clock_start

command_line=""
for v in BENCH_DIR ASRIMG BENCH_RUNS BENCH_RESULTS BENCH_BIG_GIB BENCH_BEFORE; do
  [ -z "${!v:-}" ] || command_line+="$v=${!v} "
done
command_line+="bench/mount_big.sh"

bench_require python3 fusermount3 /usr/bin/time
bench_settings
bench_asrimg
gib=${BENCH_BIG_GIB:-1024}
[[ "$gib" =~ ^[1-9][0-9]*$ ]] || die "BENCH_BIG_GIB=$gib: a size in GiB"
tool=$(dirname "$asrimg")/asrimg-bigimage
if [ ! -x "$tool" ]; then
  cmake --build "$(dirname "$asrimg")" --target asrimg-bigimage -j"$(nproc)" >/dev/null ||
    die "cannot build asrimg-bigimage beside $asrimg"
fi
image=$bench_dir/big-${gib}G.asrimg
if [ ! -f "$image.done" ]; then
  say "making $image (once; minutes for 1 TiB)"
  rm -f "$image" "$image.done"
  "$tool" "$image" "$gib" || die "asrimg-bigimage failed"
  touch "$image.done"
fi

work=$(mktemp -d "$bench_dir/mount-big.XXXXXX")
mnt=$work/mnt
mkdir -p "$mnt"
cleanup() {
  fusermount3 -u -z "$mnt" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

rows=$work/rows.tsv
: >"$rows"
row() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$round" >>"$rows"; } # build id seconds KiB round
hwm() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; } # KiB
now() { echo "$EPOCHREALTIME"; }
secs() { python3 -c "print('%.3f' % ($2 - $1))"; }

# measure BUILD ASRIMG: one round of the three rows.
measure() {
  local build=$1 bin=$2 t0 t1 pid
  drop_caches
  t0=$(now)
  /usr/bin/time -f '%M' -o "$work/rss" "$bin" mount "$image" "$mnt" -d || die "$bin mount failed"
  t1=$(now)
  pid=$(pgrep -f "mount $image $mnt" | head -1)
  row "$build" mount "$(secs "$t0" "$t1")" "$(tail -1 "$work/rss")"
  row "$build" served 0 "$(hwm "$pid")"
  t0=$(now)
  python3 - "$mnt/disk0.img" "$((gib << 30))" <<'EOF' || die "reads of $mnt/disk0.img differ"
import os, random, struct, sys
path, size = sys.argv[1], int(sys.argv[2])
chunk = 256 << 10
rng = random.Random(7)
fd = os.open(path, os.O_RDONLY)
for _ in range(64):
    n = rng.randrange(size // chunk)
    data = os.pread(fd, 4096, n * chunk)
    if len(data) != 4096 or struct.unpack("<Q", data[:8])[0] != n:
        sys.exit("chunk %d reads wrong" % n)
EOF
  t1=$(now)
  row "$build" reads "$(secs "$t0" "$t1")" "$(hwm "$pid")"
  "$bin" umount "$mnt"
  drop_caches
  t0=$(now)
  /usr/bin/time -f '%M' -o "$work/rss" "$bin" info "$image" --json >/dev/null || die "$bin info failed"
  t1=$(now)
  row "$build" info "$(secs "$t0" "$t1")" "$(tail -1 "$work/rss")"
}

for round in $(seq "$runs"); do
  say "round $round of $runs"
  measure this "$asrimg"
  [ -z "${BENCH_BEFORE:-}" ] || measure before "$BENCH_BEFORE"
done

times >"$work/times"
{
  bench_facts "n/a"
  echo "runs=$runs"
  echo "gib=$gib"
  echo "image_bytes=$(stat -c %s "$image")"
  echo "before=${BENCH_BEFORE:-}"
  bench_clock_facts "$work/times"
  echo "command=$command_line"
} >"$work/facts"
"$asrimg" info "$image" --json >"$work/info.json"

python3 - "$work/facts" "$rows" "$work/info.json" >"$work/section.md" <<'EOF'
import json, statistics, sys, time
facts = dict(l.rstrip("\n").split("=", 1) for l in open(sys.argv[1]) if "=" in l)
info = json.load(open(sys.argv[3]))
rows = {}
for l in open(sys.argv[2]):
    b, i, s, k, r = l.rstrip("\n").split("\t")
    rows.setdefault((b, i), []).append((float(s), float(k)))
med = lambda b, i, k: statistics.median(x[k] for x in rows[(b, i)])
rng = lambda b, i: "%.3f to %.3f" % (min(x[0] for x in rows[(b, i)]), max(x[0] for x in rows[(b, i)]))
gib, chunks = int(facts["gib"]), info["chunks"]
index_mib = (32 + 64 + 64 * chunks) / 2**20
builds = [("this", "this build (index read in place)")] + ([("before", "before (`%s`, index in memory)" % facts["before"])]
                                                           if facts["before"] else [])
out = [f"## Mount, lazy open (issue 17): synthetic {gib} GiB image, median of {facts['runs']} runs"
       + time.strftime(" (%Y-%m-%d %H:%M UTC)", time.gmtime()), "",
       f"`{facts['command']}`. `asrimg-bigimage` (bench/bigimage.c): a {gib} GiB disk captured whole by {chunks:,} "
       f"distinct 256 KiB chunks, one extent each; the image is {int(facts['image_bytes']) / 2**20:.0f} MiB, of which "
       f"the index is {index_mib:.0f} MiB (32 bytes a chunk and an extent, as a real backup of {gib} GiB of used data "
       f"has). Page cache dropped before each row; the reads are 64 random 4 KiB reads of disk0.img, each checked.", "",
       "| build | row | median | range | peak RSS |", "| --- | --- | --- | --- | --- |"]
for b, name in builds:
    for i, what in (("mount", "`asrimg mount -d` (returns once mounted; the command's peak RSS)"),
                    ("served", "the FUSE process it leaves, peak RSS from its fork"),
                    ("reads", "64 random 4 KiB reads, checked (the FUSE process's peak RSS after)"),
                    ("info", "`asrimg info --json`")):
        t = "" if i == "served" else f"{med(b, i, 0):.3f} s"
        r = "" if i == "served" else rng(b, i)
        out.append(f"| {name} | {what} | {t} | {r} | {med(b, i, 1) / 1024:.1f} MiB |")
ok = med("this", "mount", 0) < 2 and max(med("this", "mount", 1), med("this", "served", 1)) / 1024 < 16
out += ["", f"Target: mounting a 1 TiB image in under 2 s with a few MiB: {'met' if ok else 'NOT met'} on this "
        f"{gib} GiB image (time and peak RSS of the mount command and of the FUSE process it leaves). After reads, "
        f"the FUSE process also holds the chunks it decoded (64 of 256 KiB here: 16 MiB), in its cache of at most "
        f"--cache bytes (256 MiB by default). Machine: {facts.get('cpu', '?')}, {facts.get('ram', '?')}; storage {facts.get('storage', '?')}; "
        f"load {facts.get('load', '?')}.", ""]
print("\n".join(out))
EOF
python3 "$here/results_merge.py" "$results" "## Mount, lazy open (issue 17): synthetic $gib GiB " "$work/section.md"
say "results written to $results"
