"""What every training algorithm shares: the network, the objective, the optimiser, metrics and logging.

A spiking algorithm subclasses `SpikingModule` (the shared network; the non-spiking reference subclasses
`ClassifierModule`, which holds all the rest) and implements one method, `forward_backward(x, y)`, which
computes the loss and leaves in each parameter's `.grad` the gradient as that algorithm defines it
(autograd with surrogate gradients, an adjoint system, eligibility traces, ...). Training therefore uses
Lightning's manual optimisation: zero the grads, `forward_backward`, step. The run's first training step is
also measured: its step memory (algorithms/measure.py), logged once per run as `train/step_mem_bytes`.
"""

from __future__ import annotations

import abc
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from spikebench.errors import ConfigError
from spikebench.events import as_frames, batch_nbytes

from .adlif import AdLIFRanges
from .delays import InputDelays
from .distributed import BatchMean, average_gradients, reduce_over_processes, world_size
from .losses import Objective
from .measure import step_memory
from .metrics import Activity, MeanMetric, MulticlassAccuracy, MulticlassConfusionMatrix, activity_stats
from .network import SNN, InitParams
from .neuron import LIFParams
from .trace import Connection, Trace, previous_step


STAGES = ("train", "val", "test")
OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
SCHEDULERS = ("none", "cosine")


@dataclass
class StepOutput:
    """What one training step reports: loss, logits (batch, classes), hidden spikes per neuron (batch, hidden).

    Cost figures, when measured: `step_mem_bytes`, the step memory (algorithms/measure.py: peak tensor memory
    allocated during the step), the suite's memory figure; `saved_bytes`, the bytes saved for backward
    (saved-tensor hooks; bookkeeping, not memory), kept as a second, labelled figure.
    """

    loss: torch.Tensor
    logits: torch.Tensor
    hidden_counts: torch.Tensor
    saved_bytes: int | None = None  # saved for backward (hooks); None: counted by the base class's meter
    step_mem_bytes: int | None = None  # step memory (measure.step_memory); None: not measured


class SavedTensorMeter:
    """Counts the bytes of the tensors autograd saves for backward (saved-tensor hooks), parameters excluded.

    Bookkeeping, not memory: it sees only what goes through the graph's saved tensors (`ctx.save_for_backward`
    and built-in ops), not the temporaries of the forward pass nor the buffers a custom backward pass allocates,
    and it counts inputs that an operation saves, the batch included (BPTT's `x @ W_in` saves x). Each storage is
    counted once, however many nodes save it. The suite's memory figure is `algorithms.measure.step_memory`.
    """

    def __init__(self, exclude: list[torch.Tensor]) -> None:
        self._exclude = {t.data_ptr() for t in exclude}
        self._seen: set[int] = set()
        self.bytes = 0

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in self._exclude and ptr not in self._seen:
            self._seen.add(ptr)
            self.bytes += t.untyped_storage().nbytes()
        # a detached view of the same storage (no copy): returning t itself would make an operation's saved output
        # hold its own grad_fn, a reference cycle in C++ that Python's collector cannot break, so that a graph
        # never back-propagated (STDP's plastic epochs build one for the readout's loss) would never be freed
        return t.detach()

    def __enter__(self) -> "SavedTensorMeter":
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._hooks.__exit__(*exc)


@dataclass(frozen=True)
class DataShape:
    """What a module knows of its data, handed over by the datamodule side (`datamodules.data_shape(cfg)`):
    inputs per step, classes, seconds per step (the network's clock) and seconds per sample; and, once the training
    file is read (train.run), its class names (`extra/keys`), which the checkpoints carry for predict.py."""

    n_in: int
    n_classes: int
    dt: float
    duration: float
    class_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.class_names is not None:  # a list when read back from a checkpoint's hyperparameters
            object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))


