#!/usr/bin/env bash
# The chunk store on S3 (OpenStack Swift with s3api on localhost, started by swift_env.sh), end to
# end through asrimg: store init (the bucket made), backup -o s3://..., restore, verify, info and
# mount of STORE::SNAPSHOT, a re-backup adding almost nothing, export/import, two backups and a gc
# at once, prune and gc, kill -9 of a backup, store verify --read-data after each.
# Usage: store_s3_test.sh ASRIMG
set -u
here=$(cd "$(dirname "$0")" && pwd)
asrimg=$1
skip_all() { echo "SKIP: $1"; echo "store_s3: 0 passed, 0 failed, 1 skipped"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip_all "needs root (loop mounts)"
command -v swift-proxy-server >/dev/null || skip_all "Swift is not installed (scripts/deps.sh test)"
for tool in sfdisk mkfs.ext4 mkfs.vfat mcopy e2fsck python3 cmp mount losetup; do
  command -v "$tool" >/dev/null || skip_all "$tool not installed"
done
work=$(mktemp -d /tmp/asrimg-store-s3-XXXXXX)
mkdir -p "$work/mnt" "$work/fuse"
port=${S3_ENV_PORT:-$((22080 + RANDOM % 200 * 5))} # each S3 test its own range: ctest runs them at once
cleanup() {
  umount "$work/mnt" 2>/dev/null
  fusermount3 -u -z "$work/fuse" 2>/dev/null
  "$here/swift_env.sh" stop "$work/swift" >/dev/null 2>&1
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
export MTOOLS_SKIP_CHECK=1 TMPDIR=$work ASRIMG_CACHE_DIR=$work/cache
# shellcheck source=tests/store_lib.sh
. "$here/../store_lib.sh"

eval "$("$here/swift_env.sh" start "$work/swift" "$port")" || skip_all "Swift did not start"
store=s3://asrimg-store/fleet
export ASRIMG_STORE_KEY_FILE=$work/store.key
make_disk "$work/a.img" a || exit 1
make_disk "$work/b.img" b || exit 1

check "store init on S3 (the bucket made)" "$asrimg" store init "$store" --store-key "$ASRIMG_STORE_KEY_FILE"
check "store init again: refused" sh -c "! '$asrimg' store init '$store' --store-key '$work/other.key'"
check "backup into S3" sh -c "'$asrimg' backup '$work/a.img' --volumes all -o '$store' --host pca --json >'$work/b1.json'"
check "backup: the random data was added" test "$(json_get "$work/b1.json" 'j["store"]["added_bytes"]')" -ge $((48 << 20))
check "restore from S3: fsck clean, files equal" restore_ok "$store::pca/latest" a
check "verify STORE::SNAPSHOT on S3" "$asrimg" verify "$store::pca/latest"
check "info STORE::SNAPSHOT on S3" sh -c "'$asrimg' info '$store::pca/latest' | grep -q external-chunks"
sleep 1
check "re-backup of the unchanged disk" sh -c "'$asrimg' backup '$work/a.img' --volumes all -o '$store' --host pca --json >'$work/b2.json'"
check "unchanged: at most 1 MiB added" test "$(json_get "$work/b2.json" 'j["store"]["added_bytes"]')" -le $((1 << 20))
check "export from S3" "$asrimg" export "$store::pca/latest" -o "$work/exported.asrimg"
check "the exported file restores the same disk" sh -c "cp '$work/target.img' '$work/from-s3.img' && rm -f '$work/target.img' && truncate -s 300M '$work/target.img' && '$asrimg' restore '$work/exported.asrimg' --to '$work/target.img' --yes && cmp '$work/target.img' '$work/from-s3.img'"
sleep 1
check "import into S3" "$asrimg" import "$work/exported.asrimg" "$store" --host pci
check "the imported snapshot restores" restore_ok "$store::pci/latest" a

# Two backups and a gc at once, then prune and two gcs.
"$asrimg" backup "$work/a.img" --volumes all -o "$store" --host pca --json >"$work/c1.json" 2>&1 & p1=$!
"$asrimg" backup "$work/b.img" --volumes all -o "$store" --host pcb --json >"$work/c2.json" 2>&1 & p2=$!
"$asrimg" store gc "$store" >/dev/null 2>&1 & p3=$!
check "concurrent: backup a" wait $p1
check "concurrent: backup b" wait $p2
check "concurrent: gc" wait $p3
check "concurrent: store verify --read-data clean" "$asrimg" store verify "$store" --read-data
check "concurrent: b restores" restore_ok "$store::pcb/latest" b
check "prune --keep-last 1: one snapshot per host" sh -c "'$asrimg' store prune '$store' --keep-last 1 && [ \"\$('$asrimg' store list '$store' --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)[\"snapshots\"]))')\" = 3 ]"
check "gc twice" sh -c "'$asrimg' store gc '$store' && '$asrimg' store gc '$store' --json >'$work/g.json'"
check "after gc: store verify --read-data clean" "$asrimg" store verify "$store" --read-data
check "after gc: a restores" restore_ok "$store::pca/latest" a
check "after gc: b restores" restore_ok "$store::pcb/latest" b

# kill -9 of a backup into S3: every snapshot still verifies; the store verifies.
make_disk "$work/c.img" c || exit 1
"$asrimg" backup "$work/c.img" --volumes all -o "$store" --host pcc --threads 1 >/dev/null 2>&1 & k=$!
sleep 0.5; kill -9 $k 2>/dev/null; wait $k 2>/dev/null
check "kill -9: store verify clean" "$asrimg" store verify "$store" --read-data
check "kill -9: every snapshot verifies" every_snapshot_verifies "$store"
check "the next backup of c restores" sh -c "'$asrimg' backup '$work/c.img' --volumes all -o '$store' --host pcc >/dev/null 2>&1"
check "c restores" restore_ok "$store::pcc/latest" c

if [ -c /dev/fuse ] && command -v fusermount3 >/dev/null; then
  if "$asrimg" mount "$store::pcc/latest" "$work/fuse" --daemon 2>"$work/merr"; then
    check "mount of an S3 snapshot: its root's files equal" sh -c "mount -o ro,loop '$work/fuse/disk0p2.img' '$work/mnt' && diff -r '$work/content-c' '$work/mnt' --exclude=lost+found; rc=\$?; umount '$work/mnt'; exit \$rc"
    "$asrimg" umount "$work/fuse" >/dev/null 2>&1
  else
    check "mount of an S3 snapshot" sh -c "cat '$work/merr'; false"
  fi
fi

echo "store_s3: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
