"""The qfab IR: a small graph of integer operators, stored as one ``.qfab.npz`` file.

The IR is the contract between stages (see ARCHITECTURE.md): training exports it, the
golden model executes it, the hardware passes lower it, the generators and boards read
the lowered graph from it. Nothing a later stage needs may live anywhere else.

One file holds two levels:

* the **model graph** (what the exporter writes: ``Dense``, ``Conv2d``,
  ``MultiThreshold``, ...), and
* optionally the **hardware graph** (:attr:`Graph.lowered`): what ``hw_gen``'s lowering
  passes made of it (``MVAU``, ``SlidingWindow``, ``DWC``, ...), each node with its
  folding and cycle estimate. Golden runs both; they agree node for node.

File layout: a NumPy ``.npz`` archive holding ``header.json`` (a UTF-8 JSON document as a
``uint8`` array: format version, ``meta``, the node list and, when lowered, the
``hardware`` node list and meta) and one array per node tensor, ``"<node>/<tensor>"``
for the model graph and ``"hw/<node>/<tensor>"`` for the hardware graph.

Nodes are kept in topological order and name their inputs. Every op (its attrs, tensors,
shapes, value range, golden execution) is defined once, in :mod:`qfab.ops`; this module
only checks the graph around them. Node names must be identifiers (letters, digits and
``_``, starting with a letter): the generators derive Verilog and C++ names from them.

Activations are ``[H, W, C]`` (images; ``InputQuant`` attr ``shape``) or ``[F]`` vectors;
golden stores every node's output flattened to ``[N, features]`` in NHWC order, and
:func:`infer_shapes` gives each node's shape.
"""

from __future__ import annotations

import copy
import io
import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qfab.errors import IRError
from qfab.ops import StreamOp, op_of
from qfab.ops.layout import shuffle_order
from qfab.values import decode_codebook, input_range, weight_range

__all__ = [
    "FORMAT_VERSION",
    "Graph",
    "Node",
    "decode_codebook",
    "infer_shapes",
    "input_range",
    "shuffle_order",
    "weight_range",
]

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)

