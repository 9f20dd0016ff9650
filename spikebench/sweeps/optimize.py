"""Bayesian hyperparameter optimisation of any algorithm with Optuna, one Weights & Biases run per trial.

    python -m spikebench.sweeps.optimize algorithm=eventprop data=shd sweep.n_trials=50
    python -m spikebench.sweeps.optimize algorithm=bptt data=fsdd trainer.max_epochs=10 sweep.sampler=random
    PGPASSWORD=… python -m spikebench.sweeps.optimize algorithm=bptt sweep.storage=postgresql://user@db-host:5432/optuna  # each machine

Arguments `sweep.<key>=value` set the study (configs/sweep.yaml); every other argument is a train.py override
applied to every trial, and a key fixed that way is not searched. The search space is
sweeps/spaces/<algorithm>.yaml (or `sweep.space=<file>`). Each trial is `train.run` on
`compose_config(overrides + trial parameters)` with a pruning callback that reports val/acc after every
epoch; its value is the best val/acc of the run (`sweep.objective=last`: the last epoch's). Rerunning the same command resumes the study (same name,
same storage): finished trials are kept, and the study ends when it holds `sweep.n_trials` finished trials; a trial
left unfinished by a dead worker is retried from its run's last checkpoint (retry.py).

Storage: a journal file runs/sweeps/<study>/journal.log by default (any number of workers on one machine:
start the same command several times), or a database URL for workers on many machines (heartbeats: a trial
whose worker died is marked FAIL after `sweep.grace_period` seconds and queued again with its parameters; a
database that goes away for up to `sweep.reconnect_timeout` seconds pauses the workers, see storage.py).
Watch it live with `optuna-dashboard runs/sweeps/<study>/journal.log` (or the database URL).

Output in runs/sweeps/<study>/: trial-NNNN/ (each trial's run folder, W&B offline runs in trial-NNNN/wandb),
best.yaml (an experiment file), best_command.txt (`python train.py …`), history.png, importance.png.
"""

from __future__ import annotations

from spikebench.errors import UserError
import os
import signal
import socket
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import optuna
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, open_dict
from optuna.trial import TrialState

from spikebench.configs import CONFIG_DIR, ConfigError, compose_config, load_structured
from spikebench.configs.schema import SweepConfig
from spikebench.datamodules import build_datamodule
from spikebench.train import Interrupted, quiet_lightning, run

from . import retry, search_space, study_report
from .storage import StorageLost, corrupt_journal, make_storage, split_password

SWEEP_DEFAULTS = CONFIG_DIR / "sweep.yaml"
TRIAL_DEFAULTS = ["trainer.enable_progress_bar=false", "logger=wandb"]  # before the user's overrides, which win
TRIAL_FIXED = ["test=false", "plots=false"]  # after them: a trial selects on validation and never opens the test file
WORKER = f"{socket.gethostname()}:{os.getpid()}"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# A trial that fails because of its own parameters (NaN loss, out of memory) or a bug is recorded as FAIL, with its
# traceback in the trial's log, and the study goes on; the user's errors (spikebench.errors.UserError: ConfigError,
# DataError, none of them a ValueError) stop it, as every trial would fail alike.
RUN_ATTRS = ("continued_from", "cpu_s", "wall_s", "epochs", "best_val_acc")  # a trial's user attributes of its run
TRIAL_ERRORS = (Exception,)  # Optuna records each as a failed trial; TrialObjective keeps a UserError to stop the study


# ----------------------------------------------------------------------------------------------
# Command line and the sweep config
# ----------------------------------------------------------------------------------------------


def split_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """(sweep.* items, train.py overrides)."""
    sweep = [a for a in argv if a.lstrip("-").startswith("sweep.")]
    return sweep, [a for a in argv if a not in sweep]


def load_sweep_config(items: list[str]) -> DictConfig:
    """configs/sweep.yaml on its schema (configs.schema.SweepConfig) with `sweep.key=value` items applied;
    unknown keys, wrong types and bad choices raise ConfigError (a ValueError)."""
    return load_structured(SweepConfig, SWEEP_DEFAULTS, items, "sweep.")


