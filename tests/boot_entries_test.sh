#!/usr/bin/env bash
# UEFI boot entries end to end, on files (no loop devices, never the machine's own efivarfs: every
# run points ASRIMG_EFIVARS_DIR at a directory of files in efivarfs format that efivars.py makes):
# backup records the entry that loads from the fixture disk's ESP (by its partition GUID) and
# BootOrder, not the one of another disk nor the firmware's shell; info shows it; restore
# --boot-entries twice onto a new machine leaves exactly one entry for it, first in BootOrder,
# whose HD() is the restored ESP's; without efivarfs the restore succeeds and says the entries
# were not made; an image without entries names the removable-media path and whether the
# restored ESP holds it. backup --output-dir names images HOST-YYYYmmdd-HHMMSS.asrimg (UTC),
# split sets too, and never replaces one.
# Usage: boot_entries_test.sh ASRIMG GOLDEN_DIR
set -u
unset COLUMNS
asrimg=$(realpath "$1") golden=$(realpath "$2")/v1-machine.asrimg
here=$(cd "$(dirname "$0")" && pwd)
efivars="python3 $here/efivars.py"
work=$(mktemp -d /tmp/asrimg-boot-XXXXXX)
trap 'rm -rf "$work"' EXIT
export MTOOLS_SKIP_CHECK=1
pass=0 fail=0
check() { # name, then a command that must succeed
  local name=$1; shift
  if "$@" >"$work/chk.out" 2>"$work/chk.err"; then pass=$((pass + 1)); else
    fail=$((fail + 1)); echo "FAIL: $name"; sed 's/^/  out: /' "$work/chk.out" | head -8; sed 's/^/  err: /' "$work/chk.err" | head -8; fi
}
py() { python3 -c "$1"; }

# The fixture disk: GPT, an ESP (partition 1, FAT) holding shim and the removable-media loader, a
# root (partition 2, ext4).
ESP=3b6b6a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b
cd "$work" || exit 1
truncate -s 40M disk.img
sfdisk -q disk.img <<EOF
label: gpt
start=2048, size=16384, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=$ESP
start=18432, size=40960, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4
EOF
truncate -s 8M esp.img && mkfs.vfat -n ESP esp.img >/dev/null
echo shim >shim.efi && echo fallback >boot.efi
mmd -i esp.img ::/EFI ::/EFI/debian ::/EFI/BOOT
mcopy -i esp.img shim.efi ::/EFI/debian/shimx64.efi && mcopy -i esp.img boot.efi ::/EFI/BOOT/BOOTX64.EFI
dd if=esp.img of=disk.img bs=1M seek=1 conv=notrunc status=none
truncate -s 20M root.img && mkfs.ext4 -q root.img && dd if=root.img of=disk.img bs=1M seek=9 conv=notrunc status=none

# The machine backed up: its entry on the ESP in the full form firmware writes, an entry of
# another disk, the UEFI shell; BootOrder 0001, 0000, 0002.
$efivars boot src 0000 debian $ESP 1 2048 16384 '\EFI\debian\shimx64.efi' --full
$efivars boot src 0001 "Windows Boot Manager" 11111111-2222-3333-4444-555555555555 1 2048 100 '\EFI\Microsoft\Boot\bootmgfw.efi'
$efivars other src 0002 "UEFI Shell"
$efivars order src 0001 0000 0002
host=$(hostname | sed 's/[^A-Za-z0-9._-]/_/g')

