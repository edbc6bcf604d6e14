"""torch_conv: one 3x3 convolution (padding 1) in PyTorch, its forward,
input gradient and weight gradient timed apart, as bench/conv_bench
times ddpmc's kernels: best of 5 calls each, after one untimed call.

    python bench/torch_conv.py [--threads T] N C O H

prints one line per part, in milliseconds:
    torch forward  MS
    torch input gradient  MS
    torch weight gradient  MS
The gradients are aten.convolution_backward asked for one result each
(what autograd calls, without the other's work).
"""
import argparse
import time

import torch


def best_of(fn, reps=5):
    fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("dims", type=int, nargs=4, metavar="N C O H")
    a = ap.parse_args()
    n, c, o, h = a.dims
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x = torch.randn(n, c, h, h)
    w = torch.randn(o, c, 3, 3) * 0.1
    g = torch.randn(n, o, h, h)

    def backward(mask):
        return torch.ops.aten.convolution_backward(
            g, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, mask)

    with torch.no_grad():
        parts = [
            ("forward", lambda: torch.nn.functional.conv2d(x, w, padding=1)),
            ("input gradient", lambda: backward([True, False, False])),
            ("weight gradient", lambda: backward([False, True, False])),
        ]
        for name, fn in parts:
            print("torch %s  %.3f" % (name, best_of(fn) * 1e3))


if __name__ == "__main__":
    main()
