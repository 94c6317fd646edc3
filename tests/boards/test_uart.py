"""The UART-wrapped digits MLP (w2a2) equals golden on every vector, bytes in and bytes out.

The design is the one the iCE40 test builds (same training, same folding), wrapped as
``qfab_uart_top`` with 4 clocks per bit so that Icarus gets through 60 frames quickly.
Frames are encoded and replies decoded by the host client's own functions
(:mod:`boards.uart_client`); only the serial port is replaced by the simulated line.
Every output integer and every class must equal golden's; the first difference is named.

A second, faster test puts a small stand-in accelerator behind the same wrapper (each
output element = input element * a constant, one beat in, one beat out) to reach the
edges the MLP does not have: one element per input beat, padded TDATA, signed inputs,
outputs of two bytes (sign- and zero-extended), ties for the class at every position,
an accelerator much slower than the line (it refuses input for longer than a beat takes
to arrive), the reset button pressed in the middle of a frame, a truncated frame followed
by a pause longer than the idle timeout (resynchronization: the frames after it are
answered right), and a pause inside a frame shorter than the timeout (the frame is kept).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from boards.uart_client import element_of, element_range, input_node, load_manifest
from boards.uart_design import write_uart_design
from qfab.golden import quantize_input
from tests.boards.designs import ICE40_TARGET_CYCLES, digits_mlp_w2a2
from tests.boards.uart_sim import (
    assert_classes_and_outputs,
    assert_uart_equals_golden,
    simulate_uart,
)
from tests.rtl.harness import assert_lint_clean

pytestmark = pytest.mark.slow

VECTORS = 60
CLKS_PER_BIT = 4


def test_uart_wrapped_mlp_equals_golden_on_every_vector(tmp_path, digits):
    graph = digits_mlp_w2a2(
        digits, tmp_path / "design", target_cycles=ICE40_TARGET_CYCLES, clock_mhz=12.0
    )
    uart = write_uart_design(
        tmp_path / "design", tmp_path / "uart", clock_mhz=12.0, clks=CLKS_PER_BIT
    )
    manifest = load_manifest(tmp_path / "uart")
    sources = [tmp_path / "uart" / s for s in uart["sources"]]
    assert_lint_clean(sources, uart["top"], {})

    x = digits.x_test[:VECTORS]
    x_int = quantize_input(graph.nodes[0], x)
    # the client quantizes from the manifest exactly as golden does from the IR
    np.testing.assert_array_equal(quantize_input(input_node(manifest), x), x_int)
    classes, outputs = simulate_uart(
        tmp_path,
        manifest,
        sources,
        x_int,
        clks_per_bit=CLKS_PER_BIT,
        compute_cycles=4 * int(manifest["perf"]["cycles_per_frame"]) + 2000,
    )
    assert_uart_equals_golden(graph, x_int, classes, outputs)


def echo_design(
    folder: Path,
    *,
    stall: int,
    elems: int,
    beats: int,
    in_bits: int,
    in_signed: bool,
    out_bits: int,
    out_signed: bool,
    factor: int,
) -> dict:
    """A stand-in ``qfab_top`` (output element k = input element k * ``factor``, one
    register stage with backpressure, ``tlast`` every ``beats`` beats) and its manifest.
    After each input beat it refuses input for ``stall`` cycles, like a heavily folded
    accelerator computing: the wrapper must lose no byte meanwhile."""
    in_w, out_w = -(-elems * in_bits // 8) * 8, -(-elems * out_bits // 8) * 8
    cast = "$signed" if in_signed else ""
    kind = "signed " if out_signed else ""
    products = "\n".join(
        f"    wire {kind}[{out_bits - 1}:0] o{k} = "
        f"{cast}(s_axis_tdata[{(k + 1) * in_bits - 1}:{k * in_bits}]) * {factor};"
        for k in range(elems)
    )
    packed = ", ".join(f"o{k}" for k in reversed(range(elems)))
    pad = out_w - elems * out_bits
    packed = f"{{{pad}'d0, {packed}}}" if pad else f"{{{packed}}}"
    verilog = f"""`timescale 1ns/1ps
module qfab_top (
    input wire ap_clk, input wire ap_rst_n,
    input wire [{in_w - 1}:0] s_axis_tdata, input wire s_axis_tvalid,
    output wire s_axis_tready,
    output reg [{out_w - 1}:0] m_axis_tdata, output reg m_axis_tvalid,
    input wire m_axis_tready, output wire m_axis_tlast
);
{products}
    reg [7:0] beat;
    reg [15:0] busy;
    assign s_axis_tready = (!m_axis_tvalid || m_axis_tready) && busy == 16'd0;
    assign m_axis_tlast = beat == {beats - 1};
    always @(posedge ap_clk) begin
        if (!ap_rst_n) begin
            m_axis_tvalid <= 1'b0;
            beat <= 8'd0;
            busy <= 16'd0;
        end else begin
            if (busy != 16'd0) busy <= busy - 16'd1;
            if (m_axis_tvalid && m_axis_tready) beat <= m_axis_tlast ? 8'd0 : beat + 8'd1;
            if (s_axis_tvalid && s_axis_tready) begin
                m_axis_tdata <= {packed};
                m_axis_tvalid <= 1'b1;
                busy <= 16'd{stall};
            end else if (m_axis_tready) begin
                m_axis_tvalid <= 1'b0;
            end
        end
    end
endmodule
"""
    features = elems * beats
    manifest = {
        "top": "qfab_top",
        "sources": ["qfab_top.v"],
        "input": {
            "element": {"bits": in_bits, "signed": in_signed, "bipolar": False},
            "features": features,
            "elems_per_beat": elems,
            "beats_per_frame": beats,
            "tdata_bits": in_w,
            "scale": 1.0,
            "signed_input": in_signed,
        },
        "output": {
            "element": {"bits": out_bits, "signed": out_signed, "bipolar": False},
            "features": features,
            "elems_per_beat": elems,
            "beats_per_frame": beats,
            "tdata_bits": out_w,
            "dequant": {"scale": [1.0] * features, "bias": [0.0] * features},
        },
        "perf": {"cycles_per_frame": beats * (stall + 1)},
    }
    folder.mkdir(parents=True)
    (folder / "qfab_top.v").write_text(verilog)
    (folder / "design.json").write_text(json.dumps(manifest))
    return manifest


def tie_vectors(lo: int, hi: int, features: int, seed: int) -> np.ndarray:
    """Frames whose maximum is tied at every pair of positions, plus all-equal frames,
    extreme values and random ones."""
    rng = np.random.default_rng(seed)
    rows = [np.full(features, lo), np.full(features, hi)]
    for first in range(features):
        row = rng.integers(lo, hi, size=features)  # below hi: hi only where placed
        row[first] = row[(first + 5) % features] = hi
        rows.append(row)
    rows += list(rng.integers(lo, hi + 1, size=(8, features)))
    return np.array(rows, dtype=np.int64)


ECHO_CASES = {
    # 4 signed 5-bit inputs per beat (20 of 24 TDATA bits), 15-bit signed outputs
    # (60 of 64 bits) sign-extended to 2 bytes, 3 beats a frame; a beat takes 160 cycles
    # on the line and 500 to compute
    "signed": dict(
        elems=4,
        beats=3,
        in_bits=5,
        in_signed=True,
        out_bits=15,
        out_signed=True,
        factor=1000,
        stall=500,
    ),
    # one unsigned 3-bit input per beat, 9-bit unsigned outputs zero-extended to 2 bytes;
    # 40 cycles on the line, 100 to compute
    "unsigned": dict(
        elems=1,
        beats=12,
        in_bits=3,
        in_signed=False,
        out_bits=9,
        out_signed=False,
        factor=50,
        stall=100,
    ),
}


@pytest.mark.parametrize("name", sorted(ECHO_CASES))
def test_uart_wrapper_edges_ties_reset_button_and_idle_timeout(tmp_path, name):
    case = ECHO_CASES[name]
    manifest = echo_design(tmp_path / "design", **case)
    uart = write_uart_design(tmp_path / "design", tmp_path / "uart", clock_mhz=12.0, clks=4)
    lo, hi = element_range(element_of(manifest["input"]))
    x_int = tie_vectors(lo, hi, manifest["input"]["features"], seed=len(name))
    classes, outputs = simulate_uart(
        tmp_path,
        manifest,
        [tmp_path / "uart" / s for s in uart["sources"]],
        x_int,
        clks_per_bit=4,
        compute_cycles=2 * int(manifest["perf"]["cycles_per_frame"]) + 200,
        partial_bytes=manifest["input"]["features"] // 2 + 1,
        # a truncated frame (whole beats and a partial one), then a pause past the idle
        # timeout: it must be discarded, beats and all
        truncated_bytes=manifest["input"]["features"] // 2 + 1,
        idle_timeout_bits=uart["idle_timeout_bits"],
        # a pause inside a frame shorter than the timeout (the byte gap is the pause plus
        # the byte's 10 bits): the frame must be kept
        short_pause_bits=uart["idle_timeout_bits"] - 15,
    )
    assert_classes_and_outputs(x_int * case["factor"], classes, outputs)
