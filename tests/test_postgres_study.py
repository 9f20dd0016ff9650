"""Workers on a PostgreSQL study: a worker killed mid-trial costs nothing that was completed.

Needs a PostgreSQL server: `.ci/run` installs Debian's package when missing, starts a throwaway cluster on
127.0.0.1 and sets SPIKEBENCH_TEST_POSTGRES_URL (and SPIKEBENCH_CI=1, which turns a missing URL into a
failure). Locally, without the variable, the test is skipped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import optuna
import pytest
from optuna.trial import TrialState

from spikebench.sweeps import optimize
from spikebench.sweeps import storage as storage_mod
from spikebench.train import ROOT, compose_config


def wait_for(condition, timeout: float, what: str, procs=()):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        value = condition()
        if value:
            return value
        for p in procs:
            assert p.poll() is None, f"worker {p.pid} exited with {p.returncode} while waiting for {what}"
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_two_workers_one_killed_mid_trial_study_completes_killed_trial_fails_and_is_retried(postgres_url, tmp_path):
    name = f"pg-{uuid.uuid4().hex[:8]}"
    train_args = [
        "data=synthetic",
        f"data.root={tmp_path / 'data'}",
        "data.synthetic.n_train=240",
        "data.synthetic.n_test=60",
        "data.n_classes=4",
        "data.duration=0.1",
        "model.hidden=16",
        "trainer.max_epochs=2",
        "logger=csv",
    ]
    n_trials = 4
    argv = [
        sys.executable, "-m", "spikebench.sweeps.optimize", *train_args,
        f"sweep.storage={postgres_url}",
        f"sweep.study_name={name}",
        f"sweep.out_dir={tmp_path / 'study'}",
        f"sweep.n_trials={n_trials}",
        "sweep.sampler=random",
        "sweep.pruner=none",
        "sweep.heartbeat_interval=1",
        "sweep.grace_period=2",
        "sweep.plots=false",
    ]  # fmt: skip
    from spikebench.datamodules.synthetic import ensure_synthetic

    ensure_synthetic(compose_config(train_args).data)  # written once, before two processes read it
    storage, _ = storage_mod.make_storage(optimize.load_sweep_config([f"sweep.storage={postgres_url}"]), tmp_path)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    logs = [open(tmp_path / f"worker{i}.log", "w") for i in range(2)]
    victim, survivor = (subprocess.Popen(argv, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT) for f in logs)
    try:

        def victims_running_trial():
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                if str(t.user_attrs.get("worker", "")).endswith(f":{victim.pid}"):
                    return t
            return None

        killed = wait_for(victims_running_trial, 120, "a running trial of the first worker", [victim, survivor])
        completed_before = {t.number: (t.params, t.value) for t in study.get_trials(states=(TrialState.COMPLETE,))}
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        assert survivor.wait(180) == 0, (tmp_path / "worker1.log").read_text()[-3000:]
    finally:
        for p in (victim, survivor):
            if p.poll() is None:
                p.kill()
        for f in logs:
            f.close()

    trials = optuna.load_study(study_name=name, storage=storage).get_trials()
    log = (tmp_path / "worker1.log").read_text()[-3000:]
    assert trials[killed.number].state == TrialState.FAIL, log
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE, log
    assert retried[0].params == trials[killed.number].params
    assert sum(t.state == TrialState.COMPLETE for t in trials) >= n_trials, log
    assert not [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)], log
    for number, (params, value) in completed_before.items():  # nothing completed is lost
        assert (trials[number].state, trials[number].params, trials[number].value) == (TrialState.COMPLETE, params, value)


@pytest.fixture
def postgres_stop_start(postgres_url) -> tuple[str, str]:
    """Shell commands that stop and start the test's PostgreSQL server (exported by .ci/run)."""
    stop, start = os.environ.get("SPIKEBENCH_TEST_POSTGRES_STOP"), os.environ.get("SPIKEBENCH_TEST_POSTGRES_START")
    if stop and start:
        return stop, start
    if os.environ.get("SPIKEBENCH_CI") or os.environ.get("CI"):
        pytest.fail("SPIKEBENCH_TEST_POSTGRES_STOP/START are not set in CI: .ci/run exports them")
    pytest.skip("needs SPIKEBENCH_TEST_POSTGRES_STOP and _START: shell commands that stop and start the server")


def study_argv(postgres_url: str, name: str, tmp_path, n_trials: int, *extra: str) -> tuple[list[str], list[str]]:
    train_args = [
        "data=synthetic", f"data.root={tmp_path / 'data'}", "data.synthetic.n_train=240", "data.synthetic.n_test=60",
        "data.n_classes=4", "data.duration=0.1", "model.hidden=16", "trainer.max_epochs=6", "logger=csv",
    ]  # fmt: skip
    argv = [
        sys.executable, "-m", "spikebench.sweeps.optimize", *train_args, f"sweep.storage={postgres_url}",
        f"sweep.study_name={name}", f"sweep.out_dir={tmp_path / 'study'}", f"sweep.n_trials={n_trials}",
        "sweep.sampler=random", "sweep.pruner=none", "sweep.heartbeat_interval=1", "sweep.grace_period=2",
        "sweep.plots=false", *extra,
    ]  # fmt: skip
    return argv, train_args


