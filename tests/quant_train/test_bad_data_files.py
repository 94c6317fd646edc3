"""Bad data files: each one is a :class:`DataError` whose message names the file and says
what is wrong and what is allowed, exactly as ``docs/bad_inputs.md`` quotes it.

Every case writes a small file in the real on-disk format (IDX for MNIST, python pickles
for CIFAR-10) and breaks one thing. ``says`` is the exact line ``qfab`` prints for it
(``<file>`` stands for the path of the broken file); ``tests/qfab/test_bad_inputs.py``
checks that the docs table quotes every case here with this message, and runs one of
them through ``qfab run`` to see that nothing is left behind.
"""

from __future__ import annotations

import gzip
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from qfab.errors import DataError
from quant_train.datasets import load_dataset


@dataclass(frozen=True)
class Case:
    """One bad input: its id, the case in words, the exact message, and how to make it.

    ``make(folder)`` writes the files into ``folder`` and returns ``(dataset name, path
    to give the loader, the broken file that <file> stands for)``.
    """

    id: str
    what: str
    says: str
    make: Callable[[Path], tuple[str, Path, Path]]


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes: ``00 00 08 <ndim>``, big-endian sizes, the data."""
    dims = b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return bytes([0, 0, 0x08, array.ndim]) + dims + array.astype(np.uint8).tobytes()


def mnist_folder(folder: Path, broken: str, raw: bytes | None = None) -> tuple[str, Path, Path]:
    """A valid raw-IDX MNIST folder (6 train, 3 test images of 4x4) whose file ``broken``
    is then replaced by ``raw`` (``None``: removed)."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    for prefix, n in (("train", 6), ("t10k", 3)):
        images = rng.integers(0, 256, size=(n, 4, 4))
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(images))
        labels = rng.integers(0, 10, size=n)
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    path = folder / broken
    if raw is None:
        path.unlink()
    else:
        path.write_bytes(raw)
    return "mnist", folder, path


def good_images(n: int = 6) -> bytes:
    return idx_bytes(np.zeros((n, 4, 4), np.uint8))


def cifar_folder(folder: Path, raw: bytes) -> tuple[str, Path, Path]:
    """A CIFAR-10 folder whose ``data_batch_1`` holds ``raw`` (``test_batch`` is valid)."""
    folder.mkdir()
    good = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}
    (folder / "test_batch").write_bytes(pickle.dumps(good))
    (folder / "data_batch_1").write_bytes(raw)
    return "cifar10", folder, folder / "data_batch_1"


def cifar_batch(data: object, labels: object) -> bytes:
    return pickle.dumps({b"data": data, b"labels": labels, b"batch_label": b"x"})


TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"

