"""The report's figures: matplotlib SVG inlined in the page.

Each function returns ``{"id", "caption", "svg"}`` for the template's ``<figure>``. The
figures are drawn with matplotlib's object API (``Figure``, never ``pyplot``) so
rendering a report neither changes a notebook's backend nor leaves figures open; text is
saved as paths so the page looks the same in a browser with no fonts installed.
"""

from __future__ import annotations

import io
import re
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from qfab.pareto import pareto_front


def svg_element(fig: Figure, name: str) -> str:
    """The figure as an inline ``<svg>`` element: text as paths (no font needed), no XML
    prolog, and every id prefixed with the figure's name so several SVGs in one page
    never share an id."""
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": "qfab"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r'id="([^"]+)"', rf'id="{name}-\1"', text)
    text = re.sub(r"#([A-Za-z_][\w.\-]*)\)", rf"#{name}-\1)", text)  # url(#id)
    text = re.sub(r'href="#([^"]+)"', rf'href="#{name}-\1"', text)
    return text


def figure(name: str, caption: str, fig: Figure) -> dict[str, str]:
    """What the template's ``<figure id="fig-NAME">`` holds: its id, caption and SVG."""
    return {"id": f"fig-{name}", "caption": caption, "svg": svg_element(fig, f"fig-{name}")}


def bar_chart(
    labels: list[str], series: dict[str, list[float | None]], ylabel: str, title: str
) -> Figure:
    """Grouped bars, one group per label; ``None`` values are left out (not drawn as 0)."""
    fig = Figure(figsize=(max(5.0, 0.9 * len(labels) + 2), 3.2))
    ax = fig.subplots()
    width = 0.8 / max(1, len(series))
    x = np.arange(len(labels))
    for i, (name, values) in enumerate(series.items()):
        xs = [x[j] + i * width for j, v in enumerate(values) if v is not None]
        ys = [v for v in values if v is not None]
        ax.bar(xs, ys, width, label=name)
    ax.set_xticks(x + width * (len(series) - 1) / 2, labels, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if len(series) > 1:  # beside the axes: never over a bar
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return fig


def accuracy_bits_figure(points: list[dict[str, Any]], caption: str) -> dict[str, str]:
    fig = Figure(figsize=(max(5.0, 1.0 * len(points) + 2), 3.2))
    ax = fig.subplots()
    labels = [p["label"] for p in points]
    acc = [100 * p["accuracy"] for p in points]
    bars = ax.bar(range(len(points)), acc, color=[p.get("color", "C0") for p in points])
    ax.bar_label(bars, fmt="%.1f")
    ax.set_xticks(range(len(points)), labels, rotation=20, ha="right")
    ax.set_ylabel("test accuracy (%)")
    lo = min(acc)
    ax.set_ylim(max(0.0, lo - 10), 100)
    ax.set_title("accuracy per bit width")
    ax.grid(axis="y", alpha=0.3)
    return figure(
        "accuracy-bits",
        caption,
        fig,
    )


def compression_figure(table: list[dict[str, Any]]) -> dict[str, str]:
    fig = Figure(figsize=(max(5.5, 1.1 * len(table) + 2), 3.4))
    ax = fig.subplots()
    steps = [_short_step(r["step"]) for r in table]
    x = np.arange(len(table))
    ax.bar(x, [r["bytes"] for r in table], color="C7", alpha=0.6, label="weight bytes")
    ax.set_yscale("log")
    ax.set_ylabel("weight storage (bytes, log)")
    ax.set_xticks(x, steps, rotation=25, ha="right")
    acc_ax = ax.twinx()
    acc_ax.plot(x, [100 * r["acc"] for r in table], "o-", color="C3", label="accuracy")
    acc_ax.set_ylabel("test accuracy (%)", color="C3")
    ax.set_title("accuracy and storage per compression step")
    return figure(
        "compression-steps",
        "Accuracy (line, right axis) and weight storage in each step's representation "
        "(bars, left axis, log scale) after each compression step.",
        fig,
    )


def _short_step(step: str) -> str:
    return step if len(step) <= 28 else step[:26] + "…"


def sparse_load_figure(rows: list[dict[str, Any]]) -> dict[str, str]:
    fig = Figure(figsize=(max(5.0, 3.2 * len(rows)), 3.0))
    axes = fig.subplots(1, len(rows), squeeze=False, sharey=True)
    for ax, r in zip(axes[0], rows, strict=True):
        per_pe = r["entries_per_pe"]
        ax.bar(range(len(per_pe)), per_pe, color="C2")
        ax.axhline(np.mean(per_pe), color="k", ls="--", lw=1, label="mean (balanced)")
        ax.set_xticks(range(len(per_pe)))
        ax.set_xlabel("PE")
        eff = r.get("efficiency_model")
        ax.set_title(r["layer"] + ("" if eff is None else f": efficiency {eff:.0%}"), fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("stored entries")
    axes[0][0].legend(fontsize=8)
    return figure(
        "sparse-load",
        "Sparse engine load balance: stored entries (non-zeros + padding) per PE; the "
        "slowest PE sets the layer's cycles.",
        fig,
    )


def front_figure(
    name: str,
    runs: list[dict[str, Any]],
    cost_key: str,
    cost_label: str,
) -> dict[str, str] | None:
    """Accuracy against a cost over the runs that have both, the Pareto front (max
    accuracy, min cost) as a step line through its points, marked. A run whose hardware
    failed an equality is drawn (crossed) but cannot be on the front: its accuracy is not
    what its hardware computes."""
    have = [r for r in runs if r.get(cost_key) is not None and r.get("accuracy") is not None]
    if not have:
        return None
    pts = np.array([[r["accuracy"], r[cost_key]] for r in have], dtype=float)
    exact = np.array([r.get("status") != "mismatch" for r in have])
    front = np.flatnonzero(exact)[pareto_front(pts[exact], maximize=[0], minimize=[1])]
    fig = Figure(figsize=(6.0, 3.8))
    ax = fig.subplots()
    ax.scatter(pts[exact, 1], 100 * pts[exact, 0], color="C7", label="runs", zorder=2)
    if not exact.all():
        bad = ~exact
        ax.scatter(pts[bad, 1], 100 * pts[bad, 0], color="C1", marker="x", label="mismatch")
    order = front[np.argsort(pts[front, 1], kind="stable")]
    ax.step(pts[order, 1], 100 * pts[order, 0], where="post", color="C3", label="Pareto front")
    ax.scatter(pts[order, 1], 100 * pts[order, 0], color="C3", marker="D", s=40, zorder=3)
    for i in order:  # only the front is named: every run is in the table above
        ax.annotate(
            have[i]["name"],
            (pts[i, 1], 100 * pts[i, 0]),
            fontsize=7,
            xytext=(4, 3),
            textcoords="offset points",
        )
    ax.set_xlabel(cost_label)
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    on_front = ", ".join(have[i]["name"] for i in order)
    return figure(
        name,
        f"Accuracy against {cost_label}; the Pareto front (highest accuracy for the "
        f"least {cost_label}) is the step line, its runs marked ◆: {on_front}.",
        fig,
    )
