#!/usr/bin/env bash
# Train-step throughput of ddpmc against PyTorch, measured in turns: on a
# shared machine whose speed drifts between runs, one run of each side
# (bench/run.sh) can land on a fast minute for one and a slow one for the
# other. This runs R rounds of ddpmc then PyTorch, each with W untimed and
# S timed steps, and prints every round's images/s (median of its timed
# steps), the round's ratio, and the median of the ratios.
#
#   bench/alternate.sh [--rounds R] [--threads N] [--steps S] [--warmup W] [--cpu NAME]
#
# Defaults: R = 5, N = nproc, S = 8, W = 2, batch 64 (the executable
# bench/run.sh compiled: bench/out/unet; run bench/run.sh first). With
# --cpu NAME (an LLVM CPU name: x86-64-v3 for AVX2 code, x86-64-v4 for
# AVX-512), the executable is bench/out/unet-NAME, compiled first when it
# is missing (ddpmc compile --target cpu --cpu NAME).
# Environment: PYTHON (default /opt/ddpmc-venv/bin/python), EXE (default
# bench/out/unet), DATA (default fashion-mnist), DDPMC (default
# build/compiler/ddpmc).
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1

ROUNDS=5
THREADS=$(nproc)
STEPS=8
WARMUP=2
CPU=
while [ $# -gt 0 ]; do
	case "$1" in
	--rounds) ROUNDS=$2; shift 2 ;;
	--threads) THREADS=$2; shift 2 ;;
	--steps) STEPS=$2; shift 2 ;;
	--warmup) WARMUP=$2; shift 2 ;;
	--cpu) CPU=$2; shift 2 ;;
	-h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "alternate.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
	esac
done
PYTHON=${PYTHON:-/opt/ddpmc-venv/bin/python}
if [ -n "$CPU" ]; then
	EXE=${EXE:-bench/out/unet-$CPU}
	if [ ! -x "$EXE" ]; then
		mkdir -p "$(dirname "$EXE")"
		echo "compiling models/unet.lua for $CPU into $EXE"
		"${DDPMC:-build/compiler/ddpmc}" compile models/unet.lua --set batch=64 --target cpu --cpu "$CPU" -o "$EXE" ||
			exit 1
	fi
fi
EXE=${EXE:-bench/out/unet}
DATA=${DATA:-fashion-mnist}
RUN=$(mktemp -d)
trap 'rm -rf "$RUN"' EXIT

if [ ! -x "$EXE" ]; then
	echo "alternate.sh: no executable at $EXE (run bench/run.sh first)" >&2
	exit 1
fi

# The median of the numbers on stdin.
median() { sort -g | awk '{ a[NR] = $1 } END { print NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

ratios=
for r in $(seq 1 "$ROUNDS"); do
	ddpmc=$("$EXE" train --steps $((WARMUP + STEPS)) --threads "$THREADS" --data "$DATA" --out "$RUN/run" --overwrite \
		--log-every 1 2>&1 | awk -v w="$WARMUP" '/^step/ && $2 > w { print $NF }' | median)
	torch=$(OMP_NUM_THREADS=$THREADS "$PYTHON" bench/torch_train.py --batch 64 --threads "$THREADS" \
		--steps "$STEPS" --warmup-steps "$WARMUP" --data "$DATA" --verbose 2>&1 |
		grep '^step' | grep -v warmup | sed 's/.*img\/s *//; s/ .*//' | median)
	ratio=$(awk -v a="$ddpmc" -v b="$torch" 'BEGIN { printf "%.3f", a / b }')
	ratios="$ratios $ratio"
	echo "round $r: ddpmc $ddpmc img/s, torch $torch img/s, ratio $ratio"
done
echo "median ratio ddpmc / torch over $ROUNDS rounds: $(echo "$ratios" | tr ' ' '\n' | grep . | median)x" \
	"(range $(echo "$ratios" | tr ' ' '\n' | grep . | sort -g | head -1)-$(echo "$ratios" | tr ' ' '\n' | grep . | sort -g | tail -1))"
