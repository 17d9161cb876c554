#!/usr/bin/env python3
"""A network found by nasd, as a self-contained PyTorch module.

Written by `nasctl export`.  The class NasNet builds the network that nasd
trained for this genome at this fidelity (the layer graph GRAPH below, which
nasd wrote from the network it built) and loads its weights from
weights.safetensors beside this file.  It needs PyTorch only: no nasd code,
no safetensors package.

Inputs are images scaled to [0, 1], shape (N, C, H, W) at the size in the
metadata ("input_shape"); the module applies the training set's per-channel
normalisation itself.  Outputs are logits (N, classes).

    import torch, model
    net = model.NasNet().eval()
    logits = net(images)

Command line:
    python3 model.py --check            logits against nasd's on check.safetensors
    python3 model.py --eval DIR         test accuracy on an IDX test set in DIR
    python3 model.py --onnx FILE        write an ONNX file (torch.onnx.export)
    python3 model.py --check-onnx FILE  ONNX checker, and onnxruntime's logits where installed
"""
import argparse
import gzip
import json
import os
import struct
import sys

import torch
import torch.nn.functional as F
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))

# The layer graph: live nodes in topological order (docs/EXPORT.md).
GRAPH = json.loads(r'''@GRAPH@''')


def read_safetensors(path):
    """(tensors by name, metadata) of a safetensors file, float32 only."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, t in header.items():
        if t["dtype"] != "F32":
            raise ValueError("%s: tensor %s has dtype %s, expected F32" % (path, name, t["dtype"]))
        b, e = t["data_offsets"]
        data = bytearray(blob[base + b:base + e])
        out[name] = torch.frombuffer(data, dtype=torch.float32).reshape(t["shape"]).clone() \
            if e > b else torch.zeros(t["shape"])
    return out, meta


def _key(path):
    return path.replace("/", "__")


class NasNet(nn.Module):
    """The exported network; weights default to weights.safetensors beside this file."""

    def __init__(self, weights=None, graph=GRAPH):
        super().__init__()
        tensors, meta = read_safetensors(weights or os.path.join(HERE, "weights.safetensors"))
        self.meta = meta
        self.graph = graph
        for name, t in tensors.items():
            if name.endswith("running_mean") or name.endswith("running_var"):
                self.register_buffer(_key(name), t)
            else:
                self.register_parameter(_key(name), nn.Parameter(t))
        c = graph["input"][0]
        norm = json.loads(meta.get("normalisation", "null")) or {"mean": [0.0] * c,
                                                                 "std": [1.0] * c}
        self.register_buffer("input_mean", torch.tensor(norm["mean"]).reshape(1, c, 1, 1))
        self.register_buffer("input_std", torch.tensor(norm["std"]).reshape(1, c, 1, 1))
        self.class_names = json.loads(meta.get("class_names", "[]"))

    def _p(self, path):
        return None if path is None else getattr(self, _key(path))

    def forward(self, x):
        x = (x - self.input_mean) / self.input_std
        v = {}
        for nd in self.graph["nodes"]:
            op, ins = nd["op"], [v[i] for i in nd["in"]]
            if op == "input":
                y = x
            elif op == "conv":
                y = F.conv2d(ins[0], self._p(nd["weight"]), self._p(nd["bias"]), nd["stride"],
                             tuple(nd["pad"]), nd["dilation"], nd["groups"])
            elif op == "bn":
                y = F.batch_norm(ins[0], self._p(nd["running_mean"]), self._p(nd["running_var"]),
                                 self._p(nd["weight"]), self._p(nd["bias"]), False, 0.0, nd["eps"])
            elif op == "relu":
                y = F.relu(ins[0])
            elif op == "add":
                y = ins[0] + ins[1]
            elif op == "concat":
                y = torch.cat(ins, 1)
            elif op == "maxpool":
                y = F.max_pool2d(ins[0], nd["kernel"], nd["stride"], nd["pad"])
            elif op == "avgpool":  # padding is not counted in the average
                y = F.avg_pool2d(ins[0], nd["kernel"], nd["stride"], nd["pad"],
                                 count_include_pad=False)
            elif op == "gap":
                y = ins[0].mean((2, 3), keepdim=True)
            elif op == "linear":
                y = F.linear(ins[0].flatten(1), self._p(nd["weight"]), self._p(nd["bias"]))
            elif op in ("drop_path", "dropout"):  # the identity at inference
                y = ins[0]
            elif op == "shift":  # x[:, :, 1:, 1:], zero-padded back to (H, W)
                y = F.pad(ins[0][:, :, 1:, 1:], (0, 1, 0, 1))
            elif op == "silu":
                y = F.silu(ins[0])
            elif op == "sigmoid":
                y = torch.sigmoid(ins[0])
            elif op == "scale":  # squeeze-and-excitation's per-channel gate
                y = ins[0] * ins[1]
            elif op == "zero":
                s = nd["stride"]
                y = ins[0][:, :, ::s, ::s] * 0.0
            else:
                raise ValueError("unknown op %r in the graph" % op)
            v[nd["id"]] = y
        return v[self.graph["output"]].flatten(1)


def _idx(path):
    for p in (path, path + ".gz"):
        if os.path.exists(p):
            with (gzip.open if p.endswith(".gz") else open)(p, "rb") as f:
                return f.read()
    raise FileNotFoundError(path + "[.gz]")


def load_idx_test(d):
    """Images in [0, 1] (N, 1, H, W) and labels of an IDX test set."""
    img, lab = _idx(os.path.join(d, "t10k-images-idx3-ubyte")), _idx(
        os.path.join(d, "t10k-labels-idx1-ubyte"))
    n, h, w = struct.unpack(">III", img[4:16])
    x = torch.frombuffer(bytearray(img[16:16 + n * h * w]), dtype=torch.uint8)
    y = torch.frombuffer(bytearray(lab[8:8 + n]), dtype=torch.uint8).long()
    return x.reshape(n, 1, h, w).float() / 255.0, y


def area_resize(x, side):
    """nasd's area downsampling for a whole factor (28 -> 14, 7)."""
    if x.shape[-1] == side:
        return x
    if x.shape[-1] % side:
        raise SystemExit("resize %d -> %d is not a whole factor; resize as nasd does (docs/DATA.md)"
                         % (x.shape[-1], side))
    return F.avg_pool2d(x, x.shape[-1] // side)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with nasd's logits")
    ap.add_argument("--eval", metavar="DIR", help="test accuracy on DIR/t10k-*-idx*-ubyte[.gz]")
    ap.add_argument("--onnx", metavar="FILE", help="write an ONNX file")
    ap.add_argument("--check-onnx", metavar="FILE", help="check an ONNX file")
    ap.add_argument("--tolerance", type=float, default=1e-3,
                    help="largest |difference| of a logit, relative to max(1, |logits|)")
    a = ap.parse_args()
    torch.set_grad_enabled(False)
    net = NasNet().eval()
    rc = 0
    if a.check:
        chk, _ = read_safetensors(os.path.join(HERE, "check.safetensors"))
        got = net(chk["images"])
        want = chk["logits"]
        diff = (got - want).abs().max().item()
        scale = max(1.0, want.abs().max().item())
        same = int((got.argmax(1) == want.argmax(1)).sum())
        ok = diff <= a.tolerance * scale and same == want.shape[0]
        print(json.dumps({"images": want.shape[0], "max_abs_diff": diff, "scale": scale,
                          "argmax_agree": same, "ok": ok}))
        rc |= 0 if ok else 1
    if a.eval:
        x, y = load_idx_test(a.eval)
        x = area_resize(x, GRAPH["input"][2])
        hits = sum(int((net(x[i:i + 500]).argmax(1) == y[i:i + 500]).sum())
                   for i in range(0, x.shape[0], 500))
        print(json.dumps({"images": x.shape[0], "test_accuracy": hits / x.shape[0],
                          "nasd_test_accuracy": float(net.meta.get("test_accuracy", "nan"))}))
    if a.onnx:
        c, h, w = GRAPH["input"]
        torch.onnx.export(net, torch.zeros(1, c, h, w), a.onnx, opset_version=13,
                          input_names=["images"], output_names=["logits"],
                          dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
    if a.check_onnx:
        import onnx
        onnx.checker.check_model(onnx.load(a.check_onnx))
        out = {"checker": "ok"}
        try:
            import onnxruntime
        except ImportError:
            out["onnxruntime"] = "not installed"
        else:
            chk, _ = read_safetensors(os.path.join(HERE, "check.safetensors"))
            sess = onnxruntime.InferenceSession(a.check_onnx)
            got = torch.from_numpy(sess.run(None, {"images": chk["images"].numpy()})[0])
            out["onnxruntime_max_abs_diff"] = (got - chk["logits"]).abs().max().item()
        print(json.dumps(out))
    return rc


if __name__ == "__main__":
    sys.exit(main())
