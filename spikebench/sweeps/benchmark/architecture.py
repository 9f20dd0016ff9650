"""The architecture study's report (phase `architecture`; the thesis's §6): accuracy, costs and the recurrent −
feed-forward gain over hidden sizes, from the finished cells' rows and per-recording correctness.

- architecture.md: test accuracy (mean ± 95 % t-interval over seeds); time per epoch, step memory and SynOps per
  sample (means over seeds); recurrent − feed-forward paired by seed (t-interval) and by a bootstrap over the tested
  recordings and each form's seeds (`stats.paired_bootstrap`).
- architecture.csv: one row per cell with those columns.
- architecture.png (plots.architecture): accuracy with a bootstrap interval, time and step memory against size.

Why two intervals: a study with two seeds gives the t-interval over seeds one degree of freedom (t = 12.7), so it
says little; the bootstrap also counts the sampling of the test recordings (every cell of a row is tested on the
same recordings: the pairing), which the seed-paired interval leaves out. Both are printed, labelled.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from .cells import Cell
from .runner import is_done
from .stats import bootstrap_accuracy, paired_bootstrap, t_interval
from .verdict import correctness

COLUMNS = ["test_acc", "best_val_acc", "epochs", "epoch_s", "step_mem_bytes", "synops_effective_acs",
           "synops_effective_macs", "rate_hz"]
COSTS = [  # (row key, title, scale, format): means over seeds
    ("epoch_s", "Time per epoch (s, mean over seeds; wall time of the cell's process, which shares the machine "
                "with whatever else ran)", 1.0, ".3g"),
    ("step_mem_bytes", "Step memory (MB, mean over seeds: the allocator's peak during the first training step, "
                       "as in the table)", 1e-6, ".3g"),
    ("synops_effective_acs", "SynOps per sample, accumulates (NeuroBench's Effective_ACs on the test set: binary "
                             "spikes into weights; mean over seeds)", 1.0, ".3g"),
    ("synops_effective_macs", "SynOps per sample, multiply-accumulates (NeuroBench's Effective_MACs: non-binary "
                              "inputs, e.g. binned counts fed as dense frames; read with the ACs)", 1.0, ".3g"),
]
Form = tuple[str, int, bool]  # (algorithm, hidden, recurrent)


def interval_cell(values: list[float], spec: str = ".1f") -> str:
    """100 × mean ± half-width of the 95 % t-interval (stats.t_interval); the mean alone for one value, – for
    none."""
    m, half, n = t_interval(values)
    if not n:
        return "–"
    return format(100 * m, spec) + (f" ± {100 * half:.1f}" if n > 1 else "")


def mean_cell(values: list[Any], scale: float, spec: str) -> str:
    v = [float(x) for x in values if x is not None and x != "" and math.isfinite(float(x))]
    return format(scale * float(np.mean(v)), spec) if v else "–"


def architecture_table(rows: list[dict[str, Any]], algorithms: list[str], b: DictConfig) -> str:
    """Over (hidden, ff/rec): test accuracy (mean ± 95 % t-interval over seeds); the costs (means over seeds); and,
    where both forms ran, recurrent − feed-forward in points, paired by seed, with its t-interval."""
    kinds = [(name, rec) for name, rec in (("ff", False), ("rec", True)) if rec in list(b.architecture.recurrent)]
    sizes = list(b.architecture.hidden)

    def mine(a: str, h: int, rec: bool) -> dict[int, dict[str, Any]]:
        return {r["seed"]: r for r in rows if r["algorithm"] == a and r["hidden"] == h and r["recurrent"] == rec}

    def table(header: list[str], cells) -> list[str]:
        out = ["| Algorithm | " + " | ".join(header) + " |", "|" + "---|" * (len(header) + 1)]
        return out + [f"| {a} | " + " | ".join(cells(a)) + " |" for a in algorithms]

    by_kind = [f"{h} {name}" for h in sizes for name, _ in kinds]
    lines = table(by_kind, lambda a: [interval_cell([r["test_acc"] for r in mine(a, h, rec).values()])
                                      for h in sizes for _, rec in kinds])
    for key, title, scale, spec in COSTS:
        lines += ["", title + ":", ""]
        lines += table(by_kind, lambda a: [mean_cell([r.get(key) for r in mine(a, h, rec).values()], scale, spec)
                                           for h in sizes for _, rec in kinds])
    if len(kinds) == 2:

        def gains(a: str) -> list[str]:
            out = []
            for h in sizes:
                ff, rec = mine(a, h, False), mine(a, h, True)
                out.append(interval_cell([rec[s]["test_acc"] - ff[s]["test_acc"] for s in sorted(set(ff) & set(rec))],
                                         "+.1f"))
            return out

        lines += ["", "Recurrent − feed-forward, test accuracy (points; paired by seed, mean ± 95 % "
                      "t-interval):", ""]
        lines += table([str(h) for h in sizes], gains)
    return "\n".join(lines)


def recurrence_bootstrap(correct: dict[Form, list[np.ndarray]], algorithms: list[str], sizes: list[int]) -> str:
    """Recurrent − feed-forward per algorithm and hidden size from the cells' per-recording correctness
    (`correct[(algorithm, hidden, recurrent)]`: one 0/1 array per seed), by stats.paired_bootstrap: the recordings
    are resampled once for both forms, each form's seeds independently."""
    head = ["| Algorithm | " + " | ".join(str(h) for h in sizes) + " |", "|" + "---|" * (len(sizes) + 1)]
    rows = []
    for a in algorithms:
        cells = []
        for h in sizes:
            rec, ff = correct.get((a, h, True), []), correct.get((a, h, False), [])
            if not rec or not ff or len(rec[0]) != len(ff[0]):
                cells.append("–")
                continue
            r = paired_bootstrap(rec, ff, clustered=False)
            cells.append(f"{100 * r['diff']:+.1f} [{100 * r['lo']:+.1f}, {100 * r['hi']:+.1f}]"
                         + (" ✓" if r["resolved"] else ""))
        rows.append(f"| {a} | " + " | ".join(cells) + " |")
    return "\n".join(head + rows)


