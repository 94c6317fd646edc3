"""Truncated SVD: exact at full rank, rank rules, and exact export after quantization."""

from __future__ import annotations

import numpy as np
import pytest

from qfab.errors import ConfigError
from quant_train.equality import compare_brevitas_to_golden
from quant_train.export_ir import export_model
from quant_train.lowrank import rank_for_energy, svd_factorize
from quant_train.models import FloatMLP, QuantMLP
from quant_train.train import TrainSettings, predict, seed_everything, train_classifier


@pytest.fixture(scope="module")
def float_mlp(digits):
    seed_everything(0)
    model = FloatMLP(64, [48, 24], 10)
    return train_classifier(model, digits.x_train, digits.y_train, TrainSettings(epochs=4))


def test_full_rank_reproduces_the_layer(float_mlp, digits):
    full = svd_factorize(float_mlp, rank=[48, 24, 10]).eval()
    np.testing.assert_allclose(
        predict(full, digits.x_test), predict(float_mlp, digits.x_test), atol=1e-4
    )


def test_rank_counts_and_parameter_saving(float_mlp):
    small = svd_factorize(float_mlp, rank=[8, 6, None])
    f0 = small.linears[0]
    assert (f0.first.weight.shape, f0.second.weight.shape) == ((8, 64), (48, 8))
    assert small.classifier.weight.shape == (10, 24)  # kept whole
    params = sum(
        p.numel() for n, p in small.named_parameters() if n.endswith("weight") and "norms" not in n
    )
    assert params == 8 * (64 + 48) + 6 * (48 + 24) + 10 * 24


