"""The noise-aware Metropolis step and the one kernel builder behind ``rmh`` and ``mala``.

A kernel proposes ``x'`` (a :class:`Proposal`), asks the estimator for ``Delta S-hat`` and its
variance, and accepts with ``log a = min(0, -Delta S-hat - u + log q(x | x') - log q(x' | x))``,
``u`` the :mod:`penalty <uqmcmc.mcmc.penalties>` of that variance. The random walk
(:mod:`uqmcmc.mcmc.rmh`) and Langevin (:mod:`uqmcmc.mcmc.mala`) differ only in their proposal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from blackjax.base import SamplingAlgorithm, build_sampling_algorithm
from blackjax.mcmc import proposal as blackjax_proposal

from uqmcmc._validation import positive
from uqmcmc.mcmc.checks import check_estimator, check_outputs, check_start
from uqmcmc.mcmc.estimators import Cache, DeltaEstimate
from uqmcmc.mcmc.penalties import Penalty, as_penalty

Array = jax.Array
Kernel = Callable[[Array, "NoisyState", Any, Any], tuple["NoisyState", "NoisyInfo"]]

__all__ = [
    "NoisyState",
    "NoisyInfo",
    "Proposal",
    "init_state",
    "metropolis_step",
    "build_metropolis_kernel",
    "metropolis_algorithm",
]


class NoisyState(NamedTuple):
    """State of the noise-aware kernels: the position and the estimator's cache there.

    ``logdensity`` (``-S``, or ``-S-bar`` of an energy surrogate in ``mean`` mode) is available
    when the estimator knows it; otherwise reading it raises ``AttributeError`` (so
    ``hasattr(state, "logdensity")`` is ``False`` and ``run_chains`` records no ``lp``).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from uqmcmc.mcmc import ExactDelta, GradientDelta
    >>> from uqmcmc.targets import Gaussian
    >>> target = Gaussian(jnp.zeros(2), jnp.eye(2))
    >>> state = init_state(jnp.ones(2), ExactDelta(target), with_grad=True)
    >>> state.position.tolist(), float(state.logdensity), state.cache.grad.tolist()
    ([1.0, 1.0], -1.0, [1.0, 1.0])
    >>> from uqmcmc.uq.exact import ExactSurrogate  # a gradient surrogate: no log-density
    >>> exact_grad = GradientDelta(ExactSurrogate(target))
    >>> hasattr(init_state(jnp.ones(2), exact_grad, with_grad=True), "logdensity")
    False
    """

    position: Array
    cache: Cache

    @property
    def logdensity(self) -> Array:
        if self.cache.logdensity is None:
            raise AttributeError("this estimator knows no log-density at the position")
        return self.cache.logdensity


class NoisyInfo(NamedTuple):
    """Per-step statistics of the noise-aware kernels.

    acceptance_rate
        ``min(1, exp(log a))`` of the proposal (0 when it was rejected outright).
    is_accepted
        Whether the proposal was accepted.
    delta_mean
        The estimate ``Delta S-hat`` of the proposal.
    delta_var
        Its variance: zero (exact), known (oracle), the backend's epistemic variance of the
        estimate (``mean`` mode) or the sample variance of the mean of the draws (``draws``
        mode); the estimator's ``variance`` attribute says which.
    penalty
        The penalty ``u`` (``inf`` where the estimated-variance rule is out of range).
    nonfinite
        A prediction was not finite: the move was rejected.
    out_of_range
        The estimated-variance penalty was outside its valid range: the move was rejected.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.mcmc import NoisyOracle, rmh
    >>> from uqmcmc.targets import Gaussian
    >>> est = NoisyOracle(Gaussian(jnp.zeros(2), jnp.eye(2)), sigma=0.5)
    >>> alg = rmh(est, step_size=1.0)
    >>> _, info = jax.jit(alg.step)(jax.random.key(0), alg.init(jnp.zeros(2)))
    >>> info._fields
    ('acceptance_rate', 'is_accepted', 'delta_mean', 'delta_var', 'penalty', 'nonfinite',
     'out_of_range')
    >>> float(info.delta_var), float(info.penalty), bool(info.nonfinite)
    (0.25, 0.125, False)
    """

    acceptance_rate: Array
    is_accepted: Array
    delta_mean: Array
    delta_var: Array
    penalty: Array
    nonfinite: Array
    out_of_range: Array


def init_state(position: Array, estimator: Any, with_grad: bool) -> NoisyState:
    """Check ``position`` against ``estimator`` and build the initial :class:`NoisyState`.

    ``with_grad`` caches the estimator's mean gradient (MALA's drift). An integer position is
    cast to float; a position that is not one configuration raises ``ValueError``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from uqmcmc.mcmc import ExactDelta
    >>> from uqmcmc.targets import Phi4
    >>> state = init_state(jnp.zeros((4, 4), dtype=int), ExactDelta(Phi4(4, 0.5, 1.0)), False)
    >>> state.position.dtype, float(state.logdensity), state.cache.grad is None
    (dtype('float32'), -16.0, True)
    >>> init_state(jnp.zeros((2, 4, 4)), ExactDelta(Phi4(4, 0.5, 1.0)), False)
    Traceback (most recent call last):
        ...
    ValueError: position has shape (2, 4, 4), but the Phi4 expects configurations of shape (4, 4)
    """
    position = jnp.asarray(position)
    if not jnp.issubdtype(position.dtype, jnp.floating):
        position = position.astype(float)
    estimator.check_position(position)
    check_outputs(estimator, position, with_grad)
    cache = estimator.init(position, with_grad)
    check_start(cache)
    return NoisyState(position, cache)


def metropolis_step(
    rng_key: Array,
    state: NoisyState,
    proposed: NoisyState,
    estimate: DeltaEstimate,
    penalty: Penalty,
    log_q_ratio: Array | float = 0.0,
) -> tuple[NoisyState, NoisyInfo]:
    """Accept or reject ``proposed`` with ``log a = -Delta S-hat - u + log_q_ratio``.

    ``log_q_ratio = log q(x | x') - log q(x' | x)`` (zero for a symmetric proposal). A
    non-finite estimate, a negative or non-finite variance (both counted in ``nonfinite``) or
    an out-of-range penalty rejects the move.

    Examples
    --------
    A downhill estimate is accepted for sure unless its penalty outweighs it; a non-finite one
    is rejected and counted.

    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.mcmc import CeperleyDewing, DeltaEstimate
    >>> from uqmcmc.mcmc.estimators import Cache
    >>> x, x_new = NoisyState(jnp.zeros(2), Cache()), NoisyState(jnp.ones(2), Cache())
    >>> key, rule = jax.random.key(0), CeperleyDewing()
    >>> downhill = DeltaEstimate(jnp.asarray(-1.0), jnp.asarray(0.5), jnp.asarray(True))
    >>> state, info = metropolis_step(key, x, x_new, downhill, rule)
    >>> state.position.tolist(), bool(info.is_accepted), float(info.penalty)
    ([1.0, 1.0], True, 0.25)
    >>> broken = DeltaEstimate(jnp.asarray(jnp.nan), jnp.asarray(0.0), jnp.asarray(False))
    >>> state, info = metropolis_step(key, x, x_new, broken, rule)
    >>> state.position.tolist(), bool(info.is_accepted), bool(info.nonfinite)
    ([0.0, 0.0], False, True)
    >>> impossible = DeltaEstimate(jnp.asarray(-1.0), jnp.asarray(-4.0), jnp.asarray(True))
    >>> state, info = metropolis_step(key, x, x_new, impossible, rule)
    >>> state.position.tolist(), bool(info.is_accepted), bool(info.nonfinite)
    ([0.0, 0.0], False, True)
    """
    # A variance below zero or not finite is impossible: the move is rejected and counted as
    # non-finite (a negative variance would make the penalty negative and raise acceptance).
    var_ok = jnp.isfinite(estimate.var) & (estimate.var >= 0)
    u, valid = penalty(jnp.where(var_ok, estimate.var, 0.0))
    finite = estimate.finite & var_ok
    ok = finite & valid
    log_p = jnp.where(
        ok, blackjax_proposal.safe_energy_diff(log_q_ratio, estimate.mean + u), -jnp.inf
    )
    new_state, (accepted, p_accept, _) = blackjax_proposal.static_binomial_sampling(
        rng_key, log_p, state, proposed
    )
    info = NoisyInfo(
        acceptance_rate=p_accept,
        is_accepted=accepted,
        delta_mean=estimate.mean,
        delta_var=estimate.var,
        penalty=u,
        nonfinite=~finite,
        out_of_range=~valid,
    )
    return new_state, info


def _symmetric(state: NoisyState, proposed: NoisyState, step_size: Any) -> float:
    return 0.0


class Proposal(NamedTuple):
    """How a kernel moves: the proposal ``x -> x'`` and its density ratio.

    propose
        ``propose(rng_key, state, step_size) -> x'``.
    log_q_ratio
        ``log_q_ratio(state, proposed_state, step_size) = log q(x | x') - log q(x' | x)``;
        zero (the default) for a symmetric proposal.
    with_grad
        Whether the proposal uses the estimator's mean gradient (``state.cache.grad``): the
        initial state and every estimate then cache it.

    Examples
    --------
    A uniform random walk, run by the shared kernel:

    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.mcmc import ExactDelta, NoPenalty
    >>> from uqmcmc.targets import Gaussian
    >>> def uniform_walk(key, state, step_size):
    ...     x = state.position
    ...     return x + step_size * jax.random.uniform(key, x.shape, minval=-1.0, maxval=1.0)
    >>> walk = Proposal(uniform_walk)
    >>> est = ExactDelta(Gaussian(jnp.zeros(2), jnp.eye(2)))
    >>> kernel = build_metropolis_kernel(walk, NoPenalty())
    >>> state, info = kernel(jax.random.key(0), walk.init(jnp.zeros(2), est), est, 0.5)
    >>> state.position.shape, float(info.delta_var), walk.init(jnp.zeros(2), est).cache.grad
    ((2,), 0.0, None)
    """

    propose: Callable[[Array, NoisyState, Any], Array]
    log_q_ratio: Callable[[NoisyState, NoisyState, Any], Array | float] = _symmetric
    with_grad: bool = False

    def init(self, position: Array, estimator: Any) -> NoisyState:
        """The initial state at ``position`` (:func:`init_state` with this ``with_grad``)."""
        return init_state(position, estimator, with_grad=self.with_grad)


def build_metropolis_kernel(proposal: Proposal, penalty: Penalty) -> Kernel:
    """Build ``kernel(rng_key, state, estimator, step_size) -> (state, info)``.

    One step: split the key in three (proposal, estimate, acceptance), propose ``x'``, estimate
    ``Delta S`` (with the gradient at ``x'`` when the proposal needs it), then
    :func:`metropolis_step`. The estimator and step size are kernel arguments (BlackJAX's
    low-level layout), so one kernel serves several of them.

    Parameters
    ----------
    proposal
        The :class:`Proposal` (e.g. :data:`uqmcmc.mcmc.rmh.RANDOM_WALK`,
        :data:`uqmcmc.mcmc.mala.LANGEVIN`).
    penalty
        A penalty, already resolved (:func:`~uqmcmc.mcmc.as_penalty`).

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.mcmc import CeperleyDewing, NoisyOracle
    >>> from uqmcmc.mcmc.rmh import RANDOM_WALK
    >>> from uqmcmc.targets import Gaussian
    >>> est = NoisyOracle(Gaussian(jnp.zeros(2), jnp.eye(2)), sigma=1.0)
    >>> kernel = build_metropolis_kernel(RANDOM_WALK, CeperleyDewing())
    >>> state, info = kernel(jax.random.key(0), RANDOM_WALK.init(jnp.zeros(2), est), est, 0.5)
    >>> float(info.delta_var), float(info.penalty)
    (1.0, 0.5)
    """
    if not callable(penalty):
        raise TypeError(f"penalty must be a penalty (see as_penalty), got {penalty!r}")
    # rmh never asked for a gradient: estimators written for it need not take the keyword
    grad_kwargs = {"with_grad": True} if proposal.with_grad else {}

    def kernel(
        rng_key: Array, state: NoisyState, estimator: Any, step_size: Any
    ) -> tuple[NoisyState, NoisyInfo]:
        k_prop, k_est, k_acc = jax.random.split(rng_key, 3)
        x_new = proposal.propose(k_prop, state, step_size)
        estimate, cache = estimator.estimate(
            k_est, state.position, x_new, state.cache, **grad_kwargs
        )
        proposed = NoisyState(x_new, cache)
        log_q_ratio = proposal.log_q_ratio(state, proposed, step_size)
        return metropolis_step(k_acc, state, proposed, estimate, penalty, log_q_ratio)

    return kernel


def metropolis_algorithm(
    proposal: Proposal, estimator: Any, step_size: Any, acceptance: str | Penalty
) -> SamplingAlgorithm:
    """The ``SamplingAlgorithm`` of a proposal, an estimator, a step size and a rule.

    Checks the step size, the estimator and the rule (once, with the estimator's ``n_draws``)
    and fixes them in the kernel of :func:`build_metropolis_kernel`: what ``rmh(...)`` and
    ``mala(...)`` return.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.mcmc import NoisyOracle
    >>> from uqmcmc.mcmc.mala import LANGEVIN
    >>> from uqmcmc.targets import Gaussian
    >>> est = NoisyOracle(Gaussian(jnp.zeros(2), jnp.eye(2)), sigma=1.0, n_draws=4)
    >>> alg = metropolis_algorithm(LANGEVIN, est, 0.1, "ceperley-dewing-estimated")
    >>> state, info = jax.jit(alg.step)(jax.random.key(0), alg.init(jnp.zeros(2)))
    >>> state.cache.grad.shape, bool(info.penalty > 0)
    ((2,), True)
    """
    positive("step_size", step_size)
    check_estimator(estimator)
    penalty = as_penalty(acceptance, estimator.n_draws)  # validated now, not at the first step
    kernel = build_metropolis_kernel(proposal, penalty)
    return build_sampling_algorithm(kernel, proposal.init, estimator, kernel_args=(step_size,))
