"""Integer values: ranges, the widths derived from them, and how elements travel on a wire.

Every width in qfab (accumulators, stream elements, threshold words) comes from an
:class:`IntRange` computed from the actual weights and input ranges (see
:mod:`qfab.ranges`), so the hardware can never overflow and never carries a bit it does
not need. This module is the numeric ground floor: numpy only, no IR.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class IntRange:
    """Per-channel inclusive integer bounds ``lo[c] <= value[c] <= hi[c]``.

    ``bipolar`` marks values that are only ever -1 or +1 (a BNN activation): such a
    stream needs one bit, and it cannot carry a 0 (a padding zero must widen it).
    """

    lo: np.ndarray
    hi: np.ndarray
    bipolar: bool = False

    @property
    def min(self) -> int:
        return int(self.lo.min())

    @property
    def max(self) -> int:
        return int(self.hi.max())

    @property
    def signed(self) -> bool:
        return self.min < 0

    @property
    def bits(self) -> int:
        """Smallest width holding every value (two's complement if any is negative)."""
        return 1 if self.bipolar else bits_for(self.min, self.max)

    @property
    def element(self) -> Element:
        """How a value of this range is encoded on a stream."""
        if self.bipolar:
            return Element(1, signed=True, bipolar=True)
        return Element(self.bits, signed=self.signed)

    def tiled(self, length: int) -> IntRange:
        """The per-channel bounds repeated to ``length`` entries (channels innermost)."""
        reps = length // len(self.lo)
        return IntRange(np.tile(self.lo, reps), np.tile(self.hi, reps), self.bipolar)

    @classmethod
    def full(cls, channels: int, lo: int, hi: int, bipolar: bool = False) -> IntRange:
        """The same bounds for every channel."""
        return cls(np.full(channels, lo, np.int64), np.full(channels, hi, np.int64), bipolar)


def bits_for(lo: int, hi: int) -> int:
    """Bits of the narrowest integer type holding ``[lo, hi]``.

    Unsigned when ``lo >= 0`` (``hi < 2^b``), else two's complement
    (``-2^(b-1) <= lo`` and ``hi < 2^(b-1)``). At least 1.
    """
    if lo >= 0:
        return max(1, int(hi).bit_length())

    def magnitude(v: int) -> int:  # bits of v in two's complement, sign bit excluded
        return (v if v >= 0 else -v - 1).bit_length()

    return max(magnitude(int(lo)), magnitude(int(hi))) + 1


def signed_bits(lo: int, hi: int) -> int:
    """Bits of a two's complement register holding ``[lo, hi]`` (always with a sign bit)."""
    return bits_for(min(int(lo), -1), max(int(hi), 0))


def weight_range(bits: int) -> tuple[int, int]:
    """Integer range of a ``bits``-wide signed weight.

    1 bit means bipolar {-1, +1}; otherwise narrow-range signed
    ``[-(2^(b-1) - 1), 2^(b-1) - 1]`` (Brevitas' default for weights), which keeps the
    range symmetric so a weight row can be negated without growing.
    """
    if bits == 1:
        return -1, 1
    return -(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1


def input_range(bits: int, signed: bool) -> tuple[int, int]:
    """Integer range of an ``InputQuant`` output: full-range two's complement or unsigned
    (Brevitas' activation quantizers are not narrow, unlike its weight quantizers)."""
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)


def decode_codebook(codebook: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Shared weights back to integers: ``codebook[index]``, and 0 where ``index`` is -1."""
    return np.where(index >= 0, np.asarray(codebook)[np.maximum(index, 0)], 0).astype(np.int64)


@dataclass(frozen=True)
class Element:
    """How one stream element is encoded: width, signedness, bipolar (1 -> +1, 0 -> -1)."""

    bits: int
    signed: bool = False
    bipolar: bool = False

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Integers -> the unsigned bit patterns on the wire."""
        v = np.asarray(values, dtype=np.int64)
        if self.bipolar:
            return (v > 0).astype(np.int64)
        return v & ((1 << self.bits) - 1)

    def decode(self, raw: np.ndarray) -> np.ndarray:
        """Bit patterns -> integers (sign-extended, or ±1 for bipolar)."""
        r = np.asarray(raw, dtype=np.int64)
        if self.bipolar:
            return np.where(r & 1, 1, -1)
        if self.signed:
            return np.where(r >= 1 << (self.bits - 1), r - (1 << self.bits), r)
        return r

    def as_dict(self) -> dict[str, int | bool]:
        return {"bits": self.bits, "signed": self.signed, "bipolar": self.bipolar}
