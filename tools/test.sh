#!/bin/sh
# test: install dependencies, build with warnings as errors, run every test;
# then rebuild with AddressSanitizer and UBSan and run again the tests that
# feed the programs bad or unusual input (files, flags, scripts, the runtime)
# and the lowering of 2000 scripts made at random, leaving out the long
# numeric ones to keep CI within its budget; last, run
# every reader's libFuzzer harness on 60,000 inputs from its seeds
# (tools/fuzz.sh with a fixed seed: CI runs nearly what was run here, and a
# fuzzing find fails a fuzzing session, not an unrelated commit).
set -eu
cd "$(dirname "$0")/.."
sh tools/install-deps.sh
sh tools/build.sh -DDDPMC_WERROR=ON
(cd build && ctest --output-on-failure -j "$(nproc)")
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDDPMC_WERROR=ON -DDDPMC_SANITIZE=ON >/dev/null
cmake --build build-asan -j "$(nproc)"
(cd build-asan &&
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
LSAN_OPTIONS="suppressions=$(pwd)/../tools/lsan.supp" DDPMC_RANDOM_GRAPHS=2000 \
	ctest --output-on-failure -j "$(nproc)" \
	-R '^(data|images|safetensors|runtime_exec|cl_runtime|export|import|cli_resume|sandbox|shape_errors|graph|ops|tensor|philox|loss_scale|samplers|fid|classifier|random_graphs)$')
FUZZ_RUNS=60000 sh tools/fuzz.sh
