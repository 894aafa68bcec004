#!/usr/bin/env bash
# ctest s3_backend: the chunk store's S3 backend (store/backend_s3.c) against a real S3 endpoint,
# OpenStack Swift with s3api started on localhost by swift_env.sh: s3_backend_check does every op,
# errors (missing object, wrong secret, refused endpoint with its retries), 8 threads at once, and
# measures request rates and throughput. Skips (77) only when Swift is not installed and cannot be.
# Usage: s3_backend_test.sh S3_BACKEND_CHECK
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
check=${1:?usage: s3_backend_test.sh S3_BACKEND_CHECK}
if ! command -v swift-proxy-server >/dev/null && [ "$(id -u)" -ne 0 ]; then
  echo "s3_backend: SKIP: Swift is not installed and installing it needs root (scripts/deps.sh test)"
  exit 77
fi
port=${S3_ENV_PORT:-$((20080 + RANDOM % 200 * 5))} # each S3 test its own range: ctest runs them at once
# Swift's objects on tmpfs when it keeps user xattrs (Linux 6.6+; Swift stores metadata in them):
# removing them from a disk mounted with discard took 9 s of the test's time
tmp=/tmp
if [ -w /dev/shm ] && python3 -c 'import os, sys; f = sys.argv[1]; open(f, "w").close()
try: os.setxattr(f, "user.asrimg", b"1")
finally: os.unlink(f)' "/dev/shm/asrimg-xattr.$$" 2>/dev/null; then
  tmp=/dev/shm
fi
work=$(mktemp -d "$tmp/asrimg-s3backend.XXXXXX")
cleanup() { "$here/swift_env.sh" stop "$work/swift" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
t0=$(date +%s.%N)
eval "$("$here/swift_env.sh" start "$work/swift" "$port")"
t1=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" 'BEGIN { printf "swift start: %.1f s\n", b - a }'
# the bucket is made by the backend itself (store_backend_s3_make_bucket)
echo "swift directory: $work"
"$check" "s3://asrimg-backend/stores/one" "$work"
# A real outage: without its object server the proxy answers 503. Retried, then named; and a
# put_file that starts during the outage passes once the server is back.
"$here/swift_env.sh" down "$work/swift" object
"$check" "s3://asrimg-backend/stores/one" "$work" --unavailable
"$check" "s3://asrimg-backend/stores/one" "$work" --recovers &
checker=$!
sleep 1.5
"$here/swift_env.sh" up "$work/swift" object
wait "$checker"
t2=$(date +%s.%N)
"$here/swift_env.sh" stop "$work/swift"
t3=$(date +%s.%N)
awk -v a="$t2" -v b="$t3" 'BEGIN { printf "swift stop: %.1f s\n", b - a }'
echo "s3_backend: ok"
