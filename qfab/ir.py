"""The qfab IR: a small graph of integer operators, stored as one ``.qfab.npz`` file.

The IR is the contract between stages (see ARCHITECTURE.md): training exports it, the
golden model executes it, the hardware generator maps it, boards deploy it. Nothing a
later stage needs may live anywhere else.

File layout: a NumPy ``.npz`` archive holding

* ``header.json`` – a UTF-8 JSON document as a ``uint8`` array: format version,
  free-form ``meta`` and the node list (name, op, inputs, attrs, tensor names);
* one array per node tensor, named ``"<node>/<tensor>"``.

Nodes are kept in topological order and name their inputs, so chains (the common case)
and later graphs with skips or concatenations share one format.

Operators (all hardware tensors are integers; floats only at the two ends):

``InputQuant``
    float input -> integers: ``clip(round_half_even(x / scale), lo, hi)``; attrs
    ``bits``, ``signed``, ``scale`` (a power of two for an exact pipeline), ``features``.
``Dense``
    ``acc = x @ weight.T (+ bias)``; tensors ``weight`` (int, ``[out, in]``) and
    optional ``bias`` (int, in accumulator units); attrs ``weight_bits``. Shared weights
    (Deep Compression) add ``codebook`` (int, ``[K]``) and ``weight_index`` (int,
    ``[out, in]``, -1 for a zero weight); then ``weight`` must equal the decoded
    codebook and golden computes with the codebook. ``weight`` stays, because it is what
    dense hardware bakes in.
``MultiThreshold``
    per channel ``c``: ``out = offset + #{k : acc >= thresholds[c, k]}``; tensor
    ``thresholds`` (int, ``[C, 2**out_bits - 1]``, sorted per row); attrs ``out_bits``,
    ``offset``, optional ``bipolar`` (only with ``out_bits = 1``: ``out = 2*count - 1``,
    i.e. {-1, +1} as in BNNs). Bias, batch norm, scales and the activation quantizer are
    folded in here.
``Conv2d``
    NHWC convolution: tensor ``weight`` (int, ``[OC, KH, KW, IC / groups]``); attrs
    ``weight_bits``, ``stride`` ``[sh, sw]``, ``padding`` ``[ph, pw]`` (zeros), ``groups``.
``MaxPool``
    per channel maximum over ``kernel`` ``[kh, kw]`` windows with ``stride`` ``[sh, sw]``.
``Flatten``
    ``[H, W, C]`` -> ``[H*W*C]`` in NHWC order (the exporter permutes the next layer's
    weight columns from PyTorch's NCHW order).
``OutputDequant``
    ``logits = float32(acc) * scale + bias``; tensors ``scale`` and ``bias`` (float32, ``[C]``).

``Add``
    ``sum_i (x_i << shift[i])``: branches with different power-of-two scales meet on the
    finest one exactly (attr ``shift``, one non-negative left shift per input).
``Concat``
    channel concatenation of its inputs (same spatial shape; one shared scale).
``ChannelShuffle``
    ShuffleNet's permutation of channels with attr ``groups`` (:func:`shuffle_order`).

Activations are ``[H, W, C]`` (images; ``InputQuant`` attr ``shape``) or ``[F]`` vectors;
golden stores every node's output flattened to ``[N, features]`` in NHWC order, and
:func:`infer_shapes` gives each node's shape.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qfab.errors import IRError

FORMAT_VERSION = 1

#: For each op: required attrs, required tensors, optional tensors.
OP_SCHEMA: dict[str, tuple[set[str], set[str], set[str]]] = {
    "InputQuant": ({"bits", "signed", "scale", "features"}, set(), set()),
    "Dense": ({"weight_bits"}, {"weight"}, {"bias", "codebook", "weight_index"}),
    "MultiThreshold": ({"out_bits", "offset"}, {"thresholds"}, set()),
    "OutputDequant": (set(), {"scale", "bias"}, set()),
    "Conv2d": (
        {"weight_bits", "stride", "padding", "groups"},
        {"weight"},
        {"codebook", "weight_index"},
    ),
    "MaxPool": ({"kernel", "stride"}, set(), set()),
    "Flatten": (set(), set(), set()),
    "Add": ({"shift"}, set(), set()),
    "Concat": (set(), set(), set()),
    "ChannelShuffle": ({"groups"}, set(), set()),
}


@dataclass
class Node:
    """One operator: its name, op type, input node names, JSON attrs and arrays."""

    name: str
    op: str
    inputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Graph:
    """Nodes in topological order plus free-form metadata (data set, training, scales)."""

    nodes: list[Node]
    meta: dict[str, Any] = field(default_factory=dict)

    def node(self, name: str) -> Node:
        """Return the node called ``name``; raise :class:`IRError` naming the known ones."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise IRError(f"no node '{name}' in graph (nodes: {[n.name for n in self.nodes]})")

    def consumers(self, name: str) -> list[Node]:
        """Nodes that read the output of ``name``."""
        return [n for n in self.nodes if name in n.inputs]

    def validate(self, where: str = "graph") -> Graph:
        """Check the contract: known ops, attrs/tensors present, topological order, shapes."""
        seen: set[str] = set()
        for n in self.nodes:
            loc = f"{where}: node '{n.name}' ({n.op})"
            if n.op not in OP_SCHEMA:
                raise IRError(f"{loc}: unknown op; allowed: {sorted(OP_SCHEMA)}")
            if n.name in seen:
                raise IRError(f"{loc}: duplicate node name")
            req_attrs, req_tensors, opt_tensors = OP_SCHEMA[n.op]
            if missing := req_attrs - n.attrs.keys():
                raise IRError(f"{loc}: missing attrs {sorted(missing)}")
            if missing := req_tensors - n.tensors.keys():
                raise IRError(f"{loc}: missing tensors {sorted(missing)}")
            if extra := n.tensors.keys() - req_tensors - opt_tensors:
                raise IRError(f"{loc}: unexpected tensors {sorted(extra)}")
            for inp in n.inputs:
                if inp not in seen:
                    raise IRError(f"{loc}: input '{inp}' is not an earlier node")
            if n.op == "InputQuant" and n.inputs:
                raise IRError(f"{loc}: InputQuant takes the graph input, not {n.inputs}")
            want = {"Add": "2", "Concat": "2+"}.get(n.op, "1")
            if n.op != "InputQuant" and not _arity_ok(want, len(n.inputs)):
                raise IRError(f"{loc}: expects {want} inputs, got {n.inputs}")
            _check_node_tensors(n, loc)
            seen.add(n.name)
        if not self.nodes or self.nodes[0].op != "InputQuant":
            raise IRError(f"{where}: the first node must be InputQuant")
        infer_shapes(self, where)
        return self

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically: a temp file in the same folder, then rename."""
        self.validate(str(path))
        path = Path(path)
        header = {
            "format": "qfab-ir",
            "version": FORMAT_VERSION,
            "meta": self.meta,
            "nodes": [
                {
                    "name": n.name,
                    "op": n.op,
                    "inputs": n.inputs,
                    "attrs": n.attrs,
                    "tensors": sorted(n.tensors),
                }
                for n in self.nodes
            ],
        }
        arrays = {f"{n.name}/{k}": v for n in self.nodes for k, v in n.tensors.items()}
        arrays["header.json"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez_compressed(f, **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Graph:
        """Read and validate an IR file; every problem is an :class:`IRError` naming it."""
        path = Path(path)
        if not path.is_file():
            raise IRError(f"{path}: IR file not found")
        try:
            data = np.load(io.BytesIO(path.read_bytes()), allow_pickle=False)
            header = json.loads(bytes(data["header.json"]).decode())
        except (OSError, ValueError, KeyError) as exc:
            raise IRError(f"{path}: not a qfab IR file ({exc})") from None
        if header.get("format") != "qfab-ir" or header.get("version") != FORMAT_VERSION:
            raise IRError(
                f"{path}: format {header.get('format')!r} version {header.get('version')!r};"
                f" this qfab reads qfab-ir version {FORMAT_VERSION}"
            )
        nodes = []
        for h in header["nodes"]:
            try:
                tensors = {k: data[f"{h['name']}/{k}"] for k in h["tensors"]}
            except KeyError as exc:
                raise IRError(f"{path}: node '{h['name']}' lacks array {exc}") from None
            nodes.append(Node(h["name"], h["op"], list(h["inputs"]), h["attrs"], tensors))
        return cls(nodes, header.get("meta", {})).validate(str(path))


def _check_node_tensors(n: Node, loc: str) -> None:
    if n.op in ("Dense", "Conv2d"):
        w = n.tensors["weight"]
        if w.ndim != (2 if n.op == "Dense" else 4) or not np.issubdtype(w.dtype, np.integer):
            raise IRError(
                f"{loc}: weight must be a {2 if n.op == 'Dense' else 4}-D integer "
                f"array, got {w.dtype}{w.shape}"
            )
        bits = int(n.attrs["weight_bits"])
        lo, hi = weight_range(bits)
        if w.size and (w.min() < lo or w.max() > hi):
            raise IRError(f"{loc}: weights outside [{lo}, {hi}] for weight_bits={bits}")
        if "bias" in n.tensors and n.tensors["bias"].shape != (w.shape[0],):
            raise IRError(f"{loc}: bias shape {n.tensors['bias'].shape} != ({w.shape[0]},)")
        if ("codebook" in n.tensors) != ("weight_index" in n.tensors):
            raise IRError(f"{loc}: codebook and weight_index come together")
        if "codebook" in n.tensors:
            idx = n.tensors["weight_index"]
            k = len(n.tensors["codebook"])
            if idx.shape != w.shape or idx.min(initial=0) < -1 or idx.max(initial=-1) >= k:
                raise IRError(f"{loc}: weight_index must be [out, in] in -1..{k - 1}")
            if not np.array_equal(decode_codebook(n.tensors["codebook"], idx), w):
                raise IRError(f"{loc}: weight differs from codebook[weight_index]")
    elif n.op == "MultiThreshold":
        t = n.tensors["thresholds"]
        nt = 2 ** int(n.attrs["out_bits"]) - 1
        if t.ndim != 2 or t.shape[1] != nt or not np.issubdtype(t.dtype, np.integer):
            raise IRError(f"{loc}: thresholds must be integer [C, {nt}], got {t.dtype}{t.shape}")
        if np.any(np.diff(t, axis=1) < 0):
            raise IRError(f"{loc}: thresholds must be sorted ascending per channel")
        if n.attrs.get("bipolar") and (int(n.attrs["out_bits"]) != 1 or n.attrs["offset"] != 0):
            raise IRError(f"{loc}: bipolar needs out_bits = 1 and offset = 0")
    elif n.op == "OutputDequant" and n.tensors["scale"].shape != n.tensors["bias"].shape:
        raise IRError(f"{loc}: scale and bias shapes differ")


def decode_codebook(codebook: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Shared weights back to integers: ``codebook[index]``, and 0 where ``index`` is -1."""
    return np.where(index >= 0, np.asarray(codebook)[np.maximum(index, 0)], 0).astype(np.int64)


