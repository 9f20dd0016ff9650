"""The shipped benchmark configs, and the architecture study's report (sweeps/benchmark/architecture.py)."""

from __future__ import annotations

import numpy as np
import pytest

from spikebench.sweeps.benchmark import architecture as BA
from spikebench.sweeps.benchmark import cells as BC
from spikebench.sweeps.benchmark import stats
from spikebench.sweeps.benchmark.config import BENCH_DIR, load_benchmark_config


@pytest.mark.parametrize("name", sorted(p.stem for p in BENCH_DIR.glob("*.yaml")))
def test_every_shipped_benchmark_config_loads_and_composes_each_of_its_cells(name):
    """A shipped benchmark whose cells do not compose would fail only hours into a long run."""
    b = load_benchmark_config(name)
    p = BC.plan(b, [], list(b.algorithms))
    assert p.configs and all(c.overrides for c in p.table + p.scaling + p.arch)


def test_architecture_table_gives_t_intervals_over_seeds_and_the_recurrent_gain_paired_by_seed():
    from omegaconf import OmegaConf
    from scipy import stats

    b = OmegaConf.create({"architecture": {"hidden": [64], "recurrent": [False, True]}})
    acc = {(False, 0): 0.50, (False, 1): 0.60, (True, 0): 0.70, (True, 1): 0.76}
    rows = [{"algorithm": "eventprop", "hidden": 64, "recurrent": rec, "seed": seed, "test_acc": a, "epoch_s": 2.0,
             "step_mem_bytes": 4e6 + 2e6 * rec + 1e6 * seed, "synops_effective_acs": 1e5}
            for (rec, seed), a in acc.items()]
    text = BA.architecture_table(rows, ["eventprop"], b)
    t = stats.t.ppf(0.975, 1)
    ff_half = t * np.std([50.0, 60.0], ddof=1) / np.sqrt(2)
    gain_half = t * np.std([20.0, 16.0], ddof=1) / np.sqrt(2)
    assert f"| eventprop | 55.0 ± {ff_half:.1f} | 73.0 ± " in text
    assert f"| eventprop | +18.0 ± {gain_half:.1f} |" in text and "| eventprop | 2 | 2 |" in text
    assert "| eventprop | 4.5 | 6.5 |" in text and "| eventprop | 1e+05 | 1e+05 |" in text  # memory (MB), SynOps: means


def test_recurrence_bootstrap_resolves_a_gain_on_shared_recordings_and_not_a_null_one():
    """Recurrent right on 80 of 100 recordings, feed-forward on 60 (both seeds alike): +20 points, an interval
    that excludes 0; two forms right on the same recordings: 0 with an interval [0, 0] that is not resolved.
    A size where one form has no finished cell shows –."""
    rng = np.random.default_rng(1)
    ff = np.zeros(100, np.int8)
    ff[rng.permutation(100)[:60]] = 1
    rec = ff.copy()
    rec[np.flatnonzero(ff == 0)[:20]] = 1  # right on 20 more recordings
    correct = {("bptt", 64, False): [ff, ff], ("bptt", 64, True): [rec, rec],
               ("eventprop", 64, False): [ff, ff], ("eventprop", 64, True): [ff.copy(), ff.copy()],
               ("bptt", 128, False): [ff]}
    text = BA.recurrence_bootstrap(correct, ["bptt", "eventprop"], [64, 128])
    bptt_row = next(line for line in text.splitlines() if line.startswith("| bptt |"))
    ep_row = next(line for line in text.splitlines() if line.startswith("| eventprop |"))
    first = bptt_row.split("|")[2].strip()
    assert first.startswith("+20.0 [") and first.endswith("✓")
    lo = float(first.split("[")[1].split(",")[0])
    assert 10.0 < lo < 20.0  # a 20-point paired gain on 100 recordings: the interval's low end sits well above 0
    assert ep_row.split("|")[2].strip() == "+0.0 [+0.0, +0.0]"
    assert bptt_row.split("|")[3].strip() == "–"


def test_bootstrap_accuracy_gives_the_mean_and_an_interval_that_narrows_with_more_recordings_and_is_zero_width_when_all_agree():
    """Two seeds right on 70 % of the recordings: the mean is 0.7 and the interval brackets it, with a half-width
    near 1.96·sqrt(0.7·0.3/N) (the recordings' binomial sampling; both seeds alike, so the runs add nothing);
    four times the recordings halve it; runs that are all right have the interval [1, 1]."""
    rng = np.random.default_rng(0)
    for n in (200, 800):
        run = (rng.permutation(n) < 0.7 * n).astype(np.int8)
        mean, lo, hi = stats.bootstrap_accuracy([run, run.copy()], n_boot=4000)
        half = 1.96 * np.sqrt(0.21 / n)
        assert mean == pytest.approx(0.7) and lo < mean < hi
        assert (hi - lo) / 2 == pytest.approx(half, rel=0.15)
    assert stats.bootstrap_accuracy([np.ones(50, np.int8)] * 2, n_boot=200) == (1.0, 1.0, 1.0)
