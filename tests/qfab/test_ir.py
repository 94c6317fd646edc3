"""IR file format: round trip, validation errors that name the problem, atomic writes."""

from __future__ import annotations

import numpy as np
import pytest

from qfab.errors import IRError
from qfab.ir import Graph, weight_range
from qfab.random_graph import random_mlp_graph


def test_round_trip_keeps_every_tensor_and_attr(tmp_path):
    g = random_mlp_graph(24, [24, 13], 10, weight_bits=3, act_bits=2, seed=1)
    g.meta["note"] = "hello"
    path = g.save(tmp_path / "m.qfab.npz")
    h = Graph.load(path)
    assert [n.name for n in h.nodes] == [n.name for n in g.nodes]
    assert h.meta["note"] == "hello"
    for a, b in zip(g.nodes, h.nodes, strict=True):
        assert a.op == b.op and a.inputs == b.inputs and a.attrs == b.attrs
        assert a.tensors.keys() == b.tensors.keys()
        for k in a.tensors:
            np.testing.assert_array_equal(a.tensors[k], b.tensors[k])
    assert not list(tmp_path.glob("*.tmp")), "temp file left behind"


def test_weight_range_is_symmetric_and_bipolar_for_one_bit():
    assert weight_range(1) == (-1, 1)
    assert weight_range(2) == (-1, 1)
    assert weight_range(8) == (-127, 127)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda g: setattr(g.nodes[1], "op", "Conv3d"), "unknown op"),
        (
            lambda g: g.nodes[2].tensors.__setitem__(
                "thresholds", g.nodes[2].tensors["thresholds"][:, ::-1]
            ),
            "sorted",
        ),
        (lambda g: g.nodes[1].tensors["weight"].__setitem__((0, 0), 99), "outside"),
        (lambda g: g.nodes[1].attrs.pop("weight_bits"), "missing attrs"),
        (lambda g: setattr(g.nodes[3], "inputs", ["nowhere"]), "input .nowhere. names no node"),
        (lambda g: g.nodes[3].tensors.__setitem__("weight", np.zeros((4, 5), np.int64)), "inputs"),
    ],
)
def test_validation_names_node_and_problem(mutate, message):
    g = random_mlp_graph(16, [8], 4, weight_bits=4, act_bits=2)
    mutate(g)
    with pytest.raises(IRError, match=message):
        g.validate()


def test_load_rejects_missing_and_foreign_files(tmp_path):
    with pytest.raises(IRError, match="not found"):
        Graph.load(tmp_path / "absent.qfab.npz")
    bad = tmp_path / "bad.qfab.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(IRError, match="not a qfab IR file"):
        Graph.load(bad)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(IRError, match="bad.qfab.npz|other.npz"):
        Graph.load(other)


def test_shared_weights_codebook_round_trip_and_checks(tmp_path):
    from qfab.golden import dense_weight, run_golden_int

    g = random_mlp_graph(16, [8], 4, weight_bits=4, act_bits=2)
    fc0 = g.node("fc0")
    codebook = np.array([-5, 2, 6])
    index = np.random.default_rng(0).integers(-1, 3, size=fc0.tensors["weight"].shape)
    fc0.tensors["weight"] = np.where(index >= 0, codebook[np.maximum(index, 0)], 0)
    fc0.tensors.update(codebook=codebook, weight_index=index)
    h = Graph.load(g.save(tmp_path / "s.qfab.npz"))
    np.testing.assert_array_equal(dense_weight(h.node("fc0")), fc0.tensors["weight"])
    # golden computes from the codebook: changing a centroid changes the accumulators
    x = np.random.default_rng(1).integers(0, 256, size=(5, 16))
    before = run_golden_int(g, x).outputs["fc0"]
    g.node("fc0").tensors["codebook"] = np.array([-5, 2, 7])
    with pytest.raises(IRError, match="differs from codebook"):
        g.validate()
    assert not np.array_equal(run_golden_int(g, x).outputs["fc0"], before)
    del g.node("fc0").tensors["weight_index"]
    with pytest.raises(IRError, match="come together"):
        g.validate()
