"""Unsupervised per-LF estimates from :class:`~transforms.core.statistics.LabelStatistics`.

The estimators behind the label models of :mod:`transforms.core.label_models` (whose module doc
has the maths): FlyingSquid's triplet accuracies (:func:`triplet_accuracies`, from the
one-vs-rest second moments), the gold-free class balance (:func:`estimate_class_balance`), the
precision tables ``P(Y | λ_j = c)`` that match each LF's vote shares (:func:`precision_tables`),
majority vote's default table (:func:`default_precision`) and the class-conditional moment fit
(:func:`moment_precision`). Each returns plain arrays; none needs gold rows.

>>> a = np.array([0.8, 0.6, 0.4])
>>> triplet_signal(np.outer(a, a)).round(6).tolist()
[0.8, 0.6, 0.4]
"""

from __future__ import annotations

import numpy as np

from transforms.core.statistics import LabelStatistics

# Accuracy assumed for an LF whose accuracy cannot be estimated (Snorkel's prec_init is 0.7).
DEFAULT_ACCURACY = 0.7
# Estimated accuracies are clipped to this range (better than random, never certain).
ACCURACY_RANGE = (0.5, 0.95)


def one_vs_rest_moments(stats: LabelStatistics) -> tuple[np.ndarray, np.ndarray]:
    """Second and first moments of the one-vs-rest indicators ``λ^c ∈ {-1, 0, +1}``.

    Returns:
        ``(second [k, m, m], first [k, m])``: ``E[λ_i^c λ_j^c]`` and ``E[λ_i^c]`` over all rows.
        For ``k = 2`` both classes give the same second moment (the usual ±1 encoding).
    """
    n = max(stats.n, 1)
    co = stats.co_votes.astype(np.float64)
    second = np.empty((stats.cardinality, stats.num_lfs, stats.num_lfs))
    first = np.empty((stats.cardinality, stats.num_lfs))
    coverage = np.diagonal(co)
    for c in range(stats.cardinality):
        both = stats.class_agree[c].astype(np.float64)
        i_c = stats.class_with[c].astype(np.float64)  # i votes c, j votes
        j_c = i_c.T  # j votes c, i votes
        neither = co - i_c - j_c + both
        mixed = (i_c - both) + (j_c - both)
        second[c] = (both + neither - mixed) / n
        votes_c = np.diagonal(both)
        first[c] = (2 * votes_c - coverage) / n
    return second, first


def triplet_signal(
    second: np.ndarray, aggregation: str = "median", co_voting: np.ndarray | None = None
) -> np.ndarray:
    """FlyingSquid's triplet estimate of ``|a_i| = |E[λ_i Y]|`` from ``E[λ_i λ_j]`` ``[m, m]``.

    Triplets whose denominator is 0 are skipped; an LF with no usable triplet gets NaN (the
    caller substitutes the default accuracy). With ``co_voting``, a triplet ``(i, j, k)`` is used
    only when every pair of it votes together on some row: a pair that never co-votes has
    ``E[λ_i λ_j] = 0`` by construction, which says nothing about accuracy (FlyingSquid counts it
    as a signal of 0, which reads a disjoint LF as a coin flip).

    Args:
        second: ``[m, m]`` second moments (the diagonal is ignored).
        aggregation: ``"median"`` or ``"mean"`` over the triplets of each LF.
        co_voting: ``bool [m, m]``, whether each pair of LFs votes together on some row;
            ``None`` uses every triplet (FlyingSquid's estimate).

    Returns:
        ``float64 [m]``.

    >>> a = np.array([0.8, 0.6, 0.4])
    >>> triplet_signal(np.outer(a, a)).round(6).tolist()
    [0.8, 0.6, 0.4]
    """
    if aggregation not in ("median", "mean"):
        raise ValueError(f"aggregation={aggregation!r} is unknown: use 'median' or 'mean'")
    m = second.shape[0]
    out = np.full(m, np.nan)
    if m < 3:
        return out
    together = np.ones((m, m), bool) if co_voting is None else np.asarray(co_voting, bool)
    j, k = np.triu_indices(m, 1)
    den = second[j, k]
    valid = np.abs(den) > 1e-12
    j, k, den = j[valid], k[valid], den[valid]
    for i in range(m):
        use = (j != i) & (k != i) & together[i, j] & together[i, k]
        if not use.any():
            continue
        values = np.sqrt(np.abs(second[i, j[use]] * second[i, k[use]] / den[use]))
        out[i] = np.median(values) if aggregation == "median" else values.mean()
    return out


