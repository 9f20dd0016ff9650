"""Driver for tests/test_distributed.py: `python tests/ddp_replicas.py <train.py overrides>` trains like train.py
and, when training ends, every process saves its own copy of the parameters as <output_dir>/replica-<rank>.pt.
Lightning's DDP launcher starts the other processes with this same command line, so each one saves its own."""

import sys
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback

from spikebench import train
from spikebench.configs import compose_config


class SaveReplica(Callback):
    def on_train_end(self, trainer, module) -> None:
        state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
        torch.save(state, Path(trainer.default_root_dir) / f"replica-{trainer.global_rank}.pt")


if __name__ == "__main__":
    train.run(compose_config(sys.argv[1:]), callbacks=[SaveReplica()])
