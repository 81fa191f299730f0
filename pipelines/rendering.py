"""What people see: number formats, the LF table's columns and labels, documents, metric lines.

The one place that decides how results look, for ``report.html`` (:mod:`pipelines.report`), the
console (:func:`pipelines.summary.format_summary`, :meth:`pipelines.relabel_result.RelabelResult.format`)
and the studio (:mod:`pipelines.studio_views`; its page only builds the DOM from the strings it
gets). The LF table's rows are :func:`transforms.core.analysis.lf_table`'s; documents without text
are shown by :mod:`transforms.core.display` (an id and the fields, a thumbnail for an image).

>>> format_value(0.12345), format_value(float("nan")), format_value([1, 0], "classes", ("ham", "spam"))
('0.123', '–', 'spam, ham')
>>> document_view("d1", "", {"frame": 3, "img": "iVBORw0KGgoAAAA="})
{'id': 'd1', 'text': 'frame=3 img=[image]', 'thumbnail': 'data:image/png;base64,iVBORw0KGgoAAAA='}
"""

from __future__ import annotations

import dataclasses
import html
import math
from typing import Any, Mapping, Sequence

from transforms.core.display import display_text, split_thumbnail
from transforms.core.votes import ABSTAIN

MISSING = "–"
DOCUMENT_CHARS = 1000  # characters of a document's text the studio shows
CONSOLE_LFS = 30  # LF rows the pipeline's console summary prints (all are in report.html)


@dataclasses.dataclass(frozen=True)
class Column:
    """One column of the LF table.

    Attributes:
        key: The :func:`~transforms.core.analysis.lf_table` key.
        header: Its header in report.html and the studio.
        kind: ``text``, ``classes`` (class numbers shown by name), ``share`` or ``int``.
        console: Its header on the console (``""``: not printed there).
    """

    key: str
    header: str
    kind: str
    console: str = ""


LF_COLUMNS = (
    Column("lf", "LF", "text", "lf"),
    Column("polarity", "Polarity", "classes"),
    Column("coverage", "Coverage", "share", "cov"),
    Column("coverage_extended", "Coverage (extended)", "share", "ext.cov"),
    Column("overlaps", "Overlaps", "share"),
    Column("conflicts", "Conflicts", "share", "confl"),
    Column("correct", "Correct", "int"),
    Column("incorrect", "Incorrect", "int"),
    Column("empirical_accuracy", "Emp. Acc.", "share", "emp.acc"),
    Column("estimated_accuracy", "Est. Acc.", "share", "est.acc"),
    Column("threshold", "Threshold", "share"),
    Column("failures", "Failures", "int", "fail"),
)


def is_missing(value: Any) -> bool:
    """``None``, NaN or an infinity: shown as :data:`MISSING`."""
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def class_label(label: int, class_names: Sequence[str]) -> str:
    """The class's name (``ABSTAIN`` for -1), or its number when the run names none."""
    if label == ABSTAIN:
        return "ABSTAIN"
    return class_names[label] if 0 <= label < len(class_names) else str(label)


def format_value(value: Any, kind: str = "share", class_names: Sequence[str] = ()) -> str:
    """A value as shown in a table (``kind``: see :class:`Column`)."""
    if kind == "classes":
        return ", ".join(class_label(int(c), class_names) for c in value)
    if is_missing(value):
        return MISSING
    if kind == "int":
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def percent(share: float) -> str:
    """``0.973`` → ``97.3%``."""
    return f"{share:.1%}"


def lf_cells(row: Mapping[str, Any], class_names: Sequence[str]) -> list[str]:
    """The shown cells of one LF-table row, in :data:`LF_COLUMNS` order."""
    return [format_value(row[c.key], c.kind, class_names) for c in LF_COLUMNS]


