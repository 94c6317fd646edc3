"""The threshold theorem, enumerated: exported thresholds == Brevitas on every accumulator.

The exporter finds thresholds by bisection on the model's own eval-mode modules, and
level 1 of the equality then checks data vectors only. Here nothing is sampled: for every
``MultiThreshold`` of a zoo model and every channel, *every* integer accumulator in the
channel's reachable range (``qfab.ranges.node_ranges`` of the node's input) goes

(a) through the layer's own Brevitas batch norm and activation quantizer in eval mode,
    fed ``acc * acc_scale`` in float32 (the layer's exact float output for power-of-two
    scales), convolutions in their real ``[N, C, OH, OW]`` shape with a different
    accumulator at every pixel, as the real forward has them; and
(b) through the exported ``MultiThreshold`` executed by qfab's golden op,

and the two integers must be equal. ``acc_scale`` is derived here from Brevitas alone (the
layer's quant weight scale times the scale of the quant tensor it receives), not from the
exporter's helpers, so a wrong scale in the exporter cannot hide itself. Which batch norm
and activation belong to which ``MultiThreshold`` is taken from the exporter's
``graph_plan`` (the one thing shared with the code under test): a wrong pairing there
would be repeated here, and only level 1 (Brevitas == golden on data) would see it.

The models are untrained, with batch-norm running statistics and affine parameters drawn
at random (negative slopes, a constant channel, means and spreads around and beyond what
random images give), so thresholds sit inside the ranges and some channels fall. One model is
trained for an epoch on digits, for realistic statistics.

Coverage: weight/activation bits 1, 2 and 4 for every zoo family (MLP, LeNet-5, CNV,
MobileNet-, ShuffleNet- and SqueezeNet-like; 8-bit inputs, 8x8 images, width 8), the
complete range of every layer. At 8 bits golden compares each value with 255 thresholds
(about 0.8 s per million values) and LeNet-5 / CNV / MobileNet / SqueezeNet reach 8e6 to
4e8 values, so 8 bits enumerates the complete ranges of the MLP (about 4.8e6 values), the
ShuffleNet-like net (4.5e6, with its residual add) and LeNet-5's two convolutions (1e7),
as ``LAYERS_AT_8_BITS`` names them. LeNet-5's fully connected layers, CNV, MobileNet and
SqueezeNet at 8 bits are not covered here: that is said, not sampled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from qfab.golden import multi_threshold
from qfab.ir import Graph, Node, infer_shapes
from qfab.ranges import IntRange, node_ranges
from quant_train.export_ir import export_model, graph_plan
from quant_train.models import QuantMLP
from quant_train.train import TrainSettings, seed_everything, train_classifier
from quant_train.zoo import build_model

#: Accumulator values evaluated per batch (all channels together).
CHUNK = 1_000_000
#: float32 holds every integer below 2^24: beyond it acc * scale would not be exact.
FLOAT32_EXACT = 2**24
#: Key of the input quantizer's scale beside the activations' (keyed by module id).
INPUT_KEY = -1


@dataclass
class Layer:
    """One ``MultiThreshold`` and the Brevitas modules it must reproduce."""

    mt: str  # IR node name
    bn: nn.Module | None
    act: nn.Module
    acc_scale: np.ndarray  # [C] float64, powers of two
    spatial: tuple[int, int] | None  # (OH, OW) of a convolution's output, None for dense


def brevitas_ints(qt: Any) -> np.ndarray:
    """Integers of a Brevitas quant tensor, ``round(value / scale) + zero_point``."""
    return (torch.round(qt.value / qt.scale) + qt.zero_point).numpy().astype(np.int64)


def _plan_producers(plan: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Plan step by every name it outputs (``mt``, ``out``)."""
    out: dict[str, dict[str, Any]] = {}
    for step in plan:
        for key in ("mt", "out"):
            if key in step:
                out[step[key]] = step
    return out


def _producer_scale(
    name: str, producers: dict[str, dict[str, Any]], out_scale: dict[int, float]
) -> float:
    """Quant scale of the tensor named ``name``: the activation (or input quantizer) that
    made it, following pools, shuffles and flattens back to it."""
    if name == "input":
        return out_scale[INPUT_KEY]
    step = producers[name]
    if "act" in step:
        return out_scale[id(step["act"])]
    if step["kind"] == "concat":
        return _producer_scale(step["inputs"][0], producers, out_scale)
    return _producer_scale(step["input"], producers, out_scale)


