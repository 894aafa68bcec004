#!/bin/bash
# The default backup of disks laid out as installers lay out storage stacks (tests/stack_disks.sh:
# Debian guided LVM, LVM over two disks with the root in two segments, LUKS2 under LVM, /var,
# swap and /home partitions), restored onto larger disks full of garbage, must bring back every
# volume the machine needs (tests/stack_check.sh: tables, PV/VG/LV metadata through lvm2's own
# tools, e2fsck, every file equal, swap and LUKS headers). Also: `layout --json` decides critical
# or not for every volume as the manifest says (/home a data volume, its reason saying so), and an
# LVM layout's image holds only the used blocks of its critical LVs, not the whole PV.
# Usage: stack_backup_test.sh ASRIMG. Exit 77 when the disks cannot be built here.
set -u
asrimg=$1
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/asrimg-stackbackup-XXXXXX)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
bad() { echo "FAILED: $*"; failed=$((failed + 1)); }

"$here/stack_disks.sh" "$work" >"$work/build.log" 2>&1
rc=$?
((rc == 77)) && { echo "SKIP: stack_disks.sh skipped"; exit 77; }
((rc == 0)) || { echo "FAILED: stack_disks.sh exit $rc"; cat "$work/build.log"; exit 1; }

# Critical or not, per volume of the manifest, as layout --json says it (a LUKS container holding
# the root's VG is critical though not looked into: no root is found elsewhere).
check_layout() {
    local m=$1 json=$2
    python3 - "$m" "$json" <<'EOF'
import json, os, sys
manifest, disks = sys.argv[1], json.load(open(sys.argv[2]))
parts = {(d, p["number"]): p for d, disk in enumerate(disks) for p in disk["partitions"]}
lvs = {lv["name"]: lv for disk in disks for lv in disk["logical_volumes"]}
bad = []
# A VG inside LUKS is not looked into without the key (the container is taken whole instead).
locked = {l.split(" vg=")[1].split()[0] for l in open(manifest) if l.startswith("pv ") and " in=luks:" in l}
if os.environ.get("KEYED", "0") != "0":
    locked = set()
for line in open(manifest):
    if not line.startswith("vol "):
        continue
    head, _, reason = line.partition(" reason=")
    f = dict(kv.split("=", 1) for kv in head.split()[1:])
    kind, _, where = f["at"].partition(":")
    if kind == "part":
        d, n = map(int, where.split(":"))
        got = parts.get((d, n))
    elif kind == "lv":
        if where.split("/")[0] in locked:
            continue
        got = lvs.get(where)
    else:
        continue  # inside LUKS: not looked into without a key
    want = f["critical"] == "yes"
    if got is None:
        bad.append(f"{f['name']}: not listed")
    elif got["critical"] != want:
        bad.append(f"{f['name']}: critical {got['critical']}, expected {want} ({got['reason']})")
    elif not want and "data volume" in reason and not got["reason"].startswith("data volume"):
        bad.append(f"{f['name']}: reason {got['reason']!r} does not say it is a data volume")
if bad:
    print("; ".join(bad))
    sys.exit(1)
EOF
}

