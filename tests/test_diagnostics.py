"""sweeps/diagnostics/: every script starts as documented (`python -m spikebench.sweeps.diagnostics.<name> --help`), and the
EventProp mode comparison runs end to end on its small networks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.stem for p in (ROOT / "spikebench" / "sweeps" / "diagnostics").glob("*.py") if p.stem not in ("__init__", "networks"))


def test_every_script_of_the_folder_is_listed_here():
    assert SCRIPTS == ["bench_additions", "bench_eprop", "bench_eventprop", "bench_lif", "bench_paralif", "cochlea_check", "epoch_costs", "eventprop_modes",
                       "gpu_check", "kernel_check", "learning_curves", "receptive_fields", "study_trials"]


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_imports_and_prints_its_usage(name):
    proc = subprocess.run([sys.executable, "-m", f"spikebench.sweeps.diagnostics.{name}", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "usage:" in proc.stdout, proc.stderr[-2000:]


def test_bench_additions_prints_each_addition_beside_its_plain_network_with_ratio_one_for_the_plain_rows():
    proc = subprocess.run([sys.executable, "-m", "spikebench.sweeps.diagnostics.bench_additions", "--steps", "30",
                           "--hidden", "16", "--no-time"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line.split("|")[1:-1] for line in proc.stdout.splitlines() if line.startswith("| 30 ")]
    assert [(r[1].strip(), r[2].strip()) for r in rows] == [("bptt", "plain"), ("bptt", "delays"), ("bptt", "adlif"),
        ("bptt", "adlif + delays"), ("paralif", "plain"), ("paralif", "delays"), ("eventprop", "plain"),
        ("eventprop", "delays")]
    assert "T = 30: with delays, BPTT / EventProp step memory" in proc.stdout
    assert [r[3].strip() for r in rows] == ["events"] * 8  # data.format=auto: each algorithm's own
    assert all(float(r[7]) == 1.0 for r in rows if r[2].strip() == "plain")
    assert all(float(r[6]) > 0 and float(r[4]) > 0 for r in rows)


def test_eventprop_modes_prints_cosines_between_the_discrete_and_exact_gradients():
    proc = subprocess.run([sys.executable, "-m", "spikebench.sweeps.diagnostics.eventprop_modes", "--dt", "1e-3", "--seeds", "0", "2"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "median" in proc.stdout and "same spikes" in proc.stdout, proc.stdout


def test_learning_curves_take_one_value_per_epoch_from_the_epoch_end_rows_and_report_best_last_and_test(tmp_path):
    from spikebench.sweeps.diagnostics import learning_curves as LC

    run = tmp_path / "tuned-bptt-s0"
    run.mkdir()
    rows = ["epoch,step,train/acc_step,train/acc_epoch,val/acc,test/acc"]
    for e, (train, val) in enumerate([(0.30, 0.40), (0.50, 0.70), (0.60, 0.65)]):
        rows += [f"{e},{10 * e + 4},0.9,,,", f"{e},{10 * e + 9},,,{val},", f"{e},{10 * e + 9},,{train},,"]
    rows.append("3,30,,,,0.61")  # the test row after fit
    (run / "metrics.csv").write_text("\n".join(rows) + "\n")
    (run / "config.yaml").write_text("algorithm:\n  name: bptt\n")
    (run / "results.yaml").write_text("test/acc: 0.61\n")
    c = LC.read_curve(run)
    assert (c["algorithm"], c["epochs"], c["val"], c["train"], c["test"]) == ("bptt", [1, 2, 3], [0.4, 0.7, 0.65], [0.3, 0.5, 0.6], 0.61)
    assert LC.main([str(run), "--out", str(tmp_path / "c.png"), "--table", str(tmp_path / "c.md")]) == 0
    assert (tmp_path / "c.png").stat().st_size > 1000
    assert "| tuned-bptt-s0 | bptt | 3 | 70.0 % (2) | 65.0 % | 60.0 % | 61.0 % |" in (tmp_path / "c.md").read_text()


def test_learning_curves_coloured_by_run_tell_two_variants_of_one_algorithm_apart(tmp_path):
    from spikebench.sweeps.diagnostics import learning_curves as LC

    curves = [{"name": n, "algorithm": "stdp", "epochs": [1, 2], "val": [0.1, 0.2], "train": [0.1, 0.3], "test": None}
              for n in ("stdp-h64", "stdp_dc-h64")]
    assert LC.plot(curves, tmp_path / "a.png") == ["stdp"]
    assert sorted(LC.plot(curves, tmp_path / "r.png", by="run")) == ["stdp-h64", "stdp_dc-h64"]


def test_study_trials_lists_the_best_finished_trials_of_a_journal_best_first_with_their_epochs(tmp_path, capsys):
    import optuna
    from optuna.storages.journal import JournalFileBackend

    from spikebench.sweeps.diagnostics import study_trials as ST

    folder = tmp_path / "tune-x"
    folder.mkdir()
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(folder / "journal.log")))
    study = optuna.create_study(study_name="x", storage=storage, direction="maximize")
    for value, epochs, state in ((0.5, 3, "COMPLETE"), (0.8, 3, "COMPLETE"), (0.6, 1, "PRUNED"), (None, 0, "FAIL")):
        t = study.ask({"optim.lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)})
        for e in range(epochs):
            t.report(value, e)
        study.tell(t, value if state == "COMPLETE" else None, state=getattr(optuna.trial.TrialState, state))
    assert ST.main([str(folder), "--top", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "tune-x (study x): 2 complete, 1 fail, 1 pruned"
    assert lines[1].startswith("  trial   1 complete val/acc 0.8000   3 epochs  optim.lr=")
    assert lines[2].startswith("  trial   2 pruned   val/acc 0.6000   1 epochs  optim.lr=") and len(lines) == 3


def test_eventprop_modes_on_a_trained_run_compares_the_modes_on_its_weights_and_test_recordings(tmp_path, capsys):
    import re

    from spikebench.sweeps.diagnostics import eventprop_modes
    from spikebench.train import compose_config, run

    from conftest import overrides_for

    run(compose_config(overrides_for(tmp_path, "algorithm=eventprop", "trainer.max_epochs=1",
                                     "trainer.limit_train_batches=2", "model.hidden=16", "test=false")))
    eventprop_modes.main(["--run", str(tmp_path / "run"), "--samples", "6", "--batch", "3"])
    out = capsys.readouterr().out
    assert "trained in mode discrete; 6 test recordings" in out and out.count("  batch ") == 2
    cosines = [float(c) for c in re.findall(r"[+-]\d\.\d{3}", out.split("per tensor: median")[0])]
    assert len(cosines) == 2 * 4 and all(-1.0 <= c <= 1.0 for c in cosines)


def test_receptive_field_stats_tell_collapsed_fields_from_distinct_ones():
    """Identical columns: cosine 1 and one preferred channel; one-hot columns on distinct channels: cosine 0 and as
    many preferred channels as neurons; a run folder's table row and picture from its last checkpoint."""
    from spikebench.sweeps.diagnostics.receptive_fields import field_stats

    base = torch.rand(20, 1) + 0.1
    same = field_stats(base.repeat(1, 6))
    assert abs(same["cos_mean"] - 1) < 1e-12 and abs(same["cos_min"] - 1) < 1e-12 and same["preferred"] == 1
    distinct = field_stats(torch.eye(20)[:, :6])
    assert distinct["cos_mean"] == 0 and distinct["preferred"] == 6 and distinct["hidden"] == 6


