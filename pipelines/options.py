"""The options of the weak-labeling job: one frozen dataclass, one source of truth.

The command line (``--help``), the README's options table and the Flex Template's
``metadata.json`` are all generated from :class:`WeakLabelOptions`; tests check that they agree.
Arguments this parser does not know (``--runner``, ``--project``, ...) are Beam pipeline options
and pass through to :class:`apache_beam.options.pipeline_options.PipelineOptions`.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Sequence

DEFAULT_MODEL = "models/all-MiniLM-L6-v2"


def _option(
    default: Any, help: str, *, required: bool = False, repeatable: bool = False  # noqa: A002
) -> Any:
    return dataclasses.field(
        default=default,
        metadata={"help": help, "required": required, "repeatable": repeatable},
    )


@dataclasses.dataclass(frozen=True)
class WeakLabelOptions:
    """Everything the job needs besides Beam's own pipeline options."""

    input: str = _option(
        None,
        "Corpus files: a glob or comma-separated globs, local or gs:// "
        "(Parquet, JSONL or CSV; .gz for text formats). Repeat the flag for more globs; write "
        "a comma inside a file name as \\,.",
        required=True,
        repeatable=True,
    )
    output: str = _option(
        None,
        "Output directory (local or gs://): labels/, errors/, summary.json, report.html.",
        required=True,
    )
    input_format: str = _option("auto", "auto (by file extension), parquet, jsonl or csv.")
    id_field: str = _option(
        "id", "Field holding the document id; rows without it get a content hash id."
    )
    text_field: str = _option("text", "Field holding the document text.")
    text_template: str = _option(
        "",
        "Optional template over fields for the embedded text, e.g. "
        "'{entity1} [SEP] {entity2} [SEP] {text}'. Empty: the text field.",
    )
    model: str = _option(
        DEFAULT_MODEL,
        "TF-Hub text embedding model: SavedModel directory, gs:// path or hub handle.",
    )
    embed_precision: str = _option(
        "fp32",
        "Matmul precision of the text model: fp32 (exact) or bf16 (TF oneDNN bfloat16 "
        "auto-mixed precision on CPUs with AVX512_BF16/AMX; measured 1.05-1.21x faster, cosine "
        "0.9997 to fp32, see docs/scale.md). The cache keys fp32 and bf16 vectors apart.",
    )
    modality: str = _option(
        "text",
        "text (embed --text_field with --model) or image (embed --image_field with --model, a "
        "TF-Hub image feature-vector SavedModel [None,H,W,3] in [0,1] -> [None,d]).",
    )
    image_field: str = _option(
        "image",
        "With --modality image: field holding encoded JPEG/PNG bytes (base64 in JSONL) or a "
        "local path / gs:// URI of the image.",
    )
    embedding_field: str = _option(
        "",
        "Field holding a precomputed vector per row (list<float> / JSON array); skips the embed "
        "stage. Vectors are L2-normalised; bad ones are dead-lettered.",
    )
    labeling_functions: str = _option(
        "",
        "Python file or module defining @labeling_function LFs (and optionally CLASS_NAMES).",
    )
    votes_field: str = _option(
        "",
        "Field with precomputed votes (a list of ints per row, -1 = abstain) instead of or "
        "besides --labeling_functions.",
    )
    lf_names: str = _option(
        "", "Comma-separated names for the --votes_field columns (default lf_0, lf_1, ...)."
    )
    cardinality: int = _option(
        0, "Number of classes; 0 = from --class_names, the LF file's CLASS_NAMES, else 2."
    )
    class_names: str = _option("", "Comma-separated class names, in class-id order.")
    dev_input: str = _option(
        "",
        "Optional labelled files (same formats) for tuning and held-out metrics; rows whose id "
        "is in --input are the same documents. Repeatable, like --input.",
        repeatable=True,
    )
    label_field: str = _option("label", "Field holding the gold label in --dev_input.")
    holdout_fraction: float = _option(
        0.5,
        "Share of dev rows held out from tuning and used only to report metrics (by id hash).",
    )
    num_neighbours: int = _option(20, "Neighbours per document in the kNN graph.")
    partition_rows: int = _option(
        100000,
        "kNN graph: documents per partition of the partitioned ScaNN self-join; a corpus up to "
        "this size uses one index, and so does one whose spill would search every partition "
        "(up to 3x this size with the auto spill).",
    )
    spill: int = _option(
        0,
        "kNN graph: nearest partitions each document is searched in (recall vs. cost); 0 = "
        "auto, ceil(1.5 sqrt(partitions)) within [3, partitions]: 5 of 10 partitions at 1M.",
    )
    knn_shuffle_dir: str = _option(
        "auto",
        "kNN graph: how rows reach their search groups, and partial top-k lists their merge. auto: "
        "through files in the temporary directory ($TMPDIR; about spill x 2 KB per document while "
        "the graph is built: 8.7 GB of rows at 1M, plus about 0.5 KB per list) with the "
        "in-process runners (FnApiRunner, DirectRunner), which hold a shuffle in "
        "memory about three times over; through the runner's shuffle otherwise. none: always the "
        "runner's shuffle. A directory (local or gs://, readable and writable by every worker): "
        "files there. The graph is the same either way.",
    )
    fallback_max_voters: int = _option(
        0,
        "Per-LF exact fallback: an LF with at most this many voters gets its nearest voter by "
        "brute force over all its voters (exact Epoxy) instead of from the kNN graph's "
        "neighbours; costs a side input of up to (such LFs) x this x 4d bytes and a search of "
        "every document against those voters. 0 = off.",
    )
    label_model: str = _option(
        "auto",
        "Label model: auto (with enough tuning rows, triplet or moments when cross-validation "
        "shows they beat naive_bayes, i.e. majority vote refined by the tuning rows; otherwise "
        "triplet for binary tasks whose LFs overlap enough to estimate it, else majority vote), "
        "triplet, moments, naive_bayes or majority_vote.",
    )
    thresholds: str = _option(
        "auto",
        "Extension thresholds: auto (per-LF similarity quantile, its level cross-validated on "
        "tuning rows when there are enough; without them the extension is off when the votes it "
        "adds do not agree with the other LFs beyond chance), quantile (fixed level), or none.",
    )
    metric: str = _option(
        "auto",
        "The task metric every tuning-row choice serves: accuracy, balanced_accuracy, macro_f1, "
        "f1 (of --positive_class) or auto (macro_f1 for a binary task whose tuning rows show a "
        "class on under a fifth of the rows, else accuracy).",
    )
    positive_class: str = _option(
        "", "The class whose F1 --metric=f1 means: a class name or id (default: class 1 of a "
        "binary task)."
    )
    extension: bool = _option(True, "Extend LF votes to nearby documents (Epoxy).")
    lf_exceptions: bool = _option(
        True, "Where a narrow LF that fires only inside a broader one votes another class, the "
        "label model ignores the broader LF's vote (a rule's exception wins)."
    )
    end_model: bool = _option(
        True, "Train a small model on the embeddings from the label model's posteriors."
    )
    sample_size: int = _option(20000, "Corpus rows sampled (by id hash) to fit thresholds and end model.")
    cache_dir: str = _option(
        "", "Artifacts cache (local or gs://): embeddings and neighbour graph, keyed and versioned."
    )
    max_text_chars: int = _option(100000, "Longer texts go to the dead letter.")
    max_lf_failure_rate: float = _option(
        0.1, "Fail the run when an LF raises on more than this share of rows."
    )
    max_dead_letter_rate: float = _option(
        0.1,
        "Fail the run (nothing committed) when more than this share of the input rows (corpus "
        "plus dev) is dead-lettered.",
    )
    lf_timeout_s: float = _option(
        10.0,
        "Time budget of one LF on one row, in seconds; an overrun abstains and counts as a "
        "failure of that LF (0 = no budget).",
    )
    overwrite: bool = _option(
        False,
        "Allow --output to be a non-empty directory that is not a previous epoxy-beam output: "
        "entries named like the outputs (labels/, errors/, summary.json, report.html, "
        "model.json, _SUCCESS) are replaced, other files are left in place.",
    )
    verbose: bool = _option(
        False, "Show library logs (TensorFlow, Beam) and full tracebacks on the console."
    )
    num_shards: int = _option(1, "Number of labels Parquet files.")
    seed: int = _option(0, "Seed for every random choice (outputs are reproducible).")

    @property
    def class_name_list(self) -> list[str]:
        """``--class_names`` split on commas."""
        return [name.strip() for name in self.class_names.split(",") if name.strip()]

    @property
    def lf_name_list(self) -> list[str]:
        """``--lf_names`` split on commas."""
        return [name.strip() for name in self.lf_names.split(",") if name.strip()]


