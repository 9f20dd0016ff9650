"""The best trials of Optuna studies: what each study found, beyond its single best trial.

    python -m spikebench.sweeps.diagnostics.study_trials results/fsdd_tuned/studies/tune-* --top 5
    python -m spikebench.sweeps.diagnostics.study_trials runs/sweeps/bptt-fsdd --top 3 --markdown

Each STUDY is a study folder holding the journal file `journal.log` (sweeps/optimize.py's default storage; the
benchmark's `studies/<cell>/`). Prints, per study, the `--top` finished trials by value (the best val/acc of the
trial: trials select on validation, never on the test file), their epochs (a pruned trial stops early), state and
parameters, and how many trials the study holds in each state. Used to see whether a study's best trials agree on
a region (a flat top: the budget was enough) or disagree (a ragged top: more trials could find more).
"""

from __future__ import annotations

from spikebench.errors import ConfigError
import argparse
from pathlib import Path


def top_trials(journal: Path, top: int) -> tuple[str, dict[str, int], list]:
    """(study name, {state: count}, the `top` finished trials with a value, best first) of the journal's one study."""
    import optuna
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    if len(names) != 1:
        raise ConfigError(f"{journal}: holds {len(names)} studies ({', '.join(names)}); expected one")
    study = optuna.load_study(study_name=names[0], storage=storage)
    trials = study.get_trials(deepcopy=False)
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    valued = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and t.value is not None]
    return names[0], counts, sorted(valued, key=lambda t: -t.value)[:top]


def fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def report(folder: Path, top: int, markdown: bool) -> str:
    name, counts, best = top_trials(folder / "journal.log", top)
    head = f"{folder.name} (study {name}): " + ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
    if markdown:
        keys = list(best[0].params) if best else []
        lines = [f"**{head}**", "", "| trial | state | val. acc. (%) | epochs | " + " | ".join(keys) + " |",
                 "|---|---|---|---|" + "---|" * len(keys)]
        for t in best:
            lines.append(f"| {t.number} | {t.state.name.lower()} | {100 * t.value:.1f} | {len(t.intermediate_values)} | "
                         + " | ".join(fmt(t.params.get(k, "–")) for k in keys) + " |")
        return "\n".join(lines)
    lines = [head]
    for t in best:
        params = " ".join(f"{k}={fmt(v)}" for k, v in t.params.items())
        lines.append(f"  trial {t.number:3d} {t.state.name.lower():8s} val/acc {t.value:.4f}  "
                     f"{len(t.intermediate_values):2d} epochs  {params}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("studies", nargs="+", type=Path, help="study folders holding journal.log")
    ap.add_argument("--top", type=int, default=5, help="trials per study (default 5)")
    ap.add_argument("--markdown", action="store_true", help="a markdown table per study")
    args = ap.parse_args(argv)
    missing = [str(s) for s in args.studies if not (s / "journal.log").is_file()]
    if missing:
        ap.error(f"no journal.log in {', '.join(missing)}")
    try:
        print("\n\n".join(report(s, args.top, args.markdown) for s in args.studies))
    except ValueError as err:
        ap.error(str(err))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
