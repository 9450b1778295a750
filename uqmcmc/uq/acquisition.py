"""Where to label next: a configuration's uncertainty score (the backend's epistemic variance),
a threshold calibrated on the training inputs, and the selection of the configurations a chain
visited above it (used by :mod:`uqmcmc.workflows.active_learning`)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from uqmcmc._validation import positive_int

Array = jax.Array

__all__ = ["SCORE_BATCH", "calibrate_threshold", "select_uncertain", "uncertainty_scores"]

#: Configurations per backend call when scoring (the last batch is padded: one compilation).
SCORE_BATCH = 128


def _predict_var(backend: Any, x: Array) -> Array:
    """The epistemic variance of ``backend`` at ``x`` (``epistemic_only`` when it takes it)."""
    try:
        return backend.predict_mean_var(x, epistemic_only=True)[1]
    except TypeError:  # a Predictive without the keyword: its var is what it has
        return backend.predict_mean_var(x)[1]


def uncertainty_scores(backend: Any, x: Array, *, batch_size: int = SCORE_BATCH) -> np.ndarray:
    """Per-configuration score: the mean over output elements of the epistemic variance.

    ``x`` is ``(n, *shape)``; returns ``(n,)``. Evaluated in batches of ``batch_size`` (the
    last one padded with zeros, so that any ``n`` compiles one program).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> class Known:  # variance = x**2 per site: the score is the mean of x**2
    ...     def predict_mean_var(self, x, *, epistemic_only=False):
    ...         return x, x**2
    ...     def predict_draws(self, key, x, n): ...
    >>> x = jnp.stack([jnp.zeros((2, 2)), jnp.ones((2, 2)), jnp.full((2, 2), 2.0)])
    >>> uncertainty_scores(Known(), x, batch_size=2).tolist()
    [0.0, 1.0, 4.0]
    """
    x = jnp.asarray(x)
    batch_size = positive_int("batch_size", batch_size)
    n = x.shape[0]
    out = []
    for start in range(0, n, batch_size):
        chunk = x[start : start + batch_size]
        pad = batch_size - chunk.shape[0]
        if pad and n > batch_size:
            chunk = jnp.concatenate([chunk, jnp.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
        var = np.asarray(_predict_var(backend, chunk), dtype=float)
        out.append(var.reshape(var.shape[0], -1).mean(axis=1)[: batch_size - pad])
    return np.concatenate(out) if out else np.zeros(0)


def calibrate_threshold(backend: Any, x: Array, quantile: float = 0.95) -> float:
    """The ``quantile`` of :func:`uncertainty_scores` on ``x`` (the training inputs).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> class Known:  # variance = x**2 per site
    ...     def predict_mean_var(self, x, *, epistemic_only=False):
    ...         return x, x**2
    ...     def predict_draws(self, key, x, n): ...
    >>> x = jnp.arange(5.0)[:, None, None] * jnp.ones((5, 2, 2))  # scores 0, 1, 4, 9, 16
    >>> calibrate_threshold(Known(), x, 0.5), calibrate_threshold(Known(), x, 1.0)
    (4.0, 16.0)
    """
    if not 0.0 <= float(quantile) <= 1.0:
        raise ValueError(f"quantile must lie in [0, 1], got {quantile!r}")
    return float(np.quantile(uncertainty_scores(backend, x), float(quantile)))


def select_uncertain(
    positions: Any, scores: Any, threshold: float, max_new: int
) -> tuple[np.ndarray, np.ndarray]:
    """The recorded positions to label: above ``threshold``, distinct, spread along the chains.

    Parameters
    ----------
    positions
        ``(chain, draw, *shape)``: the recorded chain positions.
    scores
        ``(chain, draw)``: their :func:`uncertainty_scores`.
    threshold
        Positions scoring strictly above it are flagged.
    max_new
        At most this many are selected: the distinct flagged positions (a repeated position,
        as a rejected step leaves, counts once), ordered chain by chain and draw by draw, are
        thinned to ``max_new`` evenly spaced ones (first and last included).

    Returns
    -------
    selected
        Flat indices into ``(chain * draw)`` of the selected positions, ascending.
    flagged
        ``(chain, draw)`` booleans: which positions scored above the threshold.

    Examples
    --------
    >>> import numpy as np
    >>> positions = np.arange(8.0).reshape(2, 4, 1)  # 2 chains, 4 draws, one site
    >>> positions[0, 2] = positions[0, 1]  # a rejected step: the position repeats
    >>> scores = np.array([[0.1, 0.9, 0.9, 0.2], [0.8, 0.7, 0.05, 0.95]])
    >>> selected, flagged = select_uncertain(positions, scores, 0.5, max_new=10)
    >>> selected.tolist(), int(flagged.sum())  # 0.9 at [0, 2] repeats [0, 1]: dropped
    ([1, 4, 5, 7], 5)
    >>> select_uncertain(positions, scores, 0.5, max_new=2)[0].tolist()  # first and last
    [1, 7]
    >>> select_uncertain(positions, scores, np.inf, max_new=2)[0].tolist()
    []
    """
    scores = np.asarray(scores, dtype=float)
    positions = np.asarray(positions)
    if scores.ndim != 2 or positions.shape[:2] != scores.shape:
        raise ValueError(
            f"positions (chain, draw, ...) and scores (chain, draw) must agree, got "
            f"{positions.shape} and {scores.shape}"
        )
    max_new = positive_int("max_new", max_new, minimum=0)
    flagged = scores > threshold
    above = np.flatnonzero(flagged.ravel())
    if above.size:
        rows = positions.reshape(scores.size, -1)[above]
        _, first = np.unique(rows, axis=0, return_index=True)
        above = above[np.sort(first)]
    if above.size > max_new:
        pick = np.unique(np.round(np.linspace(0, above.size - 1, max_new)).astype(int))
        above = above[pick]
    return above.astype(int), flagged