def brevitas_layers(model: nn.Module) -> list[Layer]:
    """Every thresholded layer, with ``acc_scale`` taken from Brevitas' own tensors.

    One forward pass records the scale each weight layer's input quant tensor carries,
    each activation's output scale, and the spatial shape each activation receives.
    """
    model.eval()
    plan = graph_plan(model)
    in_scale: dict[int, float] = {}
    out_scale: dict[int, float] = {}
    in_hw: dict[int, tuple[int, int]] = {}  # [H, W] an activation receives
    hooks = []

    def pre(module: nn.Module, args: tuple) -> None:
        if hasattr(args[0], "scale"):
            in_scale[id(module)] = float(args[0].scale)
        v = args[0].value if hasattr(args[0], "value") else args[0]
        if v.dim() == 4:
            in_hw[id(module)] = (int(v.shape[2]), int(v.shape[3]))

    def post(key: int):
        def hook(module: nn.Module, args: tuple, out: Any) -> None:
            if hasattr(out, "scale"):
                out_scale[key] = float(out.scale)

        return hook

    hooks.append(model.input_quant.register_forward_hook(post(INPUT_KEY)))
    for step in plan:
        if "layer" in step:
            hooks.append(step["layer"].register_forward_pre_hook(pre))
        if "act" in step:
            hooks.append(step["act"].register_forward_pre_hook(pre))
            hooks.append(step["act"].register_forward_hook(post(id(step["act"]))))
    try:
        with torch.no_grad():
            model(torch.rand(2, int(np.prod(model.input_shape))))
    finally:
        for h in hooks:
            h.remove()
    producers = _plan_producers(plan)
    layers = []
    for step in plan:
        if "mt" not in step:
            continue
        if step["kind"] == "add":  # the branches meet on the finer of their two scales
            scale = min(_producer_scale(i, producers, out_scale) for i in step["inputs"])
            acc_scale = np.array([scale])
        else:
            layer = step["layer"]
            x_scale = in_scale.get(id(layer))
            if x_scale is None:  # a plain float tensor arrived (after a channel shuffle)
                x_scale = _producer_scale(step["input"], producers, out_scale)
            w_scale = layer.quant_weight().scale.detach().double().numpy().reshape(-1)
            acc_scale = x_scale * w_scale
        spatial = in_hw.get(id(step["act"]))  # the real [OH, OW] the activation sees
        assert np.all(np.frexp(acc_scale)[0] == 0.5), f"{step['mt']}: scale not a power of two"
        layers.append(Layer(step["mt"], step.get("bn"), step["act"], acc_scale, spatial))
    return layers


def randomize_batch_norms(model: nn.Module, seed: int) -> None:
    """Running statistics and affine parameters that put thresholds where data goes, and
    beyond.

    Per channel, from the batch norm's input on random images: a mean within three
    standard deviations of the observed one, a spread from 1/20 to 5 times the observed,
    a slope of either sign (about 40 % negative) and up to a few times the activation's
    full scale, and one constant channel (slope 0) per layer.
    """
    rng = np.random.default_rng(seed)
    plan = graph_plan(model)
    norms = [s["bn"] for s in plan if isinstance(s.get("bn"), (nn.BatchNorm1d, nn.BatchNorm2d))]
    seen: dict[int, torch.Tensor] = {}

    def keep(module: nn.Module, args: tuple) -> None:
        x = args[0].value if hasattr(args[0], "value") else args[0]
        seen[id(module)] = x.transpose(0, 1).reshape(x.shape[1], -1).double()

    hooks = [bn.register_forward_pre_hook(keep) for bn in norms]
    try:
        model.eval()
        with torch.no_grad():
            model(torch.rand(64, int(np.prod(model.input_shape))))
    finally:
        for h in hooks:
            h.remove()
    acts = {id(s["bn"]): s["act"] for s in plan if s.get("bn") is not None}
    for bn in norms:
        y = seen[id(bn)]
        c = y.shape[0]
        spread = torch.clamp(y.std(dim=1), min=1e-3).numpy()
        mean = y.mean(dim=1).numpy() + spread * rng.uniform(-3, 3, c)
        std = spread * np.exp(rng.uniform(np.log(0.05), np.log(5), c))
        q = acts[id(bn)].act_quant
        bits = int(q.bit_width())
        full = 1.0 if bits == 1 else float(q.scale()) * (2**bits - 1)
        slope = full * np.exp(rng.uniform(np.log(0.2), np.log(3), c))
        slope *= np.where(rng.random(c) < 0.4, -1, 1)
        slope[rng.integers(c)] = 0.0
        bias = full * rng.uniform(-0.5, 1.0, c)
        with torch.no_grad():
            bn.running_mean.copy_(torch.from_numpy(mean))
            bn.running_var.copy_(torch.from_numpy(std**2))
            bn.weight.copy_(torch.from_numpy(slope))
            bn.bias.copy_(torch.from_numpy(bias))


