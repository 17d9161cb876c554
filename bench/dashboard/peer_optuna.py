"""peer_optuna.py - the peer of bench/dashboard.  optuna-dashboard is not
packaged by Debian (and PyPI is out of reach here), so, as issue 18 allows,
the peer is Optuna's own optimization-history plot on a study of the same
size: N finished trials (one float parameter, values like the nasd store's)
in an in-memory storage, then `optuna.visualization.plot_optimization_history`
timed to a plotly figure and to its JSON (what a page would be sent).  The
study is built with add_trials, outside the timing.  Prints one line:

    trials=N plot_s=S json_s=J
"""
import argparse
import random
import time

import optuna
from optuna.distributions import FloatDistribution


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=100000)
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rnd = random.Random(1)
    dist = {"x": FloatDistribution(0.0, 1.0)}
    trials = [optuna.trial.create_trial(params={"x": rnd.random()}, distributions=dist,
                                        value=0.55 + 0.4 * rnd.random())
              for _ in range(args.trials)]
    study = optuna.create_study(direction="maximize")
    study.add_trials(trials)
    t0 = time.perf_counter()
    fig = optuna.visualization.plot_optimization_history(study)
    t1 = time.perf_counter()
    fig.to_json()
    t2 = time.perf_counter()
    print("trials=%d plot_s=%.3f json_s=%.3f" % (args.trials, t1 - t0, t2 - t1))


if __name__ == "__main__":
    main()
