#!/usr/bin/python3
"""bench/search_fmnist/spaces: regularized evolution over each search space
(NASNet/PNAS cells, chains of layers, MBConv stages, hierarchical motifs) and
morphism-based evolution over chains, at an equal search budget on real
Fashion-MNIST training through the whole product.

Every case is search_fmnist's campaign (its data, search fidelity, workers
and evolution's P and S) with only the space, and for `chain+morphism` the
mutations, changed. Morphism evolution is the one case that inherits
weights (weights.inherit: true): a morphism's child starts from its
parent's trained weights by construction, which is the method; every other
case trains each candidate from fresh weights. The final stage retrains
each campaign's best architecture sized to the same parameter target
(final.target_params, --target-params) at 28x28 and tests it, so the picks
are compared at equal size, not as each space happens to scale.
Reported per case: best-so-far validation accuracy against epochs or wall
time (SVG plot), the final test accuracy (mean and standard error over
seeds) with the parameters the final stage chose, and each space's final
test accuracy minus the cell space's, with the standard error of the
difference.
"""
import argparse
import sys

import compare
import search_fmnist as sf

# The space block of each case's campaign; the cell space's is
# search_fmnist's own (3-block cells over its seven ops).
SPACES = {
    "cell": None,
    "chain": "space:\n  kind: chain\n",
    "mbconv": "space:\n  kind: mbconv\n",
    "hierarchical": "space:\n  kind: hierarchical\n",
    "chain+morphism": "space:\n  kind: chain\n",
}
CELL_SPACE = f"space:\n  kind: cell\n  blocks: 3\n  ops: {sf.OPS}\n"


def case_yaml(case, seed, args, ports):
    text = sf.campaign_yaml("evolution", seed, args, ports)
    if CELL_SPACE not in text:
        raise sf.BenchError("search_fmnist's campaign no longer has the cell space block "
                            "this benchmark replaces")
    text = text.replace(f"name: fm-evolution-s{seed}", f"name: sp-{case.replace('+', '-')}-s{seed}")
    if SPACES[case]:
        text = text.replace(CELL_SPACE, SPACES[case])
    if case == "chain+morphism":
        text = text.replace("  name: evolution\n", "  name: evolution\n  mutations: morphism\n")
        text = text.replace("  inherit: false\n", "  inherit: true\n")
    text = text.replace("final:\n", f"final:\n  target_params: {args.target_params}\n")
    return compare.budget_yaml(text, args)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="bench/search_fmnist/spaces", description=__doc__)
    compare.add_common_args(p, SPACES)
    p.add_argument("--target-params", type=int, default=100000,
                   help="parameter target of every final network (default 100000)")
    a = p.parse_args(argv)
    if a.final_epochs is None:
        a.final_epochs = 3
    if a.final_train_subset is None:
        a.final_train_subset = 10000
    if a.target_params < 1000:
        p.error(f"--target-params must be >= 1000, got {a.target_params}")
    compare.check_common_args(p, a, SPACES)
    return a


def main(argv):
    args = parse_args(argv)
    cases = {c: (lambda seed, a, ports, c=c: case_yaml(c, seed, a, ports)) for c in SPACES}
    runs, rc = compare.run(args, cases, "spaces", "search_spaces.svg")
    if runs is None:
        return rc
    for c in SPACES:
        if c != "cell":
            compare.print_diff(runs, c, "cell")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
