"""qfab: a quantized network to a bit-exact FPGA accelerator.

``qfab.run``, ``qfab.compress``, ``qfab.load`` and ``qfab.export_brevitas`` (see
:mod:`qfab.api`) are loaded on first use: importing the core (``qfab.ir``,
``qfab.golden``) must not pull in torch, Brevitas or the simulators.
"""

from __future__ import annotations

from typing import Any

_API = ("run", "compress", "load", "export_brevitas", "Model", "Run")


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        return getattr(importlib.import_module("qfab.api"), name)
    raise AttributeError(f"module 'qfab' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
