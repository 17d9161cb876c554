#!/usr/bin/python3
"""PyTorch peer of `nas-train --arch resnet20 --augment --test`: the same
network (bench/train_vs_torch/torch_bench.py's ResNet-20, projection
shortcuts, no conv biases) trained by the same recipe as nas-train, so that
time to accuracy compares engines, not recipes:

  * Fashion-MNIST from the IDX .gz files; the last VAL images of the training
    file held out for validation; inputs scaled to [0, 1] and normalised by
    the mean and standard deviation of the remaining training images;
  * each epoch a fresh shuffle; random crop of the image zero-padded by 2
    (in normalised units, as nas-train pads) and a left-right flip with
    probability 1/2; batch 128, the last partial batch kept;
  * SGD with Nesterov momentum 0.9, the gradient's global norm clipped at 5
    before momentum, weight decay 5e-4 decoupled (p *= 1 - lr * wd) on every
    parameter, as common/optim.c does;
  * learning rate per step: linear warm-up to the peak over WARMUP epochs,
    then cosine to 0 at the last step (common/optim.c's nas_lr_cosine);
  * cross-entropy, BatchNorm momentum 0.1 and eps 1e-5.

Prints one JSON object like nas-train --json (val_acc, test_acc, seconds of
training, images_per_s).  usage: torch_recipe.py --help
"""
import argparse
import gzip
import json
import math
import os
import struct
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "train_vs_torch"))
from torch_bench import make  # noqa: E402


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        blob = f.read()
    magic, n = struct.unpack(">II", blob[:8])
    if magic == 0x803:
        h, w = struct.unpack(">II", blob[8:16])
        return torch.frombuffer(bytearray(blob[16:]), dtype=torch.uint8).reshape(n, 1, h, w)
    if magic == 0x801:
        return torch.frombuffer(bytearray(blob[8:]), dtype=torch.uint8).to(torch.int64)
    raise SystemExit(f"{path}: not an IDX image or label file (magic {magic:#x})")


def find(data_dir, stem):
    for suffix in (".gz", ""):
        p = os.path.join(data_dir, stem + suffix)
        if os.path.exists(p):
            return p
    raise SystemExit(f"{data_dir}: no {stem}[.gz]")


def load(data_dir, val_size, train_subset):
    x = read_idx(find(data_dir, "train-images-idx3-ubyte")).float() / 255.0
    y = read_idx(find(data_dir, "train-labels-idx1-ubyte"))
    xt = read_idx(find(data_dir, "t10k-images-idx3-ubyte")).float() / 255.0
    yt = read_idx(find(data_dir, "t10k-labels-idx1-ubyte"))
    n = x.shape[0] - val_size
    xv, yv, x, y = x[n:], y[n:], x[:n], y[:n]
    if train_subset:
        x, y = x[:train_subset], y[:train_subset]
    mean, std = x.mean().item(), x.std(unbiased=False).item()
    norm = lambda t: (t - mean) / std  # noqa: E731
    return norm(x), y, norm(xv), yv, norm(xt), yt


def augment(xb, gen, pad=2):
    """Random crop of the zero-padded batch and random flips, per image."""
    n, c, h, w = xb.shape
    padded = F.pad(xb, (pad, pad, pad, pad))
    shifts = torch.randint(0, 2 * pad + 1, (n, 2), generator=gen)
    flips = torch.randint(0, 2, (n,), generator=gen)
    out = torch.empty_like(xb)
    for i in range(n):
        dy, dx = int(shifts[i, 0]), int(shifts[i, 1])
        img = padded[i, :, dy:dy + h, dx:dx + w]
        out[i] = img.flip(-1) if flips[i] else img
    return out


def lr_at(peak, step, total, warmup):
    if warmup > 0 and step < warmup:
        return peak * (step + 1) / warmup
    span = total - warmup
    if span <= 0:
        return peak
    t = min(1.0, (step - warmup) / span)
    return 0.5 * peak * (1.0 + math.cos(math.pi * t))


@torch.no_grad()
def accuracy(net, x, y, batch=500):
    net.eval()
    hits, loss = 0, 0.0
    for i in range(0, x.shape[0], batch):
        out = net(x[i:i + batch])
        loss += F.cross_entropy(out, y[i:i + batch], reduction="sum").item()
        hits += int((out.argmax(1) == y[i:i + batch]).sum())
    net.train()
    return hits / x.shape[0], loss / x.shape[0]


@torch.no_grad()
def sgd_step(params, moms, lr, momentum=0.9, wd=5e-4, clip=5.0):
    grads = [p.grad for p in params]
    norm = torch.sqrt(sum((g * g).sum() for g in grads)).item()
    scale = clip / norm if clip > 0 and norm > clip else 1.0
    for p, g, v in zip(params, grads, moms):
        g = g * scale
        v.mul_(momentum).add_(g)
        p.mul_(1.0 - lr * wd).sub_(lr * (g + momentum * v))
    return norm


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--warmup", type=float, default=1.0, help="warm-up epochs")
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--val-size", type=int, default=5000)
    ap.add_argument("--train-subset", type=int, default=0, help="0 = all")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    x, y, xv, yv, xt, yt = load(a.data_dir, a.val_size, a.train_subset)
    net = make("resnet20")
    params = [p for p in net.parameters()]
    moms = [torch.zeros_like(p) for p in params]
    steps_per_epoch = math.ceil(x.shape[0] / a.batch)
    total, warmup = a.epochs * steps_per_epoch, int(a.warmup * steps_per_epoch)
    curve, step = [], 0
    t0 = time.perf_counter()
    for _ in range(a.epochs):
        order = torch.randperm(x.shape[0], generator=gen)
        for i in range(0, x.shape[0], a.batch):
            idx = order[i:i + a.batch]
            loss = F.cross_entropy(net(augment(x[idx], gen)), y[idx])
            if not math.isfinite(loss.item()):
                raise SystemExit(f"diverged at step {step} (loss {loss.item()})")
            net.zero_grad(set_to_none=False)
            loss.backward()
            sgd_step(params, moms, lr_at(a.lr, step, total, warmup))
            step += 1
        curve.append(accuracy(net, xv, yv)[0])
    seconds = time.perf_counter() - t0
    val_acc, val_loss = accuracy(net, xv, yv)
    test_acc, test_loss = accuracy(net, xt, yt)
    print(json.dumps({"arch": "resnet20", "engine": "pytorch " + torch.__version__,
                      "val_acc": val_acc, "val_loss": val_loss, "test_acc": test_acc,
                      "test_loss": test_loss, "val_acc_curve": curve, "epochs": a.epochs,
                      "seconds": seconds, "images_per_s": a.epochs * x.shape[0] / seconds,
                      "threads": a.threads, "seed": a.seed}))


if __name__ == "__main__":
    main(sys.argv[1:])
