#!/usr/bin/env bash
# End to end: damaged ext filesystems backed up by their used maps and restored onto garbage must
# read exactly as their sources: the same e2fsck -fn report, the same files (debugfs rdump), and
# after journal recovery (e2fsck -fy) the same again. The damage is made with e2fsprogs' own
# tools: block bitmaps calling free what a file, a directory, an extent tree, an xattr block, a
# symlink, indirect blocks still use; an ext2 not cleanly unmounted; a committed journal
# transaction whose metadata the disk does not have yet. The plan and `asrimg layout` must say
# what the map found. Usage: ext_damage_test.sh ASRIMG
set -u
asrimg=$1
for t in mkfs.ext4 mkfs.ext2 debugfs e2fsck sfdisk cmp; do
  command -v "$t" >/dev/null || { echo "SKIP: $t missing"; exit 77; }
done
work=$(mktemp -d /tmp/asrimg-extdamage-XXXXXX)
trap 'rm -rf "$work"' EXIT
pass=0 fail=0
check() { # name, then a command that must succeed
  local name=$1; shift
  if "$@" >"$work/out" 2>"$work/err"; then pass=$((pass + 1)); else
    fail=$((fail + 1)); echo "FAIL: $name"; sed 's/^/  out: /' "$work/out" | head -20; sed 's/^/  err: /' "$work/err" | head -5; fi
}

# ---- three damaged filesystems of 8 MiB each -------------------------------------------------
tree=$work/tree
mkdir -p "$tree/dir" "$tree/d"
head -c 300K /dev/urandom >"$tree/big"
for i in $(seq 1 10); do head -c $((i * 1000)) /dev/urandom >"$tree/d/f$i"; done
truncate -s 600K "$tree/sparse"
for i in $(seq 0 23); do head -c 1024 /dev/urandom | dd of="$tree/sparse" bs=1K seek=$((i * 24)) conv=notrunc status=none; done
for i in $(seq 1 300); do echo "$i" >"$tree/dir/an-entry-with-a-rather-long-name-$i"; done
ln -s "$(printf 'a-long-symlink-target-%.0s' $(seq 1 8))" "$tree/long-link"
head -c 700 /dev/urandom | base64 -w0 >"$work/xattr"

blocks() { debugfs -R "blocks $2" "$1" 2>/dev/null; }
freeb() { # IMG BLOCK...: the bitmap calls them free, its checksum and counts kept right
  local img=$1; shift
  printf 'freeb %s\n' "$@" >"$work/freeb.cmd"
  debugfs -w -f "$work/freeb.cmd" "$img" >/dev/null 2>&1
}

# 1: ext4, 1 KiB blocks: a file's data, a directory's blocks (htree), an extent tree block, an
# xattr block and a symlink's block all marked free.
a=$work/a.img
truncate -s 8M "$a"
mkfs.ext4 -q -F -b 1024 -I 256 -d "$tree" "$a"
debugfs -w -R "ea_set -f $work/xattr /d/f3 user.big" "$a" >/dev/null 2>&1
freeb "$a" $(blocks "$a" /big | cut -d' ' -f1-30) $(blocks "$a" /dir) \
  $(debugfs -R 'stat /sparse' "$a" 2>/dev/null | grep -o '(ETB0):[0-9]*' | cut -d: -f2) \
  $(debugfs -R 'stat /d/f3' "$a" 2>/dev/null | sed -n 's/.*File ACL: \([0-9]*\).*/\1/p') $(blocks "$a" /long-link)

# 2: ext2 not cleanly unmounted, its indirect blocks and a directory block marked free.
b=$work/b.img
truncate -s 8M "$b"
mkfs.ext2 -q -F -b 1024 -d "$tree" "$b"
freeb "$b" $(debugfs -R 'stat /big' "$b" 2>/dev/null | grep -o '(D*IND):[0-9]*' | cut -d: -f2) \
  $(blocks "$b" /dir | cut -d' ' -f2)
debugfs -w -R 'ssv state 0' "$b" >/dev/null 2>&1

# 3: ext4 after a crash: /new's data in place, the metadata that makes it /new's only in a
# committed journal transaction (written with debugfs's journal commands).
c=$work/c.img after=$work/after.img
truncate -s 8M "$c"
mkfs.ext4 -q -F -b 1024 -I 256 -d "$tree" "$c"
cp "$c" "$after"
head -c 40K /dev/urandom >"$work/new"
debugfs -w -R "write $work/new /new" "$after" >/dev/null 2>&1
data=" $(blocks "$after" /new) " list=""
for blk in $(cmp -l "$c" "$after" | awk '{print int(($1 - 1) / 1024)}' | uniq); do
  case $data in
    *" $blk "*) dd if="$after" of="$c" bs=1024 skip="$blk" seek="$blk" count=1 conv=notrunc status=none ;;
    *) dd if="$after" bs=1024 skip="$blk" count=1 status=none >>"$work/meta"; list=$list${list:+,}$blk ;;
  esac
