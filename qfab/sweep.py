"""Design-space sweeps (``qfab sweep SWEEP.yaml --out DIR``): many runs, one table, a front.

A sweep file (:mod:`qfab.sweep_config`) names a base config and axes over config keys.
Each point of the sweep is a *trial*: a full run in ``DIR/trials/<id>/`` with its own
report, then ``result.json`` beside it (written atomically when the trial ends, so an
interrupted sweep reruns only the trials without one). Trials run as Ray tasks, each
holding ``resources.cpus_per_trial`` CPUs, so simulators and Yosys never oversubscribe the
machine; Ray is started locally on loopback, or joined at ``--address`` / ``$RAY_ADDRESS``.

Why plain Ray tasks for grid and random and Ray Tune only for Optuna: the points of a grid
or random sweep are known before anything runs, so every one is validated up front, ids
and folders are fixed, trials sharing a training key can be ordered (the first trains,
the others reuse it) and resuming is "skip the trials with a result" — Tune would add its
own experiment state, trial names and folders beside ours and gain nothing. An Optuna
search picks each point from the results so far: that is what Tune's ``OptunaSearch``
(multi-objective) is for, with the same trial function and the same ``result.json``.

Layering: this is orchestration. It imports :mod:`qfab.flow` and :mod:`qfab.config`; no
core module or stage imports it.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import itertools
import json
import math
import os
import re
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, get_origin

import numpy as np
import yaml
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from qfab.config import Config, UniqueKeyLoader, models_in, parse_config, yaml_problem
from qfab.errors import ConfigError, MismatchError, QfabError
from qfab.pareto import pareto_front
from qfab.sweep_config import OBJECTIVE_GOALS, SweepSpec, load_sweep_file, parse_sweep

#: Set before Ray is imported: Ray then takes 127.0.0.1 as this node's address (its
#: default on Linux is the machine's outward address), so a local sweep opens no socket
#: beyond loopback. Only for a local Ray: a worker node joining a cluster needs it unset.
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"

RESULT_FILE = "result.json"
SWEEP_FILE = "sweep.json"
#: statuses of a trial that trained a model (a later trial with its training key may reuse it)
TRAINED = ("ok", "mismatch")
#: a grid this large or smaller is validated point by point even for an Optuna search
VALIDATE_ALL_UP_TO = 10_000


# --- the trial runner: the one seam the stage CLI replaces -----------------------------------


class TrialRunner(Protocol):
    """Runs one trial: ``config`` (a config mapping) into ``trial_dir``; returns its report.

    ``reuse_from`` is the folder of a finished trial with the same training key
    (:func:`training_key`): a stage-aware runner reuses its trained model instead of
    training again. Raises :class:`MismatchError` after writing the folder (a failed
    equality is a finished run), any other :class:`QfabError` for a refusal.
    """

    def __call__(
        self,
        config: dict[str, Any],
        trial_dir: Path,
        reuse_from: Path | None = None,
        *,
        console: Console,
    ) -> dict[str, Any]: ...


def flow_trial(
    config: dict[str, Any], trial_dir: Path, reuse_from: Path | None = None, *, console: Console
) -> dict[str, Any]:
    """A full ``qfab run`` (:func:`qfab.flow.run_flow`) into ``trial_dir``; with
    ``reuse_from`` (a finished trial of the same training key) its trained and exported
    model is copied and the run starts at ``lower``: a folding sweep trains once per
    training key, and costs simulations and syntheses, not trainings."""
    from qfab.flow import run_flow

    cfg = parse_config(config, f"trial {trial_dir.name}")
    return run_flow(cfg, trial_dir, console, reuse=reuse_from)


# --- points, trials and their ids -------------------------------------------------------------


@dataclass(frozen=True)
class Trial:
    """One point of a sweep: its axis values, its whole config, where it runs."""

    id: str  # "<readable name>-<hash of the point>": the folder under DIR/trials
    point: dict[str, Any]  # dotted config key -> value
    config: dict[str, Any]  # the base config with the point's values (validated)
    training_key: str
    config_hash: str  # of the validated config with every default filled in


@dataclass
class Sweep:
    """A loaded, validated sweep: the spec, the base config and (grid/random) every trial."""

    spec: SweepSpec
    source: str  # the sweep file, for messages
    base: dict[str, Any]
    trials: list[Trial]  # grid and random: every point; optuna: empty (the search picks)
    points_hash: str  # what a resumed sweep must match


@dataclass
class SweepResult:
    """What a sweep left in ``out``: a row per trial, the Pareto rows, what ran now."""

    out: Path
    rows: list[dict[str, Any]]
    pareto: list[dict[str, Any]]
    ran: list[str] = field(default_factory=list)  # trial ids run by this call
    skipped: list[str] = field(default_factory=list)  # trial ids that already had a result

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] != "ok"]


def _digest(value: Any, n: int = 8) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def training_key(cfg: Config) -> str:
    """Hash of what decides the trained model (:func:`qfab.flow.training_key`: the
    ``dataset``, ``model``, ``train`` and ``compress`` sections, defaults filled in):
    trials with equal keys share one training (:func:`flow_trial`'s ``reuse_from``)."""
    from qfab.flow import training_key as sections

    return _digest(sections(cfg), 12)


def trial_id(point: dict[str, Any]) -> str:
    """``weight_bits=2,target_cycles=16-3f2a9c1b``: readable axis values (cut at 60
    characters) and a hash of the whole point, stable across runs and axis order."""
    short = {k: k.rsplit(".", 1)[-1] for k in point}
    parts = []
    for key, value in point.items():
        name = short[key] if list(short.values()).count(short[key]) == 1 else key
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
        parts.append(f"{name}={re.sub(r'[^A-Za-z0-9.]+', '-', text).strip('-')}")
    return f"{','.join(parts)[:60]}-{_digest(point)}"


def _config_key_error(key: str, source: str) -> ConfigError | None:
    """None if ``key`` (dotted) names a config key, else the error naming what is allowed."""
    model: type[BaseModel] | None = Config
    parts = key.split(".")
    i, where = 0, []
    while i < len(parts):
        part = parts[i]
        if model is None:
            return ConfigError(
                f"{source}: axes.{key}: '{'.'.join(where)}' has no keys inside; "
                f"sweep over '{'.'.join(where)}' itself"
            )
        if part not in model.model_fields:
            return ConfigError(
                f"{source}: axes.{key} is not a config key; allowed under "
                f"{'.'.join(where) or 'the top level'}: {', '.join(model.model_fields)}"
            )
        where.append(part)
        ann = model.model_fields[part].annotation
        if get_origin(ann) is list:
            model = None  # a list is swept whole (e.g. model.hidden)
        elif get_origin(ann) is dict:  # hw.layers.<layer name>.<key>
            if i + 1 < len(parts):
                i += 1
                where.append(parts[i])
            found = models_in(ann)
            model = found[0] if found else None
        else:
            found = models_in(ann)
            model = found[0] if found else None
        i += 1
    return None


def apply_point(base: dict[str, Any], point: dict[str, Any]) -> dict[str, Any]:
    """``base`` with each dotted key of ``point`` set (missing mappings created; a scalar
    in the way, e.g. ``hw.folding: auto`` under ``hw.folding.pe``, becomes a mapping)."""
    cfg = copy.deepcopy(base)
    for key, value in point.items():
        node = cfg
        *parents, last = key.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[last] = copy.deepcopy(value)
    return cfg


def make_trial(sweep_source: str, base: dict[str, Any], point: dict[str, Any]) -> Trial:
    """The trial of ``point``: its config validated by :func:`qfab.config.parse_config`
    (a refusal names the sweep file, the point and the key)."""
    tid = trial_id(point)
    config = apply_point(base, point)
    # keys are hashed from the validated config, every default filled in, so writing a
    # default out (or leaving it out) changes neither the training key nor the points
    cfg = parse_config(config, f"{sweep_source}: point {tid}")
    resolved = cfg.model_dump(mode="json")
    return Trial(tid, dict(point), config, training_key(cfg), _digest(resolved, 16))


def grid_points(axes: dict[str, list[Any]]) -> Iterator[dict[str, Any]]:
    """Every combination, the first axis slowest (as nested loops in the file's order)."""
    keys = list(axes)
    for values in itertools.product(*(axes[k] for k in keys)):
        yield dict(zip(keys, values, strict=True))


def random_points(axes: dict[str, list[Any]], samples: int, seed: int) -> list[dict[str, Any]]:
    """``samples`` distinct grid points drawn uniformly with ``seed`` (all of them, in
    grid order, when the grid has no more)."""
    keys = list(axes)
    sizes = [len(axes[k]) for k in keys]
    total = math.prod(sizes)
    if samples >= total:
        return list(grid_points(axes))
    picked = np.random.default_rng(seed).choice(total, size=samples, replace=False)
    points = []
    for flat in picked.tolist():
        index = []
        for size in reversed(sizes):  # mixed radix, the last axis fastest (as in the grid)
            flat, r = divmod(flat, size)
            index.append(r)
        index.reverse()
        points.append({k: axes[k][i] for k, i in zip(keys, index, strict=True)})
    return points


def load_sweep(sweep: str | Path | SweepSpec | dict[str, Any]) -> Sweep:
    """Read and validate a sweep: its file (or mapping), its base config, every axis key
    and (grid, random; Optuna when the grid has at most :data:`VALIDATE_ALL_UP_TO`
    points) every point, before anything runs. Errors are one-line ConfigErrors."""
    if isinstance(sweep, SweepSpec | dict):
        source, here = "sweep", Path.cwd()
        spec = sweep if isinstance(sweep, SweepSpec) else parse_sweep(sweep, source)
    else:
        source, here = str(sweep), Path(sweep).parent
        spec = load_sweep_file(sweep)
    base = _load_base(spec.base, here, source)
    for key in spec.axes:
        error = _config_key_error(key, source)
        if error is not None:
            raise error
    grid_size = math.prod(len(v) for v in spec.axes.values())
    trials: list[Trial] = []
    if spec.mode == "grid":
        trials = [make_trial(source, base, p) for p in grid_points(spec.axes)]
    elif spec.mode == "random":
        trials = [
            make_trial(source, base, p)
            for p in random_points(spec.axes, spec.samples or 0, spec.seed)
        ]
    elif grid_size <= VALIDATE_ALL_UP_TO:
        for p in grid_points(spec.axes):
            make_trial(source, base, p)
    else:  # too many to list: each value on its own over the base
        for key, values in spec.axes.items():
            for v in values:
                make_trial(source, base, {key: v})
    if spec.mode == "optuna":
        what: Any = {"base": base, "axes": spec.axes, "trials": spec.trials, "seed": spec.seed}
    else:
        what = sorted(t.id + t.config_hash for t in trials)
    return Sweep(spec, source, base, trials, _digest([spec.mode, what], 16))


def _load_base(base: str | dict[str, Any], here: Path, source: str) -> dict[str, Any]:
    """The base config as a validated mapping (a file path is relative to the sweep file)."""
    if isinstance(base, dict):
        parse_config(base, f"{source}: base")
        return copy.deepcopy(base)
    path = Path(base) if Path(base).is_absolute() else here / base
    if not path.is_file():
        raise ConfigError(f"{source}: base: config file '{path}' not found")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeyLoader) or {}
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        why = yaml_problem(exc) if isinstance(exc, yaml.YAMLError) else "not UTF-8 text"
        raise ConfigError(f"{path}: not valid YAML ({why})") from None
    parse_config(data, str(path))
    return data


