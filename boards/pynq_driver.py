"""Run a qfab accelerator on a PYNQ board: pack inputs, move them by DMA, unpack outputs.

Self-contained on purpose: this one file is copied to the board (``qfab deploy``) beside
the bitstream, the ``.hwh`` and the design's manifest ``design.json``, and imports only
the standard library, NumPy and ``pynq`` (PYNQ images ship both; qfab itself is not
installed there). Everything it knows about the design comes from the manifest: element
bits and signedness of each stream, elements per beat, beats per frame, the input scale
and the output dequantization.

The block design ``boards.vivado`` builds puts the accelerator between one AXI DMA's
MM2S (memory -> ``s_axis``) and S2MM (``m_axis`` -> memory) channels, with no scatter
gather. Two facts of that DMA shape this driver:

* its streams are a power-of-two number of bytes wide (:func:`dma_stream_bits`), so a
  beat of ``tdata_bits`` travels in that many bytes, zero-padded at the top (an AXI4-Stream
  subset converter drops or adds the padding in the fabric);
* transfers name a byte range of a buffer (``transfer(buf, start, nbytes)``, PYNQ 2.6 and
  later);
* an S2MM transfer ends at ``TLAST``, which the accelerator raises on the last beat of
  every frame, so a batch goes out in one MM2S transfer and comes back frame by frame,
  each frame in its own 64-byte aligned slot of the receive buffer (no data realignment
  engine is needed at any stream width).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

#: AXI DMA stream widths (PG021: 8 to 1024 bits, powers of two).
DMA_STREAM_BITS = (8, 16, 32, 64, 128, 256, 512, 1024)
#: Buffer length register width the block design sets (PG021's maximum, 26 bits).
DMA_LENGTH_BITS = 26
#: Alignment of every S2MM destination (covers any memory-map width up to 512 bits).
RECV_ALIGN_BYTES = 64


def dma_stream_bits(tdata_bits: int) -> int:
    """The DMA stream width that carries a ``tdata_bits`` wide port: the narrowest power
    of two of at least one byte that holds it."""
    for bits in DMA_STREAM_BITS:
        if bits >= tdata_bits:
            return bits
    raise ValueError(f"a {tdata_bits}-bit stream is wider than the AXI DMA's 1024 bits")


class StreamFormat:
    """One stream edge of the design as ``design.json`` describes it."""

    def __init__(self, port: dict[str, Any]) -> None:
        el = port["element"]
        self.bits = int(el["bits"])
        self.signed = bool(el["signed"])
        self.bipolar = bool(el["bipolar"])
        self.elems_per_beat = int(port["elems_per_beat"])
        self.beats_per_frame = int(port["beats_per_frame"])
        self.features = int(port["features"])
        self.tdata_bits = int(port["tdata_bits"])
        self.beat_bytes = dma_stream_bits(self.tdata_bits) // 8

    @property
    def frame_bytes(self) -> int:
        """Bytes of one frame as the DMA moves it."""
        return self.beats_per_frame * self.beat_bytes

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Integers -> unsigned bit patterns (two's complement; bipolar: +1 -> 1, -1 -> 0)."""
        v = np.asarray(values, dtype=np.int64)
        if self.bipolar:
            return (v > 0).astype(np.int64)
        return v & ((1 << self.bits) - 1)

    def decode(self, raw: np.ndarray) -> np.ndarray:
        """Bit patterns -> integers (sign-extended; bipolar: 1 -> +1, 0 -> -1)."""
        r = np.asarray(raw, dtype=np.int64)
        if self.bipolar:
            return np.where(r & 1, 1, -1)
        if self.signed:
            return np.where(r >= 1 << (self.bits - 1), r - (1 << self.bits), r)
        return r

    def pack(self, values: np.ndarray) -> np.ndarray:
        """Integers ``[N, features]`` -> bytes ``[N, frame_bytes]``: element 0 of a beat at
        bit 0, beats in order, each beat little-endian in ``beat_bytes`` bytes."""
        n = len(values)
        codes = self.encode(values).reshape(n, self.beats_per_frame, self.elems_per_beat)
        shifts = np.arange(self.bits, dtype=np.int64)
        bits = ((codes[..., None] >> shifts) & 1).astype(np.uint8)
        bits = bits.reshape(n, self.beats_per_frame, self.elems_per_beat * self.bits)
        pad = self.beat_bytes * 8 - bits.shape[-1]
        bits = np.concatenate([bits, np.zeros((*bits.shape[:2], pad), np.uint8)], axis=-1)
        return np.packbits(bits, axis=-1, bitorder="little").reshape(n, self.frame_bytes)

    def unpack(self, data: np.ndarray) -> np.ndarray:
        """Bytes ``[N, frame_bytes]`` -> integers ``[N, features]`` (inverse of :meth:`pack`;
        bits above the elements are ignored, as the hardware ignores them)."""
        n = len(data)
        beats = np.asarray(data, np.uint8).reshape(n, self.beats_per_frame, self.beat_bytes)
        bits = np.unpackbits(beats, axis=-1, bitorder="little")
        bits = bits[..., : self.elems_per_beat * self.bits].astype(np.int64)
        bits = bits.reshape(n, self.beats_per_frame, self.elems_per_beat, self.bits)
        raw = (bits << np.arange(self.bits, dtype=np.int64)).sum(axis=-1)
        return self.decode(raw.reshape(n, self.features))


