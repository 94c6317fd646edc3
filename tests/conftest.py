"""Options of the whole suite.

``--fuzz-designs N`` (or the environment variable ``QFAB_FUZZ_DESIGNS``) sets how many
random designs the fuzz test simulates (``tests/sim/test_fuzz_designs.py``; CI runs the
default, 25). Long runs: ``pytest tests/sim/test_fuzz_designs.py --fuzz-designs 500``.
"""

from __future__ import annotations

import os

import pytest

DEFAULT_FUZZ_DESIGNS = 25


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fuzz-designs",
        type=int,
        default=None,
        help="random designs the fuzz test simulates (default: $QFAB_FUZZ_DESIGNS or "
        f"{DEFAULT_FUZZ_DESIGNS})",
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
