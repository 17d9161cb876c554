"""peer_optuna.py - the peer of bench/dispatch: Optuna 3.1 with SQLite storage
on a trivial objective, the same durability class as nasd's store (every trial
committed to a SQLite file).  Prints one line:  trials=N seconds=S trials_per_s=R
"""
import argparse
import os
import tempfile
import time

import optuna


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=300)
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as d:
        url = "sqlite:///" + os.path.join(d, "optuna.db")
        study = optuna.create_study(storage=url, study_name="dispatch",
                                    sampler=optuna.samplers.RandomSampler(seed=1))
        t0 = time.perf_counter()
        study.optimize(lambda t: t.suggest_float("x", -10, 10) ** 2, n_trials=args.trials)
        secs = time.perf_counter() - t0
    print("trials=%d seconds=%.3f trials_per_s=%.1f" % (args.trials, secs, args.trials / secs))


if __name__ == "__main__":
    main()
