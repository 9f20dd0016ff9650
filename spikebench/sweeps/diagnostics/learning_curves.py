"""Learning curves of finished runs: validation (and training) accuracy per epoch, one colour per algorithm.

    python -m spikebench.sweeps.diagnostics.learning_curves results/fsdd_tuned/cells/tuned-* --out curves.png
    python -m spikebench.sweeps.diagnostics.learning_curves runs/a runs/b --out curves.png --table curves.md
    python -m spikebench.sweeps.diagnostics.learning_curves results/fsdd_stdp/cells/* --out curves.png --colour-by run

Each RUN is a run folder (train.py's output_dir, a benchmark cell): its metrics.csv (Lightning's CSV logger: one
row per logged step, the epoch metrics on the rows of each epoch's end) and config.yaml (the algorithm's name).
Solid lines: val/acc; dotted: train/acc_epoch (the training batches, with augmentation). The table: per run, the
epochs, the best val/acc and its epoch, the last val/acc, the last training accuracy and the test accuracy
(results.yaml). Used to tell an algorithm that is still learning at its last epoch from one that has stopped, and
validation from test (issue 13's evidence for the algorithms under 85 %).
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import yaml


def read_curve(run: Path) -> dict:
    """{name, algorithm, epochs: [..], val: [..], train: [..], test}: one value per epoch (NaN where missing)."""
    per_epoch: dict[int, dict[str, float]] = {}
    with open(run / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            e = int(row["epoch"])
            for key in ("val/acc", "train/acc_epoch"):
                if row.get(key):
                    per_epoch.setdefault(e, {})[key] = float(row[key])
    epochs = sorted(per_epoch)
    cfg = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").is_file() else {}
    results = yaml.safe_load((run / "results.yaml").read_text()) if (run / "results.yaml").is_file() else {}
    return {
        "name": run.name,
        "algorithm": (cfg.get("algorithm") or {}).get("name", "?"),
        "epochs": [e + 1 for e in epochs],
        "val": [per_epoch[e].get("val/acc", math.nan) for e in epochs],
        "train": [per_epoch[e].get("train/acc_epoch", math.nan) for e in epochs],
        "test": float(results.get("test/acc", math.nan)),
    }


def table(curves: list[dict]) -> str:
    lines = ["| run | algorithm | epochs | best val. acc. (epoch) | last val. acc. | last train acc. | test acc. |",
             "|---|---|---|---|---|---|---|"]
    for c in curves:
        vals = [v for v in c["val"] if not math.isnan(v)]
        best = max(vals) if vals else math.nan
        at = c["epochs"][c["val"].index(best)] if vals else "–"
        pct = lambda x: "–" if math.isnan(x) else f"{100 * x:.1f} %"  # noqa: E731
        lines.append(f"| {c['name']} | {c['algorithm']} | {len(c['epochs'])} | {pct(best)} ({at}) | "
                     f"{pct(c['val'][-1] if c['val'] else math.nan)} | {pct(c['train'][-1] if c['train'] else math.nan)} | "
                     f"{pct(c['test'])} |")
    return "\n".join(lines)


def plot(curves: list[dict], path: Path, by: str = "algorithm") -> list[str]:
    """One colour per algorithm (by="algorithm") or per run folder (by="run": variants of one algorithm apart);
    returns the legend's labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = "name" if by == "run" else "algorithm"
    groups = sorted({c[key] for c in curves})
    colour = {a: plt.get_cmap("tab10" if len(groups) <= 10 else "tab20")(i % 20) for i, a in enumerate(groups)}
    fig, ax = plt.subplots(figsize=(8, 5))
    labelled: set[str] = set()
    for c in curves:
        a = c[key]
        ax.plot(c["epochs"], [100 * v for v in c["val"]], "-", color=colour[a], label=None if a in labelled else a, lw=1.2)
        ax.plot(c["epochs"], [100 * v for v in c["train"]], ":", color=colour[a], lw=1.0)
        labelled.add(a)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)  — val/acc solid, train dotted")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [t.get_text() for t in ax.get_legend().get_texts()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run folders holding metrics.csv")
    ap.add_argument("--out", type=Path, required=True, help="the figure (.png)")
    ap.add_argument("--table", type=Path, help="also write the table (markdown) here")
    ap.add_argument("--colour-by", choices=["algorithm", "run"], default="algorithm",
                    help="one colour per algorithm (default) or per run folder (variants of one algorithm)")
    args = ap.parse_args(argv)
    missing = [str(r) for r in args.runs if not (r / "metrics.csv").is_file()]
    if missing:
        ap.error(f"no metrics.csv in {', '.join(missing)}")
    curves = [read_curve(r) for r in args.runs]
    plot(curves, args.out, by=args.colour_by)
    text = table(curves)
    if args.table:
        args.table.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
