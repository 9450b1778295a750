"""Estimators of the action change ``Delta S = S(x') - S(x)`` for a proposed move.

Every estimator has the same small interface, used by both :func:`uqmcmc.mcmc.rmh` and
:func:`uqmcmc.mcmc.mala`:

``init(x, with_grad=False) -> Cache``
    What is kept in the chain state at the current position ``x`` (one configuration): the
    log-density when it is known, the deterministic (mean) gradient of the action for the MALA
    drift when ``with_grad``, the predictive variance in ``mean`` mode.
``estimate(key, x, x_new, cache, with_grad=False) -> (DeltaEstimate, Cache)``
    The estimate of ``S(x_new) - S(x)`` with the variance of that estimate, and the cache at
    ``x_new`` (the kernel keeps it if the move is accepted).
``n_draws``
    Number of draws the variance is estimated from (``None`` when it is not a sample variance);
    the ``"ceperley-dewing-estimated"`` rule needs it.
``variance``
    What ``DeltaEstimate.var`` is: ``"zero"`` (exact), ``"known"`` (the oracle's ``sigma**2``),
    ``"propagated"`` (predictive variances through the rule's weights, ``mean`` mode) or
    ``"sample"`` (sample variance of the mean of the ``n_draws`` joint draws, ``draws`` mode).

All functions are pure and jit-able; ``with_grad`` is a static Python flag (MALA sets it).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from uqmcmc._validation import is_traced, positive_int
from uqmcmc.targets.base import check_target

Array = jax.Array

__all__ = [
    "DeltaEstimate",
    "Cache",
    "ExactDelta",
    "NoisyOracle",
    "EnergyDelta",
    "GradientDelta",
    "QUADRATURE",
]

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
    var
        Predictive variance at ``x`` (``mean`` mode of surrogate estimators).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from uqmcmc.targets import Gaussian
    >>> est = ExactDelta(Gaussian(jnp.zeros(2), jnp.eye(2)))
    >>> cache = est.init(jnp.ones(2), with_grad=True)
    >>> float(cache.logdensity), cache.grad.tolist(), cache.var
    (-1.0, [1.0, 1.0], None)
    """

    logdensity: Array | None = None
    grad: Array | None = None
    var: Array | None = None


# -- shared pieces ---------------------------------------------------------------------------
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


# -- estimators from a target ----------------------------------------------------------------
def _action_change(cache: Cache, new: Cache) -> Array:
    """``S(x') - S(x)`` from two cached log-densities, as ``(-lp') - (-lp)``.

    The same number as ``lp - lp'`` (negation is exact), but written the way BlackJAX does: the
    other arrangement makes XLA's CPU compiler duplicate the proposal's random draws into several
    consumers (measured: up to 7.6x the sampler work in an exact MALA step).
    """
    return (-new.logdensity) - (-cache.logdensity)


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


# -- estimators from a UQ backend ------------------------------------------------------------
class _FromBackend:
    def __init__(self, backend: Any, mode: str, n_draws: int | None):
        for name in ("predict_mean_var", "predict_draws"):
            if not callable(getattr(backend, name, None)):
                raise TypeError(
                    f"backend must have `predict_mean_var` and `predict_draws` (see "
                    f"uqmcmc.uq.base.UQBackend); {type(backend).__name__} has no `{name}`"
                )
        self.backend = backend
        self.mode = _choice("mode", mode, ("mean", "draws"))
        self.n_draws = _n_draws(self.mode, n_draws)
        self.variance = "propagated" if self.mode == "mean" else "sample"

    def _params(self, name: str, **extra) -> dict:
        kind = getattr(self.backend, "kind", type(self.backend).__name__)
        return {
            "estimator": name,
            "backend": kind,
            **extra,
            "mode": self.mode,
            "n_draws": self.n_draws,
            "variance": self.variance,
        }


class EnergyDelta(_FromBackend):
    """``Delta S`` from an energy surrogate: ``E(x') - E(x)`` per joint draw, or of the mean.

    Parameters
    ----------
    backend
        A UQ backend (``predict_mean_var``, ``predict_draws``) predicting the action of one
        configuration as a scalar.
    mode
        ``"mean"``: ``E-bar(x') - E-bar(x)`` of the predictive mean, deterministic; the mean at
        the current state is cached (one backend call per step); ``var = v(x) + v(x')`` is the
        predictive variance propagated as if the two ends were independent (it ignores their
        covariance). ``"draws"``: ``n_draws`` fresh joint draws of ``[x, x']`` in one batch each
        step, ``Delta_k = E_k(x') - E_k(x)``; the estimate is their mean and ``var`` the sample
        variance of that mean.
    n_draws
        Draws per step in ``"draws"`` mode (``>= 2``).

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
    """

    def __init__(self, backend: Any, mode: str = "mean", n_draws: int | None = None):
        super().__init__(backend, mode, n_draws)

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

    def _mean_cache(self, x: Array, with_grad: bool) -> Cache:
        if not with_grad:
            mean, var = self.backend.predict_mean_var(x)
            return Cache(logdensity=-mean, var=var)
        (mean, var), grad = jax.value_and_grad(self.backend.predict_mean_var, has_aux=True)(x)
        return Cache(logdensity=-mean, grad=grad, var=var)

    def init(self, x: Array, with_grad: bool = False) -> Cache:
        if self.mode == "mean":
            return self._mean_cache(x, with_grad)
        return Cache(grad=self._mean_cache(x, True).grad if with_grad else None)

    def estimate(
        self, key: Array, x: Array, x_new: Array, cache: Cache, with_grad: bool = False
    ) -> tuple[DeltaEstimate, Cache]:
        new = self.init(x_new, with_grad)
        if self.mode == "mean":
            mean, var = _action_change(cache, new), cache.var + new.var
        else:
            energies = self.backend.predict_draws(key, jnp.stack([x, x_new]), self.n_draws)
            mean, var = _sample_mean_var(energies[:, 1] - energies[:, 0])
        return DeltaEstimate(mean, var, _all_finite(mean, var, new.grad)), new


