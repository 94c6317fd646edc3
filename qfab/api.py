"""qfab from Python: the command line's flow for notebooks and scripts.

    import qfab
    run = qfab.run("examples/digits_mlp.yaml", "out/demo", overrides=["train.epochs=5"])
    run.report["equality"]["rtl_vs_golden"]["mismatches"]        # 0
    run.rerun("lower", ["hw.target_cycles=128"])                  # no training
    model = qfab.load("out/demo")                                 # the IR as a Model
    model.golden(x).prediction                                    # integer reference

Everything here is the command line's own code (:mod:`qfab.flow`): a run made from Python
and one made by ``qfab run`` are the same folder. ``qfab.load`` and
:func:`export_brevitas` give a :class:`Model`, the IR with the steps a user takes by
hand: ``golden``, ``lower``, ``generate``, ``simulate``.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qfab.config import Config, load_config, parse_config
from qfab.errors import ConfigError
from qfab.golden import GoldenResult, quantize_input, run_golden
from qfab.ir import Graph
from qfab.run_folder import apply_overrides

__all__ = ["Model", "Run", "compress", "export_brevitas", "load", "run"]


def _config(config: str | Path | dict[str, Any] | Config, overrides: list[str]) -> Config:
    """A config from a YAML file, a mapping or a :class:`Config`, with ``overrides``."""
    if isinstance(config, Config):
        data, source = config.model_dump(mode="json", exclude_unset=True), "config"
    elif isinstance(config, dict):
        data, source = config, "config"
    else:
        data = load_config(config).model_dump(mode="json", exclude_unset=True)
        source = str(config)
    return apply_overrides(data, list(overrides), source) if overrides else parse_config(data)


@dataclass
class Run:
    """A finished run folder: its ``report.json`` and the way back into its stages."""

    path: Path
    report: dict[str, Any] = field(repr=False)

    @property
    def model(self) -> Model:
        """The run's IR (model graph, with the hardware graph once lowered)."""
        return load(self.path)

    def rerun(self, stage: str, overrides: list[str] | tuple[str, ...] = ()) -> Run:
        """Re-run ``stage`` (``lower``, ``gen``, ``sim``, ...) with ``key=value``
        overrides; later stages are cleared and need re-running too (e.g. ``lower`` then
        ``gen``, ``sim``). Keys an earlier stage read are refused."""
        from qfab.flow import rerun_stage

        self.report = rerun_stage(self.path, stage, list(overrides))
        return self


def run(
    config: str | Path | dict[str, Any] | Config,
    out: str | Path,
    *,
    overrides: list[str] | tuple[str, ...] = (),
    from_ir: str | Path | None = None,
    console: Any | None = None,
) -> Run:
    """``qfab run``: every stage into ``out`` (written atomically). A failed equality
    raises :class:`qfab.errors.MismatchError` after the folder (the evidence) is kept."""
    from qfab.flow import run_flow

    cfg = _config(config, list(overrides))
    report = run_flow(cfg, Path(out), console, from_ir=Path(from_ir) if from_ir else None)
    return Run(Path(out), report)


def compress(
    config: str | Path | dict[str, Any] | Config,
    out: str | Path,
    *,
    overrides: list[str] | tuple[str, ...] = (),
    console: Any | None = None,
) -> list[dict[str, Any]]:
    """``qfab compress``: the baseline and each compress step; returns the survey-style
    table's rows (also in ``out/compression.json``, beside the compressed model's IR)."""
    from rich.console import Console

    from qfab.compress_flow import run_compress

    cfg = _config(config, list(overrides))
    return run_compress(cfg, Path(out), console or Console())


def load(path: str | Path) -> Model:
    """A :class:`Model` from an IR file (``model.qfab.npz``) or a run folder."""
    p = Path(path)
    if p.is_dir():
        p = p / "model.qfab.npz"
    if not p.is_file():
        raise ConfigError(f"{p}: no IR file (a run folder holds model.qfab.npz)")
    return Model(Graph.load(p))


def export_brevitas(
    model: Any, input_shape: tuple[int, ...], meta: dict[str, Any] | None = None
) -> Model:
    """Your own Brevitas model (built from the modules qfab supports) as a :class:`Model`.

    ``input_shape`` is PyTorch's, without the batch: ``(C, H, W)`` or ``(F,)``. Anything
    qfab cannot map exactly is refused, naming the module and what would make it
    exportable. The IR takes inputs as flattened NHWC vectors: :meth:`Model.golden` of
    an image model wants ``x.transpose(0, 2, 3, 1).reshape(len(x), -1)``.
    """
    from quant_train.trace_brevitas import export_brevitas as trace_export

    return Model(trace_export(model, tuple(input_shape), meta))


