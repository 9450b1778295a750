"""A target's exact gradient or action as a surrogate without uncertainty.

The control that runs everything a surrogate runs (quadrature of the gradient, batching, joint
draws, the penalty) with no model error and no noise: any difference from the exact chain is
then the machinery's own (a quadrature rule's bias, say), never the model's.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["ExactSurrogate"]


class ExactSurrogate:
    """``target.grad`` (or ``target.action``) behind the surrogate protocol, variance zero.

    Parameters
    ----------
    target
        Anything with ``action(x)`` and ``grad(x)`` for one configuration and a ``shape``.
    output
        ``"grad"`` (a surrogate of ``grad S`` for :class:`~uqmcmc.mcmc.GradientDelta`) or
        ``"action"`` (an energy surrogate for :class:`~uqmcmc.mcmc.EnergyDelta`).

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.mcmc import GradientDelta
    >>> from uqmcmc.targets import Phi4
    >>> target = Phi4(L=4, beta=0.6, g=1.0)
    >>> exact = ExactSurrogate(target)
    >>> x = jax.random.normal(jax.random.key(0), (3, 4, 4))  # a batch of 3 configurations
    >>> mean, var = exact.predict_mean_var(x)
    >>> bool(jnp.allclose(mean[1], target.grad(x[1]))), float(var.max())
    (True, 0.0)
    >>> exact.predict_draws(jax.random.key(1), x, 5).shape  # 5 identical "draws"
    (5, 3, 4, 4)
    >>> est = GradientDelta(exact, rule="simpson")  # exact for phi^4's quartic action
    >>> d, _ = est.estimate(None, x[0], x[1], est.init(x[0]))
    >>> bool(jnp.isclose(d.mean, target.action(x[1]) - target.action(x[0]), rtol=1e-5))
    True
    >>> ExactSurrogate(target, "action").predict_mean_var(x)[0].shape
    (3,)
    """

    def __init__(self, target: Any, output: str = "grad"):
        if output not in ("grad", "action"):
            raise ValueError(f"output must be 'grad' or 'action', got {output!r}")
        self.target, self.output = target, output
        self.fn = target.grad if output == "grad" else target.action
        self.kind = f"ExactSurrogate({output})"

    def _apply(self, x: jax.Array) -> jax.Array:
        x = jnp.asarray(x)
        shape = tuple(self.target.shape)
        batch = x.shape[: x.ndim - len(shape)]
        out = jax.vmap(self.fn)(x.reshape(-1, *shape))
        return out.reshape(*batch, *out.shape[1:])

    def predict_mean_var(self, x: jax.Array, *, epistemic_only: bool = False):
        """The exact values and zero variance."""
        f = self._apply(x)
        return f, jnp.zeros_like(f)

    def predict_draws(self, key: jax.Array, x: jax.Array, n: int) -> jax.Array:
        """``n`` copies of the exact values (every draw is exact)."""
        f = self._apply(x)
        return jnp.broadcast_to(f, (n, *f.shape))

    def predict_linear(self, x: jax.Array, weights: jax.Array):
        """The exact values and zero variance of any functional of them."""
        return self._apply(x), jnp.zeros((), jnp.result_type(float))
