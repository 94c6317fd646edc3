"""The YAML config schema (pydantic) and its one-line error messages.

Every section forbids unknown keys, so a typo is an error naming the key and the keys
that are allowed, rather than a silently ignored setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from qfab.errors import ConfigError

#: ``true`` is not a number of bits, nor ``1`` a yes: keys are strict (an int is no bool,
#: a bool no number; an int is still a fine float).
Int = StrictInt
Float = StrictFloat
Bool = StrictBool
PositiveInt = Annotated[StrictInt, Field(ge=1)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(Section):
    """``model:`` the network to train."""

    arch: Literal[
        "mlp",
        "tfc",
        "sfc",
        "lfc",
        "lenet300",
        "lenet5",
        "cnv",
        "mobilenet",
        "shufflenet",
        "squeezenet",
    ] = "mlp"
    hidden: list[PositiveInt] = Field(default_factory=lambda: [64, 64])
    weight_bits: Int = Field(2, ge=1, le=8)
    act_bits: Int = Field(2, ge=1, le=8)
    input_bits: Int = Field(8, ge=2, le=8)
    per_channel: Bool = False
    width: Int = Field(16, ge=1, le=1024)  # compact nets: base channel count
    groups: Int = Field(4, ge=1, le=1024)  # shufflenet: groups of the 1x1 convolutions

    @field_validator("hidden")
    @classmethod
    def _some_layers(cls, v: list[int]) -> list[int]:
        if len(v) > 8:
            raise ValueError("at most 8 hidden layers")
        return v


class TrainConfig(Section):
    """``train:`` quantization-aware training settings."""

    epochs: Int = Field(40, ge=1, le=10_000)
    seed: Int = Field(0, ge=0)
    lr: Float = Field(0.01, gt=0, le=1)
    batch_size: Int = Field(64, ge=2, le=65_536)
    float_baseline: Bool = True


class FoldingConfig(Section):
    """Explicit folding: one PE and one SIMD entry per compute unit (MVAU, XNOR unit or
    vector unit of the lowered graph, in order: one per Dense and Conv2d layer)."""

    pe: list[PositiveInt]
    simd: list[PositiveInt]


class SparseEngineConfig(Section):
    """The EIE-style sparse engine's settings (``hw:`` defaults, or one layer's)."""

    pes: PositiveInt = 4  # rows interleaved over this many PEs (row i on PE i mod N)
    queue_depth: Int = Field(8, ge=1, le=1024)  # activation queue per PE
    index_bits: Int = Field(4, ge=1, le=16)  # relative row index (EIE: 4)
    code_bits: Int = Field(4, ge=1, le=16)  # codebook index (EIE: 4; code 0 is the zero)
    simd: PositiveInt | None = None  # inputs per beat; default: widest within max_port_bits


class LayerHwConfig(SparseEngineConfig):
    """``hw.layers.<name>``: one fully connected layer's engine and its settings."""

    engine: Literal["dense", "sparse"] = "sparse"


class HwConfig(Section):
    """``hw:`` hardware generation (lowering, folding, clock)."""

    # dense: FINN-style MVAUs everywhere; sparse: every fully connected layer on the
    # EIE-style engine (convolutions stay dense); hw.layers overrides per layer
    engine: Literal["dense", "sparse"] = "dense"
    # rtl: Verilog (simulated, linted, synthesized); hls: Vitis HLS C++ (g++ C simulation,
    # a Vitis HLS script); both: each from the same lowered graph, each checked on golden
    backend: Literal["rtl", "hls", "both"] = "rtl"
    pes: PositiveInt = 4
    queue_depth: Int = Field(8, ge=1, le=1024)
    index_bits: Int = Field(4, ge=1, le=16)
    code_bits: Int = Field(4, ge=1, le=16)
    sparse_simd: PositiveInt | None = None
    layers: dict[str, LayerHwConfig] = Field(default_factory=dict)

    folding: Literal["auto"] | FoldingConfig = "auto"
    # auto: 64 for fully connected nets; for image nets the slowest sliding window at one
    # tap (all channels) per cycle, max over convolutions of OH*OW*KH*KW
    target_cycles: Literal["auto"] | PositiveInt = "auto"
    target_fps: Float | None = Field(None, gt=0)  # instead of target_cycles, at clock_mhz
    clock_mhz: Float = Field(100.0, gt=0, le=1000)
    max_port_bits: Int = Field(64, ge=8, le=4096)  # widest s_axis/m_axis tdata (width converters)
    xnor: Bool = True  # bipolar layers on XNOR-popcount units (false: the generic MVAU)
    # sim: a FIFO in front of every unit, sized by a paced Icarus simulation (FINN's
    # approach); off: only the join FIFOs (deadlock bound), nothing sized
    fifo_sizing: Literal["sim", "off"] = "sim"

    @model_validator(mode="after")
    def _one_target(self) -> HwConfig:
        if self.target_fps is not None and self.target_cycles != "auto":
            raise ValueError("give target_cycles or target_fps, not both")
        return self


