"""The benchmark's figures: accuracy against training time, step time and memory against the number of time steps
and the hidden size, accuracy against hidden size (feed-forward / recurrent), the verdict (test file and left-out
speakers, with intervals), the table as a figure, the studies' optimisation histories and parameter importances.
Each function takes the rows it plots and writes one PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colours(algorithms: list[str]) -> dict[str, Any]:
    plt = _pyplot()
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {a: cycle[i % len(cycle)] for i, a in enumerate(algorithms)}


def accuracy_vs_time(rows: list[dict], algorithms: list[str]):
    """Validation accuracy after each epoch against cumulative training time, one line per seed; one panel per
    setting (the tuned configurations and the shared one are different runs of the same algorithm). The figure,
    for `save`."""
    plt = _pyplot()
    colour = _colours(algorithms)
    setting_of = [r.get("setting", "shared") for r in rows]
    settings = list(dict.fromkeys(setting_of))
    titles = {"tuned": "each algorithm at its tuned best", "shared": "the shared setting"}
    fig, axes = plt.subplots(1, len(settings), figsize=(6 * len(settings), 4), sharey=True, squeeze=False)
    for ax, setting in zip(axes[0], settings):
        for a in algorithms:
            mine = [r for r, s in zip(rows, setting_of) if r["algorithm"] == a and s == setting]
            for i, r in enumerate(mine):
                curve = r.get("_curve") or {}
                t, acc = np.cumsum(curve.get("epoch_s", [])), np.array(curve.get("val_acc", []), dtype=float)
                if len(t):
                    ax.plot(t, 100 * acc, "o-", ms=3, color=colour[a], alpha=0.8, label=a if i == 0 else None)
        if len(settings) > 1:
            ax.set_title(titles.get(setting, setting))
        ax.set_xlabel("training time (s)")
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0][0].set_ylabel("validation accuracy (%)")
    fig.tight_layout()
    return fig


def scaling(path: Path, rows: list[dict], algorithms: list[str], x_key: str, fixed_key: str, fixed: dict[str, int]) -> None:
    """Step time and step memory (algorithms/measure.py: peak tensor memory allocated during the step) against
    x_key at each algorithm's fixed value of fixed_key; log-log."""
    plt = _pyplot()
    colour = _colours(algorithms)
    mem_key, mem_label = "step_mem_bytes", "step memory (MB)"
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 4))
    for a in algorithms:
        pts = sorted((r[x_key], r["step_s"], r[mem_key]) for r in rows if r["algorithm"] == a and r[fixed_key] == fixed.get(a))
        if len(pts) < 1:
            continue
        x, t, m = (np.array(v, dtype=float) for v in zip(*pts))
        ax_t.plot(x, t, "o-", color=colour[a], label=a)
        ax_m.plot(x, m / 1e6, "o-", color=colour[a], label=a)
    xlabel = {"steps": "time steps T", "hidden": "hidden neurons"}[x_key]
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    for ax, ylabel in ((ax_t, "training step (s)"), (ax_m, mem_label)):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sorted({r[x_key] for r in rows}))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
    ax_t.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def architecture(path: Path, rows: list[dict], algorithms: list[str],
                 intervals: dict[tuple[str, int, bool], tuple[float, float, float]] | None = None) -> None:
    """Test accuracy against hidden size — with `intervals` ((algorithm, hidden, recurrent) → (mean, lo, hi) in %,
    architecture.accuracy_intervals: a bootstrap over recordings and seeds), else mean ± 95 % t-interval over seeds
    —, time per epoch and step memory against hidden size: solid recurrent, dashed feed-forward."""
    from .stats import t_interval

    plt = _pyplot()
    colour = _colours(algorithms)
    fig, (ax, cost, mem) = plt.subplots(1, 3, figsize=(15, 4))
    for a in algorithms:
        for rec, style in ((True, "o-"), (False, "s--")):
            mine = [r for r in rows if r["algorithm"] == a and r["recurrent"] == rec]
            sizes = sorted({r["hidden"] for r in mine})
            if not sizes:
                continue
            if intervals and all((a, h, rec) in intervals for h in sizes):
                mid = [intervals[(a, h, rec)][0] for h in sizes]
                err = [[m - intervals[(a, h, rec)][1] for m, h in zip(mid, sizes)],
                       [intervals[(a, h, rec)][2] - m for m, h in zip(mid, sizes)]]
            else:
                acc = [t_interval([100 * r["test_acc"] for r in mine if r["hidden"] == h]) for h in sizes]
                mid, err = [m for m, _, _ in acc], [0.0 if not np.isfinite(hw) else hw for _, hw, _ in acc]
            label = f"{a} ({'rec' if rec else 'ff'})"
            ax.errorbar(sizes, mid, yerr=err, fmt=style, color=colour[a], capsize=3, label=label)
            for axis, key, scale in ((cost, "epoch_s", 1.0), (mem, "step_mem_bytes", 1e-6)):
                axis.plot(sizes, [scale * np.nanmean([np.nan if r.get(key) in (None, "") else float(r[key])
                                                      for r in mine if r["hidden"] == h])
                                  for h in sizes], style, color=colour[a], label=label)
    ticks = sorted({r["hidden"] for r in rows})
    for axis in (ax, cost, mem):
        axis.set_xscale("log", base=2)
        axis.set_xticks(ticks, [str(h) for h in ticks])
        axis.set_xlabel("hidden neurons")
        axis.grid(alpha=0.3)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("mean, 95 % interval: " + ("bootstrap over recordings and seeds" if intervals else "t over seeds"),
                 fontsize=9)
    cost.set_ylabel("time per epoch (s)")
    mem.set_ylabel("step memory (MB)")
    mem.set_yscale("log")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def verdict(tuned: list[dict], loso: list[dict], algorithms: list[str]):
    """Each algorithm's tuned accuracy on the test file (one dot per seed) and on left-out speakers (one dot per
    speaker: its seeds' mean, as the verdict table counts it), each with its mean and 95 % t-interval (stats.py), so
    that the spread a table's ± summarises stays visible. The figure, for `save`."""
    from .stats import t_interval
    from .verdict import speaker_accuracies

    plt = _pyplot()
    colour = _colours(algorithms)
    fig, ax = plt.subplots(figsize=(1.6 * len(algorithms) + 2, 4))
    shown = [a for a in algorithms if any(r["algorithm"] == a for r in tuned + loso)]
    kinds = ((-0.17, "o", "test file (seeds)"), (0.17, "s", "left-out speakers (one network each)"))
    for x, a in enumerate(shown):
        values = ([float(r["test_acc"]) for r in tuned if r["algorithm"] == a],
                  list(speaker_accuracies([r for r in loso if r["algorithm"] == a]).values()))
        for v, (dx, marker, _) in zip(values, kinds):
            if not v:
                continue
            mean, half, _ = t_interval(v)
            ax.plot(np.full(len(v), x + dx), 100 * np.array(v), marker, ms=4, alpha=0.5, color=colour[a], mfc="none")
            ax.errorbar([x + dx], [100 * mean], yerr=[[100 * half if np.isfinite(half) else 0.0]] * 2, fmt=marker,
                        ms=8, capsize=4, color=colour[a])
    for _, marker, label in kinds:  # the legend tells the two markers apart; the x axis names the algorithms
        ax.plot([], [], marker, color="grey", label=label)
    ax.set_xticks(range(len(shown)), shown, rotation=20, ha="right")
    ax.set_xlim(-0.6, len(shown) - 0.4)
    ax.set_title("mean and 95 % t-interval; small markers: each seed / each speaker", fontsize=9)
    ax.set_ylabel("accuracy (%)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def table_figure(markdown: str):
    """The first Markdown table of `markdown` rendered as a figure; long cells (the heuristics) are wrapped and
    every column is as wide as its longest line, so that no text runs into its neighbour. The figure, for `save`."""
    import textwrap

    plt = _pyplot()
    lines = []
    for ln in markdown.splitlines():
        if ln.startswith("|"):
            lines.append(ln)
        elif lines:  # the first table ends here
            break
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines if not ln.startswith("|---")]
    wrapped = [[textwrap.fill(c, 12 if r == 0 else 34, break_long_words=False) for c in row] for r, row in enumerate(cells)]
    width = [max(len(line) for row in wrapped for line in row[j].splitlines() or [""]) for j in range(len(cells[0]))]
    height = [max(c.count("\n") + 1 for c in row) for row in wrapped]
    inch_per_char, inch_per_line = 0.075, 0.17
    fig_w = inch_per_char * (sum(width) + 2 * len(width)) + 0.4
    fig_h = inch_per_line * (sum(height) + len(height)) + 0.4
    fig, ax = plt.subplots(figsize=(fig_w, fig_h))
    ax.axis("off")
    tab = ax.table(cellText=wrapped[1:], colLabels=wrapped[0], loc="center", cellLoc="center",
                   colWidths=[(w + 2) / (sum(width) + 2 * len(width)) for w in width])
    tab.auto_set_font_size(False)
    tab.set_fontsize(8)
    total = sum(height) + len(height)
    for (r, _), c in tab.get_celld().items():
        c.set_height((height[r] + 1) / total)
        if r == 0:
            c.set_text_props(weight="bold")
    fig.tight_layout(pad=0.2)
    return fig