#: A node name: an identifier the generators can use as (part of) a Verilog/C++ name.
SAFE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


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
    """Nodes in topological order plus free-form metadata (data set, training, scales).

    ``lowered`` is the hardware graph made from this (model) graph, or None.
    """

    nodes: list[Node]
    meta: dict[str, Any] = field(default_factory=dict)
    lowered: Graph | None = None

    def node(self, name: str) -> Node:
        """Return the node called ``name``; raise :class:`IRError` naming the known ones."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise IRError(f"no node '{name}' in graph (nodes: {[n.name for n in self.nodes]})")

    def has(self, name: str) -> bool:
        return any(n.name == name for n in self.nodes)

    def consumers(self, name: str) -> list[Node]:
        """Nodes that read the output of ``name``."""
        return [n for n in self.nodes if name in n.inputs]

    def copy(self) -> Graph:
        """A deep copy (passes return new graphs and never change their input)."""
        return copy.deepcopy(self)

    def validate(self, where: str = "graph", level: str = "model") -> Graph:
        """Check the contract: names, known ops with typed attrs and tensors, topological
        order, shapes; for a hardware graph also foldings and cycle estimates. A model
        graph's ``lowered`` graph is validated too."""
        seen: set[str] = set()
        for n in self.nodes:
            loc = f"{where}: node '{n.name}' ({n.op})"
            if not isinstance(n.name, str) or not SAFE_NAME.fullmatch(n.name):
                raise IRError(
                    f"{where}: node name {n.name!r} is not allowed; allowed: letters, digits "
                    "and '_', starting with a letter, at most 64 characters (the generators "
                    "derive Verilog names from it)"
                )
            if n.name in seen:
                raise IRError(f"{loc}: duplicate node name")
            op = op_of(n, where, level)
            for inp in n.inputs:
                if inp not in seen:
                    raise IRError(f"{loc}: {_why_not_earlier(self, n, inp)}")
            op.validate(n, loc)
            seen.add(n.name)
        if not self.nodes or self.nodes[0].op != "InputQuant":
            raise IRError(f"{where}: the first node must be InputQuant")
        if sum(n.op == "InputQuant" for n in self.nodes) != 1:
            raise IRError(f"{where}: exactly one InputQuant node")
        shapes = infer_shapes(self, where)
        if level == "hardware":
            _check_hardware(self, shapes, where)
        if self.lowered is not None:
            self.lowered.validate(f"{where} (hardware graph)", "hardware")
            _check_levels(self, self.lowered, where)
        return self

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically: a temp file in the same folder, then rename."""
        self.validate(str(path))
        path = Path(path)
        header: dict[str, Any] = {
            "format": "qfab-ir",
            "version": FORMAT_VERSION,
            "meta": self.meta,
            "nodes": _node_headers(self),
        }
        arrays = {f"{n.name}/{k}": v for n in self.nodes for k, v in n.tensors.items()}
        if self.lowered is not None:
            header["hardware"] = {"meta": self.lowered.meta, "nodes": _node_headers(self.lowered)}
            arrays.update(
                {f"hw/{n.name}/{k}": v for n in self.lowered.nodes for k, v in n.tensors.items()}
            )
        try:
            text = json.dumps(header, default=_json_default)
        except (TypeError, ValueError) as exc:  # meta is free-form: a set, an object
            raise IRError(f"{path}: the header cannot be written as JSON ({exc})") from None
        arrays["header.json"] = np.frombuffer(text.encode(), dtype=np.uint8)
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
        """Read and validate an IR file; every problem is an :class:`IRError` naming the
        file (and the node, attr or tensor) and what is allowed."""
        path = Path(path)
        data = _open_archive(path)
        header = _read_header(path, data)
        graph = cls(_read_nodes(path, data, header.get("nodes"), ""), _meta(path, header))
        hw = header.get("hardware")
        if hw is not None:
            if not isinstance(hw, dict):
                raise IRError(f"{path}: 'hardware' in the header is not a JSON object")
            graph.lowered = cls(_read_nodes(path, data, hw.get("nodes"), "hw/"), _meta(path, hw))
        _check_no_stray_members(path, data, graph)
        graph.validate(str(path))
        if graph.lowered is not None:
            _check_same_results(graph, str(path))
        return graph


#: The keys of the JSON header (``hardware`` only when lowered).
HEADER_KEYS = ("format", "version", "meta", "nodes", "hardware")


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


#: The keys of one node entry in the header: what each must be, and its check.
NODE_KEYS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "name": ("a string", lambda v: isinstance(v, str)),
    "op": ("a string", lambda v: isinstance(v, str)),
    "inputs": ("a list of node names", _is_str_list),
    "attrs": ("a JSON object", lambda v: isinstance(v, dict)),
    "tensors": ("a list of tensor names", _is_str_list),
}


def _open_archive(path: Path) -> Any:
    """The ``.npz`` archive, refused with a reason when it cannot be one: NumPy would
    try to unpickle a file that is not a zip, and a truncated zip is a ``BadZipFile``."""
    if path.is_dir():
        raise IRError(f"{path}: is a folder, not an IR file (a .qfab.npz file)")
    if not path.is_file():
        raise IRError(f"{path}: IR file not found")
    raw = path.read_bytes()
    if not raw:
        raise IRError(f"{path}: not a qfab IR file (the file is empty)")
    if not raw.startswith(b"PK"):
        raise IRError(f"{path}: not a qfab IR file (not a .npz archive: no zip signature)")
    try:
        return np.load(io.BytesIO(raw), allow_pickle=False)
    except Exception as exc:  # zipfile.BadZipFile, zlib.error, ... from a damaged file
        raise IRError(
            f"{path}: not a qfab IR file (truncated or damaged archive: "
            f"{type(exc).__name__}: {exc})"
        ) from None


def _read_header(path: Path, data: Any) -> dict[str, Any]:
    """The JSON header, with its format and version checked before anything else."""
    if "header.json" not in data.files:
        raise IRError(
            f"{path}: not a qfab IR file (no header.json in the archive; members: "
            f"{sorted(data.files)[:5]})"
        )
    try:
        header = json.loads(bytes(data["header.json"]).decode())
    except Exception as exc:  # a damaged member, bad UTF-8 or bad JSON
        raise IRError(
            f"{path}: not a qfab IR file (header.json cannot be read: {type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(header, dict):
        raise IRError(f"{path}: not a qfab IR file (header is not a JSON object)")
    if header.get("format") != "qfab-ir":
        raise IRError(f"{path}: not a qfab IR file (format {header.get('format')!r})")
    version = header.get("version")
    readable = f"{READABLE_VERSIONS[0]}..{READABLE_VERSIONS[-1]}"
    if not isinstance(version, int) or isinstance(version, bool):
        raise IRError(f"{path}: format version {version!r}; this qfab reads versions {readable}")
    if version > READABLE_VERSIONS[-1]:
        raise IRError(
            f"{path}: format version {version} is newer than this qfab reads ({readable}); "
            "upgrade qfab"
        )
    if version not in READABLE_VERSIONS:
        raise IRError(
            f"{path}: format version {version} is older than this qfab reads ({readable}); "
            "export the model again"
        )
    if extra := sorted(set(header) - set(HEADER_KEYS)):
        raise IRError(f"{path}: unknown header keys {extra}; allowed: {', '.join(HEADER_KEYS)}")
    return header


def _check_no_stray_members(path: Path, data: Any, graph: Graph) -> None:
    """Every array in the archive belongs to a node: a stray one means the header and the
    arrays disagree (a rename or a tensor the header forgot), so neither can be trusted."""
    known = {"header.json"}
    for prefix, g in (("", graph), ("hw/", graph.lowered)):
        if g is not None:
            known |= {f"{prefix}{n.name}/{k}" for n in g.nodes for k in n.tensors}
    if stray := sorted(set(data.files) - known):
        raise IRError(f"{path}: archive members {stray[:5]} belong to no node tensor in the header")


def _why_not_earlier(graph: Graph, node: Node, inp: str) -> str:
    """Why ``node`` may not read ``inp``: a node reads only nodes listed before it (the
    graph is in topological order), so a loop or a missing node is refused here."""
    if inp == node.name:
        return f"input '{inp}' is the node itself (a cycle); a node reads only earlier nodes"
    if graph.has(inp):
        return (
            f"input '{inp}' comes later in the node list (a cycle or nodes out of order); "
            "nodes must be in topological order"
        )
    return f"input '{inp}' names no node; nodes: {[n.name for n in graph.nodes]}"


def _check_levels(model: Graph, hw: Graph, where: str) -> None:
    """The hardware graph belongs to this model graph: same input quantizer and output
    dequantizer, and every ``model_node`` it names exists and is named once."""
    loc = f"{where} (hardware graph)"
    claimed: dict[str, str] = {}
    for n in hw.nodes:
        ref = n.attrs.get("model_node")
        if ref is None:
            continue
        if not model.has(ref):
            raise IRError(
                f"{loc}: node '{n.name}' claims to equal model node '{ref}', which does not exist"
            )
        if ref in claimed:
            raise IRError(f"{loc}: nodes '{claimed[ref]}' and '{n.name}' both claim '{ref}'")
        claimed[ref] = n.name
    m_in, h_in = model.nodes[0].attrs, hw.nodes[0].attrs
    if {k: v for k, v in m_in.items() if k != "pe"} != {k: v for k, v in h_in.items() if k != "pe"}:
        raise IRError(f"{loc}: its InputQuant differs from the model graph's")
    m_out, h_out = model.nodes[-1], hw.nodes[-1]
    if (
        m_out.op != "OutputDequant"
        or h_out.op != "OutputDequant"
        or any(not np.array_equal(m_out.tensors[k], h_out.tensors[k]) for k in ("scale", "bias"))
    ):
        raise IRError(f"{loc}: its OutputDequant differs from the model graph's")


def _node_headers(graph: Graph) -> list[dict[str, Any]]:
    return [
        {
            "name": n.name,
            "op": n.op,
            "inputs": n.inputs,
            "attrs": n.attrs,
            "tensors": sorted(n.tensors),
        }
        for n in graph.nodes
    ]


def _meta(path: Path, header: dict[str, Any]) -> dict[str, Any]:
    meta = header.get("meta", {})
    if not isinstance(meta, dict):
        raise IRError(f"{path}: 'meta' in the header is not a JSON object")
    return meta


def _check_same_results(graph: Graph, where: str) -> None:
    """A loaded hardware graph computes what its model graph computes: both run on the
    input's extremes and two random vectors (a tampered weight or shift shows)."""
    from qfab.golden import compare_levels

    first = graph.nodes[0]
    lo, hi = input_range(int(first.attrs["bits"]), bool(first.attrs["signed"]))
    feats = int(first.attrs["features"])
    x = np.random.default_rng(0).integers(lo, hi + 1, size=(4, feats))
    x[0], x[1] = lo, hi
    found = compare_levels(graph, graph.lowered, x)
    if found is not None:
        raise IRError(
            f"{where}: the hardware graph does not compute what the model graph computes "
            f"(node '{found[0]}', vector {found[1]}, channel {found[2]}: {found[3]} vs "
            f"{found[4]})"
        )


