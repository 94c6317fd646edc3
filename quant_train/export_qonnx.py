"""Export the IR's model graph to QONNX, and run it with qonnx's own executor.

Two uses:

* **a file FINN and hls4ml users can open** (``model.onnx`` beside ``model.qfab.npz``):
  standard ONNX ops (MatMul, Conv with ``group``, MaxPool, Add, Mul, Concat, Gather,
  Transpose, Flatten) plus qonnx's ``Quant`` at the input and FINN's ``MultiThreshold``
  for every activation, with qonnx ``DataType`` annotations on every integer tensor
  (activations, accumulators, weights, thresholds) so FINN's streamlining and
  ``MinimizeAccumulatorWidth`` see the exact widths qfab derived;
* **an independent executor**: :func:`compare_qonnx_to_golden` runs that file with
  ``qonnx.core.onnx_exec.execute_onnx`` (onnxruntime for the standard ops, qonnx's
  numpy code for ``Quant`` and ``MultiThreshold``) and compares every node's integers
  with qfab's golden executor, which shares none of that code.

Layout: ONNX convolutions are NCHW, the IR is NHWC. Image tensors are NCHW in the ONNX
graph (the float input too: ``[N, C, H, W]``, as the PyTorch model took it), and a
``Flatten`` of an image first transposes to NHWC, so the flattened order (and the next
Dense layer's weight columns) is the IR's. Every IR node's output is the ONNX tensor of
the same name; helper tensors are named ``<node>/<what>`` (a ``/`` never occurs in an
IR node name, so they cannot collide).

Values: integers are carried in float32 tensors. That is exact only while every value
*and every partial sum* stays below 2^24 in magnitude, so the exporter checks the exact
ranges of :mod:`qfab.ranges` (and, for MatMul/Conv, the sum of ``|w|·max|x|`` that
bounds any order of summation) and refuses a graph that does not fit, naming the node.
Thresholds the accumulator can never reach (or always reaches) are clipped to the
reachable range plus one, which changes no output and keeps them exact in float32.
"""

from __future__ import annotations

import contextlib
import copy
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from qfab.errors import ExportError, QfabError
from qfab.golden import run_golden
from qfab.ir import Graph, Node, infer_shapes
from qfab.ops.layout import shuffle_order
from qfab.ops.linear import conv_acc_range, dense_acc_range
from qfab.ranges import node_ranges
from qfab.values import IntRange

__all__ = [
    "GLOBAL_IN",
    "QonnxCheck",
    "compare_qonnx_to_golden",
    "export_qonnx",
    "load_qonnx",
    "qonnx_model",
    "run_qonnx",
]

#: Name of the float input tensor (FINN's convention).
GLOBAL_IN = "global_in"
QONNX_DOMAIN = "qonnx.custom_op.general"
ONNX_OPSET = 13
#: float32 carries every integer of magnitude below 2^24 exactly (24-bit significand).
FLOAT32_EXACT = 2**24

Shape = tuple[int, ...]


# --------------------------------------------------------------------------- export


class _Builder:
    """Collects ONNX nodes, initializers and qonnx DataType annotations for one graph."""

    def __init__(self, graph: Graph, ranges: dict[str, IntRange]) -> None:
        self.shapes = infer_shapes(graph)
        self.ranges = ranges
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[TensorProto] = []
        self.dtypes: dict[str, str] = {}

    def const(self, name: str, value: np.ndarray, dtype: str | None = None) -> str:
        """A float32 (or int64 index) initializer, optionally annotated with its DataType."""
        arr = np.asarray(value)
        arr = arr.astype(np.int64 if arr.dtype.kind in "iu" and dtype == "INDEX" else np.float32)
        self.inits.append(numpy_helper.from_array(arr, name))
        if dtype is not None and dtype != "INDEX":
            self.dtypes[name] = dtype
        return name

    def add(self, op: str, inputs: list[str], output: str, domain: str = "", **attrs: Any) -> str:
        self.nodes.append(
            helper.make_node(op, inputs, [output], name=output, domain=domain, **attrs)
        )
        return output

    def channel_shape(self, node_name: str) -> list[int]:
        """Broadcast shape of a per-channel vector against ``node_name``'s ONNX tensor."""
        return [-1, 1, 1] if len(self.shapes[node_name]) == 3 else [-1]