def given_keys(overrides: list[str]) -> set[str]:
    return {o.lstrip("-").lstrip("+").split("=", 1)[0] for o in overrides if "=" in o}


# ----------------------------------------------------------------------------------------------
# Study: storage, sampler, pruner
# ----------------------------------------------------------------------------------------------


def make_sampler(scfg: DictConfig, space: dict[str, search_space.Param], seed: int) -> optuna.samplers.BaseSampler:
    """Multivariate TPE, random search or a grid, seeded."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if scfg.sampler == "tpe":
            return optuna.samplers.TPESampler(
                n_startup_trials=scfg.n_startup_trials,
                multivariate=True,
                constant_liar=scfg.constant_liar,
                seed=seed,
            )
        if scfg.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        grid = {k: p.grid_values(scfg.grid_points) for k, p in space.items()}
        return optuna.samplers.GridSampler(grid, seed=seed)


def grid_size(scfg: DictConfig, space: dict[str, search_space.Param]) -> int:
    n = 1
    for p in space.values():
        n *= len(p.grid_values(scfg.grid_points))
    return n


def make_pruner(scfg: DictConfig, max_epochs: int) -> optuna.pruners.BasePruner:
    if scfg.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=scfg.prune_startup_trials, n_warmup_steps=scfg.prune_warmup_epochs)
    if scfg.pruner == "hyperband":
        # Successive halving in brackets (Li et al. 2018): the first rung at prune_warmup_epochs, the last at the trials'
        # full max_epochs, so that the longest trials see the whole budget (and the whole learning-rate schedule)
        return optuna.pruners.HyperbandPruner(min_resource=max(1, scfg.prune_warmup_epochs), max_resource=max(1, max_epochs),
                                              reduction_factor=scfg.reduction_factor)
    return optuna.pruners.NopPruner()


def fail_dead_local_trials(study: optuna.Study, max_retry: int) -> list[int]:
    """Trials left RUNNING by a worker process on this machine that no longer exists (killed, machine
    crash) become FAIL and are queued again. Storage without heartbeats (the journal file) needs this to
    resume; database storage does it through heartbeats for workers on any machine."""
    host = socket.gethostname()
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = str(t.user_attrs.get("worker", ""))
        owner_host, _, pid = owner.rpartition(":")
        if owner_host != host or not pid.isdigit() or _alive(int(pid)):
            continue
        try:
            study.tell(t.number, state=TrialState.FAIL)
        except (ValueError, RuntimeError):
            continue  # another worker got there first
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)(study, study.trials[t.number])
        failed.append(t.number)
    return failed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ----------------------------------------------------------------------------------------------
# One trial
# ----------------------------------------------------------------------------------------------


class TrialObjective:
    """Runs train.py's pipeline for one trial and returns its best val/acc."""

    def __init__(self, study_name: str, out_dir: Path, overrides: list[str], space: dict[str, search_space.Param],
                 objective: str = "best") -> None:
        self.study_name, self.out_dir, self.overrides, self.space = study_name, out_dir, overrides, space
        self.objective = objective  # best: the best epoch's val/acc; last: the last epoch's
        self.user_error: UserError | None = None  # a user's mistake met in a trial: every trial would fail alike

    def trial_config(self, trial: optuna.Trial, params: dict[str, Any]) -> DictConfig:
        trial_dir = self.out_dir / f"trial-{trial.number:04d}"
        cfg = compose_config([*self.overrides, f"output_dir={trial_dir}", *search_space.overrides(params)])
        with open_dict(cfg):  # recorded in config.yaml and in the W&B run's config
            cfg.trial = {"study": self.study_name, "number": trial.number, "params": dict(params)}
        return cfg

    def __call__(self, trial: optuna.Trial) -> float:
        from optuna_integration import PyTorchLightningPruningCallback

        wall0 = time.monotonic()
        params = {k: p.suggest(trial) for k, p in self.space.items()}
        cfg = self.trial_config(trial, params)
        trial.set_user_attr("worker", WORKER)
        for key in RUN_ATTRS:  # a retry inherits its predecessor's user attributes; these were of that run
            if trial.user_attrs.get(key) is not None:
                trial.set_user_attr(key, None)
        # a retry of a trial whose worker died resumes that trial's run from its last checkpoint (retry.py)
        continued = retry.continue_dead_run(trial, Path(cfg.output_dir), int(cfg.trainer.max_epochs))
        trial.set_user_attr("output_dir", str(cfg.output_dir))
        resume = []
        if continued is not None:
            cfg.ckpt_path, resume = str(continued[0]), [f"ckpt_path={continued[0]}"]
        pruning = PyTorchLightningPruningCallback(trial, monitor="val/acc")
        clock = retry.RunTime(trial, wall0)
        try:
            callbacks = [pruning, clock, TrialWandbRun(f"{self.study_name}-trial-{trial.number}")]
            results = run(cfg, callbacks=callbacks,
                          command=["train.py", *self.overrides, *search_space.overrides(params),
                                   f"output_dir={cfg.output_dir}", *resume])
        except UserError as err:  # the trial is recorded as failed, then optimize() stops the study with this line
            self.user_error = err
            raise
        except optuna.TrialPruned:
            raise
        except Interrupted as stop:  # not the trial's failure: it is queued again, to continue after its last epoch
            retry.requeue_interrupted(trial)
            raise retry.StopWorker(stop, trial.number) from None
        except Exception:  # a bug or a failure of this trial: the study goes on, the traceback stays with the trial
            Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
            (Path(cfg.output_dir) / "error.log").write_text(traceback.format_exc())
            raise
        finally:  # pruned and failed trials spent time too
            clock.store()
        trial.set_user_attr("epochs", results["epochs"])
        trial.set_user_attr("best_val_acc", float(results["best_val_acc"]))
        return float(results[f"{self.objective}_val_acc"])


