"""The HLS generator without a compiler: refusal, folder, pragmas, Vitis script, manifest.

What g++ cannot check is checked here from the generated text: every unit is one
pipelined function at II=1 whose loop runs the cycles the folding asks for, the top is a
DATAFLOW region with AXI-Stream ports, a FIFO node becomes its stream's depth, the Vitis
script synthesizes what the caller asked for, and the manifest is the Verilog backend's
(so one driver and one bench serve both backends).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from hw_gen.hls.emit import generate_hls
from hw_gen.passes import lower
from hw_gen.verilog.emit import generate_verilog
from qfab.errors import HardwareError
from qfab.ir import Graph
from tests.hw_gen.designs import DESIGNS
from tests.hw_gen.sparse_designs import engine, sparse_mlp

#: ops that are no C++ function (the input and output are the top's ports, a FIFO is a
#: stream's depth)
NOT_A_FUNCTION = ("InputQuant", "OutputDequant", "FIFO")
#: ops whose single pipelined loop is the whole unit: its trip count is the node's cycles
FOLDED = ("MVAU", "XnorMVAU", "VVAU", "Thresholding", "AddStreams", "ConcatStreams", "Fork", "DWC")
#: a counted loop pipelined at its first line: its trip count
PIPELINED_LOOP = r"for \(int i = 0; i < (\d+); i\+\+\) \{\n#pragma HLS PIPELINE II=1"


def lowered(name: str) -> Graph:
    g, settings = DESIGNS[name]()
    return lower(g, **settings)


def functions(cpp: str) -> dict[str, str]:
    """Each ``static void NAME(...) { ... }`` of a generated source, by name (its body
    runs to the first line that is a lone closing brace)."""
    found = re.findall(r"^static void (\w+)\((.*?)^\}$", cpp, flags=re.M | re.S)
    return dict(found)


def top_function(cpp: str, top: str = "qfab_top") -> str:
    """The body of the (non-static) top function."""
    match = re.search(rf"^void {top}\((.*?)^\}}$", cpp, flags=re.M | re.S)
    assert match, f"no top function {top} in the generated source"
    return match.group(1)


def calls(top_body: str) -> dict[str, list[str]]:
    """The top's calls: function name -> its stream arguments."""
    return {
        name: [a.strip() for a in args.split(",")]
        for name, args in re.findall(r"^    (\w+)\(([^()]*)\);$", top_body, flags=re.M)
    }


def test_a_node_kind_without_a_kernel_is_refused_and_nothing_is_written(tmp_path):
    """The sparse engine has no HLS kernel: the error names the node and its op, before
    any file (the output folder never appears, no temp folder is left beside it)."""
    hw = lower(sparse_mlp(24, [16], 5, 0.5, seed=1), sparse=engine(4, 2))
    sparse = [n for n in hw.nodes if n.op == "SparseMVAU"]
    assert sparse, "the sparse design no longer lowers to a SparseMVAU: pick another"
    out = tmp_path / "hls"
    with pytest.raises(HardwareError, match=rf"node '{sparse[0].name}' \(SparseMVAU\)") as err:
        generate_hls(hw, out)
    assert "hw.backend: rtl" in str(err.value)  # it says what to do instead
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_the_folder_holds_the_sources_and_a_manifest_that_says_hls(tmp_path):
    info = generate_hls(lowered("mlp_dwc"), tmp_path / "hls")
    folder = tmp_path / "hls"
    on_disk = json.loads((folder / "design.json").read_text())
    assert on_disk == info and info["backend"] == "hls"
    assert info["sources"] == ["qfab_hls.h", "qfab_top.h", "qfab_top.cpp"]
    assert info["testbench"] == ["csim_main.cpp"] and info["vitis"]["script"] == "run_hls.tcl"
    want = {*info["sources"], *info["testbench"], "run_hls.tcl", "design.json"}
    assert {p.name for p in folder.iterdir()} == want
    assert all((folder / name).stat().st_size > 0 for name in want)
    assert not list(tmp_path.glob(".hls.*"))  # no temp folder left behind


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_every_unit_is_one_pipelined_function_in_a_dataflow_top(tmp_path, name):
    """One function per node, called once from the top, pipelined at II=1; a folded
    unit's loop runs exactly the node's cycles per frame (the folding's II); the top is a
    DATAFLOW region with AXI-Stream ports and no block-level handshake."""
    hw = lowered(name)
    generate_hls(hw, tmp_path / "hls")
    cpp = (tmp_path / "hls" / "qfab_top.cpp").read_text()
    funcs = functions(cpp)
    top = top_function(cpp)
    called = calls(top)
    units = [n for n in hw.nodes if n.op not in NOT_A_FUNCTION]
    assert set(funcs) == {n.name for n in units} | {"qfab_top_input", "qfab_top_output"}
    assert set(called) == set(funcs)
    for node in units:
        body = funcs[node.name]
        assert "#pragma HLS PIPELINE II=1" in body, f"{node.name} ({node.op}) is not pipelined"
        if node.op in FOLDED:
            loops = re.findall(PIPELINED_LOOP, body)
            assert [int(v) for v in loops] == [int(node.attrs["cycles"])], (node.name, loops)
        if node.op in ("MVAU", "XnorMVAU", "VVAU", "Thresholding"):  # all of a PE's thresholds
            assert f"ARRAY_PARTITION variable={node.name}_t complete dim=2" in body
            assert f"ARRAY_PARTITION variable={node.name}_t complete dim=3" in body
        if node.op in ("MVAU", "XnorMVAU", "VVAU"):  # every limb of a weight word in one read
            assert f"ARRAY_PARTITION variable={node.name}_w complete dim=2" in body
    assert "#pragma HLS PIPELINE II=1" in funcs["qfab_top_output"]
    assert "#pragma HLS PIPELINE II=1" in funcs["qfab_top_input"]
    assert "#pragma HLS DATAFLOW" in top
    for port in ("s_axis", "m_axis"):
        assert f"#pragma HLS INTERFACE mode=axis port={port}" in top
    assert "#pragma HLS INTERFACE mode=ap_ctrl_none port=return" in top
    header = (tmp_path / "hls" / "qfab_top.h").read_text()
    port = re.search(r"void qfab_top\(hls::stream<ap_uint<(\d+)> >& s_axis, ", header)
    manifest = json.loads((tmp_path / "hls" / "design.json").read_text())
    assert port and int(port.group(1)) == manifest["input"]["tdata_bits"]  # whole bytes