def _datatype(r: IntRange) -> str:
    """The qonnx DataType name of a value range: BIPOLAR, BINARY, UINT<b> or INT<b>."""
    if r.bipolar:
        return "BIPOLAR"
    if r.min >= 0:
        return "BINARY" if r.max <= 1 else f"UINT{max(1, r.max.bit_length())}"
    return f"INT{r.bits}"


def _weight_datatype(node: Node) -> str:
    """1-bit weights are bipolar; wider ones narrow-range signed (Brevitas' default)."""
    bits = int(node.attrs["weight_bits"])
    return "BIPOLAR" if bits == 1 else f"INT{bits}"


def _is_power_of_two(value: float) -> bool:
    mantissa, _ = np.frexp(np.float32(value))
    return bool(mantissa == 0.5)


def _input_quant(b: _Builder, node: Node) -> None:
    """``clip(round_half_even(x / scale))``: scaling, then qonnx ``Quant`` with scale 1.

    A power-of-two scale becomes a Mul by its reciprocal (exact, and what FINN's
    streamlining absorbs); any other scale stays a Div, as golden computes it. qonnx's
    ``Quant`` turns a signed 1-bit quantizer into ±1 (a documented quirk of its
    ``int_quant``), so that one case is Round + Clip to golden's [-1, 0].
    """
    scale = float(node.attrs["scale"])
    bits, signed = int(node.attrs["bits"]), bool(node.attrs["signed"])
    scaled = f"{node.name}/scaled"
    if _is_power_of_two(scale):
        b.add(
            "Mul", [GLOBAL_IN, b.const(f"{node.name}/inv_scale", np.float32(1.0 / scale))], scaled
        )
    else:
        b.add("Div", [GLOBAL_IN, b.const(f"{node.name}/scale", np.float32(scale))], scaled)
    if signed and bits == 1:
        rounded = b.add("Round", [scaled], f"{node.name}/rounded")
        lo, hi = b.const(f"{node.name}/min", np.float32(-1)), b.const(f"{node.name}/max", 0.0)
        b.add("Clip", [rounded, lo, hi], node.name)
        return
    inputs = [
        scaled,
        b.const(f"{node.name}/unit_scale", np.float32(1.0)),
        b.const(f"{node.name}/zeropt", np.float32(0.0)),
        b.const(f"{node.name}/bitwidth", np.float32(bits)),
    ]
    b.add(
        "Quant",
        inputs,
        node.name,
        domain=QONNX_DOMAIN,
        signed=int(signed),
        narrow=0,
        rounding_mode="ROUND",
    )


def _dense(b: _Builder, node: Node) -> None:
    w = node.tensors["weight"].astype(np.int64)
    wt = b.const(f"{node.name}/weight", w.T, _weight_datatype(node))  # [in, out]
    if "bias" not in node.tensors:
        b.add("MatMul", [node.inputs[0], wt], node.name)
        return
    acc = b.add("MatMul", [node.inputs[0], wt], f"{node.name}/matmul")
    bias = node.tensors["bias"].astype(np.int64)
    b.add("Add", [acc, b.const(f"{node.name}/bias", bias, _datatype(_full(bias)))], node.name)


