"""Intervals and paired comparisons for the benchmark's accuracies (what a reviewer asks of a table).

- `t_interval`: mean and the half-width of its 95 % interval from Student's t (n − 1 degrees of freedom) — for the
  mean over seeds (test file) and over left-out speakers (each speaker one value: the unit of generalisation).
- `paired_bootstrap`: the accuracy difference of two algorithms on the same recordings, with a percentile interval
  from a bootstrap that resamples the recordings (the same draw for both algorithms: that is the pairing) and the
  runs of each algorithm (its seeds, independently, since seed s of one algorithm has nothing to do with seed s of
  another), or, for leave-one-speaker-out, the speakers and then the recordings within each speaker (a two-stage
  cluster bootstrap; Davison & Hinkley 1997, §3.8). A difference is called resolved when its interval excludes 0.
- `bootstrap_accuracy`: one configuration's mean accuracy over its runs on the same recordings, with the percentile
  interval of the same crossed bootstrap (recordings × runs), for plots where a t over two seeds says nothing.

Written here rather than taken from scipy.stats.bootstrap, which resamples one index shared by all its samples and
has no two-stage (cluster) or crossed (runs × recordings) scheme.
"""

from __future__ import annotations

import math

import numpy as np


def t_interval(values, level: float = 0.95) -> tuple[float, float, int]:
    """(mean, half-width of the `level` interval, n) of the finite values; half-width nan for n < 2."""
    from scipy import stats

    v = np.array([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if not len(v):
        return float("nan"), float("nan"), 0
    if len(v) < 2:
        return float(v.mean()), float("nan"), 1
    half = stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return float(v.mean()), float(half), len(v)


def paired_bootstrap(a: list[np.ndarray], b: list[np.ndarray], clustered: bool, n_boot: int = 10000,
                     level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Accuracy of A minus accuracy of B on the same recordings, with its bootstrap interval.

    clustered=False (test file): `a`, `b` are lists of runs (seeds), each a 0/1 array over the same N recordings;
    a replicate draws N recordings (shared) and each algorithm's runs (separately), all with replacement.
    clustered=True (left-out speakers): `a[k]`, `b[k]` are the 0/1 arrays of speaker k's recordings (one run each,
    the same recordings for A and B); a replicate draws speakers, then recordings within each drawn speaker.
    Returns diff (the observed difference), lo, hi, p (two-sided, from the replicates' sign) and resolved (0/1)."""
    rng = np.random.default_rng(seed)
    if clustered:
        if len(a) != len(b) or any(len(x) != len(y) for x, y in zip(a, b)):
            raise ValueError("paired_bootstrap: the two algorithms' speakers or recordings differ")
        d = [x.astype(float) - y.astype(float) for x, y in zip(a, b)]
        observed = float(np.mean([x.mean() for x in d]))
        k = len(d)
        reps = np.empty(n_boot)
        for r in range(n_boot):
            reps[r] = np.mean([d[j][rng.integers(0, len(d[j]), len(d[j]))].mean() for j in rng.integers(0, k, k)])
    else:
        A, B = np.stack(a).astype(float), np.stack(b).astype(float)  # (runs, N)
        if A.shape[1] != B.shape[1]:
            raise ValueError("paired_bootstrap: the two algorithms were tested on different recordings")
        observed = float(A.mean() - B.mean())
        n = A.shape[1]
        reps = np.empty(n_boot)
        for r in range(n_boot):
            idx = rng.integers(0, n, n)
            ra, rb = rng.integers(0, len(A), len(A)), rng.integers(0, len(B), len(B))
            reps[r] = A[np.ix_(ra, idx)].mean() - B[np.ix_(rb, idx)].mean()
    lo, hi = np.quantile(reps, [0.5 - level / 2, 0.5 + level / 2])
    p = min(1.0, 2 * min((reps <= 0).mean(), (reps >= 0).mean()))
    return {"diff": observed, "lo": float(lo), "hi": float(hi), "p": float(p), "resolved": float(lo > 0 or hi < 0)}


def bootstrap_accuracy(runs: list[np.ndarray], n_boot: int = 10000, level: float = 0.95,
                       seed: int = 0) -> tuple[float, float, float]:
    """(mean, lo, hi) of the accuracy of `runs` (each a 0/1 array over the same N recordings): a replicate draws N
    recordings (shared by the runs) and the runs, both with replacement, as paired_bootstrap's test-file case."""
    rng = np.random.default_rng(seed)
    A = np.stack(runs).astype(float)
    n = A.shape[1]
    reps = np.empty(n_boot)
    for r in range(n_boot):
        reps[r] = A[np.ix_(rng.integers(0, len(A), len(A)), rng.integers(0, n, n))].mean()
    lo, hi = np.quantile(reps, [0.5 - level / 2, 0.5 + level / 2])
    return float(A.mean()), float(lo), float(hi)