def triplet_accuracies(stats: LabelStatistics, aggregation: str = "median") -> np.ndarray:
    """Per-LF, per-class one-vs-rest accuracies ``float64 [m, k]`` given that the LF votes.

    ``accuracy[j, c]`` = P(λ_j^c = Y^c | LF j votes), clipped to :data:`ACCURACY_RANGE`;
    :data:`DEFAULT_ACCURACY` where the triplets are undefined (fewer than 3 LFs, an LF that
    never votes, no triplet of LFs that pairwise co-vote).
    """
    second, _ = one_vs_rest_moments(stats)
    coverage = stats.coverage_counts / max(stats.n, 1)
    acc = np.full((stats.num_lfs, stats.cardinality), DEFAULT_ACCURACY)
    for c in range(stats.cardinality):
        signal = triplet_signal(second[c], aggregation, stats.co_votes > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            estimate = 0.5 * (1 + signal / coverage)
        ok = np.isfinite(estimate) & (coverage > 0)
        acc[ok, c] = estimate[ok]
    return np.clip(acc, *ACCURACY_RANGE)


def triplet_identified(stats: LabelStatistics) -> np.ndarray:
    """``bool [m]``: the LFs whose accuracy the triplets estimate (the others get the default).

    An LF needs two partners that both co-vote with it and with each other (see
    :func:`triplet_signal`); LFs that never overlap, as in examples/digits, have none.
    """
    second, _ = one_vs_rest_moments(stats)
    together = stats.co_votes > 0
    return np.isfinite(triplet_signal(second[0], "median", together)) & (stats.coverage_counts > 0)


def estimate_class_balance(stats: LabelStatistics, accuracies: np.ndarray) -> np.ndarray:
    """Estimates ``π`` without gold rows, per class ``c``.

    From LFs that vote both ``c`` and other classes (5-95% of their votes ``c``), the symmetric
    estimate ``E[λ_j^c] = a_j^c (2π_c - 1)`` (median over those LFs). A class without such LFs
    takes the share of all LF votes that go to it (add-one smoothed): the symmetric formula does
    not hold for the usual one-class LFs, on which it left the range (SMS, 13% spam, gave
    ``π(spam) = 0.98``). Clipped to ``[0.02, 0.98]``, normalised. Measured against each dev set's
    valid-split balance (total variation, benchmarks/README.md): 0.018 / 0.020 on youtube / sms
    (only one-class LFs), before 0.033 / 0.852.

    >>> votes = np.array([[0, -1], [0, -1], [-1, 1], [-1, -1]], np.int8)  # one-class LFs
    >>> stats = LabelStatistics.empty(2, 2).add(votes)
    >>> estimate_class_balance(stats, np.full((2, 2), 0.7)).round(3).tolist()
    [0.6, 0.4]
    """
    _, first = one_vs_rest_moments(stats)
    coverage = stats.coverage_counts / max(stats.n, 1)
    share = vote_shares(stats)
    votes = stats.class_counts.sum(axis=0).astype(np.float64) + 1.0
    pi = votes / votes.sum()
    for c in range(stats.cardinality):
        signal = coverage * (2 * accuracies[:, c] - 1)
        both_ways = (coverage > 0) & (share[:, c] >= 0.05) & (share[:, c] <= 0.95)
        ok = both_ways & (signal > 0.05 * coverage)
        if ok.any():
            pi[c] = 0.5 * (1 + np.median(first[c, ok] / signal[ok]))
    pi = np.clip(pi, 0.02, 0.98)
    return pi / pi.sum()


def precision_tables(
    accuracies: np.ndarray, class_balance: np.ndarray, vote_share: np.ndarray
) -> np.ndarray:
    """Turns one-vs-rest accuracies into ``P(Y = y | λ_j = c)`` ``[m, k, k]``, matching each
    LF's observed vote shares as FlyingSquid does.

    Per class ``c`` and LF ``j``, the joint table of "votes ``c``" × "``Y = c``" given that the LF
    votes is fixed by three facts: its accuracy ``A`` (the triplet estimate), the share ``q`` of
    its votes that are ``c`` (observed) and the class prior ``π_c`` (abstaining independently of
    ``Y``): ``P(votes c, Y = c) = (q + π_c + A - 1) / 2``, hence ``P(Y = c | λ_j = c) =
    P(votes c, Y = c) / q``, not a symmetric classifier (which is what Bayes' rule on the
    accuracy alone assumes, and what made our triplet model differ from FlyingSquid's by up to
    0.47 in ``P(Y = 1)`` on YouTube). The joint is then kept feasible, within ``[max(0, A + q -
    1), min(q, A)]`` (both cells of the table non-negative): for an LF that only ever votes ``c``
    (``q = 1``) the formula would put ``P(votes other, Y ≠ c) = (A - π_c) / 2`` on a vote it
    never casts, and the bound makes it right ``A`` of the time, as its accuracy says (on the
    gold-free valid splits: sms F1 0.15 → 0.29, youtube 0.800 → 0.808). Entries are clipped into
    ``[0.001, 0.999]``; the mass not on ``y = c`` is spread over the other classes in proportion
    to ``π``.

    Args:
        accuracies: ``[m, k]`` one-vs-rest accuracies given a vote.
        class_balance: ``π [k]``.
        vote_share: ``[m, k]`` share of each LF's votes that go to each class.

    >>> prec = precision_tables(np.array([[0.8, 0.8]]), np.array([0.4, 0.6]), np.array([[0.0, 1.0]]))
    >>> round(float(prec[0, 1, 1]), 3)  # votes only class 1: right 0.8 of the time
    0.8
    """
    m, k = accuracies.shape
    pi = np.asarray(class_balance, np.float64)
    prec = np.empty((m, k, k))
    for c in range(k):
        q = np.maximum(vote_share[:, c], 1e-12)
        a = accuracies[:, c]
        joint = np.clip(0.5 * (q + pi[c] + a - 1.0), np.maximum(a + q - 1.0, 0.0), np.minimum(q, a))
        p_c = np.clip(joint / q, 1e-3, 1 - 1e-3)
        rest = np.delete(pi, c)
        spread = np.outer(1 - p_c, rest / rest.sum())
        prec[:, c, :] = np.insert(spread, c, p_c, axis=1)
    return prec


def vote_shares(stats: LabelStatistics) -> np.ndarray:
    """``float64 [m, k]``: the share of each LF's votes that go to each class (uniform for an LF
    that never votes)."""
    counts = stats.class_counts.astype(np.float64)
    total = counts.sum(axis=1, keepdims=True)
    return np.where(total > 0, counts / np.maximum(total, 1), 1.0 / stats.cardinality)


def default_precision(stats: LabelStatistics, class_balance: np.ndarray) -> np.ndarray:
    """``P(Y | λ_j = c)`` ``[m, k, k]`` = :data:`DEFAULT_ACCURACY` on ``y = c`` (Snorkel's
    ``prec_init``), the rest spread over the other classes in proportion to ``π``."""
    m, k = stats.num_lfs, stats.cardinality
    pi = np.asarray(class_balance, np.float64)
    prec = np.empty((m, k, k))
    for c in range(k):
        rest = np.delete(pi, c)
        row = np.insert((1 - DEFAULT_ACCURACY) * rest / rest.sum(), c, DEFAULT_ACCURACY)
        prec[:, c, :] = row
    return prec


def moment_precision(
    stats: LabelStatistics,
    class_balance: np.ndarray,
    *,
    iterations: int = 300,
    learning_rate: float = 0.05,
) -> np.ndarray:
    """Fits ``θ_ic = P(Y | λ_i = c)`` to the pairwise co-vote lifts (see the module doc).

    Minimises ``Σ_{i≠j, c, c'} w (L - Σ_y θ_ic[y] θ_jc'[y] / π_y)²`` over softmax-parameterised
    ``θ`` by Adam, where ``L = P(λ_i = c, λ_j = c') / (p_ic p_jc')`` is the observed lift and
    ``w = n p_ic p_jc'`` the co-votes expected under independence. It starts from
    :data:`DEFAULT_ACCURACY` (which breaks the label-permutation symmetry). A (LF, class) that
    is never voted, or never co-votes with another LF, keeps the default.

    Args:
        stats: Statistics with the joint counts.
        class_balance: ``π`` ``[k]``.
        iterations: Adam steps.
        learning_rate: Adam step size on the logits.

    Returns:
        ``float64 [m, k, k]`` ``P(Y = y | λ_j = c)``.
    """
    m, k = stats.num_lfs, stats.cardinality
    pi = np.asarray(class_balance, np.float64)
    prec = default_precision(stats, pi)
    targets = _lift_targets(stats)
    if targets is None:
        return prec
    active, lift, weight = targets
    flat = prec.reshape(m * k, k)
    flat[active] = _fit_lifts(np.log(flat[active]), lift, weight, pi, iterations, learning_rate)
    return flat.reshape(m, k, k)


def _lift_targets(stats: LabelStatistics) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """What :func:`moment_precision` fits: ``(active, lift, weight)`` over the (LF, class)
    rows ``active`` (of ``m * k``) that are voted and co-vote with another LF; ``lift`` and
    ``weight`` (normalised to sum 1) are ``[a, a]``. ``None`` with fewer than two such rows."""
    m, k = stats.num_lfs, stats.cardinality
    n = max(stats.n, 1)
    joint = stats.joint.reshape(m * k, m * k).astype(np.float64) / n
    p = np.diagonal(joint).copy()
    lf = np.repeat(np.arange(m), k)
    active = np.flatnonzero(p > 0)
    if active.size < 2:
        return None
    expected = np.outer(p[active], p[active])
    weight = n * expected * (lf[active][:, None] != lf[active][None, :])
    keep = weight.sum(axis=1) > 0
    active, weight, expected = active[keep], weight[np.ix_(keep, keep)], expected[np.ix_(keep, keep)]
    if active.size < 2:
        return None
    lift = joint[np.ix_(active, active)] / expected
    return active, lift, weight / weight.sum()


def _fit_lifts(
    z: np.ndarray, lift: np.ndarray, weight: np.ndarray, pi: np.ndarray, iterations: int, learning_rate: float
) -> np.ndarray:
    """Adam on the logits ``z [a, k]`` (from the starting ``log θ``) against the weighted lift
    residuals (:func:`moment_precision`); returns the fitted ``θ [a, k]``."""
    first, second = np.zeros_like(z), np.zeros_like(z)
    beta1, beta2 = 0.9, 0.999
    for step in range(1, iterations + 1):
        theta = _softmax_rows(z)
        scaled = theta / pi
        residual = weight * (lift - scaled @ theta.T)
        grad_theta = -4.0 * residual @ scaled
        grad = theta * (grad_theta - (theta * grad_theta).sum(axis=1, keepdims=True))
        first = beta1 * first + (1 - beta1) * grad
        second = beta2 * second + (1 - beta2) * grad**2
        z -= learning_rate * (first / (1 - beta1**step)) / (
            np.sqrt(second / (1 - beta2**step)) + 1e-12
        )
    return _softmax_rows(z)


def _softmax_rows(z: np.ndarray) -> np.ndarray:
    """The row-wise softmax of logits ``z``."""
    theta = np.exp(z - z.max(axis=1, keepdims=True))
    theta /= theta.sum(axis=1, keepdims=True)
    return theta
