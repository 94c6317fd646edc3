"""The YAML config schema (pydantic) and its one-line error messages.

Every section forbids unknown keys, so a typo is an error naming the key and the keys
that are allowed, rather than a silently ignored setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from qfab.errors import ConfigError

PositiveInt = Annotated[int, Field(ge=1)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(Section):
    """``model:`` the network to train."""

    arch: Literal["mlp"] = "mlp"
    hidden: list[PositiveInt] = Field(default_factory=lambda: [64, 64])
    weight_bits: int = Field(2, ge=2, le=8)
    act_bits: int = Field(2, ge=2, le=8)
    input_bits: int = Field(8, ge=2, le=8)

    @field_validator("hidden")
    @classmethod
    def _some_layers(cls, v: list[int]) -> list[int]:
        if len(v) > 8:
            raise ValueError("at most 8 hidden layers")
        return v


class TrainConfig(Section):
    """``train:`` quantization-aware training settings."""

    epochs: int = Field(40, ge=1, le=10_000)
    seed: int = Field(0, ge=0)
    lr: float = Field(0.01, gt=0, le=1)
    batch_size: int = Field(64, ge=2, le=65_536)
    float_baseline: bool = True


class FoldingConfig(Section):
    """Explicit folding: one PE and one SIMD entry per Dense layer."""

    pe: list[PositiveInt]
    simd: list[PositiveInt]


class HwConfig(Section):
    """``hw:`` hardware generation."""

    folding: Literal["auto"] | FoldingConfig = "auto"
    target_cycles: int = Field(64, ge=1)


class SimConfig(Section):
    """``sim:`` RTL simulation against golden."""

    enabled: bool = True
    simulator: Literal["verilator", "icarus"] = "verilator"
    vectors: int = Field(200, ge=1, le=100_000)
    backpressure: bool = False


class SynthConfig(Section):
    """``synth:`` Yosys resource estimate."""

    enabled: bool = True
    part: str = "xc7z020"


class DatasetConfig(Section):
    """``dataset: {name: mnist, path: data/mnist}`` for data sets read from files."""

    name: Literal["digits", "mnist", "fashion_mnist", "cifar10", "npz"] = "digits"
    path: str | None = None


class Config(Section):
    """The whole config file."""

    dataset: Literal["digits"] | DatasetConfig = "digits"
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    hw: HwConfig = Field(default_factory=HwConfig)
    sim: SimConfig = Field(default_factory=SimConfig)
    synth: SynthConfig = Field(default_factory=SynthConfig)

    @property
    def dataset_name(self) -> str:
        return self.dataset if isinstance(self.dataset, str) else self.dataset.name

    @property
    def dataset_path(self) -> str | None:
        return None if isinstance(self.dataset, str) else self.dataset.path


def _section_model(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the key at ``loc`` (for listing allowed keys)."""
    model: type[BaseModel] | None = Config
    for part in loc[:-1]:
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            return None
        ann = model.model_fields[part].annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if model is None:
            model = {"folding": FoldingConfig, "dataset": DatasetConfig}.get(part)
    return model


def _format_error(err: dict[str, Any], source: str) -> str:
    branches = {"literal['auto']", "literal['digits']", "FoldingConfig", "DatasetConfig"}
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p in branches))
    key = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")
    if err["type"] == "extra_forbidden":
        owner = _section_model(loc)
        allowed = ", ".join(owner.model_fields) if owner else "see README"
        return f"{source}: unknown key '{key}'; allowed here: {allowed}"
    value = err.get("input")
    shown = "" if isinstance(value, dict | list) else f" = {value!r}"
    return f"{source}: {key}{shown} is not allowed; {_allowed(loc) or err['msg']}"


def _allowed(loc: tuple[Any, ...]) -> str:
    """'allowed: ...' from the field's own constraints, so messages never drift from the schema."""
    names = [p for p in loc if isinstance(p, str)]
    if names == ["dataset"]:
        return "allowed: 'digits' or a mapping {name: digits|mnist|fashion_mnist|cifar10|npz, path: ...}"
    if names[-2:] == ["hw", "folding"]:
        return "allowed: 'auto' or a mapping {pe: [...], simd: [...]} with one entry per layer"
    owner = _section_model(tuple(names))
    field = owner.model_fields.get(names[-1]) if owner and names else None
    if field is None:
        return ""
    bounds = {k: getattr(m, k) for m in field.metadata for k in ("ge", "le", "gt") if hasattr(m, k)}
    ann = field.annotation
    if getattr(ann, "__origin__", None) is list:  # list[PositiveInt]: constraint sits on the item
        return "allowed: a list of integers >= 1"
    if "ge" in bounds and "le" in bounds:
        return f"allowed: {bounds['ge']}..{bounds['le']}"
    if "gt" in bounds:
        return f"allowed: > {bounds['gt']}" + (f" and <= {bounds['le']}" if "le" in bounds else "")
    if "ge" in bounds:
        return f"allowed: >= {bounds['ge']}"
    args = getattr(ann, "__args__", ())
    if args and all(isinstance(a, str) for a in args):
        return "allowed: " + ", ".join(repr(a) for a in args)
    return f"allowed: {getattr(ann, '__name__', ann)}"


def parse_config(data: Any, source: str = "config") -> Config:
    """Validate a mapping; the first problem becomes a one-line :class:`ConfigError`."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: top level must be a mapping of sections, got {type(data).__name__}")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        # A folding error matches neither union branch; report the more useful branch.
        errors.sort(key=lambda e: (e["type"] != "extra_forbidden", "literal" in str(e["loc"])))
        raise ConfigError(_format_error(errors[0], source)) from None


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file '{path}' not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return parse_config(data, str(path))