# --- one trial, as a Ray task -----------------------------------------------------------------


def trial_metrics(report: dict[str, Any] | None, trial_dir: Path) -> dict[str, float | None]:
    """Every objective :mod:`qfab.sweep_config` knows, from a run's report (None: unknown).

    cycles_per_frame is the simulated steady state when measured, else the performance
    model's; frames_per_s follows from it at the configured clock; BRAM counts 36 Kb
    blocks (two 18 Kb ones make one); storage_bytes is the weight memory of the design:
    each dense layer's weights at their bit width, each sparse-engine layer's encoded
    memories (:mod:`hw_gen.sparse_perf`).
    """
    out: dict[str, float | None] = dict.fromkeys(OBJECTIVE_GOALS)
    if not report:
        return out
    out["accuracy"] = (report.get("accuracy") or {}).get("quantized")
    res = report.get("resources") or {}
    for name, key in (("LUT", "LUT"), ("FF", "FF"), ("BRAM", "BRAM36"), ("DSP", "DSP")):
        out[name] = res.get(key)
    perf = report.get("perf") or {}
    cpf = perf.get("cycles_per_frame") or {}
    cycles = cpf.get("measured") if cpf.get("measured") is not None else cpf.get("model")
    out["cycles_per_frame"] = cycles
    if cycles and perf.get("clock_mhz"):
        out["frames_per_s"] = perf["clock_mhz"] * 1e6 / cycles
    out["storage_bytes"] = _weight_bytes(trial_dir / "model.qfab.npz", report)
    return out