def lf_table_view(rows: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> dict[str, Any]:
    """The LF table for a page: ``{"columns": headers, "keys", "rows": [{"lf", "cells"}]}``."""
    return {
        "columns": [c.header for c in LF_COLUMNS],
        "keys": [c.key for c in LF_COLUMNS],
        "rows": [{"lf": row["lf"], "cells": lf_cells(row, class_names)} for row in rows],
    }


def lf_table_text(rows: Sequence[Mapping[str, Any]], limit: int | None = None) -> str:
    """The LF table on the console (the columns with a ``console`` header); ``limit``: rows."""
    columns = [c for c in LF_COLUMNS if c.console]
    width = min(max([len(str(row["lf"])) for row in rows] + [2]), 28)
    lines = [f"{'lf':<{width}} " + " ".join(f"{c.console:>7}" for c in columns[1:])]
    for row in rows[:limit]:
        cells = [format_value(row[c.key], c.kind) for c in columns[1:]]
        lines.append(f"{str(row['lf'])[:width]:<{width}} " + " ".join(f"{cell:>7}" for cell in cells))
    if limit is not None and len(rows) > limit:
        lines.append(f"(+{len(rows) - limit} more LFs in report.html)")
    return "\n".join(lines)


def failures_line(rows: Sequence[Mapping[str, Any]], where: str) -> str:
    """``LF failures (abstained there<where>): a 3, b 1`` or ``""`` when no LF failed."""
    failing = [f"{row['lf']} {row['failures']}" for row in rows if row["failures"]]
    return f"LF failures (abstained there{where}): {', '.join(failing)}" if failing else ""


def metrics_line(split: str, figures: Mapping[str, Any]) -> str:
    """``tune: accuracy 0.812, macro F1 0.790 (n=40)``."""
    return (
        f"{split}: accuracy {figures['accuracy']:.3f}, macro F1 {figures['macro_f1']:.3f} "
        f"(n={figures['rows']})"
    )


def delta_cell(value: float, change: float | None) -> dict[str, str]:
    """A figure and its change from the previous state: ``{"text", "delta", "trend"}``
    (``delta`` empty when there is no previous state or the change shows as 0.000)."""
    if change is None or abs(change) < 5e-4:
        return {"text": format_value(value), "delta": "", "trend": ""}
    return {"text": format_value(value), "delta": f"{change:+.3f}", "trend": "up" if change > 0 else "down"}


def document_view(doc_id: str, text: str, fields: Mapping[str, Any] | None,
                  max_chars: int = DOCUMENT_CHARS) -> dict[str, str]:  # fmt: skip
    """A document as shown: its id, its text (or its fields) and a thumbnail ``data:`` URI (or
    ``""``) when it has no text and a field holds an image (:mod:`transforms.core.display`)."""
    thumbnail, shown = split_thumbnail(display_text(text or "", fields, max_chars))
    return {"id": str(doc_id), "text": shown, "thumbnail": thumbnail}


def document_html(shown: str) -> str:
    """A :func:`~transforms.core.display.display_text` result as escaped HTML (thumbnail, text)."""
    thumbnail, text = split_thumbnail(shown)
    image = f'<img class="thumbnail" alt="" src="{html.escape(thumbnail, quote=True)}"> ' if thumbnail else ""
    return f'{image}<q class="text">{html.escape(text, quote=True)}</q>'


def document_meta(doc: Mapping[str, Any]) -> list[str]:
    """The facts shown under a studio document: id, label (probability), vote, gold, ..."""
    meta = [doc["id"], f"label {doc['label']} ({doc['prob']:.2f})"]
    for key, prefix in (("vote", "vote"), ("gold", "gold"), ("before", "was")):
        if key in doc:
            meta.append(f"{prefix} {doc[key]}")
    if "lfs" in doc:
        meta.append("LFs: " + (", ".join(doc["lfs"]) or "none"))
    return meta


def neighbour_caption(source_id: str, similarity: float) -> str:
    """``from neighbour d12 (similarity 0.874)``: where an extended vote came from."""
    return f"from neighbour {source_id} (similarity {format_value(similarity)})"


def lf_details_line(details: Mapping[str, Any]) -> str:
    """One LF's counts in words (threshold, votes, gained, errors on dev rows)."""
    return (
        f"threshold {format_value(details['threshold'])} · votes on {details['votes_count']} "
        f"documents · gained {details['gained_count']} by extension · wrong on "
        f"{details['errors_count']} of {details['dev_votes']} dev rows"
    )


def studio_status(view: Mapping[str, Any], applied: Sequence[str], removed: Sequence[str]) -> str:
    """The studio's status line after a change."""
    status = (
        f"{view['documents']} documents · {len(view['lf_table'])} LFs · {view['refit']} relabel "
        f"{view['seconds']:.3f} s"
    )
    if applied:
        status += " · applied " + ", ".join(applied)
    if removed:
        status += " · removed " + ", ".join(removed)
    return status
