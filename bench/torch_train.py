#!/opt/ddpmc-venv/bin/python
"""PyTorch eager CPU baseline for the ddpmc train-step benchmark.

One DDPM train step of diffusers' UNet2DModel configured exactly as
models/unet.lua (28x28x1, channels 64/128/128, two res blocks per level,
one-head attention at 7x7 and in the mid block, dropout 0.1, DDPM's
norm_eps/flip_sin_to_cos/freq_shift/downsample_padding), with the same step
as lua/ddpm/program.lua + lua/ddpm/optim.lua:

  t ~ U{0..999}, eps ~ N(0, I), x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps
  (linear betas 1e-4..0.02 computed in float64), loss = MSE(eps_theta, eps),
  backward, clip_grad_norm_(1.0), Adam(lr 2e-4, betas (0.9, 0.999), eps 1e-8)
  with lr * min(step / warmup, 1), then EMA 0.9999 of every parameter.

Data: Fashion-MNIST train images scaled to [-1, 1] (read with numpy from
/usr/share/datasets/fashion-mnist) when present, else uniform random in
[-1, 1]; either way a random batch per step.

Timing: --warmup-steps untimed steps, then --steps timed steps. Prints one
JSON line: images_per_s = batch * steps / (time of the timed steps);
step_s is the mean timed step, step_s_median the median.

  bench/torch_train.py --batch 64 --threads 2 --steps 10 --warmup-steps 2
"""
import argparse
import gzip
import json
import os
import resource
import statistics
import sys
import time

CONFIG = dict(
    sample_size=28, in_channels=1, out_channels=1,
    block_out_channels=(64, 128, 128), layers_per_block=2,
    down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    attention_head_dim=None, dropout=0.1,
    norm_eps=1e-6, flip_sin_to_cos=False, freq_shift=1, downsample_padding=0,
    norm_num_groups=32, act_fn="silu", resnet_time_scale_shift="default",
    time_embedding_type="positional", add_attention=True,
)
PARAMS_EXPECTED = 6469889  # ddpmc inspect models/unet.lua
FASHION = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--warmup-steps", type=int, default=2, help="untimed steps first")
    p.add_argument("--data", choices=["auto", "fashion-mnist", "random"], default="auto")
    p.add_argument("--lr-warmup", type=int, default=5000, help="Adam lr warmup steps (DDPM: 5000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--channels-last", action="store_true",
                   help="channels_last memory format (not the default a user gets)")
    p.add_argument("--count-flops", action="store_true",
                   help="also count one step's FLOPs with torch.utils.flop_counter "
                        "(convolutions and matmuls only; one extra, untimed step)")
    p.add_argument("--verbose", action="store_true", help="one line per step on stderr")
    return p.parse_args()


def load_fashion(path):
    import numpy as np
    with gzip.open(path, "rb") as f:
        raw = f.read()
    n, h, w = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
    x = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, 1, h, w)
    return x.astype(np.float32) / 127.5 - 1.0


def main():
    a = parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))
    import torch
    import torch.nn.functional as F
    from diffusers import UNet2DModel

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    # Data, held as one float32 tensor; a random batch per step.
    data_name = a.data
    if data_name == "auto":
        data_name = "fashion-mnist" if os.path.exists(FASHION) else "random"
    if data_name == "fashion-mnist":
        images = torch.from_numpy(load_fashion(FASHION))
    else:
        images = torch.rand(4096, 1, 28, 28) * 2 - 1

    model = UNet2DModel(**CONFIG)
    model.train()
    if a.channels_last:
        model = model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    nparams = sum(p.numel() for p in params)

    # Linear schedule in float64, cast once (DESIGN.md section 4).
    T = 1000
    betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
    abar = torch.cumprod(1 - betas, 0)
    sqrt_ab = abar.sqrt().float()
    sqrt_1m_ab = (1 - abar).sqrt().float()

    opt = torch.optim.Adam(params, lr=2e-4, betas=(0.9, 0.999), eps=1e-8, foreach=True)
    # The lr at Adam step s (1-based) is lr * min(s / warmup, 1); LambdaLR
    # applies lambda(k) to the (k+1)-th step.
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min((k + 1) / a.lr_warmup, 1.0))
    ema = [p.detach().clone() for p in params]
    ema_decay = 0.9999

    def step():
        idx = torch.randint(0, images.shape[0], (a.batch,))
        x0 = images[idx]
        if a.channels_last:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        t = torch.randint(0, T, (a.batch,))
        noise = torch.randn_like(x0)
        xt = sqrt_ab[t].view(-1, 1, 1, 1) * x0 + sqrt_1m_ab[t].view(-1, 1, 1, 1) * noise
        eps = model(xt, t).sample
        loss = F.mse_loss(eps, noise)
        opt.zero_grad(set_to_none=True)
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
        t0 = time.perf_counter()
        loss, gn = step()
        dt = time.perf_counter() - t0
        losses.append(loss)
        if i >= a.warmup_steps:
            times.append(dt)
        if a.verbose:
            print(f"step {i + 1} loss {loss:.4f} grad_norm {gn:.3f} {dt:.3f} s "
                  f"img/s {a.batch / dt:.1f}{'' if i >= a.warmup_steps else ' (warmup)'}",
                  file=sys.stderr, flush=True)

    total = sum(times)
    out = {
        "images_per_s": round(a.batch * len(times) / total, 3) if times else None,
        "step_s": round(total / len(times), 4) if times else None,
        "step_s_median": round(statistics.median(times), 4) if times else None,
        "step_s_min": round(min(times), 4) if times else None,
        "threads": torch.get_num_threads(),
        "batch": a.batch,
        "steps": len(times),
        "warmup_steps": a.warmup_steps,
        "data": data_name,
        "channels_last": a.channels_last,
        "parameters": nparams,
        "parameters_match_ddpmc": nparams == PARAMS_EXPECTED,
        "loss_first": round(losses[0], 5) if losses else None,
        "loss_last": round(losses[-1], 5) if losses else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "torch": torch.__version__,
    }
    if flops_counted is not None:
        out["flops_per_step_counted"] = flops_counted
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
