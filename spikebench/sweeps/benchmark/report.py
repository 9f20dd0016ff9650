"""Reports: results.csv, scaling.csv, architecture.csv, table.md (the tuned table, the studies and the shared-setting
table), architecture.md, environment.yaml, and the figures (plots.py)."""

from __future__ import annotations

import csv
import math
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from omegaconf import DictConfig

from ..storage import mask_password
from . import architecture, tuning
from .cells import Cell, Plan
from .runner import done_file, is_done
from .work import git_commit

TABLE_COLUMNS = [  # (csv key, header, scale, format)
    ("test_acc", "Test acc. (%)", 100.0, ".1f"),
    ("best_val_acc", "Best val. acc. (%)", 100.0, ".1f"),
    ("epochs", "Epochs", 1.0, ".0f"),
    ("epoch_s", "Time / epoch (s)", 1.0, ".3g"),
    ("samples_per_s", "Samples / s", 1.0, ".3g"),
    ("step_mem_bytes", "Step memory (MB)", 1e-6, ".3g"),
    ("batch_bytes", "Batch (MB)", 1e-6, ".3g"),
    ("rate_hz", "Hidden rate (Hz)", 1.0, ".3g"),
    ("activation_sparsity", "Activation sparsity", 1.0, ".3f"),
    ("synops_effective_acs", "SynOps Effective_ACs", 1.0, ".3g"),
    ("synops_effective_macs", "SynOps Effective_MACs", 1.0, ".3g"),
    ("synops_dense", "SynOps Dense", 1.0, ".3g"),
    ("footprint", "Footprint (kB)", 1e-3, ".4g"),
    ("connection_sparsity", "Connection sparsity", 1.0, ".3f"),
]
ID_COLUMNS = ["setting", "algorithm", "hidden", "recurrent", "seed"]
EXTRA_COLUMNS = ["train_wall_s", "train_cpu_s", "saved_bytes", "process_peak_rss_bytes", "process_gpu_peak_bytes",
                 "heuristics", "host", "commit", "finished"]
IDENTITY = ("setting", "hidden", "recurrent", "seed", "speaker", "steps", "batch", "table_steps", "table_hidden")  # from a cell's info
SCALING_COLUMNS = ["algorithm", "steps", "hidden", "batch", "step_s", "samples_per_s", "step_mem_bytes", "batch_bytes",
                   "saved_bytes",
                   "step_rss_growth_bytes"]


MEMORY_NOTE = (
    "Accuracies: mean ± sample standard deviation over seeds; other columns: means. Step memory: the peak of tensor "
    "memory allocated during the run's first training step (untrained weights, a real batch) beyond what existed "
    "before it (parameters, optimiser state and the batch excluded alike; algorithms/measure.py: PyTorch's "
    "allocation events on CPU, the allocator's peak on CUDA). Batch: that step's input as the algorithm received "
    "it (data.format: dense frames, or the event list of its non-zero bins). results.csv also holds the bytes saved for backward "
    "(saved-tensor hooks; bookkeeping, not memory) and the cell process's peak RSS (imports and data included; not "
    "an algorithm figure). SynOps: per sample, NeuroBench's definitions (sweeps/benchmark/neurobench.py), on the test set."
)


