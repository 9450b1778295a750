"""``Delta S`` estimators from a UQ backend: an energy surrogate or a gradient surrogate.

Two modes. ``mean``: the deterministic predictive mean; its variance is the backend's
epistemic variance of that very estimate (:func:`uqmcmc.uq.base.predict_linear`), so the
covariance between the two ends of the move, between quadrature nodes and between sites is
kept and no aleatoric noise floor enters. ``draws``: ``n_draws`` fresh joint draws per step;
the estimate is their mean and the variance the sample variance of that mean.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from uqmcmc._validation import is_traced
from uqmcmc.mcmc.estimators.delta import (
    QUADRATURE,
    Cache,
    DeltaEstimate,
    _all_finite,
    _choice,
    _declared_shape,
    _dot,
    _n_draws,
    _nodes,
    _non_negative,
    _probe,
    _same_shape,
    _sample_mean_var,
    _weighted,
    standard_normal,
)
from uqmcmc.uq.base import predict_linear

Array = jax.Array

__all__ = ["EnergyDelta", "GradientDelta"]


class _FromBackend:
    def __init__(self, backend: Any, mode: str, n_draws: int | None, added_noise: Any):
        for name in ("predict_mean_var", "predict_draws"):
            if not callable(getattr(backend, name, None)):
                raise TypeError(
                    f"backend must have `predict_mean_var` and `predict_draws` (see "
                    f"uqmcmc.uq.base.UQBackend); {type(backend).__name__} has no `{name}`"
                )
        self.backend = backend
        self.mode = _choice("mode", mode, ("mean", "draws"))
        self.n_draws = _n_draws(self.mode, n_draws)
        self.variance = "epistemic" if self.mode == "mean" else "sample"
        if not is_traced(added_noise):
            added_noise = _non_negative("added_noise", added_noise)
            if added_noise and self.mode != "draws":
                raise ValueError("added_noise is only used in mode='draws'")
        self.added_noise = added_noise

    def _params(self, name: str, **extra) -> dict:
        kind = getattr(self.backend, "kind", type(self.backend).__name__)
        noise = None if is_traced(self.added_noise) else self.added_noise
        return {
            "estimator": name,
            "backend": kind,
            **extra,
            "mode": self.mode,
            "n_draws": self.n_draws,
            "variance": self.variance,
            **({"added_noise": noise} if self.mode == "draws" else {}),
        }

    def _draws_mean_var(self, key: Array, per_draw: Array) -> tuple[Array, Array]:
        """Mean and sample variance of the mean of the per-draw ``Delta S``, each draw first
        given independent Gaussian noise of standard deviation ``added_noise`` (drawn from
        ``fold_in(key, 1)``, so that the draws themselves do not depend on it)."""
        if is_traced(self.added_noise) or self.added_noise:
            noise = standard_normal(jax.random.fold_in(key, 1), per_draw.shape, per_draw.dtype)
            per_draw = per_draw + self.added_noise * noise
        return _sample_mean_var(per_draw)

    def estimate(
        self, key: Array, x: Array, x_new: Array, cache: Cache, with_grad: bool = False
    ) -> tuple[DeltaEstimate, Cache]:
        """``S(x_new) - S(x)`` with its variance (``mean`` mode: the estimator's
        ``_mean_estimate``; ``draws`` mode: the mean of its ``_per_draw`` values), and the
        cache at ``x_new``."""
        if self.mode == "mean":
            mean, var, new = self._mean_estimate(x, x_new, with_grad)
        else:
            mean, var = self._draws_mean_var(key, self._per_draw(key, x, x_new))
            new = self.init(x_new, with_grad)
        return DeltaEstimate(mean, var, _all_finite(mean, var, new.grad)), new


class EnergyDelta(_FromBackend):
    """``Delta S`` from an energy surrogate: ``E(x') - E(x)`` per joint draw, or of the mean.

    Parameters
    ----------
    backend
        A UQ backend (``predict_mean_var``, ``predict_draws``) predicting the action of one
        configuration as a scalar.
    mode
        ``"mean"``: ``E-bar(x') - E-bar(x)`` of the predictive mean, deterministic, with
        ``var`` the epistemic variance of that difference (the covariance of the two ends
        kept; :func:`uqmcmc.uq.base.predict_linear`). Both ends are evaluated together,
        one backend call per step. ``"draws"``: ``n_draws`` fresh joint draws of
        ``[x, x']`` in one batch each step, ``Delta_k = E_k(x') - E_k(x)``; the estimate is
        their mean and ``var`` the sample variance of that mean.
    n_draws
        Draws per step in ``"draws"`` mode (``>= 2``).
    added_noise
        ``draws`` mode only: the standard deviation of independent Gaussian noise added to
        each draw's ``Delta_k`` (default 0). A controlled noise level on a real surrogate, for
        a sweep of the bias against the noise; may be a JAX tracer.

    Notes
    -----
    The MALA drift is the gradient of the predictive mean (``jax.grad`` through the backend);
    ``logdensity`` (``-E-bar``) is kept in ``mean`` mode only.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> class Quadratic:  # exact energy |x|^2 / 2, no uncertainty
    ...     def predict_mean_var(self, x):
    ...         e = 0.5 * jnp.sum(x**2, axis=-1)
    ...         return e, jnp.zeros_like(e)
    ...     def predict_draws(self, key, x, n):
    ...         return jnp.broadcast_to(self.predict_mean_var(x)[0], (n, *x.shape[:-1]))
    >>> est = EnergyDelta(Quadratic(), mode="draws", n_draws=4)
    >>> x, x_new = jnp.zeros(2), jnp.ones(2)
    >>> d, _ = est.estimate(jax.random.key(0), x, x_new, est.init(x))
    >>> float(d.mean), float(d.var)
    (1.0, 0.0)
    >>> noisy = EnergyDelta(Quadratic(), mode="draws", n_draws=4, added_noise=2.0)
    >>> keys = jax.random.split(jax.random.key(1), 2000)
    >>> d, _ = jax.vmap(lambda k: noisy.estimate(k, x, x_new, noisy.init(x)))(keys)
    >>> round(float(d.mean.std()), 1), round(float(d.var.mean()), 1)  # 2 / sqrt(4), 4 / 4
    (1.0, 1.0)
    """

    def __init__(
        self,
        backend: Any,
        mode: str = "mean",
        n_draws: int | None = None,
        added_noise: float = 0.0,
    ):
        super().__init__(backend, mode, n_draws, added_noise)

    @property
    def params(self) -> dict:
        return self._params("EnergyDelta")

    def check_position(self, x: Array) -> None:
        """Raise ``ValueError`` if the backend does not map ``x`` to one scalar energy."""
        _declared_shape(self.backend, x)
        mean, _ = _probe(self.backend.predict_mean_var, x, "energy backend")
        if mean.shape != ():
            raise ValueError(
                f"position of shape {x.shape} is not one configuration of the energy backend: "
                f"it predicted shape {mean.shape}, expected a scalar"
            )

    def _mean_grad(self, x: Array) -> Array:
        return jax.grad(lambda y: self.backend.predict_mean_var(y)[0])(x)

    def init(self, x: Array, with_grad: bool = False) -> Cache:
        grad = self._mean_grad(x) if with_grad else None
        if self.mode == "mean":
            return Cache(logdensity=-self.backend.predict_mean_var(x)[0], grad=grad)
        return Cache(grad=grad)

    def _mean_estimate(self, x: Array, x_new: Array, with_grad: bool):
        """``E-bar`` at ``[x, x']`` in one call, the variance of their difference and, for
        MALA, the gradient of ``E-bar`` at ``x'`` through the same call."""
        weights = jnp.array([-1.0, 1.0], dtype=x.dtype)

        def energy_new(y):
            mean, var = predict_linear(self.backend, jnp.stack([x, y]), weights)
            return mean[1], (mean, var)

        if with_grad:
            (_, (energies, var)), grad = jax.value_and_grad(energy_new, has_aux=True)(x_new)
        else:
            (_, (energies, var)), grad = energy_new(x_new), None
        return energies[1] - energies[0], var, Cache(logdensity=-energies[1], grad=grad)

    def _per_draw(self, key: Array, x: Array, x_new: Array) -> Array:
        energies = self.backend.predict_draws(key, jnp.stack([x, x_new]), self.n_draws)
        return energies[:, 1] - energies[:, 0]


class GradientDelta(_FromBackend):
    """``Delta S`` from a gradient surrogate: the line integral of ``grad S`` along ``x -> x'``.

    ``Delta S = int_0^1 grad S(x + t delta) . delta dt`` with ``delta = x' - x``, by a rule
    ``sum_j w_j grad S(x + t_j delta) . delta`` (see :data:`QUADRATURE`): ``first-order`` (the
    paper's eq. 1), ``trapezoid``, ``simpson`` (exact for a quartic action such as phi^4 when
    the gradient is exact).

    Parameters
    ----------
    backend
        A UQ backend predicting ``grad S`` of one configuration (output shape = input shape).
    rule
        ``"first-order"``, ``"trapezoid"`` or ``"simpson"`` (default; the rule's own bias can
        exceed a surrogate's error, see the design notes).
    mode
        ``"mean"``: the predictive mean gradient at the nodes, deterministic. All nodes
        (and ``x'``, whose gradient is the next cache) are evaluated in one stacked batch, one
        backend call per step; ``var`` is the epistemic variance of the whole quadrature sum
        (:func:`uqmcmc.uq.base.predict_linear`: node-node and site-site covariances kept).
        ``"draws"``: all nodes ``[x, (x_mid,) x']`` in one stacked batch with ``n_draws``
        fresh joint draws; the estimate is the mean of the per-draw integrals and ``var`` the
        sample variance of that mean.
    n_draws
        Draws per step in ``"draws"`` mode (``>= 2``).
    added_noise
        ``draws`` mode only: the standard deviation of independent Gaussian noise added to
        each draw's integral (default 0), as in :class:`EnergyDelta`.

    Notes
    -----
    No log-density is known (the action itself is never predicted), so the chain state has no
    ``logdensity`` and ``run_chains`` records no ``lp``. The MALA drift uses the predictive mean
    gradient (one more ``predict_mean_var`` call at ``x'`` in ``draws`` mode).

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.targets import Phi4
    >>> target = Phi4(L=4, beta=0.6, g=1.0)
    >>> from uqmcmc.uq.exact import ExactSurrogate  # the exact gradient, no uncertainty
    >>> est = GradientDelta(ExactSurrogate(target), rule="simpson")
    >>> x, x_new = jax.random.normal(jax.random.key(1), (2, 4, 4))
    >>> d, _ = est.estimate(jax.random.key(2), x, x_new, est.init(x))
    >>> bool(jnp.isclose(d.mean, target.action(x_new) - target.action(x), rtol=1e-5))
    True
    >>> float(d.var)  # no uncertainty: the joint draws of the quadrature sum agree
    0.0
    """

    def __init__(
        self,
        backend: Any,
        rule: str = "simpson",
        mode: str = "mean",
        n_draws: int | None = None,
        added_noise: float = 0.0,
    ):
        super().__init__(backend, mode, n_draws, added_noise)
        self.rule = _choice("rule", rule, QUADRATURE)

    @property
    def params(self) -> dict:
        return self._params("GradientDelta", rule=self.rule)

    def check_position(self, x: Array) -> None:
        """Raise ``ValueError`` if the backend's gradient does not have the position's shape."""
        _declared_shape(self.backend, x)
        mean, _ = _probe(self.backend.predict_mean_var, x, "gradient backend")
        _same_shape(x, mean.shape, "the gradient backend's prediction")

    def init(self, x: Array, with_grad: bool = False) -> Cache:
        return Cache(grad=self.backend.predict_mean_var(x)[0] if with_grad else None)

    def _mean_estimate(self, x: Array, x_new: Array, with_grad: bool):
        ts, ws = QUADRATURE[self.rule]
        if ts[-1] != 1.0:  # x' is always evaluated (weight 0 if the rule skips it): next cache
            ts, ws = (*ts, 1.0), (*ws, 0.0)
        delta = x_new - x
        w = jnp.asarray(ws, dtype=x.dtype).reshape((-1,) + (1,) * x.ndim) * delta
        grads, var = predict_linear(self.backend, _nodes(x, x_new, ts), w)
        return jnp.sum(grads * w), var, Cache(grad=grads[-1] if with_grad else None)

    def _per_draw(self, key: Array, x: Array, x_new: Array) -> Array:
        ts, ws = QUADRATURE[self.rule]
        draws = self.backend.predict_draws(key, _nodes(x, x_new, ts), self.n_draws)
        return _dot(_weighted(jnp.moveaxis(draws, 1, 0), ws), x_new - x)
