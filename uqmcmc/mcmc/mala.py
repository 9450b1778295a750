"""Metropolis-adjusted Langevin driven by a ``Delta S`` estimator, with a noise penalty.

The drift uses the estimator's deterministic (mean) gradient, so the proposal
``x' = x - step_size * grad S-bar(x) + sqrt(2 step_size) N(0, 1)`` (:data:`LANGEVIN`) and its
density are exact; the noise lives in ``Delta S-hat`` alone. BlackJAX layout (``init``,
``build_kernel``, ``as_top_level_api``; ``uqmcmc.mcmc.mala`` is callable like ``blackjax.mala``
and has ``.init`` and ``.build_kernel``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from blackjax.base import SamplingAlgorithm

from uqmcmc.mcmc.estimators import standard_normal
from uqmcmc.mcmc.metropolis import (
    Kernel,
    NoisyInfo,
    NoisyState,
    Proposal,
    build_metropolis_kernel,
    metropolis_algorithm,
)
from uqmcmc.mcmc.penalties import Penalty, as_penalty

Array = jax.Array

__all__ = ["MALAState", "MALAInfo", "LANGEVIN", "init", "build_kernel", "as_top_level_api"]

MALAState = NoisyState
MALAInfo = NoisyInfo


def _log_q(x_to: Array, x_from: Array, grad_from: Array, step_size: Any) -> Array:
    """Log-density (up to a constant) of proposing ``x_to`` from ``x_from``."""
    r = x_to - x_from + step_size * grad_from
    return -jnp.sum(r * r) / (4.0 * step_size)


def _propose(rng_key: Array, state: NoisyState, step_size: Any) -> Array:
    x, grad = state.position, state.cache.grad
    noise = standard_normal(rng_key, x.shape, x.dtype)
    return x - step_size * grad + jnp.sqrt(2.0 * step_size) * noise


def _log_q_ratio(state: NoisyState, proposed: NoisyState, step_size: Any) -> Array:
    x, x_new = state.position, proposed.position
    return _log_q(x, x_new, proposed.cache.grad, step_size) - _log_q(
        x_new, x, state.cache.grad, step_size
    )


#: The Langevin proposal: the mean-gradient drift and its density correction.
LANGEVIN = Proposal(_propose, _log_q_ratio, with_grad=True)


def init(position: Array, estimator: Any) -> NoisyState:
    """Initial state: the position and the estimator's cache there (with the mean gradient).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from uqmcmc.mcmc import ExactDelta
    >>> from uqmcmc.targets import Gaussian
    >>> state = init(jnp.ones(2), ExactDelta(Gaussian(jnp.zeros(2), jnp.eye(2))))
    >>> float(state.logdensity), state.cache.grad.tolist()  # the drift's gradient
    (-1.0, [1.0, 1.0])
    """
    return LANGEVIN.init(position, estimator)


def build_kernel(
    acceptance: str | Penalty = "ceperley-dewing", n_draws: int | None = None
) -> Kernel:
    """Build the kernel ``kernel(rng_key, state, estimator, step_size) -> (state, info)``.

    The estimator and step size are kernel arguments (BlackJAX's low-level layout), so one
    kernel serves several of them; :func:`as_top_level_api` fixes both.

    Parameters
    ----------
    acceptance
        A rule name or a penalty (see :func:`~uqmcmc.mcmc.as_penalty`).
    n_draws
        The estimators' ``n_draws``, needed by ``"ceperley-dewing-estimated"``.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.mcmc import ExactDelta
    >>> from uqmcmc.targets import Gaussian
    >>> est = ExactDelta(Gaussian(jnp.zeros(2), jnp.eye(2)))
    >>> kernel = build_kernel()  # Ceperley-Dewing: no penalty for an exact estimate
    >>> state, info = kernel(jax.random.key(0), init(jnp.ones(2), est), est, 0.01)
    >>> float(info.penalty), bool(info.acceptance_rate > 0.99)  # a small step: accepted
    (0.0, True)
    """
    return build_metropolis_kernel(LANGEVIN, as_penalty(acceptance, n_draws))


def as_top_level_api(
    estimator: Any, step_size: Any, acceptance: str | Penalty = "ceperley-dewing"
) -> SamplingAlgorithm:
    """Noise-aware MALA as a BlackJAX ``SamplingAlgorithm``.

    Parameters
    ----------
    estimator
        A ``Delta S`` estimator (:class:`~uqmcmc.mcmc.ExactDelta`,
        :class:`~uqmcmc.mcmc.NoisyOracle`, :class:`~uqmcmc.mcmc.EnergyDelta`,
        :class:`~uqmcmc.mcmc.GradientDelta`); its mean gradient drives the drift.
    step_size
        Langevin step ``> 0`` (BlackJAX's convention: proposal variance ``2 step_size``); may
        be a JAX tracer.
    acceptance
        ``"none"``, ``"ceperley-dewing"`` (default) or ``"ceperley-dewing-estimated"``; or a
        penalty (e.g. :class:`~uqmcmc.mcmc.Switch`, any function ``var -> (u, valid)``).

    Returns
    -------
    SamplingAlgorithm
        ``init(position)`` and ``step(rng_key, state) -> (NoisyState, NoisyInfo)``.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.targets import Gaussian
    >>> from uqmcmc.mcmc import ExactDelta
    >>> alg = as_top_level_api(ExactDelta(Gaussian(jnp.zeros(2), jnp.eye(2))), step_size=0.5)
    >>> state, info = jax.jit(alg.step)(jax.random.key(0), alg.init(jnp.ones(2)))
    >>> float(info.delta_var), state.logdensity.shape
    (0.0, ())
    """
    return metropolis_algorithm(LANGEVIN, estimator, step_size, acceptance)
