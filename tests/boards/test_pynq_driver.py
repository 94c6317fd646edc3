"""The PYNQ driver: packing, quantization and dequantization equal qfab's own, and the
unchanged driver on the simulated board (stand-in ``pynq`` + RTL in Icarus) returns
golden's integers and logits."""

from __future__ import annotations

import numpy as np
import pytest

from boards.pynq_driver import Accelerator, StreamFormat, dequantize, dma_stream_bits, quantize
from boards.simulated_board import SimulatedBoard
from hw_gen.passes import lower
from hw_gen.verilog.emit import generate_verilog
from qfab.elements import pack_beats
from qfab.golden import hardware_output, quantize_input, run_golden, run_golden_int
from qfab.ir import Graph
from qfab.values import Element
from sim.runner import run_cocotb
from tests.hw_gen.designs import DESIGNS


def port(bits: int, signed: bool, bipolar: bool, elems: int, beats: int) -> dict:
    return {
        "element": {"bits": bits, "signed": signed, "bipolar": bipolar},
        "elems_per_beat": elems,
        "beats_per_frame": beats,
        "features": elems * beats,
        "tdata_bits": -(-(elems * bits) // 8) * 8,
    }


@pytest.mark.parametrize(
    "bits,signed,bipolar,elems,beats",
    [
        (4, False, False, 6, 4),
        (3, True, False, 5, 3),
        (1, True, True, 16, 2),
        (13, True, False, 3, 2),
    ],
)
def test_pack_equals_qfab_beats_and_unpack_inverts_it(bits, signed, bipolar, elems, beats):
    fmt = StreamFormat(port(bits, signed, bipolar, elems, beats))
    el = Element(bits, signed, bipolar)
    rng = np.random.default_rng(bits)
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    x = (
        rng.choice([-1, 1], (60, elems * beats))
        if bipolar
        else rng.integers(lo, hi + 1, (60, elems * beats))
    )
    packed = fmt.pack(x)
    assert packed.shape == (60, beats * dma_stream_bits(fmt.tdata_bits) // 8)
    words = [int.from_bytes(bytes(b), "little") for b in packed.reshape(-1, fmt.beat_bytes)]
    assert words == pack_beats(el.encode(x), elems, bits)  # qfab's own packing, bit for bit
    assert np.array_equal(fmt.unpack(packed), x)


def test_dma_widths_are_powers_of_two_bytes():
    assert [dma_stream_bits(b) for b in (8, 16, 24, 40, 64, 72, 512)] == [
        8,
        16,
        32,
        64,
        64,
        128,
        512,
    ]
    with pytest.raises(ValueError, match="1024"):
        dma_stream_bits(1032)


def test_quantize_and_dequantize_equal_golden():
    g, _ = DESIGNS["mlp_signed"]()
    first = g.nodes[0]
    rng = np.random.default_rng(0)
    scale = float(first.attrs["scale"])
    x = rng.normal(0, 20 * scale, (200, int(first.attrs["features"]))).astype(np.float32)
    x[:50] = np.round(x[:50] / scale * 2) / 2 * scale  # ties: round half to even
    q = quantize(x, scale, int(first.attrs["bits"]), bool(first.attrs["signed"]))
    assert np.array_equal(q, quantize_input(first, x))
    gold = run_golden(g, x)
    out = g.nodes[-1]
    acc = gold.outputs[hardware_output(g).name]
    logits = dequantize(acc, out.tensors["scale"].tolist(), out.tensors["bias"].tolist())
    assert logits.dtype == np.float32 and np.array_equal(logits, gold.logits)


def simulated_design(name: str, tmp_path) -> tuple[Graph, Graph]:
    g, kw = DESIGNS[name]()
    hw = lower(g, **kw)
    generate_verilog(hw, tmp_path / "rtl")
    return g, hw


def golden_vectors(g: Graph, n: int, seed: int) -> np.ndarray:
    first = g.nodes[0]
    lo, hi = (0, 2 ** int(first.attrs["bits"]) - 1)
    if first.attrs["signed"]:
        lo, hi = -(hi + 1) // 2, hi // 2
    rng = np.random.default_rng(seed)
    return rng.integers(lo, hi + 1, (n, int(first.attrs["features"])))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mlp_dwc", "lenet_like"])
def test_driver_on_simulated_board_returns_golden(name, tmp_path):
    g, _ = simulated_design(name, tmp_path)
    x_int = golden_vectors(g, 60, seed=7)
    scale = np.float32(g.nodes[0].attrs["scale"])
    x = x_int.astype(np.float32) * scale  # floats that quantize back to x_int
    gold = run_golden(g, x)
    expected = gold.outputs[hardware_output(g).name]
    with SimulatedBoard(tmp_path / "rtl", run_cocotb, tmp_path / "sim") as board:
        acc = Accelerator(board.bitfile)
        assert np.array_equal(acc.quantize(x), x_int)
        got = acc.predict_int(x_int)
        bad = [tuple(i) for i in np.argwhere(got != expected)]
        assert not bad, f"vector, output {bad[0]}: {got[bad[0]]} != golden {expected[bad[0]]}"
        logits = acc.predict(x)
        assert np.array_equal(logits, gold.logits)
        assert np.array_equal(acc.classify(x), gold.prediction)
        assert board.runs == 3  # one simulation per batch: the driver sent one MM2S transfer
        sent = board.sent_beats[: len(board.sent_beats) // 3]
        fmt = acc.input
        el = Element(fmt.bits, fmt.signed, fmt.bipolar)
        assert sent == pack_beats(el.encode(x_int), fmt.elems_per_beat, fmt.bits)
        stats = acc.throughput(8)
        assert stats["frames"] == 8 and stats["frames_per_s"] > 0


@pytest.mark.slow
def test_stand_in_dma_catches_a_driver_that_skips_flush(tmp_path, monkeypatch):
    g, _ = simulated_design("mlp_dwc", tmp_path)
    x_int = golden_vectors(g, 4, seed=1)
    expected = run_golden_int(g, x_int).outputs[hardware_output(g).name]
    with SimulatedBoard(tmp_path / "rtl", run_cocotb, tmp_path / "sim") as board:
        acc = Accelerator(board.bitfile)
        acc._buffers(len(x_int))
        monkeypatch.setattr(type(acc._send), "flush", lambda self: None)
        got = acc.predict_int(x_int)  # the DMA reads the 0xA5 fill, not the inputs
        assert not np.array_equal(got, expected)