def _conv2d(b: _Builder, node: Node) -> None:
    w = node.tensors["weight"].astype(np.int64)  # [OC, KH, KW, ICg] -> ONNX [OC, ICg, KH, KW]
    (ph, pw), stride = node.attrs["padding"], node.attrs["stride"]
    wt = b.const(f"{node.name}/weight", w.transpose(0, 3, 1, 2), _weight_datatype(node))
    b.add(
        "Conv",
        [node.inputs[0], wt],
        node.name,
        kernel_shape=[int(w.shape[1]), int(w.shape[2])],
        strides=[int(s) for s in stride],
        pads=[int(ph), int(pw), int(ph), int(pw)],
        group=int(node.attrs["groups"]),
    )


def _multi_threshold(b: _Builder, node: Node) -> None:
    """FINN's ``MultiThreshold`` on ``direction * acc`` (a Mul only if a channel falls).

    Thresholds are clipped to ``[lo, hi + 1]`` of what they are compared with: below
    ``lo`` a threshold is always reached, above ``hi`` never, so no output changes. A
    signed offset is ``out_bias``; bipolar is ``out_scale = 2, out_bias = -1`` (as FINN
    converts a bipolar quantizer).
    """
    src = node.inputs[0]
    t = node.tensors["thresholds"].astype(np.int64)
    acc = b.ranges[src]
    lo, hi = acc.lo, acc.hi
    if len(lo) != t.shape[0]:  # ranges are per channel; guard the contract anyway
        lo, hi = np.full(t.shape[0], acc.min), np.full(t.shape[0], acc.max)
    d = node.tensors.get("direction")
    if d is not None and np.any(d < 0):
        d = d.astype(np.int64)
        lo, hi = np.where(d < 0, -hi, lo), np.where(d < 0, -lo, hi)
        direction = b.const(f"{node.name}/direction", d.reshape(b.channel_shape(src)), "INT2")
        src = b.add("Mul", [src, direction], f"{node.name}/directed")
        b.dtypes[src] = _datatype(IntRange(lo, hi))
    t = np.clip(t, lo[:, None], hi[:, None] + 1)
    bipolar = bool(node.attrs.get("bipolar"))
    thresholds = b.const(f"{node.name}/thresholds", t, _datatype(_full(t)))
    b.add(
        "MultiThreshold",
        [src, thresholds],
        node.name,
        domain=QONNX_DOMAIN,
        out_dtype=_datatype(b.ranges[node.name]),
        out_scale=2.0 if bipolar else 1.0,
        out_bias=-1.0 if bipolar else float(node.attrs["offset"]),
        data_layout="NCHW" if len(b.shapes[node.inputs[0]]) == 3 else "NC",
    )


def _max_pool(b: _Builder, node: Node) -> None:
    b.add(
        "MaxPool",
        [node.inputs[0]],
        node.name,
        kernel_shape=[int(k) for k in node.attrs["kernel"]],
        strides=[int(s) for s in node.attrs["stride"]],
    )


def _flatten(b: _Builder, node: Node) -> None:
    """NCHW -> NHWC -> [N, H*W*C]: the IR flattens NHWC, so the next weights fit as they are."""
    src = node.inputs[0]
    if len(b.shapes[src]) == 3:
        src = b.add("Transpose", [src], f"{node.name}/nhwc", perm=[0, 2, 3, 1])
        b.add("Flatten", [src], node.name, axis=1)
    else:
        b.add("Identity", [src], node.name)


def _add(b: _Builder, node: Node) -> None:
    """``x0 * 2^s0 + x1 * 2^s1``: the power-of-two shifts as exact float Muls."""
    terms = []
    for i, (src, shift) in enumerate(zip(node.inputs, node.attrs["shift"], strict=True)):
        if int(shift):
            factor = b.const(f"{node.name}/factor{i}", np.float32(2.0 ** int(shift)))
            src = b.add("Mul", [src, factor], f"{node.name}/shifted{i}")
            r = b.ranges[node.inputs[i]]
            b.dtypes[src] = _datatype(IntRange(r.lo << int(shift), r.hi << int(shift)))
        terms.append(src)
    b.add("Add", terms, node.name)


