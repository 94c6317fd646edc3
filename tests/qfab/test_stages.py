"""The stage CLI: ``qfab train | export | lower | gen | sim | synth | report`` on one run
folder. The acceptance line: changing only ``hw.*`` and running ``lower``/``gen``/``sim``
reuses the trained model (no training happens: the training function is made to fail)."""

from __future__ import annotations

import hashlib
import json

import pytest

from qfab.cli import build_parser, main

pytestmark = pytest.mark.slow

TINY = (
    "model: {hidden: [16], weight_bits: 2, act_bits: 2}\n"
    "train: {epochs: 2, float_baseline: false}\n"
    "hw: {target_cycles: 64}\n"
    "sim: {simulator: icarus, vectors: 12}\n"
    "synth: {enabled: false}\n"
)


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """A run made stage by stage: train, export, lower, gen, sim (each its own command)."""
    root = tmp_path_factory.mktemp("stages")
    cfg = root / "c.yaml"
    cfg.write_text(TINY)
    run = root / "run"
    assert main(["train", str(cfg), "--out", str(run)]) == 0
    for stage in ("export", "lower", "gen", "sim"):
        assert main([stage, str(run)]) == 0, stage
    return run


def report(run):
    return json.loads((run / "report.json").read_text())


def test_stages_one_by_one_make_a_complete_run(staged):
    r = report(staged)
    assert r["stages"] == ["train", "export", "lower", "gen", "sim"]
    assert r["equality"]["brevitas_vs_golden"]["mismatches"] == 0
    assert r["equality"]["rtl_vs_golden"]["mismatches"] == 0
    assert r["perf"]["cycles_per_frame"]["model"] == 64
    assert (staged / "rtl" / "design.json").is_file() and (staged / "report.html").is_file()


def test_a_new_folding_reruns_lower_onward_without_training(staged, monkeypatch, tmp_path):
    import shutil

    import quant_train.train as train

    run = tmp_path / "run"
    shutil.copytree(staged, run)
    weights = digest(run / "brevitas_model.pt")

    def no_training(*args, **kwargs):
        raise AssertionError("training ran")

    monkeypatch.setattr(train, "train_classifier", no_training)
    exported = (run / "parts" / "export.json").stat().st_mtime_ns
    assert main(["lower", str(run), "-o", "hw.target_cycles=16"]) == 0
    after_lower = report(run)
    assert after_lower["stages"] == ["train", "export", "lower"]  # gen, sim cleared
    assert not (run / "rtl").exists()
    assert main(["gen", str(run)]) == 0
    assert main(["sim", str(run)]) == 0
    r = report(run)
    assert digest(run / "brevitas_model.pt") == weights
    assert r["perf"]["cycles_per_frame"]["model"] == 16
    assert r["perf"]["cycles_per_frame"]["measured"] == pytest.approx(16, rel=0.05)
    assert r["equality"]["rtl_vs_golden"]["mismatches"] == 0
    assert "target_cycles: 16" in (run / "config.yaml").read_text()
    # the model was neither retrained nor re-exported: the export stage's files are the
    # original ones (a stage command copies the folder, keeping modification times)
    assert (run / "parts" / "export.json").stat().st_mtime_ns == exported
    assert r["equality"]["brevitas_vs_golden"] == report(staged)["equality"]["brevitas_vs_golden"]
    # an explicit folding (the issue's `hw.folding`), also without training
    folding = "hw.folding={pe: [4, 2], simd: [16, 8]}"
    assert main(["lower", str(run), "-o", folding]) == 0
    assert main(["gen", str(run)]) == 0 and main(["sim", str(run)]) == 0
    r = report(run)
    assert [(f["PE"], f["SIMD"]) for f in r["hardware"]["folding"]] == [(4, 16), (2, 8)]
    assert r["equality"]["rtl_vs_golden"]["mismatches"] == 0
    assert digest(run / "brevitas_model.pt") == weights


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["lower", "{run}", "-o", "model.weight_bits=4"], "read by the 'train' stage"),
        (["sim", "{run}", "-o", "hw.target_cycles=8"], "read by the 'lower' stage"),
        (["sim", "{run}", "-o", "sim.vectorz=8"], "sim.vectorz"),
        (["gen", "{run}", "-o", "nonsense"], "expected key=value"),
        (["lower", "{run}", "-o", "hw.folding.pe.0=2"], "give the whole list"),
        (["export", "{run}", "-o", "model.hidden=[8]"], "qfab train"),
        (["gen", "{tmp}"], "not a qfab run folder"),
    ],
)
def test_stage_commands_refuse_and_leave_the_folder_as_it_was(staged, tmp_path, capsys, argv, says):
    before = {p: p.stat().st_mtime_ns for p in staged.rglob("*")}
    args = [a.format(run=staged, tmp=tmp_path) for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("qfab: error: ") and says in err
    assert {p: p.stat().st_mtime_ns for p in staged.rglob("*")} == before


def test_a_stage_needs_the_stages_before_it(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(TINY)
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(run)]) == 0
    assert main(["gen", str(run)]) == 2
    assert "stage 'export' has not run; run `qfab export" in capsys.readouterr().err


def test_run_takes_overrides_and_records_the_config_it_ran(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(TINY)
    run = tmp_path / "run"
    args = ["run", str(cfg), "--out", str(run), "-o", "sim.enabled=false", "-o", "train.epochs=1"]
    assert main(args) == 0
    r = report(run)
    assert r["config"]["train"]["epochs"] == 1 and "rtl_vs_golden" not in r["equality"]
    assert "epochs: 1" in (run / "config.yaml").read_text()


def test_version_and_every_command_has_help_with_an_example(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("qfab ")
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for stage in ("train", "export", "lower", "gen", "sim", "synth", "report", "run"):
        assert stage in commands
    for name, sub in commands.items():
        text = sub.format_help()
        assert "examples:" in text and f"qfab {name}" in text, name


def test_a_run_reusing_another_runs_model_starts_at_lower(staged, monkeypatch, tmp_path):
    """What a sweep over foldings does per point: the trained, exported model of a run
    with the same dataset/model/train settings, a new folding, no training."""
    import quant_train.train as train
    from qfab.errors import ConfigError
    from qfab.flow import run_flow
    from qfab.run_folder import RunFolder, apply_overrides

    def no_training(*args, **kwargs):
        raise AssertionError("training ran")

    monkeypatch.setattr(train, "train_classifier", no_training)
    base = RunFolder(staged).config().model_dump(mode="json", exclude_unset=True)
    cfg = apply_overrides(base, ["hw.target_cycles=32"], "c")
    r = run_flow(cfg, tmp_path / "b", reuse=staged)
    assert r["perf"]["cycles_per_frame"]["model"] == 32
    assert r["equality"]["rtl_vs_golden"]["mismatches"] == 0
    assert digest(tmp_path / "b" / "brevitas_model.pt") == digest(staged / "brevitas_model.pt")
    other = apply_overrides(base, ["model.hidden=[8]"], "c")
    with pytest.raises(ConfigError, match="trained with other"):
        run_flow(other, tmp_path / "c", reuse=staged)
    assert not (tmp_path / "c").exists()
