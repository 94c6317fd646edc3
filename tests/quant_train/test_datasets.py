"""The embedded default data set: fixed, stratified, scaled to [0, 1]."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest

from qfab.errors import ConfigError, DataError
from quant_train.datasets import load_dataset


def test_digits_split_is_fixed_stratified_and_scaled(digits):
    again = load_dataset("digits")
    np.testing.assert_array_equal(digits.x_test, again.x_test)
    assert digits.x_train.shape == (1437, 64) and digits.x_test.shape == (360, 64)
    assert (
        digits.x_train.dtype == np.float32
        and 0 <= digits.x_train.min() <= digits.x_train.max() <= 1
    )
    train_share = np.bincount(digits.y_train) / len(digits.y_train)
    test_share = np.bincount(digits.y_test) / len(digits.y_test)
    assert np.abs(train_share - test_share).max() < 0.01


def test_unknown_dataset_lists_the_allowed_ones():
    with pytest.raises(
        ConfigError, match="allowed: \\['cifar10', 'digits', 'fashion_mnist', 'mnist', 'npz'\\]"
    ):
        load_dataset("imagenet")


# ----------------------------------------------------------------- user-supplied formats
# Each loader is tested on small files the test writes in the real on-disk format.


def write_idx(path, array, compress):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


def write_mnist_folder(folder, n_train=30, n_test=10, compress=True, rows=28):
    rng = np.random.default_rng(0)
    folder.mkdir(exist_ok=True)
    ext = ".gz" if compress else ""
    data = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        img = rng.integers(0, 256, size=(n, rows, rows), dtype=np.uint8)
        lbl = rng.integers(0, 10, size=n, dtype=np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", img, compress)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", lbl, compress)
        data[prefix] = (img, lbl)
    return data


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_folder_loads_gzip_and_raw(tmp_path, name, compress):
    data = write_mnist_folder(tmp_path / "d", compress=compress)
    ds = load_dataset(name, tmp_path / "d")
    assert ds.x_train.shape == (30, 784) and ds.x_test.shape == (10, 784)
    np.testing.assert_array_equal(ds.y_test, data["t10k"][1])
    np.testing.assert_allclose(ds.x_train[3], data["train"][0][3].reshape(-1) / 255.0, rtol=1e-6)
    assert ds.image_shape == (28, 28, 1)


def test_truncated_idx_is_rejected_naming_the_file(tmp_path):
    write_mnist_folder(tmp_path / "d", compress=False)
    f = tmp_path / "d" / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(DataError, match="train-images-idx3-ubyte: header declares .*truncated"):
        load_dataset("mnist", tmp_path / "d")


def test_truncated_gzip_is_rejected(tmp_path):
    write_mnist_folder(tmp_path / "d")
    f = tmp_path / "d" / "t10k-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[:50])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz: corrupt or truncated gzip"):
        load_dataset("mnist", tmp_path / "d")


def test_mislabelled_idx_is_rejected(tmp_path):
    write_mnist_folder(tmp_path / "d", compress=False)
    # a labels file of the wrong length (e.g. the test labels next to train images)
    write_idx(tmp_path / "d" / "train-labels-idx1-ubyte", np.zeros(7, np.uint8), False)
    with pytest.raises(DataError, match="30 images but 7 labels"):
        load_dataset("mnist", tmp_path / "d")
    write_idx(tmp_path / "d" / "train-labels-idx1-ubyte", np.full(30, 12, np.uint8), False)
    with pytest.raises(DataError, match="label 12 outside 0..9"):
        load_dataset("mnist", tmp_path / "d")
    write_idx(tmp_path / "d" / "train-labels-idx1-ubyte", np.zeros(30, np.uint8), False)
    (tmp_path / "d" / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x0d\x01" + b"\x00" * 8)
    with pytest.raises(DataError, match="not an IDX file"):
        load_dataset("mnist", tmp_path / "d")


def write_cifar_batch(path, n, seed, labels=None):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    lbl = list(rng.integers(0, 10, size=n)) if labels is None else labels
    with path.open("wb") as f:
        pickle.dump({b"data": data, b"labels": lbl, b"batch_label": b"x"}, f)
    return data, lbl


def test_cifar10_pickles_load_as_nhwc(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    data, _ = write_cifar_batch(d / "data_batch_1", 6, 1)
    write_cifar_batch(d / "data_batch_2", 4, 2)
    write_cifar_batch(d / "test_batch", 5, 3)
    ds = load_dataset("cifar10", d)
    assert ds.x_train.shape == (10, 3072) and ds.x_test.shape == (5, 3072)
    img = data[0].reshape(3, 32, 32)  # channel planes in the file
    nhwc = ds.x_train[0].reshape(32, 32, 3)
    assert nhwc[5, 7, 2] == pytest.approx(img[2, 5, 7] / 255.0)


def test_cifar10_rejects_truncated_and_mislabelled(tmp_path):
    d = tmp_path / "c"
    d.mkdir()
    write_cifar_batch(d / "data_batch_1", 6, 1)
    write_cifar_batch(d / "test_batch", 5, 3, labels=[1, 2])
    with pytest.raises(DataError, match="5 images but 2 labels"):
        load_dataset("cifar10", d)
    raw = (d / "data_batch_1").read_bytes()
    (d / "data_batch_1").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="data_batch_1: not a CIFAR-10 python batch"):
        load_dataset("cifar10", d)


def test_npz_with_and_without_test_split(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((50, 4, 4)).astype(np.float32)
    y = np.repeat(np.arange(5), 10)
    np.savez(tmp_path / "a.npz", x=x, y=y)
    ds = load_dataset("npz", tmp_path / "a.npz")
    assert ds.features == 16 and ds.classes == 5 and len(ds.y_test) == 10
    np.savez(tmp_path / "b.npz", x=x, y=y, x_test=x[:3], y_test=y[:3])
    assert len(load_dataset("npz", tmp_path / "b.npz").y_test) == 3
    np.savez(tmp_path / "c.npz", x=x * 255, y=y)
    with pytest.raises(DataError, match="scaled to \\[0, 1\\]"):
        load_dataset("npz", tmp_path / "c.npz")
    np.savez(tmp_path / "d.npz", x=x, y=y[:-1])
    with pytest.raises(DataError, match="50 images but 49 labels"):
        load_dataset("npz", tmp_path / "d.npz")
    np.savez(tmp_path / "e.npz", x=x)
    with pytest.raises(DataError, match="missing array 'y'"):
        load_dataset("npz", tmp_path / "e.npz")


def test_path_required_and_missing_folder(tmp_path):
    with pytest.raises(ConfigError, match="dataset.path"):
        load_dataset("mnist")
    with pytest.raises(DataError, match="folder not found"):
        load_dataset("mnist", tmp_path / "nope")


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"y_test": "neg"}, "'y_test' must hold non-negative integer labels"),
        ({"y_test": "float"}, "'y_test' must hold non-negative integer labels"),
        ({"x_test": "narrow"}, "'x_test' has 8 features per sample, 'x' has 16"),
        ({"x": "nan"}, "'x' holds NaN or infinite values"),
    ],
)
def test_npz_rejects_bad_test_arrays(tmp_path, arrays, message):
    rng = np.random.default_rng(0)
    x = rng.random((50, 16)).astype(np.float32)
    y = np.repeat(np.arange(5), 10)
    parts = {"x": x, "y": y, "x_test": x[:4], "y_test": y[:4]}
    variants = {
        "neg": np.array([0, 1, -1, 2]),
        "float": np.array([0.7, 1.0, 2.0, 3.0]),
        "narrow": x[:4, :8],
        "nan": np.where(x > 0.5, np.nan, x),
    }
    parts.update({k: variants[v] for k, v in arrays.items()})
    np.savez(tmp_path / "bad.npz", **parts)
    with pytest.raises(DataError, match=message):
        load_dataset("npz", tmp_path / "bad.npz")


def test_truncated_npz_is_a_data_error(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.zeros((20, 4), np.float32), y=np.zeros(20, np.int64))
    raw = (tmp_path / "a.npz").read_bytes()
    (tmp_path / "a.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="a.npz: not a NumPy .npz archive, or truncated"):
        load_dataset("npz", tmp_path / "a.npz")


def test_negative_cifar_label_and_mixed_mnist_sizes_are_refused(tmp_path):
    d = tmp_path / "c"
    d.mkdir()
    write_cifar_batch(d / "data_batch_1", 3, 1, labels=[1, -1, 2])
    write_cifar_batch(d / "test_batch", 2, 3)
    with pytest.raises(DataError, match="data_batch_1: label -1 outside 0..9"):
        load_dataset("cifar10", d)
    m = tmp_path / "m"
    write_mnist_folder(m)
    rng = np.random.default_rng(1)
    write_idx(m / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (10, 20, 20)), True)
    with pytest.raises(
        DataError, match="test images are \\[20, 20\\], training images \\[28, 28\\]"
    ):
        load_dataset("mnist", m)
    with pytest.raises(DataError, match="dataset.path = .*nope.npz: file not found"):
        load_dataset("npz", tmp_path / "nope.npz")