def weight_range(bits: int) -> tuple[int, int]:
    """Integer range of a ``bits``-wide signed weight.

    1 bit means bipolar {-1, +1}; otherwise narrow-range signed
    ``[-(2^(b-1) - 1), 2^(b-1) - 1]`` (Brevitas' default for weights), which keeps the
    range symmetric so a weight row can be negated without growing.
    """
    if bits == 1:
        return -1, 1
    return -(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1


def input_range(bits: int, signed: bool) -> tuple[int, int]:
    """Integer range of an ``InputQuant`` output: full-range two's complement or unsigned
    (Brevitas' activation quantizers are not narrow, unlike its weight quantizers)."""
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)


def infer_shapes(graph: Graph, where: str = "graph") -> dict[str, tuple[int, ...]]:
    """Output shape of every node (without the batch axis); raises on any inconsistency."""
    shapes: dict[str, tuple[int, ...]] = {}
    for n in graph.nodes:
        loc = f"{where}: node '{n.name}' ({n.op})"
        if n.op == "InputQuant":
            shape = tuple(int(v) for v in n.attrs.get("shape", [n.attrs["features"]]))
            if int(np.prod(shape)) != int(n.attrs["features"]):
                raise IRError(
                    f"{loc}: shape {list(shape)} does not hold {n.attrs['features']} features"
                )
            shapes[n.name] = shape
            continue
        x = shapes[n.inputs[0]]
        if n.op == "Dense":
            w = n.tensors["weight"]
            if len(x) != 1 or w.shape[1] != x[0]:
                raise IRError(
                    f"{loc}: weight has {w.shape[1]} inputs, input '{n.inputs[0]}' "
                    f"gives shape {list(x)}" + (" (Flatten first)" if len(x) == 3 else "")
                )
            shapes[n.name] = (int(w.shape[0]),)
        elif n.op == "Conv2d":
            shapes[n.name] = _conv_shape(n, x, loc)
        elif n.op == "MaxPool":
            if len(x) != 3:
                raise IRError(f"{loc}: needs an [H, W, C] input, got {list(x)}")
            (kh, kw), (sh, sw) = n.attrs["kernel"], n.attrs["stride"]
            if kh > x[0] or kw > x[1]:
                raise IRError(f"{loc}: kernel {[kh, kw]} larger than input {list(x[:2])}")
            shapes[n.name] = ((x[0] - kh) // sh + 1, (x[1] - kw) // sw + 1, x[2])
        elif n.op == "Flatten":
            shapes[n.name] = (int(np.prod(x)),)
        elif n.op in ("Add", "Concat"):
            ins = [shapes[i] for i in n.inputs]
            keep = (lambda s: s) if n.op == "Add" else (lambda s: s[:-1])
            if any(keep(s) != keep(ins[0]) for s in ins):
                what = "shapes" if n.op == "Add" else "shapes apart from channels"
                raise IRError(
                    f"{loc}: branch {what} differ: "
                    + ", ".join(f"{i} {list(s)}" for i, s in zip(n.inputs, ins, strict=True))
                )
            if n.op == "Add" and len(n.attrs["shift"]) != len(n.inputs):
                raise IRError(f"{loc}: one shift per input, got {n.attrs['shift']}")
            shapes[n.name] = ins[0] if n.op == "Add" else (*ins[0][:-1], sum(s[-1] for s in ins))
        elif n.op == "ChannelShuffle":
            g = int(n.attrs["groups"])
            if g < 1 or x[-1] % g:
                raise IRError(
                    f"{loc}: groups={g} does not divide {x[-1]} channels; allowed: "
                    f"{[d for d in range(1, x[-1] + 1) if x[-1] % d == 0]}"
                )
            shapes[n.name] = x
        else:  # MultiThreshold, OutputDequant: per channel, shape unchanged
            rows = (
                n.tensors["thresholds"].shape[0]
                if n.op == "MultiThreshold"
                else n.tensors["scale"].shape[0]
            )
            if rows != x[-1]:
                raise IRError(f"{loc}: {rows} channel parameters for input shape {list(x)}")
            shapes[n.name] = x
    return shapes


def _conv_shape(n: Node, x: tuple[int, ...], loc: str) -> tuple[int, int, int]:
    w = n.tensors["weight"]
    if len(x) != 3:
        raise IRError(f"{loc}: needs an [H, W, C] input, got {list(x)}")
    if w.ndim != 4:
        raise IRError(f"{loc}: weight must be [OC, KH, KW, IC/groups], got {list(w.shape)}")
    groups = int(n.attrs["groups"])
    if groups < 1 or x[2] % groups or w.shape[0] % groups or w.shape[3] * groups != x[2]:
        raise IRError(
            f"{loc}: groups={groups} does not fit {x[2]} input and {w.shape[0]} "
            f"output channels with weight {list(w.shape)}"
        )
    (sh, sw), (ph, pw) = n.attrs["stride"], n.attrs["padding"]
    oh = (x[0] + 2 * ph - w.shape[1]) // sh + 1
    ow = (x[1] + 2 * pw - w.shape[2]) // sw + 1
    if oh < 1 or ow < 1:
        raise IRError(f"{loc}: kernel {list(w.shape[1:3])} does not fit input {list(x[:2])}")
    return oh, ow, int(w.shape[0])


def _arity_ok(want: str, got: int) -> bool:
    return got >= int(want[:-1]) if want.endswith("+") else got == int(want)


def shuffle_order(channels: int, groups: int) -> np.ndarray:
    """ShuffleNet's channel shuffle: output channel j reads input channel ``order[j]``.

    View the channels as ``[groups, channels / groups]``, transpose, flatten.
    """
    return np.arange(channels).reshape(groups, channels // groups).T.reshape(-1)
