#!/usr/bin/env bash
# The folders' layering, checked on the built archives rather than on include lines: every symbol a
# library's objects take from another library of the tree must come from one the library may use
# (its line in the top CMakeLists.txt). A call up the stack (disk/ into fs/, restore/ into backup/)
# fails here by name, even where the final link would have resolved it.
# Usage: layers_test.sh NAME:ARCHIVE:ALLOWED,ALLOWED... ...
set -euo pipefail
declare -A archive allowed owner
for spec in "$@"; do
  IFS=: read -r name file deps <<<"$spec"
  archive[$name]=$file
  allowed[$name]=",$name,$deps,"
done
for name in "${!archive[@]}"; do
  while read -r sym; do owner[$sym]=$name; done < <(nm -g --defined-only "${archive[$name]}" 2>/dev/null | awk 'NF == 3 { print $3 }')
done
bad=0
for name in "${!archive[@]}"; do
  while read -r sym; do
    from=${owner[$sym]:-}
    [ -n "$from" ] || continue # the C library or a system library
    case ${allowed[$name]} in
      *",$from,"*) ;;
      *) echo "layers: $name uses $sym from $from, which it may not use" >&2; bad=1 ;;
    esac
  done < <(nm -g --undefined-only "${archive[$name]}" | awk '$1 == "U" { print $2 }' | sort -u)
done
[ $bad = 0 ] && echo "layers: ${#archive[@]} libraries, every use goes down the stack"
exit $bad
