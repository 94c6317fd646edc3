"""Brevitas models: the quantized MLP and conv net, their float twins, factored layers.

Every quantizer uses a power-of-two ("fixed point") scale, as FINN-style flows do. Then
each float32 product and sum in the Brevitas forward is exact as long as the integer
accumulator fits in float32's 24-bit mantissa, which is what makes
"Brevitas == golden on every vector" provable rather than lucky (ARCHITECTURE.md).
For the same reason hidden ``QuantLinear`` layers have no bias (batch norm's shift
replaces it) and the output layer's bias is quantized onto the accumulator's scale
(``Int32Bias``), so the logits are exact too.
"""

from __future__ import annotations

from typing import Any

import torch
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant import (
    Int8ActPerTensorFixedPoint,
    Int8WeightPerTensorFixedPoint,
    Int32Bias,
    SignedBinaryActPerTensorConst,
    SignedBinaryWeightPerTensorConst,
    Uint8ActPerTensorFixedPoint,
    Uint8ActPerTensorFixedPointMaxInit,
)
from brevitas.quant.fixed_point import Int8WeightPerChannelFixedPoint
from torch import nn

from qfab.errors import ConfigError

#: One step of a model's export plan (see :meth:`QuantMLP.export_plan`).
PlanStep = tuple


def weight_quant_kwargs(bits: int, per_channel: bool) -> dict:
    """Brevitas weight quantizer for ``bits``, always with a power-of-two scale.

    1 bit: binary, bipolar {-1, +1} with a constant scale of 1 (BNN / XNOR-Net style; the
    following batch norm absorbs any scale). 2 bits: ternary {-1, 0, +1} * 2^k (narrow
    range, TWN-style; TTQ's two learned asymmetric scales would not keep the integer
    pipeline exact). 3..8 bits: narrow signed integers * 2^k.
    """
    if bits == 1:
        return {"weight_quant": SignedBinaryWeightPerTensorConst, "weight_scaling_const": 1.0}
    quant = Int8WeightPerChannelFixedPoint if per_channel else Int8WeightPerTensorFixedPoint
    return {"weight_quant": quant, "weight_bit_width": bits}


def tensor_value(x: Any) -> torch.Tensor:
    """The float tensor of a Brevitas QuantTensor, or ``x`` itself (float twins)."""
    return x.value if hasattr(x, "value") else x


def input_quantizer(bits: int) -> nn.Module:
    """Unsigned ``bits``-bit quantizer for inputs in [0, 1] with scale exactly ``2^-bits``.

    ``max_val = (2^b - 1) / 2^b`` makes the power-of-two scale 2^-b, so all b bits are used.
    """
    return QuantIdentity(
        act_quant=Uint8ActPerTensorFixedPointMaxInit,
        bit_width=bits,
        max_val=1.0 - 2.0**-bits,
        return_quant_tensor=True,
    )


def activation(bits: int) -> nn.Module:
    """QuantReLU (unsigned, power-of-two scale) or, for 1 bit, a bipolar sign (BNN)."""
    if bits == 1:
        return QuantIdentity(
            act_quant=SignedBinaryActPerTensorConst, scaling_const=1.0, return_quant_tensor=True
        )
    return QuantReLU(
        act_quant=Uint8ActPerTensorFixedPoint, bit_width=bits, return_quant_tensor=True
    )


#: Default bits of the signed requantizer between the stages of a factored layer.
#: Measured on LeNet-5 / digits (bench/lowrank.py): at 4 bits the rank-r intermediate
#: loses 2-30 points after w4a4 QAT (CP worst: three requantizers in a row); at 8 bits
#: Tucker-2 and spatial separation stay within a point. Hardware cost: an 8-bit stream
#: between two small layers.
INNER_BITS = 8


def requantizer(bits: int) -> nn.Module:
    """Signed power-of-two requantization between the stages of a factored layer.

    Keeps the rank-r intermediate at ``bits`` bits, so the second layer's accumulator
    stays small (exact in float32) and hardware sees an ordinary narrow stream.
    """
    return QuantIdentity(
        act_quant=Int8ActPerTensorFixedPoint, bit_width=bits, return_quant_tensor=True
    )


