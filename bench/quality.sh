#!/bin/sh
# quality: train the same U-Net for the same steps with ddpmc and with
# diffusers/PyTorch, side by side (one thread each, at the same time), and
# score both with ddpmc's sampler and the shipped Fashion-MNIST classifier
# (FID, KID and the real-vs-real floor, docs/cli.md "eval").
#
#   bench/quality.sh                   # models/unet_small.lua, 6000 steps
#   STEPS=2000 EVERY=500 bench/quality.sh
#
# Both runs: batch 32, lr 1e-3 with 200 warm-up steps, clipping at 1, EMA
# 0.999 with diffusers' power warm-up (power 3/4). ddpmc scores its EMA
# weights every EVERY steps during training (--eval-every, N_CURVE images,
# DDIM 50 steps); the PyTorch run saves its EMA weights every EVERY steps and
# they are scored afterwards by the same command. At the end both final
# weights are scored with N_FINAL images and drawn as a grid.
#
# Needs build/compiler/ddpmc and /opt/ddpmc-venv/bin/python (torch,
# diffusers, safetensors). Everything goes to $OUT (default
# bench/out/quality); the summary is $OUT/summary.txt.
set -eu
cd "$(dirname "$0")/.."
MODEL=${MODEL:-unet_small}
STEPS=${STEPS:-6000}
EVERY=${EVERY:-1000}
N_CURVE=${N_CURVE:-256}
N_FINAL=${N_FINAL:-1000}
OUT=${OUT:-bench/out/quality}
PYTHON=${PYTHON:-/opt/ddpmc-venv/bin/python}
DDPMC=${DDPMC:-build/compiler/ddpmc}
hyper="--lr 1e-3 --warmup 200 --clip 1 --ema 0.999 --ema-warmup power --ema-power 0.75"
scored="--sampler ddim --steps 50 --seed 0"

mkdir -p "$OUT"
exe=$OUT/$MODEL
$DDPMC compile "models/$MODEL.lua" -o "$exe"

# The two trainings, at the same time, one thread each.
rm -rf "$OUT/ddpmc" "$OUT/torch"
start=$(date +%s)
(
	"$exe" train --steps "$STEPS" --threads 1 $hyper --out "$OUT/ddpmc" --log-every 100 \
		--eval-every "$EVERY" --n "$N_CURVE" > "$OUT/ddpmc.log" 2>&1
	echo "ddpmc_seconds $(($(date +%s) - start))" > "$OUT/ddpmc.time"
) &
ddpmc_pid=$!
"$PYTHON" bench/torch_quality.py --model "$MODEL" --steps "$STEPS" --threads 1 --save-every "$EVERY" \
	--out "$OUT/torch" > "$OUT/torch.log" 2>&1
echo "torch_seconds $(($(date +%s) - start))" > "$OUT/torch.time"
wait $ddpmc_pid

# Scores: the PyTorch curve, then both final weights with N_FINAL images.
score() { # weights-option file n -> "FID KID floor"
	"$exe" eval "$1" "$2" --n "$3" $scored 2>/dev/null |
		awk '/^FID/ {f = $2; k = $4} /^floor/ {print f, k, $3}'
}
{
	echo "# $MODEL, $STEPS steps of batch 32, one thread each; FID KID floor-FID (DDIM 50, seed 0)"
	cat "$OUT/ddpmc.time" "$OUT/torch.time"
	echo "## curve, $N_CURVE images"
	step=$EVERY
	while [ "$step" -le "$STEPS" ]; do
		d=$(grep "\"step\": *$step," "$OUT/ddpmc/metrics.jsonl" |
			sed -n 's/.*"fid": *\([0-9.e+-]*\).*"kid": *\([0-9.e+-]*\).*/\1 \2/p')
		t=$(score --weights "$OUT/torch/ema-$step.safetensors" "$N_CURVE")
		echo "step $step ddpmc $d torch $t"
		step=$((step + EVERY))
	done
	echo "## final, $N_FINAL images"
	echo "ddpmc $(score --ckpt "$OUT/ddpmc/checkpoint.safetensors" "$N_FINAL")"
	echo "torch $(score --weights "$OUT/torch/ema-$STEPS.safetensors" "$N_FINAL")"
} | tee "$OUT/summary.txt"
"$exe" sample --ckpt "$OUT/ddpmc/checkpoint.safetensors" --n 64 $scored --out "$OUT/ddpmc.png"
"$exe" sample --weights "$OUT/torch/ema-$STEPS.safetensors" --n 64 $scored --out "$OUT/torch.png"
