#!/bin/bash
# Checks disks (restored ones, as large as the originals or larger; files or block devices) against
# a manifest of tests/stack_disks.sh, with the real tools and without device-mapper:
#   - the partition tables: label, disk GUID, every partition's start, size, type and GUID;
#   - LUKS: luksDump's UUID, then the plaintext by `cryptsetup reencrypt --decrypt` offline on a copy
#     of the partition (with the manifest's passphrase);
#   - LVM: pvck on every PV, vgck, and vgs/pvs/lvs --segments through loop devices at the PVs'
#     offsets (a temporary LVM_SYSTEM_DIR that sees only them): the same VG, PV and LV UUIDs, PV data
#     offsets, LV sizes and segments (PV and extents) as the manifest;
#   - the selected volumes (critical ones by default): blkid's type and UUID; ext4 e2fsck -fn clean
#     and every file's sha256 as the manifest's (read-only loop device at the partition or LV,
#     mounted ro; an LV in several segments is pieced together into a temporary file); vfat
#     fsck.fat -n clean and its files read through mtools; swap and the PV/LUKS containers by blkid.
# Prints one line `stack_check: FAIL: ...` per failure and exits 1 when there was any; 0 and an OK
# line otherwise; 77 without root or the tools.
# Usage: stack_check.sh [--all | --volumes NAME,...] MANIFEST DISK...
#   DISK i is the manifest's `disk index=i`; --all checks every volume (data volumes too),
#   --volumes exactly the named ones (default: the volumes the manifest says are critical).
set -uo pipefail
all=0 only=""
while (($#)); do
    case $1 in
    --all) all=1 ;;
    --volumes) only=",$2,"; shift ;;
    --volumes=*) only=",${1#*=}," ;;
    -*) echo "usage: stack_check.sh [--all | --volumes NAME,...] MANIFEST DISK..." >&2; exit 2 ;;
    *) break ;;
    esac
    shift
