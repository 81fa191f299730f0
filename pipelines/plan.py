"""What a run will do, and every check before it starts: ``RunPlan`` and ``preflight``.

Preflight checks everything that can be checked before a worker starts, in one place: the
options' ranges, the LF file (imports, encoding, unique names, class names), the inputs (they
match readable files, have the needed columns, the dev labels map to classes, the vote width),
the output (does not overlap an input, holds no foreign files, is writable), the cache directory
and the model (loads and returns vectors). Each failure is a ``ValueError`` naming the bad value,
the rule and the fix.
"""

from __future__ import annotations

import collections
import dataclasses
import uuid
from typing import Iterator, Sequence

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipelines.options import WeakLabelOptions
from pipelines.output_guard import check_output_safe
from transforms.apply_lfs import VoteSource
from transforms.core.labeler import LabelerConfig
from transforms.embed import EMBED_PRECISIONS, EmbedConfig, preflight_model
from transforms.core.parsing import parse_file
from transforms.core.records import CorpusSource, parse_label, split_patterns
from transforms.io import preflight_source
from transforms.labeling_functions import LFSet, lf_names_for_votes, load_lf_set
from transforms.modality import ModalityConfig, preflight_embedding
from transforms.models.fingerprint import model_fingerprint

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
        modality: Where the vectors come from (text model, a vector field or an image model).
    """

    options: WeakLabelOptions
    lf_set: LFSet | None
    lf_names: tuple[str, ...]
    class_names: tuple[str, ...]
    embedding_dim: int
    model_fingerprint: str
    run_id: str
    modality: ModalityConfig = ModalityConfig()

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
            text_required=not modality_config(opts).non_text,
        )

    def vote_source(self) -> VoteSource:
        """Where the votes come from."""
        num_lfs = len(self.lf_set.lfs) if self.lf_set else 0
        return VoteSource.from_lf_set(
            self.lf_set,
            self.options.votes_field,
            len(self.lf_names) - num_lfs,
            self.cardinality,
            self.options.lf_timeout_s,
        )

    def positive_class_id(self) -> int | None:
        """``--positive_class`` as a class id (a name, case-insensitive, or an id), or ``None``.

        Raises:
            ValueError: naming the value and the classes when it is neither.
        """
        name = self.options.positive_class.strip()
        if not name:
            return None
        lowered = [c.lower() for c in self.class_names]
        if name.lower() in lowered:
            return lowered.index(name.lower())
        if name.isdigit() and int(name) < self.cardinality:
            return int(name)
        raise ValueError(
            f"--positive_class={name!r} is not one of the classes {list(self.class_names)}: "
            "give a class name or an id from 0 to " + str(self.cardinality - 1)
        )

    def embed_config(self) -> EmbedConfig:
        """The text embed stage's configuration: ``--model`` at ``--embed_precision``."""
        return EmbedConfig(model_path=self.options.model, precision=self.options.embed_precision)

    def labeler_config(self) -> LabelerConfig:
        """The core's fit configuration."""
        opts = self.options
        return LabelerConfig(
            cardinality=self.cardinality,
            label_model=opts.label_model,
            extension=opts.extension,
            thresholds=opts.thresholds,
            end_model=opts.end_model,
            metric=opts.metric,
            positive_class=self.positive_class_id(),
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
    _check_embed_precision(options)
    lf_set = load_lf_set(options.labeling_functions) if options.labeling_functions else None
    class_names = _class_names(options, lf_set)
    probe = RunPlan(options, lf_set, (), class_names, 0, "", "")
    preflight_source(probe.corpus_source())
    dev = probe.dev_source()
    if dev is not None:
        preflight_source(dev)
        _check_dev_labels(dev, class_names, options.max_dead_letter_rate)
    lf_names = tuple(lf_set.names if lf_set else ())
    if options.votes_field:
        width = _votes_width(probe.corpus_source(), options.votes_field, options.lf_name_list)
        lf_names += tuple(lf_names_for_votes(width, options.lf_name_list))
    if len(set(lf_names)) != len(lf_names):
        raise ValueError(
            f"LF names {list(lf_names)} repeat a name: rename the LFs or pass distinct --lf_names"
        )
    check_output_safe(
        options.output,
        split_patterns(options.input) + split_patterns(options.dev_input),
        options.overwrite,
    )
    probe.labeler_config()  # --metric / --positive_class against the classes
    modality = modality_config(options)
    if modality.non_text:
        modality, fingerprint = preflight_embedding(modality, probe.corpus_source())
        embedding_dim = modality.dim
    else:
        embedding_dim, fingerprint = preflight_model(options.model), model_fingerprint(options.model)
    _check_writable(options.output)
    if options.cache_dir:
        _check_writable(options.cache_dir)
    return RunPlan(
        options=options,
        lf_set=lf_set,
        lf_names=lf_names,
        class_names=class_names,
        embedding_dim=embedding_dim,
        model_fingerprint=fingerprint,
        run_id=uuid.uuid4().hex[:12],
        modality=modality,
    )


def modality_config(options: WeakLabelOptions) -> ModalityConfig:
    """The options' :class:`ModalityConfig` (dimension and image size still unset)."""
    return ModalityConfig(
        modality=options.modality,
        embedding_field=options.embedding_field,
        image_field=options.image_field,
        model_path=options.model,
    )


def _check_numbers(options: WeakLabelOptions) -> None:
    """Rejects numeric options outside their range, naming the option and the range."""
    if not 0.0 <= options.max_lf_failure_rate <= 1.0:
        raise ValueError(
            f"--max_lf_failure_rate={options.max_lf_failure_rate} must be in [0, 1]: the share of "
            "documents an LF may fail on before the run fails"
        )
    if not 0.0 <= options.max_dead_letter_rate <= 1.0:
        raise ValueError(
            f"--max_dead_letter_rate={options.max_dead_letter_rate} must be in [0, 1]: the share "
            "of input rows that may be dead-lettered before the run fails"
        )
    if not 0.0 <= options.lf_timeout_s <= 86_400:
        raise ValueError(
            f"--lf_timeout_s={options.lf_timeout_s} must be in [0, 86400] seconds: one LF's time "
            "budget per row (0 = none)"
        )
    if options.seed < 0:
        raise ValueError(
            f"--seed={options.seed} must be a non-negative integer (numpy seeds are >= 0); pass "
            "e.g. --seed 5"
        )
    for name in (
        "num_neighbours", "num_shards", "sample_size", "max_text_chars", "partition_rows"
    ):
        if getattr(options, name) < 1:
            raise ValueError(
                f"--{name}={getattr(options, name)} must be at least 1; pass a positive integer"
            )
    if options.spill < 0:
        raise ValueError(f"--spill={options.spill} must be at least 1, or 0 to choose it by size")
    if options.fallback_max_voters < 0:
        raise ValueError(
            f"--fallback_max_voters={options.fallback_max_voters} must be at least 1, or 0 for no "
            "exact fallback; pass e.g. --fallback_max_voters 2000"
        )


def _check_embed_precision(options: WeakLabelOptions) -> None:
    """Rejects an unknown ``--embed_precision``, and bf16 where no text model runs."""
    if options.embed_precision not in EMBED_PRECISIONS:
        raise ValueError(
            f"--embed_precision={options.embed_precision!r} is not one of "
            f"{', '.join(EMBED_PRECISIONS)}: pass --embed_precision fp32 (exact, the default) or "
            "bf16 (oneDNN bfloat16 matmuls on CPUs with AVX512_BF16/AMX)"
        )
    if options.embed_precision != "fp32" and modality_config(options).non_text:
        raise ValueError(
            f"--embed_precision={options.embed_precision!r} applies to the text model only, but "
            "this run embeds no text (--modality image or --embedding_field): drop "
            "--embed_precision"
        )


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
        _check_class_names(names, "--class_names" if options.class_name_list else (
            f"CLASS_NAMES in --labeling_functions {lf_set.spec!r}" if lf_set else "class names"))
        return names
    cardinality = options.cardinality or 2
    if cardinality < 2:
        raise ValueError(
            f"--cardinality={cardinality} is invalid: a task has at least 2 classes; pass "
            "--cardinality 2 or more"
        )
    return tuple(str(c) for c in range(cardinality))


def _check_class_names(names: tuple[str, ...], origin: str) -> None:
    """Rejects fewer than 2 class names, or names equal up to case (labels match any case)."""
    if len(names) < 2:
        raise ValueError(
            f"{origin} = {names!r} lists {len(names)} class; a task has at least 2 classes: "
            "list every class, e.g. CLASS_NAMES = (\"HAM\", \"SPAM\")"
        )
    folded = [name.strip().casefold() for name in names]
    repeated = sorted({name for name in names if folded.count(name.strip().casefold()) > 1})
    if repeated or not all(folded):
        raise ValueError(
            f"{origin} = {names!r} has empty names or names equal up to case ({repeated}); dev "
            "labels match class names in any case, so give every class a distinct, non-empty name"
        )


def _check_dev_labels(dev: CorpusSource, class_names: tuple[str, ...], max_bad: float) -> None:
    """Reads the dev rows and fails when the dev set cannot serve as gold labels.

    Labels are class ids or class names (case-insensitive, :func:`~transforms.core.records.parse_label`).
    The run stops here when the dev set has no row, no row has the label field, a label is a
    class id outside ``class_names`` (the cardinality is wrong), or more than ``max_bad`` of the
    labels map to no class (e.g. names that are not ``CLASS_NAMES``); a garbled label in a few
    rows is left to the read stage, which dead-letters those rows as ``bad_label``. At most
    :data:`MAX_DEV_ROWS_CHECKED` rows are read.
    """
    label_field = str(dev.label_field)
    rows, labelled, unmapped = 0, 0, collections.Counter()
    fields_seen: set[str] = set()
    for item in _parsed_rows(dataclasses.replace(dev, label_field=None), MAX_DEV_ROWS_CHECKED):
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
        if value is not None and problem:
            unmapped[str(value)] += 1
    if not rows:
        raise ValueError(
            f"--dev_input {dev.pattern!r} holds no readable row: the gold labels are missing; "
            "pass a file of labelled rows, or drop --dev_input"
        )
    if not labelled:
        raise ValueError(
            f"--dev_input {dev.pattern!r} has no value in field {label_field!r} in any of its "
            f"{rows} rows (fields: {sorted(fields_seen)}): set --label_field to the gold label "
            "column"
        )
    if sum(unmapped.values()) > max_bad * labelled:
        raise ValueError(
            f"--dev_input {dev.pattern!r}: {sum(unmapped.values())} of {labelled} labels in "
            f"{label_field!r} map to no class (e.g. {sorted(unmapped)[:3]}); labels must be class "
            f"ids 0..{len(class_names) - 1} or names in {list(class_names)} (any case): set "
            "CLASS_NAMES in the LF file or --class_names to the names the dev file uses"
        )


def _parsed_rows(source: CorpusSource, limit: int) -> Iterator[dict]:
    """The first ``limit`` documents of ``source``, as the read stage parses them."""
    seen = 0
    for path in preflight_source(source):
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as stream:
            for item in parse_file(path, stream, source):
                if isinstance(item, dict):
                    yield item
                    seen += 1
                    if seen >= limit:
                        return


def _votes_width(source: CorpusSource, votes_field: str, lf_names: Sequence[str]) -> int:
    """The vote-list width: the number of ``--lf_names``, else the most common width.

    The majority over the first :data:`MAX_DEV_ROWS_CHECKED` rows decides, so one odd row
    (the first, say) is dead-lettered as ``bad_votes`` instead of setting the width.
    """
    if lf_names:
        return len(lf_names)
    widths = collections.Counter(
        len(item["fields"][votes_field])
        for item in _parsed_rows(source, MAX_DEV_ROWS_CHECKED)
        if isinstance(item["fields"].get(votes_field), list)
    )
    if not widths:
        raise ValueError(
            f"--votes_field {votes_field!r} is in no row of {source.pattern!r}: name the column "
            "holding each row's list of votes"
        )
    return widths.most_common(1)[0][0]


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
