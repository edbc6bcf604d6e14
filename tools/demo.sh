#!/bin/sh
# demo: install dependencies, build, and run the main job: compile the
# default Fashion-MNIST U-Net (models/unet.lua) in a small configuration (a
# quarter of its width, one res block per level, no dropout) into a
# standalone executable, train it for a few minutes, and sample a grid of
# images (build/demo-samples.png) with the DDPM sampler in 250 strided
# steps from the EMA weights. docs/performance.md has a longer run.
set -eu
cd "$(dirname "$0")/.."
sh tools/install-deps.sh
sh tools/build.sh
ddpmc=build/compiler/ddpmc
small="--set width=16 --set layers=1 --set groups=8 --set batch=32 --set dropout=0 --set lr=2e-3
--set warmup=100 --set ema=0.99"
$ddpmc inspect models/unet.lua $small | sed -n '1,2p'
$ddpmc compile models/unet.lua $small -o build/unet_small
build/unet_small train --steps "${DEMO_STEPS:-1000}" --out build/demo-run --overwrite --log-every 100
build/unet_small sample --ckpt build/demo-run/checkpoint.safetensors --n 32 --sampler ddpm \
	--steps 250 --out build/demo-samples.png
echo "demo: samples in build/demo-samples.png"