def _concat(b: _Builder, node: Node) -> None:
    b.add("Concat", list(node.inputs), node.name, axis=1)


def _channel_shuffle(b: _Builder, node: Node) -> None:
    """Output channel j is input channel ``shuffle_order[j]``: a Gather on the channel axis."""
    c = b.shapes[node.name][-1]
    order = shuffle_order(c, int(node.attrs["groups"]))
    idx = b.const(f"{node.name}/order", order, "INDEX")
    b.add("Gather", [node.inputs[0], idx], node.name, axis=1)


def _output_dequant(b: _Builder, node: Node) -> None:
    """``float32(acc) * scale + bias``: a Mul then an Add, in float32 like golden."""
    src = node.inputs[0]
    shape = b.channel_shape(src)
    scale = b.const(f"{node.name}/scale", node.tensors["scale"].reshape(shape))
    bias = b.const(f"{node.name}/bias", node.tensors["bias"].reshape(shape))
    b.add("Add", [b.add("Mul", [src, scale], f"{node.name}/scaled"), bias], node.name)


_EMIT: dict[str, Callable[[_Builder, Node], None]] = {
    "InputQuant": _input_quant,
    "Dense": _dense,
    "Conv2d": _conv2d,
    "MultiThreshold": _multi_threshold,
    "MaxPool": _max_pool,
    "Flatten": _flatten,
    "Add": _add,
    "Concat": _concat,
    "ChannelShuffle": _channel_shuffle,
    "OutputDequant": _output_dequant,
}


def _full(values: np.ndarray) -> IntRange:
    return IntRange(np.array([int(values.min(initial=0))]), np.array([int(values.max(initial=0))]))


def _abs_range(r: IntRange) -> IntRange:
    """``[0, max(|lo|, |hi|)]`` per channel: what a partial sum's magnitude is built from."""
    return IntRange(np.zeros_like(r.lo), np.maximum(np.abs(r.lo), np.abs(r.hi)))


def _partial_sum_bound(node: Node, ins: list[IntRange]) -> int:
    """Largest magnitude any intermediate value of ``node``'s ONNX computation can reach.

    onnxruntime may sum a dot product in any order, so every partial sum is bounded by
    ``sum_j |w_j| * max|x_j|`` (plus ``|bias|``), not by the final range alone; an Add's
    shifted terms are intermediate values too.
    """
    if node.op == "Dense":
        w = np.abs(node.tensors["weight"].astype(np.int64))
        bound = dense_acc_range(w, _abs_range(ins[0])).max
        return bound + int(np.abs(node.tensors.get("bias", np.zeros(1, np.int64))).max())
    if node.op == "Conv2d":
        w = np.abs(node.tensors["weight"].astype(np.int64))
        return conv_acc_range(w, int(node.attrs["groups"]), False, _abs_range(ins[0])).max
    if node.op == "Add":
        shifts = [int(s) for s in node.attrs["shift"]]
        return max(_abs_range(r).max << s for r, s in zip(ins, shifts, strict=True))
    return 0


def check_float32_exact(graph: Graph, ranges: dict[str, IntRange]) -> None:
    """Refuse a graph whose integers (or partial sums) float32 cannot carry exactly."""
    for n in graph.nodes:
        worst = _partial_sum_bound(n, [ranges[i] for i in n.inputs if i in ranges])
        if n.name in ranges:
            worst = max(worst, _abs_range(ranges[n.name]).max)
        if worst >= FLOAT32_EXACT:
            raise ExportError(
                f"QONNX export: node '{n.name}' ({n.op}) reaches magnitude {worst}; QONNX "
                f"carries integers in float32 tensors, exact only below 2^24 = "
                f"{FLOAT32_EXACT} (use fewer bits or a smaller fan-in)"
            )


