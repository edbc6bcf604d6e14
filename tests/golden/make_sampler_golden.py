#!/usr/bin/env python3
"""Golden files for the sampler steps: diffusers' DDPMScheduler.step and
DDIMScheduler.step, run by diffusers itself, for every prediction type, both
clip settings, both DDPM variances and DDIM with eta 0 and 0.5, on steps
t -> s taken from the timestep sequences set_timesteps makes for several
step counts and spacings. tests/test_samplers.c compares ddpmc's ddpm_step
and ddim_step entries (lua/ddpm/diffusion.lua) with them, and the host's
timestep sequences (runtime/timesteps.c) with set_timesteps'.

diffusers computes its schedule in float32 (1 - alphas_cumprod cancels near
t = 0), so each step runs twice: as diffusers ships it, and with the
scheduler's tables replaced by float64 ones on float64 inputs. The float64
run is the golden value (`want`); the float32 run's distance from it is
printed, for the record.

    /opt/ddpmc-venv/bin/python tests/golden/make_sampler_golden.py

writes tests/golden/samplers.safetensors (deterministic), with
  x, out, z            F32 (B, 1, 2, 3): the sample, the model output, the noise
  CASE.t, CASE.s       I32 (B): each sample's step t -> s (s = -1: the last)
  CASE.eta, CASE.clip  F32 (): DDIM's eta (0 for DDPM); the clip range (inf: off)
  CASE.want            F32 (B, 1, 2, 3): diffusers' prev_sample (float64 run)
  CASE.mag             F32 (B, 1, 2, 3): the largest term the step sums
  seq.SAMPLER.SPACING.K      I32 (K): set_timesteps' timesteps
  prev.SAMPLER.SPACING.K     I32 (K): the s of each (diffusers' previous step)
CASE = SAMPLER.PREDICTION.CLIP.PAIRS, SAMPLER one of ddpm_small, ddpm_large,
ddim_eta0, ddim_eta05; CLIP one of clip1, clip05, noclip; PAIRS a or b.
"""
import math
import os

import numpy as np
import torch
from safetensors.torch import save_file
from diffusers import DDIMScheduler, DDPMScheduler
import diffusers.schedulers.scheduling_ddpm as ddpm_module

HERE = os.path.dirname(os.path.abspath(__file__))
T = 1000
B, SHAPE = 4, (4, 1, 2, 3)
PREDICTIONS = ["epsilon", "v_prediction", "sample"]
CLIPS = {"clip1": 1.0, "clip05": 0.5, "noclip": None}
SAMPLERS = {
    "ddpm_small": ("ddpm", "fixed_small", 0.0),
    "ddpm_large": ("ddpm", "fixed_large", 0.0),
    "ddim_eta0": ("ddim", None, 0.0),
    "ddim_eta05": ("ddim", None, 0.5),
}
# Step counts and spacings whose sequences are stored and stepped through.
SEQUENCES = [("leading", 1000), ("leading", 50), ("trailing", 30), ("linspace", 7),
             ("trailing", 1000), ("leading", 7), ("linspace", 50), ("trailing", 3)]
# Each sample of a case takes one step of one sequence: (spacing, K, index).
PAIRS = {
    "a": [("leading", 1000, 0), ("leading", 50, 25), ("trailing", 30, 5), ("linspace", 7, 6)],
    "b": [("leading", 1000, 998), ("leading", 1000, 999), ("trailing", 30, 29), ("leading", 7, 1)],
}


def make_scheduler(sampler, variance, prediction, clip, spacing, k):
    common = dict(num_train_timesteps=T, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                  prediction_type=prediction, clip_sample=clip is not None,
                  clip_sample_range=clip if clip is not None else 1.0, timestep_spacing=spacing)
    if sampler == "ddpm":
        s = DDPMScheduler(variance_type=variance, **common)
    else:
        s = DDIMScheduler(set_alpha_to_one=True, **common)
    s.set_timesteps(k)
    return s


def to_float64(s):
    """The scheduler's tables in float64, from float64 betas."""
    betas = torch.from_numpy(np.linspace(1e-4, 0.02, T, dtype=np.float64))
    s.betas = betas
    s.alphas = 1.0 - betas
    s.alphas_cumprod = torch.cumprod(s.alphas, dim=0)
    s.one = torch.tensor(1.0, dtype=torch.float64)
    if hasattr(s, "final_alpha_cumprod"):
        s.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)


def prev_of(sampler, s, t):
    if sampler == "ddpm":
        return int(s.previous_timestep(t))
    return t - T // s.num_inference_steps


def step(sampler, s, out, t, x, z, eta):
    """One step of scheduler s; z is the step's noise."""
    if sampler == "ddpm":
        ddpm_module.randn_tensor = lambda shape, **kw: z.reshape(shape)
        return s.step(out, t, x).prev_sample
    return s.step(out, t, x, eta=eta, variance_noise=z).prev_sample


