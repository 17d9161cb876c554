#!/usr/bin/python3
"""PyTorch peer of bench.c: same nets, batch 128, random data shaped like
Fashion-MNIST, SGD(lr 0.01, momentum 0.9); one step is zero_grad, forward,
cross-entropy, backward, step.  Prints median/min/max images/s over windows
and the median images per CPU-second.

usage: torch_bench.py NET THREADS WINDOWS STEPS
       torch_bench.py --kernels   (what this PyTorch runs on, one line)
"""
import ctypes
import os
import re
import statistics
import subprocess
import sys
import time

import torch
import torch.nn as nn


def conv_bn(cin, cout, k, stride, relu=True):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.a = conv_bn(cin, cout, 3, stride)
        self.b = conv_bn(cout, cout, 3, 1, relu=False)
        self.proj = conv_bn(cin, cout, 1, stride, relu=False) if stride != 1 or cin != cout else None

    def forward(self, x):
        s = self.proj(x) if self.proj is not None else x
        return torch.relu(self.b(self.a(x)) + s)


def make(name):
    if name in ("small", "small14"):
        return nn.Sequential(conv_bn(1, 16, 3, 1), conv_bn(16, 32, 3, 2), conv_bn(32, 64, 3, 2),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
    layers, cin = [conv_bn(1, 16, 3, 1)], 16
    for s, w in enumerate((16, 32, 64)):
        for b in range(3):
            layers.append(Block(cin, w, 2 if s > 0 and b == 0 else 1))
            cin = w
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


def kernels():
    """oneDNN's ISA (convolutions) and the OpenBLAS core type (the rest) this
    torch uses as a user runs it: oneDNN's choice is read from its verbose
    log in a child process, so the timed runs carry no extra variable."""
    # Torch sends convolutions this small in channels to oneDNN (tiny ones
    # go to its own loops); the nets' convs have 16-64 channels.
    probe = ("import torch; torch.nn.functional.conv2d(torch.rand(8, 16, 28, 28), "
             "torch.rand(16, 16, 3, 3), padding=1)")
    env = dict(os.environ, DNNL_VERBOSE="1", MKLDNN_VERBOSE="1")
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                         text=True).stdout
    isa = re.search(r"isa:([^,\n]+)", out)
    impl = re.search(r"exec,cpu,convolution,([^,]+)", out)
    core = "?"
    try:
        torch.zeros(1)  # torch is loaded, and with it its BLAS
        blas = ctypes.CDLL("libblas.so.3")
        if hasattr(blas, "openblas_get_corename"):
            blas.openblas_get_corename.restype = ctypes.c_char_p
            core = blas.openblas_get_corename().decode()
        else:
            core = "not OpenBLAS"
    except OSError:
        pass
    print("oneDNN:%s(%s) OpenBLAS:%s" % (impl.group(1) if impl else "off",
                                          isa.group(1).strip() if isa else "?", core))


def timed_training(net, side, windows, steps):
    """Train net on a random batch of 128 (one channel, side x side, 10 classes) with
    SGD(lr 0.01, momentum 0.9): a warm-up window, then `windows` timed windows of `steps`
    steps.  Returns "median min max images/s, median images per CPU-second"."""
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(128, 1, side, side)
    y = torch.randint(0, 10, (128,))
    lossf = nn.CrossEntropyLoss()
    ips, cps = [], []
    for w in range(-1, windows):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            opt.zero_grad()
            loss = lossf(net(x), y)
            loss.backward()
            opt.step()
        if w >= 0:
            ips.append(steps * 128 / (time.perf_counter() - t0))
            cps.append(steps * 128 / (time.process_time() - c0))
    return "%.1f %.1f %.1f %.1f" % (statistics.median(ips), min(ips), max(ips),
                                    statistics.median(cps))


def main():
    if sys.argv[1:] == ["--kernels"]:
        kernels()
        return
    name, threads, windows, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    side = 14 if name == "small14" else 28
    net = make(name)
    print(timed_training(net, side, windows, steps))


if __name__ == "__main__":
    main()
