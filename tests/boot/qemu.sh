#!/usr/bin/env bash
# Boots disk images under qemu for the boot tests and waits for a marker on the serial console.
# KVM when /dev/kvm answers a probe (a KVM guest can hang on some hosts after GRUB), TCG otherwise.
# Usage:
#   qemu.sh --firmware bios|uefi|uefi-sb --disk FILE [--disk FILE]... --expect TEXT
#           [--timeout SECONDS] [--log FILE] [--vars FILE] [--mem MiB] [--fail TEXT] [--until-off]
#           [--snapshot]
# --vars keeps the UEFI variable store in FILE (made from OVMF's template when missing), so boot
# entries written by one boot are seen by the next. uefi-sb enforces Secure Boot with Microsoft's
# keys enrolled (OVMF's .ms variables). --until-off also waits for the guest to power off by itself
# (a guest that writes disks must finish before its disks are read). --snapshot attaches every disk
# with snapshot=on: the guest's writes go to a temporary overlay and the files are opened read-only
# (without it qemu refuses asrimg mount's DIR/disk0.img: "Read-only file system"). Exit 0 when
# TEXT appeared, 1 when --fail TEXT appeared, the guest stopped without TEXT, or the timeout passed
# (the log's tail is printed).
set -euo pipefail

firmware=bios timeout=120 log="" vars="" mem=512 expect="" fail="" until_off=0 snapshot=""
disks=()
while [ $# -gt 0 ]; do
  case "$1" in
    --firmware) firmware=$2; shift 2 ;;
    --disk) disks+=("$2"); shift 2 ;;
    --expect) expect=$2; shift 2 ;;
    --fail) fail=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --log) log=$2; shift 2 ;;
    --vars) vars=$2; shift 2 ;;
    --mem) mem=$2; shift 2 ;;
    --until-off) until_off=1; shift ;;
    --snapshot) snapshot=,snapshot=on; shift ;;
    *) echo "qemu.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ ${#disks[@]} -gt 0 ] && [ -n "$expect" ] || { echo "qemu.sh: --disk and --expect are needed" >&2; exit 2; }

ovmf=/usr/share/OVMF
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
[ -n "$log" ] || log=$scratch/serial.log
: >"$log"

kvm_works() {
  [ -w /dev/kvm ] || return 1
  # A guest that must run and stop: a boot sector writing 1 to the isa-debug-exit port, which ends
  # qemu with status 3. A hang (timeout) or any other status means KVM is unusable. (qemu given
  # -kernel /dev/null fails before any guest runs, which proved nothing.) With the CPU the boots
  # use: on a nested host whose KVM refuses an MSR of -cpu host (seen: "failed to set MSR 0x10a",
  # qemu aborting), the default CPU passed the probe and every boot then failed.
  local probe=$scratch/kvm-probe.img rc=0
  { printf '\xb0\x01\xe6\xf4\xf4\xeb\xfd'; head -c 503 /dev/zero; printf '\x55\xaa'; } >"$probe"
  truncate -s 1M "$probe"   # SeaBIOS does not boot a one-sector disk
  timeout 20 qemu-system-x86_64 -enable-kvm -cpu host -machine q35 -m 64 -display none -no-reboot -nodefaults \
    -serial none -monitor none -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
    -drive "file=$probe,format=raw,if=none,id=p" -device virtio-blk-pci,drive=p,bootindex=0 \
    >/dev/null 2>&1 || rc=$?
  [ $rc -eq 3 ]
}

args=(-m "$mem" -display none -no-reboot -serial "file:$log" -monitor none -nodefaults -vga none)
if kvm_works; then
  args+=(-enable-kvm -cpu host)
else
  # qemu64 rather than max: under TCG every extra CPU feature the kernel uses (AVX-512 crypto
  # self-tests, ...) is emulated; measured about 20% faster to the marker.
  args+=(-cpu qemu64)
fi

uefi_vars() {
  local template=$1
  if [ -n "$vars" ]; then
    [ -f "$vars" ] || cp "$template" "$vars"
    echo "$vars"
  else
    cp "$template" "$scratch/vars.fd"
    echo "$scratch/vars.fd"
  fi
}

case "$firmware" in
  bios) args+=(-machine q35) ;;
  uefi)
    args+=(-machine q35
           -drive "if=pflash,format=raw,unit=0,readonly=on,file=$ovmf/OVMF_CODE_4M.fd"
           -drive "if=pflash,format=raw,unit=1,file=$(uefi_vars "$ovmf/OVMF_VARS_4M.fd")") ;;
  uefi-sb)
    args+=(-machine q35,smm=on -global driver=cfi.pflash01,property=secure,value=on
           -drive "if=pflash,format=raw,unit=0,readonly=on,file=$ovmf/OVMF_CODE_4M.secboot.fd"
           -drive "if=pflash,format=raw,unit=1,file=$(uefi_vars "$ovmf/OVMF_VARS_4M.ms.fd")") ;;
  *) echo "qemu.sh: firmware must be bios, uefi or uefi-sb" >&2; exit 2 ;;
esac
i=0
for d in "${disks[@]}"; do
  args+=(-drive "file=$d,format=raw,if=none,id=d$i$snapshot" -device "virtio-blk-pci,drive=d$i,bootindex=$i")
  i=$((i + 1))
done

qemu-system-x86_64 "${args[@]}" >"$scratch/qemu.out" 2>&1 &
pid=$!
result=1
deadline=$((SECONDS + timeout))
while [ $SECONDS -lt $deadline ]; do
  if [ $until_off -eq 0 ] && grep -qF -- "$expect" "$log" 2>/dev/null; then result=0; break; fi
  if [ -n "$fail" ] && grep -qF -- "$fail" "$log" 2>/dev/null; then break; fi
  kill -0 "$pid" 2>/dev/null || { grep -qF -- "$expect" "$log" && result=0; break; }
  sleep 1
done
if [ $until_off -eq 1 ] && kill -0 "$pid" 2>/dev/null; then
  result=1
  echo "qemu.sh: the guest did not power off within ${timeout}s" >&2
fi
if kill -0 "$pid" 2>/dev/null; then
  # Give a guest that printed the marker a moment to power off by itself (it may be writing).
  for _ in 1 2 3 4 5; do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  kill "$pid" 2>/dev/null || true
fi
wait "$pid" 2>/dev/null || true
if [ $result -ne 0 ]; then
  echo "qemu.sh: '$expect' not seen ($firmware, ${SECONDS}s); serial log tail:" >&2
  tail -n 30 "$log" >&2
  cat "$scratch/qemu.out" >&2
fi
exit $result
