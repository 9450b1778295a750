"""Checks made once before a chain runs: what an estimator and its backend return (shapes), that
the estimator fits the kernels, and that the start position is one a chain can leave (finite
action and gradient)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from uqmcmc.mcmc.estimators import Cache

Array = jax.Array

__all__ = ["check_estimator", "check_outputs", "check_start"]


def _shape_error(what: str, got: tuple, expected: tuple) -> ValueError:
    return ValueError(f"{what} has shape {got}, expected {expected}")


def check_outputs(estimator: Any, position: Array, with_grad: bool = False) -> None:
    """Probe once (shapes only, nothing is computed) what the estimator and its backend return.

    A backend's ``predict_mean_var`` must give a variance of the mean's shape and
    ``predict_draws(key, x, n)`` an array ``(n, *mean.shape)`` (for one configuration and for
    a batch of them); the cached log-density must be a scalar and the cached gradient must
    have the position's shape (``estimate`` itself is not traced here: one trace per run).
    Raises ``ValueError`` naming the array: a wrong shape would otherwise broadcast silently.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from uqmcmc.mcmc import GradientDelta
    >>> class OneVariance:  # predict_mean_var returns one variance for the whole field
    ...     def predict_mean_var(self, x):
    ...         return x, jnp.ones(x.shape[:-1])
    ...     def predict_draws(self, key, x, n):
    ...         return jnp.broadcast_to(x, (n, *x.shape))
    >>> check_outputs(GradientDelta(OneVariance()), jnp.zeros(2))
    Traceback (most recent call last):
        ...
    ValueError: OneVariance.predict_mean_var: the variance has shape (), expected (2,) ...
    """
    key = jax.ShapeDtypeStruct((), jax.eval_shape(lambda: jax.random.key(0)).dtype)
    x = jax.ShapeDtypeStruct(position.shape, position.dtype)
    backend = getattr(estimator, "backend", None)
    if backend is not None and callable(getattr(backend, "predict_draws", None)):
        name = type(backend).__name__
        mean, var = jax.eval_shape(backend.predict_mean_var, x)
        if var.shape != mean.shape:
            raise ValueError(
                f"{name}.predict_mean_var: the variance has shape {var.shape}, expected "
                f"{mean.shape} (the mean's)"
            )
        batch = jax.ShapeDtypeStruct((3, *position.shape), position.dtype)
        for inputs, out in ((x, mean.shape), (batch, (3, *mean.shape))):
            try:
                draws = jax.eval_shape(lambda k, y: backend.predict_draws(k, y, 2), key, inputs)
            except (TypeError, ValueError) as err:
                raise ValueError(
                    f"{name}.predict_draws(key, x, n=2) fails for x of shape {inputs.shape}: "
                    f"the draws must have shape {(2, *out)} (n, *mean shape); {err}"
                ) from None
            if draws.shape != (2, *out):
                raise ValueError(
                    f"{name}.predict_draws(key, x, n=2) for x of shape {inputs.shape}: the "
                    f"draws have shape {draws.shape}, expected {(2, *out)} (n, *mean shape)"
                )
    cache = jax.eval_shape(lambda y: estimator.init(y, with_grad), x)
    name = type(estimator).__name__
    if cache.logdensity is not None and cache.logdensity.shape != ():
        raise _shape_error(f"{name}: the log-density", cache.logdensity.shape, ())
    if cache.grad is not None and cache.grad.shape != position.shape:
        raise _shape_error(f"{name}: the gradient", cache.grad.shape, position.shape)


def _refuse_start(logdensity_ok: Any, grad_ok: Any) -> None:
    # Host numpy only: a callback that calls back into JAX (``np.all`` of a jax.Array runs a
    # JAX reduction) can deadlock while other threads run compiled programs.
    logdensity_ok, grad_ok = np.asarray(logdensity_ok), np.asarray(grad_ok)
    if not bool(np.all(logdensity_ok)):
        raise ValueError(
            "the start position has a non-finite action (log-density): the chain could never "
            "move; start from a configuration where the action is finite"
        )
    if not bool(np.all(grad_ok)):
        raise ValueError(
            "the start position has a non-finite gradient: the chain could never move; start "
            "from a configuration where the gradient is finite"
        )


def check_start(cache: Cache) -> None:
    """Refuse a start whose cached action or gradient is not finite (``ValueError``).

    Checked at once for a concrete position; inside ``jit`` / ``vmap`` (as
    :func:`~uqmcmc.mcmc.run_chains` initialises its chains) through a host callback, so the
    error then reaches the caller wrapped in JAX's runtime error, with this message.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from uqmcmc.mcmc.estimators import Cache
    >>> check_start(Cache(logdensity=jnp.asarray(-1.0)))  # finite: passes
    >>> check_start(Cache(logdensity=jnp.asarray(-jnp.inf)))
    Traceback (most recent call last):
        ...
    ValueError: the start position has a non-finite action (log-density): ...
    """
    if cache.logdensity is None and cache.grad is None:
        return
    lp_ok = True if cache.logdensity is None else jnp.all(jnp.isfinite(cache.logdensity))
    grad_ok = True if cache.grad is None else jnp.all(jnp.isfinite(cache.grad))
    if not any(isinstance(v, jax.core.Tracer) for v in (lp_ok, grad_ok)):
        _refuse_start(lp_ok, grad_ok)
        return
    jax.debug.callback(_refuse_start, jnp.asarray(lp_ok), jnp.asarray(grad_ok))


def check_estimator(estimator: Any) -> None:
    """Raise ``TypeError`` unless ``estimator`` has the estimator interface.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from uqmcmc.mcmc import ExactDelta
    >>> from uqmcmc.targets import Gaussian
    >>> check_estimator(ExactDelta(Gaussian(jnp.zeros(2), jnp.eye(2))))  # passes silently
    >>> check_estimator(Gaussian(jnp.zeros(2), jnp.eye(2)))  # a target is not an estimator
    Traceback (most recent call last):
        ...
    TypeError: estimator must be a Delta S estimator (...); Gaussian has no `init`
    """
    for name in ("init", "estimate", "check_position"):
        if not callable(getattr(estimator, name, None)):
            raise TypeError(
                f"estimator must be a Delta S estimator (ExactDelta, NoisyOracle, EnergyDelta, "
                f"GradientDelta); {type(estimator).__name__} has no `{name}`"
            )