def _weight_bytes(ir_path: Path, report: dict[str, Any]) -> float | None:
    if not ir_path.is_file():
        return None
    from qfab.ir import Graph

    sparse = {r["layer"]: r["memory_bytes"] for r in report.get("sparse", [])}
    total = 0
    for node in Graph.load(ir_path).nodes:
        if "weight" not in node.tensors:
            continue
        if node.name in sparse:
            total += sparse[node.name]
        else:
            bits = int(node.attrs.get("weight_bits", 8))
            total += math.ceil(node.tensors["weight"].size * bits / 8)
    return total


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``path`` whole or not at all (a temp file beside it, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, default=str)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def run_trial(
    runner: TrialRunner,
    trial: Trial,
    sweep_dir: Path,
    reuse_from: Path | None,
    cwd: str | None = None,
) -> dict[str, Any]:
    """Run ``trial`` (in a Ray worker, or anywhere), write its ``result.json``, return it.

    A refused or failed trial is a result too (status ``failed``: a bad folding, a design
    that does not fit; ``mismatch``: a failed equality, its folder kept; ``error``: an
    unexpected exception, its traceback in the log), so the sweep goes on. The run's
    console output goes to ``DIR/logs/<id>.log``. ``cwd``: the folder relative paths in
    the config (a data set's ``path``) mean, as for ``qfab run`` started there; a Ray
    worker starts elsewhere (a node without that folder keeps its own).
    """
    trial_dir = sweep_dir / "trials" / trial.id
    log_path = sweep_dir / "logs" / f"{trial.id}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    status, error, report = "ok", None, None
    here = contextlib.chdir(cwd) if cwd and Path(cwd).is_dir() else contextlib.nullcontext()
    with log_path.open("w", encoding="utf-8") as log, here:
        console = Console(file=log, width=120, force_terminal=False, color_system=None)
        try:
            report = runner(trial.config, trial_dir, reuse_from, console=console)
        except MismatchError as exc:
            status, error = "mismatch", str(exc)
            report = _read_json(trial_dir / "report.json")
        except QfabError as exc:
            status, error = "failed", f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a bug: recorded, the sweep goes on, the log has the trace
            status, error = "error", f"{type(exc).__name__}: {exc}"
            log.write(traceback.format_exc())
    result = {
        "id": trial.id,
        "point": trial.point,
        "training_key": trial.training_key,
        "reuse_from": None if reuse_from is None else reuse_from.name,
        "status": status,
        "error": error,
        "metrics": trial_metrics(report, trial_dir),
        "started": started,
        "finished": time.time(),
        "seconds": round(time.time() - started, 2),
        "node": _node_id(),
        "dir": f"trials/{trial.id}",
    }
    write_json_atomic(trial_dir / RESULT_FILE, result)
    return result


