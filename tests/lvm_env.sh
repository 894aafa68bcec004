# Sourced by the scripts that build or check LVM2 stacks on loop devices, with no device-mapper:
# tests/stack_disks.sh, tests/stack_check.sh and bench/stacks.sh. The caller sets $work (a
# temporary directory) and the array `loops` (detached by its exit trap), and defines die.

# lvm_conf LOOP...: an LVM_SYSTEM_DIR that sees only these loop devices and writes nothing under
# /etc (no udev, no backups or archives, no monitoring).
lvm_conf() {
    local f="" l
    for l in "$@"; do f+="\"a|^$l\$|\", "; done
    mkdir -p "$work/etc"
    cat >"$work/etc/lvm.conf" <<CONF
devices { filter = [ $f"r|.*|" ] obtain_device_list_from_udev = 0 }
global { use_lvmetad = 0 }
activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }
backup { backup = 0 archive = 0 }
CONF
    export LVM_SYSTEM_DIR=$work/etc LVM_SUPPRESS_FD_WARNINGS=1
}
# lvmq CMD ARG...: an lvm2 command without the device-mapper driver, quiet; dies on failure.
lvmq() { "$@" --driverloaded n >/dev/null 2>>"$work/lvm.log" || { cat "$work/lvm.log" >&2; die "$1 failed"; }; }
# lvmr CMD ARG...: a report, fields separated by ';', sizes in bytes, without leading blanks.
lvmr() { "$@" --driverloaded n --noheadings --nosuffix --units b --separator ';' 2>>"$work/lvm.log" | sed 's/^ *//'; }

# loop_at FILE OFFSET SIZE [losetup options]: LOOP=a loop device over that range of FILE; 1 when
# losetup fails.
loop_at() {
    local f=$1 o=$2 s=$3
    shift 3
    LOOP=$(losetup -f --show -o "$o" --sizelimit "$s" "$@" "$f") || return 1
    loops+=("$LOOP")
}
# unloop LOOP: detaches it and drops it from `loops`.
unloop() {
    local l keep=()
    blockdev --flushbufs "$1" # written back now, not at udev's last close after the detach
    losetup -d "$1"
    for l in "${loops[@]}"; do [[ $l == "$1" ]] || keep+=("$l"); done
    loops=("${keep[@]}")
}
