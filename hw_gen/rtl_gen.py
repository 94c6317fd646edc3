"""RTL generator: IR graph + folding -> a self-contained folder of Verilog.

One ``mvau_stream`` (rtl/) per Dense layer, with the MultiThreshold that follows it
fused in; per layer a weight ROM and a threshold ROM module whose contents are baked in
from the IR; ``stream_dwc`` width converters where a layer's PE differs from the next
layer's SIMD; and a top ``qfab_top`` with AXI-Stream input and output. Everything is
written to a temporary folder first and renamed into place.

Every width comes from :mod:`qfab.ranges` (exact value ranges), so the hardware cannot
overflow and the comparison with golden is exact.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
from jinja2 import Environment, PackageLoader, StrictUndefined

from hw_gen.folding import LayerFold, check_fold, cycles_per_frame_bound
from qfab.errors import HardwareError
from qfab.ir import Graph, Node
from qfab.ranges import IntRange, bits_for, node_ranges

LIBRARY = ("mvau_stream.v", "stream_dwc.v")

#: Widest weight multiplied in LUTs (shifted adds, one per weight bit) rather than a DSP.
#: A k-bit weight times an n-bit input costs about k*n LUTs as k adds, fewer than the
#: fabric a DSP48 ties up for it up to k = 4 (FINN also keeps narrow MACs in LUTs);
#: without this, Yosys maps every 2x2 product to a DSP48.
LUT_MUL_MAX_WEIGHT_BITS = 4

#: IR ops this generator maps (everything else: IR + golden + level 1 only).
RTL_OPS = frozenset({"InputQuant", "Dense", "MultiThreshold", "OutputDequant"})


@dataclass(frozen=True)
class Element:
    """How one stream element is encoded: width, signedness, bipolar (1 -> +1, 0 -> -1)."""

    bits: int
    signed: bool = False
    bipolar: bool = False

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Integers -> the unsigned bit patterns on the wire."""
        v = np.asarray(values, dtype=np.int64)
        if self.bipolar:
            return (v > 0).astype(np.int64)
        return v & ((1 << self.bits) - 1)

    def decode(self, raw: np.ndarray) -> np.ndarray:
        """Bit patterns -> integers (sign-extended, or ±1 for bipolar)."""
        r = np.asarray(raw, dtype=np.int64)
        if self.bipolar:
            return np.where(r & 1, 1, -1)
        if self.signed:
            return np.where(r >= 1 << (self.bits - 1), r - (1 << self.bits), r)
        return r


@dataclass
class MvauLayer:
    """Everything the template needs for one Dense (+ MultiThreshold) layer."""

    name: str
    fold: LayerFold
    inp: Element
    weight: Element
    acc_bits: int
    out: Element
    thresholds: np.ndarray | None  # [MH, NUM_T] or None
    offset: int
    weights: np.ndarray  # [MH, MW]
    bias: np.ndarray | None = None  # [MH], last layer only

    @property
    def num_t(self) -> int:
        return 0 if self.thresholds is None else int(self.thresholds.shape[1])

    @property
    def lut_mul(self) -> bool:
        """Build the products from LUTs (narrow weights) instead of DSP multipliers."""
        return self.weight.bits <= LUT_MUL_MAX_WEIGHT_BITS


@dataclass
class RtlDesign:
    """A generated design: where its files are and how its streams are packed."""

    top: str
    out_dir: Path
    sources: list[Path]
    folds: list[LayerFold]
    layers: list[MvauLayer] = field(repr=False)
    in_elem: Element
    in_elems: int  # elements per input beat (SIMD of the first layer)
    in_width: int  # s_axis_tdata width, padded to bytes
    out_elem: Element
    out_elems: int  # elements per output beat (PE of the last layer)
    out_width: int
    features_in: int
    features_out: int
    cycles_bound: int

    @property
    def beats_in(self) -> int:
        return self.features_in // self.in_elems

    @property
    def beats_out(self) -> int:
        return self.features_out // self.out_elems


def _weight_element(name: str, w: np.ndarray, bits: int) -> Element:
    """Bipolar for 1-bit weights, else the narrowest signed width of the actual weights."""
    if bits == 1:
        if not np.all(np.abs(w) == 1):
            raise HardwareError(f"node '{name}' (Dense): 1-bit weights must be bipolar ±1")
        return Element(1, signed=True, bipolar=True)
    return Element(max(2, bits_for(min(int(w.min()), -1), int(w.max()))), signed=True)