def option_fields() -> tuple[dataclasses.Field, ...]:
    """The option fields, in declaration order."""
    return dataclasses.fields(WeakLabelOptions)


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean: use true or false")


def build_parser() -> argparse.ArgumentParser:
    """An argparse parser with one ``--name`` per option, its type, default and help."""
    parser = argparse.ArgumentParser(
        prog="epoxy-beam",
        description="Weak labeling at corpus scale on Apache Beam: embed, kNN graph, apply LFs, "
        "extend (Epoxy), fit a label model, write probabilistic labels. Unknown --flags are "
        "Beam pipeline options (e.g. --runner=FnApiRunner).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for field in option_fields():
        kind = {bool: _parse_bool, int: int, float: float}.get(_field_type(field), str)
        parser.add_argument(
            f"--{field.name}",
            type=kind,
            default=None if field.metadata["repeatable"] else field.default,
            required=field.metadata["required"],
            help=field.metadata["help"],
            action="append" if field.metadata["repeatable"] else "store",
        )
    return parser


def _field_type(field: dataclasses.Field) -> type:
    return {"str": str, "int": int, "float": float, "bool": bool}[str(field.type)]


def _stray_values(beam_args: Sequence[str]) -> list[str]:
    """Values in the Beam arguments that follow no ``--flag`` (e.g. a glob the shell expanded).

    >>> _stray_values(["b.csv", "--project", "p", "--runner=FnApiRunner", "c.csv"])
    ['b.csv', 'c.csv']
    """
    stray, expects_value = [], False
    for arg in beam_args:
        if arg.startswith("-"):
            expects_value = "=" not in arg
        elif expects_value:
            expects_value = False
        else:
            stray.append(arg)
    return stray


def parse_options(argv: Sequence[str] | None) -> tuple[WeakLabelOptions, list[str]]:
    """Parses the job's options and returns the rest as Beam pipeline arguments.

    Args:
        argv: Command-line arguments (without the program name).

    Returns:
        ``(options, beam_args)``.
    """
    parser = build_parser()
    known, beam_args = parser.parse_known_args(argv)
    stray = _stray_values(beam_args)
    if stray:
        parser.error(
            f"unexpected arguments {stray[:3]}: every value belongs to a --flag; quote globs "
            "(--input 'data/*.csv') so that the shell does not expand them"
        )
    values = vars(known)
    for field in option_fields():
        if field.metadata["repeatable"]:
            given = values[field.name]
            values[field.name] = ",".join(given) if given else field.default
    return WeakLabelOptions(**values), beam_args


def options_markdown_table() -> str:
    """The README's options table, generated from :class:`WeakLabelOptions`.

    >>> options_markdown_table().splitlines()[0]
    '| option | default | description |'
    """
    lines = ["| option | default | description |", "|---|---|---|"]
    for field in option_fields():
        default = "(required)" if field.metadata["required"] else f"`{field.default!r}`"
        lines.append(f"| `--{field.name}` | {default} | {field.metadata['help']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(options_markdown_table())
