"""Storage encoders: exact round trips, EIE's padding rule, and bytes that are real."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from quant_train.storage import (
    StorageReport,
    compression_ratio,
    csc_decode,
    csc_encode,
    decode_layer,
    encode_layer,
    from_twos_complement,
    huffman_code,
    huffman_decode,
    huffman_encode,
    huffman_table_bytes,
    huffman_table_from_bytes,
    pack_bits,
    to_twos_complement,
    unpack_bits,
)


def reference_csc(w: np.ndarray, index_bits: int) -> tuple[list[int], list[int], list[int]]:
    """EIE's rule written the slow way: walk each column row by row."""
    max_gap = 2**index_bits - 1
    values, gaps, col_ptr = [], [], [0]
    for c in range(w.shape[1]):
        zeros = 0
        for r in range(w.shape[0]):
            if w[r, c] == 0 and zeros < max_gap:
                zeros += 1
            elif w[r, c] == 0:  # the (max_gap + 1)-th zero in a row is stored: padding
                values.append(0)
                gaps.append(max_gap)
                zeros = 0
            else:
                values.append(int(w[r, c]))
                gaps.append(zeros)
                zeros = 0
        # trailing zeros are not stored, so padding written for them is dropped again
        while values[col_ptr[-1] :] and values[-1] == 0:
            values.pop()
            gaps.pop()
        col_ptr.append(len(values))
    return values, gaps, col_ptr


def test_eie_example_column():
    """EIE Sec. III: the column is stored as v = [1, 2, 0, 3], z = [2, 0, 15, 2]."""
    col = np.zeros((23, 1), np.int64)
    col[2, 0], col[3, 0], col[22, 0] = 1, 2, 3  # 18 zeros between 2 and 3
    m = csc_encode(col, 4)
    assert m.values.tolist() == [1, 2, 0, 3]
    assert m.gaps.tolist() == [2, 0, 15, 2]
    assert m.col_ptr.tolist() == [0, 4]
    assert m.padding_entries == 1
    np.testing.assert_array_equal(csc_decode(m), col)


@pytest.mark.parametrize(
    ("zeros", "padding", "gap"),
    [(0, 0, 0), (15, 0, 15), (16, 1, 0), (31, 1, 15), (32, 2, 0), (40, 2, 8)],
)
def test_padding_entries_before_one_entry(zeros, padding, gap):
    """4-bit indices: more than 15 zeros before an entry need padding; 40 zeros need 2."""
    col = np.zeros((zeros + 1, 1), np.int64)
    col[zeros, 0] = -5
    m = csc_encode(col, 4)
    assert m.padding_entries == padding
    assert m.values.tolist() == [0] * padding + [-5]
    assert m.gaps.tolist() == [15] * padding + [gap]
    np.testing.assert_array_equal(csc_decode(m), col)


def test_hand_made_column_with_two_paddings():
    col = np.zeros((60, 1), np.int64)
    col[40, 0], col[45, 0], col[59, 0] = 3, -2, 1
    m = csc_encode(col, 4)
    assert m.values.tolist() == [0, 0, 3, -2, 1]
    assert m.gaps.tolist() == [15, 15, 8, 4, 13]
    assert m.padding_entries == 2


sparse = arrays(
    np.int64,
    st.tuples(st.integers(1, 40), st.integers(1, 12)),
    elements=st.sampled_from([0, 0, 0, 0, 0, 0, 0, 0, -8, -7, -1, 1, 2, 7]),
)


@settings(max_examples=80, deadline=None)
@given(sparse, st.integers(1, 6))
def test_csc_round_trip_and_reference(w, index_bits):
    m = csc_encode(w, index_bits)
    np.testing.assert_array_equal(csc_decode(m), w)
    values, gaps, col_ptr = reference_csc(w, index_bits)
    assert m.values.tolist() == values and m.gaps.tolist() == gaps
    assert m.col_ptr.tolist() == col_ptr
    assert m.gaps.max(initial=0) <= 2**index_bits - 1
    assert len(m.values) == np.count_nonzero(w) + m.padding_entries


