#!/usr/bin/env bash
# Packs what bench/gpu_check.sh needs on a machine with an NVIDIA GPU into
# the ignored folder .gpu/ of the repository root (it travels as a "carry"
# path of the device tool; everything else gpu_check.sh uses is tracked):
#
#   .gpu/small        models/unet_small.lua, batch 32, fp32   (correctness)
#   .gpu/small_bf16   models/unet.lua in unet_small's configuration
#                     (width 32, 1 layer, 16 groups, lr 1e-3, warmup 200,
#                     ema 0.999), batch 32, precision=bf16     (correctness)
#   .gpu/unet         models/unet.lua, batch 128, fp32         (throughput)
#   .gpu/cifar        models/ddpm_cifar10.lua, batch 128, fp32
#   .gpu/unet_bf16    models/unet.lua, batch 128, precision=bf16
#   .gpu/cifar_bf16   models/ddpm_cifar10.lua, batch 128, precision=bf16
#   (the bf16 target's figures; GPU_PACK_BF16=0 leaves these two out for
#   a shorter check: their OpenCL builds run beside the others')
#   .gpu/unet_w4      models/unet.lua, batch 128, fp32, --winograd 4x4
#                     (the GPU's lowering is direct unless told: this one
#                     runs the 3x3 convolutions by Winograd F(4x4, 3x3))
#   .gpu/lib/         the shared libraries they need besides glibc
#                     (libOpenCL.so.1 = Debian's ocl-icd loader, libz, ...)
#   .gpu/wheels/      diffusers' wheel (pure Python, installed there with
#                     --no-deps; torch_train.py falls back to its own copy
#                     of the network when diffusers does not import)
#   .gpu/manifest.txt what was packed, with which compiler and target
# The executables are built in .gpu-build/ (ignored, not carried) and copied
# into .gpu/, gzipped (NAME.gz; gpu_check.sh unpacks them) when they would
# make .gpu/ larger than 40 MiB or GPU_PACK_GZIP=1.
#
#   bench/gpu_pack.sh [--target all|cpu] [--cpu NAME] [--only NAME,...] [--force | --reuse]
#
# --target (default all; env GPU_PACK_TARGET): `ddpmc compile --target`;
# `all` puts the CPU and the OpenCL code in each executable. `cpu` packs
# CPU-only executables: useful to test the scripts, useless on the GPU.
# --cpu (default x86-64-v3): the LLVM CPU of the CPU code (the GPU machine's
# host CPU is not this one). An executable is recompiled only when the
# compiler, the runtime libraries, lua/, the model or the options changed
# (--force: always; --reuse: never, when the executable exists).
# Environment: DDPMC (default build/compiler/ddpmc), PYTHON (for pip
# download, default /opt/ddpmc-venv/bin/python), NO_WHEEL=1 (skip the wheel).
# At the end it prints the bundle's size, the newest GLIBC symbol version the
# executables need, and the device tool call that runs the check.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1

TARGET=${GPU_PACK_TARGET:-all}
CPU=x86-64-v3
ONLY=
FORCE=0
while [ $# -gt 0 ]; do
	case "$1" in
	--target) TARGET=$2; shift 2 ;;
	--cpu) CPU=$2; shift 2 ;;
	--only) ONLY=$2; shift 2 ;;
	--force) FORCE=1; shift ;;
	--reuse) FORCE=-1; shift ;;
	-h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "gpu_pack.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
	esac
done

DDPMC=${DDPMC:-build/compiler/ddpmc}
PYTHON=${PYTHON:-/opt/ddpmc-venv/bin/python}
B=.gpu
X=.gpu-build
DIFFUSERS=diffusers==0.42.1     # the version lua/ddpm/unet.lua mirrors

note() { echo "[gpu_pack] $*" >&2; }
die() { note "$*"; exit 1; }

[ -x "$DDPMC" ] || die "no compiler at $DDPMC (build the project first)"
rm -rf "$B"
mkdir -p "$B/lib" "$B/wheels" "$X/wheels" || die "cannot create $B and $X"
# .gitignore ignores both (the device tool carries ignored paths only by
# name); nothing here writes to the git folder, which worktrees share.
for d in "$B" "$X"; do
	git check-ignore -q "$d" 2>/dev/null || note "warning: git does not ignore $d here"
