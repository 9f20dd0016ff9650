"""Evaluate a trained run on a data set: accuracy, loss, the accuracy of each class and the confusion matrix.

    python evaluate.py runs/<run>                                        # its own test file, best checkpoint
    python evaluate.py runs/<run> data.root=DIR data.files.test=my_test  # another SHD-format file
    python evaluate.py runs/<run> checkpoint=last                        # or checkpoint=<file.ckpt>

The config is the run's own (its config.yaml: network, binning, dt); only where the data come from may change
(data.root, data.files.*, data.cache_dir, data.batch_size, data.num_workers, data.download). Prints the figures and
writes them into <run>/eval/<test file stem>/: results.yaml, per_class.csv, confusion.csv (rows: true class,
columns: predicted class).
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from spikebench.errors import UserError
from spikebench.events import as_frames

from spikebench.configs import load_run_config
from spikebench.algorithms.checkpoint import check_checkpoint, checkpoint_path

DATA_KEYS = ("data.root", "data.files.", "data.cache_dir", "data.batch_size", "data.num_workers", "data.download")


def evaluate(run_dir: str | Path, overrides: list[str] | None = None, checkpoint: str = "best") -> dict:
    """Test the run's checkpoint on the configured test file; returns and writes the figures."""
    import lightning as L
    import torch

    from spikebench.algorithms import get_algorithm
    from spikebench.datamodules import build_datamodule, data_shape

    run = Path(run_dir).expanduser().resolve()
    cfg = load_run_config(run, overrides, only=DATA_KEYS)
    cfg.test = True
    ckpt = checkpoint_path(run, checkpoint)
    check_checkpoint(cfg, ckpt, data_shape(cfg))
    dm = build_datamodule(cfg, fit=False)
    dm.prepare_data()
    dm.setup("test")
    module = get_algorithm(cfg.algorithm.name).load_from_checkpoint(ckpt, map_location="cpu")
    torch.set_flush_denormal(bool(cfg.flush_denormal))
    trainer = L.Trainer(accelerator=str(cfg.trainer.get("accelerator", "auto")), devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    metrics = trainer.test(module, datamodule=dm, verbose=False)[0]
    confusion = module.confusion.long()
    totals = confusion.sum(1)
    per_class = [float(confusion[c, c] / totals[c]) if totals[c] else float("nan") for c in range(len(totals))]
    results = {"checkpoint": str(ckpt), "test_file": str(cfg.data.files.test), "data_root": str(cfg.data.root),
               "accuracy": float(metrics["test/acc"]), "loss": float(metrics["test/loss"]), "samples": int(totals.sum()),
               "per_class_accuracy": per_class}
    out = run / "eval" / Path(str(cfg.data.files.test)).name.split(".h5")[0]
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.yaml").write_text(yaml.safe_dump(results, sort_keys=False))
    (out / "per_class.csv").write_text("class,samples,accuracy\n" + "".join(
        f"{c},{int(totals[c])},{per_class[c]:.4f}\n" for c in range(len(totals))))
    (out / "confusion.csv").write_text("".join(",".join(str(int(v)) for v in row) + "\n" for row in confusion.tolist()))
    results["output_dir"] = str(out)
    results["confusion"] = confusion.tolist()
    return results


def plot_run(out: Path, module, dm, loggers: list | tuple = (), samples: int = 3) -> list[Path]:
    """PNGs of a finished run in `out` (and as W&B images when a W&B logger is given): learning curves
    (curves.png: loss, accuracy and hidden rate per epoch, from metrics.csv), the test confusion matrix
    (confusion.png), and for the first `samples` test samples the input raster, the hidden spikes and the readout
    voltages over time (samples.png)."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    written = []
    rows = list(csv.DictReader((out / "metrics.csv").open())) if (out / "metrics.csv").is_file() else []
    per_epoch = lambda key: sorted((int(r["epoch"]), float(r[key])) for r in rows if r.get(key))  # noqa: E731
    if rows:
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
        for ax, (title, keys) in zip(axes, [("loss", ("train/loss_epoch", "val/loss")),
                                            ("accuracy", ("train/acc_epoch", "val/acc")),
                                            ("hidden rate (Hz)", ("train/rate_hz", "val/rate_hz"))]):
            for key in keys:
                points = per_epoch(key)
                if points:
                    ax.plot(*zip(*points), marker="o", ms=3, label=key.split("/")[0])
            ax.set(title=title, xlabel="epoch")
            ax.legend()
        fig.tight_layout()
        written.append(out / "curves.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    names = module.class_names or [str(c) for c in range(module.data_shape.n_classes)]
    if module.confusion is not None:
        cm = module.confusion.numpy()
        fig, ax = plt.subplots(figsize=(1.2 + 0.45 * len(cm), 1 + 0.4 * len(cm)))
        im = ax.imshow(cm, cmap="Blues")
        ax.set(xticks=range(len(cm)), yticks=range(len(cm)), xlabel="predicted", ylabel="true class",
               title=f"test: accuracy {np.trace(cm) / max(cm.sum(), 1):.3f}")
        ax.set_xticklabels(names, rotation=90)
        ax.set_yticklabels(names)
        fig.colorbar(im, ax=ax)
        fig.tight_layout()
        written.append(out / "confusion.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    if dm.test_set is not None and samples > 0:
        x, y = next(iter(dm.test_dataloader()))
        x, y = x[:samples], y[:samples]
        with torch.no_grad():
            hidden, v_out = module.simulate(x.to(module.device))
        x = as_frames(x)  # the input raster is drawn from the frames, whichever form the batch had
        dt = module.data_shape.dt
        fig, axes = plt.subplots(len(y), 3, figsize=(13, 2.6 * len(y)), squeeze=False)
        for i in range(len(y)):
            for ax, what, title in ((axes[i, 0], x[i], "input spikes"), (axes[i, 1], hidden[i].cpu(), "hidden activity")):
                t, n = torch.nonzero(what, as_tuple=True)
                ax.scatter(t.numpy() * dt, n.numpy(), s=0.3, c="k")
                ax.set(title=f"{title} (class {names[int(y[i])]})", xlabel="time (s)", ylabel="neuron",
                       xlim=(0, what.shape[0] * dt))
            steps = np.arange(v_out.shape[1]) * dt
            for c in range(v_out.shape[2]):
                axes[i, 2].plot(steps, v_out[i, :, c].cpu().numpy(), lw=2.0 if c == int(y[i]) else 0.6,
                                label=names[c] if c == int(y[i]) else None)
            axes[i, 2].set(title="readout voltages (thick: true class)", xlabel="time (s)")
            axes[i, 2].legend(loc="upper left")
        fig.tight_layout()
        written.append(out / "samples.png")
        fig.savefig(written[-1], dpi=90)
        plt.close(fig)
    for lg in loggers:
        if type(lg).__name__ == "WandbLogger":
            lg.log_image(key="plots", images=[str(p) for p in written], caption=[p.stem for p in written])
    return written


def report(r: dict) -> str:
    """The printed summary: accuracy, loss, per-class accuracy and the confusion matrix."""
    n = len(r["per_class_accuracy"])
    width = max(3, len(str(max(max(row) for row in r["confusion"]))))
    lines = [f"{r['samples']} samples of {r['test_file']}: accuracy {r['accuracy']:.4f}, loss {r['loss']:.4f}",
             "per class: " + "  ".join(f"{c}: {a:.2f}" for c, a in enumerate(r["per_class_accuracy"])),
             "confusion (rows: true class, columns: predicted):",
             "      " + " ".join(f"{c:>{width}}" for c in range(n))]
    lines += [f"  {c:>3} " + " ".join(f"{v:>{width}}" for v in row) for c, row in enumerate(r["confusion"])]
    lines.append(f"-> {r['output_dir']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:

    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    run, rest = argv[0], argv[1:]
    which = [a.split("=", 1)[1] for a in rest if a.startswith("checkpoint=")]
    rest = [a for a in rest if not a.startswith("checkpoint=")]
    try:
        print(report(evaluate(run, rest, which[-1] if which else "best")))
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
