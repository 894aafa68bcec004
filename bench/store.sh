#!/usr/bin/env bash
# The chunk store (issue 18, SPEC.md section 19) on the generated bench disk (bench/mkdisk.sh, the
# disk bench/run.sh backs up): the root alone (--volumes ROOT, as run.sh's asrimg rows), into a
# fresh directory store and a fresh S3 store (OpenStack Swift with s3api on localhost,
# tests/s3/swift_env.sh) every round, each row with the page cache dropped first:
#   - limit:   the cold I/O limit of what a backup reads: fio replaying the very reads asrimg's
#              reader makes of the root (bench/extents.py --iolog, as run.sh's same-extents limit),
#              and `asrimg bench --json`'s read-only pass (its read_mb_per_s) beside it;
#   - first:   backup of the disk into the empty store (added bytes, packs, requests, objects);
#   - again:   backup of the unchanged disk into the store holding the first snapshot (MB/s against
#              the limit, bytes added, hash CPU seconds against wall time);
#   - changed: backup of a copy of the disk with 1% of the root's files rewritten in place
#              (BENCH_CHANGE_PCT; through a read-write loop mount, made once before the rounds),
#              its added bytes against `tar | zstd -3 | wc -c` of the changed files' new content;
#   - restore: the latest snapshot (the changed disk) from each store to a new file, beside
#              `asrimg restore` of a single-file image (`backup -o FILE`) of the same disk;
#   - own core: the first backup and its restore again, into a new store of each kind, with Swift's
#              servers on the last CPU and asrimg on the others (taskset), so that the S3 server
#              takes no CPU from the client, as a server on a machine of its own would not: what the
#              two backends cost the client, side by side (needs 2 CPUs or more).
# Backup MB/s count the bytes the backup read (its --json read_bytes: the root's used bytes) over
# the command's wall time; restore MB/s the image's captured bytes. Adds a "Chunk store" section
# to bench/RESULTS.md (one per disk size) and prints it.
#
# Usage, as root:   bench/store.sh                                   # 4 GiB root, 3 rounds
#                   BENCH_ROOT_MIB=512 BENCH_RUNS=1 bench/store.sh   # quick
#   BENCH_DIR, ASRIMG, BENCH_LEVEL, BENCH_RUNS, BENCH_RESULTS, BENCH_ROOT_MIB, BENCH_LOOP_DIO: as
#                      bench/run.sh (README.md)
#   BENCH_CHANGE_PCT   the share of the root's files rewritten for the "changed" rows (default 1)
#   BENCH_S3=0         leave out the S3 store (no Swift needed)
#   BENCH_S3_PORT      the local Swift's proxy port (default 18380; it uses the next four too)
#   BENCH_S3_THREADS   restore --threads of a diagnostic S3 restore in round 1 (default 8; 0: none)
#   BENCH_DIAG_CHUNK   --avg-chunk of a diagnostic first and changed backup in round 1 (default 64K; 0: none)
#   BENCH_OWN_CORE=0   leave out the own-core rows
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
bench_clock_start

command_line=""
for v in BENCH_DIR ASRIMG BENCH_LEVEL BENCH_RUNS BENCH_RESULTS BENCH_ROOT_MIB BENCH_LOOP_DIO BENCH_CHANGE_PCT BENCH_S3 BENCH_OWN_CORE; do
  [ -z "${!v:-}" ] || command_line+="$v=${!v} "
done
command_line+="bench/store.sh"

bench_require losetup python3 sfdisk mkfs.vfat mkfs.ext4 mcopy debugfs e2fsck fio zstd tar mount umount
[ "${BENCH_FS:-ext4}" = ext4 ] || die "BENCH_FS=$BENCH_FS: store.sh measures the ext4 root only"
bench_settings
bench_asrimg
"$asrimg" help 2>/dev/null | grep -q '^  store init ' || die "$asrimg has no store command"
change_pct=${BENCH_CHANGE_PCT:-1}
[[ "$change_pct" =~ ^[1-9][0-9]?$ ]] || die "BENCH_CHANGE_PCT=$change_pct: 1 to 99"
s3=${BENCH_S3:-1}
s3_port=${BENCH_S3_PORT:-18380}
swift_env=$top/tests/s3/swift_env.sh
if [ "$s3" = 1 ]; then
  command -v swift-proxy-server >/dev/null || die "Swift is not installed: $swift_env install (or BENCH_S3=0)"
  command -v curl >/dev/null || die "curl not found (or BENCH_S3=0)"
fi

