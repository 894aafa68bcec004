#!/usr/bin/env bash
# End-to-end checks of the asrimg command: exit codes, one-line errors naming what and where,
# numbers and --to N=TARGET parsed strictly, valid --json, silence on a pipe.
# Usage: cli_test.sh ASRIMG ASRIMG-MKIMAGE
set -u
unset COLUMNS # tables wrap to it: the checks read them one row a line, as on a pipe
asrimg=$1 mkimage=$2
work=$(mktemp -d /tmp/asrimg-cli-XXXXXX)
trap 'rm -rf "$work"' EXIT
pass=0 fail=0
check() { # name, then a command that must succeed
  local name=$1; shift
  if "$@" >"$work/out" 2>"$work/err"; then pass=$((pass + 1)); else
    fail=$((fail + 1)); echo "FAIL: $name"; sed 's/^/  out: /' "$work/out" | head -5; sed 's/^/  err: /' "$work/err" | head -5; fi
}
exit_is() { local want=$1; shift; "$@"; [ $? -eq "$want" ]; }
one_error_line() { # stderr of the last command is exactly one "asrimg: error: ..." line mentioning $1
  [ "$(wc -l <"$work/err.saved")" -eq 1 ] && grep -q "^asrimg: error: .*$1" "$work/err.saved"
}
run_saving() { "$@" >"$work/out.saved" 2>"$work/err.saved"; echo $? >"$work/rc.saved"; }
rc_is() { [ "$(cat "$work/rc.saved")" -eq "$1" ]; }

# A small disk: data, zeros, and a repeated block.
head -c 3M /dev/urandom >"$work/disk.img"
truncate -s 6M "$work/disk.img"
dd if="$work/disk.img" of="$work/disk.img" bs=1M count=1 seek=4 conv=notrunc status=none
check "mkimage" "$mkimage" "$work/disk.img" -o "$work/a.asrimg"
run_saving "$asrimg" info "$work/a.asrimg"
check "info exits 0" rc_is 0
check "info names the image" grep -q "a.asrimg" "$work/out.saved"
check "info --json is valid JSON" sh -c "'$asrimg' info --json '$work/a.asrimg' | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"format_version\"]==1 and d[\"volumes\"][0][\"data_bytes\"]==4*1024*1024'"
check "verify exits 0" "$asrimg" verify "$work/a.asrimg"
check "verify is silent on stderr when piped" test ! -s "$work/err"
check "verify --json ok" sh -c "'$asrimg' verify --json '$work/a.asrimg' | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"ok\"] is True and d[\"problem_count\"]==0'"

cp "$work/a.asrimg" "$work/bad.asrimg"
printf '\xff' | dd of="$work/bad.asrimg" bs=1 seek=100000 conv=notrunc status=none
run_saving "$asrimg" verify "$work/bad.asrimg"
check "verify of a damaged image exits 1" rc_is 1
check "verify names the problem" grep -q "^asrimg: problem: chunk" "$work/err.saved"
check "verify --json lists the problem" sh -c "'$asrimg' verify --json '$work/bad.asrimg'; test \$? -eq 1" 
check "verify --json problem has a location" sh -c "'$asrimg' verify --json '$work/bad.asrimg' | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"ok\"] is False and d[\"problems\"][0][\"part\"]==1 and d[\"problems\"][0][\"part_offset\"]>0'"

head -c 50000 "$work/a.asrimg" >"$work/cut.asrimg"
run_saving "$asrimg" info "$work/cut.asrimg"
check "info of a truncated image exits 1" rc_is 1
check "truncated image: one error line saying incomplete" one_error_line "incomplete"

run_saving "$asrimg" info "$work/missing.asrimg"
check "missing image exits 1" rc_is 1
check "missing image: one error line naming it" one_error_line "missing.asrimg"

echo "not an image" >"$work/text.asrimg"
run_saving "$asrimg" verify "$work/text.asrimg"
check "not an image exits 1" rc_is 1
check "not an image: one error line naming it" one_error_line "text.asrimg"

