"""The end-to-end flow behind ``qfab run``: data -> QAT -> IR -> checks -> RTL -> sim -> synth.

This is the one place that imports every stage (ARCHITECTURE.md); stages talk to each
other only through the IR and the files they write. All outputs are written into a
temporary sibling of ``--out`` and renamed into place at the very end, so a failure
never leaves a half-written output folder behind.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from qfab.config import Config
from qfab.errors import ConfigError, HardwareError, MismatchError, QfabError
from qfab.extremes import ExtremeSet, extreme_vectors
from qfab.folders import atomic_folder
from qfab.golden import quantize_input, run_golden
from qfab.ir import Graph


class StageLog:
    """Prints one line per stage with its duration; remembers durations for the report."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str, what: str) -> Iterator[None]:
        start = time.perf_counter()
        with self.console.status(f"[bold]{what}…"):
            yield
        self.seconds[name] = round(time.perf_counter() - start, 2)
        self.console.print(f"[green]✓[/] {what} [dim]({self.seconds[name]:.1f} s)[/]")


def hardware_settings(cfg: Config) -> dict[str, Any]:
    """Keyword arguments of :func:`hw_gen.passes.lower` from the ``hw:`` section."""
    hw = cfg.hw
    target = None if hw.target_cycles == "auto" else int(hw.target_cycles)
    if hw.target_fps is not None:
        target = max(1, int(hw.clock_mhz * 1e6 // hw.target_fps))
    explicit = hw.folding != "auto"
    return {
        "pe": list(hw.folding.pe) if explicit else None,
        "simd": list(hw.folding.simd) if explicit else None,
        "target_cycles": target,
        "max_port_bits": hw.max_port_bits,
        "xnor": hw.xnor,
        "sparse": sparse_settings(cfg),
    }


def sparse_settings(cfg: Config) -> dict[str, Any]:
    """``lower(sparse=...)``: the engine defaults (None: dense) and per-layer choices."""
    hw = cfg.hw
    keys = ("pes", "queue_depth", "index_bits", "code_bits")
    default = {k: getattr(hw, k) for k in keys} | {"simd": hw.sparse_simd}
    layers = {  # a layer's own keys over the hw defaults
        name: (
            {**default, **{k: getattr(s, k) for k in s.model_fields_set if k != "engine"}}
            if s.engine == "sparse"
            else None
        )
        for name, s in hw.layers.items()
    }
    return {"default": default if hw.engine == "sparse" else None, "layers": layers}


#: Above this many product evaluations (parallel MACs x cycles simulated) FIFO sizing runs
#: on Verilator: Icarus compiles in about a second but interprets every product every
#: cycle (an LFC-sized design, 3k MACs x 8k cycles, took over 20 minutes), while a
#: Verilator build costs a minute once and then runs ~100x faster.
ICARUS_MAX_WORK = 5_000_000


def sizing_simulator(hw: Graph, frames: int) -> str:
    """The simulator that sizes ``hw``'s FIFOs fastest: Icarus for small designs,
    Verilator for large ones (see :data:`ICARUS_MAX_WORK`)."""
    from hw_gen.passes.folding import compute_units
    from hw_gen.perf import perf_model

    macs = sum(int(n.attrs["pe"]) * int(n.attrs["simd"]) for n in compute_units(hw))
    work = macs * frames * perf_model(hw)["cycles_per_frame"]
    return "icarus" if work <= ICARUS_MAX_WORK else "verilator"


def size_fifos(hw: Graph, x_int: np.ndarray, workdir: Path) -> tuple[Graph, dict[str, int]]:
    """Deep FIFOs in front of every unit, one paced simulation (Icarus, or Verilator for
    large designs: :func:`sizing_simulator`), then each FIFO shrunk to what it held (see
    :mod:`sim.fifo_sizing`). Returns the sized hardware graph and the beats each FIFO
    held."""
    from hw_gen.passes.insert import AnnotateCycles, InsertStreamFIFOs, SetFIFODepths
    from hw_gen.verilog.emit import generate_verilog
    from sim.fifo_sizing import measure_fifo_occupancy

    deep = AnnotateCycles().apply(InsertStreamFIFOs().apply(hw))
    deep.validate("hardware graph (FIFO sizing)", "hardware")
    generate_verilog(deep, workdir / "rtl")
    frames = max(6, min(len(x_int), 8))
    simulator = sizing_simulator(deep, frames)
    held = measure_fifo_occupancy(
        workdir / "rtl",
        np.resize(x_int, (frames, x_int.shape[1])),
        build_dir=workdir / "sim",
        simulator=simulator,
    )
    sized = AnnotateCycles().apply(SetFIFODepths(held).apply(deep))
    sized.meta = {**hw.meta, "fifo_sizing": f"simulation ({simulator}, paced input)"}
    sized.validate("hardware graph", "hardware")
    return sized, held


def precheck_hardware(cfg: Config, untrained: Any | None) -> None:
    """Everything the hardware stages would refuse, refused *before* training.

    ``untrained`` is the configured Brevitas model before training: it is exported and
    lowered with the configured folding, so an op or shape the lowering cannot map, a
    folding that does not divide a unit, a node the HLS backend has no kernel for, or a
    bad synthesis part is one line naming the node or key now, not after minutes of
    training. (Thresholds of an untrained model
    differ from the trained ones; the structure, shapes and bit widths do not. Nor do
    its distinct weights: a sparse layer's codebook size is only known after training,
    so the precheck lowers with the widest codes.)
    """
    from hw_gen.passes import lower
    from hw_gen.synth_yosys import family_of

    if cfg.synth.enabled:
        family_of(cfg.synth.part)
    if untrained is not None:
        from quant_train.export_ir import export_model

        settings = hardware_settings(cfg)
        sparse = settings["sparse"]
        widest = {"code_bits": 16}
        settings["sparse"] = {
            "default": sparse["default"] and {**sparse["default"], **widest},
            "layers": {k: v and {**v, **widest} for k, v in sparse["layers"].items()},
        }
        hw = lower(export_model(untrained), **settings)
        if cfg.hw.backend != "rtl":
            from hw_gen.hls.emit import plan_kernels

            plan_kernels(hw)  # a node kind without an HLS kernel, named now


def atomic_output(out: Path) -> contextlib.AbstractContextManager[Path]:
    """:func:`qfab.folders.atomic_folder` for ``--out``: refusals name the option."""
    return atomic_folder(out, label="--out ", error=ConfigError)


def run_flow(
    cfg: Config, out: Path, console: Console | None = None, from_ir: Path | None = None
) -> dict[str, Any]:
    """Run every stage, write ``out/{model.qfab.npz, model.onnx, rtl/, report.json}``;
    return the report.

    ``from_ir``: start from an exported IR file (e.g. ``qfab compress``'s
    ``model.qfab.npz``) instead of training; the data set still gives the test vectors.

    A failed equality is a finished run, not a partial one: the folder is kept (the
    report names the first mismatch, the IR and RTL are there to inspect) and the
    :class:`MismatchError` is raised after it is in place. Any other error leaves nothing.
    """
    console = console or Console()
    with atomic_output(Path(out)) as work:
        report = _run_stages(cfg, work, console, from_ir)
    if report.get("mismatch"):
        raise MismatchError(f"{report['mismatch']} (report: {Path(out) / 'report.json'})")
    return report


def _run_stages(cfg: Config, work: Path, console: Console, from_ir: Path | None) -> dict[str, Any]:
    from quant_train.datasets import load_dataset

    log = StageLog(console)
    with log.stage("data", f"data set '{cfg.dataset_name}'"):
        data = load_dataset(cfg.dataset_name, cfg.dataset_path)
    report: dict[str, Any] = {
        "config": cfg.model_dump(mode="json"),
        "dataset": {
            "name": data.name,
            "train": len(data.y_train),
            "test": len(data.y_test),
            "features": data.features,
            "classes": data.classes,
        },
    }
    if from_ir is None:
        graph = _train_and_export(cfg, data, work, console, log, report)
        if graph is None:
            return report  # level 1 failed: no hardware for a model the IR does not reproduce
    else:
        graph = _load_model(cfg, data, Path(from_ir), log, report)
    _hardware(cfg, graph, data, work, log, report)
    report["seconds"] = log.seconds
    for key, what in (("rtl_vs_golden", "RTL"), ("hls_vs_golden", "HLS C simulation")):
        eq = report["equality"].get(key)
        if eq and eq["mismatches"] and not report.get("mismatch"):
            report["mismatch"] = (
                f"{what} != golden on {eq['mismatches']}/{eq['vectors']} "
                f"vectors; first: {eq['first_mismatch']}"
            )
    qonnx_eq = report["equality"].get("qonnx_vs_golden")
    if qonnx_eq and qonnx_eq.get("mismatches") and not report.get("mismatch"):
        report["mismatch"] = (
            f"QONNX (qonnx's executor) != golden on {qonnx_eq['mismatches']}/"
            f"{qonnx_eq['vectors']} vectors; first: {qonnx_eq['first_mismatch']}"
        )
    _write_report(work, report)
    print_summary(console, report)
    return report


def _train_and_export(
    cfg: Config, data: Any, work: Path, console: Console, log: StageLog, report: dict[str, Any]
) -> Graph | None:
    """Float baseline, QAT, export, level 1. None (report written) if level 1 fails."""
    import torch

    from quant_train.equality import compare_brevitas_to_golden
    from quant_train.export_ir import export_model
    from quant_train.train import (
        TrainSettings,
        accuracy,
        predict,
        seed_everything,
        train_classifier,
    )
    from quant_train.zoo import IMAGE_ARCHS, build_model

    settings = TrainSettings(cfg.train.epochs, cfg.train.seed, cfg.train.lr, cfg.train.batch_size)
    m = cfg.model
    shape = data.image_shape if m.arch in IMAGE_ARCHS else (data.features,)

    def zoo_model(**quant: Any) -> Any:
        seed_everything(settings.seed)
        return build_model(
            m.arch,
            shape,
            data.classes,
            hidden=list(m.hidden),
            width=m.width,
            groups=m.groups,
            **quant,
        )

    quant = {
        "weight_bits": m.weight_bits,
        "act_bits": m.act_bits,
        "input_bits": m.input_bits,
        "per_channel": m.per_channel,
    }
    precheck_hardware(cfg, zoo_model(**quant))
    float_acc = None
    if cfg.train.float_baseline:
        fmodel = zoo_model(weight_bits=None)  # the same topology in float32
        with _epochs(console, "float baseline", settings.epochs) as tick:
            train_classifier(fmodel, data.x_train, data.y_train, settings, tick)
        float_acc = accuracy(predict(fmodel, data.x_test), data.y_test)
    qmodel = zoo_model(**quant)
    label = f"QAT w{m.weight_bits}a{m.act_bits}"
    with _epochs(console, label, settings.epochs) as tick:
        train_classifier(qmodel, data.x_train, data.y_train, settings, tick)
    torch.save(qmodel.state_dict(), work / "brevitas_model.pt")

    with log.stage("export", "export Brevitas → IR (thresholds from the model's own ops)"):
        graph = export_model(qmodel, {"dataset": data.name, "config": report["config"]})
        graph.save(work / "model.qfab.npz")
    with log.stage("golden", "level 1: Brevitas == golden on every test vector"):
        eq1 = compare_brevitas_to_golden(qmodel, graph, data.x_test)
        gold = run_golden(graph, data.x_test)
    report["accuracy"] = {
        "float": float_acc,
        "brevitas": accuracy(predict(qmodel, data.x_test), data.y_test),
        "quantized": float(np.mean(gold.prediction == data.y_test)),
    }
    report["equality"] = {
        "brevitas_vs_golden": {**eq1.as_dict(), "float32_exact": graph.meta["float32_exact"]}
    }
    if eq1.mismatches:
        report["mismatch"] = (
            f"Brevitas != golden on {eq1.mismatches}/{eq1.vectors} vectors; "
            f"first: {eq1.first_mismatch}"
        )
        _write_report(work, report)
        return None
    return graph


def _load_model(cfg: Config, data: Any, path: Path, log: StageLog, report: dict[str, Any]) -> Graph:
    """An exported IR as the model: checked against the data set, its lowering prechecked."""
    from hw_gen.passes import lower
    from hw_gen.synth_yosys import family_of

    with log.stage("load", f"model from {path}"):
        graph = Graph.load(path)
        feats = int(graph.nodes[0].attrs["features"])
        if feats != data.features:
            raise ConfigError(
                f"--from {path}: the model takes {feats} features, data set "
                f"'{data.name}' has {data.features}"
            )
        if cfg.synth.enabled:
            family_of(cfg.synth.part)
        lower(graph, **hardware_settings(cfg))  # refuse before anything is written
        gold = run_golden(graph, data.x_test)
    report["source"] = {"ir": str(path), "meta": graph.meta}
    report["accuracy"] = {
        "float": None,
        "brevitas": None,
        "quantized": float(np.mean(gold.prediction == data.y_test)),
    }
    report["equality"] = {
        "brevitas_vs_golden": {
            "skipped": f"model read from {path}: level 1 was checked when it was exported",
            "float32_exact": graph.meta.get("float32_exact"),
        }
    }
    return graph


def _hardware(
    cfg: Config, graph: Graph, data: Any, work: Path, log: StageLog, report: dict[str, Any]
) -> None:
    """Lower (both levels checked by golden), generate from the saved IR, simulate, synthesize.

    The lowered graph goes into ``model.qfab.npz``; generation, simulation and synthesis
    read it back from that file (and the design's manifest), never from objects in memory.
    """
    from hw_gen.passes import lower
    from hw_gen.verilog.emit import generate_verilog
    from qfab.golden import compare_levels

    x_pool = np.concatenate([data.x_test, data.x_train])
    x_check = quantize_input(graph.nodes[0], x_pool[: min(len(x_pool), 1000)])
    with log.stage("lower", "lower to the hardware graph (passes, folding)"):
        hw = lower(graph, **hardware_settings(cfg))
    held: dict[str, int] = {}
    if cfg.hw.fifo_sizing == "sim":
        with log.stage("fifos", "size the FIFOs by simulation (one frame per II)"):
            hw, held = size_fifos(hw, x_check[:8], work / "fifo_sizing")
        shutil.rmtree(work / "fifo_sizing", ignore_errors=True)
    with log.stage("check", "golden: hardware graph == model graph, node for node"):
        differs = compare_levels(graph, hw, x_check)
        if differs is not None:
            raise HardwareError(
                f"lowering changed the results (a qfab bug): node '{differs[0]}', vector "
                f"{differs[1]}, channel {differs[2]}: {differs[3]} -> {differs[4]}"
            )
        hw.meta["clock_mhz"] = cfg.hw.clock_mhz
        graph.lowered = hw
        graph.save(work / "model.qfab.npz")
    stored = Graph.load(work / "model.qfab.npz")
    with log.stage("extremes", "extreme vectors: each accumulator's min and max per channel"):
        extremes = extreme_vectors(stored)
    with log.stage("qonnx", "QONNX: write model.onnx, run it with qonnx == golden"):
        report["equality"]["qonnx_vs_golden"] = _qonnx(
            stored, x_pool[: len(x_check)], extremes.vectors, work
        )
    rtl, hls = cfg.hw.backend in ("rtl", "both"), cfg.hw.backend in ("hls", "both")
    lint: dict[str, Any] | None = None
    if rtl:
        with log.stage("rtl", "generate RTL from the IR file (one unit per hardware node)"):
            design = generate_verilog(stored.lowered, work / "rtl", clock_mhz=cfg.hw.clock_mhz)
            lint = _lint(work / "rtl", design)
    if hls:
        from hw_gen.hls.emit import generate_hls

        with log.stage("hls", "generate HLS C++ from the IR file (one function per node)"):
            hls_design = generate_hls(stored.lowered, work / "hls", clock_mhz=cfg.hw.clock_mhz)
        if not rtl:
            design = hls_design
    perf = design["perf"]
    report["hardware"] = {
        "top": design["top"],
        "folding_policy": hw.meta["folding"],
        "units": [{k: v for k, v in n.items() if k != "module"} for n in design["nodes"]],
        "folding": [
            {
                "unit": n.name,
                "op": n.op,
                "MH": int(n.tensors["weight"].shape[0]),
                "MW": int(n.tensors["weight"].shape[1]),
                "PE": n.attrs["pe"],
                "SIMD": n.attrs.get("simd", 1),
                "cycles": n.attrs["cycles"],
            }
            for n in stored.lowered.nodes
            if n.op in ("MVAU", "XnorMVAU", "VVAU")
        ],
        "ports": {
            "s_axis": {
                k: design["input"][k] for k in ("tdata_bits", "elems_per_beat", "beats_per_frame")
            },
            "m_axis": {
                k: design["output"][k] for k in ("tdata_bits", "elems_per_beat", "beats_per_frame")
            },
        },
        "backend": cfg.hw.backend,
        **({"lint": lint} if lint is not None else {}),
        "fifos": {
            n.name: {"depth": n.attrs["depth"], "held_in_sizing": held.get(n.name)}
            for n in stored.lowered.nodes
            if n.op == "FIFO"
        },
    }
    if lint and lint.get("warnings"):
        log.console.print(
            f"[yellow]![/] verilator -Wall: {lint['warnings']} warnings, first: {lint['first'][0]}"
        )
    report["perf"] = {
        "cycles_per_frame": {"measured": None, "model": perf["cycles_per_frame"], "ratio": None},
        "bottleneck": perf["bottleneck"],
        "clock_mhz": perf["clock_mhz"],
        "frames_per_s_model": perf["frames_per_s"],
        "latency_cycles": {"measured": None, "bound": perf["latency_bound"]},
        "unit_cycles": perf["nodes"],
        "port_cycles": perf["ports"],
    }
    if any(n.op == "SparseMVAU" for n in stored.lowered.nodes):
        _sparse_perf(stored.lowered, x_check[: cfg.sim.vectors], report)
    if cfg.sim.enabled and rtl:
        report["equality"]["rtl_vs_golden"] = _simulate(
            cfg, stored, data, extremes, work, log, report
        )
    if hls:
        _hls(cfg, stored, data, extremes, work, log, report)
    if cfg.synth.enabled and rtl:
        from hw_gen.synth_yosys import synth_xilinx

        with log.stage("synth", f"Yosys synth_xilinx for {cfg.synth.part}"):
            report["resources"] = synth_xilinx(work / "rtl", cfg.synth.part, work / "synth")


def _sparse_perf(hw: Graph, x_int: np.ndarray, report: dict[str, Any]) -> None:
    """Sparse engines run as fast as their data allows: the design's modelled cycles per
    frame become the slowest of the static units and each engine's model on ``x_int``
    (:mod:`hw_gen.sparse_perf`), and the report gets a row per sparse layer."""
    from hw_gen.sparse_perf import sparse_report

    rows = sparse_report(hw, x_int)
    perf = report["perf"]
    static = {
        k: v
        for k, v in {**perf.get("unit_cycles", {}), **perf.get("port_cycles", {})}.items()
        if k not in {r["layer"] for r in rows}
    }
    slowest = max(
        [*static.items(), *((r["layer"], r["cycles_per_frame_model"]) for r in rows)],
        key=lambda kv: kv[1],
    )
    perf["cycles_per_frame"]["model"] = slowest[1]
    perf["bottleneck"] = slowest[0]
    perf["frames_per_s_model"] = perf["clock_mhz"] * 1e6 / slowest[1]
    perf["model_kind"] = "sparse engines modelled on the simulated vectors (hw_gen.sparse_perf)"
    report["sparse"] = rows


def _qonnx(graph: Graph, x: np.ndarray, x_extreme: np.ndarray, work: Path) -> dict[str, Any]:
    """Write the model graph as ``model.onnx`` (for FINN / hls4ml users) and run that file
    with qonnx's executor on the extreme vectors (``x_extreme``, integers) and the data
    (``x``, floats): a third, independent opinion that must equal golden. A model whose
    integers float32 cannot carry (2^24 or more) gets no file, and the report says why;
    the hardware does not depend on it."""
    from qfab.errors import ExportError
    from quant_train.export_qonnx import compare_qonnx_to_golden, export_qonnx, load_qonnx

    try:
        path = export_qonnx(graph, work / "model.onnx")
    except ExportError as exc:
        return {"path": None, "skipped": str(exc)}
    first = graph.nodes[0]
    floats = (x_extreme * np.float32(first.attrs["scale"])).astype(np.float32)
    exact = np.all(quantize_input(first, floats) == x_extreme, axis=1)  # all, for 2^-k scales
    x = np.concatenate([floats[exact], x.astype(np.float32)])
    check = compare_qonnx_to_golden(graph, load_qonnx(path), x)
    return {"path": path.name, "extreme_vectors": int(exact.sum()), **check.as_dict()}


def _lint(design_dir: Path, design: dict[str, Any]) -> dict[str, Any]:
    """``verilator --lint-only -Wall`` on the generated design (expected: nothing)."""
    from sim.lint import verilator_lint

    try:
        found = verilator_lint([design_dir / s for s in design["sources"]], design["top"])
    except QfabError as exc:
        return {"tool": "verilator --lint-only -Wall", "error": str(exc)}
    return {"tool": "verilator --lint-only -Wall", "warnings": len(found), "first": found[:5]}


def _simulate(
    cfg: Config,
    graph: Graph,
    data: Any,
    extremes: ExtremeSet,
    work: Path,
    log: StageLog,
    report: dict[str, Any],
) -> dict[str, Any]:
    from sim.compare import compare_rtl_to_golden
    from sim.runner import load_manifest, run_cocotb

    x_int, n = _vectors(cfg, graph, data, extremes)
    counts = f"{len(extremes)} extreme + {n} data vectors"
    what = f"level 2: RTL == golden, {counts} on {cfg.sim.simulator}"
    manifest = load_manifest(work / "rtl")
    with log.stage("sim", what):
        result = run_cocotb(
            work / "rtl",
            x_int,
            simulator=cfg.sim.simulator,
            backpressure=cfg.sim.backpressure,
            seed=cfg.train.seed,
            build_dir=work / "sim_build",
        )
        tapped = [t["model_node"] for t in manifest["taps"]]
        eq = compare_rtl_to_golden(graph, x_int, result, manifest["output"]["model_node"], tapped)
    shutil.rmtree(work / "sim_build", ignore_errors=True)  # large, and rebuilt on demand
    measured = result.cycles_per_frame
    bound = report["perf"]["cycles_per_frame"]["model"]
    report["perf"]["cycles_per_frame"] = {
        "measured": measured,
        "model": bound,
        "ratio": None if measured is None else round(measured / bound, 4),
        "method": "steady state: mean spacing of frame completions, no backpressure"
        if not cfg.sim.backpressure
        else "with random backpressure (not steady state)",
        "backpressure": cfg.sim.backpressure,
    }
    report["perf"]["latency_cycles"]["measured"] = result.latency_cycles
    report["perf"]["total_cycles"] = result.total_cycles
    reached = extremes.summary()
    reached["lines"] = [r.describe() for r in extremes.reach.values()]
    return {
        "simulator": cfg.sim.simulator,
        **eq,
        "data_vectors": n,
        "extreme_vectors": len(extremes),
        "extremes": reached,
    }


def _vectors(cfg: Config, graph: Graph, data: Any, extremes: ExtremeSet) -> tuple[np.ndarray, int]:
    """The simulated vectors: the extreme ones first (the first layers' accumulators at
    their derived min and max per channel, deeper ones as far as qfab.extremes' search
    gets: data vectors almost never reach them), then ``sim.vectors`` data vectors."""
    pool = np.concatenate([data.x_test, data.x_train])
    n = min(cfg.sim.vectors, len(pool))
    return np.concatenate([extremes.vectors, quantize_input(graph.nodes[0], pool[:n])]), n


def _hls(
    cfg: Config,
    graph: Graph,
    data: Any,
    extremes: ExtremeSet,
    work: Path,
    log: StageLog,
    report: dict[str, Any],
) -> None:
    """Level 3: the HLS design's C simulation (g++, hls4ml's ap_types) == golden on the
    same vectors as the RTL, every tapped layer compared; then the Vitis HLS run (C
    synthesis, co-simulation, IP export) when ``vitis_hls`` is on PATH. Its test bench
    files (``tb_in.hex``, ``tb_expected.hex``: golden's output beats) are written first,
    so the script runs as it stands."""
    from hw_gen.hls.vitis import run_vitis_hls, write_testbench
    from sim.compare import compare_rtl_to_golden
    from sim.csim import CXX_FLAGS, compiler_version, run_csim
    from sim.runner import load_manifest

    manifest = load_manifest(work / "hls")
    x_int, n = _vectors(cfg, graph, data, extremes)
    write_testbench(work / "hls", graph, x_int[: min(len(x_int), 64)])
    if cfg.sim.enabled:
        what = f"level 3: HLS C simulation == golden, {len(extremes)} extreme + {n} data vectors"
        with log.stage("csim", what):
            result, times = run_csim(work / "hls", x_int, build_dir=work / "csim_build")
            tapped = [t["model_node"] for t in manifest["taps"]]
            out_node = manifest["output"]["model_node"]
            eq = compare_rtl_to_golden(graph, x_int, result, out_node, tapped, what="HLS")
        shutil.rmtree(work / "csim_build", ignore_errors=True)
        report["equality"]["hls_vs_golden"] = {
            "simulator": "g++ C simulation",
            **eq,
            "data_vectors": n,
            "extreme_vectors": len(extremes),
            "compile_s": round(times.compile_s, 3),
            "csim_s": round(times.run_s, 3),
            "compiler": compiler_version(),
            "flags": " ".join(CXX_FLAGS),
        }
    with log.stage("vitis", "Vitis HLS: C synthesis, C/RTL co-simulation, IP export"):
        report["hls"] = {"folder": "hls", "vitis": run_vitis_hls(work / "hls")}
    if not report["hls"]["vitis"]["ran"]:
        v = report["hls"]["vitis"]
        log.console.print(f"[yellow]![/] {v['why']}; to run it, in the run folder: {v['command']}")


@contextmanager
def _epochs(console: Console, label: str, epochs: int) -> Iterator[Any]:
    columns = (
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(label, total=epochs, loss=float("nan"))
        yield lambda epoch, loss: progress.update(task, completed=epoch + 1, loss=loss)


def _write_report(work: Path, report: dict[str, Any]) -> None:
    (work / "report.json").write_text(json.dumps(report, indent=2, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def print_summary(console: Console, report: dict[str, Any]) -> None:
    """The short table ``qfab run`` ends with."""
    acc = report["accuracy"]
    eq = report["equality"]
    table = Table(title="qfab summary", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    fl = "—" if acc["float"] is None else f"{acc['float']:.2%}"
    table.add_row("accuracy", f"float {fl}   quantized (golden) {acc['quantized']:.2%}")
    b = eq["brevitas_vs_golden"]
    if "skipped" in b:
        table.add_row("Brevitas == golden", b["skipped"])
    else:
        table.add_row(
            "Brevitas == golden", f"{b['mismatches']} mismatches / {b['vectors']} vectors"
        )
    if "rtl_vs_golden" in eq:
        r = eq["rtl_vs_golden"]
        table.add_row(
            f"RTL == golden ({r['simulator']})",
            f"{r['mismatches']} mismatches / {r['vectors']} vectors",
        )
    if "hls_vs_golden" in eq:
        h = eq["hls_vs_golden"]
        table.add_row(
            "HLS == golden (g++ C sim)",
            f"{h['mismatches']} mismatches / {h['vectors']} vectors   "
            f"compile {h['compile_s']:.1f} s   run {h['csim_s']:.2f} s",
        )
    if "hls" in report:
        v = report["hls"]["vitis"]
        table.add_row("Vitis HLS", "ran" if v["ran"] else f"not run: {v['why']} ({v['command']})")
    if "qonnx_vs_golden" in eq:
        q = eq["qonnx_vs_golden"]
        table.add_row(
            "QONNX == golden (qonnx)",
            q["skipped"]
            if "skipped" in q
            else f"{q['mismatches']} mismatches / {q['vectors']} vectors",
        )
    cpf = report["perf"]["cycles_per_frame"]
    if cpf["measured"] is not None:
        table.add_row(
            "cycles / frame",
            f"measured {cpf['measured']:.2f}   model {cpf['model']}   ratio {cpf['ratio']:.3f}",
        )
    elif cpf["model"] is not None:
        why = (
            "not simulated"
            if "rtl_vs_golden" not in eq
            else "not steady state: backpressure on"
            if cpf.get("backpressure")
            else "not measured: fewer than 3 frames"
        )
        table.add_row("cycles / frame", f"model {cpf['model']} ({why})")
    perf = report["perf"]
    latency = perf.get("latency_cycles") or {}
    if latency.get("measured") is not None:
        table.add_row(
            "latency (cycles)",
            f"measured {latency['measured']}   model bound {latency['bound']}",
        )
    if perf.get("bottleneck"):
        table.add_row(
            "throughput (model)",
            f"{perf['frames_per_s_model']:,.0f} frames/s at {perf['clock_mhz']:g} MHz "
            f"(bottleneck {perf['bottleneck']})",
        )
    for r in report.get("sparse", []):
        table.add_row(
            f"sparse engine {r['layer']}",
            f"{r['pes']} PEs, model {r['cycles_per_frame_model']} cycles/frame (ideal "
            f"{r['ideal_cycles']}, efficiency {r['efficiency_model']:.0%}), "
            f"{r['speedup_model']}x a dense MVAU with {r['pes']} multipliers, "
            f"{r['memory_bytes']:,} bytes",
        )
    if "resources" in report:
        res = report["resources"]
        depth = res.get("logic_depth")
        table.add_row(
            f"resources ({res['tool']}, {res['part']})",
            f"LUT {res['LUT']}   FF {res['FF']}   BRAM36 {res['BRAM36']}   DSP {res['DSP']}"
            + (f"   logic depth {depth}" if depth is not None else ""),
        )
    console.print(table)