class SimConfig(Section):
    """``sim:`` RTL simulation against golden."""

    enabled: Bool = True
    simulator: Literal["verilator", "icarus"] = "verilator"
    vectors: Int = Field(200, ge=1, le=100_000)
    backpressure: Bool = False


class SynthConfig(Section):
    """``synth:`` Yosys resource estimate.

    ``per_unit``: a second Yosys run that keeps the hierarchy, for each unit's own
    counts (the report's per-layer table). Its totals are a few percent above the flat
    run's (no optimization across unit boundaries), so the design's totals stay the flat
    run's."""

    enabled: Bool = True
    part: str = "xc7z020"
    per_unit: Bool = True


class DatasetConfig(Section):
    """``dataset: {name: mnist, path: data/mnist}`` for data sets read from files."""

    name: Literal["digits", "mnist", "fashion_mnist", "cifar10", "npz"] = "digits"
    path: str | None = None


Fraction = Annotated[Float, Field(ge=0, lt=1)]


class PruneStep(Section):
    """Unstructured magnitude pruning, iterated over ``schedule`` (default: just ``sparsity``).

    ``balance_pes: N`` prunes load-balance-aware (ESE): each layer keeps the same number
    of non-zeros (+-1) in the rows of each of N PEs (row i on PE i mod N), so no PE of the
    sparse engine waits for another; convolutions are balanced over output channels.
    """

    sparsity: Fraction = 0.9
    scope: Literal["layer", "global"] = "global"
    schedule: list[Fraction] | None = None
    fine_tune_epochs: Int = Field(5, ge=0, le=10_000)
    balance_pes: PositiveInt | None = None


class PruneNeuronsStep(Section):
    """Structured pruning (Li et al.): remove the weakest ``fraction`` of each hidden layer."""

    fraction: Fraction = 0.5
    criterion: Literal["filter", "channel"] = "filter"
    fine_tune_epochs: Int = Field(5, ge=0, le=10_000)


class DistillConfig(Section):
    """Distillation from the float baseline while quantizing."""

    temperature: Float = Field(4.0, gt=0, le=100)
    alpha: Float = Field(0.7, ge=0, le=1)


class QuantizeStep(Section):
    """QAT from the current float weights (pruned zeros stay zero)."""

    weight_bits: Int = Field(4, ge=1, le=8)
    act_bits: Int = Field(4, ge=1, le=8)
    input_bits: Int = Field(8, ge=2, le=8)
    per_channel: Bool = False
    inner_bits: Int = Field(8, ge=2, le=8)  # signed requantizer inside factored layers
    # >= 1: activation quantizers start at a [0, 1) range and calibrate in the first QAT
    # steps; a model quantized without them loses most of its accuracy (LeNet-5: 46%)
    epochs: Int = Field(10, ge=1, le=10_000)
    distill: DistillConfig | None = None


class ShareStep(Section):
    """Deep Compression weight sharing: k-means per layer, then centroid fine-tuning."""

    clusters: Annotated[Int, Field(ge=1, le=256)] | list[Annotated[Int, Field(ge=1, le=256)]] = 16
    fine_tune_epochs: Int = Field(5, ge=0, le=10_000)


