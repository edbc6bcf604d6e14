#!/opt/ddpmc-venv/bin/python
"""PyTorch eager baseline (CPU or CUDA) for the ddpmc train-step benchmark.

One DDPM train step of diffusers' UNet2DModel configured exactly as a ddpmc
model script, with the same step as lua/ddpm/program.lua + lua/ddpm/optim.lua:

  t ~ U{0..999}, eps ~ N(0, I), x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps
  (linear betas 1e-4..0.02 computed in float64), loss = MSE(eps_theta, eps),
  backward, clip_grad_norm_(1.0), Adam(lr 2e-4, betas (0.9, 0.999), eps 1e-8)
  with lr * min(step / warmup, 1), then EMA 0.9999 of every parameter.

Models (--model):
  unet          models/unet.lua: 28x28x1, channels 64/128/128, two res blocks
                per level, one-head attention at 7x7 and in the mid block,
                dropout 0.1 (6,469,889 parameters)
  ddpm_cifar10  models/ddpm_cifar10.lua: Ho et al.'s CIFAR-10 model, 32x32x3,
                channels 128/256/256/256, attention at 16x16 (35,746,307)
Both with DDPM's norm_eps/flip_sin_to_cos/freq_shift/downsample_padding.

The network is diffusers' UNet2DModel when diffusers imports (--impl auto or
diffusers); otherwise (--impl auto or builtin) a copy of the same network in
plain torch below (BuiltinUNet2D), with diffusers' parameter names and the
same operations: `--check-builtin` loads diffusers' weights into it and
compares the two forwards (needs diffusers).

Precision (--amp): none = fp32; bf16 = torch.autocast(bfloat16) around the
forward and the loss (no loss scaling needed); fp16 = autocast(float16) with
torch.amp.GradScaler (unscaled before clipping). ddpmc's precision=bf16 is
the same idea: matmuls and convolutions in bf16, everything else f32.

Data: --data auto (Fashion-MNIST from /usr/share/datasets/fashion-mnist for
unet when present, else random), random (uniform in [-1, 1]), fashion-mnist,
or a path: an IDX image file (gzipped or raw) or a CIFAR-10 binary batch
(*.bin) or a folder of data_batch_*.bin; a random batch per step. On CUDA the
images live on the GPU.

Timing: --warmup-steps untimed steps, then --steps timed steps, each step
between torch.cuda.synchronize() calls on CUDA. Prints one JSON line:
images_per_s = batch * steps / (time of the timed steps); step_s is the mean
timed step, step_s_median the median.

  bench/torch_train.py --batch 64 --threads 2 --steps 10 --warmup-steps 2
  python3 bench/torch_train.py --device cuda --model ddpm_cifar10 --batch 128 --amp bf16
"""
import argparse
import contextlib
import gzip
import json
import math
import os
import resource
import statistics
import sys
import time

