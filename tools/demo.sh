#!/bin/sh
# demo: install dependencies, build, and run the main job: describe the
# default Fashion-MNIST U-Net and run one forward pass through the
# reference interpreter.
set -eu
cd "$(dirname "$0")/.."
sh tools/install-deps.sh
sh tools/build.sh
ddpmc=build/compiler/ddpmc
$ddpmc inspect models/unet.lua | sed -n '1,2p;/^entry/,$p'
$ddpmc run models/unet.lua --set batch=4 --entry forward \
	--inputs models/examples/forward_inputs.safetensors -o build/forward_out.safetensors --interp
