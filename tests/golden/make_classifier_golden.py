"""The shipped Fashion-MNIST classifier in PyTorch, for tests/test_classifier.c
(run by hand):

    /opt/ddpmc-venv/bin/python tests/golden/make_classifier_golden.py

Builds ddpm.classifier.FASHION_MNIST as torch modules (written here from
lua/ddpm/classifier.lua's description: 3x3 convolutions, padding 1, strides
1, 2, 2, 2, ReLU, flatten, Linear + ReLU = the features, Linear = the
logits), loads lua/ddpm/fashion_mnist_classifier.safetensors by name, and
writes tests/golden/classifier_io.safetensors: x (8, 1, 28, 28) the first
8 t10k images scaled to [-1, 1], features (8, 128), logits (8, 10), labels
(8) I32, all F32 but labels. Prints the accuracy of those 8 and of the
whole t10k set (the figure docs/lua-api.md gives).
"""
import gzip
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.join(here, "..", "..")
data = "/usr/share/datasets/fashion-mnist/"


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        chans, strides, cin = [16, 32, 64, 32], [1, 2, 2, 2], 1
        self.convs = nn.ModuleList()
        for c, s in zip(chans, strides):
            self.convs.append(nn.Conv2d(cin, c, 3, stride=s, padding=1))
            cin = c
        self.fc = nn.Linear(32 * 4 * 4, 128)
        self.head = nn.Linear(128, 10)

    def features(self, x):
        for conv in self.convs:
            x = F.relu(conv(x))
        return F.relu(self.fc(x.flatten(1)))

    def forward(self, x):
        return self.head(self.features(x))


net = Classifier()
net.load_state_dict(load_file(os.path.join(root, "lua/ddpm/fashion_mnist_classifier.safetensors")))
images = np.frombuffer(gzip.open(data + "t10k-images-idx3-ubyte.gz").read(), np.uint8, offset=16)
labels = np.frombuffer(gzip.open(data + "t10k-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
x_all = torch.tensor(images.reshape(-1, 1, 28, 28) / 127.5 - 1, dtype=torch.float32)
with torch.no_grad():
    acc = (net(x_all).argmax(1).numpy() == labels).mean()
    x = x_all[:8].contiguous()
    feats, logits = net.features(x), net(x)
print(f"t10k accuracy {acc:.4f}; first 8: {(logits.argmax(1).numpy() == labels[:8]).mean():.3f}")
save_file({"x": x, "features": feats.contiguous(), "logits": logits.contiguous(),
           "labels": torch.tensor(labels[:8], dtype=torch.int32)},
          os.path.join(here, "classifier_io.safetensors"))