def magnitude(sampler, variance, prediction, x, out, z, t, sp, eta):
    """The largest term a step t -> sp sums, per element (float64)."""
    ab = np.cumprod(1 - np.linspace(1e-4, 0.02, T))
    at, as_ = ab[t], (ab[sp] if sp >= 0 else 1.0)
    bt, bs = 1 - at, 1 - as_
    ax, ao, az = np.abs(x), np.abs(out), np.abs(z)
    m0 = {"epsilon": (ax + math.sqrt(bt) * ao) / math.sqrt(at),
          "v_prediction": math.sqrt(at) * ax + math.sqrt(bt) * ao,
          "sample": ao}[prediction]
    me = {"epsilon": ao, "v_prediction": math.sqrt(at) * ao + math.sqrt(bt) * ax,
          "sample": (ax + math.sqrt(at) * ao) / math.sqrt(bt)}[prediction]
    beta = 1 - at / as_
    if sampler == "ddpm":
        var = beta if variance == "fixed_large" else bs / bt * beta
        sigma = math.sqrt(var) if t > 0 else 0.0
        return np.maximum.reduce([math.sqrt(as_) * beta / bt * m0,
                                  math.sqrt(at / as_) * bs / bt * ax, sigma * az])
    sigma = eta * math.sqrt(bs / bt * beta)
    return np.maximum.reduce([math.sqrt(as_) * m0, math.sqrt(max(bs - sigma ** 2, 0)) * me,
                              sigma * az])


def main():
    g = torch.Generator().manual_seed(2024)
    x = (1.5 * torch.randn(SHAPE, generator=g)).float()
    out = (1.2 * torch.randn(SHAPE, generator=g)).float()
    z = torch.randn(SHAPE, generator=g).float()
    tensors = {"x": x, "out": out, "z": z}
    worst32 = 0.0
    for sname, (sampler, variance, eta) in SAMPLERS.items():
        for spacing, k in SEQUENCES:
            s = make_scheduler(sampler, variance, "epsilon", None, spacing, k)
            ts = [int(t) for t in s.timesteps]
            key = f"{sampler}.{spacing}.{k}"
            tensors["seq." + key] = torch.tensor(ts, dtype=torch.int32)
            tensors["prev." + key] = torch.tensor([prev_of(sampler, s, t) for t in ts],
                                                  dtype=torch.int32)
        for prediction in PREDICTIONS:
            for cname, clip in CLIPS.items():
                for pname, pairs in PAIRS.items():
                    case = f"{sname}.{prediction}.{cname}.{pname}"
                    want = torch.empty(SHAPE, dtype=torch.float64)
                    mag = np.empty(SHAPE)
                    tt, ss = [], []
                    for b, (spacing, k, i) in enumerate(pairs):
                        s32 = make_scheduler(sampler, variance, prediction, clip, spacing, k)
                        s64 = make_scheduler(sampler, variance, prediction, clip, spacing, k)
                        to_float64(s64)
                        t = int(s32.timesteps[i])
                        sp = prev_of(sampler, s32, t)
                        tt.append(t)
                        ss.append(max(sp, -1))
                        xb, ob, zb = x[b:b + 1], out[b:b + 1], z[b:b + 1]
                        w64 = step(sampler, s64, ob.double(), t, xb.double(), zb.double(), eta)
                        w32 = step(sampler, s32, ob, t, xb, zb, eta)
                        want[b] = w64[0]
                        mag[b] = magnitude(sampler, variance, prediction, xb.numpy().astype(np.float64),
                                           ob.numpy().astype(np.float64), zb.numpy().astype(np.float64),
                                           t, sp, eta)[0]
                        worst32 = max(worst32, float((w32.double() - w64).abs().max()))
                    tensors[case + ".t"] = torch.tensor(tt, dtype=torch.int32)
                    tensors[case + ".s"] = torch.tensor(ss, dtype=torch.int32)
                    tensors[case + ".eta"] = torch.tensor(eta, dtype=torch.float32)
                    tensors[case + ".clip"] = torch.tensor(clip if clip is not None else math.inf,
                                                           dtype=torch.float32)
                    tensors[case + ".want"] = want.float()
                    tensors[case + ".mag"] = torch.from_numpy(mag).float()
    path = os.path.join(HERE, "samplers.safetensors")
    save_file({k: v.contiguous() for k, v in sorted(tensors.items())}, path)
    os.chmod(path, 0o644)
    print(f"tests/golden/samplers.safetensors: {os.path.getsize(path):,} bytes, "
          f"{len(tensors)} tensors")
    print(f"diffusers float32 against float64: largest difference {worst32:.3g}")


if __name__ == "__main__":
    main()
