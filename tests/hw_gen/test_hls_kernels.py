"""The HLS kernel builders' arithmetic, without a compiler: constants, loop counts."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hw_gen.hls.kernels import dwc_iterations, limbs


@given(st.integers(1, 16), st.integers(1, 16), st.integers(1, 12))
def test_width_converter_loop_takes_the_larger_beat_count(n_in, n_out, frames):
    """The converter reads and writes in the same iteration where it can, so a frame
    takes max(in beats, out beats) iterations: the RTL converter's cycles, and the
    unit's cycles in the hardware graph."""
    features = n_in * n_out * frames
    assert dwc_iterations(n_in, n_out, features) == max(features // n_in, features // n_out)


@given(st.lists(st.integers(0, (1 << 200) - 1), min_size=1, max_size=5), st.integers(1, 200))
def test_limbs_reassemble_every_word(words, bits):
    """A word written as 64-bit limbs (least significant first) reads back whole."""
    words = [w & ((1 << bits) - 1) for w in words]
    rows, n = limbs(words, bits)
    assert n == -(-bits // 64)
    for word, row in zip(words, rows, strict=True):
        parts = [int(x.removesuffix("ULL"), 16) for x in row.split(", ")]
        assert len(parts) == n and all(p < 1 << 64 for p in parts)
        assert sum(p << (64 * i) for i, p in enumerate(parts)) == word


def test_a_word_wider_than_ap_uint_allows_is_refused_by_name(tmp_path):
    """A weight word of PE x SIMD x bits over 32,768 bits (ap_uint's limit) is refused,
    naming the node, before any file."""
    import pytest

    from hw_gen.hls.emit import generate_hls
    from hw_gen.passes import lower
    from qfab.errors import HardwareError
    from qfab.random_graph import random_mlp_graph

    g = random_mlp_graph(256, [128], 4, weight_bits=3, act_bits=2, seed=0)
    hw = lower(g, pe=[128, 1], simd=[256, 128])  # fc0: 128 x 256 x 3 bits = 98,304
    with pytest.raises(HardwareError, match=r"node 'fc0' \(MVAU\): its weight word is 98304 bits"):
        generate_hls(hw, tmp_path / "hls")
    assert not list(tmp_path.iterdir())