class GradientDelta(_FromBackend):
    """``Delta S`` from a gradient surrogate: the line integral of ``grad S`` along ``x -> x'``.

    ``Delta S = int_0^1 grad S(x + t delta) . delta dt`` with ``delta = x' - x``, by a rule
    ``sum_j w_j grad S(x + t_j delta) . delta`` (see :data:`QUADRATURE`): ``first-order`` (seed 1,
    eq. 1), ``trapezoid``, ``simpson`` (exact for a quartic action such as phi^4 when the
    gradient is exact).

    Parameters
    ----------
    backend
        A UQ backend predicting ``grad S`` of one configuration (output shape = input shape).
    rule
        ``"first-order"``, ``"trapezoid"`` or ``"simpson"`` (default; the rule's own bias can
        exceed a surrogate's error, see DESIGN.md).
    mode
        ``"mean"``: the predictive mean gradient at the nodes, deterministic. The mean and
        variance at the current state are cached, the other nodes are evaluated in one stacked
        batch (one backend call per step). ``var = sum_j w_j**2 sum_i delta_i**2 v_j,i``
        propagates the per-site predictive variances through the weights as if nodes and sites
        were independent. ``"draws"``: all nodes ``[x, (x_mid,) x']`` in one stacked batch with
        ``n_draws`` fresh joint draws; the estimate is the mean of the per-draw integrals and
        ``var`` the sample variance of that mean.
    n_draws
        Draws per step in ``"draws"`` mode (``>= 2``).

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
    >>> class ExactGrad:  # the exact gradient as a backend without uncertainty
    ...     def predict_mean_var(self, x):
    ...         return target.grad(x), jnp.zeros_like(x)
    ...     def predict_draws(self, key, x, n):
    ...         return jnp.broadcast_to(target.grad(x), (n, *x.shape))
    >>> est = GradientDelta(ExactGrad(), rule="simpson")
    >>> x, x_new = jax.random.normal(jax.random.key(1), (2, 4, 4))
    >>> d, _ = est.estimate(jax.random.key(2), x, x_new, est.init(x))
    >>> bool(jnp.isclose(d.mean, target.action(x_new) - target.action(x), rtol=1e-5))
    True
    """

    def __init__(
        self,
        backend: Any,
        rule: str = "simpson",
        mode: str = "mean",
        n_draws: int | None = None,
    ):
        super().__init__(backend, mode, n_draws)
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
        if self.mode == "mean":
            grad, var = self.backend.predict_mean_var(x)
            return Cache(grad=grad, var=var)
        return Cache(grad=self.backend.predict_mean_var(x)[0] if with_grad else None)

    def estimate(
        self, key: Array, x: Array, x_new: Array, cache: Cache, with_grad: bool = False
    ) -> tuple[DeltaEstimate, Cache]:
        ts, ws = QUADRATURE[self.rule]
        delta = x_new - x
        if self.mode == "mean":
            # node t = 0 comes from the cache; x' (t = 1) is always evaluated: the next cache
            later = tuple(t for t in ts if t > 0)
            later = later if later[-1:] == (1.0,) else (*later, 1.0)
            grads, variances = self.backend.predict_mean_var(_nodes(x, x_new, later))
            new = Cache(grad=grads[-1], var=variances[-1])
            grads = jnp.concatenate([cache.grad[None], grads[: len(ts) - 1]])
            variances = jnp.concatenate([cache.var[None], variances[: len(ts) - 1]])
            mean = _dot(_weighted(grads, ws), delta)
            var = _dot(_weighted(variances, [w * w for w in ws]), delta * delta)
        else:
            draws = self.backend.predict_draws(key, _nodes(x, x_new, ts), self.n_draws)
            mean, var = _sample_mean_var(_dot(_weighted(jnp.moveaxis(draws, 1, 0), ws), delta))
            new = self.init(x_new, with_grad)
        return DeltaEstimate(mean, var, _all_finite(mean, var, new.grad)), new
