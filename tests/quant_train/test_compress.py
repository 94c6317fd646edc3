"""The compression pipeline: rows as the surveys measure them, order rules, early errors."""

from __future__ import annotations

import time

import numpy as np
import pytest

from qfab.config import parse_config
from qfab.errors import ConfigError
from quant_train.compress import Pipeline, conv_macs, count, survey_table
from quant_train.models import FloatMLP


def config(steps, hidden=(32, 16), epochs=3, arch="mlp"):
    return parse_config(
        {
            "model": {"arch": arch, "hidden": list(hidden)},
            "train": {"epochs": epochs},
            "compress": {"steps": steps},
        }
    )


def test_rows_follow_the_steps_and_ratios_are_relative_to_baseline(digits):
    cfg = config(
        [
            {"prune": {"sparsity": 0.8, "fine_tune_epochs": 2}},
            {"quantize": {"weight_bits": 4, "act_bits": 4, "epochs": 2}},
        ]
    )
    pipe = Pipeline(cfg, digits)
    model = pipe.run()
    assert model.quantized
    table = survey_table(pipe.rows, "mlp", "digits")
    assert [r["step"] for r in table] == [
        "baseline (float32)",
        "prune 80% (global)",
        "quantize w4a4",
    ]
    base, pruned, quant = table
    weights = 64 * 32 + 32 * 16 + 16 * 10
    assert base["params"] == weights and base["bytes"] == weights * 4 and base["Cr"] == 1
    assert pruned["params"] == pytest.approx(0.2 * weights, abs=2)
    assert pruned["Sr"] == pytest.approx(weights / pruned["params"])
    assert quant["bytes"] == weights * 4 // 8  # dense 4-bit
    assert quant["Cr"] == pytest.approx(8.0)
    assert quant["delta"] == pytest.approx(quant["acc"] - base["acc"])
    _, nonzero, _ = count(model)
    assert nonzero == quant["params"], "pruned zeros must survive QAT"


def test_structured_step_shrinks_the_layers(digits):
    cfg = config([{"prune_neurons": {"fraction": 0.5, "fine_tune_epochs": 1}}])
    pipe = Pipeline(cfg, digits)
    model = pipe.run()
    assert isinstance(model, FloatMLP)
    assert [lin.out_features for lin in model.linears] == [16, 8]
    assert pipe.rows[-1].detail["hidden"] == [16, 8]


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([{"share": {}}], "'share' needs 'quantize' before it"),
        ([{"quantize": {}}, {"factorize": {"rank": 4}}], "'factorize' must come before"),
        ([{"factorize": {"rank": [40, None, None]}}], "rank for fc0 \\(64 -> 32\\) = 40"),
        ([{"quantize": {}}, {"quantize": {}}], "only once"),
    ],
)
def test_bad_pipelines_fail_before_training(digits, steps, message):
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=message):
        Pipeline(config(steps, epochs=200), digits).run()
    assert time.perf_counter() - start < 5, "must fail before the 200-epoch baseline"


def test_conv_net_pipeline_keeps_exactness(digits):
    from quant_train.equality import compare_brevitas_to_golden
    from quant_train.export_ir import export_model

    cfg = config(
        [
            {"prune": {"sparsity": 0.6, "fine_tune_epochs": 1}},
            {"quantize": {"weight_bits": 3, "act_bits": 3, "epochs": 1}},
        ],
        arch="lenet5",
        epochs=1,
    )
    model = Pipeline(cfg, digits).run()
    eq = compare_brevitas_to_golden(model, export_model(model), digits.x_test)
    assert eq.mismatches == 0, eq.first_mismatch
    with pytest.raises(ConfigError, match="'svd' is for MLPs; for model.arch = lenet5"):
        Pipeline(config([{"factorize": {"rank": 2}}], arch="lenet5"), digits).run()
    with pytest.raises(ConfigError, match="rank for conv1 \\(6 -> 16\\) = \\[7, 4\\]"):
        Pipeline(
            config([{"factorize": {"method": "tucker", "rank": [None, [7, 4]]}}], arch="lenet5"),
            digits,
        ).run()


@pytest.mark.parametrize("arch", ["shufflenet", "squeezenet"])
def test_compact_net_pipeline_prunes_quantizes_shares_exactly(digits, arch):
    """A compact net starts from its float twin, keeps its branches, and stays exact."""
    from quant_train.equality import compare_brevitas_to_golden
    from quant_train.export_ir import export_model

    cfg = config(
        [
            {"prune": {"sparsity": 0.5, "fine_tune_epochs": 1}},
            {"quantize": {"weight_bits": 4, "act_bits": 4, "epochs": 1}},
            {"share": {"clusters": 6, "fine_tune_epochs": 1}},
            {"encode": {"index_bits": 4}},
        ],
        arch=arch,
        epochs=1,
    )
    pipe = Pipeline(cfg, digits)
    model = pipe.run()
    assert not pipe.teacher.quantized and model.quantized
    base, pruned, *_, encoded = pipe.rows
    assert pruned.params == pytest.approx(base.params / 2, abs=2)
    assert encoded.storage == "encoded bytes" and encoded.params == pruned.params
    graph = export_model(model)
    ops = {n.op for n in graph.nodes}
    assert ({"Add", "ChannelShuffle"} if arch == "shufflenet" else {"Concat"}) <= ops
    for n in graph.nodes:
        if n.op in ("Conv2d", "Dense"):
            assert len(n.tensors["codebook"]) <= 2 * 6, n.name
    eq = compare_brevitas_to_golden(model, graph, digits.x_test)
    assert eq.mismatches == 0, eq.first_mismatch


