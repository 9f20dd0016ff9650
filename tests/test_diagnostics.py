"""sweeps/diagnostics/: every script starts as documented (`python -m spikebench.sweeps.diagnostics.<name> --help`), and the
EventProp mode comparison runs end to end on its small networks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.stem for p in (ROOT / "spikebench" / "sweeps" / "diagnostics").glob("*.py") if p.stem not in ("__init__", "networks"))


def test_every_script_of_the_folder_is_listed_here():
    assert SCRIPTS == ["bench_eprop", "bench_eventprop", "bench_lif", "bench_paralif", "cochlea_check", "eventprop_modes",
                       "gpu_check", "kernel_check"]


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_imports_and_prints_its_usage(name):
    proc = subprocess.run([sys.executable, "-m", f"spikebench.sweeps.diagnostics.{name}", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "usage:" in proc.stdout, proc.stderr[-2000:]


def test_eventprop_modes_prints_cosines_between_the_discrete_and_exact_gradients():
    proc = subprocess.run([sys.executable, "-m", "spikebench.sweeps.diagnostics.eventprop_modes", "--dt", "1e-3", "--seeds", "0", "2"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "median" in proc.stdout and "same spikes" in proc.stdout, proc.stdout
