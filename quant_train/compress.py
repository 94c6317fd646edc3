"""The compression pipeline behind ``qfab compress``: baseline, then steps in the order given.

Steps (config ``compress.steps``): ``prune`` (magnitude, iterative), ``prune_neurons``
(structured, shrinks layers), ``quantize`` (QAT from the float weights, optional
distillation from the baseline), ``share`` (k-means weight sharing + centroid
fine-tuning) and ``encode`` (real encoded bytes: CSC with relative indices, codebook
indices, Huffman). After every step a row is recorded in the form the surveys use:
accuracy and its change, parameters, storage and compression ratio Cr, MACs and the
speed-up Sr = baseline MACs / MACs (counting only non-zero weights, as sparse hardware
skips zeros).
"""

from __future__ import annotations

import copy
import itertools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils import prune as torch_prune

from qfab.errors import ConfigError
from quant_train.datasets import Dataset
from quant_train.distillation import distillation_loss
from quant_train.models import FloatMLP, QuantCNN, QuantMLP
from quant_train.pruning import (
    iterative_prune,
    make_pruning_permanent,
    prunable_layers,
    prune_neurons,
)
from quant_train.train import TrainSettings, accuracy, predict, seed_everything, train_classifier


class Settings(Protocol):
    """What the pipeline reads of a run's settings: the ``model:``, ``train:`` and
    ``compress:`` sections. The orchestration passes its validated config (qfab.config's
    schema satisfies this); this stage never imports the schema itself."""

    model: Any
    train: Any
    compress: Any


#: One ``compress.steps`` entry: ``.kind`` (prune, quantize, ...) and ``.settings``.
Step = Any


@dataclass
class Row:
    """One line of the survey-style table."""

    step: str
    accuracy: float
    params: int  # non-zero weights (biases and batch norm not counted, as the surveys)
    bytes: int  # weight storage in this row's representation
    storage: str  # what ``bytes`` measures
    macs: int  # multiply-accumulates per inference over non-zero weights
    detail: dict[str, Any] = field(default_factory=dict)


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module, int]]:
    """(name, layer, output pixels) of every weight layer: MACs = non-zeros * pixels.

    The layers are :func:`~quant_train.pruning.prunable_layers`; pixels are measured with
    a forward pass (hooks on every conv), so factored, depthwise and non-square
    convolutions are counted as they really run.
    """
    layers = prunable_layers(model)
    convs = [layer for _, layer in layers if isinstance(layer, nn.Conv2d)]
    pixels: dict[int, int] = {}
    if convs:
        hooks = [
            c.register_forward_hook(
                lambda m, a, out: pixels.__setitem__(id(m), int(out.shape[-1] * out.shape[-2]))
            )
            for c in convs
        ]
        was_training = model.training
        try:
            with torch.no_grad():
                model.eval()(torch.zeros(1, int(np.prod(model.input_shape))))
        finally:
            model.train(was_training)
            for h in hooks:
                h.remove()
    return [(name, layer, pixels.get(id(layer), 1)) for name, layer in layers]


def count(model: nn.Module) -> tuple[int, int, int]:
    """(all weights, non-zero weights, MACs over non-zero weights)."""
    total = nonzero = macs = 0
    for _, layer, pixels in weight_layers(model):
        w = layer.weight.detach()
        nz = int((w != 0).sum())
        total += w.numel()
        nonzero += nz
        macs += nz * pixels
    return total, nonzero, macs


def conv_macs(model: nn.Module) -> int:
    """MACs of the convolution layers alone (what conv factorization reduces)."""
    return sum(
        int((layer.weight != 0).sum()) * pixels
        for name, layer, pixels in weight_layers(model)
        if name.startswith("conv")
    )


def dense_bytes(model: nn.Module) -> tuple[int, str]:
    """Weight bytes stored densely at the model's current precision."""
    total, _, _ = count(model)
    if model.quantized:
        bits = model.quant_config["weight_bits"]
        return (total * bits + 7) // 8, f"dense {bits}-bit"
    return total * 4, "dense float32"


@contextmanager
def keep_zeros(model: nn.Module) -> Iterator[nn.Module]:
    """Hold pruned weights at zero while training (a fixed mask), then fold it in."""
    layers = [layer for _, layer, _ in weight_layers(model)]
    masked = []
    for layer in layers:
        mask = layer.weight.detach() != 0
        shared = parametrize.is_parametrized(layer, "weight")  # codebook keeps zeros itself
        if not bool(mask.all()) and not torch_prune.is_pruned(layer) and not shared:
            torch_prune.custom_from_mask(layer, "weight", mask)
            masked.append(layer)
    try:
        yield model
    finally:
        for layer in masked:
            torch_prune.remove(layer, "weight")


