"""The weak-labeling job: ``run(argv)`` = parse → preflight → ``build_pipeline`` → run.

    python -m pipelines.weak_label --input 'corpus/*.parquet' --output out/ \\
        --labeling_functions my_lfs.py --runner=FnApiRunner

Preflight checks everything that can be checked before a worker starts (the LF file imports and
defines LFs with unique names, the inputs match readable files, the model loads and returns
vectors, the output is writable) and fails with a message that names the bad value and the fix.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import uuid
from typing import Any, Sequence

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.options import WeakLabelOptions, parse_options
from pipelines.outputs import write_outputs
from pipelines.summary import format_summary
from transforms.apply_lfs import LF_FAILURES_TAG, VOTES_TAG, ApplyLFs, VoteSource
from transforms.cache import CachePlan, EmbedWithCache, GraphWithCache, WriteCache
from transforms.core.artifacts import text_hash
from transforms.core.labeler import LabelerConfig
from transforms.core.lfs import lf_fingerprint
from transforms.dead_letter import DEAD_LETTER_TAG
from transforms.documents import AttachGold, JoinRecords, embed_input
from transforms.embed import EmbedConfig, EmbedTexts, preflight_model
from transforms.extend import NearestVoters
from transforms.io import DOCUMENTS_TAG, CorpusSource, ReadCorpus, preflight_source
from transforms.knn_graph import NeighbourGraph
from transforms.label import FitLabeler, LabelDocuments
from transforms.labeling_functions import LFSet, lf_names_for_votes, load_lf_set
from transforms.models.fingerprint import model_fingerprint
from transforms.neighbours import NeighbourConfig

MAX_DEV_ROWS_CHECKED = 100_000  # dev rows read by preflight to check the label field


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """What preflight resolved: everything ``build_pipeline`` needs besides the options.

    Attributes:
        options: The job's options.
        lf_set: The loaded LF set, or ``None`` with only a votes column.
        lf_names: The names of all vote columns (LFs first, then the votes field's).
        class_names: The class names (``"0"``, ``"1"``, ... when none were given).
        embedding_dim: The model's output dimension.
        model_fingerprint: The model's fingerprint (keys the embedding cache).
        run_id: A unique id for this run (staging and index directories).
    """

    options: WeakLabelOptions
    lf_set: LFSet | None
    lf_names: tuple[str, ...]
    class_names: tuple[str, ...]
    embedding_dim: int
    model_fingerprint: str
    run_id: str

    @property
    def cardinality(self) -> int:
        """The number of classes."""
        return len(self.class_names)

    @property
    def staging_dir(self) -> str:
        """Where outputs are written before the final commit."""
        return FileSystems.join(self.options.output, f"_staging-{self.run_id}")

    def corpus_source(self) -> CorpusSource:
        """The ``--input`` source."""
        return self._source(self.options.input, label_field=None, split="corpus")

    def dev_source(self) -> CorpusSource | None:
        """The ``--dev_input`` source, or ``None``."""
        if not self.options.dev_input:
            return None
        return self._source(self.options.dev_input, label_field=self.options.label_field, split="dev")

    def _source(self, pattern: str, label_field: str | None, split: str) -> CorpusSource:
        opts = self.options
        class_names = self.class_names if opts.class_names or self.lf_set else ()
        return CorpusSource(
            pattern=pattern,
            format=opts.input_format,
            id_field=opts.id_field or None,
            text_field=opts.text_field,
            text_template=opts.text_template or None,
            label_field=label_field,
            class_names=tuple(class_names),
            max_text_chars=opts.max_text_chars,
            split=split,
        )

    def vote_source(self) -> VoteSource:
        """Where the votes come from."""
        num_lfs = len(self.lf_set.lfs) if self.lf_set else 0
        return VoteSource.from_lf_set(
            self.lf_set,
            self.options.votes_field,
            len(self.lf_names) - num_lfs,
            self.cardinality,
        )

    def labeler_config(self) -> LabelerConfig:
        """The core's fit configuration."""
        opts = self.options
        return LabelerConfig(
            cardinality=self.cardinality,
            label_model=opts.label_model,
            extension=opts.extension,
            thresholds=opts.thresholds,
            end_model=opts.end_model,
            sample_size=opts.sample_size,
            num_neighbours=opts.num_neighbours,
            seed=opts.seed,
        )


def preflight(options: WeakLabelOptions) -> RunPlan:
    """Checks the options against the world before any pipeline is built.

    Raises:
        ValueError: naming the bad value, the rule it broke and the fix.
    """
    if not options.labeling_functions and not options.votes_field:
        raise ValueError(
            "no votes: pass --labeling_functions (a .py file of @labeling_function LFs) "
            "and/or --votes_field (a column of precomputed vote lists)"
        )
    if not 0.0 <= options.holdout_fraction < 1.0:
        raise ValueError(
            f"--holdout_fraction={options.holdout_fraction} must be in [0, 1): the share of dev "
            "rows kept out of tuning"
        )
    _check_numbers(options)
    lf_set = load_lf_set(options.labeling_functions) if options.labeling_functions else None
    class_names = _class_names(options, lf_set)
    probe = RunPlan(options, lf_set, (), class_names, 0, "", "")
    preflight_source(probe.corpus_source())
    dev = probe.dev_source()
    if dev is not None:
        preflight_source(dev)
        _check_dev_labels(dev, class_names)
    lf_names = tuple(lf_set.names if lf_set else ())
    if options.votes_field:
        width = _votes_width(probe.corpus_source(), options.votes_field)
        lf_names += tuple(lf_names_for_votes(width, options.lf_name_list))
    if len(set(lf_names)) != len(lf_names):
        raise ValueError(
            f"LF names {list(lf_names)} repeat a name: rename the LFs or pass distinct --lf_names"
        )
    embedding_dim = preflight_model(options.model)
    _check_writable(options.output)
    if options.cache_dir:
        _check_writable(options.cache_dir)
    return RunPlan(
        options=options,
        lf_set=lf_set,
        lf_names=lf_names,
        class_names=class_names,
        embedding_dim=embedding_dim,
        model_fingerprint=model_fingerprint(options.model),
        run_id=uuid.uuid4().hex[:12],
    )


def _check_numbers(options: WeakLabelOptions) -> None:
    """Rejects numeric options outside their range, naming the option and the range."""
    if not 0.0 <= options.max_lf_failure_rate <= 1.0:
        raise ValueError(
            f"--max_lf_failure_rate={options.max_lf_failure_rate} must be in [0, 1]: the share of "
            "documents an LF may fail on before the run fails"
        )
    for name in (
        "num_neighbours", "num_shards", "sample_size", "max_text_chars", "partition_rows", "spill"
    ):
        if getattr(options, name) < 1:
            raise ValueError(f"--{name}={getattr(options, name)} must be at least 1")


def _class_names(options: WeakLabelOptions, lf_set: LFSet | None) -> tuple[str, ...]:
    file_names = lf_set.class_names if lf_set else ()
    if options.class_name_list and file_names and tuple(options.class_name_list) != file_names:
        raise ValueError(
            f"--class_names {options.class_name_list} differ from CLASS_NAMES "
            f"{list(file_names)} in --labeling_functions {lf_set.spec!r}: make them agree, or "
            "drop --class_names"
        )
    names = tuple(options.class_name_list) or file_names
    if options.cardinality and names and len(names) != options.cardinality:
        origin = "--class_names" if options.class_name_list else f"CLASS_NAMES of {lf_set.spec!r}"
        raise ValueError(
            f"--cardinality={options.cardinality} but {origin} lists {len(names)} class names "
            f"{list(names)}: give one name per class, or drop --cardinality"
        )
    if names:
        return names
    cardinality = options.cardinality or 2
    if cardinality < 2:
        raise ValueError(f"--cardinality={cardinality} is invalid: a task has at least 2 classes")
    return tuple(str(c) for c in range(cardinality))


def _check_dev_labels(dev: CorpusSource, class_names: tuple[str, ...]) -> None:
    """Reads the dev rows and fails when no row has the label field or a label is no class.

    A label that is a class id or name outside ``class_names`` means the task's cardinality is
    wrong, so the run stops here; a garbled label in one row (not a number or a name) is left to
    the read stage, which dead-letters the row as ``bad_label``. At most
    :data:`MAX_DEV_ROWS_CHECKED` rows are read.
    """
    from transforms.io import parse_file, parse_label

    label_field = str(dev.label_field)
    probe = dataclasses.replace(dev, label_field=None)
    rows = labelled = 0
    fields_seen: set[str] = set()
    for path in preflight_source(probe):
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as stream:
            for item in parse_file(path, stream, probe):
                if not isinstance(item, dict):
                    continue
                rows += 1
                fields_seen.update(item["fields"])
                value = item["fields"].get(label_field)
                labelled += value is not None
                _, problem = parse_label(value, class_names)
                numeric = isinstance(value, int) or str(value).strip().lstrip("-").isdigit()
                if value is not None and problem and numeric:
                    raise ValueError(
                        f"--dev_input row {item['source']}: {label_field!r} = {value!r} is not one "
                        f"of the {len(class_names)} classes {list(class_names)}: pass "
                        "--cardinality / --class_names for every class, or fix the label"
                    )
                if rows >= MAX_DEV_ROWS_CHECKED:
                    break
    if rows and not labelled:
        raise ValueError(
            f"--dev_input {dev.pattern!r} has no value in field {label_field!r} in any of its "
            f"{rows} rows (fields: {sorted(fields_seen)}): set --label_field to the gold label "
            "column"
        )


def _votes_width(source: CorpusSource, votes_field: str) -> int:
    from transforms.io import parse_file

    for path in preflight_source(source):
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as stream:
            for item in parse_file(path, stream, source):
                if isinstance(item, dict) and votes_field in item["fields"]:
                    values = item["fields"][votes_field]
                    if isinstance(values, list):
                        return len(values)
    raise ValueError(
        f"--votes_field {votes_field!r} is in no row of {source.pattern!r}: name the column "
        "holding each row's list of votes"
    )


def _check_writable(directory: str) -> None:
    probe = FileSystems.join(directory, f"_write_check-{uuid.uuid4().hex[:8]}")
    try:
        if "://" not in directory and not FileSystems.exists(directory):
            FileSystems.mkdirs(directory)
        with FileSystems.create(probe) as handle:
            handle.write(b"ok")
        FileSystems.delete([probe])
    except (OSError, IOError, ValueError) as error:
        raise ValueError(
            f"directory {directory!r} is not writable ({error}); pass a directory you can write "
            "to (local, or gs:// with apache-beam[gcp] installed)"
        ) from None


def cache_plan(plan: RunPlan, neighbour_config: NeighbourConfig) -> CachePlan | None:
    """The ``--cache_dir`` entries usable by this run (``None`` without a cache)."""
    if not plan.options.cache_dir:
        return None
    return CachePlan.resolve(
        plan.options.cache_dir,
        plan.run_id,
        plan.model_fingerprint,
        plan.embedding_dim,
        neighbour_config,
        plan.options.num_shards,
    )


def snapshot_metadata(plan: RunPlan) -> dict[str, Any]:
    """What the ``iterate`` session needs besides the tables: options, LFs, classes, config."""
    return {
        "options": dataclasses.asdict(plan.options),
        "lf_names": list(plan.lf_names),
        "lf_spec": plan.lf_set.spec if plan.lf_set else "",
        "lf_source": plan.lf_set.source if plan.lf_set else "",  # data, for display only
        # iterate reuses a cached vote column only for an LF of the same fingerprint.
        "lf_fingerprints": {lf.name: lf_fingerprint(lf) for lf in plan.lf_set.lfs} if plan.lf_set else {},
        "class_names": list(plan.class_names),
        "labeler_config": dataclasses.asdict(plan.labeler_config()),
    }


def build_pipeline(pipeline: beam.Pipeline, plan: RunPlan) -> None:
    """Adds every stage of the job to ``pipeline``."""
    opts = plan.options
    corpus = pipeline | "ReadCorpus" >> ReadCorpus(plan.corpus_source())
    dead_letters = [corpus[DEAD_LETTER_TAG]]
    dev_docs = None
    dev = plan.dev_source()
    if dev is not None:
        dev_read = pipeline | "ReadDev" >> ReadCorpus(dev)
        dead_letters.append(dev_read[DEAD_LETTER_TAG])
        dev_docs = dev_read[DOCUMENTS_TAG]
    docs = corpus[DOCUMENTS_TAG] | "AttachGold" >> AttachGold(dev_docs, opts.holdout_fraction)

    texts = docs | "EmbedInput" >> beam.Map(embed_input)
    neighbour_config = NeighbourConfig(
        num_neighbours=opts.num_neighbours, partition_rows=opts.partition_rows, spill=opts.spill
    )
    cache = cache_plan(plan, neighbour_config)
    if cache is None:
        embeddings = texts | "Embed" >> EmbedTexts(EmbedConfig(model_path=opts.model))
        neighbours = embeddings | "Neighbours" >> NeighbourGraph(neighbour_config)
    else:
        embedded = texts | "EmbedWithCache" >> EmbedWithCache(EmbedConfig(model_path=opts.model), cache)
        embeddings = embedded["embeddings"]
        hashes = texts | "TextHashes" >> beam.MapTuple(lambda doc_id, text: (doc_id, text_hash(text)))
        neighbours = {"embeddings": embeddings, "hashes": hashes} | "NeighboursWithCache" >> GraphWithCache(cache)
    applied = docs | "ApplyLFs" >> ApplyLFs(plan.vote_source())
    dead_letters.append(applied[DEAD_LETTER_TAG])
    if cache is not None:
        _ = {
            "new": embedded["new"],
            "hits": embedded["hits"],
            "embedded": embedded["embedded"],
            "graph": neighbours,
            "docs": docs,
            "votes": applied[VOTES_TAG],
        } | "WriteCache" >> WriteCache(cache, plan.lf_names, snapshot_metadata(plan))
    nearest = {"neighbours": neighbours, "votes": applied[VOTES_TAG]} | NearestVoters()
    joined = {
        "docs": docs | "KeyDocs" >> beam.Map(lambda doc: (doc["id"], doc)),
        "votes": applied[VOTES_TAG],
        "nearest": nearest,
        "embeddings": embeddings,
    } | "JoinRecords" >> JoinRecords(len(plan.lf_names))
    dead_letters.append(joined[DEAD_LETTER_TAG])
    records = joined["records"]

    fit = records | "Fit" >> FitLabeler(plan.lf_names, plan.labeler_config())
    labels = records | "Label" >> LabelDocuments(fit["fitted"], plan.class_names)
    write_outputs(
        plan,
        labels=labels,
        dead_letters=tuple(dead_letters) | "AllDeadLetters" >> beam.Flatten(),
        lf_failures=applied[LF_FAILURES_TAG],
        docs=docs,
        fit=fit,
        embedded=embeddings if cache is None else embedded["embedded"],
        embedding_cache_hits=None if cache is None else embedded["hits"],
    )


def run(argv: Sequence[str] | None = None, wait: bool = True) -> Any:
    """Parses ``argv``, runs preflight, builds and runs the pipeline.

    Args:
        argv: Command-line arguments; unknown ``--flags`` are Beam pipeline options.
        wait: Wait for the pipeline to finish (``False`` for Flex Template launches).

    Returns:
        The pipeline result.
    """
    options, beam_args = parse_options(argv)
    plan = preflight(options)
    pipeline_options = PipelineOptions(beam_args, save_main_session=False)
    pipeline = beam.Pipeline(options=pipeline_options)
    build_pipeline(pipeline, plan)
    result = pipeline.run()
    if wait:
        result.wait_until_finish()
        with FileSystems.open(FileSystems.join(options.output, "summary.json")) as handle:
            print(format_summary(json.load(handle), options.output))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: errors in preflight print one clear line and exit 2."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        run(sys.argv[1:] if argv is None else argv)
    except ValueError as error:
        print(f"epoxy-beam: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