def _read_nodes(path: Path, data: Any, headers: Any, prefix: str) -> list[Node]:
    """The node entries of one graph level, each with its tensors from the archive."""
    level = "hardware graph" if prefix else "header"
    if not isinstance(headers, list):
        raise IRError(f"{path}: {level} has no node list")
    nodes: list[Node] = []
    for i, h in enumerate(headers):
        if not isinstance(h, dict):
            raise IRError(f"{path}: a node entry in the header is not a JSON object: {h!r:.60}")
        entry = f"{path}: {level} node #{i} ({h.get('name', '?')!r})"
        if missing := [k for k in NODE_KEYS if k not in h]:
            raise IRError(f"{entry} lacks {missing}")
        if extra := sorted(set(h) - set(NODE_KEYS)):
            raise IRError(f"{entry}: unknown keys {extra}; allowed: {', '.join(NODE_KEYS)}")
        for key, (want, ok) in NODE_KEYS.items():
            if not ok(h[key]):
                raise IRError(f"{entry}: '{key}' = {h[key]!r:.40} is not allowed; allowed: {want}")
        name = h["name"]
        if any(n.name == name for n in nodes):
            raise IRError(f"{entry}: duplicate node name '{name}'; node names are unique")
        tensors = {}
        for k in h["tensors"]:
            member = f"{prefix}{name}/{k}"
            if member not in data.files:
                raise IRError(
                    f"{path}: node '{name}': tensor '{k}' is missing from the archive "
                    f"(no member '{member}')"
                )
            try:
                tensors[k] = data[member]
            except Exception as exc:  # a damaged member of the archive
                raise IRError(
                    f"{path}: node '{name}': tensor '{k}' cannot be read "
                    f"({type(exc).__name__}: {exc})"
                ) from None
        nodes.append(Node(name, h["op"], list(h["inputs"]), dict(h["attrs"]), tensors))
    return nodes


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def infer_shapes(graph: Graph, where: str = "graph") -> dict[str, tuple[int, ...]]:
    """Output shape of every node (without the batch axis); raises on any inconsistency."""
    shapes: dict[str, tuple[int, ...]] = {}
    for n in graph.nodes:
        loc = f"{where}: node '{n.name}' ({n.op})"
        shapes[n.name] = tuple(
            int(v) for v in op_of(n, where).shape(n, [shapes[i] for i in n.inputs], loc)
        )
    return shapes


