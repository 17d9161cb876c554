#!/usr/bin/env python3
"""Peers for bench/search_nb201: Optuna 3.1's TPE and random samplers on
NAS-Bench-201, under the protocol of search_nb201.c (search on the 12-epoch
CIFAR-10 validation accuracy, report the 200-epoch CIFAR-10 test accuracy of
the best architecture by that signal), then the comparison with nasd's
strategies read from --ours.

Each of the six edges is one categorical choice of the five NB201 ops, so
Optuna sees exactly the 15,625 cells of the table (isomorphic cells
included, as its samplers know nothing of graph equivalence).
"""
import argparse
import csv
import math
import os
import statistics
import sys
import time

import optuna

OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
TARGET = 94.0


def load(table_dir):
    valid, test = {}, {}
    with open(os.path.join(table_dir, "nb201_12epoch_accs.csv"), newline="") as f:
        for row in csv.DictReader(f):
            valid[row["arch_str"]] = float(row["cifar10valid_valid_12ep"])
    with open(os.path.join(table_dir, "nats_bench.csv"), newline="") as f:
        for row in csv.DictReader(f):
            test[row["ArchitectureString"]] = float(row["CIFAR10TestAccuracy200Epochs"])
    if len(valid) != 15625 or set(valid) != set(test):
        sys.exit("peer_optuna: the two tables do not cover the same 15,625 cells")
    return valid, test


def arch_string(e):
    return "|%s~0|+|%s~0|%s~1|+|%s~0|%s~1|%s~2|" % tuple(e)


def run_peer(sampler, budgets, valid, test):
    """One search; returns the pick's test accuracy at each budget and the
    evaluations to reach TARGET (-1 if never)."""
    trace = []

    def objective(trial):
        e = [trial.suggest_categorical("e%d" % i, OPS) for i in range(6)]
        a = arch_string(e)
        trace.append(a)
        return valid[a]

    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=budgets[-1])
    best_v, pick, e94 = -1.0, 0.0, -1
    at = {}
    for n, a in enumerate(trace, 1):
        if valid[a] > best_v:
            best_v, pick = valid[a], test[a]
        if e94 < 0 and pick >= TARGET:
            e94 = n
        if n in budgets:
            at[n] = (pick, e94)
    return at


def summarize(vals):
    m = statistics.fmean(vals)
    sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return m, sd, sd / math.sqrt(len(vals))


def median_evals(e94s, budget):
    xs = sorted(e if e >= 0 else math.inf for e in e94s)
    med = statistics.median(xs)
    return ">%d" % budget if math.isinf(med) else "%g" % med


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--table", required=True)
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--budgets", default="50,100,200,500")
    ap.add_argument("--ours", required=True, help="TSV written by search_nb201")
    args = ap.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    valid, test = load(args.table)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    res = {}  # (strategy, budget) -> list of (acc, e94)
    with open(args.ours) as f:
        for line in f:
            name, seed, budget, acc, e94 = line.split("\t")
            res.setdefault((name, int(budget)), []).append((float(acc), int(e94)))
    ours = sorted({k[0] for k in res})

    t0 = time.time()
    peers = {
        "optuna-tpe": lambda s: optuna.samplers.TPESampler(seed=s),
        "optuna-random": lambda s: optuna.samplers.RandomSampler(seed=s),
    }
    for pname, make in peers.items():
        for seed in range(args.seeds):
            at = run_peer(make(seed), budgets, valid, test)
            for b in budgets:
                res.setdefault((pname, b), []).append(at[b])
    print("# peers: %.0f s, %d seeds each" % (time.time() - t0, args.seeds), file=sys.stderr)

    stats = {k: summarize([a for a, _ in v]) for k, v in res.items()}
    # One line per case: ours against each peer (bench/run.sh convention).
    for b in budgets:
        for o in ours:
            for p in peers:
                mo, mp = stats[(o, b)][0], stats[(p, b)][0]
                print("case=%s@%d ours=%.3f peer=%.3f peer_name=%s unit=test%% ratio=%.4f"
                      % (o, b, mo, mp, p, mo / mp))
    print()
    print("%-16s %6s %8s %6s %6s %10s" % ("strategy", "budget", "mean", "std", "se", "med->94"))
    for b in budgets:
        for name in ours + list(peers):
            m, sd, se = stats[(name, b)]
            print("%-16s %6d %8.3f %6.3f %6.3f %10s"
                  % (name, b, m, sd, se, median_evals([e for _, e in res[(name, b)]], b)))
    print()
    # The targets: at 100 evaluations evolution and PNAS beat both Optuna
    # samplers and random by more than one (combined) standard error; at
    # 200 their mean is >= 94.0.
    if 100 in budgets:
        for o in [n for n in ours if n != "random"]:
            for p in list(peers) + ["random"]:
                (mo, _, so), (mp, _, sp) = stats[(o, 100)], stats[(p, 100)]
                se = math.hypot(so, sp)
                print("target@100 %-16s vs %-14s diff=%+.3f se=%.3f %s"
                      % (o, p, mo - mp, se, "PASS" if mo - mp > se else "FAIL"))
    if 200 in budgets:
        for o in [n for n in ours if n != "random"]:
            m = stats[(o, 200)][0]
            print("target@200 %-16s mean=%.3f %s" % (o, m, "PASS" if m >= TARGET else "FAIL"))


if __name__ == "__main__":
    main()
