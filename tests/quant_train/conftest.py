"""Shared fixtures: the digits data set is loaded once per session."""

from __future__ import annotations

import pytest

from quant_train.datasets import load_dataset


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")
