"""What a run will do, and every check before it starts: ``RunPlan`` and ``preflight``.

Preflight checks everything that can be checked before a worker starts, in one place: the
options' ranges, the LF file (imports, encoding, unique names, class names), the inputs (they
match readable files, have the needed columns, the dev labels map to classes, the vote width),
the output (does not overlap an input, holds no foreign files, is writable), the cache directory
and the model (loads and returns vectors). Each failure is a ``ValueError`` naming the bad value,
the rule and the fix. The checks of the options' ranges, the class names, the inputs' rows and
the directories live in :mod:`pipelines.preflight_checks`.
"""

from __future__ import annotations

import dataclasses
import uuid

from apache_beam.io.filesystems import FileSystems

from pipelines.options import WeakLabelOptions
from pipelines.output_guard import check_output_safe
from pipelines.preflight_checks import (
    check_dev_labels,
    check_numbers,
    check_writable,
    resolve_class_names,
    votes_width,
)
from transforms.apply_lfs import VoteSource
from transforms.core.labeler import LabelerConfig
from transforms.embed import EMBED_PRECISIONS, EmbedConfig, preflight_model
from transforms.core.records import CorpusSource, split_patterns
from transforms.io import preflight_source
from transforms.labeling_functions import LFSet, lf_names_for_votes, load_lf_set
from transforms.modality import ModalityConfig, preflight_embedding
from transforms.models.fingerprint import model_fingerprint


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
            lf_exceptions=opts.lf_exceptions,
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
    check_numbers(options)
    _check_embed_precision(options)
    lf_set = load_lf_set(options.labeling_functions) if options.labeling_functions else None
    class_names = resolve_class_names(options, lf_set)
    probe = RunPlan(options, lf_set, (), class_names, 0, "", "")
    preflight_source(probe.corpus_source())
    dev = probe.dev_source()
    if dev is not None:
        preflight_source(dev)
        check_dev_labels(dev, class_names, options.max_dead_letter_rate)
    lf_names = tuple(lf_set.names if lf_set else ())
    if options.votes_field:
        width = votes_width(probe.corpus_source(), options.votes_field, options.lf_name_list)
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
    check_writable(options.output)
    if options.cache_dir:
        check_writable(options.cache_dir)
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