def test_energy_picks_the_smallest_rank():
    s = np.array([4.0, 2.0, 1.0, 1.0])  # energies 16, 4, 1, 1 of 22
    assert rank_for_energy(s, 16 / 22) == 1
    assert rank_for_energy(s, 0.8) == 2
    assert rank_for_energy(s, 1.0) == 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"rank": [65, None, None]},
            "rank for fc0 \\(64 -> 48\\) = 65 is not allowed; allowed: 1..48",
        ),
        ({"rank": [4, 4]}, "2 entries for 3 layers"),
        ({"rank": 4, "energy": 0.9}, "exactly one"),
        ({"energy": 1.5}, "energy = 1.5"),
    ],
)
def test_bad_ranks_are_refused_naming_the_layer(float_mlp, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        svd_factorize(float_mlp, **kwargs)


def test_factored_quantized_model_exports_exactly(float_mlp, digits):
    small = svd_factorize(float_mlp, rank=[8, 8, 8])
    q = QuantMLP(64, [48, 24], 10, weight_bits=4, act_bits=4, input_bits=8, ranks=small.ranks)
    assert not q.load_state_dict(small.state_dict(), strict=False).unexpected_keys
    train_classifier(q, digits.x_train, digits.y_train, TrainSettings(epochs=2, lr=0.005))
    graph = export_model(q)
    dense = [n.tensors["weight"].shape for n in graph.nodes if n.op == "Dense"]
    assert dense == [(8, 64), (48, 8), (8, 48), (24, 8), (8, 24), (10, 8)]
    # the requantizers between the halves are signed: offset = -2^(b-1)
    assert graph.node("mt0").attrs["offset"] == -8 and graph.node("mt1").attrs["offset"] == 0
    eq = compare_brevitas_to_golden(q, graph, np.concatenate([digits.x_test, digits.x_train]))
    assert eq.mismatches == 0, eq.first_mismatch


@pytest.mark.slow
def test_svd_acceptance_3x_fewer_params_within_1_point(digits):
    """SVD at rank <= 1/4 of the narrower side, 4-bit: >= 3x fewer parameters than the
    unfactored 4-bit model, <= 1 point accuracy loss, golden == Brevitas."""
    from qfab.config import load_config, parse_config
    from quant_train.compress import Pipeline, count

    cfg = load_config("examples/digits_svd.yaml")
    (rank_step,) = [s for s in cfg.compress.steps if s.kind == "factorize"]
    for (n, m), r in zip([(64, 300), (300, 100)], rank_step.factorize.rank, strict=False):
        assert r <= min(n, m) / 4
    factored = Pipeline(cfg, digits)
    model = factored.run()
    plain_cfg = parse_config(
        {
            "model": {"arch": "lenet300"},
            "train": {"epochs": 40},
            "compress": {"steps": [{"quantize": {"weight_bits": 4, "act_bits": 4, "epochs": 10}}]},
        }
    )
    plain = Pipeline(plain_cfg, digits)
    plain_model = plain.run()
    assert count(plain_model)[0] / count(model)[0] >= 3
    assert factored.rows[-1].accuracy >= plain.rows[-1].accuracy - 0.01
    eq = compare_brevitas_to_golden(model, export_model(model), digits.x_test)
    assert eq.mismatches == 0, eq.first_mismatch


# ---------------------------------------------------------------- convolutions


@pytest.fixture(scope="module")
def float_cnn_model(digits):
    from quant_train.models import float_cnn

    seed_everything(0)
    model = float_cnn((8, 8, 1), [(6, 3, 1, 2), (8, 3, 1, 2)], [16], 10)
    return train_classifier(model, digits.x_train, digits.y_train, TrainSettings(epochs=2))


@pytest.mark.parametrize(
    ("method", "full_rank"), [("tucker", [[1, 6], [6, 8]]), ("spatial", [3, 18])]
)
def test_full_rank_conv_factors_reproduce_the_net(float_cnn_model, digits, method, full_rank):
    from quant_train.lowrank import conv_factorize

    full = conv_factorize(float_cnn_model, method, full_rank).eval()
    np.testing.assert_allclose(
        predict(full, digits.x_test), predict(float_cnn_model.eval(), digits.x_test), atol=1e-3
    )


def test_cp_stages_are_pointwise_depthwise_depthwise_pointwise(float_cnn_model):
    from quant_train.lowrank import conv_factorize

    cp = conv_factorize(float_cnn_model, "cp", [None, 5])
    stages = cp.convs[1].stages
    assert [tuple(s.weight.shape) for s in stages] == [
        (5, 6, 1, 1),
        (5, 1, 3, 1),
        (5, 1, 1, 3),
        (8, 5, 1, 1),
    ]
    assert [s.groups for s in stages] == [1, 5, 5, 1]


@pytest.mark.parametrize(
    ("method", "rank", "message"),
    [
        ("tucker", [None, [7, 4]], "rank for conv1 \\(6 -> 8\\) = \\[7, 4\\] is not allowed"),
        ("tucker", [None], "1 entries for 2 conv layers"),
        ("spatial", [None, 99], "rank for conv1 = 99 is not allowed; allowed: 1..18"),
    ],
)
def test_conv_rank_errors_name_the_layer(float_cnn_model, method, rank, message):
    from quant_train.lowrank import conv_factorize

    with pytest.raises(ConfigError, match=message):
        conv_factorize(float_cnn_model, method, rank)


@pytest.mark.parametrize(
    ("method", "rank"), [("tucker", [[1, 3], [3, 4]]), ("cp", [2, 4]), ("spatial", [2, 3])]
)
def test_factored_quantized_cnn_exports_exactly(float_cnn_model, digits, method, rank):
    from quant_train.compress import float_to_quant
    from quant_train.lowrank import conv_factorize

    small = conv_factorize(float_cnn_model, method, rank)
    settings = type(
        "Q", (), {"weight_bits": 4, "act_bits": 3, "input_bits": 8, "per_channel": False}
    )()
    q = float_to_quant(small, settings)
    train_classifier(q, digits.x_train, digits.y_train, TrainSettings(epochs=1, lr=0.005))
    graph = export_model(q)
    groups = [n.attrs["groups"] for n in graph.nodes if n.op == "Conv2d"]
    if method == "cp":
        assert groups.count(2) == 2 and groups.count(4) == 2  # the depthwise stages
    eq = compare_brevitas_to_golden(q, graph, np.concatenate([digits.x_test, digits.x_train]))
    assert eq.mismatches == 0, eq.first_mismatch


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "rank", "min_ratio"), [("tucker", [None, [3, 6]], 2.0), ("cp", [3, 7], 3.0)]
)
def test_conv_lowrank_acceptance_on_lenet5(digits, method, rank, min_ratio):
    """Tucker-2: >= 2x fewer conv MACs, CP: >= 3x, each within 1 point on digits."""
    from qfab.config import parse_config
    from quant_train.compress import Pipeline, conv_macs

    cfg = parse_config(
        {
            "model": {"arch": "lenet5"},
            "train": {"epochs": 20},
            "compress": {
                "steps": [{"factorize": {"method": method, "rank": rank, "fine_tune_epochs": 20}}]
            },
        }
    )
    pipe = Pipeline(cfg, digits)
    model = pipe.run()
    assert conv_macs(pipe.teacher) / conv_macs(model) >= min_ratio
    assert pipe.rows[-1].accuracy >= pipe.rows[0].accuracy - 0.01
