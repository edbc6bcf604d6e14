#!/bin/sh
# quality: train the same U-Net for the same steps with ddpmc and with
# diffusers/PyTorch, side by side (one thread each, at the same time), and
# score both with ddpmc's sampler and the shipped Fashion-MNIST classifier
# (FID, KID and the real-vs-real floor, docs/cli.md "eval").
#
#   bench/quality.sh                   # models/unet_small.lua, 6000 steps
#   STEPS=9000 EVERY=1500 LR_SCHEDULE=cosine DROPOUT=0 bench/quality.sh
#
# Both runs: batch 32, Adam lr $LR (1e-3) after 200 warm-up steps, then the
# $LR_SCHEDULE decay (constant, linear or cosine to 0 at the last step, as
# diffusers' get_scheduler), clipping at 1, EMA 0.999 with diffusers' power
# warm-up (power 3/4), the model's dropout or $DROPOUT. Both save their EMA
# weights every EVERY steps; after the trainings the same command scores
# them (N_CURVE images, $SCORE_SAMPLER in $SCORE_STEPS steps: DDIM 50 by
# default, seed 0), so scoring costs neither training any time. The final
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
LR=${LR:-1e-3}
LR_SCHEDULE=${LR_SCHEDULE:-constant}
DROPOUT=${DROPOUT:-}
OUT=${OUT:-bench/out/quality}
PYTHON=${PYTHON:-/opt/ddpmc-venv/bin/python}
DDPMC=${DDPMC:-build/compiler/ddpmc}
hyper="--lr $LR --warmup 200 --lr-schedule $LR_SCHEDULE --clip 1 --ema 0.999"
hyper="$hyper --ema-warmup power --ema-power 0.75"
SCORE_SAMPLER=${SCORE_SAMPLER:-ddim}
SCORE_STEPS=${SCORE_STEPS:-50}
scored="--sampler $SCORE_SAMPLER --steps $SCORE_STEPS --seed 0"
set_dropout=${DROPOUT:+--set dropout=$DROPOUT}
torch_dropout=${DROPOUT:+--dropout $DROPOUT}

mkdir -p "$OUT"
exe=$OUT/$MODEL
$DDPMC compile "models/$MODEL.lua" $set_dropout -o "$exe"

# The two trainings, at the same time, one thread each.
rm -rf "$OUT/ddpmc" "$OUT/torch"
start=$(date +%s)
(
	"$exe" train --steps "$STEPS" --threads 1 $hyper --out "$OUT/ddpmc" --log-every 100 \
		--save-every "$EVERY" --save-minutes 0 --keep $((STEPS / EVERY + 1)) > "$OUT/ddpmc.log" 2>&1
	echo "ddpmc_seconds $(($(date +%s) - start))" > "$OUT/ddpmc.time"
) &
ddpmc_pid=$!
"$PYTHON" bench/torch_quality.py --model "$MODEL" --steps "$STEPS" --threads 1 --save-every "$EVERY" \
	--lr "$LR" --lr-schedule "$LR_SCHEDULE" $torch_dropout --out "$OUT/torch" > "$OUT/torch.log" 2>&1
echo "torch_seconds $(($(date +%s) - start))" > "$OUT/torch.time"
wait $ddpmc_pid

# Scores: both curves, then both final weights with N_FINAL images.
score() { # weights-option file n -> "FID KID floor"
	"$exe" eval "$1" "$2" --n "$3" $scored 2>/dev/null |
		awk '/^FID/ {f = $2; k = $4} /^floor/ {print f, k, $3}'
}
{
	echo "# $MODEL, $STEPS steps of batch 32, one thread each, lr $LR $LR_SCHEDULE," \
		"dropout ${DROPOUT:-of the model}; FID KID floor-FID ($scored)"
	cat "$OUT/ddpmc.time" "$OUT/torch.time"
	echo "## curve, $N_CURVE images"
	step=$EVERY
	while [ "$step" -le "$STEPS" ]; do
		d=$(score --ckpt "$OUT/ddpmc/checkpoint-$(printf %08d "$step").safetensors" "$N_CURVE")
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
