#!/usr/bin/python3
"""bench/fmnist_e2e: search, final stage and export on real Fashion-MNIST,
through the whole product, and the exported model checked in PyTorch.

For each campaign file (default: deploy/examples/fmnist.yaml and
fmnist-small.yaml) the driver starts the real nas-master and N nas-worker
processes on loopback TCP, waits for the campaign to finish (search, then
the final stage: the winners sized to the file's targets and retrained
with its final recipe and seeds), reads the final results back through
nasctl (test accuracy mean +- std over seeds, parameters, MACs, F and N),
exports the best run with `nasctl export --best`, and evaluates the
exported PyTorch module (model.py, Debian's python3-torch) on the
10000-image test set.  The export passes when PyTorch's test accuracy is
within --max-diff (0.1 points) of the accuracy nasd recorded.

With --baseline, ResNet-20 is trained by nas-train with the same final
recipe (epochs, schedule, augmentation, label smoothing; seeds as the
campaign) for the comparison the issue asks for.  --short scales everything
down (a few minutes of search, one final epoch on 3000 images) to show that the
pipeline works end to end; its accuracies mean nothing.

Prints one line per case in the bench convention,
  case=<name> ours=<figure> peer=<figure> unit=<unit> ratio=<ours/peer>
and a table beside the published Fashion-MNIST figures.
"""
import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bench", "search_fmnist"))
from search_fmnist import (BenchError, campaign_state, count_results, free_ports,  # noqa: E402
                           nasctl, stop_campaign, tail)

DATA = "/usr/share/datasets/fashion-mnist"
CAMPAIGNS = ("fmnist.yaml", "fmnist-small.yaml")

# The published table the issue compares with (test accuracy, parameters).
PUBLISHED = [
    ("2-conv net (<100K)", 0.925, "<100K"),
    ("ResNet-20 (ours, 20 epochs)", 0.9346, "0.27M"),
    ("MobileNet", 0.950, "-"),
    ("DenseNet-BC", 0.954, "768K"),
    ("WRN-40-4", 0.967, "8.9M"),
]

# --short: a few minutes of search and one final epoch on a subset, two seeds (one round
# on two workers), and a warm-up short enough for one epoch.  Every other recipe key
# (cutout, aux head, drop-path, smoothing, size target) stays as the file sets it, so the
# short run exercises the same code.
SHORT = {
    "budget": {"evaluations": 8, "wall_time": "4m"},
    "fidelity": {"train_subset": 2000, "val_size": 1000, "epochs": 1, "time_limit": "5m"},
    "final": {"seeds": 2,
              "fidelity": {"train_subset": 3000, "val_size": 1000, "epochs": 1,
                           "warmup_epochs": 0.1, "time_limit": "30m"}},
    "strategy": {"population": 4, "sample": 2},
}


def merge(dst, src):
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            merge(dst[k], v)
        else:
            dst[k] = v


