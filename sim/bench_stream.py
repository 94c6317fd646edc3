"""cocotb bench for a generated design: stream vectors in, record every output and tap beat.

What to drive and watch comes from the design's manifest (``design.json``, via the
stimulus file :func:`sim.runner.run_cocotb` writes): the input and output ports, their
beats per frame, and the tap streams (each hardware node that equals a model-graph
node), by the signal names the manifest gives. Driven with cocotbext-axi
(``AxiStreamSource``/``AxiStreamSink``, one "byte lane" per beat so any width works).
With backpressure, the source leaves random gaps in tvalid and the sink drops tready at
random. One monitor coroutine samples the output and every tap handshake each clock;
it also checks ``tlast`` (high exactly on each frame's last output beat). The
steady-state cycles per frame are the mean spacing between the completions of the
frames in the second half of the run (the first half covers pipeline fill), measured
only without backpressure. The same monitor notes the cycle of every handshake on each
tap and on each further "timed" unit output (valid and ready only), from which
:mod:`sim.layers` measures the rate at every unit's output in this same run.
"""

from __future__ import annotations

import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout
from cocotb.utils import get_sim_time
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

from sim.layers import steady_cycles_per_frame


def random_pauses(seed: int, busy: float):
    rng = random.Random(seed)
    while True:
        yield rng.random() < busy


