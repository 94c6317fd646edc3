"""The schema of a sweep file (``qfab sweep SWEEP.yaml``) and its one-line errors.

A sweep is a base config plus axes over any config key::

    base: digits_mlp.yaml            # a config file (relative to this file) or an inline mapping
    axes:
      model.weight_bits: [2, 3, 4]
      hw.target_cycles: [16, 64]
    mode: grid                       # grid | random (samples, seed) | optuna (trials, seed)
    objectives: [{name: accuracy, goal: max}, {name: LUT, goal: min}]
    resources: {cpus_per_trial: 1}
    num_cpus: 2                      # local Ray only; default: every core

Like the config, every section forbids unknown keys, so a typo is an error naming the key.
Whether an axis key is a config key, and whether each point's values are ones the config
accepts, is checked by :mod:`qfab.sweep` against :class:`qfab.config.Config` itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, model_validator

from qfab.config import UniqueKeyLoader, yaml_problem
from qfab.errors import ConfigError

#: Objective name -> the goal it gets when the sweep file names none.
OBJECTIVE_GOALS: dict[str, Literal["max", "min"]] = {
    "accuracy": "max",
    "LUT": "min",
    "FF": "min",
    "BRAM": "min",
    "DSP": "min",
    "cycles_per_frame": "min",
    "frames_per_s": "max",
    "storage_bytes": "min",
}

ObjectiveName = Literal[
    "accuracy", "LUT", "FF", "BRAM", "DSP", "cycles_per_frame", "frames_per_s", "storage_bytes"
]
PositiveInt = Annotated[StrictInt, Field(ge=1)]


class SweepSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Objective(SweepSection):
    """One objective: a trial metric and whether more (max) or less (min) is better."""

    name: ObjectiveName
    goal: Literal["max", "min"] | None = None  # None: the name's usual goal

    @model_validator(mode="before")
    @classmethod
    def _name_alone(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data  # "- LUT"

    @property
    def direction(self) -> Literal["max", "min"]:
        return self.goal or OBJECTIVE_GOALS[self.name]


class Resources(SweepSection):
    """What one trial holds while it runs (Ray schedules no more trials than fit)."""

    # a trial is one training process, then one simulator, then one Yosys: one core each
    cpus_per_trial: PositiveInt = 1


class SweepSpec(SweepSection):
    """The whole sweep file."""

    base: str | dict[str, Any] = Field(default_factory=dict)
    axes: dict[str, list[Any]]
    mode: Literal["grid", "random", "optuna"] = "grid"
    samples: PositiveInt | None = None  # random: points drawn from the grid
    trials: PositiveInt | None = None  # optuna: trials the search runs
    seed: StrictInt = 0  # random and optuna
    objectives: list[Objective] = Field(
        default_factory=lambda: [Objective(name="accuracy"), Objective(name="LUT")]
    )
    resources: Resources = Field(default_factory=Resources)
    num_cpus: PositiveInt | None = None  # a local Ray's CPUs; default: every core

    @model_validator(mode="after")
    def _consistent(self) -> SweepSpec:
        if not self.axes:
            raise ValueError("axes: give at least one config key with a list of values")
        for key, values in self.axes.items():
            if not values:
                raise ValueError(f"axes.{key}: give at least one value")
        if self.mode == "random" and self.samples is None:
            raise ValueError("mode random needs 'samples' (how many points to draw)")
        if self.mode == "optuna" and self.trials is None:
            raise ValueError("mode optuna needs 'trials' (how many trials the search runs)")
        if self.samples is not None and self.mode != "random":
            raise ValueError(f"'samples' is for mode random, not {self.mode}")
        if self.trials is not None and self.mode != "optuna":
            raise ValueError(f"'trials' is for mode optuna, not {self.mode}")
        names = [o.name for o in self.objectives]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"objectives: give each at most once, at least one (got {names})")
        return self


def parse_sweep(data: Any, source: str = "sweep") -> SweepSpec:
    """Validate a mapping; the first problem becomes a one-line :class:`ConfigError`."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: top level must be a mapping, got {type(data).__name__}")
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format(exc.errors()[0], source)) from None


def load_sweep_file(path: str | Path) -> SweepSpec:
    """Read and validate a sweep YAML file (a key written twice is an error, as in configs)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep file '{path}' not found")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeyLoader)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({yaml_problem(exc)})") from None
    return parse_sweep(data, str(path))


def _format(err: dict[str, Any], source: str) -> str:
    """``source: key = value is not allowed; why`` from one pydantic error."""
    # drop pydantic's union-branch tags ("str", "dict[str,any]", "function-before[...]")
    loc = [p for p in err["loc"] if isinstance(p, int) or not any(c in p for c in "[(,")]
    loc = [p for p in loc if p not in ("str", "int", "dict")]
    key = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")
    if err["type"] == "extra_forbidden":
        owner: type[BaseModel] = SweepSpec
        if loc[:1] == ["resources"]:
            owner = Resources
        elif loc[:1] == ["objectives"]:
            owner = Objective
        return f"{source}: unknown key '{key}'; allowed here: {', '.join(owner.model_fields)}"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "missing":
        return f"{source}: {key} is missing; {msg}"
    value = err.get("input")
    shown = "" if isinstance(value, dict | list) or not key else f" = {value!r}"
    where = f"{key}{shown} is not allowed; " if key else ""
    return f"{source}: {where}{msg}"
