"""The run folder's pieces on their own: overrides, which stage reads which key, parts."""

from __future__ import annotations

import pytest

from qfab.errors import ConfigError
from qfab.run_folder import (
    STAGES,
    RunFolder,
    apply_overrides,
    overridden_stage,
    parse_override,
)


def test_an_override_is_a_dotted_key_and_a_yaml_value():
    assert parse_override("hw.folding.pe=[4, 4, 2]") == (["hw", "folding", "pe"], [4, 4, 2])
    assert parse_override("sim.enabled=false") == (["sim", "enabled"], False)
    assert parse_override("hw.clock_mhz=125.5") == (["hw", "clock_mhz"], 125.5)
    assert parse_override("dataset.path=data/mnist") == (["dataset", "path"], "data/mnist")


@pytest.mark.parametrize("bad", ["hw.clock_mhz", "=3", "hw..x=1", "hw.x=[1, 2"])
def test_a_malformed_override_is_refused_naming_it(bad):
    with pytest.raises(ConfigError, match=r"^-o "):
        parse_override(bad)


def test_overrides_are_validated_by_the_config_schema():
    cfg = apply_overrides({"model": {"hidden": [8]}}, ["model.weight_bits=4", "sim.vectors=7"], "c")
    assert (cfg.model.weight_bits, cfg.model.hidden, cfg.sim.vectors) == (4, [8], 7)
    with pytest.raises(ConfigError, match="hw.folding_typo"):
        apply_overrides({}, ["hw.folding_typo=3"], "c.yaml")
    with pytest.raises(ConfigError, match="weight_bits"):
        apply_overrides({}, ["model.weight_bits=99"], "c.yaml")
    # a string data set becomes its mapping when a key of it is set
    cfg = apply_overrides({"dataset": "digits"}, ["dataset.path=/x"], "c")
    assert cfg.dataset_path == "/x"


def test_each_section_is_first_read_by_the_stage_it_feeds():
    assert overridden_stage([]) is None
    assert overridden_stage(["sim.vectors=5"]) == "sim"
    assert overridden_stage(["sim.vectors=5", "hw.target_cycles=8"]) == "lower"
    assert overridden_stage(["train.epochs=1", "synth.part=xcku040"]) == "train"
    with pytest.raises(ConfigError, match="'hardware' is not a config section"):
        overridden_stage(["hardware.x=1"])


def test_parts_merge_in_stage_order_and_forgetting_a_stage_clears_the_later_ones(tmp_path):
    folder = RunFolder(tmp_path)
    folder.record("gen", {"perf": {"cycles_per_frame": {"model": 64, "measured": None}}}, {})
    folder.record("sim", {"perf": {"cycles_per_frame": {"measured": 64.5}}}, {"sim": 1.0})
    (tmp_path / "rtl").mkdir()
    assert folder.report()["perf"]["cycles_per_frame"] == {"model": 64, "measured": 64.5}
    folder.forget_from("gen")
    assert not folder.done("gen") and not folder.done("sim") and not (tmp_path / "rtl").exists()
    assert folder.report() == {}
    assert STAGES[0] == "train" and STAGES[-1] == "report"


def test_a_folder_without_a_config_is_not_a_run_folder(tmp_path):
    with pytest.raises(ConfigError, match="not a qfab run folder"):
        RunFolder(tmp_path).config()


def test_rerunning_a_stage_clears_only_the_stages_that_read_its_files(tmp_path):
    from qfab.run_folder import ancestors, dependents

    assert dependents("sim") == ["sim", "report"]  # synthesis does not read the simulation
    assert dependents("gen") == ["gen", "sim", "synth", "report"]
    assert dependents("train") == list(STAGES)
    assert ancestors("synth") == ["train", "export", "lower", "gen"]
    folder = RunFolder(tmp_path)
    for stage in ("gen", "sim", "synth"):
        folder.record(stage, {stage: True}, {})
    (tmp_path / "synth").mkdir()
    folder.forget_from("sim")
    assert folder.done("gen") and folder.done("synth") and not folder.done("sim")
    assert (tmp_path / "synth").is_dir()


def test_a_relative_data_set_path_is_stored_resolved(tmp_path, monkeypatch):
    """Stage commands may run from another directory than the run did."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "d.npz").write_bytes(b"")
    cfg = apply_overrides({"dataset": {"name": "npz", "path": "data/d.npz"}}, [], "c")
    (tmp_path / "run").mkdir()
    RunFolder(tmp_path / "run").write_config(cfg)
    monkeypatch.chdir(tmp_path / "run")
    assert RunFolder(tmp_path / "run").config().dataset_path == str(tmp_path / "data" / "d.npz")
