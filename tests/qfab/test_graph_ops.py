"""Graph ops for compact networks: residual Add, channel Concat, ChannelShuffle."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qfab.errors import IRError
from qfab.golden import run_golden_int
from qfab.ir import Graph, Node, shuffle_order
from qfab.ranges import node_ranges


def branchy_graph(shift=(0, 1), groups=2, b_channels=4) -> Graph:
    rng = np.random.default_rng(0)

    def conv(name, src, cin, cout):
        return Node(
            name,
            "Conv2d",
            [src],
            {"weight_bits": 3, "stride": [1, 1], "padding": [1, 1], "groups": 1},
            {"weight": rng.integers(-3, 4, size=(cout, 3, 3, cin))},
        )

    def mt(name, src, c):
        t = np.sort(rng.integers(-40, 40, size=(c, 3)), axis=1)
        return Node(name, "MultiThreshold", [src], {"out_bits": 2, "offset": 0}, {"thresholds": t})

    nodes = [
        Node(
            "input",
            "InputQuant",
            [],
            {"bits": 4, "signed": False, "scale": 1 / 16, "features": 32, "shape": [4, 4, 2]},
        ),
        conv("ca", "input", 2, 4),
        mt("ma", "ca", 4),
        conv("cb", "ma", 4, b_channels),
        mt("mb", "cb", b_channels),
        Node("add", "Add", ["ma", "mb"], {"shift": list(shift)}),
        Node("cat", "Concat", ["add", "ma"]),
        Node("shuffle", "ChannelShuffle", ["cat"], {"groups": groups}),
        Node("flat", "Flatten", ["shuffle"]),
        Node(
            "fc",
            "Dense",
            ["flat"],
            {"weight_bits": 2},
            {"weight": rng.integers(-1, 2, size=(3, 128))},
        ),
        Node(
            "output",
            "OutputDequant",
            ["fc"],
            {},
            {"scale": np.ones(3, np.float32), "bias": np.zeros(3, np.float32)},
        ),
    ]
    return Graph(nodes).validate()


def test_ops_match_a_torch_reference(tmp_path):
    g = Graph.load(branchy_graph().save(tmp_path / "g.qfab.npz"))
    x = np.random.default_rng(1).integers(0, 16, size=(5, 32))
    out = run_golden_int(g, x).outputs
    a = torch.tensor(out["ma"]).reshape(5, 4, 4, 4)
    b = torch.tensor(out["mb"]).reshape(5, 4, 4, 4)
    added = a + (b << 1)
    np.testing.assert_array_equal(out["add"], added.reshape(5, -1).numpy())
    cat = torch.cat([added, a], dim=3)  # NHWC: channels last
    np.testing.assert_array_equal(out["cat"], cat.reshape(5, -1).numpy())
    # ShuffleNet: reshape channels to [groups, C/groups], transpose, flatten
    shuffled = cat.reshape(5, 4, 4, 2, 4).transpose(3, 4).reshape(5, 4, 4, 8)
    np.testing.assert_array_equal(out["shuffle"], shuffled.reshape(5, -1).numpy())
    assert shuffle_order(8, 2).tolist() == [0, 4, 1, 5, 2, 6, 3, 7]


def test_ranges_through_add_concat_shuffle():
    r = node_ranges(branchy_graph())
    assert (r["add"].min, r["add"].max) == (0, 3 + (3 << 1))
    assert len(r["cat"].lo) == 8 and len(r["shuffle"].lo) == 8
    assert len(r["flat"].lo) == 128


def test_branch_shape_and_group_errors_name_the_node():
    with pytest.raises(
        IRError,
        match="node 'add' \\(Add\\): branch shapes differ: ma \\[4, 4, 4\\], mb \\[4, 4, 6\\]",
    ):
        branchy_graph(b_channels=6)
    with pytest.raises(
        IRError,
        match="'shuffle' \\(ChannelShuffle\\): groups=3 does not "
        "divide 8 channels; allowed: \\[1, 2, 4, 8\\]",
    ):
        branchy_graph(groups=3)
    with pytest.raises(IRError, match="one shift per input"):
        branchy_graph(shift=(0,))
