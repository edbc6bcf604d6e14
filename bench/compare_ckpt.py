#!/usr/bin/env python3
"""Compares two ddpmc train checkpoints (or two sample images) made from the
same seed on two devices (CPU and OpenCL), with numpy alone.

  compare_ckpt.py A/checkpoint.safetensors B/checkpoint.safetensors \\
      [--metrics-a A/metrics.jsonl --metrics-b B/metrics.jsonl] [--precision fp32|bf16] [--json F]
  compare_ckpt.py --png A.png B.png [--precision fp32|bf16] [--json F]

Prints one line per tensor group and PASS or FAIL; exit status 0 on PASS,
1 on FAIL, 2 when the files cannot be read or do not match in names/shapes.

Why these tests and tolerances. Both runs draw the same t, noise and dropout
masks (Philox keyed by the seed and the step, in the graph) and read the same
batches (the loader's order comes from the seed), so the two devices compute
the same function and differ only by rounding: summation order in
convolutions, matmuls, GroupNorm and softmax reductions. In fp32 that gives
relative differences around 1e-7..1e-5 after a few steps; a wrong kernel
gives O(1) differences in everything it feeds. The groups:

- grads (optim.exp_avg.*, Adam's first moment = a decayed sum of the clipped
  gradients): the sharpest test of forward + backward. Per tensor,
  e = rms(a - b) / max(rms(a), 1e-3 * G), G the median rms over all the
  tensors of the group (the floor keeps tensors whose gradient is small from
  dividing noise by noise). Tensors whose true gradient is zero (the
  attention's to_k.bias: softmax ignores a shift shared by all keys), seen
  as rms(exp_avg) < 1e-3 G, hold only rounding noise and are left out and
  counted, here and in every group below. PASS if max e <= 1e-3
  (fp32) or 5e-2 (bf16: both devices round the same products to bf16, but a
  value on a rounding boundary flips by 2^-8).
- grad_sq (optim.exp_avg_sq.*): the same with twice the tolerance.
- params (the trainable weights) and ema (ema.*): after k Adam steps a
  weight has moved by at most about sum(lr) (Adam's step is lr * m/sqrt(v),
  |m/sqrt(v)| <= ~1), and by the same amount on both devices when the
  gradients agree; so per tensor e = rms(a - b) / sum(lr), PASS if max
  e <= 0.1 (fp32) or 0.5 (bf16). A wrong optimizer (clipping, bias
  correction, lr schedule, EMA) shows as e ~ 1. Elements whose gradient is
  near zero may take opposite signs of m/sqrt(v) on the two devices: that is
  why this is an rms over the tensor and not a max. Tensors with a
  noise-level gradient (rms(exp_avg) < 1e-3 G) are left out and counted.
  sum(lr) comes from the metrics.jsonl lr values (one line per step: train
  with --log-every 1); without them, max|a - b| <= 1e-3 max|a| per tensor is
  used instead (weak after a few warmup steps, when sum(lr) is ~1e-5).
  Also printed: the largest max|a - b| / max|a| (the "1e-3 relative on the
  weights" reading).
- scalars (I32 tensors: rng.seed, train.iteration, optim.step): equal.
- loss (metrics.jsonl, per step): |a - b| <= 1e-4 |a| (fp32) or 2e-2 (bf16);
  step 1 is a forward of identical weights on identical inputs.
- every tensor: finite on both sides.

Images (--png): the same checkpoint sampled on both devices (DDIM, same
seed). 8-bit pixels: PASS if max |a - b| <= 4 levels and mean <= 0.1 (fp32),
or max <= 48 and mean <= 2 (bf16).
"""
import argparse
import json
import math
import struct
import sys
import zlib

import numpy as np

DT = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I32": np.int32,
      "I64": np.int64, "U8": np.uint8, "I8": np.int8, "I16": np.int16}
