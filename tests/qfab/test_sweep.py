"""Sweeps (:mod:`qfab.sweep`): points, validation, the Pareto front, and real Ray runs.

The fast tests need no Ray: grid and random expansion, trial ids and training keys, the
errors a bad sweep file gets, the resume guard, the Pareto front (a synthetic case with
a known answer, and hypothesis against a brute-force definition). The slow ones run real
sweeps of tiny real trials (a 1-epoch MLP, a few Icarus vectors, no synthesis) on a
local Ray, on a two-node Ray cluster started with the ``ray`` CLI on loopback, and
killed midway then resumed; and the fuzz test's random designs as Ray tasks.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from qfab.errors import ConfigError
from qfab.pareto import pareto_front
from qfab.sweep import (
    RESULT_FILE,
    _claim,
    grid_points,
    load_sweep,
    pareto_rows,
    random_points,
    ray_session,
    ray_token_available,
    run_fuzz_regression,
    run_sweep,
    trial_metrics,
)

ROOT = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).with_name("ray")

#: the smallest real trial: 1 epoch, 16 hidden units, 4 Icarus vectors, no FIFO sizing or
#: synthesis (about 8 s on one core)
TINY_BASE: dict[str, Any] = {
    "model": {"hidden": [16], "weight_bits": 2, "act_bits": 2},
    "train": {"epochs": 1, "float_baseline": False},
    "hw": {"fifo_sizing": "off"},
    "sim": {"simulator": "icarus", "vectors": 4},
    "synth": {"enabled": False},
}
GOOD_FOLDING = {"pe": [4, 2], "simd": [16, 4]}
SLOW_FOLDING = {"pe": [2, 1], "simd": [8, 2]}
BAD_FOLDING = {"pe": [3, 2], "simd": [16, 4]}  # 3 does not divide fc0's 16 rows


def write_sweep(tmp_path: Path, **spec: Any) -> Path:
    """A SWEEP.yaml with the tiny base (unless given) and ``spec``'s keys."""
    path = tmp_path / "SWEEP.yaml"
    path.write_text(yaml.safe_dump({"base": TINY_BASE, **spec}, sort_keys=False))
    return path


# --- points, ids, keys --------------------------------------------------------------------------


def test_grid_is_every_combination_first_axis_slowest_with_stable_ids(tmp_path):
    axes = {"model.weight_bits": [2, 3, 4], "hw.target_cycles": [8, 16, 32, 64]}
    sweep = load_sweep(write_sweep(tmp_path, axes=axes))
    got = [t.point for t in sweep.trials]
    assert len(got) == 12
    assert got == [
        {"model.weight_bits": w, "hw.target_cycles": c} for w in (2, 3, 4) for c in (8, 16, 32, 64)
    ]
    assert len({t.id for t in sweep.trials}) == 12
    assert sweep.trials[0].id.startswith("weight_bits=2,target_cycles=8-")
    # the config each trial runs has the point's values over the base
    assert sweep.trials[5].config["model"] == {**TINY_BASE["model"], "weight_bits": 3}
    assert sweep.trials[5].config["hw"] == {**TINY_BASE["hw"], "target_cycles": 16}
    # ids do not depend on the axes' order in the file
    swapped = load_sweep(write_sweep(tmp_path, axes=dict(reversed(axes.items()))))
    assert {t.id.rsplit("-", 1)[1] for t in swapped.trials} == {
        t.id.rsplit("-", 1)[1] for t in sweep.trials
    }
    # points differing only in hw.* share the training key; different bits do not
    keys = {}
    for t in sweep.trials:
        keys.setdefault(t.point["model.weight_bits"], set()).add(t.training_key)
    assert all(len(k) == 1 for k in keys.values())
    assert len(set().union(*keys.values())) == 3


