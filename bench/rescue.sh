#!/usr/bin/env bash
# bench/rescue.sh: the recovery drive's figures (issue 16). Makes the boot fixture
# (tests/boot/mkbootdisk.sh) larger and fills its root with real files (a copy of this machine's
# /usr/lib/gcc and /usr/share/doc, about 400 MiB), backs it up onto a drive made by
# `asrimg rescue make`, then measures:
#   - the environment: kernel, initramfs and module sizes, and the time `rescue make` takes (--json);
#   - power-on to the image list: qemu's start to the environment's ready line, after which
#     `rescue run` lists the images (UEFI; KVM when /dev/kvm works, TCG otherwise: say which);
#   - restore speed: the same image restored with --verify on this host (cold cache) and inside the
#     environment (the report rescue run leaves on the drive: the restore's own --json).
# Prints the figures as a Markdown table on standard output. Needs root. Knobs: BENCH_DIR
# (/var/tmp/asrimg-bench), BENCH_RESCUE_MIB (the source disk, 1024), BENCH_VM_MEM (MiB, 2048).
set -euo pipefail
export LC_ALL=C
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
bench_require qemu-system-x86_64 losetup mount.exfat-fuse sfdisk python3
asrimg=${ASRIMG:-$top/build/asrimg}
[ -x "$asrimg" ] || die "$asrimg not built (cmake --build build)"
kit=$("$top/scripts/bootkit.sh" | tail -n 1)
size_mib=${BENCH_RESCUE_MIB:-1024}
mem=${BENCH_VM_MEM:-2048}
dir=${BENCH_DIR:-/var/tmp/asrimg-bench}/rescue
rm -rf "$dir"
mkdir -p "$dir/mnt"
data=
cleanup() {
  mountpoint -q "$dir/mnt" && umount "$dir/mnt"
  [ -n "$data" ] && losetup -d "$data" 2>/dev/null
  true
}
trap cleanup EXIT

say "source disk: the boot fixture, $size_mib MiB, its root filled with real files"
"$top/tests/boot/mkbootdisk.sh" "$dir/src.img" --size "$size_mib" --bootkit "$kit"
# shellcheck disable=SC1091
. "$dir/src.img.env"
data=$(losetup -f --show -o "$ROOT_OFFSET" --sizelimit "$ROOT_SIZE" "$dir/src.img")
mount "$data" "$dir/mnt"
mkdir -p "$dir/mnt/usr/lib" "$dir/mnt/usr/share"
cp -a /usr/lib/gcc "$dir/mnt/usr/lib/" && cp -a /usr/share/doc "$dir/mnt/usr/share/"
used=$(df -B1 --output=used "$dir/mnt" | tail -n 1)
umount "$dir/mnt" && losetup -d "$data" && data=

say "rescue make onto a file"
"$asrimg" rescue make "$dir/drive.img" --size 4G --system-root "$kit" --yes --json >"$dir/make.json"
read -r off dsize < <(sfdisk --json "$dir/drive.img" | python3 -c '
import json, sys
t = json.load(sys.stdin)["partitiontable"]; p = t["partitions"][2]
print(p["start"] * t["sectorsize"], p["size"] * t["sectorsize"])')
data=$(losetup -f --show -o "$off" --sizelimit "$dsize" "$dir/drive.img")
mount.exfat-fuse "$data" "$dir/mnt"
"$asrimg" backup "$dir/src.img" --output-dir "$dir/mnt/images" >/dev/null
printf 'restore=latest\nyes\nthen=poweroff\n' >"$dir/mnt/images/unattended.conf"
image=$(ls "$dir"/mnt/images/*.asrimg)
cp "$image" "$dir/host.asrimg"
umount "$dir/mnt" && losetup -d "$data" && data=

say "restore on this host (--verify, cold cache)"
truncate -s $(((size_mib + 256) << 20)) "$dir/target-host.img"
sync && echo 3 >/proc/sys/vm/drop_caches
"$asrimg" restore "$dir/host.asrimg" --to "$dir/target-host.img" --verify --yes --json >"$dir/host.json"

say "restore inside the environment (qemu, UEFI)"
accel=TCG
[ -w /dev/kvm ] && accel="KVM if its probe passes, else TCG"
head -c $(((size_mib + 256) << 20)) /dev/zero | tr '\0' '\377' >"$dir/target-vm.img"
t0=$(date +%s.%N)
"$top/tests/boot/qemu.sh" --firmware uefi --disk "$dir/drive.img" --disk "$dir/target-vm.img" --mem "$mem" \
  --expect "asrimg-rescue: next: poweroff" --until-off --timeout 3600 --log "$dir/vm.log" &
qpid=$!
ready=
while kill -0 $qpid 2>/dev/null; do
  [ -z "$ready" ] && grep -qa "asrimg-rescue: ready:" "$dir/vm.log" 2>/dev/null && ready=$(date +%s.%N)
  sleep 0.2
done
wait $qpid || die "the environment's restore did not finish (see $dir/vm.log)"

data=$(losetup -f --show -o "$off" --sizelimit "$dsize" "$dir/drive.img")
mount.exfat-fuse "$data" "$dir/mnt"
cp "$dir"/mnt/images/reports/*.json "$dir/vm.json"
umount "$dir/mnt" && losetup -d "$data" && data=

python3 - "$dir" "$used" "$t0" "$ready" "$accel" <<'EOF'
import json, sys
d, used, t0, ready, accel = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
make = json.load(open(d + "/make.json"))
host = json.load(open(d + "/host.json"))
vm = json.load(open(d + "/vm.json"))
r = vm["restore"]
mib = lambda b: "%.1f MiB" % (b / 2**20)
env = make.get("environment", {})
print("| figure | value |")
print("| --- | --- |")
print("| environment: kernel %s | %s |" % (env["kernel_version"], mib(env["kernel_bytes"])))
print("| environment: initramfs (%s) | %s |" % (env["initramfs_compression"], mib(env["initramfs_bytes"])))
print("| environment: %d modules, %d libraries (uncompressed) | %s, %s |" % (
    env["modules"], env["libraries"], mib(env["modules_bytes"]), mib(env["libraries_bytes"])))
print("| rescue make onto a 4 GiB file | %.2f s (the environment %.2f s) |" % (make["seconds"]["total"], make["seconds"]["environment"]))
print("| source root used | %s |" % mib(used))
if ready:
    print("| qemu start to the ready line (%s) | %.1f s |" % (accel, float(ready) - t0))
print("| restore --verify on the host (cold) | %.1f s, %.0f MB/s |" % (host["seconds"], host["mb_per_s"]))
print("| restore --verify in the environment (%s) | %.1f s, %.0f MB/s |" % (accel, r["seconds"], r["mb_per_s"]))
print("| in the environment / on the host | %.2fx |" % (r["mb_per_s"] / host["mb_per_s"]))
EOF
