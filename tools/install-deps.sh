#!/bin/sh
# install-deps: the Debian 12 packages ddpmc builds, tests and runs with
# (libclang-rt-19-dev holds clang-19's libFuzzer and sanitizer runtimes, for
# tools/fuzz.sh; Open MPI is optional: without it CMake builds executables
# that train as one process). Run as root; does nothing when all are present.
set -eu
PACKAGES="build-essential cmake pkgconf llvm-19-dev clang-19 libclang-rt-19-dev lld-19
liblua5.4-dev lua5.4 libcmocka-dev pocl-opencl-icd ocl-icd-opencl-dev opencl-headers clinfo
libstb-dev zlib1g-dev dataset-fashion-mnist libopenmpi-dev openmpi-bin"
missing=""
for p in $PACKAGES; do
	dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