def test_random_points_are_distinct_grid_points_drawn_by_the_seed():
    axes = {"a.x": list(range(7)), "a.y": list(range(5)), "a.z": ["p", "q"]}
    grid = list(grid_points(axes))
    drawn = random_points(axes, 9, seed=1)
    assert len(drawn) == 9
    assert all(p in grid for p in drawn)
    assert len({json.dumps(p) for p in drawn}) == 9
    assert random_points(axes, 9, seed=1) == drawn
    assert random_points(axes, 9, seed=2) != drawn
    assert random_points(axes, 70, seed=0) == grid  # as many as the grid: all of it
    # every grid point is reachable: all 70 drawn one at a time over seeds cover the grid
    seen = {json.dumps(random_points(axes, 1, seed=s)[0]) for s in range(2000)}
    assert len(seen) == 70


def test_random_mode_validates_only_the_drawn_points(tmp_path):
    sweep = load_sweep(
        write_sweep(
            tmp_path, axes={"model.weight_bits": [1, 2, 3, 4]}, mode="random", samples=2, seed=5
        )
    )
    assert [t.point for t in sweep.trials] == random_points(
        {"model.weight_bits": [1, 2, 3, 4]}, 2, 5
    )


# --- a bad sweep is refused before anything runs ------------------------------------------------


@pytest.mark.parametrize(
    ("axes", "message"),
    [
        (
            {"model.wieght_bits": [2]},
            r"SWEEP.yaml: axes.model.wieght_bits is not a config key; allowed under model: "
            r"arch, hidden, weight_bits",
        ),
        ({"modle.hidden": [[8]]}, r"axes.modle.hidden is not a config key; allowed under the top"),
        ({"model.hidden.x": [1]}, r"axes.model.hidden.x: 'model.hidden' has no keys inside"),
        ({"hw.layers.fc0.engin": ["dense"]}, r"allowed under hw.layers.fc0: .*engine"),
    ],
)
def test_an_axis_that_is_not_a_config_key_is_named(tmp_path, axes, message):
    with pytest.raises(ConfigError, match=message):
        load_sweep(write_sweep(tmp_path, axes=axes))


def test_a_value_the_config_refuses_names_the_file_the_point_and_the_key(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_sweep(write_sweep(tmp_path, axes={"model.weight_bits": [2, 9]}))
    text = str(err.value)
    assert "SWEEP.yaml: point weight_bits=9-" in text
    assert "model.weight_bits = 9 is not allowed; allowed: 1..8" in text
    # a per-layer engine setting: deep keys are checked too
    with pytest.raises(ConfigError, match=r"hw.layers.fc0.engine = 'fast' is not allowed"):
        load_sweep(write_sweep(tmp_path, axes={"hw.layers.fc0.engine": ["sparse", "fast"]}))
    # an optuna search validates every point of its grid too
    with pytest.raises(ConfigError, match=r"point weight_bits=0-.*weight_bits = 0"):
        load_sweep(
            write_sweep(tmp_path, axes={"model.weight_bits": [0, 2]}, mode="optuna", trials=3)
        )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"axes": {"model.act_bits": [2]}, "axis": {}}, r"unknown key 'axis'; allowed here: base"),
        ({"axes": {}}, r"give at least one config key"),
        ({"axes": {"model.act_bits": []}}, r"axes.model.act_bits: give at least one value"),
        ({"axes": {"model.act_bits": [2]}, "mode": "random"}, r"mode random needs 'samples'"),
        ({"axes": {"model.act_bits": [2]}, "mode": "optuna"}, r"mode optuna needs 'trials'"),
        ({"axes": {"model.act_bits": [2]}, "samples": 3}, r"'samples' is for mode random"),
        ({"axes": {"model.act_bits": [2]}, "mode": "bayes"}, r"mode = 'bayes' is not allowed"),
        (
            {"axes": {"model.act_bits": [2]}, "objectives": [{"name": "luts"}]},
            r"objectives\[0\].name = 'luts' is not allowed",
        ),
        (
            {"axes": {"model.act_bits": [2]}, "resources": {"cpus": 2}},
            r"unknown key 'resources.cpus'; allowed here: cpus_per_trial",
        ),
        ({"axes": {"model.act_bits": [2]}, "base": "nowhere.yaml"}, r"nowhere.yaml' not found"),
    ],
)
def test_sweep_file_errors_are_one_line_naming_the_file_and_key(tmp_path, spec, message):
    path = tmp_path / "SWEEP.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match=message) as err:
        load_sweep(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_base_config_file_is_read_relative_to_the_sweep_file(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(TINY_BASE))
    path = tmp_path / "SWEEP.yaml"
    path.write_text(yaml.safe_dump({"base": "base.yaml", "axes": {"model.act_bits": [1, 2]}}))
    sweep = load_sweep(path)
    assert [t.config["model"]["act_bits"] for t in sweep.trials] == [1, 2]
    (tmp_path / "base.yaml").write_text("model: {hidden: [16], weight_bits: 12}\n")
    with pytest.raises(ConfigError, match=r"base.yaml: model.weight_bits = 12 is not allowed"):
        load_sweep(path)


def test_resuming_into_a_folder_of_other_points_is_refused(tmp_path):
    out = tmp_path / "out"
    first = load_sweep(write_sweep(tmp_path, axes={"model.act_bits": [1, 2]}))
    _claim(out, first)
    # the same points with other objectives or CPUs: the same sweep, resumable
    again = load_sweep(
        write_sweep(tmp_path, axes={"model.act_bits": [1, 2]}, objectives=["LUT"], num_cpus=1)
    )
    _claim(out, again)
    other = load_sweep(write_sweep(tmp_path, axes={"model.act_bits": [1, 3]}))
    with pytest.raises(ConfigError, match=r"--out .*holds an earlier sweep of other points"):
        _claim(out, other)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"not a sweep's and is not empty"):
        _claim(tmp_path / "busy", first)