TOL = {
    "fp32": dict(grads=1e-3, grad_sq=2e-3, params=0.1, ema=0.1, loss=1e-4,
                 png_max=4, png_mean=0.1),
    "bf16": dict(grads=5e-2, grad_sq=1e-1, params=0.5, ema=0.5, loss=2e-2,
                 png_max=48, png_mean=2.0),
}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {}) or {}
    out = {}
    for name, h in header.items():
        if h["dtype"] == "BF16":
            lo, hi = h["data_offsets"]
            u = np.frombuffer(data[lo:hi], dtype=np.uint16).astype(np.uint32) << 16
            out[name] = u.view(np.float32).reshape(h["shape"])
            continue
        if h["dtype"] not in DT:
            raise ValueError("%s: %s has dtype %s" % (path, name, h["dtype"]))
        lo, hi = h["data_offsets"]
        out[name] = np.frombuffer(data[lo:hi], dtype=DT[h["dtype"]]).reshape(h["shape"])
    return out, meta


def read_metrics(path):
    rows = {}
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    j = json.loads(line)
                    rows[int(j["step"])] = j
    except (OSError, ValueError):
        return None
    return rows


def group_of(name, dtype):
    if dtype.kind in "iu":
        return "scalars"
    if name.startswith("optim.exp_avg_sq."):
        return "grad_sq"
    if name.startswith("optim.exp_avg."):
        return "grads"
    if name.startswith("ema."):
        return "ema"
    if name.startswith(("optim.", "rng.", "train.", "loss_scale", "amp.")):
        return "state"
    return "params"


def rms(x):
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def compare_ckpt(a_path, b_path, ma, mb, prec):
    tol = TOL[prec]
    A, meta_a = read_safetensors(a_path)
    B, meta_b = read_safetensors(b_path)
    res = {"a": a_path, "b": b_path, "precision": prec, "groups": {}, "problems": [], "pass": False}
    if set(A) != set(B):
        res["problems"].append("different tensor names: only in A %s, only in B %s"
                               % (sorted(set(A) - set(B))[:5], sorted(set(B) - set(A))[:5]))
        return res, 2
    for k in A:
        if A[k].shape != B[k].shape:
            res["problems"].append("%s: shape %s vs %s" % (k, A[k].shape, B[k].shape))
    if res["problems"]:
        return res, 2
    if meta_a.get("step") != meta_b.get("step"):
        res["problems"].append("the runs reached different steps (%s vs %s): one was stopped early "
                               "(time limit?)" % (meta_a.get("step"), meta_b.get("step")))

    def param_of(k):
        for prefix in ("optim.exp_avg_sq.", "optim.exp_avg."):
            if k.startswith(prefix):
                return k[len(prefix):]
        return k

    # The gradient scale G and the noise-level gradient tensors.
    grad_rms = {k[len("optim.exp_avg."):]: rms(A[k].astype(np.float64))
                for k in A if k.startswith("optim.exp_avg.")}
    G = float(np.median(list(grad_rms.values()))) if grad_rms else 0.0
    sq = [rms(A[k].astype(np.float64)) for k in A if k.startswith("optim.exp_avg_sq.")]
    Gsq = float(np.median(sq)) if sq else 0.0
    zero_grad = {p for p, r in grad_rms.items() if r < 1e-3 * G}

    lr_sum = None
    rows_a = read_metrics(ma) if ma else None
    rows_b = read_metrics(mb) if mb else None
    steps = int(meta_a.get("step", "0") or 0)
    if rows_a and all(s in rows_a for s in range(1, steps + 1)) and steps > 0:
        lr_sum = sum(float(rows_a[s]["lr"]) for s in range(1, steps + 1))
    res["lr_sum"] = lr_sum
    res["grad_scale_G"] = G
    res["steps"] = steps

    groups = {}
    nonfinite = []
    for k in sorted(A):
        a, b = A[k], B[k]
        g = group_of(k, a.dtype)
        d = groups.setdefault(g, {"tensors": 0, "worst": 0.0, "worst_tensor": None,
                                  "max_abs": 0.0, "max_rel_to_tensor_max": 0.0, "skipped": 0})
        d["tensors"] += 1
        if g == "scalars":
            e = 0.0 if np.array_equal(a, b) else math.inf
            if e:
                res["problems"].append("%s: %s vs %s" % (k, a.tolist(), b.tolist()))
        else:
            a64, b64 = a.astype(np.float64), b.astype(np.float64)
            if not (np.isfinite(a64).all() and np.isfinite(b64).all()):
                nonfinite.append(k)
                e = math.inf
            else:
                diff = a64 - b64
                mx = float(np.abs(diff).max()) if diff.size else 0.0
                amax = float(np.abs(a64).max()) if a64.size else 0.0
                d["max_abs"] = max(d["max_abs"], mx)
                rel = mx / amax if amax > 0 else (0.0 if mx == 0 else math.inf)
                d["max_rel_to_tensor_max"] = max(d["max_rel_to_tensor_max"], rel)
                if g in ("grads", "grad_sq") and param_of(k) in zero_grad:
                    d["skipped"] += 1
                    continue
                if g in ("grads", "grad_sq", "state"):
                    e = rms(diff) / max(rms(a64), 1e-3 * (G if g == "grads" else Gsq), 1e-30)
                    if g == "state":
                        e = rel
                else:
                    pname = k[len("ema."):] if g == "ema" else k
                    if pname in zero_grad:
                        d["skipped"] += 1
                        continue
                    if lr_sum:
                        e = rms(diff) / lr_sum
                    else:
                        e = rel / 1e-3 * tol[g]      # pass iff rel <= 1e-3
        if e > d["worst"] or d["worst_tensor"] is None:
            d["worst"], d["worst_tensor"] = e, k
    if nonfinite:
        res["problems"].append("non-finite values in %d tensors, e.g. %s" % (len(nonfinite), nonfinite[:3]))

    ok = not res["problems"]
    for g, d in groups.items():
        t = {"grads": tol["grads"], "grad_sq": tol["grad_sq"], "params": tol["params"],
             "ema": tol["ema"], "scalars": 0.0, "state": 1e-3}[g]
        d["tolerance"] = t
        d["pass"] = d["worst"] <= t
        ok = ok and d["pass"]
    res["groups"] = groups

    # Losses per step.
    if rows_a and rows_b:
        worst, worst_step = 0.0, None
        for s in sorted(set(rows_a) & set(rows_b)):
            la, lb = float(rows_a[s]["loss"]), float(rows_b[s]["loss"])
            r = abs(la - lb) / max(abs(la), 1e-12) if math.isfinite(la) and math.isfinite(lb) else math.inf
            if r > worst or worst_step is None:
                worst, worst_step = r, s
        res["loss"] = {"steps_compared": len(set(rows_a) & set(rows_b)), "worst_rel": worst,
                       "worst_step": worst_step, "tolerance": tol["loss"],
                       "a": [rows_a[s]["loss"] for s in sorted(rows_a)],
                       "b": [rows_b[s]["loss"] for s in sorted(rows_b)],
                       "pass": worst <= tol["loss"]}
        ok = ok and res["loss"]["pass"]
    res["pass"] = ok
    return res, 0 if ok else 1


