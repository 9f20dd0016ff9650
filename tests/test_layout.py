"""The layout's rules (DESIGN.md), read from the source: who may import whom, no import from tests/, no private
name across packages, no sys.path edits, no file over 450 lines."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "spikebench"  # the one installed package; the checkout's train.py etc. are scripts over it
# what each part of the suite may import of the suite (besides itself); `tests` may import everything
MAY_IMPORT = {  # every part may also import spikebench.errors (the user-error family, which imports nothing) and
    "errors": set(),  # spikebench.events (the event batch: datamodules make it, algorithms take it; imports torch alone)
    "events": set(),
    "configs": set(),
    "datamodules": set(),
    "algorithms": {"configs.algorithms"},  # only the algorithms' declarations (which class is whose), no parser
    "evaluate": {"configs", "algorithms", "datamodules"},
    "train": {"configs", "algorithms", "datamodules", "evaluate"},
    "predict": {"configs", "algorithms", "datamodules"},
    "export": {"configs", "algorithms", "datamodules"},
    "sweeps": {"configs", "algorithms", "datamodules", "train"},  # optimize, search_space, study_report
    "sweeps.benchmark": {"configs", "algorithms", "datamodules", "train", "sweeps"},
    "sweeps.diagnostics": {"configs", "algorithms", "datamodules", "train"},
}
SUITE = ("errors", "events", "configs", "datamodules", "algorithms", "train", "evaluate", "predict", "export", "sweeps", "tests")
MAX_LINES = 450


def sources() -> list[Path]:
    files = [PKG / "__init__.py", *(PKG / f"{m}.py" for m in ("errors", "events", "train", "evaluate", "predict", "export"))]
    for package in ("configs", "datamodules", "algorithms", "sweeps"):
        files += sorted((PKG / package).rglob("*.py"))
    return files + sorted((ROOT / "tests").rglob("*.py")) + [ROOT / f"{m}.py" for m in ("train", "evaluate", "predict", "export")]


def rel_parts(path: Path) -> tuple[str, ...]:
    """The module path of a file inside the package (without `spikebench`), or from the checkout's root."""
    base = PKG if path.is_relative_to(PKG) else ROOT
    return path.relative_to(base).with_suffix("").parts


def part_of(path: Path) -> str:
    rel = rel_parts(path)
    if path.parent == ROOT:  # the checkout's scripts: the part they start
        return rel[0]
    if rel[0] == "sweeps" and len(rel) > 2:
        return f"sweeps.{rel[1]}"
    return rel[0]


def imported(path: Path) -> list[tuple[str, list[str], int]]:
    """(module inside the suite, without `spikebench.`, imported names, line) of every import of a suite module."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(["spikebench", *rel_parts(path)[:-1]]) if path.is_relative_to(PKG) else ""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            if module == "spikebench":  # from spikebench import train: the module train
                found += [(a.name, [], node.lineno) for a in node.names]
            else:
                found.append((module, [a.name for a in node.names], node.lineno))
    inside = [(m.removeprefix("spikebench."), names, line) for m, names, line in found
              if m.startswith("spikebench.") or (m.split(".")[0] in SUITE and not m.startswith("spikebench"))]
    return [(m, names, line) for m, names, line in inside if m.split(".")[0] in SUITE]


def target_part(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "sweeps" and len(parts) > 1 and parts[1] in ("benchmark", "diagnostics"):
        return f"sweeps.{parts[1]}"
    return parts[0]


def test_the_suite_installs_one_top_level_name_and_imports_itself_only_through_it():
    """No file imports `algorithms`, `train`, … as top-level modules: only `spikebench.…` (or relatively)."""
    wrong = []
    for path in sources():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            wrong += [f"{path.relative_to(ROOT)}:{node.lineno} imports {n}" for n in names
                      if n.split(".")[0] in SUITE and n.split(".")[0] != "tests"]
    assert not wrong, "\n".join(wrong)


def test_every_import_of_the_suite_follows_the_layering_of_design_md():
    wrong = []
    for path in sources():
        part = part_of(path)
        if part == "tests" or path.parent == ROOT:
            continue
        for module, _, line in imported(path):
            target = target_part(module)
            if module == "configs.algorithms" and module in MAY_IMPORT[part]:
                continue
            if target != part and target not in MAY_IMPORT[part] and target not in ("errors", "events"):  # everyone's
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({part}) imports {module}")
    assert not wrong, "\n".join(wrong)


def module_name(path: Path) -> str:
    parts = ("spikebench", *rel_parts(path)) if path.is_relative_to(PKG) else rel_parts(path)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_import_cycle_among_the_modules_imports_at_load_time():
    """Module-level imports only (an import inside a function runs later and cannot deadlock loading)."""
    names = {module_name(p): p for p in sources() if p.is_relative_to(PKG)}
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        tree = ast.parse(path.read_text())
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in top:
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in names else base for a in node.names]
            # a package's own submodules may use it (`from . import sibling`): Python binds the half-loaded parent
            edges |= {t for t in targets if t in names and t != name and not name.startswith(t + ".")}
        graph[name] = edges
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" → ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def test_no_private_name_is_imported_across_packages():
    wrong = []
    for path in sources():
        for module, names, line in imported(path):
            if target_part(module) != part_of(path):
                wrong += [f"{path.relative_to(ROOT)}:{line}: {module}.{n}" for n in names if n.startswith("_")]
    assert not wrong, "\n".join(wrong)


def test_no_file_edits_sys_path():
    edits = [str(p.relative_to(ROOT)) for p in sources() if p != Path(__file__)
             and any(f"sys.path.{verb}" in p.read_text() for verb in ("insert", "append", "extend"))]
    assert not edits, edits


def test_no_source_file_is_longer_than_450_lines():
    long = {str(p.relative_to(ROOT)): n for p in sources() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long
