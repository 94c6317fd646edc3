"""What every operator declares, in one place: typed attrs, tensors, inputs, and behaviour.

An op class (one per operator kind, registered by name in :mod:`qfab.ops`) owns

* its **schema**: attrs with their types and defaults (unknown attrs are an error, a
  ``"2"`` where an int belongs is an error), tensors with dtype kind and rank, how many
  inputs it takes, and at which level of the IR it may appear (model graph, hardware
  graph, or both);
* its **shape inference**, its exact **integer value range** per channel, and its
  **golden execution** on int64 arrays.

Hardware ops (:class:`StreamOp`) add what a streaming unit knows about itself: elements
per beat on each port and its cycles per frame (FINN's ``get_exp_cycles``). The IR
(:mod:`qfab.ir`), ranges, golden and the generators look ops up instead of branching
on op names, so a new op is one class here plus its template in the generator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from qfab.errors import IRError
from qfab.values import IntRange

if TYPE_CHECKING:
    from qfab.ir import Node

Shape = tuple[int, ...]

REQUIRED: Any = object()

_KINDS = ("int", "bool", "float", "str", "ints", "strs")


@dataclass(frozen=True)
class Attr:
    """One attribute: its kind, default (``REQUIRED`` if none), and limits.

    Kinds: ``int``, ``bool``, ``float`` (ints allowed), ``str``, ``ints`` (a list of
    ints, ``length`` long if given), ``strs``. ``minimum`` bounds ints and each entry of
    ``ints``; ``choices`` lists the allowed values of a ``str``/``int``.
    """

    kind: str
    default: Any = REQUIRED
    length: int | None = None
    minimum: int | None = None
    choices: tuple[Any, ...] | None = None
    maximum: int | None = None
    doc: str = ""

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"attr kind {self.kind!r}; allowed: {_KINDS}")

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def check(self, value: Any, where: str) -> None:
        """Raise :class:`IRError` naming ``where`` if ``value`` does not fit."""
        checks = {
            "int": lambda v: _is_int(v),
            "bool": lambda v: isinstance(v, bool),
            "float": lambda v: (isinstance(v, float) and bool(np.isfinite(v))) or _is_int(v),
            "str": lambda v: isinstance(v, str),
            "ints": lambda v: isinstance(v, list | tuple) and all(_is_int(x) for x in v),
            "strs": lambda v: isinstance(v, list | tuple) and all(isinstance(x, str) for x in v),
        }
        if not checks[self.kind](value):
            raise IRError(f"{where} = {value!r} is not allowed; allowed: {self.describe()}")
        if self.kind == "ints" and self.length is not None and len(value) != self.length:
            raise IRError(f"{where} = {value!r} must have {self.length} entries")
        if self.kind in ("int", "ints"):
            values = value if self.kind == "ints" else [value]
            low = self.minimum is not None and any(v < self.minimum for v in values)
            high = self.maximum is not None and any(v > self.maximum for v in values)
            if low or high:
                raise IRError(f"{where} = {value!r} is not allowed; allowed: {self.describe()}")
        if self.choices is not None and value not in self.choices:
            raise IRError(f"{where} = {value!r} is not allowed; allowed: {list(self.choices)}")

    def describe(self) -> str:
        kind = {
            "int": "an integer",
            "bool": "true or false",
            "float": "a number",
            "str": "a string",
            "ints": f"a list of {self.length or 'any number of'} integers",
            "strs": "a list of strings",
        }[self.kind]
        if self.minimum is not None and self.maximum is not None:
            kind += f" in {self.minimum}..{self.maximum}"
        elif self.minimum is not None:
            kind += f" >= {self.minimum}"
        return kind


def _is_int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


@dataclass(frozen=True)
class Tensor:
    """One tensor of a node: ``int`` or ``float`` elements, ``ndim`` axes."""

    dtype: str
    ndim: int
    required: bool = True


#: Attrs every hardware node may carry: its cycle estimate and the model node it equals.
HARDWARE_ATTRS: dict[str, Attr] = {
    "cycles": Attr("int", None, minimum=1, doc="modelled cycles per frame (checked)"),
    "model_node": Attr("str", None, doc="model-graph node whose output this one equals"),
}


class Op:
    """Base class of all operators (see the module docstring)."""

    name: ClassVar[str] = ""
    level: ClassVar[str] = "model"  # "model", "hardware" or "both"
    attrs: ClassVar[Mapping[str, Attr]] = {}
    tensors: ClassVar[Mapping[str, Tensor]] = {}
    arity: ClassVar[tuple[int, int | None]] = (1, 1)  # min, max (None: any) inputs
    doc: ClassVar[str] = ""

    # ---------------------------------------------------------------- schema
    def validate(self, node: Node, loc: str) -> None:
        """Attrs (typed, no unknown ones, defaults filled in), tensors, arity, then
        :meth:`check` for what the schema cannot say."""
        for key in node.attrs:
            if key not in self.attrs:
                raise IRError(
                    f"{loc}: unknown attr '{key}'; allowed: {', '.join(self.attrs) or 'none'}"
                )
        for key, spec in self.attrs.items():
            if key not in node.attrs:
                if spec.required:
                    raise IRError(f"{loc}: missing attrs ['{key}']")
                continue
            if node.attrs[key] is None and spec.default is None:
                continue
            spec.check(node.attrs[key], f"{loc}: attr '{key}'")
        for key, spec in self.tensors.items():
            if key not in node.tensors:
                if spec.required:
                    raise IRError(f"{loc}: missing tensors ['{key}']")
                continue
            t = node.tensors[key]
            kind = np.integer if spec.dtype == "int" else np.floating
            if not isinstance(t, np.ndarray) or not np.issubdtype(t.dtype, kind):
                raise IRError(
                    f"{loc}: tensor '{key}' must hold {spec.dtype} values, got "
                    f"{getattr(t, 'dtype', type(t).__name__)}"
                )
            if t.ndim != spec.ndim:
                raise IRError(
                    f"{loc}: tensor '{key}' must be {spec.ndim}-D, got shape {list(t.shape)}"
                )
        if extra := sorted(node.tensors.keys() - self.tensors.keys()):
            raise IRError(f"{loc}: unexpected tensors {extra}")
        low, high = self.arity
        n = len(node.inputs)
        if n < low or (high is not None and n > high):
            want = f"{low}" if low == high else f"{low}+" if high is None else f"{low}..{high}"
            raise IRError(f"{loc}: expects {want} inputs, got {node.inputs}")
        self.check(node, loc)

    def attr(self, node: Node, key: str) -> Any:
        """The attr's value, or its default."""
        return node.attrs.get(key, self.attrs[key].default)

    def check(self, node: Node, loc: str) -> None:
        """Op-specific constraints on attrs and tensors (shapes come in :meth:`shape`)."""

    # ---------------------------------------------------------------- behaviour
    def shape(self, node: Node, ins: Sequence[Shape], loc: str) -> Shape:
        """Output shape (without the batch axis) from the input shapes."""
        raise NotImplementedError

    def value_range(
        self, node: Node, ins: Sequence[IntRange], in_shapes: Sequence[Shape], shape: Shape
    ) -> IntRange | None:
        """Exact per-channel output range (None for float outputs)."""
        raise NotImplementedError

    def execute(
        self, node: Node, xs: Sequence[np.ndarray], in_shapes: Sequence[Shape], shape: Shape
    ) -> np.ndarray:
        """Golden execution: inputs ``[N, features]`` int64 -> output ``[N, features]``."""
        raise NotImplementedError


