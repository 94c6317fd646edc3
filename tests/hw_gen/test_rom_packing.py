"""ROM words and stream beats: what the generator packs, an independent decoder unpacks.

The decoder here reads a word as a string of bits (element 0 at the least significant
end, each ``bits`` wide, two's complement when signed), so it shares no code or
arithmetic trick with :func:`hw_gen.verilog.rom.pack_word` or the runner's beat packing.
Widths 1-32, signed and unsigned, 0-40 elements, values anywhere in their range.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hw_gen.verilog.rom import LITERAL_BITS, addr_bits, pack_word, rom_module
from qfab.values import Element
from sim.runner import pack_beats, unpack_beats


def decode_word(word: int, bits: int, count: int, signed: bool) -> list[int]:
    """Element ``i`` is the ``i``-th group of ``bits`` characters from the right."""
    assert word >= 0
    text = format(word, "b").rjust(max(1, count * bits), "0")
    assert len(text) <= max(1, count * bits), "no bit beyond the last element"
    out = []
    for i in range(count):
        field = text[len(text) - (i + 1) * bits : len(text) - i * bits]
        value = int(field, 2)
        if signed and field[0] == "1":
            value -= 2**bits
        out.append(value)
    return out


@st.composite
def elements(draw) -> tuple[int, bool, list[int]]:
    bits = draw(st.integers(1, 32))
    signed = draw(st.booleans())
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    edge = st.sampled_from([lo, hi, 0 if lo <= 0 else lo, -1 if signed else hi])
    values = draw(st.lists(st.one_of(st.integers(lo, hi), edge), min_size=0, max_size=40))
    return bits, signed, values


@settings(max_examples=300, deadline=None)
@given(elements())
def test_pack_word_round_trips(case):
    bits, signed, values = case
    word = pack_word(values, bits)
    assert decode_word(word, bits, len(values), signed) == values


@settings(max_examples=100, deadline=None)
@given(elements())
def test_a_rom_module_holds_exactly_the_packed_words(case):
    bits, signed, values = case
    per_word = max(1, min(4, len(values)))
    groups = [values[i : i + per_word] for i in range(0, len(values), per_word)] or [[0]]
    data_bits = per_word * bits
    words = [pack_word(g, bits) for g in groups]
    text = rom_module("t_rom", words, data_bits, "test")
    found = re.findall(r"mem\[(\d+)\] = (\d+)'h([0-9a-f]+);", text)
    assert [int(a) for a, _, _ in found] == list(range(len(words)))
    assert all(int(w) == data_bits for _, w, _ in found)
    read = [int(h, 16) for _, _, h in found]
    assert all(r < 2**data_bits for r in read)
    decoded = [decode_word(r, bits, len(g), signed) for r, g in zip(read, groups, strict=True)]
    assert decoded == groups
    assert f"input  wire [{addr_bits(len(words)) - 1}:0] addr" in text


@settings(max_examples=200, deadline=None)
@given(
    bits=st.integers(1, 32),
    signed=st.booleans(),
    elems=st.integers(1, 8),
    beats=st.integers(1, 5),
    frames=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_stream_beats_round_trip(bits, signed, elems, beats, frames, seed):
    """The simulator's input packing and output unpacking, element encoding included."""
    el = Element(bits, signed=signed)
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    rng = np.random.default_rng(seed)
    values = rng.integers(lo, hi, size=(frames, beats * elems), endpoint=True)
    values.flat[0], values.flat[-1] = lo, hi
    words = pack_beats(el.encode(values), elems, bits)
    assert len(words) == frames * beats
    for k, word in enumerate(words):
        f, b = divmod(k, beats)
        want = values[f, b * elems : (b + 1) * elems].tolist()
        assert decode_word(word, bits, elems, signed) == want
    back = el.decode(unpack_beats(words, elems, bits, frames, beats))
    assert back.shape == values.shape and np.array_equal(back, values)


def test_bipolar_elements_pack_as_one_bit_each():
    el = Element(1, signed=True, bipolar=True)
    values = np.array([[1, -1, -1, 1, 1]])
    words = pack_beats(el.encode(values), 5, 1)
    assert words == [0b11001]  # +1 -> 1, -1 -> 0, element 0 at the LSB
    assert np.array_equal(el.decode(unpack_beats(words, 5, 1, 1, 1)), values)


@given(bits=st.integers(1, 32), over=st.integers(1, 1000), low=st.booleans())
def test_pack_word_refuses_a_value_its_width_cannot_hold(bits, over, low):
    """Masking would turn a too-narrow width into a wrong ROM constant: refused instead.
    The field holds -2^(bits-1) .. 2^bits - 1 (signed or unsigned two's complement)."""
    v = -(2 ** (bits - 1)) - over if low else 2**bits - 1 + over
    with pytest.raises(ValueError, match=f"element 1 = {v} does not fit {bits} bits"):
        pack_word([0, v], bits)
    pack_word([-(2 ** (bits - 1)), 2**bits - 1], bits)  # both ends of the field are fine


@settings(max_examples=30, deadline=None)
@given(
    data_bits=st.integers(LITERAL_BITS - 3, 3 * LITERAL_BITS + 5),
    depth=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_wide_rom_word_is_written_in_part_selects_that_reassemble_it(data_bits, depth, seed):
    """Icarus' lexer fails on a ~17k-character literal (found by the fuzz test: a 68,850-bit
    threshold word): wider words are set in pieces of at most LITERAL_BITS bits, each
    piece's width exact, together covering the word once, and no line is longer than
    a piece."""
    rng = np.random.default_rng(seed)
    words = [int.from_bytes(rng.bytes(data_bits // 8 + 1), "little") % 2**data_bits]
    words += [2**data_bits - 1, 0][: depth - 1]
    text = rom_module("wide_rom", words, data_bits, "test")
    assert max(len(line) for line in text.splitlines()) < LITERAL_BITS // 4 + 40
    for i, word in enumerate(words):
        whole = re.findall(rf"mem\[{i}\] = (\d+)'h([0-9a-f]+);", text)
        parts = re.findall(rf"mem\[{i}\]\[(\d+):(\d+)\] = (\d+)'h([0-9a-f]+);", text)
        if data_bits <= LITERAL_BITS:
            assert parts == [] and [int(h, 16) for _, h in whole] == [word]
            continue
        assert whole == []
        got, covered = 0, 0
        for hi, lo, width, hexa in parts:
            hi, lo, width, value = int(hi), int(lo), int(width), int(hexa, 16)
            assert lo == covered and width == hi - lo + 1 <= LITERAL_BITS
            assert value < 2**width
            got |= value << lo
            covered = hi + 1
        assert covered == data_bits and got == word
