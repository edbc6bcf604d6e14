"""FID and KID reference values for tests/test_fid.c (run by hand):

    /opt/ddpmc-venv/bin/python tests/golden/make_fid_golden.py

Writes tests/golden/fid.safetensors: two sets of feature vectors a (50, 8)
and b (50, 8) (F32; b has another mean and a covariance that does not
commute with a's), and in float64 fid (1) and kid (1) computed here by
routes other than runtime/fid.c's: Tr sqrt(S1 S2) from the eigenvalues of
the non-symmetric product S1 S2 (numpy.linalg.eigvals), and the MMD as
torch-fidelity's loop writes it (whole sets: 50 is below the subset size
of 1000, so no subset is drawn and the value is exact).
"""
import os

import numpy as np
import torch
from safetensors.torch import save_file

rng = np.random.default_rng(7)
n, d = 50, 8
a = rng.standard_normal((n, d)).astype(np.float32)
mix = rng.standard_normal((d, d)) * 0.6 + np.eye(d)
b = (rng.standard_normal((n, d)) @ mix + 0.7).astype(np.float32)
A, B = a.astype(np.float64), b.astype(np.float64)

mu1, mu2 = A.mean(0), B.mean(0)
s1, s2 = np.cov(A, rowvar=False), np.cov(B, rowvar=False)
ev = np.linalg.eigvals(s1 @ s2)
fid = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(ev.real.clip(0)).sum()

# torch-fidelity's kid: polynomial kernel degree 3, gamma 1/d, coef 1
k = lambda x, y: (x @ y.T / d + 1) ** 3
kxx, kyy, kxy = k(A, A), k(B, B), k(A, B)
m = n
kid = ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
       - 2 * kxy.sum() / (m * m))
print(f"fid {fid:.12g} kid {kid:.12g} (max |imag eig| {abs(ev.imag).max():.2g})")
save_file({"a": torch.from_numpy(a), "b": torch.from_numpy(b),
           "fid": torch.tensor([fid], dtype=torch.float64),
           "kid": torch.tensor([kid], dtype=torch.float64)},
          os.path.join(os.path.dirname(__file__), "fid.safetensors"))
