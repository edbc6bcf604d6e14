#!/bin/sh
# demo: install dependencies, build, and run the main job: compile the
# default Fashion-MNIST U-Net (models/unet.lua) in a small configuration (a
# quarter of its width, one res block per level: the same graph as
# models/unet_small.lua) into a standalone executable, train it for a few
# minutes, and sample a grid of images (build/demo-samples.png) from the
# trained weights (--no-ema: after 500 steps the EMA still mostly holds the
# initial weights). docs/performance.md has a longer run.
set -eu
cd "$(dirname "$0")/.."
sh tools/install-deps.sh
sh tools/build.sh
ddpmc=build/compiler/ddpmc
small="--set width=32 --set layers=1 --set groups=16 --set batch=32 --set lr=1e-3 --set warmup=200 --set ema=0.999"
$ddpmc inspect models/unet.lua $small | sed -n '1,2p'
$ddpmc compile models/unet.lua $small -o build/unet_small
build/unet_small train --steps "${DEMO_STEPS:-500}" --out build/demo-run --log-every 50
build/unet_small sample --ckpt build/demo-run/checkpoint.safetensors --n 36 --sampler ddim --no-ema \
	--steps 50 --out build/demo-samples.png
echo "demo: samples in build/demo-samples.png"