def test_trial_metrics_read_every_objective_from_a_report(tmp_path):
    report = {
        "accuracy": {"quantized": 0.9},
        "resources": {"LUT": 100, "FF": 50, "BRAM36": 2, "DSP": 0},
        "perf": {"cycles_per_frame": {"measured": 64.5, "model": 64}, "clock_mhz": 200.0},
    }
    m = trial_metrics(report, tmp_path)
    assert m["accuracy"] == 0.9 and (m["LUT"], m["FF"], m["BRAM"], m["DSP"]) == (100, 50, 2, 0)
    assert m["cycles_per_frame"] == 64.5  # measured wins over the model
    assert m["frames_per_s"] == pytest.approx(200e6 / 64.5)
    assert m["storage_bytes"] is None  # no IR in the folder
    report["perf"]["cycles_per_frame"]["measured"] = None
    assert trial_metrics(report, tmp_path)["cycles_per_frame"] == 64
    assert set(trial_metrics(None, tmp_path).values()) == {None}


# --- the Pareto front -----------------------------------------------------------------------------


def test_pareto_front_of_a_synthetic_sweep_is_the_known_one(tmp_path):
    sweep = load_sweep(
        write_sweep(
            tmp_path,
            axes={"model.act_bits": [2]},
            objectives=[{"name": "accuracy"}, {"name": "LUT"}, {"name": "cycles_per_frame"}],
        )
    )

    def row(name: str, acc: float | None, lut: int, cycles: int, status: str = "ok") -> dict:
        return {
            "id": name,
            "accuracy": acc,
            "LUT": lut,
            "cycles_per_frame": cycles,
            "status": status,
        }

    rows = [
        row("a", 0.90, 100, 64),  # front
        row("b", 0.95, 200, 64),  # front: more accurate, bigger
        row("c", 0.90, 150, 64),  # dominated by a
        row("d", 0.85, 100, 16),  # front: faster
        row("e", 0.85, 100, 32),  # dominated by d
        row("f", 0.95, 200, 64),  # equal to b: kept with it
        row("g", 0.99, 10, 1, status="failed"),  # would dominate all, but failed
        row("h", None, 10, 1),  # accuracy unknown: not comparable
        row("i", 0.80, 90, 64),  # front: the smallest
    ]
    assert [r["id"] for r in pareto_rows(sweep, rows)] == ["a", "b", "d", "f", "i"]
    # a goal flipped in the file flips the front
    maximize_lut = load_sweep(
        write_sweep(
            tmp_path,
            axes={"model.act_bits": [2]},
            objectives=[{"name": "accuracy"}, {"name": "LUT", "goal": "max"}],
        )
    )
    assert [r["id"] for r in pareto_rows(maximize_lut, rows)] == ["b", "f"]