class FactorizeStep(Section):
    """Low-rank factorization: SVD of fully connected layers (rank or energy), or Tucker-2 /
    CP / spatial separation of conv layers (rank per conv layer; Tucker takes [r_in, r_out])."""

    method: Literal["svd", "tucker", "cp", "spatial"] = "svd"
    rank: PositiveInt | list[PositiveInt | list[PositiveInt] | None] | None = None
    energy: Float | None = Field(None, gt=0, le=1)
    fine_tune_epochs: Int = Field(5, ge=0, le=10_000)

    @model_validator(mode="after")
    def _one_of(self) -> FactorizeStep:
        if (self.rank is None) == (self.energy is None):
            raise ValueError("give exactly one of 'rank' and 'energy'")
        return self


class EncodeStep(Section):
    """Storage accounting from real encoded bytes: the IR's weights in the sparse engine's
    layout (per-PE CSC, relative indices, codebook; Huffman optional), stored in the IR."""

    index_bits: Int = Field(4, ge=1, le=16)
    huffman: Bool = True
    pes: PositiveInt = 1  # fully connected layers' rows interleaved over this many PEs
    code_bits: Int | None = Field(None, ge=1, le=16)  # None: the fewest holding the codebook


class CompressStep(Section):
    """One pipeline step: a mapping with exactly one of these keys."""

    prune: PruneStep | None = None
    prune_neurons: PruneNeuronsStep | None = None
    factorize: FactorizeStep | None = None
    quantize: QuantizeStep | None = None
    share: ShareStep | None = None
    encode: EncodeStep | None = None

    @model_validator(mode="before")
    @classmethod
    def _exactly_one(cls, data: Any) -> Any:
        if isinstance(data, str):  # "- encode" with all defaults
            data = {data: {}}
        if not isinstance(data, dict) or len(data) != 1:
            raise ValueError(f"each step is one of {list(cls.model_fields)} with its settings")
        return {k: ({} if v is None else v) for k, v in data.items()}

    @property
    def kind(self) -> str:
        return next(k for k in type(self).model_fields if getattr(self, k) is not None)

    @property
    def settings(self) -> Section:
        return getattr(self, self.kind)


class CompressConfig(Section):
    """``compress:`` the steps run by ``qfab compress``, in the order given."""

    steps: list[CompressStep] = Field(
        default_factory=lambda: [
            CompressStep(prune=PruneStep()),
            CompressStep(quantize=QuantizeStep()),
            CompressStep(share=ShareStep()),
            CompressStep(encode=EncodeStep()),
        ]
    )


class Config(Section):
    """The whole config file."""

    dataset: Literal["digits"] | DatasetConfig = "digits"
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    hw: HwConfig = Field(default_factory=HwConfig)
    sim: SimConfig = Field(default_factory=SimConfig)
    synth: SynthConfig = Field(default_factory=SynthConfig)
    compress: CompressConfig = Field(default_factory=CompressConfig)

    @property
    def dataset_name(self) -> str:
        return self.dataset if isinstance(self.dataset, str) else self.dataset.name

    @property
    def dataset_path(self) -> str | None:
        return None if isinstance(self.dataset, str) else self.dataset.path


def models_in(ann: Any) -> list[type[BaseModel]]:
    """Pydantic models inside an annotation (``X | None``, ``list[X]``, ``Literal | X``)."""
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return [ann]
    return [m for a in getattr(ann, "__args__", ()) for m in models_in(a)]


def _field_at(loc: tuple[Any, ...]) -> tuple[type[BaseModel] | None, Any]:
    """(model owning the last key of ``loc``, that key's FieldInfo or None)."""
    model: type[BaseModel] | None = Config
    field = None
    for part in loc:
        if isinstance(part, int):  # list index: stay on the item model
            continue
        if model is None or part not in model.model_fields:
            return model, None
        owner, field = model, model.model_fields[part]
        found = models_in(field.annotation)
        model = found[0] if found else None
    return (owner if loc else Config), field


