"""The dead-letter record: every input row that does not reach the labels ends here.

Stages emit :class:`DeadLetter` records on the tagged output :data:`DEAD_LETTER_TAG` and count
them with a Beam counter named ``<stage>/<cause>``; the pipeline writes them under
``OUTPUT/errors/`` and checks ``labels + dead letter == corpus rows + dev rows - dev rows merged``
(see ``docs/robustness.md``). Rows of ``--dev_input`` rejected while reading have the stage
``read_dev``; LF failure samples (``counts_as_input_row=False``) name their LF in ``lf``.
"""

from __future__ import annotations

from transforms.core.dead_letter import MAX_PAYLOAD_CHARS, DeadLetter, encodable, render_payload

__all__ = [
    "DEAD_LETTER_TAG", "MAX_PAYLOAD_CHARS", "METRICS_NAMESPACE", "DeadLetter", "encodable",
    "render_payload",
]  # fmt: skip

DEAD_LETTER_TAG = "dead_letter"
METRICS_NAMESPACE = "epoxy_beam"
