"""The shipped benchmark configs, and the architecture study's report (sweeps/benchmark/report.py)."""

from __future__ import annotations

import numpy as np
import pytest

from spikebench.sweeps.benchmark import cells as BC
from spikebench.sweeps.benchmark import report as BR
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
    rows = [{"algorithm": "eventprop", "hidden": 64, "recurrent": rec, "seed": seed, "test_acc": a, "epoch_s": 2.0}
            for (rec, seed), a in acc.items()]
    text = BR.architecture_table(rows, ["eventprop"], b)
    t = stats.t.ppf(0.975, 1)
    ff_half = t * np.std([50.0, 60.0], ddof=1) / np.sqrt(2)
    gain_half = t * np.std([20.0, 16.0], ddof=1) / np.sqrt(2)
    assert f"| eventprop | 55.0 ± {ff_half:.1f} | 73.0 ± " in text
    assert f"| eventprop | +18.0 ± {gain_half:.1f} |" in text and "| eventprop | 2 | 2 |" in text