def _format_error(err: dict[str, Any], source: str) -> str:
    loc = tuple(
        p
        for p in err["loc"]
        if isinstance(p, int)
        or (not any(c in p for c in "[-") and p[0].islower())
        or p in Config.model_fields
    )
    # drop pydantic's union-branch tags (e.g. "FoldingConfig", "literal['auto']")
    loc = tuple(p for p in loc if not (isinstance(p, str) and p[:1].isupper()))
    key = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")
    if err["type"] == "extra_forbidden":
        model, _ = _field_at(loc[:-1]) if len(loc) > 1 else (Config, None)
        inner = _field_at(loc[:-1])[1] if len(loc) > 1 else None
        owner = models_in(inner.annotation)[0] if inner is not None else model
        return f"{source}: unknown key '{key}'; allowed here: {', '.join(owner.model_fields)}"
    if err["type"] == "missing":
        return f"{source}: {key} is missing; {_allowed(loc) or 'it is required here'}"
    value = err.get("input")
    shown = "" if isinstance(value, dict | list) else f" = {value!r}"
    if err["type"] == "value_error":
        return f"{source}: {key}{shown} is not allowed; {err['msg'].removeprefix('Value error, ')}"
    return f"{source}: {key}{shown} is not allowed; {_allowed(loc) or err['msg']}"


def _allowed(loc: tuple[Any, ...]) -> str:
    """'allowed: ...' from the field's own constraints, so messages never drift from the schema."""
    names = [p for p in loc if isinstance(p, str)]
    if names == ["dataset"]:
        return (
            "allowed: 'digits' or a mapping "
            "{name: digits|mnist|fashion_mnist|cifar10|npz, path: ...}"
        )
    if names[-2:] == ["hw", "target_cycles"]:
        return "allowed: 'auto' or an integer >= 1"
    if names[-2:] == ["hw", "folding"]:
        return "allowed: 'auto' or a mapping {pe: [...], simd: [...]} with one entry per layer"
    _, field = _field_at(loc)
    if field is None:
        return ""
    ann = field.annotation
    metas = list(field.metadata)
    for a in (ann, *getattr(ann, "__args__", ())):  # constraints on list items / union arms
        for b in (a, *getattr(a, "__args__", ())):
            for m in getattr(b, "__metadata__", ()):
                metas += [m, *getattr(m, "metadata", ())]  # Annotated[int, Field(ge=1)]
    bounds = {
        k: getattr(m, k)
        for m in metas
        for k in ("ge", "le", "gt", "lt")
        if getattr(m, k, None) is not None
    }
    arms = [a for a in getattr(ann, "__args__", ()) if a is not type(None)]
    if get_origin(ann) is list or (len(arms) == 1 and get_origin(arms[0]) is list):
        prefix = "allowed: a list of values "
    elif "list[" in str(ann):
        prefix = "allowed (or a list of these, one per layer): "
    else:
        prefix = "allowed: "
    lo = f">= {bounds['ge']}" if "ge" in bounds else f"> {bounds['gt']}" if "gt" in bounds else ""
    hi = f"<= {bounds['le']}" if "le" in bounds else f"< {bounds['lt']}" if "lt" in bounds else ""
    if "ge" in bounds and "le" in bounds:
        return f"{prefix}{bounds['ge']}..{bounds['le']}"
    if lo or hi:
        return prefix + " and ".join(x for x in (lo, hi) if x)
    args = getattr(ann, "__args__", ())
    if args and all(isinstance(a, str) for a in args):
        return "allowed: " + ", ".join(repr(a) for a in args)
    base = getattr(ann, "__origin__", ann)  # Annotated[bool, Strict()] -> bool
    if base is bool:
        return "allowed: true, false"
    return f"allowed: {getattr(base, '__name__', base)}"


def parse_config(data: Any, source: str = "config") -> Config:
    """Validate a mapping; the first problem becomes a one-line :class:`ConfigError`."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: top level must be a mapping of sections, got {type(data).__name__}"
        )
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
    if path.is_dir():
        raise ConfigError(f"config file '{path}' is a folder; give a YAML file")
    if not path.is_file():
        raise ConfigError(f"config file '{path}' not found")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeyLoader)
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.start}); a config is a YAML text file"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({yaml_problem(exc)})") from None
    return parse_config(data, str(path))


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but a key written twice in one mapping is an error: plain
    YAML keeps the last one silently, so a second ``model:`` would undo the first."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' appears twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's problem and where it is (line and column, 1-based), on one line: its own
    message spreads over several lines with a copy of the offending text."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    context = getattr(exc, "context", None)
    text = f"{context}: {problem}" if context else problem
    if mark is not None:
        text += f" at line {mark.line + 1}, column {mark.column + 1}"
    return text
