"""End to end: `qfab run` on a tiny config writes the IR, the RTL and a complete report."""

from __future__ import annotations

import json
import shutil

import pytest

from qfab.cli import main
from qfab.extremes import extreme_vectors
from qfab.ir import Graph

pytestmark = pytest.mark.slow


def test_run_writes_ir_rtl_report_and_all_equalities_hold(tmp_path, capsys):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(
        "model: {hidden: [24, 13], weight_bits: 3, act_bits: 2}\n"
        "train: {epochs: 3}\n"
        "hw: {folding: {pe: [4, 13, 2], simd: [8, 2, 13]}}\n"
        "sim: {simulator: icarus, vectors: 30}\n"
        "synth: {part: xc7z020}\n"
    )
    out = tmp_path / "out"
    assert main(["run", str(cfg), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    # the extreme vectors (qfab.extremes) go first, then the 30 data vectors
    extremes = extreme_vectors(Graph.load(out / "model.qfab.npz"))
    simulated = len(extremes) + 30
    assert "RTL == golden (icarus)" in printed and f"0 mismatches / {simulated} vectors" in printed
    # qonnx's executor: the same extreme vectors, then the first 1000 data vectors
    qonnx_vectors = len(extremes) + 1000
    assert "QONNX == golden (qonnx)" in printed
    assert f"0 mismatches / {qonnx_vectors} vectors" in printed
    assert (out / "model.onnx").is_file()
    report = json.loads((out / "report.json").read_text())
    assert report["equality"]["brevitas_vs_golden"]["mismatches"] == 0
    assert report["equality"]["brevitas_vs_golden"]["vectors"] == 360
    rtl = report["equality"]["rtl_vs_golden"]
    assert {k: v for k, v in rtl.items() if k != "extremes"} == {
        "simulator": "icarus",
        "vectors": simulated,
        "mismatches": 0,
        "first_mismatch": None,
        "data_vectors": 30,
        "extreme_vectors": len(extremes),
    }
    # every first-layer channel's derived min and max was among the simulated vectors
    fc0 = rtl["extremes"]["layers"]["fc0"]
    assert fc0 == {"channels": 24, "max_reached": 24, "min_reached": 24}
    line = "fc0: reached the derived max on 24/24 channels, the min on 24/24"
    assert line in rtl["extremes"]["lines"]
    cpf = report["perf"]["cycles_per_frame"]
    assert cpf["model"] == 48 and cpf["measured"] == pytest.approx(48, rel=0.05)
    assert report["resources"]["LUT"] > 0 and report["resources"]["tool"] == "yosys"
    assert 0.5 < report["accuracy"]["quantized"] <= 1
    assert report["accuracy"]["quantized"] == report["accuracy"]["brevitas"]
    assert report["resources"]["logic_depth"] > 0
    assert report["hardware"]["lint"]["warnings"] == 0, report["hardware"]["lint"]
    graph = Graph.load(out / "model.qfab.npz")
    assert [n.op for n in graph.nodes].count("Dense") == 3
    # the lowered graph is in the IR file, with its folding and cycle estimates
    units = [n for n in graph.lowered.nodes if n.op == "MVAU"]
    assert [(n.attrs["pe"], n.attrs["simd"], n.attrs["cycles"]) for n in units] == [
        (4, 8, 48),
        (13, 2, 12),
        (2, 13, 5),
    ]
    assert (out / "rtl" / "qfab_top.v").exists() and (out / "rtl" / "mvau_pipe.v").exists()
    manifest = json.loads((out / "rtl" / "design.json").read_text())
    assert manifest["input"]["tdata_bits"] <= 64 and manifest["output"]["model_node"] == "fc2"
    capsys.readouterr()
    assert main(["info", str(out / "model.qfab.npz")]) == 0
    info = capsys.readouterr().out
    assert "model graph" in info and "hardware graph" in info
    assert "MVAU" in info and "modelled: 48 cycles/frame (bottleneck fc0)" in info
    assert not list(tmp_path.glob(".out.partial-*")), "temp folder left behind"


def test_conv_arch_runs_on_hardware(tmp_path, capsys):
    cfg = tmp_path / "conv.yaml"
    cfg.write_text(
        "model: {arch: lenet5, weight_bits: 4, act_bits: 4}\ntrain: {epochs: 1}\n"
        "sim: {simulator: icarus, vectors: 8}\nsynth: {enabled: false}\n"
    )
    out = tmp_path / "out"
    assert main(["run", str(cfg), "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["equality"]["brevitas_vs_golden"]["mismatches"] == 0
    assert report["equality"]["rtl_vs_golden"]["mismatches"] == 0
    ops = {u["op"] for u in report["hardware"]["units"]}
    assert {"SlidingWindow", "MVAU", "StreamingMaxPool"} <= ops
    assert report["hardware"]["lint"]["warnings"] == 0, report["hardware"]["lint"]
    cpf = report["perf"]["cycles_per_frame"]
    assert cpf["model"] == 8 * 8 * 9  # auto target: conv0's window, one tap per cycle
    assert cpf["measured"] == pytest.approx(cpf["model"], rel=0.05)
    assert 0.1 < report["accuracy"]["float"] <= 1  # the float twin of the conv net trained
    # model.onnx beside the IR: the model graph in QONNX, run by qonnx's executor == golden
    extremes = len(extreme_vectors(Graph.load(out / "model.qfab.npz")))
    assert report["equality"]["qonnx_vs_golden"] == {
        "path": "model.onnx",
        "extreme_vectors": extremes,
        "vectors": extremes + 1000,
        "mismatches": 0,
        "first_mismatch": None,
    }
    from quant_train.datasets import load_dataset
    from quant_train.export_qonnx import compare_qonnx_to_golden, load_qonnx

    check = compare_qonnx_to_golden(
        Graph.load(out / "model.qfab.npz"),
        load_qonnx(out / "model.onnx"),
        load_dataset("digits").x_test,
    )
    assert check.vectors == 360 and check.mismatches == 0, check.first_mismatch


def test_compress_command_writes_table_json_and_exact_ir(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "model: {hidden: [24, 16]}\n"
        "train: {epochs: 3}\n"
        "compress:\n"
        "  steps:\n"
        "    - prune: {sparsity: 0.7, fine_tune_epochs: 1}\n"
        "    - quantize: {weight_bits: 4, act_bits: 3, epochs: 2}\n"
        "    - share: {clusters: 8, fine_tune_epochs: 1}\n"
        "    - encode: {index_bits: 4, huffman: true}\n"
    )
    out = tmp_path / "out"
    assert main(["compress", str(cfg), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Brevitas == golden: 0 mismatches / 360 vectors" in printed
    report = json.loads((out / "compression.json").read_text())
    steps = [r["step"] for r in report["table"]]
    assert steps[0] == "baseline (float32)" and steps[-1].startswith("encode")
    last = report["table"][-1]
    assert last["storage"] == "encoded bytes" and last["Cr"] > 8
    layers = report["rows"][-1]["detail"]["layers"]
    assert sum(layer["total_bytes"] for layer in layers) == last["bytes"]
    md = (out / "compression.md").read_text()
    assert "| step | accuracy | Δ acc | #params |" in md and "Cr" in md and "Sr" in md
    graph = Graph.load(out / "model.qfab.npz")
    assert all("codebook" in n.tensors for n in graph.nodes if n.op == "Dense")
    # its page: the compression table and the accuracy per step
    page = (out / "report.html").read_text()
    assert 'id="fig-compression-steps"' in page and "encoded bytes" in page
    (out / "report.html").unlink()
    assert main(["report", str(out)]) == 0 and (out / "report.html").is_file()


def test_compressed_model_runs_on_hardware_from_its_ir(tmp_path, capsys):
    """``qfab compress`` exports a pruned, shared w4a4 model; ``qfab run --from`` takes that
    file through lowering, generation and simulation without training anything."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "model: {hidden: [24, 16]}\n"
        "train: {epochs: 2}\n"
        "sim: {simulator: icarus, vectors: 20}\nsynth: {enabled: false}\n"
        "compress:\n"
        "  steps:\n"
        "    - prune: {sparsity: 0.8, fine_tune_epochs: 1}\n"
        "    - quantize: {weight_bits: 4, act_bits: 4, epochs: 1}\n"
        "    - share: {clusters: 8, fine_tune_epochs: 1}\n"
    )
    assert main(["compress", str(cfg), "--out", str(tmp_path / "c")]) == 0
    capsys.readouterr()
    ir = tmp_path / "c" / "model.qfab.npz"
    out = tmp_path / "hw"
    assert main(["run", str(cfg), "--from", str(ir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "float baseline" not in printed and "QAT" not in printed  # nothing trained
    report = json.loads((out / "report.json").read_text())
    assert report["equality"]["rtl_vs_golden"]["mismatches"] == 0
    assert (
        "level 1 was checked when it was exported"
        in (report["equality"]["brevitas_vs_golden"]["skipped"])
    )
    graph = Graph.load(out / "model.qfab.npz")
    assert all("codebook" in n.tensors for n in graph.nodes if n.op == "Dense")
    assert graph.lowered is not None
    assert main(["run", str(cfg), "--from", str(tmp_path / "nope.npz"), "--out", str(out)]) == 2


def test_compress_refuses_share_before_quantize_and_leaves_nothing(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train: {epochs: 1}\ncompress: {steps: [{share: {}}]}\n")
    assert main(["compress", str(cfg), "--out", str(tmp_path / "out")]) == 2
    assert "'share' needs 'quantize' before it" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


def test_rtl_mismatch_exits_2_and_keeps_the_evidence(tmp_path, capsys, monkeypatch):
    """A corrupted word in a generated ROM file fails level 2: exit 2, the first
    mismatch named on stderr, and the output kept (report, IR, RTL) for inspection."""
    import re

    import hw_gen.verilog.emit as emit

    real = emit.generate_verilog

    def corrupted(graph, out_dir, **kw):
        design = real(graph, out_dir, **kw)
        rom = out_dir / "fc1_weights.v"
        text = rom.read_text()
        word = re.search(r"mem\[0\] = (\d+)'h([0-9a-f]+);", text)
        bits, value = int(word.group(1)), int(word.group(2), 16)
        flipped = f"mem[0] = {bits}'h{value ^ ((1 << bits) - 1):x};"
        rom.write_text(text.replace(word.group(0), flipped, 1))
        return design

    monkeypatch.setattr(emit, "generate_verilog", corrupted)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "model: {hidden: [16, 12]}\ntrain: {epochs: 2, float_baseline: false}\n"
        "sim: {simulator: icarus, vectors: 20}\nsynth: {enabled: false}\n"
    )
    out = tmp_path / "out"
    assert main(["run", str(cfg), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("qfab: error: RTL != golden on ") and "'layer': 'mt1'" in err
    report = json.loads((out / "report.json").read_text())
    rtl = report["equality"]["rtl_vs_golden"]
    assert rtl["mismatches"] > 0 and rtl["first_mismatch"]["layer"] == "mt1"
    assert report["equality"]["brevitas_vs_golden"]["mismatches"] == 0
    assert (out / "rtl" / "fc1_weights.v").exists() and (out / "model.qfab.npz").exists()
    # the waveform of the first mismatching vector is kept, and it shows the mismatch
    wave = rtl["waveform"]
    assert wave["path"] == "waves/first_mismatch.fst" and (out / wave["path"]).is_file()
    assert wave["reproduced"] is True and wave["first_mismatch"]["layer"] == "mt1"
    assert not (out / "wave_build").exists()
    assert "first_mismatch.fst" in (out / "report.html").read_text()


def test_level1_mismatch_exits_2_before_any_hardware(tmp_path, capsys, monkeypatch):
    import quant_train.export_ir as export_ir

    real = export_ir.export_model

    def off_by_one(model, meta=None):
        graph = real(model, meta)
        graph.node("mt0").tensors["thresholds"][3] -= 1000  # channel 3 always at the top
        return graph

    monkeypatch.setattr(export_ir, "export_model", off_by_one)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: {hidden: [16]}\ntrain: {epochs: 2, float_baseline: false}\n")
    out = tmp_path / "out"
    assert main(["run", str(cfg), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Brevitas != golden on " in err and "mt0" in err
    assert not (out / "rtl").exists()
    report = json.loads((out / "report.json").read_text())
    assert report["equality"]["brevitas_vs_golden"]["mismatches"] > 0


@pytest.mark.parametrize(
    ("sim", "backpressure", "says"),
    [
        (True, False, "model 64 (not measured: fewer than 3 frames)"),
        (True, True, "model 64 (not steady state: backpressure on)"),
        (False, False, "model 64 (not simulated)"),
    ],
)
def test_summary_says_why_cycles_were_not_measured(sim, backpressure, says):
    from rich.console import Console

    from qfab.flow import print_summary

    eq = {"brevitas_vs_golden": {"mismatches": 0, "vectors": 2}}
    if sim:
        eq["rtl_vs_golden"] = {"simulator": "icarus", "mismatches": 0, "vectors": 2}
    cpf = {"measured": None, "model": 64, "ratio": None, "backpressure": backpressure}
    report = {
        "accuracy": {"float": None, "quantized": 0.5},
        "equality": eq,
        "perf": {"cycles_per_frame": cpf},
    }
    console = Console(record=True, width=120)
    print_summary(console, report)
    assert says in console.export_text()


def test_a_kernel_larger_than_its_input_is_refused_before_training(tmp_path, capsys):
    """CNV on 3x3 images: its last pool would see a 1x1 input. One line naming the node,
    before any of the 200 epochs, nothing left behind."""
    import time

    import numpy as np

    from tests.quant_train.test_datasets import write_idx

    rng = np.random.default_rng(0)
    data = tmp_path / "tiny"
    data.mkdir()
    for prefix, n in (("train", 50), ("t10k", 20)):
        write_idx(data / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 3, 3)), False)
        write_idx(data / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n), False)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"dataset: {{name: mnist, path: {data}}}\nmodel: {{arch: cnv}}\ntrain: {{epochs: 200}}\n"
    )
    start = time.perf_counter()
    assert main(["run", str(cfg), "--out", str(tmp_path / "out")]) == 2
    assert time.perf_counter() - start < 20
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "qfab: error: node 'pool3' (MaxPool): kernel 2x2 is larger than its 1x1 input; "
        "the images (3x3) are too small for this model.arch"
    ]
    assert not (tmp_path / "out").exists()


def test_hls_backend_alone_writes_hls_and_checks_level_3(tmp_path, capsys):
    """``hw.backend: hls``: the HLS folder (no RTL), its C simulation == golden on the
    extreme and data vectors, every tapped layer compared, and the Vitis script written
    but honestly not run (no vitis_hls here), with the command to run it."""
    cfg = tmp_path / "h.yaml"
    cfg.write_text(
        "model: {hidden: [16, 12], weight_bits: 3, act_bits: 2}\n"
        "train: {epochs: 2, float_baseline: false}\n"
        "hw: {backend: hls, fifo_sizing: 'off'}\n"
        "sim: {vectors: 25}\nsynth: {part: xc7z020}\n"
    )
    out = tmp_path / "out"
    assert main(["run", str(cfg), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    extremes = extreme_vectors(Graph.load(out / "model.qfab.npz"))
    hls = report["equality"]["hls_vs_golden"]
    assert hls["mismatches"] == 0 and hls["first_mismatch"] is None
    assert hls["vectors"] == len(extremes) + 25 and hls["data_vectors"] == 25
    assert hls["compile_s"] > 0 and hls["csim_s"] > 0 and hls["compiler"].startswith("g++")
    assert "rtl_vs_golden" not in report["equality"] and "resources" not in report
    assert not (out / "rtl").exists()
    assert report["hardware"]["backend"] == "hls"
    for name in ("qfab_top.cpp", "qfab_top.h", "qfab_hls.h", "csim_main.cpp", "run_hls.tcl"):
        assert (out / "hls" / name).is_file(), name
    # the Vitis test bench: golden's output beats for the first vectors simulated
    beats = (out / "hls" / "tb_expected.hex").read_text().split()
    frames = min(64, hls["vectors"])
    assert len(beats) == frames * report["hardware"]["ports"]["m_axis"]["beats_per_frame"]
    vitis = report["hls"]["vitis"]
    assert "HLS == golden (g++ C sim)" in printed and f"0 mismatches / {hls['vectors']}" in printed
    if shutil.which("vitis_hls") is None:  # qfab's CI machines: said, not faked
        assert vitis == {
            "ran": False,
            "why": "vitis_hls is not on PATH",
            "command": "cd hls && vitis_hls -f run_hls.tcl",
        }
        assert "Vitis HLS" in printed and "not run: vitis_hls is not on PATH" in printed
    else:
        assert vitis["ran"] and (out / "hls" / vitis["log"]).is_file()


def test_hls_mismatch_exits_2_and_keeps_the_evidence(tmp_path, capsys, monkeypatch):
    """A wrong threshold offset in one generated HLS kernel fails level 3 (with the RTL
    of the same run correct): exit 2, the layer named, the folder kept."""
    import hw_gen.hls.kernels as kernels

    real = kernels.KERNELS["MVAU"]

    def off_by_one(d, node):
        k = real(d, node)
        if node.attrs.get("model_node") == "mt1":
            k.p["OFFSET"] += 1
        return k

    monkeypatch.setitem(kernels.KERNELS, "MVAU", off_by_one)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "model: {hidden: [16, 12]}\ntrain: {epochs: 2, float_baseline: false}\n"
        "hw: {backend: both, fifo_sizing: 'off'}\n"
        "sim: {simulator: icarus, vectors: 20}\nsynth: {enabled: false}\n"
    )
    out = tmp_path / "out"
    assert main(["run", str(cfg), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("qfab: error: HLS C simulation != golden on ") and "mt1" in err
    report = json.loads((out / "report.json").read_text())
    assert report["equality"]["rtl_vs_golden"]["mismatches"] == 0
    hls = report["equality"]["hls_vs_golden"]
    assert hls["mismatches"] > 0 and hls["first_mismatch"]["layer"] == "mt1"
    assert hls["first_mismatch"]["hls"] != hls["first_mismatch"]["golden"]
    assert (out / "hls" / "qfab_top.cpp").exists() and (out / "rtl" / "qfab_top.v").exists()


def test_unknown_backend_is_refused_with_the_allowed_values(tmp_path, capsys):
    cfg = tmp_path / "b.yaml"
    cfg.write_text("hw: {backend: vhdl}\n")
    assert main(["run", str(cfg), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "hw.backend = 'vhdl' is not allowed; allowed: 'rtl', 'hls', 'both'" in err
    assert not (tmp_path / "out").exists()
