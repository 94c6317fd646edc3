"""Bad inputs to ``qfab``: IR files, configs, command lines and interrupted runs.

Each case breaks one thing and checks, through the real command line (``qfab.cli.main``),
that qfab exits with code 2 and prints exactly one line, ``says`` (``<file>`` stands for
the broken file's path), with no traceback, and that nothing was written. ``says`` is
also what ``docs/bad_inputs.md`` quotes: :func:`test_docs_table_quotes_every_case`
compares the table with the cases here and in ``tests/quant_train/test_bad_data_files.py``
both ways, so the table cannot drift. Regenerate it with
``python -m tests.qfab.test_bad_inputs > docs/bad_inputs.md``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qfab.cli import main
from qfab.errors import IRError
from qfab.ir import Graph, Node
from qfab.random_graph import GraphBuilder, random_mlp_graph

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "bad_inputs.md"
IR_NAME = "m.qfab.npz"


@dataclass(frozen=True)
class Case:
    """One bad input: its id, the case in words, the exact line qfab prints, and how to
    make it (``make(folder)`` writes the bad file into ``folder`` and returns its path)."""

    id: str
    what: str
    says: str
    make: Callable[[Path], Path]
    slow: bool = False
    #: ``qfab run`` cases: the arguments that feed the bad file where it belongs
    #: (``argv(folder, bad)``; the default: ``bad`` is the config).
    argv: Callable[[Path, Path], list[str]] | None = None


def params(cases: list[Case]) -> list[Any]:
    """pytest params named by case id; a case that builds a Brevitas model is slow."""
    return [pytest.param(c, id=c.id, marks=[pytest.mark.slow] if c.slow else []) for c in cases]


# ------------------------------------------------------------------ IR files, written here
# The writer below is the test's own (not Graph.save, which validates first): it puts any
# header and arrays into an archive, so a file can be broken in exactly one way.


def mlp() -> Graph:
    """input -> fc0 (Dense 16->8, 4-bit) -> mt0 (2-bit) -> fc1 (Dense 8->4) -> output."""
    return random_mlp_graph(16, [8], 4, weight_bits=4, act_bits=2, seed=0)


def header_and_arrays(graph: Graph) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The file's content for ``graph``, as the format describes it (ir.py docstring)."""

    def entries(g: Graph) -> list[dict[str, Any]]:
        return [
            {
                "name": n.name,
                "op": n.op,
                "inputs": list(n.inputs),
                "attrs": dict(n.attrs),
                "tensors": sorted(n.tensors),
            }
            for n in g.nodes
        ]

    header: dict[str, Any] = {
        "format": "qfab-ir",
        "version": 2,
        "meta": dict(graph.meta),
        "nodes": entries(graph),
    }
    arrays = {f"{n.name}/{k}": v for n in graph.nodes for k, v in n.tensors.items()}
    if graph.lowered is not None:
        header["hardware"] = {"meta": graph.lowered.meta, "nodes": entries(graph.lowered)}
        arrays |= {f"hw/{n.name}/{k}": v for n in graph.lowered.nodes for k, v in n.tensors.items()}
    return header, arrays


def write_ir(path: Path, header: Any, arrays: dict[str, np.ndarray]) -> Path:
    """An uncompressed archive (every member's bytes at a known place) with this header."""
    blob = json.dumps(header).encode()
    np.savez(path, **arrays, **{"header.json": np.frombuffer(blob, np.uint8)})
    return path


def edited(edit: Callable[[dict[str, Any], dict[str, np.ndarray]], None], graph=None):
    """A maker: the MLP's file (or ``graph``'s) with ``edit(header, arrays)`` applied."""

    def make(folder: Path) -> Path:
        header, arrays = header_and_arrays(graph() if graph else mlp())
        edit(header, arrays)
        return write_ir(folder / IR_NAME, header, arrays)

    return make


def raw(make_bytes: Callable[[bytes], bytes]) -> Callable[[Path], Path]:
    """A maker: the bytes of a file ``Graph.save`` wrote, changed by ``make_bytes``."""

    def make(folder: Path) -> Path:
        path = mlp().save(folder / IR_NAME)
        path.write_bytes(make_bytes(path.read_bytes()))
        return path

    return make


def flip_last_data_byte(folder: Path) -> Path:
    """Flip the last byte of ``fc0/weight.npy``'s data: the archive's structure is intact
    and only the member's CRC-32 can tell."""
    header, arrays = header_and_arrays(mlp())
    path = write_ir(folder / IR_NAME, header, arrays)
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("fc0/weight.npy")
    data = bytearray(path.read_bytes())
    name_len = int.from_bytes(data[info.header_offset + 26 : info.header_offset + 28], "little")
    extra_len = int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little")
    last = info.header_offset + 30 + name_len + extra_len + info.compress_size - 1
    data[last] ^= 0x01
    path.write_bytes(bytes(data))
    return path


def without_header(folder: Path) -> Path:
    _, arrays = header_and_arrays(mlp())
    np.savez(folder / IR_NAME, **arrays)
    return folder / IR_NAME


def bad_json_header(folder: Path) -> Path:
    _, arrays = header_and_arrays(mlp())
    np.savez(folder / IR_NAME, **arrays, **{"header.json": np.frombuffer(b"{nodes: 1", np.uint8)})
    return folder / IR_NAME


