"""Bring your own Brevitas model: trace, export, level 1 and refusals.

The models here are written in the test (not from the zoo), with their own module names.
Level 1 compares every integer activation and the float32 logits bit for bit on every
test vector; the zoo comparison proves the tracer reads a model exactly as the
hand-written ``graph_plan()`` describes it; the refusals name the module or call and what
to use instead.
"""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from brevitas.nn import (
    QuantConv2d,
    QuantHardTanh,
    QuantIdentity,
    QuantLinear,
    QuantReLU,
    QuantSigmoid,
)
from brevitas.quant import (
    Int8ActPerTensorFixedPoint,
    Int8WeightPerTensorFixedPoint,
    Int32Bias,
    Uint8ActPerTensorFixedPoint,
    Uint8ActPerTensorFixedPointMaxInit,
)
from torch import nn

from hw_gen.passes import lower
from qfab.errors import ExportError
from qfab.golden import compare_levels, quantize_input, run_golden
from quant_train.export_ir import export_model
from quant_train.trace_brevitas import (
    ChannelShuffle,
    compare_traced_to_golden,
    export_brevitas,
    ir_to_nchw,
    load_model_spec,
    nchw_to_ir,
    trace_model,
)
from quant_train.train import TrainSettings, accuracy, seed_everything, train_classifier
from quant_train.zoo import build_model

W4 = {"weight_quant": Int8WeightPerTensorFixedPoint, "weight_bit_width": 4}


def input_quant() -> nn.Module:
    """8-bit unsigned input in [0, 1], scale exactly 2^-8."""
    return QuantIdentity(
        act_quant=Uint8ActPerTensorFixedPointMaxInit,
        bit_width=8,
        max_val=1.0 - 2.0**-8,
        return_quant_tensor=True,
    )


def relu(bits: int = 4) -> nn.Module:
    return QuantReLU(
        act_quant=Uint8ActPerTensorFixedPoint, bit_width=bits, return_quant_tensor=True
    )


class ResidualBlock(nn.Module):
    """relu(x + requant(bn(conv(relu(bn(grouped_conv(x))))))): branches on two scales."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.grouped = QuantConv2d(c, c, 3, padding=1, groups=2, bias=False, **W4)
        self.bn1 = nn.BatchNorm2d(c)
        self.act1 = relu()
        self.conv = QuantConv2d(c, c, 3, padding=1, bias=False, **W4)
        self.bn2 = nn.BatchNorm2d(c)
        self.requant = QuantIdentity(
            act_quant=Int8ActPerTensorFixedPoint, bit_width=5, return_quant_tensor=True
        )
        self.out_act = relu()

    def forward(self, x):
        branch = self.requant(self.bn2(self.conv(self.act1(self.bn1(self.grouped(x))))))
        return self.out_act(x.value + branch.value)  # two scales: add the float values


class DigitsConvNet(nn.Module):
    """1x8x8 digits: stem conv, F.max_pool2d, residual block, nn.MaxPool2d, flatten, fc."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.quant_in = input_quant()
        self.stem = nn.Sequential(
            QuantConv2d(1, width, 3, padding=1, bias=False, **W4), nn.BatchNorm2d(width), relu()
        )
        self.block = ResidualBlock(width)
        self.pool = nn.MaxPool2d(2)
        self.flat = nn.Flatten()
        self.head = QuantLinear(width * 4, 10, bias=True, bias_quant=Int32Bias, **W4)

    def forward(self, x):
        q = F.max_pool2d(self.stem(self.quant_in(x)), 2)
        return self.head(self.flat(self.pool(self.block(q))))


