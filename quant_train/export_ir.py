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
from qfab.ranges import IntRange, conv_acc_range, dense_acc_range

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
    chain: nn.Module,
    acc_scale: np.ndarray,
    sign: np.ndarray,
    bipolar: bool,
    spatial: tuple[int, int] | None = None,
    offset: int = 0,
) -> Callable[[np.ndarray], np.ndarray]:
    """Map integer accumulators ``[N, C]`` to output level counts through the model's ops.

    ``chain`` is the model's own eval-mode batch norm + activation quantizer; it gets
    ``acc * sign * acc_scale`` in float32, exactly the layer's float output for
    power-of-two scales (``sign`` = -1 marks channels whose weight row the IR negates).
    Counts are the quantizer's integers minus ``offset`` (its lowest level, for signed
    quantizers), or ``(v + 1) / 2`` for a bipolar sign.

    For a convolution the values are broadcast to the layer's real ``[N, C, OH, OW]``
    shape, so batch norm runs the same CPU kernel as in the real forward; every pixel
    must then give the same level, which is checked (a kernel whose rounding depended on
    the position would make any threshold wrong somewhere).
    """
    scale32 = torch.from_numpy((np.broadcast_to(acc_scale, sign.shape) * sign).astype(np.float32))

    def count(a: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            y = torch.from_numpy(a.astype(np.float32)) * scale32
            if spatial is not None:
                y = y[:, :, None, None].expand(*y.shape, *spatial).contiguous()
            v = quant_ints(chain(y))
        if spatial is not None:
            flat = v.reshape(*v.shape[:2], -1)
            if np.any(flat != flat[..., :1]):
                raise ExportError(
                    "batch norm + activation give different levels at different "
                    "pixels for the same accumulator; thresholds cannot be exact"
                )
            v = flat[..., 0]
        return (v + 1) // 2 if bipolar else v - offset

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
        raise ExportError(
            f"{layer}: activation is not monotonic in the accumulator "
            f"(channel {ch}, level {lvl + 1})"
        )
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


def _capture_input(model: nn.Module, layer: nn.Module, x: torch.Tensor) -> Any:
    """The (quant tensor) input ``layer`` receives when ``model`` runs on ``x``."""
    seen: dict[str, Any] = {}

    def grab(module: nn.Module, args: tuple) -> None:
        seen["x"] = args[0]

    handle = layer.register_forward_pre_hook(grab)
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    return seen["x"]


def _thresholds(
    name: str,
    w: np.ndarray,
    acc_scale: np.ndarray,
    bn: nn.Module,
    act: nn.Module,
    acc_range: Callable[[np.ndarray], IntRange],
    spatial: tuple[int, int] | None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any], bool]:
    """(IR weight with falling channels negated, thresholds, attrs, bipolar) for one layer.

    ``bn`` may be None (the requantizer inside a factored layer). Signed quantizers get
    ``offset`` = their lowest integer, so ``out = offset + count`` spans their range.
    """
    chain = (nn.Sequential(bn, act) if bn is not None else act).eval()
    act_bits = int(act.act_quant.bit_width())
    bipolar = act_bits == 1
    offset = 0
    if bool(act.act_quant.is_signed) and not bipolar:
        offset = -(2 ** (act_bits - 1))  # non-narrow signed: [-2^(b-1), 2^(b-1) - 1]
    acc = acc_range(w)
    # Channels whose output falls as the accumulator rises get their weight row
    # negated, so every threshold unit compares "acc >= T" (weights are symmetric).
    ones = np.ones(len(w), np.int64)
    ends = level_counter(chain, acc_scale, ones, bipolar, spatial, offset)(
        np.stack([acc.lo, acc.hi])
    )
    sign = np.where(ends[0] > ends[1], -1, 1).astype(np.int64)
    w_ir = w * sign.reshape(-1, *([1] * (w.ndim - 1)))
    t = thresholds_from_brevitas(
        level_counter(chain, acc_scale, sign, bipolar, spatial, offset),
        acc_range(w_ir),
        2**act_bits - 1,
        name,
    )
    attrs = {"out_bits": act_bits, "offset": offset, **({"bipolar": True} if bipolar else {})}
    return w_ir, t, attrs, bipolar


