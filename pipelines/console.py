"""A quiet, informative console: library chatter off unless ``--verbose``; one line per failure.

:func:`quiet_libraries` runs when :mod:`pipelines` is imported, before TensorFlow or Beam are:
it sets ``TF_CPP_MIN_LOG_LEVEL=3`` (unless the user set it; oneDNN stays on: turning it off to
hide its notice also turned off its fast kernels and the bf16 precision of the embed stage),
hides ``pkg_resources`` deprecation warnings, and drops the records of the loggers and messages
in :data:`NOISE` (Beam's "apitools not found", TensorFlow's CUDA and oneDNN notices, absl).
:func:`set_verbose` brings all of them back. :func:`run_failure_line` turns a failed run's
exception into the one line the CLI prints, and writes the traceback to a log file it names.
"""

from __future__ import annotations

import logging
import os
import re
import traceback
import warnings

NOISE = (
    "apitools not found",
    "oneDNN custom operations",
    "cuda",
    "CUDA",
    "TensorFlow binary is optimized",
    "rebuild TensorFlow",
    "pkg_resources",
    "Unable to register",
    "Resource module is not available",
)
NOISY_LOGGERS = ("tensorflow", "absl", "h5py", "apache_beam.io.gcp")
_STATE = {"verbose": False}


class _LibraryNoise(logging.Filter):
    """Drops library chatter unless verbose."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _STATE["verbose"]:
            return True
        if record.name.split(".")[0] in NOISY_LOGGERS and record.levelno < logging.ERROR:
            return False
        message = str(record.msg)
        return not any(marker in message for marker in NOISE)


_FILTER = _LibraryNoise()


def quiet_libraries() -> None:
    """Silences library start-up chatter (idempotent; see the module docstring)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", message=r".*pkg_resources.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"pkg_resources.*")
    root = logging.getLogger()
    if _FILTER not in root.filters:
        root.addFilter(_FILTER)
    for name in NOISY_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def verbose_requested(argv: list[str]) -> bool:
    """Whether a command line asks for ``--verbose`` (read before the options are parsed, since
    library chatter starts at import time).

    >>> verbose_requested(["--verbose", "true"]), verbose_requested(["--verbose=no", "x"])
    (True, False)
    """
    for i, arg in enumerate(argv):
        value = arg.split("=", 1)[1] if arg.startswith("--verbose=") else ""
        if arg == "--verbose":
            value = argv[i + 1] if i + 1 < len(argv) else ""
        if value.strip().lower() in ("1", "true", "yes", "on"):
            return True
    return False


def set_verbose(verbose: bool) -> None:
    """Shows (``True``) or hides library logs from now on.

    When quiet, Beam and TensorFlow log nothing below CRITICAL: a failed run is reported by
    the CLI as one line, with the traceback in a log file.
    """
    _STATE["verbose"] = verbose
    for name in ("apache_beam", *NOISY_LOGGERS):
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.CRITICAL)
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = os.environ.get("EPOXY_TF_LOG_LEVEL", "0")
        warnings.resetwarnings()


def root_cause(error: BaseException) -> str:
    """The innermost ``SomeError: message`` line of an error (Beam wraps worker errors).

    >>> root_cause(RuntimeError("Pipeline failed\\nTraceback ...\\nValueError: bad row "
    ...                         "[while running 'Commit']"))
    'ValueError: bad row'
    """
    text = f"{type(error).__name__}: {error}"
    found = re.findall(
        r"^\s*([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)): (.+)$", text, flags=re.MULTILINE
    )
    if not found:
        lines = text.strip().splitlines()
        return lines[-1] if lines else type(error).__name__
    name, message = found[-1]
    message = re.sub(r"\s*\[while running '[^']*'\]\s*$", "", message)
    return f"{name.rsplit('.', 1)[-1]}: {message}"


def run_failure_line(error: BaseException, log_path: str) -> str:
    """Writes ``error``'s traceback to ``log_path`` and returns the one line to print."""
    detail = "".join(traceback.format_exception(error))
    try:
        directory = os.path.dirname(log_path)
        if "://" not in log_path:
            os.makedirs(directory, exist_ok=True)
            with open(log_path, "w", encoding="utf-8") as handle:
                handle.write(detail)
        else:
            from apache_beam.io.filesystems import FileSystems

            with FileSystems.create(log_path) as handle:
                handle.write(detail.encode("utf-8"))
        where = f"traceback in {log_path}"
    except OSError as log_error:
        where = f"the traceback could not be written to {log_path} ({log_error})"
    return f"epoxy-beam: run failed: {root_cause(error)} ({where}; rerun with --verbose for logs)"
