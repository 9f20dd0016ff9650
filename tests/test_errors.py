"""User errors are one line and stop; bugs keep their traceback (spikebench/errors.py): in train.py and in a study."""

from __future__ import annotations

from pathlib import Path

import pytest
from optuna.trial import TrialState

from spikebench import train
from spikebench.sweeps import optimize

from test_sweeps import data_root, tiny  # noqa: F401 - the studies' tiny run and its data folder (a fixture)


def test_a_bug_deep_in_the_code_keeps_its_traceback_while_a_user_error_is_one_line(monkeypatch, capsys):
    def bug(cfg, callbacks=None, command=None):
        raise ValueError("an internal inconsistency")  # not the user's doing: no one-line 'error:'

    monkeypatch.setattr(train, "run", bug)
    with pytest.raises(ValueError, match="internal inconsistency"):
        train.main(["trainer.max_epochs=1"])
    assert train.main(["model.hidden=0"]) == 2
    assert capsys.readouterr().err.startswith("error: model.hidden=0")


def test_a_bug_in_a_trial_fails_that_trial_with_its_traceback_and_the_study_goes_on_a_user_error_stops_it(
        tmp_path, data_root, monkeypatch, capsys):
    from spikebench.errors import ConfigError

    calls = []

    def first_raises(cfg, callbacks=None, command=None, original=optimize.run):
        calls.append(cfg.output_dir)
        if len(calls) == 1:
            raise KeyError("a bug deep in the code")
        return original(cfg, callbacks=callbacks, command=command)

    monkeypatch.setattr(optimize, "run", first_raises)
    argv = [*tiny(data_root, epochs=1), f"sweep.out_dir={tmp_path / 'a'}", "sweep.sampler=random", "sweep.pruner=none",
            "sweep.n_trials=2", "logger=csv"]
    study = optimize.optimize(argv)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.FAIL) == 1 and states.count(TrialState.COMPLETE) == 2
    assert "KeyError: 'a bug deep in the code'" in (Path(calls[0]) / "error.log").read_text()

    def config_error(cfg, callbacks=None, command=None):
        raise ConfigError("model.x=3: a value the user chose")

    monkeypatch.setattr(optimize, "run", config_error)
    capsys.readouterr()
    argv = [*tiny(data_root, epochs=1), f"sweep.out_dir={tmp_path / 'b'}", "sweep.sampler=random", "sweep.pruner=none",
            "sweep.n_trials=3", "sweep.study_name=b", "logger=csv"]
    assert optimize.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "error: model.x=3: a value the user chose"


def test_an_unquoted_star_pattern_in_a_list_override_is_a_one_line_error_that_shows_the_quoting():
    """`[*bptt*]` is a YAML alias, not a list of one pattern: the benchmark once read it as the string '[*bptt*]'
    and said 'expected a list, e.g. [[*bptt*]]'. The message now names the cause and the quoted form; the quoted
    form reads as a list, and a plain string value still reads as itself."""
    from spikebench.configs.parse import parse_item
    from spikebench.errors import ConfigError

    with pytest.raises(ConfigError, match=r"quote items that start with \*.*\['\*bptt\*'\]"):
        parse_item("benchmark.only=[*bptt*]")
    assert parse_item("benchmark.only=['*bptt*']") == ("benchmark.only", ["*bptt*"])
    assert parse_item("data.root=~/data/*shd") == ("data.root", "~/data/*shd")
