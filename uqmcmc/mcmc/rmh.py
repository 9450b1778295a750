"""Random-walk Metropolis driven by a ``Delta S`` estimator, with a noise penalty.

The BlackJAX layout (``init``, ``build_kernel``, ``as_top_level_api``; ``uqmcmc.mcmc.rmh`` is
callable like ``blackjax.rmh`` and has ``.init`` and ``.build_kernel``). The proposal is
BlackJAX's normal random walk ``x' = x + step_size * N(0, 1)`` (:data:`RANDOM_WALK`); the
acceptance uses the estimator's ``Delta S-hat`` and the penalty of the acceptance rule (see
:mod:`uqmcmc.mcmc.penalties` and :mod:`uqmcmc.mcmc.metropolis`).
"""

from __future__ import annotations

from typing import Any

import jax
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

__all__ = ["RMHState", "RMHInfo", "RANDOM_WALK", "init", "build_kernel", "as_top_level_api"]

RMHState = NoisyState
RMHInfo = NoisyInfo


def _propose(rng_key: Array, state: NoisyState, step_size: Any) -> Array:
    x = state.position
    return x + step_size * standard_normal(rng_key, x.shape, x.dtype)


#: The normal random walk: symmetric, no gradient.
RANDOM_WALK = Proposal(_propose)


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
    return RANDOM_WALK.init(position, estimator)


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
    >>> from uqmcmc.mcmc import NoisyOracle
    >>> from uqmcmc.targets import Gaussian
    >>> est = NoisyOracle(Gaussian(jnp.zeros(2), jnp.eye(2)), sigma=1.0)
    >>> kernel = build_kernel("none")  # the naive rule: no penalty
    >>> state, info = kernel(jax.random.key(0), init(jnp.zeros(2), est), est, 0.5)
    >>> float(info.delta_var), float(info.penalty)
    (1.0, 0.0)
    """
    return build_metropolis_kernel(RANDOM_WALK, as_penalty(acceptance, n_draws))


def as_top_level_api(
    estimator: Any, step_size: Any, acceptance: str | Penalty = "ceperley-dewing"
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
        penalty (e.g. :class:`~uqmcmc.mcmc.Switch`, any function ``var -> (u, valid)``).

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
    return metropolis_algorithm(RANDOM_WALK, estimator, step_size, acceptance)
