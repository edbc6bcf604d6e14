#!/opt/ddpmc-venv/bin/python
"""Train diffusers' UNet2DModel on Fashion-MNIST as `./MODEL train` does, for
the sample-quality comparison of bench/quality.sh.

The network is bench/torch_train.py's (--model, the same configurations as
the ddpmc model scripts); the step is the same as the ddpmc program's
(lua/ddpm/program.lua, lua/ddpm/optim.lua):

  t ~ U{0..999}, eps ~ N(0, I), x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps
  (linear betas in float64), loss = MSE(eps_theta(x_t, t), eps), backward,
  clip_grad_norm_(--clip), Adam(--lr, betas (0.9, 0.999), eps 1e-8) with
  lr * f(step), f diffusers' get_scheduler lambda (step / --warmup during the
  warm-up, then --lr-schedule: constant 1, linear or cosine decay to 0 at
  --steps), then the EMA with diffusers' EMAModel decay:
  --ema-warmup none: d = --ema every step; power: d = 0 at the first step,
  else min(1 - (1 + s)^-power, --ema) with s = step - 1 (inv_gamma 1).

Data: the training images in [-1, 1], a fresh random permutation per epoch,
batches taken in its order (as ddpmc's loader; the permutations differ).

Writes into --out: ema-STEP.safetensors (diffusers' parameter names, the EMA
weights, or the trained ones with --ema 0) at every --save-every steps and at
the end, and metrics.jsonl (step, loss_mean since the last line, lr,
elapsed seconds). `./MODEL eval --weights ema-STEP.safetensors` scores them
with ddpmc's sampler and classifier.

  bench/torch_quality.py --model unet_small --steps 6000 --threads 1 --out bench/out/quality/torch
"""
import argparse
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_train  # noqa: E402  (the models and the data loader)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=sorted(torch_train.MODELS), default="unet_small")
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--lr-schedule", choices=["constant", "linear", "cosine"], default="constant")
    p.add_argument("--dropout", type=float, default=None, help="the model's dropout (default: its CONFIG's)")
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--ema-warmup", choices=["none", "power"], default="power")
    p.add_argument("--ema-power", type=float, default=0.75)
    p.add_argument("--save-every", type=int, default=1000)
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    return p.parse_args()


def lr_factor(a, t):
    """get_scheduler's lambda at Adam step t = 1, 2, ... (as ddpmc's lr_t)."""
    w, n = a.warmup, a.steps
    if t < w:
        return t / max(w, 1)
    progress = (t - w) / max(1, n - w)
    if a.lr_schedule == "linear":
        return max(0.0, (n - t) / max(1, n - w))
    if a.lr_schedule == "cosine":
        return max(0.0, (1 + math.cos(math.pi * progress)) / 2)
    return 1.0


def ema_decay(a, step):
    if a.ema_warmup == "none":
        return a.ema
    s = step - 1
    return 0.0 if s <= 0 else min(1 - (1 + s) ** -a.ema_power, a.ema)


def main():
    a = parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))
    import torch
    import torch.nn.functional as F
    from safetensors.torch import save_file
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    os.makedirs(a.out, exist_ok=True)

    spec = torch_train.MODELS[a.model]
    raw, data_name = torch_train.load_images(a.data, spec["image"])
    if raw is None:
        raise SystemExit("torch_quality.py: needs real images (--data)")
    images = torch.from_numpy(raw.copy()).float() / 127.5 - 1.0
    overrides = {} if a.dropout is None else {"dropout": a.dropout}
    _, module, impl, _ = torch_train.make_model(a.model, "diffusers", **overrides)
    module.train()
    params = [p for p in module.parameters() if p.requires_grad]

    T = 1000
    abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, T, dtype=torch.float64), 0)
    sqrt_ab, sqrt_1m_ab = abar.sqrt().float(), (1 - abar).sqrt().float()
    opt = torch.optim.Adam(params, lr=a.lr, betas=(0.9, 0.999), eps=1e-8, foreach=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: lr_factor(a, k + 1))
    ema = [p.detach().clone() for p in params]

    def save(step):
        names = [n for n, p in module.named_parameters() if p.requires_grad]
        weights = ema if a.ema > 0 else [p.detach() for p in params]
        path = os.path.join(a.out, "ema-%d.safetensors" % step)
        save_file({n: w.contiguous() for n, w in zip(names, weights)}, path + ".tmp")
        os.replace(path + ".tmp", path)

    log = open(os.path.join(a.out, "metrics.jsonl"), "w")
    perm, pos, losses, start = torch.randperm(images.shape[0]), 0, [], time.perf_counter()
    for step in range(1, a.steps + 1):
        if pos + a.batch > images.shape[0]:
            perm, pos = torch.randperm(images.shape[0]), 0
        x0 = images[perm[pos:pos + a.batch]]
        pos += a.batch
        t = torch.randint(0, T, (a.batch,))
        noise = torch.randn_like(x0)
        xt = sqrt_ab[t].view(-1, 1, 1, 1) * x0 + sqrt_1m_ab[t].view(-1, 1, 1, 1) * noise
        loss = F.mse_loss(module(xt, t).sample, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if a.clip > 0:
            torch.nn.utils.clip_grad_norm_(params, a.clip)
        lr = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - ema_decay(a, step))
        losses.append(loss.item())
        if step % a.log_every == 0 or step == a.steps:
            log.write(json.dumps({"step": step, "loss_mean": sum(losses) / len(losses), "lr": lr,
                                  "elapsed_s": round(time.perf_counter() - start, 1)}) + "\n")
            log.flush()
            losses = []
        if step % a.save_every == 0 or step == a.steps:
            save(step)
    print(json.dumps({"model": a.model, "impl": impl, "steps": a.steps, "data": data_name,
                      "seconds": round(time.perf_counter() - start, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