def test_a_fifo_node_is_the_depth_of_the_stream_its_reader_reads(tmp_path):
    """branchy's FIFOs (before the add and the concat): the stream the FIFO's reader gets
    in the FIFO's slot is declared with ``STREAM depth`` = the FIFO's ``depth``; streams
    without a FIFO keep the default."""
    hw = lowered("branchy")
    fifos = [n for n in hw.nodes if n.op == "FIFO"]
    assert len(fifos) >= 3 and len({int(f.attrs["depth"]) for f in fifos}) >= 2
    generate_hls(hw, tmp_path / "hls")
    top = top_function((tmp_path / "hls" / "qfab_top.cpp").read_text())
    depth = {s: int(d) for s, d in re.findall(r"STREAM variable=(\w+) depth=(\d+)", top)}
    called = calls(top)
    fifo_streams = set()
    for fifo in fifos:
        reader = next(n for n in hw.nodes if fifo.name in n.inputs)
        stream = called[reader.name][reader.inputs.index(fifo.name)]
        assert depth[stream] == int(fifo.attrs["depth"]), (fifo.name, stream)
        fifo_streams.add(stream)
    assert {d for s, d in depth.items() if s not in fifo_streams} == {2}


def test_the_vitis_script_names_top_part_clock_and_every_step(tmp_path):
    generate_hls(lowered("mlp_dwc"), tmp_path / "hls", clock_mhz=250.0, part="xcu50-fsvh2104-2-e")
    tcl = (tmp_path / "hls" / "run_hls.tcl").read_text()
    lines = [line.split() for line in tcl.splitlines() if line and not line.startswith("#")]
    commands = [words[0] for words in lines]
    assert ["set_top", "qfab_top"] in lines
    assert ["set_part", "xcu50-fsvh2104-2-e"] in lines
    assert ["create_clock", "-period", "4.0", "-name", "default"] in lines
    steps = ["csim_design", "csynth_design", "cosim_design", "export_design"]
    assert [c for c in commands if c in steps] == steps  # each once, in this order
    assert commands[-1] == "exit"
    design = [words[1] for words in lines if words[0] == "add_files" and words[1] != "-tb"]
    bench = [words[2] for words in lines if words[:2] == ["add_files", "-tb"]]
    assert design == ["qfab_top.cpp"] and "csim_main.cpp" in bench


def test_a_renamed_top_is_renamed_everywhere(tmp_path):
    info = generate_hls(lowered("mlp_dwc"), tmp_path / "hls", top="digits_top")
    folder = tmp_path / "hls"
    assert info["top"] == "digits_top"
    assert info["sources"] == ["qfab_hls.h", "digits_top.h", "digits_top.cpp"]
    top_function((folder / "digits_top.cpp").read_text(), "digits_top")
    assert ["set_top", "digits_top"] in [
        line.split() for line in (folder / "run_hls.tcl").read_text().splitlines()
    ]


def without_backend_fields(m: dict) -> dict:
    """A manifest minus what only one backend has (sources, backend, testbench, Vitis
    script, the Verilog units' memory files)."""
    m = copy.deepcopy(m)
    for key in ("sources", "backend", "testbench", "vitis"):
        m.pop(key, None)
    for node in m["nodes"]:
        node.pop("memories", None)
    return m


@pytest.mark.parametrize("name", ["branchy", "bipolar_conv", "mlp_signed"])
def test_the_manifest_is_the_verilog_backends(tmp_path, name):
    """Ports, element encodings, beats, taps, FIFOs, perf and nodes equal the Verilog
    manifest of the same graph: the one driver and bench serve both backends."""
    hw = lowered(name)
    hls = generate_hls(hw, tmp_path / "hls")
    rtl = generate_verilog(hw, tmp_path / "rtl")
    assert hls["taps"] and hls["input"]["beats_per_frame"] > 0
    assert without_backend_fields(hls) == without_backend_fields(rtl)
    assert json.loads(Path(tmp_path / "hls" / "design.json").read_text())["taps"] == rtl["taps"]
