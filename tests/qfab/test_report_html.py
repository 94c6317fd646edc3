"""The HTML report: every section shown when its data exists and explained when not, the
first mismatch named, the page self-contained, and (slow) a real run's page rendered by
headless Chromium with every figure drawn."""

from __future__ import annotations

import copy
import json
import math
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qfab.errors import ConfigError
from qfab.random_graph import random_mlp_graph
from qfab.report_html import weight_storage_bytes, write_comparison_report, write_run_report

FIGURE = re.compile(r'<figure id="(fig-[^"]+)">(.*?)</figure>', re.DOTALL)


def full_report() -> dict[str, Any]:
    """A report.json as ``qfab run`` writes it, every optional part present."""
    return {
        "config": {
            "dataset": "digits",
            "model": {
                "arch": "mlp",
                "hidden": [64, 64],
                "weight_bits": 2,
                "act_bits": 2,
                "input_bits": 8,
                "per_channel": False,
            },
            "hw": {"backend": "both", "folding": "auto"},
            "sim": {"enabled": True, "simulator": "verilator", "vectors": 200},
            "synth": {"enabled": True, "part": "xc7z020"},
        },
        "dataset": {"name": "digits", "train": 1437, "test": 360, "features": 64, "classes": 10},
        "accuracy": {"float": 0.9861, "brevitas": 0.9722, "quantized": 0.9722},
        "equality": {
            "brevitas_vs_golden": {
                "vectors": 360,
                "mismatches": 0,
                "first_mismatch": None,
                "float32_exact": True,
            },
            "qonnx_vs_golden": {
                "path": "model.onnx",
                "extreme_vectors": 126,
                "vectors": 1126,
                "mismatches": 0,
                "first_mismatch": None,
            },
            "rtl_vs_golden": {
                "simulator": "verilator",
                "vectors": 326,
                "mismatches": 0,
                "first_mismatch": None,
                "data_vectors": 200,
                "extreme_vectors": 126,
            },
            "hls_vs_golden": {
                "simulator": "g++ C simulation",
                "vectors": 326,
                "mismatches": 0,
                "first_mismatch": None,
                "data_vectors": 200,
                "extreme_vectors": 126,
                "compile_s": 2.1,
                "csim_s": 0.3,
            },
        },
        "hardware": {
            "top": "qfab_top",
            "folding_policy": "auto, target 64 cycles",
            "backend": "both",
            "units": [
                {
                    "name": "fc0",
                    "op": "MVAU",
                    "pe": 1,
                    "simd": 64,
                    "cycles": 64,
                    "model_node": "mt0",
                },
                {"name": "fc1_dwc", "op": "DWC", "cycles": 64, "in_elems": 1, "out_elems": 64},
                {
                    "name": "fc1",
                    "op": "SparseMVAU",
                    "pe": 2,
                    "simd": 8,
                    "cycles": 139,
                    "model_node": "fc1",
                },
            ],
            "folding": [
                {"unit": "fc0", "op": "MVAU", "MH": 64, "MW": 64, "PE": 1, "SIMD": 64, "cycles": 64}
            ],
        },
        "layers": [
            {
                "unit": "fc0",
                "op": "MVAU",
                "model_node": "mt0",
                "cycles_model": 64,
                "cycles_measured_at_output": 64.0,
                "cycles_unblocked_at_output": 63.25,
                "LUT": 1234,
                "FF": 987,
                "BRAM36": 0,
                "DSP": 0,
            },
            {
                "unit": "fc1_dwc",
                "op": "DWC",
                "model_node": None,
                "cycles_model": 64,
                "cycles_measured_at_output": None,
                "cycles_unblocked_at_output": None,
                "LUT": 55,
                "FF": 77,
                "BRAM36": None,
                "DSP": None,
            },
            {
                "unit": "fc1",
                "op": "SparseMVAU",
                "model_node": "fc1",
                "cycles_model": 74,
                "cycles_measured_at_output": 70.5,
                "cycles_unblocked_at_output": 70.5,
                "LUT": 2345,
                "FF": 1876,
                "BRAM36": 1,
                "DSP": 0,
                "LUTRAM": 12,
            },
        ],
        "perf": {
            "cycles_per_frame": {
                "measured": 64.0,
                "model": 64,
                "ratio": 1.0,
                "method": "steady state",
                "backpressure": False,
            },
            "bottleneck": "fc0",
            "clock_mhz": 100.0,
            "frames_per_s_model": 1562500.0,
            "latency_cycles": {"measured": 225, "bound": 398},
            "unit_cycles": {"fc0": 64, "fc1_dwc": 64, "fc1": 74},
        },
        "sparse": [
            {
                "layer": "fc1",
                "pes": 2,
                "queue_depth": 8,
                "density": 0.1187,
                "entries": 243,
                "padding_entries": 3,
                "entries_per_pe": [116, 127],
                "cycles_per_frame_model": 73.6,
                "ideal_cycles": 66.5,
                "efficiency_model": 0.9035,
                "dense_mvau_cycles": 1024,
                "speedup_model": 13.91,
                "memory_bytes": 361,
            },
        ],
        "resources": {
            "tool": "yosys",
            "version": "Yosys 0.23",
            "part": "xc7z020",
            "LUT": 2812,
            "FF": 3134,
            "BRAM36": 0,
            "DSP": 0,
            "LUTRAM": 110,
            "logic_depth": 7,
        },
        "seconds": {"data": 0.6, "sim": 14.25},
    }


