"""Storage accounting from real encoded bytes, as Deep Compression and EIE store weights.

A layer's integer weight matrix ``W [rows = outputs, cols = inputs]`` is stored column by
column (CSC) with *relative* row indices: each stored entry keeps its *gap*, the number of
zeros skipped since the previous stored entry of its column (or since the top of the
column), in ``index_bits`` bits.

Padding convention (EIE, Han et al. ISCA 2016, Sec. III: "a padding zero when more than
15 zeros precede an entry" for 4-bit indices; its example column is stored as
``v = [1, 2, 0, 3]``, ``z = [2, 0, 15, 2]``). A padding entry is a stored zero *at a real
row*: it skips ``max_gap = 2^index_bits - 1`` zeros and occupies the next row itself, so
it covers ``max_gap + 1`` rows. An entry preceded by ``g`` zeros therefore needs
``g // (max_gap + 1)`` padding entries and keeps the gap ``g % (max_gap + 1)``. With
4-bit indices an entry after 40 zeros needs two padding entries (16 + 16 rows) and keeps a
gap of 8. Zeros after a column's last non-zero are never stored: the column pointers end
the column. (Deep Compression's Fig. 2 counts position differences rather than skipped
zeros; the number of padding entries per long gap is the same rule.)

Values are either ``weight_bits``-bit two's complement integers (1-bit weights are the IR's
bipolar -1/+1, stored as one sign bit), or codes into a codebook
of the layer's shared weights. The decoder cannot tell a padding entry from a real one
except by its value, so when a layer has padding entries its stored codebook also holds
0 (EIE's 16-entry codebook likewise holds the zero its padding entries point at). Values
and gaps can be Huffman coded (Deep Compression's last stage); the code tables are
serialized and counted too. Every part is packed into real bytes, decoded back from
those bytes, and checked against the matrix before its size is reported.

Not counted: the layer's shape, entry count and bit widths, which the decoder knows from
the IR. Counted: one byte for the layer's power-of-two scale exponent.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from qfab import sparse
from qfab.errors import IRError
from qfab.ir import input_range
from qfab.sparse import CscMatrix

FLOAT32_BYTES = 4
SCALE_BYTES = 1  #: the layer's power-of-two scale, stored as its exponent
CODE_LENGTH_BITS = 6  #: a Huffman code length (1..63) in a serialized table
TABLE_HEADER_BYTES = 4  #: number of symbols in a serialized Huffman table, uint32
CodebookStorage = Literal["float32", "int"]


def _check_int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not lo <= value <= hi:
        raise ValueError(f"{name} = {value!r} is not allowed; allowed: integers {lo}..{hi}")
    return int(value)


def _int_array(name: str, a: Any, ndim: int | None = None) -> np.ndarray:
    """An integer numpy array, or a ValueError naming ``name`` and what is allowed."""
    a = np.asarray(a)
    if a.size == 0 and a.dtype == np.float64:  # np.asarray([]) is float64
        a = a.astype(np.int64)
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name}: dtype {a.dtype} is not allowed; allowed: integer arrays")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name}: shape {a.shape} is not allowed; allowed: {ndim}-D arrays")
    return a.astype(np.int64)


# ---------------------------------------------------------------- CSC with relative indices


def csc_encode(w: np.ndarray, index_bits: int) -> CscMatrix:
    """Encode an integer matrix column by column (:func:`qfab.sparse.csc_encode`: the one
    definition of the layout, which the sparse engine's memories hold too)."""
    index_bits = _check_int("index_bits", index_bits, 1, 16)
    return sparse.csc_encode(_int_array("csc_encode: w", w, ndim=2), index_bits)


def csc_decode(m: CscMatrix) -> np.ndarray:
    """Back to the dense integer matrix; a malformed matrix raises ValueError."""
    arrays = {n: _int_array(f"csc_decode: {n}", getattr(m, n)) for n in _CSC_ARRAYS}
    try:
        return sparse.csc_decode(CscMatrix(m.shape, **arrays, index_bits=m.index_bits))
    except IRError as exc:
        raise ValueError(str(exc)) from None


_CSC_ARRAYS = ("values", "gaps", "col_ptr")


# ---------------------------------------------------------------- fixed-width bit packing


def pack_bits(values: np.ndarray, bits: int) -> bytes:
    """Unsigned ``values`` (each in ``0..2^bits - 1``) packed LSB-first, ``bits`` each.

    Value ``i`` occupies stream bits ``i*bits .. i*bits + bits - 1``, least significant
    first; the last byte is zero-padded. Signed values go through
    :func:`to_twos_complement` first.
    """
    bits = _check_int("bits", bits, 1, 63)
    v = _int_array("pack_bits: values", values).reshape(-1)
    if v.size and (v.min() < 0 or v.max() >= 2**bits):
        bad = int(v.min()) if v.min() < 0 else int(v.max())
        raise ValueError(f"pack_bits: value {bad} is not allowed; allowed: 0..{2**bits - 1}")
    shifts = np.arange(bits, dtype=np.uint64)
    stream = ((v.astype(np.uint64)[:, None] >> shifts) & np.uint64(1)).astype(np.uint8)
    return np.packbits(stream.reshape(-1), bitorder="little").tobytes()


def unpack_bits(data: bytes, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: ``count`` unsigned values as int64."""
    bits = _check_int("bits", bits, 1, 63)
    count = _check_int("count", count, 0, 2**62)
    if len(data) * 8 < count * bits:
        raise ValueError(f"unpack_bits: {len(data)} bytes hold fewer than {count} x {bits} bits")
    stream = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")[: count * bits]
    weights = np.uint64(1) << np.arange(bits, dtype=np.uint64)
    return (stream.reshape(count, bits).astype(np.uint64) * weights).sum(axis=1).astype(np.int64)


def to_twos_complement(values: np.ndarray, bits: int) -> np.ndarray:
    """Signed ints in ``-2^(bits-1)..2^(bits-1)-1`` as unsigned ``bits``-bit codes."""
    bits = _check_int("bits", bits, 1, 63)
    v = _int_array("to_twos_complement: values", values)
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if v.size and (v.min() < lo or v.max() > hi):
        bad = int(v.min()) if v.min() < lo else int(v.max())
        raise ValueError(f"value {bad} does not fit {bits}-bit two's complement ({lo}..{hi})")
    return v & ((1 << bits) - 1)


def from_twos_complement(codes: np.ndarray, bits: int) -> np.ndarray:
    """Inverse of :func:`to_twos_complement`."""
    v = _int_array("from_twos_complement: codes", codes)
    return np.where(v >= 1 << (bits - 1), v - (1 << bits), v)


def weight_codes(values: np.ndarray, weight_bits: int) -> np.ndarray:
    """Stored weights as unsigned ``weight_bits``-bit codes.

    Two's complement, except at 1 bit: there the IR's weights are bipolar (BNN), so
    -1 -> 0 and +1 -> 1; a 1-bit two's complement code could not hold +1.
    """
    if weight_bits != 1:
        return to_twos_complement(values, weight_bits)
    v = _int_array("weight_codes: values", values)
    if v.size and not np.isin(v, (-1, 1)).all():
        bad = int(v[~np.isin(v, (-1, 1))][0])
        raise ValueError(f"value {bad} is not a 1-bit (bipolar) weight; allowed: -1, +1")
    return (v + 1) // 2


def weight_values(codes: np.ndarray, weight_bits: int) -> np.ndarray:
    """Inverse of :func:`weight_codes`."""
    if weight_bits != 1:
        return from_twos_complement(codes, weight_bits)
    return 2 * _int_array("weight_values: codes", codes) - 1


def weight_code_range(weight_bits: int) -> tuple[int, int]:
    """Smallest and largest weight :func:`weight_codes` can store."""
    return (-1, 1) if weight_bits == 1 else input_range(weight_bits, signed=True)


# ---------------------------------------------------------------- Huffman coding


def huffman_code(symbols: np.ndarray) -> dict[int, str]:
    """A canonical Huffman code for the symbols' frequencies; deterministic.

    Ties are broken by node creation order (leaves in ascending symbol order), and the
    code is then made canonical, so only the code lengths need storing. A single
    distinct symbol still gets a 1-bit code ("0") so that every symbol costs a bit and
    the stream length says how many there are.
    """
    uniq, counts = np.unique(_int_array("huffman_code: symbols", symbols), return_counts=True)
    if len(uniq) <= 1:
        return {int(s): "0" for s in uniq}
    heap = [(int(c), i) for i, c in enumerate(counts)]
    heapq.heapify(heap)
    parent: list[int] = [-1] * len(uniq)
    while len(heap) > 1:
        c1, a = heapq.heappop(heap)
        c2, b = heapq.heappop(heap)
        parent[a] = parent[b] = len(parent)
        heapq.heappush(heap, (c1 + c2, len(parent)))
        parent.append(-1)
    depth = [0] * len(parent)
    for node in range(len(parent) - 2, -1, -1):  # a parent is always created after its children
        depth[node] = depth[parent[node]] + 1
    return canonical_code({int(s): depth[i] for i, s in enumerate(uniq)})


def canonical_code(lengths: dict[int, int]) -> dict[int, str]:
    """Canonical codes from code lengths (symbols ordered by length, then value)."""
    if lengths and max(lengths.values()) >= 2**CODE_LENGTH_BITS:
        raise ValueError(f"Huffman code lengths above {2**CODE_LENGTH_BITS - 1} bits")
    code, prev_len, out = 0, 0, {}
    for sym, length in sorted(lengths.items(), key=lambda kv: (kv[1], kv[0])):
        code <<= length - prev_len
        out[sym] = format(code, f"0{length}b")
        code += 1
        prev_len = length
    return out


def huffman_encode(symbols: np.ndarray) -> tuple[bytes, dict[int, str]]:
    """Huffman-code ``symbols``: (bit stream, first code bit first, LSB-first bytes; table)."""
    s = _int_array("huffman_encode: symbols", symbols).reshape(-1)
    table = huffman_code(s)
    if not table:
        return b"", table
    syms = np.array(sorted(table), np.int64)
    code = np.array([int(table[k], 2) for k in syms], np.uint64)
    length = np.array([len(table[k]) for k in syms], np.int64)
    k = np.searchsorted(syms, s)
    c, n = code[k], length[k]
    j = np.arange(n.max())
    bit = (c[:, None] >> np.maximum(n[:, None] - 1 - j, 0).astype(np.uint64)) & np.uint64(1)
    stream = bit.astype(np.uint8)[j < n[:, None]]  # row-major: symbol by symbol, MSB first
    return np.packbits(stream, bitorder="little").tobytes(), table


def huffman_decode(data: bytes, table: dict[int, str], count: int) -> np.ndarray:
    """Decode ``count`` symbols with any prefix-code ``table`` (symbol -> bit string).

    Every bit position's next ``L`` bits (``L`` the longest code) are read as an integer
    at once; the code intervals ``[code << (L - len), +2^(L - len))`` are disjoint, so a
    sorted search finds the symbol starting at each position, and a walk over the
    positions follows the stream.
    """
    count = _check_int("count", count, 0, 2**62)
    if count == 0:
        return np.zeros(0, np.int64)
    if not table:
        raise ValueError(f"huffman_decode: empty table for {count} symbols")
    syms = np.array(list(table), np.int64)
    lengths = np.array([len(table[s]) for s in table], np.int64)
    width = int(lengths.max())
    if width >= 64:
        raise ValueError("huffman_decode: codes longer than 63 bits")
    lo = np.array([int(table[s], 2) << (width - len(table[s])) for s in table], np.int64)
    order = np.argsort(lo)
    syms, lengths, lo = syms[order], lengths[order], lo[order]
    hi = lo + (np.int64(1) << (width - lengths))
    stream = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little").astype(np.int64)
    total = len(stream)
    stream = np.concatenate([stream, np.zeros(width, np.int64)])
    window = np.zeros(total, np.int64)
    for j in range(width):
        window |= stream[j : j + total] << (width - 1 - j)
    k = np.searchsorted(lo, window, side="right") - 1
    valid = (k >= 0) & (window < hi[np.maximum(k, 0)])
    step = np.where(valid, lengths[np.maximum(k, 0)], 0).tolist()
    found, pos = [], 0
    for i in range(count):
        if pos >= total or step[pos] == 0 or pos + step[pos] > total:
            raise ValueError(f"huffman_decode: stream ends or is invalid after {i} of {count}")
        found.append(pos)
        pos += step[pos]
    return syms[k[found]]


def huffman_table_bytes(table: dict[int, str], symbol_bits: int) -> bytes:
    """Serialize a canonical table: uint32 count, symbols (``symbol_bits`` each), lengths."""
    syms = np.array(sorted(table), np.int64)
    lengths = np.array([len(table[s]) for s in syms], np.int64)
    if canonical_code(dict(zip(syms.tolist(), lengths.tolist(), strict=True))) != table:
        raise ValueError("huffman_table_bytes: the table is not canonical")
    return (
        len(syms).to_bytes(TABLE_HEADER_BYTES, "little")
        + pack_bits(syms, symbol_bits)
        + pack_bits(lengths, CODE_LENGTH_BITS)
    )


def huffman_table_from_bytes(data: bytes, symbol_bits: int) -> dict[int, str]:
    """Inverse of :func:`huffman_table_bytes`."""
    n = int.from_bytes(data[:TABLE_HEADER_BYTES], "little")
    split = TABLE_HEADER_BYTES + (n * symbol_bits + 7) // 8
    syms = unpack_bits(data[TABLE_HEADER_BYTES:split], symbol_bits, n)
    lengths = unpack_bits(data[split:], CODE_LENGTH_BITS, n)
    return canonical_code(dict(zip(syms.tolist(), lengths.tolist(), strict=True)))


# ---------------------------------------------------------------- one layer


@dataclass
class LayerStorage:
    """The encoded bytes of one layer, part by part, after a verified decode round trip."""

    name: str
    shape: tuple[int, int]  # (rows = outputs, cols = inputs)
    nonzeros: int
    entries: int  # stored entries: non-zeros + padding entries
    padding_entries: int
    blobs: dict[str, bytes] = field(default_factory=dict, repr=False)  # the encoded parts

    @property
    def parts(self) -> dict[str, int]:
        """Bytes per part: the length of each encoded byte string."""
        return {k: len(v) for k, v in self.blobs.items()}

    @property
    def total_bytes(self) -> int:
        return sum(self.parts.values())

    @property
    def dense_float32_bytes(self) -> int:
        return self.shape[0] * self.shape[1] * FLOAT32_BYTES

    @property
    def ratio(self) -> float:
        """Compression ratio against dense float32: float32 bytes / encoded bytes."""
        return self.dense_float32_bytes / max(1, self.total_bytes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "nonzeros": self.nonzeros,
            "entries": self.entries,
            "padding_entries": self.padding_entries,
            "bytes": self.parts,
            "total_bytes": self.total_bytes,
            "float32_bytes": self.dense_float32_bytes,
            "ratio": round(self.ratio, 2),
        }


def int_codebook_bits(weight_bits: int) -> int:
    """Bits of an ``int`` codebook entry: two's complement ``weight_bits``, and 2 for
    1-bit weights (the codebook may hold the padding zero beside -1 and +1)."""
    return max(weight_bits, 2)


def value_code_bits(codebook_entries: int) -> int:
    """Bits of a codebook code: ``ceil(log2(K))``, at least 1."""
    return max(1, (codebook_entries - 1).bit_length())


def col_ptr_bits(entries: int) -> int:
    """Bits of a column pointer: enough for the largest pointer, the entry count."""
    return max(1, entries.bit_length())


def _stored_codebook(name: str, codebook: Any, padding: bool) -> np.ndarray:
    """The integer codebook as stored: the given values, plus 0 if padding needs it."""
    cb = np.asarray(codebook)
    integral = np.issubdtype(cb.dtype, np.integer) or (
        np.issubdtype(cb.dtype, np.floating) and np.all(np.isfinite(cb) & (cb == np.round(cb)))
    )
    if cb.ndim != 1 or not integral:
        raise ValueError(f"{name}: codebook must be a 1-D array of integer values")
    cb = cb.astype(np.int64)
    if len(np.unique(cb)) != len(cb):
        raise ValueError(f"{name}: codebook values must be distinct, got {cb.tolist()}")
    if padding and not np.any(cb == 0):
        cb = np.concatenate([cb, [0]])
    return cb


def encode_layer(
    w_int: np.ndarray,
    *,
    weight_bits: int,
    index_bits: int = 4,
    codebook: np.ndarray | None = None,
    huffman: bool = False,
    codebook_storage: CodebookStorage = "float32",
    name: str = "layer",
) -> LayerStorage:
    """Encode one layer into bytes, decode them back, check, and count every byte.

    ``w_int`` holds the integer weights (``weight_bits``-bit two's complement); with a
    ``codebook`` (the layer's distinct shared integer weights) entries store
    ``ceil(log2(K))``-bit codes instead. Parts: ``values``, ``indices`` (relative row
    indices, ``index_bits`` each), ``col_ptr`` (``cols + 1`` pointers, width from the
    entry count), ``codebook`` (``float32``, 4 bytes per entry as Deep Compression, or
    ``int``: ``weight_bits`` each, 2 for 1-bit weights), ``scale`` (1 byte) and, with ``huffman``,
    ``values_table`` / ``indices_table`` (the serialized canonical code tables).
    """
    weight_bits = _check_int("weight_bits", weight_bits, 1, 32)
    index_bits = _check_int("index_bits", index_bits, 1, 16)
    if codebook_storage not in ("float32", "int"):
        raise ValueError(
            f"codebook_storage = {codebook_storage!r} is not allowed; allowed: 'float32', 'int'"
        )
    w = np.asarray(w_int)
    if w.ndim != 2 or not np.issubdtype(w.dtype, np.integer):
        raise ValueError(f"{name}: weights must be a 2-D integer matrix, got {w.dtype} {w.shape}")
    w = w.astype(np.int64)
    lo, hi = weight_code_range(weight_bits)
    if w.size and (w.min() < lo or w.max() > hi):
        raise ValueError(
            f"{name}: weights in {w.min()}..{w.max()} do not fit weight_bits = "
            f"{weight_bits} ({lo}..{hi})"
        )
    m = csc_encode(w, index_bits)
    blobs: dict[str, bytes] = {}
    cb = None
    if codebook is not None:
        cb = _stored_codebook(name, codebook, m.padding_entries > 0)
        missing = np.setdiff1d(m.values[m.values != 0], cb)
        if missing.size:
            raise ValueError(f"{name}: weights {missing[:5].tolist()} are not in the codebook")
        value_bits = value_code_bits(len(cb))
        sorter = np.argsort(cb)
        codes = sorter[np.searchsorted(cb, m.values, sorter=sorter)] if len(cb) else m.values
        if codebook_storage == "float32":
            blobs["codebook"] = cb.astype("<f4").tobytes()
        else:
            bits = int_codebook_bits(weight_bits)
            blobs["codebook"] = pack_bits(to_twos_complement(cb, bits), bits)
    else:
        if weight_bits == 1 and m.padding_entries:
            raise ValueError(
                f"{name}: {m.padding_entries} padding entries (value 0) needed, which "
                "1-bit bipolar codes cannot hold; share the weights (a codebook holds the "
                "zero) or give more index_bits"
            )
        value_bits = weight_bits
        codes = weight_codes(m.values, weight_bits)
    if huffman:
        blobs["values"], vtable = huffman_encode(codes)
        blobs["values_table"] = huffman_table_bytes(vtable, value_bits)
        blobs["indices"], gtable = huffman_encode(m.gaps)
        blobs["indices_table"] = huffman_table_bytes(gtable, index_bits)
    else:
        blobs["values"] = pack_bits(codes, value_bits)
        blobs["indices"] = pack_bits(m.gaps, index_bits)
    ptr_bits = col_ptr_bits(len(m.values))
    blobs["col_ptr"] = pack_bits(m.col_ptr, ptr_bits)
    blobs["scale"] = bytes(SCALE_BYTES)

    back = decode_layer(
        blobs,
        m.shape,
        entries=len(m.values),
        weight_bits=weight_bits,
        index_bits=index_bits,
        codebook_entries=None if cb is None else len(cb),
        huffman=huffman,
        codebook_storage=codebook_storage,
    )
    if not np.array_equal(back, w):
        raise ValueError(f"{name}: decode round trip differs from the weights")
    return LayerStorage(
        name, m.shape, int(np.count_nonzero(w)), len(m.values), m.padding_entries, blobs
    )


def decode_layer(
    blobs: dict[str, bytes],
    shape: tuple[int, int],
    *,
    entries: int,
    weight_bits: int,
    index_bits: int,
    codebook_entries: int | None,
    huffman: bool,
    codebook_storage: CodebookStorage = "float32",
) -> np.ndarray:
    """Rebuild the integer weights from the bytes of :func:`encode_layer` alone."""
    if codebook_entries is not None:
        value_bits = value_code_bits(codebook_entries)
        if codebook_storage == "float32":
            cb = np.frombuffer(blobs["codebook"], "<f4").astype(np.int64)
        else:
            bits = int_codebook_bits(weight_bits)
            cb = from_twos_complement(unpack_bits(blobs["codebook"], bits, codebook_entries), bits)
    else:
        value_bits = weight_bits
    if huffman:
        vtable = huffman_table_from_bytes(blobs["values_table"], value_bits)
        gtable = huffman_table_from_bytes(blobs["indices_table"], index_bits)
        codes = huffman_decode(blobs["values"], vtable, entries)
        gaps = huffman_decode(blobs["indices"], gtable, entries)
    else:
        codes = unpack_bits(blobs["values"], value_bits, entries)
        gaps = unpack_bits(blobs["indices"], index_bits, entries)
    if codebook_entries is not None:
        if codes.size and codes.max() >= len(cb):
            raise ValueError(f"decode_layer: code {codes.max()} outside a {len(cb)}-entry codebook")
        values = cb[codes] if codes.size else codes
    else:
        values = weight_values(codes, weight_bits)
    ptr = unpack_bits(blobs["col_ptr"], col_ptr_bits(entries), shape[1] + 1)
    return csc_decode(CscMatrix(shape, values, gaps, ptr, index_bits))


def compression_ratio(layers: list[LayerStorage]) -> float:
    """Dense float32 bytes of all layers / their encoded bytes."""
    return sum(x.dense_float32_bytes for x in layers) / max(1, sum(x.total_bytes for x in layers))


@dataclass
class StorageReport:
    """All layers of a model: bytes, float32 bytes and the overall compression ratio."""

    layers: list[LayerStorage]

    @property
    def total_bytes(self) -> int:
        return sum(x.total_bytes for x in self.layers)

    @property
    def dense_float32_bytes(self) -> int:
        return sum(x.dense_float32_bytes for x in self.layers)

    @property
    def ratio(self) -> float:
        return compression_ratio(self.layers)

    def as_dict(self) -> dict[str, Any]:
        return {
            "layers": [x.as_dict() for x in self.layers],
            "total_bytes": self.total_bytes,
            "float32_bytes": self.dense_float32_bytes,
            "ratio": round(self.ratio, 2),
        }


# ---------------------------------------------------------------- the engine's own layout


def encode_sparse_layout(
    layout: sparse.SparseLayout, *, huffman: bool = False, name: str = "layer"
) -> LayerStorage:
    """The bytes of a layer as the sparse engine stores it (per-PE CSC, :mod:`qfab.sparse`).

    Without Huffman the parts are exactly the engine's memories: per PE its entry words
    (``code << index_bits | gap``, ``code_bits + index_bits`` each) and its ``cols + 1``
    column pointers (``ptr_bits`` each), and the codebook (``value_bits`` each, code 0
    the padding zero) — so these bytes equal what the generated RTL's ROMs hold. With
    Huffman (Deep Compression's last stage, for storage off chip) the codes and the gaps
    of all PEs are Huffman coded, tables included; pointers and codebook as before.
    Every part is decoded back and the matrix compared before its size is reported.
    """
    blobs: dict[str, bytes] = {}
    lay = layout
    for p in range(lay.pes):
        if not huffman and lay.pe_entries[p]:
            blobs[f"pe{p}_entries"] = pack_bits(np.array(lay.entry_words(p)), lay.entry_bits)
        blobs[f"pe{p}_col_ptr"] = pack_bits(lay.ptr[p], lay.ptr_bits)
    if huffman:
        blobs["values"], vtable = huffman_encode(lay.code)
        blobs["values_table"] = huffman_table_bytes(vtable, lay.code_bits)
        blobs["indices"], gtable = huffman_encode(lay.gap)
        blobs["indices_table"] = huffman_table_bytes(gtable, lay.index_bits)
    blobs["codebook"] = pack_bits(to_twos_complement(lay.codebook, lay.value_bits), lay.value_bits)
    back = decode_sparse_layout(blobs, lay, huffman=huffman)
    if not (np.array_equal(back.code, lay.code) and np.array_equal(back.gap, lay.gap)):
        raise ValueError(f"{name}: decode round trip differs from the layout")
    w = sparse.sparse_decode(back)
    return LayerStorage(
        name,
        (lay.rows, lay.cols),
        int(np.count_nonzero(w)),
        len(lay.code),
        lay.padding_entries,
        blobs,
    )


def decode_sparse_layout(
    blobs: dict[str, bytes], like: sparse.SparseLayout, *, huffman: bool
) -> sparse.SparseLayout:
    """Rebuild a layout from the bytes of :func:`encode_sparse_layout` and the widths and
    entry counts the IR records (``like``'s shape, widths and per-PE entry counts)."""
    counts = like.pe_entries
    ptr = np.stack(
        [
            unpack_bits(blobs[f"pe{p}_col_ptr"], like.ptr_bits, like.cols + 1)
            for p in range(like.pes)
        ]
    )
    if huffman:
        vtable = huffman_table_from_bytes(blobs["values_table"], like.code_bits)
        gtable = huffman_table_from_bytes(blobs["indices_table"], like.index_bits)
        code = huffman_decode(blobs["values"], vtable, int(counts.sum()))
        gap = huffman_decode(blobs["indices"], gtable, int(counts.sum()))
    else:
        words = [
            unpack_bits(blobs[f"pe{p}_entries"], like.entry_bits, int(counts[p]))
            if counts[p]
            else np.zeros(0, np.int64)
            for p in range(like.pes)
        ]
        w = np.concatenate(words) if words else np.zeros(0, np.int64)
        code, gap = w >> like.index_bits, w & ((1 << like.index_bits) - 1)
    cb = from_twos_complement(
        unpack_bits(blobs["codebook"], like.value_bits, len(like.codebook)), like.value_bits
    )
    return sparse.SparseLayout(
        like.rows, like.cols, like.pes, like.index_bits, like.code_bits, cb, code, gap, ptr
    )
