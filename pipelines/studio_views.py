"""What the LF studio shows, as JSON-safe dicts computed from a :class:`~pipelines.iterate.Session`.

Plain functions of a session and its :class:`~pipelines.relabel_result.RelabelResult` (no web framework
here): the overview after an edit (:func:`overview`: LF table, dev metrics with the change from
the previous state, label distribution, documents whose label changed), one LF's examples
(:func:`lf_details`: votes, documents gained by extension with the neighbour they came from and
its similarity, errors on dev rows), a text search (:func:`search`) and the export
(:func:`export`: labels Parquet, the LF file, a ``report.html`` of the current state).
How things look (numbers, the LF table's columns and labels, documents: the text, or for a
non-text document its id, fields and an image thumbnail) comes from :mod:`pipelines.rendering`,
as for report.html and the console: the page only builds the DOM from the strings it gets.
Document text leaves here as data; the page sets it with ``textContent`` (a thumbnail is a
``data:image/...;base64`` URI checked by :mod:`transforms.core.display`) and the report escapes it.
"""

from __future__ import annotations

import math
import os
import shutil
from typing import Any

import numpy as np
import pyarrow.compute as pc

from pipelines import rendering
from pipelines.iterate import Session
from pipelines.relabel_result import RelabelResult, write_labels
from pipelines.report import ReportExtras, render_report
from pipelines.summary import SUMMARY_SCHEMA_VERSION, end_model_choices, lf_pairs
from transforms.core.lfs import ABSTAIN

EXAMPLES = 8  # documents per list (votes, gained, errors, changed labels, search hits)


def _number(value: Any) -> Any:
    """JSON-safe: NaN and infinities become ``None``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def class_name(session: Session, label: int) -> str:
    """The class's name (``ABSTAIN`` for -1), or its number when the LF file names none."""
    return rendering.class_label(label, session.class_names)


def document(session: Session, row: int) -> dict[str, str]:
    """Document ``row`` as shown (:func:`pipelines.rendering.document_view`: text, or the fields
    and a thumbnail for a non-text document)."""
    return rendering.document_view(str(session.ids[row]), session.texts[row].as_py(), session.fields(row))


def _document(session: Session, row: int, result: RelabelResult, **extra: Any) -> dict[str, Any]:
    label = int(result.labels.label[row])
    doc = {
        **document(session, row),
        "label": class_name(session, label),
        "prob": round(float(result.labels.probs[row, label]), 4),
        **extra,
    }
    doc["meta"] = rendering.document_meta(doc)
    return doc


def _metrics(result: RelabelResult, previous: RelabelResult | None) -> dict[str, dict[str, Any]]:
    """The dev metrics per split with their change from ``previous`` (``None``: no previous)."""
    metrics = {}
    for split, figures in result.metrics.items():
        before = (previous.metrics if previous else {}).get(split, {})
        metrics[split] = {
            **figures,
            "delta_accuracy": figures["accuracy"] - before["accuracy"] if before else None,
            "delta_macro_f1": figures["macro_f1"] - before["macro_f1"] if before else None,
        }
    return metrics


def _metrics_table(metrics: dict[str, dict[str, Any]]) -> dict[str, Any]:
    rows = [
        [split, rendering.delta_cell(m["accuracy"], m["delta_accuracy"]),
         rendering.delta_cell(m["macro_f1"], m["delta_macro_f1"]), str(m["rows"])]
        for split, m in metrics.items()
    ]  # fmt: skip
    return {"columns": ["split", "accuracy", "macro F1", "rows"], "rows": rows}


def _changed(session: Session, result: RelabelResult, previous: RelabelResult | None) -> tuple[int, list]:
    """How many documents changed label since ``previous``, and the first few of them."""
    if previous is None or previous.labels.label.shape != result.labels.label.shape:
        return 0, []
    rows = np.flatnonzero(previous.labels.label != result.labels.label)
    return int(rows.size), [
        _document(session, int(i), result, before=class_name(session, int(previous.labels.label[i])))
        for i in rows[:EXAMPLES]
    ]


def overview(session: Session, result: RelabelResult, previous: RelabelResult | None) -> dict[str, Any]:
    """The LF table (rows and, for the page, :func:`pipelines.rendering.lf_table_view`), dev
    metrics (+ delta), label distribution and changed-label samples."""
    metrics = _metrics(result, previous)
    k = session.config.cardinality
    counts = np.bincount(result.labels.label, minlength=k)
    distribution = [{"class": class_name(session, c), "documents": int(counts[c])} for c in range(k)]
    changed_count, changed = _changed(session, result, previous)
    covered = float(result.labels.covered.mean())
    return {
        "lf_table": [{key: _number(value) for key, value in row.items()} for row in result.lf_table],
        "lf_view": rendering.lf_table_view(result.lf_table, session.class_names),
        "metrics": metrics,
        "metrics_table": _metrics_table(metrics),
        "distribution": distribution,
        "distribution_table": {
            "columns": ["class", "documents"],
            "rows": [[d["class"], str(d["documents"])] for d in distribution],
        },
        "covered": round(covered, 4),
        "covered_text": f"covered after extension: {rendering.percent(covered)}",
        "changed_count": changed_count,
        "changed": changed,
        "documents": int(len(session.ids)),
        "refit": result.refit,
        "seconds": round(result.seconds, 4),
    }