class DenseNet(nn.Module):
    """(64,) vectors: QuantLinear / BN / QuantHardTanh (signed), QuantReLU, .view, fc."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = input_quant()
        self.fc1 = QuantLinear(64, 32, bias=False, **W4)
        self.bn1 = nn.BatchNorm1d(32)
        self.tanh = QuantHardTanh(
            act_quant=Int8ActPerTensorFixedPoint,
            bit_width=3,
            max_val=1.0,
            min_val=-1.0,
            return_quant_tensor=True,
        )
        self.fc2 = QuantLinear(32, 16, bias=False, **W4)
        self.bn2 = nn.BatchNorm1d(16)
        self.act2 = relu(2)
        self.out = QuantLinear(
            16, 10, bias=True, bias_quant=Int32Bias, return_quant_tensor=True, **W4
        )

    def forward(self, x):
        h = self.act2(self.bn2(self.fc2(self.tanh(self.bn1(self.fc1(self.inp(x)))))))
        return self.out(h.view(h.size(0), -1)).value


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These tiny models run ~50x slower when torch's threads fight the other processes
    on a small machine; results do not depend on the thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained_conv(digits):
    """DigitsConvNet trained 3 epochs on digits (seconds): thresholds from real BN stats."""
    seed_everything(0)
    model = DigitsConvNet()
    images = digits.x_train.reshape(-1, 1, 8, 8)
    train_classifier(model, images, digits.y_train, TrainSettings(epochs=3, lr=0.02))
    return model.eval(), export_brevitas(model, (1, 8, 8), {"dataset": "digits"})


def test_conv_net_level1_bit_exact_on_every_test_vector(digits, trained_conv):
    model, graph = trained_conv
    images = digits.x_test.reshape(-1, 1, 8, 8)
    with torch.no_grad():
        acc = accuracy(model(torch.from_numpy(images)).numpy(), digits.y_test)
    assert acc > 0.5, "trained, so batch norm and scales are far from their init"
    ops = [n.op for n in graph.nodes]
    assert ops.count("Conv2d") == 3 and ops.count("Add") == 1 and ops.count("MaxPool") == 2
    names = {n.name for n in graph.nodes}
    assert {"stem_0", "block_grouped", "block_requant", "add", "block_out_act", "head"} <= names
    assert graph.node("block_grouped").attrs["groups"] == 2
    eq = compare_traced_to_golden(model, graph, images)
    assert eq.vectors == len(images) == 360
    assert eq.mismatches == 0, eq.first_mismatch
    # golden on the IR's NHWC layout gives the model's predictions
    gold = run_golden(graph, nchw_to_ir(images))
    with torch.no_grad():
        logits = model(torch.from_numpy(images)).numpy()
    assert np.array_equal(gold.prediction, np.argmax(logits, 1))


def test_level1_reports_a_corrupted_threshold_at_its_layer(digits, trained_conv):
    """The check can fail: one moved threshold of the residual's activation is found."""
    model, graph = trained_conv
    images = digits.x_test.reshape(-1, 1, 8, 8)
    bad = copy.deepcopy(graph)
    t = bad.node("block_out_act").tensors["thresholds"]
    ir = nchw_to_ir(images)
    good_out = run_golden(graph, ir).outputs["block_out_act"]
    # the most used channel's first threshold, moved up by 3: some pixels drop a level
    c = int(np.argmax((good_out.reshape(len(ir), -1, t.shape[0]) == 1).sum((0, 1))))
    t[c, 0] += 3
    eq = compare_traced_to_golden(model, bad, images)
    assert eq.mismatches > 0
    assert eq.first_mismatch["layer"] == "block_out_act"
    assert eq.first_mismatch["channel"] % t.shape[0] == c


def test_dense_model_level1_and_hardtanh():
    seed_everything(1)
    model = DenseNet()
    x = np.random.default_rng(0).random((200, 64)).astype(np.float32)
    model.train()
    with torch.no_grad():  # batch norm statistics that are not the identity
        for _ in range(3):
            model(torch.from_numpy(x))
    graph = export_brevitas(model.eval(), (64,))
    assert [n.name for n in graph.nodes] == [
        "input", "fc1", "tanh", "fc2", "act2", "out", "output",
    ]  # fmt: skip
    assert graph.node("tanh").attrs["offset"] < 0  # signed levels
    eq = compare_traced_to_golden(model, graph, x)
    assert eq.mismatches == 0, eq.first_mismatch