class StreamOp(Op):
    """A unit of the hardware graph: a streaming dataflow node with its own folding."""

    level: ClassVar[str] = "hardware"

    def in_elems(self, node: Node, index: int, in_shape: Shape) -> int:
        """Elements per beat on input ``index`` (whose shape is ``in_shape``)."""
        return int(node.attrs["pe"])

    def out_elems(self, node: Node) -> int:
        """Elements per beat on the output."""
        return int(node.attrs["pe"])

    def cycles(self, node: Node, in_shapes: Sequence[Shape], shape: Shape) -> int:
        """Cycles per frame in steady state (the unit alone, never starved or stalled)."""
        raise NotImplementedError

    def check_folding(self, node: Node, in_shapes: Sequence[Shape], shape: Shape, loc: str) -> None:
        """Raise if the folding attrs do not fit the shapes (after shapes are known)."""


def divisors(n: int) -> list[int]:
    """Every positive divisor of ``n``, ascending."""
    return [d for d in range(1, n + 1) if n % d == 0]


def must_divide(value: int, size: int, what: str, dim: str, loc: str) -> None:
    """Raise ``loc: what = value must divide dim = size; allowed: [...]``."""
    if value < 1 or size % value:
        raise IRError(
            f"{loc}: {what} = {value} must divide {dim} = {size}; allowed: {divisors(size)}"
        )


def pixels(shape: Shape) -> int:
    """Number of pixels of an NHWC activation (1 for a vector)."""
    return int(np.prod(shape[:-1])) if len(shape) > 1 else 1


def per_pixel(x: np.ndarray, channels: int) -> np.ndarray:
    """``[N, features]`` -> ``[N, pixels, channels]`` (channels innermost, NHWC)."""
    return x.reshape(len(x), -1, channels)
