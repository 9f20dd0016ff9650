"""Datamodules: binning, file formats (.h5 / .gz / .zip), errors, splits, augmentations, generated data."""

from __future__ import annotations

import gzip
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from spikebench.datamodules import DataError, build_datamodule, read_spike_file
from spikebench.datamodules.augment import blend, channel_shift
from spikebench.datamodules.binning import bin_events, delay_line
from spikebench.datamodules.files import load_split
from spikebench.train import compose_config
from conftest import FSDD, overrides_for


def test_binning_counts_spikes_per_step_and_channel_as_computed_by_hand():
    # sample 0: t=0.0005 ch1, t=0.0012 ch1, t=0.0019 ch1 (two in step 1), t=0.0031 ch4 (beyond 3 steps: dropped)
    # sample 1: t=0.0 ch0, t=0.0029 ch5, unit 7 out of range (dropped)
    times = torch.tensor([0.0005, 0.0012, 0.0019, 0.0031, 0.0, 0.0029, 0.001])
    units = torch.tensor([1, 1, 1, 4, 0, 5, 7])
    sample = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    frames = bin_events(times, units, sample, batch=2, steps=3, channels=6, dt=1e-3)
    expect = torch.zeros(2, 3, 6)
    expect[0, 0, 1] = 1
    expect[0, 1, 1] = 2
    expect[1, 0, 0] = 1
    expect[1, 2, 5] = 1
    assert torch.equal(frames, expect)
    pooled = bin_events(times, units, sample, batch=2, steps=3, channels=6, dt=1e-3, pool=4)
    assert pooled.shape == (2, 3, 2)
    assert torch.equal(pooled, torch.tensor([[[1.0, 0], [2, 0], [0, 0]], [[1, 0], [0, 0], [0, 1]]]))
    assert bin_events(times, units, sample, 2, 3, 6, 1e-3, binary=True).max() == 1


def test_delay_line_copy_k_is_the_input_delayed_by_k_spacings():
    x = torch.rand(2, 10, 3)
    d = delay_line(x, copies=3, spacing=4)
    assert d.shape == (2, 10, 9)
    assert torch.equal(d[..., :3], x)
    assert torch.equal(d[:, 4:, 3:6], x[:, :6]) and d[:, :4, 3:6].abs().sum() == 0
    assert torch.equal(d[:, 8:, 6:9], x[:, :2])