def adlif_ranges(cfg: DictConfig) -> AdLIFRanges | None:
    """The adLIF parameters' ranges of `model.neuron=adlif` (`model.adlif`), None for the plain LIF neuron."""
    m = cfg.model
    if m.get("neuron", "lif") != "adlif":
        return None
    r = m.adlif
    return AdLIFRanges(tuple(r.tau_u), tuple(r.tau_w), tuple(r.a), tuple(r.b), float(r.coupling))


def input_delays(cfg: DictConfig, data: DataShape) -> InputDelays | None:
    """The input channels' delays of `model.delays` (None when off)."""
    d = cfg.model.get("delays")
    if d is None or not d.enabled:
        return None
    return InputDelays(data.n_in, float(d.max), data.dt, str(d.init), bool(d.learn))


def lif_params_from_config(cfg: DictConfig, dt: float) -> tuple[LIFParams, LIFParams]:
    """Hidden and readout neuron parameters on the data's clock dt (one clock for all).

    `model.backend` (auto | reference | triton | cpu) picks how the recurrence is computed (algorithms/kernels);
    `model.integration` (held | exact) the input gain γ of a step (neuron.py).
    """
    m = cfg.model
    hidden = LIFParams(dt, m.tau_mem, m.tau_syn, m.threshold, m.v_reset, m.backend, m.integration)
    readout = LIFParams(dt, m.tau_mem_out, m.tau_syn_out, m.threshold, m.v_reset, m.backend, m.integration)
    return hidden, readout


