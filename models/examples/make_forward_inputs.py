"""Writes forward_inputs.safetensors: inputs for the demo's forward pass of
models/unet.lua. x is four Fashion-MNIST training images (Debian's
dataset-fashion-mnist) scaled to [-1, 1] and noised to timesteps t by the
DDPM forward process with the linear schedule; t is int32.
Run by hand: python3 models/examples/make_forward_inputs.py (needs numpy)."""
import gzip
import json
import os
import struct

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGES = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"


def save_safetensors(path, tensors):
    header, blobs, at = {}, [], 0
    for name, (dtype, arr) in tensors.items():
        data = arr.tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [at, at + len(data)]}
        blobs.append(data)
        at += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def main():
    with gzip.open(IMAGES) as f:
        magic, n, h, w = struct.unpack(">IIII", f.read(16))
        assert magic == 0x803, "not an IDX image file"
        x0 = np.frombuffer(f.read(4 * h * w), np.uint8).reshape(4, 1, h, w)
    x0 = x0.astype(np.float64) / 127.5 - 1
    t = np.array([50, 250, 500, 900], np.int32)
    alphas_bar = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))
    eps = np.random.default_rng(0).standard_normal(x0.shape)
    ab = alphas_bar[t].reshape(-1, 1, 1, 1)
    xt = np.sqrt(ab) * x0 + np.sqrt(1 - ab) * eps
    save_safetensors(os.path.join(HERE, "forward_inputs.safetensors"),
                     {"x": ("F32", xt.astype("<f4")), "t": ("I32", t.astype("<i4"))})


if __name__ == "__main__":
    main()
