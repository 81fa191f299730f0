"""The run report: ``summary.json`` → one self-contained HTML page (inline SVG plots, no CDN).

:func:`render_report` is a pure function of the summary (no Beam, no files): the pipeline calls it
before the commit and writes ``report.html`` beside ``summary.json``; any other job that has a
summary (e.g. ``iterate``) calls it the same way::

    html = render_report(summary, ReportExtras(title="iterate: run 3"))

Plots (:mod:`pipelines.report_plots`) are drawn with matplotlib's object API and inlined as
SVG; how values, the LF table and documents look is :mod:`pipelines.rendering`'s; every text
that comes from data (LF names, class names, document texts, ids) is escaped.
"""

from __future__ import annotations

import dataclasses
import html
import json
from typing import Any, Mapping, Sequence

from pipelines.rendering import LF_COLUMNS, class_label, document_html, format_value, is_missing
from pipelines.report_plots import (
    plot_accuracy,
    plot_class_balance,
    plot_coverage,
    plot_lf_pairs,
    plot_section,
    plot_threshold_sweep,
)

REPORT_FILE = "report.html"
@dataclasses.dataclass(frozen=True)
class ReportExtras:
    """What the page shows besides the summary.

    Attributes:
        title: The page title.
        notes: Lines shown under the title (e.g. "re-labelled from the cache").
    """

    title: str = "epoxy-beam run report"
    notes: tuple[str, ...] = ()


def _e(value: Any) -> str:
    """HTML-escaped text of any value."""
    return html.escape(str(value), quote=True)


# (key of summary["rows"], label) of the run facts, shown when the summary has them.
_ROW_FACTS = (
    ("input", "input rows"),
    ("documents", "documents"),
    ("labelled", "labelled"),
    ("dead_letter", "dead letter"),
)


def _facts_table(summary: Mapping[str, Any]) -> str:
    options = summary.get("options", {})
    rows = summary["rows"]
    run = summary.get("run", {})
    facts: list[tuple[str, Any]] = []
    if "input" in options:
        facts += [("input", options["input"]), ("dev input files", options.get("dev_input") or "–")]
    facts += [(label, rows[key]) for key, label in _ROW_FACTS if key in rows]
    facts += [(f"dead letter: {cause}", count) for cause, count in rows.get("dead_letter_by_cause", {}).items()]
    if "accounted" in rows:
        facts.append(("every row accounted for", rows["accounted"]))
    facts += [
        ("covered before / after extension", f"{rows['covered_before_extension']} / {rows['covered']}"),
        *([("model", options["model"])] if "model" in options else []),
        *([("model fingerprint", summary["model_fingerprint"])] if "model_fingerprint" in summary else []),
        ("label model", summary["label_model"]["kind"]),
        ("end model", _end_model_fact(summary["label_model"])),
    ]
    known = {key for key, _ in _ROW_FACTS} | {
        "dead_letter_by_cause", "accounted", "covered", "covered_before_extension",
    }  # fmt: skip
    facts += [(key.replace("_", " "), value) for key, value in rows.items() if key not in known]
    facts += [(key.replace("_", " "), value) for key, value in run.items()]
    body = "".join(f"<tr><th>{_e(name)}</th><td>{_e(format_value(value))}</td></tr>" for name, value in facts)
    return f'<table id="run-facts" class="facts">{body}</table>'


def _stages_table(summary: Mapping[str, Any]) -> str:
    """Rows and timings per stage (seconds since the pipeline was built), when reported."""
    stages = summary.get("stages") or []
    if not stages:
        return ""
    head = "<tr><th>stage</th><th>rows</th><th>first output (s)</th><th>done (s)</th></tr>"
    body = "".join(
        f"<tr><td>{_e(s['stage'])}</td><td>{_e(format_value(s['rows']))}</td>"
        f"<td>{_e(format_value(s['first_s']))}</td><td>{_e(format_value(s['done_s']))}</td></tr>"
        for s in stages
    )
    return f'<table id="stages" class="facts">{head}{body}</table>'


def _lf_cell(lf: Mapping[str, Any], key: str, kind: str, class_names: Sequence[str]) -> str:
    """A cell: the shown text (:func:`~pipelines.rendering.format_value`) and, for sorting,
    ``data-value`` (the exact number, ``""`` when missing)."""
    shown = format_value(lf[key], kind, class_names)
    if kind in ("text", "classes"):
        return f'<td data-value="{_e(shown)}">{_e(shown)}</td>'
    if is_missing(lf[key]):
        return f'<td data-value="">{_e(shown)}</td>'
    return f'<td class="num" data-value="{_e(repr(lf[key]))}">{_e(shown)}</td>'