def compression() -> dict[str, Any]:
    """A compression.json as ``qfab compress`` writes it (table rows, level-1 check)."""
    rows = [
        ("baseline (float32)", 0.958, 2368, 9472, "dense float32"),
        ("prune 80% (global)", 0.925, 474, 9472, "dense float32"),
        ("quantize w4a4", 0.9417, 474, 1184, "dense 4-bit"),
        ("encode (CSC 4-bit rel. index, 2 PE + Huffman)", 0.95, 462, 523, "encoded bytes"),
    ]
    table = [
        {
            "model": "mlp-32",
            "dataset": "digits",
            "step": step,
            "baseline_acc": 0.958,
            "acc": acc,
            "delta": acc - 0.958,
            "params": params,
            "params_ratio": 2368 / params,
            "bytes": size,
            "storage": storage,
            "Cr": 9472 / size,
            "MACs": params,
            "Sr": 2368 / params,
        }
        for step, acc, params, size, storage in rows
    ]
    return {
        "table": table,
        "rows": [],
        "brevitas_vs_golden": {"vectors": 360, "mismatches": 0, "first_mismatch": None},
    }


def write_run(
    folder: Path, report: dict[str, Any] | None, comp: dict[str, Any] | None = None
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if report is not None:
        (folder / "report.json").write_text(json.dumps(report))
    if comp is not None:
        (folder / "compression.json").write_text(json.dumps(comp))
    return folder


def figures(html: str) -> dict[str, str]:
    return dict(FIGURE.findall(html))


def section(html: str, name: str) -> str:
    found = re.search(rf'<section id="{name}">(.*?)</section>', html, re.DOTALL)
    assert found, f"no section {name}"
    return found[1]


def assert_self_contained(html: str) -> None:
    for outside in (
        'src="http',
        "src='http",
        "<link",
        "<script",
        "@import",
        "url(http",
        'href="http',
    ):
        assert outside not in html, outside


def test_full_report_shows_every_section_and_figure(tmp_path):
    run = write_run(tmp_path / "run", full_report(), compression())
    html = write_run_report(run).read_text()
    figs = figures(html)
    assert set(figs) == {
        "fig-accuracy-bits",
        "fig-compression-steps",
        "fig-layer-cycles",
        "fig-layer-resources",
        "fig-sparse-load",
    }
    for name, body in figs.items():
        assert "<svg" in body and "</svg>" in body and "<figcaption>" in body, name
        assert "<text" not in body, f"{name}: text as paths, so the page needs no font"
    summary = section(html, "summary")
    assert "98.61%" in summary and "97.22%" in summary
    assert "weights 2, activations 2, input 8" in summary  # no IR here: from the config
    eq = section(html, "equalities")
    assert eq.count('class="row-pass"') == 4 and "row-fail" not in eq
    layers = section(html, "layers")
    assert "report.json: layers" in layers
    row = re.search(r'<tr><td class="text">fc0</td>(.*?)</tr>', layers, re.DOTALL)[1]
    # op, node, PE, SIMD, cycles model / measured / unblocked, LUT, FF, BRAM36, DSP, LUTRAM
    assert re.findall(r"<td[^>]*>(.*?)</td>", row) == [
        "MVAU",
        "mt0",
        "1",
        "64",
        "64",
        "64.00",
        "63.25",
        "1,234",
        "987",
        "0",
        "0",
        "—",
    ]
    assert "against the simulation" in layers  # measured cycles drawn beside the model's
    comp = section(html, "compression")
    assert "encode (CSC 4-bit rel. index, 2 PE + Huffman)" in comp and "18.1x" in comp
    assert "0 mismatches / 360 vectors" in comp
    assert "116, 127" in section(html, "sparse") and "90%" in section(html, "sparse")
    assert "2,812" in section(html, "resources")
    perf = section(html, "performance")
    assert "1,562,500" in perf and "225" in perf and "398" in perf
    assert 'class="absent"' not in html  # nothing is missing
    assert_self_contained(html)


def test_absent_parts_say_why(tmp_path):
    report = full_report()
    for key in ("layers", "sparse", "resources"):
        del report[key]
    for key in ("rtl_vs_golden", "hls_vs_golden"):
        del report["equality"][key]
    report["config"]["sim"]["enabled"] = False
    report["config"]["synth"]["enabled"] = False
    report["config"]["hw"]["backend"] = "rtl"
    report["perf"]["cycles_per_frame"].update(measured=None, ratio=None)
    html = write_run_report(write_run(tmp_path / "run", report)).read_text()
    assert set(figures(html)) == {"fig-accuracy-bits", "fig-layer-cycles"}
    eq = section(html, "equalities")
    assert "not simulated (sim.enabled: false)" in eq
    assert "not run (backend rtl: no HLS C++)" in eq
    assert "synthesis off (synth.enabled: false)" in section(html, "resources")
    assert "not compressed" in section(html, "compression")
    assert "no sparse engine" in section(html, "sparse")
    assert "not simulated" in section(html, "performance")
    layers = section(html, "layers")
    assert "derived from hardware.units" in layers
    assert "resources per unit: not measured" in layers
    # derived rows: the perf model's cycles, measurements shown as —
    row = re.search(r'<tr><td class="text">fc1</td>(.*?)</tr>', layers, re.DOTALL)[1]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
    assert cells == ["SparseMVAU", "fc1", "2", "8", "74", "—", "—", "—", "—", "—"]


def test_a_run_stopped_at_level_1_has_no_hardware_sections(tmp_path):
    report = full_report()
    for key in ("hardware", "layers", "perf", "sparse", "resources"):
        del report[key]
    for key in ("rtl_vs_golden", "hls_vs_golden", "qonnx_vs_golden"):
        del report["equality"][key]
    report["equality"]["brevitas_vs_golden"].update(
        mismatches=2,
        first_mismatch={"layer": "mt0", "vector": 5, "channel": 3, "golden": 1, "brevitas": 2},
    )
    report["mismatch"] = "Brevitas != golden on 2/360 vectors"
    html = write_run_report(write_run(tmp_path / "run", report)).read_text()
    assert "no hardware" in section(html, "equalities")
    assert "not run: no hardware" in section(html, "equalities")
    assert "no hardware in this run" in section(html, "layers")
    assert "no hardware" in section(html, "resources")
    assert "no performance model" in section(html, "performance")
    assert '<p class="banner" id="mismatch">' in html
    first = re.search(r'<td class="text mismatch">(.*?)</td>', html)[1]
    assert first == "layer mt0, channel 3, vector 5: golden 1, brevitas 2"


@pytest.mark.parametrize(
    ("key", "first", "shown"),
    [
        (
            "rtl_vs_golden",
            {"layer": "mt1", "vector": 7, "channel": 12, "golden": 3, "rtl": 2},
            "layer mt1, channel 12, vector 7: golden 3, rtl 2",
        ),
        (
            "hls_vs_golden",
            {"layer": "fc2", "vector": 0, "channel": 4, "golden": -9, "hls": 11},
            "layer fc2, channel 4, vector 0: golden -9, hls 11",
        ),
        (
            "qonnx_vs_golden",
            "node mt0, vector 3, channel 1: golden 2, qonnx 1",
            "node mt0, vector 3, channel 1: golden 2, qonnx 1",
        ),
    ],
)
def test_the_first_mismatch_is_named_and_red(tmp_path, key, first, shown):
    report = full_report()
    report["equality"][key].update(mismatches=3, first_mismatch=first)
    report["mismatch"] = f"{key}: 3 vectors differ"
    html = write_run_report(write_run(tmp_path / "run", report)).read_text()
    eq = section(html, "equalities")
    assert eq.count('class="row-fail"') == 1 and eq.count('class="row-pass"') == 3
    failed = re.search(r'<tr class="row-fail">(.*?)</tr>', eq, re.DOTALL)[1]
    assert '<td class="fail">3</td>' in failed
    assert re.search(r'<td class="text mismatch">(.*?)</td>', failed)[1] == shown
    assert f"Equality failed: {key}: 3 vectors differ" in html
    css = re.search(r"<style>(.*?)</style>", html, re.DOTALL)[1]
    assert re.search(r"\.mismatch \{[^}]*color: #b00020", css), "mismatch not styled red"


def test_svg_ids_are_unique_in_the_page(tmp_path):
    # several matplotlib SVGs in one page: their glyph and clip-path ids must not collide
    html = write_run_report(write_run(tmp_path / "run", full_report(), compression())).read_text()
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) > 20 and len(ids) == len(set(ids))
    for ref in set(re.findall(r'(?:href="#|url\(#)([^")]+)', html)):
        assert ref in ids, f"dangling reference #{ref}"


