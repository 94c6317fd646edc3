"""``qfab compress CONFIG --out DIR``: the compression pipeline, its table and its checks.

Writes ``DIR/compression.json`` (rows + per-layer storage), ``DIR/compression.md`` (the
survey-style table), and, when the result is quantized, ``DIR/model.qfab.npz`` after
checking golden == Brevitas on every test vector. Outputs appear atomically (temp folder,
then rename), as for ``qfab run``; a mismatch keeps them and exits 2 afterwards.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from qfab.config import Config
from qfab.errors import MismatchError
from qfab.flow import atomic_output

#: The survey table's columns (key in :func:`survey_table` rows, heading), in order.
COLUMNS = [
    ("model", "model"),
    ("dataset", "data set"),
    ("baseline_acc", "baseline acc"),
    ("step", "step"),
    ("acc", "accuracy"),
    ("delta", "Δ acc"),
    ("params", "#params"),
    ("params_ratio", "params ×"),
    ("bytes", "bytes"),
    ("Cr", "Cr"),
    ("MACs", "FLOPs (MACs)"),
    ("Sr", "Sr"),
]


TEXT_COLUMNS = ("model", "dataset", "step")


def format_cell(key: str, value: Any) -> str:
    if key in ("acc", "baseline_acc"):
        return f"{value:.2%}"
    if key == "delta":
        return f"{value * 100:+.2f} pt"
    if key in ("Cr", "Sr", "params_ratio"):
        return f"{value:.1f}x"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def markdown_table(table: list[dict[str, Any]]) -> str:
    """The table as Markdown, model and data set in the heading."""
    head = f"{table[0]['model']} on {table[0]['dataset']}\n\n"
    lines = [
        "| " + " | ".join(t for _, t in COLUMNS) + " | storage |",
        "|" + "---|" * (len(COLUMNS) + 1),
    ]
    lines += [
        "| " + " | ".join(format_cell(k, r[k]) for k, _ in COLUMNS) + f" | {r['storage']} |"
        for r in table
    ]
    return head + "\n".join(lines) + "\n"


def print_table(console: Console, table: list[dict[str, Any]]) -> None:
    # model, data set and baseline accuracy are one value per table: in the title here
    first = table[0]
    t = Table(
        title=f"compression: {first['model']} on {first['dataset']}, baseline "
        f"{format_cell('baseline_acc', first['baseline_acc'])}"
    )
    shown = [(k, title) for k, title in COLUMNS if k not in ("model", "dataset", "baseline_acc")]
    for key, title in shown:
        t.add_column(title, justify="left" if key in TEXT_COLUMNS else "right")
    for r in table:
        t.add_row(*(format_cell(k, r[k]) for k, _ in shown))
    console.print(t)


def store_layouts(graph: Any, layouts: dict[str, Any]) -> list[str]:
    """Put the ``encode`` step's layouts on the IR's Dense nodes (the words the sparse
    engine's memories will hold); a layer whose weights changed after ``encode`` keeps
    none. Returns the layers that got one."""
    from qfab.ops import OPS
    from qfab.ops.linear import SPARSE_ATTRS, SPARSE_TENSORS
    from qfab.sparse import layout_tensors, sparse_decode

    stored = []
    for name, layout in layouts.items():
        node = graph.node(name)
        if not np.array_equal(sparse_decode(layout), OPS["Dense"].weight(node)):
            continue
        tensors = layout_tensors(layout)
        for key, field in SPARSE_TENSORS.items():
            node.tensors[key] = tensors[field]
        for key, field in SPARSE_ATTRS.items():
            node.attrs[key] = int(getattr(layout, field))
        stored.append(name)
    graph.validate("compressed model")
    return stored


def run_compress(cfg: Config, out: Path, console: Console | None = None) -> list[dict[str, Any]]:
    """Run the pipeline of ``cfg.compress`` and write its results into ``out``."""
    from quant_train.compress import Pipeline, as_json, survey_table
    from quant_train.datasets import load_dataset
    from quant_train.equality import compare_brevitas_to_golden
    from quant_train.export_ir import export_model

    console = console or Console()
    with atomic_output(Path(out)) as work:
        data = load_dataset(cfg.dataset_name, cfg.dataset_path)
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} epochs"),
            TextColumn("loss {task.fields[loss]:.3f}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console) as progress:
            tasks: dict[str, Any] = {}

            def tick(label: str, epoch: int, total: int, loss: float) -> None:
                if label not in tasks or progress.tasks[tasks[label]].finished:
                    tasks[label] = progress.add_task(label, total=total, loss=loss)
                progress.update(tasks[label], completed=epoch + 1, loss=loss)

            pipe = Pipeline(cfg, data, tick)
            model = pipe.run()
        name = (
            cfg.model.arch
            if cfg.model.arch != "mlp"
            else "mlp-" + "-".join(str(h) for h in cfg.model.hidden)
        )
        table = survey_table(pipe.rows, name, data.name)
        report: dict[str, Any] = {"table": table, "rows": as_json(pipe.rows)}
        if model.quantized:
            graph = export_model(model, {"dataset": data.name, "compress": True})
            report["stored_layouts"] = store_layouts(graph, pipe.layouts)
            eq = compare_brevitas_to_golden(model, graph, data.x_test)
            report["brevitas_vs_golden"] = eq.as_dict()
            graph.save(work / "model.qfab.npz")  # kept on a mismatch too, to inspect
        (work / "compression.json").write_text(json.dumps(report, indent=2) + "\n")
        (work / "compression.md").write_text(markdown_table(table))
        from qfab.report_html import write_run_report

        write_run_report(work, name=Path(out).name)  # the table and its figures, one page
    print_table(console, table)
    if "brevitas_vs_golden" in report:
        b = report["brevitas_vs_golden"]
        console.print(f"Brevitas == golden: {b['mismatches']} mismatches / {b['vectors']} vectors")
        if b["mismatches"]:
            raise MismatchError(
                f"compressed model: Brevitas != golden on {b['mismatches']} vectors; "
                f"first: {b['first_mismatch']} (report: {Path(out) / 'compression.json'})"
            )
    return table
