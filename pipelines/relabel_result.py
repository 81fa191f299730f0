"""What an iterate relabel returns: labels of every document, the LF table and dev metrics."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.rendering import failures_line, lf_table_text, metrics_line
from transforms.core.labeler import FittedLabeler, LabelBatch


@dataclasses.dataclass(frozen=True)
class RelabelResult:
    """What :meth:`pipelines.iterate.Session.relabel` returns.

    Attributes:
        ids: ``str [n]`` document ids (sorted).
        labels: The :class:`~transforms.core.labeler.LabelBatch` of every document (after a
            fast refit its ``extended_votes`` is the session's own array, updated in place by
            later edits: copy it to keep it).
        fitted: The fitted labeler (``label_batch(fitted, ...)`` reproduces ``labels``).
        lf_table: One row per LF (:func:`transforms.core.analysis.lf_table` of the corpus
            votes before and after extension, the dev rows and the failures).
        metrics: ``{split: {"accuracy", "macro_f1", "rows"}}`` of the final labels on dev rows.
        seconds: Time of the relabel (after the LF was applied), LF table and metrics included.
        refit: ``"fast"`` or ``"full"``: which refit ran.
    """

    ids: np.ndarray
    labels: LabelBatch
    fitted: FittedLabeler
    lf_table: list[dict[str, Any]]
    metrics: dict[str, dict[str, float]]
    seconds: float
    refit: str = "full"

    def format(self) -> str:
        """The LF table, LF failures and the dev metrics as text (:mod:`pipelines.rendering`)."""
        lines = [lf_table_text(self.lf_table)]
        failures = failures_line(self.lf_table, "")
        lines += [failures] if failures else []
        lines += [metrics_line(split, figures) for split, figures in self.metrics.items()]
        lines.append(f"relabelled {len(self.ids)} documents in {self.seconds:.3f}s ({self.refit} refit)")
        return "\n".join(lines)


def write_labels(result: RelabelResult, path: str) -> None:
    """Writes ``id``, ``label``, ``probs`` of every document to the Parquet file ``path``."""
    table = pa.table({"id": result.ids, "label": result.labels.label.astype(np.int32),
                      "probs": list(result.labels.probs)})  # fmt: skip
    pq.write_table(table, path)