COMMON = dict(
    layers_per_block=2, attention_head_dim=None, dropout=0.1,
    norm_eps=1e-6, flip_sin_to_cos=False, freq_shift=1, downsample_padding=0,
    norm_num_groups=32, act_fn="silu", resnet_time_scale_shift="default",
    time_embedding_type="positional", add_attention=True,
)
MODELS = {
    # models/unet.lua
    "unet": dict(CONFIG=dict(
        sample_size=28, in_channels=1, out_channels=1,
        block_out_channels=(64, 128, 128),
        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"), **COMMON),
        params=6469889, image=(1, 28, 28)),
    # models/unet_small.lua: unet at a quarter of its width, one res block per level
    "unet_small": dict(CONFIG=dict(
        sample_size=28, in_channels=1, out_channels=1,
        block_out_channels=(32, 64, 64),
        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        **dict(COMMON, layers_per_block=1, norm_num_groups=16)),
        params=1112801, image=(1, 28, 28)),
    # models/ddpm_cifar10.lua (google/ddpm-cifar10-32)
    "ddpm_cifar10": dict(CONFIG=dict(
        sample_size=32, in_channels=3, out_channels=3,
        block_out_channels=(128, 256, 256, 256),
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), **COMMON),
        params=35746307, image=(3, 32, 32)),
}
CONFIG = MODELS["unet"]["CONFIG"]          # kept for scripts that import it
PARAMS_EXPECTED = MODELS["unet"]["params"]
FASHION = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=sorted(MODELS), default="unet")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--amp", choices=["none", "bf16", "fp16"], default="none",
                   help="autocast dtype (fp16 adds a GradScaler); none = fp32")
    p.add_argument("--impl", choices=["auto", "diffusers", "builtin"], default="auto",
                   help="diffusers' UNet2DModel, or the plain-torch copy (auto: diffusers if it imports)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--warmup-steps", type=int, default=2, help="untimed steps first")
    p.add_argument("--data", default="auto",
                   help="auto, fashion-mnist, random, or a path (IDX file, CIFAR-10 .bin or folder)")
    p.add_argument("--lr-warmup", type=int, default=5000, help="Adam lr warmup steps (DDPM: 5000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--channels-last", action="store_true",
                   help="channels_last memory format (not the default a user gets)")
    p.add_argument("--count-flops", action="store_true",
                   help="also count one step's FLOPs with torch.utils.flop_counter "
                        "(convolutions and matmuls only; one extra, untimed step)")
    p.add_argument("--check-builtin", action="store_true",
                   help="compare BuiltinUNet2D with diffusers' UNet2DModel (same weights) and exit")
    p.add_argument("--no-tf32", action="store_true",
                   help="CUDA: strict fp32 convolutions and matmuls (cuDNN's default uses TF32 "
                        "tensor cores for fp32 convolutions)")
    p.add_argument("--cudnn-benchmark", action="store_true",
                   help="CUDA: torch.backends.cudnn.benchmark = True (autotuned convolutions)")
    p.add_argument("--sweep", metavar="MODEL:AMP[:notf32],...",
                   help="run several configurations in this one process (one torch import), "
                        "e.g. unet:none,unet:none:notf32,ddpm_cifar10:bf16; one JSON line each, as each ends "
                        "(a failed one prints {\"error\": ...} and the rest still run)")
    p.add_argument("--verbose", action="store_true", help="one line per step on stderr")
    return p.parse_args()


# --- data ----------------------------------------------------------------------

def load_idx(path):
    import numpy as np
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    n, h, w = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, 1, h, w)


def load_cifar(path):
    import numpy as np
    files = [path]
    if os.path.isdir(path):
        files = sorted((os.path.join(path, f) for f in os.listdir(path)
                        if f.startswith("data_batch_") and (f.endswith(".bin") or f.endswith(".bin.gz"))),
                       key=lambda f: int("".join(c for c in os.path.basename(f) if c.isdigit()) or 0))
    parts = []
    for f in files:
        opener = gzip.open if f.endswith(".gz") else open
        with opener(f, "rb") as fh:
            rec = np.frombuffer(fh.read(), dtype=np.uint8).reshape(-1, 3073)
        parts.append(rec[:, 1:].reshape(-1, 3, 32, 32))
    return np.concatenate(parts)


def load_images(spec, image):
    """uint8 (N, C, H, W) array, or None for random data; and a name."""
    if spec == "auto":
        spec = "fashion-mnist" if image == (1, 28, 28) and os.path.exists(FASHION) else "random"
    if spec == "random":
        return None, "random"
    if spec == "fashion-mnist":
        spec = FASHION
    if os.path.isdir(spec) or spec.endswith(".bin") or spec.endswith(".bin.gz"):
        x = load_cifar(spec)
    else:
        x = load_idx(spec)
    if tuple(x.shape[1:]) != tuple(image):
        raise SystemExit("torch_train.py: %s holds %s images, the model takes %s"
                         % (spec, tuple(x.shape[1:]), tuple(image)))
    return x, spec


# --- the network without diffusers ---------------------------------------------

