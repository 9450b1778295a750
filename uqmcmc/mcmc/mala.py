"""Metropolis-adjusted Langevin driven by a ``Delta S`` estimator, with a noise penalty.

The drift uses the estimator's deterministic (mean) gradient, so the proposal
``x' = x - step_size * grad S-bar(x) + sqrt(2 step_size) N(0, 1)`` and its density are exact;
the noise lives in ``Delta S-hat`` alone. BlackJAX layout (``init``, ``build_kernel``,
``as_top_level_api``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from blackjax.base import SamplingAlgorithm, build_sampling_algorithm

from uqmcmc._validation import positive
from uqmcmc.mcmc.acceptance import (
    NoisyInfo,
    NoisyState,
    check_acceptance,
    check_estimator,
    init_state,
    metropolis_step,
    resolve_penalty,
)
from uqmcmc.mcmc.estimators import standard_normal

Array = jax.Array

__all__ = ["MALAState", "MALAInfo", "init", "build_kernel", "as_top_level_api"]

MALAState = NoisyState
MALAInfo = NoisyInfo


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
    return init_state(position, estimator, with_grad=True)


def _log_q(x_to: Array, x_from: Array, grad_from: Array, step_size: Any) -> Array:
    """Log-density (up to a constant) of proposing ``x_to`` from ``x_from``."""
    r = x_to - x_from + step_size * grad_from
    return -jnp.sum(r * r) / (4.0 * step_size)


def build_kernel(acceptance: str | Callable = "ceperley-dewing"):
    """Build the kernel ``kernel(rng_key, state, estimator, step_size) -> (state, info)``.

    The estimator and step size are kernel arguments (BlackJAX's low-level layout), so one
    kernel serves several of them; :func:`as_top_level_api` fixes both.

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
    check_acceptance(acceptance)

    def kernel(
        rng_key: Array, state: NoisyState, estimator: Any, step_size: Any
    ) -> tuple[NoisyState, NoisyInfo]:
        k_prop, k_est, k_acc = jax.random.split(rng_key, 3)
        x, grad = state.position, state.cache.grad
        noise = standard_normal(k_prop, x.shape, x.dtype)
        x_new = x - step_size * grad + jnp.sqrt(2.0 * step_size) * noise
        estimate, cache = estimator.estimate(k_est, x, x_new, state.cache, with_grad=True)
        log_q_ratio = _log_q(x, x_new, cache.grad, step_size) - _log_q(x_new, x, grad, step_size)
        penalty = resolve_penalty(acceptance, estimator.n_draws)
        proposed = NoisyState(x_new, cache)
        return metropolis_step(k_acc, state, proposed, estimate, penalty, log_q_ratio)

    return kernel


def as_top_level_api(
    estimator: Any, step_size: Any, acceptance: str | Callable = "ceperley-dewing"
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
        penalty function ``var -> (u, valid)`` (e.g.
        :func:`~uqmcmc.mcmc.acceptance.switch_penalty`).

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
    positive("step_size", step_size)
    check_estimator(estimator)
    resolve_penalty(acceptance, estimator.n_draws)  # validate now, not at the first step
    return build_sampling_algorithm(
        build_kernel(acceptance), init, estimator, kernel_args=(step_size,)
    )
