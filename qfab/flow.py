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
from qfab.extremes import extreme_vectors
from qfab.folders import atomic_folder
from qfab.golden import quantize_input, run_golden
from qfab.ir import Graph
from qfab.run_folder import STAGE_FILES, STAGES, RunFolder, ancestors, jsonable


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
    cfg: Config,
    out: Path,
    console: Console | None = None,
    from_ir: Path | None = None,
    reuse: Path | None = None,
    brevitas: tuple[Any, tuple[int, ...], str] | None = None,
    until: str = "report",
) -> dict[str, Any]:
    """A new run folder ``out`` (``model.qfab.npz``, ``model.onnx``, ``rtl/``,
    ``report.json``, ...): the stages from the first one the model's source needs through
    ``until``, then the report; returns the report.

    The model comes from training (the default), from ``from_ir`` (an exported IR file,
    e.g. ``qfab compress``'s ``model.qfab.npz``; the data set still gives the test
    vectors), from ``reuse`` (a run folder whose trained and exported model this config
    shares: same ``dataset``, ``model``, ``train`` and ``compress``, checked; its train and
    export stages are copied and the run starts at ``lower``: a sweep over foldings trains
    once), or from ``brevitas`` (``(model, input_shape, label)``: the user's own Brevitas
    model, traced at export). ``until`` stops early: ``qfab train`` is ``until="train"``.

    A failed equality is a finished run, not a partial one: the folder is kept (the
    report names the first mismatch, the IR and RTL are there to inspect) and the
    :class:`MismatchError` is raised after it is in place. Any other error leaves nothing.
    """
    console = console or Console()
    with atomic_output(Path(out)) as work:
        folder = RunFolder(work, shown=Path(out))
        folder.write_config(cfg)
        first = "train"
        if from_ir is not None:
            folder.write_state({"stages": {}, "source": {"ir": str(Path(from_ir).resolve())}})
            first = "export"
        elif brevitas is not None:
            folder.write_state({"stages": {}, "source": {"brevitas": brevitas[2]}})
            first = "export"
        elif reuse is not None:
            copy_trained(Path(reuse), folder, cfg)
            first = "lower"
        report = _stages_then_report(
            folder,
            console,
            first,
            until,
            from_ir=from_ir,
            brevitas=brevitas[:2] if brevitas else None,
        )
    raise_on_mismatch(report, Path(out))
    return report


def _stages_then_report(
    folder: RunFolder, console: Console, first: str, last: str, **source: Any
) -> dict[str, Any]:
    """:func:`run_stages` ``first`` .. ``last``, then the report stage (unless a level-1
    mismatch already ended the run with its report)."""
    report = run_stages(folder, console, first, last, **source)
    if last != "report" and not report.get("mismatch"):
        report = run_stages(folder, console, "report")
    return report


def rerun_stage(
    run_dir: Path, stage: str, overrides: list[str], console: Console | None = None
) -> dict[str, Any]:
    """One stage (then the report) in an existing run folder, updated as a whole: the
    stage works on a copy that replaces the folder only when it is done. ``overrides``
    (``key=value``) may only touch keys this stage or a later one reads: an earlier
    stage's results would otherwise belong to another config. Returns the report; a
    failed equality raises :class:`MismatchError` after the folder is in place."""
    from qfab.run_folder import apply_overrides, overridden_stage

    console = console or Console()
    path = Path(run_dir)
    if stage not in STAGES:
        raise ConfigError(f"stage '{stage}' is not known; allowed: {', '.join(STAGES)}")
    cfg = RunFolder(path).config()  # refuses a folder that is not a run folder
    first = overridden_stage(overrides)
    if first is not None and STAGES.index(first) < STAGES.index(stage):
        redo = (
            f"`qfab train {Path(run_dir) / 'config.yaml'} --out NEW_DIR -o ...` (a new run)"
            if first == "train"
            else f"`qfab {first} {run_dir} -o ...` (then the stages after it)"
        )
        raise ConfigError(
            f"-o {' -o '.join(overrides)}: read by the '{first}' stage, which `qfab {stage}` "
            f"does not re-run; use {redo}"
        )
    with atomic_output(path) as work:
        shutil.copytree(path, work, dirs_exist_ok=True, symlinks=True)
        folder = RunFolder(work, shown=path)
        if overrides:
            data = cfg.model_dump(mode="json", exclude_unset=True)
            folder.write_config(apply_overrides(data, overrides, str(path / "config.yaml")))
        report = _stages_then_report(folder, console, stage, stage)
    raise_on_mismatch(report, path)
    return report


