#!/usr/bin/env python3
"""Golden samples of the imported pipeline: what diffusers' schedulers and UNet draw from
tests/golden/import_pipeline with the noise ddpmc's `OUT sample --seed S` draws.
tests/test_import.c runs the compiled executable's sample with each case's flags and
compares its images with these.

    /opt/ddpmc-venv/bin/python tests/golden/make_import_sample_golden.py

Needs make_import_golden.py's folder (it reads it, writes nothing there). Writes
tests/golden/import_samples.safetensors (byte-identical from run to run), with, for each CASE,
    CASE.noise   F32 (2, 3, 8, 8): x_T, the executable's starting noise for the seed (to
                 tell a noise mismatch from a sampling one; the test does not read it)
    CASE.x       F32 (2, 3, 8, 8): diffusers' final sample from it
and in the header's metadata CASE = the flags of `OUT sample` that draw the same.

The noise. Round 0 of `sample --seed S` (runtime/main/sample.c, batch 2) starts from
element 0.. of Philox stream (S, 0xFFFF) as normals, and every step from timestep t draws
its z in the graph (lua/ddpm/program.lua: ddpm.randn keyed by rng.seed = S, step t,
stream 3) from stream (S, t << 16 | 3). `philox_normal` below is runtime/philox.h's
contract written again in numpy (Philox4x32-10, ((w >> 8) + 1) * 2^-24 uniforms,
Box-Muller in float64 rounded once), checked against Random123's known answers. diffusers
gets the same z: DDIMScheduler.step as variance_noise, DDPMScheduler.step through its
module's randn_tensor.

Everything else is diffusers as shipped: DDPMScheduler and DDIMScheduler from the folder's
scheduler_config.json (DDIM with its defaults for the keys DDPM's config lacks:
set_alpha_to_one True), the timestep_spacing each case sets, UNet2DModel.from_pretrained,
float32 on one CPU thread.
"""
import json
import math
import os
import struct

import numpy as np
import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel
import diffusers.schedulers.scheduling_ddpm as ddpm_module

HERE = os.path.dirname(os.path.abspath(__file__))
PIPELINE = os.path.join(HERE, "import_pipeline")
SHAPE = (2, 3, 8, 8)
NOISE_STREAM = 0xFFFF   # runtime/main/sample.c: x_T
SAMPLE_STREAM = 3       # lua/ddpm/program.lua: STREAM_SAMPLE, the steps' z

# name: (sampler, steps, spacing, eta, seed). The scheduler config's own spacing is leading.
CASES = {
    "ddim_leading": ("ddim", 5, "leading", 0.0, 7),
    "ddpm_leading": ("ddpm", 4, "leading", None, 7),
    "ddim_trailing_eta1": ("ddim", 4, "trailing", 1.0, 11),
}

M0, M1, W0, W1 = 0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85
MASK = 0xFFFFFFFF


def philox4x32(ctr, key):
    """Philox4x32-10 of counters ctr (4, n) uint64 holding 32-bit words, key (k0, k1)."""
    c0, c1, c2, c3 = (np.asarray(w, dtype=np.uint64) for w in ctr)
    k0, k1 = key
    for r in range(10):
        if r:
            k0, k1 = (k0 + W0) & MASK, (k1 + W1) & MASK
        p0, p1 = np.uint64(M0) * c0, np.uint64(M1) * c2
        c0, c1, c2, c3 = ((p1 >> np.uint64(32)) ^ c1 ^ np.uint64(k0), p1 & np.uint64(MASK),
                          (p0 >> np.uint64(32)) ^ c3 ^ np.uint64(k1), p0 & np.uint64(MASK))
    return c0, c1, c2, c3


def check_known_answers():
    """Random123's vectors for philox4x32_R(10), as tests/test_philox.c has them."""
    vectors = [((0, 0, 0, 0), (0, 0), (0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8)),
               ((MASK,) * 4, (MASK, MASK), (0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd)),
               ((0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344), (0xa4093822, 0x299f31d0),
                (0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1))]
    for ctr, key, want in vectors:
        got = tuple(int(w[0]) for w in philox4x32([[c] for c in ctr], key))
        assert got == want, f"philox4x32{ctr, key} = {got}, not {want}"


