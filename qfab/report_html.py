"""``DIR/report.html``: one self-contained page a run can be shared as.

A run's results are JSON (``report.json`` from ``qfab run``, ``compression.json`` from
``qfab compress``); this module reads only those files (and, for the weight bytes of a
comparison, the IR file) and renders them with ``templates/report.html.j2``. It imports
no stage, so re-rendering a report never needs torch, a simulator or a synthesizer.

Every figure is matplotlib SVG inlined in the page, its text drawn as paths, so the
page shows the same in any browser with no fonts, scripts, style sheets or images from
elsewhere. Each section appears when its data exists and otherwise says in one line why
not ("not simulated", "synthesis off"), so an absent section is never mistaken for a
passing one.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import jinja2

from qfab.errors import ConfigError, IRError
from qfab.report_figures import (
    accuracy_bits_figure,
    bar_chart,
    compression_figure,
    figure,
    front_figure,
    sparse_load_figure,
)

#: The equality checks in the order the flow runs them: (key, level, what is compared).
EQUALITIES = [
    ("brevitas_vs_golden", "level 1", "Brevitas == golden"),
    ("rtl_vs_golden", "level 2", "RTL simulation == golden"),
    ("hls_vs_golden", "level 3", "HLS C simulation == golden"),
    ("qonnx_vs_golden", "QONNX", "QONNX (qonnx executor) == golden"),
]

#: The survey-style compression table (the columns of ``qfab compress``'s table, as
#: ``compression.json`` stores them): key, heading, format.
COMPRESSION_COLUMNS = [
    ("step", "step", "text"),
    ("acc", "accuracy", "pct"),
    ("delta", "Δ acc", "pt"),
    ("params", "#params", "int"),
    ("params_ratio", "params ×", "ratio"),
    ("bytes", "bytes", "int"),
    ("Cr", "Cr", "ratio"),
    ("MACs", "FLOPs (MACs)", "int"),
    ("Sr", "Sr", "ratio"),
    ("storage", "storage", "text"),
]

#: A sparse engine's row (``report["sparse"]``, from hw_gen.sparse_perf): key, heading, format.
SPARSE_COLUMNS = [
    ("layer", "layer", "text"),
    ("pes", "PEs", "int"),
    ("density", "density", "pct1"),
    ("entries", "entries", "int"),
    ("padding_entries", "padding", "int"),
    ("entries_per_pe", "entries per PE", "list"),
    ("cycles_per_frame_model", "cycles / frame, model", "text"),
    ("ideal_cycles", "ideal", "text"),
    ("efficiency_model", "efficiency", "pct0"),
    ("dense_mvau_cycles", "dense MVAU cycles", "int"),
    ("speedup_model", "speed-up", "ratio2"),
    ("memory_bytes", "memory bytes", "int"),
]

_RESOURCE_KEYS = ("LUT", "FF", "BRAM36", "DSP")
_DASH = "—"


# ---------------------------------------------------------------- reading the JSON files


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; a missing, unreadable or non-object file is a
    :class:`ConfigError` naming it (the report cannot be guessed)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (is this a qfab run folder?)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def find_compression(run_dir: Path, report: dict[str, Any] | None) -> Path | None:
    """The ``compression.json`` that belongs to a run: in the run folder itself (a
    ``qfab compress`` folder), else beside the IR a ``qfab run --from`` read."""
    here = run_dir / "compression.json"
    if here.is_file():
        return here
    ir = ((report or {}).get("source") or {}).get("ir")
    if ir:
        beside = Path(ir).parent / "compression.json"
        if beside.is_file():
            return beside
    return None


def weight_storage_bytes(ir_path: Path) -> int:
    """Bytes of the model graph's weights stored densely: ``weight_bits`` × count, summed
    over every weight layer, rounded up to whole bytes.

    ``report.json`` has no byte count, so the comparison computes it from the IR. This is
    the plain (dense, zeros included) storage; a pruned and encoded model's smaller
    encoded size is the last row of its ``compression.json``, which the comparison
    prefers when the run read its IR from a ``qfab compress`` folder.
    """
    from qfab.ir import Graph  # the IR reader only; imports no stage

    graph = Graph.load(ir_path)
    bits = sum(
        int(n.attrs["weight_bits"]) * int(n.tensors["weight"].size)
        for n in graph.nodes
        if "weight_bits" in n.attrs and "weight" in n.tensors
    )
    return math.ceil(bits / 8)


def ir_bits(ir_path: Path) -> dict[str, list[int]]:
    """The bit widths the IR itself holds: weights of every weight layer, activations
    (``MultiThreshold`` outputs) and the input quantizer, each as the sorted distinct
    values. A ``qfab run --from IR`` report's config does not describe that IR's model,
    so its bits come from here."""
    from qfab.ir import Graph  # the IR reader only; imports no stage

    graph = Graph.load(ir_path)
    found: dict[str, set[int]] = {"weight": set(), "act": set(), "input": set()}
    for n in graph.nodes:
        if "weight_bits" in n.attrs:
            found["weight"].add(int(n.attrs["weight_bits"]))
        elif n.op == "MultiThreshold":
            found["act"].add(int(n.attrs["out_bits"]))
        elif n.op == "InputQuant":
            found["input"].add(int(n.attrs["bits"]))
    return {k: sorted(v) for k, v in found.items()}


def _bits_tag(weight: list[int], act: list[int]) -> str:
    """``w4a4``; mixed widths joined with ``/`` (``w8/4a4``)."""
    return "w" + "/".join(map(str, weight or ["?"])) + "a" + "/".join(map(str, act or ["?"]))


def run_bits(run_dir: Path, report: dict[str, Any]) -> tuple[str | None, str, list[int]]:
    """(tag like ``w2a2``, a one-line description, weight bit widths) of a run.

    From the run's IR when it is there (the truth, and the only source for a ``--from``
    run, whose config does not describe the model it read), else from the config."""
    ir = Path(run_dir) / "model.qfab.npz"
    if ir.is_file():
        try:
            b = ir_bits(ir)
        except IRError:
            b = None
        if b is not None:
            line = (
                f"weights {'/'.join(map(str, b['weight']))}, activations "
                f"{'/'.join(map(str, b['act']))}, input {'/'.join(map(str, b['input']))} "
                "(from the IR)"
            )
            return _bits_tag(b["weight"], b["act"]), line, b["weight"]
    if report.get("source") is not None:
        return None, f"{_DASH} (the model came from an IR and {ir} is not readable)", []
    m = (report.get("config") or {}).get("model") or {}
    if m.get("weight_bits") is None:
        return None, _DASH, []
    line = (
        f"weights {m['weight_bits']}, activations {m.get('act_bits')}, input "
        f"{m.get('input_bits')}" + (" (per channel)" if m.get("per_channel") else "")
    )
    return f"w{m['weight_bits']}a{m.get('act_bits')}", line, [int(m["weight_bits"])]


# ---------------------------------------------------------------- sections of one run


def _pct(value: float | None) -> str:
    return _DASH if value is None else f"{value:.2%}"


def _num(value: Any, digits: int = 0) -> str:
    if value is None:
        return _DASH
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    if isinstance(value, float) and value.is_integer():
        return f"{int(value):,}"
    return f"{value:,}" if isinstance(value, int | float) else str(value)


def _format(kind: str, value: Any) -> str:
    if value is None:
        return _DASH
    if kind == "pct":
        return f"{value:.2%}"
    if kind == "pct1":
        return f"{value:.1%}"
    if kind == "pct0":
        return f"{value:.0%}"
    if kind == "ratio2":
        return f"{value:g}x"
    if kind == "list":
        return ", ".join(str(v) for v in value)
    if kind == "pt":
        return f"{value * 100:+.2f} pt"
    if kind == "ratio":
        return f"{value:.1f}x"
    if kind == "int":
        return f"{value:,}"
    return str(value)


def _model_name(config: dict[str, Any]) -> str:
    m = config.get("model") or {}
    arch = m.get("arch", "?")
    if arch == "mlp" and m.get("hidden"):
        return "mlp-" + "-".join(str(h) for h in m["hidden"])
    return str(arch)


def _first_mismatch(first: Any) -> str | None:
    """One line naming the first difference: layer, channel, vector and both values."""
    if first is None:
        return None
    if isinstance(first, dict):
        others = [k for k in first if k not in ("layer", "vector", "channel", "golden")]
        got = ", ".join(f"{k} {first[k]}" for k in others)
        return (
            f"layer {first.get('layer')}, channel {first.get('channel')}, vector "
            f"{first.get('vector')}: golden {first.get('golden')}" + (f", {got}" if got else "")
        )
    return str(first)


def _equalities(report: dict[str, Any]) -> list[dict[str, Any]]:
    eq = report.get("equality") or {}
    config = report.get("config") or {}
    backend = (config.get("hw") or {}).get("backend", "rtl")
    sim_on = (config.get("sim") or {}).get("enabled", True)
    absent = {
        "brevitas_vs_golden": "not checked",
        "rtl_vs_golden": "not simulated"
        + (" (sim.enabled: false)" if not sim_on else "")
        + (f" (backend {backend}: no RTL)" if backend == "hls" else ""),
        "hls_vs_golden": "not run"
        + (f" (backend {backend}: no HLS C++)" if backend == "rtl" else ""),
        "qonnx_vs_golden": "not run",
    }
    if "hardware" not in report:
        for key in ("rtl_vs_golden", "hls_vs_golden", "qonnx_vs_golden"):
            absent[key] = "not run: no hardware (the run stopped before lowering)"
    rows = []
    for key, level, what in EQUALITIES:
        e = eq.get(key)
        row: dict[str, Any] = {"level": level, "what": what, "key": key}
        if e is None:
            row |= {"status": "absent", "note": absent[key]}
        elif "skipped" in e:
            row |= {"status": "absent", "note": f"skipped: {e['skipped']}"}
        else:
            bad = int(e.get("mismatches") or 0)
            extreme = e.get("extreme_vectors")
            row |= {
                "status": "fail" if bad else "pass",
                "tool": e.get("simulator") or e.get("compiler") or "",
                "vectors": e.get("vectors"),
                "extreme": extreme,
                "mismatches": bad,
                "first": _first_mismatch(e.get("first_mismatch")),
                "waveform": _waveform(e.get("waveform")),
            }
        rows.append(row)
    return rows


def _waveform(wave: dict[str, Any] | None) -> str | None:
    """Where the first mismatch's waveform was kept (or why it was not)."""
    if not wave:
        return None
    if not wave.get("path"):
        return f"waveform not kept: {wave.get('error', 'unknown reason')}"
    return f"waveform: {wave['path']} ({wave.get('simulated', '')})"


