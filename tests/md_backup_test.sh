#!/bin/bash
# A root on md RAID1 over two disks, as mdadm lays it out (members written by tests/md_gen.py,
# since mdadm --create needs the md driver; md_gen.py is checked against mdadm --examine by
# test_md), metadata 1.2 and 0.90, and on RAID10 (near=2) over three disks: the default backup
# must find the root inside the array, take every member by the root's used blocks (superblocks
# and bitmap verbatim; RAID10: both copies of each block), and restored onto larger garbage disks
# each member must pass mdadm --examine as before and the array hold the filesystem e2fsck-clean
# with its files equal (RAID1: read from each member alone; RAID10: the array put together from
# the restored members by its layout, once from each pair of them).
# Usage: md_backup_test.sh ASRIMG. Exit 77 without mkfs.ext4, sfdisk, mdadm or python3.
set -u
asrimg=$1
here=$(cd "$(dirname "$0")" && pwd)
for t in mkfs.ext4 mkfs.vfat sfdisk mdadm python3 debugfs e2fsck; do
    command -v "$t" >/dev/null || { echo "SKIP: no $t"; exit 77; }
done
work=$(mktemp -d /tmp/asrimg-mdbackup-XXXXXX)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
bad() { echo "FAILED: $*"; failed=$((failed + 1)); }

MiB=$((1 << 20))
esp_start=$((1 * MiB)) esp_size=$((16 * MiB))
md_start=$((17 * MiB)) md_size=$((64 * MiB))
disk_size=$((82 * MiB))

# The root filesystem: fstab naming itself by UUID, mdadm.conf naming the array.
mkdir -p "$work/root/etc/mdadm"
cp -r /usr/share/doc/bash "$work/root/"
echo 'ID=debian' >"$work/root/etc/os-release"

# fs_holds_root IMG: the root filesystem, e2fsck-clean, with its files.
fs_holds_root() {
    e2fsck -fn "$1" >/dev/null 2>&1 &&
        debugfs -R 'cat /etc/mdadm/mdadm.conf' "$1" 2>/dev/null | cmp -s - "$work/root/etc/mdadm/mdadm.conf" &&
        debugfs -R 'cat /bash/copyright' "$1" 2>/dev/null | cmp -s - /usr/share/doc/bash/copyright
}

