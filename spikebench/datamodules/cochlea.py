"""WAV audio → an SHD-format spike file through the SHD cochlea model (datamodules/cochlea_model.py).

    python -m spikebench.datamodules.cochlea IN... --out file.h5 [--labels from-name|labels.csv] [--workers N]
                                  [--seed-from crc32-of-name|INT] [--downmix]

IN: WAV files and folders of them (a folder: its *.wav, sorted by name). The output has the layout of SHD's files
(spikes/times float16 vlen, spikes/units uint16 vlen, labels uint16, extra/keys, extra/speaker,
extra/speaker_names, extra/files), so `data=shd data.root=DIR data.files.train=STEM` trains on it. Each file's random
stream is seeded by crc32(file name) & 0x7FFFFFFF (as fsdd-spikes was made) unless --seed-from gives one integer
for all. Labels come from FSDD-style names `<digit>_<speaker>_<n>.wav`, or from a CSV of `file,label[,speaker]`
rows (label: a class index, or a class name; a header row `file,label,...` is skipped).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import multiprocessing
import os
import re
import shutil
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
from scipy.io import wavfile
from tqdm import tqdm

from .cochlea_model import DEFAULT, CochleaParams, wav_to_spikes
from .synthetic import write_shd_file

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
FSDD_NAME = re.compile(r"^(\d+)_([^_]+)_(\d+)$")  # <digit>_<speaker>_<n>


class InputError(Exception):
    """Bad input (a missing or unreadable file, a label that cannot be had): a one-line message for the user."""


def read_wav(path: str | Path, downmix: bool = False) -> tuple[np.ndarray, int]:
    """(samples as float64 in [-1, 1), sample rate) of a mono WAV file; integer PCM is scaled by its full range
    (16-bit: / 32768, as soundfile reads it). Several channels: an InputError unless `downmix` (their mean)."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", wavfile.WavFileWarning)  # unknown chunks: the audio is still read
            rate, data = wavfile.read(path)
    except (ValueError, EOFError, OSError) as err:
        raise InputError(f"{path} is not a readable WAV file ({err})") from None
    if data.dtype == np.uint8:
        samples = (data.astype(np.float64) - 128.0) / 128.0
    elif data.dtype.kind == "i":
        samples = data.astype(np.float64) / float(2 ** (8 * data.dtype.itemsize - 1))
    else:
        samples = data.astype(np.float64)
    if samples.ndim == 2 and samples.shape[1] > 1:
        if not downmix:
            raise InputError(f"{path} has {samples.shape[1]} channels; the cochlea model takes mono audio: "
                             "pass --downmix to average the channels")
        samples = samples.mean(axis=1)
    samples = samples.reshape(-1)
    if len(samples) < 2:
        raise InputError(f"{path} holds {len(samples)} samples; a clip needs at least 2")
    if not np.any(samples):
        raise InputError(f"{path} is silent (all samples zero): the model normalises the RMS level, which needs sound")
    return samples, int(rate)


def collect(inputs) -> list[Path]:
    """The WAV files named by `inputs` (files, and folders: their *.wav sorted by name)."""
    found = []
    for item in map(Path, inputs):
        if item.is_dir():
            wavs = sorted(p for p in item.iterdir() if p.suffix.lower() == ".wav" and p.is_file())
            if not wavs:
                raise InputError(f"folder {item} holds no .wav files")
            found += wavs
        elif item.is_file():
            found.append(item)
        else:
            raise InputError(f"no such file or folder: {item}")
    if not found:
        raise InputError("no input: name WAV files or folders of them")
    return found


def labels_from_names(wavs) -> tuple[list[int], list[str], list[str]]:
    """(labels, class names, speaker of each file) from FSDD-style names `<digit>_<speaker>_<n>.wav`."""
    labels, speakers = [], []
    for path in map(Path, wavs):
        match = FSDD_NAME.match(path.stem)
        if match is None:
            raise InputError(f"cannot read a label from the file name '{path.name}': FSDD-style names are "
                             "<digit>_<speaker>_<n>.wav; pass --labels labels.csv")
        labels.append(int(match.group(1)))
        speakers.append(match.group(2))
    keys = list(DIGITS) if max(labels) < len(DIGITS) else [str(i) for i in range(max(labels) + 1)]
    return labels, keys, speakers


def labels_from_csv(wavs, table: str | Path) -> tuple[list[int], list[str], list[str]]:
    """(labels, class names, speakers) from rows `file,label[,speaker]` of `table`, matched by file name or by the
    path as given. Labels all integers: class indices; else class names, numbered in sorted order."""
    table = Path(table)
    rows = {}
    try:
        with open(table, newline="") as f:
            for line, row in enumerate(csv.reader(f), 1):
                if not row or (line == 1 and row[:2] == ["file", "label"]):
                    continue
                if len(row) not in (2, 3) or not row[0].strip() or not row[1].strip():
                    raise InputError(f"{table} line {line}: expected file,label[,speaker], got {','.join(row)!r}")
                rows[row[0].strip()] = [v.strip() for v in row[1:]]
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read the labels file {table} ({err})") from None
    picked = []
    for path in map(Path, wavs):
        row = rows.get(str(path), rows.get(path.name))
        if row is None:
            raise InputError(f"{table} has no row for {path.name}")
        picked.append(row)
    raw = [r[0] for r in picked]
    if all(v.isdigit() for v in raw):
        labels = [int(v) for v in raw]
        keys = [str(i) for i in range(max(labels) + 1)]
    else:
        keys = sorted(set(raw))
        labels = [keys.index(v) for v in raw]
    speakers = []
    for path, row in zip(map(Path, wavs), picked):
        match = FSDD_NAME.match(path.stem)
        speakers.append(row[1] if len(row) > 1 else match.group(2) if match else "unknown")
    return labels, keys, speakers