def _accuracy_points(
    report: dict[str, Any] | None, table: list[dict[str, Any]] | None, bits: str | None
) -> list[dict[str, Any]]:
    """(label, accuracy) bars: the run's float and quantized accuracy, and the steps of a
    compression table that set bit widths (``quantize w4a4``; its float32 baseline when
    the run itself has no float accuracy)."""
    points: list[dict[str, Any]] = []
    acc = (report or {}).get("accuracy") or {}
    if table and acc.get("float") is None:
        points.append({"label": "float32 (baseline)", "accuracy": table[0]["acc"], "color": "C7"})
    if report:
        if acc.get("float") is not None:
            points.append({"label": "float32", "accuracy": acc["float"], "color": "C7"})
        if acc.get("brevitas") is not None:
            points.append(
                {"label": f"{bits or '?'} Brevitas", "accuracy": acc["brevitas"], "color": "C0"}
            )
        if acc.get("quantized") is not None:
            points.append(
                {"label": f"{bits or '?'} golden", "accuracy": acc["quantized"], "color": "C1"}
            )
    for r in table or []:
        found = re.search(r"w(\d+)a(\d+)", r["step"])
        if found:
            label = f"w{found[1]}a{found[2]} (compress: {r['step'].split()[0]})"
            points.append({"label": label, "accuracy": r["acc"], "color": "C2"})
    return points