def test_a_compress_folder_renders_its_table_alone(tmp_path):
    html = write_run_report(write_run(tmp_path / "c", None, compression())).read_text()
    assert set(figures(html)) == {"fig-accuracy-bits", "fig-compression-steps"}
    assert "compression only" in section(html, "summary")
    assert "quantize w4a4" in section(html, "compression")


def test_a_run_from_a_compressed_ir_finds_its_compression_table(tmp_path):
    comp = write_run(tmp_path / "c", None, compression())
    graph = random_mlp_graph(16, [8], 10, weight_bits=4, act_bits=3, seed=0)
    report = full_report()
    report["source"] = {"ir": str(comp / "model.qfab.npz"), "meta": {}}
    report["accuracy"].update(float=None, brevitas=None)
    run = write_run(tmp_path / "run", report)
    graph.save(run / "model.qfab.npz")
    html = write_run_report(run).read_text()
    assert "fig-compression-steps" in figures(html)
    # the config says w2a2 but the model came from the IR: its bits are the IR's
    assert "weights 4, activations 3, input" in section(html, "summary")


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "no such file"),
        ("{not json", "not a readable JSON file"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_a_missing_or_corrupt_report_names_the_file_and_keeps_the_old_page(tmp_path, content, says):
    run = tmp_path / "run"
    run.mkdir()
    (run / "report.html").write_text("old page")
    if content is not None:
        (run / "report.json").write_text(content)
    with pytest.raises(ConfigError, match=re.escape(str(run / "report.json")) + ".*" + says):
        write_run_report(run)
    assert (run / "report.html").read_text() == "old page"
    assert sorted(p.name for p in run.iterdir()) == sorted(
        ["report.html", *(["report.json"] if content is not None else [])]
    )


def test_rendering_is_reproducible_and_leaves_no_temporary_file(tmp_path):
    run = write_run(tmp_path / "run", full_report())
    first = write_run_report(run).read_text()
    assert "<title>qfab report: run</title>" in first
    assert write_run_report(run).read_text() == first  # same JSON, same bytes (no dates)
    page = write_run_report(run, name="demo")  # re-rendering replaces the page
    assert "<title>qfab report: demo</title>" in page.read_text()
    assert sorted(p.name for p in run.iterdir()) == ["report.html", "report.json"]


def test_weight_storage_bytes_counts_bits_of_every_weight(tmp_path):
    graph = random_mlp_graph(24, [24, 13], 10, weight_bits=3, act_bits=2, seed=1)
    path = graph.save(tmp_path / "m.qfab.npz")
    # 24->24->13->10: three Dense layers of 3-bit weights
    assert weight_storage_bytes(path) == math.ceil(3 * (24 * 24 + 24 * 13 + 13 * 10) / 8)


def comparison_runs(tmp_path: Path) -> list[Path]:
    """Three runs: a (cheap, less accurate), b (dearer, best), c (dominated by a)."""
    runs = []
    for name, acc, lut, bits in (("a", 0.90, 1000, 2), ("b", 0.95, 2000, 4), ("c", 0.89, 3000, 2)):
        report = full_report()
        report["accuracy"]["quantized"] = acc
        report["resources"]["LUT"] = lut
        report["config"]["model"].update(weight_bits=bits, act_bits=bits)
        run = write_run(tmp_path / name, report)
        random_mlp_graph(16, [8], 10, weight_bits=bits, act_bits=bits, seed=0).save(
            run / "model.qfab.npz"
        )
        runs.append(run)
    return runs


def test_comparison_puts_runs_side_by_side_with_their_fronts(tmp_path):
    runs = comparison_runs(tmp_path)
    html = write_comparison_report(runs, tmp_path / "cmp" / "compare.html").read_text()
    assert_self_contained(html)
    figs = figures(html)
    assert {"fig-accuracy-lut", "fig-accuracy-bytes", "fig-accuracy-bits"} <= set(figs)
    # LUT front: a and b; c costs more than a for less accuracy
    assert re.search(r"marked ◆: a, b\.</figcaption>", figs["fig-accuracy-lut"])
    # bytes front: a (2-bit, 16*8+8*10 weights) and b (4-bit): c has a's bytes, less accuracy
    assert re.search(r"marked ◆: a, b\.</figcaption>", figs["fig-accuracy-bytes"])
    table = section(html, "runs")
    weights = 16 * 8 + 8 * 10  # 16 -> 8 -> 10
    for name, acc, lut, bits in (
        ("a", "90.00%", "1,000", 2),
        ("b", "95.00%", "2,000", 4),
        ("c", "89.00%", "3,000", 2),
    ):
        row = re.search(rf"<tr[^>]*><td class=\"text\">{name}</td>(.*?)</tr>", table)[1]
        size = math.ceil(bits * weights / 8)
        assert acc in row and lut in row and f"{size} (weight_bits × count)" in row
        assert f"w{bits}a{bits}" in row


def test_comparison_prefers_the_compression_table_bytes_and_flags_mismatches(tmp_path):
    comp = write_run(tmp_path / "compressed", None, compression())
    report = full_report()
    report["source"] = {"ir": str(comp / "model.qfab.npz"), "meta": {}}
    report["mismatch"] = "RTL != golden"
    sparse = write_run(tmp_path / "sparse", report)
    dense = write_run(tmp_path / "dense", full_report())  # no IR, no table: bytes unknown
    html = write_comparison_report([dense, sparse], tmp_path / "c.html").read_text()
    table = section(html, "runs")
    assert "523 (encoded bytes)" in table
    assert re.search(r'<tr class="row-fail"><td class="text">sparse</td>', table)
    assert "fig-accuracy-bytes" in figures(html)
    # a run whose hardware failed an equality is drawn but never on a front
    caption = re.search(r'id="fig-accuracy-bytes".*?<figcaption>(.*?)</figcaption>', html, re.S)
    assert caption and "sparse" not in caption.group(1).split("◆")[-1]


def test_comparison_of_a_folder_without_report_names_it(tmp_path):
    good = write_run(tmp_path / "good", full_report())
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=re.escape(str(tmp_path / "empty" / "report.json"))):
        write_comparison_report([good, tmp_path / "empty"], tmp_path / "c.html")
    assert not (tmp_path / "c.html").exists()


