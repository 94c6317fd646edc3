"""The layering ARCHITECTURE.md draws, enforced on every import (module or function level).

The core (IR, ops, golden, ranges, values, errors) imports no stage; the stages
(quant_train, hw_gen, sim, boards) import the core but never each other and never the
orchestration (config schema, flow, CLI), which is the only place that wires them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("quant_train", "hw_gen", "sim", "boards")
ORCHESTRATION = (
    "qfab.config",
    "qfab.flow",
    "qfab.cli",
    "qfab.compress_flow",
    "qfab.board_flow",
    "qfab.run_folder",
    "qfab.api",
    "qfab.sweep",
    "qfab.sweep_config",
)


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def core_modules() -> list[Path]:
    return [
        p
        for p in modules("qfab")
        if ".".join(p.relative_to(ROOT).with_suffix("").parts) not in ORCHESTRATION
    ]


@pytest.mark.parametrize("path", core_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_imports_no_stage_and_no_orchestration(path):
    bad = {m for m in imports(path) if m.split(".")[0] in STAGES or m in ORCHESTRATION}
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


@pytest.mark.parametrize(
    "path", [p for s in STAGES for p in modules(s)], ids=lambda p: str(p.relative_to(ROOT))
)
def test_stages_import_neither_each_other_nor_the_orchestration(path):
    own = path.relative_to(ROOT).parts[0]
    bad = {
        m
        for m in imports(path)
        if m in ORCHESTRATION or (m.split(".")[0] in STAGES and m.split(".")[0] != own)
    }
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_the_package_loads_its_api_lazily():
    """``qfab.run`` and friends come from :mod:`qfab.api` (orchestration) on first use:
    importing the core must not import torch or any stage."""
    import subprocess
    import sys

    code = (
        "import sys, qfab.ir, qfab.golden; "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        f"{(*STAGES, 'torch', 'brevitas')!r} or m in {ORCHESTRATION!r}]; "
        "print(bad); import qfab; assert callable(qfab.run) and 'qfab.api' in sys.modules"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
