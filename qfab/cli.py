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
    made = ("model.qfab.npz", "model.onnx", "rtl/", "hls/", "report.json")
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


#: ``qfab build``'s exit code when the bitstream was built but misses its clock
EXIT_TIMING = 1


def _cmd_build(args: argparse.Namespace) -> int:
    from boards.catalog import get_board
    from qfab.board_flow import build_for_board

    board = get_board(args.board)
    run_dir = Path(args.run_dir)
    console = make_console()
    result = build_for_board(
        run_dir,
        board,
        Path(args.out),
        console,
        clock_mhz=args.clock_mhz,
        jobs=args.jobs,
        fit_check=not args.no_fit_check,
        search_folding=args.find_folding,
    )
    if result["flow"] == "vivado":
        v = result["vivado"]
        print(f"wrote {result['script']} (Tcl checked: every command parsed, ports = RTL top)")
        if v["ran"]:
            print(f"vivado wrote {args.out}/{v['bitstream']} and {args.out}/{v['hwh']}")
        else:
            print(f"{v['why']}: not run; to build the bitstream: {v['command']}")
    else:
        fmax, met = result["fmax_mhz"], "met" if result["timing_met"] else "NOT met"
        print(
            f"wrote {result['out_dir']}/{result['bitstream']} (nextpnr Fmax {fmax:.1f} MHz, "
            f"{result['clock_mhz']:g} MHz clock: timing {met})"
        )
        if not result["timing_met"]:  # built and kept, but not a success a script may miss
            print("qfab: timing not met: fold further or lower the clock", file=sys.stderr)
            return EXIT_TIMING

    return 0


def _cmd_deploy(args: argparse.Namespace) -> int:
    import json

    from boards.catalog import get_board
    from boards.deploy import DeployError, Target, deploy

    board = get_board(args.board)
    if not board.is_zynq:
        raise DeployError(f"{board.name}: deploy is for PYNQ boards over SSH; flash iCE40 over USB")
    built = Path(args.build_dir) / "build.json"
    made_for = json.loads(built.read_text()).get("board") if built.is_file() else None
    if made_for is not None and made_for != board.name:
        raise DeployError(f"{args.build_dir} was built for {made_for}, not {board.name}")
    target = Target(
        args.host,
        user=args.user,
        port=args.port,
        key=Path(args.key) if args.key else None,
        timeout=args.timeout,
        remote_dir=args.remote_dir,
        python=args.python,
        known_hosts=Path(args.known_hosts) if args.known_hosts else None,
        sudo=args.sudo,
        ssh_options=["-F", args.ssh_config] if args.ssh_config else [],
    )
    result = deploy(args.build_dir, target, board)
    smoke = result["smoke_test"]
    print(f"copied {', '.join(result['files'])} to {result['destination']}")
    print(f"smoke test: files intact, driver ran ({smoke['python']}); overlay {smoke['overlay']}")
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
    from boards.catalog import BOARDS

    build = sub.add_parser(
        "build", help="a run's design onto a board: Vivado project (Zynq) or iCE40 bitstream"
    )
    build.add_argument("run_dir", help="a `qfab run --out` folder")
    build.add_argument("--board", required=True, help=f"one of: {', '.join(BOARDS)}")
    build.add_argument("--out", required=True, help="build folder")
    build.add_argument("--clock-mhz", type=float, help="fabric clock (default: the design's)")
    build.add_argument("--jobs", type=int, default=4, help="Vivado jobs")
    build.add_argument("--no-fit-check", action="store_true", help="skip the resource check")
    build.add_argument(
        "--find-folding",
        action="store_true",
        help="if it does not fit: re-lower and re-synthesize to find a hw.target_cycles that fits",
    )
    build.set_defaults(func=_cmd_build)
    dep = sub.add_parser("deploy", help="copy a board build over SSH and run a smoke test")
    dep.add_argument("build_dir", help="a `qfab build --out` folder")
    dep.add_argument("--board", required=True, help=f"one of: {', '.join(BOARDS)}")
    dep.add_argument("--host", required=True)
    dep.add_argument("--user", help="remote user (default: ssh's; PYNQ images: xilinx)")
    dep.add_argument("--port", type=int, default=22)
    dep.add_argument("--key", help="private key file")
    dep.add_argument("--timeout", type=float, default=10.0, help="connect timeout, seconds")
    dep.add_argument(
        "--remote-dir", default="qfab", help="folder on the board (relative or ~/...: in home)"
    )
    dep.add_argument("--python", default="python3", help="the board's Python (with pynq)")
    dep.add_argument("--known-hosts", help="ssh known_hosts file (default: ssh's own)")
    dep.add_argument("--ssh-config", help="ssh/scp config file (-F; /dev/null: none)")
    dep.add_argument(
        "--sudo",
        action="store_true",
        help="run the smoke test's Python with 'sudo -n -E': PYNQ images need root to load "
        "an overlay (as xilinx: passwordless sudo needed; or use --user root)",
    )
    dep.set_defaults(func=_cmd_deploy)
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
