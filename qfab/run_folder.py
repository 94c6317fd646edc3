"""A run folder as the stages see it: the config it was made with, what each stage wrote.

``qfab run`` is seven stages (train, export, lower, gen, sim, synth, report); each reads
the files of the stages before it from the run folder and records its own part of
``report.json`` in ``parts/<stage>.json``. So a stage can be re-run on its own: changing
``hw.folding`` re-runs ``qfab lower`` onward and never trains again.

The folder's ``config.yaml`` is the config the stages ran with (after ``-o`` overrides).
An override of a key a stage *before* the one being run has read is refused: its results
would no longer belong to the config the folder records.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from qfab.config import Config, parse_config
from qfab.errors import ConfigError

#: The stages of ``qfab run``, in order.
STAGES = ("train", "export", "lower", "gen", "sim", "synth", "report")

#: The first stage that reads each config section: an override of it re-runs that stage
#: onward. (``hw`` is read by the train stage's early refusal too, but only to refuse a
#: design before minutes of training; the lower stage checks it again.)
FIRST_READER = {
    "dataset": "train",
    "model": "train",
    "train": "train",
    "hw": "lower",
    "sim": "sim",  # sim.vectors also sizes the sparse model and the HLS test bench: sim does both
    "synth": "synth",
    "compress": "train",
}

#: What each stage writes besides its part (removed when an earlier stage re-runs, so no
#: folder mixes a new model with an old design).
STAGE_FILES = {
    "train": ("brevitas_model.pt",),
    "export": ("model.qfab.npz", "model.onnx", "extremes.npz"),
    "lower": (),  # it rewrites model.qfab.npz with the hardware graph
    "gen": ("rtl", "hls"),
    "sim": ("waves",),
    "synth": ("synth",),
    "report": ("report.json", "report.html"),
}

#: The stage whose files each stage reads (``report`` reads every part). Re-running a
#: stage clears the stages that depend on it, and only those: a new ``sim.vectors`` keeps
#: the synthesis results, which do not depend on the simulation.
READS = {
    "train": None,
    "export": "train",
    "lower": "export",
    "gen": "lower",
    "sim": "gen",
    "synth": "gen",
    "report": None,
}


def ancestors(stage: str) -> list[str]:
    """The stages whose files ``stage`` reads, directly or not, earliest first."""
    chain = []
    up = READS[stage]
    while up is not None:
        chain.insert(0, up)
        up = READS[up]
    return chain


def dependents(stage: str) -> list[str]:
    """``stage`` and every stage that reads its files, directly or not (and the report)."""
    found = [stage]
    for s in STAGES:
        up = READS[s]
        while up is not None and up not in found:
            up = READS[up]
        if up is not None and s not in found:
            found.append(s)
    return [s for s in STAGES if s in found or s == "report"]


CONFIG_FILE = "config.yaml"
PARTS = "parts"


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"hw.folding.pe=[4, 4, 2]"`` -> (``["hw", "folding", "pe"]``, ``[4, 4, 2]``).

    The value is YAML, so numbers, booleans, lists and mappings are written as in the
    config file (``-o hw.folding=auto``, ``-o 'hw.folding={pe: [4], simd: [8]}'``).
    """
    key, sep, value = text.partition("=")
    path = key.strip().split(".")
    if not sep or not all(path):
        raise ConfigError(f"-o {text}: expected key=value with a dotted key, e.g. hw.clock_mhz=125")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"-o {text}: the value is not YAML ({exc.__class__.__name__})") from None
    return path, parsed


def apply_overrides(data: dict[str, Any], overrides: list[str], source: str) -> Config:
    """``data`` (a config mapping) with each ``key=value`` set, validated as a config.

    A key the schema does not know is refused by the schema, naming it (the dotted path
    becomes the mapping the YAML file would hold).
    """
    data = json.loads(json.dumps(data))  # a deep copy the overrides may change
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for depth, key in enumerate(path[:-1]):
            child = node.get(key)
            if isinstance(child, list) or path[depth + 1].isdigit():
                raise ConfigError(
                    f"-o {text}: '{'.'.join(path[: depth + 1])}' is a list; give the whole "
                    f"list, e.g. -o '{'.'.join(path[: depth + 1])}=[...]'"
                )
            if isinstance(child, str) and key == "dataset":
                child = {"name": child}
            if not isinstance(child, dict):
                child = {}
            node[key] = child
            node = child
        node[path[-1]] = value
    return parse_config(data, f"{source} with -o {' -o '.join(overrides)}" if overrides else source)


