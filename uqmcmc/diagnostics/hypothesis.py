"""Hypothesis tests on autocorrelated chains: z-tests, Holm's correction, a block-permutation
two-sample Kolmogorov–Smirnov test, and the power of a z-test (its minimal detectable bias)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

from uqmcmc import _arviz
from uqmcmc._validation import positive, positive_int

__all__ = [
    "autocorrelation_time",
    "detection_power",
    "holm",
    "ks_test",
    "matched_blocks",
    "minimal_detectable_bias",
    "z_and_p",
]


def autocorrelation_time(x: np.ndarray) -> float:
    """Integrated autocorrelation time ``draws / ESS`` (smaller of bulk and tail ESS).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> round(autocorrelation_time(rng.normal(size=(4, 1000))))  # independent draws
    1
    """
    return x.size / min(_arviz.ess(x, "bulk"), _arviz.ess(x, "tail"), float(x.size))


def matched_blocks(samples: Sequence[np.ndarray], block_factor: float) -> list[np.ndarray]:
    """Cut the chains of every sample into blocks spanning the same number ``c`` of that
    sample's own autocorrelation times, so that blocks of either sample carry about the same
    information (and are exchangeable under the null hypothesis).

    With ``r_s`` the chain length of sample ``s`` in its autocorrelation times, the shortest
    ``r = min r_s`` is cut into ``ceil(r / block_factor)`` equal blocks per chain, which fixes
    ``c`` (at most ``block_factor``, over half of it unless whole chains are shorter); every
    other sample is cut into ``round(r_s / c)`` equal blocks per chain. The few draws left over
    are dropped from the start of each chain.

    Returns the blocks of each sample, shape ``(chain * blocks, length)``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> fast, slow = rng.normal(size=(2, 400)), np.repeat(rng.normal(size=(2, 40)), 10, axis=1)
    >>> [b.shape for b in matched_blocks([fast, slow], block_factor=20.0)]  # fewer, longer
    [(72, 11), (4, 200)]
    """
    lengths = [a.shape[1] / autocorrelation_time(a) for a in samples]
    shortest = min(lengths)
    c = shortest / math.ceil(shortest / block_factor)
    out = []
    for a, r in zip(samples, lengths, strict=True):
        k = max(1, round(r / c))
        n = a.shape[1] // k
        out.append(a[:, a.shape[1] - k * n :].reshape(a.shape[0] * k, n))
    return out


def ks_test(
    x: np.ndarray,
    y: np.ndarray,
    *,
    block_factor: float = 20.0,
    n_perm: int = 999,
    n_grid: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Two-sample Kolmogorov–Smirnov test between two autocorrelated chain sets.

    The statistic ``D`` is the largest difference of the two empirical CDFs, evaluated at up to
    ``n_grid`` quantiles of the pooled draws (exact KS ``D`` within about ``1 / n_grid``).
    Its significance comes from a permutation over blocks. Each sample's chains are cut into
    contiguous blocks spanning the same number ``c`` of that sample's OWN integrated
    autocorrelation time (``draws / ESS``): ``c`` is at most ``block_factor``, and smaller when
    one sample's chains are shorter than that (its blocks are then whole chains). Blocks from
    either sample then carry about the same information, so under the null hypothesis they are
    nearly exchangeable; they are reassigned at random between the samples, each weighing
    equally in its sample's CDF.

    Matching the blocks' information keeps the size when the samples mix at different speeds,
    e.g. short MALA chains against a long checkerboard reference: with one common block length
    the fast-mixing sample's blocks are far less noisy than the slow one's and the permutation
    null too narrow (exact-ΔS MALA against checkerboard chains of the compare workflow's quick
    run were rejected in 27-35% of repetitions at the 5% level; with matched blocks in
    4.5-5%). Long blocks keep the correlation between neighbouring blocks of a chain, which
    the permutation ignores, small (5.4 ± 0.4% false rejections at the 5% level with 20
    autocorrelation times, 6.2% with 5). Plain KS, which takes draws as independent, rejects
    identical distributions most of the time on correlated chains. The resolution is limited
    by the number of blocks: with whole chains as blocks, by the number of chains.

    Parameters
    ----------
    x, y
        Draws of shape ``(chain, draw)``, at least 4 draws per chain.
    block_factor
        Largest block length, in autocorrelation times (> 0).
    n_perm
        Number of random permutations; the smallest p-value is ``1 / (n_perm + 1)``.
    n_grid
        Number of pooled quantiles at which the CDFs are compared.
    seed
        Seed of the permutations (the result is deterministic).

    Returns
    -------
    (D, p_value)
        ``D`` between the draws the blocks keep (all but a few at the start of each chain).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> d, p = ks_test(rng.normal(size=(4, 500)), rng.normal(size=(4, 500)))
    >>> bool(p > 0.01)
    True
    >>> d, p = ks_test(rng.normal(size=(4, 500)), 1 + rng.normal(size=(4, 500)))
    >>> p
    0.001
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    for name, a in (("x", x), ("y", y)):
        if a.ndim != 2 or a.shape[1] < 4:
            raise ValueError(f"{name} must have shape (chain, draw) with draw >= 4, got {a.shape}")
    positive("block_factor", block_factor)
    n_perm = positive_int("n_perm", n_perm)
    n_grid = positive_int("n_grid", n_grid, minimum=2)
    bx, by = matched_blocks([x, y], block_factor)
    values = np.concatenate([bx.ravel(), by.ravel()])
    sizes = np.r_[np.full(bx.shape[0], bx.shape[1]), np.full(by.shape[0], by.shape[1])]
    owner = np.repeat(np.arange(sizes.size), sizes)
    # The CDFs are compared at (up to) n_grid quantiles of the pooled draws: a set that does not
    # change under permutation, so the test stays exact, and one small matrix product per batch.
    grid = np.unique(np.quantile(values, np.linspace(0, 1, n_grid + 1)[1:-1]))
    bins = owner * (grid.size + 1) + np.searchsorted(grid, values)
    counts = np.bincount(bins, minlength=sizes.size * (grid.size + 1)).reshape(sizes.size, -1)
    cdf = np.cumsum(counts, axis=1)[:, :-1] / sizes[:, None]  # each block's CDF on the grid
    cdf_sum = cdf.sum(axis=0)
    n_blocks, n_blocks_x = sizes.size, bx.shape[0]

    def statistic(in_x: np.ndarray) -> np.ndarray:  # in_x: (perms, blocks) 0/1
        sum_x = in_x @ cdf
        return np.abs(sum_x / n_blocks_x - (cdf_sum - sum_x) / (n_blocks - n_blocks_x)).max(axis=1)

    d = float(statistic((np.arange(n_blocks) < n_blocks_x)[None].astype(float))[0])
    rng = np.random.default_rng(seed)
    exceed = 0
    for start in range(0, n_perm, 100):
        keys = rng.random((min(100, n_perm - start), n_blocks))
        in_x = (np.argsort(keys, axis=1) < n_blocks_x).astype(float)
        exceed += int(np.sum(statistic(in_x) >= d - 1e-12))
    return d, (exceed + 1) / (n_perm + 1)


def z_and_p(diff: float, err: float) -> tuple[float, float]:
    """z-score ``diff / err`` and its two-sided normal p-value (``err = 0``: exact).

    Examples
    --------
    >>> z, p = z_and_p(0.1, 0.05)
    >>> round(z, 6), round(p, 4)
    (2.0, 0.0455)
    """
    if not (math.isfinite(diff) and math.isfinite(err)):
        return float("nan"), float("nan")
    if err == 0:
        return (0.0, 1.0) if diff == 0 else (math.copysign(math.inf, diff), 0.0)
    z = diff / err
    return z, float(2 * sps.norm.sf(abs(z)))


def holm(p: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values (``nan`` entries are left out of the family).

    Examples
    --------
    >>> holm(np.array([0.01, 0.04, np.nan, 0.03])).round(2).tolist()
    [0.03, 0.06, nan, 0.06]
    """
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok])]
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adj
    return out


