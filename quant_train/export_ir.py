"""Export a trained qfab Brevitas model (MLP, conv net, factored or compact) to the qfab IR.

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
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from qfab.errors import ExportError
from qfab.ir import Graph, Node, input_range, shuffle_order
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
    ``a * sign * acc_scale`` in float32, exactly the layer's float output for
    power-of-two scales. ``a`` is ``direction * acc``: ``sign`` = -1 marks the falling
    channels (the ``MultiThreshold``'s ``direction``), so the map is non-decreasing in
    ``a`` and thresholds on ``a`` are found by bisection.
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
) -> np.ndarray:
    """Thresholds ``T[c, k-1]`` = smallest accumulator whose output level is ``>= k``.

    ``level_of`` (see :func:`level_counter`) must be non-decreasing in the accumulator,
    and is not checked here: bisection cannot see a non-monotone function (its result is
    sorted and just below each threshold the level is unreached for *any* function), and
    a full scan costs what the proof does. It holds because every float32 operation of
    eval-mode batch norm and of round/clamp is weakly monotone in its one varying operand;
    ``tests/quant_train/test_threshold_theorem.py`` confirms it by running every
    reachable accumulator of the zoo's layers through the model's own modules.
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
    return np.ascontiguousarray(lo.T)


def _weight_tensors(layer: nn.Module, w: np.ndarray, name: str) -> dict[str, np.ndarray]:
    """``weight``, plus ``codebook``/``weight_index`` when the layer shares weights.

    The IR keeps the weights exactly as Brevitas has them (falling channels are marked by
    the ``MultiThreshold``'s ``direction``, never by negating a row), so the IR codebook
    holds at most the layer's ``K`` cluster values: what a ``log2 K``-bit codebook index
    of the sparse engine addresses.
    """
    tensors = {"weight": w}
    clusters = getattr(layer, "qfab_clusters", None)
    if clusters is not None:
        from quant_train.share_model import layer_codebook

        tensors["codebook"], tensors["weight_index"] = layer_codebook(w, clusters, name)
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


def _quant_bias(
    model: nn.Module,
    layer: nn.Module,
    qw: Any,
    acc_scale: np.ndarray,
    name: str,
    example: torch.Tensor,
) -> np.ndarray:
    """Integer bias of ``layer`` on its accumulator's scale (``Int32Bias``-style).

    The bias quantizer needs the quant tensor the layer really receives, so ``model``
    runs once on ``example``.
    """
    x_q = _capture_input(model, layer, example)
    qb = layer.bias_quant(layer.bias, input=x_q, weight=qw)
    b_scale = _scales(qb.scale, f"{name}.bias")
    if not np.all(b_scale == np.broadcast_to(acc_scale, b_scale.shape)):
        raise ExportError(f"{name}: bias scale differs from the accumulator scale")
    return quant_ints(qb)


class _AddBias(nn.Module):
    """Adds a hidden layer's (exact, float32) bias per channel, before batch norm."""

    def __init__(self, bias: np.ndarray) -> None:
        super().__init__()
        self.bias = torch.from_numpy(bias.astype(np.float32))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y + self.bias.reshape(1, -1, *[1] * (y.dim() - 2))