def campaign_file(src, out, ports, short, data_dir):
    with open(src) as f:
        cfg = yaml.safe_load(f)
    if short:
        merge(cfg, SHORT)
    cfg.setdefault("data", {})["dir"] = data_dir
    cfg["listen"] = {"control": f"tcp://127.0.0.1:{ports[0]}",
                     "weights": f"tcp://127.0.0.1:{ports[1]}",
                     "status": f"tcp://127.0.0.1:{ports[2]}"}
    cfg["store"] = "campaign.db"
    path = os.path.join(out, "campaign.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    return path, cfg


def wait_exit(proc, seconds):
    try:
        proc.wait(timeout=seconds)
        return True
    except subprocess.TimeoutExpired:
        return False


def run_campaign(name, src, args, bindir, out):
    """Runs one campaign to its end; returns (wall seconds, its config).  Every process
    started here is stopped before this returns or raises."""
    cdir = os.path.join(out, name)
    os.makedirs(cdir, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        p = os.path.join(cdir, "campaign.db" + suffix)
        if os.path.exists(p):
            os.remove(p)  # a fresh campaign: never resume an old run
    cfg_path, cfg = campaign_file(src, cdir, free_ports(3), args.short, args.data)
    db = os.path.join(cdir, "campaign.db")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    master, workers, files = None, [], []
    start = time.monotonic()
    try:
        mout = open(os.path.join(cdir, "master.out"), "w")
        mlog = open(os.path.join(cdir, "master.log"), "w")
        files += [mout, mlog]
        master = subprocess.Popen(
            [os.path.join(bindir, "nas-master"), cfg_path, "--db", db, "--cancel-on-stop",
             "--log-level", "info"],
            cwd=cdir, stdout=mout, stderr=mlog, env=env, start_new_session=True)
        port = cfg["listen"]["control"]
        for i in range(args.workers):
            wlog = open(os.path.join(cdir, f"worker-{i + 1}.log"), "w")
            files.append(wlog)
            workers.append(subprocess.Popen(
                [os.path.join(bindir, "nas-worker"), "--master", port, "--name", f"e2e-{i + 1}"],
                cwd=cdir, stdout=wlog, stderr=subprocess.STDOUT, env=env,
                start_new_session=True))
        last = start
        while master.poll() is None:
            time.sleep(1.0)
            now = time.monotonic()
            if args.timeout and now - start > args.timeout:
                raise BenchError(f"{name}: not done after {args.timeout} s; logs in {cdir}")
            # Workers leave when the master says the campaign is done, just before it exits.
            if all(w.poll() is not None for w in workers) and not wait_exit(master, 60):
                raise BenchError(f"{name}: every worker exited; the end of worker-1.log:\n"
                                 f"{tail(os.path.join(cdir, 'worker-1.log'))}")
            if now - last >= args.progress_s:
                last = now
                n = count_results(db)
                print(f"#   {name}: {n or 0} results, {now - start:.0f} s", file=sys.stderr,
                      flush=True)
        if master.returncode != 0:
            raise BenchError(f"{name}: nas-master exited with {master.returncode}; the end of "
                             f"master.log:\n{tail(os.path.join(cdir, 'master.log'))}")
        if campaign_state(db) != "done":
            raise BenchError(f"{name}: the campaign did not end 'done'; see {cdir}/master.log")
        return time.monotonic() - start, cfg
    finally:
        stop_campaign(master, workers, files)


def mean_std(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None, None
    return statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0


def final_groups(bindir, db):
    """The final stage's results grouped by architecture: test accuracies over seeds,
    params, MACs."""
    best = json.loads(nasctl(bindir, "best", "--db", db, "--k", "1", "--json"))
    groups = {}
    for r in best.get("final", []):
        g = groups.setdefault(r["arch"], {"test": [], "val": [], "params": r.get("params"),
                                          "macs": r.get("macs")})
        g["test"].append(r.get("test_accuracy"))
        g["val"].append(r.get("accuracy", r.get("val_accuracy")))
    return groups


def safetensors_meta(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)).get("__metadata__", {})


def export_and_check(name, bindir, db, out, args):
    """nasctl export --best, then PyTorch's test accuracy of model.py against nasd's."""
    edir = os.path.join(out, name, "export")
    nasctl(bindir, "export", "--db", db, "--best", "--out", edir, "--data", args.data)
    meta = safetensors_meta(os.path.join(edir, "weights.safetensors"))
    # One PyTorch thread: its spinning threads collapse on a busy two-core machine.
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(["/usr/bin/python3", os.path.join(edir, "model.py"), "--eval", args.data],
                       capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise BenchError(f"{name}: model.py --eval failed: {r.stderr.strip()[-400:]}")
    ev = json.loads(r.stdout.strip().splitlines()[-1])
    fid = json.loads(meta.get("fidelity", "{}"))
    return {"torch": ev["test_accuracy"], "nasd": float(meta.get("test_accuracy", "nan")),
            "task": meta.get("task"), "params": int(meta.get("params", 0)),
            "macs": int(meta.get("macs", 0)), "F": fid.get("channels"), "N": fid.get("cells")}


def resnet20(bindir, cfg, args, out):
    """ResNet-20 by nas-train with the campaign's final recipe, one run per seed."""
    f = cfg["final"]["fidelity"]
    seeds = cfg["final"].get("seeds", 1)
    base = f.get("seed", cfg.get("fidelity", {}).get("seed", 1))
    accs, walls = [], []
    for s in range(seeds):
        argv = [os.path.join(bindir, "nas-train"), "--arch", "resnet20", "--data-dir", args.data,
                "--epochs", str(f.get("epochs", 20)), "--batch", str(f.get("batch", 128)),
                "--lr", str(f.get("lr", 0.1)), "--warmup", str(f.get("warmup_epochs", 0)),
                "--train-subset", str(f.get("train_subset", 0)),
                "--val-size", str(f.get("val_size", 5000)), "--resolution", "0",
                "--label-smoothing", str(f.get("label_smoothing", 0)),
                "--cutout", str(f.get("cutout", 0)), "--seed", str(base + s),
                "--threads", str(args.workers), "--test", "--json"]
        if f.get("augment"):
            argv.append("--augment")
        t0 = time.monotonic()
        r = subprocess.run(argv, capture_output=True, text=True)
        if r.returncode != 0:
            raise BenchError(f"nas-train resnet20: {r.stderr.strip()[-400:]}")
        accs.append(json.loads(r.stdout.strip().splitlines()[-1]).get("test_acc"))
        walls.append(time.monotonic() - t0)
    return accs, sum(walls)


def fmt(m, s):
    return "-" if m is None else f"{100 * m:.2f} +- {100 * s:.2f}"


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("campaigns", nargs="*", help="campaign files (default: "
                    "deploy/examples/fmnist.yaml and fmnist-small.yaml)")
    ap.add_argument("--short", action="store_true",
                    help="a few minutes per campaign: shows the pipeline works, not accuracy")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--baseline", action="store_true",
                    help="also train ResNet-20 with nas-train and the same final recipe")
    ap.add_argument("--data", default=DATA, help=f"Fashion-MNIST folder (default {DATA})")
    ap.add_argument("--out", help="keep campaigns, logs and exports here (default: a temp dir)")
    ap.add_argument("--max-diff", type=float, default=0.001,
                    help="largest |PyTorch - nasd| test accuracy (default 0.001 = 0.1 points)")
    ap.add_argument("--reuse", action="store_true",
                    help="skip the campaigns: report, export and check the finished ones in --out")
    ap.add_argument("--timeout", type=float, default=0, help="seconds per campaign, 0 = none")
    ap.add_argument("--progress-s", type=float, default=60)
    ap.add_argument("--bin", default=os.environ.get("NAS_BIN_DIR"),
                    help="folder with nas-master, nas-worker, nasctl, nas-train")
    args = ap.parse_args(argv)
    if not args.bin:
        raise BenchError("no binaries: give --bin or set NAS_BIN_DIR (bench/run.sh does)")
    files = args.campaigns or [os.path.join(ROOT, "deploy", "examples", c) for c in CAMPAIGNS]
    out = args.out or tempfile.mkdtemp(prefix="fmnist_e2e-")
    os.makedirs(out, exist_ok=True)
    rows, failed = [], 0
    for src in files:
        name = os.path.splitext(os.path.basename(src))[0] + ("-short" if args.short else "")
        print(f"# {name}: campaign {src}", file=sys.stderr, flush=True)
        db = os.path.join(out, name, "campaign.db")
        if args.reuse:
            with open(os.path.join(out, name, "campaign.yaml")) as f:
                wall, cfg = float("nan"), yaml.safe_load(f)
            if campaign_state(db) != "done":
                raise BenchError(f"{name}: --reuse needs a finished campaign in {db}")
        else:
            wall, cfg = run_campaign(name, src, args, args.bin, out)
        groups = final_groups(args.bin, db)
        ex = export_and_check(name, args.bin, db, out, args)
        diff = abs(ex["torch"] - ex["nasd"])
        ok = diff <= args.max_diff
        failed += not ok
        for arch, g in groups.items():
            m, s = mean_std(g["test"])
            rows.append((name, arch, g["params"], g["macs"], m, s, len(g["test"])))
        best = max(groups.values(), key=lambda g: mean_std(g["test"])[0] or 0)
        m, s = mean_std(best["test"])
        print(f"case={name}-test-acc ours={m:.4f} peer={PUBLISHED[1][1]:.4f} unit=accuracy "
              f"ratio={m / PUBLISHED[1][1]:.4f}")
        print(f"case={name}-export ours={ex['torch']:.4f} peer={ex['nasd']:.4f} unit=accuracy "
              f"ratio={ex['torch'] / ex['nasd']:.4f} diff={diff:.4f} "
              f"{'ok' if ok else 'FAIL'}")
        print(f"# {name}: {wall:.0f} s; best {fmt(m, s)} % over {len(best['test'])} seed(s), "
              f"{ex['params']} params, {ex['macs']} MACs, F {ex['F']} N {ex['N']}; exported "
              f"task {ex['task']}: PyTorch {100 * ex['torch']:.2f} % vs nasd "
              f"{100 * ex['nasd']:.2f} %", flush=True)
        if args.baseline:
            accs, bwall = resnet20(args.bin, cfg, args, os.path.join(out, name))
            bm, bs = mean_std(accs)
            rows.append((name, "resnet20 (nas-train, same recipe)", 272474, 40551552, bm, bs,
                         len(accs)))
            print(f"case={name}-vs-resnet20 ours={m:.4f} peer={bm:.4f} unit=accuracy "
                  f"ratio={m / bm:.4f} resnet20_wall_s={bwall:.0f}")
    print("\n| campaign | network | params | MACs | test accuracy % (mean +- std) | seeds |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | `{r[1]}` | {r[2]} | {r[3]} | {fmt(r[4], r[5])} | {r[6]} |")
    for p in PUBLISHED:
        print(f"| published | {p[0]} | {p[2]} | - | {100 * p[1]:.1f} | - |")
    print(f"# campaigns, logs and exports in {out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as e:
        print(f"fmnist_e2e: {e}", file=sys.stderr)
        sys.exit(1)