def plan_layers(graph: Graph, folds: list[LayerFold]) -> list[MvauLayer]:
    """Pair every Dense with its MultiThreshold and derive all widths from the ranges."""
    supported = RTL_OPS
    for n in graph.nodes:
        if n.op not in supported:
            raise HardwareError(
                f"node '{n.name}' ({n.op}): the RTL generator supports {sorted(supported)} so far"
            )
    fold_of = {f.name: check_fold(f) for f in folds}
    layers: list[MvauLayer] = []
    elem = _input_element(graph.nodes[0])
    nodes = graph.nodes[1:]
    for prev, n in zip(graph.nodes, nodes, strict=False):
        if n.inputs != [prev.name]:
            raise HardwareError(
                f"node '{n.name}' ({n.op}): the RTL generator maps a chain; it reads "
                f"{n.inputs}, not the previous node '{prev.name}'"
            )
    ranges = node_ranges(graph)
    i = 0
    while i < len(nodes):
        n = nodes[i]
        if n.op == "OutputDequant":
            break
        if n.op != "Dense":
            raise HardwareError(f"node '{n.name}' ({n.op}) must follow a Dense layer")
        mt = nodes[i + 1] if i + 1 < len(nodes) and nodes[i + 1].op == "MultiThreshold" else None
        if n.name not in fold_of:
            raise HardwareError(f"no folding given for layer '{n.name}'")
        if "bias" in n.tensors and mt is not None:
            raise HardwareError(
                f"node '{n.name}' (Dense): a bias before thresholds must be folded into them"
            )
        layers.append(_layer(n, mt, fold_of[n.name], elem, ranges))
        elem = layers[-1].out
        i += 2 if mt is not None else 1
    if not layers:
        raise HardwareError("graph has no Dense layer")
    if layers[-1].thresholds is not None:
        raise HardwareError("the last layer must end in its accumulator (OutputDequant)")
    return layers


def _input_element(node: Node) -> Element:
    return Element(int(node.attrs["bits"]), signed=bool(node.attrs["signed"]))


def _layer(
    n: Node, mt: Node | None, fold: LayerFold, inp: Element, ranges: dict[str, IntRange]
) -> MvauLayer:
    """One MVAU: widths from the exact ranges of its accumulator, thresholds and output.

    The accumulator register is two's complement (the threshold compare is signed) and
    must hold every reachable accumulator value and every threshold; partial sums may
    wrap, the final sum cannot. The activation output is as wide as its value range.
    """
    w = n.tensors["weight"].astype(np.int64)
    wel = _weight_element(n.name, w, int(n.attrs["weight_bits"]))
    acc = ranges[n.name]
    lo, hi = acc.min, acc.max
    t = None
    offset = 0
    if mt is not None:
        t = mt.tensors["thresholds"].astype(np.int64)
        lo, hi = min(lo, int(t.min())), max(hi, int(t.max()))
        if mt.attrs.get("bipolar"):
            out = Element(1, signed=True, bipolar=True)
        else:
            offset = int(mt.attrs["offset"])
            out = Element(ranges[mt.name].bits, signed=ranges[mt.name].signed)
    acc_bits = bits_for(min(lo, -1), max(hi, 0))
    if mt is None:
        out = Element(acc_bits, signed=True)
    bias = n.tensors.get("bias")
    return MvauLayer(
        n.name,
        fold,
        inp,
        wel,
        acc_bits,
        out,
        t,
        offset,
        w,
        None if bias is None else bias.astype(np.int64),
    )


def _hex_word(values: np.ndarray, bits: int) -> str:
    """Pack non-negative ``values`` (element 0 at the LSBs) into a Verilog hex literal."""
    word = 0
    for i, v in enumerate(values.tolist()):
        word |= int(v) << (i * bits)
    width = len(values) * bits
    return f"{width}'h{word:x}"