def qonnx_model(graph: Graph, batch: int = 1) -> onnx.ModelProto:
    """The QONNX model of ``graph``'s model graph (the hardware graph is not exported).

    ``batch`` fixes the first dimension (qonnx's executor checks input shapes exactly;
    FINN builds for batch 1). Raises :class:`ExportError` naming the node if an op is not
    exportable or a value does not fit float32 exactly.
    """
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes

    if not isinstance(graph, Graph):
        raise ExportError(f"QONNX export needs a qfab Graph, got {type(graph).__name__}")
    if batch < 1:
        raise ExportError(f"QONNX export: batch = {batch}; allowed: 1 or more")
    try:
        graph.validate("QONNX export")
    except QfabError as exc:
        raise ExportError(str(exc)) from None
    if graph.nodes[-1].op != "OutputDequant":
        raise ExportError("QONNX export: the graph must end in an OutputDequant node")
    ranges = node_ranges(graph)
    check_float32_exact(graph, ranges)
    b = _Builder(graph, ranges)
    for n in graph.nodes:
        emit = _EMIT.get(n.op)
        if emit is None:
            raise ExportError(
                f"QONNX export: node '{n.name}' ({n.op}) has no QONNX form; "
                f"exportable ops: {sorted(_EMIT)}"
            )
        emit(b, n)
        if n.name in ranges:
            b.dtypes[n.name] = _datatype(ranges[n.name])
    first, last = graph.nodes[0], graph.nodes[-1]
    in_shape = _onnx_shape(b.shapes[first.name], batch)
    out_shape = _onnx_shape(b.shapes[last.name], batch)
    onnx_graph = helper.make_graph(
        b.nodes,
        "qfab_model",
        [helper.make_tensor_value_info(GLOBAL_IN, TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info(last.name, TensorProto.FLOAT, out_shape)],
        initializer=b.inits,
        doc_string=(
            "Exported by qfab from its IR model graph. Every IR node is the tensor of the "
            "same name; integers are carried in float32 (exact below 2^24, checked); "
            "image tensors are NCHW, Flatten transposes to NHWC first as the IR does."
        ),
    )
    model = helper.make_model(
        onnx_graph,
        producer_name="qfab",
        opset_imports=[
            helper.make_opsetid("", ONNX_OPSET),
            helper.make_opsetid(QONNX_DOMAIN, 1),
        ],
    )
    wrapper = ModelWrapper(model).transform(InferShapes())
    for name, dtype in b.dtypes.items():
        wrapper.set_tensor_datatype(name, DataType[dtype])
    return wrapper.model


def _onnx_shape(shape: Shape, batch: int) -> list[int]:
    """IR shape ``[H, W, C]`` or ``[F]`` -> ONNX ``[N, C, H, W]`` or ``[N, F]``."""
    if len(shape) == 3:
        h, w, c = shape
        return [batch, c, h, w]
    return [batch, *shape]


def export_qonnx(graph: Graph, path: str | os.PathLike[str], batch: int = 1) -> Path:
    """Write ``graph``'s QONNX model to ``path`` atomically (temp file, then rename)."""
    model = qonnx_model(graph, batch)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".onnx.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(model.SerializeToString())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_qonnx(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """Read an exported ``model.onnx``; a missing or damaged file is an :class:`ExportError`."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: QONNX file not found")
    try:
        return onnx.load_model_from_string(path.read_bytes())
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ExportError(f"{path}: not an ONNX model ({type(exc).__name__}: {exc})") from None


# --------------------------------------------------------------------------- execution


def _with_batch(model: onnx.ModelProto, batch: int) -> onnx.ModelProto:
    """A copy of ``model`` whose activations have first dimension ``batch``."""
    out = copy.deepcopy(model)
    inits = {t.name for t in out.graph.initializer}
    for vi in [*out.graph.input, *out.graph.output, *out.graph.value_info]:
        if vi.name not in inits and vi.type.tensor_type.shape.dim:
            vi.type.tensor_type.shape.dim[0].dim_value = batch
    return out


