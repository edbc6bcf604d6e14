#!/bin/sh
# Data-parallel scaling over MPI: images/s of models/unet.lua (or MODEL) as
# 1 process x 1 thread and as N processes x 1 thread each (mpirun), the
# global batch growing with N (N x the compiled batch, as DDP), and the
# scaling efficiency ips(N) / (N x ips(1)). Also the exchange's bytes and
# time per step (the executable's "allreduce:" line).
#
#   bench/mpi_scaling.sh [--ranks N] [--steps S] [--batch B] [--model MODEL]
#
# Defaults: N = 2, S = 20 steps (images/s from the metrics lines of steps
# 6..S: the first steps pay page faults and MPI's connection set-up),
# B = 16, MODEL = models/unet.lua. The machine must be otherwise idle with
# at least N cores: on a busy one the ranks wait for each other and the
# figure measures the neighbours. Environment: DDPMC (default
# build/compiler/ddpmc), OUT (default bench/out/mpi), DATA (default
# fashion-mnist), MPIRUN (default "mpirun --oversubscribe --allow-run-as-root").
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RANKS=2
STEPS=20
BATCH=16
MODEL=models/unet.lua
while [ $# -gt 0 ]; do
	case "$1" in
	--ranks) RANKS=$2; shift 2 ;;
	--steps) STEPS=$2; shift 2 ;;
	--batch) BATCH=$2; shift 2 ;;
	--model) MODEL=$2; shift 2 ;;
	-h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "mpi_scaling.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
	esac
done
DDPMC=${DDPMC:-build/compiler/ddpmc}
OUT=${OUT:-bench/out/mpi}
DATA=${DATA:-fashion-mnist}
MPIRUN=${MPIRUN:-mpirun --oversubscribe --allow-run-as-root}
mkdir -p "$OUT"
EXE="$OUT/model"

"$DDPMC" compile "$MODEL" --set batch="$BATCH" --target cpu -o "$EXE"

# images/s of a run folder: the mean of the metrics lines after step 5.
ips() {
	grep -o '"step": [0-9]*\|"images_per_s": [0-9.e+-]*' "$1/metrics.jsonl" |
		awk '/step/ { s = $2 } /images_per_s/ && s > 5 { t += $2; n++ } END { printf "%.2f", t / n }'
}

run() {   # run LAUNCH NAME: one training run into $OUT/NAME
	rm -rf "${OUT:?}/$2"
	$1 "$EXE" train --data "$DATA" --steps "$STEPS" --threads 1 --log-every 1 --seed 1 \
		--out "$OUT/$2" > "$OUT/$2.log" 2>&1
}

run "" one
run "$MPIRUN -np $RANKS" many
ONE=$(ips "$OUT/one")
MANY=$(ips "$OUT/many")
{
	echo "model $MODEL, batch $BATCH per process, $STEPS steps, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "1 process x 1 thread:       $ONE img/s"
	echo "$RANKS processes x 1 thread:   $MANY img/s (global batch $((RANKS * BATCH)))"
	awk -v a="$ONE" -v b="$MANY" -v n="$RANKS" \
		'BEGIN { printf "speed-up %.2fx, scaling efficiency %.0f %%\n", b / a, 100 * b / (n * a) }'
	grep '^allreduce:' "$OUT/many.log" || true
} | tee "$OUT/results.txt"
