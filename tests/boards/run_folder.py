"""A ``qfab run``-shaped folder without training: a test design's IR (model graph with its
hardware graph attached) as ``model.qfab.npz`` and its generated Verilog in ``rtl/``, the
two things ``qfab build`` and ``qfab deploy`` read from a run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hw_gen.passes import lower
from hw_gen.verilog.emit import generate_verilog
from qfab.ir import Graph
from tests.hw_gen.designs import DESIGNS


def make_run_folder(
    folder: Path, design: str = "mlp_dwc", clock_mhz: float = 100.0, **lowering: Any
) -> tuple[Graph, dict[str, Any]]:
    """Write ``folder/{model.qfab.npz, rtl/, report.json}`` for one of the test designs;
    ``lowering`` overrides the design's own folding. Returns the graph and the manifest."""
    g, kw = DESIGNS[design]()
    g.lowered = lower(g, **(lowering or kw))
    folder.mkdir(parents=True, exist_ok=True)
    g.save(folder / "model.qfab.npz")
    manifest = generate_verilog(g.lowered, folder / "rtl", clock_mhz=clock_mhz)
    (folder / "report.json").write_text(json.dumps({"design": design}) + "\n")
    return g, manifest