def save(fig, path: Path, dpi: int) -> None:
    fig.savefig(path, dpi=dpi)
    _pyplot().close(fig)


def write_all(out: Path, rows: list[dict], srows: list[dict], arows: list[dict], table_md: str, algorithms: list[str], b,
              arch_intervals: dict | None = None) -> list[str]:
    """Every figure the data allows; returns the file names written."""
    written = []
    if rows:
        save(accuracy_vs_time(rows, algorithms), out / "accuracy_vs_time.png", dpi=120)
        save(table_figure(table_md), out / "table.png", dpi=150)
        written += ["accuracy_vs_time.png", "table.png"]
    if srows:
        # the steps sweep is at each algorithm's table hidden size, the hidden sweep at its table T
        fixed_hidden = {r["algorithm"]: r["table_hidden"] for r in srows}
        fixed_steps = {r["algorithm"]: r["table_steps"] for r in srows}
        scaling(out / "scaling_steps.png", srows, algorithms, "steps", "hidden", fixed_hidden)
        scaling(out / "scaling_hidden.png", srows, algorithms, "hidden", "steps", fixed_steps)
        written += ["scaling_steps.png", "scaling_hidden.png"]
    if arows and "architecture" in b.phases:
        architecture(out / "architecture.png", arows, algorithms, arch_intervals)
        written.append("architecture.png")
    return written


