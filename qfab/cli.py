"""``qfab`` command line. Every :class:`QfabError` ends here: one line on stderr, exit 2."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rich.console import Console

from qfab.errors import ConfigError, QfabError

EXIT_USER_ERROR = 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader left


def make_console() -> Console:
    """Rich console; 140 columns when piped (CI logs), so tables are not squeezed to 80."""
    return Console() if sys.stdout.isatty() else Console(width=140)


def _cmd_run(args: argparse.Namespace) -> int:
    from qfab.config import load_config
    from qfab.flow import run_flow

    cfg = load_config(args.config)
    source = Path(args.from_ir) if args.from_ir else None
    if source is not None and not source.is_file():
        raise ConfigError(f"--from {source}: IR file not found")
    run_flow(cfg, Path(args.out), make_console(), from_ir=source)
    made = ("model.qfab.npz", "model.onnx", "rtl/", "report.json")
    wrote = [p for p in made if (Path(args.out) / p).exists()]
    print("wrote " + ", ".join(f"{args.out}/{p}" for p in wrote))
    return 0


def _cmd_compress(args: argparse.Namespace) -> int:
    from qfab.compress_flow import run_compress
    from qfab.config import load_config

    cfg = load_config(args.config)
    run_compress(cfg, Path(args.out), make_console())
    print(f"wrote {args.out}/compression.md, {args.out}/compression.json")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from qfab.config import load_config

    cfg = load_config(args.config)
    print(f"{args.config}: OK")
    print(cfg.model_dump_json(indent=2))
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from rich.table import Table

    from qfab.ir import Graph, infer_shapes
    from qfab.ops import OPS
    from qfab.ranges import node_ranges

    graph = Graph.load(args.ir)
    console = make_console()
    ranges = node_ranges(graph)
    table = Table(title=f"{args.ir}: model graph")
    for col in ("node", "op", "inputs", "tensors", "range", "bits"):
        table.add_column(col)
    for n in graph.nodes:
        shape = ", ".join(f"{k}{list(v.shape)}" for k, v in n.tensors.items())
        r = ranges.get(n.name)
        span = f"[{r.min}, {r.max}]" if r else "float"
        table.add_row(n.name, n.op, ",".join(n.inputs), shape, span, str(r.bits) if r else "")
    console.print(table)
    hw = graph.lowered
    if hw is None:
        console.print("no hardware graph (not lowered yet: qfab run lowers it)")
        return 0
    from hw_gen.perf import perf_model
    from hw_gen.verilog.units import Design

    shapes, hw_ranges, wires = infer_shapes(hw), node_ranges(hw), Design(hw)
    perf = perf_model(hw, float(hw.meta.get("clock_mhz", 100.0)))
    table = Table(title=f"hardware graph ({hw.meta.get('folding', '')})")
    for col in ("node", "op", "inputs", "shape", "PE", "SIMD", "cycles/frame", "element", "equals"):
        table.add_column(col)
    for n in hw.nodes:
        r = hw_ranges.get(n.name)
        el = ""
        if r is not None:  # as the stream carries it (an accumulator is its register width)
            e = wires.element(n.name)
            el = "bipolar" if e.bipolar else f"{e.bits}-bit" + (" signed" if e.signed else "")
        fold = {k: str(n.attrs[k]) for k in ("pe", "simd") if n.attrs.get(k) is not None}
        if n.op == "DWC":
            fold = {"pe": f"{n.attrs['in_elems']}->{n.attrs['out_elems']}"}
        if n.op == "FIFO":
            fold["simd"] = f"depth {n.attrs['depth']}"
        table.add_row(
            n.name,
            n.op,
            ",".join(n.inputs),
            str(list(shapes[n.name])),
            fold.get("pe", ""),
            fold.get("simd", ""),
            str(n.attrs.get("cycles", "")),
            el,
            n.attrs.get("model_node") or "",
        )
    console.print(table)
    console.print(
        f"modelled: {perf['cycles_per_frame']} cycles/frame (bottleneck {perf['bottleneck']}), "
        f"{perf['frames_per_s']:,.0f} frames/s at {perf['clock_mhz']:g} MHz"
    )
    sparse = [n for n in hw.nodes if n.op == "SparseMVAU"]
    for n in sparse:
        lay = OPS["SparseMVAU"].layout(n)
        console.print(
            f"sparse engine {n.name}: {lay.pes} PEs, queue depth {n.attrs['queue_depth']}, "
            f"{int(lay.pe_entries.sum()):,} entries ({lay.padding_entries} padding), "
            f"{lay.memory_bytes():,} bytes of memories; its cycles are a bound for inputs "
            "without zeros (qfab run models them on the data: report.json 'sparse')"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qfab", description="Quantized network -> bit-exact FPGA accelerator."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train, export, check, generate RTL, simulate, synthesize")
    run.add_argument("config", help="YAML config (see README: config reference)")
    run.add_argument("--out", required=True, help="output folder (written atomically)")
    run.add_argument(
        "--from",
        dest="from_ir",
        metavar="IR",
        help="start from an exported model.qfab.npz (e.g. from qfab compress): no training",
    )
    run.set_defaults(func=_cmd_run)
    comp = sub.add_parser(
        "compress",
        help="baseline + compress steps (prune, quantize, share, encode) -> survey-style table",
    )
    comp.add_argument("config", help="YAML config with a compress: section")
    comp.add_argument("--out", required=True, help="output folder (written atomically)")
    comp.set_defaults(func=_cmd_compress)
    check = sub.add_parser("check-config", help="validate a config and print it with defaults")
    check.add_argument("config")
    check.set_defaults(func=_cmd_check)
    info = sub.add_parser(
        "info", help="print an IR file: model graph (ranges, widths) and hardware graph"
    )
    info.add_argument("ir")
    info.set_defaults(func=_cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except QfabError as exc:
        print(f"qfab: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("qfab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader left (`qfab info m.qfab.npz | head`): not an error, and Python would
        # print a traceback when it flushes stdout at exit unless stdout goes nowhere
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