@pytest.mark.slow
def test_database_down_for_longer_than_the_grace_period_during_a_study_two_workers_wait_reconnect_and_complete_it(
    postgres_url, postgres_stop_start, tmp_path
):
    stop, start = postgres_stop_start
    name = f"pg-restart-{uuid.uuid4().hex[:8]}"
    n_trials = 6
    argv, train_args = study_argv(postgres_url, name, tmp_path, n_trials, "sweep.reconnect_timeout=120")
    from spikebench.datamodules.synthetic import ensure_synthetic

    ensure_synthetic(compose_config(train_args).data)
    storage, _ = storage_mod.make_storage(optimize.load_sweep_config([f"sweep.storage={postgres_url}"]), tmp_path)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    logs = [open(tmp_path / f"worker{i}.log", "w") for i in range(2)]
    workers = [subprocess.Popen(argv, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT) for f in logs]
    try:

        def both_in_a_trial_one_mid_training():  # both connected: a worker still starting up when the database
            # goes away stops at once (make_storage), by design: this test is about running workers
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            return len(running) == 2 and any(t.intermediate_values for t in running)

        wait_for(both_in_a_trial_one_mid_training, 120, "both workers in a trial, one past an epoch", workers)
        completed_before = {t.number: (t.params, t.value) for t in study.get_trials(states=(TrialState.COMPLETE,))}
        subprocess.run(stop, shell=True, check=True)
        try:
            time.sleep(5.0)  # longer than sweep.grace_period: every running trial's heartbeat is stale when it returns
            stopped = [w.poll() for w in workers]
        finally:
            subprocess.run(start, shell=True, check=True)
        assert stopped == [None, None], "a worker stopped while the database was away"
        codes = [w.wait(240) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
        for f in logs:
            f.close()
    texts = [(tmp_path / f"worker{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], "\n".join(t[-3000:] for t in texts)
    assert any("storage: reconnected after" in t for t in texts), texts[0][-3000:]
    assert not any("Traceback" in t for t in texts), "\n".join(t[-3000:] for t in texts)

    trials = optuna.load_study(study_name=name, storage=storage).get_trials()
    assert sum(t.state == TrialState.COMPLETE for t in trials) >= n_trials
    assert not [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    for t in trials:  # a trial failed while the database was away was queued again and completed
        if t.state == TrialState.FAIL:
            retries = [r for r in trials if r.system_attrs.get("failed_trial") == t.number]
            assert [r.state for r in retries] == [TrialState.COMPLETE] and retries[0].params == t.params
    for number, (params, value) in completed_before.items():
        assert (trials[number].state, trials[number].params, trials[number].value) == (TrialState.COMPLETE, params, value)


@pytest.mark.slow
def test_database_away_longer_than_reconnect_timeout_worker_stops_with_one_line_and_a_rerun_completes_the_study(
    postgres_url, postgres_stop_start, tmp_path
):
    stop, start = postgres_stop_start
    name = f"pg-lost-{uuid.uuid4().hex[:8]}"
    argv, train_args = study_argv(postgres_url, name, tmp_path, 3, "sweep.reconnect_timeout=3")
    from spikebench.datamodules.synthetic import ensure_synthetic

    ensure_synthetic(compose_config(train_args).data)
    storage, _ = storage_mod.make_storage(optimize.load_sweep_config([f"sweep.storage={postgres_url}"]), tmp_path)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    worker = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def mid_training():  # past an epoch, its heartbeat long recorded (a trial stopped before its first heartbeat
            # has none to go stale, and Optuna leaves it RUNNING)
            return any(t.intermediate_values for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))

        wait_for(mid_training, 120, "a running trial that has reported an epoch", [worker])
        subprocess.run(stop, shell=True, check=True)
        try:
            out, err = worker.communicate(timeout=60)
        finally:
            subprocess.run(start, shell=True, check=True)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 1, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: the study's database did not answer for 3 s") and "Traceback" not in err, err[-3000:]

    time.sleep(2.5)  # the abandoned trial's heartbeat is now older than sweep.grace_period
    rerun = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    trials = optuna.load_study(study_name=name, storage=storage).get_trials()
    assert sum(t.state == TrialState.COMPLETE for t in trials) >= 3
    abandoned = [t for t in trials if t.state == TrialState.FAIL]
    assert len(abandoned) == 1, [t.state for t in trials]
    assert [r.state for r in trials if r.system_attrs.get("failed_trial") == abandoned[0].number] == [TrialState.COMPLETE]
