"""The hidden neurons' receptive fields (their input weights W_in) of finished runs: a picture and how alike they are.

    python -m spikebench.sweeps.diagnostics.receptive_fields results/fsdd_families/cells/stdp-* --out fields.png
    python -m spikebench.sweeps.diagnostics.receptive_fields runs/a runs/b --out fields.png --table fields.md

Each RUN is a run folder (train.py's output_dir, a benchmark cell) with checkpoints/last.ckpt. Per run: the mean and
the smallest cosine similarity between two neurons' input-weight vectors (1: every neuron has learned the same field,
the collapse a local rule without enough competition falls into; a network whose neurons tell inputs apart has them
well below 1), how many distinct input channels are some neuron's strongest ("preferred channels"), the weights'
range, and, for STDP runs, the homeostatic thresholds. The picture: one panel per run, the neurons (rows, sorted by
preferred channel) against the input channels (cochlea order), each row scaled to its own maximum.
Issue 24's evidence for what limits STDP on FSDD.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def field_stats(w: torch.Tensor) -> dict:
    """w (inputs, hidden): cosines between the columns (off-diagonal mean and min), distinct argmax rows, range."""
    w = w.double()
    unit = w / w.norm(dim=0, keepdim=True).clamp_min(1e-30)
    cos = unit.T @ unit
    off = cos[~torch.eye(cos.shape[0], dtype=torch.bool)]
    return {"cos_mean": float(off.mean()), "cos_min": float(off.min()),
            "preferred": int(w.argmax(dim=0).unique().numel()), "w_min": float(w.min()), "w_max": float(w.max()),
            "hidden": int(w.shape[1])}


def load_run(run: Path) -> dict:
    """{name, w_in (inputs, hidden), theta or None} from the run's last checkpoint."""
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    sd = ckpt["state_dict"]
    return {"name": run.name, "w_in": sd["net.w_in"].float(), "theta": sd.get("theta")}


def table(runs: list[dict]) -> str:
    lines = ["| run | hidden | cosine between neurons: mean / min | preferred channels | W_in range | threshold mean ± sd |",
             "|---|---|---|---|---|---|"]
    for r in runs:
        s = field_stats(r["w_in"])
        th = "–" if r["theta"] is None else f"{float(r['theta'].mean()):.3g} ± {float(r['theta'].std()):.3g}"
        lines.append(f"| {r['name']} | {s['hidden']} | {s['cos_mean']:.3f} / {s['cos_min']:.3f} | {s['preferred']} | "
                     f"{s['w_min']:.3g} … {s['w_max']:.3g} | {th} |")
    return "\n".join(lines)


def plot(runs: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(4 * len(runs), 4), squeeze=False)
    for ax, r in zip(axes[0], runs):
        w = r["w_in"]
        order = torch.argsort(w.argmax(dim=0), stable=True)
        rows = (w[:, order] / w[:, order].abs().amax(dim=0, keepdim=True).clamp_min(1e-30)).T
        ax.imshow(rows.numpy(), aspect="auto", cmap="viridis", interpolation="nearest")
        s = field_stats(w)
        ax.set_title(f"{r['name']}\ncos mean {s['cos_mean']:.2f}, {s['preferred']} preferred ch.", fontsize=8)
        ax.set_xlabel("input channel")
        ax.set_ylabel("hidden neuron (by preferred channel)")
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run folders with checkpoints/last.ckpt")
    ap.add_argument("--out", type=Path, help="the picture (PNG)")
    ap.add_argument("--table", type=Path, help="also write the table here (Markdown)")
    a = ap.parse_args(argv)
    missing = [str(r) for r in a.runs if not (r / "checkpoints" / "last.ckpt").is_file()]
    if missing:
        raise SystemExit(f"no checkpoints/last.ckpt in: {', '.join(missing)}")
    runs = [load_run(r) for r in a.runs]
    text = table(runs)
    print(text)
    if a.table:
        a.table.write_text(text + "\n")
    if a.out:
        plot(runs, a.out)
        print(f"picture: {a.out}")


if __name__ == "__main__":
    main()
