"""Input vectors that drive every accumulator to its derived minimum and maximum.

Uniform random inputs almost never reach a layer's accumulator extremes: with mixed-sign
weights the sum concentrates near its mean, and the all-low / all-high vectors cancel
too. An accumulator one bit too narrow would pass such a simulation. The vectors made
here aim at each accumulating node (``Dense``, ``Conv2d`` incl. grouped/depthwise,
``Add``) of the model graph, each channel, each sense (min and max), as
:mod:`qfab.ranges` derives them:

* **First layers** (no threshold between the node and the input) are exact by
  construction: the accumulator is linear in the inputs, so ``x = hi`` where the weight
  is positive and ``lo`` where it is negative reaches ``sum_j max(w_j*lo, w_j*hi)``;
  a convolution aims at one output pixel (nearest the centre, so its window has no
  padding when one such pixel exists; among a few candidates the best is kept).
* **Deeper layers**: the wanted sign of every earlier value is propagated backwards
  (a surrogate gradient: weights as they are, a threshold as its direction times the
  fraction of its steps the channel can take, a max pool raising one element or lowering
  all, adds by their shifts), which gives the brief's rule "previous activation at its
  max where the weight is positive, at its min where negative". A greedy coordinate
  search on the real (golden) forward pass then improves each target one input at a
  time, stopping at the derived bound. A derived bound may be unreachable (a channel
  whose thresholds never fire caps the next layer), so :class:`ExtremeSet` reports, per
  node and channel, whether the derived min and max were reached exactly.

The count stays small: targets whose relevant inputs do not conflict share one vector
(convolutions aim at different pixels, so many channels pack into one), the set is then
reduced to a greedy cover of the best value found for every (node, channel, sense), and
``max_vectors`` caps it by the documented rule of :func:`extreme_vectors`.

Core module: numpy and the core only (it imports no stage); golden's own op execution
evaluates the candidates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from qfab.errors import IRError
from qfab.ir import Graph, Node, infer_shapes
from qfab.ops import OPS, op_of
from qfab.ops.layout import shuffle_order
from qfab.ops.linear import im2col
from qfab.ranges import node_ranges
from qfab.values import IntRange, input_range

__all__ = ["ACCUMULATING", "ExtremeSet", "NodeReach", "extreme_vectors"]

#: Model ops whose output is an accumulator (a register the hardware must size).
ACCUMULATING = ("Dense", "Conv2d", "Add")

#: Ops the backward sign propagation knows (every model-graph op with an integer output).
_ROUTED = (
    *ACCUMULATING,
    "InputQuant",
    "MultiThreshold",
    "MaxPool",
    "Flatten",
    "Concat",
    "ChannelShuffle",
)

#: Candidate output pixels tried per convolution target: on a node linear in the inputs,
#: every pixel of a small map (a small image may have no window free of padding, and
#: which one reaches most depends on the weights), else the few nearest the centre
#: (their windows hold no padding).
ALL_PIXELS_UP_TO = 36
PIXEL_CANDIDATES = 4
#: Rounds of the greedy coordinate search (each moves one input of each target).
SEARCH_ROUNDS = 24
#: Input coordinates tried per target and round (the largest-gradient ones first).
SEARCH_COORDS = 64
#: Input values a search move may choose from (all of them for inputs of up to 4 bits).
SEARCH_LEVELS = 16
#: Pair moves (two inputs set at once) tried by a target no single move improves, at
#: most this many candidates: a hidden channel may need two inputs moved together to
#: step while another holds (found by the brute-force test: 3 inputs, two thresholds
#: pulling one input both ways).
PAIR_CANDIDATES = 20_000
#: Vectors evaluated per forward call (bounds the memory of the batched search).
BATCH = 4096
#: Work budget of the whole search, in multiply-adds of golden's forward pass (a fraction
#: of a second of NumPy): rounds stop early on large graphs, small ones finish theirs.
SEARCH_WORK = 3 * 10**7
#: Work budget of the sign propagation into nodes past the first layer, in multiply-adds
#: of the backward passes: a CNV-sized net has ~1,000 channel extremes, each a pass
#: through every layer before it. First layers are always aimed in full (cheap, and there
#: the extremes are exact); deeper targets get fewer candidate pixels, then none (they
#: start from the all-low vector and only the search works on them) once it is spent.
AIM_WORK = 2 * 10**6


Shapes = dict[str, tuple[int, ...]]
Ranges = dict[str, IntRange]


@dataclass(frozen=True)
class NodeReach:
    """Per channel of one accumulating node: the derived range and the values reached.

    ``got_lo``/``got_hi`` are the smallest/largest accumulator values the extreme vectors
    produce (over every vector and, for a convolution, every pixel).
    """

    node: str
    derived_lo: np.ndarray
    derived_hi: np.ndarray
    got_lo: np.ndarray
    got_hi: np.ndarray

    @property
    def channels(self) -> int:
        return len(self.derived_lo)

    @property
    def reached_lo(self) -> np.ndarray:
        return self.got_lo == self.derived_lo

    @property
    def reached_hi(self) -> np.ndarray:
        return self.got_hi == self.derived_hi

    def describe(self) -> str:
        """``fc1: reached the derived max on 61/64 channels, the min on 58/64``."""
        c = self.channels
        return (
            f"{self.node}: reached the derived max on {int(self.reached_hi.sum())}/{c} "
            f"channels, the min on {int(self.reached_lo.sum())}/{c}"
        )


@dataclass
class ExtremeSet:
    """Input integers ``[N, features]`` (in the InputQuant's range) and what they reach."""

    vectors: np.ndarray
    reach: dict[str, NodeReach] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.vectors)

    def summary(self) -> dict[str, object]:
        """Counts for a report: vectors, and per node how many channel extremes are reached."""
        layers = {
            name: {
                "channels": r.channels,
                "max_reached": int(r.reached_hi.sum()),
                "min_reached": int(r.reached_lo.sum()),
            }
            for name, r in self.reach.items()
        }
        return {
            "vectors": len(self.vectors),
            "extremes": 2 * sum(r.channels for r in self.reach.values()),
            "extremes_reached": sum(v["max_reached"] + v["min_reached"] for v in layers.values()),
            "layers": layers,
        }


