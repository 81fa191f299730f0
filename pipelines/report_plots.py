"""The run report's plots: matplotlib figures (object API: no pyplot state, no GUI backend) of
``summary.json``'s sections, inlined by :func:`plot_section` as SVG (text stays text)."""

from __future__ import annotations

import html
import io
from typing import Any, Callable, Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from pipelines.rendering import is_missing

# Matplotlib settings: text stays text (searchable, small), ids are deterministic.
_RC = {"svg.fonttype": "none", "svg.hashsalt": "epoxy-beam", "font.size": 9}
_BEFORE, _AFTER = "#9aa5b1", "#1f6feb"


def _plain(text: Any) -> str:
    """Text matplotlib shows literally (``$`` would start mathtext)."""
    return str(text).replace("$", r"\$")


def _svg(figure: Figure) -> str:
    """The figure as an inline ``<svg>`` element (no XML prolog)."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def _lf_height(num_lfs: int) -> float:
    return max(2.2, 0.32 * num_lfs + 1.0)


def plot_coverage(lfs: Sequence[Mapping[str, Any]]) -> Figure:
    """Coverage per LF before and after extension (horizontal bars)."""
    names = [_plain(lf["lf"]) for lf in lfs]
    y = np.arange(len(lfs))
    fig = _figure(6.5, _lf_height(len(lfs)))
    ax = fig.add_subplot()
    ax.barh(y - 0.2, [lf["coverage"] for lf in lfs], 0.4, label="own votes", color=_BEFORE)
    ax.barh(
        y + 0.2, [lf["coverage_extended"] for lf in lfs], 0.4, label="after extension", color=_AFTER
    )
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel("coverage (share of documents)")
    ax.set_title("Coverage per LF")
    ax.legend(loc="lower right")
    return fig


def plot_accuracy(lfs: Sequence[Mapping[str, Any]]) -> Figure | None:
    """Label-model estimated vs empirical (dev) accuracy per LF; ``None`` without dev votes."""
    rows = [
        lf
        for lf in lfs
        if not is_missing(lf["empirical_accuracy"]) and not is_missing(lf["estimated_accuracy"])
    ]
    if not rows:
        return None
    fig = _figure(5.0, 4.2)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="#bbbbbb", linewidth=1, label="estimate = empirical")
    emp = [lf["empirical_accuracy"] for lf in rows]
    est = [lf["estimated_accuracy"] for lf in rows]
    sizes = [20 + 6 * (lf["correct"] + lf["incorrect"]) ** 0.5 for lf in rows]
    ax.scatter(emp, est, s=sizes, color=_AFTER, alpha=0.8, label="LF (size: dev votes)")
    for lf, x, y in zip(rows, emp, est):
        ax.annotate(_plain(lf["lf"]), (x, y), xytext=(4, 3), textcoords="offset points", fontsize=7)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("empirical accuracy on dev rows")
    ax.set_ylabel("label model's estimated accuracy")
    ax.set_title("Estimated vs empirical LF accuracy")
    ax.legend(loc="lower right", fontsize=7)
    return fig


def plot_threshold_sweep(sweep: Mapping[str, Any] | None) -> Figure | None:
    """Coverage and CV accuracy against the threshold quantile level, chosen level marked."""
    if not sweep or not sweep["levels"]:
        return None
    levels = np.array(sweep["levels"], float)
    shown = np.where(levels > 1.0, 1.05, levels)
    fig = _figure(6.5, 3.6)
    ax = fig.add_subplot()
    ax.plot(shown, sweep["coverage"], "o-", color=_BEFORE, label="coverage (fit sample)")
    accuracy = [np.nan if a is None else a for a in sweep["cv_accuracy"]]
    if not np.all(np.isnan(accuracy)):
        ax.plot(
            shown,
            accuracy,
            "s-",
            color=_AFTER,
            label=f"label model CV accuracy ({sweep['tuning_rows']} tuning rows)",
        )
    chosen = sweep.get("chosen_level")
    if chosen is not None:
        x = 1.05 if chosen > 1.0 else chosen
        ax.axvline(x, color="#d1242f", linestyle="--", label=f"chosen: {_level_name(chosen)}")
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0, 1.05], ["0", "0.25", "0.5", "0.75", "1", "off"])
    ax.set_xlabel("threshold quantile level q (higher = stricter; off = no extension)")
    ax.set_ylabel("share")
    ax.set_ylim(0, 1.02)
    ax.set_title("Extension threshold sweep")
    ax.legend(loc="lower left", fontsize=7)
    return fig


def _level_name(level: float) -> str:
    return "no extension" if level > 1.0 else f"q = {level:g}"


def plot_class_balance(summary: Mapping[str, Any]) -> Figure:
    """Class balance (label model prior, labels) and the histogram of label confidence."""
    class_names = [_plain(c) for c in summary["class_names"]]
    confidence = summary.get("confidence")
    fig = _figure(8.0, 3.2)
    left, right = fig.subplots(1, 2, width_ratios=[1, 1.6])
    x = np.arange(len(class_names))
    prior = summary["label_model"]["class_balance"]
    left.bar(x - 0.2, prior, 0.4, color=_BEFORE, label="label model prior")
    if confidence:
        counts = np.array(confidence["label_counts"], float)
        left.bar(x + 0.2, counts / max(counts.sum(), 1), 0.4, color=_AFTER, label="labels")
    left.set_xticks(x, class_names)
    left.set_ylabel("share")
    left.set_ylim(0, 1.25)
    left.set_title("Class balance")
    left.legend(fontsize=7, loc="upper center", ncols=2)
    if confidence:
        edges = np.array(confidence["bin_edges"])
        counts = np.array(confidence["counts"])
        uncovered = np.array(confidence["uncovered_counts"])
        widths = np.diff(edges)
        right.bar(edges[:-1], counts - uncovered, widths, align="edge", color=_AFTER, label="covered")
        right.bar(
            edges[:-1],
            uncovered,
            widths,
            bottom=counts - uncovered,
            align="edge",
            color=_BEFORE,
            label="no vote (end model only)",
        )
        right.legend(fontsize=7)
    right.set_xlabel("confidence of the label")
    right.set_ylabel("documents")
    right.set_title("Posterior confidence")
    return fig


def plot_lf_pairs(pairs: Mapping[str, Any]) -> Figure:
    """Heat maps of the LF × LF overlap and conflict shares."""
    names = [_plain(name) for name in pairs["lfs"]]
    m = len(names)
    size = max(3.0, 0.45 * m + 1.8)
    fig = _figure(2 * size + 0.8, size)
    axes = fig.subplots(1, 2)
    for ax, key, cmap in zip(axes, ("overlap", "conflict"), ("Blues", "Reds")):
        matrix = np.array(pairs[key], float)
        image = ax.imshow(matrix, cmap=cmap, vmin=0, vmax=max(matrix.max(), 1e-9))
        ax.set_xticks(range(m), names, rotation=60, ha="right")
        ax.set_yticks(range(m), names)
        ax.set_title(f"LF {key} (share of documents)")
        if m <= 12:
            for i in range(m):
                for j in range(m):
                    ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=6)
        fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


def plot_section(figure_id: str, title: str, make: Callable[[], Figure | None], missing: str) -> str:
    with matplotlib.rc_context(_RC):
        figure = make()
        body = _svg(figure) if figure is not None else f'<p class="missing">{html.escape(missing)}</p>'
    return (
        f'<figure id="{figure_id}" class="plot"><figcaption>{html.escape(title)}</figcaption>'
        f"{body}</figure>"
    )
