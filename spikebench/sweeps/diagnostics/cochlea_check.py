"""The SHD cochlea converter (spikebench.datamodules.cochlea) against lauscher 1.0.1 and against the stored fsdd_test.h5.gz.

    OMP_NUM_THREADS=1 python -m spikebench.sweeps.diagnostics.cochlea_check speed [CLIP.wav ...]  # seconds per clip, both, one run
    OMP_NUM_THREADS=1 python -m spikebench.sweeps.diagnostics.cochlea_check match 0 250           # clips 0..249 of fsdd_test

speed: lauscher (its worker pool at one process) and this suite's model on the same FSDD clips, one after the
other in this process, each on one core; both from the 8 kHz samples (lauscher's input resampled as fsdd-spikes
was, resample_poly(x, 2, 1), inside its timing). match: which clips' spikes (count per channel, float16 times,
channels) equal the stored ones. Needs ../shared/data/fsdd-audio and fsdd-spikes; speed needs lauscher.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
from scipy.signal import resample_poly

from spikebench.datamodules.cochlea import file_seed, read_wav
from spikebench.datamodules.cochlea_model import wav_to_spikes
from spikebench.datamodules.files import unpack

DATA = Path("../shared/data")  # --data: the folder holding fsdd-audio/ and fsdd-spikes/
AUDIO, STORED = DATA / "fsdd-audio", DATA / "fsdd-spikes" / "fsdd_test.h5.gz"
SPEED_CLIPS = ["1_theo_2.wav", "0_george_0.wav", "7_nicolas_4.wav"]  # shortest, 0.30 s, median (0.45 s)


def stored() -> tuple[list[str], list, list]:
    """(file names, float16 times, uint16 units) of fsdd_test.h5.gz, in its order."""
    path = unpack(STORED, Path(tempfile.gettempdir()) / "spikebench-cochlea-check")
    with h5py.File(path, "r") as f:
        return [n.decode() for n in f["extra/files"][:]], list(f["spikes/times"][:]), list(f["spikes/units"][:])


def ours(name: str) -> tuple[np.ndarray, np.ndarray]:
    samples, rate = read_wav(AUDIO / name)
    return wav_to_spikes(samples, rate, file_seed(name))


def theirs(name: str) -> tuple[np.ndarray, np.ndarray]:
    from lauscher.audiowaves import MonoAudioWave
    from lauscher.helpers import CommandLineArguments
    from lauscher.transformations.wave2spike import Wave2Spike

    CommandLineArguments().num_concurrent_jobs = 1
    samples, rate = read_wav(AUDIO / name)
    np.random.seed(file_seed(name))
    spikes = MonoAudioWave(resample_poly(samples, 16000 // rate, 1), 16000).transform(Wave2Spike(num_channels=700))
    return spikes.spike_times, spikes.spike_labels.astype(np.int64)


def speed(names: list[str]) -> None:
    start = time.perf_counter()
    wav_to_spikes(np.sin(np.arange(400.0)), 8000, 0)  # numba's compiled code: loaded (or compiled) once
    print(f"first use (numba cache load or compile): {time.perf_counter() - start:.2f} s")
    print(f"{'clip':16s} {'samples':>7s} {'lauscher s':>10s} {'suite s':>8s} {'ratio':>6s}  same spikes")
    total_l = total_s = 0.0
    for name in names:
        t0 = time.perf_counter()
        ref = theirs(name)
        t1 = time.perf_counter()
        mine = ours(name)
        t2 = time.perf_counter()
        same = all(np.array_equal(a, b) for a, b in zip(ref, mine))
        total_l, total_s = total_l + t1 - t0, total_s + t2 - t1
        n = len(read_wav(AUDIO / name)[0])
        print(f"{name:16s} {n:7d} {t1 - t0:10.2f} {t2 - t1:8.2f} {(t1 - t0) / (t2 - t1):6.1f}  {same}", flush=True)
    k = len(names)
    print(f"mean per clip: lauscher {total_l / k:.2f} s, suite {total_s / k:.2f} s, ratio {total_l / total_s:.1f}x")


def match(lo: int, hi: int) -> None:
    names, times, units = stored()
    equal = []
    for i in range(lo, min(hi, len(names))):
        t, u = ours(names[i])
        t16, u16 = t.astype(np.float16), u.astype(np.uint16)
        counts = np.array_equal(np.bincount(u16, minlength=700), np.bincount(units[i], minlength=700))
        same = counts and np.array_equal(t16, times[i]) and np.array_equal(u16, units[i])
        equal.append(same)
        detail = "" if same else f" (spikes {len(t16)} vs stored {len(times[i])}, counts per channel equal: {counts})"
        print(f"{i:3d} {names[i]:16s} {'equal' if same else 'DIFFERENT'}{detail}", flush=True)
    print(f"clips {lo}..{lo + len(equal) - 1}: {sum(equal)}/{len(equal)} equal to fsdd_test.h5.gz")


def main(argv: list[str] | None = None) -> None:
    global AUDIO, STORED
    parser = argparse.ArgumentParser(prog="python -m spikebench.sweeps.diagnostics.cochlea_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["speed", "match"])
    parser.add_argument("args", nargs="*", help="speed: clip names (default: three FSDD clips); match: START STOP")
    parser.add_argument("--data", type=Path, default=DATA, help="folder with fsdd-audio/ and fsdd-spikes/")
    a = parser.parse_args(argv)
    AUDIO, STORED = a.data / "fsdd-audio", a.data / "fsdd-spikes" / "fsdd_test.h5.gz"
    if a.what == "speed":
        speed(a.args or SPEED_CLIPS)
    elif len(a.args) == 2:
        match(int(a.args[0]), int(a.args[1]))
    else:
        parser.error("match needs START STOP")


if __name__ == "__main__":
    main()
