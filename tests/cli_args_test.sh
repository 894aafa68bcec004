#!/usr/bin/env bash
# The command line's conventions, on every command: --opt=value as --opt value, -- ending the
# options, -h/--help and `asrimg help COMMAND` printing the same full help, usage errors as one
# line and exit 2. Files only (no loop devices), so it needs no lock.
# Usage: cli_args_test.sh ASRIMG ASRIMG-MKIMAGE
set -u
asrimg=$(realpath "$1") mkimage=$(realpath "$2")
work=$(mktemp -d /tmp/asrimg-args-XXXXXX)
trap 'rm -rf "$work"' EXIT
pass=0 fail=0
check() { # name, then a command that must succeed
  local name=$1; shift
  if "$@" >"$work/out" 2>"$work/err"; then pass=$((pass + 1)); else
    fail=$((fail + 1)); echo "FAIL: $name"; sed 's/^/  out: /' "$work/out" | head -5; sed 's/^/  err: /' "$work/err" | head -5; fi
}
run_saving() { "$@" >"$work/out.saved" 2>"$work/err.saved"; echo $? >"$work/rc.saved"; }
rc_is() { [ "$(cat "$work/rc.saved")" -eq "$1" ]; }
one_error_line() { # stderr of the last command is exactly one "asrimg: error: ..." line mentioning $1
  [ "$(wc -l <"$work/err.saved")" -eq 1 ] && grep -qF -- "$1" "$work/err.saved" && grep -q "^asrimg: error: " "$work/err.saved"
}
usage_error() { # NAME WORD CMD...: exit 2, one error line naming WORD, nothing on stdout
  local name=$1 word=$2; shift 2
  run_saving "$@"
  check "$name: exits 2" rc_is 2
  check "$name: one error line naming '$word'" one_error_line "$word"
  check "$name: nothing on stdout" test ! -s "$work/out.saved"
}

commands="layout backup bench restore info verify"

# Help: the overview, and each command's full help three ways, the same text.
for h in help --help -h; do
  run_saving "$asrimg" $h
  check "asrimg $h exits 0" rc_is 0
  for cmd in $commands version; do
    check "asrimg $h lists $cmd" grep -q "^  $cmd " "$work/out.saved"
  done
done
for cmd in $commands; do
  "$asrimg" help "$cmd" >"$work/help.$cmd" 2>"$work/help.err"; rc=$?
  check "help $cmd exits 0, nothing on stderr" test $rc -eq 0 -a ! -s "$work/help.err"
  check "help $cmd starts with its usage" sh -c "head -1 '$work/help.$cmd' | grep -q '^usage: asrimg $cmd '"
  check "help $cmd has an example" grep -q "^  asrimg $cmd " "$work/help.$cmd"
  check "help $cmd lists -h, --help" grep -q "^  -h, --help " "$work/help.$cmd"
  for h in -h --help; do
    run_saving "$asrimg" "$cmd" $h
    check "$cmd $h exits 0" rc_is 0
    check "$cmd $h prints what help $cmd does" cmp "$work/out.saved" "$work/help.$cmd"
  done
  # -h wins wherever it stands, even after other arguments.
  run_saving "$asrimg" "$cmd" "$work/nothing" --json -h
  check "$cmd ARG --json -h prints the help" cmp "$work/out.saved" "$work/help.$cmd"
  # Every option the help lists is one the parser takes, with a value where the help shows one:
  # parsing stops at the first unknown option, so only then is -h after it reached.
  for opt in $(sed -n '/^options:/,/^$/p' "$work/help.$cmd" | grep -oE -- '^ +(-[a-z], )?--[a-z-]+(=[A-Z]+)?' |
               sed 's/.*--/--/; s/=SIZE$/=1M/; s/=N$/=1/; s/=[A-Z]*$/=x/'); do
    run_saving "$asrimg" "$cmd" "$opt" -h
    check "$cmd $opt: an option the parser takes" cmp "$work/out.saved" "$work/help.$cmd"
  done
  usage_error "$cmd --frobnicate" "--frobnicate" "$asrimg" "$cmd" --frobnicate
  usage_error "$cmd -Z" "-Z" "$asrimg" "$cmd" -Z
  usage_error "$cmd --json=1" "--json" "$asrimg" "$cmd" "$work/nothing" --json=1
  usage_error "$cmd with no argument" "$cmd" "$asrimg" "$cmd"
