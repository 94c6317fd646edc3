"""Golden executor semantics, checked against plain Python loops."""

from __future__ import annotations

import numpy as np
import pytest

from qfab.errors import IRError
from qfab.golden import first_mismatch, multi_threshold, quantize_input, run_golden_int
from qfab.ir import Node
from qfab.random_graph import random_mlp_graph


def test_multi_threshold_counts_reached_thresholds():
    t = np.array([[-1, 2, 2], [0, 0, 5]])
    node = Node("mt", "MultiThreshold", ["x"], {"out_bits": 2, "offset": 0}, {"thresholds": t})
    acc = np.array([[-2, 0], [2, 5], [1, -1]])
    got = multi_threshold(node, acc)
    want = [[sum(a >= tk for tk in t[c]) for c, a in enumerate(row)] for row in acc]
    np.testing.assert_array_equal(got, want)


def test_quantize_input_rounds_half_to_even_and_clips():
    node = Node("in", "InputQuant", [], {"bits": 4, "signed": False, "scale": 0.5, "features": 5})
    x = np.array([[0.25, 0.75, 1.25, -3.0, 100.0]], np.float32)
    np.testing.assert_array_equal(quantize_input(node, x), [[0, 2, 2, 0, 15]])


def test_golden_chain_matches_a_loop_reference():
    g = random_mlp_graph(12, [7, 5], 3, weight_bits=3, act_bits=2, seed=4)
    x = np.random.default_rng(0).integers(0, 256, size=(9, 12))
    res = run_golden_int(g, x)
    h = x.tolist()
    for n in g.nodes[1:-1]:
        if n.op == "Dense":
            b = n.tensors.get("bias", np.zeros(len(n.tensors["weight"]), int))
            h = [
                [
                    sum(int(w) * v for w, v in zip(row, vec, strict=True)) + int(bb)
                    for row, bb in zip(n.tensors["weight"], b, strict=True)
                ]
                for vec in h
            ]
        else:
            h = [
                [sum(a >= int(t) for t in n.tensors["thresholds"][c]) for c, a in enumerate(vec)]
                for vec in h
            ]
    np.testing.assert_array_equal(res.outputs["fc2"], h)


def test_first_mismatch_names_layer_vector_channel():
    a = np.zeros((4, 3), np.int64)
    b = a.copy()
    assert first_mismatch(a, b, "fc1") is None
    b[2, 1] = 7
    assert first_mismatch(a, b, "fc1") == ("fc1", 2, 1, 0, 7)
    with pytest.raises(IRError):
        first_mismatch(a, b[:2], "fc1")


@pytest.mark.parametrize(
    ("stride", "padding", "groups"), [(1, 0, 1), (2, 1, 1), (1, 1, 2), (1, 1, 4)]
)
def test_conv2d_and_maxpool_match_torch(stride, padding, groups):
    import torch
    import torch.nn.functional as F

    from qfab.golden import conv2d, max_pool

    rng = np.random.default_rng(0)
    h, w, c, oc, k = 7, 6, 4, 8, 3
    x = rng.integers(0, 16, size=(3, h * w * c))
    wt = rng.integers(-7, 8, size=(oc, k, k, c // groups))
    node = Node(
        "conv",
        "Conv2d",
        ["x"],
        {
            "weight_bits": 4,
            "stride": [stride, stride],
            "padding": [padding, padding],
            "groups": groups,
        },
        {"weight": wt},
    )
    got = conv2d(node, x, (h, w, c))
    ref = F.conv2d(
        torch.tensor(x, dtype=torch.float64).reshape(3, h, w, c).permute(0, 3, 1, 2),
        torch.tensor(wt, dtype=torch.float64).permute(0, 3, 1, 2),
        stride=stride,
        padding=padding,
        groups=groups,
    )
    np.testing.assert_array_equal(got, ref.permute(0, 2, 3, 1).reshape(3, -1).numpy())
    oh, ow = ref.shape[2], ref.shape[3]
    pool = Node("p", "MaxPool", ["conv"], {"kernel": [2, 2], "stride": [2, 2]})
    ref_pool = F.max_pool2d(ref, 2)
    np.testing.assert_array_equal(
        max_pool(pool, got, (oh, ow, oc)), ref_pool.permute(0, 2, 3, 1).reshape(3, -1).numpy()
    )
