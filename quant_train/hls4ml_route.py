"""hls4ml's own route from a Brevitas model to C++, as the comparison for qfab's HLS backend.

The route is the one hls4ml documents for QONNX (measured in ``out/hls_memo_issue19.md``):
Brevitas' own QONNX export -> qonnx cleanup, channels-last, ``GemmToMatMul`` -> hls4ml's
ONNX converter (Vitis backend) at hls4ml's **default** precision -> ``compile()`` (g++ of
the generated project into a shared library) -> ``predict()``. Nothing is tuned: the point
is what hls4ml's default route gives beside qfab's exact one.

Why it is not exact: hls4ml computes batch norm and the activation quantizers in fixed
point, with scale and bias stored in ``model_default_t = ap_fixed<16,6>`` (10 fraction
bits) unless told otherwise. The step points of a low-bit ReLU quantizer move by the
rounding of BN's scale and bias, so some activations land on the neighbouring level and
the logits change. qfab folds BN into integer thresholds taken from the model's own ops.

qfab's own ``model.onnx`` (with MultiThreshold nodes) cannot be used: hls4ml 1.3's ONNX
front end has no MultiThreshold handler ("Unsupported operation type: MultiThreshold").

What was found on the zoo (hls4ml 1.3.0, qonnx 1.0.0, brevitas 0.13.4, digits 8x8):

* ``brevitas.export.export_qonnx(..., dynamo=False)``: the dynamo exporter (Brevitas'
  default on torch >= 2.9) writes a bias-less ``Gemm`` that qonnx's ``GemmToMatMul``
  crashes on (IndexError); the TorchScript exporter is fine.
* Image nets take flat NHWC ``[N, H*W*C]`` and reshape inside; after
  ``ConvertToChannelsLastAndClean`` the graph starts with ``Reshape [1, HWC] -> [1, H, W, C]``
  (the NCHW permute is absorbed). With ``io_stream`` hls4ml fails on that leading Reshape
  (``KeyError: 'Reshape_0'`` in its ``repack_stream`` pass), so :func:`run_hls4ml` removes it
  and feeds ``x.reshape(N, H, W, C)``: the same bytes in the same order, since the flat
  vector already is NHWC. hls4ml's ``predict`` then takes channels-last images.
* LeNet-5, CNV, the MobileNet-like and SqueezeNet-like nets convert and compile with
  ``io_stream`` and ``io_parallel``. The ShuffleNet-like net does not: hls4ml treats every
  ``group != 1`` convolution as depthwise and its ONNX Conv handler raises
  ``ValueError: Depth multiplier must be an integer`` for grouped 1x1 convolutions.
"""

from __future__ import annotations

import contextlib
import io
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: The steps of the route, in order; each is timed on its own and named when it fails.
STEPS = ("export", "qonnx", "convert", "compile", "predict")
IO_TYPES = ("auto", "io_parallel", "io_stream")


@dataclass
class Hls4mlRun:
    """What the route gave: logits (``[N, classes]`` float64, the model's class order) or
    the step that failed and its error, and each step's wall time in seconds."""

    io_type: str
    precision: str  # hls4ml's model-level default precision as used ("fixed<16,6>" unless set)
    output_dir: Path
    seconds: dict[str, float] = field(default_factory=dict)
    logits: np.ndarray | None = None
    failed_step: str | None = None
    error: str | None = None
    onnx_ops: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.logits is not None

    def describe(self) -> str:
        """One line for a table: the failure, or how long each step took."""
        if not self.ok:
            return f"hls4ml: not convertible at {self.failed_step}: {self.error}"
        times = ", ".join(f"{k} {v:.2f} s" for k, v in self.seconds.items())
        return f"hls4ml ({self.io_type}, {self.precision}): {times}"


@dataclass(frozen=True)
class LogitComparison:
    """Logits of one route against golden's on the same vectors (exact comparison)."""

    vectors: int
    differing: int  # vectors where any logit differs from golden's
    max_abs_delta: float
    argmax_differing: int  # vectors whose predicted class differs from golden's
    first_differing: int | None  # index of the first differing vector

    def as_dict(self) -> dict[str, Any]:
        return {
            "vectors": self.vectors,
            "differing": self.differing,
            "max_abs_delta": self.max_abs_delta,
            "argmax_differing": self.argmax_differing,
            "first_differing": self.first_differing,
        }


def compare_logits(logits: np.ndarray, golden_logits: np.ndarray) -> LogitComparison:
    """Count, against golden's float logits (:func:`qfab.golden.run_golden`), the vectors
    where any logit differs, the largest absolute difference and the argmax changes.

    Comparison is exact (``!=`` in float64): golden's logits are the integer outputs times
    a power-of-two scale, and hls4ml's are ``ap_fixed`` values, both exactly representable.
    """
    got = np.asarray(logits, dtype=np.float64)
    ref = np.asarray(golden_logits, dtype=np.float64)
    if got.shape != ref.shape:
        raise ValueError(f"logits shape {got.shape} differs from golden's {ref.shape}")
    rows = np.flatnonzero((got != ref).any(axis=1))
    delta = np.abs(got - ref)
    return LogitComparison(
        vectors=len(ref),
        differing=len(rows),
        max_abs_delta=float(delta.max()) if delta.size else 0.0,
        argmax_differing=int((got.argmax(axis=1) != ref.argmax(axis=1)).sum()),
        first_differing=int(rows[0]) if len(rows) else None,
    )


