#!/usr/bin/env bash
# The chunk store on an exFAT drive (the usual format of an external drive), mounted through
# exfat-fuse on a loop device: exFAT has no hard links (and exfat-fuse no RENAME_NOREPLACE), so a
# directory store publishes its snapshots by a claim in tmp/ (store/backend_dir.c). The store's
# own suites run with their scratch directory on the drive (snapshot names that never clash,
# objects written with O_DIRECT, gc), then the command line: backups, restores of every snapshot,
# verify, prune and gc.
# Usage: store_exfat_test.sh ASRIMG TEST_STORE TEST_STORE_GC
set -u
asrimg=$1 test_store=$2 test_store_gc=$3
skip_all() { echo "SKIP: $1"; echo "store_exfat: 0 passed, 0 failed, 1 skipped"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip_all "needs root (loop devices, mounts)"
for tool in mkfs.exfat mount.exfat-fuse sfdisk mkfs.ext4 mkfs.vfat mcopy e2fsck python3 mount losetup; do
  command -v "$tool" >/dev/null || skip_all "$tool not installed"
done

work=$(mktemp -d /tmp/asrimg-exfat-XXXXXX)
mkdir -p "$work/mnt" "$work/drive"
drive_dev=""
cleanup() {
  umount "$work/mnt" 2>/dev/null
  umount "$work/drive" 2>/dev/null
  [ -z "$drive_dev" ] || losetup -d "$drive_dev" 2>/dev/null
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
export MTOOLS_SKIP_CHECK=1 ASRIMG_CACHE_DIR=$work/cache

# shellcheck source=tests/store_lib.sh
. "$(dirname "$0")/store_lib.sh"

truncate -s 1G "$work/drive.img"
mkfs.exfat "$work/drive.img" >/dev/null || exit 1
drive_dev=$(losetup -f --show "$work/drive.img") || exit 1
mount.exfat-fuse "$drive_dev" "$work/drive" || exit 1
drive=$work/drive
check "the drive is exFAT, without hard links" sh -c "touch '$drive/a' && ! ln '$drive/a' '$drive/b' 2>/dev/null && rm '$drive/a'"

# The suites, on the drive (key file modes are not the store's to check there: exFAT has none;
# host names that differ only by case are two hosts in test_store, refused here below).
mkdir -p "$drive/scratch"
check "test_store on exFAT" env ASRIMG_TEST_SCRATCH="$drive/scratch" "$test_store" --filter 'store/!(init_and_open|default_key_file_and_env|host_names_by_case)'
check "test_store_gc on exFAT" env ASRIMG_TEST_SCRATCH="$drive/scratch" "$test_store_gc"

# The command line. The key stays off the drive, as it should.
make_disk "$work/a.img" a || exit 1
store=$drive/store
export ASRIMG_STORE_KEY_FILE=$work/store.key
check "store init on exFAT" "$asrimg" store init "$store"
for i in 1 2 3; do
  check "backup $i into the store on exFAT" sh -c "'$asrimg' backup '$work/a.img' --volumes all -o '$store' --host pca --json >'$work/b$i.json'"
done
check "three snapshots, none replaced" sh -c "[ \"\$('$asrimg' store list '$store' --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)[\"snapshots\"]))')\" = 3 ]"
check "no claim left in tmp/" sh -c "[ -z \"\$(ls '$store/tmp')\" ]"
check "a host named as another but for case: refused, naming both, nothing written" sh -c "! '$asrimg' backup '$work/a.img' --volumes all -o '$store' --host PCA 2>'$work/case.err' && grep -q 'host \"PCA\" and the store.s host \"pca\" differ only by case' '$work/case.err' && [ -z \"\$(ls '$store/sessions')\" ] && [ \"\$('$asrimg' store list '$store' --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)[\"snapshots\"]))')\" = 3 ]"
for n in $("$asrimg" store list "$store" --json | python3 -c 'import json,sys; print(" ".join(s["name"] for s in json.load(sys.stdin)["snapshots"]))'); do
  check "restore $n: fsck clean, files equal" restore_ok "$store::$n" a
done
check "store verify --read-data" "$asrimg" store verify "$store" --read-data
check "prune to one, gc twice, verify" sh -c "'$asrimg' store prune '$store' --keep-last 1 >/dev/null && '$asrimg' store gc '$store' >/dev/null && '$asrimg' store gc '$store' >/dev/null && '$asrimg' store verify '$store' --read-data"
check "the kept snapshot restores" restore_ok "$store::pca/latest" a

echo "store_exfat: $pass passed, $fail failed"
[ "$fail" = 0 ]
