"""What a finished study leaves behind: the best trial as a train.py command and as an experiment YAML,
a parameter-importance plot and an optimisation-history plot (matplotlib, Agg backend).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

from .search_space import overrides as param_overrides

GROUPS = ("experiment", "algorithm", "data", "logger")
EXPERIMENTS = Path(__file__).resolve().parents[1] / "configs" / "experiment"


def state_counts(study: optuna.Study) -> dict[str, int]:
    """Number of trials per state name (COMPLETE, PRUNED, FAIL, RUNNING, WAITING)."""
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    return max(done, key=lambda t: t.value) if done else None


def best_command(user_overrides: list[str], params: dict[str, Any]) -> str:
    """`python train.py …`: the user's overrides of every trial, then the best trial's parameters."""
    kept = [o for o in user_overrides if not o.lstrip("-").startswith("output_dir=")]
    return " ".join(["python", "train.py", *kept, *param_overrides(params)])


def experiment_yaml(user_overrides: list[str], params: dict[str, Any], header: str) -> str:
    """An experiment file (configs/experiment/<name>.yaml) that reproduces the best trial.

    Group choices go under `defaults:`; every dotted key becomes nested YAML.
    """
    pairs = [o.lstrip("-").lstrip("+").split("=", 1) for o in user_overrides if "=" in o]
    doc: dict[str, Any] = {}
    defaults: dict[str, str] = {}
    for key, raw in pairs:  # an experiment given on the command line is folded into this one
        if key == "experiment" and raw not in ("null", "none"):
            doc = yaml.safe_load((EXPERIMENTS / f"{raw}.yaml").read_text()) or {}
            defaults = dict(doc.pop("defaults", None) or {})
    for key, raw in [*pairs, *[o.split("=", 1) for o in param_overrides(params)]]:
        if key == "output_dir":
            continue
        if key in GROUPS:
            if key != "experiment":
                defaults[key] = raw
            continue
        node = doc
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(raw) if raw != "" else ""
    body = yaml.safe_dump({"defaults": defaults, **doc} if defaults else doc, sort_keys=False)
    return "".join(f"# {line}\n" for line in header.splitlines()) + body


def write_best(study: optuna.Study, out_dir: Path, user_overrides: list[str], base_choices: dict[str, str]) -> Path | None:
    """best.yaml and best_command.txt in out_dir; None when no trial completed."""
    best = best_trial(study)
    if best is None:
        return None
    choices = [f"{g}={v}" for g, v in base_choices.items() if not any(o.lstrip("-").startswith(f"{g}=") for o in user_overrides)]
    given = [*choices, *user_overrides]
    command = best_command(given, best.params)
    (out_dir / "best_command.txt").write_text(command + "\n")
    header = (
        f"Best trial {best.number} of study '{study.study_name}': val/acc {best.value:.4f}.\n"
        f"Use: cp {out_dir / 'best.yaml'} configs/experiment/{study.study_name}-best.yaml && "
        f"python train.py experiment={study.study_name}-best\n"
        f"Or: {command}"
    )
    (out_dir / "best.yaml").write_text(experiment_yaml(given, best.params, header))
    return out_dir / "best.yaml"


def write_plots(study: optuna.Study, out_dir: Path) -> list[str]:
    """history.png and importance.png; returns one line per plot that could not be drawn, saying why."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    problems = []
    plots = {"history.png": ovm.plot_optimization_history, "importance.png": ovm.plot_param_importances}
    n_complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    for name, plot in plots.items():
        if name == "importance.png" and n_complete < 2:
            problems.append(f"{name}: needs at least 2 completed trials (have {n_complete})")
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = plot(study)
            fig = ax.figure if hasattr(ax, "figure") else ax[0].figure
            fig.tight_layout()
            fig.savefig(out_dir / name, dpi=120)
            plt.close(fig)
        except (ValueError, RuntimeError) as err:
            problems.append(f"{name}: {err}")
    return problems
