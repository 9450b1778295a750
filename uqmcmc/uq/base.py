"""The UQ protocol every backend implements (DESIGN.md, "The UQ protocol")."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import jax

Array = jax.Array


@runtime_checkable
class UQBackend(Protocol):
    """A fitted surrogate with predictive uncertainty.

    Shapes: ``x`` is ``(*batch, *in_shape)`` (for lattice nets ``in_shape = (L, L)``); the output
    per input is ``out_shape``: ``(L, L)`` for a field surrogate of ``grad S``, ``()`` for an
    energy surrogate.

    ``predict_mean_var(x) -> (mean, var)``
        Predictive mean and variance per output element, each ``(*batch, *out_shape)``. Each
        backend's docstring says whether ``var`` is epistemic only or epistemic + aleatoric.
    ``predict_draws(key, x, n) -> draws``
        ``(n, *batch, *out_shape)``: ``n`` JOINT draws, each one ensemble member / dropout mask /
        posterior sample applied to the whole batch, so that differences such as
        ``f(x') - f(x)`` evaluated in one batch keep their (large) covariance.

    Every backend in :mod:`uqmcmc.uq` satisfies it; so does any object with these two methods
    (``isinstance`` checks their presence, not their signatures).

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> class Shifted:  # f(x) = x + c with c ~ N(0, 1): one c per joint draw
    ...     def predict_mean_var(self, x):
    ...         return x, jnp.ones_like(x)
    ...     def predict_draws(self, key, x, n):
    ...         return x + jax.random.normal(key, (n,) + (1,) * x.ndim)
    >>> backend = Shifted()
    >>> isinstance(backend, UQBackend), isinstance(object(), UQBackend)
    (True, False)
    >>> draws = backend.predict_draws(jax.random.key(0), jnp.array([0.0, 1.0]), 3)
    >>> draws.shape, bool(jnp.allclose(draws[:, 1] - draws[:, 0], 1.0))  # joint: c cancels
    ((3, 2), True)
    """

    def predict_mean_var(self, x: Array) -> tuple[Array, Array]: ...

    def predict_draws(self, key: Array, x: Array, n: int) -> Array: ...
