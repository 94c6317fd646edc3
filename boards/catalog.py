"""The boards qfab builds for: part, family, processing system, default clock, resource budget.

A board is looked up by name (``qfab build --board pynq-z2``); an unknown name is refused
with the list of known ones. :func:`check_fit` compares a design's resources (Yosys'
``synth_xilinx`` counts from ``report.json``, or any estimate with the same keys) with a
board's budget and refuses a design that does not fit, naming need vs have per resource
and a folding (``hw.target_cycles``) that would fit.

Resource budgets are the vendors' datasheet numbers for the part on the board:

* xc7z020 (PYNQ-Z1, PYNQ-Z2): AMD/Xilinx DS190 "Zynq-7000 SoC Data Sheet: Overview",
  table 1: 53,200 LUTs, 106,400 flip-flops, 140 block RAMs (36 Kb), 220 DSP48E1.
* xczu3eg (Ultra96-V2): AMD/Xilinx DS891 "Zynq UltraScale+ MPSoC Data Sheet: Overview",
  ZU3EG column: 70,560 LUTs, 141,120 flip-flops, 216 block RAMs (36 Kb), 360 DSP48E2.
* xczu7ev (ZCU104): DS891, ZU7EV column: 230,400 LUTs, 460,800 flip-flops, 312 block
  RAMs (36 Kb), 96 UltraRAMs, 1,728 DSP48E2.
* xck26 (KV260): AMD/Xilinx DS987 "Kria K26 SOM Data Sheet", PL resources: 117,120 LUTs,
  234,240 flip-flops, 144 block RAMs (36 Kb), 64 UltraRAMs, 1,248 DSP48E2.
* iCE40UP5K (iCEBreaker): Lattice FPGA-DS-02008 "iCE40 UltraPlus Family Data Sheet",
  table 1.1: 5,280 LUTs (one flip-flop each), 30 EBR of 4 Kb, 4 SPRAM of 256 Kb, 8 DSP
  (MAC16). iCE40 block RAMs are 4 Kb EBRs, not 36 Kb: the budget names them ``EBR``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from qfab.errors import QfabError


class BoardError(QfabError):
    """An unknown board, or a design that does not fit the board's part."""


Family = Literal["zynq", "zynqmp", "ice40"]


@dataclass(frozen=True)
class Board:
    """One board: its FPGA part, family, processing system and resource budget."""

    name: str
    title: str
    part: str
    family: Family
    #: the hard processor beside the fabric and its IP in a Vivado block design
    ps: str | None
    clock_mhz: float
    #: resource -> count on the part (keys as ``report.json`` ``resources`` names them)
    budget: dict[str, int] = field(default_factory=dict)
    #: the PS clock that feeds the fabric (Vivado: FCLK_CLK0 on Zynq, pl_clk0 on MPSoC)
    fabric_clock: str | None = None
    #: ``board_part`` for Vivado when its board files are installed (not required)
    board_part: str | None = None

    @property
    def is_zynq(self) -> bool:
        """A board with an ARM processing system the Vivado flow builds a DMA shell for."""
        return self.family in ("zynq", "zynqmp")


_Z7020 = {"LUT": 53_200, "FF": 106_400, "BRAM36": 140, "DSP": 220}

BOARDS: dict[str, Board] = {
    b.name: b
    for b in (
        Board(
            "pynq-z1",
            "Digilent PYNQ-Z1",
            "xc7z020clg400-1",
            "zynq",
            "processing_system7",
            100.0,
            _Z7020,
            "FCLK_CLK0",
            "www.digilentinc.com:pynq-z1:part0:1.0",
        ),
        Board(
            "pynq-z2",
            "TUL PYNQ-Z2",
            "xc7z020clg400-1",
            "zynq",
            "processing_system7",
            100.0,
            _Z7020,
            "FCLK_CLK0",
            "tul.com.tw:pynq-z2:part0:1.0",
        ),
        Board(
            "ultra96-v2",
            "Avnet Ultra96-V2",
            "xczu3eg-sbva484-1-e",
            "zynqmp",
            "zynq_ultra_ps_e",
            100.0,
            {"LUT": 70_560, "FF": 141_120, "BRAM36": 216, "DSP": 360},
            "pl_clk0",
            "avnet.com:ultra96v2:part0:1.2",
        ),
        Board(
            "zcu104",
            "AMD/Xilinx ZCU104",
            "xczu7ev-ffvc1156-2-e",
            "zynqmp",
            "zynq_ultra_ps_e",
            200.0,
            {"LUT": 230_400, "FF": 460_800, "BRAM36": 312, "URAM": 96, "DSP": 1_728},
            "pl_clk0",
            "xilinx.com:zcu104:part0:1.1",
        ),
        Board(
            "kv260",
            "AMD/Xilinx Kria KV260",
            "xck26-sfvc784-2LV-c",
            "zynqmp",
            "zynq_ultra_ps_e",
            200.0,
            {"LUT": 117_120, "FF": 234_240, "BRAM36": 144, "URAM": 64, "DSP": 1_248},
            "pl_clk0",
            "xilinx.com:kv260_som:part0:1.3",
        ),
        Board(
            "icebreaker",
            "1BitSquared iCEBreaker",
            "iCE40UP5K-SG48",
            "ice40",
            None,
            12.0,
            {"LUT": 5_280, "FF": 5_280, "EBR": 30, "SPRAM": 4, "DSP": 8},
        ),
    )
}


