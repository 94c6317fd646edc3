"""A pruned layer as the EIE-style sparse engine stores it: per-PE CSC with relative indices.

EIE (Han et al., ISCA 2016) interleaves a layer's rows over ``N`` processing elements
(row ``i`` on PE ``i mod N``), so every PE owns the sub-matrix ``W[p::N]`` and stores it
column by column (CSC):

* **entries**: one word per stored weight, ``(code, gap)``: ``code`` indexes the layer's
  codebook (``code_bits``, 4 in EIE) and ``gap`` counts the zeros skipped since the
  previous stored entry of the column (``index_bits``, 4 in EIE). A gap longer than
  ``2^index_bits - 1`` needs *padding entries*: a stored zero at a real row that skips
  the longest gap and occupies the next row itself (EIE's example column ``v = [1, 2, 0,
  3]``, ``z = [2, 0, 15, 2]``);
* **column pointers**: ``cols + 1`` per PE, local to the PE's entries, so the entries of
  column ``j`` are ``ptr[j] .. ptr[j+1] - 1``. The engine reads start and end in one
  cycle from two banks (even and odd pointers);
* **codebook**: code 0 is always the value 0 (what padding entries point at, as EIE's
  16-entry table holds its zero), codes ``1..K-1`` the layer's distinct non-zero
  weights, ascending. A 4-bit code therefore holds up to 15 shared weights — every
  non-zero value of a 4-bit narrow-range quantizer (14).

This module is the one definition of that layout: the IR stores exactly these arrays
(:func:`layout_tensors`), golden decodes them (:func:`sparse_decode`), the compression
table counts their bits (:meth:`SparseLayout.memories`), and the Verilog generator
initialises the engine's memories word for word from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from qfab.errors import IRError

#: EIE's widths: 4-bit relative row index, 4-bit codebook index.
DEFAULT_INDEX_BITS = 4
DEFAULT_CODE_BITS = 4


def _int_matrix(w: Any, what: str) -> np.ndarray:
    a = np.asarray(w)
    if a.ndim != 2 or not np.issubdtype(a.dtype, np.integer):
        raise IRError(f"{what}: needs a 2-D integer matrix, got {a.dtype} {list(a.shape)}")
    return a.astype(np.int64)


# ---------------------------------------------------------------- CSC with relative indices


@dataclass
class CscMatrix:
    """CSC with relative row indices (gaps) and EIE padding entries (one matrix)."""

    shape: tuple[int, int]  # (rows = outputs, cols = inputs)
    values: np.ndarray  # [entries] int64, 0 for padding entries
    gaps: np.ndarray  # [entries] int64, zeros skipped before each entry, <= 2^index_bits - 1
    col_ptr: np.ndarray  # [cols + 1] int64, first entry of each column; col_ptr[-1] = entries
    index_bits: int

    @property
    def padding_entries(self) -> int:
        """Stored zeros: the only zero values in CSC are padding entries."""
        return int(np.count_nonzero(self.values == 0))


def csc_encode(w: np.ndarray, index_bits: int) -> CscMatrix:
    """Encode an integer matrix column by column; long gaps get padding entries.

    An entry preceded by ``g`` zeros needs ``g // 2^index_bits`` padding entries (each
    covers ``2^index_bits`` rows: the longest gap plus itself) and keeps the gap
    ``g % 2^index_bits``. Zeros after a column's last non-zero are never stored: the
    column pointers end the column.
    """
    if isinstance(index_bits, bool) or not isinstance(index_bits, int | np.integer):
        raise IRError(f"index_bits = {index_bits!r}; allowed: integers 1..16")
    if not 1 <= index_bits <= 16:
        raise IRError(f"index_bits = {index_bits}; allowed: integers 1..16")
    w = _int_matrix(w, "csc_encode")
    rows, cols = w.shape
    span = 2**index_bits
    col, row = np.nonzero(w.T)  # sorted by column, then row
    first = np.ones(len(col), bool)
    first[1:] = col[1:] != col[:-1]
    prev = np.where(first, -1, np.roll(row, 1))
    gap = row - prev - 1
    pads, rest = gap // span, gap % span
    counts = pads + 1  # entries per non-zero: its padding entries, then itself
    last = np.cumsum(counts) - 1
    values = np.zeros(int(counts.sum()), np.int64)
    gaps = np.full(len(values), span - 1, np.int64)
    values[last], gaps[last] = w.T[col, row], rest
    per_col = np.bincount(col, weights=counts, minlength=cols).astype(np.int64)
    col_ptr = np.concatenate([[0], np.cumsum(per_col)]).astype(np.int64)
    return CscMatrix((int(rows), int(cols)), values, gaps, col_ptr, int(index_bits))


def csc_decode(m: CscMatrix) -> np.ndarray:
    """Back to the dense integer matrix; a malformed matrix raises :class:`IRError`."""
    rows, cols = m.shape
    values = np.asarray(m.values, np.int64)
    gaps = np.asarray(m.gaps, np.int64)
    ptr = np.asarray(m.col_ptr, np.int64)
    if len(ptr) != cols + 1 or ptr[0] != 0 or np.any(np.diff(ptr) < 0) or ptr[-1] != len(values):
        raise IRError(
            f"csc_decode: col_ptr {ptr.tolist()[:8]}... does not fit {len(values)} "
            f"entries in {cols} columns"
        )
    if len(gaps) != len(values) or np.any(gaps < 0) or np.any(gaps >= 2**m.index_bits):
        raise IRError(f"csc_decode: gaps must be {len(values)} values in 0..2^index_bits-1")
    col = np.repeat(np.arange(cols), np.diff(ptr))
    step = np.cumsum(gaps + 1)
    start = np.concatenate([[0], step])[ptr[:-1]]  # running position at each column start
    pos = step - start[col] - 1
    if np.any(pos >= rows):
        raise IRError(f"csc_decode: an entry lands below row {rows - 1}")
    w = np.zeros(m.shape, np.int64)
    keep = values != 0
    w[pos[keep], col[keep]] = values[keep]
    return w


# ---------------------------------------------------------------- the engine's layout


@dataclass(frozen=True)
class Memory:
    """One memory of the engine: ``words`` words of ``bits`` bits."""

    name: str
    words: int
    bits: int

    @property
    def total_bits(self) -> int:
        return self.words * self.bits

    @property
    def bytes(self) -> int:
        """Whole bytes holding the memory's bits packed back to back."""
        return -(-self.total_bits // 8)


@dataclass(frozen=True)
class SparseLayout:
    """A layer encoded for ``pes`` PEs: codebook, entries and per-PE column pointers."""

    rows: int
    cols: int
    pes: int
    index_bits: int
    code_bits: int
    codebook: np.ndarray  # [K] int64, codebook[0] == 0, then ascending non-zero values
    code: np.ndarray  # [entries] int64, PE 0's entries, then PE 1's, ...
    gap: np.ndarray  # [entries] int64
    ptr: np.ndarray  # [pes, cols + 1] int64, local to each PE's entries

    @property
    def pe_entries(self) -> np.ndarray:
        """Entries stored by each PE (non-zeros plus padding)."""
        return self.ptr[:, -1].astype(np.int64)

    @property
    def pe_base(self) -> np.ndarray:
        """Where each PE's entries start in :attr:`code` / :attr:`gap`."""
        return np.concatenate([[0], np.cumsum(self.pe_entries)[:-1]]).astype(np.int64)

    def pe_slice(self, p: int) -> slice:
        b = int(self.pe_base[p])
        return slice(b, b + int(self.pe_entries[p]))

    def pe_rows(self, p: int) -> int:
        """Rows PE ``p`` owns: ``p, p + N, p + 2N, ...``."""
        return len(range(p, self.rows, self.pes))

    @property
    def column_work(self) -> np.ndarray:
        """``[pes, cols]`` entries each PE reads for each column (EIE's per-column load)."""
        return np.diff(self.ptr, axis=1).astype(np.int64)

    @property
    def entry_bits(self) -> int:
        return self.code_bits + self.index_bits

    @property
    def ptr_bits(self) -> int:
        """Width of a column pointer: enough for the largest PE's entry count."""
        return max(1, int(self.pe_entries.max(initial=0)).bit_length())

    @property
    def value_bits(self) -> int:
        """Two's complement width of a codebook value."""
        lo, hi = int(self.codebook.min(initial=0)), int(self.codebook.max(initial=0))
        return max(2, max(-lo - 1, hi).bit_length() + 1)

    @property
    def padding_entries(self) -> int:
        return int(np.count_nonzero(self.code == 0))

    def memories(self) -> list[Memory]:
        """Every memory the engine holds, as the generator sizes them: per PE its entries
        (a PE without entries has none) and its column pointers, then the codebook."""
        mems = []
        for p in range(self.pes):
            if self.pe_entries[p]:
                mems.append(Memory(f"pe{p}_entries", int(self.pe_entries[p]), self.entry_bits))
            mems.append(Memory(f"pe{p}_col_ptr", self.cols + 1, self.ptr_bits))
        mems.append(Memory("codebook", len(self.codebook), self.value_bits))
        return mems

    def memory_bytes(self) -> int:
        return sum(m.bytes for m in self.memories())

    def entry_words(self, p: int) -> list[int]:
        """PE ``p``'s entry memory: word = ``code << index_bits | gap``."""
        s = self.pe_slice(p)
        return [
            int(c) << self.index_bits | int(g)
            for c, g in zip(self.code[s], self.gap[s], strict=True)
        ]


def codebook_for(weight: np.ndarray, codebook: np.ndarray | None = None) -> np.ndarray:
    """``[0, distinct non-zero values ascending]``; a given (shared) codebook's values must
    cover the weights and are used as they are (sorted), so a shared layer keeps its K."""
    w = _int_matrix(weight, "codebook_for")
    values = np.unique(w[w != 0])
    if codebook is not None:
        cb = np.unique(np.asarray(codebook, np.int64))
        cb = cb[cb != 0]
        if missing := np.setdiff1d(values, cb).tolist():
            raise IRError(f"weights {missing[:5]} are not in the layer's codebook")
        values = cb
    return np.concatenate([[0], values]).astype(np.int64)


def sparse_encode(
    weight: np.ndarray,
    pes: int,
    index_bits: int = DEFAULT_INDEX_BITS,
    code_bits: int = DEFAULT_CODE_BITS,
    codebook: np.ndarray | None = None,
    layer: str = "layer",
) -> SparseLayout:
    """Encode ``weight [rows, cols]`` for ``pes`` PEs (row ``i`` on PE ``i mod pes``)."""
    w = _int_matrix(weight, layer)
    rows, cols = w.shape
    if isinstance(pes, bool) or not isinstance(pes, int | np.integer) or pes < 1:
        raise IRError(f"{layer}: pes = {pes!r}; allowed: integers >= 1")
    if not 1 <= int(code_bits) <= 16:
        raise IRError(f"{layer}: code_bits = {code_bits}; allowed: 1..16")
    cb = codebook_for(w, codebook)
    if len(cb) > 2**code_bits:
        raise IRError(
            f"{layer}: {len(cb) - 1} distinct non-zero weights plus the padding zero need "
            f"{len(cb)} codebook entries; code_bits = {code_bits} holds {2**code_bits} "
            f"(allowed: share the weights to <= {2**code_bits - 1} clusters, or code_bits >= "
            f"{(len(cb) - 1).bit_length()})"
        )
    codes, gaps, ptrs = [], [], []
    for p in range(pes):
        m = csc_encode(w[p::pes], index_bits)
        codes.append((1 + np.searchsorted(cb[1:], m.values)) * (m.values != 0))
        gaps.append(m.gaps)
        ptrs.append(m.col_ptr)
    return SparseLayout(
        rows,
        cols,
        int(pes),
        int(index_bits),
        int(code_bits),
        cb,
        np.concatenate(codes).astype(np.int64),
        np.concatenate(gaps).astype(np.int64),
        np.stack(ptrs).astype(np.int64),
    )


def sparse_decode(layout: SparseLayout) -> np.ndarray:
    """The dense ``[rows, cols]`` integer matrix the layout holds."""
    n = layout.pes
    w = np.zeros((layout.rows, layout.cols), np.int64)
    if layout.code.size and (layout.code.min() < 0 or layout.code.max() >= len(layout.codebook)):
        raise IRError(f"sparse codes outside the {len(layout.codebook)}-entry codebook")
    for p in range(n):
        s = layout.pe_slice(p)
        m = CscMatrix(
            (layout.pe_rows(p), layout.cols),
            layout.codebook[layout.code[s]],
            layout.gap[s],
            layout.ptr[p],
            layout.index_bits,
        )
        w[p::n] = csc_decode(m)
    return w


#: IR tensor names of a layout (beside the node's own attrs ``pes``, ``index_bits``,
#: ``code_bits``).
LAYOUT_TENSORS = ("codebook", "sparse_code", "sparse_gap", "sparse_ptr")


def layout_tensors(layout: SparseLayout) -> dict[str, np.ndarray]:
    return {
        "codebook": layout.codebook,
        "sparse_code": layout.code,
        "sparse_gap": layout.gap,
        "sparse_ptr": layout.ptr,
    }


def layout_of(tensors: dict[str, np.ndarray], attrs: dict[str, Any], rows: int) -> SparseLayout:
    """Rebuild a layout from a node's tensors and attrs (shapes checked)."""
    ptr = np.asarray(tensors["sparse_ptr"], np.int64)
    code = np.asarray(tensors["sparse_code"], np.int64)
    gap = np.asarray(tensors["sparse_gap"], np.int64)
    pes = int(attrs["pes"])
    if ptr.ndim != 2 or ptr.shape[0] != pes:
        raise IRError(f"sparse_ptr must be [pes = {pes}, cols + 1], got {list(ptr.shape)}")
    if np.any(ptr[:, 0] != 0) or np.any(np.diff(ptr, axis=1) < 0):
        raise IRError("sparse_ptr rows must start at 0 and never decrease")
    if len(code) != len(gap) or len(code) != int(ptr[:, -1].sum()):
        raise IRError(
            f"sparse_code ({len(code)}) and sparse_gap ({len(gap)}) must hold the "
            f"{int(ptr[:, -1].sum())} entries the pointers count"
        )
    cb = np.asarray(tensors["codebook"], np.int64)
    if len(cb) == 0 or cb[0] != 0:
        raise IRError("a sparse codebook starts with 0 (the padding entries' value)")
    return SparseLayout(
        rows,
        int(ptr.shape[1] - 1),
        pes,
        int(attrs["index_bits"]),
        int(attrs["code_bits"]),
        cb,
        code,
        gap,
        ptr,
    )