@pytest.mark.parametrize(
    "step", [{"factorize": {"method": "tucker", "rank": 2}}, {"prune_neurons": {}}]
)
def test_compact_nets_refuse_shape_changing_steps_before_training(digits, step):
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="is not available for model.arch = mobilenet"):
        Pipeline(config([step], arch="mobilenet", epochs=200), digits).run()
    assert time.perf_counter() - start < 5, "must fail before the 200-epoch baseline"


def test_conv_energy_factorization_runs_in_the_pipeline(digits):
    cfg = config(
        [{"factorize": {"method": "spatial", "energy": 0.7, "fine_tune_epochs": 1}}],
        arch="lenet5",
        epochs=1,
    )
    pipe = Pipeline(cfg, digits)
    pipe.run()
    row = pipe.rows[-1]
    assert row.step == "factorize spatial energy 70%"
    assert any(f is not None for f in row.detail["factors"])
    assert row.detail["conv_macs"] < conv_macs(pipe.teacher)


@pytest.mark.parametrize(("wb", "ab"), [(6, 7), (7, 6), (1, 2)])
def test_distilled_quantize_and_per_layer_clusters_stay_exact(digits, wb, ab):
    """Bits 6 and 7 (and binary weights), distillation from the baseline and one cluster
    count per layer, all through the config, then real encoded bytes and exact export."""
    from quant_train.equality import compare_brevitas_to_golden
    from quant_train.export_ir import export_model

    quantize = {"weight_bits": wb, "act_bits": ab, "epochs": 1}
    quantize["distill"] = {"temperature": 3.0, "alpha": 0.5}
    cfg = config(
        [
            {"quantize": quantize},
            {"share": {"clusters": [12, 6, 4], "fine_tune_epochs": 1}},
            {"encode": {"index_bits": 3}},
        ],
        epochs=1,
    )
    pipe = Pipeline(cfg, digits)
    model = pipe.run()
    assert pipe.rows[1].step == f"quantize w{wb}a{ab} + distill"
    graph = export_model(model)
    books = [len(n.tensors["codebook"]) for n in graph.nodes if n.op == "Dense"]
    assert all(b <= 2 * k for b, k in zip(books, [12, 6, 4], strict=True)), books
    assert all(n.attrs["weight_bits"] == wb for n in graph.nodes if n.op == "Dense")
    assert pipe.rows[-1].storage == "encoded bytes"
    eq = compare_brevitas_to_golden(model, graph, digits.x_test)
    assert eq.mismatches == 0, eq.first_mismatch


def test_factored_conv_net_can_be_pruned_shared_and_encoded(digits):
    """Factorize -> prune -> quantize -> share -> encode on LeNet-5: every factor stage is
    a layer of its own for pruning, sharing and storage, and the result stays exact."""
    from quant_train.equality import compare_brevitas_to_golden
    from quant_train.export_ir import export_model

    cfg = config(
        [
            {"factorize": {"method": "cp", "rank": [2, 4], "fine_tune_epochs": 1}},
            {"prune": {"sparsity": 0.5, "fine_tune_epochs": 1}},
            {"quantize": {"epochs": 1}},
            {"share": {"clusters": 4, "fine_tune_epochs": 1}},
            {"encode": {}},
        ],
        arch="lenet5",
        epochs=1,
    )
    pipe = Pipeline(cfg, digits)
    model = pipe.run()
    factored, pruned = pipe.rows[1], pipe.rows[2]
    assert pruned.params == pytest.approx(factored.params / 2, abs=2)
    assert len(pipe.rows[-1].detail["layers"]) == 8 + 3  # 2 x 4 CP stages + 3 linears
    eq = compare_brevitas_to_golden(model, export_model(model), digits.x_test)
    assert eq.mismatches == 0, eq.first_mismatch
    with pytest.raises(ConfigError, match="'prune_neurons' must come before 'factorize'"):
        Pipeline(
            config(
                [{"factorize": {"method": "cp", "rank": 2}}, {"prune_neurons": {}}],
                arch="lenet5",
                epochs=200,
            ),
            digits,
        ).run()