# root_log MANIFEST zero|nonzero DISKFILE...: whether the log of vg0/root's ext4 journal (its
# blocks but the first, as debugfs lists the journal inode's) reads as zeros, or holds something,
# on the disks given in the manifest's order. Exit 2 when vg0/root is not on the disks themselves
# (inside LUKS) or not ext4.
root_log() {
    python3 - "$work" "$@" <<'EOF'
import os, re, subprocess, sys
work, manifest, mode, disks = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
segs = sorted((int(f["idx"]), f["on"], int(f["off"]), int(f["len"])) for f in
              (dict(kv.split("=", 1) for kv in l.split()[1:]) for l in open(manifest) if l.startswith("seg lv=vg0/root ")))
if not segs or any(not on.startswith("disk:") for _, on, _, _ in segs):
    sys.exit(2)
lv = os.path.join(work, "root-lv.img")
with open(lv, "wb") as out:
    for _, on, off, length in segs:
        with open(disks[int(on[5:])], "rb") as d:
            d.seek(off)
            out.write(d.read(length))
try:
    st = subprocess.run(["debugfs", "-R", "stat <8>", lv], capture_output=True, text=True).stdout
    head = subprocess.run(["dumpe2fs", "-h", lv], capture_output=True, text=True).stdout
    bs = re.search(r"^Block size:\s+(\d+)", head, re.M)
    runs = re.search(r"^(?:BLOCKS|EXTENTS):\n(.*)$", st, re.M)
    if not bs or not runs:
        sys.exit(2)
    bs, nonzero, logged = int(bs.group(1)), 0, 0
    with open(lv, "rb") as f:
        for a, b, p in re.findall(r"\((\d+)(?:-(\d+))?\):(\d+)", runs.group(1)):
            a, b, p = int(a), int(b or a), int(p)
            if a == 0:
                a, p = 1, p + 1
            if a > b:
                continue
            f.seek(p * bs)
            data = f.read((b - a + 1) * bs)
            logged += len(data)
            nonzero += len(data) - data.count(0)
finally:
    os.unlink(lv)
print(f"{logged} bytes of log, {nonzero} not zero")
sys.exit(0 if logged and (nonzero == 0) == (mode == "zero") else 1)
EOF
}

# What a backup captures as zeros without reading it: each captured partition's own filesystem's
# cleared ranges, and below LVM those of its captured LVs (an empty ext4 journal's log), as layout
# --json lists them; an LV inside LUKS has its log read (zeros of plaintext are not zeros of
# ciphertext).
cleared_expected() {
    python3 - "$1" "$2" "$3" <<'EOF'
import json, sys
manifest, layout, backup = sys.argv[1:]
disks, got = json.load(open(layout)), json.load(open(backup))["cleared_bytes"]
in_luks = {l.split(" vg=")[1].split()[0] for l in open(manifest) if l.startswith("pv ") and " in=luks:" in l}
stack_fs = {"LVM2_member", "linux_raid_member", "crypto_LUKS"}
want = sum(p["cleared_bytes"] for d in disks for p in d["partitions"]
           if p["capture"] == "used" and p["fs"] not in stack_fs)
below = sum(lv["cleared_bytes"] for d in disks for lv in d["logical_volumes"]
            if lv["capture"] != "skip" and lv["name"].split("/")[0] not in in_luks)
print(f"{got} bytes cleared, {below} of them from LVs")
sys.exit(0 if got == want + below else 1)
EOF
}

