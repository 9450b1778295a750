"""The contract every UQ backend implements (DESIGN.md, "The UQ protocol").

:class:`UQBackend` is the abstract base class of uqmcmc's backends (and of a user's own, see
:mod:`uqmcmc.uq.registry`); :class:`Predictive` is the two-method protocol the estimators and
:class:`~uqmcmc.uq.fixed.FixedDraw` need, which any object may satisfy without inheriting.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import jax
import jax.numpy as jnp

from uqmcmc._validation import positive_int
from uqmcmc.uq.moments import contract

Array = jax.Array

__all__ = ["LinearPredictive", "Predictive", "UQBackend", "linear_from_draws", "predict_linear"]

#: Joint draws behind :func:`linear_from_draws` (relative error of the variance about
#: ``sqrt(2 / 63) = 0.18`` for Gaussian draws).
LINEAR_DRAWS = 64


@runtime_checkable
class Predictive(Protocol):
    """The least a surrogate needs for the estimators: ``predict_mean_var`` and
    ``predict_draws`` (see :class:`UQBackend` for their meaning).

    ``isinstance`` checks the presence of the two methods, not their signatures. Such an
    object works with :class:`~uqmcmc.mcmc.GradientDelta`, :class:`~uqmcmc.mcmc.EnergyDelta`,
    :class:`~uqmcmc.uq.fixed.FixedDraw` and :func:`uqmcmc.uq.calibration.metrics`.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> class Shifted:  # f(x) = x + c with c ~ N(0, 1): one c per joint draw
    ...     def predict_mean_var(self, x):
    ...         return x, jnp.ones_like(x)
    ...     def predict_draws(self, key, x, n):
    ...         return x + jax.random.normal(key, (n,) + (1,) * x.ndim)
    >>> backend = Shifted()
    >>> isinstance(backend, Predictive), isinstance(backend, UQBackend)
    (True, False)
    >>> draws = backend.predict_draws(jax.random.key(0), jnp.array([0.0, 1.0]), 3)
    >>> draws.shape, bool(jnp.allclose(draws[:, 1] - draws[:, 0], 1.0))  # joint: c cancels
    ((3, 2), True)
    """

    def predict_mean_var(self, x: Array) -> tuple[Array, Array]: ...

    def predict_draws(self, key: Array, x: Array, n: int) -> Array: ...


@runtime_checkable
class LinearPredictive(Protocol):
    """A surrogate that knows the epistemic variance of a linear functional of its outputs.

    ``predict_linear(x, weights) -> (mean, var)``: see :meth:`UQBackend.predict_linear`. Every
    :class:`UQBackend` has it; :func:`predict_linear` falls back to joint draws for any other
    :class:`Predictive`.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> class Exact:  # no uncertainty
    ...     def predict_linear(self, x, weights):
    ...         return x, jnp.zeros(())
    >>> isinstance(Exact(), LinearPredictive)
    True
    """

    def predict_linear(self, x: Array, weights: Array) -> tuple[Array, Array]: ...


def linear_from_draws(
    backend: Predictive, x: Array, weights: Array, n: int = LINEAR_DRAWS
) -> tuple[Array, Array]:
    """:meth:`UQBackend.predict_linear` from ``n`` joint draws with a fixed key.

    The mean per output element is ``predict_mean_var``'s; the variance of the functional is
    the sample variance (``ddof = 1``) of ``sum(weights * draw)`` over the draws: deterministic,
    with a relative error of about ``sqrt(2 / (n - 1))``. Backends with a closed form or a
    finite set of members override :meth:`UQBackend.predict_linear` with the exact value.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> class Shifted:  # f(x) = x + c with c ~ N(0, 1): one c per joint draw
    ...     def predict_mean_var(self, x):
    ...         return x, jnp.ones_like(x)
    ...     def predict_draws(self, key, x, n):
    ...         return x + jax.random.normal(key, (n,) + (1,) * x.ndim)
    >>> x = jnp.array([0.0, 1.0])
    >>> _, var = linear_from_draws(Shifted(), x, jnp.array([-1.0, 1.0]))  # f(1) - f(0)
    >>> float(var)  # c cancels in the difference
    0.0
    >>> _, var = linear_from_draws(Shifted(), x, jnp.array([1.0, 1.0]), n=4000)  # 2 c
    >>> round(float(var), 0)
    4.0
    """
    mean, _ = backend.predict_mean_var(x)
    draws = backend.predict_draws(jax.random.key(0), x, positive_int("n", n, minimum=2))
    return mean, jnp.var(contract(draws, weights), ddof=1)


def predict_linear(backend: Predictive, x: Array, weights: Array) -> tuple[Array, Array]:
    """Predictive mean of ``f(x)`` and the epistemic variance of ``sum(weights * f(x))``.

    The backend's own :meth:`UQBackend.predict_linear` when it has one
    (:class:`LinearPredictive`), else :func:`linear_from_draws`. This is the variance a
    penalty needs for a deterministic (``mean`` mode) estimate of ``Delta S``: the
    estimate is such a functional (the energy at ``x'`` minus that at ``x``, or the
    quadrature of the gradient along the move), and its variance keeps the covariances
    between the inputs and the output elements that per-element variances drop.

    Parameters
    ----------
    backend
        A :class:`Predictive` surrogate.
    x
        Inputs ``(*batch, *in_shape)``, evaluated together (one joint draw sees them all).
    weights
        ``(*batch, *out_shape)``: the functional's coefficient of every output element.

    Returns
    -------
    mean
        ``(*batch, *out_shape)``: the predictive mean, as ``predict_mean_var`` gives it.
    var
        Scalar: the epistemic variance of ``sum(weights * f(x))`` (no aleatoric part).

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> class Shifted:  # f(x) = x + c with c ~ N(0, 1): one c per joint draw
    ...     def predict_mean_var(self, x):
    ...         return x, jnp.ones_like(x)
    ...     def predict_draws(self, key, x, n):
    ...         return x + jax.random.normal(key, (n,) + (1,) * x.ndim)
    >>> mean, var = predict_linear(Shifted(), jnp.array([0.0, 1.0]), jnp.array([-1.0, 1.0]))
    >>> mean.tolist(), float(var)  # per-element variances summed would say 2.0
    ([0.0, 1.0], 0.0)
    """
    if isinstance(backend, LinearPredictive):
        return backend.predict_linear(x, weights)
    return linear_from_draws(backend, x, weights)


class UQBackend(abc.ABC):
    """A surrogate with predictive uncertainty: the contract of every uqmcmc backend.

    Shapes: ``x`` is ``(*batch, *in_shape)`` (for lattice nets ``in_shape = (L, L)``); the
    output per input is ``out_shape``: ``(L, L)`` for a field surrogate of ``grad S``, ``()``
    for an energy surrogate.

    A subclass implements :meth:`fit`, :meth:`predict_mean_var`, :meth:`predict_draws`,
    :meth:`save` and :meth:`load`, and sets :attr:`name`; :meth:`draw_ids` and
    :meth:`predict_draw` have defaults (override both for a finite set of members, as
    :class:`~uqmcmc.uq.ensemble.DeepEnsemble` does). Register it with
    :func:`uqmcmc.uq.registry.register` to use it by name.

    Attributes
    ----------
    name
        The backend's name in :mod:`uqmcmc.uq.registry` (``"ensemble"``, ``"dropout"``,
        ``"last_layer"``, ``"bnn"``, ``"deep_kernel"``, or a user's own).

    Examples
    --------
    A user's backend: ``f(x) = x + c`` with ``c ~ N(0, s^2)``, ``s`` fitted as the scatter of
    ``y - x``; one ``c`` per joint draw.

    >>> import jax, jax.numpy as jnp
    >>> class Shifted(UQBackend):
    ...     name = "shifted"
    ...     def __init__(self, s=1.0):
    ...         self.s = s
    ...     def fit(self, x, y, *, key):
    ...         self.s = float(jnp.std(y - x))
    ...         return self
    ...     def predict_mean_var(self, x, *, epistemic_only=False):
    ...         return x, jnp.full_like(x, self.s**2)  # epistemic only: no noise floor
    ...     def predict_draws(self, key, x, n):
    ...         return x + self.s * jax.random.normal(key, (n,) + (1,) * x.ndim)
    ...     def save(self, path): ...
    ...     @classmethod
    ...     def load(cls, path, *, model_cls=None): ...
    >>> b = Shifted().fit(jnp.zeros(4), jnp.array([-2.0, 2.0, -2.0, 2.0]), key=None)
    >>> isinstance(b, UQBackend), b.predict_mean_var(jnp.zeros(2))[1].tolist()
    (True, [4.0, 4.0])
    >>> ids = b.draw_ids(jax.random.key(0), 3)  # three fixed draws (here: PRNG keys)
    >>> f = b.predict_draw(ids[0], jnp.array([0.0, 1.0]))  # one of them, on a batch
    >>> bool(jnp.allclose(f[1] - f[0], 1.0))  # joint: the same c at every input
    True
    """

    name: ClassVar[str] = ""

    @abc.abstractmethod
    def fit(self, x: Array, y: Array, *, key: Array | int, **settings: Any) -> UQBackend:
        """Fit to inputs ``x (N, *in_shape)`` and labels ``y (N, *out_shape)``; returns
        ``self``. ``settings`` are the backend's own (epochs, optimizer, ...)."""

    @abc.abstractmethod
    def predict_mean_var(self, x: Array, *, epistemic_only: bool = False) -> tuple[Array, Array]:
        """Predictive mean and variance per output element, each ``(*batch, *out_shape)``.

        Each backend's docstring says whether ``var`` is epistemic only or epistemic plus an
        aleatoric (noise) part; ``epistemic_only=True`` drops any aleatoric part, so that
        ``var`` is the variance of the joint draws of :meth:`predict_draws`.
        """

    @abc.abstractmethod
    def predict_draws(self, key: Array, x: Array, n: int) -> Array:
        """``n`` JOINT draws ``(n, *batch, *out_shape)``: each draw (one ensemble member,
        dropout mask, posterior sample) is applied to the whole batch, so that differences
        such as ``f(x') - f(x)`` evaluated in one batch keep their (large) covariance. Draws
        are function draws: epistemic only."""

    def draw_ids(self, key: Array, k: int) -> Array:
        """The ids of ``k`` fixed draws, for per-draw chains (see :meth:`predict_draw`).

        By default ``k`` PRNG keys, ``jax.random.split(key, k)``; a backend with a finite set
        of members returns member indices (at most its number of members) instead.
        """
        return jax.random.split(key, positive_int("k", k))

    def predict_draw(self, draw_id: Array, x: Array) -> Array:
        """The prediction ``(*batch, *out_shape)`` of the one fixed draw ``draw_id`` (an entry
        of :meth:`draw_ids`, may be traced): the same draw for every ``x``.

        By default ``predict_draws(draw_id, x, 1)[0]``.
        """
        return self.predict_draws(draw_id, x, 1)[0]

    @property
    def evaluations_per_mean(self) -> int:
        """Network evaluations behind :meth:`predict_mean_var` for one configuration (1 by
        default; an ensemble's members, dropout's fixed masks, a BNN's stored draws): the cost
        unit of the efficiency table (effective samples per network evaluation)."""
        return 1

    def predict_linear(self, x: Array, weights: Array) -> tuple[Array, Array]:
        """Predictive mean ``(*batch, *out_shape)`` of ``f(x)`` and the scalar epistemic
        variance of ``sum(weights * f(x))`` (see :func:`predict_linear`).

        By default from 64 joint draws with a fixed key (:func:`linear_from_draws`); the
        built-in backends override it with the exact value.
        """
        return linear_from_draws(self, x, weights)

    @abc.abstractmethod
    def save(self, path: str | Path) -> Path:
        """Write the fitted backend to directory ``path`` (npz + JSON, no pickle, see
        :mod:`uqmcmc.uq.io`); returns the directory."""

    @classmethod
    @abc.abstractmethod
    def load(cls, path: str | Path, *, model_cls: type | None = None) -> UQBackend:
        """Read what :meth:`save` wrote; ``model_cls`` is needed for a user's own network class
        unless it was registered with :func:`uqmcmc.uq.io.register_module`."""
