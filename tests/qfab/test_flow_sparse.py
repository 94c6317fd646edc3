"""End to end on the sparse engine: `qfab compress` of the Deep Compression example, then
`qfab run --from` its IR with every fully connected layer on the EIE-style engine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qfab.cli import main
from qfab.ir import Graph
from qfab.ops import OPS
from qfab.ops.linear import stored_layout

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits_deep_compression.yaml"


def test_deep_compression_example_runs_on_the_sparse_engine(tmp_path, capsys):
    assert main(["compress", str(EXAMPLE), "--out", str(tmp_path / "c")]) == 0
    capsys.readouterr()
    ir = tmp_path / "c" / "model.qfab.npz"
    report = json.loads((tmp_path / "c" / "compression.json").read_text())
    assert report["stored_layouts"] == ["fc0", "fc1", "fc2"]
    graph = Graph.load(ir)
    for n in (n for n in graph.nodes if n.op == "Dense"):
        layout = stored_layout(n)
        assert layout is not None and layout.pes == 1
        assert len(layout.codebook) <= 16  # 15 shared values + the zero: 4-bit codes
    # the encode row counts the bytes of exactly these layouts (Huffman-coded)
    enc = report["rows"][-1]["detail"]["layers"]
    assert [e["entries"] for e in enc] == [
        int(stored_layout(graph.node(f"fc{i}")).pe_entries.sum()) for i in range(3)
    ]
    out = tmp_path / "hw"
    assert main(["run", str(EXAMPLE), "--from", str(ir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "QAT" not in printed  # nothing trained
    run = json.loads((out / "report.json").read_text())
    assert run["equality"]["rtl_vs_golden"]["mismatches"] == 0
    rtl = run["equality"]["rtl_vs_golden"]
    assert rtl["data_vectors"] == 200 and rtl["vectors"] == 200 + rtl["extreme_vectors"] > 200
    hw = Graph.load(out / "model.qfab.npz").lowered
    engines = [n for n in hw.nodes if n.op == "SparseMVAU"]
    assert [n.name for n in engines] == ["fc0", "fc1", "fc2"]
    for n in engines:  # the engine holds the words 'encode' stored, unchanged
        stored = stored_layout(graph.node(n.name))
        assert np.array_equal(n.tensors["sparse_code"], stored.code)
        assert np.array_equal(n.tensors["sparse_ptr"], stored.ptr)
        assert OPS["SparseMVAU"].layout(n).memory_bytes() == stored.memory_bytes()
    rows = {r["layer"]: r for r in run["sparse"]}
    assert set(rows) == {"fc0", "fc1", "fc2"}
    assert all(r["speedup_model"] > 1 for r in rows.values())
    cpf = run["perf"]["cycles_per_frame"]
    assert cpf["measured"] < rows["fc0"]["dense_mvau_cycles"] / 3
    assert cpf["ratio"] == pytest.approx(1.0, abs=0.1)
    assert run["hardware"]["lint"]["warnings"] == 0
    assert run["resources"]["LUT"] > 0


def test_sparse_engine_settings_are_checked_before_training(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        "model: {hidden: [16]}\ntrain: {epochs: 1}\nhw: {layers: {fc7: {engine: sparse}}}\n"
    )
    assert main(["run", str(cfg), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "hw.layers.fc7: no such layer in the model; allowed: ['fc0', 'fc1']" in err
    assert not (tmp_path / "o").exists()
