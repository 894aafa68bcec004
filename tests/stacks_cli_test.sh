#!/usr/bin/env bash
# The storage stacks an image records (SPEC.md section 6, feature stacks), as the command shows
# them: info (text and --json), the restore plan, and --grow's first-boot note for a PV on the
# grown partition, from the golden v1-stacks image onto files (no loop devices); and what a backup
# records of the PVs lvm_fixture.sh made with lvm2's tools (when it could make them).
# Usage: stacks_cli_test.sh ASRIMG GOLDEN_DIR [LVM_FIXTURES]
set -u
unset COLUMNS
asrimg=$1 golden=$2/v1-stacks.asrimg plain=$2/v1-basic.asrimg fixtures=${3:-}
work=$(mktemp -d /tmp/asrimg-stacks-XXXXXX)
trap 'rm -rf "$work"' EXIT
pass=0 fail=0
check() { # name, then a command that must succeed
  local name=$1; shift
  if "$@" >"$work/out" 2>"$work/err"; then pass=$((pass + 1)); else
    fail=$((fail + 1)); echo "FAIL: $name"; sed 's/^/  out: /' "$work/out" | head -5; sed 's/^/  err: /' "$work/err" | head -5; fi
}

check "info --json lists the VG, its PVs and LVs, and the LUKS inside" sh -c "'$asrimg' info --json '$golden' | python3 -c '
import json, sys
d = json.load(sys.stdin)
vg, luks = d[\"stacks\"]
assert vg[\"kind\"] == \"lvm2\" and vg[\"name\"] == \"vg0\" and vg[\"seqno\"] == 7 and vg[\"unit_bytes\"] == 1 << 20, vg
assert [(m[\"on\"], m[\"disk\"], m[\"partition\"]) for m in vg[\"members\"]] == [(\"partition\", 0, 2), (\"partition\", 1, 0)]
assert vg[\"members\"][0][\"uuid\"] == \"G0ldn1-PV00-aaaa-bbbb-cccc-dddd-eeeeee\"
root, home, swap = vg[\"volumes\"]
assert (root[\"name\"], root[\"size_bytes\"], root[\"fs\"], root[\"capture\"], root[\"critical\"], root[\"mount\"]) == (\"root\", 4 << 20, \"ext4\", \"used\", True, \"/\"), root
assert (home[\"capture\"], home[\"critical\"]) == (\"skip\", False) and swap[\"capture\"] == \"header\"
assert luks[\"kind\"] == \"luks\" and luks[\"members\"][0] == {\"on\": \"stack\", \"stack\": 0, \"volume\": 1, \"uuid\": \"\", \"role\": 0, \"data_offset\": 1 << 20, \"data_bytes\": 2 << 20}
assert d[\"incompat_features\"] == 2
'"
check "info --json of an image without stacks has an empty list" sh -c "'$asrimg' info --json '$plain' | python3 -c '
import json, sys
assert json.load(sys.stdin)[\"stacks\"] == []'"
check "info shows the stacks" sh -c "'$asrimg' info '$golden' | grep -q '^  PV     disk 1 (whole disk), uuid G0ldn1-PV01'"
check "info shows each LV" sh -c "'$asrimg' info '$golden' | grep -q '^  LV     root: 4.0 MiB, fs ext4 .*capture used, critical, mounted at /$'"

truncate -s 16M "$work/a.img"
truncate -s 4M "$work/b.img"
check "restore --grow --json: the PV keeps its size, pvresize at first boot" sh -c "'$asrimg' restore '$golden' --to '$work/a.img' --to '$work/b.img' --grow --yes --json 2>'$work/plan' | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d[\"ok\"] and d[\"grown\"][\"partition\"] == 2, d
[n] = d[\"grown\"][\"stacks\"]
assert n[\"stack\"] == \"vg0\" and n[\"kind\"] == \"lvm2\" and n[\"keeps_size\"] and n[\"data_bytes\"] == 5 << 20, n
assert n[\"first_boot\"].startswith(\"pvresize \"), n
assert [s[\"name\"] for s in d[\"stacks\"]] == [\"vg0\", \"home_crypt\"]
'"
check "the plan shows the PV under its disk" grep -q "disk 0 partition 2: PV of LVM2 VG vg0 (stack 0)" "$work/plan"
check "the plan says what to run at first boot" grep -q "keeps its size (5.0 MiB of data).*pvresize" "$work/plan"
check "the plan lists the stacks" grep -q "stack 1: LUKS home_crypt" "$work/plan"
# The golden image's stack records describe metadata make_golden.c never wrote (its PV holds no
# LVM label): the bytes come back and compare equal, and the layer check, which reads the stacks
# from the disks rather than taking the records' word, finds neither stack and fails.
"$asrimg" verify "$golden" --against "$work/a.img" "$work/b.img" --grow >"$work/against" 2>&1
check "the PVs' bytes came back where they were" grep -q ": OK: 2 disks match the image" "$work/against"
check "verify --against reads the stacks from the disks: the golden's synthetic ones are not found" \
    grep -q "LVM2 VG vg0: DIFFERS: not found on the disks" "$work/against"
truncate -s 16M "$work/c.img"
truncate -s 4M "$work/d.img"
truncate -s 8M "$work/plain.img"
printf 'label: gpt\nstart=2048, type=L\n' | sfdisk -q "$work/plain.img"
"$asrimg" backup "$work/plain.img" --volumes all -o "$work/plain.asrimg" 2>/dev/null
truncate -s 16M "$work/plain-big.img"
check "restore --grow's summary: a plain partition's filesystem was not grown" sh -c "'$asrimg' restore '$work/plain.asrimg' --to '$work/plain-big.img' --grow --yes 2>&1 | grep 'grown from' | grep -q 'its filesystem was not grown'"
check "restore --grow's summary: the PV keeps its size, no resize2fs for a PV" sh -c "'$asrimg' restore '$golden' --to '$work/c.img' --to '$work/d.img' --grow --yes 2>&1 | grep 'grown from' | grep -q 'what it holds keeps its size:\$' && ! '$asrimg' restore '$golden' --to '$work/c.img' --to '$work/d.img' --grow --yes 2>&1 | grep -q resize2fs"

if [ -n "$fixtures" ] && [ -f "$fixtures/segs.txt" ]; then
  cp "$fixtures/a.img" "$fixtures/b.img" "$work/"
  check "backup of a VG over two PVs" "$asrimg" backup "$work/a.img" "$work/b.img" --volumes all -o "$work/ab.asrimg"
  # segs.txt is lvm2's own view (lvs --segments): name;start;extents;stripes;stripe size;PV ranges
  check "the image records the VG as lvm2 made it" sh -c "'$asrimg' info --json '$work/ab.asrimg' | python3 -c '
import json, sys
[vg] = json.load(sys.stdin)[\"stacks\"]
want = {}
for line in open(\"$fixtures/segs.txt\"):
    name, start, extents = line.split(\";\")[:3]
    want[name] = want.get(name, 0) + int(extents) * vg[\"unit_bytes\"]
assert vg[\"kind\"] == \"lvm2\" and vg[\"name\"].startswith(\"asrlvm\"), vg
assert [(m[\"on\"], m[\"disk\"], m[\"partition\"]) for m in vg[\"members\"]] == [(\"partition\", 0, 0), (\"partition\", 1, 0)]
assert all(len(m[\"uuid\"]) == 38 and m[\"data_offset\"] > 0 for m in vg[\"members\"]), vg[\"members\"]
assert {v[\"name\"]: v[\"size_bytes\"] for v in vg[\"volumes\"]} == want, (vg[\"volumes\"], want)
assert all(v[\"capture\"] == \"full\" for v in vg[\"volumes\"])
'"
  check "backup of one PV of the two" "$asrimg" backup "$work/a.img" --volumes all -o "$work/a.asrimg"
  check "the other PV is recorded absent, the LVs not looked into" sh -c "'$asrimg' info --json '$work/a.asrimg' | python3 -c '
import json, sys
[vg] = json.load(sys.stdin)[\"stacks\"]
assert [m[\"on\"] for m in vg[\"members\"]] == [\"partition\", \"absent\"] and vg[\"volumes\"] == [], vg
'"
fi

echo "stacks cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