def _lf_table(summary: Mapping[str, Any]) -> str:
    class_names = summary["class_names"]
    head = "".join(
        f'<th data-key="{c.key}" data-kind="{c.kind}" title="click to sort">{_e(c.header)}</th>'
        for c in LF_COLUMNS
    )
    body = "".join(
        f'<tr data-lf="{_e(lf["lf"])}">'
        + "".join(_lf_cell(lf, c.key, c.kind, class_names) for c in LF_COLUMNS)
        + "</tr>"
        for lf in summary["lfs"]
    )
    return (
        f'<table id="lf-table" class="sortable"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


def _confusion(matrix: Sequence[Sequence[int]], class_names: Sequence[str]) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in class_names)
    body = "".join(
        f"<tr><th>{_e(class_names[i])}</th>" + "".join(f'<td class="num">{v}</td>' for v in row) + "</tr>"
        for i, row in enumerate(matrix)
    )
    return (
        f'<table class="confusion"><thead><tr><th>gold \\ predicted</th>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


def _metrics_section(summary: Mapping[str, Any]) -> str:
    metrics = summary.get("metrics") or {}
    if not metrics:
        return '<p class="missing">No dev labels: pass --dev_input and --label_field for metrics.</p>'
    class_names = summary["class_names"]
    parts = []
    for split, methods in metrics.items():
        rows = "".join(
            f'<tr data-method="{_e(name)}"><th>{_e(name)}</th>'
            f'<td class="num">{m["accuracy"]:.3f}</td><td class="num">{m["macro_f1"]:.3f}</td>'
            f'<td class="num">{m["rows"]}</td>'
            f"<td>{_confusion(m['confusion_matrix'], class_names) if 'confusion_matrix' in m else '–'}</td></tr>"
            for name, m in methods.items()
        )
        parts.append(
            f'<h3>{_e(split)} rows</h3><table class="metrics" data-split="{_e(split)}">'
            "<thead><tr><th>method</th><th>accuracy</th><th>macro F1</th><th>rows</th>"
            f"<th>confusion matrix</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    return "".join(parts)


def _example_item(entry: Mapping[str, Any], class_names: Sequence[str]) -> str:
    label = class_label(entry["vote"], class_names)
    text = f'<li class="example"><span class="vote">{_e(label)}</span> <code>{_e(entry["id"])}</code> '
    text += document_html(str(entry.get("text", "")))
    if "similarity" in entry:
        source = entry.get("source_id")
        text += (
            f'<div class="source">from neighbour <code>{_e(source if source else "unknown")}</code> '
            f"(cosine {entry['similarity']:.3f})"
        )
        if entry.get("source_text") is not None:
            text += " " + document_html(str(entry["source_text"]))
        text += "</div>"
    return text + "</li>"


def _examples_section(summary: Mapping[str, Any]) -> str:
    examples = summary.get("examples") or {}
    class_names = summary["class_names"]
    parts = []
    for name, kinds in examples.items():
        blocks = []
        for kind, title in (("voted", "voted on"), ("gained", "gained by extension")):
            items = "".join(_example_item(entry, class_names) for entry in kinds.get(kind, []))
            blocks.append(
                f'<div class="examples-{kind}"><h4>{title}</h4>'
                + (f"<ul>{items}</ul>" if items else '<p class="missing">none</p>')
                + "</div>"
            )
        parts.append(
            f'<details class="lf-examples" data-lf="{_e(name)}" open><summary>{_e(name)}</summary>'
            + "".join(blocks)
            + "</details>"
        )
    if not parts:
        return '<p class="missing">No examples were gathered.</p>'
    return "".join(parts)


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:1.5rem auto;max-width:1100px;
color:#1f2328;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.2rem;border-bottom:1px solid #d0d7de;padding-bottom:.2rem;
margin-top:2rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
th,td{border:1px solid #d0d7de;padding:.2rem .5rem;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}
table.sortable th{cursor:pointer;background:#f6f8fa;user-select:none}
table.sortable th.sorted-asc::after{content:" \\25B2"}table.sortable th.sorted-desc::after{content:" \\25BC"}
table.facts th{background:#f6f8fa;font-weight:600}
table.confusion{font-size:.75rem;margin:0}
figure.plot{margin:1rem 0}figure.plot svg{max-width:100%;height:auto}
figcaption{font-weight:600;margin-bottom:.3rem}
.missing{color:#656d76;font-style:italic}
details.lf-examples{margin:.4rem 0}details.lf-examples summary{cursor:pointer;font-weight:600}
li.example{margin:.3rem 0}.vote{background:#ddf4ff;border-radius:3px;padding:0 .3rem}
.source{color:#656d76;font-size:.85rem;margin-left:1.2rem}q.text{white-space:pre-wrap}img.thumbnail{height:3rem;image-rendering:pixelated;vertical-align:middle}
"""

# Sorts the LF table on a header click; "#sort=<key>:<asc|desc>" in the URL sorts on load.
_SCRIPT = """
(function () {
  "use strict";
  function sortTable(table, key, dir) {
    var headers = table.tHead.rows[0].cells, col = -1, kind = "text";
    for (var i = 0; i < headers.length; i++) {
      headers[i].classList.remove("sorted-asc", "sorted-desc");
      if (headers[i].dataset.key === key) { col = i; kind = headers[i].dataset.kind; }
    }
    if (col < 0) { return; }
    headers[col].classList.add(dir === "desc" ? "sorted-desc" : "sorted-asc");
    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
    var sign = dir === "desc" ? -1 : 1;
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.value, y = b.cells[col].dataset.value;
      if (x === "" || y === "") { return (x === "") - (y === ""); }
      if (kind === "share" || kind === "int") { return sign * (parseFloat(x) - parseFloat(y)); }
      return sign * x.localeCompare(y);
    });
    rows.forEach(function (row) { body.appendChild(row); });
    table.dataset.sortKey = key;
    table.dataset.sortDir = dir;
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      th.addEventListener("click", function () {
        var dir = table.dataset.sortKey === th.dataset.key && table.dataset.sortDir === "asc"
          ? "desc" : "asc";
        sortTable(table, th.dataset.key, dir);
      });
    });
  });
  var match = /^#sort=([a-z_]+):(asc|desc)$/.exec(window.location.hash);
  if (match) { sortTable(document.getElementById("lf-table"), match[1], match[2]); }
})();
"""


def render_report(summary: Mapping[str, Any], extras: ReportExtras | None = None) -> str:
    """Renders ``summary.json`` (as a dict) into one self-contained HTML page.

    Args:
        summary: A summary built by :func:`pipelines.summary.build_summary` (or read back from
            ``summary.json``); optional sections (metrics, sweep, confidence, examples) that are
            missing or empty are shown as a note.
        extras: The title and notes.

    Returns:
        The page: no external resource, scripts or styles; plots are inline SVG.
    """
    extras = extras or ReportExtras()
    coverage = summary["coverage"]
    notes = "".join(f'<p class="note">{_e(note)}</p>' for note in extras.notes)
    plots = "".join(
        [
            plot_section("plot-coverage", "Coverage per LF", lambda: plot_coverage(summary["lfs"]),
                          "no LFs"),
            plot_section("plot-accuracy", "Estimated vs empirical accuracy",
                          lambda: plot_accuracy(summary["lfs"]),
                          "No empirical accuracy (no LF voted on a dev row) or no estimated accuracy "
                          "(majority vote)."),
            plot_section("plot-threshold-sweep", "Extension threshold sweep",
                          lambda: plot_threshold_sweep(summary.get("threshold_sweep")),
                          "No threshold sweep: extension is off, or the sweep was not computed."),
            plot_section("plot-class-balance", "Class balance and confidence",
                          lambda: plot_class_balance(summary), ""),
            plot_section("plot-lf-pairs", "LF overlaps and conflicts",
                          lambda: plot_lf_pairs(summary["lf_pairs"]) if summary.get("lf_pairs")
                          else None, "No pairwise statistics in this summary."),
        ]
    )  # fmt: skip
    data = json.dumps(
        {"schema_version": summary.get("schema_version"), "lfs": [lf["lf"] for lf in summary["lfs"]]}
    ).replace("<", "\\u003c")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(extras.title)}</title><style>{_STYLE}</style></head>
<body>
<h1>{_e(extras.title)}</h1>{notes}
<p id="headline">{summary["rows"]["labelled"]} documents labelled; LF coverage
{coverage["before_extension"]:.1%} before extension, {coverage["after_extension"]:.1%} after.</p>
<h2>Run</h2>{_facts_table(summary)}{_stages_table(summary)}
<h2>Labeling functions</h2>{_lf_table(summary)}
<h2>Plots</h2>{plots}
<h2>Dev metrics</h2>{_metrics_section(summary)}
<h2>Examples</h2>{_examples_section(summary)}
<script type="application/json" id="report-data">{data}</script>
<script>{_SCRIPT}</script>
</body></html>
"""


def _end_model_fact(label_model: Mapping[str, Any]) -> str:
    """"gold weight 4, α 1.0, offsets […]" (or "none") for the run facts table."""
    if not label_model["end_model"]:
        return "none"
    weight = label_model.get("end_model_gold_weight")
    recipe = "tuning rows only" if weight == "inf" else f"weak labels + tuning rows ×{weight}"
    offsets = label_model.get("class_offsets")
    return (f"{recipe}, α {label_model.get('end_model_weight')}, metric "
            f"{label_model.get('metric')}, class offsets {offsets if offsets else 'none'}")