run_saving "$asrimg" frobnicate
check "unknown command exits 2" rc_is 2
check "unknown command: one error line naming it" one_error_line "frobnicate"
run_saving "$asrimg"
check "no command exits 2" rc_is 2
check "no command: one error line, not the whole usage" one_error_line "no command"
check "no command: nothing on stdout" test ! -s "$work/out.saved"
for h in help --help; do
  run_saving "$asrimg" $h
  check "$h exits 0" rc_is 0
  check "$h prints the usage on stdout" grep -q "^usage: asrimg COMMAND" "$work/out.saved"
done
run_saving "$asrimg" info
check "missing argument exits 2" rc_is 2
for cmd in backup restore; do
  run_saving "$asrimg" $cmd --frobnicate
  check "$cmd with an unknown option exits 2" rc_is 2
  check "$cmd with an unknown option: one error line naming it" one_error_line "frobnicate"
done

# Numbers: digits only, in range. strtoul alone takes spaces, a sign and junk after a unit, and
# wraps a negative number; every numeric option of every command goes through the same parser.
# usage_error NAME CMD...: the command exits 2 with one error line and makes no image.
usage_error() {
  local name=$1; shift
  rm -f "$work/n.asrimg" "$work/n.img"
  run_saving "$@"
  check "$name: exits 2" rc_is 2
  check "$name: one error line" one_error_line ""
  check "$name: makes nothing" test ! -e "$work/n.asrimg" -a ! -e "$work/n.img"
}
for v in " 4" "+4" "4x" "" "-1" "99999999999999999999999" "0"; do
  usage_error "backup --threads '$v'" "$asrimg" backup "$work/disk.img" -o "$work/n.asrimg" --threads "$v"
  usage_error "bench --threads '$v'" "$asrimg" bench "$work/disk.img" --threads "$v"
  usage_error "restore --threads '$v'" "$asrimg" restore "$work/a.asrimg" --to "$work/n.img" --yes --threads "$v"
done
for v in " 3" "+3" "" "20"; do
  usage_error "backup --level '$v'" "$asrimg" backup "$work/disk.img" -o "$work/n.asrimg" --level "$v"
  usage_error "bench --level '$v'" "$asrimg" bench "$work/disk.img" --level "$v"
done
for v in " 1M" "+1M" "1Mx" "" "-1M" "99999999999999999999G" "99999999999T"; do
  usage_error "backup --split '$v'" "$asrimg" backup "$work/disk.img" -o "$work/n.asrimg" --split "$v"
done
check "backup --split 1MiB is a size" "$asrimg" backup "$work/disk.img" -o "$work/n.asrimg" --split 1MiB
check "backup --threads 2 --level 1 are numbers" \
  "$asrimg" backup "$work/disk.img" -o "$work/n2.asrimg" --threads 2 --level 1

# --to N=TARGET: N all digits names an image disk, which must exist; anything else is a path
# (here, relative to $work, where a file "99=t.img" would otherwise be made).
for to in 99=t.img 1=t.img 007=t.img 99999999999999999999=t.img 0=; do
  (cd "$work" && run_saving "$asrimg" restore a.asrimg --to "$to" --yes)
  check "restore --to $to onto a one-disk image exits 2" rc_is 2
  check "restore --to $to: one error line" one_error_line "$to"
  check "restore --to $to: no file made" test ! -e "$work/$to" -a ! -e "$work/t.img"
done
(cd "$work" && run_saving "$asrimg" restore a.asrimg --to 99=t.img --yes)
check "restore --to 99=t.img: the error says how to name such a file" grep -qF "given as ./99=t.img" "$work/err.saved"
(cd "$work" && run_saving "$asrimg" verify a.asrimg --against 1=disk.img)
check "verify --against 1=DISK of a one-disk image exits 2" rc_is 2
check "verify --against 1=DISK: one error line" one_error_line "1=disk.img"
(cd "$work" && run_saving "$asrimg" restore a.asrimg --to ./99=t.img --yes)
check "restore --to ./99=t.img exits 0" rc_is 0
check "restore --to ./99=t.img restores into the file 99=t.img" cmp "$work/99=t.img" "$work/disk.img"
(cd "$work" && run_saving "$asrimg" restore a.asrimg --to 0=t0.img --yes)
check "restore --to 0=t0.img exits 0" rc_is 0
check "restore --to 0=t0.img restores image disk 0 into t0.img" cmp "$work/t0.img" "$work/disk.img"