class ThreeChannel(nn.Module):
    """C=3 input, so NCHW and NHWC orders really differ; inline shuffle and a concat."""

    def __init__(self) -> None:
        super().__init__()
        self.q = input_quant()
        self.a = QuantConv2d(3, 4, 3, padding=1, bias=False, **W4)
        self.bn_a, self.act_a = nn.BatchNorm2d(4), relu()
        self.b = QuantConv2d(4, 4, 1, groups=4, bias=False, **W4)  # depthwise
        self.bn_b = nn.BatchNorm2d(4)  # one quantizer for both: concat needs one scale
        self.act_b = QuantReLU(act_quant=self.act_a.act_quant, return_quant_tensor=True)
        self.fc = QuantLinear(8 * 36, 5, bias=True, bias_quant=Int32Bias, **W4)

    def forward(self, x):
        a = self.act_a(self.bn_a(self.a(self.q(x))))
        n, c, h, w = a.value.shape
        s = a.value.reshape(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        b = self.act_b(self.bn_b(self.b(s)))
        return self.fc(torch.flatten(torch.cat([a, b], dim=1), 1))


def test_multichannel_layout_shuffle_and_concat():
    seed_everything(2)
    model = ThreeChannel()
    x = np.random.default_rng(1).random((64, 3, 6, 6)).astype(np.float32)
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(x))
    graph = export_brevitas(model.eval(), (3, 6, 6))
    ops = [n.op for n in graph.nodes]
    assert "ChannelShuffle" in ops and "Concat" in ops
    assert graph.nodes[0].attrs["shape"] == [6, 6, 3]  # NHWC inside the IR
    assert np.array_equal(ir_to_nchw(nchw_to_ir(x), (3, 6, 6)), x)
    eq = compare_traced_to_golden(model, graph, x)
    assert eq.mismatches == 0, eq.first_mismatch
    # the IR fed in NCHW order instead would be wrong: the layout map matters here
    gold_wrong = run_golden(graph, x.reshape(len(x), -1))
    gold_right = run_golden(graph, nchw_to_ir(x))
    assert not np.array_equal(gold_wrong.outputs["input"], gold_right.outputs["input"])


def test_channel_shuffle_module_equals_inline_pattern():
    x = torch.arange(2 * 6 * 2 * 2, dtype=torch.float32).reshape(2, 6, 2, 2)
    n, c, h, w = x.shape
    inline = x.reshape(n, 3, c // 3, h, w).transpose(1, 2).reshape(n, c, h, w)
    assert torch.equal(ChannelShuffle(3)(x), inline)


ZOO = [
    ("mlp", 4, 4),
    ("cnv", 1, 1),
    ("mobilenet", 4, 4),
    ("shufflenet", 2, 2),
    ("squeezenet", 4, 4),
]


@pytest.mark.parametrize(("arch", "wb", "ab"), ZOO, ids=[f"{a}-w{w}a{b}" for a, w, b in ZOO])
def test_traced_zoo_model_gives_the_hand_written_plans_ir(arch, wb, ab):
    """Same ops in the same order, same attrs and tensors: only the names differ.

    The zoo's forward starts from flattened NHWC data (``reshape`` + ``permute`` before
    the input quantizer), so the traced IR takes the same input as the zoo's.
    """
    seed_everything(0)
    shape = (64,) if arch == "mlp" else (8, 8, 1)
    model = build_model(arch, shape, 10, hidden=[16], weight_bits=wb, act_bits=ab, input_bits=8)
    model.train()
    with torch.no_grad():
        model(torch.rand(32, 64))  # non-trivial batch norm statistics
    model.eval()
    want, got = export_model(model), export_brevitas(model, (64,))
    assert [n.op for n in got.nodes] == [n.op for n in want.nodes]
    rename = {a.name: b.name for a, b in zip(want.nodes, got.nodes, strict=True)}
    for a, b in zip(want.nodes, got.nodes, strict=True):
        assert [rename[i] for i in a.inputs] == b.inputs, a.name
        assert a.attrs == b.attrs, a.name
        assert a.tensors.keys() == b.tensors.keys(), a.name
        for k in a.tensors:
            assert np.array_equal(a.tensors[k], b.tensors[k]), (a.name, k)
    if arch == "shufflenet":
        assert got.node("convs_1").op == "Conv2d" and "add_act" in rename.values()


class BiasConv(nn.Module):
    """Hidden layers with quantized biases (Int32Bias) and no batch norm."""

    def __init__(self) -> None:
        super().__init__()
        self.q = input_quant()
        self.conv = QuantConv2d(2, 4, 3, bias=True, bias_quant=Int32Bias, **W4)
        self.act = relu()
        self.fc = QuantLinear(16, 8, bias=True, bias_quant=Int32Bias, **W4)
        self.act2 = relu()
        self.head = QuantLinear(8, 3, bias=True, bias_quant=Int32Bias, **W4)

    def forward(self, x):
        h = torch.flatten(self.act(self.conv(self.q(x))), 1)
        return self.head(self.act2(self.fc(h)))


def test_hidden_layer_bias_is_folded_into_the_thresholds():
    seed_everything(4)
    model = BiasConv().eval()
    with torch.no_grad():
        model.conv.bias.copy_(torch.linspace(-0.6, 0.6, 4))
        model.fc.bias.copy_(torch.linspace(-0.8, 0.8, 8))
    x = np.random.default_rng(3).random((60, 2, 4, 4)).astype(np.float32)
    graph = export_brevitas(model, (2, 4, 4))
    eq = compare_traced_to_golden(model, graph, x)
    assert eq.mismatches == 0, eq.first_mismatch
    x_int = quantize_input(graph.nodes[0], nchw_to_ir(x))
    assert compare_levels(graph, lower(graph, target_cycles=16), x_int) is None
    # the biases matter: without them the IR's activations would differ
    plain = copy.deepcopy(model)
    with torch.no_grad():
        plain.conv.bias.zero_()
        plain.fc.bias.zero_()
    assert compare_traced_to_golden(plain, graph, x).mismatches > 0


class ImageMLP(nn.Module):
    """An MLP on 3x4x4 images: flattened after the quantizer (nn.Flatten) or before it."""

    def __init__(self, flatten_first: bool) -> None:
        super().__init__()
        self.flatten_first = flatten_first
        self.q, self.flat = input_quant(), nn.Flatten()
        self.fc, self.bn, self.act = _fc(48, 8), nn.BatchNorm1d(8), relu()
        self.head = QuantLinear(8, 3, bias=True, bias_quant=Int32Bias, **W4)

    def forward(self, x):
        q = self.q(x.view(x.size(0), -1)) if self.flatten_first else self.flat(self.q(x))
        return self.head(self.act(self.bn(self.fc(q))))


@pytest.mark.parametrize("flatten_first", [False, True])
def test_image_mlp_layouts(flatten_first):
    seed_everything(3)
    model = ImageMLP(flatten_first)
    x = np.random.default_rng(2).random((40, 3, 4, 4)).astype(np.float32)
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(x))
    graph = export_brevitas(model.eval(), (3, 4, 4))
    ops = [n.op for n in graph.nodes]
    first = ["Dense", "MultiThreshold"] if flatten_first else ["Flatten", "Dense"]
    assert ops[:3] == ["InputQuant", *first]
    traced = trace_model(model, (3, 4, 4))
    # flattened before the quantizer: the IR input is PyTorch's NCHW flatten, else NHWC
    want = x.reshape(len(x), -1) if flatten_first else nchw_to_ir(x)
    assert np.array_equal(traced.to_ir(x), want)
    eq = compare_traced_to_golden(model, graph, x)
    assert eq.mismatches == 0, eq.first_mismatch