def overridden_stage(overrides: list[str]) -> str | None:
    """The earliest stage that reads any overridden key (None: no overrides)."""
    firsts = []
    for text in overrides:
        section = parse_override(text)[0][0]
        if section not in FIRST_READER:
            raise ConfigError(
                f"-o {text}: '{section}' is not a config section; allowed: "
                f"{', '.join(FIRST_READER)}"
            )
        firsts.append(STAGES.index(FIRST_READER[section]))
    return STAGES[min(firsts)] if firsts else None


class RunFolder:
    """The files of one run: ``config.yaml``, ``run.json`` (source, stages done) and the
    stages' parts of the report. Reads and writes, no policy."""

    def __init__(self, path: Path, shown: Path | None = None) -> None:
        self.path = Path(path)
        #: the folder as the user named it (``path`` may be the temporary copy a stage
        #: command works in): what messages say
        self.shown = Path(shown) if shown is not None else self.path

    # -- config ---------------------------------------------------------------
    def config(self) -> Config:
        f = self.path / CONFIG_FILE
        if not f.is_file():
            raise ConfigError(
                f"{self.shown}: not a qfab run folder ({CONFIG_FILE} missing); make one with "
                "`qfab run CONFIG --out DIR` or `qfab train CONFIG --out DIR`"
            )
        return parse_config(yaml.safe_load(f.read_text()), str(self.shown / CONFIG_FILE))

    def write_config(self, cfg: Config) -> None:
        """Store ``cfg`` as the keys the user set (defaults stay implicit, so a config
        written back reads the same). A relative ``dataset.path`` is stored resolved: the
        stages of this folder may run from another directory."""
        data = cfg.model_dump(mode="json", exclude_unset=True)
        dataset = data.get("dataset")
        if isinstance(dataset, dict) and dataset.get("path") and Path(dataset["path"]).exists():
            dataset["path"] = str(Path(dataset["path"]).resolve())  # (a missing one is named
            # as written when the train stage refuses it)
        (self.path / CONFIG_FILE).write_text(yaml.safe_dump(data, sort_keys=False))

    # -- state ----------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        f = self.path / "run.json"
        return json.loads(f.read_text()) if f.is_file() else {"stages": {}}

    def write_state(self, state: dict[str, Any]) -> None:
        (self.path / "run.json").write_text(json.dumps(state, indent=2) + "\n")

    def done(self, stage: str) -> bool:
        return stage in self.state()["stages"]

    def part(self, stage: str) -> dict[str, Any]:
        f = self.path / PARTS / f"{stage}.json"
        return json.loads(f.read_text()) if f.is_file() else {}

    def record(self, stage: str, part: dict[str, Any], seconds: dict[str, float]) -> None:
        """Store a finished stage's part of the report and mark it done."""
        (self.path / PARTS).mkdir(exist_ok=True)
        text = json.dumps(part, indent=2, default=jsonable) + "\n"
        (self.path / PARTS / f"{stage}.json").write_text(text)
        state = self.state()
        state["stages"][stage] = {"seconds": seconds}
        self.write_state(state)

    def forget_from(self, stage: str) -> None:
        """Remove what ``stage`` and the stages depending on it wrote (:func:`dependents`):
        they will run again."""
        state = self.state()
        for later in dependents(stage):
            state["stages"].pop(later, None)
            (self.path / PARTS / f"{later}.json").unlink(missing_ok=True)
            if later in ("train", "export"):
                continue  # their files are replaced by the stage itself, or kept (--from)
            for name in STAGE_FILES[later]:
                target = self.path / name
                if target.is_dir():
                    shutil.rmtree(target)
                else:
                    target.unlink(missing_ok=True)
        self.write_state(state)

    def report(self) -> dict[str, Any]:
        """Every done stage's part, merged in stage order (later stages refine earlier
        keys, e.g. the sim stage's measured cycles beside the gen stage's model)."""
        merged: dict[str, Any] = {}
        for stage in STAGES:
            if self.done(stage):
                _merge(merged, self.part(stage))
        return merged


def jsonable(value: Any) -> Any:
    """``json.dumps``'s ``default`` for every report file: numpy scalars and paths."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _merge(into: dict[str, Any], part: dict[str, Any]) -> None:
    for key, value in part.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
