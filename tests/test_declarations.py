"""configs/algorithms.py: each algorithm is declared once, and everything that depends on which algorithms exist
(the parser, the registry, the search spaces and W&B sweep files, the benchmark, the NIR export) reads that
declaration: the declarations agree with the classes and files they name, and a throwaway algorithm declared
in one place is seen by all of them."""

from __future__ import annotations

import dataclasses
import textwrap

import pytest
import torch
from omegaconf import MISSING, OmegaConf

from spikebench import export
from spikebench.algorithms import ClassifierModule, SpikingModule, build_module, get_algorithm
from spikebench.configs import ALGORITHMS, AlgorithmSpec, compose_config, declare, spec_of, undeclare
from spikebench.configs.algorithms import LOSSES, NEURONS, REG_FORMS
from spikebench.configs.schema import at_least
from spikebench.datamodules import data_shape
from spikebench.errors import ConfigError, UserError
from spikebench.sweeps import search_space
from spikebench.sweeps.benchmark.config import BenchmarkConfig, load_benchmark_config

TINY = ["model.hidden=6", "data.channels=12", "data.duration=0.03", "data.dt=2e-3"]


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_each_declaration_names_a_class_of_its_kind_defaults_with_exactly_its_keys_and_a_space_of_its_keys(name):
    spec = ALGORITHMS[name]
    cls = get_algorithm(name)
    assert issubclass(cls, ClassifierModule) and issubclass(cls, SpikingModule) == spec.spiking
    defaults = OmegaConf.load(spec.defaults_file)
    assert defaults.name == name == spec.settings().name
    assert set(defaults) == {f.name for f in dataclasses.fields(spec.settings)}, "defaults file and settings differ"
    cfg = compose_config([f"algorithm={name}"])
    space = search_space.load_space(search_space.space_path(name))
    assert search_space.space_path(name) == spec.space_file
    assert search_space.select(space, cfg, None, fixed=set())  # every key is one of this algorithm's config keys
    assert ("data.dt" in space and "model.integration" in space) == spec.spiking  # the neuron's clock is searched
    assert (search_space.WANDB / f"{name}.yaml").read_text() == search_space.wandb_sweep(name), (
        "the W&B sweep file is out of date: python -m spikebench.sweeps.search_space --write-wandb")
    assert (export.refusal(cfg) is None) == (spec.export is None)
    assert set(spec.losses) <= set(LOSSES) and set(spec.reg_forms) <= set(REG_FORMS) and spec.losses
    assert name in load_benchmark_config("tiny", [f"benchmark.algorithms=[{name}]"]).algorithms


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_an_algorithm_trains_a_step_with_every_loss_regulariser_form_and_neuron_it_declares_and_refuses_the_others(
        name, one_thread):
    spec = ALGORITHMS[name]
    cases = [(kind, form, "lif") for kind in LOSSES for form in REG_FORMS]
    cases += [(spec.losses[0], "gradient", neuron) for neuron in NEURONS if neuron != "lif"]
    for kind, form, neuron in cases:
        overrides = [f"algorithm={name}", f"loss.kind={kind}", f"loss.reg_form={form}", "loss.reg_strength=1e-3",
                     f"model.neuron={neuron}", *TINY]
        if kind not in spec.losses or form not in spec.reg_forms or (spec.spiking and neuron not in spec.neurons) or (
                not spec.spiking and neuron != "lif"):
            with pytest.raises(ConfigError, match=f"algorithm={name}"):
                compose_config(overrides)
            continue
        cfg = compose_config(overrides)
        module = build_module(cfg, data_shape(cfg))
        shape = module.data_shape
        x = (torch.rand(3, int(round(shape.duration / shape.dt)), shape.n_in) < 0.5).float()  # dense: every network fires
        out = module.forward_backward(x, torch.tensor([0, 1, 2]) % shape.n_classes)
        grads = [p.grad for p in module.parameters() if p.requires_grad]
        assert torch.isfinite(out.loss) and any(g is not None and g.abs().sum() > 0 for g in grads), (kind, form)
        if neuron == "adlif":
            assert all(g is not None for g in (p.grad for p in module.net.adaptive.parameters()))


