#!/usr/bin/env bash
# ctest s3_env: the localhost S3 endpoint (swift_env.sh: Swift + s3api) answers the requests the
# chunk store will make, signed the way asrimg signs them (libcurl's SigV4, CURLOPT_AWS_SIGV4), and
# stop leaves no process behind. Records Swift s3api's behaviour on what the store depends on
# (payload hash, conditional PUT, ListObjectsV2). `s3_env_test.sh --bench` also measures start time,
# small-object request rate and 64 MiB throughput (the figures in README's "S3 test endpoint").
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
env_sh="$here/swift_env.sh"
bench=${1:-}
if ! command -v swift-proxy-server >/dev/null && [ "$(id -u)" -ne 0 ]; then
  echo "s3_env: SKIP: Swift is not installed and installing it needs root (scripts/deps.sh test)"
  exit 77
fi
port=${S3_ENV_PORT:-$((18080 + RANDOM % 200 * 5))} # each S3 test its own range: ctest runs them at once

work=$(mktemp -d /tmp/asrimg-s3env.XXXXXX)
dir="$work/swift"
cleanup() { "$env_sh" stop "$dir" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "s3_env: FAIL: $*" >&2; exit 1; }

# seconds between two `date +%s.%N` stamps, and a rate; awk: bc is not installed everywhere
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.1f", n / (b - a) }'; }

t0=$(date +%s.%N)
eval "$("$env_sh" start "$dir" "$port")"
t1=$(date +%s.%N)
echo "start: $(secs "$t0" "$t1") s"
[ "$AWS_ENDPOINT_URL" = "http://127.0.0.1:$port" ] || fail "endpoint $AWS_ENDPOINT_URL"
# idempotent: a second start only prints the same lines
[ "$("$env_sh" start "$dir" "$port")" = "$(printf "export AWS_ACCESS_KEY_ID='%s'\nexport AWS_SECRET_ACCESS_KEY='%s'\nexport AWS_REGION='%s'\nexport AWS_ENDPOINT_URL='%s'" \
  "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" "$AWS_REGION" "$AWS_ENDPOINT_URL")" ] || fail "second start"

# The access key ("account:user") has a colon, which --user would split: pass it through netrc, as
# asrimg will pass CURLOPT_USERNAME and CURLOPT_PASSWORD separately.
printf 'machine 127.0.0.1 login %s password %s\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >"$work/netrc"
printf 'machine 127.0.0.1 login %s password wrong-secret\n' "$AWS_ACCESS_KEY_ID" >"$work/netrc.bad"
sig=(--aws-sigv4 "aws:amz:$AWS_REGION:s3")
unsigned=(-H "x-amz-content-sha256: UNSIGNED-PAYLOAD")
ep=$AWS_ENDPOINT_URL
bucket=asrimg-test

# s3 EXPECTED-STATUS CURL-ARGS...: one signed request; the body goes to $work/body
s3() {
  local want=$1 got
  shift
  got=$(curl -s -o "$work/body" -w '%{http_code}' --netrc-file "$work/netrc" "${sig[@]}" "$@") || fail "curl $* exited $?"
  [ "$got" = "$want" ] || { cat "$work/body" >&2; echo >&2; fail "$* answered $got, expected $want"; }
}
sha() { sha256sum <"$1" | cut -d' ' -f1; }

s3 200 "${unsigned[@]}" -X PUT "$ep/$bucket"

# PUT with a body: libcurl 7.88 sends no x-amz-content-sha256 itself and s3api requires it (400
# without); the real hash and UNSIGNED-PAYLOAD both pass, a wrong hash is refused (s3api checks it).
head -c 3000 /dev/urandom >"$work/small"
s3 200 -H "x-amz-content-sha256: $(sha "$work/small")" -T "$work/small" "$ep/$bucket/dir/a"
s3 200 "${unsigned[@]}" -T "$work/small" "$ep/$bucket/dir/b"
s3 400 -T "$work/small" "$ep/$bucket/dir/nohash"
grep -q 'x-amz-content-sha256' "$work/body" || fail "missing-header refusal does not name x-amz-content-sha256"
s3 400 -H "x-amz-content-sha256: $(printf '0%.0s' {1..64})" -T "$work/small" "$ep/$bucket/dir/badhash"
# (s3api answers BadDigest, "The Content-MD5 you specified did not match", where AWS says
# XAmzContentSHA256Mismatch)
grep -q 'BadDigest' "$work/body" || fail "wrong payload hash not refused as BadDigest"
s3 200 "${unsigned[@]}" -T "$work/small" "$ep/$bucket/other"