def uniform(w):
    """((w >> 8) + 1) * 2^-24, exact, as float64."""
    return ((w >> np.uint64(8)) + np.uint64(1)).astype(np.float64) * 2.0 ** -24


def philox_normal(seed, stream, n):
    """Elements 0 .. n-1 of the normal stream (seed, stream) as float32."""
    q = np.arange((n + 3) // 4, dtype=np.uint64)
    ctr = (q & np.uint64(MASK), q >> np.uint64(32), np.full_like(q, stream & MASK),
           np.full_like(q, stream >> 32))
    w = philox4x32(ctr, (seed & MASK, seed >> 32))
    out = np.empty((len(q), 4), dtype=np.float32)
    for lane, (a, b) in enumerate([(w[0], w[1]), (w[2], w[3])]):
        r = np.sqrt(-2.0 * np.log(uniform(a)))
        angle = 2 * math.pi * uniform(b)
        out[:, 2 * lane] = (r * np.cos(angle)).astype(np.float32)
        out[:, 2 * lane + 1] = (r * np.sin(angle)).astype(np.float32)
    return out.reshape(-1)[:n]


def randn(seed, stream):
    return torch.from_numpy(philox_normal(seed, stream, math.prod(SHAPE)).reshape(SHAPE))


def scheduler(sampler, spacing):
    cls = DDIMScheduler if sampler == "ddim" else DDPMScheduler
    config = cls.load_config(os.path.join(PIPELINE, "scheduler"))
    return cls.from_config(config, timestep_spacing=spacing)


def draw(unet, sampler, steps, spacing, eta, seed):
    """diffusers' sampling loop from the executable's x_T; (x_T, the final sample)."""
    s = scheduler(sampler, spacing)
    s.set_timesteps(steps)
    noise = randn(seed, NOISE_STREAM)
    x = noise
    for t in s.timesteps:
        z = randn(seed, int(t) << 16 | SAMPLE_STREAM)
        with torch.no_grad():
            out = unet(x, t).sample
        if sampler == "ddim":
            x = s.step(out, t, x, eta=eta, variance_noise=z).prev_sample
        else:
            ddpm_module.randn_tensor = lambda shape, z=z, **kw: z.reshape(shape)
            x = s.step(out, t, x).prev_sample
    return noise, x


def flags(sampler, steps, spacing, eta, seed):
    words = [f"--sampler {sampler}", f"--steps {steps}", f"--spacing {spacing}", "--no-clip"]
    if eta is not None:
        words.append(f"--eta {eta:g}")
    return " ".join(words + [f"--seed {seed}"])


def save(path, tensors, meta):
    """A safetensors file of F32 tensors, written here so that the header (the metadata
    included) is in sorted order and the file byte-identical from one run to the next."""
    header, blobs, at = {"__metadata__": dict(sorted(meta.items()))}, [], 0
    for name in sorted(tensors):
        data = tensors[name].numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape),
                        "data_offsets": [at, at + len(data)]}
        blobs.append(data)
        at += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def main():
    torch.set_num_threads(1)
    check_known_answers()
    unet = UNet2DModel.from_pretrained(os.path.join(PIPELINE, "unet")).eval()
    tensors, meta = {}, {}
    for name, case in CASES.items():
        noise, x = draw(unet, *case)
        tensors[name + ".noise"] = noise.contiguous()
        tensors[name + ".x"] = x.contiguous()
        meta[name] = flags(*case)
        inside = float((x.abs() <= 1).float().mean())
        print(f"{name}: {meta[name]}: |x| max {float(x.abs().max()):.3f}, "
              f"{100 * inside:.0f} % within [-1, 1]")
    path = os.path.join(HERE, "import_samples.safetensors")
    save(path, tensors, meta)
    os.chmod(path, 0o644)
    print(f"wrote {path}: {os.path.getsize(path):,} bytes")


if __name__ == "__main__":
    main()
