#!/usr/bin/env bash
# `cmake --install` into a temporary prefix puts the command, its man page and its bash completion
# in place; the man page is the one the installed command prints (one source: cli/help.c) and
# renders without a warning, documenting every option of every command's --help.
# Usage: install_test.sh BUILD-DIR COMPLETION-SCRIPT
set -u
build=$1 completion=$2
prefix=$(mktemp -d /tmp/asrimg-install-XXXXXX)
trap 'rm -rf "$prefix"' EXIT
pass=0 fail=0
check() { # name, then a command that must succeed
  local name=$1; shift
  if "$@" >"$prefix/out" 2>"$prefix/err"; then pass=$((pass + 1)); else
    fail=$((fail + 1)); echo "FAIL: $name"; sed 's/^/  out: /' "$prefix/out" | head -5; sed 's/^/  err: /' "$prefix/err" | head -5; fi
}
command -v groff >/dev/null || { echo "skip: no groff (scripts/deps.sh test installs groff-base)"; exit 77; }

check "cmake --install --prefix" cmake --install "$build" --prefix "$prefix/usr"
bin=$prefix/usr/bin/asrimg man8=$prefix/usr/share/man/man8/asrimg.8
comp=$prefix/usr/share/bash-completion/completions/asrimg
check "bin/asrimg is installed and runs" "$bin" version
check "share/man/man8/asrimg.8 is installed" test -s "$man8"
check "share/bash-completion/completions/asrimg is the completion" cmp "$comp" "$completion"
check "the man page is what the command prints (asrimg help --man)" sh -c "'$bin' help --man | cmp - '$man8'"

# Rendered: no groff warning (-ww: all of them), and man -l (man-db) says nothing on stderr.
check "groff -man -ww renders it without a warning" sh -c "groff -man -Tutf8 -ww -z '$man8' 2>&1 | grep . && exit 1 || exit 0"
if command -v man >/dev/null; then
  check "man -l renders it without a warning" sh -c "MANWIDTH=100 LC_ALL=C.UTF-8 man --warnings -l '$man8' >'$prefix/man.txt' 2>'$prefix/man.err' && test ! -s '$prefix/man.err'"
else
  groff -man -Tutf8 -P-cbou "$man8" >"$prefix/man.txt" 2>/dev/null
fi
check "the man page has the sections" sh -c "for s in NAME SYNOPSIS DESCRIPTION COMMANDS 'EXIT STATUS'; do grep -q \"^\$s\" '$prefix/man.txt' || exit 1; done"
# Every option of every command, under that command's heading (man renders '\-' as '-').
for cmd in layout backup bench restore info verify; do
  sed -n "/^   $cmd\$/,/^   [a-z]*\$/p" "$prefix/man.txt" >"$prefix/man.$cmd"
  for opt in $("$bin" "$cmd" --help | sed -n '/^options:/,/^$/p' | grep -oE -- '--[a-z-]+' | grep -vx -- --help); do
    check "man page, $cmd: documents $opt" grep -qE -- "(^|[ ,])$opt(=|\$| )" "$prefix/man.$cmd"
  done
  check "man page, $cmd: has an example" grep -q "asrimg $cmd " "$prefix/man.$cmd"
done

echo "install: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
