"""Export *any* Brevitas model built from supported modules: trace it, then reuse the exporter.

The zoo's models describe themselves (``graph_plan()``); a user's model does not. Here its
``forward`` is traced with ``torch.fx`` (Brevitas and ``torch.nn`` modules as leaves, as
Brevitas' own tracer does), the traced graph is run once on an example batch so every
node has a concrete shape, and the nodes are walked in order to build the same graph-plan
steps the hand-written plans give (conv / dense / classifier / flatten / pool_only /
shuffle / concat / add). :func:`quant_train.export_ir.export_plan_to_ir` then writes the
IR exactly as for the zoo, so a traced model's IR is only as trusted as the zoo's.

Anything the exact integer pipeline cannot reproduce is refused *before* export with an
:class:`~qfab.errors.ExportError` naming the module (its qualified name) or the call and
saying what to use instead: float layers and activations, float biases, non-power-of-two
scales, a missing input quantizer, unknown modules and functions.

Layout: the model takes its input in PyTorch's order (``[N, C, H, W]`` or ``[N, F]``);
the IR and golden take flattened NHWC vectors ``[N, H*W*C]``. :func:`nchw_to_ir` (and
:meth:`TracedModel.to_ir` for whatever layout the model's ``forward`` starts from) map one
to the other, so level 1 feeds both sides the same data.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import inspect
import operator
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from brevitas.nn import QuantConv2d, QuantHardTanh, QuantIdentity, QuantLinear, QuantReLU
from torch import fx, nn

from qfab.errors import ExportError
from qfab.golden import run_golden
from qfab.ir import Graph
from quant_train.equality import Equality, compare_trace_to_golden
from quant_train.export_ir import export_plan_to_ir, quant_ints

#: Activation quantizers: the "act" of a step (a MultiThreshold in the IR).
ACT_TYPES = (QuantReLU, QuantHardTanh, QuantIdentity)
#: What a refusal suggests instead.
WEIGHT_FIX = "a *FixedPoint weight quantizer (e.g. Int8WeightPerTensorFixedPoint)"
ACT_FIX = (
    "a *FixedPoint act quantizer (e.g. Uint8ActPerTensorFixedPoint, or "
    "Int8ActPerTensorFixedPoint for signed values)"
)
SUPPORTED_MODULES = (
    "QuantIdentity, QuantReLU, QuantHardTanh, QuantLinear, QuantConv2d, BatchNorm1d/2d, "
    "MaxPool2d, Flatten, ChannelShuffle, Dropout/Identity (no-ops in eval)"
)
SOFTMAX_FIX = (
    "softmax is not exported: qfab's hardware returns the logits (the argmax is the "
    "class); return the classifier's logits from forward and apply (log_)softmax in the loss"
)
SUPPORTED_CALLS = (
    "a + b / torch.add (residual add), torch.cat(dim=1), torch.flatten / .flatten / .view / "
    ".reshape (flatten, channel shuffle), .transpose / .permute (channel shuffle), "
    "F.max_pool2d, .contiguous, .value, .size / .shape"
)


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle as a module (the tracer also understands the inline
    ``reshape(n, g, c // g, h, w).transpose(1, 2).reshape(n, c, h, w)`` pattern)."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x.value if hasattr(x, "value") else x
        n, c, h, w = v.shape
        return v.reshape(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def nchw_to_ir(x: np.ndarray) -> np.ndarray:
    """``[N, C, H, W]`` images as the IR's flattened NHWC vectors ``[N, H*W*C]``."""
    x = np.asarray(x)
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)).reshape(len(x), -1)


def ir_to_nchw(x: np.ndarray, chw: tuple[int, int, int]) -> np.ndarray:
    """The inverse of :func:`nchw_to_ir` for images of shape ``chw`` = ``(C, H, W)``."""
    c, h, w = chw
    x = np.asarray(x)
    return np.ascontiguousarray(x.reshape(len(x), h, w, c).transpose(0, 3, 1, 2))


