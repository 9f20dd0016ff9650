"""Secrets are never written: a W&B API key (WANDB_API_KEY) and a database password (given in the storage URL on the
command line, the worst case) appear in no file that a training run, a study or a tuned benchmark writes — run
folders, config.yaml, logs, best_command.txt, environment.yaml, tables, the W&B run files — nor in what they print.

Needs .ci/run's PostgreSQL (it accepts any password: trust authentication), like tests/test_postgres_study.py.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

from spikebench.train import ROOT

TINY = ["data=shd", "data.duration=0.1", "data.batch_size=16", "model.hidden=16", "trainer.limit_train_batches=2"]


def run(argv: list[str], env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


@pytest.mark.slow
def test_wandb_key_and_database_password_appear_in_no_file_or_output_of_a_run_a_study_and_a_tuned_benchmark(
    postgres_url, shd_dir, tmp_path
):
    key, password = secrets.token_hex(20), "pw-" + secrets.token_hex(8)  # a W&B key is 40 hex characters
    assert "@" in postgres_url and ":" not in postgres_url.split("://", 1)[1].split("@", 1)[0]
    url = postgres_url.replace("@", f":{password}@", 1)
    home = tmp_path / "home"  # W&B's settings and caches, matplotlib's: inside the folder that is searched
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "WANDB_API_KEY": key, "OMP_NUM_THREADS": "1"}
    env.pop("PGPASSWORD", None)
    data = [f"data.root={shd_dir}", f"data.cache_dir={tmp_path / 'cache'}"]
    wandb = ["logger=wandb", "logger.mode=offline"]  # a user with a key, working without a network
    printed = run(["spikebench.train", *TINY, *data, *wandb, "trainer.max_epochs=1", f"output_dir={tmp_path / 'run'}"], env)
    printed += run([
        "spikebench.sweeps.optimize", *TINY, *data, *wandb, "trainer.max_epochs=1", f"sweep.storage={url}",
        f"sweep.study_name=secret-{secrets.token_hex(4)}", "sweep.n_trials=2", f"sweep.out_dir={tmp_path / 'study'}",
    ], env)  # fmt: skip
    printed += run([
        "spikebench.sweeps.benchmark", "benchmark=tiny", f"benchmark.out_dir={tmp_path / 'bench'}",
        "benchmark.algorithms=[bptt]", "benchmark.seeds=[0]", "benchmark.phases=[tune,tuned]",
        f"benchmark.overrides=[{','.join(TINY)}]", f"benchmark.tuning.storage={url}", "benchmark.tuning.trials=2",
        "benchmark.tuning.max_epochs=1", "benchmark.tuning.n_startup_trials=1", "benchmark.tuning.epochs=1",
        "benchmark.tuning.random_search=[]", "benchmark.neurobench_samples=8", *data, *wandb,
    ], env)  # fmt: skip

    written = [p for p in tmp_path.rglob("*") if p.is_file() and "cache" not in p.relative_to(tmp_path).parts]
    assert len(written) > 50  # the run, the study's trials, the benchmark's cells and their W&B folders
    assert any(p.name == "best_command.txt" for p in written) and any(p.name == "environment.yaml" for p in written)
    assert any(p.suffix == ".wandb" for p in written)  # W&B's offline run files (their config and metadata)
    for p in written:
        blob = p.read_bytes()
        for name, secret in (("W&B API key", key), ("database password", password)):
            assert secret.encode() not in blob, f"the {name} is written in {p.relative_to(tmp_path)}"
    assert key not in printed and password not in printed
