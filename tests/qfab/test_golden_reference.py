"""Golden against a second, naive executor, on random graphs: every node's output, exactly.

Golden is the reference every other level is compared against, so it gets an independent
check of its own. ``reference_run`` below re-implements each op from its definition in
the IR documentation, with plain loops over vectors, pixels and channels on ``[N, H, W, C]``
arrays (no im2col, no broadcasting tricks, no code shared with ``qfab.ops``), and
hypothesis draws small graphs over every model op: dense, convolution with stride,
padding and groups, depthwise, max pool with stride, residual add with shifts, concat,
channel shuffle, thresholds with falling channels, signed offsets and bipolar outputs,
signed and unsigned inputs of 1-8 bits and weights of 1-8 bits.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qfab.ops.layout as layout
import qfab.ops.threshold as threshold_mod
from qfab.golden import run_golden_int
from qfab.ir import Graph, Node
from qfab.random_graph import GraphBuilder


def _conv(node: Node, x: np.ndarray) -> np.ndarray:
    w = node.tensors["weight"].astype(np.int64)  # [OC, KH, KW, IC/groups]
    oc, kh, kw, icg = w.shape
    (sh, sw), (ph, pw) = node.attrs["stride"], node.attrs["padding"]
    n, h, wd, _ = x.shape
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    per_group = oc // int(node.attrs["groups"])
    out = np.zeros((n, oh, ow, oc), np.int64)
    for b in range(n):
        for oy in range(oh):
            for ox in range(ow):
                for o in range(oc):
                    first_in = (o // per_group) * icg
                    total = 0
                    for ky in range(kh):
                        for kx in range(kw):
                            iy, ix = oy * sh - ph + ky, ox * sw - pw + kx
                            if 0 <= iy < h and 0 <= ix < wd:  # outside: zero padding
                                for i in range(icg):
                                    total += int(x[b, iy, ix, first_in + i]) * int(w[o, ky, kx, i])
                    out[b, oy, ox, o] = total
    return out


def _dense(node: Node, x: np.ndarray) -> np.ndarray:
    w = node.tensors["weight"].astype(np.int64)
    bias = node.tensors.get("bias")
    out = np.zeros((len(x), w.shape[0]), np.int64)
    for b in range(len(x)):
        for o in range(w.shape[0]):
            total = sum(int(x[b, i]) * int(w[o, i]) for i in range(w.shape[1]))
            out[b, o] = total + (int(bias[o]) if bias is not None else 0)
    return out


def _thresholds(node: Node, x: np.ndarray) -> np.ndarray:
    t = node.tensors["thresholds"]
    d = node.tensors.get("direction")
    offset, bipolar = int(node.attrs["offset"]), bool(node.attrs.get("bipolar"))
    out = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        c = idx[-1]
        a = int(x[idx]) * (int(d[c]) if d is not None else 1)
        count = sum(1 for k in range(t.shape[1]) if a >= int(t[c, k]))
        out[idx] = 2 * count - 1 if bipolar else offset + count
    return out


def _max_pool(node: Node, x: np.ndarray) -> np.ndarray:
    (kh, kw), (sh, sw) = node.attrs["kernel"], node.attrs["stride"]
    n, h, w, c = x.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = np.zeros((n, oh, ow, c), np.int64)
    for b in range(n):
        for oy in range(oh):
            for ox in range(ow):
                for ch in range(c):
                    out[b, oy, ox, ch] = max(
                        int(x[b, oy * sh + ky, ox * sw + kx, ch])
                        for ky in range(kh)
                        for kx in range(kw)
                    )
    return out


def _shuffle(node: Node, x: np.ndarray) -> np.ndarray:
    """Channels as a [groups, C/groups] matrix read column by column: output ``j`` is
    input ``(j % groups) * (C / groups) + j // groups``."""
    g, c = int(node.attrs["groups"]), x.shape[-1]
    out = np.zeros_like(x)
    for j in range(c):
        out[..., j] = x[..., (j % g) * (c // g) + j // g]
    return out


def reference_run(graph: Graph, x_int: np.ndarray) -> dict[str, np.ndarray]:
    """Every node's output, ``[N, H, W, C]`` for images and ``[N, F]`` otherwise."""
    vals: dict[str, np.ndarray] = {}
    for node in graph.nodes:
        ins = [vals[i] for i in node.inputs]
        if node.op == "InputQuant":
            shape = node.attrs.get("shape") or [node.attrs["features"]]
            out = np.asarray(x_int, np.int64).reshape(len(x_int), *shape)
        elif node.op == "Conv2d":
            out = _conv(node, ins[0])
        elif node.op == "Dense":
            out = _dense(node, ins[0])
        elif node.op == "MultiThreshold":
            out = _thresholds(node, ins[0])
        elif node.op == "MaxPool":
            out = _max_pool(node, ins[0])
        elif node.op == "Flatten":  # NHWC order: pixels in raster order, channels inside
            out = ins[0].reshape(len(ins[0]), -1)
        elif node.op == "Add":
            s = node.attrs["shift"]
            out = ins[0] * 2 ** int(s[0]) + ins[1] * 2 ** int(s[1])
        elif node.op == "Concat":
            out = np.concatenate(ins, axis=-1)
        elif node.op == "ChannelShuffle":
            out = _shuffle(node, ins[0])
        elif node.op == "OutputDequant":
            scale, bias = node.tensors["scale"], node.tensors["bias"]
            out = np.zeros(ins[0].shape, np.float32)
            for idx in np.ndindex(out.shape):
                out[idx] = np.float32(ins[0][idx]) * scale[idx[-1]] + bias[idx[-1]]
        else:
            raise AssertionError(f"reference has no {node.op}")
        vals[node.name] = out
    return vals


@st.composite
def random_graphs(draw) -> Graph:
    """A small image graph: 1-4 random blocks, then dense layers and the output."""
    h, w, c = draw(st.integers(2, 5)), draw(st.integers(2, 5)), draw(st.integers(1, 4))
    b = GraphBuilder(
        (h, w, c),
        input_bits=draw(st.integers(1, 8)),
        signed_input=draw(st.booleans()),
        seed=draw(st.integers(0, 2**32 - 1)),
    )
    bits = st.integers(1, 8)

    def activate(src: str) -> str:
        if not draw(st.integers(0, 4)):  # sometimes raw accumulators flow on
            return src
        return b.thresholds(
            draw(st.integers(1, 3)),
            src=src,
            signed=draw(st.booleans()),
            falling=draw(st.sampled_from([0.0, 0.5])),
        )

    def conv(src: str, channels: int | None = None, same: bool = False) -> str:
        ih, iw, ic = b._shape(src)
        groups = draw(st.sampled_from([g for g in range(1, ic + 1) if ic % g == 0]))
        out = channels or groups * draw(st.integers(1, max(1, 6 // groups)))
        if same:  # keeps H and W (for an add or concat partner)
            kernel, stride, pad = (1, 1), (1, 1), (0, 0)
            if draw(st.booleans()):
                kernel, pad = (3, 3), (1, 1)
        else:
            pad = (draw(st.integers(0, 1)), draw(st.integers(0, 1)))
            kernel = (
                draw(st.integers(1, min(3, ih + 2 * pad[0]))),
                draw(st.integers(1, min(3, iw + 2 * pad[1]))),
            )
            stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
        return b.conv(
            out, kernel, src=src, stride=stride, padding=pad, groups=groups, weight_bits=draw(bits)
        )

    cur = "input"
    for _ in range(draw(st.integers(1, 4))):
        ih, iw, ic = b._shape(cur)
        kind = draw(st.sampled_from(["conv", "depthwise", "pool", "add", "concat", "shuffle"]))
        if kind == "conv":
            cur = activate(conv(cur))
        elif kind == "depthwise":
            k = (min(3, ih), min(3, iw))
            cur = activate(
                b.conv(ic, k, src=cur, padding=(1, 1), groups=ic, weight_bits=draw(bits))
            )
        elif kind == "pool":
            k = draw(st.integers(1, min(2, ih, iw)))
            cur = b.pool(k, src=cur, stride=draw(st.integers(1, 2)))
        elif kind == "add":
            other = activate(conv(cur, channels=ic, same=True))
            cur = b.add(cur, other, (draw(st.integers(0, 2)), draw(st.integers(0, 2))))
        elif kind == "concat":
            first = cur if draw(st.booleans()) else activate(conv(cur, same=True))
            cur = b.concat(first, activate(conv(cur, same=True)))
        else:
            cur = b.shuffle(
                draw(st.sampled_from([g for g in range(1, ic + 1) if ic % g == 0])), cur
            )
    if draw(st.booleans()):
        cur = activate(b.dense(draw(st.integers(1, 5)), src=cur, weight_bits=draw(bits)))
    b.dense(draw(st.integers(1, 4)), src=cur, weight_bits=draw(bits), bias=True)
    return b.output()


def check_against_reference(graph: Graph, x: np.ndarray) -> None:
    """Golden == the reference on every node and vector, else the first difference."""
    vectors = len(x)
    gold = run_golden_int(graph, x).outputs
    ref = reference_run(graph, x)
    for node in graph.nodes:
        want = ref[node.name].reshape(vectors, -1)
        got = gold[node.name]
        assert got.shape == want.shape, f"{node.name} ({node.op}): {got.shape} vs {want.shape}"
        if node.op == "OutputDequant":  # float32 logits, bit for bit
            got, want = got.astype(np.float32).view(np.int32), want.view(np.int32)
        bad = np.argwhere(got != want)
        if bad.size:
            v, e = (int(i) for i in bad[0])
            flat = ref[node.name].reshape(vectors, -1)
            raise AssertionError(
                f"{node.name} ({node.op}) vector {v} element {e}: "
                f"golden {gold[node.name][v, e]}, reference {flat[v, e]}"
            )


@settings(max_examples=100, deadline=None)
@given(graph=random_graphs(), vectors=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_golden_equals_a_naive_reference_on_every_node(graph, vectors, seed):
    first = graph.nodes[0]
    bits, signed = int(first.attrs["bits"]), bool(first.attrs["signed"])
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    rng = np.random.default_rng(seed)
    x = rng.integers(lo, hi + 1, size=(vectors, int(first.attrs["features"])))
    x[0] = hi  # extremes of the input always among the vectors
    if vectors > 1:
        x[1] = lo
    check_against_reference(graph, x)


def _fixed_graph() -> Graph:
    """A graph where each mutation below must show: 6 channels shuffled in 2 and 3 groups
    (a permutation that is not its own inverse), an add with unequal shifts, falling
    channels after a grouped conv."""
    b = GraphBuilder((3, 3, 6), input_bits=4, seed=7)
    c = b.conv(6, (3, 3), padding=(1, 1), groups=2, weight_bits=3, name="conv0")
    t = b.thresholds(3, src=c, falling=0.5, name="mt0")
    s2 = b.shuffle(2, t)
    s3 = b.shuffle(3, s2)
    other = b.thresholds(2, src=b.conv(6, (1, 1), padding=(0, 0), src=s3, name="conv1"))
    b.add(s3, other, (0, 2))
    b.dense(3, weight_bits=3, bias=True)
    return b.output()


MUTATIONS = {
    "shuffle transposed": ("shuffle_order", lambda real: lambda c, g: np.argsort(real(c, g))),
    "second add shift ignored": (
        "add_shifted",
        lambda real: lambda xs, shifts: real(xs, [shifts[0], 0]),
    ),
}


@pytest.mark.parametrize("mutation", [*MUTATIONS, "direction ignored"])
def test_the_reference_catches_a_wrong_golden(monkeypatch, mutation):
    """The comparison can fail: golden itself made wrong in one place, on a fixed graph
    (and its inputs' extremes), is caught."""
    graph = _fixed_graph()
    x = np.random.default_rng(0).integers(0, 16, size=(4, 54))
    x[0], x[1] = 15, 0
    check_against_reference(graph, x)  # right as it is
    if mutation == "direction ignored":
        real = threshold_mod.apply_thresholds
        monkeypatch.setattr(
            threshold_mod,
            "apply_thresholds",
            lambda t, acc, offset, bipolar, direction=None: real(t, acc, offset, bipolar),
        )
    else:
        name, wrap = MUTATIONS[mutation]
        monkeypatch.setattr(layout, name, wrap(getattr(layout, name)))
    with pytest.raises(AssertionError, match="golden"):
        check_against_reference(graph, x)
