"""The embedded default data set: fixed, stratified, scaled to [0, 1]."""

from __future__ import annotations

import numpy as np
import pytest

from qfab.errors import ConfigError
from quant_train.datasets import load_dataset


def test_digits_split_is_fixed_stratified_and_scaled(digits):
    again = load_dataset("digits")
    np.testing.assert_array_equal(digits.x_test, again.x_test)
    assert digits.x_train.shape == (1437, 64) and digits.x_test.shape == (360, 64)
    assert digits.x_train.dtype == np.float32 and 0 <= digits.x_train.min() <= digits.x_train.max() <= 1
    train_share = np.bincount(digits.y_train) / len(digits.y_train)
    test_share = np.bincount(digits.y_test) / len(digits.y_test)
    assert np.abs(train_share - test_share).max() < 0.01


def test_unknown_dataset_lists_the_allowed_ones():
    with pytest.raises(ConfigError, match="allowed: \\['digits'\\]"):
        load_dataset("imagenet")
