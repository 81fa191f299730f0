"""Preflight's checks of the options and the inputs, each a ``ValueError`` naming the fix.

:func:`pipelines.plan.preflight` calls them before any pipeline is built: the numeric options'
ranges, the class names, the dev labels (read from the first :data:`MAX_DEV_ROWS_CHECKED` rows),
the vote-list width of ``--votes_field`` and that the output and cache directories are writable.
"""

from __future__ import annotations

import collections
import dataclasses
import uuid
from typing import Iterator, Sequence

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipelines.options import WeakLabelOptions
from transforms.core.parsing import parse_file
from transforms.core.records import CorpusSource, parse_label
from transforms.io import preflight_source
from transforms.labeling_functions import LFSet

MAX_DEV_ROWS_CHECKED = 100_000  # dev rows read by preflight to check the label field


def check_numbers(options: WeakLabelOptions) -> None:
    """Rejects numeric options outside their range, naming the option and the range.

    Args:
        options: The job's options.

    Raises:
        ValueError: naming the option, its range and the fix.
    """
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


def resolve_class_names(options: WeakLabelOptions, lf_set: LFSet | None) -> tuple[str, ...]:
    """The run's class names: ``--class_names``, else the LF file's ``CLASS_NAMES``, else ids.

    Args:
        options: The job's options (``--class_names``, ``--cardinality``).
        lf_set: The loaded LF set, or ``None`` with only a votes column.

    Returns:
        The class names (``"0"``, ``"1"``, ... when none were given).

    Raises:
        ValueError: if the two lists differ, disagree with ``--cardinality``, list fewer than
            2 classes or repeat a name up to case.
    """
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


def check_dev_labels(dev: CorpusSource, class_names: tuple[str, ...], max_bad: float) -> None:
    """Reads the dev rows and fails when the dev set cannot serve as gold labels.

    Labels are class ids or class names (case-insensitive, :func:`~transforms.core.records.parse_label`).
    The run stops here when the dev set has no row, no row has the label field, a label is a
    class id outside ``class_names`` (the cardinality is wrong), or more than ``max_bad`` of the
    labels map to no class (e.g. names that are not ``CLASS_NAMES``); a garbled label in a few
    rows is left to the read stage, which dead-letters those rows as ``bad_label``. At most
    :data:`MAX_DEV_ROWS_CHECKED` rows are read.

    Args:
        dev: The ``--dev_input`` source.
        class_names: The run's class names.
        max_bad: The share of labels that may map to no class (``--max_dead_letter_rate``).

    Raises:
        ValueError: naming the dev input, the label field and the fix.
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


def votes_width(source: CorpusSource, votes_field: str, lf_names: Sequence[str]) -> int:
    """The vote-list width: the number of ``--lf_names``, else the most common width.

    The majority over the first :data:`MAX_DEV_ROWS_CHECKED` rows decides, so one odd row
    (the first, say) is dead-lettered as ``bad_votes`` instead of setting the width.

    Args:
        source: The ``--input`` source.
        votes_field: The column of each row's vote list.
        lf_names: The ``--lf_names`` (empty: read the rows).

    Returns:
        The number of votes per row.

    Raises:
        ValueError: if no row has a vote list in ``votes_field``.
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


def check_writable(directory: str) -> None:
    """Creates ``directory`` if it is local and missing, then writes and deletes a probe file.

    Args:
        directory: A local path or a ``gs://``-style URL.

    Raises:
        ValueError: if the directory cannot be created or written to.
    """
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