def builtin_unet(cfg):
    """diffusers' UNet2DModel (0.42) for the configurations above, in plain
    torch: same module tree and parameter names (a diffusers state_dict
    loads with strict=True), same operations in the same order."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    eps, groups, drop = cfg["norm_eps"], cfg["norm_num_groups"], cfg["dropout"]

    class Resnet(nn.Module):
        def __init__(self, cin, cout, temb):
            super().__init__()
            self.norm1 = nn.GroupNorm(groups, cin, eps=eps, affine=True)
            self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
            self.time_emb_proj = nn.Linear(temb, cout)
            self.norm2 = nn.GroupNorm(groups, cout, eps=eps, affine=True)
            self.dropout = nn.Dropout(drop)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
            self.conv_shortcut = nn.Conv2d(cin, cout, 1, 1, 0) if cin != cout else None

        def forward(self, x, temb):
            h = self.conv1(F.silu(self.norm1(x)))
            h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
            h = self.conv2(self.dropout(F.silu(self.norm2(h))))
            if self.conv_shortcut is not None:
                x = self.conv_shortcut(x)
            return x + h

    class Attention(nn.Module):   # one head: attention_head_dim = None
        def __init__(self, c):
            super().__init__()
            self.group_norm = nn.GroupNorm(groups, c, eps=eps, affine=True)
            self.to_q = nn.Linear(c, c)
            self.to_k = nn.Linear(c, c)
            self.to_v = nn.Linear(c, c)
            self.to_out = nn.ModuleList([nn.Linear(c, c), nn.Dropout(0.0)])

        def forward(self, x):
            b, c, hh, ww = x.shape
            h = self.group_norm(x.view(b, c, hh * ww)).transpose(1, 2)      # (B, L, C)
            q, k, v = (m(h).view(b, -1, 1, c).transpose(1, 2) for m in (self.to_q, self.to_k, self.to_v))
            h = F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, is_causal=False)
            h = h.transpose(1, 2).reshape(b, -1, c)
            h = self.to_out[1](self.to_out[0](h))
            return h.transpose(-1, -2).reshape(b, c, hh, ww) + x

    class Down(nn.Module):
        def __init__(self, cin, cout, temb, n, attn, down):
            super().__init__()
            if attn:
                self.attentions = nn.ModuleList([Attention(cout) for _ in range(n)])
            self.resnets = nn.ModuleList([Resnet(cin if i == 0 else cout, cout, temb) for i in range(n)])
            if down:
                self.downsamplers = nn.ModuleList([nn.Module()])
                self.downsamplers[0].conv = nn.Conv2d(cout, cout, 3, 2, cfg["downsample_padding"])

        def forward(self, h, temb):
            out = ()
            for i, r in enumerate(self.resnets):
                h = r(h, temb)
                if hasattr(self, "attentions"):
                    h = self.attentions[i](h)
                out += (h,)
            if hasattr(self, "downsamplers"):
                if cfg["downsample_padding"] == 0:
                    h = F.pad(h, (0, 1, 0, 1), mode="constant", value=0)
                h = self.downsamplers[0].conv(h)
                out += (h,)
            return h, out

    class Up(nn.Module):
        def __init__(self, cin, cout, prev, temb, n, attn, up):
            super().__init__()
            if attn:
                self.attentions = nn.ModuleList([Attention(cout) for _ in range(n)])
            self.resnets = nn.ModuleList([
                Resnet((prev if i == 0 else cout) + (cin if i == n - 1 else cout), cout, temb)
                for i in range(n)])
            if up:
                self.upsamplers = nn.ModuleList([nn.Module()])
                self.upsamplers[0].conv = nn.Conv2d(cout, cout, 3, 1, 1)

        def forward(self, h, skips, temb):
            for i, r in enumerate(self.resnets):
                h = r(torch.cat([h, skips[-1 - i]], dim=1), temb)
                if hasattr(self, "attentions"):
                    h = self.attentions[i](h)
            if hasattr(self, "upsamplers"):
                h = self.upsamplers[0].conv(F.interpolate(h, scale_factor=2.0, mode="nearest"))
            return h

    class Mid(nn.Module):
        def __init__(self, c, temb):
            super().__init__()
            self.attentions = nn.ModuleList([Attention(c)])
            self.resnets = nn.ModuleList([Resnet(c, c, temb), Resnet(c, c, temb)])

        def forward(self, h, temb):
            h = self.resnets[0](h, temb)
            return self.resnets[1](self.attentions[0](h), temb)

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            boc, n = cfg["block_out_channels"], cfg["layers_per_block"]
            self.c0, temb = boc[0], boc[0] * 4
            self.conv_in = nn.Conv2d(cfg["in_channels"], boc[0], 3, padding=1)
            self.time_embedding = nn.Module()
            self.time_embedding.linear_1 = nn.Linear(boc[0], temb)
            self.time_embedding.linear_2 = nn.Linear(temb, temb)
            self.down_blocks = nn.ModuleList()
            self.up_blocks = nn.ModuleList()     # registered before mid_block, as diffusers does
            cout = boc[0]
            for i, kind in enumerate(cfg["down_block_types"]):
                cin, cout = cout, boc[i]
                self.down_blocks.append(Down(cin, cout, temb, n, kind.startswith("Attn"), i < len(boc) - 1))
            self.mid_block = Mid(boc[-1], temb)
            rev = list(reversed(boc))
            cout = rev[0]
            for i, kind in enumerate(cfg["up_block_types"]):
                prev, cout, cin = cout, rev[i], rev[min(i + 1, len(boc) - 1)]
                self.up_blocks.append(Up(cin, cout, prev, temb, n + 1, kind.startswith("Attn"),
                                         i < len(boc) - 1))
            self.conv_norm_out = nn.GroupNorm(groups, boc[0], eps=eps)
            self.conv_out = nn.Conv2d(boc[0], cfg["out_channels"], 3, padding=1)

        def time_proj(self, t):
            half = self.c0 // 2
            e = -math.log(10000) * torch.arange(0, half, dtype=torch.float32, device=t.device)
            e = torch.exp(e / (half - cfg["freq_shift"]))
            e = t[:, None].float() * e[None, :]
            e = torch.cat([torch.sin(e), torch.cos(e)], dim=-1)
            if cfg["flip_sin_to_cos"]:
                e = torch.cat([e[:, half:], e[:, :half]], dim=-1)
            return e

        def forward(self, x, t):
            te = self.time_embedding
            emb = te.linear_2(F.silu(te.linear_1(self.time_proj(t))))
            h = self.conv_in(x)
            skips = (h,)
            for b in self.down_blocks:
                h, s = b(h, emb)
                skips += s
            h = self.mid_block(h, emb)
            for b in self.up_blocks:
                k = len(b.resnets)
                h = b(h, skips[-k:], emb)
                skips = skips[:-k]
            return self.conv_out(F.silu(self.conv_norm_out(h)))

    return UNet()


def make_model(name, impl, **overrides):
    """(module, impl used, why diffusers was not used); module(x, t) -> eps.
    overrides replace entries of the model's CONFIG (dropout=0.0, say)."""
    cfg = dict(MODELS[name]["CONFIG"], **overrides)
    why = None
    if impl in ("auto", "diffusers"):
        try:
            from diffusers import UNet2DModel
            m = UNet2DModel(**cfg)
            return (lambda x, t: m(x, t).sample), m, "diffusers", None
        except Exception as e:          # noqa: BLE001 (any import trouble: fall back)
            if impl == "diffusers":
                raise
            why = "%s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else "")
    m = builtin_unet(cfg)
    return m, m, "builtin", why


