"""Classify recordings with a trained run: the top classes of each, with probabilities.

    python predict.py runs/<run> recordings.h5            # .h5, .h5.gz or .h5.zip; labels in the file are ignored
    python predict.py runs/<run> recordings.h5 --top 5 --samples 10
    python predict.py runs/<run> hello.wav more/          # WAV files (or folders of them), through the cochlea
    python predict.py runs/<run> recordings.h5 checkpoint=last

WAV input goes through the suite's SHD cochlea model first (spikebench.datamodules.cochlea, the conversion that made SHD and
fsdd-spikes; each file's random stream seeded by crc32 of its name), so a recording needs no data file; mono audio,
any sample rate (resampled as the converter does).

The run's own config bins the events (dt, duration, pooling, delay line) and builds the network; the class names are
those the training file carried (`extra/keys`, kept in the checkpoint), else class indices. The probabilities are
the softmax of the logits of the run's readout (loss.kind).
"""

from __future__ import annotations

from spikebench.errors import UserError
import argparse
import sys
from pathlib import Path

from spikebench.configs import load_run_config
from spikebench.algorithms.checkpoint import check_checkpoint, checkpoint_path


def is_audio(inputs: list[str | Path]) -> bool:
    """WAV files or folders (classified through the cochlea) rather than one SHD-format file."""
    return all(Path(i).expanduser().is_dir() or str(i).lower().endswith(".wav") for i in inputs)


def wav_spikes(inputs: list[str | Path]):
    """The spikes of WAV files (and of the *.wav in folders) through the cochlea model, as one SpikeData."""
    import numpy as np

    from spikebench.datamodules import DataError, SpikeData
    from spikebench.datamodules.cochlea import InputError, collect, file_seed, read_wav
    from spikebench.datamodules.cochlea_model import wav_to_spikes

    try:
        wavs = collect(inputs)
        trains = [wav_to_spikes(*read_wav(w), file_seed(w)) for w in wavs]
    except InputError as err:
        raise DataError(str(err)) from None
    offsets = np.cumsum([0, *(len(t) for t, _ in trains)]).astype(np.int64)
    times = np.concatenate([t for t, _ in trains]).astype(np.float16).astype(np.float32)  # SHD's float16 times
    units = np.concatenate([u for _, u in trains]).astype(np.int32)
    return SpikeData(times, units, offsets, np.zeros(len(wavs), dtype=np.int64)), wavs


def predict(run_dir: str | Path, inputs: str | Path | list, top: int = 3, checkpoint: str = "best",
            samples: int | None = None) -> list[list[tuple[str, float]]]:
    """For each sample of `inputs` (one SHD-format file, or WAV files and folders; the first `samples`), its `top`
    (class name, probability) pairs, best first."""
    import torch

    from spikebench.algorithms import get_algorithm
    from spikebench.datamodules import DataError, data_shape, read_spike_file
    from spikebench.datamodules.files import SUFFIXES, checked, unpack
    from spikebench.datamodules.spikes import Collate, SpikeDataset

    inputs = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    run = Path(run_dir).expanduser().resolve()
    cfg = load_run_config(run)
    ckpt = checkpoint_path(run, checkpoint)
    check_checkpoint(cfg, ckpt, data_shape(cfg))
    if is_audio(inputs):
        data, _ = wav_spikes(inputs)
        path = Path(inputs[0])
    else:
        if len(inputs) != 1:
            raise DataError("give one SHD-format file, or WAV files and folders of them")
        path = Path(inputs[0]).expanduser()
        if not path.is_file():
            raise DataError(f"{inputs[0]}: no such file")
        if not path.name.lower().endswith(SUFFIXES):
            raise DataError(f"{inputs[0]}: neither an SHD-format file ({', '.join(SUFFIXES)}) nor WAV audio (.wav files "
                            "or folders of them); predict.py classifies those")
        data = read_spike_file(unpack(path, cfg.data.cache_dir))
    data = checked(data, cfg.data, path, labels=False)
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

    parser = argparse.ArgumentParser(prog="predict.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="the run folder (runs/<run>)")
    parser.add_argument("inputs", nargs="+", metavar="file",
                        help="an SHD-format file (.h5, .h5.gz, .h5.zip), or WAV files and folders of them")
    parser.add_argument("--top", type=int, default=3, help="classes shown per sample")
    parser.add_argument("--samples", type=int, default=None, help="only the first N samples")
    argv = sys.argv[1:] if argv is None else argv
    chosen = [a for a in argv if a.startswith("checkpoint=")]  # checkpoint=best | last | <file>, anywhere
    args = parser.parse_args([a for a in argv if not a.startswith("checkpoint=")])
    which = chosen[-1].split("=", 1)[1] if chosen else "best"
    try:
        results = predict(args.run, args.inputs, args.top, which, args.samples)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if is_audio(args.inputs):  # a line per recording, named by its file
        from spikebench.datamodules.cochlea import collect

        names = [w.name for w in collect(args.inputs)]
    else:
        names = [f"{i:5d}" for i in range(len(results))]
    width = max(len(n) for n in names) if names else 0
    for name, best in zip(names, results):
        print(f"{name:>{width}}  " + "  ".join(f"{c} {p:.2f}" for c, p in best))
    return 0


if __name__ == "__main__":
    sys.exit(main())
