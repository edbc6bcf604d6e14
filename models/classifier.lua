-- A Fashion-MNIST classifier, compiled and trained by ddpmc like any model:
-- the one whose penultimate features ddpm.program.diffusion's FID and KID
-- compare (ddpm.classifier.FASHION_MNIST; 108,714 parameters, 128 features).
-- How lua/ddpm/fashion_mnist_classifier.safetensors was trained, and its
-- test accuracy, are in docs/lua-api.md (Classifiers).
--
--   ddpmc compile models/classifier.lua -o classifier
--   ./classifier train --steps 5000 --out runs/classifier   # labels from beside the images
--   ./classifier eval --ckpt runs/classifier/checkpoint.safetensors   # t10k accuracy: 90.95 %
local ddpm = require "ddpm"
local classifier = require "ddpm.classifier"

local net = classifier.Classifier(classifier.FASHION_MNIST)
ddpm.program.classifier {
  model = net, image = { 1, 28, 28 }, batch = ddpm.option("batch", 64),
  optimizer = { lr = ddpm.option("lr", 1e-3) },
}
