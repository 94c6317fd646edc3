"""QONNX export == golden, node for node, run by qonnx's own executor (an independent one).

Every design of the hardware tests (every op: dense, conv, depthwise, grouped, pool,
flatten, add with shifts, concat, shuffle, bipolar, signed, falling channels), a random
MLP, and real Brevitas zoo models exported to the IR are written to ONNX, read back from
the file, run with ``qonnx.core.onnx_exec.execute_onnx`` and compared with
``run_golden`` on every node's integers (and the logits bit for bit), on vectors that
include the input range's extremes and the first layer's accumulator extremes.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper

from qfab.errors import ExportError
from qfab.extremes import extreme_vectors
from qfab.golden import run_golden
from qfab.ir import Graph
from qfab.random_graph import random_mlp_graph
from qfab.values import input_range
from quant_train.export_qonnx import (
    GLOBAL_IN,
    compare_qonnx_to_golden,
    export_qonnx,
    load_qonnx,
    qonnx_model,
    run_qonnx,
)
from tests.hw_gen.designs import DESIGNS
from tests.hw_gen.falling_designs import FALLING_DESIGNS

ALL_DESIGNS = {**DESIGNS, **FALLING_DESIGNS}


def extreme_inputs(graph: Graph, vectors: int = 40, seed: int = 0) -> np.ndarray:
    """Input integers: all-low, all-high, two checkerboards of both, the extreme vectors of
    :mod:`qfab.extremes` (every first-layer accumulator at its min and max per channel,
    deeper ones as far as reached), and uniform random ones."""
    first = graph.nodes[0]
    lo, hi = input_range(int(first.attrs["bits"]), bool(first.attrs["signed"]))
    feats = int(first.attrs["features"])
    rows = [np.full(feats, lo), np.full(feats, hi)]
    alt = np.arange(feats) % 2 == 0
    rows += [np.where(alt, lo, hi), np.where(alt, hi, lo)]
    rows += list(extreme_vectors(graph).vectors)
    rng = np.random.default_rng(seed)
    rows += list(rng.integers(lo, hi + 1, size=(max(vectors - len(rows), 4), feats)))
    return np.stack(rows).astype(np.int64)


def float_inputs(graph: Graph, x_int: np.ndarray) -> np.ndarray:
    """Float inputs that the input quantizer maps back to exactly ``x_int`` (checked)."""
    first = graph.nodes[0]
    x = (x_int * np.float32(first.attrs["scale"])).astype(np.float32)
    assert np.array_equal(run_golden(graph, x).outputs[first.name], x_int)
    return x


def assert_qonnx_equals_golden(graph: Graph, tmp_path, x: np.ndarray) -> onnx.ModelProto:
    """Export to a file, read it back, run it with qonnx: every node equals golden."""
    path = export_qonnx(graph, tmp_path / "model.onnx")
    model = load_qonnx(path)
    check = compare_qonnx_to_golden(graph, model, x)
    assert check.vectors == len(x)
    assert check.mismatches == 0, check.first_mismatch
    # the comparison really covered every node (not only the output)
    got = run_qonnx(model, x[:2])
    assert {n.name for n in graph.nodes} <= set(got)
    return model


@pytest.mark.parametrize("name", list(ALL_DESIGNS))
def test_every_design_runs_equal_to_golden_in_qonnx(name, tmp_path):
    graph, _ = ALL_DESIGNS[name]()
    x_int = extreme_inputs(graph)
    model = assert_qonnx_equals_golden(graph, tmp_path, float_inputs(graph, x_int))
    # FINN's MultiThreshold is used for every activation, annotated with its exact type
    wrapper = ModelWrapper(model)
    mts = [n for n in graph.nodes if n.op == "MultiThreshold"]
    assert len(wrapper.get_nodes_by_op_type("MultiThreshold")) == len(mts)
    for n in mts:
        dt = wrapper.get_tensor_datatype(n.name)
        out = run_golden(graph, float_inputs(graph, x_int)).outputs[n.name]
        assert dt.allowed(out.min()) and dt.allowed(out.max()), (n.name, dt.name)
        if n.attrs.get("bipolar"):
            assert dt == DataType["BIPOLAR"]


def test_random_mlp_signed_input_and_falling_channels(tmp_path):
    graph = random_mlp_graph(
        20, [16, 12], 5, weight_bits=4, act_bits=3, input_bits=6, signed_input=True,
        signed_acts=True, falling=0.5, seed=9,
    )  # fmt: skip
    assert_qonnx_equals_golden(graph, tmp_path, float_inputs(graph, extreme_inputs(graph)))


def test_signed_one_bit_input_avoids_qonnx_quant_bipolar_quirk(tmp_path):
    """qonnx's Quant turns a signed 1-bit quantizer into ±1; the IR's range is [-1, 0]."""
    graph = random_mlp_graph(8, [6], 3, weight_bits=2, input_bits=1, signed_input=True, seed=4)
    x_int = extreme_inputs(graph)
    assert set(np.unique(x_int)) == {-1, 0}
    assert_qonnx_equals_golden(graph, tmp_path, float_inputs(graph, x_int))


def test_non_power_of_two_input_scale_divides_as_golden(tmp_path):
    graph = random_mlp_graph(10, [8], 4, weight_bits=3, input_bits=5, seed=2)
    graph.nodes[0].attrs["scale"] = 0.3
    x = np.random.default_rng(1).uniform(-0.5, 10.0, size=(64, 10)).astype(np.float32)
    x[0], x[1] = 0.15, 0.45  # halfway cases (round half to even)
    model = assert_qonnx_equals_golden(graph, tmp_path, x)
    assert "Div" in [n.op_type for n in model.graph.node]


def test_logits_equal_golden_bit_for_bit(tmp_path):
    graph, _ = DESIGNS["lenet_like"]()
    x = float_inputs(graph, extreme_inputs(graph))
    model = qonnx_model(graph)
    logits = run_qonnx(model, x)[graph.nodes[-1].name]
    assert logits.dtype == np.float32
    assert np.array_equal(logits, run_golden(graph, x).logits)


def test_qonnx_cleanup_and_datatype_inference_keep_the_results(tmp_path):
    """What a FINN user runs first (qonnx's cleanup: shape inference, constant folding,
    unique names; then InferDataTypes) accepts the file and computes the same logits."""
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.util.cleanup import cleanup_model

    graph, _ = DESIGNS["branchy"]()
    x = float_inputs(graph, extreme_inputs(graph))
    model = cleanup_model(ModelWrapper(str(export_qonnx(graph, tmp_path / "model.onnx"))))
    model = model.transform(InferDataTypes())
    assert model.get_tensor_datatype(model.graph.input[0].name) == DataType["FLOAT32"]
    mt = model.get_nodes_by_op_type("MultiThreshold")
    assert [model.get_tensor_datatype(n.output[0]).name for n in mt] == ["UINT2"] * len(mt)
    logits = run_qonnx(model.model, x)[model.graph.output[0].name]
    assert np.array_equal(logits, run_golden(graph, x).logits)


def test_a_corrupted_threshold_in_the_file_is_found_at_its_node(tmp_path):
    """The check can fail: one channel's thresholds moved in model.onnx is reported at
    that MultiThreshold node and channel, before any later node."""
    graph, _ = DESIGNS["lenet_like"]()
    x = float_inputs(graph, extreme_inputs(graph))
    path = export_qonnx(graph, tmp_path / "model.onnx")
    model = load_qonnx(path)
    init = next(t for t in model.graph.initializer if t.name == "mt1/thresholds")
    t = numpy_helper.to_array(init).copy()
    t[3] = t[3] - 1000  # every level reached on channel 3
    init.CopyFrom(numpy_helper.from_array(t, init.name))
    path.write_bytes(model.SerializeToString())
    check = compare_qonnx_to_golden(graph, load_qonnx(path), x)
    assert check.mismatches > 0
    assert check.first_mismatch.startswith("node 'mt1' (MultiThreshold), vector ")
    assert "channel 3: golden " in check.first_mismatch


def _bypass(model: onnx.ModelProto, tensor: str) -> None:
    """Remove the ONNX node making ``tensor``; its readers read that node's first input."""
    node = next(n for n in model.graph.node if n.output[0] == tensor)
    for reader in model.graph.node:
        reader.input[:] = [node.input[0] if i == tensor else i for i in reader.input]
    model.graph.node.remove(node)