class TrialWandbRun(Callback):
    """Names the trial's W&B run; when the trial stops early it closes the run, tagged `pruned` (exit code 0)
    or failed (exit code 1), since train.run finishes W&B runs only after a complete fit."""

    def __init__(self, name: str) -> None:
        self.name = name

    def _runs(self, trainer):
        return [lg.experiment for lg in trainer.loggers if type(lg).__name__ == "WandbLogger"]

    def setup(self, trainer, pl_module, stage: str) -> None:
        for wandb_run in self._runs(trainer):
            wandb_run.name = self.name

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        for wandb_run in self._runs(trainer):
            if isinstance(exception, optuna.TrialPruned):
                wandb_run.tags = tuple(wandb_run.tags or ()) + ("pruned",)
                wandb_run.summary.update({"trial/state": "PRUNED", "trial/pruned_at_epoch": trainer.current_epoch})
                wandb_run.finish(exit_code=0)
            else:
                wandb_run.summary.update({"trial/state": "FAIL"})
                wandb_run.finish(exit_code=1)


class Progress:
    """Prints one line per finished trial and counts this worker's failures."""

    def __init__(self) -> None:
        self.failures = 0
        self.t0 = time.monotonic()

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        best = study_report.best_trial(study)
        secs = (trial.datetime_complete - trial.datetime_start).total_seconds() if trial.datetime_complete else 0.0
        if trial.state == TrialState.COMPLETE:
            what = f"val/acc {trial.value:.4f}"
        elif trial.state == TrialState.PRUNED:
            what = f"pruned after epoch {max(trial.intermediate_values) if trial.intermediate_values else '-'}"
        else:
            self.failures += 1
            what = "FAILED"
        params = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
        best_txt = f"best {best.value:.4f} (trial {best.number})" if best else "no best yet"
        if "failed_trial" in trial.system_attrs:
            first, since = trial.system_attrs["failed_trial"], trial.user_attrs.get("continued_from")
            via = "" if not since or since["trial"] == first else f" from trial {since['trial']}"  # a retry's retry
            best_txt += f"  [retry of trial {first}" + (f", continued{via} after its epoch {since['epoch']}]" if since else "]")
        print(f"[trial {trial.number:3d}] {trial.state.name:8s} {what:24s} {secs:6.1f} s  {best_txt}  {params}", flush=True)