"$here/mkdisk.sh" "$disk"
work=$(mktemp -d "$bench_dir/store.XXXXXX")
# Re-backup hints (SPEC.md 19.10) of every store the bench makes, beside them.
export ASRIMG_CACHE_DIR=$work/cache
mkdir -p "$work/mnt"
disk_dev="" root_dev="" chg_dev="" rw_dev="" swift_up=""
cleanup() {
  mountpoint -q "$work/mnt" && umount "$work/mnt"
  for d in "$rw_dev" "$chg_dev" "$root_dev" "$disk_dev"; do [ -z "$d" ] || losetup -d "$d" || true; done
  [ -z "$swift_up" ] || "$swift_env" stop "$work/swift" >/dev/null 2>&1 || true
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

bench_open_disk "$disk" "$work"
read -r replay_reads replay_bytes used_bytes < <("$here/extents.py" --iolog "$disk_dev" "$root_part" "$work/extents.iolog" <"$work/layout.json")
say "root: partition $root_part, $used_bytes used bytes; asrimg reads them in $replay_reads requests, $replay_bytes bytes"
fio_engine=$(bench_fio_engine "$disk_dev")

# ---- the changed disk: a copy of the disk with change_pct% of the root's files rewritten ---------
# In place (opened without O_TRUNC, the same size written over the same blocks) through a
# read-write mount of the copy's root (noinit_itable: no lazy inode table zeroing behind it), so
# the used map stays the disk's but for the metadata the kernel writes (inode times, the journal,
# the superblock). The files: every Nth in (size, path) order, N = 100 / change_pct, from a seeded
# start, so the share is change_pct% by count and close to it by bytes. Their new content: 64 KiB
# pieces, each at random either random bytes or seeded words (as compressible as text), so that
# their compressed size means something.
say "the changed disk: a copy with $change_pct% of the root's files rewritten"
cp --sparse=always "$disk" "$work/changed.img"
rw_dev=$(losetup -f --show -o "$root_start" --sizelimit "$root_size" "$work/changed.img")
mount -t ext4 -o noinit_itable,nodiscard "$rw_dev" "$work/mnt"
read -r files_total bytes_total files_changed bytes_changed < <(python3 - "$work/mnt" "$change_pct" "$work/changed.list" <<'EOF'
import bisect, os, random, sys
root, pct, listing = sys.argv[1], int(sys.argv[2]), sys.argv[3]
files = []
for d, dirs, names in os.walk(root):
    dirs[:] = sorted(x for x in dirs if not (d == root and x == "lost+found"))
    for n in names:
        p = os.path.join(d, n)
        st = os.lstat(p)
        if os.path.isfile(p) and not os.path.islink(p):
            files.append((st.st_size, os.path.relpath(p, root)))
files.sort()
sizes = [s for s, _ in files]
rng = random.Random(18)
# Every Nth file in size order: pct% by count. A few large files (the disk's random blobs) would
# make the bytes far from pct%: swap the largest pick (too many bytes) or the smallest (too few)
# for the unpicked file whose size closes the gap best, until within 1% of the target.
step = 100 // pct
picked = set(range(rng.randrange(step), len(files), step))
target = sum(sizes) * pct / 100
total = sum(sizes[i] for i in picked)
for _ in range(1000):
    gap = total - target
    if abs(gap) <= target / 100:
        break
    out = max(picked, key=lambda k: sizes[k]) if gap > 0 else min(picked, key=lambda k: sizes[k])
    at = min(bisect.bisect_left(sizes, sizes[out] - gap), len(files) - 1)
    near = next((k for d in range(len(files)) for k in (at - d, at + d) if 0 <= k < len(files) and k not in picked), None)
    if near is None:
        break
    picked.remove(out)
    picked.add(near)
    total += sizes[near] - sizes[out]
pick = [files[i] for i in sorted(picked)]
words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))).encode()
         for _ in range(2000)]
def piece(n):
    if rng.random() < 0.5:
        return rng.randbytes(n)
    out = bytearray()
    while len(out) < n:
        out += rng.choice(words) + (b"\n" if rng.random() < 0.1 else b" ")
    return bytes(out[:n])
with open(listing, "wb") as out:
    for size, rel in pick:
        fd = os.open(os.path.join(root, rel), os.O_WRONLY)
        at = 0
        while at < size:
            n = min(65536, size - at)
            os.pwrite(fd, piece(n), at)
            at += n
        os.fsync(fd)
        os.close(fd)
        out.write(rel.encode() + b"\0")