def run_hls4ml(
    model: Any,
    x: np.ndarray,
    work_dir: Path,
    *,
    io_type: str = "auto",
    default_precision: str | None = None,
) -> Hls4mlRun:
    """Run hls4ml's route on a trained Brevitas ``model`` for float inputs ``x`` ``[N, features]``.

    Writes ``brevitas_qonnx.onnx``, ``hls4ml_prj/`` (hls4ml's project) and ``hls4ml.log``
    (its prints) under ``work_dir``; one route per ``work_dir``. ``io_type="auto"`` is
    ``io_stream`` for image nets (what hls4ml uses for CNNs) and ``io_parallel`` for fully
    connected ones. ``default_precision=None`` keeps hls4ml's own default.

    Never raises for a model hls4ml cannot take: the result names the failing step and
    its error instead, so a bench can print it as a row.
    """
    if io_type not in IO_TYPES:
        raise ValueError(f"io_type = {io_type!r}; allowed: {', '.join(IO_TYPES)}")
    work_dir = Path(work_dir)
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    run = Hls4mlRun(
        io_type=io_type,
        precision=default_precision or "hls4ml default",
        output_dir=work_dir / "hls4ml_prj",
    )
    log = io.StringIO()
    state: dict[str, Any] = {}
    try:
        with _step(run, "export"):
            work_dir.mkdir(parents=True, exist_ok=True)
            state["onnx"] = export_brevitas_qonnx(model, x, work_dir / "brevitas_qonnx.onnx")
        with _step(run, "qonnx"):
            mw, image_shape = clean_for_hls4ml(state["onnx"])
            run.onnx_ops = [n.op_type for n in mw.graph.node]
        if run.io_type == "auto":
            run.io_type = "io_stream" if image_shape else "io_parallel"
        with _step(run, "convert"), contextlib.redirect_stdout(log):
            hm, precision = _convert(mw, run.output_dir, run.io_type, default_precision)
            run.precision = precision
        with _step(run, "compile"), contextlib.redirect_stdout(log):
            hm.compile()
        with _step(run, "predict"), contextlib.redirect_stdout(log):
            inputs = x.reshape(len(x), *image_shape) if image_shape else x
            y = np.asarray(hm.predict(np.ascontiguousarray(inputs)), dtype=np.float64)
            run.logits = y.reshape(len(x), -1)
    except _StepFailed:
        pass
    finally:
        if work_dir.is_dir():
            (work_dir / "hls4ml.log").write_text(log.getvalue())
    return run


class _StepFailed(Exception):
    """Raised by :func:`_step` after recording a failure, to skip the later steps."""


@contextlib.contextmanager
def _step(run: Hls4mlRun, name: str) -> Iterator[None]:
    """Time one step; on any exception record the step and the error's first line."""
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # qonnx/brevitas/hls4ml deprecation chatter
            yield
    except Exception as exc:
        run.failed_step = name
        text = str(exc).strip().splitlines()
        run.error = f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
        raise _StepFailed from exc
    finally:
        run.seconds[name] = round(time.perf_counter() - start, 3)


def export_brevitas_qonnx(model: Any, x: np.ndarray, path: Path) -> Path:
    """Brevitas' QONNX export through TorchScript (``dynamo=False``; see the module)."""
    import torch
    from brevitas.export import export_qonnx

    model.eval()
    sample = torch.from_numpy(np.asarray(x[:1], dtype=np.float32))
    export_qonnx(model, sample, export_path=str(path), dynamo=False)
    return path


def clean_for_hls4ml(path: Path) -> tuple[Any, tuple[int, ...]]:
    """qonnx's cleanup, channels-last and Gemm -> MatMul + Add, as hls4ml's docs ask.

    Returns the model and, for an image net, its ``(H, W, C)`` input shape after the
    leading flat-to-NHWC Reshape is removed (empty for a fully connected net).
    """
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul
    from qonnx.util.cleanup import cleanup_model

    mw = cleanup_model(ModelWrapper(str(path)))
    mw = mw.transform(ConvertToChannelsLastAndClean())
    mw = cleanup_model(mw.transform(GemmToMatMul()))
    first, source = mw.graph.node[0], mw.graph.input[0].name
    if first.op_type != "Reshape" or first.input[0] != source:
        return mw, ()
    shape = list(mw.get_tensor_shape(first.output[0]))
    if len(shape) != 4:
        return mw, ()
    for node in mw.graph.node[1:]:
        for i, name in enumerate(node.input):
            if name == first.output[0]:
                node.input[i] = source
    mw.graph.node.remove(first)
    mw.set_tensor_shape(source, shape)
    return cleanup_model(mw), tuple(int(d) for d in shape[1:])


def _convert(
    mw: Any, output_dir: Path, io_type: str, default_precision: str | None
) -> tuple[Any, str]:
    """hls4ml's config (per layer name) and conversion for the Vitis backend."""
    import hls4ml

    extra = {"default_precision": default_precision} if default_precision else {}
    cfg = hls4ml.utils.config.config_from_onnx_model(
        mw, granularity="name", backend="Vitis", **extra
    )
    hm = hls4ml.converters.convert_from_onnx_model(
        mw, output_dir=str(output_dir), backend="Vitis", io_type=io_type, hls_config=cfg
    )
    return hm, str(cfg["Model"]["Precision"]["default"])