# One layout: layout --json against the manifest, the default backup, the restore onto larger
# garbage disks, stack_check.sh. tag names the run; the rest are options for layout and backup.
run_layout() {
    local m=$1 tag=$2
    shift 2
    local i t out
    mapfile -t imgs < <(sed -n 's/^disk index=[0-9]* file=\([^ ]*\) .*/\1/p' "$m")
    disks=() targets=() tfiles=()
    for i in "${imgs[@]}"; do
        disks+=("$work/$i")
        t=$work/target-$i
        # Larger by 32 MiB, and garbage wherever the restore does not write.
        head -c $(($(stat -c %s "$work/$i") + (32 << 20))) /dev/urandom >"$t"
        targets+=(--to "$t")
        tfiles+=("$t")
    done
    if out=$("$asrimg" layout --json "$@" "${disks[@]}" >"$work/$tag.json" 2>&1 && KEYED=$# check_layout "$m" "$work/$tag.json"); then
        ok "$tag: layout decides every volume as the manifest says"
    else
        bad "$tag: layout: $out"
    fi
    if ! "$asrimg" backup "$@" "${disks[@]}" -o "$work/$tag.asrimg" --json >"$work/$tag.backup.json" 2>"$work/$tag.err"; then
        bad "$tag: backup failed: $(cat "$work/$tag.err")"
        return
    fi
    if out=$(cleared_expected "$m" "$work/$tag.json" "$work/$tag.backup.json"); then
        ok "$tag: the backup captured the cleared ranges of its volumes and LVs as zeros: $out"
    else
        bad "$tag: cleared bytes: $out"
    fi
    # The root LV's journal log holds the kernel's transaction (stack_disks.sh journal_written):
    # verify --against the source disks finds the image's zeros there as its filesystem allows.
    if out=$(root_log "$m" nonzero "${disks[@]}"); then
        ok "$tag: the source root LV's journal log holds its old transaction: $out"
        if out=$("$asrimg" verify "$work/$tag.asrimg" "$@" --against "${disks[@]}" 2>&1); then
            ok "$tag: verify --against the source disks passes"
        else
            bad "$tag: verify --against the source disks: $out"
        fi
    elif [[ $? != 2 ]]; then
        bad "$tag: the source root LV's journal log: $out"
    fi
    if ! "$asrimg" restore "$work/$tag.asrimg" "${targets[@]}" --yes --verify >"$work/$tag.restore" 2>&1; then
        bad "$tag: restore failed: $(cat "$work/$tag.restore")"
        return
    fi
    # restore --verify reads the stacks back from the targets too.
    if [[ $("$asrimg" info --json "$work/$tag.asrimg" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["stacks"]))') == 0 ]] ||
        grep -q "^  storage stacks, read again from the disks:" "$work/$tag.restore"; then
        ok "$tag: restore --verify checks the stacks on the targets"
    else
        bad "$tag: restore --verify said nothing of the stacks: $(cat "$work/$tag.restore")"
    fi
    if out=$("$here/stack_check.sh" "$m" "${tfiles[@]}" 2>&1); then
        ok "$tag: default backup restored onto larger garbage disks: $(tail -1 <<<"$out")"
    else
        bad "$tag: after restore: $out"
    fi
    # Below LVM (not below LUKS) the log was captured as zeros: zeros over the garbage.
    if out=$(root_log "$m" zero "${tfiles[@]}"); then
        ok "$tag: the restored root LV's journal log reads as zeros: $out"
    elif [[ $? != 2 ]]; then
        bad "$tag: the restored root LV's journal log: $out"
    fi
    # verify --against reads the stacks again from the restored disks: every recorded layer is
    # found as recorded; without a key, what a LUKS container holds is said to be unchecked.
    "$asrimg" verify "$work/$tag.asrimg" "$@" --json --against "${tfiles[@]}" >"$work/$tag.verify.json" 2>&1
    if out=$(KEYED=$# python3 - "$work/$tag.asrimg" "$work/$tag.verify.json" "$asrimg" <<'EOF'
import json, os, subprocess, sys
v = json.load(open(sys.argv[2]))
st = json.loads(subprocess.run([sys.argv[3], "info", "--json", sys.argv[1]], capture_output=True).stdout)["stacks"]
layers = v.get("layers", [])
assert v["ok"], v
assert len(layers) == len(st), (layers, st)
locked = []
for s, l in zip(st, layers):
    assert l["uuid"] == s["uuid"], (s, l)
    if s["kind"] == "luks" and "locked" in l["message"]:
        locked.append(0)
    expect = "not_checked" if locked and s["kind"] == "lvm2" else "ok"
    assert l["result"] == expect, (l, locked)
assert bool(locked) == (bool(st) and st[0]["kind"] == "luks" and os.environ["KEYED"] == "0"), layers
print(", ".join(l["kind"] + " " + l["result"] for l in layers))
EOF
    ); then
        ok "$tag: verify --against finds every layer as recorded: $out"
    else
        bad "$tag: verify --against layers: $out"
    fi
}

for m in "$work"/*.manifest; do
    run_layout "$m" "$(basename "$m" .manifest)"
done
# The LUKS container opened with its passphrase (a key file holding it): the VG inside is looked
# into, and only the ciphertext of the used sectors is stored.
m=$work/debian-luks-lvm.manifest
printf '%s' "$(sed -n 's/^luks .*passphrase=\([^ ]*\).*/\1/p' "$m")" >"$work/key"
run_layout "$m" debian-luks-lvm-keyed --key-file "$work/key"
# Without the key, verify checks the container by its header and says what it could not check.
"$asrimg" verify "$work/debian-luks-lvm-keyed.asrimg" --json --against "$work/target-debian-luks-lvm.img" \
    >"$work/nokey.verify.json" 2>&1
if out=$(python3 -c '
import json, sys
v = json.load(open(sys.argv[1]))
l = v["layers"]
assert v["ok"] and [x["result"] for x in l] == ["ok", "not_checked"], v
assert "locked" in l[0]["message"] and "locked" in l[1]["message"], l' "$work/nokey.verify.json" 2>&1); then
    ok "debian-luks-lvm: verify --against without the key checks the LUKS header, names the VG inside as not checked"
else
    bad "debian-luks-lvm: verify --against without the key: $out"
fi
# A restored PV whose metadata area header is damaged: the VG no longer assembles, and verify
# --against names the layer as well as the first differing byte.
t=$work/target-debian-lvm.img
pv=$("$asrimg" layout --json "$t" | python3 -c '
import json, sys
print(next(p["start_bytes"] for p in json.load(sys.stdin)[0]["partitions"] if p["fs"] == "LVM2_member"))')
printf 'garbage!' | dd of="$t" bs=1 seek=$((pv + 4096 + 64)) conv=notrunc status=none
if ! "$asrimg" verify "$work/debian-lvm.asrimg" --against "$t" >"$work/damaged.out" 2>&1 &&
    grep -q "LVM2 VG vg0: DIFFERS: not found on the disks" "$work/damaged.out"; then
    ok "debian-lvm: verify --against names the VG that no longer assembles after its PV's metadata is damaged"
else
    bad "debian-lvm: damaged PV metadata: $(cat "$work/damaged.out")"
fi

# Used blocks, not the whole PV: the LVM partition's capture is its metadata plus the used blocks
# of root, var and the swap header (the manifest's files are a few MiB), far below its size.
if python3 - "$work/debian-lvm.backup.json" "$work/debian-lvm.json" <<'EOF'; then
import json, sys
backup, layout = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
pv = next(v for v in backup["volumes"] if v["fs"] == "LVM2_member")
size = next(p["size_bytes"] for p in layout[0]["partitions"] if p["fs"] == "LVM2_member")
lvs = {lv["name"]: lv for lv in backup["logical_volumes"]}
assert pv["capture"] == "used" and pv["capture_bytes"] < size // 4, (pv, size)
assert lvs["vg0/home"]["capture"] == "skip" and lvs["vg0/root"]["capture"] == "used", lvs
assert lvs["vg0/swap_1"]["capture"] == "header", lvs
EOF
    ok "debian-lvm: the PV is captured by its LVs' used blocks, /home left out, swap by its header"
else
    bad "debian-lvm: capture sizes (see above)"
fi
# RHEL and Fedora: every XFS and btrfs volume (/boot, the root LV, the btrfs holding the root and
# /home subvolumes) is captured by its used blocks, not whole.
if python3 - "$work/rhel-xfs-lvm.backup.json" "$work/fedora-btrfs.backup.json" <<'EOF'; then
import json, sys
rhel, fedora = (json.load(open(p)) for p in sys.argv[1:])
vols = [v for v in rhel["volumes"] + fedora["volumes"] if v["fs"] in ("xfs", "btrfs")]
lvs = [v for v in rhel["logical_volumes"] if v["fs"] == "xfs"]
assert len(vols) == 2 and len(lvs) == 1, (vols, lvs)
assert all(v["capture"] == "used" for v in vols + lvs), vols + lvs
EOF
    ok "rhel-xfs-lvm, fedora-btrfs: /boot XFS, the XFS root LV and the btrfs root captured by their used blocks"
else
    bad "rhel-xfs-lvm, fedora-btrfs: XFS or btrfs captured whole (see above)"
fi
# Fedora: the root is the subvolume the boot loader's rootflags=subvol=root names, not the older
# "old" (a lower id) whose fstab names a /var that is gone: no warning of a missing volume.
if python3 - "$work/fedora-btrfs.json" <<'EOF'; then
import json, sys
disk = json.load(open(sys.argv[1]))[0]
p = next(p for p in disk["partitions"] if p["fs"] == "btrfs")
assert p["reason"] == "root filesystem: holds /etc/fstab in subvolume /root", p
assert not any("/var" in w for w in disk.get("warnings", [])), disk.get("warnings")
EOF
    ok "fedora-btrfs: the root is the subvolume rootflags= names"
else
    bad "fedora-btrfs: the root subvolume (see above)"
fi
# Opened, the container is captured as its header and the ciphertext of its used sectors: far
# less than the whole container taken without the key, and no plaintext of a root file in the image.
if python3 - "$work/debian-luks-lvm.backup.json" "$work/debian-luks-lvm-keyed.backup.json" <<'EOF'; then
import json, sys
whole, keyed = (next(v for v in json.load(open(p))["volumes"] if v["fs"] == "crypto_LUKS") for p in sys.argv[1:])
assert whole["capture"] == "full" and keyed["capture"] == "used", (whole, keyed)
assert keyed["capture_bytes"] < whole["capture_bytes"] // 2, (whole, keyed)
EOF
    ok "debian-luks-lvm: opened, the container is captured by its used sectors"
else
    bad "debian-luks-lvm: capture sizes with and without the key (see above)"
fi
# The image records the stacks, each layer before the ones on it: the container, then the VG whose
# PV is the container's volume.
if "$asrimg" info --json "$work/debian-luks-lvm-keyed.asrimg" | python3 -c '
import json, sys
st = json.load(sys.stdin)["stacks"]
assert [s["kind"] for s in st] == ["luks", "lvm2"], st
assert st[0]["members"][0]["on"] == "partition" and st[0]["members"][0]["partition"] == 3, st
assert st[1]["name"] == "vg0" and st[1]["members"][0]["on"] == "stack" and st[1]["members"][0]["stack"] == 0, st
lv = {v["name"]: v for v in st[1]["volumes"]}
assert lv["root"]["critical"] and lv["home"]["capture"] == "skip", lv
assert (lv["root"]["mount"], lv["var"]["mount"], lv["home"]["mount"], lv["swap_1"]["mount"]) == ("/", "/var", "/home", ""), lv'; then
    ok "debian-luks-lvm: the image records the LUKS container and the VG inside it, each LV with its mount point"
else
    bad "debian-luks-lvm: info --json stacks (see above)"
fi
# (The same grep finds it in an uncompressed image of the same machine without LUKS.)
if "$asrimg" backup "$work/debian-luks-lvm.img" --key-file "$work/key" --level 0 -o "$work/plain.asrimg" \
    >/dev/null 2>&1 && ! grep -q "ID=debian" "$work/plain.asrimg" &&
    "$asrimg" backup "$work/debian-lvm.img" --level 0 -o "$work/clear.asrimg" >/dev/null 2>&1 &&
    grep -q "ID=debian" "$work/clear.asrimg"; then
    ok "debian-luks-lvm: an uncompressed image of the opened container holds no plaintext of /etc/os-release"
else
    bad "debian-luks-lvm: the image holds plaintext (or the backup failed)"
fi

echo "stack_backup: $passed passed, $failed failed"
((failed == 0))
