# Loop devices a shell test set up, detached at its end without touching anyone else's.
# ctest runs tests side by side: a device a test detached earlier (or whose setup it lost track
# of) may since be another test's under the same name, and detaching it would pull the disk out
# from under that test. So a cleanup detaches only devices that still read its own files: a file
# it names, or any file under a directory it names, directly or through another loop device.
# Source it; it defines two functions and sets nothing else.

loop_ours() { # PATH DEV: DEV reads the file PATH or a file under the directory PATH (absolute)
  local back
  back=$(losetup -n -O BACK-FILE "$2" 2>/dev/null) || return 1
  case $back in
    "$1" | "$1 (deleted)" | "$1"/*) true ;;
    /dev/loop*) loop_ours "$1" "$back" ;;
    *) false ;;
  esac
}

detach_ours() { # PATH DEV...: detaches each DEV that is ours, the last set up first
  local path=$1 i
  shift
  for ((i = $#; i >= 1; i--)); do
    ! loop_ours "$path" "${!i}" || losetup -d "${!i}" 2>/dev/null
  done
  return 0
}
