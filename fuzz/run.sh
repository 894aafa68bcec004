#!/usr/bin/env bash
# Builds the libFuzzer harnesses with clang, ASan and UBSan in build-fuzz/ (configuring it on the
# first run) and fuzzes each for FUZZ_SECONDS (60 by default), starting from a scratch copy of its
# seed corpus in fuzz/corpus-work/ so the committed corpus is never written to. Exits non-zero
# when a harness finds a crash, leak, timeout or out-of-memory; the input that caused it is left
# in fuzz/corpus-work/artifacts/. Usage: bash fuzz/run.sh [HARNESS...]   (default: all of them)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
build=${FUZZ_BUILD_DIR:-build-fuzz}
cc=${FUZZ_CC:-$(command -v clang || command -v clang-14 || true)}
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(image stream layout fat exfat ntfs ext xfs btrfs btrfs_file bootconf lvm md luks loadopt store hints s3)

if [ -z "$cc" ]; then
    echo "fuzz/run.sh: clang not found (set FUZZ_CC)" >&2
    exit 1
fi

targets=()
for h in "${harnesses[@]}"; do targets+=("fuzz_$h"); done
cmake -S . -B "$build" -DCMAKE_C_COMPILER="$cc" -DASRIMG_BUILD_FUZZERS=ON -DASRIMG_BUILD_TESTS=OFF \
      -DASRIMG_WERROR=ON >/dev/null
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" >/dev/null

work=fuzz/corpus-work
# Allocation stacks through libraries built without frame pointers need the slow unwinder, so
# that the narrow suppressions in lsan.supp can see the function that lost the memory.
export LSAN_OPTIONS="suppressions=$PWD/fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export ASAN_OPTIONS="fast_unwind_on_malloc=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
# Harnesses run side by side, one per core (FUZZ_JOBS): each is single-threaded, and one after
# the other they took a sixth of CI's time. Each one's output is kept and printed in order.
jobs=${FUZZ_JOBS:-$(nproc)}
logs=$work/logs
rm -rf "$logs" && mkdir -p "$logs" "$work/artifacts"
fuzz_one() { # HARNESS: its output in $logs/HARNESS.log, its exit status in $logs/HARNESS.rc
    local h=$1 dict=() rc
    set +e # a failing harness is recorded in its .rc, not the end of this job
    mkdir -p "$work/$h"
    cp fuzz/corpus/"$h"/* "$work/$h"/
    [ -f "fuzz/$h.dict" ] && dict=(-dict="fuzz/$h.dict")
    {
        echo "== fuzz_$h: ${seconds}s from $(ls "$work/$h" | wc -l) inputs"
        # libFuzzer reports each new coverage point on stderr; CI keeps only the summary lines.
        "$build/fuzz/fuzz_$h" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=262144 -timeout=30 \
            -print_final_stats=1 "${dict[@]}" -artifact_prefix="$work/artifacts/$h-" "$work/$h" 2>&1 |
            grep -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)'
        rc=${PIPESTATUS[0]}
    } >"$logs/$h.log"
    echo "$rc" >"$logs/$h.rc"
}
running=0
for h in "${harnesses[@]}"; do
    if [ "$running" -ge "$jobs" ]; then wait -n || true; running=$((running - 1)); fi
    fuzz_one "$h" &
    running=$((running + 1))
done
wait
failed=()
for h in "${harnesses[@]}"; do
    cat "$logs/$h.log"
    [ "$(cat "$logs/$h.rc" 2>/dev/null)" = 0 ] || failed+=("$h")
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz/run.sh: FAILED: ${failed[*]}; reproducers in $work/artifacts/ (see fuzz/README.md)" >&2
    exit 1
fi
echo "fuzz/run.sh: no crash in ${harnesses[*]}"
