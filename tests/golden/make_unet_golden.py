#!/usr/bin/env python3
"""Generate golden files for the ddpmc U-Net: diffusers' UNet2DModel on CPU, float32.

Run by hand (needs torch, diffusers, safetensors, numpy):

    /opt/ddpmc-venv/bin/python tests/golden/make_unet_golden.py

Writes, for each config CFG in ("attn", "levels"), next to this script:
    unet_CFG_weights.safetensors  state_dict with diffusers names, F32, contiguous
    unet_CFG_io.safetensors       x F32 (B,C,H,W), t I32 (B,), eps F32 = model(x, t).sample
    unet_CFG_config.json          diffusers' config dict (+ "batch", "timesteps")
    unet_CFG_trace.safetensors    intermediate activations, for debugging (see README.md)
    unet_CFG_params.txt           "name shape" per parameter, sorted by name
and unet_cifar10_params.txt (the google/ddpm-cifar10-32 layout, built from config, no weights saved).

Everything is deterministic: torch.manual_seed(0) before building each model, default init,
then every GroupNorm weight := 1 + 0.1*randn and every bias := 0.1*randn (so that GroupNorm
affine terms and biases are really tested), drawn in sorted-name order from a generator
seeded 1234. Inputs come from a generator seeded 4321. One CPU thread.

The script also runs an independent numpy float64 re-implementation of the forward pass,
written from the description in README.md (not from diffusers), and fails if it disagrees
with diffusers: this checks the README, not only the files.
"""
import json
import math
import os
import sys

import numpy as np
import torch
from diffusers import UNet2DModel
from safetensors.torch import save_file, load_file

HERE = os.path.dirname(os.path.abspath(__file__))

COMMON = dict(
    flip_sin_to_cos=False,
    freq_shift=1,
    norm_eps=1e-6,
    downsample_padding=0,
    act_fn="silu",
    resnet_time_scale_shift="default",
    time_embedding_type="positional",
    center_input_sample=False,
    dropout=0.0,
    add_attention=True,
    downsample_type="conv",
    upsample_type="conv",
    mid_block_scale_factor=1,
)

CONFIGS = {
    "attn": dict(
        COMMON,
        sample_size=8,
        in_channels=3,
        out_channels=3,
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
        attention_head_dim=None,
    ),
    "levels": dict(
        COMMON,
        sample_size=12,
        in_channels=1,
        out_channels=1,
        block_out_channels=(8, 16, 24),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
        attention_head_dim=8,
    ),
}
RUNS = {"attn": (2, [10, 987]), "levels": (3, [0, 500, 999])}

CIFAR10 = dict(
    COMMON,
    sample_size=32,
    in_channels=3,
    out_channels=3,
    block_out_channels=(128, 256, 256, 256),
    layers_per_block=2,
    down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    norm_num_groups=32,
    attention_head_dim=None,
    dropout=0.1,
)
CIFAR10_EXPECTED = 35_746_307


def build(cfg):
    torch.manual_seed(0)
    return UNet2DModel(**cfg)


def perturb(model):
    """GroupNorm weight := 1 + 0.1*randn, every bias := 0.1*randn (sorted-name order)."""
    gn_weights = {
        f"{mname}.weight"
        for mname, m in model.named_modules()
        if isinstance(m, torch.nn.GroupNorm)
    }
    g = torch.Generator().manual_seed(1234)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name in sorted(params):
            p = params[name]
            if name in gn_weights:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def count(model):
    return sum(p.numel() for p in model.parameters())


def param_lines(model):
    sd = model.state_dict()
    return [f"{k} {list(sd[k].shape)}" for k in sorted(sd)]


# ---------------------------------------------------------------------------------------
# Independent numpy (float64) reference, written from README.md's description.
# ---------------------------------------------------------------------------------------
def np_silu(x):
    return x / (1.0 + np.exp(-x))


