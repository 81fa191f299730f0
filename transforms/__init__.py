"""epoxy-beam's transforms; the names below are the public API for LF authors.

    from transforms import ABSTAIN, keyword_lf, labeling_function, regex_lf

An LF file needs nothing else (and never imports :mod:`pipelines`).
"""

from transforms.core.lfs import ABSTAIN, LabelingFunction, keyword_lf, labeling_function, regex_lf

__all__ = ["ABSTAIN", "LabelingFunction", "keyword_lf", "labeling_function", "regex_lf"]
