"""Level 3: the HLS design's C simulation (g++ + ap_types) == golden, integer for integer.

Every design of the hardware tests (every node kind the HLS backend maps, every input
encoding, falling channels on every unit that fuses thresholds) is generated from its
lowered graph, compiled and run on the suite's input vectors (random ones, the ends of
the input range, and the extreme vectors that drive accumulators to their derived
bounds); the output and every tapped layer must equal golden on every vector.

Mutation tests show each check can fail: a wrong threshold in the graph is reported at
its layer and channel, a wrong comparison in a generated kernel is a mismatch, and the
harness refuses a misplaced TLAST, a dropped beat and a read of an empty stream.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from hw_gen.hls.emit import generate_hls
from hw_gen.passes import lower
from qfab.errors import MismatchError
from qfab.golden import run_golden_int
from qfab.ir import Graph
from sim.compare import compare_rtl_to_golden
from sim.csim import run_csim
from sim.runner import SimResult
from tests.hw_gen.designs import DESIGNS
from tests.hw_gen.falling_designs import FALLING_DESIGNS
from tests.sim.conftest import input_vectors

pytestmark = pytest.mark.slow

ALL_DESIGNS = {**DESIGNS, **FALLING_DESIGNS}
#: random vectors per design (the extreme vectors come on top)
VECTORS = 24
#: the smallest design: every mutation is seeded there (one compile each)
SMALLEST = "mlp_dwc"


def csim(
    graph: Graph,
    hw: Graph,
    x: np.ndarray,
    tmp: Path,
    mutate: Callable[[Path], None] | None = None,
) -> tuple[dict, dict, SimResult]:
    """Generate the HLS design of ``hw`` (then ``mutate`` its folder), compile, run on
    ``x``, compare with golden of ``graph``: (manifest, comparison, SimResult)."""
    manifest = generate_hls(hw, tmp / "hls")
    if mutate is not None:
        mutate(tmp / "hls")
    result, _ = run_csim(tmp / "hls", x, build_dir=tmp / "build")
    tapped = [t["model_node"] for t in manifest["taps"]]
    eq = compare_rtl_to_golden(graph, x, result, manifest["output"]["model_node"], tapped)
    return manifest, eq, result


def smallest(
    tmp: Path, mutate: Callable[[Path], None] | None = None
) -> tuple[dict, dict, SimResult]:
    """:func:`csim` of the smallest design (mlp_dwc) on its own vectors."""
    g, settings = DESIGNS[SMALLEST]()
    x = input_vectors(g, VECTORS, data_seed=3)
    return csim(g, lower(g, **settings), x, tmp, mutate)


@pytest.mark.parametrize("name", sorted(ALL_DESIGNS))
def test_csim_equals_golden_on_every_vector_and_tap(tmp_path, name):
    g, settings = ALL_DESIGNS[name]()
    x = input_vectors(g, VECTORS, data_seed=1)
    manifest, eq, result = csim(g, lower(g, **settings), x, tmp_path)
    assert eq["vectors"] == len(x) > VECTORS  # the extreme vectors came too
    assert eq["mismatches"] == 0, f"{name}: first mismatch {eq['first_mismatch']}"
    assert set(result.taps) == {t["model_node"] for t in manifest["taps"]}
    assert manifest["output"]["model_node"] in result.taps  # the output is tapped as well
    assert result.outputs.shape == (len(x), manifest["output"]["features"])


def function_span(text: str, name: str) -> tuple[int, int]:
    """Where function ``name`` of a generated source starts and ends (its body runs to
    the first line that is a lone closing brace)."""
    match = re.search(rf"^(static )?void {name}\(.*?^\}}$", text, flags=re.M | re.S)
    assert match, f"no function {name} in the generated source: update the mutation"
    return match.span()


def first_loop_bound(path: Path, function: str) -> tuple[str, int]:
    """The first ``for (int i = 0; i < N; i++)`` of ``function``: (its text, N)."""
    text = path.read_text()
    start, end = function_span(text, function)
    loop = re.search(r"for \(int i = 0; i < (\d+); i\+\+\)", text[start:end])
    assert loop, f"{function} has no counted loop: update the mutation"
    return loop.group(0), int(loop.group(1))


def edit(path: Path, old: str, new: str, *, within: str) -> None:
    """Replace ``old`` by ``new`` exactly once inside the body of function ``within``:
    a mutation whose site moved fails loudly, never silently."""
    text = path.read_text()
    start, end = function_span(text, within)
    body = text[start:end]
    assert body.count(old) == 1, f"{old!r} occurs {body.count(old)} times: update the mutation"
    path.write_text(text[:start] + body.replace(old, new) + text[end:])


def test_a_perturbed_threshold_is_reported_at_its_layer_and_channel(tmp_path):
    """(a) The lowered graph given to the generator (not the model graph) gets one
    threshold of fc0 (model node mt0) lowered to an accumulator value that golden's
    vector did not reach: the comparison names mt0 and that channel."""
    g, settings = DESIGNS[SMALLEST]()
    x = input_vectors(g, VECTORS, data_seed=3)
    hw = lower(g, **settings)
    node = hw.node("fc0")
    assert node.attrs["model_node"] == "mt0" and node.inputs == ["input"]
    acc = x @ node.tensors["weight"].T  # fc0 reads the input integers directly
    level = run_golden_int(g, x).outputs["mt0"] - int(node.attrs["offset"])
    vector, channel = np.argwhere(level == 0)[0]  # a channel below its first threshold
    th = node.tensors["thresholds"]
    assert acc[vector, channel] < th[channel, 0]
    th[channel, 0] = acc[vector, channel]  # now reached: mt0 says 1 where golden says 0
    _, eq, _ = csim(g, hw, x, tmp_path)
    assert eq["mismatches"] > 0
    first = eq["first_mismatch"]
    assert first["layer"] == "mt0" and first["channel"] == channel, first
    assert first["rtl"] > first["golden"]


def test_a_wrong_comparison_in_a_generated_kernel_is_a_mismatch(tmp_path):
    """(b) The generated MVAU kernel of fc1 compares ``acc > T`` instead of ``acc >= T``:
    the vectors whose accumulator lands on a threshold differ, first at mt1."""

    def strict(folder: Path) -> None:
        edit(folder / "qfab_top.cpp", "(acc[pe] >= th)", "(acc[pe] > th)", within="fc1")

    _, eq, _ = smallest(tmp_path, strict)
    assert eq["mismatches"] > 0
    assert eq["first_mismatch"]["layer"] == "mt1", eq["first_mismatch"]


def test_the_harness_refuses_tlast_on_the_wrong_beat(tmp_path):
    """(c) The output stage sets TLAST on the frame's first beat instead of its last."""

    def early_tlast(folder: Path) -> None:
        top = folder / "qfab_top.cpp"
        last = re.search(r"beat\.last = \(i == (\d+)\)", top.read_text())
        assert last and int(last.group(1)) > 0, "the output stage moved: update the mutation"
        edit(top, last.group(0), "beat.last = (i == 0)", within="qfab_top_output")

    with pytest.raises(MismatchError, match="TLAST is not on the frame's last beat"):
        smallest(tmp_path, early_tlast)


