#!/bin/sh
# demo: install dependencies, build, and run the main job: compile the
# default Fashion-MNIST U-Net (models/unet.lua) into a standalone
# executable, train it for a few minutes, and sample a grid of images.
# A short run learns coarse shapes only; docs/performance.md has longer runs.
set -eu
cd "$(dirname "$0")/.."
sh tools/install-deps.sh
sh tools/build.sh
ddpmc=build/compiler/ddpmc
$ddpmc inspect models/unet.lua | sed -n '1,2p'
$ddpmc compile models/unet.lua --set batch=16 --set lr=1e-3 --set warmup=100 --set ema=0.995 \
	-o build/unet
build/unet train --steps "${DEMO_STEPS:-200}" --out build/demo-run --log-every 25
build/unet sample --ckpt build/demo-run/checkpoint.safetensors --n 16 --sampler ddim \
	--steps 50 --out build/demo-samples.png
echo "demo: samples in build/demo-samples.png"