def dominates(a: np.ndarray, b: np.ndarray, sign: np.ndarray) -> bool:
    """Brute force: ``a`` is at least as good everywhere and better somewhere."""
    return bool(np.all(sign * a >= sign * b) and np.any(sign * a > sign * b))


@settings(max_examples=200, deadline=None, database=None)
@given(
    st.integers(1, 4).flatmap(
        lambda k: st.tuples(
            st.lists(st.lists(st.integers(0, 4), min_size=k, max_size=k), max_size=14),
            st.lists(st.booleans(), min_size=k, max_size=k),
        )
    )
)
def test_pareto_front_equals_the_brute_force_definition(case):
    points, maximize = case
    p = np.array(points, dtype=float).reshape(len(points), len(maximize))
    sign = np.where(maximize, 1.0, -1.0)
    want = [i for i in range(len(p)) if not any(dominates(p[j], p[i], sign) for j in range(len(p)))]
    got = pareto_front(
        p,
        maximize=[i for i, m in enumerate(maximize) if m],
        minimize=[i for i, m in enumerate(maximize) if not m],
    )
    assert list(got) == want


# --- real sweeps on Ray -------------------------------------------------------------------------


def expected_front(rows: list[dict], objectives: dict[str, str]) -> set[str]:
    """The front of the ok rows by the definition, for checking what the sweep wrote."""
    ok = [r for r in rows if r["status"] == "ok"]
    sign = np.array([1.0 if g == "max" else -1.0 for g in objectives.values()])
    vals = {r["id"]: np.array([float(r[k]) for k in objectives]) for r in ok}
    return {i for i, v in vals.items() if not any(dominates(w, v, sign) for w in vals.values())}


@pytest.mark.slow
def test_local_sweep_runs_every_trial_records_a_failure_and_writes_the_tables(tmp_path):
    path = write_sweep(
        tmp_path,
        axes={"hw.folding": [GOOD_FOLDING, BAD_FOLDING, SLOW_FOLDING]},
        objectives=["accuracy", "cycles_per_frame"],
        num_cpus=2,
    )
    out = tmp_path / "out"
    result = run_sweep(path, out)
    by_fold = {json.dumps(r["hw.folding"]): r for r in result.rows}
    good, bad, slow = (by_fold[json.dumps(f)] for f in (GOOD_FOLDING, BAD_FOLDING, SLOW_FOLDING))
    assert bad["status"] == "failed"
    assert "hw.folding.pe[0] = 3 (fc0) must divide MH = 16" in bad["error"]
    for r in (good, slow):
        assert r["status"] == "ok", r["error"]
        report = json.loads((out / r["dir"] / "report.json").read_text())
        assert report["equality"]["rtl_vs_golden"]["mismatches"] == 0
        assert r["accuracy"] == report["accuracy"]["quantized"]
        assert r["cycles_per_frame"] == report["perf"]["cycles_per_frame"]["measured"]
        assert r["node"]  # it ran in a Ray worker, which recorded its node
    # one training key: the first trial ran alone, the others were given its folder to reuse
    assert good["training_key"] == bad["training_key"] == slow["training_key"]
    assert good["reuse_from"] is None
    assert bad["reuse_from"] == slow["reuse_from"] == good["id"]
    # ... and reused it: the trained model was copied, not trained again
    state = json.loads((out / slow["dir"] / "run.json").read_text())
    assert Path(state["reused"]).name == good["id"]
    weights = [(out / r["dir"] / "brevitas_model.pt").read_bytes() for r in (good, slow)]
    assert weights[0] == weights[1]
    assert sorted(result.ran) == sorted(r["id"] for r in result.rows) and not result.skipped
    # every trial's result.json, and the tables, agree with the rows
    for r in result.rows:
        assert json.loads((out / r["dir"] / RESULT_FILE).read_text())["status"] == r["status"]
    csv = pd.read_csv(out / "results.csv")
    parquet = pd.read_parquet(out / "results.parquet")
    for table in (csv, parquet):
        assert sorted(table["id"]) == sorted(r["id"] for r in result.rows)
        assert {"hw.folding", "accuracy", "LUT", "status", "error", "seconds", "dir"} <= set(
            table.columns
        )
        assert table.set_index("id").loc[bad["id"], "status"] == "failed"
    front = set(pd.read_csv(out / "pareto.csv")["id"])
    want = expected_front(result.rows, {"accuracy": "max", "cycles_per_frame": "min"})
    assert front == want == {r["id"] for r in result.pareto}
    assert bad["id"] not in front


