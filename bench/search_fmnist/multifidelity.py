#!/usr/bin/python3
"""bench/search_fmnist/multifidelity: ASHA + evolution, Hyperband + evolution,
plain evolution and random search at an equal wall-clock budget, on real
Fashion-MNIST training through the whole product (search_fmnist's campaign
runner, its fidelities and its final stage).

Every case gets the same search budget, the same seeds, the same worker
count and the same final stage (the best search result retrained at the
final fidelity and tested).  The budget is wall time (budget.wall_time,
--wall) or, with --epochs N, N epochs of training in all (budget.epochs: a
stopped run counts what it trained, a promotion the epochs it added): on a
shared machine equal wall time is not equal work, equal epochs is.  The
evaluation budget is out of reach either way.  The schedules use two rungs: the plain search fidelity (one
epoch) and three epochs, eta 3; a promotion continues from its own weights.
Reported per case: best-so-far validation accuracy against wall time (SVG
plot), the final test accuracy (mean, standard error over seeds), the
difference ASHA + evolution minus plain evolution with the standard error
of that difference, and the rank correlation between the rungs that every
scheduled campaign measured (nasctl fidelity).
"""
import argparse
import json
import math
import os
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile

import search_fmnist as sf

CASES = {
    "asha+evolution": ("evolution", "asha"),
    "hyperband+evolution": ("evolution", "hyperband"),
    "evolution": ("evolution", None),
    "random": ("random", None),
}
COLOURS = {"asha+evolution": "#d62728", "hyperband+evolution": "#ff7f0e",
           "evolution": "#2ca02c", "random": "#1f77b4"}


def case_yaml(case, seed, args, ports):
    """search_fmnist's campaign with the case's strategy and schedule and a
    wall-time budget in place of the evaluation count."""
    strategy, kind = CASES[case]
    text = sf.campaign_yaml_plain(strategy, seed, args, ports)
    text = text.replace(f"name: fm-{strategy}-s{seed}", f"name: mf-{case.replace('+', '-')}-s{seed}")
    limit = f"epochs: {args.epochs}" if args.epochs else f"wall_time: {args.wall}s"
    text = text.replace(f"  evaluations: {args.evals}\n",
                        f"  evaluations: {args.evals}\n  {limit}\n")
    if kind:
        text += (f"schedule:\n  kind: {kind}\n  eta: {args.eta}\n"
                 f"  rungs: [{{epochs: 1}}, {{epochs: {args.top_epochs}}}]\n")
    return text