CASES = [
    Case(
        "idx_bad_magic",
        "IDX file with a bad header (a GIF renamed)",
        "qfab: error: <file>: not an IDX file of unsigned bytes (magic 47494638; allowed: "
        "000008 then the number of axes)",
        lambda d: mnist_folder(d, TRAIN_IMAGES, b"GIF89a" + bytes(20)),
    ),
    Case(
        "idx_float_type",
        "IDX file of float32 (type byte 0x0d) where unsigned bytes belong",
        "qfab: error: <file>: not an IDX file of unsigned bytes (magic 00000d03; allowed: "
        "000008 then the number of axes)",
        lambda d: mnist_folder(d, TRAIN_IMAGES, b"\x00\x00\x0d\x03" + bytes(12)),
    ),
    Case(
        "idx_truncated_header",
        "IDX file cut inside its header",
        "qfab: error: <file>: truncated IDX header (10 bytes; 3 axes need 16)",
        lambda d: mnist_folder(d, TRAIN_IMAGES, good_images()[:10]),
    ),
    Case(
        "idx_truncated_data",
        "IDX file shorter than its header declares (a cut download)",
        "qfab: error: <file>: header declares (6, 4, 4) = 96 bytes, file holds 50 "
        "(truncated or corrupt)",
        lambda d: mnist_folder(d, TRAIN_IMAGES, good_images()[: 16 + 50]),
    ),
    Case(
        "idx_too_long",
        "IDX file longer than its header declares",
        "qfab: error: <file>: header declares (6, 4, 4) = 96 bytes, file holds 97 "
        "(truncated or corrupt)",
        lambda d: mnist_folder(d, TRAIN_IMAGES, good_images() + b"\x00"),
    ),
    Case(
        "idx_truncated_gzip",
        "gzipped IDX file cut short",
        "qfab: error: <file>: corrupt or truncated gzip (Compressed file ended before the "
        "end-of-stream marker was reached)",
        lambda d: mnist_folder(d, TRAIN_IMAGES, gzip.compress(good_images())[:-8]),
    ),
    Case(
        "idx_label_count",
        "labels file with fewer labels than there are images",
        "qfab: error: train-images-idx3-ubyte / train-labels-idx1-ubyte: 6 images but 5 "
        "labels (mismatched or mislabelled files)",
        lambda d: mnist_folder(d, TRAIN_LABELS, idx_bytes(np.zeros(5, np.uint8))),
    ),
    Case(
        "idx_label_range",
        "a label outside the 10 classes",
        "qfab: error: train-images-idx3-ubyte / train-labels-idx1-ubyte: label 12 outside 0..9",
        lambda d: mnist_folder(d, TRAIN_LABELS, idx_bytes(np.array([0, 1, 2, 12, 4, 5]))),
    ),
    Case(
        "idx_missing_file",
        "MNIST folder without its test labels",
        "qfab: error: <file>: missing t10k-labels-idx1-ubyte[.gz]",
        lambda d: (*mnist_folder(d, "t10k-labels-idx1-ubyte")[:2], d),
    ),
    Case(
        "cifar_missing_keys",
        "CIFAR-10 pickle without its b'labels' entry",
        "qfab: error: <file>: a CIFAR-10 batch needs b'data' and b'labels' entries",
        lambda d: cifar_folder(d, pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)})),
    ),
    Case(
        "cifar_truncated",
        "CIFAR-10 pickle cut short",
        "qfab: error: <file>: not a CIFAR-10 python batch (UnpicklingError: pickle data "
        "was truncated)",
        lambda d: cifar_folder(d, cifar_batch(np.zeros((2, 3072), np.uint8), [0, 1])[:300]),
    ),
    Case(
        "cifar_foreign_callable",
        "CIFAR-10 'pickle' that calls a Python function (os.system) when loaded",
        "qfab: error: <file>: not a CIFAR-10 python batch (it refers to 'os.system'; a batch "
        "holds only dicts, lists, bytes and NumPy arrays)",
        lambda d: cifar_folder(d, b"cos\nsystem\n(S'echo pwned'\ntR."),
    ),
    Case(
        "cifar_wrong_shape",
        "CIFAR-10 batch whose images are not 3x32x32 bytes",
        "qfab: error: <file>: data must be uint8 [N, 3072], got uint8(2, 1024)",
        lambda d: cifar_folder(d, cifar_batch(np.zeros((2, 1024), np.uint8), [0, 1])),
    ),
    Case(
        "cifar_float_labels",
        "CIFAR-10 batch with float labels where integers belong",
        "qfab: error: <file>: labels must be integers, got float64",
        lambda d: cifar_folder(d, cifar_batch(np.zeros((2, 3072), np.uint8), [0.0, 1.5])),
    ),
]


def expected_line(case: Case, broken: Path) -> str:
    return case.says.replace("<file>", str(broken))


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_bad_data_file(tmp_path, case):
    """The loader refuses the file with exactly the documented message (the CLI prints
    ``qfab: error: `` + the message), and reading it wrote nothing."""
    name, path, broken = case.make(tmp_path / "data")
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(DataError) as info:
        load_dataset(name, path)
    assert f"qfab: error: {info.value}" == expected_line(case, broken)
    assert sorted(tmp_path.rglob("*")) == before, "the loader wrote or removed files"


def test_cifar_batches_written_by_python3_pickles_still_load(tmp_path):
    """The restricted unpickler refuses foreign callables but not what real batches use:
    NumPy arrays and scalars, and bytes in protocol 0-2 pickles (``_codecs.encode``)."""
    d = tmp_path / "c"
    d.mkdir()
    data = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    for protocol in (0, 2, 5):
        batch = {b"data": data, b"labels": [np.int64(3), 7], b"batch_label": b"t"}
        (d / "data_batch_1").write_bytes(pickle.dumps(batch, protocol=protocol))
        (d / "test_batch").write_bytes(pickle.dumps(batch, protocol=protocol))
        ds = load_dataset("cifar10", d)
        assert ds.y_train.tolist() == [3, 7], protocol
        assert ds.x_train[1, 1] == pytest.approx(data[1, 1024] / 255.0)  # NHWC: G of pixel 0
