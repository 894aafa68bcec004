#!/usr/bin/env bash
# End-to-end checks of the chunk store on a directory (SPEC.md section 19), on real filesystems:
#   - store init; backup -o STORE; store list; restore, verify, info and mount of STORE::HOST/TIME:
#     the restored disk fsck-clean with every file equal to its source;
#   - a re-backup of the unchanged disk adds almost nothing; after changing some files, about what
#     changed;
#   - export to an image file and import back: the same disk either way, and import adds nothing;
#     import into a new store (zstd and stored records kept as they are) restores the same disk;
#   - a key of another store refused; a damaged and a missing chunk named with their snapshots;
#   - prune --keep-last, then gc in two steps; a backup running across a gc (stopped with SIGSTOP
#     while gc condemns and tries to delete) still restores; two backups and a gc at once;
#   - kill -9 of a backup at random moments: no snapshot appears, the store verifies clean, and
#     the next backup reuses what was uploaded; kill -9 of gc: the store still verifies clean.
# Usage: store_test.sh ASRIMG
set -u
asrimg=$1
skip_all() { echo "SKIP: $1"; echo "store_cli: 0 passed, 0 failed, 1 skipped"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip_all "needs root (loop mounts)"
for tool in sfdisk mkfs.ext4 mkfs.vfat mcopy e2fsck python3 cmp mount losetup; do
  command -v "$tool" >/dev/null || skip_all "$tool not installed"
done

work=$(mktemp -d /tmp/asrimg-store-XXXXXX)
mkdir -p "$work/mnt"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null; kill -9 "$p" 2>/dev/null; done
  umount "$work/mnt" 2>/dev/null
  fusermount3 -u -z "$work/fuse" 2>/dev/null
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
export MTOOLS_SKIP_CHECK=1 TMPDIR=$work ASRIMG_CACHE_DIR=$work/cache

# shellcheck source=tests/store_lib.sh
. "$(dirname "$0")/store_lib.sh"

make_disk "$work/a.img" a || exit 1
make_disk "$work/b.img" b || exit 1
store=$work/store key=$work/store.key
export ASRIMG_STORE_KEY_FILE=$key

# ---- init, backup, list, restore -------------------------------------------------------------
check "store init: exits 0, key written 0600" sh -c "'$asrimg' store init '$store' --store-key '$key' && [ \"\$(stat -c %a '$key')\" = 600 ]"
check "store init again: refused" sh -c "! '$asrimg' store init '$store' --store-key '$work/other.key'"
check "backup into the store" sh -c "'$asrimg' backup '$work/a.img' --volumes all -o '$store' --host pca --json >'$work/b1.json'"
snap1=$(json_get "$work/b1.json" 'j["store"]["snapshot"]')
added1=$(json_get "$work/b1.json" 'j["store"]["added_bytes"]')
check "backup: the snapshot is HOST/TIME" sh -c "echo '$snap1' | grep -Eq '^pca/[0-9]{8}T[0-9]{6}Z$'"
check "backup: the random data was added (>= 48 MiB)" test "$added1" -ge $((48 << 20))
check "store list: one snapshot" sh -c "'$asrimg' store list '$store' --json >'$work/l.json' && [ \"\$(python3 -c 'import json;print(len(json.load(open(\"$work/l.json\"))[\"snapshots\"]))')\" = 1 ]"
check "restore STORE::SNAPSHOT: fsck clean, files equal" restore_ok "$store::$snap1" a
check "verify STORE::SNAPSHOT" "$asrimg" verify "$store::$snap1"
check "verify STORE::SNAPSHOT read every chunk's stored bytes from the store, as list counts them" sh -c "'$asrimg' verify '$store::$snap1' --json >'$work/v1.json' && python3 -c 'import json; v=json.load(open(\"$work/v1.json\")); l=json.load(open(\"$work/l.json\"))[\"snapshots\"][0]; assert v[\"chunks\"] == l[\"chunks\"] and v[\"store_bytes_checked\"] == l[\"stored_bytes\"] > 0, (v, l)'"
check "info STORE::HOST/latest names the snapshot" sh -c "'$asrimg' info '$store::${snap1%%/*}/latest' | grep -q '${snap1#*/}'"

# ---- re-backup: unchanged, then changed --------------------------------------------------------
sleep 1 # snapshots are named to the second
check "re-backup of the unchanged disk" sh -c "'$asrimg' backup '$work/a.img' --volumes all -o '$store' --host pca --json >'$work/b2.json'"
added2=$(json_get "$work/b2.json" 'j["store"]["added_bytes"]')
check "unchanged: at most 1 MiB added ($added2)" test "$added2" -le $((1 << 20))
mount -o loop,offset=$ROOT_OFF,sizelimit=$ROOT_SIZE "$work/a.img" "$work/mnt" && {
  head -c $((2 << 20)) /dev/urandom >"$work/mnt/data/new.bin"; cp "$work/mnt/data/new.bin" "$work/content-a/data/new.bin"
  umount "$work/mnt"; }
sleep 1
check "re-backup after a 2 MiB change" sh -c "'$asrimg' backup '$work/a.img' --volumes all -o '$store' --host pca --json >'$work/b3.json'"
added3=$(json_get "$work/b3.json" 'j["store"]["added_bytes"]')
snap3=$(json_get "$work/b3.json" 'j["store"]["snapshot"]')
check "changed: 2 MiB to 4 MiB added ($added3)" sh -c "[ $added3 -ge $((2 << 20)) ] && [ $added3 -le $((4 << 20)) ]"
check "restore of the changed snapshot" restore_ok "$store::$snap3" a

# ---- export and import ------------------------------------------------------------------------
check "export to an image file" "$asrimg" export "$store::$snap3" -o "$work/exported.asrimg"
check "the exported file verifies" "$asrimg" verify "$work/exported.asrimg"
cp "$work/target.img" "$work/from-store.img"
check "the exported file restores the same disk" sh -c "rm -f '$work/target.img'; truncate -s 300M '$work/target.img'; '$asrimg' restore '$work/exported.asrimg' --to '$work/target.img' --yes && cmp '$work/target.img' '$work/from-store.img'"
sleep 1
packs_before=$(find "$store/packs" -type f | wc -l)
check "import adds a snapshot" sh -c "'$asrimg' import '$work/exported.asrimg' '$store' --host pca --json >'$work/i.json' && '$asrimg' store list '$store' --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)[\"snapshots\"]))' | grep -qx 4"
check "import: no pack added" test "$(find "$store/packs" -type f | wc -l)" = "$packs_before"
check "the imported snapshot restores" restore_ok "$store::${snap1%%/*}/latest" a
# Into a store that holds none of it: the file's records go in as they are (zstd and, from a level 0
# image, stored ones), each with its content hash under that store's seed.
check "import into a new store: its records read and check" sh -c "'$asrimg' store init '$work/store2' --store-key '$work/store2.key' >/dev/null && ASRIMG_STORE_KEY_FILE='$work/store2.key' '$asrimg' import '$work/exported.asrimg' '$work/store2' --host pce && ASRIMG_STORE_KEY_FILE='$work/store2.key' '$asrimg' store verify '$work/store2' --read-data"
check "the new store's snapshot restores the same disk" sh -c "rm -f '$work/target.img'; truncate -s 300M '$work/target.img'; ASRIMG_STORE_KEY_FILE='$work/store2.key' '$asrimg' restore '$work/store2::pce/latest' --to '$work/target.img' --yes && cmp '$work/target.img' '$work/from-store.img'"
check "a level 0 image imports and restores the same disk" sh -c "'$asrimg' backup '$work/a.img' --volumes all --level 0 -o '$work/level0.asrimg' && ASRIMG_STORE_KEY_FILE='$work/store2.key' '$asrimg' import '$work/level0.asrimg' '$work/store2' --host pcf && ASRIMG_STORE_KEY_FILE='$work/store2.key' '$asrimg' store verify '$work/store2' --read-data && rm -f '$work/target.img' && truncate -s 300M '$work/target.img' && ASRIMG_STORE_KEY_FILE='$work/store2.key' '$asrimg' restore '$work/store2::pcf/latest' --to '$work/target.img' --yes && cmp '$work/target.img' '$work/from-store.img'"
rm -rf "$work/store2" "$work/level0.asrimg"

# ---- another key, damage -----------------------------------------------------------------------
"$asrimg" store init "$work/store2" --store-key "$work/key2" >/dev/null 2>&1
check "a key of another store: refused, naming the key" sh -c "! '$asrimg' store list '$store' --store-key '$work/key2' 2>'$work/e' && grep -qi key '$work/e'"
check "store verify --read-data: clean" "$asrimg" store verify "$store" --read-data
cp -a "$store" "$work/damaged"
# The oldest pack: the first backup's, which every snapshot of a uses (pack names are random, so
# the first by name may hold only what a later backup added, which snap1 does not use).
pack=$(find "$work/damaged/packs" -type f -printf '%T@ %p\n' | sort -n | head -1 | cut -d' ' -f2-)
printf '\xff' | dd of="$pack" bs=1 seek=100 conv=notrunc status=none
check "a damaged chunk: store verify names it and its snapshots" sh -c "! '$asrimg' store verify '$work/damaged' --read-data --json >'$work/v.json'; python3 -c 'import json; j=json.load(open(\"$work/v.json\")); p=j[\"problems\"]; assert p and all(x[\"snapshots\"] for x in p), p'"
check "a damaged chunk: restore fails, naming the chunk" sh -c "rm -f '$work/t2.img'; truncate -s 300M '$work/t2.img'; ! '$asrimg' restore '$work/damaged::$snap1' --to '$work/t2.img' --yes 2>'$work/e' && grep -q 'chunk' '$work/e'"
rm -rf "$work/damaged"; cp -a "$store" "$work/damaged"
rm -f "$(find "$work/damaged/packs" -type f | sort | tail -1)"
check "a missing pack: store verify names missing chunks" sh -c "! '$asrimg' store verify '$work/damaged' --json >'$work/v.json'; python3 -c 'import json; j=json.load(open(\"$work/v.json\")); assert j[\"missing\"] > 0, j'"
rm -rf "$work/damaged"

# ---- prune and gc ----------------------------------------------------------------------------------
make_disk "$work/c.img" c || exit 1
check "backup of b as pcb" sh -c "'$asrimg' backup '$work/b.img' --volumes all -o '$store' --host pcb >/dev/null 2>&1"
sleep 1
check "backup of c as pcb" sh -c "'$asrimg' backup '$work/c.img' --volumes all -o '$store' --host pcb >/dev/null 2>&1"
check "prune --keep-last 1: one snapshot per host left" sh -c "'$asrimg' store prune '$store' --keep-last 1 && [ \"\$(find '$store/snapshots' -type f | wc -l)\" = 2 ]"
check "gc 1 condemns b's packs" sh -c "'$asrimg' store gc '$store' --json >'$work/g1.json' && python3 -c 'import json; j=json.load(open(\"$work/g1.json\")); assert j[\"packs_condemned\"] > 0, j'"
check "gc 2 deletes them" sh -c "'$asrimg' store gc '$store' --json >'$work/g2.json' && python3 -c 'import json; j=json.load(open(\"$work/g2.json\")); assert j[\"packs_deleted\"] > 0, j'"
check "after gc: store verify --read-data clean" "$asrimg" store verify "$store" --read-data
check "after gc: pca's kept snapshot restores" restore_ok "$store::pca/latest" a
check "after gc: pcb's kept snapshot restores" restore_ok "$store::pcb/latest" c

# A backup of b, stopped after it began, while every snapshot goes and gc condemns their packs
# and tries to delete them: the backup may have reused their chunks before the condemnation.
sleep 1
"$asrimg" backup "$work/b.img" --volumes all -o "$store" --host pcb --threads 1 --json >"$work/bb.json" 2>"$work/bb.err" &
bpid=$!; pids+=($bpid)
for _ in $(seq 1 200); do ls "$store/sessions" 2>/dev/null | grep -q . && break; sleep 0.05; done
kill -STOP $bpid
find "$store/snapshots" -type f -delete
"$asrimg" store gc "$store" >/dev/null 2>&1
check "gc while a backup is stopped: nothing deleted, the backup waited for" sh -c "'$asrimg' store gc '$store' --json >'$work/g3.json' && python3 -c 'import json; j=json.load(open(\"$work/g3.json\")); assert j[\"packs_deleted\"] == 0 and j[\"sessions_running\"] >= 1, j'"
kill -CONT $bpid
check "the backup across gc finishes" wait $bpid
check "gc after it deletes, and the store verifies" sh -c "'$asrimg' store gc '$store' --json >'$work/g4.json' && python3 -c 'import json; j=json.load(open(\"$work/g4.json\")); assert j[\"packs_deleted\"] > 0, j' && '$asrimg' store verify '$store' --read-data"
check "the backup made across gc restores" restore_ok "$store::pcb/latest" b

# Two backups and a gc at once.
sleep 1
"$asrimg" backup "$work/a.img" --volumes all -o "$store" --host pca --json >"$work/c1.json" 2>&1 & p1=$!
"$asrimg" backup "$work/c.img" --volumes all -o "$store" --host pcc --json >"$work/c2.json" 2>&1 & p2=$!
"$asrimg" store gc "$store" >/dev/null 2>&1 & p3=$!
check "concurrent: backup a" wait $p1
check "concurrent: backup c" wait $p2
check "concurrent: gc" wait $p3
"$asrimg" store gc "$store" >/dev/null 2>&1; "$asrimg" store gc "$store" >/dev/null 2>&1
check "concurrent: store verify clean after two more gcs" "$asrimg" store verify "$store" --read-data
check "concurrent: a's snapshot restores" restore_ok "$store::pca/latest" a
check "concurrent: c's snapshot restores" restore_ok "$store::pcc/latest" c

# ---- kill -9 ------------------------------------------------------------------------------------
make_disk "$work/d.img" d || exit 1
before=$(find "$store/snapshots" -type f | wc -l)
# Killed at random moments, then once right after its first pack's index object appears.
for delay in 0.05 0.15 0.3; do
  "$asrimg" backup "$work/d.img" --volumes all -o "$store" --host pcd --threads 1 >/dev/null 2>&1 & k=$!
  sleep $delay; kill -9 $k 2>/dev/null; wait $k 2>/dev/null
done
idx=$(find "$store/index" -type f | wc -l)
"$asrimg" backup "$work/d.img" --volumes all -o "$store" --host pcd --threads 1 >/dev/null 2>&1 & k=$!
for _ in $(seq 1 400); do [ "$(find "$store/index" -type f | wc -l)" -gt "$idx" ] && break; sleep 0.02; done
kill -9 $k 2>/dev/null; wait $k 2>/dev/null
# A run may end before its kill: then its snapshot is whole. Every snapshot there must verify.
check "kill -9 of backups: at most one snapshot each, and every snapshot verifies" sh -c "[ \$(find '$store/snapshots' -type f | wc -l) -le $((before + 4)) ]"
check "kill -9 of backups: every snapshot verifies" every_snapshot_verifies "$store"
check "kill -9 of backups: store verify clean" "$asrimg" store verify "$store" --read-data
sleep 1
check "the next backup finds what the killed ones uploaded (>= 8 MiB)" sh -c "'$asrimg' backup '$work/d.img' --volumes all -o '$store' --host pcd --json >'$work/k.json' && python3 -c 'import json; j=json.load(open(\"$work/k.json\"))[\"store\"]; assert j[\"found_bytes\"] >= 8 << 20, j'"
check "it restores" restore_ok "$store::pcd/latest" d
sleep 1
"$asrimg" backup "$work/a.img" --volumes all -o "$store" --host pcd >/dev/null 2>&1
"$asrimg" store prune "$store" --keep-last 1 >/dev/null 2>&1
for delay in 0.05 0.1 0.2; do
  "$asrimg" store gc "$store" >/dev/null 2>&1 & k=$!
  sleep $delay; kill -9 $k 2>/dev/null; wait $k 2>/dev/null
done
"$asrimg" store gc "$store" >/dev/null 2>&1; "$asrimg" store gc "$store" >/dev/null 2>&1
check "kill -9 of gc: store verify clean" "$asrimg" store verify "$store" --read-data
check "kill -9 of gc: every snapshot verifies" every_snapshot_verifies "$store"
check "kill -9 of gc: pcd's snapshot restores" restore_ok "$store::pcd/latest" a
check "kill -9 of gc: pcc's snapshot restores" restore_ok "$store::pcc/latest" c

# ---- mount ---------------------------------------------------------------------------------------
if [ -c /dev/fuse ] && command -v fusermount3 >/dev/null; then
  mkdir -p "$work/fuse"
  ref="$store::pcc/latest"
  if "$asrimg" mount "$ref" "$work/fuse" --daemon 2>"$work/merr"; then
    check "mount STORE::SNAPSHOT: the root volume mounts and its files are equal" sh -c "mount -o ro,loop '$work/fuse/disk0p2.img' '$work/mnt' && diff -r '$work/content-c' '$work/mnt' --exclude=lost+found; rc=\$?; umount '$work/mnt'; exit \$rc"
    "$asrimg" umount "$work/fuse" >/dev/null 2>&1
  else
    check "mount STORE::SNAPSHOT" sh -c "cat '$work/merr'; false"
  fi
fi

echo "store_cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