def get_board(name: str) -> Board:
    """The catalog entry for ``name`` (case-insensitive); unknown names are refused."""
    board = BOARDS.get(name.strip().lower())
    if board is None:
        raise BoardError(f"--board {name!r}: unknown board; known boards: {', '.join(BOARDS)}")
    return board


def zynq_boards() -> list[Board]:
    """The boards the Vivado flow builds for (a Zynq or Zynq UltraScale+ PS)."""
    return [b for b in BOARDS.values() if b.is_zynq]


#: Resources whose use scales with the MAC parallelism (PE x SIMD): folding trades them
#: for cycles. Block and ultra RAMs hold the weights, whose bits stay whatever the folding
#: (it changes only how the words pack into blocks), so no estimate is made for them.
FOLDABLE = ("LUT", "FF", "DSP")

#: Fraction of a Zynq part the accelerator may take: the rest is left for the DMA,
#: interconnect and reset blocks of the shell and for the placer to close timing.
ZYNQ_HEADROOM = 0.85


@dataclass(frozen=True)
class Fit:
    """What :func:`check_fit` found: per resource (need, have), and a folding that fits."""

    board: Board
    need_have: dict[str, tuple[int, int]]
    over: list[str]
    cycles_per_frame: int | None
    suggested_target_cycles: int | None
    note: str

    @property
    def fits(self) -> bool:
        return not self.over

    def describe(self) -> str:
        """One line per resource, then the suggestion."""
        rows = []
        for k, (n, h) in self.need_have.items():
            limit = budget_limit(self.board, k)
            allowed = f", limit {limit:,}" if limit != h else ""
            over = "  <- over" if k in self.over else ""
            rows.append(f"{k} need {n:,} have {h:,} ({n / h:.0%}{allowed}){over}")
        return "; ".join(rows) + (f". {self.note}" if self.note else "")


def budget_limit(board: Board, resource: str) -> int:
    """What the accelerator may use of ``resource``: all of an iCE40 (no shell), the
    :data:`ZYNQ_HEADROOM` share of a Zynq part."""
    have = board.budget[resource]
    return have if not board.is_zynq else int(have * ZYNQ_HEADROOM)


def check_fit(
    board: Board,
    resources: dict[str, int],
    cycles_per_frame: int | None = None,
    source: str = "yosys synth_xilinx",
) -> Fit:
    """Compare ``resources`` (a design's counts, keys as :attr:`Board.budget`) with the board.

    A resource over its limit (:func:`budget_limit`) makes the design not fit. The
    suggestion scales the current ``cycles_per_frame`` by the worst over-use of a
    :data:`FOLDABLE` resource, since the MAC parallelism (and with it LUTs, flip-flops
    and DSPs of the compute units) falls in proportion to the cycles each frame may take:
    ``target_cycles = ceil(cycles_per_frame * need / limit)``. It is an estimate (control
    logic and FIFOs do not shrink), not a re-synthesized result; for a block-RAM over-use
    no target is estimated (the weights' bits stay; only their packing into blocks changes
    with folding), and the message says so.
    """
    shared = [k for k in board.budget if k in resources]
    need_have = {k: (int(resources[k]), board.budget[k]) for k in shared}
    over = [k for k in shared if resources[k] > budget_limit(board, k)]
    note, target = "", None
    if over:
        ratios = {k: resources[k] / max(1, budget_limit(board, k)) for k in over}
        memory = [k for k in over if k not in FOLDABLE]
        logic = {k: r for k, r in ratios.items() if k in FOLDABLE}
        parts = []
        if logic and cycles_per_frame:
            target = math.ceil(cycles_per_frame * max(logic.values()))
            parts.append(
                f"a folding that would fit (estimate, scaling the MAC parallelism by "
                f"{1 / max(logic.values()):.2f}; not re-synthesized): hw.target_cycles: "
                f"{target} (now {cycles_per_frame} cycles/frame)"
            )
        elif logic:
            parts.append("fold further (larger hw.target_cycles) to use fewer LUT/FF/DSP")
        if memory:
            parts.append(
                f"{', '.join(memory)} hold the weights: folding changes only how their "
                "words pack into blocks (--find-folding tries it), the weights' bits stay; "
                "prune, share weights, use fewer bits, or a larger board"
            )
        limit = "" if not board.is_zynq else f" (limit {ZYNQ_HEADROOM:.0%} of the part)"
        note = f"does not fit {board.name}{limit}; " + "; ".join(parts)
    return Fit(board, need_have, over, cycles_per_frame, target, note + f" [{source}]" * bool(note))


def require_fit(
    board: Board,
    resources: dict[str, int],
    cycles_per_frame: int | None = None,
    source: str = "yosys synth_xilinx",
) -> Fit:
    """:func:`check_fit`, raising :class:`BoardError` with the numbers when it does not fit."""
    fit = check_fit(board, resources, cycles_per_frame, source)
    if not fit.fits:
        raise BoardError(f"design does not fit {board.name} ({board.part}): {fit.describe()}")
    return fit