#: The config sections the train and export stages read: runs equal in these share a model.
TRAINING_SECTIONS = ("dataset", "model", "train", "compress")


def training_key(cfg: Config) -> dict[str, Any]:
    """What decides a run's trained model (and so its IR): two configs with the same key
    can share one training (``run_flow(reuse=...)``)."""
    full = cfg.model_dump(mode="json")
    return {k: full[k] for k in TRAINING_SECTIONS}


def copy_trained(source: Path, folder: RunFolder, cfg: Config) -> None:
    """The train and export stages of the run folder ``source`` into ``folder`` (whose
    config is ``cfg``): refused unless both configs train the same model."""
    theirs = RunFolder(source)
    if training_key(theirs.config()) != training_key(cfg):
        raise ConfigError(
            f"reuse {source}: it was trained with other {', '.join(TRAINING_SECTIONS)} "
            "settings; its model is not this config's"
        )
    done = theirs.state()["stages"]
    if "export" not in done or theirs.part("export")["equality"]["brevitas_vs_golden"].get(
        "mismatches"
    ):
        raise ConfigError(f"reuse {source}: its export stage has not run or failed level 1")
    state = {"stages": {}}
    if "source" in theirs.state():
        state["source"] = theirs.state()["source"]
    for stage in ("train", "export"):
        if stage not in done:
            continue
        for name in STAGE_FILES[stage]:
            if (source / name).is_file():
                shutil.copy2(source / name, folder.path / name)
        (folder.path / "parts").mkdir(exist_ok=True)
        shutil.copy2(source / "parts" / f"{stage}.json", folder.path / "parts" / f"{stage}.json")
        state["stages"][stage] = done[stage]
    state["reused"] = str(source)
    folder.write_state(state)
    # the hardware graph of the source (if any) is not this run's: drop it
    graph = Graph.load(folder.path / "model.qfab.npz")
    graph.lowered = None
    graph.save(folder.path / "model.qfab.npz")


def raise_on_mismatch(report: dict[str, Any], out: Path) -> None:
    """The failed equality of a finished run, as the error ``qfab`` exits 2 with."""
    if report.get("mismatch"):
        raise MismatchError(f"{report['mismatch']} (report: {out / 'report.json'})")


def run_stages(
    folder: RunFolder,
    console: Console,
    first: str,
    last: str = "report",
    from_ir: Path | None = None,
    brevitas: tuple[Any, tuple[int, ...]] | None = None,
) -> dict[str, Any]:
    """Run the stages ``first`` .. ``last`` in ``folder`` (its earlier stages must be
    done), each recording its part; return the report so far.

    A level-1 mismatch ends the run after ``export`` (no hardware for a model the IR does
    not reproduce): the report is written and returned with its ``mismatch``.
    """
    cfg = folder.config()
    i, j = STAGES.index(first), STAGES.index(last)
    missing = [s for s in ancestors(first) if s != "train" and not folder.done(s)]
    if first != "train" and not folder.done("train") and not _untrained_source(folder):
        missing.insert(0, "train")
    if missing and first != "report":  # a report shows whatever has run
        raise ConfigError(
            f"{folder.shown}: stage '{missing[0]}' has not run; run `qfab {missing[0]} "
            f"{folder.shown}` (or `qfab run`) first"
        )
    source = folder.state().get("source")
    if first == "export" and source and from_ir is None and brevitas is None:
        raise ConfigError(
            f"{folder.shown}: its model came from "
            f"{' '.join(f'{k} {v}' for k, v in source.items())}, not from `qfab train`: export it "
            "again with `qfab run CONFIG --from IR --out DIR` or `qfab export model.py:build`"
        )
    if first in ("train", "export") and folder.state().get("reused"):
        raise ConfigError(
            f"{folder.shown}: its model was copied from {folder.state()['reused']}; "
            "train or export there, or start a new run"
        )
    level1 = folder.part("export").get("equality", {}).get("brevitas_vs_golden", {})
    if first not in ("train", "export", "report") and level1.get("mismatches"):
        raise ConfigError(
            f"{folder.shown}: level 1 failed (Brevitas != golden), so it has no hardware "
            "stages; re-run `qfab train` or `qfab export`"
        )
    folder.forget_from(first)
    ctx = StageContext(cfg, folder, StageLog(console))
    for stage in STAGES[i : j + 1]:
        ctx.part = {}
        ctx.log.seconds = {}
        if stage == "export" and from_ir is not None:
            _stage_load_ir(ctx, from_ir)
        elif stage == "export" and brevitas is not None:
            _stage_export_brevitas(ctx, *brevitas)
        else:
            STAGE_FUNCTIONS[stage](ctx)
        folder.record(stage, ctx.part, ctx.log.seconds)
        if stage == "export" and ctx.part["equality"]["brevitas_vs_golden"].get("mismatches"):
            return _stage_report(ctx, quiet=True)
    return folder.report() if last != "report" else ctx.report


