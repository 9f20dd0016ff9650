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
from spikebench.train import ROOT, compose_config


@pytest.fixture
def postgres_url() -> str:
    url = os.environ.get("SPIKEBENCH_TEST_POSTGRES_URL")
    if url:
        return url
    if os.environ.get("SPIKEBENCH_CI") or os.environ.get("CI"):
        pytest.fail("SPIKEBENCH_TEST_POSTGRES_URL is not set in CI: .ci/run starts PostgreSQL and exports it")
    pytest.skip(
        "needs a PostgreSQL server: run .ci/run, or set SPIKEBENCH_TEST_POSTGRES_URL=postgresql://user@127.0.0.1:port/db"
    )


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
    storage, _ = optimize.make_storage(optimize.load_sweep_config([f"sweep.storage={postgres_url}"]), tmp_path)
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
