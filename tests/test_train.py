"""train.py: config composition, the one-line errors, and end-to-end runs."""

from __future__ import annotations

from spikebench.errors import UserError
import math
import re

import os
import subprocess
import sys

import pytest
import yaml

from spikebench import train
from conftest import FSDD, ROOT, overrides_for
from spikebench.train import ConfigError, compose_config


def test_group_choices_and_dotted_overrides_compose():
    cfg = compose_config(["algorithm=bptt", "data=shd", "model.hidden=512", "--optim.lr=0.01", "data.dt=2e-3"])
    assert cfg.algorithm.name == "bptt" and cfg.data.name == "shd" and cfg.data.n_classes == 20
    assert cfg.model.hidden == 512 and cfg.optim.lr == 0.01 and cfg.data.dt == 0.002


def test_unknown_key_names_the_key_and_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown config key 'model.hiden'; did you mean 'model.hidden'\?"):
        compose_config(["model.hiden=3"])


def test_unknown_group_choice_lists_the_choices():
    with pytest.raises(ConfigError, match=r"unknown algorithm 'bpt'; did you mean 'bptt'\? choose one of: .*bptt"):
        compose_config(["algorithm=bpt"])


def test_wrong_type_names_the_key_and_expected_type():
    with pytest.raises(ConfigError, match=r"model.hidden=.many.: expected int"):
        compose_config(["model.hidden=many"])
    with pytest.raises(ConfigError, match=r"model.recurrent=3: expected bool"):
        compose_config(["model.recurrent=3"])


def test_bad_value_and_bad_key_exit_with_one_line_on_stderr(tmp_path):
    for args in (["model.hiden=3"], ["algorithm.surrogate=nope", f"output_dir={tmp_path}"]):
        proc = subprocess.run([sys.executable, str(ROOT / "train.py"), *args], capture_output=True, text=True, cwd=tmp_path)
        assert proc.returncode == 2
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr


@pytest.mark.parametrize("args", [
    ["data=fsdd", "data.root=/nonexistent/data"],                 # a missing data root
    ["ckpt_path=/nonexistent/last.ckpt"],                          # a missing checkpoint
    ["optim.name=rmsprop"],                                        # an unknown optimiser
    ["algorithm=eprop", "loss.kind=max"],                          # a loss the algorithm does not offer
    ["model.hidden=0"],                                            # a size out of range
    ["data.val.speakers=3"],                                       # a number where a list belongs
    ["logger=wandb", "logger.mode=online"],                        # W&B online without an API key
    ["trainer.fast_dev_runn=true"],                                # a Trainer argument Lightning does not have
    ["trainer.max_epochs=ten"],                                    # a Trainer argument of the wrong type
    ["trainer.limit_train_batches=half"],
    ["trainer.devices=two"],                                       # refused by lightning.Trainer itself
    ["trainer.gradient_clip_val=1"],                               # manual optimisation: optim.grad_clip instead
    ["trainer.accumulate_grad_batches=2"],
    ["trainer.precision=16-mixed"],                                # mixed precision: refused
    ["optim.lr=nan"],                                              # numbers that are not finite
    ["model.tau_mem=inf"],
    ["loss.reg_strength=-inf"],
])
def test_bad_input_exits_2_with_one_line_and_leaves_no_run_folder(tmp_path, args):
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "WANDB_API_KEY"} | {"HOME": str(tmp_path)}  # no ~/.netrc key
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), *args, f"output_dir={out}",
                           f"data.cache_dir={tmp_path / 'cache'}"], capture_output=True, text=True, cwd=ROOT, env=env)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    assert not out.exists()


def chance_bound(n: int, p: float, alpha: float) -> float:
    """The accuracy that guessing (each of n answers right with probability p) exceeds with probability < alpha:
    the smallest k/n with P(Binomial(n, p) >= k) < alpha."""
    tail = 1.0
    for k in range(n + 1):
        if tail < alpha:
            return k / n
        tail -= math.comb(n, k) * p**k * (1 - p) ** (n - k)
    return 1.0


