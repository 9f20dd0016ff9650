"""The SHD cochlea model and converter (datamodules/cochlea*.py): the same spikes as lauscher 1.0.1 and as the
stored fsdd-spikes file, files that load and train, one-line errors."""

from __future__ import annotations

import zlib

import h5py
import numpy as np
import pytest
from scipy.io import wavfile
from scipy.signal import resample_poly

from spikebench.datamodules import build_datamodule, read_spike_file
from spikebench.datamodules.cochlea import convert, main
from spikebench.datamodules.cochlea_model import CochleaParams, bushy_cells, pairwise_sum, wav_to_spikes
from spikebench.events import as_frames
from spikebench.datamodules.files import unpack
from spikebench.train import compose_config
from conftest import FSDD, overrides_for

AUDIO = FSDD.parent / "fsdd-audio"
needs_fsdd = pytest.mark.skipif(not (AUDIO.is_dir() and (FSDD / "fsdd_test.h5.gz").is_file()),
                                reason="../shared/data/fsdd-audio or fsdd-spikes/fsdd_test.h5.gz not present")
SHORT_CLIPS = ["1_theo_2.wav", "2_theo_3.wav", "1_theo_4.wav"]  # the three shortest (0.19-0.22 s)


def lauscher_or_skip():
    """lauscher 1.0.1 (optional: `pip install -e '.[cochlea-check]'`), its worker pool at one process."""
    pytest.importorskip("lauscher", reason="lauscher is not installed: pip install -e '.[cochlea-check]'")
    from lauscher.helpers import CommandLineArguments

    CommandLineArguments().num_concurrent_jobs = 1
    from lauscher.audiowaves import MonoAudioWave
    from lauscher.transformations.wave2spike import Wave2Spike

    return MonoAudioWave, Wave2Spike


def lauscher_spikes(samples, rate, seed, channels):
    """lauscher's Wave2Spike on 16 kHz audio, its global random stream seeded as fsdd-spikes was made."""
    MonoAudioWave, Wave2Spike = lauscher_or_skip()
    np.random.seed(seed)
    spikes = MonoAudioWave(np.array(samples, dtype=np.float64), rate).transform(Wave2Spike(num_channels=channels))
    return spikes.spike_times, spikes.spike_labels.astype(np.int64)


@pytest.fixture(scope="module")
def fsdd_test_file(tmp_path_factory):
    """{file name: (float16 times, uint16 units)} of the stored fsdd_test.h5.gz."""
    path = unpack(FSDD / "fsdd_test.h5.gz", tmp_path_factory.mktemp("cache"))
    with h5py.File(path, "r") as f:
        return {n.decode(): (t, u) for n, t, u in zip(f["extra/files"][:], f["spikes/times"][:], f["spikes/units"][:])}


def same_as_stored(out_file, stored) -> tuple[int, list[str]]:
    """(samples checked, names of those whose spikes differ from the stored ones: count per channel, float16 times)."""
    with h5py.File(out_file, "r") as f:
        names = [n.decode() for n in f["extra/files"][:]]
        differ = []
        for name, t, u in zip(names, f["spikes/times"][:], f["spikes/units"][:]):
            t_ref, u_ref = stored[name]
            counts_equal = np.array_equal(np.bincount(u, minlength=700), np.bincount(u_ref, minlength=700))
            if not (counts_equal and np.array_equal(t, t_ref) and np.array_equal(u, u_ref)):
                differ.append(name)
    return len(names), differ


