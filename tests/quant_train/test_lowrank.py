"""Truncated SVD: exact at full rank, rank rules, and exact export after quantization."""

from __future__ import annotations

import numpy as np
import pytest

from qfab.config import QuantizeStep
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
    q = QuantMLP(
        64, [48, 24], 10, weight_bits=4, act_bits=4, input_bits=8, inner_bits=4, ranks=small.ranks
    )
    assert not q.load_state_dict(small.state_dict(), strict=False).unexpected_keys
    train_classifier(q, digits.x_train, digits.y_train, TrainSettings(epochs=2, lr=0.005))
    graph = export_model(q)
    dense = [n.tensors["weight"].shape for n in graph.nodes if n.op == "Dense"]
    assert dense == [(8, 64), (48, 8), (8, 48), (24, 8), (8, 24), (10, 8)]
    # the requantizers between the halves are signed inner_bits wide: offset = -2^(b-1)
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
    q = float_to_quant(small, QuantizeStep(weight_bits=4, act_bits=3))
    train_classifier(q, digits.x_train, digits.y_train, TrainSettings(epochs=1, lr=0.005))
    graph = export_model(q)
    groups = [n.attrs["groups"] for n in graph.nodes if n.op == "Conv2d"]
    if method == "cp":
        assert groups.count(2) == 2 and groups.count(4) == 2  # the depthwise stages
    # between the stages: signed requantizers of inner_bits (default 8); after: act_bits
    inner = {
        (n.attrs["out_bits"], n.attrs["offset"]) for n in graph.nodes if n.op == "MultiThreshold"
    }
    assert inner == {(8, -128), (3, 0)}
    eq = compare_brevitas_to_golden(q, graph, np.concatenate([digits.x_test, digits.x_train]))
    assert eq.mismatches == 0, eq.first_mismatch


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "rank", "min_ratio"), [("tucker", [None, [3, 6]], 2.0), ("cp", [3, 7], 3.0)]
)
def test_conv_lowrank_acceptance_on_lenet5(digits, method, rank, min_ratio):
    """Tucker-2: >= 2x fewer conv MACs, CP: >= 3x, each within 1 point on digits (float,
    fine-tuned); then w4a4 QAT of the factored net keeps >= 95% (CP with 4-bit inner
    requantizers and unbalanced factors fell to 68% here) and exports exactly."""
    from qfab.config import parse_config
    from quant_train.compress import Pipeline, conv_macs

    cfg = parse_config(
        {
            "model": {"arch": "lenet5"},
            "train": {"epochs": 20},
            "compress": {
                "steps": [
                    {"factorize": {"method": method, "rank": rank, "fine_tune_epochs": 20}},
                    {"quantize": {"weight_bits": 4, "act_bits": 4, "epochs": 10}},
                ]
            },
        }
    )
    pipe = Pipeline(cfg, digits)
    model = pipe.run()
    base, factored, quantized = pipe.rows
    assert conv_macs(pipe.teacher) / factored.detail["conv_macs"] >= min_ratio
    assert factored.accuracy >= base.accuracy - 0.01
    assert quantized.accuracy >= 0.95
    eq = compare_brevitas_to_golden(model, export_model(model), digits.x_test)
    assert eq.mismatches == 0, eq.first_mismatch


def _fit(w, approx):
    return 1 - float(np.sum((w - approx) ** 2) / np.sum(w**2))


def _stage_product(kind, stages):
    """The k x k kernel [OC, IC, KH, KW] a chain of factor stages computes."""
    if kind == "tucker":
        first, core, last = (s[:, :, 0, 0] if s.shape[2:] == (1, 1) else s for s in stages)
        return np.einsum("or,rshw,si->oihw", last, core, first)
    if kind == "spatial":
        v, h = stages  # [r, ic, kh, 1], [oc, r, 1, kw]
        return np.einsum("rih,orw->oihw", v[..., 0], h[:, :, 0, :])
    b, c, d, a = stages  # [r, ic,1,1], [r,1,kh,1], [r,1,1,kw], [oc, r,1,1]
    return np.einsum("or,ri,rh,rw->oihw", a[:, :, 0, 0], b[:, :, 0, 0], c[:, 0, :, 0], d[:, 0, 0])