class ClassifierModule(L.LightningModule, abc.ABC):
    """A network trained on the labels with its algorithm's gradient: objective, optimiser, manual optimisation,
    metrics and cost figures. Subclasses provide the network (`build_network`) and the step (`forward_backward`)."""

    def heuristics(self) -> list[str]:
        """What of the algorithm's weight change is not the gradient of the loss (surrogates, lifts, pushes),
        named for the benchmark table; [] for an exact gradient."""
        return []

    def __init__(self, cfg: DictConfig | dict, data: DataShape | dict) -> None:
        super().__init__()
        cfg = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
        self.data_shape = data = DataShape(**data) if isinstance(data, dict) else data
        self.save_hyperparameters({"cfg": OmegaConf.to_container(cfg, resolve=True), "data": asdict(data)})
        self.cfg = cfg
        self.automatic_optimization = False
        self.net = self.build_network(cfg)
        if cfg.optim.name not in OPTIMIZERS:
            raise ConfigError(f"unknown optim.name '{cfg.optim.name}'; choose one of: {', '.join(OPTIMIZERS)}")
        if cfg.optim.scheduler not in SCHEDULERS:
            raise ConfigError(f"unknown optim.scheduler '{cfg.optim.scheduler}'; choose one of: {', '.join(SCHEDULERS)}")
        self.objective = Objective(cfg.loss.kind, cfg.loss.reg_strength, cfg.loss.reg_target, BatchMean())
        self._step_mem_bytes: int | None = None  # the step memory of the run's first training step
        self._step_mem_logged = False
        self._batch_bytes = 0  # the bytes of that step's input batch, as it received it (data.format)
        n_classes = data.n_classes
        # one accuracy and one activity metric per stage ("train" cannot be a ModuleDict key: Module.train)
        self.epoch_metrics = torch.nn.ModuleDict({
            **{f"{s}_acc": MulticlassAccuracy(n_classes, average="micro") for s in STAGES},
            **{f"{s}_loss": MeanMetric().set_dtype(torch.float64) for s in STAGES},  # sums of float64, whatever the precision
            **{f"{s}_activity": Activity(self.net.n_hidden) for s in STAGES},
        })
        self.test_confusion = MulticlassConfusionMatrix(n_classes)
        self.confusion: torch.Tensor | None = None  # the last test's confusion matrix (true class × predicted)
        self.test_predictions: list[torch.Tensor] = []  # the last test's (label, predicted class) rows, in load order
        self._clock = {s: (time.perf_counter(), 0, 0) for s in STAGES}  # (start, samples, saved bytes), this process

    # -- what an algorithm provides -------------------------------------------------------------

    @abc.abstractmethod
    def build_network(self, cfg: DictConfig) -> torch.nn.Module:
        """The network: a module with n_hidden, simulate(x) → (hidden activity, readout voltages) and
        synops_per_spike() → (targets per input event, per hidden event)."""

    @abc.abstractmethod
    def forward_backward(self, x: torch.Tensor, y: torch.Tensor) -> StepOutput:
        """Loss on the batch, with each parameter's `.grad` set by the algorithm. x: (batch, time, inputs)."""

    def simulate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden spikes (batch, time, hidden) and readout voltages (batch, time, classes), no gradients."""
        return self.net.simulate(x)

    @abc.abstractmethod
    def trace(self, x: torch.Tensor) -> Trace:
        """One execution on x (batch, time, inputs): each connection with its inputs, the neuron activations
        (algorithms/trace.py; what NeuroBench's workload metrics count)."""

    # -- the common handle -------------------------------------------------------------------

    def loss_and_grads(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Zero the grads, then return the loss and leave the algorithm's gradient in every `.grad`."""
        for prm in self.parameters():
            prm.grad = None
        return self.measured_step(x, y).loss

    def measured_step(self, x: torch.Tensor, y: torch.Tensor, memory: bool = False) -> StepOutput:
        """`forward_backward` with its cost figures: `saved_bytes` always, `step_mem_bytes` when `memory`.

        The step memory (measure.step_memory) counts what the step allocates beyond what exists before it, so
        set the grads to None first (as training does) for the gradients to be counted alike for every algorithm.
        """
        meter = SavedTensorMeter(exclude=list(self.parameters()))

        def step() -> StepOutput:
            with meter:
                return self.forward_backward(x, y)

        if memory:
            measured = step_memory(step, x.device)
            out = measured.value
            out.step_mem_bytes = measured.peak_bytes
        else:
            out = step()
        if out.saved_bytes is None:
            out.saved_bytes = meter.bytes
        return out


    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> StepOutput:
        """Loss and logits without gradients (validation and test)."""
        spikes, v_out = self.simulate(x)
        loss, logits = self.objective(v_out, spikes, y)
        return StepOutput(loss.detach(), logits.detach(), spikes.sum(1))

    # -- Lightning -----------------------------------------------------------------------------

    def configure_optimizers(self):
        o = self.cfg.optim
        opt = OPTIMIZERS[o.name](self.parameters(), lr=o.lr, weight_decay=o.weight_decay)
        if o.scheduler == "none":
            return opt
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, self.trainer.max_epochs or 1))
        return {"optimizer": opt, "lr_scheduler": sched}

    def training_step(self, batch, batch_idx):
        x, y = batch
        opt = self.optimizers()
        opt.zero_grad(set_to_none=True)
        # the run's first training step is measured: its step memory, logged once (on_train_epoch_end)
        with self.objective.batch_mean.global_batch():  # several processes: the regulariser's batch means are global
            out = self.measured_step(x, y, memory=self._step_mem_bytes is None)
        average_gradients(self.parameters())  # several processes: every algorithm's gradient, however computed
        if out.step_mem_bytes is not None:  # with the batch's bytes as the step received it (frames or events)
            self._step_mem_bytes, self._step_mem_logged = out.step_mem_bytes, False
            self._batch_bytes = batch_nbytes(x)
        if not torch.isfinite(out.loss):
            raise FloatingPointError(
                f"loss is {out.loss.item()} at epoch {self.current_epoch}, batch {batch_idx}; "
                "lower optim.lr or set optim.grad_clip (checkpoints saved so far are kept)"
            )
        if self.cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.parameters(), self.cfg.optim.grad_clip)
        opt.step()
        self.after_optimizer_step()
        self._record(out, x, y, "train")
        # the epoch's training loss: the mean over steps of the step's loss on the global batch (the processes step
        # together, so this collective is in the same place on each; evaluation steps have no such lockstep)
        self.epoch_metrics["train_loss"].update(reduce_over_processes(float(out.loss), "sum", self.device) / world_size())
        # this process's batch, for the progress bar: no collective (see _end_epoch)
        self.log("train/loss_step", out.loss.detach(), prog_bar=True)
        self.log("train/acc_step", (out.logits.argmax(-1) == y).float().mean(), prog_bar=True)

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, "test")

    def _eval_step(self, batch, stage: str) -> None:
        x, y = batch
        out = self.evaluate(x, y)
        self._record(out, x, y, stage)
        if stage == "test":
            self.test_confusion.update(out.logits, y)
            self.test_predictions.append(torch.stack([y, out.logits.argmax(-1)], dim=1).cpu())

    @property
    def class_names(self) -> tuple[str, ...] | None:
        """The training file's class names (`DataShape.class_names`), None if it has none."""
        return self.data_shape.class_names

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if self.data_shape.class_names is None and checkpoint.get("class_names"):  # saved by earlier versions
            self.data_shape = replace(self.data_shape, class_names=tuple(checkpoint["class_names"]))

    # -- activity, cost and memory statistics per epoch ---------------------------------------

    def _record(self, out: StepOutput, x: torch.Tensor, y: torch.Tensor, stage: str) -> None:
        self.epoch_metrics[f"{stage}_acc"].update(out.logits.detach(), y)
        if stage != "train":  # validation and test: weighted by batch (batches may differ between processes)
            self.epoch_metrics[f"{stage}_loss"].update(out.loss.detach(), len(y))
        self.epoch_metrics[f"{stage}_activity"].update(out.hidden_counts, x)
        t0, samples, saved = self._clock[stage]
        self._clock[stage] = (t0, samples + x.shape[0], max(saved, out.saved_bytes or 0))

    def _start_epoch(self, stage: str) -> None:
        for kind in ("acc", "loss", "activity"):
            self.epoch_metrics[f"{stage}_{kind}"].reset()
        self._clock[stage] = (time.perf_counter(), 0, 0)

    def _epoch_stats(self, stage: str) -> dict[str, float]:
        """Spike statistics of the epoch (over all processes), and this process's speed and bookkeeping."""
        totals = self.epoch_metrics[f"{stage}_activity"].compute()
        stats = activity_stats(totals, self.data_shape.duration, self.net.synops_per_spike())
        if not stats:
            return {}
        t0, samples, saved = self._clock[stage]
        wall = time.perf_counter() - t0
        stats.update(epoch_s=wall, samples_per_s=samples / max(wall, 1e-9))
        if stage == "train":
            stats["saved_bytes"] = float(saved)  # saved for backward (hooks; bookkeeping, not memory)
            if self.device.type == "cuda":  # the process's allocator peak: model, optimiser and batch included
                stats["gpu_peak_bytes"] = float(torch.cuda.max_memory_allocated(self.device))
        return stats

    def on_train_epoch_start(self) -> None:
        self._start_epoch("train")
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def on_validation_epoch_start(self) -> None:
        self._start_epoch("val")

    def on_test_epoch_start(self) -> None:
        self._start_epoch("test")
        self.test_confusion.reset()
        self.test_predictions = []

    def _log_epoch(self, name: str, value: float) -> None:
        """An epoch figure, over processes when there are several: the activity statistics, accuracy and loss are
        already global (equal on every process), samples per second add up, times and memory are the largest
        process's. Logged as a plain value: every collective happens here, in the module's epoch-end hooks, in the
        same order on every process — a value logged with `sync_dist` would be reduced whenever a callback first
        reads it, and the progress bar reads on the first process only, so the processes' collectives would
        cross and wait for each other for ever."""
        how = {"samples_per_s": "sum", "epoch_s": "max", "saved_bytes": "max", "step_mem_bytes": "max", "batch_bytes": "max",
               "gpu_peak_bytes": "max"}.get(name.split("/")[-1])
        value = reduce_over_processes(float(value), how, self.device) if how else float(value)
        self.log(name, torch.tensor(value, dtype=torch.float64), prog_bar=name == "val/acc")  # a float would become float32

    def _end_epoch(self, stage: str) -> dict[str, float]:
        """The epoch's global accuracy and mean loss (collectives, on every process) and its other statistics."""
        acc = float(self.epoch_metrics[f"{stage}_acc"].compute())
        loss = float(self.epoch_metrics[f"{stage}_loss"].compute())
        suffix = "_epoch" if stage == "train" else ""  # train/loss_step and train/acc_step are the batches'
        self._log_epoch(f"{stage}/acc{suffix}", acc)
        self._log_epoch(f"{stage}/loss{suffix}", loss)
        return self._epoch_stats(stage)

    def after_optimizer_step(self) -> None:
        """Called after every optimiser step: parameters that live in ranges go back into them (default: none)."""

    def after_training_epoch(self, hidden_counts: torch.Tensor) -> None:
        """An algorithm's rule applied once per training epoch, given the epoch's spikes per hidden neuron summed
        over the processes (equal on every process). Default: none (EventProp: its silent-neuron lift)."""

    def on_train_epoch_end(self) -> None:
        for k, v in self._end_epoch("train").items():
            self._log_epoch(f"train/{k}", v)
        totals = self.epoch_metrics["train_activity"].compute()  # reduced by _end_epoch; cached by torchmetrics
        if float(totals["samples"]) > 0:
            self.after_training_epoch(totals["counts"].to(torch.float32))
        if self._step_mem_bytes is not None and not self._step_mem_logged:
            self._log_epoch("train/step_mem_bytes", float(self._step_mem_bytes))  # once per run
            self._log_epoch("train/batch_bytes", float(self._batch_bytes))
            self._step_mem_logged = True
        sched = self.lr_schedulers()
        if sched is not None:
            sched.step()

    def on_validation_epoch_end(self) -> None:
        for k, v in self._end_epoch("val").items():
            if k in ("rate_hz", "silent_frac", "synops"):
                self._log_epoch(f"val/{k}", v)

    def on_test_epoch_end(self) -> None:
        for k, v in self._end_epoch("test").items():
            if k in ("rate_hz", "silent_frac", "synops", "samples_per_s"):
                self._log_epoch(f"test/{k}", v)
        self.confusion = self.test_confusion.compute().cpu()


