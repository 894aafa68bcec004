#!/usr/bin/env bash
# The bash completion (completion/asrimg.bash), called as bash calls it: COMP_WORDS and
# COMP_CWORD set, _asrimg run, COMPREPLY checked. Its commands and options must be the ones
# `asrimg help` and `asrimg COMMAND --help` list.
# Usage: completion_test.sh ASRIMG COMPLETION-SCRIPT
set -u
asrimg=$1
# shellcheck source=/dev/null
source "$2"
work=$(mktemp -d /tmp/asrimg-completion-XXXXXX)
trap 'rm -rf "$work"' EXIT
pass=0 fail=0
check() { # name, then a command that must succeed
  local name=$1; shift
  if "$@"; then pass=$((pass + 1)); else
    fail=$((fail + 1)); echo "FAIL: $name"; echo "  COMPREPLY: ${COMPREPLY[*]:-(empty)}"; fi
}
# complete WORD...: the words of the line, the last one being completed (as bash splits them:
# "--to=x" is "--to" "=" "x").
complete() {
  COMP_WORDS=(asrimg "$@")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMPREPLY=()
  _asrimg
}
sorted() { printf '%s\n' "$@" | sort -u | tr '\n' ' '; }
offers() { local w; for w in "$@"; do printf '%s\n' "${COMPREPLY[@]}" | grep -qxF -- "$w" || return 1; done; }
offers_none() { local w; for w in "$@"; do printf '%s\n' "${COMPREPLY[@]}" | grep -qxF -- "$w" && return 1; done; return 0; }
same_as() { [ "$(sorted "${COMPREPLY[@]}")" = "$(sorted "$@")" ]; }

commands=$("$asrimg" help | sed -n 's/^  \([a-z]\+\) .*/\1/p' | sort -u)
check "asrimg help lists commands" test -n "$commands"
complete ""
check "first word: every command of asrimg help" offers $commands help
complete "ba"
check "first word 'ba': backup" same_as backup
complete "help" ""
check "help: the commands" offers $(echo "$commands" | grep -vx version)

# The subcommands of rescue and store, each with its own options, as "GROUP SUB".
for group in rescue store; do
  subs=$("$asrimg" help | sed -n "s/^  $group \([a-z]\+\) .*/\1/p" | sort -u)
  check "asrimg help lists $group's subcommands" test -n "$subs"
  complete $group ""
  check "$group: its subcommands" same_as $subs
  complete help $group ""
  check "help $group: its subcommands" same_as $subs
  for sub in $subs; do
    opts=$("$asrimg" $group "$sub" --help | sed -n '/^options:/,/^$/p' | grep -oE '^ +(-[a-zA-Z], )?--[a-z-]+' | tr ',' ' ')
    complete $group "$sub" "-"
    check "$group $sub -: exactly the options of $group $sub --help ($(echo $opts))" same_as $opts
  done
done

for cmd in $commands; do
  [ "$cmd" = version ] && continue
  [ "$cmd" = rescue ] || [ "$cmd" = store ] && continue # their subcommands above
  # Every option the command's help lists (-o, --output=IMAGE, -h, --help ...).
  opts=$("$asrimg" "$cmd" --help | sed -n '/^options:/,/^$/p' | grep -oE '^ +(-[a-zA-Z], )?--[a-z-]+' | tr ',' ' ')
  complete "$cmd" "-"
  check "$cmd -: exactly the options of $cmd --help ($(echo $opts))" same_as $opts
  complete "$cmd" "--"
  check "$cmd --: only long options" offers_none -h -o
done
# rescue and store: each subcommand's help is the same through `help GROUP SUB`.
for gs in rescue:make rescue:update rescue:images rescue:plan rescue:run store:init store:list store:prune store:gc store:verify; do
  group=${gs%%:*} sub=${gs#*:}
  check "help $group $sub: the same as $group $sub --help" \
    test "$("$asrimg" help $group "$sub")" = "$("$asrimg" $group "$sub" --help)"
done
complete rescue make x.img --data-fs ""
check "--data-fs VALUE: exfat, ext4, fat32" same_as exfat ext4 fat32
complete restore x.asrimg --ke
check "restore --ke: --keep-going" same_as --keep-going

complete backup --volumes ""
check "--volumes VALUE: critical, all" same_as critical all
complete layout --volumes = ""
check "--volumes=VALUE: critical, all" same_as critical all
complete layout --volumes =
check "--volumes= (at the '='): critical, all" same_as critical all
complete backup --level 1
check "--level 1: 1 and 10..19" same_as 1 10 11 12 13 14 15 16 17 18 19
complete backup --split f
check "--split f: fat32" same_as fat32

# Paths: images are files; disks are block devices under /dev, and files.
touch "$work/pc.asrimg" "$work/pc.img"
mkdir "$work/sub"
complete info "$work/pc.a"
check "info IMAGE: files" same_as "$work/pc.asrimg"
complete restore "$work/pc.asrimg" --to "$work/pc.i"
check "restore --to TARGET: files" same_as "$work/pc.img"
complete restore "$work/pc.asrimg" --to = "$work/pc.i"
check "restore --to=TARGET: files" same_as "$work/pc.img"
complete backup "$work/pc.img" -o "$work/s"
check "backup -o IMAGE: directories too" same_as "$work/sub"
complete backup "$work/pc.img" --output-dir "$work/"
check "backup --output-dir DIR: directories only" same_as "$work/sub"
block=$(for f in /dev/*; do [ -b "$f" ] && echo "$f"; done | head -1)
char=$(for f in /dev/*; do [ -c "$f" ] && echo "$f"; done | head -1)
if [ -n "$block" ] && [ -n "$char" ]; then
  for line in "layout" "backup" "bench" "verify $work/pc.asrimg --against" "restore $work/pc.asrimg --to"; do
    # shellcheck disable=SC2086
    complete $line "/dev/"
    check "$line /dev/: block devices ($block), not character devices ($char)" sh -c \
      "printf '%s\n' \"\$@\" | grep -qxF '$block' && ! printf '%s\n' \"\$@\" | grep -qxF '$char'" sh "${COMPREPLY[@]}"
    # shellcheck disable=SC2086
    complete $line ""
    check "$line (nothing typed): block devices" offers "$block"
  done
  complete verify "$work/pc.asrimg" --against "$block" "/dev/"
  check "verify IMG --against A B: B is a disk too" offers "$block"
  complete verify "/dev/"
  check "verify IMAGE: not a block device" offers_none "$block"
  complete info ""
  check "info IMAGE: no block devices" offers_none "$block"
else
  echo "skip: no block and character devices under /dev to tell apart"
fi

echo "completion: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
