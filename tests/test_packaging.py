"""The installed package finds its Verilog library and templates (not just a source checkout)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

import pytest


def test_library_and_templates_are_package_resources():
    from hw_gen.verilog.units import Design, Unit  # noqa: F401  (a subpackage imports)

    for lib in ("mvau_pipe.v", "swg_stream.v", "stream_dwc.v", "fifo_stream.v"):
        assert resources.files("rtl").joinpath(lib).is_file(), lib
    assert resources.files("hw_gen").joinpath("templates", "top.v.j2").is_file()
    assert resources.files("hw_gen").joinpath("templates", "unit.v.j2").is_file()
    assert resources.files("qfab").joinpath("templates", "report.html.j2").is_file()


@pytest.mark.slow
def test_wheel_ships_verilog_templates_and_console_script(tmp_path):
    # build from a copy, so setuptools' build/ and *.egg-info never land in the checkout
    src = tmp_path / "src"
    shutil.copytree(
        Path(__file__).resolve().parents[1],
        src,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "out", "build", "*.egg-info", "__pycache__", ".*_cache", "sim_build"
        ),
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(src),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("qfab-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {
        "rtl/mvau_pipe.v",
        "rtl/swg_stream.v",
        "rtl/stream_dwc.v",
        "hw_gen/templates/top.v.j2",
        "hw_gen/templates/unit.v.j2",
        "hw_gen/passes/folding.py",
        "hw_gen/verilog/emit.py",
        "qfab/ir.py",
        "qfab/ops/compute.py",
        "qfab/templates/report.html.j2",
        "sim/bench_stream.py",
    } <= names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "qfab = qfab.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
