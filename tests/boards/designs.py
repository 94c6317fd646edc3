"""The digits MLP (w2a2) the board tests build: trained briefly, lowered, generated as Verilog.

Training for two epochs is enough: the tests check that the hardware equals golden
integer for integer, which holds for any weights; accuracy is not what they measure.
"""

from __future__ import annotations

from pathlib import Path

from hw_gen.passes import lower
from hw_gen.verilog.emit import generate_verilog
from qfab.ir import Graph
from quant_train.export_ir import export_model
from quant_train.models import QuantMLP
from quant_train.train import TrainSettings, seed_everything, train_classifier

#: the demo's network (examples/digits_mlp.yaml): 64 -> 64 -> 64 -> 10, 2-bit weights
#: and activations, 8-bit inputs
HIDDEN = [64, 64]


def digits_mlp_w2a2(digits, out_dir: Path, *, target_cycles: int, clock_mhz: float) -> Graph:
    """Train, export and lower the MLP folded to ``target_cycles`` per frame; write its
    Verilog into ``out_dir``. Returns the model graph with its hardware graph attached."""
    seed_everything(0)
    model = QuantMLP(
        digits.features, HIDDEN, digits.classes, weight_bits=2, act_bits=2, input_bits=8
    )
    model = train_classifier(model, digits.x_train, digits.y_train, TrainSettings(epochs=2))
    graph = export_model(model)
    graph.lowered = lower(graph, target_cycles=target_cycles)
    generate_verilog(graph.lowered, out_dir, clock_mhz=clock_mhz)
    return graph


#: The folding the board tests use: 256 cycles per frame (fc0 and fc1 at PE=1, SIMD=16;
#: fc2 at PE=1, SIMD=4), the fastest power of two that fits the iCE40UP5K. Measured with
#: nextpnr (seed 1): 256 -> 2,876 of 5,280 logic cells and 20 of 30 block RAMs; 128 ->
#: 5,914 cells and 64 (the demo's) -> 9,284 cells do not fit.
ICE40_TARGET_CYCLES = 256


def edges(in_bits=8, out_features=10, out_bits=8, cycles=256) -> dict:
    """The manifest keys the UART wrapper and client read, for a design with these edges
    (64 unsigned inputs of scale 1/128, signed outputs, dequantized by 1/4)."""
    return {
        "input": {
            "element": {"bits": in_bits, "signed": False, "bipolar": False},
            "features": 64,
            "elems_per_beat": 8,
            "beats_per_frame": 8,
            "tdata_bits": 64,
            "scale": 1 / 128,
            "signed_input": False,
        },
        "output": {
            "element": {"bits": out_bits, "signed": True, "bipolar": False},
            "features": out_features,
            "elems_per_beat": out_features,
            "beats_per_frame": 1,
            "tdata_bits": -(-out_features * out_bits // 8) * 8,
            "dequant": {"scale": [0.25] * out_features, "bias": [0.0] * out_features},
        },
        "perf": {"cycles_per_frame": cycles},
    }