@dataclass
class _Target:
    """One wanted extreme: ``sense * output(node)[feature]`` as large as possible."""

    node: str
    channel: int
    sense: int  # +1: the maximum, -1: the minimum
    bound: int  # sense * the derived extreme
    x: np.ndarray | None = None
    care: np.ndarray | None = None  # inputs this target's value depends on
    value: int | None = None  # sense * the value reached
    feature: int = 0


def extreme_vectors(graph: Graph, max_vectors: int | None = None) -> ExtremeSet:
    """Vectors reaching each accumulating node's per-channel min and max (see the module).

    Kept (a greedy cover, :func:`_cover`): for every (node, channel, sense) whose derived
    extreme was reached, a vector reaching it; for every node, vectors giving its largest
    and smallest value found (what its accumulator width must hold). ``max_vectors``
    caps the count, the node-level extremes kept first. The result is deterministic.
    """
    nodes = [n for n in graph.nodes if n.op != "OutputDequant"]
    for n in nodes:
        if n.op not in _ROUTED:
            raise IRError(
                f"extremes: node '{n.name}' ({n.op}) is not a model-graph op; allowed: "
                f"{sorted(_ROUTED)}"
            )
    shapes = infer_shapes(graph)
    ranges = node_ranges(graph)
    first = graph.nodes[0]
    lo, hi = input_range(int(first.attrs["bits"]), bool(first.attrs["signed"]))
    feats = int(first.attrs["features"])
    evaluate = _Evaluator(nodes, shapes)
    targets = _targets(nodes, shapes, ranges)
    if not targets or feats == 0:
        return ExtremeSet(np.zeros((0, feats), np.int64), {})

    # 1. sign propagation, best of a few pixels for spatial targets
    _aim(targets, nodes, shapes, ranges, evaluate, lo, hi)
    # 2. greedy coordinate search where the bound was not reached
    work = _work_per_vector(nodes, shapes)
    _search([t for t in targets if t.value < t.bound], evaluate, lo, hi, work)
    # 3. pack compatible targets, keep each target's value, cover, cap
    candidates = np.concatenate([_pack(targets, evaluate, lo), *(t.x[None] for t in targets)])
    candidates = _unique_rows(candidates)
    values = evaluate(candidates, {t.node for t in targets})
    chosen = _cover(candidates, values, targets, ranges, _linear_nodes(nodes), max_vectors)
    vectors = candidates[chosen]
    reach = _reach(evaluate(vectors, {t.node for t in targets}), targets, ranges, shapes)
    return ExtremeSet(vectors, reach)


