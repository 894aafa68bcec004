#!/usr/bin/env bash
# `asrimg backup` of a volume that is mounted, end to end, on a GPT disk image whose partitions are
# mounted the way this kernel allows (a loop device at the partition's offset; no partition scan).
# Without --freeze a read-write mount gets a warning (stderr and --json) and the backup goes on;
# a read-only one gets none. With --freeze the filesystem is frozen while its volume is read (a
# write started then waits until the backup lets go) and thawed afterwards, also when the backup
# is stopped by SIGTERM, by SIGINT while blocked on a full pipe (the signal handler thaws), by
# SIGKILL (the guardian process thaws), when the reader of -o - goes away (an error, exit 1) and
# when freezing fails (already frozen, vfat); a signal ignored when it started (SIGHUP under
# nohup) stays ignored, neither ending the backup nor thawing.
#
# Whether the filesystem is frozen is seen from outside by a write into it: a frozen filesystem
# holds the writer in uninterruptible sleep, which `timeout` cannot end, so a probe write runs in
# the background and is polled. A backup is held inside its frozen volume deterministically, not
# by timing: either its image goes to a pipe whose reader stops after 1 MiB (the volume holds far
# more random data than the pipeline buffers), or it is SIGSTOPped once a probe shows the freeze.
# The EXIT trap thaws before anything else, so a failing run never leaves a filesystem frozen.
# Usage: freeze_test.sh ASRIMG
set -u
asrimg=$1
skip_all() { echo "SKIP: $1"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip_all "needs root (loop devices, mount, FIFREEZE)"
for tool in losetup mount umount fsfreeze sfdisk mkfs.ext4 python3; do
  command -v "$tool" >/dev/null || skip_all "$tool not installed"
done

work=$(mktemp -d /tmp/asrimg-freeze-XXXXXX)
source "$(dirname "${BASH_SOURCE[0]}")/loop_lib.sh"
loops=() mounts=() pids=()
cleanup() {
  # Thaw first: a frozen filesystem blocks umount, and any process writing to it.
  for m in "${mounts[@]}"; do fsfreeze -u "$m" 2>/dev/null; done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount "${mounts[i]}" 2>/dev/null; done
  detach_ours "$work" "${loops[@]}"
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
pass=0 fail=0 skipped=0
check() { # name, then a command that must succeed
  local name=$1; shift
  if "$@" >"$work/out" 2>"$work/err"; then pass=$((pass + 1)); else
    fail=$((fail + 1)); echo "FAIL: $name"; sed 's/^/  out: /' "$work/out" | head -5; sed 's/^/  err: /' "$work/err" | head -5; fi
  cat "$work/err" >>"$work/all.err"
}
skip() { skipped=$((skipped + 1)); echo "SKIP: $1"; }
run_saving() {
  "$@" >"$work/out.saved" 2>"$work/err.saved"; echo $? >"$work/rc.saved"
  cat "$work/err.saved" >>"$work/all.err"
}
rc_is() { [ "$(cat "$work/rc.saved")" -eq "$1" ]; }
rc_is_not() { [ "$(cat "$work/rc.saved")" -ne "$1" ]; }
err_has() { grep -qF -- "$1" "$work/err.saved"; }
file_has() { grep -qF -- "$2" "$1" || { cat "$1" >&2; false; }; } # FILE TEXT
err_lacks() { ! grep -qF -- "$1" "$work/err.saved"; }
no_output() { [ ! -e "$1" ] && [ ! -e "$1.partial" ]; }

# A write into MNT finishes within SECONDS. When it does not (the filesystem is frozen), it is
# left waiting; PROBE is its pid, and probe_finished tells later whether it got through.
probe=""
write_completes() { # MNT SECONDS
  sh -c 'echo x >"$1/probe" && sync "$1/probe"' sh "$1" &
  probe=$!
  pids+=("$probe")
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 "$probe" 2>/dev/null || { wait "$probe"; return; }
    sleep 0.1
  done
  return 1
}
probe_finished() { # SECONDS: the write left waiting by write_completes got through in time
  local i
  for ((i = 0; i < $1 * 10; i++)); do
    kill -0 "$probe" 2>/dev/null || { wait "$probe"; return; }
    sleep 0.1
  done
  return 1
}
state_of() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1; }
wait_state() { # PID STATE SECONDS
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    [ "$(state_of "$1")" = "$2" ] && return 0
    kill -0 "$1" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# The disk: GPT; 1: ext4 with 96 MiB of random data (far more than the backup pipeline buffers),
# 2: vfat or NTFS (Linux cannot freeze either), 3: a small ext4.
disk=$work/disk.img
mkdir -p "$work/root" "$work/mnt1" "$work/mnt2" "$work/mnt3" "$work/bind" "$work/mntz"
head -c 96M /dev/urandom >"$work/root/random.bin"
truncate -s 256M "$disk"
sfdisk --quiet "$disk" <<'EOF' || skip_all "sfdisk cannot write a GPT"
label: gpt
start=2048, size=160MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4
size=16MiB, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7
size=48MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4
EOF
off1=$((1 << 20)) size1=$((160 << 20))
off2=$((161 << 20)) size2=$((16 << 20))
off3=$((177 << 20)) size3=$((48 << 20))
mkfs.ext4 -q -F -d "$work/root" -E offset=$off1 "$disk" 160M || skip_all "mkfs.ext4 failed"
mkfs.ext4 -q -F -E offset=$off3 "$disk" 48M || skip_all "mkfs.ext4 failed"
have_vfat=1
mkfs.vfat --offset $((off2 / 512)) "$disk" $((size2 / 1024)) >/dev/null 2>&1 || have_vfat=0

attached=""
attach() { # OFFSET SIZE [BACKING]: a loop device over the disk (or BACKING) at OFFSET, in $attached
  attached=$(losetup -f --show -o "$1" --sizelimit "$2" "${3:-$disk}" 2>/dev/null) || return 1
  loops+=("$attached")
}
mount_at() { # DEVICE MNT [OPTIONS]
  mount ${3:+-o "$3"} "$1" "$2" 2>/dev/null || return 1
  mounts+=("$2")
}
unmount() { # MNT
  umount "$1" || return 1
  local i
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    [ "${mounts[i]}" = "$1" ] && { unset "mounts[i]"; break; }
  done
  mounts=("${mounts[@]}")
}
attach $off1 $size1 || skip_all "no loop devices"
loop1=$attached
mnt=$work/mnt1
mount_at "$loop1" "$mnt" || skip_all "cannot mount an ext4 loop device here"
fsfreeze -f "$mnt" 2>/dev/null || skip_all "FIFREEZE not permitted here"
fsfreeze -u "$mnt"
warning="asrimg: warning: volume 1 ($disk) is mounted read-write at $mnt: the image may be inconsistent; use --freeze or unmount it"

# (a) Without --freeze: the warning, and the backup goes on.
run_saving "$asrimg" backup "$disk" -o "$work/a.asrimg" --volumes 1
check "a read-write mount: backup exits 0" rc_is 0
check "a read-write mount: the warning, word for word" err_has "$warning"
check "the image verifies" "$asrimg" verify "$work/a.asrimg"
check "--json lists the warning" sh -c "'$asrimg' backup '$disk' -o '$work/aj.asrimg' --volumes 1 --json 2>/dev/null | python3 -c '
import json, sys; d = json.load(sys.stdin)
assert len(d[\"warnings\"]) == 1 and \"is mounted read-write at $mnt:\" in d[\"warnings\"][0], d[\"warnings\"]'"
check "-o - --json: the warning only in the JSON on stderr" sh -c "'$asrimg' backup '$disk' -o - --volumes 1 --json 2>'$work/aj.json' >/dev/null && python3 -c '
import json; d = json.load(open(\"$work/aj.json\")); assert len(d[\"warnings\"]) == 1, d'"
run_saving "$asrimg" backup "$disk" -o "$work/a3.asrimg" --volumes 3
check "an unselected mounted volume: no warning" err_lacks "warning"
check "--json without warnings has an empty list" sh -c "'$asrimg' backup '$disk' -o '$work/a3j.asrimg' --volumes 3 --json 2>/dev/null | python3 -c '
import json, sys; assert json.load(sys.stdin)[\"warnings\"] == []'"

# (b) --freeze: succeeds, verifies, and the filesystem is writable afterwards.
run_saving "$asrimg" backup "$disk" -o "$work/b.asrimg" --volumes 1 --freeze
check "--freeze: backup exits 0" rc_is 0
check "--freeze: no warning" err_lacks "warning"
check "--freeze: says it freezes" err_has "frozen while it is read"
check "--freeze: ext4 mounted read-write is captured by its used map" grep -qE '^  1 +ext4 +used ' "$work/err.saved"
check "--freeze: the image verifies" "$asrimg" verify "$work/b.asrimg"
check "--freeze: thawed afterwards" write_completes "$mnt" 10

# The image cannot go into the filesystem being frozen (it would wait for the thaw forever).
run_saving "$asrimg" backup "$disk" -o "$mnt/inside.asrimg" --volumes 1 --freeze
check "--freeze: an image inside the volume is refused" rc_is 1
check "that refusal names the disk" err_has "being imaged"
check "and leaves nothing there" no_output "$mnt/inside.asrimg"

# A backup whose image goes into a pipe that stops being read after 1 MiB: it is held inside the
# frozen volume (1 MiB of image means the volume's reads began) until the reader is continued.
mkfifo "$work/fifo"
reader="" backup=""
start_held() { # OUTPUT, then backup options
  local out=$1; shift
  sh -c 'head -c 1048576 >"$1" && kill -STOP $$ && cat >>"$1"' sh "$out" <"$work/fifo" &
  reader=$!
  pids+=("$reader")
  "$asrimg" backup "$disk" -o - --freeze --threads 1 "$@" >"$work/fifo" 2>"$work/err.held" &
  backup=$!
  pids+=("$backup")
  wait_state "$reader" T 60
}
finish_held() { # the backup's exit status
  kill -CONT "$reader"
  wait "$backup"
  local rc=$?
  wait "$reader"
  cat "$work/err.held" >>"$work/all.err"
  return $rc
}

# (c) The filesystem really is frozen while the volume is read.
if start_held "$work/c.asrimg" --volumes 1; then
  write_completes "$mnt" 2
  check "held backup: a write into the volume waits while it is read" test $? -ne 0
  finish_held
  check "held backup: exits 0 once let go" test $? -eq 0
  check "held backup: the waiting write got through after it" probe_finished 10
  check "held backup: the image verifies" "$asrimg" verify "$work/c.asrimg"
else
  fail=$((fail + 1)); echo "FAIL: (c) the held backup never filled its pipe"; sed 's/^/  err: /' "$work/err.held"
  finish_held
fi

# (d) SIGINT while the backup is blocked on its full pipe: the handler thaws at once, before the
# backup can stop (the reader is still stopped), then the backup fails.
if start_held "$work/d.asrimg" --volumes 1; then
  write_completes "$mnt" 2
  check "SIGINT: the volume is frozen before" test $? -ne 0
  kill -INT "$backup"
  check "SIGINT: thawed by the handler while the backup is still blocked" probe_finished 10
  check "SIGINT: the backup is still blocked then" kill -0 "$backup"
  finish_held
  check "SIGINT: the backup exits non-zero" test $? -ne 0
  check "SIGINT: it says interrupted" file_has "$work/err.held" "interrupted"
else
  fail=$((fail + 1)); echo "FAIL: (d) the held backup never filled its pipe"; sed 's/^/  err: /' "$work/err.held"
  finish_held
fi

# SIGTSTP (Ctrl-Z) would leave the volume frozen for as long as the process stays stopped: with
# --freeze it stops the backup instead, thawing at once.
if start_held "$work/tstp.asrimg" --volumes 1; then
  write_completes "$mnt" 2
  check "SIGTSTP: the volume is frozen before" test $? -ne 0
  kill -TSTP "$backup"
  check "SIGTSTP: thawed at once" probe_finished 10
  finish_held
  check "SIGTSTP: the backup exits non-zero" test $? -ne 0
else
  fail=$((fail + 1)); echo "FAIL: SIGTSTP: the held backup never filled its pipe"; sed 's/^/  err: /' "$work/err.held"
  finish_held
fi

# The guardian killed early: telling it the volume is thawed must not kill the backup (SIGPIPE).
if start_held "$work/g.asrimg" --volumes 1; then
  guardian=$(cat "/proc/$backup/task/$backup/children" 2>/dev/null)
  check "the backup has a guardian while frozen" test -n "$guardian"
  [ -n "$guardian" ] && kill -9 $guardian
  finish_held
  check "guardian gone: the backup still exits 0" test $? -eq 0
  check "guardian gone: the image verifies" "$asrimg" verify "$work/g.asrimg"
  check "guardian gone: thawed" write_completes "$mnt" 10
else
  fail=$((fail + 1)); echo "FAIL: guardian: the held backup never filled its pipe"; sed 's/^/  err: /' "$work/err.held"
  finish_held
fi

# The reader of -o - gone while frozen: no death by SIGPIPE, the failed write is one error line
# and exit 1, thawed.
"$asrimg" backup "$disk" -o - --volumes 1 --freeze --threads 1 2>"$work/err.pipe" | head -c 1048576 >/dev/null
pipe_rc=${PIPESTATUS[0]}
check "reader gone: the backup exits 1" test "$pipe_rc" -eq 1
check "reader gone: one error line, the broken pipe" sh -c "grep -c '^asrimg: error: ' '$work/err.pipe' | grep -qx 1 && grep -q 'Broken pipe' '$work/err.pipe'"
check "reader gone: thawed" write_completes "$mnt" 10

# A signal the backup was started with ignored (SIGHUP under nohup) stays ignored: it neither
# ends the backup nor thaws the volume while it is read.
trap '' HUP
if start_held "$work/hup.asrimg" --volumes 1; then
  trap - HUP
  kill -HUP "$backup"
  write_completes "$mnt" 2
  check "ignored SIGHUP: the volume stays frozen" test $? -ne 0
  check "ignored SIGHUP: the backup goes on" kill -0 "$backup"
  finish_held
  check "ignored SIGHUP: the backup exits 0" test $? -eq 0
  check "ignored SIGHUP: the waiting write got through after it" probe_finished 10
  check "ignored SIGHUP: the image verifies" "$asrimg" verify "$work/hup.asrimg"
else
  trap - HUP
  fail=$((fail + 1)); echo "FAIL: SIGHUP: the held backup never filled its pipe"; sed 's/^/  err: /' "$work/err.held"
  finish_held
fi
cat "$work/err.pipe" >>"$work/all.err"

# A backup into a file, SIGSTOPped inside its frozen volume: once the process holds the mount
# point open (it does while it freezes), stop it and see whether a write waits; if not (stopped
# just before FIFREEZE), let it go on and try again.
stop_frozen() { # PID
  local i
  for ((i = 0; i < 600; i++)); do
    kill -0 "$1" 2>/dev/null || return 1
    if ls -l "/proc/$1/fd" 2>/dev/null | grep -q " -> $mnt\$"; then
      kill -STOP "$1"
      write_completes "$mnt" 1 || return 0
      kill -CONT "$1"
    fi
    sleep 0.05
  done
  return 1
}
slow_backup() { # OUTPUT: level 19 on one thread reads the 96 MiB volume for many seconds
  "$asrimg" backup "$disk" -o "$1" --volumes 1 --freeze --threads 1 --level 19 >/dev/null 2>"$work/err.slow" &
  backup=$!
  pids+=("$backup")
}

# (d) SIGTERM mid-volume: non-zero exit, no image and no .partial, thawed.
slow_backup "$work/t.asrimg"
if stop_frozen "$backup"; then
  kill -TERM "$backup"
  kill -CONT "$backup"
  check "SIGTERM: thawed" probe_finished 10
  wait "$backup"
  check "SIGTERM: the backup exits non-zero" test $? -ne 0
  check "SIGTERM: it says interrupted" file_has "$work/err.slow" "asrimg: error: backup: interrupted"
  check "SIGTERM: no image and no .partial left" no_output "$work/t.asrimg"
  cat "$work/err.slow" >>"$work/all.err"
else
  fail=$((fail + 1)); echo "FAIL: SIGTERM: never saw the volume frozen"; sed 's/^/  err: /' "$work/err.slow"
fi

# SIGKILL mid-volume: nothing in the process can thaw; its guardian does.
slow_backup "$work/k.asrimg"
if stop_frozen "$backup"; then
  kill -KILL "$backup"
  check "SIGKILL: the guardian thaws" probe_finished 10
  fsfreeze -u "$mnt" 2>/dev/null # when it did not: the checks after this one start thawed
  wait "$backup" 2>/dev/null
  check "SIGKILL: no image" test ! -e "$work/k.asrimg"
  rm -f "$work/k.asrimg.partial"
else
  fail=$((fail + 1)); echo "FAIL: SIGKILL: never saw the volume frozen"; sed 's/^/  err: /' "$work/err.slow"
fi

# Mounted twice (a bind mount): one filesystem, frozen once (a second FIFREEZE would fail EBUSY).
if mount --bind "$mnt" "$work/bind" 2>/dev/null; then
  mounts+=("$work/bind")
  run_saving "$asrimg" backup "$disk" -o "$work/bind.asrimg" --volumes 1 --freeze
  check "bind mount: --freeze exits 0" rc_is 0
  check "bind mount: the image verifies" "$asrimg" verify "$work/bind.asrimg"
  check "bind mount: thawed" write_completes "$work/bind" 10
  unmount "$work/bind"
else
  skip "bind mounts not permitted here"
fi

# Already frozen by someone else: a clear error naming the mount point, before any read.
fsfreeze -f "$mnt"
run_saving "$asrimg" backup "$disk" -o "$work/f.asrimg" --volumes 1 --freeze
fsfreeze -u "$mnt"
check "already frozen: exits 1" rc_is 1
check "already frozen: one error naming the mount point" err_has "asrimg: error: backup: volume 1 ($disk): cannot freeze $mnt (ext4): it is already frozen"
check "already frozen: no image and no .partial" no_output "$work/f.asrimg"
check "already frozen: left as it was found, then thawed here" write_completes "$mnt" 10

# A filesystem Linux cannot freeze (vfat; NTFS through ntfs-3g where the kernel has no vfat): a
# clear error, nothing read.
nofreeze=""
if attach $off2 $size2; then
  loop2=$attached
  if [ $have_vfat -eq 1 ] && mount_at "$loop2" "$work/mnt2"; then
    nofreeze=vfat
  elif command -v mkntfs >/dev/null && command -v ntfs-3g >/dev/null && [ -c /dev/fuse ] &&
    mkntfs -Q -F -q "$loop2" >/dev/null 2>&1 && ntfs-3g "$loop2" "$work/mnt2" 2>/dev/null; then
    mounts+=("$work/mnt2")
    nofreeze=fuseblk
  fi
fi
if [ -n "$nofreeze" ]; then
  run_saving "$asrimg" backup "$disk" -o "$work/v0.asrimg" --volumes 2
  check "$nofreeze mounted read-write: the warning" err_has "volume 2 ($disk) is mounted read-write at $work/mnt2:"
  run_saving "$asrimg" backup "$disk" -o "$work/v.asrimg" --volumes 2 --freeze
  check "$nofreeze --freeze: exits 1" rc_is 1
  check "$nofreeze --freeze: says it cannot be frozen" err_has "cannot freeze $work/mnt2 ($nofreeze): this filesystem type cannot be frozen"
  check "$nofreeze --freeze: no image and no .partial" no_output "$work/v.asrimg"
  unmount "$work/mnt2"
else
  skip "no filesystem that cannot be frozen to mount (vfat, or ntfs-3g)"
fi

# The disk as a block device (a loop device over the image), its volume 3 mounted through a loop
# device over that block device: found from the disk file and from the device, and an image into
# it is refused either way.
if attach 0 $((256 << 20)) && loopw=$attached && attach $off3 $size3 "$loopw" && loop3=$attached &&
  mount_at "$loop3" "$work/mnt3"; then
  run_saving "$asrimg" backup "$loopw" -o "$work/w1.asrimg" --volumes 1
  check "source device: volume 1 (over the file) found mounted" err_has "volume 1 ($loopw) is mounted read-write at $mnt:"
  run_saving "$asrimg" backup "$loopw" -o "$work/w3.asrimg" --volumes 3
  check "source device: volume 3 (a loop over the device) found mounted" err_has "volume 3 ($loopw) is mounted read-write at $work/mnt3:"
  run_saving "$asrimg" backup "$disk" -o "$work/w3f.asrimg" --volumes 3
  check "source file: volume 3 (a loop over a loop over it) found mounted" err_has "volume 3 ($disk) is mounted read-write at $work/mnt3:"
  run_saving "$asrimg" backup "$loopw" -o "$work/mnt3/inside.asrimg" --volumes 3 --freeze
  check "an image into a loop device over the source device is refused" rc_is 1
  check "that refusal says why" err_has "being imaged"

  # The used map of a frozen volume is read from the frozen state: data written into volume 3
  # after the backup mapped it (while volume 1 is held frozen) is in the image. (ext4 mounted
  # read-write has a journal to replay, so its map is read with it frozen a first time, before
  # the backup starts, and a second time when it is frozen to be read.)
  "$asrimg" backup "$disk" -o "$work/m0.asrimg" --volumes 3 --freeze >/dev/null 2>&1
  before=$("$asrimg" info --json "$work/m0.asrimg" | python3 -c 'import json,sys; print(json.load(sys.stdin)["volumes"][0]["data_bytes"])')
  if start_held "$work/m1.asrimg" --volumes 1,3; then
    head -c 8M /dev/urandom >"$work/mnt3/new.bin"
    finish_held
    check "remap: the held backup exits 0" test $? -eq 0
    check "remap: the image verifies" "$asrimg" verify "$work/m1.asrimg"
    check "remap: what was written after the analysis is in the image" sh -c "'$asrimg' info --json '$work/m1.asrimg' | python3 -c '
import json, sys; v = [v for v in json.load(sys.stdin)[\"volumes\"] if v[\"partition\"] == 3][0]
assert v[\"data_bytes\"] >= $before + (8 << 20), (v[\"data_bytes\"], $before)'"
  else
    fail=$((fail + 1)); echo "FAIL: remap: the held backup never filled its pipe"; sed 's/^/  err: /' "$work/err.held"
    finish_held
  fi
  unmount "$work/mnt3"
else
  skip "no loop device over a loop device"
fi

# A whole unpartitioned disk, mounted itself.
whole=$work/whole.img
truncate -s 32M "$whole"
if mkfs.ext4 -q -F "$whole" && attach 0 0 "$whole" && mount_at "$attached" "$work/mntz"; then
  run_saving "$asrimg" backup "$whole" -o "$work/z.asrimg" --volumes 0
  check "whole disk mounted: the warning" err_has "volume 0 ($whole) is mounted read-write at $work/mntz:"
  run_saving "$asrimg" backup "$whole" -o "$work/zf.asrimg" --volumes 0 --freeze
  check "whole disk --freeze: exits 0" rc_is 0
  check "whole disk --freeze: thawed" write_completes "$work/mntz" 10
  unmount "$work/mntz"
else
  skip "cannot mount a whole-disk loop device"
fi

# (e) Read-only: neither a warning nor a freeze.
unmount "$mnt"
if mount_at "$loop1" "$mnt" ro; then
  run_saving "$asrimg" backup "$disk" -o "$work/r.asrimg" --volumes 1
  check "read-only mount: exits 0" rc_is 0
  check "read-only mount: no warning" err_lacks "warning"
  run_saving "$asrimg" backup "$disk" -o "$work/rf.asrimg" --volumes 1 --freeze
  check "read-only mount --freeze: exits 0" rc_is 0
  check "read-only mount --freeze: nothing frozen" err_lacks "frozen"
else
  fail=$((fail + 1)); echo "FAIL: cannot mount the volume read-only"
fi

# Under ASRIMG_SANITIZE: any report of a backup above fails the test, and is shown for ctest.
if grep -qE "LeakSanitizer|AddressSanitizer|runtime error:" "$work/all.err"; then
  fail=$((fail + 1)); echo "FAIL: sanitizer reports:"; grep -E -A5 "LeakSanitizer|AddressSanitizer|runtime error:" "$work/all.err"
fi

echo "freeze_test: $pass passed, $fail failed, $skipped skipped"
[ "$fail" -eq 0 ]
