"""Random hardware designs for the fuzz test: a JSON spec, a hypothesis strategy, a builder.

A design is drawn as a small JSON-able *spec* (input shape and encoding, a list of blocks,
seeds), not as a graph: hypothesis shrinks the spec (fewer blocks, fewer channels,
narrower widths, default options) and a failing spec is written to a file as it is, so a
regression is one readable JSON line that :func:`build_design` turns back into the same
graph and folding. Blocks cover every op the hardware supports:

- ``conv``: Conv2d (kernel 1-3, stride 1-2, padding, groups: 1, a divisor, depthwise)
  followed by a MultiThreshold, optionally by a 2x2 max pool;
- ``residual``: a fork, a depthwise or 1x1 branch with thresholds, an ``Add`` with
  power-of-two shifts, thresholds after it;
- ``concat``: two (or three, with the trunk) branches concatenated;
- ``shuffle``: a ChannelShuffle;
- ``dense``: a fully connected layer with thresholds (after a Flatten when needed);
- the design always ends in a dense layer (with or without bias) and ``OutputDequant``;
- any dense layer may be pruned and put on the EIE-style sparse engine (PEs, queue
  depth, index width drawn; the codebook width follows its weights).

Weights 1-8 bits (1 = bipolar, XNOR when the input is bipolar too), activations 1-8 bits
signed or unsigned (1 = bipolar), falling channels right after compute units (the only
place the hardware takes them), input 1-8 bits signed or unsigned, folding drawn from
every unit's legal PE/SIMD, and a port width cap.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from hw_gen.passes import lower, unfolded_lowering
from hw_gen.passes.folding import compute_units, pe_choices, simd_choices
from hw_gen.verilog.emit import generate_verilog
from qfab.ir import Graph, infer_shapes
from qfab.random_graph import GraphBuilder
from qfab.ranges import node_ranges
from sim.compare import compare_rtl_to_golden
from sim.runner import run_cocotb
from tests.sim.conftest import input_vectors

Spec = dict[str, Any]


@st.composite
def act_specs(draw: st.DrawFn, *, falling_ok: bool) -> dict[str, Any]:
    """Activation after a block: 1-8 bits, signed or not, maybe falling channels."""
    bits = draw(st.integers(1, 8))
    signed = bits > 1 and draw(st.booleans())
    falling = falling_ok and draw(st.booleans())
    return {"bits": bits, "signed": signed, "falling": falling}


@st.composite
def image_blocks(draw: st.DrawFn, channels: int, size: int) -> list[dict[str, Any]]:
    """Blocks on an [H, W, C] stream; stops (or is cut short) before the image vanishes."""
    blocks: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["conv", "concat", "residual", "conv", "shuffle"]))
        if kind == "conv":
            k = draw(st.sampled_from([k for k in (3, 1, 2) if k <= size]))
            pad = draw(st.sampled_from([k // 2, 0]))
            stride = draw(st.integers(1, 2)) if size + 2 * pad - k >= 2 else 1
            out_ch = draw(st.integers(1, 6))
            kind = draw(st.sampled_from(["one", "grouped", "depthwise"]))
            groups = 1
            if kind == "depthwise":
                out_ch = groups = channels
            elif kind == "grouped" and channels > 1:
                # groups divide both channel counts; more outputs than groups per group
                groups = draw(
                    st.sampled_from([d for d in range(2, channels + 1) if channels % d == 0])
                )
                out_ch = groups * draw(st.integers(1, 3))
            block = {
                "op": "conv",
                "channels": out_ch,
                "kernel": k,
                "stride": stride,
                "padding": pad,
                "groups": groups,
                "weight_bits": draw(st.integers(1, 8)),
                "act": draw(act_specs(falling_ok=True)),
            }
            size = (size + 2 * pad - k) // stride + 1
            if size >= 2 and draw(st.booleans()):
                block["pool"] = 2
                size //= 2
            channels = out_ch
        elif kind == "residual":
            block = {
                "op": "residual",
                "depthwise": draw(st.booleans()),
                "weight_bits": draw(st.integers(2, 8)),
                "shift": [draw(st.integers(0, 2)), draw(st.integers(0, 2))],
                "branch_act": draw(act_specs(falling_ok=True)),
                "act": draw(act_specs(falling_ok=False)),
            }
        elif kind == "concat":
            block = {
                "op": "concat",
                "channels": [draw(st.integers(1, 4)), draw(st.integers(1, 4))],
                "keep_trunk": draw(st.booleans()),
                "weight_bits": draw(st.integers(1, 8)),
                "act": draw(act_specs(falling_ok=True)),
            }
            channels = sum(block["channels"]) + (channels if block["keep_trunk"] else 0)
        else:
            choices = [d for d in range(2, channels + 1) if channels % d == 0]
            if not choices:
                continue
            block = {"op": "shuffle", "groups": draw(st.sampled_from(choices))}
        blocks.append(block)
        if size < 1:
            break
    return blocks


@st.composite
def design_specs(draw: st.DrawFn, sparse: bool = True) -> Spec:
    """One random design: an image or a vector input, blocks, dense layers, the output.

    ``sparse=False``: no layer on the sparse engine (the HLS backend has no kernel for it;
    nothing is drawn for it, so no example is wasted on a design it would refuse)."""
    image = draw(st.booleans())
    in_bits = draw(st.integers(1, 8))
    spec: Spec = {
        "input": {"bits": in_bits, "signed": in_bits > 1 and draw(st.booleans())},
        "seed": draw(st.integers(0, 2**16)),
        "fold_seed": draw(st.integers(0, 2**16)),
        "max_port_bits": draw(st.sampled_from([32, 64])),
        "backpressure": draw(st.booleans()),
    }
    if image:
        size, channels = draw(st.integers(2, 6)), draw(st.integers(1, 4))
        spec["input"]["shape"] = [size, size, channels]
        spec["blocks"] = draw(image_blocks(channels, size))
    else:
        spec["input"]["shape"] = [draw(st.integers(1, 24))]
        spec["blocks"] = []
    for _ in range(draw(st.integers(0, 2))):
        spec["blocks"].append(
            {
                "op": "dense",
                "outputs": draw(st.integers(1, 16)),
                "weight_bits": draw(st.integers(1, 8)),
                "act": draw(act_specs(falling_ok=True)),
                **(draw(sparse_specs()) if sparse else {}),
            }
        )
    spec["blocks"].append(
        {
            "op": "output",
            "outputs": draw(st.integers(1, 8)),
            "weight_bits": draw(st.integers(1, 8)),
            "bias": draw(st.booleans()),
            **(draw(sparse_specs()) if sparse else {}),
        }
    )
    return spec


@st.composite
def sparse_specs(draw: st.DrawFn) -> dict[str, Any]:
    """Maybe put a dense layer on the EIE-style sparse engine, pruned to a density.

    Empty (dense hardware) or ``{"sparse": {...}}``; :func:`build_graph` honours it when
    the layer can go there (weights of 2+ bits to prune, an input with zeros to skip)."""
    if not draw(st.booleans()):
        return {}
    return {
        "sparse": {
            "density": draw(st.sampled_from([0.3, 0.05, 0.6, 1.0])),
            "pes": draw(st.integers(1, 4)),
            "queue_depth": draw(st.integers(1, 8)),
            "index_bits": draw(st.integers(2, 4)),
        }
    }


def _falling(act: dict[str, Any]) -> float:
    return 0.5 if act.get("falling") else 0.0


def build_graph(spec: Spec) -> tuple[Graph, dict[str, dict[str, Any]]]:
    """The model graph a spec describes (deterministic: weights from ``spec['seed']``)
    and the sparse-engine settings of the layers that go there, by name."""
    sparse: dict[str, dict[str, Any]] = {}
    inp = spec["input"]
    b = GraphBuilder(
        tuple(inp["shape"]), input_bits=inp["bits"], signed_input=inp["signed"], seed=spec["seed"]
    )
    b.meta["source"] = "fuzz spec " + json.dumps(spec, sort_keys=True)
    for i, blk in enumerate(spec["blocks"]):
        op = blk["op"]
        if op == "conv":
            k, p, s = blk["kernel"], blk["padding"], blk["stride"]
            b.conv(
                blk["channels"],
                (k, k),
                stride=(s, s),
                padding=(p, p),
                groups=blk["groups"],
                weight_bits=blk["weight_bits"],
                name=f"conv{i}",
            )
            _act(b, blk["act"], f"mt{i}")
            if blk.get("pool"):
                b.pool(blk["pool"])
        elif op == "residual":
            trunk = b.last
            c = b._shape(trunk)[-1]
            if blk["depthwise"]:
                b.conv(c, (3, 3), groups=c, weight_bits=blk["weight_bits"], name=f"res{i}")
            else:
                b.conv(c, (1, 1), padding=(0, 0), weight_bits=blk["weight_bits"], name=f"res{i}")
            branch = _act(b, blk["branch_act"], f"mt_res{i}")
            s = b.add(trunk, branch, shift=tuple(blk["shift"]))
            _act(b, blk["act"], f"mt_add{i}", src=s)
        elif op == "concat":
            trunk = b.last
            outs = []
            for j, (ch, k) in enumerate(zip(blk["channels"], (1, 3), strict=True)):
                pad = k // 2
                b.conv(
                    ch,
                    (k, k),
                    src=trunk,
                    padding=(pad, pad),
                    weight_bits=blk["weight_bits"],
                    name=f"cat{i}_{j}",
                )
                outs.append(_act(b, blk["act"], f"mt_cat{i}_{j}"))
            b.concat(*outs, *([trunk] if blk["keep_trunk"] else []))
        elif op == "shuffle":
            b.shuffle(blk["groups"])
        elif op == "dense":
            b.dense(blk["outputs"], weight_bits=blk["weight_bits"], name=f"fc{i}")
            _maybe_sparse(b, blk, sparse, spec["seed"] + i)
            _act(b, blk["act"], f"mt{i}")
        elif op == "output":
            b.dense(blk["outputs"], weight_bits=blk["weight_bits"], bias=blk["bias"], name="fc_out")
            _maybe_sparse(b, blk, sparse, spec["seed"] + i)
        else:
            raise ValueError(f"fuzz spec: unknown block op {op!r}")
    return b.output(), sparse


def _maybe_sparse(
    b: GraphBuilder, blk: dict[str, Any], sparse: dict[str, dict[str, Any]], seed: int
) -> None:
    """Prune the Dense just added and list it for the sparse engine, when ``blk`` asks and
    the layer can go there (its own generator: dense designs draw what they always drew)."""
    want = blk.get("sparse")
    node = b.nodes[-1]
    if not want or blk["weight_bits"] < 2 or node_ranges(b._graph())[node.inputs[0]].bipolar:
        return
    w = node.tensors["weight"]
    w[np.random.default_rng(seed).random(w.shape) >= want["density"]] = 0
    values = len(np.unique(w[w != 0]))
    code_bits = max(1, int(np.ceil(np.log2(values + 1))))  # code 0 is the padding zero
    sparse[node.name] = {
        "pes": want["pes"],
        "queue_depth": want["queue_depth"],
        "index_bits": want["index_bits"],
        "code_bits": code_bits,
        "simd": None,
    }


def _act(b: GraphBuilder, act: dict[str, Any], name: str, src: str | None = None) -> str:
    return b.thresholds(
        act["bits"], src=src, signed=act["signed"], falling=_falling(act), name=name
    )


def build_design(spec: Spec) -> tuple[Graph, dict[str, Any]]:
    """(model graph, lowering settings): explicit PE/SIMD drawn from every compute unit's
    legal choices with ``spec['fold_seed']``, so folding corners are fuzzed too."""
    graph, sparse = build_graph(spec)
    lowering = {"default": None, "layers": sparse} if sparse else None
    g = unfolded_lowering(graph, sparse=lowering, max_port_bits=spec["max_port_bits"])
    shapes = infer_shapes(g)
    rng = np.random.default_rng(spec["fold_seed"])
    pe, simd = [], []
    for node in compute_units(g):
        pe.append(int(rng.choice(pe_choices(node))))
        simd.append(int(rng.choice(simd_choices(g, node, shapes))))
    settings = {
        "pe": pe,
        "simd": simd,
        "max_port_bits": spec["max_port_bits"],
        "sparse": lowering,
    }
    return graph, settings


#: random input vectors per fuzzed design (the extreme vectors come on top)
VECTORS = 6


def check_design(spec: Spec, workdir: Path, mutate: Callable[[Path], None] | None = None) -> dict:
    """Lower, generate (then ``mutate`` the design folder), simulate on Icarus, compare.

    The fuzz test's property, and what :func:`qfab.sweep.run_fuzz_regression` runs on
    each design as a Ray task."""
    graph, hw_settings = build_design(spec)
    x = input_vectors(graph, VECTORS, data_seed=spec["seed"])
    hw = lower(graph, **hw_settings)
    manifest = generate_verilog(hw, workdir / "rtl")
    if mutate is not None:
        mutate(workdir / "rtl")
    result = run_cocotb(
        workdir / "rtl",
        x,
        simulator="icarus",
        backpressure=bool(spec.get("backpressure")),
        seed=spec["seed"],
        build_dir=workdir / "build",
    )
    tapped = [t["model_node"] for t in manifest["taps"]]
    return compare_rtl_to_golden(graph, x, result, manifest["output"]["model_node"], tapped)


def draw_specs(n: int, seed: int, strategy: st.SearchStrategy[Spec] | None = None) -> list[Spec]:
    """The ``n`` specs hypothesis draws for ``seed``: the designs the fuzz test checks with
    that seed (it draws the same specs whatever the check does while it passes), drawn
    without checking any, so they can be checked elsewhere (Ray tasks)."""
    drawn: list[Spec] = []

    @settings(
        max_examples=n,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(spec=strategy if strategy is not None else design_specs())
    def collect(spec: Spec) -> None:
        drawn.append(spec)

    hypothesis_seed(seed)(collect)()
    return drawn


def write_regression(spec: Spec, directory: Path, reason: str) -> Path:
    """Write a failing spec where :func:`load_regressions` finds it (one file per spec)."""
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(spec, sort_keys=True)
    path = directory / f"spec_{hashlib.sha1(text.encode()).hexdigest()[:12]}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"reason": reason, "spec": spec}, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def load_regressions(directory: Path) -> dict[str, Spec]:
    """Every spec written by :func:`write_regression`, by file name."""
    return {
        p.stem: json.loads(p.read_text())["spec"] for p in sorted(directory.glob("spec_*.json"))
    }


def spec_features(spec: Spec) -> set[str]:
    """What a spec exercises, in words: op kinds, widths, encodings (coverage checks)."""
    inp = spec["input"]
    feats = {f"input {'signed' if inp['signed'] else 'unsigned'}", f"input {inp['bits']}-bit"}
    feats.add("image" if len(inp["shape"]) == 3 else "vector")
    feats.update({"backpressure"} if spec.get("backpressure") else set())
    prev_bits = inp["bits"] if inp["signed"] else None  # 1-bit unsigned input is not bipolar
    for blk in spec["blocks"]:
        op = blk["op"]
        feats.add(op)
        if "weight_bits" in blk:
            feats.add(f"weights {blk['weight_bits']}-bit")
        if op == "conv":
            feats.update(
                f
                for f, on in [
                    ("depthwise", blk["groups"] == blk["channels"] and blk["groups"] > 1),
                    ("grouped", 1 < blk["groups"] < blk["channels"]),
                    ("stride 2", blk["stride"] == 2),
                    ("padding", blk["padding"] > 0),
                    ("pool", bool(blk.get("pool"))),
                ]
                if on
            )
        for key in ("act", "branch_act"):
            act = blk.get(key)
            if act:
                feats.add(f"act {act['bits']}-bit{' signed' if act['signed'] else ''}")
                feats.update({"falling"} if act["falling"] else set())
        if op in ("dense", "output") and blk["weight_bits"] == 1 and prev_bits == 1:
            feats.add("xnor")
        if op in ("conv", "dense", "residual", "concat"):
            prev_bits = blk["act"]["bits"]
        if op == "output" and blk["bias"]:
            feats.add("bias")
    return feats


def design_features(spec: Spec) -> set[str]:
    """:func:`spec_features` plus what only the built design knows (the sparse engine goes
    only where a layer can take it)."""
    _, hw_settings = build_design(spec)
    return spec_features(spec) | ({"sparse engine"} if hw_settings["sparse"] else set())
