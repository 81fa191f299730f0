"""Interactive LF iteration on the cached artifacts: edit an LF, see new labels and metrics.

A :class:`Session` loads a cache snapshot once (:func:`transforms.cache_snapshot.read_snapshot`:
documents, neighbour graph, vote columns, embeddings) and the LF file **the user names** (the
only code it runs; the LF source recorded in the cache is data). A cached vote column is reused
only when its LF's fingerprint (:func:`transforms.core.lfs.lf_fingerprint`) equals the one
recorded; every other LF is applied. Then, for an added, edited or removed LF:

1. applies **only that LF** (vectorised with pyarrow compute for :func:`transforms.keyword_lf` /
   :func:`transforms.regex_lf`, else row by row; failures abstain and are counted, as in the
   pipeline);
2. re-extends it: its nearest voters from the cached graph (one column), or, for an LF with at
   most the run's ``--fallback_max_voters`` voters, over all its voters (the pipeline's exact
   fallback, :func:`~transforms.core.knn_merge.exact_column_if_small`);
3. refits and labels every document, either

   * ``relabel(refit="full")``: the core's steps (:func:`~transforms.core.labeler.choose_thresholds`,
     statistics, :func:`~transforms.core.labeler.fit_models`) and
     :func:`~transforms.core.labeler.label_batch`; equal to a full ``weak_label`` run with the
     edited LF file over the same corpus; or
   * ``relabel(refit="fast")`` (the default once a full fit exists): the data-wide choices of
     the last full fit are pinned and only what the edited LFs change is recomputed
     (:class:`transforms.core.incremental_labeler.IncrementalLabeler`);
4. reports the LF table (corpus statistics before and after extension, dev accuracy,
   failures) and the dev metrics.

    session = Session.open("cache/", "my_lfs.py")
    session.set_lf(keyword_lf("has_free", ["free"], label=1))
    result = session.relabel(refit="full")
    print(result.format())

The vote columns the edits keep aligned live in :mod:`pipelines.vote_columns`; the CLI,
``epoxy-beam iterate --cache_dir cache/ --labeling_functions lfs.py [--labels_out F]``, in
:mod:`pipelines.iterate_cli`.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from pipelines.corpus_lfs import CorpusLfApplier
from pipelines.relabel_result import RelabelResult
from pipelines.vote_columns import VoteColumns, label_statistics
from transforms.cache_snapshot import read_snapshot
from transforms.core.analysis import lf_table
from transforms.core.extension import extend_votes
from transforms.core.incremental import ReverseGraph
from transforms.core.incremental_labeler import IncrementalLabeler, pinned_config
from transforms.core.labeler import (
    FitSample,
    FittedLabeler,
    LabelBatch,
    LabelerConfig,
    choose_thresholds,
    fit_models,
    label_batch,
    select_fit_sample,
)
from transforms.core.lfs import LabelingFunction, lf_fingerprint
from transforms.core.metrics import accuracy, macro_f1
from transforms.core.statistics import LabelStatistics
from transforms.labeling_functions import load_lf_set


class Session:
    """Cached per-document arrays plus the LF set; edits re-apply one LF and relabel.

    ``relabel(refit="full")`` runs the core's fit (equal to a pipeline run);
    ``relabel(refit="fast")`` (the default once a full fit exists) updates only what the edited
    LFs change and pins the data-wide choices of the last full fit (module doc).

    Attributes:
        columns: The :class:`~pipelines.vote_columns.VoteColumns` (votes, nearest voters and
            raw statistics, one column per LF).
        lf_failures: ``{lf name: rows it raised on or returned an invalid value for}``.
        lf_failure_samples: ``{lf name: [{"id", "cause", "message"}]}``, smallest ids first.
        cached_lf_source: The LF source recorded in the cache, for display only.
        applied_on_open: The LFs :meth:`open` applied (new or changed since the cache).
    """

    def __init__(
        self,
        *,
        ids: np.ndarray,
        texts: pa.Array,
        fields_json: Sequence[str] | None,
        gold: np.ndarray,
        eval_gold: np.ndarray,
        split: np.ndarray,
        neighbours: np.ndarray,
        sims: np.ndarray,
        embeddings: np.ndarray | None,
        lfs: Sequence[LabelingFunction],
        votes: np.ndarray,
        config: LabelerConfig,
        class_names: Sequence[str] = (),
        fallback_max_voters: int = 0,
        fallback_embeddings: np.ndarray | None = None,
    ):
        """Builds a session from aligned arrays (rows sorted by id).

        Args:
            ids: ``str [n]``.
            texts: The embedded texts (what LFs see as ``text``).
            fields_json: Each row's other fields as JSON (for row-wise LFs), or ``None``.
            gold: ``int [n]`` tuning labels (``-1`` = none).
            eval_gold: ``int [n]`` any known dev label (``-1`` = none), for metrics.
            split: ``str [n]`` ``corpus``, ``tune`` or ``holdout``.
            neighbours: ``int [n, kk]`` neighbour rows (``-1`` = none).
            sims: ``float32 [n, kk]`` their similarities (``-inf`` = none).
            embeddings: ``float32 [n, d]`` or ``None`` (no end model).
            lfs: The LF set.
            votes: ``int8 [n, m]`` the LFs' votes.
            config: The run's labeler configuration.
            class_names: The class names, for display.
            fallback_max_voters: The run's per-LF exact fallback bound (0 = off).
            fallback_embeddings: ``float32 [n, d]`` the vectors it searches (needed when on).
        """
        self.ids, self.texts = ids, texts
        self._applier = CorpusLfApplier(ids, texts, fields_json, config.cardinality)
        self.gold, self.eval_gold, self.split = gold, eval_gold, split
        self.neighbours = np.asarray(neighbours)
        self.graph = ReverseGraph.from_neighbours(neighbours, sims)
        self.embeddings = embeddings
        self.columns = VoteColumns(votes, self.graph, config.cardinality, fallback_max_voters, fallback_embeddings)
        self.config = config
        self.class_names = tuple(class_names)
        self.lfs = list(lfs)
        self._fingerprints = {lf.name: lf_fingerprint(lf) for lf in self.lfs}
        sample = select_fit_sample(ids, votes[:, :0], votes[:, :0], votes[:, :0], None, gold, config.sample_size)
        self._sample_rows = np.searchsorted(ids, sample.ids)
        self._dev_rows = np.flatnonzero(eval_gold >= 0)
        self._fast: IncrementalLabeler | None = None
        self.last_apply_seconds = 0.0
        self.lf_failures: dict[str, int] = {}
        self.lf_failure_samples: dict[str, list[dict[str, str]]] = {}
        self.cached_lf_source = ""
        self.applied_on_open: list[str] = []

    @property
    def votes(self) -> np.ndarray:
        """``int8 [n, m]`` the LFs' votes (column-major)."""
        return self.columns.votes

    @property
    def nn_sim(self) -> np.ndarray:
        """``float32 [n, m]`` each document's similarity to its nearest voter, per LF."""
        return self.columns.nn_sim

    @property
    def nn_vote(self) -> np.ndarray:
        """``int8 [n, m]`` that nearest voter's vote."""
        return self.columns.nn_vote

    @property
    def raw_stats(self) -> LabelStatistics | None:
        """The statistics of :attr:`votes`; ``None`` while the session has no LF (a cache whose
        every column is stale, or all removed)."""
        return self.columns.raw_stats

    @property
    def lf_names(self) -> list[str]:
        """The current LF names, in column order."""
        return [lf.name for lf in self.lfs]

    def fields(self, row: int) -> dict[str, Any]:
        """The other fields of document ``row`` (``{}`` when the cache holds none)."""
        return self._applier.fields(row)

    def fingerprint(self, name: str) -> str | None:
        """The fingerprint of the session's LF ``name`` (``None`` if there is none)."""
        return self._fingerprints.get(name)

    @classmethod
    def open(cls, cache_dir: str, labeling_functions: str) -> "Session":
        """Loads the latest snapshot under ``cache_dir`` with the LFs of the file the user names.

        Cached vote columns are reused for LFs whose fingerprint matches the recorded one; the
        others are applied (:attr:`applied_on_open`). Nothing read from the cache is executed.

        Raises:
            ValueError: if there is no usable snapshot or the LF file does not load.
        """
        snapshot = read_snapshot(cache_dir)
        lf_set = load_lf_set(labeling_functions)
        reused = [
            lf for lf in lf_set.lfs
            if lf.name in snapshot.votes and snapshot.lf_fingerprints.get(lf.name) == lf_fingerprint(lf)
        ]  # fmt: skip
        n = len(snapshot.ids)
        votes = np.stack([snapshot.votes[lf.name] for lf in reused], axis=1) if reused else np.empty((n, 0))
        config = snapshot.config
        session = cls(
            ids=snapshot.ids, texts=snapshot.texts, fields_json=snapshot.fields_json,
            gold=snapshot.gold, eval_gold=snapshot.eval_gold, split=snapshot.split,
            neighbours=snapshot.neighbours, sims=snapshot.sims,
            embeddings=snapshot.embeddings if config.end_model else None,
            lfs=reused, votes=votes, config=config, class_names=snapshot.class_names,
            fallback_max_voters=snapshot.fallback_max_voters, fallback_embeddings=snapshot.embeddings,
        )  # fmt: skip
        session.cached_lf_source = snapshot.lf_source
        session.applied_on_open, _ = session.sync(lf_set.lfs)
        return session

    def sync(self, lfs: Sequence[LabelingFunction]) -> tuple[list[str], list[str]]:
        """Makes the session's LF set ``lfs``: applies new or changed LFs, removes the others,
        takes their order. Returns ``(applied names, removed names)``."""
        changed, removed = changed_lfs(self, lfs)
        for name in removed:
            self.remove_lf(name)
        for lf in changed:
            self.set_lf(lf)
        self.reorder([lf.name for lf in lfs])
        return [lf.name for lf in changed], removed

    def apply(self, lf: LabelingFunction) -> np.ndarray:
        """One LF's votes over the corpus (vectorised when the LF has a vectorised form).

        Failures (the LF raised, or returned an invalid vote) abstain and are recorded in
        :attr:`lf_failures` / :attr:`lf_failure_samples`, as the pipeline counts them.
        """
        column = self._applier.apply(lf)
        if column.failures is not None:
            self.lf_failures[lf.name] = column.failures
            self.lf_failure_samples[lf.name] = list(column.failure_samples)
        return column.votes

    def set_lf(self, lf: LabelingFunction) -> None:
        """Adds ``lf`` (a new name: last column) or replaces the LF of the same name.

        Applies it (timed in ``last_apply_seconds``) and finds its nearest voters from the
        cached graph; :meth:`relabel` does the rest.
        """
        start = time.perf_counter()
        self.lf_failures.pop(lf.name, None)
        self.lf_failure_samples.pop(lf.name, None)
        column = self.apply(lf)
        self.last_apply_seconds = time.perf_counter() - start
        names = self.lf_names
        self._fingerprints[lf.name] = lf_fingerprint(lf)
        if lf.name in names:
            j = names.index(lf.name)
            self.lfs[j] = lf
        else:
            j = len(self.lfs)
            self.lfs.append(lf)
            if self._fast is not None:
                self._fast.append_lf()
        self.columns.write(j, column)
        if self._fast is not None:
            self._fast.dirty.add(j)

    def remove_lf(self, name: str) -> None:
        """Removes the LF called ``name``.

        Raises:
            ValueError: if there is no such LF.
        """
        if name not in self.lf_names:
            raise ValueError(f"no LF named {name!r}: the session's LFs are {self.lf_names}")
        j = self.lf_names.index(name)
        del self.lfs[j]
        del self._fingerprints[name]
        self.lf_failures.pop(name, None)
        self.lf_failure_samples.pop(name, None)
        self.columns.delete(j)
        if self._fast is not None:
            self._fast = self._fast.drop_lf(j) if self.lfs else None

    def reorder(self, names: Sequence[str]) -> None:
        """Puts the LF columns in the order of ``names`` (the LF file's order).

        Raises:
            ValueError: if ``names`` are not exactly the session's LF names.
        """
        if sorted(names) != sorted(self.lf_names):
            raise ValueError(f"cannot reorder LFs {self.lf_names} as {list(names)}: the names differ")
        order = [self.lf_names.index(name) for name in names]
        if order == list(range(len(order))):
            return
        self.lfs = [self.lfs[j] for j in order]
        self.columns.reorder(order)
        if self._fast is not None:
            self._fast.reorder(order)

    def relabel(self, refit: str = "fast") -> RelabelResult:
        """Refits and labels every document.

        Args:
            refit: ``"full"``: the core's fit, every step (equal to a pipeline run with the
                session's LF file). ``"fast"``: the thresholds' quantile level, the label
                model's kind and the end model (weights, blend weight and class offsets) are
                pinned to the last full fit; only the edited LFs' thresholds and extended
                columns, the statistics rows they change, the label model (closed form, from
                the statistics) and the scores are recomputed. Without a previous full fit
                (or if its thresholds match no candidate quantile level) ``"fast"`` runs
                ``"full"``; :attr:`RelabelResult.refit` says which ran.

        Raises:
            ValueError: if ``refit`` is neither ``"fast"`` nor ``"full"``, or there is no LF.
        """
        if refit not in ("fast", "full"):
            raise ValueError(f"refit={refit!r} is unknown: use 'fast' or 'full'")
        if not self.lfs:
            raise ValueError("the session has no LF: add one with set_lf (or to the LF file)")
        start = time.perf_counter()
        if refit == "fast" and self._fast is not None:
            fitted, labels, stats = self._relabel_fast()
        else:
            refit = "full"
            fitted, labels, stats = self._relabel_full()
        dev = self._dev_rows
        table = lf_table(
            self.lf_names, self.raw_stats, stats, label_model=fitted.label_model,
            thresholds=fitted.thresholds, gold_votes=self.votes[dev], gold=self.eval_gold[dev],
            failures=self.lf_failures,
        )  # fmt: skip
        metrics = self._metrics(labels.label)
        return RelabelResult(self.ids, labels, fitted, table, metrics, time.perf_counter() - start, refit)

    def _sample(self, rows: np.ndarray, with_embeddings: bool) -> FitSample:
        embeddings = self.embeddings[rows] if with_embeddings and self.embeddings is not None else None
        return FitSample(
            ids=self.ids[rows], votes=self.votes[rows], nn_sim=self.nn_sim[rows],
            nn_vote=self.nn_vote[rows], embeddings=embeddings, gold=self.gold[rows],
        )  # fmt: skip

    def _relabel_full(self) -> tuple[FittedLabeler, LabelBatch, LabelStatistics]:
        """The core's fit: thresholds, statistics of the extended votes, :func:`fit_models`."""
        config = self.config
        sample = self._sample(self._sample_rows, with_embeddings=True)
        thresholds = choose_thresholds(sample, config)
        extended = np.asfortranarray(extend_votes(self.votes, self.nn_sim, self.nn_vote, thresholds))
        stats = label_statistics(extended, config.cardinality)
        fitted = fit_models(self.lf_names, config, sample, thresholds, stats)
        labels = label_batch(fitted, self.votes, self.nn_sim, self.nn_vote, self.embeddings)
        end_model = fitted.end_model
        end_probs = None
        if end_model is not None and self.embeddings is not None:
            end_probs = end_model.predict_proba(self.embeddings)
        pinned = pinned_config(config, sample, thresholds, fitted.label_model)
        self._fast = None if pinned is None else IncrementalLabeler(
            config=pinned, thresholds=thresholds.copy(), extended=extended, stats=stats,
            end_model=end_model, end_probs=end_probs,
        )  # fmt: skip
        return fitted, labels, stats

    def _relabel_fast(self) -> tuple[FittedLabeler, LabelBatch, LabelStatistics]:
        """The incremental refit (see :meth:`relabel`): the label model by :func:`fit_models`'s
        own label-model step, the pinned end model."""
        fast = self._fast
        for j in sorted(fast.dirty):
            fast.update_column(j, self.votes[:, j], self.nn_sim[:, j], self.nn_vote[:, j], self._sample_rows)
        fast.dirty.clear()
        no_end_model = dataclasses.replace(fast.config, end_model=False)
        # The whole sample's own votes (not only its gold rows): the exception pairs come from them.
        fitted = fit_models(
            self.lf_names, no_end_model, self._sample(self._sample_rows, False), fast.thresholds.copy(), fast.stats
        )
        fitted = dataclasses.replace(fitted, end_model=fast.end_model, config=fast.config)
        return fitted, fast.labels(fitted.label_model), fast.stats

    def _metrics(self, predicted: np.ndarray) -> dict[str, dict[str, float]]:
        out = {}
        rows = self._dev_rows
        for split in ("tune", "holdout"):
            chosen = rows[self.split[rows] == split]
            if chosen.size:
                gold, pred = self.eval_gold[chosen], predicted[chosen]
                out[split] = {
                    "accuracy": accuracy(gold, pred),
                    "macro_f1": macro_f1(gold, pred, self.config.cardinality),
                    "rows": int(chosen.size),
                }
        return out


def changed_lfs(session: Session, lfs: Sequence[LabelingFunction]) -> tuple[list[LabelingFunction], list[str]]:
    """The LFs of ``lfs`` that are new or differ from the session's, and the names to remove."""
    wanted = {lf.name for lf in lfs}
    changed = [lf for lf in lfs if session.fingerprint(lf.name) != lf_fingerprint(lf)]
    return changed, [name for name in session.lf_names if name not in wanted]
