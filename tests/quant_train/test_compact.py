"""Compact nets: depthwise-separable, grouped + shuffle + residual Add, fire + Concat."""

from __future__ import annotations

import numpy as np
import pytest

from qfab.errors import ConfigError
from quant_train.equality import compare_brevitas_to_golden
from quant_train.export_ir import export_model
from quant_train.train import TrainSettings, accuracy, predict, seed_everything, train_classifier
from quant_train.zoo import build_model

OPS = {"mobilenet": [], "shufflenet": ["ChannelShuffle", "Add"], "squeezenet": ["Concat"]}


def trained(arch, digits, epochs, bits=4):
    seed_everything(0)
    model = build_model(arch, digits.image_shape, 10, weight_bits=bits, act_bits=bits)
    return train_classifier(model, digits.x_train, digits.y_train, TrainSettings(epochs=epochs))


@pytest.mark.parametrize("arch", list(OPS))
@pytest.mark.parametrize("bits", [2, 4])
def test_compact_nets_export_exactly(digits, arch, bits):
    model = trained(arch, digits, 2, bits)
    graph = export_model(model)
    ops = [n.op for n in graph.nodes]
    assert all(op in ops for op in OPS[arch])
    if arch == "mobilenet":  # depthwise convolutions
        assert any(
            n.attrs.get("groups", 1) == n.tensors["weight"].shape[0] > 1
            for n in graph.nodes
            if n.op == "Conv2d"
        )
    eq = compare_brevitas_to_golden(model, graph, np.concatenate([digits.x_test, digits.x_train]))
    assert eq.mismatches == 0, eq.first_mismatch


def test_residual_add_meets_on_the_finer_scale(digits):
    graph = export_model(trained("shufflenet", digits, 1))
    add = graph.node("add4")
    assert sorted(add.attrs["shift"])[0] == 0  # the finer branch is not shifted


@pytest.mark.slow
@pytest.mark.parametrize("arch", list(OPS))
def test_compact_nets_reach_90_percent_at_4_bits(digits, arch):
    model = trained(arch, digits, 20)
    assert accuracy(predict(model, digits.x_test), digits.y_test) >= 0.90
    eq = compare_brevitas_to_golden(model, export_model(model), digits.x_test)
    assert eq.mismatches == 0, eq.first_mismatch


def test_groups_must_divide_the_width_before_training(digits):
    with pytest.raises(ConfigError, match="model.groups = 3 must divide the width 16"):
        build_model("shufflenet", digits.image_shape, 10, weight_bits=4, act_bits=4, groups=3)
    with pytest.raises(ConfigError, match="needs images"):
        build_model("mobilenet", (64,), 10, weight_bits=4, act_bits=4)


def test_mismatched_branches_are_refused_naming_the_node(digits):
    from quant_train.compact import SqueezeNetLike

    class Broken(SqueezeNetLike):
        def graph_plan(self):  # concat a pooled branch with an unpooled one
            plan = super().graph_plan()
            plan[4] = {"kind": "concat", "inputs": ["mt2", "pool0", "input"], "out": "concat4"}
            return plan

    with pytest.raises(
        ConfigError,
        match=r"concat4 \(concat\): branch shapes differ: "
        r"mt2 \[4, 4, 16\], pool0 \[4, 4, 16\], input \[8, 8, 1\]",
    ):
        Broken(digits.image_shape, 10, weight_bits=4, act_bits=4)
