#!/usr/bin/env python3
"""Check `OUT export` against diffusers: our forward pass on the exported weights matches
diffusers' UNet2DModel forward on the same folder (docs/semantics.md §3, issue 5 item 5).

Run by hand from the repository root, after building (needs torch, diffusers, safetensors):

    /opt/ddpmc-venv/bin/python tests/golden/check_export.py [--keep]

It
  1. compiles tests/models/export_tiny.lua (28x28x1, two levels, attention, dropout 0)
     with ./build/compiler/ddpmc (or $DDPMC) into a temporary folder,
  2. trains it 5 steps on a small synthetic IDX file (so the weights are not the initial ones),
  3. exports the checkpoint (EMA weights) with `OUT export --ckpt ... --out DIR`,
  4. loads DIR with UNet2DModel.from_pretrained(DIR) and DDPMPipeline.from_pretrained(DIR),
     checks that the weights are the checkpoint's ema.* tensors and that the pipeline's
     scheduler is the program's (betas, variance, clipping, prediction),
  5. runs diffusers' forward on fixed x, t and ours (`ddpmc run MODEL --entry forward
     --weights DIR/diffusion_pytorch_model.safetensors`), and compares them.
Prints the largest absolute difference; exits non-zero when it is above 1e-4 or a check fails.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel
from safetensors.numpy import load_file, save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DDPMC = os.environ.get("DDPMC", os.path.join(ROOT, "build", "compiler", "ddpmc"))
MODEL = os.path.join("tests", "models", "export_tiny.lua")
TOL = 1e-4
BATCH = 2          # export_tiny.lua's batch
STEPS = 5


def run(*cmd):
    print("$", " ".join(cmd), flush=True)
    r = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}):\n{r.stdout}")
    return r.stdout


def write_idx(path, n, h, w, seed):
    """A raw IDX image file (magic 0x00000803) of n random h x w images."""
    rng = np.random.default_rng(seed)
    pix = rng.integers(0, 256, size=(n, h, w), dtype=np.uint8)
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 8, 3]))
        for d in (n, h, w):
            f.write(int(d).to_bytes(4, "big"))
        f.write(pix.tobytes())


def main():
    keep = "--keep" in sys.argv[1:]
    torch.set_num_threads(1)
    tmp = tempfile.mkdtemp(prefix="ddpmc-export-")
    try:
        exe, data = os.path.join(tmp, "tiny"), os.path.join(tmp, "images.idx")
        run_dir, out = os.path.join(tmp, "run"), os.path.join(tmp, "export")
        run(DDPMC, "compile", MODEL, "-o", exe)
        write_idx(data, 16, 28, 28, seed=5)
        run(exe, "train", "--data", data, "--steps", str(STEPS), "--out", run_dir, "--seed", "3",
            "--threads", "1")
        ckpt = os.path.join(run_dir, "checkpoint.safetensors")
        print(run(exe, "export", "--ckpt", ckpt, "--out", out).strip())
        for name in ("diffusion_pytorch_model.safetensors", "config.json", "scheduler_config.json",
                     "model_index.json"):
            assert os.path.isfile(os.path.join(out, name)), f"{name} missing"

        # The weights: every tensor is the checkpoint's EMA copy, F32, and training moved them.
        state = load_file(ckpt)
        exported = load_file(os.path.join(out, "diffusion_pytorch_model.safetensors"))
        moved = 0
        for k, v in exported.items():
            assert v.dtype == np.float32, k
            assert np.array_equal(v, state["ema." + k].astype(np.float32)), k
            moved += not np.array_equal(state[k], state["ema." + k])
        assert moved > 0, "the EMA weights equal the raw weights: did training run?"
        print(f"weights: {len(exported)} tensors = the checkpoint's ema.* ({moved} differ from "
              "the raw weights)")

        unet = UNet2DModel.from_pretrained(out).eval()
        sd = unet.state_dict()
        assert set(sd) == set(exported), sorted(set(sd) ^ set(exported))[:5]
        for k, v in sd.items():
            assert np.array_equal(v.numpy(), exported[k]), k

        pipe = DDPMPipeline.from_pretrained(out)
        assert isinstance(pipe.unet, UNet2DModel) and isinstance(pipe.scheduler, DDPMScheduler)
        for k, v in pipe.unet.state_dict().items():
            assert np.array_equal(v.numpy(), exported[k]), k
        sc = pipe.scheduler.config
        with open(os.path.join(out, "scheduler_config.json")) as f:
            mine = json.load(f)
        assert sc.num_train_timesteps == 1000 and sc.beta_schedule == "linear"
        assert sc.variance_type == "fixed_small" and sc.clip_sample and sc.prediction_type == "epsilon"
        betas = np.linspace(1e-4, 0.012, 1000, dtype=np.float64)     # export_tiny.lua's beta_end
        assert np.allclose(pipe.scheduler.betas.numpy(), betas, rtol=1e-6, atol=0), "betas"
        print(f"DDPMPipeline: {type(pipe.unet).__name__} + {type(pipe.scheduler).__name__} "
              f"({mine['beta_schedule']}, {mine['variance_type']})")
        # A short pipeline run: it executes end to end.
        img = pipe(batch_size=1, num_inference_steps=2, output_type="np",
                   generator=torch.Generator().manual_seed(0)).images
        assert img.shape == (1, 28, 28, 1) and np.isfinite(img).all()

        # Forward: diffusers vs ours on the same x, t.
        g = torch.Generator().manual_seed(4321)
        x = torch.randn(BATCH, 1, 28, 28, generator=g, dtype=torch.float32)
        t = torch.tensor([17, 803], dtype=torch.int32)
        with torch.no_grad():
            ref = unet(x, t.long()).sample.numpy()
            ref_pipe = pipe.unet(x, t.long()).sample.numpy()
        inputs, result = os.path.join(tmp, "inputs.safetensors"), os.path.join(tmp, "eps.safetensors")
        save_file({"x": x.numpy(), "t": t.numpy()}, inputs)
        run(DDPMC, "run", MODEL, "--entry", "forward",
            "--weights", os.path.join(out, "diffusion_pytorch_model.safetensors"),
            "--inputs", inputs, "-o", result)
        eps = load_file(result)["eps"]
        assert eps.shape == ref.shape, (eps.shape, ref.shape)
        err = float(np.max(np.abs(eps - ref)))
        err_pipe = float(np.max(np.abs(eps - ref_pipe)))
        scale = float(np.max(np.abs(ref)))
        print(f"forward: max |ours - diffusers UNet2DModel| = {err:.3e}, "
              f"|ours - DDPMPipeline.unet| = {err_pipe:.3e} (largest |eps| {scale:.3f}, "
              f"tolerance {TOL:g})")
        if max(err, err_pipe) > TOL or not np.isfinite(eps).all():
            print("FAIL")
            return 1
        print("OK")
        return 0
    finally:
        if keep:
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