def np_groupnorm(x, w, b, groups, eps):
    B, C = x.shape[:2]
    xs = x.reshape(B, groups, -1)
    mean = xs.mean(axis=2, keepdims=True)
    var = xs.var(axis=2, keepdims=True)  # biased
    xs = (xs - mean) / np.sqrt(var + eps)
    x = xs.reshape(x.shape)
    shape = (1, C) + (1,) * (x.ndim - 2)
    return x * w.reshape(shape) + b.reshape(shape)


def np_conv2d(x, w, b, stride=1, pad=1):
    # x (B,Ci,H,W), w (Co,Ci,k,k); symmetric zero padding `pad`
    B, Ci, H, W = x.shape
    Co, _, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    Ho = (H + 2 * pad - k) // stride + 1
    Wo = (W + 2 * pad - k) // stride + 1
    out = np.zeros((B, Co, Ho, Wo))
    for dy in range(k):
        for dx in range(k):
            patch = xp[:, :, dy : dy + stride * (Ho - 1) + 1 : stride, dx : dx + stride * (Wo - 1) + 1 : stride]
            out += np.einsum("bchw,oc->bohw", patch, w[:, :, dy, dx])
    return out + b.reshape(1, Co, 1, 1)


def np_linear(x, w, b):
    return x @ w.T + b


def np_reference(P, cfg, x, t):
    """P: dict name -> float64 array (diffusers names). Returns eps (float64)."""
    G, eps_n = cfg["norm_num_groups"], cfg["norm_eps"]
    boc = list(cfg["block_out_channels"])
    L, lpb = len(boc), cfg["layers_per_block"]
    ahd = cfg["attention_head_dim"]

    def resnet(p, h, temb):
        y = np_conv2d(np_silu(np_groupnorm(h, P[p + "norm1.weight"], P[p + "norm1.bias"], G, eps_n)),
                      P[p + "conv1.weight"], P[p + "conv1.bias"])
        y = y + np_linear(np_silu(temb), P[p + "time_emb_proj.weight"], P[p + "time_emb_proj.bias"])[:, :, None, None]
        y = np_conv2d(np_silu(np_groupnorm(y, P[p + "norm2.weight"], P[p + "norm2.bias"], G, eps_n)),
                      P[p + "conv2.weight"], P[p + "conv2.bias"])
        skip = h
        if p + "conv_shortcut.weight" in P:
            skip = np_conv2d(h, P[p + "conv_shortcut.weight"], P[p + "conv_shortcut.bias"], pad=0)
        return (skip + y) / 1.0  # output_scale_factor = 1

    def attention(p, h):
        B, C, H, W = h.shape
        d = ahd if ahd is not None else C
        heads = C // d
        y = np_groupnorm(h, P[p + "group_norm.weight"], P[p + "group_norm.bias"], G, eps_n)
        y = y.reshape(B, C, H * W).transpose(0, 2, 1)  # (B, L, C)
        q = np_linear(y, P[p + "to_q.weight"], P[p + "to_q.bias"]).reshape(B, -1, heads, d).transpose(0, 2, 1, 3)
        k = np_linear(y, P[p + "to_k.weight"], P[p + "to_k.bias"]).reshape(B, -1, heads, d).transpose(0, 2, 1, 3)
        v = np_linear(y, P[p + "to_v.weight"], P[p + "to_v.bias"]).reshape(B, -1, heads, d).transpose(0, 2, 1, 3)
        s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d)  # (B, heads, Lq, Lk)
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        s = s / s.sum(axis=-1, keepdims=True)
        o = (s @ v).transpose(0, 2, 1, 3).reshape(B, -1, C)  # heads concatenated on channels
        o = np_linear(o, P[p + "to_out.0.weight"], P[p + "to_out.0.bias"])
        o = o.transpose(0, 2, 1).reshape(B, C, H, W)
        return (o + h) / 1.0  # residual, rescale_output_factor = 1

    def downsample(p, h):
        h = np.pad(h, ((0, 0), (0, 0), (0, 1), (0, 1)))  # right and bottom
        return np_conv2d(h, P[p + "conv.weight"], P[p + "conv.bias"], stride=2, pad=0)

    def upsample(p, h):
        h = h.repeat(2, axis=2).repeat(2, axis=3)  # nearest
        return np_conv2d(h, P[p + "conv.weight"], P[p + "conv.bias"])

    # time
    half = boc[0] // 2
    freqs = np.exp(-math.log(10000.0) * np.arange(half) / (half - cfg["freq_shift"]))
    arg = t.astype(np.float64)[:, None] * freqs[None, :]
    temb = np.concatenate([np.sin(arg), np.cos(arg)], axis=1)
    temb = np_linear(temb, P["time_embedding.linear_1.weight"], P["time_embedding.linear_1.bias"])
    temb = np_linear(np_silu(temb), P["time_embedding.linear_2.weight"], P["time_embedding.linear_2.bias"])

    h = np_conv2d(x, P["conv_in.weight"], P["conv_in.bias"])
    skips = [h]
    for i in range(L):
        attn = cfg["down_block_types"][i] == "AttnDownBlock2D"
        for j in range(lpb):
            h = resnet(f"down_blocks.{i}.resnets.{j}.", h, temb)
            if attn:
                h = attention(f"down_blocks.{i}.attentions.{j}.", h)
            skips.append(h)
        if i < L - 1:
            h = downsample(f"down_blocks.{i}.downsamplers.0.", h)
            skips.append(h)
    h = resnet("mid_block.resnets.0.", h, temb)
    h = attention("mid_block.attentions.0.", h)
    h = resnet("mid_block.resnets.1.", h, temb)
    for i in range(L):
        attn = cfg["up_block_types"][i] == "AttnUpBlock2D"
        for j in range(lpb + 1):
            h = np.concatenate([h, skips.pop()], axis=1)
            h = resnet(f"up_blocks.{i}.resnets.{j}.", h, temb)
            if attn:
                h = attention(f"up_blocks.{i}.attentions.{j}.", h)
        if i < L - 1:
            h = upsample(f"up_blocks.{i}.upsamplers.0.", h)
    assert not skips
    h = np_silu(np_groupnorm(h, P["conv_norm_out.weight"], P["conv_norm_out.bias"], G, eps_n))
    return np_conv2d(h, P["conv_out.weight"], P["conv_out.bias"])


