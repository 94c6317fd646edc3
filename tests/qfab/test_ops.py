"""The op registry: typed attrs, strict tensors, safe names, two levels in one file."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from hw_gen.passes import lower
from qfab.errors import IRError
from qfab.golden import compare_levels, run_golden_int
from qfab.ir import Graph, Node
from qfab.ops import OPS
from qfab.random_graph import random_mlp_graph


def mlp() -> Graph:
    return random_mlp_graph(16, [8], 4, weight_bits=4, act_bits=2, seed=1)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        # unknown and mistyped attrs are errors, not silently ignored or coerced
        (lambda g: g.node("fc0").attrs.update(weight_bitz=4), "unknown attr 'weight_bitz'"),
        (lambda g: g.node("mt0").attrs.update(out_bits="2"), "attr 'out_bits' = '2'"),
        (lambda g: g.node("mt0").attrs.update(bipolar=1), "attr 'bipolar' = 1"),
        (lambda g: g.node("input").attrs.update(signed="no"), "attr 'signed' = 'no'"),
        # a float bias would be truncated by integer golden: refused
        (
            lambda g: g.node("fc1").tensors.update(bias=np.full(4, 0.5, np.float32)),
            "tensor 'bias' must hold int values, got float32",
        ),
        (lambda g: g.node("fc1").tensors.update(extra=np.zeros(3)), "unexpected tensors"),
        # names become Verilog identifiers
        (lambda g: setattr(g.node("fc0"), "name", "block.0"), "node name 'block.0'"),
        (lambda g: setattr(g.node("fc0"), "name", "0fc"), "node name '0fc'"),
        # hardware ops belong to the hardware graph only
        (lambda g: setattr(g.node("fc0"), "op", "MVAU"), "op not allowed in a model graph"),
    ],
)
def test_validate_names_the_node_and_what_is_wrong(mutate, message):
    g = mlp()
    mutate(g)
    with pytest.raises(IRError, match=message.replace("(", r"\(").replace(")", r"\)")):
        g.validate()


def test_every_op_declares_its_schema_and_behaviour():
    for name, op in OPS.items():
        assert op.name == name and op.level in ("model", "hardware", "both")
        for method in ("shape", "value_range", "execute"):
            assert getattr(type(op), method) is not getattr(type(op).__mro__[-2], method), (
                f"{name} does not implement {method}"
            )


def test_lowered_graph_round_trips_in_the_same_file(tmp_path):
    g = mlp()
    g.lowered = lower(g, target_cycles=8)
    loaded = Graph.load(g.save(tmp_path / "m.qfab.npz"))
    assert loaded.lowered is not None
    assert [n.op for n in loaded.lowered.nodes] == [n.op for n in g.lowered.nodes]
    for a, b in zip(g.lowered.nodes, loaded.lowered.nodes, strict=True):
        assert a.attrs == b.attrs
        for k in a.tensors:
            np.testing.assert_array_equal(a.tensors[k], b.tensors[k])
    x = np.random.default_rng(0).integers(0, 256, size=(20, 16))
    assert compare_levels(loaded, loaded.lowered, x) is None


def test_a_tampered_hardware_graph_is_refused_by_name(tmp_path):
    g = mlp()
    g.lowered = lower(g, target_cycles=8)
    bad = copy.deepcopy(g)
    bad.lowered.node("fc0").attrs["cycles"] += 1
    with pytest.raises(IRError, match="node 'fc0' \\(MVAU\\): cycles = .* disagrees"):
        bad.validate()
    bad = copy.deepcopy(g)
    bad.lowered.node("fc0").attrs["pe"] = 3
    with pytest.raises(IRError, match="PE = 3 must divide MH = 8"):
        bad.validate()
    bad = copy.deepcopy(g)
    bad.lowered.node("fc0").attrs["model_node"] = "nowhere"
    with pytest.raises(IRError, match="equal model node 'nowhere'"):
        bad.validate()
    bad = copy.deepcopy(g)
    dwc = next(n for n in bad.lowered.nodes if n.op == "DWC")  # fc0 PE 1 -> fc1 SIMD 4
    for n in bad.lowered.consumers(dwc.name):
        n.inputs = [dwc.inputs[0] if i == dwc.name else i for i in n.inputs]
    bad.lowered.nodes.remove(dwc)
    with pytest.raises(
        IRError, match=r"streams 8 elements per beat, this unit takes 16 \(a DWC must sit"
    ):
        bad.validate()


def test_golden_runs_hardware_ops_directly():
    """An MVAU with fused thresholds computes what Dense + MultiThreshold compute."""
    g = mlp()
    hw = lower(g, target_cycles=16)
    x = np.random.default_rng(2).integers(0, 256, size=(30, 16))
    m, h = run_golden_int(g, x).outputs, run_golden_int(hw, x).outputs
    unit = hw.node("fc0")
    assert unit.op == "MVAU" and unit.attrs["model_node"] == "mt0"
    np.testing.assert_array_equal(h["fc0"], m["mt0"])


def test_bias_before_thresholds_is_folded_exactly():
    g = mlp()
    fc0 = g.node("fc0")
    fc0.tensors["bias"] = np.arange(8, dtype=np.int64) - 4
    g.validate()
    hw = lower(g, target_cycles=16)
    assert "bias" not in hw.node("fc0").tensors
    x = np.random.default_rng(3).integers(0, 256, size=(50, 16))
    assert compare_levels(g, hw, x) is None


def test_model_graph_without_hardware_equivalent_is_refused_in_lowering():
    g = mlp()
    g.nodes.insert(
        2, Node("mp", "MaxPool", ["fc0"], {"kernel": [1, 1], "stride": [1, 1]})
    )  # a pool on a vector: shape inference refuses it
    with pytest.raises(IRError, match="node 'mp' \\(MaxPool\\): needs an \\[H, W, C\\] input"):
        g.validate()


def test_damaged_or_inconsistent_files_are_ir_errors(tmp_path):
    import io
    import json
    import zipfile

    g = mlp()
    g.lowered = lower(g, target_cycles=8)
    path = g.save(tmp_path / "m.qfab.npz")

    def rewrite(edit, name):
        data = dict(np.load(path))
        header = json.loads(bytes(data["header.json"]).decode())
        edit(header, data)
        data["header.json"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
        out = tmp_path / name
        np.savez(out, **data)
        return out

    cases = {
        "node.npz": (lambda h, d: h["nodes"].__setitem__(1, "fc0"), "not a JSON object"),
        "hw.npz": (lambda h, d: h.__setitem__("hardware", []), "'hardware' in the header"),
        "huge.npz": (
            lambda h, d: h["nodes"][1]["attrs"].__setitem__("weight_bits", 2**40),
            "weight_bits' = 1099511627776 is not allowed; allowed: an integer in 1..32",
        ),
        "tampered.npz": (
            lambda h, d: d.__setitem__("hw/fc1/weight", -d["hw/fc1/weight"]),
            "the hardware graph does not compute what the model graph computes",
        ),
        "input.npz": (
            lambda h, d: h["hardware"]["nodes"][0]["attrs"].__setitem__("bits", 7),
            "its InputQuant differs",
        ),
    }
    for name, (edit, message) in cases.items():
        with pytest.raises(IRError, match=message.replace("(", r"\(").replace(")", r"\)")):
            Graph.load(rewrite(edit, name))
    junk = tmp_path / "junk.npz"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("header.json.npy", b"garbage")
    junk.write_bytes(buf.getvalue())
    with pytest.raises(IRError, match="not a qfab IR file"):
        Graph.load(junk)
