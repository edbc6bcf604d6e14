#!/bin/sh
# fuzz: build the libFuzzer harnesses of tests/fuzz (clang-19, ASan, UBSan;
# the runtime instrumented) into build-fuzz/, then run each for SECONDS
# (default 20) from its committed seed corpus tests/fuzz/corpus/NAME.
# Exits non-zero when any harness crashes, leaks, hangs (one input over
# 10 s), trips a sanitizer or breaks its reader's contract; its log is
# build-fuzz/logs/NAME.log and the input that did it
# build-fuzz/artifacts/NAME-crash-* (rerun: build-fuzz/tests/fuzz/fuzz_NAME FILE).
# Inputs found along the way go to build-fuzz/corpus/NAME, never into the
# committed seeds.
# With FUZZ_RUNS=N set, each harness instead runs exactly N inputs from
# the fixed seed 1 and the committed seeds alone (what it finds goes to a
# scratch build-fuzz/corpus-runs/NAME, emptied first): nearly the same
# inputs on every machine (libFuzzer's choices still vary a little with
# timing), which is what CI wants; without it, each run explores anew from
# a random seed.
# Usage: [FUZZ_RUNS=N] tools/fuzz.sh [SECONDS] [NAME...]   (default: every harness)
set -eu
cd "$(dirname "$0")/.."
secs=${1:-20}
[ $# -gt 0 ] && shift
CC=clang-19 CXX=clang++-19 cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DDDPMC_WERROR=ON -DDDPMC_FUZZ=ON >/dev/null
cmake --build build-fuzz -j "$(nproc)"
names=${*:-$(ls tests/fuzz/fuzz_*.c | sed 's|.*/fuzz_||; s|\.c$||')}
mkdir -p build-fuzz/logs build-fuzz/artifacts
if [ -n "${FUZZ_RUNS:-}" ]; then
	budget="-runs=$FUZZ_RUNS -seed=1" span="from seed 1" found=build-fuzz/corpus-runs
	rm -rf "$found"
else
	budget="-max_total_time=$secs" span="in ${secs} s" found=build-fuzz/corpus
fi
failed=""
for name in $names; do
	mkdir -p "$found/$name"
	log=build-fuzz/logs/$name.log
	if build-fuzz/tests/fuzz/fuzz_"$name" $budget -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="build-fuzz/artifacts/$name-" \
		"$found/$name" "tests/fuzz/corpus/$name" >"$log" 2>&1; then
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
		cov=$(grep -o 'DONE *cov: [0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
		echo "fuzz $name: ok, $runs runs $span, $cov edges covered"
	else
		echo "fuzz $name: FAILED (log $log):"
		tail -n 40 "$log"
		failed="$failed $name"
	fi
done
[ -z "$failed" ] || { echo "fuzz: failed:$failed"; exit 1; }