done
(($# >= 2)) || { echo "usage: stack_check.sh [--all | --volumes NAME,...] MANIFEST DISK..." >&2; exit 2; }
manifest=$1
shift
disks=("$@")
[[ $(id -u) == 0 ]] || { echo "stack_check: needs root (loop devices, mount)" >&2; exit 77; }
for t in losetup sfdisk blkid e2fsck fsck.vfat mcopy pvck cryptsetup sha256sum mount; do
    command -v "$t" >/dev/null || { echo "stack_check: $t not installed" >&2; exit 77; }
done
[[ -r $manifest ]] || { echo "stack_check: cannot read $manifest" >&2; exit 2; }

work=$(mktemp -d /tmp/asrimg-stackcheck-XXXXXX)
mkdir -p "$work/mnt"
source "$(dirname "${BASH_SOURCE[0]}")/loop_lib.sh"
loops=()
cleanup() {
    local l d
    mountpoint -q "$work/mnt" && umount "$work/mnt"
    detach_ours "$work" "${loops[@]}"
    for d in "${disks[@]}"; do detach_ours "$(realpath -m -- "$d")" "${loops[@]}"; done # the caller's disks
    rm -rf "$work"
}
trap cleanup EXIT
export MTOOLS_SKIP_CHECK=1 LVM_SUPPRESS_FD_WARNINGS=1
failures=0
fail() { echo "stack_check: FAIL: $*"; failures=$((failures + 1)); }

# kv KEY LINE: the value of KEY=... in a manifest record.
# lvm_conf, lvmr, loop_at
source "$(dirname "${BASH_SOURCE[0]}")/lvm_env.sh"
kv() { [[ " $2 " =~ \ $1=([^ ]*)\  ]] && echo "${BASH_REMATCH[1]}"; }
dev_size() { if [[ -b $1 ]]; then blockdev --getsize64 "$1"; else stat -Lc %s "$1"; fi; }

# --- partition tables ------------------------------------------------------------------------

declare -A pstart psize cont_file
parts() {
    sfdisk -d "$1" 2>/dev/null | awk '
        $1 == "sector-size:" { ss = $2 }
        / : start=/ {
            n = $1; sub(/.*[^0-9]/, "", n)
            line = $0; sub(/^[^:]*: */, "", line)
            nf = split(line, kv, /, */)
            for (i = 1; i <= nf; i++) { split(kv[i], p, /= */); v[p[1]] = p[2] }
            print n, v["start"] * (ss ? ss : 512), v["size"] * (ss ? ss : 512), v["type"], v["uuid"]
        }'
}

check_disk() { # check_disk RECORD
    local i f label id size
    i=$(kv index "$1")
    f=${disks[$i]-}
    [[ -n $f ]] || { fail "disk $i: not given on the command line (the manifest has $(grep -c '^disk ' "$manifest") disks)"; return; }
    cont_file[disk:$i]=$f
    size=$(dev_size "$f") || { fail "disk $i ($f): cannot read its size"; return; }
    ((size >= $(kv size "$1"))) || fail "disk $i ($f): $size bytes, smaller than the original's $(kv size "$1")"
    label=$(sfdisk -d "$f" 2>/dev/null | awk '$1 == "label:" { print $2 }')
    id=$(sfdisk -d "$f" 2>/dev/null | awk '$1 == "label-id:" { print $2 }')
    [[ $label == "$(kv label "$1")" ]] || fail "disk $i ($f): partition table '$label', expected $(kv label "$1")"
    [[ ${id^^} == "$(kv id "$1" | tr a-z A-Z)" ]] || fail "disk $i ($f): disk id $id, expected $(kv id "$1")"
    local n s z t u
    while read -r n s z t u; do pstart[$i:$n]=$s psize[$i:$n]=$z ptype[$i:$n]=$t puuid[$i:$n]=$u; done < <(parts "$f")
}
declare -A ptype puuid
check_part() {
    local i n k want got
    i=$(kv disk "$1") n=$(kv num "$1")
    [[ -n ${disks[$i]-} ]] || return
    [[ -n ${pstart[$i:$n]-} ]] || { fail "disk $i: partition $n is missing"; return; }
    for k in start size; do
        want=$(kv $k "$1")
        [[ $k == start ]] && got=${pstart[$i:$n]} || got=${psize[$i:$n]}
        [[ $got == "$want" ]] || fail "disk $i partition $n: $k $got, expected $want"
    done
    [[ ${ptype[$i:$n]^^} == "$(kv type "$1" | tr a-z A-Z)" ]] || fail "disk $i partition $n: type ${ptype[$i:$n]}, expected $(kv type "$1")"
    [[ ${puuid[$i:$n]^^} == "$(kv uuid "$1" | tr a-z A-Z)" ]] || fail "disk $i partition $n: GUID ${puuid[$i:$n]}, expected $(kv uuid "$1")"
}

# --- LUKS ------------------------------------------------------------------------------------

check_luks() {
    local name i n copy u
    name=$(kv name "$1") i=$(kv disk "$1") n=$(kv part "$1")
    [[ -n ${pstart[$i:$n]-} ]] || { fail "LUKS $name: no partition $n on disk $i"; return; }
    copy=$work/luks.$name
    dd if="${disks[$i]}" of="$copy" bs=1M skip="${pstart[$i:$n]}" count="${psize[$i:$n]}" \
        iflag=skip_bytes,count_bytes conv=sparse status=none || { fail "LUKS $name: cannot read disk $i partition $n"; return; }
    cryptsetup luksDump "$copy" >"$work/luksdump" 2>&1
    u=$(awk '$1 == "UUID:" { print $2 }' "$work/luksdump")
    [[ $u == "$(kv uuid "$1")" ]] || { fail "LUKS $name: luksDump says UUID '$u', expected $(kv uuid "$1")"; return; }
    u=$(awk '/^Data segments:/ { d = 1 } d && $1 == "offset:" { print $2; exit }' "$work/luksdump")
    [[ $u == "$(kv data_offset "$1")" ]] || fail "LUKS $name: data at $u, expected $(kv data_offset "$1")"
    printf %s "$(kv passphrase "$1")" >"$work/pass"
    if ! cryptsetup reencrypt --decrypt --header "$copy.hdr" --force-offline-reencrypt --key-file "$work/pass" \
        -q "$copy" >"$work/cs.log" 2>&1; then
        fail "LUKS $name: offline decrypt failed: $(tail -1 "$work/cs.log")"
        return
    fi
    cont_file[luks:$name]=$copy
}

# --- LVM -------------------------------------------------------------------------------------

declare -A lv_segs # vg/lv -> "CONTAINER OFFSET LENGTH;..." from the restored metadata
check_lvm() {
    local vg=$1 rec l cont base size pvloops=()
    declare -A base_of cont_of
    while read -r rec; do
        local in i n
        in=$(kv in "$rec")
        cont=${in#in=}
        if [[ $cont == disk:* ]]; then
            i=${cont#disk:} n=$(kv part "$rec")
            [[ -n ${pstart[$i:$n]-} ]] || { fail "PV $(kv uuid "$rec"): no partition $n on disk $i"; continue; }
            base=${pstart[$i:$n]} size=${psize[$i:$n]}
        else
            [[ -n ${cont_file[$cont]-} ]] || { fail "PV $(kv uuid "$rec"): its container $cont could not be opened"; continue; }
            base=0 size=$(dev_size "${cont_file[$cont]}")
        fi
        loop_at "${cont_file[$cont]}" "$base" "$size" -r || { fail "PV $(kv uuid "$rec"): losetup failed"; continue; }
        l=$LOOP
        base_of[$l]=$base cont_of[$l]=$cont
        pvloops+=("$l")
    done < <(grep "^pv vg=$vg " "$manifest")
    ((${#pvloops[@]})) || return
    lvm_conf "${pvloops[@]}"
    for l in "${pvloops[@]}"; do
        pvck --driverloaded n "$l" >"$work/pvck.log" 2>&1 || fail "PV on ${cont_of[$l]}: pvck: $(grep -v 'leaked\|WARNING' "$work/pvck.log" | tail -1)"
    done
    vgck --driverloaded n "$vg" >"$work/vgck.log" 2>&1 || fail "VG $vg: vgck: $(grep -v 'leaked\|WARNING' "$work/vgck.log" | tail -1)"
    local vrec uuid ext
    vrec=$(grep "^vg name=$vg " "$manifest")
    IFS=';' read -r uuid ext < <(lvmr vgs -o vg_uuid,vg_extent_size "$vg")
    [[ -n $uuid ]] || { fail "VG $vg: not found on the PVs"; return; }
    [[ $uuid == "$(kv uuid "$vrec")" ]] || fail "VG $vg: UUID $uuid, expected $(kv uuid "$vrec")"
    [[ $ext == "$(kv extent_size "$vrec")" ]] || fail "VG $vg: extent size $ext, expected $(kv extent_size "$vrec")"
    declare -A pv_uuid pv_start pv_dev
    local name u s
    while IFS=';' read -r name u s; do pv_uuid[$name]=$u pv_start[$name]=$s pv_dev[$u]=$name; done < <(lvmr pvs -o pv_name,pv_uuid,pe_start -S "vg_name=$vg")
    while read -r rec; do
        u=$(kv uuid "$rec")
        l=${pv_dev[$u]-}
        [[ -n $l ]] || { fail "VG $vg: PV $u not found"; continue; }
        [[ ${pv_start[$l]} == "$(kv pe_start "$rec")" ]] || fail "PV $u: data at ${pv_start[$l]}, expected $(kv pe_start "$rec")"
        [[ ${cont_of[$l]-} == "$(kv in "$rec")" ]] || fail "PV $u: found on ${cont_of[$l]-"no device ($l)"}, expected $(kv in "$rec")"
    done < <(grep "^pv vg=$vg " "$manifest")
    declare -A lv_uuid lv_size
    local lv
    while IFS=';' read -r lv u s; do lv_uuid[$lv]=$u lv_size[$lv]=$s; done < <(lvmr lvs -o lv_name,lv_uuid,lv_size "$vg")
    [[ ${#lv_uuid[@]} == $(grep -c "^lv vg=$vg " "$manifest") ]] || fail "VG $vg: ${#lv_uuid[@]} LVs (${!lv_uuid[*]}), expected $(grep -c "^lv vg=$vg " "$manifest")"
    while read -r rec; do
        lv=$(kv name "$rec")
        [[ -n ${lv_uuid[$lv]-} ]] || { fail "LV $vg/$lv: missing"; continue; }
        [[ ${lv_uuid[$lv]} == "$(kv uuid "$rec")" ]] || fail "LV $vg/$lv: UUID ${lv_uuid[$lv]}, expected $(kv uuid "$rec")"
        [[ ${lv_size[$lv]} == "$(kv size "$rec")" ]] || fail "LV $vg/$lv: ${lv_size[$lv]} bytes, expected $(kv size "$rec")"
    done < <(grep "^lv vg=$vg " "$manifest")
    # Segments in order: the same PV extents, and where they lie on the disks now.
    local ranges got=$work/segs.got want=$work/segs.want
    declare -A idx broken
    : >"$got"
    while IFS=";" read -r lv _ _ ranges; do
        l=${ranges%%:*}
        local r=${ranges#*:} j=${idx[$lv]:-0}
        local first=${r%-*} last=${r#*-}
        idx[$lv]=$((j + 1))
        if [[ -z ${cont_of[$l]-} ]]; then # on a PV lvm did not find
            echo "seg lv=$vg/$lv idx=$j on a missing PV ($ranges)" >>"$got"
            broken[$vg/$lv]=1
            continue
        fi
        local off=$((base_of[$l] + pv_start[$l] + first * ext)) len=$(((last - first + 1) * ext))
        echo "seg lv=$vg/$lv idx=$j pv=${pv_uuid[$l]} pe=$first-$last on=${cont_of[$l]} off=$off len=$len" >>"$got"
        lv_segs[$vg/$lv]+="${cont_of[$l]} $off $len;"
    done < <(lvmr lvs --segments -o lv_name,seg_start_pe,seg_size_pe,seg_pe_ranges -O lv_name,seg_start_pe "$vg")
    for lv in "${!broken[@]}"; do unset "lv_segs[$lv]"; done
    grep "^seg lv=$vg/" "$manifest" | sort >"$want"
    sort -o "$got" "$got"
    diff "$want" "$got" | sed -n 's/^< /only in the manifest: /p; s/^> /on the disks instead: /p' >"$work/segs.diff"
    while read -r rec; do fail "VG $vg: segment $rec"; done <"$work/segs.diff"
}

# --- volumes ---------------------------------------------------------------------------------

# vol_dev AT: LOOP=a read-only block device holding the volume (partition, LV or LUKS plaintext).
vol_dev() {
    local at=$1 regions="" cont off len
    case $at in
    part:*)
        local i n
        IFS=: read -r _ i n <<<"$at"
        [[ -n ${pstart[$i:$n]-} ]] || return 1
        regions="disk:$i ${pstart[$i:$n]} ${psize[$i:$n]};"
        ;;
    lv:*) regions=${lv_segs[${at#lv:}]-} ;;
    luks:*) [[ -n ${cont_file[$at]-} ]] && regions="$at 0 $(dev_size "${cont_file[$at]}");" ;;
    esac
    [[ -n $regions ]] || return 1
    if [[ $regions != *\;*\;* ]]; then
        read -r cont off len <<<"${regions%;}"
        loop_at "${cont_file[$cont]}" "$off" "$len" -r
        return
    fi
    local f=$work/pieced.$RANDOM at_byte=0
    while read -r -d ';' cont off len; do
        dd if="${cont_file[$cont]}" of="$f" bs=1M skip="$off" count="$len" seek="$at_byte" \
            iflag=skip_bytes,count_bytes oflag=seek_bytes conv=notrunc,sparse status=none || return 1
        at_byte=$((at_byte + len))
    done <<<"$regions"
    loop_at "$f" 0 "$at_byte" -r
}

# files_match VOL DIR: every file record of VOL read back from DIR with the same sha256.
files_match() {
    local vol=$1 dir=$2 bad
    grep "^file vol=$vol " "$manifest" | sed 's/^file vol=[^ ]* sha256=\([0-9a-f]*\) path=/\1  ./' >"$work/sums"
    [[ -s $work/sums ]] || return 0
    bad=$( (cd "$dir" && sha256sum -c "$work/sums" 2>/dev/null) | grep -v ': OK$')
    [[ -z $bad ]] && return 0
    while read -r line; do fail "$vol: file ${line#.}"; done <<<"$bad"
}

check_vol() {
    local rec=$1 name fs uuid at dev info t u
    name=$(kv name "$rec") fs=$(kv fs "$rec") uuid=$(kv uuid "$rec") at=$(kv at "$rec")
    vol_dev "$at" || { fail "$name: cannot open $at"; return; }
    dev=$LOOP
    info=$(blkid -p -o export "$dev" 2>/dev/null)
    t=$(sed -n 's/^TYPE=//p' <<<"$info") u=$(sed -n 's/^UUID=//p' <<<"$info")
    [[ $t == "$fs" ]] || { fail "$name ($at): blkid says type '$t', expected $fs"; return; }
    [[ $u == "$uuid" ]] || fail "$name ($at): blkid says UUID '$u', expected $uuid"
    case $fs in
    ext4)
        e2fsck -fn "$dev" >"$work/fsck.log" 2>&1 || { fail "$name ($at): e2fsck -fn: $(grep -v '^Pass\|^e2fsck' "$work/fsck.log" | head -1)"; return; }
        mount -t ext4 -o ro,noload "$dev" "$work/mnt" || { fail "$name ($at): mount failed"; return; }
        files_match "$name" "$work/mnt"
        umount "$work/mnt"
        ;;
    xfs)
        xfs_repair -n "$dev" >"$work/fsck.log" 2>&1 || { fail "$name ($at): xfs_repair -n: $(grep -iv '^phase\|^ *-' "$work/fsck.log" | head -1)"; return; }
        mount -t xfs -o ro,norecovery,nouuid "$dev" "$work/mnt" || { fail "$name ($at): mount failed"; return; }
        files_match "$name" "$work/mnt"
        umount "$work/mnt"
        ;;
    btrfs)
        btrfs check --readonly "$dev" >"$work/fsck.log" 2>&1 || { fail "$name ($at): btrfs check: $(grep -i 'error\|bad\|fail' "$work/fsck.log" | head -1)"; return; }
        mount -t btrfs -o ro "$dev" "$work/mnt" || { fail "$name ($at): mount failed"; return; }
        files_match "$name" "$work/mnt"
        umount "$work/mnt"
        ;;
    vfat)
        fsck.vfat -n "$dev" >"$work/fsck.log" 2>&1 || { fail "$name ($at): fsck.vfat -n: $(tail -1 "$work/fsck.log")"; return; }
        rm -rf "$work/vfat" && mkdir -p "$work/vfat"
        mcopy -s -n -i "$dev" '::/*' "$work/vfat/" 2>/dev/null || { fail "$name ($at): mcopy failed"; return; }
        files_match "$name" "$work/vfat"
        ;;
    esac
}

# --- main ------------------------------------------------------------------------------------

ndisks=$(grep -c '^disk ' "$manifest")
((${#disks[@]} == ndisks)) || fail "$ndisks disks in the manifest, ${#disks[@]} given"
while read -r rec; do check_disk "$rec"; done < <(grep '^disk ' "$manifest")
while read -r rec; do check_part "$rec"; done < <(grep '^part ' "$manifest")
while read -r rec; do check_luks "$rec"; done < <(grep '^luks ' "$manifest")
while read -r vg; do check_lvm "$vg"; done < <(grep '^vg ' "$manifest" | sed 's/^vg name=\([^ ]*\).*/\1/')
checked=()
while read -r rec; do
    name=$(kv name "$rec")
    if [[ -n $only ]]; then
        [[ $only == *",$name,"* ]] || continue
    elif ((!all)); then
        [[ $(kv critical "$rec") == yes ]] || continue
    fi
    check_vol "$rec"
    checked+=("$name")
done < <(grep '^vol ' "$manifest")
if [[ -n $only ]]; then
    for name in ${only//,/ }; do [[ " ${checked[*]} " == *" $name "* ]] || fail "no volume $name in the manifest"; done
fi
if ((failures)); then
    echo "stack_check: $failures failures ($manifest)"
    exit 1
fi
echo "stack_check: OK: $(kv name "$(grep '^layout ' "$manifest")"): partition tables, stacks and ${#checked[@]} volumes (${checked[*]})"
