"""cocotb bench for a generated ``qfab_top``: stream vectors in, collect every output beat.

Driven with cocotbext-axi (``AxiStreamSource``/``AxiStreamSink``, one "byte lane" per
beat so any width works). With backpressure, the source leaves random gaps in tvalid and
the sink drops tready at random. A monitor on the output handshake records the clock
cycle of every accepted beat; the steady-state cycles per frame are the mean spacing
between the completions of the frames in the second half of the run (the first half
covers pipeline fill), measured only without backpressure.

Stimulus and results travel through the files named in ``QFAB_SIM_STIMULUS`` and
``QFAB_SIM_RESULTS`` (written by :func:`sim.runner.run_cocotb`).
"""

from __future__ import annotations

import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource


def random_pauses(seed: int, busy: float):
    rng = random.Random(seed)
    while True:
        yield rng.random() < busy


@cocotb.test()
async def stream_vectors(dut) -> None:
    stim = np.load(os.environ["QFAB_SIM_STIMULUS"])
    results_path = os.environ["QFAB_SIM_RESULTS"]
    beats_in = [int(b) for b in stim["beats"]]
    frames = int(stim["frames"])
    beats_out = int(stim["beats_out"])
    bound = int(stim["bound"])
    backpressure = bool(stim["backpressure"])
    seed = int(stim["seed"])

    cocotb.start_soon(Clock(dut.ap_clk, 10, unit="ns").start())
    source = AxiStreamSource(
        AxiStreamBus.from_prefix(dut, "s_axis"),
        dut.ap_clk,
        dut.ap_rst_n,
        reset_active_level=False,
        byte_lanes=1,
    )
    sink = AxiStreamSink(
        AxiStreamBus.from_prefix(dut, "m_axis"),
        dut.ap_clk,
        dut.ap_rst_n,
        reset_active_level=False,
        byte_lanes=1,
    )
    if backpressure:
        source.set_pause_generator(random_pauses(seed, 0.3))
        sink.set_pause_generator(random_pauses(seed + 1, 0.4))
    dut.ap_rst_n.value = 0
    await ClockCycles(dut.ap_clk, 5)
    dut.ap_rst_n.value = 1
    await ClockCycles(dut.ap_clk, 2)

    seen: list[tuple[int, int]] = []
    expected = frames * beats_out
    # every layer's output stream, so a mismatch can be traced to the first wrong layer
    taps = [
        (
            getattr(dut, f"l{i}_out_tdata"),
            getattr(dut, f"l{i}_out_tvalid"),
            getattr(dut, f"l{i}_out_tready"),
        )
        for i in range(int(stim["layers"]))
    ]
    tapped: list[list[int]] = [[] for _ in taps]

    async def monitor() -> None:
        cycle = 0
        while len(seen) < expected:
            await RisingEdge(dut.ap_clk)
            cycle += 1
            if int(dut.m_axis_tvalid.value) and int(dut.m_axis_tready.value):
                seen.append((cycle, int(dut.m_axis_tdata.value)))
            for (data, valid, ready), store in zip(taps, tapped, strict=True):
                if int(valid.value) and int(ready.value):
                    store.append(int(data.value))

    watch = cocotb.start_soon(monitor())
    await source.send(AxiStreamFrame(beats_in))
    budget = (
        (frames + 4) * (bound + len(beats_in) // max(1, frames) + 64) * (8 if backpressure else 2)
    )
    error = ""
    try:
        await with_timeout(watch, budget * 10, "ns")
    except Exception as exc:  # a hang is reported as a result, not a crash
        error = f"timeout: {len(seen)} of {expected} output beats after {budget} cycles ({exc})"
    done = [seen[(f + 1) * beats_out - 1][0] for f in range(len(seen) // beats_out)]
    cpf = -1.0
    if not backpressure and len(done) >= 3:
        start = len(done) // 2 if len(done) >= 6 else 1
        cpf = (done[-1] - done[start - 1]) / (len(done) - start)
    layer_beats = {f"layer{i}": np.array([str(v) for v in store]) for i, store in enumerate(tapped)}
    np.savez(
        results_path,
        beats=np.array([str(d) for _, d in seen]),
        cycles_per_frame=cpf,
        total_cycles=seen[-1][0] if seen else 0,
        error=error,
        **layer_beats,
    )
    while not sink.empty():
        sink.recv_nowait()
