#!/usr/bin/env python3
"""same_kernels.py A B: whether two executables ddpmc compiled have the same
CPU kernels, instruction for instruction.

Disassembles every generated kernel function (ddpmc_f*) of each with
objdump and compares them with addresses masked (call targets, RIP-relative
constants: the runtime linked around the kernels moves them). Prints the
count of functions and of identical ones, and the first differing
instruction of up to two functions. Exit status 0 when every function is
identical. Used to show that a change left the CPU code (and so every CPU
figure) as it was, e.g. for AVX2 and AVX-512 code:

    A/ddpmc compile models/unet.lua --target cpu --cpu x86-64-v3 --tuning /tmp/none -o a
    B/ddpmc compile models/unet.lua --target cpu --cpu x86-64-v3 --tuning /tmp/none -o b
    python3 bench/same_kernels.py a b
"""
import re
import subprocess
import sys


def kernels(exe):
    text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-M", "intel", exe],
                          capture_output=True, text=True, check=True).stdout
    out, cur = {}, None
    for line in text.splitlines():
        m = re.match(r"^[0-9a-f]+ <(.*)>:$", line)
        if m:
            cur = m.group(1) if m.group(1).startswith("ddpmc_f") else None
            if cur:
                out[cur] = []
            continue
        if cur and line.strip():
            ins = line.split("\t", 1)[-1]
            ins = re.sub(r"\b[0-9a-f]{4,} <", "<", ins)
            ins = re.sub(r"<ddpmc_f[^>]*>", "<F>", ins)
            ins = re.sub(r"\[rip\+0x[0-9a-f]+\]", "[rip+X]", ins)
            ins = re.sub(r"# (?:[0-9a-f]+ )?<[^>]*>", "", ins)
            out[cur].append(ins.strip())
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: same_kernels.py A B")
    a, b = kernels(sys.argv[1]), kernels(sys.argv[2])
    same = [k for k in a if a[k] == b.get(k)]
    print("%s: %d kernel functions (%d instructions); %s: %d; identical with addresses masked: %d"
          % (sys.argv[1], len(a), sum(map(len, a.values())), sys.argv[2], len(b), len(same)))
    for k in [k for k in a if a[k] != b.get(k)][:2]:
        pair = next(((x, y) for x, y in zip(a[k], b.get(k, []))if x != y), ("(length)", ""))
        print("  %s: %s | %s" % (k, pair[0], pair[1]))
    sys.exit(0 if len(same) == len(a) == len(b) else 1)


main()
