"""hls4ml's default route beside qfab's HLS and RTL backends, on the same vectors.

For each point (model x bit widths, digits) it runs the whole ``qfab run`` flow (QAT,
export, level 1, lowering, RTL + Verilator against golden, and qfab's HLS C++ with g++
C simulation when the config has ``hw.backend``), then takes the run folder's trained
Brevitas model (``brevitas_model.pt``, rebuilt from the report's config) through hls4ml's
own route (:mod:`quant_train.hls4ml_route`: Brevitas QONNX -> qonnx -> hls4ml Vitis at
its default precision -> ``compile()``/``predict()``). hls4ml sees exactly the vectors the
RTL simulation saw: the extreme vectors (recomputed from ``model.qfab.npz``, as floats
``x_int * 2^-input_bits``, which quantize back to the same integers) and the data vectors.
Every route is compared with golden's logits on those vectors.

Run: ``.venv/bin/python bench/hls.py [--quick] [--only mlp,lenet5] [--no-synth]``
(``--quick``: 2 epochs, 40 data vectors; ``--markdown`` prints the stored results as a
table; ``--hls4ml-precision 'fixed<32,16>'`` measures hls4ml at another default
precision instead; ``--qfab-backend rtl`` leaves qfab's HLS out). Results go to
``out/bench_hls/results.json`` (merged with the rows of earlier runs, so ``--only``
refreshes some rows and keeps the others).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qfab.config import HwConfig, parse_config  # noqa: E402
from qfab.errors import MismatchError  # noqa: E402

#: (arch, weight bits, act bits) of every row, in table order.
POINTS = [
    *[("mlp", b, b) for b in (1, 2, 4, 8)],
    *[("tfc", b, b) for b in (2, 4)],
    ("lenet5", 2, 2),
    ("lenet5", 4, 4),
    ("cnv", 2, 2),
    ("mobilenet", 2, 2),
    ("shufflenet", 2, 2),
]
#: qfab's HLS backend runs iff the config schema has ``hw.backend`` (issue 19).
HAS_HLS_BACKEND = "backend" in HwConfig.model_fields


def point_name(arch: str, w: int, a: int) -> str:
    return f"{arch}-w{w}a{a}"


def config(
    arch: str, w: int, a: int, epochs: int, vectors: int, synth: bool, backend: str = "both"
) -> dict:
    """The ``qfab run`` config of one point (as bench/zoo_hw.py, plus ``hw.backend``)."""
    return {
        "model": {"arch": arch, "weight_bits": w, "act_bits": a},
        "train": {"epochs": epochs, "float_baseline": False},
        "hw": {"backend": backend} if HAS_HLS_BACKEND else {},
        "sim": {"simulator": "verilator", "vectors": vectors},
        "synth": {"enabled": synth, "part": "xc7z020"},
    }


def model_from_run(run_dir: Path, data: Any) -> Any:
    """The run's trained Brevitas model: the zoo model of its config + ``brevitas_model.pt``."""
    import torch

    from quant_train.zoo import IMAGE_ARCHS, build_model

    m = json.loads((run_dir / "report.json").read_text())["config"]["model"]
    shape = data.image_shape if m["arch"] in IMAGE_ARCHS else (data.features,)
    model = build_model(
        m["arch"],
        shape,
        data.classes,
        hidden=list(m["hidden"]),
        width=m["width"],
        groups=m["groups"],
        weight_bits=m["weight_bits"],
        act_bits=m["act_bits"],
        input_bits=m["input_bits"],
        per_channel=m["per_channel"],
    )
    model.load_state_dict(torch.load(run_dir / "brevitas_model.pt"))
    return model.eval()


def sim_vectors(graph: Any, data: Any, n: int) -> np.ndarray:
    """The RTL simulation's vectors as floats: extremes first, then ``n`` data vectors."""
    from qfab.extremes import extreme_vectors
    from qfab.golden import quantize_input

    first = graph.nodes[0]
    x_int = extreme_vectors(graph).vectors
    x_ext = (x_int * float(first.attrs["scale"])).astype(np.float32)
    if not np.array_equal(quantize_input(first, x_ext), x_int):
        raise RuntimeError("extreme vectors do not survive x_int * scale (input scale changed?)")
    pool = np.concatenate([data.x_test, data.x_train])
    return np.concatenate([x_ext, pool[: min(n, len(pool))].astype(np.float32)])