done
printf 'jo -c -v 3\njw -b %s %s\njc\n' "$list" "$work/meta" >"$work/journal.cmd"
debugfs -w -f "$work/journal.cmd" "$c" >/dev/null 2>&1

for img in "$a" "$b"; do
  check "$(basename "$img") is damaged" sh -c "! e2fsck -fn '$img' >/dev/null 2>&1"
done
check "c.img shows no /new before recovery" sh -c "! debugfs -R 'stat /new' '$c' 2>/dev/null | grep -q Inode:"

# ---- one GPT disk holding the three -----------------------------------------------------------
disk=$work/disk.img
truncate -s 27M "$disk"
printf 'label: gpt\nstart=2048, size=16384, type=linux\nstart=18432, size=16384, type=linux\nstart=34816, size=16384, type=linux\n' |
  sfdisk -q "$disk" >/dev/null
for i in 0 1 2; do
  img=$work/$(echo abc | cut -c$((i + 1))).img
  dd if="$img" of="$disk" bs=1M seek=$((1 + 8 * i)) conv=notrunc,sparse status=none
done

# Linux data partitions, not selected by default: each note says it applies if selected.
"$asrimg" layout "$disk" >"$work/layout" 2>&1
check "layout says what the map found on partition 1" \
  grep -q "note: if selected: ext: .* KiB (.* blocks) that metadata references but the block bitmap marks free, captured too" "$work/layout"
check "layout says partition 2 was not cleanly unmounted" grep -q "note: if selected: ext: not cleanly unmounted; .* captured too" "$work/layout"
check "layout says partition 3's journal was replayed" \
  grep -q "note: if selected: ext: journal to recover: 1 transactions naming .* blocks, the filesystem as replayed mapped too (+4" "$work/layout"

"$asrimg" backup "$disk" -o "$work/d.asrimg" --volumes all >"$work/backup.out" 2>&1
check "backup exits 0" test -s "$work/d.asrimg"
check "every volume is captured by its map" sh -c "[ \$(grep -cE '^  [123] +ext[24] +used ' '$work/backup.out') -eq 3 ]"
check "the backup's plan has the notes" sh -c "[ \$(grep -c 'note: ext: ' '$work/backup.out') -eq 3 ]"
target=$work/target.img
head -c 27M /dev/urandom >"$target"
check "restore onto garbage" "$asrimg" restore "$work/d.asrimg" --to "$target" --yes

# ---- each restored filesystem reads as its source -------------------------------------------
reading() { # IMG DIR: e2fsck -fn's report and exit status, rdump's messages; the files in DIR
  rm -rf "$2" && mkdir "$2"
  { e2fsck -fn "$1"; echo "e2fsck exit $?"; debugfs -R "rdump / $2" "$1"; } 2>&1 | sed "s|$1|IMG|g; s|$2|DIR|g"
}
same_reading() { # SOURCE COPY
  reading "$1" "$work/src.d" >"$work/src.txt"
  reading "$2" "$work/copy.d" >"$work/copy.txt"
  diff "$work/src.txt" "$work/copy.txt" && diff -r --no-dereference "$work/src.d" "$work/copy.d"
}
recovered_same() { # SOURCE COPY: both through e2fsck -fy (journal replay, repairs), then alike
  cp "$1" "$work/rs.img" && cp "$2" "$work/rc.img"
  e2fsck -fy "$work/rs.img" 2>&1 | sed "s|$work/rs.img|IMG|g" >"$work/rs.txt"
  e2fsck -fy "$work/rc.img" 2>&1 | sed "s|$work/rc.img|IMG|g" >"$work/rc.txt"
  diff "$work/rs.txt" "$work/rc.txt" && same_reading "$work/rs.img" "$work/rc.img"
}
for i in 0 1 2; do
  name=$(echo abc | cut -c$((i + 1)))
  src=$work/$name.img copy=$work/$name.restored.img
  dd if="$target" of="$copy" bs=1M skip=$((1 + 8 * i)) count=8 status=none
  check "$name.img: the restored copy reads as its source (e2fsck -fn, rdump)" same_reading "$src" "$copy"
  check "$name.img: recovered and repaired, the copy still reads as its source" recovered_same "$src" "$copy"
done
check "c.img: the recovered copy holds /new" sh -c "cp '$work/c.restored.img' '$work/r.img' && e2fsck -fy '$work/r.img' >/dev/null 2>&1;
  debugfs -R 'dump /new $work/new.out' '$work/r.img' >/dev/null 2>&1 && cmp '$work/new' '$work/new.out'"

echo "ext_damage_test: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
