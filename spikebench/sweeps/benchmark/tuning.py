"""Phases `tune` and `tuned`: each algorithm at its Bayesian-optimised best, with the same budget for every algorithm.

tune   one Optuna study per algorithm (sweeps/optimize.py): `tuning.trials` finished trials of at most
       `tuning.max_epochs` epochs each, multivariate TPE after `tuning.n_startup_trials` random ones, median pruning
       on each epoch's val/acc after `tuning.prune_warmup_epochs`. A trial fits on the training split and selects
       on the validation split only: it runs with `test=false`, so it never opens the test file. The keys of
       `tuning.fixed` (network size, batch size, dt) are given on every trial's command line, which takes them
       out of the search space, so that the cost columns stay comparable. `tuning.random_search` names
       algorithms that also get a random-search study of the same budget (TPE against random search).
tuned  each study's best parameters retrained for `tuning.epochs` epochs with every seed of `seeds`, tested once.

The study is the cell: its journal (or the database of `tuning.storage`) is what resumes it, so rerunning the
command (or `benchmark.only=tune-<algorithm>` on several machines against one database) continues it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from spikebench.sweeps import search_space
from spikebench.configs import compose_config

from .cells import Cell, accuracy_cell, algorithm_overrides, config_hash
from .config import variant


def study_cell_name(algorithm: str, sampler: str, default_sampler: str) -> str:
    return f"tune-{algorithm}" + ("" if sampler == default_sampler else f"-{sampler}")


def tune_cells(b: DictConfig, user: list[str], algorithms: list[str], configs: dict[str, DictConfig]) -> list[Cell]:
    """One study per algorithm (and a random-search one for each of `tuning.random_search`)."""
    t = b.tuning
    wanted = [(a, t.sampler) for a in algorithms]
    wanted += [(a, "random") for a in t.random_search if a in algorithms and t.sampler != "random"]
    cells = []
    for a, sampler in wanted:
        cfg = configs[a]
        present = [k for k in t.fixed if OmegaConf.select(cfg, k, default="__absent__") != "__absent__"]
        fixed = [f"{k}={search_space.format_value(OmegaConf.select(cfg, k))}" for k in present]
        ov = [*algorithm_overrides(b, user, a), *fixed, *t.trial_overrides, f"trainer.max_epochs={t.max_epochs}",
              f"seed={b.seeds[0]}"]
        base = variant(b, a)[0]  # a variant searches its algorithm's space (keys it sets itself are not searched)
        space = search_space.space_path(base, str(Path(t.space_dir).expanduser() / f"{base}.yaml") if t.space_dir else None)
        enqueue = first_trials(list(t.enqueue), ov)
        name = study_cell_name(a, sampler, t.sampler)
        info = {
            "study": f"{b.name}-{name[len('tune-'):]}", "sampler": sampler, "trials": int(t.trials),
            "max_epochs": int(t.max_epochs), "n_startup_trials": int(t.n_startup_trials), "pruner": t.pruner,
            "prune_startup_trials": int(t.prune_startup_trials), "prune_warmup_epochs": int(t.prune_warmup_epochs),
            "reduction_factor": int(t.reduction_factor), "objective": t.objective, "enqueue": enqueue,
            "space": str(space), "storage": t.storage, "seed": int(t.seed),
        }
        extra = {**info, "space_text": Path(space).read_text()}
        cells.append(Cell("tune", name, a, ov, info, config_hash(compose_config([*ov, "test=false"]), extra)))
    return cells


def first_trials(items: list[str], overrides: list[str]) -> list[str]:
    """`tuning.enqueue` items without the keys that this algorithm's cell fixes on its command line (e.g. the LSTM's
    dt in `algorithm_overrides`); items left empty are dropped."""
    fixed = {o.split("=", 1)[0] for o in overrides if "=" in o}
    kept = [" ".join(p for p in item.split() if p.split("=", 1)[0] not in fixed) for item in items]
    return [k for k in kept if k]


def optimize_argv(cell: Cell, cell_dir: Path) -> list[str]:
    """The `python -m spikebench.sweeps.optimize` arguments of a study cell."""
    i = cell.info
    sweep = {
        "study_name": i["study"], "out_dir": str(cell_dir), "n_trials": i["trials"], "sampler": i["sampler"],
        "seed": i["seed"], "n_startup_trials": i["n_startup_trials"], "pruner": i["pruner"],
        "prune_startup_trials": i["prune_startup_trials"], "prune_warmup_epochs": i["prune_warmup_epochs"],
        "space": i["space"], "plots": True,
        "reduction_factor": i.get("reduction_factor", 3), "objective": i.get("objective", "best"),
    }
    if i.get("enqueue"):
        sweep["enqueue"] = "[" + ",".join(f"'{e}'" for e in i["enqueue"]) + "]"
    if i.get("storage"):
        sweep["storage"] = i["storage"]
    return [f"sweep.{k}={v}" for k, v in sweep.items()] + list(cell.overrides)


def run_tune(cell: Cell, cell_dir: Path) -> dict[str, Any]:
    """Run (or resume) the study to its budget; the row: best value and parameters, trial counts, hours spent,
    the history (one entry per trial) and the parameter importances."""
    from spikebench.sweeps import optimize

    study = optimize.optimize(optimize_argv(cell, cell_dir))
    return summarise(study)


def summarise(study) -> dict[str, Any]:
    import optuna

    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    history = []
    for t in trials:
        secs = t.user_attrs.get("wall_s")  # the trial's own record (retry.RunTime), kept by a trial killed outright
        if secs is None:  # a trial from before that record: Optuna's span if the trial ended in its own worker (which
            # then stored cpu_s); one that died was ended by a later worker that found it dead, maybe hours later
            ended = t.user_attrs.get("cpu_s") is not None and t.datetime_complete is not None
            secs = (t.datetime_complete - t.datetime_start).total_seconds() if ended else float("nan")
        last = t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else float("nan")
        since = t.user_attrs.get("continued_from")  # a retry that continued a dead trial's run trained after that epoch
        cpu = t.user_attrs.get("cpu_s")
        history.append({
            "number": t.number, "state": t.state.name, "value": float(t.value) if t.value is not None else float("nan"),
            "last_val_acc": float(last), "epochs": len(t.intermediate_values) - (since["epoch"] + 1 if since else 0),
            "wall_s": secs, "cpu_s": float(cpu) if cpu is not None else float("nan"), "params": dict(t.params),
        })
    done = [h for h in history if h["state"] == "COMPLETE"]
    best = max(done, key=lambda h: h["value"]) if done else None
    importances: dict[str, float] = {}
    if len(done) >= 2:
        try:
            importances = {k: float(v) for k, v in optuna.importance.get_param_importances(study).items()}
        except (ValueError, RuntimeError) as err:
            print(f"no parameter importances: {err}", flush=True)
    counts = {s: sum(h["state"] == s for h in history) for s in ("COMPLETE", "PRUNED", "FAIL")}
    cpu = [h["cpu_s"] for h in history if math.isfinite(h["cpu_s"])]
    row = {
        "best_val_acc": best["value"] if best else float("nan"),
        "best_trial": best["number"] if best else -1,
        "best_params": best["params"] if best else {},
        "complete": counts["COMPLETE"], "pruned": counts["PRUNED"], "failed": counts["FAIL"],
        "trial_epochs": sum(h["epochs"] for h in history),
        "wall_h": sum(h["wall_s"] for h in history if math.isfinite(h["wall_s"])) / 3600,
        "cpu_h": sum(cpu) / 3600,
    }
    return {"row": row, "history": history, "importances": importances}


def tuned_cells(b: DictConfig, user: list[str], algorithms: list[str], configs: dict[str, DictConfig],
                studies: dict[str, dict]) -> list[Cell]:
    """The retraining cells of every algorithm whose (main) study has finished: best parameters, `tuning.epochs`
    epochs, each seed. `studies`: {algorithm: the study cell's row}."""
    cells = []
    for seed in b.seeds:
        for a in algorithms:
            row = studies.get(a)
            if not row or not row["best_params"]:
                continue
            m = configs[a].model
            extra = [*search_space.overrides(row["best_params"]), f"trainer.max_epochs={b.tuning.epochs}"]
            cells.append(accuracy_cell(b, algorithm_overrides(b, user, a), a, int(m.hidden), bool(m.recurrent), seed,
                                       prefix="tuned-", extra=extra, info={"best_trial": row["best_trial"]}))
    return cells


def loso_cells(b: DictConfig, user: list[str], algorithms: list[str], configs: dict[str, DictConfig],
               studies: dict[str, dict]) -> list[Cell]:
    """Leave-one-speaker-out cells of every algorithm whose study has finished: its best parameters retrained
    `tuning.epochs` epochs without speaker k (`data.leave_out=k`) for each k of `loso.speakers` and seed of
    `loso.seeds`, tested on every recording of speaker k (cells loso-<algorithm>-spk<k>-s<seed>)."""
    cells = []
    for seed in b.loso.seeds:
        for k in b.loso.speakers:
            for a in algorithms:
                row = studies.get(a)
                if not row or not row["best_params"]:
                    continue
                m = configs[a].model
                extra = [*search_space.overrides(row["best_params"]), f"trainer.max_epochs={b.tuning.epochs}",
                         f"data.leave_out={k}"]
                c = accuracy_cell(b, algorithm_overrides(b, user, a), a, int(m.hidden), bool(m.recurrent), seed,
                                  prefix="loso-", extra=extra, info={"best_trial": row["best_trial"], "speaker": int(k),
                                                                    "setting": "loso"})
                c.name = f"loso-{a}-spk{k}-s{seed}"
                cells.append(c)
    return cells


def read_study_rows(out: Path, cells: list[Cell], is_done, done_file) -> dict[str, dict]:
    """{cell name: its done file (row, history, importances)} of the finished study cells."""
    found = {}
    for c in cells:
        if is_done(out, c):
            found[c.name] = yaml.safe_load(done_file(out, c).read_text())
    return found


def studies_table(cells: list[Cell], found: dict[str, dict]) -> str:
    lines = ["| Study | Sampler | Trials (complete / pruned / failed) | Trial epochs | Best val. acc. (%) | Best trial | "
             "Wall h | CPU h |", "|---|---|---|---|---|---|---|---|"]
    for c in cells:
        data = found.get(c.name)
        if not data:
            lines.append(f"| {c.name} | {c.info['sampler']} | not finished | – | – | – | – | – |")
            continue
        r = data["row"]
        lines.append(f"| {c.name} | {c.info['sampler']} | {r['complete']} / {r['pruned']} / {r['failed']} | {r['trial_epochs']} | "
                     f"{100 * r['best_val_acc']:.1f} | {r['best_trial']} | {r['wall_h']:.2f} | {r['cpu_h']:.2f} |")
    return "\n".join(lines)


def best_params_text(cells: list[Cell], found: dict[str, dict]) -> str:
    lines = []
    for c in cells:
        data = found.get(c.name)
        if data and data["row"]["best_params"]:
            params = " ".join(search_space.overrides(data["row"]["best_params"]))
            lines.append(f"- `{c.name}` (trial {data['row']['best_trial']}): `{params}`")
    return "\n".join(lines)


def importances_text(cells: list[Cell], found: dict[str, dict]) -> str:
    lines = []
    for c in cells:
        imp = (found.get(c.name) or {}).get("importances") or {}
        if imp:
            lines.append(f"- `{c.name}`: " + ", ".join(f"{k} {v:.2f}" for k, v in imp.items()))
    return "\n".join(lines)


def budget_text(b: DictConfig) -> str:
    t = b.tuning
    pruning = (f"Hyperband (successive halving, reduction factor {t.reduction_factor}) from {t.prune_warmup_epochs} to "
               f"{t.max_epochs} epochs" if t.pruner == "hyperband" else
               f"{t.pruner} pruning on val/acc after {t.prune_warmup_epochs} epochs (from the {t.prune_startup_trials + 1}th trial)")
    trial_ov = f"; trials only: `{' '.join(t.trial_overrides)}`" if t.trial_overrides else ""
    return (f"Budget per algorithm: {t.trials} finished trials (complete or pruned) of at most {t.max_epochs} epochs, "
            f"{t.sampler} sampler ({t.n_startup_trials} random start-up trials), {pruning}; a trial's value: its "
            f"{t.objective} epoch's val/acc; fixed: {', '.join(t.fixed)}{trial_ov}. "
            f"Trials select on the validation split and never open the test file. The best configuration is retrained "
            f"for {t.epochs} epochs with seeds {list(b.seeds)} and tested once.")

