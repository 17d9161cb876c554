#!/usr/bin/python3
"""bench/search_fmnist: regularized evolution against random search on real
low-fidelity Fashion-MNIST training, through the whole product.

For every (strategy, seed) the driver writes one campaign file, starts the
real nas-master and N nas-worker processes on loopback TCP, waits for the
campaign (search stage, then the final retraining of the top-k), and reads
the results back through nasctl: the best-so-far validation accuracy after
each evaluation in completion order, and the test accuracy of the best
architecture after the final stage.  Campaigns run one after the other so
that they never compete for the cores.  It prints one line per case in the
bench convention (ours = evolution, peer = random), a table of mean +- std
over seeds, and writes an SVG plot of the mean best-so-far curves with
min/max bands.

The analysis half (curves, table, SVG) is plain functions over lists, so
`--self-test` checks it on made-up histories without training anything.
"""
import argparse
import csv
import io
import json
import math
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

STRATEGIES = ("evolution", "random")
COLOURS = {"evolution": "#d62728", "random": "#1f77b4"}

# The search fidelity is deploy/examples/quick.yaml's (a few seconds per
# candidate on one core); the final fidelity trains the winner at full
# resolution on more data for a test-set figure.  Both are written out in
# full so the benchmark does not drift when product defaults change.
SEARCH_FIDELITY = {
    "resolution": 14, "train_subset": 4000, "val_size": 1000, "epochs": 1, "batch": 64,
    "channels": 8, "cells": 1, "lr": 0.1, "threads": 1,
}
FINAL_FIDELITY = {
    "resolution": 28, "train_subset": 20000, "val_size": 5000, "epochs": 2, "batch": 64,
    "channels": 8, "cells": 1, "lr": 0.1, "warmup_epochs": 0, "augment": False, "test": True,
    "threads": 1,
}
OPS = "[id, avg3x3, max3x3, sep3x3, sep5x5, dil3x3, conv1x1]"


class BenchError(Exception):
    """A failure the user should read about as one line, not a traceback."""


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; everything started must be stopped."""


def on_signal(signum, frame):
    # Raised in the main thread wherever it is; the finally blocks of
    # run_campaign then stop the processes it started.
    raise Interrupted(signal.Signals(signum).name)


# ---------------------------------------------------------------- campaign

def yaml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def campaign_yaml(strategy, seed, args, ports):
    """The campaign file of one run.  Evolution and random search share
    everything but the strategy block, so the budget and fidelity are equal."""
    if strategy == "evolution":
        strat = f"  name: evolution\n  population: {args.population}\n  sample: {args.sample}\n"
    else:
        strat = "  name: random\n"
    final = dict(FINAL_FIDELITY)
    final["seed"] = seed
    if args.final_train_subset is not None:
        final["train_subset"] = args.final_train_subset
    if args.final_epochs is not None:
        final["epochs"] = args.final_epochs
    search = dict(SEARCH_FIDELITY)
    search["seed"] = seed
    lines = [
        f"# written by bench/search_fmnist: {strategy}, seed {seed}",
        f"name: fm-{strategy}-s{seed}",
        f"seed: {seed}",
        "data:",
        "  set: fashion-mnist",
        f"  dir: {args.data_dir}",
        "space:",
        "  kind: cell",
        "  blocks: 3",
        f"  ops: {OPS}",
        "strategy:",
        strat.rstrip("\n"),
        "budget:",
        f"  evaluations: {args.evals}",
        "fidelity:",
    ]
    lines += [f"  {k}: {yaml_value(v)}" for k, v in search.items()]
    lines += ["final:", f"  top_k: {args.final_top_k}", "  fidelity:"]
    lines += [f"    {k}: {yaml_value(v)}" for k, v in final.items()]
    lines += [
        "weights:",
        f"  inherit: {yaml_value(args.inherit)}",
        "listen:",
        f"  control: tcp://127.0.0.1:{ports[0]}",
        f"  weights: tcp://127.0.0.1:{ports[1]}",
        f"  status: tcp://127.0.0.1:{ports[2]}",
        "workers:",
        "  heartbeat_ms: 1000",
        "  liveness: 10",
        "  max_attempts: 3",
        "store: campaign.db",
    ]
    return "\n".join(lines) + "\n"


def free_ports(n):
    """n loopback ports that are free now.  Other people's processes share
    this machine, so fixed ports would collide; the sockets are held until
    all n are chosen so the same port is not handed out twice."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def stop(procs, first_signal=signal.SIGTERM, grace_s=10.0):
    """Signal every live process, wait up to grace_s in all, then kill what
    is left.  Each process is one we started, addressed by its own pid."""
    for p in procs:
        if p.poll() is None:
            try:
                p.send_signal(first_signal)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace_s
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def stop_campaign(master, workers, files):
    """Stops a campaign's processes: the master first with a graceful stop
    (leases are cancelled and re-queued), then the workers, which otherwise
    keep reconnecting; then closes their log files. A second Ctrl-C must not
    cut this short and orphan a process."""
    old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    old_term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        if master is not None:
            stop([master])
        stop(workers)
        for f in files:
            f.close()
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)


