"""Storage accounting from real encoded bytes, as Deep Compression and EIE store weights.

A layer's integer weight matrix ``W [rows = outputs, cols = inputs]`` is stored column
by column (CSC) with *relative* row indices: each stored entry keeps the number of zeros
skipped since the previous entry of its column in ``index_bits`` bits. When more zeros
than ``2^index_bits - 1`` precede an entry, a padding entry (a stored zero) is inserted
after ``2^index_bits - 1`` zeros, exactly as EIE ("a padding zero when more than 15
zeros precede an entry" for 4-bit indices): with 4-bit indices an entry after 40 zeros
needs two padding entries (16 + 16 positions) and then a gap of 8.

Values are either ``weight_bits``-bit two's complement integers, or indices into a
codebook of shared weights; code 0 then means "zero" (padding entries) and code ``i + 1``
the centroid ``i``. Values and gaps can be Huffman coded (Deep Compression's last stage;
the code-length table is counted too). Every part is packed into real bytes, decoded
back, and checked against the matrix before its size is reported.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FLOAT32_BYTES = 4


@dataclass
class CscMatrix:
    """CSC with relative row indices (gaps) and padding entries."""

    shape: tuple[int, int]
    values: np.ndarray  # [entries] int (0 for padding)
    gaps: np.ndarray  # [entries] zeros skipped before each entry, <= 2^index_bits - 1
    col_ptr: np.ndarray  # [cols + 1] first entry of each column
    index_bits: int
    padding_entries: int = 0


def _check_bits(name: str, bits: int, lo: int = 1, hi: int = 16) -> None:
    if not isinstance(bits, int | np.integer) or not lo <= bits <= hi:
        raise ValueError(f"{name} = {bits!r} is not allowed; allowed: {lo}..{hi}")


def csc_encode(w: np.ndarray, index_bits: int) -> CscMatrix:
    """Encode an integer matrix; zeros are skipped, long gaps get padding entries."""
    _check_bits("index_bits", index_bits)
    w = np.asarray(w)
    if w.ndim != 2 or not np.issubdtype(w.dtype, np.integer):
        raise ValueError(f"csc_encode: w must be a 2-D integer matrix, got {w.dtype}{w.shape}")
    max_gap = 2**index_bits - 1
    values, gaps, col_ptr = [], [], [0]
    padding = 0
    for col in w.T:
        last = -1
        for row in np.flatnonzero(col):
            gap = int(row) - last - 1
            while gap > max_gap:  # a stored zero after max_gap zeros covers max_gap + 1 rows
                values.append(0)
                gaps.append(max_gap)
                padding += 1
                gap -= max_gap + 1
            values.append(int(col[row]))
            gaps.append(gap)
            last = int(row)
        col_ptr.append(len(values))
    return CscMatrix(
        (int(w.shape[0]), int(w.shape[1])),
        np.array(values, np.int64),
        np.array(gaps, np.int64),
        np.array(col_ptr, np.int64),
        index_bits,
        padding,
    )


def csc_decode(m: CscMatrix) -> np.ndarray:
    """Back to the dense integer matrix."""
    w = np.zeros(m.shape, np.int64)
    for c in range(m.shape[1]):
        pos = -1
        for e in range(int(m.col_ptr[c]), int(m.col_ptr[c + 1])):
            pos += int(m.gaps[e]) + 1
            if m.values[e]:
                w[pos, c] = m.values[e]
    return w


def pack_bits(values: np.ndarray, bits: int) -> bytes:
    """Unsigned ``values`` (each ``< 2^bits``) packed LSB-first into bytes."""
    _check_bits("bits", bits, 1, 64)
    v = np.asarray(values, dtype=np.uint64)
    if v.size and int(v.max()) >= 2**bits:
        raise ValueError(f"pack_bits: value {int(v.max())} does not fit {bits} bits")
    bit_array = ((v[:, None] >> np.arange(bits, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bit_array.reshape(-1), bitorder="little").tobytes()


def unpack_bits(data: bytes, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`."""
    flat = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")[: count * bits]
    weights = np.uint64(1) << np.arange(bits, dtype=np.uint64)
    return (flat.reshape(count, bits).astype(np.uint64) * weights).sum(axis=1).astype(np.int64)


