"""Level 1 of the equality: the Brevitas model (eval) against the golden executor.

Compared on every vector: the input integers, every hidden layer's integer activations,
and the logits *bit for bit* (float32). Both sides come from independent code: the
Brevitas side from the model's own quantizers via forward hooks, the golden side from
the IR alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from qfab.golden import GoldenResult, first_mismatch, run_golden
from qfab.ir import Graph
from quant_train.export_ir import graph_plan, quant_ints


@dataclass
class Equality:
    """Outcome of comparing two levels on ``vectors`` inputs."""

    vectors: int
    mismatches: int
    first_mismatch: dict | None = None

    def as_dict(self) -> dict:
        return {
            "vectors": self.vectors,
            "mismatches": self.mismatches,
            "first_mismatch": self.first_mismatch,
        }


@torch.no_grad()
def brevitas_trace(model: nn.Module, x: np.ndarray) -> dict[str, np.ndarray]:
    """Integer outputs of the input quantizer and each QuantReLU, plus float logits.

    Keys follow the IR node names of :func:`quant_train.export_ir.export_model`
    (``input``, ``mt0``, ``mt1``, ..., ``output``).
    """
    model.eval()
    seen: dict[str, np.ndarray] = {}

    def keep(name: str):  # NCHW activations are compared in the IR's NHWC order
        def hook(module: nn.Module, args: tuple, out: object) -> None:
            v = quant_ints(out)
            seen[name] = (v.transpose(0, 2, 3, 1) if v.ndim == 4 else v).reshape(len(v), -1)

        return hook

    hooks = [model.input_quant.register_forward_hook(keep("input"))]
    for step in graph_plan(model):
        if "mt" in step:
            hooks.append(step["act"].register_forward_hook(keep(step["mt"])))
    try:
        seen["output"] = model(torch.from_numpy(np.ascontiguousarray(x, np.float32))).numpy()
    finally:
        for h in hooks:
            h.remove()
    return seen


def compare_brevitas_to_golden(model: nn.Module, graph: Graph, x: np.ndarray) -> Equality:
    """Count vectors where any integer activation or any logit bit differs."""
    return compare_trace_to_golden(brevitas_trace(model, x), run_golden(graph, x))


def compare_trace_to_golden(trace: dict[str, np.ndarray], gold: GoldenResult) -> Equality:
    """Compare a Brevitas trace (IR node name -> integers, ``output`` -> float32 logits)
    with a golden run on the same vectors; the first mismatch names layer, vector, channel.

    Shared by the zoo's hook-based trace and traced user models
    (:func:`quant_train.trace_brevitas.compare_traced_to_golden`).
    """
    vectors = len(trace["output"])
    bad = np.zeros(vectors, dtype=bool)
    first = None
    for name, got in trace.items():
        want = gold.outputs[name]
        if name == "output":  # compare float32 logits bit for bit
            got, want = got.view(np.int32), want.astype(np.float32).view(np.int32)
        diff = np.any(got != want, axis=1)
        bad |= diff
        if first is None and diff.any():
            layer, v, c, e, a = first_mismatch(want, got, name)
            first = {"layer": layer, "vector": v, "channel": c, "golden": e, "brevitas": a}
    if not np.array_equal(np.argmax(trace["output"], 1), gold.prediction):
        bad |= np.argmax(trace["output"], 1) != gold.prediction
    return Equality(vectors, int(bad.sum()), first)