def count_results(db):
    """Results committed so far (search and final), read-only; None while
    the master has not created the file yet."""
    if not os.path.exists(db):
        return None
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2)
        try:
            return con.execute("SELECT count(*) FROM result").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return None


def campaign_state(db):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        row = con.execute("SELECT state FROM campaign WHERE id = 1").fetchone()
        return row[0] if row else None
    finally:
        con.close()


def tail(path, n=5):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def run_campaign(strategy, seed, args, bindir, out, make_yaml=None):
    """Runs one campaign to its end and returns (its wall time in seconds,
    the Unix time in ms it started at, to compare with store timestamps).
    make_yaml(seed, args, ports) writes the campaign file's text (default:
    campaign_yaml for `strategy`); `strategy` names the run's folder.
    Every process started here is stopped before this returns or raises."""
    cdir = os.path.join(out, f"{strategy}-s{seed}")
    os.makedirs(cdir, exist_ok=True)
    db = os.path.join(cdir, "campaign.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.remove(db + suffix)  # a fresh campaign: never resume an old run
    ports = free_ports(3)
    cfg = os.path.join(cdir, "campaign.yaml")
    with open(cfg, "w") as f:
        f.write(make_yaml(seed, args, ports) if make_yaml
                else campaign_yaml(strategy, seed, args, ports))

    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    master = None
    workers = []
    files = []
    start = time.monotonic()
    start_ms = time.time() * 1000.0
    try:
        mout = open(os.path.join(cdir, "master.out"), "w")
        mlog = open(os.path.join(cdir, "master.log"), "w")
        files += [mout, mlog]
        # start_new_session: a terminal Ctrl-C reaches only this driver,
        # which then stops the children in order (master first).
        master = subprocess.Popen(
            [os.path.join(bindir, "nas-master"), cfg, "--db", db, "--cancel-on-stop",
             "--log-level", "info"],
            cwd=cdir, stdout=mout, stderr=mlog, env=env, start_new_session=True)
        for i in range(args.workers):
            wlog = open(os.path.join(cdir, f"worker-{i + 1}.log"), "w")
            files.append(wlog)
            workers.append(subprocess.Popen(
                [os.path.join(bindir, "nas-worker"), "--master", f"tcp://127.0.0.1:{ports[0]}",
                 "--weights", f"tcp://127.0.0.1:{ports[1]}", "--name", f"fm-{i + 1}",
                 "--threads", "1"],
                cwd=cdir, stdout=wlog, stderr=subprocess.STDOUT, env=env,
                start_new_session=True))
        last_report = start
        total = args.evals + args.final_top_k
        while master.poll() is None:
            time.sleep(0.5)
            now = time.monotonic()
            if args.timeout and now - start > args.timeout:
                raise BenchError(f"{strategy} seed {seed}: not done after {args.timeout} s "
                                 f"(--timeout); logs in {cdir}")
            if all(w.poll() is not None for w in workers):
                # Workers leave when the master says the campaign is done,
                # which can be a moment before the master itself exits.
                try:
                    master.wait(timeout=30)
                    break
                except subprocess.TimeoutExpired:
                    pass
                raise BenchError(f"{strategy} seed {seed}: every worker exited while the "
                                 f"campaign ran; the end of worker-1.log:\n"
                                 f"{tail(os.path.join(cdir, 'worker-1.log'))}")
            if now - last_report >= args.progress_s:
                last_report = now
                n = count_results(db)
                print(f"#   {strategy} seed {seed}: {n if n is not None else 0}/{total} "
                      f"results, {now - start:.0f} s", file=sys.stderr, flush=True)
        wall = time.monotonic() - start
        if master.returncode != 0:
            raise BenchError(f"{strategy} seed {seed}: nas-master exited with "
                             f"{master.returncode}; the end of {cdir}/master.log:\n"
                             f"{tail(os.path.join(cdir, 'master.log'))}")
        state = campaign_state(db)
        if state != "done":
            raise BenchError(f"{strategy} seed {seed}: the campaign ended in state "
                             f"'{state}', not 'done'; see {cdir}/master.log")
        return wall, start_ms
    finally:
        stop_campaign(master, workers, files)


def nasctl(bindir, *argv):
    r = subprocess.run([os.path.join(bindir, "nasctl"), *argv], capture_output=True, text=True)
    if r.returncode != 0:
        raise BenchError(f"nasctl {' '.join(argv)}: exit {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def read_results(bindir, db):
    """(validation accuracies in completion order, final-stage test accuracy
    of the best architecture or None, Unix ms of the last search result)
    from the campaign's store."""
    rows = list(csv.DictReader(io.StringIO(nasctl(bindir, "history", "--db", db, "--csv"))))
    # nasctl history lists results in the order they were recorded, which is
    # the order the master committed them: completion order.
    rows.sort(key=lambda r: int(r["seq"]))
    accs = [float(r["val_acc"]) for r in rows]
    last_ms = max((int(r["finished_ms"]) for r in rows), default=None)
    best = json.loads(nasctl(bindir, "best", "--db", db, "--k", "1", "--json"))
    final = [r for r in best.get("final", []) if r.get("test_accuracy") is not None]
    test = None
    if final:
        # With top_k > 1 the campaign's answer is the retrained architecture
        # that validates best at the final fidelity; its test figure is
        # reported (never the best test figure, which would peek at the test set).
        test = max(final, key=lambda r: r["accuracy"])["test_accuracy"]
    return accs, test, last_ms


# ---------------------------------------------------------------- analysis

def best_so_far(accs, n):
    """Best validation accuracy after each of the first n evaluations.  A
    campaign with fewer results (failed tasks spend budget without one)
    keeps its last value; NaN never counts as an improvement."""
    out, best = [], float("nan")
    for a in accs[:n]:
        if not math.isnan(a) and (math.isnan(best) or a > best):
            best = a
        out.append(best)
    while len(out) < n:
        out.append(best)
    return out


def checkpoints(evals):
    pts = [c for c in (25, 50, 100, 150) if c < evals]
    if len(pts) < 2:
        pts = sorted({max(1, evals // 4), max(1, evals // 2)} - {evals})
    return pts + [evals]


def mean_std(xs):
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    if not xs:
        return float("nan"), float("nan")
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def fmt_ms(xs, digits=4):
    m, s = mean_std(xs)
    if math.isnan(m):
        return "-"
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def summarise(runs, evals):
    """runs: {strategy: [ {seed, accs, test, search, wall} ]} -> (case lines,
    table text); search is the search stage's seconds (None if unknown)."""
    pts = checkpoints(evals)
    curves = {s: [best_so_far(r["accs"], evals) for r in rs] for s, rs in runs.items()}
    lines = []
    if "evolution" in runs and "random" in runs:
        for c in pts:
            ours = mean_std([cv[c - 1] for cv in curves["evolution"]])[0]
            peer = mean_std([cv[c - 1] for cv in curves["random"]])[0]
            lines.append(f"case=best_val_at_{c} ours={ours:.4f} peer={peer:.4f} unit=val_acc "
                         f"ratio={ours / peer:.4f}")
        ours = mean_std([r["test"] for r in runs["evolution"]])[0]
        peer = mean_std([r["test"] for r in runs["random"]])[0]
        if not math.isnan(ours) and not math.isnan(peer):
            lines.append(f"case=final_test_acc ours={ours:.4f} peer={peer:.4f} unit=test_acc "
                         f"ratio={ours / peer:.4f}")
    head = ["strategy", "seeds"] + [f"best val @{c}" for c in pts] + ["final test acc",
                                                                       "search min",
                                                                       "wall min"]
    rows = [head]
    for s, rs in runs.items():
        row = [s, str(len(rs))]
        row += [fmt_ms([cv[c - 1] for cv in curves[s]]) for c in pts]
        row += [fmt_ms([r["test"] for r in rs]),
                fmt_ms([r["search"] / 60 if r.get("search") else None for r in rs], 1),
                fmt_ms([r["wall"] / 60 for r in rs], 1)]
        rows.append(row)
    table = "| " + " | ".join(rows[0]) + " |\n|" + "---|" * 2 + "--:|" * (len(head) - 2) + "\n"
    table += "".join("| " + " | ".join(r) + " |\n" for r in rows[1:])
    return lines, table


# ---------------------------------------------------------------- SVG plot

def nice_step(span, target):
    raw = span / max(1, target)
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= raw:
            return m * mag
    return 10 * mag


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def steps(idx, ys, px, py):
    """SVG points of a best-so-far curve as a staircase: the value after
    evaluation i holds until evaluation i + 1 changes it."""
    pts = []
    for k, (i, y) in enumerate(zip(idx, ys)):
        if k > 0:
            pts.append(f"{px(i + 1):.1f},{py(ys[k - 1]):.1f}")
        pts.append(f"{px(i + 1):.1f},{py(y):.1f}")
    return pts


def svg_plot(runs, evals, title):
    """Mean best-so-far validation accuracy against evaluations, one polyline
    per strategy, the min/max over seeds as a translucent band."""
    W, H, L, R, T, B = 720, 440, 70, 20, 40, 55
    curves = {s: [best_so_far(r["accs"], evals) for r in rs] for s, rs in runs.items()}
    vals = [v for cs in curves.values() for c in cs for v in c if not math.isnan(v)]
    if not vals:
        raise BenchError("nothing to plot: no campaign returned a result")
    lo, hi = min(vals), max(vals)
    step = nice_step(max(hi - lo, 0.01), 6)
    y0 = math.floor(lo / step) * step
    y1 = math.ceil(hi / step) * step
    if y1 <= y0:
        y1 = y0 + step
    x0, x1 = 1, max(2, evals)

    def px(x):
        return L + (x - x0) / (x1 - x0) * (W - L - R)

    def py(y):
        return T + (y1 - y) / (y1 - y0) * (H - T - B)

    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
         f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{W / 2:.0f}" y="22" text-anchor="middle" font-size="14">{esc(title)}</text>']
    # Grid and tick labels.
    y = y0
    while y <= y1 + step / 2:
        o.append(f'<line x1="{L}" y1="{py(y):.1f}" x2="{W - R}" y2="{py(y):.1f}" '
                 f'stroke="#ddd"/>')
        o.append(f'<text x="{L - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:.3f}</text>')
        y += step
    xs = nice_step(x1 - x0, 8)
    x = xs if xs > 1 else 1
    ticks = [1] + [t for t in range(int(x), x1 + 1, max(1, int(x)))]
    for t in sorted(set(ticks)):
        o.append(f'<line x1="{px(t):.1f}" y1="{H - B}" x2="{px(t):.1f}" y2="{H - B + 5}" '
                 f'stroke="black"/>')
        o.append(f'<text x="{px(t):.1f}" y="{H - B + 18}" text-anchor="middle">{t}</text>')
    o.append(f'<rect x="{L}" y="{T}" width="{W - L - R}" height="{H - T - B}" fill="none" '
             f'stroke="black"/>')
    o.append(f'<text x="{(L + W - R) / 2:.0f}" y="{H - 12}" text-anchor="middle">'
             f'evaluations (completion order)</text>')
    o.append(f'<text x="16" y="{(T + H - B) / 2:.0f}" text-anchor="middle" '
             f'transform="rotate(-90 16 {(T + H - B) / 2:.0f})">best validation accuracy so far'
             f'</text>')
    for s, cs in curves.items():
        colour = COLOURS.get(s, "#2ca02c")
        idx = [i for i in range(evals) if not any(math.isnan(c[i]) for c in cs)]
        if not idx:
            continue
        if len(cs) > 1:
            upper = steps(idx, [max(c[i] for c in cs) for i in idx], px, py)
            lower = steps(idx, [min(c[i] for c in cs) for i in idx], px, py)
            o.append(f'<polygon class="band" points="{" ".join(upper + lower[::-1])}" '
                     f'fill="{colour}" fill-opacity="0.15" stroke="none"/>')
        mean = steps(idx, [statistics.fmean(c[i] for c in cs) for i in idx], px, py)
        o.append(f'<polyline class="mean" points="{" ".join(mean)}" fill="none" '
                 f'stroke="{colour}" stroke-width="2"/>')
    # Legend, bottom right: best-so-far curves rise, so that corner is free.
    lx, ly = W - R - 230, H - B - 18 - 20 * len(curves)
    # An opaque box, so that a band passing under the legend cannot hide it.
    o.append(f'<rect x="{lx - 8}" y="{ly - 12}" width="228" height="{20 * len(curves) + 4}" '
             f'fill="white" fill-opacity="0.9" stroke="#999"/>')
    for k, (s, cs) in enumerate(curves.items()):
        colour = COLOURS.get(s, "#2ca02c")
        yy = ly + 20 * k
        o.append(f'<line x1="{lx}" y1="{yy}" x2="{lx + 24}" y2="{yy}" stroke="{colour}" '
                 f'stroke-width="2"/>')
        band = ", band min-max" if len(cs) > 1 else ""
        o.append(f'<text x="{lx + 30}" y="{yy + 4}">{esc(s)}: mean of {len(cs)} '
                 f'seed{"s" if len(cs) != 1 else ""}{band}</text>')
    o.append("</svg>")
    return "\n".join(o) + "\n"


# ---------------------------------------------------------------- self-test

def self_test():
    """Checks the analysis on made-up histories; exits non-zero on failure."""
    bsf = best_so_far([0.5, float("nan"), 0.4, 0.7, 0.6], 7)
    assert bsf == [0.5, 0.5, 0.5, 0.7, 0.7, 0.7, 0.7], bsf
    assert math.isnan(best_so_far([float("nan")], 2)[1])
    assert checkpoints(150) == [25, 50, 100, 150], checkpoints(150)
    assert checkpoints(12) == [3, 6, 12], checkpoints(12)
    assert checkpoints(60) == [25, 50, 60], checkpoints(60)
    assert mean_std([1.0, 3.0]) == (2.0, math.sqrt(2.0))
    runs = {
        "evolution": [{"seed": 1, "accs": [0.6, 0.7, 0.8, 0.75], "test": 0.81, "wall": 60,
                       "search": 30},
                      {"seed": 2, "accs": [0.65, 0.66, 0.9, 0.7], "test": 0.83, "wall": 120}],
        "random": [{"seed": 1, "accs": [0.6, 0.62, 0.64, 0.7], "test": 0.80, "wall": 60},
                   {"seed": 2, "accs": [0.7, 0.6, 0.6, 0.6], "test": 0.78, "wall": 60}],
    }
    lines, table = summarise(runs, 4)
    assert lines[-2].startswith("case=best_val_at_4 ours=0.8500 peer=0.7000"), lines
    assert lines[-1].startswith("case=final_test_acc ours=0.8200 peer=0.7900"), lines
    assert "| evolution | 2 | 0.6250 ± 0.0354 |" in table, table
    assert "| 0.5 ± 0.0 | 1.5 ± 0.7 |" in table, table
    assert "| - | 1.0 ± 0.0 |" in table, table
    svg = svg_plot(runs, 4, "self-test")
    root = ET.fromstring(svg)  # well-formed XML or this raises
    ns = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f"{ns}polyline")) == 2
    assert len(root.findall(f"{ns}polygon")) == 2
    # Higher accuracy is drawn higher: evolution's last point above random's.
    ys = [float(p.get("points").split()[-1].split(",")[1]) for p in root.findall(f"{ns}polyline")]
    assert ys[0] < ys[1], ys
    y = campaign_yaml("evolution", 3, argparse.Namespace(
        population=20, sample=5, evals=150, final_top_k=1, final_train_subset=None,
        final_epochs=None, data_dir="/d", inherit=False), [1, 2, 3])
    for want in ("seed: 3\n", "  population: 20\n", "  evaluations: 150\n", "  top_k: 1\n",
                 "    resolution: 28\n", "    test: true\n", "  inherit: false\n",
                 "  control: tcp://127.0.0.1:1\n"):
        assert want in y, want
    print("search_fmnist self-test: ok")


# ---------------------------------------------------------------- main

def positive(name):
    def conv(s):
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} needs an integer, got '{s}'")
        if v < 1:
            raise argparse.ArgumentTypeError(f"{name} must be >= 1, got {v}")
        return v
    return conv


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="bench/run.sh search_fmnist",
        description="Regularized evolution vs random search on real low-fidelity Fashion-MNIST "
                    "training through nas-master and nas-worker (one campaign per strategy and "
                    "seed, run one after the other), then the best architecture's test accuracy "
                    "after the final stage. Prints case lines (ours = evolution, peer = random) "
                    "and a mean ± std table, and writes an SVG plot.")
    p.add_argument("--evals", type=positive("--evals"), default=150,
                   help="search evaluations per campaign (default 150)")
    p.add_argument("--seeds", type=positive("--seeds"), default=3,
                   help="seeds 1..N per strategy (default 3)")
    p.add_argument("--workers", type=positive("--workers"), default=len(os.sched_getaffinity(0)),
                   help="nas-worker processes per campaign (default: the core count)")
    p.add_argument("--population", type=positive("--population"), default=20,
                   help="evolution population P (default 20)")
    p.add_argument("--sample", type=positive("--sample"), default=5,
                   help="evolution tournament size S (default 5)")
    p.add_argument("--final-top-k", type=int, default=1,
                   help="architectures retrained at the final fidelity (default 1; 0 = none)")
    p.add_argument("--final-epochs", type=positive("--final-epochs"), default=None,
                   help=f"final-stage epochs (default {FINAL_FIDELITY['epochs']})")
    p.add_argument("--final-train-subset", type=positive("--final-train-subset"), default=None,
                   help=f"final-stage training images (default {FINAL_FIDELITY['train_subset']})")
    p.add_argument("--inherit", action="store_true",
                   help="let evolution's children inherit their parent's weights (the product "
                        "default; off here so every evaluation trains from scratch at the same "
                        "fidelity and the curves compare architectures, not training time)")
    p.add_argument("--strategies", default="evolution,random",
                   help="comma-separated subset of evolution,random")
    p.add_argument("--data-dir", default=os.environ.get("NAS_DATA_DIR",
                                                        "/usr/share/datasets/fashion-mnist"),
                   help="Fashion-MNIST IDX files (default $NAS_DATA_DIR or the Debian package's)")
    p.add_argument("--out", default=None,
                   help="directory for the campaigns, logs, results.json and table.md "
                        "(default: a temporary directory, removed at the end)")
    p.add_argument("--svg", default=None,
                   help="where the plot goes (default docs/img/search_fmnist.svg, or "
                        "OUT/search_fmnist.svg when --out is given)")
    p.add_argument("--timeout", type=float, default=0,
                   help="give up on a campaign after this many seconds (default: never)")
    p.add_argument("--progress-s", type=float, default=60, help=argparse.SUPPRESS)
    p.add_argument("--bin-dir", default=os.environ.get("NAS_BIN_DIR"),
                   help="folder with nas-master, nas-worker, nasctl (default $NAS_BIN_DIR)")
    p.add_argument("--self-test", action="store_true",
                   help="check the analysis and plot code on made-up data and exit")
    a = p.parse_args(argv)
    if a.self_test:
        return a
    a.strategies = [s for s in a.strategies.split(",") if s]
    bad = [s for s in a.strategies if s not in STRATEGIES]
    if bad or not a.strategies:
        p.error(f"--strategies: unknown strategy '{bad[0] if bad else ''}' "
                f"(choose from {', '.join(STRATEGIES)})")
    if not 0 <= a.final_top_k <= a.evals:
        p.error(f"--final-top-k must be in 0..{a.evals} (--evals), got {a.final_top_k}")
    if "evolution" in a.strategies:
        if a.sample > a.population:
            p.error(f"--sample ({a.sample}) must be <= --population ({a.population})")
        if a.population > a.evals:
            p.error(f"--population ({a.population}) must be <= --evals ({a.evals}): "
                    f"the first population would never fill")
    if not a.bin_dir:
        p.error("no binaries: set NAS_BIN_DIR or pass --bin-dir (bench/run.sh does this)")
    for b in ("nas-master", "nas-worker", "nasctl"):
        if not os.access(os.path.join(a.bin_dir, b), os.X_OK):
            p.error(f"{a.bin_dir}/{b} is missing or not executable; build first")
    if not any(os.access(os.path.join(a.data_dir, f), os.R_OK)
               for f in ("train-images-idx3-ubyte.gz", "train-images-idx3-ubyte")):
        p.error(f"Fashion-MNIST not found in {a.data_dir} (install dataset-fashion-mnist or "
                f"pass --data-dir)")
    return a


def main(argv):
    args = parse_args(argv)
    if args.self_test:
        self_test()
        return 0
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    scratch = False
    if args.out:
        out = os.path.abspath(args.out)
        os.makedirs(out, exist_ok=True)
        svg_path = args.svg or os.path.join(out, "search_fmnist.svg")
    else:
        out = tempfile.mkdtemp(prefix="search_fmnist.")
        scratch = True
        svg_path = args.svg or os.path.join(root, "docs", "img", "search_fmnist.svg")
    ok = False
    try:
        print(f"# search_fmnist: {args.evals} evaluations, seeds 1..{args.seeds}, "
              f"{args.workers} worker(s), strategies {','.join(args.strategies)}, "
              f"inherit={'on' if args.inherit else 'off'}; campaigns in {out}",
              file=sys.stderr, flush=True)
        runs = {s: [] for s in args.strategies}
        # Seeds outer, strategies inner: load on the shared machine that
        # drifts over the run then touches both strategies alike.
        for seed in range(1, args.seeds + 1):
            for s in args.strategies:
                print(f"# {s} seed {seed}: starting", file=sys.stderr, flush=True)
                wall, start_ms = run_campaign(s, seed, args, args.bin_dir, out)
                accs, test, last_ms = read_results(args.bin_dir, os.path.join(out, f"{s}-s{seed}",
                                                                     "campaign.db"))
                if len(accs) < args.evals:
                    print(f"# warning: {s} seed {seed}: {len(accs)} results for {args.evals} "
                          f"evaluations (failed tasks)", file=sys.stderr)
                best = max((a for a in accs if not math.isnan(a)), default=float("nan"))
                print(f"# {s} seed {seed}: {len(accs)} results, best val {best:.4f}, final test "
                      f"{'-' if test is None else f'{test:.4f}'}, {wall:.0f} s",
                      file=sys.stderr, flush=True)
                search = (last_ms - start_ms) / 1000.0 if last_ms else None
                runs[s].append({"seed": seed, "accs": accs, "test": test, "search": search,
                                "wall": wall})
                with open(os.path.join(out, "results.json"), "w") as f:
                    json.dump({"args": {k: v for k, v in vars(args).items()}, "runs": runs}, f)
        lines, table = summarise(runs, args.evals)
        for line in lines:
            print(line)
        print()
        print(table, end="")
        with open(os.path.join(out, "table.md"), "w") as f:
            f.write(table)
        title = (f"Fashion-MNIST, {args.evals} evaluations at 14x14 / 4000 images / 1 epoch, "
                 f"{args.seeds} seed{'s' if args.seeds != 1 else ''}")
        svg = svg_plot(runs, args.evals, title)
        os.makedirs(os.path.dirname(os.path.abspath(svg_path)), exist_ok=True)
        with open(svg_path, "w") as f:
            f.write(svg)
        print(f"# plot: {svg_path}", file=sys.stderr)
        ok = True
        return 0
    except Interrupted as e:
        print(f"search_fmnist: {e}: stopped; every process it started is stopped",
              file=sys.stderr)
        return 130
    except BenchError as e:
        print(f"search_fmnist: {e}", file=sys.stderr)
        return 1
    finally:
        # A scratch directory goes on success; after a failure its logs are
        # what the user needs, so it stays and is named.
        if scratch and ok:
            shutil.rmtree(out, ignore_errors=True)
        elif scratch:
            print(f"search_fmnist: campaigns and logs kept in {out}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
