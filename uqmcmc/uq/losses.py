"""Training losses: mean squared error and the Gaussian NLL with its variance head.

``loss="gaussian_nll"`` trains a mean and a variance: a network without a ``mean_var`` method
is wrapped in :class:`GaussianHead`, which adds a second ``Linear(F, 1)`` readout on the same
last hidden features giving ``softplus(.) + min_var`` per site (summed over sites for an energy
network, i.e. independent site noise), and minimises ``0.5 * (log var + (y - mean)^2 / var)``
averaged over outputs.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from uqmcmc.nets.mlp import apply_readout, reduce_sites

Array = jax.Array

__all__ = ["LOSSES", "LOSS_FNS", "GaussianHead", "with_loss_head"]

LOSSES = ("mse", "gaussian_nll")


class GaussianHead(nnx.Module):
    """A convention network plus a variance readout, for Gaussian-NLL training.

    ``features``, ``readout``, ``reduce`` and ``site_axes`` are the wrapped network's, so the
    wrapper follows the convention itself; ``mean_var(x)`` adds the aleatoric variance
    ``softplus(var_readout(features)) + min_var`` per site, summed over sites when
    ``reduce == "sum"``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from uqmcmc.nets.mlp import MLP
    >>> net = GaussianHead(MLP(1, (8,), rngs=nnx.Rngs(0)), rngs=nnx.Rngs(1))
    >>> mean, var = net.mean_var(jnp.zeros((4, 1)))
    >>> mean.shape, bool((var > 0).all())
    ((4,), True)
    """

    def __init__(self, net: nnx.Module, *, rngs: nnx.Rngs, min_var: float = 1e-6):
        self.net = net
        width = net.readout.in_features
        self.var_readout = nnx.Linear(width, 1, rngs=rngs)
        self.min_var = float(min_var)
        self.reduce = getattr(net, "reduce", "none")
        self.site_axes = getattr(net, "site_axes", 0)

    @property
    def readout(self) -> nnx.Module:
        return self.net.readout

    def features(self, x: Array) -> Array:
        return self.net.features(x)

    def mean_var(self, x: Array) -> tuple[Array, Array]:
        h = self.features(x)
        site_var = jax.nn.softplus(self.var_readout(h)[..., 0]) + self.min_var
        return apply_readout(self, h), reduce_sites(self, site_var)

    def __call__(self, x: Array) -> Array:
        return apply_readout(self, self.features(x))


def with_loss_head(
    build: Callable[[nnx.Rngs], nnx.Module], loss: str
) -> Callable[[nnx.Rngs], nnx.Module]:
    """``build``, wrapped in :class:`GaussianHead` when ``loss == "gaussian_nll"`` and the
    network has no ``mean_var`` of its own (so saved backends rebuild the same structure).

    Examples
    --------
    >>> from flax import nnx
    >>> from uqmcmc.nets import MLP
    >>> build = lambda rngs: MLP(1, (4,), rngs=rngs)
    >>> with_loss_head(build, "mse") is build
    True
    >>> type(with_loss_head(build, "gaussian_nll")(nnx.Rngs(0))).__name__
    'GaussianHead'
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if loss == "mse" or hasattr(nnx.eval_shape(lambda: build(nnx.Rngs(0))), "mean_var"):
        return build
    return lambda rngs: GaussianHead(build(rngs), rngs=rngs)


def _per_example(values: Array, n_batch: int) -> Array:
    """Mean over every axis but the first (the example axis)."""
    return jnp.mean(values.reshape(n_batch, -1), axis=1)


def _mse(model, x, y):
    return _per_example((model(x) - y) ** 2, x.shape[0])


def _gaussian_nll(model, x, y):
    mean, var = model.mean_var(x)
    return _per_example(0.5 * (jnp.log(var) + (y - mean) ** 2 / var), x.shape[0])


#: Loss name -> ``loss(model, x, y)``, the loss per example (mean over its outputs).
LOSS_FNS = {"mse": _mse, "gaussian_nll": _gaussian_nll}
