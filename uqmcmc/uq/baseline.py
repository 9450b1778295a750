"""A surrogate of the unknown part of an action, plus the part that is known exactly.

Machine-learned interatomic potentials often add a known, cheap term to the network (a
short-range repulsion, an external field, a container): the network learns the rest. A
:class:`WithBaseline` backend predicts ``b(x) + f(x)``: ``b`` exact and without uncertainty,
``f`` the wrapped backend, trained on the labels minus ``b`` (:func:`residual_labels`). Every
prediction (mean, variance, joint draws, fixed draws, linear functionals) is the wrapped
backend's, shifted by ``b``; the variance is the wrapped backend's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from uqmcmc.uq.base import UQBackend, predict_linear
from uqmcmc.uq.fixed import FixedDraw, draw_ids

Array = jax.Array

__all__ = ["WithBaseline", "residual_labels"]


def _batched(fn: Callable[[Array], Array], x: Array, in_ndim: int) -> Array:
    """``fn`` of one configuration, over the leading axes of ``x``."""
    x = jnp.asarray(x)
    batch = x.shape[: x.ndim - in_ndim]
    out = jax.vmap(fn)(x.reshape(-1, *x.shape[x.ndim - in_ndim :]))
    return out.reshape(*batch, *out.shape[1:])


def residual_labels(baseline: Callable[[Array], Array], x: Array, energy: Array, grad: Array):
    """The labels a backend learns beside ``baseline`` (a function of one configuration):
    ``energy - b(x)`` and ``grad - grad b(x)`` for configurations ``x (n, *shape)``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> b = lambda x: jnp.sum(x**2)
    >>> e, g = residual_labels(b, jnp.ones((2, 3)), jnp.full(2, 5.0), jnp.full((2, 3), 4.0))
    >>> e.tolist(), g[0].tolist()
    ([2.0, 2.0], [2.0, 2.0, 2.0])
    """
    x = jnp.asarray(x)
    b, db = jax.vmap(jax.value_and_grad(baseline))(x)
    return jnp.asarray(energy) - b, jnp.asarray(grad) - db


class WithBaseline(UQBackend):
    """``b(x) + f(x)``: an exact part ``b`` plus a UQ backend ``f`` of the rest.

    Parameters
    ----------
    backend
        The fitted backend of the rest (energies ``S - b``, or gradients ``grad S - grad b``).
    baseline
        ``b`` of ONE configuration: a scalar for an energy surrogate; for a gradient surrogate
        pass its gradient (same shape as the configuration).
    in_ndim
        Number of axes of one configuration (e.g. 2 for ``(N, d)`` atoms).

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> class Flat:  # f = 0 with variance 1 everywhere, one constant c ~ N(0, 1) per draw
    ...     def predict_mean_var(self, x):
    ...         return jnp.zeros(x.shape[:-1]), jnp.ones(x.shape[:-1])
    ...     def predict_draws(self, key, x, n):
    ...         return jnp.zeros((n, *x.shape[:-1])) + jax.random.normal(key, (n, 1))
    >>> full = WithBaseline(Flat(), lambda x: jnp.sum(x**2), in_ndim=1)
    >>> mean, var = full.predict_mean_var(jnp.ones((2, 3)))
    >>> mean.tolist(), var.tolist()
    ([3.0, 3.0], [1.0, 1.0])
    >>> full.predict_draws(jax.random.key(0), jnp.ones((2, 3)), 4).shape
    (4, 2)
    """

    name = "with_baseline"

    def __init__(self, backend: Any, baseline: Callable[[Array], Array], in_ndim: int):
        self.backend = backend
        self.baseline = baseline
        self.in_ndim = int(in_ndim)

    @property
    def kind(self) -> str:
        return getattr(self.backend, "kind", type(self.backend).__name__)

    def _b(self, x: Array) -> Array:
        return _batched(self.baseline, x, self.in_ndim)

    def fit(self, x: Array, y: Array, *, key: Array | int, **settings: Any) -> WithBaseline:
        """Not offered: fit the wrapped backend on :func:`residual_labels`, then wrap it."""
        raise NotImplementedError("fit the wrapped backend on residual_labels, then wrap it")

    def predict_mean_var(
        self, x: Array, *, epistemic_only: bool = False, **kwargs: Any
    ) -> tuple[Array, Array]:
        """The wrapped backend's mean plus ``b(x)``, and its variance."""
        if epistemic_only:
            kwargs["epistemic_only"] = True
        mean, var = self.backend.predict_mean_var(x, **kwargs)
        return mean + self._b(x), var

    def predict_draws(self, key: Array, x: Array, n: int) -> Array:
        """The wrapped backend's joint draws plus ``b(x)``."""
        return self.backend.predict_draws(key, x, n) + self._b(x)

    def draw_ids(self, key: Array, k: int) -> Array:
        """The wrapped backend's fixed draws (:func:`uqmcmc.uq.fixed.draw_ids`)."""
        return draw_ids(self.backend, key, k)

    def predict_draw(self, draw_id: Array, x: Array) -> Array:
        """The wrapped backend's fixed draw ``draw_id`` plus ``b(x)``."""
        return FixedDraw(self.backend, draw_id).predict(x) + self._b(x)

    @property
    def evaluations_per_mean(self) -> int:
        """The wrapped backend's (1 for an object that does not say)."""
        inner = self.backend
        return inner.evaluations_per_mean if isinstance(inner, UQBackend) else 1

    def predict_linear(self, x: Array, weights: Array) -> tuple[Array, Array]:
        """The wrapped backend's :func:`~uqmcmc.uq.base.predict_linear`, mean plus ``b(x)``
        (``b`` adds no variance)."""
        mean, var = predict_linear(self.backend, x, weights)
        return mean + self._b(x), var

    def save(self, path: str | Path) -> Path:
        """Save the wrapped backend (``b`` is code: the target supplies it again)."""
        return self.backend.save(path)

    @classmethod
    def load(cls, path: str | Path, *, model_cls: type | None = None) -> UQBackend:
        """Not offered: load the wrapped backend, then wrap it with the target's ``b``."""
        raise NotImplementedError("load the wrapped backend, then wrap it with the baseline")

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") or attr in ("backend", "baseline", "in_ndim"):
            raise AttributeError(attr)
        return getattr(self.backend, attr)