def _untrained_source(folder: RunFolder) -> bool:
    """A folder whose model came from an IR file or a user's Brevitas model: no train."""
    return bool(folder.state().get("source"))


class StageContext:
    """What a stage gets: the config, the run folder, the log, its own report part, and
    the data set (loaded on first use: the lower stage, say, may never need it)."""

    def __init__(self, cfg: Config, folder: RunFolder, log: StageLog) -> None:
        self.cfg, self.folder, self.log = cfg, folder, log
        self.part: dict[str, Any] = {}
        self.report: dict[str, Any] = {}
        self._data: Any = None

    @property
    def work(self) -> Path:
        return self.folder.path

    @property
    def data(self) -> Any:
        if self._data is None:
            from quant_train.datasets import load_dataset

            with self.log.stage("data", f"data set '{self.cfg.dataset_name}'"):
                self._data = load_dataset(self.cfg.dataset_name, self.cfg.dataset_path)
        return self._data

    def graph(self) -> Graph:
        return Graph.load(self.work / "model.qfab.npz")

    def check_pool(self, graph: Graph) -> np.ndarray:
        """The integer vectors (quantized by ``graph``'s input node) golden compares the
        two graph levels on, and FIFO sizing and the sparse model run on: up to 1,000 of
        test then training data."""
        pool = np.concatenate([self.data.x_test, self.data.x_train])
        return quantize_input(graph.nodes[0], pool[: min(len(pool), 1000)])


def _dataset_summary(data: Any) -> dict[str, Any]:
    return {
        "name": data.name,
        "train": len(data.y_train),
        "test": len(data.y_test),
        "features": data.features,
        "classes": data.classes,
    }


def _zoo_model(cfg: Config, data: Any, **quant: Any) -> Any:
    """The configured zoo model, freshly seeded: the same weights every time it is built."""
    from quant_train.train import seed_everything
    from quant_train.zoo import IMAGE_ARCHS, build_model

    m = cfg.model
    seed_everything(cfg.train.seed)
    shape = data.image_shape if m.arch in IMAGE_ARCHS else (data.features,)
    return build_model(
        m.arch, shape, data.classes, hidden=list(m.hidden), width=m.width, groups=m.groups, **quant
    )


def _quant(cfg: Config) -> dict[str, Any]:
    m = cfg.model
    return {
        "weight_bits": m.weight_bits,
        "act_bits": m.act_bits,
        "input_bits": m.input_bits,
        "per_channel": m.per_channel,
    }


def stage_train(ctx: StageContext) -> None:
    """Float baseline (optional) and QAT; writes ``brevitas_model.pt`` (its state dict)."""
    import torch

    from quant_train.train import TrainSettings, accuracy, predict, train_classifier

    cfg, data = ctx.cfg, ctx.data
    t = cfg.train
    settings = TrainSettings(t.epochs, t.seed, t.lr, t.batch_size)
    precheck_hardware(cfg, _zoo_model(cfg, data, **_quant(cfg)))
    float_acc = None
    console = ctx.log.console
    if t.float_baseline:
        fmodel = _zoo_model(cfg, data, weight_bits=None)  # the same topology in float32
        with _epochs(console, "float baseline", settings.epochs) as tick:
            train_classifier(fmodel, data.x_train, data.y_train, settings, tick)
        float_acc = accuracy(predict(fmodel, data.x_test), data.y_test)
    qmodel = _zoo_model(cfg, data, **_quant(cfg))
    label = f"QAT w{cfg.model.weight_bits}a{cfg.model.act_bits}"
    with _epochs(console, label, settings.epochs) as tick:
        train_classifier(qmodel, data.x_train, data.y_train, settings, tick)
    torch.save(qmodel.state_dict(), ctx.work / "brevitas_model.pt")
    ctx.part = {
        "dataset": _dataset_summary(data),
        "accuracy": {
            "float": float_acc,
            "brevitas": accuracy(predict(qmodel, data.x_test), data.y_test),
        },
    }