# ----------------------------------------------------------------------------- targets
def _targets(nodes: list[Node], shapes: Shapes, ranges: Ranges) -> list[_Target]:
    out = []
    for n in nodes:
        if n.op not in ACCUMULATING:
            continue
        r = ranges[n.name]
        for c in range(len(r.lo)):
            out.append(_Target(n.name, c, +1, int(r.hi[c])))
            out.append(_Target(n.name, c, -1, -int(r.lo[c])))
    return out


def _pixels_near_centre(shape: tuple[int, ...], every: bool) -> list[int]:
    """Pixel indices of an ``[H, W, C]`` map (or ``[0]`` for a vector), centre first."""
    if len(shape) != 3:
        return [0]
    h, w = shape[0], shape[1]
    ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    dist = (ys - (h - 1) / 2) ** 2 + (xs - (w - 1) / 2) ** 2
    order = np.lexsort((np.arange(h * w), dist.reshape(-1)))
    keep = len(order) if every and len(order) <= ALL_PIXELS_UP_TO else PIXEL_CANDIDATES
    return [int(p) for p in order[:keep]]


def _aim(
    targets: list[_Target],
    nodes: list[Node],
    shapes: Shapes,
    ranges: Ranges,
    evaluate: _Evaluator,
    lo: int,
    hi: int,
) -> None:
    """Set each target's ``x``/``care``/``value`` from the sign-propagated vector of its
    best candidate pixel (all candidates evaluated in one batch)."""
    tries = []  # (target, feature, gradient)
    linear = _linear_nodes(nodes)
    spent = [0]  # backward multiply-adds into deeper nodes (AIM_WORK)
    inputs = int(np.prod(shapes[nodes[0].name]))
    windows = {
        n.name: _window_bounds(n, shapes, lo, hi)
        for n in nodes
        if n.op == "Conv2d" and n.inputs == [nodes[0].name]
    }
    for t in targets:  # graph order: shallow (cheap, exact) targets first
        channels = shapes[t.node][-1]
        pixels = _pixels_near_centre(shapes[t.node], t.node in linear)
        if t.node in windows:  # and the pixels whose windows reach furthest (padding)
            best = windows[t.node][t.sense][:, t.channel]
            top = np.argsort(-best, kind="stable")[:PIXEL_CANDIDATES]
            pixels = list(dict.fromkeys([*pixels, *(int(p) for p in top)]))
        deep = t.node not in linear
        aimed = False
        for p in pixels:
            if deep and spent[0] >= AIM_WORK:
                break
            feature = p * channels + t.channel
            grad = _input_gradient(
                nodes, shapes, ranges, t.node, feature, t.sense, spent if deep else None
            )
            tries.append((t, feature, grad))
            aimed = True
        if not aimed:  # budget spent: the all-low vector, left to the search
            tries.append((t, pixels[0] * channels + t.channel, np.zeros(inputs)))
    x = np.stack([np.where(g > 0, hi, lo) for _, _, g in tries]).astype(np.int64)
    value = np.empty(len(tries), np.int64)
    for name in dict.fromkeys(t.node for t, _, _ in tries):  # each node only as deep as needed
        rows = np.array([i for i, (t, _, _) in enumerate(tries) if t.node == name])
        distinct, which = np.unique(x[rows], axis=0, return_inverse=True)  # unaimed: all-low
        out = evaluate(distinct, {name})[name][which.reshape(-1)]
        value[rows] = [tries[r][0].sense * out[k, tries[r][1]] for k, r in enumerate(rows)]
    for row, (t, feature, grad) in enumerate(tries):
        if t.value is None or value[row] > t.value:
            t.value, t.x, t.care, t.feature = int(value[row]), x[row], grad != 0, feature


