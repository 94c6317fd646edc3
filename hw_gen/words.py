"""The memory words of a compute unit, laid out once for every backend.

The Verilog ROMs and the HLS constant arrays hold *these* words, built here from the
hardware graph's tensors, so the two backends cannot drift apart: a layout change is one
edit, and ``tests/hw_gen/test_rom_packing.py`` checks it against the tensors.

* matrix unit (MVAU, XnorMVAU): word ``nf*SF + sf`` holds ``W[nf*PE + p][sf*SIMD + s]``
  at element ``p*SIMD + s``;
* vector unit (VVAU, depthwise): word ``nf*K + k`` holds ``W[nf*PE + p][k]`` at ``p``;
* thresholds (or the bias as a one-column table): word ``nf`` holds
  ``T[nf*PE + p][t]`` at element ``p*NUM_T + t``.

Element 0 sits at the least significant bits, in two's complement (bipolar weights as
1 for +1 and 0 for -1).
"""

from __future__ import annotations

import numpy as np

from hw_gen.verilog.rom import pack_word
from qfab.ir import Node
from qfab.values import Element, bits_for, signed_bits


def weight_element(node: Node) -> Element:
    """Bipolar for 1-bit weights, else the narrowest signed width of the actual weights."""
    w = node.tensors["weight"]
    if int(node.attrs["weight_bits"]) == 1:
        return Element(1, signed=True, bipolar=True)
    return Element(max(2, bits_for(min(int(w.min()), -1), int(w.max()))), signed=True)


def weight_words(node: Node) -> list[int]:
    """A compute unit's weight memory, one word per cycle of its folded loop."""
    w = node.tensors["weight"].astype(np.int64)
    wel = weight_element(node)
    enc = wel.encode(w)
    pe = int(node.attrs["pe"])
    nf = w.shape[0] // pe
    words = []
    if node.op == "VVAU":
        for f in range(nf):
            for tap in range(w.shape[1]):
                words.append(pack_word(enc[f * pe : (f + 1) * pe, tap], wel.bits))
        return words
    simd = int(node.attrs["simd"])
    for f in range(nf):
        rows = enc[f * pe : (f + 1) * pe]
        for s in range(w.shape[1] // simd):
            words.append(pack_word(rows[:, s * simd : (s + 1) * simd].reshape(-1), wel.bits))
    return words


def activation_table(node: Node) -> tuple[np.ndarray, int]:
    """(table [channels, columns], NUM_T): the thresholds, or the bias (zeros when
    absent) as one column with NUM_T = 0 (the unit adds it instead of counting)."""
    if "thresholds" in node.tensors:
        table = node.tensors["thresholds"].astype(np.int64)
        return table, table.shape[1]
    rows = node.tensors["weight"].shape[0]
    bias = node.tensors.get("bias")
    table = np.zeros((rows, 1), np.int64) if bias is None else bias.astype(np.int64)[:, None]
    return table, 0


def table_words(table: np.ndarray, pe: int, bits: int) -> list[int]:
    """One word per group of ``pe`` channels: their rows of ``table``, ``bits`` each."""
    return [
        pack_word(table[f * pe : (f + 1) * pe].reshape(-1), bits) for f in range(len(table) // pe)
    ]


def thresholding_acc_bits(table: np.ndarray, in_bits: int, in_signed: bool) -> int:
    """Compare width of a stand-alone threshold unit: every threshold and every input
    value (an unsigned input gains a sign bit) fits."""
    return max(signed_bits(int(table.min()), int(table.max())), in_bits + (0 if in_signed else 1))