@cocotb.test()
async def stream_vectors(dut) -> None:
    stim = np.load(os.environ["QFAB_SIM_STIMULUS"])
    results_path = os.environ["QFAB_SIM_RESULTS"]
    plan = json.loads(str(stim["plan"]))
    beats_in = [int(b) for b in stim["beats"]]
    frames = int(plan["frames"])
    beats_out = int(plan["beats_out"])
    backpressure = bool(plan["backpressure"])
    seed = int(plan["seed"])
    clock = getattr(dut, plan["clock"])
    reset = getattr(dut, plan["reset"])

    cocotb.start_soon(Clock(clock, 10, unit="ns").start())
    source = AxiStreamSource(
        AxiStreamBus.from_prefix(dut, plan["input_port"]),
        clock,
        reset,
        reset_active_level=False,
        byte_lanes=1,
    )
    sink = AxiStreamSink(
        AxiStreamBus.from_prefix(dut, plan["output_port"]),
        clock,
        reset,
        reset_active_level=False,
        byte_lanes=1,
    )
    if backpressure:
        source.set_pause_generator(random_pauses(seed, 0.3))
        sink.set_pause_generator(random_pauses(seed + 1, 0.4))
    reset.value = 0
    await ClockCycles(clock, 5)
    reset.value = 1
    await ClockCycles(clock, 2)

    out_data = getattr(dut, f"{plan['output_port']}_tdata")
    out_valid = getattr(dut, f"{plan['output_port']}_tvalid")
    out_ready = getattr(dut, f"{plan['output_port']}_tready")
    out_last = getattr(dut, f"{plan['output_port']}_tlast")
    seen: list[tuple[int, int]] = []
    bad_last: list[int] = []
    expected = frames * beats_out
    taps = [
        (getattr(dut, f"{s}_tdata"), getattr(dut, f"{s}_tvalid"), getattr(dut, f"{s}_tready"))
        for s in plan["taps"]
    ]
    tapped: list[list[int]] = [[] for _ in taps]
    timed = [
        (getattr(dut, f"{s}_tvalid"), getattr(dut, f"{s}_tready")) for s in plan.get("timed", [])
    ]
    # per tap, then per timed stream: the cycle of each handshake, and how many cycles the
    # stream had been blocked (valid without ready) before it
    stream_at: list[list[int]] = [[] for _ in range(len(taps) + len(timed))]
    stream_blocked: list[list[int]] = [[] for _ in stream_at]
    blocked = [0] * len(stream_at)

    want_taps = [int(n) for n in plan.get("tap_beats", [])]
    drain = int(plan.get("drain_cycles", 0))

    def busy(after_output: int) -> bool:
        """Output incomplete, or a tap still short of its beats (a pool or stride drops the
        last rows, so the output can finish before an inner stream does)."""
        if len(seen) < expected:
            return True
        short = any(len(s) < n for s, n in zip(tapped, want_taps, strict=False))
        return short and after_output < drain

    async def monitor() -> None:
        cycle = 0
        finished = 0
        while busy(cycle - finished if finished else 0):
            await RisingEdge(clock)
            cycle += 1
            if int(out_valid.value) and int(out_ready.value):
                seen.append((cycle, int(out_data.value)))
                if int(out_last.value) != (len(seen) % beats_out == 0):
                    bad_last.append(len(seen) - 1)
            for i, (data, valid, ready) in enumerate(taps):
                if int(valid.value):
                    if int(ready.value):
                        tapped[i].append(int(data.value))
                        stream_at[i].append(cycle)
                        stream_blocked[i].append(blocked[i])
                    else:
                        blocked[i] += 1
            for i, (valid, ready) in enumerate(timed, start=len(taps)):
                if int(valid.value):
                    if int(ready.value):
                        stream_at[i].append(cycle)
                        stream_blocked[i].append(blocked[i])
                    else:
                        blocked[i] += 1
            if not finished and len(seen) >= expected:
                finished = cycle

    # FIFO sizing: handshake cycles on both sides of each listed unit instance
    def ports(inst: str, side: str):
        unit = getattr(dut, inst)
        return getattr(unit, f"{side}_axis_tvalid"), getattr(unit, f"{side}_axis_tready")

    watched = [(ports(i, "s"), ports(i, "m")) for i in plan.get("watch", [])]
    flows: list[tuple[list[int], list[int]]] = [([], []) for _ in watched]

    async def count_flows() -> None:
        cycle = 0
        while len(seen) < expected:
            await RisingEdge(clock)
            cycle += 1
            for ((iv, ir), (ov, orr)), (ins, outs) in zip(watched, flows, strict=True):
                if int(iv.value) and int(ir.value):
                    ins.append(cycle)
                if int(ov.value) and int(orr.value):
                    outs.append(cycle)

    if watched:
        cocotb.start_soon(count_flows())
    watch = cocotb.start_soon(monitor())
    interval = int(plan.get("frame_interval", 0))
    if interval:  # one frame every `interval` cycles: the pipeline's steady operating point
        per_frame = len(beats_in) // frames
        for f in range(frames):
            start = get_sim_time(unit="ns")
            await source.send(AxiStreamFrame(beats_in[f * per_frame : (f + 1) * per_frame]))
            await source.wait()
            spent = int((get_sim_time(unit="ns") - start) // 10)
            if spent < interval:
                await ClockCycles(clock, interval - spent)
    else:
        await source.send(AxiStreamFrame(beats_in))
    budget = int(plan["budget_cycles"])
    error = ""
    try:
        await with_timeout(watch, budget * 10, "ns")
    except Exception as exc:  # a hang is reported as a result, not a crash
        error = f"timeout: {len(seen)} of {expected} output beats after {budget} cycles ({exc})"
    if bad_last and not error:
        error = f"tlast wrong on output beat {bad_last[0]} (beats per frame {beats_out})"
    done = [seen[(f + 1) * beats_out - 1][0] for f in range(len(seen) // beats_out)]
    first_in = 0
    steady = None if backpressure else steady_cycles_per_frame(done)
    cpf = -1.0 if steady is None else steady
    tap_beats = {f"tap{i}": np.array([str(v) for v in store]) for i, store in enumerate(tapped)}
    for i, (at, held) in enumerate(zip(stream_at, stream_blocked, strict=True)):
        tap_beats[f"stream{i}_at"] = np.array(at, dtype=np.int64)
        tap_beats[f"stream{i}_blocked"] = np.array(held, dtype=np.int64)
    for i, (ins, outs) in enumerate(flows):
        tap_beats[f"flow{i}_in"] = np.array(ins, dtype=np.int64)
        tap_beats[f"flow{i}_out"] = np.array(outs, dtype=np.int64)
    np.savez(
        results_path,
        beats=np.array([str(d) for _, d in seen]),
        cycles_per_frame=cpf,
        latency_cycles=(done[0] - first_in) if done else -1,
        total_cycles=seen[-1][0] if seen else 0,
        error=error,
        **tap_beats,
    )
    while not sink.empty():
        sink.recv_nowait()
