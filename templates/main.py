"""The Flex Template's entry point (``FLEX_TEMPLATE_PYTHON_PY_FILE`` in ``templates/Dockerfile``).

Dataflow's launcher runs, inside the template image::

    python /template/templates/main.py --runner=DataflowRunner --project=... --region=... \\
        --template_location=gs://... --input=gs://... --output=gs://... [--<parameter>=<value> ...]

:func:`main` builds the job graph and returns without waiting: the launcher stages the graph and
Dataflow runs it on workers started from the same image (``--sdk_container_image``). The same
command line runs anywhere with ``--runner=FnApiRunner`` (the local rehearsal in
``tests/test_templates.py``); only the two launcher conveniences below differ from
``python -m pipelines.weak_label``.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from typing import Any, Mapping, Sequence

from apache_beam.io.filesystems import FileSystems

from pipelines import weak_label

# Where templates/Dockerfile builds all-MiniLM-L6-v2, and the variable that tells main() so.
IMAGE_MODEL = "/template/models/all-MiniLM-L6-v2"
MODEL_ENV = "EPOXY_BEAM_MODEL"


def _flag_index(argv: Sequence[str], name: str) -> int | None:
    """Index of ``--name`` or ``--name=...`` in ``argv``, or ``None``."""
    for index, arg in enumerate(argv):
        if arg == f"--{name}" or arg.startswith(f"--{name}="):
            return index
    return None


def with_image_model(argv: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    """Adds ``--model=$EPOXY_BEAM_MODEL`` when ``argv`` names no model and the variable is set.

    >>> with_image_model(["--input=a"], {"EPOXY_BEAM_MODEL": "/m"})
    ['--input=a', '--model=/m']
    >>> with_image_model(["--model", "gs://b/m"], {"EPOXY_BEAM_MODEL": "/m"})
    ['--model', 'gs://b/m']
    >>> with_image_model(["--input=a"], {})
    ['--input=a']
    """
    argv = list(argv)
    default = environ.get(MODEL_ENV, "")
    if default and _flag_index(argv, "model") is None:
        argv.append(f"--model={default}")
    return argv


def with_local_labeling_functions(argv: Sequence[str], directory: str) -> list[str]:
    """Copies a remote ``--labeling_functions`` file (``gs://...``) into ``directory``.

    The LF loader reads a local file or imports a module; the launcher VM only has the
    template image, so a ``gs://`` LF file is fetched first. Workers never read the file:
    they re-create the LFs from the source text the launcher loaded.

    Args:
        argv: The launcher's arguments.
        directory: A local directory for the copy.

    Returns:
        ``argv`` with the remote path replaced by the local copy's path.
    """
    argv = list(argv)
    index = _flag_index(argv, "labeling_functions")
    if index is None:
        return argv
    inline = "=" in argv[index]
    value_index = index if inline else index + 1
    if value_index >= len(argv):
        return argv  # argparse reports the missing value
    remote = argv[value_index].split("=", 1)[1] if inline else argv[value_index]
    if "://" not in remote:
        return argv
    local = os.path.join(directory, os.path.basename(remote.rstrip("/")) or "labeling_functions.py")
    try:
        with FileSystems.open(remote) as source, open(local, "wb") as target:
            target.write(source.read())
    except (OSError, IOError, ValueError) as error:
        raise ValueError(
            f"--labeling_functions {remote!r} could not be read ({error}); pass a readable "
            "gs:// path to a .py file of @labeling_function LFs (the launcher's service account "
            "needs storage.objects.get on it)"
        ) from None
    argv[value_index] = f"--labeling_functions={local}" if inline else local
    return argv


def main(argv: Sequence[str] | None = None) -> Any:
    """Runs the weak-labeling job without waiting for it.

    Args:
        argv: The launcher's arguments (default ``sys.argv[1:]``).

    Returns:
        The pipeline result; call ``wait_until_finish()`` on it to wait.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    args = with_image_model(args, os.environ)
    args = with_local_labeling_functions(args, tempfile.mkdtemp(prefix="epoxy-beam-lfs-"))
    return weak_label.run(args, wait=False)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        main()
    except ValueError as error:
        sys.exit(f"epoxy-beam: error: {error}")
