"""Which training algorithm wins, at what cost: every algorithm under the same data, network, budget and seeds.

    python -m spikebench.sweeps.benchmark benchmark=fsdd                       # the FSDD table on this machine
    python -m spikebench.sweeps.benchmark benchmark=fsdd benchmark.phases=[table,scaling] benchmark.seeds=[0,1,2,3,4]
    python -m spikebench.sweeps.benchmark benchmark=shd data.root=~/data/shd   # SHD, the published EventProp settings
    python -m spikebench.sweeps.benchmark benchmark=tiny                       # a minute: checks the machinery
    python -m spikebench.sweeps.benchmark benchmark=fsdd_tuned                 # every algorithm at its tuned best (hours)
    python -m spikebench.sweeps.benchmark benchmark=fsdd_tuned "benchmark.only=[tune-bptt]"   # one cell (e.g. a SLURM task)

`benchmark=<name>` picks configs/benchmark/<name>.yaml (or a YAML path); `benchmark.<key>=value` changes one of
its keys; every other argument is a train.py override applied to every cell after the benchmark's own
`overrides` (`trainer.max_epochs=5`, `data.root=…`). The benchmark consists of cells (`benchmark.phases`):

  tune          one Optuna study per algorithm with the same budget (`benchmark.tuning`; sweeps/benchmark/tuning.py):
                trials select on the validation split and never open the test file. Folder studies/<cell>/.
  tuned         each study's best configuration retrained for `tuning.epochs` epochs with every seed, tested once
                (cells tuned-<algorithm>-…).
  loso          each study's best configuration retrained once per left-out speaker (`loso.speakers`, `loso.seeds`;
                data.leave_out=k) and tested on every recording of that speaker (cells loso-<algorithm>-spk<k>-s<seed>).

  table         the shared setting: train.run (fit with validation, test the best checkpoint) of each algorithm at the experiment's
                network for each seed; then NeuroBench's metrics (sweeps/benchmark/neurobench.py) of the best checkpoint
                on the test set. Folder results/<name>/cells/<algorithm>-h<hidden>-<ff|rec>-s<seed>/.
  scaling       one training step (the algorithm's `forward_backward`, gradients included) on random input
                spikes at each number of time steps (hidden size fixed) and at each hidden size (steps fixed):
                median wall seconds (measure.step_time), step memory (measure.step_memory), and as cross-checks
                the peak RSS growth of the cell process's first full-length step and the bytes saved for backward.
  architecture  the table's accuracy cell over hidden sizes × feed-forward / recurrent (cells that coincide
                with the table's are shared).

Each cell runs in its own child process (`benchmark.isolate`: spawn by default — a forked child of a parent
whose OpenMP pool has started threads can deadlock —, fork on request, none = in this process), so that process-level figures are the cell's own and a crash or out-of-memory kill loses only
that cell;
the parent prints each cell, each epoch's validation accuracy and an ETA. A cell whose cell.yaml holds the same
resolved config is skipped: rerunning the command resumes (a cell whose training finished but whose metrics
did not is not retrained). Every cell is seeded (`seed`, through L.seed_everything in train.run): on CPU the
same command reproduces the accuracy figures exactly.

`benchmark.dry_run=true` lists each cell as done, changed (its finished folder holds another config: a training
cell would be trained again, a study resumes from its journal) or to run, and writes nothing.

`benchmark.only=[<cell name or shell pattern>, …]` (quote a pattern that starts with *, a YAML alias otherwise:
"benchmark.only=['*bptt*']") runs only those cells and then writes the reports from every cell that has finished,
wherever it ran: so a job scheduler can fan the cells out (one array task per cell), and the studies can share a
database (`benchmark.tuning.storage=postgresql://user@host/db`, password from PGPASSWORD or ~/.pgpass), with
several machines running the same study cell at once.

Output in results/<name>/: table.md and table.png, results.csv (one row per table cell), scaling.csv,
architecture.md, architecture.csv, accuracy_vs_time.png, scaling_steps.png, scaling_hidden.png, architecture.png,
environment.yaml (command, commit, versions, device, load), benchmark.yaml (the resolved benchmark config),
configs/<algorithm>.yaml (each algorithm's resolved train config), logs/<cell>.log; with tuning: studies/<cell>/
(journal.log, best.yaml, best_command.txt, history.png, importance.png, trial-NNNN/), best_params.yaml,
tuning_history.png, importances.png; with left-out speakers: loso.csv, pairs.csv, verdict.png.
"""


from __future__ import annotations