@contextlib.contextmanager
def _unsanitized() -> Iterator[None]:
    """qonnx rounds annotated tensors that are not integers ("sanitize"); switched off
    here, so a float error in the export shows as a mismatch instead of being repaired."""
    old = os.environ.get("SANITIZE_QUANT_TENSORS")
    os.environ["SANITIZE_QUANT_TENSORS"] = "0"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("SANITIZE_QUANT_TENSORS", None)
        else:
            os.environ["SANITIZE_QUANT_TENSORS"] = old


def run_qonnx(model: onnx.ModelProto, x: np.ndarray) -> dict[str, np.ndarray]:
    """Run ``model`` with qonnx's executor on float inputs ``x`` ``[N, features]`` (NHWC
    order, as golden takes them); every activation tensor, as ``[N, features]`` in NHWC
    order (image tensors transposed back from NCHW), by tensor name."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    x = np.asarray(x, dtype=np.float32)
    in_dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    features = int(np.prod(in_dims[1:]))
    if x.ndim != 2 or x.shape[1] != features:
        raise ExportError(
            f"QONNX run: input shape {list(x.shape)}, the model takes [N, {features}]"
        )
    n = len(x)
    if len(in_dims) == 4:
        _, c, h, w = in_dims
        x = x.reshape(n, h, w, c).transpose(0, 3, 1, 2)
    wrapper = ModelWrapper(_with_batch(model, n))
    with _unsanitized():
        context = execute_onnx(wrapper, {model.graph.input[0].name: np.ascontiguousarray(x)}, True)
    inits = {t.name for t in model.graph.initializer}
    out = {}
    for name, value in context.items():
        if name in inits or value is None or value.ndim < 2 or value.shape[0] != n:
            continue
        nhwc = value.transpose(0, 2, 3, 1) if value.ndim == 4 else value
        out[name] = nhwc.reshape(n, -1)
    return out


@dataclass
class QonnxCheck:
    """qonnx's execution against golden: vectors run, vectors with any difference, and
    the first difference (node, vector, position, golden value, qonnx value)."""

    vectors: int
    mismatches: int
    first_mismatch: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "vectors": self.vectors,
            "mismatches": self.mismatches,
            "first_mismatch": self.first_mismatch,
        }


def _position(shape: Shape, feature: int) -> str:
    if len(shape) == 3:
        y, x, c = np.unravel_index(feature, shape)
        return f"pixel ({int(y)}, {int(x)}), channel {int(c)}"
    return f"channel {feature}"


def compare_qonnx_to_golden(graph: Graph, model: onnx.ModelProto, x: np.ndarray) -> QonnxCheck:
    """Run ``model`` (the QONNX export of ``graph``) with qonnx and golden on float inputs
    ``x``; every node's values must be equal (integers exactly, logits bit for bit)."""
    gold = run_golden(graph, x)
    got = run_qonnx(model, x)
    shapes = infer_shapes(graph)
    bad = np.zeros(len(x), dtype=bool)
    first = None
    for n in graph.nodes:
        if n.name not in got:
            raise ExportError(f"QONNX run: the model has no tensor '{n.name}' (IR node {n.op})")
        want = gold.outputs[n.name].astype(np.float64)
        have = got[n.name].astype(np.float64)
        if want.shape != have.shape:
            raise ExportError(
                f"QONNX run: tensor '{n.name}' has shape {list(have.shape)}, golden "
                f"{list(want.shape)}"
            )
        diff = want != have
        bad |= diff.any(axis=1)
        if first is None and diff.any():
            v, f = (int(i) for i in np.argwhere(diff)[0])
            first = (
                f"node '{n.name}' ({n.op}), vector {v}, {_position(shapes[n.name], f)}: "
                f"golden {_fmt(want[v, f])}, qonnx {_fmt(have[v, f])}"
            )
    return QonnxCheck(len(x), int(bad.sum()), first)


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))