def _window_bounds(n: Node, shapes: Shapes, lo: int, hi: int) -> dict[int, np.ndarray]:
    """Per output pixel and channel of a convolution on the input: the largest value its
    window can reach (sense +1) and minus the smallest (sense -1). Only taps inside the
    image count, so a border window of a padded convolution can reach further than any
    interior one; ranking pixels by this finds it however large the map."""
    w = n.tensors["weight"].astype(np.int64)
    ones = np.ones((1, int(np.prod(shapes[n.inputs[0]]))), np.int64)

    def window_sums(weight: np.ndarray) -> np.ndarray:
        part = Node(n.name, n.op, n.inputs, dict(n.attrs), {"weight": weight})
        out = op_of(part).execute(part, [ones], [shapes[n.inputs[0]]], shapes[n.name])
        return np.asarray(out).reshape(-1, shapes[n.name][-1])

    pos, neg = window_sums(np.maximum(w, 0)), window_sums(np.minimum(w, 0))
    return {+1: pos * hi + neg * lo, -1: -(pos * lo + neg * hi)}


# ------------------------------------------------------------------ backward propagation
def _input_gradient(
    nodes: list[Node],
    shapes: Shapes,
    ranges: Ranges,
    target: str,
    feature: int,
    sense: int,
    spent: list[int] | None = None,
) -> np.ndarray:
    """Surrogate d(sense * target[feature]) / d(input), as floats (only its signs and
    relative sizes matter). ``spent[0]`` is increased by the pass's multiply-adds."""
    index = {n.name: i for i, n in enumerate(nodes)}
    grads: dict[str, np.ndarray] = {}
    g = np.zeros(int(np.prod(shapes[target])))
    g[feature] = sense
    grads[target] = g
    for n in reversed(nodes[: index[target] + 1]):
        g = grads.pop(n.name, None)
        if g is None or not np.any(g):
            continue
        if n.op == "InputQuant":
            return g
        if spent is not None:
            spent[0] += _backward_cost(n, g)
        for src, gi in zip(n.inputs, _BACKWARD[n.op](n, g, shapes, ranges), strict=True):
            grads[src] = grads.get(src, 0) + gi
    return np.zeros(int(np.prod(shapes[nodes[0].name])))


def _backward_cost(n: Node, g: np.ndarray) -> int:
    """Multiply-adds of one backward step: non-zero output gradients x their fan-in."""
    fan_in = int(np.prod(n.tensors["weight"].shape[1:])) if "weight" in n.tensors else 1
    return int(np.count_nonzero(g)) * fan_in


def _back_dense(n: Node, g: np.ndarray, shapes: Shapes, ranges: Ranges) -> list[np.ndarray]:
    return [OPS["Dense"].weight(n).T.astype(np.float64) @ g]


@lru_cache(maxsize=64)
def _window_inputs(
    in_shape: tuple[int, ...],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
) -> np.ndarray:
    """Input feature index of every window tap ``[OH, OW, KH, KW, C]``, -1 in the padding."""
    ids = np.arange(1, int(np.prod(in_shape)) + 1, dtype=np.int64)[None]
    return im2col(ids, in_shape, kernel, stride, padding)[0] - 1


