"""sweeps/benchmark/ (the table, resume, reproducibility), sweeps/benchmark/neurobench.py (NeuroBench's definitions)
and the LSTM reference (algorithms/lstm.py)."""

from __future__ import annotations

from spikebench.errors import UserError
import csv
import math
import re

import pytest
import torch
import yaml
from torch import nn

from spikebench.sweeps.benchmark import cells as BC
from spikebench.sweeps.benchmark import command as B
from spikebench.sweeps.benchmark import neurobench as NB
from spikebench.sweeps.benchmark import report as BR
from spikebench.sweeps.benchmark.config import load_benchmark_config
from spikebench.algorithms.trace import Connection, Trace
from spikebench.train import compose_config


def tiny_argv(tmp_path) -> list[str]:
    """2 algorithms × 2 seeds, 1 epoch of 2 batches, 16 hidden, 50 steps; scaling at T = 20 and 50."""
    return [
        "benchmark=tiny",
        f"benchmark.out_dir={tmp_path / 'out'}",
        "benchmark.algorithms=[bptt,lstm]",
        "benchmark.seeds=[0,1]",
        "benchmark.scaling.steps=[20,50]",
        "benchmark.scaling.hidden=[16]",
        f"data.root={tmp_path / 'data'}",
        f"data.cache_dir={tmp_path / 'cache'}",
    ]


