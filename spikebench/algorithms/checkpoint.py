"""Whether a checkpoint fits a config: it exists, is readable, and was trained with the same algorithm, network and
data shape (what `ckpt_path=`, `resume=`, evaluate.py and predict.py check before anything else)."""

from __future__ import annotations

from spikebench.errors import ConfigError
from pathlib import Path

from omegaconf import DictConfig, OmegaConf


class CheckpointError(ConfigError):
    """A checkpoint that is missing, unreadable or of another network; the message is one line."""


def checkpoint_path(run: Path, which: str) -> Path:
    """`best` or `last` of a run folder, or a file."""
    path = run / "checkpoints" / f"{which}.ckpt" if which in ("best", "last") else Path(which).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint={which}: no file {path}; a run folder holds checkpoints/best.ckpt and last.ckpt")
    return path


def check_checkpoint(cfg: DictConfig, path: Path, shape: dict) -> int:
    """The checkpoint exists, is one, and was trained with this config's algorithm, network and data shape;
    returns its epoch (the last completed one)."""
    import torch

    if not path.is_file():
        raise CheckpointError(f"ckpt_path={path}: no such checkpoint file")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=False)
        saved, epoch = loaded["hyper_parameters"], int(loaded["epoch"])
        saved_cfg, saved_shape = saved["cfg"], saved.get("data", shape)
    except Exception as err:  # noqa: BLE001  (any failure to read it means the same to the user)
        raise CheckpointError(f"ckpt_path={path}: not a readable spikebench checkpoint ({type(err).__name__})") from None
    mine = OmegaConf.to_container(cfg, resolve=True)
    differ = [f"algorithm.name={saved_cfg['algorithm']['name']}"] if saved_cfg["algorithm"]["name"] != cfg.algorithm.name else []
    differ += [f"model.{k}={v}" for k, v in saved_cfg["model"].items() if k not in ("backend",) and mine["model"].get(k) != v]
    differ += [f"data shape {k}={v}" for k, v in saved_shape.items() if k != "class_names" and shape.get(k) != v]
    if differ:
        raise CheckpointError(f"ckpt_path={path} was trained with {', '.join(differ)}; this config differs "
                          "(resume a run with `resume=<run folder>`, which reuses its config)")
    return epoch