def test_shd_file_reads_identically_from_h5_gz_and_zip(shd_dir, tmp_path):
    ref = read_spike_file(shd_dir / "shd_train.h5")
    assert len(ref) == 200 and ref.times.dtype == np.float32
    packed = tmp_path / "packed"
    packed.mkdir()
    with open(shd_dir / "shd_train.h5", "rb") as src, gzip.open(packed / "shd_train.h5.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    with zipfile.ZipFile(packed / "shd_test.h5.zip", "w") as zf:
        zf.write(shd_dir / "shd_test.h5", "shd_test.h5")
    cfg = compose_config(overrides_for(tmp_path, "data=shd", f"data.root={packed}", "data.download=false"))
    train, test = load_split(cfg.data, "train"), load_split(cfg.data, "test")
    np.testing.assert_array_equal(train.times, ref.times)
    np.testing.assert_array_equal(train.offsets, ref.offsets)
    assert len(test) == 60


def test_missing_file_error_says_where_to_put_it(tmp_path):
    cfg = compose_config(overrides_for(tmp_path, "data=shd", f"data.root={tmp_path}", "data.download=false"))
    with pytest.raises(DataError, match=r"shd_train.h5.*not found in .*put it there.*zenkelab"):
        build_datamodule(cfg).setup()


@pytest.mark.parametrize("suffix", [".h5", ".h5.gz", ".h5.zip"])
def test_corrupt_file_error_says_to_download_again(tmp_path, suffix):
    (tmp_path / f"shd_train{suffix}").write_bytes(b"this is not hdf5 at all" * 10)
    cfg = compose_config(overrides_for(tmp_path, "data=shd", f"data.root={tmp_path}", "data.download=false"))
    with pytest.raises(DataError, match="download it again"):
        load_split(cfg.data, "train")


def test_validation_split_is_seeded_and_disjoint_or_by_speaker(shd_dir, tmp_path):
    def split(*extra):
        cfg = compose_config(overrides_for(tmp_path, "data=shd", f"data.root={shd_dir}", *extra))
        dm = build_datamodule(cfg)
        dm.setup()
        return dm

    a, b = split("data.val.fraction=0.25"), split("data.val.fraction=0.25")
    assert len(a.val_set) == 50 and len(a.train_set) == 150
    np.testing.assert_array_equal(a.val_set.data.labels, b.val_set.data.labels)
    c = split("data.val.speakers=[1]")
    assert set(c.val_set.data.speakers.tolist()) == {1} and 1 not in set(c.train_set.data.speakers.tolist())


def test_generated_data_is_deterministic_per_seed_and_in_shd_layout(tmp_path):
    def files(seed):
        cfg = compose_config(overrides_for(tmp_path, f"data.root={tmp_path / 'syn'}", f"data.synthetic.seed={seed}",
                                           "data.synthetic.n_train=40", "data.synthetic.n_test=20"))
        dm = build_datamodule(cfg)
        dm.prepare_data()
        return read_spike_file(dm.root / "synthetic_train.h5")

    a, b, c = files(1), files(1), files(2)
    np.testing.assert_array_equal(a.times, b.times)
    assert not np.array_equal(a.labels, c.labels) or not np.array_equal(a.times[:100], c.times[:100])
    assert a.units.max() < 700 and set(np.unique(a.labels)) <= set(range(20))


def test_channel_shift_moves_all_spikes_of_a_sample_by_one_offset():
    units = torch.tensor([10, 20, 30, 10, 20])
    sample = torch.tensor([0, 0, 0, 1, 1])
    shifted = channel_shift(units, sample, 2, 40)
    d = shifted - units
    assert d[0] == d[1] == d[2] and d[3] == d[4] and d.abs().max() <= 40


def test_blend_keeps_spikes_from_both_samples_aligned_in_time():
    rng = np.random.default_rng(0)
    t_a, u_a = np.full(1000, 0.3, np.float32), np.zeros(1000, np.int32)
    t_b, u_b = np.full(1000, 0.5, np.float32), np.ones(1000, np.int32)
    t, u = blend(t_a, u_a, t_b, u_b, 0.5, rng)
    assert 350 < (u == 0).sum() < 650 and 350 < (u == 1).sum() < 650
    np.testing.assert_allclose(t, 0.3, atol=1e-6)  # the partner was moved to the same mean time


def test_training_batches_are_frames_batch_time_channels(shd_dir, tmp_path):
    cfg = compose_config(overrides_for(tmp_path, "data=shd", f"data.root={shd_dir}", "data.duration=0.1",
                                       "data.augment.shift=40", "data.augment.dropout=0.1", "data.augment.blend_prob=0.5",
                                       "data.pool=2", "data.delay.copies=2", "data.delay.spacing=0.01",
                                       "data.format=frames"))
    dm = build_datamodule(cfg)
    dm.setup()
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (32, 100, 700) and y.shape == (32,) and x.sum() > 0


@pytest.mark.skipif(not FSDD.exists(), reason="../shared/data/fsdd-spikes not present")
def test_fsdd_spikes_load_by_config_alone(tmp_path):
    cfg = compose_config(overrides_for(tmp_path, "data=fsdd"))
    dm = build_datamodule(cfg)
    dm.setup()
    assert len(dm.test_set) == 250 and len(dm.train_set) + len(dm.val_set) == 2250
    x, y = next(iter(dm.test_dataloader()))
    assert x.shape == (32, 1000, 700) and y.max() < 10


# ----------------------------------------------------------------------------------------------
# Bad data: one line `error: …`, exit status 2, no run folder (README: "Bad input")
# ----------------------------------------------------------------------------------------------


def broken_file(folder, case: str) -> list[str]:
    """Write a broken train file for `case` into folder (the test file is a good one); the extra overrides."""
    from spikebench.datamodules.synthetic import write_shd_file

    lengths = [2, 3, 2, 3]  # ragged, as real files are (np.array of equal-length arrays would be 2-D)
    times = lambda *v: [np.array([*v, 0.03][:n], np.float32) for n in lengths]  # noqa: E731
    units = lambda *v: [np.array([*v, 3][:n], np.uint16) for n in lengths]  # noqa: E731
    good = times(0.01, 0.02), units(1, 2), [0, 1, 0, 1]
    write_shd_file(folder / "shd_test.h5", *good, speakers=np.arange(4) % 2)
    train = folder / "shd_train.h5"
    if case == "not_hdf5":
        train.write_bytes(b"this is not an HDF5 file")
    elif case == "truncated_gz":
        write_shd_file(train, *good)
        data = gzip.compress(train.read_bytes())
        train.unlink()
        (folder / "shd_train.h5.gz").write_bytes(data[: len(data) // 2])
    elif case == "corrupt_zip":
        (folder / "shd_train.h5.zip").write_bytes(b"PK\x03\x04 broken")
    elif case == "channels":
        write_shd_file(train, good[0], units(1, 750), good[2])
    elif case == "labels":
        write_shd_file(train, *good[:2], [0, 1, 0, 25])
    elif case == "nan_times":
        write_shd_file(train, times(0.01, np.nan), *good[1:])
    elif case == "negative_times":
        write_shd_file(train, times(-0.5, 0.02), *good[1:])
    elif case == "empty_split":
        write_shd_file(train, *good, speakers=np.arange(4) % 2)
        return ["data.val.speakers=[0,1]"]
    return []


@pytest.mark.parametrize("case,message", [
    ("not_hdf5", "is not a readable SHD-format file"), ("truncated_gz", "is corrupt"), ("corrupt_zip", "is corrupt"),
    ("channels", "has input channel 750 but data.channels=700"), ("labels", "has label 25 but data.n_classes=20"),
    ("nan_times", "NaN, infinite or negative spike times"), ("negative_times", "NaN, infinite or negative spike times"),
    ("empty_split", "leaves an empty split"),
])
def test_bad_data_file_ends_with_one_line_and_exit_2_and_no_run_folder(tmp_path, capsys, case, message):
    from spikebench import train
    data = tmp_path / "data"
    data.mkdir()
    extra = broken_file(data, case)
    out = tmp_path / "run"
    code = train.main(["data=shd", f"data.root={data}", "data.download=false", f"data.cache_dir={tmp_path / 'cache'}",
                       "data.duration=0.05", f"output_dir={out}", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: ") and message in err[-1], err
    assert not out.exists()


def test_a_failed_download_says_so_and_leaves_no_empty_data_folder(tmp_path, monkeypatch):
    import tonic.download_utils

    from spikebench.datamodules.files import locate

    made = []

    def offline(url, root, filename=None, md5=None):
        Path(root).mkdir(parents=True, exist_ok=True)  # as the real one does before fetching
        made.append(root)
        raise OSError("network unreachable")

    monkeypatch.setattr(tonic.download_utils, "download_url", offline)
    cfg = compose_config(["data=shd", f"data.root={tmp_path / 'a' / 'shd'}"])
    with pytest.raises(DataError, match="downloading it failed"):
        locate(cfg.data, "train")
    assert made and not (tmp_path / "a").exists()