def float_to_quant(model: nn.Module, settings: Any) -> nn.Module:
    """The quantized twin of a float model, loaded with its weights and batch-norm state."""
    if model.quantized:
        raise ConfigError(
            "compress: 'quantize' needs the float model; it can appear only once, "
            "before 'share' and 'encode'"
        )
    quant = {
        "weight_bits": settings.weight_bits,
        "act_bits": settings.act_bits,
        "input_bits": settings.input_bits,
        "per_channel": settings.per_channel,
        "inner_bits": settings.inner_bits,
    }
    if hasattr(model, "graph_plan"):
        from quant_train.compact import quant_twin

        q: nn.Module = quant_twin(model, **quant)
    elif isinstance(model, QuantCNN):
        q = QuantCNN(
            model.input_shape,
            model.conv_specs,
            model.hidden,
            model.classifier.out_features,
            factors=model.factors,
            **quant,
        )
    else:
        q = QuantMLP(
            model.linears[0].in_features,
            [lin.out_features for lin in model.linears],
            model.classifier.out_features,
            ranks=model.ranks,
            **quant,
        )
    # every float tensor must land, and every quantized-model tensor that is not a
    # quantizer's own parameter (those start fresh and calibrate during QAT) must be filled
    missing, unexpected = q.load_state_dict(model.state_dict(), strict=False)
    unfilled = [k for k in missing if "_quant." not in k]
    if unexpected or unfilled:
        raise ConfigError(
            f"compress: float weights do not fit the quantized model: unexpected {unexpected}, "
            f"unfilled {unfilled}"
        )
    return q


def float_model(cfg: Settings, data: Dataset) -> nn.Module:
    """The float32 baseline of the configured architecture (the zoo's float twin)."""
    from quant_train.zoo import IMAGE_ARCHS, build_model

    m = cfg.model
    images = m.arch in IMAGE_ARCHS and data.image_shape  # else build_model names the problem
    return build_model(
        m.arch,
        data.image_shape if images else (data.features,),
        data.classes,
        hidden=list(m.hidden),
        weight_bits=None,
        width=m.width,
        groups=m.groups,
    )


def precheck_conv_steps(cfg: Settings, model: nn.Module) -> None:
    """Conv-net checks that need no training: factorization method and ranks, and the
    steps a branching (compact) net cannot take."""
    from quant_train.lowrank import conv_ranks

    for i, st in enumerate(cfg.compress.steps):
        if hasattr(model, "graph_plan") and st.kind in ("factorize", "prune_neurons"):
            raise ConfigError(
                f"compress.steps[{i}]: '{st.kind}' is not available for model.arch = "
                f"{cfg.model.arch} (a compact net is already factored by design); allowed "
                "steps: prune, quantize, share, encode"
            )
        if st.kind != "factorize":
            continue
        if st.factorize.method == "svd":
            raise ConfigError(
                f"compress.steps[{i}]: factorize.method 'svd' is for MLPs; for "
                f"model.arch = {cfg.model.arch} use tucker, cp or spatial"
            )
        if st.factorize.rank is not None:
            conv_ranks(
                st.factorize.method, st.factorize.rank, model.conv_specs, model.input_shape[2]
            )


def precheck_steps(cfg: Settings, features: int, hidden: list[int], classes: int) -> None:
    """Errors that need no training (ranks too large, steps out of order) come first."""
    from quant_train.lowrank import check_ranks

    sizes = [features, *hidden, classes]
    dims = list(itertools.pairwise(sizes))
    kinds = [st.kind for st in cfg.compress.steps]
    for i, st in enumerate(cfg.compress.steps):
        if (
            st.kind == "factorize"
            and st.factorize.method == "svd"
            and st.factorize.rank is not None
        ):
            r = st.factorize.rank
            if not any(k == "prune_neurons" for k in kinds[:i]):  # widths known up front
                check_ranks(dims, [min(r, n, m) for n, m in dims] if isinstance(r, int) else r)
        if st.kind in ("share", "encode") and "quantize" not in kinds[:i]:
            raise ConfigError(f"compress.steps[{i}]: '{st.kind}' needs 'quantize' before it")
        if st.kind in ("factorize",) and "quantize" in kinds[:i]:
            raise ConfigError(f"compress.steps[{i}]: 'factorize' must come before 'quantize'")
        if st.kind == "prune_neurons" and "factorize" in kinds[:i]:
            raise ConfigError(
                f"compress.steps[{i}]: 'prune_neurons' must come before 'factorize' "
                "(factored layers are not sliced)"
            )
    if kinds.count("quantize") > 1:
        raise ConfigError("compress.steps: 'quantize' may appear only once")


