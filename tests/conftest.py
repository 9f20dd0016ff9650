"""Shared fixtures: small SHD-format files written by the suite's own generator; the PostgreSQL server of .ci/run."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
FSDD = ROOT.parent / "shared" / "data" / "fsdd-spikes"


@pytest.fixture(scope="session", autouse=True)
def _one_openmp_thread_per_child_process():
    """Child processes (train.py, sweep workers, the benchmark's spawned cells) get one OpenMP thread unless the
    caller chose OMP_NUM_THREADS. Measured on a 2-core machine with one core busy elsewhere: the 3-epoch train.py
    run of the SIGTERM-resume test took 18 s with one thread and 381 s with torch's default two (OpenMP threads
    spin-waiting on each other's small products). This process keeps the threads torch gave it at import."""
    torch.get_num_threads()  # torch's pool is sized from the environment before the change below
    before = os.environ.get("OMP_NUM_THREADS")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    yield
    if before is None:
        os.environ.pop("OMP_NUM_THREADS", None)


@pytest.fixture(autouse=True)
def _threads_and_seed():
    torch.manual_seed(0)
    np.random.seed(0)
    yield


@pytest.fixture
def one_thread():
    """Small tensors: one thread each (a second one only waits on the other's small products, and on shared cores
    OpenMP oversubscription makes them up to 100x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def shd_dir(tmp_path):
    """A folder holding shd_train.h5 and shd_test.h5 in the official layout (generated, 20 classes)."""
    from spikebench.datamodules.synthetic import generate, write_shd_file

    for split, n, stream in (("train", 200, 1), ("test", 60, 2)):
        t, u, y = generate(n, np.random.default_rng([3, 0]), np.random.default_rng([3, stream]), duration=0.1)
        speakers = np.arange(n) % 4
        write_shd_file(tmp_path / f"shd_{split}.h5", t, u, y, speakers=speakers)
    return tmp_path


def module_for(overrides: list[str]):
    """The module of compose_config(overrides), built as train.run builds it."""
    from spikebench.algorithms import build_module
    from spikebench.configs import compose_config
    from spikebench.datamodules import data_shape

    cfg = compose_config(overrides)
    return build_module(cfg, data_shape(cfg))


def overrides_for(tmp_path, *extra: str) -> list[str]:
    """Overrides for a fast, quiet run that writes into tmp_path."""
    return [
        f"output_dir={tmp_path / 'run'}",
        "trainer.enable_progress_bar=false",
        "plots=false",
        f"data.cache_dir={tmp_path / 'cache'}",
        *extra,
    ]


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
