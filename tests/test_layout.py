"""The layout's rules (DESIGN.md), read from the source: who may import whom, no import from tests/, no private
name across packages, no sys.path edits, no file over 450 lines."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# what each part of the suite may import of the suite (besides itself); `tests` may import everything
MAY_IMPORT = {
    "configs": set(),
    "datamodules": set(),
    "algorithms": set(),
    "train": {"configs", "algorithms", "datamodules"},
    "sweeps": {"configs", "algorithms", "datamodules", "train"},  # optimize, search_space, study_report
    "sweeps.benchmark": {"configs", "algorithms", "datamodules", "train", "sweeps"},
    "sweeps.diagnostics": {"configs", "algorithms", "datamodules", "train"},
}
SUITE = ("configs", "datamodules", "algorithms", "train", "sweeps", "tests")
MAX_LINES = 450


def sources() -> list[Path]:
    files = [ROOT / "train.py"]
    for package in ("configs", "datamodules", "algorithms", "sweeps", "tests"):
        files += sorted((ROOT / package).rglob("*.py"))
    return files


def part_of(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("").parts
    if rel[0] == "sweeps" and len(rel) > 2:
        return f"sweeps.{rel[1]}"
    return rel[0]


def imported(path: Path) -> list[tuple[str, list[str], int]]:
    """(absolute module, imported names, line) of every import of a suite module in the file."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            found.append((module, [a.name for a in node.names], node.lineno))
    return [(m, names, line) for m, names, line in found if m.split(".")[0] in SUITE]


def target_part(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "sweeps" and len(parts) > 1 and parts[1] in ("benchmark", "diagnostics"):
        return f"sweeps.{parts[1]}"
    return parts[0]


def test_every_import_of_the_suite_follows_the_layering_of_design_md():
    wrong = []
    for path in sources():
        part = part_of(path)
        if part == "tests":
            continue
        for module, _, line in imported(path):
            target = target_part(module)
            if target != part and target not in MAY_IMPORT[part]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({part}) imports {module}")
    assert not wrong, "\n".join(wrong)


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
