"""A retried trial continues the run of the trial it retries, instead of training again from its first epoch.

A trial whose worker died (killed, a machine that stopped, a stale heartbeat) is queued again by Optuna's
`RetryHeartbeatStaleTrialCallback` with its parameters and user attributes, among them the dead run's `output_dir`
(optimize.fail_dead_local_trials for the journal file, the storage's heartbeat for a database). Trained from scratch,
the retry repeats every epoch that the dead trial completed: with 60-epoch trials of half an hour or more, a study
that is stopped and resumed loses up to a trial per worker at every stop. train.py's runs resume bitwise from
`checkpoints/last.ckpt` (EpochSeed: each epoch's data order, augmentation and sampling are seeded by the epoch;
tests/test_train.py checks the weights), so the retry copies the dead run's folder into its own, reports the epochs
that the copy holds with the dead trial's values (so the pruner sees the same curve) and resumes there.
A trial stopped by SIGTERM or SIGINT (a preempted job, Ctrl-C) is queued again the same way (`requeue_interrupted`).
A dead trial's own CPU and wall time stay with it (`RunTime` stores them after every epoch), so a study's hours
count the epochs it trained.

Lightning's ModelCheckpoint restores its best score and file paths from a checkpoint only when the checkpoint's
`dirpath` is the folder it writes to; otherwise it warns and keeps the best path alone, and the run's best val/acc
would forget the epochs before the copy. Lightning has no call to move a run, so `move_checkpoint_paths` rewrites
the folder in the copied checkpoints' callback states.
"""

from __future__ import annotations

import os
import pickle
import shutil
import time
from pathlib import Path

import optuna
from lightning.pytorch.callbacks import Callback


def frozen_trial(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial | None:
    """Trial `number` as stored (a running `optuna.Trial` shows neither its system attributes nor its history)."""
    return next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)


def predecessor(trial: optuna.Trial) -> optuna.trial.FrozenTrial | None:
    """The trial that `trial` retries (the last of its retry history), or None for a trial that retries none."""
    history = frozen_trial(trial.study, trial.number).system_attrs.get("retry_history", [])  # Optuna's retry callback
    return frozen_trial(trial.study, history[-1]) if history else None


def move_checkpoint_paths(ckpt_file: Path, old: Path, new: Path) -> None:
    """Rewrite the paths under `old` in a checkpoint's callback states (ModelCheckpoint's dirpath, best/last/kth
    paths, best_k_models' keys) to the same paths under `new`; written atomically."""
    import torch

    old_s, new_s = str(old), str(new)

    def moved(value):
        if isinstance(value, str) and (value == old_s or value.startswith(old_s + os.sep)):
            return new_s + value[len(old_s):]
        if isinstance(value, dict):
            return {moved(k): moved(v) for k, v in value.items()}
        return value

    ckpt = torch.load(ckpt_file, map_location="cpu", weights_only=False)
    ckpt["callbacks"] = {key: moved(state) for key, state in ckpt.get("callbacks", {}).items()}
    tmp = ckpt_file.with_name(ckpt_file.name + ".tmp")
    torch.save(ckpt, tmp)
    os.replace(tmp, ckpt_file)


def continue_dead_run(trial: optuna.Trial, out: Path, max_epochs: int) -> tuple[Path, int] | None:
    """When `trial` retries a trial whose run folder holds checkpoints/last.ckpt of an epoch before the last: copy
    that folder to `out` (which must not exist yet), point the copy's checkpoints at `out`, report the dead trial's
    val/acc of every epoch up to the checkpoint's, and return (the checkpoint to resume from, its epoch).
    None when there is nothing to continue: the trial is then trained from its first epoch as before (also when the
    dead run had finished its last epoch, since a resumed fit would train nothing and measure no last val/acc, and
    when its checkpoint cannot be read or the study lacks one of its epochs' values).
    Raises optuna.TrialPruned when the pruner, shown those epochs, prunes the trial, as it would have pruned a retry
    that trained them again."""
    import torch

    dead = predecessor(trial)
    if dead is None or "output_dir" not in dead.user_attrs:
        return None
    src = Path(dead.user_attrs["output_dir"])
    if not (src / "checkpoints" / "last.ckpt").is_file() or out.exists():
        return None
    tmp = out.with_name(out.name + ".copying")  # a worker killed while copying leaves no half folder named `out`
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("wandb", "*.tmp"))
    try:  # the copy's own checkpoint: a worker that is only stale (database storage) may be writing its files
        epoch = int(torch.load(tmp / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["epoch"])
        for ckpt_file in (tmp / "checkpoints").glob("*.ckpt"):
            move_checkpoint_paths(ckpt_file, src, out)
    except (OSError, RuntimeError, EOFError, KeyError, pickle.UnpicklingError):
        epoch = max_epochs  # unreadable: nothing to continue
    reported = dead.intermediate_values  # every epoch's val/acc up to the checkpoint's (a stale worker's may miss some)
    if epoch >= max_epochs - 1 or any(step not in reported for step in range(epoch + 1)):
        shutil.rmtree(tmp, ignore_errors=True)
        return None
    os.replace(tmp, out)
    for step in range(epoch + 1):
        trial.report(reported[step], step)
    trial.set_user_attr("continued_from", {"trial": dead.number, "epoch": epoch})
    if trial.should_prune():
        raise optuna.TrialPruned(f"pruned at epoch {epoch} (continued from trial {dead.number})")
    return out / "checkpoints" / "last.ckpt", epoch


class StopWorker(BaseException):
    """(train.Interrupted, trial number): carries a trial's interruption past Optuna, which would record any
    Exception as the trial's failure and log its traceback; optimize() marks the trial FAIL and stops the worker."""


def requeue_interrupted(trial: optuna.Trial) -> None:
    """Queue a retry of `trial`, stopped by SIGTERM or SIGINT (`train.Interrupted`: its run folder holds the last
    completed epoch): the retry continues that run when the study is resumed. An interruption is not the trial's
    failure, so it counts against no `sweep.max_retry`."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        requeue = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=None)
        requeue(trial.study, frozen_trial(trial.study, trial.number))


class RunTime(Callback):
    """Stores the trial's CPU seconds (from the start of its run) and wall seconds (from the start of the trial) after
    every epoch and when the run ends, so that a worker killed outright (SIGKILL, a machine that stops: no `finally`
    runs) still leaves what its trial spent. Optuna's own end time of such a trial is when a later worker found it
    dead, which can be hours after it stopped."""

    def __init__(self, trial: optuna.Trial, wall0: float) -> None:
        self.trial, self.wall0, self.cpu0 = trial, wall0, time.process_time()

    def store(self) -> None:
        self.trial.set_user_attr("cpu_s", time.process_time() - self.cpu0)
        self.trial.set_user_attr("wall_s", time.monotonic() - self.wall0)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.store()
