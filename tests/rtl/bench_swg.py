"""cocotb bench of ``swg_stream``: random frames in, im2col windows out, compared to NumPy.

The case gives the module parameters, ``frames`` (sent back to back), ``in_stall`` /
``out_stall`` (random ``tvalid``/``tready`` drops) and ``check_timing``: with no stalls,
the steady-state frame period (spacing of the last beats of consecutive frames, from the
second frame on) must be within 2% of max(output beats, input beats) per frame, and the
first output beat must follow the last input beat it needs by the documented latency.

The second test, ``swg_survives_long_stalls_and_a_reset_mid_frame``, runs the same
reference through :func:`tests.rtl.streams.stalls_and_reset_mid_frame`: long bubbles and
``tready`` drops, optionally a reset in the middle of a frame, then every frame again,
exact to the word.
"""

from __future__ import annotations

import itertools
import math

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge, with_timeout

from tests.rtl.harness import unit_case
from tests.rtl.streams import (
    Stalls,
    StreamSink,
    StreamSource,
    pack,
    reset,
    stalls_and_reset_mid_frame,
    unpack,
)

LATENCY_EDGES = 3  # input accepted at edge e -> output beat on m_axis after edge e+2


def windows(image: np.ndarray, p: dict) -> np.ndarray:
    """im2col of one H x W x C frame: [OH, OW, KH, KW, C], zero padding."""
    kh, kw, sh, sw, ph, pw = (p[k] for k in ("KH", "KW", "SH", "SW", "PH", "PW"))
    padded = np.pad(image, ((ph, ph), (pw, pw), (0, 0)))
    oh = (p["H"] + 2 * ph - kh) // sh + 1
    ow = (p["W"] + 2 * pw - kw) // sw + 1
    out = np.zeros((oh, ow, kh, kw, p["C"]), dtype=np.int64)
    for oy in range(oh):
        for ox in range(ow):
            out[oy, ox] = padded[oy * sh : oy * sh + kh, ox * sw : ox * sw + kw, :]
    return out


def random_images(case: dict) -> tuple[np.ndarray, np.ndarray]:
    """``frames`` random H x W x C images and their codes on the wire (bipolar: 0/1)."""
    p = case["params"]
    shape = (case.get("frames", 3), p["H"], p["W"], p["C"])
    rng = np.random.default_rng(case.get("seed", 0))
    if p["IN_BIPOLAR"]:
        images = rng.choice(np.array([-1, 1]), size=shape)
        return images, (images > 0).astype(np.int64)
    images = rng.integers(0, 1 << p["EBITS"], size=shape)
    return images, images


async def monitor(dut, log: dict[str, list[int]]) -> None:
    """Cycle numbers of every input and output handshake (same counter for both)."""
    cycle = 0
    while True:
        await RisingEdge(dut.clk)
        cycle += 1
        if int(dut.s_axis_tvalid.value) and int(dut.s_axis_tready.value):
            log["in"].append(cycle)
        if int(dut.m_axis_tvalid.value) and int(dut.m_axis_tready.value):
            log["out"].append(cycle)


@cocotb.test()
async def swg_emits_every_window(dut) -> None:
    case = unit_case()
    p = case["params"]
    h, w, c, kh = p["H"], p["W"], p["C"], p["KH"]
    ebits, obits, elems, taps = p["EBITS"], p["OBITS"], p["ELEMS"], p["TAPS"]
    bipolar = bool(p["IN_BIPOLAR"])
    frames = case.get("frames", 3)
    images, codes = random_images(case)
    in_words = [pack(list(chunk), ebits) for chunk in codes.reshape(-1, elems)]
    ref = np.stack([windows(img, p) for img in images])  # [F, OH, OW, KH, KW, C]
    _, oh, ow = ref.shape[:3]
    per_beat = taps * elems
    flat = ref.reshape(frames, -1)
    out_per_frame = flat.shape[1] // per_beat
    in_per_frame = h * w * c // elems
    total = frames * out_per_frame

    await reset(dut)
    log: dict[str, list[int]] = {"in": [], "out": []}
    cocotb.start_soon(monitor(dut, log))
    source = StreamSource(dut, "s_axis", case.get("in_stall", 0.0), seed=case.get("seed", 0) + 1)
    sink = StreamSink(dut, "m_axis", case.get("out_stall", 0.0), seed=case.get("seed", 0) + 2)
    cocotb.start_soon(source.send(in_words))
    budget = 40 * (len(in_words) + total) + 1000
    try:
        words = await with_timeout(sink.receive(total), 10 * budget, "ns")
    except ValueError:  # an accepted beat with X/Z bits
        frame, fbeat = divmod(len(sink.words), out_per_frame)
        oy, ox = np.unravel_index(fbeat * per_beat, ref.shape[1:])[:2]
        raise AssertionError(
            f"frame {frame}, output pixel (oy={oy}, ox={ox}) (beat {fbeat} of the frame): "
            f"m_axis_tdata has X/Z bits: {dut.m_axis_tdata.value}"
        ) from None

    for beat, word in enumerate(words):
        got = unpack(word, per_beat, obits, signed=bipolar)
        frame, fbeat = divmod(beat, out_per_frame)
        want = flat[frame, fbeat * per_beat : (fbeat + 1) * per_beat]
        for i, (want_e, got_e) in enumerate(zip(want.tolist(), got, strict=True)):
            if want_e != got_e:
                oy, ox, ky, kx, ch = np.unravel_index(fbeat * per_beat + i, ref.shape[1:])
                raise AssertionError(
                    f"frame {frame}, output pixel (oy={oy}, ox={ox}), tap (ky={ky}, kx={kx}), "
                    f"channel {ch} (beat {fbeat} of the frame, element {i}): "
                    f"expected {want_e}, got {got_e}"
                )

    if case.get("check_timing"):
        # steady state: frame period = max(output, input) beats, 2% slack allowed
        period = max(out_per_frame, in_per_frame)
        last = [log["out"][(f + 1) * out_per_frame - 1] for f in range(frames)]
        spacing = [b - a for a, b in itertools.pairwise(last)]
        limit = math.floor(period * 1.02)
        assert max(spacing) <= limit, (
            f"frame periods {spacing} cycles, expected {period} (at most {limit})"
        )
        # latency: the first beat needs rows [0, min(H, KH - PH)) of frame 0
        need = min(h, kh - p["PH"]) * in_per_frame // h
        lat = log["out"][0] - log["in"][need - 1]
        assert lat == LATENCY_EDGES, f"first beat {lat} cycles after its last input beat"
        dut._log.info("frame periods %s (ideal %d), latency %d", spacing, period, lat)
    dut._log.info("%d frames, %d beats checked (%d x %d windows)", frames, total, oh, ow)


@cocotb.test()
async def swg_survives_long_stalls_and_a_reset_mid_frame(dut) -> None:
    """Output words: TAPS * ELEMS window elements each, in im2col order (bipolar as 2-bit
    two's complement -1/+1)."""
    case = unit_case()
    p = case["params"]
    images, codes = random_images(case)
    flat = np.stack([windows(img, p) for img in images]).reshape(-1, p["TAPS"] * p["ELEMS"])
    await reset(dut)
    await stalls_and_reset_mid_frame(
        dut,
        {"s_axis": [pack(list(chunk), p["EBITS"]) for chunk in codes.reshape(-1, p["ELEMS"])]},
        {"m_axis": [pack(list(beat), p["OBITS"]) for beat in flat]},
        frames=len(images),
        stalls=Stalls.from_case(case),
        seed=case.get("seed", 0),
        reset_mid_frame=case["reset_mid_frame"],
    )
