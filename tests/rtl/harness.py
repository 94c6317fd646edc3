"""Unit benches for the hand-written ``rtl/`` modules: build one module, run one cocotb bench.

A bench is a cocotb test module under ``tests/rtl/`` (``bench_<unit>.py``). It reads its
case (the module's parameters plus anything else it needs: seed, frames, stall rates)
from the JSON in ``QFAB_UNIT_CASE``, drives the module with :mod:`tests.rtl.streams`,
computes the expected words with a NumPy reference of its own, and fails at the first
differing word. :func:`run_unit_bench` builds the module with those parameters (Icarus
by default: it compiles in a fraction of a second; Verilator for the larger cases),
runs the bench and turns a failed cocotb test into a pytest failure with the log tail.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from sim.lint import verilator_lint
from sim.runner import simulator_env


def rtl_source(name: str) -> Path:
    """Path of a library module in ``rtl/`` (as installed, like the generator finds it)."""
    return Path(str(resources.files("rtl").joinpath(name)))


def run_unit_bench(
    tmp_path: Path,
    *,
    toplevel: str,
    sources: Sequence[str | os.PathLike[str]],
    parameters: Mapping[str, int],
    bench: str,
    case: Mapping[str, Any] | None = None,
    simulator: str = "icarus",
    testcase: str | None = None,
    build_args: Sequence[str] = (),
) -> None:
    """Build ``toplevel`` with ``parameters``, run cocotb module ``bench`` on it.

    ``case`` is passed to the bench as JSON (``QFAB_UNIT_CASE``) together with the
    parameters (under ``"params"``). ``testcase`` names the one cocotb test of ``bench``
    to run (a bench module may hold several scenarios); all of them when ``None``.
    ``build_args`` go to the simulator's compiler after qfab's own (e.g. a ``-D`` define).
    Raises ``AssertionError`` when the bench fails.
    """
    from cocotb_tools.runner import get_results, get_runner

    env = simulator_env(simulator)
    build = Path(tmp_path).resolve() / f"{toplevel}_{simulator}"
    build.mkdir(parents=True, exist_ok=True)
    (build / "results.xml").unlink(missing_ok=True)
    payload = json.dumps({"params": dict(parameters), **dict(case or {})})
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        runner = get_runner(simulator)
        runner.build(
            sources=[str(Path(s).resolve()) for s in sources],
            hdl_toplevel=toplevel,
            parameters=dict(parameters),
            build_dir=build,
            build_args=(["-O2"] if simulator == "verilator" else []) + list(build_args),
            timescale=("1ns", "1ps"),
            always=True,
            log_file=str(build / "build.log"),
        )
        results = runner.test(
            hdl_toplevel=toplevel,
            test_module=bench,
            test_filter=rf"\.{testcase}$" if testcase else None,
            build_dir=build,
            test_dir=build,
            extra_env={**env, "QFAB_UNIT_CASE": payload},
            results_xml=str(build / "results.xml"),
            log_file=str(build / "sim.log"),
        )
    except SystemExit:  # cocotb's runner exits when the build or a test fails
        results = build / "results.xml"
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    if not Path(results).is_file():
        raise AssertionError(f"{bench} on {toplevel}: no results; see {build}/build.log, sim.log")
    tests, failed = get_results(Path(results))
    if tests == 0 or failed:
        log = (build / "sim.log").read_text(errors="replace").splitlines()
        tail = "\n".join(ln for ln in log if "Error" in ln or "FAIL" in ln or "assert" in ln)
        raise AssertionError(
            f"{bench} on {toplevel} {dict(parameters)}: {failed}/{tests} failed\n{tail[-3000:]}"
        )


def assert_lint_clean(
    sources: Sequence[str | os.PathLike[str]], top: str, parameters: Mapping[str, int]
) -> None:
    """``verilator --lint-only -Wall`` reports nothing for ``top`` with ``parameters``."""
    warnings = verilator_lint(sources, top, parameters)
    assert not warnings, "\n".join(warnings[:20])


def unit_case() -> dict[str, Any]:
    """Inside a bench: the case dictionary :func:`run_unit_bench` passed."""
    return json.loads(os.environ["QFAB_UNIT_CASE"])