mkdir images
check "backup --output-dir" env ASRIMG_EFIVARS_DIR=src "$asrimg" backup disk.img --volumes all --output-dir images --json
cp "$work/chk.out" backup.json
image=$(py "import json; print(json.load(open('$work/backup.json'))['image'])")
check "backup --json: the machine it recorded" py "
import json; m = json.load(open('$work/backup.json'))['machine']
assert m['hostname'] == '$host' and [e['number'] for e in m['boot_entries']] == [0], m"
check "named HOST-YYYYmmdd-HHMMSS.asrimg in DIR, in UTC" py "
import re, datetime, sys
m = re.fullmatch(r'images/(.+)-(\d{8}-\d{6})\.asrimg', '$image'); assert m, '$image'
assert m.group(1) == '$host', m.group(1)
t = datetime.datetime.strptime(m.group(2), '%Y%m%d-%H%M%S').replace(tzinfo=datetime.timezone.utc)
assert abs((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds()) < 120, t"
check "the image is there" test -f "$image"

"$asrimg" info --json "$image" >info.json
check "info --json: the record" py "
import json; m = json.load(open('$work/info.json'))['machine']
assert m['hostname'] == '$host' and m['firmware'] == 'uefi', m
assert m['boot_order'] == [1, 0, 2], m['boot_order']
e = m['boot_entries']; assert len(e) == 1, e
e = e[0]
assert e['number'] == 0 and e['description'] == 'debian' and e['disk'] == 0 and e['partition'] == 1, e
assert e['partition_guid'] == '$ESP' and e['active'], e
assert e['device_path'].endswith('HD(1,GPT,$ESP,0x800,0x4000)/File(\\\\EFI\\\\debian\\\\shimx64.efi)'), e"
"$asrimg" info "$image" >info.txt
check "info shows the machine and only the ESP's entry" sh -c "grep -q '^machine: *$host, booted with UEFI, 1 boot entry on these disks, BootOrder 0001,0000,0002' info.txt &&
  grep -q 'Boot0000\* debian: disk 0 partition 1, .*File(\\\\EFI\\\\debian\\\\shimx64.efi)' info.txt && ! grep -q Windows info.txt"

# The golden image's record as info shows it: the inactive entry without its '*', optional data.
"$asrimg" info "$golden" >golden.txt
check "info: the golden record" sh -c "grep -qx 'machine:    golden-host, booted with UEFI, 2 boot entries on these disks, BootOrder 0003,0001,2001' golden.txt &&
  grep -qxF '  Boot0003  Linux Boot Manager: disk 0 partition 1, HD(1,GPT,13121110-1514-1716-1819-1a1b1c1d1e1f,0x800,0x1000)/File(\\EFI\\systemd\\systemd-bootx64.efi) (with optional data)' golden.txt"
check "info: an image without the record" sh -c "'$asrimg' info '$(dirname "$golden")/v1-basic.asrimg' | grep -qx 'machine:    not recorded' &&
  '$asrimg' info --json '$(dirname "$golden")/v1-basic.asrimg' | python3 -c 'import json,sys; assert json.load(sys.stdin)[\"machine\"] is None'"

# --output-dir never replaces an image: every name of the next seconds is taken.
py "
import datetime
now = datetime.datetime.now(datetime.timezone.utc)
for s in range(0, 8):
    open('$work/images/$host-' + (now + datetime.timedelta(seconds=s)).strftime('%Y%m%d-%H%M%S') + '.asrimg', 'a').close()"
ASRIMG_EFIVARS_DIR=src "$asrimg" backup disk.img --output-dir images >/dev/null 2>err.txt
rc=$?
check "--output-dir refuses an existing name" sh -c "[ $rc -eq 1 ] && grep -q '^asrimg: error: .*exists' err.txt"
check "--output-dir with --force is a usage error" sh -c "ASRIMG_EFIVARS_DIR=src '$asrimg' backup disk.img --output-dir images --force; [ \$? -eq 2 ]"
check "--output-dir with -o is a usage error" sh -c "'$asrimg' backup disk.img --output-dir images -o x.asrimg; [ \$? -eq 2 ]"
check "--output-dir that is not a directory" sh -c "'$asrimg' backup disk.img --output-dir disk.img 2>e; [ \$? -eq 1 ] && grep -q 'not a directory' e"
mkdir split
check "--output-dir with --split" env ASRIMG_EFIVARS_DIR=src "$asrimg" backup disk.img --volumes all --output-dir split --split 64K
check "split parts named after the image" sh -c "ls split | grep -Eq '^$host-[0-9]{8}-[0-9]{6}\.asrimg\.002$' && [ \$(ls split | wc -l) -ge 2 ]"

# Restore onto a new machine: its own entry (another disk) as Boot0000, BootOrder 0000.
$efivars boot dst 0000 "other disk" 99999999-2222-3333-4444-555555555555 1 34 100 '\EFI\other.efi'
$efivars order dst 0000
for run in 1 2; do
  ASRIMG_EFIVARS_DIR=dst "$asrimg" restore "$image" --to target.img --yes --verify --boot-entries --json >restore$run.json 2>restore$run.err
  echo $? >rc$run
done
check "restore --boot-entries exits 0 twice" sh -c "[ \$(cat rc1) -eq 0 ] && [ \$(cat rc2) -eq 0 ]"
check "--json: created, then kept" py "
import json
for run, action in ((1, 'created'), (2, 'kept')):
    d = json.load(open('$work/restore%d.json' % run)); b = d['boot_entries']
    assert d['ok'] and b['recorded'] and b['made'], b
    assert [e['action'] for e in b['entries']] == [action], b
    assert b['entries'][0]['number'] == 1 and b['entries'][0]['partition_guid'] == '$ESP', b
    assert b['boot_order_changed'] == (run == 1), b"
$efivars show dst >dst.json
sfdisk --json target.img >target.json
check "exactly one entry for the ESP, first in BootOrder, HD() the restored ESP's" py "
import json
v = json.load(open('$work/dst.json')); t = json.load(open('$work/target.json'))['partitiontable']
p = [p for p in t['partitions'] if p['node'].endswith('1')][0]
assert sorted(v['entries']) == ['0000', '0001'], v['entries'].keys()
ours = [k for k, e in v['entries'].items() if any(n.get('guid') == '$ESP' for n in e['nodes'])]
assert ours == ['0001'], ours
e = v['entries']['0001']; hd = e['nodes'][0]
assert e['description'] == 'debian' and e['attributes'] == 1, e
assert (hd['type'], hd['subtype'], hd['mbr_type'], hd['sig_type']) == (4, 1, 2, 2), hd
assert hd['partition'] == 1 and hd['start'] == p['start'] and hd['size'] == p['size'], (hd, p)
assert hd['guid'] == p['uuid'].lower() == '$ESP', (hd, p)
assert e['nodes'][1] == {'type': 4, 'subtype': 4, 'path': '\\\\EFI\\\\debian\\\\shimx64.efi'}, e['nodes'][1]
assert [n['type'] for n in e['nodes']] == [4, 4, 0x7f], 'the short form'
assert v['order'] == ['0001', '0000'], v['order']"
ASRIMG_EFIVARS_DIR=dst "$asrimg" restore "$image" --to target.img --yes --boot-entries >/dev/null 2>restore3.err
check "the text says the entry is already there" grep -q '^restore: boot entry Boot0001 already there: debian, HD(1,GPT,' restore3.err
check "the plan says which entries it will make" grep -q '^    Boot0000 debian: on image disk 0 partition 1 as restored$' restore3.err

# Not booted through UEFI: the disk is restored, the entries reported as not made.
ASRIMG_EFIVARS_DIR=$work/none "$asrimg" restore "$image" --to t2.img --yes --boot-entries 2>none.err >/dev/null
rc=$?
check "no efivarfs: the restore succeeds and says so" sh -c "[ $rc -eq 0 ] && grep -q 'UEFI boot entries not made: .*none is not there' none.err"
check "no efivarfs: --json says not made" sh -c "ASRIMG_EFIVARS_DIR=$work/none '$asrimg' restore '$image' --to t2.img --yes --boot-entries --json |
  python3 -c 'import json,sys; d=json.load(sys.stdin); b=d[\"boot_entries\"]; assert d[\"ok\"] and b[\"recorded\"] and not b[\"made\"] and \"not there\" in b[\"why\"], b'"
check "the disk restored without efivarfs is the image" "$asrimg" verify "$image" --against t2.img

# An image without entries: the removable-media path, held by the restored ESP or not.
mkdir empty
check "backup, no entries" env ASRIMG_EFIVARS_DIR=empty "$asrimg" backup disk.img --volumes all -o noent.asrimg
ASRIMG_EFIVARS_DIR=dst "$asrimg" restore noent.asrimg --to t3.img --yes --boot-entries 2>noent.err >/dev/null
check "no entries: the fallback path, which the ESP holds" grep -q 'records no UEFI boot entries: the disk boots on UEFI through the removable-media path \\EFI\\BOOT\\BOOTX64.EFI, which the restored ESP (disk 0 partition 1) holds$' noent.err
mdel -i disk.img@@1M ::/EFI/BOOT/BOOTX64.EFI
check "backup, no entries, no fallback loader" env ASRIMG_EFIVARS_DIR=empty "$asrimg" backup disk.img --volumes all -o nofb.asrimg
check "no loader: --json says the ESP lacks it" sh -c "ASRIMG_EFIVARS_DIR=dst '$asrimg' restore nofb.asrimg --to t4.img --yes --boot-entries --json |
  python3 -c 'import json,sys; b=json.load(sys.stdin)[\"boot_entries\"]; f=b[\"fallback\"]; assert not b[\"recorded\"] and f[\"present\"] is False and f[\"partition\"]==1, b'"
check "the new machine's variables are as the two restores left them" sh -c "[ \$(ls dst | wc -l) -eq 3 ]"

echo "boot_entries: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