from spikebench.errors import UserError
import fnmatch
import sys
from pathlib import Path

import yaml
from omegaconf import OmegaConf

from spikebench.configs import ConfigError

from ..storage import mask_password, split_password
from . import tuning
from .cells import Cell
from .cells import plan as make_plan
from .config import BENCH_DIR, load_benchmark_config, split_args, variant
from .report import environment, write_reports
from .runner import done_file, is_done, isolation, run_all


def importable(b, algorithms: list[str]) -> list[str]:
    """The algorithms (or variants) whose module imports; the others are skipped with the reason printed."""
    from spikebench.algorithms import get_algorithm

    ok = []
    for a in algorithms:
        try:
            get_algorithm(variant(b, a)[0])
            ok.append(a)
        except Exception as err:  # noqa: BLE001 - any import failure skips the algorithm
            print(f"skipping {a}: cannot import it ({type(err).__name__}: {err})", flush=True)
    return ok


def studies_done(out: Path, cells: list[Cell], sampler: str, done=is_done) -> dict[str, dict]:
    """{algorithm: row} of the finished studies with the benchmark's own sampler (not the random-search ones)."""
    found = tuning.read_study_rows(out, [c for c in cells if c.info["sampler"] == sampler], done, done_file)
    return {c.algorithm: found[c.name]["row"] for c in cells if c.name in found}


def dry_run(out: Path, b, user: list[str], algorithms: list[str], p, tune: list[Cell], chosen) -> None:
    """Print what the command would do with each chosen cell, writing nothing: `done` (kept), `changed` (its
    cell.yaml holds another resolved config, e.g. after an update that added a config key: a training cell would be
    trained again and its folder replaced; a study resumes from its journal and is summarised again), `to run`.
    Before moving a long run to another commit, every finished training cell should read `done`."""
    # a changed study resumes from its journal, which holds the same best trial: its retraining cells are listed
    studies = studies_done(out, p.tune, b.tuning.sampler, done=lambda o, c: done_file(o, c).is_file())
    retrain = [*(tuning.tuned_cells(b, user, algorithms, p.configs, studies) if "tuned" in b.phases else []),
               *(tuning.loso_cells(b, user, algorithms, p.configs, studies) if "loso" in b.phases else [])]
    counts: dict[str, int] = {}
    for c in [*tune, *retrain, *p.table, *p.scaling, *p.arch]:
        if not chosen(c):
            continue
        state = "done" if is_done(out, c) else "changed" if done_file(out, c).is_file() else "to run"
        counts[state] = counts.get(state, 0) + 1
        print(f"{state:8s} {c.kind:12s} {c.name}")
    waiting = sorted(a for a in algorithms if a not in studies and any(c.algorithm == a for c in p.tune))
    if waiting and ("tuned" in b.phases or "loso" in b.phases):
        print(f"(retraining cells of {', '.join(waiting)} are listed once their study has finished)")
    if counts.get("changed"):
        print("(changed: a training cell would be trained again, its folder replaced; a study resumes from its journal)")
    print(f"dry run of {b.name} -> {out}: " + (", ".join(f"{n} {s}" for s, n in counts.items()) or "no cells"), flush=True)


def selector(patterns: list[str] | None, known: list[str]):
    """A predicate on cells for `benchmark.only`; a pattern that names no cell is a ValueError."""
    if patterns is None:
        return lambda cell: True
    for pat in patterns:
        if not fnmatch.filter(known, pat):
            raise ConfigError(f"benchmark.only: '{pat}' names no cell; cells of this benchmark: {', '.join(known)}")
    return lambda cell: any(fnmatch.fnmatchcase(cell.name, pat) for pat in patterns)