@pytest.mark.parametrize(
    "w",
    [
        np.zeros((1, 1), np.int64),
        np.zeros((7, 5), np.int64),
        np.array([[0, 3, 0, 0, -1]]),
        np.array([[0], [0], [4], [0]]),
        np.eye(40, dtype=np.int64)[:, ::-1] * 3,
    ],
    ids=["1x1 zero", "all zero", "one row", "one column", "anti-diagonal"],
)
@pytest.mark.parametrize("index_bits", [1, 4, 16])
def test_csc_edge_shapes(w, index_bits):
    m = csc_encode(w, index_bits)
    assert len(m.col_ptr) == w.shape[1] + 1
    np.testing.assert_array_equal(csc_decode(m), w)
    for huffman in (False, True):
        layer = encode_layer(w, weight_bits=4, index_bits=index_bits, huffman=huffman)
        assert layer.entries == len(m.values)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 20).flatmap(
        lambda b: st.tuples(st.just(b), st.lists(st.integers(0, 2**b - 1), max_size=200))
    )
)
def test_bit_packing_round_trip(case):
    bits, values = case
    data = pack_bits(np.array(values, np.int64), bits)
    assert len(data) == (len(values) * bits + 7) // 8
    np.testing.assert_array_equal(unpack_bits(data, bits, len(values)), values)


def test_bit_packing_is_lsb_first():
    assert pack_bits(np.array([1, 2, 3]), 3) == bytes([0b11010001, 0b0])
    assert pack_bits(np.array([0xABC]), 12) == bytes([0xBC, 0x0A])


@settings(max_examples=30, deadline=None)
@given(
    st.integers(1, 12).flatmap(
        lambda b: st.tuples(st.just(b), st.lists(st.integers(-(2 ** (b - 1)), 2 ** (b - 1) - 1)))
    )
)
def test_twos_complement_round_trip(case):
    bits, values = case
    codes = to_twos_complement(np.array(values, np.int64), bits)
    assert codes.min(initial=0) >= 0 and codes.max(initial=0) < 2**bits
    np.testing.assert_array_equal(from_twos_complement(codes, bits), values)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-3, 40), min_size=1, max_size=300))
def test_huffman_round_trip(symbols):
    data, table = huffman_encode(np.array(symbols))
    np.testing.assert_array_equal(huffman_decode(data, table, len(symbols)), symbols)
    codes = sorted(table.values())
    assert not any(b.startswith(a) for a, b in itertools.pairwise(codes))  # prefix-free
    assert huffman_code(np.array(symbols)) == table  # deterministic
    if min(symbols) >= 0:
        assert huffman_table_from_bytes(huffman_table_bytes(table, 6), 6) == table


def test_huffman_single_symbol_and_empty():
    data, table = huffman_encode(np.array([7, 7, 7, 7]))
    assert table == {7: "0"} and len(data) == 1
    np.testing.assert_array_equal(huffman_decode(data, table, 4), [7, 7, 7, 7])
    data, table = huffman_encode(np.zeros(0, np.int64))
    assert data == b"" and table == {}
    assert huffman_decode(data, table, 0).size == 0


def test_huffman_decodes_any_prefix_table_and_rejects_short_streams():
    table = {0: "1", 1: "01", 2: "00"}  # a prefix code that is not canonical
    bits = "1" + "01" + "00" + "1"  # 0, 1, 2, 0, first bit first, LSB-first bytes
    data = np.packbits(np.array([int(b) for b in bits], np.uint8), bitorder="little").tobytes()
    np.testing.assert_array_equal(huffman_decode(data, table, 4), [0, 1, 2, 0])
    # the byte's 2 padding bits read as one more symbol (2), then the stream ends
    with pytest.raises(ValueError, match="stream ends or is invalid after 5 of 9"):
        huffman_decode(data, table, 9)


def test_huffman_beats_fixed_width_on_skewed_symbols():
    symbols = np.array([0] * 900 + [1] * 60 + list(range(2, 16)) * 3)
    data, table = huffman_encode(symbols)
    assert len(table[0]) == 1
    assert len(data) < len(pack_bits(symbols, 4)) / 2