def _layer_rows(report: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """Per hardware unit: op, model node, folding, cycles model/measured and resources.

    ``report["layers"]`` when the run wrote it; otherwise derived from the hardware
    units and the perf model, with the measurements left empty (shown as —)."""
    if report.get("layers"):
        rows = []
        for r in report["layers"]:  # sim.layers.layer_table's rows
            row = dict(r)
            row.setdefault("cycles_measured", r.get("cycles_measured_at_output"))
            row.setdefault("cycles_unblocked", r.get("cycles_unblocked_at_output"))
            rows.append(row)
        source = "report.json: layers"
    else:
        unit_cycles = (report.get("perf") or {}).get("unit_cycles") or {}
        rows = [
            {
                "unit": u["name"],
                "op": u.get("op"),
                "model_node": u.get("model_node"),
                "cycles_model": unit_cycles.get(u["name"], u.get("cycles")),
                "cycles_measured": None,
            }
            for u in (report.get("hardware") or {}).get("units") or []
        ]
        source = "derived from hardware.units and perf (no per-layer measurements in this run)"
    hw = report.get("hardware") or {}
    folding = {f["unit"]: f for f in hw.get("folding") or []}
    units = {u["name"]: u for u in hw.get("units") or []}
    for r in rows:
        f, u = folding.get(r["unit"], {}), units.get(r["unit"], {})
        r.setdefault("PE", f.get("PE", u.get("pe")))
        r.setdefault("SIMD", f.get("SIMD", u.get("simd")))
        for key in (*_RESOURCE_KEYS, "LUTRAM", "cycles_measured", "cycles_unblocked"):
            r.setdefault(key, None)
        r.setdefault("model_node", None)
    return rows, source


#: The per-unit table: key, heading, shown even when no row has a value.
LAYER_COLUMNS = [
    ("unit", "unit", True),
    ("op", "op", True),
    ("model_node", "model node", True),
    ("PE", "PE", True),
    ("SIMD", "SIMD", True),
    ("cycles_model", "cycles, model", True),
    ("cycles_measured", "cycles, measured at output", True),
    ("cycles_unblocked", "cycles, unblocked at output", False),
    ("LUT", "LUT", True),
    ("FF", "FF", True),
    ("BRAM36", "BRAM36", True),
    ("DSP", "DSP", True),
    ("LUTRAM", "LUTRAM", False),
]


def _layer_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Headings and formatted cells; optional columns only when some row has a value."""
    cols = [
        (key, heading)
        for key, heading, always in LAYER_COLUMNS
        if always or any(r.get(key) is not None for r in rows)
    ]
    return [h for _, h in cols], [[_layer_cell(k, r.get(k)) for k, _ in cols] for r in rows]


def _layer_cell(key: str, value: Any) -> str:
    if key in ("unit", "op", "model_node"):
        return _DASH if value is None else str(value)
    if key in ("cycles_measured", "cycles_unblocked"):  # steady-state means: fractions
        return _num(value, 2)
    return _num(value)


def _layer_figures(rows: list[dict[str, Any]]) -> tuple[list[dict[str, str]], list[str]]:
    figures, notes = [], []
    named = [r for r in rows if r.get("cycles_model") is not None]
    if named:
        labels = [r["unit"] for r in named]
        series: dict[str, list[float | None]] = {"model": [r["cycles_model"] for r in named]}
        for key, label in (
            ("cycles_measured", "measured at output"),
            ("cycles_unblocked", "unblocked at output"),
        ):
            values = [r.get(key) for r in named]
            if any(v is not None for v in values):
                series[label] = values
        if len(series) == 1:
            notes.append("cycles per unit: model only (not measured per unit in this run)")
        figures.append(
            figure(
                "layer-cycles",
                "Cycles per frame of each hardware unit: the folding model"
                + (
                    " against the simulation's measurement at the unit's output (a unit "
                    "downstream of the bottleneck runs at the bottleneck's rate; 'unblocked' "
                    "leaves out the cycles its output was held)."
                    if len(series) > 1
                    else "."
                ),
                bar_chart(labels, series, "cycles / frame", "cycles per unit"),
            )
        )
    with_res = [r for r in rows if any(r.get(k) is not None for k in _RESOURCE_KEYS)]
    if with_res:
        labels = [r["unit"] for r in with_res]
        figures.append(
            figure(
                "layer-resources",
                "Resources of each hardware unit (synthesized per unit).",
                bar_chart(
                    labels,
                    {k: [r.get(k) for r in with_res] for k in ("LUT", "FF")},
                    "count",
                    "LUT and FF per unit",
                ),
            )
        )
    else:
        notes.append("resources per unit: not measured (synthesis off or whole design only)")
    return figures, notes


def _perf(report: dict[str, Any]) -> list[tuple[str, str]] | None:
    perf = report.get("perf")
    if not perf:
        return None
    cpf = perf.get("cycles_per_frame") or {}
    lat = perf.get("latency_cycles") or {}
    clock = perf.get("clock_mhz")
    measured = cpf.get("measured")
    rows = [
        ("clock", f"{clock:g} MHz" if clock else _DASH),
        ("cycles / frame, model", _num(cpf.get("model"), 2)),
        (
            "cycles / frame, measured",
            _num(measured, 2) if measured is not None else _measured_why(report, cpf),
        ),
        ("measured / model", _DASH if cpf.get("ratio") is None else f"{cpf['ratio']:.3f}"),
        ("latency (cycles), measured", _num(lat.get("measured"))),
        ("latency (cycles), model bound", _num(lat.get("bound"))),
        ("frames / s, model", _num(perf.get("frames_per_s_model"), 0)),
        (
            "frames / s, measured",
            _num(clock * 1e6 / measured, 0) if measured and clock else _DASH,
        ),
        ("bottleneck", str(perf.get("bottleneck") or _DASH)),
    ]
    if cpf.get("method"):
        rows.append(("measured how", cpf["method"]))
    if perf.get("model_kind"):
        rows.append(("model", perf["model_kind"]))
    return rows


def _measured_why(report: dict[str, Any], cpf: dict[str, Any]) -> str:
    if "rtl_vs_golden" not in (report.get("equality") or {}):
        return "not simulated"
    if cpf.get("backpressure"):
        return "not steady state: backpressure on"
    return "not measured: fewer than 3 frames"


def _resources(report: dict[str, Any]) -> tuple[list[tuple[str, str]] | None, str]:
    res = report.get("resources")
    if res:
        keys = [*_RESOURCE_KEYS, "LUTRAM", "CARRY", "logic_depth"]
        rows = [(k, _num(res.get(k))) for k in keys if k in res]
        return rows, f"{res.get('tool', '?')} ({res.get('version', '')}), part {res.get('part')}"
    synth = (report.get("config") or {}).get("synth") or {}
    if synth.get("enabled") is False:
        return None, "synthesis off (synth.enabled: false)"
    if "hardware" not in report:
        return None, "not synthesized: no hardware (the run stopped before lowering)"
    backend = ((report.get("config") or {}).get("hw") or {}).get("backend")
    if backend == "hls":
        return None, "not synthesized: backend hls (Vitis HLS reports its own)"
    return None, "not synthesized"


def _compression_rows(table: list[dict[str, Any]]) -> list[list[str]]:
    return [[_format(kind, r.get(key)) for key, _, kind in COMPRESSION_COLUMNS] for r in table]


def run_context(run_dir: Path, name: str | None = None) -> dict[str, Any]:
    """Everything the template shows for one run folder, as plain strings, numbers and
    inline SVG. Reads ``report.json`` (required unless the folder is a ``qfab compress``
    folder, which has only ``compression.json``) and the run's ``compression.json``."""
    run_dir = Path(run_dir)
    report_path = run_dir / "report.json"
    report: dict[str, Any] | None = None
    compression_path = find_compression(run_dir, None)
    if report_path.exists() or compression_path is None:
        report = read_json(report_path)
        compression_path = find_compression(run_dir, report)
    compression = read_json(compression_path) if compression_path else None
    table = (compression or {}).get("table") or None
    if compression is not None and not isinstance(table, list):
        raise ConfigError(f"{compression_path}: no 'table' list (not written by qfab compress?)")

    tag, line, _ = run_bits(run_dir, report) if report else (None, _DASH, [])
    name = name or run_dir.resolve().name
    ctx: dict[str, Any] = {"title": f"qfab report: {name}"}
    config = (report or {}).get("config") or {}
    acc = (report or {}).get("accuracy") or {}
    data = (report or {}).get("dataset") or {}
    first = table[0] if table else {}
    source = (report or {}).get("source")  # a --from run: the config does not name the model
    ctx["summary"] = [
        ("run", name),
        ("model", _model_name(config) if report and not source else first.get("model", _DASH)),
        (
            "data set",
            f"{data['name']} ({data.get('train')} train, {data.get('test')} test, "
            f"{data.get('features')} features, {data.get('classes')} classes)"
            if data
            else first.get("dataset", _DASH),
        ),
        ("bits", line),
        ("accuracy, float", _pct(acc.get("float")) if report else _pct(first.get("acc"))),
        ("accuracy, Brevitas (quantized)", _pct(acc.get("brevitas"))),
        ("accuracy, golden (integer IR)", _pct(acc.get("quantized"))),
    ]
    if report and report.get("source"):
        ctx["summary"].append(("model read from", str(report["source"].get("ir"))))
    if report and report.get("seconds"):
        ctx["summary"].append(("run time", f"{sum(report['seconds'].values()):.1f} s"))
    ctx["mismatch"] = (report or {}).get("mismatch")

    ctx["equalities"] = _equalities(report) if report else None
    points = _accuracy_points(report, table, tag)
    ctx["accuracy_figure"] = (
        accuracy_bits_figure(
            points,
            "Test accuracy per bit width (weights w, activations a): float32, the "
            "quantized model in Brevitas and as the integer IR (golden), and the "
            "compression steps that set bit widths.",
        )
        if points
        else None
    )

    if table:
        ctx["compression"] = {
            "source": str(compression_path),
            "title": f"{first.get('model')} on {first.get('dataset')}, baseline "
            f"{_pct(first.get('baseline_acc'))}",
            "headings": [h for _, h, _ in COMPRESSION_COLUMNS],
            "rows": _compression_rows(table),
            "figure": compression_figure(table),
            "level1": _level1_line((compression or {}).get("brevitas_vs_golden")),
        }
    else:
        ctx["compression"] = None

    if report and report.get("hardware"):
        rows, layer_source = _layer_rows(report)
        figures, notes = _layer_figures(rows)
        headings, cells = _layer_table(rows)
        ctx["layers"] = {
            "headings": headings,
            "rows": cells,
            "source": layer_source,
            "figures": figures,
            "notes": notes,
        }
    else:
        ctx["layers"] = None

    sparse = (report or {}).get("sparse") or []
    ctx["sparse"] = (
        {
            "headings": [h for _, h, _ in SPARSE_COLUMNS],
            "rows": [[_format(kind, r.get(k)) for k, _, kind in SPARSE_COLUMNS] for r in sparse],
            "figure": sparse_load_figure(sparse)
            if all("entries_per_pe" in r for r in sparse)
            else None,
        }
        if sparse
        else None
    )
    ctx["sparse_note"] = (
        "no sparse engine in this design: every layer is dense" if report and not sparse else None
    )
    ctx["resources"], ctx["resources_note"] = _resources(report) if report else (None, None)
    ctx["perf"] = _perf(report) if report else None
    ctx["hardware_note"] = _hardware_note(report)
    return ctx


def _level1_line(eq: dict[str, Any] | None) -> dict[str, Any] | None:
    if not eq:
        return None
    bad = int(eq.get("mismatches") or 0)
    return {
        "status": "fail" if bad else "pass",
        "text": f"compressed model: Brevitas == golden, {bad} mismatches / "
        f"{eq.get('vectors')} vectors",
        "first": _first_mismatch(eq.get("first_mismatch")),
    }


def _hardware_note(report: dict[str, Any] | None) -> str | None:
    if report is None:
        return "compression only: no hardware run in this folder (qfab run --from its IR)"
    if "hardware" not in report:
        return "no hardware: the run stopped before lowering (see the equalities)"
    hw = report["hardware"]
    return f"top {hw.get('top')}, backend {hw.get('backend')}, folding {hw.get('folding_policy')}"


# ---------------------------------------------------------------- comparison of runs


def run_row(run_dir: Path, name: str) -> dict[str, Any]:
    """One run's line of the comparison: bits, accuracy, resources, cycles and bytes."""
    report = read_json(Path(run_dir) / "report.json")
    res = report.get("resources") or {}
    cpf = (report.get("perf") or {}).get("cycles_per_frame") or {}
    measured = cpf.get("measured")
    compression_path = find_compression(Path(run_dir), report)
    weight_bytes, bytes_source = None, None
    if compression_path:
        table = read_json(compression_path).get("table") or []
        if table:
            weight_bytes, bytes_source = table[-1]["bytes"], table[-1].get("storage")
    ir = Path(run_dir) / "model.qfab.npz"
    if weight_bytes is None and ir.is_file():
        try:
            weight_bytes, bytes_source = weight_storage_bytes(ir), "weight_bits × count"
        except IRError:
            weight_bytes, bytes_source = None, None
    tag, _, weight_bits = run_bits(Path(run_dir), report)
    return {
        "name": name,
        "path": str(run_dir),
        "bits": tag or _DASH,
        "weight_bits": weight_bits,
        "accuracy": (report.get("accuracy") or {}).get("quantized"),
        **{k: res.get(k) for k in _RESOURCE_KEYS},
        "cycles": measured if measured is not None else cpf.get("model"),
        "cycles_kind": "measured" if measured is not None else "model",
        "bytes": weight_bytes,
        "bytes_source": bytes_source,
        "status": "mismatch" if report.get("mismatch") else "equal",
    }


def comparison_context(run_dirs: list[Path]) -> dict[str, Any]:
    """The comparison page's content: a row per run and the accuracy fronts."""
    if not run_dirs:
        raise ConfigError("qfab report: name at least one run folder")
    names = [Path(d).resolve().name for d in run_dirs]
    if len(set(names)) != len(names):  # same folder names: tell them apart by path
        names = [str(d) for d in run_dirs]
    runs = [run_row(Path(d), n) for d, n in zip(run_dirs, names, strict=True)]
    figures = [
        f
        for f in (
            front_figure("accuracy-lut", runs, "LUT", "LUTs"),
            front_figure("accuracy-bytes", runs, "bytes", "weight bytes"),
        )
        if f is not None
    ]
    with_bits = [r for r in runs if r["accuracy"] is not None]
    if with_bits:
        points = [
            {"label": f"{r['name']} ({r['bits']})", "accuracy": r["accuracy"]} for r in with_bits
        ]
        figures.append(
            accuracy_bits_figure(
                points, "Test accuracy (golden) of each run, its bit widths in brackets."
            )
        )
    missing = []
    if not any(r["LUT"] is not None for r in runs):
        missing.append("accuracy vs LUT: no run was synthesized")
    if not any(r["bytes"] is not None for r in runs):
        missing.append("accuracy vs bytes: no run has its IR (model.qfab.npz)")
    rows = [
        [
            r["name"],
            r["bits"],
            _pct(r["accuracy"]),
            *(_num(r[k]) for k in _RESOURCE_KEYS),
            _num(r["cycles"], 2) + ("" if r["cycles"] is None else f" ({r['cycles_kind']})"),
            _num(r["bytes"]) + (f" ({r['bytes_source']})" if r["bytes_source"] else ""),
            r["status"],
        ]
        for r in runs
    ]
    return {
        "title": f"qfab comparison of {len(runs)} runs",
        "headings": [
            "run",
            "bits",
            "accuracy",
            *_RESOURCE_KEYS,
            "cycles / frame",
            "weight bytes",
            "equalities",
        ],
        "rows": rows,
        "runs": runs,
        "figures": figures,
        "missing": missing,
    }


# ---------------------------------------------------------------- rendering and writing


def _template(name: str) -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("qfab", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template(name)


def _write_atomic(path: Path, text: str) -> Path:
    """Write via a temporary file in the same folder and rename it: a reader never sees
    half a page, and a failed render leaves the previous report in place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_run_report(run_dir: Path, name: str | None = None) -> Path:
    """Render ``run_dir/report.html`` from the folder's JSON files; returns its path.

    ``run_dir`` is a ``qfab run`` folder (``report.json``; its ``compression.json`` is
    found beside the IR a ``--from`` run read) or a ``qfab compress`` folder (only
    ``compression.json``). A missing or corrupt ``report.json`` is a
    :class:`~qfab.errors.ConfigError` naming the file. ``name`` titles the page (default:
    the folder's name; give the final name when rendering inside a temporary folder that
    is renamed into place afterwards).
    """
    run_dir = Path(run_dir)
    ctx = run_context(run_dir, name)
    html = _template("report.html.j2").render(kind="run", **ctx)
    return _write_atomic(run_dir / "report.html", html)


def write_comparison_report(run_dirs: list[Path], out: Path) -> Path:
    """Render several run folders side by side into ``out`` (an HTML file); returns it.

    A table of every run and the accuracy-vs-LUT and accuracy-vs-weight-bytes figures
    with their Pareto fronts. Each folder needs a readable ``report.json``
    (:class:`~qfab.errors.ConfigError` naming the file otherwise).
    """
    ctx = comparison_context([Path(d) for d in run_dirs])
    html = _template("report.html.j2").render(kind="comparison", **ctx)
    return _write_atomic(Path(out), html)
