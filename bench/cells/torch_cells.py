#!/usr/bin/python3
"""PyTorch peer of bench/cells/bench.c: the same cell network built from the
genome text the engine prints (common/builder.c's skeleton: stem conv-BN,
three stages of N normal cells with a reduction cell doubling the channels
between them, GAP, linear), or the micro-net "micro:C".  Batch 128 of random
one-channel data, SGD(lr 0.01, momentum 0.9); one step is zero_grad,
forward, cross-entropy, backward, step.  Prints median/min/max images/s over
windows and the median images per CPU-second.
usage: torch_cells.py GENOME|micro:C SIDE F N THREADS WINDOWS STEPS
"""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as Fn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train_vs_torch"))
from torch_bench import timed_training  # noqa: E402


def relu_conv_bn(c, k, stride, pad, dil=1, groups=1):
    return nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, k, stride, pad, dil, groups, bias=False),
                         nn.BatchNorm2d(c))


class FactorizedReduce(nn.Module):
    """ReLU, two 1x1 stride-2 convs (the second on the input shifted by a pixel), concat, BN."""
    def __init__(self, cin, cout):
        super().__init__()
        self.a = nn.Conv2d(cin, cout // 2, 1, 2, bias=False)
        self.b = nn.Conv2d(cin, cout - cout // 2, 1, 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        x = torch.relu(x)
        s = Fn.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        return self.bn(torch.cat([self.a(x), self.b(s)], 1))


def sep(c, k, stride):
    layers = []
    for rep in (1, 2):
        layers += [nn.ReLU(), nn.Conv2d(c, c, k, stride if rep == 1 else 1, k // 2, groups=c,
                                        bias=False),
                   nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c)]
    return nn.Sequential(*layers)


def make_op(name, c, stride):
    if name == "id":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c)
    if name == "avg3x3":
        return nn.AvgPool2d(3, stride, 1, count_include_pad=False)
    if name == "max3x3":
        return nn.MaxPool2d(3, stride, 1)
    if name.startswith("sep"):
        return sep(c, int(name[3]), stride)
    if name == "dil3x3":
        return nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, 3, stride, 2, 2, groups=c, bias=False),
                             nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c))
    if name == "conv1x7_7x1":
        return nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, (1, 7), 1, (0, 3), bias=False),
                             nn.Conv2d(c, c, (7, 1), stride, (3, 0), bias=False),
                             nn.BatchNorm2d(c))
    if name == "conv3x3":
        return relu_conv_bn(c, 3, stride, 1)
    if name == "conv1x1":
        return relu_conv_bn(c, 1, stride, 0)
    raise ValueError("unknown op " + name)


def parse_cell(text):
    """'op:in+op:in,...' -> [(op_a, in_a, op_b, in_b)]"""
    blocks = []
    for b in text.split(","):
        a, bb = b.split("+")
        oa, ia = a.split(":")
        ob, ib = bb.split(":")
        blocks.append((oa, int(ia), ob, int(ib)))
    return blocks


def live_blocks(blocks):
    """common/genome_search.c's nas__cell_live: (live, output) per block."""
    n = len(blocks)
    used = [False] * n
    for oa, ia, ob, ib in blocks:
        for i in (ia, ib):
            if i >= 2:
                used[i - 2] = True
    live_use, live = [False] * n, [False] * n
    for k in range(n - 1, -1, -1):
        oa, ia, ob, ib = blocks[k]
        live[k] = not used[k] or live_use[k]
        if not live[k]:
            continue
        for o, i in ((oa, ia), (ob, ib)):
            if o != "zero" and i >= 2:
                live_use[i - 2] = True
    return live, [not u for u in used]


def relu_conv1_bn(cin, c):
    return nn.Sequential(nn.ReLU(), nn.Conv2d(cin, c, 1, bias=False), nn.BatchNorm2d(c))


class Cell(nn.Module):
    """builder.c's build_cell: inputs s0 (c0 channels, reduced to s1's side by a factorized
    reduction when larger) and s1 (c1 channels), C channels inside."""
    def __init__(self, blocks, c, reduce, c0, c1, pre0_reduce):
        super().__init__()
        self.pre0 = FactorizedReduce(c0, c) if pre0_reduce else relu_conv1_bn(c0, c)
        self.pre1 = relu_conv1_bn(c1, c)
        self.blocks, (self.live, self.output) = blocks, live_blocks(blocks)
        self.ops = nn.ModuleList()
        for k, (oa, ia, ob, ib) in enumerate(blocks):
            self.ops.append(nn.ModuleList(
                make_op(o, c, 2 if reduce and i < 2 else 1)
                if self.live[k] and o != "zero" else nn.Identity()
                for o, i in ((oa, ia), (ob, ib))))
        n_out = sum(self.output[k] and self.live[k] for k in range(len(blocks)))
        self.out = nn.Sequential(nn.Conv2d(c * n_out, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, s0, s1):
        st = [self.pre0(s0), self.pre1(s1)]
        outs = []
        for k, (oa, ia, ob, ib) in enumerate(self.blocks):
            if not self.live[k]:
                st.append(None)
                continue
            halves = [self.ops[k][h](st[i]) for h, (o, i) in enumerate(((oa, ia), (ob, ib)))
                      if o != "zero"]
            y = halves[0] if len(halves) == 1 else halves[0] + halves[1]
            st.append(y)
            if self.output[k]:
                outs.append(y)
        return self.out(torch.cat(outs, 1))


class CellNet(nn.Module):
    def __init__(self, genome, F, N):
        super().__init__()
        parts = dict(p.split("=", 1) for p in genome.split())
        normal = parse_cell(parts.get("n", parts.get("c")))
        reduce = parse_cell(parts.get("r", parts.get("c")))
        self.stem = nn.Sequential(nn.Conv2d(1, F, 3, 1, 1, bias=False), nn.BatchNorm2d(F))
        self.cells = nn.ModuleList()
        c, prev = F, [(F, 0), (F, 0)]  # (channels, stage) of s0 and s1
        for stage in range(3):
            for red in ([True] if stage > 0 else []) + [False] * N:
                c = c * 2 if red else c
                (c0, st0), (c1, st1) = prev
                self.cells.append(Cell(reduce if red else normal, c, red, c0, c1, st0 != st1))
                prev = [prev[1], (c, stage)]
        self.head = nn.Linear(c, 10)

    def forward(self, x):
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.head(torch.flatten(Fn.adaptive_avg_pool2d(s1, 1), 1))


class Micro(nn.Module):
    """bench.c's micro-net: stem, 4 x [ReLU-dw3x3-pw-BN + max3x3 + avg3x3], GAP, linear."""
    def __init__(self, c):
        super().__init__()
        self.stem = nn.Conv2d(1, c, 3, 1, 1)
        self.sep = nn.ModuleList(nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, 3, 1, 1, groups=c),
                                               nn.Conv2d(c, c, 1), nn.BatchNorm2d(c))
                                 for _ in range(4))
        self.mx = nn.MaxPool2d(3, 1, 1)
        self.av = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
        self.head = nn.Linear(c, 10)

    def forward(self, x):
        x = self.stem(x)
        for s in self.sep:
            x = s(x) + self.mx(x) + self.av(x)
        return self.head(torch.flatten(Fn.adaptive_avg_pool2d(x, 1), 1))


def main():
    arch, side, F, N = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    threads, windows, steps = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    net = Micro(int(arch[6:])) if arch.startswith("micro:") else CellNet(arch, F, N)
    if windows <= 0:
        print(sum(p.numel() for p in net.parameters()))
        return
    print(timed_training(net, side, windows, steps))


if __name__ == "__main__":
    main()