def float32_time_proj(t, dim, shift):
    """The float32 op sequence of diffusers' get_timestep_embedding (README §1).

    exponent and arg are float32 ops; exp, sin, cos are evaluated in float64 and rounded
    (torch's float32 exp is correctly rounded here; its sin/cos are within 1 ulp).
    """
    half = dim // 2
    c = np.float32(-math.log(10000.0))
    exponent = (c * np.arange(half, dtype=np.float32)) / np.float32(half - shift)
    freqs = np.exp(exponent.astype(np.float64)).astype(np.float32)
    arg = (t.astype(np.float32)[:, None] * freqs[None, :]).astype(np.float64)
    return np.concatenate([np.sin(arg), np.cos(arg)], axis=1).astype(np.float32)


# ---------------------------------------------------------------------------------------
def make(name):
    cfg = CONFIGS[name]
    batch, ts = RUNS[name]
    model = build(cfg)
    perturb(model)
    model.eval()

    g = torch.Generator().manual_seed(4321)
    H = cfg["sample_size"]
    x = torch.randn((batch, cfg["in_channels"], H, H), generator=g, dtype=torch.float32)
    t = torch.tensor(ts, dtype=torch.int32)

    # record intermediates with forward hooks
    trace = {}
    hooked = ["time_proj", "time_embedding", "conv_in", "mid_block", "conv_norm_out", "conv_act"]
    hooked += [f"down_blocks.{i}" for i in range(len(model.down_blocks))]
    hooked += [f"up_blocks.{i}" for i in range(len(model.up_blocks))]
    mods = dict(model.named_modules())
    handles = []
    for mn in hooked:
        def hook(mod, inp, out, mn=mn):
            if isinstance(out, tuple):  # down blocks: (hidden, res_samples); hidden == res_samples[-1]
                for k, r in enumerate(out[1]):
                    trace[f"{mn}.res_samples.{k}"] = r
            else:
                trace[mn] = out
        handles.append(mods[mn].register_forward_hook(hook))

    with torch.no_grad():
        eps = model(x, t.long()).sample
    for hd in handles:
        hd.remove()

    # same result with int32 timesteps
    with torch.no_grad():
        eps32 = model(x, t).sample
    assert torch.equal(eps, eps32)

    sd = {k: v.detach().to(torch.float32).contiguous().clone() for k, v in model.state_dict().items()}
    assert set(sd) == {n for n, _ in model.named_parameters()}, "unexpected buffers"

    out = os.path.join(HERE, f"unet_{name}")
    save_file(sd, out + "_weights.safetensors")
    save_file({"x": x.contiguous(), "t": t.contiguous(), "eps": eps.contiguous()}, out + "_io.safetensors")
    save_file({k: v.detach().float().contiguous().clone() for k, v in trace.items()}, out + "_trace.safetensors")
    conf = json.loads(model.to_json_string())
    conf["batch"] = batch
    conf["timesteps"] = ts
    with open(out + "_config.json", "w") as f:
        json.dump(conf, f, indent=2, sort_keys=True)
        f.write("\n")
    with open(out + "_params.txt", "w") as f:
        f.write("\n".join(param_lines(model)) + "\n")
    for suffix in ("_weights", "_io", "_trace"):
        os.chmod(out + suffix + ".safetensors", 0o644)  # safetensors creates files 0600

    # --- checks -------------------------------------------------------------------------
    # round trip through the files
    sd2 = load_file(out + "_weights.safetensors")
    io2 = load_file(out + "_io.safetensors")
    model2 = UNet2DModel(**cfg)
    model2.load_state_dict(sd2, strict=True)
    model2.eval()
    with torch.no_grad():
        eps2 = model2(io2["x"], io2["t"]).sample
    assert torch.equal(eps2, io2["eps"]), "reload mismatch"

    # float32 time projection formula (bit-exact expectation)
    tp = float32_time_proj(t.numpy(), cfg["block_out_channels"][0], cfg["freq_shift"])
    tp_err = np.abs(tp - trace["time_proj"].numpy()).max()

    # independent numpy float64 reference
    P = {k: v.double().numpy() for k, v in sd.items()}
    ref = np_reference(P, cfg, x.double().numpy(), t.numpy())
    err = np.abs(ref - eps.double().numpy()).max()
    scale = np.abs(ref).max()

    n = count(model)
    print(f"[{name}] params {n:,}  eps shape {tuple(eps.shape)}  |eps|max {eps.abs().max():.4f}  "
          f"eps std {eps.std():.4f}")
    print(f"[{name}] numpy-f64 reference vs diffusers: max abs err {err:.3e} (|ref|max {scale:.3f}); "
          f"float32 time_proj emulation max err {tp_err:.3e}")
    assert err < 1e-4 * max(1.0, scale), "numpy reference disagrees with diffusers"
    assert tp_err <= 2.0 ** -23, "float32 time_proj emulation is off by more than 1 ulp"
    for suffix in ("_weights.safetensors", "_io.safetensors", "_trace.safetensors", "_config.json", "_params.txt"):
        sz = os.path.getsize(out + suffix)
        print(f"    {os.path.relpath(out + suffix, os.path.dirname(os.path.dirname(HERE)))}: {sz:,} bytes")
        assert sz < 1_000_000, "golden file too large"
    return n


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    print(f"torch {torch.__version__}, diffusers {__import__('diffusers').__version__}")
    counts = {name: make(name) for name in CONFIGS}

    cifar = build(CIFAR10)
    n = count(cifar)
    counts["cifar10"] = n
    with open(os.path.join(HERE, "unet_cifar10_params.txt"), "w") as f:
        f.write("\n".join(param_lines(cifar)) + "\n")
    print(f"[cifar10] params {n:,} (docs/semantics.md: {CIFAR10_EXPECTED:,}) "
          f"{'OK' if n == CIFAR10_EXPECTED else 'MISMATCH'}")
    assert n == CIFAR10_EXPECTED
    print("parameter counts:", json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