def _node_id() -> str | None:
    try:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    except Exception:  # outside Ray
        return None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# --- Ray ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def ray_session(address: str | None, num_cpus: int | None) -> Iterator[Any]:
    """Ray for the length of the block: joined at ``address`` (or ``$RAY_ADDRESS``), else
    started here on loopback with ``num_cpus`` (default: every core) and no dashboard,
    and shut down after. An already initialized Ray (a caller's) is used as it is."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report over the network
    # on this machine only: Ray would rewrite 127.0.0.1 and localhost to the machine's
    # outward address (to reach it from other nodes) unless the variable says loopback
    loopback = address is None or _is_loopback(address)
    if loopback:
        os.environ[LOOPBACK_ENV] = "0"
    if address is not None and "RAY_AUTH_MODE" not in os.environ and ray_token_available():
        # a head started where a token exists uses token authentication (Ray's default);
        # a process joining it does not unless told, and then hangs in ray.init
        os.environ["RAY_AUTH_MODE"] = "token"
    import ray
    from ray._private import ray_constants

    if loopback:
        # Ray was imported before the variable was set (a caller's import): the constant
        # it derived is read from the module at every use, so setting it is enough
        ray_constants.ENABLE_RAY_CLUSTER = False
    if ray.is_initialized():
        yield ray
        return
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": "warning"}
    if address is None:
        kwargs |= {
            "num_cpus": num_cpus or os.cpu_count() or 1,
            "include_dashboard": False,
            "_node_ip_address": "127.0.0.1",
        }
    else:
        kwargs["address"] = address
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise ConfigError(f"cannot start or join {where}: {exc}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _is_loopback(address: str) -> bool:
    """``127.0.0.1:6379``, ``localhost:6379``, ``[::1]:6379``: a cluster on this machine."""
    host = address.removeprefix("ray://").rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1")


def ray_token_available() -> bool:
    """Whether Ray finds an authentication token: ``$RAY_AUTH_TOKEN``,
    ``$RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``."""
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token"
    return bool(os.environ.get("RAY_AUTH_TOKEN")) or Path(path).is_file()


def _run_tasks(
    ray: Any,
    sweep: Sweep,
    out: Path,
    runner: TrialRunner,
    cpus: int,
    done: dict[str, dict[str, Any]],
    console: Console,
) -> list[str]:
    """Run the trials without a result as Ray tasks; returns the ids run.

    Per training key, the first trial runs alone and the others follow it with its folder
    as ``reuse_from`` (a key that already has a trained trial starts them all at once); if
    it fails before training, the next one takes its place. Different keys run in
    parallel, as many as the cluster's CPUs hold.
    """
    trials = sweep.trials
    task = ray.remote(run_trial).options(num_cpus=cpus, max_retries=0)
    reuse: dict[str, Path] = {}
    for r in done.values():
        if r["status"] in TRAINED:
            reuse.setdefault(r["training_key"], out / r["dir"])
    waiting: dict[str, list[Trial]] = {}
    for t in trials:
        if t.id not in done:
            waiting.setdefault(t.training_key, []).append(t)
    running: dict[Any, Trial] = {}

    def submit(t: Trial) -> None:
        running[task.remote(runner, t, out, reuse.get(t.training_key), os.getcwd())] = t

    for key, group in waiting.items():
        first = group if key in reuse else group[:1]
        for t in first:
            submit(t)
        del group[: len(first)]
    ran = []
    while running:
        (ref,), _ = ray.wait(list(running), num_returns=1)
        trial = running.pop(ref)
        try:
            result = ray.get(ref)
        except Exception as exc:  # the worker died (out of memory, node lost): rerun next time
            result = _lost(trial, exc)
        done[trial.id] = result
        ran.append(trial.id)
        _print_finished(console, sweep, result, len(done), len(trials))
        group = waiting.get(trial.training_key, [])
        if result["status"] in TRAINED and trial.training_key not in reuse:
            reuse[trial.training_key] = out / result["dir"]
            while group:
                submit(group.pop(0))
        elif group and not any(t.training_key == trial.training_key for t in running.values()):
            submit(group.pop(0))
    return ran


def _lost(trial: Trial, exc: BaseException) -> dict[str, Any]:
    """A trial whose worker died: in the table as ``lost``, no result.json (it reruns)."""
    return {
        "id": trial.id,
        "point": trial.point,
        "training_key": trial.training_key,
        "reuse_from": None,
        "status": "lost",
        "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
        "metrics": dict.fromkeys(OBJECTIVE_GOALS),
        "seconds": None,
        "node": None,
        "dir": f"trials/{trial.id}",
    }


def _print_finished(
    console: Console, sweep: Sweep, result: dict[str, Any], n: int, total: int | None
) -> None:
    """One line per finished trial: its id and objectives, or its error."""
    mark = {"ok": "[green]✓[/]", "mismatch": "[red]≠[/]"}.get(result["status"], "[red]✗[/]")
    m = result["metrics"]
    shown = "  ".join(f"{o.name} {_fmt(m[o.name])}" for o in sweep.spec.objectives)
    what = shown if result["status"] == "ok" else f"{result['status']}: {result['error']}"
    count = f"{n}/{total}" if total else f"{n}"
    console.print(
        f"{mark} [{count}] {result['id']}  {what} [dim]({result['seconds']} s)[/]",
        overflow="fold",
    )


def _run_optuna(
    ray: Any, sweep: Sweep, out: Path, runner: TrialRunner, console: Console
) -> tuple[list[str], list[str]]:
    """Ray Tune with OptunaSearch over the axes (each a categorical choice), optimizing the
    objectives together (multi-objective TPE, seeded). A point already run (this call or
    an earlier one) is not run again: its ``result.json`` is reported to the search.
    Returns the trial ids run and those answered from an earlier result."""
    import optuna
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    spec = sweep.spec
    keys = list(spec.axes)
    space = {f"a{i}": tune.choice(list(range(len(spec.axes[k])))) for i, k in enumerate(keys)}
    searcher = OptunaSearch(
        metric=[o.name for o in spec.objectives],
        mode=[o.direction for o in spec.objectives],
        sampler=optuna.samplers.TPESampler(seed=spec.seed),
    )
    trainable = tune.with_resources(
        tune.with_parameters(
            _tune_trial,
            sweep=sweep,
            out=str(out.resolve()),
            runner=runner,
            keys=keys,
            cwd=os.getcwd(),
        ),
        {"cpu": spec.resources.cpus_per_trial},
    )
    tuner = tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=spec.trials or 1),
        run_config=tune.RunConfig(
            name=f"tune-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=str((out / "tune").resolve()),
            verbose=0,
        ),
    )
    before = _finished_ids(out)
    reported = [r.metrics or {} for r in tuner.fit()]
    ran = sorted(_finished_ids(out) - before)
    cached = sorted({m["qfab_trial"] for m in reported if "qfab_trial" in m} & before)
    for n, tid in enumerate(ran, 1):
        result = _read_json(out / "trials" / tid / RESULT_FILE)
        if result:
            _print_finished(console, sweep, result, n, len(ran))
    return ran, cached


def _finished_ids(out: Path) -> set[str]:
    return {p.parent.name for p in (out / "trials").glob(f"*/{RESULT_FILE}")}


class TrialFailed(RuntimeError):
    """Raised in a Tune trial whose run failed, so Optuna records it as failed."""


def _tune_trial(
    config: dict[str, Any],
    sweep: Sweep,
    out: str,
    runner: TrialRunner,
    keys: list[str],
    cwd: str | None = None,
) -> None:
    from ray import tune

    point = {k: sweep.spec.axes[k][int(config[f"a{i}"])] for i, k in enumerate(keys)}
    trial = make_trial(sweep.source, sweep.base, point)
    sweep_dir = Path(out)
    result = _read_json(sweep_dir / "trials" / trial.id / RESULT_FILE)
    tag = {"qfab_trial": trial.id, "qfab_cached": result is not None}
    if result is None:
        reuse = _trained_with_key(sweep_dir, trial.training_key)
        result = run_trial(runner, trial, sweep_dir, reuse, cwd)
    metrics = {o.name: result["metrics"].get(o.name) for o in sweep.spec.objectives}
    missing = [k for k, v in metrics.items() if v is None]
    if result["status"] != "ok" or missing:
        why = result["error"] or f"objectives {missing} unknown (synth or sim disabled?)"
        tune.report(tag)
        raise TrialFailed(f"{trial.id}: {why}")
    tune.report({**metrics, **tag})


def _trained_with_key(sweep_dir: Path, key: str) -> Path | None:
    for path in sorted((sweep_dir / "trials").glob(f"*/{RESULT_FILE}")):
        r = _read_json(path)
        if r and r.get("training_key") == key and r.get("status") in TRAINED:
            return path.parent
    return None


# --- the sweep ---------------------------------------------------------------------------------


def run_sweep(
    sweep: str | Path | SweepSpec | dict[str, Any],
    out: Path,
    *,
    address: str | None = None,
    console: Console | None = None,
    runner: TrialRunner = flow_trial,
) -> SweepResult:
    """Run a sweep into ``out``; the CLI's ``qfab sweep SWEEP.yaml --out DIR [--address]``.

    Everything is validated before Ray starts (a bad key or value is a ConfigError naming
    the sweep file, the point and the key). ``out`` may hold an earlier run of the *same*
    sweep: its trials with a ``result.json`` are kept, only the others run (a different
    sweep is refused). Writes ``out/results.{csv,parquet}`` (a row per trial) and
    ``out/pareto.csv`` (the trials no other beats in every objective), prints the front.
    ``runner`` runs one trial (:class:`TrialRunner`; the stage CLI passes its own).
    """
    console = console or Console()
    out = Path(out).resolve()  # Ray's workers do not share the caller's working folder
    loaded = load_sweep(sweep)
    _claim(out, loaded)
    _clean_partials(out)
    done = {t.id: r for t in loaded.trials if (r := _read_json(_result_path(out, t)))}
    skipped = sorted(done)
    if skipped:
        console.print(f"resuming {out}: {len(skipped)} trials have results, not rerun")
    with ray_session(address, loaded.spec.num_cpus) as ray:
        cpus = loaded.spec.resources.cpus_per_trial
        todo = loaded.spec.trials if loaded.spec.mode == "optuna" else len(loaded.trials)
        console.print(
            f"sweep {loaded.source} ({loaded.spec.mode}): {todo} trials, {cpus} CPU each, "
            f"on Ray with {int(ray.cluster_resources().get('CPU', 0))} CPUs "
            f"({address or os.environ.get('RAY_ADDRESS') or 'local, loopback'}); into {out}"
        )
        if loaded.spec.mode == "optuna":
            ran, skipped = _run_optuna(ray, loaded, out, runner, console)
        else:
            ran = _run_tasks(ray, loaded, out, runner, cpus, done, console)
    rows = collect_rows(loaded, out, extra=done)
    front = write_tables(loaded, out, rows)
    print_front(console, loaded, front)
    return SweepResult(out, rows, front, ran=ran, skipped=skipped)


def _result_path(out: Path, trial: Trial) -> Path:
    return out / "trials" / trial.id / RESULT_FILE


def _claim(out: Path, sweep: Sweep) -> None:
    """Write ``out/sweep.json``, or check that the one there is of the same points."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    marker = out / SWEEP_FILE
    if marker.is_file():
        old = _read_json(marker) or {}
        if old.get("points_hash") != sweep.points_hash:
            raise ConfigError(
                f"--out {out}: holds an earlier sweep of other points (its {SWEEP_FILE} differs "
                f"from {sweep.source}: the base config, axes, mode, samples, trials or seed "
                "changed); give another --out, or delete the folder to start over"
            )
        return
    if out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"--out {out}: a folder that is not a sweep's and is not empty")
    write_json_atomic(
        marker,
        {
            "points_hash": sweep.points_hash,
            "source": sweep.source,
            "spec": sweep.spec.model_dump(mode="json"),
            "base": sweep.base,
            "trials": [t.id for t in sweep.trials],
        },
    )