def test_the_harness_refuses_a_dropped_output_beat(tmp_path):
    """(c) The output stage forwards one beat fewer than a frame has: the beat left in
    the last unit's stream is reported (before the harness counts too few beats)."""

    def drop_a_beat(folder: Path) -> None:
        top = folder / "qfab_top.cpp"
        loop, beats = first_loop_bound(top, "qfab_top_output")
        edit(top, loop, f"for (int i = 0; i < {beats - 1}; i++)", within="qfab_top_output")

    with pytest.raises(MismatchError, match="stream s_fc2 holds beats nobody read in this frame"):
        smallest(tmp_path, drop_a_beat)


def test_a_read_of_an_empty_stream_is_a_failure(tmp_path):
    """(d) The MVAU fc0 loops once more than its folding's iterations: the extra one
    reads the input stage's stream (its SF > 1, so it writes nothing) while the frame's beats are
    all consumed; hls_stream.h only prints a warning, run_csim fails on it."""

    def read_once_more(folder: Path) -> None:
        top = folder / "qfab_top.cpp"
        loop, iterations = first_loop_bound(top, "fc0")
        edit(top, loop, f"for (int i = 0; i < {iterations + 1}; i++)", within="fc0")

    with pytest.raises(MismatchError, match=r"Hls::stream 's_input' is read while empty"):
        smallest(tmp_path, read_once_more)