check "split mkimage" "$mkimage" "$work/disk.img" -o "$work/s.asrimg" --split 1048576 --level 0
check "split verify" "$asrimg" verify "$work/s.asrimg"
check "info shows parts" sh -c "'$asrimg' info --json '$work/s.asrimg' | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"parts\"]>=3'"
mv "$work/s.asrimg.002" "$work/aside"
run_saving "$asrimg" verify "$work/s.asrimg"
check "missing part exits 1" rc_is 1
check "missing part is named" grep -q "s.asrimg.002" "$work/err.saved"

run_saving "$mkimage" "$work/disk.img" -o "$work/a.asrimg"
check "existing image is not overwritten" rc_is 1
check "refusal names the file" grep -q "a.asrimg already exists" "$work/err.saved"

# layout: the JSON names scripts rely on.
truncate -s 64M "$work/gpt.img"
printf 'label: gpt\nstart=2048, size=16MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI"\ntype=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="data"\n' |
  sfdisk --quiet "$work/gpt.img"
check "layout exits 0" "$asrimg" layout "$work/gpt.img"
check "layout --json has the documented fields" sh -c "'$asrimg' layout --json '$work/gpt.img' | python3 -c '
import json, sys
disks = json.load(sys.stdin)
d = disks[0]
for k in (\"path\", \"size_bytes\", \"logical_sector\", \"physical_sector\", \"label\", \"id\", \"reading\", \"partitions\"):
    assert k in d, k
assert d[\"label\"] == \"gpt\" and d[\"size_bytes\"] == 64 << 20 and d[\"reading\"].startswith(\"read as gpt: \")
p = d[\"partitions\"]
assert len(p) == 2
for k in (\"number\", \"start_bytes\", \"size_bytes\", \"type\", \"name\", \"fs\", \"used_bytes\", \"critical\", \"reason\", \"capture\"):
    assert k in p[0], k
assert p[0][\"critical\"] is True and p[0][\"capture\"] != \"skip\" and p[0][\"name\"] == \"EFI\"
assert p[1][\"critical\"] is False and p[1][\"capture\"] == \"skip\"
assert p[0][\"capture\"] in (\"used\", \"full\", \"header\", \"skip\")
'"
check "layout --volumes all selects every volume" sh -c "'$asrimg' layout --json --volumes all '$work/gpt.img' | python3 -c '
import json, sys
assert all(p[\"capture\"] != \"skip\" for p in json.load(sys.stdin)[0][\"partitions\"])'"
cp "$work/gpt.img" "$work/ext.img"
mkfs.ext4 -q -F -E offset=$((34816 * 512)) "$work/ext.img" 40M
check "layout --json --extents: used ranges per used capture, summing to used_bytes" sh -c "'$asrimg' layout --json --extents --volumes all '$work/ext.img' | python3 -c '
import json, sys
p = json.load(sys.stdin)[0][\"partitions\"]
assert p[1][\"capture\"] == \"used\" and \"extents\" not in p[0], p
e = p[1][\"extents\"]
assert e and sum(l for o, l in e) == p[1][\"used_bytes\"], e
assert all(a[0] + a[1] < b[0] for a, b in zip(e, e[1:])) and e[-1][0] + e[-1][1] <= p[1][\"size_bytes\"]
'"
# A volume mounted at /boot (here read-only, through a loop device at its offset, in a mount
# namespace of its own) is critical whatever its type says; first, not mounted, it is not.
check "an unmounted generic data partition is not critical" sh -c "'$asrimg' layout --json '$work/ext.img' | python3 -c '
import json, sys
p = json.load(sys.stdin)[0][\"partitions\"][1]
assert p[\"critical\"] is False, p'"
if [ -d /boot ] && unshare -m true 2>/dev/null; then
  check "a partition mounted at /boot is critical, and says so" unshare -m sh -c "mount --make-rprivate / &&
    mount -o ro,loop,offset=$((34816 * 512)),sizelimit=$((40 << 20)) '$work/ext.img' /boot &&
    '$asrimg' layout --json '$work/ext.img' | python3 -c '
import json, sys
p = json.load(sys.stdin)[0][\"partitions\"][1]
assert p[\"critical\"] is True and p[\"reason\"] == \"mounted at /boot on this machine\", p'"
else
  echo "skip: no mount namespace here (unshare -m) for the mounted-at-/boot check"
fi
# A FAT32 made on the whole disk: sector 0 ends in 55 AA with empty MBR entries, or (Windows XP's
# boot messages there) impossible ones. Read as the filesystem, saying why, never refused.
if command -v mkfs.vfat >/dev/null && command -v mcopy >/dev/null; then
  truncate -s 40M "$work/sf.img"
  mkfs.vfat -F 32 -s 1 "$work/sf.img" >/dev/null && MTOOLS_SKIP_CHECK=1 mcopy -i "$work/sf.img" /etc/os-release ::/
  cp "$work/sf.img" "$work/sf-xp.img"
  printf '\r\nRemove disks or other media.\377\r\nDisk error\377\r\nPress any key to restart\r\n' |
    dd of="$work/sf-xp.img" bs=1 seek=$((0x1ac)) conv=notrunc status=none
  for sf in sf sf-xp; do
    check "layout of a whole-disk FAT32 ($sf): one volume, vfat, and why" sh -c "'$asrimg' layout --json '$work/$sf.img' | python3 -c '
import json, sys
d = json.load(sys.stdin)[0]
assert d[\"label\"] == \"none\", d
assert d[\"reading\"].startswith(\"read as a whole-disk vfat: sector 0 is a FAT32 boot sector and its MBR entries are \"), d
p = d[\"partitions\"]
assert [(v[\"number\"], v[\"fs\"], v[\"size_bytes\"]) for v in p] == [(0, \"vfat\", 40 << 20)] and p[0][\"used_bytes\"] > 0, p
'"
  done
  check "layout text says which way the disk was read" sh -c "'$asrimg' layout '$work/sf-xp.img' | grep -q '^  read as a whole-disk vfat: .*entry 1 has boot flag 0x6f'"
else
  echo "skip: no mkfs.vfat or mcopy for the whole-disk FAT32 layout checks"
fi
run_saving "$asrimg" layout --extents "$work/gpt.img"
check "layout --extents without --json exits 2" rc_is 2
run_saving "$asrimg" layout "$work/missing.img"
check "layout of a missing disk exits 1" rc_is 1
check "layout of a missing disk: one error line naming it" one_error_line "missing.img"
run_saving "$asrimg" layout --volumes 0:7 "$work/gpt.img"
check "layout with a bad selection exits 1" rc_is 1
check "bad selection is named" one_error_line "no volume 7"
for sel in "+1" "0:+1" "-1" "0:-1" "1x" "99999999999999999999999" "18446744073709551617:1"; do
  run_saving "$asrimg" layout --volumes "$sel" "$work/gpt.img"
  check "layout --volumes '$sel' exits 1" rc_is 1
  check "layout --volumes '$sel': one error line" one_error_line "volume selection"
done
check "--volumes mixes PART and DISK:PART in any order" \
  sh -c "'$asrimg' layout --json --volumes '2,0:1' '$work/gpt.img' | python3 -c '
import json, sys
assert all(p[\"capture\"] != \"skip\" for p in json.load(sys.stdin)[0][\"partitions\"])'"

# Text tables (layout, info, the restore plan) show every name and type whole, columns sized to
# them; the last column wraps to COLUMNS. layout's used_bytes is the used map's (null, "-" in
# text, without one) and capture_bytes what this selection reads; a note under a skipped volume
# says it applies if selected; restore --json lists the partitions it leaves untouched, as the
# plan does. A GPT disk (long names, one non-ASCII, a type libfdisk does not know) and an MBR
# one (long type names, an extended partition).
truncate -s 64M "$work/tg.img" "$work/tm.img"
printf '%s\n' 'label: gpt' \
  'start=2048, size=8MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI System Partition"' \
  'size=8MiB, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F, name="swap space for hibernation"' \
  'size=24MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="the root filesystem of this machine!"' \
  'size=8MiB, type=11111111-2222-3333-4444-555555555555, name="données système"' | sfdisk --quiet "$work/tg.img"
mkfs.ext4 -q -F -E offset=$((34816 * 512)) "$work/tg.img" 24M
printf '%s\n' 'label: dos' 'start=2048, size=8MiB, type=83, bootable' 'size=8MiB, type=82' 'size=16MiB, type=ef' \
  'type=5' 'size=8MiB, type=83' | sfdisk --quiet "$work/tm.img"
cat >"$work/tables.py" <<'EOF'
import json, re, subprocess, sys
asrimg, what, disk = sys.argv[1:4]
def run(*args, env=None):
    return subprocess.run([asrimg, *args], capture_output=True, text=True, check=True, env=env).stdout
def rows(text):  # the header line, and the table's rows by their first cell
    lines = text.splitlines()
    head = next(l for l in lines if l.lstrip().startswith("#  "))
    return head, {l.split()[0]: l for l in lines if re.match(r"^ +[0-9-]+  ", l)}
def aligned(head, row, col):  # a cell starts (numbers: ends) where its header does, in characters
    at = head.index(col)
    if col in ("start", "size"):
        at += len(col) - 1
        return row[at] != " " and row[at + 1] == " "
    return row[at] != " " and row[at - 1] == " "
def layout(sel):
    return json.loads(run("layout", "--json", "--volumes", sel, disk))[0]["partitions"], \
        run("layout", "--volumes", sel, disk)
for sel in ("critical", "all") if what.startswith("layout") else ():
    parts, text = layout(sel)
    head, r = rows(text)
    for p in parts:
        if p["type"] == "Extended":  # no volume, no row
            continue
        row = r[str(p["number"])]
        if what == "layout-table":
            assert p["type"] in row and p["name"] in row, (p["type"], p["name"], row)
            for col in ("start", "type", "fs", "critical", "capture", "reason"):
                assert aligned(head, row, col), (col, head, row)
        if what == "layout-used":  # the used map's bytes, null ("-") without one; what is read
            used = row[:head.index("used") + 4].split()[-1]
            assert (p["used_bytes"] is None) == (used == "-"), (p, row)
            want = 0 if p["capture"] == "skip" else p["size_bytes"] if p["capture"] == "full" else p["used_bytes"]
            assert p["capture_bytes"] == want, p
    lines = text.splitlines()
    for i, l in enumerate(lines if what == "layout-notes" else ()):  # under a skipped volume: if selected
        if l.startswith("      note: "):
            k = i - 1
            while not re.match(r"^ +[0-9-]+  ", lines[k]):
                k -= 1
            skipped = lines[k][head.index("capture"):].startswith("skip ")
            assert l.startswith("      note: if selected: ") == skipped, (lines[k], l)
if what == "layout-wrap":  # no line wider than COLUMNS, every reason whole once the lines are joined
    text = run("layout", disk, env={"COLUMNS": sys.argv[4], "PATH": "/usr/bin:/bin"})
    assert all(len(l) <= int(sys.argv[4]) for l in text.splitlines() if not l.startswith(("disk ", "  read as"))), text
    flat = " ".join(text.split())
    for p in json.loads(run("layout", "--json", disk))[0]["partitions"]:
        assert p["type"] == "Extended" or p["reason"] in flat, (p["reason"], text)
if what == "info":  # the type as libfdisk names it, else the whole GUID or the MBR code
    img = json.loads(run("info", "--json", disk))
    head, r = rows(run("info", disk))
    known = {"c12a7328-f81f-11d2-ba4b-00a0c93ec93b": "EFI System", "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f":
             "Linux swap", "0fc63daf-8483-4772-8e79-3d69d8477de4": "Linux filesystem"}
    for p in img["disks"][0]["partitions"]:
        row = r[str(p["number"])]
        assert p["name"] in row and aligned(head, row, "capture"), (p, row)
        assert known.get(p["type"], p["type"]) in row, (p, row)
if what.startswith("restore"):  # disk: the source disk; argv[4]: restore --json's output, argv[5]: its stderr
    src = json.loads(run("layout", "--json", disk))[0]["partitions"]
    out, plan = json.load(open(sys.argv[4])), open(sys.argv[5]).read()
    head, r = rows(plan)
    untouched = [p for p in src if p["capture"] == "skip" and p.get("kind") != "extended"]
for p in src if what == "restore-plan" else ():
    row = r[str(p["number"])]
    assert p["name"] in row and aligned(head, row, "size"), (p, row)
    assert (p["type"] if p["type"] != "unknown" else p["type_guid"]) in row, (p, row)
    if p.get("kind") == "extended":
        assert "restored: its EBRs" in row, row
    elif p["capture"] == "skip":
        assert "not in the image (not selected at backup)" in row, row
    else:
        assert "restored (" in row, row
if what == "restore-json":
    got = out["untouched"]
    assert [(u["disk"], u["partition"], u["start_bytes"], u["size_bytes"], u["name"]) for u in got] == \
        [(0, p["number"], p["start_bytes"], p["size_bytes"], p["name"]) for p in untouched], (got, untouched)
    for u, p in zip(got, untouched):
        assert u["type"] == p.get("type_guid", p.get("mbr_type")), (u, p)
        assert u["type_name"] == (p["type"] if p["type"] != "unknown" else ""), (u, p)
        assert u["why"].startswith("not in the image") and u["why"] in " ".join(plan.split()), (u, plan)
EOF
# tm's reasons wrap in their column at 100 columns; tg's rows leave them too little room at 130:
# each goes on a line of its own.
for d in tg:130 tm:100; do
  cols=${d#*:} d=${d%:*}
  check "layout $d: whole names and types, in aligned columns" python3 "$work/tables.py" "$asrimg" layout-table "$work/$d.img"
  check "layout $d: the last column wrapped to COLUMNS=$cols, nothing lost" \
    python3 "$work/tables.py" "$asrimg" layout-wrap "$work/$d.img" "$cols"
  check "layout $d: used_bytes is the used map's (null and '-' without one), capture_bytes what is read" \
    python3 "$work/tables.py" "$asrimg" layout-used "$work/$d.img"
  check "layout $d: a note under a skipped volume says it applies if selected" \
    python3 "$work/tables.py" "$asrimg" layout-notes "$work/$d.img"
  "$asrimg" backup "$work/$d.img" -o "$work/$d.asrimg" 2>/dev/null
  check "info $d: whole names and types" python3 "$work/tables.py" "$asrimg" info "$work/$d.asrimg"
  "$asrimg" restore "$work/$d.asrimg" --to "$work/$d-t.img" --yes --json >"$work/$d-r.json" 2>"$work/$d-r.err"
  check "restore $d: the plan shows each partition's type and name, and what it leaves untouched" \
    python3 "$work/tables.py" "$asrimg" restore-plan "$work/$d.img" "$work/$d-r.json" "$work/$d-r.err"
  check "restore --json $d: the partitions left untouched, as the plan says" \
    python3 "$work/tables.py" "$asrimg" restore-json "$work/$d.img" "$work/$d-r.json" "$work/$d-r.err"
done

# A partition name is bytes from the disk: one holding an escape sequence, a tab or a newline
# must not reach the terminal as such (it would redraw the screen or forge a row); in text it
# shows with '?' for each control character, in JSON escaped.
cp "$work/tg.img" "$work/tc.img"
sgdisk -c 4:"$(printf 'evil\033[2J\tname\nrow')" "$work/tc.img" >/dev/null
"$asrimg" layout "$work/tc.img" >"$work/tc.out" 2>&1
check "layout: no control character of a partition name reaches the terminal" \
  sh -c "! LC_ALL=C grep -q '[[:cntrl:]]' \"\$1\"" - "$work/tc.out"
check "layout: the name shows with '?' for its control characters" grep -qF 'evil?[2J?name?row' "$work/tc.out"
"$asrimg" layout --json "$work/tc.img" >"$work/tc.json"
check "layout --json: the name whole, escaped" python3 -c '
import json, sys
p = json.load(open(sys.argv[1]))[0]["partitions"]
assert any(x["name"] == "evil\x1b[2J\tname\nrow" for x in p), [x["name"] for x in p]' "$work/tc.json"

echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
