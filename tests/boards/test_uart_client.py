"""The host client: byte encoding and decoding, and its serial transport over a real pty.

The protocol functions are checked against Python's own ``int.to_bytes`` (an independent
encoder), including multi-byte, negative and out-of-range values. The transport test runs
:class:`~boards.uart_client.UartAccelerator` on a pseudo-terminal whose other end is a
thread answering as the board does (it is not an accelerator: it replies with a fixed
function of the bytes it received), so what is tested is the client's framing, reading
and float quantization, and that stale bytes (in the port at open, or a reply arriving
after a timeout) are dropped instead of being read as a reply; the hardware itself is
simulated in tests/boards/test_uart.py.
"""

from __future__ import annotations

import os
import select
import threading
import time

import numpy as np
import pytest

from boards.uart_client import (
    UartAccelerator,
    decode_reply,
    encode_frames,
    input_node,
    reply_length,
)
from qfab.errors import HardwareError, MismatchError, ToolError
from qfab.golden import quantize_input
from tests.boards.designs import edges


def reply_of(values: list[int], width: int) -> bytes:
    cls = int(np.argmax(values))
    return bytes([cls]) + b"".join(v.to_bytes(width, "little", signed=True) for v in values)


def test_encode_one_byte_per_element_and_refuse_out_of_range():
    m = edges(in_bits=4)
    x = np.arange(128).reshape(2, 64) % 16
    frames = encode_frames(m, x)
    assert [list(f) for f in frames] == x.tolist()
    with pytest.raises(HardwareError, match="vector 1, element 3 = 16"):
        encode_frames(m, np.where(np.arange(128).reshape(2, 64) == 67, 16, 0))


def test_decode_multi_byte_signed_outputs():
    m = edges(out_bits=12)  # 2 bytes per output, sign-extended
    values = [-2048, 2047, -1, 0, 5, -300, 1000, 7, 7, -7]
    cls, got = decode_reply(m, reply_of(values, 2))
    assert cls == int(np.argmax(values)) and got.tolist() == values
    assert len(reply_of(values, 2)) == reply_length(m)
    with pytest.raises(MismatchError, match="output 1 = 2048"):
        decode_reply(m, reply_of([0, 2048, *values[2:]], 2))
    with pytest.raises(MismatchError, match="reply of 20 bytes"):
        decode_reply(m, reply_of(values, 2)[:-1])
    with pytest.raises(MismatchError, match="class byte 10"):
        decode_reply(m, bytes([10]) + reply_of(values, 2)[1:])


def board(fd: int, frames: int, m: dict) -> None:
    """The far end of the line: read each frame, answer with its first ten bytes - 100."""
    for _ in range(frames):
        got = b""
        while len(got) < int(m["input"]["features"]):
            got += os.read(fd, 256)
        os.write(fd, reply_of([b - 100 for b in got[:10]], 1))


def test_client_over_a_pty_quantizes_frames_and_reads_replies():
    m = edges()
    master, slave = os.openpty()
    x = np.random.default_rng(0).uniform(0, 1.7, size=(5, 64)).astype(np.float32)
    thread = threading.Thread(target=board, args=(master, len(x), m), daemon=True)
    thread.start()
    try:
        with UartAccelerator(os.ttyname(slave), 115200, m, timeout=5) as acc:
            result = acc.predict(x)
    finally:
        os.close(master)
        os.close(slave)
    x_int = quantize_input(input_node(m), x)
    expected = x_int[:, :10] - 100
    np.testing.assert_array_equal(result.outputs, expected)
    np.testing.assert_array_equal(result.classes, np.argmax(expected, axis=1))
    np.testing.assert_array_equal(result.logits, expected.astype(np.float32) * 0.25)


def test_a_silent_board_is_a_clear_error_within_the_timeout():
    master, slave = os.openpty()
    start = time.monotonic()
    try:
        with (
            UartAccelerator(os.ttyname(slave), 115200, edges(), timeout=0.5) as acc,
            pytest.raises(ToolError, match="0 of 11 reply bytes within 0.5 s"),
        ):
            acc.predict_int(np.zeros((1, 64), dtype=np.int64))
    finally:
        os.close(master)
        os.close(slave)
    assert time.monotonic() - start < 3


def stale_then_board(fd: int, m: dict, late: threading.Event, sent: threading.Event) -> None:
    """A board whose first reply is cut short (3 bytes) and whose remaining 8 bytes come
    late, after the client gave up (``late`` set), then answers the next frame right."""
    features = int(m["input"]["features"])
    got = b""
    while len(got) < features:
        got += os.read(fd, 256)
    first = reply_of([b - 100 for b in got[:10]], 1)
    os.write(fd, first[:3])
    late.wait(10)
    os.write(fd, first[3:])
    time.sleep(0.1)  # let the late bytes reach the client's side of the line
    sent.set()
    got = b""
    while len(got) < features:
        got += os.read(fd, 256)
    os.write(fd, reply_of([b - 100 for b in got[:10]], 1))


def test_stale_bytes_at_open_and_a_late_reply_are_never_read_as_a_reply():
    m = edges()
    master, slave = os.openpty()
    # junk already in the port when the client opens it (an earlier session's bytes)
    os.write(master, bytes(range(11)))
    assert select.select([slave], [], [], 2)[0], "the junk did not reach the port"
    late, sent = threading.Event(), threading.Event()
    thread = threading.Thread(target=stale_then_board, args=(master, m, late, sent), daemon=True)
    thread.start()
    x = np.arange(2 * 64).reshape(2, 64) % 100 + 100
    try:
        with UartAccelerator(os.ttyname(slave), 115200, m, timeout=0.5) as acc:
            with pytest.raises(ToolError, match="3 of 11 reply bytes"):
                acc.predict_int(x[:1])
            late.set()
            assert sent.wait(10)
            result = acc.predict_int(x[1:])
    finally:
        os.close(master)
        os.close(slave)
    np.testing.assert_array_equal(result.outputs, x[1:, :10] - 100)