@pytest.mark.parametrize("kind", ["tucker", "spatial", "cp"])
@pytest.mark.parametrize("energy", [0.5, 0.8])
def test_conv_energy_rank_is_the_smallest_that_keeps_it(float_cnn_model, kind, energy):
    """The chosen rank's factors keep >= energy of |W|^2; one rank less would not."""
    from quant_train.lowrank import _conv_weights, conv_rank_for_energy

    w = float_cnn_model.convs[1].weight.detach().double().numpy()  # [8, 6, 3, 3]
    rank = conv_rank_for_energy(kind, w, energy)

    def fit(r):
        return _fit(w, _stage_product(kind, _conv_weights(kind, w, r, 0)))

    if kind == "tucker":  # each mode keeps (1 + e) / 2 of its spectrum, minimally ...
        for mode, r in zip((1, 0), rank, strict=True):
            s2 = np.linalg.svd(np.moveaxis(w, mode, 0).reshape(w.shape[mode], -1))[1] ** 2
            assert s2[:r].sum() >= (1 + energy) / 2 * s2.sum() > s2[: r - 1].sum()
        assert fit(rank) >= energy  # ... so the whole Tucker-2 keeps at least e
    else:  # minimal: no smaller rank reaches it (brute force over all of them)
        assert fit(rank) >= energy - 1e-9
        assert all(fit((r,)) < energy for r in range(1, rank[0]))


def test_energy_keeps_a_layer_whole_when_factoring_is_not_cheaper(float_cnn_model):
    from quant_train.lowrank import conv_factorize
    from quant_train.models import FactoredConv

    for kind in ("tucker", "cp", "spatial"):  # all energy: no factorization is cheaper
        full = conv_factorize(float_cnn_model, kind, energy=1.0)
        assert full.factors == [None, None], kind
        assert not any(isinstance(c, FactoredConv) for c in full.convs)
    some = conv_factorize(float_cnn_model, "spatial", energy=0.6)
    assert some.factors[1] is not None and some.factors[1][0] == "spatial"


def test_energy_and_rank_are_exclusive_and_checked(float_cnn_model):
    from quant_train.lowrank import conv_factorize

    with pytest.raises(ConfigError, match="exactly one of 'rank' and 'energy'"):
        conv_factorize(float_cnn_model, "cp", rank=[2, 2], energy=0.5)
    with pytest.raises(ConfigError, match="factorize.energy = 1.5 is not allowed"):
        conv_factorize(float_cnn_model, "cp", energy=1.5)
    with pytest.raises(ConfigError, match="'svd' is not allowed for conv nets"):
        conv_factorize(float_cnn_model, "svd", energy=0.5)


def test_cp_components_are_balanced_and_not_degenerate(float_cnn_model):
    """Each rank-one component has equal norms in its four stages, and at a rank well
    above the channel count the components do not cancel each other (ridge ALS)."""
    from quant_train.lowrank import _conv_weights

    w = float_cnn_model.convs[1].weight.detach().double().numpy()
    b, c, d, a = _conv_weights("cp", w, (24,), 0)
    norms = np.stack(
        [
            np.linalg.norm(b.reshape(24, -1), axis=1),
            np.linalg.norm(c.reshape(24, -1), axis=1),
            np.linalg.norm(d.reshape(24, -1), axis=1),
            np.linalg.norm(a.reshape(a.shape[0], 24), axis=0),
        ]
    )
    np.testing.assert_allclose(norms, np.broadcast_to(norms[0], norms.shape), rtol=1e-9)
    component_energy = float(np.sum(norms[0] ** 8))  # sum of lambda_i^2
    assert component_energy < 10 * float(np.sum(w**2))
    assert _fit(w, _stage_product("cp", [b, c, d, a])) > 0.8