def unchecked(build: Callable[[], Graph]) -> Callable[[Path], Path]:
    """A maker for a graph that ``Graph.save`` would refuse (so the test writes it)."""
    return edited(lambda h, a: None, graph=build)


def set_node(index: int, **changes: Any) -> Callable[[Path], Path]:
    return edited(lambda h, a: h["nodes"][index].update(changes))


def set_attr(index: int, key: str, value: Any) -> Callable[[Path], Path]:
    return edited(lambda h, a: h["nodes"][index]["attrs"].__setitem__(key, value))


def set_array(key: str, value: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], Path]:
    return edited(lambda h, a: a.__setitem__(key, value(a[key])))


def dense_after_conv_without_flatten() -> Graph:
    b = GraphBuilder((6, 6, 2), seed=1)
    b.conv(4, name="conv")
    b.thresholds(2, name="act")
    weight = np.ones((3, 6 * 6 * 4), np.int64)
    b.nodes.append(Node("fc", "Dense", ["act"], {"weight_bits": 2}, {"weight": weight}))
    b.nodes.append(Node("output", "OutputDequant", ["fc"], {}, scale_bias(3)))
    return b._graph()


def scale_bias(c: int) -> dict[str, np.ndarray]:
    return {"scale": np.full(c, 0.5, np.float32), "bias": np.zeros(c, np.float32)}


def two_branches(join: Callable[[GraphBuilder, str, str], str], pool_b: bool) -> Graph:
    """conv -> act, then a second branch from act (a 3-channel conv, or a pool), joined."""
    b = GraphBuilder((6, 6, 2), seed=2)
    b.conv(4, name="conv_a")
    a = b.thresholds(2, name="act_a")
    if pool_b:
        second = b.pool(2, src=a)
    else:
        b.conv(3, src=a, name="conv_b")
        second = b.thresholds(2, name="act_b")
    joined = join(b, a, second)
    b.nodes.append(Node("output", "OutputDequant", [joined], {}, scale_bias(7 if pool_b else 4)))
    return b._graph()


def add_of_different_shapes() -> Graph:
    return two_branches(lambda b, x, y: b.add(x, y), pool_b=False)


def concat_of_different_sizes() -> Graph:
    return two_branches(lambda b, x, y: b.concat(x, y), pool_b=True)


def lowered(edit: Callable[[dict[str, Any], dict[str, np.ndarray]], None]):
    """A maker: the MLP lowered (input, fc0_dwc, fc0 MVAU, fc1_dwc, fc1 MVAU, output; the
    folding of ``target_cycles=8``), its file content changed by ``edit(header, arrays)``."""

    def make(folder: Path) -> Path:
        from hw_gen.passes import lower

        g = mlp()
        g.lowered = lower(g, target_cycles=8)
        header, arrays = header_and_arrays(g)
        edit(header, arrays)
        return write_ir(folder / IR_NAME, header, arrays)

    return make


def hw_attr(index: int, key: str, value: Any):
    return lowered(lambda h, a: h["hardware"]["nodes"][index]["attrs"].__setitem__(key, value))


def mvau_in_model_graph() -> Graph:
    g = mlp()
    g.nodes[1].op = "MVAU"
    return g


ALLOWED_MODEL_OPS = (
    "['Add', 'ChannelShuffle', 'Concat', 'Conv2d', 'Dense', 'Flatten', 'InputQuant', "
    "'MaxPool', 'MultiThreshold', 'OutputDequant']"
)

