"""`pip install .` (a wheel, not the checkout) gives a working suite: one top-level name (`spikebench`), configs,
search spaces and console commands travel with it, and a tiny run trains from outside the checkout."""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_wheel_installed_into_a_fresh_environment_trains_from_outside_the_checkout(tmp_path):
    source, wheels = tmp_path / "source", tmp_path / "wheels"  # a copy: setuptools builds in the source tree
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", "runs", "results", "build", "*.egg-info",
                                                                  "__pycache__", "wandb", "lightning_logs"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels)], check=True, capture_output=True, timeout=300)
    wheel = next(wheels.glob("spikebench-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {"spikebench/configs/train.yaml", "spikebench/configs/experiment/fsdd.yaml", "spikebench/sweeps/spaces/bptt.yaml",
            "spikebench/sweeps/benchmark/command.py", "spikebench/algorithms/kernels/cpu_lif.py",
            "spikebench/train.py"} <= set(names)
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == {"spikebench"}, top  # one installed name: nothing called train, algorithms, configs, … at the top
    # A fresh environment that sees the packages of the interpreter running the tests (torch is not installed
    # again) whether that interpreter is the system's, a virtualenv's or a conda-like prefix's: their
    # site-packages folders go on the new environment's path through a .pth file (a path line: their own .pth
    # files, such as an editable install of this checkout, are not run).
    env = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True, timeout=120)
    site_dir = next((env / "lib").glob("python*/site-packages"))
    (site_dir / "outer_packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([env / "bin" / "python", "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True,
                   capture_output=True, timeout=300)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    where = subprocess.run([env / "bin" / "python", "-c", "from spikebench import train, configs; print(train.__file__, configs.CONFIG_DIR)"],
                           cwd=outside, capture_output=True, text=True, check=True).stdout
    assert str(ROOT) not in where and str(env) in where, where  # the installed copy, not the checkout
    run = subprocess.run([env / "bin" / "spikebench-train", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                          "model.hidden=16", "trainer.enable_progress_bar=false", "plots=false",
                          f"data.cache_dir={tmp_path / 'cache'}", f"data.root={tmp_path / 'data'}"],
                         cwd=outside, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "test accuracy" in run.stdout and (outside / "runs").is_dir()  # runs/ in the working folder
