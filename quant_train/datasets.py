"""Data sets: arrays of float32 features in [0, 1] and int64 labels, already split.

The embedded default is scikit-learn's ``load_digits`` (8x8 images, 10 classes,
1,797 samples), shipped inside scikit-learn, so nothing is downloaded at run time. The
other loaders read files the user supplies, in their original formats:

* ``mnist`` / ``fashion_mnist``: the four IDX files (gzip or raw) of the official
  distributions, in one folder;
* ``cifar10``: the "python version" pickle batches (``data_batch_1..5``, ``test_batch``);
* ``npz``: a NumPy archive with ``x`` and ``y`` (and optionally ``x_test``, ``y_test``).

Every loader checks what it reads (magic numbers, declared vs. actual sizes, label
counts and range) and names the file in its error, because a truncated download or a
swapped labels file otherwise trains happily on garbage.

Images are flattened to ``[N, H*W*C]`` in NHWC order (the IR's layout). Splits without
a given test set are stratified with a *fixed* seed, independent of the training seed:
changing ``train.seed`` changes the model, never which images are test images.
"""

from __future__ import annotations

import gzip
import math
import pickle
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qfab.errors import ConfigError, DataError

SPLIT_SEED = 0
TEST_FRACTION = 0.2


@dataclass(frozen=True)
class Dataset:
    """A train/test split with features flattened to ``[N, features]``."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int
    image_shape: tuple[int, ...] = ()

    @property
    def features(self) -> int:
        return int(self.x_train.shape[1])


def _split(
    name: str, x: np.ndarray, y: np.ndarray, classes: int, shape: tuple[int, ...] = ()
) -> Dataset:
    from sklearn.model_selection import train_test_split

    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=TEST_FRACTION, stratify=y, random_state=SPLIT_SEED
    )
    return Dataset(name, x_tr, y_tr, x_te, y_te, classes, shape)


def load_digits_dataset(path: Path | None = None) -> Dataset:
    """scikit-learn digits, pixel values 0..16 scaled to [0, 1], 80/20 stratified split."""
    from sklearn.datasets import load_digits

    if path is not None:
        raise ConfigError("dataset.path: digits is embedded in scikit-learn; give no path")
    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    return _split("digits", x, bunch.target.astype(np.int64), 10, (8, 8, 1))


# ---------------------------------------------------------------- IDX (MNIST family)

_IDX_TYPES = {0x08: np.uint8}


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (gzip or raw): a big-endian header, then the array.

    The header is ``0x00 0x00 <type> <ndim>`` and ``ndim`` big-endian uint32 sizes; the
    payload must hold exactly the declared number of elements.
    """
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(f"{path}: corrupt or truncated gzip ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(
            f"{path}: not an IDX file of unsigned bytes (magic {raw[:4].hex() or 'none'}; "
            "allowed: 000008 then the number of axes)"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(
            f"{path}: truncated IDX header ({len(raw)} bytes; {ndim} axes need {header})"
        )
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = math.prod(dims)  # Python ints: four 2^32 sizes must not wrap around
    payload = len(raw) - header
    if payload != expected:
        raise DataError(
            f"{path}: header declares {dims} = {expected} bytes, file holds "
            f"{payload} (truncated or corrupt)"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _find(folder: Path, stem: str) -> Path:
    for name in (
        stem,
        stem + ".gz",
        stem.replace("-idx", ".idx"),
        stem.replace("-idx", ".idx") + ".gz",
    ):
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"{folder}: missing {stem}[.gz]")


def _labels(images: np.ndarray, labels: np.ndarray, classes: int, where: str) -> np.ndarray:
    """Labels as int64, after checking they are 1-D integers in ``0..classes-1``, one per
    image (a float, negative or out-of-range label is a mislabelled file, not a class)."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise DataError(f"{where}: labels must be 1-D, got shape {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{where}: labels must be integers, got {labels.dtype}")
    if len(labels) != len(images):
        raise DataError(
            f"{where}: {len(images)} images but {len(labels)} labels "
            "(mismatched or mislabelled files)"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= classes):
        bad = int(labels.min()) if labels.min() < 0 else int(labels.max())
        raise DataError(f"{where}: label {bad} outside 0..{classes - 1}")
    return labels.astype(np.int64)


def load_idx_folder(name: str, folder: Path | None) -> Dataset:
    """MNIST or Fashion-MNIST from the four official IDX files in ``folder``."""
    if folder is None:
        raise ConfigError(f"dataset.path: {name} needs the folder holding its IDX files")
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"dataset.path = {folder}: {name} folder not found")
    parts = {}
    shape: tuple[int, ...] = ()
    for split, prefix in (("train", "train"), ("test", "t10k")):
        img_path = _find(folder, f"{prefix}-images-idx3-ubyte")
        lbl_path = _find(folder, f"{prefix}-labels-idx1-ubyte")
        images = read_idx(img_path)
        if images.ndim != 3:
            raise DataError(f"{img_path}: expected [N, rows, cols] images, got {images.shape}")
        labels = _labels(images, read_idx(lbl_path), 10, f"{img_path.name} / {lbl_path.name}")
        parts[split] = ((images.reshape(len(images), -1) / 255.0).astype(np.float32), labels)
        if shape and (*images.shape[1:], 1) != shape:
            raise DataError(
                f"{img_path}: test images are {list(images.shape[1:])}, training images "
                f"{list(shape[:2])}; both splits must have one image size"
            )
        shape = (*images.shape[1:], 1)
    return Dataset(name, *parts["train"], *parts["test"], classes=10, image_shape=shape)


# ---------------------------------------------------------------- CIFAR-10 (python pickles)


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles only what a CIFAR-10 batch holds (dicts, lists, bytes, NumPy arrays): a
    pickle may name any Python callable, and this file comes from the user's disk."""

    ALLOWED: frozenset[tuple[str, str]] = frozenset(
        (module, name)
        for module in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray")
        for name in ("_reconstruct", "ndarray", "dtype", "scalar")
    ) | {
        ("numpy.core.numeric", "_frombuffer"),  # protocol 5 arrays
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # bytes in a protocol 0-2 pickle written by Python 3
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise DataError(
                f"it refers to '{module}.{name}'; a batch holds only dicts, lists, bytes "
                "and NumPy arrays"
            )
        return super().find_class(module, name)


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DataError(f"{path}: CIFAR-10 batch not found")
    try:
        with path.open("rb") as f:
            batch = _BatchUnpickler(f, encoding="bytes").load()
    except DataError as exc:
        raise DataError(f"{path}: not a CIFAR-10 python batch ({exc})") from None
    except Exception as exc:  # a damaged pickle raises almost anything
        raise DataError(
            f"{path}: not a CIFAR-10 python batch ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataError(f"{path}: a CIFAR-10 batch needs b'data' and b'labels' entries")
    data = np.asarray(batch[b"data"])
    if data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8:
        raise DataError(f"{path}: data must be uint8 [N, 3072], got {data.dtype}{data.shape}")
    labels = _labels(data, np.asarray(batch[b"labels"]), 10, str(path))
    # stored channel-planar (CHW); the IR is NHWC
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).reshape(len(data), -1)
    return (images / 255.0).astype(np.float32), labels


def load_cifar10(folder: Path | None) -> Dataset:
    """CIFAR-10 from ``data_batch_1..5`` and ``test_batch`` (whichever train batches exist)."""
    if folder is None:
        raise ConfigError("dataset.path: cifar10 needs the folder 'cifar-10-batches-py'")
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"dataset.path = {folder}: cifar10 folder not found")
    train = sorted(folder.glob("data_batch_*"))
    if not train:
        raise DataError(f"{folder}: no data_batch_* files")
    xs, ys = zip(*(_cifar_batch(p) for p in train), strict=True)
    x_te, y_te = _cifar_batch(folder / "test_batch")
    return Dataset("cifar10", np.concatenate(xs), np.concatenate(ys), x_te, y_te, 10, (32, 32, 3))


# ---------------------------------------------------------------- generic .npz


def load_npz(path: Path | None) -> Dataset:
    """``x`` [N, ...] in [0, 1] and integer ``y``; ``x_test``/``y_test`` or a fixed split."""
    if path is None:
        raise ConfigError("dataset.path: npz needs the .npz file")
    path = Path(path)
    if not path.is_file():
        raise DataError(f"dataset.path = {path}: file not found")
    try:
        data = dict(np.load(path, allow_pickle=False))
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a NumPy .npz archive, or truncated ({exc})") from None
    for key in ("x", "y"):
        if key not in data:
            raise DataError(f"{path}: missing array '{key}' (has {sorted(data)})")

    def features(x: np.ndarray, key: str) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
        if not np.all(np.isfinite(x)):
            raise DataError(f"{path}: '{key}' holds NaN or infinite values")
        if x.size and (x.min() < 0 or x.max() > 1):
            raise DataError(
                f"{path}: '{key}' must be scaled to [0, 1] (found {x.min():g}..{x.max():g})"
            )
        return x

    y = np.asarray(data["y"])
    for key in ("y", "y_test"):
        v = np.asarray(data.get(key, y))
        if not np.issubdtype(v.dtype, np.integer) or (v.size and v.min() < 0):
            raise DataError(f"{path}: '{key}' must hold non-negative integer labels")
    classes = int(max(y.max(), data.get("y_test", y).max())) + 1
    x = features(data["x"], "x")
    y = _labels(x, y, classes, str(path))
    shape = tuple(int(s) for s in np.shape(data["x"])[1:])
    if "x_test" in data or "y_test" in data:
        if "x_test" not in data or "y_test" not in data:
            raise DataError(f"{path}: give both 'x_test' and 'y_test' or neither")
        x_te = features(data["x_test"], "x_test")
        if x_te.shape[1] != x.shape[1]:
            raise DataError(
                f"{path}: 'x_test' has {x_te.shape[1]} features per sample, 'x' has {x.shape[1]}"
            )
        return Dataset(
            path.stem, x, y, x_te, _labels(x_te, data["y_test"], classes, str(path)), classes, shape
        )
    return _split(path.stem, x, y, classes, shape)


LOADERS: dict[str, Callable[[Path | None], Dataset]] = {
    "digits": load_digits_dataset,
    "mnist": lambda p: load_idx_folder("mnist", p),
    "fashion_mnist": lambda p: load_idx_folder("fashion_mnist", p),
    "cifar10": load_cifar10,
    "npz": load_npz,
}


def load_dataset(name: str, path: str | Path | None = None) -> Dataset:
    """Load a data set by its config name; unknown names list the allowed ones."""
    try:
        loader = LOADERS[name]
    except KeyError:
        raise ConfigError(f"dataset: '{name}' is not known; allowed: {sorted(LOADERS)}") from None
    return loader(None if path is None else Path(path))
