#!/bin/sh
# test: install dependencies, build with warnings as errors, run every test.
set -eu
cd "$(dirname "$0")/.."
sh tools/install-deps.sh
sh tools/build.sh -DDDPMC_WERROR=ON
cd build && ctest --output-on-failure -j "$(nproc)"