@dataclasses.dataclass
class Toy:  # a throwaway algorithm's block: BPTT's keys under another name
    name: str = "toy"
    surrogate: str = MISSING
    slope: float = at_least(0.0, above=True)
    detach_reset: bool = MISSING


@pytest.fixture
def toy(tmp_path):
    defaults = tmp_path / "toy.yaml"
    defaults.write_text("name: toy\nsurrogate: arctan\nslope: 5.0\ndetach_reset: true\n")
    space = tmp_path / "toy_space.yaml"
    space.write_text(textwrap.dedent("""\
        optim.lr:        {low: 1.0e-3, high: 1.0e-2, log: true}
        algorithm.slope: {low: 1.0, high: 20.0}
        data.dt:         {choices: [1.0e-3, 2.0e-3]}
        model.integration: {choices: [held, exact]}
        """))
    spec = AlgorithmSpec("toy", "spikebench.algorithms.bptt:BPTT", Toy, "a throwaway: BPTT under another name",
                         export="toy networks are not exported", losses=("sum",), defaults=defaults, space=space)
    declare(spec)
    yield spec
    undeclare("toy")


def test_a_throwaway_algorithm_declared_once_is_seen_by_parser_registry_spaces_benchmark_and_export(toy, tmp_path):
    cfg = compose_config(["algorithm=toy", "loss.kind=sum", "algorithm.slope=7"])
    assert cfg.algorithm.name == "toy" and cfg.algorithm.surrogate == "arctan" and cfg.algorithm.slope == 7.0
    with pytest.raises(UserError, match="algorithm.slope"):  # its settings' types and ranges
        compose_config(["algorithm=toy", "loss.kind=sum", "algorithm.slope=-1"])
    with pytest.raises(UserError, match="loss.kind=sum_exp is not supported by algorithm=toy"):  # its capabilities
        compose_config(["algorithm=toy"])
    assert get_algorithm("toy").__name__ == "BPTT"
    module = build_module(cfg, data_shape(cfg))
    assert module.cfg.algorithm.name == "toy"
    assert search_space.space_path("toy") == toy.space
    assert set(search_space.select(search_space.load_space(toy.space), cfg, None, fixed=set())) == {
        "optim.lr", "algorithm.slope", "data.dt", "model.integration"}
    sweep = search_space.wandb_sweep("toy")
    assert "algorithm: {value: toy}" in sweep and "algorithm.slope: {distribution: uniform, min: 1.0, max: 20.0}" in sweep
    assert load_benchmark_config("tiny", ["benchmark.algorithms=[toy,bptt]"]).algorithms == ["toy", "bptt"]
    assert "toy" in BenchmarkConfig().algorithms  # a benchmark without an `algorithms:` list runs every declared one
    assert export.refusal(cfg) == "algorithm=toy cannot be exported: toy networks are not exported"
    with pytest.raises(ConfigError, match="already declared"):
        declare(toy)


def test_an_undeclared_or_half_declared_algorithm_is_refused_in_one_line(tmp_path):
    with pytest.raises(UserError, match="unknown algorithm 'toy'"):
        compose_config(["algorithm=toy"])
    with pytest.raises(UserError, match="benchmark.algorithms: unknown algorithm 'toy'"):
        load_benchmark_config("tiny", ["benchmark.algorithms=[toy]"])
    missing = AlgorithmSpec("toy", "spikebench.algorithms.bptt:BPTT", Toy, "no files", defaults=tmp_path / "none.yaml")
    with pytest.raises(ConfigError, match="defaults file .* does not exist"):
        declare(missing)
    with pytest.raises(ConfigError, match="one of the suite's own"):
        undeclare("bptt")
    assert spec_of("bptt").spiking and not spec_of("lstm").spiking
