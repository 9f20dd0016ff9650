"""sweeps/: Optuna studies over train.py (TPE, pruning, resume, W&B runs per trial) and the W&B sweep files.

W&B runs are offline (no API key): their config, tags and history are read back from the run's own
transaction log (run-<id>.wandb: W&B's LevelDB-style record log of protobuf `Record`s).
"""

from __future__ import annotations

from spikebench.errors import UserError
import os
import socket
import struct
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from spikebench.configs import ALGORITHMS
from spikebench.sweeps import optimize, search_space
from spikebench.sweeps import storage as storage_mod
import spikebench.configs.parse as configs_parse
from conftest import ROOT
from spikebench.train import compose_config

WANDB_FILES = sorted((ROOT / "spikebench" / "sweeps" / "wandb").glob("*.yaml"))


def tiny(root: Path, epochs: int = 3) -> list[str]:
    """train.py overrides for a run of about a second: 4 generated classes, 0.1 s trials, 16 hidden neurons."""
    return [
        "data=synthetic",
        f"data.root={root}",
        "data.synthetic.n_train=240",
        "data.synthetic.n_test=60",
        "data.n_classes=4",
        "data.duration=0.1",
        "model.hidden=16",
        f"trainer.max_epochs={epochs}",
        "seed=0",
    ]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synthetic")


@pytest.fixture
def offline_wandb(monkeypatch, tmp_path):
    """W&B without an account: no API key, no ~/.netrc, nothing leaves the machine."""
    from torch.utils.cpp_extension import get_default_build_root

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", get_default_build_root())  # keep the compiled LIF kernels
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


# ----------------------------------------------------------------------------------------------
# Reading an offline W&B run
# ----------------------------------------------------------------------------------------------


def wandb_records(run_dir: Path):
    """The protobuf records of an offline W&B run folder's run-<id>.wandb file, in order.

    Layout: a 7-byte header (":W&B", magic, version), then 32 KiB blocks of chunks, each with a 7-byte
    header (crc32, length, type: 1 full, 2 first, 3 middle, 4 last); a record spans chunks 2…4.
    """
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = run_dir.glob("run-*.wandb")
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, buf = 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        _, n, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if n == 0 and kind == 0:
            break
        buf += data[pos + 7 : pos + 7 + n]
        pos += 7 + n
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(buf)
            buf = b""
            yield rec


def wandb_run(run_dir: Path) -> dict:
    """config (top-level keys, decoded JSON), group, name, tags, summary and the set of history keys."""
    import json

    out = {"config": {}, "tags": [], "summary": {}, "history_keys": set(), "group": None, "name": None}
    for rec in wandb_records(run_dir):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            out["group"], out["name"], out["tags"] = rec.run.run_group, rec.run.display_name, list(rec.run.tags)
            out["config"].update({i.key: json.loads(i.value_json) for i in rec.run.config.update})
        elif kind == "config":
            out["config"].update({i.key: json.loads(i.value_json) for i in rec.config.update})
        elif kind == "summary":
            out["summary"].update({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.summary.update})
        elif kind == "history":
            out["history_keys"].update(i.key or "/".join(i.nested_key) for i in rec.history.item)
    return out