def sparse_layer(seed: int = 0, shape: tuple[int, int] = (48, 30)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    codebook = np.array([-5, -2, -1, 1, 3, 6])
    w = codebook[rng.integers(0, 6, size=shape)]
    w[rng.random(w.shape) < 0.9] = 0
    return w, codebook


@pytest.mark.parametrize("storage", ["float32", "int"])
@pytest.mark.parametrize("huffman", [False, True])
@pytest.mark.parametrize("shared", [False, True])
def test_layer_bytes_are_the_encoded_bytes(huffman, shared, storage):
    w, codebook = sparse_layer()
    layer = encode_layer(
        w,
        weight_bits=4,
        index_bits=4,
        huffman=huffman,
        codebook=codebook if shared else None,
        codebook_storage=storage,
        name="fc0",
    )
    m = csc_encode(w, 4)
    assert m.padding_entries > 0 and layer.padding_entries == m.padding_entries
    assert layer.parts == {k: len(v) for k, v in layer.blobs.items()}
    assert layer.total_bytes == sum(len(v) for v in layer.blobs.values())
    entries = len(m.values)
    assert layer.entries == entries and layer.nonzeros == np.count_nonzero(w)
    assert layer.parts["col_ptr"] == (31 * entries.bit_length() + 7) // 8
    assert layer.parts["scale"] == 1
    # 6 centroids + the zero that padding entries point at: 7 codes, 3 bits each
    value_bits = 3 if shared else 4
    if shared:
        assert layer.parts["codebook"] == (7 * 4 if storage == "float32" else (7 * 4 + 7) // 8)
    else:
        assert "codebook" not in layer.parts
    if huffman:
        vtable = huffman_table_from_bytes(layer.blobs["values_table"], value_bits)
        gtable = huffman_table_from_bytes(layer.blobs["indices_table"], 4)
        gaps = huffman_decode(layer.blobs["indices"], gtable, entries)
        assert len(huffman_decode(layer.blobs["values"], vtable, entries)) == entries
    else:
        assert layer.parts["values"] == (entries * value_bits + 7) // 8
        assert layer.parts["indices"] == (entries * 4 + 7) // 8
        gaps = unpack_bits(layer.blobs["indices"], 4, entries)
    np.testing.assert_array_equal(gaps, m.gaps)
    back = decode_layer(
        layer.blobs,
        layer.shape,
        entries=entries,
        weight_bits=4,
        index_bits=4,
        codebook_entries=7 if shared else None,
        huffman=huffman,
        codebook_storage=storage,
    )
    np.testing.assert_array_equal(back, w)
    assert layer.dense_float32_bytes == 48 * 30 * 4
    assert layer.ratio == pytest.approx(48 * 30 * 4 / layer.total_bytes)
    assert layer.as_dict()["bytes"] == layer.parts


@settings(max_examples=40, deadline=None)
@given(sparse, st.integers(1, 6), st.booleans(), st.booleans())
def test_layer_round_trip_from_its_bytes(w, index_bits, huffman, shared):
    codebook = np.unique(w[w != 0]) if shared else None
    layer = encode_layer(
        w, weight_bits=4, index_bits=index_bits, codebook=codebook, huffman=huffman
    )
    k = None if codebook is None else len(codebook) + (layer.padding_entries > 0)
    back = decode_layer(
        layer.blobs,
        layer.shape,
        entries=layer.entries,
        weight_bits=4,
        index_bits=index_bits,
        codebook_entries=k,
        huffman=huffman,
    )
    np.testing.assert_array_equal(back, w)


def test_codebook_without_padding_needs_no_zero_and_log2_k_bits():
    w = np.array([[1, 0, 3], [2, 4, 0]])  # no gap > 15: no padding entry
    layer = encode_layer(w, weight_bits=4, codebook=np.array([1, 2, 3, 4]), name="fc")
    assert layer.padding_entries == 0
    assert layer.parts["codebook"] == 4 * 4  # float32, no zero added
    assert layer.parts["values"] == 1  # 4 entries x 2 bits


def test_ratio_over_layers_and_report():
    a = encode_layer(sparse_layer(0)[0], weight_bits=4, name="fc0")
    b = encode_layer(sparse_layer(1, (100, 20))[0], weight_bits=4, huffman=True, name="fc1")
    ratio = (a.dense_float32_bytes + b.dense_float32_bytes) / (a.total_bytes + b.total_bytes)
    assert compression_ratio([a, b]) == pytest.approx(ratio)
    report = StorageReport([a, b])
    assert report.ratio == pytest.approx(ratio)
    assert report.as_dict()["total_bytes"] == a.total_bytes + b.total_bytes


def test_layer_errors_name_the_argument_and_what_is_allowed():
    w = np.array([[0, 3], [5, 0]])
    with pytest.raises(ValueError, match=r"fc1: weights \[5\] are not in the codebook"):
        encode_layer(w, weight_bits=4, codebook=np.array([3]), name="fc1")
    for bad in (0, 17):
        with pytest.raises(
            ValueError, match=f"index_bits = {bad} is not allowed; allowed: integers 1..16"
        ):
            encode_layer(w, weight_bits=4, index_bits=bad)
    with pytest.raises(ValueError, match="index_bits = 2.5 is not allowed"):
        csc_encode(w, 2.5)
    with pytest.raises(ValueError, match="fc2: weights must be a 2-D integer matrix"):
        encode_layer(np.ones((2, 2)), weight_bits=4, name="fc2")
    with pytest.raises(
        ValueError, match=r"fc3: weights in 0..5 do not fit weight_bits = 3 \(-4..3\)"
    ):
        encode_layer(w, weight_bits=3, name="fc3")
    with pytest.raises(ValueError, match="codebook_storage = 'f16' is not allowed"):
        encode_layer(w, weight_bits=4, codebook_storage="f16")
    with pytest.raises(ValueError, match="fc4: codebook values must be distinct"):
        encode_layer(w, weight_bits=4, codebook=np.array([3, 5, 3]), name="fc4")
    with pytest.raises(ValueError, match="csc_encode: w: dtype float64 is not allowed"):
        csc_encode(np.zeros((2, 2)), 4)
    with pytest.raises(ValueError, match="pack_bits: value 8 is not allowed; allowed: 0..7"):
        pack_bits(np.array([1, 8]), 3)
    with pytest.raises(ValueError, match="pack_bits: value -1 is not allowed"):
        pack_bits(np.array([-1]), 3)


def test_round_trip_failure_names_the_layer():
    """A float32 codebook cannot hold 2^24 + 1: the verified decode catches it."""
    w = np.array([[2**24 + 1, 0]])
    with pytest.raises(ValueError, match="fc9: decode round trip differs"):
        encode_layer(w, weight_bits=32, codebook=np.array([2**24 + 1]), name="fc9")
    layer = encode_layer(w, weight_bits=32, codebook=np.array([2**24 + 1]), codebook_storage="int")
    assert layer.parts["codebook"] == 4


@pytest.mark.parametrize("storage", ["float32", "int"])
def test_bipolar_weights_take_one_bit_each(storage):
    """1-bit IR weights are -1/+1 (BNN): one sign bit per value, decoded back exactly."""
    rng = np.random.default_rng(0)
    w = rng.choice([-1, 1], size=(12, 20))
    layer = encode_layer(w, weight_bits=1, index_bits=2, name="fc0")
    assert layer.parts["values"] == (w.size + 7) // 8 and layer.padding_entries == 0
    shared = encode_layer(
        w, weight_bits=1, codebook=np.array([-1, 1]), codebook_storage=storage, name="fc0"
    )
    back = decode_layer(
        shared.blobs,
        shared.shape,
        entries=shared.entries,
        weight_bits=1,
        index_bits=4,
        codebook_entries=2,
        huffman=False,
        codebook_storage=storage,
    )
    np.testing.assert_array_equal(back, w)


def test_bipolar_weights_refuse_zero_values_and_padding():
    with pytest.raises(ValueError, match="fc1: weights in -2..1 do not fit weight_bits = 1"):
        encode_layer(np.array([[1, -2]]), weight_bits=1, name="fc1")
    w = np.zeros((40, 1), np.int64)
    w[39, 0] = 1  # 39 zeros before it: padding entries with 4-bit indices
    with pytest.raises(ValueError, match="fc2: 2 padding entries .* 1-bit bipolar codes"):
        encode_layer(w, weight_bits=1, index_bits=4, name="fc2")
    with_codebook = encode_layer(w, weight_bits=1, codebook=np.array([1]), name="fc2")
    assert with_codebook.padding_entries == 2
