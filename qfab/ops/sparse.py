"""``SparseMVAU``: the EIE-style sparse engine of a pruned, weight-shared fully connected layer.

The node holds the layer exactly as the engine's memories do (:mod:`qfab.sparse`: a
codebook whose code 0 is the padding zero, per-PE CSC entries ``(code, gap)`` and
per-PE column pointers), and golden computes from those words, so simulation compares
the hardware with what its memories were initialised from.

Output: ``direction[r] * acc[r] + bias[r]``. The ``direction`` (-1 for channels whose
activation falls as the accumulator rises, from the model's ``MultiThreshold``) is
applied here because a shared codebook cannot negate one row without doubling; the
``Thresholding`` unit after the engine then compares ``>=`` as usual. A layer without
thresholds (the classifier) may carry a ``bias``.

Folding: ``pes`` PEs own rows ``p, p + N, ...``; the input stream carries ``simd``
activations per beat (the leading-non-zero detector scans a beat and broadcasts one
non-zero per cycle); the output carries ``pe`` accumulators per beat (``pe <= pes``, so
a beat's rows sit on distinct PEs). ``cycles`` is the modelled bound for an input
without zeros; the data-dependent model is :mod:`hw_gen.sparse_perf`.
"""

from __future__ import annotations

import numpy as np

from qfab.errors import IRError
from qfab.ops.base import HARDWARE_ATTRS, Attr, StreamOp, Tensor, must_divide
from qfab.ops.linear import dense_acc_range
from qfab.ops.registry import register
from qfab.sparse import layout_of, sparse_decode
from qfab.values import IntRange


def engine_bound(layout, out_elems: int) -> int:
    """Cycles per frame when every input is non-zero (see :class:`SparseMVAU`).

    The broadcaster pushes every column plus an end-of-frame token, a PE spends
    ``max(1, entries)`` cycles per column plus one for the token, and the drain one cycle
    per output beat plus one; the three overlap, so the slowest sets the interval.
    """
    work = np.maximum(layout.column_work, 1).sum(axis=1) + 1
    return int(max(layout.cols + 1, int(work.max()), layout.rows // out_elems + 1))


@register
class SparseMVAU(StreamOp):
    """Sparse matrix-vector unit (EIE): zero activations skipped, pruned weights not stored."""

    name = "SparseMVAU"
    attrs = {
        "pe": Attr("int", 1, minimum=1, doc="output elements per beat"),
        "simd": Attr("int", 1, minimum=1, doc="input elements per beat"),
        "pes": Attr("int", minimum=1, maximum=256),
        "queue_depth": Attr("int", 8, minimum=1, maximum=1024),
        "index_bits": Attr("int", 4, minimum=1, maximum=16),
        "code_bits": Attr("int", 4, minimum=1, maximum=16),
        **HARDWARE_ATTRS,
    }
    tensors = {
        "codebook": Tensor("int", 1),
        "sparse_code": Tensor("int", 1),
        "sparse_gap": Tensor("int", 1),
        "sparse_ptr": Tensor("int", 2),
        "direction": Tensor("int", 1),
        "bias": Tensor("int", 1, required=False),
    }

    def rows(self, node) -> int:
        """Output channels: one ``direction`` entry each."""
        return len(node.tensors["direction"])

    def layout(self, node):
        attrs = {k: self.attr(node, k) for k in ("pes", "index_bits", "code_bits")}
        return layout_of(node.tensors, attrs, self.rows(node))

    def weight(self, node) -> np.ndarray:
        """The dense matrix the engine's memories hold."""
        return sparse_decode(self.layout(node))

    def check(self, node, loc):
        d = node.tensors["direction"]
        if d.size and not np.all(np.isin(d, (-1, 1))):
            raise IRError(f"{loc}: direction values must be +1 or -1")
        try:
            layout = self.layout(node)
            sparse_decode(layout)
        except IRError as exc:
            raise IRError(f"{loc}: {exc}") from exc
        if len(layout.codebook) > 2 ** int(node.attrs.get("code_bits", 4)):
            raise IRError(
                f"{loc}: {len(layout.codebook)} codebook entries do not fit code_bits = "
                f"{node.attrs.get('code_bits', 4)}"
            )
        if "bias" in node.tensors and node.tensors["bias"].shape != d.shape:
            raise IRError(f"{loc}: bias must have one entry per row ({len(d)})")

    def in_elems(self, node, index, in_shape):
        return int(node.attrs.get("simd", 1))

    def shape(self, node, ins, loc):
        cols = int(node.tensors["sparse_ptr"].shape[1] - 1)
        if int(np.prod(ins[0])) != cols:
            raise IRError(f"{loc}: the layer has {cols} inputs, the input stream is {list(ins[0])}")
        return (self.rows(node),)

    def check_folding(self, node, in_shapes, shape, loc):
        cols = int(np.prod(in_shapes[0]))
        must_divide(int(node.attrs.get("simd", 1)), cols, "SIMD", "inputs", loc)
        pe, pes = int(node.attrs.get("pe", 1)), int(node.attrs["pes"])
        must_divide(pe, shape[0], "PE (output elements per beat)", "rows", loc)
        if pe > pes:
            raise IRError(f"{loc}: PE (output elements per beat) = {pe} must be <= pes = {pes}")

    def value_range(self, node, ins, in_shapes, shape):
        w = self.weight(node) * node.tensors["direction"].astype(np.int64)[:, None]
        if ins[0].bipolar:
            raise IRError(
                f"node '{node.name}' (SparseMVAU): its input '{node.inputs[0]}' is bipolar "
                "(+-1, no zeros to skip); use the dense engine for this layer"
            )
        return dense_acc_range(w, ins[0], node.tensors.get("bias"))

    def accumulate(self, node, x: np.ndarray) -> np.ndarray:
        """The raw accumulators ``x @ W.T`` (what the PEs' registers hold before the drain)."""
        return x.astype(np.int64) @ self.weight(node).T

    def execute(self, node, xs, in_shapes, shape):
        out = self.accumulate(node, xs[0]) * node.tensors["direction"].astype(np.int64)
        if "bias" in node.tensors:
            out = out + node.tensors["bias"].astype(np.int64)
        return out

    def acc_range(self, node, x: IntRange) -> IntRange:
        """Range of the final accumulators, and 0 (a cleared register). Partial sums may
        wrap: two's complement sums are exact modulo the width, so the final one is right."""
        acc = dense_acc_range(self.weight(node), x)
        return IntRange(np.minimum(acc.lo, 0), np.maximum(acc.hi, 0))

    def cycles(self, node, in_shapes, shape):
        return engine_bound(self.layout(node), int(node.attrs.get("pe", 1)))
