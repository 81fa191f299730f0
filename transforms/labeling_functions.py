"""Loading an LF set from a Python file or module the user names.

An LF file is code: it is executed only from the path or module name given on the command line,
never discovered. It must define at least one :class:`~transforms.core.votes.LabelingFunction`
at module level (or a sequence ``LFS`` that fixes their order) and may define ``CLASS_NAMES``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import inspect
import io
import os
import sys
import tokenize
from types import ModuleType
from typing import Sequence

from apache_beam.io.filesystems import FileSystems

from transforms.core.votes import LabelingFunction, validate_lfs


@dataclasses.dataclass(frozen=True)
class LFSet:
    """A validated LF set and what travels with it.

    Attributes:
        lfs: The labeling functions, in column order.
        class_names: Class names from the LF file's ``CLASS_NAMES``, or empty.
        spec: The file path or module name the set was loaded from.
        source: The LF file's source text (empty for a module without source).
        fingerprint: A hash of the LF source, keying cached vote columns.
    """

    lfs: tuple[LabelingFunction, ...]
    class_names: tuple[str, ...]
    spec: str
    source: str
    fingerprint: str

    @property
    def names(self) -> list[str]:
        """The LF names, in column order."""
        return [lf.name for lf in self.lfs]

    def __reduce__(self) -> tuple:
        """Pickles as the LF file's text and name, never as code or a module reference.

        A file's LFs live in a module registered under a synthetic name (``epoxy_lfs_<hash>``)
        that exists only in the process that loaded it; pickled by reference, a worker would
        fail with ``ModuleNotFoundError``. Anything that captures an :class:`LFSet` (a
        ``RunPlan`` in a stage's closure) therefore re-creates it from ``source`` and ``spec``
        on unpickling, exactly as :class:`~transforms.apply_lfs.ApplyLFsFn` does in ``setup()``;
        a module set is re-imported by name.
        """
        if self.source and (self.spec.endswith(".py") or "/" in self.spec):
            return (load_lf_set_from_source, (self.source, self.spec))
        return (load_lf_set, (self.spec,))


def load_lf_set(spec: str) -> LFSet:
    """Imports the LF file or module ``spec`` and collects its LFs.

    Args:
        spec: A path to a ``.py`` file, or a dotted module name importable on ``sys.path``.

    Returns:
        The validated :class:`LFSet`. For a file, ``source`` holds its text so that workers
        re-create the LFs from it (:func:`load_lf_set_from_source`) instead of unpickling code.

    Raises:
        ValueError: if the file does not exist, does not import, or defines no LF, naming
            ``spec`` and the fix.
    """
    if spec.endswith(".py") or "/" in spec:
        if not FileSystems.exists(spec) or ("://" not in spec and not os.path.isfile(spec)):
            raise ValueError(
                f"--labeling_functions file {spec!r} does not exist: pass the path (local or "
                "gs://) of a .py file that defines @labeling_function LFs, or an importable "
                "module name"
            )
        with FileSystems.open(spec) as handle:
            return load_lf_set_from_source(decode_source(handle.read(), spec), spec)
    try:
        module = importlib.import_module(spec)
    except Exception as error:  # noqa: BLE001 - user code: any failure becomes a clear error.
        raise ValueError(
            f"--labeling_functions module {spec!r} failed to import: "
            f"{type(error).__name__}: {error}; pass a .py path or a module on sys.path"
        ) from error
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        source = ""
    return _collect(module, spec, source)


def decode_source(data: bytes, spec: str) -> str:
    """An LF file's text, in UTF-8 or the encoding its ``# -*- coding: ... -*-`` line declares.

    Raises:
        ValueError: Naming the file, the byte and the fix, when the bytes are not in that encoding.
    """
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError:
        encoding = "utf-8"  # no declaration, and the first lines are not UTF-8
    try:
        return data.decode(encoding)
    except (LookupError, UnicodeDecodeError) as error:
        detail = (
            f"byte {data[error.start]:#04x} in line {data[: error.start].count(10) + 1} is not "
            f"{error.encoding}"
            if isinstance(error, UnicodeDecodeError)
            else str(error)
        )
        raise ValueError(
            f"--labeling_functions file {spec!r} is not UTF-8 ({detail}); re-save it as UTF-8 "
            f"(e.g. iconv -f latin1 -t utf-8 {spec} > lfs_utf8.py), or declare its encoding in "
            "its first line: # -*- coding: latin-1 -*-"
        ) from None


def load_lf_set_from_source(source: str, spec: str) -> LFSet:
    """Executes LF source code (the text of the file the user named) as a module.

    Args:
        source: The Python source of the LF file.
        spec: The path it came from, for messages.

    Returns:
        The validated :class:`LFSet`.

    Raises:
        ValueError: if the source does not execute or defines no LF.
    """
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()
    name = "epoxy_lfs_" + digest[:16]
    module = sys.modules.get(name)
    if module is None:
        module = ModuleType(name)
        module.__file__ = spec
        sys.modules[name] = module
        try:
            exec(compile(source, spec, "exec"), module.__dict__)  # noqa: S102 - the user's LF file.
        except Exception as error:  # noqa: BLE001 - user code: any failure becomes a clear error.
            del sys.modules[name]
            raise ValueError(
                f"--labeling_functions {spec!r} failed to import: "
                f"{type(error).__name__}: {error}; fix the file and run again"
            ) from error
    return _collect(module, spec, source)


def _collect(module: ModuleType, spec: str, source: str) -> LFSet:
    if hasattr(module, "LFS"):
        lfs = validate_lfs(list(module.LFS))
    else:
        found = [v for v in vars(module).values() if isinstance(v, LabelingFunction)]
        if not found:
            raise ValueError(
                f"--labeling_functions {spec!r} defines no labeling function: decorate functions "
                "with @transforms.labeling_function() at module level, or list them "
                "in a module-level LFS sequence"
            )
        lfs = validate_lfs(found)
    class_names = tuple(str(name) for name in getattr(module, "CLASS_NAMES", ()))
    fingerprint = hashlib.sha256((source or spec).encode("utf-8")).hexdigest()[:16]
    return LFSet(
        lfs=lfs, class_names=class_names, spec=spec, source=source, fingerprint=fingerprint
    )


def lf_names_for_votes(num_lfs: int, names: Sequence[str] = ()) -> list[str]:
    """Names for a precomputed votes column: the given names or ``lf_0 .. lf_{m-1}``.

    >>> lf_names_for_votes(3)
    ['lf_0', 'lf_1', 'lf_2']
    """
    if names:
        if len(names) != num_lfs:
            raise ValueError(
                f"--lf_names has {len(names)} names but the votes column has {num_lfs} "
                "entries per row: give one name per vote"
            )
        return list(names)
    return [f"lf_{j}" for j in range(num_lfs)]
