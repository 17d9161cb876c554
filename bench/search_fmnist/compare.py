"""Comparisons of whole campaigns at an equal search budget, shared by
bench/search_fmnist/multifidelity (schedulers) and bench/search_fmnist/spaces
(search spaces).

Each case is a campaign file: a function (seed, args, ports) -> YAML text,
written from search_fmnist's campaign so that every case shares its data,
fidelities, worker count and final stage except where the case differs.
Every (case, seed) runs through the real nas-master and nas-worker processes
(search_fmnist.run_campaign), one after the other. The budget is wall time
(budget.wall_time, --wall) or, with --epochs N, N epochs of training in all
(budget.epochs): on a shared machine equal wall time is not equal work,
equal epochs is. Reported per case: best-so-far validation accuracy against
wall time or epochs (SVG plot), the final stage's test accuracy (mean and
standard error over seeds), and on request the differences between cases
with the standard error of each difference.
"""
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

PALETTE = ("#d62728", "#ff7f0e", "#2ca02c", "#1f77b4", "#9467bd", "#8c564b", "#17becf")


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


def final_sizes(db):
    """[(params, macs)] of the final stage's tasks (the sizes the final
    stage chose; empty without a final stage)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT r.params, r.macs FROM result r JOIN task t "
                           "ON t.id = r.task_id WHERE t.stage = 'final' ORDER BY r.id").fetchall()
    except sqlite3.Error:
        rows = []
    finally:
        con.close()
    return rows


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
    vals = [v for cv in curves.values() for v in cv if not math.isnan(v)] or [0.0, 1.0]
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
        colour = PALETTE[k % len(PALETTE)]
        pts = " ".join(f"{px(t):.1f},{py(v):.1f}" for t, v in zip(grid, cv) if not math.isnan(v))
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
                   f'points="{pts}"/>')
        out.append(f'<line x1="{W - R + 10}" x2="{W - R + 30}" y1="{T + 20 * k}" '
                   f'y2="{T + 20 * k}" stroke="{colour}" stroke-width="2"/>'
                   f'<text x="{W - R + 35}" y="{T + 20 * k + 4}">{sf.esc(c)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def rank_figures(bindir, db):
    """nasctl fidelity --json of one campaign (None when it has nothing)."""
    try:
        return json.loads(sf.nasctl(bindir, "fidelity", "--db", db, "--json"))
    except (sf.BenchError, ValueError):
        return None


def add_common_args(p, cases, population=10, sample=3):
    """The flags every comparison takes."""
    p.add_argument("--wall", type=int, default=300, help="search seconds per campaign (300)")
    p.add_argument("--epochs", type=int, default=0,
                   help="budget in search epochs instead of wall time (0: use --wall)")
    p.add_argument("--seeds", type=int, default=3, help="seeds 1..N (default 3)")
    p.add_argument("--first-seed", type=int, default=1,
                   help="start at this seed (runs split over machines or processes)")
    p.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--population", type=int, default=population)
    p.add_argument("--sample", type=int, default=sample)
    p.add_argument("--final-epochs", type=int, default=None)
    p.add_argument("--final-train-subset", type=int, default=None)
    p.add_argument("--cases", default=",".join(cases), help=f"subset of {','.join(cases)}")
    p.add_argument("--data-dir", default=os.environ.get("NAS_DATA_DIR",
                                                        "/usr/share/datasets/fashion-mnist"))
    p.add_argument("--out", default=None,
                   help="directory for the campaigns and results.json (default: a temporary "
                        "directory, removed at the end)")
    p.add_argument("--svg", default=None, help="where the plot goes (default under docs/img)")
    p.add_argument("--bin-dir", default=os.environ.get("NAS_BIN_DIR"))


def check_common_args(p, a, cases):
    a.cases = [c for c in a.cases.split(",") if c]
    for c in a.cases:
        if c not in cases:
            p.error(f"--cases: unknown case '{c}' (choose from {', '.join(cases)})")
    if a.sample > a.population:
        p.error(f"--sample ({a.sample}) must be <= --population ({a.population})")
    if not a.bin_dir:
        p.error("no binaries: set NAS_BIN_DIR or pass --bin-dir")
    # What search_fmnist's runner reads from its arguments.
    a.evals, a.final_top_k, a.inherit, a.timeout, a.progress_s = 1000000, 1, False, 0, 60


def budget_yaml(text, args):
    """search_fmnist's campaign with a wall-time or epoch budget beside the
    (unreachable) evaluation count."""
    limit = f"epochs: {args.epochs}" if args.epochs else f"wall_time: {args.wall}s"
    return text.replace(f"  evaluations: {args.evals}\n",
                        f"  evaluations: {args.evals}\n  {limit}\n")


def run(args, cases, prog, svg_name, with_ranks=lambda case: False):
    """Runs every selected case for every seed and prints the table; returns
    ({case: [{seed, hist, test, wall, rank, sizes}]}, 0), or (None, exit
    status) when interrupted (130) or failed (1), the message printed."""
    signal.signal(signal.SIGINT, sf.on_signal)
    signal.signal(signal.SIGTERM, sf.on_signal)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = os.path.abspath(args.out) if args.out else tempfile.mkdtemp(prefix=f"{prog}.")
    os.makedirs(out, exist_ok=True)
    svg_path = args.svg or os.path.join(root, "docs", "img", svg_name)
    runs = {c: [] for c in args.cases}
    try:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for c in args.cases:
                print(f"# {c} seed {seed}: starting", file=sys.stderr, flush=True)
                folder = c.replace("+", "-")
                wall, start_ms = sf.run_campaign(folder, seed, args, args.bin_dir, out,
                                                 make_yaml=cases[c])
                db = os.path.join(out, f"{folder}-s{seed}", "campaign.db")
                hist = history(db, start_ms)
                _, test, _ = sf.read_results(args.bin_dir, db)
                rank = rank_figures(args.bin_dir, db) if with_ranks(c) else None
                best = max((h[1] for h in hist), default=float("nan"))
                sizes = final_sizes(db)
                print(f"# {c} seed {seed}: {len(hist)} results, "
                      f"{hist[-1][2] if hist else 0} epochs, best val {best:.4f}, test "
                      f"{'-' if test is None else f'{test:.4f}'}, {wall:.0f} s"
                      + (f", final params {sizes[0][0]}" if sizes else ""),
                      file=sys.stderr, flush=True)
                runs[c].append({"seed": seed, "hist": hist, "test": test, "wall": wall,
                                "rank": rank, "sizes": sizes})
                with open(os.path.join(out, "results.json"), "w") as f:
                    json.dump({"args": vars(args), "runs": runs}, f, default=str)
        print_table(runs)
        with open(svg_path, "w") as f:
            if args.epochs:
                f.write(svg(runs, args.epochs, f"Fashion-MNIST, {args.epochs} search epochs, "
                            f"{args.seeds} seed(s), {args.workers} worker(s)", axis=2))
            else:
                f.write(svg(runs, args.wall, f"Fashion-MNIST, {args.wall:.0f} s search, "
                            f"{args.seeds} seed(s), {args.workers} worker(s)"))
        print(f"# plot: {svg_path}; campaigns in {out}", file=sys.stderr)
        return runs, 0
    except sf.Interrupted as e:
        print(f"{prog}: {e}: stopped", file=sys.stderr)
        return None, 130
    except sf.BenchError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return None, 1
    finally:
        if not args.out:
            shutil.rmtree(out, ignore_errors=True)


def print_table(runs):
    print("| case | seeds | results | epochs | search s | best val | final params | "
          "final test acc (mean ± s.e.) |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|")
    for c, rs in runs.items():
        m, se = mean_se([r["test"] for r in rs])
        bv = mean_se([max((h[1] for h in r["hist"]), default=float("nan")) for r in rs])[0]
        nres = statistics.fmean([len(r["hist"]) for r in rs])
        nep = statistics.fmean([r["hist"][-1][2] if r["hist"] else 0 for r in rs])
        secs = statistics.fmean([r["hist"][-1][0] if r["hist"] else 0 for r in rs])
        params = [r["sizes"][0][0] for r in rs if r.get("sizes")]
        ptxt = f"{statistics.fmean(params):.0f}" if params else "-"
        print(f"| {c} | {len(rs)} | {nres:.0f} | {nep:.0f} | {secs:.0f} | {bv:.4f} | {ptxt} | "
              f"{m:.4f} ± {se:.4f} |")


def print_diff(runs, ours, peer):
    """One bench line: ours minus peer in final test accuracy, with the
    standard error of the difference."""
    if ours not in runs or peer not in runs:
        return
    mo, so = mean_se([r["test"] for r in runs[ours]])
    mp, sp = mean_se([r["test"] for r in runs[peer]])
    sd = math.sqrt(so ** 2 + sp ** 2)
    print(f"case=final_test_acc ours={ours} peer={peer} {mo:.4f} vs {mp:.4f} "
          f"ratio={mo / mp:.4f} diff={mo - mp:+.4f} se_diff={sd:.4f}")
