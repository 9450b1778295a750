"""Random-walk Metropolis driven by a ``Delta S`` estimator, with a noise penalty.

The BlackJAX layout (``init``, ``build_kernel``, ``as_top_level_api``); the proposal is
BlackJAX's normal random walk ``x' = x + step_size * N(0, 1)``, the acceptance uses the
estimator's ``Delta S-hat`` and the penalty of the acceptance rule (see
:mod:`uqmcmc.mcmc.acceptance`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
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

__all__ = ["RMHState", "RMHInfo", "init", "build_kernel", "as_top_level_api"]

RMHState = NoisyState
RMHInfo = NoisyInfo


def init(position: Array, estimator: Any) -> NoisyState:
    """Initial state: the position and the estimator's cache there.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from uqmcmc.mcmc import ExactDelta
    >>> from uqmcmc.targets import Gaussian
    >>> state = init(jnp.ones(2), ExactDelta(Gaussian(jnp.zeros(2), jnp.eye(2))))
    >>> float(state.logdensity), state.cache.grad is None  # no drift, no gradient
    (-1.0, True)
    """
    return init_state(position, estimator, with_grad=False)


def build_kernel(acceptance: str | Callable = "ceperley-dewing"):
    """Build the kernel ``kernel(rng_key, state, estimator, step_size) -> (state, info)``.

    The estimator and step size are kernel arguments (BlackJAX's low-level layout), so one
    kernel serves several of them; :func:`as_top_level_api` fixes both.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.mcmc import NoisyOracle
    >>> from uqmcmc.targets import Gaussian
    >>> est = NoisyOracle(Gaussian(jnp.zeros(2), jnp.eye(2)), sigma=1.0)
    >>> kernel = build_kernel("none")  # the naive rule: no penalty
    >>> state, info = kernel(jax.random.key(0), init(jnp.zeros(2), est), est, 0.5)
    >>> float(info.delta_var), float(info.penalty)
    (1.0, 0.0)
    """
    check_acceptance(acceptance)

    def kernel(
        rng_key: Array, state: NoisyState, estimator: Any, step_size: Any
    ) -> tuple[NoisyState, NoisyInfo]:
        k_prop, k_est, k_acc = jax.random.split(rng_key, 3)
        x = state.position
        x_new = x + step_size * standard_normal(k_prop, x.shape, x.dtype)
        estimate, cache = estimator.estimate(k_est, x, x_new, state.cache)
        penalty = resolve_penalty(acceptance, estimator.n_draws)
        return metropolis_step(k_acc, state, NoisyState(x_new, cache), estimate, penalty)

    return kernel


def as_top_level_api(
    estimator: Any, step_size: Any, acceptance: str | Callable = "ceperley-dewing"
) -> SamplingAlgorithm:
    """Noise-aware random-walk Metropolis as a BlackJAX ``SamplingAlgorithm``.

    Parameters
    ----------
    estimator
        A ``Delta S`` estimator: :class:`~uqmcmc.mcmc.ExactDelta`,
        :class:`~uqmcmc.mcmc.NoisyOracle`, :class:`~uqmcmc.mcmc.EnergyDelta`,
        :class:`~uqmcmc.mcmc.GradientDelta`.
    step_size
        Standard deviation of the Gaussian proposal, ``> 0`` (may be a JAX tracer, e.g. while
        ``run_chains`` tunes it).
    acceptance
        ``"none"``, ``"ceperley-dewing"`` (default; no penalty when the estimate is exact) or
        ``"ceperley-dewing-estimated"`` (needs an estimator with ``n_draws >= 2``); or a
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
    >>> from uqmcmc.mcmc import NoisyOracle
    >>> est = NoisyOracle(Gaussian(jnp.zeros(2), jnp.eye(2)), sigma=1.0)
    >>> alg = as_top_level_api(est, step_size=1.0)
    >>> state, info = jax.jit(alg.step)(jax.random.key(0), alg.init(jnp.zeros(2)))
    >>> float(info.delta_var), float(info.penalty)
    (1.0, 0.5)
    """
    positive("step_size", step_size)
    check_estimator(estimator)
    resolve_penalty(acceptance, estimator.n_draws)  # validate now, not at the first step
    return build_sampling_algorithm(
        build_kernel(acceptance), init, estimator, kernel_args=(step_size,)
    )
