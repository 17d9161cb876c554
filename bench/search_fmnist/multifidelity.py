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
import os
import sys

import compare
import search_fmnist as sf

CASES = {
    "asha+evolution": ("evolution", "asha"),
    "hyperband+evolution": ("evolution", "hyperband"),
    "evolution": ("evolution", None),
    "random": ("random", None),
}


def case_yaml(case, seed, args, ports):
    """search_fmnist's campaign with the case's strategy and schedule and the
    comparison's budget."""
    strategy, kind = CASES[case]
    text = sf.campaign_yaml(strategy, seed, args, ports)
    text = text.replace(f"name: fm-{strategy}-s{seed}", f"name: mf-{case.replace('+', '-')}-s{seed}")
    text = compare.budget_yaml(text, args)
    if kind:
        text += (f"schedule:\n  kind: {kind}\n  eta: {args.eta}\n"
                 f"  rungs: [{{epochs: 1}}, {{epochs: {args.top_epochs}}}]\n")
    return text


def parse_args(argv):
    p = argparse.ArgumentParser(prog="bench/search_fmnist/multifidelity", description=__doc__)
    compare.add_common_args(p, CASES)
    p.add_argument("--eta", type=int, default=3)
    p.add_argument("--top-epochs", type=int, default=3, help="epochs of the top rung (3)")
    a = p.parse_args(argv)
    # The final stage trains at least as long as the top rung: a final
    # stage shorter than it measures what the lowest rung ranks by (how
    # fast an architecture learns in one epoch), not what promotion selects
    # for, and so scores every schedule against itself.
    if a.final_epochs is None:
        a.final_epochs = a.top_epochs
    compare.check_common_args(p, a, CASES)
    return a


def main(argv):
    args = parse_args(argv)
    cases = {c: (lambda seed, a, ports, c=c: case_yaml(c, seed, a, ports)) for c in CASES}
    runs, rc = compare.run(args, cases, "multifidelity", "search_multifidelity.svg",
                           with_ranks=lambda c: CASES[c][1] is not None)
    if runs is None:
        return rc
    for ours in ("asha+evolution", "hyperband+evolution"):
        for peer in ("evolution", "random"):
            compare.print_diff(runs, ours, peer)
    for c, rs in runs.items():
        for r in rs:
            if r["rank"]:
                print(f"# rank {c} seed {r['seed']}: {json.dumps(r['rank'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