# --- PNG (8-bit, non-interlaced) ------------------------------------------------

def read_png(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("%s: not a PNG" % path)
    pos, idat, w = 8, [], None
    while pos < len(data):
        n = struct.unpack(">I", data[pos:pos + 4])[0]
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or interlace:
                raise ValueError("%s: only 8-bit non-interlaced PNGs (depth %d, interlace %d)"
                                 % (path, depth, interlace))
            ch = {0: 1, 2: 3, 4: 2, 6: 4}.get(ctype)
            if ch is None:
                raise ValueError("%s: colour type %d" % (path, ctype))
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8)
    stride = w * ch
    raw = raw.reshape(h, stride + 1)
    img = np.zeros((h, stride), dtype=np.int32)
    prev = np.zeros(stride, dtype=np.int32)
    for y in range(h):
        ft, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        if ft == 0:
            cur = line
        elif ft == 2:
            cur = (line + prev) & 255
        else:
            cur = np.zeros(stride, dtype=np.int32)
            for x in range(stride):
                left = cur[x - ch] if x >= ch else 0
                if ft == 1:
                    p = left
                elif ft == 3:
                    p = (left + prev[x]) >> 1
                else:           # 4: Paeth
                    up, ul = prev[x], (prev[x - ch] if x >= ch else 0)
                    pa, pb, pc = abs(up - ul), abs(left - ul), abs(left + up - 2 * ul)
                    p = left if pa <= pb and pa <= pc else (up if pb <= pc else ul)
                cur[x] = (line[x] + p) & 255
        img[y] = cur
        prev = cur
    return img.reshape(h, w, ch)


