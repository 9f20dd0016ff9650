"""The verdict table: each algorithm at its tuned best, judged on the test file (seeds) and on speakers it never
heard (leave-one-speaker-out), with 95 % intervals and paired comparisons on the same recordings (stats.py).

Which figure answers which question:
- test-file accuracy: recordings the network never heard, of speakers it trained on (FSDD's own test split);
- leave-one-speaker-out accuracy: every recording of a speaker whose voice was absent from training — what a new
  user meets. Its interval is over speakers (each speaker one value), so it says how much a new voice may vary;
- "unseen by selection": the same, over the speakers that the studies' validation never used either.
"""

from __future__ import annotations

import csv
import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from spikebench.configs import compose_config, spec_of

from . import stats
from .cells import Cell
from .runner import cell_dir


def correctness(out: Path, cell: Cell) -> np.ndarray | None:
    """1/0 per tested recording (ordered by test-set index) of a finished cell, from its predictions.csv."""
    path = cell_dir(out, cell) / "predictions.csv"
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        rows = sorted((int(r["index"]), int(r["label"]) == int(r["predicted"])) for r in csv.DictReader(f))
    return np.array([ok for _, ok in rows], dtype=np.int8)


def speaker_accuracies(loso_rows: list[dict]) -> dict[int, float]:
    """{speaker: accuracy} of one algorithm's left-out-speaker rows, a speaker's seeds averaged (one value each)."""
    per_speaker: dict[int, list[float]] = {}
    for r in loso_rows:
        per_speaker.setdefault(int(r["speaker"]), []).append(float(r["test_acc"]))
    return {k: float(np.mean(v)) for k, v in sorted(per_speaker.items())}


def selection_speakers(tune_cells: list[Cell]) -> set[int]:
    """The speakers the studies validated on (data.val.speakers of the trials)."""
    used: set[int] = set()
    for c in tune_cells:
        used |= set(compose_config(c.overrides).data.val.speakers or [])
    return used


def setting(best_params: dict[str, Any], cfg: DictConfig, key: str) -> Any:
    """A key's value in the tuned configuration: the study's choice, else the fixed config's."""
    if key in best_params:
        return best_params[key]
    node: Any = cfg
    for part in key.split("."):
        node = node.get(part) if node is not None else None
    return node


def fmt(mean: float, half: float, scale: float = 100.0) -> str:
    if not math.isfinite(mean):
        return "–"
    return f"{mean * scale:.1f} ± {half * scale:.1f}" if math.isfinite(half) else f"{mean * scale:.1f}"


