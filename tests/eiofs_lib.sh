# Shared by the tests that serve a disk through asrimg-eiofs (read_error_test.sh,
# read_fault_test.sh); sourced, with $mnt, $work, $fuse_pid and $fail theirs.
# unmount: stops the FUSE server of $mnt, if one runs. A process that just exited may still hold
# the disk open for a moment: retry before forcing. The server's stderr (a sanitizer report) is
# passed on, so that ctest sees it.
unmount() {
  [ -n "$fuse_pid" ] || return 0
  local tries=0
  until fusermount3 -u "$mnt" 2>/dev/null; do
    tries=$((tries + 1))
    if [ $tries -ge 50 ]; then
      echo "FAIL: $mnt stays busy; unmounting lazily"; fail=$((fail + 1))
      fusermount3 -uz "$mnt" 2>/dev/null; kill "$fuse_pid" 2>/dev/null
      break
    fi
    sleep 0.1
  done
  wait "$fuse_pid" 2>/dev/null
  fuse_pid=""
  grep -v '^$' "$work/eiofs.err" 2>/dev/null | sed 's/^/  eiofs: /'
}
