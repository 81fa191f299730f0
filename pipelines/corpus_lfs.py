"""One LF applied over every document of an iterate session's corpus.

:class:`CorpusLfApplier` holds the corpus columns an LF reads (ids, texts, other fields) and
applies one LF at a time: vectorised with pyarrow compute when the LF has a vectorised form
(:func:`transforms.keyword_lf`, :func:`transforms.regex_lf`), else row by row through the
pipeline's one per-row applier (:func:`transforms.core.votes.apply_lfs`), where a failure
abstains and is counted as the pipeline counts it.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms.core.document import lf_row
from transforms.core.lfs import VOTE_DTYPE, LabelingFunction
from transforms.core.votes import apply_lfs

# As the pipeline's --max_failure_samples_per_lf default: failures kept per LF, smallest id first.
MAX_FAILURE_SAMPLES = 20


@dataclasses.dataclass(frozen=True)
class AppliedColumn:
    """One LF's votes over the corpus and its failures.

    Attributes:
        votes: ``int8 [n]``.
        failures: Rows where the LF raised or returned an invalid vote (they abstain);
            ``None`` for a vectorised LF (its compute kernels vote on every row).
        failure_samples: Up to :data:`MAX_FAILURE_SAMPLES` ``{"id", "cause", "message"}``.
    """

    votes: np.ndarray
    failures: int | None = None
    failure_samples: tuple[dict[str, str], ...] = ()


class CorpusLfApplier:
    """Applies LFs to the corpus of a session (rows sorted by id)."""

    def __init__(self, ids: np.ndarray, texts: pa.Array, fields_json: pa.Array | None, cardinality: int):
        """Args:
            ids: ``str [n]``.
            texts: The embedded texts (what LFs see as ``text``).
            fields_json: Each row's other fields as JSON (for row-wise LFs), or ``None``.
            cardinality: Number of classes (a vote outside ``-1..cardinality-1`` is a failure).
        """
        self.ids, self.texts, self._fields_json = ids, texts, fields_json
        self.cardinality = cardinality
        self._lower_texts: pa.Array | None = None

    def fields(self, row: int) -> dict[str, Any]:
        """The other fields of document ``row`` (``{}`` when the corpus has none)."""
        return json.loads(self._fields_json[row]) if self._fields_json else {}

    def apply(self, lf: LabelingFunction) -> AppliedColumn:
        """``lf``'s votes over the corpus (vectorised when the LF has a vectorised form)."""
        if getattr(lf, "vectorised_lower", None) is not None:
            if self._lower_texts is None:
                self._lower_texts = pc.utf8_lower(self.texts)  # once: every keyword edit reuses it
            return AppliedColumn(np.asarray(lf.vectorised_lower(self._lower_texts), VOTE_DTYPE))
        vectorised = getattr(lf, "vectorised", None)
        if vectorised is not None:
            return AppliedColumn(np.asarray(vectorised(self.texts), VOTE_DTYPE))
        texts = self.texts.to_pylist()
        out = np.empty(len(texts), VOTE_DTYPE)
        count, samples = 0, []
        for i, (doc_id, text) in enumerate(zip(self.ids, texts)):
            row = lf_row({"id": str(doc_id), "text": text, "fields": self.fields(i)})
            votes, failures = apply_lfs([lf], row, self.cardinality)
            out[i] = votes[0]
            count += len(failures)
            if failures and len(samples) < MAX_FAILURE_SAMPLES:
                samples.append({"id": str(doc_id), "cause": failures[0].cause, "message": failures[0].message})
        return AppliedColumn(out, count, tuple(samples))