@dataclass
class Model:
    """The IR with the hand-driven flow: golden reference, lowering, generation and
    simulation, each the same function ``qfab run`` calls."""

    graph: Graph

    @property
    def lowered(self) -> Graph | None:
        return self.graph.lowered

    def golden(self, x: np.ndarray) -> GoldenResult:
        """The integer reference on float inputs ``[N, features]`` (NHWC flattened for
        images): ``.prediction``, ``.logits`` and every node's ``.outputs``."""
        return run_golden(self.graph, np.asarray(x))

    def lower(
        self,
        *,
        target_cycles: int | None = None,
        pe: list[int] | None = None,
        simd: list[int] | None = None,
        max_port_bits: int = 64,
        xnor: bool = True,
    ) -> Model:
        """The same model with its hardware graph (``hw_gen.passes.lower``), checked
        node for node against the model graph by golden on ``check`` vectors drawn
        from the input range."""
        from hw_gen.passes import lower
        from qfab.errors import HardwareError
        from qfab.golden import compare_levels
        from qfab.ir import input_range

        hw = lower(
            self.graph,
            pe=pe,
            simd=simd,
            target_cycles=target_cycles,
            max_port_bits=max_port_bits,
            xnor=xnor,
        )
        first = self.graph.nodes[0]
        lo, hi = input_range(int(first.attrs["bits"]), bool(first.attrs["signed"]))
        rng = np.random.default_rng(0)
        x_check = rng.integers(lo, hi + 1, (200, int(first.attrs["features"])))
        differs = compare_levels(self.graph, hw, x_check)
        if differs is not None:
            raise HardwareError(f"lowering changed the results (a qfab bug): {differs}")
        lowered = Graph(self.graph.nodes, dict(self.graph.meta))
        lowered.lowered = hw
        return Model(lowered)

    def _hardware(self) -> Graph:
        if self.graph.lowered is None:
            raise ConfigError("this model has no hardware graph yet: call .lower() first")
        return self.graph.lowered

    def generate(self, out: str | Path, *, backend: str = "rtl", clock_mhz: float = 100.0) -> Path:
        """Verilog (``backend="rtl"``) or HLS C++ (``"hls"``) into ``out`` (atomically),
        with its ``design.json``. Returns ``out``."""
        if backend == "rtl":
            from hw_gen.verilog.emit import generate_verilog

            generate_verilog(self._hardware(), Path(out), clock_mhz=clock_mhz)
        elif backend == "hls":
            from hw_gen.hls.emit import generate_hls

            generate_hls(self._hardware(), Path(out), clock_mhz=clock_mhz)
        else:
            raise ConfigError(f"backend '{backend}' is not known; allowed: rtl, hls")
        return Path(out)

    def simulate(
        self, design: str | Path, x: np.ndarray, *, simulator: str = "icarus"
    ) -> dict[str, Any]:
        """Run a generated design on float inputs ``x`` and compare it with golden on
        every vector and tapped layer: ``{"vectors", "mismatches", "first_mismatch",
        "cycles_per_frame"}``. An HLS design runs as its g++ C simulation."""
        from sim.compare import compare_rtl_to_golden
        from sim.runner import load_manifest, run_cocotb

        manifest = load_manifest(design)
        x_int = quantize_input(self.graph.nodes[0], np.asarray(x))
        with tempfile.TemporaryDirectory(prefix="qfab-sim-") as build:
            if manifest.get("backend") == "hls":
                from sim.csim import run_csim

                result, _ = run_csim(design, x_int, build_dir=build)
                what = "HLS"
            else:
                result = run_cocotb(design, x_int, simulator=simulator, build_dir=build)
                what = "RTL"
        tapped = [t["model_node"] for t in manifest["taps"]]
        out_node = manifest["output"]["model_node"]
        eq = compare_rtl_to_golden(self.graph, x_int, result, out_node, tapped, what=what)
        return {**eq, "cycles_per_frame": result.cycles_per_frame}

    def save(self, path: str | Path) -> Path:
        """Write the IR file (both levels)."""
        return self.graph.save(Path(path))