def trained_model(cfg: Config, data: Any, run_dir: Path) -> Any:
    """The run's Brevitas model: the zoo model of its config with ``brevitas_model.pt``."""
    import torch

    model = _zoo_model(cfg, data, **_quant(cfg))
    state = torch.load(run_dir / "brevitas_model.pt", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


def stage_export(ctx: StageContext) -> None:
    """Brevitas -> IR (``model.qfab.npz``), level 1 on every test vector, extreme vectors,
    QONNX. The model is rebuilt from the config and ``brevitas_model.pt``; its test
    accuracy must be the one training measured (else the file does not hold the model)."""
    from quant_train.equality import compare_brevitas_to_golden
    from quant_train.export_ir import export_model
    from quant_train.train import accuracy, predict

    cfg, data, work = ctx.cfg, ctx.data, ctx.work
    with ctx.log.stage("export", "export Brevitas → IR (thresholds from the model's own ops)"):
        qmodel = trained_model(cfg, data, work)
        acc = accuracy(predict(qmodel, data.x_test), data.y_test)
        trained = ctx.folder.part("train")["accuracy"]["brevitas"]
        if acc != trained:
            raise ConfigError(
                f"{work / 'brevitas_model.pt'}: gives test accuracy {acc:.4f}, training "
                f"measured {trained:.4f}: not this config's model (re-run `qfab train`)"
            )
        graph = export_model(qmodel, {"dataset": data.name, "config": cfg.model_dump(mode="json")})
        graph.save(work / "model.qfab.npz")
    with ctx.log.stage("golden", "level 1: Brevitas == golden on every test vector"):
        eq1 = compare_brevitas_to_golden(qmodel, graph, data.x_test)
    _finish_export(ctx, graph, {**eq1.as_dict(), "float32_exact": graph.meta["float32_exact"]})


def _finish_export(ctx: StageContext, graph: Graph, level1: dict[str, Any]) -> None:
    """The export stage's common end: accuracy of golden, level 1, and (when level 1
    holds) the extreme vectors (``extremes.npz``) and the QONNX check."""
    data = ctx.data
    gold = run_golden(graph, data.x_test)
    ctx.part.setdefault("dataset", _dataset_summary(data))
    ctx.part.setdefault("accuracy", {}).update(
        {"quantized": float(np.mean(gold.prediction == data.y_test))}
    )
    ctx.part["equality"] = {"brevitas_vs_golden": level1}
    if level1.get("mismatches"):
        return
    with ctx.log.stage("extremes", "extreme vectors: each accumulator's min and max per channel"):
        extremes = extreme_vectors(graph)
        np.savez_compressed(ctx.work / "extremes.npz", vectors=extremes.vectors)
        reached = extremes.summary()
        reached["lines"] = [r.describe() for r in extremes.reach.values()]
        ctx.part["extremes"] = reached
    with ctx.log.stage("qonnx", "QONNX: write model.onnx, run it with qonnx == golden"):
        pool = np.concatenate([data.x_test, data.x_train])
        ctx.part["equality"]["qonnx_vs_golden"] = _qonnx(
            graph, pool[: min(len(pool), 1000)], extremes.vectors, ctx.work
        )


def _stage_load_ir(ctx: StageContext, path: Path) -> None:
    """The export stage of ``qfab run --from IR``: an exported IR as the model, checked
    against the data set, its lowering prechecked (refused before anything is written)."""
    from hw_gen.passes import lower
    from hw_gen.synth_yosys import family_of

    cfg, data = ctx.cfg, ctx.data
    with ctx.log.stage("load", f"model from {path}"):
        graph = Graph.load(path)
        feats = int(graph.nodes[0].attrs["features"])
        if feats != data.features:
            raise ConfigError(
                f"--from {path}: the model takes {feats} features, data set "
                f"'{data.name}' has {data.features}"
            )
        if cfg.synth.enabled:
            family_of(cfg.synth.part)
        lower(graph, **hardware_settings(cfg))
        graph.lowered = None
        graph.save(ctx.work / "model.qfab.npz")
    ctx.part["source"] = {"ir": str(Path(path).resolve()), "meta": graph.meta}
    ctx.part["accuracy"] = {"float": None, "brevitas": None}
    _finish_export(
        ctx,
        graph,
        {
            "skipped": f"model read from {path}: level 1 was checked when it was exported",
            "float32_exact": graph.meta.get("float32_exact"),
        },
    )


def _stage_export_brevitas(ctx: StageContext, model: Any, input_shape: tuple[int, ...]) -> None:
    """The export stage of ``qfab export model.py:build``: the user's own Brevitas model,
    traced into the IR, level 1 on the data set's test vectors (fed in the model's own
    layout: ``[N, C, H, W]`` or ``[N, F]``).

    qfab's data sets are flattened NHWC vectors, and every later stage feeds them to the
    IR as they are; so the IR must read its input in that order, which is refused
    otherwise (a model that flattens a multi-channel image before its input quantizer
    reads NCHW order)."""
    from quant_train.trace_brevitas import (
        compare_traced_to_golden,
        export_brevitas,
        ir_to_nchw,
        trace_model,
    )
    from quant_train.train import accuracy

    data = ctx.data
    shape = tuple(input_shape)
    if int(np.prod(shape)) != data.features:
        raise ConfigError(
            f"--input-shape {','.join(map(str, shape))}: {int(np.prod(shape))} inputs; data "
            f"set '{data.name}' has {data.features} features"
        )
    x_model = ir_to_nchw(data.x_test, shape) if len(shape) == 3 else data.x_test
    with ctx.log.stage("export", "export your Brevitas model → IR (traced)"):
        graph = export_brevitas(model, shape, {"dataset": data.name})
        if not np.array_equal(trace_model(model, shape).to_ir(x_model), data.x_test):
            raise ConfigError(
                f"the model reads its {shape} input in another order than the data set's "
                "flattened NHWC vectors (it flattens a multi-channel image before its input "
                "quantizer): quantize the image first, or give --input-shape "
                f"{data.features} and flatten in the data set's order"
            )
        graph.save(ctx.work / "model.qfab.npz")
    with ctx.log.stage("golden", "level 1: Brevitas == golden on every test vector"):
        eq1 = compare_traced_to_golden(model, graph, x_model)
    gold = run_golden(graph, data.x_test)
    ctx.part["source"] = {"brevitas": type(model).__name__, "input_shape": list(shape)}
    ctx.part["accuracy"] = {
        "float": None,
        "brevitas": accuracy(gold.logits, data.y_test) if not eq1.mismatches else None,
    }
    _finish_export(ctx, graph, {**eq1.as_dict(), "float32_exact": graph.meta["float32_exact"]})


def stage_lower(ctx: StageContext) -> None:
    """Model graph -> hardware graph (folding, FIFOs), both levels checked by golden; the
    hardware graph goes into ``model.qfab.npz`` beside the model graph."""
    from hw_gen.passes import lower
    from qfab.golden import compare_levels

    cfg, work = ctx.cfg, ctx.work
    graph = ctx.graph()
    graph.lowered = None
    x_check = ctx.check_pool(graph)
    with ctx.log.stage("lower", "lower to the hardware graph (passes, folding)"):
        hw = lower(graph, **hardware_settings(cfg))
    held: dict[str, int] = {}
    if cfg.hw.fifo_sizing == "sim":
        with ctx.log.stage("fifos", "size the FIFOs by simulation (one frame per II)"):
            hw, held = size_fifos(hw, x_check[:8], work / "fifo_sizing")
        shutil.rmtree(work / "fifo_sizing", ignore_errors=True)
    with ctx.log.stage("check", "golden: hardware graph == model graph, node for node"):
        differs = compare_levels(graph, hw, x_check)
        if differs is not None:
            raise HardwareError(
                f"lowering changed the results (a qfab bug): node '{differs[0]}', vector "
                f"{differs[1]}, channel {differs[2]}: {differs[3]} -> {differs[4]}"
            )
        hw.meta["clock_mhz"] = cfg.hw.clock_mhz
        graph.lowered = hw
        graph.save(work / "model.qfab.npz")
    ctx.part["hardware"] = {
        "folding_policy": hw.meta["folding"],
        "fifos_held_in_sizing": held,
    }


def stage_gen(ctx: StageContext) -> None:
    """Verilog (and lint) and/or HLS C++ from the IR file; the design's model of cycles."""
    from hw_gen.verilog.emit import generate_verilog

    cfg, work = ctx.cfg, ctx.work
    stored = ctx.graph()
    if stored.lowered is None:
        raise ConfigError(f"{work / 'model.qfab.npz'}: no hardware graph; run `qfab lower` first")
    rtl, hls = cfg.hw.backend in ("rtl", "both"), cfg.hw.backend in ("hls", "both")
    lint: dict[str, Any] | None = None
    if rtl:
        with ctx.log.stage("rtl", "generate RTL from the IR file (one unit per hardware node)"):
            design = generate_verilog(stored.lowered, work / "rtl", clock_mhz=cfg.hw.clock_mhz)
            lint = _lint(work / "rtl", design)
    if hls:
        from hw_gen.hls.emit import generate_hls

        with ctx.log.stage("hls", "generate HLS C++ from the IR file (one function per node)"):
            hls_design = generate_hls(stored.lowered, work / "hls", clock_mhz=cfg.hw.clock_mhz)
        if not rtl:
            design = hls_design
    perf = design["perf"]
    held = ctx.folder.part("lower").get("hardware", {}).get("fifos_held_in_sizing", {})
    ctx.part["hardware"] = {
        "top": design["top"],
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
        ctx.log.console.print(
            f"[yellow]![/] verilator -Wall: {lint['warnings']} warnings, first: {lint['first'][0]}"
        )
    ctx.part["perf"] = {
        "cycles_per_frame": {"measured": None, "model": perf["cycles_per_frame"], "ratio": None},
        "bottleneck": perf["bottleneck"],
        "clock_mhz": perf["clock_mhz"],
        "frames_per_s_model": perf["frames_per_s"],
        "latency_cycles": {"measured": None, "bound": perf["latency_bound"]},
        "unit_cycles": perf["nodes"],
        "port_cycles": perf["ports"],
    }


def stage_sim(ctx: StageContext) -> None:
    """Level 2 (RTL == golden, cocotb) and level 3 (HLS C simulation == golden) on the
    extreme vectors and ``sim.vectors`` data vectors; measured cycles."""
    cfg, work = ctx.cfg, ctx.work
    stored = ctx.graph()
    if any(n.op == "SparseMVAU" for n in stored.lowered.nodes):
        # the sparse engines' cycles depend on the data: modelled on the simulated vectors
        ctx.part["perf"] = json.loads(json.dumps(ctx.folder.part("gen")["perf"]))
        _sparse_perf(stored.lowered, ctx.check_pool(stored)[: cfg.sim.vectors], ctx.part)
    if (work / "hls").is_dir():  # Vitis' C/RTL co-simulation bench: golden's output beats
        from hw_gen.hls.vitis import write_testbench

        x_int, _ = _vectors(ctx, stored)
        write_testbench(work / "hls", stored, x_int[: min(len(x_int), 64)])
    if not cfg.sim.enabled:
        return
    if (ctx.work / "rtl").is_dir():
        ctx.part["equality"] = {"rtl_vs_golden": _simulate(ctx, stored)}
    if (ctx.work / "hls").is_dir():
        ctx.part.setdefault("equality", {})["hls_vs_golden"] = _csim(ctx, stored)


def stage_synth(ctx: StageContext) -> None:
    """Yosys synthesis of the RTL; Vitis HLS on the HLS design where it is installed."""
    cfg, work = ctx.cfg, ctx.work
    if cfg.synth.enabled and (work / "rtl").is_dir():
        from hw_gen.synth_yosys import synth_xilinx

        with ctx.log.stage("synth", f"Yosys synth_xilinx for {cfg.synth.part}"):
            ctx.part["resources"] = synth_xilinx(work / "rtl", cfg.synth.part, work / "synth")
        if cfg.synth.per_unit:
            what = "Yosys again, hierarchy kept: each unit's own LUT/FF/BRAM/DSP"
            with ctx.log.stage("synth_units", what):
                units = synth_xilinx(
                    work / "rtl", cfg.synth.part, work / "synth_units", per_unit=True
                )
            shutil.rmtree(work / "synth_units", ignore_errors=True)
            ctx.part["resources_per_unit"] = {
                "units": units["units"],
                "top_glue": units["top_glue"],
                "totals": {k: units[k] for k in ("LUT", "FF", "BRAM36", "DSP")},
                "note": "hierarchy kept (no optimization across units): its totals are "
                "above the flat run's 'resources'",
            }
    if (work / "hls").is_dir():
        from hw_gen.hls.vitis import run_vitis_hls

        with ctx.log.stage("vitis", "Vitis HLS: C synthesis, C/RTL co-simulation, IP export"):
            ctx.part["hls"] = {"folder": "hls", "vitis": run_vitis_hls(work / "hls")}
        v = ctx.part["hls"]["vitis"]
        if not v["ran"]:
            ctx.log.console.print(
                f"[yellow]![/] {v['why']}; to run it, in the run folder: {v['command']}"
            )


def _stage_report(ctx: StageContext, quiet: bool = False) -> dict[str, Any]:
    """Merge the stages' parts into ``report.json`` (and ``report.html``); print the
    summary. ``mismatch`` names the first failed equality, if any."""
    folder = ctx.folder
    report = {"config": ctx.cfg.model_dump(mode="json"), **folder.report()}
    report["seconds"] = {
        k: v for s in folder.state()["stages"].values() for k, v in s["seconds"].items()
    }
    report["stages"] = [s for s in STAGES if s in folder.state()["stages"]]
    lowered = Graph.load(folder.path / "model.qfab.npz").lowered if folder.done("lower") else None
    if lowered is not None:
        from sim.layers import layer_table

        units = report.get("perf", {}).get("units_measured")
        report["layers"] = layer_table(lowered, units, report.get("resources_per_unit"))
    eq = report.get("equality", {})
    b = eq.get("brevitas_vs_golden", {})
    if b.get("mismatches"):
        report["mismatch"] = (
            f"Brevitas != golden on {b['mismatches']}/{b['vectors']} vectors; "
            f"first: {b['first_mismatch']}"
        )
    for key, what in (("rtl_vs_golden", "RTL"), ("hls_vs_golden", "HLS C simulation")):
        e = eq.get(key)
        if e and e["mismatches"] and not report.get("mismatch"):
            report["mismatch"] = (
                f"{what} != golden on {e['mismatches']}/{e['vectors']} "
                f"vectors; first: {e['first_mismatch']}"
            )
    q = eq.get("qonnx_vs_golden")
    if q and q.get("mismatches") and not report.get("mismatch"):
        report["mismatch"] = (
            f"QONNX (qonnx's executor) != golden on {q['mismatches']}/"
            f"{q['vectors']} vectors; first: {q['first_mismatch']}"
        )
    _write_report(folder.path, report)
    write_html_report(folder)
    if not quiet:
        print_summary(ctx.log.console, report)
    ctx.report = report
    return report


def stage_report(ctx: StageContext) -> None:
    _stage_report(ctx)


def write_html_report(folder: RunFolder) -> Path:
    """``report.html`` from the folder's ``report.json`` (:mod:`qfab.report_html`), titled
    with the folder's own name (not the temporary copy's it is written in)."""
    from qfab.report_html import write_run_report

    return write_run_report(folder.path, name=folder.shown.name)


STAGE_FUNCTIONS = {
    "train": stage_train,
    "export": stage_export,
    "lower": stage_lower,
    "gen": stage_gen,
    "sim": stage_sim,
    "synth": stage_synth,
    "report": stage_report,
}


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


def _simulate(ctx: StageContext, graph: Graph) -> dict[str, Any]:
    from sim.compare import compare_rtl_to_golden
    from sim.layers import cycles_at_outputs
    from sim.runner import load_manifest, run_cocotb

    cfg, work = ctx.cfg, ctx.work
    x_int, n = _vectors(ctx, graph)
    extremes = ctx.folder.part("export")["extremes"]
    counts = f"{extremes['vectors']} extreme + {n} data vectors"
    what = f"level 2: RTL == golden, {counts} on {cfg.sim.simulator}"
    manifest = load_manifest(work / "rtl")
    with ctx.log.stage("sim", what):
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
    if eq["mismatches"]:
        eq["waveform"] = _first_mismatch_waves(ctx, graph, x_int, eq["first_mismatch"]["vector"])
    measured = result.cycles_per_frame
    model_perf = ctx.part.get("perf") or ctx.folder.part("gen")["perf"]
    bound = model_perf["cycles_per_frame"]["model"]
    ctx.part.setdefault("perf", {})
    ctx.part["perf"] |= {
        "cycles_per_frame": {
            "measured": measured,
            "model": bound,
            "ratio": None if measured is None else round(measured / bound, 4),
            "method": "steady state: mean spacing of frame completions, no backpressure"
            if not cfg.sim.backpressure
            else "with random backpressure (not steady state)",
            "backpressure": cfg.sim.backpressure,
        },
        "latency_cycles": {"measured": result.latency_cycles},
        "total_cycles": result.total_cycles,
        "units_measured": cycles_at_outputs(graph.lowered, result.unit_handshakes),
    }
    return {
        "simulator": cfg.sim.simulator,
        **eq,
        "data_vectors": n,
        "extreme_vectors": int(extremes["vectors"]),
        "extremes": extremes,
    }


def _first_mismatch_waves(
    ctx: StageContext, graph: Graph, x_int: np.ndarray, vector: int
) -> dict[str, Any]:
    """The waveform (FST) of the first mismatching vector, kept as
    ``waves/first_mismatch.fst``: the vector alone from reset, or the run's vectors up
    to it when the vector alone does not mismatch (:func:`sim.waves.dump_first_mismatch`).
    A failure to dump is reported, not raised: the mismatch is the run's result."""
    from sim.waves import dump_first_mismatch

    work = ctx.work
    with ctx.log.stage("waves", f"waveform of the first mismatching vector ({vector})"):
        try:
            dump = dump_first_mismatch(
                work / "rtl",
                x_int[vector],
                work / "waves" / "first_mismatch.fst",
                simulator=ctx.cfg.sim.simulator,
                build_dir=work / "wave_build",
                graph=graph,
                preceding=x_int[:vector],
                backpressure=ctx.cfg.sim.backpressure,
                seed=ctx.cfg.train.seed,
            )
            kept = dump.as_report(work)
        except QfabError as exc:
            kept = {"path": None, "error": str(exc)}
        finally:
            shutil.rmtree(work / "wave_build", ignore_errors=True)
    return kept


def _vectors(ctx: StageContext, graph: Graph) -> tuple[np.ndarray, int]:
    """The simulated vectors: the extreme ones first (the first layers' accumulators at
    their derived min and max per channel, deeper ones as far as qfab.extremes' search
    gets: data vectors almost never reach them; ``extremes.npz`` of the export stage),
    then ``sim.vectors`` data vectors."""
    with np.load(ctx.work / "extremes.npz") as f:
        extremes = f["vectors"]
    pool = np.concatenate([ctx.data.x_test, ctx.data.x_train])
    n = min(ctx.cfg.sim.vectors, len(pool))
    return np.concatenate([extremes, quantize_input(graph.nodes[0], pool[:n])]), n


def _csim(ctx: StageContext, graph: Graph) -> dict[str, Any]:
    """Level 3: the HLS design's C simulation (g++, hls4ml's ap_types) == golden on the
    same vectors as the RTL, every tapped layer compared."""
    from sim.compare import compare_rtl_to_golden
    from sim.csim import CXX_FLAGS, compiler_version, run_csim
    from sim.runner import load_manifest

    work = ctx.work
    manifest = load_manifest(work / "hls")
    x_int, n = _vectors(ctx, graph)
    n_extreme = len(x_int) - n
    what = f"level 3: HLS C simulation == golden, {n_extreme} extreme + {n} data vectors"
    with ctx.log.stage("csim", what):
        result, times = run_csim(work / "hls", x_int, build_dir=work / "csim_build")
        tapped = [t["model_node"] for t in manifest["taps"]]
        out_node = manifest["output"]["model_node"]
        eq = compare_rtl_to_golden(graph, x_int, result, out_node, tapped, what="HLS")
    shutil.rmtree(work / "csim_build", ignore_errors=True)
    return {
        "simulator": "g++ C simulation",
        **eq,
        "data_vectors": n,
        "extreme_vectors": n_extreme,
        "compile_s": round(times.compile_s, 3),
        "csim_s": round(times.run_s, 3),
        "compiler": compiler_version(),
        "flags": " ".join(CXX_FLAGS),
    }


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
    (work / "report.json").write_text(json.dumps(report, indent=2, default=jsonable) + "\n")


def print_summary(console: Console, report: dict[str, Any]) -> None:
    """The short table ``qfab run`` (and every stage command) ends with: what the stages
    done so far have measured."""
    acc = report.get("accuracy", {})
    eq = report.get("equality", {})
    table = Table(title="qfab summary", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")

    def pct(key: str) -> str:
        return "—" if acc.get(key) is None else f"{acc[key]:.2%}"

    if "quantized" in acc:
        table.add_row("accuracy", f"float {pct('float')}   quantized (golden) {pct('quantized')}")
    else:
        table.add_row("accuracy", f"float {pct('float')}   Brevitas {pct('brevitas')}")
    b = eq.get("brevitas_vs_golden")
    if b is None:
        table.add_row("Brevitas == golden", "not exported yet (qfab export)")
    elif "skipped" in b:
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
    perf = report.get("perf")
    if perf is None:
        console.print(table)
        return
    cpf = perf["cycles_per_frame"]
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
