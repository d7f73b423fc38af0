"""How often an in-control batch breaks a Westgard rejection rule, by baseline size.

    python bench/westgard_false_alarms.py [--trials 200000] [--seed 1]

Each trial draws a baseline of N released batches and one new batch from the same normal
distribution (the process in control), sets the limits from the baseline (mean, sample
SD) as cmprep does, and asks cmprep's own ``westgard.new_point_violations`` whether the
new batch breaks 1-3s, 2-2s, R-4s, 4-1s or 10-x. The share that does is the false-alarm
rate per trended analyte: with several analytes, a good batch opens a deviation about that
many times more often. Prints the rates, never pass/fail; this is where the README's
figures for the `westgard_baseline` setting come from.
"""

from __future__ import annotations

import argparse
import random

from cmprep.domain import westgard

SIZES = (5, 10, 20, 30)


def false_alarm_rate(n: int, trials: int, seed: int) -> float:
    """The share of in-control new batches that break a rejection rule against a baseline
    of N in-control batches."""
    rng = random.Random(seed)
    hits = 0
    for _ in range(trials):
        history = [rng.gauss(0.0, 1.0) for _ in range(n)]
        mean, sd = westgard.baseline(history)
        if westgard.new_point_violations(history, rng.gauss(0.0, 1.0), mean, sd):
            hits += 1
    return hits / trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    for n in SIZES:
        rate = false_alarm_rate(n, args.trials, args.seed)
        five = 1 - (1 - rate) ** 5
        print(
            f"baseline of {n:2} released batches: {100 * rate:.1f} % per analyte "
            f"({100 * five:.0f} % of good batches with 5 trended analytes)"
        )


if __name__ == "__main__":
    main()
