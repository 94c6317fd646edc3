"""Level 1 of the equality: Brevitas (eval) == golden, integer for integer, on every vector."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qfab.errors import ExportError
from qfab.golden import run_golden
from quant_train.equality import compare_brevitas_to_golden
from quant_train.export_ir import export_model
from quant_train.models import QuantMLP
from quant_train.train import TrainSettings, predict, seed_everything, train_classifier


def trained(digits, hidden, wb, ab, epochs=3, seed=0, per_channel=False):
    seed_everything(seed)  # weight initialization is part of what the seed fixes
    model = QuantMLP(
        digits.features,
        hidden,
        digits.classes,
        weight_bits=wb,
        act_bits=ab,
        input_bits=8,
        per_channel=per_channel,
    )
    return train_classifier(
        model, digits.x_train, digits.y_train, TrainSettings(epochs=epochs, seed=seed)
    )


@pytest.mark.parametrize(
    ("wb", "ab", "per_channel"),
    [
        (2, 2, False),
        (3, 3, False),
        (4, 4, False),
        (8, 8, False),
        (2, 8, False),
        (8, 2, False),
        (1, 1, False),
        (1, 4, False),
        (5, 1, False),
        (4, 3, True),
        (8, 8, True),
    ],
)
def test_golden_equals_brevitas_on_every_vector(digits, wb, ab, per_channel):
    model = trained(digits, [24, 13], wb, ab, per_channel=per_channel)
    graph = export_model(model)
    x = np.concatenate([digits.x_test, digits.x_train])
    eq = compare_brevitas_to_golden(model, graph, x)
    assert eq.vectors == len(x) == 1797
    assert eq.mismatches == 0, eq.first_mismatch
    assert graph.meta["float32_exact"]
    # the integer widths really are the configured ones
    dense = [n for n in graph.nodes if n.op == "Dense"]
    assert [n.tensors["weight"].shape for n in dense] == [(24, 64), (13, 24), (10, 13)]
    assert all(n.attrs["weight_bits"] == wb for n in dense)
    w0 = dense[0].tensors["weight"]
    if wb == 1:  # binary weights are bipolar: never zero
        assert set(np.unique(w0)) <= {-1, 1}
    else:
        assert np.abs(w0).max() <= 2 ** (wb - 1) - 1
    if ab == 1:  # bipolar activations
        assert graph.node("mt0").attrs.get("bipolar") is True
        assert set(np.unique(run_golden(graph, x).outputs["mt0"])) <= {-1, 1}
    if per_channel:  # the per-channel mode is really in effect (and still exact)
        scales = model.linears[0].quant_weight().scale.detach().numpy()
        assert scales.size == 24 and len(np.unique(scales)) > 1


def test_a_wrong_threshold_is_caught(digits):
    """The check can fail: moving one threshold that matters gives mismatches."""
    model = trained(digits, [24, 13], 2, 2)
    graph = export_model(model)
    x = digits.x_test
    acc = run_golden(graph, x).outputs["fc0"]
    t = graph.node("mt0").tensors["thresholds"]
    # pick the (channel, level) whose threshold is hit exactly by some vector
    hits = [
        (c, k)
        for c in range(t.shape[0])
        for k in range(t.shape[1])
        if np.any(acc[:, c] == t[c, k]) and (k + 1 == t.shape[1] or t[c, k + 1] > t[c, k])
    ]
    assert hits, "no accumulator lands exactly on a threshold"
    c, k = hits[0]
    t[c, k] += 1
    eq = compare_brevitas_to_golden(model, graph, x)
    assert eq.mismatches > 0
    assert eq.first_mismatch["layer"] == "mt0" and eq.first_mismatch["channel"] == c


def test_negative_batchnorm_slope_is_exported_exactly(digits):
    model = trained(digits, [16], 3, 2, epochs=2)
    with torch.no_grad():
        model.norms[0].weight[::2] *= -1  # half the channels now fall with the accumulator
    graph = export_model(model)
    eq = compare_brevitas_to_golden(model, graph, digits.x_test)
    assert eq.mismatches == 0, eq.first_mismatch
    # the flipped channels carry negated weight rows
    w_ir = graph.node("fc0").tensors["weight"]
    w_bv = model.linears[0].quant_weight().int().numpy()
    np.testing.assert_array_equal(w_ir[::2], -w_bv[::2])
    np.testing.assert_array_equal(w_ir[1::2], w_bv[1::2])


def test_training_is_deterministic_for_a_seed(digits):
    a = predict(trained(digits, [16], 2, 2, epochs=2, seed=3), digits.x_test)
    b = predict(trained(digits, [16], 2, 2, epochs=2, seed=3), digits.x_test)
    np.testing.assert_array_equal(a, b)


def test_non_power_of_two_scale_is_refused(digits):
    from brevitas.nn import QuantLinear
    from brevitas.quant import Int8WeightPerTensorFloat

    model = trained(digits, [16], 2, 2, epochs=1)
    model.linears[0] = QuantLinear(
        64, 16, bias=False, weight_quant=Int8WeightPerTensorFloat, weight_bit_width=2
    )
    with pytest.raises(ExportError, match="fc0.weight.*power of two"):
        export_model(model)


@pytest.mark.parametrize(
    ("arch", "wb", "ab"), [("lenet5", 4, 4), ("cnv", 2, 2), ("lenet5", 1, 1), ("tfc", 1, 1)]
)
def test_zoo_models_export_exactly(digits, arch, wb, ab):
    from quant_train.zoo import build_model

    seed_everything(0)
    model = build_model(arch, digits.image_shape, 10, weight_bits=wb, act_bits=ab)
    train_classifier(model, digits.x_train, digits.y_train, TrainSettings(epochs=2))
    graph = export_model(model)
    x = np.concatenate([digits.x_test, digits.x_train])
    eq = compare_brevitas_to_golden(model, graph, x)
    assert eq.mismatches == 0, eq.first_mismatch
    ops = [n.op for n in graph.nodes]
    if arch != "tfc":
        assert ops.count("Conv2d") >= 2 and "Flatten" in ops and "MaxPool" in ops


def test_conv_negative_slope_and_padding_with_bipolar(digits):
    from quant_train.models import QuantCNN

    seed_everything(1)
    model = QuantCNN(
        (8, 8, 1), [(8, 3, 1, 0), (8, 3, 1, 2)], [16], 10, weight_bits=2, act_bits=1, input_bits=8
    )
    train_classifier(model, digits.x_train, digits.y_train, TrainSettings(epochs=1))
    with torch.no_grad():
        model.conv_norms[1].weight[::2] *= -1
    eq = compare_brevitas_to_golden(model, export_model(model), digits.x_test)
    assert eq.mismatches == 0, eq.first_mismatch