@pytest.mark.parametrize(
    ("design", "step", "found_at"),
    [
        ("lenet_like", "flat6/nhwc", "flat6"),  # flatten NCHW as PyTorch would
        ("lenet_falling", "mt0/directed", "mt0"),  # falling channels compared as rising
        ("branchy", "add8/shifted0", "add8"),  # the residual add without its shift
    ],
)
def test_each_layout_and_sign_step_matters(design, step, found_at):
    """The check can fail where the export's own steps matter: skipping the NHWC
    transpose, the direction Mul or an Add's shift is reported at that node."""
    graph, _ = ALL_DESIGNS[design]()
    x = float_inputs(graph, extreme_inputs(graph))
    model = qonnx_model(graph)
    assert compare_qonnx_to_golden(graph, model, x).mismatches == 0
    _bypass(model, step)
    check = compare_qonnx_to_golden(graph, model, x)
    assert check.mismatches > 0
    assert check.first_mismatch.startswith(f"node '{found_at}' ("), check.first_mismatch


def test_file_is_written_atomically_and_reads_back(tmp_path):
    graph, _ = DESIGNS["branchy"]()
    path = export_qonnx(graph, tmp_path / "sub" / "model.onnx")
    assert [p.name for p in path.parent.iterdir()] == ["model.onnx"]
    model = load_qonnx(path)
    onnx.checker.check_model(model)
    assert model.graph.input[0].name == GLOBAL_IN
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 4, 4]  # NCHW of the IR's [4, 4, 3], batch 1 for FINN