# ----------------------------------------------------------------------------------------------
# The study
# ----------------------------------------------------------------------------------------------


def count(study: optuna.Study, states: tuple) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def optimize(argv: list[str]) -> optuna.Study:
    """Create or resume the study, run trials until it holds `sweep.n_trials` finished ones, write the report."""
    sweep_items, user = split_args(argv)
    scfg = load_sweep_config(sweep_items)
    scfg.storage = split_password(scfg.storage)  # the password goes to PGPASSWORD, never into a record
    cfg0 = compose_config([*TRIAL_DEFAULTS, *user, *TRIAL_FIXED])  # checks the overrides before any trial starts
    name = scfg.study_name or f"{cfg0.algorithm.name}-{cfg0.data.name}"
    group = [f"logger.group={name}"] if cfg0.logger.name == "wandb" else []  # the user's logger.group wins
    overrides = [*TRIAL_DEFAULTS, *group, *user, *TRIAL_FIXED]
    out_dir = Path(scfg.out_dir).expanduser() if scfg.out_dir else Path("runs", "sweeps", name).resolve()
    space_file = search_space.space_path(cfg0.algorithm.name, scfg.space)
    full = search_space.load_space(space_file)
    params = [scfg.params] if isinstance(scfg.params, str) else list(scfg.params) if scfg.params is not None else None
    space = search_space.select(full, cfg0, params, fixed=given_keys(user))
    build_datamodule(cfg0).prepare_data()  # a missing data file stops the study here, not in every trial

    _quiet_libraries()
    storage, dashboard = make_storage(scfg, out_dir)
    try:
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True)
    except ValueError as err:  # json.JSONDecodeError: a line of the journal file is broken
        raise corrupt_journal(dashboard, err) from None
    first = enqueued(scfg.enqueue, space) if not study.trials else []  # checked before anything is written
    out_dir.mkdir(parents=True, exist_ok=True)
    for params in first:
        study.enqueue_trial(params, skip_if_exists=True)
    existing = len(study.trials)
    study.sampler = make_sampler(scfg, space, seed=scfg.seed + existing)
    study.pruner = make_pruner(scfg, cfg0.trainer.max_epochs)
    target = min(scfg.n_trials, grid_size(scfg, space)) if scfg.sampler == "grid" else scfg.n_trials
    rescued = [] if isinstance(storage, optuna.storages.RDBStorage) else fail_dead_local_trials(study, scfg.max_retry)

    print(f"study {name}: {existing} trials so far ({study_report.state_counts(study)}), target {target} finished")
    if rescued:
        print(f"  trials {rescued} were left running by a dead worker on this machine: marked FAIL and queued again")
    print(f"  sampler {scfg.sampler} (seed {scfg.seed + existing}), pruner {scfg.pruner}, value: {scfg.objective} val/acc; "
          f"space {space_file}")
    print(f"  searching {', '.join(space)}")
    fixed = sorted(set(full) - set(space))
    if fixed:
        print(f"  fixed (command line or sweep.params): {', '.join(fixed)}")
    print(f"  output {out_dir}\n  dashboard: optuna-dashboard {dashboard}", flush=True)

    progress = Progress()
    objective = TrialObjective(name, out_dir, overrides, space, scfg.objective)
    deadline = time.monotonic() + float(scfg.timeout) if scfg.timeout else None
    while True:
        if isinstance(storage, optuna.storages.RDBStorage):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
        if count(study, FINISHED) >= target and not count(study, (TrialState.WAITING,)):
            break
        if deadline is not None and time.monotonic() > deadline:
            print(f"sweep.timeout={scfg.timeout} s reached; rerun the same command to continue")
            break
        if progress.failures > max(3, target):
            raise RuntimeError(f"{progress.failures} trials of this worker failed; see the errors above")
        try:
            study.optimize(objective, n_trials=1, catch=TRIAL_ERRORS, callbacks=[progress], gc_after_trial=True)
            if objective.user_error is not None:
                raise objective.user_error
        except retry.StopWorker as stop_worker:
            stop, number = stop_worker.args
            study.tell(number, state=TrialState.FAIL)
            print(f"stopped: {signal.Signals(stop.signum).name} in trial {number}, which is queued again: rerun the same command to "
                  "continue the study (the trial goes on after its last completed epoch)", file=sys.stderr)
            raise stop from None
        except Exception as err:
            if getattr(storage, "lost", None):
                raise RuntimeError(storage.lost) from None
            refused = refused_tell(err)
            if refused is None:
                raise
            # While this worker waited for the database, another one found its trial's heartbeat stale, failed
            # it and queued it again: this worker's result is not needed, the study goes on.
            print(f"this worker's trial was failed by another worker while the database was away ({refused}); "
                  "it is queued again", flush=True)

    finish(study, out_dir, scfg, user, cfg0)
    return study


