"""hls4ml's own route (Brevitas QONNX -> qonnx -> hls4ml Vitis -> g++) against golden.

Nothing here expects a mismatch count: the route is a measurement, and what is checked is
that the measurement is what it says (counts equal a recount from the returned logits,
each precision is its own compiled project, failures are reported, not raised).
"""

from __future__ import annotations

import numpy as np
import pytest

from qfab.golden import run_golden
from quant_train.export_ir import export_model
from quant_train.hls4ml_route import (
    STEPS,
    clean_for_hls4ml,
    compare_logits,
    export_brevitas_qonnx,
    run_hls4ml,
)
from quant_train.models import QuantMLP
from quant_train.train import TrainSettings, seed_everything, train_classifier
from quant_train.zoo import build_model


@pytest.fixture(scope="module")
def tiny_mlp(digits):
    """A w2a2 64-24-13-10 MLP after 2 epochs, its IR and golden's logits on 120 vectors."""
    seed_everything(0)
    model = QuantMLP(
        digits.features, [24, 13], digits.classes, weight_bits=2, act_bits=2, input_bits=8
    )
    train_classifier(model, digits.x_train, digits.y_train, TrainSettings(epochs=2, seed=0))
    model.eval()
    x = digits.x_test[:120]
    return model, x, run_golden(export_model(model), x).logits


def recount(y: np.ndarray, gold: np.ndarray) -> tuple[int, float, int]:
    """Vectors with any logit differing, max |delta|, argmax changes: plain NumPy."""
    differ = sum(1 for a, b in zip(y, gold, strict=True) if any(a != b))
    argmax = sum(1 for a, b in zip(y, gold, strict=True) if np.argmax(a) != np.argmax(b))
    return differ, float(np.max(np.abs(y - gold))), argmax


def test_compare_logits_counts_vectors_and_argmax():
    gold = np.arange(40, dtype=np.float32).reshape(4, 10) * 0.25
    y = gold.astype(np.float64)
    assert compare_logits(y, gold).differing == 0
    y[1, 2] += 0.125  # one logit off, argmax (the last class) unchanged
    y[3, 0] = 100.0  # vector 3's argmax moves to class 0
    c = compare_logits(y, gold)
    assert (c.vectors, c.differing, c.argmax_differing, c.first_differing) == (4, 2, 1, 1)
    assert c.max_abs_delta == 100.0 - 7.5
    with pytest.raises(ValueError, match="shape"):
        compare_logits(y[:3], gold)


@pytest.mark.slow
def test_default_route_is_measured_against_golden(tiny_mlp, tmp_path):
    model, x, gold = tiny_mlp
    run = run_hls4ml(model, x, tmp_path)
    assert run.ok, run.describe()
    assert run.io_type == "io_parallel"  # a fully connected net
    assert run.precision == "fixed<16,6>"  # hls4ml's own default: the point of the route
    assert list(run.seconds) == list(STEPS) and all(s >= 0 for s in run.seconds.values())
    assert run.logits.shape == gold.shape == (120, 10)
    assert (run.output_dir / "firmware").is_dir()
    c = compare_logits(run.logits, gold)
    assert (c.differing, c.max_abs_delta, c.argmax_differing) == recount(run.logits, gold)
    assert c.vectors == 120


@pytest.mark.slow
def test_wide_precision_is_a_separate_measurement(tiny_mlp, tmp_path):
    """fixed<32,16> is its own compiled project; whether it is exact is measured, not assumed."""
    model, x, gold = tiny_mlp
    run = run_hls4ml(model, x, tmp_path, default_precision="fixed<32,16>")
    assert run.ok, run.describe()
    assert run.precision == "fixed<32,16>"
    defines = (run.output_dir / "firmware" / "defines.h").read_text()
    assert "ap_fixed<32,16>" in defines and "ap_fixed<16,6>" not in defines
    c = compare_logits(run.logits, gold)
    assert (c.differing, c.max_abs_delta, c.argmax_differing) == recount(run.logits, gold)


def test_a_model_hls4ml_cannot_take_is_a_result(digits, tmp_path):
    """ShuffleNet's grouped 1x1 convolutions: hls4ml takes every group != 1 as depthwise."""
    seed_everything(0)
    net = build_model("shufflenet", digits.image_shape, digits.classes, weight_bits=2, act_bits=2)
    run = run_hls4ml(net, digits.x_test[:4], tmp_path)
    assert not run.ok and run.logits is None
    assert run.failed_step == "convert", run.describe()
    assert "Depth multiplier must be an integer" in run.error
    assert run.describe().startswith("hls4ml: not convertible at convert: ValueError")
    assert "compile" not in run.seconds  # the later steps did not run


def test_a_bad_work_dir_fails_at_export_without_raising(tiny_mlp, tmp_path):
    model, x, _ = tiny_mlp
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    run = run_hls4ml(model, x[:2], blocker / "work")
    assert run.failed_step == "export" and run.logits is None
    assert run.error.startswith(("FileExistsError", "NotADirectoryError")), run.error
    with pytest.raises(ValueError, match="io_type"):
        run_hls4ml(model, x[:2], tmp_path, io_type="io_serial")


def test_image_nets_enter_hls4ml_as_nhwc_images(digits, tmp_path):
    """The flat-to-NHWC Reshape in front of a conv net is removed (hls4ml's io_stream fails
    on it) and hls4ml's input becomes the image shape, channels last."""
    seed_everything(0)
    net = build_model("lenet5", digits.image_shape, digits.classes, weight_bits=2, act_bits=2)
    path = export_brevitas_qonnx(net, digits.x_test[:1], tmp_path / "lenet5.onnx")
    mw, image_shape = clean_for_hls4ml(path)
    assert image_shape == tuple(digits.image_shape) == (8, 8, 1)
    assert mw.get_tensor_shape(mw.graph.input[0].name) == [1, 8, 8, 1]
    assert "Reshape" not in [n.op_type for n in mw.graph.node]
    assert mw.graph.node[0].op_type == "Quant"  # the input quantizer reads the image directly