def collect(out: Path, cells: list[Cell]) -> list[dict[str, Any]]:
    """The finished cells' rows, in the cells' order, with their identifying columns."""
    rows = []
    for c in cells:
        if is_done(out, c):
            data = yaml.safe_load(done_file(out, c).read_text())
            ident = {"algorithm": c.algorithm, **{k: c.info[k] for k in IDENTITY if k in c.info}}
            where = {k: data.get(k) for k in ("host", "commit", "finished")}
            rows.append({**ident, **data["row"], **where, "_curve": data.get("curve")})
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in columns})


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n − 1; 0 for one value) of the finite values."""
    v = np.array([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if not len(v):
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def summary(rows: list[dict[str, Any]], algorithms: list[str]) -> list[dict[str, Any]]:
    """Per algorithm: n seeds and (mean, std) of every table column."""
    out = []
    for a in algorithms:
        mine = [r for r in rows if r["algorithm"] == a]
        if mine:
            out.append({"algorithm": a, "n": len(mine), **{k: mean_std([r.get(k) for r in mine]) for k, *_ in TABLE_COLUMNS},
                        "heuristics": next((str(r["heuristics"]) for r in mine if r.get("heuristics")), "")})
    return out


def fmt_cell(mean: float, std: float, scale: float, spec: str, with_std: bool) -> str:
    if not math.isfinite(mean):
        return "–"
    text = format(mean * scale, spec)
    return f"{text} ± {format(std * scale, spec)}" if with_std and math.isfinite(std) else text


def markdown_table(summ: list[dict[str, Any]]) -> str:
    """The table: mean ± std over seeds for accuracies, means elsewhere; columns without any value left out."""
    cols = [c for c in TABLE_COLUMNS if any(math.isfinite(s[c[0]][0]) for s in summ)]
    heur = any(s.get("heuristics") for s in summ)
    lines = ["| Algorithm | Seeds | " + " | ".join(h for _, h, *_ in cols) + (" | Heuristics (not the loss gradient)" if heur
             else "") + " |", "|" + "---|" * (len(cols) + 2 + heur)]
    for s in summ:
        with_std = s["n"] > 1
        cells = [fmt_cell(*s[k], scale, spec, with_std and k in ("test_acc", "best_val_acc")) for k, _, scale, spec in cols]
        cells += [s.get("heuristics") or "–"] if heur else []
        lines.append(f"| {s['algorithm']} | {s['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def environment(argv: list[str], mode: str) -> dict[str, Any]:
    """Versions, device, commit and command of this run."""
    import importlib.metadata as md

    import torch

    versions = {}
    for pkg in ("torch", "lightning", "numpy", "omegaconf", "h5py", "matplotlib", "triton"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    cuda = torch.cuda.is_available()
    return {
        "command": mask_password("python -m spikebench.sweeps.benchmark " + " ".join(argv)),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        **git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "cuda": torch.version.cuda if cuda else None,
        "isolation": mode,
        "versions": versions,
    }


def write_reports(out: Path, b: DictConfig, algorithms: list[str], plan: Plan, failures: dict[str, str], header: str,
                  plots: bool = False) -> None:
    """Every report the finished cells allow (cells still running or not started are left out)."""
    rows = collect(out, plan.table)
    trows = collect(out, plan.tuned)
    summ, tsumm = summary(rows, algorithms), summary(trows, algorithms)
    studies = tuning.read_study_rows(out, plan.tune, is_done, done_file)
    text = [f"# Benchmark `{b.name}`", "", header, ""]
    if plan.tune or plan.tuned:
        text += ["## Each algorithm at its tuned best (test file, mean ± sample std over seeds)", "", tuning.budget_text(b), "", markdown_table(tsumm) if tsumm
                 else "(no retrained cell finished yet)", "", "### Studies", "", tuning.studies_table(plan.tune, studies), "",
                 "Best parameters (train.py overrides):", "", tuning.best_params_text(plan.tune, studies) or "(none yet)", "",
                 "Parameter importances (Optuna's fANOVA over the completed trials):", "",
                 tuning.importances_text(plan.tune, studies) or "(none yet)", ""]
        (out / "best_params.yaml").write_text(yaml.safe_dump(
            {k: v["row"]["best_params"] for k, v in studies.items()}, sort_keys=False))
    if plan.loso or "loso" in b.phases:
        from .verdict import verdict

        vtext, pairs = verdict(out, b, algorithms, trows, plan.tuned, plan.loso, plan.tune, studies, plan.configs)
        text[4:4] = ["## The verdict: test file and speakers never heard", "", vtext, ""]
        write_csv(out / "pairs.csv", pairs, ["a", "b"] + [f"{k}_{m}" for k in ("test", "loso")
                                                          for m in ("diff", "lo", "hi", "p", "resolved")])
        write_csv(out / "loso.csv", collect(out, plan.loso), ["algorithm", "speaker", "seed", "test_acc", "last_val_acc",
                                                              "train_acc", "epochs", "epoch_s", "host", "commit", "finished"])
    if plan.table:
        title = "## Every algorithm at the shared setting" if plan.tune or plan.tuned else "## Table"
        text += [title, "", markdown_table(summ) if summ else "(no cell finished yet)", ""]
    if plan.table or plan.tuned:
        write_csv(out / "results.csv", trows + rows, ID_COLUMNS + [k for k, *_ in TABLE_COLUMNS] + EXTRA_COLUMNS)
        text.append(MEMORY_NOTE)
    if failures:
        text += ["", "Failed cells:", ""] + [f"- `{k}`: {v}" for k, v in failures.items()]
    if plan.table or plan.tuned or plan.tune or plan.loso:
        (out / "table.md").write_text("\n".join(text) + "\n")
    srows = collect(out, plan.scaling)
    if plan.scaling:
        write_csv(out / "scaling.csv", srows, SCALING_COLUMNS)
    arows = [r for r in collect(out, plan.table + plan.arch) if r["seed"] in list(b.architecture.seeds)]
    correct = {}
    if plan.arch:
        correct = architecture.correctness_by_form(out, plan.table + plan.arch, list(b.architecture.seeds))
        write_csv(out / "architecture.csv", arows, ID_COLUMNS + architecture.COLUMNS)
        (out / "architecture.md").write_text(architecture.report(arows, correct, algorithms, b))
    if plots and b.plots:
        from . import plots as P

        P.write_all(out, trows + rows, srows, arows, markdown_table(tsumm or summ) if (tsumm or summ) else "", algorithms, b,
                    architecture.accuracy_intervals(correct))
        if trows and (plan.loso or "loso" in b.phases):
            P.save(P.verdict(trows, collect(out, plan.loso), algorithms), out / "verdict.png", dpi=120)
        if studies:
            P.tuning_history(out / "tuning_history.png", plan.tune, studies)
            P.importances(out / "importances.png", plan.tune, studies)