@pytest.mark.slow
def test_deep_compression_reaches_40x_on_digits_within_1_5_points(digits):
    """Acceptance: >= 40x storage vs float32 with at most 1.5 points accuracy loss."""
    from qfab.config import load_config
    from quant_train.equality import compare_brevitas_to_golden
    from quant_train.export_ir import export_model

    cfg = load_config("examples/digits_deep_compression.yaml")
    pipe = Pipeline(cfg, digits)
    model = pipe.run()
    last = survey_table(pipe.rows, "lenet300", "digits")[-1]
    assert last["storage"] == "encoded bytes"
    assert last["Cr"] >= 40, last
    assert last["delta"] >= -0.015, last
    eq = compare_brevitas_to_golden(model, export_model(model), digits.x_test)
    assert eq.mismatches == 0, eq.first_mismatch


@pytest.mark.slow
def test_binary_mlp_reaches_90_percent_on_digits(digits):
    """Acceptance: a w1a1 (bipolar weights and activations) MLP reaches >= 90%."""
    from quant_train.equality import compare_brevitas_to_golden
    from quant_train.export_ir import export_model
    from quant_train.models import QuantMLP
    from quant_train.train import (
        TrainSettings,
        accuracy,
        predict,
        seed_everything,
        train_classifier,
    )

    seed_everything(0)
    model = QuantMLP(64, [64, 64], 10, weight_bits=1, act_bits=1, input_bits=8)
    train_classifier(model, digits.x_train, digits.y_train, TrainSettings(epochs=40))
    assert accuracy(predict(model, digits.x_test), digits.y_test) >= 0.90
    eq = compare_brevitas_to_golden(model, export_model(model), digits.x_test)
    assert eq.mismatches == 0, eq.first_mismatch


def test_share_is_lossless_when_k_covers_the_levels_and_fine_tunes_only_lossy_layers(digits):
    """4-bit weights have at most 14 non-zero levels: share k=16 changes no integer, runs no
    fine-tuning and says so; with k=3 on one layer only that layer loses levels, the
    others keep every integer although the batch norms are fine-tuned around them."""
    from quant_train.export_ir import quant_ints
    from quant_train.pruning import prunable_layers

    front = [
        {"prune": {"sparsity": 0.6, "fine_tune_epochs": 1}},
        {"quantize": {"weight_bits": 4, "act_bits": 4, "epochs": 2}},
    ]

    def run(share):
        pipe = Pipeline(config(front + share, epochs=2), digits)
        model = pipe.run()
        ints = {n: quant_ints(m.quant_weight()) for n, m in prunable_layers(model)}
        return pipe, ints

    quantized, want = run([])
    lossless, ints = run([{"share": {"clusters": 16, "fine_tune_epochs": 2}}])
    row = lossless.rows[-1]
    assert row.step == "share k=16" and row.detail["lossless"] is True
    assert row.detail["fine_tune_epochs"] == 0
    assert row.accuracy == quantized.rows[-1].accuracy
    for layer in row.detail["layers"]:
        assert layer["lossless"] and len(layer["codebook"]) <= 14
        np.testing.assert_array_equal(ints[layer["layer"]], want[layer["layer"]])

    mixed, ints = run([{"share": {"clusters": [16, 3, 16], "fine_tune_epochs": 1}}])
    row = mixed.rows[-1]
    assert row.detail["lossless"] is False and row.detail["fine_tune_epochs"] == 1
    assert [layer["lossless"] for layer in row.detail["layers"]] == [True, False, True]
    np.testing.assert_array_equal(ints["fc0"], want["fc0"])
    np.testing.assert_array_equal(ints["fc2"], want["fc2"])
    w = ints["fc1"]
    np.testing.assert_array_equal(np.unique(w[w != 0]), row.detail["layers"][1]["codebook"])
    assert len(row.detail["layers"][1]["codebook"]) <= 3


def test_balanced_prune_step_records_nonzeros_per_pe(digits):
    cfg = config(
        [
            {
                "prune": {
                    "sparsity": 0.8,
                    "schedule": [0.5, 0.8],
                    "balance_pes": 4,
                    "fine_tune_epochs": 1,
                }
            },
        ],
        epochs=1,
    )
    pipe = Pipeline(cfg, digits)
    pipe.run()
    row = pipe.rows[-1]
    assert row.step == "prune 80% (global, balanced over 4 PEs)"
    assert row.detail["balance_pes"] == 4
    for name, counts in row.detail["pe_nonzeros"].items():
        assert len(counts) == 4 and max(counts) - min(counts) <= 1, (name, counts)
    weights = 64 * 32 + 32 * 16 + 16 * 10
    assert row.params == pytest.approx(0.2 * weights, abs=2)
    with pytest.raises(ConfigError, match=r"prune.balance_pes = 0 is not allowed; allowed: >= 1"):
        config([{"prune": {"balance_pes": 0}}])
