#!/usr/bin/env python3
"""Generate the golden diffusers pipeline folder of `ddpmc import` (tests/test_import.c).

Run by hand (needs torch, diffusers, safetensors):

    /opt/ddpmc-venv/bin/python tests/golden/make_import_golden.py

Writes, next to this script:
    import_pipeline/                 DDPMPipeline.save_pretrained: model_index.json,
                                     unet/config.json, unet/diffusion_pytorch_model.safetensors,
                                     scheduler/scheduler_config.json
    import_io.safetensors            x F32 (B,C,H,W) ~ randn, t I32 (B,), eps F32 = unet(x, t).sample

The UNet is small (sample_size 8, channels 8 and 16, one resnet per level) with settings
that differ from ddpmc's tiny test models: diffusers' own time embedding (flip_sin_to_cos
True, freq_shift 0) with DDPM's blocks, four attention heads (attention_head_dim 4 over
16 channels), 4 groups, norm_eps 1e-6, downsample_padding 0. The scheduler is not
DDPMScheduler's default either: 100 steps, squaredcos_cap_v2, v_prediction, no clipping,
fixed_large variance.

Deterministic: torch.manual_seed(0) before the model, default init, then every GroupNorm
weight := 1 + 0.1*randn and every bias := 0.1*randn in sorted-name order (generator seeded
1234), as make_unet_golden.py does; inputs from a generator seeded 4321. One CPU thread.
"""
import os
import shutil

import torch
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "import_pipeline")

CONFIG = dict(
    sample_size=8, in_channels=3, out_channels=3,
    block_out_channels=(8, 16), layers_per_block=1,
    down_block_types=("DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D"),
    norm_num_groups=4, attention_head_dim=4, norm_eps=1e-6,
    flip_sin_to_cos=True, freq_shift=0, downsample_padding=0, dropout=0.0,
)
SCHEDULER = dict(num_train_timesteps=100, beta_schedule="squaredcos_cap_v2",
                 prediction_type="v_prediction", clip_sample=False, variance_type="fixed_large")
BATCH = 2


def perturb(model):
    """GroupNorm weights 1 + 0.1*randn and biases 0.1*randn, in sorted-name order."""
    g = torch.Generator().manual_seed(1234)
    groupnorm_weights = {n + ".weight" for n, m in model.named_modules()
                         if isinstance(m, torch.nn.GroupNorm)}
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name in sorted(params):
            p = params[name]
            if name in groupnorm_weights:
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    unet = UNet2DModel(**CONFIG).eval()
    perturb(unet)
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler(**SCHEDULER)).save_pretrained(OUT)

    g = torch.Generator().manual_seed(4321)
    x = torch.randn((BATCH, 3, 8, 8), generator=g)
    t = torch.tensor([7, 93], dtype=torch.int32)
    reloaded = UNet2DModel.from_pretrained(os.path.join(OUT, "unet")).eval()
    with torch.no_grad():
        eps = unet(x, t).sample
        again = reloaded(x, t.long()).sample
    assert torch.equal(eps, again), "the saved folder does not reload to the same model"
    save_file({"x": x.contiguous(), "t": t, "eps": eps.contiguous()},
              os.path.join(HERE, "import_io.safetensors"))
    n = sum(p.numel() for p in unet.parameters())
    print(f"{n} parameters; |eps| max {eps.abs().max():.3f}; wrote {OUT}")


if __name__ == "__main__":
    main()
