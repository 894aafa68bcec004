#!/bin/bash
# Builds disk images laid out the way Debian's installer lays them out, with the real userspace tools
# and no device-mapper: partitions with sfdisk, ESPs with mkfs.vfat and mtools, filesystems made on
# plain files (mkfs.ext4 -d, mkswap) and written into their partitions or into their LVs' extents at
# the offsets LVM's own metadata gives (lvm2 runs with --driverloaded n on loop devices over the PV's
# partition, configured by a temporary LVM_SYSTEM_DIR that sees only those loop devices), LUKS2 made
# offline by `cryptsetup reencrypt --encrypt` on a file already holding the plaintext PV. Each disk
# comes with a manifest of what a restore must bring back; tests/stack_check.sh checks disks
# against it.
#
# Usage: stack_disks.sh OUTDIR [LAYOUT...]      (default: every layout; exit 77 without root/tools)
# Layouts (OUTDIR/LAYOUT.img, or LAYOUT-0.img and LAYOUT-1.img; OUTDIR/LAYOUT.manifest):
#   debian-lvm       GPT: ESP, /boot ext4, PV (type Linux LVM) of VG vg0 with LVs root, var, swap_1,
#                    home and free extents; root's fstab names them by /dev/mapper/vg0-*.
#   lvm-two-disks    the same over two disks: PV on disk 0 (after ESP and /boot) and on disk 1;
#                    root in two segments, one on each PV (lvextend onto the second).
#   debian-luks-lvm  as debian-lvm, the PV inside LUKS2 (sda3_crypt in crypttab, data offset 16 MiB).
#   data-partition   no LVM: ESP, root, /var, swap and /home partitions named by UUID in fstab.
#   rhel-xfs-lvm     as RHEL/Rocky/Alma install: ESP, /boot XFS, PV of VG rhel with LVs root (XFS)
#                    and swap; Boot Loader Specification entries with rd.lvm.lv=
#   fedora-btrfs     as Fedora installs: ESP, /boot ext4, one btrfs with subvolumes root and home
#                    (zstd compression), rootflags=subvol=root; and an older subvolume "old" holding
#                    a root whose fstab names a /var that is gone
#
# Manifest: one record a line, `TYPE key=value ...`; values have no spaces, except the last key of
# `vol` (reason=) and of `file` (path=), which take the rest of the line. Lines starting with # are
# comments. Offsets and sizes are bytes unless named *_sectors.
#   layout name=NAME
#   disk index=I file=NAME.img size=BYTES label=gpt id=DISK_GUID
#   part disk=I num=N start=BYTES size=BYTES type=TYPE_GUID uuid=PART_GUID
#   luks name=sda3_crypt disk=I part=N uuid=UUID passphrase=WORD data_offset=BYTES
#        (its plaintext is the container `luks:sda3_crypt`: offset 0 is the first plaintext byte)
#   vg name=vg0 uuid=UUID extent_size=BYTES extent_count=N free_count=N
#   pv vg=vg0 uuid=UUID pe_start=BYTES in=disk:I part=N      (or in=luks:NAME: the PV is inside it)
#   lv vg=vg0 name=LV uuid=UUID size=BYTES segments=K
#   seg lv=vg0/LV idx=J pv=PV_UUID pe=FIRST-LAST on=CONTAINER off=BYTES len=BYTES
#        (CONTAINER disk:I, off absolute on that disk; or luks:NAME, off in its plaintext)
#   vol name=NAME fs=ext4|vfat|xfs|btrfs|swap|LVM2_member|crypto_LUKS uuid=UUID at=WHERE critical=yes|no reason=TEXT
#        WHERE: part:I:N (partition N of disk I), lv:vg0/LV, or luks:NAME (the whole plaintext of
#        LUKS volume NAME: the PV inside it). reason keywords: root, /boot,
#        /boot/efi, /var, swap, PV of vg0, LUKS holding PV of vg0, data volume.
#   file vol=NAME sha256=HEX path=/PATH                     (every regular file of the volume;
#        btrfs: paths from the top-level subvolume, /root/etc/fstab)
set -euo pipefail
out=$1
shift
layouts=("$@")
((${#layouts[@]})) || layouts=(debian-lvm lvm-two-disks debian-luks-lvm data-partition rhel-xfs-lvm fedora-btrfs)
[[ $(id -u) == 0 ]] || { echo "stack_disks: needs root (loop devices)" >&2; exit 77; }
for t in losetup sfdisk mkfs.ext4 mkfs.vfat mmd mcopy mkswap pvcreate cryptsetup blkid sha256sum; do
    command -v "$t" >/dev/null || { echo "stack_disks: $t not installed" >&2; exit 77; }
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d /tmp/asrimg-stack-XXXXXX)
source "$(dirname "${BASH_SOURCE[0]}")/loop_lib.sh"
loops=()
cleanup() {
    local l
    detach_ours "$work" "${loops[@]}"
    detach_ours "$out" "${loops[@]}" # the disks it builds are in OUT
    rm -rf "$work"
}
trap cleanup EXIT
die() { echo "stack_disks: $*" >&2; exit 1; }

export MTOOLS_SKIP_CHECK=1
PASSPHRASE=asrimg-stack-test
T_ESP=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
T_LINUX=0FC63DAF-8483-4772-8E79-3D69D8477DE4
T_LVM=E6D6D379-F507-44C2-A23C-238F2A3DF928
T_SWAP=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F
KVER=6.1.0-13-amd64
MiB=$((1 << 20))

# --- disks and partitions -------------------------------------------------------------------

# new_disk FILE SIZE LINE...: a sparse file with a GPT made by sfdisk from the partition lines.
new_disk() {
    local f=$1 size=$2
    shift 2
    rm -f "$f"
    truncate -s "$size" "$f"
    printf '%s\n' 'label: gpt' "$@" | sfdisk -q --no-reread --no-tell-kernel "$f" >/dev/null
}

# parts FILE: "NUM START SIZE TYPE UUID" per partition (bytes), from sfdisk's dump.
parts() {
    sfdisk -d "$1" | awk '
        $1 == "sector-size:" { ss = $2 }
        / : start=/ {
            n = $1; sub(/.*[^0-9]/, "", n)
            line = $0; sub(/^[^:]*: */, "", line)
            nf = split(line, kv, /, */)
            for (i = 1; i <= nf; i++) { split(kv[i], p, /= */); v[p[1]] = p[2] }
            print n, v["start"] * (ss ? ss : 512), v["size"] * (ss ? ss : 512), v["type"], v["uuid"]
        }'
}

# part_geom FILE N: "START SIZE TYPE UUID" of partition N, in bytes.
part_geom() { parts "$1" | awk -v n="$2" '$1 == n { print $2, $3, $4, $5 }'; }

# disk_records I FILE: the manifest's disk and part records of one disk.
disk_records() {
    local i=$1 f=$2 label id
    label=$(sfdisk -d "$f" | awk '$1 == "label:" { print $2 }')
    id=$(sfdisk -d "$f" | awk '$1 == "label-id:" { print $2 }')
    echo "disk index=$i file=${f##*/} size=$(stat -c %s "$f") label=$label id=$id"
    parts "$f" | while read -r n s z t u; do echo "part disk=$i num=$n start=$s size=$z type=$t uuid=$u"; done
}

# put IMG FILE OFFSET: writes a filesystem image into FILE at OFFSET (holes stay holes).
put() {
    dd if="$1" of="$2" bs=1M seek="$3" oflag=seek_bytes conv=notrunc,sparse status=none
}

# --- filesystems on plain files ------------------------------------------------------------

new_uuid() { cat /proc/sys/kernel/random/uuid; }

# mk_ext4 IMG SIZE DIR UUID LABEL
mk_ext4() {
    rm -f "$1"
    truncate -s "$2" "$1"
    mkfs.ext4 -q -F -U "$4" -L "$5" -d "$3" "$1" >/dev/null
}

# journal_written IMG: the kernel mounts the ext4 image, changes a directory's times and unmounts
# it: the journal is empty again (s_start 0), its log holding that transaction, which a backup
# captures as zeros without reading it (SPEC.md section 18), also from an LV.
journal_written() {
    mount_rw "$1"
    touch "$work/mnt"
    umount_rw
}

# mk_swap IMG SIZE UUID
mk_swap() {
    rm -f "$1"
    truncate -s "$2" "$1"
    mkswap -U "$3" "$1" >/dev/null 2>&1
}

# mount_rw IMG: mounts a filesystem image read-write at $work/mnt through a loop device.
mount_rw() {
    mkdir -p "$work/mnt"
    loop_at "$1" 0 "$(stat -c %s "$1")" || die "losetup $1"
    mount "$LOOP" "$work/mnt" || die "mount $1"
}
umount_rw() {
    umount "$work/mnt"
    unloop "${loops[-1]}"
}

# mk_xfs IMG SIZE DIR UUID LABEL: mkfs.xfs (its defaults: v5, reflink, sparse inodes), then DIR's
# files copied in through the kernel's XFS (xfsprogs 6.1's -p protofile takes no directory tree).
mk_xfs() {
    rm -f "$1"
    truncate -s "$2" "$1"
    mkfs.xfs -q -m uuid="$4" -L "$5" "$1" || die "mkfs.xfs $1"
    mount_rw "$1"
    cp -a "$3/." "$work/mnt/"
    umount_rw
}

# mk_esp IMG SIZE VOLID BOOT_UUID CFGDIR: FAT32 ESP with Debian's shim-less GRUB stub.
mk_esp() {
    local img=$1 size=$2 volid=$3 boot_uuid=$4 cfgdir=$5
    rm -f "$img"
    truncate -s "$size" "$img"
    mkfs.vfat -F 32 -s 1 -i "$volid" -n EFI "$img" >/dev/null
    head -c 300000 /dev/urandom >"$work/grubx64.efi"
    printf 'search.fs_uuid %s root\nset prefix=($root)%s\nconfigfile $prefix/grub.cfg\n' \
        "$boot_uuid" "$cfgdir" >"$work/grub.cfg.stub"
    mmd -i "$img" ::/EFI ::/EFI/debian
    mcopy -i "$img" "$work/grubx64.efi" ::/EFI/debian/grubx64.efi
    mcopy -i "$img" "$work/grub.cfg.stub" ::/EFI/debian/grub.cfg
}

# esp_hashes VOL IMG: file records of a FAT image, read back through mtools.
esp_hashes() {
    local d=$work/espread
    rm -rf "$d" && mkdir -p "$d"
    mcopy -s -n -i "$2" '::/*' "$d/"
    hashes "$1" "$d"
}

# hashes VOL DIR: a file record for every regular file under DIR.
hashes() {
    (cd "$2" && find . -type f -print0 | sort -z | xargs -0r sha256sum) |
        while read -r sum path; do printf 'file vol=%s sha256=%s path=%s\n' "$1" "$sum" "${path#.}"; done
}

# fill DIR SRC KIB: copies regular files of SRC (12 KiB to 2 MiB, names without spaces) into DIR
# until KIB KiB, under their own paths; the first choice of each SRC is kept for the next layouts.
fill() {
    local dir=$1 src=$2 kib=$3 cache=$work/cache/${2//\//_}.$3
    if [[ ! -d $cache ]]; then
        mkdir -p "$cache"
        find "$src" -type f -size +12k -size -2048k ! -name '* *' ! -name '*[^-._/+A-Za-z0-9]*' \
            -printf '%s %p\n' 2>/dev/null | sort -k2 >"$work/fill.list"
        awk -v max=$((kib * 1024)) '{ t += $1; if (t <= max) print $2 }' "$work/fill.list" |
            xargs -r -d '\n' cp --parents -t "$cache"
    fi
    mkdir -p "$dir"
    cp -a "$cache/." "$dir/"
}

# boot_tree DIR PREFIX ROOTARG: kernel, initrd and grub.cfg as Debian's grub-mkconfig leaves them.
boot_tree() {
    local d=$1 prefix=$2 rootarg=$3 boot_uuid=$4
    mkdir -p "$d/grub"
    head -c 2000000 /dev/urandom >"$d/vmlinuz-$KVER"
    head -c 3000000 /dev/urandom >"$d/initrd.img-$KVER"
    printf 'CONFIG_EXT4_FS=y\n' >"$d/config-$KVER"
    cat >"$d/grub/grub.cfg" <<CFG
set default="0"
set timeout=5
menuentry 'Debian GNU/Linux' --class debian --class gnu-linux --class gnu --class os {
	insmod gzio
	insmod part_gpt
	insmod ext2
	search --no-floppy --fs-uuid --set=root $boot_uuid
	echo	'Loading Linux $KVER ...'
	linux	$prefix/vmlinuz-$KVER $rootarg ro  quiet
	echo	'Loading initial ramdisk ...'
	initrd	$prefix/initrd.img-$KVER
}
CFG
}

# root_tree DIR FSTAB [CRYPTTAB]: a root filesystem's files.
root_tree() {
    local d=$1
    mkdir -p "$d/etc" "$d/boot" "$d/var" "$d/home" "$d/usr/share" "$d/tmp"
    printf '%s' "$2" >"$d/etc/fstab"
    [[ -z ${3-} ]] || printf '%s' "$3" >"$d/etc/crypttab"
    if [[ -f /etc/os-release ]]; then cp /etc/os-release "$d/etc/os-release"; else
        printf 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n' >"$d/etc/os-release"
    fi
    echo debian >"$d/etc/hostname"
    fill "$d" /usr/share/doc 3072
    fill "$d" /usr/share/common-licenses 256
}

var_tree() { mkdir -p "$1/log" "$1/lib/dpkg"; fill "$1" /usr/share/man/man1 1024; echo ok >"$1/lib/dpkg/status"; }
home_tree() { mkdir -p "$1/user"; fill "$1/user" /usr/share/man/man5 512; }

# --- LVM through loop devices ----------------------------------------------------------------

# lvm_conf, lvmq, lvmr, loop_at, unloop
source "$(dirname "${BASH_SOURCE[0]}")/lvm_env.sh"

declare -A pv_in pv_base cont_file
# lvm_records VG: the vg, pv, lv and seg records of VG; notes every LV's extents in $work/seg.VG-LV
# as "CONTAINER OFFSET LENGTH" lines (offset within the container file cont_file[CONTAINER]).
lvm_records() {
    local vg=$1 name uuid pe_start vg_uuid ext count free lv lv_uuid size size_pe ranges
    IFS=';' read -r vg_uuid ext count free < <(lvmr vgs -o vg_uuid,vg_extent_size,vg_extent_count,vg_free_count "$vg")
    echo "vg name=$vg uuid=$vg_uuid extent_size=$ext extent_count=$count free_count=$free"
    declare -A uuid_of start_of
    while IFS=';' read -r name uuid pe_start; do
        uuid_of[$name]=$uuid start_of[$name]=$pe_start
        echo "pv vg=$vg uuid=$uuid pe_start=$pe_start ${pv_in[$name]}"
    done < <(lvmr pvs -o pv_name,pv_uuid,pe_start -S "vg_name=$vg")
    declare -A idx
    while IFS=';' read -r lv lv_uuid size; do
        echo "lv vg=$vg name=$lv uuid=$lv_uuid size=$size segments=$(lvmr lvs --segments -o seg_start "$vg/$lv" | wc -l)"
        rm -f "$work/seg.$vg-$lv"
    done < <(lvmr lvs -o lv_name,lv_uuid,lv_size "$vg")
    while IFS=";" read -r lv _ size_pe ranges; do
        local pv=${ranges%%:*} r=${ranges#*:}
        local first=${r%-*} last=${r#*-}
        local cont=${pv_in[$pv]#in=}
        cont=${cont%% *}
        local off=$((pv_base[$pv] + start_of[$pv] + first * ext)) len=$(((last - first + 1) * ext))
        [[ $len == $((size_pe * ext)) ]] || die "$vg/$lv: a segment of $size_pe extents maps $ranges"
        local j=${idx[$lv]:-0}
        idx[$lv]=$((j + 1))
        echo "seg lv=$vg/$lv idx=$j pv=${uuid_of[$pv]} pe=$first-$last on=$cont off=$off len=$len"
        echo "$cont $off $len" >>"$work/seg.$vg-$lv"
    done < <(lvmr lvs --segments -o lv_name,seg_start_pe,seg_size_pe,seg_pe_ranges -O lv_name,seg_start_pe "$vg")
}

# put_lv IMG VG LV: writes a filesystem image into the LV's extents, segment after segment.
put_lv() {
    local img=$1 at=0 cont off len
    while read -r cont off len; do
        dd if="$img" of="${cont_file[$cont]}" bs=1M skip="$at" seek="$off" count="$len" \
            iflag=skip_bytes,count_bytes oflag=seek_bytes conv=notrunc,sparse status=none
        at=$((at + len))
    done <"$work/seg.$2-$3"
    [[ $at == $(stat -c %s "$img") ]] || die "$2/$3: $at bytes of extents for a $(stat -c %s "$img")-byte image"
}
lv_size() { awk '{ t += $3 } END { print t }' "$work/seg.$1-$2"; }

# vg0_volumes MANIFEST ESP_IMG BOOT_IMG: makes root, var, swap_1, home into vg0's LVs, with their
# vol and file records (the caller has written the ESP and /boot and knows their UUIDs).
vg0_volumes() {
    local m=$1 boot_uuid=$2 esp_uuid=$3 crypttab=${4-}
    local ru vu su hu
    ru=$(new_uuid) vu=$(new_uuid) su=$(new_uuid) hu=$(new_uuid)
    local fstab="# /etc/fstab: static file system information.
#
# <file system> <mount point>   <type>  <options>       <dump>  <pass>
/dev/mapper/vg0-root /               ext4    errors=remount-ro 0       1
# /boot was on /dev/sda2 during installation
UUID=$boot_uuid /boot           ext4    defaults        0       2
# /boot/efi was on /dev/sda1 during installation
UUID=$esp_uuid  /boot/efi       vfat    umask=0077      0       1
/dev/mapper/vg0-home /home           ext4    defaults        0       2
/dev/mapper/vg0-var /var            ext4    defaults        0       2
/dev/mapper/vg0-swap_1 none            swap    sw              0       0
"
    rm -rf "${work:?}/root" "${work:?}/var" "${work:?}/home"
    root_tree "$work/root" "$fstab" "$crypttab"
    var_tree "$work/var"
    home_tree "$work/home"
    mk_ext4 "$work/root.fs" "$(lv_size vg0 root)" "$work/root" "$ru" root
    journal_written "$work/root.fs"
    mk_ext4 "$work/var.fs" "$(lv_size vg0 var)" "$work/var" "$vu" var
    mk_ext4 "$work/home.fs" "$(lv_size vg0 home)" "$work/home" "$hu" home
    mk_swap "$work/swap.fs" "$(lv_size vg0 swap_1)" "$su"
    put_lv "$work/root.fs" vg0 root
    put_lv "$work/var.fs" vg0 var
    put_lv "$work/home.fs" vg0 home
    put_lv "$work/swap.fs" vg0 swap_1
    {
        echo "vol name=root fs=ext4 uuid=$ru at=lv:vg0/root critical=yes reason=root"
        echo "vol name=var fs=ext4 uuid=$vu at=lv:vg0/var critical=yes reason=/var"
        echo "vol name=swap_1 fs=swap uuid=$su at=lv:vg0/swap_1 critical=yes reason=swap"
        echo "vol name=home fs=ext4 uuid=$hu at=lv:vg0/home critical=no reason=data volume"
        hashes root "$work/root"
        hashes var "$work/var"
        hashes home "$work/home"
    } >>"$m"
}

# esp_and_boot DISKFILE MANIFEST ESP_N BOOT_N ROOTARG: the ESP and /boot of an LVM install; sets
# BU and EU to their UUIDs.
esp_and_boot() {
    local disk=$1 m=$2 en=$3 bn=$4 rootarg=$5
    local esp_id esp_uuid s z
    BU=$(new_uuid)
    esp_id=$(od -An -tx4 -N4 /dev/urandom | tr -d ' ')
    esp_uuid=$(echo "${esp_id:0:4}-${esp_id:4:4}" | tr a-f A-F)
    read -r s z _ < <(part_geom "$disk" "$en")
    mk_esp "$work/esp.fs" "$z" "$esp_id" "$BU" /grub
    put "$work/esp.fs" "$disk" "$s"
    read -r s z _ < <(part_geom "$disk" "$bn")
    rm -rf "${work:?}/boot"
    boot_tree "$work/boot" "" "$rootarg" "$BU"
    mk_ext4 "$work/boot.fs" "$z" "$work/boot" "$BU" boot
    put "$work/boot.fs" "$disk" "$s"
    {
        echo "vol name=esp fs=vfat uuid=$esp_uuid at=part:0:$en critical=yes reason=/boot/efi"
        echo "vol name=boot fs=ext4 uuid=$BU at=part:0:$bn critical=yes reason=/boot"
        esp_hashes esp "$work/esp.fs"
        hashes boot "$work/boot"
    } >>"$m"
    EU=$esp_uuid
}

# --- layouts --------------------------------------------------------------------------------

# guided_vg0 LOOP: the VG a Debian guided LVM install makes on one PV: root, var, swap_1, home.
guided_vg0() {
    lvmq pvcreate -y "$1"
    lvmq vgcreate -y -s 4M vg0 "$1"
    lvmq lvcreate -an -Zn -y -L 48M -n root vg0
    lvmq lvcreate -an -Zn -y -L 16M -n var vg0
    lvmq lvcreate -an -Zn -y -L 8M -n swap_1 vg0
    lvmq lvcreate -an -Zn -y -L 16M -n home vg0
}

layout_debian_lvm() {
    local name=debian-lvm disk=$out/debian-lvm.img m=$work/m
    new_disk "$disk" 256M "size=40MiB, type=$T_ESP" "size=48MiB, type=$T_LINUX" "type=$T_LVM"
    local s z l pvu
    read -r s z _ < <(part_geom "$disk" 3)
    loop_at "$disk" "$s" "$z" || die "losetup failed"
    l=$LOOP
    lvm_conf "$l"
    pv_in[$l]="in=disk:0 part=3" pv_base[$l]=$s cont_file[disk:0]=$disk
    guided_vg0 "$l"
    { echo "layout name=$name"; disk_records 0 "$disk"; lvm_records vg0; } >"$m"
    pvu=$(lvmr pvs -o pv_uuid "$l" | tr -d ' ')
    unloop "$l"
    esp_and_boot "$disk" "$m" 1 2 root=/dev/mapper/vg0-root
    echo "vol name=pv0 fs=LVM2_member uuid=$pvu at=part:0:3 critical=yes reason=PV of vg0" >>"$m"
    vg0_volumes "$m" "$BU" "$EU"
    mv "$m" "$out/$name.manifest"
}

layout_lvm_two_disks() {
    local name=lvm-two-disks d0=$out/lvm-two-disks-0.img d1=$out/lvm-two-disks-1.img m=$work/m
    new_disk "$d0" 192M "size=40MiB, type=$T_ESP" "size=48MiB, type=$T_LINUX" "type=$T_LVM"
    new_disk "$d1" 96M "type=$T_LVM"
    local s0 z0 s1 z1 l0 l1 pu0 pu1
    read -r s0 z0 _ < <(part_geom "$d0" 3)
    read -r s1 z1 _ < <(part_geom "$d1" 1)
    loop_at "$d0" "$s0" "$z0" || die "losetup failed"
    l0=$LOOP
    loop_at "$d1" "$s1" "$z1" || die "losetup failed"
    l1=$LOOP
    lvm_conf "$l0" "$l1"
    pv_in[$l0]="in=disk:0 part=3" pv_base[$l0]=$s0 cont_file[disk:0]=$d0
    pv_in[$l1]="in=disk:1 part=1" pv_base[$l1]=$s1 cont_file[disk:1]=$d1
    lvmq pvcreate -y "$l0" "$l1"
    lvmq vgcreate -y -s 4M vg0 "$l0" "$l1"
    lvmq lvcreate -an -Zn -y -L 24M -n root vg0 "$l0"
    lvmq lvcreate -an -Zn -y -L 8M -n swap_1 vg0 "$l0"
    lvmq lvcreate -an -Zn -y -L 16M -n var vg0 "$l0"
    lvmq lvextend -y -L +24M vg0/root "$l1"
    lvmq lvcreate -an -Zn -y -L 16M -n home vg0 "$l1"
    { echo "layout name=$name"; disk_records 0 "$d0"; disk_records 1 "$d1"; lvm_records vg0; } >"$m"
    [[ $(grep -c '^seg lv=vg0/root ' "$m") == 2 ]] || die "$name: root is not in two segments"
    pu0=$(lvmr pvs -o pv_uuid "$l0" | tr -d ' ')
    pu1=$(lvmr pvs -o pv_uuid "$l1" | tr -d ' ')
    unloop "$l0"
    unloop "$l1"
    esp_and_boot "$d0" "$m" 1 2 root=/dev/mapper/vg0-root
    echo "vol name=pv0 fs=LVM2_member uuid=$pu0 at=part:0:3 critical=yes reason=PV of vg0" >>"$m"
    echo "vol name=pv1 fs=LVM2_member uuid=$pu1 at=part:1:1 critical=yes reason=PV of vg0" >>"$m"
    vg0_volumes "$m" "$BU" "$EU"
    mv "$m" "$out/$name.manifest"
}

# The PV is made on a plain file as large as the LUKS data area will be (partition - 16 MiB header);
# reencrypt --encrypt --reduce-device-size 32M then keeps its first (partition - 32 MiB) bytes: the
# LVs lie there, the PV's last free extents are lost to it (nothing of LVM's is there: one
# metadata copy, at the start).
layout_debian_luks_lvm() {
    local name=debian-luks-lvm disk=$out/debian-luks-lvm.img m=$work/m
    new_disk "$disk" 224M "size=40MiB, type=$T_ESP" "size=48MiB, type=$T_LINUX" "type=$T_LINUX"
    local s z l pvu lu plain=$work/plain.img crypt=$work/crypt.img
    read -r s z _ < <(part_geom "$disk" 3)
    rm -f "$plain"
    truncate -s $((z - 16 * MiB)) "$plain"
    loop_at "$plain" 0 $((z - 16 * MiB)) || die "losetup failed"
    l=$LOOP
    lvm_conf "$l"
    pv_in[$l]="in=luks:sda3_crypt" pv_base[$l]=0 cont_file[luks:sda3_crypt]=$plain
    guided_vg0 "$l"
    { echo "layout name=$name"; disk_records 0 "$disk"; lvm_records vg0; } >"$m.lvm"
    pvu=$(lvmr pvs -o pv_uuid "$l" | tr -d ' ')
    unloop "$l"
    local end
    end=$(awk '$1 == "seg" { split($7, o, "="); split($8, n, "="); e = o[2] + n[2]; if (e > m) m = e } END { print m }' "$m.lvm")
    ((end <= z - 32 * MiB)) || die "$name: LVs end at $end, past what reencrypt keeps"
    : >"$m.vols"
    esp_and_boot "$disk" "$m.vols" 1 2 root=/dev/mapper/vg0-root
    lu=$(new_uuid)
    vg0_volumes "$m.vols" "$BU" "$EU" "sda3_crypt UUID=$lu none luks,discard
"
    cp --sparse=always "$plain" "$crypt"
    truncate -s "$z" "$crypt"
    printf %s "$PASSPHRASE" >"$work/pass"
    cryptsetup reencrypt --encrypt --type luks2 --uuid "$lu" --reduce-device-size 32M --pbkdf pbkdf2 \
        --pbkdf-force-iterations 1000 --key-file "$work/pass" -q "$crypt" 2>"$work/cs.log" ||
        { cat "$work/cs.log" >&2; die "$name: cryptsetup reencrypt --encrypt failed"; }
    local off
    off=$(cryptsetup luksDump "$crypt" | awk '/^Data segments:/ { d = 1 } d && $1 == "offset:" { print $2; exit }')
    put "$crypt" "$disk" "$s"
    {
        cat "$m.lvm"
        echo "luks name=sda3_crypt disk=0 part=3 uuid=$lu passphrase=$PASSPHRASE data_offset=$off"
        echo "vol name=sda3_crypt fs=crypto_LUKS uuid=$lu at=part:0:3 critical=yes reason=LUKS holding PV of vg0"
        echo "vol name=pv0 fs=LVM2_member uuid=$pvu at=luks:sda3_crypt critical=yes reason=PV of vg0"
        cat "$m.vols"
    } >"$out/$name.manifest"
    rm -f "$m.lvm" "$m.vols"
}

layout_data_partition() {
    local name=data-partition disk=$out/data-partition.img m=$work/m
    new_disk "$disk" 256M "size=40MiB, type=$T_ESP" "size=96MiB, type=$T_LINUX" "size=32MiB, type=$T_LINUX" \
        "size=16MiB, type=$T_SWAP" "type=$T_LINUX"
    local ru vu su hu eu esp_id s z
    ru=$(new_uuid) vu=$(new_uuid) su=$(new_uuid) hu=$(new_uuid)
    esp_id=$(od -An -tx4 -N4 /dev/urandom | tr -d ' ')
    eu=$(echo "${esp_id:0:4}-${esp_id:4:4}" | tr a-f A-F)
    local fstab="# /etc/fstab: static file system information.
#
# <file system> <mount point>   <type>  <options>       <dump>  <pass>
# / was on /dev/sda2 during installation
UUID=$ru /               ext4    errors=remount-ro 0       1
# /boot/efi was on /dev/sda1 during installation
UUID=$eu  /boot/efi       vfat    umask=0077      0       1
# /home was on /dev/sda5 during installation
UUID=$hu /home           ext4    defaults        0       2
# /var was on /dev/sda3 during installation
UUID=$vu /var            ext4    defaults        0       2
# swap was on /dev/sda4 during installation
UUID=$su none            swap    sw              0       0
"
    rm -rf "${work:?}/root" "${work:?}/var" "${work:?}/home"
    root_tree "$work/root" "$fstab"
    boot_tree "$work/root/boot" /boot "root=UUID=$ru" "$ru"
    var_tree "$work/var"
    home_tree "$work/home"
    read -r s z _ < <(part_geom "$disk" 1)
    mk_esp "$work/esp.fs" "$z" "$esp_id" "$ru" /boot/grub
    put "$work/esp.fs" "$disk" "$s"
    read -r s z _ < <(part_geom "$disk" 2)
    mk_ext4 "$work/root.fs" "$z" "$work/root" "$ru" root
    put "$work/root.fs" "$disk" "$s"
    read -r s z _ < <(part_geom "$disk" 3)
    mk_ext4 "$work/var.fs" "$z" "$work/var" "$vu" var
    put "$work/var.fs" "$disk" "$s"
    read -r s z _ < <(part_geom "$disk" 4)
    mk_swap "$work/swap.fs" "$z" "$su"
    put "$work/swap.fs" "$disk" "$s"
    read -r s z _ < <(part_geom "$disk" 5)
    mk_ext4 "$work/home.fs" "$z" "$work/home" "$hu" home
    put "$work/home.fs" "$disk" "$s"
    {
        echo "layout name=$name"
        disk_records 0 "$disk"
        echo "vol name=esp fs=vfat uuid=$eu at=part:0:1 critical=yes reason=/boot/efi"
        echo "vol name=root fs=ext4 uuid=$ru at=part:0:2 critical=yes reason=root"
        echo "vol name=var fs=ext4 uuid=$vu at=part:0:3 critical=yes reason=/var"
        echo "vol name=swap fs=swap uuid=$su at=part:0:4 critical=yes reason=swap"
        echo "vol name=home fs=ext4 uuid=$hu at=part:0:5 critical=no reason=data volume"
        esp_hashes esp "$work/esp.fs"
        hashes root "$work/root"
        hashes var "$work/var"
        hashes home "$work/home"
    } >"$m"
    mv "$m" "$out/$name.manifest"
}

# in_part DISK N MAKER ARG...: a filesystem image the size of partition N made by MAKER IMG SIZE
# ARG... (mk_esp, mk_ext4, mk_xfs), written into the partition.
in_part() {
    local disk=$1 n=$2 mk=$3 s z
    shift 3
    read -r s z _ < <(part_geom "$disk" "$n")
    "$mk" "$work/part$n.fs" "$z" "$@"
    put "$work/part$n.fs" "$disk" "$s"
}

# bls_boot DIR OPTIONS: a /boot as Fedora and RHEL have it: kernel, initramfs, and a Boot Loader
# Specification entry whose options line is the kernel command line.
bls_boot() {
    mkdir -p "$1/loader/entries" "$1/grub2"
    head -c 2000000 /dev/urandom >"$1/vmlinuz-$KVER"
    head -c 3000000 /dev/urandom >"$1/initramfs-$KVER.img"
    printf 'title Linux (%s)\nversion %s\nlinux /vmlinuz-%s\ninitrd /initramfs-%s.img\noptions %s\n' \
        "$KVER" "$KVER" "$KVER" "$KVER" "$2" >"$1/loader/entries/0123456789abcdef-$KVER.conf"
    printf 'set timeout=5\nblscfg\n' >"$1/grub2/grub.cfg"
}

layout_rhel_xfs_lvm() {
    local name=rhel-xfs-lvm disk=$out/rhel-xfs-lvm.img m=$work/m
    new_disk "$disk" 720M "size=40MiB, type=$T_ESP" "size=320MiB, type=$T_LINUX" "type=$T_LVM"
    local s z l pvu bu ru su esp_id eu
    read -r s z _ < <(part_geom "$disk" 3)
    loop_at "$disk" "$s" "$z" || die "losetup failed"
    l=$LOOP
    lvm_conf "$l"
    pv_in[$l]="in=disk:0 part=3" pv_base[$l]=$s cont_file[disk:0]=$disk
    lvmq pvcreate -y "$l"
    lvmq vgcreate -y -s 4M rhel "$l"
    lvmq lvcreate -an -Zn -y -L 8M -n swap rhel
    lvmq lvcreate -an -Zn -y -l 100%FREE -n root rhel
    { echo "layout name=$name"; disk_records 0 "$disk"; lvm_records rhel; } >"$m"
    pvu=$(lvmr pvs -o pv_uuid "$l" | tr -d ' ')
    unloop "$l"
    bu=$(new_uuid) ru=$(new_uuid) su=$(new_uuid)
    esp_id=$(od -An -tx4 -N4 /dev/urandom | tr -d ' ')
    eu=$(echo "${esp_id:0:4}-${esp_id:4:4}" | tr a-f A-F)
    local fstab="
#
# /etc/fstab
# Created by anaconda
#
/dev/mapper/rhel-root   /                       xfs     defaults        0 0
UUID=$bu /boot                   xfs     defaults        0 0
UUID=$eu          /boot/efi               vfat    umask=0077,shortname=winnt 0 2
/dev/mapper/rhel-swap   none                    swap    defaults        0 0
"
    rm -rf "${work:?}/root" "${work:?}/boot"
    root_tree "$work/root" "$fstab"
    printf 'NAME="Red Hat Enterprise Linux"\nID="rhel"\nVERSION_ID="9.4"\n' >"$work/root/etc/os-release"
    bls_boot "$work/boot" "root=/dev/mapper/rhel-root ro resume=/dev/mapper/rhel-swap rd.lvm.lv=rhel/root rd.lvm.lv=rhel/swap"
    in_part "$disk" 1 mk_esp "$esp_id" "$bu" /grub2
    in_part "$disk" 2 mk_xfs "$work/boot" "$bu" boot
    mk_xfs "$work/root.fs" "$(lv_size rhel root)" "$work/root" "$ru" root
    mk_swap "$work/swap.fs" "$(lv_size rhel swap)" "$su"
    put_lv "$work/root.fs" rhel root
    put_lv "$work/swap.fs" rhel swap
    {
        echo "vol name=esp fs=vfat uuid=$eu at=part:0:1 critical=yes reason=/boot/efi"
        echo "vol name=boot fs=xfs uuid=$bu at=part:0:2 critical=yes reason=/boot"
        echo "vol name=pv0 fs=LVM2_member uuid=$pvu at=part:0:3 critical=yes reason=PV of rhel"
        echo "vol name=root fs=xfs uuid=$ru at=lv:rhel/root critical=yes reason=root"
        echo "vol name=swap fs=swap uuid=$su at=lv:rhel/swap critical=yes reason=swap"
        esp_hashes esp "$work/part1.fs"
        hashes boot "$work/boot"
        hashes root "$work/root"
    } >>"$m"
    mv "$m" "$out/$name.manifest"
}

layout_fedora_btrfs() {
    local name=fedora-btrfs disk=$out/fedora-btrfs.img m=$work/m
    new_disk "$disk" 384M "size=40MiB, type=$T_ESP" "size=64MiB, type=$T_LINUX" "type=$T_LINUX"
    local s z fu bu esp_id eu
    fu=$(new_uuid) bu=$(new_uuid)
    esp_id=$(od -An -tx4 -N4 /dev/urandom | tr -d ' ')
    eu=$(echo "${esp_id:0:4}-${esp_id:4:4}" | tr a-f A-F)
    local fstab="
#
# /etc/fstab
# Created by anaconda
#
UUID=$fu /                       btrfs   subvol=root,compress=zstd:1 0 0
UUID=$bu /boot                   ext4    defaults        1 2
UUID=$eu          /boot/efi               vfat    umask=0077,shortname=winnt 0 2
UUID=$fu /home                   btrfs   subvol=home,compress=zstd:1 0 0
"
    rm -rf "${work:?}/root" "${work:?}/boot" "${work:?}/home"
    root_tree "$work/root" "$fstab"
    printf 'NAME="Fedora Linux"\nID=fedora\nVERSION_ID=40\n' >"$work/root/etc/os-release"
    home_tree "$work/home"
    bls_boot "$work/boot" "root=UUID=$fu ro rootflags=subvol=root rhgb quiet"
    in_part "$disk" 1 mk_esp "$esp_id" "$bu" /grub2
    in_part "$disk" 2 mk_ext4 "$work/boot" "$bu" boot
    read -r s z _ < <(part_geom "$disk" 3)
    rm -f "$work/btrfs.fs"
    truncate -s "$z" "$work/btrfs.fs"
    mkfs.btrfs -q -U "$fu" -L fedora "$work/btrfs.fs" >"$work/mkfs.log" 2>&1 || { cat "$work/mkfs.log" >&2; die "mkfs.btrfs"; }
    mkdir -p "$work/mnt"
    loop_at "$work/btrfs.fs" 0 "$z" || die "losetup btrfs"
    mount -o compress=zstd:1 "$LOOP" "$work/mnt" || die "mount btrfs"
    # An earlier install's root, kept as a subvolume made before (a lower id than) the live one:
    # its fstab names a /var that is gone. Only the boot loader's rootflags=subvol=root tells
    # which root boots.
    btrfs -q subvolume create "$work/mnt/old" >/dev/null
    mkdir -p "$work/mnt/old/etc"
    printf 'UUID=%s / btrfs subvol=old 0 0\nUUID=%s /var ext4 defaults 0 2\n' "$fu" "$(new_uuid)" \
        >"$work/mnt/old/etc/fstab"
    btrfs -q subvolume create "$work/mnt/root" >/dev/null
    btrfs -q subvolume create "$work/mnt/home" >/dev/null
    cp -a "$work/root/." "$work/mnt/root/"
    cp -a "$work/home/." "$work/mnt/home/"
    local files
    files=$(hashes fedora "$work/mnt")
    umount "$work/mnt"
    unloop "$LOOP"
    put "$work/btrfs.fs" "$disk" "$s"
    {
        echo "layout name=$name"
        disk_records 0 "$disk"
        echo "vol name=esp fs=vfat uuid=$eu at=part:0:1 critical=yes reason=/boot/efi"
        echo "vol name=boot fs=ext4 uuid=$bu at=part:0:2 critical=yes reason=/boot"
        echo "vol name=fedora fs=btrfs uuid=$fu at=part:0:3 critical=yes reason=root"
        esp_hashes esp "$work/part1.fs"
        hashes boot "$work/boot"
        echo "$files"
    } >"$m"
    mv "$m" "$out/$name.manifest"
}

for lay in "${layouts[@]}"; do
    case $lay in
    debian-lvm | lvm-two-disks | debian-luks-lvm | data-partition | rhel-xfs-lvm | fedora-btrfs) "layout_${lay//-/_}" ;;
    *) die "unknown layout $lay" ;;
    esac
    rm -f "$work"/*.fs "$work"/seg.* "$work"/*.img
done