class SpikingModule(ClassifierModule):
    """The shared spiking network (network.SNN: LIF hidden layer with exponential synapses, leaky-integrator
    readouts); an algorithm with its own neuron form (ParaLIF) returns a module with the same interface."""

    def build_network(self, cfg: DictConfig) -> SNN:
        hidden, readout = lif_params_from_config(cfg, self.data_shape.dt)
        return SNN(
            n_in=self.data_shape.n_in,
            n_hidden=cfg.model.hidden,
            n_out=self.data_shape.n_classes,
            recurrent=cfg.model.recurrent,
            hidden=hidden,
            readout=readout,
            init=InitParams(**cfg.model.init),
            adaptive=adlif_ranges(cfg),
            delays=input_delays(cfg, self.data_shape),
        )

    def after_optimizer_step(self) -> None:
        self.net.constrain()  # SNN and an algorithm's own network (ParaLIF's) each say what lives in a range

    @torch.no_grad()
    def trace(self, x: torch.Tensor) -> Trace:
        """x → W_in, s[t-1] → W_rec, s[t] → W_out, with the spikes s of the algorithm's own `simulate`."""
        spikes, _ = self.simulate(x)
        net = self.net
        out = Trace(activations=[spikes])
        out.connections.append(Connection("w_in", net.w_in, as_frames(x)))
        if net.w_rec is not None:
            out.connections.append(Connection("w_rec", net.w_rec, previous_step(spikes)))
        out.connections.append(Connection("w_out", net.w_out, spikes))
        return out
