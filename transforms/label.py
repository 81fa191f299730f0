"""The fit and label stages: thin Beam wrappers around :mod:`transforms.core.labeler`.

Each document flows as a *record*: a dict with ``id``, ``split``, ``gold`` (tuning label or -1),
``votes`` ``int8 [m]``, ``nn_sim`` ``float32 [m]``, ``nn_vote`` ``int8 [m]``, ``nn_source``
``uint64 [m]`` (optional, for the report's examples) and ``embedding`` ``float32 [d]``, each
array as raw bytes (:mod:`transforms.core.record_arrays`). The fit runs the core's steps in
the core's order (see
:func:`transforms.core.labeler.fit_labeler`): a bounded sample → thresholds → statistics of the
extended votes over the whole corpus (one CombineFn pass) → label model → end model. Only the
sample, the thresholds, the statistics and the fitted labeler are singletons; all are small.
"""

from __future__ import annotations

import functools
from typing import Any, Iterator, Mapping, Sequence

import apache_beam as beam
import numpy as np

from transforms.core.extension import extend_votes
from transforms.core.fit_sample_accumulator import FitSampleAccumulator
from transforms.core.record_arrays import array_field, stacked_field
from transforms.core.labeler import (
    FitSample,
    FittedLabeler,
    LabelerConfig,
    choose_thresholds,
    fit_models,
    label_batch,
)
from transforms.core.statistics import LabelStatistics
from transforms.core.votes import ABSTAIN
from transforms.report_inputs import SelectExamples
from transforms.statistics import BatchedArrayCombineFn

Record = Mapping[str, Any]


def records_sample(records: Sequence[Record]) -> FitSample:
    """The records' columns as a :class:`FitSample` (one batch of the sample's combiner)."""
    return FitSample(
        ids=np.array([record["id"] for record in records], dtype=str),
        votes=stacked_field(records, "votes"),
        nn_sim=stacked_field(records, "nn_sim"),
        nn_vote=stacked_field(records, "nn_vote"),
        embeddings=stacked_field(records, "embedding"),
        gold=np.array([record["gold"] for record in records], dtype=np.int64),
    )


def add_records(accumulator: FitSampleAccumulator, records: list[Record]) -> None:
    """The sample combiner's ``add_rows``: one columnar add of the buffered records."""
    accumulator.add(records_sample(records))


def sample_combine_fn(sample_size: int) -> BatchedArrayCombineFn:
    """The CombineFn of the fit sample: every gold row + the ``sample_size`` rows of smallest
    :func:`~transforms.core.labeler.sample_priority` (:class:`FitSampleAccumulator`)."""
    return BatchedArrayCombineFn(
        functools.partial(FitSampleAccumulator.empty, sample_size),
        add_rows=add_records,
        finish=FitSampleAccumulator.finish,
    )


def statistics_combine_fn(num_lfs: int, cardinality: int) -> BatchedArrayCombineFn:
    """The CombineFn for :class:`LabelStatistics` of ``int8 [m]`` vote rows."""
    return BatchedArrayCombineFn(functools.partial(LabelStatistics.empty, num_lfs, cardinality))


def extend_record(record: Record, thresholds: np.ndarray) -> np.ndarray:
    """One record's extended votes ``int8 [m]``."""
    return extend_votes(
        array_field(record, "votes")[np.newaxis],
        array_field(record, "nn_sim")[np.newaxis],
        array_field(record, "nn_vote")[np.newaxis],
        thresholds,
    )[0]


class FitLabeler(beam.PTransform):
    """Records → tagged singletons ``sample``, ``thresholds``, ``stats``, ``raw_stats``, ``fitted``
    and ``examples`` (the run report's example documents, see :class:`SelectExamples`)."""

    def __init__(self, lf_names: Sequence[str], config: LabelerConfig):
        super().__init__()
        self._lf_names = tuple(lf_names)
        self._config = config

    def expand(self, records: beam.PCollection) -> dict[str, beam.PCollection]:
        config = self._config
        m, k = len(self._lf_names), config.cardinality
        sample = records | "GatherSample" >> beam.CombineGlobally(sample_combine_fn(config.sample_size))
        thresholds = sample | "ChooseThresholds" >> beam.Map(choose_thresholds, config)
        stats = (
            records
            | "Extend"
            >> beam.Map(extend_record, thresholds=beam.pvalue.AsSingleton(thresholds))
            | "ExtendedStatistics" >> beam.CombineGlobally(statistics_combine_fn(m, k))
        )
        raw_stats = (
            records
            | "RawVotes" >> beam.Map(array_field, "votes")
            | "RawStatistics" >> beam.CombineGlobally(statistics_combine_fn(m, k))
        )
        fitted = (
            records.pipeline
            | "FitSeed" >> beam.Create([None])
            | "FitModels"
            >> beam.Map(
                lambda _, sample, thresholds, stats: fit_models(
                    self._lf_names, config, sample, thresholds, stats
                ),
                sample=beam.pvalue.AsSingleton(sample),
                thresholds=beam.pvalue.AsSingleton(thresholds),
                stats=beam.pvalue.AsSingleton(stats),
            )
        )
        return {
            "sample": sample,
            "thresholds": thresholds,
            "stats": stats,
            "raw_stats": raw_stats,
            "fitted": fitted,
            "examples": records | "SelectExamples" >> SelectExamples(thresholds),
        }


def label_rows(
    fitted: FittedLabeler, records: Sequence[Record], class_names: Sequence[str]
) -> list[dict[str, Any]]:
    """Labels records with :func:`label_batch` and renders the labels table's rows."""
    votes = stacked_field(records, "votes")
    batch = label_batch(
        fitted,
        votes,
        stacked_field(records, "nn_sim"),
        stacked_field(records, "nn_vote"),
        stacked_field(records, "embedding"),
    )
    rows = []
    for i, record in enumerate(records):
        label = int(batch.label[i])
        rows.append(
            {
                "id": record["id"],
                "label": label,
                "label_name": class_names[label] if label < len(class_names) else str(label),
                "confidence": float(batch.probs[i, label]),
                "probs": batch.probs[i].astype(np.float32).tolist(),
                "covered": bool(batch.covered[i]),
                "num_votes": int(np.sum(votes[i] != ABSTAIN)),
                "num_votes_extended": int(np.sum(batch.extended_votes[i] != ABSTAIN)),
                "votes": votes[i].tolist(),
                "extended_votes": batch.extended_votes[i].tolist(),
                "split": record["split"],
                "gold": record.get("eval_gold"),
            }
        )
    return rows


class LabelDocumentsFn(beam.DoFn):
    """Batches of records → label rows, with the fitted labeler as a side input."""

    def __init__(self, class_names: Sequence[str]):
        self._class_names = tuple(class_names)

    def process(
        self, records: Sequence[Record], fitted: FittedLabeler
    ) -> Iterator[dict[str, Any]]:
        yield from label_rows(fitted, records, self._class_names)


class LabelDocuments(beam.PTransform):
    """Records + the fitted labeler (singleton) → rows of the labels table."""

    def __init__(self, fitted: beam.PCollection, class_names: Sequence[str], batch_size: int = 2048):
        super().__init__()
        self._fitted = fitted
        self._class_names = class_names
        self._batch_size = batch_size

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        return (
            records
            | "BatchRecords"
            >> beam.BatchElements(min_batch_size=1, max_batch_size=self._batch_size)
            | "Label"
            >> beam.ParDo(
                LabelDocumentsFn(self._class_names),
                fitted=beam.pvalue.AsSingleton(self._fitted),
            )
        )