done
usage_error "help of an unknown command" "frobnicate" "$asrimg" help frobnicate
for opt in --volumes --level --threads --split -o --avg-chunk; do
  usage_error "backup $opt without its value" "$opt" "$asrimg" backup "$work/disk.img" "$opt"
done
for opt in --to --threads; do
  usage_error "restore $opt without its value" "$opt" "$asrimg" restore "$work/a.asrimg" "$opt"
done
usage_error "verify --against without its value" "--against" "$asrimg" verify "$work/a.asrimg" --against

# --opt=value is --opt value, for every kind of value.
head -c 3M /dev/urandom >"$work/disk.img"
truncate -s 6M "$work/disk.img"
check "mkimage" "$mkimage" "$work/disk.img" -o "$work/a.asrimg"
check "backup --output=I --volumes=all --level=1 --threads=2 --split=2M" \
  "$asrimg" backup "$work/disk.img" --output="$work/b.asrimg" --volumes=all --level=1 --threads=2 --split=2M
check "... makes a split set that verifies" sh -c "'$asrimg' verify '$work/b.asrimg' && test -e '$work/b.asrimg.002'"
check "backup -oI (a short option's value attached)" "$asrimg" backup "$work/disk.img" -o"$work/c.asrimg" --volumes all
check "... makes an image" "$asrimg" verify "$work/c.asrimg"
usage_error "backup --threads=0" "--threads 0" "$asrimg" backup "$work/disk.img" -o "$work/n.asrimg" --threads=0
check "... and makes nothing" test ! -e "$work/n.asrimg"
usage_error "backup --level=20" "--level 20" "$asrimg" backup "$work/disk.img" -o "$work/n.asrimg" --level=20
usage_error "bench --level=x" "--level x" "$asrimg" bench "$work/disk.img" --level=x
check "layout --volumes=all --json" sh -c "'$asrimg' layout --volumes=all --json '$work/disk.img' | python3 -c '
import json, sys
assert json.load(sys.stdin)[0][\"partitions\"][0][\"capture\"] != \"skip\"'"
check "restore --to=T --threads=2" "$asrimg" restore "$work/a.asrimg" --to="$work/t.img" --threads=2 --yes
check "... restores the disk" cmp "$work/t.img" "$work/disk.img"
check "verify --against=T" "$asrimg" verify "$work/a.asrimg" --against="$work/t.img"
check "verify --against=T T2: the later word is a disk too" sh -c "cp '$work/t.img' '$work/t2.img' &&
  '$asrimg' verify '$work/a.asrimg' --against='$work/t.img' '$work/t2.img' | grep -q 'OK: 2 disks match'"

# -- ends the options: what follows is a file even when it starts with '-'.
cp "$work/a.asrimg" "$work/-a.asrimg"
(cd "$work" && run_saving "$asrimg" info -- -a.asrimg)
check "info -- -a.asrimg exits 0" rc_is 0
check "info -- -a.asrimg shows the image" grep -q -- "-a.asrimg" "$work/out.saved"
(cd "$work" && run_saving "$asrimg" verify --json -- -a.asrimg)
check "verify --json -- -a.asrimg exits 0" rc_is 0
(cd "$work" && run_saving "$asrimg" info -a.asrimg)
check "info -a.asrimg (no --) is an unknown option" rc_is 2
(cd "$work" && run_saving "$asrimg" restore a.asrimg --yes -- --to t3.img)
check "restore IMG -- --to T: --to is a second image, not an option" rc_is 2
check "... and nothing is made" test ! -e "$work/t3.img" -a ! -e "$work/--to"
# - is a word (standard input), not an option.
check "restore - --to T reads standard input" sh -c "'$asrimg' restore - --to '$work/t4.img' --yes <'$work/a.asrimg' 2>/dev/null &&
  cmp '$work/t4.img' '$work/disk.img'"

echo "cli_args: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