def test_values_beyond_float32_are_refused_naming_the_node(tmp_path):
    graph = random_mlp_graph(300, [8], 4, weight_bits=8, act_bits=2, input_bits=16, seed=0)
    with pytest.raises(ExportError, match=r"node 'fc0' \(Dense\).*2\^24"):
        export_qonnx(graph, tmp_path / "model.onnx")
    assert not list(tmp_path.iterdir()), "nothing written for a refused graph"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: qonnx_model("model.qfab.npz"), "needs a qfab Graph, got str"),
        (lambda tmp: qonnx_model(random_mlp_graph(4, [3], 2), batch=0), "batch = 0"),
        (lambda tmp: load_qonnx(tmp / "missing.onnx"), "QONNX file not found"),
        (lambda tmp: load_qonnx(_truncated(tmp)), "not an ONNX model"),
        (
            lambda tmp: run_qonnx(qonnx_model(random_mlp_graph(4, [3], 2)), np.zeros((2, 5))),
            r"input shape \[2, 5\], the model takes \[N, 4\]",
        ),
        (lambda tmp: qonnx_model(_unknown_attr()), "unknown attr|not allowed"),
    ],
)
def test_bad_input_gives_a_clear_error(tmp_path, make, message):
    with pytest.raises(ExportError, match=message):
        make(tmp_path)


def _truncated(tmp_path):
    path = export_qonnx(random_mlp_graph(6, [4], 2), tmp_path / "model.onnx")
    path.write_bytes(path.read_bytes()[:50])
    return path


def _unknown_attr() -> Graph:
    graph = random_mlp_graph(6, [4], 2)
    graph.nodes[1].attrs["colour"] = "red"
    return graph


def _flip_half_the_batch_norms(model) -> int:
    """Negate every other channel's batch-norm weight: falling channels in every layer."""
    import torch

    from quant_train.export_ir import graph_plan

    norms = [step["bn"] for step in graph_plan(model) if step.get("bn") is not None]
    with torch.no_grad():
        for bn in norms:
            bn.weight[::2] *= -1
    return len(norms)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("arch", "wb", "ab", "falling"),
    [
        ("tfc", 1, 1, False),
        ("tfc", 2, 2, True),
        ("sfc", 4, 4, False),
        ("lenet5", 4, 4, False),
        ("lenet5", 1, 1, True),
        ("lenet5", 3, 2, True),
        ("mobilenet", 4, 4, True),
        ("shufflenet", 2, 2, False),
        ("squeezenet", 4, 4, True),
    ],
)
def test_zoo_models_from_brevitas_run_equal_to_golden_in_qonnx(
    digits, tmp_path, arch, wb, ab, falling
):
    """Real Brevitas zoo models (one short epoch on part of digits), exported to the IR,
    then to QONNX: qonnx == golden on every node for every test vector and the extremes."""
    from quant_train.export_ir import export_model
    from quant_train.train import TrainSettings, seed_everything, train_classifier
    from quant_train.zoo import IMAGE_ARCHS, build_model

    seed_everything(0)
    shape = digits.image_shape if arch in IMAGE_ARCHS else (digits.features,)
    model = build_model(arch, shape, digits.classes, weight_bits=wb, act_bits=ab)
    train_classifier(model, digits.x_train[:400], digits.y_train[:400], TrainSettings(epochs=1))
    if falling:
        assert _flip_half_the_batch_norms(model) >= 2
    graph = export_model(model)
    assert falling == any("direction" in n.tensors for n in graph.nodes)
    x = np.concatenate([digits.x_test, float_inputs(graph, extreme_inputs(graph))])
    assert_qonnx_equals_golden(graph, tmp_path, x)