def test_end_to_end_bptt_on_generated_data_is_above_chance_at_p_below_1e_9(tmp_path, one_thread):
    cfg = compose_config(overrides_for(tmp_path, "trainer.max_epochs=4", "model.hidden=128"))
    results = train.run(cfg)
    bound = chance_bound(cfg.data.synthetic.n_test, 1 / cfg.data.n_classes, 1e-9)  # 20 classes, 500 test samples
    assert results["test/acc"] > bound, (bound, results)
    out = tmp_path / "run"
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["model"]["hidden"] == 128
    header = (out / "metrics.csv").read_text().splitlines()[0]
    for metric in ("train/loss_epoch", "val/acc", "train/rate_hz", "train/silent_frac", "train/synops",
                   "train/epoch_s", "train/samples_per_s", "train/saved_bytes", "train/step_mem_bytes"):
        assert metric in header
    assert (out / "checkpoints" / "best.ckpt").is_file() and (out / "checkpoints" / "last.ckpt").is_file()


def test_resume_from_checkpoint_continues_the_epoch_count(tmp_path):
    first = compose_config(overrides_for(tmp_path, "trainer.max_epochs=1", "trainer.limit_train_batches=2", "model.hidden=32"))
    train.run(first)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    second = compose_config(overrides_for(tmp_path / "b", "trainer.max_epochs=2", "trainer.limit_train_batches=2",
                                          "model.hidden=32", f"ckpt_path={ckpt}"))
    results = train.run(second)
    assert results["epochs"] == 2


def test_last_ckpt_is_the_last_completed_epoch_even_when_validation_accuracy_did_not_improve(tmp_path):
    """A learning rate too small to move a float32 weight: val/acc never improves after epoch 0, so best.ckpt
    stays at epoch 0, while last.ckpt (what resume= continues from) follows every epoch."""
    import torch

    cfg = compose_config(overrides_for(tmp_path, "trainer.max_epochs=3", "trainer.limit_train_batches=2",
                                       "model.hidden=16", "optim.lr=1e-30", "test=false"))
    train.run(cfg)
    load = lambda name: torch.load(tmp_path / "run" / "checkpoints" / name, weights_only=False)  # noqa: E731
    assert (load("best.ckpt")["epoch"], load("best.ckpt")["global_step"]) == (0, 2)
    assert (load("last.ckpt")["epoch"], load("last.ckpt")["global_step"]) == (2, 6)


def test_step_memory_of_the_first_training_step_is_logged_once_per_run(tmp_path):
    """train/step_mem_bytes appears in exactly one metrics.csv row and in the results, positive."""
    cfg = compose_config(overrides_for(tmp_path, "trainer.max_epochs=2", "trainer.limit_train_batches=2", "model.hidden=16"))
    results = train.run(cfg)
    lines = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    col = lines[0].split(",").index("train/step_mem_bytes")
    logged = [float(row.split(",")[col]) for row in lines[1:] if row.split(",")[col]]
    assert len(logged) == 1 and logged[0] > 0 and results["train/step_mem_bytes"] == logged[0]


def test_nan_loss_stops_with_a_clear_message(tmp_path):
    cfg = compose_config(overrides_for(tmp_path, "trainer.max_epochs=1", "model.hidden=16", "model.init.out_std=1e38",
                                       "trainer.limit_train_batches=3"))
    with pytest.raises(FloatingPointError, match="lower optim.lr"):
        train.run(cfg)


def test_wandb_logger_runs_offline_without_an_api_key(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", os.path.expanduser("~/.cache/torch_extensions"))  # keep the build cache
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    cfg = compose_config(overrides_for(tmp_path, "logger=wandb", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                                       "model.hidden=16"))
    train.run(cfg)
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))


@pytest.mark.skipif(not FSDD.exists(), reason="../shared/data/fsdd-spikes not present")
def test_short_run_on_fsdd_real_speech(tmp_path):
    cfg = compose_config(overrides_for(tmp_path, "data=fsdd", "data.dt=10e-3", "model.hidden=64", "trainer.max_epochs=1",
                                       "trainer.limit_train_batches=10"))
    results = train.run(cfg)
    assert 0.0 <= results["test/acc"] <= 1.0 and results["train/rate_hz"] > 0


