"""Bipolar MVAUs to XNOR-popcount units (FINN's ConvertBipolarMatMulToXnorPopcount).

With inputs and weights in {-1, +1}, ``x . w = 2*pc - MW`` where ``pc`` counts the
positions where their signs agree (an XNOR). The unit counts ``pc`` and never
multiplies, so its tensors are rewritten for the count:

* thresholds: ``acc >= T``  <=>  ``2*pc >= T + MW``  <=>  ``pc >= ceil((T + MW) / 2)``;
* no thresholds (a last layer): ``acc + b = 2*pc + (b - MW)``, so the bias becomes
  ``b - MW``.

Golden counts matches directly, so executing the graph before and after this pass
checks the rewrite on every vector.
"""

from __future__ import annotations

import numpy as np

from hw_gen.passes.base import Pass
from qfab.ir import Graph
from qfab.ranges import node_ranges


def popcount_thresholds(thresholds: np.ndarray, mw: int) -> np.ndarray:
    """``ceil((T + MW) / 2)``: the smallest match count whose accumulator reaches ``T``."""
    return -((-(thresholds.astype(np.int64) + mw)) // 2)


class ToXnor(Pass):
    """Every MVAU with ±1 weights fed a bipolar stream becomes an ``XnorMVAU``."""

    def apply(self, graph: Graph) -> Graph:
        g = graph.copy()
        ranges = node_ranges(g)
        for n in g.nodes:
            if n.op != "MVAU" or int(n.attrs["weight_bits"]) != 1:
                continue
            if not ranges[n.inputs[0]].bipolar:
                continue
            mh, mw = n.tensors["weight"].shape
            if "thresholds" in n.tensors:
                n.tensors["thresholds"] = popcount_thresholds(n.tensors["thresholds"], mw)
            else:
                bias = n.tensors.get("bias", np.zeros(mh, np.int64)).astype(np.int64)
                n.tensors["bias"] = bias - mw
            n.op = "XnorMVAU"
        return g