def offline_run_dir(run_output: Path) -> Path:
    runs = list((run_output / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, f"expected one offline W&B run in {run_output / 'wandb'}, found {runs}"
    return runs[0]


# ----------------------------------------------------------------------------------------------
# Search spaces and the sweep config
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", [*ALGORITHMS, "shared"])
def test_every_registered_algorithm_has_a_space_of_existing_config_keys(algorithm):
    if algorithm == "shared":  # the fallback space of an algorithm without its own
        algorithm = "bptt"
        space = search_space.load_space(search_space.SPACES / "shared.yaml")
    else:
        space = search_space.load_space(search_space.space_path(algorithm))
        assert search_space.space_path(algorithm).stem == algorithm, "give the algorithm its own sweeps/spaces file"
        assert (ROOT / "spikebench" / "sweeps" / "wandb" / f"{algorithm}.yaml").is_file(), "and its W&B sweep file"
    cfg = compose_config([f"algorithm={algorithm}"])
    chosen = search_space.select(space, cfg, None, fixed=set())
    assert {"optim.lr", "model.hidden"} <= set(chosen)
    for key, p in chosen.items():  # every value a grid would try is one the config accepts
        for value in p.grid_values(3):
            compose_config([f"algorithm={algorithm}", f"{key}={search_space.format_value(value)}"])


def test_space_keys_fixed_on_the_command_line_are_not_searched():
    cfg = compose_config(["optim.lr=0.01"])
    space = search_space.load_space(search_space.space_path("bptt"))
    chosen = search_space.select(space, cfg, ["optim.lr", "model.hidden"], fixed={"optim.lr"})
    assert list(chosen) == ["model.hidden"]
    with pytest.raises(UserError, match="not in the search space"):
        search_space.select(space, cfg, ["optim.lrr"], fixed=set())


def test_space_key_missing_from_the_config_raises_naming_it(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("model.tau_mem: {low: 0.005, high: 0.05, log: true}\nmodel.no_such_key: {low: 0, high: 1}\n")
    with pytest.raises(UserError, match="model.no_such_key"):
        search_space.select(search_space.load_space(path), compose_config([]), None, fixed=set())


def test_space_infers_int_float_categorical_and_rejects_bad_ranges(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("a: {low: 0, high: 40, step: 10}\nb: {low: 1.0e-3, high: 1.0e-1, log: true}\nc: {choices: [x, y]}\n")
    space = search_space.load_space(path)
    assert [p.kind for p in space.values()] == ["int", "float", "categorical"]
    assert space["a"].grid_values(5) == [0, 10, 20, 30, 40]
    assert space["b"].grid_values(3) == pytest.approx([1e-3, 1e-2, 1e-1])
    path.write_text("a: {low: 0.0, high: 1.0, log: true}\n")
    with pytest.raises(UserError, match="log: true needs low > 0"):
        search_space.load_space(path)
    path.write_text("a: {low: 2, high: 1}\n")
    with pytest.raises(UserError, match="must be below"):
        search_space.load_space(path)


@pytest.mark.parametrize("value", [1e-05, 3e-4, 0.02, 2.5e-10, 64, True, "arctan"])
def test_format_value_reads_back_as_the_same_value_through_train_config(value):
    key = {float: "optim.lr", int: "model.hidden", bool: "model.recurrent", str: "algorithm.surrogate"}[type(value)]
    cfg = compose_config([f"{key}={search_space.format_value(value)}"])
    assert cfg[key.split(".")[0]][key.split(".")[1]] == value


def test_sweep_config_rejects_unknown_keys_and_choices():
    assert optimize.load_sweep_config(["sweep.sampler=random", "sweep.n_trials=3"]).n_trials == 3
    with pytest.raises(UserError, match="unknown config key 'sweep.n_trial'; did you mean 'sweep.n_trials'"):
        optimize.load_sweep_config(["sweep.n_trial=3"])
    with pytest.raises(UserError, match="sweep.sampler=cmaes: choose one of: tpe, random, grid"):
        optimize.load_sweep_config(["sweep.sampler=cmaes"])
    with pytest.raises(UserError, match="sweep.pruner"):
        optimize.load_sweep_config(["sweep.pruner=always"])


def test_samplers_are_multivariate_tpe_random_and_grid_with_the_seed():
    space = search_space.load_space(search_space.space_path("bptt"))
    tpe = optimize.make_sampler(optimize.load_sweep_config([]), space, seed=3)
    assert isinstance(tpe, optuna.samplers.TPESampler) and tpe._multivariate
    rnd = optimize.make_sampler(optimize.load_sweep_config(["sweep.sampler=random"]), space, seed=3)
    assert isinstance(rnd, optuna.samplers.RandomSampler)
    small = {k: space[k] for k in ("optim.lr", "model.hidden")}
    grid_cfg = optimize.load_sweep_config(["sweep.sampler=grid", "sweep.grid_points=2"])
    assert isinstance(optimize.make_sampler(grid_cfg, small, seed=3), optuna.samplers.GridSampler)
    assert optimize.grid_size(grid_cfg, small) == 2 * 4


def test_journal_study_fails_and_requeues_a_trial_whose_local_worker_process_is_dead(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    storage, _ = storage_mod.make_storage(optimize.load_sweep_config([]), tmp_path)
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    alive = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    alive.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    orphan = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    orphan.set_user_attr("worker", f"{socket.gethostname()}:{dead.pid}")
    assert optimize.fail_dead_local_trials(study, max_retry=2) == [orphan.number]
    states = [t.state for t in study.trials]
    assert states == [TrialState.RUNNING, TrialState.FAIL, TrialState.WAITING]
    assert study.trials[2].params == study.trials[1].params


def test_a_worker_whose_trial_another_worker_failed_as_stale_prints_one_line_and_the_study_runs_its_retry(
    tmp_path, data_root, capsys, monkeypatch
):
    """After a database outage longer than the grace period, another worker's fail_stale_trials can fail this
    worker's running trial and queue a copy (RetryHeartbeatStaleTrialCallback); Optuna then refuses this
    worker's result ("Cannot tell a FAIL trial."). The worker goes on, and the queued copy is trained."""
    original = optimize.TrialObjective.__call__
    failed_by_other = []

    def objective_whose_first_trial_goes_stale(self, trial):
        value = original(self, trial)
        if not failed_by_other:  # what the other worker does meanwhile, through the same database
            study = trial.study
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            optuna.storages.RetryHeartbeatStaleTrialCallback(2)(study, study._storage.get_trial(trial._trial_id))
            failed_by_other.append(trial.number)
        return value

    monkeypatch.setattr(optimize.TrialObjective, "__call__", objective_whose_first_trial_goes_stale)
    argv = [
        *tiny(data_root, epochs=1),
        "sweep.study_name=stale",
        f"sweep.out_dir={tmp_path / 'study'}",
        f"sweep.storage=sqlite:///{tmp_path / 'study.db'}",
        "sweep.sampler=random",
        "sweep.pruner=none",
        "sweep.n_trials=2",
        "logger=csv",
    ]
    study = optimize.optimize(argv)
    captured = capsys.readouterr()
    out = captured.out
    assert "this worker's trial was failed by another worker" in out and "Cannot tell a FAIL trial" in out
    assert "Traceback" not in out + captured.err and "Should not reach" not in out + captured.err
    states = [t.state for t in study.trials]
    assert failed_by_other == [0] and states[0] == TrialState.FAIL
    assert states.count(TrialState.COMPLETE) == 2 and TrialState.WAITING not in states
    retry = [t for t in study.trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE and retry[0].params == study.trials[0].params


# ----------------------------------------------------------------------------------------------
# A small study end to end
# ----------------------------------------------------------------------------------------------


def test_tpe_study_with_pruning_completes_and_prunes_trials_logs_one_wandb_run_each_and_resumes(
    tmp_path, data_root, offline_wandb, capsys, monkeypatch
):
    space = tmp_path / "lr.yaml"  # the learning rate alone decides between learning and silence here
    space.write_text("optim.lr: {low: 1.0e-4, high: 3.0e-2, log: true}\n")
    out = tmp_path / "study"
    argv = [
        *tiny(data_root),
        "sweep.study_name=t",
        f"sweep.out_dir={out}",
        f"sweep.space={space}",
        "sweep.sampler=tpe",
        "sweep.n_startup_trials=3",
        "sweep.pruner=median",
        "sweep.prune_startup_trials=1",
        "sweep.prune_warmup_epochs=0",
        "sweep.n_trials=5",
    ]
    study = optimize.optimize(argv)
    trials = study.trials
    states = [t.state for t in trials]
    assert len(trials) == 5
    assert states.count(TrialState.COMPLETE) >= 1 and states.count(TrialState.PRUNED) >= 1, [(t.params, t.intermediate_values, t.state) for t in trials]
    assert "[trial   4]" in capsys.readouterr().out

    for t in trials:  # one offline W&B run per trial: group = study, config = params + resolved config
        run = wandb_run(offline_run_dir(Path(t.user_attrs["output_dir"])))
        assert run["group"] == "t" and run["name"] == f"t-trial-{t.number}"
        assert run["config"]["trial"]["params"] == t.params
        assert run["config"]["optim"]["lr"] == t.params["optim.lr"]
        assert run["config"]["model"]["hidden"] == 16
        assert "val/acc" in run["history_keys"]
        assert ("pruned" in run["tags"]) == (t.state == TrialState.PRUNED)
        if t.state == TrialState.PRUNED:
            assert run["summary"]["trial/state"] == "PRUNED"
            assert max(t.intermediate_values) < 2  # stopped before the last epoch (index 2)

    best = max((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value)
    command = (out / "best_command.txt").read_text().split()
    assert command[:2] == ["python", "train.py"]
    assert compose_config(command[2:]).optim.lr == best.params["optim.lr"]
    experiment = yaml.safe_load((out / "best.yaml").read_text())
    assert experiment["defaults"] == {"algorithm": "bptt", "data": "synthetic"}
    configs = tmp_path / "configs"  # best.yaml as configs/experiment/t-best.yaml of a copy of configs/
    configs.mkdir()
    for entry in (ROOT / "spikebench" / "configs").iterdir():
        (configs / entry.name).symlink_to(entry)
    (configs / "experiment").unlink()
    (configs / "experiment").mkdir()
    (configs / "experiment" / "t-best.yaml").write_text((out / "best.yaml").read_text())
    with monkeypatch.context() as patch:
        patch.setattr(configs_parse, "CONFIG_DIR", configs)
        reproduced = compose_config(["experiment=t-best"])
    assert reproduced.optim.lr == best.params["optim.lr"]
    assert (reproduced.algorithm.name, reproduced.data.name, reproduced.data.n_classes) == ("bptt", "synthetic", 4)
    assert (out / "history.png").stat().st_size > 0 and (out / "importance.png").stat().st_size > 0

    resumed = optimize.optimize([a.replace("sweep.n_trials=5", "sweep.n_trials=6") for a in argv])
    assert len(resumed.trials) == 6
    assert [(t.number, t.state, t.params, t.value) for t in resumed.trials[:5]] == [
        (t.number, t.state, t.params, t.value) for t in trials
    ]


# ----------------------------------------------------------------------------------------------
# W&B sweep files
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", WANDB_FILES, ids=[p.stem for p in WANDB_FILES])
def test_wandb_sweep_file_is_bayes_on_val_acc_over_the_optuna_space(path):
    sweep = yaml.safe_load(path.read_text())
    assert sweep["method"] == "bayes" and sweep["program"] == "train.py"
    assert sweep["metric"] == {"name": "val/acc", "goal": "maximize"}
    assert "${args_no_hyphens}" in sweep["command"]
    params = sweep["parameters"]
    assert params["algorithm"] == {"value": path.stem} and params["logger"] == {"value": "wandb"}
    space = search_space.load_space(search_space.space_path(path.stem))
    for key, p in space.items():
        w = params[key]
        if p.kind == "categorical":
            assert w["values"] == list(p.choices), key
        elif p.step:
            assert w["values"] == p.grid_values(int((p.high - p.low) / p.step) + 1), key
        else:
            assert (w["min"], w["max"]) == (p.low, p.high), key
            assert w["distribution"] == ("log_uniform_values" if p.log else "uniform"), key


def agent_command(sweep: dict, values: dict) -> list[str]:
    """The argument list `wandb agent` runs for one suggestion, built by W&B's own code (wandb_agent.py)."""
    from wandb.sdk.launch.sweeps import utils as sweep_utils

    command = sweep_utils.create_sweep_command(list(sweep["command"]))
    sweep_vars = sweep_utils.create_sweep_command_args({"args": {k: {"value": v} for k, v in values.items()}})
    sweep_vars.update(interpreter=[sys.executable], program=[sweep["program"]], env=["/usr/bin/env"])
    argv = []
    for chunk in map(str, command):
        argv += sweep_vars.get(chunk[2:-1]) or [] if chunk.startswith("${") and chunk.endswith("}") else [chunk]
    return argv


def test_train_py_runs_with_the_argument_list_a_wandb_agent_passes_and_logs_the_sweep_metric(
    tmp_path, data_root, offline_wandb
):
    sweep = yaml.safe_load((ROOT / "spikebench" / "sweeps" / "wandb" / "bptt.yaml").read_text())
    values = {}  # one suggestion: the first listed value, the lower end of each range
    for key, spec in sweep["parameters"].items():
        values[key] = spec["value"] if "value" in spec else spec["values"][0] if "values" in spec else spec["min"]
    values["optim.lr"] = 1e-2
    values["algorithm.surrogate"] = "arctan"
    for item in [*tiny(data_root, epochs=1), f"output_dir={tmp_path / 'run'}"]:  # the user's `value:` edits
        key, value = item.split("=", 1)
        values[key] = yaml.safe_load(value) if key != "data.root" else value
    argv = agent_command(sweep, values)
    assert argv[:3] == ["/usr/bin/env", sys.executable, "train.py"]
    assert "algorithm=bptt" in argv and "optim.lr=0.01" in argv and "trainer.enable_progress_bar=False" in argv
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    run = wandb_run(offline_run_dir(tmp_path / "run"))
    assert "val/acc" in run["history_keys"]  # the sweep's metric, logged every epoch
    assert run["config"]["algorithm"]["surrogate"] == "arctan"
    assert run["config"]["loss"]["reg_strength"] == pytest.approx(sweep["parameters"]["loss.reg_strength"]["min"])


# ----------------------------------------------------------------------------------------------
# Faults: one line, exit 2, before any trial
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case,message", [
    ("journal", "the study journal is corrupt"),
    ("database", "cannot connect"),
    ("space_key", "search space key 'optim.lrr' is not a config key"),
    ("data", "not found in /nonexistent"),
])
def test_a_study_that_cannot_run_stops_with_one_line_and_exit_2_before_any_trial(tmp_path, capsys, case, message):
    out = tmp_path / "study"
    argv = [f"sweep.out_dir={out}", "sweep.n_trials=1", *tiny(tmp_path)]
    if case == "journal":
        out.mkdir()
        (out / "journal.log").write_text('{"op_code": 0, "wor\n')  # a worker killed mid-write
    elif case == "database":
        argv.append("sweep.storage=postgresql://nobody@127.0.0.1:1/nothing")
    elif case == "space_key":
        (tmp_path / "space.yaml").write_text("optim.lrr: {low: 1e-4, high: 1e-2, log: true}\n")
        argv.append(f"sweep.space={tmp_path / 'space.yaml'}")
    else:
        argv = [f"sweep.out_dir={out}", "data=fsdd", "data.root=/nonexistent"]
    assert optimize.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1], err
    assert case == "journal" or not out.exists()


def test_space_bounds_written_as_1e_minus_4_are_numbers(tmp_path):
    (tmp_path / "space.yaml").write_text("optim.lr: {low: 1e-4, high: 1e-2, log: true}\n")  # YAML reads strings
    assert search_space.load_space(tmp_path / "space.yaml")["optim.lr"].low == 1e-4


def test_a_postgres_urls_password_moves_to_PGPASSWORD_and_out_of_the_url_other_urls_stay_as_they_are(monkeypatch):
    monkeypatch.delenv("PGPASSWORD", raising=False)
    assert storage_mod.split_password("postgresql://ann:s3%40cr:et@db-host:5432/optuna") == "postgresql://ann@db-host:5432/optuna"
    assert os.environ["PGPASSWORD"] == "s3@cr:et"  # percent-decoded, as libpq reads it
    monkeypatch.delenv("PGPASSWORD")
    for url in ("postgresql://ann@db-host/optuna", "mysql://ann:pw@db-host/optuna", "sqlite:///x.db", None):
        assert storage_mod.split_password(url) == url
    assert "PGPASSWORD" not in os.environ

