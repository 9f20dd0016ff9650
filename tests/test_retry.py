"""A trial whose worker died is retried from its run's last checkpoint (sweeps/retry.py), with the values that the
uninterrupted trial would have had."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import warnings

import optuna
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from optuna.trial import TrialState

from spikebench import train
from spikebench.configs import compose_config
from spikebench.sweeps import optimize, retry

from conftest import overrides_for
from test_sweeps import data_root, tiny  # noqa: F401 - the studies' tiny run and its data folder (a fixture)


class Killed(BaseException):
    """Plays a SIGKILL: not an Exception, so neither the suite nor Optuna records the trial's end (it stays RUNNING)."""


class KillAfterEpoch(Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, module):  # the next epoch begins: every file of `epoch` is written
        if trainer.current_epoch == self.epoch + 1:
            raise Killed


class TrainedEpochs(Callback):
    def __init__(self) -> None:
        self.epochs = []

    def on_train_epoch_start(self, trainer, module):
        self.epochs.append(trainer.current_epoch)


def with_callback(monkeypatch, callback):
    """optimize.run with one more callback (what the worker process does in that run)."""
    run = optimize.run
    monkeypatch.setattr(optimize, "run", lambda cfg, callbacks, command: run(cfg, [*callbacks, callback], command))


def kill_trial(monkeypatch, argv, tmp_path, epoch: int, number: int = 0, callback=None) -> None:
    """Run the study until its worker "dies" after `epoch`, leaving trial `number` RUNNING with a dead process as
    its worker."""
    with monkeypatch.context() as m:
        if callback is not None:
            with_callback(m, callback)
        with_callback(m, KillAfterEpoch(epoch))  # the outer wrapper: KillAfterEpoch runs before `callback`
        try:
            optimize.optimize(argv)
            raise AssertionError("the run was not killed")
        except Killed:
            pass
    journal = optuna.storages.journal.JournalFileBackend(str(tmp_path / "s" / "journal.log"))
    study = optuna.load_study(study_name="s", storage=optuna.storages.JournalStorage(journal))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    study._storage.set_trial_user_attr(study.trials[number]._trial_id, "worker", f"{socket.gethostname()}:{dead.pid}")
    assert study.trials[number].state == TrialState.RUNNING


def test_a_retried_trial_continues_its_dead_trials_run_and_ends_with_the_uninterrupted_trials_values_and_weights(
    tmp_path, data_root, monkeypatch, capsys
):
    space = tmp_path / "lr.yaml"
    space.write_text("optim.lr: {low: 1.0e-3, high: 3.0e-2, log: true}\n")

    def argv(name):
        return [*tiny(data_root, epochs=4), f"sweep.space={space}", f"sweep.study_name={name}",
                f"sweep.out_dir={tmp_path / name}", "sweep.sampler=random", "sweep.pruner=hyperband",
                "sweep.prune_warmup_epochs=1", "sweep.n_trials=1", "sweep.objective=best", "logger=csv"]

    reference = optimize.optimize(argv("s")).trials[0]  # the same study name and sampler seed: the same parameters
    (tmp_path / "s").rename(tmp_path / "whole")

    kill_trial(monkeypatch, argv("s"), tmp_path, epoch=1)
    first, second = TrainedEpochs(), TrainedEpochs()
    kill_trial(monkeypatch, argv("s"), tmp_path, epoch=2, number=1, callback=first)  # the retry dies too
    capsys.readouterr()
    with monkeypatch.context() as m:  # the study resumed: trials 0 and 1 failed, the retry's retry (trial 2) runs
        with_callback(m, second)
        resumed = optimize.optimize(argv("s"))
    assert "[retry of trial 0, continued from trial 1 after its epoch 2]" in capsys.readouterr().out
    dead_trial, dead_retry, retry = resumed.trials
    assert dead_trial.state == dead_retry.state == TrialState.FAIL and retry.state == TrialState.COMPLETE
    assert retry.params == reference.params
    assert dead_retry.user_attrs["continued_from"] == {"trial": 0, "epoch": 1}
    assert retry.user_attrs["continued_from"] == {"trial": 1, "epoch": 2}
    assert first.epochs == [2] and second.epochs == [3]       # no epoch trained twice
    assert retry.intermediate_values == reference.intermediate_values  # the pruner saw the same curve
    assert retry.value == reference.value and retry.user_attrs["best_val_acc"] == reference.user_attrs["best_val_acc"]
    ours, theirs = tmp_path / "s" / "trial-0002", tmp_path / "whole" / "trial-0000"
    a = torch.load(ours / "checkpoints" / "last.ckpt", weights_only=False)
    b = torch.load(theirs / "checkpoints" / "last.ckpt", weights_only=False)
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in b["state_dict"])
    epochs = lambda run: [r.split(",")[0] for r in (run / "metrics.csv").read_text().splitlines()[1:]]  # noqa: E731
    assert epochs(ours) == epochs(theirs)                       # the dead run's rows are kept in front