# --- refusals ------------------------------------------------------------------------------


class Seq(nn.Module):
    """input quantizer (unless ``quant_in`` is False), then ``body``, then ``tail``."""

    def __init__(self, body: list[nn.Module], quant_in: bool = True, tail=None) -> None:
        super().__init__()
        self.quant_in = input_quant() if quant_in else nn.Identity()
        self.blocks = nn.Sequential(*body)
        self.tail = tail

    def forward(self, x):
        y = self.blocks(self.quant_in(x))
        return self.tail(y) if self.tail is not None else y


def _fc(i: int, o: int, **kw) -> nn.Module:
    return QuantLinear(i, o, bias=kw.pop("bias", False), **{**W4, **kw})


REFUSALS = {
    "unsupported_module": (
        lambda: Seq([_fc(8, 8), nn.BatchNorm1d(8), nn.Sigmoid(), _fc(8, 3)]),
        ["layer 'blocks.2' (nn.Sigmoid): not supported", "QuantReLU"],
    ),
    "unsupported_brevitas_module": (
        lambda: Seq([_fc(8, 8), QuantSigmoid(return_quant_tensor=True), _fc(8, 3)]),
        ["layer 'blocks.1' (QuantSigmoid): not supported", "QuantHardTanh"],
    ),
    "unsupported_call": (
        lambda: Seq([_fc(8, 8)], tail=torch.sigmoid),
        ["call torch.sigmoid ('sigmoid'): not supported", "QuantReLU"],
    ),
    "unsupported_functional": (
        lambda: Seq([_fc(8, 8), nn.BatchNorm1d(8), relu()], tail=F.gelu),
        ["call F.gelu ('gelu'): not supported", "QuantReLU"],
    ),
    "softmax_at_the_end": (
        lambda: Seq([_fc(8, 3)], tail=nn.LogSoftmax(dim=1)),
        ["layer 'tail' (nn.LogSoftmax): softmax is not exported", "return the classifier's"],
    ),
    "float_weight_scale": (
        lambda: Seq([QuantLinear(8, 3, bias=False)]),
        [
            "layer 'blocks.0' (QuantLinear) weight: scale",
            "not a power of two",
            "Int8WeightPerTensorFixedPoint",
        ],
    ),
    "float_act_scale": (
        lambda: Seq([_fc(8, 8), nn.BatchNorm1d(8), QuantReLU(), _fc(8, 3)]),
        ["activation 'blocks.2' (QuantReLU): scale", "not a power of two", "FixedPoint"],
    ),
    "float_bias": (
        lambda: Seq([_fc(8, 3, bias=True)]),
        ["layer 'blocks.0' (QuantLinear): float (unquantized) bias", "bias_quant=Int32Bias"],
    ),
    "float_linear": (
        lambda: Seq([_fc(8, 8), relu(), nn.Sequential(nn.Linear(8, 3))]),
        [
            "layer 'blocks.2.0' (nn.Linear): not quantized",
            "brevitas.nn.QuantLinear with a *FixedPoint weight quantizer",
        ],
    ),
    "float_conv": (
        lambda: Seq([nn.Conv2d(1, 2, 3)]),
        ["layer 'blocks.0' (nn.Conv2d): not quantized", "brevitas.nn.QuantConv2d"],
    ),
    "float_activation": (
        lambda: Seq([_fc(8, 8), nn.BatchNorm1d(8), nn.ReLU(), _fc(8, 3)]),
        ["layer 'blocks.2' (nn.ReLU): float activation", "brevitas.nn.QuantReLU"],
    ),
    "no_input_quantizer": (
        lambda: Seq([_fc(8, 3)], quant_in=False),
        [
            "layer 'blocks.0' (QuantLinear) reads the float model input: no input quantizer",
            "brevitas.nn.QuantIdentity",
        ],
    ),
    "layer_after_layer": (
        lambda: Seq([_fc(8, 8), _fc(8, 3)]),
        ["layer 'blocks.1' (QuantLinear): its input 'blocks.0' is not quantized", "QuantReLU"],
    ),
    "requantized_activation": (
        lambda: Seq([_fc(8, 8), relu(), input_quant(), _fc(8, 3)]),
        ["activation 'blocks.2' (QuantIdentity): quantizes 'blocks.1'", "already a quantized"],
    ),
    "pool_stride": (
        lambda: Seq([QuantConv2d(1, 2, 3, bias=False, **W4), relu(), nn.MaxPool2d(3, 1)]),
        ["layer 'blocks.2' (nn.MaxPool2d): max pool kernel 3, stride 1", "stride k"],
    ),
    "ends_in_activation": (
        lambda: Seq([_fc(8, 3), relu()]),
        ["forward returns 'blocks.1'", "QuantLinear classifier"],
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refused_before_export_naming_the_module(case):
    build, phrases = REFUSALS[case]
    model = build()
    shape = (1, 6, 6) if case in ("float_conv", "pool_stride") else (8,)
    with pytest.raises(ExportError) as err:
        trace_model(model, shape)  # refused while tracing: nothing is exported
    for phrase in phrases:
        assert phrase in str(err.value), str(err.value)
    with pytest.raises(ExportError, match="^" + re.escape(str(err.value)[:40])):
        export_brevitas(model, shape)


class Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q, self.fc = input_quant(), _fc(8, 3, bias=True, bias_quant=Int32Bias)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow
            x = x * 0.5
        return self.fc(self.q(x))


def test_untraceable_forward_is_refused():
    with pytest.raises(ExportError, match=r"Branchy.forward cannot be traced with torch.fx"):
        export_brevitas(Branchy(), (8,))


def test_wrong_input_shape_is_refused_with_the_forward_error():
    model = Seq([_fc(8, 3, bias=True, bias_quant=Int32Bias)])
    with pytest.raises(ExportError, match=r"forward fails on an input of shape \[2, 9\]"):
        export_brevitas(model, (9,))


# --- load_model_spec -----------------------------------------------------------------------

MODEL_FILE = """
from torch import nn
from brevitas.nn import QuantIdentity, QuantLinear
from brevitas.quant import Int32Bias, Int8WeightPerTensorFixedPoint
from brevitas.quant import Uint8ActPerTensorFixedPointMaxInit


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = QuantIdentity(act_quant=Uint8ActPerTensorFixedPointMaxInit, bit_width=4,
                                 max_val=1.0 - 2.0**-4, return_quant_tensor=True)
        self.fc = QuantLinear(WIDTH, 3, bias=True, bias_quant=Int32Bias,
                              weight_quant=Int8WeightPerTensorFixedPoint, weight_bit_width=4)

    def forward(self, x):
        return self.fc(self.inp(x))


def build():
    return Tiny()
"""


def _model_file(tmp_path, width: int = 6):
    path = tmp_path / f"user_model_{width}.py"
    path.write_text(MODEL_FILE.replace("WIDTH", str(width)))
    return path


def test_load_model_spec_builds_and_loads_weights(tmp_path):
    path = _model_file(tmp_path)
    trained = load_model_spec(f"{path}:build", None)
    with torch.no_grad():
        trained.fc.weight.copy_(torch.linspace(-1, 1, 18).reshape(3, 6))
    torch.save(trained.state_dict(), tmp_path / "w.pt")
    model = load_model_spec(f"{path}:build", tmp_path / "w.pt")
    assert torch.equal(model.fc.weight, trained.fc.weight)
    assert not model.training
    graph = export_brevitas(model, (6,))
    x = np.random.default_rng(0).random((20, 6)).astype(np.float32)
    assert compare_traced_to_golden(model, graph, x).mismatches == 0


def test_load_model_spec_errors_name_the_file(tmp_path):
    path = _model_file(tmp_path)
    with pytest.raises(ExportError, match="nope.py: model file not found"):
        load_model_spec(f"{tmp_path / 'nope.py'}:build", None)
    with pytest.raises(ExportError, match=r"no function 'make'; defined there: \['build'\]"):
        load_model_spec(f"{path}:make", None)
    with pytest.raises(ExportError, match="expected 'path/to/model.py:function'"):
        load_model_spec(str(path), None)
    with pytest.raises(ExportError, match="w.pt: weights file not found"):
        load_model_spec(f"{path}:build", tmp_path / "w.pt")
    other = load_model_spec(f"{_model_file(tmp_path, 5)}:build", None)
    torch.save(other.state_dict(), tmp_path / "w5.pt")
    with pytest.raises(
        ExportError,
        match=r"w5.pt: does not match .*shape mismatches fc.weight \[3, 5\] \(model \[3, 6\]\)",
    ):
        load_model_spec(f"{path}:build", tmp_path / "w5.pt")
    torch.save({"x": torch.zeros(1)}, tmp_path / "wx.pt")
    with pytest.raises(ExportError, match=r"wx.pt: does not match .*unexpected keys \['x'\]"):
        load_model_spec(f"{path}:build", tmp_path / "wx.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(ExportError, match="junk.pt: cannot be read as a PyTorch state_dict"):
        load_model_spec(f"{path}:build", tmp_path / "junk.pt")
    broken = tmp_path / "broken.py"
    broken.write_text("import not_a_module_anywhere\n")
    with pytest.raises(ExportError, match="broken.py: importing it failed"):
        load_model_spec(f"{broken}:build", None)


# --- level 2: the traced model's hardware ---------------------------------------------------


@pytest.mark.slow
def test_conv_net_level2_hardware_graph_and_icarus_rtl_equal_golden(digits, trained_conv, tmp_path):
    from tests.sim.conftest import input_vectors, simulate

    _, graph = trained_conv
    settings = {"target_cycles": 64}
    x_int = quantize_input(graph.nodes[0], nchw_to_ir(digits.x_test.reshape(-1, 1, 8, 8)))
    hw = lower(graph, **settings)
    units = {n.name: n.op for n in hw.nodes}
    assert (units["add"], units["pool"], units["block_grouped"]) == (
        "AddStreams", "StreamingMaxPool", "MVAU",
    )  # fmt: skip
    assert compare_levels(graph, hw, x_int) is None  # hardware graph == model graph
    manifest, _, eq = simulate(graph, settings, tmp_path, "icarus", vectors=6)
    assert eq["vectors"] == len(input_vectors(graph, 6)) > 6  # + the extreme vectors
    assert eq["mismatches"] == 0, eq["first_mismatch"]
    tapped = {t["model_node"] for t in manifest["taps"]}
    assert {"block_requant", "block_out_act"} <= tapped, tapped  # inner layers checked too