def load_manifest(path: str | Path) -> dict[str, Any]:
    """A design's ``design.json`` (checked to be one)."""
    data = json.loads(Path(path).read_text())
    if data.get("format") != "qfab-design":
        raise ValueError(f"{path}: not a qfab design manifest (format {data.get('format')!r})")
    return data


def quantize(x: np.ndarray, scale: float, bits: int, signed: bool) -> np.ndarray:
    """``clip(round_half_even(x / scale), lo, hi)`` in float32, exactly as qfab's golden
    model and Brevitas quantize the input (NumPy's ``rint`` rounds half to even)."""
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    q = np.rint(np.asarray(x).astype(np.float32) / np.float32(scale))
    return np.clip(q, lo, hi).astype(np.int64)


def dequantize(acc: np.ndarray, scale: list[float], bias: list[float]) -> np.ndarray:
    """``float32(acc) * scale + bias`` per output channel (channels last), in float32."""
    s = np.asarray(scale, np.float32)
    b = np.asarray(bias, np.float32)
    a = np.asarray(acc).astype(np.float32).reshape(len(acc), -1, len(s))
    return (a * s + b).reshape(len(acc), -1)


class Accelerator:
    """A qfab design loaded on a PYNQ board (or on the simulated board: same code).

    ``bitfile`` is the ``.bit`` (its ``.hwh`` beside it, same basename, as PYNQ expects);
    ``manifest`` defaults to ``design.json`` in the same folder; ``dma`` names the AXI DMA
    instance of the block design.
    """

    def __init__(
        self,
        bitfile: str | Path,
        manifest: str | Path | None = None,
        dma: str = "axi_dma_0",
        download: bool = True,
    ) -> None:
        import pynq  # on the board (or the simulated board's stand-in); not needed to pack

        bitfile = Path(bitfile)
        self.manifest = load_manifest(manifest or bitfile.with_name("design.json"))
        self.input = StreamFormat(self.manifest["input"])
        self.output = StreamFormat(self.manifest["output"])
        self._pynq = pynq
        self.overlay = pynq.Overlay(str(bitfile), download=download)
        self.dma = getattr(self.overlay, dma)
        self.max_transfer = int(getattr(self.dma, "buffer_max_size", (1 << DMA_LENGTH_BITS) - 1))
        self.out_stride = -(-self.output.frame_bytes // RECV_ALIGN_BYTES) * RECV_ALIGN_BYTES
        self._frames = 0
        self._send: Any = None
        self._recv: Any = None

    # -- conversions (no hardware) --------------------------------------------------------
    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Float inputs ``[N, features]`` -> the integers the accelerator takes."""
        inp = self.manifest["input"]
        el = inp["element"]
        return quantize(x, float(inp["scale"]), int(el["bits"]), bool(el["signed"]))

    def dequantize(self, acc: np.ndarray) -> np.ndarray:
        """Output integers -> float logits (the manifest's per-channel scale and bias)."""
        dq = self.manifest["output"]["dequant"]
        return dequantize(acc, dq["scale"], dq["bias"])

    # -- hardware -------------------------------------------------------------------------
    def _buffers(self, frames: int) -> None:
        """Contiguous send/receive buffers for ``frames`` frames (kept for reuse: PYNQ's
        ``allocate`` is slow)."""
        if frames <= self._frames:
            return
        for buf in (self._send, self._recv):
            if buf is not None:
                buf.freebuffer()
        allocate = self._pynq.allocate
        self._send = allocate(shape=(frames * self.input.frame_bytes,), dtype=np.uint8)
        self._recv = allocate(shape=(frames * self.out_stride,), dtype=np.uint8)
        self._frames = frames

    def _chunk(self) -> int:
        """Frames per MM2S transfer: as many as the DMA's length register allows."""
        per = self.max_transfer // self.input.frame_bytes
        if per < 1 or self.output.frame_bytes > self.max_transfer:
            raise ValueError(
                f"one frame ({self.input.frame_bytes} B in, {self.output.frame_bytes} B out) "
                f"exceeds the DMA's {self.max_transfer}-byte transfer limit"
            )
        return per

    def predict_int(self, x_int: np.ndarray) -> np.ndarray:
        """Input integers ``[N, features_in]`` -> output integers ``[N, features_out]``."""
        x_int = np.asarray(x_int, dtype=np.int64)
        if x_int.ndim != 2 or x_int.shape[1] != self.input.features:
            raise ValueError(
                f"input shape {x_int.shape}; the design takes [N, {self.input.features}]"
            )
        out = np.empty((len(x_int), self.output.features), dtype=np.int64)
        chunk = self._chunk()
        for first in range(0, len(x_int), chunk):
            part = x_int[first : first + chunk]
            out[first : first + len(part)] = self._run(part)
        return out

    def _run(self, x_int: np.ndarray) -> np.ndarray:
        n = len(x_int)
        self._buffers(n)
        send, recv = self._send, self._recv
        in_bytes = n * self.input.frame_bytes
        send[:in_bytes] = self.input.pack(x_int).reshape(-1)
        send.flush()  # the DMA reads DRAM, not the CPU's cache
        self.dma.sendchannel.transfer(send, 0, in_bytes)
        frame = self.output.frame_bytes
        for i in range(n):  # S2MM ends each transfer at the frame's TLAST
            self.dma.recvchannel.transfer(recv, i * self.out_stride, frame)
            self.dma.recvchannel.wait()
        self.dma.sendchannel.wait()
        recv.invalidate()  # drop stale cache lines before reading what the DMA wrote
        slots = np.asarray(recv[: n * self.out_stride]).reshape(n, self.out_stride)
        return self.output.unpack(slots[:, :frame])

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Float inputs ``[N, features_in]`` -> float32 logits (quantize, run, dequantize)."""
        return self.dequantize(self.predict_int(self.quantize(x)))

    def classify(self, x: np.ndarray) -> np.ndarray:
        """Class index per input (argmax of the logits)."""
        return np.argmax(self.predict(x), axis=1)

    def throughput(self, n: int = 1000, seed: int = 0) -> dict[str, float]:
        """Run ``n`` random input frames and time them: frames per second of the whole
        :meth:`predict_int` (packing, DMA, unpacking) as a host program sees it."""
        rng = np.random.default_rng(seed)
        el = self.input
        lo, hi = (
            (-(2 ** (el.bits - 1)), 2 ** (el.bits - 1) - 1) if el.signed else (0, 2**el.bits - 1)
        )
        if el.bipolar:
            x = rng.choice([-1, 1], size=(n, el.features))
        else:
            x = rng.integers(lo, hi + 1, size=(n, el.features))
        start = time.perf_counter()
        self.predict_int(x)
        seconds = time.perf_counter() - start
        return {"frames": n, "seconds": seconds, "frames_per_s": n / seconds}

    def close(self) -> None:
        """Free the contiguous buffers."""
        for buf in (self._send, self._recv):
            if buf is not None:
                buf.freebuffer()
        self._send = self._recv = None
        self._frames = 0
