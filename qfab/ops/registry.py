"""The op registry: op name -> the one object that knows everything about that op."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qfab.errors import IRError

if TYPE_CHECKING:
    from qfab.ir import Node
    from qfab.ops.base import Op

#: Every registered op, by name.
OPS: dict[str, Op] = {}


def register(cls: type[Op]) -> type[Op]:
    """Class decorator: make the op known under ``cls.name``."""
    if not cls.name or cls.name in OPS:
        raise ValueError(f"op name {cls.name!r} is empty or taken")
    OPS[cls.name] = cls()
    return cls


def op_of(node: Node, where: str = "graph", level: str | None = None) -> Op:
    """The op of ``node``; an unknown op (or one not allowed at ``level``) names the node."""
    op = OPS.get(node.op)
    allowed = sorted(n for n, o in OPS.items() if level is None or o.level in (level, "both"))
    if op is None or (level is not None and op.level not in (level, "both")):
        kind = "unknown op" if op is None else f"op not allowed in a {level} graph"
        raise IRError(f"{where}: node '{node.name}' ({node.op}): {kind}; allowed: {allowed}")
    return op