class FactoredLinear(nn.Module):
    """``W (m x n) ~= U (m x r) @ V (r x n)`` as two layers (truncated SVD, low rank).

    Float: ``second(first(x))``. Quantized: ``second(requant(first(x)))``.
    """

    def __init__(self, first: nn.Module, second: nn.Module, requant: nn.Module | None) -> None:
        super().__init__()
        self.first, self.second, self.requant = first, second, requant

    @property
    def in_features(self) -> int:
        return int(self.first.in_features)

    @property
    def out_features(self) -> int:
        return int(self.second.out_features)

    @property
    def rank(self) -> int:
        return int(self.first.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.first(x)
        return self.second(self.requant(y) if self.requant is not None else y)


def _linear(
    n: int,
    m: int,
    rank: int | None,
    quant: dict | None,
    bias: bool = False,
    inner_bits: int = INNER_BITS,
) -> nn.Module:
    """A (Quant)Linear, or a FactoredLinear of ``rank`` when given."""

    def make(i: int, o: int, b: bool) -> nn.Module:
        if quant is None:
            return nn.Linear(i, o, bias=b)
        extra = {"bias_quant": Int32Bias} if b else {}
        return QuantLinear(i, o, bias=b, **quant, **extra)

    if rank is None:
        return make(n, m, bias)
    req = None if quant is None else requantizer(inner_bits)
    return FactoredLinear(make(n, rank, False), make(rank, m, bias), req)


class QuantMLP(nn.Module):
    """``QuantIdentity -> [QuantLinear -> BatchNorm1d -> QuantReLU]* -> QuantLinear``.

    Inputs are expected in [0, 1] and quantized unsigned to ``input_bits``. With
    ``act_bits = 1`` the QuantReLU becomes a bipolar sign activation. ``inner_bits``
    is the width of the signed requantizer inside factored (low-rank) layers.
    """

    quantized = True

    def __init__(
        self,
        in_features: int,
        hidden: list[int],
        classes: int,
        *,
        weight_bits: int,
        act_bits: int,
        input_bits: int,
        per_channel: bool = False,
        inner_bits: int = INNER_BITS,
        ranks: list[int | None] | None = None,
    ) -> None:
        super().__init__()
        self.quant_config = {
            "weight_bits": weight_bits,
            "act_bits": act_bits,
            "input_bits": input_bits,
            "per_channel": per_channel,
            "inner_bits": inner_bits,
        }
        ranks = list(ranks) if ranks else [None] * (len(hidden) + 1)
        self.ranks = ranks
        self.input_quant = input_quantizer(input_bits)
        self.linears = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.acts = nn.ModuleList()
        width = in_features
        wq = weight_quant_kwargs(weight_bits, per_channel)
        for h, r in zip(hidden, ranks, strict=False):
            self.linears.append(_linear(width, h, r, wq, inner_bits=inner_bits))
            self.norms.append(nn.BatchNorm1d(h))
            self.acts.append(activation(act_bits))
            width = h
        self.classifier = _linear(width, classes, ranks[-1], wq, bias=True, inner_bits=inner_bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.input_quant(x)
        for linear, norm, act in zip(self.linears, self.norms, self.acts, strict=True):
            q = act(norm(linear(q)))
        out = self.classifier(q)
        return tensor_value(out)

    def export_plan(self) -> list[PlanStep]:
        """What the exporter walks: ``("dense", linear, norm, act)`` ... ``("classifier", fc)``.

        A factored layer becomes ``("dense", first, None, requant)`` then its second half.
        """
        plan: list[PlanStep] = []
        for lin, bn, act in zip(self.linears, self.norms, self.acts, strict=True):
            plan += _dense_steps(lin, bn, act)
        cls = self.classifier
        if isinstance(cls, FactoredLinear):
            plan.append(("dense", cls.first, None, cls.requant))
            cls = cls.second
        return [*plan, ("classifier", cls)]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (
            int(self.linears[0].in_features if len(self.linears) else self.classifier.in_features),
        )


def factored_conv_stages(factor: tuple, c_in: int, c_out: int, k: int, pad: int) -> list[tuple]:
    """(in, out, kernel, padding, groups) of each stage of a factored k x k convolution.

    ``("tucker", r_in, r_out)``: 1x1 -> k x k core -> 1x1 (Tucker-2, Kim et al.).
    ``("cp", r)``: 1x1 -> depthwise k x 1 -> depthwise 1 x k -> 1x1 (CP, Lebedev et al.).
    ``("spatial", r)``: k x 1 -> 1 x k (Jaderberg et al.).
    """
    kind = factor[0]
    if kind == "tucker":
        r_in, r_out = factor[1], factor[2]
        return [(c_in, r_in, 1, 0, 1), (r_in, r_out, k, pad, 1), (r_out, c_out, 1, 0, 1)]
    if kind == "cp":
        r = factor[1]
        return [
            (c_in, r, 1, 0, 1),
            (r, r, (k, 1), (pad, 0), r),
            (r, r, (1, k), (0, pad), r),
            (r, c_out, 1, 0, 1),
        ]
    if kind == "spatial":
        r = factor[1]
        return [(c_in, r, (k, 1), (pad, 0), 1), (r, c_out, (1, k), (0, pad), 1)]
    raise ValueError(f"unknown conv factorization {kind!r}")


class FactoredConv(nn.Module):
    """A convolution replaced by a chain of smaller ones (requantized in between)."""

    def __init__(self, stages: list[nn.Module], requants: list[nn.Module | None]) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.requants = nn.ModuleList([r for r in requants if r is not None])

    @property
    def out_channels(self) -> int:
        return int(self.stages[-1].out_channels)

    @property
    def in_channels(self) -> int:
        return int(self.stages[0].in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i < len(self.requants):
                x = self.requants[i](x)
        return x


def _dense_steps(lin: nn.Module, bn: nn.Module, act: nn.Module) -> list[PlanStep]:
    if isinstance(lin, FactoredLinear):
        return [("dense", lin.first, None, lin.requant), ("dense", lin.second, bn, act)]
    return [("dense", lin, bn, act)]


class QuantCNN(nn.Module):
    """LeNet/CNV-style: ``[QuantConv2d -> BatchNorm2d -> act (-> MaxPool)]*``, then an MLP.

    Takes flattened NHWC images ``[N, H*W*C]`` (what the data sets and the IR use) and
    reshapes them to PyTorch's NCHW inside. ``convs`` lists ``(channels, kernel,
    padding, pool)`` per conv layer (pool 0 = none). With ``weight_bits=None`` every
    layer is plain float32 (the baseline of compression; see :func:`float_cnn`), with
    the same module names, so a float state dict loads into the quantized net.
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        convs: list[tuple[int, int, int, int]],
        hidden: list[int],
        classes: int,
        *,
        weight_bits: int | None,
        act_bits: int = 8,
        input_bits: int = 8,
        per_channel: bool = False,
        inner_bits: int = INNER_BITS,
        factors: list[tuple | None] | None = None,
    ) -> None:
        super().__init__()
        self.quantized = weight_bits is not None
        self.factors = list(factors) if factors else [None] * len(convs)
        self.quant_config = {
            "weight_bits": weight_bits,
            "act_bits": act_bits,
            "input_bits": input_bits,
            "per_channel": per_channel,
            "inner_bits": inner_bits,
        }
        self.shape = tuple(input_shape)
        self.conv_specs = [tuple(c) for c in convs]
        self.hidden = list(hidden)
        self.input_quant = input_quantizer(input_bits) if self.quantized else nn.Identity()
        wq = weight_quant_kwargs(weight_bits, per_channel) if self.quantized else None

        def conv(i: int, o: int, k: Any, pad: Any, groups: int = 1) -> nn.Module:
            if wq is None:
                return nn.Conv2d(i, o, k, padding=pad, bias=False, groups=groups)
            return QuantConv2d(i, o, k, padding=pad, bias=False, groups=groups, **wq)

        def requant() -> nn.Module | None:
            return requantizer(inner_bits) if self.quantized else None

        def act() -> nn.Module:
            return activation(act_bits) if self.quantized else nn.ReLU()

        self.convs, self.conv_norms, self.conv_acts = (
            nn.ModuleList(),
            nn.ModuleList(),
            nn.ModuleList(),
        )
        h, w, c = input_shape
        for i, ((channels, kernel, padding, pool), factor) in enumerate(
            zip(self.conv_specs, self.factors, strict=True)
        ):
            _check_window(f"conv{i}", "Conv2d", kernel, padding, (h, w), input_shape)
            if factor is None:
                self.convs.append(conv(c, channels, kernel, padding))
            else:
                stages = factored_conv_stages(factor, c, channels, kernel, padding)
                self.convs.append(
                    FactoredConv([conv(*st) for st in stages], [requant() for _ in stages[1:]])
                )
            self.conv_norms.append(nn.BatchNorm2d(channels))
            self.conv_acts.append(act())
            h, w, c = h + 2 * padding - kernel + 1, w + 2 * padding - kernel + 1, channels
            if pool:
                _check_window(f"pool{i}", "MaxPool", pool, 0, (h, w), input_shape)
                h, w = h // pool, w // pool
        self.linears, self.norms, self.acts = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        width = h * w * c
        for units in hidden:
            self.linears.append(_linear(width, units, None, wq))
            self.norms.append(nn.BatchNorm1d(units))
            self.acts.append(act())
            width = units
        self.classifier = _linear(width, classes, None, wq, bias=True)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w, c = self.shape
        q = self.input_quant(x.reshape(-1, h, w, c).permute(0, 3, 1, 2))
        for conv, norm, act, spec in zip(
            self.convs, self.conv_norms, self.conv_acts, self.conv_specs, strict=True
        ):
            q = act(norm(conv(q)))
            if spec[3]:
                q = torch.nn.functional.max_pool2d(q, spec[3])
        q = q.flatten(1)
        for linear, norm, act in zip(self.linears, self.norms, self.acts, strict=True):
            q = act(norm(linear(q)))
        out = self.classifier(q)
        return tensor_value(out)

    def export_plan(self) -> list[PlanStep]:
        """``("conv", conv, norm, act, pool)``*, ``("flatten",)``, MLP steps.

        A factored convolution emits one conv step per stage; the stages before the last
        end in their signed requantizer instead of batch norm and activation.
        """
        convs: list[PlanStep] = []
        for conv, bn, act, spec in zip(
            self.convs, self.conv_norms, self.conv_acts, self.conv_specs, strict=True
        ):
            if isinstance(conv, FactoredConv):
                for stage, req in zip(conv.stages[:-1], conv.requants, strict=True):
                    convs.append(("conv", stage, None, req, 0))
                conv = conv.stages[-1]
            convs.append(("conv", conv, bn, act, spec[3]))
        return [
            *convs,
            ("flatten",),
            *(
                st
                for lin, bn, act in zip(self.linears, self.norms, self.acts, strict=True)
                for st in _dense_steps(lin, bn, act)
            ),
            ("classifier", self.classifier),
        ]


def _check_window(
    name: str, op: str, kernel: int, padding: int, hw: tuple[int, int], image: tuple
) -> None:
    """Refuse, before any training, a kernel larger than its (padded) input, naming the
    node it becomes in the IR (``conv{i}``, ``pool{i}``)."""
    h, w = hw
    if h + 2 * padding < kernel or w + 2 * padding < kernel:
        raise ConfigError(
            f"node '{name}' ({op}): kernel {kernel}x{kernel} is larger than its {h}x{w} input"
            + (f" (padding {padding})" if padding else "")
            + f"; the images ({image[0]}x{image[1]}) are too small for this model.arch"
        )


def float_cnn(
    input_shape: tuple[int, int, int],
    convs: list,
    hidden: list[int],
    classes: int,
    factors: list | None = None,
) -> QuantCNN:
    """The float32 twin of a QuantCNN (same module names)."""
    return QuantCNN(input_shape, convs, hidden, classes, weight_bits=None, factors=factors)


class FloatMLP(nn.Module):
    """The same topology in float32: the accuracy baseline, and the start of compression.

    Attribute names match :class:`QuantMLP` (``linears``, ``norms``, ``acts``,
    ``classifier``), so pruning works on both and a float state dict loads into the
    quantized model for QAT fine-tuning.
    """

    quantized = False

    def __init__(
        self,
        in_features: int,
        hidden: list[int],
        classes: int,
        ranks: list[int | None] | None = None,
    ) -> None:
        super().__init__()
        ranks = list(ranks) if ranks else [None] * (len(hidden) + 1)
        self.ranks = ranks
        self.linears = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.acts = nn.ModuleList()
        width = in_features
        for h, r in zip(hidden, ranks, strict=False):
            self.linears.append(_linear(width, h, r, None))
            self.norms.append(nn.BatchNorm1d(h))
            self.acts.append(nn.ReLU())
            width = h
        self.classifier = _linear(width, classes, ranks[-1], None, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for linear, norm, act in zip(self.linears, self.norms, self.acts, strict=True):
            x = act(norm(linear(x)))
        return self.classifier(x)


def conv_modules(model: nn.Module) -> list[nn.Module]:
    """Every convolution weight layer in order, factored convolutions expanded into stages."""
    out: list[nn.Module] = []
    for conv in getattr(model, "convs", []):
        out += list(conv.stages) if isinstance(conv, FactoredConv) else [conv]
    return out


def linear_modules(model: nn.Module) -> list[nn.Module]:
    """Every fully connected weight layer in order, factored layers expanded into halves."""
    out: list[nn.Module] = []
    for lin in [*model.linears, model.classifier]:
        out += [lin.first, lin.second] if isinstance(lin, FactoredLinear) else [lin]
    return out