def write_clip(path, rate=8000, seconds=0.03, seed=0, stereo=False):
    """A short WAV: a chirp in noise, 16-bit PCM."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    x = 0.3 * np.sin(2 * np.pi * (300 + 4000 * t) * t) + 0.05 * rng.standard_normal(len(t))
    if stereo:
        x = np.stack([x, 0.5 * x[::-1]], axis=1)
    wavfile.write(path, rate, (np.clip(x, -1, 1) * 32767).astype(np.int16))
    return path


def test_pairwise_sum_equals_numpys_sum_to_the_last_bit():
    rng = np.random.default_rng(1)
    acc = np.empty(8)
    for n in [*range(1, 20), 39, 40, 41, 100, 127, 128]:
        for _ in range(20):
            a = rng.random(n) * 10.0 ** rng.integers(-8, 8, n)
            assert pairwise_sum(a, acc) == np.sum(a), n


def test_bushy_cells_draw_as_many_numbers_as_numpys_random_sample_from_any_position():
    prob = np.random.default_rng(2).random((5, 60)) * 0.2
    for skip in (0, 4, 3 * 4):  # bytes(4): one 32-bit word, so the doubles start at an odd position too
        rng, ref = np.random.RandomState(7), np.random.RandomState(7)
        rng.bytes(skip), ref.bytes(skip)
        bushy_cells(prob, 8000, rng)
        ref.random_sample(prob.size * 40)
        assert all(np.array_equal(a, b) for a, b in zip(rng.get_state(), ref.get_state()))


@needs_fsdd
def test_converter_gives_the_stored_fsdd_test_spikes_on_three_clips(tmp_path, fsdd_test_file):
    out = convert([AUDIO / n for n in SHORT_CLIPS], tmp_path / "three.h5", progress=False)
    assert same_as_stored(out, fsdd_test_file) == (3, [])


@pytest.mark.slow
@needs_fsdd
def test_converter_gives_the_stored_fsdd_test_spikes_on_25_clips(tmp_path, fsdd_test_file):
    names = sorted(fsdd_test_file)[::10]  # every tenth: each digit, each speaker
    out = convert([AUDIO / n for n in names], tmp_path / "some.h5", progress=False)
    assert same_as_stored(out, fsdd_test_file) == (25, [])


@pytest.mark.parametrize("rate,seconds,seed", [(16000, 0.06, 11), (8000, 0.05, 12)])
def test_model_gives_lauschers_spikes_at_64_channels(tmp_path, rate, seconds, seed):
    """The whole chain against lauscher (64 channels keep it short): 16 kHz audio as is; 8 kHz audio resampled by
    the model, given to lauscher resampled as fsdd-spikes was (resample_poly(x, 2, 1))."""
    lauscher_or_skip()
    rate_read, pcm = wavfile.read(write_clip(tmp_path / "clip.wav", rate, seconds, seed))
    x = pcm / 32768.0
    times, units = wav_to_spikes(x, rate_read, seed, CochleaParams(channels=64))
    ref_times, ref_units = lauscher_spikes(x if rate == 16000 else resample_poly(x, 2, 1), 16000, seed, 64)
    assert len(ref_times) > 50
    assert np.array_equal(times, ref_times) and np.array_equal(units, ref_units)


@pytest.mark.slow
@needs_fsdd
def test_model_gives_lauschers_spikes_on_an_fsdd_clip_at_700_channels():
    lauscher_or_skip()
    name = SHORT_CLIPS[0]
    rate, pcm = wavfile.read(AUDIO / name)
    x = pcm / 32768.0
    seed = zlib.crc32(name.encode()) & 0x7FFFFFFF
    times, units = wav_to_spikes(x, rate, seed)
    ref_times, ref_units = lauscher_spikes(resample_poly(x, 2, 1), 16000, seed, 700)
    assert np.array_equal(times, ref_times) and np.array_equal(units, ref_units)


def test_written_file_has_fsdds_layout_and_trains(tmp_path):
    folder = tmp_path / "wavs"
    folder.mkdir()
    for i in range(12):
        write_clip(folder / f"{i % 3}_{['ann', 'bob'][i % 2]}_{i}.wav", seconds=0.03, seed=i)
    assert main([str(folder), "--out", str(tmp_path / "data" / "tiny.h5"), "--quiet"]) == 0
    expected = {"spikes/times": "float16", "spikes/units": "uint16"}
    with h5py.File(tmp_path / "data" / "tiny.h5", "r") as f:
        for name, dtype in expected.items():
            assert h5py.check_vlen_dtype(f[name].dtype) == np.dtype(dtype)
        assert f["labels"].dtype == np.uint16 and f["extra/speaker"].dtype == np.uint16
        assert [k.decode() for k in f["extra/keys"][:]] == ["zero", "one", "two", "three", "four", "five", "six",
                                                           "seven", "eight", "nine"]
        assert list(f["extra/speaker_names"][:]) == [b"ann", b"bob"]
        assert f["extra/files"][0] == b"0_ann_0.wav" and f["extra/files"].dtype.kind == "S"
    data = read_spike_file(tmp_path / "data" / "tiny.h5")
    assert list(data.labels) == [0] * 4 + [1] * 4 + [2] * 4  # files by name: 0_ann_0, 0_ann_6, 0_bob_3, ...
    cfg = compose_config(overrides_for(tmp_path, "data=shd", f"data.root={tmp_path / 'data'}", "data.download=false",
                                       "data.files.train=tiny", "data.files.test=tiny", "data.n_classes=10",
                                       "data.duration=0.05"))
    dm = build_datamodule(cfg)
    dm.setup()
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape[1:] == (50, 700) and as_frames(x).sum() > 0 and int(y.max()) < 3  # frames or the event batch


def test_csv_labels_downmix_and_workers_give_the_same_file_as_one_worker(tmp_path):
    folder = tmp_path / "wavs"
    folder.mkdir()
    for i, name in enumerate(["b.wav", "a.wav", "c.wav"]):
        write_clip(folder / name, seed=i, stereo=True)
    table = tmp_path / "labels.csv"
    table.write_text("file,label,speaker\na.wav,yes,eve\nb.wav,no,eve\nc.wav,yes,joe\n")
    files = []
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}.h5"
        assert main([str(folder), "--out", str(out), "--labels", str(table), "--downmix", "--workers", workers,
                     "--seed-from", "5", "--quiet"]) == 0
        files.append(read_spike_file(out))
    one, two = files
    assert one.keys == ["no", "yes"] and list(one.labels) == [1, 0, 1]  # folder order: a, b, c
    assert list(one.speakers) == [0, 0, 1]
    assert np.array_equal(one.times, two.times) and np.array_equal(one.units, two.units)
    assert np.array_equal(one.offsets, two.offsets) and len(one.times) > 0


@pytest.mark.parametrize("case,message", [
    ("missing", "no such file or folder"),
    ("not_wav", "is not a readable WAV file"),
    ("stereo", "has 2 channels; the cochlea model takes mono audio: pass --downmix"),
    ("empty_folder", "holds no .wav files"),
    ("bad_name", "cannot read a label from the file name 'speech.wav'"),
    ("csv_missing_row", "has no row for 0_ann_0.wav"),
    ("csv_bad_row", "line 1: expected file,label[,speaker]"),
    ("silent", "is silent"),
    ("bad_seed", "argument --seed-from: takes crc32-of-name or an integer"),
    ("bad_out", "--out must end in .h5 or .h5.gz"),
])
def test_bad_input_ends_with_one_line_error_and_exit_2(tmp_path, capsys, case, message):
    good = write_clip(tmp_path / "0_ann_0.wav")
    args = {
        "missing": [str(tmp_path / "nope.wav")],
        "not_wav": [str(tmp_path / "0_ann_1.wav")],
        "stereo": [str(write_clip(tmp_path / "1_ann_0.wav", stereo=True))],
        "empty_folder": [str(tmp_path / "empty")],
        "bad_name": [str(write_clip(tmp_path / "speech.wav"))],
        "csv_missing_row": [str(good), "--labels", str(tmp_path / "labels.csv")],
        "csv_bad_row": [str(good), "--labels", str(tmp_path / "bad.csv")],
        "silent": [str(tmp_path / "2_ann_0.wav")],
        "bad_seed": [str(good), "--seed-from", "crc"],
        "bad_out": [str(good), "--out", str(tmp_path / "x.npz")],
    }[case]
    (tmp_path / "0_ann_1.wav").write_text("not audio")
    (tmp_path / "empty").mkdir()
    (tmp_path / "labels.csv").write_text("other.wav,3\n")
    (tmp_path / "bad.csv").write_text("0_ann_0.wav\n")
    wavfile.write(tmp_path / "2_ann_0.wav", 8000, np.zeros(400, np.int16))
    if "--out" not in args:
        args += ["--out", str(tmp_path / "out.h5")]
    code = exit_code([*args, "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (tmp_path / "out.h5").exists()


def exit_code(args) -> int:
    """The CLI's exit status, returned or raised (argparse's errors exit)."""
    try:
        return main(args)
    except SystemExit as stop:
        return stop.code