def file_seed(path: str | Path, seed_from: str | int = "crc32-of-name") -> int:
    """The seed of a file's random stream: crc32 of its name (& 0x7FFFFFFF), or the integer `seed_from`."""
    if seed_from == "crc32-of-name":
        return zlib.crc32(Path(path).name.encode()) & 0x7FFFFFFF
    return int(seed_from)


def _spikes_of(job) -> tuple[np.ndarray, np.ndarray]:
    """One file's spikes in SHD's types (float16 seconds, uint16 channels): the unit of work of a worker."""
    path, seed, params, downmix = job
    samples, rate = read_wav(path, downmix)
    times, units = wav_to_spikes(samples, rate, seed, params)
    return times.astype(np.float16), units.astype(np.uint16)


def convert(wavs, out_file: str | Path, labels=None, keys=None, speakers=None, workers: int = 1,
            seed_from: str | int = "crc32-of-name", params: CochleaParams = DEFAULT, downmix: bool = False,
            progress: bool = True) -> Path:
    """Write the spikes of `wavs` (in this order) to `out_file` in the SHD layout (`.h5`, or `.h5.gz`: gzipped).
    labels / keys / speakers: per file, class names, per file; labels None: from FSDD-style names."""
    wavs = [Path(w) for w in wavs]
    if labels is None:
        labels, name_keys, name_speakers = labels_from_names(wavs)
        keys = keys or name_keys
        speakers = speakers or name_speakers
    keys = keys or [str(i) for i in range(max(labels) + 1)]
    speakers = speakers or ["unknown"] * len(wavs)
    for path in wavs:  # bad input fails before minutes of work
        read_wav(path, downmix)
    jobs = [(path, file_seed(path, seed_from), params, downmix) for path in wavs]
    bar = tqdm(total=len(jobs), unit="file", desc="cochlea", disable=not progress)
    if workers > 1 and len(jobs) > 1:
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        with context.Pool(min(workers, len(jobs))) as pool:
            results = []
            for result in pool.imap(_spikes_of, jobs):
                results.append(result)
                bar.update()
    else:
        results = []
        for job in jobs:
            results.append(_spikes_of(job))
            bar.update()
    bar.close()
    times, units = np.empty(len(jobs), dtype=object), np.empty(len(jobs), dtype=object)
    for i, (t, u) in enumerate(results):
        times[i], units[i] = t, u
    names = sorted(set(speakers))
    out = Path(out_file)
    plain = out.with_name(f".{out.name}.{os.getpid()}.h5") if out.name.endswith(".gz") else out
    write_shd_file(plain, times, units, labels, speakers=[names.index(s) for s in speakers],
                   keys=[k.encode() for k in keys],
                   extra={"speaker_names": np.array([s.encode() for s in names]),
                          "files": np.array([w.name.encode() for w in wavs])})
    if plain != out:
        with open(plain, "rb") as src, gzip.open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 22)
        plain.unlink()
    return out


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit status 2, as for bad input
        self.exit(2, f"error: {message} (see --help)\n")


def seed_choice(text: str) -> str | int:
    if text == "crc32-of-name":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes crc32-of-name or an integer, not {text!r}") from None


def main(argv=None) -> int:
    parser = _Parser(prog="python -m spikebench.datamodules.cochlea", description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", metavar="IN", help="WAV files or folders of them")
    parser.add_argument("--out", required=True, help="the SHD-format file to write (.h5 or .h5.gz)")
    parser.add_argument("--labels", default="from-name",
                        help="from-name (FSDD-style <digit>_<speaker>_<n>.wav, the default) or a CSV of file,label[,speaker]")
    parser.add_argument("--workers", type=int, default=1, help="processes converting files in parallel")
    parser.add_argument("--seed-from", type=seed_choice, default="crc32-of-name",
                        help="crc32-of-name (each file's name seeds its stream, the default) or one integer for all")
    parser.add_argument("--downmix", action="store_true", help="average the channels of stereo files (else an error)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if not (args.out.endswith(".h5") or args.out.endswith(".h5.gz")):
        parser.error(f"--out must end in .h5 or .h5.gz, not {args.out!r}")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    try:
        wavs = collect(args.inputs)
        if args.labels == "from-name":
            labels, keys, speakers = labels_from_names(wavs)
        else:
            labels, keys, speakers = labels_from_csv(wavs, args.labels)
        out = convert(wavs, args.out, labels, keys, speakers, workers=args.workers, seed_from=args.seed_from,
                      downmix=args.downmix, progress=not args.quiet)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{out}: {len(wavs)} files, {len(keys)} classes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
