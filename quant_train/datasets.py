"""Data sets: arrays of float32 features in [0, 1] and int64 labels, already split.

The embedded default is scikit-learn's ``load_digits`` (8x8 images, 10 classes,
1,797 samples), shipped inside scikit-learn, so nothing is downloaded at run time.
The split is stratified and seeded with a *fixed* seed, independent of the training
seed: changing ``train.seed`` changes the model, never which images are test images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from qfab.errors import ConfigError

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

    @property
    def features(self) -> int:
        return int(self.x_train.shape[1])


def load_digits_dataset() -> Dataset:
    """scikit-learn digits, pixel values 0..16 scaled to [0, 1], 80/20 stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=TEST_FRACTION, stratify=y, random_state=SPLIT_SEED
    )
    return Dataset("digits", x_tr, y_tr, x_te, y_te, classes=10)


LOADERS: dict[str, Callable[[], Dataset]] = {"digits": load_digits_dataset}


def load_dataset(name: str) -> Dataset:
    """Load a data set by its config name; unknown names list the allowed ones."""
    try:
        loader = LOADERS[name]
    except KeyError:
        raise ConfigError(f"dataset: '{name}' is not known; allowed: {sorted(LOADERS)}") from None
    return loader()
