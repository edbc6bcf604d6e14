#!/usr/bin/env python3
"""Goldens for the train-step parity test (tests/test_train_parity.c).

Run by hand, CPU, float32, deterministic:

    /opt/ddpmc-venv/bin/python tests/golden/make_train_golden.py

The model is tests/models/train_parity.lua's: a diffusers UNet2DModel, 8x8x3,
block_out_channels (4, 8), one layer per block, DownBlock2D + AttnDownBlock2D /
AttnUpBlock2D + UpBlock2D, 2 groups, one attention head, dropout 0. Batch 2.

Files written next to this script:

  train_weights.safetensors  the initial parameters (diffusers names, F32)
  train_io.safetensors       x0 (B,C,H,W) F32 in [-1, 1]; t (3,B) I32; noise (3,B,C,H,W) F32:
                             row s is the t / noise of Adam step s+1 (x0 is the same each step)
  train_grads.safetensors    loss1 () and grad.<name> for every parameter: the step-1 loss
                             and its gradients at the initial weights (t[0], noise[0])
  train_after3.safetensors   after 3 steps: <name> (the weights), ema.<name>,
                             optim.exp_avg.<name>, optim.exp_avg_sq.<name>; and
                             loss (3,), grad_norm (3,) (before clipping), lr (3,) per step

The step (torch semantics, docs/semantics.md sections 4-5):
  betas = linspace(1e-4, 0.02, 1000) in float64; abar = cumprod(1 - betas) in float64;
  sqrt(abar), sqrt(1 - abar) in float64, then cast once to float32;
  x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise (float32);
  loss = F.mse_loss(model(x_t, t).sample, noise);
  loss.backward(); clip_grad_norm_(params, 1.5);
  torch.optim.Adam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8) with
  LambdaLR(lambda s: min((s + 1) / 2, 1)), i.e. lr_t = 1e-3 * min(t / warmup, 1) at the
  1-based Adam step t with warmup 2 (the formula of lua/ddpm/optim.lua);
  ema = 0.9 ema + 0.1 theta after every step, ema starting at the initial weights.

Checks the script makes of itself:
  - an independent re-implementation of the update (docs/semantics.md section 5 formulas, float64,
    from torch's float32 gradients) reproduces torch's weights and moments;
  - clipping triggers in at least one step and not in at least one other;
  - the same three steps in float64 (same data, float64 model) differ from the float32
    run by the amounts printed: torch's own float32 noise, the scale of error the C test
    can expect.
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import UNet2DModel
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))

CFG = dict(
    sample_size=8,
    in_channels=3,
    out_channels=3,
    block_out_channels=(4, 8),
    layers_per_block=1,
    down_block_types=("DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D"),
    norm_num_groups=2,
    norm_eps=1e-6,
    attention_head_dim=None,
    dropout=0.0,
    flip_sin_to_cos=False,
    freq_shift=1,
    downsample_padding=0,
    act_fn="silu",
    add_attention=True,
)
B = 2
T = 1000
STEPS = 3
TS = [[3, 987], [0, 500], [999, 250]]  # per step, per sample
LR, WARMUP, CLIP, EMA = 1e-3, 2, 1.5, 0.9
BETAS, EPS = (0.9, 0.999), 1e-8


def build():
    torch.manual_seed(0)
    return UNet2DModel(**CFG)


def perturb(model):
    """GroupNorm weight := 1 + 0.1*randn, every bias := 0.1*randn (sorted-name order),
    as make_unet_golden.py does."""
    gn_weights = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, torch.nn.GroupNorm)}
    g = torch.Generator().manual_seed(1234)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name in sorted(params):
            p = params[name]
            if name in gn_weights:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def schedule(dtype):
    betas = np.linspace(1e-4, 0.02, T, dtype=np.float64)
    abar = np.cumprod(1.0 - betas)
    assert abs(abar[-1] - 4.0358e-5) < 1e-8, abar[-1]
    a = torch.from_numpy(np.sqrt(abar)).to(torch.float32).to(dtype)
    s = torch.from_numpy(np.sqrt(1.0 - abar)).to(torch.float32).to(dtype)
    return a, s


def loss_of(model, x0, t, noise):
    a, s = schedule(x0.dtype)
    xt = a[t.long()].view(-1, 1, 1, 1) * x0 + s[t.long()].view(-1, 1, 1, 1) * noise
    return F.mse_loss(model(xt, t).sample, noise)


def train(model, x0, ts, noises):
    """Three steps with torch's Adam, clip_grad_norm_, LambdaLR warmup and EMA."""
    params = [p for _, p in model.named_parameters()]
    opt = torch.optim.Adam(params, lr=LR, betas=BETAS, eps=EPS)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / WARMUP, 1.0))
    ema = {n: p.detach().clone() for n, p in model.named_parameters()}
    losses, norms, lrs, grads = [], [], [], []
    for k in range(STEPS):
        opt.zero_grad(set_to_none=True)
        loss = loss_of(model, x0, ts[k], noises[k])
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, CLIP)
        grads.append({n: p.grad.detach().clone() for n, p in model.named_parameters()})
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        with torch.no_grad():
            for n, p in model.named_parameters():
                ema[n].mul_(EMA).add_(p, alpha=1 - EMA)
        losses.append(loss.item())
        norms.append(norm.item())
    return opt, ema, losses, norms, lrs, grads


