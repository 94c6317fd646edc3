"""IR round trips under hypothesis: any valid graph, saved and loaded, is the same graph.

Random graphs (MLPs of random sizes and widths, pruned MLPs on the sparse engine, and
image graphs with every model op: plain and depthwise convolutions, pools, residual adds
with shifts, concatenations, shuffles, flatten, dense; signed, bipolar and falling
activations) are saved with their lowered hardware graph and loaded again. The loaded
graph must equal the saved one node for node, attr for attr (types included: a tuple
that came back as a list would be a different attr), tensor for tensor (dtype, shape,
every value), meta included, at both levels; golden must give identical integers on
every node and identical logits; and saving the loaded graph must give the same header
again (the format is a fixed point).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hw_gen.passes import lower
from qfab.golden import run_golden, run_golden_int
from qfab.ir import Graph, input_range
from qfab.random_graph import GraphBuilder, random_mlp_graph

ROUND_TRIP = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@st.composite
def mlp_graphs(draw: st.DrawFn, min_bits: int = 1) -> Graph:
    act_bits = draw(st.integers(min_bits, 8))
    return random_mlp_graph(
        draw(st.integers(1, 40)),
        draw(st.lists(st.integers(1, 24), max_size=3)),
        draw(st.integers(1, 10)),
        weight_bits=draw(st.integers(min_bits, 8)),
        act_bits=act_bits,
        input_bits=draw(st.integers(1, 8)),
        seed=draw(st.integers(0, 2**16)),
        signed_acts=act_bits > 1 and draw(st.booleans()),
        signed_input=draw(st.booleans()),
        falling=draw(st.sampled_from([0.0, 0.5])),
    )


@st.composite
def pruned_mlps(draw: st.DrawFn) -> tuple[Graph, dict[str, Any]]:
    """An MLP with most weights zero, and settings that put every layer on the EIE-style
    sparse engine: its hardware nodes carry the per-PE CSC layout as tensors. (Activations
    and weights are at least 2 bits: bipolar values have no zeros.)"""
    graph = draw(mlp_graphs(min_bits=2))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    keep = draw(st.sampled_from([0.1, 0.3, 0.6]))
    for n in graph.nodes:
        if n.op == "Dense":
            w = n.tensors["weight"]
            w[rng.random(w.shape) >= keep] = 0
    engine = {
        "pes": draw(st.integers(1, 4)),
        "queue_depth": draw(st.integers(1, 8)),
        "index_bits": draw(st.integers(1, 5)),
        "code_bits": 8,
        "simd": None,
    }
    return graph, {"default": engine, "layers": {}}


@st.composite
def image_graphs(draw: st.DrawFn) -> Graph:
    """conv -> act, then up to three blocks (pool, residual add, concat, shuffle,
    depthwise conv), then flatten -> dense -> output."""
    size, c_in = draw(st.integers(4, 7)), draw(st.integers(1, 3))
    b = GraphBuilder(
        (size, size, c_in),
        input_bits=draw(st.integers(1, 8)),
        signed_input=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )

    def act(src: str | None = None) -> str:
        bits = draw(st.integers(1, 4))
        signed = bits > 1 and draw(st.booleans())
        return b.thresholds(bits, src=src, signed=signed, falling=draw(st.sampled_from([0, 0.5])))

    channels = 2 * draw(st.integers(1, 3))
    b.conv(channels, weight_bits=draw(st.integers(1, 8)))
    trunk = act()
    for block in draw(
        st.lists(st.sampled_from(["pool", "add", "cat", "shuffle", "dw"]), max_size=3)
    ):
        shape = b._shape(trunk)
        if block == "pool" and shape[0] >= 2:
            trunk = b.pool(2, src=trunk)
        elif block == "add":
            b.conv(shape[-1], (1, 1), src=trunk, padding=(0, 0), weight_bits=2)
            branch = act()
            shift = draw(st.sampled_from([(0, 0), (1, 0), (0, 2)]))
            trunk = b.add(trunk, branch, shift)
        elif block == "cat":
            b.conv(draw(st.integers(1, 3)), (1, 1), src=trunk, padding=(0, 0))
            trunk = b.concat(trunk, act())
        elif block == "shuffle" and shape[-1] % 2 == 0:
            trunk = b.shuffle(2, src=trunk)
        elif block == "dw":
            b.conv(shape[-1], (3, 3), src=trunk, groups=shape[-1], weight_bits=3)
            trunk = act()
    b.dense(draw(st.integers(1, 6)), src=trunk, bias=draw(st.booleans()))
    return b.output()


def with_hardware(graph: Graph, cycles: int, sparse: dict[str, Any] | None = None) -> Graph:
    """The graph with its lowered hardware graph attached, as ``qfab run`` saves it."""
    graph.lowered = lower(graph, target_cycles=cycles, sparse=sparse)
    return graph


def assert_same_value(a: Any, b: Any, where: str) -> None:
    """Equal values of equal JSON types, recursively (1 == 1.0 == True would hide a
    changed type; NumPy scalars count as the Python type JSON writes them as)."""
    if isinstance(a, np.generic):
        a = a.item()
    assert type(a) is type(b), f"{where}: {type(a).__name__} became {type(b).__name__}"
    if isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} became {list(b)}"
        for k in a:
            assert_same_value(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), f"{where}: {len(a)} entries became {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_value(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} became {b!r}"


def assert_same_graph(saved: Graph, loaded: Graph, level: str) -> None:
    assert [n.name for n in loaded.nodes] == [n.name for n in saved.nodes], level
    assert_same_value(saved.meta, loaded.meta, f"{level} meta")
    for a, b in zip(saved.nodes, loaded.nodes, strict=True):
        where = f"{level} node '{a.name}'"
        assert (a.op, a.inputs) == (b.op, b.inputs), where
        assert_same_value(a.attrs, b.attrs, f"{where} attrs")
        assert sorted(a.tensors) == sorted(b.tensors), f"{where}: tensor names"  # file: sorted
        for k, t in a.tensors.items():
            u = b.tensors[k]
            assert (t.dtype, t.shape) == (u.dtype, u.shape), f"{where} tensor '{k}'"
            np.testing.assert_array_equal(t, u, err_msg=f"{where} tensor '{k}'")


def assert_same_golden(saved: Graph, loaded: Graph, seed: int) -> None:
    """Identical integers at every node (both levels) and identical float logits."""
    first = saved.nodes[0].attrs
    lo, hi = input_range(int(first["bits"]), bool(first["signed"]))
    rng = np.random.default_rng(seed)
    x_int = rng.integers(lo, hi + 1, size=(16, int(first["features"])))
    x_int[0], x_int[1] = lo, hi
    for level_saved, level_loaded in ((saved, loaded), (saved.lowered, loaded.lowered)):
        want = run_golden_int(level_saved, x_int).outputs
        got = run_golden_int(level_loaded, x_int).outputs
        assert want.keys() == got.keys()
        for name in want:
            np.testing.assert_array_equal(want[name], got[name], err_msg=f"node '{name}'")
    x = rng.random((8, int(first["features"]))).astype(np.float32)
    a, b = run_golden(saved, x).logits, run_golden(loaded, x).logits
    assert a.dtype == b.dtype and np.array_equal(a, b)


def header_of(path: Path) -> dict[str, Any]:
    with np.load(path) as data:
        return json.loads(bytes(data["header.json"]).decode())


def round_trip(tmp_path: Path, graph: Graph, seed: int) -> None:
    """Save, load, compare, save again; each example in a folder of its own (a failed
    example leaves its files, and must not make the shrinking examples fail on them)."""
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    path = graph.save(folder / f"g{seed}.qfab.npz")
    loaded = Graph.load(path)
    assert_same_graph(graph, loaded, "model graph")
    assert loaded.lowered is not None
    assert_same_graph(graph.lowered, loaded.lowered, "hardware graph")
    assert_same_golden(graph, loaded, seed)
    again = loaded.save(folder / f"again{seed}.qfab.npz")
    assert header_of(again) == header_of(path)
    assert sorted(p.name for p in folder.iterdir()) == sorted([path.name, again.name])
    shutil.rmtree(folder)


@ROUND_TRIP
@given(graph=mlp_graphs(), cycles=st.integers(1, 64), seed=st.integers(0, 1000))
def test_random_mlps_survive_the_file_with_their_hardware_graph(tmp_path, graph, cycles, seed):
    round_trip(tmp_path, with_hardware(graph, cycles), seed)


@ROUND_TRIP
@given(graph=image_graphs(), cycles=st.integers(1, 400), seed=st.integers(0, 1000))
def test_random_image_graphs_survive_the_file_with_their_hardware_graph(
    tmp_path, graph, cycles, seed
):
    round_trip(tmp_path, with_hardware(graph, cycles), seed)


@ROUND_TRIP
@given(pruned=pruned_mlps(), cycles=st.integers(1, 64), seed=st.integers(0, 1000))
def test_pruned_mlps_on_the_sparse_engine_survive_the_file(tmp_path, pruned, cycles, seed):
    graph, sparse = pruned
    graph = with_hardware(graph, cycles, sparse)
    assert any(n.op == "SparseMVAU" for n in graph.lowered.nodes)
    round_trip(tmp_path, graph, seed)
