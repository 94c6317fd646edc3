"""The one error hierarchy of qfab.

Every stage raises a subclass of :class:`QfabError` for anything a user can fix (bad
config, bad file, unsupported layer). The CLI catches ``QfabError`` once, prints its
message on one line and exits with code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class QfabError(Exception):
    """Base class: a problem with the user's input or environment, not a qfab bug."""


class ConfigError(QfabError):
    """The YAML config is missing, malformed or has a value outside what is allowed."""


class IRError(QfabError):
    """An IR file or graph breaks the contract described in ARCHITECTURE.md."""


class ExportError(QfabError):
    """A trained model cannot be turned into an exact integer IR."""


class HardwareError(QfabError):
    """The IR or folding cannot be mapped to the generated hardware."""


class ToolError(QfabError):
    """An outside tool (Verilator, Icarus, Yosys) is missing or failed."""


class MismatchError(QfabError):
    """Two levels that must be bit-exact differ; the message names the first difference."""


class DataError(QfabError):
    """A data set file is missing, truncated, mislabelled or in the wrong format."""
