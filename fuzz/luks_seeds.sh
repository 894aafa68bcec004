#!/usr/bin/env bash
# Writes the seeds of fuzz/corpus/luks/ with cryptsetup itself (no device-mapper, no root): the
# first 64 KiB of LUKS containers formatted on plain files (the headers, LUKS2's two copies with
# their JSON, and the start of keyslot 0's material):
#   luks2-xts         LUKS2, aes-xts-plain64, 512-byte sectors
#   luks2-4096-label  LUKS2 with 4096-byte sectors, a label and two keyslots
#   luks2-cbc-essiv   LUKS2, aes-cbc-essiv:sha256
#   luks1-xts         LUKS1, aes-xts-plain64
#   luks1-cbc-essiv   LUKS1, aes-cbc-essiv:sha256
# Usage: bash fuzz/luks_seeds.sh fuzz/corpus/luks
set -euo pipefail
out=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'fuzz' >"$tmp/pw"
fast=(--pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file "$tmp/pw" -q)

seed() { # NAME OPTIONS...
    local name=$1
    shift
    truncate -s 32M "$tmp/$name"
    cryptsetup luksFormat "${fast[@]}" "$@" "$tmp/$name"
    head -c 65536 "$tmp/$name" >"$out/$name"
}
seed luks2-xts --type luks2
seed luks2-4096-label --type luks2 --sector-size 4096 --label fuzzseed
printf 'fuzz2' >"$tmp/pw2"
cryptsetup luksAddKey "${fast[@]}" --new-keyfile "$tmp/pw2" "$tmp/luks2-4096-label"
head -c 65536 "$tmp/luks2-4096-label" >"$out/luks2-4096-label"
seed luks2-cbc-essiv --type luks2 --cipher aes-cbc-essiv:sha256 --key-size 256
seed luks1-xts --type luks1
seed luks1-cbc-essiv --type luks1 --cipher aes-cbc-essiv:sha256 --key-size 256
