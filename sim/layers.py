"""Per hardware unit: its modelled cycles, the cycles measured at its output, its resources.

What "measured" means here. The bench records the clock cycle of every handshake on each
unit's output stream (``n_<node>`` in the top), in the same run that checks the results
(no second simulation). A frame is complete at a unit's output when its last beat is
accepted; the unit's measured cycles per frame are the mean spacing of those completions
over the last quarter of the frames (:func:`steady_cycles_per_frame`, the formula of the
design's own measurement at ``m_axis``, which takes the second half), without
backpressure only. The later window is needed because a unit before the bottleneck runs
at its own pace until the buffers between it and the bottleneck are full, which takes
many frames (13 of 24 for the first sliding window of the lenet-like test design: frame
spacings 36, ..., 36, 37, 40, 40, ...); at ``m_axis`` the pipeline fills in a frame or two.

That is the steady-state rate AT that point of the pipeline, not the unit's own capacity:
with finite FIFOs every stream of a running dataflow pipeline carries frames at the same
rate, the bottleneck's, so a fast unit fed by a slow one (or blocked by a slow consumer)
shows the slow unit's rate. The table therefore stores it as
``cycles_measured_at_output`` beside the unit's own modelled ``cycles_model``; the two
agree at the bottleneck, and everywhere else the measured value is the bottleneck's.

The same monitor also counts, per output stream, the cycles it was blocked (tvalid high,
tready low: the unit had a beat and its consumer refused it). Taking those out of the
spacing gives ``cycles_unblocked_at_output``: the cycles per frame the unit was not held
back by its consumer. It estimates the unit's own pace, but is no bound either way: it
still counts cycles the unit waited for input (too high: downstream of the bottleneck,
or behind a producer that delivers in bursts, e.g. a width converter behind an MVAU),
and it drops cycles the unit kept working while its output was blocked (too low: a unit
with internal buffering, e.g. a max pool still taking in rows). On the lenet-like test
design (bottleneck fc2, 40 cycles) it equals the model's cycles for 5 of 7 units, while
every unit's measured-at-output value is 40 (tests/sim/test_layer_cycles.py).

Resources come from :func:`hw_gen.synth_yosys.synth_xilinx` with ``per_unit=True``
(passed in as its plain result dict, so this module does not import ``hw_gen``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from qfab.ir import Graph, beat_elems, infer_shapes

#: nodes that are the design's edges, not units of the top
EDGE_OPS = ("InputQuant", "OutputDequant")
#: units whose output stream is a vector of handshakes (one per reader): not timed
UNTIMED_OPS = ("Fork",)
RESOURCE_KEYS = ("LUT", "FF", "BRAM36", "DSP")
#: share of the frames left out before timing a unit's output (see the module docstring)
LATE = 0.75


def steady_cycles_per_frame(
    done: Sequence[int], blocked: Sequence[int] | None = None, *, fill: float = 0.5
) -> float | None:
    """Mean spacing of frame completions ``done`` (cycles, ascending) in steady state.

    The first ``fill`` share of the frames covers the pipeline filling (with 6 frames or
    more; with 3 to 5 only the first is left out); fewer than 3 frames give ``None``.
    ``blocked`` (the stream's blocked cycles counted up to each completion) takes the
    cycles the stream was blocked within that window out of the spacing.
    """
    if len(done) < 3:
        return None
    start = min(int(len(done) * fill), len(done) - 1) if len(done) >= 6 else 1
    span = done[-1] - done[start - 1]
    if blocked is not None:
        span -= blocked[-1] - blocked[start - 1]
    return span / (len(done) - start)


#: the two measurements of a unit's output, as keys of the rates and of the table's rows
RATE_KEYS = ("cycles_measured_at_output", "cycles_unblocked_at_output")


def cycles_at_outputs(
    hw: Graph, handshakes: dict[str, np.ndarray]
) -> dict[str, dict[str, float | None]]:
    """Measured cycles per frame at each timed unit's output (see the module docstring):
    unit -> {``cycles_measured_at_output``, ``cycles_unblocked_at_output``}, plain
    floats, so the simulation stage can store them in its JSON part for
    :func:`layer_table` to read later.

    ``handshakes`` is :attr:`sim.runner.SimResult.unit_handshakes` (unit -> per output
    handshake: its cycle, the stream's blocked cycles before it); beats per frame come
    from the hardware graph's own shapes; a partial last frame is not counted, and only
    the last quarter of the frames is timed (``LATE``).
    """
    shapes = infer_shapes(hw, "hardware graph")
    rates: dict[str, dict[str, float | None]] = {}
    for name, table in handshakes.items():
        beats = int(np.prod(shapes[name])) // int(beat_elems(hw.node(name)) or 1)
        last_beats = np.asarray(table, dtype=np.int64).reshape(-1, 2)[beats - 1 :: beats]
        done, blocked = last_beats[:, 0].tolist(), last_beats[:, 1].tolist()
        rates[name] = dict(
            zip(
                RATE_KEYS,
                (
                    steady_cycles_per_frame(done, fill=LATE),
                    steady_cycles_per_frame(done, blocked, fill=LATE),
                ),
                strict=True,
            )
        )
    return rates


def layer_table(
    hw: Graph,
    rates: dict[str, dict[str, float | None]] | None = None,
    synth_result: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One row per unit of the generated top (every node of the lowered graph ``hw`` but
    its input and output edges), in graph order, for ``report["layers"]``.

    Rows: ``unit``, ``op``, ``model_node``, ``cycles_model`` (the node's ``cycles``
    attribute), ``cycles_measured_at_output`` and ``cycles_unblocked_at_output`` (from
    ``rates``, :func:`cycles_at_outputs`' result; see the module docstring; ``None``
    without a simulation, with backpressure, for a Fork, or with fewer than 3 frames),
    and ``LUT``, ``FF``, ``BRAM36``, ``DSP``, ``LUTRAM`` of the unit's instance (``None``
    without a per-unit synthesis). Width converters, FIFOs and forks are listed too:
    they cost resources, and only with them do the rows add up to the design's totals
    (minus the top's own glue, ``synth_result["top_glue"]``). ``synth_result`` is the
    dict ``hw_gen.synth_yosys.synth_xilinx(..., per_unit=True)`` returns. Both are plain
    dicts, so the report stage can build the table from the stages' stored parts.
    """
    rates = rates or {}
    units = (synth_result or {}).get("units") or {}
    rows = []
    for node in hw.nodes:
        if node.op in EDGE_OPS:
            continue
        res = units.get(node.name)
        cycles = node.attrs.get("cycles")
        measured = rates.get(node.name) or {}
        rows.append(
            {
                "unit": node.name,
                "op": node.op,
                "model_node": node.attrs.get("model_node"),
                "cycles_model": None if cycles is None else int(cycles),
                **{k: measured.get(k) for k in RATE_KEYS},
                **{k: None if res is None else int(res[k]) for k in (*RESOURCE_KEYS, "LUTRAM")},
            }
        )
    return rows
