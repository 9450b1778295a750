"""One joint draw of a backend held fixed: a deterministic surrogate, for per-draw chains."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

Array = jax.Array


class FixedDraw:
    """A backend with one of its joint draws frozen (one member, mask or posterior sample).

    ``predict_mean_var`` returns that draw's prediction with zero variance; ``predict_draws``
    repeats it. Running one chain set per ``FixedDraw`` shows how much an observable moves
    across the model's epistemic uncertainty (DESIGN.md, observable-level error bars).

    Parameters
    ----------
    backend
        Any UQ backend. If it has ``predict_member(index, x)`` (a finite set of members, such as
        a deep ensemble) ``draw`` is that index; otherwise ``draw`` is the PRNG key passed to
        ``predict_draws(draw, x, 1)``, which must select the same draw for every ``x``.
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
        member = getattr(self.backend, "predict_member", None)
        if callable(member):
            return member(self.draw, x)
        return self.backend.predict_draws(self.draw, x, 1)[0]

    def predict_mean_var(self, x: Array) -> tuple[Array, Array]:
        f = self.predict(x)
        return f, jnp.zeros_like(f)

    def predict_draws(self, key: Array, x: Array, n: int) -> Array:
        f = self.predict(x)
        return jnp.broadcast_to(f, (n, *f.shape))
