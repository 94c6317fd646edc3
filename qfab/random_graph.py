"""Random but valid IR graphs, for tests and benchmarks of the stages after export.

Hardware and golden tests should not need a trained network: a random MLP with the
same operator mix exercises every width and folding corner (odd sizes, 8-bit weights,
thresholds at the edges of the accumulator range) in milliseconds.
"""

from __future__ import annotations

import numpy as np

from qfab.ir import Graph, Node, input_range, weight_range
from qfab.ranges import IntRange, dense_acc_range


def random_mlp_graph(
    features: int,
    hidden: list[int],
    classes: int,
    *,
    weight_bits: int = 2,
    act_bits: int = 2,
    input_bits: int = 8,
    seed: int = 0,
    signed_acts: bool = False,
    signed_input: bool = False,
) -> Graph:
    """An MLP ``InputQuant -> (Dense -> MultiThreshold)* -> Dense(+bias) -> OutputDequant``.

    Thresholds are drawn inside the reachable accumulator range of each channel (plus a
    few at ``hi + 1``, never reached, and at ``lo``, always reached) so every output
    level and both extremes occur. ``act_bits = 1`` gives bipolar (±1) activations;
    ``signed_acts`` gives signed ones (offset ``-2^(b-1)``), as between factored layers;
    ``signed_input`` a signed ``InputQuant`` (``[-2^(b-1), 2^(b-1) - 1]``).
    """
    rng = np.random.default_rng(seed)
    nodes = [
        Node(
            "input",
            "InputQuant",
            [],
            {
                "bits": input_bits,
                "signed": signed_input,
                "scale": 2.0**-input_bits,
                "features": features,
            },
        )
    ]
    in_lo, in_hi = input_range(input_bits, signed_input)
    x = IntRange(np.full(features, in_lo, np.int64), np.full(features, in_hi, np.int64))
    prev, width = "input", features
    wlo, whi = weight_range(weight_bits)
    for i, h in enumerate([*hidden, classes]):
        w = rng.integers(wlo, whi + 1, size=(h, width))
        if weight_bits == 1:
            w = np.where(w >= 0, 1, -1)
        last = i == len(hidden)
        tensors = {"weight": w.astype(np.int64)}
        if last:
            tensors["bias"] = rng.integers(-4, 5, size=h).astype(np.int64)
        dense = Node(f"fc{i}", "Dense", [prev], {"weight_bits": weight_bits}, tensors)
        nodes.append(dense)
        if last:
            prev = dense.name
            break
        acc = dense_acc_range(dense, x)
        # Draw mostly around the typical accumulator (inputs are not all at their extremes).
        centre = (acc.lo + acc.hi) / 2
        spread = np.maximum((acc.hi - acc.lo) / 6, 1)
        nt = 2**act_bits - 1
        t = rng.normal(centre[:, None], spread[:, None], size=(h, nt))
        t = np.clip(np.rint(t), acc.lo[:, None], acc.hi[:, None] + 1).astype(np.int64)
        t[0, :] = acc.hi[0] + 1  # a channel that never fires
        if h > 1:
            t[1, :] = acc.lo[1]  # a channel always saturated
        t.sort(axis=1)
        bipolar = act_bits == 1
        offset = -(2 ** (act_bits - 1)) if signed_acts and not bipolar else 0
        attrs = {"out_bits": act_bits, "offset": offset, **({"bipolar": True} if bipolar else {})}
        nodes.append(Node(f"mt{i}", "MultiThreshold", [dense.name], attrs, {"thresholds": t}))
        prev, width = f"mt{i}", h
        lo, hi = (-1, 1) if bipolar else (offset, offset + nt)
        x = IntRange(np.full(h, lo, np.int64), np.full(h, hi, np.int64))
    nodes.append(
        Node(
            "output",
            "OutputDequant",
            [prev],
            {},
            {"scale": np.full(classes, 2.0**-6, np.float32), "bias": np.zeros(classes, np.float32)},
        )
    )
    return Graph(nodes, {"source": "random_mlp_graph", "seed": seed}).validate()
