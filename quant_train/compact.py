"""Compact networks: MobileNet-, ShuffleNet- and SqueezeNet-like nets small enough for digits.

Each is a Brevitas model with power-of-two scales whose ``graph_plan()`` names every
node's inputs, so the exporter can write branches: a residual ``Add`` (ShuffleNet unit:
the two branches keep their own scales and meet exactly on the finer one), a channel
``Concat`` (SqueezeNet fire: both expand branches share one activation quantizer, hence
one scale), ``ChannelShuffle`` (ShuffleNet) and depthwise convolutions (MobileNet).

Layout: images come in flattened NHWC ``[N, H*W*C]`` like every qfab model; all
convolutions live in ``self.convs`` (in order) so pruning and MAC counting see them.

With ``weight_bits=None`` a net is its own float32 twin (``nn.Conv2d``, ``nn.ReLU``, no
quantizers, the same module names): the baseline of ``qfab compress``, whose state
dict loads into the quantized net of :func:`quant_twin`
(:func:`quant_train.compress.float_to_quant`) for QAT, sharing and encoding.
"""

from __future__ import annotations

from typing import Any

import torch
from brevitas.nn import QuantConv2d, QuantLinear
from brevitas.quant import Int32Bias
from torch import nn

from qfab.errors import ConfigError
from quant_train.models import (
    INNER_BITS,
    activation,
    input_quantizer,
    tensor_value,
    weight_quant_kwargs,
)