def check_builtin(a):
    import torch
    from diffusers import UNet2DModel
    torch.manual_seed(a.seed)
    cfg = MODELS[a.model]["CONFIG"]
    ref = UNet2DModel(**cfg).eval()
    mine = builtin_unet(cfg).eval()
    missing = mine.load_state_dict(ref.state_dict(), strict=True)
    n_ref = sum(p.numel() for p in ref.parameters())
    n_mine = sum(p.numel() for p in mine.parameters())
    x = torch.randn(a.batch, *MODELS[a.model]["image"])
    t = torch.randint(0, 1000, (a.batch,))
    with torch.no_grad():
        y0, y1 = ref(x, t).sample, mine(x, t)
    err = (y0 - y1).abs().max().item()
    names_ok = [k for k, _ in ref.named_parameters()] == [k for k, _ in mine.named_parameters()]
    ok = err < 1e-4 and n_ref == n_mine == MODELS[a.model]["params"]
    print(json.dumps({"model": a.model, "parameters_diffusers": n_ref, "parameters_builtin": n_mine,
                      "load": str(missing), "same_parameter_order": names_ok,
                      "max_abs_diff": err, "ok": ok}))
    return 0 if ok else 1


# --- the step --------------------------------------------------------------------

def main():
    a = parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))
    import torch

    if a.check_builtin:
        return check_builtin(a)
    torch.set_num_threads(a.threads)
    if not a.sweep:
        print(json.dumps(run(a)), flush=True)
        return 0
    import copy
    import traceback
    rc = 0
    for item in a.sweep.split(","):
        fields = item.strip().split(":")
        b = copy.copy(a)
        b.model, b.amp = fields[0], fields[1] if len(fields) > 1 else "none"
        b.no_tf32 = a.no_tf32 or fields[2:] == ["notf32"]
        try:
            if (b.model not in MODELS or b.amp not in ("none", "bf16", "fp16") or
                    fields[2:] not in ([], ["notf32"])):
                raise ValueError("--sweep: unknown configuration '%s'" % item)
            out = run(b)
        except Exception as e:          # noqa: BLE001 (report it, go on)
            traceback.print_exc()
            out = {"model": b.model, "amp": b.amp, "device": b.device, "no_tf32": b.no_tf32,
                   "error": "%s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else "")}
            rc = 1
        print(json.dumps(out), flush=True)
        if b.device == "cuda":
            torch.cuda.empty_cache()
    return rc


def run(a):
    """One configuration: the timed loop; returns the result dict."""
    import torch
    import torch.nn.functional as F
    torch.manual_seed(a.seed)
    dev = torch.device(a.device)
    if a.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("torch_train.py: --device cuda, but torch.cuda.is_available() is False")
    spec = MODELS[a.model]
    cuda = a.device == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        torch.backends.cudnn.benchmark = a.cudnn_benchmark
    saved_tf32 = set_strict_fp32(torch) if cuda and a.no_tf32 else None
    try:
        return timed_run(a, torch, F, spec, cuda, dev)
    finally:
        if saved_tf32 is not None:
            restore_fp32(torch, saved_tf32)


def set_strict_fp32(torch):
    """fp32 convolutions and matmuls without TF32; returns what to restore."""
    b = torch.backends
    if hasattr(b.cudnn, "conv") and hasattr(b.cudnn.conv, "fp32_precision"):
        saved = ("new", b.cudnn.conv.fp32_precision, b.cuda.matmul.fp32_precision)
        b.cudnn.conv.fp32_precision = "ieee"
        b.cuda.matmul.fp32_precision = "ieee"
    else:
        saved = ("old", b.cudnn.allow_tf32, b.cuda.matmul.allow_tf32)
        b.cudnn.allow_tf32 = False
        b.cuda.matmul.allow_tf32 = False
    return saved


def restore_fp32(torch, saved):
    b = torch.backends
    if saved[0] == "new":
        b.cudnn.conv.fp32_precision, b.cuda.matmul.fp32_precision = saved[1], saved[2]
    else:
        b.cudnn.allow_tf32, b.cuda.matmul.allow_tf32 = saved[1], saved[2]


def tf32_state(torch):
    b = torch.backends
    try:
        return {"conv": b.cudnn.conv.fp32_precision, "matmul": b.cuda.matmul.fp32_precision}
    except AttributeError:
        try:
            return {"conv": "tf32" if b.cudnn.allow_tf32 else "ieee",
                    "matmul": "tf32" if b.cuda.matmul.allow_tf32 else "ieee"}
        except (AttributeError, RuntimeError) as e:
            return {"error": str(e)}


def timed_run(a, torch, F, spec, cuda, dev):

    def sync():
        if cuda:
            torch.cuda.synchronize()

    # Data, held as one float32 tensor in [-1, 1]; a random batch per step.
    raw, data_name = load_images(a.data, spec["image"])
    if raw is None:
        images = torch.rand(4096, *spec["image"], device=dev) * 2 - 1
    else:
        images = (torch.from_numpy(raw.copy()).to(dev).float() / 127.5 - 1.0)

    net, module, impl, why = make_model(a.model, a.impl)
    module.to(dev)
    module.train()
    if a.channels_last:
        module.to(memory_format=torch.channels_last)
    params = [p for p in module.parameters() if p.requires_grad]
    nparams = sum(p.numel() for p in params)

    # Linear schedule in float64, cast once (docs/semantics.md section 4).
    T = 1000
    betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
    abar = torch.cumprod(1 - betas, 0)
    sqrt_ab = abar.sqrt().float().to(dev)
    sqrt_1m_ab = (1 - abar).sqrt().float().to(dev)

    opt = torch.optim.Adam(params, lr=2e-4, betas=(0.9, 0.999), eps=1e-8, foreach=True)
    # The lr at Adam step s (1-based) is lr * min(s / warmup, 1); LambdaLR
    # applies lambda(k) to the (k+1)-th step.
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min((k + 1) / a.lr_warmup, 1.0))
    ema = [p.detach().clone() for p in params]
    ema_decay = 0.9999
    amp_dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[a.amp]
    scaler = torch.amp.GradScaler(a.device) if a.amp == "fp16" else None

    def step():
        idx = torch.randint(0, images.shape[0], (a.batch,), device=dev)
        x0 = images[idx]
        if a.channels_last:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        t = torch.randint(0, T, (a.batch,), device=dev)
        noise = torch.randn_like(x0)
        xt = sqrt_ab[t].view(-1, 1, 1, 1) * x0 + sqrt_1m_ab[t].view(-1, 1, 1, 1) * noise
        with (torch.autocast(a.device, dtype=amp_dtype) if amp_dtype is not None
              else contextlib.nullcontext()):
            eps = net(xt, t)
            loss = F.mse_loss(eps.float(), noise)
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            gn = torch.nn.utils.clip_grad_norm_(params, 1.0)
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            gn = torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
        sched.step()
        with torch.no_grad():
            # ema = decay * ema + (1 - decay) * p
            torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - ema_decay)
        return loss.item(), gn.item()

    flops_counted = None
    if a.count_flops:
        from torch.utils.flop_counter import FlopCounterMode
        fc = FlopCounterMode(display=False)
        with fc:
            step()
        flops_counted = fc.get_total_flops()

    losses, times = [], []
    for i in range(a.warmup_steps + a.steps):
        sync()
        t0 = time.perf_counter()
        loss, gn = step()
        sync()
        dt = time.perf_counter() - t0
        losses.append(loss)
        if i >= a.warmup_steps:
            times.append(dt)
        if a.verbose:
            print(f"step {i + 1} loss {loss:.4f} grad_norm {gn:.3f} {dt:.4f} s "
                  f"img/s {a.batch / dt:.1f}{'' if i >= a.warmup_steps else ' (warmup)'}",
                  file=sys.stderr, flush=True)

    total = sum(times)
    out = {
        "images_per_s": round(a.batch * len(times) / total, 3) if times else None,
        "step_s": round(total / len(times), 5) if times else None,
        "step_s_median": round(statistics.median(times), 5) if times else None,
        "step_s_min": round(min(times), 5) if times else None,
        "model": a.model,
        "device": a.device,
        "amp": a.amp,
        "impl": impl,
        "threads": torch.get_num_threads(),
        "batch": a.batch,
        "steps": len(times),
        "warmup_steps": a.warmup_steps,
        "data": data_name,
        "channels_last": a.channels_last,
        "parameters": nparams,
        "parameters_match_ddpmc": nparams == spec["params"],
        "loss_first": round(losses[0], 5) if losses else None,
        "loss_last": round(losses[-1], 5) if losses else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "torch": torch.__version__,
    }
    if why:
        out["diffusers_unavailable"] = why
    if cuda:
        out["no_tf32"] = a.no_tf32
        out["fp32_precision"] = tf32_state(torch)
        out["cudnn_benchmark"] = torch.backends.cudnn.benchmark
        out["gpu"] = torch.cuda.get_device_name(0)
        out["peak_gpu_mem_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    if flops_counted is not None:
        out["flops_per_step_counted"] = flops_counted
    return out


if __name__ == "__main__":
    sys.exit(main())