def enqueued(items: list[str], space: dict[str, search_space.Param]) -> list[dict[str, Any]]:
    """`sweep.enqueue` items ("key=value key=value") as the parameters of the study's first trials; a key that is
    not searched, or a value outside its range or choices, is a ConfigError."""
    import yaml

    trials = []
    for item in items:
        params = {}
        for pair in str(item).split():
            key, _, text = pair.partition("=")
            if key not in space:
                raise ConfigError(f"sweep.enqueue: '{key}' is not searched in this study; searched: {', '.join(space)}")
            value, p = yaml.safe_load(text), space[key]
            ok = value in p.choices if p.kind == "categorical" else (
                isinstance(value, (int, float)) and not isinstance(value, bool) and p.low <= value <= p.high)
            if not ok:
                allowed = list(p.choices) if p.kind == "categorical" else f"[{p.low}, {p.high}]"
                raise ConfigError(f"sweep.enqueue: {key}={text} is outside its space {allowed}")
            params[key] = value
        trials.append(params)
    return trials


def refused_tell(err: BaseException) -> ValueError | None:
    """Optuna's refusal to record a result for a trial that is no longer running ("Cannot tell a FAIL trial."),
    if that is what `err` is or hides: Optuna 5.1's optimize loop replaces it, in a `finally`, by an
    AssertionError("Should not reach."), keeping the refusal as the exception's context."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, ValueError) and str(seen).startswith("Cannot tell a"):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def finish(study: optuna.Study, out_dir: Path, scfg: DictConfig, user: list[str], cfg0: DictConfig) -> None:
    """Print the outcome and write best.yaml, best_command.txt and the plots."""
    print(f"study {study.study_name}: {study_report.state_counts(study)}")
    choices = {"algorithm": cfg0.algorithm.name, "data": cfg0.data.name}
    if study_report.write_best(study, out_dir, user, choices) is None:
        print("no trial completed yet: no best parameters")
        return
    best = study_report.best_trial(study)
    print(f"best trial {best.number}: val/acc {best.value:.4f}  (trials are not tested: retrain with best_command.txt and test once)")
    print(f"  {(out_dir / 'best_command.txt').read_text().strip()}")
    print(f"  experiment file: {out_dir / 'best.yaml'}")
    if scfg.plots:
        for problem in study_report.write_plots(study, out_dir):
            print(f"  no {problem}")
        print(f"  plots: {out_dir / 'history.png'}, {out_dir / 'importance.png'}")


def _quiet_libraries() -> None:
    """Per-trial library chatter off: Optuna's trial lines (ours replace them), Lightning's banners."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    quiet_lightning()
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def main(argv: list[str] | None = None) -> int:

    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        print("sweep keys (configs/sweep.yaml):\n" + SWEEP_DEFAULTS.read_text())
        return 0
    try:
        optimize(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (RuntimeError, StorageLost) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except Interrupted as stop:  # its line is printed where it happened
        return 128 + stop.signum
    except KeyboardInterrupt:
        print("interrupted: the running trial is marked FAIL; rerun the same command to resume the study", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
