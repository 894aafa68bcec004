#!/usr/bin/env bash
# Re-backup hints (SPEC.md section 19.10) end to end, on a real ext4 in a directory store:
#   - the first backup records them (a private file); an unchanged re-backup takes its chunks from
#     them and adds nothing;
#   - bytes changed behind the filesystem's back (written into files' blocks on the disk, no
#     metadata touched: a flipped byte, a zero run, a range over blocks) are found: the snapshot
#     compares equal with the disk and restores fsck-clean with every file equal;
#   - chunks with few changed blocks are kept as patches: an unchanged backup after takes them
#     from hints and adds nothing, a patch changed again is patched again, and gc keeps the chunks
#     patches use when no other snapshot uses them;
#   - with --no-patches, the snapshot holds exactly the chunks a backup without hints makes (which
#     then adds nothing);
#   - chunks gc freed since are hashed and uploaded again, the store verifies with --read-data;
#   - a disk of two volumes (FAT and ext4) keeps hints for each;
#   - a damaged hints file, or one of another store, is said and not used; the backup still works.
# Usage: hints_test.sh ASRIMG
set -u
asrimg=$1
skip_all() { echo "SKIP: $1"; echo "hints: 0 passed, 0 failed, 1 skipped"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip_all "needs root (loop mounts)"
for tool in mkfs.ext4 mkfs.vfat mcopy sfdisk debugfs e2fsck python3 cmp mount; do
  command -v "$tool" >/dev/null || skip_all "$tool not installed"
done

work=$(mktemp -d /tmp/asrimg-hints-XXXXXX)
mkdir -p "$work/mnt" "$work/mnt2"
cleanup() {
  umount "$work/mnt" "$work/mnt2" 2>/dev/null
  [ -n "${KEEP:-}" ] || rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
export TMPDIR=$work ASRIMG_STORE_KEY_FILE=$work/store.key ASRIMG_CACHE_DIR=$work/cache/asrimg

# check and json_get
# shellcheck source=tests/store_lib.sh
. "$(dirname "$0")/store_lib.sh"

# An unpartitioned ext4 of random files and text, 4 KiB blocks.
c=$work/content
mkdir -p "$c/data" "$c/etc"
for i in $(seq 1 10); do head -c $((3 << 20)) /dev/urandom >"$c/data/blob$i.bin"; done
seq 1 300000 >"$c/etc/numbers.txt"
disk=$work/disk.img
truncate -s 96M "$disk"
mkfs.ext4 -q -F -b 4096 -d "$c" "$disk" || exit 1

# Writes the bytes of SRC into FILE's blocks on the disk at FILE_OFFSET, block by block where
# debugfs says they lie: the filesystem's metadata (sizes, times, checksums) is not touched.
write_behind() { # FILE_IN_FS FILE_OFFSET SRC
  local file=$1 off=$2 src=$3 len done=0 n blk
  len=$(stat -c %s "$src")
  while [ "$done" -lt "$len" ]; do
    n=$((4096 - (off + done) % 4096)); [ $n -gt $((len - done)) ] && n=$((len - done))
    blk=$(debugfs -R "bmap $file $(((off + done) / 4096))" "$disk" 2>/dev/null) || return 1
    [ "$blk" -gt 0 ] || return 1
    dd if="$src" of="$disk" bs=1 skip=$done seek=$((blk * 4096 + (off + done) % 4096)) count=$n conv=notrunc \
      status=none || return 1
    done=$((done + n))
  done
}

# Inverts the byte at FILE_OFFSET of FILE on the disk, behind the filesystem's back (writing a
# fixed byte would change nothing where the file already held it).
flip_behind() { # FILE_IN_FS FILE_OFFSET
  local blk
  blk=$(debugfs -R "bmap $1 $(($2 / 4096))" "$disk" 2>/dev/null) || return 1
  [ "$blk" -gt 0 ] || return 1
  python3 -c 'import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0xff]))' \
    "$disk" $((blk * 4096 + $2 % 4096))
}

store=$work/store
backup() { # JSON [options...]
  local out=$1; shift
  "$asrimg" backup "$disk" --volumes all -o "$store" --avg-chunk 64K --json "$@" >"$out"
}
hints_file() { ls "$ASRIMG_CACHE_DIR"/hints-*.bin 2>/dev/null | head -1; }
# The snapshot compares equal with the disk, and restores fsck-clean with every file equal to the
# disk's own (mounted read-only: what the changed blocks hold now).
snapshot_ok() { # JSON
  local ref rc=0
  ref=$store::$(json_get "$1" 'j["store"]["snapshot"]')
  "$asrimg" verify "$ref" --against "$disk" >/dev/null || { echo "verify --against differs"; return 1; }
  rm -f "$work/t.img"; truncate -s 96M "$work/t.img"
  "$asrimg" restore "$ref" --to "$work/t.img" --yes >/dev/null 2>&1 || { echo "restore failed"; return 1; }
  e2fsck -fn "$work/t.img" >/dev/null 2>&1 || { echo "restored ext4 not clean"; return 1; }
  mount -o ro,loop "$disk" "$work/mnt" || return 1
  mount -o ro,loop "$work/t.img" "$work/mnt2" || { umount "$work/mnt"; return 1; }
  diff -r "$work/mnt" "$work/mnt2" >/dev/null || { echo "files differ"; rc=1; }
  umount "$work/mnt" "$work/mnt2"
  return $rc
}

check "store init" "$asrimg" store init "$store"
check "first backup" backup "$work/b1.json"
check "first backup: no hints yet" test "$(json_get "$work/b1.json" 'j["store"]["hints_loaded"]')" = 0
check "first backup: hints recorded, the file 0600 in a 0700 directory" sh -c \
  "f=\$(ls '$ASRIMG_CACHE_DIR'/hints-*.bin) && [ \"\$(stat -c %a \"\$f\")\" = 600 ] &&
   [ \"\$(stat -c %a '$ASRIMG_CACHE_DIR')\" = 700 ] && [ \"\$(stat -c %a '$work/cache')\" = 700 ]"

# Hints files of stores or hosts no longer backed up from here, and things that are not one.
cache=$ASRIMG_CACHE_DIR
echo x >"$cache/hints-gone-pcx.bin" && touch -d '100 days ago' "$cache/hints-gone-pcx.bin"
echo x >"$cache/hints-recent-pcx.bin" && touch -d '10 days ago' "$cache/hints-recent-pcx.bin"
echo x >"$cache/notes-old.bin" && touch -d '100 days ago' "$cache/notes-old.bin"
ln -s "$cache/notes-old.bin" "$cache/hints-link-pcx.bin" && touch -h -d '100 days ago' "$cache/hints-link-pcx.bin"
check "unchanged re-backup" backup "$work/b2.json"
check "a hints file no backup wrote for 90 days removed, nothing else" sh -c \
  "[ ! -e '$cache/hints-gone-pcx.bin' ] && [ -e '$cache/hints-recent-pcx.bin' ] && [ -e '$cache/notes-old.bin' ] &&
   [ -L '$cache/hints-link-pcx.bin' ] && [ \"\$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[\"store\"][\"stale_hints_removed\"])' '$work/b2.json')\" = 1 ]"
rm -f "$cache/hints-recent-pcx.bin" "$cache/notes-old.bin" "$cache/hints-link-pcx.bin"
read_bytes=$(json_get "$work/b2.json" 'j["read_bytes"] - j["zero_bytes"]')
hinted=$(json_get "$work/b2.json" 'j["store"]["hinted_bytes"]')
check "unchanged: 95% of the non-zero bytes read came from hints ($hinted of $read_bytes)" \
  test $((hinted * 100)) -ge $((read_bytes * 95))
check "unchanged: nothing added" test "$(json_get "$work/b2.json" 'j["store"]["added_chunks"]')" = 0
check "unchanged: the snapshot equals the disk" snapshot_ok "$work/b2.json"

# ---- bytes changed behind the filesystem's back --------------------------------------------------
head -c $((128 << 10)) /dev/zero >"$work/zeros"
head -c 9000 /dev/urandom >"$work/random"
head -c $((200 << 10)) /dev/urandom >"$work/random200k"
cp "$disk" "$work/disk.before"
check "change blob3: one byte" flip_behind /data/blob3.bin $(((1 << 20) + 123))
check "change blob5: a 128 KiB zero run" write_behind /data/blob5.bin $((512 << 10)) "$work/zeros"
check "change blob7: 9000 bytes over three blocks" write_behind /data/blob7.bin $(((2 << 20) + 1000)) "$work/random"
check "change blob9: its last bytes" write_behind /data/blob9.bin $(((3 << 20) - 9000)) "$work/random"
check "change blob1: 200 KiB, several regions whole" write_behind /data/blob1.bin $((100 << 10)) "$work/random200k"
check "changed disk: its ext4 is still clean" e2fsck -fn "$disk"
# The store and its hints as they are now, for the --no-patches backups below.
cp -a "$store" "$work/store-np" && cp "$(hints_file)" "$work/hints.np"
check "backup of the changed disk" backup "$work/b3.json"
hinted=$(json_get "$work/b3.json" 'j["store"]["hinted_bytes"]')
check "changed: most bytes came from hints ($hinted of $read_bytes)" test $((hinted * 100)) -ge $((read_bytes * 80))
check "changed: chunks were added" test "$(json_get "$work/b3.json" 'j["store"]["added_chunks"]')" -gt 0
check "changed: some kept as patches" test "$(json_get "$work/b3.json" 'j["store"]["patched_chunks"]')" -gt 0
check "changed: the snapshot equals the changed disk" snapshot_ok "$work/b3.json"
# Changed bytes are chunked within their own regions: every region of the hints before the change
# whose bytes did not change is a region of the hints after it (taken from its hint, not stored
# again inside a new chunk that ran on past the change).
kept_regions() { # OLD_HINTS NEW_HINTS DISK_BEFORE DISK_AFTER
  python3 - "$@" <<'EOF'
import struct, sys
def regions(path):  # SPEC.md 19.10: (offset, length) of every entry of every volume
    b = open(path, 'rb').read()
    nvol = struct.unpack_from('<I', b, 56)[0]
    out = set()
    for v in range(nvol):
        first, count = struct.unpack_from('<QQ', b, 64 + 32 * v + 16)
        for e in range(first, first + count):
            out.add(struct.unpack_from('<QI', b, 64 + 32 * nvol + 136 * e))
    return out
old, new = regions(sys.argv[1]), regions(sys.argv[2])
a, d = open(sys.argv[3], 'rb').read(), open(sys.argv[4], 'rb').read()
kept = [r for r in old if a[r[0]:r[0] + r[1]] == d[r[0]:r[0] + r[1]]]
lost = sorted(r for r in kept if r not in new)
print(len(old), "regions,", len(kept), "unchanged; lost:", lost[:5])
sys.exit(1 if lost or len(kept) == len(old) else 0)
EOF
}
check "changed: every unchanged region kept its hint" kept_regions "$work/hints.np" "$(hints_file)" "$work/disk.before" "$disk"

# ---- patches -----------------------------------------------------------------------------------------
check "unchanged after patches" backup "$work/p1.json"
check "unchanged after patches: nothing added" test "$(json_get "$work/p1.json" 'j["store"]["added_chunks"]')" = 0
hinted=$(json_get "$work/p1.json" 'j["store"]["hinted_bytes"]')
check "unchanged after patches: 95% from hints ($hinted of $read_bytes)" test $((hinted * 100)) -ge $((read_bytes * 95))
check "unchanged after patches: the snapshot equals the disk" snapshot_ok "$work/p1.json"
check "change blob3 again, the next block" flip_behind /data/blob3.bin $(((1 << 20) + 4096 + 7))
check "a patch changed again" backup "$work/p2.json"
check "a patch changed again: patched" test "$(json_get "$work/p2.json" 'j["store"]["patched_chunks"]')" -gt 0
check "a patch changed again: the snapshot equals the disk" snapshot_ok "$work/p2.json"
last=$(json_get "$work/p2.json" 'j["store"]["snapshot"]')
check "all snapshots but the last removed" find "$store/snapshots" -type f ! -path "*/$last" -delete
check "gc twice" sh -c "'$asrimg' store gc '$store' >/dev/null && '$asrimg' store gc '$store' >/dev/null"
check "after gc: the store verifies, data read" "$asrimg" store verify "$store" --read-data
check "after gc: the patched snapshot equals the disk" snapshot_ok "$work/p2.json"

# ---- without patches, the chunks of a backup without hints --------------------------------------------
cp "$(hints_file)" "$work/hints.main"
mv "$store" "$work/store-main" && mv "$work/store-np" "$store" && cp "$work/hints.np" "$(hints_file)"
check "backup without patches" backup "$work/n3.json" --no-patches
check "without patches: none" test "$(json_get "$work/n3.json" 'j["store"]["patched_chunks"]')" = 0
check "without patches: the snapshot equals the disk" snapshot_ok "$work/n3.json"
check "a backup without hints" backup "$work/b4.json" --no-hints
check "without hints: no hints taken" test "$(json_get "$work/b4.json" 'j["store"]["hinted_bytes"]')" = 0
check "without hints: the same chunks (nothing added)" \
  test "$(json_get "$work/b4.json" 'j["store"]["added_chunks"]')" = 0
snap_sizes() { # JSON: the snapshot's chunks and stored bytes, as store list says
  "$asrimg" store list "$store" --json | python3 -c "import json,sys
n = json.load(open(sys.argv[1]))['store']['snapshot']
print([(s['chunks'], s['stored_bytes']) for s in json.load(sys.stdin)['snapshots'] if s['name'] == n])" "$1"
}
check "without hints: as many chunks, as many bytes" test "$(snap_sizes "$work/b4.json")" = "$(snap_sizes "$work/n3.json")"
rm -rf "$store" && mv "$work/store-main" "$store" && cp "$work/hints.main" "$(hints_file)"

# ---- chunks gc freed are uploaded again under the ids their bytes hash to ----------------------------
cp "$(hints_file)" "$work/hints.keep"
check "every snapshot removed" find "$store/snapshots" -type f -delete
check "gc" sh -c "'$asrimg' store gc '$store' >/dev/null && '$asrimg' store gc '$store' >/dev/null"
cp "$work/hints.keep" "$(hints_file)"
check "backup after gc, with the old hints" backup "$work/b5.json"
check "after gc: everything was added again" test "$(json_get "$work/b5.json" 'j["store"]["added_bytes"]')" -gt $((20 << 20))
check "after gc: the store verifies, data read" "$asrimg" store verify "$store" --read-data
check "after gc: the snapshot equals the disk" snapshot_ok "$work/b5.json"

# ---- hints that cannot be used ---------------------------------------------------------------------
f=$(hints_file)
python3 - "$f" <<'EOF'
import sys
b = bytearray(open(sys.argv[1], 'rb').read()); b[200] ^= 1; open(sys.argv[1], 'wb').write(b)
EOF
check "damaged hints: backup works, says so" sh -c "'$asrimg' backup '$disk' --volumes all -o '$store' --avg-chunk 64K --json \
  >'$work/b6.json' 2>'$work/b6.err' && grep -q 're-backup hints not used: .*hints-.*: checksum mismatch' '$work/b6.err'"
check "damaged hints: none taken" test "$(json_get "$work/b6.json" 'j["store"]["hinted_bytes"]')" = 0
check "damaged hints: replaced by good ones" sh -c "'$asrimg' backup '$disk' --volumes all -o '$store' --avg-chunk 64K \
  --json >'$work/b7.json' 2>'$work/b7.err' && ! grep -q 're-backup hints' '$work/b7.err'"
check "other chunk size: said, not used" sh -c "'$asrimg' backup '$disk' --volumes all -o '$store' --json \
  >'$work/b8.json' 2>'$work/b8.err' && grep -q 'made with 65536-byte average chunks' '$work/b8.err'"
mine=$(hints_file)
"$asrimg" store init "$work/other" --store-key "$work/other.key" >/dev/null
export ASRIMG_STORE_KEY_FILE=$work/other.key
"$asrimg" backup "$disk" --volumes all -o "$work/other" --avg-chunk 64K >/dev/null 2>&1
theirs=$(ls "$ASRIMG_CACHE_DIR"/hints-*.bin | grep -vx "$mine" | head -1)
check "another store: hints of its own" test -n "$theirs"
cp "$mine" "${theirs:-$work/none}"
check "another store's hints: said, not used" sh -c "'$asrimg' backup '$disk' --volumes all -o '$work/other' --avg-chunk 64K \
  --json >'$work/b9.json' 2>'$work/b9.err' && grep -q 'another store or key' '$work/b9.err'"
export ASRIMG_STORE_KEY_FILE=$work/store.key
# ---- two volumes: each its own hints ------------------------------------------------------------------
two=$work/two.img
truncate -s 64M "$two"
printf 'label: gpt\nstart=2048, size=32768, type=uefi\nsize=90112, type=linux\n' | sfdisk -q "$two"
truncate -s 16M "$work/esp" && mkfs.vfat -F 16 "$work/esp" >/dev/null &&
  MTOOLS_SKIP_CHECK=1 mcopy -i "$work/esp" "$c/data/blob1.bin" ::/ && dd if="$work/esp" of="$two" bs=1M seek=1 conv=notrunc status=none
truncate -s 44M "$work/root" && mkfs.ext4 -q -F -b 4096 -d "$c/etc" "$work/root" &&
  dd if="$work/root" of="$two" bs=1M seek=17 conv=notrunc status=none
backup_two() { "$asrimg" backup "$two" --volumes all -o "$store" --host two --json >"$1"; }
check "two volumes: first backup" backup_two "$work/t1.json"
check "two volumes: re-backup" backup_two "$work/t2.json"
hinted=$(json_get "$work/t2.json" 'j["store"]["hinted_bytes"]')
check "two volumes: both volumes' bytes came from hints ($hinted)" test "$hinted" -ge $(((3 << 20) + (1 << 20)))
check "two volumes: the snapshot equals the disk" "$asrimg" verify "$store::$(json_get "$work/t2.json" 'j["store"]["snapshot"]')" \
  --against "$two"

check "--no-hints outside a store: refused" sh -c "! '$asrimg' backup '$disk' -o '$work/x.asrimg' --no-hints 2>/dev/null"

echo "hints: $pass passed, $fail failed"
[ "$fail" = 0 ]