def compare_png(a_path, b_path, prec):
    tol = TOL[prec]
    a, b = read_png(a_path), read_png(b_path)
    res = {"a": a_path, "b": b_path, "precision": prec}
    if a.shape != b.shape:
        res.update(problem="shapes %s vs %s" % (a.shape, b.shape), ok=False)
        return res, 2
    d = np.abs(a - b)
    res.update(shape=list(a.shape), max_abs=int(d.max()), mean_abs=float(d.mean()),
               frac_differing=float((d > 0).mean()), frac_over_2=float((d > 2).mean()),
               tol_max=tol["png_max"], tol_mean=tol["png_mean"])
    res["pass"] = res["max_abs"] <= tol["png_max"] and res["mean_abs"] <= tol["png_mean"]
    return res, 0 if res["pass"] else 1


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return "inf" if math.isinf(v) else "%.3g" % v
    return str(v)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--png", action="store_true", help="compare two PNG images instead")
    p.add_argument("--metrics-a")
    p.add_argument("--metrics-b")
    p.add_argument("--precision", choices=sorted(TOL), default="fp32")
    p.add_argument("--label", default="", help="a name printed with the verdict")
    p.add_argument("--json", help="also write the result here")
    a = p.parse_args()
    try:
        if a.png:
            res, rc = compare_png(a.a, a.b, a.precision)
        else:
            res, rc = compare_ckpt(a.a, a.b, a.metrics_a, a.metrics_b, a.precision)
    except (OSError, ValueError, KeyError, struct.error, zlib.error) as e:
        res, rc = {"a": a.a, "b": a.b, "error": str(e), "pass": False}, 2
    res["label"] = a.label
    lab = (a.label + ": ") if a.label else ""
    if "error" in res:
        print("%sERROR %s" % (lab, res["error"]))
    elif a.png:
        print("%simages %s: max |diff| %s levels, mean %s, %.2f%% of values differ (%.2f%% by > 2); "
              "tolerance max %s, mean %s -> %s"
              % (lab, "x".join(map(str, res.get("shape", []))), fmt(res.get("max_abs")),
                 fmt(res.get("mean_abs")), 100 * res.get("frac_differing", 0),
                 100 * res.get("frac_over_2", 0), res.get("tol_max"), res.get("tol_mean"),
                 "PASS" if res.get("pass") else "FAIL"))
    else:
        print("%s%d steps, %s, sum(lr) %s, gradient scale G %s" % (
            lab, res.get("steps", 0), a.precision, fmt(res.get("lr_sum")), fmt(res.get("grad_scale_G"))))
        print("  %-8s %7s %10s %10s %12s  %s" % ("group", "tensors", "worst e", "tolerance",
                                               "max|a-b|", "worst tensor / max|a-b|/max|a|"))
        for g in ("grads", "grad_sq", "params", "ema", "state", "scalars"):
            d = res["groups"].get(g)
            if not d:
                continue
            print("  %-8s %7d %10s %10s %12s  %s / %s%s %s" % (
                g, d["tensors"], fmt(d["worst"]), fmt(d["tolerance"]), fmt(d["max_abs"]),
                d["worst_tensor"], fmt(d["max_rel_to_tensor_max"]),
                (" (%d noise-gradient tensors left out)" % d["skipped"]) if d["skipped"] else "",
                "ok" if d["pass"] else "FAIL"))
        if "loss" in res:
            L = res["loss"]
            print("  loss per step: worst relative difference %s at step %s (tolerance %s) %s; A %s, B %s"
                  % (fmt(L["worst_rel"]), L["worst_step"], fmt(L["tolerance"]),
                     "ok" if L["pass"] else "FAIL", L["a"][:5], L["b"][:5]))
        for pr in res["problems"]:
            print("  problem: %s" % pr)
        print("%s%s" % (lab, "PASS" if res["pass"] else "FAIL"))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1, default=str)
    return rc


if __name__ == "__main__":
    sys.exit(main())
