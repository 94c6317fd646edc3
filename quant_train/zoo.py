"""Model zoo: the network shapes the compression literature and FINN use, sized by data set.

* ``mlp``: hidden sizes from the config.
* ``tfc`` / ``sfc`` / ``lfc``: FINN's fully connected nets, 3 hidden layers of 64 / 256 /
  1024 units (BNN-PYNQ's TFC, SFC, LFC).
* ``lenet300``: LeNet-300-100, the MLP of Deep Compression's Table 1.
* ``lenet5``: LeNet-5-like: conv 6 -> pool -> conv 16 -> pool -> fc 120 -> fc 84.
* ``cnv``: a small CNV-like net (FINN's CIFAR-10 CNV scaled to the input): two pairs of
  3x3 convs with pooling, then two fully connected layers.
* ``mobilenet`` / ``shufflenet`` / ``squeezenet``: compact nets (:mod:`quant_train.compact`):
  depthwise-separable blocks; grouped 1x1 + channel shuffle + residual add; fire module
  with concatenation.

Every entry is a Brevitas model with power-of-two scales that :func:`export_model`
turns into an exact IR.
"""

from __future__ import annotations

from torch import nn

from qfab.errors import ConfigError
from quant_train.models import FloatMLP, QuantCNN, QuantMLP

MLP_SIZES = {
    "tfc": [64, 64, 64],
    "sfc": [256, 256, 256],
    "lfc": [1024, 1024, 1024],
    "lenet300": [300, 100],
}
CONV_ARCHS = ("lenet5", "cnv")
COMPACT_ARCHS = ("mobilenet", "shufflenet", "squeezenet")
IMAGE_ARCHS = (*CONV_ARCHS, *COMPACT_ARCHS)
ARCHS = ("mlp", *MLP_SIZES, *IMAGE_ARCHS)


def conv_layers(arch: str, image_shape: tuple[int, int, int]) -> tuple[list, list[int]]:
    """(conv specs ``(channels, kernel, padding, pool)``, hidden sizes) for an image size."""
    h = image_shape[0]
    if arch == "lenet5":
        # 28x28: the classic 5x5 kernels (padding 2 first, as LeNet on 28x28 MNIST);
        # small images (digits, 8x8): 3x3 kernels with padding so two pools still fit.
        if h >= 28:
            return [(6, 5, 2, 2), (16, 5, 0, 2)], [120, 84]
        return [(6, 3, 1, 2), (16, 3, 1, 2)], [120, 84]
    if arch == "cnv":
        if h >= 28:
            return [(32, 3, 0, 0), (32, 3, 0, 2), (64, 3, 0, 0), (64, 3, 0, 2)], [128, 128]
        return [(16, 3, 1, 0), (16, 3, 1, 2), (32, 3, 1, 0), (32, 3, 1, 2)], [64, 64]
    raise ConfigError(f"model.arch = {arch!r} is not a conv net; allowed: {CONV_ARCHS}")


def build_model(
    arch: str,
    input_shape: tuple[int, ...],
    classes: int,
    *,
    hidden: list[int] | None = None,
    weight_bits: int | None,
    act_bits: int = 8,
    input_bits: int = 8,
    per_channel: bool = False,
    width: int = 16,
    groups: int = 4,
) -> nn.Module:
    """A zoo model for ``input_shape`` (``(features,)`` or ``(H, W, C)``).

    ``weight_bits=None`` gives the float32 twin (same topology and module names, no
    quantizers): the accuracy baseline, and the start of ``qfab compress``.
    """
    quant = {
        "weight_bits": weight_bits,
        "act_bits": act_bits,
        "input_bits": input_bits,
        "per_channel": per_channel,
    }
    features = 1
    for d in input_shape:
        features *= int(d)
    if arch == "mlp" or arch in MLP_SIZES:
        sizes = list(hidden or [64, 64]) if arch == "mlp" else MLP_SIZES[arch]
        if weight_bits is None:
            return FloatMLP(features, sizes, classes)
        return QuantMLP(features, sizes, classes, **quant)
    if arch in COMPACT_ARCHS:
        from quant_train.compact import COMPACT

        if len(input_shape) != 3:
            raise ConfigError(
                f"model.arch = {arch}: needs images (H, W, C), the data set gives "
                f"{features} plain features"
            )
        extra = {"groups": groups} if arch == "shufflenet" else {}
        return COMPACT[arch](tuple(input_shape), classes, width=width, **quant, **extra)
    if arch in CONV_ARCHS:
        if len(input_shape) != 3:
            raise ConfigError(
                f"model.arch = {arch}: needs images (H, W, C), the data set gives "
                f"{features} plain features"
            )
        convs, fc = conv_layers(arch, tuple(input_shape))
        return QuantCNN(tuple(input_shape), convs, fc, classes, **quant)
    raise ConfigError(f"model.arch = {arch!r} is not allowed; allowed: {', '.join(ARCHS)}")