def test_sigterm_stops_with_status_143_and_resume_ends_with_the_uninterrupted_runs_weights_bitwise(tmp_path):
    """Per-epoch seeded data order, augmentations and model sampling: the interrupted epoch is repeated exactly."""
    import signal
    import time

    import torch

    args = [sys.executable, str(ROOT / "train.py"), "model.hidden=32", "trainer.max_epochs=3", "test=false",
            "trainer.enable_progress_bar=false", f"data.cache_dir={tmp_path / 'cache'}", "data.augment.shift=5",
            "data.augment.dropout=0.1", "data.augment.blend_prob=0.2"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    subprocess.run([*args, f"output_dir={whole}"], check=True, capture_output=True, cwd=ROOT)
    proc = subprocess.Popen([*args, f"output_dir={cut}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    while not (cut / "checkpoints" / "last.ckpt").is_file():  # the first epoch is done: stop in the second
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert err.strip().splitlines()[-1].startswith("stopped: interrupted by SIGTERM")
    assert torch.load(cut / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] < 2
    resumed = subprocess.run([sys.executable, str(ROOT / "train.py"), f"resume={cut}"], capture_output=True, text=True,
                             cwd=ROOT)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = torch.load(whole / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    b = torch.load(cut / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    val = lambda run: [r.split(",")[0] for r in (run / "metrics.csv").read_text().splitlines()[1:]]  # noqa: E731
    assert val(whole) == val(cut)  # the rows of the epochs before the interruption are kept


def test_a_resumed_run_killed_before_its_end_keeps_every_earlier_epochs_metrics_at_the_next_resume(tmp_path):
    """Lightning's CSV logger deletes metrics.csv when a resumed fit starts; a resume that is then killed (SIGKILL,
    a stopped machine: no `finally`) must not lose the epochs before it. Lightning's part is played by hand here:
    the file rewritten with only the resumed fit's rows."""

    def log(epochs):  # what Lightning leaves in metrics.csv: one row per epoch, some columns empty
        lines = ["epoch,step,val/acc"] + [f"{e},{10 * e + 9},0.{e}" for e in epochs]
        (tmp_path / "metrics.csv").write_text("\n".join(lines) + "\n")

    def epochs():
        return [int(line.split(",")[0]) for line in (tmp_path / "metrics.csv").read_text().splitlines()[1:]]

    log(range(4))                              # a first fit, stopped after epoch 3
    train.keep_metrics_before(tmp_path, 3)     # resumed from epoch 3 ...
    log([4, 5, 6])                             # ... the logger starts afresh; killed in epoch 6 (checkpoint: 5)
    merge = train.keep_metrics_before(tmp_path, 5)
    log([6, 7])                                # the second resume runs to its end
    merge()
    assert epochs() == [0, 1, 2, 3, 4, 5, 6, 7]
    assert not (tmp_path / "metrics.kept.csv").exists()
    assert train.keep_metrics_before(tmp_path, None)() is None and epochs() == list(range(8))  # a fresh fit: no-op


def test_sigterm_at_an_epochs_end_stops_as_interrupted_not_as_a_silent_exit_with_status_0(tmp_path):
    """Lightning's own SIGTERM handler runs beside the suite's and checks at each epoch's end, before the suite's
    per-batch check: its SystemExit (status 0) would end a preempted run as if it had finished."""
    import signal

    from lightning.pytorch.callbacks import Callback

    class TermAtFirstEpochEnd(Callback):
        def on_train_epoch_end(self, trainer, module):
            if trainer.current_epoch == 0:
                os.kill(os.getpid(), signal.SIGTERM)

    run = tmp_path / "run"
    cfg = compose_config(overrides_for(tmp_path, "trainer.max_epochs=3", "trainer.limit_train_batches=2",
                                       "model.hidden=16", "test=false", f"output_dir={run}"))
    with pytest.raises(train.Interrupted, match="interrupted by SIGTERM"):
        train.run(cfg, callbacks=[TermAtFirstEpochEnd()])
    import torch
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == 0
    assert not (run / "results.yaml").exists()


def test_resume_refuses_another_network_and_a_checkpoint_of_another_algorithm(tmp_path):
    run = tmp_path / "run"
    train.run(compose_config(overrides_for(tmp_path, "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                                           "model.hidden=16", "test=false", f"output_dir={run}")))
    ckpt = run / "checkpoints" / "last.ckpt"
    with pytest.raises(UserError, match=r"was trained with model.hidden=16"):
        train.run(compose_config(overrides_for(tmp_path / "b", "model.hidden=32", f"ckpt_path={ckpt}")))
    with pytest.raises(UserError, match=r"was trained with algorithm.name=bptt"):
        train.run(compose_config(overrides_for(tmp_path / "c", "algorithm=eprop", "model.hidden=16", f"ckpt_path={ckpt}")))
    (tmp_path / "broken.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a readable spikebench checkpoint"):
        train.run(compose_config(overrides_for(tmp_path / "d", f"ckpt_path={tmp_path / 'broken.ckpt'}")))
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists() and not (tmp_path / "d").exists()


def test_evaluate_reports_accuracy_per_class_and_a_confusion_matrix_whose_diagonal_gives_the_accuracy(tmp_path, capsys):
    from spikebench import evaluate
    run = tmp_path / "run"
    results = train.run(compose_config(overrides_for(tmp_path, "trainer.max_epochs=1", "trainer.limit_train_batches=3",
                                                     "model.hidden=16", "plots=true")))
    assert evaluate.main([str(run)]) == 0
    printed = capsys.readouterr().out
    assert "accuracy" in printed and "confusion (rows: true class, columns: predicted):" in printed
    out = run / "eval" / "synthetic_test"
    saved = yaml.safe_load((out / "results.yaml").read_text())
    confusion = [[int(v) for v in line.split(",")] for line in (out / "confusion.csv").read_text().splitlines()]
    correct = sum(confusion[c][c] for c in range(len(confusion)))
    assert saved["samples"] == sum(map(sum, confusion)) == 500
    assert abs(saved["accuracy"] - correct / saved["samples"]) < 1e-6
    assert abs(saved["accuracy"] - results["test/acc"]) < 1e-6  # the best checkpoint, as train.py tested it
    assert all((run / f"{name}.png").stat().st_size > 10_000 for name in ("curves", "confusion", "samples"))  # plots=true
    assert evaluate.main([str(run), "model.hidden=32"]) == 2  # only the data may change
    assert "cannot change here" in capsys.readouterr().err


def test_predict_names_the_training_files_classes_and_its_top_1_agrees_with_the_test_accuracy(tmp_path, capsys):
    from spikebench import predict
    from spikebench.datamodules import read_spike_file
    from spikebench.datamodules.synthetic import ensure_synthetic

    cfg = compose_config(overrides_for(tmp_path, "trainer.max_epochs=1", "trainer.limit_train_batches=3", "model.hidden=16"))
    results = train.run(cfg)
    test_file = ensure_synthetic(cfg.data) / "synthetic_test.h5"
    ranked = predict.predict(tmp_path / "run", test_file, top=3)
    labels = read_spike_file(test_file).labels
    assert len(ranked) == len(labels) == 500 and all(len(r) == 3 for r in ranked)
    assert all(r[0][1] >= r[1][1] >= r[2][1] and sum(p for _, p in r) <= 1 + 1e-6 for r in ranked)
    hits = sum(r[0][0] == f"class-{y}" for r, y in zip(ranked, labels))  # the generator's extra/keys
    assert abs(hits / len(labels) - results["test/acc"]) < 1e-6
    assert predict.main([str(tmp_path / "run"), str(test_file), "--samples", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].split()[1].startswith("class-")


def test_a_run_saved_by_an_earlier_version_loads_with_the_defaults_of_keys_added_since(tmp_path):
    """config.yaml without `plots` (added later) and with trainer.progress_bar (renamed enable_progress_bar)."""
    from omegaconf import OmegaConf

    from spikebench.configs import load_run_config

    cfg = compose_config(["algorithm=eprop", "model.hidden=24"])
    old = OmegaConf.to_container(cfg, resolve=True)
    del old["plots"]
    old["trainer"]["progress_bar"] = old["trainer"].pop("enable_progress_bar")
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(old))
    loaded = load_run_config(tmp_path)
    assert loaded.plots is True and loaded.model.hidden == 24 and loaded.algorithm.name == "eprop"
    assert loaded.trainer.enable_progress_bar == cfg.trainer.enable_progress_bar and "progress_bar" not in loaded.trainer


@pytest.mark.skipif(not FSDD.exists(), reason="../shared/data/fsdd-spikes not present (the run is trained on it)")
def test_a_synthesised_word_goes_from_wav_through_the_cochlea_to_a_distribution_over_the_runs_classes(tmp_path):
    """A clip no data file holds (espeak-ng says "seven"), classified in one command: predict.py runs the cochlea
    model on the WAV, then the run's network. Asserts the pipeline and the output's form, not that it guesses right.
    Without espeak-ng the test skips, except in CI (.ci/run installs it), where that is a failure."""
    import shutil

    if not shutil.which("espeak-ng"):
        if os.environ.get("SPIKEBENCH_CI") or os.environ.get("CI"):
            pytest.fail("espeak-ng is missing in CI: .ci/run should have installed it")
        pytest.skip("espeak-ng not installed (apt-get install espeak-ng)")
    cfg = compose_config(overrides_for(tmp_path, "data=fsdd", "data.dt=10e-3", "model.hidden=16", "trainer.max_epochs=1",
                                       "trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "test=false"))
    train.run(cfg)
    clip = tmp_path / "seven.wav"
    subprocess.run(["espeak-ng", "-w", str(clip), "seven"], check=True, capture_output=True, timeout=60)
    done = subprocess.run([sys.executable, str(ROOT / "predict.py"), str(tmp_path / "run"), str(clip), "--top", "10"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    line, = done.stdout.strip().splitlines()
    name, *pairs = line.split()
    classes, probs = pairs[0::2], [float(p) for p in pairs[1::2]]
    digits = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]  # fsdd's extra/keys
    assert name == "seven.wav" and sorted(classes) == sorted(digits), line
    assert probs == sorted(probs, reverse=True) and abs(sum(probs) - 1) <= 0.005 * len(probs)  # softmax, printed to 0.01


def test_a_default_run_prints_its_progress_and_result_and_no_warning_or_library_chatter(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), "trainer.max_epochs=2", "model.hidden=32",
                           f"data.cache_dir={tmp_path / 'cache'}", f"data.root={tmp_path / 'synthetic'}", f"output_dir={out}"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = proc.stdout + proc.stderr
    assert "Epoch 1" in text and proc.stdout.strip().splitlines()[-1].startswith("test accuracy")
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)  # the progress bar's cursor movements
    bar = ("Training", "Epoch", "Validation", "Testing", "test accuracy")
    lines = [ln for ln in re.split(r"[\r\n]+", text) if ln.strip() and not ln.lstrip().startswith(bar)]
    assert lines == [], lines


def test_a_renamed_trainer_key_of_an_earlier_version_still_works_with_a_one_line_notice(tmp_path):
    cfg_lines = subprocess.run([sys.executable, "-c", "from spikebench.configs import compose_config as c; "
                                "print(c(['trainer.progress_bar=false']).trainer.enable_progress_bar)"],
                               capture_output=True, text=True, cwd=ROOT)
    assert cfg_lines.stdout.strip() == "False"
    assert cfg_lines.stderr.strip() == "note: trainer.progress_bar is now trainer.enable_progress_bar"


@pytest.mark.parametrize("cell", sorted((ROOT / "results").glob("*/cells/*/cell.yaml")), ids=lambda p: f"{p.parts[-4]}/{p.parts[-2]}")
def test_every_committed_cells_recorded_overrides_compose_at_head(cell):
    import yaml

    overrides = yaml.safe_load(cell.read_text())["cell"]["overrides"]
    compose_config(overrides)


@pytest.mark.parametrize("algorithm", ["bptt", "eventprop", "eprop", "paralif", "lstm"])
def test_evaluate_and_predict_work_for_every_algorithm_and_agree_with_the_test_accuracy(tmp_path, capsys, algorithm):
    from spikebench import evaluate, predict
    from spikebench.datamodules.synthetic import ensure_synthetic

    cfg = compose_config(overrides_for(tmp_path, f"algorithm={algorithm}", "trainer.max_epochs=1",
                                       "trainer.limit_train_batches=2", "model.hidden=16"))
    results = train.run(cfg)
    assert evaluate.main([str(tmp_path / "run")]) == 0
    saved = yaml.safe_load((tmp_path / "run" / "eval" / "synthetic_test" / "results.yaml").read_text())
    assert abs(saved["accuracy"] - results["test/acc"]) < 1e-6
    test_file = ensure_synthetic(cfg.data) / "synthetic_test.h5"
    ranked = predict.predict(tmp_path / "run", test_file, top=1, samples=20)
    assert len(ranked) == 20 and all(len(r) == 1 for r in ranked)


def test_predict_given_a_file_of_another_kind_says_which_kinds_it_reads(tmp_path, capsys):
    from spikebench import predict

    train.run(compose_config(overrides_for(tmp_path, "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                                           "model.hidden=16", "test=false")))
    (tmp_path / "notes.txt").write_text("not spikes")
    assert predict.main([str(tmp_path / "run"), str(tmp_path / "notes.txt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "neither an SHD-format file" in err[0] and "download" not in err[0]



def test_a_study_trials_run_folder_loads_like_any_run_its_trial_record_set_aside(tmp_path):
    from omegaconf import OmegaConf

    from spikebench.configs import load_run_config

    cfg = compose_config(["model.hidden=24"])
    saved = OmegaConf.to_container(cfg, resolve=True) | {"trial": {"study": "s", "number": 3, "params": {"optim.lr": 0.01}}}
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(saved))
    loaded = load_run_config(tmp_path)
    assert loaded.model.hidden == 24 and "trial" not in loaded
