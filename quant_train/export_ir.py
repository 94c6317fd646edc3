"""Export a trained Brevitas :class:`~quant_train.models.QuantMLP` to the qfab IR.

The key step is :func:`thresholds_from_brevitas`: instead of re-deriving batch norm and
the activation quantizer in exact arithmetic (and hoping the float32 rounding agrees),
it *runs the model's own eval-mode modules* on accumulator values and finds, by
bisection, the smallest accumulator at which each output level is reached. The integer
pipeline then reproduces the Brevitas float32 forward exactly on every reachable
accumulator, which is what level 1 of the equality checks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from qfab.errors import ExportError
from qfab.ir import Graph, Node
from qfab.ranges import IntRange, dense_acc_range

#: float32 represents every integer up to 2^24 exactly: the bound for an exact forward.
FLOAT32_EXACT_INT = 2**24


def _power_of_two(value: float, what: str) -> float:
    """Return ``value`` if it is a positive power of two, else raise naming ``what``."""
    mant, _ = math.frexp(value)
    if value <= 0 or mant != 0.5:
        raise ExportError(
            f"{what}: scale {value!r} is not a power of two; qfab's exact integer pipeline "
            "needs *FixedPoint (power-of-two) Brevitas quantizers"
        )
    return value


def _scales(t: torch.Tensor, what: str) -> np.ndarray:
    vals = t.detach().reshape(-1).double().numpy()
    return np.array([_power_of_two(float(v), what) for v in vals])


def quant_ints(qt: Any) -> np.ndarray:
    """Integers of a Brevitas QuantTensor: ``round(value / scale) + zero_point``.

    Same as ``QuantTensor.int()``, which refuses a bipolar tensor whose entries happen
    to be all equal (its validity check wants both values present).
    """
    with torch.no_grad():
        v = torch.round(qt.value / qt.scale) + qt.zero_point
    return v.numpy().astype(np.int64)


def level_counter(
    chain: nn.Module, acc_scale: np.ndarray, sign: np.ndarray, bipolar: bool
) -> Callable[[np.ndarray], np.ndarray]:
    """Map integer accumulators ``[N, C]`` to output level counts through the model's ops.

    ``chain`` is the model's own eval-mode batch norm + activation quantizer; it gets
    ``acc * sign * acc_scale`` in float32, exactly the linear layer's float output for
    power-of-two scales (``sign`` = -1 marks channels whose weight row the IR negates).
    Counts are the quantizer's integers, or ``(v + 1) / 2`` for a bipolar sign.
    """
    scale32 = torch.from_numpy((np.broadcast_to(acc_scale, sign.shape) * sign).astype(np.float32))

    def count(a: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = chain(torch.from_numpy(a.astype(np.float32)) * scale32)
        v = quant_ints(out)
        return (v + 1) // 2 if bipolar else v

    return count


def thresholds_from_brevitas(
    level_of: Callable[[np.ndarray], np.ndarray],
    acc: IntRange,
    levels: int,
    layer: str,
) -> np.ndarray:
    """Thresholds ``T[c, k-1]`` = smallest accumulator whose output level is ``>= k``.

    ``level_of`` (see :func:`level_counter`) must be non-decreasing in the accumulator.
    Levels never reached get ``acc.hi + 1``; levels already reached at ``acc.lo`` get
    ``acc.lo``. The search is vectorized over channels and levels: about
    ``log2(range)`` evaluations of the model's ops on a ``[levels, channels]`` batch.
    """
    channels = acc.lo.shape[0]
    k = np.arange(1, levels + 1, dtype=np.int64)[:, None]  # [levels, 1]
    lo = np.broadcast_to(acc.lo, (levels, channels)).copy()
    hi = np.broadcast_to(acc.hi + 1, (levels, channels)).copy()
    while np.any(lo < hi):
        active = lo < hi
        mid = (lo + hi) // 2
        reached = level_of(np.minimum(mid, acc.hi)) >= k
        hi = np.where(active & reached, mid, hi)
        lo = np.where(active & ~reached, mid + 1, lo)
    t = lo
    # Local monotonicity check: just below each threshold the level is not yet reached.
    below = level_of(np.clip(t - 1, acc.lo, acc.hi))
    bad = (t > acc.lo) & (below >= k)
    if np.any(bad):
        lvl, ch = (int(i) for i in np.argwhere(bad)[0])
        raise ExportError(f"{layer}: activation is not monotonic in the accumulator "
                          f"(channel {ch}, level {lvl + 1})")
    if np.any(np.diff(t, axis=0) < 0):
        raise ExportError(f"{layer}: thresholds not sorted; the activation is not monotonic")
    return np.ascontiguousarray(t.T)


def _weight_tensors(layer: nn.Module, w: np.ndarray, name: str) -> dict[str, np.ndarray]:
    """``weight``, plus ``codebook``/``weight_index`` when the layer shares weights.

    A channel negated for thresholding negates its shared values too, so the IR codebook
    holds the distinct values of the IR's weights (at most twice the cluster count).
    """
    tensors = {"weight": w}
    clusters = getattr(layer, "qfab_clusters", None)
    if clusters is not None:
        from quant_train.share_model import layer_codebook

        tensors["codebook"], tensors["weight_index"] = layer_codebook(w, 2 * clusters, name)
    return tensors


def _capture_classifier_input(model: nn.Module, x: torch.Tensor) -> Any:
    seen: dict[str, Any] = {}
    def grab(module: nn.Module, args: tuple) -> None:
        seen["x"] = args[0]

    handle = model.classifier.register_forward_pre_hook(grab)
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    return seen["x"]


def export_mlp(model: nn.Module, meta: dict[str, Any] | None = None) -> Graph:
    """Turn a trained ``QuantMLP`` (eval mode is forced) into a validated IR graph."""
    model.eval()
    iq = model.input_quant.act_quant
    in_scale = _power_of_two(float(iq.scale().detach()), "input_quant")
    in_bits, signed = int(iq.bit_width()), bool(iq.is_signed)
    features = int(model.linears[0].in_features if len(model.linears) else model.classifier.in_features)
    nodes = [Node("input", "InputQuant", [],
                  {"bits": in_bits, "signed": signed, "scale": in_scale, "features": features})]
    lo, hi = (-(2 ** (in_bits - 1)), 2 ** (in_bits - 1) - 1) if signed else (0, 2**in_bits - 1)
    x_range = IntRange(np.full(features, lo, np.int64), np.full(features, hi, np.int64))
    x_scale = in_scale
    prev = "input"
    exact = True
    for i, (lin, bn, act) in enumerate(zip(model.linears, model.norms, model.acts, strict=True)):
        qw = lin.quant_weight()
        w = quant_ints(qw)
        acc_scale = x_scale * _scales(qw.scale, f"fc{i}.weight")
        acc = dense_acc_range(Node("tmp", "Dense", [], {}, {"weight": w}), x_range)
        exact &= max(abs(acc.min), abs(acc.max)) < FLOAT32_EXACT_INT
        chain = nn.Sequential(bn, act).eval()
        act_bits = int(act.act_quant.bit_width())
        bipolar = act_bits == 1
        if bool(act.act_quant.is_signed) and not bipolar:
            raise ExportError(f"mt{i}: signed multi-bit activations are not supported yet")
        # Channels whose output falls as the accumulator rises get their weight row
        # negated, so every threshold unit compares "acc >= T" (weights are symmetric).
        ones = np.ones(len(w), np.int64)
        ends = level_counter(chain, acc_scale, ones, bipolar)(np.stack([acc.lo, acc.hi]))
        sign = np.where(ends[0] > ends[1], -1, 1).astype(np.int64)
        w_ir = w * sign[:, None]
        probe = dense_acc_range(Node("tmp", "Dense", [], {}, {"weight": w_ir}), x_range)
        t = thresholds_from_brevitas(level_counter(chain, acc_scale, sign, bipolar), probe,
                                     2**act_bits - 1, f"mt{i}")
        nodes.append(Node(f"fc{i}", "Dense", [prev], {"weight_bits": int(qw.bit_width)},
                          _weight_tensors(lin, w_ir, f"fc{i}")))
        attrs = {"out_bits": act_bits, "offset": 0, **({"bipolar": True} if bipolar else {})}
        nodes.append(Node(f"mt{i}", "MultiThreshold", [f"fc{i}"], attrs, {"thresholds": t}))
        prev = f"mt{i}"
        x_scale = _power_of_two(float(act.act_quant.scale().detach()), f"act{i}")
        lo_v, hi_v = (-1, 1) if bipolar else (0, 2**act_bits - 1)
        x_range = IntRange(np.full(w.shape[0], lo_v, np.int64), np.full(w.shape[0], hi_v, np.int64))

    cls = model.classifier
    qw = cls.quant_weight()
    w = quant_ints(qw)
    out_scale = x_scale * _scales(qw.scale, "classifier.weight")
    last = f"fc{len(model.linears)}"
    tensors = _weight_tensors(cls, w, last)
    if cls.bias is not None:
        x_q = _capture_classifier_input(model, torch.zeros(1, features))
        qb = cls.bias_quant(cls.bias, input=x_q, weight=qw)
        b_scale = _scales(qb.scale, "classifier.bias")
        if not np.all(b_scale == np.broadcast_to(out_scale, b_scale.shape)):
            raise ExportError("classifier: bias scale differs from the accumulator scale")
        tensors["bias"] = quant_ints(qb)
    node = Node(last, "Dense", [prev], {"weight_bits": int(qw.bit_width)}, tensors)
    acc = dense_acc_range(node, x_range)
    exact &= max(abs(acc.min), abs(acc.max)) < FLOAT32_EXACT_INT
    nodes.append(node)
    classes = w.shape[0]
    nodes.append(Node("output", "OutputDequant", [last], {},
                      {"scale": np.broadcast_to(out_scale, (classes,)).astype(np.float32),
                       "bias": np.zeros(classes, np.float32)}))
    meta = dict(meta or {})
    meta["float32_exact"] = bool(exact)
    return Graph(nodes, meta).validate("export")