# raid10_fs OUT CHUNK MEMBER_DATA...: the array's bytes from its members' data areas (files), RAID10
# near=2 over len(MEMBER_DATA) members: chunk c's copies are slots 2c and 2c+1, slot s on member s
# mod n at chunk s div n. A member given as "-" is missing: the other copy is used.
raid10_fs() {
    python3 - "$@" <<'EOF'
import sys
out, chunk, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
n = len(files)
data = [open(f, "rb").read() if f != "-" else None for f in files]
chunks = min(len(d) for d in data if d is not None) // chunk * n // 2
with open(out, "wb") as o:
    for c in range(chunks):
        for slot in (2 * c, 2 * c + 1):
            d = data[slot % n]
            if d is not None:
                o.write(d[slot // n * chunk:(slot // n + 1) * chunk])
                break
        else:
            sys.exit("chunk %d: no member holds it" % c)
EOF
}

for cfg in "1.2 1 2" "0.90 1 2" "1.2 10 3"; do
    read -r meta level ndisks <<<"$cfg"
    tag=md-$meta
    ((level == 1)) || tag=md-raid$level-$meta
    roles=$(seq 0 $((ndisks - 1)))
    uuid=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
    fs=$work/$tag.fs
    truncate -s $((48 * MiB)) "$fs"
    mkfs.ext4 -q -F "$fs"
    fsuuid=$(blkid -p -s UUID -o value "$fs")
    printf 'UUID=%s / ext4 errors=remount-ro 0 1\n' "$fsuuid" >"$work/root/etc/fstab"
    printf 'ARRAY /dev/md0 metadata=%s UUID=%s:%s:%s:%s\n' "$meta" "${uuid:0:8}" "${uuid:8:8}" "${uuid:16:8}" \
        "${uuid:24:8}" >"$work/root/etc/mdadm/mdadm.conf"
    rm -f "$fs" && truncate -s $((48 * MiB)) "$fs"
    mkfs.ext4 -q -F -U "$fsuuid" -d "$work/root" "$fs"
    disks=()
    for role in $roles; do
        d=$work/$tag-$role.img
        truncate -s $disk_size "$d"
        printf 'label: gpt\nstart=%d, size=%d, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\nstart=%d, size=%d, type=A19D880F-05FC-4D3B-A006-743F0F84911E\n' \
            $((esp_start / 512)) $((esp_size / 512)) $((md_start / 512)) $((md_size / 512)) | sfdisk -q "$d"
        mkfs.vfat -n EFI --offset $((esp_start / 512)) "$d" $((esp_size / 1024)) >/dev/null 2>&1
        python3 "$here/md_gen.py" "$work/member-$role" --size $md_size --metadata "$meta" --level "$level" \
            --raid-disks "$ndisks" --role $role --uuid "$uuid" --name "host:0" --bitmap --chunk-kib 64 --data-from "$fs" \
            $( ((level == 10)) && echo --layout 258) >/dev/null
        dd if="$work/member-$role" of="$d" bs=1M seek=$((md_start / MiB)) conv=notrunc,sparse status=none
        disks+=("$d")
    done
    "$asrimg" layout --json "${disks[@]}" >"$work/$tag.json"
    if python3 - "$work/$tag.json" "$ndisks" <<'EOF'; then
import json, sys
disks = json.load(open(sys.argv[1]))
members = [p for d in disks for p in d["partitions"] if p["fs"] == "linux_raid_member"]
arrays = [v for d in disks for v in d["logical_volumes"] if v["name"].startswith("md/")]
assert len(members) == int(sys.argv[2]) and all(p["critical"] for p in members), members
assert len(arrays) == 1 and arrays[0]["critical"] and arrays[0]["fs"] == "ext4", arrays
assert all(p["capture"] == "used" and p["capture_bytes"] < p["size_bytes"] // 2 for p in members), members
EOF
        ok "$tag: the root inside the array is found; every member critical, taken by its used blocks"
    else
        bad "$tag: layout (see above)"
    fi
    targets=() tfiles=()
    for role in $roles; do
        t=$work/$tag-target-$role
        head -c $((disk_size + 32 * MiB)) /dev/urandom >"$t"
        targets+=(--to "$t")
        tfiles+=("$t")
    done
    if ! "$asrimg" backup "${disks[@]}" -o "$work/$tag.asrimg" 2>"$work/$tag.err" ||
        ! "$asrimg" restore "$work/$tag.asrimg" "${targets[@]}" --yes >"$work/$tag.restore" 2>&1; then
        bad "$tag: backup or restore failed: $(cat "$work/$tag.err" "$work/$tag.restore")"
        continue
    fi
    if "$asrimg" info --json "$work/$tag.asrimg" | python3 -c '
import json, sys
st = json.load(sys.stdin)["stacks"]
level, n = int(sys.argv[1]), int(sys.argv[2])
assert len(st) == 1 and st[0]["kind"] == "md" and st[0]["level"] == level, st
assert sorted((m["on"], m["disk"], m["partition"], m["role"]) for m in st[0]["members"]) == \
    [("partition", r, 2, r) for r in range(n)], st
assert st[0]["volumes"][0]["fs"] == "ext4" and st[0]["volumes"][0]["critical"], st
assert st[0]["volumes"][0]["mount"] == "/", st' "$level" "$ndisks"; then
        ok "$tag: the image records the array: its members, their roles, the filesystem inside and where it mounts"
    else
        bad "$tag: info --json stacks (see above)"
    fi
    # verify --against reads the array again from the restored disks, each member in its slot.
    if "$asrimg" verify "$work/$tag.asrimg" --against "${tfiles[@]}" >"$work/$tag.verify" 2>&1 &&
        grep -q "^  md array .*: found as recorded: $ndisks members" "$work/$tag.verify"; then
        ok "$tag: verify --against finds the array as recorded"
    else
        bad "$tag: verify --against: $(cat "$work/$tag.verify")"
    fi
    for role in $roles; do
        m=$work/$tag-restored-$role
        dd if="${tfiles[$role]}" of="$m" bs=1M skip=$((md_start / MiB)) count=$((md_size / MiB)) status=none
        want=$(mdadm --examine "$work/member-$role" 2>/dev/null | grep -E 'UUID|Raid Level|Raid Devices|Device Role|this|Events|Data Offset|Bitmap' | sort)
        got=$(mdadm --examine "$m" 2>/dev/null | grep -E 'UUID|Raid Level|Raid Devices|Device Role|this|Events|Data Offset|Bitmap' | sort)
        off=$(($(mdadm --examine "$m" 2>/dev/null | sed -n 's/^ *Data Offset : \([0-9]*\) sectors.*/\1/p') + 0))
        off=$((off * 512))
        [[ $meta == 0.90 ]] && off=0
        # RAID1: each member holds the whole filesystem; RAID10: its data area, for the array
        # put together below.
        holds=", the filesystem e2fsck clean, files equal"
        if ((level == 10)); then
            dd if="$m" of="$m.data" bs=1M iflag=skip_bytes skip="$off" status=none
            holds=""
        else
            dd if="$m" of="$m.fs" bs=1M iflag=skip_bytes skip="$off" count=48 status=none
        fi
        if [[ -n $want && $want == "$got" ]] && { ((level == 10)) || fs_holds_root "$m.fs"; }; then
            ok "$tag: member $role restored: mdadm --examine as before$holds"
        else
            bad "$tag: member $role after restore (examine before/after:
$want
---
$got)"
        fi
    done
    ((level == 10)) || continue
    # Every block's both copies came back: the array reads whole from the restored members with
    # any one of them left out.
    for gone in none $roles; do
        parts=()
        for role in $roles; do
            if [[ $role == "$gone" ]]; then parts+=(-); else parts+=("$work/$tag-restored-$role.data"); fi
        done
        if raid10_fs "$work/$tag.array" $((64 << 10)) "${parts[@]}" && fs_holds_root "$work/$tag.array"; then
            ok "$tag: the array from the restored members (member left out: $gone): e2fsck clean, files equal"
        else
            bad "$tag: the array from the restored members (member left out: $gone) does not hold the filesystem"
        fi
    done
done

echo "md_backup: $passed passed, $failed failed"
((failed == 0))