def read_csv(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def table_rows(md: str) -> tuple[list[str], list[list[str]]]:
    lines = [ln for ln in md.splitlines() if ln.startswith("|") and not ln.startswith("|---")]
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    return cells[0], cells[1:]


def first_number(text: str) -> float:
    return float(re.match(r"[-+0-9.e]+", text).group(0))


# ----------------------------------------------------------------------------------------------
# The command end to end: table, CSV, plots, environment; resume; exact reproduction on CPU
# ----------------------------------------------------------------------------------------------


def test_tiny_benchmark_table_has_every_algorithm_and_column_finite_and_equal_to_the_csv_means_then_resumes_and_reproduces(tmp_path, capsys):
    argv = tiny_argv(tmp_path)
    out, failures = B.benchmark(argv)
    assert failures == {}
    header, rows = table_rows((out / "table.md").read_text())
    for col in ("Test acc. (%)", "Best val. acc. (%)", "Epochs", "Time / epoch (s)", "Samples / s", "Step memory (MB)",
                "Hidden rate (Hz)", "Activation sparsity", "SynOps Effective_ACs", "SynOps Effective_MACs",
                "SynOps Dense", "Footprint (kB)", "Connection sparsity"):
        assert col in header, header
    assert not any("RSS" in h or "backward" in h for h in header)  # process and bookkeeping figures: CSV only
    assert [r[0] for r in rows] == ["bptt", "lstm"] and all(r[1] == "2" for r in rows)
    heur = header.index("Heuristics (not the loss gradient)")  # every approximation that is on, named per algorithm
    assert rows[0][heur].startswith("surrogate gradient (") and rows[1][heur] == "none"
    csv_rows = read_csv(out / "results.csv")
    assert sorted((r["algorithm"], r["seed"]) for r in csv_rows) == [("bptt", "0"), ("bptt", "1"), ("lstm", "0"), ("lstm", "1")]
    for row in rows:
        mine = [r for r in csv_rows if r["algorithm"] == row[0]]
        for key, head, scale, spec in BR.TABLE_COLUMNS:
            if head not in header:
                continue
            text = row[header.index(head)]
            if key == "rate_hz" and row[0] == "lstm":
                assert text == "–"  # not a spiking network
                continue
            values = [float(r[key]) for r in mine]
            assert all(math.isfinite(v) for v in values), (row[0], key, values)
            assert text == BR.fmt_cell(*BR.mean_std(values), scale, spec, key in ("test_acc", "best_val_acc"))
            assert math.isfinite(first_number(text))
    bptt = [r for r in csv_rows if r["algorithm"] == "bptt"]
    # 50 steps × (700·16 input + 16·16 recurrent + 16·20 readout synapses) per sample, zeros included
    assert float(bptt[0]["synops_dense"]) == 50 * (700 * 16 + 16 * 16 + 16 * 20)
    scaling = read_csv(out / "scaling.csv")
    assert sorted((r["algorithm"], r["steps"]) for r in scaling) == [("bptt", "20"), ("bptt", "50"), ("lstm", "20"), ("lstm", "50")]
    for r in scaling:
        assert float(r["step_s"]) > 0 and float(r["step_mem_bytes"]) > 0 and float(r["step_rss_growth_bytes"]) >= 0
    step_mem = {r["steps"]: float(r["step_mem_bytes"]) for r in scaling if r["algorithm"] == "lstm"}
    assert step_mem["50"] > step_mem["20"]  # BPTT through an LSTM keeps every step
    for r in csv_rows:  # every algorithm's first training step measured the same way, the LSTM included
        assert float(r["step_mem_bytes"]) > 0 and float(r["process_peak_rss_bytes"]) > 0
    arch = read_csv(out / "architecture.csv")
    assert sorted((r["algorithm"], r["recurrent"]) for r in arch) == [("bptt", "False"), ("bptt", "True"), ("lstm", "False"), ("lstm", "True")]
    for name in ("accuracy_vs_time.png", "scaling_steps.png", "scaling_hidden.png", "architecture.png", "table.png"):
        assert (out / name).stat().st_size > 1000, name
    env = yaml.safe_load((out / "environment.yaml").read_text())
    assert env["device"] == "cpu" and env["versions"]["torch"] and "commit" in env and "benchmark=tiny" in env["command"]
    assert (out / "configs" / "bptt.yaml").is_file() and (out / "benchmark.yaml").is_file()

    # resume: nothing is recomputed; then one cell, deleted, is recomputed to the same figures exactly
    capsys.readouterr()
    B.benchmark(argv)
    printed = capsys.readouterr().out
    assert printed.count("4 of 4 cells already done") == 2 and "2 of 2 cells already done" in printed and "[1/" not in printed
    before = {(r["algorithm"], r["seed"]): r for r in csv_rows}
    assert read_csv(out / "results.csv") == csv_rows
    for name in ("cell.yaml", "results.yaml"):  # as a cell killed mid-training leaves it: cleared and retrained
        (out / "cells" / "bptt-h16-rec-s1" / name).unlink()
    (out / "cells" / "lstm-h16-rec-s0" / "cell.yaml").unlink()  # trained: only its metrics are computed again
    trained = (out / "cells" / "lstm-h16-rec-s0" / "checkpoints" / "best.ckpt").stat().st_mtime_ns
    B.benchmark(argv)
    printed = capsys.readouterr().out
    assert "accuracy bptt-h16-rec-s1" in printed and "accuracy lstm-h16-rec-s0" in printed
    assert "accuracy bptt-h16-rec-s0" not in printed and "epoch 1/1" in printed  # one epoch line: bptt-s1's
    assert printed.count("epoch 1/1") == 1
    assert (out / "cells" / "lstm-h16-rec-s0" / "checkpoints" / "best.ckpt").stat().st_mtime_ns == trained
    again = {(r["algorithm"], r["seed"]): r for r in read_csv(out / "results.csv")}
    for cell in (("bptt", "1"), ("lstm", "0")):
        for key in ("test_acc", "best_val_acc", "activation_sparsity", "synops_effective_acs", "synops_effective_macs", "rate_hz"):
            assert again[cell][key] == before[cell][key], (cell, key)


@pytest.mark.slow  # ~45 s: four cells trained twice
def test_cells_trained_two_at_once_give_the_serial_runs_figures_exactly(tmp_path, capsys):
    """benchmark.workers=2 (spawned cells, two at a time) reproduces the one-at-a-time accuracy figures."""
    common = ["benchmark.phases=[table]", "benchmark.plots=false", "benchmark.neurobench_samples=8"]
    serial, _ = B.benchmark(tiny_argv(tmp_path / "serial") + common)
    parallel, failures = B.benchmark(tiny_argv(tmp_path / "parallel") + common + ["benchmark.workers=2"])
    assert failures == {} and "(worker pool of 2)" in capsys.readouterr().out
    key = lambda r: (r["algorithm"], r["seed"])  # noqa: E731
    one, two = sorted(read_csv(serial / "results.csv"), key=key), sorted(read_csv(parallel / "results.csv"), key=key)
    assert [key(r) for r in one] == [key(r) for r in two] and len(one) == 4
    for a, b in zip(one, two):
        for k in ("test_acc", "best_val_acc", "rate_hz", "activation_sparsity", "synops_effective_acs"):
            assert a[k] == b[k], (key(a), k)


def test_a_failing_cell_is_reported_and_the_others_still_run(tmp_path):
    argv = tiny_argv(tmp_path) + ["benchmark.seeds=[0]", "benchmark.phases=[table]",
                                  "benchmark.plots=false", "benchmark.algorithm_overrides={lstm: [algorithm.readout=nope]}"]
    out, failures = B.benchmark(argv)
    assert list(failures) == ["lstm-h16-rec-s0"] and "unknown algorithm.readout 'nope'" in failures["lstm-h16-rec-s0"]
    assert [r["algorithm"] for r in read_csv(out / "results.csv")] == ["bptt"]
    assert "lstm-h16-rec-s0" in (out / "table.md").read_text()


def test_a_dry_run_lists_done_changed_and_new_cells_and_writes_nothing(tmp_path, capsys):
    argv = tiny_argv(tmp_path) + ["benchmark.phases=[table]", "benchmark.plots=false", "benchmark.algorithms=[bptt]"]
    B.benchmark(argv + ["benchmark.seeds=[0]"])
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    stamps = [p.stat().st_mtime_ns for p in sorted(tmp_path.rglob("*"))]
    capsys.readouterr()
    B.benchmark(argv + ["benchmark.seeds=[0,1]", "benchmark.dry_run=true"])
    assert capsys.readouterr().out.splitlines()[-3:] == [
        "done     accuracy     bptt-h16-rec-s0", "to run   accuracy     bptt-h16-rec-s1",
        f"dry run of tiny -> {tmp_path / 'out'}: 1 done, 1 to run"]
    B.benchmark(argv + ["benchmark.seeds=[0]", "benchmark.dry_run=true", "optim.lr=0.0123"])  # another config
    assert "changed  accuracy     bptt-h16-rec-s0" in capsys.readouterr().out
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert [p.stat().st_mtime_ns for p in sorted(tmp_path.rglob("*"))] == stamps


def test_a_cell_finished_before_an_update_added_config_keys_is_kept_unless_a_new_key_leaves_its_default(tmp_path, capsys):
    from omegaconf import OmegaConf

    argv = tiny_argv(tmp_path) + ["benchmark.phases=[table]", "benchmark.plots=false", "benchmark.algorithms=[bptt]",
                                  "benchmark.seeds=[0]"]
    out, _ = B.benchmark(argv)
    cell = out / "cells" / "bptt-h16-rec-s0"
    saved = OmegaConf.load(cell / "config.yaml")  # as the code before model.neuron and model.delays existed wrote it
    del saved.model["neuron"], saved.model["delays"]
    OmegaConf.save(saved, cell / "config.yaml")
    done = yaml.safe_load((cell / "cell.yaml").read_text())
    done["cell"]["config_hash"] = BC.config_hash(saved, {"nb": done["cell"]["info"]["neurobench_samples"]})
    (cell / "cell.yaml").write_text(yaml.safe_dump(done))
    capsys.readouterr()
    B.benchmark(argv + ["benchmark.dry_run=true"])
    assert "done     accuracy     bptt-h16-rec-s0" in capsys.readouterr().out
    B.benchmark(argv + ["benchmark.dry_run=true", "model.delays.enabled=true"])  # a new key away from its default
    assert "changed  accuracy     bptt-h16-rec-s0" in capsys.readouterr().out
    saved.model.tau_mem = 0.5 * saved.model.tau_mem  # a key the cell had, at another value
    OmegaConf.save(saved, cell / "config.yaml")
    done["cell"]["config_hash"] = BC.config_hash(saved, {"nb": done["cell"]["info"]["neurobench_samples"]})
    (cell / "cell.yaml").write_text(yaml.safe_dump(done))
    B.benchmark(argv + ["benchmark.dry_run=true"])
    assert "changed  accuracy     bptt-h16-rec-s0" in capsys.readouterr().out


def test_a_variant_is_a_row_of_its_own_trained_with_its_algorithm_and_overrides(tmp_path):
    argv = tiny_argv(tmp_path) + ["benchmark.seeds=[0]", "benchmark.phases=[table]", "benchmark.plots=false",
                                  "benchmark.algorithms=[bptt,bptt_delays]",
                                  "benchmark.variants={bptt_delays: [algorithm=bptt, model.delays.enabled=true]}"]
    out, failures = B.benchmark(argv)
    assert not failures
    assert [r["algorithm"] for r in read_csv(out / "results.csv")] == ["bptt", "bptt_delays"]
    cfg = yaml.safe_load((out / "cells" / "bptt_delays-h16-rec-s0" / "config.yaml").read_text())
    plain = yaml.safe_load((out / "cells" / "bptt-h16-rec-s0" / "config.yaml").read_text())
    assert cfg["algorithm"]["name"] == "bptt" and cfg["model"]["delays"]["enabled"] is True
    assert plain["model"]["delays"]["enabled"] is False


def test_a_variant_must_name_one_declared_algorithm_and_a_new_label():
    with pytest.raises(UserError, match=r"needs exactly one algorithm=<name>"):
        load_benchmark_config("tiny", ["benchmark.variants={x: [model.delays.enabled=true]}"])
    with pytest.raises(UserError, match=r"must be a new name"):
        load_benchmark_config("tiny", ["benchmark.variants={bptt: [algorithm=bptt]}"])
    with pytest.raises(UserError, match=r"or declare it in benchmark.variants"):
        load_benchmark_config("tiny", ["benchmark.algorithms=[bptt_x]"])


def tuning_argv(tmp_path, shd_dir, *extra: str) -> list[str]:
    """A study of 3 trials (2 epochs at most) for BPTT, and a random-search one, on SHD-format files."""
    return [
        "benchmark=tiny", f"benchmark.out_dir={tmp_path / 'out'}", "benchmark.algorithms=[bptt]", "benchmark.seeds=[0]",
        "benchmark.overrides=[data=shd,data.duration=0.1,data.batch_size=16,model.hidden=16,trainer.limit_train_batches=2]",
        "benchmark.tuning.trials=3", "benchmark.tuning.max_epochs=2", "benchmark.tuning.n_startup_trials=1",
        "benchmark.tuning.prune_startup_trials=1", "benchmark.tuning.prune_warmup_epochs=1", "benchmark.tuning.epochs=1",
        "benchmark.tuning.random_search=[bptt]", "benchmark.neurobench_samples=8",
        f"data.root={shd_dir}", f"data.cache_dir={tmp_path / 'cache'}", *extra,
    ]


def test_studies_never_open_the_test_file_then_the_best_configuration_is_retrained_and_tested_once(tmp_path, shd_dir, capsys):
    test_file = shd_dir / "shd_test.h5"
    test_file.rename(tmp_path / "held_back.h5")  # the studies run without the test file
    out, failures = B.benchmark(tuning_argv(tmp_path, shd_dir, "benchmark.phases=[tune]"))
    assert failures == {}
    for name, sampler in (("tune-bptt", "tpe"), ("tune-bptt-random", "random")):
        done = yaml.safe_load((out / "studies" / name / "cell.yaml").read_text())
        row = done["row"]
        assert row["complete"] + row["pruned"] == 3 and row["failed"] == 0 and done["cell"]["info"]["sampler"] == sampler
        assert row["cpu_h"] > 0 and row["wall_h"] > 0 and done["commit"] and done["host"]
        assert set(row["best_params"]) and "model.hidden" not in row["best_params"]  # fixed: not searched
        assert "data.batch_size" not in row["best_params"] and len(done["history"]) == 3
        for trial in (out / "studies" / name).glob("trial-*"):
            assert yaml.safe_load((trial / "config.yaml").read_text())["test"] is False
            assert "test/" not in (trial / "metrics.csv").read_text()
    assert (out / "studies" / "tune-bptt" / "journal.log").is_file()
    text = (out / "table.md").read_text()
    assert "### Studies" in text and "tune-bptt-random" in text and "Budget per algorithm: 3 finished trials" in text
    assert (out / "tuning_history.png").stat().st_size > 1000

    (tmp_path / "held_back.h5").rename(test_file)
    capsys.readouterr()
    out, failures = B.benchmark(tuning_argv(tmp_path, shd_dir, "benchmark.phases=[tune,tuned]"))
    printed = capsys.readouterr().out
    assert failures == {} and printed.count("1 of 1 cells already done") == 2 and "accuracy tuned-bptt-h16-rec-s0" in printed
    rows = read_csv(out / "results.csv")
    assert [(r["setting"], r["algorithm"]) for r in rows] == [("tuned", "bptt")] and rows[0]["commit"]
    best = yaml.safe_load((out / "best_params.yaml").read_text())["tune-bptt"]
    cfg = yaml.safe_load((out / "cells" / "tuned-bptt-h16-rec-s0" / "config.yaml").read_text())
    assert cfg["trainer"]["max_epochs"] == 1 and cfg["optim"]["lr"] == best["optim.lr"] and cfg["test"] is True
    assert "## Each algorithm at its tuned best" in (out / "table.md").read_text()


def test_only_runs_the_named_cells_and_a_pattern_that_names_none_fails_before_any_file(tmp_path, shd_dir):
    with pytest.raises(UserError, match=r"benchmark.only: 'tune-nope' names no cell; .*tune-bptt"):
        B.benchmark(tuning_argv(tmp_path, shd_dir, "benchmark.phases=[tune,tuned]", "benchmark.only=[tune-nope]"))
    assert not (tmp_path / "out").exists()
    out, failures = B.benchmark(tuning_argv(tmp_path, shd_dir, "benchmark.phases=[tune,tuned]", "benchmark.only=[tune-bptt-random]"))
    assert failures == {} and sorted(p.name for p in (out / "studies").iterdir()) == ["tune-bptt-random"]
    assert not (out / "cells").exists()  # the main study has not run: nothing to retrain


# ----------------------------------------------------------------------------------------------
# Config and algorithm selection
# ----------------------------------------------------------------------------------------------


def test_unknown_benchmark_key_names_the_valid_keys():
    with pytest.raises(UserError, match=r"unknown config key 'benchmark.seed'; did you mean 'benchmark.seeds'\? valid keys under benchmark: .*seeds"):
        load_benchmark_config("tiny", ["benchmark.seed=3"])


def test_bad_benchmark_values_raise_one_line_errors():
    with pytest.raises(UserError, match=r"unknown algorithm 'bpt'"):
        load_benchmark_config("tiny", ["benchmark.algorithms=[bpt]"])
    with pytest.raises(UserError, match=r"benchmark.isolate=thread; choose one of"):
        load_benchmark_config("tiny", ["benchmark.isolate=thread"])
    with pytest.raises(UserError, match=r"benchmark.workers=0: must be an integer >= 1"):
        load_benchmark_config("tiny", ["benchmark.workers=0"])
    with pytest.raises(UserError, match=r"unknown benchmark 'nope'"):
        load_benchmark_config("nope")


def test_algorithm_that_does_not_import_is_skipped_with_the_reason(monkeypatch, capsys):
    from dataclasses import replace

    from spikebench.configs import ALGORITHMS
    broken = replace(ALGORITHMS["bptt"], name="broken", module="spikebench.algorithms.does_not_exist:Broken")
    monkeypatch.setitem(ALGORITHMS, "broken", broken)
    assert B.importable(load_benchmark_config("tiny"), ["bptt", "broken"]) == ["bptt"]
    assert "skipping broken: cannot import it (ModuleNotFoundError" in capsys.readouterr().out


def test_shipped_benchmarks_compose_for_every_algorithm():
    from spikebench.sweeps.benchmark.config import BENCH_DIR, variant

    for name in sorted(p.stem for p in BENCH_DIR.glob("*.yaml")):
        b = load_benchmark_config(name)
        for a in b.algorithms:
            cfg = compose_config(BC.algorithm_overrides(b, [], a))
            assert cfg.algorithm.name == variant(b, a)[0]
    fsdd = load_benchmark_config("fsdd")
    assert "experiment=fsdd" in fsdd.overrides and len(fsdd.seeds) >= 3 and set(fsdd.algorithms) >= {"bptt", "eventprop", "eprop", "paralif", "lstm"}


# ----------------------------------------------------------------------------------------------
# NeuroBench's definitions
# ----------------------------------------------------------------------------------------------


def test_synaptic_operations_effective_counts_nonzero_inputs_times_nonzero_fanout_dense_counts_all():
    w = torch.tensor([[1.0, 0.0, 2.0], [0.0, 0.0, 0.0], [3.0, 4.0, 5.0]])  # fan-outs 2, 0, 3
    spikes = torch.tensor([[[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])  # (1 sample, 2 steps, 3 inputs), binary
    counts = torch.tensor([[[2.0, 0.0, 1.0], [0.0, 0.0, 0.0]]])  # not binary
    ops = NB.synaptic_operations(Trace(connections=[Connection("a", w, spikes), Connection("b", w, counts)]))
    assert ops["Effective_ACs"] == (2 + 0) + 3  # step 1: inputs 0, 1; step 2: input 2
    assert ops["Effective_MACs"] == 2 + 3
    assert ops["Dense"] == 2 * (2 * 3 * 3)


def test_activation_sparsity_is_the_fraction_of_zero_activations_over_neurons_steps_and_samples():
    class Fixed(nn.Module):
        def trace(self, x):
            return Trace(activations=[x[..., :2], x[..., 2:]])

    x = torch.tensor([[[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]])
    m = NB.workload_metrics(Fixed(), [x, x])
    assert m["activation_sparsity"] == 5 / 8


def test_footprint_is_bytes_of_parameters_and_buffers_connection_sparsity_is_zero_weights_over_weights():
    lin = nn.Linear(4, 3)  # 12 weights + 3 biases, float32
    lin.register_buffer("state", torch.zeros(5, dtype=torch.float64))
    with torch.no_grad():
        lin.weight[0] = 0.0
    assert NB.footprint(lin) == (12 + 3) * 4 + 5 * 8
    assert NB.connection_sparsity(lin) == 4 / 12


def test_snn_trace_feeds_spikes_of_the_previous_step_to_the_recurrent_weights():
    from spikebench.algorithms import build_module
    from spikebench.datamodules import data_shape

    cfg = compose_config(["model.hidden=8", "data.duration=0.03"])
    module = build_module(cfg, data_shape(cfg))
    x = (torch.rand(2, 30, 700) < 0.1).float()
    tr = NB.trace(module, x)
    spikes = tr.activations[0]
    names = [c.name for c in tr.connections]
    assert names == ["w_in", "w_rec", "w_out"]
    assert torch.equal(tr.connections[1].inputs[:, 1:], spikes[:, :-1]) and not tr.connections[1].inputs[:, 0].any()


# ----------------------------------------------------------------------------------------------
# The LSTM reference
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("recurrent", [True, False])
def test_lstm_cell_equations_stepped_explicitly_equal_torch_lstm(recurrent):
    from spikebench.algorithms import build_module
    from spikebench.datamodules import data_shape

    cfg = compose_config(["algorithm=lstm", "model.hidden=6", "data.duration=0.02", "algorithm.layers=2",
                          f"model.recurrent={str(recurrent).lower()}"])
    module = build_module(cfg, data_shape(cfg))
    x = torch.rand(3, 20, 700)
    h, _ = module.net(x)
    trace = module.net.cell_trace(x)
    assert torch.allclose(trace[-1]["h"], h, atol=1e-5)


def test_feed_forward_lstm_keeps_its_hidden_to_gate_weights_at_zero_through_training():
    from spikebench.algorithms import build_module
    from spikebench.datamodules import data_shape

    cfg = compose_config(["algorithm=lstm", "model.hidden=6", "data.duration=0.02", "model.recurrent=false"])
    module = build_module(cfg, data_shape(cfg))
    opt = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=0.1)
    x, y = torch.rand(4, 20, 700), torch.randint(0, 20, (4,))
    module.loss_and_grads(x, y)
    opt.step()
    assert not module.net.lstm.weight_hh_l0.any()
    assert module.net.lstm.weight_ih_l0.grad is not None and module.net.lstm.weight_ih_l0.grad.abs().sum() > 0


def test_lstm_dense_synops_are_input_and_hidden_to_four_gates_three_cell_products_and_readout_per_step():
    from spikebench.algorithms import build_module
    from spikebench.datamodules import data_shape

    cfg = compose_config(["algorithm=lstm", "model.hidden=6", "data.duration=0.02"])
    module = build_module(cfg, data_shape(cfg))
    x = (torch.rand(2, 20, 700) < 0.05).float()
    m = NB.workload_metrics(module, [x])
    assert m["synops_dense"] == 20 * (700 * 24 + 6 * 24 + 3 * 6 + 6 * 20)
    # binary input: the input-to-gate operations are ACs, the rest (non-binary h, cell products) MACs
    assert m["synops_effective_acs"] == float((x != 0).sum()) * 24 / 2
    assert 0 < m["synops_effective_macs"] < m["synops_dense"] and m["activation_sparsity"] == 0.0


def test_a_database_password_in_the_command_is_masked_in_environment_yaml_and_the_tables_header():
    from spikebench.sweeps.benchmark.report import environment
    from spikebench.sweeps.storage import mask_password

    argv = ["benchmark=tiny", "benchmark.tuning.storage=postgresql+psycopg2://ann:s3cr:et@db-host:5432/optuna"]
    command = environment(argv, "test")["command"]
    assert "s3cr" not in command and "postgresql+psycopg2://ann:***@db-host:5432/optuna" in command
    assert mask_password("postgresql://ann@db-host/optuna") == "postgresql://ann@db-host/optuna"  # no password: as is


def test_a_variants_study_searches_its_algorithms_space_with_the_variants_overrides_fixed():
    from spikebench.sweeps.benchmark import tuning
    from spikebench.sweeps.benchmark.cells import plan

    b = load_benchmark_config("fsdd_additions")
    p = plan(b, [], list(b.algorithms))
    cells = {c.name: c for c in tuning.tune_cells(b, [], list(b.algorithms), p.configs)}
    study = cells["tune-eventprop_delays"]
    assert study.info["space"].endswith("eventprop.yaml") and "model.delays.enabled=true" in study.overrides
    assert study.info["study"] == "fsdd_additions-eventprop_delays"


def test_each_epochs_progress_line_shows_that_epochs_own_validation_accuracy(tmp_path):
    """The cell log's `epoch k/N: val acc …` line is epoch k's val/acc in metrics.csv (it once printed the previous
    epoch's, and nan for the first)."""
    argv = tiny_argv(tmp_path) + ["benchmark.seeds=[0]", "benchmark.phases=[table]", "benchmark.plots=false",
                                  "benchmark.algorithms=[bptt]", "trainer.max_epochs=3"]
    out, failures = B.benchmark(argv)
    assert not failures
    cell = out / "cells" / "bptt-h16-rec-s0"
    val = {int(r["epoch"]): float(r["val/acc"]) for r in read_csv(cell / "metrics.csv") if r.get("val/acc")}
    shown = [line.split("val acc ")[1].split(",")[0] for line in (out / "logs" / "bptt-h16-rec-s0.log").read_text()
             .splitlines() if "val acc" in line]
    assert shown == [f"{val[e]:.4f}" for e in range(3)]
