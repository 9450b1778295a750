r"""Out of the training domain: how often a chain visits configurations where a backend's
epistemic variance exceeds everything it showed on held-out, in-distribution configurations.

The calibrated range is the largest score (a configuration's epistemic variance,
:func:`uqmcmc.uq.acquisition.uncertainty_scores`) on ``n`` held-out configurations drawn like
the training set. For a configuration from that same distribution the chance of exceeding it
is ``u = 1 - F(max)``, which is Beta(1, n) distributed over test splits: ``1 / (n + 1)`` on
average, and below ``1 - (1 - level)^{1/n}`` with probability ``level`` (0.206 for ``n = 20``
at 99 %, 0.025 for ``n = 180``). A chain's fraction of scores above the range is then *out of
range* when it exceeds that limit by more than ``z`` Monte Carlo standard errors (the error
from the effective sample size of the indicator, autocorrelated along a chain); the
smallest fraction the check would flag, at that error, is its power.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from uqmcmc import _arviz

__all__ = ["OutOfRange", "out_of_range"]


@dataclass(frozen=True)
class OutOfRange:
    """A chain's share of configurations beyond a backend's calibrated range.

    Attributes
    ----------
    fraction, error
        The share of the chain's scores above ``threshold`` and its Monte Carlo standard error.
    ess
        The effective sample size used for ``error``: that of the indicator "above the range"
        (of the scores, when the indicator is constant; the number of chains if neither has
        one).
    threshold
        The calibrated range: the largest reference (held-out) score.
    n_reference
        The number of reference scores.
    expected
        ``1 / (n_reference + 1)``: the mean share for configurations like the reference ones.
    limit
        The ``level`` quantile of that share over reference sets (Beta(1, n)).
    detectable
        The smallest share this check would flag at this ``ess``.
    out_of_range
        ``fraction - z * error > limit``.

    Examples
    --------
    >>> r = out_of_range(np.arange(1.0, 20.0), np.full((2, 50), 30.0))
    >>> r.fraction, r.out_of_range, round(r.expected, 3)
    (1.0, True, 0.05)
    """

    fraction: float
    error: float
    ess: float
    threshold: float
    n_reference: int
    expected: float
    limit: float
    detectable: float
    out_of_range: bool

    def as_dict(self) -> dict:
        """The fields as a dict (a table row).

        Examples
        --------
        >>> sorted(out_of_range([1.0, 2.0], np.zeros((2, 4))).as_dict())[:3]
        ['detectable', 'error', 'ess']
        """
        return asdict(self)


def _detectable(limit: float, ess: float, z: float) -> float:
    """The share ``p`` with ``p - z sqrt(p (1 - p) / ess) = limit`` (the larger root)."""
    c = z * z / ess
    a, b = 1.0 + c, 2.0 * limit + c
    return float(min(1.0, (b + math.sqrt(max(b * b - 4.0 * a * limit * limit, 0.0))) / (2 * a)))


def out_of_range(reference, scores, *, level: float = 0.99, z: float = 2.0) -> OutOfRange:
    """How much of a chain lies beyond the calibrated range of ``reference`` scores.

    Parameters
    ----------
    reference
        ``(n,)``: scores of held-out configurations from the training distribution.
    scores
        ``(chain, draw)``: scores of the configurations a chain visited.
    level
        The quantile of the in-distribution share (Beta(1, n)) that a share must exceed.
    z
        Standard errors by which it must exceed it.

    Returns
    -------
    OutOfRange

    Examples
    --------
    Configurations like the reference ones stay within range; a shifted chain does not:

    >>> rng = np.random.default_rng(0)
    >>> reference = rng.lognormal(size=20)
    >>> same = out_of_range(reference, rng.lognormal(size=(4, 500)))
    >>> same.out_of_range, same.fraction < same.limit
    (False, True)
    >>> shifted = out_of_range(reference, rng.lognormal(1.5, size=(4, 500)))
    >>> shifted.out_of_range, shifted.fraction > 0.3
    (True, True)
    """
    reference = np.asarray(reference, dtype=float).ravel()
    scores = np.asarray(scores, dtype=float)
    if reference.size < 1 or not np.all(np.isfinite(reference)):
        raise ValueError("reference must hold at least one finite score")
    if scores.ndim != 2 or scores.size < 1:
        raise ValueError(f"scores must be (chain, draw), got shape {scores.shape}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    n = reference.size
    threshold = float(reference.max())
    above = ~(scores <= threshold)  # a NaN score (a broken prediction) counts as out of range
    fraction = float(above.mean())
    ess = math.nan
    if scores.shape[1] >= 4:
        if 0.0 < fraction < 1.0:  # the indicator's own autocorrelation
            ess = _arviz.ess(above.astype(float), "mean")
        else:  # a constant indicator: the scores' autocorrelation, for the power
            finite = np.where(np.isfinite(scores), scores, threshold + 1.0)
            if np.ptp(finite) > 0:
                ess = _arviz.ess(finite, "bulk")
    if not math.isfinite(ess) or ess <= 0:
        ess = float(scores.shape[0])  # no information on the autocorrelation: one per chain
    ess = min(float(ess), float(scores.size))
    error = math.sqrt(fraction * (1.0 - fraction) / ess)
    limit = 1.0 - (1.0 - level) ** (1.0 / n)
    return OutOfRange(
        fraction=fraction,
        error=error,
        ess=ess,
        threshold=threshold,
        n_reference=n,
        expected=1.0 / (n + 1),
        limit=limit,
        detectable=_detectable(limit, ess, z),
        out_of_range=bool(fraction - z * error > limit),
    )
