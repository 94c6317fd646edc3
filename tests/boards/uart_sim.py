"""Simulate a UART-wrapped design with frames from the host client's own byte code.

:func:`simulate_uart` encodes input integers with :func:`boards.uart_client.encode_frames`,
runs ``tests/boards/bench_uart_design.py`` (which only moves bytes over the simulated
line) and decodes every reply with :func:`boards.uart_client.decode_reply`.
:func:`assert_uart_equals_golden` then compares classes and output integers with golden.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from boards.uart_client import class_of, decode_reply, encode_frames, reply_length
from qfab.golden import first_mismatch, hardware_output, run_golden_int
from qfab.ir import Graph
from tests.rtl.harness import run_unit_bench


def simulate_uart(
    tmp_path: Path,
    manifest: dict[str, Any],
    sources: Sequence[str | os.PathLike[str]],
    x_int: np.ndarray,
    *,
    clks_per_bit: int,
    compute_cycles: int,
    partial_bytes: int = 0,
    truncated_bytes: int = 0,
    idle_timeout_bits: int = 0,
    short_pause_bits: int = 0,
    build_args: Sequence[str] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """(classes ``[N]``, output integers ``[N, features]``) the design sent back.

    ``partial_bytes``: that many bytes of the first frame, then the reset button;
    ``truncated_bytes``: that many, then an idle line for ``idle_timeout_bits`` + 10 bit
    times; ``short_pause_bits``: a pause that long inside the second frame (see the bench).
    """
    results = tmp_path / "replies.json"
    run_unit_bench(
        tmp_path,
        toplevel="qfab_uart_top",
        sources=sources,
        parameters={},
        bench="tests.boards.bench_uart_design",
        case={
            "frames": [f.hex() for f in encode_frames(manifest, x_int)],
            "reply_bytes": reply_length(manifest),
            "clks_per_bit": clks_per_bit,
            "compute_cycles": compute_cycles,
            "partial_bytes": partial_bytes,
            "truncated_bytes": truncated_bytes,
            "idle_timeout_bits": idle_timeout_bits,
            "short_pause_bits": short_pause_bits,
            "results": str(results),
        },
        build_args=build_args,
    )
    replies = json.loads(results.read_text())["replies"]
    assert len(replies) == len(x_int), f"{len(replies)} replies for {len(x_int)} frames"
    decoded = [decode_reply(manifest, bytes.fromhex(r)) for r in replies]
    return np.array([c for c, _ in decoded]), np.stack([v for _, v in decoded])


def assert_classes_and_outputs(
    expected: np.ndarray, classes: np.ndarray, outputs: np.ndarray
) -> None:
    """Every output integer equal, and every class equal to ``numpy.argmax`` of the
    expected integers (first maximum wins); the first difference is named."""
    found = first_mismatch(expected, outputs, "output integers")
    assert found is None, f"(layer, vector, channel, expected, got) = {found}"
    want = class_of(expected)
    wrong = np.flatnonzero(classes != want)
    assert wrong.size == 0, (
        f"vector {wrong[0]}: class {classes[wrong[0]]}, argmax {want[wrong[0]]} of "
        f"{expected[wrong[0]].tolist()}"
    )


def assert_uart_equals_golden(
    graph: Graph, x_int: np.ndarray, classes: np.ndarray, outputs: np.ndarray
) -> None:
    """The board's reply equals golden's hardware output on every vector, and its class
    is the model's prediction (the MLP dequantizes with one positive scale, no bias)."""
    expected = run_golden_int(graph.lowered, x_int).outputs[hardware_output(graph.lowered).name]
    assert_classes_and_outputs(expected, classes, outputs)
    np.testing.assert_array_equal(classes, run_golden_int(graph, x_int).prediction)
