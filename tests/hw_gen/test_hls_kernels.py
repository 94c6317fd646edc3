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