class Pipeline:
    """Runs the configured steps on a data set, recording a :class:`Row` after each."""

    def __init__(
        self,
        cfg: Settings,
        data: Dataset,
        on_epoch: Callable[[str, int, int, float], None] | None = None,
    ) -> None:
        self.cfg, self.data = cfg, data
        self.on_epoch = on_epoch
        self.rows: list[Row] = []
        self.teacher: nn.Module | None = None
        self.storage: list[dict[str, Any]] | None = None
        #: the 'encode' step's sparse layouts of the IR's Dense layers, by node name
        self.layouts: dict[str, Any] = {}

    def _train(
        self,
        model: nn.Module,
        epochs: int,
        label: str,
        lr: float | None = None,
        loss_fn: Any = None,
    ) -> nn.Module:
        if epochs == 0:
            return model.eval()
        s = self.cfg.train
        settings = TrainSettings(epochs, s.seed, lr or s.lr, s.batch_size)
        hook = (
            None
            if self.on_epoch is None
            else (lambda e, loss: self.on_epoch(label, e, epochs, loss))
        )
        with keep_zeros(model):
            train_classifier(model, self.data.x_train, self.data.y_train, settings, hook, loss_fn)
        return model.eval()

    def _record(self, step: str, model: nn.Module, **detail: Any) -> None:
        acc = accuracy(predict(model, self.data.x_test), self.data.y_test)
        _, nonzero, macs = count(model)
        size, storage = dense_bytes(model)
        self.rows.append(Row(step, acc, nonzero, size, storage, macs, detail))

    def run(self) -> nn.Module:
        """Baseline, then each step; returns the final model."""
        cfg, data = self.cfg, self.data
        seed_everything(cfg.train.seed)
        model = float_model(cfg, data)
        if isinstance(model, FloatMLP):
            hidden = [lin.out_features for lin in model.linears]
            precheck_steps(cfg, data.features, hidden, data.classes)
        else:
            precheck_conv_steps(cfg, model)
            precheck_steps(cfg, 1, [], 1)
        model = self._train(model, cfg.train.epochs, "baseline")
        self.teacher = copy.deepcopy(model).eval()
        self._record("baseline (float32)", model)
        for step in cfg.compress.steps:
            model = self._step(step, model)
        return model

    def _step(self, step: Step, model: nn.Module) -> nn.Module:
        s = step.settings
        fine_lr = self.cfg.train.lr / 2
        if step.kind == "prune":
            schedule = s.schedule or [s.sparsity]
            model = iterative_prune(
                model,
                schedule,
                lambda m: self._train(m, s.fine_tune_epochs, "prune fine-tune", fine_lr),
                s.scope,
                s.balance_pes,
            )
            self._record_prune(model, max(schedule), s.scope, s.balance_pes)
        elif step.kind == "prune_neurons":
            model = prune_neurons(model, s.fraction, s.criterion)
            model = self._train(model, s.fine_tune_epochs, "neuron fine-tune", fine_lr)
            self._record(
                f"prune neurons {s.fraction:.0%} ({s.criterion})",
                model,
                hidden=[lin.out_features for lin in model.linears],
            )
        elif step.kind == "factorize":
            from quant_train.lowrank import conv_factorize, svd_factorize

            if model.quantized:
                raise ConfigError("compress: put 'factorize' before 'quantize'")
            start = time.perf_counter()
            if s.method == "svd":
                model = svd_factorize(model, rank=s.rank, energy=s.energy)
            else:
                model = conv_factorize(
                    model, s.method, s.rank, seed=self.cfg.train.seed, energy=s.energy
                )
            seconds = time.perf_counter() - start
            before = accuracy(predict(model, self.data.x_test), self.data.y_test)
            model = self._train(model, s.fine_tune_epochs, "low-rank fine-tune", fine_lr)
            what = f"rank {s.rank}" if s.rank is not None else f"energy {s.energy:.0%}"
            self._record(
                f"factorize {s.method} {what}",
                model,
                ranks=getattr(model, "ranks", None),
                factors=getattr(model, "factors", None),
                factorize_seconds=round(seconds, 3),
                accuracy_before_fine_tune=before,
                conv_macs=conv_macs(model),
            )
        elif step.kind == "quantize":
            model = float_to_quant(model, s)
            loss = (
                distillation_loss(self.teacher, s.distill.temperature, s.distill.alpha)
                if s.distill
                else None
            )
            model = self._train(
                model, s.epochs, f"QAT w{s.weight_bits}a{s.act_bits}", fine_lr, loss
            )
            self._record(
                f"quantize w{s.weight_bits}a{s.act_bits}" + (" + distill" if s.distill else ""),
                model,
            )
        elif step.kind == "share":
            if not model.quantized:
                raise ConfigError(
                    "compress: put 'quantize' before 'share' (weight sharing "
                    "keeps the exact integer pipeline only on a quantized model)"
                )
            model = self._share(model, s, fine_lr)
        elif step.kind == "encode":
            self._encode(model, s)
        return model

    def _record_prune(
        self, model: nn.Module, sparsity: float, scope: str, balance_pes: int | None
    ) -> None:
        """The prune row; balanced pruning also lists each layer's non-zeros per PE."""
        if balance_pes is None:
            self._record(f"prune {sparsity:.0%} ({scope})", model)
            return
        from quant_train.pruning import pe_nonzeros

        self._record(
            f"prune {sparsity:.0%} ({scope}, balanced over {balance_pes} PEs)",
            model,
            balance_pes=balance_pes,
            pe_nonzeros={
                name: pe_nonzeros(layer.weight, balance_pes)
                for name, layer in prunable_layers(model)
            },
        )

    def _share(self, model: nn.Module, s: Any, fine_lr: float) -> nn.Module:
        """Share on the integer grid; fine-tune the centroids only if a layer lost levels.

        When every layer already has at most K distinct non-zero integers the codebooks
        are those integers and the model is unchanged, bit for bit: fine-tuning could
        only move the batch norms, so it is skipped and the row says ``lossless``.
        """
        from quant_train.share_model import freeze_sharing, share_weights, sharing_report

        make_pruning_permanent(model)
        share_weights(model, s.clusters, seed=self.cfg.train.seed)
        lossless = all(layer["lossless"] for layer in sharing_report(model))
        epochs = 0 if lossless else s.fine_tune_epochs
        model = self._train(model, epochs, "centroid fine-tune", fine_lr)
        freeze_sharing(model)
        clusters = s.clusters if isinstance(s.clusters, int) else max(s.clusters)
        self._record(
            f"share k={clusters}",
            model,
            lossless=lossless,
            fine_tune_epochs=epochs,
            layers=sharing_report(model),
        )
        return model

    def _encode(self, model: nn.Module, s: Any) -> None:
        """Encode every weight layer *of the IR* (the exporter's weights: NHWC column order,
        shared codebooks as exported) in the sparse engine's layout, count its bytes, and
        keep the fully connected layers' layouts for the IR (:attr:`layouts`)."""
        from qfab.ops import OPS
        from qfab.sparse import sparse_encode
        from quant_train.export_ir import export_model
        from quant_train.storage import encode_sparse_layout

        if not model.quantized:
            raise ConfigError("compress: 'encode' needs a quantized model; put 'quantize' first")
        graph = export_model(model, {"compress": "encode"})
        layers, self.layouts = [], {}
        for node in graph.nodes:
            if node.op not in ("Dense", "Conv2d"):
                continue
            w = OPS[node.op].weight(node)
            w2 = w.reshape(len(w), -1)
            codebook = node.tensors.get("codebook")
            values = len(np.unique(w2[w2 != 0])) if codebook is None else len(codebook)
            code_bits = s.code_bits or max(1, values.bit_length())  # values + the zero
            pes = s.pes if node.op == "Dense" else 1
            layout = sparse_encode(w2, pes, s.index_bits, code_bits, codebook, node.name)
            layers.append(encode_sparse_layout(layout, huffman=s.huffman, name=node.name))
            if node.op == "Dense":
                self.layouts[node.name] = layout
        total = sum(e.total_bytes for e in layers)
        acc = accuracy(predict(model, self.data.x_test), self.data.y_test)
        _, nonzero, macs = count(model)
        what = f"CSC {s.index_bits}-bit rel. index, {s.pes} PE" + (
            " + Huffman" if s.huffman else ""
        )
        self.storage = [e.as_dict() for e in layers]
        self.rows.append(
            Row(
                f"encode ({what})",
                acc,
                nonzero,
                total,
                "encoded bytes",
                macs,
                {"layers": self.storage},
            )
        )


def survey_table(rows: list[Row], model: str, dataset: str) -> list[dict[str, Any]]:
    """Rows as the surveys tabulate them, relative to the first (baseline) row."""
    base = rows[0]
    return [
        {
            "model": model,
            "dataset": dataset,
            "step": r.step,
            "baseline_acc": base.accuracy,
            "acc": r.accuracy,
            "delta": r.accuracy - base.accuracy,
            "params": r.params,
            "params_ratio": base.params / max(1, r.params),
            "bytes": r.bytes,
            "storage": r.storage,
            "Cr": base.bytes / max(1, r.bytes),
            "MACs": r.macs,
            "Sr": base.macs / max(1, r.macs),
        }
        for r in rows
    ]


def as_json(rows: list[Row]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]
