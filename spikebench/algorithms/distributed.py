"""Training on several processes (`trainer.devices=N`, Lightning's DDP; gloo on CPU, NCCL on GPU).

Every algorithm computes its gradient its own way (autograd, an adjoint written by hand, eligibility traces), and
training uses manual optimisation, in which Lightning turns DDP's gradient hooks off. So the suite reduces over
processes itself, in two places, and N processes, each with a batch of B samples, take the step that one process
takes on the global batch of N·B samples (when the data split evenly, see datamodules.spikes.EpochShuffle):

1. `average_gradients`, after the algorithm's `forward_backward` and before clipping and the optimiser step: the
   mean of the processes' gradients. Each process's loss is a mean over its own B samples, so the mean of the N
   gradients is the gradient of the mean over all N·B samples.
2. `BatchMean`, for a batch statistic that enters the loss nonlinearly: the spike-count regulariser
   c · mean_j (N̄_j − ν)², with N̄_j the batch-mean count of neuron j. Averaging N regularisers of local means
   is not the regulariser of the global mean, so inside the training step (`BatchMean.global_batch()`) N̄ is
   reduced over processes first. Its value is the global mean; its gradient is that of the local mean, 1/B per
   sample, so that step 1's division by N leaves the global 1/(N·B).

Epoch metrics (accuracy, spike rate, SynOps, the silent-neuron counts of EventProp's lift) are torchmetrics whose
states are summed over processes (algorithms.metrics). Outside it (validation, test,
single-process runs) nothing here communicates.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist

def world_size() -> int:
    """Number of training processes: 1 unless torch.distributed is initialised."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class BatchMean:
    """Means over the batch (dim 0) of a statistic: of the processes' global batch inside `global_batch()` on
    several processes, of the process's own batch otherwise. A module owns one and hands it to its `Objective` (and
    EventProp to its autograd node's setup) at construction; the module's training step enters `global_batch()`.
    A flag on this object, not an argument of every call, because the regulariser is reached from inside autograd
    nodes and loss helpers that the step calls, whose signatures are the algorithm's own."""

    def __init__(self) -> None:
        self.over_processes = False

    @contextmanager
    def global_batch(self) -> Iterator[None]:
        """Inside: means are of the global batch (a collective: every process must be in a training step)."""
        previous, self.over_processes = self.over_processes, world_size() > 1
        try:
            yield
        finally:
            self.over_processes = previous

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        """Mean over dim 0: the global batch's value with the local mean's gradient inside `global_batch()` on several
        processes; of `t` itself otherwise."""
        local = t.mean(0)
        if not self.over_processes:
            return local
        return local + (self.of_sums(t.detach().sum(0), t.shape[0]) - local).detach()

    def of_sums(self, total: torch.Tensor, n: int) -> torch.Tensor:
        """`total / n`, with `total` and `n` summed over the processes inside `global_batch()` (a value, no gradient):
        the batch mean of a statistic of which a process holds the sum over its own n samples."""
        if not self.over_processes:
            return total / n
        buf = torch.cat([total.detach().reshape(-1).double(), total.new_full((1,), n, dtype=torch.float64)])
        dist.all_reduce(buf)
        return (buf[:-1] / buf[-1]).view_as(total).to(total.dtype)


def reduce_over_processes(value: float, how: str, device: torch.device | None = None) -> float:
    """`value` summed (how="sum") or maximised (how="max") over the processes; `value` itself on one. `device`: where
    the backend reduces (NCCL: the process's GPU)."""
    if world_size() == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM if how == "sum" else dist.ReduceOp.MAX)
    return float(t)


def mean_over_processes(t: torch.Tensor) -> torch.Tensor:
    """The mean of `t` over the processes (in place; a collective); `t` itself on one."""
    n = world_size()
    if n > 1:
        dist.all_reduce(t)
        t /= n
    return t


def average_gradients(params: Iterable[torch.Tensor]) -> None:
    """Replace every `.grad` by its mean over the processes (one all-reduce of all gradients); no-op on one."""
    n = world_size()
    if n == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= n
    for g, part in zip(grads, flat.split([g.numel() for g in grads])):
        g.copy_(part.view_as(g))
