"""cocotb bench of ``pool_stream``: random images in, per-window channel maxima out, any stalls.

The second test, ``pool_survives_long_stalls_and_a_reset_mid_frame``, runs the same
reference through :func:`tests.rtl.streams.stalls_and_reset_mid_frame`: long bubbles and
``tready`` drops, optionally a reset in the middle of a frame, then every frame again,
exact to the word.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, SimTimeoutError, with_timeout
from cocotb.utils import get_sim_time

from tests.rtl.harness import unit_case
from tests.rtl.streams import (
    PERIOD_NS,
    Stalls,
    StreamSink,
    StreamSource,
    pack,
    reset,
    stalls_and_reset_mid_frame,
    unpack,
)

LATENCY = 1  # output register


async def timed_send(source: StreamSource, words: list[int]) -> int:
    """Send ``words``; return the cycles it took (== len(words) when never stalled)."""
    start = get_sim_time("ns")
    await source.send(words)
    return round((get_sim_time("ns") - start) / PERIOD_NS)


def reference(img: np.ndarray, kh: int, kw: int) -> np.ndarray:
    """[frames, H, W, C] -> [frames, H//kh, W//kw, C] max over non-overlapping windows."""
    f, h, w, c = img.shape
    oh, ow = h // kh, w // kw
    win = img[:, : oh * kh, : ow * kw, :].reshape(f, oh, kh, ow, kw, c)
    return win.max(axis=(2, 4))


def random_images(case: dict) -> np.ndarray:
    """``frames`` random images [frames, H, W, C] of EBITS-bit (SIGNED or not) elements."""
    p = case["params"]
    bits = p["EBITS"]
    lo, hi = (-(1 << (bits - 1)), 1 << (bits - 1)) if p["SIGNED"] else (0, 1 << bits)
    rng = np.random.default_rng(case.get("seed", 0))
    return rng.integers(lo, hi, size=(case.get("frames", 3), p["H"], p["W"], p["C"]))


@cocotb.test()
async def pool_matches_reference(dut) -> None:
    case = unit_case()
    p = case["params"]
    h, w, c, kh, kw = p["H"], p["W"], p["C"], p["KH"], p["KW"]
    elems, bits, signed = p["ELEMS"], p["EBITS"], bool(p["SIGNED"])
    frames = case.get("frames", 3)
    cf = c // elems
    img = random_images(case)
    ref = reference(img, kh, kw)
    oh, ow = ref.shape[1], ref.shape[2]
    words_in = [pack(list(beat), bits) for beat in img.reshape(-1, elems)]
    n_out = frames * oh * ow * cf

    await reset(dut)
    source = StreamSource(dut, "s_axis", case.get("in_stall", 0.0), seed=case.get("seed", 0) + 11)
    sink = StreamSink(dut, "m_axis", case.get("out_stall", 0.0), seed=case.get("seed", 0) + 23)
    sender = cocotb.start_soon(timed_send(source, words_in))
    try:
        await with_timeout(sink.receive(n_out), 50 * (len(words_in) + n_out) + 200, "ns")
        lost = None
    except SimTimeoutError:
        lost = f"only {len(sink.words)} of {n_out} output beats arrived"

    for i, word in enumerate(sink.words):
        f, rest = divmod(i, oh * ow * cf)
        pix, j = divmod(rest, cf)
        oy, ox = divmod(pix, ow)
        got = unpack(word, elems, bits, signed)
        for e in range(elems):
            want = int(ref[f, oy, ox, j * elems + e])
            assert got[e] == want, (
                f"frame {f} pixel ({oy},{ox}) channel {j * elems + e}: "
                f"expected {want}, got {got[e]}"
            )
    assert lost is None, lost
    cycles = await sender
    await ClockCycles(dut.clk, 4)
    assert not int(dut.m_axis_tvalid.value), "an extra output beat after the last frame"
    if case.get("check_rate"):
        assert cycles == len(words_in), (
            f"{len(words_in)} input beats took {cycles} cycles (expected one per cycle)"
        )
        # a pooled beat leaves LATENCY cycles after the last beat of its window, which
        # is input beat `last` accepted at edge last+1
        want = []
        for f in range(frames):
            for oy in range(oh):
                for ox in range(ow):
                    pixel = (oy * kh + kh - 1) * w + ox * kw + kw - 1
                    for j in range(cf):
                        last = (f * h * w + pixel) * cf + j
                        want.append(last + 1 + LATENCY)
        assert sink.cycles == want, f"output cycles {sink.cycles[:8]}..., expected {want[:8]}..."


@cocotb.test()
async def pool_survives_long_stalls_and_a_reset_mid_frame(dut) -> None:
    case = unit_case()
    p = case["params"]
    elems, bits = p["ELEMS"], p["EBITS"]
    img = random_images(case)
    ref = reference(img, p["KH"], p["KW"])
    await reset(dut)
    await stalls_and_reset_mid_frame(
        dut,
        {"s_axis": [pack(list(beat), bits) for beat in img.reshape(-1, elems)]},
        {"m_axis": [pack(list(beat), bits) for beat in ref.reshape(-1, elems)]},
        frames=len(img),
        stalls=Stalls.from_case(case),
        seed=case.get("seed", 0),
        reset_mid_frame=case["reset_mid_frame"],
    )