# ---------------------------------------------------------------- slow: a real run in Chromium

#: Writes each figure's and its SVG's rendered size into the DOM Chromium dumps.
PROBE = """<script>
const sizes = {};
for (const f of document.querySelectorAll("figure")) {
  const svg = f.querySelector("svg"), r = f.getBoundingClientRect();
  const s = svg ? svg.getBoundingClientRect() : null;
  sizes[f.id] = {w: r.width, h: r.height, svg_w: s ? s.width : 0, svg_h: s ? s.height : 0,
                 paths: svg ? svg.querySelectorAll("path, use").length : 0};
}
const pre = document.createElement("pre");
pre.id = "probe";
pre.textContent = JSON.stringify(sizes);
document.body.appendChild(pre);
</script>"""


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is not installed: run `make install` (Debian package chromium)")
    return path


def headless(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--window-size=1280,4000",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )


def rendered_figures(browser: str, page: Path, work: Path) -> dict[str, dict[str, float]]:
    """Each figure's rendered size, read back from the DOM Chromium dumps."""
    probe = work / f"probe-{page.name}"
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    dumped = headless(browser, work / "profile", "--dump-dom", probe.as_uri())
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', dumped.stdout, re.DOTALL)
    assert found, "the probe did not run: " + dumped.stdout[-500:]
    return json.loads(found[1].replace("&quot;", '"').replace("&amp;", "&"))


def test_every_kind_of_figure_renders_in_chromium(tmp_path):
    # the synthetic report has every figure the page can hold (the real run below has no
    # compression table, sparse engine or per-unit resources)
    browser = chromium()
    page = write_run_report(write_run(tmp_path / "run", full_report(), compression()))
    sizes = rendered_figures(browser, page, tmp_path)
    assert set(sizes) == set(figures(page.read_text())) and len(sizes) == 5
    for name, s in sizes.items():
        assert s["svg_w"] > 100 and s["svg_h"] > 100 and s["paths"] > 10, (name, s)
    page = write_comparison_report(comparison_runs(tmp_path / "runs"), tmp_path / "cmp.html")
    sizes = rendered_figures(browser, page, tmp_path)
    assert set(sizes) == {"fig-accuracy-lut", "fig-accuracy-bytes", "fig-accuracy-bits"}
    for name, s in sizes.items():
        assert s["svg_w"] > 100 and s["svg_h"] > 100 and s["paths"] > 10, (name, s)


@pytest.mark.slow
def test_a_real_run_renders_in_chromium_with_every_figure(tmp_path):
    from qfab.cli import main

    browser = chromium()
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(
        "model: {hidden: [16], weight_bits: 2, act_bits: 2}\n"
        "train: {epochs: 2}\n"
        "hw: {backend: both}\n"  # as the demo: RTL and HLS, FIFOs sized, synthesized
        "sim: {simulator: icarus, vectors: 10}\n"
        "synth: {part: xc7z020}\n"  # flat totals and the per-unit run
    )
    out = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(out)]) == 0
    # qfab run wrote the page itself; `qfab report DIR` renders it again, same figures
    written = (out / "report.html").read_text()
    page = write_run_report(out)
    html = page.read_text()
    assert_self_contained(html)
    expected = set(figures(html))
    assert set(figures(written)) == expected
    assert {"fig-accuracy-bits", "fig-layer-cycles", "fig-layer-resources"} <= expected
    report = json.loads((out / "report.json").read_text())
    assert f"{report['resources']['LUT']:,}" in section(html, "resources")
    # levels 1, 2, 3 and QONNX held
    eq = section(html, "equalities")
    assert eq.count('class="row-pass"') == 4 and 'class="row-fail"' not in eq

    shot = tmp_path / "report.png"
    done = headless(browser, tmp_path / "profile", f"--screenshot={shot}", page.as_uri())
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as img:
        pixels = np.asarray(img.convert("RGB"))
    assert pixels.shape[:2] == (4000, 1280)
    colours = np.unique(pixels.reshape(-1, 3), axis=0)
    assert len(colours) > 50, f"screenshot nearly blank: {len(colours)} colours"
    ink = np.any(pixels < 200, axis=2).mean()  # dark pixels: text, axes, bars
    assert ink > 0.01, f"only {ink:.2%} of the screenshot is drawn"

    sizes = rendered_figures(browser, page, tmp_path)
    assert set(sizes) == expected
    for name, s in sizes.items():
        assert s["w"] > 100 and s["h"] > 100, (name, s)
        assert s["svg_w"] > 100 and s["svg_h"] > 100, (name, s)
        assert s["paths"] > 10, (name, s)  # bars, axes and glyphs were drawn

    # the real run beside a synthetic one: the comparison renders too
    other = write_run(
        tmp_path / "other", copy.deepcopy(json.loads((out / "report.json").read_text()))
    )
    shutil.copy(out / "model.qfab.npz", other / "model.qfab.npz")
    cmp_page = write_comparison_report([out, other], tmp_path / "compare.html")
    sizes = rendered_figures(browser, cmp_page, tmp_path)
    assert {"fig-accuracy-lut", "fig-accuracy-bytes", "fig-accuracy-bits"} == set(sizes)
    assert all(s["svg_w"] > 100 and s["svg_h"] > 100 for s in sizes.values()), sizes
