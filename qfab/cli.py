"""``qfab`` command line. Every :class:`QfabError` ends here: one line on stderr, exit 2."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from qfab.errors import ConfigError, QfabError

EXIT_USER_ERROR = 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader left


def make_console() -> Console:
    """Rich console; 140 columns when piped (CI logs), so tables are not squeezed to 80."""
    return Console() if sys.stdout.isatty() else Console(width=140)


def _config_with(args: argparse.Namespace) -> Any:
    """The ``CONFIG`` file with every ``-o key=value`` applied (validated as a config)."""
    from qfab.config import load_config
    from qfab.run_folder import apply_overrides

    cfg = load_config(args.config)
    if not args.override:
        return cfg
    return apply_overrides(
        cfg.model_dump(mode="json", exclude_unset=True), args.override, args.config
    )


def _cmd_run(args: argparse.Namespace) -> int:
    from qfab.flow import run_flow

    cfg = _config_with(args)
    source = Path(args.from_ir) if args.from_ir else None
    if source is not None and not source.is_file():
        raise ConfigError(f"--from {source}: IR file not found")
    run_flow(cfg, Path(args.out), make_console(), from_ir=source)
    made = ("model.qfab.npz", "model.onnx", "rtl/", "hls/", "report.json", "report.html")
    wrote = [p for p in made if (Path(args.out) / p).exists()]
    print("wrote " + ", ".join(f"{args.out}/{p}" for p in wrote))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from qfab.flow import run_flow

    run_flow(_config_with(args), Path(args.out), make_console(), until="train")
    print(f"wrote {args.out}/brevitas_model.pt; next: qfab export {args.out}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    """``qfab export DIR`` (the stage) or ``qfab export model.py:build ... --out DIR``."""
    if ":" not in args.source and Path(args.source).is_dir():
        if args.weights or args.input_shape or args.out:
            raise ConfigError(
                f"{args.source} is a run folder: --weights, --input-shape and --out are for "
                "`qfab export model.py:build`"
            )
        return _run_stage(args.source, "export", args.override)
    from qfab.flow import run_flow
    from qfab.run_folder import apply_overrides
    from quant_train.trace_brevitas import load_model_spec

    if not args.out or not args.input_shape:
        raise ConfigError(
            f"export {args.source}: a model of your own needs --input-shape (e.g. 1,8,8) and "
            "--out DIR (and usually --weights and --config)"
        )
    shape = _shape(args.input_shape)
    model = load_model_spec(args.source, Path(args.weights) if args.weights else None)
    if args.config:
        from qfab.config import load_config

        base = load_config(args.config).model_dump(mode="json", exclude_unset=True)
    else:
        base = {}
    cfg = apply_overrides(base, args.override or [], args.config or "defaults")
    run_flow(
        cfg, Path(args.out), make_console(), brevitas=(model, shape, args.source), until="export"
    )
    print(f"wrote {args.out}/model.qfab.npz; next: qfab lower {args.out}")
    return 0


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if len(shape) not in (1, 3) or min(shape) < 1:
        raise ConfigError(
            f"--input-shape {text}: expected C,H,W (e.g. 1,8,8) or F (e.g. 64), "
            "PyTorch's order without the batch"
        )
    return shape


def _run_stage(run_dir: str, stage: str, overrides: list[str] | None) -> int:
    from qfab.flow import rerun_stage
    from qfab.run_folder import STAGES

    rerun_stage(Path(run_dir), stage, overrides or [], make_console())
    after = STAGES[STAGES.index(stage) + 1] if stage != "report" else "report"
    nxt = f"; next: qfab {after} {run_dir}" if after != "report" else ""
    print(f"{stage}: done, {run_dir}/report.json updated{nxt}")
    return 0


def _cmd_stage(args: argparse.Namespace) -> int:
    return _run_stage(args.run_dir, args.command, args.override)


def _cmd_report(args: argparse.Namespace) -> int:
    from qfab.report_html import write_comparison_report

    if len(args.run_dirs) == 1 and (Path(args.run_dirs[0]) / "sweep.json").is_file():
        # a sweep folder: its finished trials side by side, with their fronts
        sweep = Path(args.run_dirs[0])
        trials = sorted(p.parent for p in (sweep / "trials").glob("*/report.json"))
        if not trials:
            raise ConfigError(f"{sweep}: a sweep folder without a finished trial")
        out = Path(args.out or sweep / "report.html")
        write_comparison_report(trials, out)
        print(f"wrote {out}")
        return 0
    if len(args.run_dirs) == 1 and not args.out:
        folder = Path(args.run_dirs[0])
        if (folder / "compression.json").is_file() and not (folder / "config.yaml").is_file():
            from qfab.report_html import write_run_report  # a `qfab compress` folder

            print(f"wrote {write_run_report(folder)}")
            return 0
        return _run_stage(args.run_dirs[0], "report", [])

    out = Path(args.out or "comparison.html")
    write_comparison_report([Path(d) for d in args.run_dirs], out)
    print(f"wrote {out}")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from qfab.sweep import run_sweep

    result = run_sweep(
        Path(args.sweep), Path(args.out), address=args.address, console=make_console()
    )
    from qfab.report_html import write_comparison_report

    finished = [Path(args.out) / r["dir"] for r in result.rows if r["status"] in ("ok", "mismatch")]
    if finished:
        page = write_comparison_report(finished, Path(args.out) / "report.html")
        print(f"wrote {args.out}/results.csv, results.parquet, pareto.csv, {page}")
    # a mismatching or crashing trial is a failed check, as for `qfab run`
    return EXIT_USER_ERROR if any(r["status"] in ("mismatch", "error") for r in result.rows) else 0


def _cmd_compress(args: argparse.Namespace) -> int:
    from qfab.compress_flow import run_compress
    from qfab.config import load_config

    cfg = load_config(args.config)
    run_compress(cfg, Path(args.out), make_console())
    print(f"wrote {args.out}/compression.md, {args.out}/compression.json, {args.out}/report.html")
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


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("qfab")
    except PackageNotFoundError:  # a source tree that was not installed
        return "unknown (not installed)"


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qfab",
        description="Quantized network -> bit-exact FPGA accelerator.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples(
            "qfab run examples/digits_mlp.yaml --out out/demo      # every stage",
            "qfab lower out/demo -o hw.target_cycles=128          # refold, no training",
            "qfab gen out/demo && qfab sim out/demo && qfab synth out/demo",
            "qfab report out/demo out/other --out compare.html",
            "(qfab COMMAND --help: each command's options and an example)",
        ),
    )
    parser.add_argument("--version", action="version", version=f"qfab {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, *examples: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help,
            description=help,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog=_examples(*examples),
        )

    def overrides(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "-o",
            dest="override",
            action="append",
            metavar="KEY=VALUE",
            help="set a config key (dotted, YAML value), e.g. -o hw.clock_mhz=125; repeatable",
        )

    run = command(
        "run",
        "every stage: train, export, lower, gen, sim, synth, report",
        "qfab run examples/digits_mlp.yaml --out out/demo",
        "qfab run examples/digits_mlp.yaml --out out/w4 -o model.weight_bits=4",
        "qfab run cfg.yaml --out out/c --from out/compress/model.qfab.npz   # no training",
    )
    run.add_argument("config", help="YAML config (see README: config reference)")
    run.add_argument("--out", required=True, help="run folder (written atomically)")
    run.add_argument(
        "--from",
        dest="from_ir",
        metavar="IR",
        help="start from an exported model.qfab.npz (e.g. from qfab compress): no training",
    )
    overrides(run)
    run.set_defaults(func=_cmd_run)
    train = command(
        "train",
        "stage 1: QAT (and the float baseline) into a new run folder",
        "qfab train examples/digits_mlp.yaml --out out/demo && qfab export out/demo",
    )
    train.add_argument("config", help="YAML config")
    train.add_argument("--out", required=True, help="run folder (written atomically)")
    overrides(train)
    train.set_defaults(func=_cmd_train)
    export = command(
        "export",
        "stage 2: Brevitas -> IR + level 1; or your own Brevitas model into a new run folder",
        "qfab export out/demo",
        "qfab export mynet.py:build --weights mynet.pt --input-shape 1,8,8 "
        "--config examples/digits_mlp.yaml --out out/mynet",
    )
    export.add_argument(
        "source", help="a run folder, or FILE.py:FUNCTION returning your Brevitas model"
    )
    export.add_argument("--weights", help="state dict for your model (torch.save)")
    export.add_argument("--input-shape", help="C,H,W or F: PyTorch's order, no batch")
    export.add_argument("--config", help="config for the data set and hardware (default: defaults)")
    export.add_argument("--out", help="new run folder for your model")
    overrides(export)
    export.set_defaults(func=_cmd_export)
    for name, what, example in (
        (
            "lower",
            "stage 3: model graph -> hardware graph (folding, FIFOs), checked by golden",
            "qfab lower out/demo -o hw.target_cycles=128",
        ),
        (
            "gen",
            "stage 4: Verilog and/or HLS C++ from the hardware graph",
            "qfab gen out/demo -o hw.backend=both   # refused: hw is read by lower",
        ),
        (
            "sim",
            "stage 5: simulate, compare with golden on every vector (levels 2, 3)",
            "qfab sim out/demo -o sim.simulator=icarus -o sim.vectors=50",
        ),
        (
            "synth",
            "stage 6: Yosys synthesis (and Vitis HLS where installed)",
            "qfab synth out/demo -o synth.part=xcku040",
        ),
    ):
        p = command(name, what, example)
        p.add_argument("run_dir", help="a run folder (qfab run / qfab train --out)")
        overrides(p)
        p.set_defaults(func=_cmd_stage)
    report = command(
        "report",
        "stage 7: report.json + self-contained report.html; several runs: a comparison",
        "qfab report out/demo                       # out/demo/report.html",
        "qfab report out/w2 out/w4 --out compare.html  # side by side, accuracy-vs-LUT front",
    )
    report.add_argument("run_dirs", nargs="+", help="run folder(s)")
    report.add_argument("--out", help="comparison HTML file (several folders)")
    report.set_defaults(func=_cmd_report)
    sweep = command(
        "sweep",
        "design-space sweep on Ray (grid, random, optuna): every point a full run",
        "qfab sweep examples/digits_sweep.yaml --out out/sweep     # local Ray",
        "qfab sweep SWEEP.yaml --out out/sweep --address 10.0.0.5:6379   # a cluster",
    )
    sweep.add_argument("sweep", help="sweep file: base config, axes, mode, objectives")
    sweep.add_argument("--out", required=True, help="sweep folder (rerun the command to resume)")
    sweep.add_argument(
        "--address", help="join this Ray cluster (default: $RAY_ADDRESS, else a local Ray)"
    )
    sweep.set_defaults(func=_cmd_sweep)
    comp = command(
        "compress",
        "baseline + compress steps (prune, quantize, share, encode) -> survey-style table",
        "qfab compress examples/digits_deep_compression.yaml --out out/compress",
    )
    comp.add_argument("config", help="YAML config with a compress: section")
    comp.add_argument("--out", required=True, help="output folder (written atomically)")
    comp.set_defaults(func=_cmd_compress)
    check = command(
        "check-config",
        "validate a config and print it with defaults",
        "qfab check-config examples/digits_mlp.yaml",
    )
    check.add_argument("config")
    check.set_defaults(func=_cmd_check)
    info = command(
        "info",
        "print an IR file: model graph (ranges, widths) and hardware graph",
        "qfab info out/demo/model.qfab.npz",
    )
    info.add_argument("ir")
    info.set_defaults(func=_cmd_info)
    from boards.catalog import BOARDS

    build = command(
        "build",
        "a run's design onto a board: Vivado project (Zynq) or iCE40 bitstream",
        "qfab build out/demo --board pynq-z2 --out out/pynq",
        "qfab build out/demo --board icebreaker --out out/ice40 --find-folding",
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
    dep = command(
        "deploy",
        "copy a board build over SSH and run a smoke test",
        "qfab deploy out/pynq --board pynq-z2 --host 192.168.2.99 --user xilinx --sudo",
    )
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
