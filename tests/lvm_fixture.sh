#!/bin/bash
# Builds real LVM2 physical volumes for test_lvm with lvm2's own tools, without device-mapper:
# two files on loop devices, one VG with a linear LV, an LV in two segments (lvextend) and an
# LV striped over both PVs; --driverloaded n keeps lvcreate from asking the kernel for targets
# it has not got, -an -Zn from activating or zeroing. Leaves in OUT: a.img, b.img (the PVs, after
# the VG is gone from the loop devices; b.img with two metadata copies), segs.txt (lvs --segments, PV names as a.img/b.img); and
# c.img, a PV with a 60 KiB metadata area in a VG of its own, updated until its circular buffer
# wraps (the current text runs past the area's end and goes on after its header).
# Exit 77 (skip) without root, loop devices or lvm2.
set -euo pipefail
out=$1
[[ $(id -u) == 0 ]] && command -v pvcreate >/dev/null && command -v losetup >/dev/null || exit 77
rm -rf "$out" && mkdir -p "$out/etc"
work=$(mktemp -d)
vg=asrlvm$$
source "$(dirname "${BASH_SOURCE[0]}")/loop_lib.sh"
la= lb= lc=
cleanup() {
    [[ -n $la || -n $lb ]] && vgremove -f "$vg" >/dev/null 2>&1 || true
    [[ -n $lc ]] && vgremove -f "${vg}w" >/dev/null 2>&1 || true
    detach_ours "$work" $la $lb $lc
    rm -rf "$work"
}
trap cleanup EXIT
truncate -s 64M "$work/a.img" "$work/b.img"
truncate -s 16M "$work/c.img"
la=$(losetup -f --show "$work/a.img") || exit 77
lb=$(losetup -f --show "$work/b.img") || exit 77
lc=$(losetup -f --show "$work/c.img") || exit 77
# Only our two loop devices, no udev, no lvmetad, no devices file, no backups under /etc.
cat >"$out/etc/lvm.conf" <<CONF
devices { filter = [ "a|^$la\$|", "a|^$lb\$|", "a|^$lc\$|", "r|.*|" ] obtain_device_list_from_udev = 0 }
global { use_lvmetad = 0 }
activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }
backup { backup = 0 archive = 0 }
CONF
export LVM_SYSTEM_DIR=$out/etc LVM_SUPPRESS_FD_WARNINGS=1
lvm() { "$@" --driverloaded n >/dev/null 2>>"$out/lvm.log"; }
lvm pvcreate -y "$la"
lvm pvcreate -y --pvmetadatacopies 2 "$lb" # a second copy at the end of b.img
lvm vgcreate -y -s 1M "$vg" "$la" "$lb"
lvm lvcreate -an -Zn -L 8M -n root "$vg" "$la"
lvm lvcreate -an -Zn -L 3M -n two "$vg" "$la"
lvm lvcreate -an -Zn -L 2M -n gap "$vg" "$la"
lvm lvextend -L +5M "$vg/two" "$la"
lvm lvcreate -an -Zn -i 2 -I 64k -L 12M -n stripe "$vg"
lvs --driverloaded n --segments --units s --noheadings --nosuffix --separator ';' \
    -o lv_name,seg_start_pe,seg_size_pe,stripes,stripe_size,seg_pe_ranges "$vg" 2>>"$out/lvm.log" |
    sed -e "s|$la:|a.img:|g" -e "s|$lb:|b.img:|g" -e 's/^ *//' >"$out/segs.txt"
# The wrap: a tag added and removed keeps the text's size while each write moves it on.
lvm pvcreate -y --metadatasize 32k --dataalignment 64k "$lc"
lvm vgcreate -y -s 1M "${vg}w" "$lc"
lvm lvcreate -an -Zn -L 1M -n lv "${vg}w" "$lc"
wrapped() {
    local f=($(od -An -t u8 -j $((4096 + 32)) -N 24 "$lc"))  # mda size, text offset, text size
    ((f[1] + f[2] > f[0]))
}
for ((i = 0; i < 100; i++)); do
    wrapped && break
    lvm vgchange --addtag t "${vg}w"
    wrapped && break
    lvm vgchange --deltag t "${vg}w"
done
wrapped || { echo "the metadata of $lc never wrapped" >&2; exit 1; }
cp --sparse=always "$work/a.img" "$work/b.img" "$work/c.img" "$out/"