def test_a_retry_of_a_run_that_left_no_checkpoint_trains_from_its_first_epoch(tmp_path, data_root, monkeypatch):
    space = tmp_path / "lr.yaml"
    space.write_text("optim.lr: {low: 1.0e-3, high: 3.0e-2, log: true}\n")
    argv = [*tiny(data_root, epochs=2), f"sweep.space={space}", "sweep.study_name=s", f"sweep.out_dir={tmp_path / 's'}",
            "sweep.sampler=random", "sweep.pruner=none", "sweep.n_trials=1", "logger=csv"]
    kill_trial(monkeypatch, argv, tmp_path, epoch=0)
    for f in (tmp_path / "s" / "trial-0000" / "checkpoints").glob("*.ckpt"):
        f.unlink()  # as if killed before its first checkpoint
    trained = TrainedEpochs()
    with monkeypatch.context() as m:
        with_callback(m, trained)
        resumed = optimize.optimize(argv)
    assert resumed.trials[1].state == TrialState.COMPLETE and resumed.trials[1].user_attrs.get("continued_from") is None
    assert trained.epochs == [0, 1]


def test_a_running_trial_stores_its_cpu_and_wall_time_after_every_epoch_so_a_worker_killed_outright_leaves_them(
    tmp_path, data_root, monkeypatch
):
    space = tmp_path / "lr.yaml"
    space.write_text("optim.lr: {low: 1.0e-3, high: 3.0e-2, log: true}\n")
    argv = [*tiny(data_root, epochs=3), f"sweep.space={space}", "sweep.study_name=s", f"sweep.out_dir={tmp_path / 's'}",
            "sweep.sampler=random", "sweep.pruner=none", "sweep.n_trials=1", "logger=csv"]
    stored = []

    class ReadStorage(Callback):  # what another process reading the journal sees while the trial runs
        def on_train_epoch_start(self, trainer, module):
            journal = optuna.storages.journal.JournalFileBackend(str(tmp_path / "s" / "journal.log"))
            trial = optuna.load_study(study_name="s", storage=optuna.storages.JournalStorage(journal)).trials[0]
            stored.append((trial.user_attrs.get("cpu_s"), trial.user_attrs.get("wall_s")))

    with monkeypatch.context() as m:
        with_callback(m, ReadStorage())
        study = optimize.optimize(argv)
    assert stored[0] == (None, None) and len(stored) == 3
    end = study.trials[0].user_attrs
    for key, (first, second) in zip(("cpu_s", "wall_s"), zip(stored[1], stored[2])):
        assert 0 < first < second <= end[key]