def minimal_detectable_bias(
    bias_err: float | np.ndarray, level: float = 0.05, n_tests: int = 1, power: float = 0.8
) -> float | np.ndarray:
    """Smallest bias a two-sided z-test detects with probability ``power``.

    The test rejects when ``|bias / bias_err| > z_c`` with ``z_c = Phi^-1(1 - level / (2
    n_tests))`` (Bonferroni: the first and strictest step of Holm's correction over
    ``n_tests`` tests, so the statement holds for any Holm step). A bias ``b`` is detected with
    probability ``Phi(b / bias_err - z_c) + Phi(-b / bias_err - z_c)``; ignoring the second,
    tiny term, ``power`` is reached at ``b = (z_c + Phi^-1(power)) bias_err``.

    Examples
    --------
    >>> round(float(minimal_detectable_bias(0.004, 0.05, n_tests=9)), 4)  # sd, 9 tests
    0.0145
    >>> round(float(minimal_detectable_bias(1.0)), 3)  # 1.96 + 0.84 standard errors
    2.802
    """
    z_c = sps.norm.isf(level / (2 * n_tests))
    return (z_c + sps.norm.ppf(power)) * np.asarray(bias_err, dtype=float)


def detection_power(
    bias: float | np.ndarray, bias_err: float | np.ndarray, level: float = 0.05, n_tests: int = 1
) -> float | np.ndarray:
    """Probability that the two-sided z-test of :func:`minimal_detectable_bias` detects a true
    bias ``bias`` measured with standard error ``bias_err``.

    Examples
    --------
    >>> round(float(detection_power(2.802, 1.0)), 3)
    0.8
    >>> round(float(detection_power(0.0, 1.0)), 3)  # no bias: the false-alarm rate
    0.05
    """
    z_c = sps.norm.isf(level / (2 * n_tests))
    shift = np.asarray(bias, dtype=float) / np.asarray(bias_err, dtype=float)
    return sps.norm.cdf(shift - z_c) + sps.norm.cdf(-shift - z_c)
