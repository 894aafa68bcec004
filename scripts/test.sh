#!/usr/bin/env bash
# Builds asrimg and runs every test: the Criterion suite with -Werror, the same suite under
# ASan+UBSan, the fuzz corpus replay, and each libFuzzer harness for a bounded time.
# Usage: scripts/test.sh            (FUZZ_SECONDS=20 by default: sixteen harnesses, one per core at
#                                   a time, and the whole run must stay under 40 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh all
jobs=$(nproc)

echo "== build and test (gcc, -Werror)"
cmake -S . -B build -DASRIMG_WERROR=ON -DASRIMG_BUILD_TESTS=ON -DASRIMG_BUILD_FUZZERS=ON >/dev/null
cmake --build build -j"$jobs" >/dev/null
(cd build && ctest --output-on-failure -j"$jobs")

echo "== build and test (gcc, ASan+UBSan)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DASRIMG_WERROR=ON -DASRIMG_SANITIZE=ON \
      -DASRIMG_BUILD_TESTS=ON -DASRIMG_BUILD_FUZZERS=ON >/dev/null
cmake --build build-asan -j"$jobs" >/dev/null
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
   ctest --output-on-failure -j"$jobs")

echo "== fuzz (clang, libFuzzer, ${FUZZ_SECONDS:-20}s per harness)"
FUZZ_SECONDS=${FUZZ_SECONDS:-20} bash fuzz/run.sh
