#!/bin/busybox sh
# /init of asrimg's recovery environment (embedded into asrimg at build time; `rescue make` writes
# it into the initramfs). Mounts the kernel's filesystems, loads the drivers in the order
# /lib/modules/load.list gives (dependencies first), waits for the recovery drive's data partition
# (its GPT partition GUID from asrimg.drive=, else the label ASRIMG), mounts it at /mnt/rescue and
# runs `asrimg rescue run`, then does what it asked for: reboot, poweroff, or a shell.
# Kernel command line: asrimg.drive=GUID, asrimg.probe (say ready, print asrimg --version, power
# off: for tests), asrimg.shell (a shell instead of rescue run); rescue run reads its own knobs.
/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/usr/bin:/bin:/sbin:/usr/sbin
export HOME=/root TERM=linux

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
exec </dev/console >/dev/console 2>&1

say() { echo "asrimg-rescue: $*"; }

shell() {
    say "$1"
    say "a shell; 'asrimg rescue run --images /mnt/rescue/images' restores, 'poweroff -f' ends"
    setsid cttyhack sh -l
    poweroff -f
}

drive= probe= only_shell=
for w in $(cat /proc/cmdline); do
    case "$w" in
    asrimg.drive=*) drive=${w#asrimg.drive=} ;;
    asrimg.probe) probe=1 ;;
    asrimg.shell) only_shell=1 ;;
    esac
done

# dmesg stays quiet on the console while the drivers load.
echo 1 >/proc/sys/kernel/printk 2>/dev/null
while read -r m; do
    insmod "/lib/modules/$m.ko" 2>/dev/null
done </lib/modules/load.list
mount -t efivarfs efivarfs /sys/firmware/efi/efivars 2>/dev/null

# The GPT partition whose unique GUID is $1 (text): prints its device name. The entries are read
# where rescue make writes them (LBA 2 on), 128 bytes each; the GUID's first three fields are
# stored little-endian.
gpt_bytes() {
    g=$(echo "$1" | tr 'A-F' 'a-f' | tr -d '-')
    [ ${#g} -eq 32 ] || return 1
    echo "${g:6:2}${g:4:2}${g:2:2}${g:0:2}${g:10:2}${g:8:2}${g:14:2}${g:12:2}${g:16:16}"
}

find_by_guid() {
    want=$(gpt_bytes "$1") || return 1
    for sys in /sys/block/*; do
        d=${sys##*/}
        case "$d" in loop*|ram*|zram*|sr*|fd*) continue ;; esac
        bs=$(cat "$sys/queue/logical_block_size" 2>/dev/null || echo 512)
        n=0
        dd if="/dev/$d" bs="$bs" skip=2 count=$((16384 / bs)) 2>/dev/null | od -An -v -tx1 -w128 |
            tr -d ' ' | while read -r e; do
                n=$((n + 1))
                if [ "${e:32:32}" = "$want" ]; then
                    for p in "$sys"/"$d"*; do
                        [ "$(cat "$p/partition" 2>/dev/null)" = "$n" ] && echo "${p##*/}" && break
                    done
                    break
                fi
            done
    done | head -n 1
}

find_data() {
    dev=
    [ -n "$drive" ] && dev=$(find_by_guid "$drive")
    [ -z "$dev" ] && dev=$(findfs LABEL=ASRIMG 2>/dev/null) && dev=${dev#/dev/}
    [ -n "$dev" ] && echo "$dev"
}

dev=
i=0
while [ $i -lt 300 ]; do
    dev=$(find_data) && [ -n "$dev" ] && break
    sleep 0.1
    i=$((i + 1))
done
[ -n "$dev" ] || shell "the recovery drive's data partition (${drive:-label ASRIMG}) was not found"
mkdir -p /mnt/rescue
mount "/dev/$dev" /mnt/rescue || shell "cannot mount /dev/$dev"
mkdir -p /mnt/rescue/images
n=$(ls /mnt/rescue/images 2>/dev/null | grep -c '\.asrimg$')
say "ready: $n images in /mnt/rescue/images"

if [ -n "$probe" ]; then
    # How it booted, for the boot tests: the firmware, and Secure Boot as the kernel found it.
    if [ -d /sys/firmware/efi ]; then
        sb=$(dmesg | grep -o 'Secure boot [a-z]*' | head -n 1)
        say "firmware: uefi, ${sb:-Secure boot unknown}, $(ls /sys/firmware/efi/efivars 2>/dev/null | wc -l) variables in efivarfs"
    else
        say "firmware: bios"
    fi
    asrimg --version
    umount /mnt/rescue
    say "probe done"
    poweroff -f
fi
[ -n "$only_shell" ] && shell "asrimg.shell given"

if ! command -v asrimg >/dev/null || ! asrimg rescue run --images /mnt/rescue/images --next-file /run/asrimg.next; then
    shell "asrimg rescue run did not finish"
fi
next=$(cat /run/asrimg.next 2>/dev/null)
say "next: ${next:-shell}"
sync
umount /mnt/rescue 2>/dev/null
case "$next" in
reboot) reboot -f ;;
poweroff) poweroff -f ;;
*) shell "as asked (${next:-no next action})" ;;
esac
