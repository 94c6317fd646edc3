"""Level 2, fuzzed: random designs over every hardware op, golden == RTL on every vector.

hypothesis draws a design spec (:mod:`tests.sim.fuzz_designs`: convs of every kind,
pools, residual adds with shifts, concatenations, shuffles, dense layers; weights and
activations 1-8 bits, signed and unsigned, falling channels, random legal folding and
port widths), the design is lowered, generated, linted by nothing but the simulator
itself, and simulated on Icarus with the suite's input vectors; every vector's every
tapped layer must equal golden. ``--fuzz-designs N`` (or ``QFAB_FUZZ_DESIGNS``) sets how
many (CI: 25). A failure is shrunk by hypothesis to a minimal spec, which is written to
``tests/sim/fuzz_regressions/`` (or ``$QFAB_FUZZ_REGRESSIONS``): commit it and
:func:`test_regression` replays it in every later run.

The mutation test seeds a real RTL bug (a threshold comparator off by one) into the
generated library and checks that a handful of fuzzed designs find it: the fuzz test
can fail.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

from hw_gen.passes import lower
from hw_gen.verilog.emit import generate_verilog
from sim.compare import compare_rtl_to_golden
from sim.runner import run_cocotb
from tests.conftest import DEFAULT_FUZZ_DESIGNS, DEFAULT_FUZZ_SEED
from tests.sim.conftest import input_vectors
from tests.sim.fuzz_designs import (
    Spec,
    build_design,
    design_features,
    design_specs,
    load_regressions,
    write_regression,
)

pytestmark = pytest.mark.slow

REGRESSIONS = Path(
    os.environ.get("QFAB_FUZZ_REGRESSIONS", Path(__file__).parent / "fuzz_regressions")
)
VECTORS = 6


def check_design(spec: Spec, workdir: Path, mutate: Callable[[Path], None] | None = None) -> dict:
    """Lower, generate (then ``mutate`` the design folder), simulate on Icarus, compare."""
    graph, hw_settings = build_design(spec)
    x = input_vectors(graph, VECTORS, data_seed=spec["seed"])
    hw = lower(graph, **hw_settings)
    manifest = generate_verilog(hw, workdir / "rtl")
    if mutate is not None:
        mutate(workdir / "rtl")
    result = run_cocotb(
        workdir / "rtl",
        x,
        simulator="icarus",
        backpressure=bool(spec.get("backpressure")),
        seed=spec["seed"],
        build_dir=workdir / "build",
    )
    tapped = [t["model_node"] for t in manifest["taps"]]
    return compare_rtl_to_golden(graph, x, result, manifest["output"]["model_node"], tapped)


Check = Callable[[Spec, Path], dict]


def fuzz(
    n: int,
    check: Check = check_design,
    *,
    shrink: bool = True,
    regressions: Path | None = REGRESSIONS,
    database: bool = True,
    seed: int | None = None,
) -> list[Spec]:
    """Run the property on ``n`` random designs; returns the specs tried.

    On a failure hypothesis shrinks the spec and replays the minimal one last, so the
    last failing spec seen is the one written to ``regressions`` (then the failure is
    re-raised). ``shrink=False`` stops at the first failure (the mutation test).
    ``database=False`` keeps hypothesis' example database out of it: every call runs the
    same inner property, so a stand-in check's failures would be replayed by the real
    fuzz test (and the other way round) through the shared database key. ``seed`` fixes
    the designs drawn (None: hypothesis' own randomness).
    """
    tried: list[Spec] = []
    failing: list[Spec] = []

    @settings(
        max_examples=n,
        deadline=None,
        print_blob=True,
        database=settings.default.database if shrink and database else None,
        phases=settings.default.phases if shrink else [Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(spec=design_specs())
    def prop(spec: Spec) -> None:
        tried.append(spec)
        with tempfile.TemporaryDirectory(prefix="qfab_fuzz_") as tmp:
            try:
                eq = check(spec, Path(tmp))
                assert eq["mismatches"] == 0, f"first mismatch {eq['first_mismatch']}"
            except BaseException:
                failing.append(spec)
                raise

    if seed is not None:
        prop = hypothesis_seed(seed)(prop)
    try:
        prop()
    except BaseException:
        if regressions is not None and failing:
            path = write_regression(failing[-1], regressions, "golden != RTL (fuzz)")
            print(f"minimal failing spec written to {path}")
        raise
    return tried


def test_random_designs_equal_golden(fuzz_designs, fuzz_seed):
    tried = fuzz(fuzz_designs, seed=fuzz_seed)
    assert len(tried) >= fuzz_designs  # hypothesis really ran that many designs
    seen = Counter(f for spec in tried for f in design_features(spec))
    print(
        f"{len(tried)} random designs, 0 mismatches; features drawn: {dict(sorted(seen.items()))}"
    )


@pytest.mark.parametrize(
    "name",
    sorted(load_regressions(REGRESSIONS))
    or [pytest.param("none", marks=pytest.mark.skip(reason="no fuzz regressions recorded"))],
)
def test_regression(tmp_path, name):
    spec = load_regressions(REGRESSIONS)[name]
    eq = check_design(spec, tmp_path)
    assert eq["mismatches"] == 0, (
        f"{name}: first mismatch {eq['first_mismatch']}: {json.dumps(spec)}"
    )


def comparator_off_by_one(design: Path) -> None:
    """Seeded bug: the MVAU's threshold compare ``acc >= T`` becomes ``acc > T``."""
    f = design / "mvau_pipe.v"
    text = f.read_text()
    bug = text.replace("$signed(acc) >= $signed(t_data", "$signed(acc) > $signed(t_data")
    assert bug != text, "the mutation site moved: update comparator_off_by_one"
    f.write_text(bug)


def test_fuzz_finds_a_seeded_rtl_bug():
    """Mutation test: the same property on designs whose MVAU compares ``acc > T``."""
    with pytest.raises(AssertionError, match=r"first mismatch \{'layer'"):
        fuzz(
            10,
            lambda spec, tmp: check_design(spec, tmp, comparator_off_by_one),
            shrink=False,
            regressions=None,
            seed=0,
        )


def test_a_failure_is_shrunk_and_written_as_a_regression(tmp_path):
    """The regression mechanism, on a stand-in check that fails on any pooled design: the
    spec written is the last failure hypothesis replayed (its shrunk example, usually a
    single pooled conv), it still fails, and it loads and rebuilds."""
    failures: list[Spec] = []

    def pooled_fails(spec: Spec, _: Path) -> dict:
        pooled = any(b.get("pool") for b in spec["blocks"])
        if pooled:
            failures.append(spec)
        return {"mismatches": int(pooled), "first_mismatch": "pool" if pooled else None}

    with pytest.raises(AssertionError, match="first mismatch pool"):
        fuzz(200, pooled_fails, regressions=tmp_path, database=False, seed=0)
    (spec,) = load_regressions(tmp_path).values()
    assert spec == failures[-1]
    assert len(failures) > 1, "hypothesis shrank the first failure"
    assert pooled_fails(spec, tmp_path)["mismatches"] == 1
    build_design(spec)  # it rebuilds


def test_strategy_covers_every_hardware_op():
    """The spec strategy reaches every op kind, width extreme and encoding (no simulation)."""
    seen: Counter[str] = Counter()

    @settings(
        max_examples=400,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(spec=design_specs())
    def collect(spec: Spec) -> None:
        seen.update(design_features(spec))  # builds it: every drawn spec is lowerable

    collect()
    want = {
        "image", "vector", "backpressure", "conv", "depthwise", "grouped", "stride 2",
        "padding", "pool", "residual", "concat", "shuffle", "dense", "output", "bias",
        "falling", "xnor", "sparse engine",
        "weights 1-bit", "weights 8-bit", "act 1-bit", "act 8-bit", "act 4-bit signed",
        "input signed", "input unsigned", "input 1-bit", "input 8-bit",
    }  # fmt: skip
    assert want <= set(seen), f"never drawn: {sorted(want - set(seen))}"


def test_the_ci_seed_draws_every_hardware_op():
    """CI's fixed set of designs (DEFAULT_FUZZ_SEED, 25 designs) covers every op kind and
    encoding; hypothesis draws the same specs whatever the check does while it passes, so
    a stand-in check lists them without simulating. After a strategy change moves the set,
    pick a seed that covers everything again."""

    def passes(spec: Spec, _: Path) -> dict:
        return {"mismatches": 0, "first_mismatch": None}

    tried = fuzz(
        DEFAULT_FUZZ_DESIGNS, passes, regressions=None, database=False, seed=DEFAULT_FUZZ_SEED
    )
    seen = set().union(*(design_features(spec) for spec in tried))
    want = {
        "conv", "depthwise", "grouped", "stride 2", "padding", "pool", "residual", "concat",
        "shuffle", "dense", "sparse engine", "xnor", "falling", "backpressure", "vector",
        "image", "input signed", "weights 8-bit", "act 8-bit",
    }  # fmt: skip
    assert want <= seen, f"CI's fuzz designs never draw {sorted(want - seen)}"