def test_receptive_fields_script_writes_its_table_and_picture(tmp_path):
    run = tmp_path / "stdp-s0" / "checkpoints"
    run.mkdir(parents=True)
    torch.save({"state_dict": {"net.w_in": torch.eye(12)[:, :4], "theta": torch.ones(4)}}, run / "last.ckpt")
    proc = subprocess.run([sys.executable, "-m", "spikebench.sweeps.diagnostics.receptive_fields", str(run.parent),
                           "--out", str(tmp_path / "f.png"), "--table", str(tmp_path / "f.md")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| stdp-s0 | 4 | 0.000 / 0.000 | 4 |" in (tmp_path / "f.md").read_text()
    assert (tmp_path / "f.png").stat().st_size > 1000


def test_epoch_costs_re_times_a_run_folder_with_its_own_settings_and_names_it_in_the_row(tmp_path, capsys):
    from spikebench import train
    from spikebench.configs import compose_config
    from spikebench.sweeps.diagnostics import epoch_costs as EC

    from conftest import overrides_for

    run = tmp_path / "tuned-x-s0"
    train.run(compose_config(overrides_for(tmp_path, "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                                           "model.hidden=12", "data.dt=2e-3", "test=false", f"output_dir={run}")))
    cfg = EC.case_config(None, None, str(run), 3, ["trainer.limit_train_batches=1"], str(tmp_path / "again"))
    assert (cfg.model.hidden, cfg.data.dt, cfg.trainer.max_epochs, cfg.test, cfg.ckpt_path) == (12, 2e-3, 3, False, None)
    assert cfg.output_dir == str(tmp_path / "again")
    EC.main(["--runs", str(run), "--epochs", "1", "--", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1"])
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| tuned-x-s0 |")]
    assert len(row) == 1 and row[0].split("|")[2].strip() == "bptt", row