def to_unsigned(values: np.ndarray, bits: int) -> np.ndarray:
    return np.asarray(values, np.int64) & ((1 << bits) - 1)


def from_unsigned(values: np.ndarray, bits: int) -> np.ndarray:
    v = np.asarray(values, np.int64)
    return np.where(v >= 1 << (bits - 1), v - (1 << bits), v)


# ---------------------------------------------------------------- Huffman coding


def huffman_code(symbols: np.ndarray) -> dict[int, str]:
    """A canonical Huffman code for the symbol frequencies (deterministic)."""
    uniq, counts = np.unique(np.asarray(symbols, np.int64), return_counts=True)
    if len(uniq) == 0:
        return {}
    if len(uniq) == 1:
        return {int(uniq[0]): "0"}
    heap = [(int(c), i, (int(s),)) for i, (s, c) in enumerate(zip(uniq, counts, strict=True))]
    heapq.heapify(heap)
    depth = {int(s): 0 for s in uniq}
    tie = len(heap)
    while len(heap) > 1:
        c1, _, a = heapq.heappop(heap)
        c2, _, b = heapq.heappop(heap)
        for s in a + b:
            depth[s] += 1
        heapq.heappush(heap, (c1 + c2, tie, a + b))
        tie += 1
    return canonical_code(depth)


def canonical_code(lengths: dict[int, int]) -> dict[int, str]:
    """Canonical codes from code lengths: only the lengths need storing."""
    code, prev_len, out = 0, 0, {}
    for sym, length in sorted(lengths.items(), key=lambda kv: (kv[1], kv[0])):
        code <<= length - prev_len
        out[sym] = format(code, f"0{length}b")
        code += 1
        prev_len = length
    return out


def huffman_encode(symbols: np.ndarray) -> tuple[bytes, dict[int, str]]:
    table = huffman_code(symbols)
    bits = "".join(table[int(s)] for s in np.asarray(symbols, np.int64))
    arr = np.array([c == "1" for c in bits], dtype=np.uint8)
    return np.packbits(arr, bitorder="little").tobytes(), table


def huffman_decode(data: bytes, table: dict[int, str], count: int) -> np.ndarray:
    reverse = {code: sym for sym, code in table.items()}
    bits = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")
    out, code = [], ""
    for b in bits:
        if len(out) == count:
            break
        code += "1" if b else "0"
        if code in reverse:
            out.append(reverse[code])
            code = ""
    if len(out) != count:
        raise ValueError(f"huffman_decode: {len(out)} of {count} symbols decoded")
    return np.array(out, np.int64)


def table_bytes(table: dict[int, str], symbol_bits: int) -> int:
    """Bytes to store a canonical code: each symbol and its 5-bit code length."""
    return (len(table) * (symbol_bits + 5) + 7) // 8


# ---------------------------------------------------------------- one layer


@dataclass
class LayerStorage:
    """The bytes of one layer, part by part, after a verified decode round trip."""

    name: str
    shape: tuple[int, int]
    nonzeros: int
    entries: int
    padding_entries: int
    parts: dict[str, int] = field(default_factory=dict)  # bytes per part

    @property
    def total_bytes(self) -> int:
        return sum(self.parts.values())

    @property
    def dense_float32_bytes(self) -> int:
        return self.shape[0] * self.shape[1] * FLOAT32_BYTES

    @property
    def ratio(self) -> float:
        return self.dense_float32_bytes / max(1, self.total_bytes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "nonzeros": self.nonzeros,
            "entries": self.entries,
            "padding_entries": self.padding_entries,
            "bytes": dict(self.parts),
            "total_bytes": self.total_bytes,
            "float32_bytes": self.dense_float32_bytes,
            "ratio": round(self.ratio, 2),
        }


