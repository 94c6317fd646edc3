"""Options of the whole suite.

``--fuzz-designs N`` (or the environment variable ``QFAB_FUZZ_DESIGNS``) sets how many
random designs the fuzz test simulates (``tests/sim/test_fuzz_designs.py``; CI runs the
default, 25). ``--fuzz-seed S`` (``QFAB_FUZZ_SEED``) picks them: an integer (default
:data:`DEFAULT_FUZZ_SEED`, so a CI run is reproducible and gates only on what changed) or
``random`` (new designs every run, the seed printed). Long runs:
``pytest tests/sim/test_fuzz_designs.py --fuzz-designs 500 --fuzz-seed random``.
``--fuzz-hls-designs N`` (``QFAB_FUZZ_HLS_DESIGNS``; CI: 10) does the same for the HLS
backend's C simulation (same strategy and seed, no sparse-engine layers).
"""

from __future__ import annotations

import os

import pytest

DEFAULT_FUZZ_DESIGNS = 25
#: The CI set's seed: its 25 designs cover every hardware op kind (a test checks that).
DEFAULT_FUZZ_SEED = 4
#: HLS designs CI compiles and C-simulates (g++ takes ~2.5 s a design)
DEFAULT_FUZZ_HLS_DESIGNS = 10


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fuzz-seed",
        default=None,
        help="seed of the fuzz test's designs: an integer, or 'random' (default: "
        f"$QFAB_FUZZ_SEED or {DEFAULT_FUZZ_SEED})",
    )
    parser.addoption(
        "--fuzz-designs",
        type=int,
        default=None,
        help="random designs the fuzz test simulates (default: $QFAB_FUZZ_DESIGNS or "
        f"{DEFAULT_FUZZ_DESIGNS})",
    )
    parser.addoption(
        "--fuzz-hls-designs",
        type=int,
        default=None,
        help="random designs the HLS fuzz test compiles and C-simulates (default: "
        f"$QFAB_FUZZ_HLS_DESIGNS or {DEFAULT_FUZZ_HLS_DESIGNS})",
    )


@pytest.fixture(scope="session")
def fuzz_designs(request: pytest.FixtureRequest) -> int:
    """How many random designs to simulate: the option, else the environment, else 25."""
    n = request.config.getoption("--fuzz-designs")
    if n is None:
        n = int(os.environ.get("QFAB_FUZZ_DESIGNS", DEFAULT_FUZZ_DESIGNS))
    if n < 1:
        raise pytest.UsageError(f"--fuzz-designs {n}: allowed >= 1")
    return n


@pytest.fixture(scope="session")
def fuzz_hls_designs(request: pytest.FixtureRequest) -> int:
    """How many random designs the HLS fuzz test C-simulates: the option, else the
    environment, else :data:`DEFAULT_FUZZ_HLS_DESIGNS`."""
    n = request.config.getoption("--fuzz-hls-designs")
    if n is None:
        n = int(os.environ.get("QFAB_FUZZ_HLS_DESIGNS", DEFAULT_FUZZ_HLS_DESIGNS))
    if n < 1:
        raise pytest.UsageError(f"--fuzz-hls-designs {n}: allowed >= 1")
    return n


@pytest.fixture(scope="session")
def fuzz_seed(request: pytest.FixtureRequest) -> int:
    """The fuzz test's hypothesis seed: the option, else the environment, else
    :data:`DEFAULT_FUZZ_SEED`;
    ``random`` draws one (and prints it, so a failing run can be repeated)."""
    raw = request.config.getoption("--fuzz-seed") or os.environ.get(
        "QFAB_FUZZ_SEED", str(DEFAULT_FUZZ_SEED)
    )
    if raw == "random":
        seed = int.from_bytes(os.urandom(4), "little")
        print(f"fuzz seed {seed} (repeat with --fuzz-seed {seed})")
        return seed
    try:
        return int(raw)
    except ValueError:
        raise pytest.UsageError(f"--fuzz-seed {raw!r}: allowed an integer or 'random'") from None


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's digits (the embedded default data set), loaded once per session."""
    from quant_train.datasets import load_dataset

    return load_dataset("digits")
