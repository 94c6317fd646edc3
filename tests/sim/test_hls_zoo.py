"""Level 3 on the model zoo: the HLS design's C simulation == golden, every vector and
every tapped layer, for the MLP at 1, 2, 4 and 8 bits, LeNet-5, CNV (XNOR-popcount) and
the compact nets (MobileNet-, ShuffleNet- and SqueezeNet-like), each trained one epoch on
digits by the project's own QAT, exported, lowered with the automatic folding and run on
the extreme vectors plus 60 test vectors."""

from __future__ import annotations

import numpy as np
import pytest

from hw_gen.hls.emit import generate_hls
from hw_gen.passes import lower
from qfab.extremes import extreme_vectors
from qfab.golden import quantize_input
from quant_train.export_ir import export_model
from quant_train.train import TrainSettings, seed_everything, train_classifier
from quant_train.zoo import build_model
from sim.compare import compare_rtl_to_golden
from sim.csim import run_csim

pytestmark = pytest.mark.slow

ZOO = [
    ("mlp", 1, 1),
    ("mlp", 2, 2),
    ("mlp", 4, 4),
    ("mlp", 8, 8),
    ("lenet5", 4, 4),
    ("cnv", 1, 1),
    ("mobilenet", 4, 4),
    ("shufflenet", 2, 2),
    ("squeezenet", 4, 4),
]


@pytest.mark.parametrize(("arch", "wb", "ab"), ZOO, ids=[f"{a}-w{w}a{b}" for a, w, b in ZOO])
def test_zoo_model_hls_csim_equals_golden(digits, tmp_path, arch, wb, ab):
    seed_everything(0)
    shape = (64,) if arch == "mlp" else digits.image_shape
    model = build_model(arch, shape, 10, weight_bits=wb, act_bits=ab)
    train_classifier(model, digits.x_train, digits.y_train, TrainSettings(epochs=1))
    graph = export_model(model)
    graph.lowered = lower(graph)
    x = np.concatenate(
        [extreme_vectors(graph).vectors, quantize_input(graph.nodes[0], digits.x_test[:60])]
    )
    info = generate_hls(graph.lowered, tmp_path / "hls")
    result, times = run_csim(tmp_path / "hls", x, build_dir=tmp_path / "build")
    taps = [t["model_node"] for t in info["taps"]]
    eq = compare_rtl_to_golden(graph, x, result, info["output"]["model_node"], taps, what="HLS")
    assert eq["vectors"] == len(x) > 60
    assert eq["mismatches"] == 0, eq["first_mismatch"]
    # every activation of the model was compared, not only the output (a Dense/Conv2d
    # fused with its thresholds is one unit, tapped at the thresholds' node)
    assert set(result.taps) == set(taps)
    assert {n.name for n in graph.nodes if n.op == "MultiThreshold"} <= set(taps)
    assert times.compile_s > 0
