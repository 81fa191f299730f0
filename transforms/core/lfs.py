"""Labeling functions: the LF object, its decorator, keyword / regex builders, fingerprints.

The API for LF authors (re-exported by :mod:`transforms`)::

    from transforms import ABSTAIN, keyword_lf, labeling_function, regex_lf

    @labeling_function()
    def has_link(x):
        return 1 if "http" in x["text"] else ABSTAIN

    mentions_free = keyword_lf("mentions_free", ["free", "win"], label=1)

Conventions follow Snorkel: ``ABSTAIN = -1``, classes ``0..k-1``. :func:`keyword_lf` and
:func:`regex_lf` also carry a vectorised form over a pyarrow text column (same votes), which
the iterate session uses. :func:`lf_fingerprint` hashes everything an LF's votes depend on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from types import ModuleType
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ABSTAIN: int = -1
VOTE_DTYPE = np.int8

Row = Mapping[str, Any]
VectorisedFn = Callable[[pa.Array], np.ndarray]

__all__ = [
    "ABSTAIN",
    "VOTE_DTYPE",
    "LabelingFunction",
    "VectorisedLF",
    "keyword_lf",
    "labeling_function",
    "lf_fingerprint",
    "regex_lf",
    "validate_lfs",
]


@dataclasses.dataclass(frozen=True)
class LabelingFunction:
    """A named function that votes a class in ``0..k-1`` or abstains (``-1``) on a row.

    Compatible with Snorkel's ``LabelingFunction``: ``resources`` are passed as keyword
    arguments, ``pre`` preprocessors map the row before ``f`` sees it.

    Attributes:
        name: Unique name of the LF; it names the column of its votes in every artifact.
        f: The function ``f(row, **resources) -> int``.
        resources: Keyword arguments passed to ``f`` on every call.
        pre: Preprocessors applied to the row, in order, before ``f``.
    """

    name: str
    f: Callable[..., int]
    resources: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    pre: Sequence[Callable[[Row], Row]] = ()

    def __call__(self, row: Row) -> int:
        for preprocess in self.pre:
            row = preprocess(row)
        return self.f(row, **self.resources)


def labeling_function(
    name: str | None = None,
    resources: Mapping[str, Any] | None = None,
    pre: Sequence[Callable[[Row], Row]] | None = None,
) -> Callable[[Callable[..., int]], LabelingFunction]:
    """Decorator that turns a function into a :class:`LabelingFunction`.

    Args:
        name: The LF's name; defaults to the function's ``__name__``.
        resources: Keyword arguments passed to the function on every call.
        pre: Preprocessors applied to the row before the function.

    Returns:
        A decorator producing a :class:`LabelingFunction`.
    """

    def decorate(f: Callable[..., int]) -> LabelingFunction:
        return LabelingFunction(
            name=name or f.__name__, f=f, resources=dict(resources or {}), pre=tuple(pre or ())
        )

    return decorate


def validate_lfs(lfs: Sequence[LabelingFunction]) -> tuple[LabelingFunction, ...]:
    """Checks an LF set before any data is read.

    Args:
        lfs: The labeling functions, in column order.

    Returns:
        The LFs as a tuple.

    Raises:
        ValueError: if the set is empty, holds a non-LF, or repeats a name.

    >>> validate_lfs([])
    Traceback (most recent call last):
    ...
    ValueError: the LF set is empty: define at least one @labeling_function
    """
    lfs = tuple(lfs)
    if not lfs:
        raise ValueError("the LF set is empty: define at least one @labeling_function")
    for lf in lfs:
        if not isinstance(lf, LabelingFunction):
            raise ValueError(
                f"{lf!r} is not a LabelingFunction: wrap it with @labeling_function()"
            )
    seen: set[str] = set()
    duplicates = sorted({lf.name for lf in lfs if lf.name in seen or seen.add(lf.name)})
    if duplicates:
        raise ValueError(
            f"duplicate LF names {duplicates}: every LF needs a unique name "
            "(pass name= to @labeling_function)"
        )
    return lfs


@dataclasses.dataclass(frozen=True)
class VectorisedLF(LabelingFunction):
    """An LF with a vectorised form over the text column (same votes as the row form).

    Attributes:
        vectorised: ``fn(texts: pyarrow string array) -> int8 [n]`` votes.
        vectorised_lower: The same votes from ``pyarrow.compute.utf8_lower(texts)`` (a caller
            that keeps the lowercased column saves the lowering per edit), or ``None``.
    """

    vectorised: VectorisedFn | None = None
    vectorised_lower: VectorisedFn | None = None


def keyword_lf(name: str, words: Sequence[str], label: int, *, lower: bool = True) -> VectorisedLF:
    """An LF voting ``label`` when the text contains any of ``words`` (substring match).

    >>> lf = keyword_lf("spammy", ["free", "win"], 1)
    >>> lf({"text": "Win a prize"}), lf({"text": "hello"})
    (1, -1)
    >>> texts = pa.array(["Win a prize", "hello"])
    >>> lf.vectorised(texts).tolist(), lf.vectorised_lower(pc.utf8_lower(texts)).tolist()
    ([1, -1], [1, -1])
    """
    words = tuple(word.lower() if lower else word for word in words)

    def row_form(x: Any) -> int:
        text = x["text"].lower() if lower else x["text"]
        return label if any(word in text for word in words) else ABSTAIN

    def matches(texts: pa.Array) -> np.ndarray:
        hit = np.zeros(len(texts), bool)
        for word in words:
            hit |= pc.match_substring(texts, word).to_numpy(zero_copy_only=False)
        return np.where(hit, label, ABSTAIN).astype(VOTE_DTYPE)

    def vectorised(texts: pa.Array) -> np.ndarray:
        return matches(pc.utf8_lower(texts) if lower else texts)

    return VectorisedLF(name=name, f=row_form, vectorised=vectorised, vectorised_lower=matches if lower else None)


def regex_lf(name: str, pattern: str, label: int, *, ignore_case: bool = True) -> VectorisedLF:
    """An LF voting ``label`` when ``pattern`` matches the text (use the common subset of
    Python ``re`` and RE2 syntax: the vectorised form runs RE2).

    >>> lf = regex_lf("has_link", r"https?://", 1)
    >>> lf({"text": "see http://x"}), lf.vectorised(pa.array(["see http://x", "no"])).tolist()
    (1, [1, -1])
    """
    compiled = re.compile(pattern, re.IGNORECASE if ignore_case else 0)

    def row_form(x: Any) -> int:
        return label if compiled.search(x["text"]) else ABSTAIN

    def vectorised(texts: pa.Array) -> np.ndarray:
        hit = pc.match_substring_regex(texts, pattern, ignore_case=ignore_case)
        return np.where(hit.to_numpy(zero_copy_only=False), label, ABSTAIN).astype(VOTE_DTYPE)

    return VectorisedLF(name=name, f=row_form, vectorised=vectorised)


def lf_fingerprint(lf: LabelingFunction) -> str:
    """A hash of everything an LF's votes depend on: a changed LF gets a new fingerprint.

    Covers the name, the code of ``f`` (nested code included), its closure, defaults and the
    **values of the module globals it reads** (a helper function by its own code and globals, a
    module by its name), the resources and the ``pre`` preprocessors (the same way), and the
    vectorised form. Equal across processes for values whose ``repr`` is (sets and dicts are
    sorted); an object whose ``repr`` holds its address fingerprints differently in every
    process, so its LF is re-applied rather than silently reused.

    >>> WORDS = ["free"]
    >>> def has_word(x):
    ...     return 1 if any(word in x["text"] for word in WORDS) else ABSTAIN
    >>> before = lf_fingerprint(LabelingFunction("has_word", has_word))
    >>> WORDS.append("win")
    >>> lf_fingerprint(LabelingFunction("has_word", has_word)) == before
    False
    """
    parts = (
        lf.name,
        _stable_repr(lf.f, set()),
        _stable_repr(dict(lf.resources), set()),
        [_stable_repr(preprocess, set()) for preprocess in lf.pre],
        _stable_repr(getattr(lf, "vectorised", None), set()),
        _stable_repr(getattr(lf, "vectorised_lower", None), set()),
    )
    return hashlib.sha256(repr(parts).encode("utf-8")).hexdigest()[:16]


def _code_parts(code: Any) -> list[Any]:
    """The bytecode, names and constants of a code object and of the code nested in it."""
    parts: list[Any] = [code.co_code, code.co_names]
    for const in code.co_consts:
        parts.extend(_code_parts(const) if hasattr(const, "co_code") else [repr(const)])
    return parts


def _global_names(code: Any) -> set[str]:
    """Every name a code object (or code nested in it) may read as a global."""
    names = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_code"):
            names |= _global_names(const)
    return names


def _function_repr(f: Any, seen: set[int]) -> str:
    """A function by its code, closure, defaults and the values of the globals it reads."""
    code = f.__code__
    module_globals = getattr(f, "__globals__", {})
    read = sorted(name for name in _global_names(code) if name in module_globals)
    closure = [_stable_repr(cell.cell_contents, seen) for cell in (f.__closure__ or ())]
    return repr((
        _code_parts(code), closure, _stable_repr(f.__defaults__, seen),
        _stable_repr(f.__kwdefaults__, seen),
        [(name, _stable_repr(module_globals[name], seen)) for name in read],
    ))  # fmt: skip


def _stable_repr(value: Any, seen: set[int]) -> str:
    """``repr`` made deterministic for containers and deep for functions (``seen``: cycles)."""
    if isinstance(value, (str, bytes, int, float, bool, type(None))):
        return repr(value)
    if id(value) in seen:
        return "<cycle>"
    seen = seen | {id(value)}
    if isinstance(value, LabelingFunction):
        return "lf:" + lf_fingerprint(value)
    if isinstance(value, ModuleType):
        return f"module:{value.__name__}"
    if isinstance(value, type):
        return f"class:{value.__module__}.{value.__qualname__}"
    if hasattr(value, "__code__"):
        return _function_repr(value, seen)
    if isinstance(value, Mapping):
        items = (f"{_stable_repr(k, seen)}: {_stable_repr(v, seen)}" for k, v in value.items())
        return "{" + ", ".join(sorted(items)) + "}"
    if isinstance(value, (set, frozenset)):
        return "{" + ", ".join(sorted(_stable_repr(v, seen) for v in value)) + "}"
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__}(" + ", ".join(_stable_repr(v, seen) for v in value) + ")"
    if isinstance(value, re.Pattern):
        return f"re({value.pattern!r}, {value.flags})"
    return repr(value)
