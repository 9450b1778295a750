"""Do rejected corrections come where the surrogate said it was unsure?

A delayed-acceptance step that the exact correction rejects wasted an exact evaluation: the
surrogate's ``Delta S-hat`` was wrong enough for the exact action to overturn it. If the
surrogate's predicted variance is informative, those rejections concentrate where it is large.
:func:`rejections_by_variance` bins the corrected steps (those whose sub-chain moved) into
equal-count bins of predicted variance and reports, per bin, the mean rejection probability
``1 - min(1, a)`` (Rao-Blackwellised: the probability, not the coin), and the **share of all
rejection probability that falls in the top bin**. With ``bins`` equal-count bins an
uninformative variance gives a share of ``1 / bins``; the share's standard error comes from a
block bootstrap along each chain, and the smallest share the data could have told from
``1 / bins`` (two-sided 5 %, 80 % power) is reported with it.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> var = rng.exponential(size=(4, 2000))
>>> reject = np.clip(0.02 * var, 0, 1)  # rejections grow with the predicted variance
>>> r = rejections_by_variance(var, 1 - reject, np.ones_like(var, bool), rng=1)
>>> r.top_share > r.detectable, r.informative
(True, True)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["VarianceRejections", "rejections_by_variance"]

#: z of a two-sided 5 % test plus z of 80 % power.
_Z_DETECT = 1.959964 + 0.841621


class VarianceRejections(NamedTuple):
    """The result of :func:`rejections_by_variance`.

    table
        One row per bin: ``bin`` (1 = lowest variance), ``var_low``, ``var_high`` (its range),
        ``n`` (corrected steps), ``rejection`` (mean rejection probability) and
        ``rejection_se`` (its standard error, ``sd / sqrt(n)``).
    top_share
        The top bin's share of the summed rejection probability (``nan`` without any).
    top_share_se
        Its block-bootstrap standard error.
    null_share
        ``1 / bins``: the share of an uninformative variance.
    detectable
        ``null_share + 2.8 top_share_se``: the smallest share these data could have told from
        ``null_share`` (two-sided 5 %, 80 % power).
    informative
        ``top_share`` is above ``null_share`` by more than ``1.96`` standard errors.
    rejections
        The summed rejection probability: the expected number of rejected corrections.

    Examples
    --------
    >>> import numpy as np
    >>> var = np.tile(np.arange(1.0, 11.0), (2, 10))  # (2 chains, 100 draws)
    >>> r = rejections_by_variance(var, 1 - 0.01 * var, np.ones(var.shape, bool))
    >>> r.null_share, round(r.top_share, 2), r.rejections
    (0.2, 0.35, 11.0)
    """

    table: object
    top_share: float
    top_share_se: float
    null_share: float
    detectable: float
    informative: bool
    rejections: float


def _top_share(var: np.ndarray, rej: np.ndarray, edge: float) -> float:
    total = rej.sum()
    return float(rej[var >= edge].sum() / total) if total > 0 else float("nan")


def rejections_by_variance(
    delta_var: np.ndarray,
    correction_acceptance: np.ndarray,
    moved: np.ndarray,
    bins: int = 5,
    block: int = 20,
    n_boot: int = 400,
    rng: int | np.random.Generator = 0,
) -> VarianceRejections:
    """Rejection probability of the exact correction against the predicted variance.

    Parameters
    ----------
    delta_var
        ``(chain, draw)``: the surrogate's predicted variance of each step's ``Delta S-hat``
        (``DelayedInfo.delta_var``).
    correction_acceptance
        ``(chain, draw)``: the correction's ``min(1, a)``.
    moved
        ``(chain, draw)``: the sub-chain moved (a correction was made: ``exact_evaluations``).
    bins
        Equal-count bins of predicted variance over the corrected steps (``>= 2``).
    block
        Length (in draws) of the blocks the bootstrap resamples along each chain, to respect
        autocorrelation.
    n_boot
        Bootstrap replicates.
    rng
        Seed or generator of the bootstrap.

    Returns
    -------
    VarianceRejections

    Raises
    ------
    ValueError
        Arrays of different shapes, fewer than ``2 bins`` corrected steps, or ``bins < 2``.

    Examples
    --------
    With an uninformative variance the top fifth holds about a fifth of the rejections:

    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> var, p = rng.exponential(size=(4, 3000)), 1 - 0.05 * rng.random((4, 3000))
    >>> r = rejections_by_variance(var, p, np.ones((4, 3000), bool))
    >>> round(r.null_share, 2), r.informative, bool(abs(r.top_share - 0.2) < 4 * r.top_share_se)
    (0.2, False, True)
    >>> r.table.columns.tolist()
    ['bin', 'var_low', 'var_high', 'n', 'rejection', 'rejection_se']
    """
    import pandas as pd

    var, acc, moved = (np.asarray(a) for a in (delta_var, correction_acceptance, moved))
    if not var.shape == acc.shape == moved.shape or var.ndim != 2:
        raise ValueError(
            "delta_var, correction_acceptance and moved must be (chain, draw) arrays of one "
            f"shape, got {var.shape}, {acc.shape}, {moved.shape}"
        )
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    moved = moved.astype(bool) & np.isfinite(var) & np.isfinite(acc)
    if moved.sum() < 2 * bins:
        raise ValueError(f"only {int(moved.sum())} corrected steps: too few for {bins} bins")
    rej = np.where(moved, 1.0 - acc, 0.0)
    v, r = var[moved], rej[moved]
    edges = np.quantile(v, np.linspace(0, 1, bins + 1))
    which = np.clip(np.searchsorted(edges[1:-1], v, side="right"), 0, bins - 1)
    rows = []
    for b in range(bins):
        rb = r[which == b]
        se = float(rb.std(ddof=1) / np.sqrt(len(rb))) if len(rb) > 1 else float("nan")
        rows.append({"bin": b + 1, "var_low": float(edges[b]), "var_high": float(edges[b + 1]),
                     "n": len(rb), "rejection": float(rb.mean()), "rejection_se": se})  # fmt: skip
    top_edge = edges[-2]
    share = _top_share(v, r, top_edge)

    # block bootstrap along each chain (whole blocks of draws, chains kept apart)
    gen = np.random.default_rng(rng)
    n_chain, n_draw = var.shape
    block = max(1, min(block, n_draw))
    n_blocks = -(-n_draw // block)
    shares = []
    for _ in range(n_boot):
        starts = gen.integers(0, n_draw - block + 1, size=(n_chain, n_blocks))
        idx = (starts[..., None] + np.arange(block)).reshape(n_chain, -1)[:, :n_draw]
        rows_idx = np.arange(n_chain)[:, None]
        m = moved[rows_idx, idx]
        shares.append(_top_share(var[rows_idx, idx][m], rej[rows_idx, idx][m], top_edge))
    se = float(np.nanstd(shares, ddof=1))
    null = 1.0 / bins
    return VarianceRejections(
        table=pd.DataFrame(rows),
        top_share=share,
        top_share_se=se,
        null_share=null,
        detectable=null + _Z_DETECT * se,
        informative=bool(share - null > 1.959964 * se),
        rejections=float(r.sum()),
    )
