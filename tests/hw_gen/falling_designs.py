"""Random designs whose activations have falling channels (``MultiThreshold.direction``).

The exporter marks channels whose output falls as the accumulator rises (a negative
batch-norm slope) with ``direction`` -1 and keeps the weights as trained; the dense
hardware has no direction input, so ``FuseThresholds`` negates those rows of the unit.
These designs put falling channels (about half of them) into every unit that fuses
thresholds: MVAU with a bias (dense), MVAU behind a sliding window (conv, padded and
strided, then a max pool on the activations), the block-diagonal MVAU of a grouped conv,
VVAU (depthwise), XnorMVAU (dense and conv), with signed and bipolar outputs. The
thresholds after an ``Add`` rise, as the exporter guarantees. Shared by the lowering
tests (tests/hw_gen/test_passes.py) and the RTL simulation (tests/sim).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qfab.ir import Graph
from qfab.random_graph import GraphBuilder, random_mlp_graph

HALF = 0.5


def mlp_bias_falling() -> tuple[Graph, dict[str, Any]]:
    """Dense + bias + falling thresholds (the bias is negated with its row), signed acts."""
    b = GraphBuilder((24,), input_bits=4, seed=11)
    b.dense(24, weight_bits=3, bias=True, name="fc0")
    b.thresholds(2, falling=HALF, name="mt0")
    b.dense(13, weight_bits=3, name="fc1")
    b.thresholds(3, signed=True, falling=HALF, name="mt1")
    b.dense(10, weight_bits=3, bias=True, name="fc2")
    return b.output(), {"pe": [4, 13, 2], "simd": [6, 2, 13]}


def lenet_falling() -> tuple[Graph, dict[str, Any]]:
    """conv pad 1 -> falling thresholds -> pool -> conv stride 2 -> falling -> dense."""
    b = GraphBuilder((6, 6, 2), input_bits=4, seed=13)
    b.conv(4, (3, 3), padding=(1, 1), weight_bits=3, name="conv0")
    b.thresholds(2, falling=HALF, name="mt0")
    b.pool(2)
    b.conv(6, (3, 3), stride=(2, 2), padding=(1, 1), weight_bits=2, name="conv1")
    b.thresholds(2, falling=HALF, name="mt1")
    b.dense(5, weight_bits=2, bias=True, name="fc2")
    return b.output(), {"target_cycles": 40}


def depthwise_falling() -> tuple[Graph, dict[str, Any]]:
    """CP-style 1x1 -> depthwise 3x1 -> depthwise 1x3 -> 1x1, falling signed requantizers."""
    b = GraphBuilder((5, 5, 2), input_bits=3, seed=14)
    b.conv(4, (1, 1), padding=(0, 0), weight_bits=4, name="pw0")
    b.thresholds(3, signed=True, falling=HALF, name="rq0")
    b.conv(4, (3, 1), padding=(1, 0), groups=4, weight_bits=4, name="dw1")
    b.thresholds(3, signed=True, falling=HALF, name="rq1")
    b.conv(4, (1, 3), padding=(0, 1), groups=4, weight_bits=4, name="dw2")
    b.thresholds(3, signed=True, falling=HALF, name="rq2")
    b.conv(3, (1, 1), padding=(0, 0), weight_bits=4, name="pw3")
    b.thresholds(2, falling=HALF, name="mt3")
    b.dense(4, weight_bits=3, bias=True, name="fc4")
    return b.output(), {"target_cycles": 30}


def xnor_falling() -> tuple[Graph, dict[str, Any]]:
    """w1a1 MLP: bipolar falling channels on XNOR-popcount units."""
    g = random_mlp_graph(24, [24, 16], 10, weight_bits=1, act_bits=1, seed=15, falling=HALF)
    return g, {"pe": [4, 8, 5], "simd": [8, 4, 8]}


def bipolar_conv_falling() -> tuple[Graph, dict[str, Any]]:
    """CNV w1a1: falling bipolar channels into padded convs, a pool (an OR), XNOR layers."""
    b = GraphBuilder((6, 6, 1), input_bits=8, seed=16)
    b.conv(4, (3, 3), weight_bits=1, name="conv0")
    b.thresholds(1, falling=HALF, name="mt0")
    b.conv(4, (3, 3), weight_bits=1, name="conv1")
    b.thresholds(1, falling=HALF, name="mt1")
    b.pool(2)
    b.conv(8, (3, 3), padding=(0, 0), weight_bits=1, name="conv2")
    b.thresholds(1, falling=HALF, name="mt2")
    b.dense(6, weight_bits=1, name="fc3")
    b.thresholds(1, falling=HALF, name="mt3")
    b.dense(4, weight_bits=1, bias=True, name="fc4")
    return b.output(), {"target_cycles": 60}


def branchy_falling() -> tuple[Graph, dict[str, Any]]:
    """Grouped 1x1 (block-diagonal MVAU), shuffle, depthwise, residual add (rising after
    the sum), concat, pool: falling channels on every fused threshold."""
    b = GraphBuilder((4, 4, 3), input_bits=4, seed=17)
    b.conv(8, (3, 3), weight_bits=3, name="stem")
    stem = b.thresholds(2, falling=HALF, name="mt_stem")
    b.conv(8, (1, 1), padding=(0, 0), groups=2, weight_bits=3, src=stem, name="g1")
    b.thresholds(2, falling=HALF, name="mt_g1")
    b.shuffle(2)
    b.conv(8, (3, 3), groups=8, weight_bits=3, name="dw2")
    branch = b.thresholds(2, falling=HALF, name="mt_dw2")
    s = b.add(stem, branch, shift=(1, 0))
    joined = b.thresholds(2, src=s, name="mt_add")
    b.conv(4, (1, 1), padding=(0, 0), weight_bits=2, src=joined, name="e1")
    t1 = b.thresholds(2, falling=HALF, name="mt_e1")
    b.conv(4, (3, 3), weight_bits=2, src=joined, name="e3")
    t3 = b.thresholds(2, falling=HALF, name="mt_e3")
    cat = b.concat(t1, t3, joined)
    b.pool(2, src=cat)
    b.dense(3, weight_bits=2, bias=True, name="fc")
    return b.output(), {"target_cycles": 48}


FALLING_DESIGNS: dict[str, Callable[[], tuple[Graph, dict[str, Any]]]] = {
    "mlp_bias_falling": mlp_bias_falling,
    "lenet_falling": lenet_falling,
    "depthwise_falling": depthwise_falling,
    "xnor_falling": xnor_falling,
    "bipolar_conv_falling": bipolar_conv_falling,
    "branchy_falling": branchy_falling,
}