def manual_adam(p0, grads, lrs):
    """docs/semantics.md section 5 in float64 from the (clipped) gradients torch used."""
    theta = {n: v.double().clone() for n, v in p0.items()}
    m = {n: torch.zeros_like(v) for n, v in theta.items()}
    v2 = {n: torch.zeros_like(v) for n, v in theta.items()}
    for k, g in enumerate(grads):
        t = k + 1
        for n in theta:
            gn = g[n].double()
            m[n] = BETAS[0] * m[n] + (1 - BETAS[0]) * gn
            v2[n] = BETAS[1] * v2[n] + (1 - BETAS[1]) * gn * gn
            denom = v2[n].sqrt() / math.sqrt(1 - BETAS[1] ** t) + EPS
            theta[n] = theta[n] - lrs[k] / (1 - BETAS[0] ** t) * m[n] / denom
    return theta, m, v2


def maxrel(a, b):
    """max over tensors of max|a - b| / max(max|b|, 1e-3)."""
    worst, at = 0.0, None
    for n in b:
        e = (a[n].double() - b[n].double()).abs().max().item() / max(b[n].double().abs().max().item(), 1e-3)
        if e > worst:
            worst, at = e, n
    return worst, at


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    print(f"torch {torch.__version__}, diffusers {__import__('diffusers').__version__}")

    model = build()
    perturb(model)
    model.train()  # dropout is 0: train and eval compute the same function
    names = [n for n, _ in model.named_parameters()]
    assert set(names) == set(model.state_dict()), "unexpected buffers"
    p0 = {n: p.detach().clone().contiguous() for n, p in model.named_parameters()}

    g = torch.Generator().manual_seed(4321)
    H, C = CFG["sample_size"], CFG["in_channels"]
    x0 = (torch.rand((B, C, H, H), generator=g, dtype=torch.float32) * 2 - 1).contiguous()
    ts = torch.tensor(TS, dtype=torch.int32)
    noises = torch.randn((STEPS, B, C, H, H), generator=g, dtype=torch.float32).contiguous()

    # --- step-1 loss and gradients at the initial weights ---------------------------------
    model.zero_grad(set_to_none=True)
    loss1 = loss_of(model, x0, ts[0], noises[0])
    loss1.backward()
    grads1 = {f"grad.{n}": p.grad.detach().clone().contiguous() for n, p in model.named_parameters()}
    grads1["loss1"] = loss1.detach().clone().reshape(())
    model.zero_grad(set_to_none=True)

    # --- three training steps -------------------------------------------------------------
    opt, ema, losses, norms, lrs, grads = train(model, x0, ts, noises)
    assert abs(losses[0] - loss1.item()) == 0.0
    after = {}
    by_param = {p: n for n, p in model.named_parameters()}
    for n, p in model.named_parameters():
        after[n] = p.detach().clone().contiguous()
        after[f"ema.{n}"] = ema[n].contiguous()
        st = opt.state[p]
        assert int(st["step"].item()) == STEPS
        after[f"optim.exp_avg.{n}"] = st["exp_avg"].detach().clone().contiguous()
        after[f"optim.exp_avg_sq.{n}"] = st["exp_avg_sq"].detach().clone().contiguous()
    assert len(by_param) == len(names)
    after["loss"] = torch.tensor(losses, dtype=torch.float32)
    after["grad_norm"] = torch.tensor(norms, dtype=torch.float32)
    after["lr"] = torch.tensor(lrs, dtype=torch.float32)

    # --- save -----------------------------------------------------------------------------
    files = {
        "train_weights": p0,
        "train_io": {"x0": x0, "t": ts.contiguous(), "noise": noises},
        "train_grads": grads1,
        "train_after3": after,
    }
    total = 0
    for stem, tensors in files.items():
        path = os.path.join(HERE, stem + ".safetensors")
        save_file(tensors, path)
        os.chmod(path, 0o644)  # safetensors creates files 0600
        sz = os.path.getsize(path)
        total += sz
        print(f"    tests/golden/{stem}.safetensors: {sz:,} bytes, {len(tensors)} tensors")
    assert total < 500_000, "goldens too large"

    # --- checks ---------------------------------------------------------------------------
    n_params = sum(p.numel() for p in p0.values())
    print(f"params {n_params:,} in {len(p0)} tensors")
    print(f"losses {losses}")
    print(f"grad norms (before clipping) {norms}; clip {CLIP}")
    print(f"lr per step {lrs}")
    assert lrs == [LR * min(t / WARMUP, 1.0) for t in range(1, STEPS + 1)]
    assert any(nv > CLIP for nv in norms), "clipping never triggers"
    assert any(nv <= CLIP for nv in norms), "clipping triggers in every step"

    # the files reload to the same run
    w2 = load_file(os.path.join(HERE, "train_weights.safetensors"))
    io2 = load_file(os.path.join(HERE, "train_io.safetensors"))
    m2 = UNet2DModel(**CFG)
    m2.load_state_dict(w2, strict=True)
    _, ema2, losses2, _, _, _ = train(m2, io2["x0"], io2["t"], io2["noise"])
    assert losses2 == losses, "reload changes the run"
    assert all(torch.equal(ema2[n], ema[n]) for n in names), "reload changes the run"

    # independent Adam from the same (clipped) gradients
    th, mm, vv = manual_adam(p0, grads, lrs)
    e_th = maxrel({n: after[n] for n in names}, th)
    e_m = maxrel({n: after[f"optim.exp_avg.{n}"] for n in names}, mm)
    e_v = maxrel({n: after[f"optim.exp_avg_sq.{n}"] for n in names}, vv)
    print(f"torch Adam vs docs/semantics.md formulas (float64): weights {e_th[0]:.2e} ({e_th[1]}), "
          f"exp_avg {e_m[0]:.2e}, exp_avg_sq {e_v[0]:.2e}  (relative to each tensor's max)")
    assert max(e_th[0], e_m[0], e_v[0]) < 1e-5, "torch's Adam is not the docs/semantics.md formula"

    # torch's own float32 noise: the same run in float64
    m64 = UNet2DModel(**CFG).double()
    m64.load_state_dict({n: v.double() for n, v in p0.items()}, strict=True)
    m64.zero_grad(set_to_none=True)
    l64 = loss_of(m64, x0.double(), ts[0], noises[0].double())
    l64.backward()
    g64 = {f"grad.{n}": p.grad.detach().clone() for n, p in m64.named_parameters()}
    e_g = maxrel({k: grads1[k] for k in g64}, g64)
    print(f"float32 vs float64 torch: loss1 {abs(loss1.item() - l64.item()):.2e}; "
          f"gradients {e_g[0]:.2e} ({e_g[1]})")
    opt64, ema64, losses64, norms64, _, _ = train(m64, x0.double(), ts, noises.double())
    for label, key, ref in (
        ("weights", "{}", {n: p for n, p in m64.named_parameters()}),
        ("ema", "ema.{}", ema64),
        ("exp_avg", "optim.exp_avg.{}", {n: opt64.state[p]["exp_avg"] for n, p in m64.named_parameters()}),
        ("exp_avg_sq", "optim.exp_avg_sq.{}", {n: opt64.state[p]["exp_avg_sq"] for n, p in m64.named_parameters()}),
    ):
        e = maxrel({n: after[key.format(n)] for n in names}, {n: ref[n].detach() for n in names})
        print(f"float32 vs float64 torch after {STEPS} steps: {label} {e[0]:.2e} ({e[1]})")
    print(f"float64 losses {losses64}, grad norms {norms64}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
