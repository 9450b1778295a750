"""Training losses: mean squared error and the Gaussian NLL with its variance head.

``loss="gaussian_nll"`` trains a mean and a variance: a network without a ``mean_var`` method
is wrapped in :class:`GaussianHead`, which adds a second ``Linear(F, 1)`` readout on the same
last hidden features giving ``softplus(.) + min_var`` per site (summed over sites for an energy
network, i.e. independent site noise), and minimises ``0.5 * (log var + (y - mean)^2 / var)``
averaged over outputs. ``loss="energy_force"`` trains an energy network on energies and
gradients together (:func:`energy_force_labels` packs them; weights in :func:`energy_force_loss`).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from uqmcmc.nets.mlp import apply_readout, reduce_sites

Array = jax.Array

__all__ = [
    "LOSSES",
    "LOSS_FNS",
    "GaussianHead",
    "energy_force_labels",
    "energy_force_loss",
    "with_loss_head",
]

LOSSES = ("mse", "gaussian_nll", "energy_force")


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
    if loss in ("mse", "energy_force") or hasattr(
        nnx.eval_shape(lambda: build(nnx.Rngs(0))), "mean_var"
    ):
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


def energy_force_labels(energy: Array, grad: Array) -> Array:
    """Energies ``(n,)`` and gradients ``(n, *shape)`` packed as the labels of
    ``loss="energy_force"``: ``(n, 1 + d)``, the energy first, then the gradient flattened.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> energy_force_labels(jnp.zeros(4), jnp.ones((4, 2, 3))).shape
    (4, 7)
    """
    energy, grad = jnp.asarray(energy, dtype=float), jnp.asarray(grad, dtype=float)
    return jnp.concatenate([energy[:, None], grad.reshape(grad.shape[0], -1)], axis=1)


def energy_force_loss(model, x: Array, y: Array) -> Array:
    """The weighted energy-and-force loss per example, labels from :func:`energy_force_labels`:

    ``(E(x) - E)^2 / d + (1/d) sum_i (dE/dx_i - g_i)^2``,

    with ``d`` the number of coordinates: the squared energy error per coordinate plus the mean
    squared gradient (force) error, weights 1 and 1. Dividing the energy term by ``d`` keeps an
    extensive energy from outweighing the forces as the system grows (machine-learned
    interatomic potentials weigh energies per atom likewise). The gradient of the network is
    taken by ``jax.vjp`` through the same forward pass (one dropout mask for both terms).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> class Half:  # E = |x|^2 / 2, grad = x
    ...     def __call__(self, x):
    ...         return 0.5 * jnp.sum(x**2, axis=-1)
    >>> x = jnp.ones((3, 2))
    >>> energy_force_loss(Half(), x, energy_force_labels(jnp.ones(3), x)).tolist()
    [0.0, 0.0, 0.0]
    >>> energy_force_loss(Half(), x, energy_force_labels(jnp.zeros(3), 0 * x)).tolist()
    [1.5, 1.5, 1.5]
    """
    n = x.shape[0]
    energy, grad = y[:, 0], y[:, 1:]
    d = grad.shape[1]
    if isinstance(model, nnx.Module):  # its RNG counters advance outside the vjp's trace
        graphdef, state = nnx.split(model)

        def energies(z):
            inner = nnx.merge(graphdef, state, copy=True)
            return inner(z), nnx.state(inner)

        pred, vjp, new_state = jax.vjp(energies, x, has_aux=True)
        nnx.update(model, new_state)
    else:
        pred, vjp = jax.vjp(model, x)
    pred_grad = vjp(jnp.ones_like(pred))[0].reshape(n, -1)
    return (pred - energy) ** 2 / d + jnp.mean((pred_grad - grad) ** 2, axis=1)


#: Loss name -> ``loss(model, x, y)``, the loss per example (mean over its outputs).
LOSS_FNS = {"mse": _mse, "gaussian_nll": _gaussian_nll, "energy_force": energy_force_loss}
