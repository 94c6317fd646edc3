"""Bad config -> one line naming the key and what is allowed, exit code 2, nothing in --out."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from qfab.cli import main
from qfab.config import load_config, parse_config
from qfab.errors import ConfigError


def test_defaults_match_the_issue_example():
    cfg = parse_config({"dataset": "digits"})
    assert cfg.model.hidden == [64, 64] and cfg.model.weight_bits == 2
    assert cfg.hw.folding == "auto" and cfg.sim.simulator == "verilator"
    assert cfg.synth.part == "xc7z020"


def test_the_demo_config_is_valid():
    cfg = load_config("examples/digits_mlp.yaml")
    assert cfg.train.epochs == 40 and cfg.sim.vectors == 200


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"modle": {}}, "unknown key 'modle'; allowed here: dataset, model, train, hw, sim, synth"),
        ({"model": {"hiden": [3]}}, "unknown key 'model.hiden'; allowed here: arch, hidden"),
        ({"model": {"weight_bits": 0}}, "model.weight_bits = 0 is not allowed; allowed: 1..8"),
        ({"model": {"act_bits": 33}}, "model.act_bits = 33 is not allowed; allowed: 1..8"),
        ({"model": {"hidden": [64, 0]}}, "model.hidden[1] = 0 is not allowed; allowed: a list"),
        ({"sim": {"simulator": "vcs"}}, "allowed: 'verilator', 'icarus'"),
        ({"hw": {"folding": "manual"}}, "hw.folding = 'manual' is not allowed; allowed: 'auto'"),
        ({"hw": {"folding": {"pe": [1]}}}, "hw.folding.simd"),
    ],
)
def test_errors_name_key_and_allowed_values(data, expected):
    with pytest.raises(ConfigError) as info:
        parse_config(data, "c.yaml")
    msg = str(info.value)
    assert expected in msg and "\n" not in msg and msg.startswith("c.yaml: ")


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="config file '.*nope.yaml' not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model: {weight_bits: 33}\n", "model.weight_bits = 33 is not allowed; allowed: 1..8"),
        ("model: {act_bits: true}\n", "model.act_bits = True is not allowed; allowed: 1..8"),
        ("model: {per_channel: 1}\n", "model.per_channel = 1 is not allowed; allowed: true, false"),
        ("model: {hidden: [0]}\n", "model.hidden[0] = 0 is not allowed"),
        ("bogus: 1\n", "unknown key 'bogus'"),
        # PE 5 does not divide 24: refused before any training starts
        (
            "model: {hidden: [24, 13]}\nhw: {folding: {pe: [5, 1, 1], simd: [1, 1, 1]}}\n",
            "hw.folding.pe[0] = 5 (fc0) must divide MH = 24; allowed: [1, 2, 3, 4, 6, 8, 12, 24]",
        ),
        (
            "model: {hidden: [24, 13]}\nhw: {folding: {pe: [1, 1], simd: [1, 1]}}\n",
            "hw.folding.pe: 2 entries for 3 compute units (fc0, fc1, fc2)",
        ),
        ("hw: {folding: {pe: [1, 1, 1]}}\n", "hw.folding.simd is missing"),
        # a conv net's folding is checked against its lowered units before training too
        (
            "model: {arch: lenet5}\nhw: {folding: {pe: [6, 16, 1, 1, 1], simd: [2, 1, 1, 1, 1]}}\n",
            "hw.folding.simd[0] = 2 (conv0) must divide the input channels or be whole "
            "window taps; allowed: [1, 3, 9]",
        ),
        ("hw: {target_cycles: 0}\n", "hw.target_cycles = 0 is not allowed; allowed: 'auto' or"),
        (
            "hw: {target_cycles: 10, target_fps: 1000.0}\n",
            "give target_cycles or target_fps, not both",
        ),
        ("synth: {part: ice40up5k}\n", "synth.part = 'ice40up5k' is not supported"),
        (
            "compress: {steps: [{quantize: {epochs: 0}}]}\n",
            "compress.steps[0].quantize.epochs = 0 is not allowed; allowed: 1..10000",
        ),
        ("dataset: {name: npz, path: nope.npz}\n", "dataset.path = nope.npz: file not found"),
    ],
)
def test_cli_exits_2_with_one_line_and_leaves_no_output(tmp_path, capsys, text, message):
    """Each bad config is one line naming the key, before any training (200 epochs would
    take minutes), and nothing is left behind, not even the --out parent folders."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text + "train: {epochs: 200}\n")
    out = tmp_path / "a" / "b" / "out"
    start = time.perf_counter()
    assert main(["run", str(cfg), "--out", str(out)]) == 2
    assert time.perf_counter() - start < 10, "must fail before training"
    err = capsys.readouterr().err.strip()
    assert err.startswith("qfab: error: ") and len(err.splitlines()) == 1
    assert message in err
    assert list(tmp_path.iterdir()) == [cfg], "partial output left behind"


def test_missing_config_file_exit_code_via_console_script(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "qfab.cli",
            "run",
            str(tmp_path / "x.yaml"),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"qfab: error: config file '{tmp_path / 'x.yaml'}' not found"


def test_frames_per_second_target_becomes_a_cycle_budget():
    from qfab.flow import hardware_settings

    cfg = parse_config({"hw": {"target_fps": 250_000.0, "clock_mhz": 100.0}})
    assert hardware_settings(cfg)["target_cycles"] == 400  # 100 MHz / 250k frames/s
    assert hardware_settings(parse_config({}))["target_cycles"] is None  # auto
    explicit = parse_config({"hw": {"folding": {"pe": [1, 2], "simd": [4, 8]}, "xnor": False}})
    s = hardware_settings(explicit)
    assert (s["pe"], s["simd"], s["xnor"]) == ([1, 2], [4, 8], False)
