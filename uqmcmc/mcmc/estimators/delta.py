"""The pieces every ``Delta S`` estimator shares: the estimate, the cache, quadrature rules."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from uqmcmc._validation import positive_int

Array = jax.Array

__all__ = ["QUADRATURE", "Cache", "DeltaEstimate", "standard_normal"]

#: Line-integral rules ``Delta S ~ sum_j w_j grad S(x + t_j delta) . delta``: ``(t_j, w_j)``.
QUADRATURE: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "first-order": ((0.0,), (1.0,)),
    "trapezoid": ((0.0, 1.0), (0.5, 0.5)),
    "simpson": ((0.0, 0.5, 1.0), (1.0 / 6.0, 4.0 / 6.0, 1.0 / 6.0)),
}


class DeltaEstimate(NamedTuple):
    """One estimate of ``S(x') - S(x)``.

    mean
        The estimate ``Delta S-hat`` (for ``draws`` mode, the mean of the per-draw values).
    var
        Variance of ``mean`` (see the estimator's ``variance`` attribute for its kind).
    finite
        Whether every prediction the estimate used (and the gradient cached at ``x'``) is finite;
        the kernels reject a move whose estimate is not.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.targets import Gaussian
    >>> from uqmcmc.mcmc.estimators import NoisyOracle
    >>> est = NoisyOracle(Gaussian(jnp.zeros(2), jnp.eye(2)), sigma=0.5)
    >>> x, x_new = jnp.zeros(2), jnp.ones(2)
    >>> d, _ = est.estimate(jax.random.key(0), x, x_new, est.init(x))
    >>> d._fields, float(d.var), bool(d.finite)  # d.mean is 1 (the exact change) + noise
    (('mean', 'var', 'finite'), 0.25, True)
    """

    mean: Array
    var: Array
    finite: Array


class Cache(NamedTuple):
    """What an estimator keeps at the chain's current position (``None`` when not used).

    logdensity
        ``-S(x)`` (or ``-S-bar(x)``, the surrogate's mean) when it is known.
    grad
        Deterministic gradient of the action (the predictive mean for a surrogate): MALA's drift.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from uqmcmc.targets import Gaussian
    >>> from uqmcmc.mcmc.estimators import ExactDelta
    >>> est = ExactDelta(Gaussian(jnp.zeros(2), jnp.eye(2)))
    >>> cache = est.init(jnp.ones(2), with_grad=True)
    >>> float(cache.logdensity), cache.grad.tolist()
    (-1.0, [1.0, 1.0])
    """

    logdensity: Array | None = None
    grad: Array | None = None


def standard_normal(key: Array, shape: tuple, dtype=float) -> Array:
    """``jax.random.normal(key, shape)``, drawn flat and reshaped.

    Same distribution; XLA on CPU compiles a flat draw several times faster than a
    multi-dimensional one under ``vmap`` (seconds per kernel for lattice-shaped noise).

    Examples
    --------
    >>> import jax
    >>> z = standard_normal(jax.random.key(0), (4000, 2, 2))
    >>> z.shape, z.dtype
    ((4000, 2, 2), dtype('float32'))
    >>> bool(abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05)  # 16000 draws: SE 0.008
    True
    """
    return jax.random.normal(key, (math.prod(shape),), dtype=dtype).reshape(shape)


def _choice(name: str, value: Any, options) -> str:
    if value not in options:
        raise ValueError(f"{name} must be one of {sorted(options)}, got {value!r}")
    return value


def _all_finite(*arrays) -> Array:
    out = jnp.asarray(True)
    for a in arrays:
        if a is not None:
            out = out & jnp.all(jnp.isfinite(a))
    return out


def _dot(a: Array, delta: Array) -> Array:
    """``sum_i a_i delta_i`` over the trailing ``delta.ndim`` axes of ``a``."""
    return jnp.sum(a * delta, axis=tuple(range(a.ndim - delta.ndim, a.ndim)))


def _nodes(x: Array, x_new: Array, ts) -> Array:
    """The points ``x + t (x_new - x)`` for ``t in ts``, stacked on a new leading axis."""
    t = jnp.asarray(ts, dtype=x.dtype).reshape((-1,) + (1,) * x.ndim)
    return x + t * (x_new - x)


def _weighted(values: Array, weights) -> Array:
    """``sum_j w_j values[j]``: the weighted sum over the leading (node) axis."""
    w = jnp.asarray(weights, dtype=values.dtype)
    return jnp.tensordot(w, values, axes=(0, 0))


def _sample_mean_var(draws: Array) -> tuple[Array, Array]:
    """Mean of per-draw estimates (axis 0) and the sample variance of that mean."""
    n = draws.shape[0]
    return jnp.mean(draws, axis=0), jnp.var(draws, axis=0, ddof=1) / n


def _non_negative(name: str, value: Any) -> float:
    try:
        ok = math.isfinite(float(value)) and float(value) >= 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _n_draws(mode: str, n_draws: Any) -> int | None:
    if mode == "draws":
        if n_draws is None:
            raise ValueError("n_draws is required in mode='draws' (an integer >= 2)")
        return positive_int("n_draws", n_draws, minimum=2)
    if n_draws is not None:
        raise ValueError(f"n_draws is only used in mode='draws', got n_draws={n_draws!r}")
    return None


def _same_shape(x: Array, got: tuple, what: str) -> None:
    if tuple(got) != x.shape:
        raise ValueError(f"position has shape {x.shape}, but {what} has shape {tuple(got)}")


def _probe(fn, x: Array, what: str):
    """``jax.eval_shape(fn, x)``, turning a failure into a ``ValueError`` naming ``position``."""
    try:
        return jax.eval_shape(fn, jax.ShapeDtypeStruct(x.shape, x.dtype))
    except (TypeError, ValueError) as err:
        raise ValueError(f"position of shape {x.shape} does not fit the {what}: {err}") from err


def _declared_shape(obj: Any, x: Array) -> None:
    """Compare ``x`` with a declared configuration shape (``shape`` or ``in_shape``), if any."""
    for attr in ("shape", "in_shape"):
        shape = getattr(obj, attr, None)
        if isinstance(shape, tuple) and tuple(shape) != x.shape:
            raise ValueError(
                f"position has shape {x.shape}, but the {type(obj).__name__} expects "
                f"configurations of shape {tuple(shape)}"
            )


def _action_change(cache: Cache, new: Cache) -> Array:
    """``S(x') - S(x)`` from two cached log-densities, as ``(-lp') - (-lp)``.

    The same number as ``lp - lp'`` (negation is exact), but written the way BlackJAX does: the
    other arrangement makes XLA's CPU compiler duplicate the proposal's random draws into several
    consumers (measured: up to 7.6x the sampler work in an exact MALA step).
    """
    return (-new.logdensity) - (-cache.logdensity)
