"""``Delta S`` estimators from a target: the exact change and a noisy oracle."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from uqmcmc._validation import is_traced, positive_int
from uqmcmc.mcmc.estimators.delta import (
    QUADRATURE,
    Cache,
    DeltaEstimate,
    _action_change,
    _all_finite,
    _choice,
    _declared_shape,
    _dot,
    _nodes,
    _non_negative,
    _probe,
    _same_shape,
    _sample_mean_var,
    _weighted,
    standard_normal,
)
from uqmcmc.targets.base import check_target

Array = jax.Array

__all__ = ["ExactDelta", "NoisyOracle"]


def _target_cache(target: Any, x: Array, with_grad: bool) -> Cache:
    return Cache(logdensity=-target.action(x), grad=target.grad(x) if with_grad else None)


class _FromTarget:
    n_draws: int | None = None
    variance = "zero"

    def __init__(self, target: Any):
        check_target(target)
        self.target = target

    def check_position(self, x: Array) -> None:
        """Raise ``ValueError`` if ``x`` is not one configuration of the target."""
        _declared_shape(self.target, x)
        s = _probe(self.target.action, x, "target's action")
        g = _probe(self.target.grad, x, "target's gradient")
        if s.shape != ():
            raise ValueError(
                f"position of shape {x.shape} is not one configuration: the target's action "
                f"returned shape {s.shape}, expected a scalar"
            )
        _same_shape(x, g.shape, "the target's gradient")

    def init(self, x: Array, with_grad: bool = False) -> Cache:
        return _target_cache(self.target, x, with_grad)


class ExactDelta(_FromTarget):
    """The exact ``S(x') - S(x)`` from a target: the reference chain (``variance = "zero"``).

    Parameters
    ----------
    target
        Anything with ``action(x)`` and ``grad(x)`` for one configuration.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.targets import Gaussian
    >>> est = ExactDelta(Gaussian(jnp.zeros(2), jnp.eye(2)))
    >>> x, x_new = jnp.zeros(2), jnp.array([1.0, 1.0])
    >>> d, cache = est.estimate(jax.random.key(0), x, x_new, est.init(x))
    >>> float(d.mean), float(d.var), float(cache.logdensity)
    (1.0, 0.0, -1.0)
    """

    @property
    def params(self) -> dict:
        return {"estimator": "ExactDelta", "variance": self.variance}

    def estimate(
        self, key: Array, x: Array, x_new: Array, cache: Cache, with_grad: bool = False
    ) -> tuple[DeltaEstimate, Cache]:
        new = _target_cache(self.target, x_new, with_grad)
        delta = _action_change(cache, new)
        return DeltaEstimate(delta, jnp.zeros_like(delta), _all_finite(delta, new.grad)), new


class NoisyOracle(_FromTarget):
    """Exact ``Delta S`` plus fresh Gaussian noise: proves a penalty exact, shows the naive bias.

    Parameters
    ----------
    target
        Anything with ``action(x)`` and ``grad(x)``.
    sigma
        Standard deviation (``>= 0``) of the noise in the *estimate*: of ``Delta S-hat`` when
        ``on="delta"``, of each site of the gradient estimate at each quadrature node when
        ``on="grad"`` (then ``Var Delta S-hat = sigma**2 sum_j w_j**2 |delta|**2``). May be a
        JAX tracer, e.g. to ``vmap`` chains over noise levels.
    on
        ``"delta"``: noise on the action change; ``"grad"``: independent noise per site and
        node on the exact gradient, integrated along ``x -> x'`` by ``rule``.
    rule
        Quadrature rule for ``on="grad"`` (see :data:`QUADRATURE`).
    n_draws
        ``None``: the estimate has noise ``sigma`` and reports ``var = sigma**2`` (the
        variance is known). An integer ``n >= 2``: the estimate is the mean of ``n`` draws, each
        with noise ``sigma * sqrt(n)``, and ``var`` is the sample variance of that mean (the
        input of the ``"ceperley-dewing-estimated"`` rule).

    Notes
    -----
    The noise is fresh at every call; both endpoints are part of every estimate, and the MALA
    drift uses the exact (noise-free) gradient.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.targets import Gaussian
    >>> est = NoisyOracle(Gaussian(jnp.zeros(2), jnp.eye(2)), sigma=0.5)
    >>> x, x_new = jnp.zeros(2), jnp.array([1.0, 1.0])
    >>> keys = jax.random.split(jax.random.key(0), 4000)
    >>> d, _ = jax.vmap(lambda k: est.estimate(k, x, x_new, est.init(x)))(keys)
    >>> round(float(d.mean.mean()), 1), round(float(d.mean.std()), 1), float(d.var[0])
    (1.0, 0.5, 0.25)
    """

    def __init__(
        self,
        target: Any,
        sigma: float,
        on: str = "delta",
        rule: str = "simpson",
        n_draws: int | None = None,
    ):
        super().__init__(target)
        self.sigma = sigma if is_traced(sigma) else _non_negative("sigma", sigma)
        self.on = _choice("on", on, ("delta", "grad"))
        self.rule = _choice("rule", rule, QUADRATURE)
        self.n_draws = None if n_draws is None else positive_int("n_draws", n_draws, minimum=2)
        self.variance = "known" if self.n_draws is None else "sample"

    @property
    def params(self) -> dict:
        sigma = None if is_traced(self.sigma) else self.sigma
        out = {"estimator": "NoisyOracle", "sigma": sigma, "on": self.on}
        if self.on == "grad":
            out["rule"] = self.rule
        return {**out, "n_draws": self.n_draws, "variance": self.variance}

    def estimate(
        self, key: Array, x: Array, x_new: Array, cache: Cache, with_grad: bool = False
    ) -> tuple[DeltaEstimate, Cache]:
        new = _target_cache(self.target, x_new, with_grad)
        n = self.n_draws or 1
        scale = self.sigma * math.sqrt(n)
        delta = x_new - x
        if self.on == "delta":
            exact = _action_change(cache, new)
            draws = exact + scale * standard_normal(key, (n,), exact.dtype)
            known_var = jnp.asarray(self.sigma, exact.dtype) ** 2
        else:
            ts, ws = QUADRATURE[self.rule]
            grads = jax.vmap(self.target.grad)(_nodes(x, x_new, ts))  # (J, *shape)
            noise = standard_normal(key, (n, *grads.shape), grads.dtype)
            draws = _dot(_weighted(jnp.moveaxis(grads + scale * noise, 1, 0), ws), delta)
            known_var = self.sigma**2 * sum(w * w for w in ws) * jnp.sum(delta * delta)
        mean, sample_var = _sample_mean_var(draws) if n > 1 else (draws[0], None)
        var = known_var if self.n_draws is None else sample_var
        return DeltaEstimate(mean, var, _all_finite(mean, var, new.grad)), new
