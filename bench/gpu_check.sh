#!/usr/bin/env bash
# The GPU check of ddpmc's OpenCL path, run on a machine with an NVIDIA GPU
# from the repository root, with the bundle bench/gpu_pack.sh made in .gpu/
# (carried there; executables as NAME or NAME.gz). Nothing here needs the
# network. In order, each phase with its own time limit, going on when one
# fails, all inside one time budget:
#
#  1. environment: nvidia-smi, python/torch/numpy/diffusers versions, the
#     NVIDIA OpenCL driver (libnvidia-opencl.so.1) and ICD loader; when the
#     driver is there, OCL_ICD_VENDORS points at a folder with a one-line
#     nvidia.icd naming it, and .gpu/lib (Debian's libOpenCL.so.1, ...) goes
#     on LD_LIBRARY_PATH when the executables miss a library; `train --device list`.
#  2. synthetic data sets, made here with numpy in the formats the
#     executables read: an IDX file of 4096 28x28 images, a CIFAR-10 binary
#     batch of 4096 32x32x3 images (smooth random blobs).
#  2b. every executable's OpenCL programs built and cached at once, in the
#     background (beside phase 3; waited for before phase 4).
#  3. correctness, fp32: .gpu/small trains 3 steps from the same seed on the
#     CPU and on OpenCL; bench/compare_ckpt.py compares the checkpoints and
#     the losses; then both devices sample one DDIM grid (10 steps) from the
#     CPU's checkpoint and the images are compared.
#  4. PyTorch CUDA eager (bench/torch_train.py --sweep, one process): unet and
#     ddpm_cifar10 at batch 128 in fp32 (PyTorch's default: TF32 convolutions),
#     strict fp32 (TF32 off), AMP bf16 and AMP fp16 + GradScaler; 3 warmup +
#     10 timed steps, synchronized.
#  5. throughput of ddpmc on OpenCL: .gpu/unet and .gpu/cifar (batch 128,
#     fp32) train --steps 16 --log-every 4 (the steps between two lines are
#     queued, no step waiting for the one before), stopped by SIGINT (ddpmc
#     ends after the step in progress) at their time limit (75 s, 90 s, the
#     OpenCL build included); images/s is the median of metrics.jsonl's
#     lines after the first (each line's images_per_s over its 4 steps).
#  5a. DDPMC_PROFILE=1 .gpu/unet trains 3 steps (kernel times from OpenCL
#     events, as in 9) with the compiler's kernels, before tuning can
#     spend the budget: comparable with the last check's table.
#  6. throughput of .gpu/unet_bf16 and .gpu/cifar_bf16 on OpenCL, as in 5;
#     then of .gpu/unet_w4 (fp32, the 3x3 convolutions by Winograd
#     F(4x4, 3x3): fewer multiply-adds, more memory traffic).
#  7. tuning: .gpu/unet and .gpu/cifar tune (every variant of their
#     kernels timed on the device, the most FLOPs first, until the phase's
#     limit less 30 s: tune --seconds; the choice cached), then throughput
#     again as in 5, with the tuned kernels.
#  8. correctness, bf16: .gpu/small_bf16 as in 3.
#  9. DDPMC_PROFILE=1 .gpu/cifar, then .gpu/unet_w4, trains 3 steps
#     (kernel times from OpenCL events: the slowest kernels, time per
#     kind; tuned where 7 ran), if time is left.
# 10. results.txt and results.json: images/s of each side, ddpmc / torch;
#     results.txt also the profiles' step time and time per kind.
#
#   bash bench/gpu_check.sh
#
# Everything goes to $GPU_CHECK_WORK (default bench/out/gpu); when $OUT is
# set (the device tool), results.txt, results.json, check.log and
# details.tar.gz (logs, metrics, images; no checkpoints) are copied there.
# Environment: GPU_CHECK_BUDGET (seconds for the whole check, default 540:
# the device tool allows 600 a command),
# GPU_CHECK_NO_CUDA=1 (torch on the CPU at batch 2, 1 step: to test this
# script on a machine without a GPU; also automatic without nvidia-smi),
# GPU_CHECK_DEVICE (ddpmc's device for phases 3-8, default opencl; cpu to
# test the script with CPU-only executables), GPU_CHECK_TP_STEPS (16),
# PYTHON (python3), GPU_BUNDLE (.gpu). Exit status 0 unless the bundle is
# missing: it is a measurement; read results.txt.
set -u

case "${1:-}" in
"") ;;
-h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
*) echo "gpu_check.sh: no arguments (settings are environment variables; try --help)" >&2; exit 2 ;;
esac

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1

B=${GPU_BUNDLE:-.gpu}
W=${GPU_CHECK_WORK:-bench/out/gpu}
BUDGET=${GPU_CHECK_BUDGET:-540}
PY=${PYTHON:-python3}
DEV=${GPU_CHECK_DEVICE:-opencl}
TP_STEPS=${GPU_CHECK_TP_STEPS:-16}
TP_EVERY=4
TP_WARMUP=$TP_EVERY            # the first line's steps
RESERVE=20              # seconds kept for the report at the end
THREADS=$(nproc)
T0=$(date +%s)