def _back_conv(n: Node, g: np.ndarray, shapes: Shapes, ranges: Ranges) -> list[np.ndarray]:
    w = OPS["Conv2d"].weight(n)  # [OC, KH, KW, ICg]
    oc, kh, kw, icg = w.shape
    in_shape = shapes[n.inputs[0]]
    size = int(np.prod(in_shape))
    taps = _window_inputs(in_shape, (kh, kw), tuple(n.attrs["stride"]), tuple(n.attrs["padding"]))
    oh, ow = taps.shape[:2]
    gy = g.reshape(oh, ow, oc)
    py, px, pc = np.nonzero(gy)
    group = pc // (oc // int(n.attrs["groups"]))
    cols = group[:, None] * icg + np.arange(icg)[None, :]  # [K, ICg]
    win = taps[py, px]  # [K, KH, KW, C]
    idx = np.take_along_axis(
        win, np.broadcast_to(cols[:, None, None, :], (len(pc), kh, kw, icg)), 3
    )
    contrib = gy[py, px, pc][:, None, None, None] * w[pc]
    keep = idx >= 0
    out = np.zeros(size)
    np.add.at(out, idx[keep], contrib[keep])
    return [out]


def _back_threshold(n: Node, g: np.ndarray, shapes: Shapes, ranges: Ranges) -> list[np.ndarray]:
    """A monotone step function: slope = direction x the share of its steps in range."""
    t = n.tensors["thresholds"].astype(np.int64)
    acc = ranges[n.inputs[0]]
    c = t.shape[0]
    d = n.tensors.get("direction", np.ones(c, np.int64)).astype(np.int64)
    lo = np.where(d > 0, acc.lo[:c], -acc.hi[:c])
    hi = np.where(d > 0, acc.hi[:c], -acc.lo[:c])
    steps = ((t > lo[:, None]) & (t <= hi[:, None])).sum(axis=1)
    slope = d * steps / np.maximum(1, hi - lo)
    return [(g.reshape(-1, c) * slope).reshape(-1)]


