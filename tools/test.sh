#!/bin/sh
# test: install dependencies, build with warnings as errors, run every test;
# then rebuild with AddressSanitizer and UBSan and run every test but the
# slow learning run again (bad inputs must not crash under either).
set -eu
cd "$(dirname "$0")/.."
sh tools/install-deps.sh
sh tools/build.sh -DDDPMC_WERROR=ON
(cd build && ctest --output-on-failure -j "$(nproc)")
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDDPMC_WERROR=ON -DDDPMC_SANITIZE=ON >/dev/null
cmake --build build-asan -j "$(nproc)"
cd build-asan
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
LSAN_OPTIONS="suppressions=$(pwd)/../tools/lsan.supp" \
	ctest --output-on-failure -j "$(nproc)" -E learning
