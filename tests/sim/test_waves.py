"""The FST of the first mismatching vector: a real waveform that shows the wrong value.

A bug is seeded in the generated design (one weight of the output layer fc1 changed in
the graph the RTL is generated from, golden keeps the right one), the run's vectors are
simulated on Icarus and compared with golden, and the first mismatching vector is
simulated again alone with waveform dumping. The FST is checked by its header (read with
``struct`` by :func:`sim.waves.fst_header`), then converted with gtkwave's ``fst2vcd``
(Debian ``gtkwave``; that test is skipped without it) and the output stream's beats read
back from the waveform must carry exactly the wrong output the simulation returned.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from bisect import bisect_left

import numpy as np
import pytest

from hw_gen.passes import lower
from hw_gen.verilog.emit import generate_verilog
from qfab.elements import port_element, unpack_beats
from qfab.errors import ToolError
from qfab.golden import run_golden_int
from qfab.random_graph import random_mlp_graph
from sim.compare import compare_rtl_to_golden
from sim.runner import run_cocotb
from sim.waves import dump_first_mismatch, fst_header

pytestmark = pytest.mark.slow  # three Icarus runs


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """A design with one wrong fc1 weight, its vectors, the full run and its comparison."""
    tmp = tmp_path_factory.mktemp("waves")
    good = random_mlp_graph(12, [8], 5, weight_bits=3, act_bits=2, seed=1)
    pool = np.random.default_rng(0).integers(0, 256, size=(200, 12))
    # the wrong weight reads an mt0 channel that is 0 on some vectors (they hide the bug)
    # and not on all: the one at 0 most often among those
    zeros = (run_golden_int(good, pool).outputs["mt0"] == 0).sum(axis=0)
    j = int(np.argmax(np.where(zeros < len(pool), zeros, -1)))
    bad = copy.deepcopy(good)
    w = bad.node("fc1").tensors["weight"]
    w[3, j] = 1 if w[3, j] != 1 else -1
    manifest = generate_verilog(lower(bad), tmp / "rtl")
    differs = np.any(
        run_golden_int(good, pool).outputs["fc1"] != run_golden_int(bad, pool).outputs["fc1"],
        axis=1,
    )  # fc1 is the only node the bug reaches
    x = np.concatenate([pool[~differs][:4], pool[differs][:8]])
    run = run_cocotb(tmp / "rtl", x, simulator="icarus", build_dir=tmp / "build")
    tapped = [t["model_node"] for t in manifest["taps"]]
    eq = compare_rtl_to_golden(good, x, run, manifest["output"]["model_node"], tapped)
    return tmp, good, manifest, x, run, eq


@pytest.fixture(scope="module")
def dumped(seeded):
    tmp, good, _, x, _, eq = seeded
    v = eq["first_mismatch"]["vector"]
    dump = dump_first_mismatch(
        tmp / "rtl",
        x[v],
        tmp / "waves" / "first_mismatch.fst",
        simulator="icarus",
        build_dir=tmp / "wave_build",
        graph=good,
        preceding=x[:v],
    )
    return dump


def test_the_seeded_bug_is_found_after_matching_vectors(seeded):
    _, good, _, x, run, eq = seeded
    first = eq["first_mismatch"]
    assert first is not None and first["layer"] == "fc1" and first["channel"] == 3
    assert first["vector"] == 4, "the first 4 vectors hide the bug (the fallback test uses them)"
    want = run_golden_int(good, x).outputs["fc1"]
    assert np.array_equal(want[:4], run.outputs[:4])


def test_the_lone_vector_reproduces_the_mismatch_in_a_real_fst(seeded, dumped):
    _, _, _, _, _, eq = seeded
    assert dumped.path.name == "first_mismatch.fst" and dumped.path.is_file()
    assert dumped.frames == 1 and dumped.reproduced is True
    same = {k: eq["first_mismatch"][k] for k in ("layer", "channel", "golden", "rtl")}
    assert {k: dumped.first_mismatch[k] for k in same} == same
    assert dumped.first_mismatch["vector"] == 0  # the only frame of the re-run
    head = fst_header(dumped.path)
    assert head["writer"].startswith("Icarus")
    assert head["end_time"] > head["start_time"] and head["timescale"] == "1e-12 s"
    assert head["signals"] > 20 and head["scopes"] > 1 and head["value_change_sections"] >= 1
    report = dumped.as_report(dumped.path.parents[1])
    assert report["path"] == "waves/first_mismatch.fst" and report["reproduced"] is True


@pytest.mark.skipif(shutil.which("fst2vcd") is None, reason="gtkwave's fst2vcd not installed")
def test_the_waveform_carries_the_wrong_output(seeded, dumped, tmp_path):
    """The output beats sampled from the FST (via fst2vcd) are the simulation's wrong
    output for that vector: the value golden disagrees with is visible on m_axis."""
    _, good, manifest, x, run, eq = seeded
    first = eq["first_mismatch"]
    vcd = tmp_path / "first_mismatch.vcd"
    subprocess.run(["fst2vcd", "-f", str(dumped.path), "-o", str(vcd)], check=True)
    series = top_signals(vcd.read_text(), manifest["top"])
    clock = [t for t, v in series["ap_clk"] if v == 1]  # rising edges
    beats = [
        value_before(series["m_axis_tdata"], t)
        for t in clock
        if value_before(series["m_axis_tvalid"], t) and value_before(series["m_axis_tready"], t)
    ]
    out = manifest["output"]
    el = port_element(out)
    assert len(beats) == out["beats_per_frame"]
    seen = el.decode(unpack_beats(beats, out["elems_per_beat"], el.bits, 1, len(beats)))[0]
    assert np.array_equal(seen, run.outputs[first["vector"]])
    assert seen[first["channel"]] == first["rtl"] != first["golden"]
    want = run_golden_int(good, x[first["vector"] : first["vector"] + 1]).outputs["fc1"][0]
    assert want[first["channel"]] == first["golden"]


def test_a_lone_vector_that_matches_falls_back_to_the_run_prefix(seeded, tmp_path):
    """When the vector alone shows no mismatch (state from earlier frames would matter),
    the frames before it are simulated too and that waveform is kept."""
    tmp, good, _, x, _, eq = seeded
    v = eq["first_mismatch"]["vector"]
    dump = dump_first_mismatch(
        tmp / "rtl",
        x[0],  # matches golden on this design
        tmp_path / "first_mismatch.fst",
        simulator="icarus",
        build_dir=tmp_path / "build",
        graph=good,
        preceding=x[1 : v + 1],  # holds the real first mismatch
    )
    assert dump.frames == v + 1 and dump.reproduced is True
    assert dump.first_mismatch["vector"] == v - 1  # x[v] sits at index v - 1 of the prefix
    assert fst_header(dump.path)["end_time"] > 0


def test_a_file_that_is_not_fst_is_refused(tmp_path):
    junk = tmp_path / "x.fst"
    junk.write_bytes(b"$date\n today\n$end\n" + b"\0" * 400)
    with pytest.raises(ToolError, match="not an FST file"):
        fst_header(junk)
    junk.write_bytes(b"\0" * 20)
    with pytest.raises(ToolError, match="not an FST file"):
        fst_header(junk)


def top_signals(vcd: str, top: str) -> dict[str, list[tuple[int, int]]]:
    """(time, value) changes of the signals declared directly in scope ``top`` of a VCD
    (``x``/``z`` bits read as 0). Aliased identifiers are allowed, unlike
    pyDigitalWaveTools' parser, which refuses them."""
    names: dict[str, list[str]] = {}
    depth, inside = 0, False
    lines = iter(vcd.splitlines())
    for line in lines:
        words = line.split()
        if words[:1] == ["$scope"]:
            depth += 1
            inside = depth == 1 and words[2] == top
        elif words[:1] == ["$upscope"]:
            depth -= 1
            inside = depth == 1
        elif words[:1] == ["$var"] and inside and depth == 1:
            names.setdefault(words[3], []).append(words[4])
        elif words[:1] == ["$enddefinitions"]:
            break
    series: dict[str, list[tuple[int, int]]] = {n: [] for ns in names.values() for n in ns}
    now = 0
    for line in lines:
        if not line or line.startswith("$"):
            continue
        if line[0] == "#":
            now = int(line[1:])
            continue
        if line[0] in "bB":
            bits, ident = line[1:].split()
        else:
            bits, ident = line[0], line[1:]
        if ident in names:
            value = int(bits.lower().replace("x", "0").replace("z", "0"), 2)
            for name in names[ident]:
                series[name].append((now, value))
    return series


def value_before(changes: list[tuple[int, int]], t: int) -> int:
    """A signal's value just before time ``t`` (what a flip-flop samples at an edge)."""
    i = bisect_left(changes, (t, -1)) - 1
    return changes[i][1] if i >= 0 else 0