def _clean_partials(out: Path) -> None:
    """Remove the temp folders of runs an interrupt cut short (``.<id>.partial-*``)."""
    for tmp in (out / "trials").glob(".*.partial-*"):
        shutil.rmtree(tmp, ignore_errors=True)


def collect_rows(
    sweep: Sweep, out: Path, extra: dict[str, dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """A flat row per trial (axis values, objectives, status, error, seconds, folder):
    grid/random: every trial, ``not run`` for one without a result; Optuna: every result."""
    extra = extra or {}
    if sweep.spec.mode == "optuna":
        results = [
            r for p in sorted((out / "trials").glob(f"*/{RESULT_FILE}")) if (r := _read_json(p))
        ]
    else:
        results = []
        for t in sweep.trials:
            r = _read_json(_result_path(out, t)) or extra.get(t.id)
            results.append(r or {**_lost(t, RuntimeError()), "status": "not run", "error": None})
    rows = []
    for r in results:
        row: dict[str, Any] = {"id": r["id"]}
        row |= {k: r["point"].get(k) for k in sweep.spec.axes}
        row |= r["metrics"]
        row |= {k: r.get(k) for k in ("status", "error", "seconds", "node", "training_key")}
        row |= {"reuse_from": r.get("reuse_from"), "dir": r["dir"]}
        rows.append(row)
    return rows


def pareto_rows(sweep: Sweep, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The finished trials (status ok) on the front of the sweep's objectives."""
    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        return []
    objectives = sweep.spec.objectives
    points = np.array(
        [[np.nan if r[o.name] is None else float(r[o.name]) for o in objectives] for r in ok]
    )
    front = pareto_front(
        points,
        maximize=[i for i, o in enumerate(objectives) if o.direction == "max"],
        minimize=[i for i, o in enumerate(objectives) if o.direction == "min"],
    )
    return [ok[i] for i in front]


def write_tables(sweep: Sweep, out: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``results.csv``, ``results.parquet`` (every trial) and ``pareto.csv``; returns the
    Pareto rows. An axis whose values are not all one scalar type is written as JSON
    text (Parquet columns have one type)."""
    import pandas as pd

    front = pareto_rows(sweep, rows)
    table = pd.DataFrame([_tabular(sweep, r) for r in rows])
    table.to_csv(out / "results.csv", index=False)
    table.to_parquet(out / "results.parquet", index=False)
    on_front = pd.DataFrame([_tabular(sweep, r) for r in front], columns=table.columns)
    on_front.to_csv(out / "pareto.csv", index=False)
    return front


def _tabular(sweep: Sweep, row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for key, values in sweep.spec.axes.items():
        kinds = {type(v) for v in values}
        if len(kinds) > 1 or not kinds <= {int, float, str, bool}:
            out[key] = json.dumps(row[key], sort_keys=True)
    return out


def print_front(console: Console, sweep: Sweep, front: list[dict[str, Any]]) -> None:
    """The Pareto front as a rich table: axis values, then objectives."""
    goals = ", ".join(f"{o.name} ({o.direction})" for o in sweep.spec.objectives)
    table = Table(title=f"Pareto front: {goals}")
    table.add_column("trial")
    for key in sweep.spec.axes:
        table.add_column(key)
    for o in sweep.spec.objectives:
        table.add_column(o.name, justify="right")
    for r in front:
        table.add_row(
            r["id"],
            *(json.dumps(r[k]) if not isinstance(r[k], str) else r[k] for k in sweep.spec.axes),
            *(_fmt(r[o.name]) for o in sweep.spec.objectives),
        )
    console.print(table)


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and value < 1:
        return f"{value:.2%}"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}"


# --- simulation regressions on Ray -------------------------------------------------------------


@dataclass
class FuzzResult:
    """The random designs of the exactness tests, checked on Ray."""

    designs: int
    mismatches: int  # designs whose RTL differed from golden (or that failed to build)
    failures: list[dict[str, Any]]  # {"spec": ..., "error": ...} per failing design


def run_fuzz_regression(
    n_designs: int,
    seed: int,
    address: str | None = None,
    *,
    cpus_per_design: int = 1,
    num_cpus: int | None = None,
    check: Callable[[dict[str, Any], Path], dict[str, Any]] | None = None,
) -> FuzzResult:
    """Simulate the fuzz test's random designs as Ray tasks; count those that differ.

    The designs are the ones ``tests/sim/test_fuzz_designs.py`` draws for ``seed``
    (:func:`tests.sim.fuzz_designs.draw_specs`), each lowered, generated, simulated on
    Icarus and compared with golden on every tapped layer by the test's own
    :func:`tests.sim.fuzz_designs.check_design`: a cluster checks thousands of designs
    with the same code CI runs on dozens. Run from a qfab checkout (the designs live
    with the tests; Ray's workers get the driver's working folder on their path).
    ``check`` replaces that check (a module-level function Ray can ship to its workers;
    e.g. one that seeds a bug, to see the count move).
    """
    try:
        from tests.sim.fuzz_designs import check_design, draw_specs
    except ImportError as exc:
        raise ConfigError(
            f"fuzz regressions need the test suite's design generator ({exc}); "
            "run from a qfab checkout with the test extras installed"
        ) from None
    specs = draw_specs(n_designs, seed)
    with ray_session(address, num_cpus) as ray:
        task = ray.remote(_fuzz_task).options(num_cpus=cpus_per_design, max_retries=0)
        refs = [task.remote(check or check_design, spec) for spec in specs]
        outcomes = ray.get(refs)
    failures = [
        {"spec": spec, "error": err} for spec, err in zip(specs, outcomes, strict=True) if err
    ]
    return FuzzResult(len(specs), len(failures), failures)


def _fuzz_task(
    check: Callable[[dict[str, Any], Path], dict[str, Any]], spec: dict[str, Any]
) -> str | None:
    """One design checked in a temp folder: None if equal to golden, else what differed."""
    with tempfile.TemporaryDirectory(prefix="qfab_fuzz_") as tmp:
        try:
            eq = check(spec, Path(tmp))
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
    return None if eq["mismatches"] == 0 else f"first mismatch {eq['first_mismatch']}"