s3 200 "${unsigned[@]}" "$ep/$bucket/dir/a"
cmp -s "$work/body" "$work/small" || fail "GET dir/a differs from what was PUT"
len=$(curl -s -I --netrc-file "$work/netrc" "${sig[@]}" "${unsigned[@]}" "$ep/$bucket/dir/a" |
  tr -d '\r' | awk 'tolower($1)=="content-length:"{print $2}')
[ "$len" = 3000 ] || fail "HEAD dir/a: Content-Length '$len'"
s3 404 -I "${unsigned[@]}" "$ep/$bucket/dir/absent"

# Query strings: libcurl 7.88 signs the query exactly as written while s3api canonicalizes it
# (parameters sorted by name, values percent-encoded with only A-Za-z0-9-._~ left bare), so the
# caller must write it in canonical form: "prefix=dir/" is refused with 403, "prefix=dir%2F" passes.
s3 403 "${unsigned[@]}" "$ep/$bucket?list-type=2&prefix=dir/"
s3 403 "${unsigned[@]}" "$ep/$bucket?prefix=dir%2F&list-type=2"
# ListObjectsV2 with a prefix: only dir/a and dir/b, in key order, KeyCount 2
s3 200 "${unsigned[@]}" "$ep/$bucket?list-type=2&prefix=dir%2F"
keys=$(grep -o '<Key>[^<]*</Key>' "$work/body" | sed 's/<[^>]*>//g' | tr '\n' ' ')
[ "$keys" = "dir/a dir/b " ] || fail "list prefix dir/: '$keys'"
grep -q '<KeyCount>2</KeyCount>' "$work/body" || fail "list: KeyCount"
# paging: max-keys 1 gives a continuation token that yields the next key
s3 200 "${unsigned[@]}" "$ep/$bucket?list-type=2&max-keys=1&prefix=dir%2F"
grep -q '<IsTruncated>true</IsTruncated>' "$work/body" || fail "list max-keys=1 not truncated"
tok=$(grep -o '<NextContinuationToken>[^<]*' "$work/body" | sed 's/.*>//')
[ -n "$tok" ] || fail "no NextContinuationToken"
# (the token is base64: encode its =, + and /; curl's own --get --data-urlencode query was refused
# with 403 by the same rule, so asrimg builds the canonical query itself)
tok=$(printf '%s' "$tok" | sed 's/%/%25/g; s/=/%3D/g; s/+/%2B/g; s|/|%2F|g')
s3 200 "${unsigned[@]}" "$ep/$bucket?continuation-token=$tok&list-type=2&prefix=dir%2F"
keys=$(grep -o '<Key>[^<]*</Key>' "$work/body" | sed 's/<[^>]*>//g' | tr '\n' ' ')
[ "$keys" = "dir/b " ] || fail "list page 2: '$keys'"

# multi-MiB object, real payload hash, and a ranged GET inside it
head -c $((6 * 1024 * 1024 + 123)) /dev/urandom >"$work/big"
s3 200 -H "x-amz-content-sha256: $(sha "$work/big")" -T "$work/big" "$ep/$bucket/big"
s3 200 "${unsigned[@]}" "$ep/$bucket/big"
cmp -s "$work/body" "$work/big" || fail "GET big differs"
s3 206 "${unsigned[@]}" -H "Range: bytes=4194000-4260000" "$ep/$bucket/big"
dd if="$work/big" of="$work/range" bs=64K iflag=skip_bytes,count_bytes skip=4194000 count=66001 status=none
cmp -s "$work/range" "$work/body" || fail "ranged GET differs"

# conditional PUT (create only if absent): Swift 2.30's s3api refuses If-None-Match on PUT with
# 501 NotImplemented, on an absent key too; the chunk store cannot rely on it against Swift.
s3 501 "${unsigned[@]}" -H "If-None-Match: *" -T "$work/small" "$ep/$bucket/dir/new"
s3 501 "${unsigned[@]}" -H "If-None-Match: *" -T "$work/small" "$ep/$bucket/dir/a"
s3 404 "${unsigned[@]}" "$ep/$bucket/dir/new"

