#!/bin/sh
# demo: install dependencies, build, and run the main job: compile a small
# Fashion-MNIST U-Net (models/unet_small.lua, the default model's layout at a
# quarter of its width) into a standalone executable, train it for a few
# minutes, and sample a grid of images (build/demo-samples.png) from the
# trained weights (--no-ema: after 500 steps the EMA still mostly holds the
# initial weights).
# docs/performance.md has a longer run; models/unet.lua is the full model.
set -eu
cd "$(dirname "$0")/.."
sh tools/install-deps.sh
sh tools/build.sh
ddpmc=build/compiler/ddpmc
$ddpmc inspect models/unet_small.lua | sed -n '1,2p'
$ddpmc compile models/unet_small.lua -o build/unet_small
build/unet_small train --steps "${DEMO_STEPS:-500}" --out build/demo-run --log-every 50
build/unet_small sample --ckpt build/demo-run/checkpoint.safetensors --n 36 --sampler ddim --no-ema \
	--steps 50 --out build/demo-samples.png
echo "demo: samples in build/demo-samples.png"
