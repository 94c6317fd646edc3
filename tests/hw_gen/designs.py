"""Small random designs covering every hardware node kind, shared by the hardware tests.

Each entry is (graph, lowering settings). Together they exercise: MVAU (dense and conv,
every input encoding), XnorMVAU (with thresholds and with bias), VVAU (square and
non-square depthwise), SlidingWindow (padding, stride 2, non-square, bipolar widening,
whole-tap beats), StreamingMaxPool (also as an OR on bipolar data), Thresholding (after
an add), AddStreams with shifts, ConcatStreams of three branches, ShuffleStreams, Fork,
FIFO, DWC up/down/non-multiple, and the output port width cap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qfab.ir import Graph
from qfab.random_graph import GraphBuilder, random_mlp_graph


def mlp_dwc() -> tuple[Graph, dict[str, Any]]:
    g = random_mlp_graph(24, [24, 13], 10, weight_bits=3, act_bits=2, input_bits=4, seed=1)
    return g, {"pe": [4, 13, 2], "simd": [6, 2, 13]}


def mlp_w1a1_xnor() -> tuple[Graph, dict[str, Any]]:
    g = random_mlp_graph(24, [24, 16], 10, weight_bits=1, act_bits=1, seed=1)
    return g, {"pe": [4, 8, 5], "simd": [8, 4, 8]}


def mlp_signed() -> tuple[Graph, dict[str, Any]]:
    g = random_mlp_graph(
        16,
        [13, 12],
        7,
        weight_bits=4,
        act_bits=3,
        input_bits=5,
        signed_acts=True,
        signed_input=True,
        seed=2,
    )
    return g, {"pe": [13, 4, 7], "simd": [4, 13, 6]}


def lenet_like() -> tuple[Graph, dict[str, Any]]:
    """conv 3x3 pad 1 -> thresholds -> pool -> conv stride 2 -> thresholds -> dense."""
    b = GraphBuilder((6, 6, 2), input_bits=4, seed=3)
    b.conv(4, (3, 3), padding=(1, 1), weight_bits=3, name="conv0")
    b.thresholds(2, name="mt0")
    b.pool(2)
    b.conv(6, (3, 3), stride=(2, 2), padding=(1, 1), weight_bits=2, name="conv1")
    b.thresholds(2, name="mt1")
    b.dense(5, weight_bits=2, bias=True, name="fc2")
    return b.output(), {"target_cycles": 40}


def depthwise_cp() -> tuple[Graph, dict[str, Any]]:
    """CP-style: 1x1 -> depthwise 3x1 -> depthwise 1x3 -> 1x1 (signed 8-bit requantizers)."""
    b = GraphBuilder((5, 5, 2), input_bits=3, seed=4)
    b.conv(4, (1, 1), padding=(0, 0), weight_bits=4, name="pw0")
    b.thresholds(3, signed=True, name="rq0")
    b.conv(4, (3, 1), padding=(1, 0), groups=4, weight_bits=4, name="dw1")
    b.thresholds(3, signed=True, name="rq1")
    b.conv(4, (1, 3), padding=(0, 1), groups=4, weight_bits=4, name="dw2")
    b.thresholds(3, signed=True, name="rq2")
    b.conv(3, (1, 1), padding=(0, 0), weight_bits=4, name="pw3")
    b.thresholds(2, name="mt3")
    b.dense(4, weight_bits=3, bias=True, name="fc4")
    return b.output(), {"target_cycles": 30}


def branchy() -> tuple[Graph, dict[str, Any]]:
    """ShuffleNet/SqueezeNet-like: fork, grouped 1x1, shuffle, depthwise, residual add with a
    shift, thresholds after the add, a three-way concat."""
    b = GraphBuilder((4, 4, 3), input_bits=4, seed=5)
    b.conv(8, (3, 3), weight_bits=3, name="stem")
    stem = b.thresholds(2, name="mt_stem")
    b.conv(8, (1, 1), padding=(0, 0), groups=2, weight_bits=3, src=stem, name="g1")
    b.thresholds(2, name="mt_g1")
    b.shuffle(2)
    b.conv(8, (3, 3), groups=8, weight_bits=3, name="dw2")
    branch = b.thresholds(2, name="mt_dw2")
    s = b.add(stem, branch, shift=(1, 0))
    joined = b.thresholds(2, src=s, name="mt_add")
    b.conv(4, (1, 1), padding=(0, 0), weight_bits=2, src=joined, name="e1")
    t1 = b.thresholds(2, name="mt_e1")
    b.conv(4, (3, 3), weight_bits=2, src=joined, name="e3")
    t3 = b.thresholds(2, name="mt_e3")
    cat = b.concat(t1, t3, joined)
    b.pool(2, src=cat)
    b.dense(3, weight_bits=2, bias=True, name="fc")
    return b.output(), {"target_cycles": 48}


def bipolar_conv() -> tuple[Graph, dict[str, Any]]:
    """CNV w1a1 on small images: bipolar activations into padded convs (widened to 2-bit
    signed by the window), pools as ORs, XNOR dense layers."""
    b = GraphBuilder((6, 6, 1), input_bits=8, seed=6)
    b.conv(4, (3, 3), weight_bits=1, name="conv0")
    b.thresholds(1, name="mt0")
    b.conv(4, (3, 3), weight_bits=1, name="conv1")
    b.thresholds(1, name="mt1")
    b.pool(2)
    b.conv(8, (3, 3), padding=(0, 0), weight_bits=1, name="conv2")
    b.thresholds(1, name="mt2")
    b.dense(6, weight_bits=1, name="fc3")
    b.thresholds(1, name="mt3")
    b.dense(4, weight_bits=1, bias=True, name="fc4")
    return b.output(), {"target_cycles": 60}


def whole_taps() -> tuple[Graph, dict[str, Any]]:
    """A window emitting whole taps per beat (SIMD = 3 taps x C) and a 5x5 kernel."""
    b = GraphBuilder((7, 7, 2), input_bits=6, seed=7)
    b.conv(3, (5, 5), padding=(2, 2), weight_bits=4, name="conv0")
    b.thresholds(4, name="mt0")
    b.conv(2, (3, 3), padding=(0, 0), weight_bits=2, name="conv1")
    b.thresholds(2, name="mt1")
    b.dense(3, weight_bits=2, bias=True, name="fc2")
    return b.output(), {"pe": [3, 2, 3], "simd": [10, 9, 2]}


DESIGNS: dict[str, Callable[[], tuple[Graph, dict[str, Any]]]] = {
    "mlp_dwc": mlp_dwc,
    "mlp_w1a1_xnor": mlp_w1a1_xnor,
    "mlp_signed": mlp_signed,
    "lenet_like": lenet_like,
    "depthwise_cp": depthwise_cp,
    "branchy": branchy,
    "bipolar_conv": bipolar_conv,
    "whole_taps": whole_taps,
}