done

# name | model | --set options (space-separated NAME=VALUE) | other compile flags
SMALL_AS_UNET="width=32 layers=1 groups=16 batch=32 lr=1e-3 warmup=200 ema=0.999"
EXES="small|models/unet_small.lua|batch=32|
small_bf16|models/unet.lua|$SMALL_AS_UNET precision=bf16|
unet|models/unet.lua|batch=128|
cifar|models/ddpm_cifar10.lua|batch=128|
unet_w4|models/unet.lua|batch=128|--winograd 4x4"
if [ "${GPU_PACK_BF16:-1}" = 1 ]; then
	EXES="$EXES
unet_bf16|models/unet.lua|batch=128 precision=bf16|
cifar_bf16|models/ddpm_cifar10.lua|batch=128 precision=bf16|"
fi

# What an executable depends on: the compiler, the Lua library, the model,
# the options and the target.
stamp_of() {
	{
		echo "$TARGET $CPU $2 $3 $4"
		sha256sum "$DDPMC" "$2"
		find lua -type f -name '*.lua' -print0 | sort -z | xargs -0 sha256sum
		sha256sum build/runtime/*.a build/runtime/main/*.a 2>/dev/null
	} | sha256sum | cut -d' ' -f1
}

T0=$(date +%s)
FAILED=
BUILT=
while IFS='|' read -r name model sets flags; do
	if [ -n "$ONLY" ] && ! echo ",$ONLY," | grep -q ",$name,"; then
		continue
	fi
	args=()
	for s in $sets; do args+=(--set "$s"); done
	for f in $flags; do args+=("$f"); done
	stamp=$(stamp_of "$name" "$model" "$sets" "$flags")
	if [ "$FORCE" != 1 ] && [ -x "$X/$name" ] &&
		{ [ "$FORCE" = -1 ] || [ "$(cat "$X/$name.stamp" 2>/dev/null)" = "$stamp" ]; }; then
		note "$name: $([ "$FORCE" = -1 ] && echo "reused (--reuse)" || echo "up to date")"
		BUILT="$BUILT $name"
		continue
	fi
	rm -f "$X/$name" "$X/$name.stamp"
	note "$name: ddpmc compile $model ${args[*]} --target $TARGET --cpu $CPU"
	t=$(date +%s)
	if "$DDPMC" compile "$model" "${args[@]}" --target "$TARGET" --cpu "$CPU" -o "$X/$name" \
		> "$X/$name.compile.log" 2>&1; then
		strip --strip-debug "$X/$name" 2>/dev/null
		echo "$stamp" > "$X/$name.stamp"
		note "$name: $(( $(date +%s) - t )) s, $(du -h "$X/$name" | cut -f1)"
		BUILT="$BUILT $name"
	else
		note "$name: compile FAILED ($(tail -n 2 "$X/$name.compile.log" | tr '\n' ' '))"
		if grep -q "not available" "$X/$name.compile.log"; then
			note "(--target $TARGET is not in this compiler yet; --target cpu packs CPU-only executables)"
		fi
		FAILED="$FAILED $name"
	fi
done <<< "$EXES"

# Shared libraries besides glibc's, from ldd; libOpenCL.so.1 (the ICD
# loader) always, since the GPU image may have NVIDIA's driver but no loader.
GLIBC_LIBS='^(linux-vdso|libc|libm|libdl|libpthread|librt|ld-linux-x86-64|libresolv|libutil|libmvec)\.so'
rm -f "$B"/lib/*
for name in $BUILT; do
	ldd "$X/$name" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }'
done | sort -u | while read -r soname path; do
	echo "$soname" | grep -Eq "$GLIBC_LIBS" && continue
	cp -L "$path" "$B/lib/$soname"
done
for cand in /usr/lib/x86_64-linux-gnu/libOpenCL.so.1 /lib/x86_64-linux-gnu/libOpenCL.so.1; do
	if [ ! -e "$B/lib/libOpenCL.so.1" ] && [ -e "$cand" ]; then
		cp -L "$cand" "$B/lib/libOpenCL.so.1"
	fi
done
[ -e "$B/lib/libOpenCL.so.1" ] || note "warning: no libOpenCL.so.1 here (Debian: ocl-icd-libopencl1) to carry"

# diffusers' wheel (pure Python), downloaded once into $X/wheels.
if [ "${NO_WHEEL:-0}" != 1 ]; then
	if ! ls "$X"/wheels/diffusers-*.whl > /dev/null 2>&1; then
		"$PYTHON" -m pip download -q --no-deps --only-binary=:all: -d "$X/wheels" "$DIFFUSERS" >&2 ||
			note "warning: pip download $DIFFUSERS failed: torch_train.py will use its builtin network there"
	fi
	cp "$X"/wheels/diffusers-*.whl "$B/wheels/" 2>/dev/null
fi

# The executables: as they are, or gzipped when .gpu/ would pass 40 MiB.
RAW=$( { for name in $BUILT; do stat -c %s "$X/$name"; done; du -sb "$B" | cut -f1; } |
	awk '{ s += $1 } END { print s + 0 }')
GZ=${GPU_PACK_GZIP:-auto}
if [ "$GZ" = auto ]; then
	GZ=0
	[ "$RAW" -gt $(( 40 * 1048576 )) ] && GZ=1
fi
for name in $BUILT; do
	if [ "$GZ" = 1 ]; then
		gzip -6 -c "$X/$name" > "$B/$name.gz"
	else
		cp -p "$X/$name" "$B/$name"
	fi
done
[ "$GZ" = 1 ] && note "executables gzipped ($(( RAW / 1048576 )) MiB raw): gpu_check.sh unpacks them"

# The newest GLIBC version any packed binary needs.
GLIBC_MAX=$( { for f in $BUILT; do objdump -T "$X/$f"; done; objdump -T "$B"/lib/*.so*; } 2>/dev/null |
	grep -o 'GLIBC_[0-9][0-9.]*' | sort -uV | tail -n 1 )
SIZE=$(du -sb "$B" | cut -f1)
{
	echo "packed $(date -u +%FT%TZ) by bench/gpu_pack.sh"
	echo "commit $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo ' (+ uncommitted changes)')"
	echo "compiler $DDPMC, --target $TARGET --cpu $CPU"
	echo "target $TARGET"
	echo "glibc_max $GLIBC_MAX"
	while IFS='|' read -r name model sets flags; do
		echo " $BUILT " | grep -q " $name " && echo "exe $name $model $sets${flags:+ $flags}"
	done <<< "$EXES"
	for f in "$B"/lib/* "$B"/wheels/* "$B"/*.gz; do [ -e "$f" ] && echo "file $f $(stat -c %s "$f")"; done
} > "$B/manifest.txt"

MIB=$(awk -v s="$SIZE" 'BEGIN { printf "%.1f", s / 1048576 }')
TREE=$(git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -n 1 | cut -f1)
TREE_MIB=$(awk -v s="$TREE" 'BEGIN { printf "%.1f", s / 1048576 }')
note "done in $(( $(date +%s) - T0 )) s: built [${BUILT# }]${FAILED:+, FAILED [${FAILED# }]}"
note "bundle $B: $MIB MiB; working tree without it: $TREE_MIB MiB (the device tool takes 64 MiB in all)"
note "newest GLIBC symbol version needed: ${GLIBC_MAX:-?} (this machine: $(ldd --version | head -n 1 | awk '{ print $NF }'))"
if [ "$TARGET" != all ]; then
	note "WARNING: --target $TARGET: these executables have no OpenCL code; the GPU check would measure nothing of ddpmc on the GPU"
fi
cat <<EOF

Device tool call (run; one call, about 9-10 minutes on the machine):
  command:   PYTHONUNBUFFERED=1 bash bench/gpu_check.sh
  carry:     [".gpu"]
  timeout_s: 600
What comes back in \$OUT: results.txt, results.json, check.log, details.tar.gz.
EOF
[ -z "$FAILED" ]