def _back_pool(n: Node, g: np.ndarray, shapes: Shapes, ranges: Ranges) -> list[np.ndarray]:
    """Raising a max needs one element raised; lowering it needs all lowered."""
    h, w, c = shapes[n.inputs[0]]
    (kh, kw), (sh, sw) = n.attrs["kernel"], n.attrs["stride"]
    oh, ow, _ = shapes[n.name]
    gy = g.reshape(oh, ow, c)
    out = np.zeros((h, w, c))
    for dy in range(kh):
        for dx in range(kw):
            part = np.where(gy < 0, gy, gy if (dy, dx) == (kh // 2, kw // 2) else 0)
            out[dy : dy + sh * oh : sh, dx : dx + sw * ow : sw, :] += part
    return [out.reshape(-1)]


def _back_flatten(n: Node, g: np.ndarray, shapes: Shapes, ranges: Ranges) -> list[np.ndarray]:
    return [g]


def _back_add(n: Node, g: np.ndarray, shapes: Shapes, ranges: Ranges) -> list[np.ndarray]:
    return [g * 2.0 ** int(s) for s in n.attrs["shift"]]


def _back_concat(n: Node, g: np.ndarray, shapes: Shapes, ranges: Ranges) -> list[np.ndarray]:
    widths = [shapes[i][-1] for i in n.inputs]
    per = g.reshape(-1, sum(widths))
    cuts = np.cumsum(widths)[:-1]
    return [part.reshape(-1) for part in np.split(per, cuts, axis=1)]


def _back_shuffle(n: Node, g: np.ndarray, shapes: Shapes, ranges: Ranges) -> list[np.ndarray]:
    c = shapes[n.name][-1]
    out = np.zeros((len(g) // c, c))
    out[:, shuffle_order(c, int(n.attrs["groups"]))] = g.reshape(-1, c)
    return [out.reshape(-1)]


_BACKWARD: dict[str, Callable[..., list[np.ndarray]]] = {
    "Dense": _back_dense,
    "Conv2d": _back_conv,
    "MultiThreshold": _back_threshold,
    "MaxPool": _back_pool,
    "Flatten": _back_flatten,
    "Add": _back_add,
    "Concat": _back_concat,
    "ChannelShuffle": _back_shuffle,
}


# ----------------------------------------------------------------------------- forward
class _Evaluator:
    """Golden's op execution on a batch of input integers, up to the nodes asked for."""

    def __init__(self, nodes: list[Node], shapes: Shapes) -> None:
        self.nodes = nodes
        self.shapes = shapes
        self.index = {n.name: i for i, n in enumerate(nodes)}

    def __call__(self, x: np.ndarray, want: set[str]) -> dict[str, np.ndarray]:
        last = max(self.index[w] for w in want)
        parts = [self._run(x[i : i + BATCH], want, last) for i in range(0, len(x), BATCH)]
        return {w: np.concatenate([p[w] for p in parts]) for w in want}

    def _run(self, x: np.ndarray, want: set[str], last: int) -> dict[str, np.ndarray]:
        outs: dict[str, np.ndarray] = {}
        for n in self.nodes[: last + 1]:
            xs = [outs[i] for i in n.inputs] if n.inputs else [x]
            outs[n.name] = op_of(n).execute(
                n, xs, [self.shapes[i] for i in n.inputs], self.shapes[n.name]
            )
        return {w: outs[w] for w in want}


# ------------------------------------------------------------------------------ search
def _search(
    targets: list[_Target], evaluate: _Evaluator, lo: int, hi: int, work: dict[str, int]
) -> None:
    """Greedy coordinate ascent: each round, every unfinished target moves the one input
    (to any of :func:`_levels`) that raises its value most; a target no single move
    improves tries moving two inputs at once (up to :data:`PAIR_CANDIDATES`); it stops
    at the bound, when no such move helps, or when :data:`SEARCH_WORK` is spent (targets
    nearest their bound first). Interior levels matter past a threshold: a hidden
    channel may have to sit between two of its steps."""
    budget = SEARCH_WORK
    levels = _levels(lo, hi)
    active = sorted(targets, key=lambda t: t.bound - t.value)
    for _ in range(SEARCH_ROUNDS):
        tries = []
        for t in active:
            coords = _coords_to_try(t)
            cost = len(coords) * len(levels) * work[t.node]
            if cost > budget:
                break
            budget -= cost
            tries.append((t, coords))
        active = [t for t, _ in tries]
        if not active:
            return
        batch, owners = [], []
        for k, (t, coords) in enumerate(tries):
            cc, vv = np.repeat(coords, len(levels)), np.tile(levels, len(coords))
            moved = t.x[cc] != vv
            cc, vv = cc[moved], vv[moved]
            cand = np.repeat(t.x[None], len(cc), axis=0)
            cand[np.arange(len(cc)), cc] = vv
            batch.append(cand)
            owners.append(np.full(len(cc), k))
        cand = np.concatenate(batch)
        owner = np.concatenate(owners)
        outs = evaluate(cand, {t.node for t in active})
        still = []
        for k, t in enumerate(active):
            rows = np.flatnonzero(owner == k)
            if not len(rows):
                continue
            vals = t.sense * outs[t.node][rows, t.feature]
            best = int(np.argmax(vals))
            if vals[best] > t.value:
                t.x = cand[rows[best]].copy()
                t.value = int(vals[best])
                t.care = np.ones_like(t.care)
            else:
                before = t.value
                budget = _pair_move(t, tries[k][1], levels, evaluate, work, budget)
                if budget is None:
                    return
                if t.value == before:
                    continue  # stuck: no single or pair move helps
            if t.value < t.bound:
                still.append(t)
        active = still


def _pair_move(
    t: _Target,
    coords: np.ndarray,
    levels: np.ndarray,
    evaluate: _Evaluator,
    work: dict[str, int],
    budget: int,
) -> int | None:
    """Move ``t`` by the best setting of two inputs at once, if one raises its value;
    return the budget left (None: spent)."""
    pairs = [(i, j) for a, i in enumerate(coords) for j in coords[a + 1 :]]
    per_pair = len(levels) ** 2
    if not pairs or len(pairs) * per_pair > PAIR_CANDIDATES:
        return budget
    cost = len(pairs) * per_pair * work[t.node]
    if cost > budget:
        return None
    ii = np.repeat([p[0] for p in pairs], per_pair)
    jj = np.repeat([p[1] for p in pairs], per_pair)
    vi = np.tile(np.repeat(levels, len(levels)), len(pairs))
    vj = np.tile(np.tile(levels, len(levels)), len(pairs))
    cand = np.repeat(t.x[None], len(ii), axis=0)
    rows = np.arange(len(ii))
    cand[rows, ii], cand[rows, jj] = vi, vj
    vals = t.sense * evaluate(cand, {t.node})[t.node][:, t.feature]
    best = int(np.argmax(vals))
    if vals[best] > t.value:
        t.x = cand[best].copy()
        t.value = int(vals[best])
        t.care = np.ones_like(t.care)
    return budget - cost


def _levels(lo: int, hi: int) -> np.ndarray:
    """Input values a search move may set: all of a narrow range (up to
    :data:`SEARCH_LEVELS`), else both ends and evenly spaced ones between."""
    if hi - lo + 1 <= SEARCH_LEVELS:
        return np.arange(lo, hi + 1, dtype=np.int64)
    return np.unique(np.rint(np.linspace(lo, hi, SEARCH_LEVELS)).astype(np.int64))


def _work_per_vector(nodes: list[Node], shapes: Shapes) -> dict[str, int]:
    """Multiply-adds (or element operations) of golden's forward pass up to each node."""
    total, out = 0, {}
    for n in nodes:
        size = int(np.prod(shapes[n.name]))
        if n.op in ("Dense", "Conv2d"):
            w = n.tensors["weight"]
            size *= int(np.prod(w.shape[1:]))
        elif n.op == "MultiThreshold":
            size *= n.tensors["thresholds"].shape[1]
        total += size
        out[n.name] = total
    return out


def _coords_to_try(t: _Target) -> np.ndarray:
    """Every input when there are few; else the ones this target depends on, cycled."""
    n = len(t.x)
    if n <= SEARCH_COORDS:
        return np.arange(n)
    pool = np.flatnonzero(t.care) if np.any(t.care) else np.arange(n)
    start = (t.value * 7919) % max(1, len(pool))  # deterministic, moves with progress
    return pool[(start + np.arange(min(SEARCH_COORDS, len(pool)))) % len(pool)]


# ----------------------------------------------------------------------- pack and cover
def _pack(targets: list[_Target], evaluate: _Evaluator, lo: int) -> np.ndarray:
    """Targets whose relevant inputs agree share a vector; a target that loses its value
    in the shared vector (a deeper layer sees the other targets' inputs) keeps its own."""
    feats = len(targets[0].x)
    vals: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    members: list[list[_Target]] = []
    for t in targets:
        for b in range(len(vals)):
            if not np.any(masks[b] & t.care & (vals[b] != t.x)):
                vals[b] = np.where(t.care, t.x, vals[b])
                masks[b] |= t.care
                members[b].append(t)
                break
        else:
            vals.append(np.where(t.care, t.x, lo).astype(np.int64))
            masks.append(t.care.copy())
            members.append([t])
    if not vals:
        return np.zeros((0, feats), np.int64)
    packed = np.stack(vals)
    outs = evaluate(packed, {t.node for t in targets})
    keep = [
        all(t.sense * int(outs[t.node][b, t.feature]) >= t.value for t in members[b])
        for b in range(len(vals))
    ]
    return packed[np.array(keep, bool)]


def _unique_rows(x: np.ndarray) -> np.ndarray:
    _, first = np.unique(x, axis=0, return_index=True)
    return x[np.sort(first)]


def _per_channel(out: np.ndarray, channels: int) -> np.ndarray:
    """``[N, features]`` -> ``[N, channels, pixels]``."""
    return out.reshape(len(out), -1, channels).transpose(0, 2, 1)


def _cover(
    x: np.ndarray,
    outs: dict[str, np.ndarray],
    targets: Sequence[_Target],
    ranges: dict[str, IntRange],
    linear: set[str],
    max_vectors: int | None,
) -> np.ndarray:
    """Greedy set cover: every (node, channel, sense) whose derived extreme some candidate
    reaches, plus each node's most extreme value found overall (what decides its width,
    reached or not). On a node linear in the inputs (``linear``) the best value of every
    channel is kept too: it is the true reachable extreme even where the derived one is
    not (every window of a small padded image holds padding). Elsewhere per-channel
    values short of an unreachable bound are not kept: they would add a vector per
    channel and prove nothing the node-level ones do not.

    The node-level items weigh more than all others together, so a cap keeps them first.
    """
    hits, weights = [], []
    heavy = 2 * sum(len(ranges[t.node].lo) for t in targets) + 1
    for name in dict.fromkeys(t.node for t in targets):
        r = ranges[name]
        v = _per_channel(outs[name], len(r.lo))  # [N, C, P]
        top, bottom = v.max(axis=2), v.min(axis=2)  # [N, C]
        if name in linear:
            exact = np.concatenate([top == top.max(axis=0), bottom == bottom.min(axis=0)], 1)
        else:
            exact = np.concatenate([top == r.hi, bottom == r.lo], axis=1)
        exact = exact[:, exact.any(axis=0)]
        best = np.stack([(top == top.max()).any(axis=1), (bottom == bottom.min()).any(axis=1)], 1)
        hits += [exact, best]
        weights += [np.ones(exact.shape[1], np.int64), np.full(2, heavy, np.int64)]
    covers = np.concatenate(hits, axis=1)  # [N, items]
    weight = np.concatenate(weights)
    chosen: list[int] = []
    open_items = np.ones(covers.shape[1], bool)
    limit = len(x) if max_vectors is None else max_vectors
    while open_items.any() and len(chosen) < limit:
        gain = (covers & open_items) @ weight
        best_row = int(np.argmax(gain))
        if gain[best_row] == 0:
            break
        chosen.append(best_row)
        open_items &= ~covers[best_row]
    return np.array(sorted(chosen), np.int64)


#: Ops after which a node is still linear (affine) in the input integers.
_LINEAR = ("InputQuant", "Dense", "Conv2d", "Add", "Flatten", "Concat", "ChannelShuffle")


def _linear_nodes(nodes: list[Node]) -> set[str]:
    """Nodes whose every ancestor is linear: there the sign vector is the exact optimum."""
    linear: set[str] = set()
    for n in nodes:
        if n.op in _LINEAR and all(i in linear for i in n.inputs):
            linear.add(n.name)
    return linear


def _reach(
    outs: dict[str, np.ndarray], targets: list[_Target], ranges: Ranges, shapes: Shapes
) -> dict[str, NodeReach]:
    reach = {}
    for name in dict.fromkeys(t.node for t in targets):
        r = ranges[name]
        v = _per_channel(outs[name], len(r.lo))
        reach[name] = NodeReach(
            name, r.lo.copy(), r.hi.copy(), v.min(axis=(0, 2)), v.max(axis=(0, 2))
        )
    return reach
