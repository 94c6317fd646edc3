"""docs/api.md is a test: every Python block runs, in order, in one namespace, in an empty
folder. A block that stops working fails here, so the page cannot drift from the API."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_page_has_the_examples_the_issue_asks_for():
    blocks = python_blocks(DOC.read_text())
    code = "\n".join(blocks)
    assert len(blocks) >= 3
    for call in (
        "qfab.run(",
        "qfab.compress(",
        ".rerun(",
        "qfab.load(",
        ".golden(",
        ".lower(",
        ".generate(",
        ".simulate(",
        "qfab.export_brevitas(",
    ):
        assert call in code, f"docs/api.md shows no {call}"


def test_every_python_block_of_the_api_page_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "docs_api"}
    for i, block in enumerate(python_blocks(DOC.read_text())):
        try:
            exec(compile(block, f"{DOC}:block{i + 1}", "exec"), namespace)
        except Exception as exc:  # name the block: the page is what the user reads
            pytest.fail(f"docs/api.md block {i + 1} failed: {type(exc).__name__}: {exc}")
    printed = capsys.readouterr().out
    assert "RTL == golden: 0 mismatches" in printed
    assert (tmp_path / "out" / "mlp" / "report.html").is_file()
