"""Small statistics shared by targets and diagnostics: block jackknife of derived quantities."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def _blocks(x: np.ndarray, n_blocks: int | None) -> np.ndarray:
    """Means of contiguous blocks: chains when there are many, else slices of each chain."""
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"expected samples of shape (chain, draw), got {x.shape}")
    n_chain, n_draw = x.shape
    if n_blocks is None:
        n_blocks = n_chain if n_chain >= 16 else n_chain * max(1, -(-20 // n_chain))
    per_chain = max(1, n_blocks // n_chain)
    if per_chain > n_draw:
        raise ValueError(f"cannot cut {n_draw} draws into {per_chain} blocks per chain")
    usable = (n_draw // per_chain) * per_chain
    return x[:, :usable].reshape(n_chain * per_chain, -1).mean(axis=1)


def jackknife(
    fn: Callable[..., float], samples: Sequence[np.ndarray], n_blocks: int | None = None
) -> tuple[float, float]:
    """Estimate ``fn(mean(s_1), mean(s_2), ...)`` and its block-jackknife standard error.

    Parameters
    ----------
    fn
        Function of the means of the series, e.g. ``lambda m2, m4: 1 - m4 / (3 * m2**2)``.
    samples
        Series of shape ``(chain, draw)`` (or ``(draw,)``), all the same shape.
    n_blocks
        Number of blocks. Default: one per chain when there are at least 16 chains, otherwise
        about 20 contiguous blocks cut evenly from the chains.

    Returns
    -------
    (estimate, error)

    Examples
    --------
    For a plain mean with one block per chain the jackknife error is the standard error of the
    chain means; for a derived quantity it propagates the correlation of the series.

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(16, 500))
    >>> est, err = jackknife(lambda m: m, [x])
    >>> bool(np.isclose(est, x.mean())), bool(np.isclose(err, x.mean(axis=1).std(ddof=1) / 4))
    (True, True)
    >>> ratio, ratio_err = jackknife(lambda a, b: a / b, [x**2, x**4])  # <x^2>/<x^4> ~ 1/3
    >>> bool(abs(ratio - 1 / 3) < 4 * ratio_err)
    True
    """
    if len(samples) == 0:
        raise ValueError("jackknife needs at least one series")
    shapes = {np.shape(s) for s in samples}
    if len(shapes) != 1:
        raise ValueError(f"all series must have the same shape, got {sorted(shapes)}")
    blocks = np.stack([_blocks(s, n_blocks) for s in samples])  # (series, blocks)
    n = blocks.shape[1]
    if n < 2:
        raise ValueError("jackknife needs at least two blocks")
    total = blocks.sum(axis=1, keepdims=True)
    loo = (total - blocks) / (n - 1)
    theta_i = np.array([fn(*loo[:, i]) for i in range(n)], dtype=float)
    estimate = float(fn(*blocks.mean(axis=1)))
    error = float(np.sqrt((n - 1) / n * np.sum((theta_i - theta_i.mean()) ** 2)))
    return estimate, error
