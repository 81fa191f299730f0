"""What the LF studio shows, as JSON-safe dicts computed from a :class:`~pipelines.iterate.Session`.

Plain functions of a session and its :class:`~pipelines.relabel_result.RelabelResult` (no web framework
here): the overview after an edit (:func:`overview`: LF table, dev metrics with the change from
the previous state, label distribution, documents whose label changed), one LF's examples
(:func:`lf_details`: votes, documents gained by extension with the neighbour they came from and
its similarity, errors on dev rows), a text search (:func:`search`) and the export
(:func:`export`: labels Parquet, the LF file, a ``report.html`` of the current state).
Document text leaves here as data; the page sets it with ``textContent`` and the report escapes it.
"""

from __future__ import annotations

import html
import math
import os
import shutil
from typing import Any

import numpy as np
import pyarrow.compute as pc

from pipelines.iterate import Session
from pipelines.relabel_result import RelabelResult, write_labels
from transforms.core.lfs import ABSTAIN

EXAMPLES = 8  # documents per list (votes, gained, errors, changed labels, search hits)


def _number(value: Any) -> Any:
    """JSON-safe: NaN and infinities become ``None``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def class_name(session: Session, label: int) -> str:
    """The class's name (``ABSTAIN`` for -1), or its number when the LF file names none."""
    if label == ABSTAIN:
        return "ABSTAIN"
    names = session.class_names
    return names[label] if 0 <= label < len(names) else str(label)


def _document(session: Session, row: int, result: RelabelResult, **extra: Any) -> dict[str, Any]:
    label = int(result.labels.label[row])
    return {
        "id": str(session.ids[row]),
        "text": session.texts[row].as_py(),
        "label": class_name(session, label),
        "prob": round(float(result.labels.probs[row, label]), 4),
        **extra,
    }


def overview(session: Session, result: RelabelResult, previous: RelabelResult | None) -> dict[str, Any]:
    """The LF table, dev metrics (+ delta), label distribution and changed-label samples."""
    table = [{key: _number(value) for key, value in row.items()} for row in result.lf_table]
    metrics = {}
    for split, figures in result.metrics.items():
        before = (previous.metrics if previous else {}).get(split, {})
        metrics[split] = {
            **figures,
            "delta_accuracy": figures["accuracy"] - before["accuracy"] if before else None,
            "delta_macro_f1": figures["macro_f1"] - before["macro_f1"] if before else None,
        }
    k = session.config.cardinality
    counts = np.bincount(result.labels.label, minlength=k)
    distribution = [
        {"class": class_name(session, c), "documents": int(counts[c])} for c in range(k)
    ]
    changed: list[dict[str, Any]] = []
    changed_count = 0
    if previous is not None and previous.labels.label.shape == result.labels.label.shape:
        rows = np.flatnonzero(previous.labels.label != result.labels.label)
        changed_count = int(rows.size)
        changed = [
            _document(session, int(i), result, before=class_name(session, int(previous.labels.label[i])))
            for i in rows[:EXAMPLES]
        ]
    return {
        "lf_table": table,
        "metrics": metrics,
        "distribution": distribution,
        "covered": round(float(result.labels.covered.mean()), 4),
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
            source_id=str(session.ids[source]), source_text=session.texts[source].as_py(),
            similarity=round(similarity, 4),
        ))  # fmt: skip
    dev = np.flatnonzero((session.eval_gold >= 0) & (raw != ABSTAIN))
    wrong = dev[raw[dev] != session.eval_gold[dev]]
    return {
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
        "failures": session.lf_failure_samples.get(name, []),
    }


def search(session: Session, result: RelabelResult, query: str) -> dict[str, Any]:
    """Documents whose text contains ``query`` (case-insensitive), with their label and votes."""
    if not query:
        return {"query": query, "count": 0, "hits": []}
    hit = pc.match_substring(session.texts, query, ignore_case=True).to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(hit)
    hits = []
    for i in rows[:EXAMPLES * 2]:
        lfs = [name for name, vote in zip(session.lf_names, session.votes[i]) if vote != ABSTAIN]
        hits.append(_document(session, int(i), result, lfs=lfs))
    return {"query": query, "count": int(rows.size), "hits": hits}


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


def report_html(session: Session, result: RelabelResult) -> str:
    """A self-contained HTML page of the LF table, dev metrics and label distribution."""
    view = overview(session, result, None)
    columns = ["name", "Polarity", "Coverage", "Extended Coverage", "Overlaps", "Conflicts",
               "Emp. Acc.", "Est. Acc.", "failures"]  # fmt: skip

    def cell(value: Any) -> str:
        text = f"{value:.3f}" if isinstance(value, float) else ("" if value is None else str(value))
        return f"<td>{html.escape(text, quote=True)}</td>"

    rows = "".join("<tr>" + "".join(cell(row.get(c)) for c in columns) + "</tr>" for row in view["lf_table"])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    metrics = "".join(
        f"<li>{html.escape(split)}: accuracy {m['accuracy']:.3f}, macro F1 {m['macro_f1']:.3f} (n={m['rows']})</li>"
        for split, m in view["metrics"].items()
    )
    distribution = "".join(
        f"<li>{html.escape(d['class'])}: {d['documents']}</li>" for d in view["distribution"]
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>epoxy-beam studio report</title>"
        "<style>body{font-family:sans-serif}td,th{border:1px solid #ccc;padding:2px 6px}"
        "table{border-collapse:collapse}</style></head><body><h1>LF studio: current state</h1>"
        f"<p>{view['documents']} documents, {view['covered']:.1%} covered after extension.</p>"
        f"<h2>Dev metrics</h2><ul>{metrics}</ul><h2>Labels</h2><ul>{distribution}</ul>"
        f"<h2>LFs</h2><table><tr>{head}</tr>{rows}</table></body></html>\n"
    )