def export_model(model: nn.Module, meta: dict[str, Any] | None = None) -> Graph:
    """Turn a trained QuantMLP or QuantCNN (eval mode is forced) into a validated IR graph.

    Walks ``model.export_plan()``; every weight layer gets a global index ``i`` and
    nodes ``conv{i}``/``fc{i}``, ``mt{i}`` (thresholds) and ``pool{i}``.
    """
    model.eval()
    iq = model.input_quant.act_quant
    in_scale = _power_of_two(float(iq.scale().detach()), "input_quant")
    in_bits, signed = int(iq.bit_width()), bool(iq.is_signed)
    shape = tuple(model.input_shape)
    features = int(np.prod(shape))
    attrs: dict[str, Any] = {
        "bits": in_bits,
        "signed": signed,
        "scale": in_scale,
        "features": features,
    }
    if len(shape) == 3:
        attrs["shape"] = list(shape)
    nodes = [Node("input", "InputQuant", [], attrs)]
    lo, hi = (-(2 ** (in_bits - 1)), 2 ** (in_bits - 1) - 1) if signed else (0, 2**in_bits - 1)
    x_range = IntRange(np.full(shape[-1], lo, np.int64), np.full(shape[-1], hi, np.int64))
    x_scale = np.float64(in_scale)
    prev, exact, spatial_shape = "input", True, shape
    flatten_perm: np.ndarray | None = None
    for i, step in enumerate(model.export_plan()):
        kind = step[0]
        if kind == "flatten":
            h, w_, c = spatial_shape
            # IR index (y, x, ch) reads PyTorch's NCHW flatten index ch*H*W + y*W + x
            flatten_perm = (
                np.arange(c)[None, None, :] * h * w_
                + np.arange(h)[:, None, None] * w_
                + np.arange(w_)[None, :, None]
            ).reshape(-1)
            nodes.append(Node("flatten", "Flatten", [prev]))
            x_range = IntRange(np.tile(x_range.lo, h * w_), np.tile(x_range.hi, h * w_))
            prev, spatial_shape = "flatten", (h * w_ * c,)
            continue
        layer = step[1]
        qw = layer.quant_weight()
        w = quant_ints(qw)
        name = f"conv{i}" if kind == "conv" else f"fc{i}"
        if kind == "conv":
            w = w.transpose(0, 2, 3, 1)  # [OC, IC, KH, KW] -> [OC, KH, KW, IC]
            (sh, sw), (ph, pw) = layer.stride, layer.padding
            conv_attrs = {
                "weight_bits": int(qw.bit_width),
                "stride": [sh, sw],
                "padding": [ph, pw],
                "groups": int(layer.groups),
            }

            def acc_range(wt: np.ndarray, a=conv_attrs, xr=x_range) -> IntRange:
                return conv_acc_range(Node("tmp", "Conv2d", [], a, {"weight": wt}), xr)

            h, w_, _ = spatial_shape
            oh, ow = (h + 2 * ph - w.shape[1]) // sh + 1, (w_ + 2 * pw - w.shape[2]) // sw + 1
        else:
            if flatten_perm is not None:
                w, flatten_perm = w[:, flatten_perm], None

            def acc_range(wt: np.ndarray, xr=x_range) -> IntRange:
                return dense_acc_range(Node("tmp", "Dense", [], {}, {"weight": wt}), xr)

        acc_scale = x_scale * _scales(qw.scale, f"{name}.weight")
        acc = acc_range(w)
        exact &= max(abs(acc.min), abs(acc.max)) < FLOAT32_EXACT_INT
        if kind == "classifier":
            tensors = _weight_tensors(layer, w, name)
            if layer.bias is not None:
                x_q = _capture_input(model, layer, torch.zeros(1, features))
                qb = layer.bias_quant(layer.bias, input=x_q, weight=qw)
                b_scale = _scales(qb.scale, f"{name}.bias")
                if not np.all(b_scale == np.broadcast_to(acc_scale, b_scale.shape)):
                    raise ExportError(f"{name}: bias scale differs from the accumulator scale")
                tensors["bias"] = quant_ints(qb)
            node = Node(name, "Dense", [prev], {"weight_bits": int(qw.bit_width)}, tensors)
            exact &= (
                max(
                    abs(dense_acc_range(node, x_range).min), abs(dense_acc_range(node, x_range).max)
                )
                < FLOAT32_EXACT_INT
            )
            classes = w.shape[0]
            nodes += [
                node,
                Node(
                    "output",
                    "OutputDequant",
                    [name],
                    {},
                    {
                        "scale": np.broadcast_to(acc_scale, (classes,)).astype(np.float32),
                        "bias": np.zeros(classes, np.float32),
                    },
                ),
            ]
            break
        bn, act = step[2], step[3]
        spatial = (oh, ow) if kind == "conv" else None
        w_ir, t, mt_attrs, bipolar = _thresholds(
            f"mt{i}", w, acc_scale, bn, act, acc_range, spatial
        )
        if kind == "conv":
            nodes.append(
                Node(name, "Conv2d", [prev], conv_attrs, _weight_tensors(layer, w_ir, name))
            )
        else:
            nodes.append(
                Node(
                    name,
                    "Dense",
                    [prev],
                    {"weight_bits": int(qw.bit_width)},
                    _weight_tensors(layer, w_ir, name),
                )
            )
        nodes.append(Node(f"mt{i}", "MultiThreshold", [name], mt_attrs, {"thresholds": t}))
        prev = f"mt{i}"
        x_scale = np.float64(_power_of_two(float(act.act_quant.scale().detach()), f"act{i}"))
        off = mt_attrs["offset"]
        lo_v, hi_v = (-1, 1) if bipolar else (off, off + 2 ** mt_attrs["out_bits"] - 1)
        x_range = IntRange(np.full(w.shape[0], lo_v, np.int64), np.full(w.shape[0], hi_v, np.int64))
        if kind == "conv":
            spatial_shape = (oh, ow, w.shape[0])
            if step[4]:
                k = int(step[4])
                nodes.append(
                    Node(f"pool{i}", "MaxPool", [prev], {"kernel": [k, k], "stride": [k, k]})
                )
                prev, spatial_shape = f"pool{i}", (oh // k, ow // k, w.shape[0])
    meta = dict(meta or {})
    meta["float32_exact"] = bool(exact)
    return Graph(nodes, meta).validate("export")


#: Kept for callers written against the MLP-only exporter.
export_mlp = export_model