def history(db, start_ms):
    """[(seconds since the campaign started, val_acc, epochs trained in all
    so far)] in completion order.  Epochs are each result's learning-curve
    length, as budget.epochs counts them (the store's curve column; nasctl
    history does not print it)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT r.created_ms, r.accuracy, r.curve FROM result r "
                           "JOIN task t ON t.id = r.task_id WHERE t.stage = 'search' "
                           "ORDER BY r.id").fetchall()
    finally:
        con.close()
    out, spent = [], 0
    for ms, acc, curve in rows:
        spent += max(len(json.loads(curve or "[]")), 1)
        out.append(((ms - start_ms) / 1000.0, acc, spent))
    return out


def best_at(hist, t, axis=0):
    """Best validation accuracy once `t` seconds (axis 0) or epochs (axis
    2) were spent."""
    best = float("nan")
    for h in hist:
        s, a = h[axis], h[1]
        if s > t:
            break
        if not math.isnan(a) and (math.isnan(best) or a > best):
            best = a
    return best


def mean_se(xs):
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    if not xs:
        return float("nan"), float("nan")
    m = statistics.fmean(xs)
    return m, (statistics.stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else float("nan"))


def svg(runs, wall, title, axis=0):
    W, H, L, R, T, B = 720, 440, 70, 190, 40, 55
    grid = [wall * i / 60 for i in range(1, 61)]
    curves = {c: [statistics.fmean([v for v in (best_at(r["hist"], t, axis) for r in rs)
                                    if not math.isnan(v)] or [float("nan")]) for t in grid]
              for c, rs in runs.items()}
    vals = [v for cv in curves.values() for v in cv if not math.isnan(v)]
    lo, hi = min(vals), max(vals)
    step = sf.nice_step(max(hi - lo, 0.01), 6)
    y0, y1 = math.floor(lo / step) * step, math.ceil(hi / step) * step
    y1 = y1 if y1 > y0 else y0 + step

    def px(x):
        return L + x / wall * (W - L - R)

    def py(y):
        return H - B - (y - y0) / (y1 - y0) * (H - T - B)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2 - R / 2}" y="20" text-anchor="middle">{sf.esc(title)}</text>']
    y = y0
    while y <= y1 + 1e-9:
        out.append(f'<line x1="{L}" x2="{W - R}" y1="{py(y):.1f}" y2="{py(y):.1f}" '
                   f'stroke="#ddd"/><text x="{L - 6}" y="{py(y) + 4:.1f}" '
                   f'text-anchor="end">{y:.3f}</text>')
        y += step
    for i in range(0, 6):
        x = wall * i / 5
        out.append(f'<text x="{px(x):.1f}" y="{H - B + 18}" text-anchor="middle">{x:.0f}</text>')
    xlabel = "search wall time (s)" if axis == 0 else "search epochs trained in all"
    out.append(f'<text x="{(L + W - R) / 2}" y="{H - 15}" text-anchor="middle">{xlabel}</text>')
    out.append(f'<text x="15" y="{(T + H - B) / 2}" transform="rotate(-90 15 {(T + H - B) / 2})" '
               f'text-anchor="middle">mean best validation accuracy</text>')
    for k, (c, cv) in enumerate(curves.items()):
        pts = " ".join(f"{px(t):.1f},{py(v):.1f}" for t, v in zip(grid, cv) if not math.isnan(v))
        out.append(f'<polyline fill="none" stroke="{COLOURS[c]}" stroke-width="2" '
                   f'points="{pts}"/>')
        out.append(f'<line x1="{W - R + 10}" x2="{W - R + 30}" y1="{T + 20 * k}" '
                   f'y2="{T + 20 * k}" stroke="{COLOURS[c]}" stroke-width="2"/>'
                   f'<text x="{W - R + 35}" y="{T + 20 * k + 4}">{sf.esc(c)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def rank_figures(bindir, db):
    """nasctl fidelity --json of one campaign (None when it has nothing)."""
    try:
        return json.loads(sf.nasctl(bindir, "fidelity", "--db", db, "--json"))
    except (sf.BenchError, ValueError):
        return None


def parse_args(argv):
    p = argparse.ArgumentParser(prog="bench/search_fmnist/multifidelity", description=__doc__)
    p.add_argument("--wall", type=int, default=300, help="search seconds per campaign (300)")
    p.add_argument("--epochs", type=int, default=0,
                   help="budget in search epochs instead of wall time (0: use --wall)")
    p.add_argument("--seeds", type=int, default=3, help="seeds 1..N (default 3)")
    p.add_argument("--first-seed", type=int, default=1,
                   help="start at this seed (runs split over machines or processes)")
    p.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--eta", type=int, default=3)
    p.add_argument("--top-epochs", type=int, default=3, help="epochs of the top rung (3)")
    p.add_argument("--population", type=int, default=10)
    p.add_argument("--sample", type=int, default=3)
    p.add_argument("--final-epochs", type=int, default=None)
    p.add_argument("--final-train-subset", type=int, default=None)
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--data-dir", default=os.environ.get("NAS_DATA_DIR",
                                                        "/usr/share/datasets/fashion-mnist"))
    p.add_argument("--out", default=None)
    p.add_argument("--svg", default=None)
    p.add_argument("--bin-dir", default=os.environ.get("NAS_BIN_DIR"))
    a = p.parse_args(argv)
    a.cases = [c for c in a.cases.split(",") if c]
    # The final stage trains at least as long as the top rung: a final
    # stage shorter than it measures what the lowest rung ranks by (how
    # fast an architecture learns in one epoch), not what promotion selects
    # for, and so scores every schedule against itself.
    if a.final_epochs is None:
        a.final_epochs = a.top_epochs
    for c in a.cases:
        if c not in CASES:
            p.error(f"--cases: unknown case '{c}' (choose from {', '.join(CASES)})")
    if not a.bin_dir:
        p.error("no binaries: set NAS_BIN_DIR or pass --bin-dir")
    # What search_fmnist's runner reads from its arguments.
    a.evals, a.final_top_k, a.inherit, a.timeout, a.progress_s = 1000000, 1, False, 0, 60
    return a


def main(argv):
    args = parse_args(argv)
    signal.signal(signal.SIGINT, sf.on_signal)
    signal.signal(signal.SIGTERM, sf.on_signal)
    sf.campaign_yaml_plain = sf.campaign_yaml
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = os.path.abspath(args.out) if args.out else tempfile.mkdtemp(prefix="multifidelity.")
    os.makedirs(out, exist_ok=True)
    svg_path = args.svg or os.path.join(root, "docs", "img", "search_multifidelity.svg")
    runs = {c: [] for c in args.cases}
    try:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for c in args.cases:
                # run_campaign writes the file through sf.campaign_yaml.
                sf.campaign_yaml = lambda s, sd, a, ports, c=c: case_yaml(c, sd, a, ports)
                print(f"# {c} seed {seed}: starting", file=sys.stderr, flush=True)
                wall, start_ms = sf.run_campaign(c, seed, args, args.bin_dir, out)
                db = os.path.join(out, f"{c}-s{seed}", "campaign.db")
                hist = history(db, start_ms)
                _, test, _ = sf.read_results(args.bin_dir, db)
                rank = rank_figures(args.bin_dir, db) if CASES[c][1] else None
                best = max((h[1] for h in hist), default=float("nan"))
                print(f"# {c} seed {seed}: {len(hist)} results, "
                      f"{hist[-1][2] if hist else 0} epochs, best val {best:.4f}, test "
                      f"{'-' if test is None else f'{test:.4f}'}, {wall:.0f} s",
                      file=sys.stderr, flush=True)
                runs[c].append({"seed": seed, "hist": hist, "test": test, "wall": wall,
                                "rank": rank})
                with open(os.path.join(out, "results.json"), "w") as f:
                    json.dump({"args": vars(args), "runs": runs}, f, default=str)
        print("| case | seeds | results | epochs | search s | best val | "
              "final test acc (mean ± s.e.) |")
        print("|---|--:|--:|--:|--:|--:|--:|")
        for c, rs in runs.items():
            m, se = mean_se([r["test"] for r in rs])
            bv = mean_se([max((h[1] for h in r["hist"]), default=float("nan")) for r in rs])[0]
            nres = statistics.fmean([len(r["hist"]) for r in rs])
            nep = statistics.fmean([r["hist"][-1][2] if r["hist"] else 0 for r in rs])
            secs = statistics.fmean([r["hist"][-1][0] if r["hist"] else 0 for r in rs])
            print(f"| {c} | {len(rs)} | {nres:.0f} | {nep:.0f} | {secs:.0f} | {bv:.4f} | "
                  f"{m:.4f} ± {se:.4f} |")
        if "asha+evolution" in runs and "evolution" in runs:
            a = [r["test"] for r in runs["asha+evolution"]]
            e = [r["test"] for r in runs["evolution"]]
            ma, sa = mean_se(a)
            me, se_ = mean_se(e)
            sd = math.sqrt(sa ** 2 + se_ ** 2)
            print(f"case=final_test_acc ours={ma:.4f} peer={me:.4f} unit=test_acc "
                  f"ratio={ma / me:.4f} diff={ma - me:+.4f} se_diff={sd:.4f}")
        for c, rs in runs.items():
            for r in rs:
                if r["rank"]:
                    print(f"# rank {c} seed {r['seed']}: {json.dumps(r['rank'])}")
        with open(svg_path, "w") as f:
            if args.epochs:
                f.write(svg(runs, args.epochs, f"Fashion-MNIST, {args.epochs} search epochs, "
                            f"{args.seeds} seed(s), {args.workers} worker(s)", axis=2))
            else:
                f.write(svg(runs, args.wall, f"Fashion-MNIST, {args.wall:.0f} s search, "
                            f"{args.seeds} seed(s), {args.workers} worker(s)"))
        print(f"# plot: {svg_path}; campaigns in {out}", file=sys.stderr)
        return 0
    except sf.Interrupted as e:
        print(f"multifidelity: {e}: stopped", file=sys.stderr)
        return 130
    except sf.BenchError as e:
        print(f"multifidelity: {e}", file=sys.stderr)
        return 1
    finally:
        if not args.out:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
