"""The verdict protocol: speaker-independent splits, the last epoch tested, per-recording predictions, multi-fidelity
studies that select on held-out speakers, leave-one-speaker-out cells, intervals and paired comparisons."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import yaml

from spikebench.configs import ConfigError, compose_config
from spikebench.datamodules import DataError, build_datamodule, read_spike_file
from spikebench.sweeps import optimize, search_space
from spikebench.sweeps.benchmark import command as B
from spikebench.sweeps.benchmark import stats
from spikebench.train import run

from conftest import overrides_for


def datamodule(tmp_path, shd_dir, *extra):
    cfg = compose_config(overrides_for(tmp_path, "data=shd", f"data.root={shd_dir}", *extra))
    dm = build_datamodule(cfg)
    dm.setup()
    return dm


def test_leave_out_trains_and_validates_without_the_speaker_and_tests_on_all_its_recordings_of_every_file(tmp_path, shd_dir):
    dm = datamodule(tmp_path, shd_dir, "data.leave_out=2", "data.val.speakers=[1]")
    assert 2 not in set(dm.train_set.data.speakers.tolist()) | set(dm.val_set.data.speakers.tolist())
    assert set(dm.val_set.data.speakers.tolist()) == {1}
    train, test = read_spike_file(shd_dir / "shd_train.h5"), read_spike_file(shd_dir / "shd_test.h5")
    assert set(dm.test_set.data.speakers.tolist()) == {2}
    assert len(dm.test_set) == (train.speakers == 2).sum() + (test.speakers == 2).sum()
    # the test file's recordings first, then the training file's, each spike train intact
    first = test.subset(np.flatnonzero(test.speakers == 2)[:1])
    got = dm.test_set.data.subset(np.array([0]))
    np.testing.assert_array_equal(got.times, first.times)
    np.testing.assert_array_equal(got.units, first.units)
    last_train = train.subset(np.flatnonzero(train.speakers == 2)[-1:])
    got = dm.test_set.data.subset(np.array([len(dm.test_set) - 1]))
    np.testing.assert_array_equal(got.times, last_train.times)
    assert got.labels[0] == last_train.labels[0]


def test_speaker_filter_keeps_only_the_named_speakers_in_every_file(tmp_path, shd_dir):
    dm = datamodule(tmp_path, shd_dir, "data.speakers=[0,3]", "data.val.fraction=0.2")
    for ds in (dm.train_set, dm.val_set, dm.test_set):
        assert set(ds.data.speakers.tolist()) <= {0, 3}
    assert len(dm.train_set) + len(dm.val_set) == 100 and len(dm.test_set) == 30


@pytest.mark.parametrize("extra, message", [
    (["data.leave_out=2", "data.val.speakers=[2]"], "also in data.val.speakers"),
    (["data.leave_out=7"], "not a speaker of this data"),
])
def test_impossible_speaker_splits_are_one_line_data_errors(tmp_path, shd_dir, extra, message):
    with pytest.raises(DataError, match=message):
        datamodule(tmp_path, shd_dir, *extra)


def test_predictions_csv_holds_every_test_recording_and_agrees_with_test_accuracy_and_the_last_checkpoint_is_tested(
        tmp_path, shd_dir, one_thread):
    cfg = compose_config(overrides_for(tmp_path, "data=shd", f"data.root={shd_dir}", "data.duration=0.1", "model.hidden=16",
                                       "trainer.max_epochs=2", "test_checkpoint=last", "data.leave_out=1"))
    results = run(cfg)
    out = tmp_path / "run"
    with open(out / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["index"]) for r in rows] == list(range(len(rows))) and len(rows) == 50 + 15
    assert {r["speaker"] for r in rows} == {"1"}
    acc = np.mean([r["label"] == r["predicted"] for r in rows])
    assert acc == pytest.approx(results["test/acc"], abs=1e-6)
    assert results["tested_checkpoint"] == "last" and np.isfinite(results["last_val_acc"])
    confusion = np.loadtxt(out / "confusion.csv", delimiter=",")
    assert confusion.trace() == sum(r["label"] == r["predicted"] for r in rows)


def test_t_interval_is_students_95_percent_half_width():
    mean, half, n = stats.t_interval([0.80, 0.82, 0.84, 0.86, 0.88])
    assert (mean, n) == (pytest.approx(0.84), 5)
    assert half == pytest.approx(2.7764451 * np.std([0.80, 0.82, 0.84, 0.86, 0.88], ddof=1) / np.sqrt(5), rel=1e-6)
    assert np.isnan(stats.t_interval([0.5])[1])


def test_paired_bootstrap_resolves_a_clear_difference_and_not_a_null_one():
    rng = np.random.default_rng(0)
    truth = rng.random(400) < 0.8
    same = [truth.astype(np.int8)] * 3
    other = [np.roll(truth, 7).astype(np.int8)] * 3  # as accurate, wrong on other recordings
    r = stats.paired_bootstrap(same, other, clustered=False, n_boot=2000)
    assert r["diff"] == 0 and r["lo"] < 0 < r["hi"] and r["resolved"] == 0.0
    worse = [(truth & (rng.random(400) < 0.7)).astype(np.int8) for _ in range(3)]  # ~24 points lower
    r = stats.paired_bootstrap(same, worse, clustered=False, n_boot=2000)
    assert r["resolved"] == 1.0 and r["lo"] > 0.15 and r["diff"] == pytest.approx(same[0].mean() - np.mean(worse))
    speakers_a = [np.ones(100, np.int8), np.ones(80, np.int8)]
    speakers_b = [np.zeros(100, np.int8), np.zeros(80, np.int8)]
    r = stats.paired_bootstrap(speakers_a, speakers_b, clustered=True, n_boot=500)
    assert (r["diff"], r["lo"], r["hi"], r["resolved"]) == (1.0, 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="differ"):
        stats.paired_bootstrap(speakers_a, [np.zeros(100, np.int8), np.zeros(79, np.int8)], clustered=True)


def test_sweep_enqueue_checks_keys_and_values_against_the_space():
    space = search_space.load_space(search_space.space_path("bptt"))
    assert optimize.enqueued(["data.dt=1.0e-3 model.integration=exact"], space) == [
        {"data.dt": 0.001, "model.integration": "exact"}]
    with pytest.raises(ConfigError, match="not searched"):
        optimize.enqueued(["model.hidden_size=3"], space)
    with pytest.raises(ConfigError, match="outside its space"):
        optimize.enqueued(["data.dt=3.0e-3"], space)


def verdict_argv(tmp_path, shd_dir, *extra):
    return [
        "benchmark=fsdd_verdict", f"benchmark.out_dir={tmp_path / 'out'}", "benchmark.algorithms=[bptt,eventprop]",
        "benchmark.seeds=[0,1]", "benchmark.workers=1", "benchmark.loso.speakers=[0,2]",
        "benchmark.overrides=[data=shd,data.duration=0.1,data.batch_size=16,model.hidden=16,trainer.limit_train_batches=2,"
        "test_checkpoint=last]",
        "benchmark.tuning.trials=3", "benchmark.tuning.max_epochs=3", "benchmark.tuning.n_startup_trials=1",
        "benchmark.tuning.prune_warmup_epochs=1", "benchmark.tuning.epochs=2", "benchmark.neurobench_samples=8",
        "benchmark.tuning.trial_overrides=['data.val.speakers=[3]']",
        f"data.root={shd_dir}", f"data.cache_dir={tmp_path / 'cache'}", *extra,
    ]


def test_verdict_benchmark_selects_on_a_held_out_speaker_retrains_per_seed_and_per_left_out_speaker_and_reports_intervals(
        tmp_path, shd_dir, one_thread):
    out, failures = B.benchmark(verdict_argv(tmp_path, shd_dir))
    assert failures == {}
    for a in ("bptt", "eventprop"):
        study = out / "studies" / f"tune-{a}"
        done = yaml.safe_load((study / "cell.yaml").read_text())
        assert done["cell"]["info"]["pruner"] == "hyperband" and done["cell"]["info"]["objective"] == "last"
        first = yaml.safe_load((study / "trial-0000" / "config.yaml").read_text())
        assert first["data"]["dt"] == 0.001  # enqueued: every study tries 1 ms first
        for trial in study.glob("trial-*"):
            cfg = yaml.safe_load((trial / "config.yaml").read_text())
            assert cfg["data"]["val"]["speakers"] == [3] and cfg["test"] is False and cfg["trainer"]["max_epochs"] == 3
        for seed in (0, 1):
            cfg = yaml.safe_load((out / "cells" / f"tuned-{a}-h16-rec-s{seed}" / "config.yaml").read_text())
            assert cfg["data"]["val"]["speakers"] is None and cfg["data"]["leave_out"] is None
            assert cfg["test_checkpoint"] == "last" and cfg["trainer"]["max_epochs"] == 2
        for k in (0, 2):
            cell = out / "cells" / f"loso-{a}-spk{k}-s0"
            assert yaml.safe_load((cell / "config.yaml").read_text())["data"]["leave_out"] == k
            with open(cell / "predictions.csv", newline="") as f:
                speakers = {r["speaker"] for r in csv.DictReader(f)}
            assert speakers == {str(k)}
    text = (out / "table.md").read_text()
    assert "## The verdict" in text and "Unseen by selection" in text and "bptt − eventprop" in text
    pairs = list(csv.DictReader(open(out / "pairs.csv")))
    assert len(pairs) == 1 and float(pairs[0]["test_lo"]) <= float(pairs[0]["test_diff"]) <= float(pairs[0]["test_hi"])
    assert (out / "verdict.png").stat().st_size > 1000
    loso = list(csv.DictReader(open(out / "loso.csv")))
    assert sorted((r["algorithm"], r["speaker"]) for r in loso) == [
        ("bptt", "0"), ("bptt", "2"), ("eventprop", "0"), ("eventprop", "2")]