case "$W" in /*) ;; *) W=$ROOT/$W ;; esac
case "$B" in /*) ;; *) B=$ROOT/$B ;; esac
rm -rf "$W"
mkdir -p "$W/logs" || exit 1
LOG=$W/check.log
: > "$LOG"
printf 'phase\trc\tseconds\tlimit\n' > "$W/phases.tsv"

note() { echo "[gpu_check +$(( $(date +%s) - T0 ))s] $*" | tee -a "$LOG" >&2; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }

# phase NAME CAP CMD...: CMD under a limit of min(CAP, budget left - RESERVE)
# seconds, output in logs/NAME.log; SIG=INT phase ... stops it with SIGINT
# first (ddpmc then ends after the current step and saves) and kills it 15 s
# later. Returns CMD's status; 99 when no time was left to start it.
phase() {
	local name=$1 cap=$2
	shift 2
	local l=$(( $(left) - RESERVE ))
	if [ "$l" -lt 5 ]; then
		printf '%s\tskipped\t0\t0\n' "$name" >> "$W/phases.tsv"
		note "$name: SKIPPED (time budget spent)"
		return 99
	fi
	local lim=$(( cap < l ? cap : l )) t rc
	t=$(date +%s)
	local cmd="$*"
	cmd=${cmd//$'\n'/ }
	[ ${#cmd} -le 240 ] || cmd="${cmd:0:240}..."
	note "$name: start (limit $lim s): $cmd"
	timeout -k 15 -s "${SIG:-TERM}" "$lim" "$@" > "$W/logs/$name.log" 2>&1
	rc=$?
	printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - t ))" "$lim" >> "$W/phases.tsv"
	note "$name: rc $rc in $(( $(date +%s) - t )) s$([ "$rc" = 124 ] && echo ' (TIMED OUT)')"
	[ "$rc" = 0 ] || tail -n 4 "$W/logs/$name.log" | sed 's/^/    /' | tee -a "$LOG" >&2
	return $rc
}

# ddpmc's OpenCL program cache (and PoCL's, for tests here) inside the work
# folder: every run starts cold, and the first use of each executable pays
# its OpenCL build before step 1.
export DDPMC_CL_CACHE=${DDPMC_CL_CACHE:-$W/cl_cache} POCL_CACHE_DIR=${POCL_CACHE_DIR:-$W/pocl_cache}
note "budget $BUDGET s, ddpmc device '$DEV', $THREADS CPU threads, work folder $W"
if [ ! -d "$B" ]; then
	note "no bundle $B: run bench/gpu_pack.sh first and carry .gpu"
	exit 1
fi
cp "$B/manifest.txt" "$W/manifest.txt" 2>/dev/null
# The executables, in $BIN: links to .gpu/NAME, or .gpu/NAME.gz unpacked.
BIN=$W/bin
mkdir -p "$BIN"
EXES="small small_bf16 unet unet_bf16 cifar cifar_bf16 unet_w4"    # what gpu_pack.sh packs
for n in $EXES; do
	if [ -f "$B/$n" ]; then
		ln -sf "$B/$n" "$BIN/$n"
		chmod +x "$B/$n" 2>/dev/null
	elif [ -f "$B/$n.gz" ]; then
		gzip -dc "$B/$n.gz" > "$BIN/$n" && chmod +x "$BIN/$n"
	fi
done

# --- 1. environment --------------------------------------------------------------
{
	echo "== date"; date -u
	echo "== uname"; uname -a
	echo "== cpu"; echo "$THREADS threads: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
	echo "== glibc"; ldd --version 2>&1 | head -n 1
	echo "== os"; grep PRETTY_NAME /etc/os-release 2>/dev/null
	echo "== bundle"; cat "$B/manifest.txt" 2>/dev/null
} > "$W/logs/env.log" 2>&1
NO_CUDA=${GPU_CHECK_NO_CUDA:-0}
if ! command -v nvidia-smi > /dev/null 2>&1; then
	NO_CUDA=1
	echo "== nvidia-smi: not found" >> "$W/logs/env.log"
else
	phase nvidia_smi 20 nvidia-smi
	phase nvidia_smi_q 20 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv
fi
phase python 60 "$PY" -c "
import sys, platform
print('python', sys.version.split()[0], sys.executable)
try:
    import numpy; print('numpy', numpy.__version__)
except Exception as e: print('numpy MISSING', e)
import torch
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print('gpu', p.name, p.total_memory // 2**20, 'MiB', p.multi_processor_count, 'SMs')
try:
    import diffusers; print('diffusers', diffusers.__version__)
except Exception as e: print('diffusers not importable:', type(e).__name__, e)
"
grep -q "available True" "$W/logs/python.log" 2>/dev/null || NO_CUDA=1

# The NVIDIA OpenCL driver, its ICD file and the loader.
OCL_DRIVER=
for f in $(ldconfig -p 2>/dev/null | awk '/libnvidia-opencl\.so/ { print $NF }') \
	/usr/lib/x86_64-linux-gnu/libnvidia-opencl.so.1 /usr/lib64/libnvidia-opencl.so.1 \
	/usr/local/nvidia/lib64/libnvidia-opencl.so.1 /usr/local/nvidia/lib/libnvidia-opencl.so.1 \
	/usr/lib/x86_64-linux-gnu/libnvidia-opencl.so.* /usr/local/nvidia/lib64/libnvidia-opencl.so.*; do
	if [ -e "$f" ]; then OCL_DRIVER=$f; break; fi
done
if [ -z "$OCL_DRIVER" ]; then
	OCL_DRIVER=$(timeout 20 find /usr /opt /lib /lib64 -name 'libnvidia-opencl.so*' 2>/dev/null | sort | head -n 1)
fi
{
	echo "== OpenCL"
	echo "driver: ${OCL_DRIVER:-NOT FOUND}"
	echo "system ICD files (/etc/OpenCL/vendors):"; ls -l /etc/OpenCL/vendors 2>&1
	for f in /etc/OpenCL/vendors/*.icd; do [ -e "$f" ] && echo "  $f: $(cat "$f")"; done
	echo "system loader: $(ldconfig -p 2>/dev/null | grep -m1 'libOpenCL.so.1' || echo none)"
	ls -l /usr/lib/x86_64-linux-gnu/libnvidia-opencl* /usr/local/nvidia/lib64/libnvidia-opencl* 2>&1
	echo "libcuda: $(ldconfig -p 2>/dev/null | grep -m1 'libcuda.so.1' || echo 'not in ldconfig')"
} >> "$W/logs/env.log" 2>&1
if [ -n "$OCL_DRIVER" ]; then
	mkdir -p "$W/icd"
	echo "$OCL_DRIVER" > "$W/icd/nvidia.icd"
	export OCL_ICD_VENDORS=$W/icd
	note "OpenCL driver $OCL_DRIVER; OCL_ICD_VENDORS=$OCL_ICD_VENDORS"
else
	note "no NVIDIA OpenCL driver (libnvidia-opencl.so*) found: the OpenCL phases will fail"
fi
MISSING=
for f in "$BIN"/small "$BIN"/unet "$BIN"/cifar; do
	[ -x "$f" ] && MISSING="$MISSING$(ldd "$f" 2>/dev/null | awk '/not found/ { print " " $1 }')"
done
if [ -n "$MISSING" ] || ! ldconfig -p 2>/dev/null | grep -q 'libOpenCL.so.1'; then
	export LD_LIBRARY_PATH=$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
	note "libraries the system lacks:${MISSING:- (none; no system libOpenCL.so.1)}: LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
fi
{
	echo "OCL_ICD_VENDORS=${OCL_ICD_VENDORS:-} LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
	echo "== ldd $BIN/unet"; ldd "$BIN/unet" 2>&1
} >> "$W/logs/env.log"
EXE_ANY=$BIN/small
[ -x "$EXE_ANY" ] || EXE_ANY=$BIN/unet
phase device_list 30 "$EXE_ANY" train --device list
if command -v clinfo > /dev/null 2>&1; then phase clinfo 20 clinfo -l; fi
[ "$NO_CUDA" = 1 ] && note "no CUDA here (or GPU_CHECK_NO_CUDA=1): torch runs on the CPU at batch 2, 1 step, only to test this script"

# --- 2. data -----------------------------------------------------------------------
phase data 60 "$PY" - "$W/data" <<'EOF'
import os, sys
import numpy as np
out = sys.argv[1]
rng = np.random.default_rng(0)
def blobs(n, c, s):
    """n images (n, c, s, s) uint8: a few soft Gaussian blobs each."""
    y, x = np.mgrid[0:s, 0:s].astype(np.float32)
    img = np.zeros((n, c, s, s), np.float32)
    for _ in range(4):
        cy, cx = rng.uniform(0, s, (2, n, 1, 1, 1)).astype(np.float32)
        r = rng.uniform(2, s / 3, (n, 1, 1, 1)).astype(np.float32)
        amp = rng.uniform(0.2, 1.0, (n, c, 1, 1)).astype(np.float32)
        img += amp * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * r * r))
    img += rng.normal(0, 0.03, img.shape).astype(np.float32)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)
n = 4096
os.makedirs(os.path.join(out, "fmnist"), exist_ok=True)
os.makedirs(os.path.join(out, "cifar"), exist_ok=True)
g = blobs(n, 1, 28)
with open(os.path.join(out, "fmnist", "train-images-idx3-ubyte"), "wb") as f:
    f.write(bytes([0, 0, 8, 3]) + b"".join(v.to_bytes(4, "big") for v in (n, 28, 28)))
    f.write(g.tobytes())
c = blobs(n, 3, 32)
rec = np.concatenate([rng.integers(0, 10, (n, 1), dtype=np.uint8), c.reshape(n, -1)], axis=1)
with open(os.path.join(out, "cifar", "data_batch_1.bin"), "wb") as f:
    f.write(rec.tobytes())
print("wrote", n, "28x28 and", n, "3x32x32 images")
EOF
FMNIST=$W/data/fmnist/train-images-idx3-ubyte
CIFAR=$W/data/cifar

# --- ddpmc phases ---------------------------------------------------------------------
# correctness NAME PRECISION: train 3 steps on the CPU and on $DEV, compare;
# sample from the CPU's checkpoint on both, compare the grids.
correctness() {
	local n=$1 prec=$2 d=$W/corr/$1
	if [ ! -x "$BIN/$n" ]; then note "corr_$n: no executable $n in $B"; return; fi
	mkdir -p "$d"
	phase "corr_${n}_train_cpu" 40 "$BIN/$n" train --device cpu --threads "$THREADS" --steps 3 --seed 7 \
		--log-every 1 --data "$FMNIST" --out "$d/cpu" --overwrite
	phase "corr_${n}_train_dev" 90 "$BIN/$n" train --device "$DEV" --steps 3 --seed 7 \
		--log-every 1 --data "$FMNIST" --out "$d/dev" --overwrite
	if [ -s "$d/cpu/checkpoint.safetensors" ] && [ -s "$d/dev/checkpoint.safetensors" ]; then
		phase "corr_${n}_compare" 30 "$PY" bench/compare_ckpt.py --label "$n train 3 steps, cpu vs $DEV" \
			--precision "$prec" --json "$d/compare.json" \
			--metrics-a "$d/cpu/metrics.jsonl" --metrics-b "$d/dev/metrics.jsonl" \
			"$d/cpu/checkpoint.safetensors" "$d/dev/checkpoint.safetensors"
	fi
	if [ -s "$d/cpu/checkpoint.safetensors" ]; then
		phase "corr_${n}_sample_cpu" 40 "$BIN/$n" sample --device cpu --threads "$THREADS" \
			--ckpt "$d/cpu/checkpoint.safetensors" --n 32 --sampler ddim --steps 10 --seed 5 \
			--out "$d/sample_cpu.png"
		phase "corr_${n}_sample_dev" 60 "$BIN/$n" sample --device "$DEV" \
			--ckpt "$d/cpu/checkpoint.safetensors" --n 32 --sampler ddim --steps 10 --seed 5 \
			--out "$d/sample_dev.png"
		if [ -s "$d/sample_cpu.png" ] && [ -s "$d/sample_dev.png" ]; then
			phase "corr_${n}_compare_images" 30 "$PY" bench/compare_ckpt.py --png \
				--label "$n DDIM samples, cpu vs $DEV" --precision "$prec" --json "$d/compare_images.json" \
				"$d/sample_cpu.png" "$d/sample_dev.png"
		fi
	fi
}

# throughput NAME DATA CAP [LABEL]: train --steps TP_STEPS on $DEV, stopped
# by SIGINT at CAP; phase tp_LABEL (default NAME), its run in tp/LABEL.
throughput() {
	local n=$1 data=$2 cap=$3 label=${4:-$1}
	if [ ! -x "$BIN/$n" ]; then note "tp_$label: no executable $n in $B"; return; fi
	SIG=INT phase "tp_$label" "$cap" "$BIN/$n" train --device "$DEV" --threads "$THREADS" \
		--steps "$TP_STEPS" --log-every "$TP_EVERY" --seed 1 --data "$data" --out "$W/tp/$label" --overwrite
	rm -f "$W/tp/$label/checkpoint.safetensors"     # hundreds of MB, not needed
}

# tuned NAME DATA CAP: NAME tune (its variants' parts built, every variant
# timed, the kernels with the most FLOPs first; none started after the
# phase's limit less TUNE_SPARE seconds, so that tune finishes the
# program parts in progress, keeps what it timed and ends), then its
# throughput as tp_NAME_tuned.
TUNE_SPARE=30
tuned() {
	local n=$1 data=$2 cap=$3
	[ -x "$BIN/$n" ] && [ "$DEV" != cpu ] || return 0
	local l=$(( $(left) - RESERVE ))
	[ "$l" -lt "$cap" ] && cap=$l
	if [ "$cap" -le $(( TUNE_SPARE + 5 )) ]; then
		printf '%s\tskipped\t0\t0\n' "tune_$n" >> "$W/phases.tsv"
		note "tune_$n: SKIPPED (time budget spent)"
		return 0
	fi
	phase "tune_$n" "$cap" "$BIN/$n" tune --device "$DEV" --seconds $(( cap - TUNE_SPARE )) &&
		throughput "$n" "$data" 75 "${n}_tuned"
}

# --- 2b. OpenCL builds, all at once ---------------------------------------------------------
# An executable's first use of a device builds its OpenCL programs (the
# source's parts, on every core) into $DDPMC_CL_CACHE. `sample` opens the
# device before it reads a checkpoint, so pointed at none it builds, caches
# and stops. models/unet.lua's build is timed alone first, then its start
# from the cache (whole processes); every other executable builds in the
# background while the correctness phase runs; the timed phases wait for
# them (and then start from the cache).
prebuild_pids=""
if [ "$DEV" != cpu ] && [ -x "$BIN/unet" ]; then
	for start in first cached; do
		t0=$(date +%s.%N)
		timeout 240 "$BIN/unet" sample --device "$DEV" --ckpt "$W/no_checkpoint.safetensors" \
			> "$W/logs/open_unet_$start.log" 2>&1
		note "open_unet ($start start): $(echo "$(date +%s.%N) $t0" | awk '{printf "%.2f", $1 - $2}') s;" \
			"$(grep -h 'OpenCL programs' "$W/logs/open_unet_$start.log" || echo 'nothing built')"
	done
fi
if [ "$DEV" != cpu ]; then
	for n in $EXES; do
		[ -x "$BIN/$n" ] || continue
		( t=$(date +%s)
		  timeout 240 "$BIN/$n" sample --device "$DEV" --ckpt "$W/no_checkpoint.safetensors" \
			> "$W/logs/build_$n.log" 2>&1
		  note "build_$n: OpenCL programs built and cached in $(( $(date +%s) - t )) s" \
			"($(grep -c 'does not build' "$W/logs/build_$n.log") build failures)" ) &
		prebuild_pids="$prebuild_pids $!"
	done
	note "building the OpenCL programs of every executable in the background"
fi

# --- 3. correctness, fp32 ---------------------------------------------------------------
correctness small fp32
if [ -n "$prebuild_pids" ]; then
	note "waiting for the OpenCL builds"
	wait $prebuild_pids
fi

# --- 4. PyTorch CUDA eager ----------------------------------------------------------------
if [ "$NO_CUDA" != 1 ] && ! "$PY" -c "import diffusers" > /dev/null 2>&1; then
	WHL=$(ls "$B"/wheels/diffusers-*.whl 2>/dev/null | head -n 1)
	if [ -n "$WHL" ] && phase pip_diffusers 60 "$PY" -m pip install -q --no-index --no-deps --no-compile \
		--no-cache-dir --target /tmp/gpu_check_site "$WHL"; then
		if PYTHONPATH=/tmp/gpu_check_site${PYTHONPATH:+:$PYTHONPATH} "$PY" -c \
			"from diffusers import UNet2DModel" > "$W/logs/diffusers_import.log" 2>&1; then
			export PYTHONPATH=/tmp/gpu_check_site${PYTHONPATH:+:$PYTHONPATH}
			note "diffusers from $WHL imports: torch_train.py uses it"
		else
			note "diffusers from $WHL does not import ($(tail -n 1 "$W/logs/diffusers_import.log")):" \
				"torch_train.py uses its builtin copy of UNet2DModel"
		fi
	fi
fi
if [ "$NO_CUDA" = 1 ]; then
	phase torch 120 "$PY" bench/torch_train.py --device cpu --threads "$THREADS" \
		--sweep unet:none,unet:bf16 --batch 2 --steps 1 --warmup-steps 1 --data random --verbose
else
	PYTHONUNBUFFERED=1 phase torch 120 "$PY" bench/torch_train.py --device cuda \
		--sweep unet:none,ddpm_cifar10:none,unet:bf16,ddpm_cifar10:bf16,unet:none:notf32,ddpm_cifar10:none:notf32,unet:fp16,ddpm_cifar10:fp16 \
		--batch 128 --steps 10 --warmup-steps 3 --data random --verbose
fi

# --- 5. ddpmc throughput, fp32 -------------------------------------------------------------
throughput unet "$FMNIST" 75
throughput cifar "$CIFAR" 90

# --- 5a. profile of the compiler's kernels -------------------------------------------------
profile() {
	local n=$1 data=$2
	[ -x "$BIN/$n" ] && [ "$(left)" -gt $(( RESERVE + 45 )) ] || return 0
	DDPMC_PROFILE=1 SIG=INT phase "profile_$n" 40 "$BIN/$n" train --device "$DEV" --threads "$THREADS" \
		--steps 3 --log-every 1 --seed 1 --data "$data" --out "$W/profile_$n" --overwrite
	rm -f "$W/profile_$n/checkpoint.safetensors"
}
profile unet "$FMNIST"

# --- 6. ddpmc throughput, bf16 --------------------------------------------------------------
throughput unet_bf16 "$FMNIST" 60
throughput cifar_bf16 "$CIFAR" 75
throughput unet_w4 "$FMNIST" 60

# --- 7. tuned ----------------------------------------------------------------------------
tuned unet "$FMNIST" 180
tuned cifar "$CIFAR" 150

# --- 8. correctness, bf16 ----------------------------------------------------------------------
correctness small_bf16 bf16

# --- 9. profile ------------------------------------------------------------------------------
profile cifar "$CIFAR"
profile unet_w4 "$FMNIST"

# --- 10. results ---------------------------------------------------------------------------------
W="$W" DEV="$DEV" TP_WARMUP="$TP_WARMUP" NO_CUDA="$NO_CUDA" TOTAL_S=$(( $(date +%s) - T0 )) \
OCL_DRIVER="${OCL_DRIVER:-}" timeout 30 "$PY" - <<'EOF' | tee "$W/results.txt"
import glob, json, os, re, statistics

E = os.environ
W, DEV, warm = E["W"], E["DEV"], int(E["TP_WARMUP"])

def read(p):
    try:
        with open(os.path.join(W, p)) as f:
            return f.read()
    except OSError:
        return ""

def jread(p):
    try:
        return json.loads(read(p))
    except ValueError:
        return None

res = {"device_ddpmc": DEV, "total_s": int(E["TOTAL_S"]), "opencl_driver": E["OCL_DRIVER"] or None,
       "torch_device": "cpu" if E["NO_CUDA"] == "1" else "cuda"}
phases = {}
for line in read("phases.tsv").splitlines()[1:]:
    f = line.split("\t")
    if len(f) == 4:
        phases[f[0]] = {"rc": f[1], "s": int(f[2]), "limit": int(f[3])}
res["phases"] = phases
env = read("logs/python.log")
m = re.search(r"^gpu (.*)$", env, re.M)
res["gpu"] = m.group(1) if m else None
m = re.search(r"^torch (\S+)", env, re.M)
res["torch_version"] = m.group(1) if m else None
man = read("manifest.txt")
m = re.search(r"^target (\S+)", man, re.M)
res["bundle_target"] = m.group(1) if m else None
m = re.search(r"^commit (.*)$", man, re.M)
res["bundle_commit"] = m.group(1) if m else None

# Correctness.
corr = {}
for name in ("small", "small_bf16"):
    c = {}
    for key, f in (("train", "corr/%s/compare.json" % name), ("images", "corr/%s/compare_images.json" % name)):
        j = jread(f)
        if j is not None:
            c[key] = j
    for ph in ("train_cpu", "train_dev", "sample_cpu", "sample_dev"):
        p = phases.get("corr_%s_%s" % (name, ph))
        if p:
            c[ph + "_rc"] = p["rc"]
    if c:
        corr[name] = c
res["correctness"] = corr

# ddpmc throughput from metrics.jsonl.
def ddpmc_tp(name):
    rows = []
    for line in read("tp/%s/metrics.jsonl" % name).splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            pass
    per = {}
    for r in rows:
        per[int(r["step"])] = r     # the final line repeats the last step
    d = {"steps_done": max(per) if per else 0, "phase": phases.get("tp_" + name)}
    steady = [per[s]["images_per_s"] for s in sorted(per) if s > warm and per[s].get("images_per_s")]
    if not steady and per:
        steady = [per[max(per)]["images_per_s"]]
        d["note"] = "no step after the %d warmup steps: last step's rate" % warm
    if steady:
        d["images_per_s"] = statistics.median(steady)
        d["images_per_s_steps"] = len(steady)
        d["step_s"] = None
    log = read("logs/tp_%s.log" % name)
    m = re.search(r"batch (\d+)", log)
    d["batch"] = int(m.group(1)) if m else None
    if d.get("images_per_s") and d["batch"]:
        d["step_s"] = d["batch"] / d["images_per_s"]
    if not d["phase"]:
        d["error"] = "not run (no executable %s in the bundle, or no time left)" % name
    elif not per:
        errs = [l for l in log.splitlines() if l.strip()][-2:]
        d["error"] = " | ".join(errs) or "no output"
    return d

ddpmc = {n: ddpmc_tp(n) for n in ("unet", "cifar", "unet_tuned", "cifar_tuned", "unet_bf16", "cifar_bf16",
                                   "unet_w4")}
res["ddpmc"] = ddpmc
res["tune"] = {n: re.findall(r"^tune: .*$", read("logs/tune_%s.log" % n), re.M) for n in ("unet", "cifar")}

def tune_chosen(lines):
    """What tune chose over the compiler's choice, by kind (a tile's
    micro-tile, _plain, _vec; a group's _l<size>; a point kernel's other
    work-group size), from the file its log names: each line's last
    field is the chosen OpenCL kernel @ work-group size."""
    paths = [m.group(1) for m in (re.match(r"^tune: kept in (.*)$", l) for l in lines) if m]
    try:
        with open(paths[-1]) as f:
            text = f.read()
    except (IndexError, OSError):
        return {}
    kinds = {}
    for line in text.splitlines():
        f = line.split("\t")
        if line.startswith("#") or len(f) < 4 or f[1] == "0":
            continue
        m = re.search(r"_(m\d+x\d+(?:_plain|_vec)?|l\d+)@\d+$", f[3])
        kind = m.group(1) if m else "local " + f[3].rsplit("@", 1)[-1]
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds

res["tune_chosen"] = {n: tune_chosen(lines) for n, lines in res["tune"].items()}

# torch.
torch_rows = {}
for line in read("logs/torch.log").splitlines():
    if line.startswith("{"):
        try:
            j = json.loads(line)
        except ValueError:
            continue
        torch_rows["%s:%s%s" % (j.get("model"), j.get("amp"), ":notf32" if j.get("no_tf32") else "")] = j
res["torch"] = torch_rows

def t_ips(key):
    j = torch_rows.get(key) or {}
    if j.get("step_s_median"):
        return j["batch"] / j["step_s_median"]
    return None

pairs = [("models/unet.lua", "unet", "unet_bf16", "unet"),
         ("models/ddpm_cifar10.lua", "cifar", "cifar_bf16", "ddpm_cifar10")]
table = []
for label, d32, d16, tm in pairs:
    row = {"model": label, "ddpmc_fp32_untuned": ddpmc[d32].get("images_per_s"),
           "ddpmc_fp32": ddpmc[d32 + "_tuned"].get("images_per_s") or ddpmc[d32].get("images_per_s"),
           "ddpmc_fp32_is_tuned": bool(ddpmc[d32 + "_tuned"].get("images_per_s")),
           "ddpmc_bf16": ddpmc[d16].get("images_per_s"),
           "torch_fp32": t_ips(tm + ":none"), "torch_fp32_strict": t_ips(tm + ":none:notf32"),
           "torch_amp_bf16": t_ips(tm + ":bf16"), "torch_amp_fp16": t_ips(tm + ":fp16")}
    def ratio(a, b):
        return row[a] / row[b] if row.get(a) and row.get(b) else None
    row["ratio_fp32"] = ratio("ddpmc_fp32", "torch_fp32")
    row["ratio_fp32_strict"] = ratio("ddpmc_fp32", "torch_fp32_strict")
    row["ratio_bf16"] = ratio("ddpmc_bf16", "torch_amp_bf16")
    row["ratio_ddpmc_best_vs_torch_best"] = (
        max(v for v in (row["ddpmc_fp32"], row["ddpmc_bf16"]) if v) /
        max(v for v in (row["torch_fp32"], row["torch_fp32_strict"], row["torch_amp_bf16"],
                        row["torch_amp_fp16"]) if v)
        if any((row["ddpmc_fp32"], row["ddpmc_bf16"])) and
        any((row["torch_fp32"], row["torch_fp32_strict"], row["torch_amp_bf16"], row["torch_amp_fp16"]))
        else None)
    table.append(row)
res["table"] = table
with open(os.path.join(W, "results.json"), "w") as f:
    json.dump(res, f, indent=1, default=str)

def f(v, fmt="%.1f"):
    return "-" if v is None else fmt % v

print()
print("GPU check: %s, torch %s on %s, ddpmc on '%s' (bundle target %s, %s), %d s"
      % (res["gpu"] or "no GPU seen by torch", res["torch_version"], res["torch_device"], DEV,
         res["bundle_target"], res["bundle_commit"], res["total_s"]))
print("OpenCL driver: %s" % (res["opencl_driver"] or "NOT FOUND"))
print()
print("correctness (cpu vs %s, same seed):" % DEV)
if not corr:
    print("  nothing compared")
for name, c in corr.items():
    t = c.get("train")
    if t:
        g = t.get("groups", {})
        worst = ", ".join("%s %.2g/%g" % (k, g[k]["worst"], g[k]["tolerance"])
                          for k in ("grads", "grad_sq", "params", "ema") if k in g)
        loss = t.get("loss", {})
        print("  %-10s train 3 steps: %s  [worst e/tolerance: %s; loss rel %s]"
              % (name, "PASS" if t.get("pass") else "FAIL", worst, f(loss.get("worst_rel"), "%.2g")))
        for pr in t.get("problems", [])[:3]:
            print("             problem: %s" % pr)
        if t.get("error"):
            print("             error: %s" % t["error"])
    else:
        print("  %-10s train: not compared (train rc cpu %s, %s %s)"
              % (name, c.get("train_cpu_rc", "-"), DEV, c.get("train_dev_rc", "-")))
    i = c.get("images")
    if i:
        print("  %-10s DDIM samples: %s  [max |diff| %s levels, mean %s]"
              % (name, "PASS" if i.get("pass") else "FAIL", i.get("max_abs"), f(i.get("mean_abs"), "%.3f")))
    else:
        print("  %-10s DDIM samples: not compared (sample rc cpu %s, %s %s)"
              % (name, c.get("sample_cpu_rc", "-"), DEV, c.get("sample_dev_rc", "-")))
print()
print("train step, batch 128, images/s (ddpmc: median of the metrics lines after the first %d steps,"
      " steps queued between lines; torch: 128 / median"
      " of 10 timed steps after 3 warmup)" % warm)
hdr = ("model", "ddpmc", "ddpmc", "torch fp32", "torch fp32", "torch AMP", "torch AMP",
       "ddpmc fp32 /", "ddpmc fp32 /", "ddpmc bf16 /", "best /")
hdr2 = ("", "fp32", "bf16", "(TF32 conv)", "strict", "bf16", "fp16",
        "torch fp32", "fp32 strict", "torch bf16", "best")
fm = "%-23s %8s %8s %11s %10s %9s %9s %12s %12s %12s %7s"
print(fm % hdr)
print(fm % hdr2)
for r in table:
    print(fm % (
        r["model"], f(r["ddpmc_fp32"]), f(r["ddpmc_bf16"]), f(r["torch_fp32"]), f(r["torch_fp32_strict"]),
        f(r["torch_amp_bf16"]), f(r["torch_amp_fp16"]), f(r["ratio_fp32"], "%.3fx"),
        f(r["ratio_fp32_strict"], "%.3fx"), f(r["ratio_bf16"], "%.3fx"),
        f(r["ratio_ddpmc_best_vs_torch_best"], "%.2fx")))
print("ddpmc fp32: with the kernels `tune` chose where it ran (untuned, tuned: %s)"
      % "; ".join("%s %s, %s" % (r["model"], f(r["ddpmc_fp32_untuned"]),
                                  f(r["ddpmc_fp32"]) if r["ddpmc_fp32_is_tuned"] else "-") for r in table))
w4, strict = ddpmc["unet_w4"].get("images_per_s"), table[0]["torch_fp32_strict"]
print("ddpmc fp32, models/unet.lua with its 3x3 convolutions by Winograd F(4x4, 3x3), untuned: %s"
      " (%s torch fp32 strict, %s ddpmc's direct untuned)"
      % (f(w4), f(w4 / strict if w4 and strict else None, "%.3fx"),
         f(w4 / table[0]["ddpmc_fp32_untuned"] if w4 and table[0]["ddpmc_fp32_untuned"] else None, "%.3fx")))
for n, lines in res["tune"].items():
    for l in lines:
        print("  %s %s" % (n, l))
    if res["tune_chosen"][n]:
        print("  %s tune chose over the compiler's: %s" % (n, ", ".join(
            "%s %d" % kv for kv in sorted(res["tune_chosen"][n].items(), key=lambda kv: -kv[1]))))
print("torch fp32 = PyTorch's default (cuDNN runs fp32 convolutions on TF32 tensor cores); strict = TF32 off;")
print("AMP = autocast, fp16 with GradScaler. ratio = ddpmc / torch images/s: above 1, ddpmc is faster.")
print()
for n, d in ddpmc.items():
    ph = d.get("phase") or {}
    print("ddpmc %-10s steps done %s in %s s (limit %s, rc %s)%s%s" % (
        n, d.get("steps_done"), ph.get("s", "-"), ph.get("limit", "-"), ph.get("rc", "-"),
        "; " + d["note"] if d.get("note") else "", "; " + d["error"] if d.get("error") else ""))
for k, j in torch_rows.items():
    if j.get("error"):
        print("torch %s: ERROR %s" % (k, j["error"]))
    else:
        print("torch %-18s %s, %s params, peak GPU %s MiB, loss %s -> %s%s" % (
            k, j.get("impl"), j.get("parameters"), j.get("peak_gpu_mem_mb", "-"), j.get("loss_first"),
            j.get("loss_last"), (" (diffusers: %s)" % j["diffusers_unavailable"]) if j.get("diffusers_unavailable") else ""))
for n in ("unet", "cifar", "unet_w4"):      # DDPMC_PROFILE's per-step line and time per kind
    log = read("logs/profile_%s.log" % n)
    step = re.search(r"^profile train_step: .*$", log, re.M)
    kinds = re.search(r"^by kind:\n((?:  .*\n?)*)", log, re.M)
    if step:
        print("ddpmc %s %s" % (n, re.sub(r"; the slowest:$", "", step.group(0))))
    if kinds:
        print(kinds.group(1).rstrip("\n"))
bad = [k for k, p in phases.items() if p["rc"] not in ("0",)]
if bad:
    print("phases not ok: " + ", ".join("%s (rc %s, %s s)" % (k, phases[k]["rc"], phases[k]["s"]) for k in bad))
EOF

# --- hand back ----------------------------------------------------------------------------------
note "done in $(( $(date +%s) - T0 )) s"
if [ -n "${OUT:-}" ]; then
	mkdir -p "$OUT"
	cp "$W/results.txt" "$W/results.json" "$OUT/" 2>/dev/null
	cp "$LOG" "$OUT/check.log"
	(cd "$W/.." && tar czf "$OUT/details.tar.gz" --exclude='*.safetensors' --exclude='data' --exclude='bin' \
		--exclude='cl_cache' --exclude='pocl_cache' \
		"$(basename "$W")") 2>/dev/null
	ls -l "$OUT" >&2
fi
exit 0