class CompactNet(nn.Module):
    """Shared plumbing: input quantizer, conv/bn/act registry, classifier, plan helpers."""

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        classes: int,
        *,
        weight_bits: int | None,
        act_bits: int = 8,
        input_bits: int = 8,
        per_channel: bool = False,
        inner_bits: int = INNER_BITS,  # for a uniform quant_config; no factored layers here
    ) -> None:
        super().__init__()
        self.quantized = weight_bits is not None
        self.quant_config = {
            "weight_bits": weight_bits,
            "act_bits": act_bits,
            "input_bits": input_bits,
            "per_channel": per_channel,
            "inner_bits": inner_bits,
        }
        self.shape = tuple(input_shape)
        self.classes = classes
        self.input_quant = input_quantizer(input_bits) if self.quantized else nn.Identity()
        self.convs, self.conv_norms, self.conv_acts = (
            nn.ModuleList(),
            nn.ModuleList(),
            nn.ModuleList(),
        )
        self.linears = nn.ModuleList()  # no hidden fully connected layers
        self._wq = weight_quant_kwargs(weight_bits, per_channel) if self.quantized else None
        self._act_bits = act_bits

    def arch_kwargs(self) -> dict[str, Any]:
        """The architecture arguments beyond shape and classes (to build a twin)."""
        return {"width": self.width}

    def activation(self) -> nn.Module:
        """The block activation: QuantReLU / bipolar sign, or ReLU in the float twin."""
        return activation(self._act_bits) if self.quantized else nn.ReLU()

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.shape

    def conv(
        self, c_in: int, c_out: int, k: int, groups: int = 1, shared_act: nn.Module | None = None
    ) -> int:
        """Register conv + batch norm + activation; returns the layer index."""
        if c_in % groups or c_out % groups:
            raise ConfigError(
                f"conv{len(self.convs)}: groups={groups} must divide {c_in} input "
                f"and {c_out} output channels"
            )
        if self._wq is None:
            layer: nn.Module = nn.Conv2d(c_in, c_out, k, padding=k // 2, groups=groups, bias=False)
        else:
            layer = QuantConv2d(
                c_in, c_out, k, padding=k // 2, groups=groups, bias=False, **self._wq
            )
        self.convs.append(layer)
        self.conv_norms.append(nn.BatchNorm2d(c_out))
        if shared_act is None or not self.quantized:
            act = self.activation()
        else:  # same quantizer (scale) as another branch, for an exact Concat
            act = type(shared_act)(act_quant=shared_act.act_quant, return_quant_tensor=True)
        self.conv_acts.append(act)
        return len(self.convs) - 1

    def run(self, i: int, x: Any) -> Any:
        return self.conv_acts[i](self.conv_norms[i](self.convs[i](x)))

    def classifier_for(self, features: int, classes: int) -> None:
        if self._wq is None:
            self.classifier: nn.Module = nn.Linear(features, classes)
        else:
            self.classifier = QuantLinear(
                features, classes, bias=True, bias_quant=Int32Bias, **self._wq
            )

    def images(self, x: torch.Tensor) -> Any:
        h, w, c = self.shape
        return self.input_quant(x.reshape(-1, h, w, c).permute(0, 3, 1, 2))

    def head(self, q: Any) -> torch.Tensor:
        return tensor_value(self.classifier(torch.nn.functional.max_pool2d(q, 2).flatten(1)))

    def check_plan(self) -> None:
        """Branch shapes must meet at Add/Concat: checked from the plan, before training."""
        shapes: dict[str, tuple[int, ...]] = {"input": self.shape}
        for step in self.graph_plan():
            kind, out = step["kind"], step.get("out")
            if kind == "conv":
                h, w, _ = shapes[step["input"]]
                layer = step["layer"]
                (kh, kw), (ph, pw) = layer.kernel_size, layer.padding
                shape = (h + 2 * ph - kh + 1, w + 2 * pw - kw + 1, layer.out_channels)
                shapes[step["mt"]] = shape
                if step["pool"]:
                    shapes[out] = (shape[0] // step["pool"], shape[1] // step["pool"], shape[2])
            elif kind in ("add", "concat"):
                ins = [shapes[i] for i in step["inputs"]]
                key = (lambda sh: sh) if kind == "add" else (lambda sh: sh[:2])
                if any(key(sh) != key(ins[0]) for sh in ins):
                    raise ConfigError(
                        f"{step.get('name', out)} ({kind}): branch shapes differ: "
                        + ", ".join(
                            f"{i} {list(sh)}" for i, sh in zip(step["inputs"], ins, strict=True)
                        )
                    )
                shapes[out] = ins[0] if kind == "add" else (*ins[0][:2], sum(sh[2] for sh in ins))
            elif kind in ("shuffle", "pool_only"):
                h, w, c = shapes[step["input"]]
                k = step.get("k", 1)
                shapes[out] = (h // k, w // k, c)

    def conv_step(self, i: int, src: str, pool: int = 0) -> dict[str, Any]:
        return {
            "kind": "conv",
            "input": src,
            "name": f"conv{i}",
            "layer": self.convs[i],
            "bn": self.conv_norms[i],
            "act": self.conv_acts[i],
            "mt": f"mt{i}",
            "pool": pool,
            "out": f"pool{i}" if pool else f"mt{i}",
        }

    def head_steps(self, src: str, last_conv: int) -> list[dict[str, Any]]:
        pool = f"pool_head{last_conv}"
        return [
            {"kind": "pool_only", "input": src, "out": pool, "k": 2},
            {"kind": "flatten", "input": pool, "out": "flatten"},
            {"kind": "classifier", "input": "flatten", "name": "fc_out", "layer": self.classifier},
        ]


class MobileNetLike(CompactNet):
    """stem 3x3 conv -> 2 depthwise-separable blocks (dw 3x3 + pw 1x1, pooled) -> linear."""

    def __init__(
        self, input_shape: tuple[int, int, int], classes: int, *, width: int = 16, **quant: Any
    ) -> None:
        super().__init__(input_shape, classes, **quant)
        self.width = width
        c = input_shape[2]
        self.conv(c, width, 3)
        self.conv(width, width, 3, groups=width)  # depthwise
        self.conv(width, 2 * width, 1)  # pointwise
        self.conv(2 * width, 2 * width, 3, groups=2 * width)
        self.conv(2 * width, 4 * width, 1)
        h = input_shape[0] // 2 // 2
        self.classifier_for(4 * width * h * h, classes)
        self.check_plan()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.run(0, self.images(x))
        q = torch.nn.functional.max_pool2d(self.run(2, self.run(1, q)), 2)
        return self.head(self.run(4, self.run(3, q)))

    def graph_plan(self) -> list[dict[str, Any]]:
        return [
            self.conv_step(0, "input"),
            self.conv_step(1, "mt0"),
            self.conv_step(2, "mt1", pool=2),
            self.conv_step(3, "pool2"),
            self.conv_step(4, "mt3"),
            *self.head_steps("mt4", 4),
        ]


class ShuffleNetLike(CompactNet):
    """stem conv (pooled) -> ShuffleNet unit: grouped 1x1, channel shuffle, depthwise 3x3,
    grouped 1x1, residual Add with the unit input, activation -> linear."""

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        classes: int,
        *,
        width: int = 16,
        groups: int = 4,
        **quant: Any,
    ) -> None:
        super().__init__(input_shape, classes, **quant)
        if width % groups:
            raise ConfigError(f"model.groups = {groups} must divide the width {width}")
        self.groups, self.width = groups, width
        self.conv(input_shape[2], width, 3)
        self.conv(width, width, 1, groups=groups)
        self.conv(width, width, 3, groups=width)
        self.conv(width, width, 1, groups=groups)
        self.add_act = self.activation()
        h = input_shape[0] // 2 // 2
        self.classifier_for(width * h * h, classes)
        self.check_plan()

    def arch_kwargs(self) -> dict[str, Any]:
        return {"width": self.width, "groups": self.groups}

    def shuffle(self, q: Any) -> torch.Tensor:
        v = tensor_value(q)
        n, c, h, w = v.shape
        return v.reshape(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stem = torch.nn.functional.max_pool2d(self.run(0, self.images(x)), 2)
        branch = self.run(3, self.run(2, self.shuffle(self.run(1, stem))))
        # quantized: both are exact multiples of power-of-two scales, so the float sum is exact
        q = self.add_act(tensor_value(stem) + tensor_value(branch))
        return self.head(q)

    def graph_plan(self) -> list[dict[str, Any]]:
        return [
            self.conv_step(0, "input", pool=2),
            self.conv_step(1, "pool0"),
            {"kind": "shuffle", "input": "mt1", "groups": self.groups, "out": "shuffle1"},
            self.conv_step(2, "shuffle1"),
            self.conv_step(3, "mt2"),
            {
                "kind": "add",
                "inputs": ["pool0", "mt3"],
                "name": "add4",
                "act": self.add_act,
                "mt": "mt_add4",
                "out": "mt_add4",
            },
            *self.head_steps("mt_add4", 4),
        ]


class SqueezeNetLike(CompactNet):
    """stem conv (pooled) -> fire module: squeeze 1x1, expand 1x1 and 3x3 concatenated."""

    def __init__(
        self, input_shape: tuple[int, int, int], classes: int, *, width: int = 16, **quant: Any
    ) -> None:
        super().__init__(input_shape, classes, **quant)
        self.width = width
        self.conv(input_shape[2], width, 3)
        self.conv(width, width // 2, 1)  # squeeze
        e1 = self.conv(width // 2, width, 1)  # expand 1x1
        self.conv(width // 2, width, 3, shared_act=self.conv_acts[e1])  # expand 3x3
        h = input_shape[0] // 2 // 2
        self.classifier_for(2 * width * h * h, classes)
        self.check_plan()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stem = torch.nn.functional.max_pool2d(self.run(0, self.images(x)), 2)
        s = self.run(1, stem)
        return self.head(torch.cat([self.run(2, s), self.run(3, s)], dim=1))

    def graph_plan(self) -> list[dict[str, Any]]:
        return [
            self.conv_step(0, "input", pool=2),
            self.conv_step(1, "pool0"),
            self.conv_step(2, "mt1"),
            self.conv_step(3, "mt1"),
            {"kind": "concat", "inputs": ["mt2", "mt3"], "out": "concat4"},
            *self.head_steps("concat4", 4),
        ]


COMPACT = {"mobilenet": MobileNetLike, "shufflenet": ShuffleNetLike, "squeezenet": SqueezeNetLike}


def quant_twin(model: CompactNet, **quant: Any) -> CompactNet:
    """A quantized net of the same class and architecture as ``model`` (weights not yet
    loaded: :func:`quant_train.compress.float_to_quant` does that for every model kind)."""
    return type(model)(model.input_shape, model.classes, **model.arch_kwargs(), **quant)