def _source_neighbour(session: Session, row: int, column: np.ndarray) -> tuple[int, float]:
    """The most similar neighbour of ``row`` that voted in ``column`` and its similarity."""
    slots = session.graph.neighbours[row]
    votes = np.append(column, ABSTAIN)[slots]
    slot = int(np.argmax(votes != ABSTAIN))
    return int(slots[slot]), float(session.graph.sims[row, slot])


def lf_details(session: Session, result: RelabelResult, name: str) -> dict[str, Any]:
    """One LF's votes, documents gained by extension (with their source neighbour) and dev errors.

    Raises:
        KeyError: if there is no such LF.
    """
    if name not in session.lf_names:
        raise KeyError(name)
    j = session.lf_names.index(name)
    raw, extended = session.votes[:, j], result.labels.extended_votes[:, j]
    voted = np.flatnonzero(raw != ABSTAIN)
    gained_rows = np.flatnonzero((raw == ABSTAIN) & (extended != ABSTAIN))
    gained = []
    for i in gained_rows[:EXAMPLES]:
        source, similarity = _source_neighbour(session, int(i), raw)
        gained.append(_document(
            session, int(i), result, vote=class_name(session, int(extended[i])),
            source_id=str(session.ids[source]), source=document(session, source), similarity=round(similarity, 4),
            source_caption=rendering.neighbour_caption(str(session.ids[source]), similarity),
        ))  # fmt: skip
    dev = np.flatnonzero((session.eval_gold >= 0) & (raw != ABSTAIN))
    wrong = dev[raw[dev] != session.eval_gold[dev]]
    details = {
        "name": name,
        "threshold": _number(float(result.fitted.thresholds[j])),
        "votes_count": int(voted.size),
        "votes": [_document(session, int(i), result, vote=class_name(session, int(raw[i]))) for i in voted[:EXAMPLES]],
        "gained_count": int(gained_rows.size),
        "gained": gained,
        "errors_count": int(wrong.size),
        "dev_votes": int(dev.size),
        "errors": [
            _document(session, int(i), result, vote=class_name(session, int(raw[i])),
                      gold=class_name(session, int(session.eval_gold[i])))  # fmt: skip
            for i in wrong[:EXAMPLES]
        ],
        "failures": [
            {**failure, "text": f"{failure['id']}: {failure['message']}"}
            for failure in session.lf_failure_samples.get(name, [])
        ],
    }
    return {**details, "summary": rendering.lf_details_line(details)}


def search(session: Session, result: RelabelResult, query: str) -> dict[str, Any]:
    """Documents whose text contains ``query`` (case-insensitive), with their label and votes."""
    if not query:
        return {"query": query, "count": 0, "hits": [], "summary": "type a text to find"}
    hit = pc.match_substring(session.texts, query, ignore_case=True).to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(hit)
    hits = []
    for i in rows[:EXAMPLES * 2]:
        lfs = [name for name, vote in zip(session.lf_names, session.votes[i]) if vote != ABSTAIN]
        hits.append(_document(session, int(i), result, lfs=lfs))
    return {"query": query, "count": int(rows.size), "hits": hits,
            "summary": f"{int(rows.size)} documents contain {query!r}"}  # fmt: skip


def export(session: Session, result: RelabelResult, lf_path: str, directory: str) -> dict[str, str]:
    """Writes ``labels.parquet``, the LF file and ``report.html`` of the current state."""
    os.makedirs(directory, exist_ok=True)
    paths = {
        "labels": os.path.join(directory, "labels.parquet"),
        "labeling_functions": os.path.join(directory, os.path.basename(lf_path)),
        "report": os.path.join(directory, "report.html"),
    }
    write_labels(result, paths["labels"])
    shutil.copyfile(lf_path, paths["labeling_functions"])
    with open(paths["report"], "w", encoding="utf-8") as handle:
        handle.write(report_html(session, result))
    return paths


def studio_summary(session: Session, result: RelabelResult) -> dict[str, Any]:
    """The current state as a ``summary.json``-shaped dict, for :func:`pipelines.report.render_report`
    (the same LF table, plots and metrics as a pipeline run's report; dev metrics as ``epoxy``)."""
    fitted, n = result.fitted, len(session.ids)
    covered = int(result.labels.covered.sum())
    return {
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "class_names": [class_name(session, c) for c in range(session.config.cardinality)],
        "rows": {"documents": n, "labelled": n, "covered": covered,
                 "covered_before_extension": int(session.raw_stats.covered)},  # fmt: skip
        "coverage": {"before_extension": session.raw_stats.covered / max(n, 1), "after_extension": covered / max(n, 1)},
        "label_model": {
            "kind": fitted.label_model.kind,
            "class_balance": fitted.label_model.class_balance.tolist(),
            "end_model": fitted.end_model is not None,
            **end_model_choices(fitted),
        },
        "lfs": result.lf_table,
        "metrics": {split: {"epoxy": figures} for split, figures in result.metrics.items()},
        "lf_pairs": lf_pairs(fitted, session.raw_stats),
        "run": {"refit": result.refit, "relabel_seconds": round(result.seconds, 4)},
    }


def report_html(session: Session, result: RelabelResult) -> str:
    """``report.html`` of the current state: the pipeline's report of :func:`studio_summary`."""
    return render_report(studio_summary(session, result), ReportExtras(title="epoxy-beam studio: current state"))