def weight_rom(layer: MvauLayer) -> list[str]:
    """ROM words at address nf*SF + sf: PE*SIMD weights, PE-major (p*SIMD + s)."""
    f = layer.fold
    enc = layer.weight.encode(layer.weights)
    sf_count, nf_count = f.mw // f.simd, f.mh // f.pe
    words = []
    for nf in range(nf_count):
        rows = enc[nf * f.pe : (nf + 1) * f.pe]  # [PE, MW]
        for sf in range(sf_count):
            block = rows[:, sf * f.simd : (sf + 1) * f.simd]  # [PE, SIMD]
            words.append(_hex_word(block.reshape(-1), layer.weight.bits))
    return words


def threshold_rom(layer: MvauLayer) -> list[str]:
    """ROM words at address nf: PE*NUM_T thresholds (two's complement, ACC_BITS each).

    For the last layer (no thresholds) the same port carries its PE integer biases.
    """
    f = layer.fold
    mask = (1 << layer.acc_bits) - 1
    values = layer.thresholds if layer.thresholds is not None else layer.bias[:, None]
    t = values & mask
    return [
        _hex_word(t[nf * f.pe : (nf + 1) * f.pe].reshape(-1), layer.acc_bits)
        for nf in range(f.mh // f.pe)
    ]


def _env() -> Environment:
    return Environment(
        loader=PackageLoader("hw_gen", "templates"),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def addr_bits(n: int) -> int:
    return max(1, (n - 1).bit_length())


def generate_rtl(
    graph: Graph, folds: list[LayerFold], out_dir: str | os.PathLike[str]
) -> RtlDesign:
    """Write the design into ``out_dir`` (replaced atomically) and describe it."""
    layers = plan_layers(graph, folds)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        env = _env()
        sources = []
        for lib in LIBRARY:
            src = resources.files("rtl").joinpath(lib)
            (tmp / lib).write_text(src.read_text())
            sources.append(out_dir / lib)
        for layer in layers:
            f = layer.fold
            rom = env.get_template("rom.v.j2")
            words = weight_rom(layer)
            (tmp / f"{layer.name}_weights.v").write_text(
                rom.render(
                    module=f"{layer.name}_weights",
                    addr_bits=addr_bits(len(words)),
                    data_bits=f.pe * f.simd * layer.weight.bits,
                    words=words,
                    what=f"weights of {layer.name}: {f.mh}x{f.mw}, PE={f.pe}, SIMD={f.simd}, "
                    f"{layer.weight.bits}-bit" + (" bipolar" if layer.weight.bipolar else ""),
                )
            )
            sources.append(out_dir / f"{layer.name}_weights.v")
            if layer.thresholds is not None or layer.bias is not None:
                words = threshold_rom(layer)
                kind = "thresholds" if layer.thresholds is not None else "bias"
                per = max(1, layer.num_t)
                (tmp / f"{layer.name}_{kind}.v").write_text(
                    rom.render(
                        module=f"{layer.name}_{kind}",
                        addr_bits=addr_bits(len(words)),
                        data_bits=f.pe * per * layer.acc_bits,
                        words=words,
                        what=f"{kind} of {layer.name}: {f.mh} channels x {per}, "
                        f"{layer.acc_bits}-bit two's complement",
                    )
                )
                sources.append(out_dir / f"{layer.name}_{kind}.v")
        first, last = layers[0], layers[-1]
        in_width = -(-first.fold.simd * first.inp.bits // 8) * 8
        out_width = -(-last.fold.pe * last.out.bits // 8) * 8
        (tmp / "qfab_top.v").write_text(
            env.get_template("top.v.j2").render(
                layers=layers,
                in_width=in_width,
                out_width=out_width,
                addr_bits=addr_bits,
                bound=cycles_per_frame_bound([la.fold for la in layers]),
            )
        )
        sources.append(out_dir / "qfab_top.v")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return RtlDesign(
        top="qfab_top",
        out_dir=out_dir,
        sources=sources,
        folds=[la.fold for la in layers],
        layers=layers,
        in_elem=first.inp,
        in_elems=first.fold.simd,
        in_width=in_width,
        out_elem=last.out,
        out_elems=last.fold.pe,
        out_width=out_width,
        features_in=first.fold.mw,
        features_out=last.fold.mh,
        cycles_bound=cycles_per_frame_bound([la.fold for la in layers]),
    )