def _thresholds(
    name: str,
    acc: IntRange,
    acc_scale: np.ndarray,
    bn: nn.Module | None,
    act: nn.Module,
    spatial: tuple[int, int] | None,
    bias: np.ndarray | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(``MultiThreshold`` tensors, attrs) for one layer whose accumulator spans ``acc``.

    ``bn`` may be None (the requantizer inside a factored layer). Signed quantizers get
    ``offset`` = their lowest integer, so ``out = offset + count`` spans their range.
    Channels whose output falls as the accumulator rises (a negative batch-norm slope)
    get ``direction`` -1 and thresholds on ``-acc``; the tensor is written only when some
    channel falls, so a rising layer's IR is unchanged. ``bias`` (a hidden layer's
    quantized bias as float32, exact on the accumulator's scale) is added before batch
    norm, as the layer's own forward adds it: the thresholds absorb it.
    """
    ops = [m for m in (_AddBias(bias) if bias is not None else None, bn, act) if m is not None]
    chain = (nn.Sequential(*ops) if len(ops) > 1 else act).eval()
    act_bits = int(act.act_quant.bit_width())
    bipolar = act_bits == 1
    offset = 0
    if bool(act.act_quant.is_signed) and not bipolar:
        offset = -(2 ** (act_bits - 1))  # non-narrow signed: [-2^(b-1), 2^(b-1) - 1]
    # A channel falls when its level at the lowest accumulator exceeds the one at the
    # highest; thresholding "direction * acc >= T" then counts levels upwards again.
    ones = np.ones(len(acc.lo), np.int64)
    ends = level_counter(chain, acc_scale, ones, bipolar, spatial, offset)(
        np.stack([acc.lo, acc.hi])
    )
    direction = np.where(ends[0] > ends[1], -1, 1).astype(np.int64)
    falling = direction < 0
    signed_acc = IntRange(  # the range of direction * acc
        np.where(falling, -acc.hi, acc.lo), np.where(falling, -acc.lo, acc.hi)
    )
    t = thresholds_from_brevitas(
        level_counter(chain, acc_scale, direction, bipolar, spatial, offset),
        signed_acc,
        2**act_bits - 1,
    )
    tensors = {"thresholds": t, **({"direction": direction} if falling.any() else {})}
    attrs = {"out_bits": act_bits, "offset": offset, **({"bipolar": True} if bipolar else {})}
    return tensors, attrs


def graph_plan(model: nn.Module) -> list[dict[str, Any]]:
    """The model's export plan as graph steps (dicts naming their inputs and outputs).

    Models with branches (compact blocks) provide ``graph_plan()`` themselves; chain
    models (``export_plan()`` tuples) are converted here: every weight layer gets a
    global index ``i`` and nodes ``conv{i}``/``fc{i}``, ``mt{i}`` and ``pool{i}``.
    """
    if hasattr(model, "graph_plan"):
        return model.graph_plan()
    steps: list[dict[str, Any]] = []
    prev = "input"
    for i, step in enumerate(model.export_plan()):
        kind = step[0]
        if kind == "flatten":
            steps.append({"kind": "flatten", "input": prev, "out": "flatten"})
            prev = "flatten"
        elif kind == "classifier":
            steps.append({"kind": "classifier", "input": prev, "name": f"fc{i}", "layer": step[1]})
        else:
            name = f"conv{i}" if kind == "conv" else f"fc{i}"
            pool = int(step[4]) if kind == "conv" else 0
            out = f"pool{i}" if pool else f"mt{i}"
            steps.append(
                {
                    "kind": kind,
                    "input": prev,
                    "name": name,
                    "layer": step[1],
                    "bn": step[2],
                    "act": step[3],
                    "mt": f"mt{i}",
                    "pool": pool,
                    "out": out,
                }
            )
            prev = out
    return steps


@dataclass
class _Value:
    """What the exporter knows about a node's output: integer range, scale, shape."""

    range: IntRange
    scale: np.ndarray | np.float64
    shape: tuple[int, ...]


def _act_value(
    act: nn.Module, name: str, channels: int, shape: tuple[int, ...], attrs: dict[str, Any]
) -> _Value:
    scale = np.float64(_power_of_two(float(act.act_quant.scale().detach()), name))
    off = attrs["offset"]
    lo, hi = (-1, 1) if attrs.get("bipolar") else (off, off + 2 ** attrs["out_bits"] - 1)
    return _Value(
        IntRange(np.full(channels, lo, np.int64), np.full(channels, hi, np.int64)), scale, shape
    )


def export_model(model: nn.Module, meta: dict[str, Any] | None = None) -> Graph:
    """Turn a trained qfab Brevitas model (eval mode is forced) into a validated IR graph."""
    model.eval()
    shape = tuple(model.input_shape)
    example = torch.zeros(1, int(np.prod(shape)))  # zoo models take flattened NHWC input
    return export_plan_to_ir(model, graph_plan(model), model.input_quant, shape, example, meta)


def export_plan_to_ir(
    model: nn.Module,
    plan: list[dict[str, Any]],
    input_quant: nn.Module,
    shape: tuple[int, ...],
    example: torch.Tensor,
    meta: dict[str, Any] | None = None,
) -> Graph:
    """Export graph-plan ``plan`` (steps as :func:`graph_plan` returns them) of ``model``.

    ``input_quant`` is the model's input quantizer (the IR's ``InputQuant``), ``shape`` the
    IR input shape (``(features,)`` or NHWC ``(H, W, C)``) and ``example`` one input batch
    in the model's own layout: the classifier's bias quantizer needs the quant tensor the
    classifier really receives, so the model runs once on it. Shared by the zoo's
    hand-written plans (:func:`export_model`) and traced user models
    (:mod:`quant_train.trace_brevitas`).
    """
    model.eval()
    iq = input_quant.act_quant
    in_scale = _power_of_two(float(iq.scale().detach()), "input_quant")
    in_bits, signed = int(iq.bit_width()), bool(iq.is_signed)
    shape = tuple(shape)
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
    lo, hi = input_range(in_bits, signed)
    values = {
        "input": _Value(
            IntRange(np.full(shape[-1], lo, np.int64), np.full(shape[-1], hi, np.int64)),
            np.float64(in_scale),
            shape,
        )
    }
    exact = True
    flatten_perm: dict[str, np.ndarray] = {}
    for step in plan:
        kind = step["kind"]
        if kind == "flatten":
            x = values[step["input"]]
            h, w_, c = x.shape
            # IR index (y, x, ch) reads PyTorch's NCHW flatten index ch*H*W + y*W + x
            flatten_perm[step["out"]] = (
                np.arange(c)[None, None, :] * h * w_
                + np.arange(h)[:, None, None] * w_
                + np.arange(w_)[None, :, None]
            ).reshape(-1)
            nodes.append(Node(step["out"], "Flatten", [step["input"]]))
            values[step["out"]] = _Value(
                IntRange(np.tile(x.range.lo, h * w_), np.tile(x.range.hi, h * w_)),
                x.scale,
                (h * w_ * c,),
            )
            continue
        if kind == "pool_only":
            x = values[step["input"]]
            k = int(step["k"])
            nodes.append(
                Node(step["out"], "MaxPool", [step["input"]], {"kernel": [k, k], "stride": [k, k]})
            )
            values[step["out"]] = _Value(
                x.range, x.scale, (x.shape[0] // k, x.shape[1] // k, x.shape[2])
            )
            continue
        if kind == "shuffle":
            x = values[step["input"]]
            g = int(step["groups"])
            nodes.append(Node(step["out"], "ChannelShuffle", [step["input"]], {"groups": g}))
            order = shuffle_order(x.shape[-1], g)
            values[step["out"]] = _Value(
                IntRange(x.range.lo[order], x.range.hi[order]), x.scale, x.shape
            )
            continue
        if kind == "concat":
            ins = [values[i] for i in step["inputs"]]
            if len({float(v.scale) for v in ins}) != 1:
                raise ExportError(
                    f"{step['out']}: concatenated branches must share one scale "
                    "(give them one shared activation quantizer)"
                )
            nodes.append(Node(step["out"], "Concat", list(step["inputs"])))
            values[step["out"]] = _Value(
                IntRange(
                    np.concatenate([v.range.lo for v in ins]),
                    np.concatenate([v.range.hi for v in ins]),
                ),
                ins[0].scale,
                (*ins[0].shape[:-1], sum(v.shape[-1] for v in ins)),
            )
            continue
        if kind == "add":
            ins = [values[i] for i in step["inputs"]]
            exps = [int(np.log2(float(v.scale))) for v in ins]
            shifts = [e - min(exps) for e in exps]
            add = Node(step["name"], "Add", list(step["inputs"]), {"shift": shifts})
            acc = IntRange(
                sum(v.range.lo << s for v, s in zip(ins, shifts, strict=True)),
                sum(v.range.hi << s for v, s in zip(ins, shifts, strict=True)),
            )
            exact &= max(abs(acc.min), abs(acc.max)) < FLOAT32_EXACT_INT
            # thresholds of the activation after the sum, on the sum itself
            c = ins[0].shape[-1]
            spatial = ins[0].shape[:2] if len(ins[0].shape) == 3 else None
            mt_tensors, mt_attrs = _thresholds(
                step["mt"], acc, np.float64(2.0 ** min(exps)), None, step["act"], spatial
            )
            # An activation after a sum must rise with the sum: the add unit feeds a
            # stand-alone thresholding unit, which has no direction input.
            if "direction" in mt_tensors:
                raise ExportError(f"{step['mt']}: activation falls as the sum rises")
            nodes += [
                add,
                Node(step["mt"], "MultiThreshold", [step["name"]], mt_attrs, mt_tensors),
            ]
            values[step["mt"]] = _act_value(step["act"], step["mt"], c, ins[0].shape, mt_attrs)
            continue
        x = values[step["input"]]
        layer, name = step["layer"], step["name"]
        qw = layer.quant_weight()
        w = quant_ints(qw)
        if kind == "conv":
            w = w.transpose(0, 2, 3, 1)  # [OC, IC, KH, KW] -> [OC, KH, KW, IC]
            (sh, sw), (ph, pw) = layer.stride, layer.padding
            node_attrs = {
                "weight_bits": int(qw.bit_width),
                "stride": [sh, sw],
                "padding": [ph, pw],
                "groups": int(layer.groups),
            }
            h, w_, _ = x.shape
            out_shape: tuple[int, ...] = (
                (h + 2 * ph - w.shape[1]) // sh + 1,
                (w_ + 2 * pw - w.shape[2]) // sw + 1,
                w.shape[0],
            )

            def acc_range(wt: np.ndarray, a=node_attrs, xr=x.range) -> IntRange:
                return conv_acc_range(Node("tmp", "Conv2d", [], a, {"weight": wt}), xr)
        else:
            if step["input"] in flatten_perm:
                w = w[:, flatten_perm[step["input"]]]
            node_attrs = {"weight_bits": int(qw.bit_width)}
            out_shape = (w.shape[0],)

            def acc_range(wt: np.ndarray, xr=x.range) -> IntRange:
                return dense_acc_range(Node("tmp", "Dense", [], {}, {"weight": wt}), xr)

        acc_scale = x.scale * _scales(qw.scale, f"{name}.weight")
        acc = acc_range(w)
        exact &= max(abs(acc.min), abs(acc.max)) < FLOAT32_EXACT_INT
        if kind == "classifier":
            tensors = _weight_tensors(layer, w, name)
            if layer.bias is not None:
                tensors["bias"] = _quant_bias(model, layer, qw, acc_scale, name, example)
            node = Node(name, "Dense", [step["input"]], node_attrs, tensors)
            biased = dense_acc_range(node, x.range)
            exact &= max(abs(biased.min), abs(biased.max)) < FLOAT32_EXACT_INT
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
        spatial = out_shape[:2] if kind == "conv" else None
        bias = None
        if layer.bias is not None:  # traced user models; the zoo's hidden layers have none
            b = _quant_bias(model, layer, qw, acc_scale, name, example)
            bias = b * np.broadcast_to(acc_scale, b.shape)
            exact &= max(abs(acc.min) + abs(b).max(), abs(acc.max) + abs(b).max()) < (
                FLOAT32_EXACT_INT
            )
        mt_tensors, mt_attrs = _thresholds(
            step["mt"], acc, acc_scale, step["bn"], step["act"], spatial, bias
        )
        op = "Conv2d" if kind == "conv" else "Dense"
        nodes += [
            Node(name, op, [step["input"]], node_attrs, _weight_tensors(layer, w, name)),
            Node(step["mt"], "MultiThreshold", [name], mt_attrs, mt_tensors),
        ]
        values[step["mt"]] = _act_value(step["act"], step["mt"], w.shape[0], out_shape, mt_attrs)
        if step.get("pool"):
            k = int(step["pool"])
            pool = step["out"]
            nodes.append(Node(pool, "MaxPool", [step["mt"]], {"kernel": [k, k], "stride": [k, k]}))
            v = values[step["mt"]]
            values[pool] = _Value(
                v.range, v.scale, (out_shape[0] // k, out_shape[1] // k, out_shape[2])
            )
    meta = dict(meta or {})
    meta["float32_exact"] = bool(exact)
    return Graph(nodes, meta).validate("export")