def benchmark(argv: list[str]) -> tuple[Path, dict[str, str]]:
    """Run the benchmark described by the command line; returns (output folder, failed cells)."""
    choice, items, user = split_args(argv)
    b = load_benchmark_config(choice, items)
    b.tuning.storage = split_password(b.tuning.storage)  # the password goes to PGPASSWORD, never into a record
    argv = [mask_password(a) for a in argv]
    out = Path(b.out_dir).expanduser() if b.out_dir else Path("results", b.name).resolve()  # in the working folder
    algorithms = importable(b, list(b.algorithms))
    if not algorithms:
        raise ConfigError("no algorithm of benchmark.algorithms can be imported")
    p = make_plan(b, user, algorithms)  # composes every cell's config: bad overrides fail here, before any file
    tuned_phase = "tuned" in b.phases or "loso" in b.phases
    if "tune" in b.phases or tuned_phase:
        p.tune = tuning.tune_cells(b, user, algorithms, p.configs)
    future_tuned = [f"tuned-{a}-h{p.configs[a].model.hidden}-{'rec' if p.configs[a].model.recurrent else 'ff'}-s{s}"
                    for s in b.seeds for a in algorithms] if "tuned" in b.phases else []
    future_tuned += [f"loso-{a}-spk{k}-s{s}" for s in b.loso.seeds for k in b.loso.speakers
                     for a in algorithms] if "loso" in b.phases else []
    run_tune = [c for c in p.tune if "tune" in b.phases]
    known = [c.name for c in [*run_tune, *p.table, *p.scaling, *p.arch]] + future_tuned
    chosen = selector(list(b.only) if b.only is not None else None, known)
    if b.dry_run:
        dry_run(out, b, user, algorithms, p, [c for c in run_tune if chosen(c)], chosen)
        return out, {}
    out.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(b, out / "benchmark.yaml", resolve=True)
    (out / "configs").mkdir(exist_ok=True)
    for a, cfg in p.configs.items():
        OmegaConf.save(cfg, out / "configs" / f"{a}.yaml", resolve=True)
    mode = isolation(b.isolate)
    cfg0 = p.configs[algorithms[0]]
    steps = int(round(cfg0.data.duration / cfg0.data.dt))
    header = (f"Command: `python -m spikebench.sweeps.benchmark {mask_password(' '.join(argv))}`  \nData: {cfg0.data.name} ({cfg0.data.root}), "
              f"{steps} steps of {cfg0.data.dt * 1e3:g} ms; network: {cfg0.model.hidden} hidden, "
              f"{'recurrent' if cfg0.model.recurrent else 'feed-forward'}; shared setting: {cfg0.trainer.max_epochs} epochs; "
              f"seeds {list(b.seeds)}. Environment: environment.yaml; each cell's machine and commit: results.csv.")
    print(f"benchmark {b.name}: {len(algorithms)} algorithms, {len(run_tune)} studies, {len(p.table)} table cells, "
          f"{len(p.scaling)} scaling cells, {len(p.arch)} architecture cells -> {out}  (cells in child processes: {mode}"
          + (f"; {b.workers} cells at once, spawned" if b.workers > 1 else "") + ")", flush=True)
    failures: dict[str, str] = {}

    def refresh() -> None:
        write_reports(out, b, algorithms, p, failures, header)

    def phase(name: str, cells: list[Cell]) -> None:
        cells = [c for c in cells if chosen(c)]
        if cells:
            print(f"-- {name}: {len(cells)} cells", flush=True)
            failures.update(run_all(out, cells, mode, refresh, b.workers))

    def retrain(which: set[str]) -> None:
        studies = studies_done(out, p.tune, b.tuning.sampler)
        p.tuned = tuning.tuned_cells(b, user, algorithms, p.configs, studies) if "tuned" in b.phases else []
        p.loso = tuning.loso_cells(b, user, algorithms, p.configs, studies) if "loso" in b.phases else []
        missing = sorted(which - set(studies))
        if missing:
            print(f"-- tuned: no finished study yet for {', '.join(missing)}: not retrained", flush=True)
        phase("tuned " + ", ".join(sorted(which)), [c for c in p.tuned + p.loso if c.algorithm in which])

    if tuned_phase and b.workers == 1:  # one at a time: each study, then its retraining, so rows complete early
        for cell in run_tune:
            phase(f"tune {cell.name}", [cell])
            if cell.info["sampler"] == b.tuning.sampler:
                retrain({cell.algorithm})
        retrain(set(algorithms) - {c.algorithm for c in run_tune})
    else:
        phase("tune", run_tune)
        if tuned_phase:
            retrain(set(algorithms))
    for name, cells in (("table", p.table), ("scaling", p.scaling), ("architecture", p.arch)):
        phase(name, cells)
    write_reports(out, b, algorithms, p, failures, header, plots=True)
    (out / "environment.yaml").write_text(yaml.safe_dump(environment(argv, mode), sort_keys=False))
    print(f"table: {out / 'table.md'}" + (f"   ({len(failures)} cells failed)" if failures else ""), flush=True)
    return out, failures


def main(argv: list[str] | None = None) -> int:

    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        print("benchmarks:", ", ".join(sorted(p.stem for p in BENCH_DIR.glob("*.yaml"))))
        return 0
    try:
        _, failures = benchmark(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
