"""Classify the samples of an SHD-format file with a trained run: the top classes of each, with probabilities.

    python predict.py runs/<run> recordings.h5            # .h5, .h5.gz or .h5.zip; labels in the file are ignored
    python predict.py runs/<run> recordings.h5 --top 5 --samples 10
    python predict.py runs/<run> recordings.h5 checkpoint=last

The run's own config bins the events (dt, duration, pooling, delay line) and builds the network; the class names are
those the training file carried (`extra/keys`, kept in the checkpoint), else class indices. The probabilities are
the softmax of the logits of the run's readout (loss.kind).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from configs import ConfigError, load_run_config
from algorithms.checkpoint import check_checkpoint, checkpoint_path


def predict(run_dir: str | Path, file: str | Path, top: int = 3, checkpoint: str = "best",
            samples: int | None = None) -> list[list[tuple[str, float]]]:
    """For each sample of `file` (the first `samples`), its `top` (class name, probability) pairs, best first."""
    import torch

    from algorithms import get_algorithm
    from datamodules import DataError, data_shape, read_spike_file
    from datamodules.files import checked, unpack
    from datamodules.spikes import Collate, SpikeDataset

    run = Path(run_dir).expanduser().resolve()
    cfg = load_run_config(run)
    ckpt = checkpoint_path(run, checkpoint)
    check_checkpoint(cfg, ckpt, data_shape(cfg))
    path = Path(file).expanduser()
    if not path.is_file():
        raise DataError(f"{file}: no such file")
    data = checked(read_spike_file(unpack(path, cfg.data.cache_dir)), cfg.data, path, labels=False)
    module = get_algorithm(cfg.algorithm.name).load_from_checkpoint(ckpt, map_location="cpu").eval()
    names = module.class_names or [str(c) for c in range(cfg.data.n_classes)]
    dataset, collate = SpikeDataset(data), Collate(cfg.data, train=False)
    n = len(dataset) if samples is None else min(samples, len(dataset))
    torch.set_flush_denormal(bool(cfg.flush_denormal))
    out = []
    with torch.no_grad():
        for lo in range(0, n, int(cfg.data.batch_size)):
            x, y = collate([dataset[i] for i in range(lo, min(n, lo + int(cfg.data.batch_size)))])
            probs = module.evaluate(x, torch.zeros_like(y)).logits.softmax(-1)
            best = probs.topk(min(top, probs.shape[1]), dim=-1)
            out += [[(names[c], float(p)) for p, c in zip(ps.tolist(), cs.tolist())] for ps, cs in zip(*best)]
    return out


def main(argv: list[str] | None = None) -> int:
    from datamodules import DataError

    parser = argparse.ArgumentParser(prog="predict.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="the run folder (runs/<run>)")
    parser.add_argument("file", help="an SHD-format file (.h5, .h5.gz, .h5.zip)")
    parser.add_argument("--top", type=int, default=3, help="classes shown per sample")
    parser.add_argument("--samples", type=int, default=None, help="only the first N samples")
    parser.add_argument("checkpoint", nargs="?", default="checkpoint=best", help="checkpoint=best | last | <file>")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    which = args.checkpoint.split("=", 1)[1] if args.checkpoint.startswith("checkpoint=") else args.checkpoint
    try:
        results = predict(args.run, args.file, args.top, which, args.samples)
    except (ConfigError, DataError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for i, best in enumerate(results):
        print(f"{i:5d}  " + "  ".join(f"{name} {p:.2f}" for name, p in best))
    return 0


if __name__ == "__main__":
    sys.exit(main())