def stand_in_trial(
    config: dict, trial_dir: Path, reuse_from: Path | None = None, *, console: Any
) -> dict:
    """A trial runner whose report follows from the config in microseconds: the Optuna
    test checks the search and the bookkeeping around it, not ``qfab run`` (the tests
    above run that). Bits 3 fail, as a design that does not fit would."""
    from qfab.errors import HardwareError

    bits, cycles = config["model"]["weight_bits"], config["hw"]["target_cycles"]
    if bits == 3:
        raise HardwareError(f"weight_bits {bits}: does not fit (stand-in)")
    trial_dir.mkdir(parents=True)
    report = {
        "accuracy": {"quantized": 1 - 1 / (bits + 1)},
        "resources": {"LUT": bits * 1024 // cycles},
        "perf": {"cycles_per_frame": {"measured": cycles}, "clock_mhz": 100.0},
    }
    (trial_dir / "report.json").write_text(json.dumps(report))
    return report


@pytest.mark.slow
def test_optuna_search_runs_its_trials_records_them_and_resumes(tmp_path):
    path = write_sweep(
        tmp_path,
        axes={"model.weight_bits": [1, 2, 3, 4, 8], "hw.target_cycles": [4, 16, 64]},
        mode="optuna",
        trials=4,
        seed=3,
        num_cpus=2,
    )
    out = tmp_path / "out"
    with ray_session(None, 2):  # one local Ray for both runs
        first = run_sweep(path, out, runner=stand_in_trial)
        stamps = {
            p.parent.name: json.loads(p.read_text())["started"]
            for p in out.glob(f"trials/*/{RESULT_FILE}")
        }
        second = run_sweep(path, out, runner=stand_in_trial)
    assert 1 <= len(first.ran) <= 4  # Optuna may ask for a point twice: it runs once
    results = [json.loads(p.read_text()) for p in out.glob(f"trials/*/{RESULT_FILE}")]
    assert sorted(r["id"] for r in results) == first.ran == sorted(r["id"] for r in first.rows)
    for r in results:
        bits = r["point"]["model.weight_bits"]
        assert r["status"] == ("failed" if bits == 3 else "ok")
        if bits != 3:
            assert r["metrics"]["accuracy"] == pytest.approx(1 - 1 / (bits + 1))
    assert {r["id"] for r in first.pareto} == expected_front(
        first.rows, {"accuracy": "max", "LUT": "min"}
    )
    assert (out / "results.parquet").is_file() and (out / "pareto.csv").is_file()
    # the same search again: the seeded sampler asks again; no trial with a result reruns
    assert stamps == {r["id"]: r["started"] for r in results}
    for rid, started in stamps.items():
        assert json.loads((out / "trials" / rid / RESULT_FILE).read_text())["started"] == started
    assert not set(second.ran) & set(stamps)
    assert second.skipped and set(second.skipped) <= set(stamps)


RESUME_SCRIPT = """
import sys
from pathlib import Path
from qfab.sweep import run_sweep
run_sweep(sys.argv[1], Path(sys.argv[2]))
"""


@pytest.mark.slow
def test_a_killed_sweep_reruns_only_its_unfinished_trials(tmp_path):
    # one CPU: the trials run one after the other, so the kill lands between results
    path = write_sweep(
        tmp_path,
        axes={"hw.folding": [GOOD_FOLDING, SLOW_FOLDING, {"pe": [8, 5], "simd": [32, 8]}]},
        objectives=["accuracy", "cycles_per_frame"],
        num_cpus=1,
    )
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-c", RESUME_SCRIPT, str(path), str(out)],
        cwd=ROOT,
        start_new_session=True,  # its own process group: the kill takes Ray's processes too
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while not list(out.glob(f"trials/*/{RESULT_FILE}")):
            assert proc.poll() is None, "the sweep ended before its first trial finished"
            assert time.monotonic() < deadline, "no trial finished in 240 s"
            time.sleep(0.2)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    (finished,) = [json.loads(p.read_text()) for p in out.glob(f"trials/*/{RESULT_FILE}")]
    result = run_sweep(path, out)
    assert result.skipped == [finished["id"]]
    assert sorted(result.ran) == sorted(r["id"] for r in result.rows if r["id"] != finished["id"])
    again = json.loads((out / finished["dir"] / RESULT_FILE).read_text())
    assert again == finished  # not rerun: the same result, the same start time
    assert all(r["status"] == "ok" for r in result.rows), [r["error"] for r in result.rows]
    assert len(pd.read_parquet(out / "results.parquet")) == 3
    assert not list((out / "trials").glob(".*partial*")), "the killed run's temp folder stayed"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ray_node(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """``ray start ... --block`` in its own process group (stopped by :func:`stop_group`)."""
    return subprocess.Popen(
        [str(RAY), "start", *args, "--block"],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the node's process group (ray start stops what it started), then
    SIGKILL whatever is left of that group after 5 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.fixture
def loopback_cluster(tmp_path):
    """A real two-node Ray cluster on loopback, started with the ``ray`` CLI.

    The head takes ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` and ``--node-ip-address
    127.0.0.1``: every one of its servers listens on 127.0.0.1 only. The second node
    must not take that variable (``ray start`` then refuses to join a cluster), and
    without it Ray rewrites an address of ``127.0.0.1`` or ``localhost`` to the
    machine's outward address; ``[::ffff:127.0.0.1]`` (the same loopback address,
    written so Ray leaves it alone) keeps it on loopback: it joins as node
    ``::ffff:127.0.0.1``. (Ray 2.60 binds that node's gRPC servers to every interface
    when its address is not literally 127.0.0.1; the traffic stays on loopback.)
    """
    port = free_port()
    temp = Path(tempfile.mkdtemp(prefix="qfab_ray_", dir="/tmp"))  # short: socket paths
    # token authentication on every node when a token exists (as the head would choose
    # by itself; a joining node must be told), off on every node when none does
    auth = "token" if ray_token_available() else "disabled"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": auth}
    env.pop("RAY_ADDRESS", None)
    head_env = {**env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    node_env = {k: v for k, v in env.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    head = start_ray_node(
        [
            "--head",
            f"--port={port}",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=1",
            "--include-dashboard=false",
            f"--temp-dir={temp}",
        ],
        head_env,
        tmp_path / "head.log",
    )
    nodes = [head]
    try:
        deadline = time.monotonic() + 60
        while True:  # the head's GCS accepts connections
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert head.poll() is None, (tmp_path / "head.log").read_text()
            assert time.monotonic() < deadline, "the Ray head did not start in 60 s"
            time.sleep(0.5)
        nodes.append(
            start_ray_node(
                [f"--address=[::ffff:127.0.0.1]:{port}", "--num-cpus=1"],
                node_env,
                tmp_path / "node.log",
            )
        )
        yield f"127.0.0.1:{port}"
    finally:
        for proc in reversed(nodes):
            stop_group(proc)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
def test_sweep_by_address_runs_on_both_nodes_of_a_loopback_cluster(tmp_path, loopback_cluster):
    address = loopback_cluster
    # two training keys (seeds): neither waits for the other, one CPU each
    path = write_sweep(
        tmp_path,
        axes={"train.seed": [0, 1]},
        objectives=["accuracy", "cycles_per_frame"],
    )
    deadline = time.monotonic() + 90
    while True:  # the cluster shows two nodes (asked with the CLI, as an operator would)
        status = subprocess.run(
            [str(RAY), "status", f"--address={address}"],
            capture_output=True,
            text=True,
            timeout=60,
            env={
                **os.environ,
                "RAY_AUTH_MODE": "token" if ray_token_available() else "disabled",
                "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # 127.0.0.1 stays 127.0.0.1
            },
        )
        if status.stdout.count(" node_") == 2:
            break
        assert time.monotonic() < deadline, (tmp_path / "node.log").read_text()[-2000:]
        time.sleep(1)
    with ray_session(address, None) as ray:
        alive = [n for n in ray.nodes() if n["Alive"]]
        assert len(alive) == 2
        assert {n["NodeManagerAddress"] for n in alive} <= {"127.0.0.1", "::ffff:127.0.0.1"}
        result = run_sweep(path, tmp_path / "out", address=address)  # joins the same session
    assert [r["status"] for r in result.rows] == ["ok", "ok"], [r["error"] for r in result.rows]
    # both nodes ran a trial: the same code path as two machines
    assert {r["node"] for r in result.rows} == {n["NodeID"] for n in alive}


def seeded_comparator_bug(spec: dict, workdir: Path) -> dict:
    """The fuzz test's check on designs whose MVAU compares ``acc > T`` (a real RTL bug)."""
    from tests.sim.fuzz_designs import check_design
    from tests.sim.test_fuzz_designs import comparator_off_by_one

    return check_design(spec, workdir, comparator_off_by_one)


FUZZ_SEED = 0  # its first 2 designs have MVAU thresholds the seeded bug changes


@pytest.mark.slow
def test_fuzz_designs_run_as_ray_tasks_and_mismatches_are_counted():
    with ray_session(None, 2):  # one local Ray for both runs
        clean = run_fuzz_regression(2, FUZZ_SEED)
        buggy = run_fuzz_regression(2, FUZZ_SEED, check=seeded_comparator_bug)
    assert (clean.designs, clean.mismatches) == (2, 0), clean.failures
    assert buggy.designs == 2 and buggy.mismatches >= 1
    assert all(f["error"].startswith("first mismatch {'layer'") for f in buggy.failures)


def test_draw_specs_are_the_designs_the_fuzz_test_checks():
    """run_fuzz_regression's designs for a seed are the fuzz test's for that seed."""
    from tests.sim.fuzz_designs import draw_specs
    from tests.sim.test_fuzz_designs import fuzz

    def passes(spec: dict, _: Path) -> dict:
        return {"mismatches": 0, "first_mismatch": None}

    tried = fuzz(5, passes, regressions=None, database=False, seed=FUZZ_SEED)
    assert draw_specs(5, FUZZ_SEED) == tried


@pytest.mark.slow
def test_the_sweep_command_prints_the_front_and_its_report_plots_it(tmp_path, capsys):
    """``qfab sweep`` end to end (the CLI, real trials with synthesis: LUTs), then
    ``qfab report`` of the sweep folder: the comparison page with the accuracy-vs-LUT
    front of its trials."""
    from qfab.cli import main

    base = {**TINY_BASE, "synth": {"enabled": True, "per_unit": False}}
    path = tmp_path / "SWEEP.yaml"
    spec = {
        "base": base,
        "axes": {"hw.target_cycles": [16, 64]},
        "objectives": [{"name": "accuracy", "goal": "max"}, {"name": "LUT", "goal": "min"}],
        "num_cpus": 2,
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Pareto" in printed and (out / "report.html").is_file()
    rows = pd.read_csv(out / "results.csv")
    assert list(rows["status"]) == ["ok", "ok"] and (rows["LUT"] > 0).all()
    # both points have one accuracy (one training); fewer cycles cost more LUTs
    assert rows["accuracy"].nunique() == 1
    (out / "report.html").unlink()
    assert main(["report", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert 'id="fig-accuracy-lut"' in page and page.count("<svg") >= 2
    for trial in rows["id"]:
        assert trial in page
