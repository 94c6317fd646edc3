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
    plain_cfg = parse_config({"model": {"arch": "lenet300"}, "train": {"epochs": 40},
                              "compress": {"steps": [{"quantize": {"weight_bits": 4,
                                                                   "act_bits": 4,
                                                                   "epochs": 10}}]}})
    plain = Pipeline(plain_cfg, digits)
    plain_model = plain.run()
    assert count(plain_model)[0] / count(model)[0] >= 3
    assert factored.rows[-1].accuracy >= plain.rows[-1].accuracy - 0.01
    eq = compare_brevitas_to_golden(model, export_model(model), digits.x_test)
    assert eq.mismatches == 0, eq.first_mismatch