def run_point(arch: str, w: int, a: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from qfab.flow import run_flow
    from qfab.golden import run_golden
    from qfab.ir import Graph
    from quant_train.datasets import load_dataset
    from quant_train.hls4ml_route import compare_logits, run_hls4ml

    quiet = Console(file=open("/dev/null", "w"))  # noqa: SIM115  (the table is the output)
    name = point_name(arch, w, a)
    raw = config(arch, w, a, args.epochs, args.vectors, not args.no_synth, args.qfab_backend)
    start = time.perf_counter()
    try:
        report = run_flow(parse_config(raw, name), work / name, quiet)
    except MismatchError:
        report = json.loads((work / name / "report.json").read_text())
    flow_s = time.perf_counter() - start
    eq = report["equality"]
    rtl, hls = eq.get("rtl_vs_golden") or {}, eq.get("hls_vs_golden")
    row: dict[str, Any] = {
        "point": name,
        "arch": arch,
        "bits": f"w{w}a{a}",
        "accuracy": report["accuracy"]["quantized"],
        "rtl_mismatches": rtl.get("mismatches"),
        "rtl_vectors": rtl.get("vectors"),
        "rtl_max_abs_delta": max_abs_delta(rtl),
        "hls_mismatches": hls.get("mismatches") if hls else None,
        "hls_max_abs_delta": max_abs_delta(hls) if hls else None,
        "hls_vectors": hls.get("vectors") if hls else None,
        "hls_compile_s": hls.get("compile_s") if hls else None,
        "hls_csim_s": hls.get("csim_s") if hls else None,
        "flow_s": round(flow_s, 1),
    }
    data = load_dataset("digits")
    graph = Graph.load(work / name / "model.qfab.npz")
    x = sim_vectors(graph, data, args.vectors)
    gold = run_golden(graph, x).logits
    h4 = run_hls4ml(
        model_from_run(work / name, data),
        x,
        work / f"{name}-hls4ml",
        default_precision=args.hls4ml_precision,
    )
    row.update(
        hls4ml_io=h4.io_type,
        hls4ml_precision=h4.precision,
        hls4ml_seconds=h4.seconds,
        hls4ml_error=None if h4.ok else h4.describe(),
    )
    if h4.ok:
        c = compare_logits(h4.logits, gold)
        row.update(
            hls4ml_differing=c.differing,
            hls4ml_vectors=c.vectors,
            hls4ml_max_abs_delta=c.max_abs_delta,
            hls4ml_argmax_differing=c.argmax_differing,
            hls4ml_first_differing=c.first_differing,
        )
    return row


def _frac(row: dict[str, Any], key: str, total: str) -> str:
    if row.get(key) is None:
        return "n/a"
    return f"{row[key]}/{row[total]}"


def _num(v: Any, fmt: str = "{:.2f}") -> str:
    return "n/a" if v is None else fmt.format(v)


def max_abs_delta(eq: dict[str, Any]) -> str | None:
    """qfab's max |Δ| against golden's integers: 0 when no value differs (exactly); else
    the report keeps only the first difference, so ">= " that one's size."""
    if eq.get("mismatches") is None:
        return None
    if eq["mismatches"] == 0:
        return "0"
    first = eq["first_mismatch"]
    got = first.get("rtl", first.get("hls"))
    return f">= {abs(int(first['golden']) - int(got))}"


def cells(r: dict[str, Any]) -> list[str]:
    """One row of the table (rich and markdown alike)."""
    if "error" in r:
        return [r["point"], f"failed: {r['error'][:150]}"]
    secs = r.get("hls4ml_seconds") or {}
    if r.get("hls4ml_error"):
        h4 = [r["hls4ml_error"][:150], "", "", "", ""]
    else:
        h4 = [
            _frac(r, "hls4ml_differing", "hls4ml_vectors"),
            _num(r.get("hls4ml_max_abs_delta"), "{:g}"),
            _num(r.get("hls4ml_argmax_differing"), "{}"),
            _num(secs.get("compile")),
            _num(secs.get("predict")),
        ]
    return [
        r["arch"],
        r["bits"],
        *h4,
        _frac(r, "hls_mismatches", "hls_vectors"),
        r.get("hls_max_abs_delta") or "n/a",
        _num(r.get("hls_compile_s")),
        _num(r.get("hls_csim_s")),
        _frac(r, "rtl_mismatches", "rtl_vectors"),
        r.get("rtl_max_abs_delta") or "n/a",
        f"{r['accuracy']:.2%}",
    ]


COLUMNS = [
    "model",
    "bits",
    "hls4ml ≠ golden",
    "hls4ml max |Δ| logits",
    "hls4ml argmax ≠",
    "hls4ml compile s",
    "hls4ml predict s",
    "qfab HLS ≠ golden",
    "qfab HLS max |Δ| (integers)",
    "qfab HLS compile s",
    "qfab HLS csim s",
    "qfab RTL ≠ golden",
    "qfab RTL max |Δ| (integers)",
    "accuracy",
]


def markdown(rows: list[dict[str, Any]]) -> str:
    """The stored results as a markdown table."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells(r)) + " |" for r in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 epochs, 40 data vectors")
    parser.add_argument("--only", help="comma-separated archs (mlp, tfc, lenet5, ...)")
    parser.add_argument("--no-synth", action="store_true", help="skip Yosys")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--vectors", type=int, default=None)
    parser.add_argument(
        "--qfab-backend",
        choices=("both", "rtl"),
        default="both",
        help="qfab's hw.backend (rtl: leave out qfab's HLS C++ and its C simulation)",
    )
    parser.add_argument("--bits", help="comma-separated weight=act bit widths to keep, e.g. 2,4")
    parser.add_argument(
        "--hls4ml-precision", default=None, help="hls4ml default precision (default: its own)"
    )
    parser.add_argument(
        "--markdown", action="store_true", help="print results.json as a table and exit"
    )
    args = parser.parse_args()
    out = ROOT / "out" / "bench_hls"
    if args.markdown:
        print(markdown(json.loads((out / "results.json").read_text())))
        return 0
    args.epochs = args.epochs or (2 if args.quick else 10)
    args.vectors = args.vectors or (40 if args.quick else 200)
    only = set(args.only.split(",")) if args.only else None
    bits = {int(b) for b in args.bits.split(",")} if args.bits else None
    chosen = [
        p for p in POINTS if (only is None or p[0] in only) and (bits is None or p[1] in bits)
    ]
    console = Console(width=200)
    if not HAS_HLS_BACKEND:
        console.print("[yellow]qfab.config has no hw.backend yet: qfab HLS columns are n/a")
    out.mkdir(parents=True, exist_ok=True)
    done: dict[str, dict[str, Any]] = {}
    if (out / "results.json").exists():
        done = {r["point"]: r for r in json.loads((out / "results.json").read_text())}
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_hls_") as tmp:
        for arch, w, a in chosen:
            console.print(f"[bold]{arch} w{w}a{a}[/] ...")
            try:
                rows.append(run_point(arch, w, a, args, Path(tmp)))
            except Exception as exc:  # a row that fails is a result, not the end of the bench
                rows.append(
                    {
                        "point": point_name(arch, w, a),
                        "arch": arch,
                        "bits": f"w{w}a{a}",
                        "error": f"{type(exc).__name__}: {exc}",
                    }
                )
            console.print(rows[-1])
            done[rows[-1]["point"]] = rows[-1]
            order = [point_name(*p) for p in POINTS]
            merged = sorted(
                done.values(),
                key=lambda r: order.index(r["point"]) if r["point"] in order else len(order),
            )
            (out / "results.json").write_text(json.dumps(merged, indent=2) + "\n")
    table = Table(
        title=f"hls4ml default route vs qfab HLS / RTL (digits, {args.epochs} epochs, "
        f"extreme + {args.vectors} data vectors, exact comparison with golden)"
    )
    for c in COLUMNS:
        table.add_column(c, justify="left" if c in ("model", "bits") else "right")
    for r in rows:
        table.add_row(*cells(r))
    console.print(table)
    bad = [
        r["point"]
        for r in rows
        if "error" in r or r.get("rtl_mismatches") or r.get("hls_mismatches")
    ]
    console.print(f"qfab RTL/HLS mismatching or failed: {bad or 'none'}")
    console.print(PUBLISHED)
    return 1 if bad else 0


#: What others report about hls4ml's exactness (../shared/ANCHORS.md), printed beside ours.
PUBLISHED = (
    "published: hls4ml's own tests accept C simulation within rtol=1e-2, atol=0.01 of Keras "
    "(test_keras_api.py); its bit-exact mode (BitExact pass, HGQ/HGQ2) serves Keras models "
    "only; hls4ml issue #640: 12-bit QKeras outputs differ from the converted model; a "
    "digits MLP through Brevitas -> QONNX -> hls4ml 1.3 differed by up to 0.057 (output "
    "range 0.106)"
)


if __name__ == "__main__":
    sys.exit(main())