def verdict(out: Path, b: DictConfig, algorithms: list[str], tuned_rows: list[dict], tuned: list[Cell], loso: list[Cell],
            tune_cells: list[Cell], studies: dict[str, dict], configs: dict[str, DictConfig]) -> tuple[str, list[dict]]:
    """(markdown: the table and the paired comparisons, rows of pairs.csv)."""
    from .report import collect

    seen = selection_speakers(tune_cells)
    loso_rows = collect(out, loso)
    lines = ["| Algorithm | Test file (%) | Seeds | Left-out speakers (%) | Speakers | Unseen by selection (%) | "
             "dt (ms) | Integration | Train acc. (%) | Time / epoch (s) | Step memory (MB) | SynOps / sample | "
             "Study: trials (complete / pruned / failed), trial epochs, CPU h |", "|" + "---|" * 13]
    for a in algorithms:
        mine = [r for r in tuned_rows if r["algorithm"] == a]
        lrows = [r for r in loso_rows if r["algorithm"] == a]
        spk = speaker_accuracies(lrows)
        t_m, t_h, t_n = stats.t_interval([r["test_acc"] for r in mine])
        l_m, l_h, l_n = stats.t_interval(list(spk.values()))
        u_m, u_h, _ = stats.t_interval([v for k, v in spk.items() if k not in seen])
        study = next((s for c, s in studies.items() if c == f"tune-{a}"), None)
        row = (study or {}).get("row", {})
        params = row.get("best_params", {})
        budget = (f"{row['complete']} / {row['pruned']} / {row['failed']}, {row['trial_epochs']}, {row['cpu_h']:.1f}"
                  if row else "not finished")
        mean = lambda k: float(np.nanmean([r.get(k, float("nan")) for r in mine])) if mine else float("nan")  # noqa: E731
        spiking = spec_of(configs[a].algorithm.name).spiking  # a non-spiking reference: multiply-accumulates
        synops = mean("synops_effective_acs") if spiking else mean("synops_effective_macs")
        lines.append(
            f"| {a} | {fmt(t_m, t_h)} | {t_n} | {fmt(l_m, l_h)} | {l_n} | {fmt(u_m, u_h)} | "
            f"{1e3 * float(setting(params, configs[a], 'data.dt')):g} | "
            f"{setting(params, configs[a], 'model.integration') if spiking else '–'} | {fmt(mean('train_acc'), float('nan'))} | "
            f"{mean('epoch_s'):.3g} | {mean('step_mem_bytes') * 1e-6:.3g} | {synops:.3g}{'' if spiking else ' MACs'} | {budget} |")
    pairs = paired(out, algorithms, tuned, loso)
    text = ["| A − B | Test file: diff. (pp) [95 % interval] | resolved | Left-out speakers: diff. (pp) [95 % interval] | "
            "resolved |", "|---|---|---|---|---|"]
    for p in pairs:
        cols = []
        for kind in ("test", "loso"):
            if f"{kind}_diff" in p:
                cols += [f"{100 * p[f'{kind}_diff']:+.1f} [{100 * p[f'{kind}_lo']:+.1f}, {100 * p[f'{kind}_hi']:+.1f}]",
                         "yes" if p[f"{kind}_resolved"] else "no"]
            else:
                cols += ["–", "–"]
        text.append(f"| {p['a']} − {p['b']} | " + " | ".join(cols) + " |")
    note = (f"Test file: mean ± 95 % t-interval over seeds. Left-out speakers: for each speaker k, trained without k "
            f"and tested on all of k's recordings; mean ± 95 % t-interval over speakers. Unseen by selection: the "
            f"speakers other than {sorted(seen) or 'none'}, on which the studies validated. Paired comparisons: "
            f"bootstrap over recordings (shared by both algorithms) and seeds (test file), or over speakers and their "
            f"recordings (left-out speakers); 10 000 replicates; resolved = the interval excludes 0.")
    return "\n".join(lines + ["", "Paired comparisons:", ""] + text + ["", note]), pairs


def paired(out: Path, algorithms: list[str], tuned: list[Cell], loso: list[Cell]) -> list[dict]:
    """One row per pair of algorithms with finished cells: test-file and left-out-speaker differences."""
    test = {a: [c for c in (correctness(out, cell) for cell in tuned if cell.algorithm == a) if c is not None]
            for a in algorithms}
    spk: dict[str, dict[int, np.ndarray]] = {a: {} for a in algorithms}
    for cell in loso:  # one seed per speaker (the first found) for the pairing
        c = correctness(out, cell)
        if c is not None and cell.info["speaker"] not in spk[cell.algorithm]:
            spk[cell.algorithm][cell.info["speaker"]] = c
    rows = []
    for a, b in itertools.combinations(algorithms, 2):
        row: dict[str, Any] = {"a": a, "b": b}
        if test[a] and test[b] and len(test[a][0]) == len(test[b][0]):
            row.update({f"test_{k}": v for k, v in stats.paired_bootstrap(test[a], test[b], clustered=False).items()})
        common = sorted(set(spk[a]) & set(spk[b]))
        if len(common) >= 2:
            r = stats.paired_bootstrap([spk[a][k] for k in common], [spk[b][k] for k in common], clustered=True)
            row.update({f"loso_{k}": v for k, v in r.items()})
        if len(row) > 2:
            rows.append(row)
    return rows