IR_CASES = [
    Case(
        "ir_missing",
        "IR file that does not exist",
        "qfab: error: <file>: IR file not found",
        lambda d: d / IR_NAME,
    ),
    Case(
        "ir_truncated",
        "truncated IR file (half of a saved file)",
        "qfab: error: <file>: not a qfab IR file (truncated or damaged archive: BadZipFile: "
        "File is not a zip file)",
        raw(lambda b: b[: len(b) // 2]),
    ),
    Case(
        "ir_corrupted",
        "corrupted bytes inside an IR file (one bit of a weight)",
        "qfab: error: <file>: node 'fc0': tensor 'weight' cannot be read (BadZipFile: Bad "
        "CRC-32 for file 'fc0/weight.npy')",
        flip_last_data_byte,
    ),
    Case(
        "ir_not_a_zip",
        "a text file named .qfab.npz",
        "qfab: error: <file>: not a qfab IR file (not a .npz archive: no zip signature)",
        raw(lambda b: b"layers: 3\n"),
    ),
    Case(
        "ir_empty",
        "an empty IR file",
        "qfab: error: <file>: not a qfab IR file (the file is empty)",
        raw(lambda b: b""),
    ),
    Case(
        "ir_no_header",
        "an .npz archive without the qfab header",
        "qfab: error: <file>: not a qfab IR file (no header.json in the archive; members: "
        "['fc0/weight', 'fc1/bias', 'fc1/weight', 'mt0/thresholds', 'output/bias'])",
        without_header,
    ),
    Case(
        "ir_header_not_json",
        "a header that is not JSON",
        "qfab: error: <file>: not a qfab IR file (header.json cannot be read: JSONDecodeError: "
        "Expecting property name enclosed in double quotes: line 1 column 2 (char 1))",
        bad_json_header,
    ),
    Case(
        "ir_other_format",
        "an archive whose header names another format",
        "qfab: error: <file>: not a qfab IR file (format 'onnx')",
        edited(lambda h, a: h.update(format="onnx")),
    ),
    Case(
        "ir_version_newer",
        "IR file of a newer format version",
        "qfab: error: <file>: format version 3 is newer than this qfab reads (1..2); upgrade qfab",
        edited(lambda h, a: h.update(version=3)),
    ),
    Case(
        "ir_version_older",
        "IR file of an older, unsupported format version",
        "qfab: error: <file>: format version 0 is older than this qfab reads (1..2); export "
        "the model again",
        edited(lambda h, a: h.update(version=0)),
    ),
    Case(
        "ir_version_not_int",
        "a format version that is not an integer",
        "qfab: error: <file>: format version '2'; this qfab reads versions 1..2",
        edited(lambda h, a: h.update(version="2")),
    ),
    Case(
        "ir_unknown_header_key",
        "a misspelt key in the header ('hardwre')",
        "qfab: error: <file>: unknown header keys ['hardwre']; allowed: format, version, meta, "
        "nodes, hardware",
        edited(lambda h, a: h.update(hardwre={})),
    ),
    Case(
        "ir_node_entry_type",
        "a node entry whose inputs are a string, not a list",
        "qfab: error: <file>: header node #1 ('fc0'): 'inputs' = 'input' is not allowed; "
        "allowed: a list of node names",
        set_node(1, inputs="input"),
    ),
    Case(
        "ir_unknown_op",
        "an IR with an unknown op",
        f"qfab: error: <file>: node 'fc0' (Conv3d): unknown op; allowed: {ALLOWED_MODEL_OPS}",
        set_node(1, op="Conv3d"),
    ),
    Case(
        "ir_hardware_op_in_model",
        "a hardware op (MVAU) in the model graph",
        f"qfab: error: <file>: node 'fc0' (MVAU): op not allowed in a model graph; allowed: "
        f"{ALLOWED_MODEL_OPS}",
        unchecked(mvau_in_model_graph),
    ),
    Case(
        "ir_unknown_attr",
        "an unknown attr on a node",
        "qfab: error: <file>: node 'fc0' (Dense): unknown attr 'colour'; allowed: weight_bits, "
        "sparse_pes, sparse_index_bits, sparse_code_bits",
        set_attr(1, "colour", "red"),
    ),
    Case(
        "ir_missing_attr",
        "a node without a required attr",
        "qfab: error: <file>: node 'fc0' (Dense): missing attrs ['weight_bits']",
        lambda d: edited(lambda h, a: h["nodes"][1]["attrs"].pop("weight_bits"))(d),
    ),
    Case(
        "ir_attr_type",
        "an attr of the wrong type (a string where an integer belongs)",
        "qfab: error: <file>: node 'fc0' (Dense): attr 'weight_bits' = '4' is not allowed; "
        "allowed: an integer in 1..32",
        set_attr(1, "weight_bits", "4"),
    ),
    Case(
        "ir_float_weights",
        "float weights where integers belong",
        "qfab: error: <file>: node 'fc0' (Dense): tensor 'weight' must hold int values, got "
        "float32",
        set_array("fc0/weight", lambda w: w.astype(np.float32)),
    ),
    Case(
        "ir_float_thresholds",
        "float thresholds where integers belong",
        "qfab: error: <file>: node 'mt0' (MultiThreshold): tensor 'thresholds' must hold int "
        "values, got float64",
        set_array("mt0/thresholds", lambda t: t + 0.5),
    ),
    Case(
        "ir_weight_range",
        "a weight outside its bit width",
        "qfab: error: <file>: node 'fc0' (Dense): weights outside [-7, 7] for weight_bits=4",
        set_array("fc0/weight", lambda w: np.where(np.arange(w.size).reshape(w.shape), w, 99)),
    ),
    Case(
        "ir_weight_shape",
        "weights whose fan-in does not match the input features",
        "qfab: error: <file>: node 'fc0' (Dense): weight has 5 inputs, input 'input' gives "
        "shape [16]",
        set_array("fc0/weight", lambda w: w[:, :5]),
    ),
    Case(
        "ir_threshold_count",
        "threshold count that does not match out_bits",
        "qfab: error: <file>: node 'mt0' (MultiThreshold): thresholds must be [C, 3] for "
        "out_bits=2, got [8, 2]",
        set_array("mt0/thresholds", lambda t: t[:, :2]),
    ),
    Case(
        "ir_unsorted_thresholds",
        "thresholds not sorted ascending",
        "qfab: error: <file>: node 'mt0' (MultiThreshold): thresholds must be sorted ascending "
        "per channel",
        set_array("mt0/thresholds", lambda t: t[:, ::-1]),
    ),
    Case(
        "ir_unexpected_tensor",
        "a tensor the op does not have",
        "qfab: error: <file>: node 'mt0' (MultiThreshold): unexpected tensors ['scale']",
        lambda d: edited(
            lambda h, a: (
                h["nodes"][2]["tensors"].append("scale"),
                a.__setitem__("mt0/scale", np.ones(8, np.float32)),
            )
        )(d),
    ),
    Case(
        "ir_missing_tensor",
        "a tensor named in the header but absent from the archive",
        "qfab: error: <file>: node 'fc0': tensor 'weight' is missing from the archive (no "
        "member 'fc0/weight')",
        lambda d: edited(lambda h, a: a.pop("fc0/weight"))(d),
    ),
    Case(
        "ir_stray_array",
        "an array in the archive that no node names",
        "qfab: error: <file>: archive members ['fc9/weight'] belong to no node tensor in the "
        "header",
        lambda d: edited(lambda h, a: a.__setitem__("fc9/weight", np.zeros(3, np.int64)))(d),
    ),
    Case(
        "ir_cycle",
        "a graph with a cycle (fc0 reads mt0, which reads fc0)",
        "qfab: error: <file>: node 'fc0' (Dense): input 'mt0' comes later in the node list (a "
        "cycle or nodes out of order); nodes must be in topological order",
        set_node(1, inputs=["mt0"]),
    ),
    Case(
        "ir_self_loop",
        "a node that reads itself",
        "qfab: error: <file>: node 'mt0' (MultiThreshold): input 'mt0' is the node itself (a "
        "cycle); a node reads only earlier nodes",
        set_node(2, inputs=["mt0"]),
    ),
    Case(
        "ir_dangling_input",
        "a dangling input (names a node that does not exist)",
        "qfab: error: <file>: node 'mt0' (MultiThreshold): input 'fc7' names no node; nodes: "
        "['input', 'fc0', 'mt0', 'fc1', 'output']",
        set_node(2, inputs=["fc7"]),
    ),
    Case(
        "ir_duplicate_name",
        "two nodes with one name",
        "qfab: error: <file>: header node #3 ('fc0'): duplicate node name 'fc0'; node names "
        "are unique",
        set_node(3, name="fc0"),
    ),
    Case(
        "ir_dense_after_conv",
        "shapes that do not chain: Dense on a conv output without Flatten",
        "qfab: error: <file>: node 'fc' (Dense): weight has 144 inputs, input 'act' gives "
        "shape [6, 6, 4] (Flatten first)",
        unchecked(dense_after_conv_without_flatten),
    ),
    Case(
        "ir_add_shapes",
        "shapes that do not chain: Add of a 4- and a 3-channel branch",
        "qfab: error: <file>: node 'add5' (Add): branch shapes differ: act_a [6, 6, 4], act_b "
        "[6, 6, 3]",
        unchecked(add_of_different_shapes),
    ),
    Case(
        "ir_concat_sizes",
        "shapes that do not chain: Concat of 6x6 and 3x3 maps",
        "qfab: error: <file>: node 'cat4' (Concat): branch shapes apart from channels differ: "
        "act_a [6, 6, 4], pool3 [3, 3, 4]",
        unchecked(concat_of_different_sizes),
    ),
    Case(
        "ir_tampered_hardware",
        "a hardware graph that no longer computes its model graph (weights edited)",
        "qfab: error: <file>: the hardware graph does not compute what the model graph "
        "computes (node 'fc1', vector 0, channel 0: 3 vs -1)",
        lowered(lambda h, a: a.__setitem__("hw/fc1/weight", -a["hw/fc1/weight"])),
    ),
    Case(
        "ir_hw_unknown_attr",
        "an unknown attr on a hardware-graph node",
        "qfab: error: <file> (hardware graph): node 'fc0_dwc' (DWC): unknown attr 'colour'; "
        "allowed: in_elems, out_elems, cycles, model_node",
        hw_attr(1, "colour", "red"),
    ),
    Case(
        "ir_hw_folding",
        "a hardware folding (PE) that does not divide the layer",
        "qfab: error: <file> (hardware graph): node 'fc0' (MVAU): PE = 3 must divide MH = 8; "
        "allowed: [1, 2, 4, 8]",
        hw_attr(2, "pe", 3),
    ),
    Case(
        "ir_hw_cycles",
        "a recorded cycle estimate that disagrees with the folding",
        "qfab: error: <file> (hardware graph): node 'fc0' (MVAU): cycles = 7 disagrees with "
        "its folding (8); rerun the lowering",
        hw_attr(2, "cycles", 7),
    ),
]


@pytest.mark.parametrize("case", params(IR_CASES))
def test_ir_file(tmp_path, capsys, case):
    """``qfab info`` on the file: exit 2, the one documented line, nothing written; and
    ``Graph.load`` raises :class:`IRError` with the same message."""
    path = case.make(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    expected = case.says.replace("<file>", str(path))
    assert main(["info", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [expected]
    assert "Traceback" not in captured.out + captured.err
    with pytest.raises(IRError) as info:
        Graph.load(path)
    assert f"qfab: error: {info.value}" == expected
    assert sorted(tmp_path.rglob("*")) == before, "reading a bad file wrote or removed files"


def test_the_installed_command_prints_one_line_for_a_truncated_ir(tmp_path):
    """The issue's case, through a real process: no ``zipfile.BadZipFile`` traceback."""
    path = raw(lambda b: b[: len(b) // 2])(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "qfab.cli", "info", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"qfab: error: {path}: not a qfab IR file (truncated or damaged archive: BadZipFile: "
        "File is not a zip file)"
    ]


@pytest.mark.parametrize("command", ["check-config", "info"])
def test_a_reader_that_leaves_early_gets_no_traceback(tmp_path, command):
    """``qfab check-config c.yaml | head -1``: the pipe closes before qfab writes, which
    is not an error of the input; qfab exits quietly (a signal-style code), no traceback."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(GOOD)
    arg = str(cfg) if command == "check-config" else str(mlp().save(tmp_path / IR_NAME))
    proc = subprocess.Popen(
        [sys.executable, "-m", "qfab.cli", command, arg],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # the reader is gone before qfab has started writing
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) != 0
    assert err == "", err


def test_saving_an_invalid_graph_writes_nothing(tmp_path):
    """``Graph.save`` validates first: an unknown attr is refused and no file (and no temp
    file) is left; a header that is not JSON (a set in meta) likewise."""
    g = mlp()
    g.nodes[1].attrs["colour"] = "red"
    with pytest.raises(IRError, match=r"node 'fc0' \(Dense\): unknown attr 'colour'"):
        g.save(tmp_path / IR_NAME)
    h = mlp()
    h.meta["tags"] = {"a", "b"}
    with pytest.raises(IRError, match="the header cannot be written as JSON"):
        h.save(tmp_path / IR_NAME)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ configs and `qfab run`

GOOD = "train: {epochs: 200}\nsynth: {enabled: false}\n"


def config(text: str | bytes) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / "c.yaml"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        return path

    return make


def as_config(folder: Path, bad: Path) -> list[str]:
    return ["run", str(bad), "--out", str(folder / "a" / "out")]


def good_config(folder: Path, text: str = GOOD) -> str:
    (folder / "c.yaml").write_text(text)
    return str(folder / "c.yaml")


def as_from_ir(folder: Path, bad: Path) -> list[str]:
    return ["run", good_config(folder), "--out", str(folder / "a" / "out"), "--from", str(bad)]


def as_data_folder(folder: Path, bad: Path) -> list[str]:
    cfg = good_config(folder, f"dataset: {{name: mnist, path: {bad.parent}}}\n" + GOOD)
    return ["run", cfg, "--out", str(folder / "a" / "out")]


def as_out(folder: Path, bad: Path) -> list[str]:
    return ["run", good_config(folder), "--out", str(bad)]


def under_out(folder: Path, bad: Path) -> list[str]:
    return ["run", good_config(folder), "--out", str(bad / "out")]


#: A user's own Brevitas model (``qfab export model.py:build``): one line of it is
#: replaced to make each unsupported construct.
USER_MODEL = """
import torch
from torch import nn
from brevitas.nn import QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant import (
    Int8WeightPerTensorFixedPoint, Uint8ActPerTensorFixedPoint, Uint8ActPerTensorFixedPointMaxInit,
)

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.pixels = QuantIdentity(act_quant=Uint8ActPerTensorFixedPointMaxInit, bit_width=8,
                                    max_val=1 - 2**-8, return_quant_tensor=True)
        self.hidden = QuantLinear(64, 16, bias=False, weight_quant=Int8WeightPerTensorFixedPoint)
        self.act = QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, bit_width=2,
                             return_quant_tensor=True)
        self.head = QuantLinear(16, 10, bias=False, weight_quant=Int8WeightPerTensorFixedPoint)

    def forward(self, x):
        return self.head(self.act(self.hidden(self.pixels(x))))

def build():
    torch.manual_seed(0)  # the refused scale's value is in the message
    return Net()
"""


def user_model(old: str, new: str) -> Callable[[Path], Path]:
    """A model file whose ``old`` text is replaced by ``new`` (an unsupported construct)."""

    def make(folder: Path) -> Path:
        assert old in USER_MODEL
        path = folder / "mynet.py"
        path.write_text(USER_MODEL.replace(old, new))
        return path

    return make


def as_user_model(folder: Path, bad: Path) -> list[str]:
    return ["export", f"{bad}:build", "--input-shape", "64", "--out", str(folder / "a" / "out")]


RUN_CASES = [
    Case(
        "cfg_unknown_key",
        "config: unknown key",
        "qfab: error: <file>: unknown key 'model.hiden'; allowed here: arch, hidden, "
        "weight_bits, act_bits, input_bits, per_channel, width, groups",
        config("model: {hiden: [16]}\n" + GOOD),
    ),
    Case(
        "cfg_bits_zero",
        "config: bits out of range (0)",
        "qfab: error: <file>: model.weight_bits = 0 is not allowed; allowed: 1..8",
        config("model: {weight_bits: 0}\n" + GOOD),
    ),
    Case(
        "cfg_bits_nine",
        "config: bits out of range (9)",
        "qfab: error: <file>: model.act_bits = 9 is not allowed; allowed: 1..8",
        config("model: {act_bits: 9}\n" + GOOD),
    ),
    Case(
        "cfg_negative_epochs",
        "config: negative epochs",
        "qfab: error: <file>: train.epochs = -3 is not allowed; allowed: 1..10000",
        config("train: {epochs: -3}\n"),
    ),
    Case(
        "cfg_folding",
        "config: a folding that does not divide the layer",
        "qfab: error: hw.folding.pe[0] = 5 (fc0) must divide MH = 24; allowed: [1, 2, 3, 4, "
        "6, 8, 12, 24]",
        config(
            "model: {hidden: [24, 13]}\nhw: {folding: {pe: [5, 1, 1], simd: [1, 1, 1]}}\n" + GOOD
        ),
        slow=True,  # checked on the lowered untrained model: imports torch and Brevitas
    ),
    Case(
        "cfg_backend",
        "config: an unknown hardware backend",
        "qfab: error: <file>: hw.backend = 'vhdl' is not allowed; allowed: 'rtl', 'hls', 'both'",
        config("hw: {backend: vhdl}\n" + GOOD),
    ),
    Case(
        "cfg_hls_sparse",
        "config: the HLS backend for a layer on the sparse engine (no HLS kernel), refused "
        "before training",
        "qfab: error: node 'fc0' (SparseMVAU): the HLS backend has no kernel for it; it maps "
        "['AddStreams', 'ConcatStreams', 'DWC', 'FIFO', 'Fork', 'MVAU', 'ShuffleStreams', "
        "'SlidingWindow', 'StreamingMaxPool', 'Thresholding', 'VVAU', 'XnorMVAU'] (use "
        "hw.backend: rtl for this design)",
        config("model: {hidden: [16]}\nhw: {backend: both, engine: sparse}\n" + GOOD),
        slow=True,  # checked on the lowered untrained model: imports torch and Brevitas
    ),
    Case(
        "cfg_unknown_model",
        "config: unknown model name",
        "qfab: error: <file>: model.arch = 'resnet50' is not allowed; allowed: 'mlp', 'tfc', "
        "'sfc', 'lfc', 'lenet300', 'lenet5', 'cnv', 'mobilenet', 'shufflenet', 'squeezenet'",
        config("model: {arch: resnet50}\n" + GOOD),
    ),
    Case(
        "cfg_unknown_dataset",
        "config: unknown data set name",
        "qfab: error: <file>: dataset.name = 'imagenet' is not allowed; allowed: 'digits', "
        "'mnist', 'fashion_mnist', 'cifar10', 'npz'",
        config("dataset: {name: imagenet, path: x}\n" + GOOD),
    ),
    Case(
        "cfg_yaml_syntax",
        "config: YAML syntax error",
        "qfab: error: <file>: not valid YAML (while parsing a flow mapping: expected ',' or "
        "'}', but got '<stream end>' at line 4, column 1)",
        config(GOOD + "model: {hidden: [16]\n"),
    ),
    Case(
        "cfg_duplicate_key",
        "config: a section written twice (YAML would keep the last silently)",
        "qfab: error: <file>: not valid YAML (key 'train' appears twice at line 3, column 1)",
        config(GOOD + "train: {epochs: 2}\n"),
    ),
    Case(
        "cfg_not_text",
        "config: not UTF-8 text (a binary file)",
        "qfab: error: <file>: not UTF-8 text (byte 0); a config is a YAML text file",
        config(b"\xff\xfe\x00m\x00o"),
    ),
    Case(
        "cfg_missing",
        "config file that does not exist",
        "qfab: error: config file '<file>' not found",
        lambda d: d / "c.yaml",
    ),
    Case(
        "run_from_missing",
        "`--from` an IR that does not exist",
        "qfab: error: --from <file>: IR file not found",
        lambda d: d / IR_NAME,
        argv=as_from_ir,
    ),
    Case(
        "run_from_truncated",
        "`--from` a truncated IR: refused at load, the output folder is removed",
        "qfab: error: <file>: not a qfab IR file (truncated or damaged archive: BadZipFile: "
        "File is not a zip file)",
        raw(lambda b: b[: len(b) // 3]),
        argv=as_from_ir,
    ),
    Case(
        "run_bad_data_file",
        "a data file with a bad header during `qfab run`: the output folder is removed",
        "qfab: error: <file>: not an IDX file of unsigned bytes (magic 47494638; allowed: "
        "000008 then the number of axes)",
        lambda d: _mnist_with_bad_images(d),
        argv=as_data_folder,
    ),
    Case(
        "run_out_is_a_file",
        "`--out` names an existing file",
        "qfab: error: --out <file>: exists and is not a folder",
        lambda d: _a_file(d / "out"),
        argv=as_out,
    ),
    Case(
        "run_out_under_a_file",
        "`--out` inside a path whose parent is a file",
        "qfab: error: --out <file>/out: cannot create a folder there (File exists: <file>)",
        lambda d: _a_file(d / "notes.txt"),
        argv=under_out,
    ),
    Case(
        "export_unsupported_module",
        "your own model (`qfab export model.py:build`) with a module qfab cannot map",
        "qfab: error: layer 'act' (nn.Sigmoid): not supported by qfab's exporter; "
        "supported modules: QuantIdentity, QuantReLU, QuantHardTanh, QuantLinear, "
        "QuantConv2d, BatchNorm1d/2d, MaxPool2d, Flatten, ChannelShuffle, "
        "Dropout/Identity (no-ops in eval); for activations use QuantReLU / QuantHardTanh"
        " with a *FixedPoint act quantizer (e.g. Uint8ActPerTensorFixedPoint, or "
        "Int8ActPerTensorFixedPoint for signed values)",
        user_model(
            "self.act = QuantReLU(", "self.act = nn.Sigmoid()\n        self.unused = QuantReLU("
        ),
        slow=True,
        argv=as_user_model,
    ),
    Case(
        "export_unsupported_call",
        "your own model calling a function qfab cannot map",
        "qfab: error: call torch.sigmoid ('sigmoid'): not supported by qfab's exporter; "
        "supported calls: a + b / torch.add (residual add), torch.cat(dim=1), "
        "torch.flatten / .flatten / .view / .reshape (flatten, channel shuffle), "
        ".transpose / .permute (channel shuffle), F.max_pool2d, .contiguous, .value, "
        ".size / .shape; for activations use a QuantReLU / QuantHardTanh module with a "
        "*FixedPoint act quantizer (e.g. Uint8ActPerTensorFixedPoint, or "
        "Int8ActPerTensorFixedPoint for signed values)",
        user_model("self.act(self.hidden", "torch.sigmoid(self.hidden"),
        slow=True,
        argv=as_user_model,
    ),
    Case(
        "export_float_scale",
        "your own model with a weight scale that is not a power of two",
        "qfab: error: layer 'hidden' (QuantLinear) weight: scale 0.000984095 is not a power of "
        "two; qfab's exact integer pipeline needs a *FixedPoint weight quantizer (e.g. "
        "Int8WeightPerTensorFixedPoint)",
        user_model(
            "bias=False, weight_quant=Int8WeightPerTensorFixedPoint)\n        self.act",
            "bias=False)\n        self.act",
        ),
        slow=True,
        argv=as_user_model,
    ),
    Case(
        "export_float_bias",
        "your own model with a float (unquantized) bias",
        "qfab: error: layer 'hidden' (QuantLinear): float (unquantized) bias; use "
        "bias_quant=Int32Bias on the output QuantLinear and hidden layers (or bias=False "
        "before a batch norm, which supplies the offset)",
        user_model("QuantLinear(64, 16, bias=False,", "QuantLinear(64, 16, bias=True,"),
        slow=True,
        argv=as_user_model,
    ),
    Case(
        "export_float_layer",
        "your own model with a float (unquantized) layer",
        "qfab: error: layer 'hidden' (nn.Linear): not quantized; use "
        "brevitas.nn.QuantLinear with a *FixedPoint weight quantizer (e.g. "
        "Int8WeightPerTensorFixedPoint)",
        user_model(
            "QuantLinear(64, 16, bias=False, weight_quant=Int8WeightPerTensorFixedPoint)\n",
            "nn.Linear(64, 16, bias=False)\n",
        ),
        slow=True,
        argv=as_user_model,
    ),
]


def _a_file(path: Path) -> Path:
    path.write_text("keep me")
    return path


def _mnist_with_bad_images(folder: Path) -> Path:
    from tests.quant_train.test_bad_data_files import TRAIN_IMAGES, mnist_folder

    _, _, broken = mnist_folder(folder / "mnist", TRAIN_IMAGES, b"GIF89a" + bytes(20))
    return broken


@pytest.mark.parametrize("case", params(RUN_CASES))
def test_run_refuses(tmp_path, capsys, case):
    """``qfab run`` with the bad config / option / file: exit 2, the one documented line,
    and the folder holds exactly what it held before (no --out, no partial folder, no
    parent folders made for --out)."""
    bad = case.make(tmp_path)
    args = (case.argv or as_config)(tmp_path, bad)
    before = sorted(tmp_path.rglob("*"))
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [case.says.replace("<file>", str(bad))]
    assert "Traceback" not in captured.out + captured.err
    assert sorted(tmp_path.rglob("*")) == before, "partial output left behind"


# ------------------------------------------------------------------ interrupted runs


def interrupted_run(
    tmp_path: Path, monkeypatch, error: BaseException
) -> tuple[list[str], Path, list[Path]]:
    """``qfab run --from`` a valid 64-feature IR (digits) whose hardware stage has written
    an IR and an RTL file into the run's folder when ``error`` hits it. The list gets the
    folder the stage wrote into (to show the stage ran and where)."""
    import qfab.flow as flow

    ir = random_mlp_graph(64, [16], 10, seed=3).save(tmp_path / IR_NAME)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(GOOD)

    wrote: list[Path] = []

    def half_done(ctx):
        work = ctx.work
        wrote.append(work)
        ctx.graph().save(work / "model.qfab.npz")
        (work / "rtl").mkdir()
        (work / "rtl" / "top.v").write_text("module top(")
        raise error

    monkeypatch.setitem(flow.STAGE_FUNCTIONS, "lower", half_done)
    args = ["run", str(cfg), "--out", str(tmp_path / "out"), "--from", str(ir)]
    return args, tmp_path / "out", wrote


INTERRUPT_CASE = Case(
    "run_interrupted",
    "an interrupted run (Ctrl-C inside a stage, after it wrote files): exit 130, nothing left",
    "qfab: interrupted",
    lambda d: d,
)


def test_interrupted_run_leaves_no_output_and_no_temp_folder(tmp_path, capsys, monkeypatch):
    args, out, wrote = interrupted_run(tmp_path, monkeypatch, KeyboardInterrupt())
    before = sorted(tmp_path.rglob("*"))
    assert main(args) == 130
    assert capsys.readouterr().err.splitlines() == [INTERRUPT_CASE.says]
    assert len(wrote) == 1 and wrote[0].parent == tmp_path, "the stage did not run"
    assert not out.exists() and not wrote[0].exists()
    assert sorted(tmp_path.rglob("*")) == before, "partial output left behind"


def test_interrupted_run_keeps_the_previous_output(tmp_path, capsys, monkeypatch):
    """A run into an existing folder replaces it only when it finishes: interrupted, the
    old output is there, unchanged, and no temp or backup folder sits beside it."""
    args, out, wrote = interrupted_run(tmp_path, monkeypatch, KeyboardInterrupt())
    out.mkdir()
    (out / "report.json").write_text('{"old": true}')
    before = sorted(tmp_path.rglob("*"))
    assert main(args) == 130
    capsys.readouterr()
    assert len(wrote) == 1 and (out / "report.json").read_text() == '{"old": true}'
    assert sorted(tmp_path.rglob("*")) == before


def test_a_bug_in_a_stage_keeps_its_traceback_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    """Not a bad input but a qfab bug: main lets it through (the traceback is the report)
    and the half-written run folder is still removed."""
    args, out, wrote = interrupted_run(tmp_path, monkeypatch, RuntimeError("bug in a stage"))
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(RuntimeError, match="bug in a stage"):
        main(args)
    assert len(wrote) == 1 and not out.exists()
    assert sorted(tmp_path.rglob("*")) == before


# ------------------------------------------------------------------ the docs table


def all_cases() -> list[tuple[str, Case]]:
    """``(test id, case)`` for every documented case, in table order."""
    from tests.quant_train import test_bad_data_files as data

    here = "tests/qfab/test_bad_inputs.py"
    rows = [(f"{here}::test_ir_file[{c.id}]", c) for c in IR_CASES]
    rows += [(f"{here}::test_run_refuses[{c.id}]", c) for c in RUN_CASES]
    rows.append(
        (f"{here}::test_interrupted_run_leaves_no_output_and_no_temp_folder", INTERRUPT_CASE)
    )
    rows += [
        (f"tests/quant_train/test_bad_data_files.py::test_bad_data_file[{c.id}]", c)
        for c in data.CASES
    ]
    return rows


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_doc() -> str:
    """The whole of docs/bad_inputs.md, generated from the cases."""
    lines = [
        "# Bad inputs: what qfab says",
        "",
        "Every bad input is refused with one line on stderr and exit code 2 (an interrupt:",
        "exit 130), no traceback, and nothing half-written: a run writes into a temporary",
        "folder beside `--out` and renames it into place only when it finishes, and `Graph.save`",
        "writes a temporary file and renames it. (A failed *equality* is a finished run, not a",
        "bad input: its folder is kept with the evidence, see `tests/qfab/test_flow.py`.)",
        "",
        "`<file>` stands for the path of the broken file. Each row is one test case that checks",
        "this exact line; `test_docs_table_quotes_every_case` fails if a row and its test",
        "disagree. Regenerate with `python -m tests.qfab.test_bad_inputs > docs/bad_inputs.md`.",
        "",
        "| case | what qfab says | test |",
        "|---|---|---|",
    ]
    lines += [f"| {cell(c.what)} | `{cell(c.says)}` | `{tid}` |" for tid, c in all_cases()]
    return "\n".join(lines) + "\n"


def parse_table(text: str) -> list[tuple[str, str, str]]:
    rows = []
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| case |"):
            what, says, test = (c.strip().replace("\\|", "|") for c in line[1:-1].split(" | "))
            rows.append((what, says.removeprefix("`").removesuffix("`"), test.strip("`")))
    return rows


def test_docs_table_quotes_every_case():
    """Every case is a row quoting its exact message and naming its test; every row is a
    case (no row without a test); at least 20 rows."""
    rows = parse_table(DOC.read_text())
    expected = [(c.what, c.says, tid) for tid, c in all_cases()]
    assert rows == expected, "docs/bad_inputs.md is stale: regenerate it (see its header)"
    assert len(rows) >= 20


def test_every_table_row_names_a_collected_test():
    """Each test id in the table is one pytest really collects (ids come from the cases,
    so a renamed test function or parameter shows here)."""
    from tests.quant_train import test_bad_data_files as data

    functions = {
        "tests/qfab/test_bad_inputs.py": sys.modules[__name__],
        "tests/quant_train/test_bad_data_files.py": data,
    }
    for tid, _ in all_cases():
        path, name = tid.split("::")
        func, _, param = name.partition("[")
        test = getattr(functions[path], func)
        if param:
            (mark,) = [m for m in test.pytestmark if m.name == "parametrize"]
            assert param[:-1] in [p.id for p in mark.args[1]], tid


if __name__ == "__main__":
    sys.stdout.write(render_doc())