# DELETE, then gone (and a second DELETE still 204, as S3 does)
s3 204 "${unsigned[@]}" -X DELETE "$ep/$bucket/dir/b"
s3 404 "${unsigned[@]}" "$ep/$bucket/dir/b"
s3 204 "${unsigned[@]}" -X DELETE "$ep/$bucket/dir/b"

# a wrong secret is refused
got=$(curl -s -o "$work/body" -w '%{http_code}' --netrc-file "$work/netrc.bad" "${sig[@]}" "${unsigned[@]}" "$ep/$bucket/dir/a")
[ "$got" = 403 ] || fail "wrong secret answered $got"
grep -q SignatureDoesNotMatch "$work/body" || fail "wrong secret: no SignatureDoesNotMatch"

if [ "$bench" = --bench ]; then
  # 200 small objects (4 KiB), 8 requests in flight from one curl (--parallel: no process start
  # per request), then GET them back
  head -c 4096 /dev/urandom >"$work/4k"
  one() { curl -sf --netrc-file "$work/netrc" "${sig[@]}" "${unsigned[@]}" "$@"; }
  for op in PUT GET; do
    for i in $(seq 1 200); do
      [ $op = PUT ] && printf 'upload-file = "%s"\n' "$work/4k"
      printf 'url = "%s/%s/small/%s"\noutput = "/dev/null"\n' "$ep" "$bucket" "$i"
    done >"$work/urls"
    a=$(date +%s.%N)
    one --no-progress-meter --parallel --parallel-max 8 -K "$work/urls" || fail "small $op"
    b=$(date +%s.%N)
    echo "small $op: 200 x 4 KiB, 8 in flight: $(rate 200 "$a" "$b") req/s"
  done
  a=$(date +%s.%N)
  for i in $(seq 1 20); do one -o /dev/null "$ep/$bucket/small/$i"; done
  b=$(date +%s.%N)
  echo "small GET one at a time: $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.1f", (b - a) * 50 }') ms each (curl start included)"
  head -c $((64 * 1024 * 1024)) /dev/urandom >"$work/64m"
  a=$(date +%s.%N)
  one -o /dev/null -T "$work/64m" "$ep/$bucket/64m"
  b=$(date +%s.%N)
  one -o "$work/64m.back" "$ep/$bucket/64m"
  c=$(date +%s.%N)
  cmp -s "$work/64m" "$work/64m.back" || fail "64 MiB GET differs"
  echo "64 MiB PUT: $(rate 64 "$a" "$b") MiB/s, GET: $(rate 64 "$b" "$c") MiB/s"
fi

# The proxy caches account and container info (and tempauth its tokens) in the memcached that
# start runs beside it: after the requests above it holds entries (without it, every object
# request would HEAD the account and container servers again).
mc_items() {
  local line n=""
  exec 3<>"/dev/tcp/127.0.0.1/$((port + 4))" || return 1
  printf 'stats\r\nquit\r\n' >&3
  while IFS= read -r -t 5 line <&3; do
    case $line in "STAT curr_items "*) n=${line#STAT curr_items }; n=${n%$'\r'} ;; END*) break ;; esac
  done
  exec 3<&-
  echo "${n:-0}"
}
items=$(mc_items) || fail "no memcached on port $((port + 4))"
[ "$items" -gt 0 ] || fail "memcached holds no entries: the proxy does not use it"
mc_pid=$(cat "$dir/run/memcached.pid")

t0=$(date +%s.%N)
"$env_sh" stop "$dir"
t1=$(date +%s.%N)
echo "stop: $(secs "$t0" "$t1") s"
[ ! -e "$dir" ] || fail "stop left $dir"
if pgrep -f "$dir/etc" >/dev/null; then
  pgrep -af "$dir/etc" >&2
  fail "processes left after stop"
fi
! kill -0 "$mc_pid" 2>/dev/null || fail "memcached left after stop"
"$env_sh" stop "$dir" || fail "second stop"
echo "s3_env: ok"