class _Leaves(fx.Tracer):
    """Brevitas and ``torch.nn`` modules (not containers) stay single ``call_module`` nodes."""

    def is_leaf_module(self, m: nn.Module, qualified_name: str) -> bool:
        if isinstance(m, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
            return False
        if isinstance(m, ChannelShuffle) or type(m).__module__.startswith("torch.nn"):
            return True
        # a user's subclass of a Brevitas layer is still that layer
        return any(c.__module__.startswith("brevitas.") for c in type(m).__mro__)


@dataclass
class _Sym:
    """What the walk knows about one fx node's tensor.

    ``float``: the model input before its quantizer (``index`` holds, per element, the
    flattened model-input feature it came from). ``act``: an integer activation stream,
    IR node ``name`` (``flat`` when a Flatten made it: it may only feed a QuantLinear).
    ``acc``: a weight layer's output waiting for batch norm / activation (``step``).
    ``sum``: a residual add waiting for its activation. ``split`` / ``split_t``: the first
    half of an inline channel shuffle (5-D view, then transposed).
    """

    kind: str
    name: str = ""
    ndim: int = 0
    flat: bool = False
    step: dict[str, Any] | None = None
    groups: int = 0
    index: torch.Tensor | None = None


@dataclass
class TracedModel:
    """A traced model: its graph-plan steps and what level 1 needs to compare it."""

    plan: list[dict[str, Any]]
    input_quant: nn.Module
    ir_shape: tuple[int, ...]  # (features,) or NHWC (H, W, C)
    input_shape: tuple[int, ...]  # the model's own, without the batch
    input_perm: np.ndarray  # IR feature j is the model's flattened input feature input_perm[j]
    module: fx.GraphModule
    taps: dict[str, fx.Node] = field(default_factory=dict)  # IR activation -> fx node
    quantizers: dict[str, nn.Module] = field(default_factory=dict)  # IR activation -> module

    def to_ir(self, x: np.ndarray) -> np.ndarray:
        """Model inputs ``[N, *input_shape]`` as the IR's flattened NHWC vectors."""
        x = np.asarray(x)
        return np.ascontiguousarray(x.reshape(len(x), -1)[:, self.input_perm])


def _tensor_value(x: Any) -> Any:
    """``x.value`` of a QuantTensor, else ``x``: what ``.value`` means in a traced graph
    (a proxy always has the attribute, the real tensor may not)."""
    return x.value if hasattr(x, "value") else x


def _is_tensor(v: Any) -> bool:
    return isinstance(v, torch.Tensor) or isinstance(getattr(v, "value", None), torch.Tensor)


def _shape(v: Any) -> tuple[int, ...]:
    return tuple((v.value if hasattr(v, "value") else v).shape)


def _type_name(m: nn.Module) -> str:
    mod = type(m).__module__
    return f"nn.{type(m).__name__}" if mod.startswith("torch.nn") else type(m).__name__


def _call_name(n: fx.Node) -> str:
    """How a call reads in the user's source: ``torch.sigmoid``, ``.tanh()``, ``F.gelu``."""
    if n.op == "call_method":
        return f".{n.target}()"
    t = n.target
    mod = getattr(t, "__module__", None) or ""
    name = getattr(t, "__name__", str(t))
    if mod.startswith("torch.nn.functional") or any(t is v for v in vars(F).values()):
        return f"F.{name}"
    if mod.startswith("torch") or t in vars(torch).values():
        return f"torch.{name}"
    if mod in ("_operator", "operator"):
        return f"operator.{name}"
    return f"{mod}.{name}" if mod else name


def _label(n: fx.Node) -> str:
    """The user's name for what made ``n``: the module's qualified name, else fx's."""
    return str(n.target) if n.op == "call_module" else n.name


def _power_of_two(value: float) -> bool:
    mant, _ = np.frexp(value)
    return value > 0 and mant == 0.5


def _check_scales(values: torch.Tensor, what: str, fix: str) -> None:
    for v in values.detach().reshape(-1).double().tolist():
        if not _power_of_two(v):
            raise ExportError(
                f"{what}: scale {v:g} is not a power of two; qfab's exact integer "
                f"pipeline needs {fix}"
            )


def _check_act(m: nn.Module, qname: str) -> None:
    what = f"activation '{qname}' ({_type_name(m)})"
    if not m.act_quant.is_quant_enabled:
        raise ExportError(f"{what}: has no quantizer (act_quant=None); give it {ACT_FIX}")
    _check_scales(m.act_quant.scale(), what, ACT_FIX)


def _check_weight_layer(m: nn.Module, qname: str) -> None:
    what = f"layer '{qname}' ({_type_name(m)})"
    if not m.weight_quant.is_quant_enabled:
        raise ExportError(f"{what}: weights not quantized (weight_quant=None); use {WEIGHT_FIX}")
    for part in ("input_quant", "output_quant"):
        if getattr(m, part).is_quant_enabled:
            raise ExportError(
                f"{what}: a quantizer inside the layer ({part}) is not supported; put a "
                "QuantIdentity / QuantReLU module before or after the layer instead"
            )
    if m.bias is not None and not m.bias_quant.is_quant_enabled:
        raise ExportError(
            f"{what}: float (unquantized) bias; use bias_quant=Int32Bias on the output "
            "QuantLinear and hidden layers (or bias=False before a batch norm, which "
            "supplies the offset)"
        )
    _check_scales(m.quant_weight().scale, what + " weight", WEIGHT_FIX)
    if isinstance(m, QuantConv2d):
        if isinstance(m.padding, str) or tuple(m.dilation) != (1, 1):
            raise ExportError(
                f"{what}: padding={m.padding!r}, dilation={tuple(m.dilation)}; supported: "
                "integer padding and dilation 1"
            )
        if m.padding_mode != "zeros":
            raise ExportError(f"{what}: padding_mode={m.padding_mode!r}; supported: 'zeros'")


def _pool_args(n: fx.Node, env: dict[fx.Node, Any], mod: nn.Module | None) -> tuple[Any, ...]:
    """(kernel, stride, padding, dilation, ceil_mode, return_indices) of a max pool."""
    if mod is not None:
        return (
            mod.kernel_size,
            mod.stride,
            mod.padding,
            mod.dilation,
            mod.ceil_mode,
            mod.return_indices,
        )
    names = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
    vals: dict[str, Any] = {"stride": None, "padding": 0, "dilation": 1, "ceil_mode": False}
    vals["return_indices"] = False
    args = fx.node.map_arg(n.args, lambda a: env[a])
    kwargs = fx.node.map_arg(n.kwargs, lambda a: env[a])
    vals.update(zip(names, args, strict=False))
    vals.update(kwargs)
    return tuple(vals[k] for k in names[1:])


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        return (int(v[0]), int(v[-1])) if len(v) else (0, 0)
    return (int(v), int(v))


class _Walker:
    """Walks a traced, concretely executed graph into graph-plan steps (see module doc)."""

    def __init__(self, gm: fx.GraphModule, env: dict[fx.Node, Any], shape: tuple[int, ...]):
        self.gm, self.env, self.shape = gm, env, shape
        self.syms: dict[fx.Node, _Sym | None] = {}
        self.plan: list[dict[str, Any]] = []
        self.used = {"input", "output"}
        self.input_quant: nn.Module | None = None
        self.ir_shape: tuple[int, ...] = ()
        self.perm = np.zeros(0, np.int64)
        self.taps: dict[str, fx.Node] = {}
        self.quantizers: dict[str, nn.Module] = {}

    # -- helpers ---------------------------------------------------------------------------
    def ir_name(self, n: fx.Node) -> str:
        """The IR node name of ``n``: fx's (the module path with dots as underscores)."""
        name, i = n.name, 1
        while name in self.used:
            name, i = f"{n.name}_{i}", i + 1
        self.used.add(name)
        return name

    def tensor_args(self, n: fx.Node) -> list[fx.Node]:
        return [a for a in n.all_input_nodes if self.syms.get(a) is not None]

    def single_use(self, n: fx.Node, what: str) -> None:
        users = [u for u in n.users if u.op == "output" or _is_tensor(self.env[u])]
        if len(users) != 1:
            raise ExportError(
                f"{what}: its output is used {len(users)} times before an activation "
                "quantizer; only one batch norm / activation may follow it"
            )

    def act_input(self, n: fx.Node, src: fx.Node, what: str) -> _Sym:
        """The activation ``n`` reads from ``src``, or a refusal saying why it is not one."""
        s = self.syms[src]
        assert s is not None
        if s.kind == "float":
            raise ExportError(
                f"{what} reads the float model input: no input quantizer; put a "
                f"brevitas.nn.QuantIdentity with {ACT_FIX} first in forward"
            )
        if s.kind in ("acc", "sum"):
            raise ExportError(
                f"{what}: its input '{_label(src)}' is not quantized (no activation quantizer "
                "after the layer or sum); put a QuantReLU / QuantIdentity in between"
            )
        if s.kind != "act":
            raise ExportError(f"{what}: its input '{_label(src)}' is a half-done channel shuffle")
        return s

    def not_flat(self, s: _Sym, what: str) -> None:
        if s.flat:
            raise ExportError(
                f"{what}: reads flattened '{s.name}'; a flatten must feed a QuantLinear directly"
            )

    # -- the walk --------------------------------------------------------------------------
    def walk(self) -> None:
        for n in self.gm.graph.nodes:
            if n.op == "placeholder":
                self.placeholder(n)
            elif n.op == "output":
                self.output(n)
            elif n.op == "get_attr":
                raise ExportError(
                    f"forward uses the tensor attribute '{n.target}' directly; only modules "
                    f"({SUPPORTED_MODULES}) may hold weights"
                )
            elif not _is_tensor(self.env[n]):
                self.syms[n] = None  # sizes, shapes, integers: metadata, not data
            elif n.op == "call_module":
                self.module(n, self.gm.get_submodule(n.target))
            else:
                self.function(n)
        if self.input_quant is None:
            raise ExportError(
                f"no input quantizer: forward must start with a brevitas.nn.QuantIdentity "
                f"with {ACT_FIX}"
            )

    def placeholder(self, n: fx.Node) -> None:
        if any(s is not None and s.kind == "float" for s in self.syms.values()):
            raise ExportError(
                f"forward takes more than one input ('{n.target}'); qfab exports models "
                "with one input tensor"
            )
        index = torch.arange(int(np.prod(self.shape))).reshape(self.shape)
        batch = _shape(self.env[n])[0]
        self.syms[n] = _Sym("float", index=index.unsqueeze(0).repeat(batch, *[1] * len(self.shape)))

    def output(self, n: fx.Node) -> None:
        src = n.args[0]
        s = self.syms.get(src) if isinstance(src, fx.Node) else None
        if s is None:
            raise ExportError(
                "forward must return one tensor: the logits of a QuantLinear classifier"
            )
        step = s.step or {}
        if s.kind != "acc" or step.get("kind") != "dense" or step.get("bn") is not None:
            raise ExportError(
                f"forward returns '{_label(src)}'; qfab needs the model to end in a QuantLinear "
                "classifier whose float logits are returned (no batch norm or activation "
                "after it)"
            )
        self.plan.append(
            {
                "kind": "classifier",
                "input": step["input"],
                "name": step["name"],
                "layer": step["layer"],
            }
        )

    def module(self, n: fx.Node, m: nn.Module) -> None:
        qname = str(n.target)
        what = f"layer '{qname}' ({_type_name(m)})"
        args = self.tensor_args(n)
        if isinstance(m, ACT_TYPES):
            self.activation(n, m, qname, args)
        elif isinstance(m, (QuantConv2d, QuantLinear)):
            _check_weight_layer(m, qname)
            s = self.act_input(n, args[0], what)
            if isinstance(m, QuantConv2d):
                self.not_flat(s, what)
            if (s.ndim == 4) != isinstance(m, QuantConv2d):
                raise ExportError(f"{what}: applied to a {s.ndim}-D tensor '{s.name}'")
            kind = "conv" if isinstance(m, QuantConv2d) else "dense"
            self.single_use(n, what)
            step = {"kind": kind, "input": s.name, "name": self.ir_name(n), "layer": m, "bn": None}
            self.syms[n] = _Sym("acc", name=qname, ndim=s.ndim, step=step)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            s = self.syms[args[0]]
            if s is None or s.kind != "acc" or s.step["bn"] is not None:
                raise ExportError(
                    f"{what}: batch norm must directly follow a QuantConv2d / QuantLinear"
                )
            if m.running_mean is None:
                raise ExportError(
                    f"{what}: no running statistics (track_running_stats=False); its eval "
                    "output would depend on the batch"
                )
            self.single_use(n, what)
            self.syms[n] = _Sym("acc", name=s.name, ndim=s.ndim, step={**s.step, "bn": m})
        elif isinstance(m, nn.MaxPool2d):
            self.max_pool(n, _pool_args(n, self.env, m), what)
        elif isinstance(m, nn.Flatten):
            if (m.start_dim, m.end_dim) != (1, -1):
                raise ExportError(
                    f"{what}: start_dim={m.start_dim}, end_dim={m.end_dim}; "
                    "supported: nn.Flatten() (start_dim=1, end_dim=-1)"
                )
            self.reshape(n, args[0], what)
        elif isinstance(m, ChannelShuffle):
            s = self.act_input(n, args[0], what)
            self.shuffle(n, s, int(m.groups), what)
        elif isinstance(m, (nn.Dropout, nn.Identity)):
            self.syms[n] = self.syms[args[0]]
        elif isinstance(m, nn.Linear):
            raise ExportError(
                f"{what}: not quantized; use brevitas.nn.QuantLinear with {WEIGHT_FIX}"
            )
        elif isinstance(m, nn.Conv2d):
            raise ExportError(
                f"{what}: not quantized; use brevitas.nn.QuantConv2d with {WEIGHT_FIX}"
            )
        elif isinstance(m, (nn.Softmax, nn.LogSoftmax)):
            raise ExportError(f"{what}: {SOFTMAX_FIX}")
        elif isinstance(m, (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.LeakyReLU)):
            raise ExportError(
                f"{what}: float activation; use brevitas.nn.QuantReLU (or QuantHardTanh / "
                f"QuantIdentity) with {ACT_FIX}"
            )
        else:
            raise ExportError(
                f"{what}: not supported by qfab's exporter; supported modules: "
                f"{SUPPORTED_MODULES}; for activations use QuantReLU / QuantHardTanh with "
                f"{ACT_FIX}"
            )

    def activation(self, n: fx.Node, m: nn.Module, qname: str, args: list[fx.Node]) -> None:
        what = f"activation '{qname}' ({_type_name(m)})"
        s = self.syms[args[0]]
        assert s is not None
        _check_act(m, qname)
        if s.kind == "float":
            if not isinstance(m, QuantIdentity) or self.input_quant is not None:
                raise ExportError(
                    f"{what} on the float model input: the input quantizer must be one "
                    "brevitas.nn.QuantIdentity"
                )
            index = s.index
            if index.ndim == 4:  # NCHW: the IR reads it as NHWC
                self.perm = index.permute(0, 2, 3, 1).reshape(len(index), -1)[0].numpy()
                self.ir_shape = tuple(int(d) for d in index.permute(0, 2, 3, 1).shape[1:])
            elif index.ndim == 2:
                self.perm, self.ir_shape = index[0].numpy(), (int(index.shape[1]),)
            else:
                raise ExportError(
                    f"{what}: quantizes a {index.ndim}-D input; supported: [N, C, H, W] or "
                    "[N, features]"
                )
            self.input_quant = m
            self.taps["input"], self.quantizers["input"] = n, m
            self.syms[n] = _Sym("act", name="input", ndim=index.ndim)
            return
        if s.kind == "acc":
            step = s.step
            mt = self.ir_name(n)
            self.plan.append({**step, "act": m, "mt": mt, "pool": 0, "out": mt})
        elif s.kind == "sum":
            mt = self.ir_name(n)
            self.plan.append({**s.step, "act": m, "mt": mt, "out": mt})
        elif s.kind == "act":
            raise ExportError(
                f"{what}: quantizes '{_label(args[0])}', which is already a quantized "
                "activation; a quantizer may only follow a QuantConv2d / QuantLinear "
                "(+ batch norm), a residual add or the float model input"
            )
        else:
            raise ExportError(f"{what}: reads a half-done channel shuffle")
        self.taps[mt], self.quantizers[mt] = n, m
        self.syms[n] = _Sym("act", name=mt, ndim=s.ndim)

    def function(self, n: fx.Node) -> None:
        t, what = n.target, f"call {_call_name(n)} ('{n.name}')"
        args = self.tensor_args(n)
        if t is _tensor_value:
            self.syms[n] = self.syms[args[0]]
            return
        if n.op == "call_function" and t is getattr:
            raise ExportError(f"{what}: reads .{n.args[1]} of a tensor; not supported")
        s = self.syms[args[0]] if args else None
        if s is not None and s.kind == "float":
            self.float_layout(n, s, what)
            return
        method = n.target if n.op == "call_method" else None
        if method in ("contiguous",) or (t is F.dropout and not self.arg(n, 2, "training", False)):
            self.syms[n] = s
        elif t in (operator.add, operator.iadd, torch.add) or method in ("add", "__add__"):
            if len(args) != 2 or n.kwargs.get("alpha", 1) != 1 or len(n.args) > 2:
                raise ExportError(f"{what}: a residual add takes two tensors (no alpha)")
            ins = [self.act_input(n, a, what) for a in args]
            for i in ins:
                self.not_flat(i, what)
            if _shape(self.env[args[0]]) != _shape(self.env[args[1]]):
                raise ExportError(f"{what}: operands of different shapes")
            self.single_use(n, what)
            step = {"kind": "add", "inputs": [i.name for i in ins], "name": self.ir_name(n)}
            self.syms[n] = _Sym("sum", name=n.name, ndim=ins[0].ndim, step=step)
        elif t in (torch.cat, torch.concat, torch.concatenate):
            self.concat(n, what)
        elif t is F.max_pool2d:
            self.max_pool(n, _pool_args(n, self.env, None), what)
        elif t in (torch.flatten, torch.reshape) or method in ("flatten", "view", "reshape"):
            self.reshape(n, args[0], what)
        elif method in ("transpose", "permute") or t in (torch.transpose, torch.permute):
            if s is None or s.kind != "split":
                raise ExportError(
                    f"{what}: a transpose/permute is only supported inside a channel shuffle "
                    "(reshape to [N, g, C/g, H, W], transpose(1, 2), reshape back)"
                )
            dims = [d for d in fx.node.map_arg(n.args[1:], lambda a: self.env[a])]
            dims = list(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
            if sorted(d % 5 for d in dims) not in ([1, 2], [0, 1, 2, 3, 4]) or (
                len(dims) == 5 and [d % 5 for d in dims] != [0, 2, 1, 3, 4]
            ):
                raise ExportError(f"{what}: dims {dims}; a channel shuffle swaps dims 1 and 2")
            self.syms[n] = _Sym("split_t", name=s.name, ndim=5, groups=s.groups)
        elif t in (F.softmax, F.log_softmax, torch.softmax, torch.log_softmax) or method in (
            "softmax",
            "log_softmax",
        ):
            raise ExportError(f"{what}: {SOFTMAX_FIX}")
        else:
            raise ExportError(
                f"{what}: not supported by qfab's exporter; supported calls: {SUPPORTED_CALLS}; "
                f"for activations use a QuantReLU / QuantHardTanh module with {ACT_FIX}"
            )

    def arg(self, n: fx.Node, pos: int, key: str, default: Any) -> Any:
        if key in n.kwargs:
            return n.kwargs[key]
        return n.args[pos] if len(n.args) > pos else default

    def float_layout(self, n: fx.Node, s: _Sym, what: str) -> None:
        """A layout op on the float input before its quantizer (``reshape`` + ``permute``
        of flattened NHWC data, as the zoo does): replayed on the feature indices."""
        method = n.target if n.op == "call_method" else None
        layout = ("reshape", "view", "permute", "transpose", "flatten", "contiguous")
        fns = (torch.reshape, torch.permute, torch.transpose, torch.flatten)
        if method not in layout and n.target not in fns:
            raise ExportError(
                f"{what} on the float model input: only layout changes ({', '.join(layout)}) "
                f"may come before the input quantizer (a brevitas.nn.QuantIdentity with "
                f"{ACT_FIX})"
            )
        args = fx.node.map_arg(n.args, lambda a: self.env[a])
        kwargs = fx.node.map_arg(n.kwargs, lambda a: self.env[a])
        fn = getattr(torch.Tensor, method) if method else n.target
        self.syms[n] = _Sym("float", index=fn(s.index, *args[1:], **kwargs))

    def max_pool(self, n: fx.Node, spec: tuple[Any, ...], what: str) -> None:
        s = self.act_input(n, self.tensor_args(n)[0], what)
        self.not_flat(s, what)
        kernel, stride, padding, dilation, ceil_mode, indices = spec
        k = _pair(kernel)
        st = k if stride is None or stride == [] else _pair(stride)
        if (
            k[0] != k[1]
            or st != k
            or _pair(padding) != (0, 0)
            or _pair(dilation) != (1, 1)
            or ceil_mode
            or indices
        ):
            raise ExportError(
                f"{what}: max pool kernel {kernel}, stride {stride}, padding {padding}, "
                f"dilation {dilation}, ceil_mode {ceil_mode}; supported: a square kernel k "
                "with stride k, no padding, dilation 1, ceil_mode False"
            )
        out = self.ir_name(n)
        self.plan.append({"kind": "pool_only", "input": s.name, "out": out, "k": k[0]})
        self.syms[n] = _Sym("act", name=out, ndim=4)

    def reshape(self, n: fx.Node, src: fx.Node, what: str) -> None:
        """A flatten (4-D activation to ``[N, C*H*W]``), a no-op, or half a shuffle."""
        s = self.syms[src]
        assert s is not None
        before, after = _shape(self.env[src]), _shape(self.env[n])
        if s.kind == "split_t" and len(after) == 4 and after[1] == before[1] * before[2]:
            out = self.ir_name(n)
            self.plan.append({"kind": "shuffle", "input": s.name, "groups": s.groups, "out": out})
            self.syms[n] = _Sym("act", name=out, ndim=4)
            return
        s = self.act_input(n, src, what)
        if before == after:
            self.syms[n] = s
        elif len(before) == 4 and after == (before[0], int(np.prod(before[1:]))):
            out = self.ir_name(n)
            self.plan.append({"kind": "flatten", "input": s.name, "out": out})
            self.syms[n] = _Sym("act", name=out, ndim=2, flat=True)
        elif (
            len(before) == 4
            and len(after) == 5
            and after[0] == before[0]
            and after[1] * after[2] == before[1]
            and after[3:] == before[2:]
        ):
            self.not_flat(s, what)
            self.single_use(n, what)
            self.syms[n] = _Sym("split", name=s.name, ndim=5, groups=after[1])
        else:
            raise ExportError(
                f"{what}: reshapes {list(before)} to {list(after)}; supported: a flatten "
                "[N, C, H, W] -> [N, C*H*W] or a channel shuffle (reshape to [N, g, C/g, H, W], "
                "transpose(1, 2), reshape back)"
            )

    def shuffle(self, n: fx.Node, s: _Sym, groups: int, what: str) -> None:
        self.not_flat(s, what)
        out = self.ir_name(n)
        self.plan.append({"kind": "shuffle", "input": s.name, "groups": groups, "out": out})
        self.syms[n] = _Sym("act", name=out, ndim=4)

    def concat(self, n: fx.Node, what: str) -> None:
        srcs = n.args[0] if n.args else n.kwargs.get("tensors")
        dim = self.arg(n, 1, "dim", 0)
        if not isinstance(srcs, (list, tuple)) or not all(isinstance(a, fx.Node) for a in srcs):
            raise ExportError(f"{what}: torch.cat needs a list of tensors")
        ins = [self.act_input(n, a, what) for a in srcs]
        for i in ins:
            self.not_flat(i, what)
        ndim = ins[0].ndim
        if dim % ndim != 1 or any(i.ndim != ndim for i in ins):
            raise ExportError(
                f"{what}: concatenates on dim {dim}; supported: the channel dim (dim=1)"
            )
        out = self.ir_name(n)
        self.plan.append({"kind": "concat", "inputs": [i.name for i in ins], "out": out})
        self.syms[n] = _Sym("act", name=out, ndim=ndim)


def trace_model(model: nn.Module, input_shape: tuple[int, ...]) -> TracedModel:
    """Trace ``model`` (eval mode is forced) on inputs ``[N, *input_shape]`` into plan steps.

    Raises :class:`ExportError` naming the module or call that qfab cannot export.
    """
    model.eval()
    shape = tuple(int(d) for d in input_shape)
    if len(shape) not in (1, 3) or min(shape, default=0) < 1:
        raise ExportError(
            f"input shape {list(shape)}: supported (C, H, W) images or (features,) vectors, "
            "without the batch dimension"
        )
    try:
        graph = _Leaves().trace(model)
    except Exception as exc:  # torch.fx raises TraceError, TypeError, ... from user code
        raise ExportError(
            f"{type(model).__name__}.forward cannot be traced with torch.fx "
            f"({type(exc).__name__}: {exc}); data-dependent Python control flow is not "
            "supported"
        ) from exc
    for n in graph.nodes:  # "x.value if hasattr(x, 'value')" traces as a bare .value
        if n.op == "call_function" and n.target is getattr and n.args[1:] == ("value",):
            n.target, n.args = _tensor_value, (n.args[0],)
    gm = fx.GraphModule(model, graph)
    gm.graph.eliminate_dead_code()
    gm.recompile()
    example = torch.rand(2, *shape, generator=torch.Generator().manual_seed(0))
    interp = fx.Interpreter(gm, garbage_collect_values=False)
    try:
        with torch.no_grad():
            interp.run(example)
    except Exception as exc:
        raise ExportError(
            f"{type(model).__name__}: forward fails on an input of shape "
            f"{[2, *shape]} ({type(exc).__name__}: {str(exc).splitlines()[0]}); check "
            "--input-shape (PyTorch order without the batch: C,H,W or F)"
        ) from exc
    walker = _Walker(gm, interp.env, shape)
    walker.walk()
    return TracedModel(
        plan=walker.plan,
        input_quant=walker.input_quant,
        ir_shape=walker.ir_shape,
        input_shape=shape,
        input_perm=walker.perm,
        module=gm,
        taps=walker.taps,
        quantizers=walker.quantizers,
    )


def export_brevitas(
    model: nn.Module, input_shape: tuple[int, ...], meta: dict[str, Any] | None = None
) -> Graph:
    """Export any Brevitas model built from supported modules to a validated IR graph.

    ``input_shape`` is PyTorch's order without the batch: ``(C, H, W)`` or ``(F,)``. IR
    node names are the model's module names (dots as underscores, as torch.fx spells
    them), plus ``input`` (the input quantizer) and ``output`` (the dequantized logits).
    The IR takes flattened NHWC input: feed it :func:`nchw_to_ir` of the model's images.
    """
    with _kept_mode(model):
        traced = trace_model(model, input_shape)
        example = torch.zeros(1, *traced.input_shape)
        return export_plan_to_ir(
            model, traced.plan, traced.input_quant, traced.ir_shape, example, meta
        )


@contextlib.contextmanager
def _kept_mode(model: nn.Module) -> Iterator[None]:
    """Export and level 1 run the model in eval mode; a model handed over mid-training
    (a notebook) gets its own mode back, so its batch norms keep learning."""
    training = model.training
    try:
        yield
    finally:
        model.train(training)


def _quantizer_ints(value: Any, quantizer: nn.Module) -> np.ndarray:
    """Integers of an activation, also when its module returns a plain float tensor."""
    if hasattr(value, "scale"):
        return quant_ints(value)
    with torch.no_grad():
        scale = quantizer.act_quant.scale()
        zero = quantizer.act_quant.zero_point()
        return (torch.round(value / scale) + zero).numpy().astype(np.int64)


@torch.no_grad()
def traced_activations(
    model: nn.Module, traced: TracedModel, x: np.ndarray
) -> dict[str, np.ndarray]:
    """Integer activations of every traced quantizer (IR names, NHWC order) and the logits.

    Activations come from running the traced graph (the model's own modules, in its own
    order); the logits from the model's real ``forward``, compared bit for bit.
    """
    xt = torch.from_numpy(np.ascontiguousarray(x, np.float32))
    interp = fx.Interpreter(traced.module, garbage_collect_values=False)
    interp.run(xt)
    seen: dict[str, np.ndarray] = {}
    for name, node in traced.taps.items():
        v = _quantizer_ints(interp.env[node], traced.quantizers[name])
        seen[name] = (v.transpose(0, 2, 3, 1) if v.ndim == 4 else v).reshape(len(v), -1)
    out = model(xt)
    seen["output"] = (out.value if hasattr(out, "value") else out).numpy()
    return seen


def compare_traced_to_golden(model: nn.Module, graph: Graph, x: np.ndarray) -> Equality:
    """Level 1 for a traced model: ``x`` in the model's own layout (``[N, C, H, W]`` or
    ``[N, F]``); every integer activation and the float32 logits are compared bit for bit
    with the golden executor run on the same data in the IR's layout."""
    x = np.asarray(x, np.float32)
    with _kept_mode(model):
        traced = trace_model(model, x.shape[1:])
        trace = traced_activations(model, traced, x)
    return compare_trace_to_golden(trace, run_golden(graph, traced.to_ir(x)))


def load_model_spec(spec: str, weights: Path | None) -> nn.Module:
    """The model ``"path/to/model.py:build"`` names: ``build()`` called without arguments,
    then its ``state_dict`` loaded from ``weights`` (``torch.load(weights_only=True)``).

    Every failure is an :class:`ExportError` naming the file (or function) at fault.
    """
    path_text, sep, func = spec.rpartition(":")
    if not sep or not path_text or not func:
        raise ExportError(
            f"model spec {spec!r}: expected 'path/to/model.py:function' (a function that "
            "takes no arguments and returns the Brevitas model)"
        )
    path = Path(path_text)
    if not path.is_file():
        raise ExportError(f"{path}: model file not found (model spec {spec!r})")
    name = "qfab_user_model_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    loader = importlib.util.spec_from_file_location(name, path)
    if loader is None or loader.loader is None:
        raise ExportError(f"{path}: not an importable Python file")
    module = importlib.util.module_from_spec(loader)
    sys.modules[name] = module
    try:
        loader.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise ExportError(f"{path}: importing it failed ({type(exc).__name__}: {exc})") from exc
    build: Callable[[], Any] | None = getattr(module, func, None)
    if not callable(build):
        found = sorted(
            k
            for k, v in vars(module).items()
            if inspect.isfunction(v) and v.__module__ == name and not k.startswith("_")
        )
        raise ExportError(f"{path}: no function {func!r}; defined there: {found}")
    try:
        model = build()
    except Exception as exc:
        raise ExportError(f"{path}:{func}() failed ({type(exc).__name__}: {exc})") from exc
    if not isinstance(model, nn.Module):
        raise ExportError(f"{path}:{func}() returned {type(model).__name__}, not a torch.nn.Module")
    if weights is not None:
        _load_weights(model, Path(weights), f"{path}:{func}()")
    return model.eval()


def _load_weights(model: nn.Module, weights: Path, built_by: str) -> None:
    if not weights.is_file():
        raise ExportError(f"{weights}: weights file not found")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ExportError(
            f"{weights}: cannot be read as a PyTorch state_dict ({type(exc).__name__}: {first})"
        ) from exc
    if not isinstance(state, dict):
        raise ExportError(
            f"{weights}: holds a {type(state).__name__}, not a state_dict; save it with "
            "torch.save(model.state_dict(), path)"
        )
    # Brevitas creates some parameters (runtime-statistics activation scales) on the first
    # forward in training mode: a fresh model's state_dict() lacks keys a trained one has,
    # and its own load_state_dict takes them. So torch decides, and its complaint is
    # condensed into one line naming the keys.
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        text = str(exc)
        parts = []
        for label, pattern in (
            ("missing keys", r"Missing key\(s\) in state_dict: (.*)"),
            ("unexpected keys", r"Unexpected key\(s\) in state_dict: (.*)"),
        ):
            found = re.search(pattern, text)
            if found:
                keys = re.findall(r'"([^"]+)"', found.group(1))[:5]
                parts.append(f"{label} {keys}")
        shapes = re.findall(
            r"size mismatch for ([^:]+): copying a param with shape torch\.Size\((\[[^\]]*\])\)"
            r" from checkpoint, the shape in current model is torch\.Size\((\[[^\]]*\])\)",
            text,
        )
        if shapes:
            parts.append(
                "shape mismatches "
                + ", ".join(f"{k} {mine} (model {own})" for k, mine, own in shapes[:5])
            )
        hint = (
            "; Brevitas creates activation scales on the first forward in training mode: "
            "save the state_dict after training"
            if "scaling_impl" in text and "Missing" in text
            else ""
        )
        raise ExportError(
            f"{weights}: does not match the model of {built_by}: "
            + ("; ".join(parts) or text.splitlines()[0])
            + hint
        ) from None
