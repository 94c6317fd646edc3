"""Host side of a UART-wrapped accelerator (``qfab_uart_top``): the byte protocol and a client.

Byte protocol (8N1, no flow control; the same text heads ``rtl/uart_top.v``):

- host -> board, one frame: ``features`` bytes (the manifest's ``input.features``), byte
  ``i`` = input element ``i`` in NHWC order, as its ``bits``-bit pattern in the byte's
  low bits (unsigned; two's complement when the input is signed; 1 for +1 and 0 for -1
  when bipolar), the upper bits zero. Elements are at most 8 bits.
- board -> host, after the frame is computed: byte 0 = the class, the index of the
  largest output integer, the lowest index winning a tie (``numpy.argmax``'s rule);
  then every output integer (the last layer's accumulators, ``output.features`` of
  them, element 0 first), each in :func:`output_bytes_per_element` bytes, little-endian,
  sign-extended when the output is signed (zero-extended otherwise; bipolar as 1/0).
- the host waits for a frame's reply before it sends the next frame.
- resynchronization: a frame's bytes go out back to back (one ``write``); when the board
  has part of a frame and then no byte for ``IDLE_BYTES`` byte times (3, see
  :mod:`boards.uart_design`), it discards the partial frame and starts afresh with the
  next byte. So a lost byte or a client that died mid-frame costs that one frame (no
  reply: the client times out), never the frames after it. The client empties its
  receive buffer when it opens the port (bytes of an earlier session, junk from the
  adapter), before every frame (a late reply after a timeout) and after a timeout, so a
  stale byte is never taken for part of a reply.

The encode/decode functions are pure (bytes in, integers out) and read only the design's
manifest (``design.json``): the cocotb test of the wrapped design sends the bytes of
:func:`encode_frames` over a simulated ``rx`` line and decodes the ``tx`` line with
:func:`decode_reply`, so the client's own byte code is what the simulation checks; only
the serial port is replaced. :class:`UartAccelerator` adds the port (pyserial) and the
float quantization of :func:`qfab.golden.quantize_input`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qfab.elements import port_element as element_of
from qfab.errors import HardwareError, MismatchError, ToolError
from qfab.golden import quantize_input
from qfab.ir import Node
from qfab.values import Element


def load_manifest(design_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``design.json`` of a generated (or UART-wrapped) design folder."""
    path = Path(design_dir) / "design.json"
    if not path.is_file():
        raise HardwareError(f"{design_dir}: no design.json (not a qfab design folder)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise HardwareError(f"{path}: not valid JSON ({exc})") from None


def element_range(el: Element) -> tuple[int, int]:
    """Smallest and largest integer an element of this encoding holds."""
    if el.bipolar:
        return -1, 1
    if el.signed:
        return -(1 << (el.bits - 1)), (1 << (el.bits - 1)) - 1
    return 0, (1 << el.bits) - 1


def output_bytes_per_element(manifest: dict[str, Any]) -> int:
    """Bytes per output integer on the line: ``ceil(bits / 8)``."""
    return -(-int(manifest["output"]["element"]["bits"]) // 8)


def check_protocol(manifest: dict[str, Any]) -> None:
    """Refuse a design the byte protocol cannot carry, naming the manifest key and limit."""
    inp, outp = manifest["input"], manifest["output"]
    if int(inp["element"]["bits"]) > 8:
        raise HardwareError(
            f"input.element.bits = {inp['element']['bits']}: the UART protocol sends one "
            "byte per input element; allowed: <= 8 (quantize the input to 8 bits or fewer)"
        )
    if not 2 <= int(outp["features"]) <= 256:
        raise HardwareError(
            f"output.features = {outp['features']}: the class travels as one byte; "
            "allowed: 2 ... 256 outputs"
        )
    if output_bytes_per_element(manifest) > 8:
        raise HardwareError(
            f"output.element.bits = {outp['element']['bits']}: allowed <= 64 on the UART"
        )


def reply_length(manifest: dict[str, Any]) -> int:
    """Bytes the board sends back per frame: the class, then every output integer."""
    return 1 + int(manifest["output"]["features"]) * output_bytes_per_element(manifest)


def encode_frames(manifest: dict[str, Any], x_int: np.ndarray) -> list[bytes]:
    """Input integers ``[N, features]`` (or one frame ``[features]``) -> one byte string
    per frame. Values outside the input element's range are refused (the board would
    silently keep only their low bits)."""
    check_protocol(manifest)
    inp = manifest["input"]
    el = element_of(inp)
    x = np.asarray(x_int, dtype=np.int64)
    x = x[None, :] if x.ndim == 1 else x
    if x.ndim != 2 or x.shape[1] != int(inp["features"]):
        raise HardwareError(f"uart: input shape {x.shape}, design takes [N, {inp['features']}]")
    lo, hi = element_range(el)
    bad = np.argwhere((x < lo) | (x > hi) | (el.bipolar & (x == 0)))
    if bad.size:
        v, f = (int(i) for i in bad[0])
        raise HardwareError(
            f"uart: input vector {v}, element {f} = {x[v, f]} is outside the input "
            f"element's range {lo} ... {hi}"
        )
    return [bytes(row) for row in el.encode(x).astype(np.uint8)]


def decode_reply(manifest: dict[str, Any], data: bytes) -> tuple[int, np.ndarray]:
    """One frame's reply -> (class, output integers ``[features]``).

    Every integer is checked to lie in the output element's range (a corrupted or
    misaligned reply is an error, never a plausible number), and the class byte is
    checked to be an output index."""
    check_protocol(manifest)
    outp = manifest["output"]
    el = element_of(outp)
    n, width = int(outp["features"]), output_bytes_per_element(manifest)
    if len(data) != reply_length(manifest):
        raise MismatchError(
            f"uart: reply of {len(data)} bytes, the protocol sends {reply_length(manifest)}"
        )
    cls = data[0]
    if cls >= n:
        raise MismatchError(f"uart: class byte {cls} is not an output index (< {n})")
    raw = [
        int.from_bytes(data[1 + i * width : 1 + (i + 1) * width], "little", signed=el.signed)
        for i in range(n)
    ]
    values = np.array(raw, dtype=np.int64)
    if el.bipolar:
        if np.any((values != 0) & (values != 1)):
            raise MismatchError(f"uart: bipolar output bytes {raw} are not 0/1")
        values = el.decode(values)
    lo, hi = element_range(el)
    bad = np.flatnonzero((values < lo) | (values > hi))
    if bad.size:
        i = int(bad[0])
        raise MismatchError(
            f"uart: output {i} = {values[i]} is outside the output element's range {lo} ... {hi}"
        )
    return int(cls), values


def class_of(outputs: np.ndarray) -> np.ndarray:
    """The class the board reports: ``numpy.argmax`` of the output integers along the
    last axis (the first maximum wins, as in the hardware's strict ``>`` scan)."""
    return np.argmax(np.asarray(outputs), axis=-1)


def dequantize(manifest: dict[str, Any], outputs: np.ndarray) -> np.ndarray:
    """Output integers -> float32 logits with the manifest's per-channel scale and bias."""
    dq = manifest["output"]["dequant"]
    scale = np.asarray(dq["scale"], dtype=np.float32)
    bias = np.asarray(dq["bias"], dtype=np.float32)
    return np.asarray(outputs).astype(np.float32) * scale + bias


def input_node(manifest: dict[str, Any]) -> Node:
    """The design's ``InputQuant`` as golden knows it, rebuilt from the manifest, so that
    :func:`qfab.golden.quantize_input` quantizes exactly as the model does."""
    inp = manifest["input"]
    return Node(
        "input",
        "InputQuant",
        [],
        {
            "bits": int(inp["element"]["bits"]),
            "signed": bool(inp["signed_input"]),
            "scale": float(inp["scale"]),
            "features": int(inp["features"]),
        },
    )


@dataclass
class UartPrediction:
    """The board's answer for a batch: classes, output integers, and their float logits."""

    classes: np.ndarray  # [N] int64, as the board sent them
    outputs: np.ndarray  # [N, features_out] int64
    logits: np.ndarray  # [N, features_out] float32 (host-side dequantization)


class UartAccelerator:
    """A ``qfab_uart_top`` bitstream running on a board, reached over a serial port.

    ``manifest`` is the design's ``design.json`` (a dict, or the folder holding it);
    ``baud`` must match the bitstream's ``CLKS_PER_BIT`` (``uart.json`` of the build).
    """

    def __init__(
        self,
        port: str,
        baud: int,
        manifest: dict[str, Any] | str | os.PathLike[str],
        *,
        timeout: float = 2.0,
    ) -> None:
        try:
            import serial
        except ImportError:
            raise ToolError("uart: pyserial is not installed (pip install pyserial)") from None
        self.manifest = manifest if isinstance(manifest, dict) else load_manifest(manifest)
        check_protocol(self.manifest)
        try:
            self.serial = serial.Serial(port, baud, timeout=timeout)
        except serial.SerialException as exc:
            raise ToolError(f"uart: cannot open {port} at {baud} baud ({exc})") from None
        # whatever the port holds now predates this client (see the module's protocol text)
        self.serial.reset_input_buffer()

    def close(self) -> None:
        self.serial.close()

    def __enter__(self) -> UartAccelerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def predict_int(self, x_int: np.ndarray) -> UartPrediction:
        """Send input integers ``[N, features]`` one frame at a time; each reply is read
        before the next frame goes out. A missing reply is a :class:`ToolError` after the
        port's timeout; the board will have dropped the partial frame by then, so calling
        again simply resends."""
        classes, outputs = [], []
        want = reply_length(self.manifest)
        for i, frame in enumerate(encode_frames(self.manifest, x_int)):
            # bytes waiting now are no part of this frame's reply (e.g. a late reply to a
            # frame that timed out)
            self.serial.reset_input_buffer()
            self.serial.write(frame)  # one write: the frame's bytes back to back
            self.serial.flush()
            reply = self.serial.read(want)
            if len(reply) != want:
                self.serial.reset_input_buffer()
                raise ToolError(
                    f"uart: vector {i}: {len(reply)} of {want} reply bytes within "
                    f"{self.serial.timeout} s (wrong port or baud, or the board is not "
                    "configured with this design)"
                )
            cls, values = decode_reply(self.manifest, reply)
            classes.append(cls)
            outputs.append(values)
        out = np.array(outputs, dtype=np.int64)
        return UartPrediction(
            np.array(classes, dtype=np.int64), out, dequantize(self.manifest, out)
        )

    def predict(self, x: np.ndarray) -> UartPrediction:
        """Float inputs ``[N, features]``: quantized as the model does, then
        :meth:`predict_int`."""
        x = np.asarray(x)
        x = x[None, :] if x.ndim == 1 else x
        return self.predict_int(quantize_input(input_node(self.manifest), x))
