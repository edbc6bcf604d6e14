-- ddpm.classifier: a small convolutional image classifier, and the
-- Fashion-MNIST one whose penultimate features the sample-quality metrics
-- (FID, KID: runtime/metrics.h) compare.
--
--   local classifier = require "ddpm.classifier"
--   local net = classifier.Classifier(classifier.FASHION_MNIST)   -- trainable
--   local logits = net(x)                 -- x (N, C, H, W) -> (N, classes)
--   local feats = net:features(x)         -- (N, features), the penultimate layer
--   local fixed = classifier.fashion_mnist()   -- the shipped weights, as constants
--
-- The network, for size x size images: 3x3 convolutions (padding 1) with
-- ReLU, strided where `strides` says (28 -> 28, 14, 7, 4 for the shipped
-- one), flattened, then Linear(C' H' W', features) with ReLU (the
-- features) and Linear(features, classes) (the logits). Parameter names: convs.0.weight, ..., fc.weight, head.weight.
-- Dimension legend: N batch, C channels, H, W height and width.
local ddpm = require "ddpm"
local nn = ddpm.nn

local classifier = {}

-- The shipped classifier's configuration (models/classifier.lua trains it;
-- WEIGHTS holds its weights, found in the library folder).
classifier.FASHION_MNIST = { in_channels = 1, size = 28, channels = { 16, 32, 64, 32 },
                             strides = { 1, 2, 2, 2 }, features = 128, classes = 10 }
classifier.WEIGHTS = "ddpm/fashion_mnist_classifier.safetensors"

local Classifier = nn.Module:extend("Classifier")
classifier.Classifier = Classifier

function Classifier:init(opts)
  local o = nn.kwargs("Classifier", opts, { in_channels = nn.REQUIRED, size = nn.REQUIRED,
                                            channels = nn.REQUIRED, strides = nn.REQUIRED,
                                            features = nn.REQUIRED, classes = nn.REQUIRED })
  if #o.strides ~= #o.channels then
    ddpm.fail("Classifier", string.format("%d channels but %d strides", #o.channels, #o.strides))
  end
  self.config = o
  local convs, cin, side = {}, o.in_channels, o.size
  for i, c in ipairs(o.channels) do
    convs[i] = nn.Conv2d(cin, c, 3, { stride = o.strides[i], padding = 1 })
    cin, side = c, (side - 1) // o.strides[i] + 1
  end
  self.convs = nn.ModuleList(convs)
  self.fc = nn.Linear(cin * side * side, o.features)
  self.head = nn.Linear(o.features, o.classes)
end

-- features(x (N, C, H, W)) -> (N, features): the penultimate layer.
function Classifier:features(x)
  local h = x
  for _, conv in ipairs(self.convs) do h = conv(h):relu() end
  return self.fc(h:reshape { h:size(0), -1 }):relu()
end

function Classifier:forward(x)
  return self.head(self:features(x))
end

-- The shipped Fashion-MNIST classifier with its weights compiled in as
-- constants (Module:use_weights): nothing of it is trained or saved.
function classifier.fashion_mnist()
  return Classifier(classifier.FASHION_MNIST):use_weights(ddpm.load(classifier.WEIGHTS))
end

return classifier
