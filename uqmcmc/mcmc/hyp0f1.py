"""The ``0F1`` series behind the estimated-variance Ceperley-Dewing penalty.

When the variance of ``Delta S-hat`` is itself estimated from ``n`` draws (``chi**2``, the sample
variance of their mean), ``u_B = -ln 0F1(; m; -m chi**2 / 2)`` with ``m = (n - 1) / 2`` makes
``exp(-u_B)`` an unbiased estimator of ``exp(-sigma**2 / 2)``; it is the closed form of
``chi**2/2 + chi**4/(4(n+1)) + chi**6/(3(n+1)(n+3)) + ...``. The series alternates, so it is
evaluated by a fixed number of terms planned once per ``n`` (in float64, with SciPy) and is valid
only below the first zero of ``0F1`` and where float32 evaluates it accurately.
:class:`~uqmcmc.mcmc.CeperleyDewingEstimated` is the penalty built on it.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import gammaln

Array = jax.Array

__all__ = ["estimated_penalty", "estimated_penalty_limit"]

# float32 evaluates the alternating 0F1 series to an absolute error of about 4e-7 times its
# largest term; the valid range is cut where that term exceeds this (abs. error ~ 4e-5).
_MAX_TERM = 100.0


@functools.cache
def _series_plan(n: int) -> tuple[float, float, int]:
    """``(m, y_max, K)``: ``0F1(; m; -y)`` by ``K`` series terms is accurate in float32 and
    positive for ``0 <= y <= y_max`` (below its first zero)."""
    m = (n - 1) / 2
    # above the first zero j_{m-1,1}^2 / 4, or far out where exp(-u_B) < 1e-4 anyway
    y_hi = min((m + 2.0 * m ** (1 / 3) + 3.0) ** 2 / 4, 10.0 * m + 10.0)
    k = np.arange(1, int(math.e * math.sqrt(y_hi)) + 60)
    y = np.linspace(0.0, y_hi, 4001)[1:]
    log_terms = k * np.log(y)[:, None] - (gammaln(m + k) - gammaln(m)) - gammaln(k + 1)
    with np.errstate(over="ignore", invalid="ignore"):
        f = 1.0 + np.sum((-1.0) ** k * np.exp(log_terms), axis=1)
    bad = (f <= 0) | (log_terms.max(axis=1) > math.log(_MAX_TERM))
    y_max = float(y[np.argmax(bad) - 1]) if bad.any() else float(y[-1])
    at_max = k * math.log(y_max) - (gammaln(m + k) - gammaln(m)) - gammaln(k + 1)
    n_terms = int(k[np.nonzero(at_max > math.log(1e-10))[0][-1]]) + 1
    return m, y_max, n_terms


def estimated_penalty_limit(n: int) -> float:
    """The largest ``chi**2`` at which :func:`estimated_penalty` is valid for ``n`` draws.

    It is the first zero of ``0F1(; m; -m chi**2 / 2)`` (about 5.4 at ``n = 10``, tending to
    ``n / 4``) for ``n`` up to about 40; above, float32 cannot evaluate the alternating series
    near the zero and the range is cut near ``chi**2 = 13-14``, where ``exp(-u_B) < 1e-3``.

    Parameters
    ----------
    n
        Number of draws behind the sample variance (``>= 2``).

    Returns
    -------
    float
        The upper end of the valid ``chi**2`` range.

    Examples
    --------
    >>> round(estimated_penalty_limit(10), 1)
    5.4
    """
    m, y_max, _ = _series_plan(int(n))
    return 2.0 * y_max / m


def estimated_penalty(chi2: Array, n: int) -> tuple[Array, Array]:
    """Ceperley-Dewing penalty from a variance ``chi2`` estimated from ``n`` draws.

    ``u_B = -ln 0F1(; m; -m chi2 / 2)``, ``m = (n - 1) / 2``; ``valid`` is ``False`` (and
    ``u_B = inf``: reject) beyond :func:`estimated_penalty_limit`.

    Parameters
    ----------
    chi2
        Sample variance of the estimate (any shape; traced or not).
    n
        Number of draws behind it (a static Python integer ``>= 2``).

    Returns
    -------
    tuple of Array
        ``(u_B, valid)``, both of the shape of ``chi2``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> u, valid = estimated_penalty(jnp.asarray(0.1), n=10)
    >>> round(float(u), 5), round(0.1 / 2 + 0.1**2 / 44 + 0.1**3 / (3 * 11 * 13), 5)
    (0.05023, 0.05023)
    """
    m, y_max, n_terms = _series_plan(int(n))
    chi2 = jnp.asarray(chi2)
    y = 0.5 * m * chi2
    k = jnp.arange(1, n_terms + 1, dtype=y.dtype)
    terms = jnp.cumprod(-y[..., None] / ((m + k - 1) * k), axis=-1)
    f = 1.0 + jnp.sum(terms, axis=-1)
    valid = (chi2 >= 0) & (y <= y_max) & (f > 0)
    return jnp.where(valid, -jnp.log(jnp.where(valid, f, 1.0)), jnp.inf), valid