def beat_elems(node: Node) -> int | None:
    """Elements per beat a hardware-graph node streams out (the input port's ``pe``)."""
    op = op_of(node)
    if isinstance(op, StreamOp):
        return op.out_elems(node)
    return node.attrs.get("pe") if node.op == "InputQuant" else None


def _check_hardware(graph: Graph, shapes: dict[str, tuple[int, ...]], where: str) -> None:
    """Foldings fit their shapes, recorded cycle estimates equal the ops' formulas, every
    edge's beat widths agree (a width converter sits wherever they differ), and only a
    Fork feeds more than one unit (a stream has one reader)."""
    for n in graph.nodes:
        op = op_of(n, where)
        loc = f"{where}: node '{n.name}' ({n.op})"
        readers = [r.name for r in graph.nodes for src in r.inputs if src == n.name]
        if len(readers) > 1 and n.op != "Fork":
            raise IRError(
                f"{loc}: read by {readers}; a stream has one reader (a Fork must sit between)"
            )
        if not readers and n.op != "OutputDequant":
            raise IRError(f"{loc}: nothing reads it (its stream would never drain)")
        if not isinstance(op, StreamOp):
            continue
        ins = [shapes[i] for i in n.inputs]
        op.check_folding(n, ins, shapes[n.name], loc)
        for i, src in enumerate(n.inputs):
            got, want = beat_elems(graph.node(src)), op.in_elems(n, i, shapes[src])
            if got is not None and got != want:
                raise IRError(
                    f"{loc}: input '{src}' streams {got} elements per beat, this unit takes "
                    f"{want} (a DWC must sit between)"
                )
        cycles = n.attrs.get("cycles")
        if cycles is not None and cycles != op.cycles(n, ins, shapes[n.name]):
            raise IRError(
                f"{loc}: cycles = {cycles} disagrees with its folding "
                f"({op.cycles(n, ins, shapes[n.name])}); rerun the lowering"
            )