def tuning_history(path: Path, cells: list, studies: dict[str, dict]) -> None:
    """Best validation accuracy so far against the trial number, one line per study (random search dashed);
    dots: each completed trial's value."""
    plt = _pyplot()
    colour = _colours(sorted({c.algorithm for c in cells}))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for c in cells:
        data = studies.get(c.name)
        if not data:
            continue
        hist = sorted(data["history"], key=lambda h: h["number"])
        best, xs, ys = float("nan"), [], []
        for h in hist:
            if h["state"] == "COMPLETE" and (not np.isfinite(best) or h["value"] > best):
                best = h["value"]
            xs.append(h["number"] + 1)
            ys.append(100 * best)
        style = "--" if c.info["sampler"] == "random" else "-"
        ax.plot(xs, ys, style, color=colour[c.algorithm], label=f"{c.algorithm} ({c.info['sampler']})")
        done = [(h["number"] + 1, 100 * h["value"]) for h in hist if h["state"] == "COMPLETE"]
        if done:
            ax.plot(*zip(*done), "o" if style == "-" else "x", ms=3, color=colour[c.algorithm], alpha=0.5)
    ax.set_xlabel("trial")
    ax.set_ylabel("best validation accuracy so far (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def importances(path: Path, cells: list, studies: dict[str, dict]) -> None:
    """Optuna's parameter importances, one panel per study."""
    shown = [c for c in cells if (studies.get(c.name) or {}).get("importances")]
    if not shown:
        return
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 3.8), squeeze=False)
    for ax, c in zip(axes[0], shown):
        imp = studies[c.name]["importances"]
        keys = list(imp)[::-1]
        ax.barh(keys, [imp[k] for k in keys])
        ax.set_title(c.name, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("importance")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