def test_a_study_summary_counts_a_dead_trials_own_run_time_not_the_hours_until_a_later_worker_found_it_dead():
    from datetime import datetime, timedelta

    from spikebench.sweeps.benchmark.tuning import summarise

    study = optuna.create_study(direction="maximize")
    start = datetime(2026, 12, 6, 1, 0)

    def add(state, minutes, **attrs):  # a trial that Optuna saw end `minutes` after it started
        study.add_trial(optuna.trial.FrozenTrial(
            number=0, trial_id=0, state=state, value=0.5 if state == TrialState.COMPLETE else None,
            datetime_start=start, datetime_complete=start + timedelta(minutes=minutes), params={}, distributions={},
            user_attrs=attrs, system_attrs={}, intermediate_values={}))

    add(TrialState.COMPLETE, 10, cpu_s=590.0)            # recorded before wall_s existed: Optuna's span, 600 s
    add(TrialState.FAIL, 300, cpu_s=60.0, wall_s=120.0)  # killed after 2 min, found dead 5 h later: its own record
    add(TrialState.FAIL, 300)                            # killed outright before the records existed: unknown
    add(TrialState.FAIL, 3, cpu_s=170.0)                 # failed in its own worker before wall_s existed: 180 s
    row = summarise(study)["row"]
    assert row["wall_h"] == pytest.approx((600 + 120 + 180) / 3600)
    assert row["cpu_h"] == pytest.approx((590 + 60 + 170) / 3600)


def test_a_run_folder_copied_with_its_checkpoint_paths_moved_gives_lightning_back_its_best_score(tmp_path, data_root):
    """Lightning's ModelCheckpoint restores its best score from a checkpoint only when the checkpoint names the folder
    it writes to: unmoved, the copy would forget the best epoch before it (the reason for move_checkpoint_paths)."""
    src, dst = tmp_path / "a", tmp_path / "b"
    train.run(compose_config(overrides_for(tmp_path, *tiny(data_root, epochs=2), "test=false", "logger=csv",
                                           f"output_dir={src}")))
    shutil.copytree(src, dst)
    unmoved = torch.load(dst / "checkpoints" / "last.ckpt", weights_only=False)["callbacks"]
    retry.move_checkpoint_paths(dst / "checkpoints" / "last.ckpt", src, dst)
    moved = torch.load(dst / "checkpoints" / "last.ckpt", weights_only=False)["callbacks"]
    key = next(k for k in moved if "val/acc" in k)

    def restored(state):
        ckpt = ModelCheckpoint(dirpath=dst / "checkpoints", monitor="val/acc", mode="max", filename="best")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ckpt.load_state_dict(state)
        return ckpt

    ours = restored(moved[key])
    assert ours.best_model_score is not None and float(ours.best_model_score) == float(unmoved[key]["best_model_score"])
    assert ours.best_model_path == str(dst / "checkpoints" / "best.ckpt")
    assert restored(unmoved[key]).best_model_score is None


def test_sigterm_stops_a_study_worker_with_status_143_and_the_rerun_continues_the_interrupted_trial(tmp_path, data_root):
    """A preempted job (SIGTERM) or Ctrl-C stops the worker, not just its trial: the trial is queued again and the
    next run of the same command continues it after its last completed epoch, then the study goes on."""
    import signal
    import time

    space = tmp_path / "lr.yaml"
    space.write_text("optim.lr: {low: 1.0e-3, high: 3.0e-2, log: true}\n")
    out = tmp_path / "s"
    argv = [sys.executable, "-m", "spikebench.sweeps.optimize", *tiny(data_root, epochs=8), f"sweep.space={space}",
            "sweep.study_name=s", f"sweep.out_dir={out}", "sweep.sampler=random", "sweep.pruner=none",
            "sweep.n_trials=2", "sweep.plots=false", "logger=csv", "trainer.enable_progress_bar=false"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not (out / "trial-0000" / "checkpoints" / "last.ckpt").is_file():
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert "stopped: SIGTERM in trial 0, which is queued again" in stderr and "Traceback" not in stderr
    journal = optuna.storages.journal.JournalFileBackend(str(out / "journal.log"))
    states = [t.state for t in optuna.load_study(study_name="s", storage=optuna.storages.JournalStorage(journal)).trials]
    assert states == [TrialState.FAIL, TrialState.WAITING]     # the worker started no other trial
    rerun = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "[retry of trial 0, continued after its epoch" in rerun.stdout
    study = optuna.load_study(study_name="s", storage=optuna.storages.JournalStorage(journal))
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert study.trials[1].params == study.trials[0].params and not (out / "trial-0000" / "error.log").exists()
    assert sorted(study.trials[1].intermediate_values) == list(range(8))
