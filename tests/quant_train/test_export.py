"""Level 1 of the equality: Brevitas (eval) == golden, integer for integer, on every vector."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hw_gen.passes import lower
from qfab.errors import ExportError
from qfab.golden import compare_levels, quantize_input, run_golden
from qfab.ops.threshold import apply_thresholds
from qfab.ranges import node_ranges
from quant_train.equality import compare_brevitas_to_golden
from quant_train.export_ir import export_model, graph_plan, quant_ints
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
    # the weights are Brevitas' own; the falling channels are marked in the thresholds
    w_ir = graph.node("fc0").tensors["weight"]
    w_bv = model.linears[0].quant_weight().int().numpy()
    np.testing.assert_array_equal(w_ir, w_bv)
    mt = graph.node("mt0")
    d = mt.tensors["direction"]
    np.testing.assert_array_equal(d[::2], -1)
    np.testing.assert_array_equal(d[1::2], 1)
    # thresholds are on direction * acc, inside its range (or one past it: never reached)
    acc = node_ranges(graph)["fc0"]
    lo, hi = np.where(d < 0, -acc.hi, acc.lo), np.where(d < 0, -acc.lo, acc.hi)
    t = mt.tensors["thresholds"]
    assert np.all(t >= lo[:, None]) and np.all(t <= hi[:, None] + 1)
    # the dense hardware folds the direction back into the rows, and stays exact
    hw = lower(graph)
    assert hw.node("fc0").attrs["model_node"] == "mt0"
    np.testing.assert_array_equal(hw.node("fc0").tensors["weight"], w_bv * d[:, None])
    x_int = quantize_input(graph.nodes[0], digits.x_test)
    assert compare_levels(graph, hw, x_int) is None


def test_falling_thresholds_equal_the_model_ops_on_every_reachable_accumulator(digits):
    """Exhaustive, independent of the exporter's bisection: for every accumulator value
    in the layer's range, ``offset + #{direction * acc >= T}`` equals the model's own
    batch norm + quantizer applied to ``acc * scale``, rising and falling channels alike."""
    model = trained(digits, [16], 3, 3, epochs=1)
    with torch.no_grad():
        model.norms[0].weight[::3] *= -1
    graph = export_model(model)
    mt = graph.node("mt0")
    acc = node_ranges(graph)["fc0"]
    a = np.arange(acc.min, acc.max + 1)[:, None].repeat(16, axis=1)
    scale = float(model.input_quant.act_quant.scale()) * model.linears[0].quant_weight().scale
    model.eval()
    with torch.no_grad():
        y = torch.from_numpy(a.astype(np.float32)) * scale.reshape(1, -1).float()
        want = quant_ints(model.acts[0](model.norms[0](y)))
    got = apply_thresholds(
        mt.tensors["thresholds"], a, mt.attrs["offset"], False, mt.tensors["direction"]
    )
    inside = (a >= acc.lo) & (a <= acc.hi)
    np.testing.assert_array_equal(got[inside], want[inside])
    assert (want[:, 0] == want[0, 0]).all() or want[0, 0] > want[-1, 0]  # channel 0 falls


def test_one_negative_batchnorm_weight_marks_exactly_its_channel(digits):
    model = trained(digits, [16, 12], 3, 2, epochs=2)
    rising = export_model(model)
    assert all("direction" not in n.tensors for n in rising.nodes)  # nothing falls: no tensor
    with torch.no_grad():
        model.norms[0].weight[3] *= -1
    graph = export_model(model)
    np.testing.assert_array_equal(np.flatnonzero(graph.node("mt0").tensors["direction"] < 0), [3])
    assert "direction" not in graph.node("mt1").tensors
    for name in ("fc0", "fc1", "fc2"):
        np.testing.assert_array_equal(
            graph.node(name).tensors["weight"], rising.node(name).tensors["weight"]
        )
    eq = compare_brevitas_to_golden(model, graph, np.concatenate([digits.x_test, digits.x_train]))
    assert eq.mismatches == 0, eq.first_mismatch


def test_a_shared_layer_keeps_k_codebook_entries_with_falling_channels(digits):
    """Negating rows would give up to 2K values (a K-entry codebook and its negatives),
    which no longer fits a log2(K)-bit index: the direction keeps the IR at K."""
    from quant_train.share_model import freeze_sharing, share_weights

    model = trained(digits, [24, 16], 5, 3, epochs=2)
    share_weights(model, 5)
    freeze_sharing(model)
    with torch.no_grad():
        for norm in model.norms:
            norm.weight[::2] *= -1
    graph = export_model(model)
    eq = compare_brevitas_to_golden(model, graph, digits.x_test)
    assert eq.mismatches == 0, eq.first_mismatch
    for i, layer in enumerate(model.linears):
        node = graph.node(f"fc{i}")
        book = node.tensors["codebook"]
        assert len(book) <= 5, (node.name, book)
        np.testing.assert_array_equal(node.tensors["weight"], layer.quant_weight().int().numpy())
        if i < len(model.norms):
            assert "direction" in graph.node(f"mt{i}").tensors
    # negating the falling rows (what the exporter once did) would not fit in K = 5 here
    # (this seed's fc0 codebook is not its own negative)
    w = graph.node("fc0").tensors["weight"]
    d = graph.node("mt0").tensors["direction"]
    assert len(np.unique((w * d[:, None])[w != 0])) > 5
    hw = lower(graph)
    assert compare_levels(graph, hw, quantize_input(graph.nodes[0], digits.x_test)) is None


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
    graph = export_model(model)
    eq = compare_brevitas_to_golden(model, graph, digits.x_test)
    assert eq.mismatches == 0, eq.first_mismatch
    conv = next(n for n in graph.nodes if n.op == "Conv2d" and n.inputs[0] != "input")
    w_bv = model.convs[1].quant_weight().int().numpy().transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(conv.tensors["weight"], w_bv)  # NHWC order, not negated
    d = graph.node(graph.consumers(conv.name)[0].name).tensors["direction"]
    np.testing.assert_array_equal(np.flatnonzero(d < 0), np.arange(0, 8, 2))


def _flip_batch_norms(model: torch.nn.Module) -> int:
    """Negate the batch-norm weight of every other channel of every layer that has one."""
    norms = [step["bn"] for step in graph_plan(model) if step.get("bn") is not None]
    with torch.no_grad():
        for bn in norms:
            bn.weight[::2] *= -1
    return len(norms)


@pytest.mark.parametrize(
    ("arch", "wb", "ab"),
    [
        ("tfc", 2, 2),
        ("tfc", 1, 1),
        ("lenet5", 4, 4),
        ("cnv", 1, 1),
        ("mobilenet", 4, 4),
        ("shufflenet", 2, 2),
        ("squeezenet", 4, 4),
        ("factored_mlp", 4, 4),
        ("factored_cnn", 4, 3),
    ],
)
def test_zoo_models_with_falling_channels_export_and_lower_exactly(digits, arch, wb, ab):
    """Level 1 with negative batch-norm slopes in every layer of every kind of zoo model,
    and the lowered (dense/XNOR) hardware graph equal to it node for node."""
    from quant_train.zoo import build_model

    seed_everything(0)
    if arch == "factored_mlp":
        model = QuantMLP(
            64, [48, 24], 10, weight_bits=wb, act_bits=ab, input_bits=8, ranks=[8, 8, 8]
        )
    elif arch == "factored_cnn":  # CP: 1x1 -> depthwise -> depthwise -> 1x1 per conv
        from qfab.config import QuantizeStep
        from quant_train.compress import float_to_quant
        from quant_train.lowrank import conv_factorize
        from quant_train.models import float_cnn

        net = float_cnn((8, 8, 1), [(6, 3, 1, 2), (8, 3, 1, 2)], [16], 10)
        model = float_to_quant(
            conv_factorize(net, "cp", [2, 4]), QuantizeStep(weight_bits=wb, act_bits=ab)
        )
    else:
        model = build_model(arch, digits.image_shape, 10, weight_bits=wb, act_bits=ab)
    train_classifier(model, digits.x_train, digits.y_train, TrainSettings(epochs=1))
    assert _flip_batch_norms(model) >= 2
    graph = export_model(model)
    x = np.concatenate([digits.x_test, digits.x_train])
    eq = compare_brevitas_to_golden(model, graph, x)
    assert eq.mismatches == 0, eq.first_mismatch
    assert any("direction" in n.tensors for n in graph.nodes)
    hw = lower(graph)
    assert not [n.name for n in hw.nodes if "direction" in n.tensors]
    assert compare_levels(graph, hw, quantize_input(graph.nodes[0], digits.x_test)) is None
