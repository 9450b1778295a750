"""Moments over a finite set of joint components (ensemble members, dropout masks, draws).

Shared by the backends whose prediction is an equal-weight mixture: the deep ensemble (over
members) and MC dropout (over fixed masks).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

Array = jax.Array

__all__ = [
    "contract",
    "delta_mean_var",
    "linear_mean_var",
    "member_mean_var",
    "mixture_mean_var",
]


def member_mean_var(model: nnx.Module, x: Array) -> tuple[Array, Array]:
    """A network's mean and aleatoric variance (zero without a ``mean_var`` head).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from uqmcmc.nets import MLP
    >>> from uqmcmc.uq.losses import GaussianHead
    >>> mean, var = member_mean_var(MLP(1, (4,), rngs=nnx.Rngs(0)), jnp.zeros((3, 1)))
    >>> mean.shape, var.tolist()
    ((3,), [0.0, 0.0, 0.0])
    >>> head = GaussianHead(MLP(1, (4,), rngs=nnx.Rngs(0)), rngs=nnx.Rngs(1))
    >>> bool((member_mean_var(head, jnp.zeros((3, 1)))[1] > 0).all())
    True
    """
    if hasattr(model, "mean_var"):
        return model.mean_var(x)
    mean = model(x)
    return mean, jnp.zeros_like(mean)


def mixture_mean_var(
    means: Array, variances: Array, epistemic_only: bool = False
) -> tuple[Array, Array]:
    """Mean and variance of an equal-weight mixture of components along axis 0.

    ``var`` is the variance of the component means (``ddof = 0``) plus, unless
    ``epistemic_only``, the mean of the component variances.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> m, v = mixture_mean_var(jnp.array([0.0, 2.0]), jnp.array([1.0, 1.0]))
    >>> float(m), float(v)
    (1.0, 2.0)
    """
    var = jnp.var(means, axis=0)
    if not epistemic_only:
        var = var + jnp.mean(variances, axis=0)
    return jnp.mean(means, axis=0), var


def delta_mean_var(before: Array, after: Array) -> tuple[Array, Array]:
    """Mean and variance (``ddof = 0``, axis 0) of ``after - before`` over joint components.

    Row ``k`` of ``before`` and ``after`` must come from the same member (or draw), so the
    covariance between the two points is kept.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> before = jnp.array([1.0, 2.0, 3.0])  # three members at x
    >>> after = before + jnp.array([0.5, 0.5, 0.8])  # the same members at x'
    >>> mean, var = delta_mean_var(before, after)
    >>> round(float(mean), 2), round(float(var), 2)  # Var(after) alone is 0.89
    (0.6, 0.02)
    """
    diff = after - before
    return jnp.mean(diff, axis=0), jnp.var(diff, axis=0)


def contract(values: Array, weights: Array) -> Array:
    """``sum(weights * values)`` over the trailing ``weights.ndim`` axes of ``values``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> contract(jnp.ones((3, 2, 2)), jnp.array([[1.0, 0.0], [0.0, 2.0]])).tolist()
    [3.0, 3.0, 3.0]
    """
    axes = tuple(range(values.ndim - weights.ndim, values.ndim))
    return jnp.sum(values * weights, axis=axes)


def linear_mean_var(components: Array, weights: Array) -> tuple[Array, Array]:
    """Mean over joint components (axis 0) and the variance (``ddof = 0``) of the functional
    ``sum(weights * component)`` across them: :meth:`~uqmcmc.uq.base.UQBackend.predict_linear`
    of an equal-weight mixture (ensemble members, dropout masks, posterior draws).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> members = jnp.array([[1.0, 1.5], [2.0, 2.5], [3.0, 3.8]])  # 3 members at x, x'
    >>> mean, var = linear_mean_var(members, jnp.array([-1.0, 1.0]))  # f(x') - f(x)
    >>> [round(m, 2) for m in mean.tolist()], round(float(var), 3)  # steps 0.5, 0.5, 0.8
    ([2.0, 2.6], 0.02)
    """
    return jnp.mean(components, axis=0), jnp.var(contract(components, weights), axis=0)
