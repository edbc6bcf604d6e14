-- test_classifier's fixture: the shipped Fashion-MNIST classifier
-- (ddpm.classifier.fashion_mnist(), weights compiled in as constants) on
-- the 8 images of tests/golden/classifier_io.safetensors.
local ddpm = require "ddpm"
local classifier = require "ddpm.classifier"
local net = classifier.fashion_mnist()
local x = ddpm.input("x", { 8, 1, 28, 28 })
ddpm.entry("classify", { features = net:features(x), logits = net(x) })
