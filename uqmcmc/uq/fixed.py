"""One joint draw of a backend held fixed: a deterministic surrogate, for per-draw chains."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from uqmcmc._validation import positive_int
from uqmcmc.uq.base import UQBackend

Array = jax.Array

__all__ = ["FixedDraw", "draw_ids"]


def _has_members(backend: Any) -> bool:
    return callable(getattr(backend, "predict_member", None))


def draw_ids(backend: Any, key: Array, k: int) -> Array:
    """The ids of ``k`` fixed draws of ``backend``, one :class:`FixedDraw` (chain set) each.

    A :class:`~uqmcmc.uq.base.UQBackend` answers itself (:meth:`~uqmcmc.uq.base.UQBackend.
    draw_ids`: member indices ``0 .. min(k, n_members) - 1`` for a deep ensemble, ``k`` PRNG
    keys from ``key`` otherwise). Any other object: member indices if it has
    ``predict_member(index, x)`` (and at most ``n_members`` of them), else
    ``jax.random.split(key, k)``.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> class Noisy:  # a duck-typed backend: draws only
    ...     def predict_mean_var(self, x):
    ...         return x, jnp.ones_like(x)
    ...     def predict_draws(self, key, x, n):
    ...         return x + jax.random.normal(key, (n,) + (1,) * x.ndim)
    >>> draw_ids(Noisy(), jax.random.key(0), 4).shape  # four PRNG keys
    (4,)
    >>> class Members(Noisy):  # ... with three members
    ...     n_members = 3
    ...     def predict_member(self, i, x):
    ...         return x + i
    >>> draw_ids(Members(), jax.random.key(0), 4).tolist()
    [0, 1, 2]
    """
    k = positive_int("k", k)
    if isinstance(backend, UQBackend):
        return backend.draw_ids(key, k)
    if _has_members(backend):
        return jnp.arange(min(k, int(getattr(backend, "n_members", k))))
    return jax.random.split(key, k)


class FixedDraw:
    """A backend with one of its joint draws frozen (one member, mask or posterior sample).

    ``predict_mean_var`` returns that draw's prediction with zero variance; ``predict_draws``
    repeats it. Running one chain set per ``FixedDraw`` shows how much an observable moves
    across the model's epistemic uncertainty (DESIGN.md, observable-level error bars).

    Parameters
    ----------
    backend
        Any UQ backend. A :class:`~uqmcmc.uq.base.UQBackend` evaluates the draw with
        :meth:`~uqmcmc.uq.base.UQBackend.predict_draw` (``draw`` is an entry of its
        :meth:`~uqmcmc.uq.base.UQBackend.draw_ids`, see :func:`draw_ids`). Any other object:
        if it has ``predict_member(index, x)`` (a finite set of members) ``draw`` is that
        index; otherwise ``draw`` is the PRNG key passed to ``predict_draws(draw, x, 1)``,
        which must select the same draw for every ``x``.
    draw
        Member index or PRNG key; may be traced (e.g. ``jax.vmap`` over draws).

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> class Noisy:  # draw k adds the same offset to every input
    ...     def predict_mean_var(self, x):
    ...         return x, jnp.ones_like(x)
    ...     def predict_draws(self, key, x, n):
    ...         return x + jax.random.normal(key, (n,) + (1,) * x.ndim)
    >>> f = FixedDraw(Noisy(), jax.random.key(3))
    >>> a, _ = f.predict_mean_var(jnp.zeros(2))
    >>> b, v = f.predict_mean_var(jnp.zeros((5, 2)))
    >>> bool(jnp.allclose(a, b[2])), float(v.max())
    (True, 0.0)
    """

    def __init__(self, backend: Any, draw: Any):
        self.backend = backend
        self.draw = draw

    @property
    def kind(self) -> str:
        return f"FixedDraw({getattr(self.backend, 'kind', type(self.backend).__name__)})"

    def predict(self, x: Array) -> Array:
        """The frozen draw's prediction ``(*batch, *out_shape)``."""
        if isinstance(self.backend, UQBackend):
            return self.backend.predict_draw(self.draw, x)
        if _has_members(self.backend):
            return self.backend.predict_member(self.draw, x)
        return self.backend.predict_draws(self.draw, x, 1)[0]

    def predict_mean_var(self, x: Array, *, epistemic_only: bool = False) -> tuple[Array, Array]:
        """The frozen draw's prediction and zero variance (no aleatoric part either)."""
        f = self.predict(x)
        return f, jnp.zeros_like(f)

    def predict_linear(self, x: Array, weights: Array) -> tuple[Array, Array]:
        """The frozen draw's prediction and zero variance (a deterministic functional)."""
        return self.predict(x), jnp.zeros((), jnp.result_type(float))

    def predict_draws(self, key: Array, x: Array, n: int) -> Array:
        """The frozen draw, ``n`` times."""
        f = self.predict(x)
        return jnp.broadcast_to(f, (n, *f.shape))