def encode_layer(
    w_int: np.ndarray,
    *,
    weight_bits: int,
    index_bits: int = 4,
    codebook: np.ndarray | None = None,
    huffman: bool = False,
    name: str = "layer",
) -> LayerStorage:
    """Encode one layer into bytes, decode them back, check, and count every byte.

    Parts: ``values`` (entry values or codebook codes), ``indices`` (relative row
    indices), ``col_ptr`` (per-column start, width from the entry count), ``codebook``
    (``weight_bits`` per centroid) and ``scale`` (1 byte: the power-of-two exponent).
    """
    _check_bits("weight_bits", weight_bits, 1, 32)
    w = np.asarray(w_int)
    if w.ndim != 2 or not np.issubdtype(w.dtype, np.integer):
        raise ValueError(f"{name}: weights must be a 2-D integer matrix, got {w.dtype}{w.shape}")
    m = csc_encode(w, index_bits)
    parts: dict[str, int] = {"scale": 1}
    if codebook is not None:
        codebook = np.asarray(codebook, np.int64)
        lookup = {int(v): i + 1 for i, v in enumerate(codebook)}  # code 0 = zero
        missing = set(np.unique(m.values[m.values != 0]).tolist()) - lookup.keys()
        if missing:
            raise ValueError(f"{name}: weights {sorted(missing)[:5]} are not in the codebook")
        codes = np.array([lookup.get(int(v), 0) for v in m.values], np.int64)
        value_bits = max(1, len(codebook).bit_length())  # codes 0..K
        parts["codebook"] = len(pack_bits(to_unsigned(codebook, weight_bits), weight_bits))
    else:
        codes = to_unsigned(m.values, weight_bits)
        value_bits = weight_bits
    ptr_bits = max(1, len(m.values).bit_length())
    ptr_bytes = pack_bits(m.col_ptr, ptr_bits)
    if huffman:
        vbytes, vtable = huffman_encode(codes)
        gbytes, gtable = huffman_encode(m.gaps)
        codes_back = huffman_decode(vbytes, vtable, len(codes))
        gaps_back = huffman_decode(gbytes, gtable, len(m.gaps))
        parts["values"] = len(vbytes) + table_bytes(vtable, value_bits)
        parts["indices"] = len(gbytes) + table_bytes(gtable, index_bits)
    else:
        vbytes, gbytes = pack_bits(codes, value_bits), pack_bits(m.gaps, index_bits)
        codes_back = unpack_bits(vbytes, value_bits, len(codes))
        gaps_back = unpack_bits(gbytes, index_bits, len(m.gaps))
        parts["values"], parts["indices"] = len(vbytes), len(gbytes)
    parts["col_ptr"] = len(ptr_bytes)
    # decode everything back and compare with the matrix: the sizes are of real bytes
    if codebook is not None:
        values_back = np.where(codes_back > 0, codebook[np.maximum(codes_back - 1, 0)], 0)
    else:
        values_back = from_unsigned(codes_back, weight_bits)
    back = CscMatrix(
        m.shape,
        values_back,
        gaps_back,
        unpack_bits(ptr_bytes, ptr_bits, len(m.col_ptr)),
        index_bits,
    )
    if not np.array_equal(csc_decode(back), w):
        raise ValueError(f"{name}: decode round trip differs from the weights")
    return LayerStorage(
        name, m.shape, int(np.count_nonzero(w)), len(m.values), m.padding_entries, parts
    )


def compression_ratio(layers: list[LayerStorage]) -> float:
    """float32 bytes of all layers / their encoded bytes."""
    return sum(x.dense_float32_bytes for x in layers) / max(1, sum(x.total_bytes for x in layers))
