"""Storage encoders: exact round trips, EIE's padding rule, and bytes that are real."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from quant_train.storage import (
    compression_ratio,
    csc_decode,
    csc_encode,
    encode_layer,
    huffman_decode,
    huffman_encode,
    pack_bits,
    unpack_bits,
)


def test_eie_padding_rule_on_a_hand_made_column():
    col = np.zeros((60, 1), np.int64)
    col[40, 0], col[45, 0], col[59, 0] = 3, -2, 1
    m = csc_encode(col, 4)
    # 40 zeros before the first entry: two stored zeros (16 rows each), then a gap of 8
    assert m.values.tolist() == [0, 0, 3, -2, 1]
    assert m.gaps.tolist() == [15, 15, 8, 4, 13]
    assert m.padding_entries == 2
    np.testing.assert_array_equal(csc_decode(m), col)


sparse = arrays(
    np.int64,
    st.tuples(st.integers(1, 40), st.integers(1, 12)),
    elements=st.sampled_from([0, 0, 0, 0, 0, 0, -7, -1, 1, 2, 7]),
)


@settings(max_examples=60, deadline=None)
@given(sparse, st.integers(1, 6))
def test_csc_round_trip(w, index_bits):
    m = csc_encode(w, index_bits)
    np.testing.assert_array_equal(csc_decode(m), w)
    assert m.gaps.max(initial=0) <= 2**index_bits - 1
    assert len(m.values) == np.count_nonzero(w) + m.padding_entries


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 2**13 - 1), max_size=200), st.integers(13, 20))
def test_bit_packing_round_trip(values, bits):
    data = pack_bits(np.array(values), bits)
    assert len(data) == (len(values) * bits + 7) // 8
    np.testing.assert_array_equal(unpack_bits(data, bits, len(values)), values)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-3, 40), min_size=1, max_size=300))
def test_huffman_round_trip(symbols):
    data, table = huffman_encode(np.array(symbols))
    np.testing.assert_array_equal(huffman_decode(data, table, len(symbols)), symbols)


def test_huffman_beats_fixed_width_on_skewed_symbols():
    symbols = np.array([0] * 900 + [1] * 60 + list(range(2, 16)) * 3)
    data, _ = huffman_encode(symbols)
    assert len(data) < len(pack_bits(symbols, 4)) / 2


@pytest.mark.parametrize("huffman", [False, True])
@pytest.mark.parametrize("shared", [False, True])
def test_layer_bytes_are_the_encoded_bytes(huffman, shared):
    rng = np.random.default_rng(0)
    codebook = np.array([-5, -2, -1, 1, 3, 6])
    w = codebook[rng.integers(0, 6, size=(48, 30))]
    w[rng.random(w.shape) < 0.9] = 0
    layer = encode_layer(
        w,
        weight_bits=4,
        index_bits=4,
        huffman=huffman,
        codebook=codebook if shared else None,
        name="fc0",
    )
    m = csc_encode(w, 4)
    if not huffman:
        value_bits = 3 if shared else 4  # codes 0..6 need 3 bits
        assert layer.parts["values"] == (len(m.values) * value_bits + 7) // 8
        assert layer.parts["indices"] == (len(m.values) * 4 + 7) // 8
    assert layer.total_bytes == sum(layer.parts.values())
    assert layer.dense_float32_bytes == 48 * 30 * 4
    assert compression_ratio([layer]) == pytest.approx(layer.ratio)


def test_layer_rejects_weights_outside_the_codebook_and_bad_args():
    w = np.array([[0, 3], [5, 0]])
    with pytest.raises(ValueError, match="fc1: weights \\[5\\] are not in the codebook"):
        encode_layer(w, weight_bits=4, codebook=np.array([3]), name="fc1")
    with pytest.raises(ValueError, match="index_bits = 0 is not allowed"):
        encode_layer(w, weight_bits=4, index_bits=0)
    with pytest.raises(ValueError, match="2-D integer"):
        encode_layer(np.ones((2, 2)), weight_bits=4)
