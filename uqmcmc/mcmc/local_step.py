"""Position-dependent step sizes for the Langevin proposal, chosen from predicted variance.

A Metropolis-Hastings step whose Langevin proposal at ``x`` has its own step ``e(x)``,

``q(y | x) = N(y; x - e(x) grad S-bar(x), 2 e(x) I)``,

is reversible with respect to ``exp(-S-bar)`` for any positive function ``e`` as long as the
ratio uses each direction's own step, normalising constants included:

``log q(x|y) - log q(y|x) = -|x - y + e(y) g(y)|^2 / 4e(y) + |y - x + e(x) g(x)|^2 / 4e(x)
- (d / 2) (log e(y) - log e(x))``.

Using ``e(x)`` in both densities, or dropping the last term, biases the chain (the tests break
it both ways). So a step chosen from the state *before* proposing keeps every exactness
argument of :mod:`~uqmcmc.mcmc.delayed_acceptance`: each surrogate sub-step stays reversible
for ``exp(-S-bar)`` (the short correction holds for any ``k``), and the general correction's
``q`` densities are these.

:class:`VarianceCappedStep` is the rule the toolkit uses: shrink the step where the surrogate
is unsure, so that the predicted variance of the proposal's ``Delta S-hat`` stays near a cap.

Examples
--------
>>> import jax, jax.numpy as jnp
>>> from uqmcmc.mcmc import ExactDelta, NoPenalty
>>> from uqmcmc.mcmc.metropolis import build_metropolis_kernel
>>> from uqmcmc.targets import Gaussian
>>> rule = VarianceCappedStep(lambda x: jnp.sum(x**2), cap=1.0)  # unsure far from 0
>>> proposal = local_langevin(rule)
>>> est = ExactDelta(Gaussian(jnp.zeros(2), jnp.eye(2)))
>>> kernel = build_metropolis_kernel(proposal, NoPenalty())
>>> state, info = kernel(jax.random.key(0), proposal.init(jnp.ones(2), est), est, 0.5)
>>> float(rule(0.5, jnp.ones(2)))  # 0.5 / (1 + 2 * 0.5 * 2 / 1)
0.1666...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from uqmcmc.mcmc.mala import LANGEVIN, _log_q
from uqmcmc.mcmc.metropolis import NoisyState, Proposal

Array = jax.Array
StepRule = Callable[[Any, Array], Array]

__all__ = ["VarianceCappedStep", "predicted_variance", "local_langevin", "StepRule"]


class VarianceCappedStep(NamedTuple):
    """``e(x) = step_size / (1 + 2 step_size v(x) / cap)``: the Langevin step at ``x``.

    A Langevin move from ``x`` displaces every coordinate by about ``sqrt(2 e)``, so the
    predicted variance of its ``Delta S-hat`` (the line integral of a gradient whose predicted
    variances sum to ``v(x)``) is about ``2 e v(x)``. Where that is small against ``cap`` the
    step is ``step_size`` (the tuned one); where the surrogate is unsure it shrinks so that the
    predicted variance stays near ``cap``. The step depends on ``x`` only, so proposals that
    use it stay exact (module docstring). The step never exceeds ``cap / 2 v(x)``: tuning the
    base step towards an acceptance that only a longer step would reach makes the base step
    grow without bound (harmless, but the tuned value then means nothing); tune without the
    rule, or fix the base step.

    variance
        ``v(x)``: a deterministic, positive scalar function of one configuration, e.g.
        :func:`predicted_variance` of a gradient backend.
    cap
        The predicted variance of ``Delta S-hat`` that a step should not exceed by much
        (``> 0``); ``inf`` gives the constant step.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> rule = VarianceCappedStep(lambda x: jnp.sum(x**2), cap=0.5)
    >>> [round(float(rule(0.1, jnp.full(2, a))), 4) for a in (0.0, 1.0, 10.0)]
    [0.1, 0.0556, 0.0012]
    """

    variance: Callable[[Array], Array]
    cap: float

    def __call__(self, step_size: Any, x: Array) -> Array:
        """The step at ``x`` for the base ``step_size``."""
        v = jnp.asarray(self.variance(x), dtype=x.dtype)
        # the harmonic form: finite for any step size (-> cap / 2v as the step size grows)
        return 1.0 / (1.0 / step_size + 2.0 * v / self.cap)


def predicted_variance(backend: Any) -> Callable[[Array], Array]:
    """``v(x)``: the sum of ``backend``'s predicted (epistemic) variances at one configuration.

    For a gradient backend, the summed variance of the predicted ``grad S`` over sites (what
    :class:`VarianceCappedStep` expects); for an energy backend, the variance of ``E(x)``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> class Unsure:  # a gradient backend whose variance grows with |x|^2
    ...     def predict_mean_var(self, x):
    ...         return x, jnp.broadcast_to(0.1 * jnp.sum(x**2), x.shape)
    >>> float(predicted_variance(Unsure())(jnp.ones((2, 2))))
    1.6
    """

    def variance(x: Array) -> Array:
        return jnp.sum(backend.predict_mean_var(x)[1])

    return variance


def local_langevin(step_rule: StepRule) -> Proposal:
    """A Langevin :class:`~uqmcmc.mcmc.metropolis.Proposal` whose step at ``x`` is ``step_rule``.

    Parameters
    ----------
    step_rule
        ``(step_size, x) -> e(x) > 0``, a deterministic function of the configuration (e.g.
        :class:`VarianceCappedStep`); ``step_size`` is the kernel's (tuned) base step.

    Returns
    -------
    Proposal
        Proposes with ``e(x)``; its ``log_q_ratio`` uses ``e(y)`` for the reverse density and
        keeps the normalising constants (module docstring).

    Examples
    --------
    With a constant rule it is the plain Langevin proposal:

    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.mcmc.estimators import Cache
    >>> from uqmcmc.mcmc.mala import LANGEVIN
    >>> x, y = NoisyState(jnp.zeros(2), Cache(grad=jnp.ones(2))), NoisyState(
    ...     jnp.ones(2), Cache(grad=jnp.zeros(2)))
    >>> local = local_langevin(lambda eps, x: eps)
    >>> bool(jnp.isclose(local.log_q_ratio(x, y, 0.3), LANGEVIN.log_q_ratio(x, y, 0.3)))
    True
    """

    def propose(rng_key: Array, state: NoisyState, step_size: Any) -> Array:
        return LANGEVIN.propose(rng_key, state, step_rule(step_size, state.position))

    def log_q_ratio(state: NoisyState, proposed: NoisyState, step_size: Any) -> Array:
        x, y = state.position, proposed.position
        eps_x, eps_y = step_rule(step_size, x), step_rule(step_size, y)
        normalisers = -0.5 * x.size * (jnp.log(eps_y) - jnp.log(eps_x))
        return (
            _log_q(x, y, proposed.cache.grad, eps_y)
            - _log_q(y, x, state.cache.grad, eps_x)
            + normalisers
        )

    return Proposal(propose, log_q_ratio, with_grad=True)