print(len(files), sum(s for s, _ in files), len(pick), sum(s for s, _ in pick))
EOF
)
changed_zstd=$(tar -C "$work/mnt" --null -T "$work/changed.list" -cf - | zstd -3 -q -c | wc -c)
umount "$work/mnt"
losetup -d "$rw_dev"
rw_dev=""
chg_dev=$(losetup -f --show -r -o "$root_start" --sizelimit "$root_size" "$work/changed.img")
e2fsck -fn "$chg_dev" >"$work/e2fsck.out" 2>&1 || { tail -5 "$work/e2fsck.out" >&2; die "the changed root is not clean"; }
losetup -d "$chg_dev"
chg_dev="" # detached: the number may be another program's by now, cleanup must not detach it
dio=()
[ "$loop_dio" = off ] || dio=(--direct-io=on)
chg_dev=$(losetup -f --show -r "${dio[@]}" "$work/changed.img")
"$asrimg" layout "$chg_dev" --json --extents --volumes all >"$work/changed-layout.json" || die "asrimg layout of the changed disk failed"
# restored.py compares every used extent of every partition: the root's alone here.
root_only() { # LAYOUT OUT
  python3 -c '
import json, sys
l = json.load(open(sys.argv[1]))
for p in l[0]["partitions"]:
    if p["number"] != int(sys.argv[2]) and "extents" in p:
        p["extents"] = []
json.dump(l, open(sys.argv[3], "w"))' "$1" "$root_part" "$2"
}
root_only "$work/changed-layout.json" "$work/check-layout.json"
root_only "$work/layout.json" "$work/check-layout-disk.json"
# For context: the 4 KiB blocks of the root's used extents (the disk's or its copy's) that differ
# between the two (the files' and the metadata the kernel wrote), and those blocks as zstd -3.
blocks_changed=$(python3 - "$work/layout.json" "$work/changed-layout.json" "$root_part" "$root_start" "$disk" \
  "$work/changed.img" "$work/changed.blocks" <<'EOF'
import json, os, sys
lay_a, lay_b, part, start, disk_a, disk_b, out = sys.argv[1:8]
blocks = set()
for path in (lay_a, lay_b):
    p = [p for p in json.load(open(path))[0]["partitions"] if p["number"] == int(part)][0]
    for o, n in p["extents"]:
        blocks.update(range(o // 4096, (o + n + 4095) // 4096))
run = sorted(blocks)
a, b = os.open(disk_a, os.O_RDONLY), os.open(disk_b, os.O_RDONLY)
diff, i = 0, 0
with open(out, "wb") as f:
    while i < len(run):  # runs of consecutive blocks, up to 1 MiB at a time
        j = i
        while j + 1 < len(run) and run[j + 1] == run[j] + 1 and j + 1 - i < 256:
            j += 1
        off, n = int(start) + run[i] * 4096, (j - i + 1) * 4096
        x, y = os.pread(a, n, off), os.pread(b, n, off)
        if x != y:
            for k in range(0, n, 4096):
                if x[k:k + 4096] != y[k:k + 4096]:
                    diff += 1
                    f.write(y[k:k + 4096])
        i = j + 1
print(diff * 4096)
EOF
)
blocks_zstd=$(zstd -3 -q -c "$work/changed.blocks" | wc -c)
rm -f "$work/changed.blocks"
say "changed $files_changed of $files_total files, $bytes_changed of $bytes_total bytes; tar | zstd -3 of them: $changed_zstd bytes"
say "the root's used blocks that differ: $blocks_changed bytes, $blocks_zstd as zstd -3"

# ---- the S3 endpoint ---------------------------------------------------------------------------
if [ "$s3" = 1 ]; then
  say "starting Swift (s3api) on port $s3_port"
  swift_up=1
  eval "$("$swift_env" start "$work/swift" "$s3_port")"
fi

# ---- rows ---------------------------------------------------------------------------------------
rows=$work/rows.tsv
: >"$rows"
rec() { printf '%s\t%s\t%s\t%s\n' "$1" "$round" "$2" "$3" >>"$rows"; } # ID KEY VALUE

# timed ID COMMAND...: the page cache dropped, COMMAND run with its standard output in
# $work/ID.json, its wall time recorded.
timed() {
  local id=$1
  shift
  sync
  drop_caches
  say "$id (round $round)"
  local c0 c1
  c0=$(swift_cpu)
  local t0=$EPOCHREALTIME
  "$@" >"$work/$id.json" 2>"$work/$id.err" || { tail -5 "$work/$id.err" >&2; die "$id failed: $*"; }
  local t1=$EPOCHREALTIME
  c1=$(swift_cpu)
  rec "$id" secs "$(python3 -c "print('%.3f' % ($t1 - $t0))")"
  rec "$id" swift_cpu "$(python3 -c "print('%.2f' % ($c1 - $c0))")"
}

# swift_cpu: the CPU seconds (user + system) Swift's servers have used so far: every process of the
# sessions swift_env.sh started them in (setsid: the session id is the server's pid). Not the
# script's children, so bench_clock_facts counts them as other work.
swift_cpu() {
  [ -n "$swift_up" ] || { echo 0; return; }
  swift_procs cpu
}

# swift_procs cpu|pids: the CPU seconds so far of every process in Swift's sessions, or their pids.
swift_procs() {
  python3 - "$1" "$work/swift/run" "$(getconf CLK_TCK)" <<'EOF'
import glob, os, sys
sids = {int(open(f).read()) for f in glob.glob(sys.argv[2] + "/*.pid")}
t, pids = 0, []
for st in glob.glob("/proc/[0-9]*/stat"):
    try:
        f = open(st).read().rsplit(")", 1)[1].split()
    except OSError:
        continue
    if int(f[3]) in sids:  # field 6, the session
        t += int(f[11]) + int(f[12])  # utime, stime
        pids.append(st.split("/")[2])
print(t / int(sys.argv[3]) if sys.argv[1] == "cpu" else "\n".join(pids))
EOF
}

# swift_pin CPULIST: every thread of Swift's servers (memcached's too) onto those CPUs.
swift_pin() {
  local pid
  for pid in $(swift_procs pids); do taskset -a -c -p "$1" "$pid" >/dev/null; done
}

# store_objects KIND URL: "<objects> <bytes> <packs> <index objects> <snapshots>" the store holds
# now, listed by the backend itself: the directory's files (tmp/ left out), or ListObjectsV2 of
# the bucket under the prefix.
store_objects() {
  if [ "$1" = dir ]; then
    python3 - "$2" <<'EOF'
import os, sys
root = sys.argv[1]
n = b = packs = index = snaps = 0
for d, dirs, names in os.walk(root):
    rel = os.path.relpath(d, root)
    if rel == "tmp" or rel.startswith("tmp/"):
        continue
    for x in names:
        n += 1
        b += os.path.getsize(os.path.join(d, x))
        top = rel.split("/")[0]
        packs += top == "packs"
        index += top == "index"
        snaps += top == "snapshots"
print(n, b, packs, index, snaps)
EOF
  else
    python3 - "$2" "$work/swift/netrc" "$AWS_ENDPOINT_URL" "$AWS_REGION" <<'EOF'
import subprocess, sys, urllib.parse, xml.etree.ElementTree as ET
url, netrc, endpoint, region = sys.argv[1:5]
bucket, _, prefix = url[len("s3://"):].partition("/")
prefix = prefix.rstrip("/") + "/"
n = b = packs = index = snaps = 0
token = None
while True:
    q = {"list-type": "2", "max-keys": "1000", "prefix": prefix}
    if token:
        q["continuation-token"] = token
    query = "&".join("%s=%s" % (k, urllib.parse.quote(v, safe="-._~")) for k, v in sorted(q.items()))
    xml = subprocess.run(["curl", "-sf", "--netrc-file", netrc, "--aws-sigv4", "aws:amz:%s:s3" % region,
                          "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "%s/%s?%s" % (endpoint, bucket, query)],
                         check=True, capture_output=True).stdout
    r = ET.fromstring(xml)
    ns = r.tag[:r.tag.index("}") + 1] if r.tag.startswith("{") else ""
    for c in r.iter(ns + "Contents"):
        key = c.find(ns + "Key").text[len(prefix):]
        n += 1
        b += int(c.find(ns + "Size").text)
        top = key.split("/")[0]
        packs += top == "packs"
        index += top == "index"
        snaps += top == "snapshots"
    t = r.find(ns + "NextContinuationToken")
    if (r.findtext(ns + "IsTruncated") or "false") != "true" or t is None:
        break
    token = t.text
print(n, b, packs, index, snaps)
EOF
  fi
}

# backup_row ID KIND URL DEV [OPTION...]: a timed backup of DEV's root into the store, its --json
# figures and what the store holds after it.
backup_row() {
  local id=$1 kind=$2 url=$3 dev=$4 before
  shift 4
  read -r before _ < <(store_objects "$kind" "$url" | awk '{print $2}')
  timed "$id" "${pin[@]}" "$asrimg" backup "$dev" -o "$url" --volumes "$root_part" --level "$level" --host bench --json "$@"
  python3 - "$work/$id.json" >>"$rows" "$id" "$round" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
s, g = j["store"], j["stages"]
vals = {"read_bytes": j["read_bytes"], "seconds": j["seconds"], "threads": j["threads"],
        "new_bytes": j["new_bytes"], "dedup_bytes": j["dedup_bytes"], "zero_bytes": j["zero_bytes"],
        "found_bytes": s["found_bytes"], "added_bytes": s["added_bytes"], "added_chunks": s["added_chunks"],
        "packs": s["packs"], "requests": s["requests"], "hash_cpu": g["hash_cpu_seconds"],
        "read_wait": g["read_wait_seconds"], "compress_cpu": g["compress_cpu_seconds"],
        "scan_cpu": g["scan_cpu_seconds"], "chunk_seconds": g["chunk_seconds"],
        "write_seconds": g["write_seconds"], "hinted_bytes": s["hinted_bytes"],
        "hint_cpu": g["hint_check_cpu_seconds"], "patched_chunks": s["patched_chunks"],
        "patched_bytes": s["patched_bytes"]}
for k, v in vals.items():
    print("%s\t%s\t%s\t%s" % (sys.argv[2], sys.argv[3], k, v))
EOF
  local objs
  objs=$(store_objects "$kind" "$url")
  read -r n b packs index snaps <<<"$objs"
  rec "$id" objects "$n"
  rec "$id" store_bytes "$b"
  rec "$id" grew "$((b - before))"
  rec "$id" obj_packs "$packs"
  rec "$id" obj_index "$index"
  rec "$id" obj_snapshots "$snaps"
}

# restore_row ID REF [OPTION...]: a timed restore of REF to a new file; round 1 checks it against
# the disk in restored_from (LAYOUT DISK: the changed disk unless set otherwise).
restored_from=("$work/check-layout.json" "$work/changed.img")
pin=() # the command that runs asrimg on the CPUs of the own-core rows, while they run
restore_row() {
  local id=$1 ref=$2
  shift 2
  rm -f "$work/restored.img"
  timed "$id" "${pin[@]}" "$asrimg" restore "$ref" --to "$work/restored.img" --yes --json "$@"
  if [ "$round" = 1 ]; then
    "$here/restored.py" "${restored_from[@]}" "$work/restored.img" >/dev/null ||
      die "$id: the restored disk is not ${restored_from[1]}"
  fi
  rm -f "$work/restored.img"
}

# limit ID: the cold I/O limit, fio replaying asrimg's reads of the root (run.sh's same-extents
# limit): its rate over the replayed bytes.
limit() {
  timed "$1" fio --name=extents --ioengine="$fio_engine" --direct=1 --iodepth=16 --read_iolog="$work/extents.iolog" \
    --replay_no_stall=1 --output-format=json --output="$work/fio.json"
  rec "$1" rate "$(python3 -c '
import json, sys
print(json.load(open(sys.argv[1]))["jobs"][0]["read"]["bw_bytes"])' "$work/fio.json")"
}

kinds=(dir)
[ "$s3" = 1 ] && kinds+=(s3)
s3_threads=${BENCH_S3_THREADS:-8}
cpus=$(nproc)
own_core=${BENCH_OWN_CORE:-1}
[ "$s3" = 1 ] && [ "$cpus" -ge 2 ] || own_core=0
diag_chunk=${BENCH_DIAG_CHUNK:-64K}
for round in $(seq "$runs"); do
  say "round $round of $runs"
  # asrimg's own read-only pass, for reference.
  timed abench "$asrimg" bench "$disk_dev" --volumes "$root_part" --level 0 --json
  rec abench rate "$(python3 -c '
import json, sys
print(json.load(open(sys.argv[1]))["read_mb_per_s"] * 1e6)' "$work/abench.json")"
  # Each store's rows, the two stores taking turns at going first; the limit runs just before the
  # re-backup it is held against (both read the same blocks just after the first backup did).
  order=("${kinds[@]}")
  [ $((round % 2)) = 1 ] || [ ${#kinds[@]} = 1 ] || order=(s3 dir)
  for kind in "${order[@]}"; do
    if [ "$kind" = dir ]; then url=$work/dirstore-$round; else url=s3://bench/r$round; fi
    export ASRIMG_STORE_KEY_FILE=$work/$kind-$round.key
    "$asrimg" store init "$url" >/dev/null 2>"$work/init.err" || die "store init $url: $(tail -2 "$work/init.err")"
    backup_row "$kind-first" "$kind" "$url" "$disk_dev"
    limit "limit-$kind"
    backup_row "$kind-again" "$kind" "$url" "$disk_dev"
    # The same re-backup without hints (directory store): what they save, in the same round.
    if [ "$kind" = dir ]; then
      limit "limit-nohints"
      backup_row "dir-nohints" "$kind" "$url" "$disk_dev" --no-hints
    fi
    # What the re-backup's snapshot object holds: the layout's raw regions (stored as they are,
    # SPEC.md section 5), the chunk table and store ids, the extents.
    "$asrimg" info "$url::bench/latest" --json >"$work/snap.json"
    python3 - "$work/snap.json" "$kind-again" "$round" >>"$rows" <<'EOF2'
import json, sys
j = json.load(open(sys.argv[1]))
v = {"snap_bytes": j["image_bytes"], "snap_chunks": j["chunks"], "snap_extents": sum(x["extents"] for x in j["volumes"]),
     "snap_raw": sum(r["length"] for d in j["disks"] for r in d["raw_regions"])}
for k, x in v.items():
    print("%s\t%s\t%s\t%s" % (sys.argv[2], sys.argv[3], k, x))
EOF2
    backup_row "$kind-changed" "$kind" "$url" "$chg_dev"
    restore_row "$kind-restore" "$url::bench/latest"
    # Diagnostic, round 1 only: the same S3 restore with more decoding threads (they share the
    # pack windows and their fetches ahead).
    if [ "$kind" = s3 ] && [ "$round" = 1 ] && [ "$s3_threads" != 0 ]; then
      restore_row "s3-restore-t" "$url::bench/latest" --threads "$s3_threads"
    fi
  done
  # Diagnostic, round 1 only: the first and the changed backup with smaller chunks, into a
  # directory store of their own: how much of what the change adds is the chunks' granularity.
  if [ "$round" = 1 ] && [ "$diag_chunk" != 0 ]; then
    url=$work/dirstore-avg
    export ASRIMG_STORE_KEY_FILE=$work/avg.key
    "$asrimg" store init "$url" >/dev/null 2>"$work/init.err" || die "store init $url: $(tail -2 "$work/init.err")"
    backup_row avg-first dir "$url" "$disk_dev" --avg-chunk "$diag_chunk"
    backup_row avg-changed dir "$url" "$chg_dev" --avg-chunk "$diag_chunk"
    rm -rf "$url"
  fi
  # The own-core rows: the first backup and its restore again, Swift's servers on the last CPU and
  # asrimg on the others, in both stores (both kinds alike, so their ratio is the client's).
  if [ "$own_core" = 1 ]; then
    swift_pin "$((cpus - 1))"
    pin=(taskset -c "0-$((cpus - 2))")
    restored_from=("$work/check-layout-disk.json" "$disk")
    for kind in "${order[@]}"; do
      if [ "$kind" = dir ]; then url=$work/dirstore-own; else url=s3://bench/own$round; fi
      export ASRIMG_STORE_KEY_FILE=$work/$kind-own-$round.key
      "$asrimg" store init "$url" >/dev/null 2>"$work/init.err" || die "store init $url: $(tail -2 "$work/init.err")"
      backup_row "$kind-own-first" "$kind" "$url" "$disk_dev"
      restore_row "$kind-own-restore" "$url::bench/latest"
      [ "$kind" = s3 ] || rm -rf "$url"
    done
    swift_pin "0-$((cpus - 1))"
    pin=()
    restored_from=("$work/check-layout.json" "$work/changed.img")
  fi
  unset ASRIMG_STORE_KEY_FILE
  # The single-file image of the changed disk, and its restore.
  rm -f "$work/image.asrimg"
  timed file-backup "$asrimg" backup "$chg_dev" -o "$work/image.asrimg" --volumes "$root_part" --level "$level" --json
  rec file-backup read_bytes "$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["read_bytes"])' "$work/file-backup.json")"
  rec file-backup image_bytes "$(stat -c %s "$work/image.asrimg")"
  restore_row file-restore "$work/image.asrimg"
  rm -rf "$work/dirstore-$round"
done
"$asrimg" info "$work/image.asrimg" --json >"$work/info.json"
captured=$(python3 -c '
import json, sys
print(sum(v["data_bytes"] + v["zero_bytes"] for v in json.load(open(sys.argv[1]))["volumes"]))' "$work/info.json")

times >"$work/times"
{
  bench_facts "$fio_engine"
  echo "level=$level"
  echo "runs=$runs"
  echo "root_mib=$root_mib"
  echo "root_part=$root_part"
  echo "root_size=$root_size"
  echo "loop_dio=$loop_dio"
  echo "used_bytes=$used_bytes"
  echo "replay_reads=$replay_reads"
  echo "replay_bytes=$replay_bytes"
  echo "captured=$captured"
  echo "change_pct=$change_pct"
  echo "files_total=$files_total"
  echo "bytes_total=$bytes_total"
  echo "files_changed=$files_changed"
  echo "bytes_changed=$bytes_changed"
  echo "changed_zstd=$changed_zstd"
  echo "s3=$s3"
  echo "s3_threads=$s3_threads"
  echo "own_core=$own_core"
  echo "cpus=$cpus"
  echo "diag_chunk=$diag_chunk"
  echo "blocks_changed=$blocks_changed"
  echo "blocks_zstd=$blocks_zstd"
  echo "swift=$(dpkg-query -W -f='${Version}' swift 2>/dev/null || echo '?')"
  echo "disk_params=$(cat "$disk.params")"
  bench_clock_facts "$work/times"
  echo "command=$command_line"
} >"$work/facts"

python3 - "$work/facts" "$rows" >"$work/section.md" <<'EOF'
import statistics, sys, time
facts = dict(l.rstrip("\n").split("=", 1) for l in open(sys.argv[1]) if "=" in l)
rows = {}  # id -> key -> {round: value}
for l in open(sys.argv[2]):
    i, r, k, v = l.rstrip("\n").split("\t")
    rows.setdefault(i, {}).setdefault(k, {})[r] = float(v)
MiB = 2**20
def vals(i, k): return list(rows[i][k].values())
def med(i, k): return statistics.median(vals(i, k))
def has(i): return i in rows
def per_round(f, *ids):
    """f over the rounds every id has, as a list."""
    rs = set.intersection(*(set(rows[i]["secs"]) for i in ids))
    return [f(r) for r in sorted(rs)]
def rng(xs, fmt):
    return fmt % min(xs) if min(xs) == max(xs) else (fmt + "–" + fmt) % (min(xs), max(xs))
def rate(i, r):  # the bytes the backup read over the command's wall time, MB/s
    return rows[i]["read_bytes"][r] / rows[i]["secs"][r] / 1e6
def data_rate(i, r):  # the same over asrimg's own clock of its data phase
    return rows[i]["read_bytes"][r] / rows[i]["seconds"][r] / 1e6
used, cap = int(facts["used_bytes"]), int(facts["captured"])
def limit_used(kind, r):  # the used bytes over fio's time for the replay (which reads the gaps too), MB/s
    return used / (int(facts["replay_bytes"]) / rows[f"limit-{kind}"]["rate"][r]) / 1e6
kinds = ["dir"] + (["s3"] if facts["s3"] == "1" else [])
kname = {"dir": "directory store", "s3": "S3 store (Swift, localhost)"}
runs = facts["runs"]

out = []
title = f"## Chunk store (issue 18): {facts['root_mib']} MiB ext4 root, zstd level {facts['level']}, median of {runs} runs"
out += [title + time.strftime(" (%Y-%m-%d %H:%M UTC)", time.gmtime()), ""]
out += [f"`{facts['command']}`. The root alone (`--volumes {facts['root_part']}`, {used:,} used bytes), into a new "
        f"directory store and a new S3 store (`s3://bench/rN`, OpenStack Swift {facts['swift']} with s3api on localhost, "
        f"`tests/s3/swift_env.sh`: each server one process, memcached behind the proxy, one replica, its disk the bench directory's) every round; page cache "
        f"dropped before every row. Backup MB/s: the bytes it read (`--json` read_bytes, the used bytes) over the "
        f"command's wall time, start, map step and snapshot upload included (in brackets: over asrimg's own `seconds`, the "
        f"data phase); restore MB/s: the image's captured bytes ({cap:,}) over wall time. \"Store grew\": what the store's "
        f"objects add up to after the backup less before (packs, index objects, the snapshot, as the backend lists them), "
        f"beside `--json` store.added_bytes (the new chunks' stored bytes).", ""]
out += ["- Machine: %s, %s cores, %s RAM, %s; storage %s; load %s; CPU time meanwhile: %s core-seconds outside the "
        "script's processes (Swift's servers, in sessions of their own, among them: see below; and the loop devices' "
        "kernel threads), its own %s, over %s s" % (facts["cpu"], facts["cores"], facts["ram"], facts["kernel"],
        facts["storage"], facts["load"], *facts["other_cpu"].split(), facts["script_seconds"]),
        "- Tools: %s; %s; zstd %s; loop devices with direct I/O: %s" % (facts["asrimg"], facts["fio"], facts["zstd"], facts["loop_dio"]),
        "- Disk: `bench/mkdisk.sh` (%s)" % facts["disk_params"], ""]

# The I/O limit.
lim = [limit_used(k, r) for k in kinds for r in sorted(rows[f"limit-{k}"]["rate"])]
ab = [x / 1e6 for x in vals("abench", "rate")]
out += ["| row | median | range | MB/s | notes |", "| --- | --- | --- | --- | --- |"]
out.append(f"| cold I/O limit: fio replay of asrimg's {int(facts['replay_reads']):,} reads of the root "
           f"(io_uring, O_DIRECT, 16 in flight), just before each re-backup | {statistics.median(used / x / 1e6 for x in lim):.2f} s "
           f"| {rng(lim, '%.0f')} MB/s | **{statistics.median(lim):.0f}** | used bytes over fio's own time for "
           f"its {int(facts['replay_bytes']):,} bytes (gaps read through); each backup row is held against the one of "
           f"its store and round |")
out.append(f"| `asrimg bench --json` read-only pass, cold | {statistics.median(vals('abench', 'secs')):.2f} s (the whole "
           f"command, with its level-0 pipeline pass) | {rng(ab, '%.0f')} MB/s | {statistics.median(ab):.0f} | asrimg's own "
           f"reader, same reads; for reference |")
out.append("")

# Backups.
out += ["| backup, cold | store | median s | MB/s [data phase] | range MB/s | × I/O limit (same round) | store.added_bytes | "
        "store grew | added chunks | packs | requests | objects after | hash CPU s | chunking CPU s | read wait s | compress CPU s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
what = {"first": "first, into the empty store", "again": "again, unchanged disk (with hints)",
        "nohints": "again, unchanged disk, `--no-hints`", "changed": f"after changing {facts['change_pct']}% of the files"}
for kind in kinds:
    for step in ("first", "again", "nohints", "changed"):
        i = f"{kind}-{step}"
        if not has(i):
            continue
        rates = per_round(lambda r: rate(i, r), i)
        drates = per_round(lambda r: data_rate(i, r), i)
        xl = per_round(lambda r: rate(i, r) / limit_used(kind, r), i, f"limit-{kind}")
        m = lambda k, f="%.0f": f % med(i, k)
        out.append(f"| {what[step]} | {kind} | {med(i, 'secs'):.2f} | {statistics.median(rates):.0f} "
                   f"[{statistics.median(drates):.0f}] | {rng(rates, '%.0f')} | {statistics.median(xl):.2f} | "
                   f"{med(i, 'added_bytes') / MiB:.2f} MiB | {med(i, 'grew') / MiB:.2f} MiB | {m('added_chunks')} | "
                   f"{m('packs')} | {m('requests')} | {m('objects')} | {med(i, 'hash_cpu'):.2f} | {med(i, 'scan_cpu'):.2f} | {med(i, 'read_wait'):.2f} | "
                   f"{med(i, 'compress_cpu'):.2f} |")
fb = per_round(lambda r: rows["file-backup"]["read_bytes"][r] / rows["file-backup"]["secs"][r] / 1e6, "file-backup")
out.append(f"| single-file image (`-o FILE`) of the changed disk | — | {med('file-backup', 'secs'):.2f} | "
           f"{statistics.median(fb):.0f} | {rng(fb, '%.0f')} | — | image {med('file-backup', 'image_bytes') / MiB:.1f} MiB "
           f"| | | | | | | | | |")
out.append("")

# Restores.
out += ["| restore of the changed disk's image to a new file, cold | median s | MB/s (captured) | range MB/s | × single-file |",
        "| --- | ---: | ---: | ---: | ---: |"]
rr = lambda i: per_round(lambda r: cap / rows[i]["secs"][r] / 1e6, i)
fr = statistics.median(rr("file-restore"))
out.append(f"| single-file image (`backup -o FILE`) | {med('file-restore', 'secs'):.2f} | {fr:.0f} | {rng(rr('file-restore'), '%.0f')} | 1.00 |")
for kind in kinds:
    i = f"{kind}-restore"
    x = per_round(lambda r: rows["file-restore"]["secs"][r] / rows[i]["secs"][r], i, "file-restore")
    out.append(f"| {kname[kind]}, `STORE::bench/latest` | {med(i, 'secs'):.2f} | {statistics.median(rr(i)):.0f} | "
               f"{rng(rr(i), '%.0f')} | {statistics.median(x):.2f} |")
if has("s3-restore-t"):
    i = "s3-restore-t"
    x = per_round(lambda r: rows["file-restore"]["secs"][r] / rows[i]["secs"][r], i, "file-restore")
    out.append(f"| the same S3 restore with `--threads {facts['s3_threads']}` (diagnostic, round 1 only: more decoding "
               f"threads sharing the same windows) | {med(i, 'secs'):.2f} | {statistics.median(rr(i)):.0f} | "
               f"{rng(rr(i), '%.0f')} | {statistics.median(x):.2f} |")
out.append("")
out.append("Every restored file was checked in round 1 against the changed disk by `bench/restored.py` (the partition "
           "table and every used extent of the root, byte for byte)" + (", the own-core rows' against the disk" if has("s3-own-first") else "") + ".")
out.append("")

# The own-core rows: both backends with Swift on a CPU of its own.
own_rows = has("s3-own-first") and has("dir-own-first")
if own_rows:
    ncpu = int(facts["cpus"])
    asr_cpus = "CPU 0" if ncpu == 2 else f"CPUs 0–{ncpu - 2}"
    out += [f"With the S3 server on a CPU of its own: Swift's servers (memcached too) on CPU {ncpu - 1} and asrimg on "
            f"{asr_cpus} (`taskset`), the first backup of the disk into a new store of each kind and the restore of that "
            f"snapshot, every round, as a server on a machine of its own takes no CPU from its clients; both stores alike, "
            f"so the ratio is what the two backends cost asrimg.", "",
            "| row, cold | directory store s | S3 store s | range s (dir / S3) | S3 / directory (same round) | Swift CPU s |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for step, label in (("first", "first backup, into the empty store"), ("restore", "restore of that snapshot to a new file")):
        d, s3r = f"dir-own-{step}", f"s3-own-{step}"
        x = per_round(lambda r: rows[d]["secs"][r] / rows[s3r]["secs"][r], d, s3r)
        out.append(f"| {label} | {med(d, 'secs'):.2f} | {med(s3r, 'secs'):.2f} | {rng(vals(d, 'secs'), '%.2f')} / "
                   f"{rng(vals(s3r, 'secs'), '%.2f')} | {statistics.median(x) * 100:.0f}% ({rng([v * 100 for v in x], '%.0f')}%) | "
                   f"{med(s3r, 'swift_cpu'):.1f} |")
    out.append("")

# Facts against the targets.
def verdict(ok): return "met" if ok else "**NOT met**"
facts_out = []
for kind in kinds:
    i = f"{kind}-again"
    xl = per_round(lambda r: rate(i, r) / limit_used(kind, r), i, f"limit-{kind}")
    xd = per_round(lambda r: data_rate(i, r) / limit_used(kind, r), i, f"limit-{kind}")
    xa = per_round(lambda r: rate(i, r) / (rows["abench"]["rate"][r] / 1e6), i, "abench")
    thr = med(i, "threads")
    hash_core, scan_core = med(i, "hash_cpu") / thr, med(i, "scan_cpu") / thr
    io_s = statistics.median(used / limit_used(kind, r) / 1e6 for r in rows[f"limit-{kind}"]["rate"])
    snap = med(i, "snap_bytes")
    facts_out.append(
        f"- Re-backup of the unchanged disk, {kname[kind]}: {statistics.median(xl) * 100:.0f}% of the cold I/O limit "
        f"(same-round median; {rng([x * 100 for x in xl], '%.0f')}%), target at least 90%: {verdict(statistics.median(xl) >= 0.9)}; "
        f"over its data phase alone (asrimg's `seconds`, without start, map step and commit) {statistics.median(xd) * 100:.0f}%. "
        f"Against asrimg's own read-only pass of the same reads (`asrimg bench`, a second reference, since fio's replay "
        f"at 16 in flight {'reads slower than asrimg' if statistics.median(ab) > statistics.median(lim) else 'is the faster'} "
        f"in this run) the command ran at {statistics.median(xa) * 100:.0f}%. "
        f"It added {med(i, 'added_bytes') / MiB:.2f} MiB of chunks and the store grew by {med(i, 'grew') / MiB:.2f} MiB, "
        f"target at most 1 MiB: {verdict(med(i, 'grew') <= MiB)} (the added chunks alone: "
        f"{verdict(med(i, 'added_bytes') <= MiB)}). What it grew by is the snapshot object, {snap:,.0f} bytes: "
        f"{med(i, 'snap_raw'):,.0f} bytes of the layout's raw regions (mostly the 1 MiB gap before the first partition, all "
        f"zeros here, kept as it is: sections are not compressed, SPEC.md section 5), {med(i, 'snap_chunks'):,.0f} chunks at 64 "
        f"bytes (chunk table entry and store id) and {med(i, 'snap_extents'):,.0f} extents at 32 (index entries: a snapshot "
        f"has no extent records, SPEC.md 19.6). Hashing (XXH3 and the store's HMAC-SHA-256 of every chunk) took {med(i, 'hash_cpu'):.2f} CPU seconds on "
        f"{thr:.0f} threads, {hash_core:.2f} s a core, against {io_s:.2f} s for the I/O limit to read the same bytes: "
        f"{'it fits beside the reads (off the critical path)' if hash_core < io_s else 'more than the reads take: on the critical path'}; "
        f"with the content-defined chunking ({scan_core:.2f} s a core) the workers' CPU is {hash_core + scan_core:.2f} s a "
        f"core, {'more than' if hash_core + scan_core > io_s else 'less than'} the reads take: "
        f"{'on ' + format(thr, '.0f') + ' cores the re-backup is CPU-bound, at best ' + format(100 * io_s / (hash_core + scan_core), '.0f') + '% of the limit with every stage overlapped, before start, map step and commit' if hash_core + scan_core > io_s else 'the CPU work fits beside the reads'}; "
        f"the data phase took {med(i, 'seconds'):.2f} s, in which the producer thread waited "
        f"{med(i, 'read_wait'):.2f} s for reads and spent {med(i, 'chunk_seconds'):.2f} s of CPU on zero detection and "
        f"chunking (one thread), and the ordered writer {med(i, 'write_seconds'):.2f} s; the command took "
        f"{med(i, 'secs'):.2f} s. Hints (SPEC.md 19.10) covered {med(i, 'hinted_bytes') / 1e6:,.0f} MB of the "
        f"{med(i, 'read_bytes') / 1e6:,.0f} MB read, checked with {med(i, 'hint_cpu'):.2f} CPU s of XXH3 on the reading "
        f"thread; the hashing and chunking above is what they left.")
if has("dir-nohints"):
    i = "dir-nohints"
    xl = per_round(lambda r: rate(i, r) / limit_used("nohints", r), i, "limit-nohints")
    x = per_round(lambda r: rows[i]["secs"][r] / rows["dir-again"]["secs"][r], i, "dir-again")
    facts_out.append(
        f"- The same re-backup into the directory store with `--no-hints`, in the same rounds: "
        f"{statistics.median(xl) * 100:.0f}% of the cold I/O limit measured just before it ({rng([v * 100 for v in xl], '%.0f')}%), "
        f"{med(i, 'secs'):.2f} s; hashing {med(i, 'hash_cpu'):.2f} CPU s and chunking {med(i, 'scan_cpu'):.2f} s; "
        f"with hints the command is {statistics.median(x):.2f}x as fast.")
cz = int(facts["changed_zstd"])
# What the change itself added to the store: the changed backup's growth less the unchanged
# re-backup's (a snapshot object of the whole disk, which any re-backup adds and whose target is
# the unchanged row's), so its packs, index object and the snapshot's own growth with it.
def own(k):
    return med(f'{k}-changed', 'grew') - med(f'{k}-again', 'grew')
added = "; ".join(f"the {kname[k]} backup added {med(f'{k}-changed', 'added_bytes') / MiB:.2f} MiB of chunks "
                  f"({med(f'{k}-changed', 'added_bytes') / cz:.2f}x) and the store grew {med(f'{k}-changed', 'grew') / MiB:.2f} MiB "
                  f"({med(f'{k}-changed', 'grew') / cz:.2f}x), {own(k) / MiB:.2f} MiB more than for the unchanged re-backup "
                  f"({own(k) / cz:.2f}x: the change's own chunks, pack and index entries and snapshot growth), "
                  f"target within 1.2x: {verdict(own(k) <= 1.2 * cz)}"
                  for k in kinds)
line = (f"- After changing {int(facts['files_changed']):,} of {int(facts['files_total']):,} files "
        f"({100 * int(facts['files_changed']) / int(facts['files_total']):.2f}% by count; {int(facts['bytes_changed']):,} of "
        f"{int(facts['bytes_total']):,} bytes, {100 * int(facts['bytes_changed']) / int(facts['bytes_total']):.2f}%), rewritten in "
        f"place through a read-write loop mount (bench/README.md), whose new content is {cz / MiB:.2f} MiB as "
        f"`tar | zstd -3 | wc -c`: {added}. The root's used 4 KiB blocks that differ from the disk's (the files' and the "
        f"metadata the kernel wrote: inode times, bitmaps, the superblocks; not the journal's log, which is not read when the journal is empty) are {int(facts['blocks_changed']) / MiB:.2f} MiB, "
        f"{int(facts['blocks_zstd']) / MiB:.2f} MiB as zstd -3. Of the chunks in which a byte changed, "
        f"{med('dir-changed', 'patched_chunks'):.0f} were kept as patches (SPEC.md 19.10: their "
        f"{med('dir-changed', 'patched_bytes') / MiB:.2f} MiB of changed 4 KiB blocks stored as chunks of their own, the "
        f"rest left in the chunks they were); the others, more than half changed or not recorded in the hints (a chunk "
        f"ended by a zero run, or new data where a zero run was), were stored whole: "
        f"{med('dir-changed', 'added_chunks'):.0f} chunks added in all, for {int(facts['files_changed']):,} files "
        f"scattered over the disk.")
if has("avg-changed"):
    line += (f" With `--avg-chunk {facts['diag_chunk']}` (diagnostic, round 1, a directory store of its own, first "
             f"backup {med('avg-first', 'added_bytes') / MiB:.0f} MiB in {med('avg-first', 'added_chunks'):.0f} chunks) "
             f"the same change added {med('avg-changed', 'added_bytes') / MiB:.2f} MiB in {med('avg-changed', 'added_chunks'):.0f} "
             f"chunks ({med('avg-changed', 'added_bytes') / cz:.2f}x).")
facts_out.append(line)
if "s3" in kinds:
    for step, label in (("first", "first backup"), ("again", "re-backup of the unchanged disk"), ("changed", "backup after the change")):
        x = per_round(lambda r: rows[f"dir-{step}"]["secs"][r] / rows[f"s3-{step}"]["secs"][r], f"dir-{step}", f"s3-{step}")
        facts_out.append(f"- S3 against the directory store, {label}: {statistics.median(x) * 100:.0f}% of its speed "
                         f"(same-round median, {rng([v * 100 for v in x], '%.0f')}%), target at least 80%: "
                         f"{verdict(statistics.median(x) >= 0.8)}; {med(f's3-{step}', 'requests'):.0f} requests against "
                         f"{med(f'dir-{step}', 'requests'):.0f}.")
    x = per_round(lambda r: rows["dir-restore"]["secs"][r] / rows["s3-restore"]["secs"][r], "dir-restore", "s3-restore")
    facts_out.append(f"- S3 against the directory store, restore: {statistics.median(x) * 100:.0f}% of its speed "
                     f"({rng([v * 100 for v in x], '%.0f')}%), target at least 80%: {verdict(statistics.median(x) >= 0.8)}. "
                     f"A restore reads the packs in windows of up to 17 MiB, fetched ahead by two threads from the chunks "
                     f"the restore says it reads next (`store/windows.c`, SPEC.md 19.5): about one GET a pack; {med('s3-restore', 'secs'):.1f} s, "
                     f"while Swift's servers used {med('s3-restore', 'swift_cpu'):.1f} CPU seconds on the same cores"
                     + (f"; with `--threads {facts['s3_threads']}` {med('s3-restore-t', 'secs'):.1f} s (Swift "
                        f"{med('s3-restore-t', 'swift_cpu'):.1f} CPU seconds)" if has("s3-restore-t") else "")
                     + ".")
    facts_out.append(f"- Swift's servers' CPU during the S3 backups (they share the 2 cores with asrimg's compression): "
                     f"first {med('s3-first', 'swift_cpu'):.1f} s against asrimg's {med('s3-first', 'compress_cpu') + med('s3-first', 'hash_cpu'):.1f} s "
                     f"of compression and hashing, again {med('s3-again', 'swift_cpu'):.1f} s, changed {med('s3-changed', 'swift_cpu'):.1f} s.")
    if own_rows:
        for step, label in (("first", "first backup"), ("restore", "restore")):
            x = per_round(lambda r: rows[f"dir-own-{step}"]["secs"][r] / rows[f"s3-own-{step}"]["secs"][r],
                          f"dir-own-{step}", f"s3-own-{step}")
            facts_out.append(f"- S3 against the directory store with the S3 server on a CPU of its own (above), {label}: "
                             f"{statistics.median(x) * 100:.0f}% of its speed (same-round median, "
                             f"{rng([v * 100 for v in x], '%.0f')}%), target at least 80%: {verdict(statistics.median(x) >= 0.8)}.")
    facts_out.append(f"- Objects after the first backup (SPEC.md 19.9): {med('s3-first', 'objects'):.0f} in the S3 store "
                     f"({med('s3-first', 'obj_packs'):.0f} packs, {med('s3-first', 'obj_index'):.0f} index objects, "
                     f"{med('s3-first', 'obj_snapshots'):.0f} snapshot, and config), {med('dir-first', 'objects'):.0f} in the "
                     f"directory store, for {used / MiB:.0f} MiB of used bytes and {med('dir-first', 'added_chunks'):.0f} chunks.")
out += facts_out + [""]
print("\n".join(out))
EOF
python3 "$here/results_merge.py" "$results" "## Chunk store (issue 18): $root_mib MiB " "$work/section.md"
say "results written to $results"