def accuracy_intervals(correct: dict[Form, list[np.ndarray]]) -> dict[Form, tuple[float, float, float]]:
    """(mean, lo, hi) in percent of each form's accuracy: stats.bootstrap_accuracy over recordings and seeds."""
    return {form: tuple(100 * x for x in bootstrap_accuracy(runs)) for form, runs in correct.items() if runs}


def correctness_by_form(out: Path, cells: list[Cell], seeds: list[int]) -> dict[Form, list[np.ndarray]]:
    """Each finished cell's per-recording correctness (verdict.correctness), grouped by (algorithm, hidden,
    recurrent), for the given seeds."""
    correct: dict[Form, list[np.ndarray]] = {}
    for c in cells:
        ok = correctness(out, c) if c.info.get("seed") in seeds and is_done(out, c) else None
        if ok is not None:
            correct.setdefault((c.algorithm, c.info["hidden"], c.info["recurrent"]), []).append(ok)
    return correct


def report(rows: list[dict[str, Any]], correct: dict[Form, list[np.ndarray]], algorithms: list[str],
           b: DictConfig) -> str:
    """The text of architecture.md."""
    text = (f"# Architecture study `{b.name}`: test accuracy (%, mean ± 95 % t-interval over seeds)\n\n"
            + architecture_table(rows, algorithms, b))
    if len(list(b.architecture.recurrent)) == 2:
        text += ("\n\nRecurrent − feed-forward, test accuracy (points; bootstrap over the tested recordings, "
                 "shared by both forms, and each form's seeds; 10 000 replicates; [95 % percentile interval], ✓ = "
                 "the interval excludes 0):\n\n" + recurrence_bootstrap(correct, algorithms, list(b.architecture.hidden)))
    return text + "\n"