def _accumulators(acc: IntRange, start: int, count: int) -> np.ndarray:
    """``[count, C]``: row ``j`` holds ``lo + start + j`` per channel, clipped to ``hi``."""
    j = np.arange(start, start + count, dtype=np.int64)
    return np.minimum(acc.lo[None, :] + j[:, None], acc.hi[None, :])


def _brevitas_levels(layer: Layer, a: np.ndarray) -> np.ndarray:
    """Brevitas' integers for accumulators ``a`` ``[M, C]`` (rows are pixels for a conv)."""
    y = torch.from_numpy(a.astype(np.float64) * layer.acc_scale[None, :]).float()
    if layer.spatial is not None:
        oh, ow = layer.spatial
        y = y.reshape(-1, oh, ow, a.shape[1]).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        out = layer.act(layer.bn(y) if layer.bn is not None else y)
    v = brevitas_ints(out)
    if layer.spatial is not None:
        v = v.transpose(0, 2, 3, 1)
    return v.reshape(a.shape)


def first_disagreement(layer: Layer, node: Node, acc: IntRange) -> dict[str, int | str] | None:
    """Enumerate every accumulator of every channel; the first value where (a) != (b)."""
    c = len(acc.lo)
    assert max(abs(acc.min), abs(acc.max)) < FLOAT32_EXACT, f"{layer.mt}: acc * scale inexact"
    pixels = int(np.prod(layer.spatial)) if layer.spatial is not None else 1
    width = int((acc.hi - acc.lo).max()) + 1
    images = min(max(1, CHUNK // (c * pixels)), -(-width // pixels))
    rows = images * pixels  # whole images per chunk, no more than the range needs
    for start in range(0, width, rows):
        a = _accumulators(acc, start, rows)
        want = _brevitas_levels(layer, a)
        got = multi_threshold(node, a)
        bad = np.argwhere(got != want)
        if bad.size:
            r, ch = (int(i) for i in bad[0])
            return {
                "layer": layer.mt,
                "channel": ch,
                "accumulator": int(a[r, ch]),
                "brevitas": int(want[r, ch]),
                "thresholds": int(got[r, ch]),
            }
    return None


def check_theorem(model: nn.Module, graph: Graph, only: tuple[str, ...] | None = None) -> int:
    """Assert (a) == (b) on every reachable accumulator; returns the values checked."""
    ranges = node_ranges(graph)
    shapes = infer_shapes(graph)
    layers = brevitas_layers(model)
    mts = [n.name for n in graph.nodes if n.op == "MultiThreshold"]
    assert [la.mt for la in layers] == mts  # every thresholding node is paired with modules
    checked = 0
    for layer in layers:
        if only is not None and layer.mt not in only:
            continue
        node = graph.node(layer.mt)
        acc = ranges[node.inputs[0]]
        # Brevitas sees a convolution's output in the IR's [OH, OW] (a dense layer: none)
        shape = shapes[node.inputs[0]]
        assert layer.spatial == (shape[:2] if len(shape) == 3 else None), layer.mt
        found = first_disagreement(layer, node, acc)
        assert found is None, f"exported thresholds disagree with Brevitas: {found}"
        checked += int((acc.hi - acc.lo + 1).sum())
    return checked


def _assert_nontrivial(graph: Graph) -> None:
    """The random statistics did their job: some channel falls, some threshold is inside."""
    ranges = node_ranges(graph)
    mts = [n for n in graph.nodes if n.op == "MultiThreshold"]
    assert any("direction" in n.tensors and (n.tensors["direction"] < 0).any() for n in mts)
    inside = False
    for n in mts:
        acc = ranges[n.inputs[0]]
        d = n.tensors.get("direction", np.ones(len(acc.lo), np.int64))
        lo = np.where(d < 0, -acc.hi, acc.lo)[:, None]
        hi = np.where(d < 0, -acc.lo, acc.hi)[:, None]
        t = n.tensors["thresholds"]
        inside |= bool(np.any((t > lo) & (t <= hi)))
    assert inside


def zoo_model(arch: str, bits: int, seed: int = 0) -> nn.Module:
    """An untrained zoo model with random batch norms; MLPs on 16 features, images 8x8."""
    seed_everything(seed)
    quant = {"weight_bits": bits, "act_bits": bits, "input_bits": 8}
    if arch == "mlp":
        model = build_model("mlp", (16,), 10, hidden=[12, 8], **quant)
    elif arch in ("mobilenet", "shufflenet", "squeezenet"):
        model = build_model(arch, (8, 8, 3), 10, width=8, **quant)
    else:
        model = build_model(arch, (8, 8, 1 if arch == "lenet5" else 3), 10, **quant)
    randomize_batch_norms(model, seed)
    return model


ARCHS = ("mlp", "lenet5", "cnv", "mobilenet", "shufflenet", "squeezenet")
#: 8 bits: the models (and layers, None = all) whose complete ranges fit the time budget.
LAYERS_AT_8_BITS = {"mlp": None, "shufflenet": None, "lenet5": ("mt0", "mt1")}


@pytest.mark.parametrize("bits", [1, 2, 4])
@pytest.mark.parametrize("arch", ARCHS)
def test_thresholds_equal_brevitas_on_every_reachable_accumulator(arch, bits):
    model = zoo_model(arch, bits)
    graph = export_model(model)
    _assert_nontrivial(graph)
    assert check_theorem(model, graph) > 0


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(LAYERS_AT_8_BITS))
def test_thresholds_equal_brevitas_on_every_reachable_accumulator_at_8_bits(arch):
    model = zoo_model(arch, 8)
    graph = export_model(model)
    _assert_nontrivial(graph)
    assert check_theorem(model, graph, LAYERS_AT_8_BITS[arch]) > 500_000


@pytest.mark.parametrize(
    ("bits", "per_channel", "ranks"),
    [(4, True, None), (3, False, [5, None, None])],
    ids=["per-channel-scales", "factored-signed-requantizer"],
)
def test_theorem_with_per_channel_scales_and_signed_requantizers(bits, per_channel, ranks):
    """Per-channel weight scales (acc_scale differs per channel) and a factored layer whose
    signed requantizer (no batch norm, ``offset`` < 0) is thresholded too."""
    seed_everything(3)
    model = QuantMLP(
        16,
        [12, 8],
        10,
        weight_bits=bits,
        act_bits=bits,
        input_bits=8,
        per_channel=per_channel,
        ranks=ranks,
    )
    if per_channel:  # rows of different magnitudes get different power-of-two scales
        with torch.no_grad():
            first = model.linears[0].first if ranks else model.linears[0]
            first.weight.mul_(0.5 ** (torch.arange(12) % 3)[:, None].float())
    randomize_batch_norms(model, 3)
    graph = export_model(model)
    if per_channel:
        assert len(np.unique(brevitas_layers(model)[0].acc_scale)) > 1
    else:
        assert any(n.attrs.get("offset", 0) < 0 for n in graph.nodes)
    assert check_theorem(model, graph) > 0


@pytest.mark.slow
def test_theorem_on_a_trained_digits_mlp(digits):
    """One epoch of QAT on digits: trained statistics, 2 bits, the digits MLP shape."""
    seed_everything(0)
    model = QuantMLP(digits.features, [24, 13], 10, weight_bits=2, act_bits=2, input_bits=8)
    model = train_classifier(model, digits.x_train, digits.y_train, TrainSettings(epochs=1, seed=0))
    assert check_theorem(model, export_model(model)) > 0


def test_a_threshold_moved_by_one_is_found_at_its_channel_and_value():
    """The check can fail: one threshold one step off is reported where it is."""
    model = zoo_model("lenet5", 2)
    graph = export_model(model)
    node = graph.node("mt1")
    acc = node_ranges(graph)[node.inputs[0]]
    t = node.tensors["thresholds"]
    d = node.tensors.get("direction", np.ones(len(acc.lo), np.int64))
    lo = np.where(d < 0, -acc.hi, acc.lo)
    hi = np.where(d < 0, -acc.lo, acc.hi)
    # a threshold strictly inside its range, with no equal neighbour: moving it matters
    ch, k = next(
        (c, k)
        for c, k in np.argwhere((t > lo[:, None]) & (t <= hi[:, None]))
        if np.count_nonzero(t[c] == t[c, k]) == 1
    )
    t[ch, k] += 1
    layer = next(la for la in brevitas_layers(model) if la.mt == "mt1")
    found = first_disagreement(layer, node, acc)
    assert found is not None
    assert found["layer"] == "mt1" and found["channel"] == ch
    assert found["accumulator"] == d[ch] * (t[ch, k] - 1)
    assert found["brevitas"] != found["thresholds"]
